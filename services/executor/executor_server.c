/*  executor_server — the executor's loop. See executor_server.h and docs/executor.md.
 *
 *  Design: one thread owns every socket; the only blocking work (store reads) runs on
 *  the resolver actor. State is four bounded tables: requesters (by routing id),
 *  agents (by endpoint, one DEALER each), executions (by our id towards the agent and
 *  by requester + the requester's id) and file requests (by our request id towards the
 *  agent). Every exit of an execution goes through s_exec_finish, which answers the
 *  requester (unless it is gone), publishes ExecEnded and frees; timers (deadlines,
 *  silent requesters, silent agents, retries of sends a full queue refused) run in
 *  s_tick at least every 100 ms. Messages from requesters and agents are hostile input:
 *  the codec checks types and sizes; here ids, streams, credits and lengths are checked
 *  before anything is done with them.
 */
#include "executor_server.h"

#include <errno.h>
#include <string.h>

#include "executor_flow.h"
#include "executor_resolve.h"
#include "lss_log.h"
#include "lss_metrics.h"
#include "lss_obj.h"
#include "lss_util.h"

#define S_ID_SIZE    (LSS_PROTO_ID_MAX + 1)
#define S_TRACE_SIZE (LSS_PROTO_TRACE_MAX + 1)
#define S_REF_SIZE   321
#define S_ROUTE_MAX  255
#define S_BATCH      256

enum { PH_RESOLVING, PH_STARTING, PH_RUNNING };

typedef struct {
    uint8_t id[S_ROUTE_MAX];
    size_t len;
    char key[2 * S_ROUTE_MAX + 1];
    int64_t last_seen;
    int nexec, nfile;
    bool lost;
} s_req_t;

typedef struct {
    char endpoint[EXEC_ENDPOINT_MAX + LSS_CURVE_KEY_LEN + 2]; /* "EP" or "EP KEY" */
    zsock_t *sock;
    int64_t last_rx, last_ping, last_used;
    int nexec, nfile;
} s_agent_t;

typedef struct {
    char aid[32];                               /* our id towards the agent */
    char rid[S_ID_SIZE];                        /* the requester's exec_id */
    char rkey[2 * S_ROUTE_MAX + S_ID_SIZE + 2]; /* requester key / rid */
    char start_ref[S_ID_SIZE];                  /* requester's exec.start envelope id */
    char agent_ref[S_ID_SIZE];                  /* our exec.start envelope id */
    char sandbox[S_REF_SIZE];
    char trace[S_TRACE_SIZE];
    s_req_t *req;
    s_agent_t *agent;
    exec_flow_t flow;
    int phase;
    int64_t t0, timeout_ms, deadline, lost_at, out_seq, bytes;
    bool cancel_sent, deadline_hit;
    bool deadline_cancel;    /* the cancel sent to the agent was for the deadline */
    lss_exec_start_t *start; /* held while resolving */
    lss_exec_end_t *end;     /* the agent's end, held until the output is drained */
} s_exec_t;

typedef struct {
    char aref[S_ID_SIZE]; /* our request id towards the agent */
    char rref[S_ID_SIZE]; /* the requester's */
    char sandbox[S_REF_SIZE];
    char trace[S_TRACE_SIZE];
    s_req_t *req;
    s_agent_t *agent; /* NULL while resolving */
    lss_msg_kind_t kind;
    void *body; /* held while resolving */
    int64_t deadline;
} s_file_t;

typedef struct {
    char code[64];
    char text[600];
    int64_t at;
    bool inflight, valid;
} s_res_t;

typedef struct {
    const executor_conf_t *conf;
    lss_service_t *svc;
    zsock_t *router;
    lss_bus_pub_t *pub;
    zactor_t *resolver;
    zhash_t *reqs, *agents, *execs, *execs_by_rkey, *files, *cache;
    int resolving; /* resolutions asked for, not answered */
    uint64_t seq, next_aid;
    int64_t ping_ivl_ms;
    lss_bus_opts_t agent_opts;
    struct {
        lss_metric_t *in_flight, *started, *ended, *bytes, *buffered, *files, *agents;
    } m;
} s_server_t;

void executor_conf_from_config (executor_conf_t *conf, const lss_config_t *cfg)
{
    memset (conf, 0, sizeof *conf);
    snprintf (conf->router_endpoint, sizeof conf->router_endpoint, "%s",
              lss_config_str (cfg, "executor.router_endpoint"));
    snprintf (conf->pub_endpoint, sizeof conf->pub_endpoint, "%s",
              lss_config_str (cfg, "executor.pub_endpoint"));
    snprintf (conf->store_dsn, sizeof conf->store_dsn, "%s", lss_config_str (cfg, "store.dsn"));
    conf->cfg = cfg;
    snprintf (conf->curve_secret, sizeof conf->curve_secret, "%s",
              lss_config_str (cfg, "executor.curve_secret"));
    conf->agent_timeout_ms = lss_config_int (cfg, "executor.agent_timeout");
    conf->default_timeout_ms = lss_config_int (cfg, "executor.default_timeout");
    conf->max_timeout_ms = lss_config_int (cfg, "executor.max_timeout");
    conf->requester_timeout_ms = lss_config_int (cfg, "executor.requester_timeout");
    conf->max_streams = lss_config_int (cfg, "executor.max_streams");
    conf->window = lss_config_int (cfg, "executor.window");
    lss_bus_opts_from_config (cfg, &conf->bus);
    snprintf (conf->src, sizeof conf->src, "executor/%d", (int)getpid ());
}

/* ------------------------------------------------------------------ helpers */
static int64_t s_in_flight (s_server_t *self)
{
    return (int64_t)zhash_size (self->execs) + (int64_t)zhash_size (self->files);
}

static void s_hex (const uint8_t *data, size_t len, char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < len; i++) {
        out[2 * i] = digits[data[i] >> 4];
        out[2 * i + 1] = digits[data[i] & 15];
    }
    out[2 * len] = '\0';
}

/* Sends to a requester. Returns 0, -1 with errno (EAGAIN: its queue is full;
 * EHOSTUNREACH: it is gone). */
static int s_send_req (s_server_t *self, s_req_t *req, lss_msg_kind_t kind, const void *body,
                       const char *trace)
{
    lss_envelope_t env;
    lss_bus_envelope_init (&env, kind, NULL, self->conf->src, ++self->seq, trace);
    return lss_bus_send (self->router, req->id, req->len, NULL, &env, kind, body);
}

static void s_error_to (s_server_t *self, const uint8_t *route, size_t route_len,
                        const char *ref, const char *code, const char *message,
                        const char *exec_id)
{
    lss_error_t e = {.ref = (char *)(ref && *ref ? ref : NULL),
                     .code = (char *)code,
                     .message = (char *)message,
                     .exec_id = (char *)(exec_id && *exec_id ? exec_id : NULL)};
    lss_envelope_t env;
    lss_bus_envelope_init (&env, LSS_MSG_error, NULL, self->conf->src, ++self->seq, NULL);
    if (lss_bus_send (self->router, route, route_len, NULL, &env, LSS_MSG_error, &e))
        lss_log_debug ("error reply not delivered", "{s:s, s:s}", "code", code, "error",
                       zmq_strerror (errno));
}

