/*  up_data — the data directory lss up keeps between runs, and what lives in it.
 *
 *  Design note: the data directory is the system's persistent state (PostgreSQL
 *  cluster, Redis files, JWT secret, admin key, logs, sandboxes); everything else (ipc
 *  sockets, port files, the PostgreSQL socket) is in the run dir, which is emptied at
 *  every start. One lss up per data directory: an flock on <data>/lock, held for the
 *  whole run and released by the kernel however the process ends. As root, PostgreSQL
 *  runs as the postgres user (initdb and postgres refuse root), so its directories are
 *  handed to that user and the data directory must be searchable by it; sandboxes run
 *  as unprivileged host uids, so the node state dir's every parent must be o+x.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <libpq-fe.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pwd.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "lss_proc.h"
#include "lss_util.h"
#include "sandbox_fs.h"
#include "up.h"

#define S_PG_ROOT         "/usr/lib/postgresql"
#define S_INITDB_TIMEOUT  120000
#define S_PG_CONNECT_OPTS "connect_timeout=5"
#define S_SANDBOX_UID     200000 /* node.uid_base: a uid that owns nothing on the way */
#define S_SECRET_FILE_MAX 1024
#define S_ADMIN_KEY_MAX   512 /* an API key file larger than this is not one */

/* ------------------------------------------------------------------ lock, layout */

static int s_mkdir (const char *path, mode_t mode, char *err, size_t err_size)
{
    if (mkdir (path, mode) == 0 || errno == EEXIST) {
        struct stat st;
        if (stat (path, &st) == 0 && S_ISDIR (st.st_mode))
            return 0;
        lss_errf (err, err_size, "%s exists and is not a directory", path);
        return -1;
    }
    lss_errf (err, err_size, "mkdir %s: %s", path, strerror (errno));
    return -1;
}

int up_data_lock (const up_paths_t *p, char *err, size_t err_size)
{
    char parent[UP_PATH_MAX];
    snprintf (parent, sizeof parent, "%s", p->data);
    char *slash = strrchr (parent, '/');
    if (slash && slash != parent) {
        *slash = '\0';
        struct stat st;
        if (stat (parent, &st) != 0 || !S_ISDIR (st.st_mode)) {
            lss_errf (err, err_size, "%s does not exist (create it, or choose --data-dir)",
                      parent);
            return -1;
        }
    }
    if (mkdir (p->data, 0711) == 0)
        chmod (p->data, 0711); /* not subject to the umask */
    else if (errno != EEXIST) {
        lss_errf (err, err_size, "mkdir %s: %s", p->data, strerror (errno));
        return -1;
    }
    int fd = open (p->lock, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644);
    if (fd < 0) {
        lss_errf (err, err_size, "open %s: %s", p->lock, strerror (errno));
        return -1;
    }
    if (flock (fd, LOCK_EX | LOCK_NB) != 0) {
        char text[32] = "";
        ssize_t n = pread (fd, text, sizeof text - 1, 0);
        text[n > 0 ? n : 0] = '\0';
        text[strcspn (text, "\n")] = '\0';
        lss_errf (err, err_size,
                  "another lss up (pid %s) is running on %s; stop it first (Ctrl-C in its "
                  "terminal, or kill -TERM %s)",
                  *text ? text : "?", p->data, *text ? text : "<pid>");
        close (fd);
        return -1;
    }
    char pid[32];
    snprintf (pid, sizeof pid, "%d\n", (int)getpid ());
    if (ftruncate (fd, 0) != 0 || pwrite (fd, pid, strlen (pid), 0) != (ssize_t)strlen (pid)) {
        lss_errf (err, err_size, "write %s: %s", p->lock, strerror (errno));
        close (fd);
        return -1;
    }
    return fd;
}

