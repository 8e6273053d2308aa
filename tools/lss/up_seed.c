/*  up_seed — the objects a fresh local-mode system starts with.
 *
 *  Design note: RuntimeEnvironments describe what this machine really has: each
 *  interpreter is found on PATH, but only under the directories sandboxes see (/usr,
 *  /bin, /sbin: lss-node binds the host's root read-only), and asked for its version, so
 *  python 3.11 yields runtime "python:3.11" (RuntimeEnvironment python-3.11) with
 *  interpreter /usr/bin/python3. The default WarmPool keeps two python sandboxes warm in
 *  the api's namespace. Seeding is create-if-absent: an object that exists (from an
 *  earlier run, or edited by the operator) is never changed, so a second run seeds
 *  nothing and an operator's edits survive.
 */
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "lss_obj.h"
#include "lss_proc.h"
#include "lss_store.h"
#include "lss_util.h"
#include "up.h"

#define S_VERSION_TIMEOUT_MS 10000
#define S_WARMPOOL_NAME      "python-default"
#define S_WARMPOOL_MIN       2
#define S_WARMPOOL_MAX       10
#define S_MANAGED_BY         "app.kubernetes.io/managed-by"

static const struct {
    const char *binary, *language, *package_manager;
    const char *argv[3]; /* after the binary: prints the version */
} s_kinds[] = {
    {"python3", "python", "pip", {"-c", "import sys; print('%d.%d' % sys.version_info[:2])"}},
    {"node", "nodejs", "npm", {"-p", "process.versions.node.split('.')[0]"}},
    {"bash", "bash", "", {"-c", "echo \"${BASH_VERSINFO[0]}\""}},
};

int up_seed_parse_version (const char *language, const char *text, char *out, size_t size)
{
    if (!language || !text)
        return -1;
    bool dotted = strcmp (language, "python") == 0;
    size_t len = strcspn (text, "\n");
    if (text[len] == '\n' && text[len + 1] != '\0')
        return -1; /* one line only */
    int parts = 0, digits = 0;
    for (size_t i = 0; i < len; i++) {
        if (text[i] >= '0' && text[i] <= '9') {
            if (++digits > 3)
                return -1;
        } else if (text[i] == '.' && digits > 0 && dotted && parts == 0) {
            parts++;
            digits = 0;
        } else
            return -1;
    }
    if (digits == 0 || parts != (dotted ? 1 : 0) || len + 1 > size)
        return -1;
    memcpy (out, text, len);
    out[len] = '\0';
    return 0;
}

/*  First dir/name on path_env under a directory sandboxes see. */
static int s_find (const char *path_env, const char *name, char *out, size_t size)
{
    const char *p = path_env && *path_env ? path_env : "/usr/bin:/bin";
    while (*p) {
        size_t len = strcspn (p, ":");
        bool visible = (len >= 4 && strncmp (p, "/usr", 4) == 0 && (len == 4 || p[4] == '/')) ||
                       (len >= 4 && strncmp (p, "/bin", 4) == 0 && (len == 4 || p[4] == '/')) ||
                       (len >= 5 && strncmp (p, "/sbin", 5) == 0 && (len == 5 || p[5] == '/'));
        if (visible && lss_fmt (out, size, "%.*s/%s", (int)len, p, name) == 0 &&
            access (out, X_OK) == 0 && !strpbrk (out, ",= \t"))
            return 0;
        p += len;
        if (*p == ':')
            p++;
    }
    return -1;
}

int up_seed_detect (const char *path_env, up_runtime_t *out, int max, FILE *log)
{
    int n = 0;
    for (size_t k = 0; k < sizeof s_kinds / sizeof s_kinds[0] && n < max; k++) {
        up_runtime_t *rt = &out[n];
        memset (rt, 0, sizeof *rt);
        if (s_find (path_env, s_kinds[k].binary, rt->interpreter, sizeof rt->interpreter))
            continue;
        const char *argv[] = {rt->interpreter, s_kinds[k].argv[0], s_kinds[k].argv[1], NULL};
        const char *envp[] = {"PATH=/usr/bin:/bin", "LANG=C.UTF-8", "HOME=/", NULL};
        lss_proc_opts_t o = {
            .argv = argv, .envp = envp, .stdin_fd = -1, .stderr_fd = -1, .new_session = true};
        char text[64], err[256];
        int wstatus;
        if (lss_proc_run (&o, S_VERSION_TIMEOUT_MS, text, sizeof text, &wstatus, err,
                          sizeof err) != 0 ||
            !WIFEXITED (wstatus) || WEXITSTATUS (wstatus) != 0 ||
            up_seed_parse_version (s_kinds[k].language, text, rt->version,
                                   sizeof rt->version) != 0) {
            if (log)
                fprintf (log, "lss up: %s does not tell its version; no %s runtime\n",
                         rt->interpreter, s_kinds[k].language);
            continue;
        }
        snprintf (rt->language, sizeof rt->language, "%s", s_kinds[k].language);
        snprintf (rt->package_manager, sizeof rt->package_manager, "%s",
                  s_kinds[k].package_manager);
        snprintf (rt->runtime, sizeof rt->runtime, "%s:%s", rt->language, rt->version);
        if (lss_obj_sanitize_label (rt->runtime, rt->name, sizeof rt->name) != 0)
            continue;
        n++;
    }
    return n;
}

