/*  warmpool_worker — the scaler thread (see warmpool_worker.h).
 *
 *  Design note: the store, the leader candidate and the queue client all belong to this
 *  thread. Leadership is re-checked every leader_check_ms between keys (a queue.get waits
 *  at most that long), so a replica that lost the lock stops within about one period;
 *  brief overlap is harmless because every write of a pass is resourceVersion-guarded.
 */
#include "warmpool_worker.h"

#include <string.h>

#include "lss_leader.h"
#include "lss_log.h"
#include "lss_metrics.h"
#include "lss_obj.h"
#include "lss_store.h"
#include "lss_util.h"
#include "lss_queue_client.h"
#include "warmpool_scaler.h"

#define S_QUEUE      "warmpool"
#define S_ELECTION   "warmpool-scaler"
#define S_KEY_PREFIX "WarmPool/"
#define S_RETRY_MS   1000

int warmpool_worker_parse_key (const char *key, char *ns, size_t ns_size, char *name,
                               size_t name_size)
{
    size_t plen = strlen (S_KEY_PREFIX);
    if (!key || strlen (key) > LSS_WORKQUEUE_KEY_MAX || strncmp (key, S_KEY_PREFIX, plen))
        return -1;
    if (lss_obj_split_ref (key + plen, ns, ns_size, name, name_size) != 0)
        return -1;
    if (strlen (ns) > LSS_STORE_NAMESPACE_MAX || strchr (ns, '.'))
        return -1;
    return 0;
}

static void s_sleep_until (warmpool_worker_t *self, int64_t until_mono)
{
    while (!atomic_load (&self->stop) && lss_time_mono_ms () < until_mono)
        zclock_sleep (50);
}

static void s_events (warmpool_worker_t *self, const char *ns, const char *name,
                      const warmpool_report_t *r)
{
    static lss_metric_t *created, *deleted;
    if (!created) {
        created =
            lss_metrics_counter ("lss_warmpool_pods_created_total",
                                 "WarmPods (each with its Pod) created by the scaler.", NULL);
        deleted = lss_metrics_counter ("lss_warmpool_pods_deleted_total",
                                       "WarmPods deleted by the scaler, by reason.", "reason");
    }
    lss_metric_inc (created, r->created);
    lss_metric_inc (deleted, r->scaled_down, "scaled_down");
    lss_metric_inc (deleted, r->replaced, "replaced");
    lss_metric_inc (deleted, r->released, "released");
    if (!self->event)
        return;
    json_t *d = json_pack ("{s:i, s:i, s:i, s:i, s:i, s:i, s:i, s:i}", "created", r->created,
                           "scaledDown", r->scaled_down, "replaced", r->replaced, "released",
                           r->released, "available", r->available, "assigned", r->assigned,
                           "pending", r->pending, "desiredIdle", r->desired_idle);
    if (r->created > 0)
        self->event (self->event_arg, "ScaledUp", ns, name, "warm pods created", d);
    if (r->scaled_down > 0)
        self->event (self->event_arg, "ScaledDown", ns, name, "idle warm pods removed", d);
    if (r->replaced + r->released > 0)
        self->event (self->event_arg, "Replaced", ns, name,
                     "failed, expired or released warm pods removed", d);
    json_decref (d);
}

void *warmpool_worker_run (void *arg)
{
    warmpool_worker_t *self = arg;
    lss_metric_t *syncs =
        lss_metrics_counter ("lss_warmpool_syncs_total", "Scaler passes, by result.", "result");
    lss_metric_t *leading = lss_metrics_gauge ("lss_warmpool_scaler_leader",
                                               "1 while this replica runs the scaler.", NULL);
    lss_leader_t *leader = lss_leader_open (self->cfg, self->dsn, S_ELECTION, self->identity);
    lss_store_t *store = NULL;
    lss_queue_client_t *q = NULL;
    int64_t next_check = 0;
    char err[LSS_STORE_ERR_SIZE];
    while (leader && !atomic_load (&self->stop)) {
        int64_t mono = lss_time_mono_ms ();
        if (mono >= next_check) {
            bool lead = lss_leader_try (leader) == 1;
            next_check = mono + self->leader_check_ms;
            if (lead != atomic_load (&self->leader))
                lss_log_info (lead ? "scaler leading" : "scaler standing by", NULL);
            atomic_store (&self->leader, lead);
            lss_metric_set (leading, lead ? 1 : 0);
            if (!lead)
                lss_queue_client_destroy (&q); /* hold no keys while not leading */
        }
        if (!atomic_load (&self->leader)) {
            s_sleep_until (self, next_check);
            continue;
        }
        if (!store) {
            store = lss_store_open (self->cfg, self->dsn, err, sizeof err);
            if (!store) {
                lss_log_warn ("scaler cannot reach the store", "{s:s}", "error", err);
                s_sleep_until (self, lss_time_mono_ms () + S_RETRY_MS);
                continue;
            }
        }
        if (!q) {
            q = lss_queue_client_new (self->queue_endpoints, S_QUEUE, self->identity,
                                      &self->bus);
            if (!q) {
                s_sleep_until (self, lss_time_mono_ms () + S_RETRY_MS);
                continue;
            }
        }
        int64_t wait = next_check - lss_time_mono_ms ();
        if (wait < 10)
            wait = 10;
        if (wait > 1000)
            wait = 1000;
        char key[LSS_WORKQUEUE_KEY_MAX + 1];
        int got = lss_queue_client_get (q, (int)wait, key, sizeof key);
        if (got != 1)
            continue;
        char ns[64], name[254];
        if (warmpool_worker_parse_key (key, ns, sizeof ns, name, sizeof name) != 0) {
            lss_log_warn ("dropping a malformed queue key", "{s:s}", "key", key);
            lss_queue_client_done (q, key, "done", 0, "malformed key", 0);
            continue;
        }
        int64_t after = 0;
        warmpool_report_t rep;
        err[0] = '\0';
        int rc = warmpool_sync_report (store, ns, name, lss_time_now_ms (), &after, &rep, err,
                                       sizeof err);
        if (rc == LSS_STORE_OK) {
            s_events (self, ns, name, &rep);
            lss_queue_client_done (q, key, after > 0 ? "requeue" : "done", after, NULL, 0);
            lss_metric_inc (syncs, 1, "ok");
        } else {
            lss_log_warn ("warm pool sync failed", "{s:s, s:i, s:s}", "key", key, "code", rc,
                          "error", err);
            s_events (self, ns, name, &rep); /* what was done before the failure */
            lss_queue_client_done (q, key, "error", 0, err, 0);
            lss_metric_inc (syncs, 1, rc == LSS_STORE_CONFLICT ? "conflict" : "error");
            if (rc == LSS_STORE_UNAVAILABLE)
                lss_store_destroy (&store); /* reconnect on the next key */
        }
    }
    atomic_store (&self->leader, false);
    lss_queue_client_destroy (&q);
    lss_store_destroy (&store);
    lss_leader_destroy (&leader);
    return NULL;
}
