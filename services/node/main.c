/*  lss-node — the kubelet stand-in of local mode: runs the Pod objects of this node as
 *  bubblewrap sandboxes whose init is lss-agent, and reports their status. See
 *  docs/node.md; the loop is node_server.c, the Pod translation node_pod.c.
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>

#include "lss_log.h"
#include "lss_service.h"
#include "node_server.h"
#include "sandbox_agent.h"

int main (int argc, char **argv)
{
    lss_service_t *svc = lss_service_new ("node", argc, argv);
    if (!svc)
        return lss_service_exit_code ();
    const lss_config_t *cfg = lss_service_config (svc);
    char agent[PATH_MAX] = "", real[PATH_MAX];
    const char *configured = lss_config_str (cfg, "node.agent_path");
    if (*configured)
        snprintf (agent, sizeof agent, "%s", configured);
    else if (lss_sandbox_agent_find (agent, sizeof agent))
        agent[0] = '\0';
    if (!agent[0] || !realpath (agent, real)) {
        lss_log_error ("lss-agent not found (set node.agent_path)", "{s:s}", "agent_path",
                       agent);
        lss_service_destroy (&svc);
        return 1;
    }
    node_server_conf_t conf = {
        .dsn = lss_config_str (cfg, "store.dsn"),
        .cfg = cfg,
        .state_dir = lss_config_str (cfg, "node.state_dir"),
        .agent_path = real,
        .node_name = lss_config_str (cfg, "node.name"),
        .max_sandboxes = (int)lss_config_int (cfg, "node.max_sandboxes"),
        .uid_base = (uint32_t)lss_config_int (cfg, "node.uid_base"),
    };
    node_server_t *server = node_server_new (&conf);
    if (!server) {
        lss_log_error ("cannot open the sandbox runtime", "{s:s}", "state_dir", conf.state_dir);
        lss_service_destroy (&svc);
        return 1;
    }
    int rc = node_server_run (server, svc);
    node_server_destroy (&server);
    lss_service_destroy (&svc);
    return rc;
}
