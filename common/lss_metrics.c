/*  lss_metrics — Prometheus registry and text exposition. See lss_metrics.h.
 *
 *  The registry is a fixed array of family pointers under one mutex, taken only to
 *  register, to snapshot the family list for rendering, and to reset. A family owns its
 *  children: child 0 is created at registration when there are no labels; labelled
 *  children live in an array plus an open-addressing hash table (S_SLOTS entries of
 *  child indexes, FNV-1a over the sanitised values) under the family's mutex. Children
 *  are never freed before reset, so a child pointer found under the lock stays valid
 *  after it is released: counter and gauge values are doubles stored as bits in an
 *  _Atomic uint64_t and updated by compare-and-swap without the lock. Histogram children
 *  are updated and read under the family mutex so that buckets, sum and count always
 *  agree. Lock order: registry, then one family; never two families.
 */
#include "lss_metrics.h"

#include <assert.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "lss_log.h"
#include "lss_util.h"

/*  Hash slots per labelled family: a power of two, at least twice the child cap. */
#define S_SLOTS 2048
/*  Largest number of /proc/self/fd entries counted. */
#define S_FDS_COUNT_MAX (1 << 20)
/*  Room kept past LSS_METRICS_RENDER_MAX for the truncation comment. */
#define S_TRAILER "# lss_metrics: truncated\n"

const double lss_metrics_latency_buckets[] = {.0005, .001, .0025, .005, .01, .025, .05,
                                              .1,    .25,  .5,    1,    2.5, 5,    10};
const size_t lss_metrics_latency_bucket_count =
    sizeof lss_metrics_latency_buckets / sizeof lss_metrics_latency_buckets[0];

typedef struct {
    char *values[LSS_METRICS_MAX_LABELS]; /* sanitised, unescaped */
    uint64_t hash;
    _Atomic uint64_t bits; /* counter/gauge value (double bits) */
    uint64_t *buckets;     /* histogram: per-bucket counts, [bucket_count] = +Inf */
    double sum;            /* histogram, under the family mutex */
    uint64_t count;        /* histogram, under the family mutex */
} s_child_t;

struct _lss_metric_t {
    lss_metric_type_t type;
    bool sink; /* the overflow handle: updates are ignored, never rendered */
    char name[LSS_METRICS_NAME_MAX + 1];
    char help[LSS_METRICS_HELP_MAX + 1];
    size_t label_count;
    char label_names[LSS_METRICS_MAX_LABELS][LSS_METRICS_NAME_MAX + 1];
    double bounds[LSS_METRICS_MAX_BUCKETS];
    size_t bucket_count;
    pthread_mutex_t mutex;
    s_child_t **children;
    size_t child_count;
    size_t child_cap;
    int32_t *slots; /* S_SLOTS child indexes, -1 = empty; labelled families only */
};

static pthread_mutex_t s_lock = PTHREAD_MUTEX_INITIALIZER;
static lss_metric_t *s_families[LSS_METRICS_MAX_FAMILIES]; /* guarded by s_lock */
static size_t s_family_count;                              /* guarded by s_lock */
static lss_metric_t *_Atomic s_dropped;                    /* lss_metrics_dropped_total */
static lss_metric_t s_sink = {.type = LSS_METRIC_COUNTER, .sink = true, .name = "sink"};

//  --------------------------------------------------------------------------
//  Small helpers

static double s_bits_to_double (uint64_t bits)
{
    double d;
    memcpy (&d, &bits, sizeof d);
    return d;
}

static uint64_t s_double_to_bits (double d)
{
    uint64_t bits;
    memcpy (&bits, &d, sizeof bits);
    return bits;
}

static void s_atomic_add (_Atomic uint64_t *bits, double v)
{
    uint64_t old = atomic_load_explicit (bits, memory_order_relaxed);
    uint64_t sum;
    do
        sum = s_double_to_bits (s_bits_to_double (old) + v);
    while (!atomic_compare_exchange_weak_explicit (bits, &old, sum, memory_order_relaxed,
                                                   memory_order_relaxed));
}

/*  Shortest text that reads back as the same double, in Prometheus' spelling for the
 *  special values. out holds 32 bytes. */
