/*  agent_server — the agent's event loop. See agent_server.h.
 *
 *  Design: single-threaded; the loop never blocks except in zmq_poll. Output is read
 *  only when it can be sent (credit available, no chunk pending), so a slow consumer
 *  slows the program (its pipe fills) instead of growing the agent's memory: at most one
 *  pending chunk and the socket's HWM per execution. SIGCHLD reaps every child, orphans
 *  included (the agent is PID 1 of its sandbox, or a child subreaper outside one);
 *  waitid(WNOWAIT) peeks first so an execution's group is killed before its leader's pid
 *  can be reused.
 */
#include "agent_server.h"

#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "lss_log.h"

#define AGENT_CHUNK             (256u * 1024) /* output bytes per exec.output message at most */
#define AGENT_USAGE_MAX_ENTRIES 100000
/* After a read of less than AGENT_COALESCE_BELOW bytes, a stream still running is read
 * again only AGENT_COALESCE_NS later: a program writing many small pieces fills the
 * (1 MiB) pipe meanwhile and goes out in fewer, larger messages (each costs a wake-up in
 * every process on the way). A larger read means the program writes fast and the chunks
 * are big already: no pause, which would only leave the stages behind idle. Output after
 * a quiet spell is read at once, and an execution whose leader has exited is drained at
 * once, so this adds at most 1 ms to output that follows output. */
#define AGENT_COALESCE_NS    (1000 * 1000)
#define AGENT_COALESCE_BELOW (64u * 1024)

void agent_conf_default (agent_conf_t *conf)
{
    memset (conf, 0, sizeof *conf);
    snprintf (conf->endpoint, sizeof conf->endpoint, "ipc:///run/lss/agent.sock");
    agent_exec_conf_default (&conf->exec);
    conf->max_execs = 32;
    conf->requester_timeout_ms = 30000;
    lss_bus_opts_default (&conf->bus);
    conf->bus.sndhwm = 128;
    conf->bus.rcvhwm = 128;
    conf->bus.max_message = 8 << 20;
    conf->bus.linger_ms = 500;
    snprintf (conf->src, sizeof conf->src, "agent");
}

typedef struct {
    uint8_t id[AGENT_OWNER_MAX];
    size_t len;
    int64_t last_seen;
} s_peer_t;

typedef struct {
    const agent_conf_t *conf;
    zsock_t *sock;
    zactor_t *zap; /* CURVE allow-list (cluster mode), NULL in plaintext */
    int sigfd;
    agent_files_t *files;
    agent_exec_t *execs[AGENT_MAX_EXECS_CAP];
    size_t nexec;
    s_peer_t peers[AGENT_MAX_PEERS];
    size_t npeers;
    uint64_t seq;
    int64_t started_ms;
    bool stopping;
    /* the request being handled */
    const uint8_t *route;
    size_t route_len;
    const char *req_id;
} s_agent_t;

static uint8_t s_chunk[AGENT_CHUNK];

/* ------------------------------------------------------------------ sending */
static int s_send_to (s_agent_t *self, const uint8_t *route, size_t route_len,
                      lss_msg_kind_t kind, const void *body)
{
    lss_envelope_t env;
    lss_bus_envelope_init (&env, kind, NULL, self->conf->src, ++self->seq, NULL);
    return lss_bus_send (self->sock, route, route_len, NULL, &env, kind, body);
}

static void s_reply (s_agent_t *self, lss_msg_kind_t kind, const void *body)
{
    if (s_send_to (self, self->route, self->route_len, kind, body))
        lss_log_warn ("reply not delivered", "{s:s, s:s}", "type",
                      lss_proto_desc (kind)->pattern, "error", zmq_strerror (errno));
}

static void s_reply_error (s_agent_t *self, const char *code, const char *message,
                           const char *exec_id)
{
    lss_error_t e = {.ref = (char *)self->req_id,
                     .code = (char *)code,
                     .message = (char *)message,
                     .exec_id = (char *)exec_id};
    s_reply (self, LSS_MSG_error, &e);
}

