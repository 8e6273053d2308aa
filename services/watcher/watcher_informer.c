/*  watcher_informer — informers for every kind, on their own thread. See
 *  watcher_informer.h.
 *
 *  Design note: one poll loop over the pipe and every open watch's descriptor, with a
 *  timeout of at most S_POLL_MS so that watches are also drained on expiry (readiness is
 *  a hint) and retries fire on time. Each informer is a small state machine:
 *  LIST (due at next_ms) → WATCH (open a watch from rv, due at next_ms) → watching.
 *  Failures back off from S_RETRY_MIN_MS doubling to S_RETRY_MAX_MS. A turn takes at most
 *  S_EVENTS_PER_TURN events from one watch so the pipe is never starved.
 */
#include "watcher_informer.h"

#include <inttypes.h>
#include <signal.h>
#include <string.h>

#include "lss_log.h"
#include "lss_metrics.h"
#include "lss_obj.h"
#include "lss_store.h"
#include "lss_util.h"

#define S_POLL_MS         1000
#define S_RETRY_MIN_MS    100
#define S_RETRY_MAX_MS    5000
#define S_EVENTS_PER_TURN 256
#define S_CACHE_KEY_MAX   (LSS_STORE_NAMESPACE_MAX + 1 + LSS_STORE_NAME_MAX + 1)
#define S_RV_MAX          64

const char *const watcher_kinds[WATCHER_KIND_COUNT] = {
    "Sandbox", "WarmPool", "WarmPod", "RuntimeEnvironment", "SandboxProfile", "Pod"};

typedef enum { S_LIST, S_WATCH, S_WATCHING } s_state_t;

typedef struct {
    const char *kind;
    char lower[32];
    s_state_t state;
    int64_t next_ms;    /* when the pending LIST / WATCH may run */
    int64_t backoff_ms; /* next retry delay */
    bool synced;        /* listed at least once */
    char rv[S_RV_MAX + 1];
    lss_store_watch_t *watch;
    zhashx_t *cache; /* "ns/name" → json_t * (owned) */
} s_informer_t;

typedef struct {
    zsock_t *pipe;
    watcher_informer_args_t args;
    lss_store_t *store;
    int64_t store_next_ms;
    int64_t store_backoff_ms;
    bool synced_sent;
    s_informer_t inf[WATCHER_KIND_COUNT];
} s_self_t;

static lss_metric_t *s_m_events, *s_m_relists, *s_m_rewatch, *s_m_cache, *s_m_pub_errors;

static void s_metrics_init (void)
{
    s_m_events = lss_metrics_counter ("lss_watcher_events_total",
                                      "Object changes seen, by kind and verb.", "kind,verb");
    s_m_relists =
        lss_metrics_counter ("lss_watcher_relists_total",
                             "Lists of a kind (the first, and each after GONE).", "kind");
    s_m_rewatch =
        lss_metrics_counter ("lss_watcher_watch_restarts_total",
                             "Watches reopened after the store was unavailable.", "kind");
    s_m_cache =
        lss_metrics_gauge ("lss_watcher_cache_objects", "Objects cached, by kind.", "kind");
    s_m_pub_errors = lss_metrics_counter ("lss_watcher_publish_errors_total",
                                          "Object events that could not be published.", NULL);
}

static void s_json_destroy (void **item)
{
    json_decref ((json_t *)*item);
    *item = NULL;
}

static zhashx_t *s_cache_new (void)
{
    zhashx_t *h = zhashx_new ();
    if (h)
        zhashx_set_destructor (h, s_json_destroy);
    return h;
}

static int64_t s_backoff (int64_t *backoff_ms)
{
    int64_t d = *backoff_ms < S_RETRY_MIN_MS ? S_RETRY_MIN_MS : *backoff_ms;
    *backoff_ms = d * 2 > S_RETRY_MAX_MS ? S_RETRY_MAX_MS : d * 2;
    return d;
}

//  --------------------------------------------------------------------------
//  Queue membership

static int s_put_key (const char *queues[2], char keys[2][513], int n, const char *queue,
                      const char *kind, const char *ns, const char *name)
{
    char err[LSS_STORE_ERR_SIZE];
    if (!name || lss_store_check_name ("name", name, err, sizeof err) != 0)
        return n;
    if (!ns || !*ns || strlen (ns) > LSS_STORE_NAMESPACE_MAX ||
        lss_store_check_name ("namespace", ns, err, sizeof err) != 0)
        return n;
    char key[513];
    if (lss_fmt (key, sizeof key, "%s/%s/%s", kind, ns, name) != 0)
        return n;
    for (int i = 0; i < n; i++)
        if (strcmp (queues[i], queue) == 0 && strcmp (keys[i], key) == 0)
            return n;
    queues[n] = queue;
    memcpy (keys[n], key, strlen (key) + 1);
    return n + 1;
}

