/*  Unit tests for api_redis against a real private Redis (scripts/redis-tmp) and against
 *  a hostile "server" (a listener thread in this file answering canned bytes).
 *
 *  Rate-limit cases pass now_s explicitly, so window rollover is tested without waiting.
 *  Each case uses its own principal or key, so cases do not see each other's counters.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <arpa/inet.h>
#include <hiredis/hiredis.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sys/socket.h>

#include "api_redis.h"
#include "lss_testproc.h"
#include "lss_util.h"

#include "lss_testredis.h"

#define S_TIMEOUT_MS  500
#define S_BOUND_MS    3000 /* a failing call returns well within this */
#define S_THREADS     50
#define S_PER_THREAD  6
#define S_SHARED_MAX  100
#define S_DEADLINE_MS 10000

static int s_setup (void **state)
{
    (void)state;
    return s_redis_setup ();
}

static int s_teardown (void **state)
{
    (void)state;
    return s_redis_teardown ();
}

static api_redis_t *s_open (const char *url)
{
    char err[256] = "";
    api_redis_t *r = api_redis_new (url, S_TIMEOUT_MS, err, sizeof err);
    if (!r)
        fprintf (stderr, "api_redis_new: %s\n", err);
    assert_non_null (r);
    return r;
}

/*  A plain hiredis connection to the private server, for looking behind the api. */
static redisContext *s_raw (void)
{
    api_redis_url_t u;
    char err[256];
    assert_int_equal (api_redis_url_parse (s_redis_url, &u, err, sizeof err), 0);
    redisContext *c = redisConnect (u.host, u.port);
    assert_non_null (c);
    assert_int_equal (c->err, 0);
    return c;
}

static long long s_raw_int (redisContext *c, const char *fmt, const char *arg)
{
    redisReply *r = redisCommand (c, fmt, arg);
    assert_non_null (r);
    assert_int_equal (r->type, REDIS_REPLY_INTEGER);
    long long v = r->integer;
    freeReplyObject (r);
    return v;
}

static void s_raw_ok (redisContext *c, const char *cmd)
{
    redisReply *r = redisCommand (c, cmd);
    assert_non_null (r);
    if (r->type == REDIS_REPLY_ERROR)
        fail_msg ("%s: %s", cmd, r->str);
    freeReplyObject (r);
}

static void s_unique (const char *what, char *out, size_t size)
{
    char id[16];
    assert_int_equal (lss_id_new ("", 8, id, sizeof id), 0);
    snprintf (out, size, "%s-%s", what, id);
}

/* ------------------------------------------------------------------ URLs */

static void test_url_good (void **state)
{
    (void)state;
    struct {
        const char *url;
        bool unix_socket;
        const char *host;
        int port;
        const char *path, *user, *password;
        int db;
    } cases[] = {
        {"redis://127.0.0.1", false, "127.0.0.1", 6379, "", "", "", 0},
        {"redis://localhost:6380/3", false, "localhost", 6380, "", "", "", 3},
        {"redis://cache.svc.cluster.local:1/", false, "cache.svc.cluster.local", 1, "", "", "",
         0},
        {"redis://:secret@h:7000/2", false, "h", 7000, "", "", "secret", 2},
        {"redis://alice:s%40cr%2Ft%3A@h", false, "h", 6379, "", "alice", "s@cr/t:", 0},
        {"redis://u:p@ss@h", false, "h", 6379, "", "u", "p@ss", 0},
        {"redis://[::1]:7001/15", false, "::1", 7001, "", "", "", 15},
        {"redis://[::1]", false, "::1", 6379, "", "", "", 0},
        {"redis://h/65535", false, "h", 6379, "", "", "", 65535},
        {"unix:///tmp/r.sock", true, "", 0, "/tmp/r.sock", "", "", 0},
        {"unix:///var/run/redis/redis.sock?db=5", true, "", 0, "/var/run/redis/redis.sock", "",
         "", 5},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        api_redis_url_t u;
        char err[256] = "";
        if (api_redis_url_parse (cases[i].url, &u, err, sizeof err) != 0)
            fail_msg ("%s: %s", cases[i].url, err);
        assert_int_equal (u.unix_socket, cases[i].unix_socket);
        assert_string_equal (u.host, cases[i].host);
        assert_int_equal (u.port, cases[i].port);
        assert_string_equal (u.path, cases[i].path);
        assert_string_equal (u.user, cases[i].user);
        assert_string_equal (u.password, cases[i].password);
        assert_int_equal (u.db, cases[i].db);
    }
}

