/*  api_redis — rate-limit counters and caches in Redis over synchronous hiredis.
 *
 *  Design note: one redisContext per handle, made with connect and command timeouts
 *  (SO_RCVTIMEO/SO_SNDTIMEO through redisSetTimeout), so every call is bounded. A call
 *  that meets an I/O or protocol error, or a reply of a type the command cannot produce,
 *  drops the context (the byte stream may be out of step); the next call connects again,
 *  once, and fails at once if that does not work. The server is not trusted: the reply
 *  object functions are wrapped so that arrays longer than S_REPLY_ELEMENTS_MAX and
 *  strings longer than S_REPLY_STRING_MAX are refused while parsing (hiredis reports them
 *  as an error instead of allocating), bytes left in the reader after a reply mean the
 *  peer answered twice (dropped), and every reply's type is checked before use. The
 *  rate-limit script runs by EVALSHA (its SHA-1 computed here) and falls back to EVAL
 *  after NOSCRIPT, which also caches it in the server.
 */
#include "api_redis.h"
#include "lss_log.h"
#include "lss_util.h"

#include <hiredis/hiredis.h>
#include <inttypes.h>
#include <limits.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#define S_DEFAULT_PORT       6379
#define S_TIMEOUT_MS_MAX     600000
#define S_REPLY_ELEMENTS_MAX 16
#define S_REPLY_STRING_MAX   (API_REDIS_VALUE_MAX + 1024)
#define S_CLASS_MAX          32
#define S_PRINCIPAL_MAX      128
#define S_WINDOW_S_MAX       (86400 * 366)
#define S_RL_SLACK_MS        5000 /* counters outlive their window by this much */
#define S_TTL_MS_MAX         (INT64_C (30) * 86400 * 1000)
#define S_CACHE_PREFIX       "lss:c:"
#define S_RL_PREFIX          "lss:rl:"
#define S_URL_MAX            2048
#define S_SHA_SIZE           41

/*  KEYS[1] counter, ARGV[1] expiry in ms, ARGV[2] how many to count. Returns {count,
 *  pttl}. A counter found without an expiry (written by something else, or an expiry
 *  lost) is given one. */
static const char s_rl_script[] =
    "local n = redis.call('INCRBY', KEYS[1], ARGV[2])\n"
    "if n == tonumber(ARGV[2]) then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end\n"
    "local t = redis.call('PTTL', KEYS[1])\n"
    "if t < 0 then redis.call('PEXPIRE', KEYS[1], ARGV[1]); t = tonumber(ARGV[1]) end\n"
    "return {n, t}\n";

struct _api_redis_t {
    api_redis_url_t url;
    int timeout_ms;
    redisContext *ctx;
    bool was_up; /* for logging state changes only */
    char target[API_REDIS_HOST_SIZE + 16];
    char sha[S_SHA_SIZE];
};

/* ------------------------------------------------------------------ bounded replies */

static redisReplyObjectFunctions s_default_fn, s_bounded_fn;
static pthread_once_t s_fn_once = PTHREAD_ONCE_INIT;

static void *s_create_string (const redisReadTask *task, char *str, size_t len)
{
    return len > S_REPLY_STRING_MAX ? NULL : s_default_fn.createString (task, str, len);
}

static void *s_create_array (const redisReadTask *task, int elements)
{
    if (elements < 0 || elements > S_REPLY_ELEMENTS_MAX)
        return NULL;
    return s_default_fn.createArray (task, elements);
}

static void s_fn_init (void)
{
    redisReader *r = redisReaderCreate ();
    if (!r)
        return;
    s_default_fn = *r->fn;
    redisReaderFree (r);
    s_bounded_fn = s_default_fn;
    s_bounded_fn.createString = s_create_string;
    s_bounded_fn.createArray = s_create_array;
}

/* ------------------------------------------------------------------ URL */

