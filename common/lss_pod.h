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
#include <stddef.h>
#include <stdint.h>

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

#endif
