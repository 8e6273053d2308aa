/*  Unit tests for api_rlease (rate-limit blocks spent in-process) and api_keycache (API
 *  keys cached in memory, emptied when the Redis revocation counter moves), against a
 *  real private Redis (scripts/redis-tmp) where Redis is involved.
 *
 *  The rate-limit cases check that spending blocks gives exactly the numbers a
 *  per-request count in Redis would give, also with many threads taking blocks at once.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <pthread.h>
#include <string.h>
#include <unistd.h>

#include "api_keycache.h"
#include "api_mailbox.h"
#include "api_redis.h"
#include "api_rlease.h"
#include "lss_testproc.h"
#include "lss_util.h"

#include "lss_testredis.h"

#define S_TIMEOUT_MS 500
#define S_THREADS    8
#define S_PER_THREAD 200
#define S_WAIT_MS    5000

static int s_setup (void **state)
{
    (void)state;
    return s_redis_setup ();
}

static int s_teardown (void **state)
{
    (void)state;
    return s_redis_teardown ();
}

static api_redis_t *s_open (void)
{
    char err[256] = "";
    api_redis_t *r = api_redis_new (s_redis_url, S_TIMEOUT_MS, err, sizeof err);
    assert_non_null (r);
    return r;
}

/*  One request counted the way api_rate_limit does it: a block number, else a block. */
static int s_count (api_rlease_t *l, api_redis_t *r, const char *p, int64_t limit,
                    int64_t window_s, int64_t now_s, api_rl_result_t *out)
{
    bool refill;
    if (api_rlease_spend (l, "default", p, limit, window_s, now_s, out, &refill)) {
        if (refill) { /* as a worker would, at once */
            api_mailbox_t *jobs = api_mailbox_new (4, NULL, NULL);
            api_rlease_refill_post (l, jobs, "default", p, limit, window_s, now_s);
            api_msg_t *m = api_mailbox_take_all (jobs);
            if (m) {
                api_rlease_refill_run (l, r, m);
                api_msg_destroy (m);
            }
            api_mailbox_destroy (&jobs);
        }
        return 0;
    }
    int64_t take = api_rlease_block (limit), count;
    if (api_redis_rate_take (r, "default", p, take, window_s, now_s, &count))
        return -1;
    api_rlease_add (l, "default", p, limit, window_s, now_s, take, count, out);
    return 0;
}

static void test_block_sizes (void **state)
{
    (void)state;
    assert_int_equal (api_rlease_block (1), 1);
    assert_int_equal (api_rlease_block (3), 1);
    assert_int_equal (api_rlease_block (60), 1);
    assert_int_equal (api_rlease_block (1200), 6);
    assert_int_equal (api_rlease_block (6000), 30);
    assert_int_equal (api_rlease_block (7000), 35);
    assert_int_equal (api_rlease_block (204800), API_RLEASE_MAX);
    assert_int_equal (api_rlease_block (100000000), API_RLEASE_MAX);
}

/*  One process: the answers are those of a per-request count, number for number. */
static void test_exact_in_one_process (void **state)
{
    (void)state;
    api_rlease_t *l = api_rlease_new ();
    api_redis_t *r = s_open ();
    const int64_t limit = 1000, window = 60, now = 6000000; /* block of 5 */
    for (int64_t i = 1; i <= limit + 7; i++) {
        api_rl_result_t rl;
        assert_int_equal (s_count (l, r, "exact", limit, window, now + i % 50, &rl), 0);
        assert_int_equal (rl.allowed, i <= limit);
        assert_int_equal (rl.remaining, i < limit ? limit - i : 0);
        assert_int_equal (rl.limit, limit);
        assert_int_equal (rl.reset_s, now + window);
        if (i > limit)
            assert_true (rl.retry_after_s >= 1);
    }
    /* Redis saw blocks, not requests, and never more than one block past the requests */
    int64_t count;
    assert_int_equal (api_redis_rate_take (r, "default", "exact", 1, window, now, &count), 0);
    assert_in_range (count, limit + 7 + 1, limit + 7 + api_rlease_block (limit) + 1);
    /* a new window starts from 1 with a fresh block */
    api_rl_result_t rl;
    assert_int_equal (s_count (l, r, "exact", limit, window, now + window, &rl), 0);
    assert_true (rl.allowed);
    assert_int_equal (rl.remaining, limit - 1);
    api_redis_destroy (&r);
    api_rlease_destroy (&l);
}

typedef struct {
    api_rlease_t *l;
    int allowed;
    int failed;
} s_worker_t;

static void *s_spender (void *arg)
{
    s_worker_t *w = arg;
    api_redis_t *r = s_open ();
    for (int i = 0; i < S_PER_THREAD; i++) {
        api_rl_result_t rl;
        if (s_count (w->l, r, "threads", 1000, 60, 7000000, &rl) != 0)
            w->failed++;
        else if (rl.allowed)
            w->allowed++;
    }
    api_redis_destroy (&r);
    return NULL;
}

/*  Threads sharing the blocks (like workers and the lws thread) never allow more than
 *  the limit, and lose at most one block per race. */