static const char *s_fmt_double (double v, char *out)
{
    if (isnan (v))
        return "NaN";
    if (isinf (v))
        return v > 0 ? "+Inf" : "-Inf";
    if (v == trunc (v) && fabs (v) < 1e15) {
        snprintf (out, 32, "%.0f", v);
        return out;
    }
    for (int prec = 15; prec <= 17; prec++) {
        snprintf (out, 32, "%.*g", prec, v);
        if (strtod (out, NULL) == v)
            break;
    }
    return out;
}

static bool s_name_char (char c, bool first, bool colon_ok)
{
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_')
        return true;
    if (c == ':')
        return colon_ok;
    return !first && c >= '0' && c <= '9';
}

static bool s_valid_name (const char *name, size_t len, bool colon_ok)
{
    if (len == 0 || len > LSS_METRICS_NAME_MAX)
        return false;
    for (size_t i = 0; i < len; i++)
        if (!s_name_char (name[i], i == 0, colon_ok))
            return false;
    return true;
}

/*  Length of the valid UTF-8 sequence at p (at most left bytes), or 0 if invalid. */
static size_t s_utf8_len (const unsigned char *p, size_t left)
{
    size_t n;
    uint32_t cp;
    if (p[0] < 0x80)
        return 1;
    else if ((p[0] & 0xe0) == 0xc0)
        n = 2, cp = p[0] & 0x1f;
    else if ((p[0] & 0xf0) == 0xe0)
        n = 3, cp = p[0] & 0x0f;
    else if ((p[0] & 0xf8) == 0xf0)
        n = 4, cp = p[0] & 0x07;
    else
        return 0;
    if (n > left)
        return 0;
    for (size_t i = 1; i < n; i++) {
        if ((p[i] & 0xc0) != 0x80)
            return 0;
        cp = (cp << 6) | (p[i] & 0x3f);
    }
    static const uint32_t min_cp[5] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < min_cp[n] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return n;
}

/*  Copies value into out (LSS_METRICS_MAX_LABEL_VALUE + 1 bytes): invalid UTF-8 bytes
 *  become '?', and the copy stops before a character that would not fit. */
static void s_sanitise (const char *value, char *out)
{
    const unsigned char *p = (const unsigned char *)(value ? value : "");
    size_t left = strlen ((const char *)p);
    size_t len = 0;
    while (left > 0) {
        size_t n = s_utf8_len (p, left);
        if (len + (n ? n : 1) > LSS_METRICS_MAX_LABEL_VALUE)
            break;
        if (n == 0) {
            out[len++] = '?';
            n = 1;
        } else {
            memcpy (out + len, p, n);
            len += n;
        }
        p += n;
        left -= n;
    }
    out[len] = '\0';
}

static uint64_t s_hash (char values[][LSS_METRICS_MAX_LABEL_VALUE + 1], size_t count)
{
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < count; i++) {
        for (const unsigned char *p = (const unsigned char *)values[i]; *p; p++)
            h = (h ^ *p) * 1099511628211ULL;
        h = (h ^ 0xff) * 1099511628211ULL; /* separator: ("a","b") != ("ab","") */
    }
    return h;
}

//  --------------------------------------------------------------------------
//  Families and children

static void s_child_free (s_child_t *child)
{
    if (!child)
        return;
    for (size_t i = 0; i < LSS_METRICS_MAX_LABELS; i++)
        free (child->values[i]);
    free (child->buckets);
    free (child);
}

static s_child_t *s_child_new (const lss_metric_t *m,
                               char values[][LSS_METRICS_MAX_LABEL_VALUE + 1], uint64_t hash)
{
    s_child_t *child = calloc (1, sizeof *child);
    if (!child)
        return NULL;
    child->hash = hash;
    atomic_init (&child->bits, s_double_to_bits (0.0));
    for (size_t i = 0; i < m->label_count; i++) {
        child->values[i] = strdup (values[i]);
        if (!child->values[i])
            goto fail;
    }
    if (m->type == LSS_METRIC_HISTOGRAM) {
        child->buckets = calloc (m->bucket_count + 1, sizeof *child->buckets);
        if (!child->buckets)
            goto fail;
    }
    return child;
fail:
    s_child_free (child);
    return NULL;
}

static void s_family_free (lss_metric_t *m)
{
    for (size_t i = 0; i < m->child_count; i++)
        s_child_free (m->children[i]);
    free (m->children);
    free (m->slots);
    pthread_mutex_destroy (&m->mutex);
    free (m);
}

/*  Appends child to m's array (and hash table when labelled). Called with m->mutex held
 *  or before m is published. Returns 0 or -1 (out of memory). */
