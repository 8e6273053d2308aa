/*  up — `lss up`: the whole local-mode system on one machine, under one supervisor.
 *
 *  Declarations shared by the files of the command (docs/run.md is the user's view):
 *    up.c            the command: options, then the phases (prepare, infrastructure,
 *                    services, seeding, run, stop)
 *    up_plan.c       pure: options → paths, each process's argv and LSS_* environment
 *    up_data.c       the data directory: lock, layout, JWT secret, PostgreSQL (initdb,
 *                    database), Redis config, the API listen address
 *    up_seed.c       runtimes this machine has → RuntimeEnvironments, default WarmPool
 *    up_supervisor.c processes: spawn, output, exit, restart with backoff, stop
 *    up_probe.c      non-blocking readiness probes (HTTP /readyz, Redis PING, libpq)
 *    up_logfile.c    a log file that rotates past a size
 */
#ifndef UP_H
#define UP_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#define UP_PATH_MAX        256 /* any path lss up builds */
#define UP_DATA_DIR_MAX    160 /* --data-dir, after making it absolute */
#define UP_RUN_DIR_MAX     86  /* run dir: + "/" + the longest socket name < 108 */
#define UP_STATE_DIR_MAX   60  /* node.state_dir's bound in common/lss_settings.c */
#define UP_ADDR_MAX        128 /* --listen HOST:PORT */
#define UP_NAME_MAX        16  /* a process name ("postgres", "reconciler") */
#define UP_LEVEL_MAX       16
#define UP_TARGET_MAX      512 /* a probe target: port file, socket path or DSN */
#define UP_SERVICE_COUNT   6
#define UP_PROCS_MAX       (UP_SERVICE_COUNT + 2)
#define UP_RUNTIMES_MAX    4
#define UP_JWT_SECRET_SIZE 48 /* random bytes; kept and passed as 96 hex digits */

#define UP_LOG_MAX_BYTES     (8 * 1024 * 1024) /* a log rotates to <name>.log.1 past this */
#define UP_BACKOFF_FIRST_MS  500
#define UP_BACKOFF_MAX_MS    30000
#define UP_BACKOFF_RESET_MS  60000 /* up this long → the next restart is quick again */
#define UP_INFRA_TIMEOUT_MS  60000 /* PostgreSQL and Redis must be ready by then */
#define UP_READY_TIMEOUT_S   120   /* default --ready-timeout */
#define UP_STOP_SERVICE_MS   10000 /* SIGTERM → SIGKILL (service.shutdown_timeout is 5 s) */
#define UP_STOP_INFRA_MS     20000 /* Redis saving, PostgreSQL fast shutdown */
#define UP_PG_PORT           5432  /* names the socket file only: no TCP listener */
#define UP_DEFAULT_LISTEN    "127.0.0.1:8080"
#define UP_DEFAULT_NAMESPACE "default"

/* The services, in start order (stop is the reverse). */
extern const char *const up_service_names[UP_SERVICE_COUNT];
/*  Index of a service name in up_service_names, or -1. */
int up_service_index (const char *name);

/* ------------------------------------------------------------------ options, paths */

typedef struct {
    char data_dir[UP_PATH_MAX];  /* as given ("" = the default) */
    char state_dir[UP_PATH_MAX]; /* as given ("" = <data>/sandboxes) */
    char listen[UP_ADDR_MAX];
    char log_level[UP_LEVEL_MAX];
    bool without[UP_SERVICE_COUNT];
    bool quiet;
    bool no_seed;
    bool keep_sandboxes;
    int ready_timeout_s;
} up_options_t;

/*  Parses the arguments after `up`. Returns 0 (run), 1 (--help printed on out: exit 0)
 *  or 2 (usage error, message on err). */
int up_options_parse (int argc, char **argv, up_options_t *o, FILE *out, FILE *err);
/*  The default data directory for this user (root: /var/lib/lss; others:
 *  $XDG_DATA_HOME/lss, else $HOME/.local/share/lss) into out. Returns 0 or -1. */
int up_default_data_dir (uid_t euid, const char *xdg_data_home, const char *home, char *out,
                         size_t out_size);

