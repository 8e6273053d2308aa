/*  api_http — requests and responses as they travel between the api's threads.
 *
 *  The libwebsockets thread turns each HTTP request into an api_req_t (route, captures,
 *  query, credentials, body) and posts it to the workers; whoever finishes it (a
 *  worker, the exec bridge or the events thread) posts an api_resp_t back, addressed by
 *  the request's ticket. The response carries the status, body and extra headers; the
 *  lws thread adds X-Request-ID, Content-Length and the common headers when it writes
 *  it. An api_reply_to_t is the part of a request a later producer needs to answer it
 *  (ticket, rate-limit headers, route, start time), small enough to copy.
 *
 *  Error bodies always have the envelope {"error":{"code","message","details"?}}; a 500
 *  never carries internals (the cause is logged with the request id instead).
 */
#ifndef API_HTTP_H
#define API_HTTP_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "api_mailbox.h"
#include "api_redis.h"
#include "api_route.h"
#include "lss_util.h"

#define API_REQUEST_ID_MAX   64 /* bytes of an X-Request-ID we accept or make */
#define API_RESP_HEADERS_MAX 8
#define API_HEADER_NAME_MAX  48
#define API_TOKEN_MAX        8192
#define API_QUERY_MAX_PARAMS 32

enum {
    API_MSG_HTTP_REQ = 1,
    API_MSG_HTTP_RESP,
};

typedef struct {
    uint64_t ticket;
    int route;
    bool has_rl;
    api_rl_result_t rl;
    char request_id[API_REQUEST_ID_MAX + 1];
} api_reply_to_t;

typedef struct {
    char name[API_HEADER_NAME_MAX];
    char *value;
} api_header_t;

typedef struct {
    api_msg_t msg; /* API_MSG_HTTP_RESP */
    uint64_t ticket;
    int status;
    char content_type[96];
    char *body; /* heap, may be NULL */
    size_t len;
    api_header_t headers[API_RESP_HEADERS_MAX];
    int nheaders;
} api_resp_t;

typedef struct {
    api_msg_t msg; /* API_MSG_HTTP_REQ */
    api_reply_to_t to;
    api_method_t method;
    api_match_t match;
    char *token;   /* bearer token or ?token=, heap, NULL if none */
    json_t *query; /* {name: value} of the query string (first value of a name wins) */
    lss_buf_t body;
    char content_type[128];
    char peer[64]; /* client address, for logs */
} api_req_t;

/*  A new request for ticket (zeroed; body capped at max_body). NULL on OOM. */
api_req_t *api_req_new (uint64_t ticket, size_t max_body);
void api_req_destroy (api_msg_t *msg);
/*  The query parameter name (borrowed), or NULL. */
const char *api_req_query (const api_req_t *req, const char *name);

/*  A new response to `to` with status and no body; the rate-limit headers of `to` are
 *  added. NULL on OOM. */
api_resp_t *api_resp_new (const api_reply_to_t *to, int status);
void api_resp_destroy (api_msg_t *msg);
/*  Adds a header (value formatted). 0, or -1 if full / too long. */
int api_resp_header (api_resp_t *self, const char *name, const char *fmt, ...)
    __attribute__ ((format (printf, 3, 4)));
/*  Adds a header with a decimal integer value (no formatting machinery). 0 or -1. */
int api_resp_header_int (api_resp_t *self, const char *name, int64_t v);
/*  Sets a JSON body (stolen; compact; Content-Type application/json). 0 or -1. */
int api_resp_json (api_resp_t *self, json_t *body);
/*  Sets a raw body (data stolen, freed with free()). */
void api_resp_bytes (api_resp_t *self, char *data, size_t len, const char *content_type);

/*  A JSON response to `to` (body stolen). Never NULL unless out of memory. */
api_resp_t *api_resp_with_json (const api_reply_to_t *to, int status, json_t *body);
/*  An error response: {"error":{"code","message","details"}} (details stolen, may be
 *  NULL). Never NULL unless out of memory. */
api_resp_t *api_resp_error (const api_reply_to_t *to, int status, const char *code,
                            const char *message, json_t *details);
/*  A 400 invalid_request with details.fields = fields (stolen; an object of
 *  field → message). */
api_resp_t *api_resp_invalid (const api_reply_to_t *to, const char *message, json_t *fields);
/*  A 500 internal_error; what is logged (with the request id), never sent. */
api_resp_t *api_resp_internal (const api_reply_to_t *to, const char *what);

/*  The error code API.md uses for an HTTP status ("not_found", ...). */
const char *api_http_error_code (int status);

/*  True if text is a valid X-Request-ID to echo: 1..API_REQUEST_ID_MAX bytes of
 *  [A-Za-z0-9._:-]. */
bool api_request_id_valid (const char *text);

#endif
