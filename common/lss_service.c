/*  lss_service — common service lifecycle: argv, config, log, admin, signals, watchdog.
 *  See lss_service.h.
 *
 *  Signal state is file-static because signal dispositions are process-wide: the handler
 *  touches only lock-free atomics, zsys_interrupted, one write () to the stop pipe and
 *  sem_post (all async-signal-safe).
 *  The watchdog is a thread (not a SIGALRM timer) so that it can log through lss_log
 *  before it exits; it sleeps on the semaphore until a stop request, then until the
 *  shutdown deadline, a second signal, or destroy. If logging itself were stuck (a
 *  wedged stderr), an alarm armed just before the final log line still ends the process.
 */
#include "lss_service.h"

#include <assert.h>
#include <czmq.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <semaphore.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "lss_log.h"
#include "lss_util.h"

/*  Longest error message kept from config loading, bytes. */
#define S_ERR_MAX 1024
/*  Seconds the final watchdog log line may take before SIGALRM ends the process anyway. */
#define S_LAST_WORDS_S 2

struct _lss_service_t {
    char name[LSS_SERVICE_NAME_MAX + 1];
    lss_config_t *config;
    lss_admin_t *admin;
    int64_t started_ms; /* lss_time_mono_ms at start */
    bool started;       /* fully constructed (destroy then logs "stopped") */
    int64_t shutdown_timeout_ms;

    pthread_mutex_t ready_lock;
    bool ready;                        /* under ready_lock */
    char reason[LSS_ADMIN_REASON_MAX]; /* under ready_lock */
    lss_admin_ready_fn *ready_fn;      /* under ready_lock */
    void *ready_arg;                   /* under ready_lock */

    bool handlers_installed;
    struct sigaction old_int, old_term;
    pthread_t watchdog;
    bool watchdog_started;
};

static int s_exit_code;
static lss_service_t *_Atomic s_instance;
static atomic_int s_signals;          /* SIGINT/SIGTERM received */
static atomic_int s_first_signal;     /* the first of them, 0 if stop was requested in code */
static atomic_bool s_stop;            /* stop requested (signal or lss_service_stop) */
static atomic_bool s_quit;            /* destroy: the watchdog ends */
static sem_t s_wake;                  /* wakes the watchdog */
static int s_stop_pipe[2] = {-1, -1}; /* written once on the first stop request */

//  --------------------------------------------------------------------------
//  Command line

typedef struct {
    const char *config;
    const char *log_level;
    bool help;
    bool version;
} s_args_t;

/*  Matches argv[*i] against option opt ("--opt value" or "--opt=value"). Returns 1 and
 *  sets *value on a match, 0 if it is another option, -1 if the value is missing. */
static int s_opt_value (int argc, char **argv, int *i, const char *opt, const char **value)
{
    size_t len = strlen (opt);
    const char *arg = argv[*i];
    if (strncmp (arg, opt, len) != 0)
        return 0;
    if (arg[len] == '=') {
        *value = arg + len + 1;
        return 1;
    }
    if (arg[len] != '\0')
        return 0;
    if (*i + 1 >= argc)
        return -1;
    *value = argv[++*i];
    return 1;
}

static int s_parse_args (int argc, char **argv, s_args_t *args, char *err, size_t err_size)
{
    memset (args, 0, sizeof *args);
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        int rc;
        if (strcmp (arg, "--help") == 0 || strcmp (arg, "-h") == 0)
            args->help = true;
        else if (strcmp (arg, "--version") == 0)
            args->version = true;
        else if ((rc = s_opt_value (argc, argv, &i, "--config", &args->config)) != 0) {
            if (rc < 0 || !*args->config) {
                snprintf (err, err_size, "--config needs a file name");
                return -1;
            }
        } else if ((rc = s_opt_value (argc, argv, &i, "--log-level", &args->log_level)) != 0) {
            if (rc < 0) {
                snprintf (err, err_size, "--log-level needs a level");
                return -1;
            }
        } else {
            snprintf (err, err_size, "unknown argument '%.200s'", arg);
            return -1;
        }
    }
    return 0;
}

