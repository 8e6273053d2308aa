/*  lss_store_pg — the object store's PostgreSQL backend (local mode).
 *
 *  Design note: one row per object in store_objects (uid, resource_version, generation,
 *  labels, annotations, owner uids, metadata, spec and status as jsonb) and one row per
 *  change in store_events (rv, kind, namespace, name, type, object). Every write runs in
 *  one transaction that first takes a store-wide advisory lock, then draws its
 *  resourceVersion from store_rv_seq, writes the object, appends the event, records the
 *  rv in store_state and NOTIFYs it. Because writers are serialized by that lock and the
 *  lock is released only after the commit is visible, resourceVersions become visible in
 *  increasing order: a watcher that has read every event up to rv N never later finds
 *  one below N (no lost events), and reads only rv > N (no duplicates). NOTIFY carries
 *  the rv and the kind ("<rv> <kind>") on the kind's channel (lss_store_events.<kind>);
 *  it merely wakes the watches of that kind, which read the events table. Compaction deletes
 * old event rows and records the compaction point in store_state; a watch or a continue token
 * below it answers LSS_STORE_GONE.
 *
 *  Round trips (libpq pipeline mode sends several statements as one flight): a create is
 *  one flight, BEGIN + lock + one write statement + COMMIT; the write statement draws
 *  the rv, writes the row, appends the event, records the rv and NOTIFYs (data-modifying
 *  CTEs, each conditional on the row being written). An update reads the object without
 *  the lock, merges in C, then sends the same kind of flight whose write applies only if
 *  the row still has the resourceVersion read (else CONFLICT, as the caller's rv is then
 *  stale too): the lock is held for the server time of one flight, never across a round
 *  trip to the client. Deletes (and an update removing the last finalizer of an object
 *  being deleted) read the object under the lock, since cascades follow. A sequence
 *  value drawn for a write that then writes nothing (name taken, object changed) is
 *  skipped: resourceVersions are opaque and may have gaps. A ROLLBACK of a transaction
 *  that wrote nothing is sent without waiting for its answer (the server releases the
 *  lock on receipt); the answer is read before the next call. All SQL goes through
 *  PQexecParams / PQsendQueryParams with parameters; only static migration text uses
 *  PQexec.
 */
#include "lss_store_impl.h"
#include "lss_log.h"
#include "lss_util.h"

#include <inttypes.h>
#include <libpq-fe.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define S_LOCK_CLASS     0x4C5353 /* 'LSS': pg_advisory_xact_lock (class, id) */
#define S_LOCK_MIGRATE   1
#define S_LOCK_WRITE     2
#define S_NOTIFY_CHANNEL "lss_store_events." /* + the kind: one channel per kind */
#define S_GENERATE_TRIES 8
#define S_CASCADE_DEPTH  16   /* ownerReference chains deeper than this are not followed */
#define S_CASCADE_FANOUT 1000 /* dependents deleted per removed object */
#define S_WATCH_BATCH    100  /* events read per query */
#define S_WATCH_REFETCH  16   /* fetch rounds per next call before answering 0 */
#define S_WATCH_IDLE_MS  1000 /* a watch seeing only other kinds' changes reads this often */
#define S_TOKEN_MAX      1024 /* continue token, hex characters */
#define S_RV_SIZE        24
#define S_SQL_MAX        4096

typedef struct {
    lss_store_t base; /* first: the store handle callers hold */
    PGconn *conn;
    char *dsn;
    bool unread;       /* a ROLLBACK was sent whose answer is not read yet */
    unsigned prepared; /* bit q: query q is prepared on conn */
    /* list statements prepared on conn, by their text (lss_list_<i>); a list's text
     * depends only on its shape (kind, namespace or not, selector terms, paging) */
    char *list_sql[LSS_STORE_PG_LIST_PREPARED_MAX];
    int list_n;
} s_pg_t;

/*  The statements of the hot paths, prepared once per connection (planning them costs
 *  more server time than running them). */
typedef enum { S_Q_LOAD, S_Q_LOCK, S_Q_INSERT, S_Q_UPDATE, S_Q_DELETE, S_Q_COUNT } s_q_t;
static int s_prepare (s_pg_t *self, int q, char *err, size_t err_size);
static const char *const s_q_names[S_Q_COUNT] = {"lss_load", "lss_lock", "lss_insert",
                                                 "lss_update", "lss_delete"};

typedef struct {
    lss_store_watch_t base; /* first: the watch handle callers hold */
    PGconn *conn;
    char kind[64];
    char ns[LSS_STORE_NAMESPACE_MAX + 1];
    bool all_ns;
    int64_t fetched_rv;   /* every event up to here has been read into the queue */
    int64_t delivered_rv; /* rv of the last event handed out */
    json_t *queue;        /* array of {type, rv, object} not yet handed out */
    size_t queue_pos;
    bool need_fetch;
    bool other_kinds;   /* NOTIFYs of other kinds since the last fetch */
    bool prepared;      /* the fetch query is prepared on conn */
    int64_t fetched_ms; /* when the last fetch ran (monotonic) */
    int failed;         /* sticky LSS_STORE_GONE / LSS_STORE_UNAVAILABLE */
    char rv_text[S_RV_SIZE];
} s_pg_watch_t;

static const char *s_migrations[] = {
    /* 1: objects, events, state */
    "CREATE SEQUENCE store_rv_seq;"
    "CREATE TABLE store_objects ("
    "  kind text NOT NULL, namespace text NOT NULL, name text NOT NULL,"
    "  uid text NOT NULL UNIQUE, api_version text NOT NULL,"
    "  resource_version bigint NOT NULL, generation bigint NOT NULL,"
    "  labels jsonb NOT NULL DEFAULT '{}', annotations jsonb NOT NULL DEFAULT '{}',"
    "  owner_uids jsonb NOT NULL DEFAULT '[]', deleting boolean NOT NULL DEFAULT false,"
    "  metadata jsonb NOT NULL, spec jsonb, status jsonb,"
    "  PRIMARY KEY (kind, namespace, name));"
    "CREATE INDEX store_objects_labels ON store_objects USING gin (labels);"
    "CREATE INDEX store_objects_owners ON store_objects USING gin (owner_uids);"
    "CREATE TABLE store_events ("
    "  rv bigint PRIMARY KEY, kind text NOT NULL, namespace text NOT NULL,"
    "  name text NOT NULL,"
    "  type text NOT NULL CHECK (type IN ('ADDED', 'MODIFIED', 'DELETED')),"
    "  object jsonb NOT NULL);"
    "CREATE INDEX store_events_kind ON store_events (kind, rv);"
    "CREATE TABLE store_state ("
    "  id int PRIMARY KEY CHECK (id = 1),"
    "  current_rv bigint NOT NULL, compacted_rv bigint NOT NULL);"
    "INSERT INTO store_state VALUES (1, 0, 0);",
};
#define S_MIGRATIONS ((int)(sizeof s_migrations / sizeof s_migrations[0]))

/* ------------------------------------------------------------------ helpers */

static void s_notice_quiet (void *arg, const char *message)
{
    (void)arg;
    (void)message;
}

static int s_pg_error (PGconn *conn, PGresult *res, const char *what, char *err,
                       size_t err_size)
{
    const char *state = res ? PQresultErrorField (res, PG_DIAG_SQLSTATE) : NULL;
    const char *msg = res ? PQresultErrorMessage (res) : PQerrorMessage (conn);
    int code = LSS_STORE_UNAVAILABLE;
    if (state && (strcmp (state, "23505") == 0 || strcmp (state, "40001") == 0 ||
                  strcmp (state, "40P01") == 0))
        code = LSS_STORE_CONFLICT;
    char text[200];
    lss_fmt (text, sizeof text, "%s", msg ? msg : "");
    text[strcspn (text, "\n")] = '\0';
    lss_errf (err, err_size, "store: %s: %s%s%s", what, state ? state : "", state ? " " : "",
              text);
    return code;
}

/*  Runs one parameterized statement. On LSS_STORE_OK hands the result over in *res_p
 *  (if res_p is not NULL; else clears it). */
static int s_exec (PGconn *conn, const char *sql, int n, const char *const *params,
                   PGresult **res_p, char *err, size_t err_size)
{
    if (res_p)
        *res_p = NULL;
    PGresult *res = PQexecParams (conn, sql, n, NULL, params, NULL, NULL, 0);
    ExecStatusType st = res ? PQresultStatus (res) : PGRES_FATAL_ERROR;
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
        int rc = s_pg_error (conn, res, "query", err, err_size);
        PQclear (res);
        return rc;
    }
    if (res_p)
        *res_p = res;
    else
        PQclear (res);
    return LSS_STORE_OK;
}

static PGconn *s_connect (const char *dsn, char *err, size_t err_size)
{
    char timeout[16];
    lss_fmt (timeout, sizeof timeout, "%d", LSS_STORE_CONNECT_TIMEOUT_S);
    /* who is who in pg_stat_activity: "lss-<service>" unless the DSN says otherwise */
    char service[32], app[40];
    lss_log_get_service (service, sizeof service);
    lss_fmt (app, sizeof app, "%s%s", strcmp (service, "lss") ? "lss-" : "", service);
    const char *keys[] = {"connect_timeout", "application_name", "dbname", NULL};
    const char *vals[] = {timeout, app, dsn, NULL};
    PGconn *conn = PQconnectdbParams (keys, vals, 1);
    if (!conn || PQstatus (conn) != CONNECTION_OK) {
        char text[200];
        lss_fmt (text, sizeof text, "%s", conn ? PQerrorMessage (conn) : "out of memory");
        text[strcspn (text, "\n")] = '\0';
        lss_errf (err, err_size, "store: connect: %s", text);
        PQfinish (conn);
        return NULL;
    }
    PQsetNoticeProcessor (conn, s_notice_quiet, NULL);
    char ms[16];
    lss_fmt (ms, sizeof ms, "%d", LSS_STORE_STATEMENT_TIMEOUT_MS);
    const char *p[] = {ms};
    if (s_exec (conn, "SELECT set_config('statement_timeout', $1, false)", 1, p, NULL, err,
                err_size) != LSS_STORE_OK) {
        PQfinish (conn);
        return NULL;
    }
    return conn;
}

