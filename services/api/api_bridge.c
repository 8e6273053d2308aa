/*  api_bridge — executions and file operations through lss-executor. See api_bridge.h.
 *
 *  State lives in two tables: executions by our exec id ("x<hex>", what the executor
 *  sees; unique in this process) and file operations by the envelope id of the request
 *  they wait on (the executor's reply carries it as `ref`). One zmq_poll loop serves the
 *  inbox eventfd and every executor socket, with a 100 ms tick for pings, silences and
 *  deadlines.
 */
#include "api_bridge.h"

#include <czmq.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "api_http.h"
#include "api_msgs.h"
#include "api_view.h"
#include "api_wsproto.h"
#include "lss_bus.h"
#include "lss_discovery.h"
#include "lss_log.h"
#include "lss_metrics.h"
#include "lss_util.h"

#define S_TICK_MS        100
#define S_STDIN_HELD_MAX (4u << 20) /* stdin held per execution until exec.started */

typedef struct {
    zsock_t *sock; /* NULL: a free slot */
    bool draining; /* its address left discovery: no new work, closed once idle */
    char endpoint[256];
    char src[LSS_PROTO_SRC_MAX + 1]; /* the executor process answering, "" until known */
    int64_t last_rx_ms, last_ping_ms;
    int64_t last_heard_ms; /* last message really received (health) */
    int inflight;
} s_executor_t;

typedef struct {
    uint64_t xid;
    char exec_id[24];
    char start_ref[LSS_PROTO_ID_MAX + 1];
    int ex;
    bool ws;
    uint64_t conn_id;
    char execution_id[API_EXECUTION_ID_MAX + 1];
    api_reply_to_t to;
    char sandbox_id[API_SB_ID_SIZE];
    char user_id[API_ID_SIZE];
    char kind[16];
    char language[33];
    char *summary;
    int64_t started_wall_ms;
    int64_t deadline_mono_ms;
    bool started;
    lss_buf_t stdin_held; /* stdin that came before exec.started (the executor refuses it) */
    bool eof_held;
    lss_buf_t out, err; /* REST */
    uint8_t hold[2][4]; /* WS: an incomplete UTF-8 sequence per stream */
    size_t hold_len[2];
    int64_t seq;      /* WS output frames sent */
    int64_t to_grant; /* consumed bytes not yet granted back to the executor */
    int64_t window;   /* credit the execution started with */
    int64_t out_bytes[2];
} s_exec_t;

typedef struct {
    api_file_msg_t *m;
    int ex;
    char ref[LSS_PROTO_ID_MAX + 1];
    int step; /* GET: 0 stat, 1 read; PUT: chunks */
    lss_buf_t acc;
    size_t offset;
    int64_t deadline_mono_ms;
} s_fop_t;

struct _api_bridge_t {
    api_ctx_t *ctx;
    pthread_t thread;
    bool started;
    atomic_bool stop;
    s_executor_t ex[API_BRIDGE_MAX_EXECUTORS];
    int nex;               /* slots in use or freed: ex[0..nex) */
    lss_discovery_t *disc; /* dns+ endpoints; NULL for a static list */
    bool disc_retry;       /* an address found no free slot: apply the set again */
    lss_bus_opts_t opts;   /* of the executor sockets */
    zhashx_t *execs;       /* exec id → s_exec_t */
    zhashx_t *fops;        /* request ref → s_fop_t */
    uint64_t seq;
    char src[64];
    lss_metric_t *m_execs, *m_inflight, *m_files;
};

//  --------------------------------------------------------------------------
//  Sending

static int s_send (api_bridge_t *self, int ex, lss_msg_kind_t kind, const void *body,
                   const char *trace, char ref_out[LSS_PROTO_ID_MAX + 1])
{
    lss_envelope_t env;
    if (lss_bus_envelope_init (&env, kind, NULL, self->src, ++self->seq,
                               trace && *trace ? trace : NULL))
        return -1;
    if (ref_out)
        memcpy (ref_out, env.id, sizeof env.id);
    if (ex < 0 || !self->ex[ex].sock)
        return -1;
    return lss_bus_send (self->ex[ex].sock, NULL, 0, NULL, &env, kind, body);
}

/*  The executor for new work: the one with the fewest in flight among those open and not
 *  draining; -1 if there is none (discovery has found no replica yet). */
static int s_pick (api_bridge_t *self)
{
    int best = -1;
    for (int i = 0; i < self->nex; i++)
        if (self->ex[i].sock && !self->ex[i].draining &&
            (best < 0 || self->ex[i].inflight < self->ex[best].inflight))
            best = i;
    return best;
}

static void s_to_lws (api_bridge_t *self, api_msg_t *m)
{
    if (m && api_mailbox_post_always (self->ctx->lws_inbox, m))
        api_msg_destroy (m);
}

static void s_ws_json (api_bridge_t *self, s_exec_t *e, json_t *frame, bool terminal)
{
    api_ws_frame_t *f = api_ws_frame_json (e->conn_id, frame);
    if (!f)
        return;
    f->xid = e->xid;
    f->terminal = terminal;
    s_to_lws (self, &f->msg);
}

//  --------------------------------------------------------------------------
//  Executions

static void s_exec_free (s_exec_t *e)
{
    lss_buf_free (&e->out);
    lss_buf_free (&e->err);
    lss_buf_free (&e->stdin_held);
    free (e->summary);
    free (e);
}

static void s_exec_drop (api_bridge_t *self, s_exec_t *e)
{
    if (e->ex >= 0 && self->ex[e->ex].inflight > 0)
        self->ex[e->ex].inflight--;
    lss_metric_set (self->m_inflight,
                    (double)(zhashx_size (self->execs) + zhashx_size (self->fops) - 1));
    zhashx_delete (self->execs, e->exec_id); /* frees e */
}

