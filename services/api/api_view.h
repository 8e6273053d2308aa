/*  api_view — store objects and database rows as API.md's JSON shapes. Pure logic.
 *
 *  Every function takes untrusted input (objects from the store, rows from PostgreSQL)
 *  and returns a new JSON value the caller owns (NULL only when out of memory). Times
 *  are RFC 3339 UTC strings; absent times are null.
 */
#ifndef API_VIEW_H
#define API_VIEW_H

#include <jansson.h>

#include "api_db.h"
#include "lss_proto.h"

/*  The Sandbox of API.md from the store object (may be NULL: the object is gone, the
 *  row alone says what is known) and the api's row (may be NULL). */
json_t *api_view_sandbox (const json_t *obj, const api_sandbox_row_t *row);

/*  "running", "pending", ... from a Sandbox phase ("Running"); "pending" for none. */
const char *api_view_status_of_phase (const char *phase);
/*  The phase of a Sandbox object: status.phase, "Terminating" while it is being deleted,
 *  "Terminated" for NULL (gone), "Pending" before any status. */
const char *api_view_phase (const json_t *obj);

/*  GET /sandboxes/{id}/status: {id, status, phase, conditions, createdAt, startedAt,
 *  resources: {cpuUsage, memoryUsage}} (resources null until filled by the caller). */
json_t *api_view_sandbox_status (const json_t *obj, const api_sandbox_row_t *row);

/*  An Execution from an exec.end (end may be NULL when the platform failed: error then
 *  says why and status is "error"), with the output gathered (stdout/err, cut flags
 *  relative to what was kept). started_ms/ended_ms are wall-clock epoch ms. */
json_t *api_view_execution (const char *execution_id, const lss_exec_end_t *end,
                            const char *error, const uint8_t *out, size_t out_len,
                            const uint8_t *err, size_t err_len, int64_t started_ms,
                            int64_t ended_ms);

/*  "completed" | "failed" | "timeout" | "cancelled" | "error" for an exec.end. */
const char *api_view_exec_status (const lss_exec_end_t *end);

/*  Sets obj[key] to data as a string: the text itself when it is valid UTF-8, else its
 *  base64 with obj[key "Encoding"] = "base64" (encoding_key may be NULL for none). */
int api_view_set_text (json_t *obj, const char *key, const char *encoding_key,
                       const uint8_t *data, size_t len);

/*  Whether data (len) is valid UTF-8: no overlong forms, surrogates or code points past
 *  U+10FFFF (NUL is allowed). */
bool api_view_utf8_valid (const uint8_t *data, size_t len);
/*  Length of the valid UTF-8 sequence (2..4 bytes, strict as above) starting at s[i]
 *  (a byte >= 0x80) within n bytes, or 0 if there is none. */
size_t api_view_utf8_seq (const uint8_t *s, size_t i, size_t n);

/*  How many leading bytes of data (len) end on a UTF-8 character boundary: a trailing
 *  incomplete sequence (up to 3 bytes) is left for the next chunk. */
size_t api_view_utf8_complete (const uint8_t *data, size_t len);

/*  RuntimeEnvironment / SandboxProfile / WarmPool objects as API.md lists them. */
json_t *api_view_runtime (const json_t *obj);
json_t *api_view_profile (const json_t *obj);
json_t *api_view_warmpool (const json_t *obj);
json_t *api_view_warmpool_status (const json_t *obj);

/*  Users and keys. */
json_t *api_view_user (const api_user_t *u);
json_t *api_view_key (const api_key_t *k);

/*  An RFC 3339 string for epoch ms, or null for 0. */
json_t *api_view_time (int64_t epoch_ms);

/*  The list envelope {<name>: items (stolen), pagination: {limit, offset, total}}. */
json_t *api_view_page (const char *name, json_t *items, int limit, int offset, int64_t total);

#endif