static void test_url_bad (void **state)
{
    (void)state;
    char long_path[300] = "unix:///";
    memset (long_path + 8, 'p', 200);
    long_path[208] = '\0';
    const char *bad[] = {
        "",
        "http://h",
        "rediss://h",
        "redis://",
        "redis://:6379",
        "redis://h:0",
        "redis://h:65536",
        "redis://h:abc",
        "redis://h:",
        "redis://h:+1",
        "redis://h/abc",
        "redis://h/-1",
        "redis://h/65536",
        "redis://h/1/2",
        "redis://h?db=1",
        "redis://h#x",
        "redis://user@h",
        "redis://u:@h",
        "redis://h h",
        "redis://h;rm",
        "redis://[::1",
        "redis://[::1]x",
        "redis://[zz]:1",
        "redis://%zz:p@h",
        "redis://:p%00@h",
        "redis://:p%4@h",
        "redis://:p\x01@h",
        "unix://",
        "unix://relative.sock",
        "unix:///p?db=x",
        "unix:///p?db=",
        "unix:///p?foo=1",
        "unix:///p?db=1&x=2",
        long_path,
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        api_redis_url_t u;
        char err[256] = "";
        if (api_redis_url_parse (bad[i], &u, err, sizeof err) != -1)
            fail_msg ("accepted: %s", bad[i]);
        assert_true (err[0] != '\0');
        assert_null (api_redis_new (bad[i], S_TIMEOUT_MS, err, sizeof err));
    }
    api_redis_url_t u;
    char err[256] = "";
    assert_int_equal (api_redis_url_parse (NULL, &u, err, sizeof err), -1);
    /* the password never appears in a message */
    assert_int_equal (api_redis_url_parse ("redis://:hunter2@h:99999", &u, err, sizeof err),
                      -1);
    assert_null (strstr (err, "hunter2"));
    assert_null (api_redis_new (s_redis_url, 0, err, sizeof err));
}

/* ------------------------------------------------------------------ basics */

static void test_ping_tcp_and_unix (void **state)
{
    (void)state;
    api_redis_t *r = s_open (s_redis_url);
    assert_int_equal (api_redis_ping (r), 0);
    api_redis_destroy (&r);
    assert_null (r);
    r = s_open (s_redis_unix_url);
    assert_int_equal (api_redis_ping (r), 0);
    api_redis_destroy (&r);
    api_redis_destroy (&r); /* NULL is fine */
}

static void s_rl (api_redis_t *r, const char *principal, int64_t limit, int64_t window,
                  int64_t now, bool allowed, int64_t remaining, int64_t reset, int64_t retry)
{
    api_rl_result_t out;
    memset (&out, 0x5a, sizeof out);
    assert_int_equal (api_redis_rate_limit (r, "default", principal, limit, window, now, &out),
                      0);
    assert_int_equal (out.allowed, allowed);
    assert_int_equal (out.limit, limit);
    assert_int_equal (out.remaining, remaining);
    assert_int_equal (out.reset_s, reset);
    assert_int_equal (out.retry_after_s, retry);
}

