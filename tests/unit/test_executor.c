/*  lss-executor as a real process between a real PostgreSQL (Sandbox objects) and real
 *  lss-agent processes on ipc endpoints, driven through lss_exec_client and raw
 *  DEALERs: round trip, code, stdin, cancel, deadline cap, unknown / not-running
 *  sandboxes, files, a killed agent, a silent requester, a killed executor, 100 MB to a
 *  slow consumer with the executor's peak RSS bounded, 50 concurrent streams. Plus the
 *  flow-control logic (executor_flow) on its own. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <czmq.h>
#include <pthread.h>
#include <sys/stat.h>

#include "executor_flow.h"
#include "lss_bus.h"
#include "lss_curve.h"
#include "lss_exec_client.h"
#include "lss_store.h"
#include "lss_testproc.h"
#include "lss_testpg.h"
#include "lss_util.h"

#define AGENT_TIMEOUT_MS     1500
#define REQUESTER_TIMEOUT_MS 1500
#define MAX_TIMEOUT_MS       3000

static char s_tmp[128];
static char s_exec_ep[256], s_pub_ep[256];
static tp_proc_t s_executor;
static tp_proc_t s_agents[2];
static char s_agent_ep[2][256];
static lss_store_t *s_store;
static const char *s_max_timeout; /* NULL = MAX_TIMEOUT_MS */
/* CURVE: the executor's key pair, one agent on TCP that allows it, that agent's public key */
static char s_exec_pub[41], s_exec_sec[41], s_agent_pub[41], s_agent_sec[41];
static tp_proc_t s_curve_agent;
static char s_curve_ep[64];

/* ------------------------------------------------------------------ fixture */
static void s_rmrf (const char *dir)
{
    pid_t pid = fork ();
    if (pid == 0) {
        execl ("/bin/rm", "rm", "-rf", dir, (char *)NULL);
        _exit (127);
    }
    waitpid (pid, NULL, 0);
}

static int s_agent_start (int i)
{
    char ws[200], root[256], path[PATH_MAX];
    snprintf (ws, sizeof ws, "%s/ws%d", s_tmp, i);
    mkdir (ws, 0700);
    snprintf (root, sizeof root, "/workspace=%s", ws);
    snprintf (s_agent_ep[i], sizeof s_agent_ep[i], "ipc://%s/agent%d.sock", s_tmp, i);
    char *argv[] = {(char *)tp_build_path (path, sizeof path, "bin/lss-agent"),
                    "--endpoint",
                    s_agent_ep[i],
                    "--root",
                    root,
                    "--max-execs",
                    "128",
                    "--requester-timeout",
                    "3000",
                    NULL};
    if (tp_spawn (&s_agents[i], argv, NULL, true))
        return -1;
    char line[512];
    return tp_read_line (&s_agents[i], line, sizeof line, 10000) == 0 && strstr (line, "ready ")
               ? 0
               : -1;
}

static int s_sandbox_key (const char *name, const char *phase, const char *endpoint,
                          const char *key);
static int s_sandbox (const char *name, const char *phase, const char *endpoint)
{
    return s_sandbox_key (name, phase, endpoint, NULL);
}

/*  An agent on loopback TCP that speaks CURVE and allows only the executor's key. */
static int s_curve_agent_start_once (void);
/*  The probed free port can be taken before the agent binds it: a few tries. */
static int s_curve_agent_start (void)
{
    for (int i = 0; i < 5; i++)
        if (s_curve_agent_start_once () == 0)
            return 0;
    return -1;
}

static int s_curve_agent_start_once (void)
{
    zsock_t *probe = zsock_new (ZMQ_ROUTER); /* a free port */
    int port = probe ? zsock_bind (probe, "tcp://127.0.0.1:*") : -1;
    zsock_destroy (&probe);
    if (port <= 0)
        return -1;
    snprintf (s_curve_ep, sizeof s_curve_ep, "tcp://127.0.0.1:%d", port);
    char ws[200], root[256], path[PATH_MAX], env_secret[80];
    snprintf (ws, sizeof ws, "%s/wscurve", s_tmp);
    mkdir (ws, 0700);
    snprintf (root, sizeof root, "/workspace=%s", ws);
    snprintf (env_secret, sizeof env_secret, "LSS_AGENT_CURVE_SECRET=%s", s_agent_sec);
    char *envp[] = {env_secret, "PATH=/usr/bin:/bin", NULL};
    char *argv[] = {(char *)tp_build_path (path, sizeof path, "bin/lss-agent"),
                    "--endpoint",
                    s_curve_ep,
                    "--root",
                    root,
                    "--curve-client",
                    s_exec_pub,
                    NULL};
    if (tp_spawn (&s_curve_agent, argv, envp, true))
        return -1;
    char line[512];
    return tp_read_line (&s_curve_agent, line, sizeof line, 10000) == 0 &&
                   strstr (line, "ready ")
               ? 0
               : -1;
}

