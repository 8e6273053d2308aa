/*  lss_leader: the advisory lock against a real PostgreSQL (one leader at a time,
 *  separate elections apart, takeover after the leader goes away — destroy, or its
 *  backend killed — resignation), and the Lease-backed candidate twice, on PostgreSQL and
 *  on the fake Kubernetes API server: one of two candidates leads; a leader that stops
 *  renewing is replaced once its lease has run out (by the standby's clock); a leader
 *  whose renewals fail stops leading within the renew deadline; resignation hands over
 *  at once; the Lease record carries holderIdentity, times and leaseTransitions. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <libpq-fe.h>

#include "lss_leader.h"
#include "lss_log.h"
#include "lss_store.h"
#include "lss_testproc.h"
#include "lss_testpg.h"
#include "lss_testk8s.h"
#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#else
#define RUNNING_ON_VALGRIND 0
#endif

static bool s_k8s; /* lease groups: on the fake Kubernetes (else on PostgreSQL) */
static tk_fake_t s_fake;
/* short times so the cases run in seconds: lease 2 s, renew deadline 1 s, retry 100 ms;
 * three times longer under valgrind, where one store round trip can take a second */
static lss_leader_lease_opts_t s_opts = {2000, 1000, 100};
static long long s_slack_ms = 1500;

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
    assert_true (s_pg_rows ("SELECT pg_terminate_backend (pid) FROM pg_locks WHERE "
                            "locktype = 'advisory' AND granted AND pid <> pg_backend_pid()") >=
                 1);
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

/* ------------------------------------------------------------------ leases */

static lss_store_t *s_store (void)
{
    char err[LSS_STORE_ERR_SIZE] = "";
    lss_store_t *st = NULL;
    if (s_k8s) {
        lss_config_t *cfg = tk_config (&s_fake, NULL, NULL);
        st = lss_store_new_from_config (cfg, err, sizeof err);
        lss_config_destroy (&cfg);
    } else
        st = lss_store_pg_new (s_dsn, err, sizeof err);
    if (!st)
        fprintf (stderr, "store: %s\n", err);
    assert_non_null (st);
    return st;
}

static lss_leader_t *s_candidate (const char *election, const char *identity)
{
    lss_store_t *st = s_store ();
    /* open the connection (TLS to the fake API server) before the candidate's first try:
     * under valgrind the handshake alone can outlast the renew deadline, which would make
     * a won first try count as already expired */
    json_t *none = NULL;
    char err[LSS_STORE_ERR_SIZE];
    lss_store_get (st, "Lease", "leases", "lss-warm-up", &none, err, sizeof err);
    json_decref (none);
    lss_leader_t *c = lss_leader_lease_new (&st, "leases", election, identity, &s_opts);
    assert_non_null (c);
    assert_null (st);
    return c;
}

static json_t *s_lease_spec (const char *election)
{
    lss_store_t *st = s_store ();
    char name[128], err[LSS_STORE_ERR_SIZE];
    snprintf (name, sizeof name, "lss-%s", election);
    json_t *lease = NULL;
    assert_int_equal (lss_store_get (st, "Lease", "leases", name, &lease, err, sizeof err), 0);
    lss_store_destroy (&st);
    json_t *spec = json_incref (json_object_get (lease, "spec"));
    json_decref (lease);
    return spec;
}

/*  Tries c until it answers want, within deadline_ms; returns the answer. */
static int s_try_until (lss_leader_t *c, int want, int deadline_ms)
{
    long long deadline = tp_now_ms () + deadline_ms;
    int got;
    while ((got = lss_leader_try (c)) != want && tp_now_ms () < deadline)
        poll (NULL, 0, 20); /* the candidates' own retry period paces the real work */
    return got;
}

