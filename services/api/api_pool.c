/*  api_pool — the worker threads and the request dispatcher. See api_pool.h and
 *  api_worker.h.
 *
 *  Each worker connects its own PostgreSQL, Redis and store handles at start; a handle
 *  that cannot connect yet is retried by the calls themselves (api_db, api_redis and
 *  the store reconnect on their next call), so a worker starts even while a dependency
 *  is down and answers 503 until it is back. Jobs are taken one at a time from
 *  ctx->jobs; the pool stops when the mailbox is closed.
 */
#include "api_pool.h"

#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "api_worker.h"
#include "lss_log.h"
#include "lss_metrics.h"
#include "lss_util.h"

struct _api_pool_t {
    api_ctx_t *ctx;
    int count;
    pthread_t *threads;
    api_worker_t *workers;
    int started;
};

/*  The JSON body of a request, or NULL with *resp set to the 400 to answer. An empty
 *  body reads as {}. */
static json_t *s_body (api_req_t *req, api_resp_t **resp)
{
    *resp = NULL;
    if (req->body.len == 0)
        return json_object ();
    json_error_t e;
    json_t *v =
        json_loadb ((const char *)req->body.data, req->body.len, JSON_REJECT_DUPLICATES, &e);
    if (!v) {
        char msg[300];
        snprintf (msg, sizeof msg, "malformed JSON body: %s (line %d, column %d)", e.text,
                  e.line, e.column);
        *resp = api_resp_error (&req->to, 400, "invalid_request", msg, NULL);
    }
    return v;
}

static bool s_json_route (int route)
{
    switch (route) {
    case API_R_AUTH_TOKEN_CREATE:
    case API_R_SANDBOX_CREATE:
    case API_R_SANDBOX_EXECUTE:
    case API_R_PACKAGES:
    case API_R_WARMPOOL_CREATE:
    case API_R_WARMPOOL_PATCH:
    case API_R_APIKEY_CREATE:
    case API_R_USER_CREATE:
        return true;
    default:
        return false;
    }
}

api_resp_t *api_dispatch (api_worker_t *w, api_req_t *req)
{
    int route = req->to.route;
    api_principal_t who;
    char msg[256];
    int status = api_authn (w, req->token, &who, msg, sizeof msg);
    if (status) {
        api_resp_t *r = api_resp_error (&req->to, status, NULL, msg, NULL);
        if (r && status == 401)
            api_resp_header (r, "WWW-Authenticate", "Bearer");
        return r;
    }
    const char *klass = api_route_rate_class (route);
    if (klass && api_rate_limit (w, &who, klass, &req->to) == 429)
        return api_resp_rate_limited (&req->to);
    json_t *body = NULL;
    api_resp_t *resp = NULL;
    if (s_json_route (route) && !(body = s_body (req, &resp)))
        return resp;
    switch (route) {
    case API_R_SANDBOX_CREATE:
        resp = api_h_sandbox_create (w, req, &who, body);
        break;
    case API_R_SANDBOX_LIST:
        resp = api_h_sandbox_list (w, req, &who, body);
        break;
    case API_R_SANDBOX_GET:
        resp = api_h_sandbox_get (w, req, &who, body);
        break;
    case API_R_SANDBOX_DELETE:
        resp = api_h_sandbox_delete (w, req, &who, body);
        break;
    case API_R_SANDBOX_STATUS:
        resp = api_h_sandbox_status (w, req, &who, body);
        break;
    case API_R_SANDBOX_EXECUTIONS:
        resp = api_h_executions (w, req, &who, body);
        break;
    case API_R_SANDBOX_EXECUTE:
        resp = api_h_execute (w, req, &who, body);
        break;
    case API_R_PACKAGES:
        resp = api_h_packages (w, req, &who, body);
        break;
    case API_R_FILES_LIST:
    case API_R_FILE_GET:
    case API_R_FILE_PUT:
    case API_R_FILE_DELETE:
        resp = api_h_files (w, req, &who, body);
        break;
    case API_R_WARMPOOL_LIST:
    case API_R_WARMPOOL_CREATE:
    case API_R_WARMPOOLS_STATUS:
    case API_R_WARMPOOL_GET:
    case API_R_WARMPOOL_PATCH:
    case API_R_WARMPOOL_DELETE:
    case API_R_WARMPOOL_STATUS:
        resp = api_h_warmpools (w, req, &who, body);
        break;
    case API_R_RUNTIME_LIST:
    case API_R_RUNTIME_GET:
    case API_R_PROFILE_LIST:
    case API_R_PROFILE_GET:
        resp = api_h_catalog (w, req, &who, body);
        break;
    case API_R_USER_GET:
    case API_R_APIKEY_LIST:
    case API_R_APIKEY_CREATE:
    case API_R_APIKEY_DELETE:
    case API_R_USER_CREATE:
    case API_R_AUTH_TOKEN_CREATE:
    case API_R_AUTH_TOKEN_REVOKE:
        resp = api_h_users (w, req, &who, body);
        break;
    default:
        resp = api_resp_error (&req->to, 404, NULL, "no such route", NULL);
        break;
    }
    json_decref (body);
    return resp;
}

