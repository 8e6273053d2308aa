/*  api_wsproto — WebSocket frames. See api_wsproto.h.
 */
#include "api_wsproto.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api_valid.h"
#include "api_view.h"
#include "lss_util.h"

void api_wsf_clear (api_wsf_t *f)
{
    json_decref (f->body);
    free (f->data.data);
    memset (f, 0, sizeof *f);
}

static int s_fail (char code[32], const char *c, char *message, size_t size, const char *m)
{
    snprintf (code, 32, "%s", c);
    snprintf (message, size, "%s", m);
    return -1;
}

int api_wsproto_parse (const char *text, size_t len, api_wsf_t *out, char code[32],
                       char *message, size_t message_size)
{
    memset (out, 0, sizeof *out);
    json_error_t jerr;
    json_t *v = json_loadb (text, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!v) {
        char m[256];
        snprintf (m, sizeof m, "not valid JSON: %s", jerr.text);
        return s_fail (code, "invalid_message", message, message_size, m);
    }
    out->body = v;
    if (!json_is_object (v))
        return s_fail (code, "invalid_message", message, message_size,
                       "a frame is a JSON object with a type");
    const char *type = json_string_value (json_object_get (v, "type"));
    if (!type)
        return s_fail (code, "invalid_message", message, message_size,
                       "a frame needs a string field type");
    json_t *id = json_object_get (v, "executionId");
    if (id && api_valid_client_id (json_string_value (id)))
        snprintf (out->execution_id, sizeof out->execution_id, "%s", json_string_value (id));
    if (strcmp (type, "ping") == 0) {
        out->type = API_WSF_PING;
        json_t *ts = json_object_get (v, "timestamp");
        out->timestamp = json_is_integer (ts) ? json_integer_value (ts) : 0;
        return 0;
    }
    if (strcmp (type, "execute") == 0)
        out->type = API_WSF_EXECUTE;
    else if (strcmp (type, "stdin") == 0)
        out->type = API_WSF_STDIN;
    else if (strcmp (type, "cancel") == 0)
        out->type = API_WSF_CANCEL;
    else {
        char m[128];
        snprintf (m, sizeof m, "unknown frame type \"%.64s\"", type);
        return s_fail (code, "unknown_message_type", message, message_size, m);
    }
    if (!out->execution_id[0])
        return s_fail (code, "invalid_request", message, message_size,
                       "executionId is required: 1..64 of [A-Za-z0-9._:-]");
    if (out->type == API_WSF_STDIN) {
        json_t *data = json_object_get (v, "data");
        json_t *eof = json_object_get (v, "eof");
        if ((data && !json_is_null (data) && !json_is_string (data)) ||
            (eof && !json_is_boolean (eof)))
            return s_fail (code, "invalid_request", message, message_size,
                           "stdin needs data (a string) and/or eof (a boolean)");
        if (json_is_string (data)) {
            size_t n = json_string_length (data);
            if (n > API_STDIN_MAX)
                return s_fail (code, "invalid_request", message, message_size,
                               "stdin data is limited to 1 MiB per frame");
            out->data.data = malloc (n ? n : 1);
            if (!out->data.data)
                return s_fail (code, "invalid_request", message, message_size, "out of memory");
            memcpy (out->data.data, json_string_value (data), n);
            out->data.len = n;
        }
        out->eof = json_is_true (eof);
    }
    return 0;
}

static json_t *s_frame (const char *type, const char *execution_id)
{
    json_t *f =
        json_pack ("{s:s, s:I}", "type", type, "timestamp", (json_int_t)lss_time_now_ms ());
    if (f && execution_id && *execution_id)
        json_object_set_new (f, "executionId", json_string (execution_id));
    return f;
}

json_t *api_wsproto_error (const char *code, const char *message, const char *execution_id)
{
    json_t *f = s_frame ("error", execution_id);
    if (f) {
        json_object_set_new (f, "code", json_string (code));
        json_object_set_new (f, "message", json_string (message ? message : code));
    }
    return f;
}

json_t *api_wsproto_pong (int64_t client_timestamp)
{
    json_t *f = s_frame ("pong", NULL);
    if (f && client_timestamp)
        json_object_set_new (f, "clientTimestamp", json_integer (client_timestamp));
    return f;
}

json_t *api_wsproto_start (const char *execution_id)
{
    return s_frame ("execution_start", execution_id);
}

json_t *api_wsproto_cancelled (const char *execution_id)
{
    return s_frame ("execution_cancelled", execution_id);
}

/*  Output text is scanned a word (8 bytes) at a time: a word of printable ASCII other
 *  than '"' and '\\' — nearly all program output — is checked with a few integer
 *  operations and copied with memcpy; only the bytes around anything else are looked at
 *  one by one. One pass counts (and checks UTF-8), the second writes into the frame. */
#define S_ONES  0x0101010101010101ull
#define S_HIGHS 0x8080808080808080ull

static bool s_plain (uint8_t c)
{
    return c >= 0x20 && c < 0x80 && c != '"' && c != '\\';
}

