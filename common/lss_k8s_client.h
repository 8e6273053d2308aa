/*  lss_k8s_client — HTTP requests to the Kubernetes API server (libcurl, jansson).
 *
 *  One client per store: a reused libcurl easy handle for the synchronous requests
 *  (keep-alive to the server), TLS and bearer-token or client-certificate auth from an
 *  lss_k8s_conf_t, JSON in and out, bounded response sizes, the Kubernetes error mapping
 *  and retries. Watches (lss_store_k8s_watch.c) take a reference and configure their own
 *  easy handles through lss_k8s_client_setup, so the token-file cache is shared (and
 *  guarded by a mutex: a watch may live on another thread than its store).
 *
 *  Error mapping: 2xx → LSS_STORE_OK; 404 → NOT_FOUND; 409 → CONFLICT; 410 → GONE;
 *  400, 413 and 422 → INVALID; 401, 403, other statuses, connection errors, timeouts and
 *  undecodable bodies → UNAVAILABLE. err gets the server's Status message when there is
 *  one. 429 and 5xx are retried up to conf.max_retries times, waiting Retry-After seconds
 *  when the server sends it (capped at conf.retry_max_wait_ms), else 200 ms doubling
 *  with jitter (capped at 5 s); a 401 with a token file re-reads the file and tries once
 *  more. Every failure is logged once with the verb, path and status (404 and 409, which
 *  are routine answers, at debug level).
 */
#ifndef LSS_K8S_CLIENT_H
#define LSS_K8S_CLIENT_H

#include <curl/curl.h>
#include <jansson.h>
#include <stdbool.h>

#include "lss_k8s_conf.h"

typedef struct _lss_k8s_client_t lss_k8s_client_t;

#define LSS_K8S_CONTENT_JSON  "application/json"
#define LSS_K8S_CONTENT_MERGE "application/merge-patch+json"

/*  Takes over conf's contents (conf is zeroed, limits kept). Returns NULL with a message
 *  if libcurl cannot be set up. */
lss_k8s_client_t *lss_k8s_client_new (lss_k8s_conf_t *conf, char *err, size_t err_size);
/*  Another reference (for a watch); release with lss_k8s_client_destroy. */
lss_k8s_client_t *lss_k8s_client_ref (lss_k8s_client_t *self);
/*  Drops one reference; the last one frees. NULLs *self_p. Safe on NULL. */
void lss_k8s_client_destroy (lss_k8s_client_t **self_p);

/*  The configuration in use (borrowed). */
const lss_k8s_conf_t *lss_k8s_client_conf (const lss_k8s_client_t *self);

/*  One request, synchronous, retried as above. method "GET" | "POST" | "PUT" | "PATCH" |
 *  "DELETE"; path starts with '/' and carries its query string; body (borrowed, may be
 *  NULL) is sent as JSON with content_type (NULL = application/json). On LSS_STORE_OK
 *  *out (may be NULL) receives the decoded body (caller owns; a JSON object). On failure
 *  returns an LSS_STORE_* code with a message in err; *out is NULL. Not for watches. */
int lss_k8s_client_request (lss_k8s_client_t *self, const char *method, const char *path,
                            const json_t *body, const char *content_type, json_t **out,
                            char *err, size_t err_size);

/*  Prepares easy for a request to path on the server: URL, TLS, auth header (into
 *  *headers, which the caller frees with curl_slist_free_all after the transfer),
 *  Accept: application/json, connect timeout, no signals, TCP keep-alive. Returns 0 or
 *  -1 with a message. */
int lss_k8s_client_setup (lss_k8s_client_t *self, CURL *easy, const char *path,
                          struct curl_slist **headers, char *err, size_t err_size);

/*  Maps an HTTP status and its (possibly NULL) decoded body to an LSS_STORE_* code and
 *  writes "what: <Status message or HTTP status>" into err. */
int lss_k8s_map_status (long http_status, const json_t *body, const char *what, char *err,
                        size_t err_size);

#endif
