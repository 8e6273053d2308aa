/*  sandbox_runtime — runs local sandboxes as detached bubblewrap process trees.
 *
 *  start() turns a spec into: a state directory state_dir/<id>/ (generated /etc,
 *  workspace, run dir, status.json, init.log, state.json), a cgroup, a seccomp filter
 *  and one bwrap invocation, launched through a double fork + setsid so that bwrap is
 *  never our child: the sandbox outlives the runtime (and lss-node restarts). bwrap's
 *  outer process stays as the sandbox's parent ("monitor") and writes the init's exit
 *  code to status.json (--json-status-fd), which is how a restarted runtime learns how a
 *  sandbox ended. state.json records the monitor's and the init's pid and start time
 *  (/proc/<pid>/stat field 22), so adoption can tell a live sandbox from a reused pid.
 *
 *  Between the forks the intermediate child, still root, joins the cgroup, applies the
 *  rlimits, sets NO_NEW_PRIVS, resets signals, drops to the sandbox's host uid/gid
 *  (root only: uid base + slot, one slot per sandbox, so two sandboxes are two host
 *  users) and execs bwrap — everything below inherits all of it before untrusted code
 *  runs. Only async-signal-safe calls happen after fork (argv and paths are built
 *  before), so the runtime may live in a multi-threaded process.
 *
 *  Lifecycle: Running → Exited (by itself: exit code, signal, OOMKilled, LimitExceeded;
 *  or Stopped by stop()) → removed by stop(). An exited sandbox keeps its files until
 *  stop(), so its log and workspace can be collected. Deaths are noticed through pidfds
 *  in one epoll set (lss_sandbox_runtime_fd for an outer poll loop, then
 *  lss_sandbox_runtime_poll). Not thread-safe: one thread drives a runtime, and one
 *  runtime owns a state directory (an exclusive flock enforces it).
 */
#ifndef SANDBOX_RUNTIME_H
#define SANDBOX_RUNTIME_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "sandbox_cgroup.h"
#include "sandbox_preflight.h"
#include "sandbox_spec.h"

#define LSS_SANDBOX_RUNTIME_MAX      1024 /* sandboxes per runtime */
#define LSS_SANDBOX_STOP_TIMEOUT_MS  5000
#define LSS_SANDBOX_START_TIMEOUT_MS 5000 /* bwrap must report its child by then */

typedef enum {
    LSS_SANDBOX_RUNNING = 0,
    LSS_SANDBOX_EXITED = 1,
} lss_sandbox_phase_t;

/*  A sandbox as the runtime sees it (a copy; no pointers into the runtime). */
typedef struct {
    char id[LSS_SANDBOX_ID_MAX + 1];
    lss_sandbox_phase_t phase;
    lss_sandbox_level_t level;
    pid_t pid;         /* host pid of the init (PID 1 inside) */
    pid_t monitor_pid; /* host pid of bwrap's outer process */
    uid_t host_uid;
    gid_t host_gid;
    int64_t started_ms;  /* epoch ms */
    int64_t finished_ms; /* epoch ms, 0 while running */
    int exit_code;       /* init's exit code (128+N when killed by signal N); -1 unknown */
    int signal;          /* N when the init died of a signal, else 0 */
    char reason[24];     /* Running | Completed | Error | Signaled | OOMKilled |
                            LimitExceeded | Stopped | StartError | Lost */
    char message[256];   /* human detail (bwrap's error, ...) */
    int64_t oom_kills;
    bool memory_enforced; /* cgroup limits in force for this sandbox */
    bool pids_enforced;
    bool cpu_enforced;
    char workspace[16]; /* "host-tmpfs" | "sandbox-tmpfs" */
    char warnings[256]; /* limits asked for but not enforced */
} lss_sandbox_status_t;

typedef struct _lss_sandbox_runtime_t lss_sandbox_runtime_t;

/*  Creates a runtime on state_dir (created if missing, must be ours; its mode becomes
 *  0711 so sandbox uids can traverse to their own directories). bwrap_path NULL = the
 *  preflight's. Takes ownership of *preflight_p (NULLs it); NULL there runs a preflight
 *  now. Builds the seccomp programs and the host root layout once. Returns NULL (and
 *  logs why) if the directory is unusable or already owned by another runtime. */
lss_sandbox_runtime_t *lss_sandbox_runtime_new (const char *state_dir, const char *bwrap_path,
                                                lss_sandbox_preflight_t **preflight_p);
