/*  Tests for lss_proc with real children: environment, working directory and captured
 *  stdout; exec failures reported synchronously; the deadline (child killed and
 *  reaped); bounded capture; the child's signal mask and ignored (standard) signals
 *  reset; no descriptor leaked; stdout and stderr on one pipe; the uid drop (root only); the
 *  parent-death signal; wait-status descriptions. Waits are polls with deadlines.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/pidfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include "lss_proc.h"
#include "lss_util.h"

#define S_TIMEOUT_MS 10000

static int s_sh (const char *script, const char *const *envp, const char *cwd, char *out,
                 size_t out_size, int *wstatus)
{
    const char *argv[] = {"/bin/sh", "-c", script, NULL};
    lss_proc_opts_t o = {
        .argv = argv, .envp = envp, .stdin_fd = -1, .stderr_fd = -1, .cwd = cwd};
    char err[256];
    int rc = lss_proc_run (&o, S_TIMEOUT_MS, out, out_size, wstatus, err, sizeof err);
    if (rc != 0)
        print_message ("lss_proc_run: %s\n", err);
    return rc;
}

static void test_env_cwd_output (void **state)
{
    (void)state;
    const char *envp[] = {"FOO=bar baz", "PATH=/usr/bin:/bin", NULL};
    char out[256];
    int ws;
    assert_int_equal (s_sh ("echo \"$FOO\"; pwd; echo \"${HOME:-nohome}\"; exit 7", envp,
                            "/tmp", out, sizeof out, &ws),
                      0);
    assert_true (WIFEXITED (ws));
    assert_int_equal (WEXITSTATUS (ws), 7);
    /* only the given environment: HOME was not passed */
    assert_string_equal (out, "bar baz\n/tmp\nnohome\n");
}

static void test_exec_failure (void **state)
{
    (void)state;
    const char *argv[] = {"/nonexistent/program", NULL};
    lss_proc_opts_t o = {.argv = argv, .stdin_fd = -1, .stdout_fd = -1, .stderr_fd = -1};
    char err[256] = "";
    pid_t pid = 0;
    assert_int_equal (lss_proc_spawn (&o, &pid, err, sizeof err), -1);
    assert_non_null (strstr (err, "/nonexistent/program"));
    assert_non_null (strstr (err, "No such file"));
    /* the failed child was reaped: nothing is left to wait for */
    assert_int_equal (waitpid (-1, NULL, WNOHANG), -1);
    assert_int_equal (errno, ECHILD);

    const char *rel[] = {"sh", NULL};
    o.argv = rel;
    assert_int_equal (lss_proc_spawn (&o, &pid, err, sizeof err), -1);
    assert_non_null (strstr (err, "absolute"));

    const char *argv2[] = {"/bin/true", NULL};
    o.argv = argv2;
    o.cwd = "/nonexistent-dir";
    assert_int_equal (lss_proc_spawn (&o, &pid, err, sizeof err), -1);
    assert_non_null (strstr (err, "chdir"));
}

static void test_deadline (void **state)
{
    (void)state;
    const char *argv[] = {"/bin/sleep", "30", NULL};
    lss_proc_opts_t o = {
        .argv = argv, .stdin_fd = -1, .stdout_fd = -1, .stderr_fd = -1, .new_session = true};
    char out[16], err[256] = "";
    int ws = 0;
    int64_t t0 = lss_time_mono_ms ();
    assert_int_equal (lss_proc_run (&o, 200, out, sizeof out, &ws, err, sizeof err), -1);
    assert_non_null (strstr (err, "did not finish"));
    assert_true (lss_time_mono_ms () - t0 < 5000);
    assert_true (WIFSIGNALED (ws));
    assert_int_equal (WTERMSIG (ws), SIGKILL);
    assert_int_equal (waitpid (-1, NULL, WNOHANG), -1); /* reaped */
    /* the same without capturing output */
    assert_int_equal (lss_proc_run (&o, 200, NULL, 0, &ws, err, sizeof err), -1);
}

