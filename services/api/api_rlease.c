/*  api_rlease — rate-limit counts taken from Redis in blocks. See api_rlease.h. */
#include "api_rlease.h"

#include <czmq.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "lss_util.h"

typedef struct {
    int64_t window;       /* start of the block's window (Unix seconds) */
    int64_t next;         /* next number to spend */
    int64_t last;         /* last number owned */
    int64_t take;         /* block size */
    int64_t rnext, rlast; /* the reserve block (0, 0: none) */
    bool refilling;       /* a refill job is on its way */
} s_block_t;

typedef struct {
    api_msg_t msg; /* API_MSG_RL_REFILL */
    char klass[64];
    char principal[160];
    int64_t limit, window_s, now_s;
} s_refill_t;

struct _api_rlease_t {
    pthread_mutex_t lock;
    zhashx_t *blocks; /* "<class>:<principal>" → s_block_t */
};

static void s_free (void **item)
{
    free (*item);
    *item = NULL;
}

api_rlease_t *api_rlease_new (void)
{
    api_rlease_t *self = calloc (1, sizeof *self);
    if (!self)
        return NULL;
    self->blocks = zhashx_new ();
    if (!self->blocks) {
        free (self);
        return NULL;
    }
    zhashx_set_destructor (self->blocks, s_free);
    pthread_mutex_init (&self->lock, NULL);
    return self;
}

void api_rlease_destroy (api_rlease_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    api_rlease_t *self = *self_p;
    zhashx_destroy (&self->blocks);
    pthread_mutex_destroy (&self->lock);
    free (self);
    *self_p = NULL;
}

int64_t api_rlease_block (int64_t limit)
{
    int64_t n = limit / API_RLEASE_DIVISOR;
    return n < 1 ? 1 : n > API_RLEASE_MAX ? API_RLEASE_MAX : n;
}

static int s_key (const char *klass, const char *principal, char *out, size_t size)
{
    return lss_fmt (out, size, "%s:%s", klass ? klass : "", principal ? principal : "");
}

int api_rlease_spend (api_rlease_t *self, const char *klass, const char *principal,
                      int64_t limit, int64_t window_s, int64_t now_s, api_rl_result_t *out,
                      bool *refill)
{
    char key[256];
    *refill = false;
    if (!self || window_s < 1 || s_key (klass, principal, key, sizeof key))
        return 0;
    int64_t window = now_s - now_s % window_s;
    int rc = 0;
    pthread_mutex_lock (&self->lock);
    s_block_t *b = zhashx_lookup (self->blocks, key);
    if (b && b->window == window) {
        if (b->next > b->last && b->rnext && b->rnext <= b->rlast) {
            b->next = b->rnext;
            b->last = b->rlast;
            b->take = b->rlast - b->rnext + 1;
            b->rnext = b->rlast = 0;
        }
        if (b->next <= b->last) {
            api_redis_rl_result (b->next++, limit, window_s, now_s, out);
            rc = 1;
            /* half spent, the numbers still under the limit: ask for the next block */
            if (!b->refilling && !b->rnext && 2 * (b->last - b->next + 1) <= b->take &&
                b->last < limit) {
                b->refilling = true;
                *refill = true;
            }
        }
    }
    pthread_mutex_unlock (&self->lock);
    return rc;
}

/*  Called with the lock held when the table is full. */
static void s_prune (api_rlease_t *self, int64_t window)
{
    zlistx_t *old = zlistx_new ();
    if (old) {
        zlistx_set_duplicator (old, (zlistx_duplicator_fn *)strdup);
        zlistx_set_destructor (old, (zlistx_destructor_fn *)zstr_free);
        for (s_block_t *b = zhashx_first (self->blocks); b; b = zhashx_next (self->blocks))
            if (b->window != window)
                zlistx_add_end (old, (void *)zhashx_cursor (self->blocks));
        for (const char *k = zlistx_first (old); k; k = zlistx_next (old))
            zhashx_delete (self->blocks, k);
        zlistx_destroy (&old);
    }
    if (zhashx_size (self->blocks) >= API_RLEASE_ENTRIES)
        zhashx_purge (self->blocks);
}

void api_rlease_add (api_rlease_t *self, const char *klass, const char *principal,
                     int64_t limit, int64_t window_s, int64_t now_s, int64_t take,
                     int64_t count, api_rl_result_t *out)
{
    api_redis_rl_result (count - take + 1, limit, window_s, now_s, out);
    char key[256];
    if (!self || take <= 1 || window_s < 1 || s_key (klass, principal, key, sizeof key))
        return;
    int64_t window = now_s - now_s % window_s;
    pthread_mutex_lock (&self->lock);
    s_block_t *b = zhashx_lookup (self->blocks, key);
    if (!b) {
        if (zhashx_size (self->blocks) >= API_RLEASE_ENTRIES)
            s_prune (self, window);
        b = calloc (1, sizeof *b);
        if (b && zhashx_insert (self->blocks, key, b) != 0) {
            free (b);
            b = NULL;
        }
    }
    if (b) {
        /* a newer block of the same window replaces an older one only if the older one
         * is spent, else it goes to the reserve if that is free (two threads can take
         * blocks at the same time: the numbers of one not kept are never spent, like a
         * replica's) */
        if (b->window != window || b->next > b->last) {
            if (b->window != window)
                b->rnext = b->rlast = 0;
            b->window = window;
            b->next = count - take + 2;
            b->last = count;
            b->take = take;
        } else if (!b->rnext && take > 1) {
            /* the current block is not spent (another thread took one meanwhile): keep
             * this one's numbers in reserve rather than lose them */
            b->rnext = count - take + 2;
            b->rlast = count;
        }
    }
    pthread_mutex_unlock (&self->lock);
}

static void s_refill_clear (api_rlease_t *self, const char *klass, const char *principal,
                            int64_t window, int64_t take, int64_t count)
{
    char key[256];
    if (s_key (klass, principal, key, sizeof key))
        return;
    pthread_mutex_lock (&self->lock);
    s_block_t *b = zhashx_lookup (self->blocks, key);
    if (b) {
        b->refilling = false;
        if (count > 0 && b->window == window && !b->rnext) {
            b->rnext = count - take + 1;
            b->rlast = count;
        }
    }
    pthread_mutex_unlock (&self->lock);
}

void api_rlease_refill_post (api_rlease_t *self, api_mailbox_t *jobs, const char *klass,
                             const char *principal, int64_t limit, int64_t window_s,
                             int64_t now_s)
{
    s_refill_t *m = calloc (1, sizeof *m);
    if (m && lss_fmt (m->klass, sizeof m->klass, "%s", klass) == 0 &&
        lss_fmt (m->principal, sizeof m->principal, "%s", principal) == 0) {
        m->msg.type = API_MSG_RL_REFILL;
        m->limit = limit;
        m->window_s = window_s;
        m->now_s = now_s;
        if (api_mailbox_post (jobs, &m->msg) == 0)
            return;
    }
    free (m);
    s_refill_clear (self, klass, principal, 0, 0, 0);
}

void api_rlease_refill_run (api_rlease_t *self, api_redis_t *redis, api_msg_t *job)
{
    s_refill_t *m = (s_refill_t *)job;
    int64_t take = api_rlease_block (m->limit), count = 0;
    int64_t window = m->now_s - m->now_s % m->window_s;
    if (api_redis_rate_take (redis, m->klass, m->principal, take, m->window_s, m->now_s,
                             &count))
        count = 0;
    s_refill_clear (self, m->klass, m->principal, window, take, count);
}
