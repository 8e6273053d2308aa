/*  Unit tests for lss_metrics: exact exposition text for each type, labels and escaping,
 *  the children and family caps, concurrent updates, histogram bucket boundaries, render
 *  truncation and the process_* metrics. Every rendered text is also checked line by
 *  line against the exposition grammar.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "lss_metrics.h"

static int s_setup (void **state)
{
    (void)state;
    lss_metrics_reset_for_tests ();
    return 0;
}

static int s_teardown (void **state)
{
    (void)state;
    lss_metrics_reset_for_tests ();
    return 0;
}

/*  True if line is a well-formed sample line: name[{l="v",...}] value */
static bool s_sample_line_ok (const char *line)
{
    const char *p = line;
    if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || *p == '_' || *p == ':'))
        return false;
    while ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
           *p == '_' || *p == ':')
        p++;
    if (*p == '{') {
        p++;
        while (*p != '}') {
            if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || *p == '_'))
                return false;
            while ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
                   (*p >= '0' && *p <= '9') || *p == '_')
                p++;
            if (p[0] != '=' || p[1] != '"')
                return false;
            p += 2;
            while (*p != '"') {
                if (*p == '\0' || *p == '\n')
                    return false;
                if (*p == '\\') {
                    if (p[1] != '\\' && p[1] != '"' && p[1] != 'n')
                        return false;
                    p++;
                }
                p++;
            }
            p++;
            if (*p == ',')
                p++;
            else if (*p != '}')
                return false;
        }
        p++;
    }
    if (*p != ' ')
        return false;
    p++;
    if (strcmp (p, "+Inf") == 0 || strcmp (p, "-Inf") == 0 || strcmp (p, "NaN") == 0)
        return true;
    char *end;
    strtod (p, &end);
    return end != p && *end == '\0';
}

/*  Checks every line of a rendering; returns the number of lines. */
static size_t s_check_lines (const char *text)
{
    size_t lines = 0;
    assert_true (strlen (text) > 0);
    assert_int_equal (text[strlen (text) - 1], '\n');
    const char *p = text;
    while (*p) {
        const char *nl = strchr (p, '\n');
        assert_non_null (nl);
        char line[8192];
        size_t len = (size_t)(nl - p);
        assert_true (len < sizeof line);
        memcpy (line, p, len);
        line[len] = '\0';
        if (strncmp (line, "# HELP ", 7) == 0 || strncmp (line, "# TYPE ", 7) == 0 ||
            strcmp (line, "# lss_metrics: truncated") == 0)
            ;
        else if (!s_sample_line_ok (line))
            fail_msg ("malformed exposition line: %s", line);
        lines++;
        p = nl + 1;
    }
    return lines;
}

/*  The lines of family `name` (from its # HELP up to the next # HELP), caller frees;
 *  NULL if absent. */
static char *s_block (const char *text, const char *name)
{
    char head[256];
    snprintf (head, sizeof head, "# HELP %s ", name);
    const char *start = strstr (text, head);
    if (!start)
        return NULL;
    const char *end = strstr (start + 1, "# HELP ");
    size_t len = end ? (size_t)(end - start) : strlen (start);
    char *block = malloc (len + 1);
    assert_non_null (block);
    memcpy (block, start, len);
    block[len] = '\0';
    return block;
}

static void s_expect_block (const char *name, const char *expected)
{
    char *text = lss_metrics_render ();
    assert_non_null (text);
    s_check_lines (text);
    char *block = s_block (text, name);
    assert_non_null (block);
    assert_string_equal (block, expected);
    free (block);
    free (text);
}

static void test_counter_render (void **state)
{
    (void)state;
    lss_metric_t *c = lss_metrics_counter ("t_requests_total", "Requests served.", NULL);
    s_expect_block ("t_requests_total", "# HELP t_requests_total Requests served.\n"
                                        "# TYPE t_requests_total counter\n"
                                        "t_requests_total 0\n");
    lss_metric_inc (c, 1);
    lss_metric_inc (c, 2.5);
    lss_metric_inc (c, -4); /* counters never go down: ignored */
    lss_metric_inc (c, NAN);
    assert_true (lss_metric_value (c) == 3.5);
    /*  Registering again returns the same family. */
    assert_ptr_equal (lss_metrics_counter ("t_requests_total", "Requests served.", NULL), c);
    s_expect_block ("t_requests_total", "# HELP t_requests_total Requests served.\n"
                                        "# TYPE t_requests_total counter\n"
                                        "t_requests_total 3.5\n");
    /*  The dropped counter is always there, at zero. */
    s_expect_block ("lss_metrics_dropped_total",
                    "# HELP lss_metrics_dropped_total Metric updates dropped: label "
                    "combinations past the per-family cap, or out of memory.\n"
                    "# TYPE lss_metrics_dropped_total counter\n"
                    "lss_metrics_dropped_total 0\n");
}

