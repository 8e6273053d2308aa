/*  lss_k8s_conf — Kubernetes API server location and credentials. See lss_k8s_conf.h.
 *
 *  Design note: the kubeconfig is loaded with libyaml's document API and turned into a
 *  jansson tree whose scalars are all strings (kubeconfig fields are strings, and the one
 *  boolean is compared as text), bounded by S_NODES_MAX nodes (aliases count each time
 *  they are expanded, so an alias bomb is refused) and S_DEPTH_MAX levels. Lookups then
 *  walk that tree; every field is type-checked and a wrong type is an error naming the
 *  entry.
 */
#include "lss_k8s_conf.h"
#include "lss_util.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <yaml.h>

#define S_NODES_MAX 100000 /* YAML nodes after alias expansion */
#define S_DEPTH_MAX 32
#define S_PATH_MAX  4096
#define S_NAME_MAX  253

void lss_k8s_conf_defaults (lss_k8s_conf_t *conf)
{
    memset (conf, 0, sizeof *conf);
    conf->timeout_ms = 10000;
    conf->retry_max_wait_ms = 10000;
    conf->max_retries = 3;
    conf->max_response = (size_t)64 * 1024 * 1024;
    conf->watch_timeout_ms = 300000;
}

static void s_blob_free (lss_k8s_blob_t *b)
{
    if (b->data)
        explicit_bzero (b->data, b->len);
    free (b->data);
    b->data = NULL;
    b->len = 0;
}

void lss_k8s_conf_clear (lss_k8s_conf_t *conf)
{
    free (conf->ca_file);
    free (conf->cert_file);
    free (conf->key_file);
    free (conf->token_file);
    if (conf->token)
        explicit_bzero (conf->token, strlen (conf->token));
    free (conf->token);
    s_blob_free (&conf->ca);
    s_blob_free (&conf->cert);
    s_blob_free (&conf->key);
    int64_t t = conf->timeout_ms, w = conf->retry_max_wait_ms, wt = conf->watch_timeout_ms;
    int r = conf->max_retries;
    size_t m = conf->max_response;
    memset (conf, 0, sizeof *conf);
    conf->timeout_ms = t;
    conf->retry_max_wait_ms = w;
    conf->watch_timeout_ms = wt;
    conf->max_retries = r;
    conf->max_response = m;
}

/* ------------------------------------------------------------------ files */

/*  Reads a whole file of at most max bytes into a new NUL-terminated blob. */
static int s_read_file (const char *path, size_t max, lss_k8s_blob_t *out, char *err,
                        size_t err_size)
{
    out->data = NULL;
    out->len = 0;
    int fd = open (path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        lss_errf (err, err_size, "%s: %s", path, strerror (errno));
        return -1;
    }
    struct stat st;
    if (fstat (fd, &st) != 0 || !S_ISREG (st.st_mode) || (size_t)st.st_size > max) {
        lss_errf (err, err_size, "%s: not a regular file of at most %zu bytes", path, max);
        close (fd);
        return -1;
    }
    char *buf = malloc ((size_t)st.st_size + 1);
    size_t len = 0;
    while (buf && len <= (size_t)st.st_size) {
        ssize_t r = read (fd, buf + len, (size_t)st.st_size + 1 - len);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        len += (size_t)r;
    }
    close (fd);
    if (!buf || len > (size_t)st.st_size) {
        lss_errf (err, err_size, "%s: cannot read (or it grew while read)", path);
        free (buf);
        return -1;
    }
    buf[len] = '\0';
    out->data = buf;
    out->len = len;
    return 0;
}

/*  path relative to the directory of base (a file path), unless absolute. */
static char *s_resolve (const char *base, const char *path)
{
    if (!path)
        return NULL;
    if (path[0] == '/' || !base)
        return strdup (path);
    const char *slash = strrchr (base, '/');
    char out[S_PATH_MAX];
    if (!slash)
        return strdup (path);
    if (lss_fmt (out, sizeof out, "%.*s/%s", (int)(slash - base), base, path) != 0)
        return NULL;
    return strdup (out);
}

