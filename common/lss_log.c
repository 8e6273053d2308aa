/*  lss_log — structured JSON-line logging. See lss_log.h.
 *
 *  Each event is built as a jansson object off the lock (timestamp, level, service, msg,
 *  trace, masked fields), dumped compact into one heap string with its newline, and
 *  written with a single fwrite + fflush under one process-wide mutex, so concurrent
 *  threads never interleave partial lines. Everything is bounded: the service name, the
 *  per-thread trace id, every string value (S_STR_MAX, cut on a UTF-8 boundary and
 *  suffixed "…(truncated N bytes)"), the nesting depth walked by the masker, and the
 *  whole line (LSS_LOG_LINE_MAX; past it the fields are dropped and a "fields_error"
 *  says so). Masking happens on a deep copy; the caller's json is never modified.
 */
#include "lss_log.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "lss_util.h"

/*  Longest line written, newline included. A msg is cut at S_STR_MAX, and jansson escapes
 *  a byte to at most 6 ("\u001f"), so a line without fields always fits. */
#define LSS_LOG_LINE_MAX (64 * 1024)
/*  Longest string value (msg, field strings) kept before it is cut. */
#define S_STR_MAX (8 * 1024)
/*  Longest trace id kept, in bytes (equal to the bus envelope's LSS_PROTO_TRACE_MAX, so
 *  a trace id travels log → bus → log unchanged). */
#define S_TRACE_MAX 128
/*  Longest service name kept, in bytes. */
#define S_SERVICE_MAX 64
/*  Objects/arrays nested deeper than this are replaced by a marker string when copied. */
#define S_DEPTH_MAX 32
/*  Keys longer than this are not inspected: they are treated as secret (fail closed). */
#define S_KEY_MAX 256

static pthread_mutex_t s_lock = PTHREAD_MUTEX_INITIALIZER;
static char s_service[S_SERVICE_MAX + 1] = "lss"; /* guarded by s_lock */
static FILE *s_stream;                            /* guarded by s_lock; NULL = stderr */
static atomic_int s_level = LSS_LOG_INFO;
static _Thread_local char s_trace[S_TRACE_MAX + 1];

static const char *const s_level_names[] = {"debug", "info", "warn", "error"};

/*  Length of the longest prefix of text[0..len) that is at most max bytes and does not
 *  end inside a UTF-8 sequence. */
static size_t s_utf8_cut (const char *text, size_t len, size_t max)
{
    if (len <= max)
        return len;
    size_t cut = max;
    /* Back up over continuation bytes (10xxxxxx) to the start of the cut character. */
    while (cut > 0 && ((unsigned char)text[cut] & 0xC0) == 0x80)
        cut--;
    return cut;
}

/*  A json string of text[0..len), never NULL unless out of memory: bytes that are not
 *  valid UTF-8 make jansson refuse the string, in which case every byte >= 0x80 is
 *  replaced by '?' (the line is still useful and still valid JSON). */
static json_t *s_json_text (const char *text, size_t len)
{
    json_t *s = json_stringn (text, len);
    if (s)
        return s;
    char *copy = malloc (len + 1);
    if (!copy)
        return NULL;
    for (size_t i = 0; i < len; i++)
        copy[i] = ((unsigned char)text[i] >= 0x80) ? '?' : text[i];
    copy[len] = '\0';
    s = json_stringn (copy, len);
    free (copy);
    return s;
}

/*  A json string of text[0..len), cut to max bytes with a "…(truncated N bytes)" suffix
 *  when longer (max 0 = never cut). */
static json_t *s_json_text_capped (const char *text, size_t len, size_t max)
{
    if (max == 0 || len <= max)
        return s_json_text (text, len);
    size_t keep = s_utf8_cut (text, len, max);
    char suffix[64];
    int n = snprintf (suffix, sizeof suffix, "\xE2\x80\xA6(truncated %zu bytes)", len - keep);
    if (n < 0 || (size_t)n >= sizeof suffix)
        return NULL;
    char *buf = malloc (keep + (size_t)n + 1);
    if (!buf)
        return NULL;
    memcpy (buf, text, keep);
    memcpy (buf + keep, suffix, (size_t)n + 1);
    json_t *s = s_json_text (buf, keep + (size_t)n);
    free (buf);
    return s;
}

