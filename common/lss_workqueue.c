/*  lss_workqueue — client-go work queue semantics as plain logic. See lss_workqueue.h.
 *
 *  Design: one item per known key in a zhashx (the item owns its state); a zlistx FIFO of
 *  queued items. An item is QUEUED (in the FIFO), WAITING (due at a time) or ACTIVE
 *  (held by a worker until a lease time); an item with nothing pending and no failures
 *  is dropped, so memory follows the keys in flight, bounded by max_keys. tick scans the
 *  table for due and expired items: O(keys) per call, which is what the watcher's loop
 *  can afford at local and moderate cluster sizes.
 */
#include "lss_workqueue.h"

#include <czmq.h>
#include <string.h>

typedef enum { S_QUEUED, S_WAITING, S_ACTIVE } s_state_t;

typedef struct {
    char key[LSS_WORKQUEUE_KEY_MAX + 1];
    s_state_t state;
    int failures;
    int64_t due_ms;   /* WAITING: when it is queued */
    int64_t lease_ms; /* ACTIVE: when its worker counts as silent */
    char worker[LSS_WORKQUEUE_WORKER_MAX + 1];
    bool dirty;           /* ACTIVE and added again: queue when done */
    int64_t dirty_due_ms; /* ACTIVE and added with a delay: wait when done (0 = none) */
} s_item_t;

struct _lss_workqueue_t {
    lss_workqueue_opts_t opts;
    zhashx_t *items; /* key → s_item_t (owned) */
    zlistx_t *fifo;  /* queued items, borrowed from items */
    size_t waiting, active;
};

void lss_workqueue_opts_default (lss_workqueue_opts_t *opts)
{
    *opts = (lss_workqueue_opts_t){
        .max_keys = 100000, .backoff_base_ms = 5, .backoff_max_ms = 60000, .lease_ms = 30000};
}

static void s_item_destroy (void **item)
{
    free (*item);
    *item = NULL;
}

lss_workqueue_t *lss_workqueue_new (const lss_workqueue_opts_t *opts)
{
    lss_workqueue_t *self = calloc (1, sizeof *self);
    if (!self)
        return NULL;
    if (opts)
        self->opts = *opts;
    else
        lss_workqueue_opts_default (&self->opts);
    self->items = zhashx_new ();
    self->fifo = zlistx_new ();
    if (!self->items || !self->fifo) {
        lss_workqueue_destroy (&self);
        return NULL;
    }
    zhashx_set_destructor (self->items, s_item_destroy);
    return self;
}

void lss_workqueue_destroy (lss_workqueue_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    zlistx_destroy (&(*self_p)->fifo);
    zhashx_destroy (&(*self_p)->items);
    free (*self_p);
    *self_p = NULL;
}

static bool s_valid (const char *s, size_t max)
{
    return s && *s && strnlen (s, max + 1) <= max;
}

static void s_leave (lss_workqueue_t *self, s_item_t *it)
{
    if (it->state == S_WAITING)
        self->waiting--;
    else if (it->state == S_ACTIVE)
        self->active--;
}

static void s_queue (lss_workqueue_t *self, s_item_t *it)
{
    s_leave (self, it);
    it->state = S_QUEUED;
    it->dirty = false;
    it->dirty_due_ms = 0;
    zlistx_add_end (self->fifo, it);
}

static void s_wait (lss_workqueue_t *self, s_item_t *it, int64_t due_ms)
{
    s_leave (self, it);
    it->state = S_WAITING;
    it->due_ms = due_ms;
    it->dirty = false;
    it->dirty_due_ms = 0;
    self->waiting++;
}

/* The item for key, created (in state `fresh`) when absent and there is room. */
static s_item_t *s_item (lss_workqueue_t *self, const char *key, bool *created)
{
    *created = false;
    s_item_t *it = zhashx_lookup (self->items, key);
    if (it)
        return it;
    if (zhashx_size (self->items) >= self->opts.max_keys)
        return NULL;
    it = calloc (1, sizeof *it);
    if (!it)
        return NULL;
    memcpy (it->key, key, strlen (key) + 1);
    it->state = S_WAITING; /* placeholder: the caller sets the real state */
    self->waiting++;
    zhashx_insert (self->items, key, it);
    *created = true;
    return it;
}

int lss_workqueue_add (lss_workqueue_t *self, const char *key, int64_t now_ms)
{
    (void)now_ms;
    if (!s_valid (key, LSS_WORKQUEUE_KEY_MAX))
        return -1;
    bool created;
    s_item_t *it = s_item (self, key, &created);
    if (!it)
        return -1;
    if (it->state == S_ACTIVE)
        it->dirty = true;
    else if (it->state == S_WAITING)
        s_queue (self, it);
    return 0;
}

int lss_workqueue_add_after (lss_workqueue_t *self, const char *key, int64_t delay_ms,
                             int64_t now_ms)
{
    if (delay_ms <= 0)
        return lss_workqueue_add (self, key, now_ms);
    if (!s_valid (key, LSS_WORKQUEUE_KEY_MAX))
        return -1;
    bool created;
    s_item_t *it = s_item (self, key, &created);
    if (!it)
        return -1;
    int64_t due = now_ms + delay_ms;
    if (created)
        it->due_ms = due; /* already WAITING */
    else if (it->state == S_WAITING && due < it->due_ms)
        it->due_ms = due;
    else if (it->state == S_ACTIVE && (!it->dirty_due_ms || due < it->dirty_due_ms))
        it->dirty_due_ms = due;
    return 0; /* QUEUED: already on its way */
}

