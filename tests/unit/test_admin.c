/*  Unit tests for lss_admin: a real endpoint on 127.0.0.1 with an ephemeral port, queried
 *  with blocking libcurl requests: health (fresh and stalled heartbeat), readiness both
 *  ways, metrics (content type, a counter we incremented, a body larger than one write
 *  chunk), 404, 405, keep-alive, and constructor failures (port taken, bad address).
 *  Waits are polls with deadlines, never fixed sleeps.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <curl/curl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "lss_admin.h"
#include "lss_metrics.h"
#include "lss_util.h"

#define S_BODY_MAX (4 << 20)

typedef struct {
    lss_buf_t body;
    long status;
    char content_type[128];
    char allow[64];
    long connects; /* new connections this request made */
} s_reply_t;

static size_t s_on_body (char *data, size_t size, size_t n, void *arg)
{
    s_reply_t *reply = arg;
    return lss_buf_append (&reply->body, data, size * n) == 0 ? size * n : 0;
}

static size_t s_on_header (char *data, size_t size, size_t n, void *arg)
{
    s_reply_t *reply = arg;
    size_t len = size * n;
    if (len > 7 && strncasecmp (data, "allow: ", 7) == 0) {
        size_t copy = len - 7 < sizeof reply->allow - 1 ? len - 7 : sizeof reply->allow - 1;
        memcpy (reply->allow, data + 7, copy);
        reply->allow[copy] = '\0';
        reply->allow[strcspn (reply->allow, "\r\n")] = '\0';
    }
    return len;
}

/*  Performs one request on curl (a reused handle keeps the connection alive). The body
 *  is NUL-terminated in reply->body.data. Returns the curl code. */
static CURLcode s_request (CURL *curl, int port, const char *method, const char *path,
                           s_reply_t *reply)
{
    lss_buf_free (&reply->body);
    memset (reply, 0, sizeof *reply);
    lss_buf_init (&reply->body, S_BODY_MAX);
    char url[256];
    snprintf (url, sizeof url, "http://127.0.0.1:%d%s", port, path);
    curl_easy_setopt (curl, CURLOPT_URL, url);
    curl_easy_setopt (curl, CURLOPT_TIMEOUT_MS, 10000L);
    curl_easy_setopt (curl, CURLOPT_WRITEFUNCTION, s_on_body);
    curl_easy_setopt (curl, CURLOPT_WRITEDATA, reply);
    curl_easy_setopt (curl, CURLOPT_HEADERFUNCTION, s_on_header);
    curl_easy_setopt (curl, CURLOPT_HEADERDATA, reply);
    curl_easy_setopt (curl, CURLOPT_NOSIGNAL, 1L);
    if (strcmp (method, "POST") == 0) {
        curl_easy_setopt (curl, CURLOPT_POSTFIELDS, "a=1&b=2");
    } else {
        curl_easy_setopt (curl, CURLOPT_HTTPGET, 1L);
    }
    CURLcode rc = curl_easy_perform (curl);
    curl_easy_getinfo (curl, CURLINFO_RESPONSE_CODE, &reply->status);
    curl_easy_getinfo (curl, CURLINFO_NUM_CONNECTS, &reply->connects);
    char *ct = NULL;
    curl_easy_getinfo (curl, CURLINFO_CONTENT_TYPE, &ct);
    snprintf (reply->content_type, sizeof reply->content_type, "%s", ct ? ct : "");
    lss_buf_append (&reply->body, "", 1);
    return rc;
}

/*  GETs path on a fresh connection; asserts the transfer worked. */
static void s_get (int port, const char *path, s_reply_t *reply)
{
    CURL *curl = curl_easy_init ();
    assert_non_null (curl);
    assert_int_equal (s_request (curl, port, "GET", path, reply), CURLE_OK);
    curl_easy_cleanup (curl);
}

typedef struct {
    atomic_bool ready;
    atomic_int calls;
} s_readiness_t;

static bool s_ready_cb (void *arg, char *reason, size_t reason_size)
{
    s_readiness_t *r = arg;
    atomic_fetch_add (&r->calls, 1);
    if (atomic_load (&r->ready))
        return true;
    snprintf (reason, reason_size, "warming up\ncache 3/5");
    return false;
}

