/*  api_h_sandbox — the /sandboxes routes: create, list, get, status, delete, executions.
 *
 *  Create (DESIGN.md §4.1): validate → quota → runtime (and profile) exist → a warm pod
 *  claimed from lss-warmpool when asked (a miss or a slow allocator means a cold start,
 *  never a failure) → the Sandbox object → the ownership row (the object is deleted
 *  again if the row cannot be written) → the events thread answers once the sandbox is
 *  Running or api.create_wait passed (202 with the current state).
 */
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "api_valid.h"
#include "api_view.h"
#include "api_worker.h"
#include "lss_log.h"
#include "lss_metrics.h"
#include "lss_obj.h"
#include "lss_util.h"

static lss_metric_t *s_m_creates;

static void s_metrics_init (void)
{
    s_m_creates = lss_metrics_counter ("lss_api_sandbox_creates_total",
                                       "Sandboxes created, by start (warm, cold) and whether a "
                                       "warm pod was asked for.",
                                       "start");
}

/*  The counter, registered once whichever worker asks first (workers run in parallel). */
static lss_metric_t *s_warm_metric (void)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once (&once, s_metrics_init);
    return s_m_creates;
}

const char *api_store_error_message (int code)
{
    switch (code) {
    case LSS_STORE_NOT_FOUND:
        return "not found";
    case LSS_STORE_CONFLICT:
        return "conflict: the object changed or exists";
    case LSS_STORE_INVALID:
        return "invalid object";
    default:
        return "the object store is unavailable";
    }
}

int api_store_status (int code)
{
    switch (code) {
    case LSS_STORE_OK:
        return 200;
    case LSS_STORE_NOT_FOUND:
        return 404;
    case LSS_STORE_CONFLICT:
        return 409;
    case LSS_STORE_INVALID:
        return 400;
    case LSS_STORE_UNAVAILABLE:
        return 503;
    default:
        return 500;
    }
}

int api_to_bridge (api_worker_t *w, api_msg_t *m)
{
    if (api_mailbox_post_always (w->ctx->bridge_inbox, m)) {
        api_msg_destroy (m);
        return -1;
    }
    return 0;
}

/*  Asks lss-warmpool for a Ready warm pod for sandbox id. Returns 1 with the WarmPod's
 *  name in warm_pod, 0 when none (empty pool, allocator down or slow: cold start). */
static int s_allocate (api_worker_t *w, const api_create_req_t *cr, const char *id,
                       char *warm_pod, size_t size)
{
    if (!w->warmpool) {
        char ep[1100];
        if (lss_fmt (ep, sizeof ep, ">%s", w->ctx->warmpool_endpoint))
            return 0;
        lss_bus_opts_t o = w->ctx->bus_opts;
        o.linger_ms = 0;
        w->warmpool = lss_bus_socket_new (ZMQ_DEALER, ep, &o);
        if (!w->warmpool)
            return 0;
    }
    lss_warm_allocate_t req = {.runtime = (char *)cr->runtime,
                               .security_level = (char *)cr->security_level,
                               .namespace = w->ctx->namespace_,
                               .sandbox = (char *)id};
    lss_envelope_t env;
    if (lss_bus_envelope_init (&env, LSS_MSG_warm_allocate, NULL, w->src, ++w->bus_seq, NULL) ||
        lss_bus_send (w->warmpool, NULL, 0, NULL, &env, LSS_MSG_warm_allocate, &req))
        return 0;
    char ref[LSS_PROTO_ID_MAX + 1];
    memcpy (ref, env.id, sizeof ref);
    int64_t deadline = lss_time_mono_ms () + API_WARM_ALLOC_TIMEOUT_MS;
    for (;;) {
        int64_t left = deadline - lss_time_mono_ms ();
        if (left <= 0) {
            lss_log_warn ("warm pod allocation timed out: cold start", "{s:s}", "sandbox", id);
            return 0;
        }
        zmq_pollitem_t item = {zsock_resolve (w->warmpool), 0, ZMQ_POLLIN, 0};
        if (!(zsock_events (w->warmpool) & ZMQ_POLLIN) && zmq_poll (&item, 1, (long)left) <= 0)
            continue;
        lss_envelope_t renv;
        lss_msg_kind_t kind;
        void *body = NULL;
        char err[256];
        if (lss_bus_recv (w->warmpool, NULL, NULL, 0, &renv, &kind, &body, err, sizeof err))
            continue;
        int result = -1;
        if (kind == LSS_MSG_warm_allocated &&
            strcmp (((lss_warm_allocated_t *)body)->ref, ref) == 0) {
            lss_warm_allocated_t *a = body;
            result = lss_fmt (warm_pod, size, "%s", a->name) ? 0 : 1;
        } else if (kind == LSS_MSG_error && ((lss_error_t *)body)->ref &&
                   strcmp (((lss_error_t *)body)->ref, ref) == 0) {
            lss_error_t *e = body;
            if (strcmp (e->code, "pool_empty") != 0)
                lss_log_warn ("warm pod allocation failed: cold start", "{s:s, s:s, s:s}",
                              "sandbox", id, "code", e->code, "error", e->message);
            result = 0;
        }
        lss_proto_body_free (kind, &body);
        if (result >= 0)
            return result;
    }
}

