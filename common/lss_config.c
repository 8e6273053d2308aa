/*  lss_config — typed configuration from one YAML file plus LSS_* overrides. See lss_config.h.
 *
 *  The spec table is checked once in lss_config_new (key syntax, unique keys and
 *  environment names, no key that is also a section, parseable in-range defaults).
 *  lss_config_load works on a copy of the values and commits only when the file and the
 *  whole environment were accepted, so a failed load leaves the config as it was.
 *  The file is read whole (at most S_FILE_MAX bytes) and walked with libyaml's event API:
 *  mappings nest (at most S_DEPTH_MAX deep) and flatten to dotted keys, scalars are the
 *  leaves; sequences, anchors, aliases, tags and multiple documents are refused.
 *  Value syntax (one parser for defaults, file, environment and lss_config_set):
 *    INT       decimal int64 with optional sign; nothing else ("1e3", "0x10", " 5" fail)
 *    BOOL      true/false/yes/no/on/off/1/0, case-insensitive
 *    SIZE      whole bytes with an optional suffix B, K, Ki, M, Mi, G, Gi (K = 1000,
 *              Ki = 1024), the multiplied ones optionally followed by B ("4MiB", "2KB")
 *    DURATION  whole milliseconds with an optional suffix ms, s, m, h; bare = ms.
 *              Fractions are refused ("1.5s": write "1500ms"), so no rounding exists.
 *    STR       any text without NUL bytes, valid UTF-8
 *  Bounds: INT, SIZE and DURATION values must lie in [min, max] after conversion, unless
 *  min == max == 0, which means unbounded. A STR's byte length must lie in [min, max]
 *  when max > 0. In YAML, a null scalar (empty, ~, null) is "" for a STR and an error
 *  for the other types.
 *  Errors quote the offending value, except for SECRET keys (shown as '***').
 *  Lookup is linear: tables are small (< 200 keys) and getters run at start-up.
 */
#include "lss_config.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/types.h>
#include <yaml.h>

#include "lss_log.h"
#include "lss_util.h"

extern char **environ;

#define S_KEY_MAX          128                   /* longest dotted key */
#define S_ENV_MAX          (4 + S_KEY_MAX)       /* longest environment name: "LSS_" + key */
#define S_FILE_MAX         ((size_t)1024 * 1024) /* largest config file */
#define S_DEPTH_MAX        16                    /* deepest mapping nesting in the file */
#define S_PROBLEM_MAX      192                   /* one value error, before key and source */
#define S_SUGGEST_DISTANCE 2                     /* "did you mean" up to this edit distance */

typedef struct {
    char *str;   /* STR (owned) */
    int64_t num; /* INT, SIZE, DURATION */
    bool flag;   /* BOOL */
} s_value_t;

struct _lss_config_t {
    const lss_config_spec_t *spec; /* borrowed */
    size_t count;
    s_value_t *values; /* count entries */
    char (*env_names)[S_ENV_MAX + 1];
};

/* ------------------------------------------------------------------ value parsing */

/*  Parses a run of decimal digits at *p (at least one) into *out, advancing *p.
 *  Returns 0, -1 if there is no digit, -2 if the number does not fit an int64. */
static int s_digits (const char **p, uint64_t *out)
{
    const char *s = *p;
    uint64_t v = 0;
    if (*s < '0' || *s > '9')
        return -1;
    for (; *s >= '0' && *s <= '9'; s++) {
        uint64_t d = (uint64_t)(*s - '0');
        if (v > ((uint64_t)INT64_MAX - d) / 10)
            return -2;
        v = v * 10 + d;
    }
    *p = s;
    *out = v;
    return 0;
}

typedef struct {
    const char *suffix;
    int64_t mult;
} s_unit_t;

static const s_unit_t s_size_units[] = {
    {"", 1},
    {"B", 1},
    {"K", 1000},
    {"KB", 1000},
    {"Ki", 1024},
    {"KiB", 1024},
    {"M", 1000 * 1000},
    {"MB", 1000 * 1000},
    {"Mi", 1024 * 1024},
    {"MiB", 1024 * 1024},
    {"G", 1000 * 1000 * 1000},
    {"GB", 1000 * 1000 * 1000},
    {"Gi", 1024 * 1024 * 1024},
    {"GiB", 1024 * 1024 * 1024},
    {NULL, 0},
};

