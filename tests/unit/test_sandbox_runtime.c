/*  Runtime tests for the local sandbox runtime: lifecycle and exit reasons, detach and
 *  adoption across runtime restarts, containment (memory, pids, storage, CPU, two
 *  sandboxes side by side), cleanup, the no-cgroup fallback, and a start-latency
 *  measurement against bare bwrap (printed, never asserted).
 *
 *  Each case gets its own runtime on a fresh mkdtemp state dir and stops every sandbox
 *  in teardown, then checks nothing is left. Waits are on conditions with deadlines.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
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

#define UID_BASE       310000u /* this binary's host uid range (root only) */
#define UID_COUNT      64u
#define RUN_TIMEOUT_MS 20000

extern char **environ;

#define FX_DIR_TEMPLATE "/tmp/lss-sbx-rt-XXXXXX"
#include "lss_testsandbox.h"

/* ------------------------------------------------------------------ helpers */

static void fx_start (fx_t *f, lss_sandbox_spec_t **spec_p, lss_sandbox_status_t *st)
{
    char err[256] = "";
    int rc = lss_sandbox_runtime_start (f->rt, *spec_p, st, err, sizeof err);
    if (rc)
        print_error ("start %s: %s\n", (*spec_p)->id, err);
    assert_int_equal (rc, 0);
    lss_sandbox_spec_destroy (spec_p);
}

static lss_sandbox_spec_t *fx_probe_spec (fx_t *f, const char *id, const char *a1,
                                          const char *a2, const char *a3)
{
    const char *argv[] = {"/opt/probe/sbx_probe", a1, a2, a3};
    size_t argc = a3 ? 4 : a2 ? 3 : 2;
    return fx_spec (f, id, LSS_SANDBOX_LEVEL_STANDARD, argv, argc);
}

static bool fx_pid_gone (pid_t pid, int timeout_ms)
{
    int fd = (int)syscall (SYS_pidfd_open, pid, 0);
    if (fd < 0)
        return true;
    struct pollfd pfd = {fd, POLLIN, 0};
    bool gone = poll (&pfd, 1, timeout_ms) > 0;
    close (fd);
    return gone;
}

/* ------------------------------------------------------------------ lifecycle */

static void test_exit_reasons (void **state)
{
    fx_t *f = *state;
    lss_sandbox_status_t st;
    lss_sandbox_spec_t *spec = fx_probe_spec (f, "rt-exit0", "exit", "0", NULL);
    assert_int_equal (fx_run (f, &spec, &st), 0);
    assert_string_equal (st.reason, "Completed");
    assert_int_equal (st.phase, LSS_SANDBOX_EXITED);
    assert_true (st.finished_ms >= st.started_ms);

    spec = fx_probe_spec (f, "rt-exit3", "exit", "3", NULL);
    assert_int_equal (fx_run (f, &spec, &st), 3);
    assert_string_equal (st.reason, "Error");
    assert_int_equal (st.signal, 0);

    spec = fx_probe_spec (f, "rt-segv", "segv", NULL, NULL);
    assert_int_equal (fx_run (f, &spec, &st), 128 + SIGSEGV);
    assert_string_equal (st.reason, "Signaled");
    assert_int_equal (st.signal, SIGSEGV);

    /* a mount bwrap cannot make is a start error, with bwrap's message */
    spec = fx_probe_spec (f, "rt-badbind", "exit", "0", NULL);
    assert_int_equal (lss_sandbox_spec_add_ro_bind (spec, "/nonexistent-lss-src", "/opt/x"), 0);
    fx_run (f, &spec, &st); /* bwrap exits 1 without an exit code: the init never ran */
    assert_string_equal (st.reason, "StartError");
    assert_non_null (strstr (st.message, "bwrap:"));
}

