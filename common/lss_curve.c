/*  lss_curve — CURVE keys, socket options and an allow-list ZAP handler. See lss_curve.h.
 *
 *  The ZAP handler speaks RFC 27 (ZAP 1.0) on inproc://zeromq.zap.01: a request is
 *  version, request id, domain, address, identity, mechanism, credentials...; the reply
 *  version, request id, status code, status text, user id, metadata. Anything malformed
 *  is answered 400 (or dropped when it cannot even be answered).
 */
#include "lss_curve.h"

#include <string.h>

#include "lss_log.h"
#include "lss_util.h"

#define S_ZAP_ENDPOINT "inproc://zeromq.zap.01"

bool lss_curve_key_valid (const char *key)
{
    static const char z85[] = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                              ".-:+=^!/*?&<>()[]{}@%$#";
    uint8_t raw[32];
    return key && strlen (key) == LSS_CURVE_KEY_LEN && strspn (key, z85) == LSS_CURVE_KEY_LEN &&
           zmq_z85_decode (raw, key) != NULL;
}

int lss_curve_keypair (char pub[LSS_CURVE_KEY_LEN + 1], char sec[LSS_CURVE_KEY_LEN + 1])
{
    return zmq_curve_keypair (pub, sec) == 0 ? 0 : -1;
}

int lss_curve_public_of (const char *sec, char pub[LSS_CURVE_KEY_LEN + 1])
{
    if (!lss_curve_key_valid (sec))
        return -1;
    return zmq_curve_public (pub, sec) == 0 ? 0 : -1;
}

int lss_curve_server_apply (zsock_t *sock, const char *sec, char *err, size_t err_size)
{
    char pub[LSS_CURVE_KEY_LEN + 1];
    if (lss_curve_public_of (sec, pub)) {
        lss_errf (err, err_size, "CURVE secret key: not 40 Z85 characters");
        return -1;
    }
    zsock_set_zap_domain (sock, LSS_CURVE_ZAP_DOMAIN);
    zsock_set_curve_server (sock, 1);
    zsock_set_curve_secretkey (sock, sec);
    zsock_set_curve_publickey (sock, pub);
    return 0;
}

int lss_curve_client_apply (zsock_t *sock, const char *sec, const char *server_pub, char *err,
                            size_t err_size)
{
    char pub[LSS_CURVE_KEY_LEN + 1];
    if (lss_curve_public_of (sec, pub)) {
        lss_errf (err, err_size, "CURVE secret key: not 40 Z85 characters");
        return -1;
    }
    if (!lss_curve_key_valid (server_pub)) {
        lss_errf (err, err_size, "CURVE server key: not 40 Z85 characters");
        return -1;
    }
    zsock_set_curve_serverkey (sock, server_pub);
    zsock_set_curve_secretkey (sock, sec);
    zsock_set_curve_publickey (sock, pub);
    return 0;
}

typedef struct {
    uint8_t keys[LSS_CURVE_CLIENTS][32];
    size_t n;
    zsock_t *handler; /* bound by lss_curve_zap_new, then the actor's */
} s_allow_t;

/*  Answers one ZAP request from handler (a REP socket). */
static void s_zap_answer (zsock_t *handler, const s_allow_t *allow)
{
    zmsg_t *req = zmsg_recv (handler);
    if (!req)
        return;
    char *version = zmsg_popstr (req);
    char *id = zmsg_popstr (req);
    char *domain = zmsg_popstr (req);
    char *address = zmsg_popstr (req);
    char *identity = zmsg_popstr (req);
    char *mechanism = zmsg_popstr (req);
    zframe_t *key = zmsg_pop (req);
    bool ok = false;
    if (version && strcmp (version, "1.0") == 0 && mechanism &&
        strcmp (mechanism, "CURVE") == 0 && domain &&
        strcmp (domain, LSS_CURVE_ZAP_DOMAIN) == 0 && key && zframe_size (key) == 32 &&
        zmsg_size (req) == 0) {
        for (size_t i = 0; i < allow->n && !ok; i++)
            ok = memcmp (allow->keys[i], zframe_data (key), 32) == 0;
    }
    if (!ok)
        lss_log_warn ("CURVE client refused", "{s:s, s:s}", "address", address ? address : "",
                      "mechanism", mechanism ? mechanism : "");
    if (version && id) {
        zmsg_t *rep = zmsg_new ();
        zmsg_addstr (rep, "1.0");
        zmsg_addstr (rep, id);
        zmsg_addstr (rep, ok ? "200" : "400");
        zmsg_addstr (rep, ok ? "OK" : "client key not allowed");
        zmsg_addstr (rep, "");
        zmsg_addmem (rep, "", 0);
        zmsg_send (&rep, handler);
    }
    zframe_destroy (&key);
    zmsg_destroy (&req);
    free (version);
    free (id);
    free (domain);
    free (address);
    free (identity);
    free (mechanism);
}

static void s_zap_actor (zsock_t *pipe, void *args)
{
    s_allow_t *allow = args;
    zsock_t *handler = allow->handler;
    zsock_signal (pipe, 0);
    zpoller_t *poller = zpoller_new (pipe, handler, NULL);
    while (poller) {
        void *which = zpoller_wait (poller, -1);
        if (which == handler)
            s_zap_answer (handler, allow);
        else
            break; /* $TERM, or interrupted */
    }
    zpoller_destroy (&poller);
    zsock_destroy (&handler);
    free (allow);
}

zactor_t *lss_curve_zap_new (const char *const *allowed, size_t n, char *err, size_t err_size)
{
    if (n == 0 || n > LSS_CURVE_CLIENTS) {
        lss_errf (err, err_size, "CURVE: 1..%d allowed client keys", LSS_CURVE_CLIENTS);
        return NULL;
    }
    s_allow_t *allow = calloc (1, sizeof *allow);
    if (!allow) {
        lss_errf (err, err_size, "out of memory");
        return NULL;
    }
    for (size_t i = 0; i < n; i++) {
        if (!lss_curve_key_valid (allowed[i])) {
            lss_errf (err, err_size, "CURVE client key %zu: not 40 Z85 characters", i + 1);
            free (allow);
            return NULL;
        }
        zmq_z85_decode (allow->keys[i], allowed[i]);
    }
    allow->n = n;
    allow->handler = zsock_new (ZMQ_REP);
    if (!allow->handler || zsock_bind (allow->handler, S_ZAP_ENDPOINT) != 0) {
        lss_errf (err, err_size, "CURVE: the ZAP handler cannot bind %s (one per process)",
                  S_ZAP_ENDPOINT);
        zsock_destroy (&allow->handler);
        free (allow);
        return NULL;
    }
    zactor_t *actor = zactor_new (s_zap_actor, allow);
    if (!actor) {
        lss_errf (err, err_size, "CURVE: cannot start the ZAP handler");
        zsock_destroy (&allow->handler);
        free (allow);
    }
    return actor;
}
