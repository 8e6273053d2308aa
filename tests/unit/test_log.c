/*  Unit tests for lss_log: the secret-key rule, masking, the line format, trace ids,
 *  level filtering, pack errors, size caps, and whole lines under concurrent writers.
 *
 *  Output is captured with open_memstream (or tmpfile for the threaded case) through
 *  lss_log_set_stream and parsed back with jansson, so every check is on real output.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lss_log.h"
#include "lss_util.h"

/* ------------------------------------------------------------------ capture helpers */

typedef struct {
    FILE *stream;
    char *text;
    size_t len;
} capture_t;

static void capture_begin (capture_t *c)
{
    c->text = NULL;
    c->len = 0;
    c->stream = open_memstream (&c->text, &c->len);
    assert_non_null (c->stream);
    lss_log_set_stream (c->stream);
}

/*  Stops capturing; c->text holds everything written (caller frees). */
static void capture_end (capture_t *c)
{
    lss_log_set_stream (NULL);
    fclose (c->stream);
    c->stream = NULL;
}

static size_t count_lines (const char *text)
{
    size_t n = 0;
    for (const char *p = text; *p; p++)
        n += *p == '\n';
    return n;
}

/*  Parses a capture holding exactly one line. */
static json_t *parse_one (const capture_t *c)
{
    assert_int_equal (count_lines (c->text), 1);
    assert_true (c->len > 0 && c->text[c->len - 1] == '\n');
    json_error_t error;
    json_t *line = json_loads (c->text, 0, &error);
    if (!line)
        fail_msg ("unparseable line: %s (%s)", c->text, error.text);
    assert_true (json_is_object (line));
    return line;
}

/*  Logs one event through fn-like code and returns the parsed line. */
#define CAPTURE_ONE(line_var, statement)                                                       \
    do {                                                                                       \
        capture_t cap_;                                                                        \
        capture_begin (&cap_);                                                                 \
        statement;                                                                             \
        capture_end (&cap_);                                                                   \
        line_var = parse_one (&cap_);                                                          \
        free (cap_.text);                                                                      \
    } while (0)

static const char *str_at (const json_t *obj, const char *key)
{
    json_t *v = json_object_get (obj, key);
    if (!json_is_string (v))
        fail_msg ("'%s' is not a string", key);
    return json_string_value (v);
}

static int setup (void **state)
{
    (void)state;
    lss_log_init ("test_log", LSS_LOG_DEBUG);
    lss_log_set_trace (NULL);
    return 0;
}

/* ------------------------------------------------------------------ secret keys */

static void test_key_rule (void **state)
{
    (void)state;
    static const char *const secret[] = {
        "password",   "DB_PASSWORD",   "passwd",      "client_secret", "accessToken",
        "max_tokens", "Authorization", "credentials", "apikey",        "X-Api-Key",
        "api_key",    "privateKeyPem", "Cookie",      "session_key",   "key",
        "KEY",        "signing_key",   "signing-key", "SIGNING_KEY",   "signingKey",
        "hmacKey",    "Session_Key",   "set-cookie",
    };
    static const char *const plain[] = {
        "monkey", "MONKEY",   "keys_total", "keyspace", "key_id", "hotkey", "turkey",
        "name",   "keyboard", "keys",       "",         "pid",    "Keyed",
    };
    for (size_t i = 0; i < sizeof secret / sizeof secret[0]; i++)
        if (!lss_log_key_is_secret (secret[i]))
            fail_msg ("'%s' should be secret", secret[i]);
    for (size_t i = 0; i < sizeof plain / sizeof plain[0]; i++)
        if (lss_log_key_is_secret (plain[i]))
            fail_msg ("'%s' should not be secret", plain[i]);
    assert_false (lss_log_key_is_secret (NULL));
}

/* ------------------------------------------------------------------ masking */

