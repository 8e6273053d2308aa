/*  obj_yaml — YAML ⇄ JSON for `lss obj`, on libyaml's event API.
 *
 *  Reading types plain scalars the way Kubernetes' YAML reader (sigs.k8s.io/yaml, i.e.
 *  go-yaml v2, YAML 1.1 resolution) does for objects without a Go schema: null (~, null,
 *  empty), booleans (true/false, yes/no, on/off, y/n in lower, Title and UPPER case),
 *  integers (decimal, 0x, 0o, 0b, leading-0 octal, '_' separators; past int64 they
 *  become floats) and floats (refused at 9.2e18 and beyond: the PostgreSQL store would
 *  write them back as integers too large to read). Quoted scalars are strings; explicit tags
 * (!!str, !!int,
 *  !!float, !!bool, !!null) win. .inf and .nan are refused (JSON has neither), as are
 *  other tags, non-scalar keys and duplicate keys. The event API (not the document
 *  loader) is used because only events tell an explicit !!str from a plain scalar.
 *  Aliases are expanded by copying, counted against OBJ_YAML_MAX_NODES so that nested
 *  aliases ("billion laughs") stop early.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "lss_util.h"
#include "obj.h"

#define S_TAG_PREFIX "tag:yaml.org,2002:"

typedef struct {
    yaml_parser_t parser;
    json_t *anchors; /* anchor name -> value */
    size_t nodes;
    char *err;
    size_t err_size;
} s_reader_t;

/* ------------------------------------------------------------------ scalars */

static bool s_is_one_of (const char *text, const char *const *words)
{
    for (; *words; words++)
        if (strcmp (text, *words) == 0)
            return true;
    return false;
}

/* Removes '_' into out (out_size >= strlen+1). */
static void s_strip_underscores (const char *text, char *out)
{
    for (; *text; text++)
        if (*text != '_')
            *out++ = *text;
    *out = '\0';
}

/* 1 and *v if text is an integer in go-yaml v2's sense; 0 if not; -1 if it is one
 * but does not fit int64 (then it reads as a float). */
static int s_parse_int (const char *text, json_int_t *v)
{
    char clean[128];
    if (strlen (text) >= sizeof clean)
        return 0;
    s_strip_underscores (text, clean);
    const char *p = clean;
    bool neg = false;
    if (*p == '+' || *p == '-')
        neg = *p++ == '-';
    int base = 10;
    const char *digits = "0123456789";
    if (p[0] == '0' && (p[1] == 'x' || p[1] == 'X'))
        base = 16, p += 2, digits = "0123456789abcdefABCDEF";
    else if (p[0] == '0' && (p[1] == 'o' || p[1] == 'O'))
        base = 8, p += 2, digits = "01234567";
    else if (p[0] == '0' && (p[1] == 'b' || p[1] == 'B'))
        base = 2, p += 2, digits = "01";
    else if (p[0] == '0' && p[1])
        base = 8, p += 1, digits = "01234567";
    if (!*p || strspn (p, digits) != strlen (p))
        return 0;
    errno = 0;
    unsigned long long u = strtoull (p, NULL, base);
    if (errno == ERANGE || (!neg && u > (unsigned long long)INT64_MAX) ||
        (neg && u > (unsigned long long)INT64_MAX + 1ULL))
        return -1;
    *v = neg ? (json_int_t)(0 - u) : (json_int_t)u;
    return 1;
}

/* go-yaml v2's float syntax: [-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)? */
static bool s_parse_float (const char *text, double *v)
{
    char clean[128];
    if (strlen (text) >= sizeof clean)
        return false;
    s_strip_underscores (text, clean);
    const char *p = clean;
    if (*p == '+' || *p == '-')
        p++;
    size_t whole = strspn (p, "0123456789");
    p += whole;
    size_t frac = 0;
    if (*p == '.') {
        p++;
        frac = strspn (p, "0123456789");
        p += frac;
    }
    if (whole == 0 && frac == 0)
        return false;
    if (*p == 'e' || *p == 'E') {
        p++;
        if (*p == '+' || *p == '-')
            p++;
        size_t exp = strspn (p, "0123456789");
        if (exp == 0)
            return false;
        p += exp;
    }
    if (*p)
        return false;
    errno = 0;
    *v = strtod (clean, NULL);
    return errno == 0;
}