static int s_family_add_child (lss_metric_t *m, s_child_t *child)
{
    if (m->child_count == m->child_cap) {
        size_t cap = m->child_cap ? m->child_cap * 2 : 4;
        if (cap > LSS_METRICS_MAX_CHILDREN)
            cap = LSS_METRICS_MAX_CHILDREN;
        s_child_t **children = realloc (m->children, cap * sizeof *children);
        if (!children)
            return -1;
        m->children = children;
        m->child_cap = cap;
    }
    if (m->slots) {
        size_t slot = child->hash & (S_SLOTS - 1);
        while (m->slots[slot] >= 0)
            slot = (slot + 1) & (S_SLOTS - 1);
        m->slots[slot] = (int32_t)m->child_count;
    }
    m->children[m->child_count++] = child;
    return 0;
}

/*  Parses "a,b" into m's label names; programmer errors assert. */
static void s_parse_labels (lss_metric_t *m, const char *labels)
{
    m->label_count = 0;
    if (!labels || !*labels)
        return;
    const char *p = labels;
    for (;;) {
        const char *end = strchr (p, ',');
        size_t len = end ? (size_t)(end - p) : strlen (p);
        assert (m->label_count < LSS_METRICS_MAX_LABELS && "too many labels");
        assert (s_valid_name (p, len, false) && "invalid label name");
        assert (!(len >= 2 && p[0] == '_' && p[1] == '_') && "reserved label name");
        assert (!(m->type == LSS_METRIC_HISTOGRAM && len == 2 && memcmp (p, "le", 2) == 0) &&
                "le is reserved in histograms");
        memcpy (m->label_names[m->label_count], p, len);
        m->label_names[m->label_count][len] = '\0';
        for (size_t i = 0; i < m->label_count; i++)
            assert (strcmp (m->label_names[i], m->label_names[m->label_count]) != 0 &&
                    "duplicate label name");
        m->label_count++;
        if (!end)
            break;
        p = end + 1;
    }
}

/*  Fills a family description from the arguments (no allocation); programmer errors
 *  assert. */
static void s_family_describe (lss_metric_t *m, lss_metric_type_t type, const char *name,
                               const char *help, const char *labels, const double *buckets,
                               size_t bucket_count)
{
    assert (name && s_valid_name (name, strlen (name), true) && "invalid metric name");
    assert (strncmp (name, "process_", 8) != 0 && "process_* names are reserved");
    memset (m, 0, sizeof *m);
    m->type = type;
    snprintf (m->name, sizeof m->name, "%s", name);
    snprintf (m->help, sizeof m->help, "%s", help ? help : "");
    s_parse_labels (m, labels);
    if (type == LSS_METRIC_HISTOGRAM) {
        if (!buckets) {
            buckets = lss_metrics_latency_buckets;
            bucket_count = lss_metrics_latency_bucket_count;
        }
        assert (bucket_count <= LSS_METRICS_MAX_BUCKETS && "too many buckets");
        for (size_t i = 0; i < bucket_count; i++) {
            assert (isfinite (buckets[i]) && "bucket bounds must be finite");
            assert ((i == 0 || buckets[i] > buckets[i - 1]) && "buckets must increase");
            m->bounds[i] = buckets[i];
        }
        m->bucket_count = bucket_count;
    }
}

/*  A heap family from a description, with its hash table or its one unlabelled child;
 *  NULL if out of memory. */
static lss_metric_t *s_family_new (const lss_metric_t *want)
{
    lss_metric_t *m = malloc (sizeof *m);
    if (!m)
        return NULL;
    *m = *want;
    pthread_mutex_init (&m->mutex, NULL);
    if (m->label_count == 0) {
        s_child_t *child = s_child_new (m, NULL, 0);
        if (!child || s_family_add_child (m, child)) {
            s_child_free (child);
            s_family_free (m);
            return NULL;
        }
    } else {
        m->slots = malloc (S_SLOTS * sizeof *m->slots);
        if (!m->slots) {
            s_family_free (m);
            return NULL;
        }
        memset (m->slots, 0xff, S_SLOTS * sizeof *m->slots); /* all -1 */
    }
    return m;
}

