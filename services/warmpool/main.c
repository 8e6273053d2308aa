/*  lss-warmpool — keeps WarmPools at their size (scaler, leader only) and answers
 *  warm-pod allocations (every replica). docs/warmpool.md has the rules.
 *
 *  Threads: the main thread owns the allocation ROUTER (warmpool.alloc_endpoint) and its
 *  own store connection; store calls are synchronous but short (bounded by the store's
 *  statement timeout), so allocations are served one after another from the poll loop.
 *  The scaler thread (warmpool_worker) has its own store, leader candidate and queue
 *  client. Both publish events on one PUB socket guarded by a mutex (the mutex gives
 *  the full memory barrier ZeroMQ asks for when a socket is used from two threads).
 */
#include <czmq.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>

#include "lss_bus.h"
#include "lss_discovery.h"
#include "lss_log.h"
#include "lss_metrics.h"
#include "lss_pod.h"
#include "lss_service.h"
#include "lss_store.h"
#include "lss_util.h"
#include "warmpool_alloc.h"
#include "warmpool_preload.h"
#include "warmpool_scaler.h"
#include "warmpool_worker.h"

#define S_POLL_MS      1000
#define S_RECONNECT_MS 1000

typedef struct {
    lss_bus_pub_t *pub;
    pthread_mutex_t lock;
} s_events_t;

static void s_publish (void *arg, const char *reason, const char *ns, const char *name,
                       const char *message, json_t *details)
{
    s_events_t *ev = arg;
    if (!ev->pub)
        return;
    char topic[LSS_BUS_TOPIC_MAX];
    if (lss_fmt (topic, sizeof topic, "warmpool.%s.%s.%s", reason, ns, name))
        return;
    lss_event_t body = {.reason = (char *)reason,
                        .kind = (char *)"WarmPool",
                        .namespace = (char *)ns,
                        .name = (char *)name,
                        .message = (char *)message,
                        .details = details};
    pthread_mutex_lock (&ev->lock);
    lss_bus_pub_send (ev->pub, topic, LSS_MSG_event, "warmpool.event", &body, NULL);
    pthread_mutex_unlock (&ev->lock);
}

static void s_reply_error (zsock_t *router, zframe_t *route, const char *src, const char *ref,
                           const char *code, const char *message)
{
    lss_envelope_t env;
    lss_error_t body = {.ref = (char *)(ref && *ref ? ref : NULL),
                        .code = (char *)code,
                        .message = (char *)(message && *message ? message : code)};
    if (lss_bus_envelope_init (&env, LSS_MSG_error, NULL, src, 0, NULL) == 0)
        lss_bus_send (router, zframe_data (route), zframe_size (route), NULL, &env,
                      LSS_MSG_error, &body);
}

typedef struct {
    lss_metric_t *allocs, *conflicts, *latency;
} s_metrics_t;