/* ------------------------------------------------------------------ peers */
static s_peer_t *s_peer_touch (s_agent_t *self, int64_t now)
{
    for (size_t i = 0; i < self->npeers; i++)
        if (self->peers[i].len == self->route_len &&
            memcmp (self->peers[i].id, self->route, self->route_len) == 0) {
            self->peers[i].last_seen = now;
            return &self->peers[i];
        }
    if (self->npeers == AGENT_MAX_PEERS) {
        /* Evict the stalest peer that owns no execution. */
        size_t victim = AGENT_MAX_PEERS;
        for (size_t i = 0; i < self->npeers; i++) {
            bool owns = false;
            for (size_t k = 0; k < self->nexec && !owns; k++)
                owns =
                    self->execs[k]->owner_len == self->peers[i].len &&
                    memcmp (self->execs[k]->owner, self->peers[i].id, self->peers[i].len) == 0;
            if (!owns && (victim == AGENT_MAX_PEERS ||
                          self->peers[i].last_seen < self->peers[victim].last_seen))
                victim = i;
        }
        if (victim == AGENT_MAX_PEERS)
            return NULL;
        self->peers[victim] = self->peers[--self->npeers];
    }
    s_peer_t *p = &self->peers[self->npeers++];
    memcpy (p->id, self->route, self->route_len);
    p->len = self->route_len;
    p->last_seen = now;
    return p;
}

static int64_t s_peer_last_seen (s_agent_t *self, const agent_exec_t *e)
{
    for (size_t i = 0; i < self->npeers; i++)
        if (self->peers[i].len == e->owner_len &&
            memcmp (self->peers[i].id, e->owner, e->owner_len) == 0)
            return self->peers[i].last_seen;
    return 0;
}

/* ------------------------------------------------------------------ executions */
static agent_exec_t *s_find_exec (s_agent_t *self, const char *exec_id)
{
    for (size_t i = 0; i < self->nexec; i++) {
        agent_exec_t *e = self->execs[i];
        if (e->owner_len == self->route_len &&
            memcmp (e->owner, self->route, self->route_len) == 0 &&
            strcmp (e->id, exec_id) == 0)
            return e;
    }
    return NULL;
}

static void s_end_exec (s_agent_t *self, size_t index, const char *error)
{
    agent_exec_t *e = self->execs[index];
    lss_exec_end_t end;
    agent_exec_end_msg (e, &end, lss_time_mono_ms ());
    end.error = (char *)error;
    if (s_send_to (self, e->owner, e->owner_len, LSS_MSG_exec_end, &end))
        lss_log_warn ("exec.end not delivered", "{s:s, s:s}", "exec_id", e->id, "error",
                      zmq_strerror (errno));
    lss_log_debug ("execution ended", "{s:s, s:I, s:I, s:b, s:b}", "exec_id", e->id,
                   "exit_code", (json_int_t)end.exit_code, "wall_ms", (json_int_t)end.wall_ms,
                   "timed_out", end.timed_out, "cancelled", end.cancelled);
    agent_exec_release (e);
    free (e);
    self->execs[index] = self->execs[--self->nexec];
}

