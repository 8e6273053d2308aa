/*  api_redis — the api's use of Redis: rate-limit counters and short-lived caches.
 *
 *  One connection per thread (hiredis, synchronous with connect and command timeouts,
 *  so a dead Redis costs a caller at most timeout_ms, never a hang). A broken connection
 *  is re-established on the next call (at most one attempt per call). URLs:
 *  redis://[[user]:password@]host[:port][/db] and unix:///path/to.sock[?db=N].
 *
 *  Rate limits are fixed windows: the counter "lss:rl:<class>:<principal>:<window>"
 *  is incremented and given its expiry atomically by one Lua script (EVALSHA, falling
 *  back to EVAL after NOSCRIPT), so concurrent api replicas share one count.
 */
#ifndef API_REDIS_H
#define API_REDIS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define API_REDIS_VALUE_MAX (64 * 1024) /* cache values larger than this are refused */
#define API_REDIS_KEY_MAX   512

typedef struct _api_redis_t api_redis_t;

/*  A parsed Redis URL (api_redis_url_parse). user and password are "" when absent;
 *  they are percent-decoded. */
#define API_REDIS_HOST_SIZE 256
#define API_REDIS_PATH_SIZE 108 /* sun_path */
#define API_REDIS_CRED_SIZE 256
typedef struct {
    bool unix_socket;
    char host[API_REDIS_HOST_SIZE]; /* without IPv6 brackets */
    int port;                       /* default 6379 */
    char path[API_REDIS_PATH_SIZE];
    char user[API_REDIS_CRED_SIZE];
    char password[API_REDIS_CRED_SIZE];
    int db; /* 0.. API_REDIS_DB_MAX */
} api_redis_url_t;
#define API_REDIS_DB_MAX 65535

/*  Parses url (borrowed) into *out without connecting. Returns 0, or -1 with a message
 *  in err (which never quotes the password). rediss:// (TLS) is refused: hiredis 0.14
 *  has no TLS. */
int api_redis_url_parse (const char *url, api_redis_url_t *out, char *err, size_t err_size);

/*  Parses url (borrowed) and connects (timeout_ms for connect and every command).
 *  Returns NULL with a message in err on a malformed URL. A Redis that is down is not
 *  an error here: the handle is returned and calls fail (-1) until it comes back. */
api_redis_t *api_redis_new (const char *url, int timeout_ms, char *err, size_t err_size);
void api_redis_destroy (api_redis_t **self_p);

/*  PING. Returns 0 if Redis answered PONG, else -1. */
int api_redis_ping (api_redis_t *self);

typedef struct {
    bool allowed;
    int64_t limit;
    int64_t remaining;     /* after this request, never negative */
    int64_t reset_s;       /* Unix seconds when the window ends */
    int64_t retry_after_s; /* when refused: seconds until the window ends, >= 1 */
} api_rl_result_t;

/*  Counts take (1..API_REDIS_TAKE_MAX) requests of klass ([a-z_]+) by principal at once
 *  in the window of now_s; *count is the window's count after them (this caller owns
 *  the numbers *count - take + 1 .. *count). Returns 0, or -1 if Redis failed. */
#define API_REDIS_TAKE_MAX 1024
int api_redis_rate_take (api_redis_t *self, const char *klass, const char *principal,
                         int64_t take, int64_t window_s, int64_t now_s, int64_t *count);
/*  The answer for the request numbered count in its window (allowed = count <= limit). */
void api_redis_rl_result (int64_t count, int64_t limit, int64_t window_s, int64_t now_s,
                          api_rl_result_t *out);

/*  A plain integer counter "lss:..." (absent = 0): GET and INCR. 0 or -1. */
int api_redis_counter_get (api_redis_t *self, const char *key, int64_t *value);
int api_redis_counter_incr (api_redis_t *self, const char *key);

/*  Counts one request of klass ([a-z_]+) by principal (printable, no spaces; e.g. a key
 *  id or user id) against limit per window_s at now_s. allowed = count <= limit.
 *  Returns 0 with *out filled, or -1 if Redis failed (out untouched). */
int api_redis_rate_limit (api_redis_t *self, const char *klass, const char *principal,
                          int64_t limit, int64_t window_s, int64_t now_s, api_rl_result_t *out);

/*  Cache: GET / SET with PX ttl / DEL of "lss:c:<key>". get returns 1 with *value
 *  (caller frees) on a hit, 0 on a miss, -1 on failure. set/del return 0 or -1.
 *  key: 1..API_REDIS_KEY_MAX - 7 bytes without control characters; value: at most
 *  API_REDIS_VALUE_MAX bytes (a stored value that is larger or holds a NUL byte is a
 *  failure for get); ttl_ms: 1 ms .. 30 days. */
int api_redis_cache_get (api_redis_t *self, const char *key, char **value);
int api_redis_cache_set (api_redis_t *self, const char *key, const char *value, int64_t ttl_ms);
int api_redis_cache_del (api_redis_t *self, const char *key);

#endif
