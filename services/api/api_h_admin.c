/*  api_h_admin — warm pools, runtimes and profiles, users, API keys and tokens, and the
 *  bootstrap admin.
 *
 *  Warm pools are visible to admins and to the user who created them (recorded in
 *  PostgreSQL); someone else's pool answers 404. Non-admin pools are capped
 *  (S_USER_POOL_MIN_MAX warm pods kept, S_USER_POOL_MAX_MAX at most) so that one user
 *  cannot reserve the machine.
 */
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "api_auth.h"
#include "api_valid.h"
#include "api_view.h"
#include "api_worker.h"
#include "lss_log.h"
#include "lss_obj.h"
#include "lss_util.h"

#define S_USER_POOL_MIN_MAX 5
#define S_USER_POOL_MAX_MAX 20
#define S_LIST_MAX          1000 /* objects read for one catalog or pool list */

static api_resp_t *s_store_fail (const api_reply_to_t *to, int rc, const char *what)
{
    int status = api_store_status (rc);
    if (status == 404)
        return api_resp_error (to, 404, NULL, what, NULL);
    if (status == 409)
        return api_resp_error (to, 409, "conflict", "it changed or exists already; retry",
                               NULL);
    if (status == 400)
        return api_resp_error (to, 400, "invalid_request", "the object store refused it", NULL);
    return api_resp_error (to, 503, NULL, "object store unavailable", NULL);
}

/*  items (stolen) cut to the page of the request. */
static api_resp_t *s_page (api_req_t *req, const char *name, json_t *items)
{
    int limit, offset;
    json_t *fields = json_object ();
    if (api_valid_page (api_req_query (req, "limit"), api_req_query (req, "offset"), &limit,
                        &offset, fields)) {
        json_decref (items);
        return api_resp_invalid (&req->to, "invalid pagination", fields);
    }
    json_decref (fields);
    json_t *page = json_array ();
    size_t total = json_array_size (items);
    for (size_t i = (size_t)offset; i < total && json_array_size (page) < (size_t)limit; i++)
        json_array_append (page, json_array_get (items, i));
    json_decref (items);
    return api_resp_with_json (&req->to, 200,
                               api_view_page (name, page, limit, offset, (int64_t)total));
}

//  --------------------------------------------------------------------------
//  Runtimes and profiles

api_resp_t *api_h_catalog (api_worker_t *w, api_req_t *req, const api_principal_t *who,
                           const json_t *body)
{
    (void)who;
    (void)body;
    int route = req->to.route;
    bool runtimes = route == API_R_RUNTIME_LIST || route == API_R_RUNTIME_GET;
    const char *kind = runtimes ? "RuntimeEnvironment" : "SandboxProfile";
    const char *ns = runtimes ? "" : w->ctx->namespace_;
    char err[LSS_STORE_ERR_SIZE];
    if (route == API_R_RUNTIME_GET || route == API_R_PROFILE_GET) {
        char name[64];
        if (lss_obj_sanitize_label (req->match.id, name, sizeof name))
            return api_resp_error (&req->to, 404, NULL, "not found", NULL);
        json_t *obj = NULL;
        int rc = lss_store_get (w->store, kind, ns, name, &obj, err, sizeof err);
        if (rc)
            return s_store_fail (&req->to, rc,
                                 runtimes ? "runtime not found" : "profile not found");
        json_t *v = runtimes ? api_view_runtime (obj) : api_view_profile (obj);
        json_decref (obj);
        return api_resp_with_json (&req->to, 200, v);
    }
    json_t *list = NULL;
    int rc =
        lss_store_list (w->store, kind, ns, NULL, S_LIST_MAX, NULL, &list, err, sizeof err);
    if (rc)
        return s_store_fail (&req->to, rc, "not found");
    json_t *items = json_array ();
    size_t i;
    json_t *obj;
    json_array_foreach (json_object_get (list, "items"), i, obj) json_array_append_new (
        items, runtimes ? api_view_runtime (obj) : api_view_profile (obj));
    json_decref (list);
    return s_page (req, runtimes ? "runtimes" : "profiles", items);
}

