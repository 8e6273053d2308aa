/*  executor_resolve — the Sandbox → agent endpoint resolver actor. See executor_resolve.h.
 */
#include "executor_resolve.h"

#include <string.h>

#include "lss_curve.h"
#include "lss_log.h"
#include "lss_obj.h"
#include "lss_store.h"

bool exec_endpoint_valid (const char *ep)
{
    if (!ep)
        return false;
    size_t len = strlen (ep);
    if (len > EXEC_ENDPOINT_MAX)
        return false;
    for (size_t i = 0; i < len; i++)
        if (ep[i] <= ' ' || ep[i] >= 0x7f || ep[i] == ',')
            return false;
    if (strncmp (ep, "ipc://", 6) == 0)
        return ep[6] == '/' && len - 6 < 108;
    if (strncmp (ep, "tcp://", 6) == 0) {
        const char *colon = strrchr (ep + 6, ':');
        if (!colon || colon == ep + 6 || !colon[1] || strlen (colon + 1) > 5)
            return false;
        for (const char *p = colon + 1; *p; p++)
            if (*p < '0' || *p > '9')
                return false;
        long port = strtol (colon + 1, NULL, 10);
        return port > 0 && port < 65536;
    }
    return false;
}

typedef struct {
    const lss_config_t *cfg; /* borrowed; NULL: PostgreSQL at dsn */
    char *dsn;
} s_args_t;

static void s_resolve (lss_store_t **store, const s_args_t *a, const char *ref, char *code,
                       size_t code_size, char *text, size_t text_size)
{
    char ns[64], name[256], err[LSS_STORE_ERR_SIZE] = "";
    /* "warmpod:<ns>/<name>": a warm pod being preloaded (lss-warmpool's preloadScripts);
     * only while it is Pending, i.e. before it can be offered to anyone */
    bool warm = strncmp (ref, EXEC_WARMPOD_REF_PREFIX, strlen (EXEC_WARMPOD_REF_PREFIX)) == 0;
    const char *kind = warm ? "WarmPod" : "Sandbox", *want = warm ? "Pending" : "Running";
    if (warm)
        ref += strlen (EXEC_WARMPOD_REF_PREFIX);
    if (lss_obj_split_ref (ref, ns, sizeof ns, name, sizeof name)) {
        snprintf (code, code_size, "sandbox_not_found");
        snprintf (text, text_size, "'%s' is not <namespace>/<name>", ref);
        return;
    }
    if (!*store)
        *store = lss_store_open (a->cfg, a->dsn, err, sizeof err);
    if (!*store) {
        snprintf (code, code_size, "store_unavailable");
        snprintf (text, text_size, "store: %s", err);
        return;
    }
    json_t *obj = NULL;
    int rc = lss_store_get (*store, kind, ns, name, &obj, err, sizeof err);
    if (rc == LSS_STORE_NOT_FOUND) {
        snprintf (code, code_size, "sandbox_not_found");
        snprintf (text, text_size, "no sandbox %s", ref);
    } else if (rc != LSS_STORE_OK) {
        if (rc == LSS_STORE_UNAVAILABLE)
            lss_store_destroy (store); /* reconnect on the next request */
        snprintf (code, code_size, "store_unavailable");
        snprintf (text, text_size, "store: %s", err);
    } else {
        const char *phase = lss_obj_str (obj, "status.phase");
        const char *ep = lss_obj_str (obj, "status.endpoint");
        const char *key = lss_obj_str (obj, "status.agentPublicKey");
        if (!phase || strcmp (phase, want) != 0 || !ep || !*ep) {
            snprintf (code, code_size, "sandbox_not_running");
            snprintf (text, text_size, "sandbox %s is %s", ref,
                      phase ? phase : "not running yet");
        } else if (!exec_endpoint_valid (ep)) {
            snprintf (code, code_size, "invalid_endpoint");
            snprintf (text, text_size,
                      "sandbox %s names an agent endpoint the executor refuses", ref);
        } else if (key && *key && !lss_curve_key_valid (key)) {
            snprintf (code, code_size, "invalid_endpoint");
            snprintf (text, text_size, "sandbox %s has a malformed status.agentPublicKey", ref);
        } else {
            /* "ENDPOINT" or "ENDPOINT KEY" (CURVE); endpoints never contain spaces */
            snprintf (code, code_size, "ok");
            snprintf (text, text_size, "%s%s%s", ep, key && *key ? " " : "", key ? key : "");
        }
    }
    json_decref (obj);
}

static void s_actor (zsock_t *pipe, void *args)
{
    s_args_t *a = args;
    lss_store_t *store = NULL;
    zsock_signal (pipe, 0);
    for (;;) {
        zmsg_t *msg = zmsg_recv (pipe);
        if (!msg)
            break;
        char *ref = zmsg_popstr (msg);
        zmsg_destroy (&msg);
        if (!ref || strcmp (ref, "$TERM") == 0) {
            free (ref);
            break;
        }
        char code[64], text[600];
        s_resolve (&store, a, ref, code, sizeof code, text, sizeof text);
        zstr_sendm (pipe, ref);
        zstr_sendm (pipe, code);
        zstr_send (pipe, text);
        free (ref);
    }
    lss_store_destroy (&store);
    free (a->dsn);
    free (a);
}

zactor_t *exec_resolver_new (const lss_config_t *cfg, const char *dsn)
{
    s_args_t *a = calloc (1, sizeof *a);
    if (!a || !(a->dsn = strdup (dsn ? dsn : ""))) {
        free (a);
        return NULL;
    }
    a->cfg = cfg;
    zactor_t *actor = zactor_new (s_actor, a);
    if (!actor) {
        free (a->dsn);
        free (a);
    }
    return actor;
}