static void s_audit (api_bridge_t *self, s_exec_t *e, const char *status, int64_t exit_code,
                     int64_t out_bytes, int64_t err_bytes, int64_t duration_ms)
{
    lss_metric_inc (self->m_execs, 1, e->ws ? "ws" : "rest", status);
    api_audit_msg_t *a = api_audit_msg_new ();
    if (!a)
        return;
    api_exec_row_t *r = &a->row;
    snprintf (r->id, sizeof r->id, "%.39s", e->execution_id);
    snprintf (r->sandbox_id, sizeof r->sandbox_id, "%s", e->sandbox_id);
    snprintf (r->user_id, sizeof r->user_id, "%s", e->user_id);
    snprintf (r->kind, sizeof r->kind, "%s", e->kind);
    snprintf (r->language, sizeof r->language, "%s", e->language);
    snprintf (r->status, sizeof r->status, "%s", status);
    snprintf (r->transport, sizeof r->transport, "%s", e->ws ? "ws" : "rest");
    r->exit_code = exit_code;
    r->started_ms = e->started_wall_ms;
    r->completed_ms = lss_time_now_ms ();
    r->duration_ms = duration_ms;
    r->stdout_bytes = out_bytes;
    r->stderr_bytes = err_bytes;
    a->summary = e->summary;
    e->summary = NULL;
    r->summary = a->summary;
    if (api_mailbox_post (self->ctx->jobs, &a->msg)) {
        lss_log_warn ("audit row dropped: workers saturated", "{s:s}", "execution",
                      e->execution_id);
        api_msg_destroy (&a->msg);
    }
}

/*  Maps an executor/agent error code to an HTTP status. */
static int s_http_status (const char *code)
{
    static const struct {
        const char *code;
        int status;
    } map[] = {{"sandbox_not_found", 404},
               {"not_found", 404},
               {"sandbox_not_running", 409},
               {"exists", 409},
               {"not_empty", 409},
               {"forbidden_path", 403},
               {"permission_denied", 403},
               {"invalid_request", 400},
               {"not_a_directory", 400},
               {"is_a_directory", 400},
               {"no_space", 413},
               {"too_large", 413}};
    for (size_t i = 0; code && i < sizeof map / sizeof map[0]; i++)
        if (strcmp (map[i].code, code) == 0)
            return map[i].status;
    return 503;
}

static const char *s_http_code (int status)
{
    return api_http_error_code (status);
}

/*  Ends an execution the platform could not run (refused, executor lost, deadline
 *  overrun, shutdown). */
static void s_exec_fail (api_bridge_t *self, s_exec_t *e, const char *code, const char *message)
{
    lss_log_warn ("execution failed", "{s:s, s:s, s:s, s:s}", "execution", e->execution_id,
                  "sandbox", e->sandbox_id, "code", code, "error", message);
    if (e->ws) {
        const char *wcode =
            strcmp (code, "sandbox_not_found") == 0 ? "sandbox_not_found" : "execution_failed";
        s_ws_json (self, e, api_wsproto_error (wcode, message, e->execution_id), true);
    } else {
        int status = s_http_status (code);
        s_to_lws (self,
                  (api_msg_t *)api_resp_error (&e->to, status, s_http_code (status), message,
                                               json_pack ("{s:s, s:s}", "executionId",
                                                          e->execution_id, "reason", code)));
    }
    s_audit (self, e, "error", -1, e->out_bytes[0], e->out_bytes[1],
             lss_time_now_ms () - e->started_wall_ms);
    s_exec_drop (self, e);
}

static void s_start (api_bridge_t *self, api_exec_start_msg_t *m)
{
    if (zhashx_size (self->execs) + zhashx_size (self->fops) >= API_BRIDGE_MAX_WORK) {
        s_exec_t tmp = {.ws = m->ws, .conn_id = m->conn_id, .xid = m->xid, .to = m->to};
        snprintf (tmp.execution_id, sizeof tmp.execution_id, "%s", m->execution_id);
        if (m->ws)
            s_ws_json (self, &tmp,
                       api_wsproto_error ("execution_failed", "too many executions in flight",
                                          m->execution_id),
                       true);
        else
            s_to_lws (self, (api_msg_t *)api_resp_error (
                                &m->to, 503, NULL, "too many executions in flight", NULL));
        return;
    }
    s_exec_t *e = calloc (1, sizeof *e);
    if (!e)
        return;
    e->xid = m->xid;
    snprintf (e->exec_id, sizeof e->exec_id, "x%llx", (unsigned long long)m->xid);
    e->ws = m->ws;
    e->conn_id = m->conn_id;
    e->window = m->window > 0 && m->window < API_BRIDGE_WINDOW ? m->window : API_BRIDGE_WINDOW;
    e->to = m->to;
    memcpy (e->execution_id, m->execution_id, sizeof e->execution_id);
    memcpy (e->sandbox_id, m->sandbox_id, sizeof e->sandbox_id);
    memcpy (e->user_id, m->user_id, sizeof e->user_id);
    memcpy (e->kind, m->spec.kind, sizeof e->kind);
    memcpy (e->language, m->spec.language, sizeof e->language);
    const char *text = m->spec.shell ? m->spec.shell : (const char *)m->spec.code.data;
    size_t tlen = m->spec.shell ? strlen (m->spec.shell) : m->spec.code.len;
    e->summary = strndup (text ? text : "",
                          tlen < API_BRIDGE_SUMMARY_MAX ? tlen : API_BRIDGE_SUMMARY_MAX);
    e->started_wall_ms = lss_time_now_ms ();
    e->deadline_mono_ms = lss_time_mono_ms () + m->spec.timeout_ms + API_BRIDGE_GRACE_MS;
    lss_buf_init (&e->out, (size_t)m->spec.max_output);
    lss_buf_init (&e->err, (size_t)m->spec.max_output);
    lss_buf_init (&e->stdin_held, S_STDIN_HELD_MAX);
    e->ex = s_pick (self);
    zhashx_insert (self->execs, e->exec_id, e);
    if (e->ex < 0) {
        s_exec_fail (self, e, "executor_unavailable", "no executor has been discovered");
        return;
    }
    self->ex[e->ex].inflight++;
    lss_metric_set (self->m_inflight,
                    (double)(zhashx_size (self->execs) + zhashx_size (self->fops)));

    /* env as a string map */
    size_t nenv = m->spec.env ? json_object_size (m->spec.env) : 0;
    char **keys = nenv ? calloc (nenv, sizeof *keys) : NULL;
    char **values = nenv ? calloc (nenv, sizeof *values) : NULL;
    size_t k = 0;
    if (nenv && keys && values) {
        const char *key;
        json_t *v;
        json_object_foreach (m->spec.env, key, v)
        {
            keys[k] = (char *)key;
            values[k] = (char *)json_string_value (v);
            k++;
        }
    }
    lss_exec_start_t start = {
        .exec_id = e->exec_id,
        .shell = m->spec.shell,
        .code = m->spec.code,
        .language = m->spec.language[0] ? m->spec.language : NULL,
        .env = {keys, values, k},
        .cwd = m->spec.cwd[0] ? m->spec.cwd : NULL,
        .stdin = m->spec.stdin_data,
        .stdin_open = m->spec.stdin_open,
        .timeout_ms = m->spec.timeout_ms,
        .max_output = m->spec.max_output,
        .credit = e->window,
        .sandbox = m->sandbox_ref,
    };
    int rc = s_send (self, e->ex, LSS_MSG_exec_start, &start, m->to.request_id, e->start_ref);
    free (keys);
    free (values);
    if (rc)
        s_exec_fail (self, e, "executor_unavailable", "the executor cannot be reached");
}

