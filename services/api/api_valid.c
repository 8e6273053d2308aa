/*  api_valid — request validation. See api_valid.h.
 *
 *  Patterns are checked by hand (small character classes) rather than regex, so each
 *  refusal can say exactly what was wrong; the CRD patterns they mirror are quoted in
 *  comments, because an object the api accepts must also pass a real API server.
 */
#include "api_valid.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lss_obj.h"

static void s_field (json_t *fields, const char *name, const char *message)
{
    if (fields && !json_object_get (fields, name))
        json_object_set_new (fields, name, json_string (message));
}

/*  Refuses every key of obj not in allowed (NULL-terminated). */
static void s_unknown_fields (const json_t *obj, const char *prefix, const char *const *allowed,
                              json_t *fields)
{
    const char *key;
    json_t *v;
    json_object_foreach ((json_t *)obj, key, v)
    {
        bool ok = false;
        for (const char *const *a = allowed; *a && !ok; a++)
            ok = strcmp (*a, key) == 0;
        if (!ok) {
            char name[256];
            snprintf (name, sizeof name, "%s%s", prefix, key);
            s_field (fields, name, "unknown field");
        }
    }
}

static bool s_alnum_lower (char c)
{
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

static bool s_alnum (char c)
{
    return s_alnum_lower (c) || (c >= 'A' && c <= 'Z');
}

bool api_valid_dns_label (const char *name)
{
    size_t n = name ? strlen (name) : 0;
    if (n == 0 || n > 63 || !s_alnum_lower (name[0]) || !s_alnum_lower (name[n - 1]))
        return false;
    for (size_t i = 0; i < n; i++)
        if (!s_alnum_lower (name[i]) && name[i] != '-')
            return false;
    return true;
}

bool api_valid_client_id (const char *id)
{
    size_t n = id ? strlen (id) : 0;
    if (n == 0 || n > API_EXECUTION_ID_MAX)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!s_alnum (id[i]) && id[i] != '.' && id[i] != '_' && id[i] != ':' && id[i] != '-')
            return false;
    return true;
}

/*  '^[a-z0-9]([a-z0-9._-]*[a-z0-9])?(:[A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?)?$', <= 63 */
static bool s_runtime_ok (const char *r)
{
    size_t n = strlen (r);
    if (n == 0 || n > 63)
        return false;
    const char *colon = strchr (r, ':');
    size_t name_len = colon ? (size_t)(colon - r) : n;
    if (name_len == 0 || !s_alnum_lower (r[0]) || !s_alnum_lower (r[name_len - 1]))
        return false;
    for (size_t i = 0; i < name_len; i++)
        if (!s_alnum_lower (r[i]) && r[i] != '.' && r[i] != '_' && r[i] != '-')
            return false;
    if (!colon)
        return true;
    const char *t = colon + 1;
    size_t tl = strlen (t);
    if (tl == 0 || !s_alnum (t[0]) || !s_alnum (t[tl - 1]))
        return false;
    for (size_t i = 0; i < tl; i++)
        if (!s_alnum (t[i]) && t[i] != '.' && t[i] != '_' && t[i] != '-')
            return false;
    return true;
}

/*  CPU '^([0-9]+m|[0-9]+(\.[0-9]+)?)$'; memory/storage '^[0-9]+(Ki|Mi|Gi|Ti)$'. */
static bool s_cpu_pattern (const char *s)
{
    size_t n = strlen (s), i = 0;
    while (i < n && s[i] >= '0' && s[i] <= '9')
        i++;
    if (i == 0 || i > 12)
        return false;
    if (i == n || (s[i] == 'm' && i + 1 == n))
        return true;
    if (s[i] != '.' || i + 1 == n)
        return false;
    for (size_t k = i + 1; k < n; k++)
        if (s[k] < '0' || s[k] > '9')
            return false;
    return n - i - 1 <= 3;
}

static bool s_bytes_pattern (const char *s)
{
    size_t n = strlen (s), i = 0;
    while (i < n && s[i] >= '0' && s[i] <= '9')
        i++;
    if (i == 0 || i > 12 || n - i != 2 || s[i + 1] != 'i')
        return false;
    return s[i] == 'K' || s[i] == 'M' || s[i] == 'G' || s[i] == 'T';
}

