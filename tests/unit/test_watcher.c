/*  Tests for lss-watcher as a real process against a throw-away PostgreSQL: object events
 *  on the PUB, the work queue through lss_queue_client (dirty keys, exclusivity, backoff,
 *  requeue, leases, label membership, resync), relist after compaction, leader failover
 *  after kill -9, malformed requests, SIGTERM. Also watcher_keys_of directly.
 *
 *  Each case starts its watcher(s) in its own mkdtemp directory (ipc endpoints, port
 *  file, captured stderr) and uses its own namespace; the teardown kills what is left,
 *  deletes every object and removes the directory. Waits poll with deadlines.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <curl/curl.h>

#include <czmq.h>

#include "lss_bus.h"
#include "lss_log.h"
#include "lss_queue_client.h"
#include "lss_store.h"
#include "lss_testproc.h"
#include "lss_testpg.h"
#include "lss_util.h"
#include "watcher_informer.h"

#define S_START_MS 20000
#define S_EVENT_MS 5000

typedef struct {
    char dir[64];
    char port_file[128];
    char err_file[128];
    char pub_ep[160];
    char queue_ep[160];
    tp_proc_t proc;
    int port;
} s_w_t;

static s_w_t s_w[2];
static lss_store_t *s_st;
static zsock_t *s_sub;
static int s_probe;

static void s_sleep_ms (long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000};
    nanosleep (&ts, NULL); /* poll interval, not synchronisation */
}

static void s_read_file (const char *path, char *out, size_t size)
{
    out[0] = '\0';
    FILE *f = fopen (path, "r");
    if (!f)
        return;
    size_t n = fread (out, 1, size - 1, f);
    out[n] = '\0';
    fclose (f);
}

//  --------------------------------------------------------------------------
//  The watcher process

