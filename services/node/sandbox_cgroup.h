/*  sandbox_cgroup — one cgroup per sandbox: limits, membership, usage, OOM, kill, remove.
 *
 *  Works on cgroup v1 (a hierarchy per controller: memory, pids, cpu, cpuacct; hybrid
 *  hosts too) and v2 (one directory, controllers enabled through cgroup.subtree_control).
 *  Sandbox cgroups live under a parent, by default "<our own cgroup>/lss" in each
 *  hierarchy — nested under whatever contains the runtime, so the limits above us still
 *  apply and nothing outside our subtree is touched; a configured parent (a delegated
 *  subtree, e.g. "/lss.slice") replaces it. On v2 the parent must be allowed to have
 *  controllers enabled (no processes of its own: "no internal processes"); if it is not,
 *  the controller is reported unusable — never faked.
 *
 *  Detection probes each controller for real (create a child, write a limit, remove it),
 *  once. Killing uses cgroup.kill on v2; on v1 it signals every pid in cgroup.procs
 *  through a pidfd after re-checking the pid is still in this cgroup (no pid-reuse
 *  kills), until the cgroup is empty or the deadline passes.
 */
#ifndef SANDBOX_CGROUP_H
#define SANDBOX_CGROUP_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#define LSS_SANDBOX_CG_PATH_MAX 512

typedef enum {
    LSS_SANDBOX_CG_MEMORY = 0,
    LSS_SANDBOX_CG_PIDS,
    LSS_SANDBOX_CG_CPU,
    LSS_SANDBOX_CG_CPUACCT, /* v1 usage accounting only; part of "cpu" on v2 */
    LSS_SANDBOX_CG_COUNT
} lss_sandbox_cg_ctrl_t;

typedef struct {
    int version;                          /* 0 = absent, 1 or 2 */
    bool usable;                          /* probed: child created, limit written */
    char mount[LSS_SANDBOX_CG_PATH_MAX];  /* hierarchy mount point */
    char parent[LSS_SANDBOX_CG_PATH_MAX]; /* sandbox cgroups go under here */
    char reason[192];                     /* why not usable */
} lss_sandbox_cg_ctrl_info_t;

/*  What the host offers, detected once (lss_sandbox_cgroup_detect). */
typedef struct {
    lss_sandbox_cg_ctrl_info_t ctrl[LSS_SANDBOX_CG_COUNT];
    bool v1, v2;  /* hierarchies seen */
    bool v2_kill; /* cgroup.kill exists */
} lss_sandbox_cg_host_t;

typedef struct {
    int64_t memory_bytes;   /* 0 = none */
    int64_t pids_max;       /* 0 = none (the value written, monitor included) */
    int64_t cpu_millicores; /* 0 = none */
} lss_sandbox_cg_limits_t;

typedef struct {
    int64_t memory_bytes; /* -1 if unknown */
    int64_t memory_peak_bytes;
    int64_t cpu_usec;
    int64_t pids;
    int64_t pids_peak; /* pids.peak where the kernel has it */
    int64_t oom_kills;
} lss_sandbox_cg_usage_t;

typedef struct _lss_sandbox_cgroup_t lss_sandbox_cgroup_t;

/*  Detects hierarchies, our own cgroup in each, and probes usability of memory, pids,
 *  cpu (and cpuacct) under parent (NULL = "<own>/lss"; else a cgroup path such as
 *  "/lss.slice", relative to each hierarchy's root). Never fails: what is missing is
 *  recorded with a reason. */
void lss_sandbox_cgroup_detect (lss_sandbox_cg_host_t *host, const char *parent);
/*  Report ({"memory": {"version":1, "usable":true, "parent":..., "reason":...}, ...}). */
json_t *lss_sandbox_cgroup_host_json (const lss_sandbox_cg_host_t *host);
/*  Removes the (empty) parent directories the runtime created. Best effort. */
void lss_sandbox_cgroup_host_cleanup (const lss_sandbox_cg_host_t *host);
/*  Controller name ("memory", "pids", "cpu", "cpuacct"). */
const char *lss_sandbox_cgroup_ctrl_name (lss_sandbox_cg_ctrl_t ctrl);

/*  Creates the sandbox's cgroup in every usable controller and applies limits (0 =
 *  none; swap is turned off where the host allows). Returns NULL with err set if a
 *  usable controller could not be set up. A leftover cgroup of the same id is reused
 *  only if empty. */
lss_sandbox_cgroup_t *lss_sandbox_cgroup_new (const lss_sandbox_cg_host_t *host, const char *id,
                                              const lss_sandbox_cg_limits_t *limits, char *err,
                                              size_t err_size);
/*  Opens an existing sandbox cgroup (adoption): controllers whose directory is missing
 *  are left out. Returns NULL only on allocation failure. */
lss_sandbox_cgroup_t *lss_sandbox_cgroup_open (const lss_sandbox_cg_host_t *host,
                                               const char *id);
/*  Frees the handle; the cgroup itself stays (see remove). */
void lss_sandbox_cgroup_destroy (lss_sandbox_cgroup_t **self_p);

/*  True if the limit of that kind is enforced by this cgroup. */
bool lss_sandbox_cgroup_enforces (const lss_sandbox_cgroup_t *self, lss_sandbox_cg_ctrl_t ctrl);
/*  The files a single-threaded process writes "0" into to join (for a forked child:
 *  paths are computed beforehand, joining is open+write+close only): `tasks` on v1,
 *  cgroup.procs on v2. On v1 a write to cgroup.procs takes the global threadgroup lock
 *  for writing, which waits for an RCU grace period: 5-13 ms per sandbox start on this
 *  machine. Moving the writing thread itself through `tasks` skips that lock (Linux 6.0,
 *  "cgroup: Optimize single thread migration"; 0.1 ms) and, the process having one
 *  thread, moves all of it. Returns the count. */
size_t lss_sandbox_cgroup_join_files (const lss_sandbox_cgroup_t *self, const char **paths,
                                      size_t max);
/*  Moves pid (0 = the caller) into every hierarchy. Returns 0 or -1. */
int lss_sandbox_cgroup_attach (const lss_sandbox_cgroup_t *self, pid_t pid);
/*  Current usage; fields the host does not provide are -1. Returns 0 or -1. */
int lss_sandbox_cgroup_usage (const lss_sandbox_cgroup_t *self, lss_sandbox_cg_usage_t *out);
/*  OOM kills counted in this cgroup (0 if unknown). */
int64_t lss_sandbox_cgroup_oom_kills (const lss_sandbox_cgroup_t *self);
/*  Number of processes in the cgroup (max over hierarchies), -1 if unknown. */
int64_t lss_sandbox_cgroup_nprocs (const lss_sandbox_cgroup_t *self);
/*  SIGKILLs everything in the cgroup and waits until it is empty, at most timeout_ms.
 *  Returns 0 if empty, -1 on timeout. */
int lss_sandbox_cgroup_kill (const lss_sandbox_cgroup_t *self, int timeout_ms);
/*  Removes the cgroup directories (they must be empty; retried until timeout_ms).
 *  Returns 0 or -1. */
int lss_sandbox_cgroup_remove (lss_sandbox_cgroup_t *self, int timeout_ms);

#endif
