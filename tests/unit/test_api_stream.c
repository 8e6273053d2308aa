/*  The WebSocket output path's pure pieces (issue 5, streaming throughput):
 *   - api_wsproto_output_frame_utf8, which checks UTF-8 and escapes 8 bytes at a time:
 *     for random output mixing plain ASCII, every special byte at every offset in a
 *     word, multi-byte UTF-8 and broken sequences, it must agree with the byte-by-byte
 *     api_view_utf8_valid, and a frame must parse back (jansson) to exactly the bytes;
 *   - exec_flow's buffer, which no longer moves everything behind a forwarded piece:
 *     a long random run of puts, partial takes and credits keeps every byte in order
 *     and the window accounting (agent_credit + buffered + ungranted == window);
 *   - api_ws_window: over random starts and ends of executions on one connection, the
 *     windows of those running never add up to more than half of api.ws_send_queue
 *     (plus the floor each), and a lone execution gets the full API_BRIDGE_WINDOW.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "api_bridge.h"
#include "api_view.h"
#include "api_ws.h"
#include "api_wsproto.h"
#include "executor_flow.h"

static uint64_t s_rng = 0x9E3779B97F4A7C15ull;

static uint32_t s_rand (void)
{
    s_rng ^= s_rng << 13;
    s_rng ^= s_rng >> 7;
    s_rng ^= s_rng << 17;
    return (uint32_t)(s_rng >> 16);
}

/* Random output: mostly plain text, with specials, UTF-8 and (when broken) bad bytes. */
static size_t s_fill (uint8_t *buf, size_t max, bool broken)
{
    static const uint8_t *const seqs[] = {
        (const uint8_t *)"\xC3\xA9", (const uint8_t *)"\xE2\x82\xAC",
        (const uint8_t *)"\xF0\x9F\x98\x80", (const uint8_t *)"\xEF\xBF\xBF"};
    static const uint8_t *const bad[] = {
        (const uint8_t *)"\xC0\x80",         (const uint8_t *)"\xED\xA0\x80",
        (const uint8_t *)"\xF4\x90\x80\x80", (const uint8_t *)"\x80",
        (const uint8_t *)"\xE2\x82",         (const uint8_t *)"\xFF"};
    size_t n = 0, want = s_rand () % max;
    while (n + 4 < want) {
        uint32_t r = s_rand () % 100;
        if (r < 80)
            buf[n++] = (uint8_t)(0x20 + s_rand () % 0x60); /* 0x20..0x7F, '"' '\\' too */
        else if (r < 90)
            buf[n++] = (uint8_t)(s_rand () % 0x20); /* controls, NUL */
        else if (r < 98 || !broken) {
            const uint8_t *q = seqs[s_rand () % 4];
            size_t l = strlen ((const char *)q);
            memcpy (buf + n, q, l);
            n += l;
        } else {
            const uint8_t *q = bad[s_rand () % 6];
            size_t l = strlen ((const char *)q);
            memcpy (buf + n, q, l);
            n += l;
        }
    }
    return n;
}

static void test_output_frame_matches_reference (void **state)
{
    (void)state;
    enum { MAX = 300 };
    uint8_t buf[MAX + 8];
    int valid_seen = 0, invalid_seen = 0;
    for (int round = 0; round < 20000; round++) {
        size_t n = s_fill (buf, MAX, round % 3 == 0);
        /* shift the start so every alignment is covered */
        size_t skip = n > 0 ? (size_t)(round % 8) % (n + 1) : 0;
        const uint8_t *data = buf + skip;
        size_t len = n - skip;
        bool ref = api_view_utf8_valid (data, len);
        bool valid = !ref;
        api_ws_frame_t *f =
            api_wsproto_output_frame_utf8 (3, "e\\1", "stdout", round, 1, data, len, &valid);
        assert_true (valid == ref);
        if (!ref) {
            assert_null (f);
            invalid_seen++;
            continue;
        }
        valid_seen++;
        assert_non_null (f);
        assert_int_equal (strlen (f->text), f->len);
        json_error_t je;
        json_t *o = json_loadb (f->text, f->len, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &je);
        if (!o)
            fail_msg ("frame is not JSON: %s", je.text);
        json_t *c = json_object_get (o, "content");
        assert_int_equal (json_string_length (c), len);
        assert_memory_equal (json_string_value (c), data, len);
        assert_string_equal (json_string_value (json_object_get (o, "executionId")), "e\\1");
        json_decref (o);
        f->msg.destroy (&f->msg);
    }
    /* both kinds were exercised */
    assert_true (valid_seen > 1000 && invalid_seen > 1000);
    /* a long plain run (the fast path) with one special at each position of a word */
    uint8_t big[4096];
    for (size_t at = 4000; at < 4016 && at < sizeof big; at++) {
        memset (big, 'a', sizeof big);
        big[at % sizeof big] = '"';
        bool valid;
        api_ws_frame_t *f =
            api_wsproto_output_frame_utf8 (1, "e", "stderr", 1, 1, big, sizeof big, &valid);
        assert_non_null (f);
        json_t *o = json_loadb (f->text, f->len, 0, NULL);
        assert_non_null (o);
        assert_memory_equal (json_string_value (json_object_get (o, "content")), big,
                             sizeof big);
        json_decref (o);
        f->msg.destroy (&f->msg);
    }
}

