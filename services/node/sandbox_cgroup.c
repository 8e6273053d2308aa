/*  sandbox_cgroup — per-sandbox cgroups on v1 and v2. See sandbox_cgroup.h.
 *
 *  Each controller carries its own version and directory, so hybrid hosts (v1
 *  controllers plus an empty v2 "unified" tree, like this project's CI machine) and pure
 *  v2 hosts go through the same code: on v2 the controllers share one directory and the
 *  distinct directories are what gets joined, killed and removed.
 */
#include "sandbox_cgroup.h"
#include "sandbox_fs.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define S_PROCS_READ_MAX (256 * 1024) /* cgroup.procs of one sandbox */
#define S_PIDS_MAX       8192         /* pids handled per pass (more: next pass) */

struct _lss_sandbox_cgroup_t {
    int version[LSS_SANDBOX_CG_COUNT]; /* 0 = not in this controller */
    char dir[LSS_SANDBOX_CG_COUNT][LSS_SANDBOX_CG_PATH_MAX];
    size_t mount_len[LSS_SANDBOX_CG_COUNT]; /* dir + mount_len = cgroup path */
    bool enforced[LSS_SANDBOX_CG_COUNT];
    int ndirs;                          /* distinct directories */
    int dir_ctrl[LSS_SANDBOX_CG_COUNT]; /* controller owning each */
    char procs[LSS_SANDBOX_CG_COUNT][LSS_SANDBOX_CG_PATH_MAX];
    char join[LSS_SANDBOX_CG_COUNT][LSS_SANDBOX_CG_PATH_MAX]; /* v1: tasks, v2: cgroup.procs */
};

static const char *s_names[LSS_SANDBOX_CG_COUNT] = {"memory", "pids", "cpu", "cpuacct"};

const char *lss_sandbox_cgroup_ctrl_name (lss_sandbox_cg_ctrl_t ctrl)
{
    return ctrl < LSS_SANDBOX_CG_COUNT ? s_names[ctrl] : "?";
}

static int s_path (char *out, const char *a, const char *b)
{
    int n = snprintf (out, LSS_SANDBOX_CG_PATH_MAX, "%s/%s", a, b);
    return n < 0 || n >= LSS_SANDBOX_CG_PATH_MAX ? -1 : 0;
}

/*  snprintf into a reason buffer (truncation is fine for a human message). */
static void s_why (char *why, size_t size, const char *fmt, ...)
    __attribute__ ((format (printf, 3, 4)));

static void s_why (char *why, size_t size, const char *fmt, ...)
{
    va_list ap;
    va_start (ap, fmt);
    vsnprintf (why, size, fmt, ap);
    va_end (ap);
}

static void s_sleep_ms (int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep (&ts, NULL);
}