/*  Validates a resources object into a fresh copy. */
static json_t *s_resources (const json_t *res, const char *prefix, json_t *fields)
{
    char name[64];
    if (!json_is_object (res)) {
        s_field (fields, prefix, "must be an object");
        return NULL;
    }
    static const char *const allowed[] = {"cpu", "memory", "ephemeralStorage", NULL};
    snprintf (name, sizeof name, "%s.", prefix);
    s_unknown_fields (res, name, allowed, fields);
    json_t *out = json_object ();
    const char *cpu = json_string_value (json_object_get (res, "cpu"));
    if (json_object_get (res, "cpu")) {
        int64_t m;
        snprintf (name, sizeof name, "%s.cpu", prefix);
        if (!cpu || !s_cpu_pattern (cpu) || lss_obj_parse_cpu (cpu, &m))
            s_field (fields, name, "must be a CPU quantity like \"1\", \"0.5\" or \"500m\"");
        else if (m < API_CPU_MIN_MILLI || m > API_CPU_MAX_MILLI)
            s_field (fields, name, "must be between 10m and 16 cores");
        else
            json_object_set_new (out, "cpu", json_string (cpu));
    }
    struct {
        const char *key;
        int64_t min, max;
        const char *range;
    } sizes[] = {{"memory", API_MEMORY_MIN, API_MEMORY_MAX, "must be between 32Mi and 32Gi"},
                 {"ephemeralStorage", API_STORAGE_MIN, API_STORAGE_MAX,
                  "must be between 16Mi and 100Gi"}};
    for (size_t i = 0; i < 2; i++) {
        json_t *v = json_object_get (res, sizes[i].key);
        if (!v)
            continue;
        snprintf (name, sizeof name, "%s.%s", prefix, sizes[i].key);
        const char *text = json_string_value (v);
        int64_t bytes;
        if (!text || !s_bytes_pattern (text) || lss_obj_parse_bytes (text, &bytes))
            s_field (fields, name, "must be a quantity like 512Mi or 2Gi");
        else if (bytes < sizes[i].min || bytes > sizes[i].max)
            s_field (fields, name, sizes[i].range);
        else
            json_object_set_new (out, sizes[i].key, json_string (text));
    }
    return out;
}

/*  A domain for egress rules: a hostname (labels of [A-Za-z0-9-], dots), optionally
 *  starting with "*." for subdomains, at most 253 bytes. */
static bool s_domain_ok (const char *d)
{
    size_t n = strlen (d);
    if (n == 0 || n > 253)
        return false;
    if (n > 2 && d[0] == '*' && d[1] == '.')
        d += 2;
    size_t label = 0;
    for (const char *p = d; *p; p++) {
        if (*p == '.') {
            if (label == 0)
                return false;
            label = 0;
        } else if (s_alnum (*p) || *p == '-') {
            if (++label > 63)
                return false;
        } else
            return false;
    }
    return label > 0;
}

