/*  lss up — the whole local-mode system on this machine (docs/run.md).
 *
 *    lss up [--data-dir DIR] [--listen HOST:PORT] [--without SVC]... [--log-level L]
 *           [--state-dir DIR] [--ready-timeout S] [--no-seed] [--keep-sandboxes] [-q]
 *
 *  Design note: the phases run in order, each driving the one supervisor loop until its
 *  condition holds (or a stop is asked for): check and lock the data dir, prepare it
 *  (first run: initdb, JWT secret), start PostgreSQL and Redis and wait until they
 *  answer, create the database, start the services and wait until every /readyz says
 *  200, seed, print the summary, supervise until SIGINT/SIGTERM, then stop the services
 *  (the api first), the sandboxes they left, Redis and PostgreSQL, in that order. A stop
 *  asked for in any phase goes straight to the stop sequence; the exit code is 0 for a
 *  clean stop, 1 when something could not start.
 */
#include <errno.h>
#include <libgen.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lss_cli.h"
#include "lss_util.h"
#include "sandbox_fs.h"
#include "sandbox_runtime.h"
#include "up.h"

extern char **environ;

#define S_WAIT_NOTE_MS  15000 /* "still waiting for ..." this often */
#define S_ADMIN_KEY_MAX 512
#define S_RUN_TURN_MS   1000

typedef struct {
    up_options_t opt;
    up_paths_t paths;
    char listen[UP_ADDR_MAX];
    char jwt[2 * UP_JWT_SECRET_SIZE + 1];
    char pg_bin[UP_PATH_MAX];
    char redis_server[UP_PATH_MAX];
    bool key_existed; /* admin.key was there before this run */
    bool key_reported;
    bool run_dir_made; /* ours to remove at the end */
    char api_url[UP_ADDR_MAX + 16];
    up_runtime_t runtimes[UP_RUNTIMES_MAX];
    int runtime_count;
    const char *ns;
    up_sup_t *sup;
} s_up_t;

/* ------------------------------------------------------------------ checks */

static int s_absolute (const char *in, char *out, size_t size)
{
    if (in[0] == '/')
        return lss_fmt (out, size, "%s", in);
    char cwd[UP_PATH_MAX];
    if (!getcwd (cwd, sizeof cwd))
        return -1;
    return lss_fmt (out, size, "%s/%s", strcmp (cwd, "/") == 0 ? "" : cwd, in);
}

static int s_bin_dir (char *out, size_t size)
{
    char exe[UP_PATH_MAX];
    ssize_t n = readlink ("/proc/self/exe", exe, sizeof exe - 1);
    if (n <= 0)
        return -1;
    exe[n] = '\0';
    return lss_fmt (out, size, "%s", dirname (exe));
}

static int s_find_program (const char *name, const char *const *dirs, char *out, size_t size)
{
    for (size_t i = 0; dirs[i]; i++)
        if (lss_fmt (out, size, "%s/%s", dirs[i], name) == 0 && access (out, X_OK) == 0)
            return 0;
    return -1;
}

/*  Every service binary we will run exists. */
static int s_check_binaries (const s_up_t *u)
{
    for (int i = 0; i < UP_SERVICE_COUNT; i++) {
        if (u->opt.without[i])
            continue;
        char path[UP_PATH_MAX];
        if (lss_fmt (path, sizeof path, "%s/lss-%s", u->paths.bin, up_service_names[i]) == 0 &&
            access (path, X_OK) == 0)
            continue;
        if (strcmp (up_service_names[i], "api") == 0)
            fprintf (stderr,
                     "lss up: %s does not exist: the API service is not built (yet). Run "
                     "`make`, or start everything else with: lss up --without api\n",
                     path);
        else
            fprintf (stderr, "lss up: %s does not exist: run `make` first (or --without %s)\n",
                     path, up_service_names[i]);
        return -1;
    }
    return 0;
}

