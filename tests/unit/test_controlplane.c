/*  The local control plane end to end: lss-watcher, lss-reconciler, lss-warmpool,
 *  lss-node and lss-executor as real processes on a throw-away PostgreSQL
 *  (lss_teststack.h), driven only through the object store and the bus as the api will
 *  drive them. Needs root and working sandboxes (skips otherwise, like the sandbox
 *  tests): a Sandbox object becomes Running with a working agent, warm pools fill and
 *  refill, expiry and deletion clean up, and kill -9 of each service in turn during
 *  activity converges with nothing lost and no sandbox stuck. All of it twice: with the
 *  store on PostgreSQL, and with every service on the fake Kubernetes API server
 *  (store.backend=kubernetes, elections by Lease) — cluster mode's control plane, with
 *  lss-node standing in for the kubelet (it runs the Pods it watches).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <dirent.h>
#include <string.h>

#include "lss_bus.h"
#include "lss_exec_client.h"
#include "lss_obj.h"
#include "lss_store.h"
#include "lss_testproc.h"
#include "lss_util.h"
#include "node_pod.h"

#include "lss_testk8s.h"
#include "lss_testpg.h"
#include "lss_teststack.h"

#define NS          "cp"
#define WAIT_MS     30000
#define STACK_LEVEL "info"

static ts_stack_t s_stack;
static lss_store_t *s_store;
static bool s_skip;
static bool s_k8s; /* second group: every service on the fake Kubernetes API server */
static tk_fake_t s_fake;

/* ------------------------------------------------------------------ helpers */

static void s_apply (const char *json_text)
{
    json_error_t je;
    json_t *o = json_loads (json_text, 0, &je);
    if (!o)
        fail_msg ("bad JSON in test: %s", je.text);
    char err[LSS_STORE_ERR_SIZE] = "";
    int rc = lss_store_create (s_store, o, NULL, err, sizeof err);
    json_decref (o);
    if (rc)
        fail_msg ("create: %d %s", rc, err);
}

static void s_sandbox (const char *name, int timeout_s, const char *warm_pod)
{
    char text[1024];
    snprintf (text, sizeof text,
              "{\"apiVersion\":\"llmsafespace.dev/v1\",\"kind\":\"Sandbox\",\"metadata\":"
              "{\"name\":\"%s\",\"namespace\":\"" NS "\",\"annotations\":{%s%s%s}},"
              "\"spec\":{\"runtime\":\"python:3.11\",\"timeout\":%d,"
              "\"resources\":{\"memory\":\"256Mi\"}}}",
              name, warm_pod ? "\"llmsafespace.dev/warm-pod\":\"" : "",
              warm_pod ? warm_pod : "", warm_pod ? "\"" : "", timeout_s);
    s_apply (text);
}

static json_t *s_get (const char *kind, const char *name)
{
    json_t *o = NULL;
    char err[LSS_STORE_ERR_SIZE];
    return lss_store_get (s_store, kind, NS, name, &o, err, sizeof err) == 0 ? o : NULL;
}

/*  Waits until the object's string at path equals want ("" = the object is gone).
 *  Returns 0, or -1 on timeout (the last value is printed). */
static int s_wait_str (const char *kind, const char *name, const char *path, const char *want,
                       int timeout_ms)
{
    long long deadline = tp_now_ms () + timeout_ms;
    char last[128] = "(none)";
    while (tp_now_ms () < deadline) {
        json_t *o = s_get (kind, name);
        if (!o && !*want)
            return 0;
        const char *v = o ? lss_obj_str (o, path) : NULL;
        bool ok = v && *want && strcmp (v, want) == 0;
        snprintf (last, sizeof last, "%s", o ? (v ? v : "(unset)") : "(gone)");
        json_decref (o);
        if (ok)
            return 0;
        usleep (20 * 1000);
    }
    fprintf (stderr, "timeout: %s %s/%s %s is %s, want %s\n", kind, NS, name, path, last,
             *want ? want : "(gone)");
    return -1;
}

