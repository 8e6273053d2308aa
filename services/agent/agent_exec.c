/*  agent_exec — spawning and accounting of one execution. See agent_exec.h. */
#include "agent_exec.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

#define AGENT_DRAIN_GRACE_MS 100       /* output still read after the leader exits */
#define AGENT_ENV_MAX        512       /* variables in a child's environment */
#define AGENT_PIPE_SIZE      (1 << 20) /* output pipe capacity asked of the kernel */

static const struct {
    const char *lang, *ext;
} s_exts[] = {{"python", ".py"}, {"python3", ".py"}, {"node", ".js"}, {"javascript", ".js"},
              {"bash", ".sh"},   {"sh", ".sh"},      {"ruby", ".rb"}, {"perl", ".pl"}};

int agent_exec_conf_add_interp (agent_exec_conf_t *conf, const char *spec)
{
    const char *eq = strchr (spec, '=');
    if (!eq || eq == spec || (size_t)(eq - spec) >= sizeof conf->interp[0].lang ||
        eq[1] != '/' || strlen (eq + 1) >= sizeof conf->interp[0].path)
        return -1;
    agent_interp_t it = {.ext = ""};
    memcpy (it.lang, spec, (size_t)(eq - spec));
    snprintf (it.path, sizeof it.path, "%s", eq + 1);
    for (size_t i = 0; i < sizeof s_exts / sizeof s_exts[0]; i++)
        if (strcmp (s_exts[i].lang, it.lang) == 0)
            snprintf (it.ext, sizeof it.ext, "%s", s_exts[i].ext);
    for (size_t i = 0; i < conf->interp_count; i++)
        if (strcmp (conf->interp[i].lang, it.lang) == 0) {
            conf->interp[i] = it; /* later flags override defaults */
            return 0;
        }
    if (conf->interp_count >= AGENT_MAX_INTERPRETERS)
        return -1;
    conf->interp[conf->interp_count++] = it;
    return 0;
}

void agent_exec_conf_default (agent_exec_conf_t *conf)
{
    memset (conf, 0, sizeof *conf);
    agent_exec_conf_add_interp (conf, "python=/usr/bin/python3");
    agent_exec_conf_add_interp (conf, "node=/usr/bin/node");
    agent_exec_conf_add_interp (conf, "bash=/bin/bash");
    agent_exec_conf_add_interp (conf, "sh=/bin/sh");
    conf->default_timeout_ms = 300000;
    conf->max_timeout_ms = 3600000;
    conf->default_max_output = 16 << 20;
    conf->max_output_cap = 1ll << 30;
    snprintf (conf->code_dir, sizeof conf->code_dir, "/tmp/.lss-exec");
    snprintf (conf->default_cwd, sizeof conf->default_cwd, "/workspace");
}

static const agent_interp_t *s_interp (const agent_exec_conf_t *conf, const char *lang)
{
    for (size_t i = 0; i < conf->interp_count; i++)
        if (strcmp (conf->interp[i].lang, lang) == 0)
            return &conf->interp[i];
    return NULL;
}

/* Builds the child's environment: ours (the sandbox's clean one) overridden by req->env. */
static char **s_build_env (const lss_strmap_t *extra, agent_err_t *err)
{
    size_t base = 0;
    while (environ[base])
        base++;
    if (base + extra->count + 1 > AGENT_ENV_MAX) {
        agent_err_set (err, "invalid_request", "too many environment variables (at most %d)",
                       AGENT_ENV_MAX);
        return NULL;
    }
    for (size_t i = 0; i < extra->count; i++) {
        const char *k = extra->keys[i];
        if (!*k || strchr (k, '=') || strlen (k) > 256) {
            agent_err_set (err, "invalid_request",
                           "environment variable name '%.64s' is invalid", k);
            return NULL;
        }
    }
    char **env = calloc (base + extra->count + 1, sizeof (char *));
    if (!env) {
        agent_err_set (err, "io_error", "out of memory");
        return NULL;
    }
    size_t n = 0;
    for (size_t i = 0; i < base; i++) {
        size_t klen = strcspn (environ[i], "=");
        bool overridden = false;
        for (size_t k = 0; k < extra->count && !overridden; k++)
            overridden = strlen (extra->keys[k]) == klen &&
                         memcmp (extra->keys[k], environ[i], klen) == 0;
        if (!overridden)
            env[n++] = strdup (environ[i]);
    }
    for (size_t k = 0; k < extra->count; k++)
        if (asprintf (&env[n++], "%s=%s", extra->keys[k], extra->values[k]) < 0)
            env[--n] = NULL;
    return env;
}