static s_exec_t *s_exec_by_xid (api_bridge_t *self, uint64_t xid)
{
    char id[24];
    snprintf (id, sizeof id, "x%llx", (unsigned long long)xid);
    return zhashx_lookup (self->execs, id);
}

static void s_grant (api_bridge_t *self, s_exec_t *e, int64_t bytes, int64_t threshold)
{
    e->to_grant += bytes;
    if (e->to_grant < threshold)
        return;
    lss_exec_credit_t c = {.exec_id = e->exec_id, .bytes = e->to_grant};
    if (s_send (self, e->ex, LSS_MSG_exec_credit, &c, NULL, NULL) == 0)
        e->to_grant = 0;
}

static void s_on_output (api_bridge_t *self, s_exec_t *e, lss_exec_output_t *m)
{
    int s = strcmp (m->stream, "stderr") == 0 ? 1 : 0;
    int64_t n = (int64_t)m->data.len;
    e->out_bytes[s] += n;
    if (!e->ws) {
        lss_buf_append_some (s ? &e->err : &e->out, m->data.data, m->data.len);
        s_grant (self, e, n, e->window / 2);
        return;
    }
    /* prepend what was held back (rare: a sequence cut between chunks; the chunk itself
     * is used in place otherwise), keep back an incomplete trailing UTF-8 sequence */
    size_t total = e->hold_len[s] + m->data.len;
    uint8_t *joined = NULL;
    const uint8_t *buf = m->data.data;
    if (e->hold_len[s]) {
        joined = malloc (total);
        if (!joined)
            return;
        memcpy (joined, e->hold[s], e->hold_len[s]);
        memcpy (joined + e->hold_len[s], m->data.data, m->data.len);
        buf = joined;
    }
    size_t send = total ? api_view_utf8_complete (buf, total) : 0;
    e->hold_len[s] = total - send;
    memcpy (e->hold[s], buf + send, e->hold_len[s]);
    if (send == 0) {
        free (joined);
        s_grant (self, e, n, 1); /* nothing queued for the client: give the credit back */
        return;
    }
    /* the common case, UTF-8 checked and escaped in one pass without jansson */
    bool valid;
    api_ws_frame_t *frame =
        api_wsproto_output_frame_utf8 (e->conn_id, e->execution_id, s ? "stderr" : "stdout",
                                       e->seq + 1, lss_time_now_ms (), buf, send, &valid);
    if (frame)
        e->seq++;
    else if (!valid) {
        json_t *f =
            json_pack ("{s:s, s:s, s:s, s:I, s:I}", "type", "output", "executionId",
                       e->execution_id, "stream", s ? "stderr" : "stdout", "seq",
                       (json_int_t)++e->seq, "timestamp", (json_int_t)lss_time_now_ms ());
        if (f)
            api_view_set_text (f, "content", "encoding", buf, send);
        frame = api_ws_frame_json (e->conn_id, f);
    }
    free (joined);
    if (!frame) {
        s_grant (self, e, n, 1);
        return;
    }
    frame->xid = e->xid;
    frame->data_bytes = n; /* credit comes back once written */
    s_to_lws (self, &frame->msg);
}

static void s_flush_hold (api_bridge_t *self, s_exec_t *e)
{
    for (int s = 0; s < 2; s++) {
        if (!e->hold_len[s])
            continue;
        json_t *f =
            json_pack ("{s:s, s:s, s:s, s:I, s:I}", "type", "output", "executionId",
                       e->execution_id, "stream", s ? "stderr" : "stdout", "seq",
                       (json_int_t)++e->seq, "timestamp", (json_int_t)lss_time_now_ms ());
        if (f)
            api_view_set_text (f, "content", "encoding", e->hold[s], e->hold_len[s]);
        e->hold_len[s] = 0;
        s_ws_json (self, e, f, false);
    }
}

static void s_on_end (api_bridge_t *self, s_exec_t *e, lss_exec_end_t *end)
{
    const char *status = api_view_exec_status (end);
    bool platform_error = end->error && *end->error && !end->timed_out && !end->cancelled;
    int64_t now = lss_time_now_ms ();
    if (e->ws) {
        s_flush_hold (self, e);
        if (platform_error)
            s_ws_json (self, e,
                       api_wsproto_error ("execution_failed", end->error, e->execution_id),
                       true);
        else if (end->cancelled && !end->timed_out)
            s_ws_json (self, e, api_wsproto_cancelled (e->execution_id), true);
        else {
            if (end->timed_out)
                s_ws_json (
                    self, e,
                    api_wsproto_error ("execution_timeout",
                                       "the execution passed its deadline and was killed",
                                       e->execution_id),
                    false);
            json_t *f = json_pack (
                "{s:s, s:s, s:I, s:s, s:b, s:I, s:I, s:{s:I, s:I}, s:b, s:b, s:I, s:I, s:I}",
                "type", "execution_complete", "executionId", e->execution_id, "exitCode",
                (json_int_t)end->exit_code, "status", status, "timedOut", end->timed_out,
                "signal", (json_int_t)end->signal, "durationMs", (json_int_t)end->wall_ms,
                "usage", "cpuMs", (json_int_t)end->cpu_ms, "maxRssKb",
                (json_int_t)end->max_rss_kb, "stdoutTruncated", end->stdout_truncated,
                "stderrTruncated", end->stderr_truncated, "stdoutBytes",
                (json_int_t)end->stdout_bytes, "stderrBytes", (json_int_t)end->stderr_bytes,
                "timestamp", (json_int_t)now);
            s_ws_json (self, e, f, true);
        }
    } else if (platform_error) {
        s_to_lws (self, (api_msg_t *)api_resp_error (
                            &e->to, 503, "service_unavailable", end->error,
                            json_pack ("{s:s}", "executionId", e->execution_id)));
    } else {
        json_t *v = api_view_execution (e->execution_id, end, NULL, e->out.data, e->out.len,
                                        e->err.data, e->err.len, e->started_wall_ms, now);
        if (v && (e->out.len < (size_t)end->stdout_bytes && !end->stdout_truncated))
            json_object_set_new (v, "stdoutTruncated", json_true ());
        if (v && (e->err.len < (size_t)end->stderr_bytes && !end->stderr_truncated))
            json_object_set_new (v, "stderrTruncated", json_true ());
        s_to_lws (self, (api_msg_t *)api_resp_with_json (&e->to, 200, v));
    }
    s_audit (self, e, platform_error ? "error" : status, end->exit_code, end->stdout_bytes,
             end->stderr_bytes, end->wall_ms);
    s_exec_drop (self, e);
}

