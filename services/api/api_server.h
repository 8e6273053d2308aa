/*  api_server — the public HTTP + WebSocket endpoint on libwebsockets (api.listen).
 *
 *  The lws context runs on the thread that calls api_server_run (main's thread). That
 *  thread never waits on PostgreSQL, Redis, the store or the bus: it parses requests,
 *  answers what needs nothing else (routing errors, 413, /health, /ready from cached
 *  health, /metrics), and posts the rest to the workers' mailbox; answers come back in
 *  its own mailbox (ctx->lws_inbox, whose wake callback is lws_cancel_service) and are
 *  written when the socket is writable. Every request gets a ticket; a connection
 *  closed before its answer simply drops the answer. See docs/api.md.
 *
 *  Bounds: api.max_connections connections; bodies api.max_body (api.max_file for file
 *  uploads), checked against Content-Length before reading and again while reading;
 *  WebSocket messages api.ws_max_frame; per-connection WebSocket output
 *  api.ws_send_queue (credit keeps it lower); a WebSocket client that reads nothing for
 *  api.ws_send_timeout while output waits is disconnected; protocol pings every
 *  api.ws_ping.
 */
#ifndef API_SERVER_H
#define API_SERVER_H

#include "api_ctx.h"
#include "lss_service.h"

typedef struct _api_server_t api_server_t;

/*  Creates the lws context and listens on ctx->listen (so a taken port fails here),
 *  and creates ctx->lws_inbox. NULL (logged) on failure. */
api_server_t *api_server_new (api_ctx_t *ctx);
/*  The port actually listened on. */
int api_server_port (const api_server_t *self);
/*  Serves until the service is stopping. Heartbeats the service every turn. */
void api_server_run (api_server_t *self, lss_service_t *svc);
void api_server_destroy (api_server_t **self_p);

#endif
