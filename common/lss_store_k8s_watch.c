/*  lss_store_k8s_watch — a Kubernetes watch stream as an lss_store_watch_t.
 *
 *  Design note: one libcurl multi handle per watch, driven through its socket interface
 *  (CURLMOPT_SOCKETFUNCTION / CURLMOPT_TIMERFUNCTION): the sockets libcurl asks for and a
 *  timerfd for its timeouts are registered in one epoll descriptor, which is what
 *  lss_store_watch_fd hands out. It is readable whenever libcurl has work (data, a
 *  connect finishing, a timeout due), it stays the same across reconnects, and a
 *  service adds it to its zmq_poll like the PostgreSQL watch's socket. next never waits:
 *  it hands out complete lines already buffered, and otherwise does one non-blocking
 *  epoll_wait and lets libcurl act on what is ready (only reopening a stream waits, for
 *  the response headers, at most k8s.request_timeout).
 *
 *  The stream is one JSON object per line ({"type": ..., "object": ...}). ADDED,
 *  MODIFIED and DELETED are handed out; BOOKMARK only moves the resourceVersion; ERROR
 *  with code 410 (the resourceVersion was compacted) is LSS_STORE_GONE, any other ERROR,
 *  a malformed line, an event over S_LINE_MAX bytes, an object of another kind, or a
 *  broken connection is LSS_STORE_UNAVAILABLE (sticky; the caller watches again from
 *  lss_store_watch_rv, or relists after GONE). When the server ends a stream cleanly
 *  (its timeoutSeconds), next reopens it from the last resourceVersion; streams that
 *  keep ending at once without delivering anything (S_QUICK_ENDS in a row, each under
 *  S_QUICK_MS) are a failure instead of a busy loop. Memory is bounded: the buffer
 *  holds at most S_BUF_MAX bytes; when it is full of complete lines the transfer is
 *  paused (CURL_WRITEFUNC_PAUSE) until next has drained them.
 */
#include "lss_log.h"
#include "lss_store_k8s.h"
#include "lss_util.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/timerfd.h>
#include <unistd.h>

#define S_RV_MAX       128
#define S_LINE_MAX     (2 * LSS_STORE_OBJECT_MAX_BYTES + 65536) /* one event */
#define S_BUF_MAX      (S_LINE_MAX + 65536)
#define S_ERRBODY_MAX  65536 /* the Status body of a refused watch */
#define S_ROUNDS       64    /* lines or drives per next call */
#define S_EPOLL_EVENTS 8
#define S_QUICK_MS     500
#define S_QUICK_ENDS   3
#define S_GRACE_MS     30000 /* past timeoutSeconds before the client gives up */

typedef struct {
    lss_store_watch_t base; /* first: the handle callers hold */
    lss_k8s_client_t *client;
    const lss_store_kind_t *kind;
    char ns[LSS_STORE_NAMESPACE_MAX + 1]; /* "" = all namespaces (or cluster-scoped) */
    char rv[S_RV_MAX + 1];                /* last event or bookmark seen */
    CURLM *multi;
    CURL *easy; /* the current stream, NULL between streams */
    struct curl_slist *headers;
    int epfd, tfd;
    lss_buf_t buf;     /* bytes of the stream not parsed yet */
    lss_buf_t errbody; /* body of a non-200 answer */
    long status;       /* HTTP status of the stream (0 until known) */
    bool headers_done, done, paused, overflow;
    CURLcode result;
    int failed; /* sticky LSS_STORE_GONE / LSS_STORE_UNAVAILABLE */
    int quick_ends;
    bool delivered;    /* the current stream handed out an event or a bookmark */
    int64_t opened_ms; /* monotonic */
    char cerr[CURL_ERROR_SIZE];
} s_watch_t;

static const lss_store_watch_ops_t s_watch_ops;

/* ------------------------------------------------------------------ libcurl glue */