static void s_error (s_server_t *self, s_req_t *req, const char *ref, const char *code,
                     const char *message, const char *exec_id)
{
    if (!req->lost)
        s_error_to (self, req->id, req->len, ref, code, message, exec_id);
}

static int s_send_agent (s_server_t *self, s_agent_t *a, lss_msg_kind_t kind, const void *body,
                         const char *id, const char *trace, char *id_out)
{
    lss_envelope_t env;
    lss_bus_envelope_init (&env, kind, NULL, self->conf->src, ++self->seq, trace);
    if (id)
        snprintf (env.id, sizeof env.id, "%s", id);
    if (id_out)
        snprintf (id_out, S_ID_SIZE, "%s", env.id);
    return lss_bus_send (a->sock, NULL, 0, NULL, &env, kind, body);
}

static void s_event (s_server_t *self, const char *reason, const char *sandbox, json_t *details,
                     const char *trace)
{
    char ns[64] = "", name[256] = "", topic[LSS_BUS_TOPIC_MAX];
    lss_obj_split_ref (sandbox, ns, sizeof ns, name, sizeof name);
    snprintf (topic, sizeof topic, "executor.%s.%s.%s", reason, ns, name);
    lss_event_t ev = {.reason = (char *)reason,
                      .kind = "Sandbox",
                      .namespace = ns,
                      .name = name,
                      .details = details};
    lss_bus_pub_send (self->pub, topic, LSS_MSG_event, "executor.event", &ev, trace);
    json_decref (details);
}

/* ------------------------------------------------------------------ requesters */
static s_req_t *s_req_get (s_server_t *self, const uint8_t *id, size_t len, int64_t now)
{
    char key[2 * S_ROUTE_MAX + 1];
    s_hex (id, len, key);
    s_req_t *r = zhash_lookup (self->reqs, key);
    if (r)
        return r;
    if (zhash_size (self->reqs) >= EXEC_MAX_REQUESTERS) {
        /* forget requesters that own nothing and have been silent longest */
        zlist_t *drop = zlist_new ();
        for (s_req_t *q = zhash_first (self->reqs); q; q = zhash_next (self->reqs))
            if (q->nexec == 0 && q->nfile == 0 &&
                now - q->last_seen > self->conf->requester_timeout_ms / 2)
                zlist_append (drop, q);
        for (s_req_t *q = zlist_first (drop); q; q = zlist_next (drop)) {
            zhash_delete (self->reqs, q->key);
            free (q);
        }
        zlist_destroy (&drop);
        if (zhash_size (self->reqs) >= EXEC_MAX_REQUESTERS)
            return NULL;
    }
    r = calloc (1, sizeof *r);
    if (!r)
        return NULL;
    memcpy (r->id, id, len);
    r->len = len;
    memcpy (r->key, key, sizeof key);
    r->last_seen = now;
    zhash_insert (self->reqs, r->key, r);
    return r;
}

/* ------------------------------------------------------------------ agents */
static s_agent_t *s_agent_get (s_server_t *self, const char *endpoint, int64_t now)
{
    s_agent_t *a = zhash_lookup (self->agents, endpoint);
    if (a)
        return a;
    if (zhash_size (self->agents) >= EXEC_MAX_AGENTS)
        return NULL;
    a = calloc (1, sizeof *a);
    if (!a)
        return NULL;
    snprintf (a->endpoint, sizeof a->endpoint, "%s", endpoint);
    /* "ENDPOINT KEY": the agent is a CURVE server with that public key */
    char ep[EXEC_ENDPOINT_MAX + 1], err[128] = "";
    const char *key = strchr (endpoint, ' ');
    snprintf (ep, sizeof ep, "%.*s", key ? (int)(key - endpoint) : (int)strlen (endpoint),
              endpoint);
    a->sock = lss_bus_socket_new (ZMQ_DEALER, NULL, &self->agent_opts);
    int rc = a->sock ? 0 : -1;
    if (rc == 0 && key && !self->conf->curve_secret[0]) {
        lss_errf (err, sizeof err, "the agent wants CURVE and executor.curve_secret is empty");
        rc = -1;
    } else if (rc == 0 && key)
        rc = lss_curve_client_apply (a->sock, self->conf->curve_secret, key + 1, err,
                                     sizeof err);
    if (rc == 0 && zsock_connect (a->sock, "%s", ep) != 0) {
        lss_errf (err, sizeof err, "cannot connect");
        rc = -1;
    }
    if (rc) {
        lss_log_error ("agent not connected", "{s:s, s:s}", "endpoint", ep, "error", err);
        zsock_destroy (&a->sock);
        free (a);
        return NULL;
    }
    a->last_rx = a->last_used = now;
    a->last_ping = 0;
    zhash_insert (self->agents, a->endpoint, a);
    lss_metric_inc (self->m.agents, 1);
    lss_log_info ("agent connected", "{s:s}", "endpoint", endpoint);
    return a;
}

static void s_agent_close (s_server_t *self, s_agent_t *a, const char *why)
{
    lss_log_info ("agent connection closed", "{s:s, s:s}", "endpoint", a->endpoint, "reason",
                  why);
    zhash_delete (self->agents, a->endpoint);
    zsock_destroy (&a->sock);
    lss_metric_inc (self->m.agents, -1);
    free (a);
}

/* ------------------------------------------------------------------ executions */
static void s_exec_free (s_server_t *self, s_exec_t *e)
{
    zhash_delete (self->execs, e->aid);
    zhash_delete (self->execs_by_rkey, e->rkey);
    e->req->nexec--;
    if (e->agent) {
        e->agent->nexec--;
        e->agent->last_used = lss_time_mono_ms ();
    }
    lss_metric_inc (self->m.buffered, -(double)e->flow.buffered);
    exec_flow_release (&e->flow);
    lss_proto_body_free (LSS_MSG_exec_start, (void **)&e->start);
    lss_proto_body_free (LSS_MSG_exec_end, (void **)&e->end);
    lss_metric_inc (self->m.in_flight, -1);
    free (e);
}

/* Ends an execution: end (borrowed; NULL = the agent's held end) goes to the requester
 * with its exec_id, ExecEnded is published, the execution is freed. */