static void test_mask_nested (void **state)
{
    (void)state;
    json_t *in = json_pack (
        "{s:s, s:s, s:i, s:{s:s, s:s, s:{s:{s:i}}}, s:[{s:s, s:i}, s, {s:s, s:{s:s}}]}", "user",
        "bob", "password", "hunter2", "Token", 5, "nested", "Api_Key", "abc", "ok", "fine",
        "deeper", "Secret", "a", 1, "list", "authorization", "Basic eA==", "n", 1, "plain",
        "monkey", "banana", "inner", "SIGNING_KEY", "k1");
    assert_non_null (in);
    json_t *out = lss_log_mask (in);
    assert_non_null (out);
    assert_ptr_not_equal (in, out);

    assert_string_equal (str_at (out, "user"), "bob");
    assert_string_equal (str_at (out, "password"), "***");
    assert_string_equal (str_at (out, "Token"), "***"); /* non-string values too */
    json_t *nested = json_object_get (out, "nested");
    assert_string_equal (str_at (nested, "Api_Key"), "***");
    assert_string_equal (str_at (nested, "ok"), "fine");
    assert_string_equal (str_at (json_object_get (nested, "deeper"), "Secret"), "***");
    json_t *list = json_object_get (out, "list");
    assert_int_equal (json_array_size (list), 3);
    assert_string_equal (str_at (json_array_get (list, 0), "authorization"), "***");
    assert_int_equal (json_integer_value (json_object_get (json_array_get (list, 0), "n")), 1);
    assert_string_equal (json_string_value (json_array_get (list, 1)), "plain");
    assert_string_equal (str_at (json_array_get (list, 2), "monkey"), "banana");
    assert_string_equal (
        str_at (json_object_get (json_array_get (list, 2), "inner"), "SIGNING_KEY"), "***");

    /* The input is untouched. */
    assert_string_equal (str_at (in, "password"), "hunter2");
    assert_int_equal (json_integer_value (json_object_get (in, "Token")), 5);
    json_decref (in);
    json_decref (out);
    assert_null (lss_log_mask (NULL));
}

static void test_mask_values (void **state)
{
    (void)state;
    json_t *in = json_pack ("{s:s, s:s, s:[s, s, s, s, s], s:i}", "note", "lsp_abc123", "hdr",
                            "bearer xyz", "arr", "Bearer abc", "lsp_", "lspx_no", "x lsp_abc",
                            "Bearerish", "n", 7);
    json_t *out = lss_log_mask (in);
    assert_string_equal (str_at (out, "note"), "***");
    assert_string_equal (str_at (out, "hdr"), "***");
    json_t *arr = json_object_get (out, "arr");
    assert_string_equal (json_string_value (json_array_get (arr, 0)), "***");
    assert_string_equal (json_string_value (json_array_get (arr, 1)), "***");
    assert_string_equal (json_string_value (json_array_get (arr, 2)), "lspx_no");
    assert_string_equal (json_string_value (json_array_get (arr, 3)), "x lsp_abc");
    assert_string_equal (json_string_value (json_array_get (arr, 4)), "Bearerish");
    assert_int_equal (json_integer_value (json_object_get (out, "n")), 7);
    json_decref (in);
    json_decref (out);

    json_t *top = json_string ("lsp_top");
    out = lss_log_mask (top);
    assert_string_equal (json_string_value (out), "***");
    json_decref (top);
    json_decref (out);
}

/* ------------------------------------------------------------------ line format */

