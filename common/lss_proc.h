/*  lss_proc — starting child processes the way a supervisor needs them.
 *
 *  lss_proc_spawn forks and execs one program with a given environment, stdio, working
 *  directory, optional new session, optional drop to another uid/gid (root only) and an
 *  optional parent-death signal, and reports an exec failure synchronously (through a
 *  close-on-exec pipe) instead of as a mysterious exit 127. Between fork and exec the
 *  child makes only async-signal-safe calls, so it may be used from a threaded process:
 *  it resets the signal mask and every ignored signal to the default (a supervisor that
 *  blocks SIGINT/SIGCHLD for a signalfd must not hand that on), marks every descriptor
 *  above 2 close-on-exec, and for a parent-death signal re-checks that the parent is
 *  still the one that forked it (the race prctl leaves open).
 *  lss_proc_run is the synchronous form for short helpers (`python3 -c ...`, initdb):
 *  stdout captured into a bounded buffer, a deadline after which the child (and its
 *  process group when it got a session) is killed.
 *  lss_proc_describe turns a wait status into words for logs.
 */
#ifndef LSS_PROC_H
#define LSS_PROC_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#define LSS_PROC_DESCRIBE_SIZE 64 /* enough for any lss_proc_describe text */

typedef struct {
    const char *const *argv; /* argv[0] is an absolute path (no PATH search) */
    const char *const *envp; /* NULL = the parent's environment */
    int stdin_fd;            /* -1 = /dev/null */
    int stdout_fd;           /* -1 = /dev/null */
    int stderr_fd;           /* -1 = /dev/null; may equal stdout_fd */
    const char *cwd;         /* NULL = the parent's */
    bool new_session;        /* setsid: own session and process group, no terminal */
    bool set_ids;            /* drop to uid/gid (supplementary groups cleared) */
    uid_t uid;
    gid_t gid;
    int death_signal; /* 0 = none; else sent to the child when its parent dies */
} lss_proc_opts_t;

/*  Starts opts->argv (opts and everything it points to are borrowed, and only read
 *  before this returns). The descriptors named in opts are duplicated onto 0/1/2 in the
 *  child; the caller keeps and closes its own. Returns 0 with the child's pid in *pid,
 *  or -1 with a message in err (e.g. "exec /x: No such file or directory"; the child is
 *  then already reaped). */
int lss_proc_spawn (const lss_proc_opts_t *opts, pid_t *pid, char *err, size_t err_size);

/*  Runs opts->argv to completion, at most timeout_ms. When out is not NULL the child's
 *  stdout goes to a pipe and its first out_size-1 bytes are kept in out (NUL-terminated;
 *  the rest is read and dropped), overriding opts->stdout_fd. On return the child has
 *  been reaped. Returns 0 with its wait status in *wstatus, or -1 with a message in err
 *  (spawn failed, or the deadline passed: the child was killed). */
int lss_proc_run (const lss_proc_opts_t *opts, int timeout_ms, char *out, size_t out_size,
                  int *wstatus, char *err, size_t err_size);

/*  "exited with code 3", "killed by signal 9 (SIGKILL)", ... for a wait status, into
 *  out (out_size >= LSS_PROC_DESCRIBE_SIZE always suffices). Returns out. */
char *lss_proc_describe (int wstatus, char *out, size_t out_size);

#endif
