/*  node_pod — Pod ↔ sandbox translation for lss-node. See node_pod.h. */
#include "node_pod.h"

#include <sodium.h>
#include <stdio.h>
#include <string.h>

#include "lss_obj.h"
#include "lss_store.h"
#include "lss_util.h"
#include "sandbox_agent.h"

#define S_LIMITS "spec.containers[0].resources.limits"

/* ------------------------------------------------------------------ identity */

int node_pod_sandbox_id (const char *ns, const char *name, const char *uid, char *out,
                         size_t size)
{
    if (!ns || !name || !uid || size < NODE_POD_ID_SIZE)
        return -1;
    crypto_generichash_state h;
    uint8_t digest[16];
    /* Lengths are hashed too, so no two (ns, name, uid) triples share an input. */
    size_t lens[3] = {strlen (ns), strlen (name), strlen (uid)};
    if (crypto_generichash_init (&h, NULL, 0, sizeof digest) ||
        crypto_generichash_update (&h, (const uint8_t *)lens, sizeof lens) ||
        crypto_generichash_update (&h, (const uint8_t *)ns, lens[0]) ||
        crypto_generichash_update (&h, (const uint8_t *)"/", 1) ||
        crypto_generichash_update (&h, (const uint8_t *)name, lens[1]) ||
        crypto_generichash_update (&h, (const uint8_t *)"/", 1) ||
        crypto_generichash_update (&h, (const uint8_t *)uid, lens[2]) ||
        crypto_generichash_final (&h, digest, sizeof digest))
        return -1;
    static const char hex[] = "0123456789abcdef";
    memcpy (out, NODE_POD_ID_PREFIX, 4);
    for (size_t i = 0; i < 8; i++) {
        out[4 + 2 * i] = hex[digest[i] >> 4];
        out[5 + 2 * i] = hex[digest[i] & 15];
    }
    out[20] = '\0';
    return 0;
}

bool node_pod_is_sandbox_id (const char *id)
{
    if (!id || strlen (id) != NODE_POD_ID_SIZE - 1 || strncmp (id, NODE_POD_ID_PREFIX, 4))
        return false;
    for (const char *c = id + 4; *c; c++)
        if (!((*c >= '0' && *c <= '9') || (*c >= 'a' && *c <= 'f')))
            return false;
    return true;
}

int node_pod_ident (const json_t *pod, node_pod_ident_t *out, char *err, size_t err_size)
{
    memset (out, 0, sizeof *out);
    const char *ns = lss_obj_str (pod, "metadata.namespace");
    const char *name = lss_obj_str (pod, "metadata.name");
    const char *uid = lss_obj_str (pod, "metadata.uid");
    if (!ns || !*ns || strlen (ns) > LSS_STORE_NAMESPACE_MAX ||
        lss_store_check_name ("metadata.namespace", ns, err, err_size)) {
        if (!ns || !*ns || strlen (ns) > LSS_STORE_NAMESPACE_MAX)
            lss_errf (err, err_size, "metadata.namespace: missing or too long");
        return -1;
    }
    if (!name || lss_store_check_name ("metadata.name", name, err, err_size)) {
        if (!name)
            lss_errf (err, err_size, "metadata.name: missing");
        return -1;
    }
    size_t ulen = uid ? strlen (uid) : 0;
    if (ulen == 0 || ulen > NODE_POD_UID_MAX) {
        lss_errf (err, err_size, "metadata.uid: missing or longer than %d bytes",
                  NODE_POD_UID_MAX);
        return -1;
    }
    for (size_t i = 0; i < ulen; i++)
        if (uid[i] <= ' ' || uid[i] > '~') {
            lss_errf (err, err_size, "metadata.uid: not printable ASCII");
            return -1;
        }
    snprintf (out->ns, sizeof out->ns, "%s", ns);
    snprintf (out->name, sizeof out->name, "%s", name);
    snprintf (out->uid, sizeof out->uid, "%s", uid);
    snprintf (out->key, sizeof out->key, "%s/%s", ns, name);
    if (node_pod_sandbox_id (ns, name, uid, out->id, sizeof out->id)) {
        lss_errf (err, err_size, "sandbox id: hash failed");
        return -1;
    }
    return 0;
}

