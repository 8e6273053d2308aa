/*  api_events — see api_events.h.
 *
 *  One zmq_poll loop over the inbox eventfd, the SUB socket and the two monitor PAIR
 *  sockets, with a 100 ms tick for waiter re-checks, deadlines and health. The thread
 *  owns its PostgreSQL, Redis and store handles: a slow dependency delays events and
 *  waits, never an HTTP request.
 */
#include "api_events.h"

#include <czmq.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "api_db.h"
#include "api_msgs.h"
#include "api_redis.h"
#include "api_view.h"
#include "lss_bus.h"
#include "lss_discovery.h"
#include "lss_log.h"
#include "lss_metrics.h"
#include "lss_obj.h"
#include "lss_store.h"
#include "lss_util.h"

#define S_TICK_MS         100
#define S_RESOLVE_WAIT_MS 2000 /* first lookup of dns+ endpoints, at start */

/*  A ZeroMQ socket monitor: connections up to one of a socket's peers. */
typedef struct {
    zsock_t *pair;
    int connected;
} s_monitor_t;

typedef struct {
    api_wait_msg_t *wait;
    int64_t last_check_ms;
} s_waiter_t;

struct _api_events_t {
    api_ctx_t *ctx;
    pthread_t thread;
    bool started;
    atomic_bool stop;

    api_db_t *db;
    api_redis_t *redis;
    lss_store_t *store;
    zsock_t *sub, *wp_probe; /* the probe DEALER never sends: reachability only */
    lss_bus_pub_t *pub;      /* api.pub_endpoint: audit events (NULL if none) */
    s_monitor_t mon_sub, mon_wp;
    /* dns+ endpoints (NULL for static lists): what each socket should reach, what it does */
    lss_discovery_t *sub_disc, *wp_disc;
    lss_epset_t *sub_conn, *wp_conn;

    zlistx_t *waiters;  /* s_waiter_t * */
    zhashx_t *seqs;     /* publisher src → last seq (uint64_t *) */
    zhashx_t *recorded; /* sandbox name → last status written to PostgreSQL (char *) */
    char last_src[LSS_PROTO_SRC_MAX + 1];
    int64_t last_health_ms;
};

static lss_metric_t *s_m_events, *s_m_gaps, *s_m_waits;

static void s_metrics_init (void)
{
    s_m_events = lss_metrics_counter ("lss_api_sandbox_events_total",
                                      "Sandbox events received from the watcher.", NULL);
    s_m_gaps =
        lss_metrics_counter ("lss_api_event_gaps_total",
                             "Lost or reordered watcher events (the cache was emptied).", NULL);
    s_m_waits =
        lss_metrics_counter ("lss_api_create_waits_total",
                             "Creates answered by the events thread, by outcome.", "outcome");
}

/* ---------------------------------------------------------------- monitors */
static int s_monitor_open (s_monitor_t *m, zsock_t *sock, const char *what)
{
    char ep[96];
    snprintf (ep, sizeof ep, "inproc://api-events-%s-%p", what, (void *)sock);
    if (zmq_socket_monitor (zsock_resolve (sock), ep,
                            ZMQ_EVENT_CONNECTED | ZMQ_EVENT_DISCONNECTED) != 0)
        return -1;
    m->pair = zsock_new (ZMQ_PAIR);
    if (!m->pair || zsock_connect (m->pair, "%s", ep) != 0)
        return -1;
    return 0;
}

/*  Reads the monitor's queued events: [uint16 event, uint32 value][endpoint]. */
static void s_monitor_read (s_monitor_t *m)
{
    while (m->pair && (zsock_events (m->pair) & ZMQ_POLLIN)) {
        zmsg_t *msg = zmsg_recv (m->pair);
        if (!msg)
            return;
        zframe_t *f = zmsg_first (msg);
        if (f && zframe_size (f) >= 2) {
            uint16_t ev;
            memcpy (&ev, zframe_data (f), sizeof ev);
            if (ev == ZMQ_EVENT_CONNECTED)
                m->connected++;
            else if (ev == ZMQ_EVENT_DISCONNECTED && m->connected > 0)
                m->connected--;
        }
        zmsg_destroy (&msg);
    }
}

