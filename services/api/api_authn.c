/*  api_authn — who is calling, how often, and what they may touch. See api_worker.h.
 *
 *  API keys: the key's SHA-256 is looked up in the Redis cache ("ak:<hash>", TTL
 *  api.key_cache_ttl, never past the key's expiry), else in PostgreSQL; the stored hash
 *  is compared with the computed one in constant time. Revocation deletes the cache
 *  entry, so it takes effect at once on every replica sharing Redis.
 *  JWTs: HS256 with api.jwt_secret; a token with a jti is checked against the revoked
 *  list (cache "jwt:<jti>" = "ok" | "revoked", PostgreSQL behind it). The user behind
 *  sub must exist and be enabled ("usr:<id>" cache).
 *  When Redis is down every lookup goes to PostgreSQL and rate limits let requests
 *  through (logged at most once a second, counted in lss_api_ratelimit_failopen_total).
 */
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "api_auth.h"
#include "api_worker.h"
#include "lss_log.h"
#include "lss_metrics.h"
#include "lss_util.h"

static lss_metric_t *s_m_failopen, *s_m_auth;

static void s_metrics_init (void)
{
    s_m_failopen =
        lss_metrics_counter ("lss_api_ratelimit_failopen_total",
                             "Requests let through because Redis could not count them.", NULL);
    s_m_auth = lss_metrics_counter ("lss_api_auth_total",
                                    "Authentications by method and result.", "method,result");
}

/*  Registered once whichever worker asks first (workers run in parallel). */
static pthread_once_t s_metrics_once = PTHREAD_ONCE_INIT;

static lss_metric_t *s_failopen (void)
{
    pthread_once (&s_metrics_once, s_metrics_init);
    return s_m_failopen;
}

static lss_metric_t *s_auth_metric (void)
{
    pthread_once (&s_metrics_once, s_metrics_init);
    return s_m_auth;
}

static int s_fail (char *msg, size_t size, int status, const char *text)
{
    snprintf (msg, size, "%s", text);
    return status;
}

static void s_fill_user (api_principal_t *who, const api_user_t *u)
{
    snprintf (who->user_id, sizeof who->user_id, "%s", u->id);
    snprintf (who->username, sizeof who->username, "%s", u->username);
    snprintf (who->role, sizeof who->role, "%s", u->role);
}

/*  Encodes the cacheable part of an API key lookup. */
static char *s_key_cache_value (const api_key_t *k, const api_user_t *u)
{
    json_t *v =
        json_pack ("{s:s, s:s, s:s, s:b, s:s, s:s, s:I, s:I, s:[I,I,I]}", "u", u->id, "n",
                   u->username, "r", u->role, "d", u->disabled, "k", k->id, "h", k->hash, "e",
                   (json_int_t)k->expires_ms, "x", (json_int_t)k->revoked_ms, "rl",
                   (json_int_t)k->rate_default, (json_int_t)k->rate_create_sandbox,
                   (json_int_t)k->rate_execute_code);
    char *text = v ? json_dumps (v, JSON_COMPACT) : NULL;
    json_decref (v);
    return text;
}

/*  Decodes a cache value; -1 if it does not have the expected shape (then the database
 *  is asked, and the bad entry overwritten). */
static int s_key_cache_parse (const char *text, api_key_t *k, api_user_t *u)
{
    json_error_t e;
    json_t *v = json_loads (text, JSON_REJECT_DUPLICATES, &e);
    const char *uid = NULL, *name = NULL, *role = NULL, *kid = NULL, *hash = NULL;
    int disabled = 0;
    json_int_t exp = 0, rev = 0, r1 = 0, r2 = 0, r3 = 0;
    int rc = -1;
    if (v &&
        json_unpack (v, "{s:s, s:s, s:s, s:b, s:s, s:s, s:I, s:I, s:[I,I,I]}", "u", &uid, "n",
                     &name, "r", &role, "d", &disabled, "k", &kid, "h", &hash, "e", &exp, "x",
                     &rev, "rl", &r1, &r2, &r3) == 0 &&
        strlen (uid) < sizeof u->id && strlen (name) < sizeof u->username &&
        strlen (role) < sizeof u->role && strlen (kid) < sizeof k->id &&
        strlen (hash) < sizeof k->hash) {
        memset (u, 0, sizeof *u);
        memset (k, 0, sizeof *k);
        snprintf (u->id, sizeof u->id, "%s", uid);
        snprintf (u->username, sizeof u->username, "%s", name);
        snprintf (u->role, sizeof u->role, "%s", role);
        u->disabled = disabled;
        snprintf (k->id, sizeof k->id, "%s", kid);
        snprintf (k->user_id, sizeof k->user_id, "%s", uid);
        snprintf (k->hash, sizeof k->hash, "%s", hash);
        k->expires_ms = exp;
        k->revoked_ms = rev;
        k->rate_default = r1;
        k->rate_create_sandbox = r2;
        k->rate_execute_code = r3;
        rc = 0;
    }
    json_decref (v);
    return rc;
}