static void test_lease_one_leader (void **state)
{
    (void)state;
    lss_leader_t *a = s_candidate ("one", "a");
    lss_leader_t *b = s_candidate ("one", "b");
    assert_int_equal (lss_leader_try (a), 1);
    /* asked at once: b's first request below may take longer than the 1 s renew
     * deadline under valgrind, after which a rightly stops counting itself leader */
    assert_true (lss_leader_is_leader (a));
    assert_int_equal (lss_leader_try (b), 0);
    assert_false (lss_leader_is_leader (b));
    json_t *spec = s_lease_spec ("one");
    assert_string_equal (json_string_value (json_object_get (spec, "holderIdentity")), "a");
    assert_int_equal (json_integer_value (json_object_get (spec, "leaseDurationSeconds")),
                      s_opts.lease_ms / 1000);
    assert_int_equal (json_integer_value (json_object_get (spec, "leaseTransitions")), 0);
    const char *renew = json_string_value (json_object_get (spec, "renewTime"));
    assert_non_null (renew);
    assert_int_equal (strlen (renew), strlen ("2026-01-01T00:00:00.000000Z")); /* MicroTime */
    char first_renew[64];
    snprintf (first_renew, sizeof first_renew, "%s", renew);
    json_decref (spec);
    /* both keep trying for a while: a renews, b never gets in */
    long long until = tp_now_ms () + 600;
    while (tp_now_ms () < until) {
        assert_int_equal (lss_leader_try (a), 1);
        assert_int_equal (lss_leader_try (b), 0);
        poll (NULL, 0, 20);
    }
    spec = s_lease_spec ("one");
    assert_string_equal (json_string_value (json_object_get (spec, "holderIdentity")), "a");
    assert_string_not_equal (json_string_value (json_object_get (spec, "renewTime")),
                             first_renew);
    assert_int_equal (json_integer_value (json_object_get (spec, "leaseTransitions")), 0);
    json_decref (spec);
    /* resignation hands over at b's next try */
    lss_leader_resign (a);
    assert_false (lss_leader_is_leader (a));
    assert_int_equal (s_try_until (b, 1, 5000), 1);
    assert_int_equal (lss_leader_try (a), 0);
    lss_leader_destroy (&a);
    lss_leader_destroy (&b);
}

static void test_lease_takeover_after_expiry (void **state)
{
    (void)state;
    lss_leader_t *a = s_candidate ("expiry", "a");
    lss_leader_t *b = s_candidate ("expiry", "b");
    assert_int_equal (lss_leader_try (a), 1);
    /* a stops renewing (as when its process hangs); b sees the lease and waits it out */
    long long observed = tp_now_ms ();
    assert_int_equal (lss_leader_try (b), 0);
    long long led_at = 0;
    long long deadline = observed + 5 * s_opts.lease_ms;
    while (tp_now_ms () < deadline) {
        if (lss_leader_try (b) == 1) {
            led_at = tp_now_ms ();
            break;
        }
        poll (NULL, 0, 20);
    }
    assert_true (led_at > 0);
    assert_true (led_at - observed >= s_opts.lease_ms); /* never before the lease ran out */
    /* a's renew deadline has passed: it knows by its clock, before any request */
    assert_false (lss_leader_is_leader (a));
    assert_int_equal (lss_leader_try (a), 0);
    json_t *spec = s_lease_spec ("expiry");
    assert_string_equal (json_string_value (json_object_get (spec, "holderIdentity")), "b");
    assert_int_equal (json_integer_value (json_object_get (spec, "leaseTransitions")), 1);
    json_decref (spec);
    lss_leader_destroy (&a);
    lss_leader_destroy (&b);
}

