/*  api_fast — reads answered on the libwebsockets thread. See api_fast.h. */
#include "api_fast.h"

#include <pthread.h>
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
    s_m_fast = lss_metrics_counter ("lss_api_fast_answers_total",
                                    "Requests answered on the event loop from memory, without "
                                    "a worker.",
                                    NULL);
}

api_resp_t *api_fast_answer (api_ctx_t *ctx, const api_req_t *req)
{
    if (req->to.route != API_R_SANDBOX_GET || !req->token || !api_key_well_formed (req->token))
        return NULL;
    const char *id = req->match.id;
    if (strncmp (id, "sb-", 3) != 0 || strlen (id) >= API_SB_ID_SIZE)
        return NULL;
    char hash[API_HASH_HEX_SIZE];
    if (api_sha256_hex (req->token, hash))
        return NULL;
    int64_t now_ms = lss_time_now_ms ();
    api_principal_t who;
    if (!api_keycache_get (ctx->keycache, hash, now_ms, &who))
        return NULL;
    api_sandbox_row_t row;
    if (!api_cache_get_owner (ctx->cache, id, &row) ||
        (strcmp (row.user_id, who.user_id) != 0 && !api_principal_admin (&who)))
        return NULL; /* unknown, or shared by a permission: the worker checks */
    bool deleted = false;
    json_t *obj = api_cache_get_sandbox (ctx->cache, id, &deleted);
    if (!obj)
        return NULL;
    const char *klass = api_route_rate_class (req->to.route);
    int64_t window_s = ctx->rate_window_ms / 1000;
    if (window_s < 1)
        window_s = 1;
    api_reply_to_t to = req->to;
    if (klass && !api_rlease_spend (ctx->rlease, klass, who.principal,
                                    api_rate_limit_of (ctx, &who, klass), window_s,
                                    now_ms / 1000, &to.rl)) {
        json_decref (obj);
        return NULL;
    }
    to.has_rl = klass != NULL;
    api_resp_t *r = to.has_rl && !to.rl.allowed
                        ? api_resp_rate_limited (&to)
                        : api_resp_with_json (&to, 200, api_view_sandbox (obj, &row));
    json_decref (obj);
    pthread_once (&s_once, s_metrics_init);
    lss_metric_inc (s_m_fast, 1);
    return r;
}