bool node_pod_for_node (const json_t *pod, const char *node)
{
    json_t *v = lss_obj_at (pod, "spec.nodeName");
    if (!v || json_is_null (v))
        return true;
    const char *s = json_string_value (v);
    return s && (!*s || strcmp (s, node) == 0);
}

bool node_pod_terminal (const json_t *pod)
{
    const char *phase = lss_obj_str (pod, "status.phase");
    return phase && (strcmp (phase, "Failed") == 0 || strcmp (phase, "Succeeded") == 0);
}

bool node_pod_was_started (const json_t *pod)
{
    const char *phase = lss_obj_str (pod, "status.phase");
    if (phase && strcmp (phase, "Running") == 0)
        return true;
    json_t *cs = json_array_get (lss_obj_at (pod, "status.containerStatuses"), 0);
    return json_is_object (json_object_get (json_object_get (cs, "state"), "running"));
}

/* ------------------------------------------------------------------ spec */

static bool s_lang_ok (const char *s, size_t n)
{
    if (n == 0 || n > 31)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '_' ||
              s[i] == '-' || s[i] == '+' || s[i] == '.'))
            return false;
    return true;
}

static bool s_path_ok (const char *s, size_t n)
{
    if (n < 2 || n > 255 || s[0] != '/')
        return false;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') ||
              (s[i] >= '0' && s[i] <= '9') || strchr ("/._+-", s[i])))
            return false;
    /* no "." or ".." segments, no "//" */
    for (size_t i = 0; i < n; i++) {
        if (s[i] != '/')
            continue;
        size_t j = i + 1;
        while (j < n && s[j] != '/')
            j++;
        size_t seg = j - i - 1;
        if ((seg == 0 && j < n) || (seg == 1 && s[i + 1] == '.') ||
            (seg == 2 && s[i + 1] == '.' && s[i + 2] == '.'))
            return false;
    }
    return true;
}

/* Splits "lang=/path,lang=/path" into at most NODE_POD_INTERPRETERS checked entries
 * stored one after another in buf; list[] points into it (NULL-terminated). */
static int s_interpreters (const char *text, char *buf, size_t buf_size, const char **list,
                           char *err, size_t err_size)
{
    const char *field = "metadata.annotations[" LSS_ANN_INTERPRETERS "]";
    size_t len = strlen (text);
    if (len >= buf_size || len > NODE_POD_INTERP_MAX) {
        lss_errf (err, err_size, "%s: longer than %d bytes", field, NODE_POD_INTERP_MAX);
        return -1;
    }
    size_t count = 0, at = 0;
    const char *p = text;
    while (*p) {
        const char *end = strchr (p, ',');
        size_t n = end ? (size_t)(end - p) : strlen (p);
        while (n && *p == ' ') {
            p++;
            n--;
        }
        while (n && p[n - 1] == ' ')
            n--;
        const char *eq = memchr (p, '=', n);
        if (!eq || !s_lang_ok (p, (size_t)(eq - p)) ||
            !s_path_ok (eq + 1, n - (size_t)(eq - p) - 1)) {
            lss_errf (err, err_size, "%s: entry %zu must be language=/absolute/path", field,
                      count + 1);
            return -1;
        }
        if (count == NODE_POD_INTERPRETERS) {
            lss_errf (err, err_size, "%s: at most %d entries", field, NODE_POD_INTERPRETERS);
            return -1;
        }
        memcpy (buf + at, p, n);
        buf[at + n] = '\0';
        list[count++] = buf + at;
        at += n + 1;
        p = end ? end + 1 : p + strlen (p);
    }
    list[count] = NULL;
    return 0;
}

/* A quantity field: absent → 0 returned with *present false; a string or a non-negative
 * integer (count of cores / bytes) is parsed; anything else is an error naming field. */
