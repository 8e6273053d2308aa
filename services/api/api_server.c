/*  api_server — the public HTTP + WebSocket endpoint. See api_server.h.
 *
 *  One lws protocol serves both HTTP and the WebSocket stream (clients send no
 *  subprotocol, so lws hands every upgrade to protocols[0]). Per-connection data (pss)
 *  holds the request being read, or the answer being written, or the WebSocket session.
 *  Tickets and connection ids map back to their pss through two hash tables, so an
 *  answer for a connection that has gone finds nothing and is dropped. Nothing of lws
 *  is freed from inside its callbacks; our own objects are freed in CLOSED_HTTP /
 *  HTTP_DROP_PROTOCOL / CLOSED. A 250 ms timer keeps the loop turning (heartbeat, stop
 *  flag, WebSocket stall checks).
 */
#include "api_server.h"

#include <arpa/inet.h>
#include <czmq.h>
#include <libwebsockets.h>
#include <netdb.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>

#include "api_fast.h"
#include "api_http.h"
#include "api_msgs.h"
#include "api_route.h"
#include "api_ws.h"
#include "lss_log.h"
#include "lss_metrics.h"
#include "lss_util.h"

_Static_assert(API_WS_PRE >= LWS_PRE, "API_WS_PRE must leave room for LWS_PRE");

#define S_CHUNK        (64 * 1024) /* body bytes written per writeable callback */
#define S_TICK_US      (250 * 1000)
#define S_HEADERS_MAX  4096
#define S_WRITE_TO_S   60 /* a response that makes no progress this long is dropped */
#define S_LWS_LINE_MAX 512

typedef enum { S_NONE = 0, S_HTTP, S_WS } s_kind_t;

typedef struct {
    s_kind_t kind;
    struct lws *wsi;
    /* HTTP */
    uint64_t ticket; /* the request in progress, 0 if none */
    bool listed;     /* ticket in self->tickets: another thread will answer it */
    int route;
    int method;
    char request_id[API_REQUEST_ID_MAX + 1];
    int64_t start_ns;
    api_req_t *req;   /* body being read */
    api_resp_t *resp; /* answer being written */
    size_t sent;
    bool headers_done;
    bool close_after;
    /* WebSocket */
    char ws_sandbox[API_SB_ID_SIZE];
    char *ws_token;
    api_ws_t *ws;
    lss_buf_t rx;
    bool rx_binary, rx_oversize;
} s_pss_t;

struct _api_server_t {
    api_ctx_t *ctx;
    struct lws_context *context;
    struct lws_vhost *vhost;
    struct lws_protocols protocols[2];
    lws_retry_bo_t retry;
    lws_sorted_usec_list_t tick;
    zhashx_t *tickets; /* "%016llx" → s_pss_t* (not owned): requests sent to workers */
    int64_t in_flight; /* HTTP requests being served */
    zhashx_t *conns;   /* "%016llx" → s_pss_t* of WebSocket sessions */
    int port;
    lss_service_t *svc;
    lss_metric_t *m_requests, *m_latency, *m_ws, *m_conns;
};

static void s_key (uint64_t id, char out[17])
{
    static const char hex[] = "0123456789abcdef";
    for (int i = 15; i >= 0; i--, id >>= 4)
        out[i] = hex[id & 15];
    out[16] = '\0';
}

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

static void s_wake (void *arg)
{
    api_server_t *self = arg;
    if (self->context)
        lws_cancel_service (self->context);
}

//  --------------------------------------------------------------------------
//  HTTP answers

static void s_ticket_drop (api_server_t *self, s_pss_t *pss)
{
    if (pss->ticket) {
        if (pss->listed) {
            char key[17];
            s_key (pss->ticket, key);
            zhashx_delete (self->tickets, key);
            pss->listed = false;
        }
        pss->ticket = 0;
        self->in_flight--;
    }
}

static void s_http_release (api_server_t *self, s_pss_t *pss)
{
    s_ticket_drop (self, pss);
    api_msg_destroy ((api_msg_t *)pss->req);
    pss->req = NULL;
    api_msg_destroy ((api_msg_t *)pss->resp);
    pss->resp = NULL;
}

/*  Queues resp as the answer of pss's current request and asks for a writeable callback. */
static void s_answer (s_pss_t *pss, api_resp_t *resp)
{
    if (!resp)
        return;
    api_msg_destroy ((api_msg_t *)pss->resp);
    pss->resp = resp;
    pss->sent = 0;
    pss->headers_done = false;
    lws_callback_on_writable (pss->wsi);
}

