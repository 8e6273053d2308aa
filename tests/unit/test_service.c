/*  Tests for lss_service with a real process (tests/unit/helpers/service_demo): start
 *  with an ephemeral admin port (learnt from LSS_TEST_PORT_FILE), wait until /readyz is
 *  200, then SIGTERM / SIGINT → exit 0; a blocking poll woken by the signal; the
 *  watchdog (exit 1 after service.shutdown_timeout, or at once on a second signal); a
 *  bad config → exit 2 naming the key; --help, --version, bad arguments, a taken admin
 *  port. Every wait polls with a deadline. Each test works in its own temporary
 *  directory (port file, captured stdout and stderr), removed at the end.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <arpa/inet.h>
#include <curl/curl.h>
#include <libgen.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <czmq.h>

#include "lss_service.h"
#include "lss_testproc.h"

#define S_START_TIMEOUT_MS 15000
#define S_EXIT_TIMEOUT_MS  5000

static char s_demo_path[PATH_MAX];

typedef struct {
    char dir[64];        /* temporary directory */
    char port_file[128]; /* dir/port */
    char out_file[128];  /* child's stdout */
    char err_file[128];  /* child's stderr */
    tp_proc_t proc;
    int port;
    bool reaped; /* by s_exited; status holds the wait status */
    int status;
} s_child_t;

/*  The one child of the running test (static, so the teardown can clean up after a
 *  failed assertion has left the test function). */
static s_child_t s_c;

static void s_sleep_ms (long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000};
    nanosleep (&ts, NULL); /* poll interval, not synchronisation */
}