static json_t *s_network (const json_t *na, json_t *fields)
{
    if (!json_is_object (na)) {
        s_field (fields, "networkAccess", "must be an object");
        return NULL;
    }
    static const char *const allowed[] = {"egress", "ingress", NULL};
    s_unknown_fields (na, "networkAccess.", allowed, fields);
    json_t *out = json_object ();
    json_t *ingress = json_object_get (na, "ingress");
    if (ingress && !json_is_boolean (ingress))
        s_field (fields, "networkAccess.ingress", "must be a boolean");
    else if (ingress)
        json_object_set (out, "ingress", ingress);
    json_t *egress = json_object_get (na, "egress");
    if (!egress)
        return out;
    if (!json_is_array (egress) || json_array_size (egress) > API_EGRESS_RULES_MAX) {
        s_field (fields, "networkAccess.egress", "must be an array of at most 64 rules");
        return out;
    }
    json_t *rules = json_array ();
    size_t i;
    json_t *rule;
    json_array_foreach (egress, i, rule)
    {
        char name[96];
        snprintf (name, sizeof name, "networkAccess.egress[%zu]", i);
        if (!json_is_object (rule)) {
            s_field (fields, name, "must be an object {domain, ports}");
            continue;
        }
        static const char *const rule_keys[] = {"domain", "ports", NULL};
        char prefix[112];
        snprintf (prefix, sizeof prefix, "%s.", name);
        s_unknown_fields (rule, prefix, rule_keys, fields);
        const char *domain = json_string_value (json_object_get (rule, "domain"));
        char fname[128];
        snprintf (fname, sizeof fname, "%s.domain", name);
        if (!domain || !s_domain_ok (domain)) {
            s_field (fields, fname, "must be a domain name such as pypi.org");
            continue;
        }
        json_t *r = json_pack ("{s:s}", "domain", domain);
        json_t *ports = json_object_get (rule, "ports");
        if (ports) {
            snprintf (fname, sizeof fname, "%s.ports", name);
            if (!json_is_array (ports) || json_array_size (ports) > API_PORTS_MAX) {
                s_field (fields, fname, "must be an array of at most 16 ports");
            } else {
                json_t *plist = json_array ();
                size_t k;
                json_t *p;
                json_array_foreach (ports, k, p)
                {
                    json_t *port = json_is_object (p) ? json_object_get (p, "port") : NULL;
                    const char *proto =
                        json_is_object (p) ? json_string_value (json_object_get (p, "protocol"))
                                           : NULL;
                    bool proto_bad =
                        json_is_object (p) && json_object_get (p, "protocol") &&
                        (!proto || (strcmp (proto, "TCP") && strcmp (proto, "UDP")));
                    if (!json_is_integer (port) || json_integer_value (port) < 1 ||
                        json_integer_value (port) > 65535 || proto_bad) {
                        char pname[160];
                        snprintf (pname, sizeof pname, "%s[%zu]", fname, k);
                        s_field (fields, pname,
                                 "must be {port: 1..65535, protocol: \"TCP\" | \"UDP\"}");
                        continue;
                    }
                    json_array_append_new (
                        plist, json_pack ("{s:I, s:s}", "port", json_integer_value (port),
                                          "protocol", proto ? proto : "TCP"));
                }
                json_object_set_new (r, "ports", plist);
            }
        }
        json_array_append_new (rules, r);
    }
    json_object_set_new (out, "egress", rules);
    return out;
}

static json_t *s_labels (const json_t *labels, json_t *fields)
{
    if (!json_is_object (labels) || json_object_size (labels) > API_LABELS_MAX) {
        s_field (fields, "labels", "must be an object of at most 64 string values");
        return NULL;
    }
    const char *key;
    json_t *v;
    json_object_foreach ((json_t *)labels, key, v)
    {
        size_t kl = strlen (key);
        const char *value = json_string_value (v);
        if (kl == 0 || kl > API_LABEL_KEY_MAX || !value ||
            strlen (value) > API_LABEL_VALUE_MAX) {
            char name[96];
            snprintf (name, sizeof name, "labels.%.63s", key);
            s_field (fields, name, "keys of 1..63 bytes, string values of at most 256 bytes");
        }
    }
    return json_deep_copy (labels);
}

void api_create_req_clear (api_create_req_t *req)
{
    json_decref (req->resources);
    json_decref (req->network_access);
    json_decref (req->labels);
    memset (req, 0, sizeof *req);
}

