/*  lss_leader_lease — the Lease-backed candidate behind lss_leader.h (lss_leader.c only).
 *
 *  The functions mirror lss_leader_*: see lss_leader.h for the algorithm and contracts.
 */
#ifndef LSS_LEADER_LEASE_H
#define LSS_LEADER_LEASE_H

#include "lss_leader.h"

typedef struct _lss_lease_t lss_lease_t;

/*  Takes over *store_p (NULLed) on success only. NULL (logged) on bad arguments. */
lss_lease_t *lss_lease_new (lss_store_t **store_p, const char *ns, const char *name,
                            const char *identity, const lss_leader_lease_opts_t *opts);
/*  Resigns if leading, destroys the store, frees; NULLs *self_p. */
void lss_lease_destroy (lss_lease_t **self_p);
/*  1 leading, 0 another leads, -1 unreachable (and not leading). */
int lss_lease_try (lss_lease_t *self);
bool lss_lease_is_leader (const lss_lease_t *self);
void lss_lease_resign (lss_lease_t *self);

#endif
