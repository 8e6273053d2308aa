/*  sandbox_spec — what one local sandbox ("Pod") is: init argv, env, uid, limits, binds.
 *
 *  A plain data struct (the runtime reads its fields directly), built either with
 *  lss_sandbox_spec_new + setters or parsed from a JSON object that comes from the store.
 *  Everything is bounded (counts, string lengths, limits) and validated in one place,
 *  lss_sandbox_spec_validate, with a per-field error message ("memoryBytes: must be ...").
 *  Nothing in a spec is trusted: paths must be absolute and free of "..", sandbox paths
 *  may not shadow the runtime's own mounts (/proc, /dev, /etc, /workspace, /run/lss), env
 *  names are [A-Za-z_][A-Za-z0-9_]*, and the host's environment is never inherited.
 *
 *  JSON form (every key optional except id and argv; unknown keys are an error):
 *    {"id": "sb-1", "rootfs": "/srv/images/python-3.11", "argv": ["/opt/lss/agent"],
 *     "env": {"K": "V"}, "uid": 1000, "gid": 1000, "cpuMillicores": 500,
 *     "memoryBytes": 268435456, "pidsMax": 128, "ephemeralStorageBytes": 1073741824,
 *     "tmpBytes": 67108864, "network": false, "readOnlyRoot": true,
 *     "securityLevel": "standard", "writablePaths": ["/home/sandbox"],
 *     "roBinds": [{"src": "/usr/lib/lss/agent", "dest": "/opt/lss/agent"}]}
 */
#ifndef SANDBOX_SPEC_H
#define SANDBOX_SPEC_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define LSS_SANDBOX_ID_MAX       63 /* [a-z0-9-], no leading/trailing '-' */
#define LSS_SANDBOX_ARGV_MAX     64
#define LSS_SANDBOX_ENV_MAX      128
#define LSS_SANDBOX_BINDS_MAX    16
#define LSS_SANDBOX_WRITABLE_MAX 8
#define LSS_SANDBOX_STRING_MAX   4096 /* one argv/env string */
#define LSS_SANDBOX_PATH_MAX     1024 /* one path */
#define LSS_SANDBOX_ERR_SIZE     256

#define LSS_SANDBOX_DEFAULT_UID             1000
#define LSS_SANDBOX_DEFAULT_EPHEMERAL_BYTES (1LL << 30)  /* /workspace */
#define LSS_SANDBOX_DEFAULT_TMP_BYTES       (64LL << 20) /* /tmp, /dev/shm, writable paths */
#define LSS_SANDBOX_MIN_MEMORY_BYTES        (4LL << 20)
#define LSS_SANDBOX_MAX_MEMORY_BYTES        (1LL << 40)
#define LSS_SANDBOX_MAX_CPU_MILLICORES      (1024LL * 1000)
#define LSS_SANDBOX_MIN_PIDS                2
#define LSS_SANDBOX_MAX_PIDS                65536
#define LSS_SANDBOX_MIN_STORAGE_BYTES       (1LL << 20)
#define LSS_SANDBOX_MAX_STORAGE_BYTES       (1LL << 40)

typedef enum {
    LSS_SANDBOX_LEVEL_STANDARD = 0,
    LSS_SANDBOX_LEVEL_HIGH = 1,
} lss_sandbox_level_t;

typedef struct {
    char *src;  /* host path */
    char *dest; /* sandbox path */
} lss_sandbox_bind_t;

typedef struct {
    char id[LSS_SANDBOX_ID_MAX + 1];
    char *rootfs; /* NULL = the host's root (selected dirs, read-only) */
    char **argv;  /* argc strings; argv[0] is PID 1 */
    size_t argc;
    char **env; /* "NAME=value", envc strings */
    size_t envc;
    uint32_t uid, gid;       /* inside the sandbox */
    int64_t cpu_millicores;  /* 0 = no CPU quota */
    int64_t memory_bytes;    /* 0 = no memory limit */
    int64_t pids_max;        /* 0 = no pids limit */
    int64_t ephemeral_bytes; /* /workspace size cap (always > 0) */
    int64_t tmp_bytes;       /* /tmp, /dev/shm and each writable path (always > 0) */
    bool network;            /* share the host network (all or nothing) */
    bool read_only_root;     /* false only allowed with a rootfs dir */
    lss_sandbox_level_t level;
    char **writable; /* sandbox paths given a private tmpfs */
    size_t writable_count;
    lss_sandbox_bind_t *ro_binds; /* extra read-only binds */
    size_t ro_bind_count;
} lss_sandbox_spec_t;

/*  A spec with defaults (uid/gid 1000, no cpu/memory/pids limits, 1 GiB /workspace,
 *  64 MiB /tmp, network off, read-only root, standard). id is copied as is (checked by
 *  validate). Returns NULL on allocation failure. */
lss_sandbox_spec_t *lss_sandbox_spec_new (const char *id);
void lss_sandbox_spec_destroy (lss_sandbox_spec_t **self_p);

/*  Setters copy their arguments. Each returns 0, or -1 when a bound is exceeded or
 *  allocation failed (the spec is unchanged then). */
int lss_sandbox_spec_set_argv (lss_sandbox_spec_t *self, const char *const *argv, size_t argc);
int lss_sandbox_spec_set_rootfs (lss_sandbox_spec_t *self, const char *rootfs);
int lss_sandbox_spec_add_env (lss_sandbox_spec_t *self, const char *name, const char *value);
int lss_sandbox_spec_add_ro_bind (lss_sandbox_spec_t *self, const char *src, const char *dest);
int lss_sandbox_spec_add_writable (lss_sandbox_spec_t *self, const char *path);

/*  Checks every field. Returns 0, or -1 with a message naming the field in err. */
int lss_sandbox_spec_validate (const lss_sandbox_spec_t *self, char *err, size_t err_size);

/*  Parses and validates a JSON object (borrowed). Returns a new spec (caller owns), or
 *  NULL with "field: reason" in err. */
lss_sandbox_spec_t *lss_sandbox_spec_from_json (const json_t *obj, char *err, size_t err_size);
/*  The JSON form of a spec (caller owns), or NULL on allocation failure. */
json_t *lss_sandbox_spec_to_json (const lss_sandbox_spec_t *self);

/*  "standard" | "high"; parse returns 0 or -1. */
const char *lss_sandbox_level_name (lss_sandbox_level_t level);
int lss_sandbox_level_parse (const char *name, lss_sandbox_level_t *level);

/*  True if id is [a-z0-9-]{1,63} without a leading or trailing '-'. */
bool lss_sandbox_id_valid (const char *id);

#endif
