/*  up_probe — readiness probes that never block the supervisor's loop.
 *
 *  Design note: a probe is a small state machine over one non-blocking descriptor that
 *  the supervisor adds to its poll set: HTTP (connect to 127.0.0.1:port, send
 *  "GET /readyz", ready on status 200 — the services' admin endpoint) and Redis
 *  (connect to the unix socket, send PING, ready on +PONG; a Redis still loading its
 *  data answers -LOADING) share the socket code; PostgreSQL uses libpq's own
 *  non-blocking connect (PQconnectStart/PQconnectPoll), ready once a session is
 *  established (a server starting up or shutting down refuses it). Every probe has a
 *  deadline and reads at most a status line's worth of bytes.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <libpq-fe.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "lss_util.h"
#include "up.h"

#define S_REPLY_MAX 256

enum { S_CONNECTING, S_SENDING, S_READING };

struct up_probe {
    up_probe_kind_t kind;
    int fd;
    int stage;
    char req[96];
    size_t req_len, sent;
    char buf[S_REPLY_MAX + 1];
    size_t len;
    int64_t deadline_ms;
    PGconn *pg;
    PostgresPollingStatusType pg_poll;
    up_probe_result_t result;
    char error[160];
};

static up_probe_result_t s_fail (up_probe_t *p, const char *what)
{
    snprintf (p->error, sizeof p->error, "%s", what);
    p->result = UP_PROBE_FAILED;
    if (p->fd >= 0)
        close (p->fd);
    p->fd = -1;
    if (p->pg)
        PQfinish (p->pg);
    p->pg = NULL;
    return p->result;
}

static up_probe_result_t s_ok (up_probe_t *p)
{
    p->result = UP_PROBE_OK;
    p->error[0] = '\0';
    if (p->fd >= 0)
        close (p->fd);
    p->fd = -1;
    if (p->pg)
        PQfinish (p->pg);
    p->pg = NULL;
    return p->result;
}

static void s_connect (up_probe_t *p, const char *target, int port)
{
    int rc;
    if (p->kind == UP_PROBE_HTTP) {
        p->fd = socket (AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (p->fd < 0) {
            s_fail (p, strerror (errno));
            return;
        }
        struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons ((uint16_t)port)};
        a.sin_addr.s_addr = htonl (INADDR_LOOPBACK);
        rc = connect (p->fd, (struct sockaddr *)&a, sizeof a);
        snprintf (p->req, sizeof p->req,
                  "GET /readyz HTTP/1.0\r\nHost: 127.0.0.1\r\nUser-Agent: lss-up\r\n\r\n");
    } else {
        struct sockaddr_un a = {.sun_family = AF_UNIX};
        if (lss_fmt (a.sun_path, sizeof a.sun_path, "%s", target)) {
            s_fail (p, "socket path too long");
            return;
        }
        p->fd = socket (AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (p->fd < 0) {
            s_fail (p, strerror (errno));
            return;
        }
        rc = connect (p->fd, (struct sockaddr *)&a, sizeof a);
        snprintf (p->req, sizeof p->req, "PING\r\n");
    }
    p->req_len = strlen (p->req);
    if (rc == 0)
        p->stage = S_SENDING;
    else if (errno == EINPROGRESS)
        p->stage = S_CONNECTING;
    else
        s_fail (p, strerror (errno));
}

up_probe_t *up_probe_start (up_probe_kind_t kind, const char *target, int port, int timeout_ms)
{
    up_probe_t *p = calloc (1, sizeof *p);
    if (!p)
        return NULL;
    p->kind = kind;
    p->fd = -1;
    p->deadline_ms = lss_time_mono_ms () + timeout_ms;
    if (kind == UP_PROBE_PG) {
        p->pg = PQconnectStart (target);
        if (!p->pg || PQstatus (p->pg) == CONNECTION_BAD)
            s_fail (p, p->pg ? PQerrorMessage (p->pg) : "out of memory");
        else
            p->pg_poll = PGRES_POLLING_WRITING;
    } else
        s_connect (p, target, port);
    return p;
}

int up_probe_fd (const up_probe_t *self, short *events)
{
    *events = 0;
    if (self->result != UP_PROBE_PENDING)
        return -1;
    if (self->kind == UP_PROBE_PG) {
        *events = self->pg_poll == PGRES_POLLING_READING ? POLLIN : POLLOUT;
        return self->pg ? PQsocket (self->pg) : -1;
    }
    *events = self->stage == S_READING ? POLLIN : POLLOUT;
    return self->fd;
}

static up_probe_result_t s_judge (up_probe_t *p)
{
    if (p->kind == UP_PROBE_HTTP) {
        /* "HTTP/1.x 200 ..." */
        if (p->len >= 12 && strncmp (p->buf, "HTTP/1.", 7) == 0 &&
            strncmp (p->buf + 8, " 200", 4) == 0)
            return s_ok (p);
        char what[64];
        size_t line = strcspn (p->buf, "\r\n");
        snprintf (what, sizeof what, "/readyz answered '%.*s'", (int)(line < 40 ? line : 40),
                  p->buf);
        return s_fail (p, p->len ? what : "/readyz closed without an answer");
    }
    if (p->len >= 5 && strncmp (p->buf, "+PONG", 5) == 0)
        return s_ok (p);
    char what[64];
    size_t line = strcspn (p->buf, "\r\n");
    snprintf (what, sizeof what, "PING answered '%.*s'", (int)(line < 40 ? line : 40), p->buf);
    return s_fail (p, what);
}

