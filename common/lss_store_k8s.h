/*  lss_store_k8s — the object store over the Kubernetes REST API (cluster mode).
 *
 *  lss_store_k8s.c maps each lss_store call onto its REST verb and path (docs/store.md);
 *  lss_store_k8s_watch.c is the watch stream. Both share the lss_k8s_client_t of the
 *  store (a watch holds its own reference, so it may outlive the store). Callers use
 *  lss_store.h; what is here is for the backend's two files, for the Lease-based leader
 *  election (which wants its own request timeout) and for tests.
 */
#ifndef LSS_STORE_K8S_H
#define LSS_STORE_K8S_H

#include "lss_k8s_client.h"
#include "lss_store_impl.h"

#define LSS_K8S_PATH_MAX 2048 /* path + query of one request, before the server URL */

/*  A Kubernetes store over conf (its contents are taken over; conf is zeroed, limits
 *  kept). Does not contact the server. Returns NULL with a message. */
lss_store_t *lss_store_k8s_new (lss_k8s_conf_t *conf, char *err, size_t err_size);

/*  The REST path of a kind's collection (name NULL) or object, with an optional
 *  subresource ("status") and query ("watch=true&..."; NULL = none). ns NULL or "" on a
 *  namespaced kind = all namespaces. Returns 0, or -1 if it does not fit out. */
int lss_store_k8s_path (const lss_store_kind_t *kind, const char *ns, const char *name,
                        const char *sub, const char *query, char *out, size_t size);

/*  Gives obj the kind's apiVersion and kind when it lacks them (items of built-in lists
 *  come without). */
void lss_store_k8s_fill_type (json_t *obj, const lss_store_kind_t *kind);

/*  Checks the (kind, namespace, name) of a call as the PostgreSQL backend does: known
 *  kind; ns "" for cluster-scoped kinds, a namespace otherwise (unless all_ns_ok and ns
 *  is NULL or ""); name (if not NULL) a DNS-1123 subdomain. *info receives the kind.
 *  Returns 0 or LSS_STORE_INVALID with a message. */
int lss_store_k8s_check_key (const char *kind, const char *ns, const char *name, bool all_ns_ok,
                             const lss_store_kind_t **info, char *err, size_t err_size);

/*  The watch (lss_store_k8s_watch.c): opens the stream, waiting (at most the request
 *  timeout) for the response headers so that 401/403/404/410 answers come back here.
 *  from_rv "" or "0" → a one-item list first to learn the current resourceVersion. */
lss_store_watch_t *lss_store_k8s_watch_new (lss_k8s_client_t *client,
                                            const lss_store_kind_t *kind, const char *ns,
                                            const char *from_rv, int *code, char *err,
                                            size_t err_size);

#endif