static void s_exec_start (s_agent_t *self, const lss_exec_start_t *req)
{
    if (s_find_exec (self, req->exec_id)) {
        s_reply_error (self, "exists", "an execution with this id is running", req->exec_id);
        return;
    }
    if ((int)self->nexec >= self->conf->max_execs) {
        char msg[128];
        snprintf (msg, sizeof msg, "too many concurrent executions (at most %d)",
                  self->conf->max_execs);
        s_reply_error (self, "limit_exceeded", msg, req->exec_id);
        return;
    }
    agent_exec_t *e = calloc (1, sizeof *e);
    if (!e) {
        s_reply_error (self, "io_error", "out of memory", req->exec_id);
        return;
    }
    snprintf (e->id, sizeof e->id, "%s", req->exec_id);
    memcpy (e->owner, self->route, self->route_len);
    e->owner_len = self->route_len;
    agent_err_t err = {0};
    int rc = agent_exec_start (e, req, &self->conf->exec, lss_time_mono_ms (), &err);
    if (rc == -1) {
        agent_exec_release (e);
        free (e);
        s_reply_error (self, err.code, err.message, req->exec_id);
        return;
    }
    self->execs[self->nexec++] = e;
    if (rc == -2) { /* could not run: the execution ends with the reason */
        s_end_exec (self, self->nexec - 1, err.message);
        return;
    }
    lss_exec_started_t st = {.exec_id = e->id, .pid = e->pid};
    s_reply (self, LSS_MSG_exec_started, &st);
    agent_exec_flush_stdin (e);
}

/* Sends one output chunk; keeps it pending if the peer's queue is full. */
static void s_send_output (s_agent_t *self, agent_exec_t *e, int stream, const uint8_t *data,
                           size_t len)
{
    lss_exec_output_t out = {.exec_id = e->id,
                             .stream = stream == AGENT_STDOUT ? "stdout" : "stderr",
                             .seq = e->seq + 1,
                             .data = {(uint8_t *)data, len}};
    if (s_send_to (self, e->owner, e->owner_len, LSS_MSG_exec_output, &out) == 0) {
        e->seq++;
        return;
    }
    if (errno == EAGAIN) {
        lss_buf_reset (&e->pending);
        lss_buf_append (&e->pending, data, len);
        e->pending_stream = stream;
    }
    /* EHOSTUNREACH: the requester is gone; the heartbeat timeout will cancel. */
}

static void s_read_output (s_agent_t *self, agent_exec_t *e, int stream)
{
    size_t want = AGENT_CHUNK;
    if (e->flow && (int64_t)want > e->credit)
        want = (size_t)e->credit;
    if (want == 0)
        return;
    /* Gather what the pipe holds, up to one chunk: fewer, larger messages when the
     * program writes fast, no waiting when it does not. */
    ssize_t n = 0;
    bool eof = false;
    while ((size_t)n < want) {
        ssize_t r = read (e->fd[stream], s_chunk + n, want - (size_t)n);
        if (r > 0) {
            n += r;
            continue;
        }
        if (r < 0 && errno == EINTR)
            continue;
        eof = r == 0 || errno != EAGAIN;
        break;
    }
    if (eof) {
        close (e->fd[stream]);
        e->fd[stream] = -1;
    }
    bool small = (size_t)n < AGENT_COALESCE_BELOW && (size_t)n < want;
    e->hold_ns[stream] = !eof && small ? lss_time_mono_ns () + AGENT_COALESCE_NS : 0;
    if (n == 0)
        return;
    agent_exec_read (e, (size_t)n, lss_time_mono_ms ());
    e->total[stream] += n;
    int64_t room = e->max_output - e->kept[stream];
    size_t keep = room <= 0 ? 0 : (room < n ? (size_t)room : (size_t)n);
    if (keep < (size_t)n)
        e->truncated[stream] = true; /* read and dropped so the program is never stuck */
    if (keep == 0)
        return;
    e->kept[stream] += (int64_t)keep;
    if (e->flow)
        e->credit -= (int64_t)keep;
    s_send_output (self, e, stream, s_chunk, keep);
}

static void s_reap (s_agent_t *self)
{
    for (;;) {
        siginfo_t info = {0};
        if (waitid (P_ALL, 0, &info, WEXITED | WNOHANG | WNOWAIT) || info.si_pid == 0)
            return;
        pid_t pid = info.si_pid;
        agent_exec_t *owner = NULL;
        for (size_t i = 0; i < self->nexec && !owner; i++)
            if (self->execs[i]->pid == pid && !self->execs[i]->exited)
                owner = self->execs[i];
        int status;
        struct rusage ru;
        if (wait4 (pid, &status, 0, &ru) != pid)
            return;
        if (owner)
            agent_exec_exited (owner, status, &ru, lss_time_mono_ms ());
    }
}

