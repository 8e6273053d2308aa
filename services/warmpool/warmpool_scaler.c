/*  warmpool_scaler — one level-triggered pass for one WarmPool (see warmpool_scaler.h).
 *
 *  Design note: the pass is a pure function of what the store holds plus now_ms. The only
 *  state it keeps between passes lives in the pool's status: the ScaleDownPending
 *  condition, whose lastTransitionTime is when the pool was first seen with more idle
 *  pods than it needs (so a restarted or new leader honours scaleDownDelay), and
 *  lastScaleTime. Everything read from the store is treated as hostile: wrong types read
 *  as absent, numbers are clamped, names and strings are checked before they go into
 *  labels, annotations or new objects.
 */
#include "warmpool_scaler.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "lss_log.h"
#include "lss_obj.h"
#include "lss_pod.h"
#include "warmpool_preload.h"
#include "lss_util.h"

#define S_LIST_MAX_ITEMS  (2 * WARMPOOL_HARD_MAX) /* objects read per list */
#define S_ENDPOINT_MAX    512
#define S_IMAGE_MAX       512
#define S_INTERP_MAX      1024
#define S_LANGUAGE_MAX    32
#define S_QUANTITY_MAX    32
#define S_AGENT_COMMAND   "/opt/lss/lss-agent"
#define S_AGENT_PORT      7430
#define S_COND_SCALE_DOWN "ScaleDownPending"

typedef struct {
    char runtime[64]; /* sanitized: RuntimeEnvironment name and label value */
    char level[16];   /* standard | high | custom */
    int min_size;
    int max_total; /* maxSize, 0 → WARMPOOL_HARD_MAX, never above it */
    bool max_from_spec;
    int64_t ttl_ms; /* 0 = never */
    bool autoscale;
    int target_pct;
    int64_t delay_ms;
    char cpu[S_QUANTITY_MAX], memory[S_QUANTITY_MAX], storage[S_QUANTITY_MAX];
    bool preload; /* spec.preloadScripts non-empty */
    /* from the RuntimeEnvironment */
    char image[S_IMAGE_MAX + 1];
    char interpreters[S_INTERP_MAX + 1];
} s_spec_t;

/*  The whole list of a kind (at most S_LIST_MAX_ITEMS), as a new array. */
static int s_list_all (lss_store_t *store, const char *kind, const char *ns,
                       const char *selector, json_t **items_out, char *err, size_t err_size)
{
    *items_out = NULL;
    json_t *items = json_array ();
    char token[1024] = "";
    if (!items)
        return LSS_STORE_UNAVAILABLE;
    for (;;) {
        json_t *page = NULL;
        int rc = lss_store_list (store, kind, ns, selector, LSS_STORE_LIST_MAX_LIMIT, token,
                                 &page, err, err_size);
        if (rc != LSS_STORE_OK) {
            json_decref (items);
            return rc;
        }
        json_t *arr = json_object_get (page, "items");
        size_t i;
        json_t *it;
        json_array_foreach (arr, i, it)
        {
            if (json_array_size (items) >= S_LIST_MAX_ITEMS)
                break;
            if (json_is_object (it))
                json_array_append (items, it);
        }
        const char *next = lss_obj_str (page, "metadata.continue");
        bool more = next && *next && strlen (next) < sizeof token &&
                    json_array_size (items) < S_LIST_MAX_ITEMS;
        if (more)
            snprintf (token, sizeof token, "%s", next);
        json_decref (page);
        if (!more)
            break;
    }
    *items_out = items;
    return LSS_STORE_OK;
}

static int s_clamp (int64_t v, int64_t lo, int64_t hi)
{
    return (int)(v < lo ? lo : v > hi ? hi : v);
}

static int64_t s_time_or (const json_t *obj, const char *path, int64_t dflt)
{
    const char *t = lss_obj_str (obj, path);
    int64_t ms;
    if (t && lss_time_parse_rfc3339 (t, &ms) == 0)
        return ms;
    return dflt;
}

/*  A quantity from spec.resources[key], else dflt; NULL if present but invalid. */
static const char *s_quantity (const json_t *pool, const char *key, const char *dflt, bool cpu)
{
    json_t *v = json_object_get (lss_obj_at (pool, "spec.resources"), key);
    const char *text = v ? json_string_value (v) : dflt;
    int64_t n;
    if (!text || strlen (text) >= S_QUANTITY_MAX)
        return NULL;
    if (cpu ? lss_obj_parse_cpu (text, &n) : lss_obj_parse_bytes (text, &n))
        return NULL;
    if (n <= 0)
        return NULL;
    return text;
}

