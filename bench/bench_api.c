/*  bench_api — lss-api end to end on a whole system started with `lss up` (private data
 *  directory under /tmp, a free loopback port, rate limits raised through LSS_API_RATE_*
 *  so the bench measures the service and not its limiter):
 *    create:   POST /sandboxes from the warm pool → 201 (the api answers once Running),
 *              and create + first POST /execute of `true` ("usable"), back to back (each
 *              while the previous one's teardown and the pool's refill run); the same
 *              create one at a time on a settled system: the previous sandbox gone, the
 *              pool at minSize, 500 ms quiet; the target is checked on it; cold for
 *              reference
 *    execute:  POST /sandboxes/{id}/execute of the command `true` and of the python code
 *              print(1): p50/p99 and executions/s at concurrency 1 and 16 (libcurl, one
 *              keep-alive connection per client thread)
 *    stream:   WebSocket /stream, four executions of 52 MB each to stdout, back to back:
 *              MB/s of output content received by the client (a minimal RFC 6455
 *              client over a socket) over the whole run (mb_per_s, the target) and over
 *              the time output was flowing (flowing_mb_per_s: each execution's first to
 *              last output frame, so without the programs' starts)
 *    get:      GET /sandboxes/{id} requests/s with wrk -t2 -c64 -d5s
 *  Prints one JSON object. Needs root and working sandboxes (skips otherwise), and wrk for
 *  the GET figure (reported as null without it).
 *  Targets (issue 5): warm create p50 < 10 ms; execute true p50 < 1.5 ms; GET >= 20k rps;
 *  streaming >= 500 MB/s.
 */
#include <arpa/inet.h>
#include <curl/curl.h>
#include <jansson.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include "lss_util.h"

#include "../tests/unit/lss_testproc.h"

#define N_WARM         20
#define N_COLD         5
#define N_IDLE         20 /* warm creates on a settled system */
#define IDLE_SETTLE_MS 500
#define N_EXEC_TRUE    500
#define N_EXEC_PY      100
#define CONC           16
#define PER_THREAD_T   50
#define PER_THREAD_PY  8
#define STREAM_BYTES   52000000LL /* per execution (under api.ws_max_output, 1 GiB) */
#define STREAM_RUNS    4          /* back to back on one connection: 208 MB */
#define STREAM_CPU     "2"        /* the stream's sandbox: resources.cpu */
#define UP_TIMEOUT_MS  180000

static char s_data[128], s_base[128], s_auth[256], s_key[160];
static pid_t s_up_pid;

static double s_now_ms (void)
{
    return (double)lss_time_mono_ns () / 1e6;
}

