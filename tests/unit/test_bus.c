/*  Bus tests between real processes: PUB/SUB with bus_peer, ROUTER/DEALER with bus_peer,
 *  and `lss tap` against a real publisher (messages, seq gaps, garbage, bad schemas). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <czmq.h>
#include <msgpack.h>

#include "lss_bus.h"
#include "lss_log.h"
#include "lss_testproc.h"
#include "lss_util.h"

static int s_recv_deadline (zsock_t *sock, int timeout_ms, zframe_t **route, char *topic,
                            size_t topic_size, lss_envelope_t *env, lss_msg_kind_t *kind,
                            void **body, char *err, size_t err_size)
{
    zpoller_t *poller = zpoller_new (sock, NULL);
    void *ready = zpoller_wait (poller, timeout_ms);
    zpoller_destroy (&poller);
    if (!ready)
        return -3;
    return lss_bus_recv (sock, route, topic, topic_size, env, kind, body, err, err_size);
}

static void test_pubsub_two_processes (void **state)
{
    (void)state;
    zsock_t *sub = lss_bus_socket_new (ZMQ_SUB, "@tcp://127.0.0.1:*", NULL);
    assert_non_null (sub);
    zsock_set_subscribe (sub, "exec.output.");
    char endpoint[256], path[PATH_MAX];
    snprintf (endpoint, sizeof endpoint, "%s", zsock_endpoint (sub));
    char *argv[] = {(char *)tp_build_path (path, sizeof path, "test/helpers/bus_peer"), "pub",
                    endpoint, NULL};
    tp_proc_t peer;
    assert_int_equal (tp_spawn (&peer, argv, NULL, false), 0);
    uint64_t last = 0;
    for (int got = 0; got < 30; got++) {
        char topic[128], err[256];
        lss_envelope_t env;
        lss_msg_kind_t kind;
        void *body;
        int rc = s_recv_deadline (sub, 10000, NULL, topic, sizeof topic, &env, &kind, &body,
                                  err, sizeof err);
        if (rc)
            fail_msg ("receive %d failed: rc %d %s", got, rc, err);
        assert_string_equal (topic, "exec.output.e-pub");
        assert_int_equal (kind, LSS_MSG_exec_output);
        assert_string_equal (env.src, "bus_peer/pub");
        assert_string_equal (env.trace, "trace-pub");
        lss_exec_output_t *out = body;
        assert_int_equal ((uint64_t)out->seq, env.seq); /* both count from 1 together */
        if (last)
            assert_int_equal (env.seq, last + 1); /* no gaps between two live peers */
        last = env.seq;
        char want[32];
        int n = snprintf (want, sizeof want, "chunk %llu", (unsigned long long)env.seq);
        assert_int_equal (out->data.len, (size_t)n);
        assert_memory_equal (out->data.data, want, (size_t)n);
        lss_proto_body_free (kind, &body);
    }
    kill (peer.pid, SIGTERM);
    int status = tp_wait (&peer, 5000);
    assert_true (WIFEXITED (status) && WEXITSTATUS (status) == 0);
    zsock_destroy (&sub);
}

static void s_send (zsock_t *sock, lss_msg_kind_t kind, const void *body, lss_envelope_t *env)
{
    assert_int_equal (lss_bus_envelope_init (env, kind, NULL, "test", 1, "t-rd"), 0);
    assert_int_equal (lss_bus_send (sock, NULL, 0, NULL, env, kind, body), 0);
}

static void *s_expect (zsock_t *sock, lss_msg_kind_t want)
{
    lss_envelope_t env;
    lss_msg_kind_t kind;
    void *body;
    char err[256];
    int rc = s_recv_deadline (sock, 5000, NULL, NULL, 0, &env, &kind, &body, err, sizeof err);
    if (rc)
        fail_msg ("no reply: rc %d %s", rc, err);
    if (kind != want)
        fail_msg ("expected %s, got %s", lss_proto_desc (want)->pattern, env.type);
    assert_string_equal (env.src, "bus_peer/router");
    return body;
}