static void s_on_ctl (api_bridge_t *self, api_exec_ctl_t *c)
{
    if (c->msg.type == API_MSG_CONN_CLOSED) {
        /* cancel everything the connection started; its output is dropped */
        zlistx_t *gone = zlistx_new ();
        for (s_exec_t *e = zhashx_first (self->execs); e; e = zhashx_next (self->execs))
            if (e->ws && e->conn_id == c->conn_id)
                zlistx_add_end (gone, e);
        for (s_exec_t *e = zlistx_first (gone); e; e = zlistx_next (gone)) {
            lss_exec_cancel_t m = {.exec_id = e->exec_id};
            s_send (self, e->ex, LSS_MSG_exec_cancel, &m, NULL, NULL);
            s_audit (self, e, "cancelled", -1, e->out_bytes[0], e->out_bytes[1],
                     lss_time_now_ms () - e->started_wall_ms);
            s_exec_drop (self, e);
        }
        zlistx_destroy (&gone);
        return;
    }
    s_exec_t *e = s_exec_by_xid (self, c->xid);
    if (!e || (e->ws && e->conn_id != c->conn_id))
        return;
    switch (c->msg.type) {
    case API_MSG_EXEC_STDIN: {
        if (!e->started) { /* held until exec.started, in order */
            if (e->eof_held || lss_buf_append (&e->stdin_held, c->data.data, c->data.len)) {
                lss_exec_cancel_t m = {.exec_id = e->exec_id};
                s_send (self, e->ex, LSS_MSG_exec_cancel, &m, NULL, NULL);
                s_exec_fail (self, e, "invalid_request",
                             e->eof_held ? "stdin after eof"
                                         : "too much stdin before the execution started");
                break;
            }
            e->eof_held = c->eof;
            break;
        }
        lss_exec_stdin_t m = {.exec_id = e->exec_id, .data = c->data, .eof = c->eof};
        s_send (self, e->ex, LSS_MSG_exec_stdin, &m, NULL, NULL);
        break;
    }
    case API_MSG_EXEC_CANCEL: {
        lss_exec_cancel_t m = {.exec_id = e->exec_id};
        s_send (self, e->ex, LSS_MSG_exec_cancel, &m, NULL, NULL);
        break;
    }
    case API_MSG_EXEC_CONSUMED:
        s_grant (self, e, c->bytes, e->window / 4);
        break;
    default:
        break;
    }
}

//  --------------------------------------------------------------------------
//  File operations

static void s_fop_free (s_fop_t *f)
{
    api_msg_destroy (&f->m->msg);
    lss_buf_free (&f->acc);
    free (f);
}

static void s_fop_done (api_bridge_t *self, s_fop_t *f, api_resp_t *resp)
{
    s_to_lws (self, (api_msg_t *)resp);
    lss_metric_inc (self->m_files, 1, resp ? "ok" : "none");
    if (f->ex >= 0 && self->ex[f->ex].inflight > 0)
        self->ex[f->ex].inflight--;
    if (f->ref[0])
        zhashx_delete (self->fops, f->ref);
    s_fop_free (f);
}

static void s_fop_error (api_bridge_t *self, s_fop_t *f, const char *code, const char *message)
{
    int status = s_http_status (code);
    if (strcmp (code, "not_found") == 0)
        message = "no such file or directory";
    s_fop_done (self, f,
                api_resp_error (&f->m->to, status, s_http_code (status), message,
                                json_pack ("{s:s, s:s}", "path", f->m->path, "reason", code)));
}

/*  Sends the fop's next request; re-keys it under the new ref. */
static int s_fop_send (api_bridge_t *self, s_fop_t *f, lss_msg_kind_t kind, const void *body)
{
    if (f->ref[0]) {
        zhashx_delete (self->fops, f->ref); /* no destructor: f stays */
        f->ref[0] = '\0';
    }
    char ref[LSS_PROTO_ID_MAX + 1];
    if (s_send (self, f->ex, kind, body, f->m->to.request_id, ref)) {
        s_fop_error (self, f, "executor_unavailable", "the executor cannot be reached");
        return -1;
    }
    memcpy (f->ref, ref, sizeof ref);
    zhashx_insert (self->fops, f->ref, f);
    f->deadline_mono_ms = lss_time_mono_ms () + API_BRIDGE_FILE_STEP_MS;
    return 0;
}

static int s_fop_write_next (api_bridge_t *self, s_fop_t *f)
{
    size_t left = f->m->data.len - f->offset;
    size_t n = left < API_BRIDGE_FILE_CHUNK ? left : API_BRIDGE_FILE_CHUNK;
    lss_file_write_t w = {.path = f->m->path,
                          .offset = (int64_t)f->offset,
                          .data = {f->m->data.data ? f->m->data.data + f->offset : NULL, n},
                          .truncate = f->offset == 0,
                          .parents = true,
                          .sandbox = f->m->sandbox_ref};
    f->offset += n;
    f->step++;
    return s_fop_send (self, f, LSS_MSG_file_write, &w);
}