//  --------------------------------------------------------------------------
//  Warm pools

/*  0 if who may see pool name; 404 / 503 otherwise. */
static int s_pool_access (api_worker_t *w, const api_principal_t *who, const char *name)
{
    if (api_principal_admin (who))
        return 0;
    char owner[API_ID_SIZE];
    int rc = api_db_warmpool_owner (w->db, w->ctx->namespace_, name, owner);
    if (rc == API_DB_NOT_FOUND)
        return 404;
    if (rc != API_DB_OK)
        return 503;
    return strcmp (owner, who->user_id) == 0 ? 0 : 404;
}

/*  The pools who may see, as store objects (a new array). */
static int s_pools (api_worker_t *w, const api_principal_t *who, json_t **out)
{
    char err[LSS_STORE_ERR_SIZE];
    json_t *list = NULL;
    int rc = lss_store_list (w->store, "WarmPool", w->ctx->namespace_, NULL, S_LIST_MAX, NULL,
                             &list, err, sizeof err);
    if (rc)
        return rc;
    *out = json_array ();
    size_t i;
    json_t *obj;
    json_array_foreach (json_object_get (list, "items"), i, obj)
    {
        const char *name = lss_obj_str (obj, "metadata.name");
        int st = name ? s_pool_access (w, who, name) : 404;
        if (st == 503) {
            json_decref (list);
            json_decref (*out);
            return LSS_STORE_UNAVAILABLE;
        }
        if (st == 0)
            json_array_append (*out, obj);
    }
    json_decref (list);
    return 0;
}

static api_resp_t *s_pool_create (api_worker_t *w, api_req_t *req, const api_principal_t *who,
                                  const json_t *body)
{
    char name[64];
    json_t *spec = NULL, *fields = json_object ();
    if (api_valid_warmpool (body, false, name, &spec, fields))
        return api_resp_invalid (&req->to, "invalid warm pool", fields);
    json_decref (fields);
    if (!api_principal_admin (who) && (lss_obj_int (spec, "minSize", 0) > S_USER_POOL_MIN_MAX ||
                                       lss_obj_int (spec, "maxSize", 0) > S_USER_POOL_MAX_MAX ||
                                       lss_obj_int (spec, "maxSize", 0) == 0)) {
        json_decref (spec);
        return api_resp_error (&req->to, 403, "forbidden",
                               "pools of non-admin users keep at most 5 pods and need maxSize "
                               "1..20",
                               NULL);
    }
    char rt[64];
    lss_obj_sanitize_label (lss_obj_str (spec, "runtime"), rt, sizeof rt);
    json_t *obj = json_pack ("{s:s, s:s, s:{s:s, s:s, s:{s:s, s:s}}, s:o}", "apiVersion",
                             LSS_OBJ_GROUP_VERSION, "kind", "WarmPool", "metadata", "name",
                             name, "namespace", w->ctx->namespace_, "labels", LSS_LABEL_PART_OF,
                             "llmsafespace", LSS_LABEL_RUNTIME, rt, "spec", spec);
    json_t *stored = NULL;
    char err[LSS_STORE_ERR_SIZE];
    int rc =
        obj ? lss_store_create (w->store, obj, &stored, err, sizeof err) : LSS_STORE_INVALID;
    json_decref (obj);
    if (rc == LSS_STORE_CONFLICT)
        return api_resp_error (&req->to, 409, "conflict", "a warm pool with this name exists",
                               NULL);
    if (rc)
        return s_store_fail (&req->to, rc, "not found");
    char dberr[256];
    if (api_db_warmpool_insert (w->db, w->ctx->namespace_, name, who->user_id, dberr,
                                sizeof dberr) != API_DB_OK) {
        lss_log_error ("warm pool owner not recorded: deleting the pool", "{s:s, s:s}", "pool",
                       name, "error", dberr);
        lss_store_delete (w->store, "WarmPool", w->ctx->namespace_, name, NULL, err,
                          sizeof err);
        json_decref (stored);
        return api_resp_error (&req->to, 503, NULL, "database unavailable", NULL);
    }
    lss_log_info ("warm pool created", "{s:s, s:s}", "pool", name, "user", who->user_id);
    api_resp_t *r = api_resp_with_json (&req->to, 201, api_view_warmpool (stored));
    json_decref (stored);
    return r;
}

