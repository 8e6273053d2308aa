/*  Isolation tests for the local sandbox runtime: every assertion is made from inside a
 *  real sandbox (sbx_probe or /bin/sh as its init), reading back the exit code from
 *  status.json and the init's output from init.log.
 *
 *  Each case gets its own runtime on a fresh mkdtemp state dir and stops every sandbox
 *  in teardown, then checks nothing is left (processes of the test's host uid range,
 *  state files). Waits are on conditions with deadlines.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#else
#define RUNNING_ON_VALGRIND 0
#endif

#include "lss_log.h"
#include "lss_util.h"
#include "sandbox_fs.h"
#include "sandbox_runtime.h"

#define UID_BASE       300000u /* this binary's host uid range (root only) */
#define UID_COUNT      64u
#define RUN_TIMEOUT_MS 20000

#define FX_DIR_TEMPLATE "/tmp/lss-sbx-iso-XXXXXX"
#include "lss_testsandbox.h"

/*  Runs a shell script as the init; $p is the probe. Asserts exit 0, printing the log
 *  otherwise. */
static void fx_script (fx_t *f, const char *id, lss_sandbox_level_t level, const char *script)
{
    char full[8192];
    lss_fmt (full, sizeof full, "p=/opt/probe/sbx_probe; rc=0; %s\nexit $rc", script);
    const char *argv[] = {"/bin/sh", "-c", full};
    lss_sandbox_spec_t *spec = fx_spec (f, id, level, argv, 3);
    lss_sandbox_status_t st;
    int code = fx_run (f, &spec, &st);
    if (code != 0)
        print_error ("sandbox %s exit %d reason %s %s\n--- log:\n%s\n", id, code, st.reason,
                     st.message, f->log);
    assert_int_equal (code, 0);
}

/*  Runs the probe itself as PID 1. Returns its exit code (0 = denied). */
static int fx_probe (fx_t *f, const char *id, lss_sandbox_level_t level, const char *name,
                     const char *arg)
{
    const char *argv[] = {"/opt/probe/sbx_probe", name, arg};
    lss_sandbox_spec_t *spec = fx_spec (f, id, level, argv, arg ? 3 : 2);
    lss_sandbox_status_t st;
    int code = fx_run (f, &spec, &st);
    if (code != 0)
        print_message ("probe %s: exit %d reason %s\n%s", name, code, st.reason, f->log);
    return code;
}

/*  High sandboxes need memory + pids cgroups (and more): where the host refuses them,
 *  the high-level cases are skipped, not failed (the refusal itself is tested in
 *  test_sandbox_runtime). */
static bool fx_high_ok (fx_t *f)
{
    char err[512];
    if (lss_sandbox_preflight_check_level (lss_sandbox_runtime_preflight (f->rt),
                                           LSS_SANDBOX_LEVEL_HIGH, err, sizeof err, NULL, 0)) {
        print_message ("skipping the high level: %s\n", err);
        return false;
    }
    return true;
}

/* ------------------------------------------------------------------ tests */

static void test_host_secrets_unreadable (void **state)
{
    fx_t *f = *state;
    const char *project = getenv ("LSS_ROOT");
    char script[4096];
    lss_fmt (script, sizeof script,
             "for path in /etc/shadow /etc/gshadow /etc/sudoers /etc/ssh /root /home /var "
             "/var/log /run/secrets /sys/fs/cgroup /boot /mnt '%s' '%s/Makefile' /work "
             "'%s' /proc/1/root/etc/shadow; do $p read \"$path\" || rc=1; done\n"
             "grep -c . /etc/passwd; cat /etc/passwd; cat /etc/group; ls /etc",
             project && *project ? project : "/work/main",
             project && *project ? project : "/work/main", f->state);
    fx_script (f, "iso-secrets", LSS_SANDBOX_LEVEL_STANDARD, script);
    /* our own /etc: exactly root and the sandbox user, no host accounts */
    assert_non_null (strstr (f->log, "\n2\nroot:x:0:0:"));
    assert_non_null (strstr (f->log, "sandbox:x:1000:1000:sandbox:/workspace:/bin/sh\n"));
    assert_null (strstr (f->log, "daemon:"));
    assert_null (strstr (f->log, "shadow\n"));
}