typedef struct {
    char data[UP_DATA_DIR_MAX + 1];
    char run[UP_PATH_MAX]; /* sockets and port files; recreated every run */
    char ports[UP_PATH_MAX];
    char logs[UP_PATH_MAX];
    char state[UP_PATH_MAX]; /* node.state_dir */
    char pgdata[UP_PATH_MAX];
    char pgsock[UP_PATH_MAX]; /* the PostgreSQL socket directory (in run) */
    char redis_dir[UP_PATH_MAX];
    char redis_conf[UP_PATH_MAX];
    char redis_sock[UP_PATH_MAX];
    char lock[UP_PATH_MAX];
    char jwt_secret[UP_PATH_MAX];
    char admin_key[UP_PATH_MAX];
    char status[UP_PATH_MAX];
    char env_sh[UP_PATH_MAX];
    char bin[UP_PATH_MAX]; /* where lss and lss-<svc> are */
    char dsn[UP_TARGET_MAX];
    char redis_url[UP_PATH_MAX];
} up_paths_t;

/*  Derives every path from the options (data_dir must already be absolute), the
 *  directory of the binaries and the effective uid. The run dir is <data>/run when that
 *  is short enough for unix sockets, else /tmp/lss-up-<uid>-<hash of data>. Returns 0,
 *  or -1 with a message in err (a path too long). */
int up_paths_init (up_paths_t *p, const char *data_dir, const char *state_dir,
                   const char *bin_dir, uid_t euid, char *err, size_t err_size);

/* ------------------------------------------------------------------ process specs */

typedef enum { UP_PROBE_HTTP = 0, UP_PROBE_REDIS, UP_PROBE_PG } up_probe_kind_t;
typedef enum { UP_GROUP_INFRA = 0, UP_GROUP_SERVICES = 1, UP_GROUPS } up_group_t;

/*  One process the supervisor runs. argv and envp are NULL-terminated arrays of strings,
 *  all heap-owned by the spec (up_spec_clear frees them). */
typedef struct {
    char name[UP_NAME_MAX];
    up_group_t group;
    char **argv;
    char **envp;
    char cwd[UP_PATH_MAX]; /* "" = inherited */
    bool set_ids;          /* run as uid/gid (root dropping to postgres) */
    uid_t uid;
    gid_t gid;
    int stop_signal;
    int stop_timeout_ms;
    up_probe_kind_t probe;
    char probe_target[UP_TARGET_MAX]; /* HTTP: port file; REDIS: socket; PG: DSN */
    char log_path[UP_PATH_MAX];
} up_spec_t;

/*  Frees argv and envp and zeroes the spec. */
void up_spec_clear (up_spec_t *s);

/*  A growable NULL-terminated array of heap strings (argv, envp), at most 4096 entries.
 *  push and pushf copy; both return 0 or -1 (full, out of memory, pushf past 2 KiB). */
typedef struct {
    char **v;
    size_t n, cap;
} up_strv_t;
int up_strv_push (up_strv_t *sv, const char *s);
int up_strv_pushf (up_strv_t *sv, const char *fmt, ...) __attribute__ ((format (printf, 2, 3)));
/*  Frees every string and the array; sv is empty afterwards. */
void up_strv_free (up_strv_t *sv);
/*  Moves the NULL-terminated array out of sv (sv is empty afterwards). */
char **up_strv_take (up_strv_t *sv);

/*  "api.db_dsn" → "LSS_API_DB_DSN" into out. Returns 0 or -1. */
int up_env_name (const char *key, char *out, size_t out_size);

/*  The spec of one service (index into up_service_names): <bin>/lss-<svc>, and as its
 *  environment the LSS_* settings lss up manages (every service has the same ones, see
 *  up_plan.c; jwt_secret and the admin key file only reach the api) plus base_env
 *  (borrowed, NULL-terminated, e.g. environ) minus every variable lss up manages. Returns
 *  0 or -1. */
int up_plan_service (up_spec_t *s, int service, const up_paths_t *p, const char *listen,
                     const char *log_level, const char *jwt_secret, char *const *base_env);
/*  PostgreSQL (postgres -D pgdata -k pgsock, no TCP) and Redis (redis-server conf). */
int up_plan_postgres (up_spec_t *s, const up_paths_t *p, const char *pg_bin, bool set_ids,
                      uid_t uid, gid_t gid, char *const *base_env);
int up_plan_redis (up_spec_t *s, const up_paths_t *p, const char *redis_server,
                   char *const *base_env);
/*  The redis.conf lss up writes (caller frees). */
char *up_plan_redis_conf (const up_paths_t *p);
/*  The env.sh for a user's shell (LSS_STORE_DSN, PUB endpoints...; no secrets; caller
 *  frees). */
char *up_plan_env_sh (const up_paths_t *p);

/* ------------------------------------------------------------------ data directory */