static void test_capture_bounded (void **state)
{
    (void)state;
    char out[16];
    int ws;
    assert_int_equal (s_sh ("i=0; while [ $i -lt 20000 ]; do echo y; i=$((i+1)); done", NULL,
                            NULL, out, sizeof out, &ws),
                      0);
    assert_true (WIFEXITED (ws) && WEXITSTATUS (ws) == 0); /* drained: no SIGPIPE */
    assert_int_equal (strlen (out), sizeof out - 1);
    assert_memory_equal (out, "y\ny\ny\ny\ny\ny\ny\ny", 15);
}

static void test_signals_reset (void **state)
{
    (void)state;
    sigset_t block, old;
    sigemptyset (&block);
    sigaddset (&block, SIGTERM);
    sigaddset (&block, SIGCHLD);
    sigprocmask (SIG_BLOCK, &block, &old);
    struct sigaction ign = {.sa_handler = SIG_IGN}, prev;
    sigaction (SIGINT, &ign, &prev);
    /* grep itself, not through a shell (a shell may reset signals on its own) */
    const char *argv[] = {"/bin/grep", "-E", "^Sig(Blk|Ign)", "/proc/self/status", NULL};
    lss_proc_opts_t o = {.argv = argv, .stdin_fd = -1, .stderr_fd = -1};
    char out[256], err[256];
    int ws;
    int rc = lss_proc_run (&o, S_TIMEOUT_MS, out, sizeof out, &ws, err, sizeof err);
    sigaction (SIGINT, &prev, NULL);
    sigprocmask (SIG_SETMASK, &old, NULL);
    assert_int_equal (rc, 0);
    /* grep's own view: nothing blocked, no standard signal (1..31) ignored. Signals 32
     * and 33 are glibc's own (SIGCANCEL, SIGSETXID): its sigaction refuses to touch them,
     * and an inherited "ignore" there (GNU make leaves one) is glibc's business. */
    const char *blk = strstr (out, "SigBlk:\t");
    const char *ign_line = strstr (out, "SigIgn:\t");
    assert_non_null (blk);
    assert_non_null (ign_line);
    unsigned long long blocked = strtoull (blk + 8, NULL, 16);
    unsigned long long ignored = strtoull (ign_line + 8, NULL, 16);
    if (blocked != 0 || (ignored & 0x7fffffffULL) != 0)
        print_message ("child's signals:\n%s", out);
    assert_true (blocked == 0);
    assert_true ((ignored & 0x7fffffffULL) == 0);
}

static void test_no_fd_leak (void **state)
{
    (void)state;
    int leaky = open ("/dev/null", O_RDONLY); /* deliberately without O_CLOEXEC */
    assert_true (leaky >= 3);
    char script[128], out[256];
    snprintf (script, sizeof script, "[ -e /proc/self/fd/%d ] && echo leaked || echo clean",
              leaky);
    int ws;
    int rc = s_sh (script, NULL, NULL, out, sizeof out, &ws);
    close (leaky);
    assert_int_equal (rc, 0);
    assert_string_equal (out, "clean\n");
}

static void test_one_pipe_for_both (void **state)
{
    (void)state;
    int fds[2];
    assert_int_equal (pipe2 (fds, O_CLOEXEC), 0);
    const char *argv[] = {"/bin/sh", "-c", "echo out; echo err >&2", NULL};
    lss_proc_opts_t o = {
        .argv = argv, .stdin_fd = -1, .stdout_fd = fds[1], .stderr_fd = fds[1]};
    pid_t pid;
    char err[256];
    assert_int_equal (lss_proc_spawn (&o, &pid, err, sizeof err), 0);
    close (fds[1]);
    char buf[64] = "";
    size_t len = 0;
    int64_t deadline = lss_time_mono_ms () + S_TIMEOUT_MS;
    for (;;) {
        struct pollfd p = {.fd = fds[0], .events = POLLIN};
        assert_true (poll (&p, 1, (int)(deadline - lss_time_mono_ms ())) > 0);
        ssize_t n = read (fds[0], buf + len, sizeof buf - 1 - len);
        if (n <= 0)
            break;
        len += (size_t)n;
    }
    buf[len] = '\0';
    close (fds[0]);
    int ws;
    assert_int_equal (waitpid (pid, &ws, 0), pid);
    assert_string_equal (buf, "out\nerr\n");
}

