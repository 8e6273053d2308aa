/*  reconciler_sync — one level-triggered pass over one Sandbox. See reconciler_sync.h. */
#include "reconciler_sync.h"

#include <string.h>

#include "lss_log.h"
#include "lss_obj.h"
#include "lss_pod.h"
#include "reconciler_netpol.h"
#include "lss_util.h"

#define S_DEFAULT_TIMEOUT_S 300
#define S_MAX_TIMEOUT_S     3600
#define S_DEFAULT_CPU       "500m"
#define S_DEFAULT_MEMORY    "512Mi"
#define S_DEFAULT_STORAGE   "1Gi"
#define S_INTERP_MAX        256
#define S_GONE_RETRY_MS     200 /* a leftover Pod of an earlier Sandbox is being removed */

typedef struct {
    lss_store_t *store;
    const reconciler_opts_t *opts;
    const char *ns;
    const char *name;
    int64_t now;
    json_t *sb;      /* the Sandbox as last read or written (owned) */
    json_t *status0; /* its status when read, to write only on change (owned) */
    reconciler_result_t *res;
    char *err;
    size_t err_size;
} s_ctx_t;

static json_t *s_status (s_ctx_t *c)
{
    json_t *st = json_object_get (c->sb, "status");
    if (!json_is_object (st)) {
        st = json_object ();
        json_object_set_new (c->sb, "status", st);
    }
    return st;
}

static const char *s_phase (s_ctx_t *c)
{
    const char *p = lss_obj_str (c->sb, "status.phase");
    return p ? p : "";
}

static void s_set_str (json_t *obj, const char *key, const char *value)
{
    if (value)
        json_object_set_new (obj, key, json_string (value));
    else
        json_object_del (obj, key);
}

static void s_set_phase (s_ctx_t *c, const char *phase, const char *reason)
{
    s_set_str (s_status (c), "phase", phase);
    if (reason && !c->res->reason[0])
        lss_errf (c->res->reason, sizeof c->res->reason, "%s", reason);
}

/*  Writes status if it changed since read; keeps the stored object as c->sb. */
static int s_write_status (s_ctx_t *c)
{
    json_object_set_new (s_status (c), "observedGeneration",
                         json_integer (lss_obj_int (c->sb, "metadata.generation", 0)));
    if (json_equal (c->status0, json_object_get (c->sb, "status")))
        return 0;
    json_t *out = NULL;
    int rc = lss_store_update_status (c->store, c->sb, &out, c->err, c->err_size);
    if (rc)
        return rc;
    json_decref (c->sb);
    c->sb = out;
    json_decref (c->status0);
    c->status0 = json_deep_copy (json_object_get (c->sb, "status"));
    return 0;
}

static int s_fail (s_ctx_t *c, const char *reason, const char *message)
{
    s_set_phase (c, "Failed", reason);
    lss_obj_set_condition (c->sb, "Ready", "False", reason, message, c->now);
    lss_log_warn ("sandbox failed", "{s:s, s:s, s:s, s:s}", "namespace", c->ns, "name", c->name,
                  "reason", reason, "message", message ? message : "");
    return s_write_status (c);
}

/* ------------------------------------------------------------------ the Pod */

static const char *s_first (const char *a, const char *b, const char *dflt)
{
    return a ? a : b ? b : dflt;
}

/*  The sandbox's security level: spec, or the profile's for "custom". */
static const char *s_level (const json_t *sandbox, const json_t *profile)
{
    const char *lvl = lss_obj_str (sandbox, "spec.securityLevel");
    const char *plvl = lss_obj_str (profile, "spec.securityLevel");
    if (lvl && strcmp (lvl, "high") == 0)
        return "high";
    if (plvl && strcmp (plvl, "high") == 0)
        return "high";
    return "standard";
}

