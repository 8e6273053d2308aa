/*  lss-warmpool against a real private PostgreSQL: warmpool_sync and warmpool_allocate
 *  called directly on the store, with the test playing lss-node (writing Pod status:
 *  Running, Ready True, agentEndpoint) and the api (claiming). The scaler's clock is
 *  driven through now_ms. Each case works in its own namespace. The last case starts
 *  build/bin/lss-warmpool and talks to its allocation ROUTER with a DEALER.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <pthread.h>

#include <czmq.h>

#include "lss_bus.h"
#include "lss_obj.h"
#include "lss_curve.h"
#include "lss_pod.h"
#include "lss_store.h"
#include "lss_testproc.h"
#include "lss_util.h"
#include "warmpool_alloc.h"
#include "warmpool_scaler.h"

#include "lss_testk8s.h"
#include "lss_testpg.h"

#define S_RUNTIME "python:3.11"
#define S_LABEL   "python-3.11"

static lss_store_t *s_open (void)
{
    char err[LSS_STORE_ERR_SIZE] = "";
    lss_store_t *store = lss_store_pg_new (s_dsn, err, sizeof err);
    if (!store)
        fprintf (stderr, "lss_store_pg_new: %s\n", err);
    assert_non_null (store);
    return store;
}

static void s_create (lss_store_t *st, json_t *o)
{
    char err[LSS_STORE_ERR_SIZE] = "";
    int rc = lss_store_create (st, o, NULL, err, sizeof err);
    if (rc != 0 && rc != LSS_STORE_CONFLICT)
        fail_msg ("create: %d %s", rc, err);
    json_decref (o);
}

static void s_runtime (lss_store_t *st)
{
    s_create (st, json_pack ("{s:s, s:s, s:{s:s}, s:{s:s, s:s, s:s, s:s}}", "apiVersion",
                             LSS_OBJ_GROUP_VERSION, "kind", "RuntimeEnvironment", "metadata",
                             "name", S_LABEL, "spec", "image", "llmsafespace/python:3.11",
                             "language", "python", "version", "3.11", "interpreter",
                             "/usr/bin/python3"));
}

/*  A WarmPool with spec (taken over) plus runtime python:3.11. */
static void s_pool (lss_store_t *st, const char *ns, const char *name, json_t *spec)
{
    if (!json_object_get (spec, "runtime"))
        json_object_set_new (spec, "runtime", json_string (S_RUNTIME));
    s_create (st, json_pack ("{s:s, s:s, s:{s:s, s:s}, s:o}", "apiVersion",
                             LSS_OBJ_GROUP_VERSION, "kind", "WarmPool", "metadata", "name",
                             name, "namespace", ns, "spec", spec));
}

static json_t *s_get (lss_store_t *st, const char *kind, const char *ns, const char *name)
{
    json_t *o = NULL;
    char err[LSS_STORE_ERR_SIZE];
    int rc = lss_store_get (st, kind, ns, name, &o, err, sizeof err);
    return rc == 0 ? o : NULL;
}

/*  Items of a kind in ns with the pool label (caller owns the array). */
static json_t *s_items (lss_store_t *st, const char *kind, const char *ns, const char *pool)
{
    char sel[128];
    snprintf (sel, sizeof sel, "llmsafespace.dev/pool=%s", pool);
    json_t *page = NULL;
    char err[LSS_STORE_ERR_SIZE];
    assert_int_equal (lss_store_list (st, kind, ns, sel, 1000, NULL, &page, err, sizeof err),
                      0);
    json_t *items = json_incref (json_object_get (page, "items"));
    json_decref (page);
    return items;
}

static int s_count (lss_store_t *st, const char *kind, const char *ns, const char *pool,
                    const char *phase)
{
    json_t *items = s_items (st, kind, ns, pool);
    size_t i;
    json_t *it;
    int n = 0;
    json_array_foreach (items, i, it)
    {
        const char *p = lss_obj_str (it, "status.phase");
        if (!phase || (p && strcmp (p, phase) == 0))
            n++;
    }
    json_decref (items);
    return n;
}

static int64_t s_sync (lss_store_t *st, const char *ns, const char *pool, int64_t now,
                       warmpool_report_t *rep)
{
    char err[LSS_STORE_ERR_SIZE] = "";
    int64_t after = -1;
    int rc = warmpool_sync_report (st, ns, pool, now, &after, rep, err, sizeof err);
    if (rc != 0)
        fail_msg ("warmpool_sync %s/%s: %d %s", ns, pool, rc, err);
    assert_true (after >= 0);
    return after;
}

/*  Plays lss-node: every Pod of the pool that has no status gets Running + Ready. */
static int s_pods_ready (lss_store_t *st, const char *ns, const char *pool)
{
    json_t *pods = s_items (st, "Pod", ns, pool);
    size_t i;
    json_t *it;
    int n = 0;
    json_array_foreach (pods, i, it)
    {
        if (lss_obj_str (it, "status.phase"))
            continue;
        char ep[256];
        snprintf (ep, sizeof ep, "ipc:///tmp/lss-test/%s/agent.sock",
                  lss_obj_str (it, "metadata.name"));
        json_object_set_new (it, "status",
                             json_pack ("{s:s, s:s, s:[{s:s, s:s}]}", "phase", "Running",
                                        "agentEndpoint", ep, "conditions", "type", "Ready",
                                        "status", "True"));
        char err[LSS_STORE_ERR_SIZE];
        assert_int_equal (lss_store_update_status (st, it, NULL, err, sizeof err), 0);
        n++;
    }
    json_decref (pods);
    return n;
}

static int s_pool_int (lss_store_t *st, const char *ns, const char *pool, const char *field)
{
    json_t *p = s_get (st, "WarmPool", ns, pool);
    assert_non_null (p);
    char path[64];
    snprintf (path, sizeof path, "status.%s", field);
    int v = (int)lss_obj_int (p, path, -1);
    json_decref (p);
    return v;
}

static void s_assert_cond (lss_store_t *st, const char *kind, const char *ns, const char *name,
                           const char *type, const char *status, const char *reason)
{
    json_t *o = s_get (st, kind, ns, name);
    assert_non_null (o);
    json_t *c = lss_obj_condition (o, type);
    if (!c)
        fail_msg ("%s %s/%s has no condition %s", kind, ns, name, type);
    assert_string_equal (json_string_value (json_object_get (c, "status")), status);
    assert_string_equal (json_string_value (json_object_get (c, "reason")), reason);
    json_decref (o);
}

