/*  lss_discovery — endpoint lists that reach every replica of a Kubernetes headless Service.
 *
 *  A connect-side endpoint list (CZMQ syntax, comma-separated) may hold entries of the
 *  scheme `dns+tcp://HOST:PORT` (optionally prefixed '>'). Such an entry is expanded by
 *  resolving HOST (getaddrinfo, AF_UNSPEC, SOCK_STREAM) to every address it has, giving
 *  `tcp://A:PORT` (IPv6 as `tcp://[A]:PORT`), sorted, de-duplicated and capped at
 *  LSS_DISCOVERY_PER_NAME_MAX per name (logged when cut). Other entries (tcp://, ipc://,
 *  inproc://) pass through unchanged (a leading '>' is dropped), so a list without any
 *  `dns+` entry behaves exactly as before and costs nothing: consumers test
 *  lss_discovery_is_dynamic () and keep their old path when it is false.
 *
 *  Resolution is repeated every interval_ms (bus.resolve_interval) without blocking the
 *  caller's loop: lss_discovery_poll () starts an asynchronous lookup (getaddrinfo in a
 *  short-lived thread) when one is due and picks up its answer on a later call. A name that
 *  fails to resolve (NXDOMAIN, no replica ready yet, resolver down) is logged and keeps
 *  its previous addresses; it is tried again after LSS_DISCOVERY_RETRY_MS (or the
 *  interval, if shorter).
 *
 *  Tests replace the system resolver with lss_discovery_set_resolver () (a function
 *  pointer, set in code only: nothing in the environment can redirect discovery).
 *
 *  lss_epset_t is a small sorted set of concrete endpoints; lss_epset_diff () tells a
 *  consumer which endpoints to connect and which to disconnect.
 */
#ifndef LSS_DISCOVERY_H
#define LSS_DISCOVERY_H

#include <czmq.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct addrinfo;

#define LSS_DISCOVERY_PER_NAME_MAX 64   /* addresses kept per dns+ name */
#define LSS_DISCOVERY_NAMES_MAX    16   /* dns+ entries in one list */
#define LSS_EPSET_MAX              256  /* concrete endpoints in one set */
#define LSS_EPSET_ENDPOINT_MAX     255  /* bytes of one concrete endpoint */
#define LSS_DISCOVERY_HOST_MAX     253  /* bytes of a DNS name */
#define LSS_DISCOVERY_RETRY_MS     1000 /* after a failed lookup */
#define LSS_DISCOVERY_LOOKUP_MS    5000 /* a lookup unanswered this long counts as failed */

//  --------------------------------------------------------------------------
//  Endpoint sets

typedef struct _lss_epset_t lss_epset_t;

lss_epset_t *lss_epset_new (void);
void lss_epset_destroy (lss_epset_t **self_p);
/*  A copy (NULL on allocation failure). */
lss_epset_t *lss_epset_dup (const lss_epset_t *self);
/*  Adds a copy of endpoint. Returns 0 if added, 1 if already present, -1 if the set is full
 *  (LSS_EPSET_MAX), endpoint is empty or longer than LSS_EPSET_ENDPOINT_MAX, or memory ran
 *  out. */
int lss_epset_add (lss_epset_t *self, const char *endpoint);
/*  Removes endpoint. Returns 0, -1 if it was not there. */
int lss_epset_remove (lss_epset_t *self, const char *endpoint);
size_t lss_epset_size (const lss_epset_t *self);
/*  The i-th endpoint in sorted order (borrowed), NULL past the end. */
const char *lss_epset_at (const lss_epset_t *self, size_t i);
bool lss_epset_contains (const lss_epset_t *self, const char *endpoint);
bool lss_epset_equal (const lss_epset_t *a, const lss_epset_t *b);
/*  Writes the set as a comma-separated list into out. Returns 0, -1 if it does not fit. */
int lss_epset_join (const lss_epset_t *self, char *out, size_t size);
/*  What changes from old to new: *added gets the endpoints of new not in old, *removed those
 *  of old not in new (both fresh sets the caller destroys; old may be NULL = empty).
 *  Returns 0, -1 on allocation failure (nothing returned). */
int lss_epset_diff (const lss_epset_t *old_set, const lss_epset_t *new_set, lss_epset_t **added,
                    lss_epset_t **removed);

//  --------------------------------------------------------------------------
//  Parsing

