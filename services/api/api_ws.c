/*  api_ws — WebSocket session logic on the lws thread. See api_ws.h.
 *
 *  Executions of the session live in a short list (at most api.ws_max_executions).
 *  Everything a session sends to the bridge goes through the lws thread's posts in
 *  order, so the bridge always sees start before stdin and cancel of an execution.
 */
#include "api_ws.h"

#include <stdlib.h>
#include <string.h>

#include "api_bridge.h"
#include "api_valid.h"
#include "api_wsproto.h"
#include "lss_log.h"

enum { S_AUTH_PENDING, S_AUTH_OK, S_AUTH_FAILED };
enum { S_ADMITTING, S_RUNNING };

typedef struct s_exec {
    char execution_id[API_EXECUTION_ID_MAX + 1];
    uint64_t xid;
    int state;
    api_exec_start_msg_t *start; /* held until admitted */
    api_msg_t *held, *held_tail; /* stdin / cancel waiting for the start */
    size_t held_bytes;
    struct s_exec *next;
} s_exec_t;

typedef struct s_held {
    struct s_held *next;
    bool binary;
    size_t len;
    char data[];
} s_held_t;

struct _api_ws_t {
    api_ctx_t *ctx;
    uint64_t conn_id;
    char sandbox_id[API_SB_ID_SIZE];
    char *token;
    char request_id[API_REQUEST_ID_MAX + 1];
    int auth;
    api_principal_t who;
    char sandbox_ref[API_SANDBOX_REF_MAX];
    char runtime[API_RUNTIME_SIZE];
    s_held_t *held, *held_tail;
    int held_count;
    size_t held_bytes;
    api_msg_t *out, *out_tail; /* api_ws_frame_t list */
    size_t out_bytes;
    int64_t stall_since_ms;
    s_exec_t *execs;
    int nexec;
    bool closing;
    int close_status;
    const char *close_reason;
};

//  --------------------------------------------------------------------------
//  Output

static void s_queue (api_ws_t *self, api_ws_frame_t *f)
{
    if (!f)
        return;
    if (self->closing && !f->close_after) {
        api_msg_destroy (&f->msg);
        return;
    }
    f->msg.next = NULL;
    if (self->out_tail)
        self->out_tail->next = &f->msg;
    else {
        self->out = &f->msg;
        self->stall_since_ms = lss_time_mono_ms ();
    }
    self->out_tail = &f->msg;
    self->out_bytes += f->len;
    if (self->out_bytes > self->ctx->ws_send_queue && !self->closing) {
        lss_log_warn ("websocket send queue full: closing", "{s:I, s:s}", "bytes",
                      (json_int_t)self->out_bytes, "trace", self->request_id);
        self->closing = true;
        self->close_status = 1008;
        self->close_reason = "client is not reading";
    }
}

static void s_send_json (api_ws_t *self, json_t *frame)
{
    s_queue (self, api_ws_frame_json (self->conn_id, frame));
}

static void s_error (api_ws_t *self, const char *code, const char *message, const char *exec_id)
{
    s_send_json (self, api_wsproto_error (code, message, exec_id));
}

static void s_close (api_ws_t *self, int status, const char *reason)
{
    if (self->closing)
        return;
    self->closing = true;
    self->close_status = status;
    self->close_reason = reason;
}

//  --------------------------------------------------------------------------
//  Executions

static s_exec_t *s_exec_by_id (api_ws_t *self, const char *id)
{
    for (s_exec_t *e = self->execs; e; e = e->next)
        if (strcmp (e->execution_id, id) == 0)
            return e;
    return NULL;
}

static s_exec_t *s_exec_by_xid (api_ws_t *self, uint64_t xid)
{
    for (s_exec_t *e = self->execs; e; e = e->next)
        if (e->xid == xid)
            return e;
    return NULL;
}

static void s_exec_free (s_exec_t *e)
{
    if (e->start)
        api_msg_destroy (&e->start->msg);
    for (api_msg_t *m = e->held, *next; m; m = next) {
        next = m->next;
        api_msg_destroy (m);
    }
    free (e);
}

static void s_exec_remove (api_ws_t *self, s_exec_t *gone)
{
    for (s_exec_t **pp = &self->execs; *pp; pp = &(*pp)->next)
        if (*pp == gone) {
            *pp = gone->next;
            self->nexec--;
            s_exec_free (gone);
            return;
        }
}

