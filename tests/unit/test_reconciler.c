/*  Unit tests for reconciler_sync against a real private PostgreSQL: the Sandbox life
 *  cycle pass by pass, with the test playing lss-node (writing Pod status) and the
 *  warm-pool allocator (assigning WarmPods). Each case works in its own namespace.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "lss_obj.h"
#include "lss_store.h"
#include "lss_testproc.h"
#include "lss_util.h"
#include "lss_curve.h"
#include "lss_k8s_conf.h"
#include "lss_pod.h"
#include "reconciler_netpol.h"
#include "reconciler_sync.h"

#include "lss_testk8s.h"
#include "lss_testpg.h"

#define T0 1800000000000LL /* a fixed "now" (epoch ms) */

static const reconciler_opts_t s_opts = {.node_name = "",
                                         .agent_command = "/opt/lss/lss-agent"};

static lss_store_t *s_open (void)
{
    char err[LSS_STORE_ERR_SIZE] = "";
    lss_store_t *store = lss_store_pg_new (s_dsn, err, sizeof err);
    if (!store)
        fprintf (stderr, "lss_store_pg_new: %s\n", err);
    assert_non_null (store);
    return store;
}

static json_t *s_yaml_like (const char *json_text)
{
    json_error_t e;
    json_t *o = json_loads (json_text, 0, &e);
    if (!o)
        fail_msg ("bad test JSON: %s", e.text);
    return o;
}

static void s_create (lss_store_t *st, const char *json_text)
{
    char err[LSS_STORE_ERR_SIZE] = "";
    json_t *o = s_yaml_like (json_text);
    int rc = lss_store_create (st, o, NULL, err, sizeof err);
    if (rc)
        fail_msg ("create: %d %s", rc, err);
    json_decref (o);
}

static void s_runtime (lss_store_t *st, const char *name)
{
    char text[512];
    snprintf (
        text, sizeof text,
        "{\"apiVersion\":\"llmsafespace.dev/v1\",\"kind\":\"RuntimeEnvironment\","
        "\"metadata\":{\"name\":\"%s\"},\"spec\":{\"image\":\"llmsafespace/python:3.11\","
        "\"language\":\"python\",\"version\":\"3.11\",\"interpreter\":\"/usr/bin/python3\"}}",
        name);
    json_t *o = s_yaml_like (text);
    char err[LSS_STORE_ERR_SIZE];
    int rc = lss_store_create (st, o, NULL, err, sizeof err);
    assert_true (rc == 0 || rc == LSS_STORE_CONFLICT);
    json_decref (o);
}

static void s_sandbox (lss_store_t *st, const char *ns, const char *name,
                       const char *extra_spec, const char *annotations)
{
    char text[2048];
    snprintf (text, sizeof text,
              "{\"apiVersion\":\"llmsafespace.dev/v1\",\"kind\":\"Sandbox\","
              "\"metadata\":{\"name\":\"%s\",\"namespace\":\"%s\",\"annotations\":{%s}},"
              "\"spec\":{\"runtime\":\"python:3.11\",\"timeout\":60%s%s}}",
              name, ns, annotations ? annotations : "", extra_spec ? "," : "",
              extra_spec ? extra_spec : "");
    s_create (st, text);
}

static json_t *s_get (lss_store_t *st, const char *kind, const char *ns, const char *name)
{
    json_t *o = NULL;
    char err[LSS_STORE_ERR_SIZE];
    int rc = lss_store_get (st, kind, ns, name, &o, err, sizeof err);
    return rc == 0 ? o : NULL;
}

static int s_sync (lss_store_t *st, const char *ns, const char *name, int64_t now,
                   reconciler_result_t *res)
{
    char err[LSS_STORE_ERR_SIZE] = "";
    reconciler_result_t local;
    int rc = reconciler_sync (st, &s_opts, ns, name, now, res ? res : &local, err, sizeof err);
    if (rc && rc != LSS_STORE_CONFLICT)
        fprintf (stderr, "sync %s/%s: %d %s\n", ns, name, rc, err);
    return rc;
}

static void s_assert_phase (lss_store_t *st, const char *ns, const char *name,
                            const char *phase, const char *ready_reason)
{
    json_t *sb = s_get (st, "Sandbox", ns, name);
    assert_non_null (sb);
    const char *p = lss_obj_str (sb, "status.phase");
    if (!p || strcmp (p, phase) != 0)
        fail_msg ("%s/%s: phase %s, want %s", ns, name, p ? p : "(none)", phase);
    if (ready_reason) {
        json_t *c = lss_obj_condition (sb, "Ready");
        assert_non_null (c);
        assert_string_equal (json_string_value (json_object_get (c, "reason")), ready_reason);
    }
    assert_int_equal (lss_obj_int (sb, "status.observedGeneration", -1),
                      lss_obj_int (sb, "metadata.generation", -2));
    json_decref (sb);
}

/*  Plays lss-node: the Pod is Running and Ready (or Failed with reason). */
static void s_pod_status (lss_store_t *st, const char *ns, const char *name, const char *phase,
                          const char *reason)
{
    json_t *pod = s_get (st, "Pod", ns, name);
    assert_non_null (pod);
    bool ok = strcmp (phase, "Running") == 0;
    json_t *status = json_pack ("{s:s, s:s, s:[{s:s, s:s}]}", "phase", phase, "agentEndpoint",
                                "ipc:///tmp/x/run/agent.sock", "conditions", "type", "Ready",
                                "status", ok ? "True" : "False");
    if (reason)
        json_object_set_new (status, "containerStatuses",
                             json_pack ("[{s:s, s:{s:{s:i, s:s, s:s}}}]", "name", "sandbox",
                                        "state", "terminated", "exitCode", 137, "reason",
                                        reason, "message", "killed"));
    json_object_set_new (pod, "status", status);
    char err[LSS_STORE_ERR_SIZE];
    assert_int_equal (lss_store_update_status (st, pod, NULL, err, sizeof err), 0);
    json_decref (pod);
}