static void test_threads_never_exceed (void **state)
{
    (void)state;
    api_rlease_t *l = api_rlease_new ();
    pthread_t t[S_THREADS];
    s_worker_t w[S_THREADS];
    memset (w, 0, sizeof w);
    for (int i = 0; i < S_THREADS; i++) {
        w[i].l = l;
        assert_int_equal (pthread_create (&t[i], NULL, s_spender, &w[i]), 0);
    }
    int allowed = 0;
    for (int i = 0; i < S_THREADS; i++) {
        pthread_join (t[i], NULL);
        assert_int_equal (w[i].failed, 0);
        allowed += w[i].allowed;
    }
    /* 1600 requests against 1000: exactly 1000 unless two threads took blocks at once
     * (the older block's unspent numbers are then lost, never reused) */
    assert_in_range (allowed, 1000 - S_THREADS * api_rlease_block (1000), 1000);
    api_rlease_destroy (&l);
}

static void test_spend_without_block (void **state)
{
    (void)state;
    api_rlease_t *l = api_rlease_new ();
    api_rl_result_t rl;
    bool refill;
    assert_int_equal (api_rlease_spend (l, "default", "none", 100, 60, 100, &rl, &refill), 0);
    /* a block of one is never kept: small limits are counted in Redis every time */
    api_rlease_add (l, "default", "small", 60, 60, 100, 1, 1, &rl);
    assert_true (rl.allowed);
    assert_int_equal (rl.remaining, 59);
    assert_int_equal (api_rlease_spend (l, "default", "small", 60, 60, 100, &rl, &refill), 0);
    /* a block of an ended window is not spent */
    api_rlease_add (l, "default", "old", 6000, 60, 100, 32, 32, &rl);
    assert_int_equal (rl.remaining, 5999);
    assert_int_equal (api_rlease_spend (l, "default", "old", 6000, 60, 100, &rl, &refill), 1);
    assert_int_equal (rl.remaining, 5998);
    assert_int_equal (api_rlease_spend (l, "default", "old", 6000, 60, 120, &rl, &refill), 0);
    api_rlease_destroy (&l);
}

/*  A half-spent block asks for the next one once; the reserve is spent after the
 *  current block, in order, and a full mailbox withdraws the request. */
static void test_refill_ahead (void **state)
{
    (void)state;
    api_rlease_t *l = api_rlease_new ();
    api_redis_t *r = s_open ();
    api_mailbox_t *jobs = api_mailbox_new (1, NULL, NULL);
    const int64_t limit = 10000, window = 60,
                  now = 8000000; /* blocks of 32 here, refills of 50 */
    api_rl_result_t rl;
    bool refill;
    int64_t count;
    assert_int_equal (api_redis_rate_take (r, "default", "ahead", 32, window, now, &count), 0);
    assert_int_equal (count, 32);
    api_rlease_add (l, "default", "ahead", limit, window, now, 32, count, &rl);
    assert_int_equal (rl.remaining, limit - 1);
    int asked = 0;
    for (int i = 2; i <= 32; i++) {
        assert_int_equal (
            api_rlease_spend (l, "default", "ahead", limit, window, now, &rl, &refill), 1);
        assert_int_equal (rl.remaining, limit - i);
        if (refill) {
            asked++;
            assert_int_equal (i, 16); /* half of 32 left */
            api_rlease_refill_post (l, jobs, "default", "ahead", limit, window, now);
        }
    }
    assert_int_equal (asked, 1);
    /* another number meanwhile: someone else took 33..40 */
    assert_int_equal (api_redis_rate_take (r, "default", "ahead", 8, window, now, &count), 0);
    api_msg_t *m = api_mailbox_take_all (jobs);
    assert_non_null (m);
    assert_null (m->next);
    api_rlease_refill_run (l, r, m); /* 41..90 in reserve */
    api_msg_destroy (m);
    assert_int_equal (
        api_rlease_spend (l, "default", "ahead", limit, window, now, &rl, &refill), 1);
    assert_int_equal (rl.remaining, limit - 41);
    /* a refill that cannot be posted is withdrawn and asked for again */
    api_mailbox_t *full = api_mailbox_new (1, NULL, NULL);
    api_msg_t *filler = calloc (1, sizeof *filler);
    assert_int_equal (api_mailbox_post (full, filler), 0);
    asked = 0;
    for (int i = 0; i < 31; i++) {
        assert_int_equal (
            api_rlease_spend (l, "default", "ahead", limit, window, now, &rl, &refill), 1);
        if (refill) {
            asked++;
            api_rlease_refill_post (l, full, "default", "ahead", limit, window, now);
        }
    }
    assert_true (asked >= 2);
    api_mailbox_destroy (&full);
    api_mailbox_destroy (&jobs);
    api_redis_destroy (&r);
    api_rlease_destroy (&l);
}

/* ------------------------------------------------------------------ key cache */

static const char s_hash[] = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

static api_principal_t s_who (const char *user)
{
    api_principal_t who;
    memset (&who, 0, sizeof who);
    snprintf (who.user_id, sizeof who.user_id, "%s", user);
    snprintf (who.principal, sizeof who.principal, "key-%s", user);
    return who;
}

