/*  sandbox_agent — a sandbox whose init is lss-agent: the spec for it, where its endpoint
 *  is on the host, and waiting until it answers.
 *
 *  The agent binary is bound read-only at LSS_SANDBOX_AGENT_PATH and runs as PID 1,
 *  binding ipc:///run/lss/agent.sock inside; the runtime bind-mounts the sandbox's
 *  state_dir/<id>/run at /run/lss, so the host reaches it at
 *  ipc://<state_dir>/<id>/run/agent.sock — a directory only root and the sandbox's own
 *  host user can enter. Shared by `lss sandbox`, lss-node, the tests and benchmarks.
 */
#ifndef SANDBOX_AGENT_H
#define SANDBOX_AGENT_H

#include <czmq.h>
#include <stddef.h>

#include "sandbox_spec.h"

#define LSS_SANDBOX_AGENT_PATH     "/opt/lss/lss-agent"
#define LSS_SANDBOX_AGENT_ENDPOINT "ipc:///run/lss/agent.sock"

/*  A spec (caller owns) for sandbox id whose init is the agent at agent_host_path, with
 *  the interpreters given as "lang=/path" (NULL-terminated list, may be NULL: the agent's
 *  defaults). Limits and the rest keep lss_sandbox_spec_new's defaults for the caller to
 *  set. Returns NULL with err on a bad id or path. */
lss_sandbox_spec_t *lss_sandbox_agent_spec (const char *id, const char *agent_host_path,
                                            const char *const *interpreters, char *err,
                                            size_t err_size);

/*  The host endpoint of sandbox id's agent. Returns 0, or -1 if it does not fit
 *  (ipc paths are limited to 107 bytes by the kernel). */
int lss_sandbox_agent_endpoint (const char *state_dir, const char *id, char *out, size_t size);

/*  Connects a DEALER to endpoint and waits until the agent answers a ping, at most
 *  timeout_ms. Returns the connected socket (caller owns), or NULL on timeout. */
zsock_t *lss_sandbox_agent_connect (const char *endpoint, int timeout_ms);

/*  The lss-agent next to the running program (same bin directory), into out.
 *  Returns 0, or -1 if there is none. */
int lss_sandbox_agent_find (char *out, size_t size);

#endif
