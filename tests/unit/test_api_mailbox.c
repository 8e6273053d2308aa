/*  Unit tests for the api's inter-thread plumbing: api_mailbox (bounded FIFO with a
 *  condition variable, an eventfd or a wake callback) and api_cache (resourceVersion
 *  ordering, tombstones, bounds), with real threads where it matters.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <jansson.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "api_cache.h"
#include "api_mailbox.h"
#include "lss_util.h"

typedef struct {
    api_msg_t msg;
    int value;
} s_item_t;

static atomic_int s_destroyed;

static void s_item_destroy (api_msg_t *m)
{
    atomic_fetch_add (&s_destroyed, 1);
    free (m);
}

static api_msg_t *s_item (int value)
{
    s_item_t *it = calloc (1, sizeof *it);
    assert_non_null (it);
    it->msg.type = 1;
    it->msg.destroy = s_item_destroy;
    it->value = value;
    return &it->msg;
}

static int s_value (api_msg_t *m)
{
    return ((s_item_t *)m)->value;
}

static void test_mailbox_fifo_and_bound (void **state)
{
    (void)state;
    atomic_store (&s_destroyed, 0);
    api_mailbox_t *mb = api_mailbox_new (3, NULL, NULL);
    assert_non_null (mb);
    assert_true (api_mailbox_fd (mb) >= 0);
    struct pollfd p = {.fd = api_mailbox_fd (mb), .events = POLLIN};
    assert_int_equal (poll (&p, 1, 0), 0); /* empty: not readable */
    for (int i = 0; i < 3; i++)
        assert_int_equal (api_mailbox_post (mb, s_item (i)), 0);
    api_msg_t *extra = s_item (99);
    assert_int_equal (api_mailbox_post (mb, extra), -1); /* full: caller keeps it */
    assert_int_equal (api_mailbox_post_always (mb, extra), 0);
    assert_int_equal (api_mailbox_size (mb), 4);
    assert_int_equal (poll (&p, 1, 0), 1);
    api_msg_t *list = api_mailbox_take_all (mb);
    int want[] = {0, 1, 2, 99}, n = 0;
    for (api_msg_t *m = list; m;) {
        api_msg_t *next = m->next;
        assert_true (n < 4);
        assert_int_equal (s_value (m), want[n++]);
        api_msg_destroy (m);
        m = next;
    }
    assert_int_equal (n, 4);
    assert_int_equal (poll (&p, 1, 0), 0); /* the eventfd was reset */
    assert_null (api_mailbox_take_all (mb));
    assert_int_equal (api_mailbox_wait (mb, 20) == NULL, 1); /* timeout */
    /* what is still queued at destroy is destroyed with it */
    assert_int_equal (api_mailbox_post (mb, s_item (5)), 0);
    assert_int_equal (api_mailbox_post (mb, s_item (6)), 0);
    api_mailbox_destroy (&mb);
    assert_null (mb);
    assert_int_equal (atomic_load (&s_destroyed), 6);
    api_mailbox_destroy (&mb); /* NULL-safe */
    api_msg_destroy (NULL);
}

static atomic_int s_wakes;

static void s_wake (void *arg)
{
    (void)arg;
    atomic_fetch_add (&s_wakes, 1);
}

static void test_mailbox_wake_callback (void **state)
{
    (void)state;
    atomic_store (&s_wakes, 0);
    api_mailbox_t *mb = api_mailbox_new (SIZE_MAX, s_wake, NULL);
    assert_int_equal (api_mailbox_fd (mb), -1);
    api_mailbox_post (mb, s_item (1));
    api_mailbox_post (mb, s_item (2)); /* not empty: no second wake */
    assert_int_equal (atomic_load (&s_wakes), 1);
    api_msg_t *list = api_mailbox_take_all (mb);
    while (list) {
        api_msg_t *next = list->next;
        api_msg_destroy (list);
        list = next;
    }
    api_mailbox_post (mb, s_item (3));
    assert_int_equal (atomic_load (&s_wakes), 2);
    api_mailbox_destroy (&mb);
}

typedef struct {
    api_mailbox_t *mb;
    int from, count;
} s_producer_t;

static void *s_produce (void *arg)
{
    s_producer_t *p = arg;
    for (int i = 0; i < p->count; i++) {
        api_msg_t *m = s_item (p->from + i);
        while (api_mailbox_post (p->mb, m) != 0)
            sched_yield (); /* full: the consumer catches up */
    }
    return NULL;
}

static void *s_close_later (void *arg)
{
    poll (NULL, 0, 50);
    api_mailbox_close (arg);
    return NULL;
}

