/*  sandbox_runtime — detached bubblewrap sandboxes with adoption. See sandbox_runtime.h.
 *
 *  Launch (the lean path: no shelling out, no sleeps, preflight done once):
 *    parent  validate, slot, state dir + workspace (+ host tmpfs) + run dir, cgroup,
 *            fds (status.json, init.log, /dev/null, seccomp memfd, info and control
 *            pipes, one pipe per /etc file), bwrap argv — then fork A;
 *    A       setsid, fork B, send B's pid, wait for the parent's ack, exit (while A
 *            lives B cannot be reaped, so the parent's pidfd_open(B) pins the right
 *            process);
 *    B       join cgroup, rlimits, NO_NEW_PRIVS, reset signals, drop uid/gid, fds onto
 *            3 (seccomp) 4 (status) 5 (info) 6.. (/etc files), close the rest, exec
 *            bwrap — B *is* bwrap's monitor from then on.
 *  The parent reads bwrap's --info-fd ("child-pid") and records pids + start times.
 *
 *  Workspace: a tmpfs of ephemeralStorageBytes. As root it is mounted on the host at
 *  state_dir/<id>/workspace (mode 0700, owned by the sandbox's host uid) and bound into
 *  the sandbox, so it survives runtime restarts, can be read after the sandbox ended and
 *  is removed by stop(). Without root it is a tmpfs inside the sandbox's mount
 *  namespace (bwrap --size), living exactly as long as the sandbox. Either way the cap
 *  is the filesystem size (ENOSPC), and tmpfs pages are charged to the sandbox's memory
 *  cgroup (documented in docs/sandbox.md).
 */
#include "sandbox_runtime.h"
#include "sandbox_fs.h"
#include "sandbox_seccomp.h"

#include "lss_log.h"
#include "lss_util.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/file.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#define S_ARGV_MAX        512
#define S_POOL_SIZE       (48 * 1024)
#define S_LAYOUT_MAX      48
#define S_STATE_FILE_MAX  (256 * 1024)
#define S_STATUS_FILE_MAX (64 * 1024)
#define S_PATH_ENV        "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
#define S_RUN_DIR         "/run/lss"
#define S_NOFILE          1024
#define S_FD_SECCOMP      3
#define S_FD_STATUS       4
#define S_FD_INFO         5
#define S_FD_DATA         6 /* first of the /etc files' descriptors (bwrap --ro-bind-data) */
#define S_ETC_FILES_MAX   6
#define S_MAX_CG_DIRS     LSS_SANDBOX_CG_COUNT
#define S_MAX_RLIMITS     6
#define S_CHILD_STACK     (64 * 1024)

/* ------------------------------------------------------------------ types */

typedef struct {
    char path[64];    /* "/usr" (sandbox path, also host path under the root) */
    char target[256]; /* symlink target, "" for a directory */
} s_entry_t;

typedef struct {
    s_entry_t e[S_LAYOUT_MAX];
    size_t n;
} s_layout_t;

typedef struct {
    lss_sandbox_status_t st;
    int slot;  /* -1 when not root */
    int pidfd; /* the monitor's; -1 once it ended */
    uint64_t monitor_start;
    uint64_t init_start;
    lss_sandbox_cgroup_t *cgroup;
    bool host_tmpfs; /* workspace mounted on the host */
    bool stopping;
    bool reported;
    json_t *spec; /* for state.json */
} s_box_t;

struct _lss_sandbox_runtime_t {
    char state_dir[PATH_MAX];
    char bwrap[PATH_MAX];
    lss_sandbox_preflight_t *pf;
    int lock_fd;
    int epoll_fd;
    s_box_t *boxes[LSS_SANDBOX_RUNTIME_MAX];
    size_t count;
    uint32_t uid_base, uid_count;
    uint8_t *slots;
    bool frozen; /* uid range fixed once something started/adopted */
    uint8_t *bpf[2];
    size_t bpf_len[2];
    s_layout_t host_layout;
    bool host_alternatives, host_ldcache, host_certs;
    char resolv[1024];
    bool is_root;
    bool host_tmpfs;
};

/*  Everything the forked children use, prepared before fork (no allocation after). */
typedef struct {
    const char *argv[S_ARGV_MAX];
    size_t argc;
    bool overflow;
    char pool[S_POOL_SIZE];
    size_t pool_used;
    const char *procs[S_MAX_CG_DIRS];
    size_t nprocs;
    int rl_res[S_MAX_RLIMITS];
    struct rlimit64 rl[S_MAX_RLIMITS];
    size_t nrl;
    bool drop;
    uid_t uid;
    gid_t gid;
    int fd_null, fd_log, fd_seccomp, fd_status, fd_info_w;
    int fd_data[S_ETC_FILES_MAX]; /* read ends holding the /etc files, -1 when closed */
    const char *data_name[S_ETC_FILES_MAX];
    size_t ndata;
    char stack_a[S_CHILD_STACK] __attribute__ ((aligned (16)));
    char stack_b[S_CHILD_STACK] __attribute__ ((aligned (16)));
    /* written by the children (they share our memory until B execs) */
    volatile pid_t b_pid;
    volatile int b_pidfd;
    volatile int fail_step;
    volatile int fail_errno;
} s_launch_t;

static const char *s_steps[] = {
    "",          "clone",     "cgroup",    "rlimit", "no_new_privs", "signals",
    "setgroups", "setresgid", "setresuid", "fds",    "exec",         "setsid"};

/* ------------------------------------------------------------------ helpers */

static int s_pidfd_open (pid_t pid)
{
    return pid > 0 ? (int)syscall (SYS_pidfd_open, pid, 0) : -1;
}

static int s_pidfd_kill (int pidfd, int sig)
{
    return (int)syscall (SYS_pidfd_send_signal, pidfd, sig, NULL, 0);
}

/*  Waits for a pidfd to become readable (process ended). True if it did. */
static bool s_pidfd_wait (int pidfd, int timeout_ms)
{
    if (pidfd < 0)
        return true;
    struct pollfd pfd = {pidfd, POLLIN, 0};
    int64_t deadline = lss_time_mono_ms () + timeout_ms;
    for (;;) {
        int64_t left = deadline - lss_time_mono_ms ();
        int rc = poll (&pfd, 1, left > 0 ? (int)left : 0);
        if (rc > 0)
            return true;
        if (rc == 0 || errno != EINTR)
            return false;
    }
}

/*  The process pid if it is still the one that started at start_ticks (with parent
 *  ppid when ppid > 0): a pidfd pinning it, else -1. */
static int s_pidfd_verified (pid_t pid, uint64_t start_ticks, pid_t ppid)
{
    int fd = s_pidfd_open (pid);
    if (fd < 0)
        return -1;
    uint64_t start = 0;
    pid_t parent = 0;
    if (lss_sandbox_proc_stat (pid, &start, &parent) || (start_ticks && start != start_ticks) ||
        (ppid > 0 && parent != ppid)) {
        close (fd);
        return -1;
    }
    return fd;
}

static int s_box_path (const lss_sandbox_runtime_t *self, const char *id, const char *name,
                       char *out, size_t size)
{
    return lss_fmt (out, size, "%s/%s%s%s", self->state_dir, id, name ? "/" : "",
                    name ? name : "");
}

static s_box_t *s_find (const lss_sandbox_runtime_t *self, const char *id)
{
    for (size_t i = 0; id && i < self->count; i++)
        if (strcmp (self->boxes[i]->st.id, id) == 0)
            return self->boxes[i];
    return NULL;
}

static void s_box_free (s_box_t **box_p)
{
    s_box_t *box = *box_p;
    if (!box)
        return;
    if (box->pidfd >= 0)
        close (box->pidfd);
    lss_sandbox_cgroup_destroy (&box->cgroup);
    json_decref (box->spec);
    free (box);
    *box_p = NULL;
}

static void s_remove_box (lss_sandbox_runtime_t *self, s_box_t *box)
{
    for (size_t i = 0; i < self->count; i++) {
        if (self->boxes[i] != box)
            continue;
        self->boxes[i] = self->boxes[--self->count];
        break;
    }
    if (box->pidfd >= 0)
        epoll_ctl (self->epoll_fd, EPOLL_CTL_DEL, box->pidfd, NULL);
    if (box->slot >= 0 && (uint32_t)box->slot < self->uid_count)
        self->slots[box->slot] = 0;
    s_box_free (&box);
}

static int s_slot_alloc (lss_sandbox_runtime_t *self)
{
    for (uint32_t i = 0; i < self->uid_count; i++) {
        if (!self->slots[i]) {
            self->slots[i] = 1;
            return (int)i;
        }
    }
    return -1;
}

/* ------------------------------------------------------------------ argv builder */

static void s_arg (s_launch_t *l, const char *s)
{
    if (l->argc + 1 >= S_ARGV_MAX || !s) {
        l->overflow = true;
        return;
    }
    l->argv[l->argc++] = s;
    l->argv[l->argc] = NULL;
}

