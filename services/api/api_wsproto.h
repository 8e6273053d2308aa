/*  api_wsproto — the WebSocket stream protocol's frames (API.md "WebSocket"): parsing of
 *  client frames and building of server frames. Pure logic.
 *
 *  Client frames are JSON objects with a `type`: execute, stdin, cancel, ping. Parsing
 *  checks the JSON (no duplicate keys, bounded depth via the frame size limit) and the
 *  fields every type needs; an execute frame's body is validated later by
 *  api_valid_execute. Server frames always carry `timestamp` (epoch ms).
 */
#ifndef API_WSPROTO_H
#define API_WSPROTO_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "api_msgs.h"

typedef enum {
    API_WSF_EXECUTE = 1,
    API_WSF_STDIN,
    API_WSF_CANCEL,
    API_WSF_PING,
} api_wsf_type_t;

typedef struct {
    api_wsf_type_t type;
    char execution_id[API_EXECUTION_ID_MAX + 1];
    json_t *body;     /* the whole frame (caller owns, via api_wsf_clear) */
    lss_bytes_t data; /* stdin: the bytes of `data` (heap) */
    bool eof;
    int64_t timestamp; /* ping */
} api_wsf_t;

/*  Parses one client message. Returns 0 with out filled, or -1 with code
 *  ("invalid_message" for bad JSON or a frame that is not an object with a string type,
 *  "unknown_message_type", "invalid_request" for bad fields) and a message; out's
 *  execution_id is set whenever the frame had a valid one, so the error can name it. */
int api_wsproto_parse (const char *text, size_t len, api_wsf_t *out, char code[32],
                       char *message, size_t message_size);
void api_wsf_clear (api_wsf_t *f);

/*  Server frames (new JSON values). execution_id may be NULL. */
json_t *api_wsproto_error (const char *code, const char *message, const char *execution_id);
json_t *api_wsproto_pong (int64_t client_timestamp);
json_t *api_wsproto_start (const char *execution_id);
json_t *api_wsproto_cancelled (const char *execution_id);

/*  The output frame {type "output", executionId, stream, seq, timestamp, content} as
 *  ready JSON text, written directly: building it with jansson (a string copy checked
 *  for UTF-8 again, then dumped one character at a time) cost about 20 ns per output
 *  byte and capped WebSocket streaming near 50 MB/s (docs/benchmarks.md). data must be
 *  valid UTF-8 (NULL otherwise, and on OOM). */
api_ws_frame_t *api_wsproto_output_frame (uint64_t conn_id, const char *execution_id,
                                          const char *stream, int64_t seq, int64_t timestamp,
                                          const uint8_t *data, size_t len);
/*  The same, checking the UTF-8 in the same pass (8 bytes at a time over plain ASCII):
 *  NULL with *valid false when data is not valid UTF-8 (the caller sends it base64);
 *  NULL with *valid true on OOM. */
api_ws_frame_t *api_wsproto_output_frame_utf8 (uint64_t conn_id, const char *execution_id,
                                               const char *stream, int64_t seq,
                                               int64_t timestamp, const uint8_t *data,
                                               size_t len, bool *valid);

#endif
