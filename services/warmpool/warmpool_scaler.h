/*  warmpool_scaler — one level-triggered pass that moves a WarmPool towards its spec.
 *
 *  Reads the WarmPool, its RuntimeEnvironment, its WarmPods (label llmsafespace.dev/pool)
 *  and their Pods from the store, and takes every step it can in one pass: mirrors Pod
 *  readiness into WarmPod status, replaces failed / expired warm pods, releases assigned
 *  ones whose Sandbox is gone, creates or (after scaleDownDelay) deletes warm pods to
 *  reach the target, and writes the pool's status when it changed. Rules and numbers:
 *  docs/warmpool.md. Every write is guarded by resourceVersion; a conflict fails the
 *  pass (the work queue retries it with backoff, re-reading everything).
 *
 *  No I/O besides the store: testable against a real PostgreSQL without any bus.
 */
#ifndef WARMPOOL_SCALER_H
#define WARMPOOL_SCALER_H

#include <stddef.h>
#include <stdint.h>

#include "lss_store.h"

#define WARMPOOL_HARD_MAX        1000     /* warm pods per pool, whatever maxSize says */
#define WARMPOOL_MAX_NAME        57       /* pool name + "-" + 5 chars fits a label value */
#define WARMPOOL_CREATE_PER_PASS 50       /* creations per pass; more → requeue at once */
#define WARMPOOL_ASSIGN_GRACE_MS 60000    /* assigned pod kept this long without a Sandbox */
#define WARMPOOL_PENDING_MAX_MS  300000   /* a warm pod whose Pod is not Ready by then goes */
#define WARMPOOL_DEFAULT_TTL_S   3600     /* spec.ttl absent */
#define WARMPOOL_DEFAULT_TARGET  80       /* autoScaling.targetUtilization absent */
#define WARMPOOL_DEFAULT_DELAY_S 300      /* autoScaling.scaleDownDelay absent */
#define WARMPOOL_MAX_TTL_S       31536000 /* a year: larger values are clamped */
#define WARMPOOL_REQUEUE_SOON_MS 1        /* more work right away (creation batch) */

/*  What a pass did, for events and metrics. */
typedef struct {
    int created;      /* WarmPods created (scale-up or refill) */
    int scaled_down;  /* Ready idle WarmPods deleted as surplus */
    int replaced;     /* WarmPods deleted because their Pod failed/vanished or ttl passed */
    int released;     /* Assigned WarmPods deleted because their Sandbox is gone */
    int marked_ready; /* WarmPods turned Ready */
    int available, assigned, pending; /* counts written to status */
    int desired_idle;                 /* target of available + pending */
    int deleted_pool;                 /* 1 if the pool does not exist (nothing done) */
} warmpool_report_t;

/*  One pass for WarmPool ns/name at time now_ms (epoch ms; tests drive it). On return
 *  *requeue_after_ms (may be NULL) is 0 when nothing is timed, else the delay until the
 *  next timed action (ttl expiry, scale-down delay, assignment grace, a creation batch).
 *  A missing pool is success (its children went with it). Returns 0, or a negative
 *  LSS_STORE_* code with a message in err (409 included: retry the pass). */
int warmpool_sync (lss_store_t *store, const char *ns, const char *name, int64_t now_ms,
                   int64_t *requeue_after_ms, char *err, size_t err_size);

/*  Cluster mode (store.backend kubernetes), set once before any pass: warm pods' agents
 *  listen on TCP, and with curve_clients (the executors' CURVE keys, csv; copied) each
 *  gets its key pair as the reconciler's cold pods do (lss_pod_cluster_agent). */
void warmpool_scaler_set_cluster (bool cluster, const char *curve_clients);

/*  The same, filling report (may be NULL; zeroed first). */
int warmpool_sync_report (lss_store_t *store, const char *ns, const char *name, int64_t now_ms,
                          int64_t *requeue_after_ms, warmpool_report_t *report, char *err,
                          size_t err_size);

/*  The idle target (available + pending) for a pool: max (min_size, ceil (assigned *
 *  (100 - target) / target)) when autoscaling, else min_size; then capped so that
 *  idle + assigned <= max_total. Pure; exposed for tests and docs. */
int warmpool_desired_idle (int min_size, int max_total, int assigned, int autoscale,
                           int target_pct);

#endif
