/*
 * metrics.h - a registry of counters, gauges and histograms, rendered as
 * Prometheus text exposition format 0.0.4.
 *
 * Each daemon owns its registry (no global one): it registers metric
 * families at start-up, keeps the series handles it updates, and renders the
 * registry on the loop thread when /metrics is scraped. Updates through a
 * handle are lock-free C11 atomics, safe from any thread and cheap enough for
 * hot paths (a relaxed atomic add for counters; a bucket search plus two
 * atomic ops for histograms). Registering families, creating series and
 * rendering take the registry's mutex.
 *
 * Output rules kept by the renderer: families in registration order, series
 * in creation order; `# HELP` and `# TYPE` once before the first sample of a
 * family; a family's lines contiguous; label values escaped (\\, \", \n);
 * histograms as cumulative `_bucket{le}` lines ending in le="+Inf" (equal to
 * `_count`), then `_sum` and `_count`. A family without series prints only its
 * HELP and TYPE lines. The text passes `promtool check metrics`.
 *
 * Names must match [a-zA-Z_:][a-zA-Z0-9_:]* (label names [a-zA-Z_][a-zA-Z0-9_]*,
 * not starting with "__", "le" reserved for histograms); registering an
 * invalid or duplicate name returns NULL. Counter names should end in
 * "_total" (not enforced).
 */
#ifndef VT_METRICS_H
#define VT_METRICS_H

#include <stddef.h>
#include <stdint.h>

#define VT_METRICS_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

typedef struct vt_metrics vt_metrics;               /* the registry */
typedef struct vt_metric_family vt_metric_family;   /* one metric name */
typedef struct vt_counter vt_counter;               /* one counter series */
typedef struct vt_gauge vt_gauge;                   /* one gauge series */
typedef struct vt_histogram vt_histogram;           /* one histogram series */

/* A growable text buffer owned by the caller: zero-initialise it, pass it to
 * vt_metrics_render (which appends), free(buf.data) when done. */
struct vt_metrics_buf {
    char *data; /* NUL-terminated when non-NULL */
    size_t len;
    size_t cap;
};

/* Latency buckets in seconds (1 ms .. 10 s), for vt_metrics_histogram. */
extern const double vt_metrics_latency_buckets[];
extern const size_t vt_metrics_latency_buckets_len;

/* ---- registry */

/* New empty registry, or NULL on out of memory. */
vt_metrics *vt_metrics_new(void);
/* Free the registry, every family and series; all handles become invalid. */
void vt_metrics_free(vt_metrics *reg);

/*
 * Append the whole registry as Prometheus text to *buf. Gauge and counter
 * callbacks run here, on the calling thread. Returns 0 or -ENOMEM (buf then
 * holds a partial text; still free buf->data).
 */
int vt_metrics_render(vt_metrics *reg, struct vt_metrics_buf *buf);

/* ---- families
 *
 * label_names: NULL (or "") for a metric without labels, else a
 * comma-separated list of label names, e.g. "reason" or
 * "score,segment,component". The family owns copies of all strings.
 */
vt_metric_family *vt_metrics_counter_family(vt_metrics *reg, const char *name,
                                            const char *help,
                                            const char *label_names);
vt_metric_family *vt_metrics_gauge_family(vt_metrics *reg, const char *name,
                                          const char *help,
                                          const char *label_names);
/* bounds: `nbounds` finite upper bounds, strictly increasing (copied); the
 * +Inf bucket is implicit. Returns NULL if they are not. */
vt_metric_family *vt_metrics_histogram_family(vt_metrics *reg, const char *name,
                                              const char *help,
                                              const char *label_names,
                                              const double *bounds,
                                              size_t nbounds);

/*
 * Get or create the series of a family for the given label values, one
 * `const char *` per label name in order (none for an unlabelled family).
 * The same values always return the same handle, valid until
 * vt_metrics_free (or vt_metrics_family_clear). Returns NULL on a kind
 * mismatch (a counter handle from a gauge family), a NULL value, or out of
 * memory. Creation takes the registry mutex: look handles up once and keep
 * them for hot paths.
 */
vt_counter *vt_metrics_counter_get(vt_metric_family *fam, ...);
vt_gauge *vt_metrics_gauge_get(vt_metric_family *fam, ...);
vt_histogram *vt_metrics_histogram_get(vt_metric_family *fam, ...);

/* Array forms of the above: `values` holds one string per label name. */
vt_counter *vt_metrics_counter_getv(vt_metric_family *fam, const char *const *values);
vt_gauge *vt_metrics_gauge_getv(vt_metric_family *fam, const char *const *values);
vt_histogram *vt_metrics_histogram_getv(vt_metric_family *fam,
                                        const char *const *values);

/*
 * Drop every series of a family (e.g. segments that no longer exist before a
 * scorer republishes). Every handle of that family becomes invalid: only for
 * families whose handles nobody keeps across the call.
 */
void vt_metrics_family_clear(vt_metric_family *fam);

/* Shorthands for unlabelled metrics: register the family and return its one
 * series. NULL on error as above. */
vt_counter *vt_metrics_counter(vt_metrics *reg, const char *name, const char *help);
vt_gauge *vt_metrics_gauge(vt_metrics *reg, const char *name, const char *help);
vt_histogram *vt_metrics_histogram(vt_metrics *reg, const char *name,
                                   const char *help, const double *bounds,
                                   size_t nbounds);

/*
 * An unlabelled counter or gauge whose value is computed by fn(data) at
 * render time, on the rendering thread (e.g. spool bytes, age of the oldest
 * record, open connections). Returns 0, -EINVAL (bad or duplicate name),
 * -ENOMEM. `data` must outlive the registry or be valid whenever it renders.
 */
typedef double (*vt_metrics_value_fn)(void *data);
int vt_metrics_counter_fn(vt_metrics *reg, const char *name, const char *help,
                          vt_metrics_value_fn fn, void *data);
int vt_metrics_gauge_fn(vt_metrics *reg, const char *name, const char *help,
                        vt_metrics_value_fn fn, void *data);

/* ---- updates: lock-free, any thread */

void vt_counter_inc(vt_counter *c);
void vt_counter_add(vt_counter *c, uint64_t n);
uint64_t vt_counter_value(const vt_counter *c);

void vt_gauge_set(vt_gauge *g, double v);
void vt_gauge_add(vt_gauge *g, double delta); /* negative to decrease */
double vt_gauge_value(const vt_gauge *g);

/* Record one observation (seconds for latency histograms). NaN is ignored. */
void vt_histogram_observe(vt_histogram *h, double v);
uint64_t vt_histogram_count(const vt_histogram *h);
double vt_histogram_sum(const vt_histogram *h);

#endif
