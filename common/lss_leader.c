/*  lss_leader — leader election with pg_try_advisory_lock, or a Lease (lss_leader_lease.c).
 *  See lss_leader.h. A candidate with a lease delegates every call to it. */
#include "lss_leader.h"
#include "lss_k8s_conf.h"
#include "lss_leader_lease.h"
#include "lss_store_k8s.h"

#include <libpq-fe.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lss_log.h"

#define S_NAME_MAX   64
#define S_LOCK_CLASS 0x4c5353 /* "LSS": first half of the two-int advisory lock key */

struct _lss_leader_t {
    lss_lease_t *lease; /* non-NULL: Lease-backed; the fields below are unused */
    char *dsn;
    char name[S_NAME_MAX + 1];
    char identity[S_NAME_MAX + 1];
    int32_t key; /* second half: a hash of name */
    PGconn *conn;
    bool leader;
};

static int32_t s_hash (const char *s)
{
    uint32_t h = 2166136261u; /* FNV-1a */
    for (; *s; s++)
        h = (h ^ (uint8_t)*s) * 16777619u;
    return (int32_t)(h & 0x7fffffff);
}

lss_leader_t *lss_leader_new (const char *dsn, const char *name, const char *identity)
{
    lss_leader_t *self = calloc (1, sizeof *self);
    if (!self || !(self->dsn = strdup (dsn ? dsn : ""))) {
        free (self);
        return NULL;
    }
    snprintf (self->name, sizeof self->name, "%s", name ? name : "");
    snprintf (self->identity, sizeof self->identity, "%s", identity ? identity : "");
    self->key = s_hash (self->name);
    return self;
}

static void s_lost (lss_leader_t *self, const char *why)
{
    if (self->leader)
        lss_log_warn ("leadership lost", "{s:s, s:s, s:s}", "election", self->name, "identity",
                      self->identity, "reason", why);
    self->leader = false;
}

static int s_connect (lss_leader_t *self)
{
    if (self->conn && PQstatus (self->conn) == CONNECTION_OK)
        return 0;
    PQfinish (self->conn);
    char dsn[2048];
    if (snprintf (dsn, sizeof dsn, "%s connect_timeout=5 options='-c statement_timeout=5000'",
                  self->dsn) >= (int)sizeof dsn)
        return -1;
    self->conn = PQconnectdb (dsn);
    if (PQstatus (self->conn) != CONNECTION_OK) {
        lss_log_warn ("leader election: cannot reach the database", "{s:s, s:s}", "election",
                      self->name, "error", PQerrorMessage (self->conn));
        PQfinish (self->conn);
        self->conn = NULL;
        return -1;
    }
    return 0;
}

int lss_leader_try (lss_leader_t *self)
{
    if (self->lease)
        return lss_lease_try (self->lease);
    if (s_connect (self)) {
        s_lost (self, "database unreachable");
        return -1;
    }
    char cls[16], key[16];
    snprintf (cls, sizeof cls, "%d", S_LOCK_CLASS);
    snprintf (key, sizeof key, "%d", (int)self->key);
    const char *params[] = {cls, key};
    /* Re-locking a lock we hold succeeds (and nests): hold at most one level by only
     * trying when not leader, and otherwise checking the connection with the query that
     * reports whether we still hold it. */
    const char *sql = self->leader
                          ? "SELECT count(*) > 0 FROM pg_locks WHERE locktype = 'advisory' AND "
                            "classid = $1::int::oid AND objid = $2::int::oid AND objsubid = 2 "
                            "AND pid = pg_backend_pid() AND granted"
                          : "SELECT pg_try_advisory_lock ($1::int, $2::int)";
    PGresult *r = PQexecParams (self->conn, sql, 2, NULL, params, NULL, NULL, 0);
    if (PQresultStatus (r) != PGRES_TUPLES_OK || PQntuples (r) != 1) {
        lss_log_warn ("leader election: query failed", "{s:s, s:s}", "election", self->name,
                      "error", PQerrorMessage (self->conn));
        PQclear (r);
        PQfinish (self->conn); /* a broken session may have lost the lock: start over */
        self->conn = NULL;
        s_lost (self, "connection failed");
        return -1;
    }
    bool holds = strcmp (PQgetvalue (r, 0, 0), "t") == 0;
    PQclear (r);
    if (holds && !self->leader)
        lss_log_info ("became leader", "{s:s, s:s}", "election", self->name, "identity",
                      self->identity);
    else if (!holds)
        s_lost (self, "lock not held");
    self->leader = holds;
    return holds ? 1 : 0;
}