static void test_bad_specs_leave_nothing (void **state)
{
    fx_t *f = *state;
    char err[256];
    lss_sandbox_status_t st;
    lss_sandbox_spec_t *spec = fx_probe_spec (f, "Bad_Id", "exit", "0", NULL);
    assert_int_equal (lss_sandbox_runtime_start (f->rt, spec, &st, err, sizeof err), -1);
    assert_non_null (strstr (err, "id:"));
    lss_sandbox_spec_destroy (&spec);

    spec = fx_probe_spec (f, "rt-high", "exit", "0", NULL);
    spec->level = LSS_SANDBOX_LEVEL_HIGH;
    spec->memory_bytes = 0;
    assert_int_equal (lss_sandbox_runtime_start (f->rt, spec, &st, err, sizeof err), -1);
    /* refused for the spec, or earlier because this host cannot run high at all */
    assert_true (strstr (err, "securityLevel") || strstr (err, "high sandboxes cannot start"));
    lss_sandbox_spec_destroy (&spec);

    spec = fx_probe_spec (f, "rt-rootfs", "exit", "0", NULL);
    assert_int_equal (lss_sandbox_spec_set_rootfs (spec, "/nonexistent-rootfs"), 0);
    assert_int_equal (lss_sandbox_runtime_start (f->rt, spec, &st, err, sizeof err), -1);
    assert_non_null (strstr (err, "rootfs"));
    lss_sandbox_spec_destroy (&spec);

    spec = fx_probe_spec (f, "rt-dup", "sleep", NULL, NULL);
    fx_start (f, &spec, &st);
    spec = fx_probe_spec (f, "rt-dup", "exit", "0", NULL);
    assert_int_equal (lss_sandbox_runtime_start (f->rt, spec, &st, err, sizeof err), -1);
    assert_non_null (strstr (err, "already exists"));
    lss_sandbox_spec_destroy (&spec);
    assert_int_equal (lss_sandbox_runtime_count (f->rt), 1);
    char path[PATH_MAX];
    struct stat sb;
    lss_fmt (path, sizeof path, "%s/rt-high", f->state);
    assert_int_equal (stat (path, &sb), -1);
    lss_fmt (path, sizeof path, "%s/rt-rootfs", f->state);
    assert_int_equal (stat (path, &sb), -1);
}

static void test_poll_list_get (void **state)
{
    fx_t *f = *state;
    lss_sandbox_status_t st;
    lss_sandbox_spec_t *spec = fx_probe_spec (f, "rt-a", "exit", "4", NULL);
    fx_start (f, &spec, &st);
    assert_int_equal (st.phase, LSS_SANDBOX_RUNNING);
    assert_true (st.pid > 0 && st.monitor_pid > 0 && st.pid != st.monitor_pid);
    spec = fx_probe_spec (f, "rt-b", "exit", "5", NULL);
    fx_start (f, &spec, &st);
    int seen_a = 0, seen_b = 0;
    int64_t deadline = lss_time_mono_ms () + RUN_TIMEOUT_MS;
    while ((seen_a + seen_b) < 2 && lss_time_mono_ms () < deadline) {
        lss_sandbox_status_t ended;
        int rc = lss_sandbox_runtime_poll (f->rt, 1000, &ended);
        assert_true (rc >= 0);
        if (rc == 1 && strcmp (ended.id, "rt-a") == 0) {
            seen_a++;
            assert_int_equal (ended.exit_code, 4);
        }
        if (rc == 1 && strcmp (ended.id, "rt-b") == 0) {
            seen_b++;
            assert_int_equal (ended.exit_code, 5);
        }
    }
    assert_int_equal (seen_a, 1);
    assert_int_equal (seen_b, 1);
    assert_int_equal (lss_sandbox_runtime_poll (f->rt, 0, &st), 0); /* reported once */
    assert_int_equal (lss_sandbox_runtime_count (f->rt), 2);
    json_t *list = lss_sandbox_runtime_list (f->rt);
    assert_int_equal (json_array_size (list), 2);
    assert_string_equal (
        json_string_value (json_object_get (json_array_get (list, 0), "phase")), "Exited");
    json_decref (list);
    assert_int_equal (lss_sandbox_runtime_get (f->rt, "rt-a", &st), 0);
    assert_string_equal (st.reason, "Error");
    assert_int_equal (lss_sandbox_runtime_get (f->rt, "nope", &st), -1);
    assert_int_equal (lss_sandbox_runtime_stop (f->rt, "nope", 100, &st), -1);
    /* the runtime's fd is pollable */
    assert_true (lss_sandbox_runtime_fd (f->rt) >= 0);
}

/* ------------------------------------------------------------------ detach + adopt */

