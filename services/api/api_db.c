/*  api_db — the api's PostgreSQL handle: connection, migrations, users and API keys.
 *
 *  Design note: one PGconn per handle, used synchronously by one thread. Every statement
 *  goes through api_dbi_query (a statement prepared once per connection, run with text
 *  parameters), which first makes sure the connection is alive: a connection libpq has
 *  marked bad is replaced once per call (its prepared statements are forgotten with it),
 *  and one left inside a transaction is rolled back. Connections carry a server-side
 *  statement_timeout and client-side TCP keepalives and tcp_user_timeout, so neither a
 *  slow query nor a vanished server holds a caller for long. Defaults are given before
 *  the DSN, so a DSN may override them. Migrations copy the object store's approach
 *  (lss_store_pg.c): per version one transaction that takes a transaction-scoped
 *  advisory lock, checks api_schema_migrations and applies the version's text.
 *  Sandboxes and audit live in api_db_sandbox.c; warm pools, permissions and revoked
 *  tokens in api_db_acl.c; argument checks and row readers in api_db_values.c; the
 *  schema in api_db_migrations.c.
 */
#include "api_db_internal.h"
#include "lss_log.h"
#include "lss_util.h"

#include <stdlib.h>
#include <string.h>

#define S_LOCK_CLASS     0x415049 /* "API": pg_advisory_xact_lock (class, id) */
#define S_LOCK_MIGRATE   1
#define S_ID_LEN         12
#define S_ID_TRIES       4 /* fresh ids drawn when one collides */
#define S_KEEPALIVE_S    "5"
#define S_KEEPALIVE_N    "3"
#define S_TCP_TIMEOUT_MS "15000"

/* ------------------------------------------------------------------ connection */

static void s_prepared_reset (api_db_t *self);

static void s_notice_quiet (void *arg, const char *message)
{
    (void)arg;
    (void)message;
}

static void s_oneline (char *dst, size_t size, const char *src)
{
    lss_fmt (dst, size, "%s", src ? src : "");
    dst[strcspn (dst, "\r\n")] = '\0';
}

static int s_pg_error (api_db_t *self, PGresult *res, char *err, size_t err_size)
{
    const char *state = res ? PQresultErrorField (res, PG_DIAG_SQLSTATE) : NULL;
    const char *cons = res ? PQresultErrorField (res, PG_DIAG_CONSTRAINT_NAME) : NULL;
    const char *msg = res ? PQresultErrorMessage (res) : PQerrorMessage (self->conn);
    int code = API_DB_UNAVAILABLE;
    if (state && strcmp (state, "23505") == 0)
        code = API_DB_CONFLICT;
    else if (state && strcmp (state, "23503") == 0)
        code = API_DB_NOT_FOUND;
    else if (state && (strcmp (state, "23514") == 0 || strcmp (state, "23502") == 0 ||
                       strncmp (state, "22", 2) == 0))
        code = API_DB_INVALID;
    s_oneline (self->constraint, sizeof self->constraint, cons);
    char text[200];
    s_oneline (text, sizeof text, msg);
    lss_errf (err, err_size, "db: %s%s%s", state ? state : "", state ? " " : "", text);
    return code;
}