static void test_rate_limit_exact (void **state)
{
    (void)state;
    api_redis_t *r = s_open (s_redis_url);
    char p[64];
    s_unique ("key", p, sizeof p);
    /* window [1000, 1010): three allowed, then refused until 1010 */
    s_rl (r, p, 3, 10, 1000, true, 2, 1010, 0);
    s_rl (r, p, 3, 10, 1003, true, 1, 1010, 0);
    s_rl (r, p, 3, 10, 1004, true, 0, 1010, 0);
    s_rl (r, p, 3, 10, 1004, false, 0, 1010, 6);
    s_rl (r, p, 3, 10, 1009, false, 0, 1010, 1);
    /* rollover */
    s_rl (r, p, 3, 10, 1010, true, 2, 1020, 0);
    s_rl (r, p, 3, 10, 1019, true, 1, 1020, 0);
    s_rl (r, p, 3, 10, 1025, true, 2, 1030, 0);
    /* the counter behind it, and its expiry: within the window plus the slack */
    redisContext *c = s_raw ();
    char key[128];
    snprintf (key, sizeof key, "lss:rl:default:%s:1020", p);
    redisReply *g = redisCommand (c, "GET %s", key);
    assert_non_null (g);
    assert_int_equal (g->type, REDIS_REPLY_STRING);
    assert_string_equal (g->str, "1");
    freeReplyObject (g);
    long long pttl = s_raw_int (c, "PTTL %s", key);
    assert_true (pttl > 0 && pttl <= 5000 + 5000);
    /* another class is another counter */
    api_rl_result_t out;
    assert_int_equal (api_redis_rate_limit (r, "execute_code", p, 1, 10, 1025, &out), 0);
    assert_true (out.allowed);
    assert_int_equal (api_redis_rate_limit (r, "execute_code", p, 1, 10, 1025, &out), 0);
    assert_false (out.allowed);
    assert_int_equal (out.retry_after_s, 5);
    redisFree (c);
    api_redis_destroy (&r);
}

static void test_rate_limit_bad_args (void **state)
{
    (void)state;
    api_redis_t *r = s_open (s_redis_url);
    api_rl_result_t out = {.limit = 77};
    assert_int_equal (api_redis_rate_limit (r, "Default", "p", 1, 10, 1, &out), -1);
    assert_int_equal (api_redis_rate_limit (r, "", "p", 1, 10, 1, &out), -1);
    assert_int_equal (api_redis_rate_limit (r, NULL, "p", 1, 10, 1, &out), -1);
    assert_int_equal (api_redis_rate_limit (r, "a:b", "p", 1, 10, 1, &out), -1);
    assert_int_equal (api_redis_rate_limit (r, "default", "", 1, 10, 1, &out), -1);
    assert_int_equal (api_redis_rate_limit (r, "default", "a b", 1, 10, 1, &out), -1);
    assert_int_equal (api_redis_rate_limit (r, "default", "a\nb", 1, 10, 1, &out), -1);
    assert_int_equal (api_redis_rate_limit (r, "default", "p", 0, 10, 1, &out), -1);
    assert_int_equal (api_redis_rate_limit (r, "default", "p", 1, 0, 1, &out), -1);
    assert_int_equal (api_redis_rate_limit (r, "default", "p", 1, 10, -1, &out), -1);
    assert_int_equal (out.limit, 77); /* untouched */
    /* a counter that is not an integer (someone else's key) is an error, not a crash */
    char p[64], key[128];
    s_unique ("junk", p, sizeof p);
    snprintf (key, sizeof key, "lss:rl:default:%s:0", p);
    redisContext *c = s_raw ();
    redisReply *x = redisCommand (c, "SET %s notanumber", key);
    freeReplyObject (x);
    assert_int_equal (api_redis_rate_limit (r, "default", p, 5, 10, 3, &out), -1);
    assert_int_equal (api_redis_ping (r), 0); /* an error reply does not cost the connection */
    redisFree (c);
    api_redis_destroy (&r);
}

static void test_rate_limit_shared_and_noscript (void **state)
{
    (void)state;
    api_redis_t *a = s_open (s_redis_url), *b = s_open (s_redis_unix_url);
    char p[64];
    s_unique ("shared", p, sizeof p);
    s_rl (a, p, 4, 60, 120, true, 3, 180, 0);
    s_rl (b, p, 4, 60, 121, true, 2, 180, 0);
    /* the script cache is emptied behind the handles' backs: NOSCRIPT, then EVAL */
    redisContext *c = s_raw ();
    s_raw_ok (c, "SCRIPT FLUSH");
    s_rl (a, p, 4, 60, 122, true, 1, 180, 0);
    s_rl (b, p, 4, 60, 123, true, 0, 180, 0);
    s_rl (a, p, 4, 60, 124, false, 0, 180, 56);
    redisFree (c);
    api_redis_destroy (&a);
    api_redis_destroy (&b);
}

