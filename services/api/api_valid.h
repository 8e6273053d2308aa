/*  api_valid — validation of request bodies into typed requests. Pure logic, no I/O.
 *
 *  Every validator takes the parsed JSON body (hostile: any type anywhere), fills a typed
 *  result, and adds one message per bad field to `fields` (field path → message, e.g.
 *  "resources.memory" → "must be a quantity like 512Mi"), which becomes the 400's
 *  details.fields. Unknown fields are refused by name, so a typo ("timout") is an error,
 *  not a silently ignored wish. Limits (sizes, counts, ranges) are named constants here
 *  or settings passed in.
 */
#ifndef API_VALID_H
#define API_VALID_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "api_msgs.h"

#define API_TIMEOUT_MAX_S     3600
#define API_TIMEOUT_DEFAULT_S 300
#define API_LABELS_MAX        64
#define API_LABEL_KEY_MAX     63
#define API_LABEL_VALUE_MAX   256
#define API_EGRESS_RULES_MAX  64
#define API_PORTS_MAX         16
#define API_ENV_MAX           256
#define API_ENV_VALUE_MAX     (32 * 1024)
#define API_CONTENT_MAX       (1024 * 1024) /* code or command text */
#define API_STDIN_MAX         (1024 * 1024)
#define API_PACKAGES_MAX      64
#define API_PACKAGE_NAME_MAX  214
#define API_CPU_MAX_MILLI     16000
#define API_CPU_MIN_MILLI     10
#define API_MEMORY_MIN        (32LL << 20)
#define API_MEMORY_MAX        (32LL << 30)
#define API_STORAGE_MIN       (16LL << 20)
#define API_STORAGE_MAX       (100LL << 30)
#define API_KEY_NAME_MAX      128

typedef struct {
    char runtime[64];
    char security_level[16]; /* standard | high | custom */
    int64_t timeout_s;
    json_t *resources;      /* {cpu, memory, ephemeralStorage} validated, or NULL */
    json_t *network_access; /* {egress:[...], ingress} validated, or NULL */
    bool use_warm_pool;
    char profile[254]; /* SandboxProfile name, "" if none */
    json_t *labels;    /* {k: v} or NULL */
} api_create_req_t;

void api_create_req_clear (api_create_req_t *req);

/*  POST /sandboxes. Returns 0, or -1 with fields filled. */
int api_valid_create (const json_t *body, api_create_req_t *out, json_t *fields);

typedef struct {
    int64_t default_timeout_ms;
    int64_t max_timeout_ms;
    int64_t max_output; /* bytes kept per stream */
} api_exec_limits_t;

/*  POST .../execute (ws false: {type, content, language, timeout, env, workingDir, stdin})
 *  or a WebSocket execute frame (ws true: {type, executionId, mode, content, language,
 *  timeout, env, workingDir}). runtime names the sandbox's runtime ("python:3.11"): the
 *  default language of code. Returns 0 with spec filled (caller clears), or -1. */
int api_valid_execute (const json_t *body, bool ws, const char *runtime,
                       const api_exec_limits_t *lim, api_exec_spec_t *spec, json_t *fields);

/*  POST .../packages {packages, manager | packageManager}. default_manager is the
 *  runtime's packageManager ("pip", "npm", or NULL). The install becomes a command
 *  (pip install --user / npm install --prefix /workspace) with every name checked
 *  against a strict pattern and quoted. */
int api_valid_packages (const json_t *body, const char *default_manager,
                        const api_exec_limits_t *lim, api_exec_spec_t *spec, json_t *fields);

/*  The agent's language for an API language name: python, python3 → "python";
 *  javascript, js, node, nodejs → "node"; bash; sh. NULL if unknown. */
const char *api_agent_language (const char *name);
/*  The language of a runtime ("python:3.11" → "python", "nodejs:20" → "node"), or NULL. */
const char *api_runtime_language (const char *runtime);

/*  A file path from the URL or query into what the agent takes: a leading '/' is
 *  optional ("workspace/a" = "/workspace/a"); a relative path not under a writable root
 *  is under /workspace ("a.txt" → "/workspace/a.txt"). Refuses (returns -1) empty
 *  paths, NUL or control bytes, and ".." segments (the agent refuses symlink escapes
 *  itself). out holds out_size bytes. */
int api_valid_file_path (const char *in, char *out, size_t out_size);

/*  A limit / offset query pair: defaults 10 / 0, limit 1..100, offset >= 0. Returns 0 or
 *  -1 with fields filled. */
int api_valid_page (const char *limit_text, const char *offset_text, int *limit, int *offset,
                    json_t *fields);

/*  An executionId (or any client id): 1..64 of [A-Za-z0-9._:-]. */
bool api_valid_client_id (const char *id);

/*  A DNS-1123 label ([a-z0-9]([-a-z0-9]*[a-z0-9])?, at most 63). */
bool api_valid_dns_label (const char *name);

/*  WarmPool bodies: create (all of spec's fields; name required) or patch (a partial
 *  spec). *spec receives the validated spec object (caller decrefs); *name the name. */
int api_valid_warmpool (const json_t *body, bool patch, char name[64], json_t **spec,
                        json_t *fields);

#endif
