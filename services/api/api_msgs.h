/*  api_msgs — the messages the api's threads send each other (besides HTTP requests and
 *  responses, api_http.h). docs/api.md draws who sends what to whom.
 *
 *      lws ──WS_AUTH, WS_ADMIT, HTTP_REQ──► workers ──EXEC_START, FILE_OP──► bridge
 *      lws ──EXEC_START, EXEC_STDIN, EXEC_CANCEL, EXEC_CONSUMED, CONN_CLOSED──► bridge
 *      workers ──WAIT_RUNNING, PUBLISH──► events  bridge ──AUDIT──► workers
 *      workers, bridge, events ──HTTP_RESP, WS_AUTH_DONE, WS_ADMIT_DONE, WS_FRAME──► lws
 *
 *  Every struct starts with an api_msg_t and has a destroy function set by its _new.
 */
#ifndef API_MSGS_H
#define API_MSGS_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "api_db.h"
#include "api_http.h"
#include "api_mailbox.h"
#include "lss_proto.h"
#include "lss_util.h"

#define API_EXECUTION_ID_MAX 64  /* client-chosen executionId, bytes */
#define API_SANDBOX_REF_MAX  320 /* "<namespace>/<name>" */
#define API_FILE_PATH_MAX    4096

enum {
    API_MSG_WS_AUTH = 10,
    API_MSG_WS_AUTH_DONE,
    API_MSG_WS_ADMIT,
    API_MSG_WS_ADMIT_DONE,
    API_MSG_WS_FRAME,
    API_MSG_EXEC_START,
    API_MSG_EXEC_STDIN,
    API_MSG_EXEC_CANCEL,
    API_MSG_EXEC_CONSUMED,
    API_MSG_CONN_CLOSED,
    API_MSG_FILE_OP,
    API_MSG_AUDIT,
    API_MSG_WAIT_RUNNING,
    API_MSG_PUBLISH,
    API_MSG_RL_REFILL, /* api_rlease: take the next rate-limit block from Redis */
};

/*  Who made a request, once authenticated. */
typedef struct {
    char user_id[API_ID_SIZE];
    char username[API_USERNAME_SIZE];
    char role[API_ROLE_SIZE];
    char key_id[API_ID_SIZE];        /* "" when a JWT was used */
    char jti[72];                    /* the JWT's id, "" for API keys */
    int64_t token_exp_s;             /* the JWT's exp, 0 for API keys */
    char principal[API_ID_SIZE + 8]; /* rate-limit identity: key id or "usr:<id>" */
    int64_t rate_default, rate_create_sandbox, rate_execute_code; /* 0 = configured */
} api_principal_t;

static inline bool api_principal_admin (const api_principal_t *p)
{
    return p && p->role[0] == 'a'; /* "admin" */
}

/* ---------------------------------------------------------------- WebSocket */
/*  lws → workers: authorise the connection conn_id for sandbox id with token. */
typedef struct {
    api_msg_t msg;
    uint64_t conn_id;
    char sandbox_id[API_SB_ID_SIZE];
    char *token; /* heap, may be NULL */
    char request_id[API_REQUEST_ID_MAX + 1];
} api_ws_auth_t;

/*  workers → lws: the outcome. On failure `frame` is the error frame to send before
 *  closing. */
typedef struct {
    api_msg_t msg;
    uint64_t conn_id;
    bool ok;
    api_principal_t who;
    char sandbox_ref[API_SANDBOX_REF_MAX]; /* "<ns>/<name>" */
    char runtime[API_RUNTIME_SIZE];        /* the sandbox's runtime (default language) */
    char *frame;                           /* heap JSON text on failure */
} api_ws_auth_done_t;

/*  What to run (shared by REST and WebSocket executions). */
typedef struct {
    char kind[16];               /* code | command | packages */
    char language[33];           /* code: python, node, bash, ... */
    char *shell;                 /* command line for /bin/sh -c (heap) */
    lss_bytes_t code;            /* code (heap) */
    json_t *env;                 /* {name: value} or NULL */
    char cwd[API_FILE_PATH_MAX]; /* "" = /workspace */
    lss_bytes_t stdin_data;      /* initial stdin (heap) */
    bool stdin_open;             /* more stdin follows (WebSocket) */
    int64_t timeout_ms;
    int64_t max_output; /* bytes kept per stream */
} api_exec_spec_t;

void api_exec_spec_clear (api_exec_spec_t *spec);

/*  lws → workers: admit an execute frame (rate limit); workers → lws: the verdict. */
typedef struct {
    api_msg_t msg;
    uint64_t conn_id;
    uint64_t xid; /* the bridge id the lws thread gave the execution */
    char execution_id[API_EXECUTION_ID_MAX + 1];
    api_principal_t who;
    bool ok;
    char *frame; /* on refusal: the error frame (heap JSON text) */
} api_ws_admit_t;