static void test_router_dealer_two_processes (void **state)
{
    (void)state;
    char path[PATH_MAX], line[512];
    char *argv[] = {(char *)tp_build_path (path, sizeof path, "test/helpers/bus_peer"),
                    "router", NULL};
    tp_proc_t peer;
    assert_int_equal (tp_spawn (&peer, argv, NULL, true), 0);
    assert_int_equal (tp_read_line (&peer, line, sizeof line, 10000), 0);
    assert_non_null (strstr (line, "tcp://127.0.0.1:"));
    char ep[600];
    snprintf (ep, sizeof ep, ">%s", line);
    zsock_t *dealer = lss_bus_socket_new (ZMQ_DEALER, ep, NULL);
    assert_non_null (dealer);

    char *args[] = {"/bin/true"};
    lss_exec_start_t req = {.exec_id = "e1", .argv = {args, 1}};
    lss_envelope_t env;
    s_send (dealer, LSS_MSG_exec_start, &req, &env);
    void *b = s_expect (dealer, LSS_MSG_exec_started);
    assert_string_equal (((lss_exec_started_t *)b)->exec_id, "e1");
    assert_int_equal (((lss_exec_started_t *)b)->pid, 42);
    lss_proto_body_free (LSS_MSG_exec_started, &b);
    b = s_expect (dealer, LSS_MSG_exec_output);
    lss_exec_output_t *out = b;
    assert_int_equal (out->data.len, strlen ("ran /bin/true"));
    assert_memory_equal (out->data.data, "ran /bin/true", out->data.len);
    lss_proto_body_free (LSS_MSG_exec_output, &b);
    b = s_expect (dealer, LSS_MSG_exec_end);
    assert_int_equal (((lss_exec_end_t *)b)->exit_code, 3);
    lss_proto_body_free (LSS_MSG_exec_end, &b);

    /* Garbage gets an error reply, and the peer keeps serving. */
    const uint8_t junk[] = {0xdd, 0xff, 0xff, 0xff, 0xff};
    assert_int_equal (zmq_send (zsock_resolve (dealer), junk, sizeof junk, 0),
                      (int)sizeof junk);
    b = s_expect (dealer, LSS_MSG_error);
    assert_string_equal (((lss_error_t *)b)->code, "invalid_message");
    assert_non_null (strstr (((lss_error_t *)b)->message, "elements"));
    lss_proto_body_free (LSS_MSG_error, &b);

    lss_exec_cancel_t quit = {.exec_id = "quit"};
    s_send (dealer, LSS_MSG_exec_cancel, &quit, &env);
    b = s_expect (dealer, LSS_MSG_ok);
    assert_string_equal (((lss_ok_t *)b)->ref, env.id);
    lss_proto_body_free (LSS_MSG_ok, &b);
    int status = tp_wait (&peer, 5000);
    assert_true (WIFEXITED (status) && WEXITSTATUS (status) == 0);
    zsock_destroy (&dealer);
}

static void s_publish (zsock_t *pub, uint64_t seq)
{
    char data[32];
    int n = snprintf (data, sizeof data, "out %llu", (unsigned long long)seq);
    lss_exec_output_t out = {.exec_id = "e9",
                             .stream = "stderr",
                             .seq = (int64_t)seq,
                             .data = {(uint8_t *)data, (size_t)n}};
    lss_envelope_t env;
    assert_int_equal (
        lss_bus_envelope_init (&env, LSS_MSG_exec_output, NULL, "test/tap", seq, "tr-1"), 0);
    assert_int_equal (
        lss_bus_send (pub, NULL, 0, "exec.output.e9", &env, LSS_MSG_exec_output, &out), 0);
}