static void s_exec_finish (s_server_t *self, s_exec_t *e, lss_exec_end_t *end,
                           const char *outcome)
{
    if (!end)
        end = e->end;
    lss_exec_end_t none = {.exit_code = -1, .error = "execution lost"};
    if (!end)
        end = &none;
    char *agent_exec_id = end->exec_id;
    end->exec_id = e->rid;
    if (!outcome)
        outcome = end->error       ? "error"
                  : end->timed_out ? "timed_out"
                  : end->cancelled ? "cancelled"
                                   : "exited";
    if (e->req->lost)
        outcome = "requester_lost"; /* still told, in case it is only slow */
    if (s_send_req (self, e->req, LSS_MSG_exec_end, end, e->trace) && !e->req->lost)
        lss_log_warn ("exec.end not delivered", "{s:s, s:s}", "exec_id", e->rid, "error",
                      zmq_strerror (errno));
    end->exec_id = agent_exec_id;
    lss_metric_inc (self->m.ended, 1, outcome);
    int64_t wall = lss_time_mono_ms () - e->t0;
    lss_log_info ("execution ended", "{s:s, s:s, s:s, s:s, s:I, s:I, s:I}", "sandbox",
                  e->sandbox, "exec_id", e->rid, "agent_exec_id", e->aid, "outcome", outcome,
                  "exit_code", (json_int_t)end->exit_code, "wall_ms", (json_int_t)wall, "bytes",
                  (json_int_t)e->bytes);
    if (e->phase != PH_RESOLVING)
        s_event (self, "ExecEnded", e->sandbox,
                 json_pack ("{s:s, s:s, s:I, s:I, s:I, s:s, s:b, s:b}", "exec_id", e->rid,
                            "agent_exec_id", e->aid, "exit_code", (json_int_t)end->exit_code,
                            "wall_ms", (json_int_t)wall, "bytes", (json_int_t)e->bytes,
                            "outcome", outcome, "timed_out", end->timed_out, "cancelled",
                            end->cancelled),
                 e->trace);
    s_exec_free (self, e);
}

static void s_exec_end_error (s_server_t *self, s_exec_t *e, const char *error, bool timed_out,
                              bool cancelled, const char *outcome)
{
    lss_exec_end_t end = {.exit_code = -1,
                          .error = (char *)error,
                          .timed_out = timed_out,
                          .cancelled = cancelled,
                          .wall_ms = lss_time_mono_ms () - e->t0};
    s_exec_finish (self, e, &end, outcome);
}

static void s_exec_cancel_at_agent (s_server_t *self, s_exec_t *e)
{
    if (e->cancel_sent || !e->agent || e->end)
        return;
    lss_exec_cancel_t c = {.exec_id = e->aid};
    if (s_send_agent (self, e->agent, LSS_MSG_exec_cancel, &c, NULL, e->trace, NULL) == 0)
        e->cancel_sent = true;
}

static void s_req_lost (s_server_t *self, s_req_t *req, const char *why);

/* Forwards what the requester's credit allows, grants the agent what was forwarded,
 * and finishes the execution once the agent ended it and everything went out.
 * Returns -1 if the execution was freed. */
static int s_exec_pump (s_server_t *self, s_exec_t *e)
{
    if (e->req->lost && !e->flow.discard) {
        lss_metric_inc (self->m.buffered, -(double)e->flow.buffered);
        exec_flow_discard (&e->flow);
    }
    for (int i = 0; i < 64; i++) {
        int stream;
        const uint8_t *data;
        size_t n = exec_flow_peek (&e->flow, &stream, &data, EXEC_CHUNK_MAX);
        if (n == 0)
            break;
        lss_exec_output_t out = {.exec_id = e->rid,
                                 .stream = stream == EXEC_FLOW_STDOUT ? "stdout" : "stderr",
                                 .seq = e->out_seq + 1,
                                 .data = {(uint8_t *)data, n}};
        if (s_send_req (self, e->req, LSS_MSG_exec_output, &out, e->trace)) {
            if (errno == EHOSTUNREACH) {
                s_req_lost (self, e->req, "unreachable");
                return 0; /* the next pump drops the output */
            }
            break; /* queue full: retried by the tick */
        }
        exec_flow_consume (&e->flow, n);
        e->out_seq++;
        e->bytes += (int64_t)n;
        lss_metric_inc (self->m.bytes, (double)n);
        lss_metric_inc (self->m.buffered, -(double)n);
    }
    int64_t due = exec_flow_grant_due (&e->flow);
    if (due > 0 && e->agent && !e->end) {
        lss_exec_credit_t c = {.exec_id = e->aid, .bytes = due};
        if (s_send_agent (self, e->agent, LSS_MSG_exec_credit, &c, NULL, e->trace, NULL) == 0)
            exec_flow_granted (&e->flow, due);
    }
    if (e->end && e->flow.buffered == 0) {
        s_exec_finish (self, e, NULL, NULL);
        return -1;
    }
    return 0;
}

/* Marks a requester gone and cancels its executions at their agents. Frees nothing (the
 * callers may be walking lists of executions): the tick finishes what is left. */
static void s_req_lost (s_server_t *self, s_req_t *req, const char *why)
{
    if (req->lost)
        return;
    req->lost = true;
    int64_t now = lss_time_mono_ms ();
    lss_log_warn ("requester lost: cancelling its executions", "{s:s, s:s, s:i}", "requester",
                  req->key, "reason", why, "executions", req->nexec);
    for (s_exec_t *e = zhash_first (self->execs); e; e = zhash_next (self->execs))
        if (e->req == req) {
            e->lost_at = now;
            s_exec_cancel_at_agent (self, e);
        }
}

static void s_exec_forward (s_server_t *self, s_exec_t *e, const char *endpoint)
{
    int64_t now = lss_time_mono_ms ();
    s_agent_t *a = s_agent_get (self, endpoint, now);
    if (!a) {
        s_error (self, e->req, e->start_ref, "limit_exceeded",
                 "too many agent connections or cannot connect", e->rid);
        s_exec_free (self, e);
        return;
    }
    e->agent = a;
    a->nexec++;
    a->last_used = now;
    lss_exec_start_t *s = e->start;
    free (s->sandbox);
    s->sandbox = NULL;
    char *their_id = s->exec_id;
    s->exec_id = e->aid;
    s->credit = self->conf->window;
    s->timeout_ms = e->timeout_ms;
    int rc = s_send_agent (self, a, LSS_MSG_exec_start, s, NULL, e->trace, e->agent_ref);
    s->exec_id = their_id;
    lss_proto_body_free (LSS_MSG_exec_start, (void **)&e->start);
    if (rc) {
        s_error (self, e->req, e->start_ref, "agent_unavailable", "the agent's queue is full",
                 e->rid);
        s_exec_free (self, e);
        return;
    }
    e->phase = PH_STARTING;
    e->t0 = now;
    e->deadline = now + e->timeout_ms;
}

/* ------------------------------------------------------------------ resolution */
/* The cached resolution of ref if fresh, else NULL (and one is asked for when the
 * resolver has room; the tick asks again otherwise). */