static up_probe_result_t s_step_socket (up_probe_t *p)
{
    if (p->stage == S_CONNECTING) {
        struct pollfd pf = {.fd = p->fd, .events = POLLOUT};
        if (poll (&pf, 1, 0) <= 0)
            return UP_PROBE_PENDING;
        int soerr = 0;
        socklen_t sl = sizeof soerr;
        if (getsockopt (p->fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) != 0 || soerr != 0)
            return s_fail (p, strerror (soerr ? soerr : errno));
        p->stage = S_SENDING;
    }
    if (p->stage == S_SENDING) {
        while (p->sent < p->req_len) {
            ssize_t n = send (p->fd, p->req + p->sent, p->req_len - p->sent, MSG_NOSIGNAL);
            if (n < 0 && (errno == EAGAIN || errno == EINTR))
                return UP_PROBE_PENDING;
            if (n <= 0)
                return s_fail (p, strerror (errno));
            p->sent += (size_t)n;
        }
        p->stage = S_READING;
    }
    for (;;) {
        if (p->len >= S_REPLY_MAX)
            return s_judge (p);
        ssize_t n = recv (p->fd, p->buf + p->len, S_REPLY_MAX - p->len, 0);
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
            return UP_PROBE_PENDING;
        if (n < 0)
            return s_fail (p, strerror (errno));
        if (n == 0)
            return s_judge (p);
        p->len += (size_t)n;
        p->buf[p->len] = '\0';
        if (strstr (p->buf, "\r\n"))
            return s_judge (p);
    }
}

up_probe_result_t up_probe_step (up_probe_t *self)
{
    if (self->result != UP_PROBE_PENDING)
        return self->result;
    if (lss_time_mono_ms () >= self->deadline_ms)
        return s_fail (self, "timed out");
    if (self->kind != UP_PROBE_PG)
        return s_step_socket (self);
    /* libpq wants PQconnectPoll only once the socket is ready as it last asked */
    short events;
    struct pollfd pf = {.fd = up_probe_fd (self, &events)};
    pf.events = events;
    if (pf.fd < 0)
        return s_fail (self, "connection has no socket");
    if (poll (&pf, 1, 0) <= 0)
        return UP_PROBE_PENDING;
    self->pg_poll = PQconnectPoll (self->pg);
    if (self->pg_poll == PGRES_POLLING_OK)
        return s_ok (self);
    if (self->pg_poll == PGRES_POLLING_FAILED) {
        char what[160];
        snprintf (what, sizeof what, "%s", PQerrorMessage (self->pg));
        what[strcspn (what, "\n")] = '\0';
        return s_fail (self, what);
    }
    return UP_PROBE_PENDING;
}

const char *up_probe_error (const up_probe_t *self)
{
    return self->error;
}

void up_probe_destroy (up_probe_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    up_probe_t *p = *self_p;
    if (p->fd >= 0)
        close (p->fd);
    if (p->pg)
        PQfinish (p->pg);
    free (p);
    *self_p = NULL;
}
