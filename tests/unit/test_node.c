/*  lss-node end to end: the real binary against a throw-away PostgreSQL, running Pods as
 *  real agent sandboxes. Each case starts its own lss-node with its own node.name (Pods
 *  name it in spec.nodeName, so cases never see each other's Pods) and state dir; the
 *  teardown starts a node with no Pods, which stops every sandbox left (its own relist
 *  rule), and checks the state dir is empty. Skipped unless root with working sandboxes.
 *  Also unit cases for node_pod (no sandboxes needed).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <arpa/inet.h>
#include <czmq.h>
#include <dirent.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include "lss_testproc.h"
#include "lss_testpg.h"

#include "lss_bus.h"
#include "lss_log.h"
#include "lss_obj.h"
#include "lss_store.h"
#include "lss_util.h"
#include "node_pod.h"
#include "sandbox_agent.h"

#define UID_BASE "320000"
#define WAIT_MS  20000
#define NS       "tn"

static bool s_can_run;
static lss_store_t *s_store;

typedef struct {
    char root[64];  /* mkdtemp */
    char state[96]; /* root/s */
    char port_file[128];
    char node[32];
    tp_proc_t proc;
    int port;
} fx_t;

static fx_t s_fx;

/* ------------------------------------------------------------------ helpers */

static void s_sleep_ms (int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep (&ts, NULL);
}

/* Starts lss-node for s_fx.node; waits until /readyz answers 200. */
static void s_node_start (int max_sandboxes)
{
    char bin[PATH_MAX], agent[PATH_MAX], real[PATH_MAX];
    tp_build_path (bin, sizeof bin, "bin/lss-node");
    tp_build_path (agent, sizeof agent, "bin/lss-agent");
    assert_non_null (realpath (agent, real));
    unlink (s_fx.port_file);
    char e_dsn[600], e_state[128], e_port[160], e_name[64], e_agent[PATH_MAX + 32], e_max[64];
    snprintf (e_dsn, sizeof e_dsn, "LSS_STORE_DSN=%s", s_dsn);
    snprintf (e_state, sizeof e_state, "LSS_NODE_STATE_DIR=%s", s_fx.state);
    snprintf (e_port, sizeof e_port, "LSS_TEST_PORT_FILE=%s", s_fx.port_file);
    snprintf (e_name, sizeof e_name, "LSS_NODE_NAME=%s", s_fx.node);
    snprintf (e_agent, sizeof e_agent, "LSS_NODE_AGENT_PATH=%s", real);
    snprintf (e_max, sizeof e_max, "LSS_NODE_MAX_SANDBOXES=%d", max_sandboxes);
    char *env[] = {e_dsn,
                   e_state,
                   e_port,
                   e_name,
                   e_agent,
                   e_max,
                   "LSS_NODE_ADMIN_LISTEN=127.0.0.1:0",
                   "LSS_NODE_UID_BASE=" UID_BASE,
                   "LSS_LOG_LEVEL=warn",
                   "PATH=/usr/bin:/bin",
                   NULL};
    char *argv[] = {bin, NULL};
    assert_int_equal (tp_spawn (&s_fx.proc, argv, env, false), 0);
    long long deadline = tp_now_ms () + WAIT_MS;
    s_fx.port = 0;
    while (tp_now_ms () < deadline && s_fx.port == 0) {
        FILE *f = fopen (s_fx.port_file, "r");
        if (f) {
            if (fscanf (f, "%d", &s_fx.port) != 1)
                s_fx.port = 0;
            fclose (f);
        }
        if (!s_fx.port)
            s_sleep_ms (10);
    }
    assert_true (s_fx.port > 0);
}