static void s_monitor_close (s_monitor_t *m, zsock_t *sock)
{
    if (sock)
        zmq_socket_monitor (zsock_resolve (sock), NULL, 0);
    zsock_destroy (&m->pair);
}

/* ---------------------------------------------------------------- answers */
static void s_post_lws (api_events_t *self, api_msg_t *m)
{
    if (m && api_mailbox_post_always (self->ctx->lws_inbox, m))
        api_msg_destroy (m);
}

static bool s_settled (const json_t *obj)
{
    const char *phase = api_view_phase (obj);
    return strcmp (phase, "Running") == 0 || strcmp (phase, "Failed") == 0;
}

/*  Answers a waiting create with obj (borrowed; NULL = gone) and frees the wait. */
static void s_answer (api_events_t *self, api_wait_msg_t *w, const json_t *obj, int status)
{
    lss_log_set_trace (w->to.request_id);
    json_t *view = api_view_sandbox (obj, &w->row);
    s_post_lws (self, &api_resp_with_json (&w->to, status, view)->msg);
    lss_metric_inc (s_m_waits, 1, status == 201 ? "settled" : "timeout");
    lss_log_set_trace (NULL);
    api_msg_destroy (&w->msg);
}

/*  Answers every waiter of name with obj, if obj is settled (or gone). */
static void s_wake (api_events_t *self, const char *name, const json_t *obj)
{
    if (obj && !s_settled (obj))
        return;
    zlistx_t *keep = zlistx_new ();
    s_waiter_t *x;
    while (keep && (x = zlistx_detach (self->waiters, NULL))) {
        if (strcmp (x->wait->name, name) == 0) {
            s_answer (self, x->wait, obj, 201);
            free (x);
        } else
            zlistx_add_end (keep, x);
    }
    if (keep) {
        zlistx_destroy (&self->waiters);
        self->waiters = keep;
    }
}

/* ---------------------------------------------------------------- lifecycle */
/*  Records the lifecycle status of sandbox name in PostgreSQL once per change. */
static void s_record (api_events_t *self, const char *name, const json_t *obj)
{
    const char *status = api_view_status_of_phase (api_view_phase (obj));
    const char *was = zhashx_lookup (self->recorded, name);
    if ((was && strcmp (was, status) == 0) || !self->db)
        return;
    int64_t now = lss_time_now_ms ();
    int64_t started = strcmp (status, "running") == 0 ? now : 0;
    int64_t ended =
        strcmp (status, "terminated") == 0 || strcmp (status, "failed") == 0 ? now : 0;
    int rc = api_db_sandbox_update (self->db, name, status, started, ended);
    if (rc == API_DB_NOT_FOUND)
        return; /* not created through this api (kubectl, tests): nothing to record */
    if (rc != API_DB_OK) {
        lss_log_warn ("sandbox lifecycle not recorded", "{s:s, s:s}", "sandbox", name, "status",
                      status);
        return;
    }
    if (zhashx_size (self->recorded) >= API_EVENTS_SEEN_MAX)
        zhashx_purge (self->recorded);
    if (!obj)
        zhashx_delete (self->recorded, name);
    else
        zhashx_update (self->recorded, name, strdup (status));
}

/*  A gap in a publisher's seq, or a new publisher, means events may have been lost. */
static void s_check_seq (api_events_t *self, const lss_envelope_t *env)
{
    uint64_t *last = zhashx_lookup (self->seqs, env->src);
    bool gap = false;
    if (last)
        gap = env->seq != *last + 1;
    else if (self->last_src[0] && strcmp (self->last_src, env->src) != 0)
        gap = true; /* a new leader took over: what happened in between is unknown */
    if (gap) {
        lss_metric_inc (s_m_gaps, 1);
        lss_log_warn ("watcher events lost: sandbox cache emptied", "{s:s, s:I}", "src",
                      env->src, "seq", (json_int_t)env->seq);
        api_cache_clear_sandboxes (self->ctx->cache);
    }
    if (!last) {
        if (zhashx_size (self->seqs) >= 64)
            zhashx_purge (self->seqs);
        last = malloc (sizeof *last);
        if (!last)
            return;
        zhashx_insert (self->seqs, env->src, last);
    }
    *last = env->seq;
    snprintf (self->last_src, sizeof self->last_src, "%s", env->src);
}