static int s_wait_int (const char *kind, const char *name, const char *path, int64_t want,
                       int timeout_ms)
{
    long long deadline = tp_now_ms () + timeout_ms;
    int64_t last = -1;
    while (tp_now_ms () < deadline) {
        json_t *o = s_get (kind, name);
        last = lss_obj_int (o, path, -1);
        json_decref (o);
        if (last == want)
            return 0;
        usleep (20 * 1000);
    }
    fprintf (stderr, "timeout: %s %s/%s %s is %lld, want %lld\n", kind, NS, name, path,
             (long long)last, (long long)want);
    return -1;
}

/*  The directory lss-node keeps the Pod's sandbox in (from its namespace, name and uid);
 *  0, or -1 when the Pod is not there. */
static int s_pod_dir (const char *pod_name, char *out, size_t size)
{
    json_t *pod = s_get ("Pod", pod_name);
    const char *uid = pod ? lss_obj_str (pod, "metadata.uid") : NULL;
    char id[NODE_POD_ID_SIZE];
    int rc = uid && node_pod_sandbox_id (NS, pod_name, uid, id, sizeof id) == 0 ? 0 : -1;
    if (rc == 0)
        snprintf (out, size, "%s/s/%s", s_stack.dir, id);
    json_decref (pod);
    return rc;
}

/*  Runs python code in the sandbox through the executor; returns its stdout (caller
 *  frees) or NULL. */
static char *s_run_python (const char *sandbox, const char *code)
{
    char ep[128], ref[160];
    ts_endpoint (&s_stack, "executor.router", ep, sizeof ep);
    snprintf (ref, sizeof ref, NS "/%s", sandbox);
    lss_exec_client_t *c = lss_exec_client_new (ep, NULL);
    if (!c)
        return NULL;
    lss_exec_start_t req = {.sandbox = ref,
                            .language = "python",
                            .code = {(uint8_t *)code, strlen (code)},
                            .timeout_ms = 20000};
    lss_exec_client_opts_t opts = {.timeout_ms = 30000};
    lss_exec_result_t res;
    char *out = NULL;
    if (lss_exec_client_run (c, &req, &opts, &res) == 0 && res.end && res.end->exit_code == 0) {
        out = calloc (1, res.out.len + 1);
        if (out)
            memcpy (out, res.out.data, res.out.len);
    } else
        fprintf (stderr, "exec in %s failed: %s %s (end error %s)\n", sandbox, res.error_code,
                 res.error, res.end && res.end->error ? res.end->error : "-");
    lss_exec_result_clear (&res);
    lss_exec_client_destroy (&c);
    return out;
}

/*  Claims a warm pod through lss-warmpool's allocation ROUTER. Returns 1 with its name,
 *  0 for pool_empty, -1 on failure. */
static int s_allocate (const char *sandbox, char *name, size_t size)
{
    char ep[128];
    ts_endpoint (&s_stack, "warmpool.alloc", ep, sizeof ep);
    zsock_t *s = lss_bus_socket_new (ZMQ_DEALER, ep, NULL);
    if (!s)
        return -1;
    int rc = ts_allocate (s, NS, sandbox, name, size);
    zsock_destroy (&s);
    return rc;
}

/* ------------------------------------------------------------------ setup */