static const char *s_argf (s_launch_t *l, const char *fmt, ...)
    __attribute__ ((format (printf, 2, 3)));

static const char *s_argf (s_launch_t *l, const char *fmt, ...)
{
    va_list ap;
    va_start (ap, fmt);
    size_t room = S_POOL_SIZE - l->pool_used;
    int n = vsnprintf (l->pool + l->pool_used, room, fmt, ap);
    va_end (ap);
    if (n < 0 || (size_t)n >= room) {
        l->overflow = true;
        return NULL;
    }
    const char *s = l->pool + l->pool_used;
    l->pool_used += (size_t)n + 1;
    s_arg (l, s);
    return s;
}

static void s_args (s_launch_t *l, int n, ...)
{
    va_list ap;
    va_start (ap, n);
    for (int i = 0; i < n; i++)
        s_arg (l, va_arg (ap, const char *));
    va_end (ap);
}

/* ------------------------------------------------------------------ root layout */

static bool s_excluded_top (const char *name)
{
    static const char *skip[] = {"proc", "dev",        "sys",  "tmp", "run",  "workspace",
                                 "etc",  "lost+found", "boot", "mnt", "media"};
    for (size_t i = 0; i < sizeof skip / sizeof skip[0]; i++)
        if (strcmp (name, skip[i]) == 0)
            return true;
    return false;
}

static void s_layout_add (s_layout_t *layout, const char *root, const char *name)
{
    char host[PATH_MAX];
    struct stat st;
    if (layout->n >= S_LAYOUT_MAX || strlen (name) + 2 > sizeof layout->e[0].path ||
        lss_fmt (host, sizeof host, "%s/%s", root, name) || lstat (host, &st))
        return;
    s_entry_t *e = &layout->e[layout->n];
    lss_errf (e->path, sizeof e->path, "/%s", name);
    e->target[0] = '\0';
    if (S_ISLNK (st.st_mode)) {
        ssize_t n = readlink (host, e->target, sizeof e->target - 1);
        if (n <= 0 || (size_t)n >= sizeof e->target - 1)
            return;
        e->target[n] = '\0';
    } else if (!S_ISDIR (st.st_mode))
        return;
    layout->n++;
}

/*  The host root: only the program directories, never /etc, /root, /home, /var, ... */
static void s_host_layout (s_layout_t *layout)
{
    static const char *dirs[] = {"usr", "bin", "sbin", "lib", "lib32", "lib64", "libx32"};
    layout->n = 0;
    for (size_t i = 0; i < sizeof dirs / sizeof dirs[0]; i++)
        s_layout_add (layout, "", dirs[i]);
}

/*  A rootfs directory (an image): every top-level entry but the ones the runtime
 *  provides itself. */
static int s_rootfs_layout (s_layout_t *layout, const char *rootfs)
{
    layout->n = 0;
    DIR *dir = opendir (rootfs);
    if (!dir)
        return -1;
    struct dirent *de;
    while ((de = readdir (dir))) {
        if (de->d_name[0] == '.' || s_excluded_top (de->d_name))
            continue;
        s_layout_add (layout, rootfs, de->d_name);
    }
    closedir (dir);
    return 0;
}

/* ------------------------------------------------------------------ state files */

static json_t *s_state_json (const s_box_t *box)
{
    const lss_sandbox_status_t *st = &box->st;
    json_t *obj = json_pack ("{s:i, s:s, s:I, s:I, s:I, s:I, s:I, s:I, s:b, s:O*}", "version",
                             1, "id", st->id, "slot", (json_int_t)box->slot, "hostUid",
                             (json_int_t)st->host_uid, "hostGid", (json_int_t)st->host_gid,
                             "monitorPid", (json_int_t)st->monitor_pid, "monitorStart",
                             (json_int_t)box->monitor_start, "initPid", (json_int_t)st->pid,
                             "hostTmpfs", box->host_tmpfs, "spec", box->spec);
    json_t *status = lss_sandbox_status_to_json (st);
    if (!obj || !status || json_object_set_new (obj, "status", status) ||
        json_object_set_new (obj, "initStart", json_integer ((json_int_t)box->init_start))) {
        json_decref (obj);
        return NULL;
    }
    return obj;
}

static int s_write_state (const lss_sandbox_runtime_t *self, const s_box_t *box)
{
    char path[PATH_MAX];
    json_t *obj = s_state_json (box);
    char *text = obj ? json_dumps (obj, JSON_COMPACT) : NULL;
    int rc = -1;
    if (text && s_box_path (self, box->st.id, "state.json", path, sizeof path) == 0)
        rc = lss_sandbox_fs_write_atomic (path, text, strlen (text), 0600);
    free (text);
    json_decref (obj);
    return rc;
}

/*  bwrap's --json-status-fd output: "child-pid" first, "exit-code" when it ended. */
static void s_read_status_file (const lss_sandbox_runtime_t *self, const char *id, pid_t *child,
                                int *exit_code)
{
    char path[PATH_MAX];
    char *buf = malloc (S_STATUS_FILE_MAX);
    if (!buf || s_box_path (self, id, "status.json", path, sizeof path)) {
        free (buf);
        return;
    }
    ssize_t len = lss_sandbox_fs_read (path, buf, S_STATUS_FILE_MAX);
    size_t off = 0;
    while (len > 0 && off < (size_t)len) {
        while (off < (size_t)len && (buf[off] == '\n' || buf[off] == ' '))
            off++;
        if (off >= (size_t)len)
            break;
        json_error_t jerr;
        json_t *doc = json_loadb (buf + off, (size_t)len - off, JSON_DISABLE_EOF_CHECK, &jerr);
        if (!doc)
            break;
        json_t *v = json_object_get (doc, "child-pid");
        if (json_is_integer (v) && child)
            *child = (pid_t)json_integer_value (v);
        v = json_object_get (doc, "exit-code");
        if (json_is_integer (v) && exit_code)
            *exit_code = (int)json_integer_value (v);
        json_decref (doc);
        if (jerr.position <= 0)
            break;
        off += (size_t)jerr.position;
    }
    free (buf);
}

/*  bwrap reports its own failures on the init's stderr as "bwrap: ...". */
static bool s_bwrap_message (const lss_sandbox_runtime_t *self, const char *id, char *out,
                             size_t size)
{
    char path[PATH_MAX], buf[512];
    if (s_box_path (self, id, "init.log", path, sizeof path) ||
        (lss_sandbox_fs_read (path, buf, sizeof buf) < 0 && errno != EFBIG))
        return false;
    if (strncmp (buf, "bwrap: ", 7) != 0)
        return false;
    buf[strcspn (buf, "\n")] = '\0';
    lss_errf (out, size, "%s", buf);
    return true;
}

/* ------------------------------------------------------------------ endings */

static void s_set_reason (s_box_t *box, const char *reason)
{
    lss_errf (box->st.reason, sizeof box->st.reason, "%s", reason);
}

/*  Records how a sandbox ended (its monitor is gone). Idempotent. */
static void s_finish (lss_sandbox_runtime_t *self, s_box_t *box)
{
    if (box->st.phase == LSS_SANDBOX_EXITED)
        return;
    lss_sandbox_status_t *st = &box->st;
    /* the monitor died but the init lives (someone killed bwrap): nobody would report
       its end any more, so end it now */
    int init_fd =
        st->pid > 0 && box->init_start ? s_pidfd_verified (st->pid, box->init_start, 0) : -1;
    bool init_orphaned = init_fd >= 0;
    if (init_fd >= 0) {
        s_pidfd_kill (init_fd, SIGKILL);
        s_pidfd_wait (init_fd, 1000);
        close (init_fd);
    }
    int exit_code = -1;
    pid_t child = 0;
    s_read_status_file (self, st->id, &child, &exit_code);
    if (st->pid <= 0 && child > 0)
        st->pid = child;
    st->exit_code = exit_code;
    st->signal = exit_code > 128 && exit_code < 128 + 65 ? exit_code - 128 : 0;
    st->oom_kills = box->cgroup ? lss_sandbox_cgroup_oom_kills (box->cgroup) : 0;
    char msg[sizeof st->message] = "";
    if (box->stopping)
        s_set_reason (box, "Stopped");
    else if ((exit_code < 0 || exit_code == 1) && !init_orphaned &&
             s_bwrap_message (self, st->id, msg, sizeof msg)) {
        /* bwrap failed setting the sandbox up (the init never ran) */
        s_set_reason (box, "StartError");
        lss_errf (st->message, sizeof st->message, "%s", msg);
    } else if (init_orphaned || exit_code < 0) {
        s_set_reason (box, "Lost");
        lss_errf (st->message, sizeof st->message, "%s",
                  init_orphaned ? "bwrap monitor died; sandbox killed"
                                : "no exit status recorded");
    } else if (st->oom_kills > 0 && (st->signal == SIGKILL || exit_code != 0)) {
        s_set_reason (box, "OOMKilled");
        lss_errf (st->message, sizeof st->message,
                  "memory limit reached (%" PRId64 " OOM kill(s))", st->oom_kills);
    } else if (st->signal == SIGXFSZ || st->signal == SIGXCPU) {
        s_set_reason (box, "LimitExceeded");
        lss_errf (st->message, sizeof st->message, "%s",
                  st->signal == SIGXFSZ ? "file size limit (storage cap)" : "CPU time limit");
    } else if (st->signal)
        s_set_reason (box, "Signaled");
    else
        s_set_reason (box, exit_code == 0 ? "Completed" : "Error");
    st->phase = LSS_SANDBOX_EXITED;
    st->finished_ms = lss_time_now_ms ();
    /* if this process is a child subreaper the monitor was reparented to us: reap it
       (otherwise ECHILD; the pid cannot have been reused while it is our zombie) */
    if (st->monitor_pid > 0)
        waitpid (st->monitor_pid, NULL, WNOHANG);
    if (box->pidfd >= 0) {
        epoll_ctl (self->epoll_fd, EPOLL_CTL_DEL, box->pidfd, NULL);
        close (box->pidfd);
        box->pidfd = -1;
    }
    s_write_state (self, box);
    if (!box->stopping)
        lss_log_info ("sandbox ended", "{s:s, s:s, s:i, s:i, s:I}", "id", st->id, "reason",
                      st->reason, "exit_code", st->exit_code, "signal", st->signal, "oom_kills",
                      (json_int_t)st->oom_kills);
}

