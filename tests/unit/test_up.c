/*  Tests for the parts of `lss up` (tools/lss/up*.c) that can be checked without the
 *  whole stack (tests/integration/test_up.py runs that one): option parsing and usage
 *  errors, the default data dir, paths (the short run dir fallback, bounds, hostile
 *  characters), every LSS_* variable the plan sets naming a real config key and
 *  winning over the caller's, the api-only secrets, the PostgreSQL and Redis specs and
 *  config, log rotation, the restart backoff, version parsing and the seeded objects
 *  (valid as the store sees them), runtime detection on PATH, traversal checks, the
 *  JWT secret and the lock, the API address check, the readiness probes against real
 *  sockets (HTTP 200/503, Redis +PONG/-LOADING, nothing listening, PostgreSQL down),
 *  and the supervisor with real children (restart with backoff after an exit, output
 *  in the log, status file, stop escalating to SIGKILL). Waits poll with deadlines.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "lss_config.h"
#include "lss_store.h"
#include "lss_util.h"
#include "sandbox_fs.h"
#include "up.h"

#define S_DEADLINE_MS 15000

static char s_dir[64];

static int s_setup (void **state)
{
    (void)state;
    snprintf (s_dir, sizeof s_dir, "/tmp/lss-tu-XXXXXX");
    return mkdtemp (s_dir) ? 0 : -1;
}

static int s_teardown (void **state)
{
    (void)state;
    return lss_sandbox_fs_rmtree (s_dir);
}

/* ------------------------------------------------------------------ options */

static int s_parse (up_options_t *o, const char *const *args)
{
    char *argv[32];
    int argc = 0;
    argv[argc++] = "up";
    for (; args[argc - 1] && argc < 31; argc++)
        argv[argc] = (char *)args[argc - 1];
    argv[argc] = NULL;
    FILE *null = fopen ("/dev/null", "w");
    int rc = up_options_parse (argc, argv, o, null, null);
    fclose (null);
    return rc;
}

static void test_options (void **state)
{
    (void)state;
    up_options_t o;
    const char *none[] = {NULL};
    assert_int_equal (s_parse (&o, none), 0);
    assert_string_equal (o.listen, "127.0.0.1:8080");
    assert_string_equal (o.log_level, "info");
    assert_string_equal (o.data_dir, "");
    assert_int_equal (o.ready_timeout_s, UP_READY_TIMEOUT_S);
    for (int i = 0; i < UP_SERVICE_COUNT; i++)
        assert_false (o.without[i]);

    const char *all[] = {"--data-dir", "/tmp/x",      "--listen",         "0.0.0.0:0",
                         "--without",  "api",         "--without=node",   "--log-level",
                         "debug",      "--state-dir", "/tmp/s",           "--ready-timeout",
                         "5",          "--no-seed",   "--keep-sandboxes", "-q",
                         NULL};
    assert_int_equal (s_parse (&o, all), 0);
    assert_string_equal (o.data_dir, "/tmp/x");
    assert_string_equal (o.state_dir, "/tmp/s");
    assert_string_equal (o.listen, "0.0.0.0:0");
    assert_true (o.without[up_service_index ("api")]);
    assert_true (o.without[up_service_index ("node")]);
    assert_false (o.without[up_service_index ("watcher")]);
    assert_string_equal (o.log_level, "debug");
    assert_int_equal (o.ready_timeout_s, 5);
    assert_true (o.no_seed && o.keep_sandboxes && o.quiet);

    const char *help[] = {"--help", NULL};
    assert_int_equal (s_parse (&o, help), 1);
    const char *bad[][4] = {{"--bogus", NULL},
                            {"--without", "nosuch", NULL},
                            {"--without", NULL},
                            {"--listen", "nonsense", NULL},
                            {"--listen", "127.0.0.1:70000", NULL},
                            {"--listen", ":80", NULL},
                            {"--log-level", "loud", NULL},
                            {"--ready-timeout", "0", NULL},
                            {"--ready-timeout", "5s", NULL},
                            {"--data-dir", "", NULL},
                            {"extra", NULL}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        if (s_parse (&o, bad[i]) != 2)
            fail_msg ("'%s %s' was not a usage error", bad[i][0], bad[i][1] ? bad[i][1] : "");
    }
    assert_int_equal (up_service_index ("executor"), 3);
    assert_int_equal (up_service_index ("postgres"), -1);
    assert_int_equal (up_service_index (NULL), -1);
}

static void test_default_data_dir (void **state)
{
    (void)state;
    char out[UP_PATH_MAX];
    assert_int_equal (up_default_data_dir (0, "/x", "/root", out, sizeof out), 0);
    assert_string_equal (out, "/var/lib/lss");
    assert_int_equal (up_default_data_dir (1000, "/home/u/.data", "/home/u", out, sizeof out),
                      0);
    assert_string_equal (out, "/home/u/.data/lss");
    assert_int_equal (up_default_data_dir (1000, "relative", "/home/u", out, sizeof out), 0);
    assert_string_equal (out, "/home/u/.local/share/lss");
    assert_int_equal (up_default_data_dir (1000, NULL, NULL, out, sizeof out), -1);
}

/* ------------------------------------------------------------------ paths, plan */

