/*  reconciler_worker — one sync worker thread. See reconciler_worker.h. */
#include "reconciler_worker.h"

#include <czmq.h>
#include <string.h>
#include <unistd.h>

#include "lss_log.h"
#include "lss_metrics.h"
#include "lss_queue_client.h"
#include "lss_util.h"

#define S_GET_WAIT_MS     1000
#define S_STORE_RETRY_MS  500
#define S_DONE_TIMEOUT_MS 5000

static lss_metric_t *s_syncs;
static lss_metric_t *s_sync_seconds;
static pthread_once_t s_metrics_once = PTHREAD_ONCE_INIT;

static void s_metrics_init (void)
{
    s_syncs =
        lss_metrics_counter ("lss_reconciler_syncs_total",
                             "Sandbox sync passes by result (ok, conflict, error).", "result");
    s_sync_seconds = lss_metrics_histogram (
        "lss_reconciler_sync_seconds", "Duration of one Sandbox sync pass.", NULL,
        lss_metrics_latency_buckets, lss_metrics_latency_bucket_count);
}

/*  "Sandbox/<ns>/<name>" → ns, name. Returns 0 or -1. */
static int s_parse_key (const char *key, char *ns, size_t ns_size, char *name, size_t name_size)
{
    static const char prefix[] = "Sandbox/";
    if (strncmp (key, prefix, sizeof prefix - 1) != 0)
        return -1;
    const char *rest = key + sizeof prefix - 1;
    const char *slash = strchr (rest, '/');
    if (!slash || (size_t)(slash - rest) >= ns_size || strlen (slash + 1) >= name_size)
        return -1;
    memcpy (ns, rest, (size_t)(slash - rest));
    ns[slash - rest] = '\0';
    snprintf (name, name_size, "%s", slash + 1);
    return 0;
}

/*  One key: sync it and report to the queue and the event socket. */
static void s_work (reconciler_worker_t *self, lss_store_t **store, lss_queue_client_t *q,
                    zsock_t *events, const char *key)
{
    char ns[LSS_STORE_NAMESPACE_MAX + 1], name[LSS_STORE_NAME_MAX + 1];
    char err[LSS_STORE_ERR_SIZE] = "";
    if (s_parse_key (key, ns, sizeof ns, name, sizeof name)) {
        lss_log_warn ("malformed key dropped", "{s:s}", "key", key);
        lss_queue_client_done (q, key, "done", 0, NULL, S_DONE_TIMEOUT_MS);
        return;
    }
    /* on Kubernetes every sandbox gets its NetworkPolicy; lss-node (local mode) applies
     * the network annotation itself and would never read one */
    reconciler_opts_t opts = {
        .node_name = self->node_name,
        .agent_command = "/opt/lss/lss-agent",
        .network_policies = self->cfg && strcmp (lss_config_str (self->cfg, "store.backend"),
                                                 "kubernetes") == 0,
    };
    /* CURVE to the agents: cluster mode only (lss-node builds its agents' argv itself and
     * they listen on ipc, reachable by root only) */
    if (opts.network_policies && *lss_config_str (self->cfg, "reconciler.executor_public_keys"))
        opts.curve_clients = lss_config_str (self->cfg, "reconciler.executor_public_keys");
    if (opts.network_policies && *lss_config_str (self->cfg, "reconciler.executor_namespace"))
        opts.executor_ns = lss_config_str (self->cfg, "reconciler.executor_namespace");
    reconciler_result_t res;
    int64_t t0 = lss_time_mono_ns ();
    int rc =
        reconciler_sync (*store, &opts, ns, name, lss_time_now_ms (), &res, err, sizeof err);
    lss_metric_observe (s_sync_seconds, (double)(lss_time_mono_ns () - t0) / 1e9);
    if (rc == 0) {
        lss_metric_inc (s_syncs, 1, "ok");
        if (res.requeue_after_ms > 0)
            lss_queue_client_done (q, key, "requeue", res.requeue_after_ms, NULL,
                                   S_DONE_TIMEOUT_MS);
        else
            lss_queue_client_done (q, key, "done", 0, NULL, S_DONE_TIMEOUT_MS);
        if (res.reason[0]) {
            lss_log_info ("sandbox synced", "{s:s, s:s, s:s, s:s}", "namespace", ns, "name",
                          name, "reason", res.reason, "phase", res.phase);
            zsock_send (events, "b", &res, sizeof res);
        }
        return;
    }
    lss_metric_inc (s_syncs, 1, rc == LSS_STORE_CONFLICT ? "conflict" : "error");
    if (rc == LSS_STORE_CONFLICT)
        lss_log_debug ("sync conflict: retried", "{s:s, s:s}", "key", key, "error", err);
    else
        lss_log_warn ("sync failed: retried", "{s:s, s:i, s:s}", "key", key, "code", rc,
                      "error", err);
    lss_queue_client_done (q, key, "error", 0, err, S_DONE_TIMEOUT_MS);
    if (rc == LSS_STORE_UNAVAILABLE)
        lss_store_destroy (store); /* reconnect before the next key */
}

static void *s_run (void *arg)
{
    reconciler_worker_t *self = arg;
    char worker_id[LSS_WORKQUEUE_WORKER_MAX];
    char host[64] = "host";
    gethostname (host, sizeof host - 1);
    snprintf (worker_id, sizeof worker_id, "reconciler/%.64s/%d/%d", host, (int)getpid (),
              self->index);
    lss_bus_opts_t opts;
    if (self->cfg)
        lss_bus_opts_from_config (self->cfg, &opts);
    else
        lss_bus_opts_default (&opts);
    lss_queue_client_t *q =
        lss_queue_client_new (self->queue_endpoint, "sandbox", worker_id, &opts);
    zsock_t *events = zsock_new_push (">" RECONCILER_EVENTS_ENDPOINT);
    lss_store_t *store = NULL;
    if (!q || !events) {
        lss_log_error ("worker could not start", "{s:i}", "worker", self->index);
        goto cleanup;
    }
    atomic_store (&self->running, true);
    while (!atomic_load (self->stop)) {
        if (!store) {
            char err[LSS_STORE_ERR_SIZE] = "";
            store = lss_store_open (self->cfg, self->dsn, err, sizeof err);
            if (!store) {
                lss_log_warn ("store unreachable: retrying", "{s:i, s:s}", "worker",
                              self->index, "error", err);
                usleep (S_STORE_RETRY_MS * 1000);
                continue;
            }
        }
        char key[LSS_WORKQUEUE_KEY_MAX + 1];
        if (lss_queue_client_get (q, S_GET_WAIT_MS, key, sizeof key) == 1)
            s_work (self, &store, q, events, key);
    }
cleanup:
    lss_store_destroy (&store);
    lss_queue_client_destroy (&q);
    zsock_destroy (&events);
    return NULL;
}

int reconciler_worker_start (reconciler_worker_t *self)
{
    pthread_once (&s_metrics_once, s_metrics_init);
    atomic_store (&self->running, false);
    return pthread_create (&self->thread, NULL, s_run, self) == 0 ? 0 : -1;
}

void reconciler_worker_join (reconciler_worker_t *self)
{
    pthread_join (self->thread, NULL);
}