static int s_setup (void **state)
{
    *state = s_open ();
    s_runtime (*state, "python-3.11");
    return 0;
}

static int s_teardown (void **state)
{
    lss_store_t *st = *state;
    lss_store_destroy (&st);
    return 0;
}

/* ------------------------------------------------------------------ cases */

static void test_cold_start_to_running (void **state)
{
    lss_store_t *st = *state;
    s_sandbox (st, "cold", "sb-1", NULL, NULL);
    reconciler_result_t res;
    assert_int_equal (s_sync (st, "cold", "sb-1", T0, &res), 0);
    assert_string_equal (res.phase, "Creating");
    s_assert_phase (st, "cold", "sb-1", "Creating", "PodNotReady");

    json_t *sb = s_get (st, "Sandbox", "cold", "sb-1");
    assert_true (lss_obj_has_finalizer (sb, LSS_FINALIZER_SANDBOX));
    json_t *pod = s_get (st, "Pod", "cold", "sb-1");
    assert_non_null (pod);
    assert_true (lss_obj_owned_by (pod, lss_obj_str (sb, "metadata.uid")));
    assert_string_equal (lss_obj_label (pod, LSS_LABEL_SANDBOX), "sb-1");
    assert_string_equal (lss_obj_label (pod, LSS_LABEL_RUNTIME), "python-3.11");
    assert_string_equal (lss_obj_annotation (pod, LSS_ANN_INTERPRETERS),
                         "python=/usr/bin/python3");
    assert_string_equal (lss_obj_annotation (pod, LSS_ANN_NETWORK), "none");
    assert_string_equal (lss_obj_annotation (pod, LSS_ANN_LEVEL), "standard");
    json_t *c0 = json_array_get (lss_obj_at (pod, "spec.containers"), 0);
    assert_string_equal (lss_obj_str (c0, "resources.limits.cpu"), "500m");
    assert_string_equal (lss_obj_str (c0, "resources.limits.memory"), "512Mi");
    assert_string_equal (lss_obj_str (c0, "image"), "llmsafespace/python:3.11");
    json_decref (pod);
    json_decref (sb);

    /* a second pass with nothing new writes nothing */
    sb = s_get (st, "Sandbox", "cold", "sb-1");
    assert_int_equal (s_sync (st, "cold", "sb-1", T0 + 5, &res), 0);
    json_t *sb2 = s_get (st, "Sandbox", "cold", "sb-1");
    assert_string_equal (lss_obj_str (sb, "metadata.resourceVersion"),
                         lss_obj_str (sb2, "metadata.resourceVersion"));
    json_decref (sb);
    json_decref (sb2);

    s_pod_status (st, "cold", "sb-1", "Running", NULL);
    assert_int_equal (s_sync (st, "cold", "sb-1", T0 + 10, &res), 0);
    assert_string_equal (res.reason, "Running");
    assert_int_equal (res.requeue_after_ms, 60 * 1000 + 1);
    s_assert_phase (st, "cold", "sb-1", "Running", "AgentReady");
    sb = s_get (st, "Sandbox", "cold", "sb-1");
    assert_string_equal (lss_obj_str (sb, "status.endpoint"), "ipc:///tmp/x/run/agent.sock");
    assert_string_equal (lss_obj_str (sb, "status.podName"), "sb-1");
    assert_non_null (lss_obj_str (sb, "status.startTime"));
    int64_t exp;
    assert_int_equal (lss_time_parse_rfc3339 (lss_obj_str (sb, "status.expiresAt"), &exp), 0);
    assert_int_equal (exp, T0 + 10 + 60000);
    json_decref (sb);
}

static void test_expiry_terminates (void **state)
{
    lss_store_t *st = *state;
    s_sandbox (st, "exp", "sb-1", NULL, NULL);
    assert_int_equal (s_sync (st, "exp", "sb-1", T0, NULL), 0);
    s_pod_status (st, "exp", "sb-1", "Running", NULL);
    assert_int_equal (s_sync (st, "exp", "sb-1", T0, NULL), 0);
    /* a second before expiry: still running */
    assert_int_equal (s_sync (st, "exp", "sb-1", T0 + 59000, NULL), 0);
    s_assert_phase (st, "exp", "sb-1", "Running", NULL);
    reconciler_result_t res;
    assert_int_equal (s_sync (st, "exp", "sb-1", T0 + 60000, &res), 0);
    assert_string_equal (res.reason, "Expired");
    s_assert_phase (st, "exp", "sb-1", "Terminated", "Expired");
    json_t *pod = s_get (st, "Pod", "exp", "sb-1");
    assert_null (pod);
    /* terminal: later passes change nothing and recreate nothing */
    assert_int_equal (s_sync (st, "exp", "sb-1", T0 + 70000, NULL), 0);
    assert_null (s_get (st, "Pod", "exp", "sb-1"));
}