static void test_gauge_render (void **state)
{
    (void)state;
    lss_metric_t *g = lss_metrics_gauge ("t_queue_depth", "Items queued.", "queue");
    lss_metric_set (g, 7, "work");
    lss_metric_inc (g, -2, "work");
    lss_metric_set (g, 0.1, "retry");
    lss_metric_set (g, -3, "neg");
    lss_metric_set (g, 1e-7, "tiny");
    lss_metric_set (g, INFINITY, "inf");
    lss_metric_set (g, NAN, "nan");
    lss_metric_set (g, 123456789012.5, "big");
    assert_true (lss_metric_value (g, "work") == 5);
    assert_true (lss_metric_value (g, "absent") == 0);
    s_expect_block ("t_queue_depth", "# HELP t_queue_depth Items queued.\n"
                                     "# TYPE t_queue_depth gauge\n"
                                     "t_queue_depth{queue=\"work\"} 5\n"
                                     "t_queue_depth{queue=\"retry\"} 0.1\n"
                                     "t_queue_depth{queue=\"neg\"} -3\n"
                                     "t_queue_depth{queue=\"tiny\"} 1e-07\n"
                                     "t_queue_depth{queue=\"inf\"} +Inf\n"
                                     "t_queue_depth{queue=\"nan\"} NaN\n"
                                     "t_queue_depth{queue=\"big\"} 123456789012.5\n");
    /*  Reading a value never creates a child. */
    s_expect_block ("t_queue_depth", "# HELP t_queue_depth Items queued.\n"
                                     "# TYPE t_queue_depth gauge\n"
                                     "t_queue_depth{queue=\"work\"} 5\n"
                                     "t_queue_depth{queue=\"retry\"} 0.1\n"
                                     "t_queue_depth{queue=\"neg\"} -3\n"
                                     "t_queue_depth{queue=\"tiny\"} 1e-07\n"
                                     "t_queue_depth{queue=\"inf\"} +Inf\n"
                                     "t_queue_depth{queue=\"nan\"} NaN\n"
                                     "t_queue_depth{queue=\"big\"} 123456789012.5\n");
}

static void test_histogram_buckets (void **state)
{
    (void)state;
    const double bounds[] = {1, 2, 5};
    lss_metric_t *h = lss_metrics_histogram ("t_size", "Sizes.", NULL, bounds, 3);
    lss_metric_observe (h, 1);   /* equal to a bound: lands in it */
    lss_metric_observe (h, 0.5); /* le=1 */
    lss_metric_observe (h, 2);   /* le=2 */
    lss_metric_observe (h, 7);   /* only +Inf */
    lss_metric_observe (h, NAN); /* ignored */
    assert_true (lss_metric_value (h) == 4);
    s_expect_block ("t_size", "# HELP t_size Sizes.\n"
                              "# TYPE t_size histogram\n"
                              "t_size_bucket{le=\"1\"} 2\n"
                              "t_size_bucket{le=\"2\"} 3\n"
                              "t_size_bucket{le=\"5\"} 3\n"
                              "t_size_bucket{le=\"+Inf\"} 4\n"
                              "t_size_sum 10.5\n"
                              "t_size_count 4\n");

    /*  Default latency buckets, with a label: each bound value lands in its own bucket. */
    lss_metric_t *lat =
        lss_metrics_histogram ("t_latency_seconds", "Latency.", "route", NULL, 0);
    assert_int_equal (lss_metrics_latency_bucket_count, 14);
    for (size_t i = 0; i < lss_metrics_latency_bucket_count; i++)
        lss_metric_observe (lat, lss_metrics_latency_buckets[i], "/x");
    lss_metric_observe (lat, 0.00051, "/x"); /* just past .0005: le=.001 */
    char *text = lss_metrics_render ();
    assert_non_null (text);
    s_check_lines (text);
    char *block = s_block (text, "t_latency_seconds");
    assert_non_null (block);
    const char *expect[] = {
        "{route=\"/x\",le=\"0.0005\"} 1\n", "{route=\"/x\",le=\"0.001\"} 3\n",
        "{route=\"/x\",le=\"0.0025\"} 4\n", "{route=\"/x\",le=\"0.25\"} 10\n",
        "{route=\"/x\",le=\"1\"} 12\n",     "{route=\"/x\",le=\"2.5\"} 13\n",
        "{route=\"/x\",le=\"10\"} 15\n",    "{route=\"/x\",le=\"+Inf\"} 15\n"};
    for (size_t i = 0; i < sizeof expect / sizeof expect[0]; i++) {
        char line[128];
        snprintf (line, sizeof line, "t_latency_seconds_bucket%s", expect[i]);
        if (!strstr (block, line))
            fail_msg ("missing %s in\n%s", line, block);
    }
    assert_non_null (strstr (block, "t_latency_seconds_count{route=\"/x\"} 15\n"));
    free (block);
    free (text);
}

