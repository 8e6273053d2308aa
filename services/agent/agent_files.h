/*  agent_files — the sandbox's file service: list, stat, read, write, delete, mkdir,
 *  every path confined to the writable roots.
 *
 *  Roots map a path as the client sees it to a directory the agent opens once
 *  ("/workspace" → /workspace inside a sandbox; a temp dir in tests). Relative paths are
 *  under the first root. Confinement is the kernel's: every open goes through
 *  openat2(RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS) from the root's directory fd, so
 *  ".." and symlinks (absolute or relative) that would leave the root fail with
 *  forbidden_path, with no check-then-use race. ".." components are refused up front too,
 *  so the client gets a clear message.
 */
#ifndef AGENT_FILES_H
#define AGENT_FILES_H

#include <stdbool.h>
#include <stddef.h>

#include "lss_proto.h"

#define AGENT_FILES_MAX_ROOTS   8
#define AGENT_FILES_MAX_ENTRIES 10000      /* per listing */
#define AGENT_FILES_CHUNK       (1u << 20) /* largest read chunk */
#define AGENT_FILES_MAX_DEPTH   256        /* recursive delete */

typedef struct _agent_files_t agent_files_t;

/*  An error for the client: code (static string) and message. */
typedef struct {
    const char *code;
    char message[512];
} agent_err_t;

/*  Fills err with a code (static string) and a formatted message. */
void agent_err_set (agent_err_t *err, const char *code, const char *fmt, ...)
    __attribute__ ((format (printf, 3, 4)));

/*  roots: "VIRTUAL=DIR" strings, e.g. "/workspace=/workspace". The first is the default
 *  for relative paths. Returns NULL with err filled if a root is malformed or cannot be
 *  opened. */
agent_files_t *agent_files_new (const char *const *roots, size_t count, agent_err_t *err);
void agent_files_destroy (agent_files_t **self_p);

/*  Each handler takes the request id (for the reply's ref) and the request body, and on
 *  success returns 0 with *reply (caller owns; free with lss_proto_body_free) of
 *  *reply_kind; on failure returns -1 with err filled. */
int agent_files_handle (agent_files_t *self, const char *ref, lss_msg_kind_t kind,
                        const void *request, lss_msg_kind_t *reply_kind, void **reply,
                        agent_err_t *err);

/*  Bytes used under a root (st_blocks), walking at most max_entries entries. -1 on error. */
long long agent_files_disk_usage (agent_files_t *self, size_t root, size_t max_entries);

#endif
