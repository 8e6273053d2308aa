/*  lss_store_k8s — the object store over the Kubernetes REST API. See lss_store_k8s.h.
 *
 *  Design note: every call is one request through lss_k8s_client_request (synchronous,
 *  bounded by k8s.request_timeout, retried on 429/5xx), after the same client-side
 *  validation as the PostgreSQL backend (lss_store_validate, the selector and key
 *  checks), so both backends refuse bad input with the same messages; what only the
 *  server can judge (resourceVersion conflicts, schema, admission) comes back as its
 *  Status message. The server is trusted for nothing else: every answer is type-checked
 *  (items an array, metadata an object, resourceVersion a string...) and anything else
 *  is LSS_STORE_UNAVAILABLE. Kubernetes semantics the callers rely on and the server
 *  provides: status only through /status, generation, deletionTimestamp + finalizers,
 *  the garbage collector for ownerReferences (shortly after, not in the same
 *  transaction), 409 on a stale resourceVersion.
 */
#include "lss_store_k8s.h"
#include "lss_log.h"
#include "lss_util.h"

#include <stdlib.h>
#include <string.h>

#define S_GENERATE_TRIES 3   /* creates retried when a generated name is taken */
#define S_RV_MAX         128 /* longest resourceVersion accepted from the server */

typedef struct {
    lss_store_t base; /* first: the handle callers hold */
    lss_k8s_client_t *client;
} s_k8s_t;

/* ------------------------------------------------------------------ helpers */

int lss_store_k8s_path (const lss_store_kind_t *kind, const char *ns, const char *name,
                        const char *sub, const char *query, char *out, size_t size)
{
    const char *group_root = strchr (kind->api_version, '/') ? "/apis/" : "/api/";
    bool with_ns = !kind->cluster_scoped && ns && ns[0];
    return lss_fmt (out, size, "%s%s/%s%s%s%s%s%s%s%s%s", group_root, kind->api_version,
                    with_ns ? "namespaces/" : "", with_ns ? ns : "", with_ns ? "/" : "",
                    kind->plural, name ? "/" : "", name ? name : "", sub ? "/" : "",
                    sub ? sub : "", query && query[0] ? "?" : "");
}

void lss_store_k8s_fill_type (json_t *obj, const lss_store_kind_t *kind)
{
    if (!json_is_string (json_object_get (obj, "apiVersion")))
        json_object_set_new (obj, "apiVersion", json_string (kind->api_version));
    if (!json_is_string (json_object_get (obj, "kind")))
        json_object_set_new (obj, "kind", json_string (kind->kind));
}

int lss_store_k8s_check_key (const char *kind, const char *ns, const char *name, bool all_ns_ok,
                             const lss_store_kind_t **info, char *err, size_t err_size)
{
    const lss_store_kind_t *k = lss_store_kind_info (kind);
    *info = k;
    if (!k) {
        lss_errf (err, err_size, "kind: unknown kind \"%.64s\"", kind ? kind : "");
        return LSS_STORE_INVALID;
    }
    bool empty = !ns || !ns[0];
    if (k->cluster_scoped && !empty) {
        lss_errf (err, err_size, "metadata.namespace: must be empty for %s", kind);
        return LSS_STORE_INVALID;
    }
    if (!k->cluster_scoped && empty && !all_ns_ok) {
        lss_errf (err, err_size, "metadata.namespace: required (at most 63 bytes) for %s",
                  kind);
        return LSS_STORE_INVALID;
    }
    if (!k->cluster_scoped && !empty &&
        (strlen (ns) > LSS_STORE_NAMESPACE_MAX ||
         lss_store_check_name ("metadata.namespace", ns, err, err_size) != 0 ||
         strchr (ns, '.'))) {
        lss_errf (err, err_size, "metadata.namespace: must be a DNS-1123 label for %s", kind);
        return LSS_STORE_INVALID;
    }
    if (name && lss_store_check_name ("metadata.name", name, err, err_size) != 0)
        return LSS_STORE_INVALID;
    return LSS_STORE_OK;
}

