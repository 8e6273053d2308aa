/*  up_logfile — a process's log under <data>/logs: appended, bounded by rotation.
 *
 *  Design note: the supervisor copies each child's output (a pipe) into its log, so the
 *  bound is enforced here rather than trusted to the child: once a write would pass
 *  max_bytes the file is renamed to <path>.1 (replacing the previous one) and a new one
 *  started, so a process never holds more than about 2 × max_bytes of disk. The cut is
 *  made after the last newline that still fits, so lines are not split across files
 *  unless a single line is longer than the limit.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lss_util.h"
#include "up.h"

static int s_open (up_logfile_t *lf)
{
    lf->fd = open (lf->path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
    if (lf->fd < 0)
        return -1;
    struct stat st;
    lf->size = fstat (lf->fd, &st) == 0 ? (int64_t)st.st_size : 0;
    return 0;
}

int up_logfile_open (up_logfile_t *lf, const char *path, int64_t max_bytes)
{
    memset (lf, 0, sizeof *lf);
    lf->fd = -1;
    if (max_bytes <= 0 || lss_fmt (lf->path, sizeof lf->path, "%s", path))
        return -1;
    lf->max_bytes = max_bytes;
    return s_open (lf);
}

static int s_write_all (up_logfile_t *lf, const char *data, size_t len)
{
    while (len > 0) {
        ssize_t n = write (lf->fd, data, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        data += n;
        len -= (size_t)n;
        lf->size += n;
    }
    return 0;
}

static int s_rotate (up_logfile_t *lf)
{
    char old[UP_PATH_MAX + 4];
    if (lss_fmt (old, sizeof old, "%s.1", lf->path))
        return -1;
    close (lf->fd);
    lf->fd = -1;
    if (rename (lf->path, old) != 0 && errno != ENOENT)
        return -1;
    return s_open (lf);
}

int up_logfile_write (up_logfile_t *lf, const void *data, size_t len)
{
    const char *p = data;
    if (lf->fd < 0)
        return -1;
    while (len > 0) {
        int64_t room = lf->max_bytes - lf->size;
        if ((int64_t)len <= room)
            return s_write_all (lf, p, len);
        /* up to the last newline that fits; a file that is empty takes a cut line */
        size_t take = 0;
        for (size_t i = room > 0 ? (size_t)room : 0; i > 0; i--)
            if (p[i - 1] == '\n') {
                take = i;
                break;
            }
        if (take == 0 && lf->size == 0)
            take = (size_t)(room > 0 ? room : (int64_t)len);
        if (take > 0 && s_write_all (lf, p, take))
            return -1;
        p += take;
        len -= take;
        if (len > 0 && s_rotate (lf))
            return -1;
    }
    return 0;
}

int up_logfile_printf (up_logfile_t *lf, const char *fmt, ...)
{
    char line[1024];
    va_list ap;
    va_start (ap, fmt);
    int n = vsnprintf (line, sizeof line, fmt, ap);
    va_end (ap);
    if (n < 0)
        return -1;
    return up_logfile_write (lf, line, strlen (line));
}

void up_logfile_close (up_logfile_t *lf)
{
    if (lf->fd >= 0)
        close (lf->fd);
    lf->fd = -1;
}