/*  One request on the ROUTER: decode, allocate, answer. */
static void s_serve_one (zsock_t *router, lss_store_t **store, const lss_config_t *cfg,
                         const char *src, s_metrics_t *m, s_events_t *ev)
{
    zframe_t *route = NULL;
    lss_envelope_t env;
    lss_msg_kind_t kind = LSS_MSG_NONE;
    void *body = NULL;
    char err[LSS_STORE_ERR_SIZE] = "";
    int rc = lss_bus_recv (router, &route, NULL, 0, &env, &kind, &body, err, sizeof err);
    if (rc == -1)
        return;
    if (rc == -2) {
        lss_log_warn ("malformed allocation request", "{s:s}", "error", err);
        if (route)
            s_reply_error (router, route, src, NULL, "invalid_request", err);
        lss_metric_inc (m->allocs, 1, "invalid");
        goto done;
    }
    if (kind != LSS_MSG_warm_allocate) {
        s_reply_error (router, route, src, env.id, "invalid_request",
                       "this endpoint answers warmpod.allocate only");
        lss_metric_inc (m->allocs, 1, "invalid");
        goto done;
    }
    lss_log_set_trace (env.trace);
    int64_t t0 = lss_time_mono_ns ();
    if (!*store) {
        *store = lss_store_open (cfg, NULL, err, sizeof err);
        if (!*store) {
            s_reply_error (router, route, src, env.id, "unavailable", "store unreachable");
            lss_metric_inc (m->allocs, 1, "unavailable");
            goto done;
        }
    }
    const lss_warm_allocate_t *req = body;
    lss_warm_allocated_t out = {0};
    warmpool_alloc_stats_t stats;
    char code[64];
    rc = warmpool_allocate_stats (*store, req, lss_time_now_ms (), &out, &stats, code,
                                  sizeof code, err, sizeof err);
    lss_metric_inc (m->conflicts, stats.conflicts);
    lss_metric_observe (m->latency, (double)(lss_time_mono_ns () - t0) / 1e9);
    if (rc == 0) {
        out.ref = strdup (env.id);
        lss_envelope_t renv;
        if (out.ref &&
            lss_bus_envelope_init (&renv, LSS_MSG_warm_allocated, NULL, src, 0, NULL) == 0)
            lss_bus_send (router, zframe_data (route), zframe_size (route), NULL, &renv,
                          LSS_MSG_warm_allocated, &out);
        lss_metric_inc (m->allocs, 1, "ok");
        lss_log_info ("allocated warm pod", "{s:s, s:s, s:s, s:s}", "namespace", out.namespace,
                      "warmpod", out.name, "pool", out.pool, "sandbox", req->sandbox);
        json_t *d = json_pack ("{s:s, s:s, s:i}", "warmPod", out.name, "sandbox", req->sandbox,
                               "conflicts", stats.conflicts);
        s_publish (ev, "Allocated", out.namespace, out.pool, "warm pod assigned to a sandbox",
                   d);
        json_decref (d);
        lss_proto_body_clear (LSS_MSG_warm_allocated, &out);
    } else {
        s_reply_error (router, route, src, env.id, code, err);
        lss_metric_inc (m->allocs, 1,
                        strcmp (code, "pool_empty") == 0        ? "pool_empty"
                        : strcmp (code, "invalid_request") == 0 ? "invalid"
                                                                : "unavailable");
        if (strcmp (code, "unavailable") == 0)
            lss_store_destroy (store); /* reconnect on the next request */
    }
    lss_log_set_trace (NULL);
done:
    if (body)
        lss_proto_body_free (kind, &body);
    zframe_destroy (&route);
}

