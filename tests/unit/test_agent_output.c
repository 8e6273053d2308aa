/*  Output an execution wrote before it exited is never lost (issue 5: "completed, exit 0,
 *  empty stdout" under 16 concurrent executions on one sandbox).
 *
 *  The agent ended an execution once its leader had been reaped and a 100 ms drain grace
 *  had passed, whether or not its pipes still held data. When the loop reaped the
 *  leader in a turn where the pipe had not been polled yet and then did not get the CPU
 *  for 100 ms (a sandbox at its CPU quota is stopped for the rest of each 100 ms period),
 *  the execution ended with stdoutBytes 0. Three tests:
 *   - agent_exec alone, deterministic: a reaped execution whose pipe holds output is not
 *     finished even long past the grace; a background writer that never stops still
 *     lets it finish (bounded by AGENT_LATE_MAX);
 *   - lss-agent as a process in a CPU-throttled cgroup (root, cgroup v1 or v2; skipped
 *     otherwise), 16 concurrent short executions × rounds, every stdout byte checked
 *     (a guard: the window it needs — the leader reaped in a loop turn where its pipe
 *     was not polled, then a stall past the grace — is microseconds wide, and this test
 *     did not hit it before the fix in the runs made here; the first test does);
 *   - lss-agent with a background writer that outlives its leader: the execution still
 *     ends, with output.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <czmq.h>
#include <sys/resource.h>
#include <sys/wait.h>

#include "agent_exec.h"
#include "lss_bus.h"
#include "lss_testproc.h"
#include "lss_util.h"

#define S_CONC   16
#define S_ROUNDS 12

/* ------------------------------------------------------------------ agent_exec alone */

static void s_conf (agent_exec_conf_t *conf, char *dir, size_t size)
{
    snprintf (dir, size, "/tmp/lss-h-stream-exec-XXXXXX");
    assert_non_null (mkdtemp (dir));
    agent_exec_conf_default (conf);
    snprintf (conf->code_dir, sizeof conf->code_dir, "%s/code", dir);
    snprintf (conf->default_cwd, sizeof conf->default_cwd, "%s", dir);
}

static void s_rmdir (const char *dir)
{
    pid_t pid = fork ();
    if (pid == 0) {
        execl ("/bin/rm", "rm", "-rf", dir, (char *)NULL);
        _exit (127);
    }
    waitpid (pid, NULL, 0);
}

/* Starts shell in e and waits for its leader to exit (reaped as the agent reaps). */
static void s_run_reaped (agent_exec_t *e, const agent_exec_conf_t *conf, const char *shell,
                          int64_t now)
{
    memset (e, 0, sizeof *e);
    snprintf (e->id, sizeof e->id, "t");
    lss_exec_start_t req = {.exec_id = "t", .shell = (char *)shell};
    agent_err_t err = {0};
    assert_int_equal (agent_exec_start (e, &req, conf, now, &err), 0);
    int status;
    struct rusage ru;
    assert_int_equal (wait4 (e->pid, &status, 0, &ru), e->pid);
    agent_exec_exited (e, status, &ru, now);
}

static void test_unread_output_keeps_execution (void **state)
{
    (void)state;
    char dir[64];
    agent_exec_conf_t conf;
    s_conf (&conf, dir, sizeof dir);
    agent_exec_t e;
    int64_t now = lss_time_mono_ms ();
    s_run_reaped (&e, &conf, "printf hello", now);
    /* reaped, the pipe not read yet: within the grace and long after it, not finished */
    assert_false (agent_exec_finished (&e, now));
    assert_false (agent_exec_finished (&e, now + 10000));
    char buf[64];
    ssize_t n = read (e.fd[AGENT_STDOUT], buf, sizeof buf);
    assert_int_equal (n, 5);
    assert_memory_equal (buf, "hello", 5);
    agent_exec_read (&e, (size_t)n, now + 10000);
    /* drained (stdout at EOF but still open, stderr empty): finished past the grace */
    assert_true (agent_exec_finished (&e, now + 10000));
    agent_exec_release (&e);
    s_rmdir (dir);
}

static void test_endless_writer_still_finishes (void **state)
{
    (void)state;
    char dir[64];
    agent_exec_conf_t conf;
    s_conf (&conf, dir, sizeof dir);
    agent_exec_t e;
    int64_t now = lss_time_mono_ms ();
    /* the leader exits at once; `yes` keeps the pipe full for ever */
    s_run_reaped (&e, &conf, "yes & sleep 0.2", now);
    assert_false (agent_exec_finished (&e, now + 10000));
    agent_exec_read (&e, AGENT_LATE_MAX, now + 10000); /* the late budget is spent */
    assert_true (agent_exec_finished (&e, now + 10000));
    agent_exec_kill (&e); /* the group: yes */
    agent_exec_release (&e);
    s_rmdir (dir);
}

/* ------------------------------------------------------------------ lss-agent */