static int s_hex (char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/*  Percent-decodes in[0..len) into out (NUL-ended). Refuses bad escapes, %00 and
 *  results that do not fit. */
static int s_pct_decode (const char *in, size_t len, char *out, size_t out_size)
{
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        int c = (unsigned char)in[i];
        if (c == '%') {
            if (i + 2 >= len)
                return -1;
            int hi = s_hex (in[i + 1]), lo = s_hex (in[i + 2]);
            if (hi < 0 || lo < 0 || (hi == 0 && lo == 0))
                return -1;
            c = hi << 4 | lo;
            i += 2;
        } else if (c <= 0x20 || c == 0x7f) {
            return -1;
        }
        if (o + 1 >= out_size)
            return -1;
        out[o++] = (char)c;
    }
    out[o] = '\0';
    return 0;
}

static int s_parse_db (const char *text, size_t len, int *db)
{
    char buf[16];
    int64_t v;
    if (len == 0 || len >= sizeof buf)
        return -1;
    memcpy (buf, text, len);
    buf[len] = '\0';
    for (size_t i = 0; i < len; i++)
        if (buf[i] < '0' || buf[i] > '9')
            return -1;
    if (lss_parse_int64 (buf, 0, API_REDIS_DB_MAX, &v) != 0)
        return -1;
    *db = (int)v;
    return 0;
}

static bool s_host_char (char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           c == '.' || c == '-' || c == '_';
}

static int s_parse_unix (const char *rest, api_redis_url_t *out, char *err, size_t err_size)
{
    const char *q = strchr (rest, '?');
    size_t plen = q ? (size_t)(q - rest) : strlen (rest);
    if (plen < 2 || rest[0] != '/') {
        lss_errf (err, err_size, "redis url: unix:// needs an absolute socket path");
        return -1;
    }
    if (s_pct_decode (rest, plen, out->path, sizeof out->path) != 0) {
        lss_errf (err, err_size, "redis url: bad or too long socket path");
        return -1;
    }
    if (q && (strncmp (q + 1, "db=", 3) != 0 || s_parse_db (q + 4, strlen (q + 4), &out->db))) {
        lss_errf (err, err_size, "redis url: the only query is ?db=N (0..%d)",
                  API_REDIS_DB_MAX);
        return -1;
    }
    out->unix_socket = true;
    return 0;
}

static int s_parse_tcp (const char *rest, api_redis_url_t *out, char *err, size_t err_size)
{
    size_t alen = strcspn (rest, "/?#");
    if (rest[alen] == '?' || rest[alen] == '#') {
        lss_errf (err, err_size, "redis url: no query or fragment allowed");
        return -1;
    }
    const char *auth = rest, *at = NULL;
    for (const char *p = auth; p < auth + alen; p++)
        if (*p == '@')
            at = p;
    const char *hp = auth;
    if (at) {
        const char *colon = memchr (auth, ':', (size_t)(at - auth));
        if (!colon) {
            lss_errf (err, err_size, "redis url: credentials must be [user]:password@");
            return -1;
        }
        if (s_pct_decode (auth, (size_t)(colon - auth), out->user, sizeof out->user) != 0 ||
            s_pct_decode (colon + 1, (size_t)(at - colon - 1), out->password,
                          sizeof out->password) != 0 ||
            !out->password[0]) {
            lss_errf (err, err_size, "redis url: bad user or password");
            return -1;
        }
        hp = at + 1;
    }
    const char *end = auth + alen, *host = hp, *host_end, *port = NULL;
    if (*hp == '[') {
        host = hp + 1;
        host_end = memchr (host, ']', (size_t)(end - host));
        if (!host_end) {
            lss_errf (err, err_size, "redis url: unclosed [");
            return -1;
        }
        for (const char *p = host; p < host_end; p++)
            if (!(s_hex (*p) >= 0 || *p == ':' || *p == '.')) {
                lss_errf (err, err_size, "redis url: bad IPv6 address");
                return -1;
            }
        if (host_end + 1 < end) {
            if (host_end[1] != ':') {
                lss_errf (err, err_size, "redis url: junk after ]");
                return -1;
            }
            port = host_end + 2;
        }
    } else {
        host_end = memchr (hp, ':', (size_t)(end - hp));
        if (host_end)
            port = host_end + 1;
        else
            host_end = end;
        for (const char *p = host; p < host_end; p++)
            if (!s_host_char (*p)) {
                lss_errf (err, err_size, "redis url: bad host name");
                return -1;
            }
    }
    size_t hlen = (size_t)(host_end - host);
    if (hlen == 0 || hlen >= sizeof out->host) {
        lss_errf (err, err_size, "redis url: missing or too long host");
        return -1;
    }
    memcpy (out->host, host, hlen);
    out->host[hlen] = '\0';
    out->port = S_DEFAULT_PORT;
    if (port) {
        char buf[8];
        int64_t v;
        size_t n = (size_t)(end - port);
        bool digits = n > 0 && n < sizeof buf;
        for (size_t i = 0; digits && i < n; i++)
            digits = port[i] >= '0' && port[i] <= '9';
        if (digits) {
            memcpy (buf, port, n);
            buf[n] = '\0';
        }
        if (!digits || lss_parse_int64 (buf, 1, 65535, &v) != 0) {
            lss_errf (err, err_size, "redis url: bad port");
            return -1;
        }
        out->port = (int)v;
    }
    const char *path = end;
    if (*path == '/' && path[1] && s_parse_db (path + 1, strlen (path + 1), &out->db) != 0) {
        lss_errf (err, err_size, "redis url: database must be /N (0..%d)", API_REDIS_DB_MAX);
        return -1;
    }
    return 0;
}