static json_t *s_sandbox_object (api_worker_t *w, const api_create_req_t *cr, const char *id,
                                 const api_principal_t *who, const char *warm_pod)
{
    char rt_label[64], user_label[64];
    if (lss_obj_sanitize_label (cr->runtime, rt_label, sizeof rt_label))
        snprintf (rt_label, sizeof rt_label, "unknown");
    if (lss_obj_sanitize_label (who->user_id, user_label, sizeof user_label))
        snprintf (user_label, sizeof user_label, "unknown");
    json_t *obj = json_pack (
        "{s:s, s:s, s:{s:s, s:s, s:{s:s, s:s, s:s}}, s:{s:s, s:s, s:I, s:b, s:s}}",
        "apiVersion", LSS_OBJ_GROUP_VERSION, "kind", "Sandbox", "metadata", "name", id,
        "namespace", w->ctx->namespace_, "labels", LSS_LABEL_PART_OF, "llmsafespace",
        LSS_LABEL_RUNTIME, rt_label, "llmsafespace.dev/user", user_label, "spec", "runtime",
        cr->runtime, "securityLevel", cr->security_level, "timeout", (json_int_t)cr->timeout_s,
        "useWarmPool", cr->use_warm_pool, "user", who->user_id);
    if (!obj)
        return NULL;
    json_t *spec = json_object_get (obj, "spec");
    if (cr->resources && json_object_size (cr->resources))
        json_object_set (spec, "resources", cr->resources);
    if (cr->network_access)
        json_object_set (spec, "networkAccess", cr->network_access);
    if (cr->labels)
        json_object_set (spec, "labels", cr->labels);
    if (cr->profile[0])
        json_object_set_new (spec, "profileRef", json_pack ("{s:s}", "name", cr->profile));
    if (warm_pod && *warm_pod)
        lss_obj_set_annotation (obj, LSS_ANN_WARM_POD, warm_pod);
    /* the reconciler's finalizer from the start: it then needs no write to add it */
    lss_obj_add_finalizer (obj, LSS_FINALIZER_SANDBOX);
    return obj;
}

