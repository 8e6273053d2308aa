/*  lss-agent as PID 1 of real sandboxes (bubblewrap via the runtime): identity and
 *  confinement seen from inside, orphans reaped by the agent, files through the agent,
 *  two sandboxes blind to each other, and stop() removing everything. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <czmq.h>
#include <sys/stat.h>

#include "lss_bus.h"
#include "lss_log.h"
#include "lss_testproc.h"
#include "lss_util.h"
#include "sandbox_agent.h"
#include "sandbox_runtime.h"

typedef struct {
    char state[64];
    lss_sandbox_runtime_t *rt;
} fx_t;

static fx_t s_fx;

static int s_setup (void **state)
{
    (void)state;
    snprintf (s_fx.state, sizeof s_fx.state, "/tmp/lss-sa-XXXXXX");
    if (!mkdtemp (s_fx.state))
        return -1;
    s_fx.rt = lss_sandbox_runtime_new (s_fx.state, NULL, NULL);
    return s_fx.rt ? 0 : -1;
}

static int s_teardown (void **state)
{
    (void)state;
    json_t *list = lss_sandbox_runtime_list (s_fx.rt);
    size_t i;
    json_t *item;
    json_array_foreach (list, i, item) lss_sandbox_runtime_stop (
        s_fx.rt, json_string_value (json_object_get (item, "id")), 0, NULL);
    json_decref (list);
    lss_sandbox_runtime_destroy (&s_fx.rt);
    pid_t pid = fork ();
    if (pid == 0) {
        execl ("/bin/rm", "rm", "-rf", s_fx.state, (char *)NULL);
        _exit (127);
    }
    waitpid (pid, NULL, 0);
    return 0;
}

/* Starts an agent sandbox and returns a connected DEALER. */
static zsock_t *s_start (const char *id)
{
    char agent[PATH_MAX], err[512];
    tp_build_path (agent, sizeof agent, "bin/lss-agent");
    char real[PATH_MAX];
    assert_non_null (realpath (agent, real));
    lss_sandbox_spec_t *spec = lss_sandbox_agent_spec (id, real, NULL, err, sizeof err);
    if (!spec)
        fail_msg ("spec: %s", err);
    spec->memory_bytes = 256ll << 20;
    spec->pids_max = 128;
    lss_sandbox_status_t st;
    if (lss_sandbox_runtime_start (s_fx.rt, spec, &st, err, sizeof err))
        fail_msg ("start: %s", err);
    lss_sandbox_spec_destroy (&spec);
    char endpoint[256];
    assert_int_equal (lss_sandbox_agent_endpoint (s_fx.state, id, endpoint, sizeof endpoint),
                      0);
    zsock_t *sock = lss_sandbox_agent_connect (endpoint, 10000);
    if (!sock) {
        char log[PATH_MAX] = "";
        lss_sandbox_runtime_path (s_fx.rt, id, "init.log", log, sizeof log);
        fail_msg ("agent of %s did not answer (log: %s)", id, log);
    }
    return sock;
}

typedef struct {
    char out[65536];
    size_t out_len;
    int64_t exit_code;
    char error[256];
} run_t;

/* Runs a shell command through the agent; collects stdout and the exit code. */
static void s_sh (zsock_t *sock, const char *cmd, run_t *r)
{
    memset (r, 0, sizeof *r);
    static int n;
    char id[32];
    snprintf (id, sizeof id, "x%d", ++n);
    lss_exec_start_t req = {.exec_id = id, .shell = (char *)cmd, .timeout_ms = 10000};
    lss_envelope_t env;
    lss_bus_envelope_init (&env, LSS_MSG_exec_start, NULL, "test", 1, NULL);
    assert_int_equal (lss_bus_send (sock, NULL, 0, NULL, &env, LSS_MSG_exec_start, &req), 0);
    zpoller_t *p = zpoller_new (sock, NULL);
    long long deadline = tp_now_ms () + 15000;
    bool done = false;
    while (!done) {
        long long left = deadline - tp_now_ms ();
        if (left <= 0 || !zpoller_wait (p, (int)left))
            fail_msg ("'%s' did not finish", cmd);
        lss_msg_kind_t kind;
        void *body;
        assert_int_equal (lss_bus_recv (sock, NULL, NULL, 0, &env, &kind, &body, NULL, 0), 0);
        if (kind == LSS_MSG_exec_output &&
            strcmp (((lss_exec_output_t *)body)->stream, "stdout") == 0) {
            lss_exec_output_t *o = body;
            size_t room = sizeof r->out - 1 - r->out_len;
            size_t n_copy = o->data.len < room ? o->data.len : room;
            memcpy (r->out + r->out_len, o->data.data, n_copy);
            r->out_len += n_copy;
        } else if (kind == LSS_MSG_exec_end) {
            lss_exec_end_t *e = body;
            r->exit_code = e->exit_code;
            snprintf (r->error, sizeof r->error, "%s", e->error ? e->error : "");
            done = true;
        } else if (kind == LSS_MSG_error)
            fail_msg ("'%s' refused: %s", cmd, ((lss_error_t *)body)->message);
        lss_proto_body_free (kind, &body);
    }
    zpoller_destroy (&p);
    r->out[r->out_len] = '\0';
}

