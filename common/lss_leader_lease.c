/*  lss_leader_lease — leader election with a coordination.k8s.io/v1 Lease. See lss_leader.h.
 *
 *  Design note: the Lease is read and written through the object store (lss_store_get /
 *  create / update with resourceVersion), so the same code elects on a real cluster, on
 *  the fake API server and, in tests, on PostgreSQL. All times that decide anything are
 *  this process's monotonic clock: when the Lease was last seen to change
 *  (observed_ms), when this candidate last renewed (renewed_ms); the record's
 *  acquireTime/renewTime (wall clock, MicroTime) are written for humans and kubectl but
 *  never trusted across machines, exactly as client-go does. Every field read from the
 *  Lease is type-checked: a malformed spec reads as "nobody holds it".
 */
#include "lss_leader_lease.h"
#include "lss_log.h"
#include "lss_util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define S_NAME_MAX     64
#define S_IDENTITY_MAX 128
#define S_RV_MAX       128
#define S_MICROTIME    40

struct _lss_lease_t {
    lss_store_t *store;
    char ns[LSS_STORE_NAMESPACE_MAX + 1];
    char name[S_NAME_MAX + 8]; /* "lss-<election>" */
    char identity[S_IDENTITY_MAX + 1];
    lss_leader_lease_opts_t opts;
    bool leader;
    int64_t renewed_ms;  /* last successful acquire or renew (monotonic) */
    int64_t next_try_ms; /* tries before this answer from memory */
    int last;            /* what the last real try found when not leading: 0 or -1 */
    char observed_rv[S_RV_MAX + 1];
    int64_t observed_ms; /* when observed_rv was first seen */
};

static void s_microtime (char *out, size_t size)
{
    struct timespec ts;
    struct tm tm;
    clock_gettime (CLOCK_REALTIME, &ts);
    gmtime_r (&ts.tv_sec, &tm);
    char base[24];
    strftime (base, sizeof base, "%Y-%m-%dT%H:%M:%S", &tm);
    lss_fmt (out, size, "%s.%06ldZ", base, ts.tv_nsec / 1000);
}

lss_lease_t *lss_lease_new (lss_store_t **store_p, const char *ns, const char *name,
                            const char *identity, const lss_leader_lease_opts_t *opts)
{
    lss_leader_lease_opts_t o = {15000, 10000, 2000};
    if (opts)
        o = *opts;
    if (o.lease_ms < 1000 || o.lease_ms % 1000 != 0 || o.renew_deadline_ms >= o.lease_ms ||
        o.retry_ms <= 0 || o.retry_ms >= o.renew_deadline_ms) {
        lss_log_error ("leader election: need whole-second lease > renew deadline > retry",
                       "{s:I, s:I, s:I}", "lease_ms", (json_int_t)o.lease_ms,
                       "renew_deadline_ms", (json_int_t)o.renew_deadline_ms, "retry_ms",
                       (json_int_t)o.retry_ms);
        return NULL;
    }
    lss_lease_t *self = calloc (1, sizeof *self);
    if (!self)
        return NULL;
    char lease_name[S_NAME_MAX + 8];
    if (lss_fmt (self->ns, sizeof self->ns, "%s", ns ? ns : "") != 0 || !self->ns[0] ||
        lss_fmt (lease_name, sizeof lease_name, "lss-%s", name ? name : "") != 0 ||
        lss_store_check_name ("lease", lease_name, NULL, 0) != 0 ||
        lss_fmt (self->identity, sizeof self->identity, "%s", identity ? identity : "") != 0 ||
        !self->identity[0]) {
        lss_log_error ("leader election: bad namespace, election name or identity",
                       "{s:s, s:s}", "namespace", ns ? ns : "", "election", name ? name : "");
        free (self);
        return NULL;
    }
    lss_fmt (self->name, sizeof self->name, "%s", lease_name);
    self->opts = o;
    self->store = *store_p;
    *store_p = NULL;
    return self;
}