static const char *const s_true[] = {"true", "True", "TRUE", "yes", "Yes", "YES",
                                     "on",   "On",   "ON",   "y",   "Y",   NULL};
static const char *const s_false[] = {"false", "False", "FALSE", "no", "No", "NO",
                                      "off",   "Off",   "OFF",   "n",  "N",  NULL};
static const char *const s_null[] = {"", "~", "null", "Null", "NULL", NULL};
static const char *const s_special[] = {".inf",  ".Inf",  ".INF",  "+.inf", "+.Inf",
                                        "+.INF", "-.inf", "-.Inf", "-.INF", ".nan",
                                        ".NaN",  ".NAN",  NULL};

/* The value of a plain (untagged, unquoted) scalar; NULL with err for .inf/.nan. */
static json_t *s_resolve_plain (const char *text, size_t len, char *err, size_t err_size)
{
    if (strlen (text) != len) /* an embedded NUL: only a string can hold it */
        return json_stringn (text, len);
    if (s_is_one_of (text, s_null))
        return json_null ();
    if (s_is_one_of (text, s_true))
        return json_true ();
    if (s_is_one_of (text, s_false))
        return json_false ();
    if (s_is_one_of (text, s_special)) {
        lss_errf (err, err_size, "'%s' (infinity / not-a-number) has no JSON form; quote it",
                  text);
        return NULL;
    }
    json_int_t i;
    double d;
    int rc = s_parse_int (text, &i);
    if (rc == 1)
        return json_integer (i);
    if (s_parse_float (text, &d)) {
        /* PostgreSQL's jsonb writes a whole-valued number as plain digits, which would
         * then not read back (jansson integers are 64-bit): refuse what cannot survive */
        if (d >= 9.2e18 || d <= -9.2e18) {
            lss_errf (err, err_size, "number %.64s is too large (at most about 9.2e18)", text);
            return NULL;
        }
        return json_real (d);
    }
    if (rc == -1) { /* hex/octal past int64: not a float syntax either */
        lss_errf (err, err_size, "integer '%s' does not fit 64 bits", text);
        return NULL;
    }
    return json_stringn (text, len);
}

/* A scalar with an explicit tag (tag not NULL, not "!"). */
static json_t *s_resolve_tagged (const char *tag, const char *text, size_t len, char *err,
                                 size_t err_size)
{
    const char *t = strncmp (tag, S_TAG_PREFIX, strlen (S_TAG_PREFIX)) == 0
                        ? tag + strlen (S_TAG_PREFIX)
                        : NULL;
    if (t && strcmp (t, "str") == 0)
        return json_stringn (text, len);
    json_t *v = t ? s_resolve_plain (text, len, err, err_size) : NULL;
    if (t && v) {
        if ((strcmp (t, "int") == 0 && json_is_integer (v)) ||
            (strcmp (t, "float") == 0 && json_is_number (v)) ||
            (strcmp (t, "bool") == 0 && json_is_boolean (v)) ||
            (strcmp (t, "null") == 0 && json_is_null (v))) {
            if (strcmp (t, "float") == 0 && json_is_integer (v)) {
                json_t *r = json_real ((double)json_integer_value (v));
                json_decref (v);
                return r;
            }
            return v;
        }
        json_decref (v);
        lss_errf (err, err_size, "'%.64s' is not a valid !!%s", text, t);
        return NULL;
    }
    if (!t)
        lss_errf (err, err_size, "unsupported tag %.64s", tag);
    return NULL;
}

/* ------------------------------------------------------------------ reading */

static int s_fail_at (s_reader_t *r, const yaml_mark_t *mark, const char *what)
{
    lss_errf (r->err, r->err_size, "YAML line %zu column %zu: %s", mark->line + 1,
              mark->column + 1, what);
    return -2;
}

static int s_next (s_reader_t *r, yaml_event_t *ev)
{
    if (yaml_parser_parse (&r->parser, ev))
        return 0;
    const char *problem = r->parser.problem ? r->parser.problem : "malformed YAML";
    if (r->parser.context)
        lss_errf (r->err, r->err_size, "YAML line %zu column %zu: %s %s",
                  r->parser.problem_mark.line + 1, r->parser.problem_mark.column + 1, problem,
                  r->parser.context);
    else
        lss_errf (r->err, r->err_size, "YAML line %zu column %zu: %s",
                  r->parser.problem_mark.line + 1, r->parser.problem_mark.column + 1, problem);
    return -2;
}