static api_resp_t *s_pool_patch (api_worker_t *w, api_req_t *req, const api_principal_t *who,
                                 const json_t *body, const char *name)
{
    char ignored[64];
    json_t *patch = NULL, *fields = json_object ();
    if (api_valid_warmpool (body, true, ignored, &patch, fields))
        return api_resp_invalid (&req->to, "invalid warm pool patch", fields);
    json_decref (fields);
    char err[LSS_STORE_ERR_SIZE];
    api_resp_t *resp = NULL;
    for (int attempt = 0; attempt < 3 && !resp; attempt++) {
        json_t *obj = NULL, *stored = NULL;
        int rc = lss_store_get (w->store, "WarmPool", w->ctx->namespace_, name, &obj, err,
                                sizeof err);
        if (rc) {
            resp = s_store_fail (&req->to, rc, "warm pool not found");
            break;
        }
        json_t *spec = json_object_get (obj, "spec");
        if (!json_is_object (spec)) {
            spec = json_object ();
            json_object_set_new (obj, "spec", spec);
        }
        json_object_update (spec, patch);
        json_t *mn = json_object_get (spec, "minSize"), *mx = json_object_get (spec, "maxSize");
        if (json_integer_value (mx) != 0 && json_integer_value (mx) < json_integer_value (mn)) {
            json_decref (obj);
            resp = api_resp_invalid (
                &req->to, "invalid warm pool patch",
                json_pack ("{s:s}", "maxSize", "must be 0 (unlimited) or at least minSize"));
            break;
        }
        if (!api_principal_admin (who) &&
            (json_integer_value (mn) > S_USER_POOL_MIN_MAX ||
             json_integer_value (mx) > S_USER_POOL_MAX_MAX || json_integer_value (mx) == 0)) {
            json_decref (obj);
            resp = api_resp_error (&req->to, 403, "forbidden",
                                   "pools of non-admin users keep at most 5 pods and need "
                                   "maxSize 1..20",
                                   NULL);
            break;
        }
        rc = lss_store_update (w->store, obj, &stored, err, sizeof err);
        json_decref (obj);
        if (rc == LSS_STORE_CONFLICT)
            continue; /* someone (the scaler) wrote in between: read again */
        if (rc)
            resp = s_store_fail (&req->to, rc, "warm pool not found");
        else
            resp = api_resp_with_json (&req->to, 200, api_view_warmpool (stored));
        json_decref (stored);
    }
    json_decref (patch);
    return resp ? resp
                : api_resp_error (&req->to, 409, "conflict", "the pool keeps changing; retry",
                                  NULL);
}

static api_resp_t *s_pools_status (api_worker_t *w, api_req_t *req, const api_principal_t *who)
{
    json_t *pools = NULL;
    int rc = s_pools (w, who, &pools);
    if (rc)
        return s_store_fail (&req->to, rc, "not found");
    json_int_t avail = 0, assigned = 0, pending = 0;
    json_t *stats = json_object ();
    size_t i;
    json_t *obj;
    json_array_foreach (pools, i, obj)
    {
        json_int_t a = lss_obj_int (obj, "status.availablePods", 0);
        json_int_t s = lss_obj_int (obj, "status.assignedPods", 0);
        json_int_t p = lss_obj_int (obj, "status.pendingPods", 0);
        avail += a;
        assigned += s;
        pending += p;
        const char *rt = lss_obj_str (obj, "spec.runtime");
        if (!rt)
            continue;
        json_t *st = json_object_get (stats, rt);
        if (!st) {
            st = json_pack ("{s:I, s:I, s:I, s:I}", "pools", (json_int_t)0, "available",
                            (json_int_t)0, "assigned", (json_int_t)0, "pending", (json_int_t)0);
            json_object_set_new (stats, rt, st);
        }
        json_object_set_new (
            st, "pools", json_integer (json_integer_value (json_object_get (st, "pools")) + 1));
        json_object_set_new (
            st, "available",
            json_integer (json_integer_value (json_object_get (st, "available")) + a));
        json_object_set_new (
            st, "assigned",
            json_integer (json_integer_value (json_object_get (st, "assigned")) + s));
        json_object_set_new (
            st, "pending",
            json_integer (json_integer_value (json_object_get (st, "pending")) + p));
    }
    size_t n = json_array_size (pools);
    json_decref (pools);
    return api_resp_with_json (&req->to, 200,
                               json_pack ("{s:I, s:I, s:I, s:I, s:o}", "totalPools",
                                          (json_int_t)n, "totalAvailable", avail,
                                          "totalAssigned", assigned, "totalPending", pending,
                                          "runtimeStats", stats));
}