static const s_unit_t s_duration_units[] = {
    {"", 1}, {"ms", 1}, {"s", 1000}, {"m", 60 * 1000}, {"h", 60 * 60 * 1000}, {NULL, 0},
};

/*  Parses "<digits><suffix>" with a suffix from units. Returns 0 or -1 with problem. */
static int s_parse_unit (const char *text, const char *shown, const s_unit_t *units,
                         const char *what, const char *accepted, int64_t *out, char *problem,
                         size_t size)
{
    const char *p = text;
    uint64_t n;
    int rc = s_digits (&p, &n);
    if (rc == -2) {
        lss_errf (problem, size, "'%s' is too large", shown);
        return -1;
    }
    if (rc < 0) {
        lss_errf (problem, size, "'%s' is not a %s (a whole number with suffix %s)", shown,
                  what, accepted);
        return -1;
    }
    if (*p == '.' || *p == ',') {
        lss_errf (problem, size, "'%s': fractions are not accepted; use a smaller unit", shown);
        return -1;
    }
    for (const s_unit_t *u = units; u->suffix; u++)
        if (strcmp (p, u->suffix) == 0) {
            if (n > (uint64_t)(INT64_MAX / u->mult)) {
                lss_errf (problem, size, "'%s' is too large", shown);
                return -1;
            }
            *out = (int64_t)n * u->mult;
            return 0;
        }
    lss_errf (problem, size, "'%s' has an unknown suffix '%s' (accepted: %s)", shown,
              shown == text ? p : "***", accepted);
    return -1;
}

static int s_parse_bool (const char *text, bool *out)
{
    static const char *const yes[] = {"true", "yes", "on", "1"};
    static const char *const no[] = {"false", "no", "off", "0"};
    for (size_t i = 0; i < 4; i++) {
        if (strcasecmp (text, yes[i]) == 0) {
            *out = true;
            return 0;
        }
        if (strcasecmp (text, no[i]) == 0) {
            *out = false;
            return 0;
        }
    }
    return -1;
}

static const char *s_type_name (lss_config_type_t type)
{
    switch (type) {
    case LSS_CFG_STR:
        return "string";
    case LSS_CFG_INT:
        return "integer";
    case LSS_CFG_BOOL:
        return "boolean";
    case LSS_CFG_SIZE:
        return "size";
    case LSS_CFG_DURATION:
        return "duration";
    }
    return "?";
}

/*  Parses text (len bytes; may hold NULs, which are refused) as spec's type and checks
 *  its bounds. On success fills *out (a STR is freshly allocated) and returns 0; else -1
 *  with a problem description (naming neither key nor source). */
static int s_parse_value (const lss_config_spec_t *spec, const char *text, size_t len,
                          s_value_t *out, char *problem, size_t size)
{
    /* Error messages quote the value, except a secret's. */
    const char *shown = (spec->flags & LSS_CFG_SECRET) ? "***" : text;
    if (memchr (text, '\0', len)) {
        lss_errf (problem, size, "value contains a NUL byte");
        return -1;
    }
    int64_t num = 0;
    switch (spec->type) {
    case LSS_CFG_STR: {
        if (spec->max > 0 && ((int64_t)len < spec->min || (int64_t)len > spec->max)) {
            lss_errf (problem, size, "string of %zu bytes; length must be %lld to %lld", len,
                      (long long)spec->min, (long long)spec->max);
            return -1;
        }
        json_t *utf8 = json_stringn (text, len); /* jansson validates UTF-8 */
        if (!utf8) {
            lss_errf (problem, size, "value is not valid UTF-8");
            return -1;
        }
        json_decref (utf8);
        char *copy = strndup (text, len);
        if (!copy) {
            lss_errf (problem, size, "out of memory");
            return -1;
        }
        *out = (s_value_t){.str = copy};
        return 0;
    }
    case LSS_CFG_BOOL: {
        bool flag;
        if (s_parse_bool (text, &flag)) {
            lss_errf (problem, size, "'%s' is not a boolean (true/false, yes/no, on/off, 1/0)",
                      shown);
            return -1;
        }
        *out = (s_value_t){.flag = flag};
        return 0;
    }
    case LSS_CFG_INT: {
        const char *p = text;
        bool negative = *p == '-';
        if (*p == '-' || *p == '+')
            p++;
        uint64_t n;
        int rc = s_digits (&p, &n);
        if (rc == -2 && !(negative && strcmp (p, "9223372036854775808") == 0)) {
            lss_errf (problem, size, "'%s' is out of the integer range", shown);
            return -1;
        }
        if (rc == -2)
            num = INT64_MIN;
        else if (rc < 0 || *p) {
            lss_errf (problem, size, "'%s' is not an integer", shown);
            return -1;
        } else
            num = negative ? -(int64_t)n : (int64_t)n;
        break;
    }
    case LSS_CFG_SIZE:
        if (s_parse_unit (text, shown, s_size_units, "size", "B, K, Ki, M, Mi, G, Gi", &num,
                          problem, size))
            return -1;
        break;
    case LSS_CFG_DURATION:
        if (s_parse_unit (text, shown, s_duration_units, "duration", "ms, s, m, h; bare = ms",
                          &num, problem, size))
            return -1;
        break;
    default:
        lss_errf (problem, size, "unknown type %d", (int)spec->type);
        return -1;
    }
    if (!(spec->min == 0 && spec->max == 0) && (num < spec->min || num > spec->max)) {
        const char *unit = spec->type == LSS_CFG_SIZE       ? " bytes"
                           : spec->type == LSS_CFG_DURATION ? " ms"
                                                            : "";
        char value[32] = "value";
        if (shown == text)
            snprintf (value, sizeof value, "%lld%s", (long long)num, unit);
        lss_errf (problem, size, "%s is out of range (must be %lld to %lld%s)", value,
                  (long long)spec->min, (long long)spec->max, unit);
        return -1;
    }
    *out = (s_value_t){.num = num};
    return 0;
}