static void test_keycache_local (void **state)
{
    (void)state;
    api_keycache_t *c = api_keycache_new ();
    api_principal_t who = s_who ("u1"), got;
    /* off until enabled (before the first sync) */
    api_keycache_put (c, api_keycache_generation (c), s_hash, &who, 2000);
    assert_int_equal (api_keycache_get (c, s_hash, 1000, &got), 0);
    api_keycache_reset (c, true);
    uint64_t g = api_keycache_generation (c);
    api_keycache_put (c, g, s_hash, &who, 2000);
    assert_int_equal (api_keycache_get (c, s_hash, 1000, &got), 1);
    assert_string_equal (got.user_id, "u1");
    assert_string_equal (got.principal, "key-u1");
    /* expiry */
    assert_int_equal (api_keycache_get (c, s_hash, 2000, &got), 0);
    /* a lookup that began before a forget cannot put its result back */
    g = api_keycache_generation (c);
    api_keycache_forget (c, s_hash);
    api_keycache_put (c, g, s_hash, &who, 5000);
    assert_int_equal (api_keycache_get (c, s_hash, 1000, &got), 0);
    api_keycache_put (c, api_keycache_generation (c), s_hash, &who, 5000);
    assert_int_equal (api_keycache_get (c, s_hash, 1000, &got), 1);
    api_keycache_forget (c, s_hash);
    assert_int_equal (api_keycache_get (c, s_hash, 1000, &got), 0);
    /* malformed hashes are not stored */
    api_keycache_put (c, api_keycache_generation (c), "abc", &who, 5000);
    assert_int_equal (api_keycache_get (c, "abc", 1000, &got), 0);
    api_keycache_destroy (&c);
}

/*  Waits until a put sticks (the sync thread has read the counter) or the deadline. */
static bool s_wait_enabled (api_keycache_t *c, const api_principal_t *who)
{
    api_principal_t got;
    for (int i = 0; i < S_WAIT_MS / 10; i++) {
        api_keycache_put (c, api_keycache_generation (c), s_hash, who, INT64_MAX);
        if (api_keycache_get (c, s_hash, 1, &got))
            return true;
        usleep (10 * 1000);
    }
    return false;
}

static bool s_wait_gone (api_keycache_t *c)
{
    api_principal_t got;
    for (int i = 0; i < S_WAIT_MS / 10; i++) {
        if (!api_keycache_get (c, s_hash, 1, &got))
            return true;
        usleep (10 * 1000);
    }
    return false;
}

/*  Another replica's revocation (the counter moves) empties this cache. */
static void test_keycache_sync (void **state)
{
    (void)state;
    api_keycache_t *c = api_keycache_new ();
    assert_int_equal (api_keycache_sync_start (c, s_redis_url, S_TIMEOUT_MS), 0);
    api_principal_t who = s_who ("u2");
    assert_true (s_wait_enabled (c, &who));
    api_redis_t *r = s_open ();
    assert_int_equal (api_redis_counter_incr (r, API_KEYCACHE_EPOCH_KEY), 0);
    int64_t epoch = 0;
    assert_int_equal (api_redis_counter_get (r, API_KEYCACHE_EPOCH_KEY, &epoch), 0);
    assert_true (epoch >= 1);
    assert_true (s_wait_gone (c));
    /* Redis down: the cache goes off (and empty), and comes back with Redis */
    assert_true (s_wait_enabled (c, &who));
    assert_int_equal (s_redis_down (), 0);
    assert_true (s_wait_gone (c));
    api_principal_t got;
    api_keycache_put (c, api_keycache_generation (c), s_hash, &who, INT64_MAX);
    assert_int_equal (api_keycache_get (c, s_hash, 1, &got), 0);
    assert_int_equal (s_redis_up (), 0);
    assert_true (s_wait_enabled (c, &who));
    api_redis_destroy (&r);
    api_keycache_destroy (&c);
}

static void test_counter_bad_keys (void **state)
{
    (void)state;
    api_redis_t *r = s_open ();
    int64_t v;
    assert_int_equal (api_redis_counter_get (r, "other:key", &v), -1);
    assert_int_equal (api_redis_counter_incr (r, NULL), -1);
    assert_int_equal (api_redis_counter_get (r, "lss:absent", &v), 0);
    assert_int_equal (v, 0);
    int64_t count;
    assert_int_equal (api_redis_rate_take (r, "default", "p", 0, 60, 1, &count), -1);
    assert_int_equal (
        api_redis_rate_take (r, "default", "p", API_REDIS_TAKE_MAX + 1, 60, 1, &count), -1);
    api_redis_destroy (&r);
}

int main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_block_sizes),
        cmocka_unit_test (test_exact_in_one_process),
        cmocka_unit_test (test_threads_never_exceed),
        cmocka_unit_test (test_spend_without_block),
        cmocka_unit_test (test_refill_ahead),
        cmocka_unit_test (test_keycache_local),
        cmocka_unit_test (test_keycache_sync),
        cmocka_unit_test (test_counter_bad_keys),
    };
    return cmocka_run_group_tests (tests, s_setup, s_teardown);
}