static void test_detach_and_adopt (void **state)
{
    fx_t *f = *state;
    lss_sandbox_status_t running, ending;
    lss_sandbox_spec_t *spec = fx_probe_spec (f, "rt-keep", "sleep", NULL, NULL);
    fx_start (f, &spec, &running);
    const char *argv[] = {"/bin/sh", "-c",
                          "trap 'exit 7' TERM; echo ready; while :; do sleep 1 & wait; done"};
    spec = fx_spec (f, "rt-ends", LSS_SANDBOX_LEVEL_STANDARD, argv, 3);
    fx_start (f, &spec, &ending);
    assert_int_equal (fx_wait_log (f, "rt-keep", "ready", RUN_TIMEOUT_MS), 0);
    assert_int_equal (fx_wait_log (f, "rt-ends", "ready", RUN_TIMEOUT_MS), 0);

    /* a second runtime cannot take the same state dir */
    assert_null (lss_sandbox_runtime_new (f->state, NULL, NULL));
    /* the runtime goes away; the sandboxes do not */
    lss_sandbox_runtime_destroy (&f->rt);
    assert_int_equal (kill (running.pid, 0), 0);
    assert_int_equal (kill (running.monitor_pid, 0), 0);
    /* one sandbox ends while nobody watches */
    assert_int_equal (kill (ending.pid, SIGTERM), 0);
    assert_true (fx_pid_gone (ending.monitor_pid, RUN_TIMEOUT_MS));

    f->rt = lss_sandbox_runtime_new (f->state, NULL, NULL);
    assert_non_null (f->rt);
    assert_int_equal (lss_sandbox_runtime_set_uid_range (f->rt, UID_BASE, UID_COUNT), 0);
    assert_int_equal (lss_sandbox_runtime_adopt (f->rt), 2);
    assert_int_equal (lss_sandbox_runtime_adopt (f->rt), 0); /* idempotent */
    lss_sandbox_status_t st;
    assert_int_equal (lss_sandbox_runtime_get (f->rt, "rt-keep", &st), 0);
    assert_int_equal (st.phase, LSS_SANDBOX_RUNNING);
    assert_int_equal (st.pid, running.pid);
    assert_int_equal (st.monitor_pid, running.monitor_pid);
    assert_int_equal (st.host_uid, running.host_uid);
    assert_int_equal (lss_sandbox_runtime_get (f->rt, "rt-ends", &st), 0);
    assert_int_equal (st.phase, LSS_SANDBOX_EXITED);
    assert_int_equal (st.exit_code, 7);
    assert_string_equal (st.reason, "Error");
    /* the adopted ending is reported once through poll */
    lss_sandbox_status_t ended;
    assert_int_equal (lss_sandbox_runtime_poll (f->rt, 0, &ended), 1);
    assert_string_equal (ended.id, "rt-ends");
    /* slots survive the restart: a new sandbox gets a different host uid */
    spec = fx_probe_spec (f, "rt-new", "sleep", NULL, NULL);
    lss_sandbox_status_t fresh;
    fx_start (f, &spec, &fresh);
    if (geteuid () == 0)
        assert_int_not_equal (fresh.host_uid, running.host_uid);
    /* the adopted one can be stopped, and says how it ended */
    assert_int_equal (lss_sandbox_runtime_stop (f->rt, "rt-keep", 5000, &st), 0);
    assert_string_equal (st.reason, "Stopped");
    assert_int_equal (st.exit_code, 128 + SIGKILL);
    assert_true (fx_pid_gone (running.pid, 5000));
}

/* ------------------------------------------------------------------ containment */

static void test_memory_bomb_oom_killed (void **state)
{
    fx_t *f = *state;
    lss_sandbox_spec_t *spec = fx_probe_spec (f, "rt-membomb", "membomb", "1024", NULL);
    spec->memory_bytes = 32LL << 20;
    lss_sandbox_status_t st;
    int code = fx_run (f, &spec, &st);
    if (!st.memory_enforced) {
        /* no memory cgroup here: it must say so, and RLIMIT_DATA stops the bomb */
        assert_non_null (strstr (st.warnings, "memory limit not enforced"));
        assert_int_equal (code, 0);
        return;
    }
    assert_string_equal (st.reason, "OOMKilled");
    assert_true (st.oom_kills > 0);
    assert_int_equal (st.signal, SIGKILL);
}

