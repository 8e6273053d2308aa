/*  warmpool_queue — queue.get / queue.done over one DEALER (see warmpool_queue.h).
 *
 *  Design note: one request in flight at a time; each reply must carry the id of the
 *  request it answers (ref), anything else is a late answer to an earlier request and is
 *  dropped. A watcher that stays silent makes us recreate the socket so a late reply can
 *  never be taken for the answer to a later request.
 */
#include "warmpool_queue.h"

#include <string.h>

#include "lss_log.h"
#include "lss_util.h"

struct _warmpool_queue_t {
    char *endpoints;
    char *queue;
    char *worker;
    lss_bus_opts_t opts;
    zsock_t *sock;
    uint64_t seq;
};

static int s_connect (warmpool_queue_t *self)
{
    zsock_destroy (&self->sock);
    self->sock = lss_bus_socket_new (ZMQ_DEALER, self->endpoints, &self->opts);
    return self->sock ? 0 : -1;
}

warmpool_queue_t *warmpool_queue_new (const char *endpoints, const char *queue,
                                      const char *worker, const lss_bus_opts_t *opts)
{
    if (!endpoints || !*endpoints || !queue || strlen (queue) > 32 || !worker ||
        strlen (worker) > LSS_WORKQUEUE_WORKER_MAX)
        return NULL;
    warmpool_queue_t *self = calloc (1, sizeof *self);
    if (!self)
        return NULL;
    self->endpoints = strdup (endpoints);
    self->queue = strdup (queue);
    self->worker = strdup (worker);
    if (opts)
        self->opts = *opts;
    else
        lss_bus_opts_default (&self->opts);
    if (!self->endpoints || !self->queue || !self->worker || s_connect (self) != 0) {
        warmpool_queue_destroy (&self);
        return NULL;
    }
    return self;
}

void warmpool_queue_destroy (warmpool_queue_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    warmpool_queue_t *self = *self_p;
    zsock_destroy (&self->sock);
    free (self->endpoints);
    free (self->queue);
    free (self->worker);
    free (self);
    *self_p = NULL;
}

/*  Sends body and waits up to timeout_ms for the reply that answers it. Returns 1 with
 *  *kind / *body (caller frees), 0 on timeout, -1 on send failure or interrupt. */
static int s_request (warmpool_queue_t *self, lss_msg_kind_t kind, const void *body,
                      int timeout_ms, lss_msg_kind_t *rkind, void **rbody)
{
    lss_envelope_t env;
    if (lss_bus_envelope_init (&env, kind, NULL, self->worker, ++self->seq, NULL) != 0 ||
        lss_bus_send (self->sock, NULL, 0, NULL, &env, kind, body) != 0)
        return -1;
    int64_t deadline = lss_time_mono_ms () + timeout_ms;
    for (;;) {
        int64_t left = deadline - lss_time_mono_ms ();
        if (left <= 0)
            return 0;
        zmq_pollitem_t item = {zsock_resolve (self->sock), 0, ZMQ_POLLIN, 0};
        int n = zmq_poll (&item, 1, (long)left);
        if (n < 0)
            return zsys_interrupted ? -1 : 0;
        if (n == 0)
            continue;
        lss_envelope_t renv;
        lss_msg_kind_t k = LSS_MSG_NONE;
        void *b = NULL;
        char err[128];
        if (lss_bus_recv (self->sock, NULL, NULL, 0, &renv, &k, &b, err, sizeof err) != 0)
            continue;
        const char *ref = NULL;
        if (k == LSS_MSG_queue_item)
            ref = ((lss_queue_item_t *)b)->ref;
        else if (k == LSS_MSG_queue_empty)
            ref = ((lss_queue_empty_t *)b)->ref;
        else if (k == LSS_MSG_ok)
            ref = ((lss_ok_t *)b)->ref;
        else if (k == LSS_MSG_error)
            ref = ((lss_error_t *)b)->ref;
        if (ref && strcmp (ref, env.id) == 0) {
            *rkind = k;
            *rbody = b;
            return 1;
        }
        if (b)
            lss_proto_body_free (k, &b); /* a late answer to an earlier request */
    }
}

int warmpool_queue_get (warmpool_queue_t *self, int wait_ms, char *key, size_t size)
{
    if (!self || !key || size < LSS_WORKQUEUE_KEY_MAX + 1)
        return -1;
    if (wait_ms < 0)
        wait_ms = 0;
    if (wait_ms > WARMPOOL_QUEUE_MAX_WAIT_MS)
        wait_ms = WARMPOOL_QUEUE_MAX_WAIT_MS;
    if (!self->sock && s_connect (self) != 0)
        return -1;
    lss_queue_get_t req = {.queue = self->queue, .worker = self->worker, .wait_ms = wait_ms};
    lss_msg_kind_t k = LSS_MSG_NONE;
    void *b = NULL;
    int rc =
        s_request (self, LSS_MSG_queue_get, &req, wait_ms + WARMPOOL_QUEUE_GRACE_MS, &k, &b);
    if (rc <= 0) {
        if (rc == 0)
            s_connect (self); /* drop whatever answer might still come */
        return -1;
    }
    int result = 0;
    if (k == LSS_MSG_queue_item) {
        const lss_queue_item_t *item = b;
        if (item->key && strlen (item->key) < size &&
            strlen (item->key) <= LSS_WORKQUEUE_KEY_MAX) {
            snprintf (key, size, "%s", item->key);
            result = 1;
        }
    } else if (k == LSS_MSG_error) {
        /* not_leader (a standby) or anything else: pause briefly, like the real client */
        zclock_sleep (WARMPOOL_QUEUE_PAUSE_MS < wait_ms ? WARMPOOL_QUEUE_PAUSE_MS : wait_ms);
    }
    lss_proto_body_free (k, &b);
    return result;
}

int warmpool_queue_done (warmpool_queue_t *self, const char *key, const char *result,
                         int64_t after_ms, const char *message, int timeout_ms)
{
    if (!self || !key || !result)
        return -1;
    if (timeout_ms <= 0)
        timeout_ms = 5000;
    if (!self->sock && s_connect (self) != 0)
        return -1;
    char msg[1024];
    snprintf (msg, sizeof msg, "%s", message ? message : "");
    lss_queue_done_t req = {.queue = self->queue,
                            .worker = self->worker,
                            .key = (char *)key,
                            .result = (char *)result,
                            .after_ms = after_ms,
                            .message = msg};
    /* a standby may take the request (round robin over endpoints): try a few times */
    for (int attempt = 0; attempt < 3; attempt++) {
        lss_msg_kind_t k = LSS_MSG_NONE;
        void *b = NULL;
        int rc = s_request (self, LSS_MSG_queue_done, &req, timeout_ms, &k, &b);
        if (rc <= 0) {
            if (rc == 0)
                s_connect (self);
            return -1;
        }
        int out = -1;
        bool retry = false;
        if (k == LSS_MSG_ok)
            out = 0;
        else if (k == LSS_MSG_error) {
            const char *code = ((lss_error_t *)b)->code;
            if (code && strcmp (code, "not_held") == 0)
                out = 1;
            else if (code && strcmp (code, "not_leader") == 0)
                retry = true;
        }
        lss_proto_body_free (k, &b);
        if (!retry)
            return out;
    }
    return -1;
}