int api_redis_url_parse (const char *url, api_redis_url_t *out, char *err, size_t err_size)
{
    memset (out, 0, sizeof *out);
    if (!url || strnlen (url, S_URL_MAX) >= S_URL_MAX) {
        lss_errf (err, err_size, "redis url: missing or too long");
        return -1;
    }
    int rc = -1;
    if (strncmp (url, "redis://", 8) == 0)
        rc = s_parse_tcp (url + 8, out, err, err_size);
    else if (strncmp (url, "unix://", 7) == 0)
        rc = s_parse_unix (url + 7, out, err, err_size);
    else if (strncmp (url, "rediss://", 9) == 0)
        lss_errf (err, err_size, "redis url: TLS (rediss://) is not supported");
    else
        lss_errf (err, err_size, "redis url: scheme must be redis:// or unix://");
    if (rc != 0) {
        memset (out, 0, sizeof *out);
        return -1;
    }
    return 0;
}

/* ------------------------------------------------------------------ connection */

static void s_drop (api_redis_t *self, const char *why)
{
    if (self->was_up)
        lss_log_warn ("redis connection lost", "{s:s, s:s}", "redis", self->target, "error",
                      why ? why : "");
    self->was_up = false;
    redisFree (self->ctx);
    self->ctx = NULL;
}

static redisReply *s_raw (redisContext *c, int argc, const char **argv, const size_t *lens)
{
    return redisCommandArgv (c, argc, argv, lens);
}

static bool s_status_is (const redisReply *r, const char *text)
{
    return r && r->type == REDIS_REPLY_STATUS && r->str && strcmp (r->str, text) == 0;
}

