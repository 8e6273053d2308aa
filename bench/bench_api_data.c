/*  bench_api_data — the per-request cost of the api's data layer: HS256 verify, API-key
 *  hash, a rate-limit check and a cache read in Redis (TCP and unix socket), an API-key
 *  lookup and a sandbox list page in PostgreSQL. Starts a throw-away PostgreSQL and
 *  Redis; prints JSON (p50/p99 in ms, or operations per second for pure CPU work). */
#include <stdio.h>
#include <stdlib.h>

#include "../tests/unit/lss_testproc.h"
#include "../tests/unit/lss_testpg.h"
#include "../tests/unit/lss_testredis.h"
#include "api_auth.h"
#include "api_db.h"
#include "api_redis.h"
#include "lss_log.h"
#include "lss_util.h"

#define N_CPU       20000
#define N_IO        2000
#define N_WARMUP    50
#define N_SANDBOXES 1000
#define S_SECRET    "0123456789abcdef0123456789abcdef"

static int s_cmp (const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double s_pct (double *v, int n, double p)
{
    qsort (v, (size_t)n, sizeof *v, s_cmp);
    return v[(int)(p * (n - 1))];
}

static json_t *s_lat (double *v, int n)
{
    double p50 = s_pct (v, n, 0.50), p99 = s_pct (v, n, 0.99);
    return json_pack ("{s:f, s:f}", "p50", p50, "p99", p99);
}

#define S_FAIL(step)                                                                           \
    do {                                                                                       \
        fprintf (stderr, "bench_api_data: step %d failed\n", (step));                          \
        goto cleanup;                                                                          \
    } while (0)

typedef int (*s_op_fn) (void *arg, int i);

/*  Runs op N_WARMUP + n times; fills ms[n] with the timed ones. Returns 0 or -1. */
static int s_time (s_op_fn op, void *arg, double *ms, int n)
{
    for (int i = -N_WARMUP; i < n; i++) {
        int64_t t0 = lss_time_mono_ns ();
        if (op (arg, i) != 0)
            return -1;
        if (i >= 0)
            ms[i] = (double)(lss_time_mono_ns () - t0) / 1e6;
    }
    return 0;
}

static int s_rl_op (void *arg, int i)
{
    (void)i;
    api_rl_result_t out;
    return api_redis_rate_limit (arg, "default", "key-bench", 1000000000, 60, 600, &out);
}

static int s_cache_op (void *arg, int i)
{
    (void)i;
    char *v = NULL;
    int rc = api_redis_cache_get (arg, "bench", &v);
    free (v);
    return rc == 1 ? 0 : -1;
}

typedef struct {
    api_db_t *db;
    const char *hash, *user_id;
    api_sandbox_row_t *rows;
} s_db_arg_t;

static int s_lookup_op (void *arg, int i)
{
    (void)i;
    s_db_arg_t *a = arg;
    api_key_t k;
    api_user_t u;
    return api_db_key_lookup (a->db, a->hash, &k, &u);
}

static int s_list_op (void *arg, int i)
{
    s_db_arg_t *a = arg;
    int n = 0;
    int64_t total = 0;
    int rc = api_db_sandbox_list (a->db, a->user_id, 10, ((i + N_WARMUP) % 50) * 10, a->rows,
                                  &n, &total);
    return rc == API_DB_OK && n == 10 && total == N_SANDBOXES ? 0 : -1;
}

int main (void)
{
    static double ms[N_IO];
    int rc = 1;
    char err[256] = "";
    api_db_t *db = NULL;
    api_redis_t *tcp = NULL, *unx = NULL;
    json_t *out = json_object ();
    char *token = NULL;
    lss_log_init ("bench", LSS_LOG_WARN);
    if (s_group_setup (NULL) != 0)
        return 1;
    if (s_redis_setup () != 0)
        S_FAIL (1);

    /* CPU: JWT verify, key hash */
    json_t *claims = json_pack ("{s:s, s:I, s:I}", "sub", "usr-bench", "iat",
                                (json_int_t)1700000000, "exp", (json_int_t)4000000000);
    if (api_jwt_sign (S_SECRET, strlen (S_SECRET), claims, &token, err, sizeof err) != 0)
        S_FAIL (2);
    json_decref (claims);
    int64_t t0 = lss_time_mono_ns ();
    for (int i = 0; i < N_CPU; i++) {
        json_t *c = NULL;
        if (api_jwt_verify (S_SECRET, strlen (S_SECRET), token, 1700000100, &c, err,
                            sizeof err) != 0)
            S_FAIL (3);
        json_decref (c);
    }
    double verify_s = (double)(lss_time_mono_ns () - t0) / 1e9;
    char key[API_KEY_SIZE], hash[API_HASH_HEX_SIZE];
    api_key_generate (key);
    t0 = lss_time_mono_ns ();
    for (int i = 0; i < N_CPU; i++)
        api_sha256_hex (key, hash);
    double hash_s = (double)(lss_time_mono_ns () - t0) / 1e9;
    json_object_set_new (out, "jwt_verify_per_s", json_real (N_CPU / verify_s));
    json_object_set_new (out, "key_hash_per_s", json_real (N_CPU / hash_s));

    /* Redis */
    tcp = api_redis_new (s_redis_url, 1000, err, sizeof err);
    unx = api_redis_new (s_redis_unix_url, 1000, err, sizeof err);
    if (!tcp || !unx || api_redis_cache_set (tcp, "bench", "{\"id\":\"usr-bench\"}", 600000))
        S_FAIL (4);
    if (s_time (s_rl_op, tcp, ms, N_IO))
        S_FAIL (5);
    json_object_set_new (out, "rate_limit_tcp_ms", s_lat (ms, N_IO));
    double rl_p99 = s_pct (ms, N_IO, 0.99);
    if (s_time (s_rl_op, unx, ms, N_IO))
        S_FAIL (6);
    json_object_set_new (out, "rate_limit_unix_ms", s_lat (ms, N_IO));
    if (s_time (s_cache_op, tcp, ms, N_IO))
        S_FAIL (7);
    json_object_set_new (out, "cache_get_tcp_ms", s_lat (ms, N_IO));

    /* PostgreSQL */
    db = api_db_new (s_dsn, err, sizeof err);
    if (!db || api_db_migrate (db, err, sizeof err) != API_DB_OK)
        S_FAIL (8);
    api_user_t u;
    api_key_t k;
    char prefix[API_KEY_SHOWN_LEN + 1];
    snprintf (prefix, sizeof prefix, "%.*s", API_KEY_SHOWN_LEN, key);
    if (api_db_user_create (db, "bench", "", "user", &u, err, sizeof err) ||
        api_db_key_create (db, u.id, "bench", 0, hash, prefix, &k, err, sizeof err))
        S_FAIL (9);
    for (int i = 0; i < N_SANDBOXES; i++) {
        api_sandbox_row_t r = {.warm = false};
        snprintf (r.id, sizeof r.id, "sb-bench-%04d", i);
        snprintf (r.user_id, sizeof r.user_id, "%s", u.id);
        snprintf (r.ns, sizeof r.ns, "default");
        snprintf (r.runtime, sizeof r.runtime, "python:3.11");
        snprintf (r.security_level, sizeof r.security_level, "standard");
        snprintf (r.status, sizeof r.status, "running");
        r.created_ms = INT64_C (1790000000000) + i;
        if (api_db_sandbox_insert (db, &r, err, sizeof err))
            S_FAIL (10);
    }
    api_sandbox_row_t rows[10];
    s_db_arg_t a = {db, hash, u.id, rows};
    if (s_time (s_lookup_op, &a, ms, N_IO))
        S_FAIL (11);
    json_object_set_new (out, "key_lookup_ms", s_lat (ms, N_IO));
    double lookup_p99 = s_pct (ms, N_IO, 0.99);
    if (s_time (s_list_op, &a, ms, N_IO))
        S_FAIL (12);
    json_object_set_new (out, "sandbox_list_page_ms", s_lat (ms, N_IO));
    json_object_set_new (out, "runs", json_integer (N_IO));
    json_object_set_new (out, "target",
                         json_string ("rate limit p99 < 2 ms and key lookup p99 < 5 ms "
                                      "on loopback"));
    json_object_set_new (out, "target_met", json_boolean (rl_p99 < 2.0 && lookup_p99 < 5.0));
    char *text = json_dumps (out, JSON_COMPACT | JSON_REAL_PRECISION (6));
    if (text)
        printf ("%s\n", text);
    free (text);
    rc = 0;
cleanup:
    if (rc)
        fprintf (stderr, "bench_api_data failed: %s\n", err);
    json_decref (out);
    free (token);
    api_db_destroy (&db);
    api_redis_destroy (&tcp);
    api_redis_destroy (&unx);
    s_redis_teardown ();
    s_group_teardown (NULL);
    return rc;
}
