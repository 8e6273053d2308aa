/*  lss_admin — the admin HTTP endpoint every service runs on its admin port.
 *
 *  Routes (GET only; any other method is 405, any other path 404):
 *    /healthz  200 "ok\n" while the main loop's heartbeat (lss_admin_heartbeat) is younger
 *              than the stall limit, else 503 "stalled: main loop silent for N ms\n"
 *    /readyz   200 "ready\n" (or "ready: <reason>\n" when a ready callback gives a reason)
 *              or 503 "not ready: <reason>\n" from the readiness callback
 *    /metrics  lss_metrics_render (), text/plain; version=0.0.4
 *  Requests are counted in lss_admin_requests_total{path,code} (path is the route, or
 *  "other" for unknown paths, so the label set stays bounded).
 *
 *  The server is libwebsockets on its own thread (lws_service in a loop), so a service's
 *  CZMQ poll loop is never entangled with it: stopping sets a flag and wakes the thread
 *  with lws_cancel_service, then joins it. The thread blocks the process-directed
 *  signals (SIGINT, SIGTERM, ...) so they reach the service's main thread. lws logs
 *  errors only, routed to lss_log. Bounds: LSS_ADMIN_MAX_INFLIGHT responses in progress
 *  (further requests get 503 "busy\n"), response bodies at LSS_METRICS_RENDER_MAX, lws's
 *  connection table at LSS_ADMIN_FD_LIMIT file descriptors, idle keep-alive connections
 *  closed after LSS_ADMIN_KEEPALIVE_S.
 */
#ifndef LSS_ADMIN_H
#define LSS_ADMIN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define LSS_ADMIN_STALL_MS_DEFAULT 10000
#define LSS_ADMIN_REASON_MAX       256 /* readiness reason, bytes including the NUL */
#define LSS_ADMIN_MAX_INFLIGHT     8
#define LSS_ADMIN_FD_LIMIT         65536
#define LSS_ADMIN_KEEPALIVE_S      10
#define LSS_ADMIN_ADDRESS_MAX      300 /* "host:port", bytes including the NUL */

typedef struct _lss_admin_t lss_admin_t;

/*  Readiness callback. Runs on the admin thread, once per /readyz request: it must be
 *  thread-safe with respect to whatever it reads, quick (no I/O, no waiting on the main
 *  loop), and must not call back into lss_admin. Returns true if ready; when not, writes
 *  a short one-line reason (NUL-ended) into reason, which holds reason_size bytes. */
typedef bool (lss_admin_ready_fn) (void *arg, char *reason, size_t reason_size);

/*  Starts the endpoint on listen = "host:port" (host may be an IPv4/IPv6 literal, a name
 *  resolved once, "[v6]", or "" / "*" for every interface; port 0 picks a free port,
 *  see lss_admin_port). stall_ms <= 0 means LSS_ADMIN_STALL_MS_DEFAULT. ready_fn NULL
 *  means always ready; ready_arg is passed to it (borrowed). The heartbeat starts fresh.
 *  Returns NULL, with an error logged, on a bad address or a port already in use. */
lss_admin_t *lss_admin_new (const char *listen, int64_t stall_ms, lss_admin_ready_fn *ready_fn,
                            void *ready_arg);

/*  Stops the thread, closes every connection and frees the endpoint; NULLs *self_p.
 *  Must not be called from the readiness callback. */
void lss_admin_destroy (lss_admin_t **self_p);

/*  The port actually listened on. */
int lss_admin_port (const lss_admin_t *self);

/*  "host:port" actually listened on (borrowed, valid until destroy). */
const char *lss_admin_address (const lss_admin_t *self);

/*  Records that the main loop is alive (an atomic store; call it every loop turn, or at
 *  least every second). Thread-safe. */
void lss_admin_heartbeat (lss_admin_t *self);

#endif