static void test_line_format (void **state)
{
    (void)state;
    lss_log_init ("svc-test", LSS_LOG_DEBUG);
    lss_log_set_trace ("req-1");
    int64_t before = lss_time_now_ms ();
    json_t *line;
    CAPTURE_ONE (line, lss_log_info ("sandbox started", "{s:s, s:i, s:s}", "name", "sb-1",
                                     "pid", 42, "password", "pw"));
    int64_t after = lss_time_now_ms ();

    assert_int_equal (json_object_size (line), 6);
    int64_t ts;
    const char *ts_text = str_at (line, "ts");
    assert_int_equal (strlen (ts_text), 24); /* 2026-11-22T03:30:00.123Z */
    assert_int_equal (lss_time_parse_rfc3339 (ts_text, &ts), 0);
    assert_true (ts >= before && ts <= after);
    assert_string_equal (str_at (line, "level"), "info");
    assert_string_equal (str_at (line, "service"), "svc-test");
    assert_string_equal (str_at (line, "msg"), "sandbox started");
    assert_string_equal (str_at (line, "trace"), "req-1");
    json_t *fields = json_object_get (line, "fields");
    assert_int_equal (json_object_size (fields), 3);
    assert_string_equal (str_at (fields, "name"), "sb-1");
    assert_int_equal (json_integer_value (json_object_get (fields, "pid")), 42);
    assert_string_equal (str_at (fields, "password"), "***");
    /* Key order on the line is fixed. */
    const char *order[] = {"ts", "level", "service", "msg", "trace", "fields"};
    size_t i = 0;
    const char *key;
    json_t *value;
    json_object_foreach (line, key, value)
    {
        assert_string_equal (key, order[i]);
        i++;
    }
    json_decref (line);

    /* No trace, no fields: both keys are left out. Control characters stay on one line. */
    lss_log_set_trace (NULL);
    CAPTURE_ONE (line, lss_log_warn ("two\nlines\tand \x01", NULL));
    assert_int_equal (json_object_size (line), 4);
    assert_string_equal (str_at (line, "level"), "warn");
    assert_string_equal (str_at (line, "msg"), "two\nlines\tand \x01");
    assert_null (json_object_get (line, "trace"));
    assert_null (json_object_get (line, "fields"));
    json_decref (line);

    /* A "trace" field overrides the thread's trace id and leaves the fields. */
    lss_log_set_trace ("thread-trace");
    CAPTURE_ONE (line, lss_log_error ("failed", "{s:s, s:i}", "trace", "req-9", "code", 3));
    assert_string_equal (str_at (line, "level"), "error");
    assert_string_equal (str_at (line, "trace"), "req-9");
    fields = json_object_get (line, "fields");
    assert_int_equal (json_object_size (fields), 1);
    assert_int_equal (json_integer_value (json_object_get (fields, "code")), 3);
    json_decref (line);
    lss_log_set_trace (NULL);

    /* lss_log_json: borrowed fields, masked on the line, untouched in the caller. */
    json_t *obj = json_pack ("{s:s, s:s}", "url", "x", "auth", "Bearer abc");
    CAPTURE_ONE (line, lss_log_json (LSS_LOG_DEBUG, "dbg", obj));
    assert_string_equal (str_at (line, "level"), "debug");
    assert_string_equal (str_at (json_object_get (line, "fields"), "auth"), "***");
    assert_string_equal (str_at (obj, "auth"), "Bearer abc");
    json_decref (line);
    json_decref (obj);

    /* Non-object fields are reported, not dropped silently. */
    json_t *num = json_integer (1);
    CAPTURE_ONE (line, lss_log_json (LSS_LOG_INFO, "odd", num));
    assert_non_null (json_object_get (json_object_get (line, "fields"), "fields_error"));
    json_decref (line);
    json_decref (num);
}

static void *s_trace_reader (void *arg)
{
    (void)arg;
    return (void *)(uintptr_t)strlen (lss_log_trace ());
}

static void test_trace (void **state)
{
    (void)state;
    assert_string_equal (lss_log_trace (), "");
    char long_trace[301];
    memset (long_trace, 't', 300);
    long_trace[300] = '\0';
    lss_log_set_trace (long_trace);
    assert_int_equal (strlen (lss_log_trace ()), 128);
    assert_memory_equal (lss_log_trace (), long_trace, 128);

    /* Per thread: another thread starts with none. */
    pthread_t thread;
    void *len;
    assert_int_equal (pthread_create (&thread, NULL, s_trace_reader, NULL), 0);
    assert_int_equal (pthread_join (thread, &len), 0);
    assert_int_equal ((uintptr_t)len, 0);
    assert_int_equal (strlen (lss_log_trace ()), 128);

    lss_log_set_trace ("abc");
    assert_string_equal (lss_log_trace (), "abc");
    lss_log_set_trace (NULL);
    assert_string_equal (lss_log_trace (), "");
}

/* ------------------------------------------------------------------ levels */