static api_reply_to_t s_to (const s_pss_t *pss)
{
    api_reply_to_t to = {.ticket = pss->ticket, .route = pss->route};
    snprintf (to.request_id, sizeof to.request_id, "%s", pss->request_id);
    return to;
}

static void s_answer_error (s_pss_t *pss, int status, const char *message)
{
    api_reply_to_t to = s_to (pss);
    s_answer (pss, api_resp_error (&to, status, NULL, message, NULL));
}

static int s_add_header (struct lws *wsi, const char *name, const char *value, uint8_t **p,
                         uint8_t *end)
{
    char lname[API_HEADER_NAME_MAX + 2];
    size_t n = strlen (name);
    if (n + 2 > sizeof lname)
        return -1;
    for (size_t i = 0; i < n; i++)
        lname[i] = (char)((name[i] >= 'A' && name[i] <= 'Z') ? name[i] + 32 : name[i]);
    lname[n] = ':';
    lname[n + 1] = '\0';
    return lws_add_http_header_by_name (wsi, (const unsigned char *)lname,
                                        (const unsigned char *)value, (int)strlen (value), p,
                                        end);
}

/*  Writes the response's headers, followed in the same write by the whole body when it
 *  fits (one send per small response instead of two). Returns 1 when the body went
 *  with them, 0 when it did not, -1 on failure. */
static int s_write_headers (s_pss_t *pss)
{
    api_resp_t *r = pss->resp;
    static uint8_t buf[LWS_PRE + S_HEADERS_MAX + S_CHUNK]; /* only the lws thread writes */
    uint8_t *start = buf + LWS_PRE, *p = start, *end = buf + LWS_PRE + S_HEADERS_MAX - 1;
    const char *ctype = r->content_type[0] ? r->content_type : "application/json";
    if (lws_add_http_common_headers (pss->wsi, (unsigned)r->status, ctype,
                                     (lws_filepos_t)r->len, &p, end))
        return -1;
    if (s_add_header (pss->wsi, "X-Request-ID", pss->request_id, &p, end) ||
        s_add_header (pss->wsi, "Cache-Control", "no-store", &p, end) ||
        s_add_header (pss->wsi, "X-Content-Type-Options", "nosniff", &p, end))
        return -1;
    for (int i = 0; i < r->nheaders; i++)
        if (s_add_header (pss->wsi, r->headers[i].name, r->headers[i].value, &p, end))
            return -1;
    if (pss->close_after &&
        lws_add_http_header_by_token (pss->wsi, WSI_TOKEN_CONNECTION,
                                      (const unsigned char *)"close", 5, &p, end))
        return -1;
    if (lws_finalize_http_header (pss->wsi, &p, end))
        return -1;
    pss->headers_done = true;
    bool with_body = pss->method != API_M_HEAD && r->len > 0 && r->len <= S_CHUNK;
    if (with_body) {
        memcpy (p, r->body, r->len);
        p += r->len;
        pss->sent = r->len;
    }
    /* headers (and body) go out as one raw write: lws counts no content for it */
    int n = (int)(p - start);
    if (lws_write (pss->wsi, start, (size_t)n, LWS_WRITE_HTTP_HEADERS) != n)
        return -1;
    return with_body ? 1 : 0;
}

/*  The request is answered: metrics, ticket dropped, keep-alive or close. */
static int s_finish (api_server_t *self, s_pss_t *pss)
{
    char code[8];
    snprintf (code, sizeof code, "%d", pss->resp ? pss->resp->status : 0);
    const char *route = api_route_pattern (pss->route);
    lss_metric_inc (self->m_requests, 1, route, api_method_name (pss->method), code);
    lss_metric_observe (self->m_latency, (double)(lss_time_mono_ns () - pss->start_ns) / 1e9,
                        route);
    s_http_release (self, pss);
    if (pss->close_after)
        return -1;
    return lws_http_transaction_completed (pss->wsi) ? -1 : 0;
}