static int s_setup (void **state)
{
    (void)state;
    if (!tp_sandboxes_work ()) {
        s_skip = true;
        return 0;
    }
    setenv ("TS_STACK_LOG_LEVEL", STACK_LEVEL, 0);
    const char *services[] = {"watcher", "reconciler", "node", "warmpool", "executor", NULL};
    char kubeconfig[600] = "";
    if (s_k8s) {
        if (tk_start (&s_fake) != 0) {
            tk_stop (&s_fake);
            return -1;
        }
        snprintf (kubeconfig, sizeof kubeconfig, "LSS_K8S_KUBECONFIG=%s", s_fake.kubeconfig);
    }
    /* on Kubernetes: the store and the elections (Leases, short times so a kill -9'd
     * leader is replaced within the waits) go to the fake; PostgreSQL stays unused */
    const char *pg_env[] = {"LSS_WATCHER_LEADER_CHECK=200", "LSS_WARMPOOL_LEADER_CHECK=200",
                            "LSS_RECONCILER_WORKERS=2", "LSS_NODE_MAX_SANDBOXES=64", NULL};
    const char *k8s_env[] = {"LSS_WATCHER_LEADER_CHECK=200",
                             "LSS_WARMPOOL_LEADER_CHECK=200",
                             "LSS_RECONCILER_WORKERS=2",
                             "LSS_NODE_MAX_SANDBOXES=64",
                             "LSS_STORE_BACKEND=kubernetes",
                             kubeconfig,
                             "LSS_K8S_NAMESPACE=lss-system",
                             "LSS_K8S_LEASE_DURATION=2s",
                             "LSS_K8S_RENEW_DEADLINE=1s",
                             "LSS_K8S_RETRY_PERIOD=200ms",
                             NULL};
    if (ts_stack_start (&s_stack, services, s_k8s ? k8s_env : pg_env)) {
        ts_stack_dump_logs (&s_stack);
        ts_stack_stop (&s_stack);
        if (s_k8s)
            tk_stop (&s_fake);
        return -1;
    }
    char err[LSS_STORE_ERR_SIZE] = "";
    if (s_k8s) {
        lss_config_t *cfg = tk_config (&s_fake, NULL, NULL);
        s_store = cfg ? lss_store_new_from_config (cfg, err, sizeof err) : NULL;
        lss_config_destroy (&cfg);
    } else
        s_store = lss_store_pg_new (s_dsn, err, sizeof err);
    if (!s_store) {
        fprintf (stderr, "store: %s\n", err);
        return -1;
    }
    s_apply ("{\"apiVersion\":\"llmsafespace.dev/v1\",\"kind\":\"RuntimeEnvironment\","
             "\"metadata\":{\"name\":\"python-3.11\"},\"spec\":{\"image\":"
             "\"llmsafespace/python:3.11\",\"language\":\"python\",\"version\":\"3.11\","
             "\"interpreter\":\"/usr/bin/python3\"}}");
    return 0;
}

static int s_teardown (void **state)
{
    (void)state;
    if (s_skip)
        return 0;
    lss_store_destroy (&s_store);
    if (getenv ("TS_STACK_LOGS"))
        ts_stack_dump_logs (&s_stack);
    ts_stack_stop (&s_stack);
    if (s_k8s)
        tk_stop (&s_fake);
    return 0;
}

#define SKIP_UNLESS_SANDBOXES()                                                                \
    do {                                                                                       \
        if (s_skip)                                                                            \
            skip ();                                                                           \
    } while (0)