static void test_flow_buffer_keeps_order (void **state)
{
    (void)state;
    enum { WINDOW = 64 * 1024 };
    exec_flow_t f;
    exec_flow_init (&f, WINDOW, 1 << 20);
    uint8_t chunk[8192];
    uint64_t next_in = 0, next_out = 0; /* byte counters: content is the counter's low byte */
    for (int step = 0; step < 200000; step++) {
        assert_int_equal (f.agent_credit + f.buffered + f.ungranted, WINDOW);
        uint32_t r = s_rand () % 10;
        if (r < 4 && f.agent_credit > 0) { /* the agent sends */
            size_t n = 1 + s_rand () % sizeof chunk;
            if ((int64_t)n > f.agent_credit)
                n = (size_t)f.agent_credit;
            int stream = s_rand () % 8 == 0 ? EXEC_FLOW_STDERR : EXEC_FLOW_STDOUT;
            for (size_t i = 0; i < n; i++)
                chunk[i] = (uint8_t)(next_in + i);
            assert_int_equal (exec_flow_put (&f, stream, chunk, n), 0);
            next_in += n;
        } else if (r < 8) { /* a piece goes to the requester */
            int stream;
            const uint8_t *data;
            size_t max = 1 + s_rand () % 20000;
            size_t n = exec_flow_peek (&f, &stream, &data, max);
            for (size_t i = 0; i < n; i++)
                if (data[i] != (uint8_t)(next_out + i))
                    fail_msg ("byte %llu out of order", (unsigned long long)(next_out + i));
            exec_flow_consume (&f, n);
            next_out += n;
        } else if (r < 9) {
            exec_flow_credit (&f, 1 + s_rand () % 50000);
        } else {
            int64_t due = exec_flow_grant_due (&f);
            if (due > 0)
                exec_flow_granted (&f, due);
        }
        assert_true (f.buf.len <= (size_t)WINDOW * 6 + 64);
    }
    assert_true (next_out > 1000000); /* it really flowed */
    exec_flow_release (&f);
}

static void test_ws_windows_stay_within_send_queue (void **state)
{
    (void)state;
    const size_t queues[] = {65536, 4u << 20, 16u << 20, 268435456};
    for (size_t q = 0; q < sizeof queues / sizeof queues[0]; q++) {
        size_t Q = queues[q];
        int64_t lone = api_ws_window (Q, 0);
        assert_true (lone >= API_BRIDGE_WINDOW_MIN && lone <= API_BRIDGE_WINDOW);
        if (Q >= 4u * API_BRIDGE_WINDOW)
            assert_int_equal (lone, API_BRIDGE_WINDOW);
        int64_t run[64];
        size_t n = 0;
        for (int step = 0; step < 20000; step++) {
            if (n < 64 && (n == 0 || s_rand () % 2)) {
                run[n] = api_ws_window (Q, n);
                n++;
            } else {
                size_t k = s_rand () % n; /* any of them ends */
                run[k] = run[--n];
            }
            int64_t sum = 0;
            for (size_t i = 0; i < n; i++)
                sum += run[i];
            if (sum > (int64_t)(Q / 2) + (int64_t)n * API_BRIDGE_WINDOW_MIN)
                fail_msg ("queue %zu: %zu executions hold %lld bytes of credit", Q, n,
                          (long long)sum);
        }
    }
    assert_int_equal (api_ws_window (4u << 20, 1), 512 * 1024);
    assert_int_equal (api_ws_window (4u << 20, 63), API_BRIDGE_WINDOW_MIN);
}

int main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_output_frame_matches_reference),
        cmocka_unit_test (test_flow_buffer_keeps_order),
        cmocka_unit_test (test_ws_windows_stay_within_send_queue),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
