/*  sandbox_spec — sandbox spec: defaults, setters, validation, JSON. See sandbox_spec.h.
 *
 *  Validation is separate from parsing so that specs built in code (tests, the CLI) get
 *  exactly the same checks as specs read from the store.
 */
#include "sandbox_spec.h"

#include "lss_util.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *s_reserved[] = {"/proc",      "/dev", "/sys",    "/etc",
                                   "/workspace", "/tmp", "/run/lss"};

static void s_strv_free (char **v, size_t n)
{
    if (!v)
        return;
    for (size_t i = 0; i < n; i++)
        free (v[i]);
    free (v);
}

bool lss_sandbox_id_valid (const char *id)
{
    if (!id)
        return false;
    size_t n = strlen (id);
    if (n == 0 || n > LSS_SANDBOX_ID_MAX || id[0] == '-' || id[n - 1] == '-')
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = id[i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-'))
            return false;
    }
    return true;
}

const char *lss_sandbox_level_name (lss_sandbox_level_t level)
{
    return level == LSS_SANDBOX_LEVEL_HIGH ? "high" : "standard";
}

int lss_sandbox_level_parse (const char *name, lss_sandbox_level_t *level)
{
    if (!name)
        return -1;
    if (strcmp (name, "standard") == 0)
        *level = LSS_SANDBOX_LEVEL_STANDARD;
    else if (strcmp (name, "high") == 0)
        *level = LSS_SANDBOX_LEVEL_HIGH;
    else
        return -1;
    return 0;
}

lss_sandbox_spec_t *lss_sandbox_spec_new (const char *id)
{
    lss_sandbox_spec_t *self = calloc (1, sizeof *self);
    if (!self)
        return NULL;
    if (id)
        snprintf (self->id, sizeof self->id, "%s", id);
    self->uid = LSS_SANDBOX_DEFAULT_UID;
    self->gid = LSS_SANDBOX_DEFAULT_UID;
    self->ephemeral_bytes = LSS_SANDBOX_DEFAULT_EPHEMERAL_BYTES;
    self->tmp_bytes = LSS_SANDBOX_DEFAULT_TMP_BYTES;
    self->read_only_root = true;
    self->level = LSS_SANDBOX_LEVEL_STANDARD;
    return self;
}

void lss_sandbox_spec_destroy (lss_sandbox_spec_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    lss_sandbox_spec_t *self = *self_p;
    free (self->rootfs);
    s_strv_free (self->argv, self->argc);
    s_strv_free (self->env, self->envc);
    s_strv_free (self->writable, self->writable_count);
    for (size_t i = 0; i < self->ro_bind_count; i++) {
        free (self->ro_binds[i].src);
        free (self->ro_binds[i].dest);
    }
    free (self->ro_binds);
    free (self);
    *self_p = NULL;
}

int lss_sandbox_spec_set_argv (lss_sandbox_spec_t *self, const char *const *argv, size_t argc)
{
    if (argc > LSS_SANDBOX_ARGV_MAX)
        return -1;
    char **v = calloc (argc + 1, sizeof *v);
    if (!v)
        return -1;
    for (size_t i = 0; i < argc; i++) {
        if (!argv[i] || strlen (argv[i]) > LSS_SANDBOX_STRING_MAX ||
            !(v[i] = strdup (argv[i]))) {
            s_strv_free (v, i);
            return -1;
        }
    }
    s_strv_free (self->argv, self->argc);
    self->argv = v;
    self->argc = argc;
    return 0;
}

int lss_sandbox_spec_set_rootfs (lss_sandbox_spec_t *self, const char *rootfs)
{
    char *copy = NULL;
    if (rootfs) {
        if (strlen (rootfs) > LSS_SANDBOX_PATH_MAX || !(copy = strdup (rootfs)))
            return -1;
    }
    free (self->rootfs);
    self->rootfs = copy;
    return 0;
}

/*  [A-Za-z_][A-Za-z0-9_]* */
static bool s_env_name_ok (const char *name, size_t len)
{
    if (len == 0)
        return false;
    for (size_t i = 0; i < len; i++) {
        char c = name[i];
        bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_' ||
                  (i > 0 && c >= '0' && c <= '9');
        if (!ok)
            return false;
    }
    return true;
}

