/*  lss_store — the object store's public functions, dispatched to the backend.
 *
 *  Design note: every public call goes through the handle's ops table
 *  (lss_store_impl.h); the backends (lss_store_pg.c, lss_store_k8s.c) validate their own
 *  input. What is the same for every backend lives here: choosing the backend from the
 *  configuration, the event type names, and the merge patch for backends that have no
 *  native one (read, apply RFC 7386, update with the read's resourceVersion; a conflict
 *  is retried from a fresh read unless the patch itself carries a resourceVersion, which
 *  then is the caller's precondition).
 */
#include "lss_store_impl.h"
#include "lss_util.h"

#include <string.h>

#define S_PATCH_TRIES     8  /* fresh reads for an unconditional patch */
#define S_PATCH_DEPTH_MAX 64 /* nesting of a merge patch */

lss_store_t *lss_store_new_from_config (const lss_config_t *cfg, char *err, size_t err_size)
{
    const char *backend = lss_config_str (cfg, "store.backend");
    if (strcmp (backend, "postgres") == 0)
        return lss_store_pg_new (lss_config_str (cfg, "store.dsn"), err, err_size);
    if (strcmp (backend, "kubernetes") == 0)
        return lss_store_k8s_new_from_config (cfg, err, err_size);
    lss_errf (err, err_size, "store.backend: unknown backend \"%.32s\" (postgres | kubernetes)",
              backend);
    return NULL;
}

lss_store_t *lss_store_open (const lss_config_t *cfg, const char *dsn, char *err,
                             size_t err_size)
{
    return cfg ? lss_store_new_from_config (cfg, err, err_size)
               : lss_store_pg_new (dsn, err, err_size);
}

const char *lss_store_backend (const lss_store_t *self)
{
    return self->ops->name;
}

void lss_store_destroy (lss_store_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    (*self_p)->ops->destroy (*self_p);
    *self_p = NULL;
}

int lss_store_get (lss_store_t *self, const char *kind, const char *ns, const char *name,
                   json_t **out, char *err, size_t err_size)
{
    return self->ops->get (self, kind, ns, name, out, err, err_size);
}

int lss_store_list (lss_store_t *self, const char *kind, const char *ns,
                    const char *label_selector, int limit, const char *continue_token,
                    json_t **out, char *err, size_t err_size)
{
    return self->ops->list (self, kind, ns, label_selector, limit, continue_token, out, err,
                            err_size);
}

int lss_store_create (lss_store_t *self, const json_t *obj, json_t **out, char *err,
                      size_t err_size)
{
    return self->ops->create (self, obj, out, err, err_size);
}

int lss_store_update (lss_store_t *self, const json_t *obj, json_t **out, char *err,
                      size_t err_size)
{
    return self->ops->update (self, obj, out, err, err_size);
}

int lss_store_update_status (lss_store_t *self, const json_t *obj, json_t **out, char *err,
                             size_t err_size)
{
    return self->ops->update_status (self, obj, out, err, err_size);
}

int lss_store_delete (lss_store_t *self, const char *kind, const char *ns, const char *name,
                      const char *precondition_rv, char *err, size_t err_size)
{
    return self->ops->remove (self, kind, ns, name, precondition_rv, err, err_size);
}

int lss_store_compact (lss_store_t *self, const char *keep_after_rv, char *err, size_t err_size)
{
    return self->ops->compact (self, keep_after_rv, err, err_size);
}

int lss_store_current_rv (lss_store_t *self, char *out, size_t out_size, char *err,
                          size_t err_size)
{
    return self->ops->current_rv (self, out, out_size, err, err_size);
}

/* ------------------------------------------------------------------ patch */

/*  RFC 7386 on target (an object) in place: null deletes, objects merge, anything else
 *  replaces. Returns 0, or -1 if the patch nests deeper than S_PATCH_DEPTH_MAX. */
