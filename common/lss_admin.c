/*  lss_admin — admin HTTP endpoint (healthz, readyz, metrics) on libwebsockets. See
 *  lss_admin.h.
 *
 *  The lws context and its one vhost are created on the caller's thread, so a bad
 *  address or a taken port is reported by the constructor itself; only then does the
 *  service thread start. Each request is answered from LWS_CALLBACK_HTTP: the body is
 *  built (a heap copy owned by the per-session data), the headers written, and the body
 *  sent from LWS_CALLBACK_HTTP_WRITEABLE in S_CHUNK pieces, the last one with
 *  LWS_WRITE_HTTP_FINAL. The body is freed after its last piece, or in CLOSED_HTTP /
 *  HTTP_DROP_PROTOCOL if the peer goes away first (only our own buffer: nothing of lws
 *  is freed from inside its callbacks). Requests with a method other than GET close
 *  the connection after the answer, so an unread request body is never parsed as the
 *  next request.
 */
#include "lss_admin.h"

#include <arpa/inet.h>
#include <libwebsockets.h>
#include <netdb.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>

#include "lss_log.h"
#include "lss_metrics.h"
#include "lss_util.h"

/*  Bytes of body written per writeable callback. */
#define S_CHUNK 16384
/*  Longest lws log line forwarded, bytes. */
#define S_LWS_LINE_MAX 512

struct _lss_admin_t {
    struct lws_context *context;
    struct lws_vhost *vhost;
    struct lws_protocols protocols[2];
    pthread_t thread;
    bool thread_started;
    atomic_bool stop;
    _Atomic int64_t heartbeat_ms; /* lss_time_mono_ms of the last heartbeat */
    int64_t stall_ms;
    lss_admin_ready_fn *ready_fn;
    void *ready_arg;
    int port;
    int inflight; /* responses with a body still to send; admin thread only */
    char address[LSS_ADMIN_ADDRESS_MAX];
};

/*  Per-request state (lws allocates it zeroed per connection). */
typedef struct {
    char *body;       /* heap, owned; NULL when nothing is pending */
    size_t len;       /* body bytes */
    size_t sent;      /* body bytes written so far */
    bool close_after; /* close the connection once the body is out */
} s_pss_t;

//  --------------------------------------------------------------------------
//  lws logging → lss_log

static void s_lws_log (int level, const char *line)
{
    char text[S_LWS_LINE_MAX];
    snprintf (text, sizeof text, "%s", line ? line : "");
    size_t len = strlen (text);
    while (len > 0 && (text[len - 1] == '\n' || text[len - 1] == '\r' || text[len - 1] == ' '))
        text[--len] = '\0';
    lss_log (level == LLL_ERR ? LSS_LOG_ERROR : LSS_LOG_WARN, "libwebsockets", "{s:s}",
             "detail", text);
}

//  --------------------------------------------------------------------------
//  Responses

static void s_pss_release (lss_admin_t *self, s_pss_t *pss)
{
    if (pss && pss->body) {
        free (pss->body);
        pss->body = NULL;
        self->inflight--;
    }
}

static void s_count (int status, const char *route)
{
    char code[8];
    snprintf (code, sizeof code, "%d", status);
    lss_metric_t *m =
        lss_metrics_counter ("lss_admin_requests_total",
                             "Admin HTTP requests by route and status code.", "path,code");
    lss_metric_inc (m, 1, route, code);
}