/* GET path from the node's admin endpoint into out; returns the HTTP status or -1. */
static int s_http_get (const char *path, char *out, size_t size)
{
    int fd = socket (AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons ((uint16_t)s_fx.port)};
    inet_pton (AF_INET, "127.0.0.1", &a.sin_addr);
    if (fd < 0 || connect (fd, (struct sockaddr *)&a, sizeof a)) {
        if (fd >= 0)
            close (fd);
        return -1;
    }
    char req[256];
    int n = snprintf (req, sizeof req, "GET %s HTTP/1.0\r\nHost: x\r\n\r\n", path);
    if (write (fd, req, (size_t)n) != n) {
        close (fd);
        return -1;
    }
    size_t len = 0;
    ssize_t r;
    struct timeval tv = {5, 0};
    setsockopt (fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    while (len + 1 < size && (r = read (fd, out + len, size - 1 - len)) > 0)
        len += (size_t)r;
    out[len] = '\0';
    close (fd);
    int code = -1;
    if (sscanf (out, "HTTP/1.%*d %d", &code) != 1)
        return -1;
    return code;
}

static void s_wait_ready (void)
{
    char buf[4096];
    long long deadline = tp_now_ms () + WAIT_MS;
    while (s_http_get ("/readyz", buf, sizeof buf) != 200) {
        if (tp_now_ms () > deadline)
            fail_msg ("lss-node never became ready: %s", buf);
        s_sleep_ms (20);
    }
}

static void s_node_kill (int sig)
{
    if (s_fx.proc.pid > 0)
        kill (s_fx.proc.pid, sig);
    int status = tp_wait (&s_fx.proc, 10000);
    if (sig == SIGTERM)
        assert_true (status != -1 && WIFEXITED (status) && WEXITSTATUS (status) == 0);
}

static int s_fx_setup (void **state)
{
    (void)state;
    static int n;
    memset (&s_fx, 0, sizeof s_fx);
    snprintf (s_fx.root, sizeof s_fx.root, "/tmp/lssn-XXXXXX");
    if (!mkdtemp (s_fx.root) || chmod (s_fx.root, 0711))
        return -1;
    snprintf (s_fx.state, sizeof s_fx.state, "%s/s", s_fx.root);
    snprintf (s_fx.port_file, sizeof s_fx.port_file, "%s/port", s_fx.root);
    snprintf (s_fx.node, sizeof s_fx.node, "node-%d", ++n);
    return 0;
}

static int s_state_entries (void)
{
    DIR *dir = opendir (s_fx.state);
    int count = 0;
    struct dirent *de;
    while (dir && (de = readdir (dir)))
        if (de->d_name[0] != '.')
            count++;
    if (dir)
        closedir (dir);
    return count;
}

static int s_fx_teardown (void **state)
{
    (void)state;
    if (s_fx.proc.pid > 0)
        s_node_kill (SIGKILL);
    if (s_can_run) {
        /* A node no Pod names stops every sandbox left in the state dir. */
        snprintf (s_fx.node, sizeof s_fx.node, "node-cleanup");
        s_node_start (8);
        s_wait_ready ();
        long long deadline = tp_now_ms () + WAIT_MS;
        while (s_state_entries () > 0 && tp_now_ms () < deadline)
            s_sleep_ms (20);
        s_node_kill (SIGTERM);
        assert_int_equal (s_state_entries (), 0);
    }
    pid_t pid = fork ();
    if (pid == 0) {
        execl ("/bin/rm", "rm", "-rf", s_fx.root, (char *)NULL);
        _exit (127);
    }
    waitpid (pid, NULL, 0);
    return 0;
}

/* A Pod for this case's node (caller owns). limits may be NULL. */
static json_t *s_pod (const char *name, const char *memory, const char *cpu)
{
    json_t *pod = json_pack (
        "{s:s, s:s, s:{s:s, s:s, s:{s:s}, s:{s:s, s:s}}, s:{s:s, s:s, s:[{s:s, s:s, "
        "s:[s], s:{s:{}}}]}}",
        "apiVersion", "v1", "kind", "Pod", "metadata", "name", name, "namespace", NS, "labels",
        LSS_LABEL_PART_OF, "llmsafespace", "annotations", LSS_ANN_LEVEL, "standard",
        LSS_ANN_INTERPRETERS, "python=/usr/bin/python3", "spec", "nodeName", s_fx.node,
        "restartPolicy", "Never", "containers", "name", "sandbox", "image", "local", "command",
        "/opt/lss/lss-agent", "resources", "limits");
    assert_non_null (pod);
    json_t *limits = lss_obj_at (json_array_get (lss_obj_at (pod, "spec.containers"), 0),
                                 "resources.limits");
    json_object_set_new (limits, "memory", json_string (memory ? memory : "256Mi"));
    json_object_set_new (limits, "cpu", json_string (cpu ? cpu : "1"));
    json_object_set_new (limits, "ephemeral-storage", json_string ("64Mi"));
    return pod;
}

static json_t *s_create (json_t *pod)
{
    json_t *out = NULL;
    char err[256];
    int rc = lss_store_create (s_store, pod, &out, err, sizeof err);
    if (rc)
        fail_msg ("create: %s", err);
    json_decref (pod);
    return out;
}

static void s_delete (const char *name)
{
    char err[256];
    int rc = lss_store_delete (s_store, "Pod", NS, name, NULL, err, sizeof err);
    if (rc)
        fail_msg ("delete %s: %s", name, err);
}

static json_t *s_get (const char *name)
{
    json_t *out = NULL;
    lss_store_get (s_store, "Pod", NS, name, &out, NULL, 0);
    return out;
}

/* Waits until the Pod's status.phase is phase (and, for Running, Ready True). Returns
 * the Pod (caller owns); fails with its status otherwise. */
static json_t *s_wait_phase (const char *name, const char *phase, bool ready)
{
    long long deadline = tp_now_ms () + WAIT_MS;
    json_t *pod = NULL;
    for (;;) {
        json_decref (pod);
        pod = s_get (name);
        const char *p = lss_obj_str (pod, "status.phase");
        json_t *cond = lss_obj_condition (pod, "Ready");
        const char *rs = json_string_value (json_object_get (cond, "status"));
        if (p && strcmp (p, phase) == 0 && (!ready || (rs && strcmp (rs, "True") == 0)))
            return pod;
        if (tp_now_ms () > deadline) {
            char *text = json_dumps (json_object_get (pod, "status"), JSON_COMPACT);
            print_error ("pod %s status: %s\n", name, text ? text : "(none)");
            free (text);
            json_decref (pod);
            fail_msg ("pod %s never reached %s%s", name, phase, ready ? " + Ready" : "");
        }
        s_sleep_ms (20);
    }
}

static void s_sandbox_dir (const json_t *pod, char *out, size_t size)
{
    char id[NODE_POD_ID_SIZE];
    assert_int_equal (node_pod_sandbox_id (lss_obj_str (pod, "metadata.namespace"),
                                           lss_obj_str (pod, "metadata.name"),
                                           lss_obj_str (pod, "metadata.uid"), id, sizeof id),
                      0);
    snprintf (out, size, "%s/%s", s_fx.state, id);
}

/* The init's host pid recorded by the runtime (state.json). */
static pid_t s_init_pid (const json_t *pod)
{
    char dir[256], path[300];
    s_sandbox_dir (pod, dir, sizeof dir);
    snprintf (path, sizeof path, "%s/state.json", dir);
    json_t *st = json_load_file (path, 0, NULL);
    pid_t pid = (pid_t)json_integer_value (json_object_get (st, "initPid"));
    json_decref (st);
    return pid;
}

static void s_wait_gone (const char *path)
{
    long long deadline = tp_now_ms () + WAIT_MS;
    struct stat st;
    while (stat (path, &st) == 0) {
        if (tp_now_ms () > deadline)
            fail_msg ("%s still exists", path);
        s_sleep_ms (20);
    }
}

static zsock_t *s_agent (const json_t *pod)
{
    const char *ep = lss_obj_str (pod, "status.agentEndpoint");
    assert_non_null (ep);
    assert_true (strncmp (ep, "ipc://", 6) == 0);
    zsock_t *sock = lss_sandbox_agent_connect (ep, 5000);
    if (!sock)
        fail_msg ("agent at %s does not answer", ep);
    return sock;
}

/* True if the agent answers a ping on an existing connection. */
static bool s_agent_answers (zsock_t *sock)
{
    lss_envelope_t env;
    lss_agent_ping_t ping = {0};
    lss_bus_envelope_init (&env, LSS_MSG_agent_ping, NULL, "test", 7, NULL);
    if (lss_bus_send (sock, NULL, 0, NULL, &env, LSS_MSG_agent_ping, &ping))
        return false;
    zpoller_t *p = zpoller_new (sock, NULL);
    bool ok = false;
    if (zpoller_wait (p, 5000)) {
        lss_msg_kind_t kind;
        void *body;
        if (lss_bus_recv (sock, NULL, NULL, 0, &env, &kind, &body, NULL, 0) == 0) {
            ok = kind == LSS_MSG_agent_pong;
            lss_proto_body_free (kind, &body);
        }
    }
    zpoller_destroy (&p);
    return ok;
}

#define SKIP_UNLESS_SANDBOXES()                                                                \
    do {                                                                                       \
        if (!s_can_run)                                                                        \
            skip ();                                                                           \
    } while (0)

/* ------------------------------------------------------------------ cases */

static void test_pod_runs_then_delete_stops (void **state)
{
    (void)state;
    SKIP_UNLESS_SANDBOXES ();
    s_node_start (8);
    s_wait_ready ();
    json_t *created = s_create (s_pod ("one", NULL, NULL));
    json_t *pod = s_wait_phase ("one", "Running", true);
    assert_string_equal (lss_obj_str (pod, "status.hostIP"), "127.0.0.1");
    assert_non_null (lss_obj_str (pod, "status.startTime"));
    json_t *cs = json_array_get (lss_obj_at (pod, "status.containerStatuses"), 0);
    assert_true (json_is_true (json_object_get (cs, "ready")));
    assert_non_null (lss_obj_str (cs, "state.running.startedAt"));
    char dir[256];
    s_sandbox_dir (created, dir, sizeof dir);
    struct stat st;
    assert_int_equal (stat (dir, &st), 0);
    zsock_t *sock = s_agent (pod);
    assert_true (s_agent_answers (sock));
    pid_t init = s_init_pid (pod);
    assert_true (init > 0);

    char *metrics = malloc (1 << 20);
    assert_int_equal (s_http_get ("/metrics", metrics, 1 << 20), 200);
    assert_non_null (strstr (metrics, "lss_node_sandbox_starts_total 1"));
    assert_non_null (strstr (metrics, "lss_node_start_latency_seconds_count 1"));
    /* one status write for the start: Running and Ready together once the agent is up
     * (two, Running / Ready False first, before; an agent slower than
     * NODE_READY_WAIT_MS would also make two) */
    assert_non_null (strstr (metrics, "lss_node_status_writes_total{result=\"ok\"} 1\n"));
    free (metrics);

    s_delete ("one");
    s_wait_gone (dir);
    assert_true (kill (init, 0) == -1);
    zsock_destroy (&sock);
    json_decref (pod);
    json_decref (created);
    s_node_kill (SIGTERM);
}

static void test_invalid_specs_fail (void **state)
{
    (void)state;
    SKIP_UNLESS_SANDBOXES ();
    s_node_start (8);
    s_wait_ready ();
    json_decref (s_create (s_pod ("bad-mem", "lots", NULL)));
    json_decref (s_create (s_pod ("bad-cpu", NULL, "-1")));
    json_t *interp = s_pod ("bad-interp", NULL, NULL);
    lss_obj_set_annotation (interp, LSS_ANN_INTERPRETERS, "python=../../etc/shadow");
    json_decref (s_create (interp));
    json_t *net = s_pod ("bad-net", NULL, NULL);
    lss_obj_set_annotation (net, LSS_ANN_NETWORK, "everything");
    json_decref (s_create (net));
    const struct {
        const char *name, *needle;
    } cases[] = {{"bad-mem", "limits.memory"},
                 {"bad-cpu", "limits.cpu"},
                 {"bad-interp", "interpreters"},
                 {"bad-net", "network"}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        json_t *pod = s_wait_phase (cases[i].name, "Failed", false);
        assert_string_equal (lss_obj_str (pod, "status.reason"), "InvalidSpec");
        const char *msg = lss_obj_str (pod, "status.message");
        if (!msg || !strstr (msg, cases[i].needle))
            fail_msg ("%s: message '%s' does not name %s", cases[i].name, msg ? msg : "",
                      cases[i].needle);
        json_decref (pod);
    }
    assert_int_equal (s_state_entries (), 0); /* no sandbox was made for any */
    s_node_kill (SIGTERM);
}

static void test_sandbox_death_fails_pod (void **state)
{
    (void)state;
    SKIP_UNLESS_SANDBOXES ();
    s_node_start (8);
    s_wait_ready ();
    json_t *created = s_create (s_pod ("dies", NULL, NULL));
    json_t *pod = s_wait_phase ("dies", "Running", true);
    pid_t init = s_init_pid (pod);
    assert_true (init > 0);
    assert_int_equal (kill (init, SIGKILL), 0); /* the sandbox ends by itself */
    json_decref (pod);
    pod = s_wait_phase ("dies", "Failed", false);
    json_t *term = lss_obj_at (json_array_get (lss_obj_at (pod, "status.containerStatuses"), 0),
                               "state.terminated");
    assert_non_null (term);
    assert_string_equal (lss_obj_str (pod, "status.reason"), "Signaled");
    assert_int_equal (lss_obj_int (term, "signal", 0), 9);
    assert_int_equal (lss_obj_int (term, "exitCode", 0), 137);
    assert_null (lss_obj_str (pod, "status.agentEndpoint"));
    /* Its slot is freed once the ending is in the Pod. */
    char dir[256];
    s_sandbox_dir (created, dir, sizeof dir);
    s_wait_gone (dir);
    json_decref (pod);
    json_decref (created);
    s_node_kill (SIGTERM);
}

static void test_node_full_waits (void **state)
{
    (void)state;
    SKIP_UNLESS_SANDBOXES ();
    s_node_start (1);
    s_wait_ready ();
    json_decref (s_create (s_pod ("first", NULL, NULL)));
    json_decref (s_wait_phase ("first", "Running", true));
    json_decref (s_create (s_pod ("second", NULL, NULL)));
    json_t *pod = s_wait_phase ("second", "Pending", false);
    long long deadline = tp_now_ms () + WAIT_MS;
    while (!lss_obj_str (pod, "status.reason") && tp_now_ms () < deadline) {
        json_decref (pod);
        s_sleep_ms (20);
        pod = s_get ("second");
    }
    assert_string_equal (lss_obj_str (pod, "status.reason"), "NodeFull");
    json_decref (pod);
    s_delete ("first");
    json_decref (s_wait_phase ("second", "Running", true));
    s_node_kill (SIGTERM);
}

static void test_restart_adopts (void **state)
{
    (void)state;
    SKIP_UNLESS_SANDBOXES ();
    s_node_start (8);
    s_wait_ready ();
    json_decref (s_create (s_pod ("keep", NULL, NULL)));
    json_t *gone = s_create (s_pod ("gone", NULL, NULL));
    json_t *keep = s_wait_phase ("keep", "Running", true);
    json_decref (s_wait_phase ("gone", "Running", true));
    pid_t keep_init = s_init_pid (keep);
    zsock_t *sock = s_agent (keep);
    char gone_dir[256];
    s_sandbox_dir (gone, gone_dir, sizeof gone_dir);

    /* SIGTERM: the node exits, sandboxes stay. */
    s_node_kill (SIGTERM);
    assert_int_equal (kill (keep_init, 0), 0);
    assert_true (s_agent_answers (sock));
    s_node_start (8);
    s_wait_ready ();
    json_t *again = s_wait_phase ("keep", "Running", true);
    assert_int_equal (s_init_pid (again), keep_init);
    json_decref (again);

    /* kill -9; meanwhile one Pod is deleted, one created, one claims a lost sandbox. */
    s_node_kill (SIGKILL);
    s_delete ("gone");
    json_decref (s_create (s_pod ("new", NULL, NULL)));
    json_t *lost = s_create (s_pod ("lost", NULL, NULL));
    json_object_set_new (lost, "status", json_pack ("{s:s}", "phase", "Running"));
    assert_int_equal (lss_store_update_status (s_store, lost, NULL, NULL, 0), 0);
    json_decref (lost);
    assert_int_equal (kill (keep_init, 0), 0);

    s_node_start (8);
    s_wait_ready ();
    s_wait_gone (gone_dir);
    json_decref (s_wait_phase ("new", "Running", true));
    json_t *l = s_wait_phase ("lost", "Failed", false);
    assert_string_equal (lss_obj_str (l, "status.reason"), "Lost");
    json_decref (l);
    again = s_wait_phase ("keep", "Running", true);
    assert_int_equal (s_init_pid (again), keep_init); /* adopted, not restarted */
    assert_true (s_agent_answers (sock));             /* the same agent, same connection */
    json_decref (again);
    zsock_destroy (&sock);
    json_decref (keep);
    json_decref (gone);
    s_node_kill (SIGTERM);
}

/* 100 Pods created at once all become Ready; reports how long that took. */
static void test_hundred_pods_at_once (void **state)
{
    (void)state;
    SKIP_UNLESS_SANDBOXES ();
    enum { N = 100 };
    s_node_start (128);
    s_wait_ready ();
    long long t0 = tp_now_ms ();
    for (int i = 0; i < N; i++) {
        char name[32];
        snprintf (name, sizeof name, "many-%d", i);
        json_decref (s_create (s_pod (name, "64Mi", NULL)));
    }
    long long created = tp_now_ms ();
    for (int i = 0; i < N; i++) {
        char name[32];
        snprintf (name, sizeof name, "many-%d", i);
        json_decref (s_wait_phase (name, "Running", true));
    }
    long long ready = tp_now_ms ();
    char *metrics = malloc (1 << 20);
    assert_int_equal (s_http_get ("/metrics", metrics, 1 << 20), 200);
    const char *sum = strstr (metrics, "lss_node_start_latency_seconds_sum ");
    const char *count = strstr (metrics, "lss_node_start_latency_seconds_count ");
    assert_non_null (sum);
    assert_non_null (count);
    double total = strtod (sum + strlen ("lss_node_start_latency_seconds_sum "), NULL);
    long n = strtol (count + strlen ("lss_node_start_latency_seconds_count "), NULL, 10);
    assert_int_equal (n, N);
    print_message ("%d Pods: created in %lld ms, all Ready %lld ms after the first create; "
                   "mean Pod seen -> Ready %.1f ms\n",
                   N, created - t0, ready - t0, total * 1000.0 / (double)n);
    free (metrics);
    for (int i = 0; i < N; i++) {
        char name[32];
        snprintf (name, sizeof name, "many-%d", i);
        s_delete (name);
    }
    long long deadline = tp_now_ms () + WAIT_MS;
    while (s_state_entries () > 0 && tp_now_ms () < deadline)
        s_sleep_ms (20);
    assert_int_equal (s_state_entries (), 0);
    s_node_kill (SIGTERM);
}

/* ------------------------------------------------------------------ node_pod units */

static json_t *s_unit_pod (void)
{
    snprintf (s_fx.node, sizeof s_fx.node, "n");
    json_t *pod = s_pod ("unit", "128Mi", "500m");
    json_object_set_new (json_object_get (pod, "metadata"), "uid", json_string ("u-1"));
    return pod;
}

static void test_pod_ids (void **state)
{
    (void)state;
    char a[NODE_POD_ID_SIZE], b[NODE_POD_ID_SIZE], c[NODE_POD_ID_SIZE];
    assert_int_equal (node_pod_sandbox_id ("ns", "name", "uid-1", a, sizeof a), 0);
    assert_int_equal (node_pod_sandbox_id ("ns", "name", "uid-1", b, sizeof b), 0);
    assert_string_equal (a, b); /* stable */
    assert_true (lss_sandbox_id_valid (a));
    assert_true (node_pod_is_sandbox_id (a));
    assert_int_equal (node_pod_sandbox_id ("ns", "name", "uid-2", c, sizeof c), 0);
    assert_string_not_equal (a, c); /* a new incarnation, a new sandbox */
    assert_int_equal (node_pod_sandbox_id ("ns/name", "", "uid-1", c, sizeof c), 0);
    assert_string_not_equal (a, c);
    assert_int_equal (node_pod_sandbox_id ("ns", "name", "uid-1", c, 8), -1);
    assert_false (node_pod_is_sandbox_id ("sb-123"));
    assert_false (node_pod_is_sandbox_id ("pod-0123456789abcdeg"));
    /* Identity checks: hostile metadata is refused. */
    json_t *pod = s_unit_pod ();
    node_pod_ident_t id;
    char err[256];
    assert_int_equal (node_pod_ident (pod, &id, err, sizeof err), 0);
    assert_string_equal (id.key, NS "/unit");
    json_object_set_new (json_object_get (pod, "metadata"), "name", json_string ("../x"));
    assert_int_equal (node_pod_ident (pod, &id, err, sizeof err), -1);
    json_object_set_new (json_object_get (pod, "metadata"), "name", json_integer (3));
    assert_int_equal (node_pod_ident (pod, &id, err, sizeof err), -1);
    json_object_set_new (json_object_get (pod, "metadata"), "name", json_string ("ok"));
    json_object_set_new (json_object_get (pod, "metadata"), "uid", json_string ("a b"));
    assert_int_equal (node_pod_ident (pod, &id, err, sizeof err), -1);
    json_decref (pod);
}

static void test_pod_spec (void **state)
{
    (void)state;
    char err[256] = "";
    json_t *pod = s_unit_pod ();
    lss_obj_set_annotation (pod, LSS_ANN_NETWORK, "egress");
    lss_obj_set_annotation (pod, LSS_ANN_INTERPRETERS,
                            "python=/usr/bin/python3, r=/usr/bin/Rscript");
    lss_sandbox_spec_t *spec = node_pod_spec (pod, "pod-0", "/bin/sh", err, sizeof err);
    if (!spec)
        fail_msg ("spec: %s", err);
    assert_int_equal (spec->memory_bytes, 128ll << 20);
    assert_int_equal (spec->cpu_millicores, 500);
    assert_int_equal (spec->ephemeral_bytes, 64ll << 20);
    assert_true (spec->network);
    assert_int_equal (spec->level, LSS_SANDBOX_LEVEL_STANDARD);
    bool found = false;
    for (size_t i = 0; i < spec->argc; i++)
        found |= strcmp (spec->argv[i], "r=/usr/bin/Rscript") == 0;
    assert_true (found);
    lss_sandbox_spec_destroy (&spec);
    /* high: never network */
    lss_obj_set_annotation (pod, LSS_ANN_LEVEL, "high");
    spec = node_pod_spec (pod, "pod-0", "/bin/sh", err, sizeof err);
    assert_non_null (spec);
    assert_false (spec->network);
    assert_int_equal (spec->level, LSS_SANDBOX_LEVEL_HIGH);
    lss_sandbox_spec_destroy (&spec);
    /* each bad field is named */
    const struct {
        const char *ann, *value, *needle;
    } bad[] = {
        {LSS_ANN_LEVEL, "extreme", "security-level"},
        {LSS_ANN_INTERPRETERS, "python", "interpreters"},
        {LSS_ANN_INTERPRETERS, "py=/usr/../bin/x", "interpreters"},
        {LSS_ANN_INTERPRETERS, "py=/usr/bin/x;rm", "interpreters"},
        {LSS_ANN_INTERPRETERS, "Py=/usr/bin/x", "interpreters"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        json_t *p = s_unit_pod ();
        lss_obj_set_annotation (p, bad[i].ann, bad[i].value);
        assert_null (node_pod_spec (p, "pod-0", "/bin/sh", err, sizeof err));
        if (!strstr (err, bad[i].needle))
            fail_msg ("%s=%s: '%s'", bad[i].ann, bad[i].value, err);
        json_decref (p);
    }
    const char *limits[][2] = {{"memory", "1Ki"},
                               {"memory", "12Zi"},
                               {"cpu", "0"},
                               {"cpu", "abc"},
                               {"cpu", "1.5.5"},
                               {"memory", ""},
                               {"ephemeral-storage", "-5Gi"}};
    for (size_t i = 0; i < sizeof limits / sizeof limits[0]; i++) {
        json_t *p = s_unit_pod ();
        json_t *l = lss_obj_at (json_array_get (lss_obj_at (p, "spec.containers"), 0),
                                "resources.limits");
        json_object_set_new (l, limits[i][0], json_string (limits[i][1]));
        assert_null (node_pod_spec (p, "pod-0", "/bin/sh", err, sizeof err));
        char needle[64];
        snprintf (needle, sizeof needle, "limits.%s", limits[i][0]);
        if (!strstr (err, needle))
            fail_msg ("%s=%s: '%s'", limits[i][0], limits[i][1], err);
        json_decref (p);
    }
    json_t *p = s_unit_pod ();
    json_object_set_new (json_object_get (p, "spec"), "containers", json_string ("x"));
    assert_null (node_pod_spec (p, "pod-0", "/bin/sh", err, sizeof err));
    assert_non_null (strstr (err, "spec.containers"));
    json_decref (p);
    json_decref (pod);
}

static void test_pod_status_shapes (void **state)
{
    (void)state;
    json_t *pod = s_unit_pod ();
    assert_true (node_pod_for_node (pod, "n"));
    assert_false (node_pod_for_node (pod, "other"));
    lss_sandbox_status_t st = {
        .phase = LSS_SANDBOX_RUNNING, .started_ms = 1000, .exit_code = -1};
    snprintf (st.reason, sizeof st.reason, "Running");
    json_t *a = node_pod_with_sandbox_status (pod, &st, false, "ipc:///x", 5000);
    assert_string_equal (lss_obj_str (a, "status.phase"), "Running");
    assert_false (node_pod_was_started (pod));
    assert_true (node_pod_was_started (a));
    json_t *b = node_pod_with_sandbox_status (a, &st, true, "ipc:///x", 9000);
    assert_string_equal (lss_obj_str (b, "status.agentEndpoint"), "ipc:///x");
    assert_string_equal (
        json_string_value (json_object_get (lss_obj_condition (b, "Ready"), "status")), "True");
    /* the same state again changes nothing (no write loops) */
    json_t *c = node_pod_with_sandbox_status (b, &st, true, "ipc:///x", 20000);
    assert_true (json_equal (json_object_get (b, "status"), json_object_get (c, "status")));
    st.phase = LSS_SANDBOX_EXITED;
    st.exit_code = 0;
    st.finished_ms = 7000;
    snprintf (st.reason, sizeof st.reason, "Completed");
    json_t *d = node_pod_with_sandbox_status (c, &st, true, "ipc:///x", 20000);
    assert_string_equal (lss_obj_str (d, "status.phase"), "Succeeded");
    assert_true (node_pod_terminal (d));
    assert_null (lss_obj_str (d, "status.agentEndpoint"));
    st.exit_code = 137;
    st.signal = 9;
    snprintf (st.reason, sizeof st.reason, "OOMKilled");
    json_t *e = node_pod_with_sandbox_status (c, &st, true, "ipc:///x", 20000);
    assert_string_equal (lss_obj_str (e, "status.phase"), "Failed");
    assert_string_equal (lss_obj_str (e, "status.reason"), "OOMKilled");
    json_t *f = node_pod_with_pending (pod, "NodeFull", "full", 1);
    assert_string_equal (lss_obj_str (f, "status.phase"), "Pending");
    assert_false (node_pod_terminal (f));
    json_t *g = node_pod_with_failed (a, "Lost", "gone", 1);
    assert_string_equal (lss_obj_str (g, "status.reason"), "Lost");
    assert_true (node_pod_terminal (g));
    json_decref (a);
    json_decref (b);
    json_decref (c);
    json_decref (d);
    json_decref (e);
    json_decref (f);
    json_decref (g);
    json_decref (pod);
}

/* ------------------------------------------------------------------ main */

/* True if `lss sandbox preflight` says standard sandboxes can start here. */
static bool s_preflight_ok (char *why, size_t why_size)
{
    char bin[PATH_MAX];
    tp_build_path (bin, sizeof bin, "bin/lss");
    char *argv[] = {bin, "sandbox", "preflight", NULL};
    tp_proc_t p;
    if (tp_spawn (&p, argv, NULL, true)) {
        snprintf (why, why_size, "cannot run lss sandbox preflight");
        return false;
    }
    static char text[1 << 16];
    char line[4096];
    size_t len = 0;
    text[0] = '\0';
    while (tp_read_line (&p, line, sizeof line, 30000) == 0) {
        size_t n = strlen (line);
        if (len + n + 2 > sizeof text)
            break;
        memcpy (text + len, line, n);
        text[len + n] = '\n';
        len += n + 1;
        text[len] = '\0';
    }
    tp_wait (&p, 30000);
    json_t *report = json_loads (text, 0, NULL);
    json_t *std = lss_obj_at (report, "levels.standard");
    bool ok = json_is_true (json_object_get (std, "allowed"));
    if (!ok) {
        char *missing =
            json_dumps (json_object_get (std, "missing"), JSON_COMPACT | JSON_ENCODE_ANY);
        snprintf (why, why_size, "standard sandboxes cannot start: %s",
                  missing ? missing : "no preflight report");
        free (missing);
    }
    json_decref (report);
    return ok;
}

static int s_setup_all (void **state)
{
    if (s_group_setup (state))
        return -1;
    char err[256];
    s_store = lss_store_pg_new (s_dsn, err, sizeof err);
    if (!s_store) {
        fprintf (stderr, "store: %s\n", err);
        return -1;
    }
    /* Sandboxes need root (per-sandbox host uids) and a working bubblewrap. The host is
     * asked through `lss sandbox preflight` (a child: under valgrind, this process
     * could not load seccomp filters or make namespaces itself, lss-node can). */
    char why[256] = "not root";
    s_can_run = geteuid () == 0 && s_preflight_ok (why, sizeof why);
    if (!s_can_run)
        printf ("sandbox cases skipped: %s\n", why);
    return 0;
}

static int s_teardown_all (void **state)
{
    lss_store_destroy (&s_store);
    return s_group_teardown (state);
}

int main (void)
{
    lss_log_init ("test_node", LSS_LOG_ERROR);
    zsys_init ();
    if (getenv ("TEST_FILTER"))
        cmocka_set_test_filter (getenv ("TEST_FILTER"));
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_pod_ids),
        cmocka_unit_test (test_pod_spec),
        cmocka_unit_test (test_pod_status_shapes),
        cmocka_unit_test_setup_teardown (test_pod_runs_then_delete_stops, s_fx_setup,
                                         s_fx_teardown),
        cmocka_unit_test_setup_teardown (test_invalid_specs_fail, s_fx_setup, s_fx_teardown),
        cmocka_unit_test_setup_teardown (test_sandbox_death_fails_pod, s_fx_setup,
                                         s_fx_teardown),
        cmocka_unit_test_setup_teardown (test_node_full_waits, s_fx_setup, s_fx_teardown),
        cmocka_unit_test_setup_teardown (test_restart_adopts, s_fx_setup, s_fx_teardown),
        cmocka_unit_test_setup_teardown (test_hundred_pods_at_once, s_fx_setup, s_fx_teardown),
    };
    return cmocka_run_group_tests (tests, s_setup_all, s_teardown_all);
}