/*  A RuntimeEnvironment event: kept for the creates' "does the runtime exist" check. */
static void s_on_runtime_event (api_events_t *self, const char *topic, lss_object_event_t *ev)
{
    if (!ev->kind || strcmp (ev->kind, "RuntimeEnvironment") != 0 || !ev->name ||
        !json_is_object (ev->object) || (ev->namespace && *ev->namespace) ||
        strlen (ev->name) >= API_OBJNAME_SIZE)
        return;
    if (strncmp (topic, "runtimeenvironment.deleted.", 27) == 0)
        api_cache_delete_runtime (self->ctx->cache, ev->name, ev->resource_version);
    else
        api_cache_put_runtime (self->ctx->cache, ev->name, ev->object);
}

static void s_on_event (api_events_t *self, const char *topic, lss_object_event_t *ev)
{
    if (!ev->kind || strcmp (ev->kind, "Sandbox") != 0 || !ev->name ||
        !json_is_object (ev->object))
        return;
    if (strcmp (ev->namespace ? ev->namespace : "", self->ctx->namespace_) != 0)
        return;
    if (strlen (ev->name) >= API_SB_ID_SIZE)
        return;
    lss_metric_inc (s_m_events, 1);
    bool deleted = strncmp (topic, "sandbox.deleted.", 16) == 0;
    if (deleted) {
        api_cache_delete_sandbox (self->ctx->cache, ev->name, ev->resource_version);
        api_cache_drop_owner (self->ctx->cache, ev->name);
    } else
        api_cache_put_sandbox (self->ctx->cache, ev->name, ev->object);
    /* the waiting create first: the lifecycle row is a PostgreSQL commit */
    s_wake (self, ev->name, deleted ? NULL : ev->object);
    s_record (self, ev->name, deleted ? NULL : ev->object);
}

static void s_on_sub (api_events_t *self)
{
    while (zsock_events (self->sub) & ZMQ_POLLIN) {
        char topic[LSS_BUS_TOPIC_MAX], err[256];
        lss_envelope_t env;
        lss_msg_kind_t kind;
        void *body = NULL;
        int rc = lss_bus_recv (self->sub, NULL, topic, sizeof topic, &env, &kind, &body, err,
                               sizeof err);
        if (rc == -2) {
            lss_log_warn ("malformed watcher event dropped", "{s:s}", "error", err);
            continue;
        }
        if (rc)
            return;
        s_check_seq (self, &env);
        if (kind == LSS_MSG_object_event && strncmp (topic, "sandbox.", 8) == 0)
            s_on_event (self, topic, body);
        else if (kind == LSS_MSG_object_event &&
                 strncmp (topic, "runtimeenvironment.", 19) == 0)
            s_on_runtime_event (self, topic, body);
        lss_proto_body_free (kind, &body);
    }
}

/* ---------------------------------------------------------------- waits */
/*  The sandbox object: from the cache unless fresh, else (or on a miss) from the store. */
static json_t *s_read (api_events_t *self, const char *name, bool fresh, int *rc)
{
    bool deleted = false;
    json_t *obj = fresh ? NULL : api_cache_get_sandbox (self->ctx->cache, name, &deleted);
    *rc = LSS_STORE_OK;
    if (obj || deleted)
        return obj;
    if (!self->store) {
        *rc = LSS_STORE_UNAVAILABLE;
        return NULL;
    }
    char err[256];
    *rc = lss_store_get (self->store, "Sandbox", self->ctx->namespace_, name, &obj, err,
                         sizeof err);
    if (*rc == LSS_STORE_OK)
        api_cache_put_sandbox (self->ctx->cache, name, obj);
    else if (*rc == LSS_STORE_NOT_FOUND)
        *rc = LSS_STORE_OK; /* gone */
    return obj;
}

static void s_on_wait (api_events_t *self, api_wait_msg_t *w)
{
    int rc;
    json_t *obj = s_read (self, w->name, false, &rc);
    if (rc == LSS_STORE_OK && (!obj || s_settled (obj))) {
        s_answer (self, w, obj, 201);
        json_decref (obj);
        return;
    }
    json_decref (obj);
    s_waiter_t *x = calloc (1, sizeof *x);
    if (!x || zlistx_size (self->waiters) >= API_EVENTS_MAX_WAITS) {
        free (x);
        s_answer (self, w, NULL, 202);
        return;
    }
    x->wait = w;
    x->last_check_ms = lss_time_mono_ms ();
    zlistx_add_end (self->waiters, x);
}