static void test_labels_and_escaping (void **state)
{
    (void)state;
    lss_metric_t *c = lss_metrics_counter (
        "t_events_total", "Events.\nSecond line with a \\ backslash.", "path,msg");
    lss_metric_inc (c, 1, "a\"b", "c\\d\ne");
    lss_metric_inc (c, 1, "a\"b", "c\\d\ne"); /* same child */
    const char *none = NULL;
    lss_metric_inc (c, 1, none, ""); /* NULL is "" */
    lss_metric_inc (c, 1, "", none); /* the same child */
    lss_metric_inc (c, 1, "a", "b"); /* ("a","b") and ("ab","") differ */
    lss_metric_inc (c, 1, "ab", "");
    lss_metric_inc (c, 1, "bad\xff\xc3_utf8", "ok\xc3\xa9"); /* invalid bytes become '?' */
    s_expect_block ("t_events_total",
                    "# HELP t_events_total Events.\\nSecond line with a \\\\ backslash.\n"
                    "# TYPE t_events_total counter\n"
                    "t_events_total{path=\"a\\\"b\",msg=\"c\\\\d\\ne\"} 2\n"
                    "t_events_total{path=\"\",msg=\"\"} 2\n"
                    "t_events_total{path=\"a\",msg=\"b\"} 1\n"
                    "t_events_total{path=\"ab\",msg=\"\"} 1\n"
                    "t_events_total{path=\"bad?\?_utf8\",msg=\"ok\xc3\xa9\"} 1\n");

    /*  Values are cut at the cap, on a character boundary. */
    lss_metric_t *g = lss_metrics_gauge ("t_long", "Long labels.", "v");
    char value[400];
    memset (value, 'x', 300);
    value[300] = '\0';
    lss_metric_set (g, 1, value);
    memset (value, 'y', LSS_METRICS_MAX_LABEL_VALUE - 1);
    memcpy (value + LSS_METRICS_MAX_LABEL_VALUE - 1, "\xc3\xa9", 3); /* é straddles the cap */
    lss_metric_set (g, 2, value);
    char expected[1024];
    char xs[LSS_METRICS_MAX_LABEL_VALUE + 1], ys[LSS_METRICS_MAX_LABEL_VALUE];
    memset (xs, 'x', LSS_METRICS_MAX_LABEL_VALUE);
    xs[LSS_METRICS_MAX_LABEL_VALUE] = '\0';
    memset (ys, 'y', LSS_METRICS_MAX_LABEL_VALUE - 1);
    ys[LSS_METRICS_MAX_LABEL_VALUE - 1] = '\0';
    snprintf (expected, sizeof expected,
              "# HELP t_long Long labels.\n# TYPE t_long gauge\n"
              "t_long{v=\"%s\"} 1\nt_long{v=\"%s\"} 2\n",
              xs, ys);
    s_expect_block ("t_long", expected);
    /*  A longer value with the same first 128 bytes is the same child. */
    memset (value, 'x', 200);
    value[200] = '\0';
    assert_true (lss_metric_value (g, value) == 1);
}

