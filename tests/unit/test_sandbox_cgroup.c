/*  Unit tests for sandbox_cgroup and sandbox_preflight on the real host: what is
 *  detected, limits written and read back, membership, usage, kill and removal — or,
 *  where the host lacks a controller, that it is reported (never faked). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#else
#define RUNNING_ON_VALGRIND 0
#endif

#include "lss_log.h"
#include "sandbox_fs.h"
#include "sandbox_preflight.h"

/*  Forks a child that joins cg — by writing "0" into files (as the runtime's launcher
 *  does) or, with files NULL, through lss_sandbox_cgroup_attach — then waits forever.
 *  Returns its pid once it has joined. */
static pid_t s_spawn_joined (lss_sandbox_cgroup_t *cg, const char **files, size_t nfiles)
{
    int ready[2];
    assert_int_equal (pipe (ready), 0);
    pid_t child = fork ();
    assert_true (child >= 0);
    if (child == 0) {
        close (ready[0]);
        if (!files && lss_sandbox_cgroup_attach (cg, 0))
            _exit (3);
        for (size_t i = 0; files && i < nfiles; i++) {
            int fd = open (files[i], O_WRONLY | O_CLOEXEC);
            if (fd < 0 || write (fd, "0", 1) != 1)
                _exit (3);
            close (fd);
        }
        if (write (ready[1], "x", 1) != 1)
            _exit (4);
        for (;;)
            pause ();
    }
    close (ready[1]);
    char c;
    assert_int_equal (read (ready[0], &c, 1), 1);
    close (ready[0]);
    return child;
}

static void test_detect_reports_every_controller (void **state)
{
    (void)state;
    lss_sandbox_cg_host_t host;
    lss_sandbox_cgroup_detect (&host, NULL);
    json_t *report = lss_sandbox_cgroup_host_json (&host);
    assert_non_null (report);
    const char *names[] = {"memory", "pids", "cpu", "cpuacct"};
    for (int c = 0; c < LSS_SANDBOX_CG_COUNT; c++) {
        json_t *one = json_object_get (report, names[c]);
        assert_non_null (one);
        assert_true (json_is_integer (json_object_get (one, "version")));
        assert_true (json_is_boolean (json_object_get (one, "usable")));
        assert_true (json_is_string (json_object_get (one, "parent")));
        assert_true (json_is_string (json_object_get (one, "reason")));
        /* unusable means a reason is given */
        if (!host.ctrl[c].usable)
            assert_true (host.ctrl[c].reason[0] != '\0');
        print_message ("cgroup %s: v%d %s %s %s\n", names[c], host.ctrl[c].version,
                       host.ctrl[c].usable ? "usable" : "UNUSABLE", host.ctrl[c].parent,
                       host.ctrl[c].reason);
    }
    json_decref (report);
    lss_sandbox_cgroup_host_cleanup (&host);
}

static int64_t s_knob (const lss_sandbox_cg_host_t *host, lss_sandbox_cg_ctrl_t c,
                       const char *id, const char *knob)
{
    char path[1024];
    int64_t v = -2;
    snprintf (path, sizeof path, "%s/%s/%s", host->ctrl[c].parent, id, knob);
    if (lss_sandbox_fs_read_int64 (path, &v))
        return -2;
    return v;
}