static void test_levels (void **state)
{
    (void)state;
    lss_log_level_t level = LSS_LOG_ERROR;
    assert_int_equal (lss_log_parse_level ("debug", &level), 0);
    assert_int_equal (level, LSS_LOG_DEBUG);
    assert_int_equal (lss_log_parse_level ("WARN", &level), 0);
    assert_int_equal (level, LSS_LOG_WARN);
    assert_int_equal (lss_log_parse_level ("error", &level), 0);
    assert_int_equal (level, LSS_LOG_ERROR);
    assert_int_equal (lss_log_parse_level ("info", &level), 0);
    assert_int_equal (level, LSS_LOG_INFO);
    assert_int_equal (lss_log_parse_level ("verbose", &level), -1);
    assert_int_equal (lss_log_parse_level (NULL, &level), -1);
    assert_int_equal (level, LSS_LOG_INFO);

    lss_log_set_level (LSS_LOG_WARN);
    assert_int_equal (lss_log_get_level (), LSS_LOG_WARN);
    capture_t cap;
    capture_begin (&cap);
    lss_log_debug ("hidden debug", "{s:i}", "n", 1);
    lss_log_info ("hidden info", NULL);
    lss_log_json (LSS_LOG_INFO, "hidden json", NULL);
    lss_log_warn ("shown warn", NULL);
    lss_log_error ("shown error", NULL);
    capture_end (&cap);
    assert_int_equal (count_lines (cap.text), 2);
    assert_null (strstr (cap.text, "hidden"));
    assert_non_null (strstr (cap.text, "\"msg\":\"shown warn\""));
    assert_non_null (strstr (cap.text, "\"msg\":\"shown error\""));
    free (cap.text);
    lss_log_set_level (LSS_LOG_DEBUG);
}

/* ------------------------------------------------------------------ errors and caps */

static void test_bad_format (void **state)
{
    (void)state;
    json_t *line;
    CAPTURE_ONE (line, lss_log_info ("unbalanced", "{s:i", "a", 1));
    assert_string_equal (str_at (line, "msg"), "unbalanced");
    json_t *fields = json_object_get (line, "fields");
    assert_int_equal (json_object_size (fields), 1);
    assert_true (strlen (str_at (fields, "fields_error")) > 0);
    json_decref (line);

    CAPTURE_ONE (line, lss_log_info ("null string", "{s:s}", "name", (const char *)NULL));
    assert_true (strlen (str_at (json_object_get (line, "fields"), "fields_error")) > 0);
    json_decref (line);

    CAPTURE_ONE (line, lss_log_info ("not an object", "i", 5));
    assert_string_equal (str_at (json_object_get (line, "fields"), "fields_error"),
                         "fields format must build an object");
    json_decref (line);
}

static void test_truncation (void **state)
{
    (void)state;
    size_t big_len = 100000;
    char *big = malloc (big_len + 1);
    assert_non_null (big);
    memset (big, 'a', big_len);
    big[big_len] = '\0';

    capture_t cap;
    capture_begin (&cap);
    lss_log_info ("big field", "{s:s, s:i}", "blob", big, "n", 1);
    capture_end (&cap);
    assert_true (cap.len < 64 * 1024);
    json_t *line = parse_one (&cap);
    free (cap.text);
    const char *blob = str_at (json_object_get (line, "fields"), "blob");
    const char *suffix = "\xE2\x80\xA6(truncated 91808 bytes)";
    assert_int_equal (strlen (blob), 8192 + strlen (suffix));
    assert_memory_equal (blob, big, 8192);
    assert_string_equal (blob + 8192, suffix);
    json_decref (line);

    /* The cut never splits a UTF-8 character: "a" + 5000 x "é" cut at 8192 keeps 8191. */
    char *utf = malloc (1 + 2 * 5000 + 1);
    assert_non_null (utf);
    utf[0] = 'a';
    for (size_t i = 0; i < 5000; i++)
        memcpy (utf + 1 + 2 * i, "\xC3\xA9", 2);
    utf[1 + 2 * 5000] = '\0';
    CAPTURE_ONE (line, lss_log_info ("utf8", "{s:s}", "text", utf));
    const char *text = str_at (json_object_get (line, "fields"), "text");
    assert_memory_equal (text, utf, 8191);
    assert_string_equal (text + 8191, "\xE2\x80\xA6(truncated 1810 bytes)");
    json_decref (line);
    free (utf);

    /* The message is capped too. */
    big[20000] = '\0';
    CAPTURE_ONE (line, lss_log_info (big, NULL));
    assert_string_equal (str_at (line, "msg") + 8192, "\xE2\x80\xA6(truncated 11808 bytes)");
    json_decref (line);

    /* Many capped fields still exceed the line cap: fields are dropped, the event is kept. */
    big[8000] = '\0';
    json_t *many = json_object ();
    for (int i = 0; i < 10; i++) {
        char key[16];
        snprintf (key, sizeof key, "f%d", i);
        json_object_set_new (many, key, json_string (big));
    }
    capture_begin (&cap);
    lss_log_json (LSS_LOG_INFO, "many fields", many);
    capture_end (&cap);
    assert_true (cap.len <= 64 * 1024);
    line = parse_one (&cap);
    free (cap.text);
    assert_string_equal (str_at (line, "msg"), "many fields");
    json_t *fields = json_object_get (line, "fields");
    assert_int_equal (json_object_size (fields), 1);
    assert_non_null (strstr (str_at (fields, "fields_error"), "fields dropped"));
    json_decref (line);
    json_decref (many);
    free (big);
}

