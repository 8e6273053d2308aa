/*  lss_log — structured JSON-line logging.
 *
 *  One line per event on stderr (or the stream given to lss_log_set_stream):
 *    {"ts":"2026-11-22T03:30:00.123Z","level":"info","service":"watcher",
 *     "msg":"relisted","trace":"req-1","fields":{...}}
 *  Fields are built with jansson's json_pack format, e.g.
 *    lss_log_info ("sandbox started", "{s:s, s:i}", "name", name, "pid", pid);
 *  Values under keys that name secrets (password, token, secret, key, authorization,
 *  credential, ...) are replaced by "***" at any depth, and strings that look like API
 *  keys or bearer tokens are masked wherever they appear. Thread-safe: one write per line.
 *  The trace id is per thread (lss_log_set_trace) and may be overridden by a "trace" field.
 */
#ifndef LSS_LOG_H
#define LSS_LOG_H

#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>

typedef enum {
    LSS_LOG_DEBUG = 0,
    LSS_LOG_INFO = 1,
    LSS_LOG_WARN = 2,
    LSS_LOG_ERROR = 3,
} lss_log_level_t;

/*  Sets the service name and minimum level. May be called again (tests). */
void lss_log_init (const char *service, lss_log_level_t level);
void lss_log_set_level (lss_log_level_t level);
/*  The service name (truncated to size - 1 bytes), e.g. for a database connection's
 *  application_name. */
void lss_log_get_service (char *buf, size_t size);
lss_log_level_t lss_log_get_level (void);
/*  Parses "debug" | "info" | "warn" | "error"; returns 0 and sets *level, or -1. */
int lss_log_parse_level (const char *name, lss_log_level_t *level);
/*  Redirects output (borrowed; NULL = stderr). */
void lss_log_set_stream (FILE *stream);
/*  Sets this thread's trace id (copied; NULL clears). Returns the previous one's copy
 *  state is not kept: callers that nest should save lss_log_trace () first. */
void lss_log_set_trace (const char *trace);
/*  This thread's trace id, or "" (borrowed, valid until the next set). */
const char *lss_log_trace (void);

/*  Logs msg with fields from json_pack (fmt may be NULL for none). A bad fmt logs the
 *  message with a "fields_error" field instead of failing. */
void lss_log (lss_log_level_t level, const char *msg, const char *fmt, ...);
/*  Same, with fields given as a json object (borrowed; may be NULL). */
void lss_log_json (lss_log_level_t level, const char *msg, const json_t *fields);

#define lss_log_debug(msg, ...) lss_log (LSS_LOG_DEBUG, (msg), __VA_ARGS__)
#define lss_log_info(msg, ...)  lss_log (LSS_LOG_INFO, (msg), __VA_ARGS__)
#define lss_log_warn(msg, ...)  lss_log (LSS_LOG_WARN, (msg), __VA_ARGS__)
#define lss_log_error(msg, ...) lss_log (LSS_LOG_ERROR, (msg), __VA_ARGS__)

/*  True if a value under this key must never be logged (case-insensitive). */
bool lss_log_key_is_secret (const char *key);
/*  Deep copy of v with secrets masked (caller owns; NULL in → NULL out). */
json_t *lss_log_mask (const json_t *v);

#endif