int api_valid_create (const json_t *body, api_create_req_t *out, json_t *fields)
{
    memset (out, 0, sizeof *out);
    snprintf (out->security_level, sizeof out->security_level, "standard");
    out->timeout_s = API_TIMEOUT_DEFAULT_S;
    out->use_warm_pool = true;
    size_t before = json_object_size (fields);
    if (!json_is_object (body)) {
        s_field (fields, "body", "must be a JSON object");
        return -1;
    }
    static const char *const allowed[] = {"runtime",   "securityLevel", "timeout",
                                          "resources", "networkAccess", "useWarmPool",
                                          "profile",   "labels",        NULL};
    s_unknown_fields (body, "", allowed, fields);
    json_t *runtime = json_object_get (body, "runtime");
    if (!runtime)
        s_field (fields, "runtime", "is required (e.g. \"python:3.11\")");
    else if (!json_is_string (runtime) || !s_runtime_ok (json_string_value (runtime)))
        s_field (
            fields, "runtime",
            "must be a runtime name like \"python:3.11\" (lowercase name, optional :tag, at "
            "most 63 bytes)");
    else
        snprintf (out->runtime, sizeof out->runtime, "%s", json_string_value (runtime));
    json_t *level = json_object_get (body, "securityLevel");
    if (level) {
        const char *l = json_string_value (level);
        if (!l || (strcmp (l, "standard") && strcmp (l, "high") && strcmp (l, "custom")))
            s_field (fields, "securityLevel", "must be \"standard\", \"high\" or \"custom\"");
        else
            snprintf (out->security_level, sizeof out->security_level, "%s", l);
    }
    json_t *timeout = json_object_get (body, "timeout");
    if (timeout) {
        if (!json_is_integer (timeout) || json_integer_value (timeout) < 1 ||
            json_integer_value (timeout) > API_TIMEOUT_MAX_S)
            s_field (fields, "timeout", "must be an integer number of seconds, 1..3600");
        else
            out->timeout_s = json_integer_value (timeout);
    }
    json_t *warm = json_object_get (body, "useWarmPool");
    if (warm && !json_is_boolean (warm))
        s_field (fields, "useWarmPool", "must be a boolean");
    else if (warm)
        out->use_warm_pool = json_is_true (warm);
    json_t *profile = json_object_get (body, "profile");
    if (profile && !json_is_null (profile)) {
        const char *p = json_string_value (profile);
        if (!p || !api_valid_dns_label (p))
            s_field (fields, "profile", "must be a SandboxProfile name (DNS label)");
        else
            snprintf (out->profile, sizeof out->profile, "%s", p);
    }
    if (strcmp (out->security_level, "custom") == 0 && !out->profile[0] &&
        !json_object_get (fields, "profile"))
        s_field (fields, "profile", "is required when securityLevel is \"custom\"");
    json_t *res = json_object_get (body, "resources");
    if (res && !json_is_null (res))
        out->resources = s_resources (res, "resources", fields);
    json_t *na = json_object_get (body, "networkAccess");
    if (na && !json_is_null (na))
        out->network_access = s_network (na, fields);
    json_t *labels = json_object_get (body, "labels");
    if (labels && !json_is_null (labels))
        out->labels = s_labels (labels, fields);
    if (json_object_size (fields) > before) {
        api_create_req_clear (out);
        return -1;
    }
    return 0;
}

const char *api_agent_language (const char *name)
{
    if (!name)
        return NULL;
    static const struct {
        const char *alias, *agent;
    } map[] = {{"python", "python"},   {"python3", "python"}, {"py", "python"},
               {"javascript", "node"}, {"js", "node"},        {"node", "node"},
               {"nodejs", "node"},     {"bash", "bash"},      {"sh", "sh"},
               {"shell", "bash"}};
    for (size_t i = 0; i < sizeof map / sizeof map[0]; i++)
        if (strcmp (map[i].alias, name) == 0)
            return map[i].agent;
    return NULL;
}

const char *api_runtime_language (const char *runtime)
{
    if (!runtime)
        return NULL;
    char name[64];
    size_t n = strcspn (runtime, ":");
    if (n >= sizeof name)
        return NULL;
    memcpy (name, runtime, n);
    name[n] = '\0';
    return api_agent_language (name);
}

/*  Copies a JSON string's bytes (may hold NUL? jansson strings may contain \u0000: the
 *  length is explicit) into a heap lss_bytes_t. */
static int s_bytes_of (const json_t *s, lss_bytes_t *out)
{
    size_t n = json_string_length (s);
    out->data = malloc (n ? n : 1);
    if (!out->data)
        return -1;
    memcpy (out->data, json_string_value (s), n);
    out->len = n;
    return 0;
}

static int s_env (const json_t *env, api_exec_spec_t *spec, json_t *fields)
{
    if (!json_is_object (env) || json_object_size (env) > API_ENV_MAX) {
        s_field (fields, "env", "must be an object of at most 256 string values");
        return -1;
    }
    const char *key;
    json_t *v;
    json_object_foreach ((json_t *)env, key, v)
    {
        size_t kl = strlen (key);
        bool ok = kl > 0 && kl <= 256 && !(key[0] >= '0' && key[0] <= '9');
        for (size_t i = 0; ok && i < kl; i++)
            ok = s_alnum (key[i]) || key[i] == '_';
        const char *value = json_string_value (v);
        if (!ok || !value || json_string_length (v) > API_ENV_VALUE_MAX ||
            strlen (value) != json_string_length (v)) {
            char name[300];
            snprintf (name, sizeof name, "env.%.256s", key);
            s_field (fields, name,
                     "names are [A-Za-z_][A-Za-z0-9_]*, values strings of at most 32 KiB "
                     "without NUL");
            return -1;
        }
    }
    spec->env = json_deep_copy (env);
    return 0;
}

