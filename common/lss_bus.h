/*  lss_bus — ZeroMQ sockets for the bus, with every limit explicit.
 *
 *  Sockets are CZMQ zsock_t with HWMs, linger, reconnect intervals, ZMTP heartbeats and
 *  a maximum message size set before they bind or connect (never libzmq's unbounded
 *  defaults). Endpoint lists use CZMQ's syntax: comma-separated, '@' binds, '>' connects,
 *  no prefix uses the socket type's default (PUB/ROUTER bind, SUB/DEALER connect), so
 *  one socket may reach several peers ("tcp://a:1,tcp://b:1").
 *
 *  A publisher numbers its messages (seq from 1) so subscribers can see gaps. Frames:
 *    PUB/SUB        [topic][envelope]
 *    DEALER→ROUTER  [envelope]            (the ROUTER sees [identity][envelope])
 */
#ifndef LSS_BUS_H
#define LSS_BUS_H

#include <czmq.h>

#include "lss_config.h"
#include "lss_proto.h"

#define LSS_BUS_TOPIC_MAX 512

typedef struct {
    int sndhwm;
    int rcvhwm;
    int linger_ms;
    int reconnect_ivl_ms;
    int reconnect_ivl_max_ms;
    int heartbeat_ivl_ms;
    int heartbeat_timeout_ms;
    int64_t max_message;
    int resolve_interval_ms; /* dns+tcp:// endpoints (lss_discovery) are resolved this often */
} lss_bus_opts_t;

/*  Built-in defaults (the same as lss_settings' bus.* defaults). */
void lss_bus_opts_default (lss_bus_opts_t *opts);
/*  The bus.* keys of a config. */
void lss_bus_opts_from_config (const lss_config_t *cfg, lss_bus_opts_t *opts);

/*  Creates a socket of type (ZMQ_PUB, ZMQ_SUB, ZMQ_ROUTER, ZMQ_DEALER, ...), applies opts
 *  (NULL = defaults) and attaches the endpoint list. Returns NULL (logged) on a bad
 *  endpoint or a port already in use. SUB sockets subscribe to nothing yet. */
zsock_t *lss_bus_socket_new (int type, const char *endpoints, const lss_bus_opts_t *opts);

/*  A fresh message id: a per-process random prefix plus a counter (cheap, unique). */
void lss_bus_next_id (char out[LSS_PROTO_ID_MAX + 1]);

/*  Fills an envelope: version, type (NULL = the kind's fixed type), a fresh id, src, seq,
 *  ts = now, trace (NULL = this thread's log trace id). Returns 0, or -1 if type is NULL
 *  for a wildcard kind or does not fit. */
int lss_bus_envelope_init (lss_envelope_t *env, lss_msg_kind_t kind, const char *type,
                           const char *src, uint64_t seq, const char *trace);

/*  Encodes and sends one message. On a ROUTER, route/route_len is the peer identity;
 *  topic is the first frame on PUB sockets (NULL elsewhere). Never blocks: a full queue
 *  (HWM reached) drops the message on PUB and returns -1 with errno EAGAIN elsewhere.
 *  Returns 0, -1 (send failed / encode refused). */
int lss_bus_send (zsock_t *sock, const void *route, size_t route_len, const char *topic,
                  const lss_envelope_t *env, lss_msg_kind_t kind, const void *body);

/*  Receives and decodes one message (waits if none is queued: poll first to avoid that).
 *  route (ROUTER) and topic (SUB, truncated to topic_size) are filled when non-NULL.
 *  Returns 0 with *kind and *body set (LSS_MSG_NONE / NULL for an unknown type), -2 when a
 *  malformed message was consumed (err says why; on a ROUTER *route is still set so the
 *  sender can be answered), -1 on interrupt or socket error (no route). Caller frees route. */
int lss_bus_recv (zsock_t *sock, zframe_t **route, char *topic, size_t topic_size,
                  lss_envelope_t *env, lss_msg_kind_t *kind, void **body, char *err,
                  size_t err_size);

/*  A publisher: PUB socket + source name + seq counter. */
typedef struct _lss_bus_pub_t lss_bus_pub_t;
lss_bus_pub_t *lss_bus_pub_new (const char *endpoints, const char *src,
                                const lss_bus_opts_t *opts);
void lss_bus_pub_destroy (lss_bus_pub_t **self_p);
/*  Publishes body under topic. type NULL = the kind's fixed type. trace NULL = the log's.
 *  Returns 0 or -1. seq advances only for messages actually handed to ZeroMQ. */
int lss_bus_pub_send (lss_bus_pub_t *self, const char *topic, lss_msg_kind_t kind,
                      const char *type, const void *body, const char *trace);
uint64_t lss_bus_pub_seq (const lss_bus_pub_t *self);
zsock_t *lss_bus_pub_sock (lss_bus_pub_t *self);

#endif
