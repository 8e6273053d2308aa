/*  bench_sandbox — the sandbox layer against its bare baselines, in one run:
 *    start:   runtime start → agent answers a ping   vs  bwrap --ro-bind / / /bin/true
 *    exec:    /bin/true through the agent (send → exec.end)  vs  posix_spawn + waitpid
 *    python:  python3 -c pass through the agent  vs  bare
 *    stream:  256 MiB of stdout through the agent (MB/s)  vs  a raw pipe
 *    memory:  RSS/PSS of one idle sandbox (agent + bwrap monitor), PSS of 200 idle ones
 *  Prints one JSON object. Needs root and bubblewrap; otherwise reports why it skipped.
 *  Targets (issue 3): start ≤ 1.5x bare bwrap; exec ≤ 1.5x bare; stream ≥ 50% of the
 *  pipe; 200 idle sandboxes < 300 MiB PSS in total.
 */
#include <czmq.h>
#include <dirent.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "lss_bus.h"
#include "lss_log.h"
#include "lss_util.h"
#include "sandbox_agent.h"
#include "sandbox_runtime.h"

extern char **environ;

static int s_cmp (const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static json_t *s_stats (double *v, int n)
{
    qsort (v, (size_t)n, sizeof *v, s_cmp);
    return json_pack ("{s:f, s:f, s:i}", "p50_ms", v[n / 2], "p99_ms", v[(n * 99) / 100], "n",
                      n);
}

static double s_p50 (json_t *st)
{
    return json_real_value (json_object_get (st, "p50_ms"));
}

static double s_spawn_wait (char *const argv[])
{
    int64_t t0 = lss_time_mono_ns ();
    pid_t pid;
    if (posix_spawn (&pid, argv[0], NULL, NULL, argv, environ))
        return -1;
    int st;
    waitpid (pid, &st, 0);
    return (double)(lss_time_mono_ns () - t0) / 1e6;
}

/* One execution through the agent; returns ms from send to exec.end, stdout bytes. */
static double s_agent_exec (zsock_t *sock, const char *const *argv, size_t argc, int64_t *bytes)
{
    static int n;
    char id[32];
    snprintf (id, sizeof id, "b%d", ++n);
    lss_exec_start_t req = {
        .exec_id = id, .argv = {(char **)argv, argc}, .max_output = 1ll << 30};
    lss_envelope_t env;
    int64_t t0 = lss_time_mono_ns ();
    lss_bus_envelope_init (&env, LSS_MSG_exec_start, NULL, "bench", 1, NULL);
    if (lss_bus_send (sock, NULL, 0, NULL, &env, LSS_MSG_exec_start, &req))
        return -1;
    *bytes = 0;
    for (;;) {
        lss_msg_kind_t kind;
        void *body;
        if (lss_bus_recv (sock, NULL, NULL, 0, &env, &kind, &body, NULL, 0) != 0)
            return -1;
        bool end = kind == LSS_MSG_exec_end;
        if (kind == LSS_MSG_exec_output)
            *bytes += (int64_t)((lss_exec_output_t *)body)->data.len;
        lss_proto_body_free (kind, &body);
        if (end)
            break;
    }
    return (double)(lss_time_mono_ns () - t0) / 1e6;
}

static long s_smaps (pid_t pid, const char *field)
{
    char path[64], line[256];
    snprintf (path, sizeof path, "/proc/%d/smaps_rollup", (int)pid);
    FILE *f = fopen (path, "r");
    long kb = -1;
    size_t flen = strlen (field);
    while (f && fgets (line, sizeof line, f))
        if (strncmp (line, field, flen) == 0 && line[flen] == ':')
            kb = strtol (line + flen + 1, NULL, 10);
    if (f)
        fclose (f);
    return kb;
}

static double s_last_start_ms; /* time inside lss_sandbox_runtime_start of the last s_start */

static zsock_t *s_start (lss_sandbox_runtime_t *rt, const char *state, const char *agent,
                         const char *id, lss_sandbox_status_t *st)
{
    char err[512], endpoint[256];
    lss_sandbox_spec_t *spec = lss_sandbox_agent_spec (id, agent, NULL, err, sizeof err);
    if (!spec)
        return NULL;
    spec->memory_bytes = 128ll << 20;
    spec->pids_max = 64;
    int64_t t0 = lss_time_mono_ns ();
    int rc = lss_sandbox_runtime_start (rt, spec, st, err, sizeof err);
    s_last_start_ms = (double)(lss_time_mono_ns () - t0) / 1e6;
    lss_sandbox_spec_destroy (&spec);
    if (rc) {
        fprintf (stderr, "start %s: %s\n", id, err);
        return NULL;
    }
    lss_sandbox_agent_endpoint (state, id, endpoint, sizeof endpoint);
    return lss_sandbox_agent_connect (endpoint, 10000);
}

int main (void)
{
    lss_log_init ("bench_sandbox", LSS_LOG_WARN);
    zsys_init ();
    json_t *res = json_object ();
    char agent[PATH_MAX];
    if (getuid () != 0 || access ("/usr/bin/bwrap", X_OK) ||
        lss_sandbox_agent_find (agent, sizeof agent)) {
        const char *dir = getenv ("LSS_BUILD_DIR");
        snprintf (agent, sizeof agent, "%s/bin/lss-agent", dir ? dir : "build");
        if (getuid () != 0 || access (agent, X_OK)) {
            puts ("{\"skipped\":\"needs root, bubblewrap and build/bin/lss-agent\"}");
            return 0;
        }
    }
    char real[PATH_MAX];
    if (!realpath (agent, real))
        return 1;
    char state[] = "/tmp/lss-bench-XXXXXX";
    if (!mkdtemp (state))
        return 1;
    lss_sandbox_runtime_t *rt = lss_sandbox_runtime_new (state, NULL, NULL);
    if (!rt)
        return 1;
    enum { N_START = 30, N_EXEC = 300, N_PY = 20 };
    double v[N_EXEC];

    /* start */
    char *bwrap[] = {
        "/usr/bin/bwrap", "--unshare-all", "--ro-bind", "/", "/", "/bin/true", NULL};
    for (int i = 0; i < N_START; i++)
        v[i] = s_spawn_wait (bwrap);
    json_t *bare_bwrap = s_stats (v, N_START);
    double in_start[N_START];
    for (int i = 0; i < N_START; i++) {
        char id[32];
        snprintf (id, sizeof id, "bench-start-%d", i);
        lss_sandbox_status_t st;
        int64_t t0 = lss_time_mono_ns ();
        zsock_t *sock = s_start (rt, state, real, id, &st);
        v[i] = (double)(lss_time_mono_ns () - t0) / 1e6;
        in_start[i] = s_last_start_ms;
        zsock_destroy (&sock);
        lss_sandbox_runtime_stop (rt, id, 0, NULL);
    }
    json_t *start = s_stats (v, N_START);
    json_object_set_new (res, "start",
                         json_pack ("{s:o, s:o, s:o, s:f}", "sandbox_to_agent_ready", start,
                                    "runtime_start_call", s_stats (in_start, N_START),
                                    "bare_bwrap_true", bare_bwrap, "ratio",
                                    s_p50 (start) / s_p50 (bare_bwrap)));

    /* exec and python, in one sandbox */
    lss_sandbox_status_t st;
    zsock_t *sock = s_start (rt, state, real, "bench-exec", &st);
    if (!sock)
        return 1;
    int64_t bytes;
    const char *truth[] = {"/bin/true"};
    char *bare_true[] = {"/bin/true", NULL};
    for (int i = 0; i < 20; i++) /* warm up */
        s_agent_exec (sock, truth, 1, &bytes);
    for (int i = 0; i < N_EXEC; i++)
        v[i] = s_spawn_wait (bare_true);
    json_t *bare = s_stats (v, N_EXEC);
    for (int i = 0; i < N_EXEC; i++)
        v[i] = s_agent_exec (sock, truth, 1, &bytes);
    json_t *through = s_stats (v, N_EXEC);
    json_object_set_new (res, "exec_true",
                         json_pack ("{s:o, s:o, s:f}", "agent", through, "bare_spawn_wait",
                                    bare, "ratio", s_p50 (through) / s_p50 (bare)));
    const char *py[] = {"/usr/bin/python3", "-c", "pass"};
    char *bare_py[] = {"/usr/bin/python3", "-c", "pass", NULL};
    if (access (py[0], X_OK) == 0) {
        for (int i = 0; i < N_PY; i++)
            v[i] = s_spawn_wait (bare_py);
        json_t *bp = s_stats (v, N_PY);
        for (int i = 0; i < N_PY; i++)
            v[i] = s_agent_exec (sock, py, 3, &bytes);
        json_t *ap = s_stats (v, N_PY);
        json_object_set_new (res, "exec_python_pass",
                             json_pack ("{s:o, s:o, s:f}", "agent", ap, "bare", bp, "ratio",
                                        s_p50 (ap) / s_p50 (bp)));
    }

    /* streaming: 256 MiB of zeros */
    const char *flood[] = {"/usr/bin/head", "-c", "268435456", "/dev/zero"};
    double ms = s_agent_exec (sock, flood, 4, &bytes);
    double agent_mbs = (double)bytes / 1e6 / (ms / 1e3);
    int fds[2];
    pipe (fds);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init (&fa);
    posix_spawn_file_actions_adddup2 (&fa, fds[1], 1);
    posix_spawn_file_actions_addclose (&fa, fds[0]);
    pid_t pid;
    int64_t t0 = lss_time_mono_ns ();
    posix_spawn (&pid, flood[0], &fa, NULL,
                 (char **)(const char *[]){flood[0], flood[1], flood[2], flood[3], NULL},
                 environ);
    close (fds[1]);
    static char buf[1 << 16];
    int64_t raw = 0;
    ssize_t r;
    while ((r = read (fds[0], buf, sizeof buf)) > 0)
        raw += r;
    waitpid (pid, NULL, 0);
    close (fds[0]);
    posix_spawn_file_actions_destroy (&fa);
    double pipe_mbs = (double)raw / 1e6 / ((double)(lss_time_mono_ns () - t0) / 1e9);
    json_object_set_new (res, "stream",
                         json_pack ("{s:f, s:f, s:f, s:I}", "agent_mb_per_s", agent_mbs,
                                    "raw_pipe_mb_per_s", pipe_mbs, "ratio",
                                    agent_mbs / pipe_mbs, "bytes", (json_int_t)bytes));
    zsock_destroy (&sock);

    /* memory: one idle sandbox, then 200 */
    lss_sandbox_runtime_get (rt, "bench-exec", &st);
    long agent_rss = s_smaps (st.pid, "Rss"), agent_pss = s_smaps (st.pid, "Pss");
    long mon_rss = s_smaps (st.monitor_pid, "Rss"), mon_pss = s_smaps (st.monitor_pid, "Pss");
    lss_sandbox_runtime_stop (rt, "bench-exec", 0, NULL);
    enum { N_IDLE = 200 };
    int started = 0;
    for (int i = 0; i < N_IDLE; i++) {
        char id[32];
        snprintf (id, sizeof id, "bench-idle-%d", i);
        zsock_t *s = s_start (rt, state, real, id, &st);
        if (!s)
            break;
        zsock_destroy (&s);
        started++;
    }
    long total_pss = 0, one_pss = 0;
    for (int i = 0; i < started; i++) {
        char id[32];
        snprintf (id, sizeof id, "bench-idle-%d", i);
        if (lss_sandbox_runtime_get (rt, id, &st) == 0) {
            long p = s_smaps (st.pid, "Pss") + s_smaps (st.monitor_pid, "Pss");
            total_pss += p;
            if (i == started - 1)
                one_pss = p;
        }
    }
    json_object_set_new (
        res, "memory",
        json_pack ("{s:{s:i, s:i}, s:{s:i, s:i}, s:i, s:i, s:f, s:i}", "one_sandbox_alone_kb",
                   "agent_rss", (int)agent_rss, "agent_pss", (int)agent_pss, "bwrap_monitor_kb",
                   "rss", (int)mon_rss, "pss", (int)mon_pss, "idle_sandboxes", started,
                   "total_pss_kb", (int)total_pss, "total_pss_mib", (double)total_pss / 1024.0,
                   "per_sandbox_pss_kb_at_200", (int)one_pss));
    for (int i = 0; i < started; i++) {
        char id[32];
        snprintf (id, sizeof id, "bench-idle-%d", i);
        lss_sandbox_runtime_stop (rt, id, 0, NULL);
    }
    lss_sandbox_runtime_destroy (&rt);
    rmdir (state);

    json_object_set_new (
        res, "targets",
        json_pack (
            "{s:b, s:b, s:b, s:b}", "start_within_1.5x_bwrap",
            json_real_value (json_object_get (json_object_get (res, "start"), "ratio")) <= 1.5,
            "exec_within_1.5x_bare",
            json_real_value (json_object_get (json_object_get (res, "exec_true"), "ratio")) <=
                1.5,
            "stream_at_least_half_pipe", agent_mbs >= 0.5 * pipe_mbs, "idle_200_under_300MiB",
            started == N_IDLE && total_pss < 300 * 1024));
    char *text = json_dumps (res, JSON_COMPACT);
    puts (text);
    free (text);
    json_decref (res);
    return 0;
}