static void test_mailbox_threads_and_close (void **state)
{
    (void)state;
    enum { PRODUCERS = 4, EACH = 5000 };
    api_mailbox_t *mb = api_mailbox_new (64, NULL, NULL);
    pthread_t t[PRODUCERS];
    s_producer_t p[PRODUCERS];
    for (int i = 0; i < PRODUCERS; i++) {
        p[i] = (s_producer_t){mb, i * EACH, EACH};
        assert_int_equal (pthread_create (&t[i], NULL, s_produce, &p[i]), 0);
    }
    /* every message arrives exactly once, and each producer's in its order */
    int last[PRODUCERS];
    for (int i = 0; i < PRODUCERS; i++)
        last[i] = -1;
    for (int got = 0; got < PRODUCERS * EACH; got++) {
        api_msg_t *m = api_mailbox_wait (mb, 10000);
        assert_non_null (m);
        int v = s_value (m), who = v / EACH;
        assert_true (v % EACH > last[who]);
        last[who] = v % EACH;
        api_msg_destroy (m);
    }
    for (int i = 0; i < PRODUCERS; i++) {
        pthread_join (t[i], NULL);
        assert_int_equal (last[i], EACH - 1);
    }
    /* close wakes a waiter blocked forever, and refuses further posts */
    pthread_t closer;
    assert_int_equal (pthread_create (&closer, NULL, s_close_later, mb), 0);
    assert_null (api_mailbox_wait (mb, -1));
    pthread_join (closer, NULL);
    api_msg_t *m = s_item (1);
    assert_int_equal (api_mailbox_post (mb, m), -1);
    assert_int_equal (api_mailbox_post_always (mb, m), -1);
    api_msg_destroy (m);
    api_mailbox_destroy (&mb);
}

/* ---------------------------------------------------------------- cache */
static json_t *s_obj (const char *rv, const char *phase)
{
    return json_pack ("{s:{s:s}, s:{s:s}}", "metadata", "resourceVersion", rv, "status",
                      "phase", phase);
}

static const char *s_phase_of (json_t *obj)
{
    return json_string_value (json_object_get (json_object_get (obj, "status"), "phase"));
}

static void test_cache_rv_order_and_tombstones (void **state)
{
    (void)state;
    api_cache_t *c = api_cache_new (0);
    bool deleted = true;
    assert_null (api_cache_get_sandbox (c, "a", &deleted));
    assert_false (deleted);
    json_t *o9 = s_obj ("9", "Creating"), *o10 = s_obj ("10", "Running"),
           *o8 = s_obj ("8", "Pending");
    api_cache_put_sandbox (c, "a", o9);
    api_cache_put_sandbox (c, "a", o10); /* "10" > "9": numeric, not string, order */
    api_cache_put_sandbox (c, "a", o8);  /* older: ignored */
    json_t *got = api_cache_get_sandbox (c, "a", &deleted);
    assert_string_equal (s_phase_of (got), "Running");
    json_decref (got);
    /* a deletion at 11 hides the object and refuses anything older */
    api_cache_delete_sandbox (c, "a", "11");
    assert_null (api_cache_get_sandbox (c, "a", &deleted));
    assert_true (deleted);
    api_cache_put_sandbox (c, "a", o10);
    assert_null (api_cache_get_sandbox (c, "a", &deleted));
    assert_true (deleted);
    /* a deletion of unknown version hides every version */
    api_cache_put_sandbox (c, "b", o9);
    api_cache_delete_sandbox (c, "b", NULL);
    api_cache_put_sandbox (c, "b", o10);
    assert_null (api_cache_get_sandbox (c, "b", &deleted));
    assert_true (deleted);
    api_cache_clear_sandboxes (c);
    assert_null (api_cache_get_sandbox (c, "a", &deleted));
    assert_false (deleted);
    json_decref (o8);
    json_decref (o9);
    json_decref (o10);

    assert_true (api_cache_rv_cmp ("10", "9") > 0);
    assert_true (api_cache_rv_cmp ("9", "10") < 0);
    assert_int_equal (api_cache_rv_cmp ("42", "42"), 0);
    assert_true (api_cache_rv_cmp (NULL, "1") < 0);
    assert_true (api_cache_rv_cmp ("1", NULL) > 0);
    assert_true (api_cache_rv_cmp ("b", "a") > 0); /* opaque: as strings */
    api_cache_destroy (&c);
    assert_null (c);
}

