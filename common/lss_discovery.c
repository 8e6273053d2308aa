/*  lss_discovery — dns+tcp:// endpoint lists expanded to every replica. See lss_discovery.h.
 *
 *  Design note: each lookup runs getaddrinfo in a short-lived detached thread, so a slow
 *  DNS server never stalls the caller's poll loop. The request is reference-counted
 *  between the thread and the discovery, so the discovery can give up on a lookup (after
 *  LSS_DISCOVERY_LOOKUP_MS, or when destroyed) without waiting: the thread frees it when
 *  getaddrinfo returns. (glibc's getaddrinfo_a was tried first: cancelling a queued
 *  request leaks glibc's own bookkeeping.) At most S_LOOKUPS_MAX such threads exist at
 *  once. Every name keeps its last good answer: a failed lookup changes nothing.
 *  The concrete set is rebuilt from the static entries and every name's answer after each
 *  lookup, and compared with the previous one to tell the caller whether anything moved.
 */
#include "lss_discovery.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "lss_log.h"
#include "lss_util.h"

#define S_ENTRY_MAX    300 /* bytes of one list entry */
#define S_WHAT_MAX     63
#define S_INTERVAL_MIN 500
#define S_INTERVAL_MAX 600000
#define S_LOOKUPS_MAX  32 /* lookup threads at once in the process (stuck DNS bounds it) */

//  --------------------------------------------------------------------------
//  Endpoint sets: a sorted array of strings

struct _lss_epset_t {
    size_t count;
    char *items[LSS_EPSET_MAX];
};

lss_epset_t *lss_epset_new (void)
{
    return calloc (1, sizeof (lss_epset_t));
}

void lss_epset_destroy (lss_epset_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    lss_epset_t *self = *self_p;
    for (size_t i = 0; i < self->count; i++)
        free (self->items[i]);
    free (self);
    *self_p = NULL;
}

lss_epset_t *lss_epset_dup (const lss_epset_t *self)
{
    lss_epset_t *copy = lss_epset_new ();
    for (size_t i = 0; copy && self && i < self->count; i++)
        if (lss_epset_add (copy, self->items[i]) < 0)
            lss_epset_destroy (&copy);
    return copy;
}

/*  The index of endpoint, or of where it would go (*found false). */
static size_t s_find (const lss_epset_t *self, const char *endpoint, bool *found)
{
    size_t lo = 0, hi = self->count;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp (self->items[mid], endpoint);
        if (c == 0) {
            *found = true;
            return mid;
        }
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    *found = false;
    return lo;
}

int lss_epset_add (lss_epset_t *self, const char *endpoint)
{
    if (!self || !endpoint || !*endpoint || strlen (endpoint) > LSS_EPSET_ENDPOINT_MAX)
        return -1;
    bool found;
    size_t at = s_find (self, endpoint, &found);
    if (found)
        return 1;
    if (self->count >= LSS_EPSET_MAX)
        return -1;
    char *copy = strdup (endpoint);
    if (!copy)
        return -1;
    memmove (&self->items[at + 1], &self->items[at], (self->count - at) * sizeof (char *));
    self->items[at] = copy;
    self->count++;
    return 0;
}

int lss_epset_remove (lss_epset_t *self, const char *endpoint)
{
    bool found = false;
    size_t at = self && endpoint ? s_find (self, endpoint, &found) : 0;
    if (!found)
        return -1;
    free (self->items[at]);
    memmove (&self->items[at], &self->items[at + 1], (self->count - at - 1) * sizeof (char *));
    self->count--;
    return 0;
}

size_t lss_epset_size (const lss_epset_t *self)
{
    return self ? self->count : 0;
}

const char *lss_epset_at (const lss_epset_t *self, size_t i)
{
    return self && i < self->count ? self->items[i] : NULL;
}

bool lss_epset_contains (const lss_epset_t *self, const char *endpoint)
{
    bool found = false;
    if (self && endpoint)
        s_find (self, endpoint, &found);
    return found;
}

bool lss_epset_equal (const lss_epset_t *a, const lss_epset_t *b)
{
    if (lss_epset_size (a) != lss_epset_size (b))
        return false;
    for (size_t i = 0; i < lss_epset_size (a); i++)
        if (strcmp (a->items[i], b->items[i]) != 0)
            return false;
    return true;
}