/*  Asserts that an existing family matches a new registration of the same name. */
static void s_family_check_same (const lss_metric_t *have, const lss_metric_t *want)
{
    assert (have->type == want->type && "metric re-registered with another type");
    assert (have->label_count == want->label_count && "metric re-registered with other labels");
    for (size_t i = 0; i < have->label_count; i++)
        assert (strcmp (have->label_names[i], want->label_names[i]) == 0 &&
                "metric re-registered with other labels");
    assert (have->bucket_count == want->bucket_count &&
            "metric re-registered with other buckets");
    for (size_t i = 0; i < have->bucket_count; i++)
        assert (have->bounds[i] == want->bounds[i] &&
                "metric re-registered with other buckets");
    (void)have;
    (void)want;
}

static lss_metric_t *s_find_locked (const char *name)
{
    for (size_t i = 0; i < s_family_count; i++)
        if (strcmp (s_families[i]->name, name) == 0)
            return s_families[i];
    return NULL;
}

/*  Registers a new family from want; NULL if the cap is reached or memory ran out. */
static lss_metric_t *s_add_locked (const lss_metric_t *want)
{
    if (s_family_count == LSS_METRICS_MAX_FAMILIES)
        return NULL;
    lss_metric_t *m = s_family_new (want);
    if (m)
        s_families[s_family_count++] = m;
    return m;
}

static lss_metric_t *s_register (lss_metric_type_t type, const char *name, const char *help,
                                 const char *labels, const double *buckets, size_t bucket_count)
{
    lss_metric_t want;
    s_family_describe (&want, type, name, help, labels, buckets, bucket_count);
    pthread_mutex_lock (&s_lock);
    if (!atomic_load (&s_dropped)) {
        /*  The registry's own counter comes first, with the first registration. */
        lss_metric_t dropped;
        s_family_describe (&dropped, LSS_METRIC_COUNTER, "lss_metrics_dropped_total",
                           "Metric updates dropped: label combinations past the per-family "
                           "cap, or out of memory.",
                           NULL, NULL, 0);
        atomic_store (&s_dropped, s_add_locked (&dropped));
    }
    lss_metric_t *result = s_find_locked (name);
    if (result)
        s_family_check_same (result, &want);
    else
        result = s_add_locked (&want);
    pthread_mutex_unlock (&s_lock);
    if (!result) {
        lss_log_error ("metric family not registered", "{s:s, s:i}", "name", name, "max",
                       LSS_METRICS_MAX_FAMILIES);
        return &s_sink;
    }
    return result;
}

lss_metric_t *lss_metrics_counter (const char *name, const char *help, const char *labels)
{
    return s_register (LSS_METRIC_COUNTER, name, help, labels, NULL, 0);
}

lss_metric_t *lss_metrics_gauge (const char *name, const char *help, const char *labels)
{
    return s_register (LSS_METRIC_GAUGE, name, help, labels, NULL, 0);
}

lss_metric_t *lss_metrics_histogram (const char *name, const char *help, const char *labels,
                                     const double *buckets, size_t bucket_count)
{
    return s_register (LSS_METRIC_HISTOGRAM, name, help, labels, buckets, bucket_count);
}

lss_metric_type_t lss_metric_type (const lss_metric_t *m)
{
    return m->type;
}

const char *lss_metric_name (const lss_metric_t *m)
{
    return m->name;
}

//  --------------------------------------------------------------------------
//  Updates

static void s_count_dropped (void)
{
    lss_metric_t *dropped = atomic_load (&s_dropped);
    if (dropped)
        s_atomic_add (&dropped->children[0]->bits, 1.0);
}

/*  Finds (or, if create, makes) the child for values. Called with m->mutex held on a
 *  labelled family. NULL if it does not exist and was not created (cap or memory). */
static s_child_t *s_child_find_locked (lss_metric_t *m, const char *const *values, bool create)
{
    char clean[LSS_METRICS_MAX_LABELS][LSS_METRICS_MAX_LABEL_VALUE + 1];
    for (size_t i = 0; i < m->label_count; i++)
        s_sanitise (values[i], clean[i]);
    uint64_t hash = s_hash (clean, m->label_count);
    size_t slot = hash & (S_SLOTS - 1);
    while (m->slots[slot] >= 0) {
        s_child_t *child = m->children[m->slots[slot]];
        if (child->hash == hash) {
            size_t i = 0;
            while (i < m->label_count && strcmp (child->values[i], clean[i]) == 0)
                i++;
            if (i == m->label_count)
                return child;
        }
        slot = (slot + 1) & (S_SLOTS - 1);
    }
    if (!create)
        return NULL;
    if (m->child_count >= LSS_METRICS_MAX_CHILDREN) {
        s_count_dropped ();
        return NULL;
    }
    s_child_t *child = s_child_new (m, clean, hash);
    if (!child || s_family_add_child (m, child)) {
        s_child_free (child);
        s_count_dropped ();
        return NULL;
    }
    return child;
}

