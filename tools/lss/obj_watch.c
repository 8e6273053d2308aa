/*  lss obj watch / wait — follow a kind's events, or wait for one object to reach a
 *  condition.
 *
 *  Both run one loop over a store watch: poll its descriptor (at most a second, since
 *  readiness is only a hint), drain lss_store_watch_next, reopen from the last
 *  resourceVersion when the connection is lost (bounded), stop on GONE. wait reads the
 *  store's resourceVersion first, then the object, then watches from that
 *  resourceVersion: a change between the read and the watch cannot be missed.
 */
#include <getopt.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lss_obj.h"
#include "lss_util.h"
#include "obj.h"

#define S_POLL_MS        1000
#define S_REOPEN_MAX     5
#define S_TIMEOUT_MAX_S  31536000
#define S_WAIT_DEFAULT_S 30
#define S_VALUE_MAX      256

/* Called per event; returns 1 to stop (done), 0 to go on. */
typedef int (s_event_fn) (lss_store_event_t *ev, void *arg);

/* Runs a watch from from_rv until fn says stop (0), the deadline passes (1; deadline_ms
 * 0 = none) or the watch fails (-1, printed). */
static int s_loop (lss_store_t *st, const char *verb, const char *kind, const char *ns,
                   const char *from_rv, int64_t deadline_ms, s_event_fn *fn, void *arg)
{
    char err[LSS_STORE_ERR_SIZE] = "";
    char rv[64];
    lss_fmt (rv, sizeof rv, "%s", from_rv ? from_rv : "");
    int code = 0, reopens = 0;
    lss_store_watch_t *w = lss_store_watch_new (st, kind, ns, rv, &code, err, sizeof err);
    if (!w) {
        fprintf (stderr, "lss obj %s: cannot watch: %s\n", verb, err);
        return -1;
    }
    int result = 1;
    for (;;) {
        lss_store_event_t ev;
        int rc;
        while ((rc = lss_store_watch_next (w, &ev)) == 1) {
            int stop = fn (&ev, arg);
            json_decref (ev.object);
            if (stop) {
                result = 0;
                goto done;
            }
        }
        if (rc == LSS_STORE_GONE) {
            fprintf (stderr,
                     "lss obj %s: events after resourceVersion %s were compacted: list again "
                     "and watch from the list's resourceVersion\n",
                     verb, lss_store_watch_rv (w));
            result = -1;
            goto done;
        }
        if (rc == LSS_STORE_UNAVAILABLE) {
            lss_fmt (rv, sizeof rv, "%s", lss_store_watch_rv (w));
            lss_store_watch_destroy (&w);
            if (++reopens > S_REOPEN_MAX ||
                !(w = lss_store_watch_new (st, kind, ns, rv, &code, err, sizeof err))) {
                fprintf (stderr, "lss obj %s: watch lost: %s\n", verb,
                         err[0] ? err : "the store is unavailable");
                result = -1;
                goto done;
            }
            continue;
        }
        int wait_ms = S_POLL_MS;
        if (deadline_ms) {
            int64_t left = deadline_ms - lss_time_mono_ms ();
            if (left <= 0)
                goto done; /* result 1: timed out */
            if (left < wait_ms)
                wait_ms = (int)left;
        }
        struct pollfd pfd = {lss_store_watch_fd (w), POLLIN, 0};
        poll (&pfd, 1, wait_ms);
    }
done:
    lss_store_watch_destroy (&w);
    return result;
}

static int s_timeout_arg (const char *verb, const char *text, int64_t *out)
{
    if (lss_parse_int64 (text, 0, S_TIMEOUT_MAX_S, out) == 0)
        return 0;
    fprintf (stderr, "lss obj %s: --timeout needs seconds (0..%d), not '%s'\n", verb,
             S_TIMEOUT_MAX_S, text);
    return -1;
}

/* ------------------------------------------------------------------ watch */

typedef struct {
    int64_t count, seen;
} s_watch_t;

static int s_print_event (lss_store_event_t *ev, void *arg)
{
    s_watch_t *self = arg;
    json_t *line = json_pack ("{s:s, s:O}", "type", lss_store_event_type_name (ev->type),
                              "object", ev->object);
    obj_print_json (line, false);
    json_decref (line);
    self->seen++;
    return self->count && self->seen >= self->count;
}