static int s_merge (json_t *target, const json_t *patch, int depth)
{
    if (depth > S_PATCH_DEPTH_MAX)
        return -1;
    const char *key;
    json_t *value;
    json_object_foreach ((json_t *)patch, key, value)
    {
        if (json_is_null (value)) {
            json_object_del (target, key);
            continue;
        }
        json_t *cur = json_object_get (target, key);
        if (json_is_object (value)) {
            if (!json_is_object (cur)) {
                cur = json_object ();
                if (!cur || json_object_set_new (target, key, cur) != 0)
                    return -1;
            }
            if (s_merge (cur, value, depth + 1) != 0)
                return -1;
        } else if (json_object_set (target, key, value) != 0)
            return -1;
    }
    return 0;
}

static int s_patch_generic (lss_store_t *self, const char *kind, const char *ns,
                            const char *name, const json_t *patch, json_t **out, char *err,
                            size_t err_size)
{
    const char *want_rv = json_string_value (
        json_object_get (json_object_get (patch, "metadata"), "resourceVersion"));
    int rc = LSS_STORE_CONFLICT;
    for (int attempt = 0; attempt < S_PATCH_TRIES && rc == LSS_STORE_CONFLICT; attempt++) {
        json_t *cur = NULL;
        rc = lss_store_get (self, kind, ns, name, &cur, err, err_size);
        if (rc != LSS_STORE_OK)
            return rc;
        const char *stored_rv = json_string_value (
            json_object_get (json_object_get (cur, "metadata"), "resourceVersion"));
        char rv[128];
        lss_fmt (rv, sizeof rv, "%s", stored_rv ? stored_rv : "");
        if (s_merge (cur, patch, 0) != 0) {
            json_decref (cur);
            lss_errf (err, err_size, "patch: nested deeper than %d", S_PATCH_DEPTH_MAX);
            return LSS_STORE_INVALID;
        }
        json_t *meta = json_object_get (cur, "metadata");
        if (!json_is_object (meta)) {
            json_decref (cur);
            lss_errf (err, err_size, "metadata: must be an object");
            return LSS_STORE_INVALID;
        }
        /* the patch's resourceVersion (if any) stays as the precondition */
        if (!want_rv)
            json_object_set_new (meta, "resourceVersion", json_string (rv));
        rc = lss_store_update (self, cur, out, err, err_size);
        json_decref (cur);
        if (want_rv)
            break;
    }
    return rc;
}

int lss_store_patch (lss_store_t *self, const char *kind, const char *ns, const char *name,
                     const json_t *patch, json_t **out, char *err, size_t err_size)
{
    if (out)
        *out = NULL;
    if (!json_is_object (patch)) {
        lss_errf (err, err_size, "patch: must be a JSON object");
        return LSS_STORE_INVALID;
    }
    if (self->ops->patch)
        return self->ops->patch (self, kind, ns, name, patch, out, err, err_size);
    return s_patch_generic (self, kind, ns, name, patch, out, err, err_size);
}

/* ------------------------------------------------------------------ watch */

lss_store_watch_t *lss_store_watch_new (lss_store_t *store, const char *kind, const char *ns,
                                        const char *from_rv, int *code, char *err,
                                        size_t err_size)
{
    return store->ops->watch_new (store, kind, ns, from_rv, code, err, err_size);
}

void lss_store_watch_destroy (lss_store_watch_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    (*self_p)->ops->destroy (*self_p);
    *self_p = NULL;
}

int lss_store_watch_fd (lss_store_watch_t *self)
{
    return self ? self->ops->fd (self) : -1;
}

int lss_store_watch_next (lss_store_watch_t *self, lss_store_event_t *ev)
{
    return self->ops->next (self, ev);
}

const char *lss_store_watch_rv (lss_store_watch_t *self)
{
    return self->ops->rv (self);
}

const char *lss_store_event_type_name (lss_store_event_type_t type)
{
    return type == LSS_STORE_ADDED      ? "ADDED"
           : type == LSS_STORE_MODIFIED ? "MODIFIED"
           : type == LSS_STORE_DELETED  ? "DELETED"
                                        : "UNKNOWN";
}
