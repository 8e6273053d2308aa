/*  reconciler_netpol — the NetworkPolicy of one sandbox (cluster mode).
 *
 *  Each sandbox Pod (selected by its llmsafespace.dev/sandbox label, which adopted warm
 *  pods get too) has one NetworkPolicy, owned by the Sandbox so it goes with it:
 *  ingress only from lss-executor pods (app.kubernetes.io/name=lss-executor, in
 *  executor_ns when given — kubernetes.io/metadata.name — else the sandbox's own) on the
 *  agent port; egress none, unless spec.networkAccess.egress grants it (and the level
 *  is not high): then DNS (53/UDP+TCP) and public addresses only — private ranges, link
 *  local (cloud metadata) and loopback stay closed — on the ports the grants name (any
 *  port when a grant names none). NetworkPolicy cannot match domain names: the domains
 *  of a grant are recorded in an annotation, and enforcing them needs an FQDN-aware CNI
 *  or an egress proxy (docs/deploy.md).
 */
#ifndef RECONCILER_NETPOL_H
#define RECONCILER_NETPOL_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#define RECONCILER_AGENT_PORT   7430
#define RECONCILER_EXECUTOR_APP "lss-executor"
#define RECONCILER_ANN_DOMAINS  "llmsafespace.dev/egress-domains"

/*  The NetworkPolicy (caller owns) for sandbox; egress: whether its network is granted.
 *  NULL with err on a bad grant (port out of range, unknown protocol). */
json_t *reconciler_netpol_for (const json_t *sandbox, bool egress, const char *executor_ns,
                               char *err, size_t err_size);

#endif