/* ------------------------------------------------------------------ lookup */

static ssize_t s_find (const lss_config_t *self, const char *key, size_t len)
{
    for (size_t i = 0; i < self->count; i++)
        if (strlen (self->spec[i].key) == len && memcmp (self->spec[i].key, key, len) == 0)
            return (ssize_t)i;
    return -1;
}

static ssize_t s_find_env (const lss_config_t *self, const char *name)
{
    for (size_t i = 0; i < self->count; i++)
        if (strcmp (self->env_names[i], name) == 0)
            return (ssize_t)i;
    return -1;
}

/*  True if some key lies under section + "." (so section is not a key but a mapping). */
static bool s_is_section (const lss_config_t *self, const char *section)
{
    size_t len = strlen (section);
    for (size_t i = 0; i < self->count; i++)
        if (strncmp (self->spec[i].key, section, len) == 0 && self->spec[i].key[len] == '.')
            return true;
    return false;
}

/*  Levenshtein distance of two strings of at most S_ENV_MAX bytes (longer: "far"). */
static size_t s_distance (const char *a, const char *b)
{
    size_t la = strlen (a), lb = strlen (b);
    if (la > S_ENV_MAX || lb > S_ENV_MAX)
        return SIZE_MAX;
    size_t row[S_ENV_MAX + 1];
    for (size_t j = 0; j <= lb; j++)
        row[j] = j;
    for (size_t i = 1; i <= la; i++) {
        size_t diag = row[0];
        row[0] = i;
        for (size_t j = 1; j <= lb; j++) {
            size_t up = row[j];
            size_t best = diag + (a[i - 1] != b[j - 1]);
            if (up + 1 < best)
                best = up + 1;
            if (row[j - 1] + 1 < best)
                best = row[j - 1] + 1;
            row[j] = best;
            diag = up;
        }
    }
    return row[lb];
}

/*  Writes "; did you mean 'x'?" into out when a name (key or env name) is close to text,
 *  else "". */
static void s_suggest (const lss_config_t *self, const char *text, bool env, char *out,
                       size_t size)
{
    out[0] = '\0';
    size_t best = S_SUGGEST_DISTANCE + 1;
    const char *name = NULL;
    for (size_t i = 0; i < self->count; i++) {
        const char *candidate = env ? self->env_names[i] : self->spec[i].key;
        size_t d = s_distance (text, candidate);
        if (d < best) {
            best = d;
            name = candidate;
        }
    }
    if (name)
        snprintf (out, size, "; did you mean '%s'?", name);
}

/* ------------------------------------------------------------------ values */

static void s_values_free (s_value_t **values_p, size_t count)
{
    if (!*values_p)
        return;
    for (size_t i = 0; i < count; i++)
        free ((*values_p)[i].str);
    free (*values_p);
    *values_p = NULL;
}

