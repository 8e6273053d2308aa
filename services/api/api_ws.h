/*  api_ws — one WebSocket session of the stream endpoint, as the libwebsockets thread
 *  runs it (no lws calls here: api_server feeds it events and writes what it queues).
 *
 *  Life of a session: created at the upgrade with the sandbox id and the credentials;
 *  api_ws_start posts the authorisation to the workers; until the answer, client frames
 *  are held (at most API_WS_HELD_MAX). Then each frame is parsed (api_wsproto):
 *  ping → pong at once; execute → the execution is registered under its executionId and
 *  its rate-limit admission posted to the workers; stdin and cancel for an execution
 *  still being admitted wait with it (bounded), and are sent to the bridge right after
 *  its start, in order. Frames from the bridge (output, completion) are queued for the
 *  client; once written, the output bytes they carried are returned to the bridge as
 *  credit, so what waits here for one execution never exceeds its credit window.
 *  Closing the session tells the bridge, which cancels everything it started.
 */
#ifndef API_WS_H
#define API_WS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "api_ctx.h"
#include "api_msgs.h"

#define API_WS_HELD_MAX       16         /* client frames held before authorisation */
#define API_WS_HELD_BYTES_MAX (4u << 20) /* their bytes, and stdin held per execution */
/* bytes lws hands the kernel in one send() (its .tx_packet_size): a whole output frame
 * at once. With 0 lws caps each send() at rx_buffer_size (64 KiB) and sends the rest of
 * a frame one piece per service-loop turn. */
#define API_WS_TX_PACKET (1u << 20)

typedef struct _api_ws_t api_ws_t;

/*  The credit window of an execution started while `active` others run on the same
 *  connection: send_queue >> (active + 2), within API_BRIDGE_WINDOW_MIN ..
 *  API_BRIDGE_WINDOW. The i-th oldest execution still running started with at least i
 *  others running, so the windows of all of them together stay under half of
 *  send_queue (plus the floor): a client reading as fast as it can is never taken for
 *  one that does not read. */
int64_t api_ws_window (size_t send_queue, size_t active);

/*  A session for conn_id on sandbox_id; *token is taken (NULLed; may be NULL). */
api_ws_t *api_ws_new (api_ctx_t *ctx, uint64_t conn_id, const char *sandbox_id, char **token,
                      const char *request_id);
/*  Tells the bridge the connection is gone and frees everything; NULLs *self_p. */
void api_ws_destroy (api_ws_t **self_p);

/*  Posts the authorisation job. -1 if the workers are saturated (an error frame and a
 *  close are queued). */
int api_ws_start (api_ws_t *self);

/*  A complete client message (text, or binary when binary is true). */
void api_ws_on_message (api_ws_t *self, const char *data, size_t len, bool binary);
/*  A client message grew past the frame limit: error frame, then close (1009). */
void api_ws_on_oversize (api_ws_t *self);
/*  Results from the workers (the messages stay the caller's). */
void api_ws_on_auth (api_ws_t *self, api_ws_auth_done_t *m);
void api_ws_on_admit (api_ws_t *self, api_ws_admit_t *m);
/*  A frame for the client (taken). */
void api_ws_on_frame (api_ws_t *self, api_ws_frame_t *f);

/*  The next frame to write (still queued), or NULL. */
api_ws_frame_t *api_ws_peek_out (api_ws_t *self);
/*  The frame returned by peek was written: dequeues and frees it, returns its credit. */
void api_ws_written (api_ws_t *self, int64_t now_ms);
/*  True once the session wants the connection closed and nothing is left to write;
 *  *status (a WebSocket close code) and *reason say why. */
bool api_ws_closing (api_ws_t *self, int *status, const char **reason);
/*  Milliseconds output has been waiting without any frame being written (0 if none
 *  waits). */
int64_t api_ws_stalled_ms (const api_ws_t *self, int64_t now_ms);
size_t api_ws_out_bytes (const api_ws_t *self);
uint64_t api_ws_conn_id (const api_ws_t *self);

#endif