int lss_workqueue_get (lss_workqueue_t *self, const char *worker, int64_t now_ms, char *key,
                       size_t size)
{
    if (!s_valid (worker, LSS_WORKQUEUE_WORKER_MAX))
        return 0;
    s_item_t *it = zlistx_first (self->fifo);
    if (!it)
        return 0;
    if (strlen (it->key) >= size)
        return -1;
    zlistx_delete (self->fifo, zlistx_cursor (self->fifo));
    it->state = S_ACTIVE;
    it->lease_ms = now_ms + self->opts.lease_ms;
    memcpy (it->worker, worker, strlen (worker) + 1);
    self->active++;
    memcpy (key, it->key, strlen (it->key) + 1);
    return 1;
}

static s_item_t *s_held (lss_workqueue_t *self, const char *key, const char *worker)
{
    if (!s_valid (key, LSS_WORKQUEUE_KEY_MAX) || !s_valid (worker, LSS_WORKQUEUE_WORKER_MAX))
        return NULL;
    s_item_t *it = zhashx_lookup (self->items, key);
    return it && it->state == S_ACTIVE && strcmp (it->worker, worker) == 0 ? it : NULL;
}

/* After a worker lets go of an active item: pending adds decide what happens. */
static void s_release (lss_workqueue_t *self, s_item_t *it)
{
    if (it->dirty)
        s_queue (self, it);
    else if (it->dirty_due_ms)
        s_wait (self, it, it->dirty_due_ms);
    else {
        s_leave (self, it);
        zhashx_delete (self->items, it->key); /* nothing pending: forget it (frees it) */
    }
}

int lss_workqueue_done (lss_workqueue_t *self, const char *key, const char *worker,
                        int64_t now_ms)
{
    (void)now_ms;
    s_item_t *it = s_held (self, key, worker);
    if (!it)
        return -1;
    it->failures = 0;
    s_release (self, it);
    return 0;
}

int64_t lss_workqueue_error (lss_workqueue_t *self, const char *key, const char *worker,
                             int64_t now_ms)
{
    s_item_t *it = s_held (self, key, worker);
    if (!it)
        return -1;
    if (it->failures < 62)
        it->failures++;
    int shift = it->failures - 1 < 40 ? it->failures - 1 : 40;
    int64_t delay = self->opts.backoff_base_ms << shift;
    if (delay > self->opts.backoff_max_ms || delay <= 0)
        delay = self->opts.backoff_max_ms;
    if (it->dirty) /* changed meanwhile: look again now (client-go does the same) */
        s_queue (self, it);
    else
        s_wait (self, it, now_ms + delay);
    return delay;
}

int lss_workqueue_requeue_after (lss_workqueue_t *self, const char *key, const char *worker,
                                 int64_t delay_ms, int64_t now_ms)
{
    s_item_t *it = s_held (self, key, worker);
    if (!it)
        return -1;
    it->failures = 0;
    if (delay_ms <= 0 || it->dirty)
        s_queue (self, it);
    else {
        int64_t due = now_ms + delay_ms;
        s_wait (self, it, it->dirty_due_ms && it->dirty_due_ms < due ? it->dirty_due_ms : due);
    }
    return 0;
}

size_t lss_workqueue_touch (lss_workqueue_t *self, const char *worker, int64_t now_ms)
{
    size_t n = 0;
    if (!s_valid (worker, LSS_WORKQUEUE_WORKER_MAX))
        return 0;
    for (s_item_t *it = zhashx_first (self->items); it; it = zhashx_next (self->items))
        if (it->state == S_ACTIVE && strcmp (it->worker, worker) == 0) {
            it->lease_ms = now_ms + self->opts.lease_ms;
            n++;
        }
    return n;
}

int64_t lss_workqueue_tick (lss_workqueue_t *self, int64_t now_ms)
{
    int64_t next = -1;
    for (s_item_t *it = zhashx_first (self->items); it; it = zhashx_next (self->items)) {
        int64_t at;
        if (it->state == S_WAITING) {
            if (it->due_ms <= now_ms) {
                s_queue (self, it);
                continue;
            }
            at = it->due_ms;
        } else if (it->state == S_ACTIVE) {
            if (it->lease_ms <= now_ms) { /* the worker went silent: someone else */
                it->worker[0] = '\0';
                s_queue (self, it);
                continue;
            }
            at = it->lease_ms;
        } else
            continue;
        if (next < 0 || at - now_ms < next)
            next = at - now_ms;
    }
    return next;
}

size_t lss_workqueue_queued (const lss_workqueue_t *self)
{
    return zlistx_size (self->fifo);
}

size_t lss_workqueue_waiting (const lss_workqueue_t *self)
{
    return self->waiting;
}

size_t lss_workqueue_active (const lss_workqueue_t *self)
{
    return self->active;
}

int lss_workqueue_failures (const lss_workqueue_t *self, const char *key)
{
    s_item_t *it = key ? zhashx_lookup (self->items, key) : NULL;
    return it ? it->failures : 0;
}
