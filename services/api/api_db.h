/*  api_db — the api's own PostgreSQL data: users, API keys, sandbox ownership and
 *  lifecycle, execution audit, warm-pool ownership, permissions, revoked JWT ids.
 *
 *  One handle per thread (libpq, synchronous, every statement bounded by a server-side
 *  statement_timeout of API_DB_STATEMENT_TIMEOUT_MS; connect bounded by
 *  API_DB_CONNECT_TIMEOUT_S). A lost connection is re-established on the next call (one
 *  attempt per call). Parameters are always passed as query parameters, never pasted
 *  into SQL. Schema migrations are versioned (table api_schema_migrations), each applied
 *  in its own transaction, serialized between concurrent starters by an advisory lock;
 *  api_db_migrate is idempotent.
 *
 *  Every function returns API_DB_OK or a negative API_DB_* code and, where it has an err
 *  parameter, a message for logs (never for clients: it may quote the server).
 *  Times are epoch milliseconds; 0 means "not set" (NULL in the database).
 */
#ifndef API_DB_H
#define API_DB_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define API_DB_OK          0
#define API_DB_NOT_FOUND   (-404)
#define API_DB_CONFLICT    (-409) /* unique violation (username, key hash, id) */
#define API_DB_INVALID     (-422) /* argument refused before reaching the server */
#define API_DB_UNAVAILABLE (-503) /* connection lost, timeout, server error */
#define API_DB_QUOTA       (-403) /* the row would pass the user's quota */

#define API_DB_STATEMENT_TIMEOUT_MS 5000
#define API_DB_CONNECT_TIMEOUT_S    5
#define API_DB_LIST_MAX             100 /* rows per list call */

#define API_ID_SIZE       40  /* "usr-…", "key-…", "exe-…" */
#define API_SB_ID_SIZE    64  /* "sb-…" */
#define API_USERNAME_SIZE 65  /* 64 bytes */
#define API_EMAIL_SIZE    255 /* 254 bytes */
#define API_ROLE_SIZE     16  /* "admin" | "user" */
#define API_NAME_SIZE     129 /* key names: 128 bytes */
#define API_NS_SIZE       64
#define API_RUNTIME_SIZE  129
#define API_LEVEL_SIZE    16
#define API_OBJNAME_SIZE  254
#define API_STATUS_SIZE   16

typedef struct _api_db_t api_db_t;

typedef struct {
    char id[API_ID_SIZE];
    char username[API_USERNAME_SIZE];
    char email[API_EMAIL_SIZE];
    char role[API_ROLE_SIZE];
    int64_t created_ms;
    bool disabled;
} api_user_t;

typedef struct {
    char id[API_ID_SIZE];
    char user_id[API_ID_SIZE];
    char name[API_NAME_SIZE];
    char hash[65];   /* SHA-256 hex of the key */
    char prefix[16]; /* first API_KEY_SHOWN_LEN characters of the key */
    int64_t created_ms;
    int64_t expires_ms;   /* 0 = never */
    int64_t revoked_ms;   /* 0 = live */
    int64_t last_used_ms; /* 0 = never used */
    /* per-key rate limits per window (0 = the configured default of the class) */
    int64_t rate_default, rate_create_sandbox, rate_execute_code;
} api_key_t;

typedef struct {
    char id[API_SB_ID_SIZE]; /* the Sandbox object's name */
    char user_id[API_ID_SIZE];
    char ns[API_NS_SIZE];
    char runtime[API_RUNTIME_SIZE];
    char security_level[API_LEVEL_SIZE];
    bool warm;                       /* came from a warm pool */
    char warm_pod[API_OBJNAME_SIZE]; /* WarmPod name, "" if cold */
    char status[API_STATUS_SIZE];    /* last status the api saw (lowercase API status) */
    int64_t created_ms, started_ms, terminated_ms;
} api_sandbox_row_t;

