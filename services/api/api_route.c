/*  api_route — route table and matcher. See api_route.h.
 *
 *  The table is small (under 40 routes), so matching walks it linearly; each pattern is
 *  split once into segments at first use. Cost per request: a few dozen string
 *  compares, no allocation.
 */
#include "api_route.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#define S_SEG_MAX 8

typedef struct {
    api_route_id_t id;
    api_method_t method;
    const char *pattern;
    const char *rate_class; /* NULL: not rate-limited */
} s_route_t;

static const s_route_t s_routes[] = {
    {API_R_HEALTH, API_M_GET, "/health", NULL},
    {API_R_HEALTH, API_M_GET, "/api/v1/health", NULL},
    {API_R_READY, API_M_GET, "/ready", NULL},
    {API_R_READY, API_M_GET, "/api/v1/ready", NULL},
    {API_R_METRICS, API_M_GET, "/metrics", NULL},
    {API_R_METRICS, API_M_GET, "/api/v1/metrics", NULL},
    {API_R_AUTH_TOKEN_CREATE, API_M_POST, "/api/v1/auth/token", "default"},
    {API_R_AUTH_TOKEN_REVOKE, API_M_DELETE, "/api/v1/auth/token", "default"},
    {API_R_SANDBOX_LIST, API_M_GET, "/api/v1/sandboxes", "default"},
    {API_R_SANDBOX_CREATE, API_M_POST, "/api/v1/sandboxes", "create_sandbox"},
    {API_R_SANDBOX_GET, API_M_GET, "/api/v1/sandboxes/{id}", "default"},
    {API_R_SANDBOX_DELETE, API_M_DELETE, "/api/v1/sandboxes/{id}", "default"},
    {API_R_SANDBOX_STATUS, API_M_GET, "/api/v1/sandboxes/{id}/status", "default"},
    {API_R_SANDBOX_EXECUTE, API_M_POST, "/api/v1/sandboxes/{id}/execute", "execute_code"},
    {API_R_SANDBOX_EXECUTIONS, API_M_GET, "/api/v1/sandboxes/{id}/executions", "default"},
    {API_R_FILES_LIST, API_M_GET, "/api/v1/sandboxes/{id}/files", "default"},
    {API_R_FILE_GET, API_M_GET, "/api/v1/sandboxes/{id}/files/{path+}", "default"},
    {API_R_FILE_PUT, API_M_PUT, "/api/v1/sandboxes/{id}/files/{path+}", "default"},
    {API_R_FILE_DELETE, API_M_DELETE, "/api/v1/sandboxes/{id}/files/{path+}", "default"},
    {API_R_PACKAGES, API_M_POST, "/api/v1/sandboxes/{id}/packages", "execute_code"},
    {API_R_STREAM, API_M_GET, "/api/v1/sandboxes/{id}/stream", "default"},
    {API_R_WARMPOOLS_STATUS, API_M_GET, "/api/v1/warmpools/status", "default"},
    {API_R_WARMPOOL_LIST, API_M_GET, "/api/v1/warmpools", "default"},
    {API_R_WARMPOOL_CREATE, API_M_POST, "/api/v1/warmpools", "default"},
    {API_R_WARMPOOL_GET, API_M_GET, "/api/v1/warmpools/{id}", "default"},
    {API_R_WARMPOOL_PATCH, API_M_PATCH, "/api/v1/warmpools/{id}", "default"},
    {API_R_WARMPOOL_DELETE, API_M_DELETE, "/api/v1/warmpools/{id}", "default"},
    {API_R_WARMPOOL_STATUS, API_M_GET, "/api/v1/warmpools/{id}/status", "default"},
    {API_R_RUNTIME_LIST, API_M_GET, "/api/v1/runtimes", "default"},
    {API_R_RUNTIME_GET, API_M_GET, "/api/v1/runtimes/{id}", "default"},
    {API_R_PROFILE_LIST, API_M_GET, "/api/v1/profiles", "default"},
    {API_R_PROFILE_GET, API_M_GET, "/api/v1/profiles/{id}", "default"},
    {API_R_USER_GET, API_M_GET, "/api/v1/user", "default"},
    {API_R_APIKEY_LIST, API_M_GET, "/api/v1/user/apikeys", "default"},
    {API_R_APIKEY_CREATE, API_M_POST, "/api/v1/user/apikeys", "default"},
    {API_R_APIKEY_DELETE, API_M_DELETE, "/api/v1/user/apikeys/{id}", "default"},
    {API_R_USER_CREATE, API_M_POST, "/api/v1/users", "default"},
};
#define S_ROUTE_COUNT (sizeof s_routes / sizeof s_routes[0])

