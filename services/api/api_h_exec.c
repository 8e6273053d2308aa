/*  api_h_exec — routes that run something in a sandbox: execute, packages, files, and the
 *  WebSocket authorisation and admission jobs.
 *
 *  The worker does what needs PostgreSQL, Redis or the store (who, may they, is the
 *  sandbox Running, what does the request mean) and hands the work to the exec bridge,
 *  which talks to the executor and answers the client (REST) or streams (WebSocket).
 */
#include <stdio.h>
#include <string.h>

#include "api_cache.h"
#include "api_valid.h"
#include "api_view.h"
#include "api_worker.h"
#include "api_wsproto.h"
#include "lss_log.h"
#include "lss_obj.h"
#include "lss_util.h"

bool api_sandbox_running (const json_t *obj)
{
    const char *phase = lss_obj_str (obj, "status.phase");
    return phase && strcmp (phase, "Running") == 0 && !lss_obj_deleting (obj);
}

static api_resp_t *s_not_running (const api_req_t *req, const json_t *obj)
{
    const char *phase =
        lss_obj_deleting (obj) ? "Terminating" : lss_obj_str (obj, "status.phase");
    char msg[160];
    snprintf (msg, sizeof msg, "sandbox is %s, not running",
              api_view_status_of_phase (phase ? phase : "Pending"));
    return api_resp_error (
        &req->to, 409, "conflict", msg,
        json_pack ("{s:s}", "status", api_view_status_of_phase (phase ? phase : "Pending")));
}

api_exec_limits_t api_exec_limits (const api_ctx_t *c)
{
    return (api_exec_limits_t){.default_timeout_ms = c->exec_default_timeout_ms,
                               .max_timeout_ms = c->exec_max_timeout_ms,
                               .max_output = (int64_t)c->exec_max_output};
}

api_resp_t *api_exec_submit (api_ctx_t *c, const api_reply_to_t *to,
                             const api_sandbox_row_t *row, api_exec_spec_t *spec)
{
    api_exec_start_msg_t *m = api_exec_start_msg_new ();
    if (!m) {
        api_exec_spec_clear (spec);
        return api_resp_internal (to, "out of memory");
    }
    m->xid = api_ctx_next_id (c);
    m->to = *to;
    if (lss_id_new ("exe-", 16, m->execution_id, sizeof m->execution_id)) {
        api_exec_spec_clear (spec);
        api_msg_destroy (&m->msg);
        return api_resp_internal (to, "no randomness for an id");
    }
    snprintf (m->sandbox_ref, sizeof m->sandbox_ref, "%s/%s", row->ns, row->id);
    snprintf (m->sandbox_id, sizeof m->sandbox_id, "%s", row->id);
    snprintf (m->user_id, sizeof m->user_id, "%s", row->user_id);
    m->spec = *spec;
    memset (spec, 0, sizeof *spec);
    if (api_mailbox_post_always (c->bridge_inbox, &m->msg)) {
        api_msg_destroy (&m->msg);
        return api_resp_error (to, 503, NULL, "the server is stopping", NULL);
    }
    return NULL;
}

api_resp_t *api_h_execute (api_worker_t *w, api_req_t *req, const api_principal_t *who,
                           const json_t *body)
{
    api_sandbox_row_t row;
    json_t *obj = NULL;
    api_resp_t *err = api_sandbox_load (w, req, who, "execute", &row, &obj);
    if (err)
        return err;
    if (!api_sandbox_running (obj)) {
        err = s_not_running (req, obj);
        json_decref (obj);
        return err;
    }
    json_decref (obj);
    api_exec_limits_t lim = api_exec_limits (w->ctx);
    api_exec_spec_t spec;
    json_t *fields = json_object ();
    if (api_valid_execute (body, false, row.runtime, &lim, &spec, fields))
        return api_resp_invalid (&req->to, "invalid execute request", fields);
    json_decref (fields);
    return api_exec_submit (w->ctx, &req->to, &row, &spec);
}

static bool s_has_egress (const json_t *obj)
{
    json_t *egress = lss_obj_at (obj, "spec.networkAccess.egress");
    return json_is_array (egress) && json_array_size (egress) > 0;
}

api_resp_t *api_h_packages (api_worker_t *w, api_req_t *req, const api_principal_t *who,
                            const json_t *body)
{
    api_sandbox_row_t row;
    json_t *obj = NULL;
    api_resp_t *err = api_sandbox_load (w, req, who, "execute", &row, &obj);
    if (err)
        return err;
    if (!api_sandbox_running (obj)) {
        err = s_not_running (req, obj);
        json_decref (obj);
        return err;
    }
    bool egress = s_has_egress (obj);
    json_decref (obj);
    char rte[64], serr[LSS_STORE_ERR_SIZE];
    const char *manager = NULL;
    json_t *runtime = NULL;
    if (lss_obj_sanitize_label (row.runtime, rte, sizeof rte) == 0 &&
        ((runtime = api_cache_get_runtime (w->ctx->cache, rte, NULL)) ||
         lss_store_get (w->store, "RuntimeEnvironment", "", rte, &runtime, serr, sizeof serr) ==
             LSS_STORE_OK))
        manager = lss_obj_str (runtime, "spec.packageManager");
    api_exec_limits_t lim = api_exec_limits (w->ctx);
    api_exec_spec_t spec;
    json_t *fields = json_object ();
    int rc = api_valid_packages (body, manager, &lim, &spec, fields);
    json_decref (runtime);
    if (rc)
        return api_resp_invalid (&req->to, "invalid package request", fields);
    json_decref (fields);
    if (!egress) {
        api_exec_spec_clear (&spec);
        return api_resp_error (
            &req->to, 409, "conflict",
            "network access is off for this sandbox (no networkAccess.egress), "
            "so packages cannot be downloaded; create the sandbox with "
            "networkAccess.egress for the package index",
            json_pack ("{s:s}", "networkAccess", "none"));
    }
    return api_exec_submit (w->ctx, &req->to, &row, &spec);
}