static void test_tap_against_publisher (void **state)
{
    (void)state;
    zsock_t *pub = lss_bus_socket_new (ZMQ_PUB, "@tcp://127.0.0.1:*", NULL);
    assert_non_null (pub);
    char endpoint[256], path[PATH_MAX], line[65536];
    snprintf (endpoint, sizeof endpoint, "%s", zsock_endpoint (pub));
    char *argv[] = {(char *)tp_build_path (path, sizeof path, "bin/lss"),
                    "tap",
                    endpoint,
                    "--topic",
                    "exec.",
                    "--count",
                    "12",
                    "--timeout",
                    "30",
                    NULL};
    tp_proc_t tap;
    assert_int_equal (tp_spawn (&tap, argv, NULL, true), 0);

    /* Phase A: publish until the tap shows a first message (it subscribes asynchronously). */
    uint64_t seq = 0;
    bool first = false;
    for (int i = 0; i < 1000 && !first; i++) {
        s_publish (pub, ++seq);
        first = tp_read_line (&tap, line, sizeof line, 10) == 0;
    }
    assert_true (first);
    json_error_t jerr;
    json_t *m = json_loads (line, 0, &jerr);
    assert_non_null (m);
    assert_string_equal (json_string_value (json_object_get (m, "topic")), "exec.output.e9");
    assert_string_equal (json_string_value (json_object_get (m, "type")), "exec.output");
    assert_string_equal (json_string_value (json_object_get (m, "src")), "test/tap");
    assert_string_equal (json_string_value (json_object_get (m, "trace")), "tr-1");
    assert_true (json_is_integer (json_object_get (m, "seq")));
    assert_true (json_is_string (json_object_get (m, "time")));
    json_t *body = json_object_get (m, "body");
    assert_string_equal (json_string_value (json_object_get (body, "stream")), "stderr");
    assert_non_null (json_string_value (json_object_get (body, "data"))); /* base64 */
    json_decref (m);

    /* Phase B: garbage, a gap of 4, a known type breaking its schema, then valid ones. */
    void *h = zsock_resolve (pub);
    zmq_send (h, "exec.garbage", 12, ZMQ_SNDMORE);
    const uint8_t junk[] = {0xc1, 0x00};
    zmq_send (h, junk, sizeof junk, 0);
    seq += 5;
    s_publish (pub, seq);
    msgpack_sbuffer sb;
    msgpack_sbuffer_init (&sb);
    msgpack_packer pk;
    msgpack_packer_init (&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map (&pk, 7);
    const char *kv[] = {"v",  NULL,  "type",  "exec.output", "id", "x1",   "seq",
                        NULL, "src", "other", "ts",          NULL, "body", NULL};
    for (int i = 0; i < 14; i += 2) {
        msgpack_pack_str (&pk, strlen (kv[i]));
        msgpack_pack_str_body (&pk, kv[i], strlen (kv[i]));
        if (kv[i + 1]) {
            msgpack_pack_str (&pk, strlen (kv[i + 1]));
            msgpack_pack_str_body (&pk, kv[i + 1], strlen (kv[i + 1]));
        } else if (i == 12)
            msgpack_pack_map (&pk, 0); /* body without its required fields */
        else
            msgpack_pack_uint8 (&pk, 1);
    }
    zmq_send (h, "exec.output.bad", 15, ZMQ_SNDMORE);
    zmq_send (h, sb.data, sb.size, 0);
    msgpack_sbuffer_destroy (&sb);

    bool saw_gap = false, saw_garbage = false, saw_invalid = false, eof = false;
    for (int i = 0; i < 2000 && !eof; i++) {
        if (tp_read_line (&tap, line, sizeof line, 20) != 0) {
            siginfo_t info = {0}; /* peek, do not reap: tp_wait reaps below */
            if ((waitid (P_PID, (id_t)tap.pid, &info, WEXITED | WNOHANG | WNOWAIT) == 0 &&
                 info.si_pid != 0) ||
                i > 1500)
                eof = true;
            else
                s_publish (pub, ++seq);
            continue;
        }
        json_t *o = json_loads (line, 0, &jerr);
        if (!o)
            fail_msg ("tap printed a line that is not JSON: %s", line);
        const char *w = json_string_value (json_object_get (o, "warning"));
        const char *e = json_string_value (json_object_get (o, "error"));
        if (w && strcmp (w, "seq_gap") == 0) {
            assert_int_equal (json_integer_value (json_object_get (o, "missed")), 4);
            assert_string_equal (json_string_value (json_object_get (o, "src")), "test/tap");
            saw_gap = true;
        }
        if (e && strcmp (e, "undecodable") == 0) {
            assert_string_equal (json_string_value (json_object_get (o, "topic")),
                                 "exec.garbage");
            assert_non_null (
                strstr (json_string_value (json_object_get (o, "reason")), "0xc1"));
            saw_garbage = true;
        }
        const char *inv = json_string_value (json_object_get (o, "invalid"));
        if (inv) {
            assert_non_null (strstr (inv, "required field"));
            saw_invalid = true;
        }
        json_decref (o);
    }
    int status = tp_wait (&tap, 10000);
    assert_true (WIFEXITED (status) && WEXITSTATUS (status) == 0);
    assert_true (saw_gap);
    assert_true (saw_garbage);
    assert_true (saw_invalid);
    zsock_destroy (&pub);
}

static void test_tap_usage_and_timeout (void **state)
{
    (void)state;
    char path[PATH_MAX];
    char *bad[] = {(char *)tp_build_path (path, sizeof path, "bin/lss"), "tap", "--count",
                   "zero", NULL};
    tp_proc_t p;
    assert_int_equal (tp_spawn (&p, bad, NULL, false), 0);
    int status = tp_wait (&p, 5000);
    assert_true (WIFEXITED (status) && WEXITSTATUS (status) == 2);
    /* Nothing publishes on this port: --count unmet when --timeout ends → exit 1. */
    char *idle[] = {path, "tap", "tcp://127.0.0.1:9", "--count", "1", "--timeout", "1", NULL};
    long long t0 = tp_now_ms ();
    assert_int_equal (tp_spawn (&p, idle, NULL, false), 0);
    status = tp_wait (&p, 10000);
    assert_true (WIFEXITED (status) && WEXITSTATUS (status) == 1);
    assert_true (tp_now_ms () - t0 >= 900);
}

int main (void)
{
    lss_log_init ("test_bus", LSS_LOG_WARN);
    zsys_init ();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_pubsub_two_processes),
        cmocka_unit_test (test_router_dealer_two_processes),
        cmocka_unit_test (test_tap_against_publisher),
        cmocka_unit_test (test_tap_usage_and_timeout),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
