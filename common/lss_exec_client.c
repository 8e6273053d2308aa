/*  lss_exec_client — synchronous requester of the executor. See lss_exec_client.h.
 */
#include "lss_exec_client.h"

#include <errno.h>
#include <string.h>

struct _lss_exec_client_t {
    zsock_t *sock;
    uint64_t seq;
};

lss_exec_client_t *lss_exec_client_new (const char *endpoints, const lss_bus_opts_t *opts)
{
    lss_bus_opts_t o;
    if (opts)
        o = *opts;
    else
        lss_bus_opts_default (&o);
    if (o.max_message < (8 << 20))
        o.max_message = 8 << 20;
    o.linger_ms = 0; /* whatever is unsent when the client goes is moot */
    lss_exec_client_t *self = calloc (1, sizeof *self);
    if (!self)
        return NULL;
    char ep[1024];
    if (!endpoints || lss_fmt (ep, sizeof ep, ">%s", endpoints) ||
        !(self->sock = lss_bus_socket_new (ZMQ_DEALER, ep, &o))) {
        free (self);
        return NULL;
    }
    return self;
}

void lss_exec_client_destroy (lss_exec_client_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    zsock_destroy (&(*self_p)->sock);
    free (*self_p);
    *self_p = NULL;
}

static int s_send (lss_exec_client_t *self, lss_msg_kind_t kind, const void *body, char *id_out)
{
    lss_envelope_t env;
    if (lss_bus_envelope_init (&env, kind, NULL, "exec-client", ++self->seq, NULL))
        return -1;
    if (id_out)
        memcpy (id_out, env.id, sizeof env.id);
    return lss_bus_send (self->sock, NULL, 0, NULL, &env, kind, body);
}

/* Receives one message within wait_ms: 1 with kind/body, 0 if none came, -1 on error. */
static int s_recv (lss_exec_client_t *self, int64_t wait_ms, lss_msg_kind_t *kind, void **body)
{
    *body = NULL;
    *kind = LSS_MSG_NONE;
    zmq_pollitem_t item = {zsock_resolve (self->sock), 0, ZMQ_POLLIN, 0};
    if (!(zsock_events (self->sock) & ZMQ_POLLIN)) {
        int rc = zmq_poll (&item, 1, (long)(wait_ms < 0 ? 0 : wait_ms));
        if (rc < 0)
            return errno == EINTR ? 0 : -1;
        if (rc == 0)
            return 0;
    }
    lss_envelope_t env;
    char err[256];
    int rc = lss_bus_recv (self->sock, NULL, NULL, 0, &env, kind, body, err, sizeof err);
    if (rc == -2)
        return 0; /* malformed: dropped */
    return rc == 0 ? 1 : -1;
}

int lss_exec_client_stdin (lss_exec_client_t *self, const char *exec_id, const void *data,
                           size_t len, bool eof)
{
    lss_exec_stdin_t m = {
        .exec_id = (char *)exec_id, .data = {(uint8_t *)data, len}, .eof = eof};
    return s_send (self, LSS_MSG_exec_stdin, &m, NULL);
}

static void s_fail (lss_exec_result_t *r, const char *code, const char *message)
{
    snprintf (r->error_code, sizeof r->error_code, "%s", code);
    snprintf (r->error, sizeof r->error, "%s", message);
}

