/*  bench_controlplane — the local control plane (lss-watcher, lss-reconciler, lss-node,
 *  lss-warmpool, lss-executor as real processes on a throw-away PostgreSQL, started with
 *  tests/unit/lss_teststack.h), driven through the object store and the bus as lss-api
 *  drives them:
 *    cold:      Sandbox object created → status.phase Running (no warm pod), p50/p99
 *    warm:      warm.allocate round trip on lss-warmpool's ROUTER, then Sandbox created
 *               with the claimed pod → Running, p50/p99
 *    reconcile: 200 Sandboxes created at once → all Running, sandboxes/s
 *    exec:      /bin/true through lss-executor into a real sandbox's agent (bench_exec
 *               compares the executor against straight-to-agent on a bare agent)
 *  Times come from a store watch on the Sandboxes (no polling). Prints one JSON object.
 *  Needs root and working sandboxes; otherwise prints {"skipped": reason}.
 *  Targets (issue 4): warm → Running p50 < 5 ms, cold < 20 ms; >= 100 sandboxes/s.
 */
#include <czmq.h>
#include <dirent.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lss_bus.h"
#include "lss_exec_client.h"
#include "lss_obj.h"
#include "lss_store.h"
#include "lss_util.h"

#include "../tests/unit/lss_testproc.h"
#include "../tests/unit/lss_testpg.h"
#include "../tests/unit/lss_teststack.h"

#define NS        "bench"
#define N_COLD    30
#define N_WARM    30
#define N_BULK    200
#define N_EXEC    300
#define POOL_MIN  4
#define WAIT_MS   60000
#define NAME_SIZE 64

static ts_stack_t s_stack;
static lss_store_t *s_store;
static lss_store_watch_t *s_watch, *s_pod_watch;

static double s_now_ms (void)
{
    return (double)lss_time_mono_ns () / 1e6;
}

/*  Where one sandbox's start spends its time: the first time each step was seen (ms on
 *  the s_now_ms clock, 0 = not yet). The Pod is the sandbox's (cold: same name) or the
 *  claimed warm pod. */
static struct {
    char pod[256];
    double pod_event;   /* first Pod event after arming: created (cold) or re-labelled */
    double pod_running; /* first Pod event with status.phase Running */
} s_probe;

static void s_probe_arm (const char *pod)
{
    memset (&s_probe, 0, sizeof s_probe);
    snprintf (s_probe.pod, sizeof s_probe.pod, "%s", pod ? pod : "");
}

/*  Takes every pending Pod event into s_probe. */
static void s_pod_events (void)
{
    lss_store_event_t ev;
    while (s_pod_watch && lss_store_watch_next (s_pod_watch, &ev) == 1) {
        double t = s_now_ms ();
        const char *name = lss_obj_str (ev.object, "metadata.name");
        const char *phase = lss_obj_str (ev.object, "status.phase");
        if (s_probe.pod[0] && name && strcmp (name, s_probe.pod) == 0) {
            if (!s_probe.pod_event)
                s_probe.pod_event = t;
            if (!s_probe.pod_running && phase && strcmp (phase, "Running") == 0)
                s_probe.pod_running = t;
        }
        json_decref (ev.object);
    }
}

/*  Waits (bounded) until the probed Pod has had an event; 0 when it has. */
static int s_wait_pod_event (int timeout_ms)
{
    long long deadline = tp_now_ms () + timeout_ms;
    s_pod_events ();
    while (!s_probe.pod_event && s_pod_watch && tp_now_ms () < deadline) {
        struct pollfd p = {.fd = lss_store_watch_fd (s_pod_watch), .events = POLLIN};
        poll (&p, 1, 50);
        s_pod_events ();
    }
    return s_probe.pod_event ? 0 : -1;
}

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

static int s_apply (const char *json_text)
{
    json_error_t je;
    json_t *o = json_loads (json_text, 0, &je);
    char err[LSS_STORE_ERR_SIZE] = "";
    int rc = o ? lss_store_create (s_store, o, NULL, err, sizeof err) : -1;
    json_decref (o);
    if (rc)
        fprintf (stderr, "create: %d %s\n", rc, err);
    return rc;
}