typedef struct {
    const char *principal;
    int allowed;
    int failed;
} s_hammer_t;

static void *s_hammer (void *arg)
{
    s_hammer_t *h = arg;
    char err[256];
    api_redis_t *r = api_redis_new (s_redis_url, S_DEADLINE_MS, err, sizeof err);
    for (int i = 0; i < S_PER_THREAD; i++) {
        api_rl_result_t out;
        if (!r || api_redis_rate_limit (r, "create_sandbox", h->principal, S_SHARED_MAX, 60,
                                        6000, &out) != 0)
            h->failed++;
        else if (out.allowed)
            h->allowed++;
    }
    api_redis_destroy (&r);
    return NULL;
}

static void test_rate_limit_threads (void **state)
{
    (void)state;
    char p[64];
    s_unique ("hammer", p, sizeof p);
    pthread_t th[S_THREADS];
    s_hammer_t h[S_THREADS];
    for (int i = 0; i < S_THREADS; i++) {
        h[i] = (s_hammer_t){.principal = p};
        assert_int_equal (pthread_create (&th[i], NULL, s_hammer, &h[i]), 0);
    }
    int allowed = 0, failed = 0;
    for (int i = 0; i < S_THREADS; i++) {
        pthread_join (th[i], NULL);
        allowed += h[i].allowed;
        failed += h[i].failed;
    }
    assert_int_equal (failed, 0);
    /* 300 requests against a limit of 100: exactly 100 pass, never one more */
    assert_int_equal (allowed, S_SHARED_MAX);
    redisContext *c = s_raw ();
    char key[128];
    snprintf (key, sizeof key, "lss:rl:create_sandbox:%s:6000", p);
    redisReply *g = redisCommand (c, "GET %s", key);
    assert_non_null (g);
    assert_string_equal (g->str, "300");
    freeReplyObject (g);
    redisFree (c);
}

/* ------------------------------------------------------------------ cache */

