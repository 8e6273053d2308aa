/*  agent_server — the agent's loop: one ROUTER socket, a signalfd, and every running
 *  execution's pipes in one zmq_poll; requests dispatched to agent_exec / agent_files.
 */
#ifndef AGENT_SERVER_H
#define AGENT_SERVER_H

#include "agent_exec.h"
#include "lss_bus.h"
#include "lss_curve.h"

#define AGENT_MAX_EXECS_CAP 256
#define AGENT_MAX_PEERS     64

typedef struct {
    char endpoint[512];
    const char *roots[AGENT_FILES_MAX_ROOTS];
    size_t root_count;
    agent_exec_conf_t exec;
    int max_execs;
    int64_t requester_timeout_ms; /* a requester silent this long loses its executions */
    lss_bus_opts_t bus;
    char src[64]; /* envelope src, e.g. "agent/sb-abc" */
    /* CURVE (cluster mode): the agent's secret key ("" = plaintext) and the public keys
     * of the executors it answers */
    char curve_secret[LSS_CURVE_KEY_LEN + 1];
    const char *curve_clients[LSS_CURVE_CLIENTS];
    size_t curve_client_count;
} agent_conf_t;

/*  Defaults: ipc:///run/lss/agent.sock, roots /workspace and /tmp, 32 executions,
 *  requester timeout 30 s, small HWMs (128 messages) so memory stays bounded. */
void agent_conf_default (agent_conf_t *conf);

/*  Runs until SIGTERM/SIGINT (blocked by the caller and read from a signalfd).
 *  Returns the process exit code. */
int agent_server_run (const agent_conf_t *conf);

#endif