static void test_agent_is_pid1_and_confined (void **state)
{
    (void)state;
    zsock_t *sock = s_start ("sa-one");
    run_t r;
    s_sh (sock, "id -u; id -g; hostname; tr '\\0' ' ' < /proc/1/cmdline", &r);
    assert_int_equal (r.exit_code, 0);
    if (!strstr (r.out, "1000\n1000\nsa-one\n/opt/lss/lss-agent"))
        fail_msg ("unexpected identity: %s", r.out);
    /* Host secrets and the project tree are not there; the root is read-only. */
    s_sh (sock, "cat /etc/shadow", &r);
    assert_true (r.exit_code != 0);
    char cmd[PATH_MAX + 64];
    const char *root = getenv ("LSS_ROOT");
    snprintf (cmd, sizeof cmd, "ls %s", root ? root : "/work");
    s_sh (sock, cmd, &r);
    assert_true (r.exit_code != 0);
    s_sh (sock, "touch /usr/x || touch /x", &r);
    assert_true (r.exit_code != 0);
    /* /workspace and /tmp are writable; a program sees what the file API wrote. */
    lss_file_write_t wr = {.path = "notes.txt", .data = {(uint8_t *)"from the api", 12}};
    lss_envelope_t env;
    lss_bus_envelope_init (&env, LSS_MSG_file_write, NULL, "test", 1, NULL);
    assert_int_equal (lss_bus_send (sock, NULL, 0, NULL, &env, LSS_MSG_file_write, &wr), 0);
    s_sh (sock, "echo ok > /tmp/t && cat /workspace/notes.txt", &r);
    assert_int_equal (r.exit_code, 0);
    assert_string_equal (r.out, "from the api");
    /* Code through the runtime's interpreter. */
    if (access ("/usr/bin/python3", X_OK) == 0) {
        s_sh (sock, "python3 -c 'import os; print(os.getuid(), os.getpid() > 1)'", &r);
        assert_string_equal (r.out, "1000 True\n");
    }
    zsock_destroy (&sock);
}

static void test_orphans_reaped_by_pid1 (void **state)
{
    (void)state;
    zsock_t *sock = s_start ("sa-reap");
    run_t r;
    s_sh (sock, "for i in 1 2 3 4 5 6 7 8; do (sleep 0.1 &); done; exit 0", &r);
    assert_int_equal (r.exit_code, 0);
    /* After the sleeps end, no zombie remains anywhere in the sandbox. */
    long long deadline = tp_now_ms () + 5000;
    for (;;) {
        s_sh (sock, "grep -h '^[0-9]* (sleep) ' /proc/[0-9]*/stat 2>/dev/null | wc -l", &r);
        if (strcmp (r.out, "0\n") == 0 || tp_now_ms () > deadline)
            break;
        usleep (50000);
    }
    assert_string_equal (r.out, "0\n");
    s_sh (sock, "cat /proc/[0-9]*/stat 2>/dev/null | awk '$3 == \"Z\"' | wc -l", &r);
    assert_string_equal (r.out, "0\n");
    zsock_destroy (&sock);
}

static void test_two_sandboxes_blind_to_each_other (void **state)
{
    (void)state;
    zsock_t *a = s_start ("sa-a");
    zsock_t *b = s_start ("sa-b");
    run_t r;
    s_sh (a, "echo secret-of-a > /workspace/a.txt; sleep 30 & echo $!", &r);
    assert_int_equal (r.exit_code, 0);
    s_sh (b, "ls /workspace; ls /run/lss; ls /proc | grep -c '^[0-9]'", &r);
    assert_null (strstr (r.out, "a.txt"));
    assert_non_null (strstr (r.out, "agent.sock"));
    /* B sees its own few processes only (agent, shell, ls/grep), not A's sleep. */
    s_sh (b, "ps -e -o comm= 2>/dev/null | grep -c sleep || true", &r);
    assert_string_equal (r.out, "0\n");
    /* On the host, the two workspaces belong to different users. */
    lss_sandbox_status_t sa, sb;
    assert_int_equal (lss_sandbox_runtime_get (s_fx.rt, "sa-a", &sa), 0);
    assert_int_equal (lss_sandbox_runtime_get (s_fx.rt, "sa-b", &sb), 0);
    if (getuid () == 0)
        assert_true (sa.host_uid != sb.host_uid);
    zsock_destroy (&a);
    zsock_destroy (&b);
}

static void test_stop_removes_everything (void **state)
{
    (void)state;
    zsock_t *sock = s_start ("sa-stop");
    zsock_destroy (&sock);
    char dir[PATH_MAX];
    snprintf (dir, sizeof dir, "%s/sa-stop", s_fx.state);
    struct stat st;
    assert_int_equal (stat (dir, &st), 0);
    lss_sandbox_status_t fin;
    assert_int_equal (lss_sandbox_runtime_stop (s_fx.rt, "sa-stop", 0, &fin), 0);
    assert_string_equal (fin.reason, "Stopped");
    assert_int_equal (stat (dir, &st), -1);
    assert_true (kill (fin.pid, 0) == -1);
}

int main (void)
{
    lss_log_init ("test_sandbox_agent", LSS_LOG_WARN);
    zsys_init ();
    if (getenv ("TEST_FILTER"))
        cmocka_set_test_filter (getenv ("TEST_FILTER"));
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown (test_agent_is_pid1_and_confined, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_orphans_reaped_by_pid1, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_two_sandboxes_blind_to_each_other, s_setup,
                                         s_teardown),
        cmocka_unit_test_setup_teardown (test_stop_removes_everything, s_setup, s_teardown),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