/*  Notices an ending without blocking. */
static void s_refresh (lss_sandbox_runtime_t *self, s_box_t *box)
{
    if (box->st.phase == LSS_SANDBOX_RUNNING && s_pidfd_wait (box->pidfd, 0))
        s_finish (self, box);
}

/* ------------------------------------------------------------------ create / destroy */

static int s_prepare_state_dir (lss_sandbox_runtime_t *self, bool is_root)
{
    if (mkdir (self->state_dir, 0711) && errno != EEXIST)
        return -1;
    struct stat st;
    if (stat (self->state_dir, &st) || !S_ISDIR (st.st_mode) || st.st_uid != geteuid ()) {
        errno = EPERM;
        return -1;
    }
    if (chmod (self->state_dir, 0711))
        return -1;
    /* sandbox uids must be able to traverse down to their own directory */
    if (is_root) {
        char path[PATH_MAX];
        snprintf (path, sizeof path, "%s", self->state_dir);
        for (char *slash = strrchr (path, '/'); slash && slash != path;
             slash = strrchr (path, '/')) {
            *slash = '\0';
            if (stat (path, &st) == 0 && !(st.st_mode & S_IXOTH)) {
                errno = EACCES;
                return -1;
            }
        }
    }
    return 0;
}

/*  True if path is a mount point (its device differs from its parent's). */
static bool s_is_mount_point (const char *path)
{
    char parent[PATH_MAX];
    struct stat a, b;
    if (lss_fmt (parent, sizeof parent, "%s/..", path) || lstat (path, &a) ||
        lstat (parent, &b))
        return false;
    return a.st_dev != b.st_dev;
}

/*  Root: can we mount a tmpfs (the workspace) on the host side? */
static bool s_probe_host_tmpfs (const lss_sandbox_runtime_t *self)
{
    char path[PATH_MAX];
    if (lss_fmt (path, sizeof path, "%s/.mount-probe", self->state_dir) ||
        (mkdir (path, 0700) && errno != EEXIST))
        return false;
    bool ok = mount ("tmpfs", path, "tmpfs", MS_NOSUID | MS_NODEV, "size=65536,mode=0700") == 0;
    if (ok)
        umount2 (path, MNT_DETACH);
    rmdir (path);
    return ok;
}

static void s_read_resolv (lss_sandbox_runtime_t *self)
{
    char buf[4096];
    self->resolv[0] = '\0';
    if (lss_sandbox_fs_read ("/etc/resolv.conf", buf, sizeof buf) < 0)
        return;
    size_t used = 0;
    for (char *line = buf; line && *line;) {
        char *next = strchr (line, '\n');
        if (next)
            *next++ = '\0';
        if (strncmp (line, "nameserver ", 11) == 0 || strncmp (line, "search ", 7) == 0 ||
            strncmp (line, "options ", 8) == 0) {
            int n = snprintf (self->resolv + used, sizeof self->resolv - used, "%s\n", line);
            if (n < 0 || (size_t)n >= sizeof self->resolv - used)
                break;
            used += (size_t)n;
        }
        line = next;
    }
}

lss_sandbox_runtime_t *lss_sandbox_runtime_new (const char *state_dir, const char *bwrap_path,
                                                lss_sandbox_preflight_t **preflight_p)
{
    lss_sandbox_runtime_t *self = calloc (1, sizeof *self);
    if (!self)
        return NULL;
    self->lock_fd = -1;
    self->epoll_fd = -1;
    self->is_root = geteuid () == 0;
    self->uid_base = LSS_SANDBOX_DEFAULT_UID_BASE;
    self->uid_count = LSS_SANDBOX_DEFAULT_UID_COUNT;
    if (preflight_p && *preflight_p) {
        self->pf = *preflight_p;
        *preflight_p = NULL;
    } else {
        lss_sandbox_preflight_opts_t opts = {bwrap_path, NULL, 0};
        self->pf = lss_sandbox_preflight_new (&opts);
    }
    const char *why = NULL;
    if (!self->pf) {
        why = "preflight failed";
        goto fail;
    }
    if (!state_dir || state_dir[0] != '/' ||
        lss_fmt (self->state_dir, sizeof self->state_dir, "%s", state_dir) ||
        lss_fmt (self->bwrap, sizeof self->bwrap, "%s",
                 bwrap_path ? bwrap_path : self->pf->bwrap_path)) {
        why = "state dir must be an absolute path";
        goto fail;
    }
    size_t len = strlen (self->state_dir);
    while (len > 1 && self->state_dir[len - 1] == '/')
        self->state_dir[--len] = '\0';
    if (s_prepare_state_dir (self, self->is_root)) {
        why = errno == EACCES ? "state dir is below a directory sandbox uids cannot traverse"
                              : "state dir cannot be created or is not ours";
        goto fail;
    }
    char path[PATH_MAX];
    if (lss_fmt (path, sizeof path, "%s/.lock", self->state_dir) ||
        (self->lock_fd = open (path, O_RDWR | O_CREAT | O_CLOEXEC, 0600)) < 0 ||
        flock (self->lock_fd, LOCK_EX | LOCK_NB)) {
        why = "state dir is locked by another runtime";
        goto fail;
    }
    self->epoll_fd = epoll_create1 (EPOLL_CLOEXEC);
    self->slots = calloc (LSS_SANDBOX_DEFAULT_UID_COUNT, 1);
    if (self->epoll_fd < 0 || !self->slots) {
        why = "out of resources";
        goto fail;
    }
    for (int level = 0; level < 2; level++) {
        if (lss_sandbox_seccomp_export ((lss_sandbox_level_t)level, &self->bpf[level],
                                        &self->bpf_len[level])) {
            why = "cannot build the seccomp filters";
            goto fail;
        }
    }
    s_host_layout (&self->host_layout);
    struct stat st;
    self->host_alternatives = stat ("/etc/alternatives", &st) == 0 && S_ISDIR (st.st_mode);
    self->host_ldcache = stat ("/etc/ld.so.cache", &st) == 0 && S_ISREG (st.st_mode);
    self->host_certs = stat ("/etc/ssl/certs", &st) == 0 && S_ISDIR (st.st_mode);
    s_read_resolv (self);
    self->host_tmpfs = self->is_root && s_probe_host_tmpfs (self);
    lss_log_info ("sandbox runtime ready", "{s:s, s:s, s:b, s:s}", "state_dir", self->state_dir,
                  "bwrap", self->bwrap, "root", self->is_root, "workspace",
                  self->host_tmpfs ? "host-tmpfs" : "sandbox-tmpfs");
    return self;
fail:
    lss_log_error ("sandbox runtime not created", "{s:s, s:s}", "state_dir",
                   state_dir ? state_dir : "", "reason", why ? why : "?");
    lss_sandbox_runtime_destroy (&self);
    return NULL;
}

void lss_sandbox_runtime_destroy (lss_sandbox_runtime_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    lss_sandbox_runtime_t *self = *self_p;
    for (size_t i = 0; i < self->count; i++)
        s_box_free (&self->boxes[i]);
    if (self->pf)
        lss_sandbox_cgroup_host_cleanup (&self->pf->cgroup); /* only empty parents go */
    lss_sandbox_preflight_destroy (&self->pf);
    if (self->epoll_fd >= 0)
        close (self->epoll_fd);
    if (self->lock_fd >= 0)
        close (self->lock_fd);
    free (self->bpf[0]);
    free (self->bpf[1]);
    free (self->slots);
    free (self);
    *self_p = NULL;
}