static int s_claim (lss_store_t *st, const char *ns, const char *level, const char *sandbox,
                    int64_t now, lss_warm_allocated_t *out, char *code, size_t code_size)
{
    lss_warm_allocate_t req = {.runtime = (char *)S_RUNTIME,
                               .security_level = (char *)level,
                               .namespace = (char *)ns,
                               .sandbox = (char *)sandbox};
    char err[LSS_STORE_ERR_SIZE];
    memset (out, 0, sizeof *out);
    return warmpool_allocate (st, &req, now, out, code, code_size, err, sizeof err);
}

/* ------------------------------------------------------------------ cases */

static void test_desired_idle (void **state)
{
    (void)state;
    assert_int_equal (warmpool_desired_idle (2, 10, 0, 1, 80), 2);
    assert_int_equal (warmpool_desired_idle (2, 10, 8, 1, 80), 2);  /* 8/(8+2) = 80% */
    assert_int_equal (warmpool_desired_idle (2, 100, 9, 1, 80), 3); /* ceil(9*20/80) */
    assert_int_equal (warmpool_desired_idle (2, 100, 4, 1, 50), 4);
    assert_int_equal (warmpool_desired_idle (2, 100, 4, 0, 50), 2); /* autoscaling off */
    assert_int_equal (warmpool_desired_idle (5, 3, 0, 0, 80), 3);   /* capped by max */
    assert_int_equal (warmpool_desired_idle (5, 3, 2, 0, 80), 1);   /* assigned count */
    assert_int_equal (warmpool_desired_idle (5, 3, 4, 0, 80), 0);
    assert_int_equal (warmpool_desired_idle (0, 1000, 1000, 1, 1), 0);
}

static void test_fill_to_min_and_ready (void **state)
{
    (void)state;
    lss_store_t *st = s_open ();
    s_runtime (st);
    const char *ns = "wp-fill";
    s_pool (st, ns, "py", json_pack ("{s:i, s:i}", "minSize", 3, "maxSize", 5));
    int64_t now = lss_time_now_ms ();
    warmpool_report_t rep;
    s_sync (st, ns, "py", now, &rep);
    assert_int_equal (rep.created, 3);
    assert_int_equal (s_count (st, "WarmPod", ns, "py", "Pending"), 3);
    assert_int_equal (s_count (st, "Pod", ns, "py", NULL), 3);
    assert_int_equal (s_pool_int (st, ns, "py", "pendingPods"), 3);
    assert_int_equal (s_pool_int (st, ns, "py", "availablePods"), 0);
    s_assert_cond (st, "WarmPool", ns, "py", "Ready", "False", "Filling");

    /* shapes, labels, owners */
    json_t *pool = s_get (st, "WarmPool", ns, "py");
    json_t *wps = s_items (st, "WarmPod", ns, "py");
    size_t i;
    json_t *wp;
    json_array_foreach (wps, i, wp)
    {
        const char *name = lss_obj_str (wp, "metadata.name");
        assert_true (strncmp (name, "py-", 3) == 0 && strlen (name) == 8);
        assert_string_equal (lss_obj_label (wp, LSS_LABEL_PART_OF), "llmsafespace");
        assert_string_equal (lss_obj_label (wp, LSS_LABEL_COMPONENT), "warmpod");
        assert_string_equal (lss_obj_label (wp, LSS_LABEL_RUNTIME), S_LABEL);
        assert_string_equal (lss_obj_label (wp, LSS_LABEL_LEVEL), "standard");
        assert_string_equal (lss_obj_label (wp, LSS_LABEL_POOL), "py");
        assert_true (lss_obj_owned_by (wp, lss_obj_str (pool, "metadata.uid")));
        assert_string_equal (lss_obj_str (wp, "spec.poolRef.name"), "py");
        assert_string_equal (lss_obj_str (wp, "status.podName"), name);
        json_t *pod = s_get (st, "Pod", ns, name);
        assert_non_null (pod);
        assert_string_equal (lss_obj_str (pod, "apiVersion"), "v1");
        assert_true (lss_obj_owned_by (pod, lss_obj_str (wp, "metadata.uid")));
        assert_string_equal (lss_obj_label (pod, LSS_LABEL_POOL), "py");
        assert_string_equal (lss_obj_label (pod, LSS_LABEL_WARMPOD), name);
        assert_string_equal (lss_obj_label (pod, LSS_LABEL_COMPONENT), "warmpod");
        assert_string_equal (lss_obj_annotation (pod, LSS_ANN_LEVEL), "standard");
        assert_string_equal (lss_obj_annotation (pod, LSS_ANN_INTERPRETERS),
                             "python=/usr/bin/python3");
        assert_string_equal (lss_obj_annotation (pod, LSS_ANN_NETWORK), "none");
        assert_string_equal (lss_obj_str (pod, "spec.restartPolicy"), "Never");
        json_t *c = json_array_get (lss_obj_at (pod, "spec.containers"), 0);
        assert_string_equal (lss_obj_str (c, "name"), "sandbox");
        assert_string_equal (lss_obj_str (c, "image"), "llmsafespace/python:3.11");
        assert_string_equal (
            json_string_value (json_array_get (json_object_get (c, "command"), 0)),
            "/opt/lss/lss-agent");
        assert_string_equal (lss_obj_str (c, "resources.limits.cpu"), "500m");
        assert_string_equal (lss_obj_str (c, "resources.limits.memory"), "512Mi");
        assert_int_equal (lss_obj_int (c, "securityContext.runAsUser", 0), 1000);
        assert_true (json_is_true (lss_obj_at (c, "securityContext.readOnlyRootFilesystem")));
        assert_true (
            json_is_false (lss_obj_at (c, "securityContext.allowPrivilegeEscalation")));
        json_decref (pod);
    }
    json_decref (wps);
    json_decref (pool);

    /* idempotent: nothing more while they start */
    s_sync (st, ns, "py", now + 1000, &rep);
    assert_int_equal (rep.created, 0);
    assert_int_equal (s_count (st, "WarmPod", ns, "py", NULL), 3);

    /* lss-node reports them Ready → WarmPods Ready with endpoint */
    assert_int_equal (s_pods_ready (st, ns, "py"), 3);
    s_sync (st, ns, "py", now + 2000, &rep);
    assert_int_equal (rep.marked_ready, 3);
    assert_int_equal (s_count (st, "WarmPod", ns, "py", "Ready"), 3);
    assert_int_equal (s_pool_int (st, ns, "py", "availablePods"), 3);
    assert_int_equal (s_pool_int (st, ns, "py", "pendingPods"), 0);
    s_assert_cond (st, "WarmPool", ns, "py", "Ready", "True", "MinAvailable");
    wps = s_items (st, "WarmPod", ns, "py");
    json_array_foreach (wps, i, wp)
    {
        char ep[256];
        snprintf (ep, sizeof ep, "ipc:///tmp/lss-test/%s/agent.sock",
                  lss_obj_str (wp, "metadata.name"));
        assert_string_equal (lss_obj_str (wp, "status.endpoint"), ep);
        assert_string_equal (lss_obj_str (wp, "status.podNamespace"), ns);
    }
    json_decref (wps);

    /* a quiet pass writes nothing: the pool's resourceVersion stays */
    json_t *before = s_get (st, "WarmPool", ns, "py");
    s_sync (st, ns, "py", now + 3000, &rep);
    json_t *after = s_get (st, "WarmPool", ns, "py");
    assert_string_equal (lss_obj_str (before, "metadata.resourceVersion"),
                         lss_obj_str (after, "metadata.resourceVersion"));
    assert_int_equal (lss_obj_int (after, "status.observedGeneration", 0), 1);
    json_decref (before);
    json_decref (after);
    lss_store_destroy (&st);
}

