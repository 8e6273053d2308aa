/*  lss_teststack — the whole local control plane as real processes, for C tests and
 *  benchmarks (header-only; needs lss_testproc.h and lss_testpg.h first).
 *
 *  ts_stack_start makes a private directory /tmp/lss-st-XXXXXX, starts a throw-away
 *  PostgreSQL in it (scripts/pg-tmp) and then the services asked for, each configured
 *  only through LSS_* environment variables: bus endpoints are ipc:// sockets in the
 *  directory, admin endpoints bind 127.0.0.1:0 and report their port through
 *  LSS_TEST_PORT_FILE, lss-node keeps its sandboxes under <dir>/s. Each service logs to
 *  <dir>/<service>.log (appended across restarts; ts_stack_dump_logs prints them).
 *  A service can be killed (any signal) and started again; ts_stack_stop ends them all,
 *  stops PostgreSQL and removes the directory.
 */
#ifndef LSS_TESTSTACK_H
#define LSS_TESTSTACK_H

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>

#define TS_MAX_SERVICES 8
#define TS_ENV_MAX      64

typedef struct {
    char name[32];
    pid_t pid;
    int admin_port;
} ts_svc_t;

typedef struct {
    char dir[64];
    char *env[TS_ENV_MAX + 1];
    int env_count;
    ts_svc_t svc[TS_MAX_SERVICES];
    int svc_count;
} ts_stack_t;

static inline int ts_env_add (ts_stack_t *s, const char *name, const char *fmt, ...)
    __attribute__ ((format (printf, 3, 4)));

static inline int ts_env_add (ts_stack_t *s, const char *name, const char *fmt, ...)
{
    if (s->env_count >= TS_ENV_MAX)
        return -1;
    char value[1024];
    va_list ap;
    va_start (ap, fmt);
    vsnprintf (value, sizeof value, fmt, ap);
    va_end (ap);
    size_t n = strlen (name) + strlen (value) + 2;
    char *e = malloc (n);
    if (!e)
        return -1;
    snprintf (e, n, "%s=%s", name, value);
    s->env[s->env_count++] = e;
    s->env[s->env_count] = NULL;
    return 0;
}

static inline ts_svc_t *ts_stack_svc (ts_stack_t *s, const char *name)
{
    for (int i = 0; i < s->svc_count; i++) {
        if (strcmp (s->svc[i].name, name) == 0)
            return &s->svc[i];
    }
    if (s->svc_count >= TS_MAX_SERVICES)
        return NULL;
    ts_svc_t *v = &s->svc[s->svc_count++];
    memset (v, 0, sizeof *v);
    snprintf (v->name, sizeof v->name, "%s", name);
    return v;
}

/*  Runs a shell command line and waits for it (at most 60 s). Returns its exit status. */
static inline int ts_sh (const char *cmd)
{
    char *argv[] = {"/bin/sh", "-c", (char *)cmd, NULL};
    tp_proc_t p;
    if (tp_spawn (&p, argv, NULL, false) != 0)
        return -1;
    return tp_wait (&p, 60000);
}