typedef struct {
    tp_proc_t proc;
    char dir[128];
    char endpoint[256];
    char cgroup[256]; /* "" when not throttled */
    zsock_t *dealer;
} agent_t;

static agent_t *s_live;

static void s_agent_start (agent_t *a)
{
    memset (a, 0, sizeof *a);
    snprintf (a->dir, sizeof a->dir, "/tmp/lss-h-stream-agent-XXXXXX");
    assert_non_null (mkdtemp (a->dir));
    char ws[200], root[256], path[PATH_MAX];
    snprintf (ws, sizeof ws, "%s/ws", a->dir);
    mkdir (ws, 0700);
    snprintf (root, sizeof root, "/workspace=%s", ws);
    snprintf (a->endpoint, sizeof a->endpoint, "ipc://%s/agent.sock", a->dir);
    char *argv[] = {(char *)tp_build_path (path, sizeof path, "bin/lss-agent"),
                    "--endpoint",
                    a->endpoint,
                    "--root",
                    root,
                    "--max-execs",
                    "64",
                    NULL};
    assert_int_equal (tp_spawn (&a->proc, argv, NULL, true), 0);
    s_live = a;
    char line[512];
    if (tp_read_line (&a->proc, line, sizeof line, 10000))
        fail_msg ("agent did not become ready: '%s'", line);
    a->dealer = lss_bus_socket_new (ZMQ_DEALER, NULL, NULL);
    assert_non_null (a->dealer);
    assert_int_equal (zsock_connect (a->dealer, "%s", a->endpoint), 0);
}

static void s_agent_stop (agent_t *a)
{
    zsock_destroy (&a->dealer);
    if (a->proc.pid > 0) {
        kill (a->proc.pid, SIGTERM);
        tp_wait (&a->proc, 5000);
        a->proc.pid = 0;
    }
    if (a->cgroup[0])
        rmdir (a->cgroup);
    a->cgroup[0] = '\0';
    s_rmdir (a->dir);
    s_live = NULL;
}

static int s_teardown (void **state)
{
    (void)state;
    if (s_live) {
        if (s_live->proc.pid > 0)
            tp_kill (&s_live->proc);
        s_live->proc.pid = 0;
        s_agent_stop (s_live);
    }
    return 0;
}

static int s_write_file (const char *path, const char *text)
{
    FILE *f = fopen (path, "we");
    if (!f)
        return -1;
    int rc = fputs (text, f) < 0 ? -1 : 0;
    return fclose (f) || rc ? -1 : 0;
}

/* Puts the agent (and so every execution it starts) in a cgroup allowed 20 % of one CPU:
 * the condition of a sandbox at its quota. 0, or -1 when cgroups cannot be used here. */
static int s_throttle (agent_t *a)
{
    char file[320], pid[32];
    snprintf (pid, sizeof pid, "%d", (int)a->proc.pid);
    /* cgroup v2 (unified at /sys/fs/cgroup with cpu enabled), else v1's cpu hierarchy */
    if (access ("/sys/fs/cgroup/cgroup.subtree_control", F_OK) == 0) {
        snprintf (a->cgroup, sizeof a->cgroup, "/sys/fs/cgroup/lss-h-stream-test-%d",
                  (int)getpid ());
        snprintf (file, sizeof file, "%s/cpu.max", a->cgroup);
        if (mkdir (a->cgroup, 0755) == 0 && s_write_file (file, "20000 100000") == 0) {
            snprintf (file, sizeof file, "%s/cgroup.procs", a->cgroup);
            if (s_write_file (file, pid) == 0)
                return 0;
        }
        rmdir (a->cgroup);
    }
    snprintf (a->cgroup, sizeof a->cgroup, "/sys/fs/cgroup/cpu/lss-h-stream-test-%d",
              (int)getpid ());
    snprintf (file, sizeof file, "%s/cpu.cfs_quota_us", a->cgroup);
    if (mkdir (a->cgroup, 0755) == 0 && s_write_file (file, "20000") == 0) {
        snprintf (file, sizeof file, "%s/cgroup.procs", a->cgroup);
        if (s_write_file (file, pid) == 0)
            return 0;
    }
    rmdir (a->cgroup);
    a->cgroup[0] = '\0';
    return -1;
}

typedef struct {
    char id[32];
    lss_buf_t out;
    bool ended;
    int64_t exit_code, stdout_bytes;
} s_job_t;

static s_job_t *s_job (s_job_t *jobs, size_t n, const char *id)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp (jobs[i].id, id) == 0)
            return &jobs[i];
    return NULL;
}

static void s_send (agent_t *a, lss_msg_kind_t kind, const void *body)
{
    lss_envelope_t env;
    assert_int_equal (lss_bus_envelope_init (&env, kind, NULL, "test", 1, NULL), 0);
    assert_int_equal (lss_bus_send (a->dealer, NULL, 0, NULL, &env, kind, body), 0);
}