api_resp_t *api_h_files (api_worker_t *w, api_req_t *req, const api_principal_t *who,
                         const json_t *body)
{
    (void)body;
    int route = req->to.route;
    const char *action = route == API_R_FILE_PUT      ? "write"
                         : route == API_R_FILE_DELETE ? "delete"
                                                      : "read";
    api_sandbox_row_t row;
    json_t *obj = NULL;
    api_resp_t *err = api_sandbox_load (w, req, who, action, &row, &obj);
    if (err)
        return err;
    if (!api_sandbox_running (obj)) {
        err = s_not_running (req, obj);
        json_decref (obj);
        return err;
    }
    json_decref (obj);
    const char *given =
        route == API_R_FILES_LIST ? api_req_query (req, "path") : req->match.path;
    if (route == API_R_FILES_LIST && !given)
        given = "/workspace";
    char path[API_FILE_PATH_MAX];
    if (!given || !*given)
        return api_resp_invalid (&req->to, "invalid path",
                                 json_pack ("{s:s}", "path", "is required"));
    if (api_valid_file_path (given, path, sizeof path))
        return api_resp_error (
            &req->to, 403, "forbidden",
            "path is outside the sandbox's writable roots (/workspace, /tmp)",
            json_pack ("{s:s}", "path", given));
    api_file_op_t op = route == API_R_FILES_LIST ? API_FILE_LIST
                       : route == API_R_FILE_GET ? API_FILE_GET
                       : route == API_R_FILE_PUT ? API_FILE_PUT
                                                 : API_FILE_DELETE;
    api_file_msg_t *m = api_file_msg_new (&req->to, op);
    if (!m)
        return api_resp_internal (&req->to, "out of memory");
    snprintf (m->sandbox_ref, sizeof m->sandbox_ref, "%s/%s", row.ns, row.id);
    snprintf (m->path, sizeof m->path, "%s", path);
    const char *rec = api_req_query (req, "recursive");
    m->recursive = rec && (strcmp (rec, "true") == 0 || strcmp (rec, "1") == 0);
    m->max_file = w->ctx->max_file;
    if (op == API_FILE_PUT) {
        m->data = req->body; /* moved */
        lss_buf_init (&req->body, 0);
    }
    if (api_to_bridge (w, &m->msg))
        return api_resp_error (&req->to, 503, NULL, "the server is stopping", NULL);
    return NULL;
}

static char *s_frame_text (json_t *frame)
{
    char *text = frame ? json_dumps (frame, JSON_COMPACT) : NULL;
    json_decref (frame);
    return text;
}

api_ws_auth_done_t *api_h_ws_auth (api_worker_t *w, const api_ws_auth_t *m)
{
    api_ws_auth_done_t *done = api_ws_auth_done_new (m->conn_id);
    if (!done)
        return NULL;
    char msg[256];
    int st = api_authn (w, m->token, &done->who, msg, sizeof msg);
    if (st) {
        done->frame = s_frame_text (
            api_wsproto_error (st == 401 ? "unauthorized" : "stream_error", msg, NULL));
        return done;
    }
    api_sandbox_row_t row;
    json_t *obj = NULL;
    st = api_sandbox_access (w, &done->who, m->sandbox_id, "connect", &row);
    if (st == 0)
        st = api_sandbox_object (w, m->sandbox_id, &obj);
    json_decref (obj);
    if (st) {
        done->frame = s_frame_text (
            st == 404
                ? api_wsproto_error ("sandbox_not_found", "sandbox not found", NULL)
                : api_wsproto_error ("stream_error", "dependency unavailable; retry", NULL));
        return done;
    }
    done->ok = true;
    snprintf (done->sandbox_ref, sizeof done->sandbox_ref, "%s/%s", row.ns, row.id);
    snprintf (done->runtime, sizeof done->runtime, "%s", row.runtime);
    lss_log_info ("websocket authorised", "{s:s, s:s}", "sandbox", row.id, "user",
                  done->who.user_id);
    return done;
}

void api_h_ws_admit (api_worker_t *w, api_ws_admit_t *m)
{
    m->msg.type = API_MSG_WS_ADMIT_DONE;
    api_reply_to_t to = {0};
    if (api_rate_limit (w, &m->who, "execute_code", &to) == 429) {
        json_t *f = api_wsproto_error ("rate_limited", "rate limit exceeded; retry later",
                                       m->execution_id);
        if (f)
            json_object_set_new (f, "details",
                                 json_pack ("{s:I, s:I, s:I}", "limit", (json_int_t)to.rl.limit,
                                            "reset", (json_int_t)to.rl.reset_s, "retryAfter",
                                            (json_int_t)to.rl.retry_after_s));
        m->frame = s_frame_text (f);
        m->ok = false;
        return;
    }
    m->ok = true;
}