static size_t s_count (const json_t *v)
{
    size_t n = 1;
    const char *key;
    json_t *item;
    size_t i;
    if (json_is_object (v))
        json_object_foreach ((json_t *)v, key, item) n += s_count (item);
    else if (json_is_array (v))
        json_array_foreach (v, i, item) n += s_count (item);
    return n;
}

static int s_value (s_reader_t *r, yaml_event_t *ev, int depth, json_t **out);

static int s_mapping (s_reader_t *r, int depth, json_t *obj)
{
    for (;;) {
        yaml_event_t kev;
        if (s_next (r, &kev))
            return -2;
        if (kev.type == YAML_MAPPING_END_EVENT) {
            yaml_event_delete (&kev);
            return 0;
        }
        yaml_mark_t mark = kev.start_mark;
        json_t *key = NULL;
        int rc = s_value (r, &kev, depth + 1, &key); /* deletes kev */
        if (rc)
            return rc;
        char text[64];
        const char *name = NULL;
        if (json_is_string (key)) {
            name = json_string_value (key);
            if (strlen (name) != json_string_length (key))
                name = NULL;
        } else if (json_is_integer (key)) { /* Kubernetes turns such keys into text */
            lss_fmt (text, sizeof text, "%" JSON_INTEGER_FORMAT, json_integer_value (key));
            name = text;
        } else if (json_is_real (key)) {
            lss_fmt (text, sizeof text, "%g", json_real_value (key));
            name = text;
        } else if (json_is_boolean (key) || json_is_null (key)) {
            lss_fmt (text, sizeof text, "%s",
                     json_is_null (key)   ? "null"
                     : json_is_true (key) ? "true"
                                          : "false");
            name = text;
        }
        if (!name) {
            json_decref (key);
            return s_fail_at (r, &mark, "mapping keys must be scalars without NUL bytes");
        }
        if (json_object_get (obj, name)) {
            char msg[160];
            lss_fmt (msg, sizeof msg, "duplicate key '%.64s'", name);
            json_decref (key);
            return s_fail_at (r, &mark, msg);
        }
        char *name_copy = strdup (name);
        json_decref (key);
        if (!name_copy)
            return s_fail_at (r, &mark, "out of memory");
        yaml_event_t vev;
        json_t *value = NULL;
        if (s_next (r, &vev) || (rc = s_value (r, &vev, depth + 1, &value)) != 0) {
            free (name_copy);
            return -2;
        }
        json_object_set_new (obj, name_copy, value);
        free (name_copy);
    }
}

static int s_sequence (s_reader_t *r, int depth, json_t *arr)
{
    for (;;) {
        yaml_event_t ev;
        if (s_next (r, &ev))
            return -2;
        if (ev.type == YAML_SEQUENCE_END_EVENT) {
            yaml_event_delete (&ev);
            return 0;
        }
        json_t *item = NULL;
        if (s_value (r, &ev, depth + 1, &item))
            return -2;
        json_array_append_new (arr, item);
    }
}

