/*  api_rlease — rate-limit counts taken from Redis in blocks. See api_rlease.h. */
#include "api_rlease.h"

#include <czmq.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "lss_util.h"

typedef struct {
    int64_t window; /* start of the block's window (Unix seconds) */
    int64_t next;   /* next number to spend */
    int64_t last;   /* last number owned */
} s_block_t;

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
                      int64_t limit, int64_t window_s, int64_t now_s, api_rl_result_t *out)
{
    char key[256];
    if (!self || window_s < 1 || s_key (klass, principal, key, sizeof key))
        return 0;
    int64_t window = now_s - now_s % window_s;
    int rc = 0;
    pthread_mutex_lock (&self->lock);
    s_block_t *b = zhashx_lookup (self->blocks, key);
    if (b && b->window == window && b->next <= b->last) {
        api_redis_rl_result (b->next++, limit, window_s, now_s, out);
        rc = 1;
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
        /* a newer block of the same window replaces the rest of an older one only if the
         * older one is spent (two workers can take blocks at the same time: the numbers
         * of the one not kept are then never spent, like a replica's) */
        if (b->window != window || b->next > b->last) {
            b->window = window;
            b->next = count - take + 2;
            b->last = count;
        }
    }
    pthread_mutex_unlock (&self->lock);
}