bool up_path_traversable (const char *path, uid_t uid, gid_t gid)
{
    char prefix[UP_PATH_MAX];
    if (!path || path[0] != '/' || lss_fmt (prefix, sizeof prefix, "%s", path))
        return false;
    size_t len = strlen (prefix);
    for (size_t i = 1; i <= len; i++) {
        if (i < len && prefix[i] != '/')
            continue;
        char saved = prefix[i];
        prefix[i] = '\0';
        struct stat st;
        bool ok = stat (prefix, &st) == 0 && S_ISDIR (st.st_mode);
        if (ok) {
            mode_t bit = st.st_uid == uid ? S_IXUSR : st.st_gid == gid ? S_IXGRP : S_IXOTH;
            ok = (st.st_mode & bit) != 0;
        }
        prefix[i] = saved;
        if (!ok)
            return false;
    }
    struct stat root;
    return stat ("/", &root) == 0 && (root.st_mode & S_IXOTH);
}

/*  Empties (or creates) the run dir; refuses one that is not a plain directory of ours. */
static int s_fresh_run_dir (const up_paths_t *p, char *err, size_t err_size)
{
    struct stat st;
    if (lstat (p->run, &st) == 0) {
        if (!S_ISDIR (st.st_mode) || st.st_uid != geteuid ()) {
            lss_errf (err, err_size, "%s is not a directory owned by us: remove it", p->run);
            return -1;
        }
        if (lss_sandbox_fs_rmtree (p->run) != 0) {
            lss_errf (err, err_size, "cannot empty %s: %s", p->run, strerror (errno));
            return -1;
        }
    }
    if (mkdir (p->run, 0711) != 0) {
        lss_errf (err, err_size, "mkdir %s: %s", p->run, strerror (errno));
        return -1;
    }
    chmod (p->run, 0711);
    return 0;
}

int up_data_prepare (const up_paths_t *p, bool need_state_dir, char *err, size_t err_size)
{
    if (need_state_dir && (strlen (p->state) > UP_STATE_DIR_MAX || p->state[0] != '/')) {
        lss_errf (err, err_size,
                  "sandbox state dir %s: must be absolute and at most %d bytes (agent "
                  "sockets live below it); choose a shorter --data-dir or --state-dir",
                  p->state, UP_STATE_DIR_MAX);
        return -1;
    }
    if (s_mkdir (p->logs, 0750, err, err_size) || s_fresh_run_dir (p, err, err_size) ||
        s_mkdir (p->ports, 0700, err, err_size) || s_mkdir (p->redis_dir, 0700, err, err_size))
        return -1;
    if (!need_state_dir)
        return 0;
    if (s_mkdir (p->state, 0711, err, err_size))
        return -1;
    if (geteuid () == 0 && !up_path_traversable (p->state, S_SANDBOX_UID, S_SANDBOX_UID)) {
        lss_errf (err, err_size,
                  "sandbox users cannot reach %s: every directory on the way needs o+x "
                  "(e.g. chmod o+x on the parents), or choose --state-dir / --data-dir "
                  "elsewhere (the default /var/lib/lss works)",
                  p->state);
        return -1;
    }
    return 0;
}

int up_data_jwt_secret (const up_paths_t *p, char *out, size_t out_size, char *err,
                        size_t err_size)
{
    char text[S_SECRET_FILE_MAX];
    ssize_t n = lss_sandbox_fs_read (p->jwt_secret, text, sizeof text);
    if (n > 0) {
        text[strcspn (text, "\r\n")] = '\0';
        if (strlen (text) < 32 || lss_fmt (out, out_size, "%s", text)) {
            lss_errf (err, err_size, "%s: not a usable secret (at least 32 bytes, one line)",
                      p->jwt_secret);
            return -1;
        }
        chmod (p->jwt_secret, 0600);
        return 0;
    }
    if (n < 0 && errno != ENOENT) {
        lss_errf (err, err_size, "read %s: %s", p->jwt_secret, strerror (errno));
        return -1;
    }
    unsigned char raw[UP_JWT_SECRET_SIZE];
    if (out_size < 2 * sizeof raw + 1 || lss_random_bytes (raw, sizeof raw) != 0) {
        lss_errf (err, err_size, "cannot generate a JWT secret");
        return -1;
    }
    for (size_t i = 0; i < sizeof raw; i++)
        snprintf (out + 2 * i, 3, "%02x", raw[i]);
    char line[2 * UP_JWT_SECRET_SIZE + 2];
    snprintf (line, sizeof line, "%s\n", out);
    if (lss_sandbox_fs_write_atomic (p->jwt_secret, line, strlen (line), 0600) != 0) {
        lss_errf (err, err_size, "write %s: %s", p->jwt_secret, strerror (errno));
        return -1;
    }
    return 0;
}

