/*  api_db_sandbox — sandbox ownership and lifecycle rows, and the execution audit.
 *
 *  Design note: a sandbox row is written when the api has created the Sandbox object
 *  and updated with what the api later sees (status, started, terminated); start and
 *  termination times are set once and never moved. Lists are newest first with the id
 *  (or the audit sequence) as the tie-break, so pages do not overlap or skip rows, and
 *  their total comes from the same statement (one snapshot). Audit summaries are cut to
 *  API_DBI_SUMMARY_MAX bytes at a character boundary and cleaned of invalid UTF-8 and
 *  control characters, because what ran is client input and the audit must not fail
 *  because of it.
 */
#include "api_db_internal.h"
#include "lss_util.h"

#include <stdlib.h>
#include <string.h>

static const char *const s_levels[] = {"standard", "high", "custom", NULL};
static const char *const s_statuses[] = {"pending",    "creating", "running", "terminating",
                                         "terminated", "failed",   NULL};
static const char *const s_exec_kinds[] = {"code", "command", "packages", NULL};
static const char *const s_exec_statuses[] = {"completed", "failed", "timeout",
                                              "cancelled", "error",  NULL};
static const char *const s_transports[] = {"rest", "ws", NULL};

#define S_SB_COLS                                                                              \
    "s.id, s.user_id, s.namespace, s.runtime, s.security_level, s.warm,"                       \
    " COALESCE(s.warm_pod, ''), s.status, api_ms(s.created_at), api_ms(s.started_at),"         \
    " api_ms(s.terminated_at)"
#define S_SB_NCOLS 11

static void s_sb_row (const PGresult *res, int row, int c, api_sandbox_row_t *out)
{
    memset (out, 0, sizeof *out);
    api_dbi_copy (out->id, sizeof out->id, res, row, c);
    api_dbi_copy (out->user_id, sizeof out->user_id, res, row, c + 1);
    api_dbi_copy (out->ns, sizeof out->ns, res, row, c + 2);
    api_dbi_copy (out->runtime, sizeof out->runtime, res, row, c + 3);
    api_dbi_copy (out->security_level, sizeof out->security_level, res, row, c + 4);
    out->warm = api_dbi_bool (res, row, c + 5);
    api_dbi_copy (out->warm_pod, sizeof out->warm_pod, res, row, c + 6);
    api_dbi_copy (out->status, sizeof out->status, res, row, c + 7);
    out->created_ms = api_dbi_i64 (res, row, c + 8);
    out->started_ms = api_dbi_i64 (res, row, c + 9);
    out->terminated_ms = api_dbi_i64 (res, row, c + 10);
}

static bool s_sb_id_ok (const char *id)
{
    return api_dbi_k8s_name_ok (id, API_SB_ID_SIZE - 1);
}

int api_db_sandbox_insert (api_db_t *self, const api_sandbox_row_t *row, char *err,
                           size_t err_size)
{
    return api_db_sandbox_insert_capped (self, row, 0, err, err_size);
}

int api_db_sandbox_insert_capped (api_db_t *self, const api_sandbox_row_t *row, int64_t limit,
                                  char *err, size_t err_size)
{
    api_db_insert_op_t op;
    int rc = api_db_sandbox_insert_start (self, row, limit, &op, err, err_size);
    return rc == API_DB_OK ? api_db_sandbox_insert_finish (self, &op, err, err_size) : rc;
}

_Static_assert(sizeof ((api_db_insert_op_t *)0)->num[0] >= API_DBI_I64_SIZE,
               "api_db_insert_op_t holds api_dbi_fmt_i64 output");

static void s_unlock (api_db_t *self, api_db_insert_op_t *op)
{
    if (!op->locked)
        return;
    op->locked = false;
    int urc =
        api_dbi_query (self, "SELECT pg_advisory_unlock (hashtext ('api_sandboxes:' || $1))", 1,
                       op->p + 1, NULL, NULL, 0);
    (void)urc; /* a lost connection releases it anyway */
}