static void test_paths (void **state)
{
    (void)state;
    up_paths_t p;
    char err[512];
    assert_int_equal (up_paths_init (&p, "/tmp/d/", NULL, "/b", 0, err, sizeof err), 0);
    assert_string_equal (p.data, "/tmp/d");
    assert_string_equal (p.run, "/tmp/d/run");
    assert_string_equal (p.state, "/tmp/d/sandboxes");
    assert_string_equal (p.pgsock, "/tmp/d/run/pg");
    assert_string_equal (p.dsn, "host=/tmp/d/run/pg port=5432 dbname=lss user=postgres");
    assert_string_equal (p.redis_url, "unix:///tmp/d/run/redis.sock");
    assert_string_equal (p.admin_key, "/tmp/d/admin.key");

    /* a data dir too long for sockets below it: the run dir moves to /tmp */
    char longdir[UP_DATA_DIR_MAX + 1];
    memset (longdir, 'a', 120);
    longdir[0] = '/';
    longdir[120] = '\0';
    assert_int_equal (up_paths_init (&p, longdir, "/tmp/st", "/b", 1234, err, sizeof err), 0);
    assert_memory_equal (p.run, "/tmp/lss-up-1234-", 17);
    assert_true (strlen (p.run) <= UP_RUN_DIR_MAX);
    char again[UP_PATH_MAX];
    snprintf (again, sizeof again, "%s", p.run);
    assert_int_equal (up_paths_init (&p, longdir, "/tmp/st", "/b", 1234, err, sizeof err), 0);
    assert_string_equal (p.run, again); /* stable for one data dir */
    /* ... but the default state dir below it is too long for agent sockets (which only
     * matters when lss-node runs) */
    assert_int_equal (up_paths_init (&p, longdir, NULL, "/b", 0, err, sizeof err), 0);
    assert_int_equal (up_data_prepare (&p, true, err, sizeof err), -1);
    assert_non_null (strstr (err, "--state-dir"));

    assert_int_equal (up_paths_init (&p, "relative", NULL, "/b", 0, err, sizeof err), -1);
    assert_int_equal (up_paths_init (&p, "/tmp/with space", NULL, "/b", 0, err, sizeof err),
                      -1);
    assert_int_equal (up_paths_init (&p, "/tmp/q'uote", NULL, "/b", 0, err, sizeof err), -1);
    assert_int_equal (up_paths_init (&p, "/tmp/d", "/tmp/x;y", "/b", 0, err, sizeof err), -1);
    memset (longdir, 'b', UP_DATA_DIR_MAX);
    longdir[0] = '/';
    longdir[UP_DATA_DIR_MAX] = '\0';
    char toolong[UP_DATA_DIR_MAX + 8];
    snprintf (toolong, sizeof toolong, "%s/more", longdir);
    assert_int_equal (up_paths_init (&p, toolong, "/tmp/s", "/b", 0, err, sizeof err), -1);
}

static void test_env_name (void **state)
{
    (void)state;
    char out[64];
    assert_int_equal (up_env_name ("api.db_dsn", out, sizeof out), 0);
    assert_string_equal (out, "LSS_API_DB_DSN");
    assert_int_equal (up_env_name ("a-b.c", out, sizeof out), 0);
    assert_string_equal (out, "LSS_A_B_C");
    assert_int_equal (up_env_name ("x", out, 4), -1);
}

static bool s_is_config_var (const char *entry)
{
    size_t len = strcspn (entry, "=");
    for (size_t i = 0; i < lss_settings_count; i++) {
        char name[96];
        if (up_env_name (lss_settings[i].key, name, sizeof name) == 0 && strlen (name) == len &&
            strncmp (entry, name, len) == 0)
            return true;
    }
    return false;
}

static const char *s_env_get (char **envp, const char *name)
{
    size_t len = strlen (name);
    const char *found = NULL;
    for (size_t i = 0; envp[i]; i++)
        if (strncmp (envp[i], name, len) == 0 && envp[i][len] == '=') {
            if (found)
                fail_msg ("%s is set twice", name);
            found = envp[i] + len + 1;
        }
    return found;
}

