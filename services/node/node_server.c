/*  node_server — lss-node's Pod loop. See node_server.h for the design. */
#include "node_server.h"

#include <czmq.h>
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lss_log.h"
#include "lss_metrics.h"
#include "lss_obj.h"
#include "lss_store.h"
#include "lss_util.h"
#include "node_pod.h"
#include "sandbox_agent.h"
#include "sandbox_runtime.h"

typedef struct {
    node_pod_ident_t ident;
    json_t *pod;             /* latest object seen (owned) */
    int64_t seen_mono_ms;    /* first seen by this process */
    bool started;            /* a sandbox was started or adopted for it by this process */
    int64_t started_mono_ms; /* when this process started it (0: adopted) */
    bool ready;              /* the agent's socket exists */
    bool queued;             /* waiting in the start queue */
    bool node_full;          /* Pending NodeFull written */
    bool dirty;              /* a status write failed: sync again on the next tick */
    bool invalid;            /* the Pod cannot become a sandbox */
    bool seen;               /* relist mark */
    int wd;                  /* inotify watch on its run dir, -1 if none */
    char invalid_msg[LSS_SANDBOX_ERR_SIZE];
} node_entry_t;

struct _node_server_t {
    char state_dir[PATH_MAX];
    char agent_path[PATH_MAX];
    char node_name[64];
    char dsn[4096];
    const lss_config_t *cfg; /* borrowed: the store backend (NULL: PostgreSQL at dsn) */
    int max_sandboxes;
    lss_sandbox_runtime_t *rt;
    lss_store_t *store;
    lss_store_watch_t *watch;
    zhashx_t *by_key; /* "ns/name" → entry (owned) */
    zhashx_t *by_id;  /* sandbox id → entry (borrowed) */
    zlistx_t *queue;  /* keys waiting for a start, oldest first */
    int ino_fd;
    bool listed;         /* first list done */
    bool need_relist;    /* list (again) before watching */
    char last_rv[64];    /* where a lost watch resumes */
    int64_t retry_at_ms; /* monotonic: next store connect / list / watch attempt */
    int64_t backoff_ms;
    int64_t next_tick_ms;
    lss_metric_t *m_running, *m_pending, *m_starts, *m_stops, *m_failures, *m_latency,
        *m_status_writes;
};

/* ------------------------------------------------------------------ metrics */

static const double s_start_buckets[] = {.01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30};

static void s_metrics_init (node_server_t *self)
{
    self->m_running = lss_metrics_gauge ("lss_node_sandboxes_running",
                                         "Sandboxes running on this node.", NULL);
    self->m_pending = lss_metrics_gauge (
        "lss_node_pods_pending", "Pods of this node waiting for room (NodeFull).", NULL);
    self->m_starts =
        lss_metrics_counter ("lss_node_sandbox_starts_total", "Sandboxes started.", NULL);
    self->m_stops = lss_metrics_counter ("lss_node_sandbox_stops_total",
                                         "Sandboxes stopped and removed.", NULL);
    self->m_failures = lss_metrics_counter (
        "lss_node_pod_failures_total",
        "Pods set Failed, by reason (runtime reason, InvalidSpec, StartError, Lost).",
        "reason");
    self->m_latency = lss_metrics_histogram (
        "lss_node_start_latency_seconds", "From a Pod first seen by lss-node to its Ready.",
        NULL, s_start_buckets, sizeof s_start_buckets / sizeof s_start_buckets[0]);
    self->m_status_writes = lss_metrics_counter ("lss_node_status_writes_total",
                                                 "Pod status writes, by result.", "result");
}

/* ------------------------------------------------------------------ entries */

static void s_entry_free (void **item)
{
    node_entry_t *e = *item;
    if (e) {
        json_decref (e->pod);
        free (e);
        *item = NULL;
    }
}

static void s_unwatch (node_server_t *self, node_entry_t *e)
{
    if (e->wd >= 0 && self->ino_fd >= 0)
        inotify_rm_watch (self->ino_fd, e->wd);
    e->wd = -1;
}

