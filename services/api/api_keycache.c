/*  api_keycache — authenticated API keys kept in memory. See api_keycache.h. */
#include "api_keycache.h"

#include <czmq.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "api_redis.h"
#include "lss_log.h"
#include "lss_util.h"

typedef struct {
    api_principal_t who;
    int64_t expires_ms;
} s_entry_t;

struct _api_keycache_t {
    pthread_mutex_t lock;
    zhashx_t *entries; /* hash → s_entry_t */
    uint64_t generation;
    bool enabled;
    /* sync thread */
    pthread_t thread;
    bool started;
    atomic_bool stop;
    api_redis_t *redis;
};

static void s_free (void **item)
{
    free (*item);
    *item = NULL;
}

api_keycache_t *api_keycache_new (void)
{
    api_keycache_t *self = calloc (1, sizeof *self);
    if (!self)
        return NULL;
    self->entries = zhashx_new ();
    if (!self->entries) {
        free (self);
        return NULL;
    }
    zhashx_set_destructor (self->entries, s_free);
    pthread_mutex_init (&self->lock, NULL);
    return self;
}

void api_keycache_destroy (api_keycache_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    api_keycache_t *self = *self_p;
    if (self->started) {
        atomic_store (&self->stop, true);
        pthread_join (self->thread, NULL);
    }
    api_redis_destroy (&self->redis);
    zhashx_destroy (&self->entries);
    pthread_mutex_destroy (&self->lock);
    free (self);
    *self_p = NULL;
}

uint64_t api_keycache_generation (api_keycache_t *self)
{
    pthread_mutex_lock (&self->lock);
    uint64_t g = self->generation;
    pthread_mutex_unlock (&self->lock);
    return g;
}

int api_keycache_get (api_keycache_t *self, const char *hash, int64_t now_ms,
                      api_principal_t *who)
{
    int hit = 0;
    if (!self || !hash)
        return 0;
    pthread_mutex_lock (&self->lock);
    s_entry_t *e = self->enabled ? zhashx_lookup (self->entries, hash) : NULL;
    if (e && e->expires_ms > now_ms) {
        *who = e->who;
        hit = 1;
    } else if (e)
        zhashx_delete (self->entries, hash);
    pthread_mutex_unlock (&self->lock);
    return hit;
}

void api_keycache_put (api_keycache_t *self, uint64_t generation, const char *hash,
                       const api_principal_t *who, int64_t expires_ms)
{
    if (!self || !hash || strlen (hash) != 64)
        return;
    pthread_mutex_lock (&self->lock);
    if (self->enabled && generation == self->generation) {
        if (zhashx_size (self->entries) >= API_KEYCACHE_MAX)
            zhashx_purge (self->entries);
        s_entry_t *e = calloc (1, sizeof *e);
        if (e) {
            e->who = *who;
            e->expires_ms = expires_ms;
            zhashx_update (self->entries, hash, e);
        }
    }
    pthread_mutex_unlock (&self->lock);
}

void api_keycache_forget (api_keycache_t *self, const char *hash)
{
    if (!self || !hash)
        return;
    pthread_mutex_lock (&self->lock);
    zhashx_delete (self->entries, hash);
    self->generation++;
    pthread_mutex_unlock (&self->lock);
}

void api_keycache_reset (api_keycache_t *self, bool enabled)
{
    if (!self)
        return;
    pthread_mutex_lock (&self->lock);
    zhashx_purge (self->entries);
    self->generation++;
    self->enabled = enabled;
    pthread_mutex_unlock (&self->lock);
}

static void *s_sync (void *arg)
{
    api_keycache_t *self = arg;
    bool known = false;
    int64_t epoch = 0;
    while (!atomic_load (&self->stop)) {
        int64_t now_epoch;
        if (api_redis_counter_get (self->redis, API_KEYCACHE_EPOCH_KEY, &now_epoch) != 0) {
            if (known)
                lss_log_warn ("key cache off: the revocation counter cannot be read", NULL);
            known = false;
            api_keycache_reset (self, false);
        } else if (!known || now_epoch != epoch) {
            if (known)
                lss_log_debug ("key cache emptied: a key was revoked", NULL);
            api_keycache_reset (self, true);
            epoch = now_epoch;
            known = true;
        }
        usleep (API_KEYCACHE_SYNC_MS * 1000);
    }
    return NULL;
}

int api_keycache_sync_start (api_keycache_t *self, const char *redis_url, int timeout_ms)
{
    char err[256];
    self->redis = api_redis_new (redis_url, timeout_ms, err, sizeof err);
    if (!self->redis) {
        lss_log_error ("key cache: bad redis.url", "{s:s}", "error", err);
        return -1;
    }
    if (pthread_create (&self->thread, NULL, s_sync, self) != 0)
        return -1;
    self->started = true;
    return 0;
}
