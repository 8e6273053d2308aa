/*  sandbox_seccomp — the sandbox's seccomp filters (libseccomp), one per security level.
 *
 *  Default allow; a deny list answered with EPERM (not kill: the program sees an error
 *  it can report, tests can assert it) — except clone3, answered with ENOSYS at `high`
 *  so that libc falls back to clone, whose flags can be inspected. Only the native
 *  architecture is in the filter and its bad-arch action is KILL_PROCESS, so 32-bit
 *  (int 0x80) and x32 system calls kill the process. The list, and why `standard`
 *  leaves namespace creation to the kernel, is in docs/sandbox.md.
 *
 *  The runtime builds the BPF once per level (lss_sandbox_seccomp_export) and, per
 *  sandbox, copies it into a memfd that bwrap reads with --seccomp FD; bwrap loads it
 *  last, after NO_NEW_PRIVS, just before exec'ing the init.
 */
#ifndef SANDBOX_SECCOMP_H
#define SANDBOX_SECCOMP_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "sandbox_spec.h"

#define LSS_SANDBOX_BPF_MAX (64u * 1024) /* a filter larger than this is a bug */

/*  Builds the level's filter as raw BPF (struct sock_filter array). *bpf is the
 *  caller's (free). Returns 0, or -1 if libseccomp failed. */
int lss_sandbox_seccomp_export (lss_sandbox_level_t level, uint8_t **bpf, size_t *len);

/*  A new memfd (close-on-exec, sealed against writes, offset 0) holding len bytes of bpf,
 *  for bwrap --seccomp. Returns the fd (caller closes) or -1. */
int lss_sandbox_seccomp_memfd (const uint8_t *bpf, size_t len);

/*  Loads the level's filter into the calling process (sets NO_NEW_PRIVS). For tests and
 *  preflight, in a child. Returns 0 or -1. */
int lss_sandbox_seccomp_load (lss_sandbox_level_t level);

/*  The level's rules as JSON ({"default": "allow", "badArch": "kill", "deny": [...]});
 *  caller owns. NULL on allocation failure. */
json_t *lss_sandbox_seccomp_describe (lss_sandbox_level_t level);

#endif