static void test_fork_bomb_contained (void **state)
{
    fx_t *f = *state;
    lss_sandbox_status_t st;
    lss_sandbox_spec_t *spec = fx_probe_spec (f, "rt-forks", "forkbomb", "1000", NULL);
    spec->pids_max = 16;
    fx_start (f, &spec, &st);
    assert_int_equal (fx_wait_log (f, "rt-forks", "forks=", RUN_TIMEOUT_MS), 0);
    if (!st.pids_enforced && geteuid () != 0) {
        /* neither a pids cgroup nor a per-sandbox uid for RLIMIT_NPROC: nothing bounds
           processes here, so no real fork bomb is run; the gap is reported */
        assert_non_null (strstr (st.warnings, "pids limit not enforced"));
        skip ();
    }
    long forks = strtol (strstr (f->log, "forks=") + 6, NULL, 10);
    assert_true (forks > 0 && forks < 16);
    assert_non_null (strstr (f->log, "DENIED")); /* fork failed (EAGAIN) at the limit */
    lss_sandbox_cg_usage_t usage;
    assert_int_equal (lss_sandbox_runtime_usage (f->rt, "rt-forks", &usage), 0);
    if (st.pids_enforced) {
        assert_true (usage.pids <= 17); /* the sandbox's 16 + bwrap's monitor */
        if (usage.pids_peak >= 0)
            assert_true (usage.pids_peak <= 17);
    }

    /* a real, exponential fork bomb: the count never passes the limit and stop works.
       The bomb runs beside a sleeping init: a shell whose own fork fails at the limit
       exits ("Cannot fork"), and the sandbox must still be running when it is stopped */
    const char *argv[] = {
        "/bin/sh", "-c", "b() { b | b & }; (while :; do b; done) 2>/dev/null & exec sleep 600"};
    spec = fx_spec (f, "rt-shbomb", LSS_SANDBOX_LEVEL_STANDARD, argv, 3);
    spec->pids_max = 32;
    fx_start (f, &spec, &st);
    int64_t deadline = lss_time_mono_ms () + 10000;
    int64_t most = 0;
    while (lss_time_mono_ms () < deadline && most < 30) {
        assert_int_equal (lss_sandbox_runtime_usage (f->rt, "rt-shbomb", &usage), 0);
        if (usage.pids > most)
            most = usage.pids;
        assert_true (usage.pids <= 33);
        struct timespec ts = {0, 1000 * 1000};
        nanosleep (&ts, NULL);
    }
    print_message ("fork bomb: up to %lld processes (limit 32 + monitor), peak %lld\n",
                   (long long)most, (long long)usage.pids_peak);
    int64_t t0 = lss_time_mono_ms ();
    assert_int_equal (lss_sandbox_runtime_stop (f->rt, "rt-shbomb", 5000, &st), 0);
    assert_string_equal (st.reason, "Stopped");
    assert_true (lss_time_mono_ms () - t0 < 5000);
}

static void test_storage_caps (void **state)
{
    fx_t *f = *state;
    const char *argv[] = {"/bin/sh", "-c",
                          "p=/opt/probe/sbx_probe; rc=0; $p fill /workspace 4194304 || rc=1; "
                          "$p fill /tmp 2097152 || rc=1; $p fill /dev/shm 2097152 || rc=1; "
                          "$p fill /home/sandbox 2097152 || rc=1; exit $rc"};
    lss_sandbox_spec_t *spec = fx_spec (f, "rt-fill", LSS_SANDBOX_LEVEL_STANDARD, argv, 3);
    spec->ephemeral_bytes = 4LL << 20;
    spec->tmp_bytes = 2LL << 20;
    assert_int_equal (lss_sandbox_spec_add_writable (spec, "/home/sandbox"), 0);
    lss_sandbox_status_t st;
    int code = fx_run (f, &spec, &st);
    if (code)
        print_error ("%s\n", f->log);
    assert_int_equal (code, 0);
    assert_non_null (strstr (f->log, "fill: DENIED wrote"));
}