json_t *reconciler_pod_for (const json_t *sandbox, const json_t *runtime, const json_t *profile,
                            const reconciler_opts_t *opts, char *err, size_t err_size)
{
    const char *name = lss_obj_str (sandbox, "metadata.name");
    const char *ns = lss_obj_str (sandbox, "metadata.namespace");
    const char *rt = lss_obj_str (sandbox, "spec.runtime");
    char rt_label[64];
    if (!name || !ns || !rt || lss_obj_sanitize_label (rt, rt_label, sizeof rt_label)) {
        lss_errf (err, err_size, "spec.runtime: missing or unusable");
        return NULL;
    }
    const char *level = s_level (sandbox, profile);

    /* resources: the sandbox's, else the profile's defaults, else ours; all checked */
    const char *keys[3][3] = {{"cpu", "cpu", S_DEFAULT_CPU},
                              {"memory", "memory", S_DEFAULT_MEMORY},
                              {"ephemeralStorage", "ephemeral-storage", S_DEFAULT_STORAGE}};
    json_t *limits = json_object ();
    for (int i = 0; i < 3; i++) {
        json_t *own = lss_obj_at (sandbox, "spec.resources");
        json_t *def = lss_obj_at (profile, "spec.resourceDefaults");
        const char *v =
            s_first (json_string_value (json_object_get (own, keys[i][0])),
                     json_string_value (json_object_get (def, keys[i][0])), keys[i][2]);
        int64_t parsed;
        int bad = i == 0 ? lss_obj_parse_cpu (v, &parsed) : lss_obj_parse_bytes (v, &parsed);
        if (bad || parsed <= 0) {
            lss_errf (err, err_size, "spec.resources.%s: '%.64s' is not a valid quantity",
                      keys[i][0], v);
            json_decref (limits);
            return NULL;
        }
        json_object_set_new (limits, keys[i][1], json_string (v));
    }

    json_int_t uid = lss_obj_int (sandbox, "spec.securityContext.runAsUser", 1000);
    json_int_t gid = lss_obj_int (sandbox, "spec.securityContext.runAsGroup", 1000);
    if (uid <= 0 || uid > 65534 || gid <= 0 || gid > 65534) {
        lss_errf (err, err_size, "spec.securityContext: runAsUser/runAsGroup must be 1..65534");
        json_decref (limits);
        return NULL;
    }

    /* interpreter of the runtime's language */
    char interp[S_INTERP_MAX] = "";
    const char *lang = lss_obj_agent_language (lss_obj_str (runtime, "spec.language"));
    const char *path = lss_obj_str (runtime, "spec.interpreter");
    if (lang && path) {
        bool ok = path[0] == '/' && !strpbrk (path, ",= \t\n") && !strpbrk (lang, ",=/ \t\n");
        if (!ok || lss_fmt (interp, sizeof interp, "%s=%s", lang, path)) {
            lss_errf (err, err_size, "RuntimeEnvironment spec.interpreter: unusable path");
            json_decref (limits);
            return NULL;
        }
    }
    json_t *egress = lss_obj_at (sandbox, "spec.networkAccess.egress");
    bool net =
        strcmp (level, "high") != 0 && json_is_array (egress) && json_array_size (egress);
    const char *image = lss_obj_str (runtime, "spec.image");

    json_t *owner = lss_obj_owner_ref (sandbox);
    json_t *pod = json_pack (
        "{s:s, s:s, s:{s:s, s:s, s:{s:s, s:s, s:s, s:s, s:s}, s:{s:s, s:s, s:s}, s:[o*]},"
        " s:{s:s, s:s, s:b, s:[{s:s, s:s, s:[s], s:{s:o}, s:{s:I, s:I, s:b, s:b, s:b}}]}}",
        "apiVersion", "v1", "kind", "Pod", "metadata", "name", name, "namespace", ns, "labels",
        LSS_LABEL_PART_OF, "llmsafespace", LSS_LABEL_COMPONENT, "sandbox", LSS_LABEL_RUNTIME,
        rt_label, LSS_LABEL_LEVEL, level, LSS_LABEL_SANDBOX, name, "annotations", LSS_ANN_LEVEL,
        level, LSS_ANN_INTERPRETERS, interp, LSS_ANN_NETWORK, net ? "egress" : "none",
        "ownerReferences", owner, "spec", "nodeName",
        opts && opts->node_name ? opts->node_name : "", "restartPolicy", "Never",
        "automountServiceAccountToken", 0, "containers", "name", "sandbox", "image",
        image ? image : "", "command",
        opts && opts->agent_command ? opts->agent_command : "/opt/lss/lss-agent", "resources",
        "limits", limits, "securityContext", "runAsUser", uid, "runAsGroup", gid,
        "runAsNonRoot", 1, "readOnlyRootFilesystem", 1, "allowPrivilegeEscalation", 0);
    if (!pod) {
        lss_errf (err, err_size, "out of memory building the Pod");
        return NULL;
    }
    lss_pod_security_t sec = {
        .uid = uid,
        .gid = gid,
        .seccomp_localhost = lss_obj_str (profile, "spec.seccompProfile"),
        .runtime_class = lss_obj_str (profile, "spec.runtimeClassName"),
    };
    if (lss_pod_harden (pod, &sec, err, err_size)) {
        json_decref (pod);
        return NULL;
    }
    return pod;
}

