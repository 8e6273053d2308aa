/*  Unit tests for lss_util: time formatting/parsing, ids, integer parsing, bounded buffers. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
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

int main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_rfc3339_roundtrip),
        cmocka_unit_test (test_ids),
        cmocka_unit_test (test_parse_int),
        cmocka_unit_test (test_buf_bounds),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
