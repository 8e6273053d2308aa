/*  reconciler_sync — one level-triggered pass over one Sandbox (docs/control-plane.md,
 *  "Sandbox sync"). Reads the Sandbox and its children from the store, moves them one
 *  step or several towards the spec, and writes status through the status subresource.
 *  Every write is guarded by resourceVersion: a conflict fails the pass (the work queue
 *  retries it after its backoff, and the next pass re-reads everything), so any number
 *  of workers in any number of processes may run passes concurrently.
 */
#ifndef RECONCILER_SYNC_H
#define RECONCILER_SYNC_H

#include <stddef.h>
#include <stdint.h>

#include "lss_store.h"

#define RECONCILER_REASON_MAX 64

typedef struct {
    const char *node_name;     /* Pod spec.nodeName ("" = any node) */
    const char *agent_command; /* the Pod's command (the agent inside the sandbox) */
    bool network_policies;     /* one NetworkPolicy per sandbox (cluster mode) */
    const char *curve_clients; /* executors' CURVE keys (csv): agents speak CURVE; NULL: no */
    const char *executor_ns;   /* namespace of the executor Pods (NetworkPolicy); NULL: own */
} reconciler_opts_t;

typedef struct {
    int64_t requeue_after_ms;           /* > 0: look at the key again then (expiry) */
    char reason[RECONCILER_REASON_MAX]; /* what this pass did: Running, Failed, ... */
    char phase[16];                     /* the Sandbox's phase after the pass */
    char namespace_[LSS_STORE_NAMESPACE_MAX + 1];
    char name[LSS_STORE_NAME_MAX + 1];
} reconciler_result_t;

/*  One pass for Sandbox ns/name at now_ms (epoch). Returns 0 (done: result filled,
 *  reason "" when nothing changed), or a negative LSS_STORE_* code with err (conflict,
 *  store unavailable: retry later). */
int reconciler_sync (lss_store_t *store, const reconciler_opts_t *opts, const char *ns,
                     const char *name, int64_t now_ms, reconciler_result_t *result, char *err,
                     size_t err_size);

/*  The Pod (caller owns) a cold start of sandbox creates, from its RuntimeEnvironment
 *  and SandboxProfile (NULL if none). Returns NULL with err naming the bad field
 *  (invalid resources, ...). Exposed for the tests. */
json_t *reconciler_pod_for (const json_t *sandbox, const json_t *runtime, const json_t *profile,
                            const reconciler_opts_t *opts, char *err, size_t err_size);

#endif