static void test_cpu_loop_stopped (void **state)
{
    fx_t *f = *state;
    lss_sandbox_status_t st;
    lss_sandbox_spec_t *spec = fx_probe_spec (f, "rt-spin", "spin", NULL, NULL);
    spec->cpu_millicores = 500;
    fx_start (f, &spec, &st);
    assert_int_equal (fx_wait_log (f, "rt-spin", "spinning", RUN_TIMEOUT_MS), 0);
    lss_sandbox_cg_usage_t usage = {0};
    int64_t deadline = lss_time_mono_ms () + 5000;
    while (lss_time_mono_ms () < deadline) {
        assert_int_equal (lss_sandbox_runtime_usage (f->rt, "rt-spin", &usage), 0);
        if (usage.cpu_usec < 0 || usage.cpu_usec > 20000)
            break;
        struct timespec ts = {0, 5 * 1000 * 1000};
        nanosleep (&ts, NULL);
    }
    assert_true (usage.cpu_usec < 0 || usage.cpu_usec > 20000);
    pid_t pid = st.pid;
    assert_int_equal (lss_sandbox_runtime_stop (f->rt, "rt-spin", 5000, &st), 0);
    assert_string_equal (st.reason, "Stopped");
    assert_int_equal (st.signal, SIGKILL);
    assert_true (fx_pid_gone (pid, 1000));
}

static void test_two_sandboxes_apart (void **state)
{
    fx_t *f = *state;
    lss_sandbox_status_t a, b;
    const char *argv_a[] = {"/bin/sh", "-c",
                            "p=/opt/probe/sbx_probe; $p writefile /workspace/a.txt secret-a && "
                            "$p ls /workspace && exec $p sleep"};
    const char *argv_b[] = {"/bin/sh", "-c",
                            "p=/opt/probe/sbx_probe; $p writefile /workspace/b.txt secret-b && "
                            "$p ls /workspace && exec $p sleep"};
    lss_sandbox_spec_t *spec = fx_spec (f, "rt-a", LSS_SANDBOX_LEVEL_STANDARD, argv_a, 3);
    fx_start (f, &spec, &a);
    spec = fx_spec (f, "rt-b", LSS_SANDBOX_LEVEL_STANDARD, argv_b, 3);
    fx_start (f, &spec, &b);
    assert_int_equal (fx_wait_log (f, "rt-a", "ready", RUN_TIMEOUT_MS), 0);
    assert_non_null (strstr (f->log, "ls /workspace: a.txt\n"));
    assert_int_equal (fx_wait_log (f, "rt-b", "ready", RUN_TIMEOUT_MS), 0);
    assert_non_null (strstr (f->log, "ls /workspace: b.txt\n"));
    /* from a third sandbox, A's files are not reachable by any path */
    char path[128], script[512];
    lss_fmt (script, sizeof script,
             "p=/opt/probe/sbx_probe; rc=0; $p read /proc/%d/root/workspace/a.txt || rc=1; "
             "$p read %s/rt-a/workspace/a.txt || rc=1; exit $rc",
             (int)a.pid, f->state);
    const char *argv_c[] = {"/bin/sh", "-c", script};
    spec = fx_spec (f, "rt-c", LSS_SANDBOX_LEVEL_STANDARD, argv_c, 3);
    assert_int_equal (fx_run (f, &spec, NULL), 0);
    if (geteuid () != 0)
        return;
    /* on the host: two owners, both 0700, and B's uid cannot read A's files */
    char wa[PATH_MAX], wb[PATH_MAX];
    struct stat sa, sb;
    lss_fmt (wa, sizeof wa, "%s/rt-a/workspace", f->state);
    lss_fmt (wb, sizeof wb, "%s/rt-b/workspace", f->state);
    assert_int_equal (stat (wa, &sa), 0);
    assert_int_equal (stat (wb, &sb), 0);
    assert_int_not_equal (sa.st_uid, sb.st_uid);
    assert_int_equal (sa.st_uid, a.host_uid);
    assert_int_equal (sb.st_uid, b.host_uid);
    assert_int_equal (sa.st_mode & 07777, 0700);
    assert_int_equal (sb.st_mode & 07777, 0700);
    lss_fmt (path, sizeof path, "%s/a.txt", wa);
    pid_t child = fork ();
    if (child == 0) {
        if (setgroups (0, NULL) || setresgid (b.host_gid, b.host_gid, b.host_gid) ||
            setresuid (b.host_uid, b.host_uid, b.host_uid))
            _exit (2);
        _exit (open (path, O_RDONLY) < 0 && errno == EACCES ? 0 : 1);
    }
    int status = 0;
    assert_int_equal (waitpid (child, &status, 0), child);
    assert_true (WIFEXITED (status) && WEXITSTATUS (status) == 0);
}

