/*  lss_obj — helpers for Kubernetes-shaped objects (jansson values) shared by the
 *  controllers: field access, labels, conditions, owner references, quantities.
 *  See docs/control-plane.md for the labels and shapes the services agree on.
 *  Every function treats its input as untrusted: wrong types read as absent.
 */
#ifndef LSS_OBJ_H
#define LSS_OBJ_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define LSS_OBJ_GROUP_VERSION "llmsafespace.dev/v1"

#define LSS_LABEL_PART_OF   "app.kubernetes.io/part-of"
#define LSS_LABEL_COMPONENT "app.kubernetes.io/component"
#define LSS_LABEL_RUNTIME   "llmsafespace.dev/runtime"
#define LSS_LABEL_LEVEL     "llmsafespace.dev/security-level"
#define LSS_LABEL_POOL      "llmsafespace.dev/pool"
#define LSS_LABEL_WARMPOD   "llmsafespace.dev/warmpod"
#define LSS_LABEL_SANDBOX   "llmsafespace.dev/sandbox"

#define LSS_ANN_WARM_POD     "llmsafespace.dev/warm-pod"
#define LSS_ANN_LEVEL        "llmsafespace.dev/security-level"
#define LSS_ANN_INTERPRETERS "llmsafespace.dev/interpreters"
#define LSS_ANN_NETWORK      "llmsafespace.dev/network"

#define LSS_FINALIZER_SANDBOX "llmsafespace.dev/sandbox-cleanup"

/*  The string at a dotted path ("metadata.name", "status.phase"), or NULL if any step
 *  is missing or not an object, or the leaf is not a string. Borrowed. Path segments
 *  cannot contain '.' (use lss_obj_label / lss_obj_annotation for such keys). */
const char *lss_obj_str (const json_t *obj, const char *path);
/*  The value at a dotted path, or NULL. Borrowed. */
json_t *lss_obj_at (const json_t *obj, const char *path);
/*  The integer at a dotted path, or dflt if absent or not an integer. */
int64_t lss_obj_int (const json_t *obj, const char *path, int64_t dflt);

/*  metadata.labels[key] / metadata.annotations[key] when a string, else NULL. */
const char *lss_obj_label (const json_t *obj, const char *key);
const char *lss_obj_annotation (const json_t *obj, const char *key);
/*  Sets metadata.labels[key] / metadata.annotations[key] (creating the maps). 0 or -1. */
int lss_obj_set_label (json_t *obj, const char *key, const char *value);
int lss_obj_set_annotation (json_t *obj, const char *key, const char *value);

/*  A label value from free text: characters outside [A-Za-z0-9-_.] become '-', at most
 *  63 bytes, leading and trailing non-alphanumerics dropped ("python:3.11" →
 *  "python-3.11"). Also the RuntimeEnvironment name of a runtime. Returns 0, or -1 if
 *  nothing is left or out is too small (out_size >= 64 always suffices). */
int lss_obj_sanitize_label (const char *in, char *out, size_t out_size);

/*  "<namespace>/<name>" split into its parts (copied; ns_size >= 64, name_size >= 254).
 *  Returns 0, or -1 unless exactly one '/' separates two non-empty valid names. */
int lss_obj_split_ref (const char *ref, char *ns, size_t ns_size, char *name, size_t name_size);

/*  The condition of type in obj's status.conditions, or NULL. Borrowed. */
json_t *lss_obj_condition (const json_t *obj, const char *type);
/*  Sets (adds or replaces) a condition in obj's status.conditions (creating status and
 *  the array): lastTransitionTime changes only when status changes. Returns 1 if
 *  anything changed, 0 if it was already so, -1 on a bad argument. */
int lss_obj_set_condition (json_t *obj, const char *type, const char *status,
                           const char *reason, const char *message, int64_t now_ms);

/*  A new ownerReference to owner (apiVersion, kind, name, uid from it; controller and
 *  blockOwnerDeletion true), or NULL if owner lacks any of those. Caller owns. */
json_t *lss_obj_owner_ref (const json_t *owner);
/*  True if obj's metadata.ownerReferences names uid. */
bool lss_obj_owned_by (const json_t *obj, const char *uid);
/*  True if metadata.finalizers holds name. */
bool lss_obj_has_finalizer (const json_t *obj, const char *name);
/*  Adds / removes a finalizer (idempotent). Returns 1 if changed, 0 if not, -1 on error. */
int lss_obj_add_finalizer (json_t *obj, const char *name);
int lss_obj_remove_finalizer (json_t *obj, const char *name);
/*  True if metadata.deletionTimestamp is set. */
bool lss_obj_deleting (const json_t *obj);

/*  The agent's interpreter name (--interpreter NAME=PATH) for a RuntimeEnvironment's
 *  spec.language: "nodejs" and "javascript" are "node"; others are themselves. NULL in,
 *  NULL out. Every process that builds an agent's interpreter list uses this, so the
 *  names the api sends (api_agent_language) always match. */
const char *lss_obj_agent_language (const char *lang);

/*  Quantities as the CRDs accept them. CPU: "1", "0.5", "500m" → millicores.
 *  Memory / storage: "512", "1Gi", "1G", "128Mi", "1e3" (no fractions of bytes) → bytes.
 *  Return 0, or -1 on anything else (negative, overflow, unknown suffix). */
int lss_obj_parse_cpu (const char *text, int64_t *millicores);
int lss_obj_parse_bytes (const char *text, int64_t *bytes);

#endif
