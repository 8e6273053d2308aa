/*  watcher_server — the work queue over a ROUTER. See watcher_server.h.
 *
 *  Design note: held queue.get requests ("waiters") sit in a fixed array per queue in
 *  arrival order (at most max_waiters; removal is a memmove of at most that many small
 *  structs). A worker has at most one waiter per queue: a new queue.get from the same
 *  worker replaces the old one (the client gave up on it and recreated its socket, so
 *  the old route is dead and a key sent there would sit until the lease lapses).
 *  A key handed out whose reply cannot be sent (peer gone, HWM) is queued again at once.
 */
#include "watcher_server.h"

#include <string.h>

#include "lss_bus.h"
#include "lss_log.h"
#include "lss_proto.h"

static const char *const s_names[WATCHER_QUEUE_COUNT] = {"sandbox", "warmpool"};

typedef struct {
    zframe_t *route;
    char ref[LSS_PROTO_ID_MAX + 1];
    char worker[LSS_WORKQUEUE_WORKER_MAX + 1];
    int64_t deadline_ms;
} s_waiter_t;

typedef struct {
    const char *name;
    lss_workqueue_t *wq;
    s_waiter_t *waiters;
    size_t count;
} s_queue_t;

struct _watcher_server_t {
    zsock_t *router; /* borrowed */
    char src[LSS_PROTO_SRC_MAX + 1];
    uint64_t seq;
    bool leader;
    lss_workqueue_opts_t opts;
    size_t max_waiters;
    s_queue_t queues[WATCHER_QUEUE_COUNT];
};

watcher_server_t *watcher_server_new (zsock_t *router, const char *src,
                                      const lss_workqueue_opts_t *opts, size_t max_waiters)
{
    watcher_server_t *self = calloc (1, sizeof *self);
    if (!self)
        return NULL;
    self->router = router;
    snprintf (self->src, sizeof self->src, "%s", src ? src : "watcher");
    if (opts)
        self->opts = *opts;
    else
        lss_workqueue_opts_default (&self->opts);
    self->max_waiters = max_waiters ? max_waiters : WATCHER_WAITERS_MAX;
    for (size_t i = 0; i < WATCHER_QUEUE_COUNT; i++) {
        s_queue_t *q = &self->queues[i];
        q->name = s_names[i];
        q->waiters = calloc (self->max_waiters, sizeof *q->waiters);
        q->wq = lss_workqueue_new (&self->opts);
        if (!q->waiters || !q->wq) {
            watcher_server_destroy (&self);
            return NULL;
        }
    }
    return self;
}

static void s_drop_waiter (s_queue_t *q, size_t i)
{
    zframe_destroy (&q->waiters[i].route);
    memmove (&q->waiters[i], &q->waiters[i + 1], (q->count - i - 1) * sizeof *q->waiters);
    q->count--;
}

void watcher_server_destroy (watcher_server_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    watcher_server_t *self = *self_p;
    for (size_t i = 0; i < WATCHER_QUEUE_COUNT; i++) {
        s_queue_t *q = &self->queues[i];
        while (q->waiters && q->count)
            s_drop_waiter (q, q->count - 1);
        free (q->waiters);
        lss_workqueue_destroy (&q->wq);
    }
    free (self);
    *self_p = NULL;
}

static s_queue_t *s_queue (watcher_server_t *self, const char *name)
{
    for (size_t i = 0; name && i < WATCHER_QUEUE_COUNT; i++)
        if (strcmp (self->queues[i].name, name) == 0)
            return &self->queues[i];
    return NULL;
}

lss_workqueue_t *watcher_server_queue (watcher_server_t *self, const char *name)
{
    s_queue_t *q = s_queue (self, name);
    return q ? q->wq : NULL;
}

size_t watcher_server_held (const watcher_server_t *self, const char *name)
{
    s_queue_t *q = s_queue ((watcher_server_t *)self, name);
    return q ? q->count : 0;
}

bool watcher_server_is_leader (const watcher_server_t *self)
{
    return self->leader;
}

//  --------------------------------------------------------------------------
//  Replies

static int s_send (watcher_server_t *self, zframe_t *route, lss_msg_kind_t kind,
                   const void *body)
{
    lss_envelope_t env;
    if (lss_bus_envelope_init (&env, kind, NULL, self->src, ++self->seq, NULL) != 0)
        return -1;
    int rc = lss_bus_send (self->router, zframe_data (route), zframe_size (route), NULL, &env,
                           kind, body);
    if (rc != 0)
        lss_log_debug ("reply not sent", "{s:s, s:s}", "type", lss_proto_type_name (kind),
                       "error", zmq_strerror (zmq_errno ()));
    return rc;
}

static void s_error (watcher_server_t *self, zframe_t *route, const char *ref, const char *code,
                     const char *message)
{
    lss_error_t body = {.ref = ref && *ref ? (char *)ref : NULL,
                        .code = (char *)code,
                        .message = (char *)message};
    s_send (self, route, LSS_MSG_error, &body);
}

