/*  lss obj — a kubectl-like client of the object store (docs/store.md).
 *
 *    lss obj [--dsn DSN] apply -f FILE|- [--status] [-n NS]
 *    lss obj [--dsn DSN] get KIND [NAME] [-n NS | -A] [-l SELECTOR] [-o json|yaml|name]
 *    lss obj [--dsn DSN] delete KIND NAME [-n NS]
 *    lss obj [--dsn DSN] watch KIND [-n NS | -A] [--from RV] [--count N] [--timeout S]
 *    lss obj [--dsn DSN] wait KIND NAME [-n NS] --for jsonpath=.a.b=VALUE|delete
 *                                       [--timeout S]
 *  The store is store.dsn of the configuration (LSS_STORE_DSN, --config FILE), as the
 *  services read it, unless --dsn (accepted anywhere among the arguments) says otherwise.
 *  This file parses that global option, resolves kinds and dispatches to the verbs.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "lss_cli.h"
#include "obj.h"

static const struct {
    const char *kind, *lower, *plural, *shortname;
} s_kinds[] = {
    {"Sandbox", "sandbox", "sandboxes", "sb"},
    {"WarmPool", "warmpool", "warmpools", "wp"},
    {"WarmPod", "warmpod", "warmpods", "wpod"},
    {"SandboxProfile", "sandboxprofile", "sandboxprofiles", "sbp"},
    {"RuntimeEnvironment", "runtimeenvironment", "runtimeenvironments", "rte"},
    {"Pod", "pod", "pods", "po"},
};
#define S_KIND_COUNT (sizeof s_kinds / sizeof s_kinds[0])

const char *obj_kind_resolve (const char *text)
{
    if (!text)
        return NULL;
    for (size_t i = 0; i < S_KIND_COUNT; i++)
        if (strcasecmp (text, s_kinds[i].lower) == 0 ||
            strcasecmp (text, s_kinds[i].plural) == 0 ||
            strcasecmp (text, s_kinds[i].shortname) == 0)
            return s_kinds[i].kind;
    return NULL;
}

const char *obj_kind_lower (const char *kind)
{
    for (size_t i = 0; i < S_KIND_COUNT; i++)
        if (kind && strcmp (kind, s_kinds[i].kind) == 0)
            return s_kinds[i].lower;
    return "object";
}

lss_store_t *obj_store_open (const obj_ctx_t *ctx)
{
    char err[LSS_STORE_ERR_SIZE] = "";
    lss_store_t *store = lss_store_pg_new (ctx->dsn, err, sizeof err);
    if (!store)
        fprintf (stderr, "lss obj: cannot open the object store: %s\n", err);
    return store;
}

int obj_exit_code (int store_rc)
{
    if (store_rc == LSS_STORE_OK)
        return OBJ_EXIT_OK;
    return store_rc == LSS_STORE_INVALID ? OBJ_EXIT_USAGE : OBJ_EXIT_FAIL;
}

const char *obj_namespace (const char *verb, const char *kind, const char *ns)
{
    if (lss_store_kind_scope (kind) == 1) {
        if (ns && *ns) {
            fprintf (stderr, "lss obj %s: %s is cluster-scoped: -n does not apply\n", verb,
                     kind);
            return NULL;
        }
        return "";
    }
    return ns && *ns ? ns : OBJ_DEFAULT_NS;
}

void obj_print_json (const json_t *j, bool pretty)
{
    char *text = json_dumps (j, pretty ? JSON_INDENT (2) : JSON_COMPACT);
    if (text)
        puts (text);
    free (text);
    fflush (stdout);
}

static void s_usage (FILE *out)
{
    fprintf (
        out,
        "usage: lss obj [--dsn DSN] VERB ARGS\n"
        "  apply -f FILE|- [--status] [-n NS]   create or update (YAML or JSON, documents\n"
        "                                       separated by ---); --status writes only\n"
        "                                       each document's status\n"
        "  get KIND [NAME] [-n NS|-A] [-l SELECTOR] [-o json|yaml|name]\n"
        "  delete KIND NAME [-n NS]\n"
        "  watch KIND [-n NS|-A] [--from RV] [--count N] [--timeout S]\n"
        "                                       one JSON line {type, object} per event\n"
        "  wait KIND NAME [-n NS] --for jsonpath=.a.b=VALUE|delete [--timeout S]\n"
        "kinds: sandbox (sb), warmpool (wp), warmpod (wpod), sandboxprofile (sbp),\n"
        "       runtimeenvironment (rte, cluster-scoped), pod (po); plurals too.\n"
        "The store is --dsn, else store.dsn of the config (LSS_STORE_DSN).\n"
        "Exit: 0 done, 1 failed (not found, conflict, timeout, store down), 2 invalid.\n");
}

int lss_cli_obj (int argc, char **argv, const lss_config_t *cfg)
{
    obj_ctx_t ctx = {.dsn = NULL, .cfg = cfg};
    /* take --dsn out wherever it is, so the verbs never see it */
    char **args = calloc ((size_t)argc + 1, sizeof *args);
    if (!args)
        return OBJ_EXIT_FAIL;
    int n = 0;
    for (int i = 0; i < argc; i++) {
        if (strcmp (argv[i], "--dsn") == 0) {
            if (i + 1 >= argc) {
                fprintf (stderr, "lss obj: --dsn needs a connection string\n");
                free (args);
                return OBJ_EXIT_USAGE;
            }
            ctx.dsn = argv[++i];
        } else if (strncmp (argv[i], "--dsn=", 6) == 0)
            ctx.dsn = argv[i] + 6;
        else
            args[n++] = argv[i];
    }
    if (!ctx.dsn)
        ctx.dsn = lss_config_str (cfg, "store.dsn");
    static const struct {
        const char *name;
        int (*run) (int, char **, obj_ctx_t *);
    } verbs[] = {{"apply", obj_apply},
                 {"get", obj_get},
                 {"delete", obj_delete},
                 {"watch", obj_watch},
                 {"wait", obj_wait}};
    int rc = -1;
    if (n == 0) {
        s_usage (stderr);
        rc = OBJ_EXIT_USAGE;
    } else if (strcmp (args[0], "--help") == 0 || strcmp (args[0], "-h") == 0) {
        s_usage (stdout);
        rc = OBJ_EXIT_OK;
    } else {
        for (size_t v = 0; v < sizeof verbs / sizeof verbs[0]; v++)
            if (strcmp (args[0], verbs[v].name) == 0)
                rc = verbs[v].run (n - 1, args + 1, &ctx);
        if (rc == -1) {
            fprintf (stderr, "lss obj: unknown verb '%s'\n", args[0]);
            s_usage (stderr);
            rc = OBJ_EXIT_USAGE;
        }
    }
    free (args);
    return rc;
}