/*  GET path on 127.0.0.1:port; returns the HTTP status, or -1. */
static inline int ts_http_status (int port, const char *path)
{
    int fd = socket (AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons ((uint16_t)port)};
    a.sin_addr.s_addr = htonl (INADDR_LOOPBACK);
    struct timeval tv = {2, 0};
    setsockopt (fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    char req[256], resp[64] = "";
    snprintf (req, sizeof req, "GET %s HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n", path);
    int code = -1;
    if (connect (fd, (struct sockaddr *)&a, sizeof a) == 0 &&
        write (fd, req, strlen (req)) == (ssize_t)strlen (req) &&
        read (fd, resp, sizeof resp - 1) > 12)
        code = (int)strtol (resp + 9, NULL, 10);
    close (fd);
    return code;
}

/*  Starts (or restarts) service name ("watcher", "node", ...) and waits until its admin
 *  endpoint answers /readyz 200, at most timeout_ms. Returns 0 or -1. */
static inline int ts_svc_start (ts_stack_t *s, const char *name, int timeout_ms)
{
    ts_svc_t *v = ts_stack_svc (s, name);
    if (!v)
        return -1;
    char bin[PATH_MAX], rel[64], log[128], portfile[128], portenv[160];
    snprintf (rel, sizeof rel, "bin/lss-%s", name);
    tp_build_path (bin, sizeof bin, rel);
    snprintf (log, sizeof log, "%s/%s.log", s->dir, name);
    snprintf (portfile, sizeof portfile, "%s/%s.port", s->dir, name);
    unlink (portfile);
    snprintf (portenv, sizeof portenv, "LSS_TEST_PORT_FILE=%s", portfile);
    char *envp[TS_ENV_MAX + 2];
    int n = 0;
    for (int i = 0; i < s->env_count; i++)
        envp[n++] = s->env[i];
    envp[n++] = portenv;
    envp[n] = NULL;
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init (&fa);
    posix_spawn_file_actions_addopen (&fa, 1, log, O_WRONLY | O_CREAT | O_APPEND, 0644);
    posix_spawn_file_actions_adddup2 (&fa, 1, 2);
    char *argv[] = {bin, NULL};
    int rc = posix_spawn (&v->pid, bin, &fa, NULL, argv, envp);
    posix_spawn_file_actions_destroy (&fa);
    if (rc) {
        v->pid = 0;
        return -1;
    }
    long long deadline = tp_now_ms () + timeout_ms;
    v->admin_port = 0;
    while (tp_now_ms () < deadline) {
        if (!v->admin_port) {
            FILE *f = fopen (portfile, "r");
            if (f) {
                if (fscanf (f, "%d", &v->admin_port) != 1)
                    v->admin_port = 0;
                fclose (f);
            }
        }
        if (v->admin_port && ts_http_status (v->admin_port, "/readyz") == 200)
            return 0;
        if (waitpid (v->pid, NULL, WNOHANG) == v->pid) {
            v->pid = 0;
            return -1;
        }
        usleep (10 * 1000);
    }
    return -1;
}

/*  Sends sig to the service and, for a terminating signal, reaps it (at most 10 s). */
static inline void ts_svc_kill (ts_stack_t *s, const char *name, int sig)
{
    ts_svc_t *v = ts_stack_svc (s, name);
    if (!v || v->pid <= 0)
        return;
    kill (v->pid, sig);
    long long deadline = tp_now_ms () + 10000;
    while (tp_now_ms () < deadline) {
        if (waitpid (v->pid, NULL, WNOHANG) == v->pid) {
            v->pid = 0;
            return;
        }
        usleep (5 * 1000);
    }
    kill (v->pid, SIGKILL);
    waitpid (v->pid, NULL, 0);
    v->pid = 0;
}

/*  The bus endpoint file name for a key, as the stack configures it. */
static inline void ts_endpoint (const ts_stack_t *s, const char *what, char *out, size_t size)
{
    snprintf (out, size, "ipc://%s/%s", s->dir, what);
}

/*  Makes the directory, starts PostgreSQL (DSN into s_dsn) and the services listed
 *  (NULL-terminated). extra_env: more "NAME=value" settings (NULL-terminated, may be
 *  NULL). Returns 0, or -1 (the stack is stopped again). */
static inline int ts_stack_start (ts_stack_t *s, const char *const *services,
                                  const char *const *extra_env)
{
    memset (s, 0, sizeof *s);
    snprintf (s->dir, sizeof s->dir, "/tmp/lss-st-XXXXXX");
    if (!mkdtemp (s->dir))
        return -1;
    chmod (s->dir, 0711);
    snprintf (s_dir, sizeof s_dir, "%s/pg", s->dir);
    if (s_pg_tmp ("start", s_dsn, sizeof s_dsn) != 0)
        return -1;
    const char *d = s->dir;
    ts_env_add (s, "LSS_STORE_DSN", "%s", s_dsn);
    ts_env_add (s, "LSS_LOG_LEVEL", "%s",
                getenv ("TS_STACK_LOG_LEVEL") ? getenv ("TS_STACK_LOG_LEVEL") : "info");
    ts_env_add (s, "LSS_WATCHER_PUB_ENDPOINT", "ipc://%s/watcher.pub", d);
    ts_env_add (s, "LSS_WATCHER_QUEUE_ENDPOINT", "ipc://%s/watcher.queue", d);
    ts_env_add (s, "LSS_RECONCILER_QUEUE_ENDPOINT", "ipc://%s/watcher.queue", d);
    ts_env_add (s, "LSS_WARMPOOL_QUEUE_ENDPOINT", "ipc://%s/watcher.queue", d);
    ts_env_add (s, "LSS_RECONCILER_PUB_ENDPOINT", "ipc://%s/reconciler.pub", d);
    ts_env_add (s, "LSS_WARMPOOL_PUB_ENDPOINT", "ipc://%s/warmpool.pub", d);
    ts_env_add (s, "LSS_WARMPOOL_ALLOC_ENDPOINT", "ipc://%s/warmpool.alloc", d);
    ts_env_add (s, "LSS_WARMPOOL_EXECUTOR_ENDPOINT", "ipc://%s/executor.router", d);
    ts_env_add (s, "LSS_EXECUTOR_ROUTER_ENDPOINT", "ipc://%s/executor.router", d);
    ts_env_add (s, "LSS_EXECUTOR_PUB_ENDPOINT", "ipc://%s/executor.pub", d);
    ts_env_add (s, "LSS_NODE_PUB_ENDPOINT", "ipc://%s/node.pub", d);
    ts_env_add (s, "LSS_NODE_STATE_DIR", "%s/s", d);
    ts_env_add (s, "LSS_NODE_UID_BASE", "%s", "330000");
    const char *admins[] = {"WATCHER", "RECONCILER", "WARMPOOL", "EXECUTOR", "NODE", "API"};
    for (size_t i = 0; i < sizeof admins / sizeof admins[0]; i++) {
        char name[64];
        snprintf (name, sizeof name, "LSS_%s_ADMIN_LISTEN", admins[i]);
        ts_env_add (s, name, "127.0.0.1:0");
    }
    for (int i = 0; extra_env && extra_env[i]; i++) {
        const char *eq = strchr (extra_env[i], '=');
        if (!eq)
            continue;
        char name[128];
        snprintf (name, sizeof name, "%.*s", (int)(eq - extra_env[i]), extra_env[i]);
        ts_env_add (s, name, "%s", eq + 1);
    }
    for (int i = 0; services && services[i]; i++) {
        if (ts_svc_start (s, services[i], 20000)) {
            fprintf (stderr, "teststack: lss-%s did not become ready (log %s/%s.log)\n",
                     services[i], s->dir, services[i]);
            return -1;
        }
    }
    return 0;
}

/*  Prints every service log to stderr (on failure). */
static inline void ts_stack_dump_logs (const ts_stack_t *s)
{
    for (int i = 0; i < s->svc_count; i++) {
        char path[128], line[2048];
        snprintf (path, sizeof path, "%s/%s.log", s->dir, s->svc[i].name);
        FILE *f = fopen (path, "r");
        fprintf (stderr, "----- %s\n", path);
        while (f && fgets (line, sizeof line, f))
            fputs (line, stderr);
        if (f)
            fclose (f);
    }
}

/*  Stops every service (SIGTERM, then SIGKILL), PostgreSQL, and removes the directory
 *  (sandboxes still running under <dir>/s are killed by stopping lss-node first and
 *  then removing what is left with the runtime's own state; the caller deletes its Pods
 *  first when it cares). */
static inline void ts_stack_stop (ts_stack_t *s)
{
    for (int i = s->svc_count - 1; i >= 0; i--)
        ts_svc_kill (s, s->svc[i].name, SIGTERM);
    if (s->dir[0]) {
        /* sandboxes outlive lss-node by design: remove what it left */
        char lss[PATH_MAX], cmd[PATH_MAX * 2 + 512];
        tp_build_path (lss, sizeof lss, "bin/lss");
        snprintf (
            cmd, sizeof cmd,
            "[ ! -d '%s/s' ] || LSS_NODE_STATE_DIR='%s/s' '%s' sandbox ls --json 2>/dev/null"
            " | python3 -c 'import json,sys; print(\" \".join(json.loads(l)[\"id\"] for l in "
            "sys.stdin if l.strip()))' | xargs -r env LSS_NODE_STATE_DIR='%s/s' '%s' "
            "sandbox rm >/dev/null 2>&1",
            s->dir, s->dir, lss, s->dir, lss);
        if (ts_sh (cmd) != 0)
            fprintf (stderr, "teststack: leftover sandboxes may remain in %s/s\n", s->dir);
        s_pg_tmp ("stop", NULL, 0);
        snprintf (cmd, sizeof cmd, "rm -rf -- '%s'", s->dir);
        if (ts_sh (cmd) != 0)
            fprintf (stderr, "teststack: could not remove %s\n", s->dir);
    }
    for (int i = 0; i < s->env_count; i++)
        free (s->env[i]);
    s->env_count = 0;
}

/*  warm.allocate of a python:3.11 standard pod for sandbox in ns on s (a DEALER to
 *  lss-warmpool's ROUTER), as lss-api asks. 1 with the pod's name, 0 for pool_empty, -1
 *  on failure or no answer within 5 s. Needs lss_bus.h. */
static inline int ts_allocate (zsock_t *s, const char *ns, const char *sandbox, char *name,
                               size_t size)
{
    lss_warm_allocate_t req = {.runtime = (char *)"python:3.11",
                               .security_level = (char *)"standard",
                               .namespace = (char *)ns,
                               .sandbox = (char *)sandbox};
    lss_envelope_t env;
    lss_bus_envelope_init (&env, LSS_MSG_warm_allocate, NULL, "teststack", 1, NULL);
    if (lss_bus_send (s, NULL, 0, NULL, &env, LSS_MSG_warm_allocate, &req))
        return -1;
    zpoller_t *p = zpoller_new (s, NULL);
    int rc = -1;
    if (zpoller_wait (p, 5000) == s) {
        lss_msg_kind_t kind;
        void *body = NULL;
        if (lss_bus_recv (s, NULL, NULL, 0, &env, &kind, &body, NULL, 0) == 0) {
            if (kind == LSS_MSG_warm_allocated) {
                snprintf (name, size, "%s", ((lss_warm_allocated_t *)body)->name);
                rc = 1;
            } else if (kind == LSS_MSG_error &&
                       strcmp (((lss_error_t *)body)->code, "pool_empty") == 0)
                rc = 0;
            lss_proto_body_free (kind, &body);
        }
    }
    zpoller_destroy (&p);
    return rc;
}

#endif
