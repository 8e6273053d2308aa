/*  lss_proto_doc — renders docs/bus.md from the message declarations (lss_messages.def).
 *
 *  `make docs` writes it; test_proto fails when the checked-in file differs, so the
 *  reference can never drift from the code.
 */
#include "lss_proto.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *s_type_name (const lss_field_desc_t *f, char *buf, size_t size)
{
    switch (f->type) {
    case LSS_FT_STR:
        snprintf (buf, size, "string ≤ %u B", f->max);
        break;
    case LSS_FT_BYTES:
        snprintf (buf, size, "bytes ≤ %u B", f->max);
        break;
    case LSS_FT_INT:
        snprintf (buf, size, "int64");
        break;
    case LSS_FT_BOOL:
        snprintf (buf, size, "bool");
        break;
    case LSS_FT_STRLIST:
        snprintf (buf, size, "[string] ≤ %u", f->max);
        break;
    case LSS_FT_STRMAP:
        snprintf (buf, size, "{string: string} ≤ %u", f->max);
        break;
    case LSS_FT_JSON:
        snprintf (buf, size, "any (depth ≤ %u)", f->max);
        break;
    }
    return buf;
}

char *lss_proto_doc_markdown (void)
{
    char *text = NULL;
    size_t size = 0;
    FILE *out = open_memstream (&text, &size);
    if (!out)
        return NULL;
    fprintf (
        out,
        "# The bus: messages\n\n"
        "<!-- Generated from common/proto/lss_messages.def by `make docs`. Do not edit:\n"
        "     a unit test fails when this file and the declaration disagree. -->\n\n"
        "Every message is a msgpack map, the *envelope*:\n\n"
        "| key | type | meaning |\n|---|---|---|\n"
        "| `v` | uint | schema version, %d |\n"
        "| `type` | string ≤ %d B | message type, below |\n"
        "| `id` | string ≤ %d B | message id (replies carry it back as `ref`) |\n"
        "| `seq` | uint | per-publisher sequence number; a jump means messages were lost |\n"
        "| `src` | string ≤ %d B | sender: service/instance |\n"
        "| `ts` | int | sender's clock, epoch milliseconds |\n"
        "| `trace` | string ≤ %d B | request id carried end to end (optional) |\n"
        "| `body` | map | the fields of the type |\n\n"
        "On PUB sockets the first frame is the topic (`<kind>.<verb>.<namespace>.<name>` "
        "or `exec.<verb>.<execId>`) and the second the envelope. Decoders reject, with an "
        "error and never a crash: messages over the socket's size limit, msgpack nested "
        "deeper than %d, containers claiming more elements than bytes remain, ext types, "
        "trailing bytes, invalid UTF-8, wrong field types, missing required fields and "
        "values over their limits. Unknown body fields are ignored (a newer sender).\n\n"
        "Absent optional fields read as zero, false, empty or null.\n\n"
        "## Discovery\n\n"
        "Endpoint lists are CZMQ's: comma-separated, `@` binds, `>` connects, so one "
        "socket may reach several peers. A connecting list may also hold "
        "`dns+tcp://HOST:PORT` (common/lss_discovery.c): HOST is resolved (getaddrinfo, "
        "IPv4 and IPv6) to every address it has, each becoming `tcp://A:PORT` "
        "(`tcp://[A]:PORT`), sorted, de-duplicated, at most 64 per name and 16 names per "
        "list. On Kubernetes HOST is a headless Service, whose name resolves to one address "
        "per ready replica. The lookup is repeated every `bus.resolve_interval` (default "
        "10 s, 500 ms to 10 min) in a background thread, never in a service's loop; what "
        "changed is connected or disconnected. A failed lookup (NXDOMAIN, no ready replica "
        "yet, resolver down, no answer in 5 s) is logged, keeps the addresses found before "
        "and is tried again after 1 s. A bad dns+ entry (host characters, label or name "
        "length, port outside 1..65535, `@`, a scheme other than tcp) stops the service "
        "at start with a message naming the key. Lists without `dns+` work as before and "
        "cost nothing extra.\n\n"
        "Consumers: lss-api's executor bridge (one DEALER per address; new executions go "
        "to the one with the fewest in flight; an address that leaves gets no new work, "
        "keeps its executions until they end or its 5 s silence fails them, then is "
        "closed), lss-api's watcher SUB and warm-pool probe, the work-queue clients of "
        "lss-reconciler and lss-warmpool (one DEALER, requests round-robin; standbys answer "
        "`not_leader`), and lss-warmpool's preload client (one address picked at random per "
        "job). The test hook `lss_discovery_set_resolver` is code only: no environment "
        "variable can redirect discovery.\n\n",
        LSS_PROTO_VERSION, LSS_PROTO_TYPE_MAX, LSS_PROTO_ID_MAX, LSS_PROTO_SRC_MAX,
        LSS_PROTO_TRACE_MAX, LSS_PROTO_MAX_DEPTH);
    for (int k = LSS_MSG_NONE + 1; k < LSS_MSG_COUNT; k++) {
        const lss_msg_desc_t *d = lss_proto_desc ((lss_msg_kind_t)k);
        fprintf (out, "## `%s`\n\n%s\n\n", d->pattern, d->doc);
        fprintf (out, "| field | type | required | meaning |\n|---|---|---|---|\n");
        for (const lss_field_desc_t *f = d->fields; f->name; f++) {
            char buf[64];
            fprintf (out, "| `%s` | %s | %s | %s |\n", f->name,
                     s_type_name (f, buf, sizeof buf), f->required ? "yes" : "", f->doc);
        }
        fprintf (out, "\n");
    }
    fclose (out);
    return text;
}
