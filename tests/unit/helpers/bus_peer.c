/*  bus_peer — the other process of the bus tests.
 *    bus_peer pub ENDPOINT       connect a PUB to ENDPOINT and publish exec.output
 *                                messages every 5 ms (seq 1, 2, ...) for at most 20 s
 *    bus_peer router             bind a ROUTER on tcp://127.0.0.1:* , print the endpoint,
 *                                answer exec.start with exec.started + exec.output +
 *                                exec.end, answer malformed messages with `error`,
 *                                stop on exec.cancel with exec_id "quit".
 */
#include <czmq.h>
#include <stdio.h>
#include <string.h>

#include "lss_bus.h"
#include "lss_log.h"
#include "lss_util.h"

static int s_pub (const char *endpoint)
{
    char ep[300];
    snprintf (ep, sizeof ep, ">%s", endpoint);
    lss_bus_pub_t *pub = lss_bus_pub_new (ep, "bus_peer/pub", NULL);
    if (!pub)
        return 1;
    int64_t end = lss_time_mono_ms () + 20000;
    for (int i = 1; !zsys_interrupted && lss_time_mono_ms () < end; i++) {
        char data[32];
        int n = snprintf (data, sizeof data, "chunk %d", i);
        lss_exec_output_t out = {.exec_id = "e-pub",
                                 .stream = "stdout",
                                 .seq = i,
                                 .data = {(uint8_t *)data, (size_t)n}};
        if (lss_bus_pub_send (pub, "exec.output.e-pub", LSS_MSG_exec_output, NULL, &out,
                              "trace-pub"))
            return 1;
        zclock_sleep (5); /* pacing of a stream source, not synchronisation */
    }
    lss_bus_pub_destroy (&pub);
    return 0;
}

static int s_reply (zsock_t *sock, zframe_t *route, lss_msg_kind_t kind, const void *body)
{
    lss_envelope_t env;
    lss_bus_envelope_init (&env, kind, NULL, "bus_peer/router", 0, NULL);
    return lss_bus_send (sock, zframe_data (route), zframe_size (route), NULL, &env, kind,
                         body);
}

static int s_router (void)
{
    zsock_t *sock = lss_bus_socket_new (ZMQ_ROUTER, "@tcp://127.0.0.1:*", NULL);
    if (!sock)
        return 1;
    printf ("%s\n", zsock_endpoint (sock));
    fflush (stdout);
    while (!zsys_interrupted) {
        zframe_t *route;
        lss_envelope_t env;
        lss_msg_kind_t kind;
        void *body;
        char err[256];
        int rc = lss_bus_recv (sock, &route, NULL, 0, &env, &kind, &body, err, sizeof err);
        if (rc == -1)
            break;
        if (rc == -2) {
            if (route) {
                lss_error_t e = {.code = "invalid_message", .message = err};
                s_reply (sock, route, LSS_MSG_error, &e);
                zframe_destroy (&route);
            }
            continue;
        }
        bool quit = false;
        if (kind == LSS_MSG_exec_start) {
            lss_exec_start_t *req = body;
            lss_exec_started_t st = {.exec_id = req->exec_id, .pid = 42};
            s_reply (sock, route, LSS_MSG_exec_started, &st);
            char data[256];
            int n = snprintf (data, sizeof data, "ran %s",
                              req->argv.count ? req->argv.items[0] : "?");
            lss_exec_output_t out = {.exec_id = req->exec_id,
                                     .stream = "stdout",
                                     .seq = 1,
                                     .data = {(uint8_t *)data, (size_t)n}};
            s_reply (sock, route, LSS_MSG_exec_output, &out);
            lss_exec_end_t end = {.exec_id = req->exec_id, .exit_code = 3, .stdout_bytes = n};
            s_reply (sock, route, LSS_MSG_exec_end, &end);
        } else if (kind == LSS_MSG_exec_cancel) {
            quit = strcmp (((lss_exec_cancel_t *)body)->exec_id, "quit") == 0;
            lss_ok_t ok = {.ref = env.id};
            s_reply (sock, route, LSS_MSG_ok, &ok);
        } else {
            lss_error_t e = {.ref = env.id, .code = "unknown_type", .message = env.type};
            s_reply (sock, route, LSS_MSG_error, &e);
        }
        lss_proto_body_free (kind, &body);
        zframe_destroy (&route);
        if (quit)
            break;
    }
    zsock_destroy (&sock);
    return 0;
}

int main (int argc, char **argv)
{
    lss_log_init ("bus_peer", LSS_LOG_WARN);
    if (argc == 3 && strcmp (argv[1], "pub") == 0)
        return s_pub (argv[2]);
    if (argc == 2 && strcmp (argv[1], "router") == 0)
        return s_router ();
    fprintf (stderr, "usage: bus_peer pub ENDPOINT | bus_peer router\n");
    return 2;
}
