/*
 * metrics.c - see metrics.h.
 *
 * Layout: the registry is a list of families; a family owns an array of
 * series plus an open-addressing index keyed by the series' rendered label
 * text (`a="x",b="y"`, escaped). Escaping is injective for a fixed list of
 * label names, so that text is both the lookup key and exactly what the
 * renderer prints: a scrape never re-escapes anything. Series are allocated
 * one by one so that handles (pointers into them) stay put while the array
 * grows. Values live in C11 atomics so worker threads update them without
 * the mutex; only structure (families, series) and rendering take it.
 */
#include "metrics.h"

#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_LABELS 16

const double vt_metrics_latency_buckets[] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                             0.1,   0.25,   0.5,   1,    2.5,   5, 10};
const size_t vt_metrics_latency_buckets_len =
    sizeof vt_metrics_latency_buckets / sizeof vt_metrics_latency_buckets[0];

enum kind { K_COUNTER, K_GAUGE, K_HISTOGRAM };

struct vt_counter {
    _Atomic uint64_t v;
};

struct vt_gauge {
    _Atomic uint64_t bits; /* a double's bit pattern */
};

struct vt_histogram {
    _Atomic uint64_t sum_bits;
    const double *bounds; /* the family's, nb of them */
    size_t nb;
    _Atomic uint64_t counts[]; /* nb + 1, NOT cumulative; last is +Inf */
};

struct series {
    char *labels; /* rendered label pairs without braces; "" when unlabelled */
    uint64_t hash;
    union {
        struct vt_counter c;
        struct vt_gauge g;
        struct vt_histogram *h;
    } m;
};

struct vt_metric_family {
    vt_metrics *reg;
    struct vt_metric_family *next;
    char *name;
    char *help;
    enum kind kind;
    char *label_names[MAX_LABELS];
    size_t nlabels;
    double *bounds;
    size_t nbounds;
    vt_metrics_value_fn fn; /* callback metric: no series */
    void *fn_data;
    struct series **series;
    size_t nseries, cap;
    uint32_t *index; /* slot -> series index + 1; 0 empty; size index_cap (pow2) */
    size_t index_cap;
};

struct vt_metrics {
    pthread_mutex_t mu;
    vt_metric_family *first, *last;
};

/* ---- small helpers */

static uint64_t bits_of(double v)
{
    uint64_t b;
    memcpy(&b, &v, sizeof b);
    return b;
}

static double double_of(uint64_t b)
{
    double v;
    memcpy(&v, &b, sizeof v);
    return v;
}

static uint64_t hash_str(const char *s)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

static bool valid_name(const char *s, bool colon_ok)
{
    if (!s || !*s)
        return false;
    for (const char *p = s; *p; p++) {
        char c = *p;
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
                  (colon_ok && c == ':') || (p != s && c >= '0' && c <= '9');
        if (!ok)
            return false;
    }
    return true;
}

static int buf_reserve(struct vt_metrics_buf *b, size_t more)
{
    if (b->len + more + 1 <= b->cap)
        return 0;
    size_t cap = b->cap ? b->cap : 4096;
    while (cap < b->len + more + 1)
        cap *= 2;
    char *d = realloc(b->data, cap);
    if (!d)
        return -ENOMEM;
    b->data = d;
    b->cap = cap;
    return 0;
}

static int buf_put(struct vt_metrics_buf *b, const char *s, size_t n)
{
    if (buf_reserve(b, n) != 0)
        return -ENOMEM;
    memcpy(b->data + b->len, s, n);
    b->len += n;
    b->data[b->len] = '\0';
    return 0;
}

static int buf_puts(struct vt_metrics_buf *b, const char *s) { return buf_put(b, s, strlen(s)); }

/* Append s with `\\`, `\n` (and `\"` when quotes) escaped. */
static int buf_escaped(struct vt_metrics_buf *b, const char *s, bool quotes)
{
    for (const char *p = s; *p; p++) {
        const char *rep = NULL;
        if (*p == '\\')
            rep = "\\\\";
        else if (*p == '\n')
            rep = "\\n";
        else if (*p == '"' && quotes)
            rep = "\\\"";
        if (rep ? buf_puts(b, rep) : buf_put(b, p, 1))
            return -ENOMEM;
    }
    return 0;
}

/* Shortest text that reads back as the same double; Prometheus spellings
 * for the non-finite values. */
