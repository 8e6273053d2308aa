/*  warmpool_alloc — claiming a Ready WarmPod by an optimistic status update.
 *
 *  Design note: candidates are read by label (runtime, security level, component) in the
 *  sandbox's namespace and filtered on status.phase Ready in memory (status is not a
 *  label); they are tried oldest first. Each try is one update_status carrying the
 *  resourceVersion of the listing: a 409 means someone else (another caller, or the
 *  scaler deleting or replacing it) changed the pod first, so it is skipped, never
 *  re-read: a pod changed since the listing is no longer known to be free.
 */
#include "warmpool_alloc.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "lss_log.h"
#include "lss_obj.h"
#include "lss_util.h"

#define S_RUNTIME_MAX  128
#define S_ENDPOINT_MAX 512

typedef struct {
    json_t *wp;
    int64_t created_ms;
} s_cand_t;

static int s_cand_cmp (const void *a, const void *b)
{
    const s_cand_t *x = a, *y = b;
    if (x->created_ms != y->created_ms)
        return x->created_ms < y->created_ms ? -1 : 1;
    return strcmp (lss_obj_str (x->wp, "metadata.name"), lss_obj_str (y->wp, "metadata.name"));
}

static int s_fail (char *code, size_t code_size, const char *c, int rc)
{
    if (code && code_size)
        snprintf (code, code_size, "%s", c);
    return rc;
}

/*  A usable candidate: Ready, not deleting, its pool and Pod named validly. */
static bool s_usable (const json_t *wp)
{
    const char *phase = lss_obj_str (wp, "status.phase");
    const char *pod = lss_obj_str (wp, "status.podName");
    const char *pool = lss_obj_label (wp, LSS_LABEL_POOL);
    const char *name = lss_obj_str (wp, "metadata.name");
    const char *rv = lss_obj_str (wp, "metadata.resourceVersion");
    const char *ep = lss_obj_str (wp, "status.endpoint");
    return phase && strcmp (phase, "Ready") == 0 && !lss_obj_deleting (wp) && name && rv &&
           pod && lss_store_check_name ("podName", pod, NULL, 0) == 0 && pool &&
           lss_store_check_name ("pool", pool, NULL, 0) == 0 &&
           (!ep || strlen (ep) <= S_ENDPOINT_MAX);
}

int warmpool_allocate (lss_store_t *store, const lss_warm_allocate_t *req, int64_t now_ms,
                       lss_warm_allocated_t *out, char *code, size_t code_size, char *err,
                       size_t err_size)
{
    return warmpool_allocate_stats (store, req, now_ms, out, NULL, code, code_size, err,
                                    err_size);
}

