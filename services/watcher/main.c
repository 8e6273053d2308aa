/*  lss-watcher — informers for every kind, object events on the bus, and the work queue
 *  that feeds reconcilers and the warm-pool scaler (docs/watcher.md,
 *  docs/control-plane.md).
 *
 *  Design note: the main thread owns the ROUTER (watcher_server), the leader election
 *  and the timers; the informers run in an actor (watcher_informer) because store calls
 *  are synchronous. Only the leader publishes and serves the queue; a standby keeps its
 *  informers warm and answers not_leader. On becoming leader the queues start empty and
 *  every cached Sandbox and WarmPool key is added (a resync); on losing leadership held
 *  requests are answered not_leader and the keys are forgotten. Ready once every kind
 *  has been listed; /readyz says whether this replica leads.
 */
#include <czmq.h>
#include <stdatomic.h>
#include <string.h>
#include <unistd.h>

#include "lss_bus.h"
#include "lss_leader.h"
#include "lss_log.h"
#include "lss_metrics.h"
#include "lss_service.h"
#include "lss_util.h"
#include "watcher_informer.h"
#include "watcher_server.h"

#define S_PIPE_BATCH   10000 /* pipe messages handled per loop turn */
#define S_ROUTER_BATCH 1000  /* requests handled per loop turn */
#define S_TURN_MAX_MS  1000  /* longest poll (heartbeat) */

static const char *const s_queue_names[WATCHER_QUEUE_COUNT] = {"sandbox", "warmpool"};

typedef struct {
    lss_service_t *svc;
    watcher_server_t *server;
    zactor_t *informer;
    lss_leader_t *leader;
    atomic_bool leading;
    bool synced;
    lss_metric_t *m_leader, *m_depth, *m_active, *m_delayed, *m_held, *m_keys;
} s_main_t;

static void s_readiness (s_main_t *self)
{
    if (!self->synced)
        lss_service_set_ready (self->svc, false, "informers not synced yet");
    else
        lss_service_set_ready (self->svc, true,
                               atomic_load (&self->leading) ? "leader" : "standby");
}

static void s_set_leading (s_main_t *self, bool leading, int64_t now)
{
    if (atomic_load (&self->leading) == leading)
        return;
    atomic_store (&self->leading, leading);
    watcher_server_set_leader (self->server, leading, now);
    lss_metric_set (self->m_leader, leading ? 1 : 0);
    lss_log_info (leading ? "leading: serving the queue" : "standby: queue stopped", NULL);
    if (leading)
        zstr_send (self->informer, "RESYNC");
    s_readiness (self);
}

static void s_gauges (s_main_t *self)
{
    for (size_t i = 0; i < WATCHER_QUEUE_COUNT; i++) {
        const char *name = s_queue_names[i];
        lss_workqueue_t *wq = watcher_server_queue (self->server, name);
        lss_metric_set (self->m_depth, (double)lss_workqueue_queued (wq), name);
        lss_metric_set (self->m_active, (double)lss_workqueue_active (wq), name);
        lss_metric_set (self->m_delayed, (double)lss_workqueue_waiting (wq), name);
        lss_metric_set (self->m_held, (double)watcher_server_held (self->server, name), name);
    }
}

/*  Takes what the informer sent (keys, SYNCED) without waiting. */
static void s_on_informer (s_main_t *self, int64_t now)
{
    zsock_t *pipe = zactor_sock (self->informer);
    for (int n = 0; n < S_PIPE_BATCH && (zsock_events (pipe) & ZMQ_POLLIN); n++) {
        char *cmd = NULL, *queue = NULL, *key = NULL;
        if (zsock_recv (pipe, "sss", &cmd, &queue, &key) != 0)
            break;
        bool later = cmd && strcmp (cmd, "KEYLATER") == 0;
        if (cmd && (later || strcmp (cmd, "KEY") == 0) && queue && key) {
            int rc = later ? watcher_server_add_after (self->server, queue, key,
                                                       WATCHER_POOL_CHILD_DELAY_MS, now)
                           : watcher_server_add (self->server, queue, key, now);
            if (rc == 0 && atomic_load (&self->leading))
                lss_metric_inc (self->m_keys, 1, queue);
        } else if (cmd && strcmp (cmd, "SYNCED") == 0) {
            self->synced = true;
            lss_log_info ("informers synced", NULL);
            s_readiness (self);
        }
        zstr_free (&cmd);
        zstr_free (&queue);
        zstr_free (&key);
    }
}

