/*  lss_store — the object store: Kubernetes API semantics behind one interface.
 *
 *  Every service reads and writes its objects (Sandbox, WarmPool, WarmPod, SandboxProfile,
 *  RuntimeEnvironment, Pod) through this interface. Objects are jansson values in
 *  Kubernetes shape: {apiVersion, kind, metadata:{name, generateName, namespace, uid,
 *  resourceVersion (string), generation, creationTimestamp, deletionTimestamp, labels,
 *  annotations, finalizers, ownerReferences}, spec, status}. The semantics are those of
 *  the Kubernetes REST API (docs/store.md maps each call to its verb and path), so that
 *  two backends sit behind the same functions: PostgreSQL in local mode (lss_store_pg.c)
 *  and the Kubernetes REST API in cluster mode (lss_store_k8s*.c), chosen by
 *  store.backend (lss_store_new_from_config). lss_store.c dispatches every call to the
 *  backend the handle was made by (lss_store_impl.h).
 *
 *  Design note: all calls are synchronous and bounded by a server-side statement timeout
 *  (LSS_STORE_STATEMENT_TIMEOUT_MS); a service loop that must never block calls them from
 *  a worker, not from its poll loop. Watches are pollable: each has its own connection
 *  and a file descriptor for zmq_poll/poll. A store or watch handle belongs to one thread.
 *  Every function returns LSS_STORE_OK or a negative LSS_STORE_* code and writes a
 *  message into err (err may be NULL; messages are truncated to err_size).
 */
#ifndef LSS_STORE_H
#define LSS_STORE_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "lss_config.h"

#define LSS_STORE_OK          0
#define LSS_STORE_NOT_FOUND   (-404) /* no such object */
#define LSS_STORE_CONFLICT    (-409) /* stale resourceVersion, uid mismatch, name taken */
#define LSS_STORE_GONE        (-410) /* resourceVersion compacted: relist */
#define LSS_STORE_INVALID     (-422) /* bad input; the message names the field */
#define LSS_STORE_UNAVAILABLE (-503) /* connection lost, timeout, server error */

#define LSS_STORE_LIST_DEFAULT_LIMIT   500
#define LSS_STORE_LIST_MAX_LIMIT       1000
#define LSS_STORE_SELECTOR_MAX_TERMS   20
#define LSS_STORE_OBJECT_MAX_BYTES     (1024 * 1024) /* serialized, compact JSON */
#define LSS_STORE_NAME_MAX             253
#define LSS_STORE_NAMESPACE_MAX        63
#define LSS_STORE_STATEMENT_TIMEOUT_MS 5000
#define LSS_STORE_CONNECT_TIMEOUT_S    5
#define LSS_STORE_ERR_SIZE             256 /* a good size for err buffers */

typedef struct _lss_store_t lss_store_t;
typedef struct _lss_store_watch_t lss_store_watch_t;

typedef enum {
    LSS_STORE_ADDED = 1,
    LSS_STORE_MODIFIED = 2,
    LSS_STORE_DELETED = 3,
} lss_store_event_type_t;

typedef struct {
    lss_store_event_type_t type;
    json_t *object; /* caller owns: json_decref when done */
} lss_store_event_t;

/*  Connects to PostgreSQL (libpq DSN, borrowed), sets the statement timeout and applies
 *  the store's schema migrations that are not applied yet (each in its own transaction,
 *  serialized between concurrent starters by an advisory lock). Returns a new store, or
 *  NULL with a message in err. */
lss_store_t *lss_store_pg_new (const char *dsn, char *err, size_t err_size);

/*  List statements prepared at most per PostgreSQL connection (one per list shape). */
#define LSS_STORE_PG_LIST_PREPARED_MAX 32
/*  How many list statements the PostgreSQL store has prepared on its connection now, -1
 *  for another backend (for tests and diagnostics). */
int lss_store_pg_list_prepared (const lss_store_t *store);

/*  Opens the backend store.backend names (cfg borrowed; only read during the call):
 *  "postgres" → lss_store_pg_new (store.dsn); "kubernetes" → the Kubernetes REST API
 *  with the k8s.* keys (in-cluster service account or kubeconfig; docs/store.md). The
 *  Kubernetes backend does not contact the server here: a bad kubeconfig is an error
 *  now, an unreachable server one at the first call. Returns NULL with a message in err. */
lss_store_t *lss_store_new_from_config (const lss_config_t *cfg, char *err, size_t err_size);

/*  For code handed either a configuration or (tests, tools) a bare DSN: cfg non-NULL →
 *  lss_store_new_from_config (cfg); else lss_store_pg_new (dsn). */
lss_store_t *lss_store_open (const lss_config_t *cfg, const char *dsn, char *err,
                             size_t err_size);

/*  "postgres" | "kubernetes": the backend of a store (borrowed static string). */
const char *lss_store_backend (const lss_store_t *self);

/*  Closes the connection and frees the store; NULLs *self_p. Safe on NULL. */
void lss_store_destroy (lss_store_t **self_p);

/*  Reads one object. kind is one of the known kinds; ns is "" for cluster-scoped kinds.
 *  On LSS_STORE_OK *out is a new object the caller owns; otherwise *out is NULL. */
