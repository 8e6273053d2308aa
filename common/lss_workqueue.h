/*  lss_workqueue — a work queue with client-go semantics, as plain logic (no I/O, the
 *  caller passes the time), so the watcher can serve it over its ROUTER and tests can
 *  drive every rule directly.
 *
 *  Rules (client-go's workqueue.RateLimitingInterface):
 *   - a key is queued at most once, however many times it is added;
 *   - a key is never handed to two workers at once: adding a key that is being worked on
 *     marks it dirty, and it is queued again when its worker reports done;
 *   - failures are retried with per-key exponential backoff (base, doubling, capped);
 *     done forgets the failure count;
 *   - a worker holds a key for a lease; a worker silent past it loses the key, which is
 *     queued again (lss_workqueue_touch extends a worker's leases);
 *   - the number of keys is bounded: add refuses past max_keys (the periodic resync adds
 *     them again later).
 *  Not thread-safe: one loop owns a queue.
 */
#ifndef LSS_WORKQUEUE_H
#define LSS_WORKQUEUE_H

#include <stddef.h>
#include <stdint.h>

#define LSS_WORKQUEUE_KEY_MAX    512 /* bytes of a key ("<kind>/<ns>/<name>") */
#define LSS_WORKQUEUE_WORKER_MAX 256 /* bytes of a worker id */

typedef struct _lss_workqueue_t lss_workqueue_t;

typedef struct {
    size_t max_keys;         /* keys known at once (queued, waiting, or being worked) */
    int64_t backoff_base_ms; /* first retry delay (client-go: 5 ms) */
    int64_t backoff_max_ms;  /* cap (client-go: 1000 s; we default to 60 s) */
    int64_t lease_ms;        /* a worker silent this long loses its keys */
} lss_workqueue_opts_t;

/*  Defaults: 100000 keys, 5 ms doubling to 60 s, 30 s lease. */
void lss_workqueue_opts_default (lss_workqueue_opts_t *opts);

lss_workqueue_t *lss_workqueue_new (const lss_workqueue_opts_t *opts);
void lss_workqueue_destroy (lss_workqueue_t **self_p);

/*  Queues key now. Returns 0 (queued, already queued, or marked dirty while being
 *  worked on), or -1 if the key is invalid (empty, too long) or the queue is full. */
int lss_workqueue_add (lss_workqueue_t *self, const char *key, int64_t now_ms);
/*  Queues key after delay_ms (an earlier pending time wins). Returns 0 or -1 as add. */
int lss_workqueue_add_after (lss_workqueue_t *self, const char *key, int64_t delay_ms,
                             int64_t now_ms);

/*  Hands the next queued key to worker: copies it into key (size bytes, at least
 *  LSS_WORKQUEUE_KEY_MAX + 1) and returns 1; returns 0 when nothing is queued (or the
 *  worker id is invalid), -1 when key is too small (the key stays queued). */
int lss_workqueue_get (lss_workqueue_t *self, const char *worker, int64_t now_ms, char *key,
                       size_t size);

/*  The worker finished key successfully: its failures are forgotten; if it was added
 *  meanwhile it is queued again. Returns 0, or -1 if worker does not hold key. */
int lss_workqueue_done (lss_workqueue_t *self, const char *key, const char *worker,
                        int64_t now_ms);
/*  The worker failed: key comes back after the key's next backoff delay. Returns the
 *  delay in ms, or -1 if worker does not hold key. */
int64_t lss_workqueue_error (lss_workqueue_t *self, const char *key, const char *worker,
                             int64_t now_ms);
/*  The worker asks to see key again after delay_ms (e.g. a sandbox's expiry): done
 *  plus add_after. Returns 0 or -1 if worker does not hold key. */
int lss_workqueue_requeue_after (lss_workqueue_t *self, const char *key, const char *worker,
                                 int64_t delay_ms, int64_t now_ms);

/*  The worker is alive: extends the leases of every key it holds. Returns how many. */
size_t lss_workqueue_touch (lss_workqueue_t *self, const char *worker, int64_t now_ms);

/*  Moves due keys to the queue and takes keys back from silent workers (queued again).
 *  Returns ms until the next timer (-1 if none), for the caller's poll timeout. */
int64_t lss_workqueue_tick (lss_workqueue_t *self, int64_t now_ms);

/*  Counts: queued (ready to hand out), waiting (delayed), active (held by workers). */
size_t lss_workqueue_queued (const lss_workqueue_t *self);
size_t lss_workqueue_waiting (const lss_workqueue_t *self);
size_t lss_workqueue_active (const lss_workqueue_t *self);
/*  Failures recorded for key (0 if none or unknown). */
int lss_workqueue_failures (const lss_workqueue_t *self, const char *key);

#endif