static s_value_t *s_values_dup (const lss_config_t *self)
{
    s_value_t *copy = calloc (self->count ? self->count : 1, sizeof *copy);
    if (!copy)
        return NULL;
    for (size_t i = 0; i < self->count; i++) {
        copy[i] = self->values[i];
        if (self->values[i].str && !(copy[i].str = strdup (self->values[i].str))) {
            s_values_free (&copy, i);
            return NULL;
        }
    }
    return copy;
}

/*  Parses text into values[i]; errors read "<key>: <problem> (<source>)". */
static int s_assign (const lss_config_t *self, s_value_t *values, size_t i, const char *text,
                     size_t len, const char *source, char *err, size_t err_size)
{
    char problem[S_PROBLEM_MAX];
    s_value_t value;
    if (s_parse_value (&self->spec[i], text, len, &value, problem, sizeof problem)) {
        lss_errf (err, err_size, "%s: %s (%s)", self->spec[i].key, problem, source);
        return -1;
    }
    free (values[i].str);
    values[i] = value;
    return 0;
}

/* ------------------------------------------------------------------ YAML file */

typedef struct {
    const lss_config_t *self;
    s_value_t *values;
    bool *seen; /* key already set by this file */
    const char *path;
    char *err;
    size_t err_size;
    char key[S_KEY_MAX + 1];        /* dotted path of the current key */
    size_t prefix[S_DEPTH_MAX + 1]; /* key length at each open mapping */
    int depth;                      /* open mappings */
    bool want_key;                  /* next scalar in the current mapping is a key */
} s_yaml_t;

static bool s_is_null (const yaml_event_t *ev)
{
    const char *v = (const char *)ev->data.scalar.value;
    return ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE &&
           (ev->data.scalar.length == 0 || strcmp (v, "~") == 0 || strcmp (v, "null") == 0 ||
            strcmp (v, "Null") == 0 || strcmp (v, "NULL") == 0);
}

/*  Appends a key scalar to the path of the current mapping. */
static int s_yaml_key (s_yaml_t *y, const yaml_event_t *ev, size_t line)
{
    const char *text = (const char *)ev->data.scalar.value;
    size_t len = ev->data.scalar.length;
    size_t at = y->prefix[y->depth - 1];
    if (len == 0 || memchr (text, '\0', len)) {
        lss_errf (y->err, y->err_size, "empty or invalid key under '%s' (%s:%zu)",
                  at ? y->key : "(top level)", y->path, line);
        return -1;
    }
    if (at + (at ? 1 : 0) + len > S_KEY_MAX) {
        lss_errf (y->err, y->err_size, "key '%.*s%s%.*s' is longer than %d bytes (%s:%zu)",
                  (int)at, y->key, at ? "." : "", (int)(len > 64 ? 64 : len), text, S_KEY_MAX,
                  y->path, line);
        return -1;
    }
    if (at)
        y->key[at++] = '.';
    memcpy (y->key + at, text, len);
    y->key[at + len] = '\0';
    y->want_key = false;
    return 0;
}

/*  Sets the current key from a scalar value. */
static int s_yaml_leaf (s_yaml_t *y, const yaml_event_t *ev, size_t line)
{
    char source[PATH_MAX + 32];
    snprintf (source, sizeof source, "%s:%zu", y->path, line);
    ssize_t i = s_find (y->self, y->key, strlen (y->key));
    if (i < 0) {
        if (s_is_section (y->self, y->key)) {
            lss_errf (y->err, y->err_size,
                      "'%s' is a section and takes a mapping, not a value (%s)", y->key,
                      source);
            return -1;
        }
        char hint[S_KEY_MAX + 32];
        s_suggest (y->self, y->key, false, hint, sizeof hint);
        lss_errf (y->err, y->err_size, "unknown key '%s' (%s)%s", y->key, source, hint);
        return -1;
    }
    if (y->seen[i]) {
        lss_errf (y->err, y->err_size, "duplicate key '%s' (%s)", y->key, source);
        return -1;
    }
    y->seen[i] = true;
    const char *text = (const char *)ev->data.scalar.value;
    size_t len = ev->data.scalar.length;
    if (s_is_null (ev)) {
        if (y->self->spec[i].type != LSS_CFG_STR) {
            lss_errf (y->err, y->err_size, "%s: no value given; a %s is required (%s)", y->key,
                      s_type_name (y->self->spec[i].type), source);
            return -1;
        }
        text = "";
        len = 0;
    }
    if (s_assign (y->self, y->values, (size_t)i, text, len, source, y->err, y->err_size))
        return -1;
    y->key[y->prefix[y->depth - 1]] = '\0';
    y->want_key = true;
    return 0;
}