api_resp_t *api_h_warmpools (api_worker_t *w, api_req_t *req, const api_principal_t *who,
                             const json_t *body)
{
    int route = req->to.route;
    if (route == API_R_WARMPOOL_CREATE)
        return s_pool_create (w, req, who, body);
    if (route == API_R_WARMPOOLS_STATUS)
        return s_pools_status (w, req, who);
    if (route == API_R_WARMPOOL_LIST) {
        json_t *pools = NULL;
        int rc = s_pools (w, who, &pools);
        if (rc)
            return s_store_fail (&req->to, rc, "not found");
        json_t *items = json_array ();
        size_t i;
        json_t *obj;
        json_array_foreach (pools, i, obj)
            json_array_append_new (items, api_view_warmpool (obj));
        json_decref (pools);
        return s_page (req, "warmpools", items);
    }
    const char *name = req->match.id;
    if (!api_valid_dns_label (name))
        return api_resp_error (&req->to, 404, NULL, "warm pool not found", NULL);
    int st = s_pool_access (w, who, name);
    if (st == 404)
        return api_resp_error (&req->to, 404, NULL, "warm pool not found", NULL);
    if (st)
        return api_resp_error (&req->to, 503, NULL, "database unavailable", NULL);
    if (route == API_R_WARMPOOL_PATCH)
        return s_pool_patch (w, req, who, body, name);
    char err[LSS_STORE_ERR_SIZE];
    if (route == API_R_WARMPOOL_DELETE) {
        int rc = lss_store_delete (w->store, "WarmPool", w->ctx->namespace_, name, NULL, err,
                                   sizeof err);
        if (rc)
            return s_store_fail (&req->to, rc, "warm pool not found");
        api_db_warmpool_delete (w->db, w->ctx->namespace_, name);
        lss_log_info ("warm pool deleted", "{s:s, s:s}", "pool", name, "user", who->user_id);
        char msg[300];
        snprintf (msg, sizeof msg, "warm pool %s deleted", name);
        return api_resp_with_json (&req->to, 200, json_pack ("{s:s}", "message", msg));
    }
    json_t *obj = NULL;
    int rc =
        lss_store_get (w->store, "WarmPool", w->ctx->namespace_, name, &obj, err, sizeof err);
    if (rc)
        return s_store_fail (&req->to, rc, "warm pool not found");
    json_t *v = route == API_R_WARMPOOL_STATUS ? api_view_warmpool_status (obj)
                                               : api_view_warmpool (obj);
    json_decref (obj);
    return api_resp_with_json (&req->to, 200, v);
}

//  --------------------------------------------------------------------------
//  Users, keys, tokens

/*  Makes a key for user_id; *out_key receives the key text (shown once). */
static int s_new_key (api_worker_t *w, const char *user_id, const char *name,
                      int64_t expires_ms, api_key_t *key, char out_key[API_KEY_SIZE], char *err,
                      size_t err_size)
{
    char hash[API_HASH_HEX_SIZE], prefix[16];
    if (api_key_generate (out_key) || api_sha256_hex (out_key, hash)) {
        snprintf (err, err_size, "no randomness");
        return API_DB_UNAVAILABLE;
    }
    snprintf (prefix, sizeof prefix, "%.*s", API_KEY_SHOWN_LEN, out_key);
    return api_db_key_create (w->db, user_id, name, expires_ms, hash, prefix, key, err,
                              err_size);
}

