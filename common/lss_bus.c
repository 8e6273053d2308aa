/*  lss_bus — bus sockets with explicit limits, envelopes, send/receive. See lss_bus.h.
 *
 *  Send and receive go straight to libzmq with zmq_msg_t (no zmsg/zframe allocations on
 *  the hot path); the encoded buffer is handed to ZeroMQ without a copy.
 */
#include "lss_bus.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include "lss_log.h"
#include "lss_util.h"

void lss_bus_opts_default (lss_bus_opts_t *opts)
{
    *opts = (lss_bus_opts_t){
        .sndhwm = 10000,
        .rcvhwm = 10000,
        .linger_ms = 1000,
        .reconnect_ivl_ms = 100,
        .reconnect_ivl_max_ms = 5000,
        .heartbeat_ivl_ms = 2000,
        .heartbeat_timeout_ms = 6000,
        .max_message = 4 << 20,
        .resolve_interval_ms = 10000,
    };
}

zsock_t *lss_bus_socket_new (int type, const char *endpoints, const lss_bus_opts_t *opts)
{
    lss_bus_opts_t defaults;
    if (!opts) {
        lss_bus_opts_default (&defaults);
        opts = &defaults;
    }
    zsock_t *sock = zsock_new (type);
    if (!sock) {
        lss_log_error ("cannot create socket", "{s:s}", "error", zmq_strerror (zmq_errno ()));
        return NULL;
    }
    zsock_set_sndhwm (sock, opts->sndhwm);
    zsock_set_rcvhwm (sock, opts->rcvhwm);
    zsock_set_linger (sock, opts->linger_ms);
    zsock_set_reconnect_ivl (sock, opts->reconnect_ivl_ms);
    zsock_set_reconnect_ivl_max (sock, opts->reconnect_ivl_max_ms);
    zsock_set_heartbeat_ivl (sock, opts->heartbeat_ivl_ms);
    zsock_set_heartbeat_timeout (sock, opts->heartbeat_timeout_ms);
    zsock_set_heartbeat_ttl (sock, opts->heartbeat_timeout_ms);
    zsock_set_maxmsgsize (sock, opts->max_message);
    if (type == ZMQ_ROUTER)
        zsock_set_router_mandatory (sock, 1); /* unknown peer → EHOSTUNREACH, not silence */
    if (endpoints && strstr (endpoints, "tcp://["))
        zsock_set_ipv6 (sock, 1); /* a bracketed IPv6 address (e.g. found by lss_discovery) */
    bool serverish =
        type == ZMQ_PUB || type == ZMQ_ROUTER || type == ZMQ_XPUB || type == ZMQ_REP;
    if (endpoints && *endpoints && zsock_attach (sock, endpoints, serverish) != 0) {
        lss_log_error ("cannot attach socket", "{s:s, s:s}", "endpoints", endpoints, "error",
                       zmq_strerror (zmq_errno ()));
        zsock_destroy (&sock);
        return NULL;
    }
    return sock;
}

static char s_id_prefix[12];
static atomic_uint_fast64_t s_id_counter;
static pthread_once_t s_id_once = PTHREAD_ONCE_INIT;

static void s_id_init (void)
{
    if (lss_id_new ("", 8, s_id_prefix, sizeof s_id_prefix))
        snprintf (s_id_prefix, sizeof s_id_prefix, "p%07d", (int)getpid () % 10000000);
}

void lss_bus_next_id (char out[LSS_PROTO_ID_MAX + 1])
{
    pthread_once (&s_id_once, s_id_init);
    uint64_t n = atomic_fetch_add (&s_id_counter, 1) + 1;
    char digits[16];
    int i = sizeof digits;
    do {
        digits[--i] = "0123456789abcdefghijklmnopqrstuvwxyz"[n % 36];
        n /= 36;
    } while (n && i > 0);
    size_t plen = strlen (s_id_prefix), dlen = sizeof digits - (size_t)i;
    memcpy (out, s_id_prefix, plen); /* 8 + 1 + at most 13: fits LSS_PROTO_ID_MAX */
    out[plen] = '-';
    memcpy (out + plen + 1, digits + i, dlen);
    out[plen + 1 + dlen] = '\0';
}

/* Copies src (NULL = "") into a buffer of size, truncating. Cheaper than snprintf on the
 * per-message path. */
static void s_copy (char *dst, size_t size, const char *src)
{
    size_t n = src ? strnlen (src, size - 1) : 0;
    memcpy (dst, src ? src : "", n);
    dst[n] = '\0';
}

int lss_bus_envelope_init (lss_envelope_t *env, lss_msg_kind_t kind, const char *type,
                           const char *src, uint64_t seq, const char *trace)
{
    if (!type)
        type = lss_proto_type_name (kind);
    if (!type || strlen (type) > LSS_PROTO_TYPE_MAX)
        return -1;
    env->v = LSS_PROTO_VERSION;
    memcpy (env->type, type, strlen (type) + 1);
    lss_bus_next_id (env->id);
    s_copy (env->src, sizeof env->src, src);
    env->seq = seq;
    env->ts = lss_time_now_ms ();
    s_copy (env->trace, sizeof env->trace, trace ? trace : lss_log_trace ());
    return 0;
}