int lss_store_get (lss_store_t *self, const char *kind, const char *ns, const char *name,
                   json_t **out, char *err, size_t err_size);

/*  Lists objects of a kind, ordered by namespace then name. ns NULL = all namespaces.
 *  label_selector (NULL or "" = everything) is a comma-separated list of at most
 *  LSS_STORE_SELECTOR_MAX_TERMS terms: "k=v", "k==v", "k!=v" (also matches objects
 *  without k), "k" (exists), "!k" (does not exist). limit 0 = the default; at most
 *  LSS_STORE_LIST_MAX_LIMIT. continue_token (NULL or "") is the metadata.continue of the
 *  previous page. *out (caller owns) is {items:[...], metadata:{resourceVersion, continue?}};
 *  continue is present only when more items follow. Every page reports the
 *  resourceVersion of the first page, so a watch from it after the last page misses
 *  nothing. Returns LSS_STORE_GONE if the token's resourceVersion was compacted. */
int lss_store_list (lss_store_t *self, const char *kind, const char *ns,
                    const char *label_selector, int limit, const char *continue_token,
                    json_t **out, char *err, size_t err_size);

/*  Creates obj (borrowed). metadata.name, or metadata.generateName to which five random
 *  [a-z0-9] characters are appended. Sets uid, resourceVersion, generation 1 and
 *  creationTimestamp; drops status and deletionTimestamp (status is written through
 *  lss_store_update_status, as with a status subresource). Emits ADDED.
 *  Returns LSS_STORE_CONFLICT if the name is taken. *out (may be NULL) receives the
 *  stored object (caller owns). */
int lss_store_create (lss_store_t *self, const json_t *obj, json_t **out, char *err,
                      size_t err_size);

/*  Replaces an object's spec and metadata (obj borrowed). metadata.resourceVersion is
 *  required and must equal the stored one, and metadata.uid if given must match, else
 *  LSS_STORE_CONFLICT. status in obj is ignored (kept from storage); uid, generation,
 *  creationTimestamp and deletionTimestamp come from storage; labels, annotations,
 *  finalizers and ownerReferences come from obj. generation increments only if spec
 *  changed. Once deletionTimestamp is set, no finalizer may be added; when the last is
 *  removed the object is removed (a DELETED event, and its dependents are deleted) and
 *  *out is NULL. Otherwise emits MODIFIED; *out (may be NULL) receives the stored object. */
int lss_store_update (lss_store_t *self, const json_t *obj, json_t **out, char *err,
                      size_t err_size);

/*  The status subresource: like lss_store_update but only status is taken from obj;
 *  spec and metadata are kept from storage and generation is unchanged. */
int lss_store_update_status (lss_store_t *self, const json_t *obj, json_t **out, char *err,
                             size_t err_size);

/*  A JSON merge patch (RFC 7386; patch borrowed) of metadata (labels, annotations,
 *  finalizers, ownerReferences) and spec, applied atomically to the stored object:
 *  {"metadata":{"finalizers":null}} drops them, {"metadata":{"labels":{"k":null}}} one
 *  label. Unconditional unless the patch carries metadata.resourceVersion, which must then
 *  match (else LSS_STORE_CONFLICT). status in the patch is ignored. The same rules as
 *  lss_store_update apply to the result (validation, generation, finalizers while
 *  deleting, removal when the last finalizer goes: *out NULL). Kubernetes: PATCH with
 *  application/merge-patch+json. *out (may be NULL) receives the stored object. */
int lss_store_patch (lss_store_t *self, const char *kind, const char *ns, const char *name,
                     const json_t *patch, json_t **out, char *err, size_t err_size);

/*  Deletes an object. precondition_rv (NULL = none) must equal the stored
 *  resourceVersion, else LSS_STORE_CONFLICT. With finalizers: sets deletionTimestamp
 *  (once; a second delete changes nothing), bumps resourceVersion and generation, emits
 *  MODIFIED; the object goes away when its last finalizer is removed. Without finalizers:
 *  removes it and emits DELETED. Removal cascades, in the same transaction, to the
 *  objects whose ownerReferences name the removed object's uid (background propagation:
 *  each dependent is deleted by these same rules, so dependents with finalizers only get
 *  a deletionTimestamp). */
int lss_store_delete (lss_store_t *self, const char *kind, const char *ns, const char *name,
                      const char *precondition_rv, char *err, size_t err_size);

/*  Drops the events up to and including keep_after_rv (a resourceVersion string; must not
 *  exceed the current one). Watches and continue tokens from a resourceVersion below it
 *  then answer LSS_STORE_GONE. Kubernetes: etcd compacts by itself; the call does
 *  nothing and answers LSS_STORE_OK. */
int lss_store_compact (lss_store_t *self, const char *keep_after_rv, char *err,
                       size_t err_size);

/*  The store's current resourceVersion into out (out_size bytes): a decimal string for
 *  PostgreSQL; for Kubernetes the resourceVersion of a one-item list of Sandboxes in
 *  k8s.namespace (etcd's revision, opaque to callers). */
