/*  api_ctx — the state the api's threads share: settings read once at start, the
 *  mailboxes of each thread, the sandbox cache and the health of every dependency.
 *
 *  Built by main.c before any thread starts and read-only afterwards, except for the
 *  atomics (health, id counter) and what carries its own lock (mailboxes, cache).
 */
#ifndef API_CTX_H
#define API_CTX_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "api_cache.h"
#include "api_keycache.h"
#include "api_rlease.h"
#include "api_mailbox.h"
#include "lss_bus.h"
#include "lss_config.h"

typedef struct {
    /* settings (api.* and friends), copied at start */
    char namespace_[64];
    size_t max_body, max_file, exec_max_output, ws_max_frame, ws_send_queue;
    size_t ws_max_output; /* api.ws_max_output */
    int64_t create_wait_ms, exec_default_timeout_ms, exec_max_timeout_ms;
    int64_t ws_send_timeout_ms, ws_ping_ms, key_cache_ttl_ms, rate_window_ms, jwt_ttl_ms;
    int64_t rate_default, rate_create_sandbox, rate_execute_code;
    int workers, queue_max, max_connections, ws_max_executions, max_sandboxes_per_user;
    int redis_timeout_ms;
    char *jwt_secret; /* heap, NULL = JWTs refused */
    size_t jwt_secret_len;
    char *origins; /* heap, comma-separated allow-list */
    const char *listen, *db_dsn, *redis_url, *executor_endpoint, *warmpool_endpoint;
    const char *watcher_endpoint, *admin_key_file;
    const lss_config_t *cfg;
    lss_bus_opts_t bus_opts;

    /* mailboxes */
    api_mailbox_t *lws_inbox;    /* → libwebsockets thread */
    api_mailbox_t *jobs;         /* → workers */
    api_mailbox_t *bridge_inbox; /* → exec bridge */
    api_mailbox_t *events_inbox; /* → events thread */

    api_cache_t *cache;
    api_keycache_t *keycache; /* authenticated API keys (any thread) */
    api_rlease_t *rlease;     /* rate-limit blocks (any thread) */

    /* dependency health, written by the events thread's checks */
    atomic_bool db_ok, redis_ok, store_ok, executor_ok, watcher_ok, warmpool_ok;

    _Atomic uint64_t next_id; /* tickets, connection ids, execution ids */
} api_ctx_t;

/*  A fresh process-unique id (never 0). */
static inline uint64_t api_ctx_next_id (api_ctx_t *ctx)
{
    return atomic_fetch_add (&ctx->next_id, 1) + 1;
}

#endif
