/*  Unit tests for lss_util: time formatting/parsing, ids, integer parsing, bounded buffers. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>

#include "lss_util.h"

static void test_rfc3339_roundtrip (void **state)
{
    (void)state;
    char text[LSS_TIME_RFC3339_SIZE];
    assert_string_equal (lss_time_rfc3339 (0, text), "1970-01-01T00:00:00.000Z");
    assert_string_equal (lss_time_rfc3339 (1795000000123, text), "2026-11-18T11:06:40.123Z");
    int64_t ms;
    assert_int_equal (lss_time_parse_rfc3339 ("2026-11-18T11:06:40.123Z", &ms), 0);
    assert_int_equal (ms, 1795000000123);
    assert_int_equal (lss_time_parse_rfc3339 ("2026-11-18T13:06:40+02:00", &ms), 0);
    assert_int_equal (ms, 1795000000000);
    assert_int_equal (lss_time_parse_rfc3339 ("2026-11-18T08:26:40", &ms), -1);
    assert_int_equal (lss_time_parse_rfc3339 ("2026-13-18T08:26:40Z", &ms), -1);
    assert_int_equal (lss_time_parse_rfc3339 ("2026-11-18T08:26:40Zjunk", &ms), -1);
    assert_int_equal (lss_time_parse_rfc3339 ("", &ms), -1);
    assert_int_equal (lss_time_parse_rfc3339 (NULL, &ms), -1);
}

static void test_ids (void **state)
{
    (void)state;
    char a[32], b[32];
    assert_int_equal (lss_id_new ("sb-", 12, a, sizeof a), 0);
    assert_int_equal (lss_id_new ("sb-", 12, b, sizeof b), 0);
    assert_int_equal (strlen (a), 15);
    assert_memory_equal (a, "sb-", 3);
    assert_string_not_equal (a, b);
    for (const char *p = a + 3; *p; p++)
        assert_true ((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9'));
    char small[8];
    assert_int_equal (lss_id_new ("sb-", 12, small, sizeof small), -1);
}

static void test_parse_int (void **state)
{
    (void)state;
    int64_t v;
    assert_int_equal (lss_parse_int64 ("42", 0, 100, &v), 0);
    assert_int_equal (v, 42);
    assert_int_equal (lss_parse_int64 ("101", 0, 100, &v), -1);
    assert_int_equal (lss_parse_int64 ("4x", 0, 100, &v), -1);
    assert_int_equal (lss_parse_int64 ("", 0, 100, &v), -1);
    assert_int_equal (lss_parse_int64 ("99999999999999999999", INT64_MIN, INT64_MAX, &v), -1);
}

static void test_buf_bounds (void **state)
{
    (void)state;
    lss_buf_t buf;
    lss_buf_init (&buf, 10);
    assert_int_equal (lss_buf_append (&buf, "hello", 5), 0);
    assert_int_equal (lss_buf_append (&buf, "world!", 6), -1);
    assert_int_equal (buf.len, 5);
    assert_int_equal (lss_buf_append_some (&buf, "world!", 6), 5);
    assert_int_equal (buf.len, 10);
    assert_memory_equal (buf.data, "helloworld", 10);
    lss_buf_consume (&buf, 5);
    assert_memory_equal (buf.data, "world", 5);
    assert_int_equal (lss_buf_append_some (&buf, "xyz", 3), 3);
    lss_buf_free (&buf);
    char out[4];
    assert_int_equal (lss_fmt (out, sizeof out, "%s", "abc"), 0);
    assert_int_equal (lss_fmt (out, sizeof out, "%s", "abcd"), -1);
    assert_string_equal (out, "abc");
}

static void test_listen_parse_and_resolve (void **state)
{
    (void)state;
    char host[64];
    int port = -1;
    assert_int_equal (lss_listen_parse ("127.0.0.1:8080", host, sizeof host, &port), 0);
    assert_string_equal (host, "127.0.0.1");
    assert_int_equal (port, 8080);
    assert_int_equal (lss_listen_parse ("[::1]:0", host, sizeof host, &port), 0);
    assert_string_equal (host, "::1");
    assert_int_equal (port, 0);
    assert_int_equal (lss_listen_parse ("*:9", host, sizeof host, &port), 0);
    assert_string_equal (host, "");
    assert_int_equal (lss_listen_parse (":9", host, sizeof host, &port), 0);
    assert_string_equal (host, "");
    assert_int_equal (port, 9);
    assert_int_equal (lss_listen_parse ("127.0.0.1", host, sizeof host, &port), -1);
    assert_int_equal (lss_listen_parse ("h:65536", host, sizeof host, &port), -1);
    assert_int_equal (lss_listen_parse ("h:-1", host, sizeof host, &port), -1);
    assert_int_equal (lss_listen_parse ("h:x", host, sizeof host, &port), -1);
    assert_int_equal (lss_listen_parse (NULL, host, sizeof host, &port), -1);
    char small[4];
    assert_int_equal (lss_listen_parse ("localhost:1", small, sizeof small, &port), -1);

    char out[64];
    bool v6 = true;
    assert_int_equal (lss_resolve_numeric ("127.0.0.1", out, sizeof out, &v6), 0);
    assert_string_equal (out, "127.0.0.1");
    assert_false (v6);
    assert_int_equal (lss_resolve_numeric ("::1", out, sizeof out, &v6), 0);
    assert_string_equal (out, "::1");
    assert_true (v6);
    /* a name from /etc/hosts (no DNS query leaves the machine in a test) */
    assert_int_equal (lss_resolve_numeric ("localhost", out, sizeof out, &v6), 0);
    assert_true (strcmp (out, "127.0.0.1") == 0 || strcmp (out, "::1") == 0);
    char tiny[4];
    assert_int_equal (lss_resolve_numeric ("127.0.0.1", tiny, sizeof tiny, &v6), -1);
    assert_int_equal (lss_resolve_numeric (NULL, out, sizeof out, &v6), -1);
}

static void *s_mask_of_thread (void *arg)
{
    pthread_sigmask (SIG_BLOCK, NULL, (sigset_t *)arg);
    return NULL;
}

/*  A started thread blocks the process-directed signals but not the faults, and the
 *  caller's own mask is left as it was. */
static void test_thread_start_masks (void **state)
{
    (void)state;
    sigset_t before, after, inner;
    sigemptyset (&inner);
    pthread_sigmask (SIG_BLOCK, NULL, &before);
    pthread_t t;
    assert_int_equal (lss_thread_start (&t, s_mask_of_thread, &inner), 0);
    pthread_join (t, NULL);
    pthread_sigmask (SIG_BLOCK, NULL, &after);
    int sigs[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2, SIGCHLD, SIGPIPE};
    for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++) {
        assert_true (sigismember (&inner, sigs[i]));
        assert_int_equal (sigismember (&after, sigs[i]), sigismember (&before, sigs[i]));
    }
    int faults[] = {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT};
    for (size_t i = 0; i < sizeof faults / sizeof faults[0]; i++)
        assert_false (sigismember (&inner, faults[i]));
}

int main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_rfc3339_roundtrip),
        cmocka_unit_test (test_ids),
        cmocka_unit_test (test_parse_int),
        cmocka_unit_test (test_buf_bounds),
        cmocka_unit_test (test_listen_parse_and_resolve),
        cmocka_unit_test (test_thread_start_masks),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
