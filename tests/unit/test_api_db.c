/*  Unit tests for api_db against a real private PostgreSQL (scripts/pg-tmp).
 *
 *  Each case works in a database of its own (created from the group's cluster), so
 *  counts, totals and "does an admin exist" start from nothing. The last case stops the
 *  server under a live handle and starts it again.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <libpq-fe.h>
#include <pthread.h>

#include "api_auth.h"
#include "api_db.h"
#include "api_db_internal.h"
#include "lss_store.h"
#include "lss_testproc.h"
#include "lss_util.h"

#include "lss_testpg.h"

#define S_DSN_SIZE    1024
#define S_KEYS        25
#define S_SANDBOXES   15
#define S_OUTAGE_MS   8000 /* a call against a stopped server returns well within this */
#define S_BIG_SUMMARY 10240

static char s_case_dsn[S_DSN_SIZE];

/*  A new empty database; s_case_dsn names it. */
static void s_fresh_db (void)
{
    char name[32];
    assert_int_equal (lss_id_new ("t_", 10, name, sizeof name), 0);
    PGconn *c = PQconnectdb (s_dsn);
    assert_int_equal (PQstatus (c), CONNECTION_OK);
    char sql[128];
    snprintf (sql, sizeof sql, "CREATE DATABASE %s", name);
    PGresult *r = PQexec (c, sql);
    assert_int_equal (PQresultStatus (r), PGRES_COMMAND_OK);
    PQclear (r);
    PQfinish (c);
    snprintf (s_case_dsn, sizeof s_case_dsn, "%s dbname=%s", s_dsn, name);
}

static api_db_t *s_open (void)
{
    char err[256] = "";
    api_db_t *db = api_db_new (s_case_dsn, err, sizeof err);
    if (!db)
        fail_msg ("api_db_new: %s", err);
    return db;
}

static api_db_t *s_fresh (void)
{
    s_fresh_db ();
    api_db_t *db = s_open ();
    char err[256] = "";
    if (api_db_migrate (db, err, sizeof err) != API_DB_OK)
        fail_msg ("migrate: %s", err);
    return db;
}

/*  One value from a plain libpq connection to the case's database. */
static void s_sql1 (const char *sql, char *out, size_t size)
{
    PGconn *c = PQconnectdb (s_case_dsn);
    assert_int_equal (PQstatus (c), CONNECTION_OK);
    PGresult *r = PQexec (c, sql);
    ExecStatusType st = PQresultStatus (r);
    if (st != PGRES_TUPLES_OK && st != PGRES_COMMAND_OK)
        fail_msg ("%s: %s", sql, PQresultErrorMessage (r));
    snprintf (out, size, "%s",
              st == PGRES_TUPLES_OK && PQntuples (r) ? PQgetvalue (r, 0, 0) : "");
    PQclear (r);
    PQfinish (c);
}

static api_user_t s_user (api_db_t *db, const char *name, const char *role)
{
    api_user_t u;
    char err[256] = "";
    if (api_db_user_create (db, name, "", role, &u, err, sizeof err) != API_DB_OK)
        fail_msg ("user_create %s: %s", name, err);
    return u;
}

static api_key_t s_key (api_db_t *db, const char *user_id, const char *name, int64_t exp,
                        char key_out[API_KEY_SIZE])
{
    char key[API_KEY_SIZE], hash[API_HASH_HEX_SIZE], prefix[API_KEY_SHOWN_LEN + 1];
    assert_int_equal (api_key_generate (key), 0);
    assert_int_equal (api_sha256_hex (key, hash), 0);
    snprintf (prefix, sizeof prefix, "%.*s", API_KEY_SHOWN_LEN, key);
    api_key_t k;
    char err[256] = "";
    if (api_db_key_create (db, user_id, name, exp, hash, prefix, &k, err, sizeof err) !=
        API_DB_OK)
        fail_msg ("key_create: %s", err);
    if (key_out)
        memcpy (key_out, key, sizeof key);
    return k;
}

/* ------------------------------------------------------------------ migrations */

static void test_migrate_idempotent_and_coexists (void **state)
{
    (void)state;
    api_db_t *db = s_fresh ();
    char err[256] = "", v[64];
    assert_int_equal (api_db_migrate (db, err, sizeof err), API_DB_OK);
    assert_int_equal (api_db_migrate (db, err, sizeof err), API_DB_OK);
    s_sql1 ("SELECT count(*) FROM api_schema_migrations", v, sizeof v);
    assert_string_equal (v, "1");
    s_sql1 ("SELECT string_agg(tablename, ',' ORDER BY tablename) FROM pg_tables"
            " WHERE tablename LIKE 'api\\_%'",
            v, sizeof v);
    /* the object store migrates into the same database, and both keep working */
    lss_store_t *store = lss_store_pg_new (s_case_dsn, err, sizeof err);
    if (!store)
        fail_msg ("store: %s", err);
    lss_store_destroy (&store);
    assert_int_equal (api_db_migrate (db, err, sizeof err), API_DB_OK);
    char tables[512];
    s_sql1 ("SELECT string_agg(tablename, ',' ORDER BY tablename) FROM pg_tables"
            " WHERE schemaname = 'public'",
            tables, sizeof tables);
    assert_string_equal (tables, "api_executions,api_keys,api_permissions,api_revoked_tokens,"
                                 "api_sandboxes,api_schema_migrations,api_users,"
                                 "api_warm_pools,store_events,store_objects,"
                                 "store_schema_migrations,store_state");
    assert_int_equal (api_db_ping (db), API_DB_OK);
    /* every statement is bounded by the server-side timeout */
    PGresult *res = NULL;
    assert_int_equal (api_dbi_query (db, "SHOW statement_timeout", 0, NULL, &res, NULL, 0),
                      API_DB_OK);
    assert_string_equal (PQgetvalue (res, 0, 0), "5s");
    PQclear (res);
    api_db_destroy (&db);
    assert_null (db);
    api_db_destroy (&db);
}

typedef struct {
    int rc;
    char err[256];
} s_mig_t;

static void *s_migrate_thread (void *arg)
{
    s_mig_t *m = arg;
    api_db_t *db = api_db_new (s_case_dsn, m->err, sizeof m->err);
    m->rc = db ? api_db_migrate (db, m->err, sizeof m->err) : -1;
    api_db_destroy (&db);
    return NULL;
}

static void test_migrate_concurrent (void **state)
{
    (void)state;
    s_fresh_db ();
    pthread_t a, b;
    s_mig_t ma = {.rc = 1}, mb = {.rc = 1};
    assert_int_equal (pthread_create (&a, NULL, s_migrate_thread, &ma), 0);
    assert_int_equal (pthread_create (&b, NULL, s_migrate_thread, &mb), 0);
    pthread_join (a, NULL);
    pthread_join (b, NULL);
    if (ma.rc != API_DB_OK || mb.rc != API_DB_OK)
        fail_msg ("migrate: %d %s / %d %s", ma.rc, ma.err, mb.rc, mb.err);
    char v[64];
    s_sql1 ("SELECT count(*) FROM api_schema_migrations", v, sizeof v);
    assert_string_equal (v, "1");
    char err[256];
    assert_null (api_db_new ("host=/nonexistent port=1 dbname=x", err, sizeof err));
    assert_true (strstr (err, "connect") != NULL);
    assert_null (api_db_new (NULL, err, sizeof err));
}

