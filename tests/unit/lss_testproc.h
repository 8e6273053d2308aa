/*  lss_testproc — spawning real child processes in tests and reading their output with
 *  deadlines (header-only: each test binary is one translation unit).
 *
 *  tp_spawn starts argv with stdout (and optionally stderr) on a pipe; tp_read_line
 *  waits for one line with a deadline; tp_wait reaps with a deadline and kills on expiry.
 *  Programs are found under $LSS_BUILD_DIR (set by scripts/run-tests), else next to the
 *  test binary's build tree.
 */
#ifndef LSS_TESTPROC_H
#define LSS_TESTPROC_H

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

typedef struct {
    pid_t pid;
    int out_fd; /* child's stdout (read end), -1 if not captured */
    char buf[65536];
    size_t len;
} tp_proc_t;

static inline long long tp_now_ms (void)
{
    struct timespec ts;
    clock_gettime (CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Path of a built program: tp_build_path(out, "bin/lss") → $LSS_BUILD_DIR/bin/lss. */
static inline const char *tp_build_path (char *out, size_t size, const char *rel)
{
    const char *dir = getenv ("LSS_BUILD_DIR");
    snprintf (out, size, "%s/%s", dir && *dir ? dir : "build", rel);
    return out;
}

/* Spawns argv (argv[0] is a path). envp NULL = inherit. Returns 0 or -1. */
static inline int tp_spawn (tp_proc_t *p, char *const argv[], char *const envp[], bool capture)
{
    memset (p, 0, sizeof *p);
    p->out_fd = -1;
    int fds[2] = {-1, -1};
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init (&fa);
    if (capture) {
        if (pipe2 (fds, O_CLOEXEC))
            return -1;
        posix_spawn_file_actions_adddup2 (&fa, fds[1], 1);
    }
    int rc = posix_spawn (&p->pid, argv[0], &fa, NULL, argv, envp ? envp : environ);
    posix_spawn_file_actions_destroy (&fa);
    if (capture) {
        close (fds[1]);
        p->out_fd = fds[0];
        fcntl (p->out_fd, F_SETFL, O_NONBLOCK);
    }
    return rc == 0 ? 0 : -1;
}

/* Reads one line (without '\n') into line within timeout_ms. Returns 0, -1 on timeout
 * or EOF (line then holds what was read). */
static inline int tp_read_line (tp_proc_t *p, char *line, size_t size, int timeout_ms)
{
    long long deadline = tp_now_ms () + timeout_ms;
    for (;;) {
        char *nl = memchr (p->buf, '\n', p->len);
        if (nl) {
            size_t n = (size_t)(nl - p->buf);
            size_t copy = n < size - 1 ? n : size - 1;
            memcpy (line, p->buf, copy);
            line[copy] = '\0';
            memmove (p->buf, nl + 1, p->len - n - 1);
            p->len -= n + 1;
            return 0;
        }
        long long left = deadline - tp_now_ms ();
        if (left <= 0 || p->len == sizeof p->buf)
            break;
        struct pollfd pfd = {p->out_fd, POLLIN, 0};
        if (poll (&pfd, 1, (int)left) <= 0)
            continue;
        ssize_t r = read (p->out_fd, p->buf + p->len, sizeof p->buf - p->len);
        if (r == 0)
            break;
        if (r > 0)
            p->len += (size_t)r;
        else if (errno != EAGAIN && errno != EINTR)
            break;
    }
    size_t copy = p->len < size - 1 ? p->len : size - 1;
    memcpy (line, p->buf, copy);
    line[copy] = '\0';
    return -1;
}

/* Waits up to timeout_ms for exit; kills (SIGKILL) on expiry. Returns the wait status,
 * or -1 if it had to be killed. */
static inline int tp_wait (tp_proc_t *p, int timeout_ms)
{
    long long deadline = tp_now_ms () + timeout_ms;
    int status = 0;
    while (p->pid > 0) {
        pid_t r = waitpid (p->pid, &status, WNOHANG);
        if (r == p->pid) {
            p->pid = 0;
            break;
        }
        if (tp_now_ms () >= deadline) {
            kill (p->pid, SIGKILL);
            waitpid (p->pid, &status, 0);
            p->pid = 0;
            status = -1;
            break;
        }
        struct timespec ts = {0, 2 * 1000 * 1000};
        nanosleep (&ts, NULL); /* reap poll: a bounded wait, not synchronisation */
    }
    if (p->out_fd >= 0) {
        close (p->out_fd);
        p->out_fd = -1;
    }
    return status;
}

static inline void tp_kill (tp_proc_t *p)
{
    if (p->pid > 0)
        kill (p->pid, SIGKILL);
    tp_wait (p, 5000);
}

/*  True when this host can run sandboxes: root and `lss sandbox preflight` passes (its
 *  output is read and dropped). Tests and benchmarks that need sandboxes skip otherwise. */
static inline bool tp_sandboxes_work (void)
{
    char lss[PATH_MAX];
    tp_build_path (lss, sizeof lss, "bin/lss");
    char *argv[] = {lss, (char *)"sandbox", (char *)"preflight", NULL};
    tp_proc_t p;
    if (geteuid () != 0 || tp_spawn (&p, argv, NULL, true) != 0)
        return false;
    char line[512];
    while (tp_read_line (&p, line, sizeof line, 20000) == 0)
        ;
    return tp_wait (&p, 20000) == 0;
}

/*  A TCP port on 127.0.0.1 that was free a moment ago (bound to port 0 and released),
 *  or -1. Another process can take it meanwhile: callers retry or fail clearly. */
static inline int tp_free_port (void)
{
    int fd = socket (AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET};
    a.sin_addr.s_addr = htonl (INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    int port = -1;
    if (fd >= 0 && bind (fd, (struct sockaddr *)&a, sizeof a) == 0 &&
        getsockname (fd, (struct sockaddr *)&a, &len) == 0)
        port = ntohs (a.sin_port);
    if (fd >= 0)
        close (fd);
    return port;
}

#endif
