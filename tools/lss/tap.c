/*  lss tap — subscribe to bus publishers and print one JSON object per line.
 *
 *  Every line is a JSON object so the output pipes into jq as it is:
 *    message:  {"topic","type","src","seq","ts","time","trace","id","body"}
 *              (bytes as base64; "invalid": reason when a known type breaks its schema)
 *    gap:      {"warning":"seq_gap","src","expected","got","missed"}
 *    restart:  {"warning":"seq_reset","src","last","got"}
 *    garbage:  {"error":"undecodable","topic","reason","bytes","head"}  — and tapping goes on.
 *  With no endpoint it taps every publisher named in the config (all *.pub_endpoint keys).
 */
#include <czmq.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lss_bus.h"
#include "lss_cli.h"
#include "lss_log.h"
#include "lss_util.h"

#define TAP_MAX_TOPICS    64
#define TAP_MAX_ENDPOINTS 64
#define TAP_MAX_SOURCES   4096 /* distinct publishers tracked for gap detection */

typedef struct {
    char *src;
    uint64_t last;
} s_source_t;

typedef struct {
    s_source_t *sources;
    size_t count;
    bool pretty;
} s_tap_t;

static void s_print (s_tap_t *tap, json_t *obj)
{
    char *text = json_dumps (obj, tap->pretty ? JSON_INDENT (2) : JSON_COMPACT);
    if (text) {
        puts (text);
        free (text);
    }
    fflush (stdout);
}

static void s_check_seq (s_tap_t *tap, const char *src, uint64_t seq)
{
    s_source_t *s = NULL;
    for (size_t i = 0; i < tap->count; i++)
        if (strcmp (tap->sources[i].src, src) == 0) {
            s = &tap->sources[i];
            break;
        }
    if (!s) {
        if (tap->count >= TAP_MAX_SOURCES)
            return;
        s = &tap->sources[tap->count++];
        s->src = strdup (src);
        s->last = seq;
        return; /* joined mid-stream: nothing to compare with yet */
    }
    if (seq == s->last + 1) {
        s->last = seq;
        return;
    }
    json_t *w;
    if (seq > s->last)
        w = json_pack ("{s:s, s:s, s:I, s:I, s:I}", "warning", "seq_gap", "src", src,
                       "expected", (json_int_t)(s->last + 1), "got", (json_int_t)seq, "missed",
                       (json_int_t)(seq - s->last - 1));
    else
        w = json_pack ("{s:s, s:s, s:I, s:I}", "warning", "seq_reset", "src", src, "last",
                       (json_int_t)s->last, "got", (json_int_t)seq);
    s_print (tap, w);
    json_decref (w);
    s->last = seq;
}

static json_t *s_topic_json (const void *data, size_t len)
{
    json_t *t = json_stringn (data, len);
    return t ? t : json_string ("(not UTF-8)");
}

static void s_undecodable (s_tap_t *tap, zmq_msg_t *topic, const uint8_t *data, size_t len,
                           const char *reason)
{
    char head[2 * 32 + 1] = "";
    for (size_t i = 0; i < len && i < 32; i++)
        snprintf (head + 2 * i, 3, "%02x", data[i]);
    json_t *e = json_pack ("{s:s, s:o, s:s, s:I, s:s}", "error", "undecodable", "topic",
                           s_topic_json (zmq_msg_data (topic), zmq_msg_size (topic)), "reason",
                           reason, "bytes", (json_int_t)len, "head", head);
    s_print (tap, e);
    json_decref (e);
}