/*  Reconnects a lost connection once. */
/*  Forgets the prepared list statements (the connection that had them is gone, or the
 *  server dropped them). */
static void s_list_forget (s_pg_t *self)
{
    for (int i = 0; i < self->list_n; i++)
        free (self->list_sql[i]);
    self->list_n = 0;
}

/*  Runs a list query as a statement prepared once per connection: planning one costs
 *  about four times running it (1.0 against 0.24 ms for the warm-pool allocator's).
 *  Unnamed when the table is full or the prepare fails; a statement the server no
 *  longer has (26000: DISCARD ALL, a pooler) empties the table and runs unnamed. */
static int s_list_exec (s_pg_t *self, const char *sql, int n, const char *const *params,
                        PGresult **res_p, char *err, size_t err_size)
{
    int idx = -1;
    for (int i = 0; i < self->list_n && idx < 0; i++)
        if (strcmp (self->list_sql[i], sql) == 0)
            idx = i;
    char name[32];
    if (idx < 0 && self->list_n < LSS_STORE_PG_LIST_PREPARED_MAX) {
        char *copy = strdup (sql);
        lss_fmt (name, sizeof name, "lss_list_%d", self->list_n);
        PGresult *pr = copy ? PQprepare (self->conn, name, sql, n, NULL) : NULL;
        if (pr && PQresultStatus (pr) == PGRES_COMMAND_OK) {
            self->list_sql[self->list_n] = copy;
            idx = self->list_n++;
            copy = NULL;
        }
        PQclear (pr);
        free (copy);
    }
    if (idx < 0)
        return s_exec (self->conn, sql, n, params, res_p, err, err_size);
    lss_fmt (name, sizeof name, "lss_list_%d", idx);
    *res_p = NULL;
    PGresult *res = PQexecPrepared (self->conn, name, n, params, NULL, NULL, 0);
    ExecStatusType st = res ? PQresultStatus (res) : PGRES_FATAL_ERROR;
    if (st == PGRES_TUPLES_OK) {
        *res_p = res;
        return LSS_STORE_OK;
    }
    const char *state = res ? PQresultErrorField (res, PG_DIAG_SQLSTATE) : NULL;
    if (state && strcmp (state, "26000") == 0) {
        PQclear (res);
        s_list_forget (self);
        return s_exec (self->conn, sql, n, params, res_p, err, err_size);
    }
    int rc = s_pg_error (self->conn, res, "query", err, err_size);
    PQclear (res);
    return rc;
}

int lss_store_pg_list_prepared (const lss_store_t *store)
{
    return store && strcmp (store->ops->name, "postgres") == 0 ? ((const s_pg_t *)store)->list_n
                                                               : -1;
}

static int s_ensure (s_pg_t *self, char *err, size_t err_size)
{
    if (self->unread) { /* the answer to a ROLLBACK sent without waiting */
        PGresult *r;
        while ((r = PQgetResult (self->conn)))
            PQclear (r);
        self->unread = false;
    }
    if (PQstatus (self->conn) == CONNECTION_OK)
        return LSS_STORE_OK;
    PGconn *conn = s_connect (self->dsn, err, err_size);
    if (!conn)
        return LSS_STORE_UNAVAILABLE;
    PQfinish (self->conn);
    self->conn = conn;
    self->prepared = 0;
    s_list_forget (self);
    lss_log_info ("store reconnected", NULL);
    return LSS_STORE_OK;
}

static int s_lock (PGconn *conn, int id, char *err, size_t err_size)
{
    char cls[16], key[16];
    lss_fmt (cls, sizeof cls, "%d", S_LOCK_CLASS);
    lss_fmt (key, sizeof key, "%d", id);
    const char *p[] = {cls, key};
    return s_exec (conn, "SELECT pg_advisory_xact_lock($1::int, $2::int)", 2, p, NULL, err,
                   err_size);
}

/*  Ends the write transaction without waiting for the answer: the server releases the
 *  lock when it reads the ROLLBACK; s_ensure reads the answer before the next call. */
static void s_release (s_pg_t *self)
{
    if (PQsendQueryParams (self->conn, "ROLLBACK", 0, NULL, NULL, NULL, NULL, 0) == 1)
        self->unread = true;
    else
        PQclear (PQexec (self->conn, "ROLLBACK"));
}

static int s_finish (s_pg_t *self, int rc, char *err, size_t err_size)
{
    if (rc == LSS_STORE_OK)
        return s_exec (self->conn, "COMMIT", 0, NULL, NULL, err, err_size);
    PQclear (PQexec (self->conn, "ROLLBACK"));
    return rc;
}

typedef struct {
    const char *sql; /* or, q > 0: prepared query q - 1 */
    int q;
    int n;
    const Oid *types; /* NULL: inferred */
    const char *const *params;
    PGresult *res; /* out: the result, when the statement succeeded (caller clears) */
} s_stmt_t;

static void s_stmts_clear (s_stmt_t *st, int count)
{
    for (int i = 0; i < count; i++) {
        PQclear (st[i].res);
        st[i].res = NULL;
    }
}

/*  Sends count statements in one flight (libpq pipeline mode) and reads their results:
 *  one round trip instead of count. Returns LSS_STORE_OK when every one succeeded; else
 *  the first failure's code (the server skipped the statements after it). A connection
 *  left in an unknown state is closed (s_ensure reconnects). */
static int s_flight (s_pg_t *self, s_stmt_t *st, int count, char *err, size_t err_size)
{
    PGconn *conn = self->conn;
    for (int i = 0; i < count; i++) {
        st[i].res = NULL;
        if (st[i].q > 0) {
            int rc = s_prepare (self, st[i].q - 1, err, err_size);
            if (rc != LSS_STORE_OK)
                return rc;
        }
    }
    if (PQenterPipelineMode (conn) != 1)
        return s_pg_error (conn, NULL, "pipeline", err, err_size);
    int rc = LSS_STORE_OK, sent = 0;
    for (; sent < count; sent++)
        if ((st[sent].q > 0 ? PQsendQueryPrepared (conn, s_q_names[st[sent].q - 1], st[sent].n,
                                                   st[sent].params, NULL, NULL, 0)
                            : PQsendQueryParams (conn, st[sent].sql, st[sent].n, st[sent].types,
                                                 st[sent].params, NULL, NULL, 0)) != 1) {
            rc = s_pg_error (conn, NULL, "send", err, err_size);
            break;
        }
    bool synced = false;
    if (PQpipelineSync (conn) != 1) {
        if (rc == LSS_STORE_OK)
            rc = s_pg_error (conn, NULL, "send", err, err_size);
    } else {
        /* each statement's result is followed by NULL; the sync's result ends it all */
        int done = 0;
        for (int guard = 0; guard < 4 * (sent + 2) && !synced; guard++) {
            PGresult *r = PQgetResult (conn);
            if (!r) {
                if (PQstatus (conn) != CONNECTION_OK)
                    break;
                done++;
                continue;
            }
            ExecStatusType t = PQresultStatus (r);
            if (t == PGRES_PIPELINE_SYNC) {
                synced = true;
                PQclear (r);
            } else if ((t == PGRES_COMMAND_OK || t == PGRES_TUPLES_OK) && done < sent &&
                       !st[done].res)
                st[done].res = r;
            else {
                if (rc == LSS_STORE_OK)
                    rc = t == PGRES_PIPELINE_ABORTED
                             ? (lss_errf (err, err_size, "store: statement skipped"),
                                LSS_STORE_UNAVAILABLE)
                             : s_pg_error (conn, r, "query", err, err_size);
                PQclear (r);
            }
        }
    }
    if (!synced || PQexitPipelineMode (conn) != 1) {
        if (rc == LSS_STORE_OK)
            rc = s_pg_error (conn, NULL, "pipeline", err, err_size);
        rc = rc == LSS_STORE_CONFLICT ? LSS_STORE_UNAVAILABLE : rc;
        PQfinish (self->conn);
        self->conn = NULL; /* reconnected by the next call */
    }
    if (rc != LSS_STORE_OK)
        s_stmts_clear (st, count);
    return rc;
}

static const char *s_meta_str (const json_t *obj, const char *key)
{
    return json_string_value (json_object_get (json_object_get (obj, "metadata"), key));
}

static int s_parse_rv (const char *text, int64_t *rv)
{
    return lss_parse_int64 (text, 0, INT64_MAX, rv);
}

static void s_set_rv (json_t *obj, int64_t rv)
{
    char text[S_RV_SIZE];
    lss_fmt (text, sizeof text, "%" PRId64, rv);
    json_object_set_new (json_object_get (obj, "metadata"), "resourceVersion",
                         json_string (text));
}

static void s_uuid (char *out, size_t size)
{
    uint8_t b[16] = {0};
    lss_random_bytes (b, sizeof b);
    b[6] = (uint8_t)((b[6] & 0x0f) | 0x40);
    b[8] = (uint8_t)((b[8] & 0x3f) | 0x80);
    lss_fmt (out, size, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
             b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12],
             b[13], b[14], b[15]);
}