/*  any → lws: one frame for a WebSocket connection. */
typedef struct {
    api_msg_t msg;
    uint64_t conn_id;
    uint64_t xid;       /* execution it belongs to, 0 if none */
    int64_t data_bytes; /* output bytes it carries (credit returned once written) */
    bool terminal;      /* the execution's last frame */
    bool close_after;   /* close the connection once it is written */
    size_t len;
    char *text; /* heap; allocated with LWS_PRE bytes in front: text = buf + API_WS_PRE */
    char *buf;
} api_ws_frame_t;

#define API_WS_PRE 16 /* >= LWS_PRE (checked at compile time in api_server.c) */

/*  A frame of len bytes of JSON text; NULL on OOM. The text is copied. */
api_ws_frame_t *api_ws_frame_new (uint64_t conn_id, const char *text, size_t len);
/*  A frame from a JSON value (stolen). */
api_ws_frame_t *api_ws_frame_json (uint64_t conn_id, json_t *value);

/* ---------------------------------------------------------------- bridge */
/*  workers / lws → bridge: start an execution. */
typedef struct {
    api_msg_t msg;
    uint64_t xid;
    bool ws;                                     /* stream to a WebSocket */
    uint64_t conn_id;                            /* ws */
    char execution_id[API_EXECUTION_ID_MAX + 1]; /* ws: the client's id; rest: ours */
    api_reply_to_t to;                           /* rest */
    char sandbox_ref[API_SANDBOX_REF_MAX];
    char sandbox_id[API_SB_ID_SIZE];
    char user_id[API_ID_SIZE];
    int64_t window; /* output credit ahead of the client, bytes; 0 = API_BRIDGE_WINDOW */
    api_exec_spec_t spec;
} api_exec_start_msg_t;

/*  lws → bridge: stdin, cancel, consumed output of xid; conn closed. */
typedef struct {
    api_msg_t msg;
    uint64_t xid;
    uint64_t conn_id;
    lss_bytes_t data; /* stdin */
    bool eof;
    int64_t bytes; /* consumed */
} api_exec_ctl_t;

typedef enum {
    API_FILE_LIST,
    API_FILE_GET,
    API_FILE_PUT,
    API_FILE_DELETE,
    API_FILE_HEALTH, /* agent.health: fills body.resources of a status answer */
} api_file_op_t;

/*  workers → bridge: a file operation. */
typedef struct {
    api_msg_t msg;
    api_reply_to_t to;
    char sandbox_ref[API_SANDBOX_REF_MAX];
    api_file_op_t op;
    char path[API_FILE_PATH_MAX]; /* as the agent takes it (absolute or relative) */
    bool recursive;
    lss_buf_t data;  /* PUT: the body (moved from the request) */
    size_t max_file; /* GET: largest file answered */
    json_t *body;    /* HEALTH: the status answer to complete (owned) */
} api_file_msg_t;

/*  bridge → workers: write an execution's audit row. */
typedef struct {
    api_msg_t msg;
    api_exec_row_t row; /* row.summary points at summary */
    char *summary;
} api_audit_msg_t;

/* ---------------------------------------------------------------- events */
/*  workers → events: answer `to` once sandbox `name` is Running (201), Failed (201 with
 *  its status) or at deadline (202). The row is what the create recorded. */
typedef struct {
    api_msg_t msg;
    api_reply_to_t to;
    char name[API_SB_ID_SIZE];
    api_sandbox_row_t row;
    int64_t deadline_mono_ms;
} api_wait_msg_t;

/*  workers → events: an audit event for the api's PUB (api.pub_endpoint), published as
 *  type "api.event", topic api.<reason>.<namespace>.<name>. */
typedef struct {
    api_msg_t msg;
    char reason[64];           /* SandboxCreated, SandboxDeleted, ExecEnded, ... */
    char name[API_SB_ID_SIZE]; /* the sandbox */
    char user_id[API_ID_SIZE]; /* who */
    char trace[API_REQUEST_ID_MAX + 1];
    json_t *details; /* owned, may be NULL */
} api_publish_msg_t;

/*  details is taken (may be NULL). NULL on allocation failure (details freed). */
api_publish_msg_t *api_publish_msg_new (const char *reason, const char *name,
                                        const char *user_id, const char *trace,
                                        json_t *details);

api_exec_start_msg_t *api_exec_start_msg_new (void);
api_exec_ctl_t *api_exec_ctl_new (int type, uint64_t xid, uint64_t conn_id);
api_file_msg_t *api_file_msg_new (const api_reply_to_t *to, api_file_op_t op);
api_ws_auth_t *api_ws_auth_new (void);
api_ws_auth_done_t *api_ws_auth_done_new (uint64_t conn_id);
/*  type API_MSG_WS_ADMIT or API_MSG_WS_ADMIT_DONE. */
api_ws_admit_t *api_ws_admit_new (int type);
api_audit_msg_t *api_audit_msg_new (void);

#endif