static void s_empty (watcher_server_t *self, zframe_t *route, const char *ref)
{
    lss_queue_empty_t body = {.ref = (char *)ref};
    s_send (self, route, LSS_MSG_queue_empty, &body);
}

/*  Hands key (now held by worker) over; if the reply cannot be sent the key is put back
 *  at once instead of waiting for the lease. */
static void s_item (watcher_server_t *self, s_queue_t *q, zframe_t *route, const char *ref,
                    const char *worker, const char *key, int64_t now_ms)
{
    lss_queue_item_t body = {.ref = (char *)ref,
                             .queue = (char *)q->name,
                             .key = (char *)key,
                             .failures = lss_workqueue_failures (q->wq, key)};
    if (s_send (self, route, LSS_MSG_queue_item, &body) != 0) {
        lss_workqueue_requeue_after (q->wq, key, worker, 0, now_ms);
        lss_log_info ("key handed back: reply undeliverable", "{s:s, s:s, s:s}", "queue",
                      q->name, "key", key, "worker", worker);
        return;
    }
    lss_log_debug ("key handed out", "{s:s, s:s, s:s}", "queue", q->name, "key", key, "worker",
                   worker);
}

//  --------------------------------------------------------------------------
//  Leadership and keys

void watcher_server_set_leader (watcher_server_t *self, bool leader, int64_t now_ms)
{
    (void)now_ms;
    if (self->leader == leader)
        return;
    self->leader = leader;
    for (size_t i = 0; i < WATCHER_QUEUE_COUNT; i++) {
        s_queue_t *q = &self->queues[i];
        while (q->count) {
            s_error (self, q->waiters[0].route, q->waiters[0].ref, "not_leader",
                     "this watcher is not the leader");
            s_drop_waiter (q, 0);
        }
        /* a new leader starts clean: the caller resyncs every key; a standby keeps none */
        lss_workqueue_t *fresh = lss_workqueue_new (&self->opts);
        if (fresh) {
            lss_workqueue_destroy (&q->wq);
            q->wq = fresh;
        }
    }
}

int watcher_server_add (watcher_server_t *self, const char *queue, const char *key,
                        int64_t now_ms)
{
    s_queue_t *q = s_queue (self, queue);
    if (!q)
        return -1;
    if (!self->leader)
        return 0;
    int rc = lss_workqueue_add (q->wq, key, now_ms);
    if (rc != 0)
        lss_log_warn ("key not queued (invalid or queue full)", "{s:s, s:s}", "queue", q->name,
                      "key", key ? key : "");
    return rc;
}

int watcher_server_add_after (watcher_server_t *self, const char *queue, const char *key,
                              int64_t delay_ms, int64_t now_ms)
{
    s_queue_t *q = s_queue (self, queue);
    if (!q)
        return -1;
    if (!self->leader)
        return 0;
    int rc = lss_workqueue_add_after (q->wq, key, delay_ms, now_ms);
    if (rc != 0)
        lss_log_warn ("key not queued (invalid or queue full)", "{s:s, s:s}", "queue", q->name,
                      "key", key ? key : "");
    return rc;
}

//  --------------------------------------------------------------------------
//  Requests

static void s_touch (watcher_server_t *self, const char *worker, int64_t now_ms)
{
    for (size_t i = 0; i < WATCHER_QUEUE_COUNT; i++)
        lss_workqueue_touch (self->queues[i].wq, worker, now_ms);
}

static bool s_valid_worker (const char *worker)
{
    return worker && *worker && strlen (worker) <= LSS_WORKQUEUE_WORKER_MAX;
}

static void s_on_get (watcher_server_t *self, zframe_t *route, const char *ref,
                      const lss_queue_get_t *req, int64_t now_ms)
{
    s_queue_t *q = s_queue (self, req->queue);
    if (!q) {
        s_error (self, route, ref, "invalid_request", "unknown queue");
        return;
    }
    if (!s_valid_worker (req->worker)) {
        s_error (self, route, ref, "invalid_request", "worker: missing or too long");
        return;
    }
    s_touch (self, req->worker, now_ms);
    /* a worker's earlier held request is dead: its client gave up on it */
    for (size_t i = 0; i < q->count; i++)
        if (strcmp (q->waiters[i].worker, req->worker) == 0) {
            s_drop_waiter (q, i);
            break;
        }
    char key[LSS_WORKQUEUE_KEY_MAX + 1];
    /* earlier waiters go first: only take a key now if nobody is held before us */
    if (q->count == 0 && lss_workqueue_get (q->wq, req->worker, now_ms, key, sizeof key) == 1) {
        s_item (self, q, route, ref, req->worker, key, now_ms);
        return;
    }
    int64_t wait_ms = req->wait_ms;
    if (wait_ms <= 0) {
        s_empty (self, route, ref);
        return;
    }
    if (wait_ms > WATCHER_WAIT_MAX_MS)
        wait_ms = WATCHER_WAIT_MAX_MS;
    if (q->count >= self->max_waiters) {
        s_error (self, route, ref, "limit_exceeded", "too many requests waiting on this queue");
        return;
    }
    s_waiter_t *w = &q->waiters[q->count++];
    w->route = zframe_dup (route);
    snprintf (w->ref, sizeof w->ref, "%s", ref);
    snprintf (w->worker, sizeof w->worker, "%s", req->worker);
    w->deadline_ms = now_ms + wait_ms;
}

