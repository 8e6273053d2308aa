/*  api_cache — what the api remembers between requests: Sandbox and RuntimeEnvironment
 *  objects as last seen and who owns each sandbox. Thread-safe (one rwlock), bounded,
 *  every entry with a TTL.
 *
 *  Objects (both kinds, the same rules) come from the watcher's events (api_events) and from
 * the workers' own store reads. An entry is replaced only by an object with a higher
 *  resourceVersion, and a deletion leaves a tombstone for the TTL, so a slow store read
 *  can never bring back an older state or a deleted object. Entries expire after
 *  API_CACHE_TTL_MS: the events keep hot entries fresh, and a lost event (the bus is
 *  lossy) costs at most one TTL of staleness; api_cache_clear_sandboxes is called when
 *  the events thread sees a gap. Objects handed out are shared and must not be modified.
 *
 *  Owner rows (api_db's sandboxes table) are immutable in what the cache is used for
 *  (owner, namespace, runtime, warm, created), so they are kept for API_CACHE_OWNER_TTL_MS
 *  and dropped on delete.
 */
#ifndef API_CACHE_H
#define API_CACHE_H

#include <jansson.h>
#include <stddef.h>

#include "api_db.h"

#define API_CACHE_TTL_MS       5000
#define API_CACHE_OWNER_TTL_MS 60000
#define API_CACHE_MAX_DEFAULT  100000 /* entries of each kind; past it the kind is emptied */

typedef struct _api_cache_t api_cache_t;

api_cache_t *api_cache_new (size_t max_entries);
void api_cache_destroy (api_cache_t **self_p);

/*  Records obj (borrowed; a reference is kept) as the latest state of sandbox name,
 *  unless a newer one (or a newer tombstone) is already there. */
void api_cache_put_sandbox (api_cache_t *self, const char *name, json_t *obj);
/*  Records that name was deleted at resourceVersion rv (NULL = unknown: newest). */
void api_cache_delete_sandbox (api_cache_t *self, const char *name, const char *rv);
/*  The cached object (a new reference) or NULL on a miss. *deleted is set when a live
 *  tombstone says the object is gone (the caller answers 404 without a store read). */
json_t *api_cache_get_sandbox (api_cache_t *self, const char *name, bool *deleted);
/*  The same for RuntimeEnvironments (cluster-scoped, by name): a create then needs no
 *  store read to know its runtime exists. */
void api_cache_put_runtime (api_cache_t *self, const char *name, json_t *obj);
void api_cache_delete_runtime (api_cache_t *self, const char *name, const char *rv);
json_t *api_cache_get_runtime (api_cache_t *self, const char *name, bool *deleted);
/*  Empties the Sandbox and RuntimeEnvironment entries (events were lost). */
void api_cache_clear_sandboxes (api_cache_t *self);

void api_cache_put_owner (api_cache_t *self, const api_sandbox_row_t *row);
/*  1 with *out filled on a hit, 0 on a miss. */
int api_cache_get_owner (api_cache_t *self, const char *id, api_sandbox_row_t *out);
void api_cache_drop_owner (api_cache_t *self, const char *id);

/*  Compares two resourceVersions: decimal ones numerically, others as strings.
 *  <0, 0, >0 like strcmp; NULL is the oldest. */
int api_cache_rv_cmp (const char *a, const char *b);

#endif