static int s_sandbox_key (const char *name, const char *phase, const char *endpoint,
                          const char *key)
{
    char err[LSS_STORE_ERR_SIZE];
    json_t *o = json_pack ("{s:s, s:s, s:{s:s, s:s}, s:{s:s}}", "apiVersion",
                           "llmsafespace.dev/v1", "kind", "Sandbox", "metadata", "name", name,
                           "namespace", "default", "spec", "runtime", "python:3.11");
    json_t *out = NULL;
    int rc = lss_store_create (s_store, o, &out, err, sizeof err);
    json_decref (o);
    if (rc) {
        fprintf (stderr, "create %s: %s\n", name, err);
        return -1;
    }
    json_object_set_new (out, "status",
                         endpoint
                             ? json_pack ("{s:s, s:s}", "phase", phase, "endpoint", endpoint)
                             : json_pack ("{s:s}", "phase", phase));
    if (key)
        json_object_set_new (json_object_get (out, "status"), "agentPublicKey",
                             json_string (key));
    rc = lss_store_update_status (s_store, out, NULL, err, sizeof err);
    json_decref (out);
    if (rc)
        fprintf (stderr, "status %s: %s\n", name, err);
    return rc ? -1 : 0;
}

static int s_executor_start (void)
{
    char path[PATH_MAX], portfile[256], v[64];
    snprintf (portfile, sizeof portfile, "%s/port", s_tmp);
    unlink (portfile);
    setenv ("LSS_EXECUTOR_ROUTER_ENDPOINT", s_exec_ep, 1);
    setenv ("LSS_EXECUTOR_PUB_ENDPOINT", s_pub_ep, 1);
    setenv ("LSS_EXECUTOR_ADMIN_LISTEN", "127.0.0.1:0", 1);
    setenv ("LSS_STORE_DSN", s_dsn, 1);
    snprintf (v, sizeof v, "%d", AGENT_TIMEOUT_MS);
    setenv ("LSS_EXECUTOR_AGENT_TIMEOUT", v, 1);
    snprintf (v, sizeof v, "%d", REQUESTER_TIMEOUT_MS);
    setenv ("LSS_EXECUTOR_REQUESTER_TIMEOUT", v, 1);
    snprintf (v, sizeof v, "%d", MAX_TIMEOUT_MS);
    setenv ("LSS_EXECUTOR_MAX_TIMEOUT", s_max_timeout ? s_max_timeout : v, 1);
    setenv ("LSS_EXECUTOR_WINDOW", "256Ki", 1);
    setenv ("LSS_EXECUTOR_CURVE_SECRET", s_exec_sec, 1);
    setenv ("LSS_LOG_LEVEL", "warn", 1);
    setenv ("LSS_TEST_PORT_FILE", portfile, 1);
    /* A small ASan quarantine, so the RSS measured is the executor's, not freed memory
     * ASan keeps poisoned (no effect on a plain build). */
    const char *asan = getenv ("ASAN_OPTIONS");
    char asan_opts[1024];
    snprintf (asan_opts, sizeof asan_opts, "%s%squarantine_size_mb=4", asan ? asan : "",
              asan && *asan ? ":" : "");
    setenv ("ASAN_OPTIONS", asan_opts, 1);
    char *argv[] = {(char *)tp_build_path (path, sizeof path, "bin/lss-executor"), NULL};
    int rc = tp_spawn (&s_executor, argv, NULL, false);
    if (asan)
        setenv ("ASAN_OPTIONS", asan, 1);
    else
        unsetenv ("ASAN_OPTIONS");
    unsetenv ("LSS_TEST_PORT_FILE");
    if (rc)
        return -1;
    /* ready when it answers a ping */
    lss_exec_client_t *c = lss_exec_client_new (s_exec_ep, NULL);
    long long deadline = tp_now_ms () + 15000;
    rc = -1;
    while (c && rc && tp_now_ms () < deadline)
        rc = lss_exec_client_ping (c, 200);
    lss_exec_client_destroy (&c);
    return rc;
}

static int s_setup (void **state)
{
    if (s_group_setup (state))
        return -1;
    snprintf (s_tmp, sizeof s_tmp, "/tmp/lss-exec-XXXXXX");
    if (!mkdtemp (s_tmp))
        return -1;
    snprintf (s_exec_ep, sizeof s_exec_ep, "ipc://%s/executor.sock", s_tmp);
    snprintf (s_pub_ep, sizeof s_pub_ep, "ipc://%s/pub.sock", s_tmp);
    char err[LSS_STORE_ERR_SIZE];
    s_store = lss_store_pg_new (s_dsn, err, sizeof err);
    if (!s_store) {
        fprintf (stderr, "store: %s\n", err);
        return -1;
    }
    char other_pub[41], other_sec[41];
    if (lss_curve_keypair (s_exec_pub, s_exec_sec) ||
        lss_curve_keypair (s_agent_pub, s_agent_sec) ||
        lss_curve_keypair (other_pub, other_sec) || s_curve_agent_start () ||
        s_sandbox_key ("sb-curve", "Running", s_curve_ep, s_agent_pub) ||
        s_sandbox_key ("sb-curve-wrong", "Running", s_curve_ep, other_pub) ||
        s_sandbox_key ("sb-curve-bad", "Running", s_curve_ep, "not-a-key"))
        return -1;
    if (s_agent_start (0) || s_sandbox ("sb-a", "Running", s_agent_ep[0]) ||
        s_sandbox ("sb-pending", "Pending", NULL) ||
        s_sandbox ("sb-badep", "Running", "ipc://relative,tcp://x:1") || s_executor_start ())
        return -1;
    return 0;
}