/*  True if list holds at least one dns+ entry (a cheap scan; no validation). */
bool lss_discovery_is_dynamic (const char *list);

/*  Parses one `dns+tcp://HOST:PORT` entry (without a '>' prefix): HOST is a DNS name
 *  (labels of letters, digits and '-', 1..63 bytes each, not starting or ending with '-',
 *  at most 253 bytes, an optional trailing dot), an IPv4 address or a bracketed IPv6
 *  address; PORT is 1..65535 in decimal. Fills host (the name, brackets removed) and
 *  *port. Returns 0, or -1 with a message in err. */
int lss_discovery_parse (const char *entry, char host[LSS_DISCOVERY_HOST_MAX + 1], int *port,
                         char *err, size_t err_size);

//  --------------------------------------------------------------------------
//  Discovery

/*  The resolver hook (tests only): answer host with a list of addresses the caller frees
 *  with release (both called on the thread calling lss_discovery_poll / _resolve_now).
 *  Return 0 with *res set (it may be NULL: no address), or non-zero for a failed lookup. */
typedef int (lss_discovery_resolve_fn) (void *arg, const char *host, struct addrinfo **res);
typedef void (lss_discovery_release_fn) (void *arg, struct addrinfo *res);
/*  Installs (resolve non-NULL) or removes (NULL) the hook for every discovery of the
 *  process. While installed, lookups happen synchronously inside poll / resolve_now. */
void lss_discovery_set_resolver (lss_discovery_resolve_fn *resolve,
                                 lss_discovery_release_fn *release, void *arg);

typedef struct _lss_discovery_t lss_discovery_t;

/*  Parses list (borrowed) and returns a discovery whose set holds the static entries so
 *  far; no lookup is made yet (call lss_discovery_resolve_now or _poll). interval_ms is
 *  clamped to 500..600000. what names the list in logs (e.g. "api.executor_endpoint").
 *  Returns NULL with a message in err for a bad entry ('@' on a dns+ entry, bad host or
 *  port, more than LSS_DISCOVERY_NAMES_MAX dns+ entries, an empty or too long entry). */
lss_discovery_t *lss_discovery_new (const char *list, int64_t interval_ms, const char *what,
                                    char *err, size_t err_size);
/*  Checks list as lss_discovery_new would, without keeping anything (start-up config
 *  checks). Returns 0, or -1 with a message in err. */
int lss_discovery_validate (const char *list, const char *what, char *err, size_t err_size);
/*  Destroys without waiting; a lookup still running frees itself when it returns. */
void lss_discovery_destroy (lss_discovery_t **self_p);

/*  Never blocks. Starts a lookup when one is due, collects it when answered. Returns 1 if
 *  the set changed since the previous poll / resolve_now, else 0. */
int lss_discovery_poll (lss_discovery_t *self, int64_t now_mono_ms);
/*  Resolves every name now, waiting at most timeout_ms (start-up, or threads allowed to
 *  block). Names not answered in time keep their previous addresses. Returns 1 if the set
 *  changed, 0 if not. */
int lss_discovery_resolve_now (lss_discovery_t *self, int timeout_ms);
/*  The current concrete set (borrowed; changes only inside poll / resolve_now). */
const lss_epset_t *lss_discovery_set (const lss_discovery_t *self);
/*  Lookups completed and failed so far (metrics, tests). */
uint64_t lss_discovery_lookups (const lss_discovery_t *self);
uint64_t lss_discovery_failures (const lss_discovery_t *self);

//  --------------------------------------------------------------------------
//  One socket towards every endpoint of a set

/*  Connects sock to one concrete endpoint (CZMQ attach syntax: '>' or none connects, '@'
 *  binds), turning ZMQ_IPV6 on first for a tcp://[v6] address. Returns 0 or -1 (logged). */
int lss_discovery_connect (zsock_t *sock, const char *endpoint);

/*  Makes sock connected to exactly want: connects what *connected lacks, disconnects what
 *  want no longer has, then replaces *connected by a copy of want (*connected may be NULL
 *  at first = nothing connected yet). An endpoint that fails to connect is left out of
 *  *connected so the next sync tries it again. Returns the number of changes made, -1 on
 *  allocation failure (nothing changed). */
int lss_discovery_sync (zsock_t *sock, const lss_epset_t *want, lss_epset_t **connected);

#endif