/* ------------------------------------------------------------------ deletion, expiry */

static int s_delete_ignore_missing (s_ctx_t *c, const char *kind, const char *name)
{
    if (!name || !*name)
        return 0;
    int rc = lss_store_delete (c->store, kind, c->ns, name, NULL, c->err, c->err_size);
    return rc == LSS_STORE_NOT_FOUND ? 0 : rc;
}

static const char *s_pod_name (s_ctx_t *c)
{
    const char *p = lss_obj_str (c->sb, "status.podName");
    return p ? p : c->name;
}

static const char *s_warm_name (s_ctx_t *c)
{
    const char *w = lss_obj_str (c->sb, "status.warmPodRef.name");
    return w ? w : lss_obj_annotation (c->sb, LSS_ANN_WARM_POD);
}

/*  True if the Pod is ours: owned by this Sandbox (uid). */
static bool s_pod_ours (s_ctx_t *c, const json_t *pod)
{
    return lss_obj_owned_by (pod, lss_obj_str (c->sb, "metadata.uid"));
}

/*  Deletes the Sandbox's Pod and warm pod; returns 1 once the Pod is gone. */
static int s_remove_children (s_ctx_t *c)
{
    json_t *pod = NULL;
    int rc = lss_store_get (c->store, "Pod", c->ns, s_pod_name (c), &pod, c->err, c->err_size);
    if (rc == 0) {
        bool ours = s_pod_ours (c, pod);
        json_decref (pod);
        if (ours) {
            rc = s_delete_ignore_missing (c, "Pod", s_pod_name (c));
            if (rc)
                return rc;
        }
    } else if (rc != LSS_STORE_NOT_FOUND)
        return rc;
    /* only a warm pod we adopted: a claim naming someone else's is never touched */
    rc = s_delete_ignore_missing (c, "WarmPod", lss_obj_str (c->sb, "status.warmPodRef.name"));
    if (rc)
        return rc;
    rc = lss_store_get (c->store, "Pod", c->ns, s_pod_name (c), &pod, c->err, c->err_size);
    if (rc == LSS_STORE_NOT_FOUND)
        return 1;
    bool still_ours = rc == 0 && s_pod_ours (c, pod);
    json_decref (pod);
    if (rc)
        return rc;
    return still_ours ? 0 : 1;
}

static int s_finalize (s_ctx_t *c)
{
    if (strcmp (s_phase (c), "Terminating") != 0 && strcmp (s_phase (c), "Terminated") != 0) {
        s_set_phase (c, "Terminating", "Terminating");
        lss_obj_set_condition (c->sb, "Ready", "False", "Terminating",
                               "sandbox is being deleted", c->now);
        int rc = s_write_status (c);
        if (rc)
            return rc;
    }
    int gone = s_remove_children (c);
    if (gone < 0)
        return gone;
    if (!gone) {
        c->res->requeue_after_ms = S_GONE_RETRY_MS;
        return 0;
    }
    if (strcmp (s_phase (c), "Terminated") != 0) {
        s_set_phase (c, "Terminated", "Terminated");
        lss_obj_set_condition (c->sb, "Ready", "False", "Deleted", "sandbox deleted", c->now);
        int rc = s_write_status (c);
        if (rc)
            return rc;
    }
    if (!lss_obj_has_finalizer (c->sb, LSS_FINALIZER_SANDBOX))
        return 0;
    lss_obj_remove_finalizer (c->sb, LSS_FINALIZER_SANDBOX);
    json_t *out = NULL;
    int rc = lss_store_update (c->store, c->sb, &out, c->err, c->err_size);
    json_decref (out);
    if (rc == 0)
        lss_log_info ("sandbox removed", "{s:s, s:s}", "namespace", c->ns, "name", c->name);
    return rc;
}