static void test_cache (void **state)
{
    (void)state;
    api_redis_t *r = s_open (s_redis_url);
    char k[64], *v = (char *)"untouched";
    s_unique ("user", k, sizeof k);
    assert_int_equal (api_redis_cache_get (r, k, &v), 0);
    assert_null (v);
    assert_int_equal (api_redis_cache_set (r, k, "{\"id\":\"usr-1\"}", 30000), 0);
    assert_int_equal (api_redis_cache_get (r, k, &v), 1);
    assert_string_equal (v, "{\"id\":\"usr-1\"}");
    free (v);
    /* stored under the prefix, with the ttl */
    redisContext *c = s_raw ();
    char full[128];
    snprintf (full, sizeof full, "lss:c:%s", k);
    long long pttl = s_raw_int (c, "PTTL %s", full);
    assert_true (pttl > 0 && pttl <= 30000);
    /* overwrite, delete, delete again */
    assert_int_equal (api_redis_cache_set (r, k, "", 30000), 0);
    assert_int_equal (api_redis_cache_get (r, k, &v), 1);
    assert_string_equal (v, "");
    free (v);
    assert_int_equal (api_redis_cache_del (r, k), 0);
    assert_int_equal (api_redis_cache_get (r, k, &v), 0);
    assert_int_equal (api_redis_cache_del (r, k), 0);
    /* a short ttl expires (waited for as a condition with a deadline) */
    assert_int_equal (api_redis_cache_set (r, k, "soon", 20), 0);
    long long deadline = tp_now_ms () + S_DEADLINE_MS;
    int got = 1;
    while (got == 1 && tp_now_ms () < deadline) {
        got = api_redis_cache_get (r, k, &v);
        free (v);
        v = NULL;
    }
    assert_int_equal (got, 0);
    /* size limits and bad arguments */
    char *big = malloc (API_REDIS_VALUE_MAX + 2);
    memset (big, 'v', API_REDIS_VALUE_MAX + 1);
    big[API_REDIS_VALUE_MAX] = '\0';
    assert_int_equal (api_redis_cache_set (r, k, big, 1000), 0);
    assert_int_equal (api_redis_cache_get (r, k, &v), 1);
    assert_int_equal (strlen (v), API_REDIS_VALUE_MAX);
    free (v);
    big[API_REDIS_VALUE_MAX] = 'v';
    big[API_REDIS_VALUE_MAX + 1] = '\0';
    assert_int_equal (api_redis_cache_set (r, k, big, 1000), -1);
    char longkey[API_REDIS_KEY_MAX + 8];
    memset (longkey, 'k', sizeof longkey - 1);
    longkey[sizeof longkey - 1] = '\0';
    assert_int_equal (api_redis_cache_set (r, longkey, "x", 1000), -1);
    assert_int_equal (api_redis_cache_get (r, longkey, &v), -1);
    assert_int_equal (api_redis_cache_set (r, "", "x", 1000), -1);
    assert_int_equal (api_redis_cache_set (r, "a\nb", "x", 1000), -1);
    assert_int_equal (api_redis_cache_set (r, k, NULL, 1000), -1);
    assert_int_equal (api_redis_cache_set (r, k, "x", 0), -1);
    assert_int_equal (api_redis_cache_set (r, k, "x", -5), -1);
    assert_int_equal (api_redis_cache_del (r, ""), -1);
    /* what Redis holds there is not ours: too big, a NUL inside, another type */
    redisReply *x = redisCommand (c, "SET %s %b", full, big, (size_t)API_REDIS_VALUE_MAX + 1);
    freeReplyObject (x);
    assert_int_equal (api_redis_cache_get (r, k, &v), -1);
    assert_null (v);
    x = redisCommand (c, "SET %s %b", full, "a\0b", (size_t)3);
    freeReplyObject (x);
    assert_int_equal (api_redis_cache_get (r, k, &v), -1);
    x = redisCommand (c, "DEL %s", full);
    freeReplyObject (x);
    x = redisCommand (c, "LPUSH %s a", full);
    freeReplyObject (x);
    assert_int_equal (api_redis_cache_get (r, k, &v), -1);
    assert_int_equal (api_redis_cache_del (r, k), 0);
    assert_int_equal (api_redis_ping (r), 0);
    free (big);
    redisFree (c);
    api_redis_destroy (&r);
}

static void test_select_db_and_auth (void **state)
{
    (void)state;
    char url[600], k[64], full[128];
    s_unique ("db", k, sizeof k);
    snprintf (full, sizeof full, "lss:c:%s", k);
    snprintf (url, sizeof url, "%s/3", s_redis_url);
    api_redis_t *r = s_open (url);
    assert_int_equal (api_redis_cache_set (r, k, "in3", 10000), 0);
    api_redis_destroy (&r);
    redisContext *c = s_raw ();
    assert_int_equal (s_raw_int (c, "EXISTS %s", full), 0); /* not in db 0 */
    s_raw_ok (c, "SELECT 3");
    assert_int_equal (s_raw_int (c, "EXISTS %s", full), 1);
    s_raw_ok (c, "SELECT 0");
    snprintf (url, sizeof url, "%s?db=3", s_redis_unix_url);
    r = s_open (url);
    char *v = NULL;
    assert_int_equal (api_redis_cache_get (r, k, &v), 1);
    assert_string_equal (v, "in3");
    free (v);
    api_redis_destroy (&r);

    /* a password, then an ACL user; both removed again at the end */
    s_raw_ok (c, "ACL SETUSER alice on >al1ce-pw ~* &* +@all");
    s_raw_ok (c, "CONFIG SET requirepass s3cret");
    api_redis_url_t u;
    char err[256];
    assert_int_equal (api_redis_url_parse (s_redis_url, &u, err, sizeof err), 0);
    snprintf (url, sizeof url, "redis://:wrong@127.0.0.1:%d", u.port);
    r = s_open (url);
    assert_int_equal (api_redis_ping (r), -1);
    api_redis_destroy (&r);
    snprintf (url, sizeof url, "redis://%s", strstr (s_redis_url, "//") + 2);
    r = s_open (url); /* no password at all */
    assert_int_equal (api_redis_ping (r), -1);
    api_redis_destroy (&r);
    snprintf (url, sizeof url, "redis://:s3cret@127.0.0.1:%d/3", u.port);
    r = s_open (url);
    assert_int_equal (api_redis_ping (r), 0);
    assert_int_equal (api_redis_cache_get (r, k, &v), 1);
    free (v);
    api_redis_destroy (&r);
    snprintf (url, sizeof url, "redis://alice:al1ce-pw@127.0.0.1:%d", u.port);
    r = s_open (url);
    assert_int_equal (api_redis_ping (r), 0);
    api_redis_destroy (&r);
    redisReply *x = redisCommand (c, "CONFIG SET requirepass %s", "");
    assert_non_null (x);
    assert_int_equal (x->type, REDIS_REPLY_STATUS);
    freeReplyObject (x);
    s_raw_ok (c, "ACL DELUSER alice");
    redisFree (c);
}

