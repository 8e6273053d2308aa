/*  warmpool_preload — runs a pool's preloadScripts in its warm pods, off the scaler.
 *
 *  A warm pod whose Pod is Ready but whose pool has preloadScripts is not offered until
 *  every script ran and exited 0 in it. The scripts go through lss-executor (sandbox
 *  "warmpod:<ns>/<name>", which the executor resolves to the Pending WarmPod's
 *  status.endpoint), one after the other as shell scripts, each bounded by
 *  WARMPOOL_PRELOAD_TIMEOUT_MS, on a thread per warm pod (at most
 *  WARMPOOL_PRELOAD_PARALLEL at once) so that a slow script never stalls the scaler's
 *  passes. The scaler polls the outcome on its next passes. The table lives in the
 *  process (one scaler per process): after a restart a warm pod being preloaded is
 *  preloaded again from the start, so scripts should be idempotent.
 */
#ifndef WARMPOOL_PRELOAD_H
#define WARMPOOL_PRELOAD_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#define WARMPOOL_PRELOAD_TIMEOUT_MS 300000 /* per script */
#define WARMPOOL_PRELOAD_PARALLEL   4      /* warm pods preloading at once */
#define WARMPOOL_PRELOAD_SCRIPTS    16     /* scripts per pool */
#define WARMPOOL_PRELOAD_SCRIPT_MAX 65536  /* bytes per script */

typedef enum {
    WARMPOOL_PRELOAD_NONE,    /* not started (or already consumed) */
    WARMPOOL_PRELOAD_RUNNING, /* scripts still running */
    WARMPOOL_PRELOAD_OK,      /* every script exited 0 */
    WARMPOOL_PRELOAD_FAILED   /* one did not: msg says which and why */
} warmpool_preload_state_t;

/*  The executor ROUTER to use (copied; NULL or "": preloading unavailable). Call once,
 *  before any pass. */
void warmpool_preload_configure (const char *executor_endpoint);
bool warmpool_preload_available (void);

/*  The state for warm pod ns/name; an OK or FAILED outcome is consumed by this call
 *  (msg: the reason of a failure). */
warmpool_preload_state_t warmpool_preload_poll (const char *ns, const char *name, char *msg,
                                                size_t msg_size);

/*  Starts the scripts (a preloadScripts array, borrowed, validated and copied) for ns/name.
 *  0; 1 when WARMPOOL_PRELOAD_PARALLEL already run (try on a later pass); -1 with msg on
 *  bad scripts (not an array of {name, content} within the limits) or no resources. */
int warmpool_preload_start (const char *ns, const char *name, const json_t *scripts, char *msg,
                            size_t msg_size);

#endif