/*  Creates the data dir (0711) if missing and takes its lock (flock on <data>/lock,
 *  which then holds our pid). Returns the lock fd, or -1 with a message in err (another
 *  lss up holds it: the message names its pid). */
int up_data_lock (const up_paths_t *p, char *err, size_t err_size);
/*  Creates logs/, run/ (emptied of a previous run), ports/, redis/ and, when lss-node
 *  runs, the node state dir, checking it is at most UP_STATE_DIR_MAX bytes and (as root)
 *  reachable by sandbox uids (every parent o+x).
 *  Returns 0 or -1 with a message. */
int up_data_prepare (const up_paths_t *p, bool need_state_dir, char *err, size_t err_size);
/*  True if every directory on the way to path (path included) is searchable by others
 *  (o+x), or by uid/gid through owner/group bits. */
bool up_path_traversable (const char *path, uid_t uid, gid_t gid);
/*  The JWT secret: read from <data>/jwt.secret, or 48 random bytes generated and stored
 *  there (0600, hex) on first use. out gets 96 hex digits. Returns 0 or -1. */
int up_data_jwt_secret (const up_paths_t *p, char *out, size_t out_size, char *err,
                        size_t err_size);
/*  The summary's admin key text for the key file lss-api writes: when it existed
 *  before this run, its path only; when it appeared in this run, the key (one printable
 *  "lsp_..." line) and the path; a file that holds something else, its path and a
 *  warning. Returns 1 with the text in out, or 0 while the file is missing or empty. */
int up_admin_key_line (const char *path, bool existed_before, char *out, size_t out_size);
/*  Finds PostgreSQL's bin dir (the version of an existing cluster, else the newest
 *  under /usr/lib/postgresql), initdb-s pgdata on first use (socket-only trust auth),
 *  as the postgres user when we are root (*set_ids, *uid, *gid tell the caller). Prints
 *  what it does on out. Returns 0 or -1 with a message. */
int up_pg_prepare (const up_paths_t *p, char *pg_bin, size_t pg_bin_size, bool *set_ids,
                   uid_t *uid, gid_t *gid, FILE *out, char *err, size_t err_size);
/*  Creates database "lss" if it does not exist (blocking, bounded by a connect timeout).
 *  Returns 0 or -1 with a message. */
int up_pg_create_db (const up_paths_t *p, char *err, size_t err_size);
/*  Resolves HOST:PORT: port 0 → a free port now; another port → checked free. out
 *  receives "HOST:PORT". Returns 0, or -1 with a message (malformed, in use). */
int up_listen_resolve (const char *listen, char *out, size_t out_size, char *err,
                       size_t err_size);

/* ------------------------------------------------------------------ seeding */

typedef struct {
    char runtime[64];     /* "python:3.11" — what sandboxes ask for */
    char name[64];        /* "python-3.11" — the RuntimeEnvironment */
    char language[16];    /* python | nodejs | bash */
    char version[16];     /* "3.11" */
    char interpreter[96]; /* absolute path */
    char package_manager[8];
} up_runtime_t;

/*  Checks a version the interpreter printed ("3.11\n") for a kind ("python": N.N;
 *  "nodejs", "bash": N) and copies it without the newline. Returns 0 or -1. */
int up_seed_parse_version (const char *language, const char *text, char *out, size_t size);
/*  Finds python3, node and bash on path_env (a PATH value) under the directories
 *  sandboxes see (/usr, /bin, /sbin), asks each its version, fills out. Returns the
 *  number found (0..max). */
int up_seed_detect (const char *path_env, up_runtime_t *out, int max, FILE *log);
/*  The RuntimeEnvironment and the default WarmPool ("python-default", minSize 2) as
 *  objects (caller owns), or NULL. */
json_t *up_seed_runtime_object (const up_runtime_t *rt);
json_t *up_seed_warmpool_object (const up_runtime_t *python, const char *ns);
typedef struct _up_sup_t up_sup_t;
/*  Creates each object that does not exist yet (never changes an existing one), and
 *  says one line per object through sup (may be NULL: silent): "created" or "exists".
 *  A created RuntimeEnvironment gets status available. Returns the number created, or
 *  -1 with a message. */
int up_seed_apply (const char *dsn, const up_runtime_t *rts, int count, const char *ns,
                   up_sup_t *sup, char *err, size_t err_size);

/* ------------------------------------------------------------------ log files */

typedef struct {
    char path[UP_PATH_MAX];
    int fd;
    int64_t size;
    int64_t max_bytes;
} up_logfile_t;

/*  Opens (appending, 0640, created if missing) a log that rotates to path.1 once it
 *  would pass max_bytes. Returns 0 or -1. */