static double s_create_call_ms; /* how long the last s_sandbox's store create took */

static int s_sandbox (const char *name, const char *warm_pod)
{
    json_t *ann = json_object ();
    if (warm_pod)
        json_object_set_new (ann, "llmsafespace.dev/warm-pod", json_string (warm_pod));
    /* as the api writes it: with the reconciler's finalizer already set */
    json_t *o =
        json_pack ("{s:s, s:s, s:{s:s, s:s, s:o, s:[s]}, s:{s:s, s:i, s:b, s:{s:s}}}",
                   "apiVersion", "llmsafespace.dev/v1", "kind", "Sandbox", "metadata", "name",
                   name, "namespace", NS, "annotations", ann, "finalizers",
                   LSS_FINALIZER_SANDBOX, "spec", "runtime", "python:3.11", "timeout", 600,
                   "useWarmPool", warm_pod != NULL, "resources", "memory", "128Mi");
    char err[LSS_STORE_ERR_SIZE] = "";
    double t0 = s_now_ms ();
    int rc = o ? lss_store_create (s_store, o, NULL, err, sizeof err) : -1;
    s_create_call_ms = s_now_ms () - t0;
    json_decref (o);
    if (rc)
        fprintf (stderr, "create %s: %d %s\n", name, rc, err);
    return rc;
}

/*  Waits for watch events until done(names) says so. For each Sandbox event whose
 *  status.phase is Running and whose name is in names[0..n) with at[i] == 0, sets at[i]
 *  to now (ms); for DELETED events it sets gone[i] (gone may be NULL). Returns 0 when
 *  every at[i] (want_gone: every gone[i]) is set, -1 on timeout or a broken watch. */
static int s_wait_events (char (*names)[NAME_SIZE], int n, double *at, bool *gone,
                          bool want_gone, int timeout_ms)
{
    long long deadline = tp_now_ms () + timeout_ms;
    int left = 0;
    for (int i = 0; i < n; i++)
        left += want_gone ? (gone && !gone[i]) : (at && at[i] == 0);
    while (left > 0 && tp_now_ms () < deadline) {
        lss_store_event_t ev;
        int r = lss_store_watch_next (s_watch, &ev);
        if (r < 0) {
            fprintf (stderr, "watch: %d\n", r);
            return -1;
        }
        if (r == 0) {
            struct pollfd p[2] = {{.fd = lss_store_watch_fd (s_watch), .events = POLLIN},
                                  {.fd = lss_store_watch_fd (s_pod_watch), .events = POLLIN}};
            poll (p, 2, 200);
            s_pod_events ();
            continue;
        }
        s_pod_events ();
        double t = s_now_ms ();
        const char *name = lss_obj_str (ev.object, "metadata.name");
        const char *phase = lss_obj_str (ev.object, "status.phase");
        for (int i = 0; name && i < n; i++) {
            if (strcmp (names[i], name) != 0)
                continue;
            if (ev.type == LSS_STORE_DELETED && gone && !gone[i]) {
                gone[i] = true;
                left -= want_gone;
            } else if (ev.type != LSS_STORE_DELETED && at && at[i] == 0 && phase &&
                       strcmp (phase, "Running") == 0) {
                at[i] = t;
                left -= !want_gone;
            }
            break;
        }
        json_decref (ev.object);
    }
    return left == 0 ? 0 : -1;
}

static int s_delete_all (char (*names)[NAME_SIZE], int n)
{
    bool *gone = calloc ((size_t)n, sizeof *gone);
    char err[LSS_STORE_ERR_SIZE];
    for (int i = 0; i < n; i++) {
        int rc = lss_store_delete (s_store, "Sandbox", NS, names[i], NULL, err, sizeof err);
        if (rc == LSS_STORE_NOT_FOUND)
            gone[i] = true;
    }
    int rc = s_wait_events (names, n, NULL, gone, true, WAIT_MS);
    free (gone);
    return rc;
}

