/*  lss_obj — helpers for Kubernetes-shaped objects. See lss_obj.h. */
#include "lss_obj.h"

#include <ctype.h>
#include <string.h>

#include "lss_store.h"
#include "lss_util.h"

#define S_PATH_MAX 256

json_t *lss_obj_at (const json_t *obj, const char *path)
{
    if (!obj || !path || strlen (path) >= S_PATH_MAX)
        return NULL;
    char buf[S_PATH_MAX];
    snprintf (buf, sizeof buf, "%s", path);
    json_t *cur = (json_t *)obj;
    char *save = NULL;
    for (char *seg = strtok_r (buf, ".", &save); seg; seg = strtok_r (NULL, ".", &save)) {
        if (!json_is_object (cur))
            return NULL;
        cur = json_object_get (cur, seg);
        if (!cur)
            return NULL;
    }
    return cur;
}

const char *lss_obj_str (const json_t *obj, const char *path)
{
    return json_string_value (lss_obj_at (obj, path));
}

int64_t lss_obj_int (const json_t *obj, const char *path, int64_t dflt)
{
    json_t *v = lss_obj_at (obj, path);
    return json_is_integer (v) ? (int64_t)json_integer_value (v) : dflt;
}

static const char *s_meta_map_get (const json_t *obj, const char *map, const char *key)
{
    json_t *m = lss_obj_at (obj, map);
    return json_is_object (m) ? json_string_value (json_object_get (m, key)) : NULL;
}

const char *lss_obj_label (const json_t *obj, const char *key)
{
    return s_meta_map_get (obj, "metadata.labels", key);
}

const char *lss_obj_annotation (const json_t *obj, const char *key)
{
    return s_meta_map_get (obj, "metadata.annotations", key);
}

/*  obj[key] as an object, created (replacing a non-object) when missing. */
static json_t *s_child_object (json_t *obj, const char *key)
{
    json_t *c = json_object_get (obj, key);
    if (json_is_object (c))
        return c;
    c = json_object ();
    if (!c || json_object_set_new (obj, key, c))
        return NULL;
    return c;
}

static int s_meta_map_set (json_t *obj, const char *map, const char *key, const char *value)
{
    if (!json_is_object (obj) || !key || !value)
        return -1;
    json_t *meta = s_child_object (obj, "metadata");
    json_t *m = meta ? s_child_object (meta, map) : NULL;
    return m && json_object_set_new (m, key, json_string (value)) == 0 ? 0 : -1;
}

int lss_obj_set_label (json_t *obj, const char *key, const char *value)
{
    return s_meta_map_set (obj, "labels", key, value);
}

int lss_obj_set_annotation (json_t *obj, const char *key, const char *value)
{
    return s_meta_map_set (obj, "annotations", key, value);
}

int lss_obj_sanitize_label (const char *in, char *out, size_t out_size)
{
    if (!in || !out || out_size == 0)
        return -1;
    size_t n = 0;
    for (const char *p = in; *p && n < 63; p++) {
        unsigned char c = (unsigned char)*p;
        bool ok = isalnum (c) || c == '-' || c == '_' || c == '.';
        if (n == 0 && !isalnum (c))
            continue; /* must start alphanumeric */
        if (n + 1 >= out_size)
            return -1;
        out[n++] = ok && c < 0x80 ? (char)c : '-';
    }
    while (n > 0 && !isalnum ((unsigned char)out[n - 1]))
        n--;
    out[n] = '\0';
    return n > 0 ? 0 : -1;
}

int lss_obj_split_ref (const char *ref, char *ns, size_t ns_size, char *name, size_t name_size)
{
    if (!ref)
        return -1;
    const char *slash = strchr (ref, '/');
    if (!slash || strchr (slash + 1, '/') || slash == ref || !slash[1])
        return -1;
    size_t ns_len = (size_t)(slash - ref);
    if (ns_len >= ns_size || ns_len > LSS_STORE_NAMESPACE_MAX ||
        strlen (slash + 1) >= name_size)
        return -1;
    memcpy (ns, ref, ns_len);
    ns[ns_len] = '\0';
    snprintf (name, name_size, "%s", slash + 1);
    if (lss_store_check_name ("namespace", ns, NULL, 0) ||
        lss_store_check_name ("name", name, NULL, 0))
        return -1;
    return 0;
}