int lss_sandbox_spec_add_env (lss_sandbox_spec_t *self, const char *name, const char *value)
{
    if (!name || !value || self->envc >= LSS_SANDBOX_ENV_MAX ||
        !s_env_name_ok (name, strlen (name)))
        return -1;
    size_t len = strlen (name) + 1 + strlen (value);
    if (len > LSS_SANDBOX_STRING_MAX)
        return -1;
    char **v = realloc (self->env, (self->envc + 1) * sizeof *v);
    if (!v)
        return -1;
    self->env = v;
    char *kv = malloc (len + 1);
    if (!kv)
        return -1;
    snprintf (kv, len + 1, "%s=%s", name, value);
    self->env[self->envc++] = kv;
    return 0;
}

int lss_sandbox_spec_add_ro_bind (lss_sandbox_spec_t *self, const char *src, const char *dest)
{
    if (!src || !dest || self->ro_bind_count >= LSS_SANDBOX_BINDS_MAX ||
        strlen (src) > LSS_SANDBOX_PATH_MAX || strlen (dest) > LSS_SANDBOX_PATH_MAX)
        return -1;
    lss_sandbox_bind_t *v = realloc (self->ro_binds, (self->ro_bind_count + 1) * sizeof *v);
    if (!v)
        return -1;
    self->ro_binds = v;
    char *s = strdup (src);
    char *d = strdup (dest);
    if (!s || !d) {
        free (s);
        free (d);
        return -1;
    }
    self->ro_binds[self->ro_bind_count].src = s;
    self->ro_binds[self->ro_bind_count].dest = d;
    self->ro_bind_count++;
    return 0;
}

int lss_sandbox_spec_add_writable (lss_sandbox_spec_t *self, const char *path)
{
    if (!path || self->writable_count >= LSS_SANDBOX_WRITABLE_MAX ||
        strlen (path) > LSS_SANDBOX_PATH_MAX)
        return -1;
    char **v = realloc (self->writable, (self->writable_count + 1) * sizeof *v);
    if (!v)
        return -1;
    self->writable = v;
    char *copy = strdup (path);
    if (!copy)
        return -1;
    self->writable[self->writable_count++] = copy;
    return 0;
}

/*  An absolute, normalised path: no "." or ".." components, no "//", no trailing '/',
 *  printable ASCII or UTF-8 bytes only (no control characters). */
static bool s_path_valid (const char *path)
{
    if (!path || path[0] != '/')
        return false;
    size_t n = strlen (path);
    if (n > LSS_SANDBOX_PATH_MAX || (n > 1 && path[n - 1] == '/'))
        return false;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)path[i] < 0x20 || path[i] == 0x7f)
            return false;
    const char *p = path;
    while (*p) {
        p++; /* past '/' */
        const char *end = strchr (p, '/');
        size_t len = end ? (size_t)(end - p) : strlen (p);
        if (len == 0 && n > 1)
            return false;
        if ((len == 1 && p[0] == '.') || (len == 2 && p[0] == '.' && p[1] == '.'))
            return false;
        p += len;
    }
    return true;
}

static bool s_path_under (const char *path, const char *prefix)
{
    size_t n = strlen (prefix);
    return strncmp (path, prefix, n) == 0 && (path[n] == '\0' || path[n] == '/');
}

/*  A sandbox path the spec may mount something on. */
static int s_check_sandbox_path (const char *field, const char *path, char *err,
                                 size_t err_size)
{
    if (!s_path_valid (path) || strcmp (path, "/") == 0) {
        lss_errf (err, err_size,
                  "%s: must be an absolute path without '.', '..' or '//', not /", field);
        return -1;
    }
    for (size_t i = 0; i < sizeof s_reserved / sizeof s_reserved[0]; i++) {
        if (s_path_under (path, s_reserved[i])) {
            lss_errf (err, err_size, "%s: %s is reserved by the runtime", field, s_reserved[i]);
            return -1;
        }
    }
    return 0;
}

static bool s_env_name_valid (const char *kv, size_t *name_len)
{
    const char *eq = strchr (kv, '=');
    if (!eq || !s_env_name_ok (kv, (size_t)(eq - kv)))
        return false;
    *name_len = (size_t)(eq - kv);
    return true;
}