static PGconn *s_connect (const char *dsn, char *err, size_t err_size)
{
    char timeout[16], ms[16];
    lss_fmt (timeout, sizeof timeout, "%d", API_DB_CONNECT_TIMEOUT_S);
    lss_fmt (ms, sizeof ms, "%d", API_DB_STATEMENT_TIMEOUT_MS);
    const char *keys[] = {"connect_timeout",
                          "application_name",
                          "keepalives",
                          "keepalives_idle",
                          "keepalives_interval",
                          "keepalives_count",
                          "tcp_user_timeout",
                          "dbname",
                          NULL};
    const char *vals[] = {timeout,       "lss-api",        "1", S_KEEPALIVE_S, S_KEEPALIVE_S,
                          S_KEEPALIVE_N, S_TCP_TIMEOUT_MS, dsn, NULL};
    PGconn *conn = PQconnectdbParams (keys, vals, 1);
    if (!conn || PQstatus (conn) != CONNECTION_OK) {
        char text[200];
        s_oneline (text, sizeof text, conn ? PQerrorMessage (conn) : "out of memory");
        lss_errf (err, err_size, "db: connect: %s", text);
        PQfinish (conn);
        return NULL;
    }
    PQsetNoticeProcessor (conn, s_notice_quiet, NULL);
    const char *p[] = {ms};
    PGresult *res = PQexecParams (conn, "SELECT set_config('statement_timeout', $1, false)", 1,
                                  NULL, p, NULL, NULL, 0);
    if (PQresultStatus (res) != PGRES_TUPLES_OK) {
        char text[200];
        s_oneline (text, sizeof text, PQresultErrorMessage (res));
        lss_errf (err, err_size, "db: statement_timeout: %s", text);
        PQclear (res);
        PQfinish (conn);
        return NULL;
    }
    PQclear (res);
    return conn;
}

/*  A usable connection: the current one if libpq still thinks it is fine (a failed
 *  transaction left behind is rolled back; an open one is the caller's and kept), else
 *  one new attempt. A connection is only replaced after a call has already failed on
 *  it, so a transaction never continues silently on a new connection. */
static int s_ensure (api_db_t *self, char *err, size_t err_size)
{
    if (self->conn && PQstatus (self->conn) == CONNECTION_OK) {
        if (PQtransactionStatus (self->conn) != PQTRANS_INERROR)
            return API_DB_OK;
        PQclear (PQexec (self->conn, "ROLLBACK"));
        if (PQstatus (self->conn) == CONNECTION_OK)
            return API_DB_OK;
    }
    PGconn *conn = s_connect (self->dsn, err, err_size);
    if (!conn)
        return API_DB_UNAVAILABLE;
    bool had = self->conn != NULL;
    PQfinish (self->conn);
    self->conn = conn;
    s_prepared_reset (self);
    if (had)
        lss_log_info ("api db reconnected", NULL);
    return API_DB_OK;
}

/*  The name sql is prepared under on this connection, preparing it first; NULL when it
 *  cannot be (cache full, out of memory, the server refused: then it runs unnamed and a
 *  server error shows up there). */
static const char *s_prepared (api_db_t *self, const char *sql, int n)
{
    if (!self->prepared) {
        self->prepared = zhashx_new ();
        if (!self->prepared)
            return NULL;
        zhashx_set_destructor (self->prepared, (zhashx_destructor_fn *)zstr_free);
    }
    const char *name = zhashx_lookup (self->prepared, sql);
    if (name || zhashx_size (self->prepared) >= API_DBI_PREPARED_MAX)
        return name;
    char buf[32];
    lss_fmt (buf, sizeof buf, "lss_api_%u", self->next_stmt++);
    PGresult *r = PQprepare (self->conn, buf, sql, n, NULL);
    bool ok = r && PQresultStatus (r) == PGRES_COMMAND_OK;
    PQclear (r);
    char *copy = ok ? strdup (buf) : NULL;
    if (!copy)
        return NULL;
    zhashx_insert (self->prepared, sql, copy);
    return copy;
}

/*  Forgets every prepared statement (the connection they lived on is gone). */
static void s_prepared_reset (api_db_t *self)
{
    zhashx_destroy (&self->prepared);
}

int api_dbi_send (api_db_t *self, const char *sql, int n, const char *const *params, char *err,
                  size_t err_size)
{
    self->constraint[0] = '\0';
    if (self->pending.sql) {
        lss_errf (err, err_size, "db: a statement is still pending on this connection");
        return API_DB_UNAVAILABLE;
    }
    int rc = s_ensure (self, err, err_size);
    if (rc != API_DB_OK)
        return rc;
    const char *name = s_prepared (self, sql, n);
    int sent = name ? PQsendQueryPrepared (self->conn, name, n, params, NULL, NULL, 0)
                    : PQsendQueryParams (self->conn, sql, n, NULL, params, NULL, NULL, 0);
    if (!sent) {
        s_pg_error (self, NULL, err, err_size);
        return API_DB_UNAVAILABLE;
    }
    self->pending = (api_dbi_pending_t){.sql = sql, .n = n, .params = params, .prepared = name};
    return API_DB_OK;
}

