/*  lss-reconciler — level-triggered Sandbox sync (docs/control-plane.md).
 *
 *  reconciler.workers threads each pull Sandbox keys from the watcher's work queue and
 *  run one sync pass per key with their own store connection (reconciler_worker.c). Any
 *  number of processes may run side by side: the queue never hands one key to two
 *  workers, and every write is guarded by resourceVersion. The main thread serves the
 *  admin endpoint and publishes each outcome as an `event` (type reconciler.event,
 *  topic reconciler.<reason>.<namespace>.<name>) on reconciler.pub_endpoint.
 */
#include <czmq.h>
#include <stdatomic.h>

#include "lss_bus.h"
#include "lss_discovery.h"
#include "lss_log.h"
#include "lss_service.h"
#include "lss_util.h"
#include "lss_pod.h"
#include "reconciler_worker.h"

#define S_MAX_WORKERS 256

static void s_publish (lss_bus_pub_t *pub, const reconciler_result_t *res)
{
    char topic[LSS_BUS_TOPIC_MAX];
    if (lss_fmt (topic, sizeof topic, "reconciler.%s.%s.%s", res->reason, res->namespace_,
                 res->name))
        return;
    lss_event_t ev = {0};
    ev.reason = (char *)res->reason;
    ev.kind = (char *)"Sandbox";
    ev.namespace = (char *)res->namespace_;
    ev.name = (char *)res->name;
    ev.message = (char *)res->phase;
    lss_bus_pub_send (pub, topic, LSS_MSG_event, "reconciler.event", &ev, NULL);
}

int main (int argc, char **argv)
{
    lss_service_t *svc = lss_service_new ("reconciler", argc, argv);
    if (!svc)
        return lss_service_exit_code ();
    const lss_config_t *cfg = lss_service_config (svc);
    lss_bus_opts_t opts;
    lss_bus_opts_from_config (cfg, &opts);
    int rc = 1;
    int nworkers = (int)lss_config_int (cfg, "reconciler.workers");
    reconciler_worker_t workers[S_MAX_WORKERS];
    int started = 0;
    atomic_bool stop = false;
    lss_bus_pub_t *pub =
        lss_bus_pub_new (lss_config_str (cfg, "reconciler.pub_endpoint"), "reconciler", &opts);
    zsock_t *events = zsock_new_pull ("@" RECONCILER_EVENTS_ENDPOINT);
    zpoller_t *poller = NULL;
    int stop_fd = lss_service_stop_fd (svc);
    const char *keys = lss_config_str (cfg, "reconciler.executor_public_keys");
    if (*keys && !lss_pod_curve_clients_valid (keys)) {
        lss_log_error ("reconciler.executor_public_keys: 1..8 comma-separated 40-character Z85 "
                       "keys",
                       NULL);
        goto cleanup;
    }
    const char *queue_ep = lss_config_str (cfg, "reconciler.queue_endpoint");
    char derr[256];
    if (lss_discovery_is_dynamic (queue_ep) &&
        lss_discovery_validate (queue_ep, "reconciler.queue_endpoint", derr, sizeof derr)) {
        lss_log_error ("bad endpoint list", "{s:s}", "error", derr);
        goto cleanup;
    }
    if (!pub || !events) {
        lss_log_error ("cannot bind sockets", "{s:s}", "pub_endpoint",
                       lss_config_str (cfg, "reconciler.pub_endpoint"));
        goto cleanup;
    }
    for (; started < nworkers && started < S_MAX_WORKERS; started++) {
        workers[started] = (reconciler_worker_t){
            .index = started,
            .dsn = lss_config_str (cfg, "store.dsn"),
            .cfg = cfg,
            .queue_endpoint = lss_config_str (cfg, "reconciler.queue_endpoint"),
            .node_name = "",
            .stop = &stop,
        };
        if (reconciler_worker_start (&workers[started])) {
            lss_log_error ("cannot start worker thread", "{s:i}", "worker", started);
            goto cleanup;
        }
    }
    poller = zpoller_new (events, &stop_fd, NULL);
    lss_service_set_ready (svc, true, NULL);
    lss_log_info ("reconciling", "{s:i, s:s}", "workers", nworkers, "queue",
                  lss_config_str (cfg, "reconciler.queue_endpoint"));
    while (!lss_service_stopping (svc)) {
        lss_service_heartbeat (svc);
        void *which = zpoller_wait (poller, 1000);
        if (which == events) {
            zframe_t *f = zframe_recv (events);
            if (f && zframe_size (f) == sizeof (reconciler_result_t)) {
                reconciler_result_t res;
                memcpy (&res, zframe_data (f), sizeof res);
                s_publish (pub, &res);
            }
            zframe_destroy (&f);
        }
    }
    rc = 0;
cleanup:
    atomic_store (&stop, true);
    for (int i = 0; i < started; i++)
        reconciler_worker_join (&workers[i]);
    zpoller_destroy (&poller);
    zsock_destroy (&events);
    lss_bus_pub_destroy (&pub);
    lss_service_destroy (&svc);
    return rc;
}