static void test_set_ids (void **state)
{
    (void)state;
    if (geteuid () != 0) {
        print_message ("not root: uid drop not tested\n");
        skip ();
    }
    const char *argv[] = {"/bin/sh", "-c", "id -u; id -g; id -G", NULL};
    lss_proc_opts_t o = {.argv = argv,
                         .stdin_fd = -1,
                         .stderr_fd = -1,
                         .set_ids = true,
                         .uid = 65534,
                         .gid = 65534};
    char out[128], err[256];
    int ws;
    assert_int_equal (lss_proc_run (&o, S_TIMEOUT_MS, out, sizeof out, &ws, err, sizeof err),
                      0);
    assert_string_equal (out, "65534\n65534\n65534\n"); /* supplementary groups dropped */
}

/*  A child that spawns `sleep` with a parent-death signal, reports its pid and exits:
 *  the sleep must die. */
static void test_death_signal (void **state)
{
    (void)state;
    int fds[2];
    assert_int_equal (pipe2 (fds, O_CLOEXEC), 0);
    pid_t middle = fork ();
    assert_true (middle >= 0);
    if (middle == 0) {
        const char *argv[] = {"/bin/sleep", "30", NULL};
        lss_proc_opts_t o = {.argv = argv,
                             .stdin_fd = -1,
                             .stdout_fd = -1,
                             .stderr_fd = -1,
                             .new_session = true,
                             .death_signal = SIGTERM};
        pid_t pid = 0;
        if (lss_proc_spawn (&o, &pid, NULL, 0) != 0)
            _exit (1);
        ssize_t n = write (fds[1], &pid, sizeof pid);
        _exit (n == (ssize_t)sizeof pid ? 0 : 1);
    }
    close (fds[1]);
    pid_t sleeper = 0;
    assert_int_equal (read (fds[0], &sleeper, sizeof sleeper), (ssize_t)sizeof sleeper);
    close (fds[0]);
    int pidfd = pidfd_open (sleeper, 0); /* before it can be gone and its pid reused */
    int ws;
    assert_int_equal (waitpid (middle, &ws, 0), middle);
    assert_int_equal (WEXITSTATUS (ws), 0);
    if (pidfd < 0 && errno == ENOSYS) { /* valgrind does not know pidfd_open */
        int64_t deadline = lss_time_mono_ms () + S_TIMEOUT_MS;
        while (kill (sleeper, 0) == 0 && lss_time_mono_ms () < deadline)
            poll (NULL, 0, 20);
        bool gone = kill (sleeper, 0) != 0;
        if (!gone)
            kill (sleeper, SIGKILL);
        assert_true (gone);
        return;
    }
    if (pidfd < 0) { /* it may already have died and been reaped by init */
        assert_int_equal (errno, ESRCH);
        return;
    }
    struct pollfd p = {.fd = pidfd, .events = POLLIN};
    int rc = poll (&p, 1, S_TIMEOUT_MS);
    close (pidfd);
    if (rc <= 0)
        kill (sleeper, SIGKILL);
    assert_int_equal (rc, 1); /* it exited */
}

static void test_describe (void **state)
{
    (void)state;
    char out[LSS_PROC_DESCRIBE_SIZE];
    assert_string_equal (lss_proc_describe (3 << 8, out, sizeof out), "exited with code 3");
    assert_string_equal (lss_proc_describe (SIGKILL, out, sizeof out),
                         "killed by signal 9 (SIGKILL)");
    assert_string_equal (lss_proc_describe (SIGSEGV | 0x80, out, sizeof out),
                         "killed by signal 11 (SIGSEGV), core dumped");
}

int main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_env_cwd_output),    cmocka_unit_test (test_exec_failure),
        cmocka_unit_test (test_deadline),          cmocka_unit_test (test_capture_bounded),
        cmocka_unit_test (test_signals_reset),     cmocka_unit_test (test_no_fd_leak),
        cmocka_unit_test (test_one_pipe_for_both), cmocka_unit_test (test_set_ids),
        cmocka_unit_test (test_death_signal),      cmocka_unit_test (test_describe),
    };
    if (getenv ("TEST_FILTER"))
        cmocka_set_test_filter (getenv ("TEST_FILTER"));
    return cmocka_run_group_tests (tests, NULL, NULL);
}
