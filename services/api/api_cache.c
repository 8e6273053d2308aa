/*  api_cache — sandbox and runtime objects and owners, shared between threads. See api_cache.h.
 */
#include "api_cache.h"

#include <czmq.h>
#include <pthread.h>
#include <string.h>

#include "lss_obj.h"
#include "lss_util.h"

typedef struct {
    json_t *obj; /* NULL for a tombstone */
    char rv[64];
    int64_t expires_ms;
} s_sb_entry_t;

typedef struct {
    api_sandbox_row_t row;
    int64_t expires_ms;
} s_owner_entry_t;

struct _api_cache_t {
    pthread_rwlock_t lock;
    zhashx_t *sandboxes; /* name → s_sb_entry_t */
    zhashx_t *runtimes;  /* RuntimeEnvironment name → s_sb_entry_t */
    zhashx_t *owners;    /* id → s_owner_entry_t */
    size_t max;
};

static void s_sb_free (void **item)
{
    s_sb_entry_t *e = *item;
    if (e) {
        json_decref (e->obj);
        free (e);
        *item = NULL;
    }
}

static void s_owner_free (void **item)
{
    free (*item);
    *item = NULL;
}

api_cache_t *api_cache_new (size_t max_entries)
{
    api_cache_t *self = calloc (1, sizeof *self);
    if (!self)
        return NULL;
    self->max = max_entries ? max_entries : API_CACHE_MAX_DEFAULT;
    self->sandboxes = zhashx_new ();
    self->owners = zhashx_new ();
    self->runtimes = zhashx_new ();
    if (!self->sandboxes || !self->owners || !self->runtimes) {
        zhashx_destroy (&self->sandboxes);
        zhashx_destroy (&self->owners);
        zhashx_destroy (&self->runtimes);
        free (self);
        return NULL;
    }
    zhashx_set_destructor (self->sandboxes, s_sb_free);
    zhashx_set_destructor (self->owners, s_owner_free);
    zhashx_set_destructor (self->runtimes, s_sb_free);
    pthread_rwlock_init (&self->lock, NULL);
    return self;
}

void api_cache_destroy (api_cache_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    api_cache_t *self = *self_p;
    zhashx_destroy (&self->sandboxes);
    zhashx_destroy (&self->owners);
    zhashx_destroy (&self->runtimes);
    pthread_rwlock_destroy (&self->lock);
    free (self);
    *self_p = NULL;
}

static bool s_decimal (const char *s)
{
    if (!s || !*s)
        return false;
    for (; *s; s++)
        if (*s < '0' || *s > '9')
            return false;
    return true;
}

int api_cache_rv_cmp (const char *a, const char *b)
{
    if (!a || !*a)
        return b && *b ? -1 : 0;
    if (!b || !*b)
        return 1;
    if (s_decimal (a) && s_decimal (b)) {
        while (*a == '0' && a[1])
            a++;
        while (*b == '0' && b[1])
            b++;
        size_t la = strlen (a), lb = strlen (b);
        if (la != lb)
            return la < lb ? -1 : 1;
    }
    return strcmp (a, b);
}

/*  Stores an object entry in table under the write lock; empties the table first when
 *  it is full. */
static void s_store (api_cache_t *self, zhashx_t *table, const char *name, json_t *obj,
                     const char *rv)
{
    int64_t now = lss_time_mono_ms ();
    s_sb_entry_t *old = zhashx_lookup (table, name);
    if (old && old->expires_ms > now && api_cache_rv_cmp (rv, old->rv) < 0)
        return; /* we hold something newer */
    if (!old && zhashx_size (table) >= self->max)
        zhashx_purge (table);
    s_sb_entry_t *e = calloc (1, sizeof *e);
    if (!e)
        return;
    e->obj = json_incref (obj);
    snprintf (e->rv, sizeof e->rv, "%s", rv ? rv : "");
    e->expires_ms = now + API_CACHE_TTL_MS;
    zhashx_update (table, name, e);
}