int obj_watch (int argc, char **argv, obj_ctx_t *ctx)
{
    static const struct option opts[] = {
        {"namespace", required_argument, NULL, 'n'}, {"all-namespaces", no_argument, NULL, 'A'},
        {"from", required_argument, NULL, 'r'},      {"count", required_argument, NULL, 'c'},
        {"timeout", required_argument, NULL, 't'},   {NULL, 0, NULL, 0}};
    const char *ns_flag = NULL, *from = NULL;
    bool all = false;
    int64_t timeout_s = 0;
    s_watch_t self = {0, 0};
    int c;
    optind = 0;
    while ((c = getopt_long (argc + 1, argv - 1, "n:A", opts, NULL)) != -1) {
        switch (c) {
        case 'n':
            ns_flag = optarg;
            break;
        case 'A':
            all = true;
            break;
        case 'r':
            from = optarg;
            break;
        case 'c':
            if (lss_parse_int64 (optarg, 1, INT64_MAX, &self.count)) {
                fprintf (stderr,
                         "lss obj watch: --count needs a positive whole number, not "
                         "'%s'\n",
                         optarg);
                return OBJ_EXIT_USAGE;
            }
            break;
        case 't':
            if (s_timeout_arg ("watch", optarg, &timeout_s))
                return OBJ_EXIT_USAGE;
            break;
        default:
            return OBJ_EXIT_USAGE;
        }
    }
    int rest = argc - (optind - 1);
    char **pos = argv + (optind - 1);
    if (rest != 1) {
        fprintf (stderr, "usage: lss obj watch KIND [-n NS|-A] [--from RV] [--count N] "
                         "[--timeout S]\n");
        return OBJ_EXIT_USAGE;
    }
    const char *kind = obj_kind_resolve (pos[0]);
    if (!kind) {
        fprintf (stderr, "lss obj watch: unknown kind \"%s\"\n", pos[0]);
        return OBJ_EXIT_USAGE;
    }
    const char *ns = obj_namespace ("watch", kind, all ? NULL : ns_flag);
    if (!ns)
        return OBJ_EXIT_USAGE;
    lss_store_t *st = obj_store_open (ctx);
    if (!st)
        return OBJ_EXIT_FAIL;
    int64_t deadline = timeout_s ? lss_time_mono_ms () + timeout_s * 1000 : 0;
    int rc = s_loop (st, "watch", kind, all ? NULL : ns, from, deadline, s_print_event, &self);
    lss_store_destroy (&st);
    if (rc < 0)
        return OBJ_EXIT_FAIL;
    if (rc == 1 && self.count) {
        fprintf (stderr, "lss obj watch: timed out after %llds with %lld of %lld events\n",
                 (long long)timeout_s, (long long)self.seen, (long long)self.count);
        return OBJ_EXIT_FAIL;
    }
    return OBJ_EXIT_OK;
}

/* ------------------------------------------------------------------ wait */

typedef struct {
    const char *name;
    bool for_delete;
    char path[S_VALUE_MAX]; /* dotted, without the leading '.' */
    const char *want;
    bool met;
    char last[S_VALUE_MAX]; /* what the path held last time, for the timeout message */
} s_wait_t;

/* The text a value compares as: strings as they are, others as compact JSON. */
static void s_value_text (const json_t *v, char *out, size_t size)
{
    if (!v) {
        lss_fmt (out, size, "<absent>");
        return;
    }
    if (json_is_string (v)) {
        lss_fmt (out, size, "%s", json_string_value (v));
        return;
    }
    char *text = json_dumps (v, JSON_COMPACT | JSON_ENCODE_ANY);
    lss_fmt (out, size, "%s", text ? text : "?");
    free (text);
}

static void s_check (s_wait_t *self, const json_t *obj)
{
    if (self->for_delete) {
        lss_fmt (self->last, sizeof self->last, "exists");
        return;
    }
    s_value_text (lss_obj_at (obj, self->path), self->last, sizeof self->last);
    self->met = strcmp (self->last, self->want) == 0;
}

static int s_wait_event (lss_store_event_t *ev, void *arg)
{
    s_wait_t *self = arg;
    const char *name = lss_obj_str (ev->object, "metadata.name");
    if (!name || strcmp (name, self->name) != 0)
        return 0;
    if (ev->type == LSS_STORE_DELETED) {
        self->met = self->for_delete;
        lss_fmt (self->last, sizeof self->last, "<deleted>");
    } else
        s_check (self, ev->object);
    return self->met;
}