static int s_on_http_writeable (api_server_t *self, s_pss_t *pss)
{
    api_resp_t *r = pss->resp;
    if (!r)
        return 0;
    if (!pss->headers_done) {
        int sent = s_write_headers (pss);
        if (sent < 0)
            return -1;
        if (sent == 1 || r->len == 0 || pss->method == API_M_HEAD)
            return s_finish (self, pss);
        /* more to write: a client that stops reading is dropped */
        lws_set_timeout (pss->wsi, PENDING_TIMEOUT_HTTP_CONTENT, S_WRITE_TO_S);
        lws_callback_on_writable (pss->wsi);
        return 0;
    }
    static uint8_t buf[LWS_PRE + S_CHUNK]; /* the lws thread is the only writer */
    size_t n = r->len - pss->sent;
    if (n > S_CHUNK)
        n = S_CHUNK;
    bool final = pss->sent + n == r->len;
    memcpy (buf + LWS_PRE, r->body + pss->sent, n);
    if (lws_write (pss->wsi, buf + LWS_PRE, n, final ? LWS_WRITE_HTTP_FINAL : LWS_WRITE_HTTP) !=
        (int)n)
        return -1;
    pss->sent += n;
    if (!final) {
        lws_set_timeout (pss->wsi, PENDING_TIMEOUT_HTTP_CONTENT, S_WRITE_TO_S);
        lws_callback_on_writable (pss->wsi);
        return 0;
    }
    return s_finish (self, pss);
}

//  --------------------------------------------------------------------------
//  HTTP requests

static void s_request_id (struct lws *wsi, char out[API_REQUEST_ID_MAX + 1])
{
    char given[API_REQUEST_ID_MAX + 2] = "";
    int n = lws_hdr_custom_length (wsi, "x-request-id:", 13);
    if (n > 0 && n <= API_REQUEST_ID_MAX &&
        lws_hdr_custom_copy (wsi, given, sizeof given, "x-request-id:", 13) > 0 &&
        api_request_id_valid (given)) {
        snprintf (out, API_REQUEST_ID_MAX + 1, "%s", given);
        return;
    }
    if (lss_id_new ("req-", 20, out, API_REQUEST_ID_MAX + 1))
        snprintf (out, API_REQUEST_ID_MAX + 1, "req-unknown");
}

/*  The bearer token of the Authorization header, else (WebSocket upgrades only: API.md
 *  allows ?token= there, where browsers cannot set headers) the token query parameter.
 *  Heap or NULL. Over-long credentials are treated as none (the answer is 401). */
static char *s_token (struct lws *wsi, json_t *query, bool allow_query)
{
    int n = lws_hdr_total_length (wsi, WSI_TOKEN_HTTP_AUTHORIZATION);
    if (n > 0 && n < API_TOKEN_MAX) {
        char *buf = malloc ((size_t)n + 1);
        if (!buf)
            return NULL;
        if (lws_hdr_copy (wsi, buf, n + 1, WSI_TOKEN_HTTP_AUTHORIZATION) < 0) {
            free (buf);
            return NULL;
        }
        char *t = NULL;
        if (strncasecmp (buf, "Bearer ", 7) == 0) {
            const char *v = buf + 7;
            while (*v == ' ')
                v++;
            t = strdup (v);
        }
        free (buf);
        return t;
    }
    const char *q =
        query && allow_query ? json_string_value (json_object_get (query, "token")) : NULL;
    return q && strlen (q) < API_TOKEN_MAX ? strdup (q) : NULL;
}

/*  The query string as {name: value}; first value of a repeated name wins. */
static json_t *s_query (struct lws *wsi)
{
    json_t *q = json_object ();
    char frag[API_ROUTE_PARAM_MAX + 64];
    for (int i = 0; q && i < API_QUERY_MAX_PARAMS; i++) {
        int n = lws_hdr_copy_fragment (wsi, frag, sizeof frag, WSI_TOKEN_HTTP_URI_ARGS, i);
        if (n < 0)
            break;
        char *eq = strchr (frag, '=');
        const char *value = "";
        if (eq) {
            *eq = '\0';
            value = eq + 1;
        }
        if (*frag && !json_object_get (q, frag) &&
            json_object_set_new (q, frag, json_string (value)))
            continue; /* not UTF-8: ignored */
    }
    return q;
}

static int64_t s_content_length (struct lws *wsi, bool *present)
{
    char text[32];
    *present = false;
    int n = lws_hdr_copy (wsi, text, sizeof text, WSI_TOKEN_HTTP_CONTENT_LENGTH);
    if (n <= 0)
        return 0;
    int64_t v;
    *present = true;
    return lss_parse_int64 (text, 0, INT64_MAX, &v) ? -1 : v;
}