static void fmt_double(char out[32], double v)
{
    if (isnan(v)) {
        strcpy(out, "NaN");
    } else if (isinf(v)) {
        strcpy(out, v > 0 ? "+Inf" : "-Inf");
    } else {
        snprintf(out, 32, "%.15g", v);
        if (strtod(out, NULL) != v)
            snprintf(out, 32, "%.17g", v);
    }
}

/* ---- registry */

vt_metrics *vt_metrics_new(void)
{
    vt_metrics *reg = calloc(1, sizeof *reg);
    if (!reg)
        return NULL;
    if (pthread_mutex_init(&reg->mu, NULL) != 0) {
        free(reg);
        return NULL;
    }
    return reg;
}

static void series_free(struct series *s)
{
    if (!s)
        return;
    free(s->labels); /* a histogram's counts are freed by the caller, who knows the kind */
    free(s);
}

static void family_drop_series(vt_metric_family *f)
{
    for (size_t i = 0; i < f->nseries; i++) {
        if (f->kind == K_HISTOGRAM)
            free(f->series[i]->m.h);
        series_free(f->series[i]);
    }
    free(f->series);
    free(f->index);
    f->series = NULL;
    f->index = NULL;
    f->nseries = f->cap = f->index_cap = 0;
}

static void family_free(vt_metric_family *f)
{
    family_drop_series(f);
    for (size_t i = 0; i < f->nlabels; i++)
        free(f->label_names[i]);
    free(f->name);
    free(f->help);
    free(f->bounds);
    free(f);
}

void vt_metrics_free(vt_metrics *reg)
{
    if (!reg)
        return;
    vt_metric_family *f = reg->first;
    while (f) {
        vt_metric_family *next = f->next;
        family_free(f);
        f = next;
    }
    pthread_mutex_destroy(&reg->mu);
    free(reg);
}

/* Register under the mutex; NULL for bad/duplicate names or no memory. */
static vt_metric_family *family_new(vt_metrics *reg, const char *name, const char *help,
                                    enum kind kind, const char *label_names,
                                    const double *bounds, size_t nbounds)
{
    if (!reg || !valid_name(name, true))
        return NULL;
    vt_metric_family *f = calloc(1, sizeof *f);
    if (!f)
        return NULL;
    f->reg = reg;
    f->kind = kind;
    f->name = strdup(name);
    f->help = strdup(help ? help : "");
    if (!f->name || !f->help)
        goto fail;

    if (label_names && *label_names) {
        const char *p = label_names;
        for (;;) {
            const char *comma = strchr(p, ',');
            size_t n = comma ? (size_t)(comma - p) : strlen(p);
            if (f->nlabels == MAX_LABELS)
                goto fail;
            char *ln = strndup(p, n);
            if (!ln)
                goto fail;
            f->label_names[f->nlabels++] = ln;
            if (!valid_name(ln, false) || strncmp(ln, "__", 2) == 0 ||
                (kind == K_HISTOGRAM && strcmp(ln, "le") == 0))
                goto fail;
            for (size_t i = 0; i + 1 < f->nlabels; i++)
                if (strcmp(f->label_names[i], ln) == 0)
                    goto fail;
            if (!comma)
                break;
            p = comma + 1;
        }
    }
    if (kind == K_HISTOGRAM) {
        if (nbounds == 0 || !bounds)
            goto fail;
        for (size_t i = 0; i < nbounds; i++)
            if (!isfinite(bounds[i]) || (i > 0 && !(bounds[i] > bounds[i - 1])))
                goto fail;
        f->bounds = malloc(nbounds * sizeof *bounds);
        if (!f->bounds)
            goto fail;
        memcpy(f->bounds, bounds, nbounds * sizeof *bounds);
        f->nbounds = nbounds;
    }

    pthread_mutex_lock(&reg->mu);
    for (vt_metric_family *o = reg->first; o; o = o->next) {
        if (strcmp(o->name, name) == 0) {
            pthread_mutex_unlock(&reg->mu);
            goto fail;
        }
    }
    if (reg->last)
        reg->last->next = f;
    else
        reg->first = f;
    reg->last = f;
    pthread_mutex_unlock(&reg->mu);
    return f;
fail:
    family_free(f);
    return NULL;
}

vt_metric_family *vt_metrics_counter_family(vt_metrics *reg, const char *name,
                                            const char *help, const char *label_names)
{
    return family_new(reg, name, help, K_COUNTER, label_names, NULL, 0);
}

vt_metric_family *vt_metrics_gauge_family(vt_metrics *reg, const char *name,
                                          const char *help, const char *label_names)
{
    return family_new(reg, name, help, K_GAUGE, label_names, NULL, 0);
}