int lss_store_current_rv (lss_store_t *self, char *out, size_t out_size, char *err,
                          size_t err_size);

/*  Opens a watch on a kind (ns NULL = all namespaces) delivering, in resourceVersion
 *  order, every event after from_rv; "" or "0" means from now (callers list first and
 *  watch from the list's resourceVersion). Uses its own connection (the store's DSN, or
 *  its own HTTP stream); it does not borrow the store, which may be destroyed first.
 *  Returns NULL with LSS_STORE_GONE / LSS_STORE_INVALID / LSS_STORE_UNAVAILABLE in
 *  *code (may be NULL) and a message in err. Kubernetes reports a compacted from_rv as
 *  an ERROR event in the stream, so there the GONE comes from the first
 *  lss_store_watch_next instead: callers handle GONE from both. */
lss_store_watch_t *lss_store_watch_new (lss_store_t *store, const char *kind, const char *ns,
                                        const char *from_rv, int *code, char *err,
                                        size_t err_size);

/*  Closes the watch; NULLs *self_p. Safe on NULL. */
void lss_store_watch_destroy (lss_store_watch_t **self_p);

/*  The descriptor to poll for input (POLLIN / ZMQ_POLLIN); -1 if the connection is gone.
 *  Readiness is a hint: call lss_store_watch_next until it returns 0. Poll with a
 *  timeout (a second or so) and call next on expiry too. Kubernetes: an epoll descriptor
 *  over the stream's sockets and libcurl's timer, the same for the watch's whole life
 *  (it survives the transparent reconnects). */
int lss_store_watch_fd (lss_store_watch_t *self);

/*  Takes the next event without blocking on the network for more than one short query.
 *  Returns 1 with *ev filled (ev->object is the caller's), 0 if nothing is pending now,
 *  LSS_STORE_GONE if events the watch still needed were compacted (relist and watch
 *  again), or LSS_STORE_UNAVAILABLE if the connection is lost (watch again from the last
 *  resourceVersion seen). Failures are sticky. Kubernetes: a stream the server ends
 *  (timeoutSeconds) is reopened from the last resourceVersion inside this call (one
 *  request, bounded by k8s.request_timeout); BOOKMARK events only advance
 *  lss_store_watch_rv; a malformed or oversized event answers LSS_STORE_UNAVAILABLE. */
int lss_store_watch_next (lss_store_watch_t *self, lss_store_event_t *ev);

/*  The resourceVersion of the last event delivered (or the starting point), borrowed. */
const char *lss_store_watch_rv (lss_store_watch_t *self);

/*  "ADDED" | "MODIFIED" | "DELETED". */
const char *lss_store_event_type_name (lss_store_event_type_t type);

/*  Validation shared by every backend; each returns 0, or -1 with a message naming the
 *  field. A DNS-1123 subdomain: [a-z0-9]([-a-z0-9.]*[a-z0-9])?, at most 253 bytes. */
int lss_store_check_name (const char *field, const char *name, char *err, size_t err_size);
/*  Label (or annotation / finalizer) key: [prefix/]name, prefix a DNS-1123 subdomain,
 *  name at most 63 of [A-Za-z0-9-_.] starting and ending alphanumeric. */
int lss_store_check_qualified_name (const char *field, const char *key, char *err,
                                    size_t err_size);
/*  Label value: empty, or up to 63 of [A-Za-z0-9-_.] starting and ending alphanumeric. */
int lss_store_check_label_value (const char *field, const char *value, char *err,
                                 size_t err_size);
/*  Whole-object checks for create/update: apiVersion, kind, namespace rules for the kind,
 *  name, labels, annotations, finalizers, ownerReferences, size. Returns 0 or
 *  LSS_STORE_INVALID. need_name: metadata.name must be present (else generateName may
 *  stand in). */
int lss_store_validate (const json_t *obj, int need_name, char *err, size_t err_size);
/*  1 if kind is cluster-scoped (RuntimeEnvironment), 0 if namespaced, -1 if unknown. */
int lss_store_kind_scope (const char *kind);

/*  What the store knows about a kind: its API group/version, REST plural and scope. */
typedef struct {
    const char *kind;        /* "Sandbox" */
    const char *api_version; /* "llmsafespace.dev/v1", "v1" for the core group */
    const char *plural;      /* "sandboxes" */
    int cluster_scoped;      /* 1 for RuntimeEnvironment */
} lss_store_kind_t;
/*  The entry of a known kind, or NULL. The five custom kinds, Pod, Secret, Service,
 *  Event, PersistentVolumeClaim (core v1), NetworkPolicy (networking.k8s.io/v1) and
 *  Lease (coordination.k8s.io/v1). Borrowed static data. */
const lss_store_kind_t *lss_store_kind_info (const char *kind);
/*  Checks a label selector (NULL or "" is fine): at most LSS_STORE_SELECTOR_MAX_TERMS
 *  comma-separated terms "k=v", "k==v", "k!=v", "k", "!k" with valid keys and values.
 *  Returns 0 or LSS_STORE_INVALID with a message naming labelSelector. */
int lss_store_check_selector (const char *selector, char *err, size_t err_size);

#endif
