/*  lss_pod — the security settings every sandbox Pod carries. See lss_pod.h. */
#include "lss_pod.h"

#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>

#include "lss_k8s_conf.h"
#include "lss_obj.h"
#include "lss_store.h"
#include "lss_util.h"

/*  A Localhost seccomp profile path: relative to the kubelet's seccomp directory,
 *  [A-Za-z0-9._/-], no ".." segment, at most 255 bytes. */
static bool s_seccomp_path_ok (const char *p)
{
    size_t n = strlen (p);
    if (n == 0 || n > 255 || p[0] == '/' ||
        strspn (p, "abcdefghijklmnopqrstuvwxyz"
                   "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._/-") != n)
        return false;
    for (const char *s = p; (s = strstr (s, "..")); s += 2)
        if ((s == p || s[-1] == '/') && (s[2] == '\0' || s[2] == '/'))
            return false;
    return true;
}

static json_t *s_seccomp (const lss_pod_security_t *sec)
{
    if (sec->seccomp_localhost && *sec->seccomp_localhost)
        return json_pack ("{s:s, s:s}", "type", "Localhost", "localhostProfile",
                          sec->seccomp_localhost);
    return json_pack ("{s:s}", "type", "RuntimeDefault");
}

static int s_set (json_t *obj, const char *key, json_t *value)
{
    return value ? json_object_set_new (obj, key, value) : -1;
}

int lss_pod_harden (json_t *pod, const lss_pod_security_t *sec, char *err, size_t err_size)
{
    json_t *spec = json_object_get (pod, "spec");
    json_t *c0 = json_array_get (json_object_get (spec, "containers"), 0);
    if (!json_is_object (spec) || !json_is_object (c0)) {
        lss_errf (err, err_size, "pod: spec.containers[0] missing");
        return -1;
    }
    if (!sec || sec->uid < 1 || sec->uid > 65534 || sec->gid < 1 || sec->gid > 65534) {
        lss_errf (err, err_size, "pod: runAsUser/runAsGroup must be 1..65534");
        return -1;
    }
    if (sec->seccomp_localhost && *sec->seccomp_localhost &&
        !s_seccomp_path_ok (sec->seccomp_localhost)) {
        lss_errf (err, err_size,
                  "SandboxProfile spec.seccompProfile: '%.64s' is not a relative path of "
                  "[A-Za-z0-9._/-] without '..'",
                  sec->seccomp_localhost);
        return -1;
    }
    if (sec->runtime_class && *sec->runtime_class &&
        lss_store_check_name ("SandboxProfile spec.runtimeClassName", sec->runtime_class, err,
                              err_size))
        return -1;

    int rc = 0;
    rc |= json_object_set_new (spec, "automountServiceAccountToken", json_false ());
    rc |= json_object_set_new (spec, "enableServiceLinks", json_false ());
    rc |= json_object_set_new (spec, "hostNetwork", json_false ());
    rc |= json_object_set_new (spec, "hostPID", json_false ());
    rc |= json_object_set_new (spec, "hostIPC", json_false ());
    rc |= json_object_set_new (spec, "shareProcessNamespace", json_false ());
    rc |= s_set (spec, "securityContext",
                 json_pack ("{s:b, s:I, s:I, s:I, s:o}", "runAsNonRoot", 1, "runAsUser",
                            (json_int_t)sec->uid, "runAsGroup", (json_int_t)sec->gid, "fsGroup",
                            (json_int_t)sec->gid, "seccompProfile", s_seccomp (sec)));
    if (sec->runtime_class && *sec->runtime_class)
        rc |= json_object_set_new (spec, "runtimeClassName", json_string (sec->runtime_class));

    rc |= s_set (c0, "securityContext",
                 json_pack ("{s:I, s:I, s:b, s:b, s:b, s:b, s:{s:[s]}, s:o}", "runAsUser",
                            (json_int_t)sec->uid, "runAsGroup", (json_int_t)sec->gid,
                            "runAsNonRoot", 1, "readOnlyRootFilesystem", 1,
                            "allowPrivilegeEscalation", 0, "privileged", 0, "capabilities",
                            "drop", "ALL", "seccompProfile", s_seccomp (sec)));

    /* requests = limits: the scheduler reserves what the sandbox may use (Guaranteed) */
    json_t *res = json_object_get (c0, "resources");
    json_t *limits = json_object_get (res, "limits");
    if (!json_is_object (res) || !json_is_object (limits)) {
        lss_errf (err, err_size, "pod: spec.containers[0].resources.limits missing");
        return -1;
    }
    rc |= json_object_set_new (res, "requests", json_deep_copy (limits));

    const char *storage = json_string_value (json_object_get (limits, "ephemeral-storage"));
    json_t *ws = storage ? json_pack ("{s:s}", "sizeLimit", storage) : json_object ();
    rc |= s_set (spec, "volumes",
                 json_pack ("[{s:s, s:o}, {s:s, s:{s:s, s:s}}]", "name", "workspace",
                            "emptyDir", ws, "name", "tmp", "emptyDir", "medium", "Memory",
                            "sizeLimit", LSS_POD_TMP_SIZE));
    rc |= s_set (c0, "volumeMounts",
                 json_pack ("[{s:s, s:s}, {s:s, s:s}]", "name", "workspace", "mountPath",
                            "/workspace", "name", "tmp", "mountPath", "/tmp"));
    rc |= s_set (c0, "workingDir", json_string ("/workspace"));
    if (rc) {
        lss_errf (err, err_size, "pod: out of memory");
        return -1;
    }
    return 0;
}

