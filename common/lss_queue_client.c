/*  lss_queue_client — a worker's side of the watcher's work queue. See
 *  lss_queue_client.h.
 *
 *  Design note: one DEALER with ZMQ_IMMEDIATE set, so requests only go to watchers that
 *  are connected (a dead endpoint in the list never swallows them) and round-robin
 *  across them: a request that reaches a standby is answered not_leader and the next
 *  one goes to another watcher. Replies are matched to the request by ref == id; late
 *  replies to earlier requests are dropped. When no reply comes the socket is recreated,
 *  so a reply (and a key) for a request we gave up on can never be mistaken for a new
 *  one; the key handed to it comes back to the queue when its lease lapses.
 *
 *  dns+tcp:// endpoints (lss_discovery): the socket is connected to every address found;
 *  get() looks again when bus.resolve_interval has passed (the lookup runs in the
 *  background and is picked up by a later get()) and connects / disconnects the socket's
 *  endpoints to match. A static list never touches discovery.
 */
#include "lss_queue_client.h"

#include <string.h>

#include "lss_discovery.h"
#include "lss_log.h"
#include "lss_util.h"

#define S_GRACE_MS        2000 /* beyond wait_ms before a watcher counts as silent */
#define S_NOT_LEADER_MS   100  /* pause after a not_leader answer */
#define S_DONE_TIMEOUT_MS 5000
#define S_QUEUE_NAME_MAX  32
#define S_MESSAGE_MAX     1024 /* queue.done message field */
#define S_RESOLVE_WAIT_MS 2000 /* first lookup of dns+ endpoints */

struct _lss_queue_client_t {
    zsock_t *sock;
    char *endpoints;
    char queue[S_QUEUE_NAME_MAX + 1];
    char worker[LSS_WORKQUEUE_WORKER_MAX + 1];
    lss_bus_opts_t opts;
    uint64_t seq;
    lss_discovery_t *disc; /* dns+ endpoints; NULL for a static list */
    lss_epset_t *conn;     /* what sock is connected to (dns+ only) */
};

static zsock_t *s_socket (lss_queue_client_t *self)
{
    zsock_t *sock = lss_bus_socket_new (ZMQ_DEALER, NULL, &self->opts);
    if (!sock)
        return NULL;
    zsock_set_immediate (sock, 1);
    if (self->disc) {
        lss_epset_destroy (&self->conn); /* a fresh socket is connected to nothing */
        if (lss_discovery_sync (sock, lss_discovery_set (self->disc), &self->conn) < 0)
            zsock_destroy (&sock);
        return sock;
    }
    if (zsock_attach (sock, self->endpoints, false) != 0) {
        lss_log_error ("queue client: cannot connect", "{s:s, s:s}", "endpoints",
                       self->endpoints, "error", zmq_strerror (zmq_errno ()));
        zsock_destroy (&sock);
    }
    return sock;
}

lss_queue_client_t *lss_queue_client_new (const char *endpoints, const char *queue,
                                          const char *worker, const lss_bus_opts_t *opts)
{
    if (!endpoints || !*endpoints || !queue || !*queue || strlen (queue) > S_QUEUE_NAME_MAX ||
        !worker || !*worker || strlen (worker) > LSS_WORKQUEUE_WORKER_MAX) {
        lss_log_error ("queue client: bad argument", NULL);
        return NULL;
    }
    lss_queue_client_t *self = calloc (1, sizeof *self);
    if (!self)
        return NULL;
    self->endpoints = strdup (endpoints);
    snprintf (self->queue, sizeof self->queue, "%s", queue);
    snprintf (self->worker, sizeof self->worker, "%s", worker);
    if (opts)
        self->opts = *opts;
    else
        lss_bus_opts_default (&self->opts);
    if (self->endpoints && lss_discovery_is_dynamic (self->endpoints)) {
        char err[256];
        self->disc = lss_discovery_new (self->endpoints, self->opts.resolve_interval_ms,
                                        "queue endpoints", err, sizeof err);
        if (!self->disc) {
            lss_log_error ("queue client: bad endpoint list", "{s:s}", "error", err);
            lss_queue_client_destroy (&self);
            return NULL;
        }
        lss_discovery_resolve_now (self->disc, S_RESOLVE_WAIT_MS);
    }
    if (self->endpoints)
        self->sock = s_socket (self);
    if (!self->sock) {
        lss_queue_client_destroy (&self);
        return NULL;
    }
    return self;
}

