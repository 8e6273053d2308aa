/*  executor_server — the executor's loop: a ROUTER for requesters (the api, the warm-pool
 *  scaler, tests), one DEALER per agent, a PUB for lifecycle events and the resolver
 *  actor, all in one zmq_poll. See docs/executor.md for the protocol.
 */
#ifndef EXECUTOR_SERVER_H
#define EXECUTOR_SERVER_H

#include <stdint.h>

#include "lss_bus.h"
#include "lss_curve.h"
#include "lss_service.h"

#define EXEC_MAX_AGENTS      1024  /* agent connections at once */
#define EXEC_MAX_REQUESTERS  4096  /* requesters tracked at once */
#define EXEC_RESOLVE_TTL_MS  1000  /* a Sandbox resolution is reused this long */
#define EXEC_RESOLVE_CACHE   4096  /* resolutions cached at most */
#define EXEC_AGENT_IDLE_MS   30000 /* an agent connection unused this long is closed */
#define EXEC_GRACE_MS        2000  /* after the deadline, the agent has this long to end it */
#define EXEC_MIN_MAX_MESSAGE (8 << 20)
#define EXEC_CHUNK_MAX       (256u * 1024) /* output bytes per exec.output to a requester */

typedef struct {
    char router_endpoint[512];
    char pub_endpoint[512];
    char store_dsn[4096];
    /* borrowed, for the store backend; NULL: PostgreSQL at store_dsn */
    const lss_config_t *cfg;
    char curve_secret[LSS_CURVE_KEY_LEN + 1]; /* executor.curve_secret ("" = none) */
    int64_t agent_timeout_ms;
    int64_t default_timeout_ms;
    int64_t max_timeout_ms;
    int64_t requester_timeout_ms;
    int64_t max_streams;
    int64_t window;
    lss_bus_opts_t bus;
    char src[64];
} executor_conf_t;

/*  Reads the executor.*, store.dsn and bus.* keys. */
void executor_conf_from_config (executor_conf_t *conf, const lss_config_t *cfg);

/*  Binds, then serves until the service is asked to stop (svc may be NULL: then until
 *  SIGINT/SIGTERM through zsys_interrupted). Sets readiness once bound. Returns the exit
 *  code: 0 after a clean stop, 1 when the sockets could not be set up. */
int executor_server_run (const executor_conf_t *conf, lss_service_t *svc);

#endif