static int64_t s_pool_int (const char *path)
{
    json_t *o = NULL;
    char err[LSS_STORE_ERR_SIZE];
    if (lss_store_get (s_store, "WarmPool", NS, "py", &o, err, sizeof err))
        return -1;
    int64_t v = lss_obj_int (o, path, -1);
    json_decref (o);
    return v;
}

static int s_wait_pool (int64_t available, int timeout_ms)
{
    long long deadline = tp_now_ms () + timeout_ms;
    while (tp_now_ms () < deadline) {
        if (s_pool_int ("status.availablePods") >= available)
            return 0;
        usleep (5 * 1000);
    }
    fprintf (stderr, "warm pool did not reach %lld available pods\n", (long long)available);
    return -1;
}

/*  Cold starts, one at a time: create → Running, then delete and wait until gone. */
static json_t *s_bench_cold (void)
{
    static double ms[N_COLD], pod_created[N_COLD], pod_running[N_COLD], call[N_COLD];
    for (int i = -3; i < N_COLD; i++) { /* 3 warm-up runs */
        char names[1][NAME_SIZE];
        double at[1] = {0};
        snprintf (names[0], NAME_SIZE, "cold-%d", i + 3);
        s_probe_arm (names[0]);
        double t0 = s_now_ms ();
        if (s_sandbox (names[0], NULL) || s_wait_events (names, 1, at, NULL, false, WAIT_MS))
            return NULL;
        if (i >= 0) {
            ms[i] = at[0] - t0;
            call[i] = s_create_call_ms;
            pod_created[i] = s_probe.pod_event ? s_probe.pod_event - t0 : -1;
            pod_running[i] = s_probe.pod_running ? s_probe.pod_running - t0 : -1;
        }
        if (s_delete_all (names, 1))
            return NULL;
    }
    json_t *r = s_stats (ms, N_COLD);
    json_object_set_new (r, "breakdown_from_create",
                         json_pack ("{s:o, s:o, s:o, s:s}", "create_call",
                                    s_stats (call, N_COLD), "pod_created",
                                    s_stats (pod_created, N_COLD), "pod_running",
                                    s_stats (pod_running, N_COLD), "note",
                                    "ms from the start of the create call: the call itself "
                                    "(PostgreSQL), the first Pod event (the "
                                    "reconciler made it) and to Pod Running (lss-node "
                                    "started it); the rest up to p50_ms is the reconciler "
                                    "setting the Sandbox Running"));
    return r;
}

/*  Warm starts: allocate a pod (ROUTER round trip), create the Sandbox with it →
 *  Running; delete, and let the pool refill before the next one. */
