/*  api_msgs — constructors and destructors of the inter-thread messages. See api_msgs.h.
 */
#include "api_msgs.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void api_exec_spec_clear (api_exec_spec_t *spec)
{
    free (spec->shell);
    free (spec->code.data);
    free (spec->stdin_data.data);
    json_decref (spec->env);
    memset (spec, 0, sizeof *spec);
}

static void s_frame_destroy (api_msg_t *msg)
{
    api_ws_frame_t *f = (api_ws_frame_t *)msg;
    free (f->buf);
    free (f);
}

api_ws_frame_t *api_ws_frame_new (uint64_t conn_id, const char *text, size_t len)
{
    api_ws_frame_t *f = calloc (1, sizeof *f);
    if (!f)
        return NULL;
    f->buf = malloc (API_WS_PRE + len + 1);
    if (!f->buf) {
        free (f);
        return NULL;
    }
    f->msg.type = API_MSG_WS_FRAME;
    f->msg.destroy = s_frame_destroy;
    f->conn_id = conn_id;
    f->text = f->buf + API_WS_PRE;
    memcpy (f->text, text, len);
    f->text[len] = '\0';
    f->len = len;
    return f;
}

api_ws_frame_t *api_ws_frame_json (uint64_t conn_id, json_t *value)
{
    if (!value)
        return NULL;
    char *text = json_dumps (value, JSON_COMPACT);
    json_decref (value);
    if (!text)
        return NULL;
    api_ws_frame_t *f = api_ws_frame_new (conn_id, text, strlen (text));
    free (text);
    return f;
}

static void s_exec_start_destroy (api_msg_t *msg)
{
    api_exec_start_msg_t *m = (api_exec_start_msg_t *)msg;
    api_exec_spec_clear (&m->spec);
    free (m);
}

api_exec_start_msg_t *api_exec_start_msg_new (void)
{
    api_exec_start_msg_t *m = calloc (1, sizeof *m);
    if (!m)
        return NULL;
    m->msg.type = API_MSG_EXEC_START;
    m->msg.destroy = s_exec_start_destroy;
    return m;
}

static void s_ctl_destroy (api_msg_t *msg)
{
    api_exec_ctl_t *m = (api_exec_ctl_t *)msg;
    free (m->data.data);
    free (m);
}

api_exec_ctl_t *api_exec_ctl_new (int type, uint64_t xid, uint64_t conn_id)
{
    api_exec_ctl_t *m = calloc (1, sizeof *m);
    if (!m)
        return NULL;
    m->msg.type = type;
    m->msg.destroy = s_ctl_destroy;
    m->xid = xid;
    m->conn_id = conn_id;
    return m;
}

static void s_file_destroy (api_msg_t *msg)
{
    api_file_msg_t *m = (api_file_msg_t *)msg;
    lss_buf_free (&m->data);
    json_decref (m->body);
    free (m);
}

api_file_msg_t *api_file_msg_new (const api_reply_to_t *to, api_file_op_t op)
{
    api_file_msg_t *m = calloc (1, sizeof *m);
    if (!m)
        return NULL;
    m->msg.type = API_MSG_FILE_OP;
    m->msg.destroy = s_file_destroy;
    m->to = *to;
    m->op = op;
    lss_buf_init (&m->data, 0);
    return m;
}

static void s_ws_auth_destroy (api_msg_t *msg)
{
    api_ws_auth_t *m = (api_ws_auth_t *)msg;
    free (m->token);
    free (m);
}

api_ws_auth_t *api_ws_auth_new (void)
{
    api_ws_auth_t *m = calloc (1, sizeof *m);
    if (m) {
        m->msg.type = API_MSG_WS_AUTH;
        m->msg.destroy = s_ws_auth_destroy;
    }
    return m;
}

static void s_ws_auth_done_destroy (api_msg_t *msg)
{
    api_ws_auth_done_t *m = (api_ws_auth_done_t *)msg;
    free (m->frame);
    free (m);
}

api_ws_auth_done_t *api_ws_auth_done_new (uint64_t conn_id)
{
    api_ws_auth_done_t *m = calloc (1, sizeof *m);
    if (m) {
        m->msg.type = API_MSG_WS_AUTH_DONE;
        m->msg.destroy = s_ws_auth_done_destroy;
        m->conn_id = conn_id;
    }
    return m;
}

static void s_ws_admit_destroy (api_msg_t *msg)
{
    api_ws_admit_t *m = (api_ws_admit_t *)msg;
    free (m->frame);
    free (m);
}

api_ws_admit_t *api_ws_admit_new (int type)
{
    api_ws_admit_t *m = calloc (1, sizeof *m);
    if (m) {
        m->msg.type = type;
        m->msg.destroy = s_ws_admit_destroy;
    }
    return m;
}

static void s_audit_destroy (api_msg_t *msg)
{
    api_audit_msg_t *m = (api_audit_msg_t *)msg;
    free (m->summary);
    free (m);
}

api_audit_msg_t *api_audit_msg_new (void)
{
    api_audit_msg_t *m = calloc (1, sizeof *m);
    if (m) {
        m->msg.type = API_MSG_AUDIT;
        m->msg.destroy = s_audit_destroy;
    }
    return m;
}

static void s_publish_destroy (api_msg_t *m)
{
    api_publish_msg_t *p = (api_publish_msg_t *)m;
    json_decref (p->details);
    free (p);
}

api_publish_msg_t *api_publish_msg_new (const char *reason, const char *name,
                                        const char *user_id, const char *trace, json_t *details)
{
    api_publish_msg_t *p = calloc (1, sizeof *p);
    if (!p) {
        json_decref (details);
        return NULL;
    }
    p->msg.type = API_MSG_PUBLISH;
    p->msg.destroy = s_publish_destroy;
    snprintf (p->reason, sizeof p->reason, "%s", reason ? reason : "");
    snprintf (p->name, sizeof p->name, "%s", name ? name : "");
    snprintf (p->user_id, sizeof p->user_id, "%s", user_id ? user_id : "");
    snprintf (p->trace, sizeof p->trace, "%s", trace ? trace : "");
    p->details = details;
    return p;
}