static int s_check_range (const char *field, int64_t v, int64_t min, int64_t max, bool zero_ok,
                          char *err, size_t err_size)
{
    if ((zero_ok && v == 0) || (v >= min && v <= max))
        return 0;
    lss_errf (err, err_size, "%s: must be %s%lld..%lld", field, zero_ok ? "0 (none) or " : "",
              (long long)min, (long long)max);
    return -1;
}

int lss_sandbox_spec_validate (const lss_sandbox_spec_t *self, char *err, size_t err_size)
{
    char field[64];
    if (!lss_sandbox_id_valid (self->id)) {
        lss_errf (err, err_size,
                  "id: must be 1..%d characters of [a-z0-9-], not starting or "
                  "ending with '-'",
                  LSS_SANDBOX_ID_MAX);
        return -1;
    }
    if (self->argc == 0 || !self->argv || !self->argv[0] || !self->argv[0][0]) {
        lss_errf (err, err_size, "argv: must hold the init program and its arguments");
        return -1;
    }
    if (self->argc > LSS_SANDBOX_ARGV_MAX) {
        lss_errf (err, err_size, "argv: at most %d entries", LSS_SANDBOX_ARGV_MAX);
        return -1;
    }
    for (size_t i = 0; i < self->argc; i++) {
        if (!self->argv[i] || strlen (self->argv[i]) > LSS_SANDBOX_STRING_MAX) {
            lss_errf (err, err_size, "argv[%zu]: must be a string of at most %d bytes", i,
                      LSS_SANDBOX_STRING_MAX);
            return -1;
        }
    }
    if (self->rootfs && (!s_path_valid (self->rootfs) || strcmp (self->rootfs, "/") == 0)) {
        lss_errf (err, err_size,
                  "rootfs: must be an absolute normalised directory path other "
                  "than / (omit it for the host root)");
        return -1;
    }
    if (!self->read_only_root && !self->rootfs) {
        lss_errf (err, err_size,
                  "readOnlyRoot: the host root is always read-only; a writable "
                  "root needs a rootfs");
        return -1;
    }
    if (self->envc > LSS_SANDBOX_ENV_MAX) {
        lss_errf (err, err_size, "env: at most %d entries", LSS_SANDBOX_ENV_MAX);
        return -1;
    }
    for (size_t i = 0; i < self->envc; i++) {
        size_t name_len = 0;
        if (!self->env[i] || strlen (self->env[i]) > LSS_SANDBOX_STRING_MAX ||
            !s_env_name_valid (self->env[i], &name_len)) {
            lss_errf (err, err_size,
                      "env[%zu]: name must be [A-Za-z_][A-Za-z0-9_]* and the "
                      "entry at most %d bytes",
                      i, LSS_SANDBOX_STRING_MAX);
            return -1;
        }
    }
    if (self->uid == 0 || self->uid > 65534 || self->gid == 0 || self->gid > 65534) {
        lss_errf (err, err_size, "%s: must be 1..65534 (never root, even inside)",
                  self->uid == 0 || self->uid > 65534 ? "uid" : "gid");
        return -1;
    }
    if (s_check_range ("cpuMillicores", self->cpu_millicores, 10,
                       LSS_SANDBOX_MAX_CPU_MILLICORES, true, err, err_size) ||
        s_check_range ("memoryBytes", self->memory_bytes, LSS_SANDBOX_MIN_MEMORY_BYTES,
                       LSS_SANDBOX_MAX_MEMORY_BYTES, true, err, err_size) ||
        s_check_range ("pidsMax", self->pids_max, LSS_SANDBOX_MIN_PIDS, LSS_SANDBOX_MAX_PIDS,
                       true, err, err_size) ||
        s_check_range ("ephemeralStorageBytes", self->ephemeral_bytes,
                       LSS_SANDBOX_MIN_STORAGE_BYTES, LSS_SANDBOX_MAX_STORAGE_BYTES, false, err,
                       err_size) ||
        s_check_range ("tmpBytes", self->tmp_bytes, LSS_SANDBOX_MIN_STORAGE_BYTES,
                       LSS_SANDBOX_MAX_STORAGE_BYTES, false, err, err_size))
        return -1;
    if (self->level != LSS_SANDBOX_LEVEL_STANDARD && self->level != LSS_SANDBOX_LEVEL_HIGH) {
        lss_errf (err, err_size, "securityLevel: must be \"standard\" or \"high\"");
        return -1;
    }
    if (self->writable_count > LSS_SANDBOX_WRITABLE_MAX) {
        lss_errf (err, err_size, "writablePaths: at most %d entries", LSS_SANDBOX_WRITABLE_MAX);
        return -1;
    }
    for (size_t i = 0; i < self->writable_count; i++) {
        snprintf (field, sizeof field, "writablePaths[%zu]", i);
        if (s_check_sandbox_path (field, self->writable[i], err, err_size))
            return -1;
    }
    if (self->ro_bind_count > LSS_SANDBOX_BINDS_MAX) {
        lss_errf (err, err_size, "roBinds: at most %d entries", LSS_SANDBOX_BINDS_MAX);
        return -1;
    }
    for (size_t i = 0; i < self->ro_bind_count; i++) {
        if (!s_path_valid (self->ro_binds[i].src) || strcmp (self->ro_binds[i].src, "/") == 0) {
            lss_errf (err, err_size,
                      "roBinds[%zu].src: must be an absolute normalised host path "
                      "other than /",
                      i);
            return -1;
        }
        snprintf (field, sizeof field, "roBinds[%zu].dest", i);
        if (s_check_sandbox_path (field, self->ro_binds[i].dest, err, err_size))
            return -1;
    }
    return 0;
}