static void test_claim_refill_release (void **state)
{
    (void)state;
    lss_store_t *st = s_open ();
    s_runtime (st);
    const char *ns = "wp-claim";
    s_pool (st, ns, "py", json_pack ("{s:i, s:i, s:i}", "minSize", 2, "maxSize", 10, "ttl", 0));
    int64_t now = lss_time_now_ms ();
    s_sync (st, ns, "py", now, NULL);
    s_pods_ready (st, ns, "py");
    s_sync (st, ns, "py", now, NULL);
    assert_int_equal (s_count (st, "WarmPod", ns, "py", "Ready"), 2);

    lss_warm_allocated_t out;
    char code[64];
    /* the wrong level has no pool */
    assert_int_equal (s_claim (st, ns, "high", "sb-x", now, &out, code, sizeof code), -1);
    assert_string_equal (code, "pool_empty");
    /* another namespace neither */
    assert_int_equal (s_claim (st, "wp-other", NULL, "sb-x", now, &out, code, sizeof code), -1);
    assert_string_equal (code, "pool_empty");

    assert_int_equal (s_claim (st, ns, NULL, "sb-1", now, &out, code, sizeof code), 0);
    assert_string_equal (out.pool, "py");
    assert_string_equal (out.namespace, ns);
    assert_string_equal (out.pod_name, out.name);
    assert_non_null (strstr (out.endpoint, out.name));
    char claimed1[254];
    snprintf (claimed1, sizeof claimed1, "%s", out.name);
    json_t *wp = s_get (st, "WarmPod", ns, out.name);
    assert_string_equal (lss_obj_str (wp, "status.phase"), "Assigned");
    assert_string_equal (lss_obj_str (wp, "status.assignedTo"), "sb-1");
    assert_non_null (lss_obj_str (wp, "status.assignedAt"));
    json_decref (wp);
    lss_proto_body_clear (LSS_MSG_warm_allocated, &out);

    /* second claim gets the other pod; a third finds none */
    assert_int_equal (s_claim (st, ns, "standard", "sb-2", now, &out, code, sizeof code), 0);
    assert_string_not_equal (out.name, claimed1);
    lss_proto_body_clear (LSS_MSG_warm_allocated, &out);
    assert_int_equal (s_claim (st, ns, NULL, "sb-3", now, &out, code, sizeof code), -1);
    assert_string_equal (code, "pool_empty");

    /* the pool refills */
    warmpool_report_t rep;
    int64_t after = s_sync (st, ns, "py", now + 1000, &rep);
    assert_int_equal (rep.created, 2);
    assert_int_equal (s_pool_int (st, ns, "py", "assignedPods"), 2);
    assert_int_equal (s_pool_int (st, ns, "py", "pendingPods"), 2);
    /* the next timed action is the assignment grace of the claims */
    assert_true (after > 0 && after <= WARMPOOL_ASSIGN_GRACE_MS);

    /* sb-1 exists, sb-2 never got created: after the grace only sb-2's pod goes */
    s_create (st, json_pack ("{s:s, s:s, s:{s:s, s:s}, s:{s:s}}", "apiVersion",
                             LSS_OBJ_GROUP_VERSION, "kind", "Sandbox", "metadata", "name",
                             "sb-1", "namespace", ns, "spec", "runtime", S_RUNTIME));
    s_sync (st, ns, "py", now + WARMPOOL_ASSIGN_GRACE_MS - 1000, &rep);
    assert_int_equal (rep.released, 0);
    s_sync (st, ns, "py", now + WARMPOOL_ASSIGN_GRACE_MS + 1000, &rep);
    assert_int_equal (rep.released, 1);
    assert_int_equal (s_count (st, "WarmPod", ns, "py", "Assigned"), 1);
    wp = s_get (st, "WarmPod", ns, claimed1);
    assert_non_null (wp);
    json_decref (wp);
    assert_int_equal (s_count (st, "Pod", ns, "py", NULL), 3); /* cascade took the Pod */
    lss_store_destroy (&st);
}

static void test_max_size (void **state)
{
    (void)state;
    lss_store_t *st = s_open ();
    s_runtime (st);
    const char *ns = "wp-max";
    s_pool (st, ns, "py", json_pack ("{s:i, s:i}", "minSize", 5, "maxSize", 3));
    int64_t now = lss_time_now_ms ();
    s_sync (st, ns, "py", now, NULL);
    assert_int_equal (s_count (st, "WarmPod", ns, "py", NULL), 3);
    s_assert_cond (st, "WarmPool", ns, "py", "ScalingLimited", "True", "MaxSizeReached");
    s_pods_ready (st, ns, "py");
    s_sync (st, ns, "py", now, NULL);
    lss_warm_allocated_t out;
    char code[64];
    assert_int_equal (s_claim (st, ns, NULL, "sb-1", now, &out, code, sizeof code), 0);
    lss_proto_body_clear (LSS_MSG_warm_allocated, &out);
    warmpool_report_t rep;
    s_sync (st, ns, "py", now + 1000, &rep);
    assert_int_equal (rep.created, 0); /* assigned pods count against maxSize */
    assert_int_equal (s_count (st, "WarmPod", ns, "py", NULL), 3);
    lss_store_destroy (&st);
}