static void test_plan_services (void **state)
{
    (void)state;
    up_paths_t p;
    char err[256];
    assert_int_equal (up_paths_init (&p, "/tmp/d", NULL, "/opt/bin", 0, err, sizeof err), 0);
    char *base[] = {"PATH=/usr/bin:/bin",
                    "LSS_STORE_DSN=host=elsewhere",
                    "LSS_WATCHER_RESYNC=2s",
                    "LSS_API_JWT_SECRET=leaked",
                    "HOME=/root",
                    NULL};
    for (int i = 0; i < UP_SERVICE_COUNT; i++) {
        up_spec_t s;
        assert_int_equal (
            up_plan_service (&s, i, &p, "127.0.0.1:8123", "debug", "sekrit", base), 0);
        bool api = strcmp (up_service_names[i], "api") == 0;
        char bin[64], port_file[96];
        snprintf (bin, sizeof bin, "/opt/bin/lss-%s", up_service_names[i]);
        snprintf (port_file, sizeof port_file, "/tmp/d/run/ports/%s.port", up_service_names[i]);
        assert_string_equal (s.argv[0], bin);
        assert_null (s.argv[1]);
        assert_int_equal (s.group, UP_GROUP_SERVICES);
        assert_int_equal (s.probe, UP_PROBE_HTTP);
        assert_string_equal (s.probe_target, port_file);
        /* every LSS_* we set names a real key (or is the port file mechanism) */
        for (size_t e = 0; s.envp[e]; e++)
            if (strncmp (s.envp[e], "LSS_", 4) == 0 &&
                strncmp (s.envp[e], "LSS_TEST_PORT_FILE=", 19) != 0 &&
                !s_is_config_var (s.envp[e]))
                fail_msg ("%s is no config key", s.envp[e]);
        assert_string_equal (s_env_get (s.envp, "LSS_TEST_PORT_FILE"), port_file);
        assert_string_equal (s_env_get (s.envp, "LSS_STORE_DSN"), p.dsn); /* ours wins */
        assert_string_equal (s_env_get (s.envp, "LSS_API_DB_DSN"), p.dsn);
        assert_string_equal (s_env_get (s.envp, "LSS_REDIS_URL"), p.redis_url);
        assert_string_equal (s_env_get (s.envp, "LSS_WATCHER_RESYNC"), "2s"); /* theirs kept */
        assert_string_equal (s_env_get (s.envp, "PATH"), "/usr/bin:/bin");
        assert_string_equal (s_env_get (s.envp, "LSS_LOG_LEVEL"), "debug");
        assert_string_equal (s_env_get (s.envp, "LSS_API_LISTEN"), "127.0.0.1:8123");
        assert_string_equal (s_env_get (s.envp, "LSS_NODE_STATE_DIR"), "/tmp/d/sandboxes");
        assert_string_equal (s_env_get (s.envp, "LSS_WATCHER_QUEUE_ENDPOINT"),
                             "ipc:///tmp/d/run/watcher.queue");
        assert_string_equal (s_env_get (s.envp, "LSS_RECONCILER_QUEUE_ENDPOINT"),
                             "ipc:///tmp/d/run/watcher.queue");
        assert_string_equal (s_env_get (s.envp, "LSS_API_EXECUTOR_ENDPOINT"),
                             "ipc:///tmp/d/run/executor.router");
        assert_string_equal (s_env_get (s.envp, "LSS_API_WARMPOOL_ENDPOINT"),
                             "ipc:///tmp/d/run/warmpool.alloc");
        assert_string_equal (s_env_get (s.envp, "LSS_API_WATCHER_ENDPOINT"),
                             "ipc:///tmp/d/run/watcher.pub");
        assert_string_equal (s_env_get (s.envp, "LSS_EXECUTOR_ADMIN_LISTEN"), "127.0.0.1:0");
        /* the api's secrets reach the api only, and the caller's copy never */
        const char *jwt = s_env_get (s.envp, "LSS_API_JWT_SECRET");
        const char *key = s_env_get (s.envp, "LSS_API_ADMIN_KEY_FILE");
        if (api) {
            assert_string_equal (jwt, "sekrit");
            assert_string_equal (key, "/tmp/d/admin.key");
        } else {
            assert_null (jwt);
            assert_null (key);
        }
        up_spec_clear (&s);
    }
    up_spec_t s;
    assert_int_equal (up_plan_service (&s, UP_SERVICE_COUNT, &p, "x:1", "info", "", base), -1);
}

static void test_plan_infra (void **state)
{
    (void)state;
    up_paths_t p;
    char err[256];
    assert_int_equal (up_paths_init (&p, "/tmp/d", NULL, "/opt/bin", 0, err, sizeof err), 0);
    char *base[] = {"PATH=/usr/bin", "LSS_STORE_DSN=x", NULL};
    up_spec_t s;
    assert_int_equal (
        up_plan_postgres (&s, &p, "/usr/lib/postgresql/15/bin", true, 101, 104, base), 0);
    assert_string_equal (s.argv[0], "/usr/lib/postgresql/15/bin/postgres");
    bool sock = false, no_tcp = false;
    for (size_t i = 1; s.argv[i]; i++) {
        sock |= strcmp (s.argv[i], "/tmp/d/run/pg") == 0 && strcmp (s.argv[i - 1], "-k") == 0;
        no_tcp |= strcmp (s.argv[i], "listen_addresses=") == 0;
    }
    assert_true (sock && no_tcp);
    assert_true (s.set_ids);
    assert_int_equal (s.uid, 101);
    assert_int_equal (s.stop_signal, SIGINT);
    assert_int_equal (s.group, UP_GROUP_INFRA);
    assert_int_equal (s.probe, UP_PROBE_PG);
    assert_null (s_env_get (s.envp, "LSS_STORE_DSN"));
    assert_string_equal (s_env_get (s.envp, "PATH"), "/usr/bin");
    up_spec_clear (&s);

    assert_int_equal (up_plan_redis (&s, &p, "/usr/bin/redis-server", base), 0);
    assert_string_equal (s.argv[1], "/tmp/d/redis/redis.conf");
    assert_int_equal (s.probe, UP_PROBE_REDIS);
    assert_string_equal (s.probe_target, "/tmp/d/run/redis.sock");
    assert_int_equal (s.stop_signal, SIGTERM);
    up_spec_clear (&s);

    char *conf = up_plan_redis_conf (&p);
    assert_non_null (conf);
    assert_non_null (strstr (conf, "\nport 0\n"));
    assert_non_null (strstr (conf, "\nunixsocket /tmp/d/run/redis.sock\n"));
    assert_non_null (strstr (conf, "\nunixsocketperm 700\n"));
    assert_non_null (strstr (conf, "\ndir /tmp/d/redis\n"));
    assert_non_null (strstr (conf, "\nappendonly yes\n"));
    free (conf);
    char *sh = up_plan_env_sh (&p);
    assert_non_null (sh);
    assert_non_null (strstr (sh, "export LSS_STORE_DSN='host=/tmp/d/run/pg port=5432"));
    assert_non_null (
        strstr (sh, "export LSS_WATCHER_PUB_ENDPOINT='ipc:///tmp/d/run/watcher.pub'"));
    assert_null (strstr (sh, "JWT"));
    free (sh);
}