static s_res_t *s_resolution (s_server_t *self, const char *ref, int64_t now)
{
    s_res_t *r = zhash_lookup (self->cache, ref);
    if (r && r->valid && !r->inflight && now - r->at < EXEC_RESOLVE_TTL_MS)
        return r;
    if (r && r->inflight)
        return NULL;
    if (self->resolving >= EXEC_RESOLVE_MAX_INFLIGHT)
        return NULL;
    if (!r) {
        if (zhash_size (self->cache) >= EXEC_RESOLVE_CACHE)
            return NULL; /* the tick purges stale entries */
        r = calloc (1, sizeof *r);
        if (!r)
            return NULL;
        zhash_insert (self->cache, ref, r);
        zhash_freefn (self->cache, ref, free);
    }
    r->inflight = true;
    self->resolving++;
    zstr_send (self->resolver, ref);
    return NULL;
}

static void s_file_forward (s_server_t *self, s_file_t *f, const char *endpoint);
static void s_file_free (s_server_t *self, s_file_t *f);

/* Dispatches whatever waits on ref, given a fresh resolution. */
static void s_resolved (s_server_t *self, const char *ref, s_res_t *r)
{
    zlist_t *ex = zlist_new (), *fs = zlist_new ();
    for (s_exec_t *e = zhash_first (self->execs); e; e = zhash_next (self->execs))
        if (e->phase == PH_RESOLVING && strcmp (e->sandbox, ref) == 0)
            zlist_append (ex, e);
    for (s_file_t *f = zhash_first (self->files); f; f = zhash_next (self->files))
        if (!f->agent && strcmp (f->sandbox, ref) == 0)
            zlist_append (fs, f);
    bool ok = strcmp (r->code, "ok") == 0;
    for (s_exec_t *e = zlist_first (ex); e; e = zlist_next (ex)) {
        if (ok)
            s_exec_forward (self, e, r->text);
        else {
            s_error (self, e->req, e->start_ref, r->code, r->text, e->rid);
            s_exec_free (self, e);
        }
    }
    for (s_file_t *f = zlist_first (fs); f; f = zlist_next (fs)) {
        if (ok)
            s_file_forward (self, f, r->text);
        else {
            s_error (self, f->req, f->rref, r->code, r->text, NULL);
            s_file_free (self, f);
        }
    }
    zlist_destroy (&ex);
    zlist_destroy (&fs);
}

static void s_on_resolver (s_server_t *self)
{
    for (int i = 0; i < S_BATCH && (zsock_events (zactor_sock (self->resolver)) & ZMQ_POLLIN);
         i++) {
        char *ref = NULL, *code = NULL, *text = NULL;
        if (zstr_recvx (self->resolver, &ref, &code, &text, NULL) != 3) {
            zstr_free (&ref);
            zstr_free (&code);
            zstr_free (&text);
            continue;
        }
        self->resolving--;
        s_res_t *r = zhash_lookup (self->cache, ref);
        if (r) {
            r->inflight = false;
            r->valid = true;
            r->at = lss_time_mono_ms ();
            snprintf (r->code, sizeof r->code, "%s", code);
            snprintf (r->text, sizeof r->text, "%s", text);
            if (strcmp (code, "ok") != 0)
                lss_log_info ("sandbox not usable", "{s:s, s:s, s:s}", "sandbox", ref, "code",
                              code, "message", text);
            s_resolved (self, ref, r);
        }
        zstr_free (&ref);
        zstr_free (&code);
        zstr_free (&text);
    }
}

/* ------------------------------------------------------------------ file requests */
static char **s_sandbox_field (lss_msg_kind_t kind, void *body)
{
    switch (kind) {
    case LSS_MSG_file_list:
        return &((lss_file_list_t *)body)->sandbox;
    case LSS_MSG_file_stat:
        return &((lss_file_stat_t *)body)->sandbox;
    case LSS_MSG_file_read:
        return &((lss_file_read_t *)body)->sandbox;
    case LSS_MSG_file_write:
        return &((lss_file_write_t *)body)->sandbox;
    case LSS_MSG_file_delete:
        return &((lss_file_delete_t *)body)->sandbox;
    case LSS_MSG_file_mkdir:
        return &((lss_file_mkdir_t *)body)->sandbox;
    case LSS_MSG_agent_health:
        return &((lss_agent_health_t *)body)->sandbox;
    case LSS_MSG_exec_start:
        return &((lss_exec_start_t *)body)->sandbox;
    default:
        return NULL;
    }
}

static void s_file_free (s_server_t *self, s_file_t *f)
{
    zhash_delete (self->files, f->aref);
    f->req->nfile--;
    if (f->agent) {
        f->agent->nfile--;
        f->agent->last_used = lss_time_mono_ms ();
    }
    lss_proto_body_free (f->kind, &f->body);
    free (f);
}

static void s_file_forward (s_server_t *self, s_file_t *f, const char *endpoint)
{
    int64_t now = lss_time_mono_ms ();
    s_agent_t *a = s_agent_get (self, endpoint, now);
    if (!a) {
        s_error (self, f->req, f->rref, "limit_exceeded",
                 "too many agent connections or cannot connect", NULL);
        lss_metric_inc (self->m.files, 1, "refused");
        s_file_free (self, f);
        return;
    }
    f->agent = a;
    a->nfile++;
    a->last_used = now;
    char **sb = s_sandbox_field (f->kind, f->body);
    free (*sb);
    *sb = NULL;
    int rc = s_send_agent (self, a, f->kind, f->body, f->aref, f->trace, NULL);
    lss_proto_body_free (f->kind, &f->body);
    if (rc) {
        s_error (self, f->req, f->rref, "agent_unavailable", "the agent's queue is full", NULL);
        lss_metric_inc (self->m.files, 1, "agent_unavailable");
        s_file_free (self, f);
    }
}

/* ------------------------------------------------------------------ requester messages */
static bool s_limit_ok (s_server_t *self, s_req_t *req, const char *ref, const char *exec_id)
{
    if (s_in_flight (self) < self->conf->max_streams)
        return true;
    char msg[128];
    snprintf (msg, sizeof msg, "too many executions and file requests in flight (at most %lld)",
              (long long)self->conf->max_streams);
    s_error (self, req, ref, "limit_exceeded", msg, exec_id);
    return false;
}