int lss_epset_join (const lss_epset_t *self, char *out, size_t size)
{
    if (!out || size == 0)
        return -1;
    size_t used = 0;
    out[0] = '\0';
    for (size_t i = 0; i < lss_epset_size (self); i++) {
        size_t n = strlen (self->items[i]);
        if (used + (i ? 1 : 0) + n + 1 > size) {
            out[0] = '\0';
            return -1;
        }
        if (i)
            out[used++] = ',';
        memcpy (out + used, self->items[i], n + 1);
        used += n;
    }
    return 0;
}

int lss_epset_diff (const lss_epset_t *old_set, const lss_epset_t *new_set, lss_epset_t **added,
                    lss_epset_t **removed)
{
    lss_epset_t *a = lss_epset_new (), *r = lss_epset_new ();
    if (!a || !r)
        goto fail;
    for (size_t i = 0; i < lss_epset_size (new_set); i++)
        if (!lss_epset_contains (old_set, new_set->items[i]) &&
            lss_epset_add (a, new_set->items[i]) < 0)
            goto fail;
    for (size_t i = 0; i < lss_epset_size (old_set); i++)
        if (!lss_epset_contains (new_set, old_set->items[i]) &&
            lss_epset_add (r, old_set->items[i]) < 0)
            goto fail;
    *added = a;
    *removed = r;
    return 0;
fail:
    lss_epset_destroy (&a);
    lss_epset_destroy (&r);
    return -1;
}

//  --------------------------------------------------------------------------
//  Parsing

bool lss_discovery_is_dynamic (const char *list)
{
    return list && strstr (list, "dns+") != NULL;
}

static bool s_dns_name_valid (const char *host, size_t len)
{
    if (len == 0 || len > LSS_DISCOVERY_HOST_MAX)
        return false;
    if (host[len - 1] == '.') /* fully qualified */
        len--;
    size_t label = 0;
    for (size_t i = 0; i <= len; i++) {
        char c = i < len ? host[i] : '.';
        if (c == '.') {
            if (label == 0 || label > 63 || host[i - 1] == '-')
                return false;
            label = 0;
            continue;
        }
        bool alnum = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
        if (!alnum && !(c == '-' && label > 0))
            return false;
        label++;
    }
    return true;
}

int lss_discovery_parse (const char *entry, char host[LSS_DISCOVERY_HOST_MAX + 1], int *port,
                         char *err, size_t err_size)
{
    static const char prefix[] = "dns+tcp://";
    if (!entry || strncmp (entry, prefix, sizeof prefix - 1) != 0) {
        lss_errf (err, err_size, "a dns+ endpoint must be dns+tcp://HOST:PORT");
        return -1;
    }
    const char *h = entry + sizeof prefix - 1;
    const char *colon;
    size_t hlen;
    if (*h == '[') { /* [IPv6] */
        const char *close = strchr (h, ']');
        if (!close || close[1] != ':') {
            lss_errf (err, err_size, "bad IPv6 address in %.64s", entry);
            return -1;
        }
        hlen = (size_t)(close - h - 1);
        char v6[INET6_ADDRSTRLEN + 1];
        struct in6_addr a6;
        if (hlen == 0 || hlen >= sizeof v6) {
            lss_errf (err, err_size, "bad IPv6 address in %.64s", entry);
            return -1;
        }
        memcpy (v6, h + 1, hlen);
        v6[hlen] = '\0';
        if (inet_pton (AF_INET6, v6, &a6) != 1) {
            lss_errf (err, err_size, "bad IPv6 address in %.64s", entry);
            return -1;
        }
        memcpy (host, v6, hlen + 1);
        colon = close + 1;
    } else {
        colon = strrchr (h, ':');
        if (!colon) {
            lss_errf (err, err_size, "no port in %.64s (dns+tcp://HOST:PORT)", entry);
            return -1;
        }
        hlen = (size_t)(colon - h);
        if (!s_dns_name_valid (h, hlen)) {
            lss_errf (err, err_size,
                      "bad host name in %.64s (letters, digits, '-' and '.'; at most 253 "
                      "bytes, labels of 1..63)",
                      entry);
            return -1;
        }
        memcpy (host, h, hlen);
        host[hlen] = '\0';
    }
    const char *p = colon + 1;
    size_t plen = strlen (p);
    int value = 0;
    for (size_t i = 0; i < plen; i++) {
        if (p[i] < '0' || p[i] > '9' || i >= 5) {
            value = -1;
            break;
        }
        value = value * 10 + (p[i] - '0');
    }
    if (plen == 0 || value < 1 || value > 65535) {
        lss_errf (err, err_size, "bad port in %.64s (1..65535)", entry);
        return -1;
    }
    *port = value;
    return 0;
}