/*  This backend keeps apiVersion, kind, metadata, spec and status: any other top-level
 *  field (a Secret's data, an Event's message) is refused by name rather than dropped.
 *  Such objects belong to cluster mode (the Kubernetes backend keeps them). */
static int s_check_fields (const json_t *obj, char *err, size_t err_size)
{
    const char *key;
    json_t *v;
    json_object_foreach ((json_t *)obj, key, v)
    {
        (void)v;
        if (strcmp (key, "apiVersion") && strcmp (key, "kind") && strcmp (key, "metadata") &&
            strcmp (key, "spec") && strcmp (key, "status")) {
            lss_errf (err, err_size,
                      "%.64s: the postgres store keeps only apiVersion, kind, metadata, spec "
                      "and status",
                      key);
            return LSS_STORE_INVALID;
        }
    }
    return LSS_STORE_OK;
}

/*  Builds {apiVersion, kind, metadata, spec?, status?} from columns col..col+4. */
static json_t *s_row_object (PGresult *res, int row, int col)
{
    json_t *obj = json_object ();
    json_t *meta = json_loads (PQgetvalue (res, row, col + 2), 0, NULL);
    if (!obj || !json_is_object (meta)) {
        json_decref (obj);
        json_decref (meta);
        return NULL;
    }
    json_object_set_new (obj, "apiVersion", json_string (PQgetvalue (res, row, col)));
    json_object_set_new (obj, "kind", json_string (PQgetvalue (res, row, col + 1)));
    json_object_set_new (obj, "metadata", meta);
    static const char *keys[] = {"spec", "status"};
    for (int i = 0; i < 2; i++) {
        if (PQgetisnull (res, row, col + 3 + i))
            continue;
        json_t *v = json_loads (PQgetvalue (res, row, col + 3 + i), 0, NULL);
        if (!v) {
            json_decref (obj);
            return NULL;
        }
        json_object_set_new (obj, keys[i], v);
    }
    return obj;
}

#define S_OBJECT_COLUMNS "api_version, kind, metadata::text, spec::text, status::text"
#define S_LOAD_SQL                                                                             \
    "SELECT " S_OBJECT_COLUMNS " FROM store_objects"                                           \
    " WHERE kind = $1 AND namespace = $2 AND name = $3"

/*  The object of a S_LOAD_SQL result; LSS_STORE_NOT_FOUND if it has no row. */
static int s_row_load (PGresult *res, const char *kind, const char *ns, const char *name,
                       json_t **out, char *err, size_t err_size)
{
    *out = NULL;
    if (PQntuples (res) == 0) {
        lss_errf (err, err_size, "%s %s%s%s not found", kind, ns, ns[0] ? "/" : "", name);
        return LSS_STORE_NOT_FOUND;
    }
    if (!(*out = s_row_object (res, 0, 0))) {
        lss_errf (err, err_size, "store: stored object does not parse");
        return LSS_STORE_UNAVAILABLE;
    }
    return LSS_STORE_OK;
}

/*  Reads the stored object; LSS_STORE_NOT_FOUND if absent. */
static int s_load (s_pg_t *self, const char *kind, const char *ns, const char *name,
                   json_t **out, char *err, size_t err_size)
{
    *out = NULL;
    const char *p[] = {kind, ns, name};
    int rc = s_prepare (self, S_Q_LOAD, err, err_size);
    if (rc != LSS_STORE_OK)
        return rc;
    PGresult *res = PQexecPrepared (self->conn, s_q_names[S_Q_LOAD], 3, p, NULL, NULL, 0);
    ExecStatusType t = res ? PQresultStatus (res) : PGRES_FATAL_ERROR;
    if (t != PGRES_TUPLES_OK) {
        rc = s_pg_error (self->conn, res, "query", err, err_size);
        PQclear (res);
        return rc;
    }
    rc = s_row_load (res, kind, ns, name, out, err, err_size);
    PQclear (res);
    return rc;
}

static const char s_lock_sql[] = "SELECT pg_advisory_xact_lock($1::int, $2::int)";

static void s_lock_params (char cls[16], char id[16])
{
    lss_fmt (cls, 16, "%d", S_LOCK_CLASS);
    lss_fmt (id, 16, "%d", S_LOCK_WRITE);
}

/*  One flight: BEGIN, the store-wide write lock and (key not NULL: kind, ns, name) the
 *  stored object, read under the lock, into *stored. On LSS_STORE_OK the transaction is
 *  open; on any failure (LSS_STORE_NOT_FOUND when the object is absent) it has been
 *  ended. */
static int s_begin_write (s_pg_t *self, const char *const key[3], json_t **stored, char *err,
                          size_t err_size)
{
    int rc = s_ensure (self, err, err_size);
    if (rc != LSS_STORE_OK)
        return rc;
    char cls[16], id[16];
    s_lock_params (cls, id);
    const char *lock_p[] = {cls, id};
    s_stmt_t st[3] = {{.sql = "BEGIN"}, {.q = 1 + S_Q_LOCK, .n = 2, .params = lock_p}};
    int n = 2;
    if (key)
        st[n++] = (s_stmt_t){.q = 1 + S_Q_LOAD, .n = 3, .params = key};
    rc = s_flight (self, st, n, err, err_size);
    if (rc == LSS_STORE_OK && key)
        rc = s_row_load (st[2].res, key[0], key[1], key[2], stored, err, err_size);
    s_stmts_clear (st, n);
    if (rc != LSS_STORE_OK && self->conn) {
        if (rc == LSS_STORE_NOT_FOUND)
            s_release (self);
        else
            PQclear (PQexec (self->conn, "ROLLBACK"));
    }
    return rc;
}

typedef enum { S_INSERT, S_UPDATE, S_DELETE } s_write_t;

/*  The statement of one write. r draws the resourceVersion (under the lock, taken by an
 *  earlier statement of the transaction); w writes the row (insert, or replace / remove
 *  only if it still has resourceVersion $6 and uid $4) with the rv put into its
 *  metadata; then, each only if w wrote the row, the event (built from the same
 *  parameters), current_rv and the NOTIFY. Returns the new rv, one row, or no row if
 *  nothing was written. */
#define S_WRITE_HEAD " WITH r AS MATERIALIZED (SELECT nextval('store_rv_seq') AS rv),"
#define S_WRITE_META "jsonb_set($12, '{resourceVersion}', to_jsonb(r.rv::text))"
#define S_WRITE_TAIL                                                                           \
    " e AS (INSERT INTO store_events (rv, kind, namespace, name, type, object)"                \
    " SELECT w.rv, $1, $2, $3, $15, jsonb_build_object('apiVersion', $5, 'kind', $1,"          \
    " 'metadata', w.metadata)"                                                                 \
    " || CASE WHEN $13 IS NULL THEN '{}'::jsonb ELSE jsonb_build_object('spec', $13) END"      \
    " || CASE WHEN $14 IS NULL THEN '{}'::jsonb ELSE jsonb_build_object('status', $14) END"    \
    " FROM w),"                                                                                \
    " s AS (UPDATE store_state SET current_rv = w.rv FROM w WHERE id = 1)"                     \
    " SELECT w.rv, pg_notify('" S_NOTIFY_CHANNEL "' || $1, w.rv::text || ' ' || $1) FROM w"

static const char *const s_write_sql[] = {
    [S_INSERT] = S_WRITE_HEAD
    " w AS (INSERT INTO store_objects (kind, namespace, name, uid, api_version,"
    " resource_version, generation, labels, annotations, owner_uids, deleting, metadata,"
    " spec, status) SELECT $1, $2, $3, $4, $5, r.rv, $7, $8, $9, $10, $11, " S_WRITE_META
    ", $13, $14 FROM r ON CONFLICT DO NOTHING RETURNING resource_version AS rv, "
    "metadata)," S_WRITE_TAIL,
    [S_UPDATE] = S_WRITE_HEAD
    " w AS (UPDATE store_objects o SET api_version = $5, resource_version = r.rv,"
    " generation = $7, labels = $8, annotations = $9, owner_uids = $10, deleting = $11,"
    " metadata = " S_WRITE_META ", spec = $13, status = $14 FROM r"
    " WHERE o.kind = $1 AND o.namespace = $2 AND o.name = $3 AND o.uid = $4"
    " AND o.resource_version = $6 RETURNING o.resource_version AS rv, "
    "o.metadata)," S_WRITE_TAIL,
    [S_DELETE] =
        S_WRITE_HEAD " w AS (DELETE FROM store_objects o USING r"
                     " WHERE o.kind = $1 AND o.namespace = $2 AND o.name = $3 AND o.uid = $4"
                     " AND o.resource_version = $6 RETURNING r.rv AS rv, " S_WRITE_META
                     " AS metadata)," S_WRITE_TAIL,
};

#define S_TEXT  25
#define S_INT8  20
#define S_BOOL  16
#define S_JSONB 3802
static const Oid s_write_types[15] = {S_TEXT, S_TEXT,  S_TEXT,  S_TEXT,  S_TEXT,
                                      S_INT8, S_INT8,  S_JSONB, S_JSONB, S_JSONB,
                                      S_BOOL, S_JSONB, S_JSONB, S_JSONB, S_TEXT};

/*  Prepares query q on the connection unless it is already. */
static int s_prepare (s_pg_t *self, int q, char *err, size_t err_size)
{
    static const char *const sql[S_Q_COUNT] = {S_LOAD_SQL, s_lock_sql, s_write_sql[S_INSERT],
                                               s_write_sql[S_UPDATE], s_write_sql[S_DELETE]};
    static const int n[S_Q_COUNT] = {3, 2, 15, 15, 15};
    if (self->prepared & (1u << q))
        return LSS_STORE_OK;
    PGresult *res = PQprepare (self->conn, s_q_names[q], sql[q], n[q],
                               q >= S_Q_INSERT ? s_write_types : NULL);
    int rc = LSS_STORE_OK;
    if (!res || PQresultStatus (res) != PGRES_COMMAND_OK)
        rc = s_pg_error (self->conn, res, "prepare", err, err_size);
    else
        self->prepared |= 1u << q;
    PQclear (res);
    return rc;
}