int lss_sandbox_runtime_set_uid_range (lss_sandbox_runtime_t *self, uint32_t base,
                                       uint32_t count)
{
    if (self->frozen || self->count || count == 0 || count > 65536 || base < 1000 ||
        base > UINT32_MAX - count)
        return -1;
    uint8_t *slots = calloc (count, 1);
    if (!slots)
        return -1;
    free (self->slots);
    self->slots = slots;
    self->uid_base = base;
    self->uid_count = count;
    return 0;
}

const lss_sandbox_preflight_t *lss_sandbox_runtime_preflight (const lss_sandbox_runtime_t *self)
{
    return self->pf;
}

/* ------------------------------------------------------------------ start */

/*  The sandbox's own /etc: root and one user, localhost, files-only NSS; resolv.conf
 *  only with network. Empty mount points for the few host/image entries bound on top. */
/*  The sandbox's own /etc files (passwd, group, hosts, hostname, nsswitch.conf and, with
 *  network, resolv.conf) go to bwrap as data (--ro-bind-data), each through a pipe
 *  holding its whole text: nothing is written to the state directory for them. Files
 *  there cost an ext4 inode each (create, then delete at the end) and the allocation of
 *  inodes among many recently deleted ones was about a sixth of the machine's CPU
 *  during a burst of 200 starts (docs/benchmarks.md). Returns 0 or -1 (errno). */
static int s_etc_add (s_launch_t *l, const char *name, const char *text)
{
    int p[2];
    size_t len = strlen (text);
    if (l->ndata >= S_ETC_FILES_MAX || len > 16384 || pipe2 (p, O_CLOEXEC))
        return -1;
    ssize_t w = write (p[1], text, len); /* fits in the pipe: never blocks */
    close (p[1]);
    if (w != (ssize_t)len) {
        close (p[0]);
        errno = EIO;
        return -1;
    }
    l->fd_data[l->ndata] = p[0];
    l->data_name[l->ndata] = name;
    l->ndata++;
    return 0;
}

static int s_etc_data (const lss_sandbox_runtime_t *self, const lss_sandbox_spec_t *spec,
                       s_launch_t *l)
{
    char text[2048];
    if (lss_fmt (text, sizeof text,
                 "root:x:0:0:root:/root:/usr/sbin/nologin\n"
                 "sandbox:x:%u:%u:sandbox:/workspace:/bin/sh\n",
                 (unsigned)spec->uid, (unsigned)spec->gid) ||
        s_etc_add (l, "/etc/passwd", text))
        return -1;
    if (lss_fmt (text, sizeof text, "root:x:0:\nsandbox:x:%u:\n", (unsigned)spec->gid) ||
        s_etc_add (l, "/etc/group", text))
        return -1;
    if (lss_fmt (text, sizeof text,
                 "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n"
                 "127.0.1.1\t%s\n",
                 spec->id) ||
        s_etc_add (l, "/etc/hosts", text))
        return -1;
    if (lss_fmt (text, sizeof text, "%s\n", spec->id) || s_etc_add (l, "/etc/hostname", text))
        return -1;
    if (s_etc_add (l, "/etc/nsswitch.conf",
                   "passwd: files\ngroup: files\nshadow: files\nhosts: files dns\n"
                   "networks: files\nprotocols: files\nservices: files\n"))
        return -1;
    if (spec->network && s_etc_add (l, "/etc/resolv.conf", self->resolv))
        return -1;
    return 0;
}

/*  Builds bwrap's argv. Paths that must outlive this call live in l->pool. */
static int s_build_argv (const lss_sandbox_runtime_t *self, const lss_sandbox_spec_t *spec,
                         const s_layout_t *layout, const char *root, const char *box_dir,
                         bool host_tmpfs, bool alternatives, bool ldcache, bool certs,
                         s_launch_t *l)
{
    s_arg (l, self->bwrap);
    s_args (l, 5, "--unshare-user", "--unshare-pid", "--unshare-ipc", "--unshare-uts",
            "--unshare-cgroup-try");
    if (!spec->network)
        s_arg (l, "--unshare-net");
    s_args (l, 2, "--disable-userns", "--uid");
    s_argf (l, "%u", (unsigned)spec->uid);
    s_arg (l, "--gid");
    s_argf (l, "%u", (unsigned)spec->gid);
    s_args (l, 2, "--hostname", spec->id);
    s_args (l, 4, "--as-pid-1", "--new-session", "--cap-drop", "ALL");
    s_args (l, 10, "--clearenv", "--setenv", "PATH", S_PATH_ENV, "--setenv", "HOME",
            "/workspace", "--setenv", "LANG", "C.UTF-8");
    for (size_t i = 0; i < spec->envc; i++) {
        const char *eq = strchr (spec->env[i], '=');
        s_arg (l, "--setenv");
        s_argf (l, "%.*s", (int)(eq - spec->env[i]), spec->env[i]);
        s_arg (l, eq + 1);
    }
    s_args (l, 6, "--seccomp", "3", "--json-status-fd", "4", "--info-fd", "5");
    const char *bind = spec->read_only_root ? "--ro-bind" : "--bind";
    for (size_t i = 0; i < layout->n; i++) {
        const s_entry_t *e = &layout->e[i];
        if (e->target[0]) {
            s_args (l, 3, "--symlink", e->target, e->path);
        } else {
            s_arg (l, bind);
            s_argf (l, "%s%s", root, e->path);
            s_arg (l, e->path);
        }
    }
    s_args (l, 4, "--proc", "/proc", "--dev", "/dev");
    s_args (l, 3, "--perms", "1777", "--size");
    s_argf (l, "%" PRId64, spec->tmp_bytes);
    s_args (l, 5, "--tmpfs", "/dev/shm", "--perms", "1777", "--size");
    s_argf (l, "%" PRId64, spec->tmp_bytes);
    s_args (l, 2, "--tmpfs", "/tmp");
    if (host_tmpfs) {
        s_arg (l, "--bind");
        s_argf (l, "%s/workspace", box_dir);
        s_arg (l, "/workspace");
    } else {
        s_args (l, 3, "--perms", "0700", "--size");
        s_argf (l, "%" PRId64, spec->ephemeral_bytes);
        s_args (l, 2, "--tmpfs", "/workspace");
    }
    s_arg (l, "--bind");
    s_argf (l, "%s/run", box_dir);
    s_arg (l, S_RUN_DIR);
    /* /etc is a directory of bwrap's root (read-only with it below), its files come as
     * data; the host entries below get their mount points from bwrap */
    s_args (l, 2, "--dir", "/etc");
    for (size_t i = 0; i < l->ndata; i++) {
        s_args (l, 3, "--perms", "0644", "--ro-bind-data");
        s_argf (l, "%d", S_FD_DATA + (int)i);
        s_arg (l, l->data_name[i]);
    }
    if (alternatives) {
        s_arg (l, "--ro-bind");
        s_argf (l, "%s/etc/alternatives", root);
        s_arg (l, "/etc/alternatives");
    }
    if (ldcache) {
        s_arg (l, "--ro-bind");
        s_argf (l, "%s/etc/ld.so.cache", root);
        s_arg (l, "/etc/ld.so.cache");
    }
    if (certs) {
        s_args (l, 4, "--perms", "0755", "--dir", "/etc/ssl"); /* bwrap's own would be 0700 */
        s_arg (l, "--ro-bind");
        s_argf (l, "%s/etc/ssl/certs", root);
        s_arg (l, "/etc/ssl/certs");
    }
    for (size_t i = 0; i < spec->ro_bind_count; i++)
        s_args (l, 3, "--ro-bind", spec->ro_binds[i].src, spec->ro_binds[i].dest);
    for (size_t i = 0; i < spec->writable_count; i++) {
        s_args (l, 3, "--perms", "0755", "--size");
        s_argf (l, "%" PRId64, spec->tmp_bytes);
        s_args (l, 2, "--tmpfs", spec->writable[i]);
    }
    s_args (l, 6, "--remount-ro", "/dev", "--remount-ro", "/", "--chdir", "/workspace");
    s_arg (l, "--");
    for (size_t i = 0; i < spec->argc; i++)
        s_arg (l, spec->argv[i]);
    return l->overflow ? -1 : 0;
}

static void s_add_rlimit (s_launch_t *l, int resource, rlim_t value)
{
    struct rlimit cur;
    if (l->nrl >= S_MAX_RLIMITS || getrlimit (resource, &cur))
        return;
    if (cur.rlim_max != RLIM_INFINITY && value > cur.rlim_max)
        value = cur.rlim_max; /* can only lower */
    l->rl_res[l->nrl] = resource;
    l->rl[l->nrl].rlim_cur = value;
    l->rl[l->nrl].rlim_max = value;
    l->nrl++;
}