static int s_expire (s_ctx_t *c)
{
    int gone = s_remove_children (c);
    if (gone < 0)
        return gone;
    s_set_phase (c, "Terminated", "Expired");
    lss_obj_set_condition (c->sb, "Ready", "False", "Expired", "spec.timeout reached", c->now);
    json_object_del (s_status (c), "endpoint");
    lss_log_info ("sandbox expired", "{s:s, s:s}", "namespace", c->ns, "name", c->name);
    return s_write_status (c);
}

/* ------------------------------------------------------------------ the pass */

static int s_get (s_ctx_t *c, const char *kind, const char *ns, const char *name, json_t **out)
{
    int rc = lss_store_get (c->store, kind, ns, name, out, c->err, c->err_size);
    return rc;
}

/*  Checks the claimed warm pod: assigned to this Sandbox, with a Pod that is its own (or
 *  already ours). Returns 1 with that Pod in *pod_out, 0 if rejected (the reason is in
 *  the WarmPod condition; a first pass then starts cold), or a negative store code. */
static int s_claim_warm (s_ctx_t *c, const char *warm, json_t **pod_out)
{
    json_t *wp = NULL, *pod = NULL;
    *pod_out = NULL;
    int rc = s_get (c, "WarmPod", c->ns, warm, &wp);
    if (rc && rc != LSS_STORE_NOT_FOUND)
        return rc;
    const char *assigned = lss_obj_str (wp, "status.assignedTo");
    const char *wphase = lss_obj_str (wp, "status.phase");
    const char *why = NULL;
    if (rc)
        why = "warm pod not found";
    else if (!assigned || strcmp (assigned, c->name) != 0 || !wphase ||
             strcmp (wphase, "Assigned") != 0)
        why = "warm pod not assigned to this sandbox";
    const char *pod_name = s_first (lss_obj_str (wp, "status.podName"), warm, warm);
    if (!why) {
        rc = s_get (c, "Pod", c->ns, pod_name, &pod);
        if (rc && rc != LSS_STORE_NOT_FOUND) {
            json_decref (wp);
            return rc;
        }
        if (rc)
            why = "warm pod has no Pod";
        else if (!s_pod_ours (c, pod) &&
                 !lss_obj_owned_by (pod, lss_obj_str (wp, "metadata.uid")))
            why = "the warm pod's Pod belongs to someone else";
    }
    if (why) {
        lss_obj_set_condition (c->sb, "WarmPod", "False", "WarmPodRejected", why, c->now);
        lss_log_warn ("warm pod rejected", "{s:s, s:s, s:s, s:s}", "namespace", c->ns, "name",
                      c->name, "warmPod", warm, "reason", why);
        json_decref (wp);
        json_decref (pod);
        return 0;
    }
    json_t *st = s_status (c);
    json_object_set_new (st, "warmPodRef",
                         json_pack ("{s:s, s:s}", "name", warm, "namespace", c->ns));
    json_object_set_new (st, "podName", json_string (pod_name));
    json_object_set_new (st, "podNamespace", json_string (c->ns));
    lss_obj_set_condition (c->sb, "WarmPod", "True", "WarmPodAdopted", NULL, c->now);
    json_decref (wp);
    *pod_out = pod;
    return 1;
}

/*  Makes the claimed Pod the Sandbox's (owner reference, label). It runs after the
 *  Sandbox's status is written: until then the Pod stays owned by its WarmPod, which the
 *  Sandbox's deletion removes, so a Sandbox deleted in between leaves nothing behind. */
static int s_adopt_pod (s_ctx_t *c, json_t **pod)
{
    if (s_pod_ours (c, *pod))
        return 0;
    json_t *refs = json_array ();
    json_array_append_new (refs, lss_obj_owner_ref (c->sb));
    json_object_set_new (json_object_get (*pod, "metadata"), "ownerReferences", refs);
    lss_obj_set_label (*pod, LSS_LABEL_SANDBOX, c->name);
    json_t *stored = NULL;
    int rc = lss_store_update (c->store, *pod, &stored, c->err, c->err_size);
    json_decref (*pod);
    *pod = stored;
    return rc;
}

/*  Creates the sandbox's NetworkPolicy when opts ask for them (an existing one is kept:
 *  it was made from the same spec). 0, 1 when the sandbox was failed (a bad grant), or a
 *  negative LSS_STORE_* code. */