static void s_env_name (const char *key, char *out, size_t size)
{
    size_t n = (size_t)snprintf (out, size, "LSS_");
    for (const char *p = key; *p && n + 1 < size; p++)
        out[n++] = (*p == '.' || *p == '-')   ? '_'
                   : (*p >= 'a' && *p <= 'z') ? (char)(*p - 'a' + 'A')
                                              : *p;
    out[n < size ? n : size - 1] = '\0';
}

static void s_print_usage (FILE *out, const char *name)
{
    fprintf (out, "Usage: lss-%s [--config FILE] [--log-level LEVEL] [--help] [--version]\n",
             name);
}

static void s_print_help (const char *name)
{
    static const char *const type_names[] = {"string", "integer", "boolean", "size",
                                             "duration (ms)"};
    s_print_usage (stdout, name);
    printf ("\n"
            "  --config FILE      YAML config file (default: $LSS_CONFIG; without one,\n"
            "                     built-in defaults and LSS_* variables apply)\n"
            "  --log-level LEVEL  debug | info | warn | error (overrides log.level)\n"
            "  --help             show this help and exit\n"
            "  --version          show the version and exit\n"
            "\n"
            "Configuration keys (YAML path; the LSS_* variable overrides the file):\n");
    char prefix[LSS_SERVICE_NAME_MAX + 2];
    snprintf (prefix, sizeof prefix, "%s.", name);
    for (size_t i = 0; i < lss_settings_count; i++) {
        const lss_config_spec_t *spec = &lss_settings[i];
        if (strncmp (spec->key, prefix, strlen (prefix)) != 0 &&
            strncmp (spec->key, "service.", 8) != 0 && strncmp (spec->key, "log.", 4) != 0 &&
            strncmp (spec->key, "bus.", 4) != 0) /* every service has bus sockets */
            continue;
        char env[128];
        s_env_name (spec->key, env, sizeof env);
        printf ("  %s  (%s)\n      %s; %s, default \"%s\"\n", spec->key, env,
                spec->doc ? spec->doc : "", type_names[spec->type],
                (spec->flags & LSS_CFG_SECRET) ? "***" : (spec->def ? spec->def : ""));
    }
}

//  --------------------------------------------------------------------------
//  Signals and the watchdog

/*  Marks the stop request everywhere a loop or the watchdog may look. Async-signal-safe. */
static void s_request_stop (void)
{
    if (!atomic_exchange (&s_stop, true) && s_stop_pipe[1] >= 0) {
        if (write (s_stop_pipe[1], "x", 1) < 0) {
            /* non-blocking and written once: cannot fill; nothing to do in a handler */
        }
    }
    zsys_interrupted = 1;
    zctx_interrupted = 1;
    sem_post (&s_wake);
}

static void s_on_signal (int sig)
{
    int saved = errno;
    if (atomic_fetch_add (&s_signals, 1) == 0)
        atomic_store (&s_first_signal, sig);
    s_request_stop ();
    errno = saved;
}

static const char *s_signal_name (int sig)
{
    return sig == SIGTERM ? "SIGTERM" : sig == SIGINT ? "SIGINT" : sig ? "signal" : "requested";
}

/*  Waits on s_wake until deadline_ms (monotonic; < 0 = no deadline). */
static void s_wait (int64_t deadline_ms)
{
    if (deadline_ms < 0) {
        while (sem_wait (&s_wake) != 0 && errno == EINTR)
            ;
        return;
    }
    struct timespec ts = {.tv_sec = deadline_ms / 1000,
                          .tv_nsec = (long)(deadline_ms % 1000) * 1000000};
    while (sem_clockwait (&s_wake, CLOCK_MONOTONIC, &ts) != 0 && errno == EINTR)
        ;
}

