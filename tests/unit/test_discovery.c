/*  Unit tests for lss_discovery: dns+tcp:// parsing, expansion through the resolver hook
 *  (several addresses, IPv6, duplicates, the cap), failures keeping the previous set,
 *  endpoint-set diffs, one socket following a set, and the api bridge reaching two
 *  executors on 127.0.0.1 and 127.0.0.2 behind one dns+ name, then only the one left.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netdb.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api_bridge.h"
#include "api_http.h"
#include "api_msgs.h"
#include "lss_bus.h"
#include "lss_discovery.h"
#include "lss_log.h"
#include "lss_util.h"

#define S_WAIT_MS 10000 /* deadline of every wait for a condition */

//  --------------------------------------------------------------------------
//  The fake resolver: host → a list of textual addresses, or a failure

#define S_FAKE_MAX 80
static pthread_mutex_t s_fake_lock = PTHREAD_MUTEX_INITIALIZER;
static const char *s_fake_host;              /* the only name it knows */
static const char *s_fake_addrs[S_FAKE_MAX]; /* what it answers */
static size_t s_fake_count;
static bool s_fake_fail; /* answer as NXDOMAIN */
static int s_fake_calls;

static void s_fake_set (const char *host, const char *const *addrs, size_t n, bool fail)
{
    pthread_mutex_lock (&s_fake_lock);
    s_fake_host = host;
    for (size_t i = 0; i < n && i < S_FAKE_MAX; i++)
        s_fake_addrs[i] = addrs[i];
    s_fake_count = n;
    s_fake_fail = fail;
    pthread_mutex_unlock (&s_fake_lock);
}

static int s_fake_calls_now (void)
{
    pthread_mutex_lock (&s_fake_lock);
    int n = s_fake_calls;
    pthread_mutex_unlock (&s_fake_lock);
    return n;
}

static struct addrinfo *s_node (const char *text)
{
    struct addrinfo *ai = calloc (1, sizeof *ai);
    assert_non_null (ai);
    ai->ai_socktype = SOCK_STREAM;
    if (strchr (text, ':')) {
        struct sockaddr_in6 *sa = calloc (1, sizeof *sa);
        assert_non_null (sa);
        sa->sin6_family = AF_INET6;
        assert_int_equal (inet_pton (AF_INET6, text, &sa->sin6_addr), 1);
        ai->ai_family = AF_INET6;
        ai->ai_addr = (struct sockaddr *)sa;
        ai->ai_addrlen = sizeof *sa;
    } else {
        struct sockaddr_in *sa = calloc (1, sizeof *sa);
        assert_non_null (sa);
        sa->sin_family = AF_INET;
        assert_int_equal (inet_pton (AF_INET, text, &sa->sin_addr), 1);
        ai->ai_family = AF_INET;
        ai->ai_addr = (struct sockaddr *)sa;
        ai->ai_addrlen = sizeof *sa;
    }
    return ai;
}

static int s_fake_resolve (void *arg, const char *host, struct addrinfo **res)
{
    (void)arg;
    pthread_mutex_lock (&s_fake_lock);
    s_fake_calls++;
    int rc = 0;
    *res = NULL;
    if (s_fake_fail || !s_fake_host || strcmp (host, s_fake_host) != 0)
        rc = EAI_NONAME;
    else {
        struct addrinfo **tail = res;
        for (size_t i = 0; i < s_fake_count; i++) {
            *tail = s_node (s_fake_addrs[i]);
            tail = &(*tail)->ai_next;
        }
    }
    pthread_mutex_unlock (&s_fake_lock);
    return rc;
}

static void s_fake_release (void *arg, struct addrinfo *res)
{
    (void)arg;
    while (res) {
        struct addrinfo *next = res->ai_next;
        free (res->ai_addr);
        free (res);
        res = next;
    }
}

static int s_setup (void **state)
{
    (void)state;
    s_fake_set (NULL, NULL, 0, false);
    lss_discovery_set_resolver (s_fake_resolve, s_fake_release, NULL);
    return 0;
}

static int s_teardown (void **state)
{
    (void)state;
    lss_discovery_set_resolver (NULL, NULL, NULL);
    return 0;
}

//  --------------------------------------------------------------------------
//  Parsing

static void test_parse_good (void **state)
{
    (void)state;
    char host[LSS_DISCOVERY_HOST_MAX + 1];
    int port = 0;
    char err[256];
    assert_int_equal (
        lss_discovery_parse ("dns+tcp://lss-executor-bus.lss.svc.cluster.local:7432", host,
                             &port, err, sizeof err),
        0);
    assert_string_equal (host, "lss-executor-bus.lss.svc.cluster.local");
    assert_int_equal (port, 7432);
    assert_int_equal (lss_discovery_parse ("dns+tcp://a:1", host, &port, err, sizeof err), 0);
    assert_int_equal (port, 1);
    assert_int_equal (
        lss_discovery_parse ("dns+tcp://x.example.:65535", host, &port, err, sizeof err), 0);
    assert_string_equal (host, "x.example.");
    assert_int_equal (port, 65535);
    assert_int_equal (
        lss_discovery_parse ("dns+tcp://10.0.0.7:80", host, &port, err, sizeof err), 0);
    assert_int_equal (
        lss_discovery_parse ("dns+tcp://[fd00::1]:7432", host, &port, err, sizeof err), 0);
    assert_string_equal (host, "fd00::1");
    /* a label of 63 bytes is fine, a name of 253 too */
    char name[300];
    memset (name, 'a', 63);
    snprintf (name + 63, sizeof name - 63, ".b:9");
    char entry[320];
    snprintf (entry, sizeof entry, "dns+tcp://%s", name);
    assert_int_equal (lss_discovery_parse (entry, host, &port, err, sizeof err), 0);
    /* 4 labels of 63 + 3 dots = 255 > 253 */
    char *p = name;
    for (int i = 0; i < 4; i++) {
        memset (p, 'c', 63);
        p += 63;
        *p++ = i < 3 ? '.' : ':';
    }
    snprintf (p, sizeof name - (size_t)(p - name), "9");
    snprintf (entry, sizeof entry, "dns+tcp://%s", name);
    assert_int_equal (lss_discovery_parse (entry, host, &port, err, sizeof err), -1);
}