static int s_cmp (const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static json_t *s_stats (double *v, int n)
{
    if (n <= 0)
        return json_null ();
    qsort (v, (size_t)n, sizeof *v, s_cmp);
    return json_pack ("{s:f, s:f, s:i}", "p50_ms", v[n / 2], "p99_ms", v[(n * 99) / 100], "n",
                      n);
}

static double s_p50 (json_t *st)
{
    json_t *v = json_object_get (st, "p50_ms");
    return v ? json_real_value (v) : 1e9;
}

/* ------------------------------------------------------------------ HTTP (libcurl) */

typedef struct {
    CURL *h;
    struct curl_slist *hdr;
    char *buf;
    size_t len, cap;
} cl_t;

static size_t s_on_data (char *p, size_t size, size_t n, void *arg)
{
    cl_t *c = arg;
    size_t add = size * n;
    if (c->len + add + 1 > c->cap) {
        size_t cap = (c->len + add + 1) * 2;
        char *b = realloc (c->buf, cap);
        if (!b)
            return 0;
        c->buf = b;
        c->cap = cap;
    }
    memcpy (c->buf + c->len, p, add);
    c->len += add;
    c->buf[c->len] = '\0';
    return add;
}

static int cl_init (cl_t *c)
{
    memset (c, 0, sizeof *c);
    c->h = curl_easy_init ();
    if (!c->h)
        return -1;
    c->hdr = curl_slist_append (NULL, s_auth);
    c->hdr = curl_slist_append (c->hdr, "Content-Type: application/json");
    c->hdr = curl_slist_append (c->hdr, "Expect:");
    curl_easy_setopt (c->h, CURLOPT_HTTPHEADER, c->hdr);
    curl_easy_setopt (c->h, CURLOPT_WRITEFUNCTION, s_on_data);
    curl_easy_setopt (c->h, CURLOPT_WRITEDATA, c);
    curl_easy_setopt (c->h, CURLOPT_TCP_NODELAY, 1L);
    curl_easy_setopt (c->h, CURLOPT_TIMEOUT_MS, 60000L);
    curl_easy_setopt (c->h, CURLOPT_NOSIGNAL, 1L);
    return 0;
}

static void cl_fini (cl_t *c)
{
    curl_slist_free_all (c->hdr);
    if (c->h)
        curl_easy_cleanup (c->h);
    free (c->buf);
    memset (c, 0, sizeof *c);
}

/*  One request (body NULL = none); returns the HTTP status (0 on a transport failure);
 *  *out (may be NULL) gets the parsed JSON answer, the caller's. */
static long cl_req (cl_t *c, const char *method, const char *path, const char *body,
                    json_t **out)
{
    char url[512];
    snprintf (url, sizeof url, "%s%s", s_base, path);
    c->len = 0;
    curl_easy_setopt (c->h, CURLOPT_URL, url);
    curl_easy_setopt (c->h, CURLOPT_CUSTOMREQUEST, method);
    if (body) {
        curl_easy_setopt (c->h, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt (c->h, CURLOPT_POSTFIELDSIZE, (long)strlen (body));
    } else {
        curl_easy_setopt (c->h, CURLOPT_HTTPGET, 1L);
        curl_easy_setopt (c->h, CURLOPT_CUSTOMREQUEST, method);
    }
    long code = 0;
    if (curl_easy_perform (c->h) != CURLE_OK)
        return 0;
    curl_easy_getinfo (c->h, CURLINFO_RESPONSE_CODE, &code);
    if (out)
        *out = c->len ? json_loadb (c->buf, c->len, 0, NULL) : NULL;
    return code;
}

/* ------------------------------------------------------------------ lss up */

static bool s_file_has (const char *path, const char *needle)
{
    FILE *f = fopen (path, "r");
    char line[4096];
    bool found = false;
    while (f && !found && fgets (line, sizeof line, f))
        found = strstr (line, needle) != NULL;
    if (f)
        fclose (f);
    return found;
}

/*  Starts `lss up` on <s_data>/data with its output in <s_data>/up.out, waits for "LLMSafeSpace
 * is up" and reads the admin key. The environment: the caller's without LSS_* (except
 *  LSS_BUILD_DIR and LSS_ROOT), plus the raised rate limits. Returns the port or -1. */
static int s_up_start (void)
{
    snprintf (s_data, sizeof s_data, "/tmp/lss-bench-api-XXXXXX");
    if (!mkdtemp (s_data))
        return -1;
    chmod (s_data, 0711);
    int port = tp_free_port ();
    char bin[PATH_MAX], data[192], listen[64], out[192];
    tp_build_path (bin, sizeof bin, "bin/lss");
    snprintf (data, sizeof data, "%s/data", s_data);
    snprintf (listen, sizeof listen, "127.0.0.1:%d", port);
    snprintf (out, sizeof out, "%s/up.out", s_data);
    char *argv[] = {bin,    "up",          "--data-dir", data, "--listen",
                    listen, "--log-level", "warn",       NULL};
    char *envp[256];
    int n = 0;
    for (char **e = environ; *e && n < 240; e++)
        if (strncmp (*e, "LSS_", 4) != 0 || strncmp (*e, "LSS_BUILD_DIR=", 14) == 0 ||
            strncmp (*e, "LSS_ROOT=", 9) == 0)
            envp[n++] = *e;
    envp[n++] = "LSS_API_RATE_DEFAULT=100000000";
    envp[n++] = "LSS_API_RATE_CREATE_SANDBOX=100000000";
    envp[n++] = "LSS_API_RATE_EXECUTE_CODE=100000000";
    envp[n++] = "LSS_API_EXEC_MAX_OUTPUT=16Mi"; /* WebSocket output is capped by it too */
    envp[n] = NULL;
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init (&fa);
    posix_spawn_file_actions_addopen (&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen (&fa, 1, out, O_WRONLY | O_CREAT | O_APPEND, 0644);
    posix_spawn_file_actions_adddup2 (&fa, 1, 2);
    posix_spawnattr_t at;
    posix_spawnattr_init (&at);
    posix_spawnattr_setflags (&at, POSIX_SPAWN_SETSID);
    int rc = posix_spawn (&s_up_pid, bin, &fa, &at, argv, envp);
    posix_spawn_file_actions_destroy (&fa);
    posix_spawnattr_destroy (&at);
    if (rc) {
        s_up_pid = 0;
        return -1;
    }
    long long deadline = tp_now_ms () + UP_TIMEOUT_MS;
    while (!s_file_has (out, "LLMSafeSpace is up")) {
        if (tp_now_ms () > deadline || waitpid (s_up_pid, NULL, WNOHANG) == s_up_pid) {
            fprintf (stderr, "lss up did not come up (output in %s)\n", out);
            return -1;
        }
        usleep (50 * 1000);
    }
    char keyfile[224];
    snprintf (keyfile, sizeof keyfile, "%s/admin.key", data);
    FILE *f = fopen (keyfile, "r");
    if (!f || !fgets (s_key, sizeof s_key, f)) {
        if (f)
            fclose (f);
        return -1;
    }
    fclose (f);
    s_key[strcspn (s_key, "\r\n")] = '\0';
    snprintf (s_auth, sizeof s_auth, "Authorization: Bearer %s", s_key);
    snprintf (s_base, sizeof s_base, "http://127.0.0.1:%d/api/v1", port);
    return port;
}

/*  SIGINT (Ctrl-C), as a user stops it; SIGKILL to its session after 90 s. */
static void s_up_stop (void)
{
    if (s_up_pid > 0) {
        kill (s_up_pid, SIGINT);
        long long deadline = tp_now_ms () + 90000;
        while (waitpid (s_up_pid, NULL, WNOHANG) != s_up_pid) {
            if (tp_now_ms () > deadline) {
                fprintf (stderr, "lss up did not stop: SIGKILL\n");
                kill (-s_up_pid, SIGKILL);
                waitpid (s_up_pid, NULL, 0);
                break;
            }
            usleep (50 * 1000);
        }
        s_up_pid = 0;
    }
    if (s_data[0] && !getenv ("BENCH_API_KEEP")) {
        char cmd[256];
        snprintf (cmd, sizeof cmd, "rm -rf -- '%s'", s_data);
        char *argv[] = {"/bin/sh", "-c", cmd, NULL};
        tp_proc_t p;
        if (tp_spawn (&p, argv, NULL, false) == 0)
            tp_wait (&p, 60000);
    }
}

/* ------------------------------------------------------------------ sandboxes */

/*  An integer field of GET path's answer, or -1. */
static int64_t s_get_int (cl_t *c, const char *path, const char *field)
{
    json_t *o = NULL;
    long code = cl_req (c, "GET", path, NULL, &o);
    int64_t v = code == 200 ? json_integer_value (json_object_get (o, field)) : -1;
    json_decref (o);
    return v;
}

static int64_t s_pool_available (cl_t *c)
{
    return s_get_int (c, "/warmpools/python-default/status", "availablePods");
}

static int s_wait_pool (cl_t *c, int64_t want)
{
    long long deadline = tp_now_ms () + 60000;
    while (tp_now_ms () < deadline) {
        if (s_pool_available (c) >= want)
            return 0;
        usleep (10 * 1000);
    }
    fprintf (stderr, "warm pool python-default did not reach %lld available\n",
             (long long)want);
    return -1;
}

/*  POST /sandboxes; returns 0 with the id, *warm = answer's warmPool. */
static int s_create (cl_t *c, bool use_warm, char *id, size_t size, bool *warm)
{
    json_t *o = NULL;
    long code = cl_req (c, "POST", "/sandboxes",
                        use_warm ? "{\"runtime\":\"python:3.11\",\"timeout\":600}"
                                 : "{\"runtime\":\"python:3.11\",\"timeout\":600,"
                                   "\"useWarmPool\":false}",
                        &o);
    const char *v = json_string_value (json_object_get (o, "id"));
    int rc = -1;
    if (code == 201 && v) {
        snprintf (id, size, "%s", v);
        *warm = json_is_true (json_object_get (o, "warmPool"));
        rc = 0;
    } else
        fprintf (stderr, "POST /sandboxes: %ld %s\n", code, c->buf ? c->buf : "");
    json_decref (o);
    return rc;
}

static void s_delete (cl_t *c, const char *id)
{
    char path[128];
    snprintf (path, sizeof path, "/sandboxes/%s", id);
    cl_req (c, "DELETE", path, NULL, NULL);
}

/*  POST /execute; returns 0 when the execution completed (exit 0) and, if want is not
 *  NULL, its stdout equals want. */
static int s_execute (cl_t *c, const char *id, const char *body, const char *want)
{
    char path[128];
    snprintf (path, sizeof path, "/sandboxes/%s/execute", id);
    json_t *o = NULL;
    long code = cl_req (c, "POST", path, body, &o);
    const char *st = json_string_value (json_object_get (o, "status"));
    const char *out = json_string_value (json_object_get (o, "stdout"));
    int rc = code == 200 && st && strcmp (st, "completed") == 0 &&
                     (!want || (out && strcmp (out, want) == 0))
                 ? 0
                 : -1;
    if (rc)
        fprintf (stderr, "execute: HTTP %ld %.300s\n", code, c->buf ? c->buf : "");
    json_decref (o);
    return rc;
}

/*  Waits until GET /sandboxes/{id} answers 404 (its teardown is over). */
static int s_wait_gone (cl_t *c, const char *id)
{
    char path[128];
    snprintf (path, sizeof path, "/sandboxes/%s", id);
    long long deadline = tp_now_ms () + 60000;
    while (tp_now_ms () < deadline) {
        if (cl_req (c, "GET", path, NULL, NULL) == 404)
            return 0;
        usleep (20 * 1000);
    }
    fprintf (stderr, "sandbox %s still there after 60 s\n", id);
    return -1;
}

/*  Warm creates one at a time on a settled system: the previous sandbox gone, the pool
 *  back at minSize, then IDLE_SETTLE_MS for the refill's last writes. The back-to-back
 *  loop of s_bench_create measures the same create while the previous one's teardown and
 *  the pool's refill still run on the two cores. */
static json_t *s_bench_create_idle (cl_t *c)
{
    static double ms[N_IDLE];
    int n = 0, not_warm = 0;
    int64_t min = s_get_int (c, "/warmpools/python-default", "minSize");
    if (min < 1)
        min = 1;
    for (int i = -1; i < N_IDLE; i++) {
        char id[64];
        bool warm = false;
        if (s_wait_pool (c, min))
            return NULL;
        usleep (IDLE_SETTLE_MS * 1000);
        double t0 = s_now_ms ();
        if (s_create (c, true, id, sizeof id, &warm))
            return NULL;
        double t1 = s_now_ms ();
        s_delete (c, id);
        if (s_wait_gone (c, id))
            return NULL;
        if (i < 0)
            continue;
        if (!warm)
            not_warm++;
        else
            ms[n++] = t1 - t0;
    }
    if (n == 0)
        return NULL;
    json_t *r = s_stats (ms, n);
    json_object_set_new (r, "creates_not_served_warm", json_integer (not_warm));
    json_object_set_new (r, "pool_min_size", json_integer (min));
    return r;
}

static json_t *s_bench_create (cl_t *c)
{
    static double warm_ms[N_WARM], usable_ms[N_WARM], cold_ms[N_COLD];
    int warm_n = 0, not_warm = 0;
    for (int i = -2; i < N_WARM; i++) {
        char id[64];
        bool warm = false;
        if (s_wait_pool (c, 2))
            return NULL;
        double t0 = s_now_ms ();
        if (s_create (c, true, id, sizeof id, &warm))
            return NULL;
        double t1 = s_now_ms ();
        int r = s_execute (c, id, "{\"type\":\"command\",\"content\":\"true\"}", NULL);
        double t2 = s_now_ms ();
        s_delete (c, id);
        if (r) {
            fprintf (stderr, "first execute in %s failed\n", id);
            return NULL;
        }
        if (i < 0)
            continue;
        if (!warm) {
            not_warm++;
            continue;
        }
        warm_ms[warm_n] = t1 - t0;
        usable_ms[warm_n++] = t2 - t0;
    }
    for (int i = 0; i < N_COLD; i++) {
        char id[64];
        bool warm = true;
        double t0 = s_now_ms ();
        if (s_create (c, false, id, sizeof id, &warm))
            return NULL;
        cold_ms[i] = s_now_ms () - t0;
        s_delete (c, id);
    }
    return json_pack ("{s:o, s:o, s:i, s:o}", "warm_create_201", s_stats (warm_ms, warm_n),
                      "warm_create_and_first_exec", s_stats (usable_ms, warm_n),
                      "creates_not_served_warm", not_warm, "cold_create_201",
                      s_stats (cold_ms, N_COLD));
}

/* ------------------------------------------------------------------ executions */

typedef struct {
    const char *id, *body, *want;
    int n;
    double *ms;
    int errors;
} exec_job_t;

static void *s_exec_thread (void *arg)
{
    exec_job_t *j = arg;
    cl_t c;
    if (cl_init (&c)) {
        j->errors = j->n;
        return NULL;
    }
    for (int i = 0; i < j->n; i++) {
        double t0 = s_now_ms ();
        if (s_execute (&c, j->id, j->body, j->want))
            j->errors++;
        j->ms[i] = s_now_ms () - t0;
    }
    cl_fini (&c);
    return NULL;
}

/*  threads clients each running per executions back to back (after a short warm-up on
 *  one connection); latency stats, executions/s and errors. */
static json_t *s_exec_run (const char *id, const char *body, const char *want, int threads,
                           int per)
{
    exec_job_t jobs[CONC];
    pthread_t tid[CONC];
    double *all = calloc ((size_t)(threads * per), sizeof *all);
    if (!all)
        return NULL;
    cl_t c;
    cl_init (&c);
    for (int i = 0; i < 10; i++)
        s_execute (&c, id, body, want);
    cl_fini (&c);
    double t0 = s_now_ms ();
    for (int t = 0; t < threads; t++) {
        jobs[t] =
            (exec_job_t){.id = id, .body = body, .want = want, .n = per, .ms = all + t * per};
        pthread_create (&tid[t], NULL, s_exec_thread, &jobs[t]);
    }
    int errors = 0;
    for (int t = 0; t < threads; t++) {
        pthread_join (tid[t], NULL);
        errors += jobs[t].errors;
    }
    double secs = (s_now_ms () - t0) / 1000.0;
    json_t *r = s_stats (all, threads * per);
    json_object_set_new (r, "concurrency", json_integer (threads));
    json_object_set_new (r, "executions_per_s", json_real (threads * per / secs));
    json_object_set_new (r, "errors", json_integer (errors));
    free (all);
    return r;
}

/*  Sequential GETs on one keep-alive connection: p50/p99 of a route (want: status). */
static json_t *s_get_latency (cl_t *c, const char *path, long want, int n)
{
    double *ms = calloc ((size_t)n, sizeof *ms);
    if (!ms)
        return NULL;
    int errors = 0;
    for (int i = -10; i < n; i++) {
        double t0 = s_now_ms ();
        long code = cl_req (c, "GET", path, NULL, NULL);
        if (i >= 0) {
            ms[i] = s_now_ms () - t0;
            errors += code != want;
        }
    }
    json_t *r = s_stats (ms, n);
    json_object_set_new (r, "errors", json_integer (errors));
    free (ms);
    return r;
}

/* ------------------------------------------------------------------ WebSocket */

static int s_write_all (int fd, const void *p, size_t n)
{
    const char *b = p;
    while (n > 0) {
        ssize_t w = write (fd, b, n);
        if (w <= 0)
            return -1;
        b += w;
        n -= (size_t)w;
    }
    return 0;
}

/*  Sends one masked client frame (opcode 1 text, 10 pong). */
static int s_ws_send (int fd, int opcode, const char *data, size_t len)
{
    unsigned char h[14];
    size_t hl = 0;
    h[hl++] = (unsigned char)(0x80 | opcode);
    if (len < 126)
        h[hl++] = (unsigned char)(0x80 | len);
    else if (len < 65536) {
        h[hl++] = 0x80 | 126;
        h[hl++] = (unsigned char)(len >> 8);
        h[hl++] = (unsigned char)len;
    } else {
        h[hl++] = 0x80 | 127;
        for (int i = 7; i >= 0; i--)
            h[hl++] = (unsigned char)((uint64_t)len >> (8 * i));
    }
    unsigned char mask[4];
    lss_random_bytes (mask, sizeof mask);
    memcpy (h + hl, mask, 4);
    hl += 4;
    unsigned char *m = malloc (len ? len : 1);
    if (!m)
        return -1;
    for (size_t i = 0; i < len; i++)
        m[i] = (unsigned char)data[i] ^ mask[i & 3];
    int rc = s_write_all (fd, h, hl) || s_write_all (fd, m, len) ? -1 : 0;
    free (m);
    return rc;
}

typedef struct {
    int fd;
    unsigned char *buf;
    size_t len, cap, off;
} ws_t;

/*  Makes sure at least n unread bytes are buffered. */
static int s_ws_need (ws_t *w, size_t n)
{
    if (w->len - w->off >= n)
        return 0;
    if (w->off) {
        memmove (w->buf, w->buf + w->off, w->len - w->off);
        w->len -= w->off;
        w->off = 0;
    }
    if (n > w->cap) {
        unsigned char *b = realloc (w->buf, n * 2);
        if (!b)
            return -1;
        w->buf = b;
        w->cap = n * 2;
    }
    while (w->len < n) {
        ssize_t r = read (w->fd, w->buf + w->len, w->cap - w->len);
        if (r <= 0)
            return -1;
        w->len += (size_t)r;
    }
    return 0;
}

/*  Type of a server text message and, for output, the length of its content string. */
static void s_ws_scan (const char *m, size_t len, char *type, size_t tsize, int64_t *content)
{
    *content = 0;
    type[0] = '\0';
    const char *t = memmem (m, len, "\"type\":\"", 8);
    if (t) {
        t += 8;
        const char *e = memchr (t, '"', len - (size_t)(t - m));
        if (e)
            snprintf (type, tsize, "%.*s", (int)(e - t), t);
    }
    const char *c = memmem (m, len, "\"content\":\"", 11);
    if (c && strcmp (type, "output") == 0) {
        c += 11;
        const char *e = c;
        size_t left = len - (size_t)(c - m);
        while ((e = memchr (e, '"', left - (size_t)(e - c))) && e[-1] == '\\')
            e++;
        if (e)
            *content = e - c;
    }
}

static json_t *s_bench_stream (int port, const char *id)
{
    int fd = socket (AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons ((uint16_t)port)};
    a.sin_addr.s_addr = htonl (INADDR_LOOPBACK);
    int one = 1, rcvbuf = 4 << 20;
    setsockopt (fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    setsockopt (fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
    struct timeval tv = {60, 0};
    setsockopt (fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    ws_t w = {.fd = fd};
    json_t *res = NULL;
    if (connect (fd, (struct sockaddr *)&a, sizeof a)) {
        close (fd);
        return NULL;
    }
    char req[1024];
    int n = snprintf (req, sizeof req,
                      "GET /api/v1/sandboxes/%s/stream HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n"
                      "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                      "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                      "Sec-WebSocket-Version: 13\r\n%s\r\n\r\n",
                      id, port, s_auth);
    if (n < 0 || (size_t)n >= sizeof req || s_write_all (fd, req, (size_t)n))
        goto done;
    /* the handshake answer, up to its blank line */
    for (;;) {
        if (s_ws_need (&w, w.len - w.off + 1))
            goto done;
        unsigned char *e = memmem (w.buf, w.len, "\r\n\r\n", 4);
        if (e) {
            if (w.len < 12 || memcmp (w.buf + 9, "101", 3) != 0) {
                fprintf (stderr, "WebSocket upgrade refused: %.*s\n", (int)(e - w.buf), w.buf);
                goto done;
            }
            w.off = (size_t)(e - w.buf) + 4;
            break;
        }
    }
    int64_t content = 0, wire = 0, frames = 0;
    double first = 0, flowing_ms = 0; /* flowing: first to last output of each execution */
    int exit_bad = 0, truncated = 0;
    unsigned char *msg = NULL;
    size_t mlen = 0, mcap = 0;
    double t0 = s_now_ms ();
    for (int k = 0; k < STREAM_RUNS; k++) {
        char cmd[128], xid[32];
        snprintf (cmd, sizeof cmd, "head -c %lld /dev/zero | tr '\\0' a", STREAM_BYTES);
        snprintf (xid, sizeof xid, "stream-%d", k);
        json_t *ex = json_pack ("{s:s, s:s, s:s, s:s, s:i}", "type", "execute", "executionId",
                                xid, "mode", "command", "content", cmd, "timeout", 300);
        char *text = json_dumps (ex, JSON_COMPACT);
        json_decref (ex);
        double ts = s_now_ms ();
        int sr = text ? s_ws_send (fd, 1, text, strlen (text)) : -1;
        free (text);
        if (sr)
            break;
        bool end = false;
        double out_first = 0, out_last = 0;
        while (!end) {
            if (s_ws_need (&w, 2))
                break;
            unsigned char *h = w.buf + w.off;
            int fin = h[0] & 0x80, op = h[0] & 0x0f;
            uint64_t len = h[1] & 0x7f;
            size_t hl = 2;
            if (len == 126) {
                if (s_ws_need (&w, 4))
                    break;
                h = w.buf + w.off;
                len = ((uint64_t)h[2] << 8) | h[3];
                hl = 4;
            } else if (len == 127) {
                if (s_ws_need (&w, 10))
                    break;
                h = w.buf + w.off;
                len = 0;
                for (int i = 0; i < 8; i++)
                    len = (len << 8) | h[2 + i];
                hl = 10;
            }
            if (len > (64u << 20) || s_ws_need (&w, hl + len))
                break;
            unsigned char *p = w.buf + w.off + hl;
            w.off += hl + len;
            wire += (int64_t)(hl + len);
            if (op == 9) { /* ping */
                s_ws_send (fd, 10, (const char *)p, len);
                continue;
            }
            if (op == 8)
                break;
            if (op != 0 && op != 1 && op != 2)
                continue;
            if (mlen + len > mcap) {
                size_t cap = (mlen + len) * 2;
                unsigned char *b = realloc (msg, cap);
                if (!b)
                    break;
                msg = b;
                mcap = cap;
            }
            memcpy (msg + mlen, p, len);
            mlen += len;
            if (!fin)
                continue;
            char type[64];
            int64_t got;
            s_ws_scan ((const char *)msg, mlen, type, sizeof type, &got);
            frames++;
            if (strcmp (type, "output") == 0) {
                out_last = s_now_ms ();
                if (!out_first)
                    out_first = out_last;
                if (k == 0 && !first)
                    first = out_first - ts;
                content += got;
            } else if (strcmp (type, "execution_complete") == 0) {
                json_t *o = json_loadb ((const char *)msg, mlen, 0, NULL);
                exit_bad += json_integer_value (json_object_get (o, "exitCode")) != 0;
                truncated += json_is_true (json_object_get (o, "stdoutTruncated"));
                json_decref (o);
                end = true;
            } else if (strcmp (type, "error") == 0) {
                fprintf (stderr, "stream error frame: %.*s\n", (int)(mlen > 300 ? 300 : mlen),
                         msg);
                exit_bad++;
                end = true;
            }
            mlen = 0;
        }
        flowing_ms += out_last - out_first;
        if (!end)
            break;
    }
    free (msg);
    double secs = (s_now_ms () - t0) / 1000.0;
    res = json_pack (
        "{s:i, s:I, s:I, s:I, s:I, s:i, s:i, s:f, s:f, s:f, s:f, s:f}", "executions",
        STREAM_RUNS, "bytes_asked", (json_int_t)(STREAM_BYTES * STREAM_RUNS), "content_bytes",
        (json_int_t)content, "wire_bytes", (json_int_t)wire, "messages", (json_int_t)frames,
        "failed", exit_bad, "truncated", truncated, "seconds", secs, "first_output_ms", first,
        "mb_per_s", content / 1e6 / secs, "wire_mb_per_s", wire / 1e6 / secs,
        "flowing_mb_per_s", flowing_ms > 0 ? content / 1e6 / (flowing_ms / 1000.0) : 0.0);
    if (content != STREAM_BYTES * STREAM_RUNS)
        fprintf (stderr, "stream: %lld of %lld bytes arrived\n", (long long)content,
                 STREAM_BYTES * STREAM_RUNS);
done:
    free (w.buf);
    close (fd);
    return res;
}

/* ------------------------------------------------------------------ wrk */

/*  wrk -t2 -c64 -d5s on base + path (with the key unless anonymous). */
static json_t *s_wrk (const char *path, bool anonymous)
{
    char cmd[1024], line[512];
    if (access ("/usr/bin/wrk", X_OK) != 0)
        return json_pack ("{s:n, s:s}", "requests_per_s", "note", "wrk not installed");
    snprintf (cmd, sizeof cmd, "wrk -t2 -c64 -d5s %s%s%s '%s%s' 2>&1", anonymous ? "" : "-H '",
              anonymous ? "" : s_auth, anonymous ? "" : "'", s_base, path);
    FILE *p = popen (cmd, "r");
    if (!p)
        return NULL;
    double rps = -1;
    long non2xx = 0;
    char latency[64] = "";
    while (fgets (line, sizeof line, p)) {
        if (strncmp (line, "Requests/sec:", 13) == 0)
            rps = strtod (line + 13, NULL);
        else if (strstr (line, "Non-2xx or 3xx responses:"))
            non2xx = strtol (strchr (line, ':') + 1, NULL, 10);
        else if (strstr (line, "Latency") && !latency[0]) {
            char *s = line + strspn (line, " \t");
            s[strcspn (s, "\n")] = '\0';
            snprintf (latency, sizeof latency, "%s", s);
        }
    }
    pclose (p);
    fprintf (stderr, "wrk %s: %.0f requests/s\n", path, rps);
    return json_pack ("{s:f, s:i, s:s}", "requests_per_s", rps, "non_2xx", (int)non2xx,
                      "wrk_latency_avg_stdev_max", latency);
}

/* ------------------------------------------------------------------ main */

/*  BENCH_API_PARTS (comma-separated: create, execute, stream, get; default all) picks
 *  what runs, e.g. to profile one figure. */
static bool s_part (const char *name)
{
    const char *parts = getenv ("BENCH_API_PARTS");
    if (!parts || !*parts)
        return true;
    size_t n = strlen (name);
    for (const char *p = parts; (p = strstr (p, name)); p += n)
        if ((p == parts || p[-1] == ',') && (p[n] == ',' || p[n] == '\0'))
            return true;
    return false;
}

int main (void)
{
    if (!tp_sandboxes_work ()) {
        puts ("{\"skipped\":\"needs root and working sandboxes (lss sandbox preflight)\"}");
        return 0;
    }
    signal (SIGPIPE, SIG_IGN);
    curl_global_init (CURL_GLOBAL_DEFAULT);
    int rc = 1;
    json_t *out = json_object ();
    cl_t c = {0};
    char id[64] = "";
    int port = s_up_start ();
    if (port < 0 || cl_init (&c))
        goto cleanup;
    double warm_p50 = 1e9, b2b_p50 = 1e9, true_p50 = 1e9, mbps = 0, rps = 0;
    if (s_part ("create")) {
        json_t *create = s_bench_create (&c);
        if (!create)
            goto cleanup;
        json_object_set_new (out, "create", create);
        b2b_p50 = s_p50 (json_object_get (create, "warm_create_201"));
        json_t *idle = s_bench_create_idle (&c);
        if (!idle)
            goto cleanup;
        json_object_set_new (create, "warm_create_201_settled", idle);
        warm_p50 = s_p50 (idle);
        fprintf (stderr, "warm create p50 %.2f ms settled, %.2f ms back to back\n", warm_p50,
                 b2b_p50);
    }
    bool warm;
    if (s_create (&c, true, id, sizeof id, &warm))
        goto cleanup;
    if (s_part ("execute")) {
        const char *b_true = "{\"type\":\"command\",\"content\":\"true\"}";
        const char *b_py =
            "{\"type\":\"code\",\"language\":\"python\",\"content\":\"print(1)\"}";
        json_t *ex = json_object ();
        json_object_set_new (out, "execute", ex);
        json_t *t1 = s_exec_run (id, b_true, NULL, 1, N_EXEC_TRUE);
        json_object_set_new (ex, "true_c1", t1);
        json_object_set_new (ex, "true_c16", s_exec_run (id, b_true, NULL, CONC, PER_THREAD_T));
        json_object_set_new (ex, "python_c1", s_exec_run (id, b_py, "1\n", 1, N_EXEC_PY));
        json_object_set_new (ex, "python_c16",
                             s_exec_run (id, b_py, "1\n", CONC, PER_THREAD_PY));
        true_p50 = s_p50 (t1);
        fprintf (stderr, "execute true p50 %.2f ms\n", true_p50);
        /* where an execute's time goes: the same connection on routes doing less.
         * /health: HTTP alone; /user: + authentication, rate limit, a worker;
         * /sandboxes/{id}: + the sandbox read; execute: + bridge, executor, agent */
        char path[128];
        snprintf (path, sizeof path, "/sandboxes/%s", id);
        json_t *bd = json_object ();
        json_object_set_new (bd, "get_health", s_get_latency (&c, "/health", 200, 500));
        json_object_set_new (bd, "get_user", s_get_latency (&c, "/user", 200, 500));
        json_object_set_new (bd, "get_sandbox", s_get_latency (&c, path, 200, 500));
        json_object_set_new (ex, "c1_breakdown", bd);
    }
    if (s_part ("stream")) {
        /* The program (head | tr) and the agent run inside the sandbox's CPU quota: in the
         * default sandbox (0.5 CPU) the quota throttles them well below what the output
         * path carries (cpu.stat: throttled in 8 of 12 periods at 128 MB/s), so the
         * headline figure uses a sandbox of 2 CPUs; the default sandbox's figure is kept
         * beside it. */
        json_t *o = NULL;
        char big[64] = "";
        long code = cl_req (&c, "POST", "/sandboxes",
                            "{\"runtime\":\"python:3.11\",\"timeout\":600,"
                            "\"useWarmPool\":false,\"resources\":{\"cpu\":\"" STREAM_CPU "\"}}",
                            &o);
        const char *v = json_string_value (json_object_get (o, "id"));
        if (code == 201 && v)
            snprintf (big, sizeof big, "%s", v);
        else
            fprintf (stderr, "POST /sandboxes (cpu " STREAM_CPU "): %ld %s\n", code,
                     c.buf ? c.buf : "");
        json_decref (o);
        json_t *st = big[0] ? s_bench_stream (port, big) : NULL;
        if (st)
            json_object_set_new (st, "sandbox_cpu", json_string (STREAM_CPU));
        json_object_set_new (out, "stream", st ? st : json_null ());
        mbps = st ? json_real_value (json_object_get (st, "mb_per_s")) : 0;
        fprintf (stderr, "stream %.1f MB/s (sandbox of %s CPUs)\n", mbps, STREAM_CPU);
        if (big[0])
            s_delete (&c, big);
        json_t *sd = s_bench_stream (port, id);
        json_object_set_new (out, "stream_default_sandbox", sd ? sd : json_null ());
        fprintf (stderr, "stream %.1f MB/s (default sandbox)\n",
                 sd ? json_real_value (json_object_get (sd, "mb_per_s")) : 0);
    }
    if (s_part ("get")) {
        char path[128];
        snprintf (path, sizeof path, "/sandboxes/%s", id);
        json_t *get = s_wrk (path, false);
        json_object_set_new (out, "get_sandbox", get ? get : json_null ());
        /* the same load on cheaper routes, to see where a GET's time goes: /health is the
         * HTTP layer alone (no worker, no Redis, no PostgreSQL); /user adds authentication
         * and the rate limit */
        json_t *health = s_wrk ("/health", true), *user = s_wrk ("/user", false);
        json_object_set_new (out, "get_health", health ? health : json_null ());
        json_object_set_new (out, "get_user", user ? user : json_null ());
        rps = get ? json_real_value (json_object_get (get, "requests_per_s")) : 0;
    }
    json_object_set_new (out, "targets",
                         json_pack ("{s:s, s:s, s:s, s:s, s:s}", "warm_create",
                                    "warm create p50 < 10 ms (create.warm_create_201_settled)",
                                    "warm_create_back_to_back",
                                    "the same for create.warm_create_201", "execute_true",
                                    "execute true p50 < 1.5 ms", "get", "GET >= 20000 rps",
                                    "stream", "streaming >= 500 MB/s"));
    json_object_set_new (out, "target_met",
                         json_pack ("{s:b, s:b, s:b, s:b, s:b}", "warm_create", warm_p50 < 10.0,
                                    "warm_create_back_to_back", b2b_p50 < 10.0, "execute_true",
                                    true_p50 < 1.5, "get", rps >= 20000.0, "stream",
                                    mbps >= 500.0));
    char *text = json_dumps (out, JSON_COMPACT);
    puts (text);
    free (text);
    rc = 0;
cleanup:
    if (id[0])
        s_delete (&c, id);
    cl_fini (&c);
    json_decref (out);
    s_up_stop ();
    curl_global_cleanup ();
    return rc;
}
