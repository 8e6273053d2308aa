/*  lss_curve: key checks, and a CURVE server behind the allow-list ZAP handler on real
 *  sockets over loopback TCP — the allowed client is heard; a client with another key, a
 *  plain client and a client that expects another server key are not; the handler is
 *  one per process; malformed keys are refused everywhere. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "lss_curve.h"
#include "lss_log.h"

static void test_keys (void **state)
{
    (void)state;
    char pub[LSS_CURVE_KEY_LEN + 1], sec[LSS_CURVE_KEY_LEN + 1], again[LSS_CURVE_KEY_LEN + 1];
    assert_int_equal (lss_curve_keypair (pub, sec), 0);
    assert_true (lss_curve_key_valid (pub));
    assert_true (lss_curve_key_valid (sec));
    assert_int_equal (lss_curve_public_of (sec, again), 0);
    assert_string_equal (again, pub);
    assert_false (lss_curve_key_valid (NULL));
    assert_false (lss_curve_key_valid (""));
    char bad[LSS_CURVE_KEY_LEN + 2];
    snprintf (bad, sizeof bad, "%s", pub);
    bad[LSS_CURVE_KEY_LEN - 1] = '\0'; /* 39 characters */
    assert_false (lss_curve_key_valid (bad));
    snprintf (bad, sizeof bad, "%sA", pub); /* 41 */
    assert_false (lss_curve_key_valid (bad));
    snprintf (bad, sizeof bad, "%s", pub);
    bad[3] = '"'; /* not in the Z85 alphabet */
    assert_false (lss_curve_key_valid (bad));
    bad[3] = ' ';
    assert_false (lss_curve_key_valid (bad));
    assert_int_equal (lss_curve_public_of ("short", again), -1);
    zsock_t *s = zsock_new (ZMQ_ROUTER);
    char err[128];
    assert_int_equal (lss_curve_server_apply (s, "nope", err, sizeof err), -1);
    assert_int_equal (lss_curve_client_apply (s, sec, "nope", err, sizeof err), -1);
    zsock_destroy (&s);
    const char *none[] = {"nope"};
    assert_null (lss_curve_zap_new (none, 1, err, sizeof err));
    assert_null (lss_curve_zap_new (none, 0, err, sizeof err));
}

/*  Sends "hello" from a DEALER with key pair sec (NULL: no CURVE) expecting server key
 *  server_pub; true if the server receives it within 700 ms. */
static bool s_heard (zsock_t *server, const char *endpoint, const char *sec,
                     const char *server_pub)
{
    zsock_t *c = zsock_new (ZMQ_DEALER);
    char err[128];
    zsock_set_linger (c, 0);
    if (sec)
        assert_int_equal (lss_curve_client_apply (c, sec, server_pub, err, sizeof err), 0);
    assert_int_equal (zsock_connect (c, "%s", endpoint), 0);
    zstr_send (c, "hello");
    zsock_set_rcvtimeo (server, 700);
    zmsg_t *m = zmsg_recv (server);
    bool heard = m != NULL;
    if (m) {
        zframe_t *id = zmsg_pop (m);
        char *text = zmsg_popstr (m);
        assert_string_equal (text, "hello");
        free (text);
        zframe_destroy (&id);
        zmsg_destroy (&m);
    }
    zsock_destroy (&c);
    return heard;
}

static void test_allow_list (void **state)
{
    (void)state;
    char spub[41], ssec[41], apub[41], asec[41], bpub[41], bsec[41], opub[41], osec[41];
    assert_int_equal (lss_curve_keypair (spub, ssec), 0);
    assert_int_equal (lss_curve_keypair (apub, asec), 0);
    assert_int_equal (lss_curve_keypair (bpub, bsec), 0);
    assert_int_equal (lss_curve_keypair (opub, osec), 0);
    char err[128];
    const char *allowed[] = {apub};
    zactor_t *zap = lss_curve_zap_new (allowed, 1, err, sizeof err);
    assert_non_null (zap);
    /* one handler per process: a second cannot bind */
    assert_null (lss_curve_zap_new (allowed, 1, err, sizeof err));
    assert_non_null (strstr (err, "one per process"));

    zsock_t *server = zsock_new (ZMQ_ROUTER);
    zsock_set_linger (server, 0);
    assert_int_equal (lss_curve_server_apply (server, ssec, err, sizeof err), 0);
    int port = zsock_bind (server, "tcp://127.0.0.1:*");
    assert_true (port > 0);
    char ep[64];
    snprintf (ep, sizeof ep, "tcp://127.0.0.1:%d", port);

    assert_true (s_heard (server, ep, asec, spub));  /* allowed */
    assert_false (s_heard (server, ep, bsec, spub)); /* another client key */
    assert_false (s_heard (server, ep, NULL, NULL)); /* no CURVE at all */
    assert_false (s_heard (server, ep, asec, opub)); /* expects another server */
    assert_true (s_heard (server, ep, asec, spub));  /* and the allowed one still works */
    zsock_destroy (&server);
    zactor_destroy (&zap);
}

int main (void)
{
    lss_log_init ("test_curve", LSS_LOG_ERROR);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_keys),
        cmocka_unit_test (test_allow_list),
    };
    int rc = cmocka_run_group_tests (tests, NULL, NULL);
    zsys_shutdown ();
    return rc;
}