/*  The children: A (session leader, exits at once) and B (becomes bwrap's monitor).
 *  Both are clone(CLONE_VM | CLONE_VFORK) children, the way posix_spawn works: no page
 *  tables are copied (a fork costs ~1 ms on small VMs, more for a big process) and the
 *  parent sleeps until B has exec'd or failed. Sharing our memory, they make only raw
 *  system calls on data prepared beforehand: no libc state, no glibc setxid broadcast
 *  (it would change the credentials of our other threads), no sanitizer interceptors,
 *  signals blocked until B has reset every handler to the default. A shares our file
 *  table (CLONE_FILES), so the pidfd it gets for B lands in ours: B is pinned from
 *  birth, with no pid-reuse window, yet is not our child. */

#define S_NO_SANITIZE __attribute__ ((no_sanitize ("address", "undefined")))

struct s_ksigaction { /* the kernel's struct sigaction */
    void *handler;
    unsigned long flags;
    void *restorer;
    uint64_t mask;
};

/*  Raw system call returning -errno (errno itself belongs to our parent's thread). */
S_NO_SANITIZE static long s_sys (long nr, long a, long b, long c, long d)
{
    long rc = syscall (nr, a, b, c, d);
    return rc == -1 ? -(long)errno : rc;
}

S_NO_SANITIZE static void s_fail (s_launch_t *l, int step, long rc)
{
    l->fail_step = step;
    l->fail_errno = (int)-rc;
    syscall (SYS_exit, 127);
}

S_NO_SANITIZE static int s_child_b (void *arg)
{
    s_launch_t *l = arg;
    long rc;
    for (size_t i = 0; i < l->nprocs; i++) {
        long fd = s_sys (SYS_openat, AT_FDCWD, (long)l->procs[i], O_WRONLY | O_CLOEXEC, 0);
        if (fd < 0)
            s_fail (l, 2, fd);
        rc = s_sys (SYS_write, fd, (long)"0", 1, 0);
        s_sys (SYS_close, fd, 0, 0, 0);
        if (rc != 1)
            s_fail (l, 2, rc < 0 ? rc : -EIO);
    }
    for (size_t i = 0; i < l->nrl; i++)
        if ((rc = s_sys (SYS_prlimit64, 0, l->rl_res[i], (long)&l->rl[i], 0)) < 0)
            s_fail (l, 3, rc);
    if ((rc = s_sys (SYS_prctl, PR_SET_NO_NEW_PRIVS, 1, 0, 0)) < 0)
        s_fail (l, 4, rc);
    struct s_ksigaction dfl = {0, 0, 0, 0};
    for (long sig = 1; sig <= 64; sig++)
        if (sig != SIGKILL && sig != SIGSTOP)
            s_sys (SYS_rt_sigaction, sig, (long)&dfl, 0, 8);
    if (l->drop) {
        if ((rc = s_sys (SYS_setgroups, 0, 0, 0, 0)) < 0)
            s_fail (l, 6, rc);
        if ((rc = s_sys (SYS_setresgid, l->gid, l->gid, l->gid, 0)) < 0)
            s_fail (l, 7, rc);
        if ((rc = s_sys (SYS_setresuid, l->uid, l->uid, l->uid, 0)) < 0)
            s_fail (l, 8, rc);
    }
    s_sys (SYS_umask, 022, 0, 0, 0);
    if ((rc = s_sys (SYS_chdir, (long)"/", 0, 0, 0)) < 0)
        s_fail (l, 9, rc);
    /* lift every source (the /etc files' too) above the targets first, so no dup3
     * clobbers another source */
    int src[5] = {l->fd_null, l->fd_log, l->fd_seccomp, l->fd_status, l->fd_info_w};
    static const int dst[6] = {0, 1, S_FD_SECCOMP, S_FD_STATUS, S_FD_INFO, 2};
    for (int i = 0; i < 5; i++) {
        if ((rc = s_sys (SYS_fcntl, src[i], F_DUPFD_CLOEXEC, 64, 0)) < 0)
            s_fail (l, 9, rc);
        src[i] = (int)rc;
    }
    int data[S_ETC_FILES_MAX];
    for (size_t i = 0; i < l->ndata; i++) {
        if ((rc = s_sys (SYS_fcntl, l->fd_data[i], F_DUPFD_CLOEXEC, 64, 0)) < 0)
            s_fail (l, 9, rc);
        data[i] = (int)rc;
    }
    for (int i = 0; i < 6; i++) {
        int from = i == 5 ? src[1] : src[i]; /* stderr is the log too */
        if ((rc = s_sys (SYS_dup3, from, dst[i], 0, 0)) < 0)
            s_fail (l, 9, rc);
    }
    /* the /etc files onto 6.. (bwrap reads and closes each) */
    for (size_t i = 0; i < l->ndata; i++)
        if ((rc = s_sys (SYS_dup3, data[i], S_FD_DATA + (long)i, 0, 0)) < 0)
            s_fail (l, 9, rc);
    /* nothing else of ours reaches bwrap or the sandbox */
    s_sys (SYS_close_range, S_FD_DATA + l->ndata, ~0U, 0, 0);
    uint64_t none = 0;
    if ((rc = s_sys (SYS_rt_sigprocmask, SIG_SETMASK, (long)&none, 0, 8)) < 0)
        s_fail (l, 5, rc);
    static char *const envp[] = {NULL};
    rc = s_sys (SYS_execve, (long)l->argv[0], (long)l->argv, (long)envp, 0);
    s_fail (l, 10, rc);
    return 127;
}

S_NO_SANITIZE static int s_child_a (void *arg)
{
    s_launch_t *l = arg;
    long rc = s_sys (SYS_setsid, 0, 0, 0, 0);
    if (rc < 0)
        s_fail (l, 11, rc);
    int pidfd = -1;
    pid_t pid = clone (s_child_b, l->stack_b + S_CHILD_STACK,
                       CLONE_VM | CLONE_VFORK | CLONE_PIDFD | SIGCHLD, l, &pidfd);
    if (pid < 0 && !l->fail_step) {
        l->fail_step = 1;
        l->fail_errno = EAGAIN;
    }
    l->b_pid = pid;
    l->b_pidfd = pidfd;
    syscall (SYS_exit, 0);
    return 0;
}

/*  Launches B through A. Returns 0 with l->b_pid and l->b_pidfd (ours to close) once
 *  bwrap has been exec'd, else -1 with l->fail_step / l->fail_errno. */
static int s_launch (s_launch_t *l)
{
    sigset_t all, saved;
    sigfillset (&all);
    pthread_sigmask (SIG_SETMASK, &all, &saved);
    l->b_pid = -1;
    l->b_pidfd = -1;
    l->fail_step = 0;
    l->fail_errno = 0;
    pid_t a = clone (s_child_a, l->stack_a + S_CHILD_STACK,
                     CLONE_VM | CLONE_VFORK | CLONE_FILES | SIGCHLD, l);
    int saved_errno = errno;
    pthread_sigmask (SIG_SETMASK, &saved, NULL);
    if (a < 0) {
        l->fail_step = 1;
        l->fail_errno = saved_errno;
        return -1;
    }
    while (waitpid (a, NULL, 0) < 0 && errno == EINTR)
        ;
    if (l->b_pidfd >= 0 && (l->fail_step || l->b_pid <= 0)) {
        close (l->b_pidfd);
        l->b_pidfd = -1;
    }
    return l->fail_step || l->b_pid <= 0 || l->b_pidfd < 0 ? -1 : 0;
}

