/*  obj — internals of `lss obj`, the kubectl-like client of the object store.
 *
 *  obj.c parses the global options and dispatches; obj_apply.c, obj_get.c (get, delete)
 *  and obj_watch.c (watch, wait) implement the verbs; obj_yaml.c converts YAML to JSON
 *  (Kubernetes' scalar typing) and JSON to YAML. Exit codes: 0 done, 1 the operation
 *  failed (not found, conflict, timeout, store unavailable), 2 bad usage or invalid
 *  input (the message names the option or field).
 */
#ifndef LSS_TOOLS_OBJ_H
#define LSS_TOOLS_OBJ_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "lss_config.h"
#include "lss_store.h"

#define OBJ_EXIT_OK    0
#define OBJ_EXIT_FAIL  1
#define OBJ_EXIT_USAGE 2

#define OBJ_INPUT_MAX_BYTES (16 * 1024 * 1024) /* one apply -f input, all documents */
#define OBJ_YAML_MAX_DEPTH  64                 /* nesting of mappings and sequences */
#define OBJ_YAML_MAX_NODES  1000000            /* values after alias expansion */
#define OBJ_YAML_MAX_DOCS   1000               /* documents in one input */
#define OBJ_DEFAULT_NS      "default"
#define OBJ_ERR_SIZE        512

/*  Options every verb shares. dsn is borrowed from argv or the config. */
typedef struct {
    const char *dsn;
    const lss_config_t *cfg;
} obj_ctx_t;

/*  A kind as typed (case-insensitive: Sandbox, sandboxes, sb, ...) → its canonical name
 *  ("Sandbox"), or NULL if unknown. Borrowed, static. */
const char *obj_kind_resolve (const char *text);
/*  "sandbox" for "Sandbox": the lower-case form used in `kind/name` output. Static. */
const char *obj_kind_lower (const char *kind);

/*  Opens the store on ctx->dsn; prints the error and returns NULL on failure. */
lss_store_t *obj_store_open (const obj_ctx_t *ctx);
/*  The exit code for a store result: INVALID → 2, any other failure → 1. */
int obj_exit_code (int store_rc);
/*  Namespace for kind: "" for cluster-scoped kinds, else ns if given, else "default".
 *  Returns NULL (after printing) if a cluster-scoped kind was given a namespace. */
const char *obj_namespace (const char *verb, const char *kind, const char *ns);
/*  Prints j as one compact JSON line (or indented when pretty) and flushes. */
void obj_print_json (const json_t *j, bool pretty);

/*  Parses YAML (or JSON, which is YAML) text of len bytes: every non-empty document
 *  becomes an item of *docs (a new array, caller owns). Plain scalars are typed as
 *  Kubernetes' YAML reader does (ints, floats, booleans, null), quoted ones stay
 *  strings, explicit tags (!!str, !!int, ...) win. Returns 0, or -2 with a message
 *  (line and column) in err for malformed input or input past the bounds above. */
int obj_yaml_parse (const char *text, size_t len, json_t **docs, char *err, size_t err_size);
/*  The YAML text of value (block style; strings quoted when they would read back as
 *  another type). Caller frees; NULL on failure. */
char *obj_yaml_dump (const json_t *value);

int obj_apply (int argc, char **argv, obj_ctx_t *ctx);
int obj_get (int argc, char **argv, obj_ctx_t *ctx);
int obj_delete (int argc, char **argv, obj_ctx_t *ctx);
int obj_watch (int argc, char **argv, obj_ctx_t *ctx);
int obj_wait (int argc, char **argv, obj_ctx_t *ctx);

#endif
