/*  lss_k8s_client — HTTP requests to the Kubernetes API server. See lss_k8s_client.h.
 *
 *  Design note: the synchronous requests reuse one easy handle (curl_easy_reset keeps
 *  its connection cache, so requests ride one keep-alive TLS connection). Bodies are
 *  read into an lss_buf_t capped at conf.max_response; a larger answer aborts the
 *  transfer. The bearer token of a token file is cached with the file's inode, size and
 *  mtime, and re-read whenever stat shows a change (the kubelet rotates projected
 *  service-account tokens by swapping a symlink, which changes the inode), or after a
 *  401. HTTP/1.1 only: one stream per connection keeps the watches' sockets apart.
 */
#include "lss_k8s_client.h"
#include "lss_log.h"
#include "lss_store.h"
#include "lss_util.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>

#define S_TOKEN_MAX       (64 * 1024)
#define S_HEADER_MAX      (S_TOKEN_MAX + 64)
#define S_BACKOFF_BASE_MS 200
#define S_BACKOFF_MAX_MS  5000
#define S_URL_MAX         (LSS_K8S_SERVER_MAX + 8192)
#define S_MESSAGE_MAX     160
#define S_USER_AGENT      "llmsafespace/1 (lss_k8s_client)"

struct _lss_k8s_client_t {
    atomic_int refs;
    lss_k8s_conf_t conf;
    pthread_mutex_t lock; /* the token cache below */
    char *file_token;     /* last token read from conf.token_file */
    struct stat file_st;  /* what the file looked like then */
    CURL *easy;           /* synchronous requests (the store's thread only) */
};

/*  The state of one synchronous transfer. */
typedef struct {
    lss_buf_t body;
    bool overflow;
    int64_t retry_after_ms; /* -1 = none */
} s_xfer_t;

/* ------------------------------------------------------------------ token */

static bool s_same_file (const struct stat *a, const struct stat *b)
{
    return a->st_ino == b->st_ino && a->st_dev == b->st_dev && a->st_size == b->st_size &&
           a->st_mtim.tv_sec == b->st_mtim.tv_sec && a->st_mtim.tv_nsec == b->st_mtim.tv_nsec;
}