void lss_lease_destroy (lss_lease_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    lss_lease_t *self = *self_p;
    lss_lease_resign (self);
    lss_store_destroy (&self->store);
    free (self);
    *self_p = NULL;
}

static void s_lost (lss_lease_t *self, const char *why)
{
    if (self->leader)
        lss_log_warn ("leadership lost", "{s:s, s:s, s:s}", "election", self->name, "identity",
                      self->identity, "reason", why);
    self->leader = false;
}

bool lss_lease_is_leader (const lss_lease_t *self)
{
    return self->leader &&
           lss_time_mono_ms () - self->renewed_ms <= self->opts.renew_deadline_ms;
}

/*  A new Lease object (or the spec of one) naming us. */
static json_t *s_spec (lss_lease_t *self, const json_t *old_spec, bool keep_acquire)
{
    char now[S_MICROTIME];
    s_microtime (now, sizeof now);
    json_int_t transitions =
        json_integer_value (json_object_get (old_spec, "leaseTransitions"));
    if (transitions < 0 || transitions > INT32_MAX)
        transitions = 0;
    const char *acquired = json_string_value (json_object_get (old_spec, "acquireTime"));
    json_t *spec = json_pack ("{s:s, s:I, s:s, s:s, s:I}", "holderIdentity", self->identity,
                              "leaseDurationSeconds", (json_int_t)(self->opts.lease_ms / 1000),
                              "acquireTime", keep_acquire && acquired ? acquired : now,
                              "renewTime", now, "leaseTransitions",
                              keep_acquire ? transitions : (old_spec ? transitions + 1 : 0));
    return spec;
}

/*  One acquire-or-renew: 1 leading, 0 held by another or lost a race, -1 unreachable. */
static int s_try (lss_lease_t *self, int64_t now)
{
    char err[LSS_STORE_ERR_SIZE] = "";
    json_t *cur = NULL, *out = NULL;
    int rc = lss_store_get (self->store, "Lease", self->ns, self->name, &cur, err, sizeof err);
    int result = -1;
    if (rc == LSS_STORE_NOT_FOUND) {
        json_t *obj =
            json_pack ("{s:s, s:s, s:{s:s, s:s}, s:o}", "apiVersion", "coordination.k8s.io/v1",
                       "kind", "Lease", "metadata", "name", self->name, "namespace", self->ns,
                       "spec", s_spec (self, NULL, false));
        rc = lss_store_create (self->store, obj, &out, err, sizeof err);
        json_decref (obj);
        result = rc == LSS_STORE_OK ? 1 : rc == LSS_STORE_CONFLICT ? 0 : -1;
        goto done;
    }
    if (rc != LSS_STORE_OK)
        goto done;
    const char *rv = json_string_value (
        json_object_get (json_object_get (cur, "metadata"), "resourceVersion"));
    if (!rv || strlen (rv) > S_RV_MAX) {
        lss_errf (err, sizeof err, "the Lease has no usable resourceVersion");
        goto done;
    }
    if (strcmp (rv, self->observed_rv) != 0) {
        lss_fmt (self->observed_rv, sizeof self->observed_rv, "%s", rv);
        self->observed_ms = now;
    }
    const json_t *spec = json_object_get (cur, "spec");
    if (!json_is_object (spec))
        spec = NULL;
    const char *holder = json_string_value (json_object_get (spec, "holderIdentity"));
    json_int_t secs = json_integer_value (json_object_get (spec, "leaseDurationSeconds"));
    int64_t their_ms = secs >= 1 && secs <= 3600 ? (int64_t)secs * 1000 : self->opts.lease_ms;
    bool mine = holder && strcmp (holder, self->identity) == 0;
    if (holder && holder[0] && !mine && now < self->observed_ms + their_ms) {
        result = 0; /* another holder's lease has not run out by our clock */
        goto done;
    }
    if (holder && holder[0] && !mine)
        lss_log_info ("lease expired: taking over", "{s:s, s:s, s:s}", "election", self->name,
                      "from", holder, "identity", self->identity);
    json_object_set_new (cur, "spec", s_spec (self, spec, mine));
    rc = lss_store_update (self->store, cur, &out, err, sizeof err);
    result = rc == LSS_STORE_OK ? 1 : rc == LSS_STORE_CONFLICT ? 0 : -1;
done:
    if (result == 1 && out) {
        const char *nrv = json_string_value (
            json_object_get (json_object_get (out, "metadata"), "resourceVersion"));
        lss_fmt (self->observed_rv, sizeof self->observed_rv, "%s", nrv ? nrv : "");
        self->observed_ms = now;
    }
    if (result < 0 || (result == 0 && rc == LSS_STORE_CONFLICT))
        lss_log_debug ("lease try failed", "{s:s, s:i, s:s}", "election", self->name, "code",
                       rc, "error", err);
    json_decref (cur);
    json_decref (out);
    return result;
}

