/*  lss_exec_client — a requester's side of the executor protocol (docs/executor.md):
 *  run one execution to its end, or make one file / health request, synchronously.
 *
 *      lss_exec_client_t *c = lss_exec_client_new ("tcp://127.0.0.1:7432", NULL);
 *      char *argv[] = {"echo", "hi"};
 *      lss_exec_start_t req = {.sandbox = "default/sb1", .argv = {argv, 2}};
 *      lss_exec_result_t res;
 *      if (lss_exec_client_run (c, &req, NULL, &res) == 0)
 *          ... res.end->exit_code, res.out.data / res.out.len ...
 *      else
 *          ... res.error_code ("timeout", "executor_unavailable", or the error reply's) ...
 *      lss_exec_result_clear (&res);
 *      lss_exec_client_destroy (&c);
 *
 *  While it waits, the client pings the executor every ping_ms (so the executor never
 *  takes it for gone) and gives up with "executor_unavailable" when the executor has
 *  been silent for silence_ms (it died, or is unreachable); the whole call ends by
 *  timeout_ms whatever happens ("timeout", after cancelling the execution). Output is
 *  consumed under credit: the client grants `window` bytes at the start and grants
 *  again as it consumes, so a slow on_output callback slows the program, never grows
 *  anyone's memory. A client is one DEALER socket: use it from one thread.
 */
#ifndef LSS_EXEC_CLIENT_H
#define LSS_EXEC_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lss_bus.h"
#include "lss_util.h"

#define LSS_EXEC_CLIENT_WINDOW     (256 * 1024)
#define LSS_EXEC_CLIENT_TIMEOUT_MS 70000
#define LSS_EXEC_CLIENT_PING_MS    1000
#define LSS_EXEC_CLIENT_SILENCE_MS 5000
#define LSS_EXEC_CLIENT_GATHER_MAX (16 << 20)

typedef struct _lss_exec_client_t lss_exec_client_t;

/*  Output callback: one chunk of stream ("stdout" | "stderr"). Return 0 to go on, or
 *  non-zero to cancel the execution (the run still waits for its exec.end). */
typedef int (lss_exec_output_fn) (void *arg, const char *stream, const uint8_t *data,
                                  size_t len);
/*  Called once when the execution's process runs (exec.started); it may send stdin with
 *  lss_exec_client_stdin. */
typedef void (lss_exec_started_fn) (void *arg, lss_exec_client_t *client, const char *exec_id,
                                    int64_t pid);

typedef struct {
    int64_t timeout_ms;            /* the whole call; 0 = LSS_EXEC_CLIENT_TIMEOUT_MS */
    int64_t window;                /* credit granted at a time; 0 = LSS_EXEC_CLIENT_WINDOW */
    int64_t ping_ms;               /* 0 = LSS_EXEC_CLIENT_PING_MS */
    int64_t silence_ms;            /* 0 = LSS_EXEC_CLIENT_SILENCE_MS */
    lss_exec_output_fn *on_output; /* NULL: gather into result out/err */
    lss_exec_started_fn *on_started;
    void *arg;
    size_t max_gather; /* bytes gathered per stream; 0 = LSS_EXEC_CLIENT_GATHER_MAX */
} lss_exec_client_opts_t;

typedef struct {
    lss_exec_end_t *end;   /* the exec.end (exec_id is the request's), NULL on failure */
    int64_t pid;           /* from exec.started, 0 if it never started */
    lss_buf_t out, err;    /* gathered output when no on_output was given */
    bool out_cut, err_cut; /* more arrived than max_gather */
    int64_t bytes;         /* output bytes received */
    char error_code[LSS_PROTO_ID_MAX + 1]; /* on failure: the error reply's code, "timeout",
                                              "executor_unavailable", "send_failed" */
    char error[512];
} lss_exec_result_t;

/*  Connects a DEALER to the executor endpoint list (CZMQ syntax, e.g. "tcp://a:1,tcp://b:1";
 *  borrowed). opts NULL = bus defaults. NULL on a bad endpoint. */
lss_exec_client_t *lss_exec_client_new (const char *endpoints, const lss_bus_opts_t *opts);
void lss_exec_client_destroy (lss_exec_client_t **self_p);

/*  Runs req (borrowed; exec_id NULL = a fresh one; credit is set by the client) to its
 *  end. Returns 0 when an exec.end arrived (result->end; it may carry end->error, e.g.
 *  the agent died), or -1 with result->error_code / error (refused, executor gone,
 *  timeout). result is always initialised; free it with lss_exec_result_clear. */
int lss_exec_client_run (lss_exec_client_t *self, const lss_exec_start_t *req,
                         const lss_exec_client_opts_t *opts, lss_exec_result_t *result);
void lss_exec_result_clear (lss_exec_result_t *result);

/*  Sends stdin for the running execution (from on_started or on_output). 0 or -1. */
int lss_exec_client_stdin (lss_exec_client_t *self, const char *exec_id, const void *data,
                           size_t len, bool eof);

/*  One request (file.*, agent.health; body borrowed, its `sandbox` set) and its reply
 *  within timeout_ms. Returns 0 with *reply_kind and *reply (caller frees with
 *  lss_proto_body_free; an error reply is LSS_MSG_error), or -1 on timeout or a send
 *  failure. */
int lss_exec_client_request (lss_exec_client_t *self, lss_msg_kind_t kind, const void *body,
                             int64_t timeout_ms, lss_msg_kind_t *reply_kind, void **reply);

/*  Pings the executor and waits for the pong, at most timeout_ms. 0 or -1. */
int lss_exec_client_ping (lss_exec_client_t *self, int64_t timeout_ms);

#endif