/*  Stands in for the resourceVersion while the object is serialized and measured: as
 *  long as any rv (19 digits), replaced by the real one in SQL. */
#define S_RV_PLACEHOLDER "0000000000000000000"

/*  Compact JSON of an optional member: NULL when absent, "null" kept as such. */
static char *s_dump_member (const json_t *v)
{
    return v ? json_dumps (v, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
}

/*  Writes obj (the object as it is to be stored; its resourceVersion is the stored one
 *  for a replace or remove, which must still match) as one change of the given type:
 *  the row with a new resourceVersion (set into obj), its event, current_rv, the NOTIFY.
 *  own_tx: one flight of BEGIN, the lock, the write and COMMIT (the lock is held for
 *  that flight's server time only); else inside the caller's transaction. *affected is
 *  0 if nothing was written (insert: the name is taken; replace / remove: the object
 *  changed or went away meanwhile). Refuses an object over LSS_STORE_OBJECT_MAX_BYTES. */
static int s_write (s_pg_t *self, json_t *obj, s_write_t mode, const char *type, bool own_tx,
                    int *affected, char *err, size_t err_size)
{
    *affected = 0;
    json_t *meta = json_object_get (obj, "metadata");
    char expect_rv[S_RV_SIZE];
    lss_fmt (expect_rv, sizeof expect_rv, "%s",
             mode == S_INSERT ? "0" : s_meta_str (obj, "resourceVersion"));
    json_object_set_new (meta, "resourceVersion", json_string (S_RV_PLACEHOLDER));
    const char *ns = s_meta_str (obj, "namespace");
    json_t *owners = json_array ();
    size_t i;
    json_t *ref;
    json_array_foreach (json_object_get (meta, "ownerReferences"), i, ref)
        json_array_append (owners, json_object_get (ref, "uid"));
    json_t *empty = json_object ();
    const json_t *labels = json_object_get (meta, "labels");
    const json_t *ann = json_object_get (meta, "annotations");
    char gen[S_RV_SIZE];
    lss_fmt (gen, sizeof gen, "%" JSON_INTEGER_FORMAT,
             json_integer_value (json_object_get (meta, "generation")));
    char *s_labels = json_dumps (labels ? labels : empty, JSON_COMPACT);
    char *s_ann = json_dumps (ann ? ann : empty, JSON_COMPACT);
    char *s_owners = json_dumps (owners, JSON_COMPACT);
    char *s_meta = json_dumps (meta, JSON_COMPACT);
    const json_t *spec = json_object_get (obj, "spec");
    const json_t *status = json_object_get (obj, "status");
    char *s_spec = s_dump_member (spec);
    char *s_status = s_dump_member (status);
    char *s_api = s_dump_member (json_object_get (obj, "apiVersion"));
    char *s_kind = s_dump_member (json_object_get (obj, "kind"));
    int rc = LSS_STORE_UNAVAILABLE;
    PGresult *wres = NULL;
    if (!s_labels || !s_ann || !s_owners || !s_meta || (spec && !s_spec) ||
        (status && !s_status) || !s_api || !s_kind) {
        lss_errf (err, err_size, "store: out of memory");
        goto cleanup;
    }
    /* the object's size as compact JSON, from its parts: {"apiVersion":…,"kind":…,
     * "metadata":…[,"spec":…][,"status":…]} (this backend keeps no other member) */
    size_t size = 1 + 13 + strlen (s_api) + 1 + 7 + strlen (s_kind) + 1 + 11 + strlen (s_meta) +
                  (s_spec ? 1 + 7 + strlen (s_spec) : 0) +
                  (s_status ? 1 + 9 + strlen (s_status) : 0) + 1;
    if (mode != S_DELETE && size > LSS_STORE_OBJECT_MAX_BYTES) {
        lss_errf (err, err_size, "object: larger than %d bytes serialized",
                  LSS_STORE_OBJECT_MAX_BYTES);
        rc = LSS_STORE_INVALID;
        goto cleanup;
    }
    const char *p[] = {json_string_value (json_object_get (obj, "kind")),
                       ns ? ns : "",
                       s_meta_str (obj, "name"),
                       s_meta_str (obj, "uid"),
                       json_string_value (json_object_get (obj, "apiVersion")),
                       expect_rv,
                       gen,
                       s_labels,
                       s_ann,
                       s_owners,
                       s_meta_str (obj, "deletionTimestamp") ? "true" : "false",
                       s_meta,
                       s_spec && strcmp (s_spec, "null") ? s_spec : NULL,
                       s_status && strcmp (s_status, "null") ? s_status : NULL,
                       type};
    char cls[16], id[16];
    s_lock_params (cls, id);
    const char *lock_p[] = {cls, id};
    s_stmt_t st[4] = {{.sql = "BEGIN"},
                      {.q = 1 + S_Q_LOCK, .n = 2, .params = lock_p},
                      {.q = 1 + S_Q_INSERT + (int)mode, .n = 15, .params = p},
                      {.sql = "COMMIT"}};
    s_stmt_t *first = own_tx ? st : st + 2;
    int count = own_tx ? 4 : 1;
    rc = s_flight (self, first, count, err, err_size);
    if (rc == LSS_STORE_OK) {
        wres = st[2].res;
        st[2].res = NULL;
    }
    s_stmts_clear (first, count);
    if (rc == LSS_STORE_OK && PQntuples (wres) == 1) {
        int64_t rv = 0;
        if (s_parse_rv (PQgetvalue (wres, 0, 0), &rv) != 0) {
            lss_errf (err, err_size, "store: bad sequence value");
            rc = LSS_STORE_UNAVAILABLE;
        } else {
            s_set_rv (obj, rv);
            *affected = 1;
        }
    }
cleanup:
    if (!*affected) /* nothing written: obj keeps its resourceVersion */
        json_object_set_new (meta, "resourceVersion", json_string (expect_rv));
    if (rc != LSS_STORE_OK && own_tx && self->conn)
        s_release (self); /* the write failed or was not sent: end the transaction */
    PQclear (wres);
    free (s_labels);
    free (s_ann);
    free (s_owners);
    free (s_meta);
    free (s_spec);
    free (s_status);
    free (s_api);
    free (s_kind);
    json_decref (owners);
    json_decref (empty);
    return rc;
}

static int s_delete_one (s_pg_t *self, json_t *obj, const char *precondition_rv, int depth,
                         char *err, size_t err_size);

/*  Removes obj (the stored object, read under the lock; owned by the caller), emits
 *  DELETED and deletes its dependents. Inside a write transaction. */
static int s_remove (s_pg_t *self, json_t *obj, int depth, char *err, size_t err_size)
{
    int affected = 0;
    int rc = s_write (self, obj, S_DELETE, "DELETED", false, &affected, err, err_size);
    if (rc != LSS_STORE_OK)
        return rc;
    if (depth >= S_CASCADE_DEPTH) {
        lss_log_warn ("store: ownerReference chain too deep, dependents kept", "{s:s}", "uid",
                      s_meta_str (obj, "uid"));
        return LSS_STORE_OK;
    }
    char limit[16];
    lss_fmt (limit, sizeof limit, "%d", S_CASCADE_FANOUT);
    const char *q[] = {s_meta_str (obj, "uid"), limit};
    PGresult *res;
    rc = s_exec (self->conn,
                 "SELECT kind, namespace, name FROM store_objects WHERE owner_uids ? $1"
                 " ORDER BY kind, namespace, name LIMIT $2::bigint",
                 2, q, &res, err, err_size);
    if (rc != LSS_STORE_OK)
        return rc;
    for (int i = 0; i < PQntuples (res) && rc == LSS_STORE_OK; i++) {
        json_t *dep = NULL;
        rc = s_load (self, PQgetvalue (res, i, 0), PQgetvalue (res, i, 1),
                     PQgetvalue (res, i, 2), &dep, err, err_size);
        if (rc == LSS_STORE_NOT_FOUND) { /* removed earlier in this cascade */
            rc = LSS_STORE_OK;
            continue;
        }
        if (rc == LSS_STORE_OK)
            rc = s_delete_one (self, dep, NULL, depth + 1, err, err_size);
        json_decref (dep);
    }
    PQclear (res);
    return rc;
}

/*  Deletes obj (the stored object, read under the lock; not consumed): removes it, or
 *  marks it (deletionTimestamp) when it has finalizers. Inside a write transaction. */
static int s_delete_one (s_pg_t *self, json_t *obj, const char *precondition_rv, int depth,
                         char *err, size_t err_size)
{
    if (precondition_rv && strcmp (precondition_rv, s_meta_str (obj, "resourceVersion"))) {
        lss_errf (err, err_size,
                  "metadata.resourceVersion: precondition %.24s does not match "
                  "%s",
                  precondition_rv, s_meta_str (obj, "resourceVersion"));
        return LSS_STORE_CONFLICT;
    }
    json_t *meta = json_object_get (obj, "metadata");
    if (json_array_size (json_object_get (meta, "finalizers")) == 0)
        return s_remove (self, obj, depth, err, err_size);
    if (json_object_get (meta, "deletionTimestamp"))
        return LSS_STORE_OK; /* already being deleted: nothing changes */
    char now[LSS_TIME_RFC3339_SIZE];
    json_object_set_new (meta, "deletionTimestamp",
                         json_string (lss_time_rfc3339 (lss_time_now_ms (), now)));
    json_object_set_new (
        meta, "generation",
        json_integer (json_integer_value (json_object_get (meta, "generation")) + 1));
    int affected = 0;
    return s_write (self, obj, S_UPDATE, "MODIFIED", false, &affected, err, err_size);
}

static int s_migrate (PGconn *conn, char *err, size_t err_size)
{
    int rc = LSS_STORE_OK;
    for (int v = 1; v <= S_MIGRATIONS && rc == LSS_STORE_OK; v++) {
        char vs[16];
        lss_fmt (vs, sizeof vs, "%d", v);
        const char *p[] = {vs};
        PGresult *res = NULL;
        rc = s_exec (conn, "BEGIN", 0, NULL, NULL, err, err_size);
        if (rc != LSS_STORE_OK)
            break;
        rc = s_lock (conn, S_LOCK_MIGRATE, err, err_size);
        if (rc == LSS_STORE_OK)
            rc = s_exec (conn,
                         "CREATE TABLE IF NOT EXISTS store_schema_migrations ("
                         " version int PRIMARY KEY,"
                         " applied_at timestamptz NOT NULL DEFAULT now())",
                         0, NULL, NULL, err, err_size);
        if (rc == LSS_STORE_OK)
            rc = s_exec (conn, "SELECT 1 FROM store_schema_migrations WHERE version = $1::int",
                         1, p, &res, err, err_size);
        bool applied = rc == LSS_STORE_OK && PQntuples (res) > 0;
        PQclear (res);
        if (rc == LSS_STORE_OK && !applied) {
            PGresult *r = PQexec (conn, s_migrations[v - 1]);
            if (PQresultStatus (r) != PGRES_COMMAND_OK)
                rc = s_pg_error (conn, r, "migration", err, err_size);
            PQclear (r);
            if (rc == LSS_STORE_OK)
                rc = s_exec (conn,
                             "INSERT INTO store_schema_migrations (version) VALUES ($1::int)",
                             1, p, NULL, err, err_size);
            if (rc == LSS_STORE_OK)
                lss_log_info ("store migration applied", "{s:i}", "version", v);
        }
        if (rc == LSS_STORE_OK)
            rc = s_exec (conn, "COMMIT", 0, NULL, NULL, err, err_size);
        else
            PQclear (PQexec (conn, "ROLLBACK"));
    }
    return rc;
}

/* ------------------------------------------------------------------ store */

static int s_check_key (const char *kind, const char *ns, const char *name, char *err,
                        size_t err_size)
{
    int scope = lss_store_kind_scope (kind);
    if (scope < 0) {
        lss_errf (err, err_size, "kind: unknown kind \"%.64s\"", kind ? kind : "");
        return LSS_STORE_INVALID;
    }
    if (!ns || (scope == 1 && ns[0]) || strlen (ns) > LSS_STORE_NAMESPACE_MAX ||
        (scope == 0 && !ns[0])) {
        lss_errf (err, err_size, "metadata.namespace: %s for %s",
                  scope == 1 ? "must be empty" : "required (at most 63 bytes)", kind);
        return LSS_STORE_INVALID;
    }
    if (name && lss_store_check_name ("metadata.name", name, err, err_size) != 0)
        return LSS_STORE_INVALID;
    return LSS_STORE_OK;
}

static int s_pg_get (lss_store_t *store, const char *kind, const char *ns, const char *name,
                     json_t **out, char *err, size_t err_size)
{
    s_pg_t *self = (s_pg_t *)store;
    *out = NULL;
    int rc = s_check_key (kind, ns, name ? name : "", err, err_size);
    if (rc == LSS_STORE_OK)
        rc = s_ensure (self, err, err_size);
    if (rc == LSS_STORE_OK)
        rc = s_load (self, kind, ns, name, out, err, err_size);
    return rc;
}

/* --------------------------------------------------------------- selectors */

/*  Appends one selector term's SQL and parameter; terms are "k=v", "k==v", "k!=v", "k",
 *  "!k". Returns 0 or LSS_STORE_INVALID. */
static int s_selector_term (char *term, char *sql, size_t sql_size, const char **params,
                            char **owned, int *n, char *err, size_t err_size)
{
    bool neg = false, exists = false;
    char *key = term, *value = NULL, *op;
    if ((op = strstr (term, "!="))) {
        *op = '\0';
        value = op + 2;
        neg = true;
    } else if ((op = strstr (term, "=="))) {
        *op = '\0';
        value = op + 2;
    } else if ((op = strchr (term, '='))) {
        *op = '\0';
        value = op + 1;
    } else {
        exists = true;
        if (term[0] == '!') {
            neg = true;
            key = term + 1;
        }
    }
    if (lss_store_check_qualified_name ("labelSelector", key, err, err_size) != 0 ||
        (value && lss_store_check_label_value ("labelSelector", value, err, err_size) != 0))
        return LSS_STORE_INVALID;
    int idx = *n + 1;
    size_t len = strlen (sql);
    if (exists) {
        params[*n] = key;
        lss_fmt (sql + len, sql_size - len, " AND %s(labels ? $%d)", neg ? "NOT " : "", idx);
    } else {
        json_t *j = json_pack ("{s:s}", key, value);
        owned[*n] = j ? json_dumps (j, JSON_COMPACT) : NULL;
        json_decref (j);
        if (!owned[*n]) {
            lss_errf (err, err_size, "store: out of memory");
            return LSS_STORE_UNAVAILABLE;
        }
        params[*n] = owned[*n];
        lss_fmt (sql + len, sql_size - len, " AND %s(labels @> $%d::jsonb)", neg ? "NOT " : "",
                 idx);
    }
    (*n)++;
    return LSS_STORE_OK;
}

/* ------------------------------------------------------------ continue tokens */

static int s_token_encode (int64_t rv, const char *ns, const char *name, char *out, size_t size)
{
    char plain[S_TOKEN_MAX / 2];
    if (lss_fmt (plain, sizeof plain, "%" PRId64 "\n%s\n%s", rv, ns, name) != 0)
        return -1;
    size_t len = strlen (plain);
    if (2 * len + 1 > size)
        return -1;
    for (size_t i = 0; i < len; i++)
        snprintf (out + 2 * i, 3, "%02x", (unsigned char)plain[i]);
    out[2 * len] = '\0';
    return 0;
}

static int s_token_decode (const char *token, int64_t *rv, char *ns, size_t ns_size, char *name,
                           size_t name_size)
{
    size_t len = strnlen (token, S_TOKEN_MAX + 1);
    char plain[S_TOKEN_MAX / 2 + 1];
    if (len == 0 || len > S_TOKEN_MAX || len % 2)
        return -1;
    for (size_t i = 0; i < len / 2; i++) {
        unsigned int c;
        if (sscanf (token + 2 * i, "%2x", &c) != 1 || c == 0)
            return -1;
        plain[i] = (char)c;
    }
    plain[len / 2] = '\0';
    char *a = strchr (plain, '\n');
    char *b = a ? strchr (a + 1, '\n') : NULL;
    if (!a || !b)
        return -1;
    *a = *b = '\0';
    if (s_parse_rv (plain, rv) != 0 || lss_fmt (ns, ns_size, "%s", a + 1) != 0 ||
        lss_fmt (name, name_size, "%s", b + 1) != 0 || !name[0])
        return -1;
    return 0;
}

static int s_pg_list (lss_store_t *store, const char *kind, const char *ns,
                      const char *label_selector, int limit, const char *continue_token,
                      json_t **out, char *err, size_t err_size)
{
    s_pg_t *self = (s_pg_t *)store;
    *out = NULL;
    const char *params[LSS_STORE_SELECTOR_MAX_TERMS + 8] = {0};
    char *owned[LSS_STORE_SELECTOR_MAX_TERMS + 8] = {0};
    char sql[S_SQL_MAX];
    char *sel = NULL;
    PGresult *res = NULL;
    json_t *list = NULL;
    int n = 0, rc;
    char cont_ns[LSS_STORE_NAMESPACE_MAX + 1], cont_name[LSS_STORE_NAME_MAX + 1];
    char limit_text[16];
    int64_t token_rv = -1;

    if (ns && ns[0] == '\0' && lss_store_kind_scope (kind) == 0)
        ns = NULL; /* "" on a namespaced kind: all namespaces */
    rc = s_check_key (kind, ns ? ns : (lss_store_kind_scope (kind) == 1 ? "" : "x"), NULL, err,
                      err_size);
    if (rc != LSS_STORE_OK)
        goto cleanup;
    if (limit < 0 || limit > LSS_STORE_LIST_MAX_LIMIT) {
        lss_errf (err, err_size, "limit: must be 0..%d", LSS_STORE_LIST_MAX_LIMIT);
        rc = LSS_STORE_INVALID;
        goto cleanup;
    }
    if (limit == 0)
        limit = LSS_STORE_LIST_DEFAULT_LIMIT;
    lss_fmt (sql, sizeof sql,
             "SELECT s.current_rv, s.compacted_rv, o.namespace, o.name, o.api_version,"
             " o.kind, o.metadata::text, o.spec::text, o.status::text FROM store_state s"
             " LEFT JOIN LATERAL (SELECT * FROM store_objects WHERE kind = $1");
    params[n++] = kind;
    if (ns) {
        params[n++] = ns;
        lss_fmt (sql + strlen (sql), sizeof sql - strlen (sql), " AND namespace = $%d", n);
    }
    if (continue_token && continue_token[0]) {
        if (s_token_decode (continue_token, &token_rv, cont_ns, sizeof cont_ns, cont_name,
                            sizeof cont_name) != 0) {
            lss_errf (err, err_size, "continue: malformed token");
            rc = LSS_STORE_INVALID;
            goto cleanup;
        }
        params[n++] = cont_ns;
        params[n++] = cont_name;
        lss_fmt (sql + strlen (sql), sizeof sql - strlen (sql),
                 " AND (namespace, name) > ($%d, $%d)", n - 1, n);
    }
    if (label_selector && label_selector[0]) {
        if (strlen (label_selector) > 4096 || !(sel = strdup (label_selector))) {
            lss_errf (err, err_size, "labelSelector: too long");
            rc = LSS_STORE_INVALID;
            goto cleanup;
        }
        int terms = 0;
        char *save = NULL;
        for (char *t = strtok_r (sel, ",", &save); t; t = strtok_r (NULL, ",", &save)) {
            if (++terms > LSS_STORE_SELECTOR_MAX_TERMS) {
                lss_errf (err, err_size, "labelSelector: more than %d terms",
                          LSS_STORE_SELECTOR_MAX_TERMS);
                rc = LSS_STORE_INVALID;
                goto cleanup;
            }
            rc = s_selector_term (t, sql, sizeof sql, params, owned, &n, err, err_size);
            if (rc != LSS_STORE_OK)
                goto cleanup;
        }
    }
    lss_fmt (limit_text, sizeof limit_text, "%d", limit + 1);
    params[n++] = limit_text;
    lss_fmt (sql + strlen (sql), sizeof sql - strlen (sql),
             " ORDER BY namespace, name LIMIT $%d::bigint) o ON true"
             " ORDER BY o.namespace, o.name",
             n);
    rc = s_ensure (self, err, err_size);
    if (rc == LSS_STORE_OK)
        rc = s_list_exec (self, sql, n, params, &res, err, err_size);
    if (rc != LSS_STORE_OK)
        goto cleanup;
    int64_t current_rv = 0, compacted_rv = 0;
    s_parse_rv (PQgetvalue (res, 0, 0), &current_rv);
    s_parse_rv (PQgetvalue (res, 0, 1), &compacted_rv);
    if (token_rv >= 0 && token_rv < compacted_rv) {
        lss_errf (err, err_size,
                  "continue: resourceVersion %" PRId64 " is too old (compacted "
                  "at %" PRId64 "): list again",
                  token_rv, compacted_rv);
        rc = LSS_STORE_GONE;
        goto cleanup;
    }
    int64_t page_rv = token_rv >= 0 ? token_rv : current_rv;
    list = json_pack ("{s:[], s:{}}", "items", "metadata");
    json_t *items = json_object_get (list, "items");
    int rows = PQgetisnull (res, 0, 2) ? 0 : PQntuples (res);
    for (int i = 0; i < rows && i < limit; i++) {
        json_t *o = s_row_object (res, i, 4);
        if (!o) {
            lss_errf (err, err_size, "store: stored object does not parse");
            rc = LSS_STORE_UNAVAILABLE;
            goto cleanup;
        }
        json_array_append_new (items, o);
    }
    char rvs[S_RV_SIZE];
    lss_fmt (rvs, sizeof rvs, "%" PRId64, page_rv);
    json_t *lmeta = json_object_get (list, "metadata");
    json_object_set_new (lmeta, "resourceVersion", json_string (rvs));
    if (rows > limit) {
        char token[S_TOKEN_MAX + 1];
        if (s_token_encode (page_rv, PQgetvalue (res, limit - 1, 2),
                            PQgetvalue (res, limit - 1, 3), token, sizeof token) != 0) {
            lss_errf (err, err_size, "store: continue token too long");
            rc = LSS_STORE_UNAVAILABLE;
            goto cleanup;
        }
        json_object_set_new (lmeta, "continue", json_string (token));
    }
    *out = list;
    list = NULL;
cleanup:
    for (int i = 0; i < (int)(sizeof owned / sizeof owned[0]); i++)
        free (owned[i]);
    free (sel);
    PQclear (res);
    json_decref (list);
    return rc;
}

/* ------------------------------------------------------------------ writes */

static int s_pg_create (lss_store_t *store, const json_t *obj, json_t **out, char *err,
                        size_t err_size)
{
    s_pg_t *self = (s_pg_t *)store;
    if (out)
        *out = NULL;
    int rc = lss_store_validate (obj, 0, err, err_size);
    if (rc == LSS_STORE_OK)
        rc = s_check_fields (obj, err, err_size);
    if (rc != LSS_STORE_OK)
        return rc;
    json_t *o = json_deep_copy (obj);
    json_t *meta = json_object_get (o, "metadata");
    const char *kind = json_string_value (json_object_get (o, "kind"));
    static const char *drop[] = {"uid",
                                 "resourceVersion",
                                 "generation",
                                 "creationTimestamp",
                                 "deletionTimestamp",
                                 "deletionGracePeriodSeconds"};
    for (size_t i = 0; i < sizeof drop / sizeof drop[0]; i++)
        json_object_del (meta, drop[i]);
    json_object_del (o, "status");
    if (lss_store_kind_scope (kind) == 1)
        json_object_del (meta, "namespace");
    char now[LSS_TIME_RFC3339_SIZE], uid[40];
    json_object_set_new (meta, "creationTimestamp",
                         json_string (lss_time_rfc3339 (lss_time_now_ms (), now)));
    json_object_set_new (meta, "generation", json_integer (1));
    bool generated = json_object_get (meta, "name") == NULL;
    /* each attempt is one transaction in one flight; a generated name that is taken
     * (nothing written, the empty transaction committed) is tried again */
    for (int attempt = 0;; attempt++) {
        if (generated) {
            char name[LSS_STORE_NAME_MAX + 1];
            if (lss_id_new (json_string_value (json_object_get (meta, "generateName")), 5, name,
                            sizeof name) != 0) {
                lss_errf (err, err_size, "metadata.generateName: cannot generate a name");
                rc = LSS_STORE_INVALID;
                break;
            }
            json_object_set_new (meta, "name", json_string (name));
        }
        s_uuid (uid, sizeof uid);
        json_object_set_new (meta, "uid", json_string (uid));
        int affected = 0;
        rc = s_ensure (self, err, err_size);
        if (rc == LSS_STORE_OK)
            rc = s_write (self, o, S_INSERT, "ADDED", true, &affected, err, err_size);
        if (rc != LSS_STORE_OK || affected == 1)
            break;
        if (!generated || attempt + 1 >= S_GENERATE_TRIES) {
            lss_errf (err, err_size, "%s %s already exists", kind, s_meta_str (o, "name"));
            rc = LSS_STORE_CONFLICT;
            break;
        }
    }
    if (rc == LSS_STORE_OK && out) {
        *out = o;
        o = NULL;
    }
    json_decref (o);
    return rc;
}

typedef enum { S_UPDATE_SPEC, S_UPDATE_STATUS } s_update_mode_t;

/*  Every finalizer of now was in before (no new finalizer during deletion). */
static bool s_finalizers_subset (const json_t *now, const json_t *before)
{
    size_t i, j;
    json_t *a, *b;
    json_array_foreach (now, i, a)
    {
        bool found = false;
        json_array_foreach (before, j, b) found = found || json_equal (a, b);
        if (!found)
            return false;
    }
    return true;
}

static int s_update (s_pg_t *self, const json_t *obj, s_update_mode_t mode, json_t **out,
                     char *err, size_t err_size)
{
    if (out)
        *out = NULL;
    int rc = lss_store_validate (obj, 1, err, err_size);
    if (rc != LSS_STORE_OK)
        return rc;
    const char *kind = json_string_value (json_object_get (obj, "kind"));
    const char *ns = s_meta_str (obj, "namespace");
    const char *name = s_meta_str (obj, "name");
    const char *rv_in = s_meta_str (obj, "resourceVersion");
    const char *uid_in = s_meta_str (obj, "uid");
    if (!ns || lss_store_kind_scope (kind) == 1)
        ns = "";
    if (!rv_in || !rv_in[0]) {
        lss_errf (err, err_size, "metadata.resourceVersion: must be specified for an update");
        return LSS_STORE_INVALID;
    }
    json_t *stored = NULL, *o = NULL;
    /* read without the lock; the write below happens only if the row still has the
     * resourceVersion read here (else someone wrote meanwhile: the caller's is stale) */
    rc = s_ensure (self, err, err_size);
    if (rc == LSS_STORE_OK)
        rc = s_load (self, kind, ns, name, &stored, err, err_size);
    if (rc != LSS_STORE_OK)
        return rc;
    if (strcmp (rv_in, s_meta_str (stored, "resourceVersion")) != 0) {
        lss_errf (err, err_size,
                  "%s %s: the object has been modified (resourceVersion %.24s, stored %s); "
                  "read it again and retry",
                  kind, name, rv_in, s_meta_str (stored, "resourceVersion"));
        rc = LSS_STORE_CONFLICT;
        goto done;
    }
    if (uid_in && strcmp (uid_in, s_meta_str (stored, "uid")) != 0) {
        lss_errf (err, err_size, "metadata.uid: precondition %.40s does not match %s", uid_in,
                  s_meta_str (stored, "uid"));
        rc = LSS_STORE_CONFLICT;
        goto done;
    }
    o = json_deep_copy (stored);
    json_t *meta = json_object_get (o, "metadata");
    const json_t *meta_in = json_object_get (obj, "metadata");
    if (mode == S_UPDATE_STATUS) {
        const json_t *st = json_object_get (obj, "status");
        if (st && !json_is_null (st))
            json_object_set (o, "status", (json_t *)st);
        else
            json_object_del (o, "status");
    } else {
        static const char *keys[] = {"labels", "annotations", "finalizers", "ownerReferences"};
        for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
            json_t *v = json_object_get (meta_in, keys[i]);
            if (v)
                json_object_set (meta, keys[i], v);
            else
                json_object_del (meta, keys[i]);
        }
        json_object_set (o, "apiVersion", json_object_get (obj, "apiVersion"));
        const json_t *spec = json_object_get (obj, "spec");
        if (spec && !json_is_null (spec))
            json_object_set (o, "spec", (json_t *)spec);
        else
            json_object_del (o, "spec");
        if (!json_equal (json_object_get (o, "spec") ? json_object_get (o, "spec")
                                                     : json_null (),
                         json_object_get (stored, "spec") ? json_object_get (stored, "spec")
                                                          : json_null ()))
            json_object_set_new (
                meta, "generation",
                json_integer (json_integer_value (json_object_get (meta, "generation")) + 1));
        if (json_object_get (meta, "deletionTimestamp") &&
            !s_finalizers_subset (
                json_object_get (meta, "finalizers"),
                json_object_get (json_object_get (stored, "metadata"), "finalizers"))) {
            lss_errf (err, err_size,
                      "metadata.finalizers: no new finalizers can be added if "
                      "the object is being deleted");
            rc = LSS_STORE_INVALID;
            goto done;
        }
    }
    if (json_equal (o, stored)) { /* no-op write: no new resourceVersion, no event */
        if (out) {
            *out = o;
            o = NULL;
        }
        goto done;
    }
    if (json_object_get (meta, "deletionTimestamp") &&
        json_array_size (json_object_get (meta, "finalizers")) == 0) {
        /* the last finalizer went: remove it and its dependents, under the lock */
        const char *key[] = {kind, ns, name};
        json_t *locked = NULL;
        rc = s_begin_write (self, key, &locked, err, err_size);
        if (rc != LSS_STORE_OK)
            goto done;
        if (strcmp (s_meta_str (locked, "resourceVersion"),
                    s_meta_str (stored, "resourceVersion"))) {
            lss_errf (err, err_size,
                      "%s %s: the object has been modified; read it again and "
                      "retry",
                      kind, name);
            rc = LSS_STORE_CONFLICT;
        } else
            rc = s_remove (self, o, 0, err, err_size);
        json_decref (locked);
        rc = s_finish (self, rc, err, err_size);
        goto done;
    }
    int affected = 0;
    rc = s_write (self, o, S_UPDATE, "MODIFIED", true, &affected, err, err_size);
    if (rc == LSS_STORE_OK && !affected) { /* written or removed since it was read */
        json_t *now = NULL;
        rc = s_load (self, kind, ns, name, &now, err, err_size);
        if (rc == LSS_STORE_OK) {
            lss_errf (err, err_size,
                      "%s %s: the object has been modified (resourceVersion %.24s, stored "
                      "%s); read it again and retry",
                      kind, name, rv_in, s_meta_str (now, "resourceVersion"));
            rc = LSS_STORE_CONFLICT;
        }
        json_decref (now);
    }
    if (rc == LSS_STORE_OK && out) {
        *out = o;
        o = NULL;
    }
done:
    if (rc != LSS_STORE_OK && out && *out) {
        json_decref (*out);
        *out = NULL;
    }
    json_decref (stored);
    json_decref (o);
    return rc;
}