static void s_dispatch (api_server_t *self, s_pss_t *pss)
{
    api_req_t *req = pss->req;
    pss->req = NULL;
    if (!pss->listed) {
        char key[17];
        s_key (pss->ticket, key);
        pss->listed = zhashx_insert (self->tickets, key, pss) == 0;
    }
    api_resp_t *fast = NULL;
    if (api_fast_execute (self->ctx, req, &fast)) {
        if (fast)
            s_answer (pss, fast);
        return; /* else the bridge answers the ticket */
    }
    if (api_mailbox_post (self->ctx->jobs, &req->msg)) {
        api_msg_destroy (&req->msg);
        lss_log_warn ("request refused: workers saturated", "{s:s, s:s}", "route",
                      api_route_pattern (pss->route), "trace", pss->request_id);
        s_answer_error (pss, 503, "the server is busy; retry shortly");
    }
}

static void s_public_answer (api_server_t *self, s_pss_t *pss)
{
    api_reply_to_t to = s_to (pss);
    api_ctx_t *c = self->ctx;
    if (pss->route == API_R_HEALTH) {
        s_answer (pss, api_resp_with_json (&to, 200, json_pack ("{s:s}", "status", "ok")));
        return;
    }
    if (pss->route == API_R_READY) {
        bool db = atomic_load (&c->db_ok), redis = atomic_load (&c->redis_ok),
             store = atomic_load (&c->store_ok), exe = atomic_load (&c->executor_ok),
             watcher = atomic_load (&c->watcher_ok), wp = atomic_load (&c->warmpool_ok);
        bool ready = db && redis && store && exe;
        json_t *checks =
            json_pack ("{s:b, s:b, s:b, s:b, s:b, s:b}", "postgres", db, "redis", redis,
                       "store", store, "executor", exe, "watcher", watcher, "warmpool", wp);
        s_answer (pss, api_resp_with_json (&to, ready ? 200 : 503,
                                           json_pack ("{s:s, s:o}", "status",
                                                      ready ? "ready" : "not ready", "checks",
                                                      checks)));
        return;
    }
    char *text = lss_metrics_render ();
    api_resp_t *r = api_resp_new (&to, text ? 200 : 500);
    if (r && text)
        api_resp_bytes (r, text, strlen (text), "text/plain; version=0.0.4; charset=utf-8");
    else
        free (text);
    s_answer (pss, r);
}

static int s_on_http (api_server_t *self, s_pss_t *pss, struct lws *wsi, const char *path)
{
    s_http_release (self, pss);
    pss->kind = S_HTTP;
    pss->wsi = wsi;
    pss->start_ns = lss_time_mono_ns ();
    pss->close_after = false;
    pss->ticket = api_ctx_next_id (self->ctx);
    pss->listed = false;
    self->in_flight++;
    s_request_id (wsi, pss->request_id);

    char *uri;
    int uri_len;
    int lm = lws_http_get_uri_and_method (wsi, &uri, &uri_len);
    switch (lm) {
    case LWSHUMETH_GET:
        pss->method = API_M_GET;
        break;
    case LWSHUMETH_POST:
        pss->method = API_M_POST;
        break;
    case LWSHUMETH_PUT:
        pss->method = API_M_PUT;
        break;
    case LWSHUMETH_PATCH:
        pss->method = API_M_PATCH;
        break;
    case LWSHUMETH_DELETE:
        pss->method = API_M_DELETE;
        break;
    case LWSHUMETH_HEAD:
        pss->method = API_M_HEAD;
        break;
    case LWSHUMETH_OPTIONS:
        pss->method = API_M_OPTIONS;
        break;
    default:
        pss->method = API_M_OTHER;
        break;
    }

    api_match_t match;
    int route = api_route_match ((api_method_t)pss->method, path ? path : "", &match);
    pss->route = route;
    bool has_body = pss->method == API_M_POST || pss->method == API_M_PUT ||
                    pss->method == API_M_PATCH || pss->method == API_M_DELETE;
    bool cl_present;
    int64_t cl = s_content_length (wsi, &cl_present);
    if (has_body && !cl_present &&
        lws_hdr_total_length (wsi, WSI_TOKEN_HTTP_TRANSFER_ENCODING) > 0) {
        pss->close_after = true; /* the unread body must not be taken for a request */
        s_answer_error (pss, 411, "request bodies need a Content-Length");
        return 0;
    }
    if (cl < 0 || (!has_body && cl > 0)) {
        pss->close_after = true;
        s_answer_error (pss, 400, "bad Content-Length");
        return 0;
    }
    if (route == API_ROUTE_NOT_FOUND) {
        pss->close_after = cl > 0;
        s_answer_error (pss, 404, "no such route");
        return 0;
    }
    if (route == API_ROUTE_BAD_METHOD) {
        pss->close_after = cl > 0;
        api_reply_to_t to = s_to (pss);
        api_resp_t *r = api_resp_error (&to, 405, "method_not_allowed",
                                        "method not allowed on this route", NULL);
        if (r)
            api_resp_header (r, "Allow", "%s", match.allow);
        s_answer (pss, r);
        return 0;
    }
    if (api_route_public (route)) {
        s_public_answer (self, pss);
        return 0;
    }
    if (route == API_R_STREAM) {
        s_answer_error (pss, 400, "this route is a WebSocket: send an Upgrade request");
        return 0;
    }
    size_t limit = route == API_R_FILE_PUT ? self->ctx->max_file : self->ctx->max_body;
    if (cl > (int64_t)limit) {
        pss->close_after = true;
        api_reply_to_t to = s_to (pss);
        s_answer (pss, api_resp_error (&to, 413, "payload_too_large", "request body too large",
                                       json_pack ("{s:I}", "maxBytes", (json_int_t)limit)));
        return 0;
    }
    api_req_t *req = api_req_new (pss->ticket, limit);
    if (!req) {
        s_answer_error (pss, 503, "out of memory");
        return 0;
    }
    req->to = s_to (pss);
    req->method = (api_method_t)pss->method;
    req->match = match;
    req->query = s_query (wsi);
    req->token = s_token (wsi, req->query, false);
    lws_hdr_copy (wsi, req->content_type, sizeof req->content_type,
                  WSI_TOKEN_HTTP_CONTENT_TYPE);
    lws_get_peer_simple (wsi, req->peer, sizeof req->peer);
    if (!has_body || cl == 0) {
        api_resp_t *fast = api_fast_answer (self->ctx, req);
        if (fast) {
            api_msg_destroy (&req->msg);
            s_answer (pss, fast);
            return 0;
        }
    }
    pss->req = req;
    if (has_body && cl > 0)
        return 0; /* wait for HTTP_BODY / HTTP_BODY_COMPLETION */
    s_dispatch (self, pss);
    return 0;
}