int lss_k8s_base64_decode (const char *text, lss_k8s_blob_t *out)
{
    out->data = NULL;
    out->len = 0;
    size_t n = strlen (text);
    char *buf = malloc (n / 4 * 3 + 4);
    if (!buf)
        return -1;
    uint32_t acc = 0;
    int bits = 0, pad = 0;
    size_t len = 0;
    for (const char *p = text; *p; p++) {
        int v;
        char c = *p;
        if (c == ' ' || c == '\n' || c == '\r' || c == '\t')
            continue;
        if (c == '=') {
            pad++;
            continue;
        }
        if (pad)
            goto bad; /* data after padding */
        if (c >= 'A' && c <= 'Z')
            v = c - 'A';
        else if (c >= 'a' && c <= 'z')
            v = c - 'a' + 26;
        else if (c >= '0' && c <= '9')
            v = c - '0' + 52;
        else if (c == '+')
            v = 62;
        else if (c == '/')
            v = 63;
        else
            goto bad;
        acc = (acc << 6) | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            buf[len++] = (char)((acc >> bits) & 0xff);
        }
    }
    if (pad > 2 || bits >= 6)
        goto bad;
    buf[len] = '\0';
    out->data = buf;
    out->len = len;
    return 0;
bad:
    free (buf);
    return -1;
}

/* ------------------------------------------------------------------ YAML */

static json_t *s_node_json (yaml_document_t *doc, yaml_node_t *node, int depth, int *budget)
{
    if (!node || depth > S_DEPTH_MAX || --*budget < 0)
        return NULL;
    if (node->type == YAML_SCALAR_NODE)
        return json_stringn ((const char *)node->data.scalar.value, node->data.scalar.length);
    if (node->type == YAML_SEQUENCE_NODE) {
        json_t *arr = json_array ();
        for (yaml_node_item_t *it = node->data.sequence.items.start;
             arr && it < node->data.sequence.items.top; it++) {
            json_t *v = s_node_json (doc, yaml_document_get_node (doc, *it), depth + 1, budget);
            if (!v || json_array_append_new (arr, v) != 0) {
                json_decref (arr);
                return NULL;
            }
        }
        return arr;
    }
    if (node->type == YAML_MAPPING_NODE) {
        json_t *obj = json_object ();
        for (yaml_node_pair_t *p = node->data.mapping.pairs.start;
             obj && p < node->data.mapping.pairs.top; p++) {
            yaml_node_t *k = yaml_document_get_node (doc, p->key);
            if (!k || k->type != YAML_SCALAR_NODE) {
                json_decref (obj);
                return NULL;
            }
            char key[256];
            if (lss_fmt (key, sizeof key, "%.*s", (int)k->data.scalar.length,
                         (const char *)k->data.scalar.value) != 0) {
                json_decref (obj);
                return NULL;
            }
            json_t *v =
                s_node_json (doc, yaml_document_get_node (doc, p->value), depth + 1, budget);
            if (!v || json_object_set_new (obj, key, v) != 0) {
                json_decref (obj);
                return NULL;
            }
        }
        return obj;
    }
    return NULL;
}

/*  Parses YAML text (the first document) into a tree of strings, arrays and objects. */
static json_t *s_yaml_load (const char *text, size_t len, char *why, size_t why_size)
{
    yaml_parser_t parser;
    yaml_document_t doc;
    json_t *out = NULL;
    if (!yaml_parser_initialize (&parser)) {
        lss_errf (why, why_size, "out of memory");
        return NULL;
    }
    yaml_parser_set_input_string (&parser, (const unsigned char *)text, len);
    if (!yaml_parser_load (&parser, &doc)) {
        lss_errf (why, why_size, "YAML error at line %zu: %s", parser.problem_mark.line + 1,
                  parser.problem ? parser.problem : "?");
        yaml_parser_delete (&parser);
        return NULL;
    }
    int budget = S_NODES_MAX;
    yaml_node_t *root = yaml_document_get_root_node (&doc);
    if (!root)
        lss_errf (why, why_size, "empty document");
    else if (!(out = s_node_json (&doc, root, 0, &budget)))
        lss_errf (why, why_size, "too deep (> %d), too many nodes (> %d) or a non-scalar key",
                  S_DEPTH_MAX, S_NODES_MAX);
    else if (!json_is_object (out)) {
        lss_errf (why, why_size, "not a mapping");
        json_decref (out);
        out = NULL;
    }
    yaml_document_delete (&doc);
    yaml_parser_delete (&parser);
    return out;
}

/*  The entry {name: <name>, <field>: {...}} of a named list, or NULL. */
static const json_t *s_named (const json_t *root, const char *list, const char *name,
                              const char *field)
{
    const json_t *arr = json_object_get (root, list);
    size_t i;
    const json_t *e;
    json_array_foreach (arr, i, e)
    {
        const char *n = json_string_value (json_object_get (e, "name"));
        if (n && strcmp (n, name) == 0) {
            const json_t *v = json_object_get (e, field);
            return json_is_object (v) ? v : NULL;
        }
    }
    return NULL;
}