/*  The path with a query appended (query already escaped). */
static int s_path_q (const lss_store_kind_t *k, const char *ns, const char *name,
                     const char *sub, const char *query, char *out, size_t size, char *err,
                     size_t err_size)
{
    int rc = lss_store_k8s_path (k, ns, name, sub, query, out, size);
    if (rc == 0 && query && query[0]) {
        size_t used = strlen (out);
        rc = lss_fmt (out + used, size - used, "%s", query);
    }
    if (rc != 0) {
        lss_errf (err, err_size, "k8s: request path too long");
        return LSS_STORE_INVALID;
    }
    return LSS_STORE_OK;
}

/*  A server answer that must be an object of kind k with metadata: fills the type. */
static int s_check_object (json_t *obj, const lss_store_kind_t *k, char *err, size_t err_size)
{
    json_t *meta = json_object_get (obj, "metadata");
    if (!json_is_object (obj) || !json_is_object (meta) ||
        !json_is_string (json_object_get (meta, "name")) ||
        !json_is_string (json_object_get (meta, "resourceVersion"))) {
        lss_errf (err, err_size,
                  "k8s: the server answered an object without metadata.name "
                  "and metadata.resourceVersion");
        return LSS_STORE_UNAVAILABLE;
    }
    lss_store_k8s_fill_type (obj, k);
    return LSS_STORE_OK;
}

static const char *s_meta_str (const json_t *obj, const char *key)
{
    return json_string_value (json_object_get (json_object_get (obj, "metadata"), key));
}

/*  After an update or patch: an answer with deletionTimestamp and no finalizers means the
 *  server removed the object (the last finalizer went). */
static bool s_removed (const json_t *obj)
{
    const json_t *meta = json_object_get (obj, "metadata");
    return json_object_get (meta, "deletionTimestamp") &&
           json_array_size (json_object_get (meta, "finalizers")) == 0;
}

/* ------------------------------------------------------------------ calls */

static int s_k8s_get (lss_store_t *base, const char *kind, const char *ns, const char *name,
                      json_t **out, char *err, size_t err_size)
{
    s_k8s_t *self = (s_k8s_t *)base;
    const lss_store_kind_t *k;
    char path[LSS_K8S_PATH_MAX];
    *out = NULL;
    int rc = lss_store_k8s_check_key (kind, ns, name ? name : "", false, &k, err, err_size);
    if (rc == LSS_STORE_OK)
        rc = s_path_q (k, ns, name, NULL, NULL, path, sizeof path, err, err_size);
    json_t *obj = NULL;
    if (rc == LSS_STORE_OK)
        rc =
            lss_k8s_client_request (self->client, "GET", path, NULL, NULL, &obj, err, err_size);
    if (rc == LSS_STORE_OK)
        rc = s_check_object (obj, k, err, err_size);
    if (rc == LSS_STORE_OK) {
        *out = obj;
        obj = NULL;
    }
    json_decref (obj);
    return rc;
}

/*  Appends "&key=<escaped value>" (or without '&' at the start) to q. */
static int s_query_add (CURL *esc, char *q, size_t size, const char *key, const char *value)
{
    char *e = curl_easy_escape (esc, value, 0);
    if (!e)
        return -1;
    size_t used = strlen (q);
    int rc = lss_fmt (q + used, size - used, "%s%s=%s", used ? "&" : "", key, e);
    curl_free (e);
    return rc;
}