static int s_quantity (const json_t *limits, const char *key, bool cpu, int64_t *out,
                       bool *present, char *err, size_t err_size)
{
    json_t *v = json_object_get (limits, key);
    *present = v != NULL && !json_is_null (v);
    *out = 0;
    if (!*present)
        return 0;
    int rc = -1;
    if (json_is_string (v) && json_string_length (v) <= 64)
        rc = cpu ? lss_obj_parse_cpu (json_string_value (v), out)
                 : lss_obj_parse_bytes (json_string_value (v), out);
    else if (json_is_integer (v) && json_integer_value (v) >= 0) {
        char text[32];
        snprintf (text, sizeof text, "%lld", (long long)json_integer_value (v));
        rc = cpu ? lss_obj_parse_cpu (text, out) : lss_obj_parse_bytes (text, out);
    }
    if (rc) {
        lss_errf (err, err_size, S_LIMITS ".%s: not a valid quantity", key);
        return -1;
    }
    return 0;
}

static int s_limit_range (const char *key, int64_t v, int64_t min, int64_t max, char *err,
                          size_t err_size)
{
    if (v < min || v > max) {
        lss_errf (err, err_size, S_LIMITS ".%s: must be between %lld and %lld", key,
                  (long long)min, (long long)max);
        return -1;
    }
    return 0;
}

/* runAsUser / runAsGroup: absent → default; else an integer in 1..65534. */
static int s_run_as (const json_t *sc, const char *key, uint32_t *out, char *err,
                     size_t err_size)
{
    json_t *v = json_object_get (sc, key);
    if (!v || json_is_null (v))
        return 0;
    if (!json_is_integer (v) || json_integer_value (v) < 1 || json_integer_value (v) > 65534) {
        lss_errf (err, err_size, "spec.containers[0].securityContext.%s: must be 1..65534",
                  key);
        return -1;
    }
    *out = (uint32_t)json_integer_value (v);
    return 0;
}

