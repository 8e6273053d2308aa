/*  warmpool_worker — the scaler thread: leader election, work queue, one sync per key.
 *
 *  While this replica leads the "warmpool-scaler" election (tried every leader_check_ms)
 *  the thread pulls keys "WarmPool/<ns>/<name>" from the watcher's queue "warmpool",
 *  runs warmpool_sync on its own store connection and reports done / error / requeue
 *  (after the delay the pass returned). When leadership is lost it drops its queue
 *  client at once so it holds no keys. Outcomes are reported through an event callback
 *  (ScaledUp, ScaledDown, Replaced) and metrics.
 */
#ifndef WARMPOOL_WORKER_H
#define WARMPOOL_WORKER_H

#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "lss_bus.h"
#include "lss_config.h"

/*  Called from the worker thread; details is borrowed. Must be thread-safe. */
typedef void (warmpool_event_fn) (void *arg, const char *reason, const char *ns,
                                  const char *name, const char *message, json_t *details);

typedef struct {
    const char *dsn; /* store and leader election (borrowed) */
    const lss_config_t
        *cfg; /* borrowed: store backend and election (NULL: PostgreSQL at dsn) */
    const char *queue_endpoints; /* watcher ROUTER(s) (borrowed) */
    const char *identity;        /* worker id / candidate identity (borrowed) */
    int64_t leader_check_ms;
    lss_bus_opts_t bus;
    warmpool_event_fn *event;
    void *event_arg;
    atomic_bool stop;   /* set to end the thread */
    atomic_bool leader; /* read-only for others: whether this replica scales now */
} warmpool_worker_t;

/*  Thread body: pthread_create (&t, NULL, warmpool_worker_run, worker). */
void *warmpool_worker_run (void *arg);

/*  Parses "WarmPool/<ns>/<name>" into ns (>= 64 bytes) and name (>= 254). 0 or -1. */
int warmpool_worker_parse_key (const char *key, char *ns, size_t ns_size, char *name,
                               size_t name_size);

#endif