/*  The child of a counter or gauge (lock taken only to find it). */
static s_child_t *s_scalar_child (lss_metric_t *m, const char *const *values, bool create)
{
    if (m->label_count == 0)
        return m->children[0];
    pthread_mutex_lock (&m->mutex);
    s_child_t *child = s_child_find_locked (m, values, create);
    pthread_mutex_unlock (&m->mutex);
    return child;
}

void lss_metric_inc_v (lss_metric_t *m, double v, const char *const *values)
{
    assert (m);
    if (m->sink)
        return;
    assert ((m->type == LSS_METRIC_COUNTER || m->type == LSS_METRIC_GAUGE) &&
            "lss_metric_inc on a histogram");
    if (isnan (v) || (m->type == LSS_METRIC_COUNTER && v < 0))
        return;
    s_child_t *child = s_scalar_child (m, values, true);
    if (child)
        s_atomic_add (&child->bits, v);
}

void lss_metric_set_v (lss_metric_t *m, double v, const char *const *values)
{
    assert (m);
    if (m->sink)
        return;
    assert (m->type == LSS_METRIC_GAUGE && "lss_metric_set on a non-gauge");
    s_child_t *child = s_scalar_child (m, values, true);
    if (child)
        atomic_store_explicit (&child->bits, s_double_to_bits (v), memory_order_relaxed);
}

void lss_metric_observe_v (lss_metric_t *m, double v, const char *const *values)
{
    assert (m);
    if (m->sink)
        return;
    assert (m->type == LSS_METRIC_HISTOGRAM && "lss_metric_observe on a non-histogram");
    if (isnan (v))
        return;
    /*  Upper bounds are inclusive: v lands in the first bucket with v <= bound. */
    size_t b = 0;
    while (b < m->bucket_count && v > m->bounds[b])
        b++;
    pthread_mutex_lock (&m->mutex);
    s_child_t *child = m->label_count ? s_child_find_locked (m, values, true) : m->children[0];
    if (child) {
        child->buckets[b]++;
        child->sum += v;
        child->count++;
    }
    pthread_mutex_unlock (&m->mutex);
}

/*  Collects the family's label values from a va_list. */
#define S_COLLECT(m, last, values)                                                             \
    do {                                                                                       \
        va_list ap_;                                                                           \
        va_start (ap_, last);                                                                  \
        for (size_t i_ = 0; i_ < (m)->label_count; i_++)                                       \
            (values)[i_] = va_arg (ap_, const char *);                                         \
        va_end (ap_);                                                                          \
    } while (0)

void lss_metric_inc (lss_metric_t *m, double v, ...)
{
    const char *values[LSS_METRICS_MAX_LABELS];
    S_COLLECT (m, v, values);
    lss_metric_inc_v (m, v, values);
}

void lss_metric_set (lss_metric_t *m, double v, ...)
{
    const char *values[LSS_METRICS_MAX_LABELS];
    S_COLLECT (m, v, values);
    lss_metric_set_v (m, v, values);
}

void lss_metric_observe (lss_metric_t *m, double v, ...)
{
    const char *values[LSS_METRICS_MAX_LABELS];
    S_COLLECT (m, v, values);
    lss_metric_observe_v (m, v, values);
}

double lss_metric_value (lss_metric_t *m, ...)
{
    assert (m);
    if (m->sink)
        return 0;
    const char *values[LSS_METRICS_MAX_LABELS];
    S_COLLECT (m, m, values);
    double result = 0;
    if (m->type == LSS_METRIC_HISTOGRAM) {
        pthread_mutex_lock (&m->mutex);
        s_child_t *child =
            m->label_count ? s_child_find_locked (m, values, false) : m->children[0];
        result = child ? (double)child->count : 0;
        pthread_mutex_unlock (&m->mutex);
    } else {
        s_child_t *child = s_scalar_child (m, values, false);
        if (child)
            result = s_bits_to_double (atomic_load (&child->bits));
    }
    return result;
}

//  --------------------------------------------------------------------------
//  Rendering

