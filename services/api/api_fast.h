/*  api_fast — reads answered on the libwebsockets thread, without a worker.
 *
 *  GET /api/v1/sandboxes/{id} is answered at once when everything it needs is already
 *  in this process: the API key in the key cache (api_keycache), the sandbox's owner row
 *  and object in the sandbox cache (api_cache), and a rate-limit number in a block
 *  (api_rlease). It is answered exactly as the worker would (same view, same headers);
 *  anything else — a miss, a JWT, a sandbox shared by permission, a deleted one — goes
 *  to a worker as before. Nothing here blocks: no PostgreSQL, Redis or store call.
 *  The body rendered for a cached object is kept and reused until the object changes.
 *  POST .../execute is started here the same way (api_fast_execute), so a REST execution
 *  goes lws thread → bridge → executor without waking a worker.
 */
#ifndef API_FAST_H
#define API_FAST_H

#include "api_ctx.h"
#include "api_http.h"

#define API_FAST_BODY_MAX 65536 /* larger execute bodies are parsed by a worker */

/*  The answer to req, or NULL when a worker must answer it. req is not modified. */
api_resp_t *api_fast_answer (api_ctx_t *ctx, const api_req_t *req);
/*  POST /api/v1/sandboxes/{id}/execute started from the lws thread: with the same
 *  in-memory conditions as GET, a Running sandbox in the cache and a valid body of at
 *  most API_FAST_BODY_MAX bytes, the execution goes straight to the exec bridge, which
 *  answers req's ticket. Returns 1 when done here (req destroyed; *resp, when set, is
 *  the answer to send now: 429, or 503 when the bridge is stopping), 0 when a worker
 *  must take req (untouched; nothing counted against the rate limit). */
int api_fast_execute (api_ctx_t *ctx, api_req_t *req, api_resp_t **resp);
/*  Frees what the lws thread kept (rendered views); called when it stops. */
void api_fast_cleanup (void);

#endif
