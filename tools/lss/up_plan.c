/*  up_plan — what `lss up` will run, computed without touching anything: options,
 *  paths, and each process's argv and environment.
 *
 *  Design note: every service gets the same LSS_* settings (like one config file for the
 *  whole machine: bus endpoints as ipc:// sockets in the run dir, admin endpoints on
 *  127.0.0.1:0 with the port reported through LSS_TEST_PORT_FILE, the private
 *  PostgreSQL and Redis), except the api's secrets (JWT secret, admin key file), which
 *  only the api sees. The user's own LSS_* variables and LSS_CONFIG pass through, so
 *  any other key can still be tuned; the keys lss up sets always win.
 */
#include <getopt.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "lss_util.h"
#include "up.h"

const char *const up_service_names[UP_SERVICE_COUNT] = {"watcher",  "reconciler", "warmpool",
                                                        "executor", "node",       "api"};

#define S_STRV_MAX 4096 /* entries in one argv or environment */

int up_service_index (const char *name)
{
    for (int i = 0; name && i < UP_SERVICE_COUNT; i++)
        if (strcmp (name, up_service_names[i]) == 0)
            return i;
    return -1;
}

/* ------------------------------------------------------------------ options */

static void s_usage (FILE *out)
{
    fprintf (
        out,
        "usage: lss up [OPTIONS]\n"
        "Runs the whole system on this machine: a private PostgreSQL and Redis, then\n"
        "lss-watcher, lss-reconciler, lss-warmpool, lss-executor, lss-node and lss-api,\n"
        "each its own process, restarted with backoff when it exits (0.5 s doubling to\n"
        "30 s, reset after 60 s up). Once all are ready it seeds RuntimeEnvironments for\n"
        "the interpreters found here (python3, node, bash), a python WarmPool (minSize 2)\n"
        "and, through lss-api, an admin user whose API key is printed once. Ctrl-C or\n"
        "SIGTERM stops everything (sandboxes too) and exits 0; running it again reuses\n"
        "the data. Only one lss up runs on a data directory at a time.\n"
        "\n"
        "options:\n"
        "  --data-dir DIR      where everything is kept (default: /var/lib/lss as root,\n"
        "                      else $XDG_DATA_HOME/lss or ~/.local/share/lss)\n"
        "  --listen HOST:PORT  the API's address (default " UP_DEFAULT_LISTEN "; port 0 picks\n"
        "                      a free one)\n"
        "  --without SVC       do not run service SVC (watcher, reconciler, warmpool,\n"
        "                      executor, node, api); repeatable. lss up refuses to start\n"
        "                      when a service's binary is missing, unless told so\n"
        "  --log-level LEVEL   the services' log level: debug, info (default), warn, error\n"
        "  --state-dir DIR     lss-node's sandbox directory (default DATA/sandboxes; at\n"
        "                      most 60 bytes, and as root every parent must be o+x)\n"
        "  --ready-timeout S   how long to wait for every service to be ready before\n"
        "                      seeding anyway (default %d)\n"
        "  --no-seed           do not create the default runtimes and warm pool\n"
        "  --keep-sandboxes    on stop, leave sandboxes running for the next lss up\n"
        "  -q, --quiet         print only failures, restarts and the summary\n"
        "  -h, --help          this text\n"
        "\n"
        "data directory: lock, jwt.secret, admin.key (0600), postgres/ (the cluster),\n"
        "redis/ (config, AOF and RDB), logs/<process>.log (rotated past 8 MiB to .log.1),\n"
        "sandboxes/, run/ (sockets and port files, recreated each run), status.json (the\n"
        "processes while it runs) and env.sh (`. DATA/env.sh` points lss obj and lss tap\n"
        "at this system).\n"
        "exit: 0 stopped cleanly, 1 could not start, 2 usage error.\n",
        UP_READY_TIMEOUT_S);
}

static bool s_listen_syntax_ok (const char *text)
{
    const char *colon = strrchr (text, ':');
    if (!colon || colon == text || strlen (text) >= UP_ADDR_MAX)
        return false;
    int64_t port;
    return lss_parse_int64 (colon + 1, 0, 65535, &port) == 0;
}