static bool fx_mounted (const char *path)
{
    char *text = malloc (1 << 20);
    bool found = text && lss_sandbox_fs_read ("/proc/self/mountinfo", text, 1 << 20) > 0 &&
                 strstr (text, path);
    free (text);
    return found;
}

static void test_stop_removes_everything (void **state)
{
    fx_t *f = *state;
    lss_sandbox_status_t st;
    lss_sandbox_spec_t *spec = fx_probe_spec (f, "rt-clean", "sleep", NULL, NULL);
    spec->memory_bytes = 64LL << 20;
    fx_start (f, &spec, &st);
    assert_int_equal (fx_wait_log (f, "rt-clean", "ready", RUN_TIMEOUT_MS), 0);
    const lss_sandbox_preflight_t *pf = lss_sandbox_runtime_preflight (f->rt);
    char cg[PATH_MAX], dir[PATH_MAX], ws[PATH_MAX];
    struct stat sb;
    lss_fmt (cg, sizeof cg, "%s/rt-clean", pf->cgroup.ctrl[LSS_SANDBOX_CG_MEMORY].parent);
    lss_fmt (dir, sizeof dir, "%s/rt-clean", f->state);
    lss_fmt (ws, sizeof ws, "%s/rt-clean/workspace", f->state);
    if (st.memory_enforced)
        assert_int_equal (stat (cg, &sb), 0);
    if (strcmp (st.workspace, "host-tmpfs") == 0)
        assert_true (fx_mounted (ws));
    assert_int_equal (lss_sandbox_runtime_stop (f->rt, "rt-clean", 5000, &st), 0);
    assert_int_equal (stat (cg, &sb), -1);
    assert_int_equal (stat (dir, &sb), -1);
    assert_false (fx_mounted (ws));
    assert_true (fx_pid_gone (st.monitor_pid, 1000));
}

/*  A sandbox whose runtime died mid-launch has no state.json: adopted as Lost, its stop
 *  must still unmount the host workspace tmpfs and remove its files (regression). */
static void test_stop_lost_unmounts (void **state)
{
    fx_t *f = *state;
    lss_sandbox_status_t st;
    lss_sandbox_spec_t *spec = fx_probe_spec (f, "rt-lost", "sleep", NULL, NULL);
    fx_start (f, &spec, &st);
    assert_int_equal (fx_wait_log (f, "rt-lost", "ready", RUN_TIMEOUT_MS), 0);
    if (strcmp (st.workspace, "host-tmpfs") != 0)
        skip (); /* not root: the workspace is inside the sandbox, nothing on the host */
    char ws[PATH_MAX], dir[PATH_MAX], state_file[PATH_MAX];
    lss_fmt (ws, sizeof ws, "%s/rt-lost/workspace", f->state);
    lss_fmt (dir, sizeof dir, "%s/rt-lost", f->state);
    lss_fmt (state_file, sizeof state_file, "%s/rt-lost/state.json", f->state);
    lss_sandbox_runtime_destroy (&f->rt);
    assert_int_equal (kill (st.monitor_pid, SIGKILL), 0); /* no exit status gets written */
    assert_int_equal (kill (st.pid, SIGKILL), 0);
    assert_true (fx_pid_gone (st.monitor_pid, RUN_TIMEOUT_MS));
    assert_true (fx_pid_gone (st.pid, RUN_TIMEOUT_MS));
    assert_int_equal (unlink (state_file), 0);
    f->rt = lss_sandbox_runtime_new (f->state, NULL, NULL);
    assert_non_null (f->rt);
    assert_int_equal (lss_sandbox_runtime_set_uid_range (f->rt, UID_BASE, UID_COUNT), 0);
    lss_sandbox_runtime_adopt (f->rt);
    lss_sandbox_status_t got;
    assert_int_equal (lss_sandbox_runtime_get (f->rt, "rt-lost", &got), 0);
    assert_int_equal (got.phase, LSS_SANDBOX_EXITED);
    assert_true (fx_mounted (ws));
    assert_int_equal (lss_sandbox_runtime_stop (f->rt, "rt-lost", 5000, &got), 0);
    assert_false (fx_mounted (ws));
    struct stat sb;
    assert_int_equal (stat (dir, &sb), -1);
}