static void test_children_cap (void **state)
{
    (void)state;
    lss_metric_t *c = lss_metrics_counter ("t_capped_total", "Capped.", "id");
    char id[32];
    for (int i = 0; i < LSS_METRICS_MAX_CHILDREN + 5; i++) {
        snprintf (id, sizeof id, "id-%d", i);
        lss_metric_inc (c, 1, id);
    }
    lss_metric_t *dropped = lss_metrics_counter ("lss_metrics_dropped_total", NULL, NULL);
    assert_true (lss_metric_value (dropped) == 5);
    assert_true (lss_metric_value (c, "id-999") == 1);
    assert_true (lss_metric_value (c, "id-1000") == 0);
    /*  Existing children still count after the cap. */
    lss_metric_inc (c, 1, "id-0");
    assert_true (lss_metric_value (c, "id-0") == 2);
    assert_true (lss_metric_value (dropped) == 5);
    char *text = lss_metrics_render ();
    assert_non_null (text);
    s_check_lines (text);
    char *block = s_block (text, "t_capped_total");
    size_t series = 0;
    for (const char *p = block; (p = strstr (p, "\nt_capped_total{")); p++)
        series++;
    assert_int_equal (series, LSS_METRICS_MAX_CHILDREN);
    assert_non_null (strstr (text, "\nlss_metrics_dropped_total 5\n"));
    free (block);
    free (text);
}

static void test_family_cap (void **state)
{
    (void)state;
    char name[64];
    lss_metric_t *last = NULL;
    /*  lss_metrics_dropped_total is one of the families. */
    for (int i = 0; i < LSS_METRICS_MAX_FAMILIES - 1; i++) {
        snprintf (name, sizeof name, "t_family_%d", i);
        last = lss_metrics_gauge (name, "One of many.", NULL);
        assert_string_equal (lss_metric_name (last), name);
    }
    lss_metric_t *sink = lss_metrics_gauge ("t_one_too_many", "Over the cap.", "x");
    assert_string_not_equal (lss_metric_name (sink), "t_one_too_many");
    lss_metric_set (sink, 5, "ignored"); /* accepted and ignored */
    lss_metric_inc (sink, 5);
    assert_true (lss_metric_value (sink) == 0);
    /*  Known names are still found. */
    assert_ptr_equal (lss_metrics_gauge (name, "One of many.", NULL), last);
    char *text = lss_metrics_render ();
    assert_non_null (text);
    s_check_lines (text);
    assert_null (strstr (text, "t_one_too_many"));
    free (text);
}

typedef struct {
    lss_metric_t *plain;
    lss_metric_t *labelled;
    lss_metric_t *hist;
    int id;
} s_worker_t;

#define S_THREADS    4
#define S_ITERATIONS 100000

static void *s_worker (void *arg)
{
    s_worker_t *w = arg;
    const char *mine = w->id % 2 ? "odd" : "even";
    for (int i = 0; i < S_ITERATIONS; i++) {
        lss_metric_inc (w->plain, 1);
        lss_metric_inc (w->labelled, 1, mine);
        lss_metric_inc (w->labelled, 0.5, "shared");
        lss_metric_observe (w->hist, (double)(i % 3));
    }
    return NULL;
}