static void test_health_and_readiness (void **state)
{
    (void)state;
    s_readiness_t readiness = {false, 0};
    lss_admin_t *admin = lss_admin_new ("127.0.0.1:0", 0, s_ready_cb, &readiness);
    assert_non_null (admin);
    int port = lss_admin_port (admin);
    assert_true (port > 0 && port < 65536);
    char expect[64];
    snprintf (expect, sizeof expect, "127.0.0.1:%d", port);
    assert_string_equal (lss_admin_address (admin), expect);

    s_reply_t reply = {0};
    s_get (port, "/healthz", &reply);
    assert_int_equal (reply.status, 200);
    assert_string_equal ((char *)reply.body.data, "ok\n");

    s_get (port, "/readyz", &reply);
    assert_int_equal (reply.status, 503);
    assert_string_equal ((char *)reply.body.data, "not ready: warming up cache 3/5\n");
    assert_int_equal (atomic_load (&readiness.calls), 1);

    atomic_store (&readiness.ready, true);
    s_get (port, "/readyz", &reply);
    assert_int_equal (reply.status, 200);
    assert_string_equal ((char *)reply.body.data, "ready\n");
    assert_int_equal (atomic_load (&readiness.calls), 2);

    /*  Query strings do not change the route. */
    s_get (port, "/healthz?verbose=1", &reply);
    assert_int_equal (reply.status, 200);

    lss_buf_free (&reply.body);
    lss_admin_destroy (&admin);
    assert_null (admin);
    lss_admin_destroy (&admin); /* idempotent */
}

static void test_stall (void **state)
{
    (void)state;
    const int64_t stall_ms = 200;
    lss_admin_t *admin = lss_admin_new ("127.0.0.1:0", stall_ms, NULL, NULL);
    assert_non_null (admin);
    int port = lss_admin_port (admin);
    s_reply_t reply = {0};
    CURL *curl = curl_easy_init ();
    assert_non_null (curl);

    /*  The heartbeat's time lies in [before, beat]. */
    int64_t before = lss_time_mono_ms ();
    lss_admin_heartbeat (admin);
    int64_t beat = lss_time_mono_ms ();
    assert_int_equal (s_request (curl, port, "GET", "/healthz", &reply), CURLE_OK);
    if (lss_time_mono_ms () - beat < stall_ms) /* too slow a host could not tell */
        assert_int_equal (reply.status, 200);

    /*  No heartbeat: /healthz turns 503 once the limit has passed, and not before. */
    int64_t deadline = beat + 5000;
    for (;;) {
        int64_t asked = lss_time_mono_ms ();
        assert_int_equal (s_request (curl, port, "GET", "/healthz", &reply), CURLE_OK);
        if (reply.status == 503)
            break;
        assert_int_equal (reply.status, 200);
        assert_true (asked - beat <= stall_ms); /* 200 only while within the limit */
        assert_true (lss_time_mono_ms () < deadline);
        struct timespec ts = {0, 10 * 1000 * 1000};
        nanosleep (&ts, NULL); /* poll interval, not synchronisation */
    }
    assert_true (lss_time_mono_ms () - before > stall_ms); /* 503 only past the limit */
    const char *prefix = "stalled: main loop silent for ";
    const char *body = (char *)reply.body.data;
    assert_memory_equal (body, prefix, strlen (prefix));
    char *end;
    long silent = strtol (body + strlen (prefix), &end, 10);
    assert_true (silent > stall_ms);
    assert_string_equal (end, " ms\n");

    /*  A heartbeat makes it healthy again. */
    lss_admin_heartbeat (admin);
    beat = lss_time_mono_ms ();
    assert_int_equal (s_request (curl, port, "GET", "/healthz", &reply), CURLE_OK);
    if (lss_time_mono_ms () - beat < stall_ms)
        assert_int_equal (reply.status, 200);

    curl_easy_cleanup (curl);
    lss_buf_free (&reply.body);
    lss_admin_destroy (&admin);
}

static void test_metrics_route (void **state)
{
    (void)state;
    lss_metrics_reset_for_tests ();
    lss_metric_t *c = lss_metrics_counter ("t_admin_things_total", "Things.", NULL);
    lss_metric_inc (c, 3);
    /*  Enough series to need several write chunks. */
    lss_metric_t *g = lss_metrics_gauge ("t_admin_wide", "Wide.", "id");
    for (int i = 0; i < 1000; i++) {
        char id[64];
        snprintf (id, sizeof id, "series-%04d-abcdefghijklmnopqrstuvwxyz", i);
        lss_metric_set (g, i, id);
    }
    lss_admin_t *admin = lss_admin_new ("127.0.0.1:0", 0, NULL, NULL);
    assert_non_null (admin);
    int port = lss_admin_port (admin);
    s_reply_t reply = {0};
    CURL *curl = curl_easy_init ();
    assert_non_null (curl);

    assert_int_equal (s_request (curl, port, "GET", "/healthz", &reply), CURLE_OK);
    assert_int_equal (reply.status, 200);
    assert_int_equal (s_request (curl, port, "GET", "/metrics", &reply), CURLE_OK);
    assert_int_equal (reply.status, 200);
    assert_int_equal (reply.connects, 0); /* keep-alive: the same connection */
    assert_string_equal (reply.content_type, "text/plain; version=0.0.4; charset=utf-8");
    const char *body = (char *)reply.body.data;
    assert_true (reply.body.len > 3 * 16384);
    assert_non_null (strstr (body, "\nt_admin_things_total 3\n"));
    assert_non_null (
        strstr (body, "\nt_admin_wide{id=\"series-0000-abcdefghijklmnopqrstuvwxyz\"} 0\n"));
    assert_non_null (
        strstr (body, "\nt_admin_wide{id=\"series-0999-abcdefghijklmnopqrstuvwxyz\"} 999\n"));
    assert_non_null (strstr (body, "\nprocess_open_fds ")); /* the last family arrived */
    assert_non_null (
        strstr (body, "\nlss_admin_requests_total{path=\"/healthz\",code=\"200\"} 1\n"));

    /*  The /metrics request itself was counted once answered. */
    lss_metric_t *requests =
        lss_metrics_counter ("lss_admin_requests_total", NULL, "path,code");
    assert_true (lss_metric_value (requests, "/metrics", "200") == 1);

    curl_easy_cleanup (curl);
    lss_buf_free (&reply.body);
    lss_admin_destroy (&admin);
    lss_metrics_reset_for_tests ();
}