/*  Reads the pool's spec into s. Returns 0, or -1 with reason/message for the condition. */
static int s_parse_spec (const json_t *pool, s_spec_t *s, const char **reason, char *msg,
                         size_t msg_size)
{
    memset (s, 0, sizeof *s);
    *reason = "InvalidSpec";
    const char *name = lss_obj_str (pool, "metadata.name");
    if (!name || strlen (name) > WARMPOOL_MAX_NAME) {
        *reason = "NameTooLong";
        lss_errf (msg, msg_size, "pool names longer than %d bytes cannot label their pods",
                  WARMPOOL_MAX_NAME);
        return -1;
    }
    const char *runtime = lss_obj_str (pool, "spec.runtime");
    if (!runtime || strlen (runtime) > 63 ||
        lss_obj_sanitize_label (runtime, s->runtime, sizeof s->runtime) != 0) {
        lss_errf (msg, msg_size, "spec.runtime missing or invalid");
        return -1;
    }
    const char *level = lss_obj_str (pool, "spec.securityLevel");
    if (!level)
        level = "standard";
    if (strcmp (level, "standard") && strcmp (level, "high") && strcmp (level, "custom")) {
        lss_errf (msg, msg_size, "spec.securityLevel must be standard, high or custom");
        return -1;
    }
    snprintf (s->level, sizeof s->level, "%s", level);
    s->min_size = s_clamp (lss_obj_int (pool, "spec.minSize", 0), 0, WARMPOOL_HARD_MAX);
    int64_t max = lss_obj_int (pool, "spec.maxSize", 0);
    s->max_from_spec = max > 0 && max <= WARMPOOL_HARD_MAX;
    s->max_total = max <= 0 ? WARMPOOL_HARD_MAX : s_clamp (max, 1, WARMPOOL_HARD_MAX);
    int64_t ttl = lss_obj_int (pool, "spec.ttl", WARMPOOL_DEFAULT_TTL_S);
    s->ttl_ms = (int64_t)s_clamp (ttl, 0, WARMPOOL_MAX_TTL_S) * 1000;
    json_t *as = lss_obj_at (pool, "spec.autoScaling");
    s->autoscale = json_is_true (json_object_get (as, "enabled"));
    s->target_pct = s_clamp (
        lss_obj_int (pool, "spec.autoScaling.targetUtilization", WARMPOOL_DEFAULT_TARGET), 1,
        100);
    s->delay_ms = (int64_t)s_clamp (lss_obj_int (pool, "spec.autoScaling.scaleDownDelay",
                                                 WARMPOOL_DEFAULT_DELAY_S),
                                    0, 86400) *
                  1000;
    const char *cpu = s_quantity (pool, "cpu", "500m", true);
    const char *mem = s_quantity (pool, "memory", "512Mi", false);
    const char *sto = s_quantity (pool, "ephemeralStorage", "1Gi", false);
    if (!cpu || !mem || !sto) {
        lss_errf (msg, msg_size, "spec.resources: invalid quantity");
        return -1;
    }
    snprintf (s->cpu, sizeof s->cpu, "%s", cpu);
    snprintf (s->memory, sizeof s->memory, "%s", mem);
    snprintf (s->storage, sizeof s->storage, "%s", sto);
    s->preload = json_array_size (lss_obj_at (pool, "spec.preloadScripts")) > 0;
    return 0;
}

static bool s_is_language (const char *t)
{
    size_t n = t ? strlen (t) : 0;
    if (n == 0 || n > S_LANGUAGE_MAX)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!((t[i] >= 'a' && t[i] <= 'z') || (t[i] >= '0' && t[i] <= '9') || t[i] == '_' ||
              t[i] == '-'))
            return false;
    return true;
}

static bool s_is_path (const char *t)
{
    size_t n = t ? strlen (t) : 0;
    if (n < 2 || n > 512 || t[0] != '/')
        return false;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)t[i] <= ' ' || t[i] == ',' || t[i] == '=' || t[i] == 0x7f)
            return false;
    return true;
}

/*  Image and interpreters annotation from the RuntimeEnvironment. 0 or -1. */
static int s_parse_runtime (const json_t *rt, s_spec_t *s, char *msg, size_t msg_size)
{
    const char *image = lss_obj_str (rt, "spec.image");
    const char *lang = lss_obj_str (rt, "spec.language");
    const char *interp = lss_obj_str (rt, "spec.interpreter");
    if (!image || !*image || strlen (image) > S_IMAGE_MAX) {
        lss_errf (msg, msg_size, "RuntimeEnvironment %s: spec.image missing or too long",
                  s->runtime);
        return -1;
    }
    if (!s_is_language (lang) || !s_is_path (interp)) {
        lss_errf (msg, msg_size,
                  "RuntimeEnvironment %s: spec.language / spec.interpreter invalid",
                  s->runtime);
        return -1;
    }
    snprintf (s->image, sizeof s->image, "%s", image);
    if (lss_fmt (s->interpreters, sizeof s->interpreters, "%s=%s",
                 lss_obj_agent_language (lang), interp)) {
        lss_errf (msg, msg_size, "RuntimeEnvironment %s: interpreter too long", s->runtime);
        return -1;
    }
    return 0;
}