/*  Replaces control characters so a reason stays on one line. */
static void s_one_line (char *text)
{
    for (char *p = text; *p; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            *p = ' ';
}

/*  Decides the answer to one request: sets *status, *route (for the metric) and returns
 *  the body (heap; NULL if out of memory, then the answer is 500). */
static char *s_answer (lss_admin_t *self, bool get, const char *path, int *status,
                       const char **route, const char **content_type)
{
    *content_type = "text/plain; charset=utf-8";
    char text[LSS_ADMIN_REASON_MAX + 64];
    if (strcmp (path, "/healthz") == 0)
        *route = "/healthz";
    else if (strcmp (path, "/readyz") == 0)
        *route = "/readyz";
    else if (strcmp (path, "/metrics") == 0)
        *route = "/metrics";
    else
        *route = "other";

    if (!get) {
        *status = HTTP_STATUS_METHOD_NOT_ALLOWED;
        return strdup ("method not allowed\n");
    }
    if (strcmp (*route, "/healthz") == 0) {
        int64_t silent_ms = lss_time_mono_ms () - atomic_load (&self->heartbeat_ms);
        if (silent_ms <= self->stall_ms) {
            *status = HTTP_STATUS_OK;
            return strdup ("ok\n");
        }
        *status = HTTP_STATUS_SERVICE_UNAVAILABLE;
        snprintf (text, sizeof text, "stalled: main loop silent for %lld ms\n",
                  (long long)silent_ms);
        return strdup (text);
    }
    if (strcmp (*route, "/readyz") == 0) {
        char reason[LSS_ADMIN_REASON_MAX] = "";
        bool ready =
            self->ready_fn ? self->ready_fn (self->ready_arg, reason, sizeof reason) : true;
        reason[sizeof reason - 1] = '\0';
        s_one_line (reason);
        *status = ready ? HTTP_STATUS_OK : HTTP_STATUS_SERVICE_UNAVAILABLE;
        if (ready && !*reason)
            return strdup ("ready\n");
        if (ready) { /* a ready service may say more, e.g. "leader" or "standby" */
            snprintf (text, sizeof text, "ready: %s\n", reason);
            return strdup (text);
        }
        snprintf (text, sizeof text, "not ready: %s\n", *reason ? reason : "unspecified");
        return strdup (text);
    }
    if (strcmp (*route, "/metrics") == 0) {
        *status = HTTP_STATUS_OK;
        *content_type = "text/plain; version=0.0.4; charset=utf-8";
        return lss_metrics_render ();
    }
    *status = HTTP_STATUS_NOT_FOUND;
    return strdup ("not found\n");
}

/*  LWS_CALLBACK_HTTP: answers the request's headers and schedules the body. Returns
 *  what the callback returns (nonzero closes the connection). */
static int s_on_request (lss_admin_t *self, struct lws *wsi, s_pss_t *pss, const char *path)
{
    s_pss_release (self, pss); /* a keep-alive connection's previous answer, if any */
    char *uri;
    int uri_len;
    int method = lws_http_get_uri_and_method (wsi, &uri, &uri_len);
    bool get = method == LWSHUMETH_GET;
    int status;
    const char *route, *content_type;
    char *body;
    if (self->inflight >= LSS_ADMIN_MAX_INFLIGHT) {
        status = HTTP_STATUS_SERVICE_UNAVAILABLE;
        route = "busy";
        content_type = "text/plain; charset=utf-8";
        body = strdup ("busy\n");
    } else
        body = s_answer (self, get, path ? path : "", &status, &route, &content_type);
    if (!body) {
        status = HTTP_STATUS_INTERNAL_SERVER_ERROR;
        content_type = "text/plain; charset=utf-8";
        body = strdup ("out of memory\n");
        if (!body)
            return -1;
    }
    s_count (status, route);
    pss->body = body;
    pss->len = strlen (body);
    pss->sent = 0;
    pss->close_after = !get;
    self->inflight++;

    uint8_t buf[LWS_PRE + 1024];
    uint8_t *start = buf + LWS_PRE, *p = start, *end = buf + sizeof buf - 1;
    if (lws_add_http_common_headers (wsi, (unsigned)status, content_type,
                                     (lws_filepos_t)pss->len, &p, end))
        return -1;
    if (status == HTTP_STATUS_METHOD_NOT_ALLOWED &&
        lws_add_http_header_by_token (wsi, WSI_TOKEN_HTTP_ALLOW, (const unsigned char *)"GET",
                                      3, &p, end))
        return -1;
    if (lws_add_http_header_by_token (wsi, WSI_TOKEN_HTTP_CACHE_CONTROL,
                                      (const unsigned char *)"no-store", 8, &p, end))
        return -1;
    if (lws_finalize_write_http_header (wsi, start, &p, end))
        return -1;
    lws_callback_on_writable (wsi);
    return 0;
}

/*  LWS_CALLBACK_HTTP_WRITEABLE: sends the next piece of the body. */
static int s_on_writeable (lss_admin_t *self, struct lws *wsi, s_pss_t *pss)
{
    if (!pss->body)
        return 0;
    uint8_t buf[LWS_PRE + S_CHUNK];
    size_t n = pss->len - pss->sent;
    if (n > S_CHUNK)
        n = S_CHUNK;
    bool final = pss->sent + n == pss->len;
    memcpy (buf + LWS_PRE, pss->body + pss->sent, n);
    if (lws_write (wsi, buf + LWS_PRE, n, final ? LWS_WRITE_HTTP_FINAL : LWS_WRITE_HTTP) !=
        (int)n)
        return -1;
    pss->sent += n;
    if (!final) {
        lws_callback_on_writable (wsi);
        return 0;
    }
    s_pss_release (self, pss);
    if (pss->close_after)
        return -1;
    return lws_http_transaction_completed (wsi) ? -1 : 0;
}

static int s_callback (struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                       size_t len)
{
    if (!wsi)
        return 0;
    lss_admin_t *self = lws_context_user (lws_get_context (wsi));
    s_pss_t *pss = user;
    switch (reason) {
    case LWS_CALLBACK_HTTP:
        return pss ? s_on_request (self, wsi, pss, in) : -1;
    case LWS_CALLBACK_HTTP_WRITEABLE:
        return pss ? s_on_writeable (self, wsi, pss) : -1;
    case LWS_CALLBACK_HTTP_BODY:
    case LWS_CALLBACK_HTTP_BODY_COMPLETION:
        return 0; /* request bodies are ignored (every route is GET) */
    case LWS_CALLBACK_FILTER_PROTOCOL_CONNECTION:
        return -1; /* no WebSocket upgrades here */
    case LWS_CALLBACK_CLOSED_HTTP:
    case LWS_CALLBACK_HTTP_DROP_PROTOCOL:
        s_pss_release (self, pss);
        break;
    default:
        break;
    }
    return lws_callback_http_dummy (wsi, reason, user, in, len);
}

//  --------------------------------------------------------------------------
//  Thread

static void *s_run (void *arg)
{
    lss_admin_t *self = arg;
    while (!atomic_load (&self->stop))
        if (lws_service (self->context, 0) < 0)
            break;
    return NULL;
}

/*  Starts s_run with the process-directed signals blocked in the new thread. */
static int s_start_thread (lss_admin_t *self)
{
    int rc = lss_thread_start (&self->thread, s_run, self);
    if (rc != 0)
        return -1;
    self->thread_started = true;
    return 0;
}

//  --------------------------------------------------------------------------
//  Construction

lss_admin_t *lss_admin_new (const char *listen, int64_t stall_ms, lss_admin_ready_fn *ready_fn,
                            void *ready_arg)
{
    char host[256], iface[INET6_ADDRSTRLEN];
    int port;
    bool ipv6 = false;
    if (lss_listen_parse (listen, host, sizeof host, &port)) {
        lss_log_error ("admin listen address invalid", "{s:s}", "listen", listen ? listen : "");
        return NULL;
    }
    if (*host && lss_resolve_numeric (host, iface, sizeof iface, &ipv6)) {
        lss_log_error ("admin listen host does not resolve", "{s:s}", "listen", listen);
        return NULL;
    }
    lss_admin_t *self = calloc (1, sizeof *self);
    if (!self)
        return NULL;
    self->stall_ms = stall_ms > 0 ? stall_ms : LSS_ADMIN_STALL_MS_DEFAULT;
    self->ready_fn = ready_fn;
    self->ready_arg = ready_arg;
    atomic_init (&self->stop, false);
    atomic_init (&self->heartbeat_ms, lss_time_mono_ms ());
    self->protocols[0] = (struct lws_protocols){
        .name = "lss-admin",
        .callback = s_callback,
        .per_session_data_size = sizeof (s_pss_t),
    };

    lws_set_log_level (LLL_ERR, s_lws_log);
    struct lws_context_creation_info info;
    memset (&info, 0, sizeof info);
    info.options = LWS_SERVER_OPTION_EXPLICIT_VHOSTS;
    info.gid = -1;
    info.uid = -1;
    info.user = self;
    info.server_string = "lss-admin";
    struct rlimit rl;
    info.fd_limit_per_thread = LSS_ADMIN_FD_LIMIT;
    if (getrlimit (RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < LSS_ADMIN_FD_LIMIT)
        info.fd_limit_per_thread = (unsigned)rl.rlim_cur;
    self->context = lws_create_context (&info);
    if (!self->context) {
        lss_log_error ("admin endpoint cannot start", "{s:s}", "listen", listen);
        goto fail;
    }
    info.port = port;
    info.iface = *host ? iface : NULL;
    info.protocols = self->protocols;
    info.vhost_name = "lss-admin";
    info.keepalive_timeout = LSS_ADMIN_KEEPALIVE_S;
    info.timeout_secs = LSS_ADMIN_KEEPALIVE_S;
    if (*host && !ipv6)
        info.options |= LWS_SERVER_OPTION_DISABLE_IPV6;
    self->vhost = lws_create_vhost (self->context, &info);
    if (!self->vhost) {
        lss_log_error ("admin endpoint cannot listen (port in use?)", "{s:s}", "listen",
                       listen);
        goto fail;
    }
    self->port = lws_get_vhost_listen_port (self->vhost);
    if (ipv6)
        snprintf (self->address, sizeof self->address, "[%s]:%d", iface, self->port);
    else
        snprintf (self->address, sizeof self->address, "%s:%d", *host ? iface : "*",
                  self->port);
    if (s_start_thread (self)) {
        lss_log_error ("admin thread cannot start", "{s:s}", "listen", listen);
        goto fail;
    }
    return self;
fail:
    lss_admin_destroy (&self);
    return NULL;
}

void lss_admin_destroy (lss_admin_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    lss_admin_t *self = *self_p;
    if (self->thread_started) {
        atomic_store (&self->stop, true);
        lws_cancel_service (self->context);
        pthread_join (self->thread, NULL);
    }
    if (self->context)
        lws_context_destroy (self->context);
    free (self);
    *self_p = NULL;
}

int lss_admin_port (const lss_admin_t *self)
{
    return self->port;
}

const char *lss_admin_address (const lss_admin_t *self)
{
    return self->address;
}

void lss_admin_heartbeat (lss_admin_t *self)
{
    atomic_store_explicit (&self->heartbeat_ms, lss_time_mono_ms (), memory_order_relaxed);
}