static bool s_ok (const PGresult *r)
{
    ExecStatusType st = r ? PQresultStatus (r) : PGRES_FATAL_ERROR;
    return st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK;
}

/*  Every result of what was sent: the first error, else the last one (as PQexec). */
static PGresult *s_drain (PGconn *conn)
{
    PGresult *keep = NULL, *r;
    while ((r = PQgetResult (conn))) {
        if (!keep || s_ok (keep)) {
            PQclear (keep);
            keep = r;
        } else
            PQclear (r);
    }
    return keep;
}

int api_dbi_collect (api_db_t *self, PGresult **res, char *err, size_t err_size)
{
    if (res)
        *res = NULL;
    api_dbi_pending_t op = self->pending;
    self->pending = (api_dbi_pending_t){0};
    if (!op.sql) {
        lss_errf (err, err_size, "db: nothing was sent");
        return API_DB_UNAVAILABLE;
    }
    PGresult *r = s_drain (self->conn);
    const char *state = r ? PQresultErrorField (r, PG_DIAG_SQLSTATE) : NULL;
    if (op.prepared && state && strcmp (state, "26000") == 0) {
        /* dropped behind our back (DISCARD ALL, a pooler): once unnamed, prepared anew
         * next time */
        PQclear (r);
        zhashx_delete (self->prepared, op.sql);
        r = PQexecParams (self->conn, op.sql, op.n, NULL, op.params, NULL, NULL, 0);
    }
    if (!s_ok (r)) {
        int rc = s_pg_error (self, r, err, err_size);
        PQclear (r);
        if (PQstatus (self->conn) != CONNECTION_OK)
            rc = API_DB_UNAVAILABLE;
        return rc;
    }
    if (res)
        *res = r;
    else
        PQclear (r);
    return API_DB_OK;
}

int api_dbi_query (api_db_t *self, const char *sql, int n, const char *const *params,
                   PGresult **res, char *err, size_t err_size)
{
    if (res)
        *res = NULL;
    int rc = api_dbi_send (self, sql, n, params, err, err_size);
    return rc == API_DB_OK ? api_dbi_collect (self, res, err, err_size) : rc;
}

api_db_t *api_db_new (const char *dsn, char *err, size_t err_size)
{
    if (!dsn) {
        lss_errf (err, err_size, "db: no DSN");
        return NULL;
    }
    api_db_t *self = calloc (1, sizeof *self);
    if (!self || !(self->dsn = strdup (dsn))) {
        lss_errf (err, err_size, "db: out of memory");
        api_db_destroy (&self);
        return NULL;
    }
    self->conn = s_connect (dsn, err, err_size);
    if (!self->conn)
        api_db_destroy (&self);
    return self;
}

void api_db_destroy (api_db_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    api_db_t *self = *self_p;
    PQfinish (self->conn);
    s_prepared_reset (self);
    free (self->dsn);
    free (self);
    *self_p = NULL;
}

int api_db_ping (api_db_t *self)
{
    PGresult *res = NULL;
    int rc = api_dbi_query (self, "SELECT 1", 0, NULL, &res, NULL, 0);
    if (rc == API_DB_OK && (PQntuples (res) != 1 || strcmp (PQgetvalue (res, 0, 0), "1") != 0))
        rc = API_DB_UNAVAILABLE;
    PQclear (res);
    return rc == API_DB_OK ? API_DB_OK : API_DB_UNAVAILABLE;
}

/* ------------------------------------------------------------------ migrations */

/*  Applies version v (1-based) unless recorded, inside one transaction holding the
 *  migration lock. */