//  --------------------------------------------------------------------------
//  Discovery

static lss_discovery_resolve_fn *s_hook_resolve;
static lss_discovery_release_fn *s_hook_release;
static void *s_hook_arg;

void lss_discovery_set_resolver (lss_discovery_resolve_fn *resolve,
                                 lss_discovery_release_fn *release, void *arg)
{
    s_hook_resolve = resolve;
    s_hook_release = resolve ? release : NULL;
    s_hook_arg = resolve ? arg : NULL;
}

/*  One lookup, shared by the discovery and the thread running getaddrinfo: whoever drops
 *  the last reference frees it (the discovery may give up on a lookup, the thread cannot). */
typedef struct {
    atomic_int refs;
    atomic_bool done;
    char host[LSS_DISCOVERY_HOST_MAX + 1];
    int rc;
    struct addrinfo *res;
} s_request_t;

static atomic_int s_lookups_running; /* threads in getaddrinfo, all discoveries */

static void s_request_unref (s_request_t *req)
{
    if (atomic_fetch_sub (&req->refs, 1) != 1)
        return;
    if (req->res)
        freeaddrinfo (req->res);
    free (req);
}

static void *s_lookup (void *arg)
{
    s_request_t *req = arg;
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    req->rc = getaddrinfo (req->host, NULL, &hints, &req->res);
    atomic_store (&req->done, true);
    atomic_fetch_sub (&s_lookups_running, 1);
    s_request_unref (req);
    return NULL;
}

typedef struct {
    char host[LSS_DISCOVERY_HOST_MAX + 1];
    int port;
    lss_epset_t *addrs; /* last good answer, as tcp:// endpoints */
    s_request_t *req;   /* lookup in flight */
    int64_t started_ms; /* of the lookup in flight */
    int64_t next_ms;    /* next lookup due */
    bool failing;       /* the last lookup failed (logged once per failure run) */
} s_name_t;

struct _lss_discovery_t {
    char what[S_WHAT_MAX + 1];
    int64_t interval_ms;
    lss_epset_t *statics;
    s_name_t names[LSS_DISCOVERY_NAMES_MAX];
    size_t nnames;
    lss_epset_t *set;
    bool changed;
    uint64_t lookups, failures;
};

lss_discovery_t *lss_discovery_new (const char *list, int64_t interval_ms, const char *what,
                                    char *err, size_t err_size)
{
    if (!list || !*list) {
        lss_errf (err, err_size, "%s: empty endpoint list", what ? what : "endpoints");
        return NULL;
    }
    lss_discovery_t *self = calloc (1, sizeof *self);
    if (!self)
        return NULL;
    snprintf (self->what, sizeof self->what, "%s", what ? what : "endpoints");
    self->interval_ms = interval_ms < S_INTERVAL_MIN   ? S_INTERVAL_MIN
                        : interval_ms > S_INTERVAL_MAX ? S_INTERVAL_MAX
                                                       : interval_ms;
    self->statics = lss_epset_new ();
    self->set = lss_epset_new ();
    if (!self->statics || !self->set)
        goto fail;
    const char *p = list;
    while (*p) {
        size_t n = strcspn (p, ",");
        char entry[S_ENTRY_MAX + 1];
        if (n > S_ENTRY_MAX) {
            lss_errf (err, err_size, "%s: an entry is longer than %d bytes", self->what,
                      S_ENTRY_MAX);
            goto fail;
        }
        memcpy (entry, p, n);
        entry[n] = '\0';
        p += n;
        if (*p == ',')
            p++;
        if (n == 0)
            continue;
        const char *e = entry[0] == '>' ? entry + 1 : entry;
        bool dns = strncmp (e, "dns+", 4) == 0;
        if (!dns && strstr (entry, "dns+")) { /* "@dns+...", ">@dns+...", "x,dns+" typos */
            lss_errf (err, err_size,
                      "%s: a dns+ endpoint must start the entry and cannot be bound ('@'): "
                      "%.64s",
                      self->what, entry);
            goto fail;
        }
        if (!dns) {
            if (!*e || lss_epset_add (self->statics, e) < 0) {
                lss_errf (err, err_size, "%s: bad or too many endpoints at %.64s", self->what,
                          entry);
                goto fail;
            }
            continue;
        }
        if (self->nnames >= LSS_DISCOVERY_NAMES_MAX) {
            lss_errf (err, err_size, "%s: more than %d dns+ endpoints", self->what,
                      LSS_DISCOVERY_NAMES_MAX);
            goto fail;
        }
        s_name_t *nm = &self->names[self->nnames];
        char why[160] = "";
        if (lss_discovery_parse (e, nm->host, &nm->port, why, sizeof why)) {
            lss_errf (err, err_size, "%s: %s", self->what, why);
            goto fail;
        }
        nm->addrs = lss_epset_new ();
        if (!nm->addrs)
            goto fail;
        self->nnames++;
    }
    if (self->nnames == 0 && lss_epset_size (self->statics) == 0) {
        lss_errf (err, err_size, "%s: no endpoint", self->what);
        goto fail;
    }
    for (size_t i = 0; i < lss_epset_size (self->statics); i++)
        lss_epset_add (self->set, lss_epset_at (self->statics, i));
    return self;
fail:
    lss_discovery_destroy (&self);
    return NULL;
}