/*  A string field of an entry: 0 (absent: *out NULL), 1 (present) or -1 (wrong type). */
static int s_str (const json_t *entry, const char *key, const char **out)
{
    const json_t *v = json_object_get (entry, key);
    *out = NULL;
    if (!v)
        return 0;
    if (!json_is_string (v))
        return -1;
    *out = json_string_value (v);
    return 1;
}

static int s_set_server (lss_k8s_conf_t *conf, const char *server, char *err, size_t err_size)
{
    if (strncmp (server, "https://", 8) != 0 && strncmp (server, "http://", 7) != 0) {
        lss_errf (err, err_size, "server \"%.128s\": must be an https:// (or http://) URL",
                  server);
        return -1;
    }
    if (lss_fmt (conf->server, sizeof conf->server, "%s", server) != 0) {
        lss_errf (err, err_size, "server: longer than %d bytes", LSS_K8S_SERVER_MAX);
        return -1;
    }
    size_t n = strlen (conf->server);
    while (n > 0 && conf->server[n - 1] == '/')
        conf->server[--n] = '\0';
    for (const char *p = conf->server; *p; p++)
        if ((unsigned char)*p <= ' ' || *p == '?' || *p == '#') {
            lss_errf (err, err_size, "server: must not contain spaces, '?' or '#'");
            return -1;
        }
    return 0;
}

/*  The cluster entry's fields into conf. */
static int s_cluster (lss_k8s_conf_t *conf, const char *path, const char *name, const json_t *c,
                      char *err, size_t err_size)
{
    const char *server, *ca, *ca_data, *insecure;
    if (s_str (c, "server", &server) != 1 || s_str (c, "certificate-authority", &ca) < 0 ||
        s_str (c, "certificate-authority-data", &ca_data) < 0 ||
        s_str (c, "insecure-skip-tls-verify", &insecure) < 0) {
        lss_errf (err, err_size,
                  "%s: cluster \"%.64s\": server (a string) is required; "
                  "certificate-authority[-data] and insecure-skip-tls-verify must be strings "
                  "or booleans",
                  path, name);
        return -1;
    }
    char why[200];
    if (s_set_server (conf, server, why, sizeof why) != 0) {
        lss_errf (err, err_size, "%s: cluster \"%.64s\": %s", path, name, why);
        return -1;
    }
    conf->insecure =
        insecure && (strcmp (insecure, "true") == 0 || strcmp (insecure, "True") == 0 ||
                     strcmp (insecure, "TRUE") == 0);
    if (ca_data) {
        if (lss_k8s_base64_decode (ca_data, &conf->ca) != 0) {
            lss_errf (err, err_size,
                      "%s: cluster \"%.64s\": certificate-authority-data is not base64", path,
                      name);
            return -1;
        }
    } else if (ca && !(conf->ca_file = s_resolve (path, ca))) {
        lss_errf (err, err_size, "%s: cluster \"%.64s\": certificate-authority path too long",
                  path, name);
        return -1;
    }
    return 0;
}

