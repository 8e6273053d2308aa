/*  agent_files — confined file operations for the agent. See agent_files.h. */
#include "agent_files.h"

#include <dirent.h>
#include <stdarg.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "lss_util.h"

typedef struct {
    char virt[256];
    int fd;
} s_root_t;

struct _agent_files_t {
    s_root_t roots[AGENT_FILES_MAX_ROOTS];
    size_t count;
};

void agent_err_set (agent_err_t *err, const char *code, const char *fmt, ...)
{
    err->code = code;
    va_list ap;
    va_start (ap, fmt);
    vsnprintf (err->message, sizeof err->message, fmt, ap);
    va_end (ap);
}

static const char *s_errno_code (int e)
{
    switch (e) {
    case ENOENT:
        return "not_found";
    case EEXIST:
        return "exists";
    case ENOTDIR:
        return "not_a_directory";
    case EISDIR:
        return "is_a_directory";
    case EXDEV:
    case ELOOP:
        return "forbidden_path";
    case ENOSPC:
    case EDQUOT:
    case EFBIG:
        return "no_space";
    case EACCES:
    case EPERM:
    case EROFS:
        return "permission_denied";
    case ENOTEMPTY:
        return "not_empty";
    case ENAMETOOLONG:
        return "invalid_request";
    default:
        return "io_error";
    }
}

static void s_fail_errno (agent_err_t *err, const char *what, const char *path, int e)
{
    if (e == EXDEV || e == ELOOP)
        agent_err_set (err, "forbidden_path",
                       "%s %s: a symlink or '..' leads outside the sandbox's "
                       "writable roots",
                       what, path);
    else
        agent_err_set (err, s_errno_code (e), "%s %s: %s", what, path, strerror (e));
}

agent_files_t *agent_files_new (const char *const *roots, size_t count, agent_err_t *err)
{
    if (count == 0 || count > AGENT_FILES_MAX_ROOTS) {
        agent_err_set (err, "invalid_request", "between 1 and %d roots are needed",
                       AGENT_FILES_MAX_ROOTS);
        return NULL;
    }
    agent_files_t *self = calloc (1, sizeof *self);
    if (!self)
        return NULL;
    for (size_t i = 0; i < count; i++) {
        const char *eq = strchr (roots[i], '=');
        size_t vlen = eq ? (size_t)(eq - roots[i]) : 0;
        if (!eq || vlen < 2 || vlen >= sizeof self->roots[i].virt || roots[i][0] != '/' ||
            roots[i][vlen - 1] == '/' || !eq[1]) {
            agent_err_set (err, "invalid_request", "root '%s' must be /VIRTUAL=DIR", roots[i]);
            goto fail;
        }
        memcpy (self->roots[i].virt, roots[i], vlen);
        self->roots[i].virt[vlen] = '\0';
        self->roots[i].fd = open (eq + 1, O_PATH | O_DIRECTORY | O_CLOEXEC);
        if (self->roots[i].fd < 0) {
            agent_err_set (err, "io_error", "cannot open root %s: %s", eq + 1,
                           strerror (errno));
            goto fail;
        }
        self->count++;
    }
    return self;
fail:
    agent_files_destroy (&self);
    return NULL;
}

void agent_files_destroy (agent_files_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    for (size_t i = 0; i < (*self_p)->count; i++)
        close ((*self_p)->roots[i].fd);
    free (*self_p);
    *self_p = NULL;
}

/*  A client path resolved to a root and a clean relative path ("" = the root). */
typedef struct {
    size_t root;
    char rel[4096];
    char shown[4096 + 256]; /* virtual path, for replies and messages */
} s_path_t;

