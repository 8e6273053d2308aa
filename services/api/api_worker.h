/*  api_worker — a worker thread's resources and the request handlers that run on it.
 *
 *  Workers (api.workers threads, api_pool.c) take jobs from ctx->jobs: HTTP requests,
 *  WebSocket authorisations and admissions, audit rows. Each worker owns its own
 *  PostgreSQL connection (api_db), Redis connection (api_redis), object store handle and
 *  a DEALER to the warm-pool allocator, so workers never share a connection and a slow
 *  call stalls one worker only. Handlers may block on those (every call is bounded by
 *  its timeout) but never on the executor: executions and file operations are handed to
 *  the exec bridge, which answers the client itself.
 *
 *  Handler contract: api_resp_t *h (api_worker_t *w, api_req_t *req,
 *  const api_principal_t *who, const json_t *body) returns the response, or NULL when
 *  another thread (bridge, events) will answer req->to. req stays the caller's; a
 *  handler may move req->body out (lss_buf_t) when it hands the body on.
 */
#ifndef API_WORKER_H
#define API_WORKER_H

#include <czmq.h>

#include "api_ctx.h"
#include "api_db.h"
#include "api_http.h"
#include "api_msgs.h"
#include "api_redis.h"
#include "api_valid.h"
#include "lss_store.h"

#define API_WARM_ALLOC_TIMEOUT_MS 2000

typedef struct {
    api_ctx_t *ctx;
    int index;
    api_db_t *db;
    api_redis_t *redis;
    lss_store_t *store;
    zsock_t *warmpool; /* DEALER, connected lazily */
    uint64_t bus_seq;
    char src[64];
    int64_t last_rl_warn_ms;
} api_worker_t;

/*  Runs one HTTP request to its response (or NULL: answered elsewhere). */
api_resp_t *api_dispatch (api_worker_t *w, api_req_t *req);

/* ---------------------------------------------------------------- api_authn.c */
/*  Authenticates token into *who. Returns 0, or the HTTP status to answer (401, 503)
 *  with a client-safe message in msg. */
int api_authn (api_worker_t *w, const char *token, api_principal_t *who, char *msg,
               size_t msg_size);
/*  Counts the request against who's limit of klass. Returns 0 (allowed; to->rl set),
 *  or 429 (to->rl set: the caller answers with api_resp_rate_limited). A Redis failure
 *  lets the request through (logged, counted). */
int api_rate_limit (api_worker_t *w, const api_principal_t *who, const char *klass,
                    api_reply_to_t *to);
api_resp_t *api_resp_rate_limited (const api_reply_to_t *to);
/*  who's limit of klass per window: the key's own, else the configured one. */
int64_t api_rate_limit_of (const api_ctx_t *c, const api_principal_t *who, const char *klass);
/*  Forgets the cached lookup of an API key hash / JWT id (after revocation). */
void api_authn_forget_key (api_worker_t *w, const char *hash);
void api_authn_forget_jti (api_worker_t *w, const char *jti, int64_t exp_ms);

/*  The sandbox row of id if who may do action on it: 0 with *row, 404 (absent or not
 *  theirs: indistinguishable on purpose), 503 (database down). */
int api_sandbox_access (api_worker_t *w, const api_principal_t *who, const char *id,
                        const char *action, api_sandbox_row_t *row);
/*  Common start of the per-sandbox routes: access to req->match.id for action, and the
 *  object when obj is not NULL. Returns NULL with *row (and *obj) filled, or the error
 *  response (404, 503). */
api_resp_t *api_sandbox_load (api_worker_t *w, api_req_t *req, const api_principal_t *who,
                              const char *action, api_sandbox_row_t *row, json_t **obj);
/*  The Sandbox object (a new reference; cache, else the store): 0, 404 or 503. */
int api_sandbox_object (api_worker_t *w, const char *id, json_t **obj);

/* ---------------------------------------------------------------- handlers */
api_resp_t *api_h_sandbox_create (api_worker_t *w, api_req_t *req, const api_principal_t *who,
                                  const json_t *body);
api_resp_t *api_h_sandbox_list (api_worker_t *w, api_req_t *req, const api_principal_t *who,
                                const json_t *body);
api_resp_t *api_h_sandbox_get (api_worker_t *w, api_req_t *req, const api_principal_t *who,
                               const json_t *body);
api_resp_t *api_h_sandbox_delete (api_worker_t *w, api_req_t *req, const api_principal_t *who,
                                  const json_t *body);
api_resp_t *api_h_sandbox_status (api_worker_t *w, api_req_t *req, const api_principal_t *who,
                                  const json_t *body);
api_resp_t *api_h_executions (api_worker_t *w, api_req_t *req, const api_principal_t *who,
                              const json_t *body);
api_resp_t *api_h_execute (api_worker_t *w, api_req_t *req, const api_principal_t *who,
                           const json_t *body);
api_resp_t *api_h_packages (api_worker_t *w, api_req_t *req, const api_principal_t *who,
                            const json_t *body);
api_resp_t *api_h_files (api_worker_t *w, api_req_t *req, const api_principal_t *who,
                         const json_t *body);
api_resp_t *api_h_warmpools (api_worker_t *w, api_req_t *req, const api_principal_t *who,
                             const json_t *body);
api_resp_t *api_h_catalog (api_worker_t *w, api_req_t *req, const api_principal_t *who,
                           const json_t *body);
api_resp_t *api_h_users (api_worker_t *w, api_req_t *req, const api_principal_t *who,
                         const json_t *body);

/*  WebSocket jobs: authorise a stream connection; admit one execute frame. */
api_ws_auth_done_t *api_h_ws_auth (api_worker_t *w, const api_ws_auth_t *m);
void api_h_ws_admit (api_worker_t *w, api_ws_admit_t *m);

/*  Creates the admin user and writes its key to ctx->admin_key_file when no admin
 *  exists (start-up; lss up). Returns 0 (done or nothing to do) or -1. */
int api_bootstrap_admin (api_worker_t *w);

/*  Helpers shared by handlers. */
const char *api_store_error_message (int code);
/*  An HTTP status for a store code (404, 409, 400, 503, 500). */
int api_store_status (int code);
/*  Posts m to the bridge (taken). -1 (m destroyed) if the bridge is stopping. */
int api_to_bridge (api_worker_t *w, api_msg_t *m);

/* ---------------------------------------------------------------- api_h_exec.c */
/*  These three need no worker resources: the lws thread uses them too (api_fast). */
/*  The Sandbox object is Running and not being deleted. */
bool api_sandbox_running (const json_t *obj);
/*  The execution limits of the configuration. */
api_exec_limits_t api_exec_limits (const api_ctx_t *c);
/*  Hands a REST execution of spec (taken) in row's sandbox to the bridge, which answers
 *  to. NULL when handed over, else the error response to send. */
api_resp_t *api_exec_submit (api_ctx_t *c, const api_reply_to_t *to,
                             const api_sandbox_row_t *row, api_exec_spec_t *spec);
/*  Publishes an audit event on the api's PUB through the events thread (details taken,
 *  may be NULL). Never blocks; dropped (counted) when the events thread is saturated. */
void api_publish (api_worker_t *w, const char *reason, const char *name, const char *user_id,
                  const char *trace, json_t *details);

#endif
