/*  lss_workqueue: dedupe, one worker per key, dirty re-queue, backoff doubling and cap,
 *  forget on done, delayed adds, lease expiry of silent workers, bounds. Time is passed
 *  in, so every rule is checked exactly, without sleeping. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "lss_workqueue.h"

static lss_workqueue_t *s_new (size_t max_keys)
{
    lss_workqueue_opts_t o;
    lss_workqueue_opts_default (&o);
    o.max_keys = max_keys;
    o.backoff_base_ms = 5;
    o.backoff_max_ms = 1000;
    o.lease_ms = 100;
    return lss_workqueue_new (&o);
}

static void test_dedupe_and_fifo (void **state)
{
    (void)state;
    lss_workqueue_t *q = s_new (100);
    char key[LSS_WORKQUEUE_KEY_MAX + 1];
    assert_int_equal (lss_workqueue_add (q, "a", 0), 0);
    assert_int_equal (lss_workqueue_add (q, "b", 0), 0);
    assert_int_equal (lss_workqueue_add (q, "a", 0), 0);
    assert_int_equal (lss_workqueue_queued (q), 2);
    assert_int_equal (lss_workqueue_get (q, "w1", 0, key, sizeof key), 1);
    assert_string_equal (key, "a");
    assert_int_equal (lss_workqueue_get (q, "w2", 0, key, sizeof key), 1);
    assert_string_equal (key, "b");
    assert_int_equal (lss_workqueue_get (q, "w3", 0, key, sizeof key), 0);
    assert_int_equal (lss_workqueue_active (q), 2);
    assert_int_equal (lss_workqueue_done (q, "a", "w1", 1), 0);
    assert_int_equal (lss_workqueue_done (q, "b", "w2", 1), 0);
    assert_int_equal (
        lss_workqueue_active (q) + lss_workqueue_queued (q) + lss_workqueue_waiting (q), 0);
    lss_workqueue_destroy (&q);
    assert_null (q);
}

static void test_never_two_workers (void **state)
{
    (void)state;
    lss_workqueue_t *q = s_new (100);
    char key[LSS_WORKQUEUE_KEY_MAX + 1];
    lss_workqueue_add (q, "k", 0);
    assert_int_equal (lss_workqueue_get (q, "w1", 0, key, sizeof key), 1);
    /* added again while worked on: not handed out, but remembered */
    assert_int_equal (lss_workqueue_add (q, "k", 1), 0);
    assert_int_equal (lss_workqueue_add (q, "k", 2), 0);
    assert_int_equal (lss_workqueue_get (q, "w2", 2, key, sizeof key), 0);
    /* only the holder may finish it */
    assert_int_equal (lss_workqueue_done (q, "k", "w2", 3), -1);
    assert_int_equal (lss_workqueue_error (q, "k", "w2", 3), -1);
    assert_int_equal (lss_workqueue_done (q, "k", "w1", 3), 0);
    /* dirty: back in the queue exactly once */
    assert_int_equal (lss_workqueue_queued (q), 1);
    assert_int_equal (lss_workqueue_get (q, "w2", 4, key, sizeof key), 1);
    assert_string_equal (key, "k");
    assert_int_equal (lss_workqueue_done (q, "k", "w2", 5), 0);
    assert_int_equal (lss_workqueue_queued (q), 0);
    lss_workqueue_destroy (&q);
}

static void test_backoff_doubles_caps_and_forgets (void **state)
{
    (void)state;
    lss_workqueue_t *q = s_new (100);
    char key[LSS_WORKQUEUE_KEY_MAX + 1];
    int64_t now = 1000, want = 5;
    lss_workqueue_add (q, "k", now);
    for (int i = 1; i <= 12; i++) {
        assert_int_equal (lss_workqueue_get (q, "w", now, key, sizeof key), 1);
        int64_t delay = lss_workqueue_error (q, "k", "w", now);
        assert_int_equal (delay, want);
        assert_int_equal (lss_workqueue_failures (q, "k"), i);
        /* not before its time */
        assert_int_equal (lss_workqueue_tick (q, now + delay - 1), 1);
        assert_int_equal (lss_workqueue_queued (q), 0);
        now += delay;
        lss_workqueue_tick (q, now);
        assert_int_equal (lss_workqueue_queued (q), 1);
        want = want * 2 > 1000 ? 1000 : want * 2;
    }
    assert_int_equal (lss_workqueue_get (q, "w", now, key, sizeof key), 1);
    assert_int_equal (lss_workqueue_done (q, "k", "w", now), 0);
    assert_int_equal (lss_workqueue_failures (q, "k"), 0);
    /* after done the next failure starts from the base again */
    lss_workqueue_add (q, "k", now);
    assert_int_equal (lss_workqueue_get (q, "w", now, key, sizeof key), 1);
    assert_int_equal (lss_workqueue_error (q, "k", "w", now), 5);
    lss_workqueue_destroy (&q);
}