static int s_endpoint (node_server_t *self, const char *id, char *out, size_t size)
{
    return lss_sandbox_agent_endpoint (self->state_dir, id, out, size);
}

/* True once the agent's socket file exists. */
static bool s_socket_bound (node_server_t *self, const char *id)
{
    char path[PATH_MAX];
    struct stat st;
    return lss_fmt (path, sizeof path, "%s/%s/run/agent.sock", self->state_dir, id) == 0 &&
           lstat (path, &st) == 0 && S_ISSOCK (st.st_mode);
}

/* Stops a sandbox (if the runtime knows it) and counts it. */
static void s_stop_sandbox (node_server_t *self, const char *id, const char *why)
{
    lss_sandbox_status_t fin;
    if (lss_sandbox_runtime_get (self->rt, id, &fin))
        return;
    if (lss_sandbox_runtime_stop (self->rt, id, NODE_STOP_TIMEOUT_MS, &fin) == 0) {
        lss_metric_inc (self->m_stops, 1);
        lss_log_info ("sandbox removed", "{s:s, s:s}", "id", id, "why", why);
    } else
        lss_log_warn ("sandbox stop incomplete (retried later)", "{s:s}", "id", id);
}

/* Forgets a Pod: its sandbox is stopped, its entry freed. */
static void s_forget (node_server_t *self, node_entry_t *e, const char *why)
{
    s_unwatch (self, e);
    s_stop_sandbox (self, e->ident.id, why);
    zhashx_delete (self->by_id, e->ident.id);
    zhashx_delete (self->by_key, e->ident.key); /* frees e */
}

/* ------------------------------------------------------------------ status writes */

typedef enum { S_WRITTEN = 0, S_AGAIN = 1, S_FAILED = -1, S_GONE = -2 } s_write_t;

/* Numeric comparison of two resourceVersion strings (decimal). */
static int s_rv_cmp (const char *a, const char *b)
{
    size_t la = a ? strlen (a) : 0, lb = b ? strlen (b) : 0;
    if (la != lb)
        return la < lb ? -1 : 1;
    return la ? strcmp (a, b) : 0;
}

/* Writes desired (owned; its status) unless the Pod already has that status. A 409
 * re-reads the Pod into the entry and answers S_AGAIN (the caller recomputes). */
static s_write_t s_write (node_server_t *self, node_entry_t *e, json_t *desired)
{
    if (!desired)
        return S_FAILED;
    if (json_equal (json_object_get (desired, "status"), json_object_get (e->pod, "status"))) {
        json_decref (desired);
        return S_WRITTEN;
    }
    char err[LSS_STORE_ERR_SIZE] = "";
    json_t *out = NULL;
    int rc = lss_store_update_status (self->store, desired, &out, err, sizeof err);
    json_decref (desired);
    if (rc == LSS_STORE_OK) {
        lss_metric_inc (self->m_status_writes, 1, "ok");
        json_decref (e->pod);
        e->pod = out;
        e->dirty = false;
        lss_log_debug ("pod status written", "{s:s, s:s}", "pod", e->ident.key, "phase",
                       lss_obj_str (out, "status.phase") ?: "");
        return S_WRITTEN;
    }
    json_decref (out);
    lss_metric_inc (self->m_status_writes, 1,
                    rc == LSS_STORE_CONFLICT    ? "conflict"
                    : rc == LSS_STORE_NOT_FOUND ? "not_found"
                                                : "error");
    if (rc == LSS_STORE_CONFLICT) {
        json_t *fresh = NULL;
        rc = lss_store_get (self->store, "Pod", e->ident.ns, e->ident.name, &fresh, err,
                            sizeof err);
        if (rc == LSS_STORE_OK) {
            const char *uid = lss_obj_str (fresh, "metadata.uid");
            if (!uid || strcmp (uid, e->ident.uid)) {
                json_decref (fresh);
                return S_GONE;
            }
            json_decref (e->pod);
            e->pod = fresh;
            return S_AGAIN;
        }
    }
    if (rc == LSS_STORE_NOT_FOUND)
        return S_GONE;
    lss_log_warn ("pod status write failed (retried)", "{s:s, s:s}", "pod", e->ident.key,
                  "error", err);
    e->dirty = true;
    return S_FAILED;
}