static int s_to_bridge (api_ws_t *self, api_msg_t *m)
{
    if (api_mailbox_post_always (self->ctx->bridge_inbox, m)) {
        api_msg_destroy (m);
        return -1;
    }
    return 0;
}

int64_t api_ws_window (size_t send_queue, size_t active)
{
    /* api.ws_send_queue is at most 256 MiB: past 30 running, the shift gives 0 anyway
     * (and past 62 it would be undefined) */
    int64_t w = active > 30 ? 0 : (int64_t)(send_queue >> (active + 2));
    if (w > API_BRIDGE_WINDOW)
        w = API_BRIDGE_WINDOW;
    return w < API_BRIDGE_WINDOW_MIN ? API_BRIDGE_WINDOW_MIN : w;
}

static void s_on_execute (api_ws_t *self, api_wsf_t *f)
{
    if (s_exec_by_id (self, f->execution_id)) {
        s_error (self, "invalid_request", "an execution with this executionId is running",
                 f->execution_id);
        return;
    }
    if (self->nexec >= self->ctx->ws_max_executions) {
        s_error (self, "invalid_request", "too many executions at once on this connection",
                 f->execution_id);
        return;
    }
    api_exec_limits_t lim = {.default_timeout_ms = self->ctx->exec_default_timeout_ms,
                             .max_timeout_ms = self->ctx->exec_max_timeout_ms,
                             /* flow-controlled: the cap is not needed for memory */
                             .max_output = (int64_t)self->ctx->ws_max_output};
    json_t *fields = json_object ();
    api_exec_start_msg_t *start = api_exec_start_msg_new ();
    if (!start || !fields ||
        api_valid_execute (f->body, true, self->runtime, &lim, &start->spec, fields)) {
        json_t *err =
            api_wsproto_error ("invalid_request", "invalid execute frame", f->execution_id);
        if (err && fields)
            json_object_set_new (err, "details", json_pack ("{s:O}", "fields", fields));
        s_send_json (self, err);
        json_decref (fields);
        api_msg_destroy (start ? &start->msg : NULL);
        return;
    }
    json_decref (fields);
    s_exec_t *e = calloc (1, sizeof *e);
    api_ws_admit_t *admit = api_ws_admit_new (API_MSG_WS_ADMIT);
    if (!e || !admit) {
        free (e);
        api_msg_destroy (admit ? &admit->msg : NULL);
        api_msg_destroy (&start->msg);
        s_error (self, "execution_failed", "out of memory", f->execution_id);
        return;
    }
    e->xid = api_ctx_next_id (self->ctx);
    snprintf (e->execution_id, sizeof e->execution_id, "%s", f->execution_id);
    e->state = S_ADMITTING;
    start->xid = e->xid;
    start->ws = true;
    start->conn_id = self->conn_id;
    start->window = api_ws_window (self->ctx->ws_send_queue, (size_t)self->nexec);
    snprintf (start->execution_id, sizeof start->execution_id, "%s", f->execution_id);
    snprintf (start->sandbox_ref, sizeof start->sandbox_ref, "%s", self->sandbox_ref);
    snprintf (start->sandbox_id, sizeof start->sandbox_id, "%s", self->sandbox_id);
    snprintf (start->user_id, sizeof start->user_id, "%s", self->who.user_id);
    snprintf (start->to.request_id, sizeof start->to.request_id, "%s", self->request_id);
    e->start = start;

    admit->conn_id = self->conn_id;
    admit->xid = e->xid;
    snprintf (admit->execution_id, sizeof admit->execution_id, "%s", f->execution_id);
    admit->who = self->who;
    if (api_mailbox_post (self->ctx->jobs, &admit->msg)) {
        api_msg_destroy (&admit->msg);
        s_exec_free (e);
        s_error (self, "execution_failed", "the server is busy; retry shortly",
                 f->execution_id);
        return;
    }
    e->next = self->execs;
    self->execs = e;
    self->nexec++;
}