json_t *up_seed_runtime_object (const up_runtime_t *rt)
{
    char image[128];
    snprintf (image, sizeof image, "llmsafespace/%s:%s", rt->language, rt->version);
    json_t *o = json_pack (
        "{s:s, s:s, s:{s:s, s:{s:s, s:s, s:s}}, s:{s:s, s:s, s:s, s:s, "
        "s:[s, s, s], s:[s, s, s]}}",
        "apiVersion", LSS_OBJ_GROUP_VERSION, "kind", "RuntimeEnvironment", "metadata", "name",
        rt->name, "labels", LSS_LABEL_PART_OF, "llmsafespace", "llmsafespace.dev/language",
        rt->language, S_MANAGED_BY, "lss-up", "spec", "image", image, "language", rt->language,
        "version", rt->version, "interpreter", rt->interpreter, "tags", rt->language, "local",
        "default", "securityFeatures", "seccomp", "readOnlyRoot", "nonRoot");
    if (o && rt->package_manager[0])
        json_object_set_new (json_object_get (o, "spec"), "packageManager",
                             json_string (rt->package_manager));
    return o;
}

json_t *up_seed_warmpool_object (const up_runtime_t *python, const char *ns)
{
    return json_pack ("{s:s, s:s, s:{s:s, s:s, s:{s:s, s:s, s:s}}, s:{s:s, s:i, s:i, s:s, "
                      "s:{s:b, s:i, s:i}}}",
                      "apiVersion", LSS_OBJ_GROUP_VERSION, "kind", "WarmPool", "metadata",
                      "name", S_WARMPOOL_NAME, "namespace", ns, "labels", LSS_LABEL_PART_OF,
                      "llmsafespace", LSS_LABEL_RUNTIME, python->name, S_MANAGED_BY, "lss-up",
                      "spec", "runtime", python->runtime, "minSize", S_WARMPOOL_MIN, "maxSize",
                      S_WARMPOOL_MAX, "securityLevel", "standard", "autoScaling", "enabled", 1,
                      "targetUtilization", 80, "scaleDownDelay", 300);
}

/*  Creates obj unless it exists. 1 created, 0 existed, -1 error. */
static int s_ensure (lss_store_t *store, const json_t *obj, json_t **created, char *err,
                     size_t err_size)
{
    const char *kind = lss_obj_str (obj, "kind");
    const char *ns = lss_obj_str (obj, "metadata.namespace");
    const char *name = lss_obj_str (obj, "metadata.name");
    json_t *have = NULL;
    int rc = lss_store_get (store, kind, ns ? ns : "", name, &have, err, err_size);
    json_decref (have);
    if (rc == LSS_STORE_OK)
        return 0;
    if (rc != LSS_STORE_NOT_FOUND)
        return -1;
    rc = lss_store_create (store, obj, created, err, err_size);
    if (rc == LSS_STORE_CONFLICT) /* created meanwhile by someone else */
        return 0;
    return rc == LSS_STORE_OK ? 1 : -1;
}

int up_seed_apply (const char *dsn, const up_runtime_t *rts, int count, const char *ns,
                   up_sup_t *sup, char *err, size_t err_size)
{
    lss_store_t *store = lss_store_pg_new (dsn, err, err_size);
    if (!store)
        return -1;
    int created = 0, rc = 0;
    const up_runtime_t *python = NULL;
    for (int i = 0; i < count && rc == 0; i++) {
        if (strcmp (rts[i].language, "python") == 0 && !python)
            python = &rts[i];
        json_t *obj = up_seed_runtime_object (&rts[i]);
        json_t *stored = NULL;
        int r = obj ? s_ensure (store, obj, &stored, err, err_size) : -1;
        json_decref (obj);
        if (r < 0) {
            rc = -1;
            break;
        }
        if (r == 1 && stored) {
            char now[LSS_TIME_RFC3339_SIZE], msg[160];
            lss_time_rfc3339 (lss_time_now_ms (), now);
            snprintf (msg, sizeof msg, "%s %s found by lss up", rts[i].interpreter,
                      rts[i].version);
            json_object_set_new (
                stored, "status",
                json_pack ("{s:b, s:s}", "available", 1, "lastValidated", now));
            lss_obj_set_condition (stored, "Available", "True", "Detected", msg,
                                   lss_time_now_ms ());
            lss_store_update_status (store, stored, NULL, NULL, 0); /* informative only */
        }
        json_decref (stored);
        created += r;
        if (sup)
            up_sup_say (sup, "RuntimeEnvironment %s (runtime \"%s\", %s): %s", rts[i].name,
                        rts[i].runtime, rts[i].interpreter, r ? "created" : "exists");
    }
    if (rc == 0 && python) {
        json_t *pool = up_seed_warmpool_object (python, ns);
        int r = pool ? s_ensure (store, pool, NULL, err, err_size) : -1;
        json_decref (pool);
        if (r < 0)
            rc = -1;
        else {
            created += r;
            if (sup)
                up_sup_say (sup, "WarmPool %s/%s (runtime \"%s\", minSize %d): %s", ns,
                            S_WARMPOOL_NAME, python->runtime, S_WARMPOOL_MIN,
                            r ? "created" : "exists");
        }
    } else if (rc == 0 && sup)
        up_sup_say (sup, "no python3 found: no default WarmPool");
    lss_store_destroy (&store);
    return rc == 0 ? created : -1;
}