static int s_migrate_one (api_db_t *self, int v, char *err, size_t err_size)
{
    char vs[16], cls[16], key[16];
    lss_fmt (vs, sizeof vs, "%d", v);
    lss_fmt (cls, sizeof cls, "%d", S_LOCK_CLASS);
    lss_fmt (key, sizeof key, "%d", S_LOCK_MIGRATE);
    const char *lock[] = {cls, key};
    const char *ver[] = {vs};
    PGresult *res = NULL;
    int rc = api_dbi_query (self, "BEGIN", 0, NULL, NULL, err, err_size);
    if (rc != API_DB_OK)
        return API_DB_UNAVAILABLE;
    rc = api_dbi_query (self, "SELECT pg_advisory_xact_lock($1::int, $2::int)", 2, lock, NULL,
                        err, err_size);
    if (rc == API_DB_OK)
        rc = api_dbi_query (self,
                            "CREATE TABLE IF NOT EXISTS api_schema_migrations ("
                            " version int PRIMARY KEY,"
                            " applied_at timestamptz NOT NULL DEFAULT now())",
                            0, NULL, NULL, err, err_size);
    if (rc == API_DB_OK)
        rc = api_dbi_query (self, "SELECT 1 FROM api_schema_migrations WHERE version = $1::int",
                            1, ver, &res, err, err_size);
    bool applied = rc == API_DB_OK && PQntuples (res) > 0;
    PQclear (res);
    if (rc == API_DB_OK && !applied) {
        /* static text with several statements: PQexec, not PQexecParams */
        PGresult *r = PQexec (self->conn, api_dbi_migrations[v - 1]);
        if (PQresultStatus (r) != PGRES_COMMAND_OK)
            rc = s_pg_error (self, r, err, err_size);
        PQclear (r);
        if (rc == API_DB_OK)
            rc = api_dbi_query (self,
                                "INSERT INTO api_schema_migrations (version) VALUES ($1::int)",
                                1, ver, NULL, err, err_size);
        if (rc == API_DB_OK)
            lss_log_info ("api db migration applied", "{s:i}", "version", v);
    }
    if (rc == API_DB_OK)
        rc = api_dbi_query (self, "COMMIT", 0, NULL, NULL, err, err_size);
    else if (PQstatus (self->conn) == CONNECTION_OK)
        PQclear (PQexec (self->conn, "ROLLBACK"));
    return rc == API_DB_OK ? API_DB_OK : API_DB_UNAVAILABLE;
}

int api_db_migrate (api_db_t *self, char *err, size_t err_size)
{
    for (int v = 1; v <= api_dbi_migrations_count; v++)
        if (s_migrate_one (self, v, err, err_size) != API_DB_OK)
            return API_DB_UNAVAILABLE;
    return API_DB_OK;
}

/* ------------------------------------------------------------------ users */

#define S_USER_COLS                                                                            \
    "u.id, u.username, COALESCE(u.email, ''), u.role, api_ms(u.created_at), u.disabled"
#define S_USER_NCOLS 6

static const char *const s_roles[] = {"admin", "user", NULL};

static void s_user_row (const PGresult *res, int row, int c, api_user_t *out)
{
    memset (out, 0, sizeof *out);
    api_dbi_copy (out->id, sizeof out->id, res, row, c);
    api_dbi_copy (out->username, sizeof out->username, res, row, c + 1);
    api_dbi_copy (out->email, sizeof out->email, res, row, c + 2);
    api_dbi_copy (out->role, sizeof out->role, res, row, c + 3);
    out->created_ms = api_dbi_i64 (res, row, c + 4);
    out->disabled = api_dbi_bool (res, row, c + 5);
}

static bool s_username_ok (const char *s)
{
    size_t len = s ? strnlen (s, API_USERNAME_SIZE) : 0;
    if (len == 0 || len >= API_USERNAME_SIZE)
        return false;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-'))
            return false;
    }
    return true;
}

static bool s_email_ok (const char *s)
{
    if (!api_dbi_text_ok (s, API_EMAIL_SIZE - 1) || strlen (s) < 3)
        return false;
    const char *at = strchr (s, '@');
    return at && at != s && at[1] && !strchr (at + 1, '@') && !strchr (s, ' ');
}