vt_metric_family *vt_metrics_histogram_family(vt_metrics *reg, const char *name,
                                              const char *help, const char *label_names,
                                              const double *bounds, size_t nbounds)
{
    return family_new(reg, name, help, K_HISTOGRAM, label_names, bounds, nbounds);
}

static int fn_family(vt_metrics *reg, const char *name, const char *help, enum kind kind,
                     vt_metrics_value_fn fn, void *data)
{
    if (!fn)
        return -EINVAL;
    vt_metric_family *f = family_new(reg, name, help, kind, NULL, NULL, 0);
    if (!f)
        return -EINVAL; /* bad/duplicate name, or (rarely) out of memory */
    /* Not yet visible to a concurrent render in a torn state: render takes
     * the mutex, and these two stores are published by the unlock below. */
    pthread_mutex_lock(&reg->mu);
    f->fn = fn;
    f->fn_data = data;
    pthread_mutex_unlock(&reg->mu);
    return 0;
}

int vt_metrics_counter_fn(vt_metrics *reg, const char *name, const char *help,
                          vt_metrics_value_fn fn, void *data)
{
    return fn_family(reg, name, help, K_COUNTER, fn, data);
}

int vt_metrics_gauge_fn(vt_metrics *reg, const char *name, const char *help,
                        vt_metrics_value_fn fn, void *data)
{
    return fn_family(reg, name, help, K_GAUGE, fn, data);
}

/* ---- series lookup */

static int index_grow(vt_metric_family *f)
{
    size_t cap = f->index_cap ? f->index_cap * 2 : 16;
    uint32_t *idx = calloc(cap, sizeof *idx);
    if (!idx)
        return -ENOMEM;
    for (size_t i = 0; i < f->nseries; i++) {
        size_t slot = f->series[i]->hash & (cap - 1);
        while (idx[slot])
            slot = (slot + 1) & (cap - 1);
        idx[slot] = (uint32_t)(i + 1);
    }
    free(f->index);
    f->index = idx;
    f->index_cap = cap;
    return 0;
}

static struct series *series_get(vt_metric_family *f, enum kind kind,
                                 const char *const *values)
{
    if (!f || f->kind != kind || f->fn)
        return NULL;
    struct vt_metrics_buf key = {0};
    for (size_t i = 0; i < f->nlabels; i++) {
        if (!values || !values[i]) {
            free(key.data);
            return NULL;
        }
        if ((i && buf_puts(&key, ",")) || buf_puts(&key, f->label_names[i]) ||
            buf_puts(&key, "=\"") || buf_escaped(&key, values[i], true) ||
            buf_puts(&key, "\"")) {
            free(key.data);
            return NULL;
        }
    }
    if (!key.data && !(key.data = strdup("")))
        return NULL;
    uint64_t h = hash_str(key.data);

    vt_metrics *reg = f->reg;
    pthread_mutex_lock(&reg->mu);
    struct series *s = NULL;
    if (f->index_cap) {
        for (size_t slot = h & (f->index_cap - 1); f->index[slot];
             slot = (slot + 1) & (f->index_cap - 1)) {
            struct series *c = f->series[f->index[slot] - 1];
            if (c->hash == h && strcmp(c->labels, key.data) == 0) {
                s = c;
                break;
            }
        }
    }
    if (s) {
        pthread_mutex_unlock(&reg->mu);
        free(key.data);
        return s;
    }

    /* Create: keep the index at most half full. */
    if ((f->nseries + 1) * 2 > f->index_cap && index_grow(f) != 0)
        goto oom;
    if (f->nseries == f->cap) {
        size_t cap = f->cap ? f->cap * 2 : 8;
        struct series **a = realloc(f->series, cap * sizeof *a);
        if (!a)
            goto oom;
        f->series = a;
        f->cap = cap;
    }
    s = calloc(1, sizeof *s);
    if (!s)
        goto oom;
    if (kind == K_HISTOGRAM) {
        s->m.h = calloc(1, sizeof *s->m.h + (f->nbounds + 1) * sizeof s->m.h->counts[0]);
        if (!s->m.h) {
            free(s);
            goto oom;
        }
        s->m.h->bounds = f->bounds;
        s->m.h->nb = f->nbounds;
    }
    s->labels = key.data;
    s->hash = h;
    f->series[f->nseries++] = s;
    size_t slot = h & (f->index_cap - 1);
    while (f->index[slot])
        slot = (slot + 1) & (f->index_cap - 1);
    f->index[slot] = (uint32_t)f->nseries;
    pthread_mutex_unlock(&reg->mu);
    return s;
oom:
    pthread_mutex_unlock(&reg->mu);
    free(key.data);
    return NULL;
}

