/*  lss_leader against a real PostgreSQL: one leader at a time, separate elections apart,
 *  takeover after the leader goes away (destroy, or its backend killed), resignation. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <libpq-fe.h>

#include "lss_leader.h"
#include "lss_log.h"
#include "lss_testproc.h"
#include "lss_testpg.h"

static void test_one_leader_and_takeover (void **state)
{
    (void)state;
    lss_leader_t *a = lss_leader_new (s_dsn, "watcher", "a");
    lss_leader_t *b = lss_leader_new (s_dsn, "watcher", "b");
    lss_leader_t *other = lss_leader_new (s_dsn, "warmpool", "c");
    assert_int_equal (lss_leader_try (a), 1);
    assert_int_equal (lss_leader_try (b), 0);
    assert_int_equal (lss_leader_try (a), 1); /* staying leader */
    assert_int_equal (lss_leader_try (b), 0);
    assert_int_equal (lss_leader_try (other), 1); /* another election is independent */
    assert_true (lss_leader_is_leader (a));
    assert_false (lss_leader_is_leader (b));
    lss_leader_destroy (&a); /* the leader goes away */
    assert_null (a);
    assert_int_equal (lss_leader_try (b), 1);
    /* resign hands it over */
    lss_leader_t *c = lss_leader_new (s_dsn, "watcher", "c2");
    assert_int_equal (lss_leader_try (c), 0);
    lss_leader_resign (b);
    assert_false (lss_leader_is_leader (b));
    assert_int_equal (lss_leader_try (c), 1);
    assert_int_equal (lss_leader_try (b), 0);
    lss_leader_destroy (&b);
    lss_leader_destroy (&c);
    lss_leader_destroy (&other);
}

static void test_leader_whose_connection_dies_steps_down (void **state)
{
    (void)state;
    lss_leader_t *a = lss_leader_new (s_dsn, "reconciler", "a");
    lss_leader_t *b = lss_leader_new (s_dsn, "reconciler", "b");
    assert_int_equal (lss_leader_try (a), 1);
    assert_int_equal (lss_leader_try (b), 0);
    /* The database drops the leader's session (as when its process dies or the network
     * breaks): the lock goes with it. */
    PGconn *admin = PQconnectdb (s_dsn);
    assert_int_equal (PQstatus (admin), CONNECTION_OK);
    PGresult *r =
        PQexec (admin, "SELECT pg_terminate_backend (pid) FROM pg_locks WHERE "
                       "locktype = 'advisory' AND granted AND pid <> pg_backend_pid()");
    assert_int_equal (PQresultStatus (r), PGRES_TUPLES_OK);
    assert_true (PQntuples (r) >= 1);
    PQclear (r);
    PQfinish (admin);
    /* the standby takes over; the old leader notices on its next try and steps down */
    long long deadline = tp_now_ms () + 5000;
    int got = 0;
    while ((got = lss_leader_try (b)) != 1 && tp_now_ms () < deadline)
        usleep (20000);
    assert_int_equal (got, 1);
    assert_true (lss_leader_try (a) != 1);
    assert_false (lss_leader_is_leader (a));
    lss_leader_destroy (&a);
    lss_leader_destroy (&b);
}

static void test_unreachable_database (void **state)
{
    (void)state;
    lss_leader_t *x = lss_leader_new ("host=127.0.0.1 port=1 dbname=none", "watcher", "x");
    assert_int_equal (lss_leader_try (x), -1);
    assert_false (lss_leader_is_leader (x));
    lss_leader_destroy (&x);
}

int main (void)
{
    lss_log_init ("test_leader", LSS_LOG_ERROR);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_one_leader_and_takeover),
        cmocka_unit_test (test_leader_whose_connection_dies_steps_down),
        cmocka_unit_test (test_unreachable_database),
    };
    return cmocka_run_group_tests (tests, s_group_setup, s_group_teardown);
}