static void s_on_exec_start (s_server_t *self, s_req_t *req, const lss_envelope_t *env,
                             void **body_p)
{
    lss_exec_start_t *m = *body_p;
    int64_t now = lss_time_mono_ms ();
    if (!*m->exec_id || strlen (m->exec_id) >= S_ID_SIZE) {
        s_error (self, req, env->id, "invalid_request", "exec_id must not be empty", NULL);
        return;
    }
    if (!m->sandbox || !*m->sandbox) {
        s_error (self, req, env->id, "invalid_request", "sandbox is required (<ns>/<name>)",
                 m->exec_id);
        return;
    }
    if (m->credit < 0 || m->timeout_ms < 0 || m->max_output < 0) {
        s_error (self, req, env->id, "invalid_request",
                 "credit, timeout_ms and max_output must not be negative", m->exec_id);
        return;
    }
    if (m->credit > EXEC_FLOW_MAX_CREDIT) {
        s_error (self, req, env->id, "invalid_request", "credit over 64 MiB", m->exec_id);
        return;
    }
    char rkey[sizeof ((s_exec_t *)0)->rkey];
    snprintf (rkey, sizeof rkey, "%s/%s", req->key, m->exec_id);
    if (zhash_lookup (self->execs_by_rkey, rkey)) {
        s_error (self, req, env->id, "exists", "an execution with this id is in flight",
                 m->exec_id);
        return;
    }
    if (!s_limit_ok (self, req, env->id, m->exec_id))
        return;
    s_exec_t *e = calloc (1, sizeof *e);
    if (!e) {
        s_error (self, req, env->id, "internal", "out of memory", m->exec_id);
        return;
    }
    snprintf (e->aid, sizeof e->aid, "x%llu", (unsigned long long)++self->next_aid);
    snprintf (e->rid, sizeof e->rid, "%s", m->exec_id);
    memcpy (e->rkey, rkey, sizeof rkey);
    snprintf (e->start_ref, sizeof e->start_ref, "%s", env->id);
    snprintf (e->sandbox, sizeof e->sandbox, "%s", m->sandbox);
    snprintf (e->trace, sizeof e->trace, "%s", env->trace);
    e->req = req;
    e->phase = PH_RESOLVING;
    e->t0 = now;
    e->timeout_ms = m->timeout_ms > 0 ? m->timeout_ms : self->conf->default_timeout_ms;
    if (e->timeout_ms > self->conf->max_timeout_ms)
        e->timeout_ms = self->conf->max_timeout_ms;
    exec_flow_init (&e->flow, self->conf->window,
                    m->credit > 0 ? m->credit : self->conf->window);
    e->start = m;
    *body_p = NULL;
    req->nexec++;
    zhash_insert (self->execs, e->aid, e);
    zhash_insert (self->execs_by_rkey, e->rkey, e);
    lss_metric_inc (self->m.in_flight, 1);
    lss_metric_inc (self->m.started, 1);
    s_res_t *r = s_resolution (self, e->sandbox, now);
    if (r)
        s_resolved (self, e->sandbox, r);
}

static void s_on_file (s_server_t *self, s_req_t *req, const lss_envelope_t *env,
                       lss_msg_kind_t kind, void **body_p)
{
    char **sb = s_sandbox_field (kind, *body_p);
    int64_t now = lss_time_mono_ms ();
    if (!*sb || !**sb) {
        s_error (self, req, env->id, "invalid_request", "sandbox is required (<ns>/<name>)",
                 NULL);
        return;
    }
    if (!s_limit_ok (self, req, env->id, NULL))
        return;
    s_file_t *f = calloc (1, sizeof *f);
    if (!f) {
        s_error (self, req, env->id, "internal", "out of memory", NULL);
        return;
    }
    lss_bus_next_id (f->aref);
    snprintf (f->rref, sizeof f->rref, "%s", env->id);
    snprintf (f->sandbox, sizeof f->sandbox, "%s", *sb);
    snprintf (f->trace, sizeof f->trace, "%s", env->trace);
    f->req = req;
    f->kind = kind;
    f->body = *body_p;
    *body_p = NULL;
    f->deadline = now + self->conf->agent_timeout_ms;
    req->nfile++;
    zhash_insert (self->files, f->aref, f);
    s_res_t *r = s_resolution (self, f->sandbox, now);
    if (r)
        s_resolved (self, f->sandbox, r);
}

static s_exec_t *s_find_rexec (s_server_t *self, s_req_t *req, const char *exec_id)
{
    char rkey[sizeof ((s_exec_t *)0)->rkey];
    if (lss_fmt (rkey, sizeof rkey, "%s/%s", req->key, exec_id))
        return NULL;
    return zhash_lookup (self->execs_by_rkey, rkey);
}

static void s_on_request (s_server_t *self, s_req_t *req, const lss_envelope_t *env,
                          lss_msg_kind_t kind, void **body_p)
{
    void *body = *body_p;
    switch (kind) {
    case LSS_MSG_exec_start:
        s_on_exec_start (self, req, env, body_p);
        return;
    case LSS_MSG_exec_stdin: {
        lss_exec_stdin_t *m = body;
        s_exec_t *e = s_find_rexec (self, req, m->exec_id);
        if (!e)
            s_error (self, req, env->id, "not_found", "no such execution", m->exec_id);
        else if (e->phase == PH_RESOLVING || !e->agent)
            s_error (self, req, env->id, "not_started",
                     "the execution is not started yet: send stdin after exec.started",
                     m->exec_id);
        else if (!e->end) {
            char *their = m->exec_id;
            m->exec_id = e->aid;
            if (s_send_agent (self, e->agent, LSS_MSG_exec_stdin, m, NULL, e->trace, NULL))
                s_error (self, req, env->id, "agent_unavailable", "the agent's queue is full",
                         their);
            m->exec_id = their;
        }
        return;
    }
    case LSS_MSG_exec_cancel: {
        lss_exec_cancel_t *m = body;
        s_exec_t *e = s_find_rexec (self, req, m->exec_id);
        if (!e)
            s_error (self, req, env->id, "not_found", "no such execution", m->exec_id);
        else if (e->phase == PH_RESOLVING)
            s_exec_end_error (self, e, "cancelled before it started", false, true, "cancelled");
        else
            s_exec_cancel_at_agent (self, e);
        return;
    }
    case LSS_MSG_exec_credit: {
        lss_exec_credit_t *m = body;
        s_exec_t *e = s_find_rexec (self, req, m->exec_id);
        if (!e)
            s_error (self, req, env->id, "not_found", "no such execution", m->exec_id);
        else if (exec_flow_credit (&e->flow, m->bytes))
            s_error (self, req, env->id, "invalid_request",
                     "credit must be > 0 and the balance at most 64 MiB", m->exec_id);
        else
            s_exec_pump (self, e);
        return;
    }
    case LSS_MSG_agent_ping: {
        lss_agent_pong_t pong = {.ref = (char *)env->id,
                                 .nonce = ((lss_agent_ping_t *)body)->nonce};
        s_send_req (self, req, LSS_MSG_agent_pong, &pong, env->trace);
        return;
    }
    case LSS_MSG_file_list:
    case LSS_MSG_file_stat:
    case LSS_MSG_file_read:
    case LSS_MSG_file_write:
    case LSS_MSG_file_delete:
    case LSS_MSG_file_mkdir:
    case LSS_MSG_agent_health:
        s_on_file (self, req, env, kind, body_p);
        return;
    case LSS_MSG_NONE: {
        char msg[128];
        snprintf (msg, sizeof msg, "unknown message type '%s'", env->type);
        s_error (self, req, env->id, "unknown_type", msg, NULL);
        return;
    }
    default: {
        char msg[128];
        snprintf (msg, sizeof msg, "'%s' is not a request the executor serves", env->type);
        s_error (self, req, env->id, "invalid_request", msg, NULL);
        return;
    }
    }
}