static struct series *series_getva(vt_metric_family *f, enum kind kind, va_list ap)
{
    if (!f)
        return NULL;
    const char *values[MAX_LABELS];
    for (size_t i = 0; i < f->nlabels; i++)
        values[i] = va_arg(ap, const char *);
    return series_get(f, kind, values);
}

vt_counter *vt_metrics_counter_getv(vt_metric_family *fam, const char *const *values)
{
    struct series *s = series_get(fam, K_COUNTER, values);
    return s ? &s->m.c : NULL;
}

vt_gauge *vt_metrics_gauge_getv(vt_metric_family *fam, const char *const *values)
{
    struct series *s = series_get(fam, K_GAUGE, values);
    return s ? &s->m.g : NULL;
}

vt_histogram *vt_metrics_histogram_getv(vt_metric_family *fam, const char *const *values)
{
    struct series *s = series_get(fam, K_HISTOGRAM, values);
    return s ? s->m.h : NULL;
}

vt_counter *vt_metrics_counter_get(vt_metric_family *fam, ...)
{
    va_list ap;
    va_start(ap, fam);
    struct series *s = series_getva(fam, K_COUNTER, ap);
    va_end(ap);
    return s ? &s->m.c : NULL;
}

vt_gauge *vt_metrics_gauge_get(vt_metric_family *fam, ...)
{
    va_list ap;
    va_start(ap, fam);
    struct series *s = series_getva(fam, K_GAUGE, ap);
    va_end(ap);
    return s ? &s->m.g : NULL;
}

vt_histogram *vt_metrics_histogram_get(vt_metric_family *fam, ...)
{
    va_list ap;
    va_start(ap, fam);
    struct series *s = series_getva(fam, K_HISTOGRAM, ap);
    va_end(ap);
    return s ? s->m.h : NULL;
}

void vt_metrics_family_clear(vt_metric_family *fam)
{
    if (!fam)
        return;
    pthread_mutex_lock(&fam->reg->mu);
    family_drop_series(fam);
    pthread_mutex_unlock(&fam->reg->mu);
}

vt_counter *vt_metrics_counter(vt_metrics *reg, const char *name, const char *help)
{
    return vt_metrics_counter_getv(vt_metrics_counter_family(reg, name, help, NULL), NULL);
}

vt_gauge *vt_metrics_gauge(vt_metrics *reg, const char *name, const char *help)
{
    return vt_metrics_gauge_getv(vt_metrics_gauge_family(reg, name, help, NULL), NULL);
}

vt_histogram *vt_metrics_histogram(vt_metrics *reg, const char *name, const char *help,
                                   const double *bounds, size_t nbounds)
{
    return vt_metrics_histogram_getv(
        vt_metrics_histogram_family(reg, name, help, NULL, bounds, nbounds), NULL);
}

/* ---- updates */

void vt_counter_inc(vt_counter *c) { atomic_fetch_add_explicit(&c->v, 1, memory_order_relaxed); }

void vt_counter_add(vt_counter *c, uint64_t n)
{
    atomic_fetch_add_explicit(&c->v, n, memory_order_relaxed);
}

uint64_t vt_counter_value(const vt_counter *c)
{
    return atomic_load_explicit(&((vt_counter *)c)->v, memory_order_relaxed);
}

void vt_gauge_set(vt_gauge *g, double v)
{
    atomic_store_explicit(&g->bits, bits_of(v), memory_order_relaxed);
}

static void atomic_add_double(_Atomic uint64_t *bits, double delta)
{
    uint64_t old = atomic_load_explicit(bits, memory_order_relaxed);
    while (!atomic_compare_exchange_weak_explicit(bits, &old, bits_of(double_of(old) + delta),
                                                  memory_order_relaxed, memory_order_relaxed))
        ;
}

void vt_gauge_add(vt_gauge *g, double delta) { atomic_add_double(&g->bits, delta); }

double vt_gauge_value(const vt_gauge *g)
{
    return double_of(atomic_load_explicit(&((vt_gauge *)g)->bits, memory_order_relaxed));
}