/*  bwrap's --info-fd JSON, up to EOF: the init's pid. */
static pid_t s_read_info (int fd, int64_t deadline)
{
    char buf[4096];
    size_t len = 0;
    for (;;) {
        int64_t left = deadline - lss_time_mono_ms ();
        struct pollfd pfd = {fd, POLLIN, 0};
        int rc = poll (&pfd, 1, left > 0 ? (int)left : 0);
        if (rc < 0 && errno == EINTR)
            continue;
        if (rc <= 0)
            return -1;
        ssize_t n = read (fd, buf + len, sizeof buf - 1 - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        len += (size_t)n;
        if (len == sizeof buf - 1)
            break;
    }
    buf[len] = '\0';
    json_t *doc = json_loads (buf, 0, NULL);
    json_t *v = json_object_get (doc, "child-pid");
    pid_t pid = json_is_integer (v) ? (pid_t)json_integer_value (v) : -1;
    json_decref (doc);
    return pid;
}

static int s_open_out (const char *dir, const char *name)
{
    char path[PATH_MAX];
    if (lss_fmt (path, sizeof path, "%s/%s", dir, name))
        return -1;
    return open (path, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC | O_NOFOLLOW, 0600);
}

static void s_close (int *fd)
{
    if (*fd >= 0)
        close (*fd);
    *fd = -1;
}

/*  Removes what start() created for a sandbox that is not (or no longer) running. */
static void s_teardown (const lss_sandbox_runtime_t *self, const char *id,
                        lss_sandbox_cgroup_t *cgroup, bool host_tmpfs, int timeout_ms)
{
    char path[PATH_MAX];
    if (cgroup) {
        lss_sandbox_cgroup_kill (cgroup, timeout_ms);
        lss_sandbox_cgroup_remove (cgroup, timeout_ms);
    }
    /* Unmount also when the state did not record a host tmpfs but one is there: a
     * sandbox adopted as Lost (its runtime died mid-launch) does not know. */
    if (s_box_path (self, id, "workspace", path, sizeof path) == 0 &&
        (host_tmpfs || s_is_mount_point (path)))
        umount2 (path, MNT_DETACH);
    if (s_box_path (self, id, NULL, path, sizeof path) == 0)
        lss_sandbox_fs_rmtree (path);
}

int lss_sandbox_runtime_start (lss_sandbox_runtime_t *self, const lss_sandbox_spec_t *spec,
                               lss_sandbox_status_t *out, char *err, size_t err_size)
{
    int rc = -1;
    s_box_t *box = NULL;
    s_launch_t *l = NULL;
    bool dir_made = false;
    int info[2] = {-1, -1};
    int fd_null = -1, fd_log = -1, fd_status = -1, fd_seccomp = -1;
    int init_fd = -1;
    pid_t monitor = -1;
    char box_dir[PATH_MAX], path[PATH_MAX], warn[256] = "";
    int64_t t0 = lss_time_mono_ns ();

    if (lss_sandbox_spec_validate (spec, err, err_size))
        goto cleanup;
    if (s_find (self, spec->id)) {
        lss_errf (err, err_size, "id: sandbox %s already exists", spec->id);
        goto cleanup;
    }
    if (self->count >= LSS_SANDBOX_RUNTIME_MAX) {
        lss_errf (err, err_size, "runtime full (%d sandboxes)", LSS_SANDBOX_RUNTIME_MAX);
        goto cleanup;
    }
    if (lss_sandbox_preflight_check_level (self->pf, spec->level, err, err_size, warn,
                                           sizeof warn))
        goto cleanup;
    if (spec->level == LSS_SANDBOX_LEVEL_HIGH && (!spec->memory_bytes || !spec->pids_max)) {
        lss_errf (err, err_size, "securityLevel: high needs memoryBytes and pidsMax");
        goto cleanup;
    }
    self->frozen = true;
    box = calloc (1, sizeof *box);
    l = calloc (1, sizeof *l);
    if (!box || !l) {
        lss_errf (err, err_size, "out of memory");
        goto cleanup;
    }
    box->pidfd = -1;
    box->slot = -1;
    box->spec = lss_sandbox_spec_to_json (spec);
    lss_sandbox_status_t *st = &box->st;
    lss_errf (st->id, sizeof st->id, "%s", spec->id);
    st->phase = LSS_SANDBOX_RUNNING;
    st->level = spec->level;
    st->exit_code = -1;
    s_set_reason (box, "Running");
    if (self->is_root) {
        box->slot = s_slot_alloc (self);
        if (box->slot < 0) {
            lss_errf (err, err_size, "no free host uid slot (%u in use)", self->uid_count);
            goto cleanup;
        }
        st->host_uid = self->uid_base + (uint32_t)box->slot;
        st->host_gid = self->uid_base + (uint32_t)box->slot;
    } else {
        st->host_uid = getuid ();
        st->host_gid = getgid ();
    }

    /* files */
    if (s_box_path (self, spec->id, NULL, box_dir, sizeof box_dir) || mkdir (box_dir, 0711)) {
        lss_errf (err, err_size, "state dir %s: %s", box_dir,
                  errno == EEXIST ? "exists (a stale sandbox? adopt or stop it)"
                                  : strerror (errno));
        goto cleanup;
    }
    dir_made = true;
    s_layout_t layout;
    const char *root = "";
    bool alternatives = self->host_alternatives, ldcache = self->host_ldcache;
    bool certs = spec->network && self->host_certs;
    if (spec->rootfs) {
        struct stat sb;
        root = spec->rootfs;
        if (s_rootfs_layout (&layout, spec->rootfs) || layout.n == 0) {
            lss_errf (err, err_size, "rootfs %s: not a usable directory", spec->rootfs);
            goto cleanup;
        }
        alternatives = lss_fmt (path, sizeof path, "%s/etc/alternatives", root) == 0 &&
                       stat (path, &sb) == 0 && S_ISDIR (sb.st_mode);
        ldcache = lss_fmt (path, sizeof path, "%s/etc/ld.so.cache", root) == 0 &&
                  stat (path, &sb) == 0 && S_ISREG (sb.st_mode);
        certs = spec->network && lss_fmt (path, sizeof path, "%s/etc/ssl/certs", root) == 0 &&
                stat (path, &sb) == 0 && S_ISDIR (sb.st_mode);
    } else
        layout = self->host_layout;
    for (size_t i = 0; i < S_ETC_FILES_MAX; i++)
        l->fd_data[i] = -1;
    if (s_etc_data (self, spec, l)) {
        lss_errf (err, err_size, "cannot prepare /etc: %s", strerror (errno));
        goto cleanup;
    }
    box->host_tmpfs = self->host_tmpfs;
    lss_errf (st->workspace, sizeof st->workspace, "%s",
              box->host_tmpfs ? "host-tmpfs" : "sandbox-tmpfs");
    if (box->host_tmpfs) {
        char opts[128];
        if (lss_fmt (path, sizeof path, "%s/workspace", box_dir) || mkdir (path, 0700) ||
            lss_fmt (opts, sizeof opts, "size=%" PRId64 ",mode=0700,uid=%u,gid=%u",
                     spec->ephemeral_bytes, (unsigned)st->host_uid, (unsigned)st->host_gid) ||
            mount ("tmpfs", path, "tmpfs", MS_NOSUID | MS_NODEV, opts)) {
            lss_errf (err, err_size, "workspace %s: %s", path, strerror (errno));
            goto cleanup;
        }
    }
    if (lss_fmt (path, sizeof path, "%s/run", box_dir) || mkdir (path, 0700) ||
        (self->is_root && chown (path, st->host_uid, st->host_gid))) {
        lss_errf (err, err_size, "run dir %s: %s", path, strerror (errno));
        goto cleanup;
    }

    /* cgroup: limits the sandbox asked for that this host can enforce */
    lss_sandbox_cg_limits_t limits = {
        spec->memory_bytes, spec->pids_max ? spec->pids_max + 1 : 0, spec->cpu_millicores};
    char cgerr[256] = "";
    box->cgroup =
        lss_sandbox_cgroup_new (&self->pf->cgroup, spec->id, &limits, cgerr, sizeof cgerr);
    if (!box->cgroup) {
        lss_errf (err, err_size, "%s", cgerr);
        goto cleanup;
    }
    st->memory_enforced = lss_sandbox_cgroup_enforces (box->cgroup, LSS_SANDBOX_CG_MEMORY);
    st->pids_enforced = lss_sandbox_cgroup_enforces (box->cgroup, LSS_SANDBOX_CG_PIDS);
    st->cpu_enforced = lss_sandbox_cgroup_enforces (box->cgroup, LSS_SANDBOX_CG_CPU);
    if (spec->level == LSS_SANDBOX_LEVEL_HIGH && (!st->memory_enforced || !st->pids_enforced)) {
        lss_errf (err, err_size, "securityLevel: high needs memory and pids limits enforced");
        goto cleanup;
    }
    warn[0] = '\0';
    if (spec->memory_bytes && !st->memory_enforced)
        lss_errf (warn, sizeof warn, "memory limit not enforced (RLIMIT_DATA only)");
    if (spec->pids_max && !st->pids_enforced) {
        size_t n = strlen (warn);
        snprintf (warn + n, sizeof warn - n, "%spids limit not enforced%s", n ? "; " : "",
                  self->is_root ? " (RLIMIT_NPROC only)" : "");
    }
    if (spec->cpu_millicores && !st->cpu_enforced) {
        size_t n = strlen (warn);
        snprintf (warn + n, sizeof warn - n, "%scpu limit not enforced", n ? "; " : "");
    }
    lss_errf (st->warnings, sizeof st->warnings, "%s", warn);
    if (warn[0])
        lss_log_warn ("sandbox limits not enforced", "{s:s, s:s}", "id", spec->id, "warnings",
                      warn);

    /* descriptors for the children */
    fd_null = open ("/dev/null", O_RDWR | O_CLOEXEC);
    fd_log = s_open_out (box_dir, "init.log");
    fd_status = s_open_out (box_dir, "status.json");
    fd_seccomp = lss_sandbox_seccomp_memfd (self->bpf[spec->level], self->bpf_len[spec->level]);
    if (fd_null < 0 || fd_log < 0 || fd_status < 0 || fd_seccomp < 0 ||
        pipe2 (info, O_CLOEXEC)) {
        lss_errf (err, err_size, "cannot prepare descriptors: %s", strerror (errno));
        goto cleanup;
    }
    if (s_build_argv (self, spec, &layout, root, box_dir, box->host_tmpfs, alternatives,
                      ldcache, certs, l)) {
        lss_errf (err, err_size, "bwrap command line too long");
        goto cleanup;
    }
    l->nprocs = lss_sandbox_cgroup_join_files (box->cgroup, l->procs, S_MAX_CG_DIRS);
    int64_t fsize =
        spec->ephemeral_bytes > spec->tmp_bytes ? spec->ephemeral_bytes : spec->tmp_bytes;
    s_add_rlimit (l, RLIMIT_FSIZE, (rlim_t)fsize);
    s_add_rlimit (l, RLIMIT_NOFILE, S_NOFILE);
    s_add_rlimit (l, RLIMIT_CORE, 0);
    if (self->is_root && spec->pids_max)
        s_add_rlimit (l, RLIMIT_NPROC, (rlim_t)spec->pids_max + 1);
    if (spec->memory_bytes && !st->memory_enforced)
        s_add_rlimit (l, RLIMIT_DATA, (rlim_t)spec->memory_bytes);
    l->drop = self->is_root;
    l->uid = st->host_uid;
    l->gid = st->host_gid;
    l->fd_null = fd_null;
    l->fd_log = fd_log;
    l->fd_seccomp = fd_seccomp;
    l->fd_status = fd_status;
    l->fd_info_w = info[1];
    st->started_ms = lss_time_now_ms ();
    if (s_write_state (self, box)) {
        lss_errf (err, err_size, "cannot write state.json: %s", strerror (errno));
        goto cleanup;
    }

    /* launch */
    int launched = s_launch (l);
    s_close (&info[1]); /* B has its copy: EOF on info[0] once bwrap is done with it */
    if (launched) {
        int step = l->fail_step > 0 && l->fail_step < (int)(sizeof s_steps / sizeof s_steps[0])
                       ? l->fail_step
                       : 0;
        lss_errf (err, err_size, "launch failed at %s: %s", s_steps[step],
                  strerror (l->fail_errno));
        goto cleanup;
    }
    monitor = l->b_pid;
    box->pidfd = l->b_pidfd;
    st->monitor_pid = monitor;
    /* recorded at once: from here a restarted runtime can find and verify the monitor */
    lss_sandbox_proc_stat (monitor, &box->monitor_start, NULL);
    s_write_state (self, box);
    int64_t deadline = lss_time_mono_ms () + LSS_SANDBOX_START_TIMEOUT_MS;
    pid_t child = s_read_info (info[0], deadline);
    if (child <= 0) {
        char msgtext[200] = "";
        s_pidfd_wait (box->pidfd, 200);
        s_bwrap_message (self, spec->id, msgtext, sizeof msgtext);
        lss_errf (err, err_size, "bwrap did not start the sandbox%s%s", msgtext[0] ? ": " : "",
                  msgtext);
        goto cleanup;
    }
    st->pid = child;
    init_fd = s_pidfd_verified (child, 0, monitor);
    if (init_fd >= 0)
        lss_sandbox_proc_stat (child, &box->init_start, NULL);
    s_write_state (self, box);
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = box};
    if (epoll_ctl (self->epoll_fd, EPOLL_CTL_ADD, box->pidfd, &ev)) {
        lss_errf (err, err_size, "epoll: %s", strerror (errno));
        goto cleanup;
    }
    self->boxes[self->count++] = box;
    if (out)
        *out = box->st;
    lss_log_info ("sandbox started", "{s:s, s:i, s:i, s:i, s:s, s:s, s:I}", "id", st->id, "pid",
                  (int)st->pid, "monitor_pid", (int)st->monitor_pid, "host_uid",
                  (int)st->host_uid, "level", lss_sandbox_level_name (st->level), "workspace",
                  st->workspace, "start_us", (json_int_t)((lss_time_mono_ns () - t0) / 1000));
    box = NULL;
    rc = 0;
cleanup:
    if (rc && box) {
        /* kill whatever was launched, then remove every trace */
        if (init_fd >= 0)
            s_pidfd_kill (init_fd, SIGKILL);
        if (box->pidfd >= 0) {
            s_pidfd_kill (box->pidfd, SIGKILL);
            s_pidfd_wait (box->pidfd, 1000);
        }
        if (dir_made)
            s_teardown (self, spec->id, box->cgroup, box->host_tmpfs, 1000);
        else if (box->cgroup)
            lss_sandbox_cgroup_remove (box->cgroup, 0);
        if (box->slot >= 0)
            self->slots[box->slot] = 0;
        lss_log_warn ("sandbox start failed", "{s:s, s:s}", "id", spec->id, "error",
                      err ? err : "");
    }
    if (init_fd >= 0)
        close (init_fd);
    s_box_free (&box);
    for (size_t i = 0; l && i < l->ndata; i++)
        s_close (&l->fd_data[i]);
    free (l);
    s_close (&fd_null);
    s_close (&fd_log);
    s_close (&fd_status);
    s_close (&fd_seccomp);
    for (int i = 0; i < 2; i++) {
        s_close (&info[i]);
    }
    return rc;
}

