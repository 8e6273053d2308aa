/*  sandbox_agent — spec, endpoint and readiness of an agent sandbox. See sandbox_agent.h. */
#include "sandbox_agent.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <poll.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lss_bus.h"
#include "lss_util.h"

lss_sandbox_spec_t *lss_sandbox_agent_spec (const char *id, const char *agent_host_path,
                                            const char *const *interpreters, char *err,
                                            size_t err_size)
{
    if (!lss_sandbox_id_valid (id)) {
        snprintf (err, err_size, "id: must be [a-z0-9-], 1..63 characters");
        return NULL;
    }
    struct stat st;
    if (!agent_host_path || agent_host_path[0] != '/' || stat (agent_host_path, &st) ||
        !S_ISREG (st.st_mode)) {
        snprintf (err, err_size, "agent: %s is not an executable file",
                  agent_host_path ? agent_host_path : "(none)");
        return NULL;
    }
    lss_sandbox_spec_t *spec = lss_sandbox_spec_new (id);
    if (!spec) {
        snprintf (err, err_size, "out of memory");
        return NULL;
    }
    char src[96];
    snprintf (src, sizeof src, "agent/%s", id);
    const char *argv[4 + 2 * 16] = {LSS_SANDBOX_AGENT_PATH, "--endpoint",
                                    LSS_SANDBOX_AGENT_ENDPOINT, "--src", src};
    size_t argc = 5;
    for (size_t i = 0;
         interpreters && interpreters[i] && argc + 2 < sizeof argv / sizeof argv[0]; i++) {
        argv[argc++] = "--interpreter";
        argv[argc++] = interpreters[i];
    }
    if (lss_sandbox_spec_set_argv (spec, argv, argc) ||
        lss_sandbox_spec_add_ro_bind (spec, agent_host_path, LSS_SANDBOX_AGENT_PATH)) {
        snprintf (err, err_size, "agent spec exceeds its bounds");
        lss_sandbox_spec_destroy (&spec);
        return NULL;
    }
    return spec;
}

int lss_sandbox_agent_endpoint (const char *state_dir, const char *id, char *out, size_t size)
{
    char path[PATH_MAX];
    if (lss_fmt (path, sizeof path, "%s/%s/run/agent.sock", state_dir, id) ||
        strlen (path) > 107)
        return -1;
    return lss_fmt (out, size, "ipc://%s", path);
}

/* Waits until the ipc socket file exists (inotify on its directory), at most until
 * deadline. Connecting before it exists works too, but ZeroMQ's reconnect backoff would
 * then add up to its current interval to every sandbox start. Returns 0 or -1. */
static int s_wait_for_file (const char *path, int64_t deadline)
{
    char dir[PATH_MAX];
    if (lss_fmt (dir, sizeof dir, "%s", path))
        return -1;
    char *slash = strrchr (dir, '/');
    if (!slash)
        return -1;
    *slash = '\0';
    int fd = inotify_init1 (IN_NONBLOCK | IN_CLOEXEC);
    if (fd >= 0 && inotify_add_watch (fd, dir, IN_CREATE | IN_MOVED_TO) < 0) {
        close (fd);
        fd = -1;
    }
    int rc = -1;
    for (;;) {
        if (access (path, F_OK) == 0) {
            rc = 0;
            break;
        }
        int64_t left = deadline - lss_time_mono_ms ();
        if (left <= 0)
            break;
        struct pollfd pfd = {fd, POLLIN, 0};
        if (fd < 0) /* no inotify: poll the file every 2 ms */
            poll (NULL, 0, left < 2 ? (int)left : 2);
        else if (poll (&pfd, 1, (int)left) > 0) {
            char buf[4096];
            while (read (fd, buf, sizeof buf) > 0)
                ;
        }
    }
    if (fd >= 0)
        close (fd);
    return rc;
}

zsock_t *lss_sandbox_agent_connect (const char *endpoint, int timeout_ms)
{
    int64_t deadline = lss_time_mono_ms () + timeout_ms;
    if (strncmp (endpoint, "ipc://", 6) == 0 && s_wait_for_file (endpoint + 6, deadline))
        return NULL;
    lss_bus_opts_t opts;
    lss_bus_opts_default (&opts);
    /* The socket file appears at bind(), a moment before listen(): a connect in between
     * is refused and retried after reconnect_ivl (it was 10 ms, most of the time from a
     * start to the first answer in bench_sandbox). */
    opts.reconnect_ivl_ms = 1;
    opts.reconnect_ivl_max_ms = 100;
    char ep[600];
    if (lss_fmt (ep, sizeof ep, ">%s", endpoint))
        return NULL;
    zsock_t *sock = lss_bus_socket_new (ZMQ_DEALER, ep, &opts);
    if (!sock)
        return NULL;
    zpoller_t *poller = zpoller_new (sock, NULL);
    bool ok = false;
    while (!ok && lss_time_mono_ms () < deadline) {
        lss_envelope_t env;
        lss_agent_ping_t ping = {.nonce = 1};
        lss_bus_envelope_init (&env, LSS_MSG_agent_ping, NULL, "sandbox_agent", 0, NULL);
        if (lss_bus_send (sock, NULL, 0, NULL, &env, LSS_MSG_agent_ping, &ping) &&
            errno != EAGAIN)
            break;
        int64_t left = deadline - lss_time_mono_ms ();
        if (zpoller_wait (poller, (int)(left < 50 ? (left > 0 ? left : 0) : 50))) {
            lss_envelope_t reply;
            lss_msg_kind_t kind;
            void *body;
            if (lss_bus_recv (sock, NULL, NULL, 0, &reply, &kind, &body, NULL, 0) == 0)
                ok = kind == LSS_MSG_agent_pong;
            lss_proto_body_free (kind, &body);
        }
    }
    zpoller_destroy (&poller);
    if (!ok) {
        zsock_destroy (&sock);
        return NULL;
    }
    /* Drain the extra pongs of earlier pings (bounded). */
    for (int i = 0; i < 100 && (zsock_events (sock) & ZMQ_POLLIN); i++) {
        lss_envelope_t reply;
        lss_msg_kind_t kind;
        void *body;
        lss_bus_recv (sock, NULL, NULL, 0, &reply, &kind, &body, NULL, 0);
        lss_proto_body_free (kind, &body);
    }
    return sock;
}

int lss_sandbox_agent_find (char *out, size_t size)
{
    char self[PATH_MAX];
    ssize_t n = readlink ("/proc/self/exe", self, sizeof self - 1);
    if (n <= 0)
        return -1;
    self[n] = '\0';
    char *slash = strrchr (self, '/');
    if (!slash)
        return -1;
    *slash = '\0';
    const char *candidates[] = {"%s/lss-agent", "%s/../bin/lss-agent"};
    for (size_t i = 0; i < 2; i++) {
        if (lss_fmt (out, size, candidates[i], self) == 0 && access (out, X_OK) == 0) {
            char real[PATH_MAX];
            if (realpath (out, real) && strlen (real) < size) {
                memcpy (out, real, strlen (real) + 1);
                return 0;
            }
        }
    }
    return -1;
}