static void test_delete_finalizes (void **state)
{
    lss_store_t *st = *state;
    s_sandbox (st, "del", "sb-1", NULL, NULL);
    assert_int_equal (s_sync (st, "del", "sb-1", T0, NULL), 0);
    s_pod_status (st, "del", "sb-1", "Running", NULL);
    assert_int_equal (s_sync (st, "del", "sb-1", T0, NULL), 0);
    char err[LSS_STORE_ERR_SIZE];
    assert_int_equal (lss_store_delete (st, "Sandbox", "del", "sb-1", NULL, err, sizeof err),
                      0);
    /* the finalizer holds it */
    json_t *sb = s_get (st, "Sandbox", "del", "sb-1");
    assert_non_null (sb);
    assert_true (lss_obj_deleting (sb));
    json_decref (sb);
    reconciler_result_t res;
    assert_int_equal (s_sync (st, "del", "sb-1", T0 + 1, &res), 0);
    assert_string_equal (res.reason, "Terminating");
    assert_null (s_get (st, "Pod", "del", "sb-1"));
    assert_null (s_get (st, "Sandbox", "del", "sb-1"));
    /* and a pass on the gone key is a no-op */
    assert_int_equal (s_sync (st, "del", "sb-1", T0 + 2, NULL), 0);
}

static void test_missing_runtime_heals (void **state)
{
    lss_store_t *st = *state;
    char text[512];
    snprintf (text, sizeof text,
              "{\"apiVersion\":\"llmsafespace.dev/v1\",\"kind\":\"Sandbox\",\"metadata\":"
              "{\"name\":\"sb-1\",\"namespace\":\"nort\"},\"spec\":{\"runtime\":\"ruby:9\"}}");
    s_create (st, text);
    assert_int_equal (s_sync (st, "nort", "sb-1", T0, NULL), 0);
    s_assert_phase (st, "nort", "sb-1", "Failed", "RuntimeNotFound");
    assert_null (s_get (st, "Pod", "nort", "sb-1"));
    s_runtime (st, "ruby-9");
    assert_int_equal (s_sync (st, "nort", "sb-1", T0 + 1, NULL), 0);
    s_assert_phase (st, "nort", "sb-1", "Creating", NULL);
    json_t *pod = s_get (st, "Pod", "nort", "sb-1");
    assert_non_null (pod);
    json_decref (pod);
}

static void test_missing_profile_fails (void **state)
{
    lss_store_t *st = *state;
    s_sandbox (st, "noprof", "sb-1", "\"profileRef\":{\"name\":\"nope\"}", NULL);
    assert_int_equal (s_sync (st, "noprof", "sb-1", T0, NULL), 0);
    s_assert_phase (st, "noprof", "sb-1", "Failed", "ProfileNotFound");
}

static void test_invalid_resources_fail (void **state)
{
    lss_store_t *st = *state;
    s_sandbox (st, "inval", "sb-1", "\"resources\":{\"memory\":\"lots\"}", NULL);
    assert_int_equal (s_sync (st, "inval", "sb-1", T0, NULL), 0);
    s_assert_phase (st, "inval", "sb-1", "Failed", "InvalidSpec");
    json_t *sb = s_get (st, "Sandbox", "inval", "sb-1");
    const char *msg =
        json_string_value (json_object_get (lss_obj_condition (sb, "Ready"), "message"));
    assert_non_null (strstr (msg, "spec.resources.memory"));
    json_decref (sb);
    assert_null (s_get (st, "Pod", "inval", "sb-1"));

    s_sandbox (st, "inval", "sb-root", "\"securityContext\":{\"runAsUser\":0}", NULL);
    assert_int_equal (s_sync (st, "inval", "sb-root", T0, NULL), 0);
    s_assert_phase (st, "inval", "sb-root", "Failed", "InvalidSpec");
}

