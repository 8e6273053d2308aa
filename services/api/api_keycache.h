/*  api_keycache — API keys this process has authenticated, kept in memory for a while.
 *
 *  Keyed by the key's SHA-256 (hex): a hit means the token hashes to a key that a worker
 *  looked up (Redis cache or PostgreSQL) and found valid; the entry holds who it is and
 *  lives until api.key_cache_ttl or the key's own expiry, whichever is first.
 *
 *  Revocation must reach every replica. A revoking replica drops its own entry at once
 *  and increments the Redis counter API_KEYCACHE_EPOCH_KEY; a sync thread in every
 *  replica reads that counter every API_KEYCACHE_SYNC_MS and empties its cache when it
 *  changes. While the counter cannot be read (Redis down, not yet read at start) the
 *  cache is switched off and empty, so every request is looked up as before. A
 *  revocation therefore takes effect at once where it was made and within about
 *  API_KEYCACHE_SYNC_MS (plus one Redis timeout) everywhere else.
 *
 *  A lookup that started before a revocation must not put back what it found: callers
 *  read api_keycache_generation before the lookup and pass it to put, which refuses the
 *  entry if anything was forgotten or cleared since. Thread-safe, bounded
 *  (API_KEYCACHE_MAX entries, then emptied).
 */
#ifndef API_KEYCACHE_H
#define API_KEYCACHE_H

#include <stdbool.h>
#include <stdint.h>

#include "api_msgs.h"

#define API_KEYCACHE_MAX       100000
#define API_KEYCACHE_SYNC_MS   100
#define API_KEYCACHE_EPOCH_KEY "lss:authn:epoch"

typedef struct _api_keycache_t api_keycache_t;

api_keycache_t *api_keycache_new (void);
/*  Stops the sync thread if started. */
void api_keycache_destroy (api_keycache_t **self_p);

/*  Starts the sync thread (its own Redis connection). 0 or -1. */
int api_keycache_sync_start (api_keycache_t *self, const char *redis_url, int timeout_ms);

uint64_t api_keycache_generation (api_keycache_t *self);
/*  1 with *who filled while hash's entry lives at now_ms, else 0. */
int api_keycache_get (api_keycache_t *self, const char *hash, int64_t now_ms,
                      api_principal_t *who);
/*  Records who for hash until expires_ms, unless generation is stale or the cache off. */
void api_keycache_put (api_keycache_t *self, uint64_t generation, const char *hash,
                       const api_principal_t *who, int64_t expires_ms);
/*  Drops hash's entry (this replica's revocation). */
void api_keycache_forget (api_keycache_t *self, const char *hash);
/*  Empties the cache; enabled false keeps it off (and empty) until set true again. */
void api_keycache_reset (api_keycache_t *self, bool enabled);

#endif
