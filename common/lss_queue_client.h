/*  lss_queue_client — a worker's side of the watcher's work queue (docs/control-plane.md).
 *
 *  One DEALER connected to every watcher endpoint (a list; a dns+tcp:// entry stands for
 *  every address its name resolves to, followed as replicas come and go). get() asks for the
 * next key of a queue and waits for it (the watcher holds the request up to wait_ms); the
 *  standby watchers answer not_leader and the client tries again after a short pause.
 *  Each worker thread owns its own client (a socket belongs to one thread).
 *
 *      lss_queue_client_t *q = lss_queue_client_new (endpoints, "sandbox", worker_id, NULL);
 *      char key[LSS_WORKQUEUE_KEY_MAX + 1];
 *      while (!stopping) {
 *          int rc = lss_queue_client_get (q, 1000, key, sizeof key);
 *          if (rc != 1) continue;                   // 0: nothing yet, -1: watcher unreachable
 *          int r = sync (key);
 *          lss_queue_client_done (q, key, r == 0 ? "done" : "error", 0, msg);
 *      }
 */
#ifndef LSS_QUEUE_CLIENT_H
#define LSS_QUEUE_CLIENT_H

#include <czmq.h>
#include <stdint.h>

#include "lss_bus.h"
#include "lss_workqueue.h"

typedef struct _lss_queue_client_t lss_queue_client_t;

/*  A client of queue (e.g. "sandbox") as worker (an id unique among workers), connected
 *  to endpoints (borrowed; CZMQ endpoint list, connect). opts NULL = bus defaults.
 *  Returns NULL (logged) on a bad endpoint or argument. */
lss_queue_client_t *lss_queue_client_new (const char *endpoints, const char *queue,
                                          const char *worker, const lss_bus_opts_t *opts);
void lss_queue_client_destroy (lss_queue_client_t **self_p);

/*  Waits at most wait_ms for a key. Returns 1 with the key in key (size bytes, at least
 *  LSS_WORKQUEUE_KEY_MAX + 1), 0 if none came (queue empty, not leader, interrupted),
 *  -1 if no watcher answered at all within wait_ms plus a grace period (then the socket
 *  is recreated, dropping any late reply). */
int lss_queue_client_get (lss_queue_client_t *self, int wait_ms, char *key, size_t size);

/*  Reports the outcome of key: result "done", "error" (message says why) or "requeue"
 *  (after_ms later). Waits for the watcher's answer at most timeout_ms (<= 0: 5000).
 *  Returns 0, 1 if the watcher says the key was no longer held by this worker (lease
 *  lapsed: the outcome was dropped), -1 if no answer. */
int lss_queue_client_done (lss_queue_client_t *self, const char *key, const char *result,
                           int64_t after_ms, const char *message, int timeout_ms);

/*  The socket (borrowed), e.g. to poll it with other sockets. */
zsock_t *lss_queue_client_sock (lss_queue_client_t *self);

#endif