static int s_split (agent_files_t *self, const char *path, s_path_t *out, agent_err_t *err)
{
    if (!path || strlen (path) >= sizeof out->rel) {
        agent_err_set (err, "invalid_request", "path is missing or longer than 4095 bytes");
        return -1;
    }
    const char *rest = path;
    out->root = 0;
    if (path[0] == '/') {
        size_t i = 0;
        for (; i < self->count; i++) {
            size_t n = strlen (self->roots[i].virt);
            if (strncmp (path, self->roots[i].virt, n) == 0 &&
                (path[n] == '/' || path[n] == '\0'))
                break;
        }
        if (i == self->count) {
            char list[600] = "";
            for (size_t k = 0; k < self->count; k++) {
                size_t used = strlen (list);
                snprintf (list + used, sizeof list - used, "%s%s", k ? ", " : "",
                          self->roots[k].virt);
            }
            agent_err_set (err, "forbidden_path",
                           "%s is outside the sandbox's writable roots (%s)", path, list);
            return -1;
        }
        out->root = i;
        rest = path + strlen (self->roots[i].virt);
    }
    /* Normalise: drop empty and "." components; refuse "..". */
    size_t len = 0;
    out->rel[0] = '\0';
    while (*rest) {
        while (*rest == '/')
            rest++;
        const char *end = strchrnul (rest, '/');
        size_t n = (size_t)(end - rest);
        if (n == 2 && rest[0] == '.' && rest[1] == '.') {
            agent_err_set (err, "forbidden_path", "'..' is not allowed in paths (%s)", path);
            return -1;
        }
        if (n > 0 && !(n == 1 && rest[0] == '.')) {
            if (n > 255) {
                agent_err_set (err, "invalid_request",
                               "a path component is longer than 255 bytes");
                return -1;
            }
            if (len)
                out->rel[len++] = '/';
            memcpy (out->rel + len, rest, n);
            len += n;
            out->rel[len] = '\0';
        }
        rest = end;
    }
    snprintf (out->shown, sizeof out->shown, "%s%s%s", self->roots[out->root].virt,
              len ? "/" : "", out->rel);
    return 0;
}

/* Fallback where openat2 is missing (kernel < 5.6, valgrind): walk one component at a
 * time with O_NOFOLLOW. Stricter than RESOLVE_BENEATH: any symlink on the way is refused,
 * even one that stays inside the root. rel is already free of ".." (s_split). */