/* ------------------------------------------------------------------------ JSON */

/*  A JSON string without embedded NULs, at most max bytes. */
static const char *s_json_str (const json_t *v, size_t max)
{
    if (!json_is_string (v))
        return NULL;
    const char *s = json_string_value (v);
    size_t n = json_string_length (v);
    if (n > max || strlen (s) != n)
        return NULL;
    return s;
}

static int s_json_int (const json_t *obj, const char *key, int64_t *out, char *err,
                       size_t err_size)
{
    const json_t *v = json_object_get (obj, key);
    if (!v)
        return 0;
    if (!json_is_integer (v)) {
        lss_errf (err, err_size, "%s: must be an integer", key);
        return -1;
    }
    *out = (int64_t)json_integer_value (v);
    return 0;
}

static int s_json_bool (const json_t *obj, const char *key, bool *out, char *err,
                        size_t err_size)
{
    const json_t *v = json_object_get (obj, key);
    if (!v)
        return 0;
    if (!json_is_boolean (v)) {
        lss_errf (err, err_size, "%s: must be true or false", key);
        return -1;
    }
    *out = json_is_true (v);
    return 0;
}

static const char *s_known_keys[] = {
    "id",       "rootfs",        "argv",         "env",           "uid",
    "gid",      "cpuMillicores", "memoryBytes",  "pidsMax",       "ephemeralStorageBytes",
    "tmpBytes", "network",       "readOnlyRoot", "securityLevel", "writablePaths",
    "roBinds",
};

