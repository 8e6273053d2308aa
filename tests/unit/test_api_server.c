/*  lss-api as a real process on the whole local stack (lss_teststack.h: PostgreSQL, the
 *  services; lss_testredis.h: Redis), driven over HTTP with libcurl. Under `make test`
 *  this binary runs in the sanitizer tree too, so every request here also runs lss-api's
 *  threads under ASan+UBSan. The end-to-end suite (tests/e2e) covers the API's
 *  behaviour in breadth; this test covers start-up, one whole sandbox life, the
 *  dependency checks and a clean stop.
 *
 *  Needs root and working sandboxes (skips otherwise, like test_controlplane).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <curl/curl.h>
#include <jansson.h>
#include <string.h>
#include <sys/stat.h>

#include "lss_bus.h"
#include "lss_obj.h"
#include "lss_store.h"
#include "lss_testproc.h"
#include "lss_util.h"

#include "lss_testpg.h"
#include "lss_testredis.h"
#include "lss_teststack.h"

static ts_stack_t s_stack;
static bool s_skip;
static int s_port;
static char s_key[128];
static char s_keyfile[128];

/* ------------------------------------------------------------------ HTTP */
typedef struct {
    char *data;
    size_t len;
} s_body_t;

static size_t s_collect (char *p, size_t size, size_t n, void *arg)
{
    s_body_t *b = arg;
    size_t add = size * n;
    char *d = realloc (b->data, b->len + add + 1);
    if (!d)
        return 0;
    memcpy (d + b->len, p, add);
    b->data = d;
    b->len += add;
    b->data[b->len] = '\0';
    return add;
}

/*  One request; returns the status (-1 on a transport error) and, if out, the parsed
 *  JSON body (NULL when it is not JSON). */