bool lss_leader_is_leader (const lss_leader_t *self)
{
    if (self->lease)
        return lss_lease_is_leader (self->lease);
    return self->leader;
}

void lss_leader_resign (lss_leader_t *self)
{
    if (self->lease) {
        lss_lease_resign (self->lease);
        return;
    }
    if (self->leader && self->conn) {
        char cls[16], key[16];
        snprintf (cls, sizeof cls, "%d", S_LOCK_CLASS);
        snprintf (key, sizeof key, "%d", (int)self->key);
        const char *params[] = {cls, key};
        PQclear (PQexecParams (self->conn, "SELECT pg_advisory_unlock ($1::int, $2::int)", 2,
                               NULL, params, NULL, NULL, 0));
        lss_log_info ("resigned leadership", "{s:s, s:s}", "election", self->name, "identity",
                      self->identity);
    }
    self->leader = false;
}

void lss_leader_destroy (lss_leader_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    lss_leader_t *self = *self_p;
    lss_lease_destroy (&self->lease);
    lss_leader_resign (self);
    PQfinish (self->conn);
    free (self->dsn);
    free (self);
    *self_p = NULL;
}

lss_leader_t *lss_leader_lease_new (lss_store_t **store_p, const char *ns, const char *name,
                                    const char *identity, const lss_leader_lease_opts_t *opts)
{
    lss_leader_t *self = calloc (1, sizeof *self);
    if (!self)
        return NULL;
    if (!(self->lease = lss_lease_new (store_p, ns, name, identity, opts))) {
        free (self);
        return NULL;
    }
    snprintf (self->name, sizeof self->name, "%s", name ? name : "");
    snprintf (self->identity, sizeof self->identity, "%s", identity ? identity : "");
    return self;
}

lss_leader_t *lss_leader_new_from_config (const lss_config_t *cfg, const char *name,
                                          const char *identity)
{
    const char *backend = lss_config_str (cfg, "store.backend");
    if (strcmp (backend, "postgres") == 0)
        return lss_leader_new (lss_config_str (cfg, "store.dsn"), name, identity);
    if (strcmp (backend, "kubernetes") != 0) {
        lss_log_error ("leader election: unknown store.backend", "{s:s}", "backend", backend);
        return NULL;
    }
    lss_leader_lease_opts_t opts = {
        .lease_ms = lss_config_int (cfg, "k8s.lease_duration"),
        .renew_deadline_ms = lss_config_int (cfg, "k8s.renew_deadline"),
        .retry_ms = lss_config_int (cfg, "k8s.retry_period"),
    };
    char err[LSS_STORE_ERR_SIZE] = "";
    lss_k8s_conf_t conf;
    if (lss_k8s_conf_from_config (&conf, cfg, err, sizeof err) != 0) {
        lss_log_error ("leader election: no Kubernetes client", "{s:s}", "error", err);
        return NULL;
    }
    /* a renewal must not outlast the retry period, nor be retried past it */
    if (conf.timeout_ms > opts.retry_ms)
        conf.timeout_ms = opts.retry_ms;
    conf.max_retries = 0;
    char ns[LSS_K8S_NAMESPACE_MAX + 1];
    snprintf (ns, sizeof ns, "%s", conf.ns);
    lss_store_t *store = lss_store_k8s_new (&conf, err, sizeof err);
    if (!store) {
        lss_log_error ("leader election: no Kubernetes client", "{s:s}", "error", err);
        return NULL;
    }
    lss_leader_t *self = lss_leader_lease_new (&store, ns, name, identity, &opts);
    lss_store_destroy (&store); /* still ours if the candidate was refused */
    return self;
}

lss_leader_t *lss_leader_open (const lss_config_t *cfg, const char *dsn, const char *name,
                               const char *identity)
{
    return cfg ? lss_leader_new_from_config (cfg, name, identity)
               : lss_leader_new (dsn, name, identity);
}