int lss_exec_client_run (lss_exec_client_t *self, const lss_exec_start_t *req,
                         const lss_exec_client_opts_t *opts, lss_exec_result_t *r)
{
    lss_exec_client_opts_t o = opts ? *opts : (lss_exec_client_opts_t){0};
    if (o.timeout_ms <= 0)
        o.timeout_ms = LSS_EXEC_CLIENT_TIMEOUT_MS;
    if (o.window <= 0)
        o.window = LSS_EXEC_CLIENT_WINDOW;
    if (o.ping_ms <= 0)
        o.ping_ms = LSS_EXEC_CLIENT_PING_MS;
    if (o.silence_ms <= 0)
        o.silence_ms = LSS_EXEC_CLIENT_SILENCE_MS;
    if (o.max_gather == 0)
        o.max_gather = LSS_EXEC_CLIENT_GATHER_MAX;
    memset (r, 0, sizeof *r);
    lss_buf_init (&r->out, o.max_gather);
    lss_buf_init (&r->err, o.max_gather);

    char exec_id[LSS_PROTO_ID_MAX + 1], start_ref[LSS_PROTO_ID_MAX + 1];
    if (req->exec_id && *req->exec_id)
        snprintf (exec_id, sizeof exec_id, "%s", req->exec_id);
    else
        lss_bus_next_id (exec_id);
    lss_exec_start_t start = *req;
    start.exec_id = exec_id;
    start.credit = o.window;
    if (s_send (self, LSS_MSG_exec_start, &start, start_ref)) {
        s_fail (r, "send_failed", zmq_strerror (errno));
        return -1;
    }
    int64_t now = lss_time_mono_ms (), deadline = now + o.timeout_ms;
    int64_t last_rx = now, last_ping = now, consumed = 0;
    bool cancel_sent = false;
    for (;;) {
        now = lss_time_mono_ms ();
        if (now >= deadline) {
            if (!cancel_sent) {
                lss_exec_cancel_t c = {.exec_id = exec_id};
                s_send (self, LSS_MSG_exec_cancel, &c, NULL);
            }
            s_fail (r, "timeout", "the execution did not end in time (cancelled)");
            return -1;
        }
        if (now - last_rx > o.silence_ms) {
            s_fail (r, "executor_unavailable", "the executor stopped answering");
            return -1;
        }
        if (now - last_ping >= o.ping_ms) {
            lss_agent_ping_t ping = {.nonce = now};
            s_send (self, LSS_MSG_agent_ping, &ping, NULL);
            last_ping = now;
        }
        int64_t wait = deadline - now;
        if (last_ping + o.ping_ms - now < wait)
            wait = last_ping + o.ping_ms - now;
        if (last_rx + o.silence_ms + 1 - now < wait)
            wait = last_rx + o.silence_ms + 1 - now;
        lss_msg_kind_t kind;
        void *body;
        int rc = s_recv (self, wait, &kind, &body);
        if (rc < 0) {
            s_fail (r, "executor_unavailable", zmq_strerror (errno));
            return -1;
        }
        if (rc == 0)
            continue;
        last_rx = lss_time_mono_ms ();
        switch (kind) {
        case LSS_MSG_exec_started: {
            lss_exec_started_t *m = body;
            if (strcmp (m->exec_id, exec_id) == 0) {
                r->pid = m->pid;
                if (o.on_started)
                    o.on_started (o.arg, self, exec_id, m->pid);
            }
            break;
        }
        case LSS_MSG_exec_output: {
            lss_exec_output_t *m = body;
            if (strcmp (m->exec_id, exec_id) != 0)
                break;
            bool is_out = strcmp (m->stream, "stdout") == 0;
            r->bytes += (int64_t)m->data.len;
            if (o.on_output) {
                if (o.on_output (o.arg, m->stream, m->data.data, m->data.len) && !cancel_sent) {
                    lss_exec_cancel_t c = {.exec_id = exec_id};
                    cancel_sent = s_send (self, LSS_MSG_exec_cancel, &c, NULL) == 0;
                }
            } else if (lss_buf_append_some (is_out ? &r->out : &r->err, m->data.data,
                                            m->data.len) < m->data.len)
                *(is_out ? &r->out_cut : &r->err_cut) = true;
            consumed += (int64_t)m->data.len;
            if (consumed >= o.window / 2) {
                lss_exec_credit_t c = {.exec_id = exec_id, .bytes = consumed};
                if (s_send (self, LSS_MSG_exec_credit, &c, NULL) == 0)
                    consumed = 0;
            }
            break;
        }
        case LSS_MSG_exec_end: {
            lss_exec_end_t *m = body;
            if (strcmp (m->exec_id, exec_id) == 0) {
                r->end = m;
                return 0;
            }
            break;
        }
        case LSS_MSG_error: {
            lss_error_t *m = body;
            if ((m->exec_id && strcmp (m->exec_id, exec_id) == 0) ||
                (m->ref && strcmp (m->ref, start_ref) == 0)) {
                s_fail (r, m->code, m->message);
                lss_proto_body_free (kind, &body);
                return -1;
            }
            break;
        }
        default:
            break;
        }
        lss_proto_body_free (kind, &body);
    }
}

void lss_exec_result_clear (lss_exec_result_t *r)
{
    if (!r)
        return;
    lss_buf_free (&r->out);
    lss_buf_free (&r->err);
    lss_proto_body_free (LSS_MSG_exec_end, (void **)&r->end);
}

static bool s_is_reply (lss_msg_kind_t kind)
{
    return kind == LSS_MSG_ok || kind == LSS_MSG_error || kind == LSS_MSG_file_entries ||
           kind == LSS_MSG_file_info || kind == LSS_MSG_file_data ||
           kind == LSS_MSG_file_written || kind == LSS_MSG_agent_usage ||
           kind == LSS_MSG_agent_pong;
}

int lss_exec_client_request (lss_exec_client_t *self, lss_msg_kind_t kind, const void *body,
                             int64_t timeout_ms, lss_msg_kind_t *reply_kind, void **reply)
{
    *reply = NULL;
    *reply_kind = LSS_MSG_NONE;
    char id[LSS_PROTO_ID_MAX + 1];
    if (s_send (self, kind, body, id))
        return -1;
    int64_t deadline = lss_time_mono_ms () + timeout_ms;
    for (;;) {
        int64_t left = deadline - lss_time_mono_ms ();
        if (left <= 0)
            return -1;
        lss_msg_kind_t k;
        void *b;
        int rc = s_recv (self, left, &k, &b);
        if (rc < 0)
            return -1;
        if (rc == 0)
            continue;
        /* every reply's first field is its ref */
        if (s_is_reply (k) && *(char **)b && strcmp (*(char **)b, id) == 0) {
            *reply_kind = k;
            *reply = b;
            return 0;
        }
        lss_proto_body_free (k, &b);
    }
}

int lss_exec_client_ping (lss_exec_client_t *self, int64_t timeout_ms)
{
    lss_agent_ping_t ping = {.nonce = 1};
    lss_msg_kind_t k;
    void *b;
    if (lss_exec_client_request (self, LSS_MSG_agent_ping, &ping, timeout_ms, &k, &b))
        return -1;
    lss_proto_body_free (k, &b);
    return k == LSS_MSG_agent_pong ? 0 : -1;
}
