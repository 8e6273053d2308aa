/*  lss_curve — CURVE (ZeroMQ's CurveZMQ) for the executor ↔ agent link in cluster mode.
 *
 *  Keys are Z85 text, 40 characters (32 bytes). A server socket (the agent's ROUTER)
 *  gets its secret key and answers only clients whose public key is in an in-memory
 *  allow-list, checked by a ZAP handler (lss_curve_zap_new) in the same process. CZMQ's
 *  zauth is not used on purpose: it reads allowed keys from a directory and reloads it
 *  when it changes, and inside a sandbox the only writable directories belong to the
 *  untrusted code, which could then add its own key. A client socket (the executor's
 *  DEALER to one agent) gets its key pair and the server's public key (the Sandbox's
 *  status.agentPublicKey). Every function refuses a malformed key.
 */
#ifndef LSS_CURVE_H
#define LSS_CURVE_H

#include <czmq.h>
#include <stdbool.h>
#include <stddef.h>

#define LSS_CURVE_KEY_LEN    40 /* Z85 characters of a key */
#define LSS_CURVE_CLIENTS    8  /* allowed client keys of one server */
#define LSS_CURVE_ZAP_DOMAIN "lss"

/*  True if key is 40 Z85 characters that decode to 32 bytes. */
bool lss_curve_key_valid (const char *key);

/*  A fresh key pair (Z85). 0 or -1. */
int lss_curve_keypair (char pub[LSS_CURVE_KEY_LEN + 1], char sec[LSS_CURVE_KEY_LEN + 1]);

/*  The public key of a secret key. 0 or -1 (bad key). */
int lss_curve_public_of (const char *sec, char pub[LSS_CURVE_KEY_LEN + 1]);

/*  Makes sock (not yet bound) a CURVE server with secret key sec, in the ZAP domain the
 *  handler answers. 0 or -1 with err. */
int lss_curve_server_apply (zsock_t *sock, const char *sec, char *err, size_t err_size);

/*  Makes sock (not yet connected) a CURVE client with secret key sec talking to the
 *  server whose public key is server_pub. 0 or -1 with err. */
int lss_curve_client_apply (zsock_t *sock, const char *sec, const char *server_pub, char *err,
                            size_t err_size);

/*  Starts the process's ZAP handler: CURVE clients whose public key is one of allowed
 *  (n ≤ LSS_CURVE_CLIENTS, copied) are accepted, every other request refused. Start it
 *  before binding the server socket; one per process. NULL (err) on a bad key or when
 *  the handler cannot bind. Destroy with zactor_destroy. */
zactor_t *lss_curve_zap_new (const char *const *allowed, size_t n, char *err, size_t err_size);

#endif