/* ------------------------------------------------------------------ usage */
static void s_usage (s_agent_t *self, const lss_agent_health_t *req, lss_agent_usage_t *u)
{
    /* Sum over the agent and its descendants (everything, when it is the sandbox's PID 1). */
    typedef struct {
        int pid, ppid;
        long long cpu_ticks, rss_pages;
    } proc_t;
    enum { MAX_PROCS = 4096 };
    proc_t *procs = calloc (MAX_PROCS, sizeof *procs);
    size_t n = 0;
    DIR *d = opendir ("/proc");
    struct dirent *de;
    while (procs && d && n < MAX_PROCS && (de = readdir (d))) {
        if (de->d_name[0] < '1' || de->d_name[0] > '9')
            continue;
        char path[300], buf[1024];
        snprintf (path, sizeof path, "/proc/%s/stat", de->d_name);
        FILE *f = fopen (path, "re");
        if (!f)
            continue;
        size_t r = fread (buf, 1, sizeof buf - 1, f);
        fclose (f);
        buf[r] = '\0';
        char *close_paren = strrchr (buf, ')');
        if (!close_paren)
            continue;
        proc_t p = {.pid = (int)strtol (de->d_name, NULL, 10)};
        unsigned long ut = 0, st = 0;
        long rss = 0;
        if (sscanf (close_paren + 2,
                    "%*c %d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu %*d %*d %*d %*d %*d "
                    "%*d %*u %*u %ld",
                    &p.ppid, &ut, &st, &rss) != 4)
            continue;
        p.cpu_ticks = (long long)(ut + st);
        p.rss_pages = rss;
        procs[n++] = p;
    }
    if (d)
        closedir (d);
    int me = getpid ();
    long long ticks = 0, pages = 0, count = 0;
    for (size_t i = 0; procs && i < n; i++) {
        /* follow parents up to the agent (bounded walk) */
        int cur = procs[i].pid;
        bool ours = false;
        for (int hops = 0; hops < 64 && cur > 0 && !ours; hops++) {
            if (cur == me) {
                ours = true;
                break;
            }
            int parent = 0;
            for (size_t k = 0; k < n; k++)
                if (procs[k].pid == cur) {
                    parent = procs[k].ppid;
                    break;
                }
            cur = parent;
        }
        if (ours) {
            ticks += procs[i].cpu_ticks;
            pages += procs[i].rss_pages;
            count++;
        }
    }
    free (procs);
    long hz = sysconf (_SC_CLK_TCK);
    u->uptime_ms = lss_time_mono_ms () - self->started_ms;
    u->cpu_ms = hz > 0 ? ticks * 1000 / hz : 0;
    u->memory_bytes = pages * sysconf (_SC_PAGESIZE);
    u->processes = count;
    u->executions = (int64_t)self->nexec;
    u->disk_bytes =
        req->disk ? agent_files_disk_usage (self->files, 0, AGENT_USAGE_MAX_ENTRIES) : 0;
}