int watcher_keys_of (const char *kind, const json_t *obj, const char *queues[2],
                     char keys[2][513])
{
    int n = 0;
    if (!kind || !json_is_object (obj))
        return 0;
    const char *ns = lss_obj_str (obj, "metadata.namespace");
    const char *name = lss_obj_str (obj, "metadata.name");
    if (strcmp (kind, "Sandbox") == 0)
        n = s_put_key (queues, keys, n, "sandbox", "Sandbox", ns, name);
    else if (strcmp (kind, "WarmPool") == 0)
        n = s_put_key (queues, keys, n, "warmpool", "WarmPool", ns, name);
    else if (strcmp (kind, "WarmPod") == 0)
        n = s_put_key (queues, keys, n, "warmpool", "WarmPool", ns,
                       lss_obj_label (obj, LSS_LABEL_POOL));
    else if (strcmp (kind, "Pod") == 0) {
        n = s_put_key (queues, keys, n, "sandbox", "Sandbox", ns,
                       lss_obj_label (obj, LSS_LABEL_SANDBOX));
        n = s_put_key (queues, keys, n, "warmpool", "WarmPool", ns,
                       lss_obj_label (obj, LSS_LABEL_POOL));
    }
    return n;
}

//  --------------------------------------------------------------------------
//  Emitting changes

static void s_send_keys (s_self_t *self, const char *kind, const json_t *obj)
{
    const char *queues[2];
    char keys[2][513];
    int n = watcher_keys_of (kind, obj, queues, keys);
    /* a pool's key from its children's events waits (WATCHER_POOL_CHILD_DELAY_MS) */
    bool child = strcmp (kind, "WarmPool") != 0;
    for (int i = 0; i < n; i++)
        zsock_send (self->pipe, "sss",
                    child && strcmp (queues[i], "warmpool") == 0 ? "KEYLATER" : "KEY",
                    queues[i], keys[i]);
}

static void s_publish (s_self_t *self, s_informer_t *inf, const char *verb, const json_t *obj,
                       const char *ns, const char *name)
{
    const char *rv = lss_obj_str (obj, "metadata.resourceVersion");
    char topic[LSS_BUS_TOPIC_MAX], type[LSS_PROTO_TYPE_MAX + 1];
    if (!rv || strlen (rv) > S_RV_MAX ||
        lss_fmt (topic, sizeof topic, "%s.%s.%s.%s", inf->lower, verb, ns, name) != 0 ||
        lss_fmt (type, sizeof type, "%s.%s", inf->lower, verb) != 0) {
        lss_metric_inc (s_m_pub_errors, 1);
        return;
    }
    lss_object_event_t body = {.kind = (char *)inf->kind,
                               .namespace = (char *)ns,
                               .name = (char *)name,
                               .resource_version = (char *)rv,
                               .object = (json_t *)obj};
    if (lss_bus_pub_send (self->args.pub, topic, LSS_MSG_object_event, type, &body, NULL) !=
        0) {
        lss_metric_inc (s_m_pub_errors, 1);
        lss_log_warn ("object event not published", "{s:s}", "topic", topic);
    }
}

/*  True if a and b differ at most in status and metadata.resourceVersion. */
static bool s_status_only_change (const json_t *a, const json_t *b)
{
    if (json_object_size (a) != json_object_size (b))
        return false;
    const char *key;
    json_t *v;
    json_object_foreach ((json_t *)a, key, v)
    {
        json_t *w = json_object_get (b, key);
        if (strcmp (key, "status") == 0)
            continue;
        if (strcmp (key, "metadata") != 0) {
            if (!w || !json_equal (v, w))
                return false;
            continue;
        }
        if (!json_is_object (v) || !json_is_object (w) ||
            json_object_size (v) != json_object_size (w))
            return false;
        const char *mkey;
        json_t *mv;
        json_object_foreach (v, mkey, mv)
        {
            json_t *mw = json_object_get (w, mkey);
            if (strcmp (mkey, "resourceVersion") != 0 && (!mw || !json_equal (mv, mw)))
                return false;
        }
    }
    return true;
}