int warmpool_desired_idle (int min_size, int max_total, int assigned, int autoscale,
                           int target_pct)
{
    int64_t want = min_size;
    if (autoscale && target_pct > 0 && target_pct < 100 && assigned > 0) {
        /* idle pods so that assigned / (assigned + idle) <= target */
        int64_t num = (int64_t)assigned * (100 - target_pct);
        int64_t need = (num + target_pct - 1) / target_pct;
        if (need > want)
            want = need;
    }
    int64_t room = (int64_t)max_total - assigned;
    if (room < 0)
        room = 0;
    if (want > room)
        want = room;
    return (int)want;
}

static void s_set_labels (json_t *obj, const char *pool, const s_spec_t *s)
{
    lss_obj_set_label (obj, LSS_LABEL_PART_OF, "llmsafespace");
    lss_obj_set_label (obj, LSS_LABEL_COMPONENT, "warmpod");
    lss_obj_set_label (obj, LSS_LABEL_RUNTIME, s->runtime);
    lss_obj_set_label (obj, LSS_LABEL_LEVEL, s->level);
    lss_obj_set_label (obj, LSS_LABEL_POOL, pool);
}

static json_t *s_new_warmpod (const json_t *pool, const char *ns, const char *name,
                              const s_spec_t *s, int64_t now_ms)
{
    char prefix[WARMPOOL_MAX_NAME + 2];
    char ts[LSS_TIME_RFC3339_SIZE];
    snprintf (prefix, sizeof prefix, "%s-", name);
    json_t *owner = lss_obj_owner_ref (pool);
    if (!owner)
        return NULL;
    json_t *wp =
        json_pack ("{s:s, s:s, s:{s:s, s:s, s:[o]}, s:{s:{s:s, s:s}, s:s}}", "apiVersion",
                   LSS_OBJ_GROUP_VERSION, "kind", "WarmPod", "metadata", "generateName", prefix,
                   "namespace", ns, "ownerReferences", owner, "spec", "poolRef", "name", name,
                   "namespace", ns, "creationTimestamp", lss_time_rfc3339 (now_ms, ts));
    if (wp)
        s_set_labels (wp, name, s);
    return wp;
}

/*  The Pod of a WarmPod, in the shape of docs/control-plane.md. */
static bool s_cluster;
static char s_curve_clients[LSS_CURVE_KEY_LEN * LSS_CURVE_CLIENTS + LSS_CURVE_CLIENTS];

void warmpool_scaler_set_cluster (bool cluster, const char *curve_clients)
{
    s_cluster = cluster;
    snprintf (s_curve_clients, sizeof s_curve_clients, "%s",
              curve_clients ? curve_clients : "");
}

static json_t *s_new_pod_plain (const json_t *warmpod, const char *pool, const s_spec_t *s);

/*  The warm pod's Pod, in cluster mode with its agent on TCP (and its CURVE key Secret,
 *  owned by the WarmPod). NULL with *rc set on failure. */
static json_t *s_new_pod (lss_store_t *store, const json_t *warmpod, const char *pool,
                          const s_spec_t *s, int *rc, char *err, size_t err_size)
{
    json_t *pod = s_new_pod_plain (warmpod, pool, s);
    *rc = pod ? LSS_STORE_OK : LSS_STORE_INVALID;
    if (!pod)
        lss_errf (err, err_size, "warm pod: cannot build the Pod");
    else if (s_cluster) {
        *rc = lss_pod_cluster_agent (store, pod, warmpod, s_curve_clients, err, err_size);
        if (*rc) {
            json_decref (pod);
            pod = NULL;
        }
    }
    return pod;
}

static json_t *s_new_pod_plain (const json_t *warmpod, const char *pool, const s_spec_t *s)
{
    const char *wname = lss_obj_str (warmpod, "metadata.name");
    const char *ns = lss_obj_str (warmpod, "metadata.namespace");
    json_t *owner = lss_obj_owner_ref (warmpod);
    if (!wname || !ns || !owner) {
        json_decref (owner);
        return NULL;
    }
    json_t *pod = json_pack (
        "{s:s, s:s, s:{s:s, s:s, s:[o]}, s:{s:s, s:s, s:b, s:[{s:s, s:s, s:[s], "
        "s:{s:{s:s, s:s, s:s}}, s:{s:i, s:i, s:b, s:b, s:b}}]}}",
        "apiVersion", "v1", "kind", "Pod", "metadata", "name", wname, "namespace", ns,
        "ownerReferences", owner, "spec", "nodeName", "", "restartPolicy", "Never",
        "automountServiceAccountToken", 0, "containers", "name", "sandbox", "image", s->image,
        "command", S_AGENT_COMMAND, "resources", "limits", "cpu", s->cpu, "memory", s->memory,
        "ephemeral-storage", s->storage, "securityContext", "runAsUser", 1000, "runAsGroup",
        1000, "runAsNonRoot", 1, "readOnlyRootFilesystem", 1, "allowPrivilegeEscalation", 0);
    lss_pod_security_t sec = {.uid = 1000, .gid = 1000};
    char herr[256];
    if (pod && lss_pod_harden (pod, &sec, herr, sizeof herr)) {
        lss_log_error ("warm pod not hardened: not created", "{s:s}", "error", herr);
        json_decref (pod);
        return NULL;
    }
    if (!pod)
        return NULL;
    s_set_labels (pod, pool, s);
    lss_obj_set_label (pod, LSS_LABEL_WARMPOD, wname);
    lss_obj_set_annotation (pod, LSS_ANN_LEVEL, s->level);
    lss_obj_set_annotation (pod, LSS_ANN_INTERPRETERS, s->interpreters);
    /* The pool spec grants no network: warm pods never get egress (least privilege). */
    lss_obj_set_annotation (pod, LSS_ANN_NETWORK, "none");
    return pod;
}