int api_db_user_create (api_db_t *self, const char *username, const char *email,
                        const char *role, api_user_t *out, char *err, size_t err_size)
{
    bool no_email = !email || !*email;
    if (!s_username_ok (username) || (!no_email && !s_email_ok (email)) ||
        !api_dbi_one_of (role, s_roles)) {
        lss_errf (err, err_size, "db: bad username, email or role");
        return API_DB_INVALID;
    }
    int rc = API_DB_UNAVAILABLE;
    for (int t = 0; t < S_ID_TRIES; t++) {
        char id[API_ID_SIZE];
        if (lss_id_new ("usr-", S_ID_LEN, id, sizeof id) != 0) {
            lss_errf (err, err_size, "db: no randomness");
            return API_DB_UNAVAILABLE;
        }
        const char *p[] = {id, username, no_email ? NULL : email, role};
        PGresult *res = NULL;
        rc = api_dbi_query (self,
                            "INSERT INTO api_users AS u (id, username, email, role)"
                            " VALUES ($1, $2, $3, $4) RETURNING " S_USER_COLS,
                            4, p, &res, err, err_size);
        if (rc == API_DB_OK) {
            if (out && PQntuples (res) == 1)
                s_user_row (res, 0, 0, out);
            PQclear (res);
            return API_DB_OK;
        }
        if (rc != API_DB_CONFLICT || strcmp (self->constraint, "api_users_pkey") != 0)
            break;
    }
    return rc;
}

int api_db_user_get (api_db_t *self, const char *id, api_user_t *out)
{
    if (!api_dbi_id_ok (id, API_ID_SIZE))
        return API_DB_NOT_FOUND;
    const char *p[] = {id};
    PGresult *res = NULL;
    int rc = api_dbi_query (self, "SELECT " S_USER_COLS " FROM api_users u WHERE u.id = $1", 1,
                            p, &res, NULL, 0);
    if (rc == API_DB_OK && (PQntuples (res) != 1 || PQnfields (res) != S_USER_NCOLS))
        rc = API_DB_NOT_FOUND;
    if (rc == API_DB_OK && out)
        s_user_row (res, 0, 0, out);
    PQclear (res);
    return rc;
}

int api_db_admin_exists (api_db_t *self)
{
    PGresult *res = NULL;
    int rc = api_dbi_query (
        self, "SELECT EXISTS (SELECT 1 FROM api_users WHERE role = 'admin' AND NOT disabled)",
        0, NULL, &res, NULL, 0);
    if (rc == API_DB_OK)
        rc = PQntuples (res) == 1 && api_dbi_bool (res, 0, 0) ? 1 : 0;
    PQclear (res);
    return rc;
}

/* ------------------------------------------------------------------ API keys */

#define S_KEY_COLS                                                                             \
    "k.id, k.user_id, k.name, k.key_hash, k.prefix, api_ms(k.created_at),"                     \
    " api_ms(k.expires_at), api_ms(k.revoked_at), api_ms(k.last_used_at), k.rate_default,"     \
    " k.rate_create_sandbox, k.rate_execute_code"
#define S_KEY_NCOLS 12

static void s_key_row (const PGresult *res, int row, int c, api_key_t *out)
{
    memset (out, 0, sizeof *out);
    api_dbi_copy (out->id, sizeof out->id, res, row, c);
    api_dbi_copy (out->user_id, sizeof out->user_id, res, row, c + 1);
    api_dbi_copy (out->name, sizeof out->name, res, row, c + 2);
    api_dbi_copy (out->hash, sizeof out->hash, res, row, c + 3);
    api_dbi_copy (out->prefix, sizeof out->prefix, res, row, c + 4);
    out->created_ms = api_dbi_i64 (res, row, c + 5);
    out->expires_ms = api_dbi_i64 (res, row, c + 6);
    out->revoked_ms = api_dbi_i64 (res, row, c + 7);
    out->last_used_ms = api_dbi_i64 (res, row, c + 8);
    out->rate_default = api_dbi_i64 (res, row, c + 9);
    out->rate_create_sandbox = api_dbi_i64 (res, row, c + 10);
    out->rate_execute_code = api_dbi_i64 (res, row, c + 11);
}