/*  Ends the process from the watchdog: logs why, then _exit (1). */
static void s_die (const char *msg, lss_service_t *self)
{
    signal (SIGALRM, SIG_DFL);
    alarm (S_LAST_WORDS_S); /* if the log line itself cannot be written */
    lss_log_error (msg, "{s:I, s:s}", "timeout_ms", (json_int_t)self->shutdown_timeout_ms,
                   "first_signal", s_signal_name (atomic_load (&s_first_signal)));
    _exit (1);
}

static void *s_watchdog (void *arg)
{
    lss_service_t *self = arg;
    while (!atomic_load (&s_quit) && !atomic_load (&s_stop))
        s_wait (-1);
    /*  Logged even when destroy came first (a quick shutdown): destroy joins this thread
     *  before it logs "stopped". */
    if (atomic_load (&s_stop))
        lss_log_info ("stopping", "{s:s, s:I}", "cause",
                      s_signal_name (atomic_load (&s_first_signal)), "timeout_ms",
                      (json_int_t)self->shutdown_timeout_ms);
    if (atomic_load (&s_quit))
        return NULL;
    int64_t deadline = lss_time_mono_ms () + self->shutdown_timeout_ms;
    for (;;) {
        if (atomic_load (&s_quit))
            return NULL;
        if (atomic_load (&s_signals) >= 2)
            s_die ("second signal while stopping: exiting now", self);
        if (lss_time_mono_ms () >= deadline)
            s_die ("shutdown timed out: exiting now", self);
        s_wait (deadline);
    }
}

static void s_close_pipe (void)
{
    for (int i = 0; i < 2; i++) {
        if (s_stop_pipe[i] >= 0)
            close (s_stop_pipe[i]);
        s_stop_pipe[i] = -1;
    }
}

static int s_signals_install (lss_service_t *self)
{
    atomic_store (&s_signals, 0);
    atomic_store (&s_first_signal, 0);
    atomic_store (&s_stop, false);
    atomic_store (&s_quit, false);
    if (pipe2 (s_stop_pipe, O_CLOEXEC | O_NONBLOCK))
        return -1;
    if (sem_init (&s_wake, 0, 0)) {
        s_close_pipe ();
        return -1;
    }
    /*  zsys_init installs CZMQ's own SIGINT/SIGTERM handler (only the first time it runs),
     *  replacing anything set before: let it run now, switch CZMQ's handling off, then
     *  install ours. */
    zsys_init ();
    zsys_handler_set (NULL);
    struct sigaction sa;
    memset (&sa, 0, sizeof sa);
    sa.sa_handler = s_on_signal;
    sigemptyset (&sa.sa_mask);
    sa.sa_flags = 0; /* no SA_RESTART: a blocking call in the main thread returns EINTR */
    sigaction (SIGINT, &sa, &self->old_int);
    sigaction (SIGTERM, &sa, &self->old_term);
    self->handlers_installed = true;
    signal (SIGPIPE, SIG_IGN);
    return 0;
}

static void s_signals_restore (lss_service_t *self)
{
    if (!self->handlers_installed)
        return;
    sigaction (SIGINT, &self->old_int, NULL);
    sigaction (SIGTERM, &self->old_term, NULL);
    self->handlers_installed = false;
    sem_destroy (&s_wake);
    s_close_pipe ();
}

//  --------------------------------------------------------------------------
//  Readiness

static bool s_ready (void *arg, char *reason, size_t reason_size)
{
    lss_service_t *self = arg;
    if (atomic_load (&s_stop)) {
        snprintf (reason, reason_size, "stopping");
        return false;
    }
    pthread_mutex_lock (&self->ready_lock);
    lss_admin_ready_fn *fn = self->ready_fn;
    void *fn_arg = self->ready_arg;
    bool ready = self->ready;
    snprintf (reason, reason_size, "%s", self->reason);
    pthread_mutex_unlock (&self->ready_lock);
    if (fn) {
        reason[0] = '\0';
        return fn (fn_arg, reason, reason_size);
    }
    return ready;
}