/*  One connect attempt with AUTH and SELECT. Returns 0 or -1. */
static int s_connect (api_redis_t *self)
{
    pthread_once (&s_fn_once, s_fn_init);
    if (!s_bounded_fn.createString)
        return -1;
    struct timeval tv = {self->timeout_ms / 1000, (self->timeout_ms % 1000) * 1000};
    redisContext *c = self->url.unix_socket
                          ? redisConnectUnixWithTimeout (self->url.path, tv)
                          : redisConnectWithTimeout (self->url.host, self->url.port, tv);
    const char *why = "out of memory";
    if (!c || c->err) {
        why = c ? c->errstr : why;
        goto fail;
    }
    if (redisSetTimeout (c, tv) != REDIS_OK) {
        why = "cannot set timeout";
        goto fail;
    }
    c->reader->fn = &s_bounded_fn;
    if (self->url.password[0]) {
        /* AUTH password, or AUTH user password (Redis 6 ACL) */
        const char *argv[] = {"AUTH", self->url.user, self->url.password};
        bool with_user = self->url.user[0] != '\0';
        if (!with_user)
            argv[1] = self->url.password;
        redisReply *r = s_raw (c, with_user ? 3 : 2, argv, NULL);
        bool ok = s_status_is (r, "OK");
        why = r && r->type == REDIS_REPLY_ERROR ? "AUTH refused" : "AUTH failed";
        freeReplyObject (r);
        if (!ok)
            goto fail;
    }
    if (self->url.db) {
        char db[16];
        lss_fmt (db, sizeof db, "%d", self->url.db);
        const char *argv[] = {"SELECT", db};
        redisReply *r = s_raw (c, 2, argv, NULL);
        bool ok = s_status_is (r, "OK");
        freeReplyObject (r);
        if (!ok) {
            why = "SELECT failed";
            goto fail;
        }
    }
    self->ctx = c;
    if (!self->was_up)
        lss_log_info ("redis connected", "{s:s, s:i}", "redis", self->target, "db",
                      self->url.db);
    self->was_up = true;
    return 0;
fail:
    if (self->was_up)
        lss_log_warn ("redis connect failed", "{s:s, s:s}", "redis", self->target, "error",
                      why);
    self->was_up = false;
    redisFree (c);
    return -1;
}

/*  Sends one command (connecting first if needed). Returns the reply (caller frees;
 *  errors from the server included), or NULL after an I/O or protocol failure (the
 *  connection is then dropped). */
static redisReply *s_command (api_redis_t *self, int argc, const char **argv,
                              const size_t *lens)
{
    if (!self->ctx && s_connect (self) != 0)
        return NULL;
    redisReply *r = s_raw (self->ctx, argc, argv, lens);
    if (!r) {
        s_drop (self, self->ctx->errstr);
        return NULL;
    }
    redisReader *rd = self->ctx->reader;
    if (rd->buf && rd->pos < rd->len) {
        freeReplyObject (r);
        s_drop (self, "unsolicited bytes after a reply");
        return NULL;
    }
    return r;
}

/*  A reply of a type the command cannot produce: the peer is not behaving like Redis. */
static int s_bad_reply (api_redis_t *self, redisReply *r)
{
    bool server_error = r && r->type == REDIS_REPLY_ERROR;
    freeReplyObject (r);
    if (!server_error)
        s_drop (self, "unexpected reply type");
    return -1;
}

static int s_sha1_hex (const char *text, char out[S_SHA_SIZE])
{
    static const char hex[] = "0123456789abcdef";
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    if (!EVP_Digest (text, strlen (text), md, &n, EVP_sha1 (), NULL) || n != 20)
        return -1;
    for (unsigned int i = 0; i < n; i++) {
        out[2 * i] = hex[md[i] >> 4];
        out[2 * i + 1] = hex[md[i] & 15];
    }
    out[40] = '\0';
    return 0;
}

api_redis_t *api_redis_new (const char *url, int timeout_ms, char *err, size_t err_size)
{
    if (timeout_ms < 1 || timeout_ms > S_TIMEOUT_MS_MAX) {
        lss_errf (err, err_size, "redis: timeout_ms must be 1..%d", S_TIMEOUT_MS_MAX);
        return NULL;
    }
    api_redis_t *self = calloc (1, sizeof *self);
    if (!self) {
        lss_errf (err, err_size, "redis: out of memory");
        return NULL;
    }
    if (api_redis_url_parse (url, &self->url, err, err_size) != 0 ||
        s_sha1_hex (s_rl_script, self->sha) != 0) {
        free (self);
        return NULL;
    }
    self->timeout_ms = timeout_ms;
    if (self->url.unix_socket)
        lss_fmt (self->target, sizeof self->target, "unix:%s", self->url.path);
    else
        lss_fmt (self->target, sizeof self->target, "%s:%d", self->url.host, self->url.port);
    self->was_up = true; /* so that a first failure is logged, once */
    s_connect (self);    /* a Redis that is down is not an error here */
    return self;
}

