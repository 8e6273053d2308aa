/*  agent_exec — one execution inside the sandbox: spawn, pipes, deadline, kill, account.
 *
 *  Each execution is its own process group (posix_spawn with SETPGROUP), so deadline and
 *  cancel kill everything it started (kill(-pgid, SIGKILL)). stdout and stderr are
 *  separate non-blocking pipes; stdin is a pipe fed from a bounded buffer, or /dev/null.
 *  Code runs from a file in a private directory (every interpreter can read a file; node
 *  cannot run /dev/fd paths), removed when the execution ends. Background processes an
 *  execution leaves behind may outlive it (start a server, query it in the next exec);
 *  only deadline and cancel kill the group. The server owns the loop; this file owns
 *  the process and its descriptors.
 */
#ifndef AGENT_EXEC_H
#define AGENT_EXEC_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/resource.h>
#include <sys/types.h>

#include "agent_files.h"
#include "lss_proto.h"
#include "lss_util.h"

#define AGENT_MAX_INTERPRETERS 16
#define AGENT_STDIN_MAX        (4u << 20) /* stdin bytes buffered per execution */
#define AGENT_OWNER_MAX        256        /* ZeroMQ routing id */
#define AGENT_LATE_MAX         (4u << 20) /* output read past the drain grace at most */

typedef struct {
    char lang[32];
    char path[256];
    char ext[8];
} agent_interp_t;

typedef struct {
    agent_interp_t interp[AGENT_MAX_INTERPRETERS];
    size_t interp_count;
    int64_t default_timeout_ms;
    int64_t max_timeout_ms;
    int64_t default_max_output; /* bytes kept per stream when the request says 0 */
    int64_t max_output_cap;     /* largest max_output a request may ask for */
    char code_dir[256];         /* where code files go (0700) */
    char default_cwd[256];
} agent_exec_conf_t;

enum { AGENT_STDIN = 0, AGENT_STDOUT = 1, AGENT_STDERR = 2 };

typedef struct {
    char id[LSS_PROTO_ID_MAX + 1];
    uint8_t owner[AGENT_OWNER_MAX];
    size_t owner_len;
    pid_t pid;
    int fd[3]; /* our ends; -1 when closed */
    int64_t start_ms, deadline_ms, drain_until_ms, end_ms;
    int64_t late_left; /* bytes still read past the drain grace (what the pipes held) */
    bool exited;
    int status;
    struct rusage ru;
    int64_t max_output;
    int64_t kept[3], total[3];
    bool truncated[3];
    bool flow; /* credit-based flow control on */
    int64_t credit;
    int64_t seq;
    lss_buf_t in; /* stdin not yet written */
    bool in_eof;
    bool timed_out, cancelled;
    int64_t hold_ns[3]; /* stream not read before this monotonic time (coalescing), 0 = none */
    lss_buf_t pending;  /* an output chunk the socket refused (peer HWM) */
    int pending_stream;
    char code_path[300];
} agent_exec_t;

/*  Adds "lang=path" to conf (ext from a built-in table, e.g. python → .py). 0 or -1. */
int agent_exec_conf_add_interp (agent_exec_conf_t *conf, const char *spec);
/*  Defaults: python, node, bash, sh interpreters at their Debian paths; 300 s timeout
 *  (max 3600 s); 16 MiB output kept per stream (cap 1 GiB); code dir /tmp/.lss-exec. */
void agent_exec_conf_default (agent_exec_conf_t *conf);

/*  Validates req and starts it. On success returns 0 (e->pid > 0). On a request the
 *  agent refuses, returns -1 with err (invalid_request). If the program cannot be
 *  started (not found, bad cwd), returns -2 with err: the caller ends the execution with
 *  an error rather than an error reply. e must be zeroed with owner/id set. */
int agent_exec_start (agent_exec_t *e, const lss_exec_start_t *req,
                      const agent_exec_conf_t *conf, int64_t now_ms, agent_err_t *err);
/*  Appends stdin (and eof). Returns 0, or -1 if the buffer would pass AGENT_STDIN_MAX. */
int agent_exec_stdin (agent_exec_t *e, const uint8_t *data, size_t len, bool eof);
/*  Writes buffered stdin without blocking; closes the pipe at eof or EPIPE. */
void agent_exec_flush_stdin (agent_exec_t *e);
/*  Adds flow-control credit (capped at 2^40). Output stalled for credit after the leader
 *  exited gets a fresh drain grace, so what waits in the pipe is still delivered. */
void agent_exec_grant (agent_exec_t *e, int64_t bytes, int64_t now_ms);
/*  SIGKILLs the execution's process group (cancel / deadline). */
void agent_exec_kill (agent_exec_t *e);
/*  Records the leader's exit (status, rusage) and starts the output drain grace. */
void agent_exec_exited (agent_exec_t *e, int status, const struct rusage *ru, int64_t now_ms);
/*  True when the leader has exited and both output pipes are closed, or the drain grace
 *  ended and the pipes hold nothing more (at most AGENT_LATE_MAX bytes are still read
 *  past the grace, so a background process writing forever cannot keep it open). Output
 *  the program wrote before it exited is never left unread in a pipe. */
bool agent_exec_finished (const agent_exec_t *e, int64_t now_ms);
/*  Accounts n bytes read from an output pipe at now_ms (past the grace: of late_left). */
void agent_exec_read (agent_exec_t *e, size_t n, int64_t now_ms);
/*  Fills the end message (borrows e->id). */
void agent_exec_end_msg (const agent_exec_t *e, lss_exec_end_t *end, int64_t now_ms);
/*  Closes descriptors, removes the code file, frees buffers. */
void agent_exec_release (agent_exec_t *e);

#endif