/* ------------------------------------------------------------------ sync */

static void s_queue_start (node_server_t *self, node_entry_t *e)
{
    if (e->queued || e->started)
        return;
    e->queued = true;
    zlistx_add_end (self->queue, e->ident.key);
}

/* Moves one Pod one step: returns what the status write said. */
static s_write_t s_sync_once (node_server_t *self, node_entry_t *e)
{
    int64_t now = lss_time_now_ms ();
    lss_sandbox_status_t st;
    bool known = lss_sandbox_runtime_get (self->rt, e->ident.id, &st) == 0;
    if (node_pod_terminal (e->pod)) {
        /* Done (restartPolicy Never): its sandbox, if any, is no longer needed. */
        if (known)
            s_stop_sandbox (self, e->ident.id, "pod finished");
        s_unwatch (self, e);
        return S_WRITTEN;
    }
    if (e->invalid) {
        s_write_t w = s_write (
            self, e, node_pod_with_failed (e->pod, "InvalidSpec", e->invalid_msg, now));
        if (w == S_WRITTEN)
            lss_metric_inc (self->m_failures, 1, "InvalidSpec");
        return w;
    }
    if (known) {
        e->started = true;
        bool running = st.phase == LSS_SANDBOX_RUNNING;
        if (running && !e->ready && s_socket_bound (self, e->ident.id)) {
            e->ready = true;
            s_unwatch (self, e);
            if (e->seen_mono_ms)
                lss_metric_observe (self->m_latency,
                                    (double)(lss_time_mono_ms () - e->seen_mono_ms) / 1000.0);
            e->seen_mono_ms = 0; /* observed once */
            lss_log_info ("pod ready", "{s:s, s:s}", "pod", e->ident.key, "id", e->ident.id);
        }
        /* A sandbox just started whose agent is not up yet: its Pod is written once, Running
         * and Ready together, when the socket appears (inotify) — one store write and one
         * watcher/reconciler pass fewer per start, on the cold start's path. Still not
         * ready after NODE_READY_WAIT_MS, the next tick writes Running, not ready. */
        if (running && !e->ready && e->started_mono_ms &&
            lss_time_mono_ms () - e->started_mono_ms < NODE_READY_WAIT_MS)
            return S_WRITTEN;
        char endpoint[256] = "";
        s_endpoint (self, e->ident.id, endpoint, sizeof endpoint);
        s_write_t w = s_write (
            self, e, node_pod_with_sandbox_status (e->pod, &st, e->ready, endpoint, now));
        if (w == S_WRITTEN && !running) {
            /* The ending is durable in the Pod: free the slot now. */
            if (strcmp (st.reason, "Completed") != 0)
                lss_metric_inc (self->m_failures, 1, st.reason);
            s_stop_sandbox (self, e->ident.id, "sandbox ended");
            s_unwatch (self, e);
        }
        return w;
    }
    if (e->started || node_pod_was_started (e->pod)) {
        s_write_t w = s_write (
            self, e,
            node_pod_with_failed (e->pod, "Lost",
                                  "the sandbox disappeared (node restarted without it)", now));
        if (w == S_WRITTEN)
            lss_metric_inc (self->m_failures, 1, "Lost");
        return w;
    }
    s_queue_start (self, e); /* NodeFull, if it must wait, is written by s_start_queued */
    return S_WRITTEN;
}

/* Syncs until the write sticks (bounded). A Pod found gone is forgotten. */
static void s_sync (node_server_t *self, node_entry_t *e)
{
    for (int i = 0; i < NODE_SYNC_ATTEMPTS; i++) {
        s_write_t w = s_sync_once (self, e);
        if (w == S_GONE) {
            s_forget (self, e, "pod deleted");
            return;
        }
        if (w != S_AGAIN)
            return;
    }
    e->dirty = true;
}