static int s_fop_read_next (api_bridge_t *self, s_fop_t *f)
{
    lss_file_read_t r = {.path = f->m->path,
                         .offset = (int64_t)f->acc.len,
                         .length = API_BRIDGE_FILE_CHUNK,
                         .sandbox = f->m->sandbox_ref};
    f->step = 1;
    return s_fop_send (self, f, LSS_MSG_file_read, &r);
}

static void s_file_start (api_bridge_t *self, api_file_msg_t *m)
{
    s_fop_t *f = calloc (1, sizeof *f);
    if (!f) {
        api_msg_destroy (&m->msg);
        return;
    }
    f->m = m;
    f->ex = s_pick (self);
    if (f->ex >= 0)
        self->ex[f->ex].inflight++;
    lss_buf_init (&f->acc, m->max_file ? m->max_file : 1);
    if (f->ex < 0) {
        s_fop_error (self, f, "executor_unavailable", "no executor has been discovered");
        return;
    }
    if (zhashx_size (self->execs) + zhashx_size (self->fops) >= API_BRIDGE_MAX_WORK) {
        s_fop_done (self, f,
                    api_resp_error (&m->to, 503, NULL, "too much work in flight", NULL));
        return;
    }
    switch (m->op) {
    case API_FILE_LIST: {
        lss_file_list_t b = {.path = m->path, .sandbox = m->sandbox_ref};
        s_fop_send (self, f, LSS_MSG_file_list, &b);
        break;
    }
    case API_FILE_GET: {
        lss_file_stat_t b = {.path = m->path, .sandbox = m->sandbox_ref};
        s_fop_send (self, f, LSS_MSG_file_stat, &b);
        break;
    }
    case API_FILE_PUT:
        s_fop_write_next (self, f);
        break;
    case API_FILE_DELETE: {
        lss_file_delete_t b = {
            .path = m->path, .recursive = m->recursive, .sandbox = m->sandbox_ref};
        s_fop_send (self, f, LSS_MSG_file_delete, &b);
        break;
    }
    case API_FILE_HEALTH: {
        lss_agent_health_t b = {.disk = true, .sandbox = m->sandbox_ref};
        s_fop_send (self, f, LSS_MSG_agent_health, &b);
        break;
    }
    }
}

static json_t *s_entries (const json_t *entries)
{
    json_t *files = json_array ();
    size_t i;
    json_t *e;
    json_array_foreach (entries, i, e)
    {
        if (!json_is_object (e))
            continue;
        json_t *is_dir = json_object_get (e, "isDir");
        json_t *name = json_object_get (e, "name"), *path = json_object_get (e, "path");
        json_t *f = json_pack (
            "{s:O, s:O, s:I, s:b, s:b, s:I, s:o, s:o}", "name",
            json_is_string (name) ? name : json_null (), "path",
            json_is_string (path) ? path : json_null (), "size",
            (json_int_t)json_integer_value (json_object_get (e, "size")), "isDirectory",
            json_is_true (is_dir), "isDir", json_is_true (is_dir), "mode",
            (json_int_t)json_integer_value (json_object_get (e, "mode")), "createdAt",
            api_view_time (json_integer_value (json_object_get (e, "ctimeMs"))), "modifiedAt",
            api_view_time (json_integer_value (json_object_get (e, "mtimeMs"))));
        if (f)
            json_array_append_new (files, f);
    }
    return files;
}

static const char *s_basename (const char *path)
{
    const char *slash = strrchr (path, '/');
    return slash ? slash + 1 : path;
}

static void s_on_file_reply (api_bridge_t *self, s_fop_t *f, lss_msg_kind_t kind, void *body)
{
    api_file_msg_t *m = f->m;
    if (kind == LSS_MSG_error) {
        lss_error_t *e = body;
        s_fop_error (self, f, e->code, e->message);
        return;
    }
    switch (m->op) {
    case API_FILE_LIST: {
        if (kind != LSS_MSG_file_entries)
            break;
        lss_file_entries_t *r = body;
        json_t *v = json_pack ("{s:s, s:o, s:b}", "path", r->path, "files",
                               s_entries (r->entries), "truncated", r->truncated);
        s_fop_done (self, f, api_resp_with_json (&m->to, 200, v));
        return;
    }
    case API_FILE_GET: {
        if (f->step == 0 && kind == LSS_MSG_file_info) {
            lss_file_info_t *r = body;
            if (r->is_dir) {
                s_fop_error (self, f, "is_a_directory",
                             "that path is a directory: list it with GET .../files?path=");
                return;
            }
            if (r->size < 0 || (size_t)r->size > m->max_file) {
                s_fop_done (
                    self, f,
                    api_resp_error (&m->to, 413, "payload_too_large",
                                    "file larger than the server hands out",
                                    json_pack ("{s:I, s:I}", "size", (json_int_t)r->size,
                                               "maxBytes", (json_int_t)m->max_file)));
                return;
            }
            s_fop_read_next (self, f);
            return;
        }
        if (f->step == 1 && kind == LSS_MSG_file_data) {
            lss_file_data_t *r = body;
            if (lss_buf_append (&f->acc, r->data.data, r->data.len)) {
                s_fop_done (self, f,
                            api_resp_error (&m->to, 413, "payload_too_large",
                                            "file grew larger than the server hands out",
                                            NULL));
                return;
            }
            if (!r->eof && r->data.len > 0) {
                s_fop_read_next (self, f);
                return;
            }
            api_resp_t *resp = api_resp_new (&m->to, 200);
            if (resp) {
                api_resp_bytes (resp, (char *)f->acc.data, f->acc.len,
                                "application/octet-stream");
                lss_buf_init (&f->acc, 0);
                char name[API_FILE_PATH_MAX];
                snprintf (name, sizeof name, "%s", s_basename (m->path));
                for (char *p = name; *p; p++)
                    if (*p == '"' || *p == '\\' || (unsigned char)*p < 0x20)
                        *p = '_';
                api_resp_header (resp, "Content-Disposition", "attachment; filename=\"%s\"",
                                 name);
            }
            s_fop_done (self, f, resp);
            return;
        }
        break;
    }
    case API_FILE_PUT: {
        if (kind != LSS_MSG_file_written)
            break;
        lss_file_written_t *r = body;
        if (f->offset < m->data.len) {
            s_fop_write_next (self, f);
            return;
        }
        s_fop_done (self, f,
                    api_resp_with_json (&m->to, 200,
                                        json_pack ("{s:s, s:I, s:o}", "path", r->path, "size",
                                                   (json_int_t)r->size, "createdAt",
                                                   api_view_time (lss_time_now_ms ()))));
        return;
    }
    case API_FILE_DELETE:
        if (kind != LSS_MSG_ok)
            break;
        s_fop_done (
            self, f,
            api_resp_with_json (
                &m->to, 200, json_pack ("{s:s, s:s}", "message", "deleted", "path", m->path)));
        return;
    case API_FILE_HEALTH: {
        if (kind != LSS_MSG_agent_usage)
            break;
        lss_agent_usage_t *u = body;
        json_t *v = m->body;
        m->body = NULL;
        json_object_set_new (
            v, "resources",
            json_pack ("{s:I, s:I, s:I, s:I, s:I}", "cpuUsage", (json_int_t)u->cpu_ms,
                       "memoryUsage", (json_int_t)u->memory_bytes, "processes",
                       (json_int_t)u->processes, "diskUsage", (json_int_t)u->disk_bytes,
                       "executions", (json_int_t)u->executions));
        s_fop_done (self, f, api_resp_with_json (&m->to, 200, v));
        return;
    }
    }
    s_fop_error (self, f, "protocol_error", "unexpected reply from the executor");
}