/*  The user entry's fields into conf. */
static int s_user (lss_k8s_conf_t *conf, const char *path, const char *name, const json_t *u,
                   char *err, size_t err_size)
{
    static const char *plugins[] = {"exec", "auth-provider", "username", "password"};
    for (size_t i = 0; i < sizeof plugins / sizeof plugins[0]; i++)
        if (json_object_get (u, plugins[i])) {
            lss_errf (err, err_size,
                      "%s: user \"%.64s\" uses %s, which is not supported (credential "
                      "plugins need a Go client): give the user a token, tokenFile or "
                      "client-certificate/client-key instead",
                      path, name,
                      i == 0   ? "an exec credential plugin"
                      : i == 1 ? "an auth-provider plugin"
                               : "basic authentication");
            return -1;
        }
    const char *token, *token_file, *cert, *cert_data, *key, *key_data;
    if (s_str (u, "token", &token) < 0 || s_str (u, "tokenFile", &token_file) < 0 ||
        s_str (u, "client-certificate", &cert) < 0 ||
        s_str (u, "client-certificate-data", &cert_data) < 0 ||
        s_str (u, "client-key", &key) < 0 || s_str (u, "client-key-data", &key_data) < 0) {
        lss_errf (err, err_size, "%s: user \"%.64s\": credential fields must be strings", path,
                  name);
        return -1;
    }
    if (token && !(conf->token = strdup (token)))
        goto oom;
    if (!token && token_file && !(conf->token_file = s_resolve (path, token_file)))
        goto oom;
    if (cert_data) {
        if (lss_k8s_base64_decode (cert_data, &conf->cert) != 0) {
            lss_errf (err, err_size,
                      "%s: user \"%.64s\": client-certificate-data is not base64", path, name);
            return -1;
        }
    } else if (cert && !(conf->cert_file = s_resolve (path, cert)))
        goto oom;
    if (key_data) {
        if (lss_k8s_base64_decode (key_data, &conf->key) != 0) {
            lss_errf (err, err_size, "%s: user \"%.64s\": client-key-data is not base64", path,
                      name);
            return -1;
        }
    } else if (key && !(conf->key_file = s_resolve (path, key)))
        goto oom;
    bool has_cert = conf->cert.data || conf->cert_file;
    bool has_key = conf->key.data || conf->key_file;
    if (has_cert != has_key) {
        lss_errf (err, err_size,
                  "%s: user \"%.64s\": client-certificate and client-key come together", path,
                  name);
        return -1;
    }
    return 0;
oom:
    lss_errf (err, err_size, "%s: user \"%.64s\": out of memory or path too long", path, name);
    return -1;
}

int lss_k8s_conf_kubeconfig (lss_k8s_conf_t *conf, const char *path, const char *context,
                             char *err, size_t err_size)
{
    lss_k8s_blob_t file = {0};
    json_t *root = NULL;
    int rc = -1;
    char why[256];
    if (s_read_file (path, LSS_K8S_FILE_MAX, &file, why, sizeof why) != 0) {
        lss_errf (err, err_size, "kubeconfig %s", why);
        goto cleanup;
    }
    if (!(root = s_yaml_load (file.data, file.len, why, sizeof why))) {
        lss_errf (err, err_size, "kubeconfig %s: %s", path, why);
        goto cleanup;
    }
    const char *ctx_name = context && context[0]
                               ? context
                               : json_string_value (json_object_get (root, "current-context"));
    if (!ctx_name || !ctx_name[0]) {
        lss_errf (err, err_size, "kubeconfig %s: no current-context (set k8s.context)", path);
        goto cleanup;
    }
    const json_t *ctx = s_named (root, "contexts", ctx_name, "context");
    if (!ctx) {
        lss_errf (err, err_size, "kubeconfig %s: no context \"%.64s\"", path, ctx_name);
        goto cleanup;
    }
    const char *cluster_name, *user_name, *ns;
    if (s_str (ctx, "cluster", &cluster_name) != 1 || s_str (ctx, "user", &user_name) < 0 ||
        s_str (ctx, "namespace", &ns) < 0) {
        lss_errf (err, err_size, "kubeconfig %s: context \"%.64s\" needs a cluster (string)",
                  path, ctx_name);
        goto cleanup;
    }
    const json_t *cluster = s_named (root, "clusters", cluster_name, "cluster");
    if (!cluster) {
        lss_errf (err, err_size, "kubeconfig %s: context \"%.64s\": no cluster \"%.64s\"", path,
                  ctx_name, cluster_name);
        goto cleanup;
    }
    if (s_cluster (conf, path, cluster_name, cluster, err, err_size) != 0)
        goto cleanup;
    if (user_name && user_name[0]) {
        const json_t *user = s_named (root, "users", user_name, "user");
        if (!user) {
            lss_errf (err, err_size, "kubeconfig %s: context \"%.64s\": no user \"%.64s\"",
                      path, ctx_name, user_name);
            goto cleanup;
        }
        if (s_user (conf, path, user_name, user, err, err_size) != 0)
            goto cleanup;
    }
    if (ns && ns[0])
        lss_fmt (conf->ns, sizeof conf->ns, "%s", ns);
    lss_fmt (conf->source, sizeof conf->source, "kubeconfig %.900s context %.64s", path,
             ctx_name);
    rc = 0;
cleanup:
    if (rc != 0)
        lss_k8s_conf_clear (conf);
    free (file.data);
    json_decref (root);
    return rc;
}

/*  The first line of a small file, whitespace trimmed, into out. */
static int s_read_word (const char *path, char *out, size_t size)
{
    lss_k8s_blob_t b = {0};
    char why[64];
    if (s_read_file (path, 4096, &b, why, sizeof why) != 0)
        return -1;
    size_t n = strcspn (b.data, " \t\r\n");
    int rc = n > 0 && n < size ? 0 : -1;
    if (rc == 0) {
        memcpy (out, b.data, n);
        out[n] = '\0';
    }
    free (b.data);
    return rc;
}