static void s_put (api_cache_t *self, zhashx_t *table, const char *name, json_t *obj)
{
    if (!name || !obj)
        return;
    const char *rv = lss_obj_str (obj, "metadata.resourceVersion");
    pthread_rwlock_wrlock (&self->lock);
    s_store (self, table, name, obj, rv);
    pthread_rwlock_unlock (&self->lock);
}

static void s_delete (api_cache_t *self, zhashx_t *table, const char *name, const char *rv)
{
    if (!name)
        return;
    pthread_rwlock_wrlock (&self->lock);
    if (!rv) { /* unknown: make sure the tombstone wins */
        zhashx_delete (table, name);
        rv = "99999999999999999999";
    }
    s_store (self, table, name, NULL, rv);
    pthread_rwlock_unlock (&self->lock);
}

static json_t *s_get (api_cache_t *self, zhashx_t *table, const char *name, bool *deleted)
{
    if (deleted)
        *deleted = false;
    if (!name)
        return NULL;
    json_t *obj = NULL;
    pthread_rwlock_rdlock (&self->lock);
    s_sb_entry_t *e = zhashx_lookup (table, name);
    if (e && e->expires_ms > lss_time_mono_ms ()) {
        if (e->obj)
            obj = json_incref (e->obj);
        else if (deleted)
            *deleted = true;
    }
    pthread_rwlock_unlock (&self->lock);
    return obj;
}

void api_cache_put_sandbox (api_cache_t *self, const char *name, json_t *obj)
{
    s_put (self, self->sandboxes, name, obj);
}

void api_cache_delete_sandbox (api_cache_t *self, const char *name, const char *rv)
{
    s_delete (self, self->sandboxes, name, rv);
}

json_t *api_cache_get_sandbox (api_cache_t *self, const char *name, bool *deleted)
{
    return s_get (self, self->sandboxes, name, deleted);
}

void api_cache_put_runtime (api_cache_t *self, const char *name, json_t *obj)
{
    s_put (self, self->runtimes, name, obj);
}

void api_cache_delete_runtime (api_cache_t *self, const char *name, const char *rv)
{
    s_delete (self, self->runtimes, name, rv);
}

json_t *api_cache_get_runtime (api_cache_t *self, const char *name, bool *deleted)
{
    return s_get (self, self->runtimes, name, deleted);
}

void api_cache_clear_sandboxes (api_cache_t *self)
{
    pthread_rwlock_wrlock (&self->lock);
    zhashx_purge (self->sandboxes);
    zhashx_purge (self->runtimes);
    pthread_rwlock_unlock (&self->lock);
}

void api_cache_put_owner (api_cache_t *self, const api_sandbox_row_t *row)
{
    s_owner_entry_t *e = calloc (1, sizeof *e);
    if (!e)
        return;
    e->row = *row;
    e->expires_ms = lss_time_mono_ms () + API_CACHE_OWNER_TTL_MS;
    pthread_rwlock_wrlock (&self->lock);
    if (!zhashx_lookup (self->owners, row->id) && zhashx_size (self->owners) >= self->max)
        zhashx_purge (self->owners);
    zhashx_update (self->owners, row->id, e);
    pthread_rwlock_unlock (&self->lock);
}

int api_cache_get_owner (api_cache_t *self, const char *id, api_sandbox_row_t *out)
{
    int hit = 0;
    pthread_rwlock_rdlock (&self->lock);
    s_owner_entry_t *e = zhashx_lookup (self->owners, id);
    if (e && e->expires_ms > lss_time_mono_ms ()) {
        *out = e->row;
        hit = 1;
    }
    pthread_rwlock_unlock (&self->lock);
    return hit;
}

void api_cache_drop_owner (api_cache_t *self, const char *id)
{
    pthread_rwlock_wrlock (&self->lock);
    zhashx_delete (self->owners, id);
    pthread_rwlock_unlock (&self->lock);
}
