/*
 * stats.c - the statistics a score component reads off an aggregate, and
 * their normalisation (declared in score.h, with the types they read).
 *
 * Why a file of its own: these are pure functions of one or two aggregates
 * (or sketches) - no engine state, no allocation, no I/O - so they read and
 * test in isolation from score.c, which owns accumulation, segments, the
 * state machine and history. Drift (PSI, Jensen-Shannon) compares bin shares
 * cut at the baseline's deciles; centroid distance compares embedding means.
 */
#include "score.h"

#include <math.h>
#include <stdbool.h>
#include <stdint.h>

double vt_score_normalize(double v, double good, double bad)
{
    if (isnan(v) || good == bad)
        return NAN;
    double n = (v - bad) / (good - bad);
    if (n < 0 || isnan(n))
        n = 0;
    if (n > 1)
        n = 1;
    return n;
}

#define DRIFT_BINS 10
#define DRIFT_EPS 1e-4

/* Bin shares of a sketch over the cut points (n cuts -> n + 1 bins). */
static void bin_shares(const vt_sketch *s, const double *cuts, int n, double *out)
{
    double prev = 0;
    for (int i = 0; i < n; i++) {
        double r = vt_sketch_rank(s, cuts[i]);
        if (isnan(r))
            r = prev;
        if (r < prev)
            r = prev;
        out[i] = r - prev;
        prev = r;
    }
    out[n] = 1.0 - prev;
    if (out[n] < 0)
        out[n] = 0;
    /* Smooth empty bins, then renormalise so each side sums to 1. */
    double sum = 0;
    for (int i = 0; i <= n; i++) {
        if (out[i] < DRIFT_EPS)
            out[i] = DRIFT_EPS;
        sum += out[i];
    }
    for (int i = 0; i <= n; i++)
        out[i] /= sum;
}

/* Cut points at the baseline's deciles, duplicates removed. Returns n cuts. */
static int decile_cuts(const vt_sketch *base, double *cuts)
{
    int n = 0;
    for (int i = 1; i < DRIFT_BINS; i++) {
        double c = vt_sketch_quantile(base, (double)i / DRIFT_BINS);
        if (isnan(c))
            continue;
        if (n > 0 && c <= cuts[n - 1])
            continue;
        cuts[n++] = c;
    }
    return n;
}

static int drift_shares(const vt_sketch *cur, const vt_sketch *base, double *a, double *e)
{
    if (!cur || !base || vt_sketch_count(cur) == 0 || vt_sketch_count(base) == 0)
        return -1;
    double cuts[DRIFT_BINS];
    int n = decile_cuts(base, cuts);
    bin_shares(cur, cuts, n, a);
    bin_shares(base, cuts, n, e);
    return n + 1;
}

double vt_score_psi(const vt_sketch *cur, const vt_sketch *base)
{
    double a[DRIFT_BINS], e[DRIFT_BINS];
    int n = drift_shares(cur, base, a, e);
    if (n < 0)
        return NAN;
    double psi = 0;
    for (int i = 0; i < n; i++)
        psi += (a[i] - e[i]) * log(a[i] / e[i]);
    return psi;
}

double vt_score_js(const vt_sketch *cur, const vt_sketch *base)
{
    double p[DRIFT_BINS], q[DRIFT_BINS];
    int n = drift_shares(cur, base, p, q);
    if (n < 0)
        return NAN;
    double js = 0;
    for (int i = 0; i < n; i++) {
        double m = (p[i] + q[i]) / 2;
        js += 0.5 * p[i] * log2(p[i] / m) + 0.5 * q[i] * log2(q[i] / m);
    }
    if (js < 0)
        js = 0; /* rounding */
    double d = sqrt(js);
    return d > 1 ? 1 : d;
}

static const vt_sketch *metric_of(const struct vt_aggregate *a, const char *metric)
{
    return a && metric ? vt_aggregate_sketch(a, metric) : NULL;
}

double vt_score_stat(const struct vt_score_component_def *c, const struct vt_aggregate *cur,
                     const struct vt_aggregate *base, int64_t window_ms, uint64_t *count,
                     enum vt_missing *missing)
{
    const vt_sketch *s = NULL;
    uint64_t n = 0;
    double v = NAN;
    enum vt_missing m = VT_MISSING_NONE;
    bool check_min = true;