static int s_on_socket (CURL *easy, curl_socket_t fd, int what, void *arg, void *sockp)
{
    (void)easy;
    (void)sockp;
    s_watch_t *self = arg;
    if (what == CURL_POLL_REMOVE) {
        epoll_ctl (self->epfd, EPOLL_CTL_DEL, fd, NULL);
        return 0;
    }
    struct epoll_event ev = {0};
    ev.data.fd = fd;
    ev.events =
        ((what & CURL_POLL_IN) ? EPOLLIN : 0u) | ((what & CURL_POLL_OUT) ? EPOLLOUT : 0u);
    if (epoll_ctl (self->epfd, EPOLL_CTL_MOD, fd, &ev) != 0 && errno == ENOENT)
        epoll_ctl (self->epfd, EPOLL_CTL_ADD, fd, &ev);
    return 0;
}

static void s_arm (s_watch_t *self, long timeout_ms)
{
    struct itimerspec its = {0};
    if (timeout_ms == 0)
        its.it_value.tv_nsec = 1; /* now (0 would disarm) */
    else if (timeout_ms > 0) {
        its.it_value.tv_sec = timeout_ms / 1000;
        its.it_value.tv_nsec = (timeout_ms % 1000) * 1000000L;
    }
    timerfd_settime (self->tfd, 0, &its, NULL);
}

static int s_on_timer (CURLM *multi, long timeout_ms, void *arg)
{
    (void)multi;
    s_arm (arg, timeout_ms);
    return 0;
}

static size_t s_on_header (char *data, size_t size, size_t n, void *arg)
{
    s_watch_t *self = arg;
    size_t len = size * n;
    if ((len == 2 && data[0] == '\r' && data[1] == '\n') || (len == 1 && data[0] == '\n')) {
        curl_easy_getinfo (self->easy, CURLINFO_RESPONSE_CODE, &self->status);
        if (self->status >= 200) /* not an interim 1xx block */
            self->headers_done = true;
    }
    return len;
}

static size_t s_on_data (char *data, size_t size, size_t n, void *arg)
{
    s_watch_t *self = arg;
    size_t len = size * n;
    if (!self->status)
        curl_easy_getinfo (self->easy, CURLINFO_RESPONSE_CODE, &self->status);
    if (self->status != 200) {
        lss_buf_append_some (&self->errbody, data, len);
        return len;
    }
    if (self->buf.len + len > S_BUF_MAX) {
        if (self->buf.len && memchr (self->buf.data, '\n', self->buf.len)) {
            self->paused = true;
            return CURL_WRITEFUNC_PAUSE;
        }
        self->overflow = true;
        return 0;
    }
    if (lss_buf_append (&self->buf, data, len) != 0) {
        self->overflow = true;
        return 0;
    }
    return len;
}

/*  Lets libcurl act on ready descriptors: the events given, or (evs NULL) whatever a
 *  non-blocking epoll_wait reports. Returns true if anything was ready. */
static bool s_act (s_watch_t *self, struct epoll_event *evs, int n)
{
    struct epoll_event own[S_EPOLL_EVENTS];
    if (!evs) {
        evs = own;
        n = epoll_wait (self->epfd, own, S_EPOLL_EVENTS, 0);
    }
    int running = 0;
    for (int i = 0; i < n; i++) {
        if (evs[i].data.fd == self->tfd) {
            uint64_t ticks;
            if (read (self->tfd, &ticks, sizeof ticks) < 0 && errno != EAGAIN)
                continue;
            curl_multi_socket_action (self->multi, CURL_SOCKET_TIMEOUT, 0, &running);
        } else {
            int flags = ((evs[i].events & EPOLLIN) ? CURL_CSELECT_IN : 0) |
                        ((evs[i].events & EPOLLOUT) ? CURL_CSELECT_OUT : 0) |
                        ((evs[i].events & (EPOLLERR | EPOLLHUP)) ? CURL_CSELECT_ERR : 0);
            curl_multi_socket_action (self->multi, evs[i].data.fd, flags, &running);
        }
    }
    CURLMsg *msg;
    int left;
    while ((msg = curl_multi_info_read (self->multi, &left)))
        if (msg->msg == CURLMSG_DONE && msg->easy_handle == self->easy) {
            self->done = true;
            self->result = msg->data.result;
        }
    return n > 0;
}