static int s_k8s_list (lss_store_t *base, const char *kind, const char *ns,
                       const char *label_selector, int limit, const char *continue_token,
                       json_t **out, char *err, size_t err_size)
{
    s_k8s_t *self = (s_k8s_t *)base;
    const lss_store_kind_t *k;
    *out = NULL;
    int rc = lss_store_k8s_check_key (kind, ns, NULL, true, &k, err, err_size);
    if (rc != LSS_STORE_OK)
        return rc;
    if (limit < 0 || limit > LSS_STORE_LIST_MAX_LIMIT) {
        lss_errf (err, err_size, "limit: must be 0..%d", LSS_STORE_LIST_MAX_LIMIT);
        return LSS_STORE_INVALID;
    }
    if ((rc = lss_store_check_selector (label_selector, err, err_size)) != LSS_STORE_OK)
        return rc;
    if (continue_token && strlen (continue_token) > LSS_K8S_PATH_MAX / 2) {
        lss_errf (err, err_size, "continue: malformed token");
        return LSS_STORE_INVALID;
    }
    char query[LSS_K8S_PATH_MAX] = "", num[16], path[LSS_K8S_PATH_MAX * 2];
    lss_fmt (num, sizeof num, "%d", limit ? limit : LSS_STORE_LIST_DEFAULT_LIMIT);
    CURL *esc = curl_easy_init ();
    if (!esc || s_query_add (esc, query, sizeof query, "limit", num) != 0 ||
        (continue_token && continue_token[0] &&
         s_query_add (esc, query, sizeof query, "continue", continue_token) != 0) ||
        (label_selector && label_selector[0] &&
         s_query_add (esc, query, sizeof query, "labelSelector", label_selector) != 0)) {
        curl_easy_cleanup (esc);
        lss_errf (err, err_size, "k8s: list query too long");
        return LSS_STORE_INVALID;
    }
    curl_easy_cleanup (esc);
    rc = s_path_q (k, ns, NULL, NULL, query, path, sizeof path, err, err_size);
    json_t *list = NULL, *result = NULL;
    if (rc == LSS_STORE_OK)
        rc = lss_k8s_client_request (self->client, "GET", path, NULL, NULL, &list, err,
                                     err_size);
    if (rc != LSS_STORE_OK)
        goto cleanup;
    json_t *items = json_object_get (list, "items");
    json_t *lmeta = json_object_get (list, "metadata");
    const char *rv = json_string_value (json_object_get (lmeta, "resourceVersion"));
    const json_t *cont = json_object_get (lmeta, "continue");
    if ((!json_is_array (items) && !json_is_null (items) && items) || !json_is_object (lmeta) ||
        !rv || strlen (rv) > S_RV_MAX || (cont && !json_is_string (cont))) {
        lss_errf (err, err_size,
                  "k8s: the server answered a list without items, metadata.resourceVersion "
                  "or a string continue");
        rc = LSS_STORE_UNAVAILABLE;
        goto cleanup;
    }
    result = json_pack ("{s:[], s:{s:s}}", "items", "metadata", "resourceVersion", rv);
    if (!result) {
        rc = LSS_STORE_UNAVAILABLE;
        goto cleanup;
    }
    json_t *out_items = json_object_get (result, "items");
    size_t i;
    json_t *item;
    json_array_foreach (items, i, item)
    {
        if (s_check_object (item, k, err, err_size) != LSS_STORE_OK) {
            rc = LSS_STORE_UNAVAILABLE;
            goto cleanup;
        }
        json_array_append (out_items, item);
    }
    if (cont && json_string_length (cont) > 0)
        json_object_set (json_object_get (result, "metadata"), "continue", (json_t *)cont);
    *out = result;
    result = NULL;
cleanup:
    json_decref (list);
    json_decref (result);
    return rc;
}

/*  Fields the server sets: never sent on create. */
static void s_strip_server_fields (json_t *meta)
{
    static const char *drop[] = {"uid",
                                 "resourceVersion",
                                 "generation",
                                 "creationTimestamp",
                                 "deletionTimestamp",
                                 "deletionGracePeriodSeconds",
                                 "managedFields"};
    for (size_t i = 0; i < sizeof drop / sizeof drop[0]; i++)
        json_object_del (meta, drop[i]);
}

static int s_k8s_create (lss_store_t *base, const json_t *obj, json_t **out, char *err,
                         size_t err_size)
{
    s_k8s_t *self = (s_k8s_t *)base;
    if (out)
        *out = NULL;
    int rc = lss_store_validate (obj, 0, err, err_size);
    if (rc != LSS_STORE_OK)
        return rc;
    const lss_store_kind_t *k =
        lss_store_kind_info (json_string_value (json_object_get (obj, "kind")));
    json_t *o = json_deep_copy (obj);
    json_t *meta = json_object_get (o, "metadata");
    s_strip_server_fields (meta);
    json_object_del (o, "status");
    if (k->cluster_scoped)
        json_object_del (meta, "namespace");
    bool generated = !json_object_get (meta, "name");
    char path[LSS_K8S_PATH_MAX];
    rc = s_path_q (k, json_string_value (json_object_get (meta, "namespace")), NULL, NULL, NULL,
                   path, sizeof path, err, err_size);
    json_t *stored = NULL;
    for (int attempt = 0; rc == LSS_STORE_OK; attempt++) {
        rc = lss_k8s_client_request (self->client, "POST", path, o, NULL, &stored, err,
                                     err_size);
        if (rc != LSS_STORE_CONFLICT || !generated || attempt + 1 >= S_GENERATE_TRIES)
            break;
        rc = LSS_STORE_OK; /* a generated name collided: the server draws another */
    }
    if (rc == LSS_STORE_OK)
        rc = s_check_object (stored, k, err, err_size);
    if (rc == LSS_STORE_OK && out) {
        *out = stored;
        stored = NULL;
    }
    json_decref (stored);
    json_decref (o);
    return rc;
}

