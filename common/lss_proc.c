/*  lss_proc — fork/exec with a supervisor's options, and run-to-completion. See lss_proc.h.
 *
 *  Everything the child needs (the /dev/null descriptor, the descriptor limit) is
 *  prepared before fork; after fork only async-signal-safe calls are made, and a failure
 *  is reported to the parent as {step, errno} on a close-on-exec pipe.
 */
#include "lss_proc.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/pidfd.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "lss_util.h"

extern char **environ;

#define S_FD_SCAN_MAX  65536 /* descriptors marked close-on-exec when close_range fails */
#define S_READ_CHUNK   4096
#define S_WAIT_TICK_MS 10 /* waitpid polling only when pidfd_open is unavailable */

/* Steps of the child, reported with errno when one fails. */
enum { S_STEP_SESSION = 1, S_STEP_STDIO, S_STEP_CWD, S_STEP_IDS, S_STEP_DEATHSIG, S_STEP_EXEC };

static const char *s_step_name (int step)
{
    switch (step) {
    case S_STEP_SESSION:
        return "setsid";
    case S_STEP_STDIO:
        return "redirecting stdio";
    case S_STEP_CWD:
        return "chdir";
    case S_STEP_IDS:
        return "dropping to uid/gid";
    case S_STEP_DEATHSIG:
        return "parent-death signal";
    default:
        return "exec";
    }
}

static void s_child_fail (int pipe_fd, int step)
{
    int report[2] = {step, errno};
    ssize_t n = write (pipe_fd, report, sizeof report);
    (void)n;
    _exit (127);
}

/*  The child side: never returns. Only async-signal-safe calls. */
static void s_child (const lss_proc_opts_t *o, int devnull, int pipe_fd, pid_t parent,
                     long fd_max)
{
    sigset_t none;
    sigemptyset (&none);
    sigprocmask (SIG_SETMASK, &none, NULL);
    for (int sig = 1; sig < NSIG; sig++) {
        struct sigaction sa;
        if (sig == SIGKILL || sig == SIGSTOP || sigaction (sig, NULL, &sa) != 0)
            continue;
        if (sa.sa_handler == SIG_IGN) {
            sa.sa_handler = SIG_DFL;
            sigaction (sig, &sa, NULL);
        }
    }
    if (o->new_session && setsid () < 0)
        s_child_fail (pipe_fd, S_STEP_SESSION);

    int src[3] = {o->stdin_fd >= 0 ? o->stdin_fd : devnull,
                  o->stdout_fd >= 0 ? o->stdout_fd : devnull,
                  o->stderr_fd >= 0 ? o->stderr_fd : devnull};
    /* move sources that sit on 0..2 out of the way first, so no dup2 clobbers another */
    for (int i = 0; i < 3; i++)
        if (src[i] < 3 && src[i] != i) {
            int moved = fcntl (src[i], F_DUPFD_CLOEXEC, 3);
            if (moved < 0)
                s_child_fail (pipe_fd, S_STEP_STDIO);
            for (int j = i + 1; j < 3; j++)
                if (src[j] == src[i])
                    src[j] = moved;
            src[i] = moved;
        }
    for (int i = 0; i < 3; i++) {
        if (src[i] == i) {
            if (fcntl (i, F_SETFD, 0) < 0)
                s_child_fail (pipe_fd, S_STEP_STDIO);
        } else if (dup2 (src[i], i) < 0)
            s_child_fail (pipe_fd, S_STEP_STDIO);
    }
    if (close_range (3, ~0U, CLOSE_RANGE_CLOEXEC) != 0)
        for (long fd = 3; fd < fd_max; fd++)
            if (fd != pipe_fd)
                fcntl ((int)fd, F_SETFD, FD_CLOEXEC);

    if (o->cwd && chdir (o->cwd) != 0)
        s_child_fail (pipe_fd, S_STEP_CWD);
    if (o->set_ids && (setgroups (0, NULL) != 0 || setresgid (o->gid, o->gid, o->gid) != 0 ||
                       setresuid (o->uid, o->uid, o->uid) != 0))
        s_child_fail (pipe_fd, S_STEP_IDS);
    /* after the id change: changing credentials clears the parent-death signal */
    if (o->death_signal) {
        if (prctl (PR_SET_PDEATHSIG, o->death_signal) != 0)
            s_child_fail (pipe_fd, S_STEP_DEATHSIG);
        if (getppid () != parent)
            _exit (1); /* the parent died before prctl took effect */
    }
    execve (o->argv[0], (char *const *)o->argv, o->envp ? (char *const *)o->envp : environ);
    s_child_fail (pipe_fd, S_STEP_EXEC);
}

