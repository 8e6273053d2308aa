/*  lss_util — time, random ids and bounded buffers. See lss_util.h. */
#include "lss_util.h"

#include <arpa/inet.h>
#include <errno.h>
#include <malloc.h>
#include <netdb.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

int64_t lss_time_now_ms (void)
{
    struct timespec ts;
    clock_gettime (CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t lss_time_mono_ns (void)
{
    struct timespec ts;
    clock_gettime (CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int64_t lss_time_mono_ms (void)
{
    return lss_time_mono_ns () / 1000000;
}

char *lss_time_rfc3339 (int64_t epoch_ms, char *out)
{
    time_t secs = (time_t)(epoch_ms / 1000);
    int ms = (int)(epoch_ms % 1000);
    if (ms < 0) {
        ms += 1000;
        secs -= 1;
    }
    struct tm tm;
    gmtime_r (&secs, &tm);
    size_t n = strftime (out, LSS_TIME_RFC3339_SIZE, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf (out + n, LSS_TIME_RFC3339_SIZE - n, ".%03dZ", ms % 1000);
    return out;
}

static int s_digits (const char **p, int n, int *out)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (**p < '0' || **p > '9')
            return -1;
        v = v * 10 + (**p - '0');
        (*p)++;
    }
    *out = v;
    return 0;
}

int lss_time_parse_rfc3339 (const char *text, int64_t *epoch_ms)
{
    if (!text)
        return -1;
    const char *p = text;
    int y, mo, d, h, mi, s, ms = 0;
    if (s_digits (&p, 4, &y) || *p++ != '-' || s_digits (&p, 2, &mo) || *p++ != '-' ||
        s_digits (&p, 2, &d) || (*p != 'T' && *p != 't' && *p != ' '))
        return -1;
    p++;
    if (s_digits (&p, 2, &h) || *p++ != ':' || s_digits (&p, 2, &mi) || *p++ != ':' ||
        s_digits (&p, 2, &s))
        return -1;
    if (*p == '.') {
        p++;
        int scale = 100, ndig = 0;
        while (*p >= '0' && *p <= '9') {
            if (ndig < 3)
                ms += (*p - '0') * scale;
            scale /= 10;
            ndig++;
            p++;
            if (ndig > 9)
                return -1;
        }
        if (ndig == 0)
            return -1;
    }
    int offset_min = 0;
    if (*p == 'Z' || *p == 'z')
        p++;
    else if (*p == '+' || *p == '-') {
        int sign = *p++ == '-' ? -1 : 1, oh, om;
        if (s_digits (&p, 2, &oh) || *p++ != ':' || s_digits (&p, 2, &om) || oh > 23 || om > 59)
            return -1;
        offset_min = sign * (oh * 60 + om);
    } else
        return -1;
    if (*p)
        return -1;
    if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || s > 60)
        return -1;
    struct tm tm = {.tm_year = y - 1900,
                    .tm_mon = mo - 1,
                    .tm_mday = d,
                    .tm_hour = h,
                    .tm_min = mi,
                    .tm_sec = s};
    time_t t = timegm (&tm);
    if (t == (time_t)-1)
        return -1;
    *epoch_ms = ((int64_t)t - (int64_t)offset_min * 60) * 1000 + ms;
    return 0;
}

/*  Small requests are served from a per-thread buffer filled by one getrandom call
 *  (ids are drawn per request: one syscall each was measurable). A forked child starts
 *  with an empty buffer, so parent and child never hand out the same bytes. */
#define S_RNG_BUF   256
#define S_RNG_SMALL 64
static _Thread_local struct {
    uint8_t buf[S_RNG_BUF];
    size_t left;
} s_rng;
static pthread_once_t s_rng_once = PTHREAD_ONCE_INIT;

static void s_rng_forked (void)
{
    memset (&s_rng, 0, sizeof s_rng);
}

static void s_rng_init (void)
{
    pthread_atfork (NULL, NULL, s_rng_forked);
}

static int s_getrandom (void *out, size_t len);

int lss_random_bytes (void *out, size_t len)
{
    if (len == 0 || len > S_RNG_SMALL)
        return s_getrandom (out, len);
    pthread_once (&s_rng_once, s_rng_init);
    if (s_rng.left < len) {
        if (s_getrandom (s_rng.buf, sizeof s_rng.buf))
            return -1;
        s_rng.left = sizeof s_rng.buf;
    }
    uint8_t *src = s_rng.buf + sizeof s_rng.buf - s_rng.left;
    memcpy (out, src, len);
    memset (src, 0, len); /* handed out: not kept */
    s_rng.left -= len;
    return 0;
}

static int s_getrandom (void *out, size_t len)
{
    uint8_t *p = out;
    while (len > 0) {
        ssize_t n = getrandom (p, len, 0);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

int lss_id_new (const char *prefix, size_t n, char *out, size_t out_size)
{
    static const char alphabet[] = "abcdefghijklmnopqrstuvwxyz0123456789";
    size_t plen = prefix ? strlen (prefix) : 0;
    if (plen + n + 1 > out_size || n > 256)
        return -1;
    uint8_t rnd[256];
    if (lss_random_bytes (rnd, n))
        return -1;
    memcpy (out, prefix, plen);
    for (size_t i = 0; i < n; i++) {
        /* 36 does not divide 256: redraw the few values that would bias the result. */
        while (rnd[i] >= 252)
            if (lss_random_bytes (&rnd[i], 1))
                return -1;
        out[plen + i] = alphabet[rnd[i] % 36];
    }
    out[plen + n] = '\0';
    return 0;
}

int lss_parse_int64 (const char *text, int64_t min, int64_t max, int64_t *out)
{
    if (!text || !*text)
        return -1;
    char *end;
    errno = 0;
    long long v = strtoll (text, &end, 10);
    if (errno || *end || end == text || v < min || v > max)
        return -1;
    *out = v;
    return 0;
}

void lss_buf_init (lss_buf_t *self, size_t max)
{
    self->data = NULL;
    self->len = self->cap = 0;
    self->max = max;
}

static int s_buf_reserve (lss_buf_t *self, size_t need)
{
    if (need <= self->cap)
        return 0;
    size_t cap = self->cap ? self->cap : 256;
    while (cap < need)
        cap = cap > SIZE_MAX / 2 ? need : cap * 2;
    if (cap > self->max)
        cap = self->max;
    uint8_t *data = realloc (self->data, cap);
    if (!data)
        return -1;
    self->data = data;
    self->cap = cap;
    return 0;
}

int lss_buf_append (lss_buf_t *self, const void *data, size_t len)
{
    if (len > self->max - self->len)
        return -1;
    if (len == 0)
        return 0;
    if (s_buf_reserve (self, self->len + len))
        return -1;
    memcpy (self->data + self->len, data, len);
    self->len += len;
    return 0;
}

size_t lss_buf_append_some (lss_buf_t *self, const void *data, size_t len)
{
    size_t room = self->max - self->len;
    if (len > room)
        len = room;
    return lss_buf_append (self, data, len) == 0 ? len : 0;
}

void lss_buf_consume (lss_buf_t *self, size_t n)
{
    if (n >= self->len) {
        self->len = 0;
        return;
    }
    memmove (self->data, self->data + n, self->len - n);
    self->len -= n;
}

void lss_buf_reset (lss_buf_t *self)
{
    self->len = 0;
}

void lss_buf_free (lss_buf_t *self)
{
    free (self->data);
    self->data = NULL;
    self->len = self->cap = 0;
}

int lss_fmt (char *out, size_t size, const char *fmt, ...)
{
    va_list ap;
    va_start (ap, fmt);
    int n = vsnprintf (out, size, fmt, ap);
    va_end (ap);
    return (n < 0 || (size_t)n >= size) ? -1 : 0;
}

void lss_errf (char *err, size_t size, const char *fmt, ...)
{
    if (!err || size == 0)
        return;
    va_list ap;
    va_start (ap, fmt);
    vsnprintf (err, size, fmt, ap);
    va_end (ap);
}

int lss_listen_parse (const char *listen, char *host, size_t host_size, int *port)
{
    const char *colon = listen ? strrchr (listen, ':') : NULL;
    int64_t value;
    if (!colon || lss_parse_int64 (colon + 1, 0, 65535, &value))
        return -1;
    const char *h = listen;
    size_t len = (size_t)(colon - listen);
    if (len >= 2 && h[0] == '[' && h[len - 1] == ']') {
        h++;
        len -= 2;
    }
    if (len >= host_size)
        return -1;
    memcpy (host, h, len);
    host[len] = '\0';
    if (strcmp (host, "*") == 0)
        host[0] = '\0';
    *port = (int)value;
    return 0;
}

int lss_resolve_numeric (const char *host, char *out, size_t out_size, bool *ipv6)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    struct addrinfo *res = NULL;
    if (!host || getaddrinfo (host, NULL, &hints, &res) != 0 || !res)
        return -1;
    int rc = -1;
    for (struct addrinfo *ai = res; ai && rc; ai = ai->ai_next) {
        if (ai->ai_family == AF_INET &&
            inet_ntop (AF_INET, &((struct sockaddr_in *)ai->ai_addr)->sin_addr, out,
                       (socklen_t)out_size)) {
            *ipv6 = false;
            rc = 0;
        } else if (ai->ai_family == AF_INET6 &&
                   inet_ntop (AF_INET6, &((struct sockaddr_in6 *)ai->ai_addr)->sin6_addr, out,
                              (socklen_t)out_size)) {
            *ipv6 = true;
            rc = 0;
        }
    }
    freeaddrinfo (res);
    return rc;
}

int lss_thread_start (pthread_t *thread, void *(*fn) (void *), void *arg)
{
    sigset_t block, old;
    sigfillset (&block);
    /* a fault is the faulting thread's own (blocked, the kernel would reset its handler:
     * no sanitizer report, no core with the right thread) */
    int faults[] = {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGTRAP, SIGABRT, SIGSYS};
    for (size_t i = 0; i < sizeof faults / sizeof faults[0]; i++)
        sigdelset (&block, faults[i]);
    pthread_sigmask (SIG_BLOCK, &block, &old);
    int rc = pthread_create (thread, NULL, fn, arg);
    pthread_sigmask (SIG_SETMASK, &old, NULL);
    return rc == 0 ? 0 : -1;
}

void lss_malloc_for_streaming (void)
{
    mallopt (M_MMAP_THRESHOLD, LSS_MALLOC_MMAP_MAX);
    mallopt (M_TRIM_THRESHOLD, LSS_MALLOC_TRIM_KEEP);
}