static int64_t s_jitter (int64_t ms)
{
    uint16_t r = 0;
    lss_random_bytes (&r, sizeof r);
    return ms + (int64_t)(r % (uint16_t)(ms / 5 + 1));
}

int lss_lease_try (lss_lease_t *self)
{
    int64_t now = lss_time_mono_ms ();
    if (self->leader && now - self->renewed_ms > self->opts.renew_deadline_ms) {
        s_lost (self, "renew deadline passed");
        self->next_try_ms = 0; /* answer from a real try, not from memory */
    }
    if (now < self->next_try_ms)
        return self->leader ? 1 : self->last;
    int r = s_try (self, now);
    int64_t after = lss_time_mono_ms ();
    if (r == 1) {
        self->last = 0;
        if (!self->leader)
            lss_log_info ("became leader", "{s:s, s:s}", "election", self->name, "identity",
                          self->identity);
        self->leader = true;
        self->renewed_ms = now; /* the time the winning read started: conservative */
        self->next_try_ms = after + self->opts.retry_ms;
        return 1;
    }
    if (r == 0)
        s_lost (self, "the lease is held by another candidate");
    else if (self->leader && after - self->renewed_ms > self->opts.renew_deadline_ms)
        s_lost (self, "renew deadline passed");
    self->next_try_ms =
        after + (self->leader ? self->opts.retry_ms / 2 : s_jitter (self->opts.retry_ms));
    if (self->leader)
        return 1; /* a failed renewal, still within the renew deadline */
    self->last = r;
    return r;
}

void lss_lease_resign (lss_lease_t *self)
{
    if (!self->leader)
        return;
    self->leader = false;
    char err[LSS_STORE_ERR_SIZE] = "";
    json_t *cur = NULL;
    if (lss_store_get (self->store, "Lease", self->ns, self->name, &cur, err, sizeof err) ==
        LSS_STORE_OK) {
        json_t *spec = json_object_get (cur, "spec");
        const char *holder = json_string_value (json_object_get (spec, "holderIdentity"));
        if (json_is_object (spec) && holder && strcmp (holder, self->identity) == 0) {
            char now[S_MICROTIME];
            s_microtime (now, sizeof now);
            json_object_del (spec, "holderIdentity");
            json_object_set_new (spec, "leaseDurationSeconds", json_integer (1));
            json_object_set_new (spec, "renewTime", json_string (now));
            if (lss_store_update (self->store, cur, NULL, err, sizeof err) != LSS_STORE_OK)
                lss_log_warn ("leader election: cannot release the lease", "{s:s, s:s}",
                              "election", self->name, "error", err);
        }
    }
    json_decref (cur);
    self->next_try_ms = 0;
    lss_log_info ("resigned leadership", "{s:s, s:s}", "election", self->name, "identity",
                  self->identity);
}