int main (int argc, char **argv)
{
    lss_service_t *svc = lss_service_new ("warmpool", argc, argv);
    if (!svc)
        return lss_service_exit_code ();
    const lss_config_t *cfg = lss_service_config (svc);
    const char *dsn = lss_config_str (cfg, "store.dsn");
    lss_bus_opts_t bus;
    lss_bus_opts_from_config (cfg, &bus);
    char host[64] = "localhost";
    gethostname (host, sizeof host - 1);
    char src[LSS_PROTO_SRC_MAX + 1];
    snprintf (src, sizeof src, "warmpool/%.64s/%ld", host, (long)getpid ());

    s_metrics_t m = {
        .allocs = lss_metrics_counter ("lss_warmpool_allocations_total",
                                       "Allocation requests, by result.", "result"),
        .conflicts = lss_metrics_counter (
            "lss_warmpool_allocation_conflicts_total",
            "Claims lost to another claimer (409) and retried on the next candidate.", NULL),
        .latency =
            lss_metrics_histogram ("lss_warmpool_allocation_seconds",
                                   "Time to answer an allocation request.", NULL, NULL, 0),
    };
    s_events_t ev = {.pub = NULL};
    pthread_mutex_init (&ev.lock, NULL);
    int exit_code = 0;
    bool thread_started = false;
    pthread_t thread;
    lss_store_t *store = NULL;
    zsock_t *router = NULL;
    static warmpool_worker_t worker;

    static const char *const dyn_keys[] = {"warmpool.queue_endpoint",
                                           "warmpool.executor_endpoint"};
    for (size_t k = 0; k < sizeof dyn_keys / sizeof dyn_keys[0]; k++) {
        const char *list = lss_config_str (cfg, dyn_keys[k]);
        char derr[256];
        if (lss_discovery_is_dynamic (list) &&
            lss_discovery_validate (list, dyn_keys[k], derr, sizeof derr)) {
            lss_log_error ("bad endpoint list", "{s:s}", "error", derr);
            exit_code = 1;
            goto cleanup;
        }
    }
    const char *pub_ep = lss_config_str (cfg, "warmpool.pub_endpoint");
    if (*pub_ep && !(ev.pub = lss_bus_pub_new (pub_ep, src, &bus))) {
        lss_log_error ("cannot bind the event publisher", "{s:s}", "endpoint", pub_ep);
        exit_code = 1;
        goto cleanup;
    }
    router =
        lss_bus_socket_new (ZMQ_ROUTER, lss_config_str (cfg, "warmpool.alloc_endpoint"), &bus);
    if (!router) {
        lss_log_error ("cannot bind the allocation endpoint", "{s:s}", "endpoint",
                       lss_config_str (cfg, "warmpool.alloc_endpoint"));
        exit_code = 1;
        goto cleanup;
    }

    worker.dsn = dsn;
    worker.cfg = cfg;
    /* cluster mode: warm pods' agents on TCP, with CURVE when the executors' keys are set */
    const char *curve = lss_config_str (cfg, "reconciler.executor_public_keys");
    if (*curve && !lss_pod_curve_clients_valid (curve)) {
        lss_log_error ("reconciler.executor_public_keys: 1..8 comma-separated 40-character "
                       "Z85 keys",
                       NULL);
        exit_code = 1;
        goto cleanup;
    }
    warmpool_preload_configure (lss_config_str (cfg, "warmpool.executor_endpoint"));
    warmpool_scaler_set_cluster (
        strcmp (lss_config_str (cfg, "store.backend"), "kubernetes") == 0, curve);
    worker.queue_endpoints = lss_config_str (cfg, "warmpool.queue_endpoint");
    worker.identity = src;
    worker.leader_check_ms = lss_config_int (cfg, "warmpool.leader_check");
    worker.bus = bus;
    worker.event = s_publish;
    worker.event_arg = &ev;
    atomic_init (&worker.stop, false);
    atomic_init (&worker.leader, false);
    /* the worker must not take SIGINT/SIGTERM meant for the main loop */
    thread_started = lss_thread_start (&thread, warmpool_worker_run, &worker) == 0;
    if (!thread_started) {
        lss_log_error ("cannot start the scaler thread", NULL);
        exit_code = 1;
        goto cleanup;
    }

    char err[LSS_STORE_ERR_SIZE];
    int64_t next_connect = 0;
    int stop_fd = lss_service_stop_fd (svc);
    while (!lss_service_stopping (svc)) {
        lss_service_heartbeat (svc);
        if (!store && lss_time_mono_ms () >= next_connect) {
            store = lss_store_open (cfg, NULL, err, sizeof err);
            if (!store) {
                lss_log_warn ("store unreachable", "{s:s}", "error", err);
                lss_service_set_ready (svc, false, "store unreachable");
                next_connect = lss_time_mono_ms () + S_RECONNECT_MS;
            } else
                lss_service_set_ready (svc, true, NULL);
        }
        zmq_pollitem_t items[2] = {{zsock_resolve (router), 0, ZMQ_POLLIN, 0},
                                   {NULL, stop_fd, ZMQ_POLLIN, 0}};
        int n = zmq_poll (items, 2, S_POLL_MS);
        if (n < 0)
            continue; /* EINTR: the loop condition decides */
        if (items[1].revents & ZMQ_POLLIN)
            break;
        /* serve what is queued, bounded per turn so the heartbeat keeps going */
        for (int k = 0; k < 100 && (zsock_events (router) & ZMQ_POLLIN); k++) {
            bool had = store != NULL;
            s_serve_one (router, &store, cfg, src, &m, &ev);
            if (had && !store)
                lss_service_set_ready (svc, false, "store unreachable");
        }
    }

cleanup:
    if (thread_started) {
        atomic_store (&worker.stop, true);
        pthread_join (thread, NULL);
    }
    lss_store_destroy (&store);
    zsock_destroy (&router);
    lss_bus_pub_destroy (&ev.pub);
    pthread_mutex_destroy (&ev.lock);
    lss_service_destroy (&svc);
    return exit_code;
}