/*  PUT of the object or its status, or a merge PATCH: shared answer handling. */
static int s_write (s_k8s_t *self, const char *method, const lss_store_kind_t *k,
                    const char *path, const json_t *body, const char *content_type,
                    json_t **out, char *err, size_t err_size)
{
    json_t *stored = NULL;
    int rc = lss_k8s_client_request (self->client, method, path, body, content_type, &stored,
                                     err, err_size);
    if (rc == LSS_STORE_OK)
        rc = s_check_object (stored, k, err, err_size);
    if (rc == LSS_STORE_OK && !s_removed (stored) && out) {
        *out = stored;
        stored = NULL;
    }
    json_decref (stored);
    return rc;
}

static int s_update (s_k8s_t *self, const json_t *obj, const char *sub, json_t **out, char *err,
                     size_t err_size)
{
    if (out)
        *out = NULL;
    int rc = lss_store_validate (obj, 1, err, err_size);
    if (rc != LSS_STORE_OK)
        return rc;
    const char *rv = s_meta_str (obj, "resourceVersion");
    if (!rv || !rv[0]) {
        lss_errf (err, err_size, "metadata.resourceVersion: must be specified for an update");
        return LSS_STORE_INVALID;
    }
    const lss_store_kind_t *k =
        lss_store_kind_info (json_string_value (json_object_get (obj, "kind")));
    const char *ns = k->cluster_scoped ? NULL : s_meta_str (obj, "namespace");
    char path[LSS_K8S_PATH_MAX];
    rc =
        s_path_q (k, ns, s_meta_str (obj, "name"), sub, NULL, path, sizeof path, err, err_size);
    if (rc == LSS_STORE_OK)
        rc = s_write (self, "PUT", k, path, obj, NULL, out, err, err_size);
    return rc;
}

static int s_k8s_update (lss_store_t *base, const json_t *obj, json_t **out, char *err,
                         size_t err_size)
{
    return s_update ((s_k8s_t *)base, obj, NULL, out, err, err_size);
}

static int s_k8s_update_status (lss_store_t *base, const json_t *obj, json_t **out, char *err,
                                size_t err_size)
{
    return s_update ((s_k8s_t *)base, obj, "status", out, err, err_size);
}

static int s_k8s_patch (lss_store_t *base, const char *kind, const char *ns, const char *name,
                        const json_t *patch, json_t **out, char *err, size_t err_size)
{
    s_k8s_t *self = (s_k8s_t *)base;
    const lss_store_kind_t *k;
    char path[LSS_K8S_PATH_MAX];
    int rc = lss_store_k8s_check_key (kind, ns, name ? name : "", false, &k, err, err_size);
    if (rc == LSS_STORE_OK)
        rc = s_path_q (k, ns, name, NULL, NULL, path, sizeof path, err, err_size);
    if (rc == LSS_STORE_OK)
        rc = s_write (self, "PATCH", k, path, patch, LSS_K8S_CONTENT_MERGE, out, err, err_size);
    return rc;
}