static void s_on_publish (api_events_t *self, const api_publish_msg_t *p)
{
    char topic[LSS_BUS_TOPIC_MAX];
    if (!self->pub || lss_fmt (topic, sizeof topic, "api.%s.%s.%s", p->reason,
                               self->ctx->namespace_, p->name) != 0)
        return;
    json_t *details = p->details ? json_incref (p->details) : json_object ();
    if (p->user_id[0])
        json_object_set_new (details, "userId", json_string (p->user_id));
    lss_event_t ev = {.reason = (char *)p->reason,
                      .kind = (char *)"Sandbox",
                      .namespace = self->ctx->namespace_,
                      .name = (char *)p->name,
                      .details = details};
    lss_bus_pub_send (self->pub, topic, LSS_MSG_event, "api.event", &ev,
                      p->trace[0] ? p->trace : NULL);
    json_decref (details);
}

static void s_on_inbox (api_events_t *self)
{
    api_msg_t *m = api_mailbox_take_all (self->ctx->events_inbox);
    while (m) {
        api_msg_t *next = m->next;
        m->next = NULL;
        if (m->type == API_MSG_WAIT_RUNNING)
            s_on_wait (self, (api_wait_msg_t *)m);
        else {
            if (m->type == API_MSG_PUBLISH)
                s_on_publish (self, (api_publish_msg_t *)m);
            api_msg_destroy (m);
        }
        m = next;
    }
}

/*  Deadlines, and a store read for each waiter now and then (an event may be lost). */
static void s_check_waiters (api_events_t *self, bool all_now)
{
    if (zlistx_size (self->waiters) == 0)
        return;
    int64_t now = lss_time_mono_ms ();
    zlistx_t *keep = zlistx_new ();
    if (!keep)
        return;
    s_waiter_t *x;
    while ((x = zlistx_detach (self->waiters, NULL))) {
        bool late = all_now || now >= x->wait->deadline_mono_ms;
        bool done = false;
        if (late || now - x->last_check_ms >= API_EVENTS_RECHECK_MS) {
            x->last_check_ms = now;
            int rc;
            json_t *obj = s_read (self, x->wait->name, true, &rc);
            if (rc == LSS_STORE_OK && (!obj || s_settled (obj))) {
                s_answer (self, x->wait, obj, 201);
                done = true;
            } else if (late) {
                s_answer (self, x->wait, obj, 202);
                done = true;
            }
            json_decref (obj);
        }
        if (done)
            free (x);
        else
            zlistx_add_end (keep, x);
    }
    zlistx_destroy (&self->waiters);
    self->waiters = keep;
}

/* ---------------------------------------------------------------- health */
static void s_health (api_events_t *self)
{
    api_ctx_t *c = self->ctx;
    char err[256];
    if (!self->db)
        self->db = api_db_new (c->db_dsn, err, sizeof err);
    atomic_store (&c->db_ok, self->db && api_db_ping (self->db) == API_DB_OK);
    atomic_store (&c->redis_ok, self->redis && api_redis_ping (self->redis) == 0);
    if (!self->store)
        self->store =
            lss_store_open (c->cfg, lss_config_str (c->cfg, "store.dsn"), err, sizeof err);
    char rv[64];
    atomic_store (&c->store_ok,
                  self->store && lss_store_current_rv (self->store, rv, sizeof rv, err,
                                                       sizeof err) == LSS_STORE_OK);
    s_monitor_read (&self->mon_sub);
    s_monitor_read (&self->mon_wp);
    atomic_store (&c->watcher_ok, self->mon_sub.connected > 0);
    atomic_store (&c->warmpool_ok, self->mon_wp.connected > 0);
}