/* ------------------------------------------------------------------ CURVE */

bool lss_pod_curve_clients_valid (const char *csv)
{
    if (!csv || !*csv)
        return false;
    size_t n = 0;
    const char *p = csv;
    for (;;) {
        const char *comma = strchr (p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen (p);
        char key[LSS_CURVE_KEY_LEN + 1];
        if (len != LSS_CURVE_KEY_LEN || ++n > LSS_CURVE_CLIENTS)
            return false;
        memcpy (key, p, len);
        key[len] = '\0';
        if (!lss_curve_key_valid (key))
            return false;
        if (!comma)
            return true;
        p = comma + 1;
    }
}

static void s_secret_name (const char *pod_name, char *out, size_t size)
{
    snprintf (out, size, "%.200s-agent-key", pod_name);
}

int lss_pod_curve_secret (lss_store_t *store, const json_t *owner, const char *ns,
                          const char *pod_name, char pub[LSS_CURVE_KEY_LEN + 1], char *err,
                          size_t err_size)
{
    char name[LSS_POD_KEY_SECRET_MAX + 1], sec[LSS_CURVE_KEY_LEN + 1];
    s_secret_name (pod_name, name, sizeof name);
    const char *owner_uid = lss_obj_str (owner, "metadata.uid");
    if (!owner_uid) {
        lss_errf (err, err_size, "agent key: the owner has no uid");
        return LSS_STORE_INVALID;
    }
    if (lss_curve_keypair (pub, sec)) {
        lss_errf (err, err_size, "agent key: cannot make a key pair");
        return LSS_STORE_INVALID;
    }
    char b64[64];
    EVP_EncodeBlock ((unsigned char *)b64, (const unsigned char *)sec, LSS_CURVE_KEY_LEN);
    explicit_bzero (sec, sizeof sec);
    json_t *secret = json_pack (
        "{s:s, s:s, s:{s:s, s:s, s:{s:s, s:s}, s:[o]}, s:s, s:{s:s}}", "apiVersion", "v1",
        "kind", "Secret", "metadata", "name", name, "namespace", ns, "labels",
        LSS_LABEL_PART_OF, "llmsafespace", LSS_LABEL_COMPONENT, "agent-key", "ownerReferences",
        lss_obj_owner_ref (owner), "type", "Opaque", "data", "secret", b64);
    explicit_bzero (b64, sizeof b64);
    if (!secret) {
        lss_errf (err, err_size, "agent key: out of memory");
        return LSS_STORE_INVALID;
    }
    int rc = lss_store_create (store, secret, NULL, err, err_size);
    json_decref (secret);
    if (rc != LSS_STORE_CONFLICT)
        return rc;
    /* made by an earlier pass (or someone else): use it only if it is ours */
    json_t *have = NULL;
    rc = lss_store_get (store, "Secret", ns, name, &have, err, err_size);
    if (rc)
        return rc;
    lss_k8s_blob_t raw = {0};
    const char *data = lss_obj_str (have, "data.secret");
    rc = LSS_STORE_INVALID;
    if (!lss_obj_owned_by (have, owner_uid))
        lss_errf (err, err_size, "agent key: Secret %s/%s exists and is not ours", ns, name);
    else if (!data || lss_k8s_base64_decode (data, &raw) || raw.len != LSS_CURVE_KEY_LEN)
        lss_errf (err, err_size, "agent key: Secret %s/%s holds no usable key", ns, name);
    else {
        memcpy (sec, raw.data, LSS_CURVE_KEY_LEN);
        sec[LSS_CURVE_KEY_LEN] = '\0';
        rc = lss_curve_public_of (sec, pub) == 0 ? 0 : LSS_STORE_INVALID;
        if (rc)
            lss_errf (err, err_size, "agent key: Secret %s/%s holds no usable key", ns, name);
        explicit_bzero (sec, sizeof sec);
    }
    if (raw.data)
        explicit_bzero (raw.data, raw.len);
    free (raw.data);
    json_decref (have);
    return rc;
}

int lss_pod_curve_apply (json_t *pod, const char *pub, const char *clients, char *err,
                         size_t err_size)
{
    json_t *c0 = json_array_get (lss_obj_at (pod, "spec.containers"), 0);
    const char *pod_name = lss_obj_str (pod, "metadata.name");
    if (!json_is_object (c0) || !pod_name || !lss_curve_key_valid (pub) ||
        !lss_pod_curve_clients_valid (clients)) {
        lss_errf (err, err_size, "agent key: bad Pod, public key or executor keys");
        return -1;
    }
    char secret_name[LSS_POD_KEY_SECRET_MAX + 1];
    s_secret_name (pod_name, secret_name, sizeof secret_name);
    if (lss_pod_agent_tcp (pod)) {
        lss_errf (err, err_size, "agent key: out of memory");
        return -1;
    }
    json_t *args = json_object_get (c0, "args");
    for (const char *p = clients; p && *p;) {
        const char *comma = strchr (p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen (p);
        json_array_append_new (args, json_string ("--curve-client"));
        json_array_append_new (args, json_stringn (p, len));
        p = comma ? comma + 1 : NULL;
    }
    int rc = json_object_set_new (
        c0, "env",
        json_pack ("[{s:s, s:{s:{s:s, s:s}}}]", "name", "LSS_AGENT_CURVE_SECRET", "valueFrom",
                   "secretKeyRef", "name", secret_name, "key", "secret"));
    rc |= lss_obj_set_annotation (pod, LSS_ANN_AGENT_KEY, pub);
    if (rc) {
        lss_errf (err, err_size, "agent key: out of memory");
        return -1;
    }
    return 0;
}

int lss_pod_agent_tcp (json_t *pod)
{
    json_t *c0 = json_array_get (lss_obj_at (pod, "spec.containers"), 0);
    if (!json_is_object (c0))
        return -1;
    char ep[64];
    snprintf (ep, sizeof ep, "tcp://0.0.0.0:%d", LSS_POD_AGENT_PORT);
    int rc = json_object_set_new (c0, "args", json_pack ("[s, s]", "--endpoint", ep));
    rc |= json_object_set_new (c0, "ports",
                               json_pack ("[{s:s, s:i, s:s}]", "name", "agent", "containerPort",
                                          LSS_POD_AGENT_PORT, "protocol", "TCP"));
    return rc ? -1 : 0;
}

int lss_pod_cluster_agent (lss_store_t *store, json_t *pod, const json_t *owner,
                           const char *clients, char *err, size_t err_size)
{
    if (!clients || !*clients) {
        if (lss_pod_agent_tcp (pod) == 0)
            return 0;
        lss_errf (err, err_size, "pod: no container");
        return LSS_STORE_INVALID;
    }
    const char *ns = lss_obj_str (pod, "metadata.namespace");
    const char *name = lss_obj_str (pod, "metadata.name");
    if (!ns || !name) {
        lss_errf (err, err_size, "pod: no name or namespace");
        return LSS_STORE_INVALID;
    }
    char pub[LSS_CURVE_KEY_LEN + 1];
    int rc = lss_pod_curve_secret (store, owner, ns, name, pub, err, err_size);
    if (rc == 0 && lss_pod_curve_apply (pod, pub, clients, err, err_size))
        rc = LSS_STORE_INVALID;
    return rc;
}