static int s_authn_key (api_worker_t *w, const char *token, api_principal_t *who, char *msg,
                        size_t msg_size)
{
    if (!api_key_well_formed (token))
        return s_fail (msg, msg_size, 401, "invalid API key");
    char hash[API_HASH_HEX_SIZE], ckey[80];
    if (api_sha256_hex (token, hash))
        return s_fail (msg, msg_size, 503, "cannot check credentials now");
    snprintf (ckey, sizeof ckey, "ak:%s", hash);
    int64_t now = lss_time_now_ms ();
    if (api_keycache_get (w->ctx->keycache, hash, now, who) == 1)
        return 0;
    uint64_t generation = api_keycache_generation (w->ctx->keycache);
    api_key_t key;
    api_user_t user;
    char *cached = NULL;
    bool from_cache = false;
    if (api_redis_cache_get (w->redis, ckey, &cached) == 1 &&
        s_key_cache_parse (cached, &key, &user) == 0)
        from_cache = true;
    free (cached);
    if (!from_cache) {
        int rc = api_db_key_lookup (w->db, hash, &key, &user);
        if (rc == API_DB_NOT_FOUND)
            return s_fail (msg, msg_size, 401, "invalid API key");
        if (rc != API_DB_OK)
            return s_fail (msg, msg_size, 503, "cannot check credentials now");
        int64_t ttl = w->ctx->key_cache_ttl_ms;
        if (key.expires_ms) {
            int64_t left = key.expires_ms - lss_time_now_ms ();
            if (left < ttl)
                ttl = left;
        }
        char *value = ttl > 0 ? s_key_cache_value (&key, &user) : NULL;
        if (value)
            api_redis_cache_set (w->redis, ckey, value, ttl);
        free (value);
    }
    if (strlen (key.hash) != 64 || !api_ct_equal (key.hash, hash, 64))
        return s_fail (msg, msg_size, 401, "invalid API key");
    if (key.revoked_ms)
        return s_fail (msg, msg_size, 401, "API key revoked");
    if (key.expires_ms && key.expires_ms <= lss_time_now_ms ())
        return s_fail (msg, msg_size, 401, "API key expired");
    if (user.disabled)
        return s_fail (msg, msg_size, 401, "user disabled");
    s_fill_user (who, &user);
    snprintf (who->key_id, sizeof who->key_id, "%s", key.id);
    snprintf (who->principal, sizeof who->principal, "%s", key.id);
    who->rate_default = key.rate_default;
    who->rate_create_sandbox = key.rate_create_sandbox;
    who->rate_execute_code = key.rate_execute_code;
    int64_t until = now + w->ctx->key_cache_ttl_ms;
    if (key.expires_ms && key.expires_ms < until)
        until = key.expires_ms;
    api_keycache_put (w->ctx->keycache, generation, hash, who, until);
    return 0;
}

static int s_user_cached (api_worker_t *w, const char *id, api_user_t *u)
{
    char ckey[80], *cached = NULL;
    snprintf (ckey, sizeof ckey, "usr:%s", id);
    if (api_redis_cache_get (w->redis, ckey, &cached) == 1) {
        json_t *v = json_loads (cached, 0, NULL);
        const char *name = NULL, *role = NULL;
        int disabled = 0;
        int ok =
            v &&
            json_unpack (v, "{s:s, s:s, s:b}", "n", &name, "r", &role, "d", &disabled) == 0 &&
            strlen (name) < sizeof u->username && strlen (role) < sizeof u->role;
        if (ok) {
            memset (u, 0, sizeof *u);
            snprintf (u->id, sizeof u->id, "%s", id);
            snprintf (u->username, sizeof u->username, "%s", name);
            snprintf (u->role, sizeof u->role, "%s", role);
            u->disabled = disabled;
        }
        json_decref (v);
        free (cached);
        if (ok)
            return API_DB_OK;
    }
    int rc = api_db_user_get (w->db, id, u);
    if (rc == API_DB_OK) {
        json_t *v =
            json_pack ("{s:s, s:s, s:b}", "n", u->username, "r", u->role, "d", u->disabled);
        char *text = v ? json_dumps (v, JSON_COMPACT) : NULL;
        if (text)
            api_redis_cache_set (w->redis, ckey, text, w->ctx->key_cache_ttl_ms);
        free (text);
        json_decref (v);
    }
    return rc;
}