/* ---------------------------------------------------------------- discovery */
/*  Follows the watcher and warm-pool replicas when their endpoints are dns+ names. */
static void s_discover (api_events_t *self)
{
    int64_t now = lss_time_mono_ms ();
    if (self->sub_disc && lss_discovery_poll (self->sub_disc, now))
        lss_discovery_sync (self->sub, lss_discovery_set (self->sub_disc), &self->sub_conn);
    if (self->wp_disc && lss_discovery_poll (self->wp_disc, now))
        lss_discovery_sync (self->wp_probe, lss_discovery_set (self->wp_disc), &self->wp_conn);
}

/*  A socket towards a dns+ list: created empty, connected to what the first lookup finds
 *  (the SUB subscribes before any peer matters: subscriptions follow new connections). */
static zsock_t *s_connect_discovered (api_ctx_t *ctx, int type, const char *endpoints,
                                      const char *what, lss_discovery_t **disc,
                                      lss_epset_t **conn)
{
    char err[256];
    *disc =
        lss_discovery_new (endpoints, ctx->bus_opts.resolve_interval_ms, what, err, sizeof err);
    if (!*disc) {
        lss_log_error ("bad endpoint list", "{s:s, s:s}", "key", what, "error", err);
        return NULL;
    }
    zsock_t *sock = lss_bus_socket_new (type, NULL, &ctx->bus_opts);
    if (!sock)
        return NULL;
    lss_discovery_resolve_now (*disc, S_RESOLVE_WAIT_MS);
    lss_discovery_sync (sock, lss_discovery_set (*disc), conn);
    return sock;
}

/* ---------------------------------------------------------------- thread */
static void *s_run (void *arg)
{
    api_events_t *self = arg;
    s_health (self);
    self->last_health_ms = lss_time_mono_ms ();
    while (!atomic_load (&self->stop)) {
        zmq_pollitem_t items[] = {
            {NULL, api_mailbox_fd (self->ctx->events_inbox), ZMQ_POLLIN, 0},
            {zsock_resolve (self->sub), 0, ZMQ_POLLIN, 0},
            {zsock_resolve (self->mon_sub.pair), 0, ZMQ_POLLIN, 0},
            {zsock_resolve (self->mon_wp.pair), 0, ZMQ_POLLIN, 0},
        };
        int rc = zmq_poll (items, 4, S_TICK_MS);
        if (rc < 0 && errno != EINTR)
            break;
        s_on_inbox (self);
        s_on_sub (self);
        if (self->sub_disc || self->wp_disc)
            s_discover (self);
        s_monitor_read (&self->mon_sub);
        s_monitor_read (&self->mon_wp);
        s_check_waiters (self, false);
        int64_t now = lss_time_mono_ms ();
        if (now - self->last_health_ms >= API_EVENTS_HEALTH_MS) {
            s_health (self);
            self->last_health_ms = now;
        }
    }
    s_on_inbox (self);
    s_check_waiters (self, true);
    return NULL;
}

static void s_free_item (void **item)
{
    free (*item);
    *item = NULL;
}

static zsock_t *s_connect (api_ctx_t *ctx, int type, const char *endpoints)
{
    /* every endpoint of the list is connected to ('>' on each) */
    char list[1024] = "";
    size_t used = 0;
    const char *p = endpoints ? endpoints : "";
    while (*p) {
        size_t n = strcspn (p, ",");
        if (n > 0) {
            const char *e = p[0] == '>' ? p + 1 : p;
            size_t en = p[0] == '>' ? n - 1 : n;
            int w = snprintf (list + used, sizeof list - used, "%s>%.*s", used ? "," : "",
                              (int)en, e);
            if (w < 0 || (size_t)w >= sizeof list - used)
                return NULL;
            used += (size_t)w;
        }
        p += n;
        if (*p == ',')
            p++;
    }
    return used ? lss_bus_socket_new (type, list, &ctx->bus_opts) : NULL;
}