static void s_on_ctl (api_ws_t *self, api_wsf_t *f)
{
    s_exec_t *e = s_exec_by_id (self, f->execution_id);
    if (!e) {
        s_error (self, "invalid_request", "no execution with this executionId is running",
                 f->execution_id);
        return;
    }
    if (f->type == API_WSF_CANCEL && e->state == S_ADMITTING) {
        s_send_json (self, api_wsproto_cancelled (e->execution_id));
        s_exec_remove (self, e);
        return;
    }
    int type = f->type == API_WSF_STDIN ? API_MSG_EXEC_STDIN : API_MSG_EXEC_CANCEL;
    api_exec_ctl_t *ctl = api_exec_ctl_new (type, e->xid, self->conn_id);
    if (!ctl) {
        s_error (self, "stream_error", "out of memory", f->execution_id);
        return;
    }
    ctl->data = f->data;
    f->data = (lss_bytes_t){0};
    ctl->eof = f->eof;
    if (e->state == S_RUNNING) {
        if (s_to_bridge (self, &ctl->msg))
            s_error (self, "stream_error", "the execution service is stopping",
                     f->execution_id);
        return;
    }
    if (e->held_bytes + ctl->data.len > API_WS_HELD_BYTES_MAX) {
        api_msg_destroy (&ctl->msg);
        s_error (self, "invalid_request", "too much stdin before the execution started",
                 f->execution_id);
        return;
    }
    e->held_bytes += ctl->data.len;
    ctl->msg.next = NULL;
    if (e->held_tail)
        e->held_tail->next = &ctl->msg;
    else
        e->held = &ctl->msg;
    e->held_tail = &ctl->msg;
}

static void s_handle (api_ws_t *self, const char *data, size_t len, bool binary)
{
    if (binary) {
        s_error (self, "invalid_message", "frames are JSON text, not binary", NULL);
        return;
    }
    api_wsf_t f;
    char code[32], message[512];
    if (api_wsproto_parse (data, len, &f, code, message, sizeof message)) {
        s_error (self, code, message, f.execution_id[0] ? f.execution_id : NULL);
        api_wsf_clear (&f);
        return;
    }
    switch (f.type) {
    case API_WSF_PING:
        s_send_json (self, api_wsproto_pong (f.timestamp));
        break;
    case API_WSF_EXECUTE:
        s_on_execute (self, &f);
        break;
    case API_WSF_STDIN:
    case API_WSF_CANCEL:
        s_on_ctl (self, &f);
        break;
    }
    api_wsf_clear (&f);
}

//  --------------------------------------------------------------------------
//  Session

api_ws_t *api_ws_new (api_ctx_t *ctx, uint64_t conn_id, const char *sandbox_id, char **token,
                      const char *request_id)
{
    api_ws_t *self = calloc (1, sizeof *self);
    if (!self)
        return NULL;
    self->ctx = ctx;
    self->conn_id = conn_id;
    snprintf (self->sandbox_id, sizeof self->sandbox_id, "%s", sandbox_id);
    snprintf (self->request_id, sizeof self->request_id, "%s", request_id);
    if (token) {
        self->token = *token;
        *token = NULL;
    }
    return self;
}

void api_ws_destroy (api_ws_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    api_ws_t *self = *self_p;
    if (self->auth == S_AUTH_OK) {
        api_exec_ctl_t *m = api_exec_ctl_new (API_MSG_CONN_CLOSED, 0, self->conn_id);
        if (m)
            s_to_bridge (self, &m->msg);
    }
    for (s_exec_t *e = self->execs, *next; e; e = next) {
        next = e->next;
        s_exec_free (e);
    }
    for (s_held_t *h = self->held, *next; h; h = next) {
        next = h->next;
        free (h);
    }
    for (api_msg_t *m = self->out, *next; m; m = next) {
        next = m->next;
        api_msg_destroy (m);
    }
    free (self->token);
    free (self);
    *self_p = NULL;
}

int api_ws_start (api_ws_t *self)
{
    api_ws_auth_t *a = api_ws_auth_new ();
    if (a) {
        a->conn_id = self->conn_id;
        snprintf (a->sandbox_id, sizeof a->sandbox_id, "%s", self->sandbox_id);
        snprintf (a->request_id, sizeof a->request_id, "%s", self->request_id);
        a->token = self->token;
        self->token = NULL;
        if (api_mailbox_post (self->ctx->jobs, &a->msg) == 0)
            return 0;
        api_msg_destroy (&a->msg);
    }
    self->auth = S_AUTH_FAILED;
    s_error (self, "stream_error", "the server is busy; retry shortly", NULL);
    s_close (self, 1013, "try again later");
    return -1;
}

void api_ws_on_message (api_ws_t *self, const char *data, size_t len, bool binary)
{
    if (self->closing)
        return;
    if (self->auth == S_AUTH_OK) {
        s_handle (self, data, len, binary);
        return;
    }
    if (self->auth == S_AUTH_FAILED)
        return;
    if (self->held_count >= API_WS_HELD_MAX || self->held_bytes + len > API_WS_HELD_BYTES_MAX) {
        s_error (self, "invalid_request", "too many frames before authorisation completed",
                 NULL);
        s_close (self, 1008, "too many frames before authorisation");
        return;
    }
    s_held_t *h = malloc (sizeof *h + len);
    if (!h)
        return;
    h->next = NULL;
    h->binary = binary;
    h->len = len;
    memcpy (h->data, data, len);
    if (self->held_tail)
        self->held_tail->next = h;
    else
        self->held = h;
    self->held_tail = h;
    self->held_count++;
    self->held_bytes += len;
}