/* ------------------------------------------------------------------ stop */

int lss_sandbox_runtime_stop (lss_sandbox_runtime_t *self, const char *id, int timeout_ms,
                              lss_sandbox_status_t *final)
{
    s_box_t *box = s_find (self, id);
    if (!box)
        return -1;
    if (timeout_ms <= 0)
        timeout_ms = LSS_SANDBOX_STOP_TIMEOUT_MS;
    int64_t deadline = lss_time_mono_ms () + timeout_ms;
    s_refresh (self, box);
    if (box->st.phase == LSS_SANDBOX_RUNNING) {
        box->stopping = true;
        /* killing PID 1 of the pid namespace kills everything in it */
        int init_fd = box->init_start ? s_pidfd_verified (box->st.pid, box->init_start, 0) : -1;
        if (init_fd >= 0) {
            s_pidfd_kill (init_fd, SIGKILL);
            close (init_fd);
        }
        int64_t left = deadline - lss_time_mono_ms ();
        bool gone = s_pidfd_wait (box->pidfd, (int)(left < 1000 ? left : 1000));
        if (!gone && box->cgroup) {
            /* the cgroup holds the monitor too */
            left = deadline - lss_time_mono_ms ();
            lss_sandbox_cgroup_kill (box->cgroup, left > 0 ? (int)left : 0);
            left = deadline - lss_time_mono_ms ();
            gone = s_pidfd_wait (box->pidfd, left > 0 ? (int)left : 0);
        }
        if (!gone) {
            s_pidfd_kill (box->pidfd, SIGKILL);
            left = deadline - lss_time_mono_ms ();
            gone = s_pidfd_wait (box->pidfd, left > 0 ? (int)left : 0);
        }
        if (!gone) {
            lss_log_error ("sandbox did not stop", "{s:s, s:i}", "id", id, "timeout_ms",
                           timeout_ms);
            return -1;
        }
        s_finish (self, box);
    }
    int64_t left = deadline - lss_time_mono_ms ();
    if (box->cgroup && lss_sandbox_cgroup_kill (box->cgroup, left > 0 ? (int)left : 0)) {
        lss_log_error ("sandbox processes survived", "{s:s}", "id", id);
        return -1;
    }
    left = deadline - lss_time_mono_ms ();
    s_teardown (self, id, box->cgroup, box->host_tmpfs, left > 0 ? (int)left : 0);
    box->reported = true;
    if (final)
        *final = box->st;
    lss_log_info ("sandbox stopped", "{s:s, s:s, s:i}", "id", id, "reason", box->st.reason,
                  "exit_code", box->st.exit_code);
    s_remove_box (self, box);
    return 0;
}

/* ------------------------------------------------------------------ adopt */

