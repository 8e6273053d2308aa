/*  sandbox_preflight — what isolation this host really allows, measured once at start.
 *
 *  Every check is an attempt, not a guess from version numbers: user namespaces are
 *  created (in a child, after dropping to the unprivileged uid sandboxes will use),
 *  the real seccomp filters are loaded (in a child) and exercised, cgroup controllers
 *  are probed by creating a child cgroup and writing a limit, and bwrap runs once with
 *  the namespace flags the runtime uses. The result is a report (JSON) and one human
 *  line saying what is and is not in force; lss_sandbox_preflight_check_level decides
 *  whether a sandbox of a given security level may start:
 *    high      needs bwrap, user namespaces, seccomp, and memory + pids cgroups;
 *    standard  needs bwrap, user namespaces and seccomp; missing cgroup controllers
 *              are warnings (reported per sandbox), rlimits are applied regardless.
 */
#ifndef SANDBOX_PREFLIGHT_H
#define SANDBOX_PREFLIGHT_H

#include <jansson.h>
#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "sandbox_cgroup.h"
#include "sandbox_spec.h"

#define LSS_SANDBOX_DEFAULT_BWRAP     "/usr/bin/bwrap"
#define LSS_SANDBOX_DEFAULT_UID_BASE  200000u
#define LSS_SANDBOX_DEFAULT_UID_COUNT 1024u

typedef struct {
    const char *bwrap_path;    /* NULL = LSS_SANDBOX_DEFAULT_BWRAP */
    const char *cgroup_parent; /* NULL = "<own cgroup>/lss" (see sandbox_cgroup.h) */
    uint32_t probe_uid;        /* uid the checks drop to when root; 0 = the uid base */
} lss_sandbox_preflight_opts_t;

typedef struct {
    char bwrap_path[PATH_MAX];
    bool bwrap_found;       /* executable file */
    bool bwrap_setuid;      /* setuid bwrap: works, but we run it unprivileged */
    char bwrap_version[64]; /* "0.8.0" or "" */
    bool bwrap_works;       /* ran a sandbox with our namespace flags */
    char bwrap_error[256];
    bool is_root; /* euid 0: per-sandbox host uids and host tmpfs */
    uid_t probe_uid;
    bool userns; /* unshare(CLONE_NEWUSER) works as probe_uid */
    char userns_error[128];
    int64_t max_user_namespaces; /* -1 if unknown */
    bool seccomp;                /* both filters load and deny what they should */
    char seccomp_error[128];
    int self_seccomp_mode; /* 0 none, 2 filter: we already run under one */
    bool self_no_new_privs;
    lss_sandbox_cg_host_t cgroup;
    int64_t took_ms;
} lss_sandbox_preflight_t;

/*  Runs every check (tens of milliseconds; call once). opts may be NULL. Returns NULL
 *  only on allocation failure. */
lss_sandbox_preflight_t *lss_sandbox_preflight_new (const lss_sandbox_preflight_opts_t *opts);
void lss_sandbox_preflight_destroy (lss_sandbox_preflight_t **self_p);

/*  The report (caller owns): {"bwrap": {...}, "root": bool, "userns": {...}, "seccomp":
 *  {...}, "cgroup": {...}, "rlimits": {...}, "levels": {"standard": {"allowed", "missing",
 *  "warnings"}, "high": {...}}, "summary": "..."}. NULL on allocation failure. */
json_t *lss_sandbox_preflight_report (const lss_sandbox_preflight_t *self);
/*  One line: what is and is not in force, e.g. "bwrap 0.8.0 ok; userns yes; seccomp yes;
 *  cgroup v1 memory=yes pids=yes cpu=yes; high=allowed". Written into out. */
void lss_sandbox_preflight_summary (const lss_sandbox_preflight_t *self, char *out,
                                    size_t size);
/*  Logs the summary (info, or warn when something is missing) with the report. */
void lss_sandbox_preflight_log (const lss_sandbox_preflight_t *self);

/*  0 if a sandbox of this level may start on this host, else -1 with the missing
 *  pieces in err. For standard, warnings (limits not enforced) go into warn (may be
 *  NULL) and do not fail. */
int lss_sandbox_preflight_check_level (const lss_sandbox_preflight_t *self,
                                       lss_sandbox_level_t level, char *err, size_t err_size,
                                       char *warn, size_t warn_size);

#endif
