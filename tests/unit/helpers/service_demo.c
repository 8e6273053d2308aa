/*  service_demo — the smallest service on lss_service, for test_service.
 *    service_demo [--block | --hang-on-stop] [lss_service options...]
 *  Runs as service "watcher" (it needs a name with an admin_listen key). Default: a zloop
 *  with a heartbeat timer (100 ms) and a reader on an inproc PULL socket; ready after the
 *  first timer turn; ends when a signal interrupts the loop, then exits 0.
 *    --block         one heartbeat, ready, then zpoller_wait with no timeout on the PULL
 *                    socket and lss_service_stop_fd: only the stop request can end it
 *    --hang-on-stop  the loop ignores interrupts and the stop flag (restarted when a
 *                    signal ends it): the watchdog must end the process (exit 1)
 */
#include <czmq.h>
#include <stdio.h>
#include <string.h>

#include "lss_log.h"
#include "lss_service.h"

typedef struct {
    lss_service_t *svc;
    bool hang;
} s_demo_t;

static int s_on_tick (zloop_t *loop, int timer_id, void *arg)
{
    (void)loop;
    (void)timer_id;
    s_demo_t *demo = arg;
    lss_service_heartbeat (demo->svc);
    lss_service_set_ready (demo->svc, true, NULL); /* logs only the first time */
    if (lss_service_stopping (demo->svc) && !demo->hang)
        return -1;
    return 0;
}

static int s_on_message (zloop_t *loop, zsock_t *reader, void *arg)
{
    (void)loop;
    (void)arg;
    char *text = zstr_recv (reader);
    zstr_free (&text);
    return 0;
}

int main (int argc, char **argv)
{
    /*  Take our own flags out; pass the rest to lss_service. */
    bool block = false, hang = false;
    char *rest[64];
    int nrest = 0;
    for (int i = 0; i < argc && nrest < 63; i++) {
        if (i > 0 && strcmp (argv[i], "--block") == 0)
            block = true;
        else if (i > 0 && strcmp (argv[i], "--hang-on-stop") == 0)
            hang = true;
        else
            rest[nrest++] = argv[i];
    }
    rest[nrest] = NULL;

    lss_service_t *svc = lss_service_new ("watcher", nrest, rest);
    if (!svc)
        return lss_service_exit_code ();
    zsock_t *pull = zsock_new_pull ("inproc://service-demo");
    if (!pull) {
        lss_service_destroy (&svc);
        return 1;
    }
    if (block) {
        lss_service_heartbeat (svc);
        lss_service_set_ready (svc, true, NULL);
        int stop_fd = lss_service_stop_fd (svc);
        zpoller_t *poller = zpoller_new (pull, &stop_fd, NULL);
        const char *how = "stop flag";
        while (!lss_service_stopping (svc)) {
            void *which = zpoller_wait (poller, -1);
            if (which == pull)
                s_on_message (NULL, pull, NULL);
            else if (which == &stop_fd) {
                how = "stop fd";
                break;
            } else if (zpoller_terminated (poller)) {
                how = "interrupted";
                break;
            }
        }
        lss_log_info ("poll ended", "{s:s}", "by", how);
        zpoller_destroy (&poller);
    } else {
        s_demo_t demo = {svc, hang};
        zloop_t *loop = zloop_new ();
        zloop_set_nonstop (loop, hang);
        zloop_timer (loop, 100, 0, s_on_tick, &demo);
        zloop_reader (loop, pull, s_on_message, NULL);
        /*  zloop_start also returns when a signal interrupts its poll (EINTR), nonstop
         *  or not: a hanging service would just run it again. */
        do
            zloop_start (loop);
        while (hang);
        zloop_destroy (&loop);
    }
    zsock_destroy (&pull);
    lss_service_destroy (&svc);
    return 0;
}
