/*  api_rlease — rate-limit counts taken from Redis in blocks, spent in this process.
 *
 *  Counting every request in Redis costs a round trip per request. Instead a caller that
 *  finds no block takes one: api_redis_rate_take counts `take` requests at once and this
 *  process then owns the numbers count - take + 1 .. count of the window; each request
 *  spends the next number, and its answer is exactly what a per-request count would have
 *  given (allowed = number <= limit, remaining = limit - number). With one api replica
 *  the headers are therefore exact. With several, numbers a replica holds but has not
 *  spent look used to the others: near the end of a window a client can be refused up
 *  to (replicas - 1) * block requests early, never allowed more than the limit.
 *
 *  So that busy keys rarely wait for Redis, a block that is half spent asks for the
 *  next one ahead of time: api_rlease_spend sets *refill, and the caller posts
 *  api_rlease_refill_post's job to a worker, which takes the block from Redis
 *  (api_rlease_refill_run) and keeps it in reserve; the current block's numbers are
 *  spent first, so numbers are still spent in increasing order.
 *
 *  The block size is limit / API_RLEASE_DIVISOR, at least 1 and at most API_RLEASE_MAX:
 *  small limits (create_sandbox's 60, a key's own 3) are counted one by one in Redis.
 *  Blocks belong to one window and die with it. Thread-safe (one mutex); the table
 *  holds at most API_RLEASE_ENTRIES entries (past it, blocks of ended windows are
 *  dropped, then the whole table — it only costs Redis round trips).
 */
#ifndef API_RLEASE_H
#define API_RLEASE_H

#include <stdbool.h>
#include <stdint.h>

#include "api_mailbox.h"
#include "api_msgs.h"
#include "api_redis.h"

#define API_RLEASE_DIVISOR 200
#define API_RLEASE_MAX     1024
#define API_RLEASE_ENTRIES 65536

typedef struct _api_rlease_t api_rlease_t;

api_rlease_t *api_rlease_new (void);
void api_rlease_destroy (api_rlease_t **self_p);

/*  How many numbers to take from Redis at once for limit. */
int64_t api_rlease_block (int64_t limit);

/*  Spends the next number of klass/principal's block for the window of now_s. Returns
 *  1 with *out filled, or 0 when there is no block (the caller takes one from Redis and
 *  calls api_rlease_add). *refill is set when the caller should post a refill job
 *  (api_rlease_refill_post); it is set for one caller at a time. */
int api_rlease_spend (api_rlease_t *self, const char *klass, const char *principal,
                      int64_t limit, int64_t window_s, int64_t now_s, api_rl_result_t *out,
                      bool *refill);

/*  Records a block (numbers count - take + 1 .. count of the window of now_s) and spends
 *  its first number into *out. */
void api_rlease_add (api_rlease_t *self, const char *klass, const char *principal,
                     int64_t limit, int64_t window_s, int64_t now_s, int64_t take,
                     int64_t count, api_rl_result_t *out);

/*  Posts a job (API_MSG_RL_REFILL) taking the next block of klass/principal to jobs.
 *  If it cannot be posted the request for a refill is withdrawn (a later spend asks
 *  again). */
void api_rlease_refill_post (api_rlease_t *self, api_mailbox_t *jobs, const char *klass,
                             const char *principal, int64_t limit, int64_t window_s,
                             int64_t now_s);
/*  A worker's handling of that job: takes the block from Redis and keeps it in
 *  reserve (nothing on failure: the next spend without a block goes to Redis). */
void api_rlease_refill_run (api_rlease_t *self, api_redis_t *redis, api_msg_t *job);

#endif
