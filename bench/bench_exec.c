/*  bench_exec — round trip of a trivial execution (/bin/true): requester → lss-executor →
 *  lss-agent and back, against the same execution sent straight to the agent. Starts a
 *  throw-away PostgreSQL, an agent and an executor; prints JSON (p50/p99 in ms). */
#include <czmq.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>

#include "../tests/unit/lss_testproc.h"
#include "../tests/unit/lss_testpg.h"
#include "lss_exec_client.h"
#include "lss_store.h"

#define N 500

static int s_cmp (const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double s_pct (double *v, int n, double p)
{
    qsort (v, (size_t)n, sizeof *v, s_cmp);
    return v[(int)(p * (n - 1))];
}

int main (void)
{
    static double via[N], direct[N];
    char tmp[] = "/tmp/lss-bexec-XXXXXX", path[PATH_MAX], ep[256], xep[256], root[300],
         err[256];
    int rc = 1;
    tp_proc_t agent = {0}, exec = {0};
    lss_store_t *store = NULL;
    if (!mkdtemp (tmp) || s_group_setup (NULL))
        return 1;
    snprintf (ep, sizeof ep, "ipc://%s/agent.sock", tmp);
    snprintf (xep, sizeof xep, "ipc://%s/exec.sock", tmp);
    snprintf (root, sizeof root, "/workspace=%s", tmp);
    char *aargv[] = {(char *)tp_build_path (path, sizeof path, "bin/lss-agent"),
                     "--endpoint",
                     ep,
                     "--root",
                     root,
                     NULL};
    char line[512];
    if (tp_spawn (&agent, aargv, NULL, true) || tp_read_line (&agent, line, sizeof line, 10000))
        goto cleanup;
    store = lss_store_pg_new (s_dsn, err, sizeof err);
    json_t *o = json_pack ("{s:s, s:s, s:{s:s, s:s}, s:{}}", "apiVersion",
                           "llmsafespace.dev/v1", "kind", "Sandbox", "metadata", "name", "b",
                           "namespace", "default", "spec"),
           *out = NULL;
    if (!store || lss_store_create (store, o, &out, err, sizeof err))
        goto cleanup;
    json_object_set_new (out, "status",
                         json_pack ("{s:s, s:s}", "phase", "Running", "endpoint", ep));
    lss_store_update_status (store, out, NULL, err, sizeof err);
    json_decref (o);
    json_decref (out);
    setenv ("LSS_EXECUTOR_ROUTER_ENDPOINT", xep, 1);
    snprintf (line, sizeof line, "ipc://%s/pub.sock", tmp);
    setenv ("LSS_EXECUTOR_PUB_ENDPOINT", line, 1);
    setenv ("LSS_EXECUTOR_ADMIN_LISTEN", "127.0.0.1:0", 1);
    setenv ("LSS_STORE_DSN", s_dsn, 1);
    setenv ("LSS_LOG_LEVEL", "warn", 1);
    char *xargv[] = {(char *)tp_build_path (path, sizeof path, "bin/lss-executor"), NULL};
    if (tp_spawn (&exec, xargv, NULL, false))
        goto cleanup;
    lss_exec_client_t *c = lss_exec_client_new (xep, NULL);
    int64_t until = lss_time_mono_ms () + 15000;
    while (lss_exec_client_ping (c, 200) && lss_time_mono_ms () < until)
        ;
    char *argv[] = {"/bin/true"};
    lss_exec_start_t req = {.sandbox = "default/b", .argv = {argv, 1}};
    for (int i = -20; i < N; i++) { /* 20 warm-up runs */
        lss_exec_result_t res;
        int64_t t0 = lss_time_mono_ns ();
        int r = lss_exec_client_run (c, &req, NULL, &res);
        double ms = (double)(lss_time_mono_ns () - t0) / 1e6;
        lss_exec_result_clear (&res);
        if (r)
            goto cleanup;
        if (i >= 0)
            via[i] = ms;
    }
    lss_exec_client_destroy (&c);
    char dep[300];
    snprintf (dep, sizeof dep, ">%s", ep);
    zsock_t *d = lss_bus_socket_new (ZMQ_DEALER, dep, NULL);
    for (int i = -20; i < N && d; i++) {
        char id[32];
        snprintf (id, sizeof id, "d%d", i + 100);
        lss_exec_start_t dr = {.exec_id = id, .argv = {argv, 1}};
        lss_envelope_t env;
        lss_bus_envelope_init (&env, LSS_MSG_exec_start, NULL, "bench", 1, NULL);
        int64_t t0 = lss_time_mono_ns ();
        lss_bus_send (d, NULL, 0, NULL, &env, LSS_MSG_exec_start, &dr);
        for (bool done = false; !done;) {
            lss_msg_kind_t k;
            void *b;
            if (lss_bus_recv (d, NULL, NULL, 0, &env, &k, &b, err, sizeof err))
                goto cleanup;
            done = k == LSS_MSG_exec_end || k == LSS_MSG_error;
            lss_proto_body_free (k, &b);
        }
        if (i >= 0)
            direct[i] = (double)(lss_time_mono_ns () - t0) / 1e6;
    }
    zsock_destroy (&d);
    double vp50 = s_pct (via, N, 0.5), vp99 = s_pct (via, N, 0.99);
    double dp50 = s_pct (direct, N, 0.5), dp99 = s_pct (direct, N, 0.99);
    fprintf (stderr,
             "/bin/true round trip: via executor p50 %.2f ms p99 %.2f ms; direct p50 %.2f ms "
             "p99 %.2f ms\n",
             vp50, vp99, dp50, dp99);
    json_t *res = json_pack ("{s:i, s:{s:f, s:f}, s:{s:f, s:f}, s:f, s:s, s:b}", "runs", N,
                             "via_executor_ms", "p50", vp50, "p99", vp99, "direct_to_agent_ms",
                             "p50", dp50, "p99", dp99, "overhead_p50_ms", vp50 - dp50, "target",
                             "executor adds < 2 ms at p50", "target_met", vp50 - dp50 < 2.0);
    char *text = json_dumps (res, JSON_COMPACT);
    puts (text);
    free (text);
    json_decref (res);
    rc = 0;
cleanup:
    if (exec.pid > 0) {
        kill (exec.pid, SIGTERM);
        tp_wait (&exec, 10000);
    }
    if (agent.pid > 0) {
        kill (agent.pid, SIGTERM);
        tp_wait (&agent, 5000);
    }
    lss_store_destroy (&store);
    s_group_teardown (NULL);
    pid_t pid = fork ();
    if (pid == 0) {
        execl ("/bin/rm", "rm", "-rf", tmp, (char *)NULL);
        _exit (127);
    }
    waitpid (pid, NULL, 0);
    return rc;
}