static void s_start (s_w_t *w, const char *const *extra)
{
    memset (w, 0, sizeof *w);
    snprintf (w->dir, sizeof w->dir, "/tmp/lss-test-watcher-XXXXXX");
    assert_non_null (mkdtemp (w->dir));
    snprintf (w->port_file, sizeof w->port_file, "%s/port", w->dir);
    snprintf (w->err_file, sizeof w->err_file, "%s/stderr", w->dir);
    snprintf (w->pub_ep, sizeof w->pub_ep, "ipc://%s/pub", w->dir);
    snprintf (w->queue_ep, sizeof w->queue_ep, "ipc://%s/queue", w->dir);
    static char env[8][600];
    snprintf (env[0], sizeof env[0], "LSS_TEST_PORT_FILE=%s", w->port_file);
    snprintf (env[1], sizeof env[1], "LSS_STORE_DSN=%s", s_dsn);
    snprintf (env[2], sizeof env[2], "LSS_WATCHER_PUB_ENDPOINT=%s", w->pub_ep);
    snprintf (env[3], sizeof env[3], "LSS_WATCHER_QUEUE_ENDPOINT=%s", w->queue_ep);
    snprintf (env[4], sizeof env[4], "LSS_WATCHER_ADMIN_LISTEN=127.0.0.1:0");
    snprintf (env[5], sizeof env[5], "LSS_WATCHER_LEADER_CHECK=200");
    char *envp[512];
    size_t n = 0;
    for (char **e = environ; *e && n < 400; e++) {
        if (strncmp (*e, "LSS_", 4) == 0 && strncmp (*e, "LSS_BUILD_DIR=", 14) != 0 &&
            strncmp (*e, "LSS_ROOT=", 9) != 0)
            continue;
        envp[n++] = *e;
    }
    for (size_t i = 0; i < 6; i++)
        envp[n++] = env[i];
    for (size_t i = 0; extra && extra[i]; i++)
        envp[n++] = (char *)extra[i];
    envp[n] = NULL;
    char bin[PATH_MAX];
    tp_build_path (bin, sizeof bin, "bin/lss-watcher");
    char *argv[] = {bin, NULL};
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init (&fa);
    posix_spawn_file_actions_addopen (&fa, 1, "/dev/null", O_WRONLY, 0);
    posix_spawn_file_actions_addopen (&fa, 2, w->err_file, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    w->proc.out_fd = -1;
    int rc = posix_spawn (&w->proc.pid, bin, &fa, NULL, argv, envp);
    posix_spawn_file_actions_destroy (&fa);
    if (rc != 0)
        fail_msg ("cannot spawn %s: %s", bin, strerror (rc));
}

static bool s_alive (s_w_t *w)
{
    int status;
    if (w->proc.pid > 0 && waitpid (w->proc.pid, &status, WNOHANG) == w->proc.pid) {
        w->proc.pid = 0;
        return false;
    }
    return w->proc.pid > 0;
}

typedef struct {
    char *data;
    size_t len, size;
} s_body_t;

static size_t s_on_body (char *data, size_t size, size_t n, void *arg)
{
    s_body_t *body = arg;
    size_t len = size * n;
    if (body->len + len < body->size) {
        memcpy (body->data + body->len, data, len);
        body->len += len;
        body->data[body->len] = '\0';
    }
    return len;
}

static long s_http_get (int port, const char *path, char *text, size_t size)
{
    CURL *curl = curl_easy_init ();
    assert_non_null (curl);
    char url[128];
    snprintf (url, sizeof url, "http://127.0.0.1:%d%s", port, path);
    s_body_t body = {text, 0, size};
    text[0] = '\0';
    curl_easy_setopt (curl, CURLOPT_URL, url);
    curl_easy_setopt (curl, CURLOPT_TIMEOUT_MS, 2000L);
    curl_easy_setopt (curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt (curl, CURLOPT_WRITEFUNCTION, s_on_body);
    curl_easy_setopt (curl, CURLOPT_WRITEDATA, &body);
    long status = 0;
    if (curl_easy_perform (curl) == CURLE_OK)
        curl_easy_getinfo (curl, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_cleanup (curl);
    return status;
}

/*  Waits until /readyz is 200 with a body containing want ("leader" / "standby"). */
static void s_wait_ready (s_w_t *w, const char *want)
{
    long long deadline = tp_now_ms () + S_START_MS;
    char text[256];
    while (!w->port) {
        s_read_file (w->port_file, text, sizeof text);
        if (strchr (text, '\n'))
            w->port = (int)strtol (text, NULL, 10);
        else {
            if (!s_alive (w)) {
                char err[8192];
                s_read_file (w->err_file, err, sizeof err);
                fail_msg ("lss-watcher exited; stderr:\n%s", err);
            }
            if (tp_now_ms () > deadline)
                fail_msg ("no port file");
            s_sleep_ms (10);
        }
    }
    for (;;) {
        long st = s_http_get (w->port, "/readyz", text, sizeof text);
        if (st == 200 && strstr (text, want))
            return;
        assert_true (s_alive (w));
        if (tp_now_ms () > deadline)
            fail_msg ("/readyz never said %s (last %ld %s)", want, st, text);
        s_sleep_ms (20);
    }
}

/*  A metric's value from /metrics (the first line starting with series), or -1. */
static double s_metric (s_w_t *w, const char *series)
{
    static char text[1 << 20];
    if (s_http_get (w->port, "/metrics", text, sizeof text) != 200)
        return -1;
    for (char *line = text; line && *line;) {
        char *nl = strchr (line, '\n');
        if (strncmp (line, series, strlen (series)) == 0 && line[strlen (series)] == ' ')
            return strtod (line + strlen (series) + 1, NULL);
        line = nl ? nl + 1 : NULL;
    }
    return -1;
}

//  --------------------------------------------------------------------------
//  Store helpers

static json_t *s_obj (const char *kind, const char *ns, const char *name)
{
    json_t *o = json_pack ("{s:s, s:s, s:{s:s}, s:{s:i}}", "apiVersion",
                           strcmp (kind, "Pod") == 0 ? "v1" : "llmsafespace.dev/v1", "kind",
                           kind, "metadata", "name", name, "spec", "n", 0);
    if (ns)
        json_object_set_new (json_object_get (o, "metadata"), "namespace", json_string (ns));
    return o;
}

static void s_create_obj (json_t *o)
{
    char err[LSS_STORE_ERR_SIZE] = "";
    int rc = lss_store_create (s_st, o, NULL, err, sizeof err);
    if (rc != LSS_STORE_OK)
        fail_msg ("create: %s", err);
    json_decref (o);
}

static void s_create (const char *kind, const char *ns, const char *name)
{
    s_create_obj (s_obj (kind, ns, name));
}

static void s_create_labelled (const char *kind, const char *ns, const char *name,
                               const char *label, const char *value)
{
    json_t *o = s_obj (kind, ns, name);
    json_object_set_new (json_object_get (o, "metadata"), "labels",
                         json_pack ("{s:s}", label, value));
    s_create_obj (o);
}

static void s_modify (const char *kind, const char *ns, const char *name, int n)
{
    char err[LSS_STORE_ERR_SIZE] = "";
    json_t *o = NULL;
    assert_int_equal (lss_store_get (s_st, kind, ns, name, &o, err, sizeof err), LSS_STORE_OK);
    json_object_set_new (json_object_get (o, "spec"), "n", json_integer (n));
    int rc = lss_store_update (s_st, o, NULL, err, sizeof err);
    if (rc != LSS_STORE_OK)
        fail_msg ("update: %s", err);
    json_decref (o);
}

static void s_delete (const char *kind, const char *ns, const char *name)
{
    char err[LSS_STORE_ERR_SIZE] = "";
    assert_int_equal (lss_store_delete (s_st, kind, ns, name, NULL, err, sizeof err),
                      LSS_STORE_OK);
}

static void s_delete_everything (void)
{
    char err[LSS_STORE_ERR_SIZE];
    for (size_t k = 0; k < WATCHER_KIND_COUNT; k++) {
        json_t *list = NULL;
        if (lss_store_list (s_st, watcher_kinds[k], NULL, NULL, LSS_STORE_LIST_MAX_LIMIT, NULL,
                            &list, err, sizeof err) != LSS_STORE_OK)
            continue;
        size_t i;
        json_t *it;
        json_array_foreach (json_object_get (list, "items"), i, it)
        {
            json_t *md = json_object_get (it, "metadata");
            lss_store_delete (
                s_st, watcher_kinds[k], json_string_value (json_object_get (md, "namespace")),
                json_string_value (json_object_get (md, "name")), NULL, err, sizeof err);
        }
        json_decref (list);
    }
}

//  --------------------------------------------------------------------------
//  Events

/*  Waits for an event on topic; checks its envelope type and body. */
static bool s_event (zsock_t *sub, const char *topic, int timeout_ms)
{
    long long deadline = tp_now_ms () + timeout_ms;
    for (;;) {
        long long left = deadline - tp_now_ms ();
        if (left <= 0)
            return false;
        zmq_pollitem_t item = {zsock_resolve (sub), 0, ZMQ_POLLIN, 0};
        if (zmq_poll (&item, 1, (long)left) <= 0)
            continue;
        char got[LSS_BUS_TOPIC_MAX];
        lss_envelope_t env;
        lss_msg_kind_t kind;
        void *body = NULL;
        char err[256];
        int rc = lss_bus_recv (sub, NULL, got, sizeof got, &env, &kind, &body, err, sizeof err);
        assert_int_equal (rc, 0);
        assert_int_equal (kind, LSS_MSG_object_event);
        bool match = strcmp (got, topic) == 0;
        if (match) {
            lss_object_event_t *ev = body;
            /* topic = <kind lower>.<verb>.<ns>.<name>; type = <kind lower>.<verb> */
            assert_memory_equal (topic, env.type, strlen (env.type));
            assert_int_equal (topic[strlen (env.type)], '.');
            assert_non_null (ev->name);
            assert_non_null (strstr (topic, ev->name));
            assert_non_null (ev->resource_version);
            assert_string_equal (json_string_value (json_object_get (
                                     json_object_get (ev->object, "metadata"), "name")),
                                 ev->name);
        }
        lss_proto_body_free (kind, &body);
        if (match)
            return true;
    }
}

/*  Connects a SUB to endpoints and waits until it demonstrably receives (probe objects:
 *  cluster-scoped RuntimeEnvironments, whose topic has an empty namespace). */
static zsock_t *s_subscribe (const char *endpoints)
{
    zsock_t *sub = lss_bus_socket_new (ZMQ_SUB, endpoints, NULL);
    assert_non_null (sub);
    zsock_set_subscribe (sub, "");
    for (int i = 0; i < 50; i++) {
        char name[32], topic[96];
        snprintf (name, sizeof name, "probe-%d", ++s_probe);
        s_create ("RuntimeEnvironment", NULL, name);
        snprintf (topic, sizeof topic, "runtimeenvironment.added..%s", name);
        if (s_event (sub, topic, 300))
            return sub;
    }
    fail_msg ("the subscriber never received an event");
    return NULL;
}

//  --------------------------------------------------------------------------
//  Queue helpers

static lss_queue_client_t *s_client (const char *eps, const char *queue, const char *worker)
{
    lss_queue_client_t *c = lss_queue_client_new (eps, queue, worker, NULL);
    assert_non_null (c);
    return c;
}

/*  get, retrying past not_leader answers, until a key or the deadline. */
static int s_get (lss_queue_client_t *c, int wait_ms, char *key)
{
    long long deadline = tp_now_ms () + wait_ms;
    for (;;) {
        long long left = deadline - tp_now_ms ();
        int rc =
            lss_queue_client_get (c, left > 0 ? (int)left : 0, key, LSS_WORKQUEUE_KEY_MAX + 1);
        if (rc != 0 || tp_now_ms () >= deadline)
            return rc;
    }
}

static void s_expect_key (lss_queue_client_t *c, const char *want, int wait_ms)
{
    char key[LSS_WORKQUEUE_KEY_MAX + 1];
    int rc = s_get (c, wait_ms, key);
    if (rc != 1)
        fail_msg ("expected key %s, got rc %d", want, rc);
    assert_string_equal (key, want);
}

static void s_expect_none (lss_queue_client_t *c, int wait_ms)
{
    char key[LSS_WORKQUEUE_KEY_MAX + 1];
    int rc = lss_queue_client_get (c, wait_ms, key, sizeof key);
    if (rc != 0)
        fail_msg ("expected no key, got rc %d key %s", rc, key);
}

//  --------------------------------------------------------------------------
//  Setup

static int s_setup (void **state)
{
    (void)state;
    memset (s_w, 0, sizeof s_w);
    char err[LSS_STORE_ERR_SIZE] = "";
    s_st = lss_store_pg_new (s_dsn, err, sizeof err);
    if (!s_st)
        fprintf (stderr, "store: %s\n", err);
    return s_st ? 0 : -1;
}

static int s_teardown (void **state)
{
    (void)state;
    zsock_destroy (&s_sub);
    for (int i = 0; i < 2; i++) {
        s_w_t *w = &s_w[i];
        if (!w->dir[0])
            continue;
        if (w->proc.pid > 0) {
            kill (w->proc.pid, SIGCONT);
            tp_kill (&w->proc);
        }
        const char *names[] = {"port", "port.tmp", "stderr", "pub", "queue"};
        char path[256];
        for (size_t k = 0; k < 5; k++) {
            if (lss_fmt (path, sizeof path, "%s/%s", w->dir, names[k]) == 0)
                unlink (path);
        }
        rmdir (w->dir);
    }
    if (s_st)
        s_delete_everything ();
    lss_store_destroy (&s_st);
    return 0;
}

//  --------------------------------------------------------------------------
//  Cases

static void test_keys_of (void **state)
{
    (void)state;
    const char *queues[2];
    char keys[2][513];
    json_t *o = s_obj ("Pod", "ns1", "p");
    assert_int_equal (watcher_keys_of ("Pod", o, queues, keys), 0);
    json_object_set_new (json_object_get (o, "metadata"), "labels",
                         json_pack ("{s:s, s:s}", "llmsafespace.dev/sandbox", "sb",
                                    "llmsafespace.dev/pool", "pool-a"));
    assert_int_equal (watcher_keys_of ("Pod", o, queues, keys), 2);
    assert_string_equal (queues[0], "sandbox");
    assert_string_equal (keys[0], "Sandbox/ns1/sb");
    assert_string_equal (queues[1], "warmpool");
    assert_string_equal (keys[1], "WarmPool/ns1/pool-a");
    assert_int_equal (watcher_keys_of ("WarmPod", o, queues, keys), 1);
    assert_string_equal (keys[0], "WarmPool/ns1/pool-a");
    assert_int_equal (watcher_keys_of ("Sandbox", o, queues, keys), 1);
    assert_string_equal (keys[0], "Sandbox/ns1/p");
    assert_int_equal (watcher_keys_of ("SandboxProfile", o, queues, keys), 0);
    /* hostile values: not a name, wrong type, no namespace */
    json_object_set_new (json_object_get (o, "metadata"), "labels",
                         json_pack ("{s:s, s:i}", "llmsafespace.dev/sandbox", "Bad_Name/x",
                                    "llmsafespace.dev/pool", 3));
    assert_int_equal (watcher_keys_of ("Pod", o, queues, keys), 0);
    json_object_del (json_object_get (o, "metadata"), "namespace");
    assert_int_equal (watcher_keys_of ("Sandbox", o, queues, keys), 0);
    json_object_set_new (o, "metadata", json_string ("x"));
    assert_int_equal (watcher_keys_of ("Sandbox", o, queues, keys), 0);
    assert_int_equal (watcher_keys_of ("Sandbox", NULL, queues, keys), 0);
    json_decref (o);
}

static void test_event_and_queue (void **state)
{
    (void)state;
    s_start (&s_w[0], NULL);
    s_wait_ready (&s_w[0], "leader");
    s_sub = s_subscribe (s_w[0].pub_ep);
    lss_queue_client_t *c = s_client (s_w[0].queue_ep, "sandbox", "worker-a");
    s_create ("Sandbox", "t1", "sb-1");
    assert_true (s_event (s_sub, "sandbox.added.t1.sb-1", S_EVENT_MS));
    s_expect_key (c, "Sandbox/t1/sb-1", S_EVENT_MS);
    assert_int_equal (lss_queue_client_done (c, "Sandbox/t1/sb-1", "done", 0, NULL, 0), 0);
    s_expect_none (c, 300);
    /* done twice: no longer held */
    assert_int_equal (lss_queue_client_done (c, "Sandbox/t1/sb-1", "done", 0, NULL, 0), 1);
    s_modify ("Sandbox", "t1", "sb-1", 1);
    assert_true (s_event (s_sub, "sandbox.modified.t1.sb-1", S_EVENT_MS));
    s_expect_key (c, "Sandbox/t1/sb-1", S_EVENT_MS);
    assert_int_equal (lss_queue_client_done (c, "Sandbox/t1/sb-1", "done", 0, NULL, 0), 0);
    s_delete ("Sandbox", "t1", "sb-1");
    assert_true (s_event (s_sub, "sandbox.deleted.t1.sb-1", S_EVENT_MS));
    s_expect_key (c, "Sandbox/t1/sb-1", S_EVENT_MS);
    assert_int_equal (lss_queue_client_done (c, "Sandbox/t1/sb-1", "done", 0, NULL, 0), 0);
    assert_true (
        s_metric (&s_w[0], "lss_watcher_events_total{kind=\"Sandbox\",verb=\"added\"}") >= 1);
    assert_true (s_metric (&s_w[0], "lss_watcher_leader") == 1);
    lss_queue_client_destroy (&c);
}

static void test_dirty_while_held (void **state)
{
    (void)state;
    s_start (&s_w[0], NULL);
    s_wait_ready (&s_w[0], "leader");
    lss_queue_client_t *a = s_client (s_w[0].queue_ep, "sandbox", "worker-a");
    lss_queue_client_t *b = s_client (s_w[0].queue_ep, "sandbox", "worker-b");
    s_create ("Sandbox", "t2", "sb");
    s_expect_key (a, "Sandbox/t2/sb", S_EVENT_MS);
    for (int i = 1; i <= 20; i++)
        s_modify ("Sandbox", "t2", "sb", i);
    s_expect_none (b, 800); /* held by a: never handed to b meanwhile */
    assert_int_equal (lss_queue_client_done (a, "Sandbox/t2/sb", "done", 0, NULL, 0), 0);
    s_expect_key (b, "Sandbox/t2/sb", S_EVENT_MS); /* dirty: once more */
    assert_int_equal (lss_queue_client_done (b, "Sandbox/t2/sb", "done", 0, NULL, 0), 0);
    s_expect_none (b, 500); /* and only once */
    s_expect_none (a, 100);
    lss_queue_client_destroy (&a);
    lss_queue_client_destroy (&b);
}

static void test_two_workers_distinct_keys (void **state)
{
    (void)state;
    s_start (&s_w[0], NULL);
    s_wait_ready (&s_w[0], "leader");
    lss_queue_client_t *c[2] = {s_client (s_w[0].queue_ep, "sandbox", "worker-a"),
                                s_client (s_w[0].queue_ep, "sandbox", "worker-b")};
    enum { N = 12 };
    for (int i = 0; i < N; i++) {
        char name[16];
        snprintf (name, sizeof name, "sb-%02d", i);
        s_create ("Sandbox", "t3", name);
    }
    char held[N][LSS_WORKQUEUE_KEY_MAX + 1];
    int owner[N];
    int got = 0;
    long long deadline = tp_now_ms () + 10000;
    while (got < N && tp_now_ms () < deadline) {
        for (int w = 0; w < 2 && got < N; w++) {
            if (s_get (c[w], 500, held[got]) != 1)
                continue;
            for (int j = 0; j < got; j++)
                assert_string_not_equal (held[j], held[got]);
            owner[got++] = w;
        }
    }
    assert_int_equal (got, N);
    s_expect_none (c[0], 200);
    for (int i = 0; i < N; i++)
        assert_int_equal (lss_queue_client_done (c[owner[i]], held[i], "done", 0, NULL, 0), 0);
    lss_queue_client_destroy (&c[0]);
    lss_queue_client_destroy (&c[1]);
}

static void test_error_backoff_and_requeue (void **state)
{
    (void)state;
    const char *env[] = {"LSS_WATCHER_BACKOFF_MAX=700", NULL};
    s_start (&s_w[0], env);
    s_wait_ready (&s_w[0], "leader");
    lss_queue_client_t *c = s_client (s_w[0].queue_ep, "sandbox", "worker-a");
    s_create ("Sandbox", "t4", "sb");
    const char *key = "Sandbox/t4/sb";
    s_expect_key (c, key, S_EVENT_MS);
    /* failures come back after 5, 10, 20, ... ms, capped at backoff_max (700) */
    long long elapsed = 0;
    for (int i = 0; i < 9; i++) {
        assert_int_equal (lss_queue_client_done (c, key, "error", 0, "boom", 0), 0);
        long long t0 = tp_now_ms ();
        s_expect_key (c, key, 5000);
        elapsed = tp_now_ms () - t0;
        if (i == 7) /* 8th failure: 5 * 2^7 = 640 ms */
            assert_true (elapsed >= 600);
    }
    assert_true (elapsed >= 650 && elapsed < 1500); /* 9th: capped at 700 */
    /* done forgets failures; requeue after_ms brings it back later */
    assert_int_equal (lss_queue_client_done (c, key, "requeue", 800, NULL, 0), 0);
    long long t0 = tp_now_ms ();
    s_expect_none (c, 400);
    s_expect_key (c, key, 5000);
    assert_true (tp_now_ms () - t0 >= 750);
    assert_int_equal (lss_queue_client_done (c, key, "done", 0, NULL, 0), 0);
    s_expect_none (c, 200);
    lss_queue_client_destroy (&c);
}

static void test_silent_worker_loses_key (void **state)
{
    (void)state;
    const char *env[] = {"LSS_WATCHER_QUEUE_LEASE=600", NULL};
    s_start (&s_w[0], env);
    s_wait_ready (&s_w[0], "leader");
    lss_queue_client_t *a = s_client (s_w[0].queue_ep, "sandbox", "worker-a");
    lss_queue_client_t *b = s_client (s_w[0].queue_ep, "sandbox", "worker-b");
    s_create ("Sandbox", "t5", "sb");
    s_expect_key (a, "Sandbox/t5/sb", S_EVENT_MS);
    long long t0 = tp_now_ms ();
    s_expect_key (b, "Sandbox/t5/sb", 5000); /* a went silent past its lease */
    assert_true (tp_now_ms () - t0 >= 500);
    assert_int_equal (lss_queue_client_done (a, "Sandbox/t5/sb", "done", 0, NULL, 0), 1);
    assert_int_equal (lss_queue_client_done (b, "Sandbox/t5/sb", "done", 0, NULL, 0), 0);
    /* a worker that keeps asking keeps its lease: b holds a key while polling the other
     * queue for longer than the lease */
    s_modify ("Sandbox", "t5", "sb", 1);
    s_expect_key (b, "Sandbox/t5/sb", S_EVENT_MS);
    lss_queue_client_t *b2 = s_client (s_w[0].queue_ep, "warmpool", "worker-b");
    for (int i = 0; i < 4; i++)
        s_expect_none (b2, 300);
    s_expect_none (a, 100);
    assert_int_equal (lss_queue_client_done (b, "Sandbox/t5/sb", "done", 0, NULL, 0), 0);
    lss_queue_client_destroy (&a);
    lss_queue_client_destroy (&b);
    lss_queue_client_destroy (&b2);
}

static void test_label_membership (void **state)
{
    (void)state;
    s_start (&s_w[0], NULL);
    s_wait_ready (&s_w[0], "leader");
    lss_queue_client_t *sq = s_client (s_w[0].queue_ep, "sandbox", "worker-s");
    lss_queue_client_t *wq = s_client (s_w[0].queue_ep, "warmpool", "worker-w");
    s_create_labelled ("Pod", "t6", "pod-1", "llmsafespace.dev/sandbox", "sb-x");
    s_expect_key (sq, "Sandbox/t6/sb-x", S_EVENT_MS);
    assert_int_equal (lss_queue_client_done (sq, "Sandbox/t6/sb-x", "done", 0, NULL, 0), 0);
    s_create_labelled ("WarmPod", "t6", "wp-1", "llmsafespace.dev/pool", "pool-p");
    s_expect_key (wq, "WarmPool/t6/pool-p", S_EVENT_MS);
    assert_int_equal (lss_queue_client_done (wq, "WarmPool/t6/pool-p", "done", 0, NULL, 0), 0);
    s_create_labelled ("Pod", "t6", "wp-1", "llmsafespace.dev/pool", "pool-q");
    s_expect_key (wq, "WarmPool/t6/pool-q", S_EVENT_MS);
    assert_int_equal (lss_queue_client_done (wq, "WarmPool/t6/pool-q", "done", 0, NULL, 0), 0);
    s_create ("WarmPool", "t6", "pool-r");
    s_expect_key (wq, "WarmPool/t6/pool-r", S_EVENT_MS);
    assert_int_equal (lss_queue_client_done (wq, "WarmPool/t6/pool-r", "done", 0, NULL, 0), 0);
    /* deleting the Pod queues its Sandbox again; unlabelled objects queue nothing */
    s_delete ("Pod", "t6", "pod-1");
    s_expect_key (sq, "Sandbox/t6/sb-x", S_EVENT_MS);
    assert_int_equal (lss_queue_client_done (sq, "Sandbox/t6/sb-x", "done", 0, NULL, 0), 0);
    s_create ("Pod", "t6", "plain");
    s_create ("SandboxProfile", "t6", "prof");
    s_expect_none (sq, 500);
    s_expect_none (wq, 100);
    lss_queue_client_destroy (&sq);
    lss_queue_client_destroy (&wq);
}

static void test_resync (void **state)
{
    (void)state;
    const char *env[] = {"LSS_WATCHER_RESYNC=400", NULL};
    s_start (&s_w[0], env);
    s_wait_ready (&s_w[0], "leader");
    lss_queue_client_t *c = s_client (s_w[0].queue_ep, "warmpool", "worker-a");
    s_create ("WarmPool", "t7", "pool");
    for (int round = 0; round < 3; round++) {
        s_expect_key (c, "WarmPool/t7/pool", 3000);
        assert_int_equal (lss_queue_client_done (c, "WarmPool/t7/pool", "done", 0, NULL, 0), 0);
    }
    lss_queue_client_destroy (&c);
}

static void test_relist_after_compaction (void **state)
{
    (void)state;
    s_start (&s_w[0], NULL);
    s_wait_ready (&s_w[0], "leader");
    s_sub = s_subscribe (s_w[0].pub_ep);
    lss_queue_client_t *c = s_client (s_w[0].queue_ep, "sandbox", "worker-a");
    s_create ("Sandbox", "t8", "keep");
    s_create ("Sandbox", "t8", "gone");
    assert_true (s_event (s_sub, "sandbox.added.t8.gone", S_EVENT_MS));
    double relists = s_metric (&s_w[0], "lss_watcher_relists_total{kind=\"Sandbox\"}");
    assert_true (relists >= 1);
    /* the watcher misses everything while stopped, and the events are compacted away */
    assert_int_equal (kill (s_w[0].proc.pid, SIGSTOP), 0);
    s_delete ("Sandbox", "t8", "gone");
    s_create ("Sandbox", "t8", "new");
    s_modify ("Sandbox", "t8", "keep", 5);
    char rv[32], err[LSS_STORE_ERR_SIZE];
    assert_int_equal (lss_store_current_rv (s_st, rv, sizeof rv, err, sizeof err), 0);
    assert_int_equal (lss_store_compact (s_st, rv, err, sizeof err), 0);
    assert_int_equal (kill (s_w[0].proc.pid, SIGCONT), 0);
    const char *want[] = {"sandbox.deleted.t8.gone", "sandbox.added.t8.new",
                          "sandbox.modified.t8.keep"};
    bool seen[3] = {false, false, false};
    long long deadline = tp_now_ms () + 10000;
    while (!(seen[0] && seen[1] && seen[2]) && tp_now_ms () < deadline) {
        zmq_pollitem_t item = {zsock_resolve (s_sub), 0, ZMQ_POLLIN, 0};
        if (zmq_poll (&item, 1, 200) <= 0)
            continue;
        char topic[LSS_BUS_TOPIC_MAX];
        lss_envelope_t env;
        lss_msg_kind_t kind;
        void *body = NULL;
        assert_int_equal (lss_bus_recv (s_sub, NULL, topic, sizeof topic, &env, &kind, &body,
                                        err, sizeof err),
                          0);
        for (int i = 0; i < 3; i++)
            if (strcmp (topic, want[i]) == 0)
                seen[i] = true;
        lss_proto_body_free (kind, &body);
    }
    for (int i = 0; i < 3; i++)
        if (!seen[i])
            fail_msg ("no event %s after the relist", want[i]);
    assert_true (s_metric (&s_w[0], "lss_watcher_relists_total{kind=\"Sandbox\"}") > relists);
    /* the queue saw all three keys */
    bool keys[3] = {false, false, false};
    const char *want_keys[] = {"Sandbox/t8/gone", "Sandbox/t8/new", "Sandbox/t8/keep"};
    deadline = tp_now_ms () + 5000;
    while (!(keys[0] && keys[1] && keys[2]) && tp_now_ms () < deadline) {
        char key[LSS_WORKQUEUE_KEY_MAX + 1];
        if (lss_queue_client_get (c, 500, key, sizeof key) != 1)
            continue;
        for (int i = 0; i < 3; i++)
            if (strcmp (key, want_keys[i]) == 0)
                keys[i] = true;
        assert_int_equal (lss_queue_client_done (c, key, "done", 0, NULL, 0), 0);
    }
    assert_true (keys[0] && keys[1] && keys[2]);
    lss_queue_client_destroy (&c);
}

static void test_failover (void **state)
{
    (void)state;
    s_start (&s_w[0], NULL);
    s_wait_ready (&s_w[0], "leader");
    s_start (&s_w[1], NULL);
    s_wait_ready (&s_w[1], "standby");
    char eps[400], pubs[400];
    snprintf (eps, sizeof eps, "%s,%s", s_w[0].queue_ep, s_w[1].queue_ep);
    snprintf (pubs, sizeof pubs, "%s,%s", s_w[0].pub_ep, s_w[1].pub_ep);
    s_sub = s_subscribe (pubs);
    lss_queue_client_t *c = s_client (eps, "sandbox", "worker-a");
    s_create ("Sandbox", "t9", "sb-1");
    assert_true (s_event (s_sub, "sandbox.added.t9.sb-1", S_EVENT_MS));
    assert_false (s_event (s_sub, "sandbox.added.t9.sb-1", 300)); /* only the leader */
    s_expect_key (c, "Sandbox/t9/sb-1", S_EVENT_MS);
    assert_int_equal (lss_queue_client_done (c, "Sandbox/t9/sb-1", "done", 0, NULL, 0), 0);
    assert_true (s_metric (&s_w[1], "lss_watcher_leader") == 0);

    kill (s_w[0].proc.pid, SIGKILL);
    tp_wait (&s_w[0].proc, 5000);
    long long t0 = tp_now_ms ();
    s_create ("Sandbox", "t9", "sb-2");
    bool got = false;
    while (!got && tp_now_ms () - t0 < 5000) {
        char key[LSS_WORKQUEUE_KEY_MAX + 1];
        if (lss_queue_client_get (c, 500, key, sizeof key) != 1)
            continue;
        got = strcmp (key, "Sandbox/t9/sb-2") == 0;
        assert_int_equal (lss_queue_client_done (c, key, "done", 0, NULL, 0), 0);
    }
    if (!got)
        fail_msg ("the standby did not take over within 5 s");
    s_wait_ready (&s_w[1], "leader");
    assert_true (s_metric (&s_w[1], "lss_watcher_leader") == 1);
    lss_queue_client_destroy (&c);
}

/*  Sends raw frames on a DEALER and returns the error code of the reply in code. */
static void s_raw (zsock_t *d, const void *data, size_t len, char *code, size_t size)
{
    zmq_send (zsock_resolve (d), data, len, 0);
    zmq_pollitem_t item = {zsock_resolve (d), 0, ZMQ_POLLIN, 0};
    assert_int_equal (zmq_poll (&item, 1, 5000), 1);
    lss_envelope_t env;
    lss_msg_kind_t kind;
    void *body = NULL;
    char err[256];
    assert_int_equal (lss_bus_recv (d, NULL, NULL, 0, &env, &kind, &body, err, sizeof err), 0);
    assert_int_equal (kind, LSS_MSG_error);
    snprintf (code, size, "%s", ((lss_error_t *)body)->code);
    lss_proto_body_free (kind, &body);
}

static void s_typed (zsock_t *d, lss_msg_kind_t kind, const void *body, char *code, size_t size)
{
    lss_envelope_t env;
    assert_int_equal (lss_bus_envelope_init (&env, kind, NULL, "test", 1, NULL), 0);
    uint8_t *data = NULL;
    size_t len = 0;
    assert_int_equal (lss_proto_encode (&env, kind, body, &data, &len), 0);
    s_raw (d, data, len, code, size);
    free (data);
}

static void test_malformed_requests (void **state)
{
    (void)state;
    s_start (&s_w[0], NULL);
    s_wait_ready (&s_w[0], "leader");
    zsock_t *d = lss_bus_socket_new (ZMQ_DEALER, s_w[0].queue_ep, NULL);
    assert_non_null (d);
    char code[80];
    s_raw (d, "\xc1garbage", 8, code, sizeof code);
    assert_string_equal (code, "invalid_request");
    lss_queue_get_t get = {.queue = "nope", .worker = "w", .wait_ms = 100};
    s_typed (d, LSS_MSG_queue_get, &get, code, sizeof code);
    assert_string_equal (code, "invalid_request");
    lss_ok_t ok = {.ref = "x"};
    s_typed (d, LSS_MSG_ok, &ok, code, sizeof code);
    assert_string_equal (code, "invalid_request");
    lss_queue_done_t done = {
        .queue = "sandbox", .worker = "w", .key = "Sandbox/a/b", .result = "maybe"};
    s_typed (d, LSS_MSG_queue_done, &done, code, sizeof code);
    assert_string_equal (code, "invalid_request");
    done.result = "done";
    s_typed (d, LSS_MSG_queue_done, &done, code, sizeof code);
    assert_string_equal (code, "not_held");
    zsock_destroy (&d);
    /* still serving */
    lss_queue_client_t *c = s_client (s_w[0].queue_ep, "sandbox", "worker-a");
    s_create ("Sandbox", "t10", "sb");
    s_expect_key (c, "Sandbox/t10/sb", S_EVENT_MS);
    assert_int_equal (lss_queue_client_done (c, "Sandbox/t10/sb", "done", 0, NULL, 0), 0);
    lss_queue_client_destroy (&c);
}

static void test_standby_answers_not_leader (void **state)
{
    (void)state;
    s_start (&s_w[0], NULL);
    s_wait_ready (&s_w[0], "leader");
    s_start (&s_w[1], NULL);
    s_wait_ready (&s_w[1], "standby");
    zsock_t *d = lss_bus_socket_new (ZMQ_DEALER, s_w[1].queue_ep, NULL);
    char code[80];
    lss_queue_get_t get = {.queue = "sandbox", .worker = "w", .wait_ms = 100};
    s_typed (d, LSS_MSG_queue_get, &get, code, sizeof code);
    assert_string_equal (code, "not_leader");
    zsock_destroy (&d);
    /* a client of the standby alone gets nothing, quickly */
    lss_queue_client_t *c = s_client (s_w[1].queue_ep, "sandbox", "worker-a");
    char key[LSS_WORKQUEUE_KEY_MAX + 1];
    long long t0 = tp_now_ms ();
    assert_int_equal (lss_queue_client_get (c, 5000, key, sizeof key), 0);
    assert_true (tp_now_ms () - t0 < 2000);
    lss_queue_client_destroy (&c);
}

static void test_sigterm_exits_cleanly (void **state)
{
    (void)state;
    s_start (&s_w[0], NULL);
    s_wait_ready (&s_w[0], "leader");
    lss_queue_client_t *c = s_client (s_w[0].queue_ep, "sandbox", "worker-a");
    char key[LSS_WORKQUEUE_KEY_MAX + 1];
    assert_int_equal (lss_queue_client_get (c, 0, key, sizeof key), 0);
    kill (s_w[0].proc.pid, SIGTERM);
    int status = tp_wait (&s_w[0].proc, 8000);
    assert_true (status != -1 && WIFEXITED (status));
    assert_int_equal (WEXITSTATUS (status), 0);
    char err[65536];
    s_read_file (s_w[0].err_file, err, sizeof err);
    assert_non_null (strstr (err, "\"stopped\""));
    /* nobody answers now: -1, quickly after wait + grace */
    assert_int_equal (lss_queue_client_get (c, 100, key, sizeof key), -1);
    lss_queue_client_destroy (&c);
}

int main (void)
{
    lss_log_init ("test_watcher", LSS_LOG_ERROR);
    curl_global_init (CURL_GLOBAL_DEFAULT);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_keys_of),
        cmocka_unit_test_setup_teardown (test_event_and_queue, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_dirty_while_held, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_two_workers_distinct_keys, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_error_backoff_and_requeue, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_silent_worker_loses_key, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_label_membership, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_resync, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_relist_after_compaction, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_failover, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_malformed_requests, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_standby_answers_not_leader, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_sigterm_exits_cleanly, s_setup, s_teardown),
    };
    int rc = cmocka_run_group_tests (tests, s_group_setup, s_group_teardown);
    curl_global_cleanup ();
    return rc;
}
