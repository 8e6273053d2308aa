/*  lss_metrics — a process-wide, thread-safe Prometheus metrics registry.
 *
 *  A family (counter, gauge or histogram) has a name, help text and optional fixed label
 *  names; each tuple of label values gets its own child, created on first use. Families
 *  are registered once (typically at start) and the returned handle is kept; updates on
 *  the hot path are one atomic operation for counters and gauges (plus a short per-family
 *  lock to find the child when the family has labels) and one per-family lock for
 *  histograms. lss_metrics_render produces the text exposition format 0.0.4, including
 *  process_* metrics read from /proc/self at render time.
 *
 *  Everything is bounded: LSS_METRICS_MAX_FAMILIES families, LSS_METRICS_MAX_CHILDREN
 *  children per family (further label tuples are dropped and counted in
 *  lss_metrics_dropped_total), label values cut at LSS_METRICS_MAX_LABEL_VALUE bytes (on
 *  a UTF-8 boundary; invalid UTF-8 bytes become '?'), output at LSS_METRICS_RENDER_MAX.
 *
 *      static lss_metric_t *requests;
 *      requests = lss_metrics_counter ("lss_api_requests_total", "API requests.",
 *                                      "route,code");
 *      lss_metric_inc (requests, 1, "/api/v1/sandboxes", "201");
 *
 *  Label values follow the value as const char * arguments, exactly as many as the family
 *  has label names (NULL counts as ""). Passing fewer is undefined behaviour, as with
 *  printf; use the _v variants when the values are already in an array.
 */
#ifndef LSS_METRICS_H
#define LSS_METRICS_H

#include <stdbool.h>
#include <stddef.h>

#define LSS_METRICS_MAX_FAMILIES    256
#define LSS_METRICS_MAX_CHILDREN    1000
#define LSS_METRICS_MAX_LABELS      8
#define LSS_METRICS_MAX_LABEL_VALUE 128 /* bytes, before escaping */
#define LSS_METRICS_MAX_BUCKETS     32
#define LSS_METRICS_NAME_MAX        128       /* metric and label names, bytes */
#define LSS_METRICS_HELP_MAX        512       /* help text, bytes (longer is cut) */
#define LSS_METRICS_RENDER_MAX      (8 << 20) /* bytes of exposition text */

typedef enum {
    LSS_METRIC_COUNTER,
    LSS_METRIC_GAUGE,
    LSS_METRIC_HISTOGRAM,
} lss_metric_type_t;

typedef struct _lss_metric_t lss_metric_t;

/*  Returns the family of that name, registering it on first call. labels is a
 *  comma-separated list of label names ("route,code") or NULL for none. Registering an
 *  existing name again returns the same handle; a different type, label list or bucket
 *  list for an existing name, an invalid name, or a name starting with "process_" is a
 *  programmer error (assert). Past LSS_METRICS_MAX_FAMILIES an error is logged and a
 *  shared sink handle is returned whose updates are ignored. Handles are owned by the
 *  registry and stay valid until lss_metrics_reset_for_tests. */
lss_metric_t *lss_metrics_counter (const char *name, const char *help, const char *labels);
lss_metric_t *lss_metrics_gauge (const char *name, const char *help, const char *labels);
/*  buckets: strictly increasing finite upper bounds (at most LSS_METRICS_MAX_BUCKETS; the
 *  +Inf bucket is implicit), or NULL for LSS_METRICS_LATENCY_BUCKETS (seconds). */
lss_metric_t *lss_metrics_histogram (const char *name, const char *help, const char *labels,
                                     const double *buckets, size_t bucket_count);

/*  .0005 .001 .0025 .005 .01 .025 .05 .1 .25 .5 1 2.5 5 10 (seconds). */
extern const double lss_metrics_latency_buckets[];
extern const size_t lss_metrics_latency_bucket_count;

/*  Adds v to a counter (v < 0 or NaN is ignored) or a gauge (any v). */
void lss_metric_inc (lss_metric_t *m, double v, ...);
/*  Sets a gauge. Using it on another type is a programmer error (assert). */
void lss_metric_set (lss_metric_t *m, double v, ...);
/*  Records one observation in a histogram (NaN is ignored). Assert on other types. */
void lss_metric_observe (lss_metric_t *m, double v, ...);

/*  The same, with the label values in an array of the family's label count. */
void lss_metric_inc_v (lss_metric_t *m, double v, const char *const *values);
void lss_metric_set_v (lss_metric_t *m, double v, const char *const *values);
void lss_metric_observe_v (lss_metric_t *m, double v, const char *const *values);

/*  Current value of a counter or gauge child, or the observation count of a histogram
 *  child; 0 if that child does not exist (it is not created). For tests and self-checks. */
double lss_metric_value (lss_metric_t *m, ...);

lss_metric_type_t lss_metric_type (const lss_metric_t *m);
/*  The family's name (borrowed). */
const char *lss_metric_name (const lss_metric_t *m);

/*  The whole registry in the Prometheus text format 0.0.4, families in registration
 *  order followed by the process_* metrics. Caller frees. Past LSS_METRICS_RENDER_MAX
 *  the remaining series are left out and a "# lss_metrics: truncated" comment ends the
 *  text. Returns NULL only if memory ran out. */
char *lss_metrics_render (void);

/*  Frees every family and child. Every handle obtained before becomes invalid: only for
 *  tests, and only while no other thread uses the registry. */
void lss_metrics_reset_for_tests (void);

#endif