static void test_autoscale_grow_and_delayed_shrink (void **state)
{
    (void)state;
    lss_store_t *st = s_open ();
    s_runtime (st);
    const char *ns = "wp-auto";
    s_pool (st, ns, "py",
            json_pack ("{s:i, s:i, s:i, s:{s:b, s:i, s:i}}", "minSize", 2, "maxSize", 20, "ttl",
                       0, "autoScaling", "enabled", 1, "targetUtilization", 50,
                       "scaleDownDelay", 300));
    int64_t now = lss_time_now_ms ();
    warmpool_report_t rep;
    s_sync (st, ns, "py", now, NULL);
    s_pods_ready (st, ns, "py");
    s_sync (st, ns, "py", now, NULL);
    lss_warm_allocated_t out;
    char code[64];
    char name[32];
    for (int k = 0; k < 2; k++) {
        snprintf (name, sizeof name, "sb-%d", k);
        assert_int_equal (s_claim (st, ns, NULL, name, now, &out, code, sizeof code), 0);
        lss_proto_body_clear (LSS_MSG_warm_allocated, &out);
    }
    s_sync (st, ns, "py", now, &rep); /* assigned 2 → idle target max(2, 2) */
    assert_int_equal (rep.created, 2);
    s_pods_ready (st, ns, "py");
    s_sync (st, ns, "py", now, NULL);
    for (int k = 2; k < 4; k++) {
        snprintf (name, sizeof name, "sb-%d", k);
        assert_int_equal (s_claim (st, ns, NULL, name, now, &out, code, sizeof code), 0);
        lss_proto_body_clear (LSS_MSG_warm_allocated, &out);
    }
    /* utilization 100% > 50%: assigned 4 → idle target 4 */
    s_sync (st, ns, "py", now, &rep);
    assert_int_equal (rep.created, 4);
    assert_int_equal (rep.desired_idle, 4);
    s_pods_ready (st, ns, "py");
    s_sync (st, ns, "py", now, NULL);
    assert_int_equal (s_pool_int (st, ns, "py", "availablePods"), 4);
    assert_int_equal (s_pool_int (st, ns, "py", "assignedPods"), 4);

    /* the sandboxes never appear: released after the grace; idle target back to 2 */
    int64_t t1 = now + WARMPOOL_ASSIGN_GRACE_MS + 1000;
    int64_t after = s_sync (st, ns, "py", t1, &rep);
    assert_int_equal (rep.released, 4);
    assert_int_equal (rep.scaled_down, 0);
    assert_int_equal (after, 300000);
    s_assert_cond (st, "WarmPool", ns, "py", "ScaleDownPending", "True", "IdleAboveTarget");
    /* a fresh store connection (as a new leader would have) still waits */
    lss_store_t *st2 = s_open ();
    after = s_sync (st2, ns, "py", t1 + 299000, &rep);
    assert_int_equal (rep.scaled_down, 0);
    assert_int_equal (after, 1000);
    assert_int_equal (s_count (st, "WarmPod", ns, "py", "Ready"), 4);
    s_sync (st2, ns, "py", t1 + 300000, &rep);
    assert_int_equal (rep.scaled_down, 2);
    assert_int_equal (s_count (st, "WarmPod", ns, "py", "Ready"), 2);
    assert_int_equal (s_pool_int (st, ns, "py", "availablePods"), 2);
    s_assert_cond (st, "WarmPool", ns, "py", "ScaleDownPending", "False", "AtTarget");
    json_t *p = s_get (st, "WarmPool", ns, "py");
    char ts[LSS_TIME_RFC3339_SIZE];
    assert_string_equal (lss_obj_str (p, "status.lastScaleTime"),
                         lss_time_rfc3339 (t1 + 300000, ts));
    json_decref (p);
    lss_store_destroy (&st2);
    lss_store_destroy (&st);
}

static void test_ttl_replacement (void **state)
{
    (void)state;
    lss_store_t *st = s_open ();
    s_runtime (st);
    const char *ns = "wp-ttl";
    s_pool (st, ns, "py", json_pack ("{s:i, s:i}", "minSize", 2, "ttl", 100));
    int64_t now = lss_time_now_ms ();
    s_sync (st, ns, "py", now, NULL);
    s_pods_ready (st, ns, "py");
    warmpool_report_t rep;
    int64_t after = s_sync (st, ns, "py", now, &rep);
    if (!(after > 95000 && after <= 101000)) /* created a few ms after now */
        fail_msg ("requeue after %lld ms", (long long)after);
    json_t *old = s_items (st, "WarmPod", ns, "py");
    s_sync (st, ns, "py", now + 95000, &rep);
    assert_int_equal (rep.replaced, 0);
    s_sync (st, ns, "py", now + 101000, &rep);
    assert_int_equal (rep.replaced, 2);
    assert_int_equal (rep.created, 2);
    size_t i;
    json_t *it;
    json_array_foreach (old, i, it)
    {
        const char *n = lss_obj_str (it, "metadata.name");
        json_t *gone = s_get (st, "WarmPod", ns, n);
        assert_null (gone);
        assert_null (s_get (st, "Pod", ns, n));
    }
    json_decref (old);
    assert_int_equal (s_count (st, "WarmPod", ns, "py", "Pending"), 2);
    lss_store_destroy (&st);
}

static void test_pod_failed_replaced (void **state)
{
    (void)state;
    lss_store_t *st = s_open ();
    s_runtime (st);
    const char *ns = "wp-fail";
    s_pool (st, ns, "py", json_pack ("{s:i}", "minSize", 1));
    int64_t now = lss_time_now_ms ();
    s_sync (st, ns, "py", now, NULL);
    s_pods_ready (st, ns, "py");
    s_sync (st, ns, "py", now, NULL);
    json_t *pods = s_items (st, "Pod", ns, "py");
    json_t *pod = json_incref (json_array_get (pods, 0));
    json_decref (pods);
    char name[254];
    snprintf (name, sizeof name, "%s", lss_obj_str (pod, "metadata.name"));
    json_object_set_new (pod, "status",
                         json_pack ("{s:s, s:s}", "phase", "Failed", "reason", "Error"));
    char err[LSS_STORE_ERR_SIZE];
    assert_int_equal (lss_store_update_status (st, pod, NULL, err, sizeof err), 0);
    json_decref (pod);
    warmpool_report_t rep;
    s_sync (st, ns, "py", now + 1000, &rep);
    assert_int_equal (rep.replaced, 1);
    assert_int_equal (rep.created, 1);
    assert_null (s_get (st, "WarmPod", ns, name));
    assert_null (s_get (st, "Pod", ns, name));
    assert_int_equal (s_count (st, "WarmPod", ns, "py", "Pending"), 1);
    lss_store_destroy (&st);
}

/*  A warm pod whose Pod never becomes Ready is replaced once WARMPOOL_PENDING_MAX_MS has
 *  passed since it was made, never before; the requeue asks for that moment. */