/* Starts queued Pods while there is room (at most NODE_STARTS_PER_TURN). Pods left in
 * the queue because the node is full get Pending NodeFull once. Returns true if startable
 * work remains (the loop then polls without waiting). */
static bool s_start_queued (node_server_t *self)
{
    int started = 0;
    while (zlistx_size (self->queue) > 0 && started < NODE_STARTS_PER_TURN &&
           (int)lss_sandbox_runtime_count (self->rt) < self->max_sandboxes) {
        char *key = zlistx_first (self->queue);
        node_entry_t *e = zhashx_lookup (self->by_key, key);
        zlistx_delete (self->queue, zlistx_cursor (self->queue));
        if (!e || !e->queued)
            continue;
        e->queued = false;
        if (e->started || e->invalid || node_pod_terminal (e->pod))
            continue;
        char err[LSS_SANDBOX_ERR_SIZE] = "";
        lss_sandbox_spec_t *spec =
            node_pod_spec (e->pod, e->ident.id, self->agent_path, err, sizeof err);
        lss_sandbox_status_t st;
        if (!spec) {
            e->invalid = true;
            snprintf (e->invalid_msg, sizeof e->invalid_msg, "%s", err);
        } else if (lss_sandbox_runtime_start (self->rt, spec, &st, err, sizeof err)) {
            lss_sandbox_spec_destroy (&spec);
            e->started = true; /* so that a retry does not loop */
            s_write_t w = s_write (
                self, e, node_pod_with_failed (e->pod, "StartError", err, lss_time_now_ms ()));
            if (w == S_WRITTEN)
                lss_metric_inc (self->m_failures, 1, "StartError");
            else if (w == S_GONE)
                s_forget (self, e, "pod deleted");
            continue;
        } else {
            lss_sandbox_spec_destroy (&spec);
            started++;
            lss_metric_inc (self->m_starts, 1);
            e->started = true;
            e->started_mono_ms = lss_time_mono_ms ();
            e->node_full = false;
            char run[PATH_MAX];
            if (self->ino_fd >= 0 &&
                lss_fmt (run, sizeof run, "%s/%s/run", self->state_dir, e->ident.id) == 0)
                e->wd = inotify_add_watch (self->ino_fd, run, IN_CREATE | IN_MOVED_TO);
            /* inotify failing only delays readiness to the next tick (stat fallback). */
            zhashx_update (self->by_id, e->ident.id, e);
            lss_log_info ("sandbox starting", "{s:s, s:s, s:s}", "pod", e->ident.key, "id",
                          e->ident.id, "uid", e->ident.uid);
        }
        s_sync (self, e);
    }
    bool full = (int)lss_sandbox_runtime_count (self->rt) >= self->max_sandboxes;
    size_t pending = 0;
    for (char *key = zlistx_first (self->queue); key; key = zlistx_next (self->queue)) {
        node_entry_t *e = zhashx_lookup (self->by_key, key);
        if (!e || !e->queued)
            continue;
        pending++;
        if (full && !e->node_full) {
            char msg[128];
            snprintf (msg, sizeof msg, "node %s runs %d sandboxes (node.max_sandboxes)",
                      self->node_name, self->max_sandboxes);
            s_write_t w = s_write (
                self, e, node_pod_with_pending (e->pod, "NodeFull", msg, lss_time_now_ms ()));
            if (w == S_WRITTEN)
                e->node_full = true;
        }
    }
    lss_metric_set (self->m_pending, full ? (double)pending : 0);
    return !full && zlistx_size (self->queue) > 0;
}

/* ------------------------------------------------------------------ Pod events */