/*  Handles one event; *done is set at the end of the stream. Returns 0 or -1. */
static int s_yaml_event (s_yaml_t *y, const yaml_event_t *ev, int *documents, bool *done)
{
    size_t line = ev->start_mark.line + 1;
    const char *where = y->key[0] ? y->key : "(top level)";
    switch (ev->type) {
    case YAML_STREAM_START_EVENT:
    case YAML_DOCUMENT_END_EVENT:
    case YAML_NO_EVENT:
        return 0;
    case YAML_STREAM_END_EVENT:
        *done = true;
        return 0;
    case YAML_DOCUMENT_START_EVENT:
        if (++*documents > 1) {
            lss_errf (y->err, y->err_size, "only one YAML document is allowed (%s:%zu)",
                      y->path, line);
            return -1;
        }
        return 0;
    case YAML_ALIAS_EVENT:
        lss_errf (y->err, y->err_size, "aliases are not allowed, at '%s' (%s:%zu)", where,
                  y->path, line);
        return -1;
    case YAML_SEQUENCE_START_EVENT:
        if (y->depth == 0)
            lss_errf (y->err, y->err_size,
                      "top level must be a mapping, not a sequence (%s:%zu)", y->path, line);
        else if (y->want_key)
            lss_errf (y->err, y->err_size, "keys must be scalars, under '%s' (%s:%zu)", where,
                      y->path, line);
        else
            lss_errf (y->err, y->err_size,
                      "'%s' is a sequence; only scalars and mappings are allowed (%s:%zu)",
                      y->key, y->path, line);
        return -1;
    case YAML_MAPPING_START_EVENT:
        if (ev->data.mapping_start.anchor || ev->data.mapping_start.tag) {
            lss_errf (y->err, y->err_size, "anchors and tags are not allowed, at '%s' (%s:%zu)",
                      where, y->path, line);
            return -1;
        }
        if (y->depth == 0) {
            y->prefix[0] = 0;
            y->key[0] = '\0';
            y->depth = 1;
            y->want_key = true;
            return 0;
        }
        if (y->want_key) {
            lss_errf (y->err, y->err_size, "keys must be scalars, under '%s' (%s:%zu)", where,
                      y->path, line);
            return -1;
        }
        if (y->depth >= S_DEPTH_MAX) {
            lss_errf (y->err, y->err_size, "'%s' nests deeper than %d mappings (%s:%zu)",
                      y->key, S_DEPTH_MAX, y->path, line);
            return -1;
        }
        ssize_t leaf = s_find (y->self, y->key, strlen (y->key));
        if (leaf >= 0) {
            lss_errf (y->err, y->err_size,
                      "%s: takes a value of type %s, not a mapping (%s:%zu)", y->key,
                      s_type_name (y->self->spec[leaf].type), y->path, line);
            return -1;
        }
        y->prefix[y->depth++] = strlen (y->key);
        y->want_key = true;
        return 0;
    case YAML_MAPPING_END_EVENT:
        y->depth--;
        if (y->depth > 0) {
            y->key[y->prefix[y->depth - 1]] = '\0';
            y->want_key = true;
        }
        return 0;
    case YAML_SEQUENCE_END_EVENT:
        return 0; /* unreachable: sequences are refused at their start */
    case YAML_SCALAR_EVENT:
        if (ev->data.scalar.anchor || ev->data.scalar.tag) {
            lss_errf (y->err, y->err_size, "anchors and tags are not allowed, at '%s' (%s:%zu)",
                      where, y->path, line);
            return -1;
        }
        if (y->depth == 0) {
            if (s_is_null (ev))
                return 0; /* "---" or "~" alone: an empty document */
            lss_errf (y->err, y->err_size, "top level must be a mapping, not a scalar (%s:%zu)",
                      y->path, line);
            return -1;
        }
        return y->want_key ? s_yaml_key (y, ev, line) : s_yaml_leaf (y, ev, line);
    }
    return 0;
}