void vt_histogram_observe(vt_histogram *h, double v)
{
    if (isnan(v))
        return;
    /* First bound >= v (Prometheus buckets are "less or equal"). */
    size_t lo = 0, hi = h->nb;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (h->bounds[mid] >= v)
            hi = mid;
        else
            lo = mid + 1;
    }
    assert(lo <= h->nb);
    atomic_fetch_add_explicit(&h->counts[lo], 1, memory_order_relaxed);
    atomic_add_double(&h->sum_bits, v);
}

uint64_t vt_histogram_count(const vt_histogram *h)
{
    uint64_t n = 0;
    for (size_t i = 0; i <= h->nb; i++)
        n += atomic_load_explicit(&((vt_histogram *)h)->counts[i], memory_order_relaxed);
    return n;
}

double vt_histogram_sum(const vt_histogram *h)
{
    return double_of(atomic_load_explicit(&((vt_histogram *)h)->sum_bits, memory_order_relaxed));
}

/* ---- rendering */

/* name[suffix]{labels[,extra]} value\n */
static int put_sample(struct vt_metrics_buf *b, const char *name, const char *suffix,
                      const char *labels, const char *extra, const char *value)
{
    bool any = (labels && *labels) || extra;
    if (buf_puts(b, name) || (suffix && buf_puts(b, suffix)))
        return -ENOMEM;
    if (any) {
        if (buf_puts(b, "{") || (labels && buf_puts(b, labels)) ||
            (extra && labels && *labels && buf_puts(b, ",")) || (extra && buf_puts(b, extra)) ||
            buf_puts(b, "}"))
            return -ENOMEM;
    }
    if (buf_puts(b, " ") || buf_puts(b, value) || buf_puts(b, "\n"))
        return -ENOMEM;
    return 0;
}

static int render_family(vt_metric_family *f, struct vt_metrics_buf *b)
{
    static const char *type_names[] = {"counter", "gauge", "histogram"};
    char num[32];
    if (buf_puts(b, "# HELP ") || buf_puts(b, f->name) || buf_puts(b, " ") ||
        buf_escaped(b, f->help, false) || buf_puts(b, "\n# TYPE ") || buf_puts(b, f->name) ||
        buf_puts(b, " ") || buf_puts(b, type_names[f->kind]) || buf_puts(b, "\n"))
        return -ENOMEM;

    if (f->fn) {
        fmt_double(num, f->fn(f->fn_data));
        return put_sample(b, f->name, NULL, NULL, NULL, num);
    }
    for (size_t i = 0; i < f->nseries; i++) {
        struct series *s = f->series[i];
        if (f->kind == K_COUNTER) {
            snprintf(num, sizeof num, "%" PRIu64, vt_counter_value(&s->m.c));
            if (put_sample(b, f->name, NULL, s->labels, NULL, num))
                return -ENOMEM;
        } else if (f->kind == K_GAUGE) {
            fmt_double(num, vt_gauge_value(&s->m.g));
            if (put_sample(b, f->name, NULL, s->labels, NULL, num))
                return -ENOMEM;
        } else {
            /* Buckets are read once each and summed here, so le="+Inf" and
             * _count agree even while other threads observe. */
            struct vt_histogram *h = s->m.h;
            uint64_t cum = 0;
            char le[48];
            for (size_t k = 0; k <= h->nb; k++) {
                cum += atomic_load_explicit(&h->counts[k], memory_order_relaxed);
                if (k < h->nb) {
                    fmt_double(num, h->bounds[k]);
                    snprintf(le, sizeof le, "le=\"%s\"", num);
                } else {
                    strcpy(le, "le=\"+Inf\"");
                }
                snprintf(num, sizeof num, "%" PRIu64, cum);
                if (put_sample(b, f->name, "_bucket", s->labels, le, num))
                    return -ENOMEM;
            }
            fmt_double(num, vt_histogram_sum(h));
            if (put_sample(b, f->name, "_sum", s->labels, NULL, num))
                return -ENOMEM;
            snprintf(num, sizeof num, "%" PRIu64, cum);
            if (put_sample(b, f->name, "_count", s->labels, NULL, num))
                return -ENOMEM;
        }
    }
    return 0;
}

int vt_metrics_render(vt_metrics *reg, struct vt_metrics_buf *buf)
{
    assert(reg && buf);
    if (buf_reserve(buf, 0) != 0) /* so that data is never NULL on success */
        return -ENOMEM;
    buf->data[buf->len] = '\0';
    int rc = 0;
    pthread_mutex_lock(&reg->mu);
    for (vt_metric_family *f = reg->first; f && rc == 0; f = f->next)
        rc = render_family(f, buf);
    pthread_mutex_unlock(&reg->mu);
    return rc;
}