/* ------------------------------------------------------------------ outages */

static void test_redis_down_and_back (void **state)
{
    (void)state;
    api_redis_t *r = s_open (s_redis_url);
    assert_int_equal (api_redis_ping (r), 0);
    assert_int_equal (s_redis_down (), 0);
    char p[64], *v = NULL;
    s_unique ("outage", p, sizeof p);
    api_rl_result_t out = {.limit = 9};
    for (int i = 0; i < 3; i++) {
        long long t0 = tp_now_ms ();
        assert_int_equal (api_redis_ping (r), -1);
        assert_int_equal (api_redis_rate_limit (r, "default", p, 5, 60, 60, &out), -1);
        assert_int_equal (api_redis_cache_get (r, p, &v), -1);
        assert_int_equal (api_redis_cache_set (r, p, "x", 1000), -1);
        assert_int_equal (api_redis_cache_del (r, p), -1);
        assert_true (tp_now_ms () - t0 < S_BOUND_MS);
    }
    assert_int_equal (out.limit, 9);
    assert_null (v);
    /* a handle made while Redis is down is still a handle */
    api_redis_t *late = s_open (s_redis_unix_url);
    assert_int_equal (api_redis_ping (late), -1);
    assert_int_equal (s_redis_up (), 0);
    /* the next call connects again (the restarted server has no scripts cached either) */
    assert_int_equal (api_redis_ping (r), 0);
    s_rl (r, p, 5, 60, 60, true, 4, 120, 0);
    s_rl (late, p, 5, 60, 61, true, 3, 120, 0);
    api_redis_destroy (&r);
    api_redis_destroy (&late);
}

/* ------------------------------------------------------------------ a hostile server */

typedef struct {
    pthread_mutex_t lock;
    int fd; /* listening */
    int port;
    const char *answer; /* bytes sent after the first request arrives */
    size_t answer_len;
    bool hang_up; /* close right after answering (else: wait for the client to go) */
    bool stop;
    int served;
} s_hostile_t;

static void *s_hostile_main (void *arg)
{
    s_hostile_t *h = arg;
    for (;;) {
        struct pollfd pfd = {h->fd, POLLIN, 0};
        pthread_mutex_lock (&h->lock);
        bool stop = h->stop;
        pthread_mutex_unlock (&h->lock);
        if (stop)
            break;
        if (poll (&pfd, 1, 50) <= 0)
            continue;
        int c = accept (h->fd, NULL, NULL);
        if (c < 0)
            continue;
        pthread_mutex_lock (&h->lock);
        const char *answer = h->answer;
        size_t len = h->answer_len;
        bool hang_up = h->hang_up;
        pthread_mutex_unlock (&h->lock);
        char buf[4096];
        struct pollfd cp = {c, POLLIN, 0};
        if (poll (&cp, 1, S_DEADLINE_MS) > 0 && read (c, buf, sizeof buf) > 0 && len > 0) {
            ssize_t w = write (c, answer, len);
            (void)w;
        }
        /* then wait (bounded) for the client to go away, unless told to hang up */
        long long deadline = tp_now_ms () + S_DEADLINE_MS;
        while (!hang_up && tp_now_ms () < deadline) {
            if (poll (&cp, 1, 100) > 0 && read (c, buf, sizeof buf) <= 0)
                break;
        }
        close (c);
        pthread_mutex_lock (&h->lock);
        h->served++;
        pthread_mutex_unlock (&h->lock);
    }
    return NULL;
}