static void s_free_env (char **env)
{
    for (size_t i = 0; env && env[i]; i++)
        free (env[i]);
    free (env);
}

static int s_write_code (agent_exec_t *e, const lss_bytes_t *code, const agent_interp_t *it,
                         const agent_exec_conf_t *conf, agent_err_t *err)
{
    if (mkdir (conf->code_dir, 0700) && errno != EEXIST) {
        agent_err_set (err, "io_error", "cannot create %s: %s", conf->code_dir,
                       strerror (errno));
        return -2;
    }
    static uint64_t counter;
    snprintf (e->code_path, sizeof e->code_path, "%s/exec-%llu%s", conf->code_dir,
              (unsigned long long)++counter, it->ext);
    int fd = open (e->code_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
    size_t done = 0;
    while (fd >= 0 && done < code->len) {
        ssize_t w = write (fd, code->data + done, code->len - done);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            break;
        done += (size_t)w;
    }
    if (fd < 0 || done < code->len) {
        int saved = errno;
        if (fd >= 0)
            close (fd);
        unlink (e->code_path);
        e->code_path[0] = '\0';
        agent_err_set (err, "io_error", "cannot store the code: %s", strerror (saved));
        return -2;
    }
    close (fd);
    return 0;
}

int agent_exec_start (agent_exec_t *e, const lss_exec_start_t *req,
                      const agent_exec_conf_t *conf, int64_t now_ms, agent_err_t *err)
{
    e->fd[0] = e->fd[1] = e->fd[2] = -1;
    lss_buf_init (&e->in, AGENT_STDIN_MAX);
    lss_buf_init (&e->pending, 1u << 20);
    int modes =
        (req->argv.count > 0) + (req->shell != NULL) + (req->code.len > 0 || req->language);
    if (modes != 1) {
        agent_err_set (err, "invalid_request",
                       "give exactly one of argv, shell, or code with language");
        return -1;
    }
    if (req->timeout_ms < 0 || req->timeout_ms > conf->max_timeout_ms) {
        agent_err_set (err, "invalid_request", "timeout_ms must be 0..%lld",
                       (long long)conf->max_timeout_ms);
        return -1;
    }
    if (req->max_output < 0 || req->max_output > conf->max_output_cap) {
        agent_err_set (err, "invalid_request", "max_output must be 0..%lld",
                       (long long)conf->max_output_cap);
        return -1;
    }
    if (req->credit < 0) {
        agent_err_set (err, "invalid_request", "credit must not be negative");
        return -1;
    }
    const char *argv_buf[4];
    char *const *argv;
    const agent_interp_t *it = NULL;
    if (req->argv.count > 0) {
        argv = req->argv.items;
        if (!argv[0][0]) {
            agent_err_set (err, "invalid_request", "argv[0] is empty");
            return -1;
        }
    } else if (req->shell) {
        argv_buf[0] = "/bin/sh";
        argv_buf[1] = "-c";
        argv_buf[2] = req->shell;
        argv_buf[3] = NULL;
        argv = (char *const *)argv_buf;
    } else {
        it = req->language ? s_interp (conf, req->language) : NULL;
        if (!it) {
            char list[512] = "";
            for (size_t i = 0; i < conf->interp_count; i++) {
                size_t used = strlen (list);
                snprintf (list + used, sizeof list - used, "%s%s", i ? ", " : "",
                          conf->interp[i].lang);
            }
            agent_err_set (err, "invalid_request",
                           "unsupported language '%.32s' (this sandbox has: %s)",
                           req->language ? req->language : "", list);
            return -1;
        }
        argv_buf[0] = it->path;
        argv_buf[1] = e->code_path;
        argv_buf[2] = NULL;
        argv = (char *const *)argv_buf;
    }
    e->max_output = req->max_output ? req->max_output : conf->default_max_output;
    e->flow = req->credit > 0;
    e->credit = req->credit;
    e->start_ms = now_ms;
    e->deadline_ms = now_ms + (req->timeout_ms ? req->timeout_ms : conf->default_timeout_ms);
    if (req->stdin.len && lss_buf_append (&e->in, req->stdin.data, req->stdin.len)) {
        agent_err_set (err, "invalid_request", "stdin too large");
        return -1;
    }
    e->in_eof = !req->stdin_open;

    /* a working directory that is not there is the request's fault: refused, so the
     * caller sees invalid_request rather than a platform failure to run */
    {
        const char *wd = req->cwd && *req->cwd ? req->cwd : conf->default_cwd;
        char wd_buf[4200];
        if (wd[0] != '/') {
            snprintf (wd_buf, sizeof wd_buf, "%s/%s", conf->default_cwd, wd);
            wd = wd_buf;
        }
        struct stat st;
        const char *why = NULL;
        if (stat (wd, &st) != 0)
            why = strerror (errno);
        else if (!S_ISDIR (st.st_mode))
            why = "not a directory";
        if (why) {
            agent_err_set (err, "invalid_request", "workingDir %.200s: %s", wd, why);
            return -1;
        }
    }
    char **env = s_build_env (&req->env, err);
    if (!env)
        return -1;
    if (it && s_write_code (e, &req->code, it, conf, err)) {
        s_free_env (env);
        return -2;
    }
    int out[2] = {-1, -1}, errp[2] = {-1, -1}, in[2] = {-1, -1};
    bool want_stdin = e->in.len > 0 || !e->in_eof;
    int rc = -2;
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t attr;
    posix_spawn_file_actions_init (&fa);
    posix_spawnattr_init (&attr);
    if (pipe2 (out, O_CLOEXEC) || pipe2 (errp, O_CLOEXEC) ||
        (want_stdin && pipe2 (in, O_CLOEXEC))) {
        agent_err_set (err, "io_error", "cannot create pipes: %s", strerror (errno));
        goto cleanup;
    }
    if (want_stdin)
        posix_spawn_file_actions_adddup2 (&fa, in[0], 0);
    else
        posix_spawn_file_actions_addopen (&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_adddup2 (&fa, out[1], 1);
    posix_spawn_file_actions_adddup2 (&fa, errp[1], 2);
    const char *cwd = req->cwd && *req->cwd ? req->cwd : conf->default_cwd;
    char cwd_buf[4200];
    if (cwd[0] != '/') { /* relative working directories are under the default one */
        snprintf (cwd_buf, sizeof cwd_buf, "%s/%s", conf->default_cwd, cwd);
        cwd = cwd_buf;
    }
    posix_spawn_file_actions_addchdir_np (&fa, cwd);
    posix_spawn_file_actions_addclosefrom_np (&fa, 3);
    sigset_t none, all;
    sigemptyset (&none);
    sigfillset (&all);
    posix_spawnattr_setsigmask (&attr, &none);
    posix_spawnattr_setsigdefault (&attr, &all);
    posix_spawnattr_setpgroup (&attr, 0);
    posix_spawnattr_setflags (&attr, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK |
                                         POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_USEVFORK);
    int serr = posix_spawnp (&e->pid, argv[0], &fa, &attr, argv, env);
    if (serr) {
        e->pid = 0;
        agent_err_set (err, serr == ENOENT ? "not_found" : "exec_failed",
                       "cannot run %.200s in %.200s: %s", argv[0], cwd, strerror (serr));
        goto cleanup;
    }
    e->fd[AGENT_STDOUT] = out[0];
    e->fd[AGENT_STDERR] = errp[0];
    e->fd[AGENT_STDIN] = want_stdin ? in[1] : -1;
    out[0] = errp[0] = in[1] = -1;
    for (int i = 0; i < 3; i++)
        if (e->fd[i] >= 0) {
            fcntl (e->fd[i], F_SETFL, O_NONBLOCK);
            /* Larger pipes: fewer, bigger output messages (best effort; the kernel caps
             * unprivileged pipes at fs.pipe-max-size, 1 MiB by default). */
            if (i != AGENT_STDIN)
                fcntl (e->fd[i], F_SETPIPE_SZ, AGENT_PIPE_SIZE);
        }
    rc = 0;
cleanup:
    for (int i = 0; i < 2; i++) {
        if (out[i] >= 0)
            close (out[i]);
        if (errp[i] >= 0)
            close (errp[i]);
        if (in[i] >= 0)
            close (in[i]);
    }
    posix_spawn_file_actions_destroy (&fa);
    posix_spawnattr_destroy (&attr);
    s_free_env (env);
    return rc;
}

int agent_exec_stdin (agent_exec_t *e, const uint8_t *data, size_t len, bool eof)
{
    if (e->in_eof && (len || !eof))
        return e->fd[AGENT_STDIN] < 0 && len == 0 ? 0 : -1;
    if (len && lss_buf_append (&e->in, data, len))
        return -1;
    if (eof)
        e->in_eof = true;
    return 0;
}

void agent_exec_flush_stdin (agent_exec_t *e)
{
    int fd = e->fd[AGENT_STDIN];
    if (fd < 0) {
        lss_buf_reset (&e->in);
        return;
    }
    while (e->in.len > 0) {
        ssize_t w = write (fd, e->in.data, e->in.len);
        if (w > 0) {
            lss_buf_consume (&e->in, (size_t)w);
            continue;
        }
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0 && errno == EAGAIN)
            return;
        lss_buf_reset (&e->in); /* EPIPE: the program closed its stdin */
        e->in_eof = true;
        break;
    }
    if (e->in_eof) {
        close (fd);
        e->fd[AGENT_STDIN] = -1;
    }
}

void agent_exec_grant (agent_exec_t *e, int64_t bytes, int64_t now_ms)
{
    if (!e->flow)
        return;
    e->credit = e->credit + bytes > (1ll << 40) ? (1ll << 40) : e->credit + bytes;
    if (e->exited && e->drain_until_ms < now_ms + AGENT_DRAIN_GRACE_MS)
        e->drain_until_ms = now_ms + AGENT_DRAIN_GRACE_MS;
}

void agent_exec_kill (agent_exec_t *e)
{
    if (e->pid > 0)
        kill (-e->pid, SIGKILL); /* the group, also leftovers after the leader died */
}

void agent_exec_exited (agent_exec_t *e, int status, const struct rusage *ru, int64_t now_ms)
{
    e->exited = true;
    e->status = status;
    e->ru = *ru;
    e->end_ms = now_ms;
    e->drain_until_ms = now_ms + AGENT_DRAIN_GRACE_MS;
    e->late_left = AGENT_LATE_MAX;
    if (e->fd[AGENT_STDIN] >= 0) {
        close (e->fd[AGENT_STDIN]);
        e->fd[AGENT_STDIN] = -1;
    }
}

bool agent_exec_finished (const agent_exec_t *e, int64_t now_ms)
{
    if (e->pid > 0 && !e->exited)
        return false;
    if (e->pending.len > 0)
        return false;
    if (e->fd[AGENT_STDOUT] < 0 && e->fd[AGENT_STDERR] < 0)
        return true;
    /* Output stalled by flow control keeps the execution until the consumer catches up. */
    if (e->flow && e->credit <= 0)
        return false;
    if (now_ms < e->drain_until_ms)
        return false;
    /* The grace is over, but what a pipe holds now was written before: it is read first
     * (the loop may not have polled the pipe since the leader was reaped — a stalled
     * loop, e.g. a CPU-throttled sandbox, would otherwise drop a short program's whole
     * output). Bounded by late_left against a writer that never stops. */
    if (e->late_left <= 0)
        return true;
    for (int s = AGENT_STDOUT; s <= AGENT_STDERR; s++) {
        int queued = 0;
        if (e->fd[s] >= 0 && ioctl (e->fd[s], FIONREAD, &queued) == 0 && queued > 0)
            return false;
    }
    return true;
}

void agent_exec_read (agent_exec_t *e, size_t n, int64_t now_ms)
{
    if (e->exited && now_ms >= e->drain_until_ms)
        e->late_left -= (int64_t)n;
}

void agent_exec_end_msg (const agent_exec_t *e, lss_exec_end_t *end, int64_t now_ms)
{
    memset (end, 0, sizeof *end);
    end->exec_id = (char *)e->id;
    if (e->exited) {
        if (WIFEXITED (e->status))
            end->exit_code = WEXITSTATUS (e->status);
        else if (WIFSIGNALED (e->status)) {
            end->exit_code = -1;
            end->signal = WTERMSIG (e->status);
        }
        end->wall_ms = e->end_ms - e->start_ms;
        end->cpu_ms = (int64_t)(e->ru.ru_utime.tv_sec + e->ru.ru_stime.tv_sec) * 1000 +
                      (e->ru.ru_utime.tv_usec + e->ru.ru_stime.tv_usec) / 1000;
        end->max_rss_kb = e->ru.ru_maxrss;
    } else {
        end->exit_code = -1;
        end->wall_ms = now_ms - e->start_ms;
    }
    end->timed_out = e->timed_out;
    end->cancelled = e->cancelled;
    end->stdout_bytes = e->total[AGENT_STDOUT];
    end->stderr_bytes = e->total[AGENT_STDERR];
    end->stdout_truncated = e->truncated[AGENT_STDOUT];
    end->stderr_truncated = e->truncated[AGENT_STDERR];
}

void agent_exec_release (agent_exec_t *e)
{
    for (int i = 0; i < 3; i++)
        if (e->fd[i] >= 0) {
            close (e->fd[i]);
            e->fd[i] = -1;
        }
    if (e->code_path[0]) {
        unlink (e->code_path);
        e->code_path[0] = '\0';
    }
    lss_buf_free (&e->in);
    lss_buf_free (&e->pending);
}
