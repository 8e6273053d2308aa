/*  executor_resolve — which agent serves a sandbox: reads the Sandbox object from the
 *  store on a thread of its own (store calls block; the executor's loop must not), and
 *  checks the endpoint it names.
 *
 *  The resolver is a CZMQ actor. The loop sends one frame, the sandbox reference
 *  "<namespace>/<name>", and later receives three frames: the reference, a code and a
 *  text. Codes: "ok" (text = the agent endpoint), "sandbox_not_found",
 *  "sandbox_not_running" (not Running, or no status.endpoint), "invalid_endpoint" (the
 *  object names an endpoint the executor refuses), "store_unavailable" (text = why).
 *  Requests are answered in order; the caller bounds how many it has outstanding
 *  (EXEC_RESOLVE_MAX_INFLIGHT) so the pipe's HWM is never reached.
 */
#ifndef EXECUTOR_RESOLVE_H
#define EXECUTOR_RESOLVE_H

#include <czmq.h>
#include <stdbool.h>

#include "lss_config.h"

#define EXEC_RESOLVE_MAX_INFLIGHT 256
#define EXEC_ENDPOINT_MAX         256 /* bytes of an agent endpoint */
#define EXEC_WARMPOD_REF_PREFIX                                                                \
    "warmpod:" /* sandbox "warmpod:<ns>/<name>": a Pending WarmPod */

/*  True if endpoint is one ZeroMQ endpoint the executor may connect to: "ipc://PATH"
 *  (path absolute, under 108 bytes) or "tcp://HOST:PORT", printable ASCII without
 *  spaces or commas (a CZMQ endpoint list would connect elsewhere too), at most
 *  EXEC_ENDPOINT_MAX bytes. */
bool exec_endpoint_valid (const char *endpoint);

/*  Starts the resolver with its own store connection: the backend cfg's store.backend
 *  names (cfg borrowed, must outlive the actor), or PostgreSQL at dsn (copied) when cfg
 *  is NULL. NULL on failure. Destroy with zactor_destroy. A failed connection is retried
 *  on the next request. */
zactor_t *exec_resolver_new (const lss_config_t *cfg, const char *dsn);

#endif