static void test_profile_and_high_level (void **state)
{
    lss_store_t *st = *state;
    s_create (st, "{\"apiVersion\":\"llmsafespace.dev/v1\",\"kind\":\"SandboxProfile\","
                  "\"metadata\":{\"name\":\"strict\",\"namespace\":\"prof\"},"
                  "\"spec\":{\"language\":\"python\",\"securityLevel\":\"high\","
                  "\"seccompProfile\":\"lss/python.json\",\"runtimeClassName\":\"gvisor\","
                  "\"resourceDefaults\":{\"cpu\":\"250m\",\"memory\":\"128Mi\"}}}");
    s_sandbox (st, "prof", "sb-1",
               "\"profileRef\":{\"name\":\"strict\"},\"networkAccess\":{\"egress\":"
               "[{\"domain\":\"pypi.org\"}]}",
               NULL);
    assert_int_equal (s_sync (st, "prof", "sb-1", T0, NULL), 0);
    json_t *pod = s_get (st, "Pod", "prof", "sb-1");
    assert_non_null (pod);
    assert_string_equal (lss_obj_annotation (pod, LSS_ANN_LEVEL), "high");
    /* high: never network, whatever the sandbox asks */
    assert_string_equal (lss_obj_annotation (pod, LSS_ANN_NETWORK), "none");
    json_t *c0 = json_array_get (lss_obj_at (pod, "spec.containers"), 0);
    assert_string_equal (lss_obj_str (c0, "resources.limits.cpu"), "250m");
    assert_string_equal (lss_obj_str (c0, "resources.limits.memory"), "128Mi");
    /* hardened (lss_pod): the profile's seccomp profile and runtime class, no token, no
     * host namespaces, every capability dropped, requests = limits, emptyDir volumes */
    assert_string_equal (lss_obj_str (pod, "spec.runtimeClassName"), "gvisor");
    assert_string_equal (lss_obj_str (pod, "spec.securityContext.seccompProfile.type"),
                         "Localhost");
    assert_string_equal (
        lss_obj_str (pod, "spec.securityContext.seccompProfile.localhostProfile"),
        "lss/python.json");
    assert_true (json_is_false (lss_obj_at (pod, "spec.automountServiceAccountToken")));
    assert_true (json_is_false (lss_obj_at (pod, "spec.enableServiceLinks")));
    assert_true (json_is_false (lss_obj_at (pod, "spec.hostNetwork")));
    assert_true (json_is_true (lss_obj_at (pod, "spec.securityContext.runAsNonRoot")));
    assert_string_equal (json_string_value (json_array_get (
                             lss_obj_at (c0, "securityContext.capabilities.drop"), 0)),
                         "ALL");
    assert_true (json_is_false (lss_obj_at (c0, "securityContext.allowPrivilegeEscalation")));
    assert_true (json_is_true (lss_obj_at (c0, "securityContext.readOnlyRootFilesystem")));
    assert_string_equal (lss_obj_str (c0, "resources.requests.memory"), "128Mi");
    assert_string_equal (
        lss_obj_str (json_array_get (lss_obj_at (pod, "spec.volumes"), 0), "name"),
        "workspace");
    assert_non_null (lss_obj_str (json_array_get (lss_obj_at (pod, "spec.volumes"), 0),
                                  "emptyDir.sizeLimit"));
    assert_string_equal (
        lss_obj_str (json_array_get (lss_obj_at (c0, "volumeMounts"), 1), "mountPath"), "/tmp");
    json_decref (pod);

    /* a seccomp path escaping the kubelet's directory fails the sandbox, no Pod */
    s_create (st, "{\"apiVersion\":\"llmsafespace.dev/v1\",\"kind\":\"SandboxProfile\","
                  "\"metadata\":{\"name\":\"escape\",\"namespace\":\"prof\"},"
                  "\"spec\":{\"language\":\"python\",\"seccompProfile\":\"../../etc/x\"}}");
    s_sandbox (st, "prof", "sb-esc", "\"profileRef\":{\"name\":\"escape\"}", NULL);
    assert_int_equal (s_sync (st, "prof", "sb-esc", T0, NULL), 0);
    assert_null (s_get (st, "Pod", "prof", "sb-esc"));
    json_t *esc = s_get (st, "Sandbox", "prof", "sb-esc");
    assert_string_equal (lss_obj_str (esc, "status.phase"), "Failed");
    json_decref (esc);

    s_sandbox (st, "prof", "sb-net",
               "\"networkAccess\":{\"egress\":[{\"domain\":\"pypi.org\"}]}", NULL);
    assert_int_equal (s_sync (st, "prof", "sb-net", T0, NULL), 0);
    pod = s_get (st, "Pod", "prof", "sb-net");
    assert_string_equal (lss_obj_annotation (pod, LSS_ANN_NETWORK), "egress");
    json_decref (pod);
}

/*  With network policies on (cluster mode): each sandbox's NetworkPolicy exists before its
 *  Pod; ingress only from the executor on the agent port; egress only when granted (and
 *  never at level high), then DNS and public addresses on the granted ports; a bad grant
 *  fails the sandbox with no Pod. */
static void test_network_policies (void **state)
{
    lss_store_t *st = *state;
    reconciler_opts_t opts = s_opts;
    opts.network_policies = true;
    opts.executor_ns = "lss-control";
    char err[LSS_STORE_ERR_SIZE];
    reconciler_result_t res;
    s_sandbox (st, "np", "sb-closed", NULL, NULL);
    s_sandbox (st, "np", "sb-open",
               "\"networkAccess\":{\"egress\":[{\"domain\":\"pypi.org\",\"ports\":"
               "[{\"port\":443,\"protocol\":\"TCP\"}]}]}",
               NULL);
    s_sandbox (st, "np", "sb-high",
               "\"securityLevel\":\"high\",\"networkAccess\":{\"egress\":[{\"domain\":"
               "\"pypi.org\"}]}",
               NULL);
    s_sandbox (st, "np", "sb-bad",
               "\"networkAccess\":{\"egress\":[{\"domain\":\"x.org\",\"ports\":[{\"port\":"
               "70000}]}]}",
               NULL);
    const char *names[] = {"sb-closed", "sb-open", "sb-high", "sb-bad"};
    for (int i = 0; i < 4; i++)
        assert_int_equal (
            reconciler_sync (st, &opts, "np", names[i], T0, &res, err, sizeof err), 0);

    json_t *np = s_get (st, "NetworkPolicy", "np", "sb-closed");
    assert_non_null (np);
    assert_string_equal (
        json_string_value (json_object_get (lss_obj_at (np, "spec.podSelector.matchLabels"),
                                            LSS_LABEL_SANDBOX)),
        "sb-closed");
    json_t *in = json_array_get (lss_obj_at (np, "spec.ingress"), 0);
    json_t *from = json_array_get (json_object_get (in, "from"), 0);
    assert_string_equal (
        json_string_value (json_object_get (lss_obj_at (from, "podSelector.matchLabels"),
                                            "app.kubernetes.io/name")),
        "lss-executor");
    assert_string_equal (
        json_string_value (json_object_get (lss_obj_at (from, "namespaceSelector.matchLabels"),
                                            "kubernetes.io/metadata.name")),
        "lss-control");
    assert_int_equal (
        lss_obj_int (json_array_get (json_object_get (in, "ports"), 0), "port", 0), 7430);
    assert_int_equal (json_array_size (lss_obj_at (np, "spec.egress")), 0);
    assert_int_equal (json_array_size (lss_obj_at (np, "spec.policyTypes")), 2);
    json_t *closed = s_get (st, "Sandbox", "np", "sb-closed");
    assert_true (lss_obj_owned_by (np, lss_obj_str (closed, "metadata.uid")));
    json_decref (closed);
    json_decref (np);
    json_t *pod = s_get (st, "Pod", "np", "sb-closed");
    assert_non_null (pod);
    json_decref (pod);

    np = s_get (st, "NetworkPolicy", "np", "sb-open");
    json_t *eg = lss_obj_at (np, "spec.egress");
    assert_int_equal (json_array_size (eg), 2); /* DNS, then public addresses on 443 */
    json_t *pub = json_array_get (eg, 1);
    json_t *block = lss_obj_at (json_array_get (json_object_get (pub, "to"), 0), "ipBlock");
    assert_string_equal (lss_obj_str (block, "cidr"), "0.0.0.0/0");
    bool metadata_closed = false;
    size_t i;
    json_t *ex;
    json_array_foreach (json_object_get (block, "except"), i, ex) metadata_closed |=
        strcmp (json_string_value (ex), "169.254.0.0/16") == 0;
    assert_true (metadata_closed);
    assert_int_equal (
        lss_obj_int (json_array_get (json_object_get (pub, "ports"), 0), "port", 0), 443);
    assert_string_equal (lss_obj_annotation (np, RECONCILER_ANN_DOMAINS), "pypi.org");
    json_decref (np);

    np = s_get (st, "NetworkPolicy", "np", "sb-high");
    assert_int_equal (json_array_size (lss_obj_at (np, "spec.egress")), 0);
    json_decref (np);

    assert_null (s_get (st, "NetworkPolicy", "np", "sb-bad"));
    assert_null (s_get (st, "Pod", "np", "sb-bad"));
    json_t *bad = s_get (st, "Sandbox", "np", "sb-bad");
    assert_string_equal (lss_obj_str (bad, "status.phase"), "Failed");
    json_decref (bad);

    /* off (local mode): none is made */
    s_sandbox (st, "np", "sb-local", NULL, NULL);
    assert_int_equal (s_sync (st, "np", "sb-local", T0, NULL), 0);
    assert_null (s_get (st, "NetworkPolicy", "np", "sb-local"));
}