static void test_pending_too_long_replaced (void **state)
{
    (void)state;
    lss_store_t *st = s_open ();
    s_runtime (st);
    const char *ns = "wp-stuck";
    s_pool (st, ns, "py", json_pack ("{s:i}", "minSize", 1));
    int64_t now = lss_time_now_ms ();
    s_sync (st, ns, "py", now, NULL);
    json_t *wps = s_items (st, "WarmPod", ns, "py");
    char name[254];
    snprintf (name, sizeof name, "%s", lss_obj_str (json_array_get (wps, 0), "metadata.name"));
    json_decref (wps);
    warmpool_report_t rep;
    int64_t after = s_sync (st, ns, "py", now + WARMPOOL_PENDING_MAX_MS - 5000, &rep);
    assert_int_equal (rep.replaced, 0);
    assert_int_equal (rep.pending, 1);
    assert_true (after > 0 && after <= 5000 + 1000);
    s_sync (st, ns, "py", now + WARMPOOL_PENDING_MAX_MS + 1000, &rep);
    assert_int_equal (rep.replaced, 1);
    assert_int_equal (rep.created, 1);
    assert_null (s_get (st, "WarmPod", ns, name));
    assert_int_equal (s_count (st, "WarmPod", ns, "py", NULL), 1);
    lss_store_destroy (&st);
}

static void test_missing_runtime (void **state)
{
    (void)state;
    lss_store_t *st = s_open ();
    const char *ns = "wp-nort";
    s_pool (st, ns, "rb", json_pack ("{s:s, s:i}", "runtime", "ruby:3.3", "minSize", 2));
    int64_t now = lss_time_now_ms ();
    s_sync (st, ns, "rb", now, NULL);
    assert_int_equal (s_count (st, "WarmPod", ns, "rb", NULL), 0);
    assert_int_equal (s_count (st, "Pod", ns, "rb", NULL), 0);
    s_assert_cond (st, "WarmPool", ns, "rb", "Ready", "False", "RuntimeNotFound");
    /* the runtime appears: the next pass heals */
    s_create (st, json_pack ("{s:s, s:s, s:{s:s}, s:{s:s, s:s, s:s}}", "apiVersion",
                             LSS_OBJ_GROUP_VERSION, "kind", "RuntimeEnvironment", "metadata",
                             "name", "ruby-3.3", "spec", "image", "ruby:3.3", "language",
                             "ruby", "interpreter", "/usr/bin/ruby"));
    s_sync (st, ns, "rb", now, NULL);
    assert_int_equal (s_count (st, "WarmPod", ns, "rb", NULL), 2);
    /* a nodejs runtime's pods name the interpreter as the agent and the api do: node */
    s_create (st, json_pack ("{s:s, s:s, s:{s:s}, s:{s:s, s:s, s:s}}", "apiVersion",
                             LSS_OBJ_GROUP_VERSION, "kind", "RuntimeEnvironment", "metadata",
                             "name", "nodejs-20", "spec", "image", "node:20", "language",
                             "nodejs", "interpreter", "/usr/bin/node"));
    s_pool (st, ns, "js", json_pack ("{s:s, s:i}", "runtime", "nodejs:20", "minSize", 1));
    s_sync (st, ns, "js", now, NULL);
    json_t *js = NULL;
    char err[LSS_STORE_ERR_SIZE];
    assert_int_equal (
        lss_store_list (st, "Pod", ns, LSS_LABEL_POOL "=js", 0, NULL, &js, err, sizeof err), 0);
    json_t *jpod = json_array_get (json_object_get (js, "items"), 0);
    assert_non_null (jpod);
    assert_string_equal (lss_obj_annotation (jpod, LSS_ANN_INTERPRETERS), "node=/usr/bin/node");
    json_decref (js);
    /* a hostile interpreter is refused, not put into annotations */
    s_pool (st, ns, "bad", json_pack ("{s:s, s:i}", "runtime", "evil:1", "minSize", 1));
    s_create (st, json_pack ("{s:s, s:s, s:{s:s}, s:{s:s, s:s, s:s}}", "apiVersion",
                             LSS_OBJ_GROUP_VERSION, "kind", "RuntimeEnvironment", "metadata",
                             "name", "evil-1", "spec", "image", "x", "language", "python",
                             "interpreter", "/bin/sh,bash=/tmp/x"));
    s_sync (st, ns, "bad", now, NULL);
    assert_int_equal (s_count (st, "WarmPod", ns, "bad", NULL), 0);
    s_assert_cond (st, "WarmPool", ns, "bad", "Ready", "False", "RuntimeInvalid");
    /* a pool that does not exist is done */
    warmpool_report_t rep;
    s_sync (st, ns, "nope", now, &rep);
    assert_int_equal (rep.deleted_pool, 1);
    lss_store_destroy (&st);
}

static void test_preload_unavailable (void **state)
{
    (void)state;
    lss_store_t *st = s_open ();
    s_runtime (st);
    const char *ns = "wp-preload";
    s_pool (st, ns, "ds",
            json_pack ("{s:i, s:[{s:s, s:s}]}", "minSize", 1, "preloadScripts", "name", "init",
                       "content", "print(1)"));
    int64_t now = lss_time_now_ms ();
    s_sync (st, ns, "ds", now, NULL);
    s_pods_ready (st, ns, "ds");
    warmpool_report_t rep;
    s_sync (st, ns, "ds", now, &rep);
    assert_int_equal (rep.marked_ready, 0);
    assert_int_equal (rep.created, 0);
    json_t *wps = s_items (st, "WarmPod", ns, "ds");
    assert_int_equal (json_array_size (wps), 1);
    const char *n = lss_obj_str (json_array_get (wps, 0), "metadata.name");
    s_assert_cond (st, "WarmPod", ns, n, "Preloaded", "False", "PreloadUnavailable");
    assert_string_equal (lss_obj_str (json_array_get (wps, 0), "status.phase"), "Pending");
    json_decref (wps);
    lss_warm_allocated_t out;
    char code[64];
    assert_int_equal (s_claim (st, ns, NULL, "sb", now, &out, code, sizeof code), -1);
    assert_string_equal (code, "pool_empty");
    lss_store_destroy (&st);
}

