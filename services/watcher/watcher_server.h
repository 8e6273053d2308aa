/*  watcher_server — the work queue served over the watcher's ROUTER
 *  (docs/control-plane.md, "The work queue").
 *
 *  Two lss_workqueue instances, "sandbox" and "warmpool", and the request protocol on
 *  top of them: queue.get (long-poll: a request waits in a bounded per-queue list until a
 *  key is ready or its wait_ms passes), queue.done (done | error | requeue), every
 *  message from a worker renews its leases. A standby (not leader) answers everything
 *  with error not_leader and keeps no keys. Unknown or malformed messages get an error
 *  reply; nothing a peer sends can crash or grow it past its bounds.
 *
 *  Design note: plain logic around one ROUTER socket the caller owns and polls; the
 *  caller passes the time, feeds keys (watcher_server_add) and calls
 *  watcher_server_tick after every batch of work. Not thread-safe: one loop owns it.
 */
#ifndef WATCHER_SERVER_H
#define WATCHER_SERVER_H

#include <czmq.h>
#include <stdbool.h>
#include <stdint.h>

#include "lss_workqueue.h"

#define WATCHER_QUEUE_COUNT    2
#define WATCHER_WAIT_MAX_MS    30000                    /* longest a queue.get is held */
#define WATCHER_WAITERS_MAX    1024                     /* queue.get requests held per queue */
#define WATCHER_REQUEUE_MAX_MS (7LL * 24 * 3600 * 1000) /* longest requeue after_ms */
#define WATCHER_QUEUE_NAME_MAX 32
/* a WarmPool's key from an event of one of its WarmPods or Pods waits this long: the
 * scaler's refill then neither competes with the sandbox start that claimed the pod nor
 * runs once per event of a burst (assignment, adoption, status) */
#define WATCHER_POOL_CHILD_DELAY_MS 25

typedef struct _watcher_server_t watcher_server_t;

/*  A server answering on router (borrowed: the caller owns and polls it; src names the
 *  sender in envelopes, copied). opts are the workqueue options of both queues;
 *  max_waiters (0 = WATCHER_WAITERS_MAX) bounds held queue.get requests per queue.
 *  Starts as a standby. Returns NULL on allocation failure. */
watcher_server_t *watcher_server_new (zsock_t *router, const char *src,
                                      const lss_workqueue_opts_t *opts, size_t max_waiters);
void watcher_server_destroy (watcher_server_t **self_p);

/*  Becoming leader starts with empty queues (the caller then resyncs every key); losing
 *  it answers every held request with error not_leader and forgets every key. */
void watcher_server_set_leader (watcher_server_t *self, bool leader, int64_t now_ms);
bool watcher_server_is_leader (const watcher_server_t *self);

/*  Queues key on the queue called name ("sandbox" | "warmpool"). Ignored (returns 0)
 *  while standby. Returns 0, or -1 for an unknown queue, a bad key or a full queue. */
int watcher_server_add (watcher_server_t *self, const char *queue, const char *key,
                        int64_t now_ms);

/*  As watcher_server_add, but the key is ready only after delay_ms (unless it is, or
 *  becomes, ready earlier: an immediate add still goes at once). */
int watcher_server_add_after (watcher_server_t *self, const char *queue, const char *key,
                              int64_t delay_ms, int64_t now_ms);

/*  Reads and answers one message from the router (call when it is readable). Returns 0,
 *  or -1 if nothing could be read (interrupted). */
int watcher_server_handle (watcher_server_t *self, int64_t now_ms);

/*  Moves due keys, takes keys back from silent workers, hands ready keys to held
 *  requests in arrival order and answers expired ones with queue.empty. Returns ms until
 *  the next timer (-1 if none), for the caller's poll timeout. */
int64_t watcher_server_tick (watcher_server_t *self, int64_t now_ms);

/*  The queue called name (borrowed), or NULL. For metrics and tests. */
lss_workqueue_t *watcher_server_queue (watcher_server_t *self, const char *name);
/*  queue.get requests held on the queue called name. */
size_t watcher_server_held (const watcher_server_t *self, const char *name);

#endif