#define CHECK(expr)                                                                            \
    do {                                                                                       \
        if (!(expr)) {                                                                         \
            ts_stack_dump_logs (&s_stack);                                                     \
            fail_msg ("%s", #expr);                                                            \
        }                                                                                      \
    } while (0)

/* ------------------------------------------------------------------ cases */

static void test_sandbox_runs_and_executes (void **state)
{
    (void)state;
    SKIP_UNLESS_SANDBOXES ();
    s_sandbox ("sb-run", 600, NULL);
    CHECK (s_wait_str ("Sandbox", "sb-run", "status.phase", "Running", WAIT_MS) == 0);
    json_t *sb = s_get ("Sandbox", "sb-run");
    const char *ep = lss_obj_str (sb, "status.endpoint");
    assert_non_null (ep);
    assert_non_null (strstr (ep, "ipc://"));
    json_t *ready = lss_obj_condition (sb, "Ready");
    assert_string_equal (json_string_value (json_object_get (ready, "status")), "True");
    assert_non_null (lss_obj_str (sb, "status.expiresAt"));
    json_decref (sb);
    char *out = s_run_python ("sb-run", "print(6 * 7)");
    CHECK (out != NULL);
    assert_string_equal (out, "42\n");
    free (out);
}

static void test_warm_pool_fills_and_serves (void **state)
{
    (void)state;
    SKIP_UNLESS_SANDBOXES ();
    s_apply ("{\"apiVersion\":\"llmsafespace.dev/v1\",\"kind\":\"WarmPool\",\"metadata\":"
             "{\"name\":\"py\",\"namespace\":\"" NS "\"},\"spec\":{\"runtime\":\"python:3.11\","
             "\"minSize\":2,\"maxSize\":6,\"securityLevel\":\"standard\"}}");
    CHECK (s_wait_int ("WarmPool", "py", "status.availablePods", 2, WAIT_MS) == 0);
    char warm[256];
    CHECK (s_allocate ("sb-warm", warm, sizeof warm) == 1);
    long long t0 = tp_now_ms ();
    s_sandbox ("sb-warm", 600, warm);
    CHECK (s_wait_str ("Sandbox", "sb-warm", "status.phase", "Running", WAIT_MS) == 0);
    print_message ("warm sandbox Running %lld ms after create (polled every 20 ms)\n",
                   tp_now_ms () - t0);
    json_t *sb = s_get ("Sandbox", "sb-warm");
    assert_string_equal (lss_obj_str (sb, "status.warmPodRef.name"), warm);
    assert_string_equal (lss_obj_str (sb, "status.podName"), warm);
    json_decref (sb);
    char *out = s_run_python ("sb-warm", "import os; print(os.getuid())");
    CHECK (out != NULL);
    assert_string_equal (out, "1000\n");
    free (out);
    /* the pool refills behind the claim */
    CHECK (s_wait_int ("WarmPool", "py", "status.availablePods", 2, WAIT_MS) == 0);
    CHECK (s_wait_int ("WarmPool", "py", "status.assignedPods", 1, WAIT_MS) == 0);

    /* deleting the sandbox removes its (ex-warm) pod for good */
    char err[LSS_STORE_ERR_SIZE];
    assert_int_equal (
        lss_store_delete (s_store, "Sandbox", NS, "sb-warm", NULL, err, sizeof err), 0);
    CHECK (s_wait_str ("Sandbox", "sb-warm", "status.phase", "", WAIT_MS) == 0);
    CHECK (s_wait_str ("Pod", warm, "status.phase", "", WAIT_MS) == 0);
    CHECK (s_wait_str ("WarmPod", warm, "status.phase", "", WAIT_MS) == 0);
    CHECK (s_wait_int ("WarmPool", "py", "status.assignedPods", 0, WAIT_MS) == 0);
}

/*  preloadScripts run through lss-executor in each warm pod before it is offered: the
 *  script's file is in the Ready warm pod's workspace; a pool whose script fails never
 *  offers a pod, its warm pods are replaced. */
static void test_preload_scripts (void **state)
{
    (void)state;
    SKIP_UNLESS_SANDBOXES ();
    s_apply ("{\"apiVersion\":\"llmsafespace.dev/v1\",\"kind\":\"WarmPool\",\"metadata\":"
             "{\"name\":\"pre\",\"namespace\":\"" NS
             "\"},\"spec\":{\"runtime\":\"python:3.11\","
             "\"minSize\":1,\"maxSize\":1,\"preloadScripts\":[{\"name\":\"marker\",\"content\":"
             "\"printf preloaded > /workspace/.preloaded\"}]}}");
    s_apply ("{\"apiVersion\":\"llmsafespace.dev/v1\",\"kind\":\"WarmPool\",\"metadata\":"
             "{\"name\":\"bad\",\"namespace\":\"" NS
             "\"},\"spec\":{\"runtime\":\"python:3.11\","
             "\"minSize\":1,\"maxSize\":1,\"preloadScripts\":[{\"name\":\"fails\",\"content\":"
             "\"exit 3\"}]}}");
    CHECK (s_wait_int ("WarmPool", "pre", "status.availablePods", 1, WAIT_MS) == 0);
    char err[LSS_STORE_ERR_SIZE];
    json_t *list = NULL;
    assert_int_equal (lss_store_list (s_store, "WarmPod", NS, LSS_LABEL_POOL "=pre", 0, NULL,
                                      &list, err, sizeof err),
                      0);
    json_t *wp = json_array_get (json_object_get (list, "items"), 0);
    assert_non_null (wp);
    json_t *pre = lss_obj_condition (wp, "Preloaded");
    assert_string_equal (json_string_value (json_object_get (pre, "status")), "True");
    char dir[PATH_MAX], file[PATH_MAX + 32];
    CHECK (s_pod_dir (lss_obj_str (wp, "metadata.name"), dir, sizeof dir) == 0);
    snprintf (file, sizeof file, "%s/workspace/.preloaded", dir);
    json_decref (list);
    FILE *f = fopen (file, "r");
    CHECK (f != NULL);
    char got[32] = "";
    CHECK (fgets (got, sizeof got, f) != NULL);
    fclose (f);
    assert_string_equal (got, "preloaded");

    /* the failing pool: its first warm pod goes (replaced), none is ever available. A
     * replacement is a delete then a create, so the pool may have no WarmPod at the
     * moment of a listing: list until one is there */
    char first_name[256] = "";
    for (long long until = tp_now_ms () + WAIT_MS; !first_name[0] && tp_now_ms () < until;) {
        assert_int_equal (lss_store_list (s_store, "WarmPod", NS, LSS_LABEL_POOL "=bad", 0,
                                          NULL, &list, err, sizeof err),
                          0);
        json_t *first = json_array_get (json_object_get (list, "items"), 0);
        if (first)
            snprintf (first_name, sizeof first_name, "%s",
                      lss_obj_str (first, "metadata.name"));
        json_decref (list);
        if (!first_name[0])
            usleep (20 * 1000);
    }
    CHECK (first_name[0] != '\0');
    CHECK (s_wait_str ("WarmPod", first_name, "status.phase", "", WAIT_MS) == 0);
    json_t *bad = s_get ("WarmPool", "bad");
    assert_int_equal (lss_obj_int (bad, "status.availablePods", -1), 0);
    json_decref (bad);
    /* both pools go, so that later cases allocate from "py" only */
    assert_int_equal (lss_store_delete (s_store, "WarmPool", NS, "pre", NULL, err, sizeof err),
                      0);
    assert_int_equal (lss_store_delete (s_store, "WarmPool", NS, "bad", NULL, err, sizeof err),
                      0);
    CHECK (s_wait_str ("WarmPool", "pre", "status.phase", "", WAIT_MS) == 0);
}

static void test_expiry_and_delete_clean_up (void **state)
{
    (void)state;
    SKIP_UNLESS_SANDBOXES ();
    s_sandbox ("sb-exp", 2, NULL);
    s_sandbox ("sb-del", 600, NULL);
    CHECK (s_wait_str ("Sandbox", "sb-del", "status.phase", "Running", WAIT_MS) == 0);
    /* their sandboxes on the node (the warm pool of the case before may add and remove
     * its own meanwhile, so these two are looked for by name, never counted) */
    char dir_del[PATH_MAX];
    CHECK (s_pod_dir ("sb-del", dir_del, sizeof dir_del) == 0);
    CHECK (access (dir_del, F_OK) == 0);
    CHECK (s_wait_str ("Sandbox", "sb-exp", "status.phase", "Terminated", WAIT_MS) == 0);
    json_t *sb = s_get ("Sandbox", "sb-exp");
    json_t *ready = lss_obj_condition (sb, "Ready");
    assert_string_equal (json_string_value (json_object_get (ready, "reason")), "Expired");
    json_decref (sb);
    CHECK (s_wait_str ("Pod", "sb-exp", "status.phase", "", WAIT_MS) == 0);
    char err[LSS_STORE_ERR_SIZE];
    assert_int_equal (
        lss_store_delete (s_store, "Sandbox", NS, "sb-del", NULL, err, sizeof err), 0);
    CHECK (s_wait_str ("Sandbox", "sb-del", "status.phase", "", WAIT_MS) == 0);
    CHECK (s_wait_str ("Pod", "sb-del", "status.phase", "", WAIT_MS) == 0);
    /* and lss-node stopped it and removed its directory */
    long long deadline = tp_now_ms () + WAIT_MS;
    while (access (dir_del, F_OK) == 0 && tp_now_ms () < deadline)
        usleep (50 * 1000);
    CHECK (access (dir_del, F_OK) != 0);
}

/*  kill -9 each service in turn while sandboxes are being created and deleted; after
 *  each restart, and at the end, everything converges. */
static void test_kill9_each_service_converges (void **state)
{
    (void)state;
    SKIP_UNLESS_SANDBOXES ();
    const char *order[] = {"watcher", "reconciler", "node", "warmpool", "executor"};
    char err[LSS_STORE_ERR_SIZE];
    s_sandbox ("k-0", 600, NULL);
    for (size_t i = 0; i < sizeof order / sizeof order[0]; i++) {
        char made[32], gone[32];
        snprintf (made, sizeof made, "k-%zu", i + 1);
        snprintf (gone, sizeof gone, "k-%zu", i);
        ts_svc_kill (&s_stack, order[i], SIGKILL);
        /* activity while it is down */
        s_sandbox (made, 600, NULL);
        int rc = lss_store_delete (s_store, "Sandbox", NS, gone, NULL, err, sizeof err);
        assert_true (rc == 0 || rc == LSS_STORE_NOT_FOUND);
        usleep (300 * 1000);
        CHECK (ts_svc_start (&s_stack, order[i], 20000) == 0);
        CHECK (s_wait_str ("Sandbox", made, "status.phase", "Running", WAIT_MS) == 0);
        CHECK (s_wait_str ("Sandbox", gone, "status.phase", "", WAIT_MS) == 0);
        CHECK (s_wait_str ("Pod", gone, "status.phase", "", WAIT_MS) == 0);
        print_message ("kill -9 %s: converged\n", order[i]);
    }
    /* the survivor works through the restarted executor */
    char *out = s_run_python ("k-5", "print('alive')");
    CHECK (out != NULL);
    assert_string_equal (out, "alive\n");
    free (out);
    /* nothing stuck: every Sandbox is Running or gone, no Pod without a Sandbox */
    json_t *list = NULL;
    assert_int_equal (lss_store_list (s_store, "Pod", NS, "llmsafespace.dev/sandbox", 0, NULL,
                                      &list, err, sizeof err),
                      0);
    size_t i;
    json_t *pod;
    json_array_foreach (json_object_get (list, "items"), i, pod)
    {
        const char *owner = lss_obj_label (pod, LSS_LABEL_SANDBOX);
        json_t *sb = s_get ("Sandbox", owner);
        if (!sb)
            fail_msg ("Pod %s outlived its Sandbox", lss_obj_str (pod, "metadata.name"));
        json_decref (sb);
    }
    json_decref (list);
}

int main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_sandbox_runs_and_executes),
        cmocka_unit_test (test_warm_pool_fills_and_serves),
        cmocka_unit_test (test_preload_scripts),
        cmocka_unit_test (test_expiry_and_delete_clean_up),
        cmocka_unit_test (test_kill9_each_service_converges),
    };
    int failed = cmocka_run_group_tests_name ("on PostgreSQL", tests, s_setup, s_teardown);
    s_k8s = true;
    failed += cmocka_run_group_tests_name ("on Kubernetes (the fake API server)", tests,
                                           s_setup, s_teardown);
    return failed;
}
