/*  up_supervisor — runs lss up's processes the way a kubelet runs a pod's containers.
 *
 *  Design note: one thread, one poll loop (up_sup_turn) over a signalfd (SIGINT, SIGTERM,
 *  SIGHUP = stop requests; SIGCHLD = something exited), one output pipe per process and
 *  at most one readiness probe per process. Each process slot keeps its pipe for the
 *  whole run (the supervisor holds both ends), so output written by anything a process
 *  left behind (lss-node's detached sandbox monitors inherit its stderr) still lands in
 *  the log after a restart instead of on a broken pipe. Children are spawned in their own
 *  session (a terminal's Ctrl-C reaches only lss up, which then stops them in order),
 *  with their stop signal as parent-death signal (kill -9 of lss up still stops them).
 *  Exits are found by waitpid on each known pid (never -1: helpers like the sandbox
 *  runtime reap their own children). A process that exits while wanted is restarted
 *  after up_backoff_next; readiness is probed every 100 ms until ready, then every 2 s,
 *  and three failures in a row make a ready process not ready again. Every state change
 *  is one line on the output and a rewrite of the status file.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <poll.h>

#include "lss_proc.h"
#include "lss_util.h"
#include "sandbox_fs.h"
#include "up.h"

#define S_PROBE_FAST_MS    100  /* probe interval until ready */
#define S_PROBE_SLOW_MS    2000 /* probe interval once ready */
#define S_PROBE_TIMEOUT_MS 1000
#define S_PROBE_FAILURES   3 /* in a row: ready → not ready */
#define S_PIPE_BYTES       (256 * 1024)
#define S_READ_PER_TURN    (1024 * 1024) /* per process, so one chatty child cannot starve */
#define S_KILL_GRACE_MS    5000          /* after SIGKILL, before giving up on a process */
#define S_STATUS_MAX       (64 * 1024)
#define S_TAIL_BYTES       8192
#define S_INFO_MAX         8

typedef enum { S_IDLE = 0, S_RUNNING, S_BACKOFF, S_STOPPED } s_state_t;

typedef struct {
    up_spec_t spec;
    s_state_t state;
    bool wanted;
    pid_t pid;
    int pipe_rd, pipe_wr;
    up_logfile_t log;
    int64_t started_ms;
    int64_t restart_at_ms;
    int64_t backoff_ms;
    int restarts;
    bool ready;
    int admin_port;
    up_probe_t *probe;
    int64_t next_probe_ms;
    int probe_failures;
    int64_t kill_at_ms; /* stopping: SIGKILL then (0 = not stopping) */
    int64_t give_up_ms; /* after SIGKILL */
    char last_exit[LSS_PROC_DESCRIBE_SIZE];
} s_proc_t;

struct _up_sup_t {
    FILE *out;
    bool quiet;
    char status_path[UP_PATH_MAX];
    s_proc_t procs[UP_PROCS_MAX];
    int count;
    int sigfd;
    sigset_t old_mask;
    int stop_requests;
    bool status_dirty;
    struct {
        char key[32];
        char value[UP_PATH_MAX];
    } info[S_INFO_MAX];
    int info_count;
};

int64_t up_backoff_next (int64_t prev_ms, int64_t uptime_ms)
{
    if (prev_ms <= 0 || uptime_ms >= UP_BACKOFF_RESET_MS)
        return UP_BACKOFF_FIRST_MS;
    return prev_ms >= UP_BACKOFF_MAX_MS / 2 ? UP_BACKOFF_MAX_MS : prev_ms * 2;
}

/* ------------------------------------------------------------------ output */

static void s_vsay (up_sup_t *self, const char *name, const char *fmt, va_list ap)
{
    struct timespec ts;
    clock_gettime (CLOCK_REALTIME, &ts);
    struct tm tm;
    localtime_r (&ts.tv_sec, &tm);
    char stamp[16];
    strftime (stamp, sizeof stamp, "%H:%M:%S", &tm);
    char text[1024];
    vsnprintf (text, sizeof text, fmt, ap);
    fprintf (self->out, "%s.%03ld %-10s %s\n", stamp, ts.tv_nsec / 1000000,
             name ? name : "lss-up", text);
    fflush (self->out);
}