/*  Reads path whole into a NUL-ended heap buffer of at most S_FILE_MAX bytes. */
static char *s_read_file (const char *path, size_t *len_p, char *err, size_t err_size)
{
    FILE *file = fopen (path, "rb");
    if (!file) {
        lss_errf (err, err_size, "cannot open config file '%s': %s", path, strerror (errno));
        return NULL;
    }
    char *data = malloc (S_FILE_MAX + 2);
    size_t len = data ? fread (data, 1, S_FILE_MAX + 1, file) : 0;
    if (!data)
        lss_errf (err, err_size, "cannot read config file '%s': out of memory", path);
    else if (ferror (file))
        lss_errf (err, err_size, "cannot read config file '%s': %s", path, strerror (errno));
    else if (len > S_FILE_MAX)
        lss_errf (err, err_size, "config file '%s' is larger than %zu bytes", path, S_FILE_MAX);
    else {
        fclose (file);
        data[len] = '\0';
        *len_p = len;
        return data;
    }
    fclose (file);
    free (data);
    return NULL;
}

static int s_load_file (const lss_config_t *self, s_value_t *values, const char *path,
                        char *err, size_t err_size)
{
    int rc = -1;
    size_t len = 0;
    bool parser_ready = false;
    yaml_parser_t parser;
    s_yaml_t y = {
        .self = self, .values = values, .path = path, .err = err, .err_size = err_size};
    char *data = s_read_file (path, &len, err, err_size);
    if (!data)
        goto cleanup;
    y.seen = calloc (self->count ? self->count : 1, sizeof *y.seen);
    if (!y.seen || !yaml_parser_initialize (&parser)) {
        lss_errf (err, err_size, "cannot parse config file '%s': out of memory", path);
        goto cleanup;
    }
    parser_ready = true;
    yaml_parser_set_input_string (&parser, (const unsigned char *)data, len);
    int documents = 0;
    bool done = false, failed = false;
    while (!done) {
        yaml_event_t ev;
        if (!yaml_parser_parse (&parser, &ev)) {
            char near[S_KEY_MAX + 16] = "";
            if (y.key[0] && !failed)
                snprintf (near, sizeof near, ", near key '%s'", y.key);
            if (parser.error == YAML_READER_ERROR)
                lss_errf (err, err_size, "malformed YAML: %s at byte %zu (%s)",
                          parser.problem ? parser.problem : "unreadable input",
                          parser.problem_offset, path);
            else
                lss_errf (err, err_size, "malformed YAML: %s%s%s%s (%s:%zu)",
                          parser.problem ? parser.problem : "syntax error",
                          parser.context ? ", " : "", parser.context ? parser.context : "",
                          near, path, parser.problem_mark.line + 1);
            goto cleanup;
        }
        /* After the first error keep scanning (the file is bounded): a syntax error
         * later on is the root cause and replaces it ("a: b: c" is not a bad key 'a'). */
        if (!failed)
            failed = s_yaml_event (&y, &ev, &documents, &done) != 0;
        else
            done = ev.type == YAML_STREAM_END_EVENT;
        yaml_event_delete (&ev);
    }
    if (!failed)
        rc = 0;
cleanup:
    if (parser_ready)
        yaml_parser_delete (&parser);
    free (y.seen);
    free (data);
    return rc;
}

/* ------------------------------------------------------------------ environment */

/*  LSS_ variables that are not configuration keys: the config file path, and the test
 *  harness's own (scripts/run-tests sets LSS_BUILD_DIR and LSS_ROOT; tests use LSS_TEST_*). */
static bool s_env_allowed (const char *name)
{
    return strcmp (name, "LSS_CONFIG") == 0 || strcmp (name, "LSS_BUILD_DIR") == 0 ||
           strcmp (name, "LSS_ROOT") == 0 || strncmp (name, "LSS_TEST_", 9) == 0;
}

static int s_load_env (const lss_config_t *self, s_value_t *values, char *err, size_t err_size)
{
    for (char **e = environ; e && *e; e++) {
        if (strncmp (*e, "LSS_", 4) != 0)
            continue;
        const char *eq = strchr (*e, '=');
        if (!eq)
            continue;
        size_t nlen = (size_t)(eq - *e);
        char name[S_ENV_MAX + 1];
        if (nlen > S_ENV_MAX) {
            lss_errf (err, err_size,
                      "unknown environment variable %.*s...: no config key maps to it",
                      S_ENV_MAX, *e);
            return -1;
        }
        memcpy (name, *e, nlen);
        name[nlen] = '\0';
        if (s_env_allowed (name))
            continue;
        ssize_t i = s_find_env (self, name);
        if (i < 0) {
            char hint[S_ENV_MAX + 32];
            s_suggest (self, name, true, hint, sizeof hint);
            lss_errf (err, err_size,
                      "unknown environment variable %s: no config key maps to it%s", name,
                      hint);
            return -1;
        }
        if (s_assign (self, values, (size_t)i, eq + 1, strlen (eq + 1), name, err, err_size))
            return -1;
    }
    return 0;
}