static void s_close_stream (s_watch_t *self)
{
    if (self->easy) {
        curl_multi_remove_handle (self->multi, self->easy);
        curl_easy_cleanup (self->easy);
        self->easy = NULL;
    }
    curl_slist_free_all (self->headers);
    self->headers = NULL;
    s_arm (self, -1);
}

/* ------------------------------------------------------------------ streams */

/*  Starts a stream from self->rv and waits for its headers. */
static int s_open (s_watch_t *self, char *err, size_t err_size)
{
    const lss_k8s_conf_t *conf = lss_k8s_client_conf (self->client);
    int64_t timeout_s = conf->watch_timeout_ms / 1000;
    if (timeout_s < 1)
        timeout_s = 1;
    uint16_t r = 0;
    lss_random_bytes (&r, sizeof r);
    timeout_s += (int64_t)(r % (uint16_t)(timeout_s / 5 + 1)); /* up to +20% */
    char *rv = curl_easy_escape (NULL, self->rv, 0);
    char query[S_RV_MAX * 3 + 128], path[LSS_K8S_PATH_MAX] = "";
    int rc = rv ? lss_fmt (query, sizeof query,
                           "watch=true&allowWatchBookmarks=true&resourceVersion=%s"
                           "&timeoutSeconds=%lld",
                           rv, (long long)timeout_s)
                : -1;
    curl_free (rv);
    if (rc == 0)
        rc = lss_store_k8s_path (self->kind, self->ns, NULL, NULL, query, path, sizeof path);
    size_t used = strlen (path);
    if (rc == 0)
        rc = lss_fmt (path + used, sizeof path - used, "%s", query);
    if (rc != 0) {
        lss_errf (err, err_size, "k8s: watch path too long");
        return LSS_STORE_INVALID;
    }
    self->status = 0;
    self->headers_done = self->done = self->paused = self->overflow = self->delivered = false;
    self->result = CURLE_OK;
    self->cerr[0] = '\0';
    lss_buf_reset (&self->buf);
    lss_buf_reset (&self->errbody);
    if (!(self->easy = curl_easy_init ()) ||
        lss_k8s_client_setup (self->client, self->easy, path, &self->headers, err, err_size) !=
            0) {
        if (!self->easy)
            lss_errf (err, err_size, "k8s: out of memory");
        s_close_stream (self);
        return LSS_STORE_UNAVAILABLE;
    }
    curl_easy_setopt (self->easy, CURLOPT_HTTPHEADER, self->headers);
    curl_easy_setopt (self->easy, CURLOPT_WRITEFUNCTION, s_on_data);
    curl_easy_setopt (self->easy, CURLOPT_WRITEDATA, self);
    curl_easy_setopt (self->easy, CURLOPT_HEADERFUNCTION, s_on_header);
    curl_easy_setopt (self->easy, CURLOPT_HEADERDATA, self);
    curl_easy_setopt (self->easy, CURLOPT_ERRORBUFFER, self->cerr);
    curl_easy_setopt (self->easy, CURLOPT_TIMEOUT_MS,
                      (long)(timeout_s * 1000 +
                             (conf->timeout_ms > S_GRACE_MS ? conf->timeout_ms : S_GRACE_MS)));
    if (curl_multi_add_handle (self->multi, self->easy) != CURLM_OK) {
        s_close_stream (self);
        lss_errf (err, err_size, "k8s: cannot start the watch transfer");
        return LSS_STORE_UNAVAILABLE;
    }
    self->opened_ms = lss_time_mono_ms ();
    int64_t deadline = self->opened_ms + conf->timeout_ms;
    /* wait for the headers (and, for a refusal, its whole Status body) */
    while (!self->done && (!self->headers_done || self->status != 200)) {
        int64_t left = deadline - lss_time_mono_ms ();
        if (left <= 0)
            break;
        struct epoll_event evs[S_EPOLL_EVENTS];
        int n = epoll_wait (self->epfd, evs, S_EPOLL_EVENTS, left > 100 ? 100 : (int)left);
        if (n < 0 && errno != EINTR)
            break;
        s_act (self, evs, n > 0 ? n : 0);
    }
    char what[LSS_K8S_PATH_MAX + 16];
    lss_fmt (what, sizeof what, "GET %.200s", path);
    if (self->headers_done && self->status == 200)
        return LSS_STORE_OK;
    if (self->headers_done) {
        json_t *body =
            json_loadb ((const char *)self->errbody.data, self->errbody.len, 0, NULL);
        rc = lss_k8s_map_status (self->status, json_is_object (body) ? body : NULL, what, err,
                                 err_size);
        json_decref (body);
        if (rc == LSS_STORE_OK) /* a 2xx other than 200: not a watch stream */
            rc = LSS_STORE_UNAVAILABLE;
    } else {
        lss_errf (err, err_size, "%s: %s", what,
                  self->done ? (self->cerr[0] ? self->cerr : curl_easy_strerror (self->result))
                             : "no answer within k8s.request_timeout");
        rc = LSS_STORE_UNAVAILABLE;
    }
    lss_log (rc == LSS_STORE_GONE ? LSS_LOG_INFO : LSS_LOG_WARN, "kubernetes watch refused",
             "{s:s, s:s, s:i, s:s}", "verb", "GET", "path", path, "status", (int)self->status,
             "error", err ? err : "");
    s_close_stream (self);
    return rc;
}

