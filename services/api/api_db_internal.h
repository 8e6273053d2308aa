/*  api_db_internal — what the api_db*.c files share: the handle, the one query
 *  function, argument validators and defensive row readers. Not for other callers.
 */
#ifndef API_DB_INTERNAL_H
#define API_DB_INTERNAL_H

#include "api_db.h"

#include <czmq.h>
#include <libpq-fe.h>

#define API_DBI_CONSTRAINT_SIZE 64
#define API_DBI_I64_SIZE        24
#define API_DBI_OFFSET_MAX      1000000 /* deeper pages are refused (API_DB_INVALID) */
#define API_DBI_SUMMARY_MAX     1024    /* bytes of an execution summary kept */
#define API_DBI_PREPARED_MAX    256 /* statements prepared per connection; more run unnamed */

typedef struct {
    const char *sql; /* NULL: nothing pending */
    int n;
    const char *const *params; /* the caller's, alive until collected */
    const char *prepared;      /* the statement's name, NULL if it ran unnamed */
} api_dbi_pending_t;

struct _api_db_t {
    PGconn *conn;
    char *dsn;
    char constraint[API_DBI_CONSTRAINT_SIZE]; /* of the last failed statement, or "" */
    zhashx_t *prepared;        /* SQL text → its statement name on this connection */
    unsigned next_stmt;        /* for the next statement name */
    api_dbi_pending_t pending; /* api_dbi_send'd, not yet collected */
};

extern const char *const api_dbi_migrations[];
extern const int api_dbi_migrations_count;

/*  Runs one parameterized statement (params[i] NULL = SQL NULL), re-establishing a lost
 *  connection first (one attempt). The statement is prepared on the connection the first
 *  time its text is seen (the server then parses and plans it once, not per call); a
 *  prepared statement the server no longer knows is prepared again. On API_DB_OK hands the
 * result to *res if res is not NULL (caller PQclears), else clears it. Errors map SQLSTATEs:
 * unique violation → API_DB_CONFLICT, foreign key violation → API_DB_NOT_FOUND, check /
 * not-null / data exceptions → API_DB_INVALID, anything else (connection, timeout, server) →
 *  API_DB_UNAVAILABLE; the violated constraint's name is left in self->constraint. */
int api_dbi_query (api_db_t *self, const char *sql, int n, const char *const *params,
                   PGresult **res, char *err, size_t err_size);

/*  api_dbi_query in two halves, so the caller can do something else (another
 *  connection's round trip) while the server works: send, then collect exactly once
 *  before anything else runs on this handle. params (and what they point to) must stay
 *  alive until collected. send's errors are api_dbi_query's; after a failed send there
 *  is nothing to collect. */
int api_dbi_send (api_db_t *self, const char *sql, int n, const char *const *params, char *err,
                  size_t err_size);
int api_dbi_collect (api_db_t *self, PGresult **res, char *err, size_t err_size);

/*  Rows a statement changed (PQcmdTuples), 0 if none or unreadable. */
int64_t api_dbi_affected (PGresult *res);

/*  1..max_bytes bytes of valid UTF-8 without control characters (C0, DEL, C1). */
bool api_dbi_text_ok (const char *s, size_t max_bytes);
/*  1..size-1 bytes of printable ASCII without spaces (ids, hashes, names). */
bool api_dbi_id_ok (const char *s, size_t size);
/*  A Kubernetes name: 1..max bytes of [a-z0-9.-], starting and ending alphanumeric. */
bool api_dbi_k8s_name_ok (const char *s, size_t max);
/*  s is one of the NULL-terminated set. */
bool api_dbi_one_of (const char *s, const char *const *set);
/*  limit in 1..API_DB_LIST_MAX, offset in 0..API_DBI_OFFSET_MAX. */
bool api_dbi_page_ok (int limit, int offset);

/*  Copies src into dst (room for max + 1 bytes): valid UTF-8 is kept, every byte of an
 *  invalid sequence and every control character other than \n and \t becomes '?', and
 *  the copy stops before a character that would pass max bytes. Returns dst. */
char *api_dbi_utf8_clip (const char *src, size_t max, char *dst);

/*  Row readers that never trust the server: copy truncates (and NUL-ends) into size
 *  bytes; i64 reads 0 for NULL or junk; boolean is true only for "t". */
void api_dbi_copy (char *dst, size_t size, const PGresult *res, int row, int col);
int64_t api_dbi_i64 (const PGresult *res, int row, int col);
bool api_dbi_bool (const PGresult *res, int row, int col);
/*  Decimal text of v into buf (API_DBI_I64_SIZE). Returns buf. */
char *api_dbi_fmt_i64 (char *buf, int64_t v);

#endif