static int s_teardown (void **state)
{
    if (s_executor.pid > 0) {
        kill (s_executor.pid, SIGTERM);
        int st = tp_wait (&s_executor, 10000);
        if (!WIFEXITED (st) || WEXITSTATUS (st) != 0)
            fprintf (stderr, "executor did not stop cleanly (status %d)\n", st);
    }
    if (s_curve_agent.pid > 0) {
        kill (s_curve_agent.pid, SIGTERM);
        tp_wait (&s_curve_agent, 5000);
    }
    for (int i = 0; i < 2; i++)
        if (s_agents[i].pid > 0) {
            kill (s_agents[i].pid, SIGTERM);
            tp_wait (&s_agents[i], 5000);
        }
    lss_store_destroy (&s_store);
    if (*s_tmp)
        s_rmrf (s_tmp);
    return s_group_teardown (state);
}

/* ------------------------------------------------------------------ helpers */
static int s_run (lss_exec_start_t *req, const lss_exec_client_opts_t *opts,
                  lss_exec_result_t *res)
{
    lss_exec_client_t *c = lss_exec_client_new (s_exec_ep, NULL);
    assert_non_null (c);
    int rc = lss_exec_client_run (c, req, opts, res);
    lss_exec_client_destroy (&c);
    return rc;
}

static void s_shell (const char *sandbox, const char *cmd, lss_exec_result_t *res,
                     int expect_rc)
{
    lss_exec_start_t req = {.sandbox = (char *)sandbox, .shell = (char *)cmd};
    int rc = s_run (&req, NULL, res);
    if (rc != expect_rc)
        fail_msg ("run '%s' returned %d (%s: %s)", cmd, rc, res->error_code, res->error);
}

static bool s_alive (pid_t pid)
{
    return kill (pid, 0) == 0;
}

/* ------------------------------------------------------------------ flow logic */
static void test_flow_logic (void **state)
{
    (void)state;
    exec_flow_t f;
    exec_flow_init (&f, 4096, 10);
    uint8_t data[4096];
    for (int i = 0; i < 4096; i++)
        data[i] = (uint8_t)i;
    assert_int_equal (exec_flow_put (&f, EXEC_FLOW_STDOUT, data, 100), 0);
    assert_int_equal (exec_flow_put (&f, EXEC_FLOW_STDOUT, data + 100, 100), 0); /* merged */
    assert_int_equal (exec_flow_put (&f, EXEC_FLOW_STDERR, data, 50), 0);
    assert_int_equal (f.buffered, 250);
    assert_int_equal (f.agent_credit + f.buffered + f.ungranted, 4096);
    /* over its credit: refused, nothing kept */
    assert_int_equal (exec_flow_put (&f, EXEC_FLOW_STDOUT, data, 4096), -1);
    int stream;
    const uint8_t *p;
    size_t n = exec_flow_peek (&f, &stream, &p, 1 << 20);
    assert_int_equal (n, 10); /* bounded by the requester's credit */
    assert_int_equal (stream, EXEC_FLOW_STDOUT);
    assert_memory_equal (p, data, 10);
    exec_flow_consume (&f, n);
    assert_int_equal (exec_flow_peek (&f, &stream, &p, 1 << 20), 0);
    assert_int_equal (exec_flow_credit (&f, 0), -1);
    assert_int_equal (exec_flow_credit (&f, EXEC_FLOW_MAX_CREDIT + 1), -1);
    assert_int_equal (exec_flow_credit (&f, 1000), 0);
    n = exec_flow_peek (&f, &stream, &p, 1 << 20);
    assert_int_equal (n, 190); /* the rest of the merged stdout record */
    assert_memory_equal (p, data + 10, 190);
    exec_flow_consume (&f, n);
    n = exec_flow_peek (&f, &stream, &p, 20);
    assert_int_equal (n, 20);
    assert_int_equal (stream, EXEC_FLOW_STDERR);
    exec_flow_consume (&f, n);
    assert_int_equal (exec_flow_grant_due (&f), 1024 > 220 ? 0 : 220); /* under a quarter */
    assert_int_equal (f.agent_credit + f.buffered + f.ungranted, 4096);
    /* the agent uses the rest of its credit: a grant is due though under a quarter */
    assert_int_equal (exec_flow_put (&f, EXEC_FLOW_STDOUT, data, (size_t)f.agent_credit), 0);
    assert_int_equal (f.buffered, 30 + 4096 - 250);
    assert_true (f.buffered <= 4096);
    int64_t due = exec_flow_grant_due (&f);
    assert_int_equal (due, 220);
    exec_flow_granted (&f, due);
    assert_int_equal (f.agent_credit + f.buffered + f.ungranted, 4096);
    exec_flow_discard (&f);
    assert_int_equal (f.buffered, 0);
    assert_int_equal (exec_flow_put (&f, EXEC_FLOW_STDOUT, data, (size_t)f.agent_credit), 0);
    assert_int_equal (f.agent_credit + f.buffered + f.ungranted, 4096);
    exec_flow_release (&f);
}