int api_db_sandbox_insert_start (api_db_t *self, const api_sandbox_row_t *row, int64_t limit,
                                 api_db_insert_op_t *op, char *err, size_t err_size)
{
    memset (op, 0, sizeof *op);
    if (!row || !s_sb_id_ok (row->id) || !api_dbi_id_ok (row->user_id, API_ID_SIZE) ||
        !api_dbi_k8s_name_ok (row->ns, API_NS_SIZE - 1) ||
        !api_dbi_text_ok (row->runtime, API_RUNTIME_SIZE - 1) ||
        !api_dbi_one_of (row->security_level, s_levels) ||
        !api_dbi_one_of (row->status, s_statuses) ||
        (row->warm_pod[0] && !api_dbi_k8s_name_ok (row->warm_pod, API_OBJNAME_SIZE - 1)) ||
        row->created_ms < 0 || row->started_ms < 0 || row->terminated_ms < 0) {
        lss_errf (err, err_size, "db: bad sandbox fields");
        return API_DB_INVALID;
    }
    op->limit = limit > 0 ? limit : 0;
    const char *p[] = {row->id,
                       row->user_id,
                       row->ns,
                       row->runtime,
                       row->security_level,
                       row->warm ? "true" : "false",
                       row->warm_pod[0] ? row->warm_pod : NULL,
                       row->status,
                       api_dbi_fmt_i64 (op->num[0], row->created_ms),
                       api_dbi_fmt_i64 (op->num[1], row->started_ms),
                       api_dbi_fmt_i64 (op->num[2], row->terminated_ms),
                       api_dbi_fmt_i64 (op->num[3], op->limit)};
    memcpy (op->p, p, sizeof p);
    if (!op->limit)
        return api_dbi_send (self,
                             "INSERT INTO api_sandboxes (id, user_id, namespace, runtime,"
                             " security_level, warm, warm_pod, status, created_at, started_at,"
                             " terminated_at) VALUES ($1, $2, $3, $4, $5, $6::boolean, $7, $8,"
                             " COALESCE(api_ts($9::bigint), now()), api_ts($10::bigint),"
                             " api_ts($11::bigint))",
                             11, op->p, err, err_size);
    /* a session lock (each statement here is its own transaction): the INSERT's own
     * snapshot then sees every row inserted by whoever held the lock before */
    int rc = api_dbi_query (self, "SELECT pg_advisory_lock (hashtext ('api_sandboxes:' || $1))",
                            1, op->p + 1, NULL, err, err_size);
    if (rc != API_DB_OK)
        return rc;
    op->locked = true;
    rc = api_dbi_send (self,
                       "INSERT INTO api_sandboxes (id, user_id, namespace, runtime,"
                       " security_level, warm, warm_pod, status, created_at, started_at,"
                       " terminated_at) SELECT $1, $2, $3, $4, $5, $6::boolean, $7, $8,"
                       " COALESCE(api_ts($9::bigint), now()), api_ts($10::bigint),"
                       " api_ts($11::bigint) WHERE (SELECT count(*) FROM api_sandboxes"
                       " WHERE user_id = $2 AND terminated_at IS NULL"
                       " AND status <> 'terminated') < $12::bigint",
                       12, op->p, err, err_size);
    if (rc != API_DB_OK)
        s_unlock (self, op);
    return rc;
}

int api_db_sandbox_insert_finish (api_db_t *self, api_db_insert_op_t *op, char *err,
                                  size_t err_size)
{
    PGresult *res = NULL;
    int rc = api_dbi_collect (self, &res, err, err_size);
    if (rc == API_DB_OK && op->limit && api_dbi_affected (res) != 1) {
        lss_errf (err, err_size, "sandbox quota reached");
        rc = API_DB_QUOTA;
    }
    PQclear (res);
    s_unlock (self, op);
    return rc;
}

int api_db_sandbox_get (api_db_t *self, const char *id, api_sandbox_row_t *out)
{
    if (!s_sb_id_ok (id))
        return API_DB_NOT_FOUND;
    const char *p[] = {id};
    PGresult *res = NULL;
    int rc = api_dbi_query (self, "SELECT " S_SB_COLS " FROM api_sandboxes s WHERE s.id = $1",
                            1, p, &res, NULL, 0);
    if (rc == API_DB_OK && (PQntuples (res) != 1 || PQnfields (res) != S_SB_NCOLS))
        rc = API_DB_NOT_FOUND;
    if (rc == API_DB_OK && out)
        s_sb_row (res, 0, 0, out);
    PQclear (res);
    return rc;
}