static int s_pg_update (lss_store_t *store, const json_t *obj, json_t **out, char *err,
                        size_t err_size)
{
    s_pg_t *self = (s_pg_t *)store;
    int rc = s_check_fields (obj, err, err_size);
    return rc ? rc : s_update (self, obj, S_UPDATE_SPEC, out, err, err_size);
}

static int s_pg_update_status (lss_store_t *store, const json_t *obj, json_t **out, char *err,
                               size_t err_size)
{
    s_pg_t *self = (s_pg_t *)store;
    return s_update (self, obj, S_UPDATE_STATUS, out, err, err_size);
}

static int s_pg_delete (lss_store_t *store, const char *kind, const char *ns, const char *name,
                        const char *precondition_rv, char *err, size_t err_size)
{
    s_pg_t *self = (s_pg_t *)store;
    int rc = s_check_key (kind, ns, name ? name : "", err, err_size);
    if (rc != LSS_STORE_OK)
        return rc;
    const char *key[] = {kind, ns, name};
    json_t *obj = NULL;
    rc = s_begin_write (self, key, &obj, err, err_size);
    if (rc != LSS_STORE_OK)
        return rc;
    rc = s_delete_one (self, obj, precondition_rv, 0, err, err_size);
    json_decref (obj);
    return s_finish (self, rc, err, err_size);
}