/* ------------------------------------------------------------------ dispatch */
static void s_dispatch (s_agent_t *self, const lss_envelope_t *env, lss_msg_kind_t kind,
                        void *body)
{
    self->req_id = env->id;
    switch (kind) {
    case LSS_MSG_exec_start:
        s_exec_start (self, body);
        return;
    case LSS_MSG_exec_stdin: {
        lss_exec_stdin_t *m = body;
        agent_exec_t *e = s_find_exec (self, m->exec_id);
        if (!e)
            s_reply_error (self, "not_found", "no such execution", m->exec_id);
        else if (agent_exec_stdin (e, m->data.data, m->data.len, m->eof))
            s_reply_error (self, "limit_exceeded", "stdin is closed or its buffer is full",
                           m->exec_id);
        else
            agent_exec_flush_stdin (e);
        return;
    }
    case LSS_MSG_exec_cancel: {
        lss_exec_cancel_t *m = body;
        agent_exec_t *e = s_find_exec (self, m->exec_id);
        if (!e)
            s_reply_error (self, "not_found", "no such execution", m->exec_id);
        else if (!e->exited) {
            e->cancelled = true;
            agent_exec_kill (e);
        }
        return;
    }
    case LSS_MSG_exec_credit: {
        lss_exec_credit_t *m = body;
        agent_exec_t *e = s_find_exec (self, m->exec_id);
        if (!e)
            s_reply_error (self, "not_found", "no such execution", m->exec_id);
        else if (m->bytes <= 0 || m->bytes > (1ll << 40))
            s_reply_error (self, "invalid_request", "credit must be 1..2^40 bytes", m->exec_id);
        else
            agent_exec_grant (e, m->bytes, lss_time_mono_ms ());
        return;
    }
    case LSS_MSG_file_list:
    case LSS_MSG_file_stat:
    case LSS_MSG_file_read:
    case LSS_MSG_file_write:
    case LSS_MSG_file_delete:
    case LSS_MSG_file_mkdir: {
        lss_msg_kind_t rk;
        void *rep;
        agent_err_t err = {0};
        if (agent_files_handle (self->files, env->id, kind, body, &rk, &rep, &err))
            s_reply_error (self, err.code, err.message, NULL);
        else {
            s_reply (self, rk, rep);
            lss_proto_body_free (rk, &rep);
        }
        return;
    }
    case LSS_MSG_agent_ping: {
        lss_agent_pong_t pong = {.ref = (char *)env->id,
                                 .nonce = ((lss_agent_ping_t *)body)->nonce};
        s_reply (self, LSS_MSG_agent_pong, &pong);
        return;
    }
    case LSS_MSG_agent_health: {
        lss_agent_usage_t u = {.ref = (char *)env->id};
        s_usage (self, body, &u);
        s_reply (self, LSS_MSG_agent_usage, &u);
        return;
    }
    case LSS_MSG_NONE: {
        char msg[128];
        snprintf (msg, sizeof msg, "unknown message type '%s'", env->type);
        s_reply_error (self, "unknown_type", msg, NULL);
        return;
    }
    default: {
        char msg[128];
        snprintf (msg, sizeof msg, "'%s' is not a request the agent serves", env->type);
        s_reply_error (self, "invalid_request", msg, NULL);
        return;
    }
    }
}

static void s_handle_socket (s_agent_t *self)
{
    /* Batch: take what is queued, up to a bound, before polling again. */
    for (int i = 0; i < 64; i++) {
        int events = zsock_events (self->sock);
        if (!(events & ZMQ_POLLIN))
            return;
        zframe_t *route = NULL;
        lss_envelope_t env;
        lss_msg_kind_t kind;
        void *body = NULL;
        char err[256] = "";
        int rc =
            lss_bus_recv (self->sock, &route, NULL, 0, &env, &kind, &body, err, sizeof err);
        if (rc == -1)
            return;
        if (!route || zframe_size (route) > AGENT_OWNER_MAX) {
            zframe_destroy (&route);
            lss_proto_body_free (kind, &body);
            continue;
        }
        self->route = zframe_data (route);
        self->route_len = zframe_size (route);
        self->req_id = NULL;
        if (!s_peer_touch (self, lss_time_mono_ms ()))
            s_reply_error (self, "busy", "too many requesters", NULL);
        else if (rc == -2) {
            lss_log_warn ("malformed request", "{s:s}", "error", err);
            s_reply_error (self, "invalid_message", err, NULL);
        } else
            s_dispatch (self, &env, kind, body);
        lss_proto_body_free (kind, &body);
        zframe_destroy (&route);
        self->route = NULL;
    }
}

static void s_handle_signals (s_agent_t *self)
{
    struct signalfd_siginfo si;
    while (read (self->sigfd, &si, sizeof si) == (ssize_t)sizeof si) {
        if (si.ssi_signo == SIGCHLD)
            s_reap (self);
        else {
            if (!self->stopping)
                lss_log_info ("stopping", "{s:i}", "signal", (int)si.ssi_signo);
            self->stopping = true;
        }
    }
}

