/*  sandbox_fs — bounded file helpers. See sandbox_fs.h.
 *
 *  rmtree walks with openat(O_NOFOLLOW | O_DIRECTORY) from a directory fd and unlinkat,
 *  so a symlink planted by the sandbox is removed, never followed, and a rename race
 *  cannot redirect the walk outside the tree.
 */
#include "sandbox_fs.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

ssize_t lss_sandbox_fs_read (const char *path, char *buf, size_t size)
{
    if (size == 0) {
        errno = EINVAL;
        return -1;
    }
    int fd = open (path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    if (fd < 0)
        return -1;
    size_t len = 0;
    ssize_t rc = 0;
    for (;;) {
        if (len == size - 1) {
            char extra;
            ssize_t more = read (fd, &extra, 1);
            if (more > 0) {
                errno = EFBIG;
                rc = -1;
            }
            break;
        }
        ssize_t n = read (fd, buf + len, size - 1 - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            rc = -1;
            break;
        }
        if (n == 0)
            break;
        len += (size_t)n;
    }
    int saved = errno;
    close (fd);
    errno = saved;
    buf[len] = '\0';
    return rc < 0 ? -1 : (ssize_t)len;
}

int lss_sandbox_fs_write (const char *path, const char *text)
{
    int fd = open (path, O_WRONLY | O_CLOEXEC | O_NOCTTY);
    if (fd < 0)
        return -1;
    size_t len = strlen (text);
    ssize_t n;
    do
        n = write (fd, text, len);
    while (n < 0 && errno == EINTR);
    int saved = errno;
    close (fd);
    if (n != (ssize_t)len) {
        errno = n < 0 ? saved : EIO;
        return -1;
    }
    return 0;
}

int lss_sandbox_fs_write_atomic (const char *path, const void *data, size_t len, mode_t mode)
{
    char tmp[PATH_MAX];
    if (snprintf (tmp, sizeof tmp, "%s.tmp", path) >= (int)sizeof tmp) {
        errno = ENAMETOOLONG;
        return -1;
    }
    int fd = open (tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, mode);
    if (fd < 0)
        return -1;
    size_t off = 0;
    while (off < len) {
        ssize_t n = write (fd, (const char *)data + off, len - off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            goto fail;
        off += (size_t)n;
    }
    if (fchmod (fd, mode) || close (fd)) {
        fd = -1;
        goto fail;
    }
    fd = -1;
    if (rename (tmp, path))
        goto fail;
    return 0;
fail:;
    int saved = errno;
    if (fd >= 0)
        close (fd);
    unlink (tmp);
    errno = saved;
    return -1;
}

int lss_sandbox_fs_read_int64 (const char *path, int64_t *out)
{
    char buf[64];
    if (lss_sandbox_fs_read (path, buf, sizeof buf) < 0)
        return -1;
    if (strncmp (buf, "max", 3) == 0) {
        *out = INT64_MAX;
        return 0;
    }
    char *end = NULL;
    errno = 0;
    long long v = strtoll (buf, &end, 10);
    if (errno || end == buf || (*end && *end != '\n' && *end != ' '))
        return -1;
    *out = (int64_t)v;
    return 0;
}

int lss_sandbox_fs_read_keyed (const char *path, const char *key, int64_t *out)
{
    char buf[8192];
    if (lss_sandbox_fs_read (path, buf, sizeof buf) < 0)
        return -1;
    size_t klen = strlen (key);
    for (char *line = buf; line && *line;) {
        char *next = strchr (line, '\n');
        if (next)
            *next++ = '\0';
        if (strncmp (line, key, klen) == 0 && line[klen] == ' ') {
            char *end = NULL;
            errno = 0;
            long long v = strtoll (line + klen + 1, &end, 10);
            if (errno || end == line + klen + 1)
                return -1;
            *out = (int64_t)v;
            return 0;
        }
        line = next;
    }
    return -1;
}

static int s_rm_children (int dirfd, int depth)
{
    if (depth > LSS_SANDBOX_FS_RMTREE_DEPTH) {
        errno = ELOOP;
        return -1;
    }
    int dupfd = fcntl (dirfd, F_DUPFD_CLOEXEC, 0);
    if (dupfd < 0)
        return -1;
    DIR *dir = fdopendir (dupfd);
    if (!dir) {
        close (dupfd);
        return -1;
    }
    int rc = 0;
    struct dirent *de;
    while ((de = readdir (dir))) {
        if (strcmp (de->d_name, ".") == 0 || strcmp (de->d_name, "..") == 0)
            continue;
        if (unlinkat (dirfd, de->d_name, 0) == 0)
            continue;
        if (errno != EISDIR && errno != EPERM) {
            if (errno != ENOENT)
                rc = -1;
            continue;
        }
        int sub = openat (dirfd, de->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (sub < 0) {
            rc = -1;
            continue;
        }
        /* a directory the sandbox made unwritable (chmod 0500) is still ours to empty */
        fchmod (sub, 0700);
        if (s_rm_children (sub, depth + 1))
            rc = -1;
        close (sub);
        if (unlinkat (dirfd, de->d_name, AT_REMOVEDIR) && errno != ENOENT)
            rc = -1;
    }
    closedir (dir);
    return rc;
}

int lss_sandbox_fs_rmtree (const char *path)
{
    int fd = open (path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ENOENT)
            return 0;
        if (errno == ENOTDIR || errno == ELOOP)
            return unlink (path);
        return -1;
    }
    fchmod (fd, 0700);
    int rc = s_rm_children (fd, 0);
    close (fd);
    if (rmdir (path) && errno != ENOENT)
        rc = -1;
    return rc;
}

int lss_sandbox_proc_stat (pid_t pid, uint64_t *start_ticks, pid_t *ppid)
{
    char path[64], buf[1024];
    snprintf (path, sizeof path, "/proc/%d/stat", (int)pid);
    if (pid <= 0 || lss_sandbox_fs_read (path, buf, sizeof buf) < 0)
        return -1;
    /* the command name (field 2) may hold spaces and ')': parse after the last ')' */
    char *p = strrchr (buf, ')');
    if (!p)
        return -1;
    p++;
    /* fields 3.. : state ppid pgrp session tty_nr tpgid flags minflt cminflt majflt
       cmajflt utime stime cutime cstime priority nice num_threads itrealvalue starttime */
    int field = 2;
    char *save = NULL;
    uint64_t start = 0;
    long parent = 0;
    for (char *tok = strtok_r (p, " ", &save); tok; tok = strtok_r (NULL, " ", &save)) {
        field++;
        if (field == 4)
            parent = strtol (tok, NULL, 10);
        if (field == 22) {
            start = strtoull (tok, NULL, 10);
            break;
        }
    }
    if (field != 22)
        return -1;
    if (start_ticks)
        *start_ticks = start;
    if (ppid)
        *ppid = (pid_t)parent;
    return 0;
}