static int s_fail (s_watch_t *self, int code, const char *why)
{
    self->failed = code;
    lss_log (code == LSS_STORE_GONE ? LSS_LOG_INFO : LSS_LOG_WARN,
             code == LSS_STORE_GONE ? "kubernetes watch expired" : "kubernetes watch failed",
             "{s:s, s:s, s:s, s:s}", "kind", self->kind->kind, "namespace", self->ns, "rv",
             self->rv, "error", why);
    s_close_stream (self);
    return code;
}

/*  The stream ended: reopen it after a clean end, else fail. */
static int s_stream_ended (s_watch_t *self)
{
    CURLcode result = self->result;
    char cerr[CURL_ERROR_SIZE];
    lss_fmt (cerr, sizeof cerr, "%s", self->cerr[0] ? self->cerr : curl_easy_strerror (result));
    bool quick = lss_time_mono_ms () - self->opened_ms < S_QUICK_MS && !self->delivered;
    s_close_stream (self);
    if (self->overflow)
        return s_fail (self, LSS_STORE_UNAVAILABLE, "an event larger than the line limit");
    if (result != CURLE_OK)
        return s_fail (self, LSS_STORE_UNAVAILABLE, cerr);
    if (self->buf.len > 0)
        return s_fail (self, LSS_STORE_UNAVAILABLE, "the stream ended inside an event");
    self->quick_ends = quick ? self->quick_ends + 1 : 0;
    if (self->quick_ends >= S_QUICK_ENDS)
        return s_fail (self, LSS_STORE_UNAVAILABLE, "the server keeps ending the stream");
    char err[LSS_STORE_ERR_SIZE] = "";
    int rc = s_open (self, err, sizeof err);
    if (rc != LSS_STORE_OK)
        return s_fail (self, rc == LSS_STORE_GONE ? rc : LSS_STORE_UNAVAILABLE, err);
    lss_log_debug ("kubernetes watch reopened", "{s:s, s:s}", "kind", self->kind->kind, "rv",
                   self->rv);
    return LSS_STORE_OK;
}

/*  Takes buffered complete lines until an event: 1 (ev filled), 0 (no complete line),
 *  or a failure code. */