/* Deadlines, lost requesters, finished executions. Returns ms until the next timer. */
static int64_t s_timers (s_agent_t *self)
{
    int64_t now = lss_time_mono_ms (), now_ns = lss_time_mono_ns (), next = 1000;
    for (size_t i = 0; i < self->nexec;) {
        agent_exec_t *e = self->execs[i];
        if (e->pending.len > 0 &&
            s_send_to (self, e->owner, e->owner_len, LSS_MSG_exec_output,
                       &(lss_exec_output_t){
                           .exec_id = e->id,
                           .stream = e->pending_stream == AGENT_STDOUT ? "stdout" : "stderr",
                           .seq = e->seq + 1,
                           .data = {e->pending.data, e->pending.len}}) == 0) {
            e->seq++;
            lss_buf_reset (&e->pending);
        }
        if (e->pending.len > 0)
            next = 5; /* retry soon */
        if (!e->exited && now >= e->deadline_ms && !e->timed_out) {
            e->timed_out = true;
            agent_exec_kill (e);
            lss_log_info ("execution deadline passed", "{s:s}", "exec_id", e->id);
        }
        int64_t seen = s_peer_last_seen (self, e);
        if (!e->exited && !e->cancelled && now - seen > self->conf->requester_timeout_ms) {
            e->cancelled = true;
            agent_exec_kill (e);
            lss_log_warn ("requester silent: execution killed", "{s:s, s:I}", "exec_id", e->id,
                          "silent_ms", (json_int_t)(now - seen));
        }
        if (agent_exec_finished (e, now)) {
            s_end_exec (self, i, NULL);
            continue;
        }
        if (!e->exited && e->deadline_ms - now < next)
            next = e->deadline_ms - now;
        if (!e->exited && !e->cancelled &&
            seen + self->conf->requester_timeout_ms - now + 1 < next)
            next = seen + self->conf->requester_timeout_ms - now + 1;
        if (e->exited && e->drain_until_ms - now < next)
            next = e->drain_until_ms - now;
        for (int s = AGENT_STDOUT; s <= AGENT_STDERR && !e->exited; s++)
            if (e->fd[s] >= 0 && e->hold_ns[s]) {
                int64_t left = (e->hold_ns[s] - now_ns + 999999) / 1000000;
                if (left < next)
                    next = left;
            }
        i++;
    }
    return next < 0 ? 0 : next;
}