static int s_parse_fields (lss_sandbox_spec_t *self, const json_t *obj, char *err,
                           size_t err_size)
{
    const json_t *v;
    const char *s;
    if ((v = json_object_get (obj, "rootfs")) && !json_is_null (v)) {
        if (!(s = s_json_str (v, LSS_SANDBOX_PATH_MAX))) {
            lss_errf (err, err_size, "rootfs: must be a path string of at most %d bytes",
                      LSS_SANDBOX_PATH_MAX);
            return -1;
        }
        if (lss_sandbox_spec_set_rootfs (self, s))
            goto nomem;
    }
    v = json_object_get (obj, "argv");
    if (!json_is_array (v) || json_array_size (v) == 0 ||
        json_array_size (v) > LSS_SANDBOX_ARGV_MAX) {
        lss_errf (err, err_size, "argv: must be an array of 1..%d strings",
                  LSS_SANDBOX_ARGV_MAX);
        return -1;
    }
    const char *argv[LSS_SANDBOX_ARGV_MAX];
    size_t argc = json_array_size (v);
    for (size_t i = 0; i < argc; i++) {
        if (!(argv[i] = s_json_str (json_array_get (v, i), LSS_SANDBOX_STRING_MAX))) {
            lss_errf (err, err_size, "argv[%zu]: must be a string of at most %d bytes", i,
                      LSS_SANDBOX_STRING_MAX);
            return -1;
        }
    }
    if (lss_sandbox_spec_set_argv (self, argv, argc))
        goto nomem;
    if ((v = json_object_get (obj, "env"))) {
        if (!json_is_object (v) || json_object_size (v) > LSS_SANDBOX_ENV_MAX) {
            lss_errf (err, err_size, "env: must be an object of at most %d string values",
                      LSS_SANDBOX_ENV_MAX);
            return -1;
        }
        const char *key;
        const json_t *val;
        json_object_foreach ((json_t *)v, key, val)
        {
            if (!s_env_name_ok (key, strlen (key))) {
                lss_errf (err, err_size, "env.%.64s: name must be [A-Za-z_][A-Za-z0-9_]*", key);
                return -1;
            }
            if (!(s = s_json_str (val, LSS_SANDBOX_STRING_MAX))) {
                lss_errf (err, err_size, "env.%.64s: must be a string", key);
                return -1;
            }
            if (strlen (key) + strlen (s) + 1 > LSS_SANDBOX_STRING_MAX) {
                lss_errf (err, err_size, "env.%.64s: longer than %d bytes", key,
                          LSS_SANDBOX_STRING_MAX);
                return -1;
            }
            if (lss_sandbox_spec_add_env (self, key, s))
                goto nomem;
        }
    }
    int64_t uid = self->uid, gid = self->gid;
    if (s_json_int (obj, "uid", &uid, err, err_size) ||
        s_json_int (obj, "gid", &gid, err, err_size))
        return -1;
    if (uid < 1 || uid > 65534 || gid < 1 || gid > 65534) {
        lss_errf (err, err_size, "%s: must be 1..65534 (never root, even inside)",
                  uid < 1 || uid > 65534 ? "uid" : "gid");
        return -1;
    }
    self->uid = (uint32_t)uid;
    self->gid = (uint32_t)gid;
    if (s_json_int (obj, "cpuMillicores", &self->cpu_millicores, err, err_size) ||
        s_json_int (obj, "memoryBytes", &self->memory_bytes, err, err_size) ||
        s_json_int (obj, "pidsMax", &self->pids_max, err, err_size) ||
        s_json_int (obj, "ephemeralStorageBytes", &self->ephemeral_bytes, err, err_size) ||
        s_json_int (obj, "tmpBytes", &self->tmp_bytes, err, err_size) ||
        s_json_bool (obj, "network", &self->network, err, err_size) ||
        s_json_bool (obj, "readOnlyRoot", &self->read_only_root, err, err_size))
        return -1;
    if ((v = json_object_get (obj, "securityLevel"))) {
        if (!(s = s_json_str (v, 16)) || lss_sandbox_level_parse (s, &self->level)) {
            lss_errf (err, err_size, "securityLevel: must be \"standard\" or \"high\"");
            return -1;
        }
    }
    if ((v = json_object_get (obj, "writablePaths"))) {
        if (!json_is_array (v) || json_array_size (v) > LSS_SANDBOX_WRITABLE_MAX) {
            lss_errf (err, err_size, "writablePaths: must be an array of at most %d paths",
                      LSS_SANDBOX_WRITABLE_MAX);
            return -1;
        }
        for (size_t i = 0; i < json_array_size (v); i++) {
            if (!(s = s_json_str (json_array_get (v, i), LSS_SANDBOX_PATH_MAX))) {
                lss_errf (err, err_size, "writablePaths[%zu]: must be a path string", i);
                return -1;
            }
            if (lss_sandbox_spec_add_writable (self, s))
                goto nomem;
        }
    }
    if ((v = json_object_get (obj, "roBinds"))) {
        if (!json_is_array (v) || json_array_size (v) > LSS_SANDBOX_BINDS_MAX) {
            lss_errf (err, err_size, "roBinds: must be an array of at most %d {src, dest}",
                      LSS_SANDBOX_BINDS_MAX);
            return -1;
        }
        for (size_t i = 0; i < json_array_size (v); i++) {
            const json_t *b = json_array_get (v, i);
            const char *src = s_json_str (json_object_get (b, "src"), LSS_SANDBOX_PATH_MAX);
            const char *dest = s_json_str (json_object_get (b, "dest"), LSS_SANDBOX_PATH_MAX);
            if (!json_is_object (b) || json_object_size (b) != 2 || !src || !dest) {
                lss_errf (err, err_size,
                          "roBinds[%zu]: must be {\"src\": path, \"dest\": path}", i);
                return -1;
            }
            if (lss_sandbox_spec_add_ro_bind (self, src, dest))
                goto nomem;
        }
    }
    return 0;
nomem:
    lss_errf (err, err_size, "out of memory");
    return -1;
}