static json_t *s_bench_warm (json_t **alloc_out)
{
    static double ms[N_WARM], alloc[N_WARM], relabel[N_WARM], call[N_WARM];
    if (s_apply ("{\"apiVersion\":\"llmsafespace.dev/v1\",\"kind\":\"WarmPool\",\"metadata\":"
                 "{\"name\":\"py\",\"namespace\":\"" NS "\"},\"spec\":{\"runtime\":"
                 "\"python:3.11\",\"minSize\":4,\"maxSize\":16,\"securityLevel\":"
                 "\"standard\"}}") ||
        s_wait_pool (POOL_MIN, WAIT_MS))
        return NULL;
    char ep[128];
    ts_endpoint (&s_stack, "warmpool.alloc", ep, sizeof ep);
    zsock_t *s = lss_bus_socket_new (ZMQ_DEALER, ep, NULL);
    json_t *res = NULL;
    for (int i = -3; s && i < N_WARM; i++) {
        char names[1][NAME_SIZE], pod[256];
        double at[1] = {0};
        snprintf (names[0], NAME_SIZE, "warm-%d", i + 3);
        if (s_wait_pool (POOL_MIN, WAIT_MS))
            goto done;
        double t0 = s_now_ms ();
        if (ts_allocate (s, NS, names[0], pod, sizeof pod) != 1) {
            fprintf (stderr, "warm.allocate failed\n");
            goto done;
        }
        s_probe_arm (pod);
        double t1 = s_now_ms ();
        if (s_sandbox (names[0], pod) || s_wait_events (names, 1, at, NULL, false, WAIT_MS))
            goto done;
        if (s_wait_pod_event (WAIT_MS)) {
            fprintf (stderr, "the claimed Pod %s was never adopted\n", pod);
            goto done;
        }
        if (i >= 0) {
            alloc[i] = t1 - t0;
            ms[i] = at[0] - t1;
            call[i] = s_create_call_ms;
            relabel[i] = s_probe.pod_event ? s_probe.pod_event - t1 : -1;
        }
        if (s_delete_all (names, 1))
            goto done;
    }
    res = s_stats (ms, N_WARM);
    json_object_set_new (res, "breakdown_from_create",
                         json_pack ("{s:o, s:o, s:s}", "create_call", s_stats (call, N_WARM),
                                    "pod_adopted", s_stats (relabel, N_WARM), "note",
                                    "ms from the start of the create call: the call itself "
                                    "(PostgreSQL) and the first event of the claimed "
                                    "Pod after it (the reconciler adopting it, which it does "
                                    "after writing the Sandbox's Running status, so this is "
                                    "later than p50_ms)"));
    *alloc_out = s_stats (alloc, N_WARM);
done:
    zsock_destroy (&s);
    return res;
}

/*  N_BULK Sandboxes created back to back; sandboxes/s from the first create to the last
 *  Running. Leaves them running (the exec bench uses one) until s_bulk_delete. */
static char s_bulk[N_BULK][NAME_SIZE];

/*  Busy and total jiffies of the whole machine (/proc/stat "cpu" line). */
static void s_machine_cpu (long long *busy, long long *total)
{
    FILE *f = fopen ("/proc/stat", "r");
    long long v[8] = {0};
    if (f) {
        if (fscanf (f, "cpu %lld %lld %lld %lld %lld %lld %lld %lld", &v[0], &v[1], &v[2],
                    &v[3], &v[4], &v[5], &v[6], &v[7]) != 8)
            memset (v, 0, sizeof v);
        fclose (f);
    }
    *total = v[0] + v[1] + v[2] + v[3] + v[4] + v[5] + v[6] + v[7];
    *busy = *total - v[3] - v[4]; /* minus idle and iowait */
}

/*  CPU seconds a service process used so far (utime + stime + reaped children). */
static double s_proc_cpu_s (pid_t pid)
{
    char path[64], buf[1024];
    snprintf (path, sizeof path, "/proc/%d/stat", (int)pid);
    FILE *f = fopen (path, "r");
    size_t n = f ? fread (buf, 1, sizeof buf - 1, f) : 0;
    if (f)
        fclose (f);
    buf[n] = '\0';
    char *p = strrchr (buf, ')'); /* fields after the command name */
    long long t[4] = {0};
    if (p && sscanf (p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lld %lld %lld %lld",
                     &t[0], &t[1], &t[2], &t[3]) == 4)
        return (double)(t[0] + t[1] + t[2] + t[3]) / (double)sysconf (_SC_CLK_TCK);
    return 0;
}