//  --------------------------------------------------------------------------
//  Executor messages

/*  Fails everything that was in flight on executor ex (it died or restarted). */
static void s_executor_lost (api_bridge_t *self, int ex, const char *why)
{
    zlistx_t *ge = zlistx_new (), *gf = zlistx_new ();
    for (s_exec_t *e = zhashx_first (self->execs); e; e = zhashx_next (self->execs))
        if (e->ex == ex)
            zlistx_add_end (ge, e);
    for (s_fop_t *f = zhashx_first (self->fops); f; f = zhashx_next (self->fops))
        if (f->ex == ex)
            zlistx_add_end (gf, f);
    if (zlistx_size (ge) || zlistx_size (gf))
        lss_log_error ("executor lost: failing its work", "{s:s, s:s, s:i, s:i}", "executor",
                       self->ex[ex].endpoint, "reason", why, "executions",
                       (int)zlistx_size (ge), "files", (int)zlistx_size (gf));
    for (s_exec_t *e = zlistx_first (ge); e; e = zlistx_next (ge))
        s_exec_fail (self, e, "executor_unavailable", why);
    for (s_fop_t *f = zlistx_first (gf); f; f = zlistx_next (gf))
        s_fop_error (self, f, "executor_unavailable", why);
    zlistx_destroy (&ge);
    zlistx_destroy (&gf);
}

static void s_on_executor (api_bridge_t *self, int ex)
{
    for (int budget = 0; budget < 256; budget++) {
        if (!(zsock_events (self->ex[ex].sock) & ZMQ_POLLIN))
            return;
        lss_envelope_t env;
        lss_msg_kind_t kind;
        void *body = NULL;
        char err[256];
        int rc = lss_bus_recv (self->ex[ex].sock, NULL, NULL, 0, &env, &kind, &body, err,
                               sizeof err);
        if (rc == -2) {
            lss_log_warn ("malformed message from the executor dropped", "{s:s}", "error", err);
            continue;
        }
        if (rc)
            return;
        s_executor_t *x = &self->ex[ex];
        x->last_rx_ms = x->last_heard_ms = lss_time_mono_ms ();
        if (x->src[0] && strcmp (x->src, env.src) != 0) {
            snprintf (x->src, sizeof x->src, "%s", env.src);
            s_executor_lost (self, ex, "the executor restarted");
        } else if (!x->src[0])
            snprintf (x->src, sizeof x->src, "%s", env.src);
        switch (kind) {
        case LSS_MSG_exec_started: {
            lss_exec_started_t *m = body;
            s_exec_t *e = zhashx_lookup (self->execs, m->exec_id);
            if (e && !e->started) {
                e->started = true;
                if (e->ws)
                    s_ws_json (self, e, api_wsproto_start (e->execution_id), false);
                if (e->stdin_held.len || e->eof_held) {
                    lss_exec_stdin_t in = {
                        .exec_id = e->exec_id,
                        .data = {e->stdin_held.data, e->stdin_held.len},
                        .eof = e->eof_held,
                    };
                    s_send (self, e->ex, LSS_MSG_exec_stdin, &in, NULL, NULL);
                    lss_buf_free (&e->stdin_held);
                }
            }
            break;
        }
        case LSS_MSG_exec_output: {
            lss_exec_output_t *m = body;
            s_exec_t *e = zhashx_lookup (self->execs, m->exec_id);
            if (e)
                s_on_output (self, e, m);
            break;
        }
        case LSS_MSG_exec_end: {
            lss_exec_end_t *m = body;
            s_exec_t *e = zhashx_lookup (self->execs, m->exec_id);
            if (e)
                s_on_end (self, e, m);
            break;
        }
        case LSS_MSG_error: {
            lss_error_t *m = body;
            s_fop_t *f = m->ref ? zhashx_lookup (self->fops, m->ref) : NULL;
            s_exec_t *e = m->exec_id ? zhashx_lookup (self->execs, m->exec_id) : NULL;
            if (f)
                s_on_file_reply (self, f, kind, body);
            else if (e && m->ref && strcmp (m->ref, e->start_ref) == 0)
                s_exec_fail (self, e, m->code, m->message);
            else if (e && strcmp (m->code, "not_found") == 0)
                s_exec_fail (self, e, "executor_unavailable",
                             "the executor lost the execution");
            else if (e && strcmp (m->code, "not_started") != 0)
                lss_log_warn ("executor error for an execution", "{s:s, s:s, s:s}", "execution",
                              e->execution_id, "code", m->code, "error", m->message);
            break;
        }
        case LSS_MSG_file_entries:
        case LSS_MSG_file_info:
        case LSS_MSG_file_data:
        case LSS_MSG_file_written:
        case LSS_MSG_ok:
        case LSS_MSG_agent_usage: {
            const char *ref = *(char **)body; /* every reply's first field is its ref */
            s_fop_t *f = ref ? zhashx_lookup (self->fops, ref) : NULL;
            if (f)
                s_on_file_reply (self, f, kind, body);
            break;
        }
        default:
            break; /* pongs: liveness only */
        }
        lss_proto_body_free (kind, &body);
    }
}