int api_valid_execute (const json_t *body, bool ws, const char *runtime,
                       const api_exec_limits_t *lim, api_exec_spec_t *spec, json_t *fields)
{
    memset (spec, 0, sizeof *spec);
    size_t before = json_object_size (fields);
    if (!json_is_object (body)) {
        s_field (fields, "body", "must be a JSON object");
        return -1;
    }
    static const char *const rest_keys[] = {"type", "content",    "language", "timeout",
                                            "env",  "workingDir", "stdin",    NULL};
    static const char *const ws_keys[] = {"type",     "executionId", "mode", "content",
                                          "language", "timeout",     "env",  "workingDir",
                                          "stdin",    NULL};
    s_unknown_fields (body, "", ws ? ws_keys : rest_keys, fields);
    const char *mode_key = ws ? "mode" : "type";
    json_t *mode = json_object_get (body, mode_key);
    const char *m = json_string_value (mode);
    if (!mode && ws)
        m = "code";
    if (!m || (strcmp (m, "code") && strcmp (m, "command"))) {
        s_field (fields, mode_key, "must be \"code\" or \"command\"");
        m = NULL;
    }
    json_t *content = json_object_get (body, "content");
    if (!json_is_string (content) || json_string_length (content) == 0)
        s_field (fields, "content", "is required: the code or command to run");
    else if (json_string_length (content) > API_CONTENT_MAX)
        s_field (fields, "content", "must be at most 1 MiB");
    if (m && json_is_string (content) && !json_object_get (fields, "content")) {
        if (strcmp (m, "code") == 0) {
            snprintf (spec->kind, sizeof spec->kind, "code");
            json_t *lang = json_object_get (body, "language");
            const char *agent = NULL;
            if (lang && !json_is_null (lang)) {
                agent = api_agent_language (json_string_value (lang));
                if (!agent)
                    s_field (fields, "language",
                             "must be one of python, javascript (node), bash, sh");
            } else {
                agent = api_runtime_language (runtime);
                if (!agent)
                    s_field (fields, "language", "is required: the runtime has no default");
            }
            if (agent)
                snprintf (spec->language, sizeof spec->language, "%s", agent);
            if (s_bytes_of (content, &spec->code))
                s_field (fields, "content", "out of memory");
        } else {
            snprintf (spec->kind, sizeof spec->kind, "command");
            if (strlen (json_string_value (content)) != json_string_length (content))
                s_field (fields, "content", "a command cannot contain NUL bytes");
            else
                spec->shell = strdup (json_string_value (content));
        }
    }
    spec->timeout_ms = lim->default_timeout_ms;
    json_t *timeout = json_object_get (body, "timeout");
    if (timeout && !json_is_null (timeout)) {
        int64_t max_s = lim->max_timeout_ms / 1000;
        if (!json_is_integer (timeout) || json_integer_value (timeout) < 1 ||
            json_integer_value (timeout) > max_s) {
            char msg[96];
            snprintf (msg, sizeof msg, "must be an integer number of seconds, 1..%lld",
                      (long long)max_s);
            s_field (fields, "timeout", msg);
        } else
            spec->timeout_ms = json_integer_value (timeout) * 1000;
    }
    json_t *env = json_object_get (body, "env");
    if (env && !json_is_null (env))
        s_env (env, spec, fields);
    json_t *wd = json_object_get (body, "workingDir");
    if (wd && !json_is_null (wd)) {
        if (!json_is_string (wd) ||
            api_valid_file_path (json_string_value (wd), spec->cwd, sizeof spec->cwd))
            s_field (fields, "workingDir", "must be a path inside /workspace or /tmp");
    }
    json_t *in = json_object_get (body, "stdin");
    if (in && !json_is_null (in)) {
        if (!json_is_string (in) || json_string_length (in) > API_STDIN_MAX)
            s_field (fields, "stdin", "must be a string of at most 1 MiB");
        else if (s_bytes_of (in, &spec->stdin_data))
            s_field (fields, "stdin", "out of memory");
    }
    spec->max_output = lim->max_output;
    spec->stdin_open = ws;
    if (json_object_size (fields) > before) {
        api_exec_spec_clear (spec);
        return -1;
    }
    return 0;
}

/*  A package spec as pip or npm take it: a name of [A-Za-z0-9._-] (npm: optional
 *  "@scope/"), optional pip extras "[a,b]", optional version after one of == >= <= ~= !=
 *  > < (pip) or @ (npm) made of [A-Za-z0-9.*+!_-], 1..214 bytes, no spaces. */