void lss_queue_client_destroy (lss_queue_client_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    lss_queue_client_t *self = *self_p;
    zsock_destroy (&self->sock);
    lss_discovery_destroy (&self->disc);
    lss_epset_destroy (&self->conn);
    free (self->endpoints);
    free (self);
    *self_p = NULL;
}

zsock_t *lss_queue_client_sock (lss_queue_client_t *self)
{
    return self->sock;
}

/*  Drops the socket and any reply still on its way; -1 if a new one cannot be made. */
static int s_reset (lss_queue_client_t *self)
{
    zsock_destroy (&self->sock);
    self->sock = s_socket (self);
    return self->sock ? 0 : -1;
}

/*  Waits for the socket to be readable (events ZMQ_POLLIN) or writable (ZMQ_POLLOUT)
 *  until deadline. Returns 1, 0 on timeout, -1 when interrupted. */
static int s_wait (lss_queue_client_t *self, short events, int64_t deadline)
{
    for (;;) {
        int64_t left = deadline - lss_time_mono_ms ();
        if (left < 0)
            left = 0;
        zmq_pollitem_t item = {zsock_resolve (self->sock), 0, events, 0};
        int rc = zmq_poll (&item, 1, (long)left);
        if (rc > 0)
            return 1;
        if (rc < 0)
            return zmq_errno () == EINTR ? -1 : 0;
        if (left == 0)
            return 0;
    }
}

/*  Sends a request (kind, body) with a fresh id into id. Returns 0, 0 with id "" if no
 *  watcher could take it before deadline, -1 when interrupted. */
static int s_request (lss_queue_client_t *self, lss_msg_kind_t kind, const void *body,
                      char id[LSS_PROTO_ID_MAX + 1], int64_t deadline)
{
    lss_envelope_t env;
    id[0] = '\0';
    if (lss_bus_envelope_init (&env, kind, NULL, self->worker, ++self->seq, NULL) != 0)
        return 0;
    for (;;) {
        int w = s_wait (self, ZMQ_POLLOUT, deadline);
        if (w < 0)
            return -1;
        if (w == 0)
            return 0;
        if (lss_bus_send (self->sock, NULL, 0, NULL, &env, kind, body) == 0) {
            memcpy (id, env.id, sizeof env.id);
            return 0;
        }
        if (zmq_errno () != EAGAIN)
            return 0;
    }
}

/*  Waits until deadline for the reply to id. Returns 1 with *kind / *body (caller frees),
 *  0 on timeout, -1 when interrupted. */
static int s_reply (lss_queue_client_t *self, const char *id, int64_t deadline,
                    lss_msg_kind_t *kind, void **body)
{
    for (;;) {
        int w = s_wait (self, ZMQ_POLLIN, deadline);
        if (w <= 0)
            return w;
        lss_envelope_t env;
        char err[256] = "";
        int rc = lss_bus_recv (self->sock, NULL, NULL, 0, &env, kind, body, err, sizeof err);
        if (rc == -1)
            return -1;
        if (rc == -2) {
            lss_log_warn ("queue client: malformed reply", "{s:s}", "error", err);
            continue;
        }
        const char *ref = NULL;
        if (*kind == LSS_MSG_queue_item)
            ref = ((lss_queue_item_t *)*body)->ref;
        else if (*kind == LSS_MSG_queue_empty)
            ref = ((lss_queue_empty_t *)*body)->ref;
        else if (*kind == LSS_MSG_ok)
            ref = ((lss_ok_t *)*body)->ref;
        else if (*kind == LSS_MSG_error)
            ref = ((lss_error_t *)*body)->ref;
        if (ref && strcmp (ref, id) == 0)
            return 1;
        lss_proto_body_free (*kind, body); /* a late reply to an abandoned request */
    }
}

static bool s_is_error (lss_msg_kind_t kind, const void *body, const char *code)
{
    return kind == LSS_MSG_error && ((const lss_error_t *)body)->code &&
           strcmp (((const lss_error_t *)body)->code, code) == 0;
}

