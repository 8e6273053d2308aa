/*  lss_pod — the security settings every sandbox Pod carries. See lss_pod.h. */
#include "lss_pod.h"

#include <string.h>

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