static int s_state (PGconn *conn, int64_t *current, int64_t *compacted, char *err,
                    size_t err_size)
{
    PGresult *res;
    int rc = s_exec (conn, "SELECT current_rv, compacted_rv FROM store_state WHERE id = 1", 0,
                     NULL, &res, err, err_size);
    if (rc != LSS_STORE_OK)
        return rc;
    if (PQntuples (res) != 1 || s_parse_rv (PQgetvalue (res, 0, 0), current) != 0 ||
        s_parse_rv (PQgetvalue (res, 0, 1), compacted) != 0) {
        lss_errf (err, err_size, "store: store_state is damaged");
        rc = LSS_STORE_UNAVAILABLE;
    }
    PQclear (res);
    return rc;
}

static int s_pg_compact (lss_store_t *store, const char *keep_after_rv, char *err,
                         size_t err_size)
{
    s_pg_t *self = (s_pg_t *)store;
    int64_t keep, current, compacted;
    if (!keep_after_rv || s_parse_rv (keep_after_rv, &keep) != 0) {
        lss_errf (err, err_size, "resourceVersion: must be a decimal resourceVersion");
        return LSS_STORE_INVALID;
    }
    int rc = s_begin_write (self, NULL, NULL, err, err_size);
    if (rc != LSS_STORE_OK)
        return rc;
    rc = s_state (self->conn, &current, &compacted, err, err_size);
    if (rc == LSS_STORE_OK && keep > current) {
        lss_errf (err, err_size, "resourceVersion: %" PRId64 " is beyond the current %" PRId64,
                  keep, current);
        rc = LSS_STORE_INVALID;
    }
    const char *p[] = {keep_after_rv};
    if (rc == LSS_STORE_OK)
        rc = s_exec (self->conn, "DELETE FROM store_events WHERE rv <= $1::bigint", 1, p, NULL,
                     err, err_size);
    if (rc == LSS_STORE_OK)
        rc = s_exec (self->conn,
                     "UPDATE store_state SET compacted_rv = GREATEST(compacted_rv, $1::bigint)"
                     " WHERE id = 1",
                     1, p, NULL, err, err_size);
    rc = s_finish (self, rc, err, err_size);
    if (rc == LSS_STORE_OK)
        lss_log_info ("store compacted", "{s:s}", "rv", keep_after_rv);
    return rc;
}