static void test_invalid_requests (void **state)
{
    (void)state;
    lss_store_t *st = s_open ();
    char longname[400];
    memset (longname, 'a', sizeof longname - 1);
    longname[sizeof longname - 1] = '\0';
    struct {
        const char *runtime, *level, *ns, *sandbox;
    } bad[] = {
        {"", NULL, "ns", "sb"},
        {"!!!", NULL, "ns", "sb"},
        {NULL, NULL, "ns", "sb"},
        {longname, NULL, "ns", "sb"},
        {S_RUNTIME, "root", "ns", "sb"},
        {S_RUNTIME, "custom", "ns", "sb"},
        {S_RUNTIME, NULL, "Bad_NS", "sb"},
        {S_RUNTIME, NULL, "a.b", "sb"},
        {S_RUNTIME, NULL, NULL, "sb"},
        {S_RUNTIME, NULL, longname, "sb"},
        {S_RUNTIME, NULL, "ns", "../x"},
        {S_RUNTIME, NULL, "ns", NULL},
        {S_RUNTIME, NULL, "ns", longname},
        {S_RUNTIME, NULL, "ns", "UPPER"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        lss_warm_allocate_t req = {(char *)bad[i].runtime, (char *)bad[i].level,
                                   (char *)bad[i].ns, (char *)bad[i].sandbox};
        lss_warm_allocated_t out = {0};
        char code[64] = "", err[LSS_STORE_ERR_SIZE] = "";
        int rc = warmpool_allocate (st, &req, 0, &out, code, sizeof code, err, sizeof err);
        if (rc != -1 || strcmp (code, "invalid_request") != 0)
            fail_msg ("case %zu: rc %d code '%s'", i, rc, code);
        assert_true (err[0] != '\0');
        assert_null (out.name);
    }
    /* the scaler refuses bad keys too */
    char err[LSS_STORE_ERR_SIZE];
    assert_int_equal (warmpool_sync (st, "Bad_NS", "x", 0, NULL, err, sizeof err),
                      LSS_STORE_INVALID);
    assert_int_equal (warmpool_sync (st, "ns", "../x", 0, NULL, err, sizeof err),
                      LSS_STORE_INVALID);
    lss_store_destroy (&st);
}

static void test_cascade_delete (void **state)
{
    (void)state;
    lss_store_t *st = s_open ();
    s_runtime (st);
    const char *ns = "wp-cascade";
    s_pool (st, ns, "py", json_pack ("{s:i}", "minSize", 3));
    s_sync (st, ns, "py", lss_time_now_ms (), NULL);
    assert_int_equal (s_count (st, "WarmPod", ns, "py", NULL), 3);
    assert_int_equal (s_count (st, "Pod", ns, "py", NULL), 3);
    char err[LSS_STORE_ERR_SIZE];
    assert_int_equal (lss_store_delete (st, "WarmPool", ns, "py", NULL, err, sizeof err), 0);
    assert_int_equal (s_count (st, "WarmPod", ns, "py", NULL), 0);
    assert_int_equal (s_count (st, "Pod", ns, "py", NULL), 0);
    lss_store_destroy (&st);
}

/* ------------------------------------------------------------------ concurrent claims */

#define S_THREADS    10
#define S_PER_THREAD 10
#define S_POOL       30

typedef struct {
    pthread_barrier_t *barrier;
    int id;
    int ok, empty, other;
    char names[S_PER_THREAD][254];
    char sandboxes[S_PER_THREAD][32];
} s_claimer_t;

static void *s_claimer (void *arg)
{
    s_claimer_t *c = arg;
    char err[LSS_STORE_ERR_SIZE];
    lss_store_t *st = lss_store_pg_new (s_dsn, err, sizeof err);
    pthread_barrier_wait (c->barrier);
    for (int i = 0; st && i < S_PER_THREAD; i++) {
        char sb[32];
        snprintf (sb, sizeof sb, "sb-%d-%d", c->id, i);
        lss_warm_allocate_t req = {(char *)S_RUNTIME, NULL, (char *)"wp-race", sb};
        lss_warm_allocated_t out = {0};
        char code[64];
        int rc = warmpool_allocate (st, &req, lss_time_now_ms (), &out, code, sizeof code, err,
                                    sizeof err);
        if (rc == 0) {
            snprintf (c->names[c->ok], sizeof c->names[0], "%s", out.name);
            snprintf (c->sandboxes[c->ok], sizeof c->sandboxes[0], "%s", sb);
            c->ok++;
        } else if (strcmp (code, "pool_empty") == 0)
            c->empty++;
        else
            c->other++;
        lss_proto_body_clear (LSS_MSG_warm_allocated, &out);
    }
    if (!st)
        c->other = S_PER_THREAD;
    lss_store_destroy (&st);
    return NULL;
}

static void test_concurrent_claims (void **state)
{
    (void)state;
    lss_store_t *st = s_open ();
    s_runtime (st);
    const char *ns = "wp-race";
    s_pool (st, ns, "py", json_pack ("{s:i, s:i}", "minSize", S_POOL, "maxSize", S_POOL));
    int64_t now = lss_time_now_ms ();
    s_sync (st, ns, "py", now, NULL);
    s_pods_ready (st, ns, "py");
    s_sync (st, ns, "py", now, NULL);
    assert_int_equal (s_count (st, "WarmPod", ns, "py", "Ready"), S_POOL);

    pthread_barrier_t barrier;
    pthread_barrier_init (&barrier, NULL, S_THREADS);
    static s_claimer_t c[S_THREADS];
    pthread_t t[S_THREADS];
    for (int i = 0; i < S_THREADS; i++) {
        memset (&c[i], 0, sizeof c[i]);
        c[i].barrier = &barrier;
        c[i].id = i;
        assert_int_equal (pthread_create (&t[i], NULL, s_claimer, &c[i]), 0);
    }
    for (int i = 0; i < S_THREADS; i++)
        pthread_join (t[i], NULL);
    pthread_barrier_destroy (&barrier);
    int ok = 0, empty = 0, other = 0;
    json_t *seen = json_object ();
    for (int i = 0; i < S_THREADS; i++) {
        ok += c[i].ok;
        empty += c[i].empty;
        other += c[i].other;
        for (int k = 0; k < c[i].ok; k++) {
            assert_null (json_object_get (seen, c[i].names[k])); /* never handed out twice */
            json_object_set_new (seen, c[i].names[k], json_string (c[i].sandboxes[k]));
        }
    }
    assert_int_equal (other, 0);
    assert_int_equal (ok, S_POOL);
    assert_int_equal (empty, S_THREADS * S_PER_THREAD - S_POOL);
    /* the store agrees: each pod Assigned to the caller that was told it won */
    json_t *wps = s_items (st, "WarmPod", ns, "py");
    size_t i;
    json_t *wp;
    json_array_foreach (wps, i, wp)
    {
        const char *n = lss_obj_str (wp, "metadata.name");
        assert_string_equal (lss_obj_str (wp, "status.phase"), "Assigned");
        assert_string_equal (lss_obj_str (wp, "status.assignedTo"),
                             json_string_value (json_object_get (seen, n)));
    }
    assert_int_equal (json_array_size (wps), S_POOL);
    json_decref (wps);
    json_decref (seen);
    lss_store_destroy (&st);
}

/* ------------------------------------------------------------------ the process */

/*  Waits for one message on sock (deadline), returns its kind and body (caller frees). */
static lss_msg_kind_t s_recv (zsock_t *sock, int timeout_ms, zframe_t **route,
                              lss_envelope_t *env, void **body)
{
    zmq_pollitem_t item = {zsock_resolve (sock), 0, ZMQ_POLLIN, 0};
    if (zmq_poll (&item, 1, timeout_ms) <= 0)
        return LSS_MSG_NONE;
    lss_msg_kind_t kind = LSS_MSG_NONE;
    char err[256];
    if (lss_bus_recv (sock, route, NULL, 0, env, &kind, body, err, sizeof err) != 0)
        return LSS_MSG_NONE;
    return kind;
}

static void s_send_alloc (zsock_t *dealer, const char *ns, const char *sandbox, char *id)
{
    lss_warm_allocate_t req = {(char *)S_RUNTIME, NULL, (char *)ns, (char *)sandbox};
    lss_envelope_t env;
    assert_int_equal (
        lss_bus_envelope_init (&env, LSS_MSG_warm_allocate, NULL, "test", 1, NULL), 0);
    snprintf (id, LSS_PROTO_ID_MAX + 1, "%s", env.id);
    assert_int_equal (lss_bus_send (dealer, NULL, 0, NULL, &env, LSS_MSG_warm_allocate, &req),
                      0);
}

static void test_process_router_and_scaler (void **state)
{
    (void)state;
    lss_store_t *st = s_open ();
    s_runtime (st);
    const char *ns = "wp-proc";
    s_pool (st, ns, "py", json_pack ("{s:i, s:i}", "minSize", 1, "maxSize", 1));

    char dir[64] = "/tmp/lss-test-warmpool-XXXXXX";
    assert_non_null (mkdtemp (dir));
    char port_file[128], e_dsn[600], e_alloc[128], e_pub[128], e_queue[128], e_port[160];
    snprintf (port_file, sizeof port_file, "%s/port", dir);
    snprintf (e_dsn, sizeof e_dsn, "LSS_STORE_DSN=%s", s_dsn);
    snprintf (e_alloc, sizeof e_alloc, "LSS_WARMPOOL_ALLOC_ENDPOINT=ipc://%s/alloc", dir);
    snprintf (e_pub, sizeof e_pub, "LSS_WARMPOOL_PUB_ENDPOINT=ipc://%s/pub", dir);
    snprintf (e_queue, sizeof e_queue, "LSS_WARMPOOL_QUEUE_ENDPOINT=ipc://%s/queue", dir);
    snprintf (e_port, sizeof e_port, "LSS_TEST_PORT_FILE=%s", port_file);
    char *envp[] = {e_dsn,
                    e_alloc,
                    e_pub,
                    e_queue,
                    e_port,
                    (char *)"LSS_WARMPOOL_ADMIN_LISTEN=127.0.0.1:0",
                    (char *)"LSS_WARMPOOL_LEADER_CHECK=200ms",
                    (char *)"LSS_LOG_LEVEL=warn",
                    (char *)"PATH=/usr/bin:/bin",
                    NULL};
    /* the fake watcher: its work-queue ROUTER, bound before the service starts */
    char ep[160];
    snprintf (ep, sizeof ep, "@ipc://%s/queue", dir);
    zsock_t *watcher = lss_bus_socket_new (ZMQ_ROUTER, ep, NULL);
    assert_non_null (watcher);

    char bin[PATH_MAX];
    tp_build_path (bin, sizeof bin, "bin/lss-warmpool");
    char *argv[] = {bin, NULL};
    tp_proc_t p;
    assert_int_equal (tp_spawn (&p, argv, envp, false), 0);
    long long deadline = tp_now_ms () + 15000;
    while (access (port_file, F_OK) != 0 && tp_now_ms () < deadline)
        usleep (10000); /* poll for the port file with a deadline */
    assert_int_equal (access (port_file, F_OK), 0);

    /* The scaler (it leads: it is alone) asks for work: hand it the pool's key. */
    zframe_t *route = NULL;
    lss_envelope_t env;
    void *body = NULL;
    lss_msg_kind_t k = s_recv (watcher, 10000, &route, &env, &body);
    assert_int_equal (k, LSS_MSG_queue_get);
    assert_string_equal (((lss_queue_get_t *)body)->queue, "warmpool");
    lss_proto_body_free (k, &body);
    lss_queue_item_t item = {env.id, (char *)"warmpool", (char *)"WarmPool/wp-proc/py", 0};
    lss_envelope_t renv;
    lss_bus_envelope_init (&renv, LSS_MSG_queue_item, NULL, "watcher", 1, NULL);
    assert_int_equal (lss_bus_send (watcher, zframe_data (route), zframe_size (route), NULL,
                                    &renv, LSS_MSG_queue_item, &item),
                      0);
    zframe_destroy (&route);
    /* ... and it reports the key done (nothing timed: ttl 3600 s → requeue) */
    for (;;) {
        k = s_recv (watcher, 10000, &route, &env, &body);
        assert_int_not_equal (k, LSS_MSG_NONE);
        if (k == LSS_MSG_queue_done)
            break;
        lss_proto_body_free (k, &body); /* further queue.get: left unanswered */
        zframe_destroy (&route);
    }
    lss_queue_done_t *done = body;
    assert_string_equal (done->key, "WarmPool/wp-proc/py");
    assert_string_equal (done->result, "done");
    lss_ok_t ok = {env.id};
    lss_bus_envelope_init (&renv, LSS_MSG_ok, NULL, "watcher", 2, NULL);
    lss_bus_send (watcher, zframe_data (route), zframe_size (route), NULL, &renv, LSS_MSG_ok,
                  &ok);
    lss_proto_body_free (k, &body);
    zframe_destroy (&route);
    assert_int_equal (s_count (st, "WarmPod", ns, "py", NULL), 1);
    s_pods_ready (st, ns, "py");
    s_sync (st, ns, "py", lss_time_now_ms (), NULL);

    /* allocation over the ROUTER */
    snprintf (ep, sizeof ep, ">ipc://%s/pub", dir);
    zsock_t *sub = lss_bus_socket_new (ZMQ_SUB, ep, NULL);
    zsock_set_subscribe (sub, "warmpool.Allocated.");
    snprintf (ep, sizeof ep, ">ipc://%s/alloc", dir);
    zsock_t *dealer = lss_bus_socket_new (ZMQ_DEALER, ep, NULL);
    assert_non_null (dealer);
    char id[LSS_PROTO_ID_MAX + 1];
    s_send_alloc (dealer, "wp-none", "sb-0", id); /* a round trip first: all connected */
    k = s_recv (dealer, 10000, NULL, &env, &body);
    assert_int_equal (k, LSS_MSG_error);
    assert_string_equal (((lss_error_t *)body)->code, "pool_empty");
    assert_string_equal (((lss_error_t *)body)->ref, id);
    lss_proto_body_free (k, &body);

    s_send_alloc (dealer, ns, "sb-1", id);
    k = s_recv (dealer, 10000, NULL, &env, &body);
    assert_int_equal (k, LSS_MSG_warm_allocated);
    lss_warm_allocated_t *got = body;
    assert_string_equal (got->ref, id);
    assert_string_equal (got->pool, "py");
    assert_string_equal (got->namespace, ns);
    assert_non_null (got->endpoint);
    json_t *wp = s_get (st, "WarmPod", ns, got->name);
    assert_string_equal (lss_obj_str (wp, "status.assignedTo"), "sb-1");
    json_decref (wp);
    lss_proto_body_free (k, &body);

    s_send_alloc (dealer, ns, "sb-2", id);
    k = s_recv (dealer, 10000, NULL, &env, &body);
    assert_int_equal (k, LSS_MSG_error);
    assert_string_equal (((lss_error_t *)body)->code, "pool_empty");
    lss_proto_body_free (k, &body);

    s_send_alloc (dealer, ns, "Not A Name", id);
    k = s_recv (dealer, 10000, NULL, &env, &body);
    assert_int_equal (k, LSS_MSG_error);
    assert_string_equal (((lss_error_t *)body)->code, "invalid_request");
    lss_proto_body_free (k, &body);

    /* garbage is answered, not fatal */
    zsock_send (dealer, "s", "not msgpack");
    k = s_recv (dealer, 10000, NULL, &env, &body);
    assert_int_equal (k, LSS_MSG_error);
    assert_string_equal (((lss_error_t *)body)->code, "invalid_request");
    lss_proto_body_free (k, &body);

    /* the Allocated event */
    char topic[LSS_BUS_TOPIC_MAX];
    zmq_pollitem_t it = {zsock_resolve (sub), 0, ZMQ_POLLIN, 0};
    assert_int_equal (zmq_poll (&it, 1, 5000), 1);
    char err[256];
    assert_int_equal (
        lss_bus_recv (sub, NULL, topic, sizeof topic, &env, &k, &body, err, sizeof err), 0);
    assert_int_equal (k, LSS_MSG_event);
    assert_string_equal (env.type, "warmpool.event");
    assert_string_equal (topic, "warmpool.Allocated.wp-proc.py");
    assert_string_equal (((lss_event_t *)body)->reason, "Allocated");
    lss_proto_body_free (k, &body);

    kill (p.pid, SIGTERM);
    int status = tp_wait (&p, 10000);
    assert_true (WIFEXITED (status) && WEXITSTATUS (status) == 0);
    zsock_destroy (&dealer);
    zsock_destroy (&sub);
    zsock_destroy (&watcher);
    const char *files[] = {"port", "alloc", "pub", "queue"};
    for (size_t i = 0; i < 4; i++) {
        char path[128];
        snprintf (path, sizeof path, "%s/%s", dir, files[i]);
        unlink (path);
    }
    assert_int_equal (rmdir (dir), 0);
    lss_store_destroy (&st);
}

/*  Cluster mode (on the fake Kubernetes API): warm pods' agents listen on TCP; with the
 *  executors' keys each warm pod has its own CURVE key — Secret owned by the WarmPod,
 *  public key in the Pod's annotation, the executors' keys as --curve-client. */
static void test_cluster_warm_pods (void **state)
{
    (void)state;
    tk_fake_t fake;
    assert_int_equal (tk_start (&fake), 0);
    lss_config_t *cfg = tk_config (&fake, NULL, NULL);
    char err[LSS_STORE_ERR_SIZE];
    lss_store_t *st = lss_store_new_from_config (cfg, err, sizeof err);
    lss_config_destroy (&cfg);
    assert_non_null (st);
    s_runtime (st);
    char x[41], xs[41];
    assert_int_equal (lss_curve_keypair (x, xs), 0);
    warmpool_scaler_set_cluster (true, x);
    s_pool (st, "cl", "py", json_pack ("{s:i}", "minSize", 1));
    s_sync (st, "cl", "py", lss_time_now_ms (), NULL);
    json_t *pods = s_items (st, "Pod", "cl", "py");
    assert_int_equal (json_array_size (pods), 1);
    json_t *pod = json_array_get (pods, 0);
    const char *name = lss_obj_str (pod, "metadata.name");
    json_t *c0 = json_array_get (lss_obj_at (pod, "spec.containers"), 0);
    json_t *args = json_object_get (c0, "args");
    assert_string_equal (json_string_value (json_array_get (args, 1)), "tcp://0.0.0.0:7430");
    assert_string_equal (json_string_value (json_array_get (args, 3)), x);
    const char *pub = lss_obj_annotation (pod, LSS_ANN_AGENT_KEY);
    assert_true (lss_curve_key_valid (pub));
    char sname[300];
    snprintf (sname, sizeof sname, "%s-agent-key", name);
    json_t *secret = NULL, *wp = NULL;
    assert_int_equal (lss_store_get (st, "Secret", "cl", sname, &secret, err, sizeof err), 0);
    assert_int_equal (lss_store_get (st, "WarmPod", "cl", name, &wp, err, sizeof err), 0);
    assert_true (lss_obj_owned_by (secret, lss_obj_str (wp, "metadata.uid")));
    json_decref (secret);
    json_decref (wp);
    json_decref (pods);
    warmpool_scaler_set_cluster (false, NULL);
    lss_store_destroy (&st);
    tk_stop (&fake);
}

int main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_desired_idle),
        cmocka_unit_test (test_fill_to_min_and_ready),
        cmocka_unit_test (test_claim_refill_release),
        cmocka_unit_test (test_max_size),
        cmocka_unit_test (test_autoscale_grow_and_delayed_shrink),
        cmocka_unit_test (test_ttl_replacement),
        cmocka_unit_test (test_pod_failed_replaced),
        cmocka_unit_test (test_missing_runtime),
        cmocka_unit_test (test_preload_unavailable),
        cmocka_unit_test (test_invalid_requests),
        cmocka_unit_test (test_cascade_delete),
        cmocka_unit_test (test_concurrent_claims),
        cmocka_unit_test (test_process_router_and_scaler),
        cmocka_unit_test (test_cluster_warm_pods),
        cmocka_unit_test (test_pending_too_long_replaced),
    };
    return cmocka_run_group_tests (tests, s_group_setup, s_group_teardown);
}