static void test_root_read_only (void **state)
{
    fx_t *f = *state;
    fx_script (f, "iso-readonly", LSS_SANDBOX_LEVEL_STANDARD,
               "for path in /x /usr/x /bin/x /etc/x /etc/passwd /opt/probe/x /proc/x "
               "/dev/x /run/x; do $p write \"$path\" || rc=1; done\n"
               "for path in /workspace/x /tmp/x /dev/shm/x /run/lss/x; do "
               "$p write \"$path\"; [ $? -eq 1 ] || rc=1; done\n"
               "$p mount || rc=1");
}

static void test_host_processes_invisible (void **state)
{
    fx_t *f = *state;
    char script[512];
    lss_fmt (script, sizeof script, "$p kill %d || rc=1; $p proc %d || rc=1; $p kill 1",
             (int)getpid (), (int)getpid ());
    fx_script (f, "iso-pids", LSS_SANDBOX_LEVEL_STANDARD, script);
    /* the probe (not the host's init) is PID 1 in its namespace */
    char arg[32];
    lss_fmt (arg, sizeof arg, "%d", (int)getpid ());
    assert_int_equal (fx_probe (f, "iso-proc1", LSS_SANDBOX_LEVEL_STANDARD, "proc", arg), 0);
    assert_non_null (strstr (f->log, "1 processes: 1;"));
}

static int s_listener (int *port)
{
    int fd = socket (AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET};
    sa.sin_addr.s_addr = htonl (INADDR_LOOPBACK);
    socklen_t len = sizeof sa;
    assert_true (fd >= 0);
    assert_int_equal (bind (fd, (struct sockaddr *)&sa, sizeof sa), 0);
    assert_int_equal (listen (fd, 8), 0);
    assert_int_equal (getsockname (fd, (struct sockaddr *)&sa, &len), 0);
    *port = ntohs (sa.sin_port);
    return fd;
}

static void test_network_off_and_on (void **state)
{
    fx_t *f = *state;
    int port;
    int fd = s_listener (&port);
    char arg[16];
    lss_fmt (arg, sizeof arg, "%d", port);
    assert_int_equal (fx_probe (f, "iso-net-off", LSS_SANDBOX_LEVEL_STANDARD, "connect", arg),
                      0);
    /* network on shares the host's: the same connect now works (all or nothing) */
    const char *argv[] = {"/opt/probe/sbx_probe", "connect", arg};
    lss_sandbox_spec_t *spec = fx_spec (f, "iso-net-on", LSS_SANDBOX_LEVEL_STANDARD, argv, 3);
    spec->network = true;
    assert_int_equal (fx_run (f, &spec, NULL), 1);
    close (fd);
}

static void test_no_privileges (void **state)
{
    fx_t *f = *state;
    for (int level = 0; level <= (fx_high_ok (f) ? 1 : 0); level++) {
        lss_sandbox_level_t lv = (lss_sandbox_level_t)level;
        const char *id = level ? "iso-priv-high" : "iso-priv-std";
        fx_script (f, id, lv,
                   "$p setuid || rc=1; $p ptrace || rc=1; $p bpf || rc=1; $p keyctl || rc=1; "
                   "$p mount || rc=1; $p userns || rc=1; $p netns || rc=1; $p clone_ns || rc=1;"
                   " $p personality || rc=1; $p x32 || rc=1; $p i386 || rc=1; id");
        assert_non_null (strstr (f->log, "uid=1000"));
        assert_non_null (strstr (f->log, "NoNewPrivs=1 Seccomp=2"));
    }
}

static void test_userns_denied_by_level (void **state)
{
    fx_t *f = *state;
    /* standard: the kernel refuses (bwrap --disable-userns: no user namespaces left) */
    assert_int_equal (
        fx_probe (f, "iso-userns-std", LSS_SANDBOX_LEVEL_STANDARD, "userns", NULL), 0);
    assert_non_null (strstr (f->log, "No space left on device"));
    /* high: seccomp refuses before the kernel is asked */
    if (!fx_high_ok (f))
        return;
    assert_int_equal (fx_probe (f, "iso-userns-high", LSS_SANDBOX_LEVEL_HIGH, "userns", NULL),
                      0);
    assert_non_null (strstr (f->log, "Operation not permitted"));
}