static void s_on_router (s_server_t *self)
{
    for (int i = 0; i < S_BATCH && (zsock_events (self->router) & ZMQ_POLLIN); i++) {
        zframe_t *route = NULL;
        lss_envelope_t env;
        lss_msg_kind_t kind = LSS_MSG_NONE;
        void *body = NULL;
        char err[256] = "";
        int rc =
            lss_bus_recv (self->router, &route, NULL, 0, &env, &kind, &body, err, sizeof err);
        if (rc == -1)
            return;
        size_t rlen = route ? zframe_size (route) : 0;
        if (rlen == 0 || rlen > S_ROUTE_MAX) {
            zframe_destroy (&route);
            lss_proto_body_free (kind, &body);
            continue;
        }
        int64_t now = lss_time_mono_ms ();
        s_req_t *req = s_req_get (self, zframe_data (route), rlen, now);
        if (!req)
            s_error_to (self, zframe_data (route), rlen, rc == 0 ? env.id : NULL, "busy",
                        "too many requesters", NULL);
        else {
            req->last_seen = now;
            req->lost = false;
            if (rc == -2) {
                lss_log_warn ("malformed request", "{s:s, s:s}", "requester", req->key, "error",
                              err);
                s_error (self, req, NULL, "invalid_message", err, NULL);
            } else {
                lss_log_set_trace (env.trace);
                s_on_request (self, req, &env, kind, &body);
                lss_log_set_trace (NULL);
            }
        }
        lss_proto_body_free (kind, &body);
        zframe_destroy (&route);
    }
}

/* ------------------------------------------------------------------ agent messages */
static s_exec_t *s_find_aexec (s_server_t *self, s_agent_t *a, const char *aid)
{
    s_exec_t *e = aid ? zhash_lookup (self->execs, aid) : NULL;
    return e && e->agent == a ? e : NULL;
}

static void s_on_agent_msg (s_server_t *self, s_agent_t *a, const lss_envelope_t *env,
                            lss_msg_kind_t kind, void **body_p)
{
    void *body = *body_p;
    (void)env;
    switch (kind) {
    case LSS_MSG_exec_started: {
        lss_exec_started_t *m = body;
        s_exec_t *e = s_find_aexec (self, a, m->exec_id);
        if (!e || e->phase != PH_STARTING)
            return;
        e->phase = PH_RUNNING;
        if (!e->req->lost) {
            lss_exec_started_t st = {.exec_id = e->rid, .pid = m->pid};
            s_send_req (self, e->req, LSS_MSG_exec_started, &st, e->trace);
        }
        s_event (self, "ExecStarted", e->sandbox,
                 json_pack ("{s:s, s:s, s:I}", "exec_id", e->rid, "agent_exec_id", e->aid,
                            "pid", (json_int_t)m->pid),
                 e->trace);
        return;
    }
    case LSS_MSG_exec_output: {
        lss_exec_output_t *m = body;
        s_exec_t *e = s_find_aexec (self, a, m->exec_id);
        if (!e || e->end)
            return;
        int stream = strcmp (m->stream, "stdout") == 0   ? EXEC_FLOW_STDOUT
                     : strcmp (m->stream, "stderr") == 0 ? EXEC_FLOW_STDERR
                                                         : -1;
        if (stream < 0 || exec_flow_put (&e->flow, stream, m->data.data, m->data.len)) {
            lss_log_warn ("agent broke the output protocol", "{s:s, s:s, s:s}", "agent",
                          a->endpoint, "exec_id", e->rid, "stream", m->stream);
            s_exec_cancel_at_agent (self, e);
            s_exec_end_error (self, e, "the agent sent output past its credit", false, false,
                              "error");
            return;
        }
        if (!e->flow.discard)
            lss_metric_inc (self->m.buffered, (double)m->data.len);
        s_exec_pump (self, e);
        return;
    }
    case LSS_MSG_exec_end: {
        lss_exec_end_t *m = body;
        s_exec_t *e = s_find_aexec (self, a, m->exec_id);
        if (!e || e->end)
            return;
        if (e->deadline_hit && (!m->cancelled || e->deadline_cancel)) {
            /* it passed its deadline; when our deadline cancel reached the agent before
             * its own timer fired, the agent says "cancelled": it is a timeout */
            m->timed_out = true;
            m->cancelled = false;
        }
        e->end = m;
        *body_p = NULL;
        s_exec_pump (self, e);
        return;
    }
    case LSS_MSG_error: {
        lss_error_t *m = body;
        s_file_t *f = m->ref ? zhash_lookup (self->files, m->ref) : NULL;
        if (f && f->agent == a) {
            s_error (self, f->req, f->rref, m->code, m->message, NULL);
            lss_metric_inc (self->m.files, 1, "error");
            s_file_free (self, f);
            return;
        }
        s_exec_t *e = s_find_aexec (self, a, m->exec_id);
        if (!e)
            return;
        if (e->phase == PH_STARTING && m->ref && strcmp (m->ref, e->agent_ref) == 0) {
            /* the agent refused the execution */
            s_error (self, e->req, e->start_ref, m->code, m->message, e->rid);
            lss_metric_inc (self->m.ended, 1, "refused");
            s_exec_free (self, e);
        } else if (strcmp (m->code, "not_found") != 0)
            s_error (self, e->req, NULL, m->code, m->message, e->rid);
        return;
    }
    case LSS_MSG_ok:
    case LSS_MSG_file_entries:
    case LSS_MSG_file_info:
    case LSS_MSG_file_data:
    case LSS_MSG_file_written:
    case LSS_MSG_agent_usage: {
        /* every reply's first field is its ref */
        char **ref = body;
        s_file_t *f = *ref ? zhash_lookup (self->files, *ref) : NULL;
        if (!f || f->agent != a)
            return;
        char *agent_ref = *ref;
        *ref = f->rref;
        if (!f->req->lost && s_send_req (self, f->req, kind, body, f->trace))
            lss_log_warn ("file reply not delivered", "{s:s}", "error", zmq_strerror (errno));
        *ref = agent_ref;
        lss_metric_inc (self->m.files, 1, "ok");
        s_file_free (self, f);
        return;
    }
    default:
        return; /* pongs (liveness is any traffic) and anything unexpected */
    }
}

static void s_on_agent (s_server_t *self, s_agent_t *a)
{
    for (int i = 0; i < S_BATCH && (zsock_events (a->sock) & ZMQ_POLLIN); i++) {
        lss_envelope_t env;
        lss_msg_kind_t kind = LSS_MSG_NONE;
        void *body = NULL;
        char err[256] = "";
        int rc = lss_bus_recv (a->sock, NULL, NULL, 0, &env, &kind, &body, err, sizeof err);
        if (rc == -1)
            return;
        a->last_rx = lss_time_mono_ms ();
        if (rc == -2)
            lss_log_warn ("malformed message from agent", "{s:s, s:s}", "agent", a->endpoint,
                          "error", err);
        else
            s_on_agent_msg (self, a, &env, kind, &body);
        lss_proto_body_free (kind, &body);
    }
}