int warmpool_allocate_stats (lss_store_t *store, const lss_warm_allocate_t *req, int64_t now_ms,
                             lss_warm_allocated_t *out, warmpool_alloc_stats_t *stats,
                             char *code, size_t code_size, char *err, size_t err_size)
{
    warmpool_alloc_stats_t local = {0};
    if (!stats)
        stats = &local;
    memset (stats, 0, sizeof *stats);
    if (code && code_size)
        code[0] = '\0';
    if (!store || !req || !out)
        return s_fail (code, code_size, "invalid_request", -1);

    /* Validate: every field is hostile. */
    char runtime[64];
    if (!req->runtime || !*req->runtime || strlen (req->runtime) > S_RUNTIME_MAX ||
        lss_obj_sanitize_label (req->runtime, runtime, sizeof runtime) != 0) {
        lss_errf (err, err_size, "runtime: missing or invalid");
        return s_fail (code, code_size, "invalid_request", -1);
    }
    const char *level =
        req->security_level && *req->security_level ? req->security_level : "standard";
    if (strcmp (level, "standard") != 0 && strcmp (level, "high") != 0) {
        lss_errf (err, err_size, "security_level: must be standard or high");
        return s_fail (code, code_size, "invalid_request", -1);
    }
    if (!req->namespace || strlen (req->namespace) > LSS_STORE_NAMESPACE_MAX ||
        strchr (req->namespace, '.') ||
        lss_store_check_name ("namespace", req->namespace, err, err_size) != 0) {
        if (req->namespace && strchr (req->namespace, '.'))
            lss_errf (err, err_size, "namespace: must be a DNS-1123 label");
        else if (!req->namespace || strlen (req->namespace) > LSS_STORE_NAMESPACE_MAX)
            lss_errf (err, err_size, "namespace: missing or longer than %d bytes",
                      LSS_STORE_NAMESPACE_MAX);
        return s_fail (code, code_size, "invalid_request", -1);
    }
    if (!req->sandbox || lss_store_check_name ("sandbox", req->sandbox, err, err_size) != 0) {
        if (!req->sandbox)
            lss_errf (err, err_size, "sandbox: missing");
        return s_fail (code, code_size, "invalid_request", -1);
    }

    char selector[256];
    snprintf (selector, sizeof selector,
              LSS_LABEL_RUNTIME "=%s," LSS_LABEL_LEVEL "=%s," LSS_LABEL_COMPONENT "=warmpod",
              runtime, level);

    int result = -1;
    json_t *all = json_array ();
    s_cand_t *cand = NULL;
    char token[1024] = "";
    if (!all)
        return s_fail (code, code_size, "unavailable", -1);
    for (;;) {
        json_t *page = NULL;
        int rc = lss_store_list (store, "WarmPod", req->namespace, selector,
                                 LSS_STORE_LIST_MAX_LIMIT, token, &page, err, err_size);
        if (rc != LSS_STORE_OK) {
            s_fail (code, code_size, "unavailable", -1);
            goto cleanup;
        }
        size_t i;
        json_t *it;
        json_array_foreach (json_object_get (page, "items"), i, it)
        {
            if (json_array_size (all) < WARMPOOL_ALLOC_MAX_CANDIDATES && s_usable (it))
                json_array_append (all, it);
        }
        const char *next = lss_obj_str (page, "metadata.continue");
        bool more = next && *next && strlen (next) < sizeof token &&
                    json_array_size (all) < WARMPOOL_ALLOC_MAX_CANDIDATES;
        if (more)
            snprintf (token, sizeof token, "%s", next);
        json_decref (page);
        if (!more)
            break;
    }
    size_t n = json_array_size (all);
    stats->candidates = (int)n;
    cand = calloc (n + 1, sizeof *cand);
    if (!cand) {
        s_fail (code, code_size, "unavailable", -1);
        goto cleanup;
    }
    for (size_t i = 0; i < n; i++) {
        cand[i].wp = json_array_get (all, i);
        const char *t = lss_obj_str (cand[i].wp, "metadata.creationTimestamp");
        if (!t || lss_time_parse_rfc3339 (t, &cand[i].created_ms) != 0)
            cand[i].created_ms = INT64_MAX;
    }
    qsort (cand, n, sizeof *cand, s_cand_cmp);

    char ts[LSS_TIME_RFC3339_SIZE];
    lss_time_rfc3339 (now_ms, ts);
    for (size_t i = 0; i < n; i++) {
        json_t *claim = json_deep_copy (cand[i].wp);
        json_t *st = claim ? json_object_get (claim, "status") : NULL;
        if (!json_is_object (st)) {
            json_decref (claim);
            continue;
        }
        json_object_set_new (st, "phase", json_string ("Assigned"));
        json_object_set_new (st, "assignedTo", json_string (req->sandbox));
        json_object_set_new (st, "assignedAt", json_string (ts));
        lss_obj_set_condition (claim, "Ready", "False", "Assigned", NULL, now_ms);
        json_t *stored = NULL;
        int rc = lss_store_update_status (store, claim, &stored, err, err_size);
        json_decref (claim);
        if (rc == LSS_STORE_CONFLICT || rc == LSS_STORE_NOT_FOUND) {
            stats->conflicts++;
            json_decref (stored);
            continue; /* someone else got it first */
        }
        if (rc != LSS_STORE_OK) {
            json_decref (stored);
            s_fail (code, code_size, "unavailable", -1);
            goto cleanup;
        }
        const char *ep = lss_obj_str (cand[i].wp, "status.endpoint");
        out->name = strdup (lss_obj_str (cand[i].wp, "metadata.name"));
        out->namespace = strdup (req->namespace);
        out->pool = strdup (lss_obj_label (cand[i].wp, LSS_LABEL_POOL));
        out->pod_name = strdup (lss_obj_str (cand[i].wp, "status.podName"));
        out->endpoint = ep && *ep ? strdup (ep) : NULL;
        json_decref (stored);
        if (!out->name || !out->namespace || !out->pool || !out->pod_name ||
            (ep && *ep && !out->endpoint)) {
            /* claimed but cannot answer: the assignment grace lets the scaler free it */
            lss_proto_body_clear (LSS_MSG_warm_allocated, out);
            lss_errf (err, err_size, "out of memory");
            s_fail (code, code_size, "unavailable", -1);
            goto cleanup;
        }
        result = 0;
        goto cleanup;
    }
    lss_errf (err, err_size, "no Ready warm pod for runtime %s (%s) in %s", runtime, level,
              req->namespace);
    s_fail (code, code_size, "pool_empty", -1);

cleanup:
    free (cand);
    json_decref (all);
    return result;
}