json_t *lss_obj_condition (const json_t *obj, const char *type)
{
    json_t *conds = lss_obj_at (obj, "status.conditions");
    size_t i;
    json_t *c;
    if (!json_is_array (conds) || !type)
        return NULL;
    json_array_foreach (conds, i, c)
    {
        const char *t = json_string_value (json_object_get (c, "type"));
        if (t && strcmp (t, type) == 0)
            return c;
    }
    return NULL;
}

static bool s_same (const json_t *obj, const char *key, const char *value)
{
    const char *v = json_string_value (json_object_get (obj, key));
    return (!v && !value) || (v && value && strcmp (v, value) == 0);
}

int lss_obj_set_condition (json_t *obj, const char *type, const char *status,
                           const char *reason, const char *message, int64_t now_ms)
{
    if (!json_is_object (obj) || !type || !status)
        return -1;
    json_t *st = s_child_object (obj, "status");
    if (!st)
        return -1;
    json_t *conds = json_object_get (st, "conditions");
    if (!json_is_array (conds)) {
        conds = json_array ();
        if (!conds || json_object_set_new (st, "conditions", conds))
            return -1;
    }
    json_t *c = lss_obj_condition (obj, type);
    if (c && s_same (c, "status", status) && s_same (c, "reason", reason) &&
        s_same (c, "message", message))
        return 0;
    char ts[LSS_TIME_RFC3339_SIZE];
    lss_time_rfc3339 (now_ms, ts);
    if (!c) {
        c = json_object ();
        if (!c || json_array_append_new (conds, c))
            return -1;
        json_object_set_new (c, "type", json_string (type));
    }
    if (!s_same (c, "status", status) || !json_object_get (c, "lastTransitionTime"))
        json_object_set_new (c, "lastTransitionTime", json_string (ts));
    json_object_set_new (c, "status", json_string (status));
    if (reason)
        json_object_set_new (c, "reason", json_string (reason));
    else
        json_object_del (c, "reason");
    if (message)
        json_object_set_new (c, "message", json_string (message));
    else
        json_object_del (c, "message");
    return 1;
}

json_t *lss_obj_owner_ref (const json_t *owner)
{
    const char *api = lss_obj_str (owner, "apiVersion");
    const char *kind = lss_obj_str (owner, "kind");
    const char *name = lss_obj_str (owner, "metadata.name");
    const char *uid = lss_obj_str (owner, "metadata.uid");
    if (!api || !kind || !name || !uid)
        return NULL;
    return json_pack ("{s:s, s:s, s:s, s:s, s:b, s:b}", "apiVersion", api, "kind", kind, "name",
                      name, "uid", uid, "controller", 1, "blockOwnerDeletion", 1);
}

bool lss_obj_owned_by (const json_t *obj, const char *uid)
{
    json_t *refs = lss_obj_at (obj, "metadata.ownerReferences");
    size_t i;
    json_t *r;
    if (!json_is_array (refs) || !uid)
        return false;
    json_array_foreach (refs, i, r)
    {
        if (s_same (r, "uid", uid))
            return true;
    }
    return false;
}

static long s_finalizer_index (const json_t *obj, const char *name)
{
    json_t *fin = lss_obj_at (obj, "metadata.finalizers");
    size_t i;
    json_t *f;
    if (!json_is_array (fin) || !name)
        return -1;
    json_array_foreach (fin, i, f)
    {
        const char *s = json_string_value (f);
        if (s && strcmp (s, name) == 0)
            return (long)i;
    }
    return -1;
}

bool lss_obj_has_finalizer (const json_t *obj, const char *name)
{
    return s_finalizer_index (obj, name) >= 0;
}

