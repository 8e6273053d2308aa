/*  Unit tests for sandbox_seccomp: the filters build, export as BPF into a sealed memfd,
 *  describe themselves, and — loaded into a forked child — deny what they list with the
 *  documented errno while leaving ordinary calls alone; foreign ABIs are killed. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <linux/filter.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/personality.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#else
#define RUNNING_ON_VALGRIND 0
#endif

#include "sandbox_seccomp.h"

static void test_export_and_memfd (void **state)
{
    (void)state;
    uint8_t *std = NULL, *high = NULL;
    size_t std_len = 0, high_len = 0;
    assert_int_equal (lss_sandbox_seccomp_export (LSS_SANDBOX_LEVEL_STANDARD, &std, &std_len),
                      0);
    assert_int_equal (lss_sandbox_seccomp_export (LSS_SANDBOX_LEVEL_HIGH, &high, &high_len), 0);
    assert_true (std_len > 0 && std_len % sizeof (struct sock_filter) == 0);
    assert_true (high_len > std_len); /* high adds rules */
    int fd = lss_sandbox_seccomp_memfd (high, high_len);
    assert_true (fd >= 0);
    uint8_t buf[LSS_SANDBOX_BPF_MAX];
    assert_int_equal (read (fd, buf, sizeof buf), (ssize_t)high_len);
    assert_memory_equal (buf, high, high_len);
    assert_int_equal (write (fd, "x", 1), -1); /* sealed */
    close (fd);
    free (std);
    free (high);
}

static void test_describe (void **state)
{
    (void)state;
    json_t *std = lss_sandbox_seccomp_describe (LSS_SANDBOX_LEVEL_STANDARD);
    json_t *high = lss_sandbox_seccomp_describe (LSS_SANDBOX_LEVEL_HIGH);
    assert_non_null (std);
    assert_non_null (high);
    char *text = json_dumps (std, 0);
    assert_non_null (strstr (text, "\"mount\""));
    assert_non_null (strstr (text, "\"ptrace\""));
    assert_non_null (strstr (text, "\"setns\""));
    assert_null (strstr (text, "\"io_uring_setup\""));
    assert_null (strstr (text, "\"clone3\""));
    free (text);
    text = json_dumps (high, 0);
    assert_non_null (strstr (text, "\"io_uring_setup\""));
    assert_non_null (strstr (text, "\"clone3\""));
    assert_non_null (strstr (text, "TIOCSTI"));
    free (text);
    json_decref (std);
    json_decref (high);
}

/*  Each check runs in a child that loads the filter; the exit code says which failed. */
static int s_child_checks (lss_sandbox_level_t level)
{
    if (lss_sandbox_seccomp_load (level))
        return 10;
    errno = 0;
    if (mount ("none", "/nonexistent", "tmpfs", 0, NULL) != -1 || errno != EPERM)
        return 11;
    errno = 0;
    if (syscall (SYS_keyctl, 0, -3, 0) != -1 || errno != EPERM)
        return 12;
    errno = 0;
    if (syscall (SYS_bpf, 0, NULL, 0) != -1 || errno != EPERM)
        return 13;
    errno = 0;
    if (syscall (SYS_ptrace, 0 /* TRACEME */, 0, 0, 0) != -1 || errno != EPERM)
        return 14;
    errno = 0;
    if (syscall (SYS_setns, 0, 0) != -1 || errno != EPERM)
        return 15;
    errno = 0;
    if (personality (ADDR_NO_RANDOMIZE) != -1 || errno != EPERM)
        return 16;
    errno = 0;
    if (syscall (SYS_personality, 0xffffffff00000000UL | READ_IMPLIES_EXEC) != -1 ||
        errno != EPERM)
        return 17;
    if (personality (0xffffffff) == -1 || personality (PER_LINUX) == -1)
        return 18;
    /* ordinary life goes on */
    int fds[2];
    if (getpid () <= 0 || pipe (fds))
        return 19;
    close (fds[0]);
    close (fds[1]);
    pid_t pid = fork ();
    if (pid == 0)
        _exit (0);
    if (pid < 0 || waitpid (pid, NULL, 0) != pid)
        return 20;
    errno = 0;
    long r = syscall (SYS_unshare, CLONE_NEWUSER);
    if (level == LSS_SANDBOX_LEVEL_HIGH) {
        if (r != -1 || errno != EPERM)
            return 21;
        errno = 0;
        if (syscall (SYS_clone3, NULL, 0) != -1 || errno != ENOSYS)
            return 22;
        errno = 0;
        char c = 0;
        if (ioctl (0, TIOCSTI, &c) != -1 || errno != EPERM)
            return 23;
        errno = 0;
        if (syscall (SYS_ioctl, 0, 0xdead000000000000UL | TIOCSTI, &c) != -1 || errno != EPERM)
            return 24;
        errno = 0;
        if (syscall (SYS_io_uring_setup, 1, NULL) != -1 || errno != EPERM)
            return 25;
        errno = 0;
        if (syscall (SYS_unshare, CLONE_FILES) != 0) /* not a namespace: allowed */
            return 26;
    } else if (r == -1 && errno == EPERM && geteuid () == 0) {
        return 27; /* standard leaves namespace creation to the kernel (and bwrap) */
    }
    return 0;
}

static void s_run_child (lss_sandbox_level_t level)
{
    pid_t pid = fork ();
    assert_true (pid >= 0);
    if (pid == 0)
        _exit (s_child_checks (level));
    int status = 0;
    assert_int_equal (waitpid (pid, &status, 0), pid);
    if (!WIFEXITED (status) || WEXITSTATUS (status) != 0)
        print_error ("%s: child status %#x (exit %d)\n", lss_sandbox_level_name (level), status,
                     WIFEXITED (status) ? WEXITSTATUS (status) : -1);
    assert_true (WIFEXITED (status));
    assert_int_equal (WEXITSTATUS (status), 0);
}

static void test_standard_denies (void **state)
{
    (void)state;
    s_run_child (LSS_SANDBOX_LEVEL_STANDARD);
}

static void test_high_denies (void **state)
{
    (void)state;
    s_run_child (LSS_SANDBOX_LEVEL_HIGH);
}

static void test_foreign_abi_killed (void **state)
{
    (void)state;
    pid_t pid = fork ();
    assert_true (pid >= 0);
    if (pid == 0) {
        if (lss_sandbox_seccomp_load (LSS_SANDBOX_LEVEL_STANDARD))
            _exit (10);
        syscall (0x40000000 | 39); /* x32 getpid */
        _exit (0);
    }
    int status = 0;
    assert_int_equal (waitpid (pid, &status, 0), pid);
    assert_true (WIFSIGNALED (status));
    assert_int_equal (WTERMSIG (status), SIGSYS);
}

int main (void)
{
    if (RUNNING_ON_VALGRIND) {
        printf ("skipped under valgrind: it does not emulate seccomp filters\n");
        return 0;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_export_and_memfd),   cmocka_unit_test (test_describe),
        cmocka_unit_test (test_standard_denies),    cmocka_unit_test (test_high_denies),
        cmocka_unit_test (test_foreign_abi_killed),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