/* A Pod object seen in a list or an event (borrowed). */
static void s_pod_seen (node_server_t *self, json_t *pod)
{
    node_pod_ident_t ident;
    char err[LSS_STORE_ERR_SIZE];
    if (node_pod_ident (pod, &ident, err, sizeof err)) {
        lss_log_warn ("pod ignored", "{s:s}", "error", err);
        return;
    }
    node_entry_t *e = zhashx_lookup (self->by_key, ident.key);
    if (e && strcmp (e->ident.uid, ident.uid)) {
        s_forget (self, e, "pod replaced");
        e = NULL;
    }
    if (!node_pod_for_node (pod, self->node_name) || lss_obj_deleting (pod)) {
        if (e)
            s_forget (self, e, lss_obj_deleting (pod) ? "pod deleting" : "pod moved");
        return;
    }
    if (e) {
        e->seen = true;
        if (s_rv_cmp (lss_obj_str (pod, "metadata.resourceVersion"),
                      lss_obj_str (e->pod, "metadata.resourceVersion")) >= 0) {
            json_decref (e->pod);
            e->pod = json_incref (pod);
        }
        s_sync (self, e);
        return;
    }
    node_entry_t *other = zhashx_lookup (self->by_id, ident.id);
    if (other) { /* a hash collision: never share a sandbox */
        lss_log_error ("sandbox id collision; pod ignored", "{s:s, s:s}", "pod", ident.key,
                       "other", other->ident.key);
        return;
    }
    e = calloc (1, sizeof *e);
    if (!e)
        return;
    e->ident = ident;
    e->pod = json_incref (pod);
    lss_sandbox_status_t st;
    /* Start latency is measured for sandboxes this process starts, not adopted ones. */
    e->seen_mono_ms =
        lss_sandbox_runtime_get (self->rt, ident.id, &st) == 0 ? 0 : lss_time_mono_ms ();
    e->seen = true;
    e->wd = -1;
    char serr[LSS_SANDBOX_ERR_SIZE] = "";
    lss_sandbox_spec_t *spec =
        node_pod_spec (pod, ident.id, self->agent_path, serr, sizeof serr);
    if (!spec) {
        e->invalid = true;
        snprintf (e->invalid_msg, sizeof e->invalid_msg, "%s", serr);
        lss_log_warn ("pod invalid", "{s:s, s:s}", "pod", ident.key, "error", serr);
    }
    lss_sandbox_spec_destroy (&spec);
    zhashx_insert (self->by_key, ident.key, e);
    zhashx_insert (self->by_id, ident.id, e);
    s_sync (self, e);
}

static void s_pod_deleted (node_server_t *self, json_t *pod)
{
    node_pod_ident_t ident;
    if (node_pod_ident (pod, &ident, NULL, 0))
        return;
    node_entry_t *e = zhashx_lookup (self->by_key, ident.key);
    if (e && strcmp (e->ident.uid, ident.uid) == 0)
        s_forget (self, e, "pod deleted");
}

/* Lists every Pod (all pages), reconciles the table with it, stops sandboxes no Pod
 * claims and opens the watch from the list's resourceVersion. Returns 0 or -1. */