int api_db_sandbox_list (api_db_t *self, const char *user_id, int limit, int offset,
                         api_sandbox_row_t *items, int *n, int64_t *total)
{
    *n = 0;
    *total = 0;
    if (!api_dbi_page_ok (limit, offset) || !items)
        return API_DB_INVALID;
    if (user_id && !api_dbi_id_ok (user_id, API_ID_SIZE))
        return API_DB_OK; /* nobody has such an id: an empty list */
    char l[API_DBI_I64_SIZE], o[API_DBI_I64_SIZE];
    const char *p[] = {api_dbi_fmt_i64 (l, limit), api_dbi_fmt_i64 (o, offset), user_id};
    PGresult *res = NULL;
    /* $3 NULL = everyone's; the planner sees two statements, each with its index */
    const char *sql_user =
        "WITH t AS (SELECT count(*) AS total FROM api_sandboxes WHERE user_id = $3"
        "  AND status <> 'terminated'),"
        " s AS (SELECT * FROM api_sandboxes WHERE user_id = $3 AND status <> 'terminated'"
        "  ORDER BY created_at DESC, id DESC LIMIT $1::int OFFSET $2::int)"
        " SELECT t.total, " S_SB_COLS " FROM t LEFT JOIN s ON true"
        " ORDER BY s.created_at DESC, s.id DESC";
    const char *sql_all = "WITH t AS (SELECT count(*) AS total FROM api_sandboxes"
                          "  WHERE status <> 'terminated'),"
                          " s AS (SELECT * FROM api_sandboxes WHERE status <> 'terminated'"
                          "  ORDER BY created_at DESC, id DESC LIMIT $1::int OFFSET $2::int)"
                          " SELECT t.total, " S_SB_COLS " FROM t LEFT JOIN s ON true"
                          " ORDER BY s.created_at DESC, s.id DESC";
    int rc =
        api_dbi_query (self, user_id ? sql_user : sql_all, user_id ? 3 : 2, p, &res, NULL, 0);
    if (rc != API_DB_OK)
        return rc;
    if (PQnfields (res) != 1 + S_SB_NCOLS) {
        PQclear (res);
        return API_DB_UNAVAILABLE;
    }
    int rows = PQntuples (res);
    for (int i = 0; i < rows && *n < limit; i++) {
        if (i == 0)
            *total = api_dbi_i64 (res, 0, 0);
        if (PQgetisnull (res, i, 1))
            continue; /* the empty page's lone row */
        s_sb_row (res, i, 1, &items[(*n)++]);
    }
    PQclear (res);
    return API_DB_OK;
}

int api_db_sandbox_count_active (api_db_t *self, const char *user_id, int64_t *count)
{
    *count = 0;
    if (!api_dbi_id_ok (user_id, API_ID_SIZE))
        return API_DB_OK;
    const char *p[] = {user_id};
    PGresult *res = NULL;
    int rc = api_dbi_query (self,
                            "SELECT count(*) FROM api_sandboxes WHERE user_id = $1"
                            " AND terminated_at IS NULL AND status <> 'terminated'",
                            1, p, &res, NULL, 0);
    if (rc == API_DB_OK && PQntuples (res) == 1)
        *count = api_dbi_i64 (res, 0, 0);
    PQclear (res);
    return rc;
}

int api_db_sandbox_update (api_db_t *self, const char *id, const char *status,
                           int64_t started_ms, int64_t terminated_ms)
{
    if (!s_sb_id_ok (id))
        return API_DB_NOT_FOUND;
    if ((status && !api_dbi_one_of (status, s_statuses)) || started_ms < 0 || terminated_ms < 0)
        return API_DB_INVALID;
    char s[API_DBI_I64_SIZE], t[API_DBI_I64_SIZE];
    const char *p[] = {id, status, api_dbi_fmt_i64 (s, started_ms),
                       api_dbi_fmt_i64 (t, terminated_ms)};
    PGresult *res = NULL;
    int rc = api_dbi_query (self,
                            "UPDATE api_sandboxes SET status = COALESCE($2, status),"
                            " started_at = COALESCE(started_at, api_ts($3::bigint)),"
                            " terminated_at = COALESCE(terminated_at, api_ts($4::bigint))"
                            " WHERE id = $1",
                            4, p, &res, NULL, 0);
    if (rc == API_DB_OK && api_dbi_affected (res) != 1)
        rc = API_DB_NOT_FOUND;
    PQclear (res);
    return rc;
}