/* Receives until every job of the round ended (or the deadline); jobs keep their output. */
static void s_collect (agent_t *a, s_job_t *jobs, size_t n, int timeout_ms)
{
    size_t ended = 0;
    long long deadline = tp_now_ms () + timeout_ms;
    zpoller_t *p = zpoller_new (a->dealer, NULL);
    while (ended < n) {
        long long left = deadline - tp_now_ms ();
        if (left <= 0)
            break;
        if (!zpoller_wait (p, (int)left))
            continue;
        lss_envelope_t env;
        lss_msg_kind_t kind;
        void *body = NULL;
        char err[256];
        if (lss_bus_recv (a->dealer, NULL, NULL, 0, &env, &kind, &body, err, sizeof err))
            fail_msg ("bad message from the agent: %s", err);
        if (kind == LSS_MSG_exec_output) {
            lss_exec_output_t *o = body;
            s_job_t *j = s_job (jobs, n, o->exec_id);
            assert_non_null (j);
            assert_string_equal (o->stream, "stdout");
            lss_buf_append (&j->out, o->data.data, o->data.len);
        } else if (kind == LSS_MSG_exec_end) {
            lss_exec_end_t *m = body;
            s_job_t *j = s_job (jobs, n, m->exec_id);
            assert_non_null (j);
            assert_false (j->ended);
            j->ended = true;
            j->exit_code = m->exit_code;
            j->stdout_bytes = m->stdout_bytes;
            ended++;
        } else if (kind == LSS_MSG_error)
            fail_msg ("agent error: %s", ((lss_error_t *)body)->message);
        lss_proto_body_free (kind, &body);
    }
    zpoller_destroy (&p);
}

static void test_concurrent_short_executions (void **state)
{
    (void)state;
    agent_t a;
    s_agent_start (&a);
    if (geteuid () != 0 || s_throttle (&a)) {
        s_agent_stop (&a);
        skip ();
    }
    int lost = 0, total = 0;
    for (int round = 0; round < S_ROUNDS; round++) {
        s_job_t jobs[S_CONC];
        memset (jobs, 0, sizeof jobs);
        for (int i = 0; i < S_CONC; i++) {
            snprintf (jobs[i].id, sizeof jobs[i].id, "r%d-%d", round, i);
            lss_buf_init (&jobs[i].out, 1 << 16);
            /* a short program whose output is written just before it exits, like
             * python's print(1) flushed at exit; a little work so exits overlap */
            char *argv[] = {"/bin/sh", "-c",
                            "i=0; while [ $i -lt 1000 ]; do i=$((i+1)); done; echo \"$0\"",
                            jobs[i].id, NULL};
            lss_exec_start_t req = {.exec_id = jobs[i].id, .argv = {argv, 4}};
            s_send (&a, LSS_MSG_exec_start, &req);
        }
        s_collect (&a, jobs, S_CONC, 60000);
        for (int i = 0; i < S_CONC; i++) {
            char want[40];
            snprintf (want, sizeof want, "%s\n", jobs[i].id);
            total++;
            assert_true (jobs[i].ended);
            assert_int_equal (jobs[i].exit_code, 0);
            if (jobs[i].out.len != strlen (want) ||
                memcmp (jobs[i].out.data, want, strlen (want)) != 0 ||
                jobs[i].stdout_bytes != (int64_t)strlen (want)) {
                lost++;
                print_message ("%s: completed, exit 0, stdout %zu bytes (stdoutBytes %lld)\n",
                               jobs[i].id, jobs[i].out.len, (long long)jobs[i].stdout_bytes);
            }
            lss_buf_free (&jobs[i].out);
        }
    }
    print_message ("%d of %d executions lost output\n", lost, total);
    assert_int_equal (lost, 0);
    s_agent_stop (&a);
}

static void test_background_writer_execution_ends (void **state)
{
    (void)state;
    agent_t a;
    s_agent_start (&a);
    s_job_t job = {.id = "bg"};
    lss_buf_init (&job.out, 64 << 20);
    char *argv[] = {"/bin/sh", "-c", "yes & echo started", NULL};
    lss_exec_start_t req = {.exec_id = "bg", .argv = {argv, 3}};
    s_send (&a, LSS_MSG_exec_start, &req);
    s_collect (&a, &job, 1, 20000);
    assert_true (job.ended);
    assert_int_equal (job.exit_code, 0);
    assert_true (job.stdout_bytes >= (int64_t)strlen ("started\n"));
    assert_true (job.out.len > 0 && (int64_t)job.out.len <= job.stdout_bytes);
    lss_buf_free (&job.out);
    s_agent_stop (&a);
}

int main (void)
{
    signal (SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_unread_output_keeps_execution),
        cmocka_unit_test (test_endless_writer_still_finishes),
        cmocka_unit_test_teardown (test_concurrent_short_executions, s_teardown),
        cmocka_unit_test_teardown (test_background_writer_execution_ends, s_teardown),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