int lss_k8s_conf_in_cluster (lss_k8s_conf_t *conf, const char *sa_dir, char *err,
                             size_t err_size)
{
    const char *host = getenv ("KUBERNETES_SERVICE_HOST");
    const char *port = getenv ("KUBERNETES_SERVICE_PORT");
    int64_t port_num = 0;
    if (!host || !host[0] || !port || lss_parse_int64 (port, 1, 65535, &port_num) != 0 ||
        strlen (host) > 253 || strpbrk (host, "/?#@ ")) {
        lss_errf (err, err_size,
                  "in-cluster: KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT must name "
                  "the API server");
        return -1;
    }
    char server[LSS_K8S_SERVER_MAX];
    bool v6 = strchr (host, ':') != NULL;
    lss_fmt (server, sizeof server, "https://%s%s%s:%d", v6 ? "[" : "", host, v6 ? "]" : "",
             (int)port_num);
    char path[S_PATH_MAX];
    if (s_set_server (conf, server, err, err_size) != 0)
        goto fail;
    if (lss_fmt (path, sizeof path, "%s/token", sa_dir) != 0 ||
        !(conf->token_file = strdup (path)))
        goto oom;
    if (access (path, R_OK) != 0) {
        lss_errf (err, err_size, "in-cluster: %s: %s", path, strerror (errno));
        goto fail;
    }
    if (lss_fmt (path, sizeof path, "%s/ca.crt", sa_dir) != 0 ||
        !(conf->ca_file = strdup (path)))
        goto oom;
    if (lss_fmt (path, sizeof path, "%s/namespace", sa_dir) == 0 &&
        s_read_word (path, conf->ns, sizeof conf->ns) != 0)
        conf->ns[0] = '\0';
    lss_fmt (conf->source, sizeof conf->source, "in-cluster (%.900s)", sa_dir);
    return 0;
oom:
    lss_errf (err, err_size, "in-cluster: out of memory or path too long");
fail:
    lss_k8s_conf_clear (conf);
    return -1;
}

int lss_k8s_conf_from_config (lss_k8s_conf_t *conf, const lss_config_t *cfg, char *err,
                              size_t err_size)
{
    lss_k8s_conf_defaults (conf);
    conf->timeout_ms = lss_config_int (cfg, "k8s.request_timeout");
    conf->retry_max_wait_ms = lss_config_int (cfg, "k8s.retry_max_wait");
    conf->max_retries = (int)lss_config_int (cfg, "k8s.max_retries");
    conf->max_response = (size_t)lss_config_int (cfg, "k8s.max_response");
    conf->watch_timeout_ms = lss_config_int (cfg, "k8s.watch_timeout");
    const char *kubeconfig = lss_config_str (cfg, "k8s.kubeconfig");
    const char *context = lss_config_str (cfg, "k8s.context");
    char path[S_PATH_MAX] = "";
    int rc;
    if (kubeconfig[0])
        rc = lss_k8s_conf_kubeconfig (conf, kubeconfig, context, err, err_size);
    else if (getenv ("KUBERNETES_SERVICE_HOST") && getenv ("KUBERNETES_SERVICE_HOST")[0])
        rc = lss_k8s_conf_in_cluster (conf, lss_config_str (cfg, "k8s.serviceaccount_dir"), err,
                                      err_size);
    else {
        const char *env = getenv ("KUBECONFIG");
        const char *home = getenv ("HOME");
        if (env && env[0])
            lss_fmt (path, sizeof path, "%.*s", (int)strcspn (env, ":"), env);
        else if (home && home[0])
            lss_fmt (path, sizeof path, "%s/.kube/config", home);
        if (!path[0]) {
            lss_errf (err, err_size,
                      "k8s: no kubeconfig (set k8s.kubeconfig, KUBECONFIG or HOME) and not "
                      "in a cluster");
            return -1;
        }
        rc = lss_k8s_conf_kubeconfig (conf, path, context, err, err_size);
    }
    if (rc != 0)
        return -1;
    const char *ns = lss_config_str (cfg, "k8s.namespace");
    if (ns[0])
        lss_fmt (conf->ns, sizeof conf->ns, "%s", ns);
    if (!conf->ns[0])
        lss_fmt (conf->ns, sizeof conf->ns, "default");
    return 0;
}