static void test_cache_runtimes_apart_from_sandboxes (void **state)
{
    (void)state;
    api_cache_t *c = api_cache_new (0);
    bool deleted = true;
    json_t *r5 = s_obj ("5", "x"), *r7 = s_obj ("7", "y"), *sb = s_obj ("9", "Running");
    assert_null (api_cache_get_runtime (c, "python-3.11", &deleted));
    assert_false (deleted);
    api_cache_put_runtime (c, "python-3.11", r5);
    api_cache_put_sandbox (c, "python-3.11", sb); /* the same name in the other table */
    json_t *got = api_cache_get_runtime (c, "python-3.11", &deleted);
    assert_ptr_equal (got, r5);
    json_decref (got);
    /* deleting the runtime leaves the sandbox of that name alone */
    api_cache_delete_runtime (c, "python-3.11", "6");
    assert_null (api_cache_get_runtime (c, "python-3.11", &deleted));
    assert_true (deleted);
    got = api_cache_get_sandbox (c, "python-3.11", &deleted);
    assert_ptr_equal (got, sb);
    json_decref (got);
    /* a slow read of the old state does not bring it back; a newer one does */
    api_cache_put_runtime (c, "python-3.11", r5);
    assert_null (api_cache_get_runtime (c, "python-3.11", &deleted));
    api_cache_put_runtime (c, "python-3.11", r7);
    got = api_cache_get_runtime (c, "python-3.11", &deleted);
    assert_ptr_equal (got, r7);
    json_decref (got);
    /* lost events empty both */
    api_cache_clear_sandboxes (c);
    assert_null (api_cache_get_runtime (c, "python-3.11", &deleted));
    assert_false (deleted);
    assert_null (api_cache_get_sandbox (c, "python-3.11", &deleted));
    json_decref (r5);
    json_decref (r7);
    json_decref (sb);
    api_cache_destroy (&c);
}

static void test_cache_owners_and_bound (void **state)
{
    (void)state;
    api_cache_t *c = api_cache_new (4);
    api_sandbox_row_t row = {.warm = true}, out;
    snprintf (row.id, sizeof row.id, "sb-1");
    snprintf (row.user_id, sizeof row.user_id, "usr-1");
    api_cache_put_owner (c, &row);
    assert_int_equal (api_cache_get_owner (c, "sb-1", &out), 1);
    assert_string_equal (out.user_id, "usr-1");
    assert_true (out.warm);
    api_cache_drop_owner (c, "sb-1");
    assert_int_equal (api_cache_get_owner (c, "sb-1", &out), 0);
    /* past the bound the kind is emptied, never grown */
    json_t *o = s_obj ("1", "Running");
    char name[16];
    for (int i = 0; i < 50; i++) {
        snprintf (name, sizeof name, "n%d", i);
        api_cache_put_sandbox (c, name, o);
    }
    int present = 0;
    for (int i = 0; i < 50; i++) {
        bool deleted;
        snprintf (name, sizeof name, "n%d", i);
        json_t *g = api_cache_get_sandbox (c, name, &deleted);
        present += g != NULL;
        json_decref (g);
    }
    assert_true (present >= 1 && present <= 4);
    json_decref (o);
    api_cache_destroy (&c);
}

typedef struct {
    api_cache_t *c;
    int id;
} s_racer_t;

static void *s_race (void *arg)
{
    s_racer_t *r = arg;
    char rv[16];
    for (int i = 1; i <= 2000; i++) {
        snprintf (rv, sizeof rv, "%d", i * 4 + r->id);
        json_t *o = s_obj (rv, "Running");
        api_cache_put_sandbox (r->c, "hot", o);
        json_decref (o);
        bool deleted;
        json_decref (api_cache_get_sandbox (r->c, "hot", &deleted));
    }
    return NULL;
}

static void test_cache_threads_keep_the_newest (void **state)
{
    (void)state;
    api_cache_t *c = api_cache_new (0);
    pthread_t t[4];
    s_racer_t r[4];
    for (int i = 0; i < 4; i++) {
        r[i] = (s_racer_t){c, i};
        assert_int_equal (pthread_create (&t[i], NULL, s_race, &r[i]), 0);
    }
    for (int i = 0; i < 4; i++)
        pthread_join (t[i], NULL);
    bool deleted;
    json_t *g = api_cache_get_sandbox (c, "hot", &deleted);
    assert_non_null (g);
    assert_string_equal (json_string_value (json_object_get (json_object_get (g, "metadata"),
                                                             "resourceVersion")),
                         "8003"); /* 2000 * 4 + 3: the highest any thread wrote */
    json_decref (g);
    api_cache_destroy (&c);
}

int main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_mailbox_fifo_and_bound),
        cmocka_unit_test (test_mailbox_wake_callback),
        cmocka_unit_test (test_mailbox_threads_and_close),
        cmocka_unit_test (test_cache_rv_order_and_tombstones),
        cmocka_unit_test (test_cache_runtimes_apart_from_sandboxes),
        cmocka_unit_test (test_cache_owners_and_bound),
        cmocka_unit_test (test_cache_threads_keep_the_newest),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