int up_admin_key_line (const char *path, bool existed_before, char *out, size_t out_size)
{
    if (existed_before) {
        snprintf (out, out_size, "in %s (created on the first run)", path);
        return 1;
    }
    char key[S_ADMIN_KEY_MAX];
    ssize_t n = lss_sandbox_fs_read (path, key, sizeof key);
    if (n < 0 && errno == EFBIG) {
        snprintf (out, out_size, "in %s (it does not look like an lsp_ key)", path);
        return 1;
    }
    if (n <= 0)
        return 0; /* not written yet (or still empty) */
    key[strcspn (key, "\r\n")] = '\0';
    bool plausible = strncmp (key, "lsp_", 4) == 0 && strlen (key) > 4;
    for (const char *c = key; plausible && *c; c++)
        plausible = *c > ' ' && *c < 0x7f;
    if (plausible)
        snprintf (out, out_size, "%s  (saved in %s; printed only this once)", key, path);
    else
        snprintf (out, out_size, "in %s (it does not look like an lsp_ key)", path);
    return 1;
}

/* ------------------------------------------------------------------ PostgreSQL */

/*  The newest /usr/lib/postgresql/<N>/bin with initdb, or the one of version want. */
static int s_pg_bin (const char *want, char *out, size_t out_size)
{
    if (want) {
        char path[UP_PATH_MAX];
        if (lss_fmt (out, out_size, S_PG_ROOT "/%s/bin", want) ||
            lss_fmt (path, sizeof path, "%s/postgres", out) || access (path, X_OK) != 0)
            return -1;
        return 0;
    }
    DIR *d = opendir (S_PG_ROOT);
    if (!d)
        return -1;
    int64_t best = -1;
    struct dirent *e;
    while ((e = readdir (d))) {
        int64_t v;
        char path[UP_PATH_MAX];
        if (lss_parse_int64 (e->d_name, 1, 1000, &v) != 0 || v <= best ||
            lss_fmt (path, sizeof path, S_PG_ROOT "/%s/bin/initdb", e->d_name) ||
            access (path, X_OK) != 0)
            continue;
        best = v;
    }
    closedir (d);
    if (best < 0)
        return -1;
    return lss_fmt (out, out_size, S_PG_ROOT "/%lld/bin", (long long)best);
}

static bool s_dir_empty (const char *path)
{
    DIR *d = opendir (path);
    if (!d)
        return errno == ENOENT;
    struct dirent *e;
    bool empty = true;
    while (empty && (e = readdir (d)))
        empty = strcmp (e->d_name, ".") == 0 || strcmp (e->d_name, "..") == 0;
    closedir (d);
    return empty;
}