void up_sup_say (up_sup_t *self, const char *fmt, ...)
{
    va_list ap;
    va_start (ap, fmt);
    s_vsay (self, NULL, fmt, ap);
    va_end (ap);
}

/*  A state change of process p: printed unless quiet and minor; always marks the status
 *  file for rewrite. */
static void s_event (up_sup_t *self, s_proc_t *p, bool minor, const char *fmt, ...)
    __attribute__ ((format (printf, 4, 5)));

static void s_event (up_sup_t *self, s_proc_t *p, bool minor, const char *fmt, ...)
{
    self->status_dirty = true;
    if (minor && self->quiet)
        return;
    va_list ap;
    va_start (ap, fmt);
    s_vsay (self, p->spec.name, fmt, ap);
    va_end (ap);
}

static const char *s_state_name (const s_proc_t *p)
{
    switch (p->state) {
    case S_RUNNING:
        return p->ready ? "ready" : "starting";
    case S_BACKOFF:
        return "restarting";
    case S_STOPPED:
        return "stopped";
    default:
        return "idle";
    }
}

static void s_write_status (up_sup_t *self)
{
    if (!self->status_dirty || !self->status_path[0])
        return;
    self->status_dirty = false;
    json_t *root = json_pack ("{s:I}", "pid", (json_int_t)getpid ());
    json_t *procs = json_object ();
    if (!root || !procs) {
        json_decref (root);
        json_decref (procs);
        return;
    }
    for (int i = 0; i < self->info_count; i++)
        json_object_set_new (root, self->info[i].key, json_string (self->info[i].value));
    for (int i = 0; i < self->count; i++) {
        s_proc_t *p = &self->procs[i];
        json_t *o = json_pack ("{s:s, s:I, s:i, s:s, s:s}", "state", s_state_name (p), "pid",
                               (json_int_t)(p->state == S_RUNNING ? p->pid : 0), "restarts",
                               p->restarts, "log", p->spec.log_path, "last_exit", p->last_exit);
        if (o && p->admin_port > 0)
            json_object_set_new (o, "admin_port", json_integer (p->admin_port));
        if (o)
            json_object_set_new (procs, p->spec.name, o);
    }
    json_object_set_new (root, "processes", procs);
    char *text = json_dumps (root, JSON_INDENT (2));
    json_decref (root);
    if (text && strlen (text) < S_STATUS_MAX)
        lss_sandbox_fs_write_atomic (self->status_path, text, strlen (text), 0644);
    free (text);
}

void up_sup_set_info (up_sup_t *self, const char *key, const char *value)
{
    for (int i = 0; i < self->info_count; i++)
        if (strcmp (self->info[i].key, key) == 0) {
            snprintf (self->info[i].value, sizeof self->info[i].value, "%s", value);
            self->status_dirty = true;
            return;
        }
    if (self->info_count == S_INFO_MAX)
        return;
    snprintf (self->info[self->info_count].key, sizeof self->info[0].key, "%s", key);
    snprintf (self->info[self->info_count].value, sizeof self->info[0].value, "%s", value);
    self->info_count++;
    self->status_dirty = true;
}

/* ------------------------------------------------------------------ lifecycle */

