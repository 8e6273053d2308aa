/*  api_route — the edge API's route table: method + path → route id and parameters.
 *
 *  Pure logic (no I/O): the lws thread calls it on every request, the tests call it
 *  directly. Paths are matched segment by segment against fixed patterns; a "{id}"
 *  segment captures one path segment, a trailing "{path+}" captures the rest (files).
 *  A path that matches some pattern but not with this method is API_ROUTE_BAD_METHOD
 *  (405, with the methods that would work in `allow`); no pattern at all is
 *  API_ROUTE_NOT_FOUND (404). An {id} capture never holds an empty, "." or ".." segment
 *  (no match). A {path+} capture is handed over as it is: the file handlers refuse
 *  escapes themselves (403), so that a traversal attempt is answered as one.
 */
#ifndef API_ROUTE_H
#define API_ROUTE_H

#include <stdbool.h>
#include <stddef.h>

#define API_ROUTE_PARAM_MAX 4096 /* bytes of one captured parameter, NUL included */
#define API_ROUTE_PATH_MAX  8192 /* longest path matched */

typedef enum {
    API_ROUTE_NOT_FOUND = -1,
    API_ROUTE_BAD_METHOD = -2,
    API_R_HEALTH = 0,
    API_R_READY,
    API_R_METRICS,
    API_R_AUTH_TOKEN_CREATE,
    API_R_AUTH_TOKEN_REVOKE,
    API_R_SANDBOX_LIST,
    API_R_SANDBOX_CREATE,
    API_R_SANDBOX_GET,
    API_R_SANDBOX_DELETE,
    API_R_SANDBOX_STATUS,
    API_R_SANDBOX_EXECUTE,
    API_R_SANDBOX_EXECUTIONS,
    API_R_FILES_LIST,
    API_R_FILE_GET,
    API_R_FILE_PUT,
    API_R_FILE_DELETE,
    API_R_PACKAGES,
    API_R_STREAM,
    API_R_WARMPOOL_LIST,
    API_R_WARMPOOL_CREATE,
    API_R_WARMPOOLS_STATUS,
    API_R_WARMPOOL_GET,
    API_R_WARMPOOL_PATCH,
    API_R_WARMPOOL_DELETE,
    API_R_WARMPOOL_STATUS,
    API_R_RUNTIME_LIST,
    API_R_RUNTIME_GET,
    API_R_PROFILE_LIST,
    API_R_PROFILE_GET,
    API_R_USER_GET,
    API_R_APIKEY_LIST,
    API_R_APIKEY_CREATE,
    API_R_APIKEY_DELETE,
    API_R_USER_CREATE,
    API_R_COUNT
} api_route_id_t;

typedef enum {
    API_M_GET,
    API_M_POST,
    API_M_PUT,
    API_M_PATCH,
    API_M_DELETE,
    API_M_HEAD,
    API_M_OPTIONS,
    API_M_OTHER
} api_method_t;

typedef struct {
    api_route_id_t route;
    char id[256];                   /* the {id} / {name} segment, "" if none */
    char path[API_ROUTE_PARAM_MAX]; /* the {path+} rest, without a leading '/', "" if none */
    char allow[64];                 /* on API_ROUTE_BAD_METHOD: "GET, POST" */
} api_match_t;

/*  Matches method and path (the URL path only, no query; already percent-decoded).
 *  Returns the route id (also in m->route) or API_ROUTE_NOT_FOUND / API_ROUTE_BAD_METHOD.
 *  A trailing '/' is ignored. HEAD matches what GET matches. */
api_route_id_t api_route_match (api_method_t method, const char *path, api_match_t *m);

/*  The method from its name ("GET", ...), API_M_OTHER for anything else. */
api_method_t api_method_parse (const char *name);
const char *api_method_name (api_method_t method);

/*  The route's pattern ("/api/v1/sandboxes/{id}") for metrics labels and logs; "other"
 *  for negative ids. Borrowed, static. */
const char *api_route_pattern (int route);

/*  True if the route needs no credentials (health, ready, metrics). */
bool api_route_public (int route);

/*  The rate-limit class of a route: "default", "create_sandbox" or "execute_code";
 *  NULL for routes that are not rate-limited (public ones). */
const char *api_route_rate_class (int route);

#endif