/* ------------------------------------------------------------------ executions */
static void test_round_trip_and_events (void **state)
{
    (void)state;
    zsock_t *sub = lss_bus_socket_new (ZMQ_SUB, s_pub_ep, NULL);
    assert_non_null (sub);
    zsock_set_subscribe (sub, "executor.");
    /* a slow joiner would miss the first events: run until one is seen */
    lss_exec_result_t res;
    bool seen_end = false;
    for (int attempt = 0; attempt < 20 && !seen_end; attempt++) {
        s_shell ("default/sb-a", "echo out; echo err >&2; exit 7", &res, 0);
        assert_null (res.end->error);
        assert_int_equal (res.end->exit_code, 7);
        assert_int_equal (res.out.len, 4);
        assert_memory_equal (res.out.data, "out\n", 4);
        assert_int_equal (res.err.len, 4);
        assert_memory_equal (res.err.data, "err\n", 4);
        assert_true (res.pid > 0);
        lss_exec_result_clear (&res);
        zpoller_t *p = zpoller_new (sub, NULL);
        while (!seen_end && zpoller_wait (p, 300)) {
            char topic[LSS_BUS_TOPIC_MAX];
            lss_envelope_t env;
            lss_msg_kind_t kind;
            void *body = NULL;
            char err[256];
            assert_int_equal (lss_bus_recv (sub, NULL, topic, sizeof topic, &env, &kind, &body,
                                            err, sizeof err),
                              0);
            assert_int_equal (kind, LSS_MSG_event);
            assert_string_equal (env.type, "executor.event");
            lss_event_t *ev = body;
            if (strcmp (topic, "executor.ExecEnded.default.sb-a") == 0) {
                assert_string_equal (ev->reason, "ExecEnded");
                assert_int_equal (
                    json_integer_value (json_object_get (ev->details, "exit_code")), 7);
                seen_end = true;
            } else
                assert_string_equal (topic, "executor.ExecStarted.default.sb-a");
            lss_proto_body_free (kind, &body);
        }
        zpoller_destroy (&p);
    }
    assert_true (seen_end);
    zsock_destroy (&sub);

    /* argv, many round trips on one client (the agent connection is reused) */
    lss_exec_client_t *c = lss_exec_client_new (s_exec_ep, NULL);
    char *argv[] = {"/bin/echo", "hello", "world"};
    for (int i = 0; i < 20; i++) {
        lss_exec_start_t req = {.sandbox = "default/sb-a", .argv = {argv, 3}};
        assert_int_equal (lss_exec_client_run (c, &req, NULL, &res), 0);
        assert_int_equal (res.end->exit_code, 0);
        assert_int_equal (res.out.len, 12);
        assert_memory_equal (res.out.data, "hello world\n", 12);
        lss_exec_result_clear (&res);
    }
    lss_exec_client_destroy (&c);
}

static void test_code_language (void **state)
{
    (void)state;
    const char *code =
        "import sys\nprint(6 * 7)\nprint('oops', file=sys.stderr)\nsys.exit(3)\n";
    lss_exec_start_t req = {.sandbox = "default/sb-a",
                            .language = "python",
                            .code = {(uint8_t *)code, strlen (code)}};
    lss_exec_result_t res;
    assert_int_equal (s_run (&req, NULL, &res), 0);
    assert_int_equal (res.end->exit_code, 3);
    assert_int_equal (res.out.len, 3);
    assert_memory_equal (res.out.data, "42\n", 3);
    assert_memory_equal (res.err.data, "oops\n", 5);
    lss_exec_result_clear (&res);
    /* an unknown language is refused by the agent: the refusal comes back as an error */
    lss_exec_start_t bad = {
        .sandbox = "default/sb-a", .language = "cobol", .code = {(uint8_t *)"x", 1}};
    assert_int_equal (s_run (&bad, NULL, &res), -1);
    assert_string_equal (res.error_code, "invalid_request");
    lss_exec_result_clear (&res);
}

static void s_send_stdin (void *arg, lss_exec_client_t *c, const char *exec_id, int64_t pid)
{
    (void)arg;
    (void)pid;
    lss_exec_client_stdin (c, exec_id, "hello ", 6, false);
    lss_exec_client_stdin (c, exec_id, "stdin\n", 6, true);
}

static void test_stdin_streaming (void **state)
{
    (void)state;
    char *argv[] = {"cat"};
    lss_exec_start_t req = {.sandbox = "default/sb-a", .argv = {argv, 1}, .stdin_open = true};
    lss_exec_client_opts_t o = {.on_started = s_send_stdin};
    lss_exec_result_t res;
    assert_int_equal (s_run (&req, &o, &res), 0);
    assert_int_equal (res.end->exit_code, 0);
    assert_int_equal (res.out.len, 12);
    assert_memory_equal (res.out.data, "hello stdin\n", 12);
    lss_exec_result_clear (&res);
}

static int s_cancel_after_first (void *arg, const char *stream, const uint8_t *data, size_t len)
{
    (void)stream;
    (void)data;
    (void)len;
    (*(int *)arg)++;
    return 1;
}

static void test_cancel (void **state)
{
    (void)state;
    int chunks = 0;
    lss_exec_start_t req = {.sandbox = "default/sb-a",
                            .shell = "while true; do echo tick; sleep 0.05; done"};
    lss_exec_client_opts_t o = {.on_output = s_cancel_after_first, .arg = &chunks};
    lss_exec_result_t res;
    long long t0 = tp_now_ms ();
    assert_int_equal (s_run (&req, &o, &res), 0);
    assert_true (tp_now_ms () - t0 < 5000);
    assert_true (chunks >= 1);
    assert_true (res.end->cancelled);
    assert_int_equal (res.end->exit_code, -1);
    assert_int_equal (res.end->signal, 9);
    assert_false (s_alive ((pid_t)res.pid));
    lss_exec_result_clear (&res);
}