static bool s_hash_ok (const char *h)
{
    if (!h || strnlen (h, 65) != 64)
        return false;
    for (int i = 0; i < 64; i++)
        if (!((h[i] >= '0' && h[i] <= '9') || (h[i] >= 'a' && h[i] <= 'f')))
            return false;
    return true;
}

int api_db_key_create (api_db_t *self, const char *user_id, const char *name,
                       int64_t expires_ms, const char *hash, const char *prefix, api_key_t *out,
                       char *err, size_t err_size)
{
    if (!api_dbi_id_ok (user_id, API_ID_SIZE) || !api_dbi_text_ok (name, API_NAME_SIZE - 1) ||
        expires_ms < 0 || !s_hash_ok (hash) || !prefix ||
        strnlen (prefix, sizeof out->prefix) >= sizeof out->prefix ||
        (*prefix && !api_dbi_id_ok (prefix, sizeof out->prefix))) {
        lss_errf (err, err_size, "db: bad key fields");
        return API_DB_INVALID;
    }
    char exp[API_DBI_I64_SIZE];
    api_dbi_fmt_i64 (exp, expires_ms);
    int rc = API_DB_UNAVAILABLE;
    for (int t = 0; t < S_ID_TRIES; t++) {
        char id[API_ID_SIZE];
        if (lss_id_new ("key-", S_ID_LEN, id, sizeof id) != 0) {
            lss_errf (err, err_size, "db: no randomness");
            return API_DB_UNAVAILABLE;
        }
        const char *p[] = {id, user_id, name, hash, prefix, exp};
        PGresult *res = NULL;
        rc = api_dbi_query (self,
                            "INSERT INTO api_keys AS k (id, user_id, name, key_hash, prefix,"
                            " expires_at) VALUES ($1, $2, $3, $4, $5, api_ts($6::bigint))"
                            " RETURNING " S_KEY_COLS,
                            6, p, &res, err, err_size);
        if (rc == API_DB_OK) {
            if (out && PQntuples (res) == 1)
                s_key_row (res, 0, 0, out);
            PQclear (res);
            return API_DB_OK;
        }
        if (rc != API_DB_CONFLICT || strcmp (self->constraint, "api_keys_pkey") != 0)
            break;
    }
    return rc;
}

int api_db_key_lookup (api_db_t *self, const char *hash, api_key_t *key, api_user_t *user)
{
    if (!s_hash_ok (hash))
        return API_DB_INVALID;
    const char *p[] = {hash};
    PGresult *res = NULL;
    /* The data-modifying CTE runs whether or not the SELECT reads it; the SELECT sees the
     * row as it was before (so last_used_ms is the previous use). */
    int rc = api_dbi_query (
        self,
        "WITH touch AS (UPDATE api_keys SET last_used_at = now()"
        "  WHERE key_hash = $1 AND revoked_at IS NULL"
        "  AND (expires_at IS NULL OR expires_at > now())"
        "  AND (last_used_at IS NULL OR last_used_at < now() - interval '1 minute')"
        "  RETURNING id)"
        " SELECT " S_KEY_COLS ", " S_USER_COLS
        " FROM api_keys k JOIN api_users u ON u.id = k.user_id WHERE k.key_hash = $1",
        1, p, &res, NULL, 0);
    if (rc == API_DB_OK &&
        (PQntuples (res) != 1 || PQnfields (res) != S_KEY_NCOLS + S_USER_NCOLS))
        rc = API_DB_NOT_FOUND;
    if (rc == API_DB_OK) {
        if (key)
            s_key_row (res, 0, 0, key);
        if (user)
            s_user_row (res, 0, S_KEY_NCOLS, user);
    }
    PQclear (res);
    return rc;
}

