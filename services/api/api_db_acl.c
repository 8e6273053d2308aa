/*  api_db_acl — who owns a warm pool, who was granted what, and which JWT ids are revoked.
 *
 *  Design note: these are the api's authorization facts. Grants are idempotent (ON
 *  CONFLICT DO NOTHING on the full key), so two replicas granting at once both succeed.
 *  A revoked jti is kept until its token's own expiry, after which the token is dead
 *  anyway and api_db_jti_purge may drop the row; revoking again keeps the later expiry.
 */
#include "api_db_internal.h"
#include "lss_util.h"

#include <string.h>

#define S_RESOURCE_ID_MAX 253
#define S_JTI_MAX         128

static const char *const s_resource_types[] = {"sandbox", "warmpool", NULL};
static const char *const s_actions[] = {"read",   "write",  "execute", "connect",
                                        "delete", "update", NULL};

/* ------------------------------------------------------------------ warm pools */

static bool s_pool_ok (const char *ns, const char *name)
{
    return api_dbi_k8s_name_ok (ns, API_NS_SIZE - 1) &&
           api_dbi_k8s_name_ok (name, API_OBJNAME_SIZE - 1);
}

int api_db_warmpool_insert (api_db_t *self, const char *ns, const char *name,
                            const char *user_id, char *err, size_t err_size)
{
    if (!s_pool_ok (ns, name) || !api_dbi_id_ok (user_id, API_ID_SIZE)) {
        lss_errf (err, err_size, "db: bad warm pool fields");
        return API_DB_INVALID;
    }
    const char *p[] = {ns, name, user_id};
    return api_dbi_query (self,
                          "INSERT INTO api_warm_pools (namespace, name, user_id)"
                          " VALUES ($1, $2, $3)",
                          3, p, NULL, err, err_size);
}

int api_db_warmpool_owner (api_db_t *self, const char *ns, const char *name,
                           char user_id[API_ID_SIZE])
{
    user_id[0] = '\0';
    if (!s_pool_ok (ns, name))
        return API_DB_NOT_FOUND;
    const char *p[] = {ns, name};
    PGresult *res = NULL;
    int rc = api_dbi_query (self,
                            "SELECT user_id FROM api_warm_pools WHERE namespace = $1"
                            " AND name = $2",
                            2, p, &res, NULL, 0);
    if (rc == API_DB_OK && PQntuples (res) != 1)
        rc = API_DB_NOT_FOUND;
    if (rc == API_DB_OK)
        api_dbi_copy (user_id, API_ID_SIZE, res, 0, 0);
    PQclear (res);
    return rc;
}

int api_db_warmpool_delete (api_db_t *self, const char *ns, const char *name)
{
    if (!s_pool_ok (ns, name))
        return API_DB_NOT_FOUND;
    const char *p[] = {ns, name};
    PGresult *res = NULL;
    int rc =
        api_dbi_query (self, "DELETE FROM api_warm_pools WHERE namespace = $1 AND name = $2", 2,
                       p, &res, NULL, 0);
    if (rc == API_DB_OK && api_dbi_affected (res) != 1)
        rc = API_DB_NOT_FOUND;
    PQclear (res);
    return rc;
}

/* ------------------------------------------------------------------ permissions */

static bool s_perm_ok (const char *user_id, const char *type, const char *resource_id,
                       const char *action)
{
    return api_dbi_id_ok (user_id, API_ID_SIZE) && api_dbi_one_of (type, s_resource_types) &&
           api_dbi_text_ok (resource_id, S_RESOURCE_ID_MAX) &&
           api_dbi_one_of (action, s_actions);
}

int api_db_perm_grant (api_db_t *self, const char *user_id, const char *resource_type,
                       const char *resource_id, const char *action, const char *granted_by)
{
    if (!s_perm_ok (user_id, resource_type, resource_id, action) ||
        !api_dbi_id_ok (granted_by, API_ID_SIZE))
        return API_DB_INVALID;
    const char *p[] = {user_id, resource_type, resource_id, action, granted_by};
    return api_dbi_query (self,
                          "INSERT INTO api_permissions (user_id, resource_type, resource_id,"
                          " action, granted_by) VALUES ($1, $2, $3, $4, $5)"
                          " ON CONFLICT DO NOTHING",
                          5, p, NULL, NULL, 0);
}

int api_db_perm_revoke (api_db_t *self, const char *user_id, const char *resource_type,
                        const char *resource_id, const char *action)
{
    if (!s_perm_ok (user_id, resource_type, resource_id, action))
        return API_DB_INVALID;
    const char *p[] = {user_id, resource_type, resource_id, action};
    PGresult *res = NULL;
    int rc = api_dbi_query (self,
                            "DELETE FROM api_permissions WHERE user_id = $1"
                            " AND resource_type = $2 AND resource_id = $3 AND action = $4",
                            4, p, &res, NULL, 0);
    if (rc == API_DB_OK && api_dbi_affected (res) != 1)
        rc = API_DB_NOT_FOUND;
    PQclear (res);
    return rc;
}

int api_db_perm_check (api_db_t *self, const char *user_id, const char *resource_type,
                       const char *resource_id, const char *action)
{
    if (!s_perm_ok (user_id, resource_type, resource_id, action))
        return API_DB_INVALID;
    const char *p[] = {user_id, resource_type, resource_id, action};
    PGresult *res = NULL;
    int rc = api_dbi_query (self,
                            "SELECT 1 FROM api_permissions WHERE user_id = $1"
                            " AND resource_type = $2 AND resource_id = $3 AND action = $4",
                            4, p, &res, NULL, 0);
    if (rc == API_DB_OK)
        rc = PQntuples (res) > 0 ? 1 : 0;
    PQclear (res);
    return rc;
}

/* ------------------------------------------------------------------ revoked JWT ids */

int api_db_jti_revoke (api_db_t *self, const char *jti, int64_t exp_ms)
{
    if (!api_dbi_text_ok (jti, S_JTI_MAX) || exp_ms <= 0)
        return API_DB_INVALID;
    char e[API_DBI_I64_SIZE];
    const char *p[] = {jti, api_dbi_fmt_i64 (e, exp_ms)};
    return api_dbi_query (self,
                          "INSERT INTO api_revoked_tokens (jti, expires_at)"
                          " VALUES ($1, api_ts($2::bigint)) ON CONFLICT (jti) DO UPDATE"
                          " SET expires_at = GREATEST(api_revoked_tokens.expires_at,"
                          " EXCLUDED.expires_at)",
                          2, p, NULL, NULL, 0);
}

int api_db_jti_revoked (api_db_t *self, const char *jti)
{
    if (!api_dbi_text_ok (jti, S_JTI_MAX))
        return 0; /* such an id cannot have been revoked */
    const char *p[] = {jti};
    PGresult *res = NULL;
    int rc = api_dbi_query (self, "SELECT 1 FROM api_revoked_tokens WHERE jti = $1", 1, p, &res,
                            NULL, 0);
    if (rc == API_DB_OK)
        rc = PQntuples (res) > 0 ? 1 : 0;
    PQclear (res);
    return rc;
}

int api_db_jti_purge (api_db_t *self, int64_t now_ms)
{
    if (now_ms <= 0)
        return API_DB_INVALID;
    char n[API_DBI_I64_SIZE];
    const char *p[] = {api_dbi_fmt_i64 (n, now_ms)};
    return api_dbi_query (
        self, "DELETE FROM api_revoked_tokens WHERE expires_at < api_ts($1::bigint)", 1, p,
        NULL, NULL, 0);
}