/*  CURVE in cluster mode: the cold Pod's agent gets its own key pair — the secret in a
 *  Secret owned by the Sandbox, passed by secretKeyRef, the public key in the Pod's
 *  annotation and then in the Sandbox's status.agentPublicKey with the tcp endpoint;
 *  the executors' keys as --curve-client; a Secret of that name owned by someone else
 *  stops the pass (no Pod with a key we do not know). */
static void test_curve_keys (void **state)
{
    (void)state;
    /* cluster mode: the store is the (fake) Kubernetes API, which keeps Secrets' data */
    tk_fake_t fake;
    assert_int_equal (tk_start (&fake), 0);
    lss_config_t *cfg = tk_config (&fake, NULL, NULL);
    char err[LSS_STORE_ERR_SIZE];
    lss_store_t *st = lss_store_new_from_config (cfg, err, sizeof err);
    lss_config_destroy (&cfg);
    assert_non_null (st);
    s_runtime (st, "python-3.11");
    char x1[41], s1[41], x2[41], s2[41], clients[100];
    assert_int_equal (lss_curve_keypair (x1, s1), 0);
    assert_int_equal (lss_curve_keypair (x2, s2), 0);
    snprintf (clients, sizeof clients, "%s,%s", x1, x2);
    reconciler_opts_t opts = s_opts;
    opts.curve_clients = clients;
    opts.network_policies = true; /* cluster mode */
    reconciler_result_t res;
    s_sandbox (st, "cv", "sb-1", NULL, NULL);
    assert_int_equal (reconciler_sync (st, &opts, "cv", "sb-1", T0, &res, err, sizeof err), 0);
    json_t *sb = s_get (st, "Sandbox", "cv", "sb-1");
    json_t *secret = s_get (st, "Secret", "cv", "sb-1-agent-key");
    assert_non_null (secret);
    assert_true (lss_obj_owned_by (secret, lss_obj_str (sb, "metadata.uid")));
    lss_k8s_blob_t raw = {0};
    assert_int_equal (lss_k8s_base64_decode (lss_obj_str (secret, "data.secret"), &raw), 0);
    assert_int_equal (raw.len, 40);
    char sec[41], pub[41];
    memcpy (sec, raw.data, 40);
    sec[40] = '\0';
    free (raw.data);
    assert_int_equal (lss_curve_public_of (sec, pub), 0);
    json_t *pod = s_get (st, "Pod", "cv", "sb-1");
    assert_string_equal (lss_obj_annotation (pod, LSS_ANN_AGENT_KEY), pub);
    json_t *c0 = json_array_get (lss_obj_at (pod, "spec.containers"), 0);
    json_t *env0 = json_array_get (json_object_get (c0, "env"), 0);
    assert_string_equal (lss_obj_str (env0, "name"), "LSS_AGENT_CURVE_SECRET");
    assert_string_equal (lss_obj_str (env0, "valueFrom.secretKeyRef.name"), "sb-1-agent-key");
    json_t *args = json_object_get (c0, "args");
    assert_int_equal (json_array_size (args), 6);
    assert_string_equal (json_string_value (json_array_get (args, 1)), "tcp://0.0.0.0:7430");
    assert_string_equal (json_string_value (json_array_get (args, 3)), x1);
    assert_string_equal (json_string_value (json_array_get (args, 5)), x2);
    char *dump = json_dumps (pod, 0);
    assert_null (strstr (dump, sec)); /* the secret itself never in the Pod */
    free (dump);
    json_decref (pod);
    json_decref (secret);
    json_decref (sb);

    /* running on a pod IP: the Sandbox carries endpoint and key for the executor */
    pod = s_get (st, "Pod", "cv", "sb-1");
    json_object_set_new (pod, "status",
                         json_pack ("{s:s, s:s, s:[{s:s, s:s}]}", "phase", "Running", "podIP",
                                    "10.1.2.3", "conditions", "type", "Ready", "status",
                                    "True"));
    assert_int_equal (lss_store_update_status (st, pod, NULL, err, sizeof err), 0);
    json_decref (pod);
    assert_int_equal (reconciler_sync (st, &opts, "cv", "sb-1", T0 + 10, &res, err, sizeof err),
                      0);
    sb = s_get (st, "Sandbox", "cv", "sb-1");
    assert_string_equal (lss_obj_str (sb, "status.endpoint"), "tcp://10.1.2.3:7430");
    assert_string_equal (lss_obj_str (sb, "status.agentPublicKey"), pub);
    json_decref (sb);

    /* someone else's Secret under the name: no Pod */
    s_create (st, "{\"apiVersion\":\"v1\",\"kind\":\"Secret\",\"metadata\":{\"name\":"
                  "\"sb-2-agent-key\",\"namespace\":\"cv\"},\"data\":{\"secret\":\"eA==\"}}");
    s_sandbox (st, "cv", "sb-2", NULL, NULL);
    assert_true (reconciler_sync (st, &opts, "cv", "sb-2", T0, &res, err, sizeof err) != 0);
    assert_non_null (strstr (err, "not ours"));
    assert_null (s_get (st, "Pod", "cv", "sb-2"));
    lss_store_destroy (&st);
    tk_stop (&fake);
}