typedef struct {
    lss_buf_t buf;
    size_t mark;    /* end of the last complete unit (family header or child) */
    bool truncated; /* a unit did not fit under LSS_METRICS_RENDER_MAX */
    bool oom;
} s_render_t;

static void s_put (s_render_t *r, const char *data, size_t len)
{
    if (r->truncated || r->oom)
        return;
    if (r->buf.len + len > LSS_METRICS_RENDER_MAX) {
        r->truncated = true;
        r->buf.len = r->mark;
        return;
    }
    if (lss_buf_append (&r->buf, data, len))
        r->oom = true;
}

static void s_puts (s_render_t *r, const char *text)
{
    s_put (r, text, strlen (text));
}

/*  Ends a unit: what was written so far is kept even if a later unit does not fit. */
static void s_mark (s_render_t *r)
{
    if (!r->truncated && !r->oom)
        r->mark = r->buf.len;
}

/*  Appends text escaped for a label value (quote true) or a HELP line (quote false). */
static void s_put_escaped (s_render_t *r, const char *text, bool quote)
{
    const char *run = text;
    for (const char *p = text; *p; p++) {
        const char *esc = NULL;
        if (*p == '\\')
            esc = "\\\\";
        else if (*p == '\n')
            esc = "\\n";
        else if (*p == '"' && quote)
            esc = "\\\"";
        if (esc) {
            s_put (r, run, (size_t)(p - run));
            s_puts (r, esc);
            run = p + 1;
        }
    }
    s_puts (r, run);
}

/*  name{labels[,le="bound"]} value\n */
static void s_put_series (s_render_t *r, const lss_metric_t *m, const s_child_t *child,
                          const char *suffix, const char *le, double value)
{
    char num[32];
    s_puts (r, m->name);
    s_puts (r, suffix);
    if (m->label_count || le) {
        s_puts (r, "{");
        for (size_t i = 0; i < m->label_count; i++) {
            if (i)
                s_puts (r, ",");
            s_puts (r, m->label_names[i]);
            s_puts (r, "=\"");
            s_put_escaped (r, child->values[i], true);
            s_puts (r, "\"");
        }
        if (le) {
            s_puts (r, m->label_count ? ",le=\"" : "le=\"");
            s_puts (r, le);
            s_puts (r, "\"");
        }
        s_puts (r, "}");
    }
    s_puts (r, " ");
    s_puts (r, s_fmt_double (value, num));
    s_puts (r, "\n");
}

static void s_put_header (s_render_t *r, const char *name, const char *help, const char *type)
{
    s_puts (r, "# HELP ");
    s_puts (r, name);
    s_puts (r, " ");
    s_put_escaped (r, help, false);
    s_puts (r, "\n# TYPE ");
    s_puts (r, name);
    s_puts (r, " ");
    s_puts (r, type);
    s_puts (r, "\n");
    s_mark (r);
}

static void s_render_family (s_render_t *r, lss_metric_t *m)
{
    static const char *const type_names[] = {"counter", "gauge", "histogram"};
    s_put_header (r, m->name, m->help, type_names[m->type]);
    pthread_mutex_lock (&m->mutex);
    for (size_t c = 0; c < m->child_count; c++) {
        const s_child_t *child = m->children[c];
        if (m->type != LSS_METRIC_HISTOGRAM) {
            uint64_t bits = atomic_load_explicit (&child->bits, memory_order_relaxed);
            s_put_series (r, m, child, "", NULL, s_bits_to_double (bits));
        } else {
            uint64_t cumulative = 0;
            char le[32];
            for (size_t b = 0; b < m->bucket_count; b++) {
                cumulative += child->buckets[b];
                s_put_series (r, m, child, "_bucket", s_fmt_double (m->bounds[b], le),
                              (double)cumulative);
            }
            s_put_series (r, m, child, "_bucket", "+Inf", (double)child->count);
            s_put_series (r, m, child, "_sum", NULL, child->sum);
            s_put_series (r, m, child, "_count", NULL, (double)child->count);
        }
        s_mark (r);
    }
    pthread_mutex_unlock (&m->mutex);
}

static void s_render_process_one (s_render_t *r, const char *name, const char *help,
                                  const char *type, double value)
{
    char num[32];
    s_put_header (r, name, help, type);
    s_puts (r, name);
    s_puts (r, " ");
    s_puts (r, s_fmt_double (value, num));
    s_puts (r, "\n");
    s_mark (r);
}