static int s_walk (int dirfd, const char *rel, int flags, mode_t mode)
{
    int cur = dup (dirfd);
    const char *p = rel;
    while (cur >= 0 && *p) {
        const char *slash = strchr (p, '/');
        char comp[256];
        size_t n = slash ? (size_t)(slash - p) : strlen (p);
        if (n == 0 || n >= sizeof comp) {
            close (cur);
            errno = ENAMETOOLONG;
            return -1;
        }
        memcpy (comp, p, n);
        comp[n] = '\0';
        int next = slash ? openat (cur, comp, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
                         : openat (cur, comp, flags | O_NOFOLLOW | O_CLOEXEC, mode);
        int saved = errno;
        close (cur);
        if (next < 0) {
            errno = saved == ENOTDIR ? ELOOP : saved; /* a symlink where a directory was due */
            return -1;
        }
        cur = next;
        p += n + (slash ? 1 : 0);
    }
    if (cur >= 0 && !*rel && (flags & O_ACCMODE) != O_RDONLY) {
        close (cur);
        errno = EISDIR;
        return -1;
    }
    if (cur >= 0 && !*rel && !(flags & O_PATH)) { /* reopen the root itself with flags */
        int fd = openat (cur, ".", flags | O_CLOEXEC, mode);
        close (cur);
        return fd;
    }
    return cur;
}

static int s_openat2 (int dirfd, const char *rel, int flags, mode_t mode)
{
    static bool unsupported;
    if (!unsupported) {
        struct open_how how = {.flags = (uint64_t)(flags | O_CLOEXEC),
                               .mode = (flags & O_CREAT) ? mode : 0,
                               .resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS};
        long fd;
        do
            fd = syscall (SYS_openat2, dirfd, *rel ? rel : ".", &how, sizeof how);
        while (fd < 0 && errno == EINTR);
        if (fd >= 0 || errno != ENOSYS)
            return (int)fd;
        unsupported = true;
    }
    return s_walk (dirfd, rel, flags, mode);
}

/* Opens the parent directory of p and points *name at the last component. */
static int s_open_parent (agent_files_t *self, s_path_t *p, const char **name, agent_err_t *err)
{
    char *slash = strrchr (p->rel, '/');
    int fd;
    if (!p->rel[0]) {
        agent_err_set (err, "forbidden_path", "%s is a root and cannot be changed", p->shown);
        return -1;
    }
    if (slash) {
        *slash = '\0';
        fd = s_openat2 (self->roots[p->root].fd, p->rel, O_PATH | O_DIRECTORY, 0);
        *slash = '/';
        *name = slash + 1;
    } else {
        fd = s_openat2 (self->roots[p->root].fd, "", O_PATH | O_DIRECTORY, 0);
        *name = p->rel;
    }
    if (fd < 0)
        s_fail_errno (err, "cannot open the directory of", p->shown, errno);
    return fd;
}

static int64_t s_ms (struct timespec ts)
{
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int s_cmp_entries (const void *a, const void *b)
{
    return strcmp (json_string_value (json_object_get (*(json_t *const *)a, "name")),
                   json_string_value (json_object_get (*(json_t *const *)b, "name")));
}

static int s_list (agent_files_t *self, const char *ref, const lss_file_list_t *req,
                   lss_file_entries_t *rep, agent_err_t *err)
{
    s_path_t p;
    if (s_split (self, req->path, &p, err))
        return -1;
    int fd = s_openat2 (self->roots[p.root].fd, p.rel, O_RDONLY | O_DIRECTORY, 0);
    if (fd < 0) {
        s_fail_errno (err, "cannot list", p.shown, errno);
        return -1;
    }
    DIR *dir = fdopendir (fd);
    if (!dir) {
        close (fd);
        s_fail_errno (err, "cannot list", p.shown, errno);
        return -1;
    }
    json_t **items = calloc (AGENT_FILES_MAX_ENTRIES, sizeof (json_t *));
    size_t n = 0;
    bool truncated = false;
    struct dirent *de;
    while (items && (de = readdir (dir))) {
        if (strcmp (de->d_name, ".") == 0 || strcmp (de->d_name, "..") == 0)
            continue;
        if (n == AGENT_FILES_MAX_ENTRIES) {
            truncated = true;
            break;
        }
        struct stat st;
        if (fstatat (dirfd (dir), de->d_name, &st, AT_SYMLINK_NOFOLLOW))
            continue; /* vanished meanwhile */
        char full[4096 + 512];
        snprintf (full, sizeof full, "%s/%s", p.shown, de->d_name);
        json_t *name = json_string (de->d_name);
        if (!name)
            continue; /* not UTF-8: cannot be named in JSON */
        items[n++] =
            json_pack ("{s:o, s:s, s:I, s:b, s:b, s:i, s:I, s:I}", "name", name, "path", full,
                       "size", (json_int_t)st.st_size, "isDir", S_ISDIR (st.st_mode),
                       "isSymlink", S_ISLNK (st.st_mode), "mode", st.st_mode & 07777, "mtimeMs",
                       (json_int_t)s_ms (st.st_mtim), "ctimeMs", (json_int_t)s_ms (st.st_ctim));
    }
    closedir (dir);
    if (!items) {
        agent_err_set (err, "io_error", "out of memory");
        return -1;
    }
    qsort (items, n, sizeof (json_t *), s_cmp_entries);
    json_t *arr = json_array ();
    for (size_t i = 0; i < n; i++)
        json_array_append_new (arr, items[i]);
    free (items);
    rep->ref = strdup (ref);
    rep->path = strdup (p.shown);
    rep->entries = arr;
    rep->truncated = truncated;
    return 0;
}

static int s_stat (agent_files_t *self, const char *ref, const lss_file_stat_t *req,
                   lss_file_info_t *rep, agent_err_t *err)
{
    s_path_t p;
    if (s_split (self, req->path, &p, err))
        return -1;
    int fd = s_openat2 (self->roots[p.root].fd, p.rel, O_PATH, 0);
    struct stat st;
    if (fd < 0 || fstat (fd, &st)) {
        s_fail_errno (err, "cannot stat", p.shown, errno);
        if (fd >= 0)
            close (fd);
        return -1;
    }
    close (fd);
    rep->ref = strdup (ref);
    rep->path = strdup (p.shown);
    rep->size = st.st_size;
    rep->is_dir = S_ISDIR (st.st_mode);
    rep->mode = st.st_mode & 07777;
    rep->mtime_ms = s_ms (st.st_mtim);
    rep->ctime_ms = s_ms (st.st_ctim);
    return 0;
}

static int s_read (agent_files_t *self, const char *ref, const lss_file_read_t *req,
                   lss_file_data_t *rep, agent_err_t *err)
{
    s_path_t p;
    if (s_split (self, req->path, &p, err))
        return -1;
    if (req->offset < 0 || req->length < 0) {
        agent_err_set (err, "invalid_request", "offset and length must not be negative");
        return -1;
    }
    int fd = s_openat2 (self->roots[p.root].fd, p.rel, O_RDONLY | O_NONBLOCK, 0);
    struct stat st;
    if (fd < 0 || fstat (fd, &st)) {
        s_fail_errno (err, "cannot read", p.shown, errno);
        if (fd >= 0)
            close (fd);
        return -1;
    }
    if (!S_ISREG (st.st_mode)) {
        close (fd);
        agent_err_set (err, S_ISDIR (st.st_mode) ? "is_a_directory" : "invalid_request",
                       "%s is not a regular file", p.shown);
        return -1;
    }
    size_t want = req->length > 0 && req->length < AGENT_FILES_CHUNK ? (size_t)req->length
                                                                     : AGENT_FILES_CHUNK;
    uint8_t *buf = malloc (want ? want : 1);
    size_t got = 0;
    while (buf && got < want) {
        ssize_t r = pread (fd, buf + got, want - got, req->offset + (off_t)got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            s_fail_errno (err, "cannot read", p.shown, errno);
            free (buf);
            close (fd);
            return -1;
        }
        if (r == 0)
            break;
        got += (size_t)r;
    }
    close (fd);
    if (!buf) {
        agent_err_set (err, "io_error", "out of memory");
        return -1;
    }
    rep->ref = strdup (ref);
    rep->offset = req->offset;
    rep->size = st.st_size;
    rep->data = (lss_bytes_t){buf, got};
    rep->eof = req->offset + (int64_t)got >= st.st_size;
    return 0;
}

/* mkdir -p of rel under a root, refusing symlinked components. Returns 0 or -1. */
static int s_mkdirs (agent_files_t *self, size_t root, const char *rel, size_t rel_len,
                     agent_err_t *err, const char *shown)
{
    int cur = dup (self->roots[root].fd);
    char comp[256];
    const char *p = rel, *end = rel + rel_len;
    while (cur >= 0 && p < end) {
        const char *slash = memchr (p, '/', (size_t)(end - p));
        size_t n = slash ? (size_t)(slash - p) : (size_t)(end - p);
        memcpy (comp, p, n);
        comp[n] = '\0';
        if (mkdirat (cur, comp, 0755) && errno != EEXIST) {
            s_fail_errno (err, "cannot create directory", shown, errno);
            close (cur);
            return -1;
        }
        int next = openat (cur, comp, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (next < 0) {
            s_fail_errno (err, "cannot create directory", shown,
                          errno == ENOTDIR ? ELOOP : errno);
            close (cur);
            return -1;
        }
        close (cur);
        cur = next;
        p += n + (slash ? 1 : 0);
    }
    if (cur < 0) {
        s_fail_errno (err, "cannot create directory", shown, errno);
        return -1;
    }
    close (cur);
    return 0;
}

static int s_write (agent_files_t *self, const char *ref, const lss_file_write_t *req,
                    lss_file_written_t *rep, agent_err_t *err)
{
    s_path_t p;
    if (s_split (self, req->path, &p, err))
        return -1;
    if (!p.rel[0]) {
        agent_err_set (err, "is_a_directory", "%s is a directory", p.shown);
        return -1;
    }
    if (req->offset < 0 || req->offset > (1ll << 40) || req->mode < 0 || req->mode > 07777) {
        agent_err_set (err, "invalid_request", "offset must be 0..2^40 and mode 0..07777");
        return -1;
    }
    char *slash = strrchr (p.rel, '/');
    if (req->parents && slash &&
        s_mkdirs (self, p.root, p.rel, (size_t)(slash - p.rel), err, p.shown))
        return -1;
    int flags = O_WRONLY | O_CREAT | O_NONBLOCK | (req->truncate ? O_TRUNC : 0);
    int fd =
        s_openat2 (self->roots[p.root].fd, p.rel, flags, req->mode ? (mode_t)req->mode : 0644);
    struct stat st;
    if (fd < 0 || fstat (fd, &st)) {
        s_fail_errno (err, "cannot write", p.shown, errno);
        if (fd >= 0)
            close (fd);
        return -1;
    }
    if (!S_ISREG (st.st_mode)) {
        close (fd);
        agent_err_set (err, "invalid_request", "%s is not a regular file", p.shown);
        return -1;
    }
    size_t done = 0;
    while (done < req->data.len) {
        ssize_t w =
            pwrite (fd, req->data.data + done, req->data.len - done, req->offset + (off_t)done);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            s_fail_errno (err, "cannot write", p.shown, w < 0 ? errno : ENOSPC);
            close (fd);
            return -1;
        }
        done += (size_t)w;
    }
    fstat (fd, &st);
    close (fd);
    rep->ref = strdup (ref);
    rep->path = strdup (p.shown);
    rep->size = st.st_size;
    return 0;
}

/* Deletes everything below dirfd (not dirfd itself). Returns 0 or errno. */
static int s_rmtree (int dirfd, int depth)
{
    if (depth > AGENT_FILES_MAX_DEPTH)
        return ELOOP;
    int fd = dup (dirfd);
    DIR *dir = fd >= 0 ? fdopendir (fd) : NULL;
    if (!dir) {
        if (fd >= 0)
            close (fd);
        return errno;
    }
    int rc = 0;
    struct dirent *de;
    while (rc == 0 && (de = readdir (dir))) {
        if (strcmp (de->d_name, ".") == 0 || strcmp (de->d_name, "..") == 0)
            continue;
        if (unlinkat (dirfd, de->d_name, 0) == 0)
            continue;
        if (errno != EISDIR && errno != EPERM) {
            rc = errno;
            break;
        }
        int sub = openat (dirfd, de->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (sub < 0) {
            rc = errno;
            break;
        }
        rc = s_rmtree (sub, depth + 1);
        close (sub);
        if (rc == 0 && unlinkat (dirfd, de->d_name, AT_REMOVEDIR))
            rc = errno;
    }
    closedir (dir);
    return rc;
}

static int s_delete (agent_files_t *self, const char *ref, const lss_file_delete_t *req,
                     lss_ok_t *rep, agent_err_t *err)
{
    s_path_t p;
    if (s_split (self, req->path, &p, err))
        return -1;
    const char *name;
    int parent = s_open_parent (self, &p, &name, err);
    if (parent < 0)
        return -1;
    struct stat st;
    int rc = 0;
    if (fstatat (parent, name, &st, AT_SYMLINK_NOFOLLOW))
        rc = errno;
    else if (!S_ISDIR (st.st_mode))
        rc = unlinkat (parent, name, 0) ? errno : 0;
    else if (unlinkat (parent, name, AT_REMOVEDIR)) {
        rc = errno;
        if ((rc == ENOTEMPTY || rc == EEXIST) && req->recursive) {
            int dfd = openat (parent, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
            rc = dfd < 0 ? errno : s_rmtree (dfd, 0);
            if (dfd >= 0)
                close (dfd);
            if (rc == 0 && unlinkat (parent, name, AT_REMOVEDIR))
                rc = errno;
        } else if (rc == EEXIST)
            rc = ENOTEMPTY;
    }
    close (parent);
    if (rc) {
        if (rc == ENOTEMPTY)
            agent_err_set (err, "not_empty",
                           "%s is a non-empty directory (delete it recursively)", p.shown);
        else
            s_fail_errno (err, "cannot delete", p.shown, rc);
        return -1;
    }
    rep->ref = strdup (ref);
    return 0;
}

static int s_mkdir (agent_files_t *self, const char *ref, const lss_file_mkdir_t *req,
                    lss_ok_t *rep, agent_err_t *err)
{
    s_path_t p;
    if (s_split (self, req->path, &p, err))
        return -1;
    if (req->parents) {
        if (s_mkdirs (self, p.root, p.rel, strlen (p.rel), err, p.shown))
            return -1;
    } else {
        const char *name;
        int parent = s_open_parent (self, &p, &name, err);
        if (parent < 0)
            return -1;
        int rc = mkdirat (parent, name, 0755) ? errno : 0;
        close (parent);
        if (rc) {
            s_fail_errno (err, "cannot create directory", p.shown, rc);
            return -1;
        }
    }
    rep->ref = strdup (ref);
    return 0;
}

int agent_files_handle (agent_files_t *self, const char *ref, lss_msg_kind_t kind,
                        const void *request, lss_msg_kind_t *reply_kind, void **reply,
                        agent_err_t *err)
{
    static const struct {
        lss_msg_kind_t req, rep;
    } map[] = {
        {LSS_MSG_file_list, LSS_MSG_file_entries}, {LSS_MSG_file_stat, LSS_MSG_file_info},
        {LSS_MSG_file_read, LSS_MSG_file_data},    {LSS_MSG_file_write, LSS_MSG_file_written},
        {LSS_MSG_file_delete, LSS_MSG_ok},         {LSS_MSG_file_mkdir, LSS_MSG_ok},
    };
    *reply = NULL;
    for (size_t i = 0; i < sizeof map / sizeof map[0]; i++) {
        if (map[i].req != kind)
            continue;
        void *rep = lss_proto_body_new (map[i].rep);
        if (!rep) {
            agent_err_set (err, "io_error", "out of memory");
            return -1;
        }
        int rc = -1;
        switch (kind) {
        case LSS_MSG_file_list:
            rc = s_list (self, ref, request, rep, err);
            break;
        case LSS_MSG_file_stat:
            rc = s_stat (self, ref, request, rep, err);
            break;
        case LSS_MSG_file_read:
            rc = s_read (self, ref, request, rep, err);
            break;
        case LSS_MSG_file_write:
            rc = s_write (self, ref, request, rep, err);
            break;
        case LSS_MSG_file_delete:
            rc = s_delete (self, ref, request, rep, err);
            break;
        case LSS_MSG_file_mkdir:
            rc = s_mkdir (self, ref, request, rep, err);
            break;
        default:
            break;
        }
        if (rc) {
            lss_proto_body_free (map[i].rep, &rep);
            return -1;
        }
        *reply_kind = map[i].rep;
        *reply = rep;
        return 0;
    }
    agent_err_set (err, "invalid_request", "not a file request");
    return -1;
}

static long long s_du (int dirfd, int depth, size_t *budget)
{
    if (depth > AGENT_FILES_MAX_DEPTH)
        return 0;
    int fd = dup (dirfd);
    DIR *dir = fd >= 0 ? fdopendir (fd) : NULL;
    if (!dir) {
        if (fd >= 0)
            close (fd);
        return 0;
    }
    long long total = 0;
    struct dirent *de;
    while (*budget > 0 && (de = readdir (dir))) {
        if (strcmp (de->d_name, ".") == 0 || strcmp (de->d_name, "..") == 0)
            continue;
        (*budget)--;
        struct stat st;
        if (fstatat (dirfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW))
            continue;
        total += (long long)st.st_blocks * 512;
        if (S_ISDIR (st.st_mode)) {
            int sub =
                openat (dirfd, de->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
            if (sub >= 0) {
                total += s_du (sub, depth + 1, budget);
                close (sub);
            }
        }
    }
    closedir (dir);
    return total;
}

long long agent_files_disk_usage (agent_files_t *self, size_t root, size_t max_entries)
{
    if (root >= self->count)
        return -1;
    int fd = s_openat2 (self->roots[root].fd, "", O_RDONLY | O_DIRECTORY, 0);
    if (fd < 0)
        return -1;
    long long total = s_du (fd, 0, &max_entries);
    close (fd);
    return total;
}
