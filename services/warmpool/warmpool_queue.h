/*  warmpool_queue — the scaler's side of the watcher's work queue (queue.get / queue.done
 *  over a DEALER, docs/control-plane.md).
 *
 *  A stand-in with the signatures of common/lss_queue_client.h, whose implementation is
 *  not on this branch yet: once common/lss_queue_client.c lands, replace warmpool_queue_*
 *  by lss_queue_client_* and delete this pair. Semantics as documented there: get()
 *  returns 1 with a key, 0 when none came (queue empty, not leader), -1 when no watcher
 *  answered within wait_ms plus a grace (the socket is then recreated, dropping late
 *  replies). Replies are matched to requests by ref; stale ones are discarded.
 */
#ifndef WARMPOOL_QUEUE_H
#define WARMPOOL_QUEUE_H

#include <czmq.h>
#include <stdint.h>

#include "lss_bus.h"
#include "lss_workqueue.h"

#define WARMPOOL_QUEUE_GRACE_MS    2000 /* beyond wait_ms before a watcher counts as gone */
#define WARMPOOL_QUEUE_PAUSE_MS    200  /* after not_leader */
#define WARMPOOL_QUEUE_MAX_WAIT_MS 30000

typedef struct _warmpool_queue_t warmpool_queue_t;

warmpool_queue_t *warmpool_queue_new (const char *endpoints, const char *queue,
                                      const char *worker, const lss_bus_opts_t *opts);
void warmpool_queue_destroy (warmpool_queue_t **self_p);
int warmpool_queue_get (warmpool_queue_t *self, int wait_ms, char *key, size_t size);
int warmpool_queue_done (warmpool_queue_t *self, const char *key, const char *result,
                         int64_t after_ms, const char *message, int timeout_ms);

#endif