static int s_relist (node_server_t *self)
{
    char err[LSS_STORE_ERR_SIZE] = "";
    char rv[64] = "";
    char *cont = NULL;
    json_t *pages = json_array ();
    int rc = 0;
    do {
        json_t *page = NULL;
        rc = lss_store_list (self->store, "Pod", NULL, NULL, LSS_STORE_LIST_MAX_LIMIT, cont,
                             &page, err, sizeof err);
        free (cont);
        cont = NULL;
        if (rc != LSS_STORE_OK)
            break;
        if (!rv[0])
            snprintf (rv, sizeof rv, "%s",
                      lss_obj_str (page, "metadata.resourceVersion") ?: "");
        const char *next = lss_obj_str (page, "metadata.continue");
        cont = next && *next ? strdup (next) : NULL;
        json_array_append_new (pages, page);
    } while (cont);
    if (rc != LSS_STORE_OK) {
        json_decref (pages);
        lss_log_warn ("pod list failed", "{s:s}", "error", err);
        return -1;
    }
    for (node_entry_t *e = zhashx_first (self->by_key); e; e = zhashx_next (self->by_key))
        e->seen = false;
    size_t i, j;
    json_t *page, *pod;
    json_array_foreach (pages, i, page)
    {
        json_array_foreach (json_object_get (page, "items"), j, pod) s_pod_seen (self, pod);
    }
    json_decref (pages);
    /* Pods gone while we were not watching. */
    zlistx_t *gone = zlistx_new ();
    for (node_entry_t *e = zhashx_first (self->by_key); e; e = zhashx_next (self->by_key))
        if (!e->seen)
            zlistx_add_end (gone, e);
    for (node_entry_t *e = zlistx_first (gone); e; e = zlistx_next (gone))
        s_forget (self, e, "pod gone (relist)");
    zlistx_destroy (&gone);
    /* Sandboxes no Pod claims (deleted while we were down, or never ours). */
    json_t *list = lss_sandbox_runtime_list (self->rt);
    json_t *item;
    json_array_foreach (list, i, item)
    {
        const char *id = json_string_value (json_object_get (item, "id"));
        if (id && !zhashx_lookup (self->by_id, id))
            s_stop_sandbox (self, id, "no pod");
    }
    json_decref (list);
    int code = 0;
    lss_store_watch_destroy (&self->watch);
    self->watch = lss_store_watch_new (self->store, "Pod", NULL, rv, &code, err, sizeof err);
    if (!self->watch) {
        lss_log_warn ("pod watch failed", "{s:s, s:i}", "error", err, "code", code);
        return -1;
    }
    lss_log_info ("pods listed", "{s:s, s:i, s:i}", "resourceVersion", rv, "pods",
                  (int)zhashx_size (self->by_key), "sandboxes",
                  (int)lss_sandbox_runtime_count (self->rt));
    return 0;
}

/* Connects, lists, or re-watches as needed (with backoff). */
static void s_ensure_watch (node_server_t *self, lss_service_t *svc)
{
    if (self->watch || lss_time_mono_ms () < self->retry_at_ms)
        return;
    char err[LSS_STORE_ERR_SIZE] = "";
    int ok = -1;
    if (!self->store) {
        self->store = lss_store_open (self->cfg, self->dsn, err, sizeof err);
        if (!self->store)
            lss_log_warn ("store unavailable", "{s:s}", "error", err);
    }
    if (self->store && !self->need_relist) {
        int code = 0;
        self->watch = lss_store_watch_new (self->store, "Pod", NULL, self->last_rv, &code, err,
                                           sizeof err);
        if (self->watch) {
            ok = 0;
            lss_log_info ("pod watch resumed", "{s:s}", "resourceVersion", self->last_rv);
        } else if (code == LSS_STORE_GONE)
            self->need_relist = true;
        else
            lss_log_warn ("pod watch failed", "{s:s}", "error", err);
    }
    if (self->store && self->need_relist) {
        ok = s_relist (self);
        if (ok == 0) {
            self->need_relist = false;
            if (!self->listed) {
                self->listed = true;
                lss_service_set_ready (svc, true, NULL);
            }
        }
    }
    if (ok == 0)
        self->backoff_ms = NODE_BACKOFF_MIN_MS;
    else {
        self->retry_at_ms = lss_time_mono_ms () + self->backoff_ms;
        self->backoff_ms = self->backoff_ms * 2 > NODE_BACKOFF_MAX_MS ? NODE_BACKOFF_MAX_MS
                                                                      : self->backoff_ms * 2;
    }
}