typedef struct {
    char id[API_ID_SIZE]; /* executionId as the api gave it to the client */
    char sandbox_id[API_SB_ID_SIZE];
    char user_id[API_ID_SIZE];
    char kind[16];                /* code | command | packages */
    char language[33];            /* for code, else "" */
    const char *summary;          /* borrowed: what ran, stored cut to 1024 bytes */
    char status[API_STATUS_SIZE]; /* completed | failed | timeout | cancelled | error */
    int64_t exit_code;
    int64_t started_ms, completed_ms, duration_ms;
    int64_t stdout_bytes, stderr_bytes;
    char transport[8]; /* rest | ws */
} api_exec_row_t;

/*  Connects (dsn borrowed). Returns NULL with a message in err if the first connection
 *  fails. Does not migrate. */
api_db_t *api_db_new (const char *dsn, char *err, size_t err_size);
void api_db_destroy (api_db_t **self_p);

/*  Applies the migrations not applied yet. Returns API_DB_OK or API_DB_UNAVAILABLE. */
int api_db_migrate (api_db_t *self, char *err, size_t err_size);

/*  SELECT 1 (readiness). API_DB_OK or API_DB_UNAVAILABLE. */
int api_db_ping (api_db_t *self);

/* ---------------------------------------------------------------- users */
/*  Creates a user with a fresh id "usr-" + 12 [a-z0-9]. role "admin" or "user";
 *  username 1..64 of [A-Za-z0-9._-]; email 3..254 with one '@' (or "" for none).
 *  API_DB_CONFLICT if the username is taken, API_DB_INVALID for bad fields. */
int api_db_user_create (api_db_t *self, const char *username, const char *email,
                        const char *role, api_user_t *out, char *err, size_t err_size);
int api_db_user_get (api_db_t *self, const char *id, api_user_t *out);
/*  1 if some enabled admin user exists, 0 if none, or a negative code. */
int api_db_admin_exists (api_db_t *self);

/* ---------------------------------------------------------------- API keys */
/*  Stores a key for user_id: name (1..128 bytes of printable UTF-8), expires_ms (0 =
 *  never), hash (SHA-256 hex of the key), prefix (display). Fresh id "key-" + 12. */
int api_db_key_create (api_db_t *self, const char *user_id, const char *name,
                       int64_t expires_ms, const char *hash, const char *prefix, api_key_t *out,
                       char *err, size_t err_size);
/*  The key with this hash and its user (expired and revoked keys are returned too: the
 *  caller decides and says why). API_DB_NOT_FOUND if none, API_DB_INVALID if hash is not
 *  64 lowercase hex. Also sets last_used_at (at most once a minute per key, so a hot key
 *  is not a hot row; only for live keys); key->last_used_ms is the value before this. */
int api_db_key_lookup (api_db_t *self, const char *hash, api_key_t *key, api_user_t *user);
/*  A user's keys, newest first: up to limit (<= API_DB_LIST_MAX) from offset into
 *  items (caller provides room for limit), *n filled, *total = all of the user's keys. */
int api_db_key_list (api_db_t *self, const char *user_id, int limit, int offset,
                     api_key_t *items, int *n, int64_t *total);
/*  Revokes key_id of user_id (sets revoked_at once). *hash (may be NULL) receives its
 *  hash so the caller can drop caches. API_DB_NOT_FOUND if no such live key of the user. */
int api_db_key_revoke (api_db_t *self, const char *user_id, const char *key_id, char hash[65]);
/*  Sets a key's per-window rate limits (0 = the class default; negative = INVALID).
 *  API_DB_NOT_FOUND if there is no such key. */
int api_db_key_set_rates (api_db_t *self, const char *key_id, int64_t rate_default,
                          int64_t rate_create_sandbox, int64_t rate_execute_code);

/* ---------------------------------------------------------------- sandboxes */
int api_db_sandbox_insert (api_db_t *self, const api_sandbox_row_t *row, char *err,
                           size_t err_size);
/*  The same, only while the user has fewer than limit active sandboxes (limit <= 0: no
 *  limit): count and insert happen under a per-user advisory lock, so concurrent creates
 *  cannot all pass. API_DB_QUOTA when the user is at the limit. */
int api_db_sandbox_insert_capped (api_db_t *self, const api_sandbox_row_t *row, int64_t limit,
                                  char *err, size_t err_size);