int agent_server_run (const agent_conf_t *conf)
{
    s_agent_t self = {.conf = conf, .sigfd = -1, .started_ms = lss_time_mono_ms ()};
    agent_err_t ferr = {0};
    int rc = 1;
    self.files = agent_files_new (conf->roots, conf->root_count, &ferr);
    if (!self.files) {
        lss_log_error ("cannot open file roots", "{s:s}", "error", ferr.message);
        return 1;
    }
    if (getpid () != 1)
        prctl (PR_SET_CHILD_SUBREAPER, 1); /* orphans of executions come back to us */
    sigset_t mask;
    sigemptyset (&mask);
    sigaddset (&mask, SIGCHLD);
    sigaddset (&mask, SIGTERM);
    sigaddset (&mask, SIGINT);
    sigaddset (&mask, SIGHUP);
    self.sigfd = signalfd (-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
    /* CURVE: the ZAP handler and the server keys before the bind */
    char cerr[128] = "";
    if (conf->curve_secret[0]) {
        self.zap = lss_curve_zap_new (conf->curve_clients, conf->curve_client_count, cerr,
                                      sizeof cerr);
        if (!self.zap) {
            lss_log_error ("CURVE not set up", "{s:s}", "error", cerr);
            goto cleanup;
        }
    }
    self.sock = self.sigfd >= 0 ? lss_bus_socket_new (ZMQ_ROUTER, NULL, &conf->bus) : NULL;
    if (self.sock && conf->curve_secret[0] &&
        lss_curve_server_apply (self.sock, conf->curve_secret, cerr, sizeof cerr)) {
        lss_log_error ("CURVE not set up", "{s:s}", "error", cerr);
        zsock_destroy (&self.sock);
    }
    if (self.sock && zsock_bind (self.sock, "%s", conf->endpoint) < 0)
        zsock_destroy (&self.sock);
    if (!self.sock) {
        lss_log_error ("cannot bind the agent endpoint", "{s:s}", "endpoint", conf->endpoint);
        goto cleanup;
    }
    if (strncmp (conf->endpoint, "ipc://", 6) == 0)
        chmod (conf->endpoint + 6, 0600); /* only the sandbox's user (and root) may connect */
    lss_log_info ("agent ready", "{s:s, s:i}", "endpoint", conf->endpoint, "pid",
                  (int)getpid ());
    printf ("ready %s\n", conf->endpoint); /* for whoever started us and reads stdout */
    fflush (stdout);

    zmq_pollitem_t items[2 + 3 * AGENT_MAX_EXECS_CAP];
    agent_exec_t *owners[2 + 3 * AGENT_MAX_EXECS_CAP];
    int streams[2 + 3 * AGENT_MAX_EXECS_CAP];
    while (!self.stopping) {
        int64_t wait_ms = s_timers (&self);
        int64_t now_ns = lss_time_mono_ns ();
        size_t n = 0;
        items[n++] = (zmq_pollitem_t){zsock_resolve (self.sock), 0, ZMQ_POLLIN, 0};
        items[n++] = (zmq_pollitem_t){NULL, self.sigfd, ZMQ_POLLIN, 0};
        for (size_t i = 0; i < self.nexec; i++) {
            agent_exec_t *e = self.execs[i];
            bool can_read = e->pending.len == 0 && (!e->flow || e->credit > 0);
            for (int s = AGENT_STDOUT; s <= AGENT_STDERR; s++)
                if (e->fd[s] >= 0 && can_read && (e->exited || now_ns >= e->hold_ns[s])) {
                    owners[n] = e;
                    streams[n] = s;
                    items[n++] = (zmq_pollitem_t){NULL, e->fd[s], ZMQ_POLLIN, 0};
                }
            if (e->fd[AGENT_STDIN] >= 0 && (e->in.len > 0 || e->in_eof)) {
                owners[n] = e;
                streams[n] = AGENT_STDIN;
                items[n++] = (zmq_pollitem_t){NULL, e->fd[AGENT_STDIN], ZMQ_POLLOUT, 0};
            }
        }
        int ready = zmq_poll (items, (int)n, (long)wait_ms);
        if (ready < 0 && errno != EINTR) {
            lss_log_error ("poll failed", "{s:s}", "error", zmq_strerror (errno));
            goto cleanup;
        }
        if (items[1].revents)
            s_handle_signals (&self);
        for (size_t i = 2; i < n; i++) {
            if (!items[i].revents)
                continue;
            if (streams[i] == AGENT_STDIN)
                agent_exec_flush_stdin (owners[i]);
            else if (owners[i]->fd[streams[i]] >= 0)
                s_read_output (&self, owners[i], streams[i]);
        }
        if (items[0].revents)
            s_handle_socket (&self);
    }
    rc = 0;
cleanup:
    while (self.nexec > 0) {
        agent_exec_t *e = self.execs[self.nexec - 1];
        e->cancelled = true;
        agent_exec_kill (e);
        if (self.sock)
            s_end_exec (&self, self.nexec - 1, "the agent is stopping");
        else {
            agent_exec_release (e);
            free (e);
            self.nexec--;
        }
    }
    zsock_destroy (&self.sock);
    zactor_destroy (&self.zap);
    if (self.sigfd >= 0)
        close (self.sigfd);
    agent_files_destroy (&self.files);
    return rc;
}