static void test_rootfs_dir (void **state)
{
    fx_t *f = *state;
    if (geteuid () != 0)
        skip ();
    /* an "image": its own /srv, and /usr borrowed from the host by a bind mount */
    char rootfs[PATH_MAX], path[PATH_MAX];
    lss_fmt (rootfs, sizeof rootfs, "%s/rootfs", f->root);
    assert_int_equal (mkdir (rootfs, 0755), 0);
    lss_fmt (path, sizeof path, "%s/usr", rootfs);
    assert_int_equal (mkdir (path, 0755), 0);
    assert_int_equal (mount ("/usr", path, NULL, MS_BIND | MS_REC, NULL), 0);
    const char *links[][2] = {{"usr/bin", "bin"}, {"usr/lib", "lib"}, {"usr/lib64", "lib64"}};
    for (size_t i = 0; i < 3; i++) {
        lss_fmt (path, sizeof path, "%s/%s", rootfs, links[i][1]);
        assert_int_equal (symlink (links[i][0], path), 0);
    }
    lss_fmt (path, sizeof path, "%s/srv", rootfs);
    assert_int_equal (mkdir (path, 0755), 0);
    lss_fmt (path, sizeof path, "%s/srv/marker", rootfs);
    int fd = open (path, O_WRONLY | O_CREAT, 0644);
    assert_true (fd >= 0);
    assert_int_equal (write (fd, "from-image\n", 11), 11);
    close (fd);
    const char *argv[] = {"/bin/sh", "-c",
                          "cat /srv/marker; ls /; /opt/probe/sbx_probe write /srv/x"};
    lss_sandbox_spec_t *spec = fx_spec (f, "rt-image", LSS_SANDBOX_LEVEL_STANDARD, argv, 3);
    assert_int_equal (lss_sandbox_spec_set_rootfs (spec, rootfs), 0);
    int code = fx_run (f, &spec, NULL);
    lss_fmt (path, sizeof path, "%s/usr", rootfs);
    umount2 (path, MNT_DETACH);
    if (code)
        print_error ("%s\n", f->log);
    assert_int_equal (code, 0);
    assert_non_null (strstr (f->log, "from-image\n"));
    assert_non_null (strstr (f->log, "srv\n"));
    assert_null (strstr (f->log, "root\n"));
}

static void test_without_cgroups_warns (void **state)
{
    fx_t *f = *state;
    /* the same host as seen by a runtime that may not use cgroups */
    lss_sandbox_runtime_destroy (&f->rt);
    lss_sandbox_preflight_t *pf = lss_sandbox_preflight_new (NULL);
    assert_non_null (pf);
    for (int c = 0; c < LSS_SANDBOX_CG_COUNT; c++)
        pf->cgroup.ctrl[c].usable = false;
    char err[256], warn[256];
    assert_int_equal (lss_sandbox_preflight_check_level (pf, LSS_SANDBOX_LEVEL_HIGH, err,
                                                         sizeof err, warn, sizeof warn),
                      -1);
    assert_non_null (strstr (err, "memory cgroup"));
    f->rt = lss_sandbox_runtime_new (f->state, NULL, &pf);
    assert_null (pf);
    assert_non_null (f->rt);
    assert_int_equal (lss_sandbox_runtime_set_uid_range (f->rt, UID_BASE, UID_COUNT), 0);
    lss_sandbox_status_t st;
    lss_sandbox_spec_t *spec = fx_probe_spec (f, "rt-nocg-high", "exit", "0", NULL);
    spec->level = LSS_SANDBOX_LEVEL_HIGH;
    assert_int_equal (lss_sandbox_runtime_start (f->rt, spec, &st, err, sizeof err), -1);
    assert_non_null (strstr (err, "high sandboxes cannot start"));
    lss_sandbox_spec_destroy (&spec);
    /* standard starts, says what is not enforced, and the rlimits still bite: the
       shell's string doubling runs into RLIMIT_DATA ("Out of space"), no OOM kill */
    const char *argv[] = {"/bin/sh", "-c", "x=0123456789; while :; do x=$x$x; done"};
    spec = fx_spec (f, "rt-nocg", LSS_SANDBOX_LEVEL_STANDARD, argv, 3);
    spec->memory_bytes = 32LL << 20;
    assert_int_equal (fx_run (f, &spec, &st), 2);
    assert_false (st.memory_enforced);
    assert_false (st.pids_enforced);
    assert_string_equal (st.reason, "Error");
    assert_non_null (strstr (st.warnings, "memory limit not enforced"));
    assert_non_null (strstr (st.warnings, "pids limit not enforced"));
    assert_non_null (strstr (f->log, "Out of space"));
}