static int s_adopt_one (lss_sandbox_runtime_t *self, const char *id)
{
    char path[PATH_MAX];
    char *text = malloc (S_STATE_FILE_MAX);
    s_box_t *box = calloc (1, sizeof *box);
    int rc = -1;
    json_t *state = NULL;
    if (!text || !box || s_box_path (self, id, "state.json", path, sizeof path))
        goto cleanup;
    box->pidfd = -1;
    box->slot = -1;
    lss_sandbox_status_t *st = &box->st;
    lss_errf (st->id, sizeof st->id, "%s", id);
    st->exit_code = -1;
    st->phase = LSS_SANDBOX_RUNNING;
    if (lss_sandbox_fs_read (path, text, S_STATE_FILE_MAX) > 0)
        state = json_loads (text, 0, NULL);
    if (state) {
        json_int_t slot = json_integer_value (json_object_get (state, "slot"));
        json_t *status = json_object_get (state, "status");
        box->slot = json_is_integer (json_object_get (state, "slot")) ? (int)slot : -1;
        st->host_uid = (uid_t)json_integer_value (json_object_get (state, "hostUid"));
        st->host_gid = (gid_t)json_integer_value (json_object_get (state, "hostGid"));
        st->monitor_pid = (pid_t)json_integer_value (json_object_get (state, "monitorPid"));
        st->pid = (pid_t)json_integer_value (json_object_get (state, "initPid"));
        box->monitor_start =
            (uint64_t)json_integer_value (json_object_get (state, "monitorStart"));
        box->init_start = (uint64_t)json_integer_value (json_object_get (state, "initStart"));
        box->host_tmpfs = json_is_true (json_object_get (state, "hostTmpfs"));
        box->spec = json_incref (json_object_get (state, "spec"));
        lss_sandbox_level_parse (json_string_value (json_object_get (status, "level")),
                                 &st->level);
        st->started_ms = json_integer_value (json_object_get (status, "startedMs"));
        const char *ws = json_string_value (json_object_get (status, "workspace"));
        lss_errf (st->workspace, sizeof st->workspace, "%s", ws ? ws : "");
        const char *warn = json_string_value (json_object_get (status, "warnings"));
        lss_errf (st->warnings, sizeof st->warnings, "%s", warn ? warn : "");
        /* a sandbox already seen ending keeps the reason recorded then */
        const char *phase = json_string_value (json_object_get (status, "phase"));
        if (phase && strcmp (phase, "Exited") == 0) {
            const char *reason = json_string_value (json_object_get (status, "reason"));
            const char *message = json_string_value (json_object_get (status, "message"));
            st->phase = LSS_SANDBOX_EXITED;
            lss_errf (st->reason, sizeof st->reason, "%s", reason ? reason : "Lost");
            lss_errf (st->message, sizeof st->message, "%s", message ? message : "");
            st->exit_code = (int)json_integer_value (json_object_get (status, "exitCode"));
            st->signal = (int)json_integer_value (json_object_get (status, "signal"));
            st->finished_ms = json_integer_value (json_object_get (status, "finishedMs"));
            st->oom_kills = json_integer_value (json_object_get (status, "oomKills"));
        }
    }
    if (box->slot >= 0) {
        if ((uint32_t)box->slot >= self->uid_count || self->slots[box->slot]) {
            lss_log_error ("sandbox slot conflict on adoption", "{s:s, s:i}", "id", id, "slot",
                           box->slot);
            box->slot = -1; /* keep it listed so it can be stopped; reuse nothing */
        } else
            self->slots[box->slot] = 1;
    }
    box->cgroup = lss_sandbox_cgroup_open (&self->pf->cgroup, id);
    if (box->cgroup) {
        st->memory_enforced = lss_sandbox_cgroup_enforces (box->cgroup, LSS_SANDBOX_CG_MEMORY);
        st->pids_enforced = lss_sandbox_cgroup_enforces (box->cgroup, LSS_SANDBOX_CG_PIDS);
        st->cpu_enforced = lss_sandbox_cgroup_enforces (box->cgroup, LSS_SANDBOX_CG_CPU);
    }
    if (st->phase == LSS_SANDBOX_RUNNING) {
        s_set_reason (box, "Running");
        box->pidfd =
            box->monitor_start ? s_pidfd_verified (st->monitor_pid, box->monitor_start, 0) : -1;
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = box};
        if (box->pidfd >= 0 && epoll_ctl (self->epoll_fd, EPOLL_CTL_ADD, box->pidfd, &ev)) {
            close (box->pidfd);
            box->pidfd = -1;
        }
        if (box->pidfd < 0)
            s_finish (self, box); /* ended while nobody watched: status.json says how */
    }
    self->boxes[self->count++] = box;
    lss_log_info ("sandbox adopted", "{s:s, s:s, s:s, s:i}", "id", id, "phase",
                  lss_sandbox_phase_name (st->phase), "reason", st->reason, "pid",
                  (int)st->pid);
    box = NULL;
    rc = 0;
cleanup:
    json_decref (state);
    s_box_free (&box);
    free (text);
    return rc;
}

int lss_sandbox_runtime_adopt (lss_sandbox_runtime_t *self)
{
    DIR *dir = opendir (self->state_dir);
    if (!dir)
        return -1;
    self->frozen = true;
    int adopted = 0;
    struct dirent *de;
    while ((de = readdir (dir))) {
        if (!lss_sandbox_id_valid (de->d_name) || s_find (self, de->d_name))
            continue;
        if (self->count >= LSS_SANDBOX_RUNTIME_MAX)
            break;
        char path[PATH_MAX];
        struct stat st;
        if (s_box_path (self, de->d_name, NULL, path, sizeof path) || lstat (path, &st) ||
            !S_ISDIR (st.st_mode))
            continue;
        if (s_adopt_one (self, de->d_name) == 0)
            adopted++;
    }
    closedir (dir);
    return adopted;
}

/* ------------------------------------------------------------------ queries */

int lss_sandbox_runtime_get (lss_sandbox_runtime_t *self, const char *id,
                             lss_sandbox_status_t *out)
{
    s_box_t *box = s_find (self, id);
    if (!box)
        return -1;
    s_refresh (self, box);
    if (out)
        *out = box->st;
    return 0;
}

size_t lss_sandbox_runtime_count (const lss_sandbox_runtime_t *self)
{
    return self->count;
}

json_t *lss_sandbox_runtime_list (lss_sandbox_runtime_t *self)
{
    json_t *list = json_array ();
    for (size_t i = 0; list && i < self->count; i++) {
        s_refresh (self, self->boxes[i]);
        if (json_array_append_new (list, lss_sandbox_status_to_json (&self->boxes[i]->st))) {
            json_decref (list);
            return NULL;
        }
    }
    return list;
}

int lss_sandbox_runtime_usage (lss_sandbox_runtime_t *self, const char *id,
                               lss_sandbox_cg_usage_t *out)
{
    s_box_t *box = s_find (self, id);
    if (!box)
        return -1;
    if (!box->cgroup) {
        *out = (lss_sandbox_cg_usage_t){-1, -1, -1, -1, -1, 0};
        return 0;
    }
    return lss_sandbox_cgroup_usage (box->cgroup, out);
}

int lss_sandbox_runtime_path (const lss_sandbox_runtime_t *self, const char *id,
                              const char *name, char *out, size_t size)
{
    if (!s_find (self, id) || (name && (strchr (name, '/') || strcmp (name, "..") == 0)))
        return -1;
    return s_box_path (self, id, name, out, size);
}

int lss_sandbox_runtime_fd (const lss_sandbox_runtime_t *self)
{
    return self->epoll_fd;
}

static s_box_t *s_unreported (const lss_sandbox_runtime_t *self)
{
    for (size_t i = 0; i < self->count; i++)
        if (self->boxes[i]->st.phase == LSS_SANDBOX_EXITED && !self->boxes[i]->reported)
            return self->boxes[i];
    return NULL;
}

int lss_sandbox_runtime_poll (lss_sandbox_runtime_t *self, int timeout_ms,
                              lss_sandbox_status_t *ended)
{
    s_box_t *box = s_unreported (self);
    if (!box) {
        struct epoll_event ev[64];
        int n = epoll_wait (self->epoll_fd, ev, 64, timeout_ms < 0 ? 0 : timeout_ms);
        if (n < 0 && errno != EINTR)
            return -1;
        for (int i = 0; i < n; i++)
            s_finish (self, (s_box_t *)ev[i].data.ptr);
        box = s_unreported (self);
    }
    if (!box)
        return 0;
    box->reported = true;
    if (ended)
        *ended = box->st;
    return 1;
}

int lss_sandbox_runtime_wait (lss_sandbox_runtime_t *self, const char *id, int timeout_ms,
                              lss_sandbox_status_t *out)
{
    s_box_t *box = s_find (self, id);
    if (!box)
        return -1;
    if (box->st.phase == LSS_SANDBOX_RUNNING && s_pidfd_wait (box->pidfd, timeout_ms))
        s_finish (self, box);
    if (box->st.phase != LSS_SANDBOX_EXITED)
        return -1;
    box->reported = true;
    if (out)
        *out = box->st;
    return 0;
}

const char *lss_sandbox_phase_name (lss_sandbox_phase_t phase)
{
    return phase == LSS_SANDBOX_EXITED ? "Exited" : "Running";
}

json_t *lss_sandbox_status_to_json (const lss_sandbox_status_t *st)
{
    return json_pack ("{s:s, s:s, s:s, s:i, s:i, s:I, s:I, s:I, s:I, s:i, s:i, s:s, s:s, s:I,"
                      " s:{s:b, s:b, s:b}, s:s, s:s}",
                      "id", st->id, "phase", lss_sandbox_phase_name (st->phase), "level",
                      lss_sandbox_level_name (st->level), "pid", (int)st->pid, "monitorPid",
                      (int)st->monitor_pid, "hostUid", (json_int_t)st->host_uid, "hostGid",
                      (json_int_t)st->host_gid, "startedMs", (json_int_t)st->started_ms,
                      "finishedMs", (json_int_t)st->finished_ms, "exitCode", st->exit_code,
                      "signal", st->signal, "reason", st->reason, "message", st->message,
                      "oomKills", (json_int_t)st->oom_kills, "enforced", "memory",
                      st->memory_enforced, "pids", st->pids_enforced, "cpu", st->cpu_enforced,
                      "workspace", st->workspace, "warnings", st->warnings);
}