static bool s_package_ok (const char *p, bool npm)
{
    size_t n = strlen (p);
    if (n == 0 || n > API_PACKAGE_NAME_MAX || p[0] == '-' || p[0] == '.')
        return false;
    size_t i = 0;
    if (npm && p[0] == '@') {
        i = 1;
        while (i < n && (s_alnum (p[i]) || p[i] == '.' || p[i] == '_' || p[i] == '-'))
            i++;
        if (i < 2 || i >= n || p[i] != '/')
            return false;
        i++;
    }
    size_t name_start = i;
    while (i < n && (s_alnum (p[i]) || p[i] == '.' || p[i] == '_' || p[i] == '-'))
        i++;
    if (i == name_start)
        return false;
    if (!npm && i < n && p[i] == '[') {
        i++;
        while (i < n && (s_alnum (p[i]) || p[i] == ',' || p[i] == '_' || p[i] == '-'))
            i++;
        if (i >= n || p[i] != ']')
            return false;
        i++;
    }
    if (i == n)
        return true;
    if (npm) {
        if (p[i] != '@')
            return false;
        i++;
    } else {
        static const char *const ops[] = {"==", ">=", "<=", "~=", "!=", ">", "<", NULL};
        bool found = false;
        for (const char *const *op = ops; *op && !found; op++)
            if (strncmp (p + i, *op, strlen (*op)) == 0) {
                i += strlen (*op);
                found = true;
            }
        if (!found)
            return false;
    }
    if (i == n)
        return false;
    for (; i < n; i++)
        if (!s_alnum (p[i]) && !strchr (".*+!_-", p[i]))
            return false;
    return true;
}

int api_valid_packages (const json_t *body, const char *default_manager,
                        const api_exec_limits_t *lim, api_exec_spec_t *spec, json_t *fields)
{
    memset (spec, 0, sizeof *spec);
    size_t before = json_object_size (fields);
    if (!json_is_object (body)) {
        s_field (fields, "body", "must be a JSON object");
        return -1;
    }
    static const char *const allowed[] = {"packages", "manager", "packageManager", NULL};
    s_unknown_fields (body, "", allowed, fields);
    json_t *mgr = json_object_get (body, "manager");
    const char *mkey = "manager";
    if (!mgr || json_is_null (mgr)) {
        mgr = json_object_get (body, "packageManager");
        mkey = "packageManager";
    }
    const char *manager = json_string_value (mgr);
    if (mgr && !json_is_null (mgr) &&
        (!manager || (strcmp (manager, "pip") && strcmp (manager, "npm")))) {
        s_field (fields, mkey, "must be \"pip\" or \"npm\"");
        manager = NULL;
    } else if (!manager || !*manager) {
        manager = default_manager;
        if (!manager || (strcmp (manager, "pip") && strcmp (manager, "npm"))) {
            s_field (fields, "manager", "is required: the runtime has no package manager");
            manager = NULL;
        }
    }
    json_t *pkgs = json_object_get (body, "packages");
    if (!json_is_array (pkgs) || json_array_size (pkgs) == 0 ||
        json_array_size (pkgs) > API_PACKAGES_MAX)
        s_field (fields, "packages", "must be an array of 1..64 package names");
    bool npm = manager && strcmp (manager, "npm") == 0;
    lss_buf_t cmd;
    lss_buf_init (&cmd, 64 * 1024);
    const char *prefix = npm ? "npm install --no-audit --no-fund --no-update-notifier "
                               "--prefix /workspace --"
                             : "python3 -m pip install --user --no-input "
                               "--disable-pip-version-check --progress-bar off --";
    lss_buf_append (&cmd, prefix, strlen (prefix));
    size_t i;
    json_t *p;
    if (json_is_array (pkgs))
        json_array_foreach (pkgs, i, p)
        {
            const char *name = json_string_value (p);
            if (!name || !s_package_ok (name, npm)) {
                char fname[48];
                snprintf (fname, sizeof fname, "packages[%zu]", i);
                s_field (fields, fname,
                         npm ? "must be an npm package like lodash or @scope/pkg@1.2.3"
                             : "must be a pip requirement like numpy or pandas==2.1.0");
                continue;
            }
            /* every character is from a safe class; quote anyway */
            lss_buf_append (&cmd, " '", 2);
            lss_buf_append (&cmd, name, strlen (name));
            lss_buf_append (&cmd, "'", 1);
        }
    if (json_object_size (fields) > before || !manager) {
        lss_buf_free (&cmd);
        return -1;
    }
    snprintf (spec->kind, sizeof spec->kind, "packages");
    spec->shell = strndup ((const char *)cmd.data, cmd.len);
    lss_buf_free (&cmd);
    spec->timeout_ms = lim->max_timeout_ms < 600000 ? lim->max_timeout_ms : 600000;
    spec->max_output = lim->max_output;
    return spec->shell ? 0 : -1;
}