static int s_on_body (s_pss_t *pss, const void *in, size_t len)
{
    if (!pss->req)
        return 0;
    if (lss_buf_append (&pss->req->body, in, len)) {
        /* more than Content-Length promised, or memory: refuse and close */
        api_msg_destroy (&pss->req->msg);
        pss->req = NULL;
        pss->close_after = true;
        s_answer_error (pss, 413, "request body too large");
    }
    return 0;
}

//  --------------------------------------------------------------------------
//  WebSocket

/*  True if origin is in the comma-separated allow-list. */
static bool s_origin_allowed (const char *list, const char *origin)
{
    size_t olen = strlen (origin);
    for (const char *p = list; p && *p;) {
        while (*p == ' ' || *p == ',')
            p++;
        const char *e = strchr (p, ',');
        size_t n = e ? (size_t)(e - p) : strlen (p);
        while (n > 0 && p[n - 1] == ' ')
            n--;
        if (n && (n == olen && strncasecmp (p, origin, n) == 0))
            return true;
        if (n == 1 && *p == '*')
            return true;
        p = e ? e + 1 : p + strlen (p);
    }
    return false;
}

/*  An Origin naming this server itself (scheme://<Host header>): the same origin, which
 *  non-browser clients such as websocket-client also send by default. */
static bool s_same_origin (const char *origin, const char *host)
{
    const char *sep = strstr (origin, "://");
    return host[0] && sep && (size_t)(sep - origin) <= 5 && strcasecmp (sep + 3, host) == 0;
}

