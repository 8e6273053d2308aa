/*  lss_service — the lifecycle every services/<svc>/main.c shares: command line, config,
 *  logging, admin endpoint, signals and a shutdown watchdog.
 *
 *      int main (int argc, char **argv)
 *      {
 *          lss_service_t *svc = lss_service_new ("watcher", argc, argv);
 *          if (!svc)
 *              return lss_service_exit_code ();
 *          ... build the server actor, then poll (zloop/zpoller) until interrupted,
 *              calling lss_service_heartbeat (svc) every turn (at least every second)
 *              and lss_service_set_ready (svc, true, NULL) once serving ...
 *          ... tear down ...
 *          lss_service_destroy (&svc);
 *          return 0;
 *      }
 *
 *  Signals. CZMQ installs its own SIGINT/SIGTERM handler in zsys_init (and would replace
 *  any installed earlier), so lss_service_new calls zsys_init first, disables CZMQ's
 *  handler (zsys_handler_set (NULL)) and installs its own. The handler only sets
 *  zsys_interrupted (so zloop and zpoller loops end as with CZMQ's handler, and a poll in
 *  progress returns early with EINTR), the stopping flag, and posts a semaphore; the
 *  admin and watchdog threads block these signals so they reach the main thread, whose
 *  poll they interrupt. A signal landing between a loop's last check and its next poll
 *  would only be seen when that poll times out; to never miss one, poll
 *  lss_service_stop_fd too (it turns readable on the first stop request, from the
 *  handler itself). The watchdog thread logs "stopping" and waits: if the
 *  process is still alive service.shutdown_timeout ms later, or when a second signal
 *  arrives, it logs an error and _exit (1)s. lss_service_destroy disarms it once the
 *  admin endpoint is down, so it covers the service's whole teardown up to there (not
 *  what runs after destroy, e.g. atexit handlers). SIGPIPE is ignored for the life of
 *  the process.
 *
 *  One service per process (signal handling is process-wide): a second
 *  lss_service_new while one exists is a programmer error (assert).
 */
#ifndef LSS_SERVICE_H
#define LSS_SERVICE_H

#include <stdbool.h>

#include "lss_admin.h"
#include "lss_config.h"

#ifndef LSS_VERSION
#define LSS_VERSION "0.1.0-dev"
#endif

#define LSS_SERVICE_NAME_MAX 32 /* bytes of a service name */

typedef struct _lss_service_t lss_service_t;

/*  Starts a service called name ([a-z0-9_-], at most LSS_SERVICE_NAME_MAX bytes):
 *    - parses argv: --config FILE (else $LSS_CONFIG, else no file), --log-level LEVEL,
 *      --help (usage and the "<name>.*", "service.*" and "log.*" keys on stdout),
 *      --version; "--opt=value" works too; anything else is a usage error;
 *    - loads lss_settings from the file and LSS_* variables (errors go to stderr and
 *      the log, naming the key);
 *    - initialises lss_log (service name, log.level or --log-level) and logs the
 *      effective config;
 *    - installs the signal handling described above and arms the watchdog thread;
 *    - starts lss_admin on "<name>.admin_listen" (no endpoint if the table has no such
 *      key), logs "started" with the bound address in field "admin", and if
 *      $LSS_TEST_PORT_FILE is set writes the admin port and a newline to that file
 *      (atomically, via rename).
 *  The service is not ready (/readyz 503 "starting") until lss_service_set_ready.
 *  Returns NULL when the process should exit instead, with lss_service_exit_code () set:
 *  0 after --help or --version, 2 for a usage or config error, 1 for any other failure
 *  (e.g. the admin port is taken). argv is borrowed. */
lss_service_t *lss_service_new (const char *name, int argc, char **argv);

/*  The exit code to return after lss_service_new returned NULL (0 otherwise). */
int lss_service_exit_code (void);

/*  Stops the admin endpoint, disarms the watchdog, logs "stopped" with the uptime,
 *  restores the SIGINT/SIGTERM dispositions and frees the service; NULLs *self_p. */
void lss_service_destroy (lss_service_t **self_p);

/*  True once SIGINT or SIGTERM arrived or lss_service_stop was called. Thread-safe and
 *  cheap (an atomic load): check it every loop turn. */
bool lss_service_stopping (const lss_service_t *self);

/*  A file descriptor that becomes readable, and stays so, once a stop is requested
 *  (first signal or lss_service_stop). Add it to the main loop's poll set: zpoller_add
 *  (poller, &fd) with fd kept alive, or zloop_poller with a zmq_pollitem_t {.fd = fd,
 *  .events = ZMQ_POLLIN} whose handler ends the loop. Owned by the service; never read
 *  it. */
int lss_service_stop_fd (const lss_service_t *self);

/*  Asks the service to stop as a signal would (sets zsys_interrupted, arms the watchdog),
 *  e.g. after a fatal error in the main loop. Thread-safe. */
void lss_service_stop (lss_service_t *self);

/*  Records that the main loop is alive (backs /healthz). Thread-safe, cheap. */
void lss_service_heartbeat (lss_service_t *self);

/*  Sets readiness for /readyz; reason (copied, may be NULL) says why not, or when ready
 *  what kind of ready (shown as "ready: <reason>"). Logs changes.
 *  Thread-safe. */
void lss_service_set_ready (lss_service_t *self, bool ready, const char *reason);

/*  Replaces the default readiness (lss_service_set_ready) with fn (NULL restores it);
 *  fn runs on the admin thread, see lss_admin_ready_fn. Thread-safe. */
void lss_service_set_ready_fn (lss_service_t *self, lss_admin_ready_fn *fn, void *arg);

/*  The effective config (borrowed, valid until destroy). */
const lss_config_t *lss_service_config (const lss_service_t *self);
/*  The admin endpoint (borrowed), or NULL if the service has none. */
lss_admin_t *lss_service_admin (const lss_service_t *self);
/*  The service name (borrowed). */
const char *lss_service_name (const lss_service_t *self);

#endif