/*  True for a string value that is itself a credential: an LLMSafeSpace API key
 *  ("lsp_...", case-sensitive, as keys are issued) or an HTTP bearer credential
 *  ("Bearer ...", case-insensitive as HTTP auth schemes are). */
static bool s_value_is_secret (const char *text, size_t len)
{
    if (len >= 4 && memcmp (text, "lsp_", 4) == 0)
        return true;
    if (len >= 7 && strncasecmp (text, "bearer ", 7) == 0)
        return true;
    return false;
}

/*  The masking rule over key[0..len); see lss_log_key_is_secret. */
static bool s_key_is_secret (const char *key, size_t len)
{
    static const char *const words[] = {
        "password", "passwd",  "secret",  "token",   "authorization", "credential",
        "apikey",   "api_key", "api-key", "private", "cookie",        "session_key",
    };
    if (len > S_KEY_MAX)
        return true;
    char lower[S_KEY_MAX + 1];
    for (size_t i = 0; i < len; i++) {
        char c = key[i];
        /* An embedded NUL must not hide what follows it from strstr. */
        lower[i] = c == '\0' ? ' ' : (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
    }
    lower[len] = '\0';
    for (size_t i = 0; i < sizeof words / sizeof words[0]; i++)
        if (strstr (lower, words[i]))
            return true;
    if (strcmp (lower, "key") == 0)
        return true;
    if (len >= 4 && (strncasecmp (key + len - 4, "_key", 4) == 0 ||
                     strncasecmp (key + len - 4, "-key", 4) == 0))
        return true;
    /* camelCase: "signingKey", "hmacKey" — the capital K marks a word boundary, which is
     * what tells it apart from "monkey" or "hotkey". */
    if (len > 3 && memcmp (key + len - 3, "Key", 3) == 0)
        return true;
    return false;
}

/*  Deep copy of v with secrets masked and strings longer than str_max cut (0 = never).
 *  Returns NULL only when out of memory. */
static json_t *s_copy (const json_t *v, int depth, size_t str_max)
{
    switch (json_typeof (v)) {
    case JSON_OBJECT: {
        if (depth >= S_DEPTH_MAX)
            return json_string ("(too deep)");
        json_t *out = json_object ();
        if (!out)
            return NULL;
        const char *key;
        size_t key_len;
        json_t *item;
        json_object_keylen_foreach ((json_t *)v, key, key_len, item)
        {
            json_t *copy = s_key_is_secret (key, key_len) ? json_string ("***")
                                                          : s_copy (item, depth + 1, str_max);
            if (!copy || json_object_setn_new_nocheck (out, key, key_len, copy)) {
                json_decref (out);
                return NULL;
            }
        }
        return out;
    }
    case JSON_ARRAY: {
        if (depth >= S_DEPTH_MAX)
            return json_string ("(too deep)");
        json_t *out = json_array ();
        if (!out)
            return NULL;
        for (size_t i = 0; i < json_array_size (v); i++) {
            json_t *copy = s_copy (json_array_get (v, i), depth + 1, str_max);
            if (!copy || json_array_append_new (out, copy)) {
                json_decref (out);
                return NULL;
            }
        }
        return out;
    }
    case JSON_STRING: {
        const char *text = json_string_value (v);
        size_t len = json_string_length (v);
        if (s_value_is_secret (text, len))
            return json_string ("***");
        return s_json_text_capped (text, len, str_max);
    }
    default:
        return json_deep_copy (v);
    }
}

void lss_log_init (const char *service, lss_log_level_t level)
{
    if (!service)
        service = "lss";
    size_t len = s_utf8_cut (service, strlen (service), S_SERVICE_MAX);
    pthread_mutex_lock (&s_lock);
    memcpy (s_service, service, len);
    s_service[len] = '\0';
    pthread_mutex_unlock (&s_lock);
    lss_log_set_level (level);
}

void lss_log_set_level (lss_log_level_t level)
{
    atomic_store (&s_level, (int)level);
}

void lss_log_get_service (char *buf, size_t size)
{
    pthread_mutex_lock (&s_lock);
    lss_fmt (buf, size, "%s", s_service);
    pthread_mutex_unlock (&s_lock);
}

lss_log_level_t lss_log_get_level (void)
{
    return (lss_log_level_t)atomic_load (&s_level);
}

int lss_log_parse_level (const char *name, lss_log_level_t *level)
{
    if (!name)
        return -1;
    for (int i = LSS_LOG_DEBUG; i <= LSS_LOG_ERROR; i++)
        if (strcasecmp (name, s_level_names[i]) == 0) {
            *level = (lss_log_level_t)i;
            return 0;
        }
    return -1;
}

void lss_log_set_stream (FILE *stream)
{
    pthread_mutex_lock (&s_lock);
    s_stream = stream;
    pthread_mutex_unlock (&s_lock);
}

void lss_log_set_trace (const char *trace)
{
    size_t len = trace ? s_utf8_cut (trace, strlen (trace), S_TRACE_MAX) : 0;
    if (len)
        memcpy (s_trace, trace, len);
    s_trace[len] = '\0';
}

const char *lss_log_trace (void)
{
    return s_trace;
}

/*  True for a key whose value must never be logged. The rule, on the key compared
 *  case-insensitively unless said otherwise:
 *    - it contains password, passwd, secret, token, authorization, credential, apikey,
 *      api_key, api-key, private, cookie or session_key; or
 *    - it is exactly "key", or ends in "_key" or "-key"; or
 *    - it ends in "Key" with that capital K (camelCase, case-sensitive: "signingKey").
 *  So "monkey", "hotkey", "keys_total", "keyspace" and "key_id" are not secret, while
 *  "API_KEY", "Signing-Key", "max_tokens" and "privateKeyPem" are. Keys longer than
 *  S_KEY_MAX bytes are treated as secret. NULL is not secret. */
bool lss_log_key_is_secret (const char *key)
{
    return key ? s_key_is_secret (key, strlen (key)) : false;
}

/*  Deep copy of v with every value under a secret key (see lss_log_key_is_secret)
 *  replaced by "***", whatever its type, at any depth (objects inside arrays included),
 *  and every string starting with "lsp_" or "Bearer " (case-insensitive) replaced by
 *  "***" wherever it appears. Strings are not cut. Containers nested deeper than
 *  S_DEPTH_MAX become the string "(too deep)". Caller owns the result; NULL in, or out
 *  of memory, gives NULL. */
json_t *lss_log_mask (const json_t *v)
{
    return v ? s_copy (v, 0, 0) : NULL;
}

/*  Builds the line object. fields (borrowed, object or NULL) is copied masked and capped;
 *  fields_error, when given, is added to the fields. Returns NULL only when out of memory. */
static json_t *s_build (lss_log_level_t level, const char *msg, const json_t *fields,
                        const char *fields_error)
{
    char ts[LSS_TIME_RFC3339_SIZE];
    char service[S_SERVICE_MAX + 1];
    pthread_mutex_lock (&s_lock);
    memcpy (service, s_service, sizeof service);
    pthread_mutex_unlock (&s_lock);
    if (!msg)
        msg = "";
    int lvl = (int)level;
    if (lvl < LSS_LOG_DEBUG || lvl > LSS_LOG_ERROR)
        lvl = LSS_LOG_ERROR;

    json_t *masked = NULL;
    json_t *line = json_object ();
    if (!line)
        goto fail;
    if (json_object_set_new (line, "ts",
                             json_string (lss_time_rfc3339 (lss_time_now_ms (), ts))) ||
        json_object_set_new (line, "level", json_string (s_level_names[lvl])) ||
        json_object_set_new (line, "service", s_json_text (service, strlen (service))) ||
        json_object_set_new (line, "msg", s_json_text_capped (msg, strlen (msg), S_STR_MAX)))
        goto fail;

    json_t *trace = NULL;
    if (fields) {
        masked = s_copy (fields, 0, S_STR_MAX);
        if (!masked)
            goto fail;
        /* A "trace" string field overrides the thread's trace id. */
        json_t *t = json_object_get (masked, "trace");
        if (json_is_string (t)) {
            const char *text = json_string_value (t);
            size_t len = s_utf8_cut (text, json_string_length (t), S_TRACE_MAX);
            trace = json_stringn (text, len);
            if (!trace)
                goto fail;
            json_object_del (masked, "trace");
        }
    }
    if (!trace && s_trace[0])
        trace = s_json_text (s_trace, strlen (s_trace));
    if (trace && json_object_set_new (line, "trace", trace))
        goto fail;

    if (fields_error) {
        if (!masked && !(masked = json_object ()))
            goto fail;
        if (json_object_set_new (
                masked, "fields_error",
                s_json_text_capped (fields_error, strlen (fields_error), 1024)))
            goto fail;
    }
    if (masked && json_object_size (masked) > 0) {
        if (json_object_set_new (line, "fields", masked))
            goto fail_line;
    } else
        json_decref (masked);
    return line;

fail:
    json_decref (masked);
fail_line:
    json_decref (line);
    return NULL;
}

/*  Dumps line into a heap string ending in '\n'; *len_p gets its length. */
static char *s_dump (const json_t *line, size_t *len_p)
{
    char *text = json_dumps (line, JSON_COMPACT);
    if (!text)
        return NULL;
    size_t len = strlen (text);
    char *out = realloc (text, len + 2);
    if (!out) {
        free (text);
        return NULL;
    }
    out[len] = '\n';
    out[len + 1] = '\0';
    *len_p = len + 1;
    return out;
}

static void s_emit (lss_log_level_t level, const char *msg, const json_t *fields,
                    const char *fields_error)
{
    static const char oom_line[] =
        "{\"level\":\"error\",\"msg\":\"log line lost: out of memory\"}\n";
    char *text = NULL;
    size_t len = 0;
    json_t *line = s_build (level, msg, fields, fields_error);
    if (line)
        text = s_dump (line, &len);
    json_decref (line);
    if (text && len > LSS_LOG_LINE_MAX) {
        /* Too long even with every string capped (many fields): keep the event, drop its
         * fields, say so. Without fields the line always fits (see LSS_LOG_LINE_MAX). */
        char why[128];
        snprintf (why, sizeof why, "fields dropped: line of %zu bytes exceeds %d", len,
                  LSS_LOG_LINE_MAX);
        free (text);
        text = NULL;
        line = s_build (level, msg, NULL, why);
        if (line)
            text = s_dump (line, &len);
        json_decref (line);
    }
    pthread_mutex_lock (&s_lock);
    FILE *out = s_stream ? s_stream : stderr;
    if (text)
        fwrite (text, 1, len, out);
    else
        fwrite (oom_line, 1, sizeof oom_line - 1, out);
    fflush (out);
    pthread_mutex_unlock (&s_lock);
    free (text);
}

static bool s_enabled (lss_log_level_t level)
{
    return (int)level >= atomic_load (&s_level);
}

void lss_log (lss_log_level_t level, const char *msg, const char *fmt, ...)
{
    if (!s_enabled (level))
        return;
    json_t *fields = NULL;
    const char *fields_error = NULL;
    json_error_t error;
    if (fmt) {
        va_list ap;
        va_start (ap, fmt);
        fields = json_vpack_ex (&error, 0, fmt, ap);
        va_end (ap);
        if (!fields)
            fields_error = error.text[0] ? error.text : "json_pack failed";
        else if (!json_is_object (fields)) {
            json_decref (fields);
            fields = NULL;
            fields_error = "fields format must build an object";
        }
    }
    s_emit (level, msg, fields, fields_error);
    json_decref (fields);
}

void lss_log_json (lss_log_level_t level, const char *msg, const json_t *fields)
{
    if (!s_enabled (level))
        return;
    if (fields && !json_is_object (fields))
        s_emit (level, msg, NULL, "fields must be a json object");
    else
        s_emit (level, msg, fields, NULL);
}