/* ------------------------------------------------------------------ users */

static void test_users (void **state)
{
    (void)state;
    api_db_t *db = s_fresh ();
    char err[256] = "";
    assert_int_equal (api_db_admin_exists (db), 0);
    api_user_t u, g;
    assert_int_equal (
        api_db_user_create (db, "alice.B-9_", "alice@example.org", "user", &u, err, sizeof err),
        API_DB_OK);
    assert_int_equal (strlen (u.id), 16);
    assert_memory_equal (u.id, "usr-", 4);
    assert_string_equal (u.username, "alice.B-9_");
    assert_string_equal (u.email, "alice@example.org");
    assert_string_equal (u.role, "user");
    assert_false (u.disabled);
    assert_true (llabs (u.created_ms - lss_time_now_ms ()) < 60000);
    assert_int_equal (api_db_user_get (db, u.id, &g), API_DB_OK);
    assert_memory_equal (&g, &u, sizeof g);
    assert_int_equal (api_db_admin_exists (db), 0);
    /* the username is taken */
    assert_int_equal (api_db_user_create (db, "alice.B-9_", "", "admin", &g, err, sizeof err),
                      API_DB_CONFLICT);
    /* invalid fields never reach the server */
    char long_name[80];
    memset (long_name, 'n', 65);
    long_name[65] = '\0';
    struct {
        const char *name, *email, *role;
    } bad[] = {
        {"", "", "user"},       {long_name, "", "user"},  {"a b", "", "user"},
        {"a'b", "", "user"},    {"é", "", "user"},        {NULL, "", "user"},
        {"ok", "noat", "user"}, {"ok", "a@b@c", "user"},  {"ok", "@bc", "user"},
        {"ok", "ab@", "user"},  {"ok", "a b@c", "user"},  {"ok", "a\n@b", "user"},
        {"ok", "", "root"},     {"ok", "", "Admin"},      {"ok", "", NULL},
        {"ok", "", ""},         {"ok", "\xff@x", "user"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        if (api_db_user_create (db, bad[i].name, bad[i].email, bad[i].role, &g, err,
                                sizeof err) != API_DB_INVALID)
            fail_msg ("accepted case %zu", i);
    /* a 64-byte name is fine; no email is stored as none */
    long_name[64] = '\0';
    api_user_t admin;
    assert_int_equal (
        api_db_user_create (db, long_name, NULL, "admin", &admin, err, sizeof err), API_DB_OK);
    assert_string_equal (admin.email, "");
    assert_int_equal (api_db_admin_exists (db), 1);
    /* a disabled admin does not count */
    char sql[128], v[16];
    snprintf (sql, sizeof sql, "UPDATE api_users SET disabled = true WHERE id = '%s'",
              admin.id);
    s_sql1 (sql, v, sizeof v);
    assert_int_equal (api_db_admin_exists (db), 0);
    assert_int_equal (api_db_user_get (db, admin.id, &g), API_DB_OK);
    assert_true (g.disabled);
    /* unknown and malformed ids */
    assert_int_equal (api_db_user_get (db, "usr-000000000000", &g), API_DB_NOT_FOUND);
    assert_int_equal (api_db_user_get (db, "", &g), API_DB_NOT_FOUND);
    assert_int_equal (api_db_user_get (db, NULL, &g), API_DB_NOT_FOUND);
    assert_int_equal (api_db_user_get (db, "usr-' OR '1'='1", &g), API_DB_NOT_FOUND);
    assert_int_equal (api_db_user_get (db, "usr-0000000000000000000000000000000000000000", &g),
                      API_DB_NOT_FOUND);
    api_db_destroy (&db);
}

/* ------------------------------------------------------------------ keys */

static void test_keys_lookup_and_revoke (void **state)
{
    (void)state;
    api_db_t *db = s_fresh ();
    api_user_t alice = s_user (db, "alice", "user"), bob = s_user (db, "bob", "admin");
    char key[API_KEY_SIZE], hash[API_HASH_HEX_SIZE], err[256] = "";
    api_key_t k = s_key (db, alice.id, "laptop \xf0\x9f\x94\x91 clé", 0, key);
    assert_int_equal (strlen (k.id), 16);
    assert_memory_equal (k.id, "key-", 4);
    assert_string_equal (k.user_id, alice.id);
    assert_string_equal (k.name, "laptop \xf0\x9f\x94\x91 clé");
    assert_int_equal (strlen (k.prefix), API_KEY_SHOWN_LEN);
    assert_int_equal (k.expires_ms, 0);
    assert_int_equal (k.revoked_ms, 0);
    assert_int_equal (k.last_used_ms, 0);
    assert_int_equal (api_sha256_hex (key, hash), 0);
    assert_string_equal (k.hash, hash);

    /* lookup: the key and its user; last use recorded, at most once a minute */
    api_key_t got;
    api_user_t owner;
    assert_int_equal (api_db_key_lookup (db, hash, &got, &owner), API_DB_OK);
    assert_string_equal (got.id, k.id);
    assert_int_equal (got.last_used_ms, 0); /* as it was before this lookup */
    assert_string_equal (owner.id, alice.id);
    assert_string_equal (owner.username, "alice");
    assert_int_equal (api_db_key_lookup (db, hash, &got, NULL), API_DB_OK);
    int64_t used = got.last_used_ms;
    assert_true (used > 0 && llabs (used - lss_time_now_ms ()) < 60000);
    assert_int_equal (api_db_key_lookup (db, hash, &got, NULL), API_DB_OK);
    assert_int_equal (got.last_used_ms, used);
    char sql[256], v[64];
    snprintf (sql, sizeof sql,
              "UPDATE api_keys SET last_used_at = now() - interval '2 minutes' WHERE id = '%s'",
              k.id);
    s_sql1 (sql, v, sizeof v);
    assert_int_equal (api_db_key_lookup (db, hash, &got, NULL), API_DB_OK);
    assert_int_equal (api_db_key_lookup (db, hash, &got, NULL), API_DB_OK);
    assert_true (got.last_used_ms >= used);

    /* unknown and malformed hashes */
    char other[API_HASH_HEX_SIZE];
    assert_int_equal (api_sha256_hex ("nope", other), 0);
    assert_int_equal (api_db_key_lookup (db, other, &got, &owner), API_DB_NOT_FOUND);
    assert_int_equal (api_db_key_lookup (db, "ABC", &got, &owner), API_DB_INVALID);
    assert_int_equal (api_db_key_lookup (db, NULL, &got, &owner), API_DB_INVALID);

    /* the same hash twice; bad fields; an unknown user */
    api_key_t x;
    assert_int_equal (
        api_db_key_create (db, alice.id, "dup", 0, hash, "lsp_", &x, err, sizeof err),
        API_DB_CONFLICT);
    char upper[API_HASH_HEX_SIZE];
    memcpy (upper, other, sizeof upper);
    upper[0] = 'A';
    upper[1] = 'B';
    char name129[140];
    memset (name129, 'n', 129);
    name129[129] = '\0';
    assert_int_equal (api_db_key_create (db, alice.id, "n", 0, upper, "p", &x, err, sizeof err),
                      API_DB_INVALID);
    assert_int_equal (api_db_key_create (db, alice.id, "n", 0, "abc", "p", &x, err, sizeof err),
                      API_DB_INVALID);
    assert_int_equal (api_db_key_create (db, alice.id, "", 0, other, "p", &x, err, sizeof err),
                      API_DB_INVALID);
    assert_int_equal (
        api_db_key_create (db, alice.id, name129, 0, other, "p", &x, err, sizeof err),
        API_DB_INVALID);
    assert_int_equal (
        api_db_key_create (db, alice.id, "a\x01", 0, other, "p", &x, err, sizeof err),
        API_DB_INVALID);
    assert_int_equal (
        api_db_key_create (db, alice.id, "\xc3\x28", 0, other, "p", &x, err, sizeof err),
        API_DB_INVALID);
    assert_int_equal (
        api_db_key_create (db, alice.id, "n", -1, other, "p", &x, err, sizeof err),
        API_DB_INVALID);
    assert_int_equal (api_db_key_create (db, alice.id, "n", 0, other, "0123456789abcdefX", &x,
                                         err, sizeof err),
                      API_DB_INVALID);
    assert_int_equal (
        api_db_key_create (db, "usr-nobody", "n", 0, other, "p", &x, err, sizeof err),
        API_DB_NOT_FOUND);
    name129[128] = '\0';
    assert_int_equal (
        api_db_key_create (db, alice.id, name129, 0, other, "p", &x, err, sizeof err),
        API_DB_OK);

    /* an expired key is returned with its expiry (the caller decides) and not touched */
    int64_t past = lss_time_now_ms () - 1000;
    char old_key[API_KEY_SIZE], old_hash[API_HASH_HEX_SIZE];
    api_key_t old = s_key (db, alice.id, "old", past, old_key);
    assert_int_equal (old.expires_ms, past);
    assert_int_equal (api_sha256_hex (old_key, old_hash), 0);
    assert_int_equal (api_db_key_lookup (db, old_hash, &got, NULL), API_DB_OK);
    assert_int_equal (api_db_key_lookup (db, old_hash, &got, NULL), API_DB_OK);
    assert_int_equal (got.expires_ms, past);
    assert_int_equal (got.last_used_ms, 0);

    /* per-key rates */
    assert_int_equal (api_db_key_set_rates (db, k.id, 10, 2, 0), API_DB_OK);
    assert_int_equal (api_db_key_lookup (db, hash, &got, NULL), API_DB_OK);
    assert_int_equal (got.rate_default, 10);
    assert_int_equal (got.rate_create_sandbox, 2);
    assert_int_equal (got.rate_execute_code, 0);
    assert_int_equal (api_db_key_set_rates (db, k.id, -1, 0, 0), API_DB_INVALID);
    assert_int_equal (api_db_key_set_rates (db, "key-none", 1, 1, 1), API_DB_NOT_FOUND);

    /* revoke: someone else's key is not found; then it is revoked once */
    char revoked_hash[65] = "";
    assert_int_equal (api_db_key_revoke (db, bob.id, k.id, revoked_hash), API_DB_NOT_FOUND);
    assert_int_equal (api_db_key_lookup (db, hash, &got, NULL), API_DB_OK);
    assert_int_equal (got.revoked_ms, 0);
    assert_int_equal (api_db_key_revoke (db, alice.id, k.id, revoked_hash), API_DB_OK);
    assert_string_equal (revoked_hash, hash);
    assert_int_equal (api_db_key_lookup (db, hash, &got, &owner), API_DB_OK);
    assert_true (got.revoked_ms > 0);
    int64_t revoked_at = got.revoked_ms;
    assert_int_equal (api_db_key_revoke (db, alice.id, k.id, NULL), API_DB_NOT_FOUND);
    assert_int_equal (api_db_key_lookup (db, hash, &got, NULL), API_DB_OK);
    assert_int_equal (got.revoked_ms, revoked_at);
    assert_int_equal (api_db_key_revoke (db, alice.id, "key-none", NULL), API_DB_NOT_FOUND);
    assert_int_equal (api_db_key_revoke (db, alice.id, "", NULL), API_DB_NOT_FOUND);
    api_db_destroy (&db);
}

static void test_keys_list_pagination (void **state)
{
    (void)state;
    api_db_t *db = s_fresh ();
    api_user_t alice = s_user (db, "alice", "user"), bob = s_user (db, "bob", "user");
    for (int i = 0; i < S_KEYS; i++) {
        char name[16];
        snprintf (name, sizeof name, "k%02d", i);
        s_key (db, alice.id, name, 0, NULL);
    }
    s_key (db, bob.id, "bobs", 0, NULL);
    api_key_t items[API_DB_LIST_MAX];
    char seen[S_KEYS][API_ID_SIZE];
    int n_seen = 0, n = -1;
    int64_t total = -1, prev_created = INT64_MAX;
    for (int offset = 0; offset < 40; offset += 10) {
        assert_int_equal (api_db_key_list (db, alice.id, 10, offset, items, &n, &total),
                          API_DB_OK);
        assert_int_equal (total, S_KEYS); /* the true count on every page, even past the end */
        assert_int_equal (n, offset < 20 ? 10 : offset == 20 ? 5 : 0);
        for (int i = 0; i < n; i++) {
            assert_string_equal (items[i].user_id, alice.id);
            assert_true (items[i].created_ms <= prev_created); /* newest first */
            prev_created = items[i].created_ms;
            for (int j = 0; j < n_seen; j++)
                assert_string_not_equal (seen[j], items[i].id); /* pages do not overlap */
            memcpy (seen[n_seen++], items[i].id, API_ID_SIZE);
        }
    }
    assert_int_equal (n_seen, S_KEYS);
    /* the last key made comes first */
    assert_int_equal (api_db_key_list (db, alice.id, 1, 0, items, &n, &total), API_DB_OK);
    assert_string_equal (items[0].name, "k24");
    assert_int_equal (api_db_key_list (db, bob.id, 100, 0, items, &n, &total), API_DB_OK);
    assert_int_equal (n, 1);
    assert_int_equal (total, 1);
    assert_int_equal (api_db_key_list (db, "usr-nobody", 10, 0, items, &n, &total), API_DB_OK);
    assert_int_equal (n, 0);
    assert_int_equal (total, 0);
    assert_int_equal (api_db_key_list (db, alice.id, 0, 0, items, &n, &total), API_DB_INVALID);
    assert_int_equal (api_db_key_list (db, alice.id, API_DB_LIST_MAX + 1, 0, items, &n, &total),
                      API_DB_INVALID);
    assert_int_equal (api_db_key_list (db, alice.id, 10, -1, items, &n, &total),
                      API_DB_INVALID);
    api_db_destroy (&db);
}

/* ------------------------------------------------------------------ sandboxes */

static api_sandbox_row_t s_sb (const char *id, const char *user_id, int64_t created_ms)
{
    api_sandbox_row_t r;
    memset (&r, 0, sizeof r);
    snprintf (r.id, sizeof r.id, "%s", id);
    snprintf (r.user_id, sizeof r.user_id, "%s", user_id);
    snprintf (r.ns, sizeof r.ns, "default");
    snprintf (r.runtime, sizeof r.runtime, "python:3.11");
    snprintf (r.security_level, sizeof r.security_level, "standard");
    snprintf (r.status, sizeof r.status, "pending");
    r.created_ms = created_ms;
    return r;
}

static void test_sandboxes (void **state)
{
    (void)state;
    api_db_t *db = s_fresh ();
    api_user_t alice = s_user (db, "alice", "user"), bob = s_user (db, "bob", "user");
    char err[256] = "";
    int64_t base = INT64_C (1790000000000);
    for (int i = 0; i < S_SANDBOXES; i++) {
        char id[32];
        snprintf (id, sizeof id, "sb-a%02d", i);
        api_sandbox_row_t r = s_sb (id, alice.id, base + i * 1000);
        if (i == 3) {
            r.warm = true;
            snprintf (r.warm_pod, sizeof r.warm_pod, "pool-python-x7k2");
        }
        if (api_db_sandbox_insert (db, &r, err, sizeof err) != API_DB_OK)
            fail_msg ("insert: %s", err);
    }
    for (int i = 0; i < 3; i++) {
        char id[32];
        snprintf (id, sizeof id, "sb-b%02d", i);
        api_sandbox_row_t r = s_sb (id, bob.id, base + 500); /* same time: id breaks ties */
        assert_int_equal (api_db_sandbox_insert (db, &r, err, sizeof err), API_DB_OK);
    }
    api_sandbox_row_t got;
    assert_int_equal (api_db_sandbox_get (db, "sb-a03", &got), API_DB_OK);
    assert_string_equal (got.user_id, alice.id);
    assert_string_equal (got.ns, "default");
    assert_string_equal (got.runtime, "python:3.11");
    assert_string_equal (got.security_level, "standard");
    assert_true (got.warm);
    assert_string_equal (got.warm_pod, "pool-python-x7k2");
    assert_string_equal (got.status, "pending");
    assert_int_equal (got.created_ms, base + 3000);
    assert_int_equal (got.started_ms, 0);
    assert_int_equal (got.terminated_ms, 0);
    assert_int_equal (api_db_sandbox_get (db, "sb-a04", &got), API_DB_OK);
    assert_false (got.warm);
    assert_string_equal (got.warm_pod, "");

    /* lists: newest first, paged, true totals; everyone's for admins */
    api_sandbox_row_t items[API_DB_LIST_MAX];
    int n = 0;
    int64_t total = 0;
    assert_int_equal (api_db_sandbox_list (db, alice.id, 5, 0, items, &n, &total), API_DB_OK);
    assert_int_equal (n, 5);
    assert_int_equal (total, S_SANDBOXES);
    assert_string_equal (items[0].id, "sb-a14");
    assert_string_equal (items[4].id, "sb-a10");
    assert_int_equal (api_db_sandbox_list (db, alice.id, 5, 10, items, &n, &total), API_DB_OK);
    assert_int_equal (n, 5);
    assert_string_equal (items[0].id, "sb-a04");
    assert_string_equal (items[4].id, "sb-a00");
    assert_int_equal (api_db_sandbox_list (db, alice.id, 5, 15, items, &n, &total), API_DB_OK);
    assert_int_equal (n, 0);
    assert_int_equal (total, S_SANDBOXES);
    assert_int_equal (api_db_sandbox_list (db, NULL, 100, 0, items, &n, &total), API_DB_OK);
    assert_int_equal (n, S_SANDBOXES + 3);
    assert_int_equal (total, S_SANDBOXES + 3);
    assert_string_equal (items[13].id, "sb-a01");
    assert_string_equal (items[14].id, "sb-b02"); /* base + 500, ties by id descending */
    assert_string_equal (items[16].id, "sb-b00");
    assert_string_equal (items[17].id, "sb-a00");
    assert_int_equal (api_db_sandbox_list (db, "usr-none", 10, 0, items, &n, &total),
                      API_DB_OK);
    assert_int_equal (total, 0);
    assert_int_equal (api_db_sandbox_list (db, NULL, 0, 0, items, &n, &total), API_DB_INVALID);

    /* refusals */
    api_sandbox_row_t dup = s_sb ("sb-a00", alice.id, 0);
    assert_int_equal (api_db_sandbox_insert (db, &dup, err, sizeof err), API_DB_CONFLICT);
    const char *bad_ids[] = {"", "SB-1", "sb_1", "-sb", "sb-", "sb 1", "sb/1", NULL};
    for (int i = 0; bad_ids[i]; i++) {
        api_sandbox_row_t r = s_sb (bad_ids[i], alice.id, 0);
        assert_int_equal (api_db_sandbox_insert (db, &r, err, sizeof err), API_DB_INVALID);
        assert_int_equal (api_db_sandbox_get (db, bad_ids[i], &got), API_DB_NOT_FOUND);
    }
    api_sandbox_row_t r = s_sb ("sb-x", alice.id, 0);
    snprintf (r.security_level, sizeof r.security_level, "low");
    assert_int_equal (api_db_sandbox_insert (db, &r, err, sizeof err), API_DB_INVALID);
    r = s_sb ("sb-x", alice.id, 0);
    snprintf (r.status, sizeof r.status, "Running");
    assert_int_equal (api_db_sandbox_insert (db, &r, err, sizeof err), API_DB_INVALID);
    r = s_sb ("sb-x", alice.id, 0);
    snprintf (r.ns, sizeof r.ns, "Default");
    assert_int_equal (api_db_sandbox_insert (db, &r, err, sizeof err), API_DB_INVALID);
    r = s_sb ("sb-x", alice.id, 0);
    r.runtime[0] = '\0';
    assert_int_equal (api_db_sandbox_insert (db, &r, err, sizeof err), API_DB_INVALID);
    r = s_sb ("sb-x", alice.id, -5);
    assert_int_equal (api_db_sandbox_insert (db, &r, err, sizeof err), API_DB_INVALID);
    assert_int_equal (api_db_sandbox_insert (db, NULL, err, sizeof err), API_DB_INVALID);
    r = s_sb ("sb-x", "usr-none", 0);
    assert_int_equal (api_db_sandbox_insert (db, &r, err, sizeof err), API_DB_NOT_FOUND);
    /* created_ms 0 = now */
    r = s_sb ("sb-now", bob.id, 0);
    assert_int_equal (api_db_sandbox_insert (db, &r, err, sizeof err), API_DB_OK);
    assert_int_equal (api_db_sandbox_get (db, "sb-now", &got), API_DB_OK);
    assert_true (llabs (got.created_ms - lss_time_now_ms ()) < 60000);

    /* lifecycle: times set once, status as seen; quota counts the active */
    int64_t count = -1;
    assert_int_equal (api_db_sandbox_count_active (db, alice.id, &count), API_DB_OK);
    assert_int_equal (count, S_SANDBOXES);
    /* the capped insert: refused at the limit, allowed below it or without one */
    api_sandbox_row_t capped = s_sb ("sb-cap1", alice.id, 0);
    assert_int_equal (api_db_sandbox_insert_capped (db, &capped, S_SANDBOXES, err, sizeof err),
                      API_DB_QUOTA);
    assert_int_equal (api_db_sandbox_get (db, "sb-cap1", &got), API_DB_NOT_FOUND);
    assert_int_equal (
        api_db_sandbox_insert_capped (db, &capped, S_SANDBOXES + 1, err, sizeof err),
        API_DB_OK);
    capped = s_sb ("sb-cap2", alice.id, 0);
    assert_int_equal (
        api_db_sandbox_insert_capped (db, &capped, S_SANDBOXES + 1, err, sizeof err),
        API_DB_QUOTA);
    assert_int_equal (api_db_sandbox_insert_capped (db, &capped, 0, err, sizeof err),
                      API_DB_OK);
    assert_int_equal (api_db_sandbox_delete (db, "sb-cap1"), API_DB_OK);
    assert_int_equal (api_db_sandbox_delete (db, "sb-cap2"), API_DB_OK);
    /* in two halves: other connections work meanwhile, this handle refuses other work */
    {
        api_db_t *other = s_open ();
        api_db_insert_op_t op;
        capped = s_sb ("sb-split1", alice.id, 0);
        assert_int_equal (
            api_db_sandbox_insert_start (db, &capped, S_SANDBOXES + 1, &op, err, sizeof err),
            API_DB_OK);
        assert_int_equal (api_db_ping (other), API_DB_OK);
        assert_int_equal (api_db_ping (db), API_DB_UNAVAILABLE); /* one at a time */
        assert_int_equal (api_db_sandbox_insert_finish (db, &op, err, sizeof err), API_DB_OK);
        /* the user's lock is free again: the other connection's capped insert runs (and
         * is refused by the count, which now includes sb-split1) */
        api_sandbox_row_t next = s_sb ("sb-split2", alice.id, 0);
        assert_int_equal (
            api_db_sandbox_insert_capped (other, &next, S_SANDBOXES + 1, err, sizeof err),
            API_DB_QUOTA);
        /* a duplicate fails at finish, with the error insert_capped gives */
        assert_int_equal (api_db_sandbox_insert_start (db, &capped, 0, &op, err, sizeof err),
                          API_DB_OK);
        assert_int_equal (api_db_sandbox_insert_finish (db, &op, err, sizeof err),
                          API_DB_CONFLICT);
        assert_int_equal (api_db_ping (db), API_DB_OK);
        assert_int_equal (api_db_sandbox_delete (db, "sb-split1"), API_DB_OK);
        api_db_destroy (&other);
    }
    assert_int_equal (api_db_sandbox_update (db, "sb-a01", "running", base + 9000, 0),
                      API_DB_OK);
    assert_int_equal (api_db_sandbox_update (db, "sb-a01", NULL, base + 99000, 0), API_DB_OK);
    assert_int_equal (api_db_sandbox_get (db, "sb-a01", &got), API_DB_OK);
    assert_string_equal (got.status, "running");
    assert_int_equal (got.started_ms, base + 9000);
    assert_int_equal (got.terminated_ms, 0);
    assert_int_equal (api_db_sandbox_update (db, "sb-a01", "terminated", 0, base + 20000),
                      API_DB_OK);
    assert_int_equal (api_db_sandbox_update (db, "sb-a02", "terminating", 0, 0), API_DB_OK);
    assert_int_equal (api_db_sandbox_update (db, "sb-a02", NULL, 0, base + 30000), API_DB_OK);
    assert_int_equal (api_db_sandbox_update (db, "sb-a03", "terminated", 0, 0), API_DB_OK);
    assert_int_equal (api_db_sandbox_update (db, "sb-a04", "failed", 0, 0), API_DB_OK);
    assert_int_equal (api_db_sandbox_get (db, "sb-a01", &got), API_DB_OK);
    assert_string_equal (got.status, "terminated");
    assert_int_equal (got.started_ms, base + 9000);
    assert_int_equal (got.terminated_ms, base + 20000);
    assert_int_equal (api_db_sandbox_update (db, "sb-a01", NULL, 0, base + 50000), API_DB_OK);
    assert_int_equal (api_db_sandbox_get (db, "sb-a01", &got), API_DB_OK);
    assert_int_equal (got.terminated_ms, base + 20000);
    assert_int_equal (api_db_sandbox_count_active (db, alice.id, &count), API_DB_OK);
    assert_int_equal (count, S_SANDBOXES - 3); /* a failed sandbox still holds its slot */
    assert_int_equal (api_db_sandbox_count_active (db, "usr-none", &count), API_DB_OK);
    assert_int_equal (count, 0);
    assert_int_equal (api_db_sandbox_update (db, "sb-none", "running", 0, 0), API_DB_NOT_FOUND);
    assert_int_equal (api_db_sandbox_update (db, "sb-a01", "gone", 0, 0), API_DB_INVALID);
    assert_int_equal (api_db_sandbox_update (db, "sb-a01", NULL, -1, 0), API_DB_INVALID);

    /* delete (undoing a failed create) */
    assert_int_equal (api_db_sandbox_delete (db, "sb-now"), API_DB_OK);
    assert_int_equal (api_db_sandbox_get (db, "sb-now", &got), API_DB_NOT_FOUND);
    assert_int_equal (api_db_sandbox_delete (db, "sb-now"), API_DB_NOT_FOUND);
    assert_int_equal (api_db_sandbox_delete (db, "SB"), API_DB_NOT_FOUND);
    api_db_destroy (&db);
}

/* ------------------------------------------------------------------ audit */

static api_exec_row_t s_exec (const char *id, const char *sb, const char *user,
                              const char *summary, int64_t started_ms)
{
    api_exec_row_t e;
    memset (&e, 0, sizeof e);
    snprintf (e.id, sizeof e.id, "%s", id);
    snprintf (e.sandbox_id, sizeof e.sandbox_id, "%s", sb);
    snprintf (e.user_id, sizeof e.user_id, "%s", user);
    snprintf (e.kind, sizeof e.kind, "code");
    snprintf (e.language, sizeof e.language, "python");
    e.summary = summary;
    snprintf (e.status, sizeof e.status, "completed");
    e.started_ms = started_ms;
    e.completed_ms = started_ms ? started_ms + 250 : 0;
    e.duration_ms = 250;
    e.stdout_bytes = 12;
    e.stderr_bytes = 3;
    snprintf (e.transport, sizeof e.transport, "rest");
    return e;
}

static void test_exec_audit (void **state)
{
    (void)state;
    api_db_t *db = s_fresh ();
    api_user_t alice = s_user (db, "alice", "user");
    char err[256] = "";
    api_sandbox_row_t sb = s_sb ("sb-audit", alice.id, 0);
    assert_int_equal (api_db_sandbox_insert (db, &sb, err, sizeof err), API_DB_OK);
    int64_t t0 = INT64_C (1790000000000);

    char *big = malloc (S_BIG_SUMMARY + 1);
    memset (big, 's', S_BIG_SUMMARY);
    big[S_BIG_SUMMARY] = '\0';
    api_exec_row_t e = s_exec ("exe-1", "sb-audit", alice.id, big, t0);
    assert_int_equal (api_db_exec_record (db, &e, err, sizeof err), API_DB_OK);
    /* a character that would straddle the cut is left out whole */
    memset (big, 'a', 1023);
    memcpy (big + 1023, "\xc3\xa9tail", 7);
    e = s_exec ("exe-2", "sb-audit", alice.id, big, t0 + 1000);
    snprintf (e.status, sizeof e.status, "failed");
    e.exit_code = 3;
    snprintf (e.transport, sizeof e.transport, "ws");
    assert_int_equal (api_db_exec_record (db, &e, err, sizeof err), API_DB_OK);
    /* invalid UTF-8 and control characters become '?'; a missing summary is "" */
    e = s_exec ("exe-3", "sb-audit", alice.id, "ok\xff\xfe\x01\tline\nnext \xe2\x82",
                t0 + 2000);
    snprintf (e.kind, sizeof e.kind, "command");
    e.language[0] = '\0';
    assert_int_equal (api_db_exec_record (db, &e, err, sizeof err), API_DB_OK);
    e = s_exec ("exe-3", "sb-audit", alice.id, NULL, t0 + 3000); /* an id reused by a client */
    snprintf (e.status, sizeof e.status, "timeout");
    assert_int_equal (api_db_exec_record (db, &e, err, sizeof err), API_DB_OK);

    json_t *items = NULL;
    int64_t total = 0;
    assert_int_equal (api_db_exec_list (db, "sb-audit", 10, 0, &items, &total), API_DB_OK);
    assert_int_equal (total, 4);
    assert_int_equal (json_array_size (items), 4);
    json_t *newest = json_array_get (items, 0), *oldest = json_array_get (items, 3);
    assert_string_equal (json_string_value (json_object_get (newest, "status")), "timeout");
    assert_string_equal (json_string_value (json_object_get (newest, "summary")), "");
    json_t *third = json_array_get (items, 1);
    assert_string_equal (json_string_value (json_object_get (third, "executionId")), "exe-3");
    assert_string_equal (json_string_value (json_object_get (third, "kind")), "command");
    assert_string_equal (json_string_value (json_object_get (third, "language")), "");
    assert_string_equal (json_string_value (json_object_get (third, "summary")),
                         "ok???\tline\nnext ??");
    json_t *second = json_array_get (items, 2);
    assert_int_equal (json_string_length (json_object_get (second, "summary")), 1023);
    assert_int_equal (json_integer_value (json_object_get (second, "exitCode")), 3);
    assert_string_equal (json_string_value (json_object_get (second, "transport")), "ws");
    assert_int_equal (json_string_length (json_object_get (oldest, "summary")), 1024);
    assert_string_equal (json_string_value (json_object_get (oldest, "executionId")), "exe-1");
    assert_string_equal (json_string_value (json_object_get (oldest, "sandboxId")), "sb-audit");
    assert_string_equal (json_string_value (json_object_get (oldest, "userId")), alice.id);
    assert_string_equal (json_string_value (json_object_get (oldest, "startedAt")),
                         "2026-09-21T14:13:20.000Z");
    assert_string_equal (json_string_value (json_object_get (oldest, "completedAt")),
                         "2026-09-21T14:13:20.250Z");
    assert_int_equal (json_integer_value (json_object_get (oldest, "durationMs")), 250);
    assert_int_equal (json_integer_value (json_object_get (oldest, "stdoutBytes")), 12);
    assert_int_equal (json_integer_value (json_object_get (oldest, "stderrBytes")), 3);
    json_decref (items);
    assert_int_equal (api_db_exec_list (db, "sb-audit", 2, 3, &items, &total), API_DB_OK);
    assert_int_equal (json_array_size (items), 1);
    assert_int_equal (total, 4);
    json_decref (items);
    assert_int_equal (api_db_exec_list (db, "sb-none", 2, 0, &items, &total), API_DB_OK);
    assert_int_equal (json_array_size (items), 0);
    assert_int_equal (total, 0);
    json_decref (items);
    assert_int_equal (api_db_exec_list (db, "sb-audit", 0, 0, &items, &total), API_DB_INVALID);
    assert_null (items);

    /* refusals */
    e = s_exec ("exe-9", "sb-none", alice.id, "x", t0);
    assert_int_equal (api_db_exec_record (db, &e, err, sizeof err), API_DB_NOT_FOUND);
    e = s_exec ("exe-9", "sb-audit", alice.id, "x", t0);
    snprintf (e.kind, sizeof e.kind, "shell");
    assert_int_equal (api_db_exec_record (db, &e, err, sizeof err), API_DB_INVALID);
    e = s_exec ("exe-9", "sb-audit", alice.id, "x", t0);
    snprintf (e.status, sizeof e.status, "ok");
    assert_int_equal (api_db_exec_record (db, &e, err, sizeof err), API_DB_INVALID);
    e = s_exec ("exe-9", "sb-audit", alice.id, "x", t0);
    snprintf (e.transport, sizeof e.transport, "grpc");
    assert_int_equal (api_db_exec_record (db, &e, err, sizeof err), API_DB_INVALID);
    e = s_exec ("exe 9", "sb-audit", alice.id, "x", t0);
    assert_int_equal (api_db_exec_record (db, &e, err, sizeof err), API_DB_INVALID);
    e = s_exec ("exe-9", "sb-audit", alice.id, "x", t0);
    e.stdout_bytes = -1;
    assert_int_equal (api_db_exec_record (db, &e, err, sizeof err), API_DB_INVALID);
    assert_int_equal (api_db_exec_record (db, NULL, err, sizeof err), API_DB_INVALID);
    /* executions go with their sandbox */
    assert_int_equal (api_db_sandbox_delete (db, "sb-audit"), API_DB_OK);
    assert_int_equal (api_db_exec_list (db, "sb-audit", 10, 0, &items, &total), API_DB_OK);
    assert_int_equal (total, 0);
    json_decref (items);
    free (big);
    api_db_destroy (&db);
}

/* ------------------------------------------------------------------ warm pools, permissions */

static void test_warmpools (void **state)
{
    (void)state;
    api_db_t *db = s_fresh ();
    api_user_t alice = s_user (db, "alice", "admin");
    char err[256] = "", owner[API_ID_SIZE] = "x";
    assert_int_equal (
        api_db_warmpool_insert (db, "default", "python-pool", alice.id, err, sizeof err),
        API_DB_OK);
    assert_int_equal (api_db_warmpool_owner (db, "default", "python-pool", owner), API_DB_OK);
    assert_string_equal (owner, alice.id);
    assert_int_equal (
        api_db_warmpool_insert (db, "default", "python-pool", alice.id, err, sizeof err),
        API_DB_CONFLICT);
    assert_int_equal (
        api_db_warmpool_insert (db, "other", "python-pool", alice.id, err, sizeof err),
        API_DB_OK);
    assert_int_equal (api_db_warmpool_insert (db, "Default", "p", alice.id, err, sizeof err),
                      API_DB_INVALID);
    assert_int_equal (api_db_warmpool_insert (db, "default", "p_1", alice.id, err, sizeof err),
                      API_DB_INVALID);
    assert_int_equal (api_db_warmpool_insert (db, "default", "p", "usr-none", err, sizeof err),
                      API_DB_NOT_FOUND);
    assert_int_equal (api_db_warmpool_delete (db, "default", "python-pool"), API_DB_OK);
    assert_int_equal (api_db_warmpool_owner (db, "default", "python-pool", owner),
                      API_DB_NOT_FOUND);
    assert_string_equal (owner, "");
    assert_int_equal (api_db_warmpool_delete (db, "default", "python-pool"), API_DB_NOT_FOUND);
    assert_int_equal (api_db_warmpool_owner (db, "other", "python-pool", owner), API_DB_OK);
    assert_int_equal (api_db_warmpool_owner (db, "", "", owner), API_DB_NOT_FOUND);
    api_db_destroy (&db);
}

static void test_permissions (void **state)
{
    (void)state;
    api_db_t *db = s_fresh ();
    api_user_t alice = s_user (db, "alice", "user"), bob = s_user (db, "bob", "admin");
    assert_int_equal (api_db_perm_check (db, alice.id, "sandbox", "sb-1", "execute"), 0);
    assert_int_equal (api_db_perm_grant (db, alice.id, "sandbox", "sb-1", "execute", bob.id),
                      API_DB_OK);
    assert_int_equal (api_db_perm_grant (db, alice.id, "sandbox", "sb-1", "execute", bob.id),
                      API_DB_OK); /* twice is fine */
    assert_int_equal (api_db_perm_check (db, alice.id, "sandbox", "sb-1", "execute"), 1);
    assert_int_equal (api_db_perm_check (db, alice.id, "sandbox", "sb-1", "read"), 0);
    assert_int_equal (api_db_perm_check (db, alice.id, "sandbox", "sb-2", "execute"), 0);
    assert_int_equal (api_db_perm_check (db, alice.id, "warmpool", "sb-1", "execute"), 0);
    assert_int_equal (api_db_perm_check (db, bob.id, "sandbox", "sb-1", "execute"), 0);
    const char *actions[] = {"read", "write", "execute", "connect", "delete", "update"};
    for (int i = 0; i < 6; i++)
        assert_int_equal (
            api_db_perm_grant (db, bob.id, "warmpool", "default/pool", actions[i], bob.id),
            API_DB_OK);
    assert_int_equal (api_db_perm_check (db, bob.id, "warmpool", "default/pool", "update"), 1);
    /* bad arguments */
    assert_int_equal (api_db_perm_grant (db, alice.id, "sandbox", "sb-1", "admin", bob.id),
                      API_DB_INVALID);
    assert_int_equal (api_db_perm_grant (db, alice.id, "sandbox", "sb-1", "READ", bob.id),
                      API_DB_INVALID);
    assert_int_equal (api_db_perm_grant (db, alice.id, "pod", "sb-1", "read", bob.id),
                      API_DB_INVALID);
    assert_int_equal (api_db_perm_grant (db, alice.id, "sandbox", "", "read", bob.id),
                      API_DB_INVALID);
    assert_int_equal (api_db_perm_grant (db, alice.id, "sandbox", "sb-1", "read", NULL),
                      API_DB_INVALID);
    assert_int_equal (api_db_perm_check (db, alice.id, "sandbox", "sb-1", "admin"),
                      API_DB_INVALID);
    assert_int_equal (api_db_perm_grant (db, "usr-none", "sandbox", "sb-1", "read", bob.id),
                      API_DB_NOT_FOUND);
    /* revoke */
    assert_int_equal (api_db_perm_revoke (db, alice.id, "sandbox", "sb-1", "execute"),
                      API_DB_OK);
    assert_int_equal (api_db_perm_check (db, alice.id, "sandbox", "sb-1", "execute"), 0);
    assert_int_equal (api_db_perm_revoke (db, alice.id, "sandbox", "sb-1", "execute"),
                      API_DB_NOT_FOUND);
    assert_int_equal (api_db_perm_revoke (db, alice.id, "sandbox", "sb-1", "fly"),
                      API_DB_INVALID);
    api_db_destroy (&db);
}

static void test_revoked_jtis (void **state)
{
    (void)state;
    api_db_t *db = s_fresh ();
    int64_t t = INT64_C (1790000000000);
    assert_int_equal (api_db_jti_revoked (db, "j-1"), 0);
    assert_int_equal (api_db_jti_revoke (db, "j-1", t + 60000), API_DB_OK);
    assert_int_equal (api_db_jti_revoked (db, "j-1"), 1);
    assert_int_equal (api_db_jti_revoked (db, "j-2"), 0);
    assert_int_equal (api_db_jti_revoke (db, "j-1", t + 1000), API_DB_OK); /* keeps the later */
    assert_int_equal (api_db_jti_revoke (db, "j-2", t + 1000), API_DB_OK);
    assert_int_equal (api_db_jti_purge (db, t + 30000), API_DB_OK);
    assert_int_equal (api_db_jti_revoked (db, "j-1"), 1);
    assert_int_equal (api_db_jti_revoked (db, "j-2"), 0);
    assert_int_equal (api_db_jti_purge (db, t + 60001), API_DB_OK);
    assert_int_equal (api_db_jti_revoked (db, "j-1"), 0);
    assert_int_equal (api_db_jti_revoke (db, "", t), API_DB_INVALID);
    assert_int_equal (api_db_jti_revoke (db, "j", 0), API_DB_INVALID);
    assert_int_equal (api_db_jti_revoke (db, "j\x01", t), API_DB_INVALID);
    assert_int_equal (api_db_jti_revoked (db, ""), 0);
    assert_int_equal (api_db_jti_revoked (db, NULL), 0);
    assert_int_equal (api_db_jti_purge (db, 0), API_DB_INVALID);
    api_db_destroy (&db);
}

/* ------------------------------------------------------------------ hostile input */

static void test_injection_shaped_input_verbatim (void **state)
{
    (void)state;
    api_db_t *db = s_fresh ();
    char err[256] = "";
    api_user_t u;
    assert_int_equal (api_db_user_create (db, "x'; DROP TABLE api_users; --", "", "user", &u,
                                          err, sizeof err),
                      API_DB_INVALID);
    assert_int_equal (api_db_user_create (db, "eve", "e'--@x.org", "user", &u, err, sizeof err),
                      API_DB_OK);
    assert_string_equal (u.email, "e'--@x.org");
    const char *name = "'; DROP TABLE api_keys; -- $1 $$ \\x00 \"";
    api_key_t k = s_key (db, u.id, name, 0, NULL);
    api_key_t items[2];
    int n = 0;
    int64_t total = 0;
    assert_int_equal (api_db_key_list (db, u.id, 2, 0, items, &n, &total), API_DB_OK);
    assert_int_equal (n, 1);
    assert_string_equal (items[0].name, name);
    assert_string_equal (items[0].id, k.id);
    api_sandbox_row_t sb = s_sb ("sb-inj", u.id, 0);
    snprintf (sb.runtime, sizeof sb.runtime, "python'); DELETE FROM api_sandboxes; --");
    assert_int_equal (api_db_sandbox_insert (db, &sb, err, sizeof err), API_DB_OK);
    api_sandbox_row_t got;
    assert_int_equal (api_db_sandbox_get (db, "sb-inj", &got), API_DB_OK);
    assert_string_equal (got.runtime, "python'); DELETE FROM api_sandboxes; --");
    const char *summary = "print(1)'); TRUNCATE api_executions; --";
    api_exec_row_t e = s_exec ("exe-'--", "sb-inj", u.id, summary, 0);
    assert_int_equal (api_db_exec_record (db, &e, err, sizeof err), API_DB_OK);
    json_t *list = NULL;
    assert_int_equal (api_db_exec_list (db, "sb-inj", 10, 0, &list, &total), API_DB_OK);
    assert_string_equal (
        json_string_value (json_object_get (json_array_get (list, 0), "summary")), summary);
    assert_string_equal (
        json_string_value (json_object_get (json_array_get (list, 0), "executionId")),
        "exe-'--");
    assert_true (json_is_null (json_object_get (json_array_get (list, 0), "startedAt")));
    json_decref (list);
    assert_int_equal (api_db_perm_grant (db, u.id, "sandbox", "x' OR '1'='1", "read", u.id),
                      API_DB_OK);
    assert_int_equal (api_db_perm_check (db, u.id, "sandbox", "x' OR '1'='1", "read"), 1);
    assert_int_equal (api_db_perm_check (db, u.id, "sandbox", "y' OR '1'='1", "read"), 0);
    assert_int_equal (api_db_jti_revoke (db, "' OR 1=1 --", INT64_C (1790000000000)),
                      API_DB_OK);
    assert_int_equal (api_db_jti_revoked (db, "' OR 1=1 --"), 1);
    assert_int_equal (api_db_jti_revoked (db, "' OR 1=2 --"), 0);
    char v[64];
    s_sql1 ("SELECT count(*) FROM api_users", v, sizeof v);
    assert_string_equal (v, "1");
    api_db_destroy (&db);
}

/* ------------------------------------------------------------------ outage */

static void test_server_goes_away (void **state)
{
    (void)state;
    api_db_t *db = s_fresh ();
    api_user_t alice = s_user (db, "alice", "user");
    char hash[API_HASH_HEX_SIZE], err[256] = "";
    assert_int_equal (api_sha256_hex ("x", hash), 0);
    assert_int_equal (api_db_ping (db), API_DB_OK);
    assert_int_equal (s_pg_down (), 0);
    api_user_t got;
    api_key_t key;
    int64_t count;
    for (int i = 0; i < 3; i++) {
        long long t0 = tp_now_ms ();
        assert_int_equal (api_db_ping (db), API_DB_UNAVAILABLE);
        assert_int_equal (api_db_user_get (db, alice.id, &got), API_DB_UNAVAILABLE);
        assert_int_equal (api_db_key_lookup (db, hash, &key, NULL), API_DB_UNAVAILABLE);
        assert_int_equal (api_db_sandbox_count_active (db, alice.id, &count),
                          API_DB_UNAVAILABLE);
        assert_int_equal (api_db_admin_exists (db), API_DB_UNAVAILABLE);
        assert_int_equal (api_db_migrate (db, err, sizeof err), API_DB_UNAVAILABLE);
        assert_true (tp_now_ms () - t0 < S_OUTAGE_MS);
    }
    assert_null (api_db_new (s_case_dsn, err, sizeof err));
    assert_int_equal (s_pg_up (), 0);
    /* the next call connects again */
    if (api_db_migrate (db, err, sizeof err) != API_DB_OK)
        fail_msg ("after restart: %s", err);
    assert_int_equal (api_db_user_get (db, alice.id, &got), API_DB_OK);
    assert_string_equal (got.username, "alice");
    assert_int_equal (api_db_ping (db), API_DB_OK);
    api_db_destroy (&db);
}

/*  The number of statements prepared on db's own connection. */
static int64_t s_prepared_count (api_db_t *db)
{
    PGresult *res = NULL;
    assert_int_equal (api_dbi_query (db,
                                     "SELECT count(*) FROM pg_prepared_statements"
                                     " WHERE name LIKE 'lss_api_%'",
                                     0, NULL, &res, NULL, 0),
                      API_DB_OK);
    int64_t n = api_dbi_i64 (res, 0, 0);
    PQclear (res);
    return n;
}

static void test_statements_prepared_once (void **state)
{
    (void)state;
    api_db_t *db = s_fresh ();
    api_user_t alice = s_user (db, "alice", "user"), got;
    int64_t base = s_prepared_count (db); /* the count query itself is one of them */
    assert_true (base >= 1);
    assert_int_equal (api_db_user_get (db, alice.id, &got), API_DB_OK);
    int64_t once = s_prepared_count (db);
    assert_true (once >= base); /* user_get's statement: prepared now or by s_user */
    for (int i = 0; i < 5; i++)
        assert_int_equal (api_db_user_get (db, alice.id, &got), API_DB_OK);
    assert_int_equal (s_prepared_count (db), once); /* used again, not prepared again */
    assert_string_equal (got.username, "alice");
    /* the server forgets them (DISCARD ALL, a pooler): each is prepared again on use */
    assert_int_equal (api_dbi_query (db, "DEALLOCATE ALL", 0, NULL, NULL, NULL, 0), API_DB_OK);
    assert_int_equal (api_db_user_get (db, alice.id, &got), API_DB_OK);
    assert_string_equal (got.username, "alice");
    assert_int_equal (api_db_user_get (db, alice.id, &got), API_DB_OK);
    /* the connection is lost: the new one prepares its own */
    api_dbi_query (db, "SELECT pg_terminate_backend (pg_backend_pid ())", 0, NULL, NULL, NULL,
                   0);
    assert_int_equal (api_db_user_get (db, alice.id, &got), API_DB_OK); /* reconnected */
    assert_string_equal (got.username, "alice");
    assert_int_equal (s_prepared_count (db), 2); /* user_get's and the count's, no more */
    api_db_destroy (&db);
}

int main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_migrate_idempotent_and_coexists),
        cmocka_unit_test (test_migrate_concurrent),
        cmocka_unit_test (test_users),
        cmocka_unit_test (test_keys_lookup_and_revoke),
        cmocka_unit_test (test_keys_list_pagination),
        cmocka_unit_test (test_sandboxes),
        cmocka_unit_test (test_exec_audit),
        cmocka_unit_test (test_warmpools),
        cmocka_unit_test (test_permissions),
        cmocka_unit_test (test_revoked_jtis),
        cmocka_unit_test (test_injection_shaped_input_verbatim),
        cmocka_unit_test (test_server_goes_away),
        cmocka_unit_test (test_statements_prepared_once),
    };
    if (getenv ("TEST_FILTER"))
        cmocka_set_test_filter (getenv ("TEST_FILTER"));
    return cmocka_run_group_tests (tests, s_group_setup, s_group_teardown);
}