/* ------------------------------------------------------------------ latency */

static int cmp_i64 (const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

static int64_t s_parse_now (const char *text)
{
    const char *p = strstr (text, "now ");
    return p ? strtoll (p + 4, NULL, 10) : -1;
}

static void test_start_latency_report (void **state)
{
    fx_t *f = *state;
    enum { N = 20 };
    int64_t ours[N], ours_return[N], bare[N];
    char probe[PATH_MAX + 16];
    lss_fmt (probe, sizeof probe, "%s/sbx_probe", f->bin);
    for (int i = 0; i < N; i++) {
        char id[32];
        lss_fmt (id, sizeof id, "rt-lat-%d", i);
        lss_sandbox_spec_t *spec = fx_probe_spec (f, id, "now", NULL, NULL);
        lss_sandbox_status_t st;
        char err[256];
        int64_t t0 = lss_time_mono_ns ();
        assert_int_equal (lss_sandbox_runtime_start (f->rt, spec, &st, err, sizeof err), 0);
        ours_return[i] = lss_time_mono_ns () - t0;
        lss_sandbox_spec_destroy (&spec);
        assert_int_equal (lss_sandbox_runtime_wait (f->rt, id, RUN_TIMEOUT_MS, &st), 0);
        fx_read_log (f, id);
        int64_t t_init = s_parse_now (f->log);
        assert_true (t_init > t0);
        ours[i] = t_init - t0;
        assert_int_equal (lss_sandbox_runtime_stop (f->rt, id, 5000, NULL), 0);

        /* bare bwrap, as the brief's reference: bwrap --ro-bind / / PROBE now */
        int fds[2];
        assert_int_equal (pipe (fds), 0);
        posix_spawn_file_actions_t fa;
        posix_spawn_file_actions_init (&fa);
        posix_spawn_file_actions_adddup2 (&fa, fds[1], 1);
        posix_spawn_file_actions_addclose (&fa, fds[0]);
        char *argv[] = {"/usr/bin/bwrap", "--ro-bind", "/", "/", probe, "now", NULL};
        pid_t pid;
        t0 = lss_time_mono_ns ();
        assert_int_equal (posix_spawn (&pid, argv[0], &fa, NULL, argv, environ), 0);
        posix_spawn_file_actions_destroy (&fa);
        close (fds[1]);
        char out[128] = "";
        ssize_t n = read (fds[0], out, sizeof out - 1);
        out[n > 0 ? n : 0] = '\0';
        close (fds[0]);
        waitpid (pid, NULL, 0);
        t_init = s_parse_now (out);
        assert_true (t_init > t0);
        bare[i] = t_init - t0;
    }
    qsort (ours, N, sizeof ours[0], cmp_i64);
    qsort (ours_return, N, sizeof ours_return[0], cmp_i64);
    qsort (bare, N, sizeof bare[0], cmp_i64);
    print_message ("start -> init running: median %.2f ms (p90 %.2f); start() returns after "
                   "%.2f ms; bare `bwrap --ro-bind / / probe`: median %.2f ms (p90 %.2f); "
                   "ratio %.2f\n",
                   (double)ours[N / 2] / 1e6, (double)ours[N * 9 / 10] / 1e6,
                   (double)ours_return[N / 2] / 1e6, (double)bare[N / 2] / 1e6,
                   (double)bare[N * 9 / 10] / 1e6, (double)ours[N / 2] / (double)bare[N / 2]);
}

int main (void)
{
    if (RUNNING_ON_VALGRIND) {
        printf ("skipped under valgrind: pidfds, seccomp and namespaces are not emulated "
                "(ASan/UBSan cover this code)\n");
        return 0;
    }
    lss_log_init ("test", LSS_LOG_ERROR);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown (test_exit_reasons, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown (test_stop_lost_unmounts, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown (test_bad_specs_leave_nothing, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown (test_poll_list_get, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown (test_detach_and_adopt, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown (test_memory_bomb_oom_killed, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown (test_fork_bomb_contained, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown (test_storage_caps, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown (test_cpu_loop_stopped, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown (test_two_sandboxes_apart, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown (test_stop_removes_everything, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown (test_rootfs_dir, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown (test_without_cgroups_warns, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown (test_start_latency_report, fx_setup, fx_teardown),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