static json_t *s_bench_bulk (void)
{
    double cpu0[TS_MAX_SERVICES];
    for (int i = 0; i < s_stack.svc_count; i++)
        cpu0[i] = s_proc_cpu_s (s_stack.svc[i].pid);
    long long busy0, total0, busy1, total1;
    s_machine_cpu (&busy0, &total0);
    static double at[N_BULK];
    for (int i = 0; i < N_BULK; i++)
        snprintf (s_bulk[i], NAME_SIZE, "bulk-%d", i);
    double t0 = s_now_ms ();
    for (int i = 0; i < N_BULK; i++)
        if (s_sandbox (s_bulk[i], NULL))
            return NULL;
    double created = s_now_ms ();
    if (s_wait_events (s_bulk, N_BULK, at, NULL, false, 120000))
        return NULL;
    double last = 0;
    for (int i = 0; i < N_BULK; i++)
        last = at[i] > last ? at[i] : last;
    double secs = (last - t0) / 1000.0;
    s_machine_cpu (&busy1, &total1);
    json_t *svc = json_object ();
    for (int i = 0; i < s_stack.svc_count; i++)
        json_object_set_new (svc, s_stack.svc[i].name,
                             json_real (s_proc_cpu_s (s_stack.svc[i].pid) - cpu0[i]));
    return json_pack (
        "{s:i, s:f, s:f, s:f, s:f, s:o, s:s}", "sandboxes", N_BULK, "create_calls_s",
        (created - t0) / 1000.0, "all_running_s", secs, "sandboxes_per_s", N_BULK / secs,
        "machine_cpu_busy",
        total1 > total0 ? (double)(busy1 - busy0) / (total1 - total0) : -1.0, "service_cpu_s",
        svc, "note",
        "machine_cpu_busy: share of both cores busy during the run (every process on the "
        "machine); service_cpu_s: CPU seconds each service used (the sandboxes themselves, "
        "bwrap and agents, are not children of any service and are not in it)");
}

static json_t *s_bench_exec (const char *sandbox)
{
    static double ms[N_EXEC];
    char ep[128], ref[160];
    ts_endpoint (&s_stack, "executor.router", ep, sizeof ep);
    snprintf (ref, sizeof ref, NS "/%s", sandbox);
    lss_exec_client_t *c = lss_exec_client_new (ep, NULL);
    if (!c)
        return NULL;
    char *argv[] = {"/bin/true"};
    lss_exec_start_t req = {.sandbox = ref, .argv = {argv, 1}};
    for (int i = -20; i < N_EXEC; i++) {
        lss_exec_result_t res;
        double t0 = s_now_ms ();
        int r = lss_exec_client_run (c, &req, NULL, &res);
        double t = s_now_ms () - t0;
        bool ok = r == 0 && res.end && res.end->exit_code == 0;
        lss_exec_result_clear (&res);
        if (!ok) {
            fprintf (stderr, "exec in %s failed\n", ref);
            lss_exec_client_destroy (&c);
            return NULL;
        }
        if (i >= 0)
            ms[i] = t;
    }
    lss_exec_client_destroy (&c);
    return s_stats (ms, N_EXEC);
}

/*  Sandboxes lss-node runs now (entries of its state dir). */
static int s_node_sandboxes (void)
{
    char path[128];
    snprintf (path, sizeof path, "%s/s", s_stack.dir);
    DIR *d = opendir (path);
    int n = 0;
    struct dirent *e;
    while (d && (e = readdir (d)))
        if (strncmp (e->d_name, "pod-", 4) == 0)
            n++;
    if (d)
        closedir (d);
    return n;
}

/*  Deletes the warm pool and waits until lss-node runs no sandbox, so that stopping the
 *  stack does not race sandboxes still being stopped (their mounts would stay). */
static void s_drain (void)
{
    char err[LSS_STORE_ERR_SIZE];
    lss_store_delete (s_store, "WarmPool", NS, "py", NULL, err, sizeof err);
    long long deadline = tp_now_ms () + WAIT_MS;
    while (s_node_sandboxes () > 0 && tp_now_ms () < deadline)
        usleep (50 * 1000);
    if (s_node_sandboxes () > 0)
        fprintf (stderr, "%d sandboxes still running at the end\n", s_node_sandboxes ());
}

static double s_p50 (json_t *st)
{
    return st ? json_real_value (json_object_get (st, "p50_ms")) : 1e9;
}

