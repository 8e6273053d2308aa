/*  warmpool_alloc — claims a Ready WarmPod for a sandbox (any replica may call it).
 *
 *  A claim is an optimistic-concurrency status update: the Ready WarmPod, as listed, gets
 *  phase Assigned, assignedTo and assignedAt, guarded by the resourceVersion it was listed
 *  with. Only one writer can move a given resourceVersion on, so two callers never get
 *  the same pod; the losers (409) try the next candidate. No waiting: when no candidate
 *  is left the answer is pool_empty at once (the api then starts the sandbox cold).
 */
#ifndef WARMPOOL_ALLOC_H
#define WARMPOOL_ALLOC_H

#include <stddef.h>
#include <stdint.h>

#include "lss_proto.h"
#include "lss_store.h"

#define WARMPOOL_ALLOC_MAX_CANDIDATES 2000 /* WarmPods read per allocation */

/*  Statistics of one allocation, for metrics. */
typedef struct {
    int conflicts; /* candidates lost to another claimer (409) */
    int candidates;
} warmpool_alloc_stats_t;

/*  Claims a Ready WarmPod labelled with sanitize(req->runtime) and req->security_level
 *  (default standard) in req->namespace for req->sandbox, at now_ms.
 *  Returns 0 with out filled (name, namespace, pool, pod_name, endpoint: strings the
 *  caller frees with lss_proto_body_clear; out->ref is left alone), or -1 with code:
 *    "invalid_request"  bad runtime, level, namespace or sandbox name (err says which)
 *    "pool_empty"       no Ready warm pod could be claimed
 *    "unavailable"      the store failed
 *  stats may be NULL. */
int warmpool_allocate (lss_store_t *store, const lss_warm_allocate_t *req, int64_t now_ms,
                       lss_warm_allocated_t *out, char *code, size_t code_size, char *err,
                       size_t err_size);
int warmpool_allocate_stats (lss_store_t *store, const lss_warm_allocate_t *req, int64_t now_ms,
                             lss_warm_allocated_t *out, warmpool_alloc_stats_t *stats,
                             char *code, size_t code_size, char *err, size_t err_size);

#endif