api_resp_t *api_h_sandbox_create (api_worker_t *w, api_req_t *req, const api_principal_t *who,
                                  const json_t *body)
{
    api_ctx_t *c = w->ctx;
    api_create_req_t cr;
    json_t *fields = json_object ();
    if (api_valid_create (body, &cr, fields))
        return api_resp_invalid (&req->to, "invalid sandbox request", fields);
    json_decref (fields);
    api_resp_t *resp = NULL;
    json_t *obj = NULL, *stored = NULL;
    char err[LSS_STORE_ERR_SIZE];

    if (!api_principal_admin (who)) {
        int64_t active = 0;
        if (api_db_sandbox_count_active (w->db, who->user_id, &active) != API_DB_OK) {
            resp = api_resp_error (&req->to, 503, NULL, "database unavailable", NULL);
            goto done;
        }
        if (active >= c->max_sandboxes_per_user) {
            resp = api_resp_error (
                &req->to, 403, "forbidden", "sandbox quota reached: terminate one first",
                json_pack ("{s:I, s:I}", "limit", (json_int_t)c->max_sandboxes_per_user,
                           "active", (json_int_t)active));
            goto done;
        }
    }
    char rte[64];
    lss_obj_sanitize_label (cr.runtime, rte, sizeof rte);
    /* known from the watcher's events or an earlier read, else read (and remembered) */
    bool rt_deleted = false;
    json_t *runtime = api_cache_get_runtime (c->cache, rte, &rt_deleted);
    int rc = runtime ? LSS_STORE_OK : LSS_STORE_NOT_FOUND;
    if (!runtime && !rt_deleted) {
        rc = lss_store_get (w->store, "RuntimeEnvironment", "", rte, &runtime, err, sizeof err);
        if (rc == LSS_STORE_OK)
            api_cache_put_runtime (c->cache, rte, runtime);
    }
    json_decref (runtime);
    if (rc == LSS_STORE_NOT_FOUND) {
        resp = api_resp_invalid (
            &req->to, "unknown runtime",
            json_pack ("{s:s}", "runtime", "no such runtime: GET /api/v1/runtimes lists them"));
        goto done;
    }
    if (rc != LSS_STORE_OK) {
        resp = api_resp_error (&req->to, 503, NULL, "object store unavailable", NULL);
        goto done;
    }
    if (cr.profile[0]) {
        json_t *profile = NULL;
        rc = lss_store_get (w->store, "SandboxProfile", c->namespace_, cr.profile, &profile,
                            err, sizeof err);
        json_decref (profile);
        if (rc == LSS_STORE_NOT_FOUND) {
            resp = api_resp_invalid (&req->to, "unknown profile",
                                     json_pack ("{s:s}", "profile", "no such SandboxProfile"));
            goto done;
        }
        if (rc != LSS_STORE_OK) {
            resp = api_resp_error (&req->to, 503, NULL, "object store unavailable", NULL);
            goto done;
        }
    }
    char id[API_SB_ID_SIZE];
    if (lss_id_new ("sb-", 16, id, sizeof id)) {
        resp = api_resp_internal (&req->to, "no randomness for an id");
        goto done;
    }
    char warm_pod[API_OBJNAME_SIZE] = "";
    bool warm = cr.use_warm_pool && strcmp (cr.security_level, "custom") != 0 &&
                s_allocate (w, &cr, id, warm_pod, sizeof warm_pod) == 1;
    lss_metric_inc (s_warm_metric (), 1,
                    warm               ? "warm"
                    : cr.use_warm_pool ? "cold_miss"
                                       : "cold");
    obj = s_sandbox_object (w, &cr, id, who, warm ? warm_pod : NULL);
    if (!obj) {
        resp = api_resp_internal (&req->to, "sandbox object not built");
        goto done;
    }
    api_sandbox_row_t row = {.warm = warm, .created_ms = lss_time_now_ms ()};
    snprintf (row.id, sizeof row.id, "%s", id);
    snprintf (row.user_id, sizeof row.user_id, "%s", who->user_id);
    snprintf (row.ns, sizeof row.ns, "%s", c->namespace_);
    snprintf (row.runtime, sizeof row.runtime, "%s", cr.runtime);
    snprintf (row.security_level, sizeof row.security_level, "%s", cr.security_level);
    snprintf (row.warm_pod, sizeof row.warm_pod, "%s", warm ? warm_pod : "");
    snprintf (row.status, sizeof row.status, "pending");
    char dberr[256];
    /* the ownership row is written while the object is (two connections, two servers
     * possibly): each undoes the other when only one of them succeeds. The quota is
     * checked again atomically with the row (the early check lets a burst of concurrent
     * creates through; this one does not). */
    int64_t cap = api_principal_admin (who) ? 0 : c->max_sandboxes_per_user;
    api_db_insert_op_t op;
    int irc = api_db_sandbox_insert_start (w->db, &row, cap, &op, dberr, sizeof dberr);
    rc = lss_store_create (w->store, obj, &stored, err, sizeof err);
    if (irc == API_DB_OK)
        irc = api_db_sandbox_insert_finish (w->db, &op, dberr, sizeof dberr);
    if (rc != LSS_STORE_OK) {
        lss_log_error ("sandbox object not created", "{s:s, s:s}", "sandbox", id, "error", err);
        if (irc == API_DB_OK && api_db_sandbox_delete (w->db, id) != API_DB_OK)
            lss_log_error ("ownership row left without a sandbox: delete failed", "{s:s}",
                           "sandbox", id);
        resp = rc == LSS_STORE_UNAVAILABLE
                   ? api_resp_error (&req->to, 503, NULL, "object store unavailable", NULL)
                   : api_resp_internal (&req->to, err);
        goto done;
    }
    if (irc != API_DB_OK) {
        if (irc != API_DB_QUOTA)
            lss_log_error ("ownership row not written: deleting the sandbox again",
                           "{s:s, s:s}", "sandbox", id, "error", dberr);
        if (lss_store_delete (w->store, "Sandbox", c->namespace_, id, NULL, err, sizeof err) !=
            LSS_STORE_OK)
            lss_log_error ("sandbox left without owner row: delete failed", "{s:s, s:s}",
                           "sandbox", id, "error", err);
        resp =
            irc == API_DB_QUOTA
                ? api_resp_error (
                      &req->to, 403, "forbidden", "sandbox quota reached: terminate one first",
                      json_pack ("{s:I}", "limit", (json_int_t)c->max_sandboxes_per_user))
                : api_resp_error (&req->to, 503, NULL, "database unavailable", NULL);
        goto done;
    }
    api_cache_put_owner (c->cache, &row);
    api_cache_put_sandbox (c->cache, id, stored);
    lss_log_info ("sandbox created", "{s:s, s:s, s:s, s:b}", "sandbox", id, "user",
                  who->user_id, "runtime", cr.runtime, "warm", warm);
    api_publish (w, "SandboxCreated", id, who->user_id, req->to.request_id,
                 json_pack ("{s:s, s:b}", "runtime", cr.runtime, "warmPool", warm));
    api_wait_msg_t *wait = c->create_wait_ms > 0 ? calloc (1, sizeof *wait) : NULL;
    if (wait) {
        wait->msg.type = API_MSG_WAIT_RUNNING;
        wait->to = req->to;
        snprintf (wait->name, sizeof wait->name, "%s", id);
        wait->row = row;
        wait->deadline_mono_ms = lss_time_mono_ms () + c->create_wait_ms;
        if (api_mailbox_post (c->events_inbox, &wait->msg) == 0)
            goto done; /* the events thread answers */
        free (wait);
    }
    resp = api_resp_with_json (&req->to, 202, api_view_sandbox (stored, &row));
done:
    json_decref (obj);
    json_decref (stored);
    api_create_req_clear (&cr);
    return resp;
}