static int s_ensure_netpol (s_ctx_t *c, const json_t *profile)
{
    if (!c->opts || !c->opts->network_policies)
        return 0;
    json_t *egress = lss_obj_at (c->sb, "spec.networkAccess.egress");
    bool net = strcmp (s_level (c->sb, profile), "high") != 0 && json_is_array (egress) &&
               json_array_size (egress) > 0;
    char why[LSS_STORE_ERR_SIZE];
    json_t *np = reconciler_netpol_for (c->sb, net, c->opts->executor_ns, why, sizeof why);
    if (!np) {
        int rc = s_fail (c, "InvalidSpec", why);
        return rc < 0 ? rc : 1;
    }
    int rc = lss_store_create (c->store, np, NULL, c->err, c->err_size);
    json_decref (np);
    return rc == LSS_STORE_CONFLICT ? 0 : rc;
}

/*  Resolves runtime and profile; on a missing one the Sandbox is Failed (reason set) and
 *  1 is returned. */
static int s_resolve (s_ctx_t *c, json_t **runtime, json_t **profile)
{
    char rname[64];
    const char *rt = lss_obj_str (c->sb, "spec.runtime");
    if (!rt || lss_obj_sanitize_label (rt, rname, sizeof rname)) {
        int rc = s_fail (c, "InvalidSpec", "spec.runtime is missing or invalid");
        return rc ? rc : 1;
    }
    int rc = s_get (c, "RuntimeEnvironment", "", rname, runtime);
    if (rc == LSS_STORE_NOT_FOUND) {
        char msg[160];
        lss_errf (msg, sizeof msg, "no RuntimeEnvironment %s for runtime %.64s", rname, rt);
        rc = s_fail (c, "RuntimeNotFound", msg);
        return rc ? rc : 1;
    }
    if (rc)
        return rc;
    const char *pname = lss_obj_str (c->sb, "spec.profileRef.name");
    if (!pname)
        return 0;
    const char *pns = s_first (lss_obj_str (c->sb, "spec.profileRef.namespace"), c->ns, c->ns);
    rc = s_get (c, "SandboxProfile", pns, pname, profile);
    if (rc == LSS_STORE_NOT_FOUND || rc == LSS_STORE_INVALID) {
        char msg[320];
        lss_errf (msg, sizeof msg, "no SandboxProfile %.63s/%.200s", pns, pname);
        rc = s_fail (c, "ProfileNotFound", msg);
        return rc ? rc : 1;
    }
    return rc;
}