/*  http://HOST:PORT/api/v1, with a wildcard host shown as its loopback address. */
static void s_api_url (const char *listen, char *out, size_t size)
{
    const char *colon = strrchr (listen, ':');
    size_t hl = colon ? (size_t)(colon - listen) : 0;
    const char *host = NULL;
    if (hl == 7 && strncmp (listen, "0.0.0.0", 7) == 0)
        host = "127.0.0.1";
    else if ((hl == 4 && strncmp (listen, "[::]", 4) == 0) || hl == 0)
        host = hl ? "[::1]" : "127.0.0.1";
    if (host && colon)
        snprintf (out, size, "http://%s%s/api/v1", host, colon);
    else
        snprintf (out, size, "http://%s/api/v1", listen);
}

/* ------------------------------------------------------------------ the admin key */

/*  Prints the admin key line of the summary, or nothing yet when lss-api has not
 *  written the file (then again later, from the run loop; final: say it is missing). */
static void s_report_admin_key (s_up_t *u, bool final)
{
    if (u->key_reported || u->opt.without[up_service_index ("api")])
        return;
    char line[UP_PATH_MAX + S_ADMIN_KEY_MAX];
    if (up_admin_key_line (u->paths.admin_key, u->key_existed, line, sizeof line)) {
        up_sup_say (u->sup, "admin key   %s", line);
        u->key_reported = true;
    } else if (final)
        up_sup_say (u->sup, "admin key   not written yet: lss-api writes it to %s",
                    u->paths.admin_key);
}

/* ------------------------------------------------------------------ phases */

static int s_prepare (s_up_t *u)
{
    char err[512] = "";
    bool node = !u->opt.without[up_service_index ("node")];
    if (up_data_prepare (&u->paths, node, err, sizeof err) ||
        up_data_jwt_secret (&u->paths, u->jwt, sizeof u->jwt, err, sizeof err)) {
        fprintf (stderr, "lss up: %s\n", err);
        return -1;
    }
    u->run_dir_made = true;
    u->key_existed = access (u->paths.admin_key, F_OK) == 0;
    bool set_ids;
    uid_t uid;
    gid_t gid;
    if (up_pg_prepare (&u->paths, u->pg_bin, sizeof u->pg_bin, &set_ids, &uid, &gid, stdout,
                       err, sizeof err)) {
        fprintf (stderr, "lss up: PostgreSQL: %s\n", err);
        return -1;
    }
    char *conf = up_plan_redis_conf (&u->paths);
    char *env_sh = up_plan_env_sh (&u->paths);
    int rc = conf && env_sh ? 0 : -1;
    if (rc == 0 &&
        (lss_sandbox_fs_write_atomic (u->paths.redis_conf, conf, strlen (conf), 0600) ||
         lss_sandbox_fs_write_atomic (u->paths.env_sh, env_sh, strlen (env_sh), 0644))) {
        fprintf (stderr, "lss up: writing %s or %s: %s\n", u->paths.redis_conf, u->paths.env_sh,
                 strerror (errno));
        rc = -1;
    }
    free (conf);
    free (env_sh);
    if (rc)
        return -1;

    up_spec_t spec;
    if (up_plan_postgres (&spec, &u->paths, u->pg_bin, set_ids, uid, gid, environ) ||
        up_sup_add (u->sup, &spec)) {
        up_spec_clear (&spec);
        return -1;
    }
    if (up_plan_redis (&spec, &u->paths, u->redis_server, environ) ||
        up_sup_add (u->sup, &spec)) {
        up_spec_clear (&spec);
        return -1;
    }
    for (int i = 0; i < UP_SERVICE_COUNT; i++) {
        if (u->opt.without[i])
            continue;
        if (up_plan_service (&spec, i, &u->paths, u->listen, u->opt.log_level, u->jwt,
                             environ) ||
            up_sup_add (u->sup, &spec)) {
            up_spec_clear (&spec);
            return -1;
        }
    }
    return 0;
}

/*  Turns the loop until the group is ready, a stop is asked for, or timeout_ms pass.
 *  Returns 1 ready, 0 timed out, -1 stop asked. */
