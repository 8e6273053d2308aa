/*  node_server — lss-node's loop: watches Pod objects, runs each Pod of this node as an
 *  agent sandbox through sandbox_runtime, and reports Pod status through the store.
 *
 *  Design note. One thread, one poll loop over: the service's stop fd, the Pod watch's
 *  fd, the runtime's fd (sandbox deaths) and one inotify fd (agent sockets appearing in
 *  the run dirs of sandboxes not yet Ready), with a 1 s tick for retries and fallbacks.
 *  Level-triggered: every event only marks a Pod for sync; a sync computes the status
 *  the Pod should have from what the runtime says and writes it only when it differs
 *  (resourceVersion-guarded; a 409 re-reads the Pod and syncs again). Starting a sandbox
 *  never waits for its agent: start() returns once bwrap reports the init pid, readiness
 *  comes later from inotify. Store calls are synchronous (a few ms each, bounded by the
 *  store's statement timeout). Pods past node.max_sandboxes queue in arrival order and
 *  stay Pending (NodeFull) until a sandbox is stopped.
 */
#ifndef NODE_SERVER_H
#define NODE_SERVER_H

#include <stdbool.h>
#include <stdint.h>

#include "lss_service.h"

#define NODE_STARTS_PER_TURN 16   /* sandbox starts before the loop polls again */
#define NODE_EVENTS_PER_TURN 256  /* watch events taken per turn */
#define NODE_TICK_MS         1000 /* retries, readiness fallback, gauges */
#define NODE_READY_WAIT_MS   500  /* a started Pod's status waits this long for its agent */
#define NODE_BACKOFF_MIN_MS  250
#define NODE_BACKOFF_MAX_MS  5000
#define NODE_SYNC_ATTEMPTS   4 /* status writes per sync (409 → re-read, again) */
#define NODE_STOP_TIMEOUT_MS 5000
#define NODE_UID_COUNT       1024 /* host uids reserved from node.uid_base when root */

typedef struct {
    const char *dsn;         /* store.dsn */
    const lss_config_t *cfg; /* borrowed for the store backend; NULL: PostgreSQL at dsn */
    const char *state_dir;   /* node.state_dir */
    const char *agent_path;  /* absolute path of lss-agent on the host */
    const char *node_name;   /* node.name */
    int max_sandboxes;       /* node.max_sandboxes */
    uint32_t uid_base;       /* node.uid_base (used when root) */
} node_server_conf_t;

typedef struct _node_server_t node_server_t;

/*  Opens the runtime on conf->state_dir (uid range when root) and adopts the sandboxes
 *  found there. conf strings are copied. Returns NULL (logged) if the runtime cannot
 *  be opened. The store is connected later, by the loop (with backoff). */
node_server_t *node_server_new (const node_server_conf_t *conf);
/*  Leaves every sandbox running (adopted by the next lss-node); NULLs *self_p. */
void node_server_destroy (node_server_t **self_p);

/*  Runs the loop until svc is asked to stop. Sets readiness once the first list of Pods
 *  has been reconciled. Returns 0. */
int node_server_run (node_server_t *self, lss_service_t *svc);

#endif