/* Reads one [topic][payload] message and prints it. Returns 1 if a message was shown. */
static int s_handle (s_tap_t *tap, void *handle, size_t max_message)
{
    zmq_msg_t topic, payload;
    zmq_msg_init (&topic);
    zmq_msg_init (&payload);
    int shown = 0;
    if (zmq_msg_recv (&topic, handle, ZMQ_DONTWAIT) < 0)
        goto done;
    if (!zmq_msg_more (&topic)) {
        s_undecodable (tap, &topic, NULL, 0, "single-frame message (no envelope)");
        goto done;
    }
    if (zmq_msg_recv (&payload, handle, 0) < 0)
        goto done;
    const uint8_t *data = zmq_msg_data (&payload);
    size_t len = zmq_msg_size (&payload);
    if (zmq_msg_more (&payload)) {
        s_undecodable (tap, &topic, data, len, "more than two frames");
        int more = 1;
        while (more) { /* drop the rest */
            zmq_msg_t skip;
            zmq_msg_init (&skip);
            more = zmq_msg_recv (&skip, handle, 0) >= 0 && zmq_msg_more (&skip);
            zmq_msg_close (&skip);
        }
        goto done;
    }
    char err[256] = "";
    json_t *msg = lss_proto_to_json (data, len, max_message, err, sizeof err);
    if (!msg) {
        s_undecodable (tap, &topic, data, len, err);
        goto done;
    }
    /* Typed check: a known type must also satisfy its declaration. */
    lss_envelope_t env;
    lss_msg_kind_t kind;
    void *body = NULL;
    int rc = lss_proto_decode (data, len, max_message, &env, &kind, &body, err, sizeof err);
    lss_proto_body_free (kind, &body);
    if (rc != 0) {
        json_t *type = json_object_get (msg, "type");
        if (!json_is_string (type)) {
            s_undecodable (tap, &topic, data, len, err);
            json_decref (msg);
            goto done;
        }
    }
    json_t *out = json_object ();
    json_object_set_new (out, "topic",
                         s_topic_json (zmq_msg_data (&topic), zmq_msg_size (&topic)));
    static const char *const keys[] = {"type", "src", "seq", "ts"};
    for (size_t i = 0; i < 4; i++) {
        json_t *v = json_object_get (msg, keys[i]);
        json_object_set (out, keys[i], v ? v : json_null ());
    }
    json_t *ts = json_object_get (msg, "ts");
    if (json_is_integer (ts)) {
        char when[LSS_TIME_RFC3339_SIZE];
        json_object_set_new (out, "time",
                             json_string (lss_time_rfc3339 (json_integer_value (ts), when)));
    }
    json_t *trace = json_object_get (msg, "trace");
    if (trace)
        json_object_set (out, "trace", trace);
    json_object_set (out, "id", json_object_get (msg, "id"));
    if (rc != 0)
        json_object_set_new (out, "invalid", json_string (err));
    json_object_set (out, "body", json_object_get (msg, "body"));
    json_t *src = json_object_get (msg, "src"), *seq = json_object_get (msg, "seq");
    s_print (tap, out);
    if (json_is_string (src) && json_is_integer (seq))
        s_check_seq (tap, json_string_value (src), (uint64_t)json_integer_value (seq));
    json_decref (out);
    json_decref (msg);
    shown = 1;
done:
    zmq_msg_close (&topic);
    zmq_msg_close (&payload);
    return shown;
}

static void s_usage (FILE *out)
{
    fprintf (out,
             "usage: lss tap [ENDPOINT...] [--topic PREFIX]... [--count N] [--timeout S] "
             "[--pretty]\n"
             "  ENDPOINT      a publisher, e.g. tcp://127.0.0.1:7401 (default: every\n"
             "                *.pub_endpoint in the config). Several may be given.\n"
             "  --topic P     only topics starting with P (repeatable; default: all)\n"
             "  --count N     exit after N messages (exit 1 if --timeout comes first)\n"
             "  --timeout S   stop after S seconds\n"
             "  --pretty      indent the JSON\n"
             "Prints one JSON object per line: messages, seq_gap/seq_reset warnings and\n"
             "undecodable-message errors. Try: lss tap | jq 'select(.type==\"exec.end\")'\n");
}