static void s_on_done (watcher_server_t *self, zframe_t *route, const char *ref,
                       const lss_queue_done_t *req, int64_t now_ms)
{
    s_queue_t *q = s_queue (self, req->queue);
    if (!q) {
        s_error (self, route, ref, "invalid_request", "unknown queue");
        return;
    }
    if (!s_valid_worker (req->worker) || !req->key || !*req->key ||
        strlen (req->key) > LSS_WORKQUEUE_KEY_MAX) {
        s_error (self, route, ref, "invalid_request", "worker or key: missing or too long");
        return;
    }
    s_touch (self, req->worker, now_ms);
    int rc;
    const char *result = req->result ? req->result : "";
    if (strcmp (result, "done") == 0)
        rc = lss_workqueue_done (q->wq, req->key, req->worker, now_ms);
    else if (strcmp (result, "error") == 0) {
        int64_t delay = lss_workqueue_error (q->wq, req->key, req->worker, now_ms);
        rc = delay < 0 ? -1 : 0;
        if (rc == 0)
            lss_log_info ("key failed, retried after backoff", "{s:s, s:s, s:s, s:I, s:s}",
                          "queue", q->name, "key", req->key, "worker", req->worker, "delay_ms",
                          (json_int_t)delay, "message", req->message ? req->message : "");
    } else if (strcmp (result, "requeue") == 0) {
        int64_t after = req->after_ms;
        if (after < 0)
            after = 0;
        if (after > WATCHER_REQUEUE_MAX_MS)
            after = WATCHER_REQUEUE_MAX_MS;
        rc = lss_workqueue_requeue_after (q->wq, req->key, req->worker, after, now_ms);
    } else {
        s_error (self, route, ref, "invalid_request", "result: must be done, error or requeue");
        return;
    }
    if (rc != 0) {
        s_error (self, route, ref, "not_held", "the key is not held by this worker");
        return;
    }
    lss_ok_t ok = {.ref = (char *)ref};
    s_send (self, route, LSS_MSG_ok, &ok);
}

int watcher_server_handle (watcher_server_t *self, int64_t now_ms)
{
    zframe_t *route = NULL;
    lss_envelope_t env;
    lss_msg_kind_t kind;
    void *body = NULL;
    char err[256] = "";
    int rc = lss_bus_recv (self->router, &route, NULL, 0, &env, &kind, &body, err, sizeof err);
    if (rc == -1)
        return -1;
    if (rc == -2) {
        lss_log_warn ("malformed queue request", "{s:s}", "error", err);
        if (route)
            s_error (self, route, NULL, "invalid_request", err);
        zframe_destroy (&route);
        return 0;
    }
    if (!route) {
        lss_proto_body_free (kind, &body);
        return 0;
    }
    const char *ref = env.id;
    if (!self->leader)
        s_error (self, route, ref, "not_leader", "this watcher is not the leader");
    else if (!*ref)
        s_error (self, route, NULL, "invalid_request", "envelope: id missing");
    else if (kind == LSS_MSG_queue_get)
        s_on_get (self, route, ref, body, now_ms);
    else if (kind == LSS_MSG_queue_done)
        s_on_done (self, route, ref, body, now_ms);
    else
        s_error (self, route, ref, "invalid_request", "unsupported message type");
    if (body)
        lss_proto_body_free (kind, &body);
    zframe_destroy (&route);
    return 0;
}

int64_t watcher_server_tick (watcher_server_t *self, int64_t now_ms)
{
    int64_t next = -1;
    for (size_t i = 0; i < WATCHER_QUEUE_COUNT; i++) {
        s_queue_t *q = &self->queues[i];
        int64_t t = lss_workqueue_tick (q->wq, now_ms);
        bool empty = false;
        size_t w = 0;
        while (w < q->count) {
            s_waiter_t *wt = &q->waiters[w];
            char key[LSS_WORKQUEUE_KEY_MAX + 1];
            if (!empty && lss_workqueue_get (q->wq, wt->worker, now_ms, key, sizeof key) == 1) {
                s_item (self, q, wt->route, wt->ref, wt->worker, key, now_ms);
                s_drop_waiter (q, w);
                continue;
            }
            empty = true;
            if (now_ms >= wt->deadline_ms) {
                s_empty (self, wt->route, wt->ref);
                s_drop_waiter (q, w);
                continue;
            }
            int64_t left = wt->deadline_ms - now_ms;
            if (t < 0 || left < t)
                t = left;
            w++;
        }
        /* a key handed back above (undeliverable) is queued: serve it next turn */
        if (q->count && lss_workqueue_queued (q->wq))
            t = 0;
        if (t >= 0 && (next < 0 || t < next))
            next = t;
    }
    return next;
}
