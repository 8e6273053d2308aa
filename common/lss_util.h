/*  lss_util — time, random ids and bounded buffers shared by every service.
 *
 *  Ids are random (getrandom), URL-safe ([a-z0-9]) so they are valid in Kubernetes names,
 *  file names and URLs alike. Buffers have a cap given at creation and refuse to grow
 *  past it (the caller decides what "full" means: truncate, flag, or fail).
 */
#ifndef LSS_UTIL_H
#define LSS_UTIL_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*  Wall clock, milliseconds since the epoch. */
int64_t lss_time_now_ms (void);
/*  Monotonic clock, milliseconds and nanoseconds. */
int64_t lss_time_mono_ms (void);
int64_t lss_time_mono_ns (void);
/*  Formats epoch ms as RFC 3339 UTC with milliseconds ("2026-11-22T03:30:00.123Z").
 *  out must hold LSS_TIME_RFC3339_SIZE bytes. Returns out. */
#define LSS_TIME_RFC3339_SIZE 32
char *lss_time_rfc3339 (int64_t epoch_ms, char *out);
/*  Parses RFC 3339 (Z or ±hh:mm offset, optional fraction). Returns 0 or -1. */
int lss_time_parse_rfc3339 (const char *text, int64_t *epoch_ms);

/*  Fills out with len random bytes from the kernel (small amounts through a per-thread
 *  buffer of getrandom output). Returns 0 or -1. */
int lss_random_bytes (void *out, size_t len);
/*  Writes prefix + n random characters of [a-z0-9] + NUL into out (size out_size).
 *  Returns 0, or -1 if it does not fit or randomness failed. */
int lss_id_new (const char *prefix, size_t n, char *out, size_t out_size);

/*  For the processes that move output (api, executor, agent): blocks up to
 *  LSS_MALLOC_MMAP_MAX come from the heap and up to LSS_MALLOC_TRIM_KEEP of free heap
 *  is kept, instead of glibc's moving threshold (128 KiB at first) that maps, faults in
 *  and zeroes fresh pages for many of the 0.25-1.5 MiB output chunks and frames and
 *  hands them back when freed (bench_api stream: about 15 % more MB/s). */
#define LSS_MALLOC_MMAP_MAX  (4 << 20)
#define LSS_MALLOC_TRIM_KEEP (16 << 20)
void lss_malloc_for_streaming (void);

/*  Parses a whole decimal integer in [min, max]; no trailing junk. Returns 0 or -1. */
int lss_parse_int64 (const char *text, int64_t min, int64_t max, int64_t *out);

/*  Bounded growable byte buffer. */
typedef struct {
    uint8_t *data;
    size_t len;
    size_t cap; /* allocated */
    size_t max; /* hard limit on len */
} lss_buf_t;

/*  Initialises an empty buffer that will never hold more than max bytes. */
void lss_buf_init (lss_buf_t *self, size_t max);
/*  Appends len bytes; returns 0, or -1 (nothing appended) if it would pass max or
 *  allocation failed. */
int lss_buf_append (lss_buf_t *self, const void *data, size_t len);
/*  Appends as much as fits; returns the number of bytes appended. */
size_t lss_buf_append_some (lss_buf_t *self, const void *data, size_t len);
/*  Drops the first n bytes. */
void lss_buf_consume (lss_buf_t *self, size_t n);
void lss_buf_reset (lss_buf_t *self);
void lss_buf_free (lss_buf_t *self);

/*  Formats an error message into err (size bytes); does nothing if err is NULL or size
 *  is 0, so callers may pass an optional error buffer straight through. */
void lss_errf (char *err, size_t size, const char *fmt, ...)
    __attribute__ ((format (printf, 3, 4)));

/*  snprintf that reports truncation: returns 0 if it fit, -1 if not (out still NUL-ended). */
int lss_fmt (char *out, size_t size, const char *fmt, ...)
    __attribute__ ((format (printf, 3, 4)));

/*  Splits a listen address "host:port" (host may be "[v6]"; "" or "*" means every
 *  interface and gives host ""). Port 0..65535. Returns 0, or -1 if malformed or host does
 *  not fit host_size. */
int lss_listen_parse (const char *listen, char *host, size_t host_size, int *port);
/*  Resolves host to its first IPv4 or IPv6 address in numeric form (out, at least
 *  INET6_ADDRSTRLEN bytes); *ipv6 says which. Returns 0 or -1. */
int lss_resolve_numeric (const char *host, char *out, size_t out_size, bool *ipv6);

/*  Starts fn(arg) in a new thread with every signal blocked except the faults (SIGSEGV,
 *  SIGBUS, SIGFPE, SIGILL, SIGTRAP, SIGABRT, SIGSYS), so that signals sent to the process
 *  reach the thread that waits for them (the main thread's poll).
 *  The caller's mask is unchanged. Returns 0 or -1. */
int lss_thread_start (pthread_t *thread, void *(*fn) (void *), void *arg);

#endif