static lss_metric_t *s_m_publish_dropped;

static void s_metrics_init (void)
{
    s_m_publish_dropped = lss_metrics_counter (
        "lss_api_audit_events_dropped_total",
        "Audit events not published: the events thread was saturated.", NULL);
}

void api_publish (api_worker_t *w, const char *reason, const char *name, const char *user_id,
                  const char *trace, json_t *details)
{
    api_publish_msg_t *p = api_publish_msg_new (reason, name, user_id, trace, details);
    if (p && api_mailbox_post (w->ctx->events_inbox, &p->msg) != 0) {
        lss_metric_inc (s_m_publish_dropped, 1);
        api_msg_destroy (&p->msg);
    }
}

static void s_post_lws (api_worker_t *w, api_msg_t *m)
{
    if (m && api_mailbox_post_always (w->ctx->lws_inbox, m))
        api_msg_destroy (m);
}

static void s_job (api_worker_t *w, api_msg_t *m)
{
    switch (m->type) {
    case API_MSG_HTTP_REQ: {
        api_req_t *req = (api_req_t *)m;
        lss_log_set_trace (req->to.request_id);
        api_resp_t *resp = api_dispatch (w, req);
        if (resp)
            s_post_lws (w, &resp->msg);
        break;
    }
    case API_MSG_WS_AUTH: {
        api_ws_auth_t *a = (api_ws_auth_t *)m;
        lss_log_set_trace (a->request_id);
        api_ws_auth_done_t *done = api_h_ws_auth (w, a);
        if (done)
            s_post_lws (w, &done->msg);
        break;
    }
    case API_MSG_WS_ADMIT: {
        api_ws_admit_t *a = (api_ws_admit_t *)m;
        api_h_ws_admit (w, a); /* turns a into the answer */
        s_post_lws (w, m);
        return; /* ownership passed on */
    }
    case API_MSG_RL_REFILL:
        api_rlease_refill_run (w->ctx->rlease, w->redis, m);
        break;
    case API_MSG_AUDIT: {
        api_audit_msg_t *a = (api_audit_msg_t *)m;
        char err[256];
        if (api_db_exec_record (w->db, &a->row, err, sizeof err) != API_DB_OK)
            lss_log_warn ("execution audit row not written", "{s:s, s:s}", "execution",
                          a->row.id, "error", err);
        api_publish (w, "ExecEnded", a->row.sandbox_id, a->row.user_id, NULL,
                     json_pack ("{s:s, s:s, s:s, s:I, s:I, s:s}", "executionId", a->row.id,
                                "kind", a->row.kind, "status", a->row.status, "exitCode",
                                (json_int_t)a->row.exit_code, "durationMs",
                                (json_int_t)a->row.duration_ms, "transport", a->row.transport));
        break;
    }
    default:
        break;
    }
    lss_log_set_trace (NULL);
    api_msg_destroy (m);
}