static void test_pod_failure_fails_sandbox (void **state)
{
    lss_store_t *st = *state;
    s_sandbox (st, "podfail", "sb-1", NULL, NULL);
    assert_int_equal (s_sync (st, "podfail", "sb-1", T0, NULL), 0);
    s_pod_status (st, "podfail", "sb-1", "Running", NULL);
    assert_int_equal (s_sync (st, "podfail", "sb-1", T0, NULL), 0);
    s_pod_status (st, "podfail", "sb-1", "Failed", "OOMKilled");
    assert_int_equal (s_sync (st, "podfail", "sb-1", T0 + 1, NULL), 0);
    s_assert_phase (st, "podfail", "sb-1", "Failed", "OOMKilled");
    json_t *sb = s_get (st, "Sandbox", "podfail", "sb-1");
    assert_null (lss_obj_str (sb, "status.endpoint"));
    json_decref (sb);
}

static void test_pod_name_conflict (void **state)
{
    lss_store_t *st = *state;
    s_create (st, "{\"apiVersion\":\"v1\",\"kind\":\"Pod\",\"metadata\":{\"name\":\"sb-1\","
                  "\"namespace\":\"podc\"},\"spec\":{}}");
    s_sandbox (st, "podc", "sb-1", NULL, NULL);
    assert_int_equal (s_sync (st, "podc", "sb-1", T0, NULL), 0);
    s_assert_phase (st, "podc", "sb-1", "Failed", "PodConflict");
    /* deleting such a sandbox leaves the stranger's Pod alone */
    char err[LSS_STORE_ERR_SIZE];
    assert_int_equal (lss_store_delete (st, "Sandbox", "podc", "sb-1", NULL, err, sizeof err),
                      0);
    assert_int_equal (s_sync (st, "podc", "sb-1", T0 + 1, NULL), 0);
    assert_null (s_get (st, "Sandbox", "podc", "sb-1"));
    json_t *pod = s_get (st, "Pod", "podc", "sb-1");
    assert_non_null (pod);
    json_decref (pod);
}

/*  A WarmPod (owned by nothing here) with a Ready Pod it owns, assigned to sandbox. */
static void s_warm_pod (lss_store_t *st, const char *ns, const char *name, const char *assigned)
{
    char text[1024];
    snprintf (
        text, sizeof text,
        "{\"apiVersion\":\"llmsafespace.dev/v1\",\"kind\":\"WarmPod\",\"metadata\":"
        "{\"name\":\"%s\",\"namespace\":\"%s\",\"labels\":{\"llmsafespace.dev/pool\":\"p\"}},"
        "\"spec\":{\"poolRef\":{\"name\":\"p\"}}}",
        name, ns);
    s_create (st, text);
    json_t *wp = s_get (st, "WarmPod", ns, name);
    json_t *pod =
        json_pack ("{s:s, s:s, s:{s:s, s:s, s:{s:s}, s:[o]}, s:{}}", "apiVersion", "v1", "kind",
                   "Pod", "metadata", "name", name, "namespace", ns, "labels",
                   LSS_LABEL_WARMPOD, name, "ownerReferences", lss_obj_owner_ref (wp), "spec");
    char err[LSS_STORE_ERR_SIZE];
    assert_int_equal (lss_store_create (st, pod, NULL, err, sizeof err), 0);
    json_decref (pod);
    s_pod_status (st, ns, name, "Running", NULL);
    json_object_set_new (wp, "status",
                         json_pack ("{s:s, s:s, s:s}", "phase", "Assigned", "assignedTo",
                                    assigned, "podName", name));
    assert_int_equal (lss_store_update_status (st, wp, NULL, err, sizeof err), 0);
    json_decref (wp);
}