/* ------------------------------------------------------------------ log, backoff */

static void test_logfile_rotation (void **state)
{
    (void)state;
    char path[128], old[136], text[512];
    snprintf (path, sizeof path, "%s/x.log", s_dir);
    snprintf (old, sizeof old, "%s.1", path);
    up_logfile_t lf;
    assert_int_equal (up_logfile_open (&lf, path, 100), 0);
    const char *line = "0123456789012345678\n"; /* 20 bytes */
    for (int i = 0; i < 4; i++)
        assert_int_equal (up_logfile_write (&lf, line, 20), 0);
    assert_int_equal (lf.size, 80);
    /* two lines in one write: the first still fits, the second starts a new file */
    char two[41];
    snprintf (two, sizeof two, "%s%s", line, line);
    assert_int_equal (up_logfile_write (&lf, two, 40), 0);
    assert_int_equal (lss_sandbox_fs_read (old, text, sizeof text), 100);
    assert_int_equal (lss_sandbox_fs_read (path, text, sizeof text), 20);
    assert_string_equal (text, line);
    /* a line longer than the limit: cut, never more than the limit per file */
    char big[250];
    memset (big, 'x', sizeof big);
    assert_int_equal (up_logfile_write (&lf, big, sizeof big), 0);
    struct stat st;
    assert_int_equal (stat (path, &st), 0);
    assert_true (st.st_size <= 100);
    assert_int_equal (stat (old, &st), 0);
    assert_true (st.st_size <= 100);
    assert_int_equal (up_logfile_printf (&lf, "--- %s\n", "marker"), 0);
    up_logfile_close (&lf);
    /* reopening appends and knows the size */
    assert_int_equal (up_logfile_open (&lf, path, 100), 0);
    assert_int_equal (stat (path, &st), 0);
    assert_int_equal (lf.size, st.st_size);
    up_logfile_close (&lf);
    assert_int_equal (up_logfile_open (&lf, "/nonexistent-dir/x.log", 100), -1);
}

static void test_backoff (void **state)
{
    (void)state;
    int64_t expect[] = {500, 1000, 2000, 4000, 8000, 16000, 30000, 30000};
    int64_t d = 0;
    for (size_t i = 0; i < sizeof expect / sizeof expect[0]; i++) {
        d = up_backoff_next (d, 100);
        assert_int_equal (d, expect[i]);
    }
    assert_int_equal (up_backoff_next (30000, UP_BACKOFF_RESET_MS - 1), 30000);
    assert_int_equal (up_backoff_next (30000, UP_BACKOFF_RESET_MS), 500);
}

/* ------------------------------------------------------------------ seeding */