/*  One change of an object: metrics, then (leader only) the event and its queue keys,
 *  including those of the previous version (a label may have moved). A Sandbox change of
 *  status alone queues nothing: only the reconciler writes it, after acting. */
static void s_emit (s_self_t *self, s_informer_t *inf, const char *verb, const json_t *obj,
                    const json_t *old)
{
    const char *ns = lss_obj_str (obj, "metadata.namespace");
    const char *name = lss_obj_str (obj, "metadata.name");
    if (!name)
        return;
    lss_metric_inc (s_m_events, 1, inf->kind, verb);
    if (!atomic_load (self->args.leader))
        return;
    s_publish (self, inf, verb, obj, ns ? ns : "", name);
    if (old && strcmp (inf->kind, "Sandbox") == 0 && strcmp (verb, "modified") == 0 &&
        s_status_only_change (old, obj))
        return;
    s_send_keys (self, inf->kind, obj);
    if (old)
        s_send_keys (self, inf->kind, old);
}

/*  The cache key of obj into out, or -1 if it has no usable name. */
static int s_cache_key (const json_t *obj, char *out, size_t size)
{
    const char *ns = lss_obj_str (obj, "metadata.namespace");
    const char *name = lss_obj_str (obj, "metadata.name");
    if (!name || !*name)
        return -1;
    return lss_fmt (out, size, "%s/%s", ns ? ns : "", name);
}

static bool s_same_rv (const json_t *a, const json_t *b)
{
    const char *ra = lss_obj_str (a, "metadata.resourceVersion");
    const char *rb = lss_obj_str (b, "metadata.resourceVersion");
    return ra && rb && strcmp (ra, rb) == 0;
}

//  --------------------------------------------------------------------------
//  List, watch

static void s_close_watch (s_informer_t *inf)
{
    lss_store_watch_destroy (&inf->watch);
}

/*  Lists every page of the kind into a new cache and diffs it against the old one.
 *  Returns LSS_STORE_OK or the store's error (the old cache is kept then). */
static int s_list (s_self_t *self, s_informer_t *inf)
{
    char err[LSS_STORE_ERR_SIZE] = "";
    char token[4096] = "";
    char list_rv[S_RV_MAX + 1] = "";
    zhashx_t *fresh = s_cache_new ();
    if (!fresh)
        return LSS_STORE_UNAVAILABLE;
    int rc = LSS_STORE_OK;
    int limit = self->args.page_size > 0 ? (int)self->args.page_size : 0;
    for (;;) {
        json_t *page = NULL;
        rc = lss_store_list (self->store, inf->kind, NULL, NULL, limit, token[0] ? token : NULL,
                             &page, err, sizeof err);
        if (rc != LSS_STORE_OK)
            break;
        const char *prv = lss_obj_str (page, "metadata.resourceVersion");
        if (!list_rv[0] && (!prv || lss_fmt (list_rv, sizeof list_rv, "%s", prv) != 0)) {
            json_decref (page);
            rc = LSS_STORE_UNAVAILABLE;
            lss_errf (err, sizeof err, "list: bad resourceVersion");
            break;
        }
        json_t *items = json_object_get (page, "items");
        size_t i;
        json_t *item;
        json_array_foreach (items, i, item)
        {
            char key[S_CACHE_KEY_MAX];
            if (s_cache_key (item, key, sizeof key) == 0)
                zhashx_update (fresh, key, json_incref (item));
        }
        const char *cont = lss_obj_str (page, "metadata.continue");
        bool more = cont && *cont;
        if (more && lss_fmt (token, sizeof token, "%s", cont) != 0) {
            json_decref (page);
            rc = LSS_STORE_UNAVAILABLE;
            lss_errf (err, sizeof err, "list: continue token too long");
            break;
        }
        json_decref (page);
        if (!more)
            break;
    }
    if (rc != LSS_STORE_OK) {
        zhashx_destroy (&fresh);
        lss_log_warn ("list failed", "{s:s, s:i, s:s}", "kind", inf->kind, "code", rc, "error",
                      err);
        return rc;
    }
    lss_metric_inc (s_m_relists, 1, inf->kind);
    /* diff: new and changed objects, then the ones that went away meanwhile */
    size_t added = 0, modified = 0, deleted = 0;
    for (json_t *obj = zhashx_first (fresh); obj; obj = zhashx_next (fresh)) {
        const json_t *old = zhashx_lookup (inf->cache, zhashx_cursor (fresh));
        if (!old) {
            s_emit (self, inf, "added", obj, NULL);
            added++;
        } else if (!s_same_rv (old, obj)) {
            s_emit (self, inf, "modified", obj, old);
            modified++;
        }
    }
    for (json_t *old = zhashx_first (inf->cache); old; old = zhashx_next (inf->cache))
        if (!zhashx_lookup (fresh, zhashx_cursor (inf->cache))) {
            s_emit (self, inf, "deleted", old, NULL);
            deleted++;
        }
    zhashx_destroy (&inf->cache);
    inf->cache = fresh;
    snprintf (inf->rv, sizeof inf->rv, "%s", list_rv);
    lss_metric_set (s_m_cache, (double)zhashx_size (inf->cache), inf->kind);
    lss_log_info ("listed", "{s:s, s:s, s:I, s:I, s:I, s:I}", "kind", inf->kind, "rv", inf->rv,
                  "objects", (json_int_t)zhashx_size (inf->cache), "added", (json_int_t)added,
                  "modified", (json_int_t)modified, "deleted", (json_int_t)deleted);
    return LSS_STORE_OK;
}