static json_t *s_key_with_secret (const api_key_t *k, const char *secret)
{
    json_t *v = api_view_key (k);
    if (v)
        json_object_set_new (v, "key", json_string (secret));
    return v;
}

static api_resp_t *s_key_create (api_worker_t *w, api_req_t *req, const api_principal_t *who,
                                 const json_t *body)
{
    json_t *fields = json_object ();
    const char *name = json_string_value (json_object_get (body, "name"));
    json_t *exp = json_object_get (body, "expiresAt");
    int64_t expires_ms = 0;
    const char *key;
    json_t *v;
    json_object_foreach ((json_t *)body, key,
                         v) if (strcmp (key, "name") && strcmp (key, "expiresAt"))
        json_object_set_new (fields, key, json_string ("unknown field"));
    if (!name || !*name || strlen (name) > API_KEY_NAME_MAX)
        json_object_set_new (fields, "name", json_string ("is required: 1..128 bytes"));
    if (exp && !json_is_null (exp) &&
        (!json_is_string (exp) ||
         lss_time_parse_rfc3339 (json_string_value (exp), &expires_ms) ||
         expires_ms <= lss_time_now_ms ()))
        json_object_set_new (fields, "expiresAt",
                             json_string ("must be an RFC 3339 time in the future"));
    if (json_object_size (fields))
        return api_resp_invalid (&req->to, "invalid API key request", fields);
    json_decref (fields);
    api_key_t k;
    char secret[API_KEY_SIZE], err[256];
    int rc = s_new_key (w, who->user_id, name, expires_ms, &k, secret, err, sizeof err);
    if (rc == API_DB_INVALID)
        return api_resp_invalid (&req->to, "invalid API key request",
                                 json_pack ("{s:s}", "name", "not accepted"));
    if (rc != API_DB_OK)
        return api_resp_error (&req->to, 503, NULL, "database unavailable", NULL);
    lss_log_info ("api key created", "{s:s, s:s}", "user", who->user_id, "key_id", k.id);
    api_resp_t *r = api_resp_with_json (&req->to, 201, s_key_with_secret (&k, secret));
    explicit_bzero (secret, sizeof secret);
    return r;
}

static api_resp_t *s_user_create (api_worker_t *w, api_req_t *req, const api_principal_t *who,
                                  const json_t *body)
{
    if (!api_principal_admin (who))
        return api_resp_error (&req->to, 403, "forbidden", "only admins create users", NULL);
    json_t *fields = json_object ();
    const char *key;
    json_t *v;
    json_object_foreach ((json_t *)body, key, v) if (strcmp (key, "username") &&
                                                     strcmp (key, "email") &&
                                                     strcmp (key, "role"))
        json_object_set_new (fields, key, json_string ("unknown field"));
    const char *username = json_string_value (json_object_get (body, "username"));
    const char *email = json_string_value (json_object_get (body, "email"));
    const char *role = json_string_value (json_object_get (body, "role"));
    if (!username)
        json_object_set_new (fields, "username", json_string ("is required"));
    if (json_object_get (body, "email") && !email)
        json_object_set_new (fields, "email", json_string ("must be a string"));
    if (!role)
        role = "user";
    else if (strcmp (role, "user") && strcmp (role, "admin"))
        json_object_set_new (fields, "role", json_string ("must be \"user\" or \"admin\""));
    if (json_object_size (fields))
        return api_resp_invalid (&req->to, "invalid user", fields);
    api_user_t u;
    char err[256];
    int rc =
        api_db_user_create (w->db, username, email ? email : "", role, &u, err, sizeof err);
    if (rc == API_DB_CONFLICT) {
        json_decref (fields);
        return api_resp_error (&req->to, 409, "conflict", "username taken", NULL);
    }
    if (rc == API_DB_INVALID) {
        json_object_set_new (fields, "username",
                             json_string ("1..64 of [A-Za-z0-9._-]; email 3..254 with one @"));
        return api_resp_invalid (&req->to, "invalid user", fields);
    }
    json_decref (fields);
    if (rc != API_DB_OK)
        return api_resp_error (&req->to, 503, NULL, "database unavailable", NULL);
    api_key_t k;
    char secret[API_KEY_SIZE];
    if (s_new_key (w, u.id, "initial", 0, &k, secret, err, sizeof err) != API_DB_OK)
        return api_resp_error (&req->to, 503, NULL,
                               "user created but no key: retry POST /user/apikeys as that user "
                               "is impossible; delete and recreate",
                               NULL);
    lss_log_info ("user created", "{s:s, s:s, s:s}", "user", u.id, "role", u.role, "by",
                  who->user_id);
    json_t *out = api_view_user (&u);
    if (out)
        json_object_set_new (out, "apiKey", s_key_with_secret (&k, secret));
    explicit_bzero (secret, sizeof secret);
    return api_resp_with_json (&req->to, 201, out);
}