    switch (c->stat) {
    case VT_STAT_COUNT:
    case VT_STAT_RATE:
        /* Traffic itself: zero is a real value, never "too little data". */
        check_min = false;
        if (c->metric) {
            s = metric_of(cur, c->metric);
            n = s ? vt_sketch_count(s) : 0;
        } else {
            n = cur->count;
        }
        v = c->stat == VT_STAT_COUNT ? (double)n
                                     : (window_ms > 0 ? (double)n / ((double)window_ms / 1000.0)
                                                      : NAN);
        break;
    case VT_STAT_ERROR_RATE:
        n = cur->count;
        if (n > 0)
            v = (double)cur->errors / (double)n;
        break;
    case VT_STAT_MEAN:
    case VT_STAT_SUM:
    case VT_STAT_MIN:
    case VT_STAT_MAX:
    case VT_STAT_QUANTILE:
    case VT_STAT_FRAC_ABOVE:
    case VT_STAT_FRAC_BELOW:
        s = metric_of(cur, c->metric);
        n = s ? vt_sketch_count(s) : 0;
        if (n == 0)
            break;
        switch (c->stat) {
        case VT_STAT_MEAN: v = vt_sketch_mean(s); break;
        case VT_STAT_SUM: v = vt_sketch_sum(s); break;
        case VT_STAT_MIN: v = vt_sketch_min(s); break;
        case VT_STAT_MAX: v = vt_sketch_max(s); break;
        case VT_STAT_QUANTILE: v = vt_sketch_quantile(s, c->q); break;
        case VT_STAT_FRAC_ABOVE: v = 1.0 - vt_sketch_rank(s, c->bound); break;
        default: v = vt_sketch_rank(s, c->bound); break;
        }
        break;
    case VT_STAT_PSI:
    case VT_STAT_JS: {
        s = metric_of(cur, c->metric);
        const vt_sketch *b = metric_of(base, c->metric);
        n = s ? vt_sketch_count(s) : 0;
        uint64_t nb = b ? vt_sketch_count(b) : 0;
        if (n >= c->min_count && n > 0 && (nb < c->min_count || nb == 0)) {
            m = VT_MISSING_NO_BASELINE;
            break;
        }
        if (n > 0 && nb > 0)
            v = c->stat == VT_STAT_PSI ? vt_score_psi(s, b) : vt_score_js(s, b);
        break;
    }
    case VT_STAT_CENTROID_DISTANCE: {
        n = cur->embedding_count;
        uint64_t nb = base ? base->embedding_count : 0;
        if (n >= c->min_count && n > 0 && (nb < c->min_count || nb == 0)) {
            m = VT_MISSING_NO_BASELINE;
            break;
        }
        if (n == 0 || nb == 0 || !cur->embedding_sum || !base->embedding_sum)
            break;
        if (cur->embedding_dim != base->embedding_dim) {
            m = VT_MISSING_UNDEFINED;
            break;
        }
        double d2 = 0;
        for (uint32_t i = 0; i < cur->embedding_dim; i++) {
            double d = cur->embedding_sum[i] / (double)n - base->embedding_sum[i] / (double)nb;
            d2 += d * d;
        }
        v = sqrt(d2);
        break;
    }
    case VT_STAT_INVALID_RATE: {
        uint64_t inv = vt_aggregate_invalid_total(cur);
        n = cur->count + inv;
        if (n > 0)
            v = (double)inv / (double)n;
        break;
    }
    case VT_STAT_MISSING_RATE:
        n = cur->count;
        if (n > 0 && c->field)
            v = (double)vt_aggregate_missing(cur, c->field) / (double)n;
        break;
    case VT_STAT__COUNT:
        break;
    }
    if (m == VT_MISSING_NONE && check_min && (n < c->min_count || n == 0))
        m = VT_MISSING_MIN_COUNT;
    if (m == VT_MISSING_NONE && isnan(v))
        m = VT_MISSING_UNDEFINED;
    *count = n;
    *missing = m;
    return v;
}