typedef enum { S_OP_PING, S_OP_RL, S_OP_GET, S_OP_SET, S_OP_DEL } s_op_t;

static int s_against (s_hostile_t *h, const char *answer, size_t len, bool hang_up, s_op_t op)
{
    pthread_mutex_lock (&h->lock);
    h->answer = answer;
    h->answer_len = len;
    h->hang_up = hang_up;
    pthread_mutex_unlock (&h->lock);
    char url[64], err[256];
    snprintf (url, sizeof url, "redis://127.0.0.1:%d", h->port);
    api_redis_t *r = api_redis_new (url, 200, err, sizeof err);
    assert_non_null (r);
    api_rl_result_t out = {.limit = 42};
    char *v = NULL;
    int rc = -9;
    long long t0 = tp_now_ms ();
    switch (op) {
    case S_OP_PING:
        rc = api_redis_ping (r);
        break;
    case S_OP_RL:
        rc = api_redis_rate_limit (r, "default", "p", 5, 60, 60, &out);
        if (rc != 0)
            assert_int_equal (out.limit, 42);
        break;
    case S_OP_GET:
        rc = api_redis_cache_get (r, "k", &v);
        if (rc != 1)
            assert_null (v);
        free (v);
        break;
    case S_OP_SET:
        rc = api_redis_cache_set (r, "k", "v", 1000);
        break;
    case S_OP_DEL:
        rc = api_redis_cache_del (r, "k");
        break;
    }
    assert_true (tp_now_ms () - t0 < S_BOUND_MS);
    api_redis_destroy (&r);
    return rc;
}

#define S_ANS(lit) (lit), sizeof (lit) - 1