static api_resp_t *s_token_create (api_worker_t *w, api_req_t *req, const api_principal_t *who,
                                   const json_t *body)
{
    if (!w->ctx->jwt_secret)
        return api_resp_error (&req->to, 503, "service_unavailable",
                               "token issuing is off: api.jwt_secret is not set", NULL);
    json_t *in = json_object_get (body, "expiresIn");
    int64_t ttl_s = w->ctx->jwt_ttl_ms / 1000;
    if (in && !json_is_null (in)) {
        if (!json_is_integer (in) || json_integer_value (in) < 1 ||
            json_integer_value (in) > ttl_s)
            return api_resp_invalid (
                &req->to, "invalid token request",
                json_pack ("{s:s}", "expiresIn",
                           "must be seconds, 1 .. the configured maximum"));
        ttl_s = json_integer_value (in);
    }
    char jti[40];
    if (lss_id_new ("jti-", 24, jti, sizeof jti))
        return api_resp_internal (&req->to, "no randomness");
    int64_t now = lss_time_now_ms () / 1000;
    json_t *claims =
        json_pack ("{s:s, s:I, s:I, s:s, s:s}", "sub", who->user_id, "iat", (json_int_t)now,
                   "exp", (json_int_t)(now + ttl_s), "jti", jti, "iss", "llmsafespace");
    char *token = NULL, err[128];
    int rc = claims ? api_jwt_sign (w->ctx->jwt_secret, w->ctx->jwt_secret_len, claims, &token,
                                    err, sizeof err)
                    : -1;
    json_decref (claims);
    if (rc)
        return api_resp_internal (&req->to, "jwt not signed");
    api_resp_t *r = api_resp_with_json (&req->to, 201,
                                        json_pack ("{s:s, s:s, s:o, s:s, s:I}", "token", token,
                                                   "tokenType", "Bearer", "expiresAt",
                                                   api_view_time ((now + ttl_s) * 1000), "jti",
                                                   jti, "expiresIn", (json_int_t)ttl_s));
    free (token);
    return r;
}