int up_logfile_open (up_logfile_t *lf, const char *path, int64_t max_bytes);
/*  Appends len bytes; when they would pass the limit, writes up to the last newline
 *  that fits (or all when none), rotates, and writes the rest into the new file.
 *  Returns 0 or -1 (write error). */
int up_logfile_write (up_logfile_t *lf, const void *data, size_t len);
/*  Appends a formatted line ("--- lss up: ...\n"). */
int up_logfile_printf (up_logfile_t *lf, const char *fmt, ...)
    __attribute__ ((format (printf, 2, 3)));
void up_logfile_close (up_logfile_t *lf);

/* ------------------------------------------------------------------ probes */

typedef struct up_probe up_probe_t;
/*  Probe results, polled from the supervisor's loop. */
typedef enum { UP_PROBE_PENDING = 0, UP_PROBE_OK = 1, UP_PROBE_FAILED = 2 } up_probe_result_t;

/*  Starts one non-blocking probe: kind HTTP GET http://127.0.0.1:<port>/readyz (200 =
 *  ok), REDIS "PING" on a unix socket (+PONG = ok), PG a libpq connection to target
 *  (DSN). Bounded by timeout_ms. Returns NULL on allocation failure only (a probe that
 *  cannot even connect fails at its first step). */
up_probe_t *up_probe_start (up_probe_kind_t kind, const char *target, int port, int timeout_ms);
/*  The descriptor and poll events the probe waits for (fd -1: none; call step on the
 *  deadline anyway). */
int up_probe_fd (const up_probe_t *self, short *events);
/*  Advances the probe (after its fd was ready, or on any tick). Returns its result. */
up_probe_result_t up_probe_step (up_probe_t *self);
/*  Why the last probe failed (borrowed, "" when it did not). */
const char *up_probe_error (const up_probe_t *self);
void up_probe_destroy (up_probe_t **self_p);

/* ------------------------------------------------------------------ supervisor */

/*  The restart delay after a process exited: UP_BACKOFF_FIRST_MS the first time or when
 *  it stayed up at least UP_BACKOFF_RESET_MS, else the previous delay doubled, at most
 *  UP_BACKOFF_MAX_MS. prev_ms 0 = no previous restart. */
int64_t up_backoff_next (int64_t prev_ms, int64_t uptime_ms);

/*  A supervisor printing one line per state change on out (quiet: only exits and
 *  failures), keeping status_path (JSON, may be NULL) current. Blocks SIGINT, SIGTERM,
 *  SIGHUP and SIGCHLD and takes them through a signalfd. NULL on failure. */
up_sup_t *up_sup_new (FILE *out, bool quiet, const char *status_path);
/*  Stops nothing: call up_sup_stop first. Restores the signal mask. NULLs *self_p. */
void up_sup_destroy (up_sup_t **self_p);
/*  Adds a process (takes the spec's contents; *spec is cleared). Returns 0 or -1. */
int up_sup_add (up_sup_t *self, up_spec_t *spec);
/*  Starts every process of the group (they are restarted from now on). */
void up_sup_start (up_sup_t *self, up_group_t group);
/*  One turn of the loop: waits at most timeout_ms for output, exits, signals, probe
 *  progress or a timer, and handles what happened. */
void up_sup_turn (up_sup_t *self, int timeout_ms);
/*  True if every process of the group is running and ready. */
bool up_sup_ready (const up_sup_t *self, up_group_t group);
/*  The names of the group's processes that are not ready, comma-separated, into out. */
void up_sup_not_ready (const up_sup_t *self, up_group_t group, char *out, size_t out_size);
/*  How many stop signals (SIGINT, SIGTERM, SIGHUP) arrived so far. */
int up_sup_stop_requests (const up_sup_t *self);
/*  Stops the group: no more restarts, stop_signal to each, turns until all exited;
 *  SIGKILL (to the process group) past each one's stop_timeout_ms or at once when
 *  another stop signal arrives. */
void up_sup_stop (up_sup_t *self, up_group_t group);
/*  Prints the last lines of a process's log on the supervisor's output. */
void up_sup_print_log_tail (up_sup_t *self, const char *name, int lines);
/*  Records extra top-level fields for the status file (borrowed copy is taken). */
void up_sup_set_info (up_sup_t *self, const char *key, const char *value);
/*  Prints a timestamped line on the supervisor's output (always, even when quiet). */
void up_sup_say (up_sup_t *self, const char *fmt, ...) __attribute__ ((format (printf, 2, 3)));

#endif