static bool s_pod_ready (const json_t *pod)
{
    const char *phase = lss_obj_str (pod, "status.phase");
    json_t *c = lss_obj_condition (pod, "Ready");
    const char *st = c ? json_string_value (json_object_get (c, "status")) : NULL;
    return phase && strcmp (phase, "Running") == 0 && st && strcmp (st, "True") == 0;
}

static bool s_pod_finished (const json_t *pod)
{
    const char *phase = lss_obj_str (pod, "status.phase");
    return phase && (strcmp (phase, "Failed") == 0 || strcmp (phase, "Succeeded") == 0);
}

/*  The agent endpoint of a Ready Pod: status.agentEndpoint (local mode), else
 *  tcp://<podIP>:7430; "" if neither is usable. */
static void s_pod_endpoint (const json_t *pod, char *out, size_t size)
{
    out[0] = '\0';
    const char *ep = lss_obj_str (pod, "status.agentEndpoint");
    if (ep && *ep && strlen (ep) < size && strlen (ep) <= S_ENDPOINT_MAX &&
        (strncmp (ep, "ipc://", 6) == 0 || strncmp (ep, "tcp://", 6) == 0)) {
        snprintf (out, size, "%s", ep);
        return;
    }
    const char *ip = lss_obj_str (pod, "status.podIP");
    if (ip && *ip && strlen (ip) <= 45 &&
        strspn (ip, "0123456789abcdefABCDEF.:") == strlen (ip))
        lss_fmt (out, size, strchr (ip, ':') ? "tcp://[%s]:%d" : "tcp://%s:%d", ip,
                 S_AGENT_PORT);
}

static void s_next (int64_t *next, int64_t at)
{
    if (at > 0 && (*next == 0 || at < *next))
        *next = at;
}

/*  Writes a WarmPod's status (copy of it with the changes) guarded by its rv. */
static int s_update_status (lss_store_t *store, json_t *wp, char *err, size_t err_size)
{
    return lss_store_update_status (store, wp, NULL, err, err_size);
}

static int s_delete (lss_store_t *store, const json_t *obj, char *err, size_t err_size)
{
    int rc = lss_store_delete (store, lss_obj_str (obj, "kind"),
                               lss_obj_str (obj, "metadata.namespace"),
                               lss_obj_str (obj, "metadata.name"),
                               lss_obj_str (obj, "metadata.resourceVersion"), err, err_size);
    return rc == LSS_STORE_NOT_FOUND ? LSS_STORE_OK : rc;
}

typedef struct {
    json_t *wp;
    int64_t created_ms;
} s_idle_t;

static int s_idle_cmp (const void *a, const void *b)
{
    const s_idle_t *x = a, *y = b;
    if (x->created_ms != y->created_ms)
        return x->created_ms < y->created_ms ? -1 : 1;
    return strcmp (lss_obj_str (x->wp, "metadata.name"), lss_obj_str (y->wp, "metadata.name"));
}

/*  Writes the pool's status if it differs from what is stored. */
static int s_write_pool_status (lss_store_t *store, const json_t *pool, json_t *status,
                                char *err, size_t err_size)
{
    json_t *old = json_object_get (pool, "status");
    if (old && json_equal (old, status))
        return LSS_STORE_OK;
    json_t *copy = json_copy ((json_t *)pool);
    if (!copy)
        return LSS_STORE_UNAVAILABLE;
    json_object_set (copy, "status", status);
    int rc = lss_store_update_status (store, copy, NULL, err, err_size);
    json_decref (copy);
    return rc;
}

/*  A status object for the pool: the stored one (deep copy) or a new one. */
static json_t *s_status_copy (const json_t *pool)
{
    json_t *old = json_object_get (pool, "status");
    return json_is_object (old) ? json_deep_copy (old) : json_object ();
}

static void s_set_cond (json_t *status, const char *type, const char *st, const char *reason,
                        const char *message, int64_t now_ms)
{
    /* lss_obj_set_condition works on an object with a status member */
    json_t *holder = json_pack ("{s:O}", "status", status);
    if (holder) {
        lss_obj_set_condition (holder, type, st, reason, message, now_ms);
        json_decref (holder);
    }
}