/* ------------------------------------------------------------------ concurrency */

#define THREADS          4
#define LINES_PER_THREAD 500

static void *s_writer (void *arg)
{
    int id = (int)(intptr_t)arg;
    char payload[2048];
    memset (payload, 'a' + id, sizeof payload - 1);
    payload[sizeof payload - 1] = '\0';
    char trace[32];
    snprintf (trace, sizeof trace, "thread-%d", id);
    lss_log_set_trace (trace);
    for (int i = 0; i < LINES_PER_THREAD; i++)
        lss_log_info ("tick", "{s:i, s:i, s:s}", "thread", id, "seq", i, "payload", payload);
    return NULL;
}

static void test_concurrent (void **state)
{
    (void)state;
    FILE *file = tmpfile ();
    assert_non_null (file);
    lss_log_set_stream (file);
    pthread_t threads[THREADS];
    for (int t = 0; t < THREADS; t++)
        assert_int_equal (pthread_create (&threads[t], NULL, s_writer, (void *)(intptr_t)t), 0);
    for (int t = 0; t < THREADS; t++)
        assert_int_equal (pthread_join (threads[t], NULL), 0);
    lss_log_set_stream (NULL);

    rewind (file);
    static bool seen[THREADS][LINES_PER_THREAD];
    memset (seen, 0, sizeof seen);
    char *buf = NULL;
    size_t cap = 0;
    ssize_t n;
    int lines = 0;
    while ((n = getline (&buf, &cap, file)) > 0) {
        lines++;
        json_error_t error;
        json_t *line = json_loads (buf, 0, &error);
        if (!line)
            fail_msg ("line %d is not whole JSON: %s", lines, error.text);
        json_t *fields = json_object_get (line, "fields");
        int id = (int)json_integer_value (json_object_get (fields, "thread"));
        int seq = (int)json_integer_value (json_object_get (fields, "seq"));
        assert_in_range (id, 0, THREADS - 1);
        assert_in_range (seq, 0, LINES_PER_THREAD - 1);
        assert_false (seen[id][seq]);
        seen[id][seq] = true;
        char trace[32];
        snprintf (trace, sizeof trace, "thread-%d", id);
        assert_string_equal (str_at (line, "trace"), trace);
        assert_int_equal (strlen (str_at (fields, "payload")), 2047);
        json_decref (line);
    }
    free (buf);
    fclose (file);
    assert_int_equal (lines, THREADS * LINES_PER_THREAD);
}

int main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup (test_key_rule, setup),
        cmocka_unit_test_setup (test_mask_nested, setup),
        cmocka_unit_test_setup (test_mask_values, setup),
        cmocka_unit_test_setup (test_line_format, setup),
        cmocka_unit_test_setup (test_trace, setup),
        cmocka_unit_test_setup (test_levels, setup),
        cmocka_unit_test_setup (test_bad_format, setup),
        cmocka_unit_test_setup (test_truncation, setup),
        cmocka_unit_test_setup (test_concurrent, setup),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
