/*  api_wsproto — WebSocket frames. See api_wsproto.h.
 */
#include "api_wsproto.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api_valid.h"
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

/*  Bytes s (n) need as the inside of a JSON string (RFC 8259: '"', '\\' and controls
 *  escaped; everything else, UTF-8 included, as is); writes them to out unless NULL. */
static size_t s_json_escape (const uint8_t *s, size_t n, char *out)
{
    static const char hex[] = "0123456789abcdef";
    size_t o = 0;
    for (size_t i = 0; i < n;) {
        size_t run = i;
        while (run < n && s[run] >= 0x20 && s[run] != '"' && s[run] != '\\')
            run++;
        if (out)
            memcpy (out + o, s + i, run - i);
        o += run - i;
        if (run == n)
            break;
        uint8_t c = s[run];
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

api_ws_frame_t *api_wsproto_output_frame (uint64_t conn_id, const char *execution_id,
                                          const char *stream, int64_t seq, int64_t timestamp,
                                          const uint8_t *data, size_t len)
{
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
    size_t total = (size_t)hn + s_json_escape (id, id_len, NULL) + (size_t)tn +
                   s_json_escape (data, len, NULL) + 2;
    char *text = malloc (total + 1);
    if (!text)
        return NULL;
    size_t o = 0;
    memcpy (text, head, (size_t)hn);
    o += (size_t)hn;
    o += s_json_escape (id, id_len, text + o);
    memcpy (text + o, tail, (size_t)tn);
    o += (size_t)tn;
    o += s_json_escape (data, len, text + o);
    memcpy (text + o, "\"}", 2);
    o += 2;
    api_ws_frame_t *f = api_ws_frame_new (conn_id, text, o);
    free (text);
    return f;
}