static int s_wait_ready (s_up_t *u, up_group_t group, int64_t timeout_ms)
{
    int64_t start = lss_time_mono_ms ();
    int64_t note = start + S_WAIT_NOTE_MS;
    for (;;) {
        if (up_sup_stop_requests (u->sup))
            return -1;
        if (up_sup_ready (u->sup, group))
            return 1;
        int64_t now = lss_time_mono_ms ();
        if (now - start >= timeout_ms)
            return 0;
        if (now >= note) {
            char names[256];
            up_sup_not_ready (u->sup, group, names, sizeof names);
            up_sup_say (u->sup, "still waiting for: %s", names);
            note = now + S_WAIT_NOTE_MS;
        }
        up_sup_turn (u->sup, 200);
    }
}

static void s_summary (s_up_t *u)
{
    bool api = !u->opt.without[up_service_index ("api")];
    up_sup_say (u->sup, "LLMSafeSpace is up (data in %s)", u->paths.data);
    if (api)
        up_sup_say (u->sup, "API         %s", u->api_url);
    else
        up_sup_say (u->sup, "API         not started (--without api)");
    s_report_admin_key (u, true);
    up_sup_say (u->sup, "logs        %s/<process>.log", u->paths.logs);
    up_sup_say (u->sup, "CLI         . %s; lss obj get sb -A; lss tap", u->paths.env_sh);
    up_sup_say (u->sup, "stop        Ctrl-C (or kill -TERM %d)", (int)getpid ());
}

/*  After lss-node stopped: the sandboxes it leaves running by design (a restarted node
 *  adopts them) are stopped too, unless --keep-sandboxes. */
static void s_stop_sandboxes (s_up_t *u)
{
    lss_sandbox_runtime_t *rt = lss_sandbox_runtime_new (u->paths.state, NULL, NULL);
    if (!rt) {
        up_sup_say (u->sup, "cannot open %s: sandboxes there may still run", u->paths.state);
        return;
    }
    lss_sandbox_runtime_adopt (rt);
    json_t *list = lss_sandbox_runtime_list (rt);
    size_t i, stopped = 0, failed = 0;
    json_t *sb;
    json_array_foreach (list, i, sb)
    {
        const char *id = json_string_value (json_object_get (sb, "id"));
        if (!id)
            continue;
        if (lss_sandbox_runtime_stop (rt, id, 0, NULL) == 0)
            stopped++;
        else
            failed++;
    }
    json_decref (list);
    lss_sandbox_runtime_destroy (&rt);
    if (stopped || failed)
        up_sup_say (u->sup, "sandboxes: %zu stopped%s", stopped,
                    failed ? " (some would not stop: see lss sandbox ls)" : "");
}

static int s_run (s_up_t *u)
{
    int rc = 0;
    char err[512] = "";
    up_sup_say (u->sup, "data dir %s, run dir %s", u->paths.data, u->paths.run);
    up_sup_start (u->sup, UP_GROUP_INFRA);
    int r = s_wait_ready (u, UP_GROUP_INFRA, UP_INFRA_TIMEOUT_MS);
    if (r == 0) {
        char names[128];
        up_sup_not_ready (u->sup, UP_GROUP_INFRA, names, sizeof names);
        up_sup_say (u->sup, "not ready after %d s: %s", UP_INFRA_TIMEOUT_MS / 1000, names);
        up_sup_print_log_tail (u->sup, "postgres", 15);
        up_sup_print_log_tail (u->sup, "redis", 15);
        rc = 1;
    }
    if (r != 1)
        goto stop;
    if (up_pg_create_db (&u->paths, err, sizeof err)) {
        up_sup_say (u->sup, "PostgreSQL: %s", err);
        rc = 1;
        goto stop;
    }
    up_sup_start (u->sup, UP_GROUP_SERVICES);
    r = s_wait_ready (u, UP_GROUP_SERVICES, (int64_t)u->opt.ready_timeout_s * 1000);
    if (r < 0)
        goto stop;
    if (r == 0) {
        char names[256];
        up_sup_not_ready (u->sup, UP_GROUP_SERVICES, names, sizeof names);
        up_sup_say (u->sup, "not ready after %d s: %s (see their logs); going on",
                    u->opt.ready_timeout_s, names);
    }
    if (!u->opt.no_seed) {
        int created = up_seed_apply (u->paths.dsn, u->runtimes, u->runtime_count, u->ns, u->sup,
                                     err, sizeof err);
        if (created < 0)
            up_sup_say (u->sup, "seeding failed: %s (lss up goes on)", err);
        else if (u->runtime_count == 0)
            up_sup_say (u->sup, "no interpreter found on PATH: no runtimes seeded");
    }
    s_summary (u);
    while (!up_sup_stop_requests (u->sup)) {
        up_sup_turn (u->sup, S_RUN_TURN_MS);
        s_report_admin_key (u, false);
    }
stop:
    up_sup_say (u->sup, "stopping");
    up_sup_stop (u->sup, UP_GROUP_SERVICES);
    if (!u->opt.without[up_service_index ("node")] && !u->opt.keep_sandboxes)
        s_stop_sandboxes (u);
    up_sup_stop (u->sup, UP_GROUP_INFRA);
    up_sup_say (u->sup, "stopped%s", rc ? " (it could not start)" : "");
    return rc;
}