int main (int argc, char **argv)
{
    lss_service_t *svc = lss_service_new ("watcher", argc, argv);
    if (!svc)
        return lss_service_exit_code ();
    const lss_config_t *cfg = lss_service_config (svc);
    int exit_code = 1;
    s_main_t self_ = {.svc = svc};
    s_main_t *self = &self_;
    atomic_init (&self->leading, false);
    zsock_t *router = NULL;
    lss_bus_pub_t *pub = NULL;

    self->m_leader = lss_metrics_gauge ("lss_watcher_leader",
                                        "1 while this replica leads (serves the queue).", NULL);
    self->m_depth = lss_metrics_gauge ("lss_watcher_queue_depth",
                                       "Keys ready to hand out, by queue.", "queue");
    self->m_active = lss_metrics_gauge ("lss_watcher_queue_active",
                                        "Keys held by workers, by queue.", "queue");
    self->m_delayed = lss_metrics_gauge (
        "lss_watcher_queue_delayed", "Keys waiting for a backoff or requeue delay.", "queue");
    self->m_held =
        lss_metrics_gauge ("lss_watcher_queue_requests_waiting",
                           "queue.get requests held (long-poll), by queue.", "queue");
    self->m_keys = lss_metrics_counter ("lss_watcher_queue_adds_total",
                                        "Keys added to a queue (events and resyncs).", "queue");
    lss_metric_set (self->m_leader, 0);

    char host[64] = "";
    gethostname (host, sizeof host - 1);
    char identity[128];
    lss_fmt (identity, sizeof identity, "watcher/%s/%d", host, (int)getpid ());

    lss_bus_opts_t bus;
    lss_bus_opts_from_config (cfg, &bus);
    const char *dsn = lss_config_str (cfg, "store.dsn");
    pub = lss_bus_pub_new (lss_config_str (cfg, "watcher.pub_endpoint"), identity, &bus);
    router =
        lss_bus_socket_new (ZMQ_ROUTER, lss_config_str (cfg, "watcher.queue_endpoint"), &bus);
    if (!pub || !router) {
        lss_log_error ("cannot bind the bus endpoints", NULL);
        goto cleanup;
    }
    lss_workqueue_opts_t qopts;
    lss_workqueue_opts_default (&qopts);
    qopts.max_keys = (size_t)lss_config_int (cfg, "watcher.max_keys");
    qopts.backoff_max_ms = lss_config_int (cfg, "watcher.backoff_max");
    qopts.lease_ms = lss_config_int (cfg, "watcher.queue_lease");
    self->server = watcher_server_new (router, identity, &qopts, 0);
    self->leader = lss_leader_open (cfg, dsn, "watcher", identity);
    if (!self->server || !self->leader)
        goto cleanup;
    watcher_informer_args_t args = {
        .dsn = dsn, .cfg = cfg, .pub = pub, .leader = &self->leading};
    self->informer = zactor_new (watcher_informer_actor, &args);
    if (!self->informer)
        goto cleanup;
    pub = NULL; /* the actor owns it now */
    s_readiness (self);

    const int64_t leader_check_ms = lss_config_int (cfg, "watcher.leader_check");
    const int64_t resync_ms = lss_config_int (cfg, "watcher.resync");
    int64_t next_leader = 0, next_resync = lss_time_mono_ms () + resync_ms;
    int stop_fd = lss_service_stop_fd (svc);
    int64_t timeout = 0;
    while (!lss_service_stopping (svc)) {
        zmq_pollitem_t items[] = {
            {zsock_resolve (router), 0, ZMQ_POLLIN, 0},
            {zsock_resolve (zactor_sock (self->informer)), 0, ZMQ_POLLIN, 0},
            {NULL, stop_fd, ZMQ_POLLIN, 0},
        };
        if (zmq_poll (items, 3, (long)timeout) < 0 && zmq_errno () != EINTR)
            break;
        lss_service_heartbeat (svc);
        int64_t now = lss_time_mono_ms ();
        if (now >= next_leader) {
            int r = lss_leader_try (self->leader);
            s_set_leading (self, r == 1, now);
            next_leader = now + leader_check_ms;
        }
        if (now >= next_resync) {
            if (atomic_load (&self->leading))
                zstr_send (self->informer, "RESYNC");
            next_resync = now + resync_ms;
        }
        s_on_informer (self, now);
        for (int n = 0; n < S_ROUTER_BATCH && (zsock_events (router) & ZMQ_POLLIN); n++)
            if (watcher_server_handle (self->server, now) != 0)
                break;
        int64_t next = watcher_server_tick (self->server, now);
        s_gauges (self);
        now = lss_time_mono_ms ();
        timeout = S_TURN_MAX_MS;
        if (next >= 0 && next < timeout)
            timeout = next;
        if (next_leader - now < timeout)
            timeout = next_leader - now;
        if (next_resync - now < timeout)
            timeout = next_resync - now;
        if (timeout < 0)
            timeout = 0;
    }
    lss_log_info ("shutting down", NULL);
    exit_code = 0;

cleanup:
    zactor_destroy (&self->informer);
    if (self->server)
        watcher_server_set_leader (self->server, false, lss_time_mono_ms ());
    watcher_server_destroy (&self->server);
    lss_leader_destroy (&self->leader);
    zsock_destroy (&router);
    lss_bus_pub_destroy (&pub);
    lss_service_destroy (&svc);
    return exit_code;
}