/* Takes pending watch events (bounded per turn). */
static void s_drain_watch (node_server_t *self)
{
    for (int n = 0; self->watch && n < NODE_EVENTS_PER_TURN; n++) {
        lss_store_event_t ev = {0};
        int rc = lss_store_watch_next (self->watch, &ev);
        if (rc == 0)
            return;
        if (rc == 1) {
            if (ev.type == LSS_STORE_DELETED)
                s_pod_deleted (self, ev.object);
            else
                s_pod_seen (self, ev.object);
            json_decref (ev.object);
            continue;
        }
        snprintf (self->last_rv, sizeof self->last_rv, "%s",
                  lss_store_watch_rv (self->watch) ?: "");
        lss_store_watch_destroy (&self->watch);
        if (rc == LSS_STORE_GONE) {
            lss_log_warn ("pod watch expired: relisting", NULL);
            self->need_relist = true;
            self->retry_at_ms = 0;
        } else {
            lss_log_warn ("pod watch lost: re-watching", "{s:s}", "resourceVersion",
                          self->last_rv);
            self->retry_at_ms = lss_time_mono_ms () + self->backoff_ms;
        }
        return;
    }
}

/* Sandboxes that ended by themselves. */
static void s_drain_runtime (node_server_t *self)
{
    lss_sandbox_status_t st;
    for (int n = 0; n < LSS_SANDBOX_RUNTIME_MAX; n++) {
        if (lss_sandbox_runtime_poll (self->rt, 0, &st) != 1)
            return;
        node_entry_t *e = zhashx_lookup (self->by_id, st.id);
        lss_log_info ("sandbox ended", "{s:s, s:s, s:s, s:i, s:i}", "id", st.id, "pod",
                      e ? e->ident.key : "", "reason", st.reason, "exitCode", st.exit_code,
                      "signal", st.signal);
        if (e)
            s_sync (self, e);
        else if (self->listed)
            s_stop_sandbox (self, st.id, "no pod");
    }
}

/* Agent sockets that appeared. */
static void s_drain_inotify (node_server_t *self)
{
    char buf[8192] __attribute__ ((aligned (__alignof__(struct inotify_event))));
    for (;;) {
        ssize_t n = read (self->ino_fd, buf, sizeof buf);
        if (n <= 0)
            return;
        for (char *p = buf; p < buf + n;) {
            struct inotify_event *ev = (struct inotify_event *)p;
            p += sizeof *ev + ev->len;
            if (ev->len == 0 || strcmp (ev->name, "agent.sock") != 0)
                continue;
            for (node_entry_t *e = zhashx_first (self->by_key); e;
                 e = zhashx_next (self->by_key))
                if (e->wd == ev->wd) {
                    s_sync (self, e);
                    break;
                }
        }
    }
}

/* Every NODE_TICK_MS: failed writes again, readiness by stat, gauges. */
static void s_tick (node_server_t *self)
{
    zlistx_t *todo = zlistx_new (); /* keys copied: a sync may free entries */
    zlistx_set_duplicator (todo, (zlistx_duplicator_fn *)strdup);
    zlistx_set_destructor (todo, (zlistx_destructor_fn *)zstr_free);
    for (node_entry_t *e = zhashx_first (self->by_key); e; e = zhashx_next (self->by_key))
        if (e->dirty || (e->started && !e->ready && !node_pod_terminal (e->pod)))
            zlistx_add_end (todo, e->ident.key);
    for (char *key = zlistx_first (todo); key; key = zlistx_next (todo)) {
        node_entry_t *e = zhashx_lookup (self->by_key, key);
        if (e)
            s_sync (self, e);
    }
    zlistx_destroy (&todo);
    lss_metric_set (self->m_running, (double)lss_sandbox_runtime_count (self->rt));
}

/* ------------------------------------------------------------------ lifecycle */