/*  Forgets every sandbox without touching it: they keep running (detached), and a new
 *  runtime on the same state dir adopts them. NULLs *self_p. */
void lss_sandbox_runtime_destroy (lss_sandbox_runtime_t **self_p);

/*  Host uid range for sandboxes when root (default 200000 + 0..1023). Only before the
 *  first start/adopt. Returns 0 or -1. */
int lss_sandbox_runtime_set_uid_range (lss_sandbox_runtime_t *self, uint32_t base,
                                       uint32_t count);
/*  The preflight the runtime decides with (borrowed). */
const lss_sandbox_preflight_t *
lss_sandbox_runtime_preflight (const lss_sandbox_runtime_t *self);

/*  Re-attaches every sandbox found in the state dir that this runtime does not know:
 *  live ones become Running (pid + start time verified), dead ones Exited with the
 *  reason read back from status.json / the cgroup. Returns how many were adopted, or -1. */
int lss_sandbox_runtime_adopt (lss_sandbox_runtime_t *self);

/*  Starts a sandbox. Validates spec (borrowed), checks the level against the preflight,
 *  prepares files/cgroup, launches bwrap, and returns once bwrap has created the
 *  sandbox's namespaces and reported its init pid (mounts and exec follow; a failure
 *  there shows up as an early StartError death). Fills *out (may be NULL).
 *  Returns 0, or -1 with the reason in err (nothing is left behind). */
int lss_sandbox_runtime_start (lss_sandbox_runtime_t *self, const lss_sandbox_spec_t *spec,
                               lss_sandbox_status_t *out, char *err, size_t err_size);

/*  Kills everything in the sandbox (cgroup, else its pid namespace), waits at most
 *  timeout_ms (<= 0: the default), then removes its cgroup, workspace, run dir and
 *  state files and frees its slot. The final status goes to *final (may be NULL).
 *  Returns 0; -1 if the id is unknown or processes survived (then it stays listed and
 *  may be stopped again). */
int lss_sandbox_runtime_stop (lss_sandbox_runtime_t *self, const char *id, int timeout_ms,
                              lss_sandbox_status_t *final);

/*  Copies the sandbox's status (refreshing it if it just ended). Returns 0, or -1 if
 *  the id is unknown. */
int lss_sandbox_runtime_get (lss_sandbox_runtime_t *self, const char *id,
                             lss_sandbox_status_t *out);
/*  Number of sandboxes (running or exited, not yet stopped). */
size_t lss_sandbox_runtime_count (const lss_sandbox_runtime_t *self);
/*  Every sandbox's status as a JSON array (caller owns), or NULL on allocation failure. */
json_t *lss_sandbox_runtime_list (lss_sandbox_runtime_t *self);
/*  Resource usage from the sandbox's cgroup (fields -1 when not measured). 0 or -1. */
int lss_sandbox_runtime_usage (lss_sandbox_runtime_t *self, const char *id,
                               lss_sandbox_cg_usage_t *out);
/*  Path of a file in the sandbox's state dir (e.g. "init.log": the init's stdout and
 *  stderr, capped by the storage rlimit). Returns 0 or -1. */
int lss_sandbox_runtime_path (const lss_sandbox_runtime_t *self, const char *id,
                              const char *name, char *out, size_t size);

/*  An fd that becomes readable when some sandbox may have ended (for zpoller/epoll);
 *  then call lss_sandbox_runtime_poll (self, 0, ...). Borrowed. */
int lss_sandbox_runtime_fd (const lss_sandbox_runtime_t *self);
/*  Waits at most timeout_ms (0: just check) for a sandbox to end; each ending is
 *  reported once (stop() results are not reported here). Returns 1 with *ended filled,
 *  0 if none, -1 on error. */
int lss_sandbox_runtime_poll (lss_sandbox_runtime_t *self, int timeout_ms,
                              lss_sandbox_status_t *ended);
/*  Waits at most timeout_ms for one sandbox to end. Returns 0 with *out filled once it
 *  has ended, -1 on timeout or unknown id. */
int lss_sandbox_runtime_wait (lss_sandbox_runtime_t *self, const char *id, int timeout_ms,
                              lss_sandbox_status_t *out);

/*  Status as JSON (caller owns). */
json_t *lss_sandbox_status_to_json (const lss_sandbox_status_t *status);
const char *lss_sandbox_phase_name (lss_sandbox_phase_t phase);

#endif