static void test_deadline_capped (void **state)
{
    (void)state;
    /* asks for 100 s; executor.max_timeout (3 s) caps it */
    lss_exec_start_t req = {
        .sandbox = "default/sb-a", .shell = "sleep 30", .timeout_ms = 100000};
    lss_exec_result_t res;
    long long t0 = tp_now_ms ();
    assert_int_equal (s_run (&req, NULL, &res), 0);
    long long took = tp_now_ms () - t0;
    assert_true (res.end->timed_out);
    assert_false (res.end->cancelled); /* also when the executor's deadline cancel won */
    assert_int_equal (res.end->exit_code, -1);
    assert_true (took >= MAX_TIMEOUT_MS - 100 && took < MAX_TIMEOUT_MS + 3000);
    lss_exec_result_clear (&res);
    /* an explicit short one */
    lss_exec_start_t quick = {
        .sandbox = "default/sb-a", .shell = "sleep 30", .timeout_ms = 300};
    t0 = tp_now_ms ();
    assert_int_equal (s_run (&quick, NULL, &res), 0);
    assert_true (res.end->timed_out);
    assert_false (res.end->cancelled);
    assert_true (tp_now_ms () - t0 < 2500);
    lss_exec_result_clear (&res);
}

static void test_bad_sandboxes (void **state)
{
    (void)state;
    lss_exec_result_t res;
    s_shell ("default/nope", "true", &res, -1);
    assert_string_equal (res.error_code, "sandbox_not_found");
    lss_exec_result_clear (&res);
    s_shell ("default/sb-pending", "true", &res, -1);
    assert_string_equal (res.error_code, "sandbox_not_running");
    lss_exec_result_clear (&res);
    s_shell ("default/sb-badep", "true", &res, -1);
    assert_string_equal (res.error_code, "invalid_endpoint");
    lss_exec_result_clear (&res);
    s_shell ("not a ref", "true", &res, -1);
    assert_string_equal (res.error_code, "sandbox_not_found");
    lss_exec_result_clear (&res);
    lss_exec_start_t none = {.shell = "true"};
    assert_int_equal (s_run (&none, NULL, &res), -1);
    assert_string_equal (res.error_code, "invalid_request");
    lss_exec_result_clear (&res);
    /* file requests too */
    lss_exec_client_t *c = lss_exec_client_new (s_exec_ep, NULL);
    lss_file_list_t fl = {.path = "/workspace", .sandbox = "default/sb-pending"};
    lss_msg_kind_t k;
    void *rep;
    assert_int_equal (lss_exec_client_request (c, LSS_MSG_file_list, &fl, 5000, &k, &rep), 0);
    assert_int_equal (k, LSS_MSG_error);
    assert_string_equal (((lss_error_t *)rep)->code, "sandbox_not_running");
    lss_proto_body_free (k, &rep);
    lss_exec_client_destroy (&c);
}

/*  CURVE (cluster mode): a Sandbox whose status names agentPublicKey is reached over
 *  CURVE with executor.curve_secret and works; with the wrong public key the handshake
 *  never completes and the executor ends the execution with an error (agent lost), no
 *  output; a malformed key is
 *  refused before any connection. */
static void test_curve (void **state)
{
    (void)state;
    lss_exec_result_t res;
    s_shell ("default/sb-curve", "echo secure", &res, 0);
    assert_non_null (res.end);
    assert_int_equal (res.end->exit_code, 0);
    assert_int_equal (res.out.len, 7);
    assert_memory_equal (res.out.data, "secure\n", 7);
    lss_exec_result_clear (&res);
    s_shell ("default/sb-curve-wrong", "echo never", &res, 0);
    assert_non_null (res.end); /* ended by the executor: the agent never answered */
    assert_int_equal (res.end->exit_code, -1);
    assert_non_null (res.end->error);
    assert_int_equal (res.out.len, 0);
    lss_exec_result_clear (&res);
    s_shell ("default/sb-curve-bad", "true", &res, -1);
    assert_string_equal (res.error_code, "invalid_endpoint");
    lss_exec_result_clear (&res);
}

static void test_duplicate_and_unknown_ids (void **state)
{
    (void)state;
    zsock_t *d = lss_bus_socket_new (ZMQ_DEALER, s_exec_ep, NULL);
    assert_non_null (d);
    lss_envelope_t env;
    lss_exec_start_t req = {
        .exec_id = "dup", .sandbox = "default/sb-a", .shell = "sleep 1", .credit = 4096};
    for (int i = 0; i < 2; i++) {
        lss_bus_envelope_init (&env, LSS_MSG_exec_start, NULL, "t", 1, NULL);
        assert_int_equal (lss_bus_send (d, NULL, 0, NULL, &env, LSS_MSG_exec_start, &req), 0);
    }
    lss_exec_credit_t cr = {.exec_id = "nope", .bytes = 10};
    lss_bus_envelope_init (&env, LSS_MSG_exec_credit, NULL, "t", 1, NULL);
    assert_int_equal (lss_bus_send (d, NULL, 0, NULL, &env, LSS_MSG_exec_credit, &cr), 0);
    bool exists = false, not_found = false, ended = false;
    zpoller_t *p = zpoller_new (d, NULL);
    long long deadline = tp_now_ms () + 10000;
    while (!(exists && not_found && ended) && tp_now_ms () < deadline) {
        if (!zpoller_wait (p, 500))
            continue;
        lss_msg_kind_t k;
        void *b;
        char err[256];
        assert_int_equal (lss_bus_recv (d, NULL, NULL, 0, &env, &k, &b, err, sizeof err), 0);
        if (k == LSS_MSG_error) {
            lss_error_t *e = b;
            if (strcmp (e->code, "exists") == 0)
                exists = true;
            else if (strcmp (e->code, "not_found") == 0)
                not_found = true;
            else
                fail_msg ("unexpected error %s", e->code);
        } else if (k == LSS_MSG_exec_end)
            ended = true;
        lss_proto_body_free (k, &b);
    }
    zpoller_destroy (&p);
    zsock_destroy (&d);
    assert_true (exists && not_found && ended);
}