api_resp_t *api_h_sandbox_list (api_worker_t *w, api_req_t *req, const api_principal_t *who,
                                const json_t *body)
{
    (void)body;
    int limit, offset;
    json_t *fields = json_object ();
    if (api_valid_page (api_req_query (req, "limit"), api_req_query (req, "offset"), &limit,
                        &offset, fields))
        return api_resp_invalid (&req->to, "invalid pagination", fields);
    json_decref (fields);
    api_sandbox_row_t rows[API_DB_LIST_MAX];
    int n = 0;
    int64_t total = 0;
    const char *user =
        api_principal_admin (who) && api_req_query (req, "all") ? NULL : who->user_id;
    if (api_db_sandbox_list (w->db, user, limit, offset, rows, &n, &total) != API_DB_OK)
        return api_resp_error (&req->to, 503, NULL, "database unavailable", NULL);
    json_t *items = json_array ();
    for (int i = 0; i < n; i++) {
        json_t *obj = NULL;
        int rc = api_sandbox_object (w, rows[i].id, &obj);
        if (rc == 503) {
            json_decref (items);
            return api_resp_error (&req->to, 503, NULL, "object store unavailable", NULL);
        }
        json_array_append_new (items, api_view_sandbox (obj, &rows[i]));
        json_decref (obj);
    }
    return api_resp_with_json (&req->to, 200,
                               api_view_page ("sandboxes", items, limit, offset, total));
}

api_resp_t *api_h_sandbox_get (api_worker_t *w, api_req_t *req, const api_principal_t *who,
                               const json_t *body)
{
    (void)body;
    api_sandbox_row_t row;
    json_t *obj = NULL;
    api_resp_t *err = api_sandbox_load (w, req, who, "read", &row, &obj);
    if (err)
        return err;
    api_resp_t *r = api_resp_with_json (&req->to, 200, api_view_sandbox (obj, &row));
    json_decref (obj);
    return r;
}