void api_redis_destroy (api_redis_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    api_redis_t *self = *self_p;
    redisFree (self->ctx);
    OPENSSL_cleanse (self->url.password, sizeof self->url.password);
    free (self);
    *self_p = NULL;
}

int api_redis_ping (api_redis_t *self)
{
    const char *argv[] = {"PING"};
    redisReply *r = s_command (self, 1, argv, NULL);
    if (!r)
        return -1;
    if (!s_status_is (r, "PONG"))
        return s_bad_reply (self, r);
    freeReplyObject (r);
    return 0;
}

/* ------------------------------------------------------------------ rate limits */

static bool s_class_ok (const char *klass)
{
    size_t n = klass ? strnlen (klass, S_CLASS_MAX + 1) : 0;
    if (n == 0 || n > S_CLASS_MAX)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!((klass[i] >= 'a' && klass[i] <= 'z') || klass[i] == '_'))
            return false;
    return true;
}

static bool s_principal_ok (const char *p)
{
    size_t n = p ? strnlen (p, S_PRINCIPAL_MAX + 1) : 0;
    if (n == 0 || n > S_PRINCIPAL_MAX)
        return false;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)p[i] <= 0x20 || (unsigned char)p[i] >= 0x7f)
            return false;
    return true;
}

int api_redis_rate_take (api_redis_t *self, const char *klass, const char *principal,
                         int64_t take, int64_t window_s, int64_t now_s, int64_t *count)
{
    if (!s_class_ok (klass) || !s_principal_ok (principal) || take < 1 ||
        take > API_REDIS_TAKE_MAX || window_s < 1 || window_s > S_WINDOW_S_MAX || now_s < 0 ||
        now_s > INT64_MAX / 2)
        return -1;
    int64_t start = now_s - now_s % window_s;
    int64_t reset = start + window_s;
    char key[API_REDIS_KEY_MAX], ms[24], n[24];
    if (lss_fmt (key, sizeof key, S_RL_PREFIX "%s:%s:%" PRId64, klass, principal, start) != 0)
        return -1;
    lss_fmt (ms, sizeof ms, "%" PRId64, (reset - now_s) * 1000 + S_RL_SLACK_MS);
    lss_fmt (n, sizeof n, "%" PRId64, take);
    const char *argv[] = {"EVALSHA", self->sha, "1", key, ms, n};
    redisReply *r = s_command (self, 6, argv, NULL);
    if (r && r->type == REDIS_REPLY_ERROR && r->str && strncmp (r->str, "NOSCRIPT", 8) == 0) {
        freeReplyObject (r);
        argv[0] = "EVAL";
        argv[1] = s_rl_script;
        r = s_command (self, 6, argv, NULL);
    }
    if (!r)
        return -1;
    if (r->type != REDIS_REPLY_ARRAY || r->elements != 2 ||
        r->element[0]->type != REDIS_REPLY_INTEGER ||
        r->element[1]->type != REDIS_REPLY_INTEGER || r->element[0]->integer < take)
        return s_bad_reply (self, r);
    *count = r->element[0]->integer;
    freeReplyObject (r);
    return 0;
}

void api_redis_rl_result (int64_t count, int64_t limit, int64_t window_s, int64_t now_s,
                          api_rl_result_t *out)
{
    int64_t reset = now_s - now_s % window_s + window_s;
    out->limit = limit;
    out->allowed = count <= limit;
    out->remaining = count < limit ? limit - count : 0;
    out->reset_s = reset;
    out->retry_after_s = out->allowed ? 0 : reset - now_s;
}

int api_redis_rate_limit (api_redis_t *self, const char *klass, const char *principal,
                          int64_t limit, int64_t window_s, int64_t now_s, api_rl_result_t *out)
{
    int64_t count;
    if (limit < 1 || api_redis_rate_take (self, klass, principal, 1, window_s, now_s, &count))
        return -1;
    api_redis_rl_result (count, limit, window_s, now_s, out);
    return 0;
}