static void test_hostile_server (void **state)
{
    (void)state;
    s_hostile_t h = {.lock = PTHREAD_MUTEX_INITIALIZER};
    h.fd = socket (AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true (h.fd >= 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl (INADDR_LOOPBACK)};
    assert_int_equal (bind (h.fd, (struct sockaddr *)&sa, sizeof sa), 0);
    assert_int_equal (listen (h.fd, 8), 0);
    socklen_t sl = sizeof sa;
    assert_int_equal (getsockname (h.fd, (struct sockaddr *)&sa, &sl), 0);
    h.port = ntohs (sa.sin_port);
    pthread_t th;
    assert_int_equal (pthread_create (&th, NULL, s_hostile_main, &h), 0);

    /* controls: well-behaved answers work */
    assert_int_equal (s_against (&h, S_ANS ("+PONG\r\n"), false, S_OP_PING), 0);
    assert_int_equal (s_against (&h, S_ANS ("*2\r\n:1\r\n:60000\r\n"), false, S_OP_RL), 0);
    assert_int_equal (s_against (&h, S_ANS ("$1\r\nv\r\n"), false, S_OP_GET), 1);
    assert_int_equal (s_against (&h, S_ANS ("$-1\r\n"), false, S_OP_GET), 0);
    assert_int_equal (s_against (&h, S_ANS ("+OK\r\n"), false, S_OP_SET), 0);
    assert_int_equal (s_against (&h, S_ANS (":1\r\n"), false, S_OP_DEL), 0);

    char deep[256];
    size_t dn = 0;
    for (int i = 0; i < 20; i++)
        dn += (size_t)snprintf (deep + dn, sizeof deep - dn, "*1\r\n");
    snprintf (deep + dn, sizeof deep - dn, ":1\r\n");
    struct {
        const char *bytes;
        size_t len;
        bool hang_up;
        s_op_t op;
    } bad[] = {
        {S_ANS ("garbage\r\n"), false, S_OP_PING},
        {S_ANS ("+PONG"), false, S_OP_PING},              /* never finished: timeout */
        {S_ANS (""), false, S_OP_PING},                   /* silent */
        {S_ANS (""), true, S_OP_PING},                    /* hangs up */
        {S_ANS ("+PONG\r\n+PONG\r\n"), false, S_OP_PING}, /* answers twice */
        {S_ANS (":1\r\n"), false, S_OP_PING},
        {S_ANS ("-ERR no\r\n"), false, S_OP_PING},
        {S_ANS ("$-5\r\n"), false, S_OP_PING},
        {S_ANS ("*-1\r\n"), false, S_OP_PING},
        {S_ANS ("*100000000\r\n"), false, S_OP_PING}, /* huge array: refused while parsing */
        {S_ANS ("*2147483647\r\n"), false, S_OP_PING},
        {S_ANS ("$999999999\r\n"), false, S_OP_GET}, /* huge string, never sent */
        {S_ANS ("$70000\r\nabc"), true, S_OP_GET},
        {S_ANS (":99999999999999999999999\r\n"), false, S_OP_DEL},
        {S_ANS ("*2\r\n:1\r\n"), true, S_OP_RL}, /* cut short */
        {S_ANS ("*2\r\n$1\r\na\r\n:1\r\n"), false, S_OP_RL},
        {S_ANS ("*3\r\n:1\r\n:2\r\n:3\r\n"), false, S_OP_RL},
        {S_ANS ("*2\r\n:0\r\n:1\r\n"), false, S_OP_RL},
        {S_ANS ("*2\r\n:-4\r\n:1\r\n"), false, S_OP_RL},
        {S_ANS ("*2\r\n*1\r\n:1\r\n:1\r\n"), false, S_OP_RL},
        {S_ANS (":5\r\n"), false, S_OP_RL},
        {S_ANS ("-NOSCRIPT x\r\n"), true, S_OP_RL},  /* then gone before the EVAL */
        {S_ANS ("-NOSCRIPT x\r\n"), false, S_OP_RL}, /* then silent */
        {S_ANS (":1\r\n"), false, S_OP_GET},
        {S_ANS ("+OK\r\n"), false, S_OP_GET},
        {S_ANS ("$3\r\na\0b\r\n"), false, S_OP_GET},
        {S_ANS ("*1\r\n$1\r\nv\r\n"), false, S_OP_GET},
        {S_ANS ("+NOTOK\r\n"), false, S_OP_SET},
        {S_ANS ("$2\r\nOK\r\n"), false, S_OP_SET},
        {S_ANS ("+OK\r\n"), false, S_OP_DEL},
        {deep, strlen (deep), false, S_OP_DEL},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int rc = s_against (&h, bad[i].bytes, bad[i].len, bad[i].hang_up, bad[i].op);
        if (rc != -1)
            fail_msg ("answer %zu accepted (rc %d)", i, rc);
    }
    pthread_mutex_lock (&h.lock);
    h.stop = true;
    pthread_mutex_unlock (&h.lock);
    pthread_join (th, NULL);
    close (h.fd);
    assert_true (h.served >= (int)(sizeof bad / sizeof bad[0]));
}

int main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_url_good),
        cmocka_unit_test (test_url_bad),
        cmocka_unit_test (test_ping_tcp_and_unix),
        cmocka_unit_test (test_rate_limit_exact),
        cmocka_unit_test (test_rate_limit_bad_args),
        cmocka_unit_test (test_rate_limit_shared_and_noscript),
        cmocka_unit_test (test_rate_limit_threads),
        cmocka_unit_test (test_cache),
        cmocka_unit_test (test_select_db_and_auth),
        cmocka_unit_test (test_hostile_server),
        cmocka_unit_test (test_redis_down_and_back),
    };
    if (getenv ("TEST_FILTER"))
        cmocka_set_test_filter (getenv ("TEST_FILTER"));
    return cmocka_run_group_tests (tests, s_setup, s_teardown);
}