static void test_warm_pod_adopted (void **state)
{
    lss_store_t *st = *state;
    s_warm_pod (st, "warm", "wp-1", "sb-1");
    s_sandbox (st, "warm", "sb-1", NULL, "\"llmsafespace.dev/warm-pod\":\"wp-1\"");
    reconciler_result_t res;
    /* one pass: the Pod is already Ready, so the sandbox is Running at once */
    assert_int_equal (s_sync (st, "warm", "sb-1", T0, &res), 0);
    assert_string_equal (res.phase, "Running");
    s_assert_phase (st, "warm", "sb-1", "Running", "AgentReady");
    json_t *sb = s_get (st, "Sandbox", "warm", "sb-1");
    json_t *pod = s_get (st, "Pod", "warm", "wp-1");
    assert_true (lss_obj_owned_by (pod, lss_obj_str (sb, "metadata.uid")));
    assert_int_equal (json_array_size (lss_obj_at (pod, "metadata.ownerReferences")), 1);
    assert_string_equal (lss_obj_label (pod, LSS_LABEL_SANDBOX), "sb-1");
    assert_string_equal (lss_obj_str (sb, "status.warmPodRef.name"), "wp-1");
    assert_string_equal (lss_obj_str (sb, "status.podName"), "wp-1");
    assert_null (s_get (st, "Pod", "warm", "sb-1")); /* no cold Pod */
    json_decref (sb);
    json_decref (pod);

    /* deletion removes the adopted Pod and its WarmPod: never back to a pool */
    char err[LSS_STORE_ERR_SIZE];
    assert_int_equal (lss_store_delete (st, "Sandbox", "warm", "sb-1", NULL, err, sizeof err),
                      0);
    assert_int_equal (s_sync (st, "warm", "sb-1", T0 + 1, NULL), 0);
    assert_null (s_get (st, "Pod", "warm", "wp-1"));
    assert_null (s_get (st, "WarmPod", "warm", "wp-1"));
    assert_null (s_get (st, "Sandbox", "warm", "sb-1"));
}

static long long s_rv (const json_t *obj)
{
    const char *rv = lss_obj_str (obj, "metadata.resourceVersion");
    return rv ? strtoll (rv, NULL, 10) : -1;
}

/*  The Sandbox's Running status is written before the Pod's adoption (one write sooner
 *  on the warm path), and a pass that stopped between the two finishes the adoption. */
static void test_warm_adoption_after_status (void **state)
{
    lss_store_t *st = *state;
    s_warm_pod (st, "warmo", "wp-1", "sb-1");
    s_sandbox (st, "warmo", "sb-1", NULL, "\"llmsafespace.dev/warm-pod\":\"wp-1\"");
    assert_int_equal (s_sync (st, "warmo", "sb-1", T0, NULL), 0);
    json_t *sb = s_get (st, "Sandbox", "warmo", "sb-1");
    json_t *pod = s_get (st, "Pod", "warmo", "wp-1");
    assert_true (lss_obj_owned_by (pod, lss_obj_str (sb, "metadata.uid")));
    assert_true (s_rv (sb) > 0 && s_rv (sb) < s_rv (pod)); /* status, then the Pod */

    /* as if the reconciler died after the status write: the Pod still the WarmPod's */
    json_t *wp = s_get (st, "WarmPod", "warmo", "wp-1");
    json_t *refs = json_pack ("[o]", lss_obj_owner_ref (wp));
    json_object_set_new (json_object_get (pod, "metadata"), "ownerReferences", refs);
    json_object_del (json_object_get (json_object_get (pod, "metadata"), "labels"),
                     LSS_LABEL_SANDBOX);
    char err[LSS_STORE_ERR_SIZE];
    assert_int_equal (lss_store_update (st, pod, NULL, err, sizeof err), 0);
    json_decref (pod);
    reconciler_result_t res;
    assert_int_equal (s_sync (st, "warmo", "sb-1", T0 + 1, &res), 0);
    assert_string_equal (res.phase, "Running");
    pod = s_get (st, "Pod", "warmo", "wp-1");
    assert_true (lss_obj_owned_by (pod, lss_obj_str (sb, "metadata.uid")));
    assert_false (lss_obj_owned_by (pod, lss_obj_str (wp, "metadata.uid")));
    assert_string_equal (lss_obj_label (pod, LSS_LABEL_SANDBOX), "sb-1");
    json_decref (pod);
    json_decref (wp);
    json_decref (sb);
    s_assert_phase (st, "warmo", "sb-1", "Running", "AgentReady");
}

/*  A claimed WarmPod whose Pod is not its own (nor ours) is not adopted. */
static void test_warm_pod_foreign_pod_rejected (void **state)
{
    lss_store_t *st = *state;
    s_warm_pod (st, "warmf", "wp-1", "sb-1");
    json_t *pod = s_get (st, "Pod", "warmf", "wp-1");
    json_object_set_new (json_object_get (pod, "metadata"), "ownerReferences", json_array ());
    char err[LSS_STORE_ERR_SIZE];
    assert_int_equal (lss_store_update (st, pod, NULL, err, sizeof err), 0);
    json_decref (pod);
    s_sandbox (st, "warmf", "sb-1", NULL, "\"llmsafespace.dev/warm-pod\":\"wp-1\"");
    assert_int_equal (s_sync (st, "warmf", "sb-1", T0, NULL), 0);
    json_t *sb = s_get (st, "Sandbox", "warmf", "sb-1");
    json_t *c = lss_obj_condition (sb, "WarmPod");
    assert_string_equal (json_string_value (json_object_get (c, "reason")), "WarmPodRejected");
    assert_null (lss_obj_str (sb, "status.warmPodRef.name"));
    json_decref (sb);
    pod = s_get (st, "Pod", "warmf", "wp-1");
    assert_null (lss_obj_label (pod, LSS_LABEL_SANDBOX));
    assert_int_equal (json_array_size (lss_obj_at (pod, "metadata.ownerReferences")), 0);
    json_decref (pod);
    pod = s_get (st, "Pod", "warmf", "sb-1"); /* a cold Pod instead */
    assert_non_null (pod);
    json_decref (pod);
}