int lss_obj_add_finalizer (json_t *obj, const char *name)
{
    if (!json_is_object (obj) || !name)
        return -1;
    if (lss_obj_has_finalizer (obj, name))
        return 0;
    json_t *meta = s_child_object (obj, "metadata");
    if (!meta)
        return -1;
    json_t *fin = json_object_get (meta, "finalizers");
    if (!json_is_array (fin)) {
        fin = json_array ();
        if (!fin || json_object_set_new (meta, "finalizers", fin))
            return -1;
    }
    return json_array_append_new (fin, json_string (name)) ? -1 : 1;
}

int lss_obj_remove_finalizer (json_t *obj, const char *name)
{
    long i = s_finalizer_index (obj, name);
    if (i < 0)
        return 0;
    return json_array_remove (lss_obj_at (obj, "metadata.finalizers"), (size_t)i) ? -1 : 1;
}

bool lss_obj_deleting (const json_t *obj)
{
    return lss_obj_str (obj, "metadata.deletionTimestamp") != NULL;
}

/* ------------------------------------------------------------------ quantities */

/*  Parses "<digits>[.<digits>]" into an integer scaled by 10^scale_digits (fraction
 *  digits past that are refused). Returns the number of bytes consumed, or -1. */
static int s_parse_decimal (const char *text, int scale_digits, int64_t *out)
{
    const char *p = text;
    int64_t v = 0;
    int digits = 0;
    while (isdigit ((unsigned char)*p)) {
        if (v > (INT64_MAX - 9) / 10)
            return -1;
        v = v * 10 + (*p++ - '0');
        digits++;
    }
    int frac = 0;
    if (*p == '.') {
        p++;
        while (isdigit ((unsigned char)*p)) {
            if (frac >= scale_digits)
                return -1;
            if (v > (INT64_MAX - 9) / 10)
                return -1;
            v = v * 10 + (*p++ - '0');
            frac++;
            digits++;
        }
    }
    if (digits == 0)
        return -1;
    for (; frac < scale_digits; frac++) {
        if (v > INT64_MAX / 10)
            return -1;
        v *= 10;
    }
    *out = v;
    return (int)(p - text);
}

int lss_obj_parse_cpu (const char *text, int64_t *millicores)
{
    if (!text || !*text || strlen (text) > 32)
        return -1;
    int64_t v;
    size_t len = strlen (text);
    if (text[len - 1] == 'm') {
        int n = s_parse_decimal (text, 0, &v);
        if (n < 0 || (size_t)n != len - 1)
            return -1;
    } else {
        int n = s_parse_decimal (text, 3, &v);
        if (n < 0 || (size_t)n != len)
            return -1;
    }
    *millicores = v;
    return 0;
}

int lss_obj_parse_bytes (const char *text, int64_t *bytes)
{
    static const struct {
        const char *suffix;
        int64_t mult;
    } units[] = {{"", 1},
                 {"k", 1000},
                 {"K", 1000},
                 {"M", 1000000},
                 {"G", 1000000000},
                 {"T", 1000000000000},
                 {"Ki", 1024},
                 {"Mi", 1024 * 1024},
                 {"Gi", 1024 * 1024 * 1024},
                 {"Ti", 1024LL * 1024 * 1024 * 1024},
                 {NULL, 0}};
    if (!text || !*text || strlen (text) > 32)
        return -1;
    int64_t v;
    int n = s_parse_decimal (text, 0, &v);
    if (n < 0)
        return -1;
    const char *suffix = text + n;
    if (suffix[0] == 'e' && isdigit ((unsigned char)suffix[1]) && !suffix[2]) {
        for (int e = suffix[1] - '0'; e > 0; e--) {
            if (v > INT64_MAX / 10)
                return -1;
            v *= 10;
        }
        *bytes = v;
        return 0;
    }
    for (int i = 0; units[i].suffix; i++) {
        if (strcmp (suffix, units[i].suffix) == 0) {
            if (v > INT64_MAX / units[i].mult)
                return -1;
            *bytes = v * units[i].mult;
            return 0;
        }
    }
    return -1;
}

const char *lss_obj_agent_language (const char *lang)
{
    if (!lang)
        return NULL;
    if (strcmp (lang, "nodejs") == 0 || strcmp (lang, "javascript") == 0)
        return "node";
    return lang;
}