static void test_parse_bad (void **state)
{
    (void)state;
    static const char *const bad[] = {
        "dns+tcp://host",         /* no port */
        "dns+tcp://host:",        /* empty port */
        "dns+tcp://host:0",       /* port 0 */
        "dns+tcp://host:65536",   /* past the range */
        "dns+tcp://host:123456",  /* too many digits */
        "dns+tcp://host:-1",      /* sign */
        "dns+tcp://host:80x",     /* junk after the port */
        "dns+tcp://host:80/path", /* a path */
        "dns+tcp://:80",          /* no host */
        "dns+tcp://-host:80",     /* label starts with '-' */
        "dns+tcp://host-:80",     /* label ends with '-' */
        "dns+tcp://a..b:80",      /* empty label */
        "dns+tcp://ho_st:80",     /* underscore */
        "dns+tcp://ho st:80",     /* space */
        "dns+tcp://host,x:80",    /* comma (would split the list) */
        "dns+tcp://*:80",         /* wildcard */
        "dns+tcp://h\n:80",       /* control character */
        "dns+tcp://[fd00::1:80",  /* unclosed bracket */
        "dns+tcp://[nothex]:80",  /* not an IPv6 address */
        "dns+tcp://[]:80",        /* empty brackets */
        "dns+tcp://[::1]80",      /* no colon after the bracket */
        "dns+udp://host:80",      /* only tcp */
        "dns+ipc://x",            /* only tcp */
        "dns+tcp:/host:80",       /* malformed scheme */
        "tcp://host:80",          /* not dns+ at all */
        "",
    };
    char host[LSS_DISCOVERY_HOST_MAX + 1];
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int port = 0;
        char err[256] = "";
        if (lss_discovery_parse (bad[i], host, &port, err, sizeof err) != -1)
            fail_msg ("accepted: %s", bad[i]);
        assert_true (err[0] != '\0');
    }
    assert_int_equal (lss_discovery_parse (NULL, host, &(int){0}, NULL, 0), -1);
}

static void test_new_errors (void **state)
{
    (void)state;
    char err[256];
    assert_null (lss_discovery_new ("", 1000, "k", err, sizeof err));
    assert_null (lss_discovery_new (NULL, 1000, "k", err, sizeof err));
    assert_null (lss_discovery_new (",,,", 1000, "k", err, sizeof err));
    assert_null (lss_discovery_new ("@dns+tcp://a:1", 1000, "k", err, sizeof err));
    assert_non_null (strstr (err, "bound"));
    assert_null (lss_discovery_new (">@dns+tcp://a:1", 1000, "k", err, sizeof err));
    assert_null (lss_discovery_new ("tcp://dns+a:1", 1000, "k", err, sizeof err));
    assert_null (lss_discovery_new ("tcp://x:1,dns+tcp://a:0", 1000, "api.x", err, sizeof err));
    assert_non_null (strstr (err, "api.x"));
    assert_non_null (strstr (err, "port"));
    assert_null (lss_discovery_new ("dns+udp://a:1", 1000, "k", err, sizeof err));
    char list[2048] = "";
    size_t used = 0;
    for (int i = 0; i <= LSS_DISCOVERY_NAMES_MAX; i++)
        used += (size_t)snprintf (list + used, sizeof list - used, "%sdns+tcp://n%d:1",
                                  i ? "," : "", i);
    assert_null (lss_discovery_new (list, 1000, "k", err, sizeof err));
    char longest[400];
    memset (longest, 'a', sizeof longest - 1);
    longest[sizeof longest - 1] = '\0';
    memcpy (longest, "tcp://", 6);
    assert_null (lss_discovery_new (longest, 1000, "k", err, sizeof err));
    assert_int_equal (
        lss_discovery_validate ("dns+tcp://a:1,>dns+tcp://b.c:2", "k", err, sizeof err), 0);
    assert_int_equal (lss_discovery_validate ("dns+tcp://a:99999", "k", err, sizeof err), -1);
    assert_true (lss_discovery_is_dynamic ("tcp://a:1,dns+tcp://b:2"));
    assert_false (lss_discovery_is_dynamic ("tcp://a:1,ipc:///x"));
    assert_false (lss_discovery_is_dynamic (NULL));
}

//  --------------------------------------------------------------------------
//  Endpoint sets