api_resp_t *api_h_users (api_worker_t *w, api_req_t *req, const api_principal_t *who,
                         const json_t *body)
{
    int route = req->to.route;
    switch (route) {
    case API_R_USER_GET: {
        api_user_t u;
        int rc = api_db_user_get (w->db, who->user_id, &u);
        if (rc != API_DB_OK)
            return api_resp_error (&req->to, 503, NULL, "database unavailable", NULL);
        return api_resp_with_json (&req->to, 200, api_view_user (&u));
    }
    case API_R_APIKEY_LIST: {
        int limit, offset;
        json_t *fields = json_object ();
        if (api_valid_page (api_req_query (req, "limit"), api_req_query (req, "offset"), &limit,
                            &offset, fields))
            return api_resp_invalid (&req->to, "invalid pagination", fields);
        json_decref (fields);
        api_key_t keys[API_DB_LIST_MAX];
        int n = 0;
        int64_t total = 0;
        if (api_db_key_list (w->db, who->user_id, limit, offset, keys, &n, &total) != API_DB_OK)
            return api_resp_error (&req->to, 503, NULL, "database unavailable", NULL);
        json_t *items = json_array ();
        for (int i = 0; i < n; i++)
            json_array_append_new (items, api_view_key (&keys[i]));
        return api_resp_with_json (&req->to, 200,
                                   api_view_page ("apiKeys", items, limit, offset, total));
    }
    case API_R_APIKEY_CREATE:
        return s_key_create (w, req, who, body);
    case API_R_APIKEY_DELETE: {
        char hash[65] = "";
        int rc = api_db_key_revoke (w->db, who->user_id, req->match.id, hash);
        if (rc == API_DB_NOT_FOUND)
            return api_resp_error (&req->to, 404, NULL, "API key not found", NULL);
        if (rc != API_DB_OK)
            return api_resp_error (&req->to, 503, NULL, "database unavailable", NULL);
        api_authn_forget_key (w, hash);
        lss_log_info ("api key revoked", "{s:s, s:s}", "user", who->user_id, "key_id",
                      req->match.id);
        return api_resp_with_json (&req->to, 200,
                                   json_pack ("{s:s}", "message", "API key revoked"));
    }
    case API_R_USER_CREATE:
        return s_user_create (w, req, who, body);
    case API_R_AUTH_TOKEN_CREATE:
        return s_token_create (w, req, who, body);
    case API_R_AUTH_TOKEN_REVOKE: {
        if (!who->jti[0])
            return api_resp_error (&req->to, 400, "invalid_request",
                                   "authenticate with the JWT to revoke (it has no jti, or an "
                                   "API key was used)",
                                   NULL);
        if (api_db_jti_revoke (w->db, who->jti, who->token_exp_s * 1000) != API_DB_OK)
            return api_resp_error (&req->to, 503, NULL, "database unavailable", NULL);
        api_authn_forget_jti (w, who->jti, who->token_exp_s * 1000);
        return api_resp_with_json (&req->to, 200,
                                   json_pack ("{s:s}", "message", "token revoked"));
    }
    default:
        return api_resp_error (&req->to, 404, NULL, "no such route", NULL);
    }
}

//  --------------------------------------------------------------------------
//  Bootstrap

/*  Writes text to path atomically with mode 0600. */
static int s_write_secret_file (const char *path, const char *text)
{
    char tmp[1100];
    if (lss_fmt (tmp, sizeof tmp, "%s.tmp.%d", path, (int)getpid ()))
        return -1;
    int fd = open (tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0)
        return -1;
    size_t n = strlen (text);
    bool ok = write (fd, text, n) == (ssize_t)n && write (fd, "\n", 1) == 1 && fsync (fd) == 0;
    ok = close (fd) == 0 && ok;
    if (!ok || rename (tmp, path) != 0) {
        unlink (tmp);
        return -1;
    }
    return 0;
}

int api_bootstrap_admin (api_worker_t *w)
{
    const char *file = w->ctx->admin_key_file;
    if (!file || !*file)
        return 0;
    int exists = api_db_admin_exists (w->db);
    if (exists < 0) {
        lss_log_error ("cannot tell whether an admin exists", NULL);
        return -1;
    }
    if (exists)
        return 0;
    api_user_t u;
    char err[256];
    int rc = api_db_user_create (w->db, "admin", "", "admin", &u, err, sizeof err);
    if (rc == API_DB_CONFLICT) {
        char name[32];
        lss_id_new ("admin-", 6, name, sizeof name);
        rc = api_db_user_create (w->db, name, "", "admin", &u, err, sizeof err);
    }
    if (rc != API_DB_OK) {
        lss_log_error ("bootstrap admin not created", "{s:s}", "error", err);
        return -1;
    }
    api_key_t k;
    char secret[API_KEY_SIZE];
    if (s_new_key (w, u.id, "bootstrap", 0, &k, secret, err, sizeof err) != API_DB_OK) {
        lss_log_error ("bootstrap admin key not created", "{s:s}", "error", err);
        return -1;
    }
    rc = s_write_secret_file (file, secret);
    explicit_bzero (secret, sizeof secret);
    if (rc) {
        lss_log_error ("bootstrap admin key not written", "{s:s}", "file", file);
        return -1;
    }
    lss_log_info ("bootstrap admin created", "{s:s, s:s, s:s}", "user", u.id, "username",
                  u.username, "key_file", file);
    return 0;
}