static void test_lease_failing_renewals (void **state)
{
    (void)state;
    if (!s_k8s)
        skip (); /* needs the fake's fault injection */
    lss_leader_t *a = s_candidate ("failing", "a");
    assert_int_equal (lss_leader_try (a), 1);
    /* renew once more, so that its last renewal is known to be after t_ok */
    long long t_ok = tp_now_ms ();
    poll (NULL, 0, (int)s_opts.retry_ms + 20);
    assert_int_equal (lss_leader_try (a), 1);
    /* from now on every request about the lease fails */
    assert_int_equal (tk_inject (&s_fake, json_pack ("{s:s, s:i, s:i}", "path",
                                                     "/apis/coordination.k8s.io/v1/namespaces/"
                                                     "leases/leases/lss-failing",
                                                     "status", 503, "times", 100000)),
                      0);
    long long stopped = 0, deadline = tp_now_ms () + 5 * s_opts.lease_ms;
    while (tp_now_ms () < deadline) {
        if (lss_leader_try (a) != 1) {
            stopped = tp_now_ms ();
            break;
        }
        poll (NULL, 0, 20);
    }
    assert_true (stopped > 0);
    assert_false (lss_leader_is_leader (a));
    /* within the renew deadline of its last renewal (plus one retry period, and slack for
     * a slow machine); never before it */
    assert_true (stopped - t_ok > s_opts.renew_deadline_ms);
    assert_true (stopped - t_ok <= s_opts.renew_deadline_ms + s_opts.retry_ms + s_slack_ms);
    assert_int_equal (lss_leader_try (a), -1); /* unreachable, not leading */
    assert_int_equal (tk_hook0 (&s_fake, "/_fake/clear", json_object ()), 0);
    lss_leader_destroy (&a);
}

static void test_lease_from_config (void **state)
{
    (void)state;
    if (!s_k8s)
        skip ();
    const char *extra[] = {"k8s.lease_duration=2s", "k8s.renew_deadline=1s",
                           "k8s.retry_period=100ms", "k8s.namespace=leases", NULL};
    lss_config_t *cfg = tk_config (&s_fake, NULL, extra);
    lss_leader_t *a = lss_leader_new_from_config (cfg, "cfg", "a");
    lss_leader_t *b = lss_leader_open (cfg, NULL, "cfg", "b");
    assert_non_null (a);
    assert_non_null (b);
    assert_int_equal (lss_leader_try (a), 1);
    assert_int_equal (lss_leader_try (b), 0);
    json_t *spec = s_lease_spec ("cfg");
    assert_string_equal (json_string_value (json_object_get (spec, "holderIdentity")), "a");
    json_decref (spec);
    lss_leader_destroy (&a); /* releases: b takes over at once */
    assert_int_equal (s_try_until (b, 1, 5000), 1);
    lss_leader_destroy (&b);
    /* inconsistent times are refused */
    char err[128];
    assert_int_equal (lss_config_set (cfg, "k8s.renew_deadline", "5s", err, sizeof err), 0);
    assert_null (lss_leader_new_from_config (cfg, "cfg", "c"));
    assert_int_equal (lss_config_set (cfg, "store.backend", "nope", err, sizeof err), 0);
    assert_null (lss_leader_new_from_config (cfg, "cfg", "c"));
    lss_config_destroy (&cfg);
}

static int s_lease_pg_setup (void **state)
{
    s_k8s = false;
    return s_group_setup (state);
}

static int s_lease_k8s_setup (void **state)
{
    (void)state;
    s_k8s = true;
    if (tk_start (&s_fake) != 0) {
        tk_stop (&s_fake);
        return -1;
    }
    return 0;
}

static int s_lease_k8s_teardown (void **state)
{
    (void)state;
    tk_stop (&s_fake);
    return 0;
}

int main (void)
{
    lss_log_init ("test_leader", LSS_LOG_ERROR);
    if (RUNNING_ON_VALGRIND) {
        s_opts = (lss_leader_lease_opts_t){6000, 3000, 100};
        s_slack_ms = 4000;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_one_leader_and_takeover),
        cmocka_unit_test (test_leader_whose_connection_dies_steps_down),
        cmocka_unit_test (test_unreachable_database),
    };
    const struct CMUnitTest lease[] = {
        cmocka_unit_test (test_lease_one_leader),
        cmocka_unit_test (test_lease_takeover_after_expiry),
        cmocka_unit_test (test_lease_failing_renewals),
        cmocka_unit_test (test_lease_from_config),
    };
    int failed =
        cmocka_run_group_tests_name ("advisory lock", tests, s_group_setup, s_group_teardown);
    failed += cmocka_run_group_tests_name ("lease on postgres", lease, s_lease_pg_setup,
                                           s_group_teardown);
    failed += cmocka_run_group_tests_name ("lease on kubernetes", lease, s_lease_k8s_setup,
                                           s_lease_k8s_teardown);
    return failed;
}