/* ------------------------------------------------------------------ timers */
static void s_agent_dead (s_server_t *self, s_agent_t *a, int64_t silent_ms)
{
    char msg[160];
    snprintf (msg, sizeof msg, "agent unavailable: no answer for %lld ms",
              (long long)silent_ms);
    lss_log_warn ("agent unavailable", "{s:s, s:I, s:i, s:i}", "endpoint", a->endpoint,
                  "silent_ms", (json_int_t)silent_ms, "executions", a->nexec, "files",
                  a->nfile);
    zlist_t *ex = zlist_new (), *fs = zlist_new ();
    for (s_exec_t *e = zhash_first (self->execs); e; e = zhash_next (self->execs))
        if (e->agent == a)
            zlist_append (ex, e);
    for (s_file_t *f = zhash_first (self->files); f; f = zhash_next (self->files))
        if (f->agent == a)
            zlist_append (fs, f);
    for (s_exec_t *e = zlist_first (ex); e; e = zlist_next (ex))
        s_exec_end_error (self, e, msg, false, false, "agent_lost");
    for (s_file_t *f = zlist_first (fs); f; f = zlist_next (fs)) {
        s_error (self, f->req, f->rref, "agent_unavailable", msg, NULL);
        lss_metric_inc (self->m.files, 1, "agent_unavailable");
        s_file_free (self, f);
    }
    zlist_destroy (&ex);
    zlist_destroy (&fs);
    /* the cached endpoint may be stale: resolve again next time */
    s_agent_close (self, a, "unavailable");
}

static void s_tick (s_server_t *self)
{
    int64_t now = lss_time_mono_ms ();
    /* requesters */
    zlist_t *list = zlist_new ();
    for (s_req_t *r = zhash_first (self->reqs); r; r = zhash_next (self->reqs))
        if (now - r->last_seen > self->conf->requester_timeout_ms)
            zlist_append (list, r);
    for (s_req_t *r = zlist_first (list); r; r = zlist_next (list)) {
        if (r->nexec > 0 && !r->lost)
            s_req_lost (self, r, "silent");
        if (r->nexec == 0 && r->nfile == 0) {
            zhash_delete (self->reqs, r->key);
            free (r);
        }
    }
    zlist_purge (list);
    /* executions: retries, deadlines, leftovers of lost requesters, waiting resolutions */
    zlist_t *ready = zlist_new ();
    zlist_autofree (ready);
    for (s_exec_t *e = zhash_first (self->execs); e; e = zhash_next (self->execs))
        zlist_append (list, e);
    for (s_exec_t *e = zlist_first (list); e; e = zlist_next (list)) {
        if (e->phase == PH_RESOLVING) {
            if (e->req->lost)
                s_exec_finish (self, e, NULL, "requester_lost");
            else if (s_resolution (self, e->sandbox, now))
                zlist_append (ready, e->sandbox);
            continue;
        }
        if (s_exec_pump (self, e))
            continue;
        if (e->req->lost && now - e->lost_at > EXEC_GRACE_MS) {
            s_exec_end_error (self, e, "requester lost", false, true, "requester_lost");
            continue;
        }
        if (now >= e->deadline && !e->deadline_hit) {
            e->deadline_hit = true;
            e->deadline_cancel = !e->cancel_sent;
            s_exec_cancel_at_agent (self, e);
        }
        if (now >= e->deadline + EXEC_GRACE_MS) {
            if (e->end) {
                e->end->timed_out = true;
                if (!e->end->error)
                    e->end->error = strdup ("deadline passed before the output was delivered");
                s_exec_finish (self, e, NULL, "timed_out");
            } else
                s_exec_end_error (self, e,
                                  "deadline passed and the agent did not end the execution",
                                  true, false, "timed_out");
        }
    }
    zlist_purge (list);
    /* file requests */
    for (s_file_t *f = zhash_first (self->files); f; f = zhash_next (self->files))
        zlist_append (list, f);
    for (s_file_t *f = zlist_first (list); f; f = zlist_next (list)) {
        if (now >= f->deadline) {
            s_error (self, f->req, f->rref, f->agent ? "agent_timeout" : "store_unavailable",
                     f->agent ? "the agent did not answer in time"
                              : "the sandbox could not be resolved in time",
                     NULL);
            lss_metric_inc (self->m.files, 1, "timeout");
            s_file_free (self, f);
        } else if (!f->agent && s_resolution (self, f->sandbox, now))
            zlist_append (ready, f->sandbox);
    }
    zlist_purge (list);
    for (const char *ref = zlist_first (ready); ref; ref = zlist_next (ready)) {
        s_res_t *r = zhash_lookup (self->cache, ref);
        if (r && r->valid && !r->inflight)
            s_resolved (self, ref, r);
    }
    zlist_destroy (&ready);
    /* agents: ping, declare dead, close idle */
    for (s_agent_t *a = zhash_first (self->agents); a; a = zhash_next (self->agents))
        zlist_append (list, a);
    for (s_agent_t *a = zlist_first (list); a; a = zlist_next (list)) {
        int64_t silent = now - a->last_rx;
        if (silent > self->conf->agent_timeout_ms) {
            s_agent_dead (self, a, silent);
            continue;
        }
        if (a->nexec == 0 && a->nfile == 0 && now - a->last_used > EXEC_AGENT_IDLE_MS) {
            s_agent_close (self, a, "idle");
            continue;
        }
        if (now - a->last_ping >= self->ping_ivl_ms) {
            lss_agent_ping_t ping = {.nonce = now};
            s_send_agent (self, a, LSS_MSG_agent_ping, &ping, NULL, NULL, NULL);
            a->last_ping = now;
        }
    }
    zlist_purge (list);
    /* stale resolutions */
    for (s_res_t *r = zhash_first (self->cache); r; r = zhash_next (self->cache))
        if (!r->inflight && now - r->at >= EXEC_RESOLVE_TTL_MS)
            zlist_append (list, (void *)zhash_cursor (self->cache));
    for (const char *k = zlist_first (list); k; k = zlist_next (list))
        zhash_delete (self->cache, k);
    zlist_destroy (&list);
}