/* ------------------------------------------------------------------ public */

/*  Checks one spec entry's key: [a-z0-9_-] words joined by single dots. */
static bool s_key_valid (const char *key)
{
    size_t len = key ? strlen (key) : 0;
    if (len == 0 || len > S_KEY_MAX || key[0] == '.' || key[len - 1] == '.')
        return false;
    for (size_t i = 0; i < len; i++) {
        char c = key[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-' ||
                  (c == '.' && key[i + 1] != '.');
        if (!ok)
            return false;
    }
    return true;
}

/*  Creates a config over spec (borrowed; must outlive it) holding the defaults. Checks
 *  the table: valid unique keys, unique environment names, no key that is also a
 *  section of other keys, a known type, and a default that parses within bounds (a NULL
 *  default means "" for a STR). Returns NULL, with an error logged naming the key, if
 *  any check fails or memory runs out. */
lss_config_t *lss_config_new (const lss_config_spec_t *spec, size_t count)
{
    if (!spec && count > 0)
        return NULL;
    lss_config_t *self = calloc (1, sizeof *self);
    if (!self)
        return NULL;
    self->spec = spec;
    self->count = count;
    self->values = calloc (count ? count : 1, sizeof *self->values);
    self->env_names = calloc (count ? count : 1, sizeof *self->env_names);
    if (!self->values || !self->env_names)
        goto fail;
    for (size_t i = 0; i < count; i++) {
        if (!s_key_valid (spec[i].key)) {
            lss_log_error ("config spec: invalid key", "{s:s?, s:I}", "key", spec[i].key,
                           "index", (json_int_t)i);
            goto fail;
        }
        if ((unsigned)spec[i].type > LSS_CFG_DURATION) {
            lss_log_error ("config spec: unknown type", "{s:s, s:i}", "key", spec[i].key,
                           "type", (int)spec[i].type);
            goto fail;
        }
    }
    for (size_t i = 0; i < count; i++) {
        const lss_config_spec_t *s = &spec[i];
        char *name = self->env_names[i];
        memcpy (name, "LSS_", 4);
        size_t j = 0;
        for (; s->key[j]; j++) {
            char c = s->key[j];
            name[4 + j] = (c == '.' || c == '-')   ? '_'
                          : (c >= 'a' && c <= 'z') ? (char)(c - 32)
                                                   : c;
        }
        name[4 + j] = '\0';
        for (size_t k = 0; k < i; k++) {
            if (strcmp (spec[k].key, s->key) == 0 || strcmp (self->env_names[k], name) == 0) {
                lss_log_error ("config spec: key or environment name declared twice",
                               "{s:s, s:s, s:s}", "key", s->key, "other", spec[k].key, "env",
                               name);
                goto fail;
            }
        }
        if (s_is_section (self, s->key)) {
            lss_log_error ("config spec: key is also a section of other keys", "{s:s}", "key",
                           s->key);
            goto fail;
        }
        const char *def = s->def;
        if (!def && s->type == LSS_CFG_STR)
            def = "";
        char problem[S_PROBLEM_MAX];
        if (!def ||
            s_parse_value (s, def, strlen (def), &self->values[i], problem, sizeof problem)) {
            lss_log_error ("config spec: bad default", "{s:s, s:s}", "key", s->key, "error",
                           def ? problem : "no default");
            goto fail;
        }
    }
    return self;
fail:
    lss_config_destroy (&self);
    return NULL;
}

/*  Frees the config and its strings; *self_p becomes NULL. NULL or *NULL is a no-op. */
void lss_config_destroy (lss_config_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    lss_config_t *self = *self_p;
    s_values_free (&self->values, self->count);
    free (self->env_names);
    free (self);
    *self_p = NULL;
}

/*  Applies path (NULL = none) then every LSS_* environment variable over the current
 *  values (env wins). All or nothing: on error nothing changes, -1 is returned and err
 *  (may be NULL) holds a message naming the key or variable and the source
 *  ("file.yaml:12" or "LSS_API_LISTEN"). On success returns 0 and err is "". */
int lss_config_load (lss_config_t *self, const char *path, char *err, size_t err_size)
{
    int rc = -1;
    s_value_t *work = s_values_dup (self);
    if (!work) {
        lss_errf (err, err_size, "out of memory");
        goto cleanup;
    }
    if (path && s_load_file (self, work, path, err, err_size))
        goto cleanup;
    if (s_load_env (self, work, err, err_size))
        goto cleanup;
    s_values_free (&self->values, self->count);
    self->values = work;
    work = NULL;
    lss_errf (err, err_size, "%s", "");
    rc = 0;
cleanup:
    s_values_free (&work, self->count);
    return rc;
}

/*  Sets key from text with the environment's syntax. Returns 0 (err ""), or -1 with err
 *  naming the key; the value is unchanged on error. */
int lss_config_set (lss_config_t *self, const char *key, const char *value, char *err,
                    size_t err_size)
{
    ssize_t i = key ? s_find (self, key, strlen (key)) : -1;
    if (i < 0) {
        char hint[S_KEY_MAX + 32] = "";
        if (key)
            s_suggest (self, key, false, hint, sizeof hint);
        lss_errf (err, err_size, "unknown key '%s'%s", key ? key : "(null)", hint);
        return -1;
    }
    if (!value) {
        lss_errf (err, err_size, "%s: no value given (set)", key);
        return -1;
    }
    if (s_assign (self, self->values, (size_t)i, value, strlen (value), "set", err, err_size))
        return -1;
    lss_errf (err, err_size, "%s", "");
    return 0;
}

/*  The value of key, which must be declared with one of the given types; anything else is
 *  a programmer error and aborts (also with NDEBUG). */
static const s_value_t *s_get (const lss_config_t *self, const char *key, int type_a,
                               int type_b, int type_c)
{
    ssize_t i = (self && key) ? s_find (self, key, strlen (key)) : -1;
    if (i < 0) {
        lss_log_error ("config: getter on an undeclared key", "{s:s?}", "key", key);
        abort ();
    }
    int type = (int)self->spec[i].type;
    if (type != type_a && type != type_b && type != type_c) {
        lss_log_error ("config: getter of the wrong type", "{s:s, s:s}", "key", key, "type",
                       s_type_name (self->spec[i].type));
        abort ();
    }
    return &self->values[i];
}

/*  A STR key's value (borrowed until the next load/set/destroy). */
const char *lss_config_str (const lss_config_t *self, const char *key)
{
    return s_get (self, key, LSS_CFG_STR, -1, -1)->str;
}

/*  An INT, SIZE (bytes) or DURATION (ms) key's value: all three are int64 quantities. */
int64_t lss_config_int (const lss_config_t *self, const char *key)
{
    return s_get (self, key, LSS_CFG_INT, LSS_CFG_SIZE, LSS_CFG_DURATION)->num;
}

/*  A BOOL key's value. */
bool lss_config_bool (const lss_config_t *self, const char *key)
{
    return s_get (self, key, LSS_CFG_BOOL, -1, -1)->flag;
}

/*  {"dotted.key": value, ...} in table order; numbers as integers, booleans as booleans,
 *  SECRET keys as "***" when mask. Caller owns; NULL if out of memory. */
json_t *lss_config_to_json (const lss_config_t *self, bool mask)
{
    json_t *root = json_object ();
    if (!root)
        return NULL;
    for (size_t i = 0; i < self->count; i++) {
        const lss_config_spec_t *s = &self->spec[i];
        json_t *v;
        if (mask && (s->flags & LSS_CFG_SECRET))
            v = json_string ("***");
        else if (s->type == LSS_CFG_STR)
            v = json_string (self->values[i].str);
        else if (s->type == LSS_CFG_BOOL)
            v = json_boolean (self->values[i].flag);
        else
            v = json_integer ((json_int_t)self->values[i].num);
        if (json_object_set_new (root, s->key, v)) {
            json_decref (root);
            return NULL;
        }
    }
    return root;
}

/*  Logs "effective config" at info with field "config" = lss_config_to_json (masked);
 *  lss_log masks again by key name on top. */
void lss_config_log (const lss_config_t *self)
{
    json_t *config = lss_config_to_json (self, true);
    json_t *fields = config ? json_pack ("{s:o}", "config", config) : NULL;
    if (fields)
        lss_log_json (LSS_LOG_INFO, "effective config", fields);
    else
        lss_log_error ("cannot log effective config: out of memory", NULL);
    json_decref (fields);
}