static void s_apply (s_self_t *self, s_informer_t *inf, lss_store_event_t *ev)
{
    char key[S_CACHE_KEY_MAX];
    if (!json_is_object (ev->object) || s_cache_key (ev->object, key, sizeof key) != 0) {
        lss_log_warn ("watch event without a usable name ignored", "{s:s}", "kind", inf->kind);
        return;
    }
    json_t *old = zhashx_lookup (inf->cache, key);
    json_incref (old); /* keep it across the update */
    if (ev->type == LSS_STORE_DELETED) {
        zhashx_delete (inf->cache, key);
        s_emit (self, inf, "deleted", ev->object, NULL);
    } else {
        zhashx_update (inf->cache, key, json_incref (ev->object));
        s_emit (self, inf, old ? "modified" : "added", ev->object, old);
    }
    json_decref (old);
    lss_metric_set (s_m_cache, (double)zhashx_size (inf->cache), inf->kind);
}

/*  Makes one step of an informer's state machine. */
static void s_step (s_self_t *self, s_informer_t *inf, int64_t now)
{
    char err[LSS_STORE_ERR_SIZE] = "";
    if (inf->state == S_LIST && now >= inf->next_ms) {
        int rc = s_list (self, inf);
        if (rc != LSS_STORE_OK) {
            inf->next_ms = now + s_backoff (&inf->backoff_ms);
            return;
        }
        inf->synced = true;
        inf->state = S_WATCH;
        inf->next_ms = now;
    }
    if (inf->state == S_WATCH && now >= inf->next_ms) {
        int code = LSS_STORE_OK;
        inf->watch =
            lss_store_watch_new (self->store, inf->kind, NULL, inf->rv, &code, err, sizeof err);
        if (!inf->watch) {
            lss_log_warn ("watch failed", "{s:s, s:s, s:i, s:s}", "kind", inf->kind, "rv",
                          inf->rv, "code", code, "error", err);
            inf->state = code == LSS_STORE_GONE ? S_LIST : S_WATCH;
            inf->next_ms = code == LSS_STORE_GONE ? now : now + s_backoff (&inf->backoff_ms);
            return;
        }
        inf->state = S_WATCHING;
    }
    if (inf->state != S_WATCHING)
        return;
    for (int n = 0; n < S_EVENTS_PER_TURN; n++) {
        lss_store_event_t ev = {0};
        int rc = lss_store_watch_next (inf->watch, &ev);
        if (rc == 1) {
            s_apply (self, inf, &ev);
            json_decref (ev.object);
            inf->backoff_ms = 0;
            continue;
        }
        if (rc == 0)
            return;
        const char *wrv = lss_store_watch_rv (inf->watch);
        if (wrv && *wrv)
            snprintf (inf->rv, sizeof inf->rv, "%s", wrv);
        s_close_watch (inf);
        if (rc == LSS_STORE_GONE) {
            lss_log_info ("watch expired: relisting", "{s:s}", "kind", inf->kind);
            inf->state = S_LIST;
            inf->next_ms = now;
        } else {
            lss_metric_inc (s_m_rewatch, 1, inf->kind);
            inf->state = S_WATCH;
            inf->next_ms = now + s_backoff (&inf->backoff_ms);
            lss_log_warn ("watch lost: watching again", "{s:s, s:s}", "kind", inf->kind, "rv",
                          inf->rv);
        }
        return;
    }
}