/* ------------------------------------------------------------------ run */
int executor_server_run (const executor_conf_t *conf, lss_service_t *svc)
{
    s_server_t self = {.conf = conf, .svc = svc};
    int rc = 1;
    char pub[LSS_CURVE_KEY_LEN + 1];
    if (conf->curve_secret[0]) {
        if (lss_curve_public_of (conf->curve_secret, pub)) {
            lss_log_error ("executor.curve_secret is not a 40-character Z85 key", NULL);
            return 1;
        }
        lss_log_info ("CURVE to agents that ask for it", "{s:s}", "public_key", pub);
    }
    self.ping_ivl_ms = conf->agent_timeout_ms / 4;
    if (self.ping_ivl_ms > 5000)
        self.ping_ivl_ms = 5000;
    if (self.ping_ivl_ms < 25)
        self.ping_ivl_ms = 25;
    lss_bus_opts_t ropts = conf->bus;
    if (ropts.max_message < EXEC_MIN_MAX_MESSAGE)
        ropts.max_message = EXEC_MIN_MAX_MESSAGE;
    self.agent_opts = ropts;
    self.agent_opts.sndhwm = 1000; /* per agent; the agent itself queues 128 */
    self.agent_opts.rcvhwm = 1000;
    self.agent_opts.reconnect_ivl_max_ms = 1000;

    self.m.in_flight =
        lss_metrics_gauge ("lss_executor_executions_in_flight", "Executions in flight.", NULL);
    self.m.started = lss_metrics_counter ("lss_executor_executions_started_total",
                                          "Executions accepted.", NULL);
    self.m.ended = lss_metrics_counter (
        "lss_executor_executions_ended_total",
        "Executions ended, by outcome (exited, error, timed_out, cancelled, agent_lost, "
        "requester_lost, refused).",
        "outcome");
    self.m.bytes = lss_metrics_counter ("lss_executor_output_bytes_total",
                                        "Output bytes relayed to requesters.", NULL);
    self.m.buffered = lss_metrics_gauge ("lss_executor_buffered_bytes",
                                         "Output bytes held for requesters.", NULL);
    self.m.files = lss_metrics_counter ("lss_executor_file_requests_total",
                                        "File and health requests, by outcome.", "outcome");
    self.m.agents =
        lss_metrics_gauge ("lss_executor_agent_connections", "Agent connections open.", NULL);

    self.reqs = zhash_new ();
    self.agents = zhash_new ();
    self.execs = zhash_new ();
    self.execs_by_rkey = zhash_new ();
    self.files = zhash_new ();
    self.cache = zhash_new ();
    self.router = lss_bus_socket_new (ZMQ_ROUTER, conf->router_endpoint, &ropts);
    self.pub = lss_bus_pub_new (conf->pub_endpoint, conf->src, &conf->bus);
    self.resolver = exec_resolver_new (conf->cfg, conf->store_dsn);
    if (!self.router || !self.pub || !self.resolver) {
        lss_log_error ("cannot set up the executor's sockets", "{s:s, s:s}", "router",
                       conf->router_endpoint, "pub", conf->pub_endpoint);
        goto cleanup;
    }
    lss_log_info ("executor serving", "{s:s, s:s, s:I, s:I}", "router", conf->router_endpoint,
                  "pub", conf->pub_endpoint, "window", (json_int_t)conf->window, "max_streams",
                  (json_int_t)conf->max_streams);
    if (svc)
        lss_service_set_ready (svc, true, NULL);

    int stop_fd = svc ? lss_service_stop_fd (svc) : -1;
    zmq_pollitem_t items[3 + EXEC_MAX_AGENTS];
    s_agent_t *owners[3 + EXEC_MAX_AGENTS];
    int64_t next_tick = 0;
    while (!zsys_interrupted && !(svc && lss_service_stopping (svc))) {
        size_t n = 0;
        items[n++] = (zmq_pollitem_t){zsock_resolve (self.router), 0, ZMQ_POLLIN, 0};
        items[n++] =
            (zmq_pollitem_t){zsock_resolve (zactor_sock (self.resolver)), 0, ZMQ_POLLIN, 0};
        items[n++] = (zmq_pollitem_t){NULL, stop_fd, stop_fd >= 0 ? ZMQ_POLLIN : 0, 0};
        for (s_agent_t *a = zhash_first (self.agents); a && n < 3 + EXEC_MAX_AGENTS;
             a = zhash_next (self.agents)) {
            owners[n] = a;
            items[n++] = (zmq_pollitem_t){zsock_resolve (a->sock), 0, ZMQ_POLLIN, 0};
        }
        int64_t now = lss_time_mono_ms ();
        long wait = next_tick > now ? (long)(next_tick - now) : 0;
        int ready = zmq_poll (items, (int)n, wait);
        if (ready < 0 && errno != EINTR) {
            lss_log_error ("poll failed", "{s:s}", "error", zmq_strerror (errno));
            goto cleanup;
        }
        if (svc)
            lss_service_heartbeat (svc);
        if (ready > 0) {
            /* agents first: handling requests may add agents, never remove them */
            for (size_t i = 3; i < n; i++)
                if (items[i].revents)
                    s_on_agent (&self, owners[i]);
            if (items[0].revents)
                s_on_router (&self);
            if (items[1].revents)
                s_on_resolver (&self);
        }
        now = lss_time_mono_ms ();
        if (now >= next_tick) {
            s_tick (&self);
            next_tick = now + 50;
        }
    }
    rc = 0;
cleanup:
    /* tell every requester its executions are over */
    if (self.execs) {
        zlist_t *ex = zlist_new ();
        for (s_exec_t *e = zhash_first (self.execs); e; e = zhash_next (self.execs))
            zlist_append (ex, e);
        for (s_exec_t *e = zlist_first (ex); e; e = zlist_next (ex)) {
            s_exec_cancel_at_agent (&self, e);
            if (self.router)
                s_exec_end_error (&self, e, "the executor is stopping", false, true,
                                  "cancelled");
            else
                s_exec_free (&self, e);
        }
        zlist_destroy (&ex);
    }
    if (self.files) {
        zlist_t *fs = zlist_new ();
        for (s_file_t *f = zhash_first (self.files); f; f = zhash_next (self.files))
            zlist_append (fs, f);
        for (s_file_t *f = zlist_first (fs); f; f = zlist_next (fs))
            s_file_free (&self, f);
        zlist_destroy (&fs);
    }
    if (self.agents) {
        zlist_t *as = zlist_new ();
        for (s_agent_t *a = zhash_first (self.agents); a; a = zhash_next (self.agents))
            zlist_append (as, a);
        for (s_agent_t *a = zlist_first (as); a; a = zlist_next (as))
            s_agent_close (&self, a, "stopping");
        zlist_destroy (&as);
    }
    if (self.reqs)
        for (s_req_t *r = zhash_first (self.reqs); r; r = zhash_next (self.reqs))
            free (r);
    zhash_destroy (&self.reqs);
    zhash_destroy (&self.agents);
    zhash_destroy (&self.execs);
    zhash_destroy (&self.execs_by_rkey);
    zhash_destroy (&self.files);
    zhash_destroy (&self.cache);
    zactor_destroy (&self.resolver);
    lss_bus_pub_destroy (&self.pub);
    zsock_destroy (&self.router);
    return rc;
}