/* The pattern of each route id (the first entry with that id). */
static const char *s_pattern_of[API_R_COUNT];
static const char *s_class_of[API_R_COUNT];
static pthread_once_t s_once = PTHREAD_ONCE_INIT;

static void s_init (void)
{
    for (size_t i = S_ROUTE_COUNT; i-- > 0;) {
        /* walk backwards so that the first entry of an id wins; health and friends
           report their short form */
        s_pattern_of[s_routes[i].id] = s_routes[i].pattern;
        s_class_of[s_routes[i].id] = s_routes[i].rate_class;
    }
}

static const char *const s_method_names[] = {"GET",    "POST", "PUT",     "PATCH",
                                             "DELETE", "HEAD", "OPTIONS", "OTHER"};

api_method_t api_method_parse (const char *name)
{
    for (int m = API_M_GET; m < API_M_OTHER; m++)
        if (name && strcmp (name, s_method_names[m]) == 0)
            return (api_method_t)m;
    return API_M_OTHER;
}

const char *api_method_name (api_method_t method)
{
    return method >= API_M_GET && method <= API_M_OTHER ? s_method_names[method] : "OTHER";
}

const char *api_route_pattern (int route)
{
    pthread_once (&s_once, s_init);
    return route >= 0 && route < API_R_COUNT && s_pattern_of[route] ? s_pattern_of[route]
                                                                    : "other";
}

bool api_route_public (int route)
{
    return route == API_R_HEALTH || route == API_R_READY || route == API_R_METRICS;
}

const char *api_route_rate_class (int route)
{
    pthread_once (&s_once, s_init);
    return route >= 0 && route < API_R_COUNT ? s_class_of[route] : NULL;
}

/*  Matches one pattern against path. Returns true and fills id/path captures. */
static bool s_match (const char *pattern, const char *path, api_match_t *m)
{
    const char *p = pattern, *s = path;
    m->id[0] = '\0';
    m->path[0] = '\0';
    while (*p) {
        if (*p != '/' || *s != '/')
            return false;
        p++;
        s++;
        const char *pend = strchr (p, '/');
        size_t plen = pend ? (size_t)(pend - p) : strlen (p);
        const char *send = strchr (s, '/');
        size_t slen = send ? (size_t)(send - s) : strlen (s);
        if (plen == 7 && strncmp (p, "{path+}", 7) == 0) {
            size_t rest = strlen (s);
            if (rest == 0 || rest >= sizeof m->path)
                return false;
            memcpy (m->path, s, rest + 1);
            return true;
        }
        if (plen == 4 && strncmp (p, "{id}", 4) == 0) {
            if (slen == 0 || slen >= sizeof m->id || (slen == 1 && s[0] == '.') ||
                (slen == 2 && s[0] == '.' && s[1] == '.'))
                return false;
            memcpy (m->id, s, slen);
            m->id[slen] = '\0';
        } else if (plen != slen || strncmp (p, s, plen) != 0)
            return false;
        p += plen;
        s += slen;
    }
    return *s == '\0';
}

api_route_id_t api_route_match (api_method_t method, const char *path, api_match_t *m)
{
    pthread_once (&s_once, s_init);
    memset (m, 0, sizeof *m);
    m->route = API_ROUTE_NOT_FOUND;
    if (!path || path[0] != '/')
        return API_ROUTE_NOT_FOUND;
    size_t len = strlen (path);
    if (len >= API_ROUTE_PATH_MAX)
        return API_ROUTE_NOT_FOUND;
    char trimmed[API_ROUTE_PATH_MAX];
    memcpy (trimmed, path, len + 1);
    while (len > 1 && trimmed[len - 1] == '/')
        trimmed[--len] = '\0';
    api_method_t want = method == API_M_HEAD ? API_M_GET : method;
    bool path_known = false;
    unsigned allowed = 0;
    api_match_t tmp;
    for (size_t i = 0; i < S_ROUTE_COUNT; i++) {
        if (!s_match (s_routes[i].pattern, trimmed, &tmp))
            continue;
        path_known = true;
        if (s_routes[i].method == want) {
            *m = tmp;
            m->route = s_routes[i].id;
            return m->route;
        }
        allowed |= 1u << s_routes[i].method;
    }
    if (!path_known)
        return API_ROUTE_NOT_FOUND;
    size_t off = 0;
    for (int k = API_M_GET; k < API_M_OTHER; k++) {
        if (!(allowed & (1u << k)))
            continue;
        int n = snprintf (m->allow + off, sizeof m->allow - off, "%s%s", off ? ", " : "",
                          s_method_names[k]);
        if (n < 0 || (size_t)n >= sizeof m->allow - off)
            break;
        off += (size_t)n;
    }
    m->route = API_ROUTE_BAD_METHOD;
    return API_ROUTE_BAD_METHOD;
}
