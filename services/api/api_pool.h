/*  api_pool — the api's worker threads (api.workers of them) serving ctx->jobs, and the
 *  start-up work done before serving (migrations, the bootstrap admin).
 */
#ifndef API_POOL_H
#define API_POOL_H

#include "api_ctx.h"

typedef struct _api_pool_t api_pool_t;

/*  Starts ctx->workers workers on ctx->jobs (which must exist). NULL on failure. */
api_pool_t *api_pool_new (api_ctx_t *ctx);
/*  Closes ctx->jobs, lets the workers finish their current job, joins them. */
void api_pool_destroy (api_pool_t **self_p);

/*  Applies the api's schema migrations and creates the bootstrap admin when asked
 *  (api.admin_key_file). Synchronous, before serving. 0 or -1 (logged). */
int api_pool_bootstrap (api_ctx_t *ctx);

#endif
