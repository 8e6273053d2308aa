/*  lss_leader — leader election over a PostgreSQL advisory lock (local mode; a Lease-based
 *  twin comes with the Kubernetes backend).
 *
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

typedef struct _lss_leader_t lss_leader_t;

/*  A candidate for the election called name (e.g. "watcher"), on its own connection to
 *  dsn (borrowed; connects lazily on the first try). identity names this candidate in
 *  logs. Returns NULL only on allocation failure. */
lss_leader_t *lss_leader_new (const char *dsn, const char *name, const char *identity);
/*  Releases the lock (if held) and closes the connection. */
void lss_leader_destroy (lss_leader_t **self_p);

/*  Tries to become (or stay) leader. Returns 1 if this candidate leads now, 0 if another
 *  does, -1 if the database cannot be reached (then it is not leader). Changes of
 *  leadership are logged. */
int lss_leader_try (lss_leader_t *self);
/*  Whether the last lss_leader_try found this candidate leading. */
bool lss_leader_is_leader (const lss_leader_t *self);
/*  Gives up leadership (unlock) but keeps the connection for a later try. */
void lss_leader_resign (lss_leader_t *self);

#endif