static void s_resync (s_self_t *self)
{
    if (!atomic_load (self->args.leader))
        return;
    for (size_t k = 0; k < 2; k++) { /* Sandbox, WarmPool */
        s_informer_t *inf = &self->inf[k];
        for (json_t *obj = zhashx_first (inf->cache); obj; obj = zhashx_next (inf->cache))
            s_send_keys (self, inf->kind, obj);
    }
}

//  --------------------------------------------------------------------------
//  The actor

void watcher_informer_actor (zsock_t *pipe, void *arg)
{
    /* the main thread takes the stop signals */
    sigset_t mask;
    sigemptyset (&mask);
    sigaddset (&mask, SIGINT);
    sigaddset (&mask, SIGTERM);
    pthread_sigmask (SIG_BLOCK, &mask, NULL);

    s_metrics_init ();
    s_self_t self_ = {.pipe = pipe, .args = *(watcher_informer_args_t *)arg};
    s_self_t *self = &self_;
    for (size_t k = 0; k < WATCHER_KIND_COUNT; k++) {
        s_informer_t *inf = &self->inf[k];
        inf->kind = watcher_kinds[k];
        for (size_t i = 0; i < sizeof inf->lower - 1 && inf->kind[i]; i++)
            inf->lower[i] =
                (char)(inf->kind[i] >= 'A' && inf->kind[i] <= 'Z' ? inf->kind[i] - 'A' + 'a'
                                                                  : inf->kind[i]);
        inf->cache = s_cache_new ();
        inf->state = S_LIST;
    }
    zsock_signal (pipe, 0);

    bool terminated = false;
    while (!terminated) {
        int64_t now = lss_time_mono_ms ();
        if (!self->store && now >= self->store_next_ms) {
            char err[LSS_STORE_ERR_SIZE] = "";
            self->store = lss_store_open (self->args.cfg, self->args.dsn, err, sizeof err);
            if (!self->store) {
                lss_log_warn ("store unavailable", "{s:s}", "error", err);
                self->store_next_ms = now + s_backoff (&self->store_backoff_ms);
            }
        }
        if (self->store) {
            bool all = true;
            for (size_t k = 0; k < WATCHER_KIND_COUNT; k++) {
                s_step (self, &self->inf[k], now);
                all = all && self->inf[k].synced;
            }
            if (all && !self->synced_sent) {
                self->synced_sent = true;
                zstr_send (pipe, "SYNCED");
            }
        }
        /* poll the pipe and the open watches until the next due step */
        zmq_pollitem_t items[1 + WATCHER_KIND_COUNT];
        int n = 0;
        items[n++] = (zmq_pollitem_t){zsock_resolve (pipe), 0, ZMQ_POLLIN, 0};
        int64_t timeout = S_POLL_MS;
        now = lss_time_mono_ms ();
        for (size_t k = 0; k < WATCHER_KIND_COUNT; k++) {
            s_informer_t *inf = &self->inf[k];
            if (inf->state == S_WATCHING && lss_store_watch_fd (inf->watch) >= 0)
                items[n++] =
                    (zmq_pollitem_t){NULL, lss_store_watch_fd (inf->watch), ZMQ_POLLIN, 0};
            else if (self->store && inf->state != S_WATCHING) {
                int64_t left = inf->next_ms - now;
                if (left < timeout)
                    timeout = left < 0 ? 0 : left;
            }
        }
        if (!self->store) {
            int64_t left = self->store_next_ms - now;
            if (left < timeout)
                timeout = left < 0 ? 0 : left;
        }
        if (zmq_poll (items, n, (long)timeout) < 0 && zmq_errno () != EINTR)
            break;
        while (zsock_events (pipe) & ZMQ_POLLIN) {
            char *cmd = zstr_recv (pipe);
            if (!cmd)
                break;
            if (strcmp (cmd, "$TERM") == 0)
                terminated = true;
            else if (strcmp (cmd, "RESYNC") == 0)
                s_resync (self);
            zstr_free (&cmd);
        }
    }
    for (size_t k = 0; k < WATCHER_KIND_COUNT; k++) {
        s_close_watch (&self->inf[k]);
        zhashx_destroy (&self->inf[k].cache);
    }
    lss_store_destroy (&self->store);
    lss_bus_pub_destroy (&self->args.pub);
}