/*  Starts service_demo with extra args and NULL-terminated "NAME=value" overrides. */
static void s_start (s_child_t *c, const char *const *args, const char *const *env_extra)
{
    memset (c, 0, sizeof *c);
    snprintf (c->dir, sizeof c->dir, "/tmp/lss-test-service-XXXXXX");
    assert_non_null (mkdtemp (c->dir));
    snprintf (c->port_file, sizeof c->port_file, "%s/port", c->dir);
    snprintf (c->out_file, sizeof c->out_file, "%s/stdout", c->dir);
    snprintf (c->err_file, sizeof c->err_file, "%s/stderr", c->dir);

    /*  Environment: ours, minus the keys we set and any config file, plus overrides. */
    static char port_env[160];
    snprintf (port_env, sizeof port_env, "LSS_TEST_PORT_FILE=%s", c->port_file);
    const char *defaults[] = {"LSS_WATCHER_ADMIN_LISTEN=127.0.0.1:0", port_env, NULL};
    char *envp[512];
    size_t n = 0;
    for (char **e = environ; *e && n < 400; e++) {
        if (strncmp (*e, "LSS_", 4) == 0 && strncmp (*e, "LSS_BUILD_DIR=", 14) != 0 &&
            strncmp (*e, "LSS_ROOT=", 9) != 0)
            continue;
        envp[n++] = *e;
    }
    for (size_t i = 0; defaults[i]; i++)
        envp[n++] = (char *)defaults[i];
    for (size_t i = 0; env_extra && env_extra[i]; i++)
        envp[n++] = (char *)env_extra[i];
    envp[n] = NULL;

    char *argv[16];
    size_t a = 0;
    argv[a++] = s_demo_path;
    for (size_t i = 0; args && args[i] && a < 15; i++)
        argv[a++] = (char *)args[i];
    argv[a] = NULL;

    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init (&fa);
    posix_spawn_file_actions_addopen (&fa, 1, c->out_file, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    posix_spawn_file_actions_addopen (&fa, 2, c->err_file, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    c->proc.out_fd = -1;
    int rc = posix_spawn (&c->proc.pid, argv[0], &fa, NULL, argv, envp);
    posix_spawn_file_actions_destroy (&fa);
    if (rc != 0)
        fail_msg ("cannot spawn %s: %s", argv[0], strerror (rc));
}

/*  Reads a whole (small) file into out; "" if absent. */
static void s_read_file (const char *path, char *out, size_t size)
{
    out[0] = '\0';
    FILE *f = fopen (path, "r");
    if (!f)
        return;
    size_t n = fread (out, 1, size - 1, f);
    out[n] = '\0';
    fclose (f);
}

static bool s_exited (s_child_t *c)
{
    if (!c->reaped && c->proc.pid > 0 &&
        waitpid (c->proc.pid, &c->status, WNOHANG) == c->proc.pid) {
        c->proc.pid = 0;
        c->reaped = true;
    }
    return c->reaped;
}

/*  Waits for the port file; fails if the child exits first or the deadline passes. */
static void s_wait_port (s_child_t *c)
{
    long long deadline = tp_now_ms () + S_START_TIMEOUT_MS;
    char text[32];
    for (;;) {
        s_read_file (c->port_file, text, sizeof text);
        if (strchr (text, '\n')) {
            c->port = (int)strtol (text, NULL, 10);
            assert_true (c->port > 0 && c->port < 65536);
            return;
        }
        if (s_exited (c)) {
            char err[4096];
            s_read_file (c->err_file, err, sizeof err);
            fail_msg ("service_demo exited before listening; stderr:\n%s", err);
        }
        if (tp_now_ms () > deadline)
            fail_msg ("no port file after %d ms", S_START_TIMEOUT_MS);
        s_sleep_ms (5);
    }
}

typedef struct {
    char *data;
    size_t len, size;
} s_body_t;

static size_t s_on_body (char *data, size_t size, size_t n, void *arg)
{
    s_body_t *body = arg;
    size_t len = size * n;
    if (body && body->len + len < body->size) {
        memcpy (body->data + body->len, data, len);
        body->len += len;
        body->data[body->len] = '\0';
    }
    return len;
}

/*  GET path on an admin port; returns the status (0 if no answer) and the start of the
 *  body in text (NULL = discard). */
static long s_http_get (int port, const char *path, char *text, size_t text_size)
{
    CURL *curl = curl_easy_init ();
    assert_non_null (curl);
    char url[128];
    snprintf (url, sizeof url, "http://127.0.0.1:%d%s", port, path);
    s_body_t body = {text, 0, text_size};
    if (text)
        text[0] = '\0';
    curl_easy_setopt (curl, CURLOPT_URL, url);
    curl_easy_setopt (curl, CURLOPT_TIMEOUT_MS, 2000L);
    curl_easy_setopt (curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt (curl, CURLOPT_WRITEFUNCTION, s_on_body);
    curl_easy_setopt (curl, CURLOPT_WRITEDATA, text ? &body : NULL);
    long status = 0;
    if (curl_easy_perform (curl) == CURLE_OK)
        curl_easy_getinfo (curl, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_cleanup (curl);
    return status;
}

static long s_http_status (int port, const char *path)
{
    return s_http_get (port, path, NULL, 0);
}

/*  Waits until /readyz answers 200. */
static void s_wait_ready (s_child_t *c)
{
    s_wait_port (c);
    long long deadline = tp_now_ms () + S_START_TIMEOUT_MS;
    while (s_http_status (c->port, "/readyz") != 200) {
        assert_false (s_exited (c));
        if (tp_now_ms () > deadline)
            fail_msg ("/readyz never answered 200");
        s_sleep_ms (10);
    }
}

/*  Waits until the child's stderr contains text. */
static void s_wait_stderr (s_child_t *c, const char *text)
{
    long long deadline = tp_now_ms () + S_START_TIMEOUT_MS;
    char err[65536];
    for (;;) {
        s_read_file (c->err_file, err, sizeof err);
        if (strstr (err, text))
            return;
        if (tp_now_ms () > deadline)
            fail_msg ("stderr never showed '%s':\n%s", text, err);
        s_sleep_ms (5);
    }
}

/*  Reaps the child (killing it past timeout_ms); returns the wait status or -1. */
static int s_wait_exit (s_child_t *c, int timeout_ms)
{
    if (s_exited (c))
        return c->status;
    return tp_wait (&c->proc, timeout_ms);
}

/*  Kills anything left and removes the directory. */
static void s_cleanup (s_child_t *c)
{
    if (!c->dir[0])
        return;
    if (c->proc.pid > 0)
        tp_kill (&c->proc);
    char path[160];
    const char *names[] = {"port", "port.tmp", "stdout", "stderr"};
    for (size_t i = 0; i < 4; i++) {
        snprintf (path, sizeof path, "%s/%s", c->dir, names[i]);
        unlink (path);
    }
    rmdir (c->dir);
    c->dir[0] = '\0';
}

static int s_teardown (void **state)
{
    (void)state;
    s_cleanup (&s_c);
    return 0;
}

static void s_stop_cleanly (int sig, const char *const *args)
{
    s_child_t *c = &s_c;
    s_start (c, args, NULL);
    s_wait_ready (c);
    assert_int_equal (s_http_status (c->port, "/healthz"), 200);
    assert_int_equal (s_http_status (c->port, "/nope"), 404);
    long long sent = tp_now_ms ();
    assert_int_equal (kill (c->proc.pid, sig), 0);
    int status = s_wait_exit (c, S_EXIT_TIMEOUT_MS);
    long long took = tp_now_ms () - sent;
    char err[65536];
    s_read_file (c->err_file, err, sizeof err);
    if (!(status >= 0 && WIFEXITED (status) && WEXITSTATUS (status) == 0))
        fail_msg ("exit status %d after %lld ms; stderr:\n%s", status, took, err);
    /*  The lifecycle was logged: address, stop cause, uptime. */
    char admin[64];
    snprintf (admin, sizeof admin, "\"admin\":\"127.0.0.1:%d\"", c->port);
    assert_non_null (strstr (err, admin));
    const char *cause = sig == SIGTERM ? "\"cause\":\"SIGTERM\"" : "\"cause\":\"SIGINT\"";
    assert_non_null (strstr (err, cause));
    assert_non_null (strstr (err, "\"msg\":\"stopped\""));
    assert_non_null (strstr (err, "\"uptime_ms\":"));
    assert_null (strstr (err, "\"level\":\"error\""));
    s_cleanup (c);
}

static void test_sigterm_exits_cleanly (void **state)
{
    (void)state;
    s_stop_cleanly (SIGTERM, NULL);
}

static void test_sigint_exits_cleanly (void **state)
{
    (void)state;
    s_stop_cleanly (SIGINT, NULL);
}

static void test_signal_wakes_blocking_poll (void **state)
{
    (void)state;
    /*  The demo polls with no timeout: only the signal (interrupting zmq_poll, or making
     *  the stop fd readable) ends it. A long watchdog, so that a missed wake-up shows as
     *  a hang (killed: -1), not as exit 1. */
    const char *args[] = {"--block", NULL};
    const char *env[] = {"LSS_SERVICE_SHUTDOWN_TIMEOUT=60000", NULL};
    s_child_t *c = &s_c;
    s_start (c, args, env);
    s_wait_ready (c);
    assert_int_equal (kill (c->proc.pid, SIGTERM), 0);
    int status = s_wait_exit (c, S_EXIT_TIMEOUT_MS);
    assert_true (status >= 0 && WIFEXITED (status));
    assert_int_equal (WEXITSTATUS (status), 0);
    char err[65536];
    s_read_file (c->err_file, err, sizeof err);
    assert_non_null (strstr (err, "\"msg\":\"poll ended\""));
    s_cleanup (c);
}

static void test_watchdog_fires (void **state)
{
    (void)state;
    const long timeout_ms = 300;
    const char *args[] = {"--hang-on-stop", NULL};
    const char *env[] = {"LSS_SERVICE_SHUTDOWN_TIMEOUT=300", NULL};
    s_child_t *c = &s_c;
    s_start (c, args, env);
    s_wait_ready (c);
    long long sent = tp_now_ms ();
    assert_int_equal (kill (c->proc.pid, SIGTERM), 0);
    int status = s_wait_exit (c, (int)timeout_ms + 3000);
    long long took = tp_now_ms () - sent;
    assert_true (status >= 0 && WIFEXITED (status));
    assert_int_equal (WEXITSTATUS (status), 1);
    assert_true (took >= timeout_ms);
    assert_true (took < timeout_ms + 3000);
    char err[65536];
    s_read_file (c->err_file, err, sizeof err);
    assert_non_null (strstr (err, "shutdown timed out"));
    s_cleanup (c);
}

static void test_second_signal_forces_exit (void **state)
{
    (void)state;
    const char *args[] = {"--hang-on-stop", NULL};
    const char *env[] = {"LSS_SERVICE_SHUTDOWN_TIMEOUT=60000", NULL};
    s_child_t *c = &s_c;
    s_start (c, args, env);
    s_wait_ready (c);
    assert_int_equal (kill (c->proc.pid, SIGTERM), 0);
    s_wait_stderr (c, "\"msg\":\"stopping\""); /* the first one was taken */
    /*  Still running: it hangs and the watchdog waits a minute. */
    assert_false (s_exited (c));
    assert_int_equal (s_http_status (c->port, "/healthz"), 200);
    assert_int_equal (s_http_status (c->port, "/readyz"), 503); /* "stopping" */
    long long sent = tp_now_ms ();
    assert_int_equal (kill (c->proc.pid, SIGINT), 0);
    int status = s_wait_exit (c, S_EXIT_TIMEOUT_MS);
    assert_true (status >= 0 && WIFEXITED (status));
    assert_int_equal (WEXITSTATUS (status), 1);
    assert_true (tp_now_ms () - sent < S_EXIT_TIMEOUT_MS);
    char err[65536];
    s_read_file (c->err_file, err, sizeof err);
    assert_non_null (strstr (err, "second signal"));
    s_cleanup (c);
}

/*  Runs the demo to completion (it must exit by itself); returns the wait status and
 *  fills out/err with what it printed. */
static int s_run (const char *const *args, const char *const *env, char *out, size_t out_size,
                  char *err, size_t err_size)
{
    s_child_t *c = &s_c;
    s_start (c, args, env);
    int status = s_wait_exit (c, S_EXIT_TIMEOUT_MS);
    s_read_file (c->out_file, out, out_size);
    s_read_file (c->err_file, err, err_size);
    s_cleanup (c);
    return status;
}

static void test_bad_config_exits_2 (void **state)
{
    (void)state;
    char out[4096], err[8192];
    const char *env[] = {"LSS_BUS_SNDHWM=0", NULL};
    int status = s_run (NULL, env, out, sizeof out, err, sizeof err);
    assert_true (status >= 0 && WIFEXITED (status));
    assert_int_equal (WEXITSTATUS (status), 2);
    if (!strstr (err, "LSS_BUS_SNDHWM") && !strstr (err, "bus.sndhwm"))
        fail_msg ("stderr does not name the key:\n%s", err);
    assert_non_null (strstr (err, "lss-watcher: configuration error: "));

    /*  A config file that does not exist, and an unknown log level. */
    const char *missing[] = {"--config", "/nonexistent/lss.yaml", NULL};
    status = s_run (missing, NULL, out, sizeof out, err, sizeof err);
    assert_true (status >= 0 && WIFEXITED (status));
    assert_int_equal (WEXITSTATUS (status), 2);
    assert_non_null (strstr (err, "/nonexistent/lss.yaml"));
    const char *level[] = {"--log-level", "chatty", NULL};
    status = s_run (level, NULL, out, sizeof out, err, sizeof err);
    assert_true (status >= 0 && WIFEXITED (status));
    assert_int_equal (WEXITSTATUS (status), 2);
    assert_non_null (strstr (err, "log.level"));
}

static void test_help_version_usage (void **state)
{
    (void)state;
    char out[16384], err[8192];
    const char *help[] = {"--help", NULL};
    int status = s_run (help, NULL, out, sizeof out, err, sizeof err);
    assert_true (status >= 0 && WIFEXITED (status));
    assert_int_equal (WEXITSTATUS (status), 0);
    assert_non_null (strstr (out, "Usage: lss-watcher"));
    assert_non_null (strstr (out, "watcher.admin_listen"));
    assert_non_null (strstr (out, "LSS_WATCHER_ADMIN_LISTEN"));
    assert_non_null (strstr (out, "admin HTTP (health, metrics) listen address"));
    assert_non_null (strstr (out, "service.shutdown_timeout"));
    assert_non_null (strstr (out, "bus.resolve_interval")); /* every service has bus sockets */
    assert_null (strstr (out, "executor.admin_listen"));    /* other services' keys */

    const char *version[] = {"--version", NULL};
    status = s_run (version, NULL, out, sizeof out, err, sizeof err);
    assert_true (status >= 0 && WIFEXITED (status));
    assert_int_equal (WEXITSTATUS (status), 0);
    assert_memory_equal (out, "lss-watcher ", 12);

    const char *bad[] = {"--frobnicate", NULL};
    status = s_run (bad, NULL, out, sizeof out, err, sizeof err);
    assert_true (status >= 0 && WIFEXITED (status));
    assert_int_equal (WEXITSTATUS (status), 2);
    assert_non_null (strstr (err, "--frobnicate"));
    assert_non_null (strstr (err, "Usage: lss-watcher"));

    const char *missing[] = {"--config", NULL};
    status = s_run (missing, NULL, out, sizeof out, err, sizeof err);
    assert_true (status >= 0 && WIFEXITED (status));
    assert_int_equal (WEXITSTATUS (status), 2);
}

static void test_admin_port_taken (void **state)
{
    (void)state;
    int fd = socket (AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true (fd >= 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl (INADDR_LOOPBACK)};
    assert_int_equal (bind (fd, (struct sockaddr *)&sa, sizeof sa), 0);
    assert_int_equal (listen (fd, 1), 0);
    socklen_t len = sizeof sa;
    assert_int_equal (getsockname (fd, (struct sockaddr *)&sa, &len), 0);
    char listen_env[64];
    snprintf (listen_env, sizeof listen_env, "LSS_WATCHER_ADMIN_LISTEN=127.0.0.1:%d",
              ntohs (sa.sin_port));
    const char *env[] = {listen_env, NULL};
    char out[4096], err[8192];
    int status = s_run (NULL, env, out, sizeof out, err, sizeof err);
    close (fd);
    assert_true (status >= 0 && WIFEXITED (status));
    assert_int_equal (WEXITSTATUS (status), 1);
    assert_non_null (strstr (err, "admin endpoint cannot listen"));
}

static bool s_custom_ready (void *arg, char *reason, size_t reason_size)
{
    (void)arg;
    snprintf (reason, reason_size, "custom says no");
    return false;
}

/*  The service in this very process: readiness, what the signal handler does (stopping
 *  flag, zsys_interrupted, /readyz "stopping"), and what destroy restores. */
static void test_in_process (void **state)
{
    (void)state;
    struct sigaction before;
    sigaction (SIGTERM, NULL, &before);
    setenv ("LSS_WATCHER_ADMIN_LISTEN", "127.0.0.1:0", 1);
    char *argv[] = {"test_service", "--log-level", "warn", NULL};
    lss_service_t *svc = lss_service_new ("watcher", 3, argv);
    unsetenv ("LSS_WATCHER_ADMIN_LISTEN");
    assert_non_null (svc);
    assert_int_equal (lss_service_exit_code (), 0);
    assert_string_equal (lss_service_name (svc), "watcher");
    assert_string_equal (lss_config_str (lss_service_config (svc), "log.level"), "warn");
    lss_admin_t *admin = lss_service_admin (svc);
    assert_non_null (admin);
    int port = lss_admin_port (admin);
    struct sigaction sa;
    sigaction (SIGPIPE, NULL, &sa);
    assert_true (sa.sa_handler == SIG_IGN);

    char text[256];
    assert_int_equal (s_http_get (port, "/readyz", text, sizeof text), 503);
    assert_string_equal (text, "not ready: starting\n");
    lss_service_set_ready (svc, true, NULL);
    assert_int_equal (s_http_get (port, "/readyz", text, sizeof text), 200);
    lss_service_set_ready (svc, false, "store unreachable");
    assert_int_equal (s_http_get (port, "/readyz", text, sizeof text), 503);
    assert_string_equal (text, "not ready: store unreachable\n");
    lss_service_set_ready_fn (svc, s_custom_ready, NULL);
    assert_int_equal (s_http_get (port, "/readyz", text, sizeof text), 503);
    assert_string_equal (text, "not ready: custom says no\n");
    lss_service_set_ready_fn (svc, NULL, NULL);
    lss_service_set_ready (svc, true, NULL);
    lss_service_heartbeat (svc);
    assert_int_equal (s_http_get (port, "/healthz", text, sizeof text), 200);

    /*  The handler: flag, stop fd, CZMQ's interrupted, readiness. */
    zsys_interrupted = 0;
    assert_false (lss_service_stopping (svc));
    struct pollfd pfd = {.fd = lss_service_stop_fd (svc), .events = POLLIN};
    assert_true (pfd.fd >= 0);
    assert_int_equal (poll (&pfd, 1, 0), 0);
    assert_int_equal (raise (SIGTERM), 0);
    assert_true (lss_service_stopping (svc));
    assert_int_equal (zsys_interrupted, 1);
    assert_int_equal (poll (&pfd, 1, 0), 1);
    assert_int_equal (poll (&pfd, 1, 0), 1); /* and stays readable */
    assert_int_equal (s_http_get (port, "/readyz", text, sizeof text), 503);
    assert_string_equal (text, "not ready: stopping\n");

    lss_service_destroy (&svc);
    assert_null (svc);
    zsys_interrupted = 0;
    struct sigaction after;
    sigaction (SIGTERM, NULL, &after);
    assert_true (after.sa_handler == before.sa_handler);
    assert_int_equal (s_http_status (port, "/healthz"), 0); /* the endpoint is gone */
}

int main (int argc, char **argv)
{
    (void)argc;
    const char *dir = getenv ("LSS_BUILD_DIR");
    if (dir && *dir)
        snprintf (s_demo_path, sizeof s_demo_path, "%s/test/helpers/service_demo", dir);
    else {
        char self[PATH_MAX];
        snprintf (self, sizeof self, "%s", argv[0]);
        snprintf (s_demo_path, sizeof s_demo_path, "%s/helpers/service_demo", dirname (self));
    }
    if (access (s_demo_path, X_OK) != 0) {
        fprintf (stderr, "test_service: %s is not built\n", s_demo_path);
        return 1;
    }
    curl_global_init (CURL_GLOBAL_DEFAULT);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_in_process),
        cmocka_unit_test_teardown (test_sigterm_exits_cleanly, s_teardown),
        cmocka_unit_test_teardown (test_sigint_exits_cleanly, s_teardown),
        cmocka_unit_test_teardown (test_signal_wakes_blocking_poll, s_teardown),
        cmocka_unit_test_teardown (test_watchdog_fires, s_teardown),
        cmocka_unit_test_teardown (test_second_signal_forces_exit, s_teardown),
        cmocka_unit_test_teardown (test_bad_config_exits_2, s_teardown),
        cmocka_unit_test_teardown (test_help_version_usage, s_teardown),
        cmocka_unit_test_teardown (test_admin_port_taken, s_teardown),
    };
    int rc = cmocka_run_group_tests (tests, NULL, NULL);
    curl_global_cleanup ();
    return rc;
}