/* "delete" or "jsonpath=.a.b=VALUE" ("jsonpath={.a.b}=VALUE" too). 0 or -1. */
static int s_parse_for (const char *text, s_wait_t *self)
{
    if (strcmp (text, "delete") == 0) {
        self->for_delete = true;
        return 0;
    }
    if (strncmp (text, "jsonpath=", 9) != 0)
        return -1;
    const char *p = text + 9;
    bool braces = *p == '{';
    if (braces)
        p++;
    if (*p != '.' || !p[1])
        return -1;
    p++;
    const char *end = strchr (p, braces ? '}' : '=');
    if (!end || end == p || (size_t)(end - p) >= sizeof self->path)
        return -1;
    memcpy (self->path, p, (size_t)(end - p));
    self->path[end - p] = '\0';
    if (braces)
        end++;
    if (*end != '=')
        return -1;
    self->want = end + 1;
    if (strstr (self->path, "..") || self->path[strlen (self->path) - 1] == '.')
        return -1;
    return 0;
}

int obj_wait (int argc, char **argv, obj_ctx_t *ctx)
{
    static const struct option opts[] = {{"namespace", required_argument, NULL, 'n'},
                                         {"for", required_argument, NULL, 'f'},
                                         {"timeout", required_argument, NULL, 't'},
                                         {NULL, 0, NULL, 0}};
    const char *ns_flag = NULL, *cond = NULL;
    int64_t timeout_s = S_WAIT_DEFAULT_S;
    s_wait_t self;
    memset (&self, 0, sizeof self);
    int c;
    optind = 0;
    while ((c = getopt_long (argc + 1, argv - 1, "n:", opts, NULL)) != -1) {
        switch (c) {
        case 'n':
            ns_flag = optarg;
            break;
        case 'f':
            cond = optarg;
            break;
        case 't':
            if (s_timeout_arg ("wait", optarg, &timeout_s))
                return OBJ_EXIT_USAGE;
            break;
        default:
            return OBJ_EXIT_USAGE;
        }
    }
    int rest = argc - (optind - 1);
    char **pos = argv + (optind - 1);
    if (rest != 2 || !cond) {
        fprintf (stderr,
                 "usage: lss obj wait KIND NAME [-n NS] --for jsonpath=.a.b=VALUE|delete "
                 "[--timeout S]\n");
        return OBJ_EXIT_USAGE;
    }
    if (s_parse_for (cond, &self)) {
        fprintf (stderr, "lss obj wait: --for is 'jsonpath=.a.b=VALUE' or 'delete', not '%s'\n",
                 cond);
        return OBJ_EXIT_USAGE;
    }
    const char *kind = obj_kind_resolve (pos[0]);
    if (!kind) {
        fprintf (stderr, "lss obj wait: unknown kind \"%s\"\n", pos[0]);
        return OBJ_EXIT_USAGE;
    }
    const char *ns = obj_namespace ("wait", kind, ns_flag);
    if (!ns)
        return OBJ_EXIT_USAGE;
    self.name = pos[1];
    int64_t deadline = lss_time_mono_ms () + timeout_s * 1000;
    lss_store_t *st = obj_store_open (ctx);
    if (!st)
        return OBJ_EXIT_FAIL;
    char err[LSS_STORE_ERR_SIZE] = "", rv[64] = "";
    json_t *obj = NULL;
    int rc = lss_store_current_rv (st, rv, sizeof rv, err, sizeof err);
    if (rc == LSS_STORE_OK)
        rc = lss_store_get (st, kind, ns, self.name, &obj, err, sizeof err);
    int exit_code = OBJ_EXIT_FAIL;
    if (rc == LSS_STORE_NOT_FOUND) {
        self.met = self.for_delete;
        lss_fmt (self.last, sizeof self.last, "<not found>");
        rc = LSS_STORE_OK;
    } else if (rc == LSS_STORE_OK)
        s_check (&self, obj);
    json_decref (obj);
    if (rc != LSS_STORE_OK)
        fprintf (stderr, "lss obj wait: %s\n", err);
    else if (!self.met) {
        int lrc = s_loop (st, "wait", kind, ns, rv, deadline, s_wait_event, &self);
        if (lrc == 1) {
            if (self.for_delete)
                fprintf (stderr,
                         "lss obj wait: timed out after %llds waiting for %s/%s to be "
                         "deleted (it still exists)\n",
                         (long long)timeout_s, obj_kind_lower (kind), self.name);
            else
                fprintf (stderr,
                         "lss obj wait: timed out after %llds waiting for %s/%s: .%s is "
                         "\"%s\", want \"%s\"\n",
                         (long long)timeout_s, obj_kind_lower (kind), self.name, self.path,
                         self.last, self.want);
        }
    }
    if (self.met) {
        printf ("%s/%s condition met\n", obj_kind_lower (kind), self.name);
        exit_code = OBJ_EXIT_OK;
    }
    lss_store_destroy (&st);
    return exit_code;
}
