/*  lss_store_valid — input validation shared by every object-store backend.
 *
 *  Design note: the rules are Kubernetes' own (DNS-1123 names, qualified label keys,
 *  label values, ownerReference fields), so an object the PostgreSQL backend accepts is
 *  one the API server would accept too. Every failure names the offending field.
 */
#include "lss_store.h"
#include "lss_util.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#define S_LABEL_NAME_MAX        63
#define S_LABELS_MAX            64
#define S_ANNOTATIONS_MAX_BYTES (256 * 1024)
#define S_FINALIZERS_MAX        32
#define S_OWNER_REFS_MAX        16
#define S_FIELD_STR_MAX         253
#define S_SELECTOR_MAX          4096 /* bytes of a label selector */

static bool s_alnum_lower (char c)
{
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

static bool s_alnum (char c)
{
    return s_alnum_lower (c) || (c >= 'A' && c <= 'Z');
}

/*  DNS-1123 label: [a-z0-9]([-a-z0-9]*[a-z0-9])?, 1..63 bytes. */
static bool s_is_dns_label (const char *s, size_t len)
{
    if (len == 0 || len > 63 || !s_alnum_lower (s[0]) || !s_alnum_lower (s[len - 1]))
        return false;
    for (size_t i = 0; i < len; i++)
        if (!s_alnum_lower (s[i]) && s[i] != '-')
            return false;
    return true;
}

/*  DNS-1123 subdomain: dot-separated labels, at most 253 bytes. */
static bool s_is_dns_subdomain (const char *s, size_t len)
{
    if (len == 0 || len > LSS_STORE_NAME_MAX)
        return false;
    size_t start = 0;
    for (size_t i = 0; i <= len; i++) {
        if (i == len || s[i] == '.') {
            if (!s_is_dns_label (s + start, i - start))
                return false;
            start = i + 1;
        }
    }
    return true;
}

/*  Label name part / value: up to 63 of [A-Za-z0-9-_.], alphanumeric at both ends. */
static bool s_is_label_token (const char *s, size_t len)
{
    if (len == 0 || len > S_LABEL_NAME_MAX || !s_alnum (s[0]) || !s_alnum (s[len - 1]))
        return false;
    for (size_t i = 0; i < len; i++)
        if (!s_alnum (s[i]) && s[i] != '-' && s[i] != '_' && s[i] != '.')
            return false;
    return true;
}

int lss_store_check_name (const char *field, const char *name, char *err, size_t err_size)
{
    if (!name || !s_is_dns_subdomain (name, strnlen (name, LSS_STORE_NAME_MAX + 1))) {
        lss_errf (err, err_size,
                  "%s: must be a DNS-1123 subdomain (lower-case alphanumerics, '-', '.'; "
                  "at most %d bytes)",
                  field, LSS_STORE_NAME_MAX);
        return -1;
    }
    return 0;
}

int lss_store_check_qualified_name (const char *field, const char *key, char *err,
                                    size_t err_size)
{
    if (!key)
        goto bad;
    size_t len = strnlen (key, 2 * LSS_STORE_NAME_MAX);
    const char *slash = memchr (key, '/', len);
    if (slash) {
        if (!s_is_dns_subdomain (key, (size_t)(slash - key)))
            goto bad;
        if (!s_is_label_token (slash + 1, len - (size_t)(slash + 1 - key)))
            goto bad;
    } else if (!s_is_label_token (key, len))
        goto bad;
    return 0;
bad:
    lss_errf (err, err_size,
              "%s: key must be [prefix/]name with a DNS-1123 prefix and a name of at most 63 "
              "alphanumerics, '-', '_', '.'",
              field);
    return -1;
}

int lss_store_check_label_value (const char *field, const char *value, char *err,
                                 size_t err_size)
{
    if (value &&
        (value[0] == '\0' || s_is_label_token (value, strnlen (value, S_LABEL_NAME_MAX + 1))))
        return 0;
    lss_errf (err, err_size,
              "%s: value must be empty or at most 63 alphanumerics, '-', '_', '.'", field);
    return -1;
}

static const lss_store_kind_t s_kinds[] = {
    {"Sandbox", "llmsafespace.dev/v1", "sandboxes", 0},
    {"WarmPool", "llmsafespace.dev/v1", "warmpools", 0},
    {"WarmPod", "llmsafespace.dev/v1", "warmpods", 0},
    {"SandboxProfile", "llmsafespace.dev/v1", "sandboxprofiles", 0},
    {"RuntimeEnvironment", "llmsafespace.dev/v1", "runtimeenvironments", 1},
    {"Pod", "v1", "pods", 0},
    {"Secret", "v1", "secrets", 0},
    {"Service", "v1", "services", 0},
    {"Event", "v1", "events", 0},
    {"PersistentVolumeClaim", "v1", "persistentvolumeclaims", 0},
    {"NetworkPolicy", "networking.k8s.io/v1", "networkpolicies", 0},
    {"Lease", "coordination.k8s.io/v1", "leases", 0},
};

const lss_store_kind_t *lss_store_kind_info (const char *kind)
{
    if (!kind)
        return NULL;
    for (size_t i = 0; i < sizeof s_kinds / sizeof s_kinds[0]; i++)
        if (strcmp (kind, s_kinds[i].kind) == 0)
            return &s_kinds[i];
    return NULL;
}

int lss_store_kind_scope (const char *kind)
{
    const lss_store_kind_t *k = lss_store_kind_info (kind);
    return k ? k->cluster_scoped : -1;
}

int lss_store_check_selector (const char *selector, char *err, size_t err_size)
{
    if (!selector || !selector[0])
        return 0;
    size_t len = strnlen (selector, S_SELECTOR_MAX + 1);
    if (len > S_SELECTOR_MAX) {
        lss_errf (err, err_size, "labelSelector: longer than %d bytes", S_SELECTOR_MAX);
        return LSS_STORE_INVALID;
    }
    char copy[S_SELECTOR_MAX + 1];
    memcpy (copy, selector, len + 1);
    int terms = 0;
    char *save = NULL;
    for (char *t = strtok_r (copy, ",", &save); t; t = strtok_r (NULL, ",", &save)) {
        if (++terms > LSS_STORE_SELECTOR_MAX_TERMS) {
            lss_errf (err, err_size, "labelSelector: more than %d terms",
                      LSS_STORE_SELECTOR_MAX_TERMS);
            return LSS_STORE_INVALID;
        }
        char *key = t, *value = NULL, *op;
        if ((op = strstr (t, "!="))) {
            *op = '\0';
            value = op + 2;
        } else if ((op = strstr (t, "=="))) {
            *op = '\0';
            value = op + 2;
        } else if ((op = strchr (t, '='))) {
            *op = '\0';
            value = op + 1;
        } else if (t[0] == '!')
            key = t + 1;
        if (lss_store_check_qualified_name ("labelSelector", key, err, err_size) != 0 ||
            (value && lss_store_check_label_value ("labelSelector", value, err, err_size) != 0))
            return LSS_STORE_INVALID;
    }
    return 0;
}

static int s_check_string_field (const json_t *obj, const char *key, const char *field,
                                 bool required, char *err, size_t err_size)
{
    const json_t *v = json_object_get (obj, key);
    if (!v && !required)
        return 0;
    if (!json_is_string (v) || json_string_length (v) == 0 ||
        json_string_length (v) > S_FIELD_STR_MAX) {
        lss_errf (err, err_size, "%s: must be a non-empty string of at most %d bytes", field,
                  S_FIELD_STR_MAX);
        return -1;
    }
    return 0;
}

static int s_check_labels (const json_t *labels, char *err, size_t err_size)
{
    if (!labels)
        return 0;
    if (!json_is_object (labels) || json_object_size (labels) > S_LABELS_MAX) {
        lss_errf (err, err_size, "metadata.labels: must be an object of at most %d entries",
                  S_LABELS_MAX);
        return -1;
    }
    const char *k;
    json_t *v;
    json_object_foreach ((json_t *)labels, k, v)
    {
        char field[128];
        lss_fmt (field, sizeof field, "metadata.labels[%.80s]", k);
        if (lss_store_check_qualified_name (field, k, err, err_size) != 0)
            return -1;
        if (!json_is_string (v)) {
            lss_errf (err, err_size, "%s: value must be a string", field);
            return -1;
        }
        if (lss_store_check_label_value (field, json_string_value (v), err, err_size) != 0)
            return -1;
    }
    return 0;
}

static int s_check_annotations (const json_t *ann, char *err, size_t err_size)
{
    if (!ann)
        return 0;
    if (!json_is_object (ann)) {
        lss_errf (err, err_size, "metadata.annotations: must be an object");
        return -1;
    }
    size_t total = 0;
    const char *k;
    json_t *v;
    json_object_foreach ((json_t *)ann, k, v)
    {
        char field[128];
        lss_fmt (field, sizeof field, "metadata.annotations[%.80s]", k);
        if (lss_store_check_qualified_name (field, k, err, err_size) != 0)
            return -1;
        if (!json_is_string (v)) {
            lss_errf (err, err_size, "%s: value must be a string", field);
            return -1;
        }
        total += strlen (k) + json_string_length (v);
        if (total > S_ANNOTATIONS_MAX_BYTES) {
            lss_errf (err, err_size, "metadata.annotations: more than %d bytes in total",
                      S_ANNOTATIONS_MAX_BYTES);
            return -1;
        }
    }
    return 0;
}

static int s_check_finalizers (const json_t *fin, char *err, size_t err_size)
{
    if (!fin)
        return 0;
    if (!json_is_array (fin) || json_array_size (fin) > S_FINALIZERS_MAX) {
        lss_errf (err, err_size, "metadata.finalizers: must be an array of at most %d names",
                  S_FINALIZERS_MAX);
        return -1;
    }
    size_t i;
    json_t *v;
    json_array_foreach (fin, i, v)
    {
        char field[64];
        lss_fmt (field, sizeof field, "metadata.finalizers[%zu]", i);
        if (!json_is_string (v)) {
            lss_errf (err, err_size, "%s: must be a string", field);
            return -1;
        }
        if (lss_store_check_qualified_name (field, json_string_value (v), err, err_size) != 0)
            return -1;
    }
    return 0;
}

static int s_check_owner_refs (const json_t *refs, char *err, size_t err_size)
{
    if (!refs)
        return 0;
    if (!json_is_array (refs) || json_array_size (refs) > S_OWNER_REFS_MAX) {
        lss_errf (err, err_size,
                  "metadata.ownerReferences: must be an array of at most %d references",
                  S_OWNER_REFS_MAX);
        return -1;
    }
    int controllers = 0;
    size_t i;
    json_t *r;
    json_array_foreach (refs, i, r)
    {
        char field[96];
        if (!json_is_object (r)) {
            lss_errf (err, err_size, "metadata.ownerReferences[%zu]: must be an object", i);
            return -1;
        }
        static const char *keys[] = {"apiVersion", "kind", "name", "uid"};
        for (size_t k = 0; k < 4; k++) {
            lss_fmt (field, sizeof field, "metadata.ownerReferences[%zu].%s", i, keys[k]);
            if (s_check_string_field (r, keys[k], field, true, err, err_size) != 0)
                return -1;
        }
        lss_fmt (field, sizeof field, "metadata.ownerReferences[%zu].name", i);
        if (lss_store_check_name (field, json_string_value (json_object_get (r, "name")), err,
                                  err_size) != 0)
            return -1;
        const json_t *ctl = json_object_get (r, "controller");
        if (ctl && !json_is_boolean (ctl)) {
            lss_errf (err, err_size,
                      "metadata.ownerReferences[%zu].controller: must be a "
                      "boolean",
                      i);
            return -1;
        }
        if (json_is_true (ctl))
            controllers++;
    }
    if (controllers > 1) {
        lss_errf (err, err_size,
                  "metadata.ownerReferences: only one reference can have "
                  "controller set to true");
        return -1;
    }
    return 0;
}

int lss_store_validate (const json_t *obj, int need_name, char *err, size_t err_size)
{
    if (!json_is_object (obj)) {
        lss_errf (err, err_size, "object: must be a JSON object");
        return LSS_STORE_INVALID;
    }
    if (s_check_string_field (obj, "apiVersion", "apiVersion", true, err, err_size) != 0 ||
        s_check_string_field (obj, "kind", "kind", true, err, err_size) != 0)
        return LSS_STORE_INVALID;
    const char *kind = json_string_value (json_object_get (obj, "kind"));
    int scope = lss_store_kind_scope (kind);
    if (scope < 0) {
        lss_errf (err, err_size, "kind: unknown kind \"%.64s\"", kind);
        return LSS_STORE_INVALID;
    }
    const json_t *meta = json_object_get (obj, "metadata");
    if (!json_is_object (meta)) {
        lss_errf (err, err_size, "metadata: must be an object");
        return LSS_STORE_INVALID;
    }
    const json_t *ns = json_object_get (meta, "namespace");
    const char *nss = ns ? json_string_value (ns) : "";
    if (ns && !json_is_string (ns)) {
        lss_errf (err, err_size, "metadata.namespace: must be a string");
        return LSS_STORE_INVALID;
    }
    if (scope == 1 && nss[0] != '\0') {
        lss_errf (err, err_size, "metadata.namespace: must be empty for cluster-scoped %s",
                  kind);
        return LSS_STORE_INVALID;
    }
    if (scope == 0 && !s_is_dns_label (nss, strnlen (nss, 64))) {
        lss_errf (err, err_size,
                  "metadata.namespace: must be a DNS-1123 label (at most 63 bytes) for %s",
                  kind);
        return LSS_STORE_INVALID;
    }
    const json_t *name = json_object_get (meta, "name");
    const json_t *gen = json_object_get (meta, "generateName");
    if (name || need_name) {
        if (!json_is_string (name) ||
            lss_store_check_name ("metadata.name", json_string_value (name), err, err_size) !=
                0) {
            if (!json_is_string (name))
                lss_errf (err, err_size, "metadata.name: required string");
            return LSS_STORE_INVALID;
        }
    } else {
        /* generateName + 5 characters must make a valid name */
        char probe[LSS_STORE_NAME_MAX + 8];
        if (!json_is_string (gen) ||
            lss_fmt (probe, sizeof probe, "%sx0000", json_string_value (gen)) != 0 ||
            lss_store_check_name ("metadata.generateName", probe, err, err_size) != 0) {
            if (!json_is_string (gen))
                lss_errf (err, err_size, "metadata.name: name or generateName is required");
            else
                lss_errf (err, err_size,
                          "metadata.generateName: with 5 characters appended "
                          "must be a DNS-1123 subdomain of at most %d bytes",
                          LSS_STORE_NAME_MAX);
            return LSS_STORE_INVALID;
        }
    }
    if (s_check_labels (json_object_get (meta, "labels"), err, err_size) != 0 ||
        s_check_annotations (json_object_get (meta, "annotations"), err, err_size) != 0 ||
        s_check_finalizers (json_object_get (meta, "finalizers"), err, err_size) != 0 ||
        s_check_owner_refs (json_object_get (meta, "ownerReferences"), err, err_size) != 0)
        return LSS_STORE_INVALID;
    const json_t *spec = json_object_get (obj, "spec");
    if (spec && !json_is_object (spec) && !json_is_null (spec)) {
        lss_errf (err, err_size, "spec: must be an object");
        return LSS_STORE_INVALID;
    }
    const json_t *status = json_object_get (obj, "status");
    if (status && !json_is_object (status) && !json_is_null (status)) {
        lss_errf (err, err_size, "status: must be an object");
        return LSS_STORE_INVALID;
    }
    char *text = json_dumps (obj, JSON_COMPACT);
    size_t len = text ? strlen (text) : 0;
    free (text);
    if (!text || len > LSS_STORE_OBJECT_MAX_BYTES) {
        lss_errf (err, err_size, "object: larger than %d bytes serialized",
                  LSS_STORE_OBJECT_MAX_BYTES);
        return LSS_STORE_INVALID;
    }
    return LSS_STORE_OK;
}