static void test_not_found_and_method (void **state)
{
    (void)state;
    lss_metrics_reset_for_tests ();
    lss_admin_t *admin = lss_admin_new ("127.0.0.1:0", 0, NULL, NULL);
    assert_non_null (admin);
    int port = lss_admin_port (admin);
    s_reply_t reply = {0};
    CURL *curl = curl_easy_init ();
    assert_non_null (curl);

    assert_int_equal (s_request (curl, port, "GET", "/nope", &reply), CURLE_OK);
    assert_int_equal (reply.status, 404);
    assert_int_equal (s_request (curl, port, "GET", "/healthz/extra", &reply), CURLE_OK);
    assert_int_equal (reply.status, 404);
    assert_int_equal (s_request (curl, port, "POST", "/metrics", &reply), CURLE_OK);
    assert_int_equal (reply.status, 405);
    assert_string_equal (reply.allow, "GET");
    assert_int_equal (s_request (curl, port, "POST", "/nope", &reply), CURLE_OK);
    assert_int_equal (reply.status, 405);
    /*  The server is still fine afterwards. */
    assert_int_equal (s_request (curl, port, "GET", "/healthz", &reply), CURLE_OK);
    assert_int_equal (reply.status, 200);

    lss_metric_t *requests =
        lss_metrics_counter ("lss_admin_requests_total", NULL, "path,code");
    assert_true (lss_metric_value (requests, "other", "404") == 2);
    assert_true (lss_metric_value (requests, "/metrics", "405") == 1);
    assert_true (lss_metric_value (requests, "other", "405") == 1);
    assert_true (lss_metric_value (requests, "/healthz", "200") == 1);

    curl_easy_cleanup (curl);
    lss_buf_free (&reply.body);
    lss_admin_destroy (&admin);
    lss_metrics_reset_for_tests ();
}

static void test_constructor_failures (void **state)
{
    (void)state;
    lss_admin_t *first = lss_admin_new ("127.0.0.1:0", 0, NULL, NULL);
    assert_non_null (first);
    char listen[64];
    snprintf (listen, sizeof listen, "127.0.0.1:%d", lss_admin_port (first));
    assert_null (lss_admin_new (listen, 0, NULL, NULL)); /* port taken */
    assert_null (lss_admin_new ("127.0.0.1", 0, NULL, NULL));
    assert_null (lss_admin_new ("127.0.0.1:65536", 0, NULL, NULL));
    assert_null (lss_admin_new ("127.0.0.1:-1", 0, NULL, NULL));
    assert_null (lss_admin_new ("127.0.0.1:80x", 0, NULL, NULL));
    assert_null (lss_admin_new (NULL, 0, NULL, NULL));
    /*  The first endpoint is unaffected. */
    s_reply_t reply = {0};
    s_get (lss_admin_port (first), "/healthz", &reply);
    assert_int_equal (reply.status, 200);
    lss_buf_free (&reply.body);
    lss_admin_destroy (&first);

    /*  Bracketed IPv6 loopback, where the host has it. */
    lss_admin_t *v6 = lss_admin_new ("[::1]:0", 0, NULL, NULL);
    if (v6) {
        char expect[64];
        snprintf (expect, sizeof expect, "[::1]:%d", lss_admin_port (v6));
        assert_string_equal (lss_admin_address (v6), expect);
        lss_admin_destroy (&v6);
    }
}

int main (void)
{
    curl_global_init (CURL_GLOBAL_DEFAULT);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_health_and_readiness),
        cmocka_unit_test (test_stall),
        cmocka_unit_test (test_metrics_route),
        cmocka_unit_test (test_not_found_and_method),
        cmocka_unit_test (test_constructor_failures),
    };
    int rc = cmocka_run_group_tests (tests, NULL, NULL);
    curl_global_cleanup ();
    return rc;
}