/* Converts the node starting with ev (consumed and deleted) into *out. 0 or -2. */
static int s_value (s_reader_t *r, yaml_event_t *ev, int depth, json_t **out)
{
    yaml_mark_t mark = ev->start_mark;
    char *anchor = NULL;
    json_t *v = NULL;
    int rc = 0;
    char msg[OBJ_ERR_SIZE];
    *out = NULL;
    if (depth > OBJ_YAML_MAX_DEPTH) {
        yaml_event_delete (ev);
        return s_fail_at (r, &mark, "nested too deeply");
    }
    if (++r->nodes > OBJ_YAML_MAX_NODES) {
        yaml_event_delete (ev);
        return s_fail_at (r, &mark, "too many values");
    }
    switch (ev->type) {
    case YAML_SCALAR_EVENT: {
        const char *text = (const char *)ev->data.scalar.value;
        size_t len = ev->data.scalar.length;
        const char *tag = (const char *)ev->data.scalar.tag;
        if (tag && strcmp (tag, "!") == 0)
            tag = NULL;
        bool plain = ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
        msg[0] = '\0';
        if (tag)
            v = s_resolve_tagged (tag, text, len, msg, sizeof msg);
        else if (plain)
            v = s_resolve_plain (text, len, msg, sizeof msg);
        else
            v = json_stringn (text, len);
        if (!v)
            rc = s_fail_at (r, &mark, msg[0] ? msg : "scalar is not valid UTF-8");
        if (ev->data.scalar.anchor)
            anchor = strdup ((const char *)ev->data.scalar.anchor);
        break;
    }
    case YAML_ALIAS_EVENT: {
        json_t *target = json_object_get (r->anchors, (const char *)ev->data.alias.anchor);
        if (!target) {
            lss_fmt (msg, sizeof msg, "unknown alias *%.64s",
                     (const char *)ev->data.alias.anchor);
            rc = s_fail_at (r, &mark, msg);
            break;
        }
        r->nodes += s_count (target);
        if (r->nodes > OBJ_YAML_MAX_NODES) {
            rc = s_fail_at (r, &mark, "too many values (aliases expand past the limit)");
            break;
        }
        v = json_deep_copy (target);
        break;
    }
    case YAML_SEQUENCE_START_EVENT:
        if (ev->data.sequence_start.anchor)
            anchor = strdup ((const char *)ev->data.sequence_start.anchor);
        v = json_array ();
        rc = s_sequence (r, depth, v);
        break;
    case YAML_MAPPING_START_EVENT:
        if (ev->data.mapping_start.anchor)
            anchor = strdup ((const char *)ev->data.mapping_start.anchor);
        v = json_object ();
        rc = s_mapping (r, depth, v);
        break;
    default:
        rc = s_fail_at (r, &mark, "unexpected YAML event");
        break;
    }
    yaml_event_delete (ev);
    if (rc == 0 && anchor && v)
        json_object_set (r->anchors, anchor, v);
    free (anchor);
    if (rc) {
        json_decref (v);
        return rc;
    }
    *out = v;
    return 0;
}

int obj_yaml_parse (const char *text, size_t len, json_t **docs, char *err, size_t err_size)
{
    *docs = NULL;
    if (len > OBJ_INPUT_MAX_BYTES) {
        lss_errf (err, err_size, "input is larger than %d bytes", OBJ_INPUT_MAX_BYTES);
        return -2;
    }
    s_reader_t r = {.err = err, .err_size = err_size};
    if (!yaml_parser_initialize (&r.parser)) {
        lss_errf (err, err_size, "cannot initialize the YAML parser");
        return -2;
    }
    yaml_parser_set_input_string (&r.parser, (const unsigned char *)text, len);
    json_t *out = json_array ();
    int rc = 0;
    bool done = false;
    while (!done && rc == 0) {
        yaml_event_t ev;
        if (s_next (&r, &ev)) {
            rc = -2;
            break;
        }
        switch (ev.type) {
        case YAML_STREAM_END_EVENT:
            done = true;
            yaml_event_delete (&ev);
            break;
        case YAML_DOCUMENT_START_EVENT: {
            yaml_event_delete (&ev);
            json_decref (r.anchors);
            r.anchors = json_object (); /* anchors are per document */
            yaml_event_t root_ev, end_ev;
            json_t *root = NULL;
            if (s_next (&r, &root_ev) || s_value (&r, &root_ev, 0, &root) ||
                s_next (&r, &end_ev)) {
                rc = -2;
                break;
            }
            yaml_event_delete (&end_ev);
            if (json_is_null (root)) { /* an empty document (e.g. a trailing ---) */
                json_decref (root);
                break;
            }
            if (json_array_size (out) == OBJ_YAML_MAX_DOCS) {
                json_decref (root);
                lss_errf (err, err_size, "more than %d documents", OBJ_YAML_MAX_DOCS);
                rc = -2;
                break;
            }
            json_array_append_new (out, root);
            break;
        }
        default: /* STREAM_START */
            yaml_event_delete (&ev);
            break;
        }
    }
    json_decref (r.anchors);
    yaml_parser_delete (&r.parser);
    if (rc) {
        json_decref (out);
        return rc;
    }
    *docs = out;
    return 0;
}

/* ------------------------------------------------------------------ writing */