static void test_high_level_extras (void **state)
{
    fx_t *f = *state;
    if (!fx_high_ok (f))
        skip ();
    fx_script (f, "iso-high", LSS_SANDBOX_LEVEL_HIGH,
               "$p tiocsti || rc=1; $p iouring || rc=1; $p personality || rc=1");
}

static void test_descriptors_not_inherited (void **state)
{
    fx_t *f = *state;
    /* a descriptor the runtime's process holds must not reach the sandbox */
    int leak = open ("/etc/hostname", O_RDONLY); /* deliberately not close-on-exec */
    assert_true (leak >= 0);
    assert_int_equal (fx_probe (f, "iso-fds", LSS_SANDBOX_LEVEL_STANDARD, "fds", NULL), 0);
    close (leak);
}

static void test_clean_environment (void **state)
{
    fx_t *f = *state;
    setenv ("LSS_TEST_SECRET_TOKEN", "must-not-leak", 1);
    const char *argv[] = {"/bin/sh", "-c", "env; echo cwd=$(pwd); hostname; id -u; id -g"};
    lss_sandbox_spec_t *spec = fx_spec (f, "iso-env", LSS_SANDBOX_LEVEL_STANDARD, argv, 3);
    assert_int_equal (lss_sandbox_spec_add_env (spec, "FOO", "bar baz"), 0);
    assert_int_equal (fx_run (f, &spec, NULL), 0);
    unsetenv ("LSS_TEST_SECRET_TOKEN");
    assert_null (strstr (f->log, "must-not-leak"));
    assert_null (strstr (f->log, "LSS_"));
    assert_non_null (strstr (f->log, "HOME=/workspace\n"));
    assert_non_null (strstr (f->log, "LANG=C.UTF-8\n"));
    assert_non_null (strstr (f->log, "FOO=bar baz\n"));
    assert_non_null (strstr (f->log, "PATH=/usr/local/sbin:"));
    assert_non_null (strstr (f->log, "cwd=/workspace\niso-env\n1000\n1000\n"));
}

static void test_host_identity (void **state)
{
    fx_t *f = *state;
    if (geteuid () != 0)
        skip ();
    const char *argv[] = {"/opt/probe/sbx_probe", "sleep"};
    lss_sandbox_spec_t *spec = fx_spec (f, "iso-uid", LSS_SANDBOX_LEVEL_STANDARD, argv, 2);
    lss_sandbox_status_t st;
    char err[256];
    assert_int_equal (lss_sandbox_runtime_start (f->rt, spec, &st, err, sizeof err), 0);
    lss_sandbox_spec_destroy (&spec);
    assert_int_equal (fx_wait_log (f, "iso-uid", "ready", RUN_TIMEOUT_MS), 0);
    /* uid 1000 inside is an unprivileged, per-sandbox host uid outside */
    char path[64], text[4096];
    lss_fmt (path, sizeof path, "/proc/%d/status", (int)st.pid);
    assert_true (lss_sandbox_fs_read (path, text, sizeof text) > 0);
    char want[64];
    lss_fmt (want, sizeof want, "\nUid:\t%u\t%u\t%u\t%u", st.host_uid, st.host_uid, st.host_uid,
             st.host_uid);
    assert_non_null (strstr (text, want));
    assert_true (st.host_uid >= UID_BASE && st.host_uid < UID_BASE + UID_COUNT);
    assert_non_null (strstr (text, "\nCapEff:\t0000000000000000"));
    assert_int_equal (lss_sandbox_runtime_stop (f->rt, "iso-uid", 5000, &st), 0);
    assert_string_equal (st.reason, "Stopped");
}

int main (void)
{
    if (RUNNING_ON_VALGRIND) {
        printf ("skipped under valgrind: pidfds, seccomp and namespaces are not emulated "
                "(ASan/UBSan cover this code)\n");
        return 0;
    }
    lss_log_init ("test", LSS_LOG_WARN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown (test_host_secrets_unreadable, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown (test_root_read_only, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown (test_host_processes_invisible, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown (test_network_off_and_on, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown (test_no_privileges, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown (test_userns_denied_by_level, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown (test_high_level_extras, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown (test_descriptors_not_inherited, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown (test_clean_environment, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown (test_host_identity, fx_setup, fx_teardown),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