static void test_limits_membership_kill (void **state)
{
    (void)state;
    lss_sandbox_cg_host_t host;
    lss_sandbox_cgroup_detect (&host, NULL);
    bool mem = host.ctrl[LSS_SANDBOX_CG_MEMORY].usable;
    bool pids = host.ctrl[LSS_SANDBOX_CG_PIDS].usable;
    bool cpu = host.ctrl[LSS_SANDBOX_CG_CPU].usable;
    if (!mem && !pids && !cpu) {
        print_message ("no usable cgroup controller here: nothing to enforce\n");
        skip ();
    }
    char id[64];
    snprintf (id, sizeof id, "cgtest-%d", (int)getpid ());
    lss_sandbox_cg_limits_t limits = {64LL << 20, 10, 250};
    char err[256] = "";
    lss_sandbox_cgroup_t *cg = lss_sandbox_cgroup_new (&host, id, &limits, err, sizeof err);
    if (!cg)
        print_error ("%s\n", err);
    assert_non_null (cg);
    assert_int_equal (lss_sandbox_cgroup_enforces (cg, LSS_SANDBOX_CG_MEMORY), mem);
    assert_int_equal (lss_sandbox_cgroup_enforces (cg, LSS_SANDBOX_CG_PIDS), pids);
    assert_int_equal (lss_sandbox_cgroup_enforces (cg, LSS_SANDBOX_CG_CPU), cpu);
    if (mem)
        assert_int_equal (s_knob (&host, LSS_SANDBOX_CG_MEMORY, id,
                                  host.ctrl[LSS_SANDBOX_CG_MEMORY].version == 2
                                      ? "memory.max"
                                      : "memory.limit_in_bytes"),
                          64LL << 20);
    if (pids)
        assert_int_equal (s_knob (&host, LSS_SANDBOX_CG_PIDS, id, "pids.max"), 10);
    if (cpu && host.ctrl[LSS_SANDBOX_CG_CPU].version == 1)
        assert_int_equal (s_knob (&host, LSS_SANDBOX_CG_CPU, id, "cpu.cfs_quota_us"), 25000);
    /* a process joins as the runtime's launcher does: "0" into each join file (tasks on
     * v1, moving the single thread that writes), and all of it is in the cgroup */
    const char *files[LSS_SANDBOX_CG_COUNT];
    size_t nfiles = lss_sandbox_cgroup_join_files (cg, files, LSS_SANDBOX_CG_COUNT);
    assert_true (nfiles >= 1);
    bool any_v2 = false;
    for (int c = 0; c < LSS_SANDBOX_CG_COUNT; c++)
        any_v2 = any_v2 || (host.ctrl[c].usable && host.ctrl[c].version == 2);
    for (size_t i = 0; i < nfiles; i++) {
        size_t len = strlen (files[i]);
        bool tasks = len > 6 && strcmp (files[i] + len - 6, "/tasks") == 0;
        if (!any_v2)
            assert_true (tasks);
        else
            assert_true (tasks || strstr (files[i], "/cgroup.procs"));
    }
    pid_t joiner = s_spawn_joined (cg, files, nfiles);
    assert_int_equal (lss_sandbox_cgroup_nprocs (cg), 1);
    kill (joiner, SIGKILL);
    waitpid (joiner, NULL, 0);

    /* an adopting runtime sees the same limits */
    lss_sandbox_cgroup_t *opened = lss_sandbox_cgroup_open (&host, id);
    assert_non_null (opened);
    assert_int_equal (lss_sandbox_cgroup_enforces (opened, LSS_SANDBOX_CG_MEMORY), mem);
    assert_int_equal (lss_sandbox_cgroup_enforces (opened, LSS_SANDBOX_CG_PIDS), pids);
    lss_sandbox_cgroup_destroy (&opened);

    /* a process joins, is counted, and is killed with the cgroup */
    pid_t child = s_spawn_joined (cg, NULL, 0);
    assert_int_equal (lss_sandbox_cgroup_nprocs (cg), 1);
    lss_sandbox_cg_usage_t usage;
    assert_int_equal (lss_sandbox_cgroup_usage (cg, &usage), 0);
    if (pids)
        assert_int_equal (usage.pids, 1);
    if (mem)
        assert_true (usage.memory_bytes >= 0);
    assert_int_equal (usage.oom_kills, 0);
    assert_int_equal (lss_sandbox_cgroup_kill (cg, 5000), 0);
    int status = 0;
    assert_int_equal (waitpid (child, &status, 0), child);
    assert_true (WIFSIGNALED (status) && WTERMSIG (status) == SIGKILL);
    assert_true (lss_sandbox_cgroup_nprocs (cg) <= 0);
    assert_int_equal (lss_sandbox_cgroup_remove (cg, 5000), 0);
    char path[1024];
    struct stat st;
    for (int i = 0; i < LSS_SANDBOX_CG_COUNT; i++) {
        if (!host.ctrl[i].usable)
            continue;
        snprintf (path, sizeof path, "%s/%s", host.ctrl[i].parent, id);
        assert_int_equal (stat (path, &st), -1);
    }
    lss_sandbox_cgroup_destroy (&cg);
    assert_null (cg);
    lss_sandbox_cgroup_host_cleanup (&host);
}