/*  Mirrors the Pod's state into the Sandbox's status. */
static int s_follow_pod (s_ctx_t *c, const json_t *pod)
{
    json_t *st = s_status (c);
    const char *pphase = lss_obj_str (pod, "status.phase");
    json_t *ready = lss_obj_condition (pod, "Ready");
    bool is_ready =
        ready && pphase && strcmp (pphase, "Running") == 0 &&
        strcmp (s_first (json_string_value (json_object_get (ready, "status")), "", ""),
                "True") == 0;
    if (pphase && (strcmp (pphase, "Failed") == 0 || strcmp (pphase, "Succeeded") == 0)) {
        json_t *cs = json_array_get (lss_obj_at (pod, "status.containerStatuses"), 0);
        json_t *term = lss_obj_at (cs, "state.terminated");
        const char *reason = s_first (json_string_value (json_object_get (term, "reason")),
                                      lss_obj_str (pod, "status.reason"), "PodFailed");
        const char *msg = s_first (json_string_value (json_object_get (term, "message")),
                                   lss_obj_str (pod, "status.message"), "the sandbox ended");
        json_object_del (st, "endpoint");
        return s_fail (c, reason, msg);
    }
    if (!is_ready) {
        s_set_phase (c, "Creating", strcmp (s_phase (c), "Creating") ? "Creating" : NULL);
        lss_obj_set_condition (c->sb, "Ready", "False", "PodNotReady",
                               lss_obj_str (pod, "status.message"), c->now);
        return s_write_status (c);
    }
    const char *endpoint = lss_obj_str (pod, "status.agentEndpoint");
    if (!endpoint) {
        /* cluster mode: the agent listens on the pod IP */
        const char *ip = lss_obj_str (pod, "status.podIP");
        char ep[128];
        if (ip && lss_fmt (ep, sizeof ep, "tcp://%s:7430", ip) == 0)
            json_object_set_new (st, "endpoint", json_string (ep));
        /* the agent's CURVE key, for the executor (cold or warm pod alike) */
        const char *key = lss_obj_annotation (pod, LSS_ANN_AGENT_KEY);
        if (key && lss_curve_key_valid (key))
            json_object_set_new (st, "agentPublicKey", json_string (key));
    } else
        json_object_set_new (st, "endpoint", json_string (endpoint));
    if (!lss_obj_str (c->sb, "status.startTime")) {
        char ts[LSS_TIME_RFC3339_SIZE];
        json_object_set_new (st, "startTime", json_string (lss_time_rfc3339 (c->now, ts)));
    }
    int64_t start_ms = c->now;
    lss_time_parse_rfc3339 (lss_obj_str (c->sb, "status.startTime"), &start_ms);
    int64_t timeout_s = lss_obj_int (c->sb, "spec.timeout", S_DEFAULT_TIMEOUT_S);
    if (timeout_s < 1 || timeout_s > S_MAX_TIMEOUT_S)
        timeout_s = S_DEFAULT_TIMEOUT_S;
    int64_t expires = start_ms + timeout_s * 1000;
    char ts[LSS_TIME_RFC3339_SIZE];
    json_object_set_new (st, "expiresAt", json_string (lss_time_rfc3339 (expires, ts)));
    if (c->now >= expires)
        return s_expire (c);
    s_set_phase (c, "Running", strcmp (s_phase (c), "Running") ? "Running" : NULL);
    lss_obj_set_condition (c->sb, "Ready", "True", "AgentReady", NULL, c->now);
    c->res->requeue_after_ms = expires - c->now + 1;
    return s_write_status (c);
}