int up_options_parse (int argc, char **argv, up_options_t *o, FILE *out, FILE *err)
{
    memset (o, 0, sizeof *o);
    snprintf (o->listen, sizeof o->listen, "%s", UP_DEFAULT_LISTEN);
    snprintf (o->log_level, sizeof o->log_level, "info");
    o->ready_timeout_s = UP_READY_TIMEOUT_S;
    static const struct option opts[] = {{"data-dir", required_argument, NULL, 'd'},
                                         {"state-dir", required_argument, NULL, 's'},
                                         {"listen", required_argument, NULL, 'l'},
                                         {"without", required_argument, NULL, 'w'},
                                         {"log-level", required_argument, NULL, 'L'},
                                         {"ready-timeout", required_argument, NULL, 't'},
                                         {"no-seed", no_argument, NULL, 'N'},
                                         {"keep-sandboxes", no_argument, NULL, 'K'},
                                         {"quiet", no_argument, NULL, 'q'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    optind = 0;
    opterr = 0;
    int c;
    while ((c = getopt_long (argc, argv, ":qh", opts, NULL)) != -1) {
        switch (c) {
        case 'd':
        case 's': {
            char *dst = c == 'd' ? o->data_dir : o->state_dir;
            if (!*optarg || lss_fmt (dst, UP_PATH_MAX, "%s", optarg)) {
                fprintf (err, "lss up: --%s: empty or too long\n",
                         c == 'd' ? "data-dir" : "state-dir");
                return 2;
            }
            break;
        }
        case 'l':
            if (!s_listen_syntax_ok (optarg)) {
                fprintf (err, "lss up: --listen wants HOST:PORT (port 0..65535), not '%s'\n",
                         optarg);
                return 2;
            }
            snprintf (o->listen, sizeof o->listen, "%s", optarg);
            break;
        case 'w': {
            int i = up_service_index (optarg);
            if (i < 0) {
                fprintf (err,
                         "lss up: --without: unknown service '%s' (watcher, reconciler, "
                         "warmpool, executor, node, api)\n",
                         optarg);
                return 2;
            }
            o->without[i] = true;
            break;
        }
        case 'L':
            if (strcmp (optarg, "debug") != 0 && strcmp (optarg, "info") != 0 &&
                strcmp (optarg, "warn") != 0 && strcmp (optarg, "error") != 0) {
                fprintf (err, "lss up: --log-level: debug, info, warn or error, not '%s'\n",
                         optarg);
                return 2;
            }
            snprintf (o->log_level, sizeof o->log_level, "%s", optarg);
            break;
        case 't': {
            int64_t v;
            if (lss_parse_int64 (optarg, 1, 3600, &v)) {
                fprintf (err, "lss up: --ready-timeout: seconds 1..3600, not '%s'\n", optarg);
                return 2;
            }
            o->ready_timeout_s = (int)v;
            break;
        }
        case 'N':
            o->no_seed = true;
            break;
        case 'K':
            o->keep_sandboxes = true;
            break;
        case 'q':
            o->quiet = true;
            break;
        case 'h':
            s_usage (out);
            return 1;
        case ':':
            fprintf (err, "lss up: %s needs a value\n", argv[optind - 1]);
            fprintf (err, "(lss up --help lists the options)\n");
            return 2;
        default:
            fprintf (err, "lss up: unknown option '%s'\n", argv[optind - 1]);
            fprintf (err, "(lss up --help lists the options)\n");
            return 2;
        }
    }
    if (optind < argc) {
        fprintf (err, "lss up: unexpected argument '%s' (lss up --help lists the options)\n",
                 argv[optind]);
        return 2;
    }
    return 0;
}

int up_default_data_dir (uid_t euid, const char *xdg_data_home, const char *home, char *out,
                         size_t out_size)
{
    if (euid == 0)
        return lss_fmt (out, out_size, "/var/lib/lss");
    if (xdg_data_home && xdg_data_home[0] == '/')
        return lss_fmt (out, out_size, "%s/lss", xdg_data_home);
    if (home && home[0] == '/')
        return lss_fmt (out, out_size, "%s/.local/share/lss", home);
    return -1;
}

/* ------------------------------------------------------------------ paths */

/* Characters allowed in the data and state dir: they go into a DSN, a Redis config and
 * ipc:// endpoints unquoted. */
static bool s_path_chars_ok (const char *p)
{
    for (; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
              (*p >= '0' && *p <= '9') || strchr ("/._-+@", *p)))
            return false;
    return true;
}

static uint64_t s_fnv1a (const char *s)
{
    uint64_t h = 14695981039346656037ULL;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    return h;
}

int up_paths_init (up_paths_t *p, const char *data_dir, const char *state_dir,
                   const char *bin_dir, uid_t euid, char *err, size_t err_size)
{
    memset (p, 0, sizeof *p);
    if (!data_dir || data_dir[0] != '/' || strlen (data_dir) > UP_DATA_DIR_MAX) {
        lss_errf (err, err_size, "data dir must be an absolute path of at most %d bytes",
                  UP_DATA_DIR_MAX);
        return -1;
    }
    if (!s_path_chars_ok (data_dir) || (state_dir && !s_path_chars_ok (state_dir))) {
        lss_errf (err, err_size,
                  "data and state dir paths may only hold letters, digits and / . _ - + @");
        return -1;
    }
    snprintf (p->data, sizeof p->data, "%s", data_dir);
    size_t n = strlen (p->data);
    while (n > 1 && p->data[n - 1] == '/')
        p->data[--n] = '\0';
    int bad = 0;
    if (strlen (p->data) + strlen ("/run") <= UP_RUN_DIR_MAX)
        bad |= lss_fmt (p->run, sizeof p->run, "%s/run", p->data);
    else
        bad |= lss_fmt (p->run, sizeof p->run, "/tmp/lss-up-%u-%016llx", (unsigned)euid,
                        (unsigned long long)s_fnv1a (p->data));
    if (state_dir && *state_dir)
        bad |= lss_fmt (p->state, sizeof p->state, "%s", state_dir);
    else
        bad |= lss_fmt (p->state, sizeof p->state, "%s/sandboxes", p->data);
    bad |= lss_fmt (p->ports, sizeof p->ports, "%s/ports", p->run);
    bad |= lss_fmt (p->logs, sizeof p->logs, "%s/logs", p->data);
    bad |= lss_fmt (p->pgdata, sizeof p->pgdata, "%s/postgres", p->data);
    bad |= lss_fmt (p->pgsock, sizeof p->pgsock, "%s/pg", p->run);
    bad |= lss_fmt (p->redis_dir, sizeof p->redis_dir, "%s/redis", p->data);
    bad |= lss_fmt (p->redis_conf, sizeof p->redis_conf, "%s/redis/redis.conf", p->data);
    bad |= lss_fmt (p->redis_sock, sizeof p->redis_sock, "%s/redis.sock", p->run);
    bad |= lss_fmt (p->lock, sizeof p->lock, "%s/lock", p->data);
    bad |= lss_fmt (p->jwt_secret, sizeof p->jwt_secret, "%s/jwt.secret", p->data);
    bad |= lss_fmt (p->admin_key, sizeof p->admin_key, "%s/admin.key", p->data);
    bad |= lss_fmt (p->status, sizeof p->status, "%s/status.json", p->data);
    bad |= lss_fmt (p->env_sh, sizeof p->env_sh, "%s/env.sh", p->data);
    bad |= lss_fmt (p->bin, sizeof p->bin, "%s", bin_dir ? bin_dir : "");
    bad |= lss_fmt (p->dsn, sizeof p->dsn, "host=%s port=%d dbname=lss user=postgres",
                    p->pgsock, UP_PG_PORT);
    bad |= lss_fmt (p->redis_url, sizeof p->redis_url, "unix://%s", p->redis_sock);
    if (bad) {
        lss_errf (err, err_size, "a path under %s is too long", p->data);
        return -1;
    }
    if (strlen (p->run) > UP_RUN_DIR_MAX) {
        lss_errf (err, err_size, "run dir %s too long for unix sockets", p->run);
        return -1;
    }
    return 0;
}

/* ------------------------------------------------------------------ string vectors */

int up_strv_push (up_strv_t *sv, const char *s)
{
    if (sv->n + 2 > sv->cap) {
        if (sv->cap >= S_STRV_MAX)
            return -1;
        size_t cap = sv->cap ? sv->cap * 2 : 16;
        char **v = realloc (sv->v, cap * sizeof *v);
        if (!v)
            return -1;
        sv->v = v;
        sv->cap = cap;
    }
    char *copy = strdup (s);
    if (!copy)
        return -1;
    sv->v[sv->n++] = copy;
    sv->v[sv->n] = NULL;
    return 0;
}

int up_strv_pushf (up_strv_t *sv, const char *fmt, ...)
{
    char buf[2048];
    va_list ap;
    va_start (ap, fmt);
    int n = vsnprintf (buf, sizeof buf, fmt, ap);
    va_end (ap);
    if (n < 0 || (size_t)n >= sizeof buf)
        return -1;
    return up_strv_push (sv, buf);
}

void up_strv_free (up_strv_t *sv)
{
    for (size_t i = 0; i < sv->n; i++)
        free (sv->v[i]);
    free (sv->v);
    memset (sv, 0, sizeof *sv);
}

char **up_strv_take (up_strv_t *sv)
{
    if (!sv->v && up_strv_push (sv, "") == 0) { /* an empty array, not NULL */
        free (sv->v[0]);
        sv->v[0] = NULL;
        sv->n = 0;
    }
    char **v = sv->v;
    memset (sv, 0, sizeof *sv);
    return v;
}

static void s_free_strs (char **v)
{
    for (size_t i = 0; v && v[i]; i++)
        free (v[i]);
    free (v);
}

void up_spec_clear (up_spec_t *s)
{
    s_free_strs (s->argv);
    s_free_strs (s->envp);
    memset (s, 0, sizeof *s);
}

int up_env_name (const char *key, char *out, size_t out_size)
{
    if (lss_fmt (out, out_size, "LSS_%s", key))
        return -1;
    for (char *c = out + 4; *c; c++)
        *c = *c == '.' || *c == '-' ? '_' : (*c >= 'a' && *c <= 'z') ? (char)(*c - 32) : *c;
    return 0;
}

/* ------------------------------------------------------------------ environments */

typedef struct {
    const char *key;
    char value[UP_TARGET_MAX];
} s_setting_t;

#define S_SETTINGS_MAX 48

/*  Every setting lss up manages; api_only ones get value "" for other services and are
 *  then left out. Returns the count. */
static int s_settings (s_setting_t *s, const up_paths_t *p, const char *listen,
                       const char *log_level, const char *jwt_secret, bool api)
{
    int n = 0;
#define S_SET(k, ...) (s[n].key = (k), snprintf (s[n].value, UP_TARGET_MAX, __VA_ARGS__), n++)
    S_SET ("log.level", "%s", log_level);
    S_SET ("store.dsn", "%s", p->dsn);
    S_SET ("api.db_dsn", "%s", p->dsn);
    S_SET ("redis.url", "%s", p->redis_url);
    S_SET ("node.state_dir", "%s", p->state);
    S_SET ("watcher.queue_endpoint", "ipc://%s/watcher.queue", p->run);
    S_SET ("reconciler.queue_endpoint", "ipc://%s/watcher.queue", p->run);
    S_SET ("warmpool.queue_endpoint", "ipc://%s/watcher.queue", p->run);
    S_SET ("warmpool.alloc_endpoint", "ipc://%s/warmpool.alloc", p->run);
    S_SET ("api.warmpool_endpoint", "ipc://%s/warmpool.alloc", p->run);
    S_SET ("executor.router_endpoint", "ipc://%s/executor.router", p->run);
    S_SET ("warmpool.executor_endpoint", "ipc://%s/executor.router", p->run);
    S_SET ("api.executor_endpoint", "ipc://%s/executor.router", p->run);
    S_SET ("api.watcher_endpoint", "ipc://%s/watcher.pub", p->run);
    S_SET ("api.listen", "%s", listen);
    static const char *const pub[UP_SERVICE_COUNT] = {
        "watcher.pub_endpoint",  "reconciler.pub_endpoint", "warmpool.pub_endpoint",
        "executor.pub_endpoint", "node.pub_endpoint",       "api.pub_endpoint"};
    static const char *const admin[UP_SERVICE_COUNT] = {
        "watcher.admin_listen",  "reconciler.admin_listen", "warmpool.admin_listen",
        "executor.admin_listen", "node.admin_listen",       "api.admin_listen"};
    for (int i = 0; i < UP_SERVICE_COUNT; i++) {
        S_SET (pub[i], "ipc://%s/%s.pub", p->run, up_service_names[i]);
        S_SET (admin[i], "127.0.0.1:0");
    }
    S_SET ("api.jwt_secret", "%s", api && jwt_secret ? jwt_secret : "");
    S_SET ("api.admin_key_file", "%s", api ? p->admin_key : "");
#undef S_SET
    return n;
}

static bool s_env_managed (const char *entry, const s_setting_t *s, int n)
{
    size_t len = strcspn (entry, "=");
    if (len == strlen ("LSS_TEST_PORT_FILE") && strncmp (entry, "LSS_TEST_PORT_FILE", len) == 0)
        return true;
    for (int i = 0; i < n; i++) {
        char name[96];
        if (up_env_name (s[i].key, name, sizeof name) == 0 && strlen (name) == len &&
            strncmp (entry, name, len) == 0)
            return true;
    }
    return false;
}

int up_plan_service (up_spec_t *s, int service, const up_paths_t *p, const char *listen,
                     const char *log_level, const char *jwt_secret, char *const *base_env)
{
    memset (s, 0, sizeof *s);
    if (service < 0 || service >= UP_SERVICE_COUNT)
        return -1;
    const char *name = up_service_names[service];
    bool api = strcmp (name, "api") == 0;
    s_setting_t set[S_SETTINGS_MAX];
    int n = s_settings (set, p, listen, log_level, jwt_secret, api);
    up_strv_t argv = {0}, env = {0};
    int bad = up_strv_pushf (&argv, "%s/lss-%s", p->bin, name);
    for (int i = 0; i < n; i++) {
        if (!*set[i].value)
            continue;
        char var[96];
        bad |= up_env_name (set[i].key, var, sizeof var);
        bad |= up_strv_pushf (&env, "%s=%s", var, set[i].value);
    }
    bad |= up_strv_pushf (&env, "LSS_TEST_PORT_FILE=%s/%s.port", p->ports, name);
    for (size_t i = 0; base_env && base_env[i]; i++)
        if (!s_env_managed (base_env[i], set, n))
            bad |= up_strv_push (&env, base_env[i]);
    snprintf (s->name, sizeof s->name, "%s", name);
    s->group = UP_GROUP_SERVICES;
    s->stop_signal = SIGTERM;
    s->stop_timeout_ms = UP_STOP_SERVICE_MS;
    s->probe = UP_PROBE_HTTP;
    bad |= lss_fmt (s->probe_target, sizeof s->probe_target, "%s/%s.port", p->ports, name);
    bad |= lss_fmt (s->log_path, sizeof s->log_path, "%s/%s.log", p->logs, name);
    s->argv = up_strv_take (&argv);
    s->envp = up_strv_take (&env);
    if (bad || !s->argv || !s->envp) {
        up_spec_clear (s);
        return -1;
    }
    return 0;
}

/*  The base environment without LSS_* (PostgreSQL and Redis have no use for them). */
static int s_plain_env (up_strv_t *env, char *const *base_env)
{
    for (size_t i = 0; base_env && base_env[i]; i++)
        if (strncmp (base_env[i], "LSS_", 4) != 0 && up_strv_push (env, base_env[i]))
            return -1;
    return 0;
}

int up_plan_postgres (up_spec_t *s, const up_paths_t *p, const char *pg_bin, bool set_ids,
                      uid_t uid, gid_t gid, char *const *base_env)
{
    memset (s, 0, sizeof *s);
    up_strv_t argv = {0}, env = {0};
    int bad = up_strv_pushf (&argv, "%s/postgres", pg_bin);
    const char *args[] = {"-D", p->pgdata,
                          "-k", p->pgsock,
                          "-c", "listen_addresses=",
                          "-c", "unix_socket_permissions=0700",
                          "-c", "max_connections=200",
                          "-c", "logging_collector=off",
                          "-c", "log_destination=stderr"};
    for (size_t i = 0; i < sizeof args / sizeof args[0]; i++)
        bad |= up_strv_push (&argv, args[i]);
    bad |= up_strv_push (&argv, "-p");
    bad |= up_strv_pushf (&argv, "%d", UP_PG_PORT);
    bad |= s_plain_env (&env, base_env);
    snprintf (s->name, sizeof s->name, "postgres");
    s->group = UP_GROUP_INFRA;
    s->set_ids = set_ids;
    s->uid = uid;
    s->gid = gid;
    snprintf (s->cwd, sizeof s->cwd, "%s", p->pgdata);
    s->stop_signal = SIGINT; /* fast shutdown: roll back, checkpoint, exit */
    s->stop_timeout_ms = UP_STOP_INFRA_MS;
    s->probe = UP_PROBE_PG;
    bad |= lss_fmt (s->probe_target, sizeof s->probe_target,
                    "host=%s port=%d dbname=postgres user=postgres connect_timeout=2",
                    p->pgsock, UP_PG_PORT);
    bad |= lss_fmt (s->log_path, sizeof s->log_path, "%s/postgres.log", p->logs);
    s->argv = up_strv_take (&argv);
    s->envp = up_strv_take (&env);
    if (bad || !s->argv || !s->envp) {
        up_spec_clear (s);
        return -1;
    }
    return 0;
}

int up_plan_redis (up_spec_t *s, const up_paths_t *p, const char *redis_server,
                   char *const *base_env)
{
    memset (s, 0, sizeof *s);
    up_strv_t argv = {0}, env = {0};
    int bad = up_strv_push (&argv, redis_server);
    bad |= up_strv_push (&argv, p->redis_conf);
    bad |= s_plain_env (&env, base_env);
    snprintf (s->name, sizeof s->name, "redis");
    s->group = UP_GROUP_INFRA;
    snprintf (s->cwd, sizeof s->cwd, "%s", p->redis_dir);
    s->stop_signal = SIGTERM; /* saves the dataset, then exits */
    s->stop_timeout_ms = UP_STOP_INFRA_MS;
    s->probe = UP_PROBE_REDIS;
    bad |= lss_fmt (s->probe_target, sizeof s->probe_target, "%s", p->redis_sock);
    bad |= lss_fmt (s->log_path, sizeof s->log_path, "%s/redis.log", p->logs);
    s->argv = up_strv_take (&argv);
    s->envp = up_strv_take (&env);
    if (bad || !s->argv || !s->envp) {
        up_spec_clear (s);
        return -1;
    }
    return 0;
}

static char *s_join (up_strv_t *lines)
{
    size_t len = 1;
    for (size_t i = 0; i < lines->n; i++)
        len += strlen (lines->v[i]) + 1;
    char *text = malloc (len);
    if (text) {
        size_t at = 0;
        for (size_t i = 0; i < lines->n; i++) {
            size_t l = strlen (lines->v[i]);
            memcpy (text + at, lines->v[i], l);
            at += l;
            text[at++] = '\n';
        }
        text[at] = '\0';
    }
    up_strv_free (lines);
    return text;
}

char *up_plan_redis_conf (const up_paths_t *p)
{
    up_strv_t l = {0};
    int bad = up_strv_push (&l, "# Written by lss up at every start (tools/lss/up_plan.c); "
                                "edits here are overwritten.");
    bad |= up_strv_push (&l, "daemonize no");
    bad |= up_strv_push (&l, "supervised no");
    bad |= up_strv_push (&l, "port 0"); /* no TCP: the unix socket only */
    bad |= up_strv_pushf (&l, "unixsocket %s", p->redis_sock);
    bad |= up_strv_push (&l, "unixsocketperm 700");
    bad |= up_strv_pushf (&l, "dir %s", p->redis_dir);
    bad |= up_strv_push (&l, "dbfilename dump.rdb");
    bad |= up_strv_push (&l, "save 3600 1 300 100 60 10000");
    bad |= up_strv_push (&l, "appendonly yes");
    bad |= up_strv_push (&l, "appendfsync everysec");
    bad |= up_strv_push (&l, "logfile \"\"");
    bad |= up_strv_push (&l, "loglevel notice");
    bad |= up_strv_push (&l, "maxmemory 256mb");
    bad |= up_strv_push (&l, "maxmemory-policy volatile-lru");
    bad |= up_strv_push (&l, "protected-mode yes");
    if (bad) {
        up_strv_free (&l);
        return NULL;
    }
    return s_join (&l);
}

char *up_plan_env_sh (const up_paths_t *p)
{
    up_strv_t l = {0};
    int bad = up_strv_pushf (&l,
                             "# Written by lss up: `. %s` points lss obj, lss tap and lss "
                             "sandbox exec at the system it runs.",
                             p->env_sh);
    bad |= up_strv_pushf (&l, "export LSS_STORE_DSN='%s'", p->dsn);
    bad |= up_strv_pushf (&l, "export LSS_REDIS_URL='%s'", p->redis_url);
    bad |= up_strv_pushf (&l, "export LSS_NODE_STATE_DIR='%s'", p->state);
    for (int i = 0; i < UP_SERVICE_COUNT; i++) {
        char var[64], key[64];
        snprintf (key, sizeof key, "%s.pub_endpoint", up_service_names[i]);
        bad |= up_env_name (key, var, sizeof var);
        bad |=
            up_strv_pushf (&l, "export %s='ipc://%s/%s.pub'", var, p->run, up_service_names[i]);
    }
    if (bad) {
        up_strv_free (&l);
        return NULL;
    }
    return s_join (&l);
}
