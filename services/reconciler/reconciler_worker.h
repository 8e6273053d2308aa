/*  reconciler_worker — one sync worker thread: pulls Sandbox keys from the watcher's work
 *  queue, runs reconciler_sync on each with its own store connection, reports the outcome
 *  to the queue (done / error with backoff / requeue at expiry) and, when something
 *  changed, to the process's event publisher over an inproc PUSH socket.
 */
#ifndef RECONCILER_WORKER_H
#define RECONCILER_WORKER_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>

#include "reconciler_sync.h"
#include "lss_config.h"

#define RECONCILER_EVENTS_ENDPOINT "inproc://reconciler-events"

typedef struct {
    int index;                  /* worker number in this process */
    const char *dsn;            /* store DSN (borrowed) */
    const lss_config_t *cfg;    /* borrowed: the store backend (NULL: PostgreSQL at dsn) */
    const char *queue_endpoint; /* watcher ROUTER endpoint list (borrowed) */
    const char *node_name;      /* Pod spec.nodeName */
    atomic_bool *stop;          /* set by the main thread to end the worker */
    pthread_t thread;
    atomic_bool running; /* the thread reached its loop */
} reconciler_worker_t;

/*  Starts the worker thread. Returns 0 or -1. */
int reconciler_worker_start (reconciler_worker_t *self);
/*  Waits for the thread (after *stop was set). */
void reconciler_worker_join (reconciler_worker_t *self);

#endif