/*  Re-reads the token file if it changed (or force). Under the lock. */
static int s_token_refresh (lss_k8s_client_t *self, bool force, char *err, size_t err_size)
{
    struct stat st;
    const char *path = self->conf.token_file;
    if (stat (path, &st) != 0) {
        lss_errf (err, err_size, "token file %s: %s", path, strerror (errno));
        return -1;
    }
    if (self->file_token && !force && s_same_file (&st, &self->file_st))
        return 0;
    FILE *f = fopen (path, "re");
    if (!f) {
        lss_errf (err, err_size, "token file %s: %s", path, strerror (errno));
        return -1;
    }
    char *buf = malloc (S_TOKEN_MAX + 1);
    size_t n = buf ? fread (buf, 1, S_TOKEN_MAX + 1, f) : 0;
    fclose (f);
    while (buf && n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r' || buf[n - 1] == ' '))
        n--;
    if (!buf || n == 0 || n > S_TOKEN_MAX || memchr (buf, '\n', n) || memchr (buf, '\0', n)) {
        lss_errf (err, err_size, "token file %s: empty, over %d bytes or several lines", path,
                  S_TOKEN_MAX);
        free (buf);
        return -1;
    }
    buf[n] = '\0';
    if (self->file_token) {
        explicit_bzero (self->file_token, strlen (self->file_token));
        free (self->file_token);
    }
    bool rotated = self->file_token != NULL;
    self->file_token = buf;
    self->file_st = st;
    if (rotated)
        lss_log_info ("kubernetes token re-read", "{s:s}", "file", path);
    return 0;
}

/*  "Authorization: Bearer <token>" into out, or "" when there is no token. */
static int s_auth_header (lss_k8s_client_t *self, char *out, size_t size, char *err,
                          size_t err_size)
{
    out[0] = '\0';
    if (self->conf.token)
        return lss_fmt (out, size, "Authorization: Bearer %s", self->conf.token) == 0 ? 0 : -1;
    if (!self->conf.token_file)
        return 0;
    pthread_mutex_lock (&self->lock);
    int rc = s_token_refresh (self, false, err, err_size);
    if (rc == 0)
        rc = lss_fmt (out, size, "Authorization: Bearer %s", self->file_token) == 0 ? 0 : -1;
    pthread_mutex_unlock (&self->lock);
    return rc;
}

static void s_token_force (lss_k8s_client_t *self)
{
    if (!self->conf.token_file)
        return;
    char err[LSS_STORE_ERR_SIZE];
    pthread_mutex_lock (&self->lock);
    if (s_token_refresh (self, true, err, sizeof err) != 0)
        lss_log_warn ("kubernetes token file unreadable", "{s:s}", "error", err);
    pthread_mutex_unlock (&self->lock);
}

/* ------------------------------------------------------------------ client */

lss_k8s_client_t *lss_k8s_client_new (lss_k8s_conf_t *conf, char *err, size_t err_size)
{
    if (curl_global_init (CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        lss_errf (err, err_size, "k8s: libcurl initialisation failed");
        return NULL;
    }
    lss_k8s_client_t *self = calloc (1, sizeof *self);
    if (!self || !(self->easy = curl_easy_init ())) {
        lss_errf (err, err_size, "k8s: out of memory");
        free (self);
        curl_global_cleanup ();
        return NULL;
    }
    atomic_init (&self->refs, 1);
    pthread_mutex_init (&self->lock, NULL);
    self->conf = *conf;
    /* the caller's copy keeps its limits but no longer owns the strings */
    lss_k8s_conf_t empty = *conf;
    empty.ca_file = empty.cert_file = empty.key_file = empty.token = empty.token_file = NULL;
    empty.ca = empty.cert = empty.key = (lss_k8s_blob_t){0};
    *conf = empty;
    lss_k8s_conf_clear (conf);
    return self;
}

lss_k8s_client_t *lss_k8s_client_ref (lss_k8s_client_t *self)
{
    atomic_fetch_add (&self->refs, 1);
    return self;
}

void lss_k8s_client_destroy (lss_k8s_client_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    lss_k8s_client_t *self = *self_p;
    *self_p = NULL;
    if (atomic_fetch_sub (&self->refs, 1) != 1)
        return;
    curl_easy_cleanup (self->easy);
    if (self->file_token) {
        explicit_bzero (self->file_token, strlen (self->file_token));
        free (self->file_token);
    }
    lss_k8s_conf_clear (&self->conf);
    pthread_mutex_destroy (&self->lock);
    free (self);
    curl_global_cleanup ();
}

const lss_k8s_conf_t *lss_k8s_client_conf (const lss_k8s_client_t *self)
{
    return &self->conf;
}

int lss_k8s_client_setup (lss_k8s_client_t *self, CURL *easy, const char *path,
                          struct curl_slist **headers, char *err, size_t err_size)
{
    const lss_k8s_conf_t *c = &self->conf;
    char url[S_URL_MAX];
    *headers = NULL;
    if (lss_fmt (url, sizeof url, "%s%s", c->server, path) != 0) {
        lss_errf (err, err_size, "k8s: request path too long");
        return -1;
    }
    char *auth = malloc (S_HEADER_MAX);
    if (!auth) {
        lss_errf (err, err_size, "k8s: out of memory");
        return -1;
    }
    int rc = s_auth_header (self, auth, S_HEADER_MAX, err, err_size);
    struct curl_slist *h = NULL, *t;
    if (rc == 0 && auth[0]) {
        rc = (t = curl_slist_append (h, auth)) ? 0 : -1;
        h = t ? t : h;
    }
    explicit_bzero (auth, S_HEADER_MAX);
    free (auth);
    static const char *fixed[] = {"Accept: application/json", "Expect:"};
    for (size_t i = 0; rc == 0 && i < sizeof fixed / sizeof fixed[0]; i++) {
        t = curl_slist_append (h, fixed[i]);
        rc = t ? 0 : -1;
        h = t ? t : h;
    }
    if (rc != 0) {
        if (!err || !err[0])
            lss_errf (err, err_size, "k8s: cannot build the request headers");
        curl_slist_free_all (h);
        return -1;
    }
    curl_easy_setopt (easy, CURLOPT_URL, url);
    curl_easy_setopt (easy, CURLOPT_PROTOCOLS_STR, "https,http");
    curl_easy_setopt (easy, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
    curl_easy_setopt (easy, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt (easy, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt (easy, CURLOPT_CONNECTTIMEOUT_MS, (long)c->timeout_ms);
    curl_easy_setopt (easy, CURLOPT_USERAGENT, S_USER_AGENT);
    curl_easy_setopt (easy, CURLOPT_FOLLOWLOCATION, 0L);
    if (c->insecure) {
        curl_easy_setopt (easy, CURLOPT_SSL_VERIFYPEER, 0L);
        curl_easy_setopt (easy, CURLOPT_SSL_VERIFYHOST, 0L);
    }
    if (c->ca.data) {
        struct curl_blob b = {c->ca.data, c->ca.len, CURL_BLOB_COPY};
        curl_easy_setopt (easy, CURLOPT_CAINFO_BLOB, &b);
        curl_easy_setopt (easy, CURLOPT_CAPATH, NULL);
    } else if (c->ca_file) {
        curl_easy_setopt (easy, CURLOPT_CAINFO, c->ca_file);
        curl_easy_setopt (easy, CURLOPT_CAPATH, NULL);
    }
    if (c->cert.data) {
        struct curl_blob b = {c->cert.data, c->cert.len, CURL_BLOB_COPY};
        curl_easy_setopt (easy, CURLOPT_SSLCERT_BLOB, &b);
        curl_easy_setopt (easy, CURLOPT_SSLCERTTYPE, "PEM");
    } else if (c->cert_file)
        curl_easy_setopt (easy, CURLOPT_SSLCERT, c->cert_file);
    if (c->key.data) {
        struct curl_blob b = {c->key.data, c->key.len, CURL_BLOB_COPY};
        curl_easy_setopt (easy, CURLOPT_SSLKEY_BLOB, &b);
        curl_easy_setopt (easy, CURLOPT_SSLKEYTYPE, "PEM");
    } else if (c->key_file)
        curl_easy_setopt (easy, CURLOPT_SSLKEY, c->key_file);
    *headers = h;
    return 0;
}

/* ------------------------------------------------------------------ errors */

int lss_k8s_map_status (long http_status, const json_t *body, const char *what, char *err,
                        size_t err_size)
{
    int code;
    switch (http_status) {
    case 404:
        code = LSS_STORE_NOT_FOUND;
        break;
    case 409:
        code = LSS_STORE_CONFLICT;
        break;
    case 410:
        code = LSS_STORE_GONE;
        break;
    case 400:
    case 413:
    case 422:
        code = LSS_STORE_INVALID;
        break;
    default:
        code = http_status >= 200 && http_status < 300 ? LSS_STORE_OK : LSS_STORE_UNAVAILABLE;
    }
    /* a Status object's message is the server's explanation; bound what is copied */
    const char *msg = json_string_value (json_object_get (body, "message"));
    const char *reason = json_string_value (json_object_get (body, "reason"));
    if (msg && msg[0])
        lss_errf (err, err_size, "%s: %.*s", what, (int)S_MESSAGE_MAX * 2, msg);
    else
        lss_errf (err, err_size, "%s: HTTP %ld%s%.*s", what, http_status, reason ? " " : "",
                  S_MESSAGE_MAX, reason ? reason : "");
    return code;
}

/* ------------------------------------------------------------------ requests */

static size_t s_on_body (char *data, size_t size, size_t n, void *arg)
{
    s_xfer_t *x = arg;
    size_t len = size * n;
    if (lss_buf_append (&x->body, data, len) != 0) {
        x->overflow = true;
        return 0; /* aborts the transfer: CURLE_WRITE_ERROR */
    }
    return len;
}

static size_t s_on_header (char *data, size_t size, size_t n, void *arg)
{
    s_xfer_t *x = arg;
    size_t len = size * n;
    static const char name[] = "retry-after:";
    if (len > sizeof name && strncasecmp (data, name, sizeof name - 1) == 0) {
        char value[32];
        size_t vlen = len - (sizeof name - 1);
        const char *v = data + sizeof name - 1;
        while (vlen > 0 && (*v == ' ' || *v == '\t')) {
            v++;
            vlen--;
        }
        while (vlen > 0 && (v[vlen - 1] == '\r' || v[vlen - 1] == '\n' || v[vlen - 1] == ' '))
            vlen--;
        int64_t secs;
        if (vlen < sizeof value) {
            memcpy (value, v, vlen);
            value[vlen] = '\0';
            if (lss_parse_int64 (value, 0, 86400, &secs) == 0)
                x->retry_after_ms = secs * 1000;
        }
    }
    return len;
}

static void s_sleep_ms (int64_t ms)
{
    struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
    while (nanosleep (&ts, &ts) != 0 && errno == EINTR)
        ;
}

/*  One transfer. Returns the curl code; *status is the HTTP status (0 if none). */
static CURLcode s_perform (lss_k8s_client_t *self, const char *method, const char *path,
                           const char *payload, const char *content_type, s_xfer_t *x,
                           long *status, char *err, size_t err_size)
{
    CURL *easy = self->easy;
    struct curl_slist *headers = NULL;
    *status = 0;
    curl_easy_reset (easy);
    if (lss_k8s_client_setup (self, easy, path, &headers, err, err_size) != 0)
        return CURLE_FAILED_INIT;
    if (payload) {
        char ct[96];
        lss_fmt (ct, sizeof ct, "Content-Type: %s",
                 content_type ? content_type : LSS_K8S_CONTENT_JSON);
        struct curl_slist *t = curl_slist_append (headers, ct);
        if (!t) {
            curl_slist_free_all (headers);
            return CURLE_OUT_OF_MEMORY;
        }
        headers = t;
        curl_easy_setopt (easy, CURLOPT_POSTFIELDS, payload);
        curl_easy_setopt (easy, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)strlen (payload));
    }
    if (strcmp (method, "POST") == 0 && !payload)
        curl_easy_setopt (easy, CURLOPT_POSTFIELDSIZE, 0L);
    if (strcmp (method, "GET") != 0 && strcmp (method, "POST") != 0)
        curl_easy_setopt (easy, CURLOPT_CUSTOMREQUEST, method);
    else if (strcmp (method, "POST") == 0)
        curl_easy_setopt (easy, CURLOPT_POST, 1L);
    curl_easy_setopt (easy, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt (easy, CURLOPT_TIMEOUT_MS, (long)self->conf.timeout_ms);
    curl_easy_setopt (easy, CURLOPT_WRITEFUNCTION, s_on_body);
    curl_easy_setopt (easy, CURLOPT_WRITEDATA, x);
    curl_easy_setopt (easy, CURLOPT_HEADERFUNCTION, s_on_header);
    curl_easy_setopt (easy, CURLOPT_HEADERDATA, x);
    char cerr[CURL_ERROR_SIZE] = "";
    curl_easy_setopt (easy, CURLOPT_ERRORBUFFER, cerr);
    CURLcode cc = curl_easy_perform (easy);
    curl_easy_getinfo (easy, CURLINFO_RESPONSE_CODE, status);
    if (cc != CURLE_OK) {
        if (x->overflow)
            lss_errf (err, err_size, "response larger than %zu bytes", self->conf.max_response);
        else
            lss_errf (err, err_size, "%s", cerr[0] ? cerr : curl_easy_strerror (cc));
    }
    curl_easy_setopt (easy, CURLOPT_ERRORBUFFER, NULL);
    curl_easy_setopt (easy, CURLOPT_HTTPHEADER, NULL);
    curl_slist_free_all (headers);
    return cc;
}

static int64_t s_backoff_ms (int attempt)
{
    int64_t ms = S_BACKOFF_BASE_MS;
    for (int i = 0; i < attempt && ms < S_BACKOFF_MAX_MS; i++)
        ms *= 2;
    if (ms > S_BACKOFF_MAX_MS)
        ms = S_BACKOFF_MAX_MS;
    uint16_t r = 0;
    lss_random_bytes (&r, sizeof r);
    return ms / 2 + (int64_t)(r % (uint16_t)(ms / 2 + 1)); /* [ms/2, ms] */
}

int lss_k8s_client_request (lss_k8s_client_t *self, const char *method, const char *path,
                            const json_t *body, const char *content_type, json_t **out,
                            char *err, size_t err_size)
{
    if (out)
        *out = NULL;
    char *payload = NULL;
    if (body && !(payload = json_dumps (body, JSON_COMPACT))) {
        lss_errf (err, err_size, "k8s: cannot encode the request body");
        return LSS_STORE_INVALID;
    }
    char what[S_MESSAGE_MAX];
    lss_fmt (what, sizeof what, "%s %.120s", method, path);
    int rc = LSS_STORE_UNAVAILABLE;
    long status = 0;
    bool token_retried = false;
    char text[LSS_STORE_ERR_SIZE * 2] = "", msg[LSS_STORE_ERR_SIZE * 2] = "";
    int attempt;
    for (attempt = 0;; attempt++) {
        s_xfer_t x = {.retry_after_ms = -1};
        lss_buf_init (&x.body, self->conf.max_response);
        text[0] = '\0';
        CURLcode cc = s_perform (self, method, path, payload, content_type, &x, &status, text,
                                 sizeof text);
        json_t *decoded = NULL;
        if (cc == CURLE_OK && x.body.len > 0)
            decoded = json_loadb ((const char *)x.body.data, x.body.len, 0, NULL);
        lss_buf_free (&x.body);
        if (cc != CURLE_OK) {
            rc = LSS_STORE_UNAVAILABLE;
            lss_errf (msg, sizeof msg, "%s: %s", what, text);
        } else if (status >= 200 && status < 300) {
            if (!json_is_object (decoded)) {
                rc = LSS_STORE_UNAVAILABLE;
                lss_errf (msg, sizeof msg, "%s: HTTP %ld with a body that is not a JSON object",
                          what, status);
            } else {
                rc = LSS_STORE_OK;
                if (out) {
                    *out = decoded;
                    decoded = NULL;
                }
            }
        } else {
            rc = lss_k8s_map_status (status, json_is_object (decoded) ? decoded : NULL, what,
                                     msg, sizeof msg);
        }
        json_decref (decoded);
        if (rc == LSS_STORE_OK)
            break;
        if (cc == CURLE_OK && status == 401 && self->conf.token_file && !token_retried) {
            token_retried = true;
            s_token_force (self);
            attempt--;
            continue;
        }
        bool retryable = cc == CURLE_OK && (status == 429 || status >= 500);
        if (!retryable || attempt >= self->conf.max_retries)
            break;
        int64_t wait = x.retry_after_ms >= 0 ? x.retry_after_ms : s_backoff_ms (attempt);
        if (wait > self->conf.retry_max_wait_ms)
            wait = self->conf.retry_max_wait_ms;
        lss_log_info ("kubernetes request retried", "{s:s, s:s, s:i, s:i, s:I}", "verb", method,
                      "path", path, "status", (int)status, "attempt", attempt + 1, "wait_ms",
                      (json_int_t)wait);
        s_sleep_ms (wait);
    }
    if (rc != LSS_STORE_OK) {
        lss_log_level_t level = rc == LSS_STORE_NOT_FOUND || rc == LSS_STORE_CONFLICT
                                    ? LSS_LOG_DEBUG
                                    : LSS_LOG_WARN;
        lss_log (level, "kubernetes request failed", "{s:s, s:s, s:i, s:i, s:s}", "verb",
                 method, "path", path, "status", (int)status, "attempts", attempt + 1, "error",
                 msg);
        lss_errf (err, err_size, "%s", msg);
    }
    free (payload);
    return rc;
}