api_events_t *api_events_new (api_ctx_t *ctx)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once (&once, s_metrics_init);
    api_events_t *self = calloc (1, sizeof *self);
    if (!self)
        return NULL;
    self->ctx = ctx;
    self->waiters = zlistx_new ();
    self->seqs = zhashx_new ();
    self->recorded = zhashx_new ();
    ctx->events_inbox = api_mailbox_new (API_EVENTS_MAX_WAITS, NULL, NULL);
    if (!self->waiters || !self->seqs || !self->recorded || !ctx->events_inbox)
        goto fail;
    zhashx_set_destructor (self->seqs, s_free_item);
    zhashx_set_destructor (self->recorded, s_free_item);
    if (lss_discovery_is_dynamic (ctx->watcher_endpoint))
        self->sub =
            s_connect_discovered (ctx, ZMQ_SUB, ctx->watcher_endpoint, "api.watcher_endpoint",
                                  &self->sub_disc, &self->sub_conn);
    else
        self->sub = s_connect (ctx, ZMQ_SUB, ctx->watcher_endpoint);
    if (!self->sub) {
        lss_log_error ("bad watcher endpoint", "{s:s}", "api.watcher_endpoint",
                       ctx->watcher_endpoint ? ctx->watcher_endpoint : "");
        goto fail;
    }
    /* everything the watcher publishes, not only "sandbox.": its seq counts all its
     * messages, so a gap can only be seen on the whole stream */
    zsock_set_subscribe (self->sub, "");
    if (lss_discovery_is_dynamic (ctx->warmpool_endpoint))
        self->wp_probe =
            s_connect_discovered (ctx, ZMQ_DEALER, ctx->warmpool_endpoint,
                                  "api.warmpool_endpoint", &self->wp_disc, &self->wp_conn);
    else
        self->wp_probe = s_connect (ctx, ZMQ_DEALER, ctx->warmpool_endpoint);
    if (!self->wp_probe) {
        lss_log_error ("bad warm-pool endpoint", "{s:s}", "api.warmpool_endpoint",
                       ctx->warmpool_endpoint ? ctx->warmpool_endpoint : "");
        goto fail;
    }
    if (s_monitor_open (&self->mon_sub, self->sub, "sub") ||
        s_monitor_open (&self->mon_wp, self->wp_probe, "wp")) {
        lss_log_error ("socket monitor not started", "{s:s}", "error", zmq_strerror (errno));
        goto fail;
    }
    const char *pub = lss_config_str (ctx->cfg, "api.pub_endpoint");
    if (pub && *pub) {
        char src[LSS_PROTO_SRC_MAX + 1];
        snprintf (src, sizeof src, "api/%d", (int)getpid ());
        self->pub = lss_bus_pub_new (pub, src, &ctx->bus_opts);
        if (!self->pub) {
            lss_log_error ("api.pub_endpoint not bound", "{s:s}", "endpoint", pub);
            goto fail;
        }
    }
    char err[256];
    self->db = api_db_new (ctx->db_dsn, err, sizeof err);
    self->redis = api_redis_new (ctx->redis_url, ctx->redis_timeout_ms, err, sizeof err);
    self->store =
        lss_store_open (ctx->cfg, lss_config_str (ctx->cfg, "store.dsn"), err, sizeof err);
    int rc = lss_thread_start (&self->thread, s_run, self);
    if (rc)
        goto fail;
    self->started = true;
    return self;
fail:
    api_events_destroy (&self);
    return NULL;
}

void api_events_destroy (api_events_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    api_events_t *self = *self_p;
    if (self->started) {
        atomic_store (&self->stop, true);
        api_mailbox_close (self->ctx->events_inbox);
        pthread_join (self->thread, NULL);
    }
    if (self->waiters) {
        for (s_waiter_t *x = zlistx_first (self->waiters); x; x = zlistx_next (self->waiters)) {
            api_msg_destroy (&x->wait->msg);
            free (x);
        }
        zlistx_destroy (&self->waiters);
    }
    s_monitor_close (&self->mon_sub, self->sub);
    s_monitor_close (&self->mon_wp, self->wp_probe);
    zsock_destroy (&self->sub);
    zsock_destroy (&self->wp_probe);
    lss_discovery_destroy (&self->sub_disc);
    lss_discovery_destroy (&self->wp_disc);
    lss_epset_destroy (&self->sub_conn);
    lss_epset_destroy (&self->wp_conn);
    lss_bus_pub_destroy (&self->pub);
    zhashx_destroy (&self->seqs);
    zhashx_destroy (&self->recorded);
    api_db_destroy (&self->db);
    api_redis_destroy (&self->redis);
    lss_store_destroy (&self->store);
    api_mailbox_destroy (&self->ctx->events_inbox);
    free (self);
    *self_p = NULL;
}
