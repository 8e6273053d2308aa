/*  watcher_informer — list+watch of every kind, a cache per kind, object events on the
 *  PUB and queue keys for the main loop.
 *
 *  An actor (CZMQ zactor) on its own thread, because every store call is synchronous
 *  (bounded by the statement timeout) and the main loop must keep serving the queue.
 *  For each kind (Sandbox, WarmPool, WarmPod, RuntimeEnvironment, SandboxProfile, Pod):
 *  list in pages, then watch from the list's resourceVersion; LSS_STORE_GONE → relist;
 *  LSS_STORE_UNAVAILABLE → watch again from the last resourceVersion after a backoff.
 *  The cache maps "ns/name" to the latest object. A relist is diffed against the cache:
 *  new objects are ADDED, changed ones (resourceVersion) MODIFIED, and cached objects
 *  missing from the list DELETED, so no change is lost to a compaction.
 *
 *  While *leader is true every change is published (topic
 *  "<kind lowercased>.<verb>.<ns>.<name>", message object_event of type
 *  "<kind lowercased>.<verb>") and its queue keys are sent to the pipe; a standby keeps
 *  its caches warm and stays silent.
 *
 *  Pipe protocol (strings):
 *    main → actor   "RESYNC"             send the key of every cached Sandbox and WarmPool
 *                   "$TERM"              stop
 *    actor → main   "KEY" queue key      queue key on queue ("sandbox" | "warmpool")
 *                   "SYNCED"             every kind has been listed once (sent once)
 */
#ifndef WATCHER_INFORMER_H
#define WATCHER_INFORMER_H

#include <czmq.h>
#include <jansson.h>
#include <stdatomic.h>
#include <stdbool.h>

#include "lss_bus.h"
#include "lss_config.h"

#define WATCHER_KIND_COUNT 6

typedef struct {
    const char *dsn;         /* store DSN (borrowed; outlives the actor) */
    const lss_config_t *cfg; /* borrowed: the store backend (NULL: PostgreSQL at dsn) */
    lss_bus_pub_t *pub;      /* the PUB: ownership passes to the actor, which destroys it */
    atomic_bool *leader;     /* publish and send keys only while true (borrowed) */
    int64_t page_size;       /* list page size (0 = LSS_STORE_LIST_DEFAULT_LIMIT) */
} watcher_informer_args_t;

/*  The actor: zactor_new (watcher_informer_actor, &args). */
void watcher_informer_actor (zsock_t *pipe, void *args);

/*  The queue keys an event of kind on obj touches (docs/control-plane.md, queue
 *  membership): writes up to 2 (queue, key) pairs into queues[] / keys[] (each key
 *  LSS_WORKQUEUE_KEY_MAX + 1 bytes) and returns how many. Label values that are not
 *  valid object names are ignored. */
int watcher_keys_of (const char *kind, const json_t *obj, const char *queues[2],
                     char keys[2][513]);

/*  The kinds watched, in order (borrowed static strings). */
extern const char *const watcher_kinds[WATCHER_KIND_COUNT];

#endif