node_server_t *node_server_new (const node_server_conf_t *conf)
{
    node_server_t *self = calloc (1, sizeof *self);
    if (!self)
        return NULL;
    snprintf (self->state_dir, sizeof self->state_dir, "%s", conf->state_dir);
    snprintf (self->agent_path, sizeof self->agent_path, "%s", conf->agent_path);
    snprintf (self->node_name, sizeof self->node_name, "%s", conf->node_name);
    snprintf (self->dsn, sizeof self->dsn, "%s", conf->dsn);
    self->cfg = conf->cfg;
    self->max_sandboxes = conf->max_sandboxes;
    self->need_relist = true;
    self->backoff_ms = NODE_BACKOFF_MIN_MS;
    self->ino_fd = inotify_init1 (IN_NONBLOCK | IN_CLOEXEC);
    self->by_key = zhashx_new ();
    self->by_id = zhashx_new ();
    self->queue = zlistx_new ();
    if (!self->by_key || !self->by_id || !self->queue)
        goto fail;
    zhashx_set_destructor (self->by_key, s_entry_free);
    zlistx_set_duplicator (self->queue, (zlistx_duplicator_fn *)strdup);
    zlistx_set_destructor (self->queue, (zlistx_destructor_fn *)zstr_free);
    zlistx_set_comparator (self->queue, (zlistx_comparator_fn *)strcmp);
    self->rt = lss_sandbox_runtime_new (self->state_dir, NULL, NULL);
    if (!self->rt)
        goto fail;
    if (geteuid () == 0 &&
        lss_sandbox_runtime_set_uid_range (self->rt, conf->uid_base, NODE_UID_COUNT)) {
        lss_log_error ("bad sandbox uid range", "{s:i}", "uid_base", (int)conf->uid_base);
        goto fail;
    }
    int adopted = lss_sandbox_runtime_adopt (self->rt);
    if (adopted < 0) {
        lss_log_error ("sandbox adoption failed", "{s:s}", "state_dir", self->state_dir);
        goto fail;
    }
    lss_log_info ("sandboxes adopted", "{s:i}", "count", adopted);
    s_metrics_init (self);
    return self;
fail:
    node_server_destroy (&self);
    return NULL;
}

void node_server_destroy (node_server_t **self_p)
{
    node_server_t *self = *self_p;
    if (!self)
        return;
    lss_store_watch_destroy (&self->watch);
    lss_store_destroy (&self->store);
    lss_sandbox_runtime_destroy (&self->rt); /* sandboxes keep running */
    zlistx_destroy (&self->queue);
    zhashx_destroy (&self->by_id);
    zhashx_destroy (&self->by_key);
    if (self->ino_fd >= 0)
        close (self->ino_fd);
    free (self);
    *self_p = NULL;
}

int node_server_run (node_server_t *self, lss_service_t *svc)
{
    lss_service_set_ready (svc, false, "listing pods");
    bool busy = false;
    while (!lss_service_stopping (svc)) {
        lss_service_heartbeat (svc);
        s_ensure_watch (self, svc);
        int64_t now = lss_time_mono_ms ();
        int timeout = busy ? 0 : (int)(self->next_tick_ms > now ? self->next_tick_ms - now : 0);
        if (!self->watch && self->retry_at_ms > now && self->retry_at_ms - now < timeout)
            timeout = (int)(self->retry_at_ms - now);
        struct pollfd fds[4] = {
            {lss_service_stop_fd (svc), POLLIN, 0},
            {lss_sandbox_runtime_fd (self->rt), POLLIN, 0},
            {self->ino_fd, POLLIN, 0},
            {self->watch ? lss_store_watch_fd (self->watch) : -1, POLLIN, 0},
        };
        if (poll (fds, 4, timeout) < 0 && errno != EINTR)
            break;
        if (lss_service_stopping (svc))
            break;
        s_drain_runtime (self);
        if (self->ino_fd >= 0)
            s_drain_inotify (self);
        /* Watch readiness is only a hint: take events every turn. */
        s_drain_watch (self);
        if (lss_time_mono_ms () >= self->next_tick_ms) {
            s_tick (self);
            self->next_tick_ms = lss_time_mono_ms () + NODE_TICK_MS;
        }
        busy = self->listed && s_start_queued (self);
    }
    lss_log_info ("node stopping: sandboxes keep running", "{s:i}", "sandboxes",
                  (int)lss_sandbox_runtime_count (self->rt));
    return 0;
}