/* The end of the run of plain bytes starting at i. */
static size_t s_plain_end (const uint8_t *s, size_t i, size_t n)
{
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    while (i + 8 <= n) {
        uint64_t w, q, b;
        memcpy (&w, s + i, 8);
        q = w ^ (S_ONES * '"');
        b = w ^ (S_ONES * '\\');
        /* per byte: high bit set, below 0x20, '"' or '\\' (exact for the lowest such
         * byte: a borrow only ever spoils the bytes above it) */
        uint64_t m = (w & S_HIGHS) | ((w - S_ONES * 0x20) & ~w & S_HIGHS) |
                     ((q - S_ONES) & ~q & S_HIGHS) | ((b - S_ONES) & ~b & S_HIGHS);
        if (m)
            return i + (size_t)__builtin_ctzll (m) / 8;
        i += 8;
    }
#endif
    while (i < n && s_plain (s[i]))
        i++;
    return i;
}

/*  Bytes s (n) need as the inside of a JSON string (RFC 8259: '"', '\\' and controls
 *  escaped; everything else, UTF-8 included, as is); writes them to out unless NULL.
 *  SIZE_MAX when s is not valid UTF-8. */
static size_t s_json_escape (const uint8_t *s, size_t n, char *out)
{
    static const char hex[] = "0123456789abcdef";
    size_t o = 0;
    for (size_t i = 0; i < n;) {
        size_t run = s_plain_end (s, i, n);
        if (out)
            memcpy (out + o, s + i, run - i);
        o += run - i;
        if (run == n)
            break;
        uint8_t c = s[run];
        if (c >= 0x80) {
            size_t len = api_view_utf8_seq (s, run, n);
            if (!len)
                return SIZE_MAX;
            if (out)
                memcpy (out + o, s + run, len);
            o += len;
            i = run + len;
            continue;
        }
        char e = c == '"'    ? '"'
                 : c == '\\' ? '\\'
                 : c == '\n' ? 'n'
                 : c == '\t' ? 't'
                 : c == '\r' ? 'r'
                 : c == '\b' ? 'b'
                 : c == '\f' ? 'f'
                             : 0;
        if (out) {
            out[o] = '\\';
            if (e)
                out[o + 1] = e;
            else
                memcpy (out + o + 1, (char[]){'u', '0', '0', hex[c >> 4], hex[c & 15]}, 5);
        }
        o += e ? 2 : 6;
        i = run + 1;
    }
    return o;
}

static void s_output_frame_destroy (api_msg_t *msg)
{
    api_ws_frame_t *f = (api_ws_frame_t *)msg;
    free (f->buf);
    free (f);
}

api_ws_frame_t *api_wsproto_output_frame_utf8 (uint64_t conn_id, const char *execution_id,
                                               const char *stream, int64_t seq,
                                               int64_t timestamp, const uint8_t *data,
                                               size_t len, bool *valid)
{
    *valid = true;
    const uint8_t *id = (const uint8_t *)execution_id;
    size_t id_len = strlen (execution_id);
    char head[160], tail[96];
    int hn = snprintf (head, sizeof head, "{\"type\":\"output\",\"executionId\":\"");
    int tn = snprintf (tail, sizeof tail,
                       "\",\"stream\":\"%s\",\"seq\":%lld,\"timestamp\":%lld,"
                       "\"content\":\"",
                       stream, (long long)seq, (long long)timestamp);
    if (hn < 0 || tn < 0 || (size_t)tn >= sizeof tail)
        return NULL;
    size_t id_out = s_json_escape (id, id_len, NULL);
    size_t content = s_json_escape (data, len, NULL);
    if (id_out == SIZE_MAX || content == SIZE_MAX) {
        *valid = false;
        return NULL;
    }
    size_t total = (size_t)hn + id_out + (size_t)tn + content + 2;
    /* the frame is built in place: no copy of the text afterwards */
    api_ws_frame_t *f = calloc (1, sizeof *f);
    if (!f)
        return NULL;
    f->buf = malloc (API_WS_PRE + total + 1);
    if (!f->buf) {
        free (f);
        return NULL;
    }
    f->msg.type = API_MSG_WS_FRAME;
    f->msg.destroy = s_output_frame_destroy;
    f->conn_id = conn_id;
    f->text = f->buf + API_WS_PRE;
    char *text = f->text;
    size_t o = 0;
    memcpy (text, head, (size_t)hn);
    o += (size_t)hn;
    o += s_json_escape (id, id_len, text + o);
    memcpy (text + o, tail, (size_t)tn);
    o += (size_t)tn;
    if (content == len) { /* nothing to escape (the common case): the bytes as they are */
        if (len)
            memcpy (text + o, data, len);
        o += len;
    } else
        o += s_json_escape (data, len, text + o);
    memcpy (text + o, "\"}", 2);
    o += 2;
    text[o] = '\0';
    f->len = o;
    return f;
}

api_ws_frame_t *api_wsproto_output_frame (uint64_t conn_id, const char *execution_id,
                                          const char *stream, int64_t seq, int64_t timestamp,
                                          const uint8_t *data, size_t len)
{
    bool valid;
    return api_wsproto_output_frame_utf8 (conn_id, execution_id, stream, seq, timestamp, data,
                                          len, &valid);
}