static int s_emit_scalar (yaml_emitter_t *em, const char *text, size_t len, bool quote)
{
    yaml_event_t ev;
    yaml_scalar_event_initialize (&ev, NULL, NULL, (yaml_char_t *)text, (int)len, !quote, 1,
                                  quote ? YAML_DOUBLE_QUOTED_SCALAR_STYLE
                                        : YAML_ANY_SCALAR_STYLE);
    return yaml_emitter_emit (em, &ev) ? 0 : -1;
}

static int s_emit (yaml_emitter_t *em, const json_t *v)
{
    yaml_event_t ev;
    char num[64];
    if (json_is_object (v)) {
        yaml_mapping_start_event_initialize (&ev, NULL, NULL, 1,
                                             json_object_size (v) ? YAML_BLOCK_MAPPING_STYLE
                                                                  : YAML_FLOW_MAPPING_STYLE);
        if (!yaml_emitter_emit (em, &ev))
            return -1;
        const char *key;
        json_t *item;
        json_object_foreach ((json_t *)v, key, item)
        {
            json_t *k = json_string (key);
            int rc = s_emit (em, k);
            json_decref (k);
            if (rc || s_emit (em, item))
                return -1;
        }
        yaml_mapping_end_event_initialize (&ev);
        return yaml_emitter_emit (em, &ev) ? 0 : -1;
    }
    if (json_is_array (v)) {
        yaml_sequence_start_event_initialize (&ev, NULL, NULL, 1,
                                              json_array_size (v) ? YAML_BLOCK_SEQUENCE_STYLE
                                                                  : YAML_FLOW_SEQUENCE_STYLE);
        if (!yaml_emitter_emit (em, &ev))
            return -1;
        size_t i;
        json_t *item;
        json_array_foreach (v, i, item)
        {
            if (s_emit (em, item))
                return -1;
        }
        yaml_sequence_end_event_initialize (&ev);
        return yaml_emitter_emit (em, &ev) ? 0 : -1;
    }
    if (json_is_string (v)) {
        const char *text = json_string_value (v);
        size_t len = json_string_length (v);
        /* quote when, read back plain, it would not be this string */
        char err[64];
        json_t *back = s_resolve_plain (text, len, err, sizeof err);
        bool quote = !json_is_string (back);
        json_decref (back);
        return s_emit_scalar (em, text, len, quote);
    }
    if (json_is_integer (v))
        lss_fmt (num, sizeof num, "%" JSON_INTEGER_FORMAT, json_integer_value (v));
    else if (json_is_real (v)) {
        char *text = json_dumps (v, JSON_ENCODE_ANY);
        lss_fmt (num, sizeof num, "%s", text ? text : "0.0");
        free (text);
    } else
        lss_fmt (num, sizeof num, "%s",
                 json_is_true (v)    ? "true"
                 : json_is_false (v) ? "false"
                                     : "null");
    return s_emit_scalar (em, num, strlen (num), false);
}

char *obj_yaml_dump (const json_t *value)
{
    char *buf = NULL;
    size_t size = 0;
    FILE *f = open_memstream (&buf, &size);
    if (!f)
        return NULL;
    yaml_emitter_t em;
    yaml_event_t ev;
    int ok = yaml_emitter_initialize (&em);
    if (ok) {
        yaml_emitter_set_output_file (&em, f);
        yaml_emitter_set_unicode (&em, 1);
        yaml_emitter_set_width (&em, -1);
        yaml_stream_start_event_initialize (&ev, YAML_UTF8_ENCODING);
        ok = yaml_emitter_emit (&em, &ev);
        if (ok) {
            yaml_document_start_event_initialize (&ev, NULL, NULL, NULL, 1);
            ok = yaml_emitter_emit (&em, &ev);
        }
        ok = ok && s_emit (&em, value) == 0;
        if (ok) {
            yaml_document_end_event_initialize (&ev, 1);
            ok = yaml_emitter_emit (&em, &ev);
        }
        if (ok) {
            yaml_stream_end_event_initialize (&ev);
            ok = yaml_emitter_emit (&em, &ev);
        }
        ok = ok && yaml_emitter_flush (&em);
        yaml_emitter_delete (&em);
    }
    fclose (f);
    if (!ok) {
        free (buf);
        return NULL;
    }
    return buf;
}