int api_valid_file_path (const char *in, char *out, size_t out_size)
{
    if (!in || !*in)
        return -1;
    for (const unsigned char *p = (const unsigned char *)in; *p; p++)
        if (*p < 0x20 || *p == 0x7f)
            return -1;
    const char *rel = in;
    while (*rel == '/')
        rel++;
    /* ".." anywhere as a segment is refused outright */
    for (const char *seg = rel; *seg;) {
        size_t n = strcspn (seg, "/");
        if (n == 2 && seg[0] == '.' && seg[1] == '.')
            return -1;
        seg += n;
        while (*seg == '/')
            seg++;
    }
    bool rooted = strncmp (rel, "workspace", 9) == 0 && (rel[9] == '/' || rel[9] == '\0');
    rooted = rooted || (strncmp (rel, "tmp", 3) == 0 && (rel[3] == '/' || rel[3] == '\0'));
    int n;
    if (rooted)
        n = snprintf (out, out_size, "/%s", rel);
    else if (in[0] == '/' && *rel)
        return -1; /* absolute but outside the writable roots */
    else
        n = snprintf (out, out_size, "/workspace%s%s", *rel ? "/" : "", rel);
    if (n < 0 || (size_t)n >= out_size)
        return -1;
    size_t len = (size_t)n;
    while (len > 1 && out[len - 1] == '/')
        out[--len] = '\0';
    return 0;
}

int api_valid_page (const char *limit_text, const char *offset_text, int *limit, int *offset,
                    json_t *fields)
{
    int64_t v;
    int rc = 0;
    *limit = 10;
    *offset = 0;
    if (limit_text) {
        if (lss_parse_int64 (limit_text, 1, 100, &v)) {
            s_field (fields, "limit", "must be an integer 1..100");
            rc = -1;
        } else
            *limit = (int)v;
    }
    if (offset_text) {
        if (lss_parse_int64 (offset_text, 0, 1000000000, &v)) {
            s_field (fields, "offset", "must be a non-negative integer");
            rc = -1;
        } else
            *offset = (int)v;
    }
    return rc;
}