//  --------------------------------------------------------------------------
//  Executor sockets (a fixed table; discovery opens and drains slots)

/*  Opens a DEALER to endpoint in a free slot. Returns the slot, -1 (logged) if the table
 *  is full or the endpoint is refused. */
static int s_executor_open (api_bridge_t *self, const char *endpoint)
{
    int i = 0;
    while (i < self->nex && self->ex[i].sock)
        i++;
    if (i >= API_BRIDGE_MAX_EXECUTORS) {
        lss_log_warn ("executor not used: table full", "{s:s, s:i}", "endpoint", endpoint,
                      "max", API_BRIDGE_MAX_EXECUTORS);
        return -1;
    }
    s_executor_t *x = &self->ex[i];
    *x = (s_executor_t){0};
    if (lss_fmt (x->endpoint, sizeof x->endpoint, "%s",
                 endpoint[0] == '>' ? endpoint + 1 : endpoint)) {
        lss_log_error ("executor endpoint too long", "{s:s}", "endpoint", endpoint);
        return -1;
    }
    char ep[300];
    snprintf (ep, sizeof ep, ">%s", x->endpoint);
    x->sock = lss_bus_socket_new (ZMQ_DEALER, NULL, &self->opts);
    if (!x->sock || lss_discovery_connect (x->sock, ep) != 0) {
        lss_log_error ("bad executor endpoint", "{s:s}", "endpoint", x->endpoint);
        zsock_destroy (&x->sock);
        return -1;
    }
    x->last_rx_ms = lss_time_mono_ms ();
    if (i == self->nex)
        self->nex++;
    return i;
}

static void s_executor_close (api_bridge_t *self, int i)
{
    lss_log_info ("executor closed", "{s:s}", "endpoint", self->ex[i].endpoint);
    zsock_destroy (&self->ex[i].sock);
    self->ex[i] = (s_executor_t){0};
    while (self->nex > 0 && !self->ex[self->nex - 1].sock)
        self->nex--;
}

/*  Brings the table in line with discovery's set: an address that left stops getting new
 *  work (its executions keep going, or its silence fails them) and is closed once idle;
 *  one that came back is used again; a new one gets a DEALER. */
static void s_apply_set (api_bridge_t *self)
{
    const lss_epset_t *want = lss_discovery_set (self->disc);
    self->disc_retry = false;
    for (int i = 0; i < self->nex; i++) {
        s_executor_t *x = &self->ex[i];
        if (!x->sock)
            continue;
        bool wanted = lss_epset_contains (want, x->endpoint);
        if (!wanted && !x->draining)
            lss_log_info ("executor left discovery: draining", "{s:s, s:i}", "endpoint",
                          x->endpoint, "in_flight", x->inflight);
        else if (wanted && x->draining)
            lss_log_info ("executor back in discovery", "{s:s}", "endpoint", x->endpoint);
        x->draining = !wanted;
    }
    for (size_t k = 0; k < lss_epset_size (want); k++) {
        const char *ep = lss_epset_at (want, k);
        bool have = false;
        for (int i = 0; i < self->nex && !have; i++)
            have = self->ex[i].sock && strcmp (self->ex[i].endpoint, ep) == 0;
        if (have)
            continue;
        if (s_executor_open (self, ep) < 0)
            self->disc_retry = true; /* table full (or refused): try again next tick */
        else
            lss_log_info ("executor discovered", "{s:s}", "endpoint", ep);
    }
}

static void s_tick (api_bridge_t *self)
{
    int64_t now = lss_time_mono_ms ();
    bool any_alive = false;
    if (self->disc && (lss_discovery_poll (self->disc, now) || self->disc_retry))
        s_apply_set (self);
    for (int i = 0; i < self->nex; i++) {
        s_executor_t *x = &self->ex[i];
        if (!x->sock)
            continue;
        if (x->draining && x->inflight == 0) {
            s_executor_close (self, i);
            continue;
        }
        if (x->src[0] && now - x->last_heard_ms <= 3 * API_BRIDGE_PING_MS)
            any_alive = true;
        if (now - x->last_ping_ms >= API_BRIDGE_PING_MS) {
            lss_agent_ping_t ping = {.nonce = now};
            s_send (self, i, LSS_MSG_agent_ping, &ping, NULL, NULL);
            x->last_ping_ms = now;
        }
        if (x->inflight > 0 && now - x->last_rx_ms > API_BRIDGE_SILENCE_MS) {
            s_executor_lost (self, i, "the executor stopped answering");
            x->last_rx_ms = now; /* one failure per silence */
        }
    }
    atomic_store (&self->ctx->executor_ok, any_alive); /* /ready */
    zlistx_t *late = zlistx_new ();
    for (s_exec_t *e = zhashx_first (self->execs); e; e = zhashx_next (self->execs))
        if (now > e->deadline_mono_ms)
            zlistx_add_end (late, e);
    for (s_exec_t *e = zlistx_first (late); e; e = zlistx_next (late)) {
        lss_exec_cancel_t c = {.exec_id = e->exec_id};
        s_send (self, e->ex, LSS_MSG_exec_cancel, &c, NULL, NULL);
        s_exec_fail (self, e, "execution_timeout",
                     "no end from the executor past the deadline");
    }
    zlistx_purge (late);
    for (s_fop_t *f = zhashx_first (self->fops); f; f = zhashx_next (self->fops))
        if (now > f->deadline_mono_ms)
            zlistx_add_end (late, f);
    for (s_fop_t *f = zlistx_first (late); f; f = zlistx_next (late))
        s_fop_error (self, f, "agent_timeout", "the sandbox did not answer in time");
    zlistx_destroy (&late);
}

static void s_on_inbox (api_bridge_t *self)
{
    api_msg_t *list = api_mailbox_take_all (self->ctx->bridge_inbox);
    while (list) {
        api_msg_t *m = list;
        list = m->next;
        m->next = NULL;
        switch (m->type) {
        case API_MSG_EXEC_START:
            s_start (self, (api_exec_start_msg_t *)m);
            break;
        case API_MSG_EXEC_STDIN:
        case API_MSG_EXEC_CANCEL:
        case API_MSG_EXEC_CONSUMED:
        case API_MSG_CONN_CLOSED:
            s_on_ctl (self, (api_exec_ctl_t *)m);
            break;
        case API_MSG_FILE_OP:
            s_file_start (self, (api_file_msg_t *)m);
            m = NULL; /* owned by the fop */
            break;
        default:
            break;
        }
        api_msg_destroy (m);
    }
}