void lss_service_set_ready (lss_service_t *self, bool ready, const char *reason)
{
    assert (self);
    pthread_mutex_lock (&self->ready_lock);
    bool changed = self->ready != ready ||
                   strncmp (self->reason, reason ? reason : "", sizeof self->reason - 1) != 0;
    self->ready = ready;
    snprintf (self->reason, sizeof self->reason, "%s", reason ? reason : "");
    pthread_mutex_unlock (&self->ready_lock);
    if (!changed)
        return;
    if (ready)
        lss_log_info ("ready", NULL);
    else
        lss_log_info ("not ready", "{s:s}", "reason", reason ? reason : "");
}

void lss_service_set_ready_fn (lss_service_t *self, lss_admin_ready_fn *fn, void *arg)
{
    assert (self);
    pthread_mutex_lock (&self->ready_lock);
    self->ready_fn = fn;
    self->ready_arg = arg;
    pthread_mutex_unlock (&self->ready_lock);
}

//  --------------------------------------------------------------------------
//  Construction

static bool s_name_valid (const char *name)
{
    size_t len = name ? strlen (name) : 0;
    if (len == 0 || len > LSS_SERVICE_NAME_MAX)
        return false;
    for (const char *p = name; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '_' || *p == '-'))
            return false;
    return true;
}

static bool s_setting_exists (const char *key)
{
    for (size_t i = 0; i < lss_settings_count; i++)
        if (strcmp (lss_settings[i].key, key) == 0)
            return true;
    return false;
}

/*  Writes "port\n" to path via a temporary file and rename. Returns 0 or -1. */
static int s_write_port_file (const char *path, int port)
{
    char tmp[PATH_MAX];
    if (lss_fmt (tmp, sizeof tmp, "%s.tmp", path))
        return -1;
    FILE *f = fopen (tmp, "we");
    if (!f)
        return -1;
    bool ok = fprintf (f, "%d\n", port) > 0;
    ok = fclose (f) == 0 && ok;
    if (!ok || rename (tmp, path) != 0) {
        unlink (tmp);
        return -1;
    }
    return 0;
}

/*  Loads the config (file, environment, --log-level) and sets the log level. On error
 *  reports on stderr and in the log and returns -1. */
static int s_load_config (lss_service_t *self, const s_args_t *args)
{
    char err[S_ERR_MAX] = "";
    const char *path = args->config ? args->config : getenv ("LSS_CONFIG");
    if (path && !*path)
        path = NULL;
    int rc = lss_config_load (self->config, path, err, sizeof err);
    if (rc == 0 && args->log_level)
        rc = lss_config_set (self->config, "log.level", args->log_level, err, sizeof err);
    lss_log_level_t level = LSS_LOG_INFO;
    if (rc == 0 && lss_log_parse_level (lss_config_str (self->config, "log.level"), &level)) {
        snprintf (err, sizeof err,
                  "log.level: unknown level '%.64s' (debug, info, warn, error)",
                  lss_config_str (self->config, "log.level"));
        rc = -1;
    }
    if (rc) {
        fprintf (stderr, "lss-%s: configuration error: %s\n", self->name, err);
        lss_log_error ("configuration invalid", "{s:s, s:s?}", "error", err, "file", path);
        return -1;
    }
    lss_log_set_level (level);
    return 0;
}