int lss_discovery_validate (const char *list, const char *what, char *err, size_t err_size)
{
    lss_discovery_t *d = lss_discovery_new (list, S_INTERVAL_MIN, what, err, err_size);
    int rc = d ? 0 : -1;
    lss_discovery_destroy (&d);
    return rc;
}

void lss_discovery_destroy (lss_discovery_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    lss_discovery_t *self = *self_p;
    for (size_t i = 0; i < self->nnames; i++) {
        s_name_t *nm = &self->names[i];
        if (nm->req) { /* a lookup still running finishes on its own and frees it */
            s_request_unref (nm->req);
            nm->req = NULL;
        }
        lss_epset_destroy (&nm->addrs);
    }
    lss_epset_destroy (&self->statics);
    lss_epset_destroy (&self->set);
    free (self);
    *self_p = NULL;
}

/*  Rebuilds the concrete set from the statics and every name's answer. */
static void s_rebuild (lss_discovery_t *self)
{
    lss_epset_t *next = lss_epset_dup (self->statics);
    if (!next)
        return;
    bool full = false;
    for (size_t i = 0; i < self->nnames; i++)
        for (size_t k = 0; k < lss_epset_size (self->names[i].addrs); k++)
            if (lss_epset_add (next, lss_epset_at (self->names[i].addrs, k)) < 0)
                full = true;
    if (full)
        lss_log_warn ("discovery: too many endpoints, some left out", "{s:s, s:i}", "endpoints",
                      self->what, "max", LSS_EPSET_MAX);
    if (lss_epset_equal (next, self->set)) {
        lss_epset_destroy (&next);
        return;
    }
    char joined[1024];
    if (lss_epset_join (next, joined, sizeof joined))
        snprintf (joined, sizeof joined, "(%zu endpoints)", lss_epset_size (next));
    lss_log_info ("discovery: endpoints changed", "{s:s, s:i, s:s}", "endpoints", self->what,
                  "count", (int)lss_epset_size (next), "set", joined);
    lss_epset_destroy (&self->set);
    self->set = next;
    self->changed = true;
}

static void s_failed (lss_discovery_t *self, s_name_t *nm, int64_t now, const char *why)
{
    self->failures++;
    int64_t retry =
        self->interval_ms < LSS_DISCOVERY_RETRY_MS ? self->interval_ms : LSS_DISCOVERY_RETRY_MS;
    nm->next_ms = now + retry;
    if (!nm->failing)
        lss_log_warn ("discovery: lookup failed, keeping the previous addresses",
                      "{s:s, s:s, s:s, s:i}", "endpoints", self->what, "host", nm->host,
                      "error", why, "kept", (int)lss_epset_size (nm->addrs));
    nm->failing = true;
}