int api_db_sandbox_delete (api_db_t *self, const char *id)
{
    if (!s_sb_id_ok (id))
        return API_DB_NOT_FOUND;
    const char *p[] = {id};
    PGresult *res = NULL;
    int rc =
        api_dbi_query (self, "DELETE FROM api_sandboxes WHERE id = $1", 1, p, &res, NULL, 0);
    if (rc == API_DB_OK && api_dbi_affected (res) != 1)
        rc = API_DB_NOT_FOUND;
    PQclear (res);
    return rc;
}

/* ------------------------------------------------------------------ execution audit */

int api_db_exec_record (api_db_t *self, const api_exec_row_t *row, char *err, size_t err_size)
{
    if (!row || !api_dbi_id_ok (row->id, API_ID_SIZE) || !s_sb_id_ok (row->sandbox_id) ||
        !api_dbi_id_ok (row->user_id, API_ID_SIZE) ||
        !api_dbi_one_of (row->kind, s_exec_kinds) ||
        (row->language[0] && !api_dbi_id_ok (row->language, sizeof row->language)) ||
        !api_dbi_one_of (row->status, s_exec_statuses) ||
        !api_dbi_one_of (row->transport, s_transports) || row->started_ms < 0 ||
        row->completed_ms < 0 || row->duration_ms < 0 || row->stdout_bytes < 0 ||
        row->stderr_bytes < 0) {
        lss_errf (err, err_size, "db: bad execution fields");
        return API_DB_INVALID;
    }
    char summary[API_DBI_SUMMARY_MAX + 1];
    api_dbi_utf8_clip (row->summary, API_DBI_SUMMARY_MAX, summary);
    char ec[API_DBI_I64_SIZE], st[API_DBI_I64_SIZE], co[API_DBI_I64_SIZE], du[API_DBI_I64_SIZE],
        so[API_DBI_I64_SIZE], se[API_DBI_I64_SIZE];
    const char *p[] = {row->id,
                       row->sandbox_id,
                       row->user_id,
                       row->kind,
                       row->language[0] ? row->language : NULL,
                       summary,
                       row->status,
                       api_dbi_fmt_i64 (ec, row->exit_code),
                       api_dbi_fmt_i64 (st, row->started_ms),
                       api_dbi_fmt_i64 (co, row->completed_ms),
                       api_dbi_fmt_i64 (du, row->duration_ms),
                       api_dbi_fmt_i64 (so, row->stdout_bytes),
                       api_dbi_fmt_i64 (se, row->stderr_bytes),
                       row->transport};
    return api_dbi_query (self,
                          "INSERT INTO api_executions (id, sandbox_id, user_id, kind, language,"
                          " summary, status, exit_code, started_at, completed_at, duration_ms,"
                          " stdout_bytes, stderr_bytes, transport) VALUES ($1, $2, $3, $4, $5,"
                          " $6, $7, $8::bigint, api_ts($9::bigint), api_ts($10::bigint),"
                          " $11::bigint, $12::bigint, $13::bigint, $14)",
                          14, p, NULL, err, err_size);
}

/*  RFC 3339 text of epoch ms, or JSON null for "not set". */
static json_t *s_time_json (int64_t ms)
{
    char buf[LSS_TIME_RFC3339_SIZE];
    return ms > 0 ? json_string (lss_time_rfc3339 (ms, buf)) : json_null ();
}

#define S_EXEC_NCOLS 14