static int s_pg_current_rv (lss_store_t *store, char *out, size_t out_size, char *err,
                            size_t err_size)
{
    s_pg_t *self = (s_pg_t *)store;
    int64_t current, compacted;
    int rc = s_ensure (self, err, err_size);
    if (rc == LSS_STORE_OK)
        rc = s_state (self->conn, &current, &compacted, err, err_size);
    if (rc == LSS_STORE_OK && lss_fmt (out, out_size, "%" PRId64, current) != 0) {
        lss_errf (err, err_size, "store: output buffer too small");
        rc = LSS_STORE_INVALID;
    }
    return rc;
}

/* ------------------------------------------------------------------ watch */

static void s_pg_watch_destroy (lss_store_watch_t *watch);
static int s_pg_watch_fd (lss_store_watch_t *watch);
static int s_pg_watch_next (lss_store_watch_t *watch, lss_store_event_t *ev);
static const char *s_pg_watch_rv (lss_store_watch_t *watch);

static const lss_store_watch_ops_t s_pg_watch_ops = {
    .destroy = s_pg_watch_destroy,
    .fd = s_pg_watch_fd,
    .next = s_pg_watch_next,
    .rv = s_pg_watch_rv,
};

static lss_store_watch_t *s_pg_watch_new (lss_store_t *base, const char *kind, const char *ns,
                                          const char *from_rv, int *code, char *err,
                                          size_t err_size)
{
    s_pg_t *store = (s_pg_t *)base;
    int rc = LSS_STORE_OK;
    s_pg_watch_t *self = NULL;
    int64_t from = 0, current = 0, compacted = 0;
    int scope = lss_store_kind_scope (kind);
    if (ns && ns[0] == '\0' && scope == 0)
        ns = NULL;
    rc = s_check_key (kind, ns ? ns : (scope == 1 ? "" : "x"), NULL, err, err_size);
    if (rc != LSS_STORE_OK)
        goto fail;
    bool from_now = !from_rv || !from_rv[0] || strcmp (from_rv, "0") == 0;
    if (!from_now && s_parse_rv (from_rv, &from) != 0) {
        lss_errf (err, err_size, "resourceVersion: must be a decimal resourceVersion");
        rc = LSS_STORE_INVALID;
        goto fail;
    }
    self = calloc (1, sizeof *self);
    if (self)
        self->base.ops = &s_pg_watch_ops;
    if (!self || !(self->queue = json_array ())) {
        lss_errf (err, err_size, "store: out of memory");
        rc = LSS_STORE_UNAVAILABLE;
        goto fail;
    }
    lss_fmt (self->kind, sizeof self->kind, "%s", kind);
    self->all_ns = ns == NULL;
    lss_fmt (self->ns, sizeof self->ns, "%s", ns ? ns : "");
    self->conn = s_connect (store->dsn, err, err_size);
    if (!self->conn) {
        rc = LSS_STORE_UNAVAILABLE;
        goto fail;
    }
    /* LISTEN first, then read the state: nothing committed after this point is missed */
    /* the kind is a known one (checked above): letters only, safe as an identifier */
    char listen[128];
    lss_fmt (listen, sizeof listen, "LISTEN \"" S_NOTIFY_CHANNEL "%s\"", self->kind);
    rc = s_exec (self->conn, listen, 0, NULL, NULL, err, err_size);
    if (rc == LSS_STORE_OK)
        rc = s_state (self->conn, &current, &compacted, err, err_size);
    if (rc != LSS_STORE_OK)
        goto fail;
    if (!from_now && from < compacted) {
        lss_errf (err, err_size,
                  "resourceVersion %" PRId64 " is too old (compacted at %" PRId64
                  "): list again",
                  from, compacted);
        rc = LSS_STORE_GONE;
        goto fail;
    }
    self->fetched_rv = self->delivered_rv = from_now ? current : from;
    self->need_fetch = true;
    if (code)
        *code = LSS_STORE_OK;
    return &self->base;
fail:
    if (self)
        s_pg_watch_destroy (&self->base);
    if (code)
        *code = rc;
    return NULL;
}