static void test_warm_pod_of_another_rejected (void **state)
{
    lss_store_t *st = *state;
    s_warm_pod (st, "warmx", "wp-1", "someone-else");
    s_sandbox (st, "warmx", "sb-1", NULL, "\"llmsafespace.dev/warm-pod\":\"wp-1\"");
    assert_int_equal (s_sync (st, "warmx", "sb-1", T0, NULL), 0);
    s_assert_phase (st, "warmx", "sb-1", "Creating", NULL);
    json_t *sb = s_get (st, "Sandbox", "warmx", "sb-1");
    json_t *c = lss_obj_condition (sb, "WarmPod");
    assert_string_equal (json_string_value (json_object_get (c, "reason")), "WarmPodRejected");
    json_decref (sb);
    /* a cold Pod instead; the other's warm Pod untouched */
    json_t *pod = s_get (st, "Pod", "warmx", "sb-1");
    assert_non_null (pod);
    json_decref (pod);
    pod = s_get (st, "Pod", "warmx", "wp-1");
    assert_null (lss_obj_label (pod, LSS_LABEL_SANDBOX));
    json_decref (pod);
    char err[LSS_STORE_ERR_SIZE];
    assert_int_equal (lss_store_delete (st, "Sandbox", "warmx", "sb-1", NULL, err, sizeof err),
                      0);
    assert_int_equal (s_sync (st, "warmx", "sb-1", T0 + 1, NULL), 0);
    json_t *wp = s_get (st, "WarmPod", "warmx", "wp-1");
    assert_non_null (wp);
    json_decref (wp);
}

/* ------------------------------------------------------------------ concurrency */

typedef struct {
    int conflicts;
    int errors;
} s_worker_out_t;

static void *s_worker (void *arg)
{
    s_worker_out_t *out = arg;
    char err[LSS_STORE_ERR_SIZE];
    lss_store_t *st = lss_store_pg_new (s_dsn, err, sizeof err);
    if (!st) {
        out->errors++;
        return NULL;
    }
    for (int round = 0; round < 30; round++) {
        for (int i = 0; i < 5; i++) {
            char name[32];
            snprintf (name, sizeof name, "sb-%d", i);
            reconciler_result_t res;
            int rc = reconciler_sync (st, &s_opts, "conc", name, T0, &res, err, sizeof err);
            if (rc == LSS_STORE_CONFLICT)
                out->conflicts++;
            else if (rc)
                out->errors++;
        }
    }
    lss_store_destroy (&st);
    return NULL;
}

static void test_concurrent_workers_converge (void **state)
{
    lss_store_t *st = *state;
    for (int i = 0; i < 5; i++) {
        char name[32];
        snprintf (name, sizeof name, "sb-%d", i);
        s_sandbox (st, "conc", name, NULL, NULL);
    }
    pthread_t th[4];
    s_worker_out_t out[4] = {{0, 0}};
    for (int i = 0; i < 4; i++)
        assert_int_equal (pthread_create (&th[i], NULL, s_worker, &out[i]), 0);
    for (int i = 0; i < 4; i++)
        pthread_join (th[i], NULL);
    int conflicts = 0;
    for (int i = 0; i < 4; i++) {
        assert_int_equal (out[i].errors, 0);
        conflicts += out[i].conflicts;
    }
    print_message ("concurrent passes: %d conflicts (retried)\n", conflicts);
    /* exactly one Pod per sandbox, every sandbox Creating with one finalizer */
    json_t *list = NULL;
    char err[LSS_STORE_ERR_SIZE];
    assert_int_equal (lss_store_list (st, "Pod", "conc", NULL, 0, NULL, &list, err, sizeof err),
                      0);
    assert_int_equal (json_array_size (json_object_get (list, "items")), 5);
    json_decref (list);
    for (int i = 0; i < 5; i++) {
        char name[32];
        snprintf (name, sizeof name, "sb-%d", i);
        /* a final pass settles anything a conflict interrupted */
        assert_int_equal (s_sync (st, "conc", name, T0, NULL), 0);
        s_assert_phase (st, "conc", name, "Creating", NULL);
        json_t *sb = s_get (st, "Sandbox", "conc", name);
        assert_int_equal (json_array_size (lss_obj_at (sb, "metadata.finalizers")), 1);
        json_decref (sb);
    }
}

static void test_bad_keys (void **state)
{
    lss_store_t *st = *state;
    char err[LSS_STORE_ERR_SIZE];
    reconciler_result_t res;
    assert_int_equal (reconciler_sync (st, &s_opts, "Bad NS", "x", T0, &res, err, sizeof err),
                      LSS_STORE_INVALID);
    assert_int_equal (reconciler_sync (st, &s_opts, "ns", "../x", T0, &res, err, sizeof err),
                      LSS_STORE_INVALID);
    assert_int_equal (reconciler_sync (st, &s_opts, NULL, "x", T0, &res, err, sizeof err),
                      LSS_STORE_INVALID);
}

int main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown (test_cold_start_to_running, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_expiry_terminates, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_delete_finalizes, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_missing_runtime_heals, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_missing_profile_fails, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_invalid_resources_fail, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_profile_and_high_level, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_pod_failure_fails_sandbox, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_pod_name_conflict, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_warm_pod_adopted, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_warm_adoption_after_status, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_warm_pod_foreign_pod_rejected, s_setup,
                                         s_teardown),
        cmocka_unit_test_setup_teardown (test_warm_pod_of_another_rejected, s_setup,
                                         s_teardown),
        cmocka_unit_test_setup_teardown (test_concurrent_workers_converge, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_bad_keys, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_network_policies, s_setup, s_teardown),
        cmocka_unit_test (test_curve_keys),
    };
    return cmocka_run_group_tests (tests, s_group_setup, s_group_teardown);
}
