/*  lss_leader — leader election: a PostgreSQL advisory lock (local mode) or a
 *  coordination.k8s.io/v1 Lease (cluster mode), behind the same functions.
 *
 *  PostgreSQL:
 *  The lock is a session lock on a dedicated connection: it lives exactly as long as the
 *  connection, so a leader that dies (kill -9, crash, network loss) releases it when the
 *  server notices the closed socket, and a standby's next try takes it. A leader checks
 *  its connection on every lss_leader_try; if the connection is gone it stops being
 *  leader at once and the caller must stop leading (client-go's rule: exit leadership
 *  as soon as it is in doubt). Calls are synchronous and short (a local round trip),
 *  bounded by the connect and statement timeouts; call them from the service's timer at
 *  most every second or so.
 */
#ifndef LSS_LEADER_H
#define LSS_LEADER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lss_config.h"
#include "lss_store.h"

/*  Lease: the client-go algorithm (tryAcquireOrRenew). A try reads the Lease; if another
 *  holder's Lease has not changed (by our local clock, never the record's timestamps) for
 *  leaseDurationSeconds, or nobody holds it, the candidate writes itself in
 *  (holderIdentity, acquireTime, renewTime, leaseTransitions + 1) with the read's
 *  resourceVersion: a 409 means another candidate won the race. The leader renews
 *  (renewTime) every retry period; a standby tries every retry period plus up to 20%
 *  jitter; tries in between answer from memory. A leader that has not renewed for the
 *  renew deadline stops leading at once, whether or not its requests still fail (each
 *  request is bounded by the retry period), and lss_leader_is_leader turns false by the
 *  clock alone. Defaults: lease 15 s, renew deadline 10 s, retry 2 s (k8s.*). */
typedef struct {
    int64_t lease_ms;          /* whole seconds; > renew_deadline_ms */
    int64_t renew_deadline_ms; /* > retry_ms */
    int64_t retry_ms;
} lss_leader_lease_opts_t;

typedef struct _lss_leader_t lss_leader_t;

/*  A candidate for the election called name (e.g. "watcher"), on its own connection to
 *  dsn (borrowed; connects lazily on the first try). identity names this candidate in
 *  logs. Returns NULL only on allocation failure. */
lss_leader_t *lss_leader_new (const char *dsn, const char *name, const char *identity);
/*  A Lease-backed candidate over store (taken over: *store_p is NULLed; any backend
 *  works, the Lease is an object like another): the Lease ns/"lss-<name>". opts NULL =
 *  the defaults. Returns NULL on allocation failure or inconsistent opts (logged). */
lss_leader_t *lss_leader_lease_new (lss_store_t **store_p, const char *ns, const char *name,
                                    const char *identity, const lss_leader_lease_opts_t *opts);

/*  The candidate store.backend calls for (cfg borrowed): "postgres" → lss_leader_new
 *  (store.dsn); "kubernetes" → lss_leader_lease_new on a Kubernetes store whose requests
 *  are bounded by the retry period and not retried, in k8s.namespace, with
 *  k8s.lease_duration / k8s.renew_deadline / k8s.retry_period. NULL (logged) if the
 *  backend or the k8s settings are unusable. */
lss_leader_t *lss_leader_new_from_config (const lss_config_t *cfg, const char *name,
                                          const char *identity);
/*  cfg non-NULL → lss_leader_new_from_config; else lss_leader_new (dsn). */
lss_leader_t *lss_leader_open (const lss_config_t *cfg, const char *dsn, const char *name,
                               const char *identity);

/*  Releases the lock (if held) and closes the connection. */
void lss_leader_destroy (lss_leader_t **self_p);

/*  Tries to become (or stay) leader. Returns 1 if this candidate leads now, 0 if another
 *  does, -1 if the database cannot be reached (then it is not leader). Changes of
 *  leadership are logged. (Lease: -1 only while not leading; a leader whose renewal
 *  fails keeps answering 1 until the renew deadline passes.) */
int lss_leader_try (lss_leader_t *self);
/*  Whether the last lss_leader_try found this candidate leading (Lease: and the renew
 *  deadline since its last renewal has not passed). */
bool lss_leader_is_leader (const lss_leader_t *self);
/*  Gives up leadership (unlock; Lease: clears holderIdentity so a standby takes over at
 *  its next try) but keeps the connection for a later try. */
void lss_leader_resign (lss_leader_t *self);

#endif