static void test_parse_version (void **state)
{
    (void)state;
    char v[16];
    assert_int_equal (up_seed_parse_version ("python", "3.11\n", v, sizeof v), 0);
    assert_string_equal (v, "3.11");
    assert_int_equal (up_seed_parse_version ("nodejs", "20\n", v, sizeof v), 0);
    assert_string_equal (v, "20");
    assert_int_equal (up_seed_parse_version ("bash", "5", v, sizeof v), 0);
    const char *bad[][2] = {{"python", "3.11.2\n"}, {"python", "3\n"},     {"python", ".11"},
                            {"python", "3.\n"},     {"nodejs", "v20\n"},   {"nodejs", "20.1"},
                            {"bash", ""},           {"bash", "5\nrm -rf"}, {"bash", "12345"},
                            {"python", "3.11 "},    {"bash", "\n"}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        if (up_seed_parse_version (bad[i][0], bad[i][1], v, sizeof v) == 0)
            fail_msg ("%s version '%s' accepted", bad[i][0], bad[i][1]);
    assert_int_equal (up_seed_parse_version ("python", "3.11", v, 4), -1);
}

static void test_seed_objects (void **state)
{
    (void)state;
    up_runtime_t rt = {.runtime = "python:3.11",
                       .name = "python-3.11",
                       .language = "python",
                       .version = "3.11",
                       .interpreter = "/usr/bin/python3",
                       .package_manager = "pip"};
    char err[256];
    json_t *o = up_seed_runtime_object (&rt);
    assert_non_null (o);
    if (lss_store_validate (o, 1, err, sizeof err) != 0)
        fail_msg ("RuntimeEnvironment invalid: %s", err);
    assert_string_equal (
        json_string_value (json_object_get (json_object_get (o, "metadata"), "name")),
        "python-3.11");
    json_t *spec = json_object_get (o, "spec");
    assert_string_equal (json_string_value (json_object_get (spec, "interpreter")),
                         "/usr/bin/python3");
    assert_string_equal (json_string_value (json_object_get (spec, "language")), "python");
    assert_string_equal (json_string_value (json_object_get (spec, "packageManager")), "pip");
    json_decref (o);
    up_runtime_t bash = {.runtime = "bash:5",
                         .name = "bash-5",
                         .language = "bash",
                         .version = "5",
                         .interpreter = "/usr/bin/bash"};
    o = up_seed_runtime_object (&bash);
    assert_null (json_object_get (json_object_get (o, "spec"), "packageManager"));
    json_decref (o);

    json_t *wp = up_seed_warmpool_object (&rt, "default");
    assert_non_null (wp);
    if (lss_store_validate (wp, 1, err, sizeof err) != 0)
        fail_msg ("WarmPool invalid: %s", err);
    spec = json_object_get (wp, "spec");
    assert_string_equal (json_string_value (json_object_get (spec, "runtime")), "python:3.11");
    assert_int_equal (json_integer_value (json_object_get (spec, "minSize")), 2);
    assert_string_equal (
        json_string_value (json_object_get (json_object_get (wp, "metadata"), "namespace")),
        "default");
    json_decref (wp);
}

static void test_detect (void **state)
{
    (void)state;
    up_runtime_t rts[UP_RUNTIMES_MAX];
    int n = up_seed_detect ("/usr/bin:/bin", rts, UP_RUNTIMES_MAX, NULL);
    bool bash = false;
    for (int i = 0; i < n; i++) {
        assert_true (rts[i].interpreter[0] == '/');
        if (strcmp (rts[i].language, "bash") == 0) {
            bash = true;
            assert_string_equal (rts[i].version, "5");
            assert_string_equal (rts[i].name, "bash-5");
            assert_string_equal (rts[i].runtime, "bash:5");
        }
        if (strcmp (rts[i].language, "python") == 0)
            assert_non_null (strchr (rts[i].version, '.'));
    }
    assert_true (bash); /* Debian always has bash */
    assert_int_equal (up_seed_detect ("/nonexistent", rts, UP_RUNTIMES_MAX, NULL), 0);
    assert_true (up_seed_detect ("/usr/bin:/bin", rts, 1, NULL) <= 1);

    /* an interpreter outside what sandboxes see is not offered, nor one that lies */
    char fake_dir[96], fake[128];
    snprintf (fake_dir, sizeof fake_dir, "%s/bin", s_dir);
    mkdir (fake_dir, 0755);
    snprintf (fake, sizeof fake, "%s/bash", fake_dir);
    const char *script = "#!/bin/sh\necho 5\n";
    assert_int_equal (lss_sandbox_fs_write_atomic (fake, script, strlen (script), 0755), 0);
    assert_int_equal (up_seed_detect (fake_dir, rts, UP_RUNTIMES_MAX, NULL), 0);
}

/* ------------------------------------------------------------------ data directory */

static void test_traversable (void **state)
{
    (void)state;
    char a[96], b[128];
    snprintf (a, sizeof a, "%s/a", s_dir);
    snprintf (b, sizeof b, "%s/b", a);
    assert_int_equal (mkdir (a, 0700), 0);
    assert_int_equal (mkdir (b, 0711), 0);
    chmod (s_dir, 0711);
    assert_false (up_path_traversable (b, 200000, 200000));
    assert_true (up_path_traversable (b, geteuid (), getegid ()));
    chmod (a, 0711);
    assert_true (up_path_traversable (b, 200000, 200000));
    char missing[160];
    snprintf (missing, sizeof missing, "%s/nope", b);
    assert_false (up_path_traversable (missing, 200000, 200000));
    assert_false (up_path_traversable ("relative", 0, 0));
}

static void test_jwt_secret_and_lock (void **state)
{
    (void)state;
    char data[96], err[512];
    snprintf (data, sizeof data, "%s/data", s_dir);
    up_paths_t p;
    assert_int_equal (up_paths_init (&p, data, NULL, "/b", geteuid (), err, sizeof err), 0);
    int lock = up_data_lock (&p, err, sizeof err);
    assert_true (lock >= 0);
    struct stat st;
    assert_int_equal (stat (data, &st), 0);
    assert_int_equal (st.st_mode & 0777, 0711);
    /* a second lock on the same dir (another open file: as another lss up) is refused */
    char pid[16];
    snprintf (pid, sizeof pid, "pid %d", (int)getpid ());
    assert_int_equal (up_data_lock (&p, err, sizeof err), -1);
    assert_non_null (strstr (err, "another lss up"));
    assert_non_null (strstr (err, pid));

    char s1[2 * UP_JWT_SECRET_SIZE + 1], s2[2 * UP_JWT_SECRET_SIZE + 1];
    assert_int_equal (up_data_jwt_secret (&p, s1, sizeof s1, err, sizeof err), 0);
    assert_int_equal (strlen (s1), 2 * UP_JWT_SECRET_SIZE);
    assert_int_equal (strspn (s1, "0123456789abcdef"), 2 * UP_JWT_SECRET_SIZE);
    assert_int_equal (stat (p.jwt_secret, &st), 0);
    assert_int_equal (st.st_mode & 0777, 0600);
    assert_int_equal (up_data_jwt_secret (&p, s2, sizeof s2, err, sizeof err), 0);
    assert_string_equal (s1, s2); /* kept */
    assert_int_equal (lss_sandbox_fs_write_atomic (p.jwt_secret, "short\n", 6, 0600), 0);
    assert_int_equal (up_data_jwt_secret (&p, s2, sizeof s2, err, sizeof err), -1);

    if (geteuid () == 0) { /* s_dir is 0700: sandbox uids could not reach the state dir */
        assert_int_equal (up_data_prepare (&p, true, err, sizeof err), -1);
        assert_non_null (strstr (err, "sandbox users cannot reach"));
        assert_int_equal (up_data_prepare (&p, false, err, sizeof err), 0); /* no node */
    }
    chmod (s_dir, 0711);
    if (up_data_prepare (&p, true, err, sizeof err) != 0)
        fail_msg ("prepare: %s", err);
    assert_int_equal (stat (p.ports, &st), 0);
    char stale[UP_PATH_MAX + 16];
    snprintf (stale, sizeof stale, "%s/stale.sock", p.run);
    assert_int_equal (lss_sandbox_fs_write_atomic (stale, "x", 1, 0600), 0);
    assert_int_equal (up_data_prepare (&p, true, err, sizeof err), 0);
    assert_int_equal (access (stale, F_OK), -1); /* the run dir starts empty */
    close (lock);
    /* released with the descriptor */
    lock = up_data_lock (&p, err, sizeof err);
    assert_true (lock >= 0);
    close (lock);
}

static void test_admin_key_line (void **state)
{
    (void)state;
    char path[96], line[512];
    snprintf (path, sizeof path, "%s/admin.key", s_dir);
    assert_int_equal (up_admin_key_line (path, false, line, sizeof line), 0); /* not yet */
    assert_int_equal (lss_sandbox_fs_write_atomic (path, "", 0, 0600), 0);
    assert_int_equal (up_admin_key_line (path, false, line, sizeof line), 0); /* empty */
    const char *key = "lsp_abcdef0123456789\n";
    assert_int_equal (lss_sandbox_fs_write_atomic (path, key, strlen (key), 0600), 0);
    assert_int_equal (up_admin_key_line (path, false, line, sizeof line), 1);
    char want[256];
    snprintf (want, sizeof want, "lsp_abcdef0123456789  (saved in %s; printed only this once)",
              path);
    assert_string_equal (line, want);
    /* a later run: the path only, never the key */
    assert_int_equal (up_admin_key_line (path, true, line, sizeof line), 1);
    assert_null (strstr (line, "lsp_"));
    assert_non_null (strstr (line, path));
    /* not a key: never echoed (it could be anything, e.g. terminal escapes) */
    const char *bad[] = {"hello\n", "lsp_\n", "lsp_ab\033[2Jcd\n", "lsp_a b\n"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal (lss_sandbox_fs_write_atomic (path, bad[i], strlen (bad[i]), 0600), 0);
        assert_int_equal (up_admin_key_line (path, false, line, sizeof line), 1);
        assert_non_null (strstr (line, "does not look like"));
    }
    char big[2048];
    memset (big, 'a', sizeof big);
    memcpy (big, "lsp_", 4);
    assert_int_equal (lss_sandbox_fs_write_atomic (path, big, sizeof big, 0600), 0);
    assert_int_equal (up_admin_key_line (path, false, line, sizeof line), 1);
    assert_non_null (strstr (line, "does not look like"));
}

static void test_listen_resolve (void **state)
{
    (void)state;
    char out[UP_ADDR_MAX], err[256];
    assert_int_equal (up_listen_resolve ("127.0.0.1:0", out, sizeof out, err, sizeof err), 0);
    int port = (int)strtol (strchr (out, ':') + 1, NULL, 10);
    assert_true (port > 0);
    /* hold that port: now it is taken */
    int fd = socket (AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons ((uint16_t)port)};
    a.sin_addr.s_addr = htonl (INADDR_LOOPBACK);
    assert_int_equal (bind (fd, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal (listen (fd, 1), 0);
    assert_int_equal (up_listen_resolve (out, out, sizeof out, err, sizeof err), -1);
    assert_non_null (strstr (err, "--listen"));
    close (fd);
    assert_int_equal (up_listen_resolve ("nonsense", out, sizeof out, err, sizeof err), -1);
    assert_int_equal (
        up_listen_resolve ("no.such.host.invalid:0", out, sizeof out, err, sizeof err), -1);
}

/* ------------------------------------------------------------------ probes */

static up_probe_result_t s_run_probe (up_probe_t *p)
{
    int64_t deadline = lss_time_mono_ms () + S_DEADLINE_MS;
    up_probe_result_t r;
    while ((r = up_probe_step (p)) == UP_PROBE_PENDING && lss_time_mono_ms () < deadline) {
        short ev;
        struct pollfd pf = {.fd = up_probe_fd (p, &ev)};
        pf.events = ev;
        poll (&pf, pf.fd >= 0 ? 1 : 0, 50);
    }
    return r;
}

/*  Probes a listener that answers reply to whatever it gets. */
static up_probe_result_t s_probe_against (int listener, up_probe_kind_t kind,
                                          const char *target, int port, const char *reply,
                                          char *got, size_t got_size)
{
    up_probe_t *p = up_probe_start (kind, target, port, 2000);
    assert_non_null (p);
    up_probe_step (p); /* sends its request */
    int c = accept4 (listener, NULL, NULL, SOCK_CLOEXEC);
    assert_true (c >= 0);
    /* wait for the request, then answer */
    int64_t deadline = lss_time_mono_ms () + S_DEADLINE_MS;
    size_t len = 0;
    got[0] = '\0';
    while (!strstr (got, "\r\n") && lss_time_mono_ms () < deadline) {
        up_probe_step (p);
        struct pollfd pf = {.fd = c, .events = POLLIN};
        if (poll (&pf, 1, 50) == 1) {
            ssize_t n = read (c, got + len, got_size - 1 - len);
            if (n <= 0)
                break;
            len += (size_t)n;
            got[len] = '\0';
        }
    }
    assert_int_equal (write (c, reply, strlen (reply)), (ssize_t)strlen (reply));
    close (c);
    up_probe_result_t r = s_run_probe (p);
    up_probe_destroy (&p);
    return r;
}

static void test_probe_http (void **state)
{
    (void)state;
    int l = socket (AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET};
    a.sin_addr.s_addr = htonl (INADDR_LOOPBACK);
    socklen_t al = sizeof a;
    assert_int_equal (bind (l, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal (listen (l, 4), 0);
    getsockname (l, (struct sockaddr *)&a, &al);
    int port = ntohs (a.sin_port);
    char got[512];
    assert_int_equal (s_probe_against (l, UP_PROBE_HTTP, NULL, port,
                                       "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", got,
                                       sizeof got),
                      UP_PROBE_OK);
    assert_memory_equal (got, "GET /readyz HTTP/1.0\r\n", 22);
    assert_int_equal (s_probe_against (l, UP_PROBE_HTTP, NULL, port,
                                       "HTTP/1.1 503 Service Unavailable\r\n\r\n", got,
                                       sizeof got),
                      UP_PROBE_FAILED);
    assert_int_equal (
        s_probe_against (l, UP_PROBE_HTTP, NULL, port, "garbage\r\n", got, sizeof got),
        UP_PROBE_FAILED);
    close (l);
    /* nothing listens there any more */
    up_probe_t *p = up_probe_start (UP_PROBE_HTTP, NULL, port, 2000);
    assert_int_equal (s_run_probe (p), UP_PROBE_FAILED);
    assert_true (strlen (up_probe_error (p)) > 0);
    up_probe_destroy (&p);
}

static void test_probe_redis (void **state)
{
    (void)state;
    char path[108];
    snprintf (path, sizeof path, "%s/r.sock", s_dir);
    int l = socket (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    snprintf (a.sun_path, sizeof a.sun_path, "%s", path);
    assert_int_equal (bind (l, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal (listen (l, 4), 0);
    char got[64];
    assert_int_equal (
        s_probe_against (l, UP_PROBE_REDIS, path, 0, "+PONG\r\n", got, sizeof got),
        UP_PROBE_OK);
    assert_string_equal (got, "PING\r\n");
    assert_int_equal (s_probe_against (l, UP_PROBE_REDIS, path, 0,
                                       "-LOADING Redis is loading the dataset in memory\r\n",
                                       got, sizeof got),
                      UP_PROBE_FAILED);
    close (l);
    unlink (path);
    up_probe_t *p = up_probe_start (UP_PROBE_REDIS, path, 0, 2000);
    assert_int_equal (s_run_probe (p), UP_PROBE_FAILED);
    up_probe_destroy (&p);
}

static void test_probe_pg_down (void **state)
{
    (void)state;
    char dsn[160];
    snprintf (dsn, sizeof dsn, "host=%s port=5432 dbname=postgres connect_timeout=1", s_dir);
    up_probe_t *p = up_probe_start (UP_PROBE_PG, dsn, 0, 2000);
    assert_int_equal (s_run_probe (p), UP_PROBE_FAILED);
    assert_true (strlen (up_probe_error (p)) > 0);
    up_probe_destroy (&p);
    p = up_probe_start (UP_PROBE_PG, "this is = not a dsn '", 0, 2000);
    assert_int_equal (s_run_probe (p), UP_PROBE_FAILED);
    up_probe_destroy (&p);
}

/* ------------------------------------------------------------------ supervisor */

static void s_shell_spec (up_spec_t *s, const char *name, const char *script, int stop_ms)
{
    memset (s, 0, sizeof *s);
    up_strv_t argv = {0}, env = {0};
    assert_int_equal (up_strv_push (&argv, "/bin/sh"), 0);
    assert_int_equal (up_strv_push (&argv, "-c"), 0);
    assert_int_equal (up_strv_push (&argv, script), 0);
    assert_int_equal (up_strv_push (&env, "PATH=/usr/bin:/bin"), 0);
    s->argv = up_strv_take (&argv);
    s->envp = up_strv_take (&env);
    snprintf (s->name, sizeof s->name, "%s", name);
    s->group = UP_GROUP_SERVICES;
    s->stop_signal = SIGTERM;
    s->stop_timeout_ms = stop_ms;
    s->probe = UP_PROBE_REDIS; /* a socket that never exists: never ready */
    snprintf (s->probe_target, sizeof s->probe_target, "%s/none.sock", s_dir);
    snprintf (s->log_path, sizeof s->log_path, "%s/%s.log", s_dir, name);
}

static json_t *s_status (const char *path, const char *proc)
{
    json_t *root = json_load_file (path, 0, NULL);
    json_t *p = json_incref (json_object_get (json_object_get (root, "processes"), proc));
    json_decref (root);
    return p;
}

static void test_supervisor (void **state)
{
    (void)state;
    char status[96], out_path[96], log_text[8192];
    snprintf (status, sizeof status, "%s/status.json", s_dir);
    snprintf (out_path, sizeof out_path, "%s/sup.out", s_dir);
    FILE *out = fopen (out_path, "w+");
    assert_non_null (out);
    up_sup_t *sup = up_sup_new (out, false, status);
    assert_non_null (sup);
    up_spec_t s;
    s_shell_spec (&s, "crasher", "echo hello from $$; exit 3", 1000);
    assert_int_equal (up_sup_add (sup, &s), 0);
    assert_null (s.argv); /* taken */
    s_shell_spec (&s, "stubborn", "trap '' TERM; echo up; while :; do sleep 1; done", 300);
    assert_int_equal (up_sup_add (sup, &s), 0);
    up_sup_start (sup, UP_GROUP_SERVICES);

    /* crasher: exits, is restarted after 0.5 s, exits again (backoff 1 s) */
    int64_t deadline = lss_time_mono_ms () + S_DEADLINE_MS;
    int restarts = 0;
    while (lss_time_mono_ms () < deadline) {
        up_sup_turn (sup, 100);
        json_t *c = s_status (status, "crasher");
        restarts = (int)json_integer_value (json_object_get (c, "restarts"));
        json_decref (c);
        if (restarts >= 2)
            break;
    }
    assert_true (restarts >= 2);
    assert_false (up_sup_ready (sup, UP_GROUP_SERVICES));
    char names[64];
    up_sup_not_ready (sup, UP_GROUP_SERVICES, names, sizeof names);
    assert_string_equal (names, "crasher, stubborn");
    json_t *c = s_status (status, "crasher");
    assert_string_equal (json_string_value (json_object_get (c, "last_exit")),
                         "exited with code 3");
    json_decref (c);
    char log_path[96];
    snprintf (log_path, sizeof log_path, "%s/crasher.log", s_dir);
    assert_true (lss_sandbox_fs_read (log_path, log_text, sizeof log_text) > 0);
    assert_non_null (strstr (log_text, "hello from"));
    assert_non_null (strstr (log_text, "--- lss up: crasher exited with code 3"));

    /* stop: the crasher (waiting to restart) just stops; stubborn ignores SIGTERM and is
     * killed after its 300 ms */
    int64_t t0 = lss_time_mono_ms ();
    up_sup_stop (sup, UP_GROUP_SERVICES);
    assert_true (lss_time_mono_ms () - t0 < 5000);
    json_t *st = s_status (status, "stubborn");
    assert_string_equal (json_string_value (json_object_get (st, "state")), "stopped");
    assert_string_equal (json_string_value (json_object_get (st, "last_exit")),
                         "killed by signal 9 (SIGKILL)");
    json_decref (st);
    assert_int_equal (up_sup_stop_requests (sup), 0);
    up_sup_destroy (&sup);
    assert_int_equal (access (status, F_OK), -1); /* removed with the supervisor */
    fflush (out);
    rewind (out);
    size_t n = fread (log_text, 1, sizeof log_text - 1, out);
    log_text[n] = '\0';
    fclose (out);
    assert_non_null (strstr (log_text, "crasher    exited with code 3; restarting in 0.5 s"));
    assert_non_null (strstr (log_text, "crasher    exited with code 3; restarting in 1.0 s"));
    assert_non_null (strstr (log_text, "stubborn   did not stop within 0.3 s: SIGKILL"));
    assert_int_equal (waitpid (-1, NULL, WNOHANG), -1); /* everything reaped */
}

static void test_supervisor_signal (void **state)
{
    (void)state;
    FILE *out = fopen ("/dev/null", "w");
    up_sup_t *sup = up_sup_new (out, true, NULL);
    assert_non_null (sup);
    /* SIGTERM to ourselves lands in the signalfd, not as a default action */
    assert_int_equal (kill (getpid (), SIGTERM), 0);
    int64_t deadline = lss_time_mono_ms () + S_DEADLINE_MS;
    while (up_sup_stop_requests (sup) == 0 && lss_time_mono_ms () < deadline)
        up_sup_turn (sup, 100);
    assert_int_equal (up_sup_stop_requests (sup), 1);
    up_sup_destroy (&sup);
    fclose (out);
}

int main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_options),
        cmocka_unit_test (test_default_data_dir),
        cmocka_unit_test (test_paths),
        cmocka_unit_test (test_env_name),
        cmocka_unit_test (test_plan_services),
        cmocka_unit_test (test_plan_infra),
        cmocka_unit_test_setup_teardown (test_logfile_rotation, s_setup, s_teardown),
        cmocka_unit_test (test_backoff),
        cmocka_unit_test (test_parse_version),
        cmocka_unit_test (test_seed_objects),
        cmocka_unit_test_setup_teardown (test_detect, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_traversable, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_jwt_secret_and_lock, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_admin_key_line, s_setup, s_teardown),
        cmocka_unit_test (test_listen_resolve),
        cmocka_unit_test_setup_teardown (test_probe_http, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_probe_redis, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_probe_pg_down, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_supervisor, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_supervisor_signal, s_setup, s_teardown),
    };
    if (getenv ("TEST_FILTER"))
        cmocka_set_test_filter (getenv ("TEST_FILTER"));
    return cmocka_run_group_tests (tests, NULL, NULL);
}
