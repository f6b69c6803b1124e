/*
 * score_acc.c - the score engine's accumulators: what a score reads from a
 * rollup (struct vt_acc_needs) and merging just that (see score_acc.h).
 *
 * Why its own file: this is the inner loop of every evaluation (a merge per
 * rollup per score population), with its own economies - sketches read only
 * by mean/sum/min/max merged as totals, data-quality counters and named
 * metrics only when a component reads them - while score.c orchestrates.
 */
#include "score_acc.h"

#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define N_FIXED 5
static const char *const fixed_names[N_FIXED] = {"latency_ms", "ttft_ms", "input_tokens",
                                                 "output_tokens", "cost_usd"};

static vt_sketch *fixed_sketch(struct vt_aggregate *a, int i)
{
    switch (i) {
    case 0: return &a->latency_ms;
    case 1: return &a->ttft_ms;
    case 2: return &a->input_tokens;
    case 3: return &a->output_tokens;
    default: return &a->cost_usd;
    }
}

static int fixed_index(const char *name)
{
    for (int i = 0; i < N_FIXED; i++)
        if (strcmp(name, fixed_names[i]) == 0)
            return i;
    return -1;
}

void vt_acc_needs_free(struct vt_acc_needs *n)
{
    for (uint32_t i = 0; i < n->n_names; i++)
        free(n->names[i]);
    free(n->names);
    memset(n, 0, sizeof *n);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int vt_acc_needs_add_metric(struct vt_acc_needs *n, const char *metric)
{
    int fi = fixed_index(metric);
    if (fi >= 0) {
        n->fixed |= (uint8_t)(1u << fi);
        return 0;
    }
    for (uint32_t i = 0; i < n->n_names; i++)
        if (strcmp(n->names[i], metric) == 0)
            return 0;
    char **nn = realloc(n->names, (n->n_names + 1) * sizeof *nn);
    if (!nn)
        return -ENOMEM;
    n->names = nn;
    if (!(nn[n->n_names] = strdup(metric)))
        return -ENOMEM;
    n->n_names++;
    qsort(n->names, n->n_names, sizeof *n->names, cmp_str);
    return 0;
}

/* Whether statistic `st` reads a sketch's buckets (else count, sum, min and
 * max are all it reads). */
static bool stat_reads_buckets(enum vt_stat st)
{
    switch (st) {
    case VT_STAT_QUANTILE:
    case VT_STAT_FRAC_ABOVE:
    case VT_STAT_FRAC_BELOW:
    case VT_STAT_PSI:
    case VT_STAT_JS:
        return true;
    default:
        return false;
    }
}

/* n must carry what component c reads (of the current window, or of its
 * baseline when `base`). */
int vt_acc_needs_add_component(struct vt_acc_needs *n, const struct vt_score_component_def *c, bool base)
{
    if (c->metric) {
        if (vt_acc_needs_add_metric(n, c->metric))
            return -ENOMEM;
        int fi = fixed_index(c->metric);
        if (fi >= 0 && stat_reads_buckets(c->stat))
            n->fixed_full |= (uint8_t)(1u << fi);
    }
    if (!base && (c->stat == VT_STAT_INVALID_RATE || c->stat == VT_STAT_MISSING_RATE))
        n->quality = true;
    return 0;
}

/* dst += src for a sketch whose buckets no statistic reads: count, sum, min
 * and max exactly as vt_sketch_merge would leave them, every value counted
 * in the zero bucket (so the sketch stays consistent: count == zero_count +
 * buckets, and merging such sketches with vt_sketch_merge keeps them so).
 * Skips the bucket arrays, most of the bytes a merge reads (a cost sketch
 * spans hundreds of buckets). */
static int sketch_merge_totals(vt_sketch *dst, const vt_sketch *src)
{
    if (src->count == 0)
        return 0;
    if (dst->count > UINT64_MAX - src->count)
        return -EOVERFLOW;
    assert(dst->pos.total == 0 && dst->neg.total == 0);
    dst->count += src->count;
    dst->zero_count += src->count;
    dst->sum += src->sum;
    if (src->min < dst->min)
        dst->min = src->min;
    if (src->max > dst->max)
        dst->max = src->max;
    return 0;
}

int vt_acc_init(struct vt_aggregate *a, const struct vt_acc_needs *n)
{
    vt_aggregate_init(a);
    for (uint32_t i = 0; i < n->n_names; i++)
        if (!vt_aggregate_metric(a, n->names[i]))
            return -ENOMEM;
    return 0;
}

void vt_acc_reset(struct vt_aggregate *a, const struct vt_acc_needs *n)
{
    a->count = a->errors = 0;
    memset(a->invalid_by_reason, 0, sizeof a->invalid_by_reason);
    memset(a->missing_by_field, 0, sizeof a->missing_by_field);
    for (int i = 0; i < N_FIXED; i++)
        if (n->fixed & (1u << i))
            vt_sketch_reset(fixed_sketch(a, i));
    for (uint32_t i = 0; i < a->n_metrics; i++)
        vt_sketch_reset(&a->metrics[i].sketch);
    if (a->embedding_sum)
        memset(a->embedding_sum, 0, a->embedding_dim * sizeof(double));
    a->embedding_count = a->embedding_mismatch = 0;
    a->n_exemplars = 0;
}

/* Keep the slowest "slow" exemplars and the latest failed ones. */
static void acc_exemplar(struct vt_aggregate *a, const struct vt_exemplar_rank *x, const char *id)
{
    if (a->n_exemplars < VT_AGG_MAX_EXEMPLARS) {
        vt_aggregate_put_exemplar(a, a->n_exemplars++, x, id);
        return;
    }
    int victim = -1;
    for (uint32_t i = 0; i < a->n_exemplars; i++) {
        const struct vt_exemplar_rank *e = &a->exemplars[i];
        if (e->kind != x->kind)
            continue;
        if (victim < 0 || (x->kind == VT_EXEMPLAR_FAILED
                               ? e->ts_ms < a->exemplars[victim].ts_ms
                               : e->latency_ms < a->exemplars[victim].latency_ms))
            victim = (int)i;
    }
    if (victim < 0) {
        /* No exemplar of this kind yet: take the slot of the most numerous kind. */
        uint32_t failed = 0;
        for (uint32_t i = 0; i < a->n_exemplars; i++)
            failed += a->exemplars[i].kind == VT_EXEMPLAR_FAILED;
        enum vt_exemplar_kind k =
            failed * 2 > a->n_exemplars ? VT_EXEMPLAR_FAILED : VT_EXEMPLAR_SLOWEST;
        for (uint32_t i = 0; i < a->n_exemplars; i++)
            if (a->exemplars[i].kind == k) {
                vt_aggregate_put_exemplar(a, i, x, id);
                return;
            }
        return;
    }
    const struct vt_exemplar_rank *v = &a->exemplars[victim];
    if (x->kind == VT_EXEMPLAR_FAILED ? x->ts_ms > v->ts_ms : x->latency_ms > v->latency_ms)
        vt_aggregate_put_exemplar(a, (uint32_t)victim, x, id);
}

void vt_acc_reads_add(struct vt_agg_reads *r, const struct vt_acc_needs *n)
{
    r->fixed |= n->fixed;
    r->buckets |= n->fixed_full;
    r->metrics |= n->n_names > 0;
    r->exemplars |= n->exemplars;
    r->embedding |= n->embedding;
    r->quality |= n->quality;
}

/* dst += the parts of src that `n` asks for. */
int vt_acc_merge(struct vt_aggregate *dst, const struct vt_aggregate *src,
                     const struct vt_acc_needs *n)
{
    int rc = 0;
    dst->count += src->count;
    dst->errors += src->errors;
    if (n->quality) {
        for (int i = 0; i < VT_REJECT__COUNT; i++)
            dst->invalid_by_reason[i] += src->invalid_by_reason[i];
        for (int i = 0; i <= VT_FIELD_LAST; i++)
            dst->missing_by_field[i] += src->missing_by_field[i];
    }
    for (int i = 0; i < N_FIXED; i++) {
        if (!(n->fixed & (1u << i)))
            continue;
        vt_sketch *d = fixed_sketch(dst, i);
        const vt_sketch *s = fixed_sketch((struct vt_aggregate *)src, i);
        rc |= n->fixed_full & (1u << i) ? vt_sketch_merge(d, s) : sketch_merge_totals(d, s);
    }
    if (dst->n_metrics > 0 && src->n_metrics > 0)
        for (uint32_t i = 0; i < dst->n_metrics; i++) {
            const vt_sketch *s = vt_aggregate_sketch(src, dst->metrics[i].name);
            if (s && s->count)
                rc |= vt_sketch_merge(&dst->metrics[i].sketch, s);
        }
    if (n->embedding && src->embedding_sum && src->embedding_count) {
        if (dst->embedding_count == 0 && dst->embedding_dim != src->embedding_dim) {
            double *e = realloc(dst->embedding_sum, src->embedding_dim * sizeof(double));
            if (!e)
                return -ENOMEM;
            dst->embedding_sum = e;
            dst->embedding_dim = src->embedding_dim;
            memset(e, 0, src->embedding_dim * sizeof(double));
        }
        if (dst->embedding_dim == src->embedding_dim) {
            for (uint32_t i = 0; i < src->embedding_dim; i++)
                dst->embedding_sum[i] += src->embedding_sum[i];
            dst->embedding_count += src->embedding_count;
        } else {
            dst->embedding_mismatch += src->embedding_count;
        }
    }
    if (n->exemplars)
        for (uint32_t i = 0; i < src->n_exemplars; i++)
            acc_exemplar(dst, &src->exemplars[i], src->exemplar_ids[i]);
    return rc ? -ENOMEM : 0;
}