/*  Turns an answer into nm's addresses (sorted, unique, capped). */
static void s_answered (lss_discovery_t *self, s_name_t *nm, const struct addrinfo *res,
                        int64_t now)
{
    self->lookups++;
    lss_epset_t *all = lss_epset_new ();
    if (!all) {
        s_failed (self, nm, now, "out of memory");
        return;
    }
    for (const struct addrinfo *ai = res; ai; ai = ai->ai_next) {
        char text[INET6_ADDRSTRLEN];
        char ep[LSS_EPSET_ENDPOINT_MAX + 1];
        int w = -1;
        if (ai->ai_family == AF_INET && ai->ai_addr &&
            ai->ai_addrlen >= (socklen_t)sizeof (struct sockaddr_in) &&
            inet_ntop (AF_INET, &((const struct sockaddr_in *)ai->ai_addr)->sin_addr, text,
                       sizeof text))
            w = lss_fmt (ep, sizeof ep, "tcp://%s:%d", text, nm->port);
        else if (ai->ai_family == AF_INET6 && ai->ai_addr &&
                 ai->ai_addrlen >= (socklen_t)sizeof (struct sockaddr_in6) &&
                 inet_ntop (AF_INET6, &((const struct sockaddr_in6 *)ai->ai_addr)->sin6_addr,
                            text, sizeof text))
            w = lss_fmt (ep, sizeof ep, "tcp://[%s]:%d", text, nm->port);
        if (w == 0)
            lss_epset_add (all, ep); /* full: the cap below cuts anyway */
    }
    if (lss_epset_size (all) == 0) {
        lss_epset_destroy (&all);
        s_failed (self, nm, now, "no address");
        return;
    }
    lss_epset_t *kept = all;
    if (lss_epset_size (all) > LSS_DISCOVERY_PER_NAME_MAX) {
        lss_log_warn ("discovery: more addresses than kept", "{s:s, s:s, s:i, s:i}",
                      "endpoints", self->what, "host", nm->host, "addresses",
                      (int)lss_epset_size (all), "kept", LSS_DISCOVERY_PER_NAME_MAX);
        kept = lss_epset_new ();
        for (size_t i = 0; kept && i < LSS_DISCOVERY_PER_NAME_MAX; i++)
            lss_epset_add (kept, lss_epset_at (all, i));
        lss_epset_destroy (&all);
        if (!kept) {
            s_failed (self, nm, now, "out of memory");
            return;
        }
    }
    if (nm->failing)
        lss_log_info ("discovery: lookup succeeds again", "{s:s, s:s, s:i}", "endpoints",
                      self->what, "host", nm->host, "addresses", (int)lss_epset_size (kept));
    nm->failing = false;
    lss_epset_destroy (&nm->addrs);
    nm->addrs = kept;
    nm->next_ms = now + self->interval_ms;
    s_rebuild (self);
}

/*  Starts nm's lookup (the hook answers at once). */
static void s_start (lss_discovery_t *self, s_name_t *nm, int64_t now)
{
    if (s_hook_resolve) {
        struct addrinfo *res = NULL;
        if (s_hook_resolve (s_hook_arg, nm->host, &res) != 0)
            s_failed (self, nm, now, "lookup failed");
        else
            s_answered (self, nm, res, now);
        if (res && s_hook_release)
            s_hook_release (s_hook_arg, res);
        return;
    }
    if (atomic_load (&s_lookups_running) >= S_LOOKUPS_MAX) {
        s_failed (self, nm, now, "too many lookups running");
        return;
    }
    s_request_t *req = calloc (1, sizeof *req);
    if (!req) {
        s_failed (self, nm, now, "out of memory");
        return;
    }
    memcpy (req->host, nm->host, sizeof req->host);
    atomic_init (&req->refs, 2);
    atomic_init (&req->done, false);
    atomic_fetch_add (&s_lookups_running, 1);
    pthread_attr_t attr;
    pthread_t thread;
    sigset_t all, old;
    sigfillset (&all);
    pthread_attr_init (&attr);
    pthread_attr_setdetachstate (&attr, PTHREAD_CREATE_DETACHED);
    pthread_sigmask (SIG_BLOCK, &all, &old); /* signals stay with the service's threads */
    int rc = pthread_create (&thread, &attr, s_lookup, req);
    pthread_sigmask (SIG_SETMASK, &old, NULL);
    pthread_attr_destroy (&attr);
    if (rc != 0) {
        atomic_fetch_sub (&s_lookups_running, 1);
        free (req);
        s_failed (self, nm, now, "cannot start a lookup thread");
        return;
    }
    nm->req = req;
    nm->started_ms = now;
}