static void *s_run (void *arg)
{
    api_bridge_t *self = arg;
    zmq_pollitem_t items[API_BRIDGE_MAX_EXECUTORS + 1];
    int64_t last_tick = 0;
    while (!atomic_load (&self->stop)) {
        items[0] =
            (zmq_pollitem_t){NULL, api_mailbox_fd (self->ctx->bridge_inbox), ZMQ_POLLIN, 0};
        int n = 1;
        for (int i = 0; i < self->nex; i++)
            if (self->ex[i].sock)
                items[n++] =
                    (zmq_pollitem_t){zsock_resolve (self->ex[i].sock), 0, ZMQ_POLLIN, 0};
        int rc = zmq_poll (items, n, S_TICK_MS);
        if (rc < 0 && errno != EINTR)
            break;
        s_on_inbox (self);
        for (int i = 0; i < self->nex; i++)
            if (self->ex[i].sock)
                s_on_executor (self, i);
        int64_t now = lss_time_mono_ms ();
        if (now - last_tick >= S_TICK_MS) {
            s_tick (self);
            last_tick = now;
        }
    }
    /* shutdown: answer what waits, cancel what runs */
    s_on_inbox (self);
    zlistx_t *all = zlistx_new ();
    for (s_exec_t *e = zhashx_first (self->execs); e; e = zhashx_next (self->execs))
        zlistx_add_end (all, e);
    for (s_exec_t *e = zlistx_first (all); e; e = zlistx_next (all)) {
        lss_exec_cancel_t c = {.exec_id = e->exec_id};
        s_send (self, e->ex, LSS_MSG_exec_cancel, &c, NULL, NULL);
        s_exec_fail (self, e, "service_unavailable", "the api is shutting down");
    }
    zlistx_purge (all);
    for (s_fop_t *f = zhashx_first (self->fops); f; f = zhashx_next (self->fops))
        zlistx_add_end (all, f);
    for (s_fop_t *f = zlistx_first (all); f; f = zlistx_next (all))
        s_fop_error (self, f, "service_unavailable", "the api is shutting down");
    zlistx_destroy (&all);
    return NULL;
}

static void s_exec_destructor (void **item)
{
    if (*item)
        s_exec_free (*item);
    *item = NULL;
}

api_bridge_t *api_bridge_new (api_ctx_t *ctx)
{
    api_bridge_t *self = calloc (1, sizeof *self);
    if (!self)
        return NULL;
    self->ctx = ctx;
    snprintf (self->src, sizeof self->src, "api/%d", (int)getpid ());
    self->execs = zhashx_new ();
    self->fops = zhashx_new ();
    ctx->bridge_inbox = api_mailbox_new (SIZE_MAX, NULL, NULL);
    if (!self->execs || !self->fops || !ctx->bridge_inbox)
        goto fail;
    zhashx_set_destructor (self->execs, s_exec_destructor);
    self->m_execs =
        lss_metrics_counter ("lss_api_executions_total",
                             "Executions ended, by transport and status.", "transport,status");
    self->m_inflight =
        lss_metrics_gauge ("lss_api_executions_in_flight",
                           "Executions and file operations at the executor.", NULL);
    self->m_files = lss_metrics_counter ("lss_api_file_operations_total",
                                         "File operations answered.", "result");
    self->opts = ctx->bus_opts;
    if (self->opts.max_message < (8 << 20))
        self->opts.max_message = 8 << 20;
    self->opts.linger_ms = 0;
    /* one DEALER per endpoint: executions stick to one executor */
    if (lss_discovery_is_dynamic (ctx->executor_endpoint)) {
        char err[256];
        self->disc =
            lss_discovery_new (ctx->executor_endpoint, ctx->bus_opts.resolve_interval_ms,
                               "api.executor_endpoint", err, sizeof err);
        if (!self->disc) {
            lss_log_error ("bad executor endpoint", "{s:s}", "error", err);
            goto fail;
        }
        lss_discovery_resolve_now (self->disc, API_BRIDGE_RESOLVE_WAIT_MS);
        s_apply_set (self);
        if (self->nex == 0)
            lss_log_warn ("no executor discovered yet: executions fail until one is", "{s:s}",
                          "api.executor_endpoint", ctx->executor_endpoint);
    }
    const char *p = self->disc ? "" : ctx->executor_endpoint;
    while (p && *p && self->nex < API_BRIDGE_MAX_EXECUTORS) {
        size_t n = strcspn (p, ",");
        if (n > 0 && n < sizeof self->ex[0].endpoint) {
            char ep[sizeof self->ex[0].endpoint];
            memcpy (ep, p, n);
            ep[n] = '\0';
            if (s_executor_open (self, ep) < 0)
                goto fail;
        }
        p += n;
        if (*p == ',')
            p++;
    }
    if (self->nex == 0 && !self->disc) {
        lss_log_error ("no executor endpoint", "{s:s}", "api.executor_endpoint",
                       ctx->executor_endpoint ? ctx->executor_endpoint : "");
        goto fail;
    }
    int rc = lss_thread_start (&self->thread, s_run, self);
    if (rc)
        goto fail;
    self->started = true;
    return self;
fail:
    api_bridge_destroy (&self);
    return NULL;
}

void api_bridge_destroy (api_bridge_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    api_bridge_t *self = *self_p;
    if (self->started) {
        atomic_store (&self->stop, true);
        api_mailbox_close (self->ctx->bridge_inbox);
        pthread_join (self->thread, NULL);
    }
    zhashx_destroy (&self->execs);
    for (s_fop_t *f = self->fops ? zhashx_first (self->fops) : NULL; f;
         f = zhashx_next (self->fops))
        s_fop_free (f);
    zhashx_destroy (&self->fops);
    for (int i = 0; i < self->nex; i++)
        zsock_destroy (&self->ex[i].sock);
    lss_discovery_destroy (&self->disc);
    free (self);
    *self_p = NULL;
}