static void test_files (void **state)
{
    (void)state;
    lss_exec_client_t *c = lss_exec_client_new (s_exec_ep, NULL);
    lss_msg_kind_t k;
    void *rep;
    const char *text = "file through the executor\n";
    lss_file_write_t w = {.path = "dir/hello.txt",
                          .data = {(uint8_t *)text, strlen (text)},
                          .truncate = true,
                          .parents = true,
                          .sandbox = "default/sb-a"};
    assert_int_equal (lss_exec_client_request (c, LSS_MSG_file_write, &w, 5000, &k, &rep), 0);
    assert_int_equal (k, LSS_MSG_file_written);
    assert_int_equal (((lss_file_written_t *)rep)->size, (int64_t)strlen (text));
    lss_proto_body_free (k, &rep);

    lss_file_read_t r = {.path = "/workspace/dir/hello.txt", .sandbox = "default/sb-a"};
    assert_int_equal (lss_exec_client_request (c, LSS_MSG_file_read, &r, 5000, &k, &rep), 0);
    assert_int_equal (k, LSS_MSG_file_data);
    lss_file_data_t *fd = rep;
    assert_int_equal (fd->data.len, strlen (text));
    assert_memory_equal (fd->data.data, text, strlen (text));
    assert_true (fd->eof);
    lss_proto_body_free (k, &rep);

    lss_file_list_t l = {.path = "dir", .sandbox = "default/sb-a"};
    assert_int_equal (lss_exec_client_request (c, LSS_MSG_file_list, &l, 5000, &k, &rep), 0);
    assert_int_equal (k, LSS_MSG_file_entries);
    json_t *entries = ((lss_file_entries_t *)rep)->entries;
    assert_int_equal (json_array_size (entries), 1);
    assert_string_equal (
        json_string_value (json_object_get (json_array_get (entries, 0), "name")), "hello.txt");
    lss_proto_body_free (k, &rep);

    /* an agent error comes back with the requester's ref */
    lss_file_read_t bad = {.path = "../../etc/passwd", .sandbox = "default/sb-a"};
    assert_int_equal (lss_exec_client_request (c, LSS_MSG_file_read, &bad, 5000, &k, &rep), 0);
    assert_int_equal (k, LSS_MSG_error);
    assert_string_equal (((lss_error_t *)rep)->code, "forbidden_path");
    lss_proto_body_free (k, &rep);

    lss_agent_health_t h = {.sandbox = "default/sb-a"};
    assert_int_equal (lss_exec_client_request (c, LSS_MSG_agent_health, &h, 5000, &k, &rep), 0);
    assert_int_equal (k, LSS_MSG_agent_usage);
    assert_true (((lss_agent_usage_t *)rep)->uptime_ms > 0);
    lss_proto_body_free (k, &rep);
    lss_exec_client_destroy (&c);
}

/* ------------------------------------------------------------------ failures */
static pid_t s_victim;
static void s_kill_victim (void *arg, lss_exec_client_t *c, const char *exec_id, int64_t pid)
{
    (void)c;
    (void)exec_id;
    *(int64_t *)arg = pid;
    kill (s_victim, SIGKILL);
}

static void test_agent_killed (void **state)
{
    (void)state;
    assert_int_equal (s_agent_start (1), 0);
    assert_int_equal (s_sandbox ("sb-b", "Running", s_agent_ep[1]), 0);
    s_victim = s_agents[1].pid;
    int64_t pid = 0;
    lss_exec_start_t req = {.sandbox = "default/sb-b", .shell = "sleep 30"};
    lss_exec_client_opts_t o = {.on_started = s_kill_victim, .arg = &pid};
    lss_exec_result_t res;
    long long t0 = tp_now_ms ();
    int rc = s_run (&req, &o, &res);
    long long took = tp_now_ms () - t0;
    tp_wait (&s_agents[1], 5000);
    if (pid > 0)
        kill (-(pid_t)pid, SIGKILL); /* the agent's orphan */
    assert_int_equal (rc, 0);
    assert_non_null (res.end->error);
    assert_non_null (strstr (res.end->error, "agent unavailable"));
    assert_int_equal (res.end->exit_code, -1);
    assert_true (took < AGENT_TIMEOUT_MS + 1500);
    lss_exec_result_clear (&res);
    /* file requests to it: agent_unavailable (or agent_timeout) within the timeout */
    lss_exec_client_t *c = lss_exec_client_new (s_exec_ep, NULL);
    lss_file_list_t l = {.path = "/workspace", .sandbox = "default/sb-b"};
    lss_msg_kind_t k;
    void *rep;
    assert_int_equal (lss_exec_client_request (c, LSS_MSG_file_list, &l, 10000, &k, &rep), 0);
    assert_int_equal (k, LSS_MSG_error);
    const char *code = ((lss_error_t *)rep)->code;
    assert_true (strcmp (code, "agent_unavailable") == 0 ||
                 strcmp (code, "agent_timeout") == 0);
    lss_proto_body_free (k, &rep);
    lss_exec_client_destroy (&c);
}