int api_valid_warmpool (const json_t *body, bool patch, char name[64], json_t **spec,
                        json_t *fields)
{
    *spec = NULL;
    name[0] = '\0';
    size_t before = json_object_size (fields);
    if (!json_is_object (body)) {
        s_field (fields, "body", "must be a JSON object");
        return -1;
    }
    static const char *const allowed[] = {
        "name",      "runtime",    "minSize",         "maxSize",        "securityLevel", "ttl",
        "resources", "profileRef", "preloadPackages", "preloadScripts", "autoScaling",   NULL};
    s_unknown_fields (body, "", allowed, fields);
    json_t *out = json_object ();
    json_t *n = json_object_get (body, "name");
    if (!patch) {
        if (!n || !api_valid_dns_label (json_string_value (n)))
            s_field (fields, "name", "is required: a DNS label (lowercase, digits, '-')");
        else
            snprintf (name, 64, "%s", json_string_value (n));
    } else if (n)
        s_field (fields, "name", "cannot be changed");
    json_t *runtime = json_object_get (body, "runtime");
    if (!patch && !runtime)
        s_field (fields, "runtime", "is required (e.g. \"python:3.11\")");
    else if (runtime && patch)
        s_field (fields, "runtime", "cannot be changed; create another pool");
    else if (runtime &&
             (!json_is_string (runtime) || !s_runtime_ok (json_string_value (runtime))))
        s_field (fields, "runtime", "must be a runtime name like \"python:3.11\"");
    else if (runtime)
        json_object_set (out, "runtime", runtime);
    static const struct {
        const char *key;
        int64_t min, max;
    } ints[] = {{"minSize", 0, 100}, {"maxSize", 0, 1000}, {"ttl", 0, 86400 * 7}};
    for (size_t i = 0; i < 3; i++) {
        json_t *v = json_object_get (body, ints[i].key);
        if (!v)
            continue;
        if (!json_is_integer (v) || json_integer_value (v) < ints[i].min ||
            json_integer_value (v) > ints[i].max) {
            char msg[64];
            snprintf (msg, sizeof msg, "must be an integer %lld..%lld", (long long)ints[i].min,
                      (long long)ints[i].max);
            s_field (fields, ints[i].key, msg);
        } else
            json_object_set (out, ints[i].key, v);
    }
    json_t *mn = json_object_get (out, "minSize"), *mx = json_object_get (out, "maxSize");
    if (mn && mx && json_integer_value (mx) != 0 &&
        json_integer_value (mx) < json_integer_value (mn))
        s_field (fields, "maxSize", "must be 0 (unlimited) or at least minSize");
    json_t *level = json_object_get (body, "securityLevel");
    if (level) {
        const char *l = json_string_value (level);
        if (!l || (strcmp (l, "standard") && strcmp (l, "high")))
            s_field (fields, "securityLevel", "must be \"standard\" or \"high\"");
        else
            json_object_set (out, "securityLevel", level);
    }
    json_t *res = json_object_get (body, "resources");
    if (res && !json_is_null (res)) {
        json_t *r = s_resources (res, "resources", fields);
        if (r)
            json_object_set_new (out, "resources", r);
    }
    json_t *prof = json_object_get (body, "profileRef");
    if (prof && !json_is_null (prof)) {
        const char *pn = json_is_object (prof)
                             ? json_string_value (json_object_get (prof, "name"))
                             : json_string_value (prof);
        if (!pn || !api_valid_dns_label (pn))
            s_field (fields, "profileRef", "must be {name: <SandboxProfile>}");
        else
            json_object_set_new (out, "profileRef", json_pack ("{s:s}", "name", pn));
    }
    json_t *pp = json_object_get (body, "preloadPackages");
    if (pp) {
        bool ok = json_is_array (pp) && json_array_size (pp) <= API_PACKAGES_MAX;
        size_t i;
        json_t *p;
        if (ok)
            json_array_foreach (pp, i, p) ok = ok && json_is_string (p) &&
                                               (s_package_ok (json_string_value (p), false) ||
                                                s_package_ok (json_string_value (p), true));
        if (!ok)
            s_field (fields, "preloadPackages", "must be an array of at most 64 package names");
        else
            json_object_set (out, "preloadPackages", pp);
    }
    json_t *ps = json_object_get (body, "preloadScripts");
    if (ps) {
        bool ok = json_is_array (ps) && json_array_size (ps) <= 16;
        size_t i;
        json_t *p;
        if (ok)
            json_array_foreach (ps, i, p)
            {
                const char *sn = json_string_value (json_object_get (p, "name"));
                json_t *c = json_object_get (p, "content");
                ok = ok && json_is_object (p) && sn && api_valid_dns_label (sn) &&
                     json_is_string (c) && json_string_length (c) <= 64 * 1024;
            }
        if (!ok)
            s_field (fields, "preloadScripts",
                     "must be an array of at most 16 {name (DNS label), content (<= 64 KiB)}");
        else
            json_object_set (out, "preloadScripts", ps);
    }
    json_t *as = json_object_get (body, "autoScaling");
    if (as && !json_is_null (as)) {
        json_t *en = json_is_object (as) ? json_object_get (as, "enabled") : NULL;
        json_t *tu = json_is_object (as) ? json_object_get (as, "targetUtilization") : NULL;
        json_t *sd = json_is_object (as) ? json_object_get (as, "scaleDownDelay") : NULL;
        if (!json_is_object (as) || (en && !json_is_boolean (en)) ||
            (tu && (!json_is_integer (tu) || json_integer_value (tu) < 1 ||
                    json_integer_value (tu) > 100)) ||
            (sd && (!json_is_integer (sd) || json_integer_value (sd) < 0 ||
                    json_integer_value (sd) > 86400)))
            s_field (
                fields, "autoScaling",
                "must be {enabled: bool, targetUtilization: 1..100, scaleDownDelay: 0..86400 "
                "s}");
        else {
            json_t *a = json_object ();
            if (en)
                json_object_set (a, "enabled", en);
            if (tu)
                json_object_set (a, "targetUtilization", tu);
            if (sd)
                json_object_set (a, "scaleDownDelay", sd);
            json_object_set_new (out, "autoScaling", a);
        }
    }
    if (json_object_size (fields) > before) {
        json_decref (out);
        return -1;
    }
    *spec = out;
    return 0;
}