/*  The pool cannot be acted on: set Ready False with reason, keep counts as they are. */
static int s_pool_blocked (lss_store_t *store, const json_t *pool, const char *reason,
                           const char *message, int64_t now_ms, char *err, size_t err_size)
{
    json_t *status = s_status_copy (pool);
    if (!status)
        return LSS_STORE_UNAVAILABLE;
    json_object_set_new (status, "observedGeneration",
                         json_integer (lss_obj_int (pool, "metadata.generation", 0)));
    s_set_cond (status, "Ready", "False", reason, message, now_ms);
    int rc = s_write_pool_status (store, pool, status, err, err_size);
    json_decref (status);
    return rc;
}

int warmpool_sync (lss_store_t *store, const char *ns, const char *name, int64_t now_ms,
                   int64_t *requeue_after_ms, char *err, size_t err_size)
{
    return warmpool_sync_report (store, ns, name, now_ms, requeue_after_ms, NULL, err,
                                 err_size);
}

int warmpool_sync_report (lss_store_t *store, const char *ns, const char *name, int64_t now_ms,
                          int64_t *requeue_after_ms, warmpool_report_t *report, char *err,
                          size_t err_size)
{
    warmpool_report_t local = {0};
    warmpool_report_t *r = report ? report : &local;
    memset (r, 0, sizeof *r);
    if (requeue_after_ms)
        *requeue_after_ms = 0;
    if (!store || !ns || !name) {
        lss_errf (err, err_size, "warmpool_sync: missing argument");
        return LSS_STORE_INVALID;
    }
    if (lss_store_check_name ("namespace", ns, err, err_size) ||
        strlen (ns) > LSS_STORE_NAMESPACE_MAX ||
        lss_store_check_name ("name", name, err, err_size))
        return LSS_STORE_INVALID;

    json_t *pool = NULL, *rt = NULL, *wps = NULL, *pods = NULL, *pod_by_name = NULL;
    json_t *status = NULL;
    s_idle_t *idle = NULL;
    int64_t next = 0;
    char msg[256];
    const char *reason = NULL;
    s_spec_t s;
    int rc = lss_store_get (store, "WarmPool", ns, name, &pool, err, err_size);
    if (rc == LSS_STORE_NOT_FOUND) {
        r->deleted_pool = 1;
        return LSS_STORE_OK; /* its WarmPods and Pods went with it (owner references) */
    }
    if (rc != LSS_STORE_OK)
        return rc;
    if (lss_obj_deleting (pool))
        goto cleanup;
    const char *pool_uid = lss_obj_str (pool, "metadata.uid");
    if (!pool_uid) {
        lss_errf (err, err_size, "WarmPool %s/%s has no uid", ns, name);
        rc = LSS_STORE_INVALID;
        goto cleanup;
    }
    if (s_parse_spec (pool, &s, &reason, msg, sizeof msg) != 0) {
        rc = s_pool_blocked (store, pool, reason, msg, now_ms, err, err_size);
        goto cleanup;
    }
    rc = lss_store_get (store, "RuntimeEnvironment", "", s.runtime, &rt, err, err_size);
    if (rc == LSS_STORE_NOT_FOUND) {
        lss_errf (msg, sizeof msg, "RuntimeEnvironment %s not found", s.runtime);
        rc = s_pool_blocked (store, pool, "RuntimeNotFound", msg, now_ms, err, err_size);
        goto cleanup;
    }
    if (rc != LSS_STORE_OK)
        goto cleanup;
    if (s_parse_runtime (rt, &s, msg, sizeof msg) != 0) {
        rc = s_pool_blocked (store, pool, "RuntimeInvalid", msg, now_ms, err, err_size);
        goto cleanup;
    }

    char selector[128];
    snprintf (selector, sizeof selector, LSS_LABEL_POOL "=%s", name);
    rc = s_list_all (store, "WarmPod", ns, selector, &wps, err, err_size);
    if (rc != LSS_STORE_OK)
        goto cleanup;
    rc = s_list_all (store, "Pod", ns, selector, &pods, err, err_size);
    if (rc != LSS_STORE_OK)
        goto cleanup;
    pod_by_name = json_object ();
    idle = calloc (json_array_size (wps) + 1, sizeof *idle);
    if (!pod_by_name || !idle) {
        rc = LSS_STORE_UNAVAILABLE;
        goto cleanup;
    }
    size_t i;
    json_t *it;
    json_array_foreach (pods, i, it)
    {
        const char *pn = lss_obj_str (it, "metadata.name");
        if (pn)
            json_object_set (pod_by_name, pn, it);
    }

    size_t idle_count = 0;
    json_array_foreach (wps, i, it)
    {
        const char *wname = lss_obj_str (it, "metadata.name");
        const char *wuid = lss_obj_str (it, "metadata.uid");
        if (!wname || !wuid || !lss_obj_owned_by (it, pool_uid) || lss_obj_deleting (it))
            continue; /* not ours (a stray label) or already going */
        const char *phase = lss_obj_str (it, "status.phase");
        if (!phase)
            phase = "Pending";
        int64_t created = s_time_or (it, "metadata.creationTimestamp", now_ms);
        json_t *pod = json_object_get (pod_by_name, wname);
        bool pod_ours = pod && lss_obj_owned_by (pod, wuid);

        if (strcmp (phase, "Assigned") == 0) {
            int64_t at = s_time_or (it, "status.assignedAt", created);
            const char *to = lss_obj_str (it, "status.assignedTo");
            if (now_ms - at < WARMPOOL_ASSIGN_GRACE_MS) {
                s_next (&next, at + WARMPOOL_ASSIGN_GRACE_MS);
                r->assigned++;
                continue;
            }
            json_t *sb = NULL;
            int grc = LSS_STORE_NOT_FOUND;
            if (to && lss_store_check_name ("assignedTo", to, NULL, 0) == 0)
                grc = lss_store_get (store, "Sandbox", ns, to, &sb, err, err_size);
            json_decref (sb);
            if (grc == LSS_STORE_OK) {
                r->assigned++;
                continue;
            }
            if (grc != LSS_STORE_NOT_FOUND) {
                rc = grc;
                goto cleanup;
            }
            lss_log_info ("released warm pod: its sandbox is gone", "{s:s, s:s, s:s, s:s}",
                          "namespace", ns, "pool", name, "warmpod", wname, "sandbox",
                          to ? to : "");
            if ((rc = s_delete (store, it, err, err_size)) != LSS_STORE_OK)
                goto cleanup;
            r->released++;
            continue;
        }
        if (strcmp (phase, "Terminating") == 0)
            continue;
        bool ready = strcmp (phase, "Ready") == 0;
        /* A Pod that ended, or a Ready warm pod that lost its Pod: replace. */
        if ((pod_ours && s_pod_finished (pod)) || (ready && !pod_ours)) {
            lss_log_info ("replacing warm pod", "{s:s, s:s, s:s, s:s}", "namespace", ns, "pool",
                          name, "warmpod", wname, "why",
                          pod_ours ? "pod finished" : "pod missing");
            if ((rc = s_delete (store, it, err, err_size)) != LSS_STORE_OK)
                goto cleanup;
            r->replaced++;
            continue;
        }
        if (ready) {
            if (s.ttl_ms > 0 && now_ms - created >= s.ttl_ms) {
                lss_log_info ("recycling idle warm pod past its ttl", "{s:s, s:s, s:s}",
                              "namespace", ns, "pool", name, "warmpod", wname);
                if ((rc = s_delete (store, it, err, err_size)) != LSS_STORE_OK)
                    goto cleanup;
                r->replaced++;
                continue;
            }
            if (s.ttl_ms > 0)
                s_next (&next, created + s.ttl_ms);
            idle[idle_count].wp = it;
            idle[idle_count].created_ms = created;
            idle_count++;
            r->available++;
            continue;
        }
        /* Pending (or an unknown phase, read as Pending). */
        if (!pod) {
            /* created without its Pod (a pass that failed half-way): create it now */
            json_t *np = s_new_pod (store, it, name, &s, &rc, err, err_size);
            if (np)
                rc = lss_store_create (store, np, NULL, err, err_size);
            json_decref (np);
            if (rc != LSS_STORE_OK && rc != LSS_STORE_CONFLICT)
                goto cleanup;
            rc = LSS_STORE_OK;
            r->pending++;
            continue;
        }
        if (!pod_ours) {
            r->pending++; /* a Pod of that name owned by something else: leave it alone */
            continue;
        }
        if (!s_pod_ready (pod)) {
            /* a Pod that never becomes Ready (image pull, unschedulable, a stuck node)
             * must not hold a pool slot for ever: replaced after WARMPOOL_PENDING_MAX_MS */
            if (now_ms - created >= WARMPOOL_PENDING_MAX_MS) {
                lss_log_warn ("warm pod replaced: its Pod was not Ready in time",
                              "{s:s, s:s, s:s, s:I}", "namespace", ns, "pool", name, "warmpod",
                              wname, "pending_ms", (json_int_t)(now_ms - created));
                if ((rc = s_delete (store, it, err, err_size)) != LSS_STORE_OK)
                    goto cleanup;
                r->replaced++;
                continue;
            }
            s_next (&next, created + WARMPOOL_PENDING_MAX_MS);
            r->pending++;
            continue;
        }
        json_t *upd = json_deep_copy (it);
        if (!upd) {
            rc = LSS_STORE_UNAVAILABLE;
            goto cleanup;
        }
        if (s.preload && warmpool_preload_available ()) {
            /* preloadScripts (warmpool_preload): run through lss-executor before the pod
             * is offered; the executor finds the agent by the Pending WarmPod's endpoint */
            char pmsg[256] = "";
            warmpool_preload_state_t ps = warmpool_preload_poll (ns, wname, pmsg, sizeof pmsg);
            if (ps == WARMPOOL_PRELOAD_FAILED) {
                json_decref (upd);
                lss_log_warn ("warm pod replaced: its preload failed", "{s:s, s:s, s:s, s:s}",
                              "namespace", ns, "pool", name, "warmpod", wname, "error", pmsg);
                if ((rc = s_delete (store, it, err, err_size)) != LSS_STORE_OK)
                    goto cleanup;
                r->replaced++;
                continue;
            }
            if (ps == WARMPOOL_PRELOAD_NONE) {
                char pep[S_ENDPOINT_MAX + 1];
                s_pod_endpoint (pod, pep, sizeof pep);
                json_t *pst = json_object_get (upd, "status");
                const char *pkey = lss_obj_annotation (pod, LSS_ANN_AGENT_KEY);
                if (json_is_object (pst) && *pep) {
                    json_object_set_new (pst, "phase", json_string ("Pending"));
                    json_object_set_new (pst, "endpoint", json_string (pep));
                    if (pkey)
                        json_object_set_new (pst, "agentPublicKey", json_string (pkey));
                }
                lss_obj_set_condition (upd, "Preloaded", "False", "Preloading", NULL, now_ms);
                rc = *pep ? s_update_status (store, upd, err, err_size) : LSS_STORE_OK;
                int started = rc == LSS_STORE_OK && *pep
                                  ? warmpool_preload_start (
                                        ns, wname, lss_obj_at (pool, "spec.preloadScripts"),
                                        pmsg, sizeof pmsg)
                                  : 1;
                if (started < 0)
                    lss_log_warn ("preload not started", "{s:s, s:s, s:s}", "pool", name,
                                  "warmpod", wname, "error", pmsg);
                json_decref (upd);
                if (rc != LSS_STORE_OK)
                    goto cleanup;
                s_next (&next, now_ms + 250);
                r->pending++;
                continue;
            }
            if (ps == WARMPOOL_PRELOAD_RUNNING) {
                json_decref (upd);
                s_next (&next, now_ms + 250);
                r->pending++;
                continue;
            }
            lss_obj_set_condition (upd, "Preloaded", "True", "Preloaded", NULL, now_ms);
        } else if (s.preload) {
            /* no executor configured: such pods are never offered */
            if (lss_obj_set_condition (upd, "Preloaded", "False", "PreloadUnavailable",
                                       "preload scripts need warmpool.executor_endpoint",
                                       now_ms) == 1) {
                lss_log_warn ("warm pod held Pending: preloadScripts cannot run (no "
                              "warmpool.executor_endpoint)",
                              "{s:s, s:s, s:s}", "namespace", ns, "pool", name, "warmpod",
                              wname);
                json_object_set_new (json_object_get (upd, "status"), "phase",
                                     json_string ("Pending"));
                rc = s_update_status (store, upd, err, err_size);
            }
            json_decref (upd);
            if (rc != LSS_STORE_OK)
                goto cleanup;
            r->pending++;
            continue;
        }
        char ep[S_ENDPOINT_MAX + 1];
        s_pod_endpoint (pod, ep, sizeof ep);
        json_t *st = json_object_get (upd, "status");
        if (!json_is_object (st)) {
            st = json_object ();
            json_object_set_new (upd, "status", st);
        }
        json_object_set_new (st, "phase", json_string ("Ready"));
        json_object_set_new (st, "podName", json_string (wname));
        json_object_set_new (st, "podNamespace", json_string (ns));
        if (*ep)
            json_object_set_new (st, "endpoint", json_string (ep));
        else
            json_object_del (st, "endpoint");
        lss_obj_set_condition (upd, "Ready", "True", "PodReady", NULL, now_ms);
        rc = s_update_status (store, upd, err, err_size);
        json_decref (upd);
        if (rc != LSS_STORE_OK)
            goto cleanup;
        r->marked_ready++;
        r->available++;
        /* not a scale-down candidate in this pass: its stored copy just changed */
        if (s.ttl_ms > 0)
            s_next (&next, created + s.ttl_ms);
    }

    /* Targets. */
    int want =
        warmpool_desired_idle (s.min_size, s.max_total, r->assigned, s.autoscale, s.target_pct);
    int uncapped =
        warmpool_desired_idle (s.min_size, 1 << 30, r->assigned, s.autoscale, s.target_pct);
    r->desired_idle = want;
    status = s_status_copy (pool);
    if (!status) {
        rc = LSS_STORE_UNAVAILABLE;
        goto cleanup;
    }
    int idle_now = r->available + r->pending;

    /* Scale down: surplus of Ready idle pods, once it has lasted scaleDownDelay
     * (autoscaling on; without it the surplus can only come from a lowered minSize or
     * maxSize and goes at once). */
    int surplus = idle_now - want;
    if (surplus > 0 && idle_count > 0) {
        int64_t since = now_ms;
        json_t *holder = json_pack ("{s:O}", "status", status);
        json_t *c = holder ? lss_obj_condition (holder, S_COND_SCALE_DOWN) : NULL;
        const char *cst = c ? json_string_value (json_object_get (c, "status")) : NULL;
        if (cst && strcmp (cst, "True") == 0)
            since = s_time_or (c, "lastTransitionTime", now_ms);
        json_decref (holder);
        int64_t delay = s.autoscale ? s.delay_ms : 0;
        if (now_ms - since >= delay) {
            qsort (idle, idle_count, sizeof *idle, s_idle_cmp);
            for (size_t k = 0; k < idle_count && surplus > 0; k++) {
                rc = s_delete (store, idle[k].wp, err, err_size);
                if (rc != LSS_STORE_OK)
                    goto cleanup;
                r->scaled_down++;
                r->available--;
                surplus--;
            }
            s_set_cond (status, S_COND_SCALE_DOWN, "False", "AtTarget", NULL, now_ms);
        } else {
            s_set_cond (status, S_COND_SCALE_DOWN, "True", "IdleAboveTarget",
                        "more idle warm pods than needed; scaling down after scaleDownDelay",
                        now_ms);
            s_next (&next, since + delay);
        }
    } else
        s_set_cond (status, S_COND_SCALE_DOWN, "False", "AtTarget", NULL, now_ms);

    /* Scale up / refill. */
    idle_now = r->available + r->pending;
    int need = want - idle_now;
    if (need > WARMPOOL_CREATE_PER_PASS) {
        need = WARMPOOL_CREATE_PER_PASS;
        s_next (&next, now_ms + WARMPOOL_REQUEUE_SOON_MS);
    }
    for (int k = 0; k < need; k++) {
        json_t *wp = s_new_warmpod (pool, ns, name, &s, now_ms);
        json_t *created = NULL;
        rc = wp ? lss_store_create (store, wp, &created, err, err_size) : LSS_STORE_INVALID;
        json_decref (wp);
        if (rc != LSS_STORE_OK)
            goto cleanup;
        json_t *np = s_new_pod (store, created, name, &s, &rc, err, err_size);
        if (np)
            rc = lss_store_create (store, np, NULL, err, err_size);
        json_decref (np);
        if (rc == LSS_STORE_OK) {
            json_t *st = json_pack ("{s:s, s:s, s:s}", "phase", "Pending", "podName",
                                    lss_obj_str (created, "metadata.name"), "podNamespace", ns);
            json_object_set_new (created, "status", st);
            lss_obj_set_condition (created, "Ready", "False", "PodStarting", NULL, now_ms);
            if (s.preload)
                lss_obj_set_condition (created, "Preloaded", "False", "PodStarting", NULL,
                                       now_ms);
            rc = s_update_status (store, created, err, err_size);
        }
        json_decref (created);
        if (rc != LSS_STORE_OK)
            goto cleanup;
        r->created++;
        r->pending++;
    }

    /* Status. */
    char ts[LSS_TIME_RFC3339_SIZE];
    json_object_set_new (status, "availablePods", json_integer (r->available));
    json_object_set_new (status, "assignedPods", json_integer (r->assigned));
    json_object_set_new (status, "pendingPods", json_integer (r->pending));
    json_object_set_new (status, "observedGeneration",
                         json_integer (lss_obj_int (pool, "metadata.generation", 0)));
    if (r->created > 0 || r->scaled_down > 0)
        json_object_set_new (status, "lastScaleTime",
                             json_string (lss_time_rfc3339 (now_ms, ts)));
    if (r->available >= s.min_size)
        s_set_cond (status, "Ready", "True", "MinAvailable", NULL, now_ms);
    else
        s_set_cond (status, "Ready", "False", "Filling",
                    "fewer Ready warm pods than minSize; more are starting", now_ms);
    if (uncapped > want)
        s_set_cond (status, "ScalingLimited", "True",
                    s.max_from_spec ? "MaxSizeReached" : "HardCapReached",
                    s.max_from_spec ? "the pool wants more pods than maxSize allows"
                                    : "the pool wants more pods than the per-pool hard cap",
                    now_ms);
    else
        s_set_cond (status, "ScalingLimited", "False", "WithinLimits", NULL, now_ms);
    if (s.preload && !warmpool_preload_available ())
        s_set_cond (status, "Preloaded", "False", "PreloadUnavailable",
                    "preloadScripts need warmpool.executor_endpoint", now_ms);
    else if (s.preload)
        s_set_cond (status, "Preloaded", "True", "PreloadScripts",
                    "warm pods are offered once their preloadScripts exited 0", now_ms);
    rc = s_write_pool_status (store, pool, status, err, err_size);

cleanup:
    if (rc == LSS_STORE_OK && requeue_after_ms && next > 0)
        *requeue_after_ms = next > now_ms ? next - now_ms : WARMPOOL_REQUEUE_SOON_MS;
    free (idle);
    json_decref (status);
    json_decref (pod_by_name);
    json_decref (pods);
    json_decref (wps);
    json_decref (rt);
    json_decref (pool);
    return rc;
}