static int s_ws_filter (api_server_t *self, s_pss_t *pss, struct lws *wsi)
{
    char path[API_ROUTE_PATH_MAX];
    if (lws_hdr_copy (wsi, path, sizeof path, WSI_TOKEN_GET_URI) <= 0)
        return 1;
    api_match_t match;
    if (api_route_match (API_M_GET, path, &match) != API_R_STREAM ||
        strlen (match.id) >= sizeof pss->ws_sandbox)
        return 1;
    char origin[512] = "";
    int on = lws_hdr_total_length (wsi, WSI_TOKEN_ORIGIN);
    if (on > 0) {
        char host[256] = "";
        if (lws_hdr_total_length (wsi, WSI_TOKEN_HOST) < (int)sizeof host)
            lws_hdr_copy (wsi, host, sizeof host, WSI_TOKEN_HOST);
        if (on >= (int)sizeof origin ||
            lws_hdr_copy (wsi, origin, sizeof origin, WSI_TOKEN_ORIGIN) < 0 ||
            (!s_same_origin (origin, host) && !s_origin_allowed (self->ctx->origins, origin))) {
            lss_log_warn ("websocket refused: origin not allowed", "{s:s}", "origin", origin);
            return 1;
        }
    }
    memset (pss, 0, sizeof *pss);
    pss->kind = S_WS;
    pss->wsi = wsi;
    memcpy (pss->ws_sandbox, match.id, strlen (match.id) + 1);
    json_t *q = s_query (wsi);
    pss->ws_token = s_token (wsi, q, true);
    json_decref (q);
    s_request_id (wsi, pss->request_id);
    return 0;
}

static void s_ws_kick (s_pss_t *pss)
{
    if (pss->ws && (api_ws_peek_out (pss->ws) ||
                    api_ws_closing (pss->ws, &(int){0}, &(const char *){NULL})))
        lws_callback_on_writable (pss->wsi);
}

static int s_ws_established (api_server_t *self, s_pss_t *pss)
{
    uint64_t conn = api_ctx_next_id (self->ctx);
    pss->ws = api_ws_new (self->ctx, conn, pss->ws_sandbox, &pss->ws_token, pss->request_id);
    if (!pss->ws)
        return -1;
    lss_buf_init (&pss->rx, self->ctx->ws_max_frame);
    char key[17];
    s_key (conn, key);
    zhashx_insert (self->conns, key, pss);
    lss_metric_inc (self->m_ws, 1);
    api_ws_start (pss->ws);
    s_ws_kick (pss);
    return 0;
}

static void s_ws_closed (api_server_t *self, s_pss_t *pss)
{
    if (pss->ws) {
        char key[17];
        s_key (api_ws_conn_id (pss->ws), key);
        zhashx_delete (self->conns, key);
        api_ws_destroy (&pss->ws);
        lss_metric_inc (self->m_ws, -1);
    }
    free (pss->ws_token);
    pss->ws_token = NULL;
    lss_buf_free (&pss->rx);
}

static int s_ws_receive (s_pss_t *pss, struct lws *wsi, const void *in, size_t len)
{
    if (!pss->ws)
        return -1;
    if (lws_is_first_fragment (wsi)) {
        lss_buf_reset (&pss->rx);
        pss->rx_binary = lws_frame_is_binary (wsi);
        pss->rx_oversize = false;
    }
    if (!pss->rx_oversize && lss_buf_append (&pss->rx, in, len))
        pss->rx_oversize = true;
    if (lws_is_final_fragment (wsi) && !lws_remaining_packet_payload (wsi)) {
        if (pss->rx_oversize)
            api_ws_on_oversize (pss->ws);
        else
            api_ws_on_message (pss->ws, (const char *)pss->rx.data, pss->rx.len,
                               pss->rx_binary);
        lss_buf_reset (&pss->rx);
    }
    s_ws_kick (pss);
    return 0;
}

static int s_ws_writeable (s_pss_t *pss, struct lws *wsi)
{
    if (!pss->ws)
        return -1;
    api_ws_frame_t *f = api_ws_peek_out (pss->ws);
    if (f) {
        if (lws_write (wsi, (unsigned char *)f->text, f->len, LWS_WRITE_TEXT) < (int)f->len)
            return -1;
        api_ws_written (pss->ws, lss_time_mono_ms ());
        if (api_ws_peek_out (pss->ws)) {
            lws_callback_on_writable (wsi);
            return 0;
        }
    }
    int status;
    const char *reason;
    if (api_ws_closing (pss->ws, &status, &reason)) {
        lws_close_reason (wsi, (enum lws_close_status)status, (unsigned char *)reason,
                          strlen (reason));
        return -1;
    }
    return 0;
}

//  --------------------------------------------------------------------------
//  Mail from the other threads

static s_pss_t *s_find (zhashx_t *table, uint64_t id)
{
    char key[17];
    s_key (id, key);
    return zhashx_lookup (table, key);
}

