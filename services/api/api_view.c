/*  api_view — JSON shapes of API.md. See api_view.h.
 */
#include "api_view.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api_route.h"
#include "lss_obj.h"
#include "lss_util.h"

json_t *api_view_time (int64_t epoch_ms)
{
    if (epoch_ms <= 0)
        return json_null ();
    char text[LSS_TIME_RFC3339_SIZE];
    return json_string (lss_time_rfc3339 (epoch_ms, text));
}

/*  A copy of obj's string at path as a JSON string, or null. */
static json_t *s_str_or_null (const json_t *obj, const char *path)
{
    const char *s = obj ? lss_obj_str (obj, path) : NULL;
    return s ? json_string (s) : json_null ();
}

/*  A deep copy of the value at path, or fallback (stolen) when absent. */
static json_t *s_copy_or (const json_t *obj, const char *path, json_t *fallback)
{
    json_t *v = obj ? lss_obj_at (obj, path) : NULL;
    if (v) {
        json_decref (fallback);
        return json_deep_copy (v);
    }
    return fallback;
}

const char *api_view_status_of_phase (const char *phase)
{
    static const struct {
        const char *phase, *status;
    } map[] = {{"Pending", "pending"},       {"Creating", "creating"},
               {"Running", "running"},       {"Terminating", "terminating"},
               {"Terminated", "terminated"}, {"Failed", "failed"}};
    for (size_t i = 0; phase && i < sizeof map / sizeof map[0]; i++)
        if (strcmp (map[i].phase, phase) == 0)
            return map[i].status;
    return "pending";
}

const char *api_view_phase (const json_t *obj)
{
    if (!obj)
        return "Terminated";
    const char *p = lss_obj_str (obj, "status.phase");
    if (lss_obj_deleting (obj))
        return p && strcmp (p, "Terminated") == 0 ? "Terminated" : "Terminating";
    return p && *p ? p : "Pending";
}

static int64_t s_time_at (const json_t *obj, const char *path)
{
    const char *t = obj ? lss_obj_str (obj, path) : NULL;
    int64_t ms;
    return t && lss_time_parse_rfc3339 (t, &ms) == 0 ? ms : 0;
}

json_t *api_view_sandbox (const json_t *obj, const api_sandbox_row_t *row)
{
    const char *id = obj ? lss_obj_str (obj, "metadata.name") : (row ? row->id : "");
    const char *phase = api_view_phase (obj);
    int64_t created = row && row->created_ms ? row->created_ms
                                             : s_time_at (obj, "metadata.creationTimestamp");
    int64_t started = s_time_at (obj, "status.startTime");
    if (!started && row)
        started = row->started_ms;
    char base[128];
    snprintf (base, sizeof base, "/api/v1/sandboxes/%s", id ? id : "");
    char exec[160], files[160], ws[160];
    snprintf (exec, sizeof exec, "%s/execute", base);
    snprintf (files, sizeof files, "%s/files", base);
    snprintf (ws, sizeof ws, "%s/stream", base);
    json_t *timeout = obj ? lss_obj_at (obj, "spec.timeout") : NULL;
    const char *runtime = obj ? lss_obj_str (obj, "spec.runtime") : NULL;
    const char *level = obj ? lss_obj_str (obj, "spec.securityLevel") : NULL;
    bool warm = row ? row->warm : (obj && lss_obj_annotation (obj, LSS_ANN_WARM_POD));
    json_t *v = json_pack (
        "{s:s, s:s, s:s, s:s, s:s, s:O, s:o, s:o, s:o, s:o, s:o, s:o, s:b, s:{s:s, s:s, s:s}}",
        "id", id ? id : "", "status", api_view_status_of_phase (phase), "phase", phase,
        "runtime", runtime ? runtime : (row ? row->runtime : ""), "securityLevel",
        level ? level : (row && row->security_level[0] ? row->security_level : "standard"),
        "timeout", json_is_integer (timeout) ? timeout : json_null (), "resources",
        s_copy_or (obj, "spec.resources", json_object ()), "networkAccess",
        s_copy_or (obj, "spec.networkAccess", json_object ()), "labels",
        s_copy_or (obj, "spec.labels", json_object ()), "createdAt", api_view_time (created),
        "startedAt", api_view_time (started), "expiresAt",
        s_str_or_null (obj, "status.expiresAt"), "warmPool", warm, "endpoints", "execute", exec,
        "files", files, "websocket", ws);
    if (v && obj) {
        json_t *conds = lss_obj_at (obj, "status.conditions");
        if (json_is_array (conds))
            json_object_set_new (v, "conditions", json_deep_copy (conds));
        const char *profile = lss_obj_str (obj, "spec.profileRef.name");
        if (profile)
            json_object_set_new (v, "profile", json_string (profile));
    }
    return v;
}