int lss_queue_client_get (lss_queue_client_t *self, int wait_ms, char *key, size_t size)
{
    if (!self || !key || size < LSS_WORKQUEUE_KEY_MAX + 1) {
        lss_log_error ("queue client: key buffer too small", NULL);
        return -1;
    }
    key[0] = '\0';
    if (wait_ms < 0)
        wait_ms = 0;
    if (wait_ms > 30000)
        wait_ms = 30000;
    if (self->disc && lss_discovery_poll (self->disc, lss_time_mono_ms ()))
        lss_discovery_sync (self->sock, lss_discovery_set (self->disc), &self->conn);
    int64_t deadline = lss_time_mono_ms () + wait_ms + S_GRACE_MS;
    lss_queue_get_t req = {.queue = self->queue, .worker = self->worker, .wait_ms = wait_ms};
    char id[LSS_PROTO_ID_MAX + 1];
    if (s_request (self, LSS_MSG_queue_get, &req, id, deadline) < 0)
        return 0;
    lss_msg_kind_t kind = LSS_MSG_NONE;
    void *body = NULL;
    int rc = id[0] ? s_reply (self, id, deadline, &kind, &body) : 0;
    if (rc < 0)
        return 0; /* interrupted: the caller is stopping */
    if (rc == 0) {
        lss_log_warn ("queue client: no watcher answered", "{s:s, s:s}", "endpoints",
                      self->endpoints, "queue", self->queue);
        s_reset (self);
        return -1;
    }
    int result = 0;
    if (kind == LSS_MSG_queue_item) {
        const lss_queue_item_t *item = body;
        size_t len = item->key ? strlen (item->key) : 0;
        if (len > 0 && len < size) {
            memcpy (key, item->key, len + 1);
            result = 1;
        }
    } else if (s_is_error (kind, body, "not_leader")) {
        zclock_sleep (S_NOT_LEADER_MS);
    } else if (kind == LSS_MSG_error) {
        const lss_error_t *e = body;
        lss_log_warn ("queue client: get refused", "{s:s, s:s}", "code", e->code ? e->code : "",
                      "message", e->message ? e->message : "");
    }
    lss_proto_body_free (kind, &body);
    return result;
}

int lss_queue_client_done (lss_queue_client_t *self, const char *key, const char *result,
                           int64_t after_ms, const char *message, int timeout_ms)
{
    if (!self || !key || !*key || strlen (key) > LSS_WORKQUEUE_KEY_MAX || !result ||
        strlen (result) > 16)
        return -1;
    if (timeout_ms <= 0)
        timeout_ms = S_DONE_TIMEOUT_MS;
    /* the message field is bounded: cut it on a UTF-8 character boundary */
    char msg[S_MESSAGE_MAX + 1] = "";
    if (message) {
        size_t len = strlen (message);
        if (len > S_MESSAGE_MAX) {
            len = S_MESSAGE_MAX;
            while (len > 0 && ((unsigned char)message[len] & 0xC0) == 0x80)
                len--;
        }
        memcpy (msg, message, len);
        msg[len] = '\0';
    }
    lss_queue_done_t req = {.queue = self->queue,
                            .worker = self->worker,
                            .key = (char *)key,
                            .result = (char *)result,
                            .after_ms = after_ms,
                            .message = msg[0] ? msg : NULL};
    int64_t deadline = lss_time_mono_ms () + timeout_ms;
    for (;;) {
        char id[LSS_PROTO_ID_MAX + 1];
        if (s_request (self, LSS_MSG_queue_done, &req, id, deadline) < 0)
            return -1;
        lss_msg_kind_t kind = LSS_MSG_NONE;
        void *body = NULL;
        int rc = id[0] ? s_reply (self, id, deadline, &kind, &body) : 0;
        if (rc < 0)
            return -1;
        if (rc == 0) {
            lss_log_warn ("queue client: no answer to done", "{s:s, s:s}", "queue", self->queue,
                          "key", key);
            s_reset (self);
            return -1;
        }
        int out = -1;
        bool retry = false;
        if (kind == LSS_MSG_ok)
            out = 0;
        else if (s_is_error (kind, body, "not_held"))
            out = 1;
        else if (s_is_error (kind, body, "not_leader"))
            retry = true; /* a standby took it: the next request goes to another watcher */
        else if (kind == LSS_MSG_error)
            lss_log_warn ("queue client: done refused", "{s:s, s:s}", "code",
                          ((lss_error_t *)body)->code, "message",
                          ((lss_error_t *)body)->message ? ((lss_error_t *)body)->message : "");
        lss_proto_body_free (kind, &body);
        if (!retry)
            return out;
        if (lss_time_mono_ms () + S_NOT_LEADER_MS >= deadline)
            return -1;
        zclock_sleep (S_NOT_LEADER_MS);
    }
}