static void s_drain (api_server_t *self)
{
    api_msg_t *list = api_mailbox_take_all (self->ctx->lws_inbox);
    while (list) {
        api_msg_t *m = list;
        list = m->next;
        m->next = NULL;
        switch (m->type) {
        case API_MSG_HTTP_RESP: {
            api_resp_t *r = (api_resp_t *)m;
            s_pss_t *pss = s_find (self->tickets, r->ticket);
            if (pss && pss->kind == S_HTTP && !pss->resp) {
                s_answer (pss, r);
                m = NULL;
            }
            break;
        }
        case API_MSG_WS_AUTH_DONE: {
            api_ws_auth_done_t *a = (api_ws_auth_done_t *)m;
            s_pss_t *pss = s_find (self->conns, a->conn_id);
            if (pss && pss->ws) {
                api_ws_on_auth (pss->ws, a);
                s_ws_kick (pss);
            }
            break;
        }
        case API_MSG_WS_ADMIT_DONE: {
            api_ws_admit_t *a = (api_ws_admit_t *)m;
            s_pss_t *pss = s_find (self->conns, a->conn_id);
            if (pss && pss->ws) {
                api_ws_on_admit (pss->ws, a);
                s_ws_kick (pss);
            }
            break;
        }
        case API_MSG_WS_FRAME: {
            api_ws_frame_t *f = (api_ws_frame_t *)m;
            s_pss_t *pss = s_find (self->conns, f->conn_id);
            if (pss && pss->ws) {
                api_ws_on_frame (pss->ws, f);
                m = NULL;
                s_ws_kick (pss);
            }
            break;
        }
        default:
            break;
        }
        api_msg_destroy (m);
    }
}

static void s_tick (lws_sorted_usec_list_t *sul)
{
    api_server_t *self = lws_container_of (sul, api_server_t, tick);
    int64_t now = lss_time_mono_ms ();
    for (s_pss_t *pss = zhashx_first (self->conns); pss; pss = zhashx_next (self->conns)) {
        if (pss->ws && api_ws_stalled_ms (pss->ws, now) > self->ctx->ws_send_timeout_ms) {
            lss_log_warn ("websocket client not reading: disconnected", "{s:I, s:s}",
                          "queued_bytes", (json_int_t)api_ws_out_bytes (pss->ws), "trace",
                          pss->request_id);
            lws_set_timeout (pss->wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_ASYNC);
        }
    }
    lss_metric_set (self->m_conns, (double)self->in_flight);
    lws_sul_schedule (self->context, 0, &self->tick, s_tick, S_TICK_US);
}

//  --------------------------------------------------------------------------
//  The callback

static int s_callback (struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                       size_t len)
{
    struct lws_context *lc = wsi ? lws_get_context (wsi) : NULL;
    api_server_t *self = lc ? lws_context_user (lc) : NULL;
    s_pss_t *pss = user;
    switch (reason) {
    case LWS_CALLBACK_EVENT_WAIT_CANCELLED:
        if (self)
            s_drain (self);
        return 0;
    case LWS_CALLBACK_HTTP:
        return pss && self ? s_on_http (self, pss, wsi, in) : -1;
    case LWS_CALLBACK_HTTP_BODY:
        return pss ? s_on_body (pss, in, len) : -1;
    case LWS_CALLBACK_HTTP_BODY_COMPLETION:
        if (pss && self && pss->req)
            s_dispatch (self, pss);
        return 0;
    case LWS_CALLBACK_HTTP_WRITEABLE:
        return pss && self ? s_on_http_writeable (self, pss) : -1;
    case LWS_CALLBACK_CLOSED_HTTP:
    case LWS_CALLBACK_HTTP_DROP_PROTOCOL:
        if (pss && self && pss->kind == S_HTTP)
            s_http_release (self, pss);
        break;
    case LWS_CALLBACK_FILTER_PROTOCOL_CONNECTION:
        return pss && self ? s_ws_filter (self, pss, wsi) : 1;
    case LWS_CALLBACK_ESTABLISHED:
        return pss && self ? s_ws_established (self, pss) : -1;
    case LWS_CALLBACK_RECEIVE:
        return pss ? s_ws_receive (pss, wsi, in, len) : -1;
    case LWS_CALLBACK_SERVER_WRITEABLE:
        return pss ? s_ws_writeable (pss, wsi) : -1;
    case LWS_CALLBACK_CLOSED:
        if (pss && self)
            s_ws_closed (self, pss);
        return 0;
    default:
        break;
    }
    return lws_callback_http_dummy (wsi, reason, user, in, len);
}

//  --------------------------------------------------------------------------
//  Construction

