/*  node_pod — what lss-node reads from a Pod object and what it writes back: the sandbox
 *  id of a Pod, the sandbox spec built from it, and the Pod status for each state.
 *
 *  Plain logic, no I/O (testable without a store or a sandbox). Pod objects are hostile
 *  input: every field is type- and length-checked, nothing from a Pod reaches a path
 *  except through the sandbox id, which is a hash (never Pod text), and everything the
 *  spec gets goes through lss_sandbox_spec_validate as well.
 *
 *  Sandbox id: "pod-" + 16 hex digits of BLAKE2b (namespace "/" name "/" uid). Stable
 *  across restarts, unique per Pod incarnation (a Pod deleted and created again under the
 *  same name has a new uid, hence a new sandbox), short enough that the agent's ipc path
 *  fits the kernel's 107 bytes for any allowed node.state_dir (60 bytes).
 */
#ifndef NODE_POD_H
#define NODE_POD_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lss_store.h"
#include "sandbox_runtime.h"
#include "sandbox_spec.h"

#define NODE_POD_ID_PREFIX      "pod-"
#define NODE_POD_ID_SIZE        21 /* "pod-" + 16 hex + NUL */
#define NODE_POD_UID_MAX        128
#define NODE_POD_KEY_SIZE       (LSS_STORE_NAMESPACE_MAX + 1 + LSS_STORE_NAME_MAX + 1)
#define NODE_POD_INTERPRETERS   16   /* entries in llmsafespace.dev/interpreters */
#define NODE_POD_INTERP_MAX     1024 /* bytes of that annotation */
#define NODE_POD_DEFAULT_MEMORY (1LL << 30)
#define NODE_POD_DEFAULT_PIDS   1024
#define NODE_POD_HOST_IP        "127.0.0.1"
#define NODE_POD_CONTAINER      "sandbox"

/*  A Pod's identity, copied out of metadata and checked (name a DNS-1123 subdomain,
 *  namespace at most 63 bytes of the same, uid 1..NODE_POD_UID_MAX printable bytes). */
typedef struct {
    char ns[LSS_STORE_NAMESPACE_MAX + 1];
    char name[LSS_STORE_NAME_MAX + 1];
    char uid[NODE_POD_UID_MAX + 1];
    char key[NODE_POD_KEY_SIZE]; /* "ns/name" */
    char id[NODE_POD_ID_SIZE];   /* its sandbox id */
} node_pod_ident_t;

/*  Fills *out from pod (borrowed). Returns 0, or -1 with the reason in err. */
int node_pod_ident (const json_t *pod, node_pod_ident_t *out, char *err, size_t err_size);

/*  The sandbox id of a Pod into out (>= NODE_POD_ID_SIZE bytes). Returns 0 or -1. */
int node_pod_sandbox_id (const char *ns, const char *name, const char *uid, char *out,
                         size_t size);
/*  True if id has the shape node_pod_sandbox_id produces. */
bool node_pod_is_sandbox_id (const char *id);

/*  True if the Pod is for this node: spec.nodeName absent, empty or equal to node. */
bool node_pod_for_node (const json_t *pod, const char *node);
/*  True if status.phase is Failed or Succeeded (a Pod with restartPolicy Never is done). */
bool node_pod_terminal (const json_t *pod);
/*  True if the Pod's status says a sandbox ran for it (phase Running, or a container
 *  state running): used after a restart to tell a Lost sandbox from one never started. */
bool node_pod_was_started (const json_t *pod);

/*  A spec (caller owns) for the Pod's sandbox id with the agent at agent_path as init:
 *  interpreters, security level, network and limits from the Pod. Returns NULL with
 *  "field: reason" in err (the field named as in the Pod, e.g.
 *  "spec.containers[0].resources.limits.memory: ...") when the Pod is invalid. */
lss_sandbox_spec_t *node_pod_spec (const json_t *pod, const char *id, const char *agent_path,
                                   char *err, size_t err_size);

/*  The Pod status for each state, written into a copy of pod (the copy is returned,
 *  caller owns; its metadata keeps the resourceVersion to guard the update). Fields not
 *  ours are kept; conditions keep their lastTransitionTime unless their status changes.
 *  Returns NULL on allocation failure. */
/*  A sandbox known to the runtime: Running (Ready once ready) or Succeeded / Failed with
 *  the runtime's reason once it ended. endpoint is the agent's host endpoint. */
json_t *node_pod_with_sandbox_status (const json_t *pod, const lss_sandbox_status_t *st,
                                      bool ready, const char *endpoint, int64_t now_ms);
/*  Pending with reason (e.g. NodeFull) and message; no container status. */
json_t *node_pod_with_pending (const json_t *pod, const char *reason, const char *message,
                               int64_t now_ms);
/*  Failed without a sandbox (InvalidSpec, Lost, StartError): reason and message on the
 *  Pod and, for Lost / StartError, a terminated container state. */
json_t *node_pod_with_failed (const json_t *pod, const char *reason, const char *message,
                              int64_t now_ms);

#endif