static json_t *s_exec_json (const PGresult *res, int row, int c)
{
    char id[API_ID_SIZE], sb[API_SB_ID_SIZE], user[API_ID_SIZE], kind[16], lang[33];
    char status[API_STATUS_SIZE], transport[8], summary[API_DBI_SUMMARY_MAX + 1];
    api_dbi_copy (id, sizeof id, res, row, c);
    api_dbi_copy (sb, sizeof sb, res, row, c + 1);
    api_dbi_copy (user, sizeof user, res, row, c + 2);
    api_dbi_copy (kind, sizeof kind, res, row, c + 3);
    api_dbi_copy (lang, sizeof lang, res, row, c + 4);
    api_dbi_copy (summary, sizeof summary, res, row, c + 5);
    api_dbi_copy (status, sizeof status, res, row, c + 6);
    api_dbi_copy (transport, sizeof transport, res, row, c + 13);
    /* json_pack refuses invalid UTF-8: the server's bytes are cleaned first */
    char clean[API_DBI_SUMMARY_MAX + 1];
    api_dbi_utf8_clip (summary, API_DBI_SUMMARY_MAX, clean);
    return json_pack ("{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:I, s:o, s:o, s:I, s:I, s:I, s:s}",
                      "executionId", id, "sandboxId", sb, "userId", user, "kind", kind,
                      "language", lang, "summary", clean, "status", status, "exitCode",
                      (json_int_t)api_dbi_i64 (res, row, c + 7), "startedAt",
                      s_time_json (api_dbi_i64 (res, row, c + 8)), "completedAt",
                      s_time_json (api_dbi_i64 (res, row, c + 9)), "durationMs",
                      (json_int_t)api_dbi_i64 (res, row, c + 10), "stdoutBytes",
                      (json_int_t)api_dbi_i64 (res, row, c + 11), "stderrBytes",
                      (json_int_t)api_dbi_i64 (res, row, c + 12), "transport", transport);
}

int api_db_exec_list (api_db_t *self, const char *sandbox_id, int limit, int offset,
                      json_t **items, int64_t *total)
{
    *items = NULL;
    *total = 0;
    if (!api_dbi_page_ok (limit, offset))
        return API_DB_INVALID;
    json_t *arr = json_array ();
    if (!arr)
        return API_DB_UNAVAILABLE;
    if (!s_sb_id_ok (sandbox_id)) {
        *items = arr; /* no such sandbox can exist: an empty list */
        return API_DB_OK;
    }
    char l[API_DBI_I64_SIZE], o[API_DBI_I64_SIZE];
    const char *p[] = {sandbox_id, api_dbi_fmt_i64 (l, limit), api_dbi_fmt_i64 (o, offset)};
    PGresult *res = NULL;
    int rc = api_dbi_query (
        self,
        "WITH t AS (SELECT count(*) AS total FROM api_executions WHERE sandbox_id = $1),"
        " e AS (SELECT * FROM api_executions WHERE sandbox_id = $1"
        "  ORDER BY started_at DESC NULLS LAST, seq DESC LIMIT $2::int OFFSET $3::int)"
        " SELECT t.total, e.id, e.sandbox_id, e.user_id, e.kind, COALESCE(e.language, ''),"
        " e.summary, e.status, e.exit_code, api_ms(e.started_at), api_ms(e.completed_at),"
        " e.duration_ms, e.stdout_bytes, e.stderr_bytes, e.transport"
        " FROM t LEFT JOIN e ON true ORDER BY e.started_at DESC NULLS LAST, e.seq DESC",
        3, p, &res, NULL, 0);
    if (rc == API_DB_OK && PQnfields (res) != 1 + S_EXEC_NCOLS)
        rc = API_DB_UNAVAILABLE;
    int rows = rc == API_DB_OK ? PQntuples (res) : 0;
    for (int i = 0; i < rows && rc == API_DB_OK && (int)json_array_size (arr) < limit; i++) {
        if (i == 0)
            *total = api_dbi_i64 (res, 0, 0);
        if (PQgetisnull (res, i, 1))
            continue;
        json_t *item = s_exec_json (res, i, 1);
        if (!item || json_array_append_new (arr, item) != 0)
            rc = API_DB_UNAVAILABLE;
    }
    PQclear (res);
    if (rc != API_DB_OK) {
        json_decref (arr);
        *total = 0;
        return rc;
    }
    *items = arr;
    return API_DB_OK;
}