int lss_cli_up (int argc, char **argv, const lss_config_t *cfg)
{
    s_up_t u;
    memset (&u, 0, sizeof u);
    int prc = up_options_parse (argc + 1, argv - 1, &u.opt, stdout, stderr);
    if (prc != 0)
        return prc == 1 ? 0 : 2;
    char data[UP_PATH_MAX], bin[UP_PATH_MAX], err[512] = "";
    if (u.opt.data_dir[0] ? s_absolute (u.opt.data_dir, data, sizeof data)
                          : up_default_data_dir (geteuid (), getenv ("XDG_DATA_HOME"),
                                                 getenv ("HOME"), data, sizeof data)) {
        fprintf (stderr, "lss up: cannot tell the data directory: give --data-dir\n");
        return 2;
    }
    if (s_bin_dir (bin, sizeof bin) ||
        up_paths_init (&u.paths, data, u.opt.state_dir, bin, geteuid (), err, sizeof err)) {
        fprintf (stderr, "lss up: %s\n", *err ? err : "cannot find my own directory");
        return 1;
    }
    static const char *const redis_dirs[] = {"/usr/bin", "/usr/local/bin", "/usr/sbin", NULL};
    if (s_check_binaries (&u))
        return 1;
    if (s_find_program ("redis-server", redis_dirs, u.redis_server, sizeof u.redis_server)) {
        fprintf (stderr, "lss up: redis-server not found (scripts/install-deps installs it)\n");
        return 1;
    }
    if (!u.opt.without[up_service_index ("api")]) {
        if (up_listen_resolve (u.opt.listen, u.listen, sizeof u.listen, err, sizeof err)) {
            fprintf (stderr, "lss up: %s\n", err);
            return 1;
        }
    } else
        snprintf (u.listen, sizeof u.listen, "%s", u.opt.listen);
    s_api_url (u.listen, u.api_url, sizeof u.api_url);
    u.ns = lss_config_str (cfg, "api.namespace");
    int lock = up_data_lock (&u.paths, err, sizeof err);
    if (lock < 0) {
        fprintf (stderr, "lss up: %s\n", err);
        return 1;
    }
    int rc = 1;
    if (!u.opt.no_seed)
        u.runtime_count = up_seed_detect (getenv ("PATH"), u.runtimes, UP_RUNTIMES_MAX,
                                          u.opt.quiet ? NULL : stdout);
    u.sup = up_sup_new (stdout, u.opt.quiet, u.paths.status);
    if (!u.sup) {
        fprintf (stderr, "lss up: cannot set up the supervisor: %s\n", strerror (errno));
        goto cleanup;
    }
    up_sup_set_info (u.sup, "data_dir", u.paths.data);
    up_sup_set_info (u.sup, "run_dir", u.paths.run);
    up_sup_set_info (u.sup, "dsn", u.paths.dsn);
    up_sup_set_info (u.sup, "redis_url", u.paths.redis_url);
    if (!u.opt.without[up_service_index ("api")]) {
        up_sup_set_info (u.sup, "api_url", u.api_url);
    }
    if (s_prepare (&u) != 0)
        goto cleanup;
    rc = s_run (&u);
cleanup:
    up_sup_destroy (&u.sup);
    if (u.run_dir_made)
        lss_sandbox_fs_rmtree (u.paths.run);
    close (lock);
    return rc;
}
