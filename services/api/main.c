/*  lss-api — the public REST and WebSocket API (API.md). docs/api.md describes the
 *  threads and how a request flows through them.
 *
 *    lss-api [--config FILE] [--log-level LEVEL]
 *  Keys: api.*, redis.url, store.*, k8s.*, bus.* (LSS_* environment variables override).
 *
 *  Start: settings → schema migrations and the bootstrap admin (exits 1 if PostgreSQL
 *  cannot be reached: the supervisor restarts us) → the server (binds api.listen) → the
 *  executor bridge, the events thread and the workers → ready. Stop (SIGTERM): the
 *  libwebsockets loop ends, then the workers (queued jobs still run), events (waiting
 *  creates answered 202) and the bridge (in-flight work answered 503, executions
 *  cancelled) are stopped.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api_bridge.h"
#include "api_ctx.h"
#include "api_events.h"
#include "api_pool.h"
#include "api_server.h"
#include "lss_log.h"
#include "lss_service.h"
#include "lss_util.h"

static void s_ctx_from_config (api_ctx_t *c, const lss_config_t *cfg)
{
    c->cfg = cfg;
    snprintf (c->namespace_, sizeof c->namespace_, "%s", lss_config_str (cfg, "api.namespace"));
    c->max_body = (size_t)lss_config_int (cfg, "api.max_body");
    c->max_file = (size_t)lss_config_int (cfg, "api.max_file");
    c->exec_max_output = (size_t)lss_config_int (cfg, "api.exec_max_output");
    c->ws_max_frame = (size_t)lss_config_int (cfg, "api.ws_max_frame");
    c->ws_send_queue = (size_t)lss_config_int (cfg, "api.ws_send_queue");
    c->ws_max_output = (size_t)lss_config_int (cfg, "api.ws_max_output");
    c->create_wait_ms = lss_config_int (cfg, "api.create_wait");
    c->exec_default_timeout_ms = lss_config_int (cfg, "api.exec_default_timeout");
    c->exec_max_timeout_ms = lss_config_int (cfg, "executor.max_timeout");
    c->ws_send_timeout_ms = lss_config_int (cfg, "api.ws_send_timeout");
    c->ws_ping_ms = lss_config_int (cfg, "api.ws_ping");
    c->key_cache_ttl_ms = lss_config_int (cfg, "api.key_cache_ttl");
    c->rate_window_ms = lss_config_int (cfg, "api.rate_window");
    c->jwt_ttl_ms = lss_config_int (cfg, "api.jwt_ttl");
    c->rate_default = lss_config_int (cfg, "api.rate_default");
    c->rate_create_sandbox = lss_config_int (cfg, "api.rate_create_sandbox");
    c->rate_execute_code = lss_config_int (cfg, "api.rate_execute_code");
    c->workers = (int)lss_config_int (cfg, "api.workers");
    c->queue_max = (int)lss_config_int (cfg, "api.queue_max");
    c->max_connections = (int)lss_config_int (cfg, "api.max_connections");
    c->ws_max_executions = (int)lss_config_int (cfg, "api.ws_max_executions");
    c->max_sandboxes_per_user = (int)lss_config_int (cfg, "api.max_sandboxes_per_user");
    c->redis_timeout_ms = (int)lss_config_int (cfg, "api.redis_timeout");
    const char *secret = lss_config_str (cfg, "api.jwt_secret");
    if (secret && *secret) {
        c->jwt_secret = strdup (secret);
        c->jwt_secret_len = strlen (secret);
    }
    c->origins = strdup (lss_config_str (cfg, "api.origins"));
    c->listen = lss_config_str (cfg, "api.listen");
    const char *dsn = lss_config_str (cfg, "api.db_dsn");
    c->db_dsn = dsn && *dsn ? dsn : lss_config_str (cfg, "store.dsn");
    c->redis_url = lss_config_str (cfg, "redis.url");
    c->executor_endpoint = lss_config_str (cfg, "api.executor_endpoint");
    c->warmpool_endpoint = lss_config_str (cfg, "api.warmpool_endpoint");
    c->watcher_endpoint = lss_config_str (cfg, "api.watcher_endpoint");
    c->admin_key_file = lss_config_str (cfg, "api.admin_key_file");
    lss_bus_opts_from_config (cfg, &c->bus_opts);
}

/*  The admin endpoint's /readyz: what the public /ready says. */
static bool s_ready (void *arg, char *reason, size_t reason_size)
{
    api_ctx_t *c = arg;
    const char *down = !atomic_load (&c->db_ok)         ? "postgres"
                       : !atomic_load (&c->redis_ok)    ? "redis"
                       : !atomic_load (&c->store_ok)    ? "store"
                       : !atomic_load (&c->executor_ok) ? "executor"
                                                        : NULL;
    if (down)
        snprintf (reason, reason_size, "%s not reachable", down);
    return down == NULL;
}

int main (int argc, char **argv)
{
    lss_malloc_for_streaming ();
    lss_service_t *svc = lss_service_new ("api", argc, argv);
    if (!svc)
        return lss_service_exit_code ();
    int rc = 1;
    api_ctx_t *ctx = calloc (1, sizeof *ctx);
    api_server_t *server = NULL;
    api_bridge_t *bridge = NULL;
    api_events_t *events = NULL;
    api_pool_t *pool = NULL;
    if (!ctx)
        goto done;
    s_ctx_from_config (ctx, lss_service_config (svc));
    ctx->jobs = api_mailbox_new ((size_t)ctx->queue_max, NULL, NULL);
    ctx->cache = api_cache_new (API_CACHE_MAX_DEFAULT);
    ctx->keycache = api_keycache_new ();
    ctx->rlease = api_rlease_new ();
    if (!ctx->jobs || !ctx->cache || !ctx->keycache || !ctx->rlease || !ctx->origins)
        goto done;
    if (api_keycache_sync_start (ctx->keycache, ctx->redis_url, ctx->redis_timeout_ms) != 0)
        lss_log_warn ("key cache stays off (every request looks its key up)", NULL);
    if (api_pool_bootstrap (ctx) != 0)
        goto done;
    server = api_server_new (ctx);
    if (!server)
        goto done;
    bridge = api_bridge_new (ctx);
    events = bridge ? api_events_new (ctx) : NULL;
    pool = events ? api_pool_new (ctx) : NULL;
    if (!pool)
        goto done;
    lss_service_set_ready_fn (svc, s_ready, ctx);
    lss_log_info ("api ready", "{s:s, s:i, s:i}", "listen", ctx->listen, "port",
                  api_server_port (server), "workers", ctx->workers);
    api_server_run (server, svc);
    rc = 0;
done:
    lss_service_set_ready_fn (svc, NULL, NULL);
    api_pool_destroy (&pool); /* first: workers post to every other thread */
    api_events_destroy (&events);
    api_bridge_destroy (&bridge);
    api_server_destroy (&server);
    if (ctx) {
        api_mailbox_destroy (&ctx->jobs);
        api_mailbox_destroy (&ctx->bridge_inbox); /* closed by the bridge; freed last, as
                                                   * closing sessions still post to it */
        api_cache_destroy (&ctx->cache);
        api_keycache_destroy (&ctx->keycache);
        api_rlease_destroy (&ctx->rlease);
        free (ctx->jwt_secret);
        free (ctx->origins);
        free (ctx);
    }
    lss_service_destroy (&svc);
    return rc;
}