api_resp_t *api_h_sandbox_status (api_worker_t *w, api_req_t *req, const api_principal_t *who,
                                  const json_t *body)
{
    (void)body;
    api_sandbox_row_t row;
    json_t *obj = NULL;
    api_resp_t *err = api_sandbox_load (w, req, who, "read", &row, &obj);
    if (err)
        return err;
    json_t *view = api_view_sandbox_status (obj, &row);
    const char *phase = lss_obj_str (obj, "status.phase");
    bool running = phase && strcmp (phase, "Running") == 0 && !lss_obj_deleting (obj);
    json_decref (obj);
    if (!running || !view)
        return api_resp_with_json (&req->to, 200, view);
    /* usage comes from the agent: the bridge asks and answers */
    api_file_msg_t *m = api_file_msg_new (&req->to, API_FILE_HEALTH);
    if (!m)
        return api_resp_with_json (&req->to, 200, view);
    snprintf (m->sandbox_ref, sizeof m->sandbox_ref, "%s/%s", row.ns, row.id);
    m->body = view;
    return api_to_bridge (w, &m->msg) ? api_resp_error (&req->to, 503, NULL, "stopping", NULL)
                                      : NULL;
}

api_resp_t *api_h_sandbox_delete (api_worker_t *w, api_req_t *req, const api_principal_t *who,
                                  const json_t *body)
{
    (void)body;
    api_sandbox_row_t row;
    api_resp_t *err = api_sandbox_load (w, req, who, "delete", &row, NULL);
    if (err)
        return err;
    char serr[LSS_STORE_ERR_SIZE];
    int rc = lss_store_delete (w->store, "Sandbox", row.ns, row.id, NULL, serr, sizeof serr);
    if (rc == LSS_STORE_NOT_FOUND) {
        api_cache_delete_sandbox (w->ctx->cache, row.id, NULL);
        return api_resp_error (&req->to, 404, NULL, "sandbox not found", NULL);
    }
    if (rc != LSS_STORE_OK)
        return api_resp_error (&req->to, 503, NULL, "object store unavailable", NULL);
    {
        /* the next read goes to the store: it shows Terminating, then 404 */
        json_t *obj = NULL;
        if (lss_store_get (w->store, "Sandbox", row.ns, row.id, &obj, serr, sizeof serr) ==
            LSS_STORE_OK)
            api_cache_put_sandbox (w->ctx->cache, row.id, obj);
        else
            api_cache_delete_sandbox (w->ctx->cache, row.id, NULL);
        json_decref (obj);
    }
    api_db_sandbox_update (w->db, row.id, "terminating", 0, lss_time_now_ms ());
    lss_log_info ("sandbox deleted", "{s:s, s:s}", "sandbox", row.id, "user", who->user_id);
    api_publish (w, "SandboxDeleted", row.id, who->user_id, req->to.request_id, NULL);
    char msg[128];
    snprintf (msg, sizeof msg, "sandbox %s is terminating", row.id);
    return api_resp_with_json (&req->to, 200,
                               json_pack ("{s:s, s:s}", "message", msg, "id", row.id));
}

api_resp_t *api_h_executions (api_worker_t *w, api_req_t *req, const api_principal_t *who,
                              const json_t *body)
{
    (void)body;
    api_sandbox_row_t row;
    api_resp_t *err = api_sandbox_load (w, req, who, "read", &row, NULL);
    if (err)
        return err;
    int limit, offset;
    json_t *fields = json_object ();
    if (api_valid_page (api_req_query (req, "limit"), api_req_query (req, "offset"), &limit,
                        &offset, fields))
        return api_resp_invalid (&req->to, "invalid pagination", fields);
    json_decref (fields);
    json_t *items = NULL;
    int64_t total = 0;
    if (api_db_exec_list (w->db, row.id, limit, offset, &items, &total) != API_DB_OK)
        return api_resp_error (&req->to, 503, NULL, "database unavailable", NULL);
    return api_resp_with_json (&req->to, 200,
                               api_view_page ("executions", items, limit, offset, total));
}
