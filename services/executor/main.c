/*  lss-executor — runs code, commands and file operations in sandboxes by talking to
 *  their agents, and streams output back to requesters with flow control.
 *  See executor_server.h and docs/executor.md.
 *
 *    lss-executor [--config FILE] [--log-level LEVEL]
 *  Keys: executor.*, store.dsn, bus.* (LSS_* environment variables override the file).
 */
#include "executor_server.h"
#include "lss_service.h"
#include "lss_util.h"

int main (int argc, char **argv)
{
    lss_malloc_for_streaming ();
    lss_service_t *svc = lss_service_new ("executor", argc, argv);
    if (!svc)
        return lss_service_exit_code ();
    executor_conf_t *conf = calloc (1, sizeof *conf);
    int rc = 1;
    if (conf) {
        executor_conf_from_config (conf, lss_service_config (svc));
        rc = executor_server_run (conf, svc);
    }
    free (conf);
    lss_service_destroy (&svc);
    return rc;
}