static int s_k8s_delete (lss_store_t *base, const char *kind, const char *ns, const char *name,
                         const char *precondition_rv, char *err, size_t err_size)
{
    s_k8s_t *self = (s_k8s_t *)base;
    const lss_store_kind_t *k;
    char path[LSS_K8S_PATH_MAX];
    int rc = lss_store_k8s_check_key (kind, ns, name ? name : "", false, &k, err, err_size);
    if (rc == LSS_STORE_OK)
        rc = s_path_q (k, ns, name, NULL, NULL, path, sizeof path, err, err_size);
    if (rc != LSS_STORE_OK)
        return rc;
    json_t *opts = json_pack ("{s:s, s:s, s:s}", "kind", "DeleteOptions", "apiVersion", "v1",
                              "propagationPolicy", "Background");
    if (opts && precondition_rv)
        json_object_set_new (opts, "preconditions",
                             json_pack ("{s:s}", "resourceVersion", precondition_rv));
    rc = lss_k8s_client_request (self->client, "DELETE", path, opts, NULL, NULL, err, err_size);
    json_decref (opts);
    return rc;
}

static int s_k8s_compact (lss_store_t *base, const char *keep_after_rv, char *err,
                          size_t err_size)
{
    (void)base;
    (void)keep_after_rv;
    (void)err;
    (void)err_size;
    return LSS_STORE_OK; /* etcd compacts by itself */
}

static int s_k8s_current_rv (lss_store_t *base, char *out, size_t out_size, char *err,
                             size_t err_size)
{
    s_k8s_t *self = (s_k8s_t *)base;
    json_t *list = NULL;
    int rc = s_k8s_list (base, "Sandbox", lss_k8s_client_conf (self->client)->ns, NULL, 1, NULL,
                         &list, err, err_size);
    if (rc == LSS_STORE_OK &&
        lss_fmt (out, out_size, "%s",
                 json_string_value (json_object_get (json_object_get (list, "metadata"),
                                                     "resourceVersion"))) != 0) {
        lss_errf (err, err_size, "store: output buffer too small");
        rc = LSS_STORE_INVALID;
    }
    json_decref (list);
    return rc;
}

static lss_store_watch_t *s_k8s_watch_new (lss_store_t *base, const char *kind, const char *ns,
                                           const char *from_rv, int *code, char *err,
                                           size_t err_size)
{
    s_k8s_t *self = (s_k8s_t *)base;
    const lss_store_kind_t *k;
    int rc = lss_store_k8s_check_key (kind, ns, NULL, true, &k, err, err_size);
    if (rc != LSS_STORE_OK) {
        if (code)
            *code = rc;
        return NULL;
    }
    return lss_store_k8s_watch_new (self->client, k, ns, from_rv, code, err, err_size);
}

static void s_k8s_destroy (lss_store_t *base)
{
    s_k8s_t *self = (s_k8s_t *)base;
    lss_k8s_client_destroy (&self->client);
    free (self);
}

static const lss_store_ops_t s_k8s_ops = {
    .name = "kubernetes",
    .destroy = s_k8s_destroy,
    .get = s_k8s_get,
    .list = s_k8s_list,
    .create = s_k8s_create,
    .update = s_k8s_update,
    .update_status = s_k8s_update_status,
    .patch = s_k8s_patch,
    .remove = s_k8s_delete,
    .compact = s_k8s_compact,
    .current_rv = s_k8s_current_rv,
    .watch_new = s_k8s_watch_new,
};

lss_store_t *lss_store_k8s_new (lss_k8s_conf_t *conf, char *err, size_t err_size)
{
    s_k8s_t *self = calloc (1, sizeof *self);
    if (!self) {
        lss_errf (err, err_size, "store: out of memory");
        lss_k8s_conf_clear (conf);
        return NULL;
    }
    self->base.ops = &s_k8s_ops;
    char source[sizeof conf->source], server[sizeof conf->server];
    lss_fmt (source, sizeof source, "%s", conf->source);
    lss_fmt (server, sizeof server, "%s", conf->server);
    if (!(self->client = lss_k8s_client_new (conf, err, err_size))) {
        free (self);
        return NULL;
    }
    lss_log_info ("kubernetes store", "{s:s, s:s, s:s}", "server", server, "source", source,
                  "namespace", lss_k8s_client_conf (self->client)->ns);
    return &self->base;
}

lss_store_t *lss_store_k8s_new_from_config (const lss_config_t *cfg, char *err, size_t err_size)
{
    lss_k8s_conf_t conf;
    if (lss_k8s_conf_from_config (&conf, cfg, err, err_size) != 0)
        return NULL;
    return lss_store_k8s_new (&conf, err, err_size);
}