static int s_authn_jwt (api_worker_t *w, const char *token, api_principal_t *who, char *msg,
                        size_t msg_size)
{
    if (!w->ctx->jwt_secret)
        return s_fail (msg, msg_size, 401,
                       "invalid token (JWTs are not enabled on this server)");
    json_t *claims = NULL;
    char why[128];
    if (api_jwt_verify (w->ctx->jwt_secret, w->ctx->jwt_secret_len, token,
                        lss_time_now_ms () / 1000, &claims, why, sizeof why)) {
        lss_log_info ("jwt refused", "{s:s}", "reason", why);
        return s_fail (msg, msg_size, 401,
                       strstr (why, "expired") ? "token expired" : "invalid token");
    }
    const char *sub = json_string_value (json_object_get (claims, "sub"));
    const char *jti = json_string_value (json_object_get (claims, "jti"));
    json_int_t exp = json_integer_value (json_object_get (claims, "exp"));
    int status = 0;
    if (!sub || strlen (sub) >= API_ID_SIZE) {
        status = s_fail (msg, msg_size, 401, "invalid token");
        goto done;
    }
    if (jti) {
        if (strlen (jti) >= sizeof who->jti) {
            status = s_fail (msg, msg_size, 401, "invalid token");
            goto done;
        }
        char ckey[96], *cached = NULL;
        snprintf (ckey, sizeof ckey, "jwt:%s", jti);
        int hit = api_redis_cache_get (w->redis, ckey, &cached);
        int revoked =
            hit == 1 ? strcmp (cached, "revoked") == 0 : api_db_jti_revoked (w->db, jti);
        free (cached);
        if (revoked < 0) {
            status = s_fail (msg, msg_size, 503, "cannot check credentials now");
            goto done;
        }
        if (hit != 1) {
            int64_t ttl = (int64_t)exp * 1000 - lss_time_now_ms ();
            if (ttl > w->ctx->key_cache_ttl_ms)
                ttl = w->ctx->key_cache_ttl_ms;
            if (ttl > 0)
                api_redis_cache_set (w->redis, ckey, revoked ? "revoked" : "ok", ttl);
        }
        if (revoked) {
            status = s_fail (msg, msg_size, 401, "token revoked");
            goto done;
        }
        snprintf (who->jti, sizeof who->jti, "%s", jti);
    }
    api_user_t user;
    int rc = s_user_cached (w, sub, &user);
    if (rc == API_DB_NOT_FOUND || (rc == API_DB_OK && user.disabled)) {
        status = s_fail (msg, msg_size, 401, "invalid token");
        goto done;
    }
    if (rc != API_DB_OK) {
        status = s_fail (msg, msg_size, 503, "cannot check credentials now");
        goto done;
    }
    s_fill_user (who, &user);
    who->token_exp_s = exp;
    snprintf (who->principal, sizeof who->principal, "usr:%s", user.id);
done:
    json_decref (claims);
    return status;
}

int api_authn (api_worker_t *w, const char *token, api_principal_t *who, char *msg,
               size_t msg_size)
{
    memset (who, 0, sizeof *who);
    if (!token || !*token) {
        lss_metric_inc (s_auth_metric (), 1, "none", "missing");
        return s_fail (msg, msg_size, 401,
                       "missing credentials: send Authorization: Bearer <API key or token>");
    }
    bool key = strncmp (token, API_KEY_PREFIX, strlen (API_KEY_PREFIX)) == 0;
    int rc = key ? s_authn_key (w, token, who, msg, msg_size)
                 : s_authn_jwt (w, token, who, msg, msg_size);
    lss_metric_inc (s_auth_metric (), 1, key ? "api_key" : "jwt",
                    rc == 0     ? "ok"
                    : rc == 401 ? "refused"
                                : "unavailable");
    return rc;
}

void api_authn_forget_key (api_worker_t *w, const char *hash)
{
    char ckey[80];
    snprintf (ckey, sizeof ckey, "ak:%s", hash);
    api_keycache_forget (w->ctx->keycache, hash);
    api_redis_cache_del (w->redis, ckey);
    /* the other replicas empty their key caches when they see the counter change */
    if (api_redis_counter_incr (w->redis, API_KEYCACHE_EPOCH_KEY) != 0)
        lss_log_warn ("revocation counter not incremented: other replicas may accept the "
                      "key until their cached lookup expires",
                      NULL);
}

void api_authn_forget_jti (api_worker_t *w, const char *jti, int64_t exp_ms)
{
    char ckey[96];
    snprintf (ckey, sizeof ckey, "jwt:%s", jti);
    int64_t ttl = exp_ms - lss_time_now_ms ();
    if (ttl > 0)
        api_redis_cache_set (w->redis, ckey, "revoked", ttl);
    else
        api_redis_cache_del (w->redis, ckey);
}