static void test_concurrent_updates (void **state)
{
    (void)state;
    const double bounds[] = {0, 1};
    s_worker_t workers[S_THREADS];
    pthread_t threads[S_THREADS];
    for (int i = 0; i < S_THREADS; i++) {
        workers[i] = (s_worker_t){
            .plain = lss_metrics_counter ("t_plain_total", "Plain.", NULL),
            .labelled = lss_metrics_counter ("t_labelled_total", "Labelled.", "who"),
            .hist = lss_metrics_histogram ("t_hist", "Histogram.", NULL, bounds, 2),
            .id = i,
        };
        assert_int_equal (pthread_create (&threads[i], NULL, s_worker, &workers[i]), 0);
    }
    for (int i = 0; i < S_THREADS; i++)
        pthread_join (threads[i], NULL);
    lss_metric_t *plain = workers[0].plain;
    assert_true (lss_metric_value (plain) == (double)S_THREADS * S_ITERATIONS);
    assert_true (lss_metric_value (workers[0].labelled, "odd") ==
                 (double)S_THREADS / 2 * S_ITERATIONS);
    assert_true (lss_metric_value (workers[0].labelled, "even") ==
                 (double)S_THREADS / 2 * S_ITERATIONS);
    assert_true (lss_metric_value (workers[0].labelled, "shared") ==
                 (double)S_THREADS * S_ITERATIONS * 0.5);
    assert_true (lss_metric_value (workers[0].hist) == (double)S_THREADS * S_ITERATIONS);
    char *text = lss_metrics_render ();
    assert_non_null (text);
    s_check_lines (text);
    /*  i % 3 over 100000: 33334 zeros, 33333 ones, 33333 twos, per thread. */
    assert_non_null (strstr (text, "t_hist_bucket{le=\"0\"} 133336\n"));
    assert_non_null (strstr (text, "t_hist_bucket{le=\"1\"} 266668\n"));
    assert_non_null (strstr (text, "t_hist_bucket{le=\"+Inf\"} 400000\n"));
    assert_non_null (strstr (text, "t_hist_sum 399996\n"));
    free (text);
}

static void test_process_metrics (void **state)
{
    (void)state;
    char *text = lss_metrics_render ();
    assert_non_null (text);
    s_check_lines (text);
    const char *names[] = {"process_resident_memory_bytes", "process_cpu_seconds_total",
                           "process_open_fds", "process_start_time_seconds", "process_max_fds"};
    double values[5];
    for (size_t i = 0; i < 5; i++) {
        char *block = s_block (text, names[i]);
        assert_non_null (block);
        char prefix[128];
        snprintf (prefix, sizeof prefix, "\n%s ", names[i]);
        const char *line = strstr (block, prefix);
        assert_non_null (line);
        values[i] = strtod (line + strlen (prefix), NULL);
        free (block);
    }
    assert_true (values[0] > 1024 * 1024); /* resident: more than 1 MiB */
    assert_true (values[1] >= 0);          /* cpu */
    assert_true (values[2] >= 3);          /* stdin, stdout, stderr at least */
    double now = (double)time (NULL);
    assert_true (values[3] > now - 3600 && values[3] <= now + 1); /* started recently */
    assert_true (values[4] >= values[2]);
    free (text);
}

static void test_render_truncation (void **state)
{
    (void)state;
    /*  8 labels of 128 bytes: about 1.1 KB per series, 1000 series per family, so about
     *  eight families fill LSS_METRICS_RENDER_MAX. */
    char values[LSS_METRICS_MAX_LABELS][LSS_METRICS_MAX_LABEL_VALUE + 1];
    for (int l = 0; l < LSS_METRICS_MAX_LABELS; l++) {
        memset (values[l], 'a' + l, LSS_METRICS_MAX_LABEL_VALUE);
        values[l][LSS_METRICS_MAX_LABEL_VALUE] = '\0';
    }
    const char *ptrs[LSS_METRICS_MAX_LABELS];
    for (int l = 0; l < LSS_METRICS_MAX_LABELS; l++)
        ptrs[l] = values[l];
    for (int f = 0; f < 10; f++) {
        char name[32];
        snprintf (name, sizeof name, "t_wide_%d", f);
        lss_metric_t *g = lss_metrics_gauge (name, "Wide.", "a,b,c,d,e,f,g,h");
        for (int i = 0; i < LSS_METRICS_MAX_CHILDREN; i++) {
            snprintf (values[0], 16, "%d", i);
            lss_metric_set_v (g, i, ptrs);
        }
    }
    char *text = lss_metrics_render ();
    assert_non_null (text);
    size_t len = strlen (text);
    assert_true (len <= LSS_METRICS_RENDER_MAX + 64);
    assert_true (len > LSS_METRICS_RENDER_MAX - 4096);
    const char *trailer = "# lss_metrics: truncated\n";
    assert_string_equal (text + len - strlen (trailer), trailer);
    s_check_lines (text); /* every kept line is whole */
    assert_null (strstr (text, "t_wide_9"));
    free (text);
}

int main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown (test_counter_render, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_gauge_render, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_histogram_buckets, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_labels_and_escaping, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_children_cap, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_family_cap, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_concurrent_updates, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_process_metrics, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_render_truncation, s_setup, s_teardown),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