/*  api_db_sandbox_insert_capped in two halves, so the caller can do something else while
 *  the server writes the row (the create writes the Sandbox object meanwhile): start
 *  sends it (with a limit, after taking the user's lock), finish waits for the outcome,
 *  releases the lock and returns what insert_capped would. Nothing else may run on the
 *  handle in between; row must stay alive until finish. After a start that failed there
 *  is nothing to finish. op's fields are private. */
typedef struct {
    int64_t limit;
    bool locked;
    char num[4][24];
    const char *p[12];
} api_db_insert_op_t;
int api_db_sandbox_insert_start (api_db_t *self, const api_sandbox_row_t *row, int64_t limit,
                                 api_db_insert_op_t *op, char *err, size_t err_size);
int api_db_sandbox_insert_finish (api_db_t *self, api_db_insert_op_t *op, char *err,
                                  size_t err_size);
int api_db_sandbox_get (api_db_t *self, const char *id, api_sandbox_row_t *out);
/*  Sandboxes newest first; user_id NULL = everyone's (admin). Pagination as key_list. */
int api_db_sandbox_list (api_db_t *self, const char *user_id, int limit, int offset,
                         api_sandbox_row_t *items, int *n, int64_t *total);
/*  Active (not terminated) sandboxes of a user, for quotas. */
int api_db_sandbox_count_active (api_db_t *self, const char *user_id, int64_t *count);
/*  Records what the api saw: status (NULL = unchanged); started_ms / terminated_ms set
 *  when non-zero and not set before. */
int api_db_sandbox_update (api_db_t *self, const char *id, const char *status,
                           int64_t started_ms, int64_t terminated_ms);
/*  Removes the row (only to undo a failed create). */
int api_db_sandbox_delete (api_db_t *self, const char *id);

/* ---------------------------------------------------------------- execution audit */
int api_db_exec_record (api_db_t *self, const api_exec_row_t *row, char *err, size_t err_size);
/*  A sandbox's executions newest first as a JSON array of objects (caller decrefs):
 *  {executionId, sandboxId, userId, kind, language, summary, status, exitCode,
 *  startedAt, completedAt (RFC 3339 or null), durationMs, stdoutBytes, stderrBytes,
 *  transport}. Pagination as key_list; *total = all of the sandbox's executions. */
int api_db_exec_list (api_db_t *self, const char *sandbox_id, int limit, int offset,
                      json_t **items, int64_t *total);

/* ---------------------------------------------------------------- warm pools */
int api_db_warmpool_insert (api_db_t *self, const char *ns, const char *name,
                            const char *user_id, char *err, size_t err_size);
/*  The owner of a pool into user_id (API_ID_SIZE). API_DB_NOT_FOUND if unrecorded. */
int api_db_warmpool_owner (api_db_t *self, const char *ns, const char *name,
                           char user_id[API_ID_SIZE]);
int api_db_warmpool_delete (api_db_t *self, const char *ns, const char *name);

/* ---------------------------------------------------------------- permissions */
/*  resource_type "sandbox" | "warmpool"; action one of read, write, execute, connect,
 *  delete, update. Granting twice is not an error. */
int api_db_perm_grant (api_db_t *self, const char *user_id, const char *resource_type,
                       const char *resource_id, const char *action, const char *granted_by);
/*  Revoking what was not granted is API_DB_NOT_FOUND. */
int api_db_perm_revoke (api_db_t *self, const char *user_id, const char *resource_type,
                        const char *resource_id, const char *action);
/*  1 if granted, 0 if not, or a negative code. */
int api_db_perm_check (api_db_t *self, const char *user_id, const char *resource_type,
                       const char *resource_id, const char *action);

/* ---------------------------------------------------------------- revoked JWT ids */
/*  Records jti as revoked until exp_ms (after which the token is dead anyway; rows past
 *  it are purged by api_db_jti_purge). */
int api_db_jti_revoke (api_db_t *self, const char *jti, int64_t exp_ms);
/*  1 if revoked, 0 if not, or a negative code. */
int api_db_jti_revoked (api_db_t *self, const char *jti);
int api_db_jti_purge (api_db_t *self, int64_t now_ms);

#endif