api_server_t *api_server_new (api_ctx_t *ctx)
{
    char host[256], iface[INET6_ADDRSTRLEN];
    int port;
    bool ipv6 = false;
    if (lss_listen_parse (ctx->listen, host, sizeof host, &port) ||
        (*host && lss_resolve_numeric (host, iface, sizeof iface, &ipv6))) {
        lss_log_error ("api listen address invalid", "{s:s}", "listen", ctx->listen);
        return NULL;
    }
    api_server_t *self = calloc (1, sizeof *self);
    if (!self)
        return NULL;
    self->ctx = ctx;
    self->tickets = zhashx_new ();
    self->conns = zhashx_new ();
    ctx->lws_inbox = api_mailbox_new (SIZE_MAX, s_wake, self);
    if (!self->tickets || !self->conns || !ctx->lws_inbox)
        goto fail;
    self->m_requests =
        lss_metrics_counter ("lss_api_requests_total",
                             "API requests by route, method and status.", "route,method,code");
    self->m_latency =
        lss_metrics_histogram ("lss_api_request_seconds",
                               "API request latency, arrival to last byte.", "route", NULL, 0);
    self->m_ws = lss_metrics_gauge ("lss_api_websocket_connections",
                                    "WebSocket stream connections open.", NULL);
    self->m_conns = lss_metrics_gauge ("lss_api_http_requests_in_flight",
                                       "HTTP requests being served.", NULL);
    self->protocols[0] = (struct lws_protocols){
        .name = "lss-api",
        .callback = s_callback,
        .per_session_data_size = sizeof (s_pss_t),
        .rx_buffer_size = 65536,
        .tx_packet_size = API_WS_TX_PACKET,
    };
    int64_t ping_s = ctx->ws_ping_ms / 1000;
    self->retry = (lws_retry_bo_t){
        .secs_since_valid_ping = (uint16_t)(ping_s > 0 ? ping_s : 1),
        .secs_since_valid_hangup = (uint16_t)(ping_s > 0 ? 2 * ping_s + 1 : 3),
    };

    lws_set_log_level (LLL_ERR, s_lws_log);
    struct lws_context_creation_info info;
    memset (&info, 0, sizeof info);
    info.options = LWS_SERVER_OPTION_EXPLICIT_VHOSTS | LWS_SERVER_OPTION_VALIDATE_UTF8;
    info.gid = -1;
    info.uid = -1;
    info.user = self;
    info.server_string = "lss-api";
    info.fd_limit_per_thread = (unsigned)ctx->max_connections + 64;
    struct rlimit rl;
    if (getrlimit (RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < info.fd_limit_per_thread)
        info.fd_limit_per_thread = (unsigned)rl.rlim_cur;
    self->context = lws_create_context (&info);
    if (!self->context) {
        lss_log_error ("api endpoint cannot start", "{s:s}", "listen", ctx->listen);
        goto fail;
    }
    info.port = port;
    info.iface = *host ? iface : NULL;
    info.protocols = self->protocols;
    info.vhost_name = "lss-api";
    info.keepalive_timeout = 30;
    info.timeout_secs = 30;
    info.retry_and_idle_policy = &self->retry;
    if (*host && !ipv6)
        info.options |= LWS_SERVER_OPTION_DISABLE_IPV6;
    self->vhost = lws_create_vhost (self->context, &info);
    if (!self->vhost) {
        lss_log_error ("api endpoint cannot listen (port in use?)", "{s:s}", "listen",
                       ctx->listen);
        goto fail;
    }
    self->port = lws_get_vhost_listen_port (self->vhost);
    return self;
fail:
    api_server_destroy (&self);
    return NULL;
}

int api_server_port (const api_server_t *self)
{
    return self->port;
}

void api_server_run (api_server_t *self, lss_service_t *svc)
{
    self->svc = svc;
    lws_sul_schedule (self->context, 0, &self->tick, s_tick, S_TICK_US);
    while (!lss_service_stopping (svc)) {
        if (lws_service (self->context, 0) < 0)
            break;
        lss_service_heartbeat (svc);
    }
    lws_sul_cancel (&self->tick);
}

void api_server_destroy (api_server_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    api_server_t *self = *self_p;
    if (self->context)
        lws_context_destroy (self->context); /* closes every connection: CLOSED callbacks */
    self->context = NULL;
    api_mailbox_destroy (&self->ctx->lws_inbox);
    zhashx_destroy (&self->tickets);
    api_fast_cleanup ();
    zhashx_destroy (&self->conns);
    free (self);
    *self_p = NULL;
}