int api_redis_counter_get (api_redis_t *self, const char *key, int64_t *value)
{
    const char *argv[] = {"GET", key};
    if (!key || strncmp (key, "lss:", 4) != 0)
        return -1;
    redisReply *r = s_command (self, 2, argv, NULL);
    if (!r)
        return -1;
    if (r->type == REDIS_REPLY_NIL) {
        freeReplyObject (r);
        *value = 0;
        return 0;
    }
    int64_t v;
    if (r->type != REDIS_REPLY_STRING || !r->str ||
        lss_parse_int64 (r->str, INT64_MIN, INT64_MAX, &v) != 0)
        return s_bad_reply (self, r);
    freeReplyObject (r);
    *value = v;
    return 0;
}

int api_redis_counter_incr (api_redis_t *self, const char *key)
{
    const char *argv[] = {"INCR", key};
    if (!key || strncmp (key, "lss:", 4) != 0)
        return -1;
    redisReply *r = s_command (self, 2, argv, NULL);
    if (!r)
        return -1;
    if (r->type != REDIS_REPLY_INTEGER)
        return s_bad_reply (self, r);
    freeReplyObject (r);
    return 0;
}

/* ------------------------------------------------------------------ cache */

static int s_cache_key (const char *key, char *out, size_t size)
{
    size_t n = key ? strnlen (key, API_REDIS_KEY_MAX) : 0;
    if (n == 0 || n + strlen (S_CACHE_PREFIX) >= size)
        return -1;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)key[i] < 0x20 || key[i] == 0x7f)
            return -1;
    return lss_fmt (out, size, S_CACHE_PREFIX "%s", key);
}

int api_redis_cache_get (api_redis_t *self, const char *key, char **value)
{
    char k[API_REDIS_KEY_MAX];
    *value = NULL;
    if (s_cache_key (key, k, sizeof k) != 0)
        return -1;
    const char *argv[] = {"GET", k};
    redisReply *r = s_command (self, 2, argv, NULL);
    if (!r)
        return -1;
    if (r->type == REDIS_REPLY_NIL) {
        freeReplyObject (r);
        return 0;
    }
    if (r->type != REDIS_REPLY_STRING)
        return s_bad_reply (self, r);
    int rc = -1;
    if (r->len <= API_REDIS_VALUE_MAX && !memchr (r->str, '\0', r->len)) {
        *value = strndup (r->str, r->len);
        rc = *value ? 1 : -1;
    }
    freeReplyObject (r);
    return rc;
}

int api_redis_cache_set (api_redis_t *self, const char *key, const char *value, int64_t ttl_ms)
{
    char k[API_REDIS_KEY_MAX], ttl[24];
    if (s_cache_key (key, k, sizeof k) != 0 || !value || ttl_ms < 1 || ttl_ms > S_TTL_MS_MAX)
        return -1;
    size_t vlen = strnlen (value, API_REDIS_VALUE_MAX + 1);
    if (vlen > API_REDIS_VALUE_MAX)
        return -1;
    lss_fmt (ttl, sizeof ttl, "%" PRId64, ttl_ms);
    const char *argv[] = {"SET", k, value, "PX", ttl};
    const size_t lens[] = {3, strlen (k), vlen, 2, strlen (ttl)};
    redisReply *r = s_command (self, 5, argv, lens);
    if (!r)
        return -1;
    if (!s_status_is (r, "OK"))
        return s_bad_reply (self, r);
    freeReplyObject (r);
    return 0;
}

int api_redis_cache_del (api_redis_t *self, const char *key)
{
    char k[API_REDIS_KEY_MAX];
    if (s_cache_key (key, k, sizeof k) != 0)
        return -1;
    const char *argv[] = {"DEL", k};
    redisReply *r = s_command (self, 2, argv, NULL);
    if (!r)
        return -1;
    if (r->type != REDIS_REPLY_INTEGER)
        return s_bad_reply (self, r);
    freeReplyObject (r);
    return 0;
}
