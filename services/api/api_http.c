/*  api_http — request and response objects. See api_http.h.
 */
#include "api_http.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lss_log.h"

api_req_t *api_req_new (uint64_t ticket, size_t max_body)
{
    api_req_t *self = calloc (1, sizeof *self);
    if (!self)
        return NULL;
    self->msg.type = API_MSG_HTTP_REQ;
    self->msg.destroy = api_req_destroy;
    self->to.ticket = ticket;
    self->to.route = API_ROUTE_NOT_FOUND;
    lss_buf_init (&self->body, max_body);
    return self;
}

void api_req_destroy (api_msg_t *msg)
{
    api_req_t *self = (api_req_t *)msg;
    if (!self)
        return;
    free (self->token);
    json_decref (self->query);
    lss_buf_free (&self->body);
    free (self);
}

const char *api_req_query (const api_req_t *req, const char *name)
{
    return req->query ? json_string_value (json_object_get (req->query, name)) : NULL;
}

api_resp_t *api_resp_new (const api_reply_to_t *to, int status)
{
    api_resp_t *self = calloc (1, sizeof *self);
    if (!self)
        return NULL;
    self->msg.type = API_MSG_HTTP_RESP;
    self->msg.destroy = api_resp_destroy;
    self->ticket = to ? to->ticket : 0;
    self->status = status;
    if (to && to->has_rl) {
        api_resp_header_int (self, "X-RateLimit-Limit", to->rl.limit);
        api_resp_header_int (self, "X-RateLimit-Remaining", to->rl.remaining);
        api_resp_header_int (self, "X-RateLimit-Reset", to->rl.reset_s);
    }
    return self;
}

int api_resp_header_int (api_resp_t *self, const char *name, int64_t v)
{
    size_t nlen = strlen (name);
    if (self->nheaders >= API_RESP_HEADERS_MAX || nlen >= API_HEADER_NAME_MAX)
        return -1;
    char digits[24], *p = digits + sizeof digits;
    uint64_t u = v < 0 ? 0 - (uint64_t)v : (uint64_t)v;
    *--p = '\0';
    do
        *--p = (char)('0' + u % 10);
    while ((u /= 10) > 0);
    if (v < 0)
        *--p = '-';
    char *value = strdup (p);
    if (!value)
        return -1;
    api_header_t *h = &self->headers[self->nheaders++];
    memcpy (h->name, name, nlen + 1);
    h->value = value;
    return 0;
}

void api_resp_destroy (api_msg_t *msg)
{
    api_resp_t *self = (api_resp_t *)msg;
    if (!self)
        return;
    for (int i = 0; i < self->nheaders; i++)
        free (self->headers[i].value);
    free (self->body);
    free (self);
}

int api_resp_header (api_resp_t *self, const char *name, const char *fmt, ...)
{
    if (self->nheaders >= API_RESP_HEADERS_MAX || strlen (name) >= API_HEADER_NAME_MAX)
        return -1;
    va_list ap;
    va_start (ap, fmt);
    char *value = NULL;
    int n = vasprintf (&value, fmt, ap);
    va_end (ap);
    if (n < 0)
        return -1;
    /* header values never carry line breaks (no response splitting) */
    for (char *p = value; *p; p++)
        if (*p == '\r' || *p == '\n')
            *p = ' ';
    api_header_t *h = &self->headers[self->nheaders++];
    snprintf (h->name, sizeof h->name, "%s", name);
    h->value = value;
    return 0;
}

int api_resp_json (api_resp_t *self, json_t *body)
{
    if (!body)
        return -1;
    char *text = json_dumps (body, JSON_COMPACT);
    json_decref (body);
    if (!text)
        return -1;
    api_resp_bytes (self, text, strlen (text), "application/json");
    return 0;
}

void api_resp_bytes (api_resp_t *self, char *data, size_t len, const char *content_type)
{
    free (self->body);
    self->body = data;
    self->len = len;
    snprintf (self->content_type, sizeof self->content_type, "%s",
              content_type ? content_type : "application/octet-stream");
}

api_resp_t *api_resp_with_json (const api_reply_to_t *to, int status, json_t *body)
{
    api_resp_t *self = api_resp_new (to, status);
    if (!self) {
        json_decref (body);
        return NULL;
    }
    if (api_resp_json (self, body)) {
        static const char oom[] =
            "{\"error\":{\"code\":\"internal_error\",\"message\":\"out of memory\"}}";
        self->status = 500;
        char *copy = strdup (oom);
        api_resp_bytes (self, copy, copy ? sizeof oom - 1 : 0, "application/json");
    }
    return self;
}

const char *api_http_error_code (int status)
{
    switch (status) {
    case 400:
        return "invalid_request";
    case 401:
        return "unauthorized";
    case 403:
        return "forbidden";
    case 404:
        return "not_found";
    case 405:
        return "method_not_allowed";
    case 409:
        return "conflict";
    case 411:
        return "length_required";
    case 413:
        return "payload_too_large";
    case 429:
        return "rate_limited";
    case 503:
        return "service_unavailable";
    default:
        return status >= 500 ? "internal_error" : "invalid_request";
    }
}

api_resp_t *api_resp_error (const api_reply_to_t *to, int status, const char *code,
                            const char *message, json_t *details)
{
    json_t *err = json_pack ("{s:s, s:s}", "code", code ? code : api_http_error_code (status),
                             "message", message ? message : "");
    if (err && details)
        json_object_set_new (err, "details", details);
    else
        json_decref (details);
    return api_resp_with_json (to, status, err ? json_pack ("{s:o}", "error", err) : NULL);
}

api_resp_t *api_resp_invalid (const api_reply_to_t *to, const char *message, json_t *fields)
{
    json_t *details = json_object ();
    if (details && fields)
        json_object_set_new (details, "fields", fields);
    else
        json_decref (fields);
    return api_resp_error (to, 400, "invalid_request", message, details);
}

api_resp_t *api_resp_internal (const api_reply_to_t *to, const char *what)
{
    lss_log_error ("internal error", "{s:s, s:s, s:s}", "detail", what ? what : "", "route",
                   api_route_pattern (to ? to->route : -1), "trace", to ? to->request_id : "");
    return api_resp_error (to, 500, "internal_error",
                           "internal error (see the server log for this request id)", NULL);
}

bool api_request_id_valid (const char *text)
{
    if (!text)
        return false;
    size_t n = strlen (text);
    if (n == 0 || n > API_REQUEST_ID_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = text[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == ':' || c == '-'))
            return false;
    }
    return true;
}