lss_service_t *lss_service_new (const char *name, int argc, char **argv)
{
    assert (s_name_valid (name) && "service names are [a-z0-9_-]{1,32}");
    assert (!atomic_load (&s_instance) && "one lss_service per process");
    s_exit_code = 1;
    s_args_t args;
    char err[S_ERR_MAX];
    if (s_parse_args (argc, argv, &args, err, sizeof err)) {
        fprintf (stderr, "lss-%s: %s\n", name, err);
        s_print_usage (stderr, name);
        s_exit_code = 2;
        return NULL;
    }
    if (args.help) {
        s_print_help (name);
        s_exit_code = 0;
        return NULL;
    }
    if (args.version) {
        printf ("lss-%s %s\n", name, LSS_VERSION);
        s_exit_code = 0;
        return NULL;
    }
    lss_log_init (name, LSS_LOG_INFO);

    lss_service_t *self = calloc (1, sizeof *self);
    if (!self)
        return NULL;
    snprintf (self->name, sizeof self->name, "%s", name);
    self->started_ms = lss_time_mono_ms ();
    pthread_mutex_init (&self->ready_lock, NULL);
    snprintf (self->reason, sizeof self->reason, "starting");
    atomic_store (&s_instance, self);

    self->config = lss_config_new (lss_settings, lss_settings_count);
    if (!self->config) {
        lss_log_error ("configuration table invalid", NULL);
        goto fail;
    }
    if (s_load_config (self, &args)) {
        s_exit_code = 2;
        goto fail;
    }
    lss_config_log (self->config);
    self->shutdown_timeout_ms = lss_config_int (self->config, "service.shutdown_timeout");

    if (s_signals_install (self)) {
        lss_log_error ("cannot install signal handling", "{s:s}", "error", strerror (errno));
        goto fail;
    }
    if (lss_thread_start (&self->watchdog, s_watchdog, self)) {
        lss_log_error ("cannot start the watchdog thread", NULL);
        goto fail;
    }
    self->watchdog_started = true;

    char key[LSS_SERVICE_NAME_MAX + 32];
    snprintf (key, sizeof key, "%s.admin_listen", name);
    const char *admin_address = NULL;
    if (s_setting_exists (key)) {
        self->admin =
            lss_admin_new (lss_config_str (self->config, key),
                           lss_config_int (self->config, "service.stall_limit"), s_ready, self);
        if (!self->admin)
            goto fail; /* logged */
        admin_address = lss_admin_address (self->admin);
        const char *port_file = getenv ("LSS_TEST_PORT_FILE");
        if (port_file && *port_file &&
            s_write_port_file (port_file, lss_admin_port (self->admin))) {
            lss_log_error ("cannot write the port file", "{s:s, s:s}", "file", port_file,
                           "error", strerror (errno));
            goto fail;
        }
    }
    self->started = true;
    lss_log_info ("started", "{s:s, s:i, s:s?}", "version", LSS_VERSION, "pid", (int)getpid (),
                  "admin", admin_address);
    s_exit_code = 0;
    return self;
fail:
    lss_service_destroy (&self);
    return NULL;
}

void lss_service_destroy (lss_service_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    lss_service_t *self = *self_p;
    lss_admin_destroy (&self->admin);
    if (self->watchdog_started) {
        atomic_store (&s_quit, true);
        sem_post (&s_wake);
        pthread_join (self->watchdog, NULL);
    }
    if (self->started)
        lss_log_info ("stopped", "{s:I}", "uptime_ms",
                      (json_int_t)(lss_time_mono_ms () - self->started_ms));
    s_signals_restore (self);
    lss_config_destroy (&self->config);
    pthread_mutex_destroy (&self->ready_lock);
    atomic_store (&s_instance, NULL);
    free (self);
    *self_p = NULL;
}

int lss_service_exit_code (void)
{
    return s_exit_code;
}

bool lss_service_stopping (const lss_service_t *self)
{
    (void)self;
    return atomic_load_explicit (&s_stop, memory_order_relaxed);
}

void lss_service_stop (lss_service_t *self)
{
    (void)self;
    s_request_stop ();
}

int lss_service_stop_fd (const lss_service_t *self)
{
    (void)self;
    return s_stop_pipe[0];
}

void lss_service_heartbeat (lss_service_t *self)
{
    if (self->admin)
        lss_admin_heartbeat (self->admin);
}

const lss_config_t *lss_service_config (const lss_service_t *self)
{
    return self->config;
}

lss_admin_t *lss_service_admin (const lss_service_t *self)
{
    return self->admin;
}

const char *lss_service_name (const lss_service_t *self)
{
    return self->name;
}