static int s_sync (s_ctx_t *c)
{
    int rc = s_get (c, "Sandbox", c->ns, c->name, &c->sb);
    if (rc == LSS_STORE_NOT_FOUND)
        return 0; /* gone: its children went with it (owner references) */
    if (rc)
        return rc;
    c->status0 = json_deep_copy (json_object_get (c->sb, "status"));
    if (lss_obj_deleting (c->sb))
        return s_finalize (c);
    const char *phase = s_phase (c);
    if (strcmp (phase, "Terminated") == 0)
        return 0;
    if (strcmp (phase, "Failed") == 0) {
        /* only a missing runtime or profile heals (when it appears) */
        json_t *ready = lss_obj_condition (c->sb, "Ready");
        const char *why = json_string_value (json_object_get (ready, "reason"));
        if (!why || (strcmp (why, "RuntimeNotFound") && strcmp (why, "ProfileNotFound")))
            return 0;
    }
    if (!lss_obj_has_finalizer (c->sb, LSS_FINALIZER_SANDBOX)) {
        lss_obj_add_finalizer (c->sb, LSS_FINALIZER_SANDBOX);
        json_t *out = NULL;
        rc = lss_store_update (c->store, c->sb, &out, c->err, c->err_size);
        if (rc)
            return rc;
        json_decref (c->sb);
        c->sb = out;
    }
    if (!phase[0]) {
        s_set_phase (c, "Pending", "Pending");
        lss_obj_set_condition (c->sb, "Ready", "False", "Pending", NULL, c->now);
    }

    /* runtime and profile are read only when a Pod or NetworkPolicy is to be made from
     * them: a warm start or a pass over a sandbox that has its Pod needs neither */
    json_t *runtime = NULL, *profile = NULL, *pod = NULL;
    bool resolved = false;
    /* the NetworkPolicy comes before the Pod it guards (fail closed) */
    if (!lss_obj_str (c->sb, "status.podName") && c->opts && c->opts->network_policies) {
        resolved = true;
        rc = s_resolve (c, &runtime, &profile);
        if (rc == 0)
            rc = s_ensure_netpol (c, profile);
        if (rc) {
            rc = rc < 0 ? rc : 0;
            goto cleanup;
        }
    }
    /* a warm pod claimed for us and not adopted yet */
    const char *warm = s_warm_name (c);
    bool claimed = false;
    if (warm && !lss_obj_str (c->sb, "status.podName")) {
        rc = s_claim_warm (c, warm, &pod);
        if (rc < 0)
            goto cleanup;
        claimed = rc == 1;
    }
    rc = pod ? 0 : s_get (c, "Pod", c->ns, s_pod_name (c), &pod);
    if (rc == 0 && !claimed && !s_pod_ours (c, pod)) {
        bool leaving = lss_obj_deleting (pod);
        json_decref (pod);
        pod = NULL;
        /* status written by an earlier pass that did not get to the adoption */
        const char *ref = lss_obj_str (c->sb, "status.warmPodRef.name");
        if (ref && !leaving) {
            rc = s_claim_warm (c, ref, &pod);
            if (rc < 0)
                goto cleanup;
            claimed = rc == 1;
        }
        if (!claimed) {
            /* a Pod on its way out (or a WarmPod going, its Pod with it): come back */
            if (leaving || lss_obj_str (c->sb, "status.podName")) {
                rc = 0;
                c->res->requeue_after_ms = S_GONE_RETRY_MS;
                goto cleanup;
            }
            rc = s_fail (c, "PodConflict",
                         "a Pod of that name exists and is not this sandbox's");
            goto cleanup;
        }
        rc = 0;
    }
    if (rc == LSS_STORE_NOT_FOUND) {
        if (lss_obj_str (c->sb, "status.podName") && strcmp (s_phase (c), "Running") == 0) {
            rc = s_fail (c, "PodLost", "the sandbox's Pod disappeared");
            goto cleanup;
        }
        if (!resolved) {
            rc = s_resolve (c, &runtime, &profile);
            if (rc) {
                rc = rc < 0 ? rc : 0;
                goto cleanup;
            }
        }
        char why[LSS_STORE_ERR_SIZE];
        json_t *tmpl = reconciler_pod_for (c->sb, runtime, profile, c->opts, why, sizeof why);
        if (!tmpl) {
            rc = s_fail (c, "InvalidSpec", why);
            goto cleanup;
        }
        if (c->opts && c->opts->network_policies) { /* cluster mode: TCP (+ CURVE) */
            rc = lss_pod_cluster_agent (c->store, tmpl, c->sb, c->opts->curve_clients, c->err,
                                        c->err_size);
            if (rc) {
                json_decref (tmpl);
                goto cleanup;
            }
        }
        rc = lss_store_create (c->store, tmpl, &pod, c->err, c->err_size);
        json_decref (tmpl);
        if (rc)
            goto cleanup;
        json_t *st = s_status (c);
        json_object_set_new (st, "podName", json_string (c->name));
        json_object_set_new (st, "podNamespace", json_string (c->ns));
        lss_obj_set_condition (c->sb, "PodScheduled", "True", "PodCreated", NULL, c->now);
        lss_log_info ("pod created", "{s:s, s:s}", "namespace", c->ns, "name", c->name);
    } else if (rc)
        goto cleanup;
    rc = s_follow_pod (c, pod);
    /* the status first: a warm start is Running one store write sooner */
    if (rc == 0 && claimed && strcmp (s_phase (c), "Failed") != 0 &&
        strcmp (s_phase (c), "Terminated") != 0)
        rc = s_adopt_pod (c, &pod);
cleanup:
    json_decref (runtime);
    json_decref (profile);
    json_decref (pod);
    return rc;
}

int reconciler_sync (lss_store_t *store, const reconciler_opts_t *opts, const char *ns,
                     const char *name, int64_t now_ms, reconciler_result_t *result, char *err,
                     size_t err_size)
{
    memset (result, 0, sizeof *result);
    lss_errf (result->namespace_, sizeof result->namespace_, "%s", ns ? ns : "");
    lss_errf (result->name, sizeof result->name, "%s", name ? name : "");
    if (!ns || !name || lss_store_check_name ("namespace", ns, err, err_size) ||
        lss_store_check_name ("name", name, err, err_size))
        return LSS_STORE_INVALID;
    s_ctx_t c = {.store = store,
                 .opts = opts,
                 .ns = ns,
                 .name = name,
                 .now = now_ms,
                 .res = result,
                 .err = err,
                 .err_size = err_size};
    int rc = s_sync (&c);
    if (c.sb)
        lss_errf (result->phase, sizeof result->phase, "%s", s_phase (&c));
    json_decref (c.sb);
    json_decref (c.status0);
    return rc;
}