static int s_take (s_watch_t *self, lss_store_event_t *ev)
{
    for (;;) {
        uint8_t *nl = self->buf.len ? memchr (self->buf.data, '\n', self->buf.len) : NULL;
        if (!nl)
            return self->buf.len > S_LINE_MAX
                       ? s_fail (self, LSS_STORE_UNAVAILABLE, "an event larger than the limit")
                       : 0;
        size_t len = (size_t)(nl - self->buf.data);
        if (len > S_LINE_MAX)
            return s_fail (self, LSS_STORE_UNAVAILABLE, "an event larger than the limit");
        json_error_t jerr;
        json_t *line = NULL;
        bool blank = true;
        for (size_t i = 0; i < len && blank; i++)
            blank = self->buf.data[i] == ' ' || self->buf.data[i] == '\r' ||
                    self->buf.data[i] == '\t';
        if (!blank)
            line =
                json_loadb ((const char *)self->buf.data, len, JSON_REJECT_DUPLICATES, &jerr);
        lss_buf_consume (&self->buf, len + 1);
        if (self->paused && self->buf.len < S_BUF_MAX / 2 && self->easy) {
            self->paused = false;
            curl_easy_pause (self->easy, CURLPAUSE_CONT); /* may call s_on_data at once */
        }
        if (blank)
            continue;
        const char *type = json_string_value (json_object_get (line, "type"));
        json_t *obj = json_object_get (line, "object");
        if (!line || !type || !json_is_object (obj)) {
            json_decref (line);
            return s_fail (self, LSS_STORE_UNAVAILABLE, "a malformed watch event");
        }
        if (strcmp (type, "ERROR") == 0) {
            json_int_t code = json_integer_value (json_object_get (obj, "code"));
            char why[LSS_STORE_ERR_SIZE];
            const char *msg = json_string_value (json_object_get (obj, "message"));
            lss_fmt (why, sizeof why, "ERROR %d: %.200s", (int)code, msg ? msg : "");
            json_decref (line);
            return s_fail (self, code == 410 ? LSS_STORE_GONE : LSS_STORE_UNAVAILABLE, why);
        }
        const char *rv = json_string_value (
            json_object_get (json_object_get (obj, "metadata"), "resourceVersion"));
        if (!rv || !rv[0] || strlen (rv) > S_RV_MAX) {
            json_decref (line);
            return s_fail (self, LSS_STORE_UNAVAILABLE,
                           "a watch event without resourceVersion");
        }
        lss_fmt (self->rv, sizeof self->rv, "%s", rv);
        self->delivered = true;
        int t = strcmp (type, "ADDED") == 0      ? LSS_STORE_ADDED
                : strcmp (type, "MODIFIED") == 0 ? LSS_STORE_MODIFIED
                : strcmp (type, "DELETED") == 0  ? LSS_STORE_DELETED
                : strcmp (type, "BOOKMARK") == 0 ? 0
                                                 : -1;
        if (t == 0) {
            json_decref (line);
            continue;
        }
        lss_store_k8s_fill_type (obj, self->kind);
        const char *kind = json_string_value (json_object_get (obj, "kind"));
        if (t < 0 || strcmp (kind, self->kind->kind) != 0 ||
            !json_is_string (json_object_get (json_object_get (obj, "metadata"), "name"))) {
            json_decref (line);
            return s_fail (self, LSS_STORE_UNAVAILABLE,
                           "a watch event of an unknown type, another kind or no name");
        }
        ev->type = (lss_store_event_type_t)t;
        ev->object = json_incref (obj);
        json_decref (line);
        return 1;
    }
}

static int s_next (lss_store_watch_t *base, lss_store_event_t *ev)
{
    s_watch_t *self = (s_watch_t *)base;
    ev->object = NULL;
    for (int round = 0; round < S_ROUNDS && !self->failed; round++) {
        int rc = s_take (self, ev);
        if (rc != 0)
            return rc;
        if (self->done) {
            if (s_stream_ended (self) != LSS_STORE_OK)
                break;
            continue;
        }
        if (!s_act (self, NULL, 0) && !self->done)
            return 0;
    }
    if (self->failed)
        return self->failed;
    /* out of rounds with work left: make the descriptor readable so the caller comes back */
    s_arm (self, 0);
    return 0;
}

static int s_fd (lss_store_watch_t *base)
{
    return ((s_watch_t *)base)->epfd;
}

static const char *s_rv (lss_store_watch_t *base)
{
    return ((s_watch_t *)base)->rv;
}

static void s_destroy (lss_store_watch_t *base)
{
    s_watch_t *self = (s_watch_t *)base;
    s_close_stream (self);
    if (self->multi)
        curl_multi_cleanup (self->multi);
    if (self->epfd >= 0)
        close (self->epfd);
    if (self->tfd >= 0)
        close (self->tfd);
    lss_buf_free (&self->buf);
    lss_buf_free (&self->errbody);
    lss_k8s_client_destroy (&self->client);
    free (self);
}