int64_t api_rate_limit_of (const api_ctx_t *c, const api_principal_t *who, const char *klass)
{
    if (strcmp (klass, "create_sandbox") == 0)
        return who->rate_create_sandbox ? who->rate_create_sandbox : c->rate_create_sandbox;
    if (strcmp (klass, "execute_code") == 0)
        return who->rate_execute_code ? who->rate_execute_code : c->rate_execute_code;
    return who->rate_default ? who->rate_default : c->rate_default;
}

int api_rate_limit (api_worker_t *w, const api_principal_t *who, const char *klass,
                    api_reply_to_t *to)
{
    api_ctx_t *c = w->ctx;
    int64_t limit = api_rate_limit_of (c, who, klass);
    int64_t window_s = c->rate_window_ms / 1000;
    if (window_s < 1)
        window_s = 1;
    int64_t now_s = lss_time_now_ms () / 1000;
    api_rl_result_t rl;
    bool refill = false;
    if (api_rlease_spend (c->rlease, klass, who->principal, limit, window_s, now_s, &rl,
                          &refill)) {
        if (refill)
            api_rlease_refill_post (c->rlease, c->jobs, klass, who->principal, limit, window_s,
                                    now_s);
    } else {
        int64_t take = api_rlease_block (limit), count;
        if (api_redis_rate_take (w->redis, klass, who->principal, take, window_s, now_s,
                                 &count)) {
            lss_metric_inc (s_failopen (), 1);
            int64_t now = lss_time_mono_ms ();
            if (now - w->last_rl_warn_ms > 1000) {
                w->last_rl_warn_ms = now;
                lss_log_warn ("rate limit not counted: Redis unavailable (request allowed)",
                              "{s:s}", "class", klass);
            }
            return 0;
        }
        api_rlease_add (c->rlease, klass, who->principal, limit, window_s, now_s, take, count,
                        &rl);
    }
    to->has_rl = true;
    to->rl = rl;
    return rl.allowed ? 0 : 429;
}

api_resp_t *api_resp_rate_limited (const api_reply_to_t *to)
{
    api_resp_t *r = api_resp_error (to, 429, "rate_limited", "rate limit exceeded; retry later",
                                    json_pack ("{s:I, s:I}", "limit", (json_int_t)to->rl.limit,
                                               "reset", (json_int_t)to->rl.reset_s));
    if (r)
        api_resp_header (r, "Retry-After", "%lld", (long long)to->rl.retry_after_s);
    return r;
}

int api_sandbox_access (api_worker_t *w, const api_principal_t *who, const char *id,
                        const char *action, api_sandbox_row_t *row)
{
    if (!id || strncmp (id, "sb-", 3) != 0 || strlen (id) >= API_SB_ID_SIZE)
        return 404;
    if (!api_cache_get_owner (w->ctx->cache, id, row)) {
        int rc = api_db_sandbox_get (w->db, id, row);
        if (rc == API_DB_NOT_FOUND)
            return 404;
        if (rc != API_DB_OK)
            return 503;
        api_cache_put_owner (w->ctx->cache, row);
    }
    if (strcmp (row->user_id, who->user_id) == 0 || api_principal_admin (who))
        return 0;
    int granted = api_db_perm_check (w->db, who->user_id, "sandbox", id, action);
    if (granted < 0)
        return 503;
    return granted ? 0 : 404;
}

int api_sandbox_object (api_worker_t *w, const char *id, json_t **obj)
{
    bool deleted;
    *obj = api_cache_get_sandbox (w->ctx->cache, id, &deleted);
    if (*obj)
        return 0;
    if (deleted)
        return 404;
    char err[LSS_STORE_ERR_SIZE];
    int rc = lss_store_get (w->store, "Sandbox", w->ctx->namespace_, id, obj, err, sizeof err);
    if (rc == LSS_STORE_OK) {
        api_cache_put_sandbox (w->ctx->cache, id, *obj);
        return 0;
    }
    if (rc == LSS_STORE_NOT_FOUND)
        return 404;
    lss_log_warn ("store read failed", "{s:s, s:s}", "sandbox", id, "error", err);
    return 503;
}

api_resp_t *api_sandbox_load (api_worker_t *w, api_req_t *req, const api_principal_t *who,
                              const char *action, api_sandbox_row_t *row, json_t **obj)
{
    int st = api_sandbox_access (w, who, req->match.id, action, row);
    if (st == 0 && obj)
        st = api_sandbox_object (w, req->match.id, obj);
    if (st == 404)
        return api_resp_error (&req->to, 404, NULL, "sandbox not found", NULL);
    if (st)
        return api_resp_error (&req->to, 503, NULL, "dependency unavailable; retry", NULL);
    return NULL;
}
