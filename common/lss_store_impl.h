/*  lss_store_impl — the seam between lss_store.h and its backends (backends only).
 *
 *  Design note: a store and a watch are "objects with a vtable": each backend embeds
 *  struct _lss_store_t (or struct _lss_store_watch_t) as the FIRST member of its own
 *  struct, fills ops with its functions, and casts the lss_store_t * it is handed back to
 *  its own type. lss_store.c dispatches every public call through ops, so callers never
 *  see which backend they hold. Arguments reach the backend exactly as the caller gave
 *  them: each backend validates its own input (most of it through lss_store_validate and
 *  the other checks of lss_store_valid.c, so both answer the same way).
 */
#ifndef LSS_STORE_IMPL_H
#define LSS_STORE_IMPL_H

#include "lss_store.h"

typedef struct {
    const char *name; /* "postgres" | "kubernetes" */
    /* frees everything the backend holds, including the struct itself */
    void (*destroy) (lss_store_t *self);
    int (*get) (lss_store_t *self, const char *kind, const char *ns, const char *name,
                json_t **out, char *err, size_t err_size);
    int (*list) (lss_store_t *self, const char *kind, const char *ns,
                 const char *label_selector, int limit, const char *continue_token,
                 json_t **out, char *err, size_t err_size);
    int (*create) (lss_store_t *self, const json_t *obj, json_t **out, char *err,
                   size_t err_size);
    int (*update) (lss_store_t *self, const json_t *obj, json_t **out, char *err,
                   size_t err_size);
    int (*update_status) (lss_store_t *self, const json_t *obj, json_t **out, char *err,
                          size_t err_size);
    /* NULL: lss_store.c applies the patch to a fresh read and updates (retrying on a
     * conflict when the patch carries no resourceVersion) */
    int (*patch) (lss_store_t *self, const char *kind, const char *ns, const char *name,
                  const json_t *patch, json_t **out, char *err, size_t err_size);
    int (*remove) (lss_store_t *self, const char *kind, const char *ns, const char *name,
                   const char *precondition_rv, char *err, size_t err_size);
    int (*compact) (lss_store_t *self, const char *keep_after_rv, char *err, size_t err_size);
    int (*current_rv) (lss_store_t *self, char *out, size_t out_size, char *err,
                       size_t err_size);
    lss_store_watch_t *(*watch_new) (lss_store_t *self, const char *kind, const char *ns,
                                     const char *from_rv, int *code, char *err,
                                     size_t err_size);
} lss_store_ops_t;

struct _lss_store_t {
    const lss_store_ops_t *ops;
};

typedef struct {
    void (*destroy) (lss_store_watch_t *self); /* frees the struct too */
    int (*fd) (lss_store_watch_t *self);
    int (*next) (lss_store_watch_t *self, lss_store_event_t *ev);
    const char *(*rv) (lss_store_watch_t *self);
} lss_store_watch_ops_t;

struct _lss_store_watch_t {
    const lss_store_watch_ops_t *ops;
};

/*  The Kubernetes backend's constructor from a configuration (lss_store_k8s.c). */
lss_store_t *lss_store_k8s_new_from_config (const lss_config_t *cfg, char *err,
                                            size_t err_size);

#endif