int main (void)
{
    if (!tp_sandboxes_work ()) {
        puts ("{\"skipped\":\"needs root and working sandboxes (lss sandbox preflight)\"}");
        return 0;
    }
    setenv ("TS_STACK_LOG_LEVEL", "warn", 0);
    const char *services[] = {"watcher", "reconciler", "node", "warmpool", "executor", NULL};
    const char *env[] = {"LSS_WATCHER_LEADER_CHECK=200", "LSS_WARMPOOL_LEADER_CHECK=200",
                         "LSS_NODE_MAX_SANDBOXES=256", NULL};
    int rc = 1;
    json_t *out = json_object ();
    char err[LSS_STORE_ERR_SIZE] = "", rv[64] = "";
    if (ts_stack_start (&s_stack, services, env)) {
        ts_stack_dump_logs (&s_stack);
        goto cleanup;
    }
    s_store = lss_store_pg_new (s_dsn, err, sizeof err);
    if (!s_store || lss_store_current_rv (s_store, rv, sizeof rv, err, sizeof err) ||
        !(s_watch = lss_store_watch_new (s_store, "Sandbox", NS, rv, NULL, err, sizeof err)) ||
        !(s_pod_watch = lss_store_watch_new (s_store, "Pod", NS, rv, NULL, err, sizeof err))) {
        fprintf (stderr, "store: %s\n", err);
        goto cleanup;
    }
    if (s_apply ("{\"apiVersion\":\"llmsafespace.dev/v1\",\"kind\":\"RuntimeEnvironment\","
                 "\"metadata\":{\"name\":\"python-3.11\"},\"spec\":{\"image\":"
                 "\"llmsafespace/python:3.11\",\"language\":\"python\",\"version\":\"3.11\","
                 "\"interpreter\":\"/usr/bin/python3\"}}"))
        goto cleanup;
    json_t *cold = s_bench_cold ();
    if (!cold)
        goto cleanup;
    json_object_set_new (out, "cold_create_to_running", cold);
    fprintf (stderr, "cold → Running p50 %.2f ms\n", s_p50 (cold));
    json_t *alloc = NULL, *warm = s_bench_warm (&alloc);
    if (!warm)
        goto cleanup;
    json_object_set_new (out, "warm_allocate_round_trip", alloc);
    json_object_set_new (out, "warm_create_to_running", warm);
    fprintf (stderr, "warm → Running p50 %.2f ms, allocate p50 %.2f ms\n", s_p50 (warm),
             s_p50 (alloc));
    /* the pool stays; its pods are not part of the bulk count */
    json_t *bulk = s_bench_bulk ();
    if (!bulk)
        goto cleanup;
    json_object_set_new (out, "reconcile_bulk", bulk);
    double per_s = json_real_value (json_object_get (bulk, "sandboxes_per_s"));
    fprintf (stderr, "%d sandboxes Running at %.1f/s\n", N_BULK, per_s);
    json_t *ex = s_bench_exec (s_bulk[0]);
    if (!ex)
        goto cleanup;
    json_object_set_new (out, "exec_true_via_executor", ex);
    if (s_delete_all (s_bulk, N_BULK))
        fprintf (stderr, "not every bulk sandbox was deleted within %d ms\n", WAIT_MS);
    s_drain ();
    json_object_set_new (
        out, "targets",
        json_pack ("{s:s, s:s, s:s}", "warm", "warm create → Running p50 < 5 ms", "cold",
                   "cold create → Running p50 < 20 ms", "reconcile", ">= 100 sandboxes/s"));
    json_object_set_new (out, "target_met",
                         json_pack ("{s:b, s:b, s:b}", "warm", s_p50 (warm) < 5.0, "cold",
                                    s_p50 (cold) < 20.0, "reconcile", per_s >= 100.0));
    char *text = json_dumps (out, JSON_COMPACT);
    puts (text);
    free (text);
    rc = 0;
cleanup:
    if (rc)
        ts_stack_dump_logs (&s_stack);
    json_decref (out);
    lss_store_watch_destroy (&s_watch);
    lss_store_watch_destroy (&s_pod_watch);
    lss_store_destroy (&s_store);
    ts_stack_stop (&s_stack);
    return rc;
}