static void test_requester_silent (void **state)
{
    (void)state;
    zsock_t *d = lss_bus_socket_new (ZMQ_DEALER, s_exec_ep, NULL);
    lss_envelope_t env;
    lss_exec_start_t req = {
        .exec_id = "silent", .sandbox = "default/sb-a", .shell = "sleep 30", .credit = 4096};
    lss_bus_envelope_init (&env, LSS_MSG_exec_start, NULL, "t", 1, NULL);
    assert_int_equal (lss_bus_send (d, NULL, 0, NULL, &env, LSS_MSG_exec_start, &req), 0);
    zpoller_t *p = zpoller_new (d, NULL);
    int64_t pid = 0;
    lss_exec_end_t *end = NULL;
    long long t0 = tp_now_ms ();
    while (!end && tp_now_ms () - t0 < 10000) {
        if (!zpoller_wait (p, 500))
            continue;
        lss_msg_kind_t k;
        void *b;
        char err[256];
        assert_int_equal (lss_bus_recv (d, NULL, NULL, 0, &env, &k, &b, err, sizeof err), 0);
        if (k == LSS_MSG_exec_started)
            pid = ((lss_exec_started_t *)b)->pid;
        if (k == LSS_MSG_exec_end) {
            end = b;
            continue;
        }
        lss_proto_body_free (k, &b);
    }
    long long took = tp_now_ms () - t0;
    zpoller_destroy (&p);
    zsock_destroy (&d);
    assert_true (pid > 0);
    assert_non_null (end);
    assert_true (end->cancelled);
    assert_true (took >= REQUESTER_TIMEOUT_MS - 100 && took < REQUESTER_TIMEOUT_MS + 3000);
    assert_false (s_alive ((pid_t)pid)); /* killed at the agent */
    lss_proto_body_free (LSS_MSG_exec_end, (void **)&end);
}

static void s_kill_executor (void *arg, lss_exec_client_t *c, const char *exec_id, int64_t pid)
{
    (void)c;
    (void)exec_id;
    *(int64_t *)arg = pid;
    kill (s_executor.pid, SIGKILL);
}

static void test_executor_killed (void **state)
{
    (void)state;
    int64_t pid = 0;
    lss_exec_start_t req = {.sandbox = "default/sb-a", .shell = "sleep 30"};
    lss_exec_client_opts_t o = {
        .on_started = s_kill_executor, .arg = &pid, .silence_ms = 1000, .timeout_ms = 20000};
    lss_exec_result_t res;
    long long t0 = tp_now_ms ();
    int rc = s_run (&req, &o, &res);
    long long took = tp_now_ms () - t0;
    tp_wait (&s_executor, 5000);
    assert_int_equal (rc, -1);
    assert_string_equal (res.error_code, "executor_unavailable");
    assert_true (took < 4000);
    lss_exec_result_clear (&res);
    /* the agent kills the lost executor's execution after its requester timeout */
    long long deadline = tp_now_ms () + 10000;
    while (pid > 0 && s_alive ((pid_t)pid) && tp_now_ms () < deadline) {
        struct timespec ts = {0, 50 * 1000 * 1000};
        nanosleep (&ts, NULL); /* polling a condition with a deadline */
    }
    assert_false (s_alive ((pid_t)pid));
    assert_int_equal (s_executor_start (), 0);
}

/* ------------------------------------------------------------------ volume */
typedef struct {
    char expect[32];
    size_t expect_len;
    char line[32];
    size_t line_len;
    int64_t lines, bytes;
    bool bad;
    int calls;
} seq_check_t;

static void s_next_number (seq_check_t *s)
{
    /* expect holds "N\n": increment the decimal string */
    int i = (int)s->expect_len - 2;
    while (i >= 0 && s->expect[i] == '9')
        s->expect[i--] = '0';
    if (i >= 0)
        s->expect[i]++;
    else {
        memmove (s->expect + 1, s->expect, s->expect_len);
        s->expect[0] = '1';
        s->expect_len++;
    }
}

static int s_check_seq (void *arg, const char *stream, const uint8_t *data, size_t len)
{
    seq_check_t *s = arg;
    if (strcmp (stream, "stdout") != 0) {
        fprintf (stderr, "stderr: %.*s\n", (int)len, (const char *)data);
        s->bad = true;
    }
    s->bytes += (int64_t)len;
    while (len > 0 && !s->bad) {
        const uint8_t *nl = memchr (data, '\n', len);
        size_t take = nl ? (size_t)(nl - data) + 1 : len;
        if (s->line_len + take > sizeof s->line) {
            s->bad = true;
            break;
        }
        memcpy (s->line + s->line_len, data, take);
        s->line_len += take;
        data += take;
        len -= take;
        if (nl) {
            if (s->line_len != s->expect_len || memcmp (s->line, s->expect, s->line_len) != 0) {
                fprintf (stderr, "line %lld: got '%.*s' want '%.*s'\n", (long long)s->lines,
                         (int)s->line_len, s->line, (int)s->expect_len, s->expect);
                s->bad = true;
            }
            s->line_len = 0;
            s->lines++;
            s_next_number (s);
        }
    }
    if (++s->calls % 4 == 0) {
        struct timespec ts = {0, 2 * 1000 * 1000};
        nanosleep (&ts, NULL); /* a deliberately slow consumer */
    }
    return 0;
}

static long s_status_kb (pid_t pid, const char *field)
{
    char path[64], line[256];
    snprintf (path, sizeof path, "/proc/%d/status", (int)pid);
    FILE *f = fopen (path, "re");
    long kb = -1;
    while (f && fgets (line, sizeof line, f))
        if (strncmp (line, field, strlen (field)) == 0)
            kb = strtol (line + strlen (field) + 1, NULL, 10);
    if (f)
        fclose (f);
    return kb;
}