static int s_http (const char *method, const char *path, const char *key, const char *body,
                   json_t **out)
{
    CURL *c = curl_easy_init ();
    char url[512], auth[192];
    snprintf (url, sizeof url, "http://127.0.0.1:%d%s", s_port, path);
    struct curl_slist *h = NULL;
    if (key) {
        snprintf (auth, sizeof auth, "Authorization: Bearer %s", key);
        h = curl_slist_append (h, auth);
    }
    h = curl_slist_append (h, "Content-Type: application/json");
    s_body_t b = {0};
    curl_easy_setopt (c, CURLOPT_URL, url);
    curl_easy_setopt (c, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt (c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt (c, CURLOPT_WRITEFUNCTION, s_collect);
    curl_easy_setopt (c, CURLOPT_WRITEDATA, &b);
    curl_easy_setopt (c, CURLOPT_TIMEOUT_MS, 30000L);
    if (body)
        curl_easy_setopt (c, CURLOPT_POSTFIELDS, body);
    long status = -1;
    if (curl_easy_perform (c) == CURLE_OK)
        curl_easy_getinfo (c, CURLINFO_RESPONSE_CODE, &status);
    if (out)
        *out = b.data ? json_loads (b.data, 0, NULL) : NULL;
    free (b.data);
    curl_slist_free_all (h);
    curl_easy_cleanup (c);
    return (int)status;
}

static const char *s_str (const json_t *o, const char *path)
{
    const char *v = lss_obj_str (o, path);
    return v ? v : "";
}

/* ------------------------------------------------------------------ setup */
static int s_apply (lss_store_t *st, const char *text)
{
    json_t *o = json_loads (text, 0, NULL);
    char err[LSS_STORE_ERR_SIZE] = "";
    int rc = o ? lss_store_create (st, o, NULL, err, sizeof err) : -1;
    if (rc)
        fprintf (stderr, "create failed: %d %s\n", rc, err);
    json_decref (o);
    return rc;
}

static int s_start_api (void)
{
    return ts_svc_start (&s_stack, "api", 30000);
}

static int s_setup (void **state)
{
    (void)state;
    if (!tp_sandboxes_work ()) {
        s_skip = true;
        return 0;
    }
    curl_global_init (CURL_GLOBAL_DEFAULT);
    if (s_redis_setup ())
        return -1;
    const char *services[] = {"watcher", "reconciler", "node", "warmpool", "executor", NULL};
    const char *env[] = {"LSS_WATCHER_LEADER_CHECK=200", "LSS_WARMPOOL_LEADER_CHECK=200", NULL};
    if (ts_stack_start (&s_stack, services, env))
        goto fail;
    char err[LSS_STORE_ERR_SIZE] = "";
    lss_store_t *st = lss_store_pg_new (s_dsn, err, sizeof err);
    if (!st ||
        s_apply (st, "{\"apiVersion\":\"llmsafespace.dev/v1\",\"kind\":\"RuntimeEnvironment\","
                     "\"metadata\":{\"name\":\"python-3.11\"},\"spec\":{\"image\":"
                     "\"llmsafespace/python:3.11\",\"language\":\"python\",\"version\":"
                     "\"3.11\",\"interpreter\":\"/usr/bin/python3\"}}") ||
        s_apply (st, "{\"apiVersion\":\"llmsafespace.dev/v1\",\"kind\":\"WarmPool\","
                     "\"metadata\":{\"name\":\"py\",\"namespace\":\"default\"},\"spec\":"
                     "{\"runtime\":\"python:3.11\",\"minSize\":1,\"maxSize\":2}}")) {
        lss_store_destroy (&st);
        goto fail;
    }
    lss_store_destroy (&st);
    s_port = tp_free_port ();
    const char *d = s_stack.dir;
    snprintf (s_keyfile, sizeof s_keyfile, "%s/admin.key", d);
    ts_env_add (&s_stack, "LSS_API_LISTEN", "127.0.0.1:%d", s_port);
    ts_env_add (&s_stack, "LSS_API_EXECUTOR_ENDPOINT", "ipc://%s/executor.router", d);
    ts_env_add (&s_stack, "LSS_API_WARMPOOL_ENDPOINT", "ipc://%s/warmpool.alloc", d);
    ts_env_add (&s_stack, "LSS_API_WATCHER_ENDPOINT", "ipc://%s/watcher.pub", d);
    ts_env_add (&s_stack, "LSS_API_PUB_ENDPOINT", "ipc://%s/api.pub", d);
    ts_env_add (&s_stack, "LSS_API_ADMIN_KEY_FILE", "%s", s_keyfile);
    ts_env_add (&s_stack, "LSS_API_WORKERS", "4");
    ts_env_add (&s_stack, "LSS_REDIS_URL", "%s", s_redis_unix_url);
    ts_env_add (&s_stack, "LSS_API_JWT_SECRET", "%s", "test-secret-0123456789abcdef0123456789");
    if (s_start_api ())
        goto fail;
    return 0;
fail:
    ts_stack_dump_logs (&s_stack);
    ts_stack_stop (&s_stack);
    s_redis_teardown ();
    return -1;
}

static int s_teardown (void **state)
{
    (void)state;
    if (s_skip)
        return 0;
    if (getenv ("TS_STACK_LOGS"))
        ts_stack_dump_logs (&s_stack);
    ts_stack_stop (&s_stack);
    s_redis_teardown ();
    curl_global_cleanup ();
    return 0;
}

#define SKIP_UNLESS_SANDBOXES()                                                                \
    do {                                                                                       \
        if (s_skip)                                                                            \
            skip ();                                                                           \
    } while (0)

/* ------------------------------------------------------------------ tests */
static void test_bootstrap_admin_key (void **state)
{
    (void)state;
    SKIP_UNLESS_SANDBOXES ();
    struct stat sb;
    assert_int_equal (stat (s_keyfile, &sb), 0);
    assert_int_equal (sb.st_mode & 0777, 0600);
    FILE *f = fopen (s_keyfile, "r");
    assert_non_null (f);
    assert_non_null (fgets (s_key, sizeof s_key, f));
    fclose (f);
    s_key[strcspn (s_key, "\r\n")] = '\0';
    assert_int_equal (strncmp (s_key, "lsp_", 4), 0);
    json_t *u = NULL;
    assert_int_equal (s_http ("GET", "/api/v1/user", s_key, NULL, &u), 200);
    assert_string_equal (s_str (u, "role"), "admin");
    json_decref (u);
    assert_int_equal (s_http ("GET", "/api/v1/user", "lsp_wrong", NULL, NULL), 401);
    assert_int_equal (s_http ("GET", "/api/v1/user", NULL, NULL, NULL), 401);
}

static void test_health_ready_metrics (void **state)
{
    (void)state;
    SKIP_UNLESS_SANDBOXES ();
    json_t *r = NULL;
    assert_int_equal (s_http ("GET", "/health", NULL, NULL, NULL), 200);
    /* the checks run every 2 s: wait for all of them */
    long long deadline = tp_now_ms () + 15000;
    int status;
    while ((status = s_http ("GET", "/ready", NULL, NULL, &r)) != 200 &&
           tp_now_ms () < deadline) {
        json_decref (r);
        r = NULL;
        usleep (100 * 1000);
    }
    assert_int_equal (status, 200);
    json_t *checks = json_object_get (r, "checks");
    assert_true (json_is_true (json_object_get (checks, "postgres")));
    assert_true (json_is_true (json_object_get (checks, "redis")));
    assert_true (json_is_true (json_object_get (checks, "executor")));
    json_decref (r);
    assert_int_equal (s_http ("GET", "/nope", s_key, NULL, &r), 404);
    assert_string_equal (s_str (r, "error.code"), "not_found");
    json_decref (r);
}

/*  Waits up to timeout_ms for an api.event of reason on sub; 1 if seen for sandbox id. */
static int s_audit_seen (zsock_t *sub, const char *reason, const char *id, int timeout_ms)
{
    long long deadline = tp_now_ms () + timeout_ms;
    zpoller_t *p = zpoller_new (sub, NULL);
    int seen = 0;
    while (!seen && tp_now_ms () < deadline) {
        if (zpoller_wait (p, 100) != sub)
            continue;
        char topic[LSS_BUS_TOPIC_MAX];
        lss_envelope_t env;
        lss_msg_kind_t kind;
        void *body = NULL;
        if (lss_bus_recv (sub, NULL, topic, sizeof topic, &env, &kind, &body, NULL, 0) != 0)
            continue;
        if (kind == LSS_MSG_event) {
            lss_event_t *ev = body;
            seen = strcmp (ev->reason, reason) == 0 && ev->name && strcmp (ev->name, id) == 0 &&
                   strcmp (env.type, "api.event") == 0;
        }
        lss_proto_body_free (kind, &body);
    }
    zpoller_destroy (&p);
    return seen;
}

/*  A SUB to the api's PUB that has joined: a SUB that is still connecting misses what
 *  is published meanwhile, and under valgrind a fixed sleep was not always enough. Waits
 *  (10 s at most) for the connection's handshake, then briefly for the subscription to
 *  travel. */
static zsock_t *s_sub_joined (const char *endpoint, const char *prefix)
{
    zsock_t *sub = zsock_new (ZMQ_SUB);
    assert_non_null (sub);
    zsock_set_subscribe (sub, prefix);
    assert_int_equal (zmq_socket_monitor (zsock_resolve (sub), "inproc://test-api-server-sub",
                                          ZMQ_EVENT_HANDSHAKE_SUCCEEDED),
                      0);
    zsock_t *mon = zsock_new_pair (">inproc://test-api-server-sub");
    assert_non_null (mon);
    assert_int_equal (zsock_connect (sub, "%s", endpoint), 0);
    zpoller_t *p = zpoller_new (mon, NULL);
    bool joined = zpoller_wait (p, 10000) == mon;
    zpoller_destroy (&p);
    zmq_socket_monitor (zsock_resolve (sub), NULL, 0);
    zsock_destroy (&mon);
    assert_true (joined);
    usleep (100 * 1000);
    return sub;
}

static void test_sandbox_life (void **state)
{
    (void)state;
    SKIP_UNLESS_SANDBOXES ();
    char ep[160];
    snprintf (ep, sizeof ep, "ipc://%s/api.pub", s_stack.dir);
    zsock_t *sub = s_sub_joined (ep, "api.");
    json_t *sb = NULL;
    assert_int_equal (s_http ("POST", "/api/v1/sandboxes", s_key,
                              "{\"runtime\":\"python:3.11\",\"timeout\":120}", &sb),
                      201);
    assert_string_equal (s_str (sb, "status"), "running");
    char id[128], path[256];
    snprintf (id, sizeof id, "%s", s_str (sb, "id"));
    json_decref (sb);
    assert_true (strlen (id) > 3);
    assert_int_equal (s_audit_seen (sub, "SandboxCreated", id, 5000), 1);

    json_t *x = NULL;
    snprintf (path, sizeof path, "/api/v1/sandboxes/%s/execute", id);
    assert_int_equal (
        s_http ("POST", path, s_key, "{\"type\":\"code\",\"content\":\"print(6*7)\"}", &x),
        200);
    assert_string_equal (s_str (x, "stdout"), "42\n");
    assert_string_equal (s_str (x, "status"), "completed");
    json_decref (x);
    assert_int_equal (
        s_http ("POST", path, s_key, "{\"type\":\"command\",\"content\":\"exit 3\"}", &x), 200);
    assert_int_equal (json_integer_value (json_object_get (x, "exitCode")), 3);
    assert_string_equal (s_str (x, "status"), "failed");
    json_decref (x);
    assert_int_equal (s_http ("POST", path, s_key, "{\"type\":\"code\"", &x), 400);
    json_decref (x);

    assert_int_equal (s_audit_seen (sub, "ExecEnded", id, 5000), 1);
    zsock_destroy (&sub);

    /* the audit rows are written after the answer (by a worker): wait for them */
    snprintf (path, sizeof path, "/api/v1/sandboxes/%s/executions", id);
    long long until = tp_now_ms () + 10000;
    size_t rows = 0;
    do {
        assert_int_equal (s_http ("GET", path, s_key, NULL, &x), 200);
        rows = json_array_size (json_object_get (x, "executions"));
        json_decref (x);
    } while (rows < 2 && tp_now_ms () < until && usleep (50 * 1000) == 0);
    assert_int_equal (rows, 2);

    snprintf (path, sizeof path, "/api/v1/sandboxes/%s", id);
    assert_int_equal (s_http ("DELETE", path, s_key, NULL, NULL), 200);
    /* gone within a bound: terminated or 404 */
    long long deadline = tp_now_ms () + 20000;
    int status = 0;
    while (tp_now_ms () < deadline) {
        json_t *g = NULL;
        status = s_http ("GET", path, s_key, NULL, &g);
        bool done = status == 404 || strcmp (s_str (g, "status"), "terminated") == 0;
        json_decref (g);
        if (done)
            break;
        usleep (100 * 1000);
    }
    assert_true (status == 404 || status == 200);
}

static void test_sigterm_stops_cleanly (void **state)
{
    (void)state;
    SKIP_UNLESS_SANDBOXES ();
    ts_svc_t *v = ts_stack_svc (&s_stack, "api");
    assert_non_null (v);
    pid_t pid = v->pid;
    assert_true (pid > 0);
    kill (pid, SIGTERM);
    int st = 0;
    long long deadline = tp_now_ms () + 15000;
    pid_t got = 0;
    while ((got = waitpid (pid, &st, WNOHANG)) == 0 && tp_now_ms () < deadline)
        usleep (20 * 1000);
    assert_int_equal (got, pid);
    v->pid = 0;
    if (!WIFEXITED (st) || WEXITSTATUS (st) != 0)
        ts_stack_dump_logs (&s_stack); /* a sanitizer report goes to the api's log */
    assert_true (WIFEXITED (st));
    assert_int_equal (WEXITSTATUS (st), 0); /* also: no sanitizer report (exit code) */
    assert_int_equal (s_http ("GET", "/health", NULL, NULL, NULL), -1);
    /* a second start reuses the schema and the admin (no second key file is made) */
    assert_int_equal (s_start_api (), 0);
    assert_int_equal (s_http ("GET", "/api/v1/user", s_key, NULL, NULL), 200);
}

int main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_bootstrap_admin_key),
        cmocka_unit_test (test_health_ready_metrics),
        cmocka_unit_test (test_sandbox_life),
        cmocka_unit_test (test_sigterm_stops_cleanly),
    };
    return cmocka_run_group_tests (tests, s_setup, s_teardown);
}