int lss_proc_spawn (const lss_proc_opts_t *opts, pid_t *pid, char *err, size_t err_size)
{
    if (!opts || !opts->argv || !opts->argv[0] || opts->argv[0][0] != '/' || !pid) {
        lss_errf (err, err_size, "spawn: argv[0] must be an absolute path");
        return -1;
    }
    int devnull = open ("/dev/null", O_RDWR | O_CLOEXEC);
    if (devnull < 0) {
        lss_errf (err, err_size, "open /dev/null: %s", strerror (errno));
        return -1;
    }
    int fds[2];
    if (pipe2 (fds, O_CLOEXEC) != 0) {
        lss_errf (err, err_size, "pipe: %s", strerror (errno));
        close (devnull);
        return -1;
    }
    long fd_max = sysconf (_SC_OPEN_MAX);
    if (fd_max <= 0 || fd_max > S_FD_SCAN_MAX)
        fd_max = S_FD_SCAN_MAX;
    pid_t parent = getpid ();
    pid_t child = fork ();
    if (child < 0) {
        lss_errf (err, err_size, "fork: %s", strerror (errno));
        close (fds[0]);
        close (fds[1]);
        close (devnull);
        return -1;
    }
    if (child == 0) {
        close (fds[0]);
        s_child (opts, devnull, fds[1], parent, fd_max);
    }
    close (fds[1]);
    close (devnull);
    int report[2];
    ssize_t n;
    do
        n = read (fds[0], report, sizeof report);
    while (n < 0 && errno == EINTR);
    close (fds[0]);
    if (n == (ssize_t)sizeof report) {
        int status;
        while (waitpid (child, &status, 0) < 0 && errno == EINTR)
            ;
        lss_errf (err, err_size, "%s %s: %s", s_step_name (report[0]), opts->argv[0],
                  strerror (report[1]));
        return -1;
    }
    *pid = child; /* n == 0: exec succeeded (the pipe closed on exec) */
    return 0;
}

/*  Reaps pid within deadline_ms (monotonic); kills it (its group too when it leads one)
 *  when the deadline passes. Returns 0 with *wstatus, or -1 if it had to be killed. */
static int s_reap (pid_t pid, int pidfd, bool group, int64_t deadline_ms, int *wstatus)
{
    for (;;) {
        pid_t r = waitpid (pid, wstatus, WNOHANG);
        if (r == pid)
            return 0;
        if (r < 0 && errno != EINTR)
            return -1;
        int64_t left = deadline_ms - lss_time_mono_ms ();
        if (left <= 0)
            break;
        struct pollfd p = {.fd = pidfd, .events = POLLIN};
        poll (&p, pidfd >= 0 ? 1 : 0, pidfd >= 0 ? (int)left : S_WAIT_TICK_MS);
    }
    if (group)
        kill (-pid, SIGKILL);
    kill (pid, SIGKILL);
    while (waitpid (pid, wstatus, 0) < 0 && errno == EINTR)
        ;
    return -1;
}

int lss_proc_run (const lss_proc_opts_t *opts, int timeout_ms, char *out, size_t out_size,
                  int *wstatus, char *err, size_t err_size)
{
    if (!opts || !wstatus || (out && out_size == 0)) {
        lss_errf (err, err_size, "run: bad arguments");
        return -1;
    }
    lss_proc_opts_t o = *opts;
    int fds[2] = {-1, -1};
    if (out) {
        out[0] = '\0';
        if (pipe2 (fds, O_CLOEXEC) != 0) {
            lss_errf (err, err_size, "pipe: %s", strerror (errno));
            return -1;
        }
        o.stdout_fd = fds[1];
    }
    pid_t pid;
    int rc = lss_proc_spawn (&o, &pid, err, err_size);
    if (fds[1] >= 0)
        close (fds[1]);
    if (rc != 0) {
        if (fds[0] >= 0)
            close (fds[0]);
        return -1;
    }
    int64_t deadline = lss_time_mono_ms () + (timeout_ms > 0 ? timeout_ms : 0);
    int pidfd = pidfd_open (pid, 0);
    size_t len = 0;
    bool timed_out = false;
    while (fds[0] >= 0) {
        int64_t left = deadline - lss_time_mono_ms ();
        if (left <= 0) {
            timed_out = true;
            break;
        }
        struct pollfd p = {.fd = fds[0], .events = POLLIN};
        int pr = poll (&p, 1, (int)left);
        if (pr < 0 && errno == EINTR)
            continue;
        if (pr <= 0)
            continue;
        char chunk[S_READ_CHUNK];
        ssize_t n = read (fds[0], chunk, sizeof chunk);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break; /* EOF: the child (and anything holding its stdout) is done */
        size_t keep = (size_t)n;
        if (keep > out_size - 1 - len)
            keep = out_size - 1 - len;
        memcpy (out + len, chunk, keep);
        len += keep;
        out[len] = '\0';
    }
    if (fds[0] >= 0)
        close (fds[0]);
    rc = s_reap (pid, pidfd, o.new_session, timed_out ? 0 : deadline, wstatus);
    if (pidfd >= 0)
        close (pidfd);
    if (rc != 0 || timed_out) {
        lss_errf (err, err_size, "%s did not finish within %d ms (killed)", o.argv[0],
                  timeout_ms);
        return -1;
    }
    return 0;
}

char *lss_proc_describe (int wstatus, char *out, size_t out_size)
{
    if (WIFEXITED (wstatus))
        snprintf (out, out_size, "exited with code %d", WEXITSTATUS (wstatus));
    else if (WIFSIGNALED (wstatus)) {
        const char *name = sigabbrev_np (WTERMSIG (wstatus));
        snprintf (out, out_size, "killed by signal %d (SIG%s)%s", WTERMSIG (wstatus),
                  name ? name : "?", WCOREDUMP (wstatus) ? ", core dumped" : "");
    } else
        snprintf (out, out_size, "stopped (wait status %d)", wstatus);
    return out;
}