static void test_100mb_slow_consumer (void **state)
{
    (void)state;
    const int64_t n = 13000000; /* 1..13e6: 105888897 bytes */
    seq_check_t s = {.expect = "1\n", .expect_len = 2};
    lss_exec_start_t big = {
        .sandbox = "default/sb-a", .shell = "seq 1 13000000", .max_output = 200ll << 20};
    /* a fresh executor with the default deadline cap (this fixture's is 3 s), so its
     * peak RSS is this test's */
    kill (s_executor.pid, SIGTERM);
    tp_wait (&s_executor, 10000);
    s_max_timeout = "1h";
    int started = s_executor_start ();
    s_max_timeout = NULL;
    assert_int_equal (started, 0);
    long before = s_status_kb (s_executor.pid, "VmRSS:");
    lss_exec_client_opts_t o = {.on_output = s_check_seq,
                                .arg = &s,
                                .window = 64 * 1024,
                                .timeout_ms = 240000,
                                .silence_ms = 20000};
    lss_exec_result_t res;
    long long t0 = tp_now_ms ();
    int rc = s_run (&big, &o, &res);
    long long took = tp_now_ms () - t0;
    long hwm = s_status_kb (s_executor.pid, "VmHWM:");
    if (rc)
        fail_msg ("run failed: %s %s", res.error_code, res.error);
    assert_false (s.bad);
    assert_int_equal (res.end->exit_code, 0);
    assert_false (res.end->stdout_truncated);
    assert_int_equal (s.lines, n);
    assert_int_equal (s.bytes, 105888897);
    fprintf (stderr,
             "100 MB slow consumer: %lld bytes in %lld ms (%.1f MB/s); executor RSS before "
             "%ld KiB, peak (VmHWM) %ld KiB\n",
             (long long)s.bytes, took, (double)s.bytes / 1e3 / (double)(took ? took : 1),
             before, hwm);
    assert_true (hwm > 0 && hwm < 64 * 1024);
    lss_exec_result_clear (&res);
}

/* ------------------------------------------------------------------ concurrency */
#define N_STREAMS 50
typedef struct {
    int i;
    int rc;
    int64_t exit_code;
    char out[64];
    size_t out_len;
    char err[600];
} stream_job_t;

static void *s_stream_job (void *arg)
{
    stream_job_t *j = arg;
    lss_exec_client_t *c = lss_exec_client_new (s_exec_ep, NULL);
    char cmd[128];
    snprintf (cmd, sizeof cmd, "sleep 0.3; echo stream-%d; seq 1 2000 > /dev/null", j->i);
    lss_exec_start_t req = {.sandbox = "default/sb-a", .shell = cmd};
    lss_exec_client_opts_t o = {.timeout_ms = 60000, .silence_ms = 20000};
    lss_exec_result_t res;
    j->rc = c ? lss_exec_client_run (c, &req, &o, &res) : -1;
    if (j->rc)
        snprintf (j->err, sizeof j->err, "%s: %s", res.error_code, res.error);
    if (j->rc == 0) {
        j->exit_code = res.end->exit_code;
        j->out_len = res.out.len < sizeof j->out ? res.out.len : sizeof j->out - 1;
        memcpy (j->out, res.out.data, j->out_len);
    }
    if (c)
        lss_exec_result_clear (&res);
    lss_exec_client_destroy (&c);
    return NULL;
}

static void test_concurrent_streams (void **state)
{
    (void)state;
    stream_job_t jobs[N_STREAMS];
    pthread_t th[N_STREAMS];
    long long t0 = tp_now_ms ();
    for (int i = 0; i < N_STREAMS; i++) {
        jobs[i] = (stream_job_t){.i = i};
        assert_int_equal (pthread_create (&th[i], NULL, s_stream_job, &jobs[i]), 0);
    }
    for (int i = 0; i < N_STREAMS; i++)
        pthread_join (th[i], NULL);
    long long took = tp_now_ms () - t0;
    for (int i = 0; i < N_STREAMS; i++) {
        char want[32];
        if (jobs[i].rc)
            fail_msg ("stream %d: %s", i, jobs[i].err);
        snprintf (want, sizeof want, "stream-%d\n", i);
        assert_int_equal (jobs[i].rc, 0);
        assert_int_equal (jobs[i].exit_code, 0);
        assert_int_equal (jobs[i].out_len, strlen (want));
        assert_memory_equal (jobs[i].out, want, strlen (want));
    }
    fprintf (stderr, "%d concurrent streams in %lld ms\n", N_STREAMS, took);
    /* they ran side by side: 50 × 0.3 s one after another would take 15 s */
    assert_true (took < 12000);
}

int main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_flow_logic),
        cmocka_unit_test (test_round_trip_and_events),
        cmocka_unit_test (test_code_language),
        cmocka_unit_test (test_stdin_streaming),
        cmocka_unit_test (test_cancel),
        cmocka_unit_test (test_deadline_capped),
        cmocka_unit_test (test_bad_sandboxes),
        cmocka_unit_test (test_duplicate_and_unknown_ids),
        cmocka_unit_test (test_files),
        cmocka_unit_test (test_agent_killed),
        cmocka_unit_test (test_requester_silent),
        cmocka_unit_test (test_curve),
        cmocka_unit_test (test_executor_killed),
        cmocka_unit_test (test_concurrent_streams),
        cmocka_unit_test (test_100mb_slow_consumer),
    };
    return cmocka_run_group_tests (tests, s_setup, s_teardown);
}