static void test_epset (void **state)
{
    (void)state;
    lss_epset_t *s = lss_epset_new ();
    assert_int_equal (lss_epset_add (s, "tcp://b:1"), 0);
    assert_int_equal (lss_epset_add (s, "tcp://a:1"), 0);
    assert_int_equal (lss_epset_add (s, "tcp://c:1"), 0);
    assert_int_equal (lss_epset_add (s, "tcp://a:1"), 1);
    assert_int_equal (lss_epset_add (s, ""), -1);
    assert_int_equal (lss_epset_size (s), 3);
    assert_string_equal (lss_epset_at (s, 0), "tcp://a:1");
    assert_string_equal (lss_epset_at (s, 2), "tcp://c:1");
    assert_null (lss_epset_at (s, 3));
    char out[64];
    assert_int_equal (lss_epset_join (s, out, sizeof out), 0);
    assert_string_equal (out, "tcp://a:1,tcp://b:1,tcp://c:1");
    assert_int_equal (lss_epset_join (s, out, 20), -1);
    assert_int_equal (lss_epset_remove (s, "tcp://b:1"), 0);
    assert_int_equal (lss_epset_remove (s, "tcp://b:1"), -1);
    assert_false (lss_epset_contains (s, "tcp://b:1"));
    assert_true (lss_epset_contains (s, "tcp://c:1"));
    char big[LSS_EPSET_ENDPOINT_MAX + 2];
    memset (big, 'x', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    assert_int_equal (lss_epset_add (s, big), -1);
    lss_epset_t *full = lss_epset_new ();
    for (int i = 0; i < LSS_EPSET_MAX; i++) {
        char ep[32];
        snprintf (ep, sizeof ep, "tcp://h%03d:1", i);
        assert_int_equal (lss_epset_add (full, ep), 0);
    }
    assert_int_equal (lss_epset_add (full, "tcp://zz:1"), -1);
    assert_int_equal (lss_epset_size (full), LSS_EPSET_MAX);
    lss_epset_destroy (&full);
    lss_epset_destroy (&s);
    assert_null (s);
}

static void test_epset_diff (void **state)
{
    (void)state;
    lss_epset_t *old_set = lss_epset_new (), *new_set = lss_epset_new ();
    lss_epset_add (old_set, "tcp://10.0.0.1:1");
    lss_epset_add (old_set, "tcp://10.0.0.2:1");
    lss_epset_add (old_set, "tcp://10.0.0.3:1");
    lss_epset_add (new_set, "tcp://10.0.0.2:1");
    lss_epset_add (new_set, "tcp://10.0.0.4:1");
    lss_epset_add (new_set, "tcp://10.0.0.5:1");
    lss_epset_t *added = NULL, *removed = NULL;
    assert_int_equal (lss_epset_diff (old_set, new_set, &added, &removed), 0);
    char out[256];
    lss_epset_join (added, out, sizeof out);
    assert_string_equal (out, "tcp://10.0.0.4:1,tcp://10.0.0.5:1");
    lss_epset_join (removed, out, sizeof out);
    assert_string_equal (out, "tcp://10.0.0.1:1,tcp://10.0.0.3:1");
    lss_epset_destroy (&added);
    lss_epset_destroy (&removed);
    /* from nothing: everything is added */
    assert_int_equal (lss_epset_diff (NULL, new_set, &added, &removed), 0);
    assert_int_equal (lss_epset_size (added), 3);
    assert_int_equal (lss_epset_size (removed), 0);
    lss_epset_destroy (&added);
    lss_epset_destroy (&removed);
    /* equal sets: nothing */
    lss_epset_t *copy = lss_epset_dup (new_set);
    assert_true (lss_epset_equal (copy, new_set));
    assert_false (lss_epset_equal (copy, old_set));
    assert_int_equal (lss_epset_diff (copy, new_set, &added, &removed), 0);
    assert_int_equal (lss_epset_size (added) + lss_epset_size (removed), 0);
    lss_epset_destroy (&added);
    lss_epset_destroy (&removed);
    lss_epset_destroy (&copy);
    lss_epset_destroy (&old_set);
    lss_epset_destroy (&new_set);
}

//  --------------------------------------------------------------------------
//  Expansion through the hook

static char *s_joined (const lss_discovery_t *d)
{
    static char out[16384];
    assert_int_equal (lss_epset_join (lss_discovery_set (d), out, sizeof out), 0);
    return out;
}

static void test_expand (void **state)
{
    (void)state;
    static const char *const addrs[] = {"10.0.0.9", "10.0.0.3",  "fd00::2",
                                        "10.0.0.3", "fd00:0::2", "10.0.0.10"};
    s_fake_set ("exec.lss.svc", addrs, 6, false);
    char err[256];
    lss_discovery_t *d = lss_discovery_new (">dns+tcp://exec.lss.svc:7432,tcp://static:1", 1000,
                                            "t", err, sizeof err);
    assert_non_null (d);
    assert_string_equal (s_joined (d), "tcp://static:1"); /* no lookup yet */
    assert_int_equal (lss_discovery_resolve_now (d, 1000), 1);
    /* sorted (as text), duplicates (also fd00::2 written two ways) once, IPv6 bracketed */
    assert_string_equal (s_joined (d), "tcp://10.0.0.10:7432,tcp://10.0.0.3:7432,"
                                       "tcp://10.0.0.9:7432,tcp://[fd00::2]:7432,"
                                       "tcp://static:1");
    assert_int_equal (lss_discovery_lookups (d), 1);
    /* the same answer again: no change reported */
    assert_int_equal (lss_discovery_resolve_now (d, 1000), 0);
    lss_discovery_destroy (&d);
    assert_null (d);
}

static void test_expand_cap (void **state)
{
    (void)state;
    static char text[S_FAKE_MAX][32];
    const char *addrs[S_FAKE_MAX];
    for (int i = 0; i < 70; i++) {
        snprintf (text[i], sizeof text[i], "10.1.%d.%d", i / 10, i % 10);
        addrs[i] = text[i];
    }
    s_fake_set ("many", addrs, 70, false);
    char err[256];
    lss_discovery_t *d = lss_discovery_new ("dns+tcp://many:9", 1000, "t", err, sizeof err);
    assert_non_null (d);
    assert_int_equal (lss_discovery_resolve_now (d, 1000), 1);
    const lss_epset_t *set = lss_discovery_set (d);
    assert_int_equal (lss_epset_size (set), LSS_DISCOVERY_PER_NAME_MAX);
    /* the first 64 in sorted order are kept: 10.1.0.0 .. and not the largest */
    assert_string_equal (lss_epset_at (set, 0), "tcp://10.1.0.0:9");
    assert_false (lss_epset_contains (set, "tcp://10.1.6.9:9"));
    lss_discovery_destroy (&d);
}

static void test_failure_keeps_set (void **state)
{
    (void)state;
    static const char *const two[] = {"10.0.0.1", "10.0.0.2"};
    static const char *const one[] = {"10.0.0.2"};
    char err[256];
    /* a failing first lookup: empty set, not fatal */
    s_fake_set ("svc", two, 2, true);
    lss_discovery_t *d = lss_discovery_new ("dns+tcp://svc:5", 500, "t", err, sizeof err);
    assert_non_null (d);
    assert_int_equal (lss_discovery_poll (d, 1000), 0);
    assert_int_equal (lss_epset_size (lss_discovery_set (d)), 0);
    assert_int_equal (lss_discovery_failures (d), 1);
    /* retried after LSS_DISCOVERY_RETRY_MS at most (here the 500 ms interval), not before */
    int calls = s_fake_calls_now ();
    assert_int_equal (lss_discovery_poll (d, 1499), 0);
    assert_int_equal (s_fake_calls_now (), calls);
    s_fake_set ("svc", two, 2, false);
    assert_int_equal (lss_discovery_poll (d, 1500), 1);
    assert_string_equal (s_joined (d), "tcp://10.0.0.1:5,tcp://10.0.0.2:5");
    /* NXDOMAIN (no replica ready): the previous set stays */
    s_fake_set ("svc", two, 2, true);
    assert_int_equal (lss_discovery_poll (d, 2000), 0);
    assert_int_equal (lss_discovery_failures (d), 2);
    assert_string_equal (s_joined (d), "tcp://10.0.0.1:5,tcp://10.0.0.2:5");
    /* an empty answer is a failure too */
    s_fake_set ("svc", NULL, 0, false);
    assert_int_equal (lss_discovery_poll (d, 2500), 0);
    assert_int_equal (lss_discovery_failures (d), 3);
    assert_string_equal (s_joined (d), "tcp://10.0.0.1:5,tcp://10.0.0.2:5");
    /* a replica goes away */
    s_fake_set ("svc", one, 1, false);
    assert_int_equal (lss_discovery_poll (d, 3000), 1);
    assert_string_equal (s_joined (d), "tcp://10.0.0.2:5");
    /* not due again before the interval */
    calls = s_fake_calls_now ();
    assert_int_equal (lss_discovery_poll (d, 3499), 0);
    assert_int_equal (s_fake_calls_now (), calls);
    lss_discovery_destroy (&d);
}

static void test_real_resolver (void **state)
{
    (void)state;
    /* the system resolver on a literal: no network, but the getaddrinfo_a path runs */
    lss_discovery_set_resolver (NULL, NULL, NULL);
    char err[256];
    lss_discovery_t *d =
        lss_discovery_new ("dns+tcp://127.0.0.1:7000", 500, "t", err, sizeof err);
    assert_non_null (d);
    assert_int_equal (lss_discovery_resolve_now (d, 5000), 1);
    assert_string_equal (s_joined (d), "tcp://127.0.0.1:7000");
    lss_discovery_destroy (&d);
    /* and one that is still in flight when destroyed */
    d = lss_discovery_new ("dns+tcp://localhost:7000", 500, "t", err, sizeof err);
    assert_non_null (d);
    lss_discovery_poll (d, lss_time_mono_ms ());
    lss_discovery_destroy (&d);
    lss_discovery_set_resolver (s_fake_resolve, s_fake_release, NULL);
}

//  --------------------------------------------------------------------------
//  One socket following a set, on 127.0.0.1 and 127.0.0.2

/*  Binds a ROUTER on 127.0.0.1 and one on 127.0.0.2 on the same free port. */
static int s_bind_pair (zsock_t **a, zsock_t **b)
{
    for (int attempt = 0; attempt < 20; attempt++) {
        *a = lss_bus_socket_new (ZMQ_ROUTER, NULL, NULL);
        *b = lss_bus_socket_new (ZMQ_ROUTER, NULL, NULL);
        assert_non_null (*a);
        assert_non_null (*b);
        int port = zsock_bind (*a, "tcp://127.0.0.1:*");
        if (port > 0 && zsock_bind (*b, "tcp://127.0.0.2:%d", port) == port)
            return port;
        zsock_destroy (a);
        zsock_destroy (b);
    }
    fail_msg ("no port free on both 127.0.0.1 and 127.0.0.2");
    return -1;
}

/*  Receives on a or b for up to wait_ms; returns 'a', 'b' or 0. */
static int s_recv_either (zsock_t *a, zsock_t *b, int wait_ms)
{
    zpoller_t *p = zpoller_new (a, b, NULL);
    void *which = zpoller_wait (p, wait_ms);
    zpoller_destroy (&p);
    if (!which)
        return 0;
    zmsg_t *m = zmsg_recv (which);
    zmsg_destroy (&m);
    return which == a ? 'a' : 'b';
}

static void test_sync_socket (void **state)
{
    (void)state;
    zsock_t *ra, *rb;
    int port = s_bind_pair (&ra, &rb);
    static const char *const both[] = {"127.0.0.1", "127.0.0.2"};
    static const char *const only_b[] = {"127.0.0.2"};
    s_fake_set ("queue.test", both, 2, false);
    char list[64], err[256];
    snprintf (list, sizeof list, "dns+tcp://queue.test:%d", port);
    lss_discovery_t *d = lss_discovery_new (list, 500, "t", err, sizeof err);
    assert_non_null (d);
    lss_discovery_resolve_now (d, 1000);
    zsock_t *dealer = lss_bus_socket_new (ZMQ_DEALER, NULL, NULL);
    zsock_set_immediate (dealer, 1); /* as the queue client: only to connected peers */
    lss_epset_t *conn = NULL;
    assert_int_equal (lss_discovery_sync (dealer, lss_discovery_set (d), &conn), 2);
    assert_int_equal (lss_epset_size (conn), 2);
    /* DEALER round-robins: both get messages (wait until both are connected) */
    int seen_a = 0, seen_b = 0;
    int64_t deadline = lss_time_mono_ms () + S_WAIT_MS;
    while ((!seen_a || !seen_b) && lss_time_mono_ms () < deadline) {
        zstr_sendx (dealer, "x", NULL);
        int who = s_recv_either (ra, rb, 50);
        seen_a += who == 'a';
        seen_b += who == 'b';
    }
    assert_true (seen_a > 0);
    assert_true (seen_b > 0);
    while (s_recv_either (ra, rb, 100)) /* drain */
        ;
    /* one replica leaves: after the sync, every message goes to the other */
    s_fake_set ("queue.test", only_b, 1, false);
    assert_int_equal (lss_discovery_resolve_now (d, 1000), 1);
    assert_int_equal (lss_discovery_sync (dealer, lss_discovery_set (d), &conn), 1);
    assert_int_equal (lss_epset_size (conn), 1);
    /* the disconnect takes effect in ZeroMQ's I/O thread: a message sent meanwhile may
     * still go down the closing pipe (and be lost). From then on, every one reaches b. */
    int in_a_row = 0;
    deadline = lss_time_mono_ms () + S_WAIT_MS;
    while (in_a_row < 20 && lss_time_mono_ms () < deadline) {
        zstr_sendx (dealer, "y", NULL);
        int who = s_recv_either (ra, rb, 200);
        in_a_row = who == 'b' ? in_a_row + 1 : 0;
    }
    assert_int_equal (in_a_row, 20);
    /* nothing changed: nothing done */
    assert_int_equal (lss_discovery_sync (dealer, lss_discovery_set (d), &conn), 0);
    lss_epset_destroy (&conn);
    zsock_destroy (&dealer);
    lss_discovery_destroy (&d);
    zsock_destroy (&ra);
    zsock_destroy (&rb);
}

static void test_sync_ipv6 (void **state)
{
    (void)state;
    /* an IPv6 answer becomes tcp://[::1]:PORT, and the socket really connects to it
     * (ZMQ_IPV6 is off by default: without it the connect would fail) */
    zsock_t *router = lss_bus_socket_new (ZMQ_ROUTER, NULL, NULL);
    zsock_set_ipv6 (router, 1);
    int port = zsock_bind (router, "tcp://[::1]:*");
    if (port < 0) {
        zsock_destroy (&router);
        skip (); /* no IPv6 loopback here */
    }
    static const char *const v6[] = {"::1"};
    s_fake_set ("v6.test", v6, 1, false);
    char list[64], err[256];
    snprintf (list, sizeof list, "dns+tcp://v6.test:%d", port);
    lss_discovery_t *d = lss_discovery_new (list, 500, "t", err, sizeof err);
    assert_non_null (d);
    assert_int_equal (lss_discovery_resolve_now (d, 1000), 1);
    char want[64];
    snprintf (want, sizeof want, "tcp://[::1]:%d", port);
    assert_string_equal (s_joined (d), want);
    zsock_t *dealer = lss_bus_socket_new (ZMQ_DEALER, NULL, NULL);
    lss_epset_t *conn = NULL;
    assert_int_equal (lss_discovery_sync (dealer, lss_discovery_set (d), &conn), 1);
    zstr_sendx (dealer, "hello", NULL);
    zpoller_t *p = zpoller_new (router, NULL);
    assert_ptr_equal (zpoller_wait (p, S_WAIT_MS), router);
    zpoller_destroy (&p);
    zmsg_t *m = zmsg_recv (router);
    assert_non_null (m);
    assert_int_equal (zmsg_size (m), 2); /* [identity][hello] */
    zmsg_destroy (&m);
    lss_epset_destroy (&conn);
    zsock_destroy (&dealer);
    lss_discovery_destroy (&d);
    zsock_destroy (&router);
}

//  --------------------------------------------------------------------------
//  The api bridge behind one dns+ name

typedef struct {
    zsock_t *sock;
    const char *src;
    int starts;              /* exec.start received */
    char held[8][64];        /* exec ids not answered yet */
    char held_route[8][256]; /* their routing ids */
    size_t held_route_len[8];
    int nheld;
    bool hold; /* keep new executions unanswered */
} s_fake_exec_t;

static void s_exec_reply (s_fake_exec_t *x, const void *route, size_t route_len,
                          const char *exec_id)
{
    lss_envelope_t env;
    lss_exec_started_t st = {.exec_id = (char *)exec_id};
    assert_int_equal (lss_bus_envelope_init (&env, LSS_MSG_exec_started, NULL, x->src, 1, NULL),
                      0);
    assert_int_equal (
        lss_bus_send (x->sock, route, route_len, NULL, &env, LSS_MSG_exec_started, &st), 0);
    lss_exec_end_t end = {.exec_id = (char *)exec_id, .exit_code = 0};
    assert_int_equal (lss_bus_envelope_init (&env, LSS_MSG_exec_end, NULL, x->src, 2, NULL), 0);
    assert_int_equal (
        lss_bus_send (x->sock, route, route_len, NULL, &env, LSS_MSG_exec_end, &end), 0);
}

/*  Serves everything queued on x: pongs, and exec.start answered (or held). */
static void s_exec_serve (s_fake_exec_t *x)
{
    while (zsock_events (x->sock) & ZMQ_POLLIN) {
        zframe_t *route = NULL;
        lss_envelope_t env;
        lss_msg_kind_t kind;
        void *body = NULL;
        char err[256];
        int rc = lss_bus_recv (x->sock, &route, NULL, 0, &env, &kind, &body, err, sizeof err);
        if (rc != 0) {
            zframe_destroy (&route);
            continue;
        }
        if (kind == LSS_MSG_agent_ping) {
            lss_envelope_t e;
            lss_agent_pong_t pong = {.ref = env.id, .nonce = ((lss_agent_ping_t *)body)->nonce};
            lss_bus_envelope_init (&e, LSS_MSG_agent_pong, NULL, x->src, 1, NULL);
            lss_bus_send (x->sock, zframe_data (route), zframe_size (route), NULL, &e,
                          LSS_MSG_agent_pong, &pong);
        } else if (kind == LSS_MSG_exec_start) {
            lss_exec_start_t *s = body;
            x->starts++;
            if (x->hold && x->nheld < 8 && zframe_size (route) <= 256) {
                snprintf (x->held[x->nheld], sizeof x->held[0], "%s", s->exec_id);
                memcpy (x->held_route[x->nheld], zframe_data (route), zframe_size (route));
                x->held_route_len[x->nheld] = zframe_size (route);
                x->nheld++;
            } else
                s_exec_reply (x, zframe_data (route), zframe_size (route), s->exec_id);
        }
        lss_proto_body_free (kind, &body);
        zframe_destroy (&route);
    }
}

/*  Answers the held executions, all but the last `keep`. */
static void s_exec_release (s_fake_exec_t *x, int keep)
{
    int n = x->nheld - keep;
    for (int i = 0; i < n; i++)
        s_exec_reply (x, x->held_route[i], x->held_route_len[i], x->held[i]);
    for (int i = n; i < x->nheld; i++) {
        memcpy (x->held[i - n], x->held[i], sizeof x->held[0]);
        memcpy (x->held_route[i - n], x->held_route[i], sizeof x->held_route[0]);
        x->held_route_len[i - n] = x->held_route_len[i];
    }
    x->nheld = keep;
}

typedef struct {
    int ok, failed; /* REST answers received: 200 or not */
    uint64_t last_failed_ticket;
} s_answers_t;

/*  Serves both fake executors and collects answers for up to wait_ms, or until cond. */
static void s_pump (api_ctx_t *ctx, s_fake_exec_t *a, s_fake_exec_t *b, s_answers_t *ans,
                    int wait_ms, bool (*cond) (void *), void *arg)
{
    int64_t deadline = lss_time_mono_ms () + wait_ms;
    while (lss_time_mono_ms () < deadline) {
        zmq_pollitem_t items[] = {{zsock_resolve (a->sock), 0, ZMQ_POLLIN, 0},
                                  {zsock_resolve (b->sock), 0, ZMQ_POLLIN, 0},
                                  {NULL, api_mailbox_fd (ctx->lws_inbox), ZMQ_POLLIN, 0}};
        zmq_poll (items, 3, 20);
        s_exec_serve (a);
        s_exec_serve (b);
        api_msg_t *m = api_mailbox_take_all (ctx->lws_inbox);
        while (m) {
            api_msg_t *next = m->next;
            if (m->type == API_MSG_HTTP_RESP) {
                api_resp_t *r = (api_resp_t *)m;
                if (r->status == 200)
                    ans->ok++;
                else {
                    ans->failed++;
                    ans->last_failed_ticket = r->ticket;
                }
            }
            api_msg_destroy (m);
            m = next;
        }
        m = api_mailbox_take_all (ctx->jobs); /* audit rows */
        while (m) {
            api_msg_t *next = m->next;
            api_msg_destroy (m);
            m = next;
        }
        if (cond && cond (arg))
            return;
    }
}

typedef struct {
    s_fake_exec_t *a, *b;
    s_answers_t *ans;
    int starts, ok, calls;
} s_goal_t;

static bool s_goal_starts (void *arg)
{
    s_goal_t *g = arg;
    return g->a->starts + g->b->starts >= g->starts;
}

static bool s_goal_ok (void *arg)
{
    s_goal_t *g = arg;
    return g->ans->ok >= g->ok;
}

static bool s_goal_calls (void *arg)
{
    s_goal_t *g = arg;
    return s_fake_calls_now () >= g->calls;
}

static uint64_t s_next_xid = 1;

static void s_post_exec (api_ctx_t *ctx)
{
    api_exec_start_msg_t *m = api_exec_start_msg_new ();
    assert_non_null (m);
    m->xid = s_next_xid++;
    m->to.ticket = m->xid;
    snprintf (m->execution_id, sizeof m->execution_id, "exec-%llu", (unsigned long long)m->xid);
    snprintf (m->sandbox_ref, sizeof m->sandbox_ref, "default/sb");
    snprintf (m->sandbox_id, sizeof m->sandbox_id, "sb");
    snprintf (m->spec.kind, sizeof m->spec.kind, "command");
    m->spec.shell = strdup ("true");
    m->spec.timeout_ms = 30000;
    m->spec.max_output = 1024;
    assert_int_equal (api_mailbox_post (ctx->bridge_inbox, &m->msg), 0);
}

static bool s_disconnected (zsock_t *mon_pair)
{
    while (zsock_events (mon_pair) & ZMQ_POLLIN) {
        zmsg_t *msg = zmsg_recv (mon_pair);
        zframe_t *f = msg ? zmsg_first (msg) : NULL;
        uint16_t ev = 0;
        if (f && zframe_size (f) >= 2)
            memcpy (&ev, zframe_data (f), sizeof ev);
        zmsg_destroy (&msg);
        if (ev == ZMQ_EVENT_DISCONNECTED)
            return true;
    }
    return false;
}

static void test_bridge_fanout (void **state)
{
    (void)state;
    s_fake_exec_t a = {.src = "executor/a"}, b = {.src = "executor/b"};
    int port = s_bind_pair (&a.sock, &b.sock);
    zmq_socket_monitor (zsock_resolve (a.sock), "inproc://test-discovery-mon-a",
                        ZMQ_EVENT_DISCONNECTED);
    zsock_t *mon_a = zsock_new_pair (">inproc://test-discovery-mon-a");
    assert_non_null (mon_a);
    static const char *const both[] = {"127.0.0.2", "127.0.0.1"};
    static const char *const only_b[] = {"127.0.0.2"};
    s_fake_set ("lss-executor-bus.test", both, 2, false);

    char endpoint[96];
    snprintf (endpoint, sizeof endpoint, "dns+tcp://lss-executor-bus.test:%d", port);
    api_ctx_t ctx = {.executor_endpoint = endpoint};
    lss_bus_opts_default (&ctx.bus_opts);
    ctx.bus_opts.resolve_interval_ms = 500;
    ctx.lws_inbox = api_mailbox_new (SIZE_MAX, NULL, NULL);
    ctx.jobs = api_mailbox_new (SIZE_MAX, NULL, NULL);
    assert_non_null (ctx.lws_inbox);
    assert_non_null (ctx.jobs);
    api_bridge_t *bridge = api_bridge_new (&ctx);
    assert_non_null (bridge);
    s_answers_t ans = {0};
    s_goal_t g = {.a = &a, .b = &b, .ans = &ans};

    /* 1. four executions held at once: the fewest-in-flight rule spreads them 2 + 2 */
    a.hold = b.hold = true;
    for (int i = 0; i < 4; i++)
        s_post_exec (&ctx);
    g.starts = 4;
    s_pump (&ctx, &a, &b, &ans, S_WAIT_MS, s_goal_starts, &g);
    assert_int_equal (a.starts, 2);
    assert_int_equal (b.starts, 2);
    /* answer all but one of a's */
    s_exec_release (&b, 0);
    s_exec_release (&a, 1);
    g.ok = 3;
    s_pump (&ctx, &a, &b, &ans, S_WAIT_MS, s_goal_ok, &g);
    assert_int_equal (ans.ok, 3);
    assert_int_equal (ans.failed, 0);

    /* 2. 127.0.0.1 leaves the name; wait for two more lookups (the first one's change is
     *    applied in the same tick, so after the second it is certainly in force) */
    s_fake_set ("lss-executor-bus.test", only_b, 1, false);
    g.calls = s_fake_calls_now () + 2;
    s_pump (&ctx, &a, &b, &ans, S_WAIT_MS, s_goal_calls, &g);
    assert_true (s_fake_calls_now () >= g.calls);

    /* 3. new work only goes to 127.0.0.2 (answered at once: ties would pick slot 0) */
    a.hold = b.hold = false;
    int a0 = a.starts, b0 = b.starts;
    for (int i = 0; i < 5; i++)
        s_post_exec (&ctx);
    g.starts = a0 + b0 + 5;
    g.ok = 3 + 5;
    s_pump (&ctx, &a, &b, &ans, S_WAIT_MS, s_goal_ok, &g);
    assert_int_equal (ans.ok, 8);
    assert_int_equal (a.starts, a0);
    assert_int_equal (b.starts, b0 + 5);

    /* 4. the execution still running on the drained executor finishes normally ... */
    assert_int_equal (ans.failed, 0);
    s_exec_release (&a, 0);
    g.ok = 9;
    s_pump (&ctx, &a, &b, &ans, S_WAIT_MS, s_goal_ok, &g);
    assert_int_equal (ans.ok, 9);
    assert_int_equal (ans.failed, 0);
    /* ... and then its connection is closed */
    int64_t deadline = lss_time_mono_ms () + S_WAIT_MS;
    bool gone = false;
    while (!gone && lss_time_mono_ms () < deadline) {
        s_pump (&ctx, &a, &b, &ans, 50, NULL, NULL);
        gone = s_disconnected (mon_a);
    }
    assert_true (gone);

    /* 5. the name fails to resolve: the bridge keeps 127.0.0.2 and work still runs */
    s_fake_set ("lss-executor-bus.test", only_b, 1, true);
    g.calls = s_fake_calls_now () + 2;
    s_pump (&ctx, &a, &b, &ans, S_WAIT_MS, s_goal_calls, &g);
    s_post_exec (&ctx);
    g.ok = 10;
    s_pump (&ctx, &a, &b, &ans, S_WAIT_MS, s_goal_ok, &g);
    assert_int_equal (ans.ok, 10);
    assert_int_equal (b.starts, b0 + 6);

    api_bridge_destroy (&bridge);
    assert_null (bridge);
    s_pump (&ctx, &a, &b, &ans, 0, NULL, NULL);
    api_mailbox_destroy (&ctx.bridge_inbox); /* made by the bridge, freed by its owner */
    api_mailbox_destroy (&ctx.lws_inbox);
    api_mailbox_destroy (&ctx.jobs);
    zmq_socket_monitor (zsock_resolve (a.sock), NULL, 0);
    zsock_destroy (&mon_a);
    zsock_destroy (&a.sock);
    zsock_destroy (&b.sock);
}

static void test_bridge_nothing_found (void **state)
{
    (void)state;
    /* no replica yet: the bridge starts, and an execution fails with an explicit error */
    s_fake_set ("nobody.test", NULL, 0, true);
    api_ctx_t ctx = {.executor_endpoint = "dns+tcp://nobody.test:7432"};
    lss_bus_opts_default (&ctx.bus_opts);
    ctx.lws_inbox = api_mailbox_new (SIZE_MAX, NULL, NULL);
    ctx.jobs = api_mailbox_new (SIZE_MAX, NULL, NULL);
    api_bridge_t *bridge = api_bridge_new (&ctx);
    assert_non_null (bridge);
    s_post_exec (&ctx);
    api_resp_t *r = NULL;
    int64_t deadline = lss_time_mono_ms () + S_WAIT_MS;
    while (!r && lss_time_mono_ms () < deadline) {
        api_msg_t *m = api_mailbox_wait (ctx.lws_inbox, 100);
        if (m && m->type == API_MSG_HTTP_RESP)
            r = (api_resp_t *)m;
        else
            api_msg_destroy (m);
    }
    assert_non_null (r);
    assert_int_equal (r->status, 503);
    assert_non_null (r->body);
    assert_non_null (strstr (r->body, "executor_unavailable"));
    api_msg_destroy (&r->msg);
    api_bridge_destroy (&bridge);
    api_mailbox_destroy (&ctx.bridge_inbox);
    api_mailbox_destroy (&ctx.lws_inbox);
    api_mailbox_destroy (&ctx.jobs);
    /* a bad dns+ endpoint is refused at start */
    api_ctx_t bad = ctx;
    bad.executor_endpoint = "dns+tcp://bad_name:7432";
    bad.lws_inbox = api_mailbox_new (SIZE_MAX, NULL, NULL);
    bad.jobs = api_mailbox_new (SIZE_MAX, NULL, NULL);
    assert_null (api_bridge_new (&bad));
    api_mailbox_destroy (&bad.bridge_inbox);
    api_mailbox_destroy (&bad.lws_inbox);
    api_mailbox_destroy (&bad.jobs);
}

int main (void)
{
    lss_log_init ("test_discovery", LSS_LOG_WARN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_parse_good),
        cmocka_unit_test (test_parse_bad),
        cmocka_unit_test (test_new_errors),
        cmocka_unit_test (test_epset),
        cmocka_unit_test (test_epset_diff),
        cmocka_unit_test (test_expand),
        cmocka_unit_test (test_expand_cap),
        cmocka_unit_test (test_failure_keeps_set),
        cmocka_unit_test (test_real_resolver),
        cmocka_unit_test (test_sync_socket),
        cmocka_unit_test (test_sync_ipv6),
        cmocka_unit_test (test_bridge_fanout),
        cmocka_unit_test (test_bridge_nothing_found),
    };
    return cmocka_run_group_tests (tests, s_setup, s_teardown);
}
