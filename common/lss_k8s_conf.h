/*  lss_k8s_conf — where the Kubernetes API server is and how to authenticate to it.
 *
 *  Two sources, as client-go has them: the in-cluster service account
 *  (KUBERNETES_SERVICE_HOST/PORT, token, ca.crt and namespace files of
 *  k8s.serviceaccount_dir) and a kubeconfig file read with libyaml (current-context or
 *  k8s.context; the cluster's server, certificate-authority[-data],
 *  insecure-skip-tls-verify; the user's token, tokenFile, client-certificate[-data] and
 *  client-key[-data]). Relative paths in a kubeconfig are relative to its directory, as
 *  kubectl reads them. Exec and auth-provider plugins and basic auth are refused with an
 *  error naming the user entry. The -data forms are kept in memory (handed to libcurl as
 *  blobs; no temporary files). Treats the kubeconfig as untrusted input: bounded size,
 *  depth and node count, every field type-checked.
 */
#ifndef LSS_K8S_CONF_H
#define LSS_K8S_CONF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lss_config.h"

#define LSS_K8S_SERVER_MAX    1024
#define LSS_K8S_NAMESPACE_MAX 63
#define LSS_K8S_FILE_MAX      (1024 * 1024) /* kubeconfig, certificates, keys, tokens */

typedef struct {
    char *data; /* owned; NUL-terminated for convenience */
    size_t len;
} lss_k8s_blob_t;

typedef struct {
    char server[LSS_K8S_SERVER_MAX + 1];  /* "https://host:port[/prefix]", no trailing '/' */
    char ns[LSS_K8S_NAMESPACE_MAX + 1];   /* default namespace (Leases, rv probes) */
    char source[LSS_K8S_SERVER_MAX + 64]; /* "in-cluster" or "kubeconfig PATH context C" */
    /* TLS */
    bool insecure;       /* insecure-skip-tls-verify */
    char *ca_file;       /* owned or NULL */
    lss_k8s_blob_t ca;   /* certificate-authority-data (PEM) */
    char *cert_file;     /* client-certificate */
    lss_k8s_blob_t cert; /* client-certificate-data (PEM) */
    char *key_file;      /* client-key */
    lss_k8s_blob_t key;  /* client-key-data (PEM) */
    /* bearer token: a fixed one, or a file re-read when it changes */
    char *token;
    char *token_file;
    /* limits (from the k8s.* keys; defaults by lss_k8s_conf_defaults) */
    int64_t timeout_ms;
    int64_t retry_max_wait_ms;
    int max_retries;
    size_t max_response;
    int64_t watch_timeout_ms;
} lss_k8s_conf_t;

/*  Zeroes conf and sets the limits to the k8s.* defaults. */
void lss_k8s_conf_defaults (lss_k8s_conf_t *conf);
/*  Frees what conf owns (secrets are wiped first) and zeroes it, keeping the limits.
 *  Safe on a zeroed conf. */
void lss_k8s_conf_clear (lss_k8s_conf_t *conf);

/*  Reads the kubeconfig at path (context NULL or "" = current-context) into conf, whose
 *  limits are kept. Returns 0, or -1 with a message naming the file and the entry. */
int lss_k8s_conf_kubeconfig (lss_k8s_conf_t *conf, const char *path, const char *context,
                             char *err, size_t err_size);

/*  In-cluster: KUBERNETES_SERVICE_HOST / KUBERNETES_SERVICE_PORT, sa_dir/token (as a
 *  token file), sa_dir/ca.crt, sa_dir/namespace. Returns 0 or -1 with a message. */
int lss_k8s_conf_in_cluster (lss_k8s_conf_t *conf, const char *sa_dir, char *err,
                             size_t err_size);

/*  The whole choice from the k8s.* keys (cfg borrowed): k8s.kubeconfig if set; else
 *  in-cluster if KUBERNETES_SERVICE_HOST is set; else $KUBECONFIG (its first path), else
 *  $HOME/.kube/config. k8s.namespace, if set, wins over the source's namespace; none →
 *  "default". Returns 0 or -1 with a message; conf is cleared on failure. */
int lss_k8s_conf_from_config (lss_k8s_conf_t *conf, const lss_config_t *cfg, char *err,
                              size_t err_size);

/*  Decodes standard base64 (whitespace ignored) into a new blob. Returns 0 or -1. */
int lss_k8s_base64_decode (const char *text, lss_k8s_blob_t *out);

#endif