up_sup_t *up_sup_new (FILE *out, bool quiet, const char *status_path)
{
    up_sup_t *self = calloc (1, sizeof *self);
    if (!self)
        return NULL;
    self->out = out;
    self->quiet = quiet;
    snprintf (self->status_path, sizeof self->status_path, "%s",
              status_path ? status_path : "");
    sigset_t set;
    sigemptyset (&set);
    sigaddset (&set, SIGINT);
    sigaddset (&set, SIGTERM);
    sigaddset (&set, SIGHUP);
    sigaddset (&set, SIGCHLD);
    /* an inherited "ignore" (e.g. `trap '' INT`, nohup) would discard them before the
     * signalfd sees them */
    signal (SIGINT, SIG_DFL);
    signal (SIGTERM, SIG_DFL);
    signal (SIGHUP, SIG_DFL);
    signal (SIGCHLD, SIG_DFL);
    /* a closed stdout (the terminal went away, `| head`) must not kill the supervisor and
     * leave the system half stopped; children get SIGPIPE back (lss_proc resets it) */
    signal (SIGPIPE, SIG_IGN);
    if (sigprocmask (SIG_BLOCK, &set, &self->old_mask) != 0) {
        free (self);
        return NULL;
    }
    self->sigfd = signalfd (-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
    if (self->sigfd < 0) {
        sigprocmask (SIG_SETMASK, &self->old_mask, NULL);
        free (self);
        return NULL;
    }
    return self;
}

void up_sup_destroy (up_sup_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    up_sup_t *self = *self_p;
    for (int i = 0; i < self->count; i++) {
        s_proc_t *p = &self->procs[i];
        up_probe_destroy (&p->probe);
        up_logfile_close (&p->log);
        if (p->pipe_rd >= 0)
            close (p->pipe_rd);
        if (p->pipe_wr >= 0)
            close (p->pipe_wr);
        up_spec_clear (&p->spec);
    }
    close (self->sigfd);
    sigprocmask (SIG_SETMASK, &self->old_mask, NULL);
    if (self->status_path[0])
        unlink (self->status_path);
    free (self);
    *self_p = NULL;
}

int up_sup_add (up_sup_t *self, up_spec_t *spec)
{
    if (self->count == UP_PROCS_MAX)
        return -1;
    s_proc_t *p = &self->procs[self->count];
    memset (p, 0, sizeof *p);
    p->pipe_rd = p->pipe_wr = -1;
    if (up_logfile_open (&p->log, spec->log_path, UP_LOG_MAX_BYTES) != 0)
        return -1;
    int fds[2];
    if (pipe2 (fds, O_CLOEXEC) != 0) {
        up_logfile_close (&p->log);
        return -1;
    }
    fcntl (fds[0], F_SETFL, O_NONBLOCK);
    fcntl (fds[0], F_SETPIPE_SZ, S_PIPE_BYTES); /* best effort */
    p->pipe_rd = fds[0];
    p->pipe_wr = fds[1];
    p->spec = *spec;
    memset (spec, 0, sizeof *spec);
    self->count++;
    self->status_dirty = true;
    return 0;
}

static void s_spawn (up_sup_t *self, s_proc_t *p)
{
    int64_t now = lss_time_mono_ms ();
    if (p->spec.probe == UP_PROBE_HTTP)
        unlink (p->spec.probe_target); /* the port file of the previous incarnation */
    p->admin_port = 0;
    p->ready = false;
    p->probe_failures = 0;
    up_probe_destroy (&p->probe);
    p->next_probe_ms = now;
    up_logfile_printf (&p->log, "--- lss up: starting %s (start %d)\n", p->spec.argv[0],
                       p->restarts + 1);
    lss_proc_opts_t o = {.argv = (const char *const *)p->spec.argv,
                         .envp = (const char *const *)p->spec.envp,
                         .stdin_fd = -1,
                         .stdout_fd = p->pipe_wr,
                         .stderr_fd = p->pipe_wr,
                         .cwd = p->spec.cwd[0] ? p->spec.cwd : NULL,
                         .new_session = true,
                         .set_ids = p->spec.set_ids,
                         .uid = p->spec.uid,
                         .gid = p->spec.gid,
                         .death_signal = p->spec.stop_signal};
    char err[256];
    if (lss_proc_spawn (&o, &p->pid, err, sizeof err) != 0) {
        p->pid = 0;
        p->backoff_ms = up_backoff_next (p->backoff_ms, 0);
        p->restart_at_ms = now + p->backoff_ms;
        p->state = S_BACKOFF;
        snprintf (p->last_exit, sizeof p->last_exit, "could not start");
        up_logfile_printf (&p->log, "--- lss up: could not start: %s\n", err);
        s_event (self, p, false, "could not start: %s; retrying in %.1f s", err,
                 (double)p->backoff_ms / 1000.0);
        return;
    }
    p->state = S_RUNNING;
    p->started_ms = now;
    s_event (self, p, true, "started (pid %d)", (int)p->pid);
}

void up_sup_start (up_sup_t *self, up_group_t group)
{
    for (int i = 0; i < self->count; i++) {
        s_proc_t *p = &self->procs[i];
        if (p->spec.group != group || p->wanted)
            continue;
        p->wanted = true;
        p->backoff_ms = 0;
        if (p->state != S_RUNNING)
            s_spawn (self, p);
    }
    s_write_status (self);
}

/* ------------------------------------------------------------------ the loop */

static void s_drain (s_proc_t *p)
{
    char chunk[65536];
    size_t total = 0;
    while (total < S_READ_PER_TURN) {
        ssize_t n = read (p->pipe_rd, chunk, sizeof chunk);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        up_logfile_write (&p->log, chunk, (size_t)n);
        total += (size_t)n;
    }
}

static void s_exited (up_sup_t *self, s_proc_t *p, int wstatus)
{
    int64_t now = lss_time_mono_ms ();
    s_drain (p); /* its last words first */
    lss_proc_describe (wstatus, p->last_exit, sizeof p->last_exit);
    up_logfile_printf (&p->log, "--- lss up: %s %s\n", p->spec.name, p->last_exit);
    p->pid = 0;
    p->ready = false;
    up_probe_destroy (&p->probe);
    if (p->wanted) {
        p->backoff_ms = up_backoff_next (p->backoff_ms, now - p->started_ms);
        p->restart_at_ms = now + p->backoff_ms;
        p->state = S_BACKOFF;
        p->restarts++;
        s_event (self, p, false, "%s; restarting in %.1f s", p->last_exit,
                 (double)p->backoff_ms / 1000.0);
    } else {
        p->state = S_STOPPED;
        p->kill_at_ms = 0;
        s_event (self, p, true, "stopped: %s", p->last_exit);
    }
}

static void s_read_port (s_proc_t *p)
{
    char text[16];
    if (lss_sandbox_fs_read (p->spec.probe_target, text, sizeof text) <= 0)
        return;
    text[strcspn (text, "\n")] = '\0';
    int64_t port;
    if (lss_parse_int64 (text, 1, 65535, &port) == 0)
        p->admin_port = (int)port;
}

static void s_probe_done (up_sup_t *self, s_proc_t *p, up_probe_result_t r, int64_t now)
{
    if (r == UP_PROBE_OK) {
        p->probe_failures = 0;
        if (!p->ready) {
            p->ready = true;
            if (p->admin_port)
                s_event (self, p, true, "ready (admin http://127.0.0.1:%d)", p->admin_port);
            else
                s_event (self, p, true, "ready");
        }
    } else if (p->ready && ++p->probe_failures >= S_PROBE_FAILURES) {
        p->ready = false;
        s_event (self, p, false, "not ready: %s", up_probe_error (p->probe));
    }
    up_probe_destroy (&p->probe);
    p->next_probe_ms = now + (p->ready ? S_PROBE_SLOW_MS : S_PROBE_FAST_MS);
}

/*  Timers and probes of one process. */
static void s_tick (up_sup_t *self, s_proc_t *p, int64_t now)
{
    if (p->state == S_BACKOFF && p->wanted && now >= p->restart_at_ms)
        s_spawn (self, p);
    if (p->state != S_RUNNING)
        return;
    if (p->kill_at_ms) {
        if (p->give_up_ms == 0 && now >= p->kill_at_ms) {
            s_event (self, p, false, "did not stop within %.1f s: SIGKILL",
                     (double)p->spec.stop_timeout_ms / 1000.0);
            kill (-p->pid, SIGKILL);
            kill (p->pid, SIGKILL);
            p->give_up_ms = now + S_KILL_GRACE_MS;
        } else if (p->give_up_ms && now >= p->give_up_ms) {
            s_event (self, p, false, "pid %d survived SIGKILL; giving up on it", (int)p->pid);
            p->pid = 0;
            p->state = S_STOPPED;
        }
        return; /* no probing while stopping */
    }
    if (p->probe) {
        up_probe_result_t r = up_probe_step (p->probe);
        if (r != UP_PROBE_PENDING)
            s_probe_done (self, p, r, now);
        return;
    }
    if (now < p->next_probe_ms)
        return;
    if (p->spec.probe == UP_PROBE_HTTP) {
        if (!p->admin_port)
            s_read_port (p);
        if (!p->admin_port) {
            p->next_probe_ms = now + S_PROBE_FAST_MS;
            return;
        }
    }
    p->probe =
        up_probe_start (p->spec.probe, p->spec.probe_target, p->admin_port, S_PROBE_TIMEOUT_MS);
    if (p->probe) {
        up_probe_result_t r = up_probe_step (p->probe);
        if (r != UP_PROBE_PENDING)
            s_probe_done (self, p, r, now);
    }
}

static int64_t s_next_timer (const up_sup_t *self, int64_t now, int64_t limit)
{
    int64_t next = limit;
    for (int i = 0; i < self->count; i++) {
        const s_proc_t *p = &self->procs[i];
        int64_t t = limit;
        if (p->state == S_BACKOFF && p->wanted)
            t = p->restart_at_ms;
        else if (p->state == S_RUNNING && p->kill_at_ms)
            t = p->give_up_ms ? p->give_up_ms : p->kill_at_ms;
        else if (p->state == S_RUNNING && !p->probe)
            t = p->next_probe_ms;
        else if (p->state == S_RUNNING)
            t = now + S_PROBE_FAST_MS; /* a pending probe: check its deadline */
        if (t < next)
            next = t;
    }
    return next;
}

void up_sup_turn (up_sup_t *self, int timeout_ms)
{
    struct pollfd fds[1 + 2 * UP_PROCS_MAX];
    s_proc_t *owner[1 + 2 * UP_PROCS_MAX];
    int n = 0;
    fds[n] = (struct pollfd){.fd = self->sigfd, .events = POLLIN};
    owner[n++] = NULL;
    for (int i = 0; i < self->count; i++) {
        s_proc_t *p = &self->procs[i];
        fds[n] = (struct pollfd){.fd = p->pipe_rd, .events = POLLIN};
        owner[n++] = p;
        short ev;
        int pfd = p->probe ? up_probe_fd (p->probe, &ev) : -1;
        if (pfd >= 0) {
            fds[n] = (struct pollfd){.fd = pfd, .events = ev};
            owner[n++] = p;
        }
    }
    int64_t now = lss_time_mono_ms ();
    int64_t until = s_next_timer (self, now, now + (timeout_ms > 0 ? timeout_ms : 0));
    int wait = until > now ? (int)(until - now) : 0;
    int rc = poll (fds, (nfds_t)n, wait);
    if (rc < 0 && errno != EINTR)
        return;
    if (rc > 0 && (fds[0].revents & POLLIN)) {
        struct signalfd_siginfo si;
        while (read (self->sigfd, &si, sizeof si) == (ssize_t)sizeof si)
            if (si.ssi_signo != SIGCHLD) {
                self->stop_requests++;
                up_sup_say (self, "%s received%s", strsignal ((int)si.ssi_signo),
                            self->stop_requests > 1 ? " again" : "");
            }
    }
    for (int i = 1; rc > 0 && i < n; i++)
        if (fds[i].revents && fds[i].fd == owner[i]->pipe_rd)
            s_drain (owner[i]);
    now = lss_time_mono_ms ();
    for (int i = 0; i < self->count; i++) {
        s_proc_t *p = &self->procs[i];
        int wstatus;
        if (p->state == S_RUNNING && p->pid > 0 &&
            waitpid (p->pid, &wstatus, WNOHANG) == p->pid)
            s_exited (self, p, wstatus);
        s_tick (self, p, now);
    }
    s_write_status (self);
}

bool up_sup_ready (const up_sup_t *self, up_group_t group)
{
    for (int i = 0; i < self->count; i++) {
        const s_proc_t *p = &self->procs[i];
        if (p->spec.group == group && (p->state != S_RUNNING || !p->ready))
            return false;
    }
    return true;
}

void up_sup_not_ready (const up_sup_t *self, up_group_t group, char *out, size_t out_size)
{
    size_t at = 0;
    out[0] = '\0';
    for (int i = 0; i < self->count; i++) {
        const s_proc_t *p = &self->procs[i];
        if (p->spec.group != group || (p->state == S_RUNNING && p->ready))
            continue;
        int w = snprintf (out + at, out_size - at, "%s%s", at ? ", " : "", p->spec.name);
        if (w < 0 || (size_t)w >= out_size - at)
            break;
        at += (size_t)w;
    }
}

int up_sup_stop_requests (const up_sup_t *self)
{
    return self->stop_requests;
}

static bool s_any_running (const up_sup_t *self, up_group_t group)
{
    for (int i = 0; i < self->count; i++)
        if (self->procs[i].spec.group == group && self->procs[i].state == S_RUNNING)
            return true;
    return false;
}

void up_sup_stop (up_sup_t *self, up_group_t group)
{
    int64_t now = lss_time_mono_ms ();
    /* in reverse order of adding (the api before the watcher it listens to) */
    for (int i = self->count - 1; i >= 0; i--) {
        s_proc_t *p = &self->procs[i];
        if (p->spec.group != group)
            continue;
        p->wanted = false;
        up_probe_destroy (&p->probe);
        if (p->state == S_BACKOFF) {
            p->state = S_STOPPED;
            s_event (self, p, true, "stopped (was waiting to restart)");
        } else if (p->state == S_RUNNING && !p->kill_at_ms) {
            kill (p->pid, p->spec.stop_signal);
            p->kill_at_ms = now + p->spec.stop_timeout_ms;
            p->give_up_ms = 0;
            s_event (self, p, true, "stopping (SIG%s)", sigabbrev_np (p->spec.stop_signal));
        }
    }
    int seen = self->stop_requests;
    while (s_any_running (self, group)) {
        up_sup_turn (self, 200);
        if (self->stop_requests != seen) { /* asked again: no more waiting */
            seen = self->stop_requests;
            for (int i = 0; i < self->count; i++) {
                s_proc_t *p = &self->procs[i];
                if (p->spec.group == group && p->state == S_RUNNING && p->kill_at_ms &&
                    !p->give_up_ms)
                    p->kill_at_ms = lss_time_mono_ms ();
            }
        }
    }
    s_write_status (self);
}

void up_sup_print_log_tail (up_sup_t *self, const char *name, int lines)
{
    for (int i = 0; i < self->count; i++) {
        s_proc_t *p = &self->procs[i];
        if (strcmp (p->spec.name, name) != 0)
            continue;
        s_drain (p);
        int fd = open (p->spec.log_path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
            return;
        char buf[S_TAIL_BYTES + 1];
        off_t size = lseek (fd, 0, SEEK_END);
        off_t from = size > S_TAIL_BYTES ? size - S_TAIL_BYTES : 0;
        ssize_t n = pread (fd, buf, S_TAIL_BYTES, from);
        close (fd);
        if (n <= 0)
            return;
        buf[n] = '\0';
        const char *start = buf + n;
        int seen = 0;
        while (start > buf && seen <= lines)
            if (*--start == '\n')
                seen++;
        if (*start == '\n')
            start++;
        fprintf (self->out, "----- last lines of %s -----\n%s%s-----\n", p->spec.log_path,
                 start, buf[n - 1] == '\n' ? "" : "\n");
        fflush (self->out);
        return;
    }
}