/*  Collects nm's lookup if it has ended (or has run too long). */
static void s_collect (lss_discovery_t *self, s_name_t *nm, int64_t now)
{
    s_request_t *req = nm->req;
    if (!atomic_load (&req->done)) {
        if (now - nm->started_ms < LSS_DISCOVERY_LOOKUP_MS)
            return;
        nm->req = NULL; /* give up on it: the thread frees it when getaddrinfo returns */
        s_request_unref (req);
        s_failed (self, nm, now, "lookup timed out");
        return;
    }
    nm->req = NULL;
    if (req->rc == 0)
        s_answered (self, nm, req->res, now);
    else
        s_failed (self, nm, now, gai_strerror (req->rc));
    s_request_unref (req);
}

static int s_take_changed (lss_discovery_t *self)
{
    int changed = self->changed ? 1 : 0;
    self->changed = false;
    return changed;
}

int lss_discovery_poll (lss_discovery_t *self, int64_t now_mono_ms)
{
    if (!self)
        return 0;
    for (size_t i = 0; i < self->nnames; i++) {
        s_name_t *nm = &self->names[i];
        if (nm->req)
            s_collect (self, nm, now_mono_ms);
        else if (now_mono_ms >= nm->next_ms)
            s_start (self, nm, now_mono_ms);
    }
    return s_take_changed (self);
}

int lss_discovery_resolve_now (lss_discovery_t *self, int timeout_ms)
{
    if (!self)
        return 0;
    int64_t now = lss_time_mono_ms ();
    int64_t deadline = now + (timeout_ms > 0 ? timeout_ms : 0);
    for (size_t i = 0; i < self->nnames; i++)
        if (!self->names[i].req)
            s_start (self, &self->names[i], now);
    for (;;) {
        int pending = 0;
        now = lss_time_mono_ms ();
        for (size_t i = 0; i < self->nnames; i++)
            if (self->names[i].req) {
                s_collect (self, &self->names[i], now);
                pending += self->names[i].req != NULL;
            }
        if (pending == 0 || now >= deadline)
            break;
        zclock_sleep (5); /* this call may block by contract; lookups run in their threads */
    }
    return s_take_changed (self);
}

const lss_epset_t *lss_discovery_set (const lss_discovery_t *self)
{
    return self ? self->set : NULL;
}

uint64_t lss_discovery_lookups (const lss_discovery_t *self)
{
    return self ? self->lookups : 0;
}

uint64_t lss_discovery_failures (const lss_discovery_t *self)
{
    return self ? self->failures : 0;
}

//  --------------------------------------------------------------------------
//  One socket towards every endpoint of a set

int lss_discovery_connect (zsock_t *sock, const char *endpoint)
{
    const char *e = endpoint[0] == '>' || endpoint[0] == '@' ? endpoint + 1 : endpoint;
    if (strncmp (e, "tcp://[", 7) == 0)
        zsock_set_ipv6 (sock, 1);
    if (zsock_attach (sock, endpoint, false) != 0) {
        lss_log_error ("discovery: cannot connect", "{s:s, s:s}", "endpoint", endpoint, "error",
                       zmq_strerror (zmq_errno ()));
        return -1;
    }
    return 0;
}

int lss_discovery_sync (zsock_t *sock, const lss_epset_t *want, lss_epset_t **connected)
{
    lss_epset_t *added = NULL, *removed = NULL, *now = lss_epset_dup (want);
    if (!now || lss_epset_diff (*connected, want, &added, &removed)) {
        lss_epset_destroy (&now);
        return -1;
    }
    int changes = 0;
    for (size_t i = 0; i < lss_epset_size (removed); i++) {
        const char *ep = lss_epset_at (removed, i);
        const char *e = ep[0] == '>' ? ep + 1 : ep;
        if (zsock_disconnect (sock, "%s", e) != 0)
            lss_log_warn ("discovery: cannot disconnect", "{s:s, s:s}", "endpoint", ep, "error",
                          zmq_strerror (zmq_errno ()));
        changes++;
    }
    for (size_t i = 0; i < lss_epset_size (added); i++) {
        const char *ep = lss_epset_at (added, i);
        if (lss_discovery_connect (sock, ep) != 0) {
            lss_epset_remove (now, ep); /* not connected: the next sync tries again */
            continue;
        }
        changes++;
    }
    lss_epset_destroy (&added);
    lss_epset_destroy (&removed);
    lss_epset_destroy (connected);
    *connected = now;
    return changes;
}