/*  Reads a small /proc file into buf (NUL-ended). Returns 0 or -1. */
static int s_read_small (const char *path, char *buf, size_t size)
{
    int fd = open (path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    size_t len = 0;
    while (len < size - 1) {
        ssize_t n = read (fd, buf + len, size - 1 - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        len += (size_t)n;
    }
    close (fd);
    buf[len] = '\0';
    return len > 0 ? 0 : -1;
}

static void s_render_process (s_render_t *r)
{
    long ticks = sysconf (_SC_CLK_TCK);
    long page = sysconf (_SC_PAGESIZE);
    char stat[1024];
    const char *paren =
        s_read_small ("/proc/self/stat", stat, sizeof stat) == 0 ? strrchr (stat, ')') : NULL;
    if (paren && ticks > 0 && page > 0) {
        /*  Fields after "(comm)": state is field 3; utime 14, stime 15, starttime 22,
         *  vsize 23, rss 24 (pages). */
        unsigned long long f[25] = {0};
        const char *p = paren + 2;
        int field = 3;
        while (*p && field <= 24) {
            if (field >= 14)
                f[field] = strtoull (p, NULL, 10);
            const char *sp = strchr (p, ' ');
            if (!sp)
                break;
            p = sp + 1;
            field++;
        }
        if (field > 24) {
            s_render_process_one (r, "process_cpu_seconds_total",
                                  "Total user and system CPU time spent in seconds.", "counter",
                                  (double)(f[14] + f[15]) / (double)ticks);
            s_render_process_one (r, "process_resident_memory_bytes",
                                  "Resident memory size in bytes.", "gauge",
                                  (double)f[24] * (double)page);
            s_render_process_one (r, "process_virtual_memory_bytes",
                                  "Virtual memory size in bytes.", "gauge", (double)f[23]);
            char pstat[8192];
            const char *btime = s_read_small ("/proc/stat", pstat, sizeof pstat) == 0
                                    ? strstr (pstat, "\nbtime ")
                                    : NULL;
            if (btime)
                s_render_process_one (
                    r, "process_start_time_seconds",
                    "Start time of the process since unix epoch in seconds.", "gauge",
                    (double)strtoull (btime + 7, NULL, 10) + (double)f[22] / (double)ticks);
        }
    }
    DIR *dir = opendir ("/proc/self/fd");
    if (dir) {
        long count = 0;
        int self_fd = dirfd (dir);
        struct dirent *e;
        while (count < S_FDS_COUNT_MAX && (e = readdir (dir))) {
            if (e->d_name[0] == '.')
                continue;
            if (strtol (e->d_name, NULL, 10) != self_fd)
                count++;
        }
        closedir (dir);
        s_render_process_one (r, "process_open_fds", "Number of open file descriptors.",
                              "gauge", (double)count);
    }
    struct rlimit rl;
    if (getrlimit (RLIMIT_NOFILE, &rl) == 0)
        s_render_process_one (r, "process_max_fds", "Maximum number of open file descriptors.",
                              "gauge",
                              rl.rlim_cur == RLIM_INFINITY ? INFINITY : (double)rl.rlim_cur);
}

char *lss_metrics_render (void)
{
    lss_metric_t *families[LSS_METRICS_MAX_FAMILIES];
    pthread_mutex_lock (&s_lock);
    size_t count = s_family_count;
    memcpy (families, s_families, count * sizeof families[0]);
    pthread_mutex_unlock (&s_lock);

    s_render_t r = {.mark = 0};
    lss_buf_init (&r.buf, LSS_METRICS_RENDER_MAX + sizeof S_TRAILER);
    for (size_t i = 0; i < count; i++)
        s_render_family (&r, families[i]);
    s_render_process (&r);
    if (r.truncated && !r.oom && lss_buf_append (&r.buf, S_TRAILER, strlen (S_TRAILER)))
        r.oom = true;
    if (!r.oom && lss_buf_append (&r.buf, "", 1)) /* the NUL */
        r.oom = true;
    if (r.oom) {
        lss_buf_free (&r.buf);
        return NULL;
    }
    return (char *)r.buf.data;
}

void lss_metrics_reset_for_tests (void)
{
    pthread_mutex_lock (&s_lock);
    for (size_t i = 0; i < s_family_count; i++) {
        s_family_free (s_families[i]);
        s_families[i] = NULL;
    }
    s_family_count = 0;
    atomic_store (&s_dropped, NULL);
    pthread_mutex_unlock (&s_lock);
}