lss_sandbox_spec_t *lss_sandbox_spec_from_json (const json_t *obj, char *err, size_t err_size)
{
    lss_sandbox_spec_t *self = NULL;
    if (!json_is_object (obj)) {
        lss_errf (err, err_size, "spec: must be a JSON object");
        goto cleanup;
    }
    const char *key;
    const json_t *val;
    json_object_foreach ((json_t *)obj, key, val)
    {
        bool known = false;
        for (size_t i = 0; i < sizeof s_known_keys / sizeof s_known_keys[0]; i++)
            known = known || strcmp (key, s_known_keys[i]) == 0;
        if (!known) {
            lss_errf (err, err_size, "%.64s: unknown field", key);
            goto cleanup;
        }
    }
    const char *id = s_json_str (json_object_get (obj, "id"), LSS_SANDBOX_ID_MAX);
    if (!id || !lss_sandbox_id_valid (id)) {
        lss_errf (err, err_size,
                  "id: must be 1..%d characters of [a-z0-9-], not starting or "
                  "ending with '-'",
                  LSS_SANDBOX_ID_MAX);
        goto cleanup;
    }
    self = lss_sandbox_spec_new (id);
    if (!self) {
        lss_errf (err, err_size, "out of memory");
        goto cleanup;
    }
    if (s_parse_fields (self, obj, err, err_size) ||
        lss_sandbox_spec_validate (self, err, err_size))
        lss_sandbox_spec_destroy (&self);
cleanup:
    return self;
}

json_t *lss_sandbox_spec_to_json (const lss_sandbox_spec_t *self)
{
    json_t *result = NULL;
    json_t *obj =
        json_pack ("{s:s, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:b, s:b, s:s}", "id", self->id,
                   "uid", (json_int_t)self->uid, "gid", (json_int_t)self->gid, "cpuMillicores",
                   (json_int_t)self->cpu_millicores, "memoryBytes",
                   (json_int_t)self->memory_bytes, "pidsMax", (json_int_t)self->pids_max,
                   "ephemeralStorageBytes", (json_int_t)self->ephemeral_bytes, "tmpBytes",
                   (json_int_t)self->tmp_bytes, "network", self->network, "readOnlyRoot",
                   self->read_only_root, "securityLevel", lss_sandbox_level_name (self->level));
    json_t *argv = json_array ();
    json_t *env = json_object ();
    json_t *writable = json_array ();
    json_t *binds = json_array ();
    if (!obj || !argv || !env || !writable || !binds)
        goto cleanup;
    if (self->rootfs && json_object_set_new (obj, "rootfs", json_string (self->rootfs)))
        goto cleanup;
    for (size_t i = 0; i < self->argc; i++)
        if (json_array_append_new (argv, json_string (self->argv[i])))
            goto cleanup;
    for (size_t i = 0; i < self->envc; i++) {
        const char *eq = strchr (self->env[i], '=');
        size_t n = eq ? (size_t)(eq - self->env[i]) : strlen (self->env[i]);
        char *name = strndup (self->env[i], n);
        int rc = name ? json_object_set_new (env, name, json_string (eq ? eq + 1 : "")) : -1;
        free (name);
        if (rc)
            goto cleanup;
    }
    for (size_t i = 0; i < self->writable_count; i++)
        if (json_array_append_new (writable, json_string (self->writable[i])))
            goto cleanup;
    for (size_t i = 0; i < self->ro_bind_count; i++)
        if (json_array_append_new (binds, json_pack ("{s:s, s:s}", "src", self->ro_binds[i].src,
                                                     "dest", self->ro_binds[i].dest)))
            goto cleanup;
    if (json_object_set (obj, "argv", argv) || json_object_set (obj, "env", env) ||
        json_object_set (obj, "writablePaths", writable) ||
        json_object_set (obj, "roBinds", binds))
        goto cleanup;
    result = obj;
    obj = NULL;
cleanup:
    json_decref (obj);
    json_decref (argv);
    json_decref (env);
    json_decref (writable);
    json_decref (binds);
    return result;
}