lss_sandbox_spec_t *node_pod_spec (const json_t *pod, const char *id, const char *agent_path,
                                   char *err, size_t err_size)
{
    json_t *containers = lss_obj_at (pod, "spec.containers");
    json_t *c0 = json_array_get (containers, 0);
    if (!json_is_array (containers) || !json_is_object (c0)) {
        lss_errf (err, err_size, "spec.containers: must hold one container");
        return NULL;
    }
    /* Security level: annotation, else label, else standard. */
    lss_sandbox_level_t level = LSS_SANDBOX_LEVEL_STANDARD;
    json_t *lv = json_object_get (lss_obj_at (pod, "metadata.annotations"), LSS_ANN_LEVEL);
    const char *level_text = json_string_value (lv);
    if (lv && !level_text) {
        lss_errf (err, err_size, "metadata.annotations[" LSS_ANN_LEVEL "]: not a string");
        return NULL;
    }
    if (!level_text)
        level_text = lss_obj_label (pod, LSS_LABEL_LEVEL);
    if (level_text && lss_sandbox_level_parse (level_text, &level)) {
        lss_errf (err, err_size,
                  "metadata.annotations[" LSS_ANN_LEVEL "]: must be standard or high");
        return NULL;
    }
    /* Network: none (default) or egress; high is always none. */
    bool network = false;
    json_t *nv = json_object_get (lss_obj_at (pod, "metadata.annotations"), LSS_ANN_NETWORK);
    if (nv) {
        const char *n = json_string_value (nv);
        if (!n || (strcmp (n, "none") && strcmp (n, "egress"))) {
            lss_errf (err, err_size,
                      "metadata.annotations[" LSS_ANN_NETWORK "]: must be none or egress");
            return NULL;
        }
        network = strcmp (n, "egress") == 0 && level != LSS_SANDBOX_LEVEL_HIGH;
    }
    /* Interpreters. */
    char ibuf[NODE_POD_INTERP_MAX + 2];
    const char *interp[NODE_POD_INTERPRETERS + 1] = {NULL};
    json_t *iv =
        json_object_get (lss_obj_at (pod, "metadata.annotations"), LSS_ANN_INTERPRETERS);
    if (iv) {
        if (!json_is_string (iv)) {
            lss_errf (err, err_size,
                      "metadata.annotations[" LSS_ANN_INTERPRETERS "]: not a string");
            return NULL;
        }
        if (s_interpreters (json_string_value (iv), ibuf, sizeof ibuf, interp, err, err_size))
            return NULL;
    }
    /* Limits. */
    json_t *resources = json_object_get (c0, "resources");
    json_t *limits = json_object_get (resources, "limits");
    if ((resources && !json_is_object (resources)) || (limits && !json_is_object (limits))) {
        lss_errf (err, err_size, S_LIMITS ": must be an object");
        return NULL;
    }
    int64_t cpu, mem, storage;
    bool has_cpu, has_mem, has_storage;
    if (s_quantity (limits, "cpu", true, &cpu, &has_cpu, err, err_size) ||
        s_quantity (limits, "memory", false, &mem, &has_mem, err, err_size) ||
        s_quantity (limits, "ephemeral-storage", false, &storage, &has_storage, err, err_size))
        return NULL;
    if ((has_cpu &&
         s_limit_range ("cpu", cpu, 1, LSS_SANDBOX_MAX_CPU_MILLICORES, err, err_size)) ||
        (has_mem && s_limit_range ("memory", mem, LSS_SANDBOX_MIN_MEMORY_BYTES,
                                   LSS_SANDBOX_MAX_MEMORY_BYTES, err, err_size)) ||
        (has_storage &&
         s_limit_range ("ephemeral-storage", storage, LSS_SANDBOX_MIN_STORAGE_BYTES,
                        LSS_SANDBOX_MAX_STORAGE_BYTES, err, err_size)))
        return NULL;
    uint32_t uid = LSS_SANDBOX_DEFAULT_UID, gid = LSS_SANDBOX_DEFAULT_UID;
    json_t *sc = json_object_get (c0, "securityContext");
    if (sc && !json_is_object (sc)) {
        lss_errf (err, err_size, "spec.containers[0].securityContext: must be an object");
        return NULL;
    }
    if (s_run_as (sc, "runAsUser", &uid, err, err_size) ||
        s_run_as (sc, "runAsGroup", &gid, err, err_size))
        return NULL;

    char serr[LSS_SANDBOX_ERR_SIZE];
    lss_sandbox_spec_t *spec =
        lss_sandbox_agent_spec (id, agent_path, interp[0] ? interp : NULL, serr, sizeof serr);
    if (!spec) {
        lss_errf (err, err_size, "sandbox: %s", serr);
        return NULL;
    }
    spec->level = level;
    spec->network = network;
    spec->cpu_millicores = has_cpu ? cpu : 0;
    spec->memory_bytes = has_mem ? mem : NODE_POD_DEFAULT_MEMORY;
    spec->pids_max = NODE_POD_DEFAULT_PIDS;
    if (has_storage)
        spec->ephemeral_bytes = storage;
    spec->uid = uid;
    spec->gid = gid;
    if (lss_sandbox_spec_validate (spec, serr, sizeof serr)) {
        lss_errf (err, err_size, "sandbox: %s", serr);
        lss_sandbox_spec_destroy (&spec);
    }
    return spec;
}

/* ------------------------------------------------------------------ status */

/* A copy of pod whose status is an object (created, or reset if not an object). */
static json_t *s_copy (const json_t *pod)
{
    json_t *copy = json_deep_copy (pod);
    if (!copy)
        return NULL;
    if (!json_is_object (json_object_get (copy, "status")))
        json_object_set_new (copy, "status", json_object ());
    return copy;
}

static void s_set_str (json_t *obj, const char *key, const char *value)
{
    if (value && *value)
        json_object_set_new (obj, key, json_string (value));
    else
        json_object_del (obj, key);
}

static void s_set_time (json_t *obj, const char *key, int64_t ms)
{
    char t[LSS_TIME_RFC3339_SIZE];
    json_object_set_new (obj, key, json_string (lss_time_rfc3339 (ms, t)));
}