static void test_preflight_report (void **state)
{
    (void)state;
    lss_sandbox_preflight_t *pf = lss_sandbox_preflight_new (NULL);
    assert_non_null (pf);
    json_t *report = lss_sandbox_preflight_report (pf);
    assert_non_null (report);
    const char *keys[] = {"bwrap",           "root",        "probeUid", "userns",
                          "seccomp",         "cgroup",      "rlimits",  "levels",
                          "seccompStandard", "seccompHigh", "summary",  "tookMs"};
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        if (!json_object_get (report, keys[i]))
            print_error ("missing key %s\n", keys[i]);
        assert_non_null (json_object_get (report, keys[i]));
    }
    json_t *levels = json_object_get (report, "levels");
    json_t *high = json_object_get (levels, "high");
    json_t *standard = json_object_get (levels, "standard");
    assert_true (json_is_boolean (json_object_get (high, "allowed")));
    assert_true (json_is_boolean (json_object_get (standard, "allowed")));
    bool high_ok =
        lss_sandbox_preflight_check_level (pf, LSS_SANDBOX_LEVEL_HIGH, NULL, 0, NULL, 0) == 0;
    assert_int_equal (json_is_true (json_object_get (high, "allowed")), high_ok);
    /* high needs what standard needs and more */
    if (high_ok)
        assert_true (json_is_true (json_object_get (standard, "allowed")));
    if (high_ok) {
        assert_true (pf->userns && pf->seccomp && pf->bwrap_works);
        assert_true (pf->cgroup.ctrl[LSS_SANDBOX_CG_MEMORY].usable);
        assert_true (pf->cgroup.ctrl[LSS_SANDBOX_CG_PIDS].usable);
    }
    char summary[1024];
    lss_sandbox_preflight_summary (pf, summary, sizeof summary);
    print_message ("preflight: %s (%lld ms)\n", summary, (long long)pf->took_ms);
    assert_non_null (strstr (summary, "userns"));
    assert_non_null (strstr (summary, "seccomp"));
    assert_non_null (strstr (summary, "high="));
    lss_sandbox_preflight_log (pf);
    json_decref (report);
    lss_sandbox_cgroup_host_cleanup (&pf->cgroup);
    lss_sandbox_preflight_destroy (&pf);
    assert_null (pf);
}

static void test_preflight_without_bwrap (void **state)
{
    (void)state;
    lss_sandbox_preflight_opts_t opts = {"/nonexistent/bwrap", NULL, 0};
    lss_sandbox_preflight_t *pf = lss_sandbox_preflight_new (&opts);
    assert_non_null (pf);
    assert_false (pf->bwrap_found);
    assert_false (pf->bwrap_works);
    char err[512], warn[512];
    assert_int_equal (lss_sandbox_preflight_check_level (pf, LSS_SANDBOX_LEVEL_STANDARD, err,
                                                         sizeof err, warn, sizeof warn),
                      -1);
    assert_non_null (strstr (err, "bwrap"));
    lss_sandbox_cgroup_host_cleanup (&pf->cgroup);
    lss_sandbox_preflight_destroy (&pf);
}

int main (void)
{
    if (RUNNING_ON_VALGRIND) {
        printf ("skipped under valgrind: pidfds, seccomp and namespaces are not emulated\n");
        return 0;
    }
    lss_log_init ("test", LSS_LOG_ERROR);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_detect_reports_every_controller),
        cmocka_unit_test (test_limits_membership_kill),
        cmocka_unit_test (test_preflight_report),
        cmocka_unit_test (test_preflight_without_bwrap),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
