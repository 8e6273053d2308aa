/*  sandbox_fs — small bounded file helpers shared by the sandbox runtime files.
 *
 *  Reads are capped (cgroup, /proc and state files are small; anything larger is an
 *  error, not a reason to grow). Writes to state files are atomic (temp + rename).
 *  Recursive removal never follows symlinks and is bounded in depth, because the trees
 *  it removes (a sandbox's workspace and run dir) were written by untrusted code.
 */
#ifndef SANDBOX_FS_H
#define SANDBOX_FS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define LSS_SANDBOX_FS_RMTREE_DEPTH 64

/*  Reads at most size-1 bytes of path into buf and NUL-terminates it. Returns the number
 *  of bytes read, or -1 (errno set; EFBIG if the file did not fit). */
ssize_t lss_sandbox_fs_read (const char *path, char *buf, size_t size);
/*  Writes text to an existing file (cgroup knobs, /proc files): one write, no O_CREAT.
 *  Returns 0 or -1 (errno set). */
int lss_sandbox_fs_write (const char *path, const char *text);
/*  Creates or replaces path with len bytes, mode, atomically. Returns 0 or -1. */
int lss_sandbox_fs_write_atomic (const char *path, const void *data, size_t len, mode_t mode);
/*  Reads a file holding one decimal integer (or "max" → INT64_MAX). Returns 0 or -1. */
int lss_sandbox_fs_read_int64 (const char *path, int64_t *out);
/*  Finds "key N" in a "key value" per line file (memory.events, cpu.stat). Returns 0 or
 *  -1 if the file or the key is missing. */
int lss_sandbox_fs_read_keyed (const char *path, const char *key, int64_t *out);
/*  Removes path and everything below it without following symlinks or crossing into
 *  other mounts' contents (a mount point makes it fail with EBUSY). A missing path is
 *  success. Returns 0 or -1. */
int lss_sandbox_fs_rmtree (const char *path);
/*  Process start time (field 22 of /proc/<pid>/stat, clock ticks since boot) and parent
 *  pid. Returns 0, or -1 if the process does not exist. */
int lss_sandbox_proc_stat (pid_t pid, uint64_t *start_ticks, pid_t *ppid);

#endif