static const lss_store_watch_ops_t s_watch_ops = {
    .destroy = s_destroy,
    .fd = s_fd,
    .next = s_next,
    .rv = s_rv,
};

/*  The current resourceVersion of the kind's collection: a one-item list. */
static int s_current_rv (lss_k8s_client_t *client, const lss_store_kind_t *kind, const char *ns,
                         char *out, size_t size, char *err, size_t err_size)
{
    char path[LSS_K8S_PATH_MAX];
    if (lss_store_k8s_path (kind, ns, NULL, NULL, "limit=1", path, sizeof path) != 0 ||
        lss_fmt (path + strlen (path), sizeof path - strlen (path), "limit=1") != 0) {
        lss_errf (err, err_size, "k8s: path too long");
        return LSS_STORE_INVALID;
    }
    json_t *list = NULL;
    int rc = lss_k8s_client_request (client, "GET", path, NULL, NULL, &list, err, err_size);
    const char *rv = json_string_value (
        json_object_get (json_object_get (list, "metadata"), "resourceVersion"));
    if (rc == LSS_STORE_OK && (!rv || !rv[0] || lss_fmt (out, size, "%s", rv) != 0)) {
        lss_errf (err, err_size, "k8s: the list has no usable metadata.resourceVersion");
        rc = LSS_STORE_UNAVAILABLE;
    }
    json_decref (list);
    return rc;
}

lss_store_watch_t *lss_store_k8s_watch_new (lss_k8s_client_t *client,
                                            const lss_store_kind_t *kind, const char *ns,
                                            const char *from_rv, int *code, char *err,
                                            size_t err_size)
{
    int rc = LSS_STORE_OK;
    s_watch_t *self = calloc (1, sizeof *self);
    if (!self) {
        lss_errf (err, err_size, "store: out of memory");
        rc = LSS_STORE_UNAVAILABLE;
        goto fail;
    }
    self->base.ops = &s_watch_ops;
    self->epfd = self->tfd = -1;
    self->kind = kind;
    self->client = lss_k8s_client_ref (client);
    lss_buf_init (&self->buf, S_BUF_MAX);
    lss_buf_init (&self->errbody, S_ERRBODY_MAX);
    lss_fmt (self->ns, sizeof self->ns, "%s", kind->cluster_scoped || !ns ? "" : ns);
    bool from_now = !from_rv || !from_rv[0] || strcmp (from_rv, "0") == 0;
    if (from_now)
        rc = s_current_rv (client, kind, self->ns, self->rv, sizeof self->rv, err, err_size);
    else if (strlen (from_rv) > S_RV_MAX) {
        lss_errf (err, err_size, "resourceVersion: longer than %d bytes", S_RV_MAX);
        rc = LSS_STORE_INVALID;
    } else
        lss_fmt (self->rv, sizeof self->rv, "%s", from_rv);
    if (rc != LSS_STORE_OK)
        goto fail;
    self->epfd = epoll_create1 (EPOLL_CLOEXEC);
    self->tfd = timerfd_create (CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    self->multi = curl_multi_init ();
    struct epoll_event tev = {.events = EPOLLIN, .data.fd = self->tfd};
    if (self->epfd < 0 || self->tfd < 0 || !self->multi ||
        epoll_ctl (self->epfd, EPOLL_CTL_ADD, self->tfd, &tev) != 0) {
        lss_errf (err, err_size, "k8s: cannot set up the watch: %s", strerror (errno));
        rc = LSS_STORE_UNAVAILABLE;
        goto fail;
    }
    curl_multi_setopt (self->multi, CURLMOPT_SOCKETFUNCTION, s_on_socket);
    curl_multi_setopt (self->multi, CURLMOPT_SOCKETDATA, self);
    curl_multi_setopt (self->multi, CURLMOPT_TIMERFUNCTION, s_on_timer);
    curl_multi_setopt (self->multi, CURLMOPT_TIMERDATA, self);
    rc = s_open (self, err, err_size);
    if (rc != LSS_STORE_OK)
        goto fail;
    if (code)
        *code = LSS_STORE_OK;
    return &self->base;
fail:
    if (self)
        s_destroy (&self->base);
    if (code)
        *code = rc;
    return NULL;
}