json_t *node_pod_with_sandbox_status (const json_t *pod, const lss_sandbox_status_t *st,
                                      bool ready, const char *endpoint, int64_t now_ms)
{
    json_t *copy = s_copy (pod);
    if (!copy)
        return NULL;
    json_t *status = json_object_get (copy, "status");
    bool running = st->phase == LSS_SANDBOX_RUNNING;
    bool ok = !running && st->exit_code == 0 && strcmp (st->reason, "Completed") == 0;
    ready = ready && running;
    const char *phase = running ? "Running" : ok ? "Succeeded" : "Failed";
    json_object_set_new (status, "phase", json_string (phase));
    json_object_set_new (status, "hostIP", json_string (NODE_POD_HOST_IP));
    s_set_str (status, "agentEndpoint", running ? endpoint : NULL);
    s_set_time (status, "startTime", st->started_ms);
    s_set_str (status, "reason", running ? NULL : st->reason);
    s_set_str (status, "message", running ? NULL : st->message);
    json_t *cs = json_object ();
    json_t *state = json_object ();
    json_object_set_new (cs, "name", json_string (NODE_POD_CONTAINER));
    json_object_set_new (cs, "ready", json_boolean (ready));
    json_object_set_new (cs, "restartCount", json_integer (0));
    if (running) {
        json_t *r = json_object ();
        s_set_time (r, "startedAt", st->started_ms);
        json_object_set_new (state, "running", r);
    } else {
        json_t *t = json_object ();
        json_object_set_new (t, "exitCode", json_integer (st->exit_code));
        json_object_set_new (t, "signal", json_integer (st->signal));
        json_object_set_new (t, "reason", json_string (st->reason));
        s_set_str (t, "message", st->message);
        s_set_time (t, "startedAt", st->started_ms);
        s_set_time (t, "finishedAt", st->finished_ms ? st->finished_ms : now_ms);
        json_object_set_new (state, "terminated", t);
    }
    json_object_set_new (cs, "state", state);
    json_t *list = json_array ();
    json_array_append_new (list, cs);
    json_object_set_new (status, "containerStatuses", list);
    const char *reason = ready ? "AgentReady" : running ? "AgentStarting" : st->reason;
    const char *message = ready     ? "the agent's socket is bound"
                          : running ? "waiting for the agent to bind its socket"
                                    : "the sandbox ended";
    lss_obj_set_condition (copy, "Ready", ready ? "True" : "False", reason, message, now_ms);
    return copy;
}

json_t *node_pod_with_pending (const json_t *pod, const char *reason, const char *message,
                               int64_t now_ms)
{
    json_t *copy = s_copy (pod);
    if (!copy)
        return NULL;
    json_t *status = json_object_get (copy, "status");
    json_object_set_new (status, "phase", json_string ("Pending"));
    s_set_str (status, "reason", reason);
    s_set_str (status, "message", message);
    lss_obj_set_condition (copy, "Ready", "False", reason, message, now_ms);
    return copy;
}

json_t *node_pod_with_failed (const json_t *pod, const char *reason, const char *message,
                              int64_t now_ms)
{
    json_t *copy = s_copy (pod);
    if (!copy)
        return NULL;
    json_t *status = json_object_get (copy, "status");
    json_object_set_new (status, "phase", json_string ("Failed"));
    s_set_str (status, "reason", reason);
    s_set_str (status, "message", message);
    json_object_del (status, "agentEndpoint");
    if (strcmp (reason, "InvalidSpec") != 0) {
        json_t *t = json_object ();
        json_object_set_new (t, "exitCode", json_integer (-1));
        json_object_set_new (t, "signal", json_integer (0));
        json_object_set_new (t, "reason", json_string (reason));
        s_set_str (t, "message", message);
        s_set_time (t, "finishedAt", now_ms);
        json_t *state = json_object ();
        json_object_set_new (state, "terminated", t);
        json_t *cs = json_object ();
        json_object_set_new (cs, "name", json_string (NODE_POD_CONTAINER));
        json_object_set_new (cs, "ready", json_false ());
        json_object_set_new (cs, "restartCount", json_integer (0));
        json_object_set_new (cs, "state", state);
        json_t *list = json_array ();
        json_array_append_new (list, cs);
        json_object_set_new (status, "containerStatuses", list);
    }
    lss_obj_set_condition (copy, "Ready", "False", reason, message, now_ms);
    return copy;
}