static void s_pg_watch_destroy (lss_store_watch_t *watch)
{
    s_pg_watch_t *self = (s_pg_watch_t *)watch;
    PQfinish (self->conn);
    json_decref (self->queue);
    free (self);
}

static int s_pg_watch_fd (lss_store_watch_t *watch)
{
    s_pg_watch_t *self = (s_pg_watch_t *)watch;
    return self && self->conn ? PQsocket (self->conn) : -1;
}

/*  Reads the next batch of events after fetched_rv into the queue. */
static int s_watch_fetch (s_pg_watch_t *self)
{
    char from[S_RV_SIZE], limit[16];
    lss_fmt (from, sizeof from, "%" PRId64, self->fetched_rv);
    lss_fmt (limit, sizeof limit, "%d", S_WATCH_BATCH);
    const char *p[] = {from, self->kind, self->all_ns ? NULL : self->ns, limit};
    PGresult *res;
    char err[LSS_STORE_ERR_SIZE];
    int rc = LSS_STORE_OK;
    if (!self->prepared) { /* prepared once: planning costs more than running it */
        res = PQprepare (self->conn, "lss_watch",
                         "SELECT s.current_rv, s.compacted_rv, e.rv, e.type, e.object::text"
                         " FROM store_state s LEFT JOIN LATERAL (SELECT rv, type, object"
                         " FROM store_events WHERE rv > $1::bigint AND rv <= s.current_rv"
                         " AND kind = $2 AND ($3::text IS NULL OR namespace = $3::text)"
                         " ORDER BY rv LIMIT $4::bigint) e ON true ORDER BY e.rv",
                         4, NULL);
        if (!res || PQresultStatus (res) != PGRES_COMMAND_OK)
            rc = s_pg_error (self->conn, res, "prepare", err, sizeof err);
        self->prepared = rc == LSS_STORE_OK;
        PQclear (res);
    }
    if (rc == LSS_STORE_OK) {
        res = PQexecPrepared (self->conn, "lss_watch", 4, p, NULL, NULL, 0);
        if (!res || PQresultStatus (res) != PGRES_TUPLES_OK) {
            rc = s_pg_error (self->conn, res, "query", err, sizeof err);
            PQclear (res);
        }
    }
    if (rc != LSS_STORE_OK) {
        lss_log_warn ("store watch query failed", "{s:s, s:s}", "kind", self->kind, "error",
                      err);
        return LSS_STORE_UNAVAILABLE;
    }
    int64_t current = 0, compacted = 0;
    s_parse_rv (PQgetvalue (res, 0, 0), &current);
    s_parse_rv (PQgetvalue (res, 0, 1), &compacted);
    if (self->fetched_rv < compacted) {
        PQclear (res);
        lss_log_info ("store watch fell behind compaction", "{s:s}", "kind", self->kind);
        return LSS_STORE_GONE;
    }
    int rows = PQgetisnull (res, 0, 2) ? 0 : PQntuples (res);
    int64_t last = self->fetched_rv;
    for (int i = 0; i < rows; i++) {
        int64_t rv = 0;
        s_parse_rv (PQgetvalue (res, i, 2), &rv);
        const char *t = PQgetvalue (res, i, 3);
        int type = strcmp (t, "ADDED") == 0      ? LSS_STORE_ADDED
                   : strcmp (t, "MODIFIED") == 0 ? LSS_STORE_MODIFIED
                                                 : LSS_STORE_DELETED;
        json_t *o = json_loads (PQgetvalue (res, i, 4), 0, NULL);
        if (!o) {
            PQclear (res);
            return LSS_STORE_UNAVAILABLE;
        }
        json_array_append_new (self->queue, json_pack ("{s:i, s:I, s:o}", "type", type, "rv",
                                                       (json_int_t)rv, "object", o));
        last = rv;
    }
    /* a short batch saw everything up to current_rv in the same snapshot */
    self->fetched_rv = rows < S_WATCH_BATCH ? current : last;
    self->need_fetch = rows >= S_WATCH_BATCH;
    PQclear (res);
    return LSS_STORE_OK;
}

/*  Takes the pending NOTIFYs: true if one names this watch's kind (or no kind at all);
 *  the others only set other_kinds. */
static bool s_watch_drain_notifies (s_pg_watch_t *self)
{
    bool ours = false;
    PGnotify *nt;
    while ((nt = PQnotifies (self->conn))) {
        const char *kind = nt->extra ? strchr (nt->extra, ' ') : NULL;
        if (!kind || strcmp (kind + 1, self->kind) == 0)
            ours = true;
        else
            self->other_kinds = true;
        PQfreemem (nt);
    }
    return ours;
}

static int s_pg_watch_next (lss_store_watch_t *watch, lss_store_event_t *ev)
{
    s_pg_watch_t *self = (s_pg_watch_t *)watch;
    ev->object = NULL;
    if (self->failed)
        return self->failed;
    for (int round = 0; round <= S_WATCH_REFETCH; round++) {
        if (self->queue_pos < json_array_size (self->queue)) {
            json_t *e = json_array_get (self->queue, self->queue_pos++);
            ev->type = (lss_store_event_type_t)json_integer_value (json_object_get (e, "type"));
            ev->object = json_incref (json_object_get (e, "object"));
            self->delivered_rv = json_integer_value (json_object_get (e, "rv"));
            if (self->queue_pos == json_array_size (self->queue)) {
                json_array_clear (self->queue);
                self->queue_pos = 0;
            }
            return 1;
        }
        if (PQconsumeInput (self->conn) == 0 || PQstatus (self->conn) != CONNECTION_OK) {
            lss_log_warn ("store watch connection lost", "{s:s}", "kind", self->kind);
            self->failed = LSS_STORE_UNAVAILABLE;
            return self->failed;
        }
        if (s_watch_drain_notifies (self))
            self->need_fetch = true;
        /* changes of other kinds only move lss_store_watch_rv on: now and then is enough */
        int64_t now = lss_time_mono_ms ();
        if (!self->need_fetch && self->other_kinds && now - self->fetched_ms >= S_WATCH_IDLE_MS)
            self->need_fetch = true;
        if (!self->need_fetch)
            return 0;
        self->need_fetch = false;
        self->other_kinds = false;
        self->fetched_ms = now;
        int rc = s_watch_fetch (self);
        if (rc != LSS_STORE_OK) {
            self->failed = rc;
            return rc;
        }
        /* notifications that arrived during the query are picked up next round */
    }
    self->need_fetch = true;
    return 0;
}

static const char *s_pg_watch_rv (lss_store_watch_t *watch)
{
    s_pg_watch_t *self = (s_pg_watch_t *)watch;
    int64_t rv =
        self->queue_pos < json_array_size (self->queue) ? self->delivered_rv : self->fetched_rv;
    if (self->queue_pos >= json_array_size (self->queue) && rv < self->delivered_rv)
        rv = self->delivered_rv;
    lss_fmt (self->rv_text, sizeof self->rv_text, "%" PRId64, rv);
    return self->rv_text;
}

/* ------------------------------------------------------------------ the backend */

static void s_pg_destroy (lss_store_t *base)
{
    s_pg_t *self = (s_pg_t *)base;
    PQfinish (self->conn);
    s_list_forget (self);
    free (self->dsn);
    free (self);
}

static const lss_store_ops_t s_pg_ops = {
    .name = "postgres",
    .destroy = s_pg_destroy,
    .get = s_pg_get,
    .list = s_pg_list,
    .create = s_pg_create,
    .update = s_pg_update,
    .update_status = s_pg_update_status,
    .patch = NULL, /* lss_store.c: read, merge, update */
    .remove = s_pg_delete,
    .compact = s_pg_compact,
    .current_rv = s_pg_current_rv,
    .watch_new = s_pg_watch_new,
};

lss_store_t *lss_store_pg_new (const char *dsn, char *err, size_t err_size)
{
    if (!dsn) {
        lss_errf (err, err_size, "store: no DSN");
        return NULL;
    }
    s_pg_t *self = calloc (1, sizeof *self);
    if (!self || !(self->dsn = strdup (dsn))) {
        lss_errf (err, err_size, "store: out of memory");
        free (self);
        return NULL;
    }
    self->base.ops = &s_pg_ops;
    self->conn = s_connect (dsn, err, err_size);
    if (!self->conn || s_migrate (self->conn, err, err_size) != LSS_STORE_OK) {
        s_pg_destroy (&self->base);
        return NULL;
    }
    return &self->base;
}