int api_db_key_list (api_db_t *self, const char *user_id, int limit, int offset,
                     api_key_t *items, int *n, int64_t *total)
{
    *n = 0;
    *total = 0;
    if (!api_dbi_page_ok (limit, offset) || !items)
        return API_DB_INVALID;
    if (!api_dbi_id_ok (user_id, API_ID_SIZE))
        return API_DB_OK; /* nobody has such an id: an empty list */
    char l[API_DBI_I64_SIZE], o[API_DBI_I64_SIZE];
    const char *p[] = {user_id, api_dbi_fmt_i64 (l, limit), api_dbi_fmt_i64 (o, offset)};
    PGresult *res = NULL;
    /* one statement, one snapshot: the total and the page agree */
    int rc =
        api_dbi_query (self,
                       "WITH t AS (SELECT count(*) AS total FROM api_keys WHERE user_id = $1),"
                       " k AS (SELECT * FROM api_keys WHERE user_id = $1"
                       "  ORDER BY created_at DESC, id DESC LIMIT $2::int OFFSET $3::int)"
                       " SELECT t.total, " S_KEY_COLS " FROM t LEFT JOIN k ON true"
                       " ORDER BY k.created_at DESC, k.id DESC",
                       3, p, &res, NULL, 0);
    if (rc != API_DB_OK)
        return rc;
    if (PQnfields (res) != 1 + S_KEY_NCOLS) {
        PQclear (res);
        return API_DB_UNAVAILABLE;
    }
    int rows = PQntuples (res);
    for (int i = 0; i < rows && *n < limit; i++) {
        if (i == 0)
            *total = api_dbi_i64 (res, 0, 0);
        if (PQgetisnull (res, i, 1))
            continue; /* the empty page's lone row */
        s_key_row (res, i, 1, &items[(*n)++]);
    }
    PQclear (res);
    return API_DB_OK;
}

int api_db_key_revoke (api_db_t *self, const char *user_id, const char *key_id, char hash[65])
{
    if (!api_dbi_id_ok (user_id, API_ID_SIZE) || !api_dbi_id_ok (key_id, API_ID_SIZE))
        return API_DB_NOT_FOUND;
    const char *p[] = {key_id, user_id};
    PGresult *res = NULL;
    int rc = api_dbi_query (self,
                            "UPDATE api_keys SET revoked_at = now()"
                            " WHERE id = $1 AND user_id = $2 AND revoked_at IS NULL"
                            " RETURNING key_hash",
                            2, p, &res, NULL, 0);
    if (rc == API_DB_OK && PQntuples (res) != 1)
        rc = API_DB_NOT_FOUND;
    if (rc == API_DB_OK && hash)
        api_dbi_copy (hash, 65, res, 0, 0);
    PQclear (res);
    return rc;
}

int api_db_key_set_rates (api_db_t *self, const char *key_id, int64_t rate_default,
                          int64_t rate_create_sandbox, int64_t rate_execute_code)
{
    if (!api_dbi_id_ok (key_id, API_ID_SIZE))
        return API_DB_NOT_FOUND;
    if (rate_default < 0 || rate_create_sandbox < 0 || rate_execute_code < 0)
        return API_DB_INVALID;
    char a[API_DBI_I64_SIZE], b[API_DBI_I64_SIZE], c[API_DBI_I64_SIZE];
    const char *p[] = {key_id, api_dbi_fmt_i64 (a, rate_default),
                       api_dbi_fmt_i64 (b, rate_create_sandbox),
                       api_dbi_fmt_i64 (c, rate_execute_code)};
    PGresult *res = NULL;
    int rc = api_dbi_query (self,
                            "UPDATE api_keys SET rate_default = $2::bigint,"
                            " rate_create_sandbox = $3::bigint, rate_execute_code = $4::bigint"
                            " WHERE id = $1",
                            4, p, &res, NULL, 0);
    if (rc == API_DB_OK && api_dbi_affected (res) != 1)
        rc = API_DB_NOT_FOUND;
    PQclear (res);
    return rc;
}
