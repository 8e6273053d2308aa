/*  api_fast — reads answered on the libwebsockets thread. See api_fast.h. */
#include "api_fast.h"

#include <czmq.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "api_auth.h"
#include "api_route.h"
#include "api_view.h"
#include "api_worker.h"
#include "lss_metrics.h"
#include "lss_util.h"

static lss_metric_t *s_m_fast;
static pthread_once_t s_once = PTHREAD_ONCE_INIT;

static void s_metrics_init (void)
{
    s_m_fast = lss_metrics_counter (
        "lss_api_fast_answers_total",
        "Requests answered, or executions started, on the event loop from memory, without "
        "a worker.",
        NULL);
}

/*  Rendered views, by sandbox id: the body made for the cached object `obj` (compared
 *  by identity: cached objects are shared and never modified, a new state is a new
 *  object). Used by the lws thread only, so no lock. */
#define S_VIEWS_MAX 4096
typedef struct {
    json_t *obj;
    char *body;
    size_t len;
} s_view_t;
static zhashx_t *s_views;

static void s_view_free (void **item)
{
    s_view_t *v = *item;
    if (v) {
        json_decref (v->obj);
        free (v->body);
        free (v);
    }
    *item = NULL;
}

static api_resp_t *s_view_answer (const api_reply_to_t *to, const char *id, json_t *obj,
                                  const api_sandbox_row_t *row)
{
    if (!s_views) {
        s_views = zhashx_new ();
        if (!s_views)
            return api_resp_with_json (to, 200, api_view_sandbox (obj, row));
        zhashx_set_destructor (s_views, s_view_free);
    }
    s_view_t *v = zhashx_lookup (s_views, id);
    if (v && v->obj == obj) {
        api_resp_t *r = api_resp_new (to, 200);
        char *copy = r ? malloc (v->len + 1) : NULL;
        if (!copy) {
            api_msg_destroy (r ? &r->msg : NULL);
            return NULL;
        }
        memcpy (copy, v->body, v->len + 1);
        api_resp_bytes (r, copy, v->len, "application/json");
        return r;
    }
    api_resp_t *r = api_resp_with_json (to, 200, api_view_sandbox (obj, row));
    if (!r || r->status != 200 || !r->body)
        return r;
    if (zhashx_size (s_views) >= S_VIEWS_MAX)
        zhashx_purge (s_views);
    s_view_t *nv = calloc (1, sizeof *nv);
    if (nv && (nv->body = malloc (r->len + 1))) {
        memcpy (nv->body, r->body, r->len);
        nv->body[r->len] = '\0';
        nv->len = r->len;
        nv->obj = json_incref (obj);
        zhashx_update (s_views, id, nv);
    } else
        free (nv);
    return r;
}

void api_fast_cleanup (void)
{
    zhashx_destroy (&s_views);
}

/*  The cached object of req's sandbox (a new reference) with *who and *row, when the key,
 *  the owner row and the object are all in memory and who owns the sandbox (or is an
 *  admin); else NULL. */
static json_t *s_lookup (api_ctx_t *ctx, const api_req_t *req, int64_t now_ms,
                         api_principal_t *who, api_sandbox_row_t *row)
{
    if (!req->token || !api_key_well_formed (req->token))
        return NULL;
    const char *id = req->match.id;
    if (strncmp (id, "sb-", 3) != 0 || strlen (id) >= API_SB_ID_SIZE)
        return NULL;
    char hash[API_HASH_HEX_SIZE];
    if (api_sha256_hex (req->token, hash) ||
        !api_keycache_get (ctx->keycache, hash, now_ms, who))
        return NULL;
    if (!api_cache_get_owner (ctx->cache, id, row) ||
        (strcmp (row->user_id, who->user_id) != 0 && !api_principal_admin (who)))
        return NULL; /* unknown, or shared by a permission: the worker checks */
    bool deleted = false;
    return api_cache_get_sandbox (ctx->cache, id, &deleted);
}

/*  Spends a rate-limit number of to's route class (to->rl, to->has_rl set). false when
 *  none is at hand: a worker counts the request then. */
static bool s_rate (api_ctx_t *ctx, const api_principal_t *who, int64_t now_ms,
                    api_reply_to_t *to)
{
    const char *klass = api_route_rate_class (to->route);
    int64_t window_s = ctx->rate_window_ms / 1000;
    if (window_s < 1)
        window_s = 1;
    int64_t limit = klass ? api_rate_limit_of (ctx, who, klass) : 0;
    bool refill = false;
    if (klass && !api_rlease_spend (ctx->rlease, klass, who->principal, limit, window_s,
                                    now_ms / 1000, &to->rl, &refill))
        return false;
    if (refill)
        api_rlease_refill_post (ctx->rlease, ctx->jobs, klass, who->principal, limit, window_s,
                                now_ms / 1000);
    to->has_rl = klass != NULL;
    return true;
}

static void s_count (void)
{
    pthread_once (&s_once, s_metrics_init);
    lss_metric_inc (s_m_fast, 1);
}

api_resp_t *api_fast_answer (api_ctx_t *ctx, const api_req_t *req)
{
    if (req->to.route != API_R_SANDBOX_GET)
        return NULL;
    int64_t now_ms = lss_time_now_ms ();
    api_principal_t who;
    api_sandbox_row_t row;
    json_t *obj = s_lookup (ctx, req, now_ms, &who, &row);
    if (!obj)
        return NULL;
    api_reply_to_t to = req->to;
    if (!s_rate (ctx, &who, now_ms, &to)) {
        json_decref (obj);
        return NULL;
    }
    api_resp_t *r = to.has_rl && !to.rl.allowed ? api_resp_rate_limited (&to)
                                                : s_view_answer (&to, req->match.id, obj, &row);
    json_decref (obj);
    s_count ();
    return r;
}

int api_fast_execute (api_ctx_t *ctx, api_req_t *req, api_resp_t **resp)
{
    *resp = NULL;
    if (req->to.route != API_R_SANDBOX_EXECUTE || req->body.len > API_FAST_BODY_MAX)
        return 0;
    int64_t now_ms = lss_time_now_ms ();
    api_principal_t who;
    api_sandbox_row_t row;
    json_t *obj = s_lookup (ctx, req, now_ms, &who, &row);
    bool running = obj && api_sandbox_running (obj);
    json_decref (obj);
    if (!running)
        return 0; /* the worker answers 404 / 409 (or finds it Running after all) */
    json_t *body = req->body.len ? json_loadb ((const char *)req->body.data, req->body.len,
                                               JSON_REJECT_DUPLICATES, NULL)
                                 : json_object ();
    json_t *fields = body ? json_object () : NULL;
    api_exec_limits_t lim = api_exec_limits (ctx);
    api_exec_spec_t spec;
    bool valid =
        fields && api_valid_execute (body, false, row.runtime, &lim, &spec, fields) == 0;
    json_decref (fields);
    json_decref (body);
    if (!valid)
        return 0; /* the worker words the 400 */
    api_reply_to_t to = req->to;
    if (!s_rate (ctx, &who, now_ms, &to)) {
        api_exec_spec_clear (&spec);
        return 0;
    }
    if (to.has_rl && !to.rl.allowed) {
        api_exec_spec_clear (&spec);
        *resp = api_resp_rate_limited (&to);
    } else
        *resp = api_exec_submit (ctx, &to, &row, &spec);
    api_msg_destroy (&req->msg);
    s_count ();
    return 1;
}