int lss_cli_tap (int argc, char **argv, const lss_config_t *cfg)
{
    const char *topics[TAP_MAX_TOPICS];
    size_t ntopics = 0;
    int64_t count = 0, timeout_s = 0;
    s_tap_t tap = {.sources = NULL};
    static const struct option opts[] = {
        {"topic", required_argument, NULL, 't'},   {"count", required_argument, NULL, 'c'},
        {"timeout", required_argument, NULL, 'T'}, {"pretty", no_argument, NULL, 'p'},
        {"help", no_argument, NULL, 'h'},          {NULL, 0, NULL, 0}};
    optind = 0; /* reset getopt: argv here is the subcommand's */
    int c;
    char **args = argv - 1; /* getopt skips argv[0] */
    while ((c = getopt_long (argc + 1, args, "t:c:T:ph", opts, NULL)) != -1) {
        switch (c) {
        case 't':
            if (ntopics >= TAP_MAX_TOPICS) {
                fprintf (stderr, "lss tap: at most %d --topic options\n", TAP_MAX_TOPICS);
                return 2;
            }
            topics[ntopics++] = optarg;
            break;
        case 'c':
            if (lss_parse_int64 (optarg, 1, INT64_MAX, &count)) {
                fprintf (stderr, "lss tap: --count needs a positive whole number, not '%s'\n",
                         optarg);
                return 2;
            }
            break;
        case 'T':
            if (lss_parse_int64 (optarg, 1, 86400 * 365, &timeout_s)) {
                fprintf (stderr, "lss tap: --timeout needs seconds (1..31536000), not '%s'\n",
                         optarg);
                return 2;
            }
            break;
        case 'p':
            tap.pretty = true;
            break;
        case 'h':
            s_usage (stdout);
            return 0;
        default:
            s_usage (stderr);
            return 2;
        }
    }
    /* Endpoint list: arguments, else every *.pub_endpoint of the config. */
    char endpoints[TAP_MAX_ENDPOINTS * 256] = "";
    size_t nend = 0;
    for (int i = optind; i < argc + 1; i++) {
        if (nend >= TAP_MAX_ENDPOINTS || strlen (args[i]) > 250 || strchr (args[i], ',')) {
            fprintf (stderr, "lss tap: bad or too many endpoints (at most %d)\n",
                     TAP_MAX_ENDPOINTS);
            return 2;
        }
        size_t used = strlen (endpoints);
        snprintf (endpoints + used, sizeof endpoints - used, "%s>%s", nend ? "," : "", args[i]);
        nend++;
    }
    if (nend == 0) {
        json_t *all = lss_config_to_json (cfg, false);
        const char *key;
        json_t *v;
        json_object_foreach (all, key, v)
        {
            size_t klen = strlen (key);
            if (klen > 13 && strcmp (key + klen - 13, ".pub_endpoint") == 0 &&
                json_is_string (v) && json_string_length (v) > 0 && nend < TAP_MAX_ENDPOINTS) {
                size_t used = strlen (endpoints);
                snprintf (endpoints + used, sizeof endpoints - used, "%s>%s", nend ? "," : "",
                          json_string_value (v));
                nend++;
            }
        }
        json_decref (all);
    }
    if (nend == 0) {
        fprintf (stderr, "lss tap: no endpoints given and none configured\n");
        return 2;
    }
    lss_bus_opts_t bus;
    lss_bus_opts_from_config (cfg, &bus);
    zsys_set_logstream (NULL);
    zsys_init ();
    zsock_t *sub = lss_bus_socket_new (ZMQ_SUB, endpoints, &bus);
    if (!sub) {
        fprintf (stderr, "lss tap: cannot connect to %s\n", endpoints);
        return 2;
    }
    if (ntopics == 0)
        zsock_set_subscribe (sub, "");
    for (size_t i = 0; i < ntopics; i++)
        zsock_set_subscribe (sub, topics[i]);
    tap.sources = calloc (TAP_MAX_SOURCES, sizeof (s_source_t));
    if (!tap.sources) {
        zsock_destroy (&sub);
        return 1;
    }
    int64_t deadline = timeout_s ? lss_time_mono_ms () + timeout_s * 1000 : 0;
    int64_t seen = 0;
    int rc = 0;
    zpoller_t *poller = zpoller_new (sub, NULL);
    while (!zsys_interrupted) {
        int wait_ms = 1000;
        if (deadline) {
            int64_t left = deadline - lss_time_mono_ms ();
            if (left <= 0) {
                rc = count ? 1 : 0;
                if (count)
                    fprintf (stderr,
                             "lss tap: timeout after %" PRId64 " of %" PRId64 " messages\n",
                             seen, count);
                break;
            }
            wait_ms = left < wait_ms ? (int)left : wait_ms;
        }
        if (zpoller_wait (poller, wait_ms) == NULL)
            continue;
        seen += s_handle (&tap, zsock_resolve (sub), (size_t)bus.max_message);
        if (count && seen >= count)
            break;
    }
    zpoller_destroy (&poller);
    zsock_destroy (&sub);
    for (size_t i = 0; i < tap.count; i++)
        free (tap.sources[i].src);
    free (tap.sources);
    return rc;
}