json_t *api_view_sandbox_status (const json_t *obj, const api_sandbox_row_t *row)
{
    const char *phase = api_view_phase (obj);
    const char *id = obj ? lss_obj_str (obj, "metadata.name") : (row ? row->id : "");
    int64_t created = row && row->created_ms ? row->created_ms
                                             : s_time_at (obj, "metadata.creationTimestamp");
    int64_t started = s_time_at (obj, "status.startTime");
    if (!started && row)
        started = row->started_ms;
    json_t *conds = obj ? lss_obj_at (obj, "status.conditions") : NULL;
    return json_pack ("{s:s, s:s, s:s, s:o, s:o, s:o, s:{s:n, s:n}}", "id", id ? id : "",
                      "status", api_view_status_of_phase (phase), "phase", phase, "conditions",
                      json_is_array (conds) ? json_deep_copy (conds) : json_array (),
                      "createdAt", api_view_time (created), "startedAt",
                      api_view_time (started), "resources", "cpuUsage", "memoryUsage");
}

size_t api_view_utf8_seq (const uint8_t *s, size_t i, size_t n)
{
    uint8_t c = s[i];
    size_t len;
    uint32_t cp, min;
    if ((c & 0xE0) == 0xC0) {
        len = 2;
        cp = c & 0x1F;
        min = 0x80;
    } else if ((c & 0xF0) == 0xE0) {
        len = 3;
        cp = c & 0x0F;
        min = 0x800;
    } else if ((c & 0xF8) == 0xF0) {
        len = 4;
        cp = c & 0x07;
        min = 0x10000;
    } else
        return 0;
    if (i + len > n)
        return 0;
    for (size_t k = 1; k < len; k++) {
        if ((s[i + k] & 0xC0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[i + k] & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
        return 0;
    return len;
}

/*  Strict UTF-8: no overlongs, no surrogates, nothing past U+10FFFF. */
bool api_view_utf8_valid (const uint8_t *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        if (s[i] < 0x80) {
            i++;
            continue;
        }
        size_t len = api_view_utf8_seq (s, i, n);
        if (!len)
            return false;
        i += len;
    }
    return true;
}

size_t api_view_utf8_complete (const uint8_t *data, size_t len)
{
    /* look back over at most 3 continuation bytes for a lead byte whose sequence runs
       past the end */
    for (size_t back = 1; back <= 4 && back <= len; back++) {
        uint8_t c = data[len - back];
        if ((c & 0xC0) == 0x80)
            continue; /* continuation: keep looking */
        size_t need = (c & 0xE0) == 0xC0   ? 2
                      : (c & 0xF0) == 0xE0 ? 3
                      : (c & 0xF8) == 0xF0 ? 4
                                           : 1;
        return need > back ? len - back : len;
    }
    return len;
}

int api_view_set_text (json_t *obj, const char *key, const char *encoding_key,
                       const uint8_t *data, size_t len)
{
    if (api_view_utf8_valid (data, len)) {
        json_t *s = json_stringn ((const char *)(data ? data : (const uint8_t *)""), len);
        if (s)
            return json_object_set_new (obj, key, s);
    }
    size_t b64_len = sodium_base64_ENCODED_LEN (len, sodium_base64_VARIANT_ORIGINAL);
    char *b64 = malloc (b64_len);
    if (!b64)
        return -1;
    sodium_bin2base64 (b64, b64_len, data, len, sodium_base64_VARIANT_ORIGINAL);
    int rc = json_object_set_new (obj, key, json_string (b64));
    free (b64);
    if (encoding_key)
        json_object_set_new (obj, encoding_key, json_string ("base64"));
    return rc;
}

const char *api_view_exec_status (const lss_exec_end_t *end)
{
    if (!end || (end->error && *end->error && !end->timed_out))
        return "error";
    if (end->timed_out)
        return "timeout";
    if (end->cancelled)
        return "cancelled";
    return end->exit_code == 0 && end->signal == 0 ? "completed" : "failed";
}

json_t *api_view_execution (const char *execution_id, const lss_exec_end_t *end,
                            const char *error, const uint8_t *out, size_t out_len,
                            const uint8_t *err, size_t err_len, int64_t started_ms,
                            int64_t ended_ms)
{
    json_t *v = json_pack (
        "{s:s, s:s, s:o, s:o, s:I, s:I}", "executionId", execution_id, "status",
        api_view_exec_status (end), "startedAt", api_view_time (started_ms), "completedAt",
        api_view_time (ended_ms), "exitCode", (json_int_t)(end ? end->exit_code : -1),
        "durationMs", (json_int_t)(end && end->wall_ms ? end->wall_ms : ended_ms - started_ms));
    if (!v)
        return NULL;
    api_view_set_text (v, "stdout", "stdoutEncoding", out, out_len);
    api_view_set_text (v, "stderr", "stderrEncoding", err, err_len);
    json_object_set_new (v, "stdoutTruncated", json_boolean (end && end->stdout_truncated));
    json_object_set_new (v, "stderrTruncated", json_boolean (end && end->stderr_truncated));
    json_object_set_new (v, "timedOut", json_boolean (end && end->timed_out));
    json_object_set_new (v, "signal", json_integer (end ? end->signal : 0));
    json_object_set_new (v, "stdoutBytes", json_integer (end ? end->stdout_bytes : 0));
    json_object_set_new (v, "stderrBytes", json_integer (end ? end->stderr_bytes : 0));
    json_object_set_new (v, "usage",
                         json_pack ("{s:I, s:I}", "cpuMs", (json_int_t)(end ? end->cpu_ms : 0),
                                    "maxRssKb", (json_int_t)(end ? end->max_rss_kb : 0)));
    const char *why =
        error && *error ? error : (end && end->error && *end->error ? end->error : NULL);
    if (why)
        json_object_set_new (v, "error", json_string (why));
    return v;
}

json_t *api_view_runtime (const json_t *obj)
{
    const char *name = lss_obj_str (obj, "metadata.name");
    const char *lang = lss_obj_str (obj, "spec.language");
    const char *ver = lss_obj_str (obj, "spec.version");
    char runtime[160] = "";
    if (lang && ver)
        snprintf (runtime, sizeof runtime, "%s:%s", lang, ver);
    json_t *avail = lss_obj_at (obj, "status.available");
    json_t *v = json_pack (
        "{s:s, s:s, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:b}", "id", name ? name : "",
        "name", name ? name : "", "runtime", *runtime ? json_string (runtime) : json_null (),
        "language", s_str_or_null (obj, "spec.language"), "version",
        s_str_or_null (obj, "spec.version"), "image", s_str_or_null (obj, "spec.image"), "tags",
        s_copy_or (obj, "spec.tags", json_array ()), "preInstalledPackages",
        s_copy_or (obj, "spec.preInstalledPackages", json_array ()), "packageManager",
        s_str_or_null (obj, "spec.packageManager"), "securityFeatures",
        s_copy_or (obj, "spec.securityFeatures", json_array ()), "resourceRequirements",
        s_copy_or (obj, "spec.resourceRequirements", json_object ()), "available",
        json_is_boolean (avail) ? json_is_true (avail) : true);
    return v;
}

json_t *api_view_profile (const json_t *obj)
{
    const char *name = lss_obj_str (obj, "metadata.name");
    return json_pack (
        "{s:s, s:s, s:o, s:o, s:o, s:o, s:o, s:o, s:o}", "id", name ? name : "", "name",
        name ? name : "", "language", s_str_or_null (obj, "spec.language"), "securityLevel",
        s_str_or_null (obj, "spec.securityLevel"), "seccompProfile",
        s_str_or_null (obj, "spec.seccompProfile"), "networkPolicies",
        s_copy_or (obj, "spec.networkPolicies", json_array ()), "preInstalledPackages",
        s_copy_or (obj, "spec.preInstalledPackages", json_array ()), "resourceDefaults",
        s_copy_or (obj, "spec.resourceDefaults", json_object ()), "filesystemConfig",
        s_copy_or (obj, "spec.filesystemConfig", json_object ()));
}

json_t *api_view_warmpool_status (const json_t *obj)
{
    return json_pack ("{s:I, s:I, s:I, s:o, s:o}", "availablePods",
                      (json_int_t)lss_obj_int (obj, "status.availablePods", 0), "assignedPods",
                      (json_int_t)lss_obj_int (obj, "status.assignedPods", 0), "pendingPods",
                      (json_int_t)lss_obj_int (obj, "status.pendingPods", 0), "lastScaleTime",
                      s_str_or_null (obj, "status.lastScaleTime"), "conditions",
                      s_copy_or (obj, "status.conditions", json_array ()));
}

json_t *api_view_warmpool (const json_t *obj)
{
    const char *name = lss_obj_str (obj, "metadata.name");
    json_t *spec = lss_obj_at (obj, "spec");
    json_t *v = json_is_object (spec) ? json_deep_copy (spec) : json_object ();
    if (!v)
        return NULL;
    json_object_set_new (v, "name", json_string (name ? name : ""));
    json_object_set_new (v, "createdAt", s_str_or_null (obj, "metadata.creationTimestamp"));
    json_object_set_new (v, "status", api_view_warmpool_status (obj));
    return v;
}

json_t *api_view_user (const api_user_t *u)
{
    return json_pack ("{s:s, s:s, s:o, s:s, s:o}", "id", u->id, "username", u->username,
                      "email", u->email[0] ? json_string (u->email) : json_null (), "role",
                      u->role, "createdAt", api_view_time (u->created_ms));
}

json_t *api_view_key (const api_key_t *k)
{
    return json_pack ("{s:s, s:s, s:s, s:o, s:o, s:o, s:o, s:b}", "id", k->id, "name", k->name,
                      "prefix", k->prefix, "createdAt", api_view_time (k->created_ms),
                      "expiresAt", api_view_time (k->expires_ms), "lastUsedAt",
                      api_view_time (k->last_used_ms), "revokedAt",
                      api_view_time (k->revoked_ms), "active", k->revoked_ms == 0);
}

json_t *api_view_page (const char *name, json_t *items, int limit, int offset, int64_t total)
{
    return json_pack ("{s:o, s:{s:i, s:i, s:I}}", name, items ? items : json_array (),
                      "pagination", "limit", limit, "offset", offset, "total",
                      (json_int_t)total);
}
