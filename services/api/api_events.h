/*  api_events — the api's thread that follows the system: the watcher's Sandbox events
 *  and the health of every dependency.
 *
 *  - SUB to api.watcher_endpoint (every topic, for the seq check; Sandbox events used):
 *    each Sandbox event of the api's namespace
 *    refreshes the sandbox cache (api_cache) and records the lifecycle in PostgreSQL
 *    (api_db_sandbox_update: status, startedAt, terminatedAt). The bus is lossy: a gap
 *    in a publisher's seq, or a new publisher (leader change), empties the cache.
 *  - API_MSG_WAIT_RUNNING from the workers: POST /sandboxes waits here, never in a
 *    worker. The answer is 201 once the sandbox is Running or Failed, 202 with the
 *    current state when the wait (api.create_wait) ends first. Events answer at once;
 *    a store read every API_EVENTS_RECHECK_MS covers a lost event.
 *  - API_MSG_PUBLISH from the workers: audit events (SandboxCreated, SandboxDeleted,
 *    ExecEnded) published on api.pub_endpoint as "api.event", topic
 *    api.<reason>.<namespace>.<sandbox>, details with the user id.
 *  - Every API_EVENTS_HEALTH_MS: PostgreSQL, Redis and store pings; the watcher and the
 *    warm-pool allocator count as reachable while a connection to one of their
 *    endpoints is up (ZeroMQ socket monitor). The executor's health is the bridge's.
 *    Results go to ctx's atomics, read by GET /ready.
 */
#ifndef API_EVENTS_H
#define API_EVENTS_H

#include "api_ctx.h"

#define API_EVENTS_RECHECK_MS 500
#define API_EVENTS_HEALTH_MS  2000
#define API_EVENTS_MAX_WAITS  4096   /* creates waiting at once; more are answered 202 */
#define API_EVENTS_SEEN_MAX   100000 /* lifecycle states remembered (then forgotten) */

typedef struct _api_events_t api_events_t;

/*  Creates ctx->events_inbox and starts the thread. NULL on failure (logged). */
api_events_t *api_events_new (api_ctx_t *ctx);
/*  Stops the thread; waiting creates are answered 202 first. */
void api_events_destroy (api_events_t **self_p);

#endif