static int64_t s_mono_ms (void)
{
    struct timespec ts;
    clock_gettime (CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ------------------------------------------------------------------ detection */

static bool s_in_list (const char *list, const char *name)
{
    size_t n = strlen (name);
    for (const char *p = list; p && *p;) {
        const char *end = strchr (p, ',');
        size_t len = end ? (size_t)(end - p) : strlen (p);
        if (len == n && strncmp (p, name, n) == 0)
            return true;
        p = end ? end + 1 : NULL;
    }
    return false;
}

static bool s_in_words (const char *words, const char *name)
{
    size_t n = strlen (name);
    for (const char *p = words; *p;) {
        while (*p == ' ' || *p == '\n')
            p++;
        size_t len = strcspn (p, " \n");
        if (len == n && strncmp (p, name, n) == 0)
            return true;
        p += len;
    }
    return false;
}

/*  Our cgroup path in the hierarchy whose /proc/self/cgroup line lists ctrl (v1), or the
 *  "0::" line (ctrl NULL, v2). */
static int s_own_path (const char *self_cgroup, const char *ctrl, char *out, size_t size)
{
    char copy[8192];
    snprintf (copy, sizeof copy, "%s", self_cgroup);
    char *save = NULL;
    for (char *line = strtok_r (copy, "\n", &save); line; line = strtok_r (NULL, "\n", &save)) {
        char *c1 = strchr (line, ':');
        char *c2 = c1 ? strchr (c1 + 1, ':') : NULL;
        if (!c2)
            continue;
        *c2 = '\0';
        bool match =
            ctrl ? s_in_list (c1 + 1, ctrl) : (strcmp (line, "0:") == 0 && c1[1] == '\0');
        if (match) {
            snprintf (out, size, "%s", c2 + 1);
            return 0;
        }
    }
    return -1;
}

typedef struct {
    char mount[LSS_SANDBOX_CG_PATH_MAX];
    char root[LSS_SANDBOX_CG_PATH_MAX];
} s_mnt_t;

/*  Finds the v1 mount carrying ctrl (ctrl NULL: the v2 mount) in mountinfo text. */
static int s_find_mount (const char *mountinfo, const char *ctrl, s_mnt_t *out)
{
    const char *line = mountinfo;
    while (line && *line) {
        const char *eol = strchr (line, '\n');
        size_t len = eol ? (size_t)(eol - line) : strlen (line);
        char buf[2048];
        if (len < sizeof buf) {
            memcpy (buf, line, len);
            buf[len] = '\0';
            char *sep = strstr (buf, " - ");
            if (sep) {
                *sep = '\0';
                char fstype[64] = "", source[256] = "", super[1024] = "";
                sscanf (sep + 3, "%63s %255s %1023s", fstype, source, super);
                char root[LSS_SANDBOX_CG_PATH_MAX], mnt[LSS_SANDBOX_CG_PATH_MAX];
                if (sscanf (buf, "%*s %*s %*s %511s %511s", root, mnt) == 2) {
                    bool hit = ctrl
                                   ? (strcmp (fstype, "cgroup") == 0 && s_in_list (super, ctrl))
                                   : strcmp (fstype, "cgroup2") == 0;
                    if (hit) {
                        snprintf (out->mount, sizeof out->mount, "%s", mnt);
                        snprintf (out->root, sizeof out->root, "%s", root);
                        return 0;
                    }
                }
            }
        }
        line = eol ? eol + 1 : NULL;
    }
    return -1;
}

/*  mkdir -p below the mount point. */
static int s_mkdir_p (const char *mount, const char *path)
{
    char buf[LSS_SANDBOX_CG_PATH_MAX];
    snprintf (buf, sizeof buf, "%s", path);
    for (char *p = buf + strlen (mount) + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir (buf, 0755) && errno != EEXIST)
            return -1;
        *p = '/';
    }
    if (mkdir (buf, 0755) && errno != EEXIST)
        return -1;
    return 0;
}

/*  v2: enables ctrl in cgroup.subtree_control from the mount root down to dir itself. */
static int s_v2_enable (const char *mount, const char *dir, const char *ctrl, char *why,
                        size_t why_size)
{
    char buf[LSS_SANDBOX_CG_PATH_MAX], file[LSS_SANDBOX_CG_PATH_MAX], text[512], plus[32];
    snprintf (buf, sizeof buf, "%s", dir);
    snprintf (plus, sizeof plus, "+%s", ctrl);
    size_t mlen = strlen (mount);
    char *p = buf + mlen;
    for (;;) {
        char saved = *p;
        *p = '\0';
        if (s_path (file, buf[0] ? buf : "/", "cgroup.subtree_control"))
            return -1;
        if (lss_sandbox_fs_read (file, text, sizeof text) < 0 || !s_in_words (text, ctrl)) {
            if (lss_sandbox_fs_write (file, plus)) {
                s_why (why, why_size, "cannot enable %s in %s: %s%s", ctrl, file,
                       strerror (errno),
                       errno == EBUSY ? " (that cgroup has processes of its own: run the "
                                        "runtime in a leaf or configure a delegated parent)"
                                      : "");
                return -1;
            }
        }
        *p = saved;
        if (!saved)
            break;
        p = strchr (p + 1, '/');
        if (!p)
            p = buf + strlen (buf);
    }
    return 0;
}

static const char *s_limit_file (lss_sandbox_cg_ctrl_t c, int version, const char **value)
{
    switch (c) {
    case LSS_SANDBOX_CG_MEMORY:
        *value = version == 2 ? "max" : "-1";
        return version == 2 ? "memory.max" : "memory.limit_in_bytes";
    case LSS_SANDBOX_CG_PIDS:
        *value = "max";
        return "pids.max";
    case LSS_SANDBOX_CG_CPU:
        *value = version == 2 ? "max" : "-1";
        return version == 2 ? "cpu.max" : "cpu.cfs_quota_us";
    default:
        *value = NULL;
        return version == 2 ? "cpu.stat" : "cpuacct.usage";
    }
}

static void s_probe (lss_sandbox_cg_ctrl_info_t *info, lss_sandbox_cg_ctrl_t c)
{
    char probe[LSS_SANDBOX_CG_PATH_MAX], file[LSS_SANDBOX_CG_PATH_MAX], name[64], tmp[256];
    if (s_mkdir_p (info->mount, info->parent)) {
        s_why (info->reason, sizeof info->reason, "mkdir %s: %s", info->parent,
               strerror (errno));
        return;
    }
    if (info->version == 2 && c != LSS_SANDBOX_CG_CPUACCT &&
        s_v2_enable (info->mount, info->parent, s_names[c], info->reason, sizeof info->reason))
        return;
    snprintf (name, sizeof name, ".probe-%d-%s", (int)getpid (), s_names[c]);
    if (s_path (probe, info->parent, name) || (mkdir (probe, 0755) && errno != EEXIST)) {
        s_why (info->reason, sizeof info->reason, "mkdir under %s: %s", info->parent,
               strerror (errno));
        return;
    }
    const char *value = NULL;
    const char *knob = s_limit_file (c, info->version, &value);
    int rc = s_path (file, probe, knob);
    if (rc == 0)
        rc = value ? lss_sandbox_fs_write (file, value)
                   : (lss_sandbox_fs_read (file, tmp, sizeof tmp) < 0 ? -1 : 0);
    if (rc)
        s_why (info->reason, sizeof info->reason, "%s %s: %s", value ? "write" : "read", knob,
               strerror (errno));
    else
        info->usable = true;
    rmdir (probe);
}

void lss_sandbox_cgroup_detect (lss_sandbox_cg_host_t *host, const char *parent)
{
    memset (host, 0, sizeof *host);
    size_t mountinfo_size = 256 * 1024;
    char *mountinfo = malloc (mountinfo_size);
    char self_cgroup[8192];
    if (!mountinfo) {
        for (int c = 0; c < LSS_SANDBOX_CG_COUNT; c++)
            s_why (host->ctrl[c].reason, sizeof host->ctrl[c].reason, "out of memory");
        return;
    }
    if (lss_sandbox_fs_read ("/proc/self/mountinfo", mountinfo, mountinfo_size) < 0)
        mountinfo[0] = '\0';
    if (lss_sandbox_fs_read ("/proc/self/cgroup", self_cgroup, sizeof self_cgroup) < 0)
        self_cgroup[0] = '\0';
    s_mnt_t v2 = {{0}, {0}};
    bool have_v2 = s_find_mount (mountinfo, NULL, &v2) == 0;
    char v2_controllers[512] = "";
    char v2_own[LSS_SANDBOX_CG_PATH_MAX] = "";
    if (have_v2) {
        host->v2 = true;
        char file[LSS_SANDBOX_CG_PATH_MAX];
        if (s_own_path (self_cgroup, NULL, v2_own, sizeof v2_own))
            snprintf (v2_own, sizeof v2_own, "/");
        if (snprintf (file, sizeof file, "%s%s/cgroup.controllers", v2.mount,
                      strcmp (v2_own, "/") ? v2_own : "") < (int)sizeof file)
            lss_sandbox_fs_read (file, v2_controllers, sizeof v2_controllers);
    }
    for (int c = 0; c < LSS_SANDBOX_CG_COUNT; c++) {
        lss_sandbox_cg_ctrl_info_t *info = &host->ctrl[c];
        s_mnt_t m;
        char own[LSS_SANDBOX_CG_PATH_MAX] = "/";
        if (s_find_mount (mountinfo, s_names[c], &m) == 0) {
            info->version = 1;
            host->v1 = true;
            s_own_path (self_cgroup, s_names[c], own, sizeof own);
        } else if (have_v2 && s_in_words (v2_controllers,
                                          c == LSS_SANDBOX_CG_CPUACCT ? "cpu" : s_names[c])) {
            info->version = 2;
            m = v2;
            snprintf (own, sizeof own, "%s", v2_own);
        } else if (have_v2 && c == LSS_SANDBOX_CG_CPUACCT) {
            info->version = 2; /* cpu.stat usage_usec exists without the cpu controller */
            m = v2;
            snprintf (own, sizeof own, "%s", v2_own);
        } else {
            s_why (info->reason, sizeof info->reason, "no %s controller on this host",
                   s_names[c]);
            continue;
        }
        snprintf (info->mount, sizeof info->mount, "%s", m.mount);
        /* the mount may expose a subtree (containers): make own relative to its root */
        const char *rel = own;
        size_t rlen = strlen (m.root);
        if (strcmp (m.root, "/") != 0 && strncmp (own, m.root, rlen) == 0)
            rel = own + rlen;
        if (strcmp (rel, "/") == 0)
            rel = "";
        int n = parent ? snprintf (info->parent, sizeof info->parent, "%s%s%s", m.mount,
                                   parent[0] == '/' ? "" : "/", parent)
                       : snprintf (info->parent, sizeof info->parent, "%s%s/lss", m.mount, rel);
        if (n < 0 || n >= (int)sizeof info->parent) {
            s_why (info->reason, sizeof info->reason, "cgroup path too long");
            continue;
        }
        s_probe (info, (lss_sandbox_cg_ctrl_t)c);
        char kill_file[LSS_SANDBOX_CG_PATH_MAX];
        if (info->usable && info->version == 2 &&
            s_path (kill_file, info->parent, "cgroup.kill") == 0)
            host->v2_kill = host->v2_kill || access (kill_file, F_OK) == 0;
    }
    free (mountinfo);
}

json_t *lss_sandbox_cgroup_host_json (const lss_sandbox_cg_host_t *host)
{
    json_t *obj =
        json_pack ("{s:b, s:b, s:b}", "v1", host->v1, "v2", host->v2, "v2Kill", host->v2_kill);
    if (!obj)
        return NULL;
    for (int c = 0; c < LSS_SANDBOX_CG_COUNT; c++) {
        const lss_sandbox_cg_ctrl_info_t *info = &host->ctrl[c];
        json_t *one = json_pack ("{s:i, s:b, s:s, s:s}", "version", info->version, "usable",
                                 info->usable, "parent", info->parent, "reason", info->reason);
        if (!one || json_object_set_new (obj, s_names[c], one)) {
            json_decref (obj);
            return NULL;
        }
    }
    return obj;
}

void lss_sandbox_cgroup_host_cleanup (const lss_sandbox_cg_host_t *host)
{
    for (int c = 0; c < LSS_SANDBOX_CG_COUNT; c++)
        if (host->ctrl[c].usable)
            rmdir (host->ctrl[c].parent); /* only succeeds when empty */
}

/* ------------------------------------------------------------------ per sandbox */

static void s_index_dirs (lss_sandbox_cgroup_t *self)
{
    self->ndirs = 0;
    for (int c = 0; c < LSS_SANDBOX_CG_COUNT; c++) {
        if (!self->version[c])
            continue;
        bool seen = false;
        for (int d = 0; d < self->ndirs; d++)
            seen = seen || strcmp (self->dir[self->dir_ctrl[d]], self->dir[c]) == 0;
        if (seen)
            continue;
        self->dir_ctrl[self->ndirs] = c;
        s_path (self->procs[self->ndirs], self->dir[c], "cgroup.procs");
        s_path (self->join[self->ndirs], self->dir[c],
                self->version[c] == 1 ? "tasks" : "cgroup.procs");
        self->ndirs++;
    }
}

static lss_sandbox_cgroup_t *s_alloc (const lss_sandbox_cg_host_t *host, const char *id,
                                      bool must_exist)
{
    lss_sandbox_cgroup_t *self = calloc (1, sizeof *self);
    if (!self)
        return NULL;
    for (int c = 0; c < LSS_SANDBOX_CG_COUNT; c++) {
        const lss_sandbox_cg_ctrl_info_t *info = &host->ctrl[c];
        if (!info->usable || s_path (self->dir[c], info->parent, id))
            continue;
        struct stat st;
        if (must_exist && stat (self->dir[c], &st))
            continue;
        self->version[c] = info->version;
        self->mount_len[c] = strlen (info->mount);
    }
    s_index_dirs (self);
    return self;
}

static int s_write_knob (const char *dir, const char *knob, const char *value, char *err,
                         size_t err_size)
{
    char file[LSS_SANDBOX_CG_PATH_MAX];
    if (s_path (file, dir, knob) || lss_sandbox_fs_write (file, value)) {
        s_why (err, err_size, "cgroup %s/%s = %s: %s", dir, knob, value, strerror (errno));
        return -1;
    }
    return 0;
}

static int s_apply (lss_sandbox_cgroup_t *self, const lss_sandbox_cg_limits_t *limits,
                    char *err, size_t err_size)
{
    char v[64], file[LSS_SANDBOX_CG_PATH_MAX];
    int c = LSS_SANDBOX_CG_MEMORY;
    if (self->version[c] && limits->memory_bytes > 0) {
        snprintf (v, sizeof v, "%" PRId64, limits->memory_bytes);
        if (self->version[c] == 2) {
            if (s_write_knob (self->dir[c], "memory.max", v, err, err_size))
                return -1;
            if (s_path (file, self->dir[c], "memory.swap.max") == 0 && access (file, F_OK) == 0)
                lss_sandbox_fs_write (file, "0");
            if (s_path (file, self->dir[c], "memory.oom.group") == 0 &&
                access (file, F_OK) == 0)
                lss_sandbox_fs_write (file, "1");
        } else {
            if (s_write_knob (self->dir[c], "memory.limit_in_bytes", v, err, err_size))
                return -1;
            /* swap accounting may be off (no memsw files): then swap is the host's */
            if (s_path (file, self->dir[c], "memory.memsw.limit_in_bytes") == 0 &&
                access (file, F_OK) == 0)
                lss_sandbox_fs_write (file, v);
        }
        self->enforced[c] = true;
    }
    c = LSS_SANDBOX_CG_PIDS;
    if (self->version[c] && limits->pids_max > 0) {
        snprintf (v, sizeof v, "%" PRId64, limits->pids_max);
        if (s_write_knob (self->dir[c], "pids.max", v, err, err_size))
            return -1;
        self->enforced[c] = true;
    }
    c = LSS_SANDBOX_CG_CPU;
    if (self->version[c] && limits->cpu_millicores > 0) {
        int64_t period = 100000;
        int64_t quota = limits->cpu_millicores * period / 1000;
        if (quota < 1000)
            quota = 1000;
        if (self->version[c] == 2) {
            snprintf (v, sizeof v, "%" PRId64 " %" PRId64, quota, period);
            if (s_write_knob (self->dir[c], "cpu.max", v, err, err_size))
                return -1;
        } else {
            snprintf (v, sizeof v, "%" PRId64, period);
            if (s_write_knob (self->dir[c], "cpu.cfs_period_us", v, err, err_size))
                return -1;
            snprintf (v, sizeof v, "%" PRId64, quota);
            if (s_write_knob (self->dir[c], "cpu.cfs_quota_us", v, err, err_size))
                return -1;
        }
        self->enforced[c] = true;
    }
    return 0;
}

lss_sandbox_cgroup_t *lss_sandbox_cgroup_new (const lss_sandbox_cg_host_t *host, const char *id,
                                              const lss_sandbox_cg_limits_t *limits, char *err,
                                              size_t err_size)
{
    lss_sandbox_cgroup_t *self = s_alloc (host, id, false);
    if (!self) {
        s_why (err, err_size, "out of memory");
        return NULL;
    }
    for (int d = 0; d < self->ndirs; d++) {
        int c = self->dir_ctrl[d];
        const char *dir = self->dir[c];
        if (mkdir (dir, 0755) == 0)
            continue;
        if (errno == ENOENT) {
            /* the parent went away (another runtime removed it while empty): again */
            const lss_sandbox_cg_ctrl_info_t *info = &host->ctrl[c];
            char why[192];
            bool ok = s_mkdir_p (info->mount, info->parent) == 0;
            for (int k = 0; ok && info->version == 2 && k < LSS_SANDBOX_CG_CPUACCT; k++)
                if (self->version[k] == 2)
                    ok = s_v2_enable (info->mount, info->parent, s_names[k], why, sizeof why) ==
                         0;
            if (ok && mkdir (dir, 0755) == 0)
                continue;
        }
        char procs[64];
        if (errno != EEXIST || lss_sandbox_fs_read (self->procs[d], procs, sizeof procs) != 0) {
            s_why (err, err_size, "cgroup %s: %s", dir,
                   errno == EEXIST ? "exists and is not empty" : strerror (errno));
            goto fail;
        }
    }
    if (s_apply (self, limits, err, err_size))
        goto fail;
    return self;
fail:
    lss_sandbox_cgroup_remove (self, 0);
    lss_sandbox_cgroup_destroy (&self);
    return NULL;
}

lss_sandbox_cgroup_t *lss_sandbox_cgroup_open (const lss_sandbox_cg_host_t *host,
                                               const char *id)
{
    lss_sandbox_cgroup_t *self = s_alloc (host, id, true);
    if (!self)
        return NULL;
    char file[LSS_SANDBOX_CG_PATH_MAX];
    int64_t v;
    /* a limit other than "max" means it was set at creation */
    int c = LSS_SANDBOX_CG_MEMORY;
    if (self->version[c] &&
        s_path (file, self->dir[c],
                self->version[c] == 2 ? "memory.max" : "memory.limit_in_bytes") == 0 &&
        lss_sandbox_fs_read_int64 (file, &v) == 0)
        self->enforced[c] = v < (INT64_MAX / 2);
    c = LSS_SANDBOX_CG_PIDS;
    if (self->version[c] && s_path (file, self->dir[c], "pids.max") == 0 &&
        lss_sandbox_fs_read_int64 (file, &v) == 0)
        self->enforced[c] = v != INT64_MAX;
    c = LSS_SANDBOX_CG_CPU;
    if (self->version[c] &&
        s_path (file, self->dir[c], self->version[c] == 2 ? "cpu.max" : "cpu.cfs_quota_us") ==
            0 &&
        lss_sandbox_fs_read_int64 (file, &v) == 0)
        self->enforced[c] = v > 0 && v != INT64_MAX;
    return self;
}

void lss_sandbox_cgroup_destroy (lss_sandbox_cgroup_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    free (*self_p);
    *self_p = NULL;
}

bool lss_sandbox_cgroup_enforces (const lss_sandbox_cgroup_t *self, lss_sandbox_cg_ctrl_t ctrl)
{
    return self && ctrl < LSS_SANDBOX_CG_COUNT && self->enforced[ctrl];
}

size_t lss_sandbox_cgroup_join_files (const lss_sandbox_cgroup_t *self, const char **paths,
                                      size_t max)
{
    size_t n = 0;
    for (int d = 0; self && d < self->ndirs && n < max; d++)
        paths[n++] = self->join[d];
    return n;
}

int lss_sandbox_cgroup_attach (const lss_sandbox_cgroup_t *self, pid_t pid)
{
    char v[32];
    snprintf (v, sizeof v, "%d", (int)pid);
    for (int d = 0; d < self->ndirs; d++)
        if (lss_sandbox_fs_write (self->procs[d], v))
            return -1;
    return 0;
}

static int64_t s_read (const lss_sandbox_cgroup_t *self, int c, const char *knob)
{
    char file[LSS_SANDBOX_CG_PATH_MAX];
    int64_t v;
    if (!self->version[c] || s_path (file, self->dir[c], knob) ||
        lss_sandbox_fs_read_int64 (file, &v))
        return -1;
    return v;
}

static int64_t s_read_keyed (const lss_sandbox_cgroup_t *self, int c, const char *knob,
                             const char *key)
{
    char file[LSS_SANDBOX_CG_PATH_MAX];
    int64_t v;
    if (!self->version[c] || s_path (file, self->dir[c], knob) ||
        lss_sandbox_fs_read_keyed (file, key, &v))
        return -1;
    return v;
}

int64_t lss_sandbox_cgroup_oom_kills (const lss_sandbox_cgroup_t *self)
{
    int c = LSS_SANDBOX_CG_MEMORY;
    int64_t v = self->version[c] == 2
                    ? s_read_keyed (self, c, "memory.events", "oom_kill")
                    : s_read_keyed (self, c, "memory.oom_control", "oom_kill");
    return v < 0 ? 0 : v;
}

int lss_sandbox_cgroup_usage (const lss_sandbox_cgroup_t *self, lss_sandbox_cg_usage_t *out)
{
    int m = LSS_SANDBOX_CG_MEMORY, p = LSS_SANDBOX_CG_PIDS, a = LSS_SANDBOX_CG_CPUACCT;
    bool v2 = self->version[m] == 2;
    out->memory_bytes = s_read (self, m, v2 ? "memory.current" : "memory.usage_in_bytes");
    out->memory_peak_bytes = s_read (self, m, v2 ? "memory.peak" : "memory.max_usage_in_bytes");
    out->pids = s_read (self, p, "pids.current");
    out->pids_peak = s_read (self, p, "pids.peak");
    if (self->version[a] == 2) {
        out->cpu_usec = s_read_keyed (self, a, "cpu.stat", "usage_usec");
    } else {
        int64_t ns = s_read (self, a, "cpuacct.usage");
        out->cpu_usec = ns < 0 ? -1 : ns / 1000;
    }
    out->oom_kills = lss_sandbox_cgroup_oom_kills (self);
    return 0;
}

/*  Reads one cgroup.procs into pids (at most max). Returns the count or -1. */
static ssize_t s_read_pids (const char *file, pid_t *pids, size_t max)
{
    char *buf = malloc (S_PROCS_READ_MAX);
    if (!buf || lss_sandbox_fs_read (file, buf, S_PROCS_READ_MAX) < 0) {
        int saved = buf ? errno : ENOMEM;
        free (buf);
        errno = saved;
        return -1;
    }
    size_t n = 0;
    for (char *p = buf; *p && n < max;) {
        char *end = NULL;
        long v = strtol (p, &end, 10);
        if (end == p)
            break;
        if (v > 0)
            pids[n++] = (pid_t)v;
        p = end;
        while (*p == '\n')
            p++;
    }
    free (buf);
    return (ssize_t)n;
}

int64_t lss_sandbox_cgroup_nprocs (const lss_sandbox_cgroup_t *self)
{
    pid_t pids[S_PIDS_MAX];
    int64_t most = -1;
    for (int d = 0; d < self->ndirs; d++) {
        ssize_t n = s_read_pids (self->procs[d], pids, S_PIDS_MAX);
        if (n > most)
            most = n;
    }
    return most;
}

/*  True if /proc/<pid>/cgroup still places pid in this hierarchy's directory. */
static bool s_pid_in (const lss_sandbox_cgroup_t *self, int c, pid_t pid)
{
    char file[64], text[8192];
    snprintf (file, sizeof file, "/proc/%d/cgroup", (int)pid);
    if (lss_sandbox_fs_read (file, text, sizeof text) < 0)
        return false;
    const char *want = self->dir[c] + self->mount_len[c];
    size_t wlen = strlen (want);
    for (char *line = text; line && *line;) {
        char *next = strchr (line, '\n');
        if (next)
            *next++ = '\0';
        char *c2 = strchr (line, ':');
        c2 = c2 ? strchr (c2 + 1, ':') : NULL;
        /* the path may be relative to a cgroup namespace root: compare the tail */
        if (c2) {
            size_t plen = strlen (c2 + 1);
            if (plen <= wlen && strcmp (want + wlen - plen, c2 + 1) == 0 && plen > 1)
                return true;
        }
        line = next;
    }
    return false;
}

static int s_kill_v1 (const lss_sandbox_cgroup_t *self, int d)
{
    pid_t pids[S_PIDS_MAX];
    ssize_t n = s_read_pids (self->procs[d], pids, S_PIDS_MAX);
    if (n < 0)
        return errno == ENOENT ? 0 : -1;
    for (ssize_t i = 0; i < n; i++) {
        int fd = (int)syscall (SYS_pidfd_open, pids[i], 0);
        if (fd < 0)
            continue;
        if (s_pid_in (self, self->dir_ctrl[d], pids[i]))
            syscall (SYS_pidfd_send_signal, fd, SIGKILL, NULL, 0);
        close (fd);
    }
    return (int)n;
}

int lss_sandbox_cgroup_kill (const lss_sandbox_cgroup_t *self, int timeout_ms)
{
    int64_t deadline = s_mono_ms () + timeout_ms;
    char file[LSS_SANDBOX_CG_PATH_MAX];
    bool killed_v2 = false;
    for (;;) {
        int64_t left = 0;
        for (int d = 0; d < self->ndirs; d++) {
            int c = self->dir_ctrl[d];
            if (self->version[c] == 2 && !killed_v2 &&
                s_path (file, self->dir[c], "cgroup.kill") == 0 &&
                lss_sandbox_fs_write (file, "1") == 0) {
                killed_v2 = true;
                continue;
            }
            int n = s_kill_v1 (self, d);
            if (n > 0)
                left += n;
        }
        if (left == 0 && (!killed_v2 || lss_sandbox_cgroup_nprocs (self) <= 0))
            return 0;
        if (s_mono_ms () >= deadline)
            return -1;
        s_sleep_ms (2);
    }
}

int lss_sandbox_cgroup_remove (lss_sandbox_cgroup_t *self, int timeout_ms)
{
    int64_t deadline = s_mono_ms () + timeout_ms;
    int rc = 0;
    for (int d = 0; d < self->ndirs; d++) {
        const char *dir = self->dir[self->dir_ctrl[d]];
        while (rmdir (dir) && errno != ENOENT) {
            if (errno != EBUSY || s_mono_ms () >= deadline) {
                rc = -1;
                break;
            }
            s_sleep_ms (2);
        }
    }
    return rc;
}