static void s_free_buf (void *data, void *hint)
{
    (void)hint;
    free (data);
}

int lss_bus_send (zsock_t *sock, const void *route, size_t route_len, const char *topic,
                  const lss_envelope_t *env, lss_msg_kind_t kind, const void *body)
{
    uint8_t *buf;
    size_t len;
    if (lss_proto_encode (env, kind, body, &buf, &len)) {
        lss_log_error ("refusing to send an invalid message", "{s:s}", "type", env->type);
        errno = EINVAL;
        return -1;
    }
    void *handle = zsock_resolve (sock);
    int flags = ZMQ_DONTWAIT;
    if (route) {
        if (zmq_send (handle, route, route_len, flags | ZMQ_SNDMORE) < 0)
            goto fail;
    } else if (topic) {
        if (zmq_send (handle, topic, strlen (topic), flags | ZMQ_SNDMORE) < 0)
            goto fail;
    }
    zmq_msg_t msg;
    if (zmq_msg_init_data (&msg, buf, len, s_free_buf, NULL)) {
        free (buf);
        return -1;
    }
    if (zmq_msg_send (&msg, handle, flags) < 0) {
        zmq_msg_close (&msg); /* frees buf */
        return -1;
    }
    return 0;
fail:
    free (buf);
    return -1;
}

static void s_drain (void *handle)
{
    int more = 1;
    size_t size = sizeof more;
    while (zmq_getsockopt (handle, ZMQ_RCVMORE, &more, &size) == 0 && more) {
        zmq_msg_t skip;
        zmq_msg_init (&skip);
        if (zmq_msg_recv (&skip, handle, 0) < 0)
            more = 0;
        zmq_msg_close (&skip);
    }
}

int lss_bus_recv (zsock_t *sock, zframe_t **route, char *topic, size_t topic_size,
                  lss_envelope_t *env, lss_msg_kind_t *kind, void **body, char *err,
                  size_t err_size)
{
    void *handle = zsock_resolve (sock);
    int type = zsock_type (sock);
    *kind = LSS_MSG_NONE;
    *body = NULL;
    if (route)
        *route = NULL;
    zmq_msg_t msg;
    zmq_msg_init (&msg);
    if (type == ZMQ_ROUTER || type == ZMQ_SUB || type == ZMQ_XSUB) {
        if (zmq_msg_recv (&msg, handle, 0) < 0) {
            zmq_msg_close (&msg);
            return -1;
        }
        if (type == ZMQ_ROUTER && route)
            *route = zframe_new (zmq_msg_data (&msg), zmq_msg_size (&msg));
        else if (type != ZMQ_ROUTER && topic && topic_size) {
            size_t n =
                zmq_msg_size (&msg) < topic_size - 1 ? zmq_msg_size (&msg) : topic_size - 1;
            memcpy (topic, zmq_msg_data (&msg), n);
            topic[n] = '\0';
        }
        if (!zmq_msg_more (&msg)) {
            zmq_msg_close (&msg);
            snprintf (err, err_size, "message has no envelope frame");
            goto malformed;
        }
        zmq_msg_close (&msg);
        zmq_msg_init (&msg);
    }
    if (zmq_msg_recv (&msg, handle, 0) < 0) {
        zmq_msg_close (&msg);
        if (route)
            zframe_destroy (route);
        return -1;
    }
    bool more = zmq_msg_more (&msg);
    int rc = more ? -2
                  : lss_proto_decode (zmq_msg_data (&msg), zmq_msg_size (&msg), SIZE_MAX, env,
                                      kind, body, err, err_size);
    if (more)
        snprintf (err, err_size, "unexpected extra frames");
    zmq_msg_close (&msg);
    if (rc == 0)
        return 0;
malformed:
    s_drain (handle); /* *route stays: the caller may answer the sender */
    return -2;
}

struct _lss_bus_pub_t {
    zsock_t *sock;
    char src[LSS_PROTO_SRC_MAX + 1];
    uint64_t seq;
};

lss_bus_pub_t *lss_bus_pub_new (const char *endpoints, const char *src,
                                const lss_bus_opts_t *opts)
{
    lss_bus_pub_t *self = calloc (1, sizeof *self);
    if (!self)
        return NULL;
    self->sock = lss_bus_socket_new (ZMQ_PUB, endpoints, opts);
    if (!self->sock) {
        free (self);
        return NULL;
    }
    snprintf (self->src, sizeof self->src, "%s", src ? src : "");
    return self;
}

void lss_bus_pub_destroy (lss_bus_pub_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    zsock_destroy (&(*self_p)->sock);
    free (*self_p);
    *self_p = NULL;
}

int lss_bus_pub_send (lss_bus_pub_t *self, const char *topic, lss_msg_kind_t kind,
                      const char *type, const void *body, const char *trace)
{
    lss_envelope_t env;
    if (lss_bus_envelope_init (&env, kind, type, self->src, self->seq + 1, trace))
        return -1;
    if (lss_bus_send (self->sock, NULL, 0, topic, &env, kind, body))
        return -1;
    self->seq++;
    return 0;
}

uint64_t lss_bus_pub_seq (const lss_bus_pub_t *self)
{
    return self->seq;
}

zsock_t *lss_bus_pub_sock (lss_bus_pub_t *self)
{
    return self->sock;
}