static int s_initdb (const up_paths_t *p, const char *pg_bin, bool set_ids, uid_t uid,
                     gid_t gid, FILE *out, char *err, size_t err_size)
{
    if (s_mkdir (p->pgdata, 0700, err, err_size))
        return -1;
    if (set_ids && chown (p->pgdata, uid, gid) != 0) {
        lss_errf (err, err_size, "chown %s: %s", p->pgdata, strerror (errno));
        return -1;
    }
    char initdb[UP_PATH_MAX], log_path[UP_PATH_MAX], hba[UP_PATH_MAX];
    if (lss_fmt (initdb, sizeof initdb, "%s/initdb", pg_bin) ||
        lss_fmt (log_path, sizeof log_path, "%s/initdb.log", p->logs) ||
        lss_fmt (hba, sizeof hba, "%s/pg_hba.conf", p->pgdata)) {
        lss_errf (err, err_size, "a path under %s is too long", p->data);
        return -1;
    }
    fprintf (out, "lss up: first run: creating a PostgreSQL cluster in %s (log %s)\n",
             p->pgdata, log_path);
    fflush (out);
    int log = open (log_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
    if (log < 0) {
        lss_errf (err, err_size, "open %s: %s", log_path, strerror (errno));
        return -1;
    }
    const char *argv[] = {initdb,  "-D", p->pgdata, "-U",       "postgres", "-A",
                          "trust", "-E", "UTF8",    "--locale", "C",        NULL};
    lss_proc_opts_t o = {.argv = argv,
                         .stdin_fd = -1,
                         .stdout_fd = log,
                         .stderr_fd = log,
                         .cwd = p->pgdata,
                         .new_session = true,
                         .set_ids = set_ids,
                         .uid = uid,
                         .gid = gid};
    int wstatus = 0;
    int rc = lss_proc_run (&o, S_INITDB_TIMEOUT, NULL, 0, &wstatus, err, err_size);
    close (log);
    if (rc != 0)
        return -1;
    if (!WIFEXITED (wstatus) || WEXITSTATUS (wstatus) != 0) {
        char how[LSS_PROC_DESCRIBE_SIZE];
        lss_errf (err, err_size, "initdb %s (see %s)",
                  lss_proc_describe (wstatus, how, sizeof how), log_path);
        return -1;
    }
    /* unix socket only (listen_addresses is empty), trusted: the socket dir is 0700 */
    const char *rules = "# Written by lss up: the unix socket only, in a directory only the "
                        "server's user (and root) can enter.\nlocal all all trust\n";
    if (lss_sandbox_fs_write_atomic (hba, rules, strlen (rules), 0600) != 0 ||
        (set_ids && chown (hba, uid, gid) != 0)) {
        lss_errf (err, err_size, "write %s: %s", hba, strerror (errno));
        return -1;
    }
    return 0;
}

int up_pg_prepare (const up_paths_t *p, char *pg_bin, size_t pg_bin_size, bool *set_ids,
                   uid_t *uid, gid_t *gid, FILE *out, char *err, size_t err_size)
{
    *set_ids = false;
    *uid = geteuid ();
    *gid = getegid ();
    if (geteuid () == 0) {
        struct passwd *pw = getpwnam ("postgres");
        if (!pw) {
            lss_errf (err, err_size,
                      "no 'postgres' user (is the postgresql package installed? "
                      "scripts/install-deps)");
            return -1;
        }
        *set_ids = true;
        *uid = pw->pw_uid;
        *gid = pw->pw_gid;
        if (!up_path_traversable (p->data, *uid, *gid)) {
            lss_errf (err, err_size,
                      "the postgres user cannot reach %s (a parent directory lacks o+x); "
                      "choose another --data-dir (the default /var/lib/lss works)",
                      p->data);
            return -1;
        }
    }
    char version_file[UP_PATH_MAX], version[16] = "";
    if (lss_fmt (version_file, sizeof version_file, "%s/PG_VERSION", p->pgdata)) {
        lss_errf (err, err_size, "a path under %s is too long", p->data);
        return -1;
    }
    if (lss_sandbox_fs_read (version_file, version, sizeof version) > 0) {
        version[strcspn (version, "\n")] = '\0';
        if (s_pg_bin (version, pg_bin, pg_bin_size) != 0) {
            lss_errf (err, err_size,
                      "%s holds a PostgreSQL %s cluster, but " S_PG_ROOT "/%s/bin/postgres "
                      "is not installed",
                      p->pgdata, version, version);
            return -1;
        }
    } else {
        if (!s_dir_empty (p->pgdata)) {
            lss_errf (err, err_size,
                      "%s is not empty but holds no PostgreSQL cluster (an interrupted "
                      "first run?): remove it and start again",
                      p->pgdata);
            return -1;
        }
        if (s_pg_bin (NULL, pg_bin, pg_bin_size) != 0) {
            lss_errf (err, err_size,
                      "no PostgreSQL under " S_PG_ROOT " (scripts/install-deps)");
            return -1;
        }
        if (s_initdb (p, pg_bin, *set_ids, *uid, *gid, out, err, err_size))
            return -1;
    }
    if (s_mkdir (p->pgsock, 0700, err, err_size))
        return -1;
    if (*set_ids && chown (p->pgsock, *uid, *gid) != 0) {
        lss_errf (err, err_size, "chown %s: %s", p->pgsock, strerror (errno));
        return -1;
    }
    return 0;
}

int up_pg_create_db (const up_paths_t *p, char *err, size_t err_size)
{
    char dsn[UP_TARGET_MAX];
    if (lss_fmt (dsn, sizeof dsn, "host=%s port=%d dbname=postgres user=postgres %s", p->pgsock,
                 UP_PG_PORT, S_PG_CONNECT_OPTS)) {
        lss_errf (err, err_size, "DSN too long");
        return -1;
    }
    PGconn *c = PQconnectdb (dsn);
    int rc = -1;
    PGresult *r = NULL;
    if (PQstatus (c) != CONNECTION_OK) {
        lss_errf (err, err_size, "connecting to PostgreSQL: %s", PQerrorMessage (c));
        goto cleanup;
    }
    r = PQexec (c, "SELECT 1 FROM pg_database WHERE datname = 'lss'");
    if (PQresultStatus (r) != PGRES_TUPLES_OK) {
        lss_errf (err, err_size, "listing databases: %s", PQerrorMessage (c));
        goto cleanup;
    }
    if (PQntuples (r) == 0) {
        PQclear (r);
        r = PQexec (c, "CREATE DATABASE lss");
        if (PQresultStatus (r) != PGRES_COMMAND_OK) {
            lss_errf (err, err_size, "CREATE DATABASE lss: %s", PQerrorMessage (c));
            goto cleanup;
        }
    }
    rc = 0;
cleanup:
    PQclear (r);
    PQfinish (c);
    return rc;
}

/* ------------------------------------------------------------------ the API address */

int up_listen_resolve (const char *listen, char *out, size_t out_size, char *err,
                       size_t err_size)
{
    char host[UP_ADDR_MAX];
    const char *colon = listen ? strrchr (listen, ':') : NULL;
    int64_t port;
    if (!colon || colon == listen || (size_t)(colon - listen) >= sizeof host ||
        lss_parse_int64 (colon + 1, 0, 65535, &port) != 0) {
        lss_errf (err, err_size, "listen address '%s' is not HOST:PORT", listen ? listen : "");
        return -1;
    }
    memcpy (host, listen, (size_t)(colon - listen));
    host[colon - listen] = '\0';
    char bare[UP_ADDR_MAX];
    size_t hl = strlen (host);
    if (hl >= 2 && host[0] == '[' && host[hl - 1] == ']')
        snprintf (bare, sizeof bare, "%.*s", (int)(hl - 2), host + 1);
    else
        snprintf (bare, sizeof bare, "%s", host);
    struct addrinfo hints = {.ai_family = AF_UNSPEC,
                             .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_NUMERICSERV | AI_PASSIVE};
    struct addrinfo *ai = NULL;
    char service[8];
    snprintf (service, sizeof service, "%lld", (long long)port);
    int gai = getaddrinfo (bare, service, &hints, &ai);
    if (gai != 0) {
        lss_errf (err, err_size, "listen host '%s': %s", host, gai_strerror (gai));
        return -1;
    }
    int rc = -1;
    int fd = socket (ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    if (fd < 0 || setsockopt (fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0 ||
        bind (fd, ai->ai_addr, ai->ai_addrlen) != 0) {
        lss_errf (err, err_size,
                  "cannot listen on %s: %s (something else uses it? choose another with "
                  "--listen HOST:PORT; port 0 picks a free one)",
                  listen, strerror (errno));
        goto cleanup;
    }
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    if (getsockname (fd, (struct sockaddr *)&ss, &sl) != 0) {
        lss_errf (err, err_size, "getsockname: %s", strerror (errno));
        goto cleanup;
    }
    int bound = ss.ss_family == AF_INET6 ? ntohs (((struct sockaddr_in6 *)&ss)->sin6_port)
                                         : ntohs (((struct sockaddr_in *)&ss)->sin_port);
    if (lss_fmt (out, out_size, "%s:%d", host, bound)) {
        lss_errf (err, err_size, "listen address too long");
        goto cleanup;
    }
    rc = 0;
cleanup:
    if (fd >= 0)
        close (fd);
    freeaddrinfo (ai);
    return rc;
}