static void *s_run (void *arg)
{
    api_worker_t *w = arg;
    char err[256];
    w->db = api_db_new (w->ctx->db_dsn, err, sizeof err);
    if (!w->db)
        lss_log_warn ("worker: PostgreSQL not reachable yet", "{s:i, s:s}", "worker", w->index,
                      "error", err);
    w->redis = api_redis_new (w->ctx->redis_url, w->ctx->redis_timeout_ms, err, sizeof err);
    if (!w->redis)
        lss_log_error ("worker: bad redis.url", "{s:s}", "error", err);
    w->store = lss_store_open (w->ctx->cfg, lss_config_str (w->ctx->cfg, "store.dsn"), err,
                               sizeof err);
    if (!w->store)
        lss_log_warn ("worker: store not reachable yet", "{s:i, s:s}", "worker", w->index,
                      "error", err);
    for (;;) {
        api_msg_t *m = api_mailbox_wait (w->ctx->jobs, -1);
        if (!m)
            break;
        /* a handle that failed at start is made again before each job until it works */
        if (!w->db)
            w->db = api_db_new (w->ctx->db_dsn, err, sizeof err);
        if (!w->store)
            w->store = lss_store_open (w->ctx->cfg, lss_config_str (w->ctx->cfg, "store.dsn"),
                                       err, sizeof err);
        s_job (w, m);
    }
    zsock_destroy (&w->warmpool);
    api_db_destroy (&w->db);
    api_redis_destroy (&w->redis);
    lss_store_destroy (&w->store);
    return NULL;
}

api_pool_t *api_pool_new (api_ctx_t *ctx)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once (&once, s_metrics_init);
    api_pool_t *self = calloc (1, sizeof *self);
    if (!self)
        return NULL;
    self->ctx = ctx;
    self->count = ctx->workers;
    self->threads = calloc ((size_t)self->count, sizeof *self->threads);
    self->workers = calloc ((size_t)self->count, sizeof *self->workers);
    if (!self->threads || !self->workers)
        goto fail;
    for (int i = 0; i < self->count; i++) {
        api_worker_t *w = &self->workers[i];
        w->ctx = ctx;
        w->index = i;
        snprintf (w->src, sizeof w->src, "api/%d/w%d", (int)getpid (), i);
        if (lss_thread_start (&self->threads[i], s_run, w))
            break;
        self->started++;
    }
    if (self->started == self->count)
        return self;
fail:
    api_pool_destroy (&self);
    return NULL;
}

void api_pool_destroy (api_pool_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    api_pool_t *self = *self_p;
    if (self->ctx->jobs)
        api_mailbox_close (self->ctx->jobs);
    for (int i = 0; i < self->started; i++)
        pthread_join (self->threads[i], NULL);
    free (self->threads);
    free (self->workers);
    free (self);
    *self_p = NULL;
}

int api_pool_bootstrap (api_ctx_t *ctx)
{
    api_worker_t w = {.ctx = ctx, .index = -1};
    char err[256];
    snprintf (w.src, sizeof w.src, "api/%d/boot", (int)getpid ());
    w.db = api_db_new (ctx->db_dsn, err, sizeof err);
    if (!w.db) {
        lss_log_error ("PostgreSQL not reachable", "{s:s}", "error", err);
        return -1;
    }
    int rc = api_db_migrate (w.db, err, sizeof err);
    if (rc != API_DB_OK) {
        lss_log_error ("api schema migration failed", "{s:s}", "error", err);
        api_db_destroy (&w.db);
        return -1;
    }
    rc = api_bootstrap_admin (&w);
    api_db_destroy (&w.db);
    return rc;
}