void api_ws_on_oversize (api_ws_t *self)
{
    s_error (self, "invalid_message", "frame larger than the server accepts", NULL);
    s_close (self, 1009, "message too big");
}

void api_ws_on_auth (api_ws_t *self, api_ws_auth_done_t *m)
{
    if (self->auth != S_AUTH_PENDING)
        return;
    if (!m->ok) {
        self->auth = S_AUTH_FAILED;
        if (m->frame)
            s_queue (self, api_ws_frame_new (self->conn_id, m->frame, strlen (m->frame)));
        s_close (self, 1008, "not authorised");
        return;
    }
    self->auth = S_AUTH_OK;
    self->who = m->who;
    snprintf (self->sandbox_ref, sizeof self->sandbox_ref, "%s", m->sandbox_ref);
    snprintf (self->runtime, sizeof self->runtime, "%s", m->runtime);
    s_held_t *h = self->held;
    self->held = self->held_tail = NULL;
    self->held_count = 0;
    self->held_bytes = 0;
    while (h) {
        s_held_t *next = h->next;
        if (!self->closing)
            s_handle (self, h->data, h->len, h->binary);
        free (h);
        h = next;
    }
}

void api_ws_on_admit (api_ws_t *self, api_ws_admit_t *m)
{
    s_exec_t *e = s_exec_by_xid (self, m->xid);
    if (!e || e->state != S_ADMITTING)
        return; /* cancelled meanwhile */
    if (!m->ok) {
        if (m->frame)
            s_queue (self, api_ws_frame_new (self->conn_id, m->frame, strlen (m->frame)));
        s_exec_remove (self, e);
        return;
    }
    api_exec_start_msg_t *start = e->start;
    e->start = NULL;
    if (s_to_bridge (self, &start->msg)) {
        s_error (self, "execution_failed", "the execution service is stopping",
                 e->execution_id);
        s_exec_remove (self, e);
        return;
    }
    e->state = S_RUNNING;
    api_msg_t *h = e->held;
    e->held = e->held_tail = NULL;
    e->held_bytes = 0;
    while (h) {
        api_msg_t *next = h->next;
        s_to_bridge (self, h);
        h = next;
    }
}

void api_ws_on_frame (api_ws_t *self, api_ws_frame_t *f)
{
    if (f->terminal) {
        s_exec_t *e = s_exec_by_xid (self, f->xid);
        if (e)
            s_exec_remove (self, e);
    }
    s_queue (self, f);
}

api_ws_frame_t *api_ws_peek_out (api_ws_t *self)
{
    return (api_ws_frame_t *)self->out;
}

void api_ws_written (api_ws_t *self, int64_t now_ms)
{
    api_ws_frame_t *f = (api_ws_frame_t *)self->out;
    if (!f)
        return;
    self->out = f->msg.next;
    if (!self->out)
        self->out_tail = NULL;
    self->out_bytes -= f->len;
    self->stall_since_ms = self->out ? now_ms : 0;
    if (f->close_after)
        s_close (self, 1000, "done");
    if (f->data_bytes > 0) {
        api_exec_ctl_t *c = api_exec_ctl_new (API_MSG_EXEC_CONSUMED, f->xid, self->conn_id);
        if (c) {
            c->bytes = f->data_bytes;
            s_to_bridge (self, &c->msg);
        }
    }
    api_msg_destroy (&f->msg);
}

bool api_ws_closing (api_ws_t *self, int *status, const char **reason)
{
    if (!self->closing || self->out)
        return false;
    *status = self->close_status ? self->close_status : 1000;
    *reason = self->close_reason ? self->close_reason : "";
    return true;
}

int64_t api_ws_stalled_ms (const api_ws_t *self, int64_t now_ms)
{
    return self->out && self->stall_since_ms ? now_ms - self->stall_since_ms : 0;
}

size_t api_ws_out_bytes (const api_ws_t *self)
{
    return self->out_bytes;
}

uint64_t api_ws_conn_id (const api_ws_t *self)
{
    return self->conn_id;
}
