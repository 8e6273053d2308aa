/*  lss_pod — the security settings every sandbox Pod carries, in one place.
 *
 *  The reconciler (a Sandbox's own Pod) and the warm pool scaler (warm pods) build their
 *  Pods differently but harden them the same way here, so that what a Pod may do never
 *  depends on how it was started: no service-account token, no service links, no host
 *  namespaces, non-root uid/gid with fsGroup, every capability dropped, no privilege
 *  escalation, read-only root, seccomp RuntimeDefault (or the profile's Localhost
 *  profile), requests equal to limits (Guaranteed QoS), emptyDir /workspace (sizeLimit =
 *  the ephemeral-storage limit) and a small memory-backed /tmp, and the profile's
 *  runtimeClassName (gVisor, Kata) when it names one. lss-node (local mode) ignores what
 *  bubblewrap cannot express; a kubelet enforces all of it.
 */
#ifndef LSS_POD_H
#define LSS_POD_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lss_curve.h"
#include "lss_store.h"

#define LSS_POD_TMP_SIZE "64Mi" /* the memory-backed /tmp of every sandbox Pod */

typedef struct {
    int64_t uid, gid;              /* 1..65534 */
    const char *seccomp_localhost; /* profile's seccompProfile (Localhost, relative path);
                                    * NULL or "": RuntimeDefault */
    const char *runtime_class;     /* profile's runtimeClassName; NULL or "": none */
} lss_pod_security_t;

/*  Adds the settings above to pod (a v1 Pod with one container whose resources.limits
 *  are set). Values that would weaken them (a host namespace, a privileged container)
 *  are overwritten. 0, or -1 with err (a bad uid/gid, seccomp path or runtime class, or a
 *  Pod without a container). */
int lss_pod_harden (json_t *pod, const lss_pod_security_t *sec, char *err, size_t err_size);

/*  CURVE between the executor and the agent (cluster mode). Each sandbox Pod has its own
 *  key pair: the secret key in the Secret <pod>-agent-key (owned by the Pod's owner, so
 *  it goes with it), handed to the agent as the environment variable
 *  LSS_AGENT_CURVE_SECRET (lss-agent wipes it at start), the public key in the Pod's
 *  annotation LSS_ANN_AGENT_KEY (the reconciler copies it to the Sandbox's
 *  status.agentPublicKey, where the executor finds it). */
#define LSS_ANN_AGENT_KEY      "llmsafespace.dev/agent-public-key"
#define LSS_POD_AGENT_PORT     7430
#define LSS_POD_KEY_SECRET_MAX 253

/*  True if csv is 1..LSS_CURVE_CLIENTS comma-separated Z85 public keys. */
bool lss_pod_curve_clients_valid (const char *csv);

/*  Makes sure the Secret <pod_name>-agent-key exists in ns, owned by owner (a Sandbox or
 *  WarmPod object): creates it with a fresh key pair, or reads the one a previous pass
 *  created (refusing one owned by someone else). pub gets its public key. 0, or a
 *  negative LSS_STORE_* code with err. */
int lss_pod_curve_secret (lss_store_t *store, const json_t *owner, const char *ns,
                          const char *pod_name, char pub[LSS_CURVE_KEY_LEN + 1], char *err,
                          size_t err_size);

/*  Cluster mode: the Pod's agent listens on tcp://0.0.0.0:7430 (args --endpoint, port
 *  "agent"), where the executor reaches it by the pod IP. 0 or -1. */
int lss_pod_agent_tcp (json_t *pod);

/*  Cluster mode, encrypted: lss_pod_agent_tcp plus one
 *  --curve-client per key of clients (csv), the secret from <pod name>-agent-key in the
 *  environment, the public key pub in the annotation. 0 or -1 with err. */
int lss_pod_curve_apply (json_t *pod, const char *pub, const char *clients, char *err,
                         size_t err_size);

/*  What both Pod builders do in cluster mode: TCP, and with clients (csv of executor
 *  keys; NULL or "": plaintext) the key Secret (owned by owner) and CURVE. 0, or a
 *  negative LSS_STORE_* code with err. */
int lss_pod_cluster_agent (lss_store_t *store, json_t *pod, const json_t *owner,
                           const char *clients, char *err, size_t err_size);

#endif