static void test_delays_and_requeue_after (void **state)
{
    (void)state;
    lss_workqueue_t *q = s_new (100);
    char key[LSS_WORKQUEUE_KEY_MAX + 1];
    assert_int_equal (lss_workqueue_add_after (q, "x", 50, 0), 0);
    assert_int_equal (lss_workqueue_add_after (q, "x", 20, 0), 0); /* the earlier wins */
    assert_int_equal (lss_workqueue_waiting (q), 1);
    assert_int_equal (lss_workqueue_tick (q, 10), 10);
    lss_workqueue_tick (q, 20);
    assert_int_equal (lss_workqueue_queued (q), 1);
    /* a plain add of a waiting key queues it now */
    lss_workqueue_add_after (q, "y", 500, 20);
    lss_workqueue_add (q, "y", 21);
    assert_int_equal (lss_workqueue_queued (q), 2);
    assert_int_equal (lss_workqueue_waiting (q), 0);
    /* requeue_after: the worker wants it back later (e.g. a sandbox's expiry) */
    assert_int_equal (lss_workqueue_get (q, "w", 30, key, sizeof key), 1);
    assert_string_equal (key, "x");
    assert_int_equal (lss_workqueue_requeue_after (q, "x", "w", 300, 30), 0);
    assert_int_equal (lss_workqueue_waiting (q), 1);
    lss_workqueue_tick (q, 329);
    assert_int_equal (lss_workqueue_queued (q), 1); /* only y */
    lss_workqueue_tick (q, 330);
    assert_int_equal (lss_workqueue_queued (q), 2);
    lss_workqueue_destroy (&q);
}

static void test_silent_worker_loses_key (void **state)
{
    (void)state;
    lss_workqueue_t *q = s_new (100);
    char key[LSS_WORKQUEUE_KEY_MAX + 1];
    lss_workqueue_add (q, "k", 0);
    lss_workqueue_add (q, "j", 0);
    assert_int_equal (lss_workqueue_get (q, "dead", 0, key, sizeof key), 1);
    assert_int_equal (lss_workqueue_get (q, "alive", 0, key, sizeof key), 1);
    assert_int_equal (lss_workqueue_touch (q, "alive", 60), 1); /* lease now ends at 160 */
    lss_workqueue_tick (q, 100);
    assert_int_equal (lss_workqueue_queued (q), 1); /* k came back; j is still held */
    assert_int_equal (lss_workqueue_active (q), 1);
    assert_int_equal (lss_workqueue_get (q, "w2", 101, key, sizeof key), 1);
    assert_string_equal (key, "k");
    /* the silent worker's late report is refused: it no longer holds the key */
    assert_int_equal (lss_workqueue_done (q, "k", "dead", 102), -1);
    assert_int_equal (lss_workqueue_done (q, "k", "w2", 102), 0);
    assert_int_equal (lss_workqueue_done (q, "j", "alive", 102), 0);
    lss_workqueue_destroy (&q);
}

static void test_bounds (void **state)
{
    (void)state;
    lss_workqueue_t *q = s_new (2);
    char key[LSS_WORKQUEUE_KEY_MAX + 1];
    assert_int_equal (lss_workqueue_add (q, "a", 0), 0);
    assert_int_equal (lss_workqueue_add (q, "b", 0), 0);
    assert_int_equal (lss_workqueue_add (q, "c", 0), -1); /* full */
    assert_int_equal (lss_workqueue_add (q, "a", 0), 0);  /* known keys still fine */
    assert_int_equal (lss_workqueue_add (q, "", 0), -1);
    char big[LSS_WORKQUEUE_KEY_MAX + 2];
    memset (big, 'k', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    assert_int_equal (lss_workqueue_add (q, big, 0), -1);
    assert_int_equal (lss_workqueue_add (q, NULL, 0), -1);
    char tiny[1];
    assert_int_equal (lss_workqueue_get (q, "w", 0, tiny, sizeof tiny), -1);
    assert_int_equal (lss_workqueue_queued (q), 2); /* nothing lost */
    assert_int_equal (lss_workqueue_get (q, "", 0, key, sizeof key), 0);
    assert_int_equal (lss_workqueue_tick (q, 0), -1); /* no timers */
    lss_workqueue_destroy (&q);
}

int main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_dedupe_and_fifo),
        cmocka_unit_test (test_never_two_workers),
        cmocka_unit_test (test_backoff_doubles_caps_and_forgets),
        cmocka_unit_test (test_delays_and_requeue_after),
        cmocka_unit_test (test_silent_worker_loses_key),
        cmocka_unit_test (test_bounds),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
