/*
 * sketch.c - DDSketch over the OpenTelemetry exponential-histogram mapping.
 *
 * The contract (mapping, error bound, memory, wire form) is in sketch.h.
 * Here: the bounded stores with adaptive counter width, quantile and rank
 * walks, merge/downscale, and the validating decoder that reads
 * the wire form in place. The value ->
 * bucket index mapping they are built on is sketch_index.c/.h.
 *
 * Store invariants (checked by store_check() in debug builds):
 *   - total == 0  <=> every allocated counter is 0; lo/hi are meaningless.
 *   - total > 0   =>  offset <= lo <= hi < offset + cap, counters at lo and
 *                     hi are non-zero, counters outside [lo, hi] are zero,
 *                     and hi - lo + 1 <= max_bins of the owning sketch.
 *   - every counter fits in `width` bytes; width only grows.
 */
#include "sketch.h"
#include "pb_wire.h"
#include "sketch_index.h"

#include <assert.h>
#include <errno.h>
#include <float.h>
#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#define INIT_CAP 16u

/* ---------------------------------------------------------------------- */
/* Stores                                                                   */
/* ---------------------------------------------------------------------- */

static inline uint64_t width_max(unsigned w)
{
    return w >= 8 ? UINT64_MAX : (1ull << (8 * w)) - 1;
}

static inline uint8_t width_for(uint64_t v)
{
    return v <= 0xff ? 1 : v <= 0xffff ? 2 : v <= 0xffffffffull ? 4 : 8;
}

static inline uint64_t cnt_get(const void *bins, unsigned w, size_t p)
{
    switch (w) {
    case 1: return ((const uint8_t *)bins)[p];
    case 2: return ((const uint16_t *)bins)[p];
    case 4: return ((const uint32_t *)bins)[p];
    default: return ((const uint64_t *)bins)[p];
    }
}

static inline void cnt_set(void *bins, unsigned w, size_t p, uint64_t v)
{
    assert(v <= width_max(w));
    switch (w) {
    case 1: ((uint8_t *)bins)[p] = (uint8_t)v; break;
    case 2: ((uint16_t *)bins)[p] = (uint16_t)v; break;
    case 4: ((uint32_t *)bins)[p] = (uint32_t)v; break;
    default: ((uint64_t *)bins)[p] = v; break;
    }
}

static inline uint64_t store_get(const vt_sketch_store *st, int32_t i)
{
    int64_t p = (int64_t)i - st->offset;
    if (st->total == 0 || p < 0 || p >= st->cap)
        return 0;
    return cnt_get(st->bins, st->width, (size_t)p);
}

#ifndef NDEBUG
static void store_check(const vt_sketch_store *st, uint32_t max_bins)
{
    if (st->total == 0) {
        for (uint32_t p = 0; p < st->cap; p++)
            assert(cnt_get(st->bins, st->width, p) == 0);
        return;
    }
    assert(st->offset <= st->lo && st->lo <= st->hi);
    assert((int64_t)st->hi < (int64_t)st->offset + st->cap);
    assert((int64_t)st->hi - st->lo + 1 <= max_bins);
    assert(store_get(st, st->lo) != 0 && store_get(st, st->hi) != 0);
}
#else
#define store_check(st, max_bins) ((void)0)
#endif

static void store_free(vt_sketch_store *st)
{
    free(st->bins);
    memset(st, 0, sizeof *st);
    st->width = 1;
}

/* Widen every counter so that `need` fits. The store is unchanged on error. */
static int store_widen(vt_sketch_store *st, uint64_t need)
{
    uint8_t nw = width_for(need), ow = st->width;
    if (nw <= ow)
        return 0;
    if (st->cap > 0) {
        void *b = realloc(st->bins, (size_t)st->cap * nw);
        if (!b)
            return -ENOMEM;
        /* Top down: new slot p only overlaps old slots > p, already moved. */
        for (size_t p = st->cap; p-- > 0;)
            cnt_set(b, nw, p, cnt_get(b, ow, p));
        st->bins = b;
    }
    st->width = nw;
    return 0;
}

/* Move the contents into a new buffer covering [noff, noff + ncap), folding
 * every bucket below `fold` into `fold`. The new window must contain
 * [max(lo, fold), hi]. Unchanged on error. */
static int store_rebuild(vt_sketch_store *st, int32_t noff, uint32_t ncap, int32_t fold)
{
    uint8_t w = st->width;
    uint64_t folded = 0;
    if (st->total > 0)
        for (int32_t j = st->lo; j <= fold && j <= st->hi; j++)
            folded += store_get(st, j);
    if (width_for(folded) > w)
        w = width_for(folded);
    void *nb = calloc(ncap, w);
    if (!nb)
        return -ENOMEM;
    if (st->total > 0) {
        int32_t nlo = st->lo < fold ? fold : st->lo;
        assert(nlo >= noff && (int64_t)st->hi < (int64_t)noff + ncap);
        int32_t from = st->lo;
        if (st->lo < fold) { /* the folded tail, summed above */
            cnt_set(nb, w, (size_t)(fold - noff), folded);
            from = fold + 1;
        }
        if (from <= st->hi && w == st->width) {
            memcpy((uint8_t *)nb + (size_t)(from - noff) * w,
                   (const uint8_t *)st->bins + (size_t)(from - st->offset) * w,
                   (size_t)(st->hi - from + 1) * w);
        } else {
            for (int32_t j = from; j <= st->hi; j++)
                cnt_set(nb, w, (size_t)(j - noff), store_get(st, j));
        }
        if (st->lo < fold)
            st->collapsed = 1;
        st->lo = nlo;
        if (st->hi < nlo) /* everything folded into one bucket */
            st->hi = nlo;
    }
    free(st->bins);
    st->bins = nb;
    st->offset = noff;
    st->cap = ncap;
    st->width = w;
    return 0;
}

/* Make index *i addressable, growing the window or - when the occupied range
 * would exceed max_bins - collapsing the lowest buckets (then *i may be
 * moved up to the lowest kept bucket). */
static int store_make_room(vt_sketch_store *st, int32_t *i, uint32_t max_bins)
{
    int64_t p = (int64_t)*i - st->offset;
    if (st->cap > 0 && p >= 0 && p < st->cap)
        return 0;
    if (st->total == 0) {
        if (st->cap == 0) {
            uint32_t cap = INIT_CAP < max_bins ? INIT_CAP : max_bins;
            void *b = calloc(cap, st->width);
            if (!b)
                return -ENOMEM;
            st->bins = b;
            st->cap = cap;
        }
        /* Empty store: every counter is 0, just move the window. */
        int64_t off = (int64_t)*i - st->cap / 2;
        st->offset = (int32_t)(off < INT32_MIN ? INT32_MIN : off);
        return 0;
    }
    int32_t nlo = *i < st->lo ? *i : st->lo;
    int32_t nhi = *i > st->hi ? *i : st->hi;
    int64_t span = (int64_t)nhi - nlo + 1;
    if (span > max_bins) {
        int32_t bottom = (int32_t)((int64_t)nhi - max_bins + 1);
        if (*i < bottom)
            *i = bottom;
        if (st->lo >= bottom && bottom >= st->offset &&
            (int64_t)nhi < (int64_t)st->offset + st->cap) {
            /* Only the new value folds: the window already fits. */
            st->collapsed = 1;
            return 0;
        }
        return store_rebuild(st, bottom, max_bins, bottom);
    }
    uint64_t ncap = st->cap;
    if (ncap < (uint64_t)span) {
        ncap = (uint64_t)span + (uint64_t)span / 4 + 8;
        if (ncap > max_bins)
            ncap = max_bins;
    }
    int64_t noff = *i < st->lo ? (int64_t)nhi - (int64_t)ncap + 1 : (int64_t)nlo;
    if (noff < INT32_MIN)
        noff = INT32_MIN;
    return store_rebuild(st, (int32_t)noff, (uint32_t)ncap, INT32_MIN);
}

/* Add n > 0 at index i. The caller has checked that the sketch count does not
 * overflow, so no counter can. */
static inline int store_add(vt_sketch_store *st, int32_t i, uint64_t n, uint32_t max_bins)
{
    int64_t p = (int64_t)i - st->offset;
    if (__builtin_expect(p < 0 || p >= st->cap, 0)) {
        int rc = store_make_room(st, &i, max_bins);
        if (rc)
            return rc;
        p = (int64_t)i - st->offset;
    }
    uint64_t c = cnt_get(st->bins, st->width, (size_t)p) + n;
    if (__builtin_expect(c > width_max(st->width), 0)) {
        int rc = store_widen(st, c);
        if (rc)
            return rc;
    }
    cnt_set(st->bins, st->width, (size_t)p, c);
    if (st->total == 0) {
        st->lo = st->hi = i;
    } else {
        if (i < st->lo)
            st->lo = i;
        if (i > st->hi)
            st->hi = i;
    }
    st->total += n;
    return 0;
}

/* Prepare st to receive `extra` more counts at indexes in [lo, hi] without
 * any allocation (what merge needs to be all-or-nothing): afterwards the
 * window covers the union of the occupied range and [lo, hi] - or, if that
 * is wider than max_bins, its top max_bins buckets with everything below
 * folded into the lowest - and the counters are wide enough. Callers then
 * add from the highest index down, so that every fold hits the no-copy path
 * of store_make_room(). */
static int store_reserve(vt_sketch_store *st, int32_t lo, int32_t hi, uint64_t extra,
                         uint32_t max_bins)
{
    assert(lo <= hi);
    int32_t nlo = lo, nhi = hi;
    if (st->total > 0) {
        if (st->lo < nlo)
            nlo = st->lo;
        if (st->hi > nhi)
            nhi = st->hi;
    }
    int64_t span = (int64_t)nhi - nlo + 1;
    int64_t end = (int64_t)st->offset + st->cap; /* one past the window */
    int rc = 0;
    if (span > max_bins) {
        int32_t bottom = (int32_t)((int64_t)nhi - max_bins + 1);
        if (st->cap == 0 || bottom < st->offset || nhi >= end ||
            (st->total > 0 && st->lo < bottom))
            rc = store_rebuild(st, bottom, max_bins, bottom);
    } else if (st->cap == 0 || nlo < st->offset || nhi >= end) {
        uint64_t ncap = st->cap;
        if (ncap < (uint64_t)span) {
            ncap = (uint64_t)span + (uint64_t)span / 4 + 8;
            if (ncap > max_bins)
                ncap = max_bins;
        }
        rc = store_rebuild(st, nlo, (uint32_t)ncap, INT32_MIN);
    }
    if (rc)
        return rc;
    return store_widen(st, st->total + extra);
}

/* ---------------------------------------------------------------------- */
/* Life cycle                                                               */
/* ---------------------------------------------------------------------- */

int vt_sketch_init(vt_sketch *s, int scale, uint32_t max_bins, double zero_threshold)
{
    if (!s)
        return -EINVAL;
    memset(s, 0, sizeof *s);
    s->pos.width = s->neg.width = 1;
    s->scale = VT_SKETCH_DEFAULT_SCALE;
    s->max_bins = VT_SKETCH_DEFAULT_MAX_BINS;
    s->min = INFINITY;
    s->max = -INFINITY;
    if (scale < VT_SKETCH_MIN_SCALE || scale > VT_SKETCH_MAX_SCALE ||
        max_bins > VT_SKETCH_MAX_BINS_LIMIT || !(zero_threshold >= 0) || !isfinite(zero_threshold))
        return -EINVAL;
    s->scale = scale;
    s->max_bins = max_bins ? max_bins : VT_SKETCH_DEFAULT_MAX_BINS;
    s->zero_threshold = zero_threshold;
    return 0;
}

void vt_sketch_init_default(vt_sketch *s)
{
    int rc = vt_sketch_init(s, VT_SKETCH_DEFAULT_SCALE, VT_SKETCH_DEFAULT_MAX_BINS,
                            VT_SKETCH_DEFAULT_ZERO_THRESHOLD);
    assert(rc == 0);
    (void)rc;
}

void vt_sketch_free(vt_sketch *s)
{
    store_free(&s->pos);
    store_free(&s->neg);
    vt_sketch_reset(s);
}

static void store_clear(vt_sketch_store *st)
{
    if (st->cap)
        memset(st->bins, 0, (size_t)st->cap * st->width);
    st->total = 0;
    st->lo = st->hi = 0;
    st->collapsed = 0;
}

void vt_sketch_reset(vt_sketch *s)
{
    store_clear(&s->pos);
    store_clear(&s->neg);
    s->count = s->zero_count = 0;
    s->sum = 0;
    s->min = INFINITY;
    s->max = -INFINITY;
}

static int store_copy(vt_sketch_store *dst, const vt_sketch_store *src)
{
    vt_sketch_store n = *src;
    n.bins = NULL;
    if (src->cap) {
        n.bins = malloc((size_t)src->cap * src->width);
        if (!n.bins)
            return -ENOMEM;
        memcpy(n.bins, src->bins, (size_t)src->cap * src->width);
    }
    free(dst->bins);
    *dst = n;
    return 0;
}

int vt_sketch_copy(vt_sketch *dst, const vt_sketch *src)
{
    if (dst == src)
        return 0;
    vt_sketch_store p = {.width = 1}, n = {.width = 1};
    if (store_copy(&p, &src->pos) || store_copy(&n, &src->neg)) {
        store_free(&p);
        store_free(&n);
        vt_sketch_free(dst);
        return -ENOMEM;
    }
    store_free(&dst->pos);
    store_free(&dst->neg);
    *dst = *src;
    dst->pos = p;
    dst->neg = n;
    return 0;
}

/* ---------------------------------------------------------------------- */
/* Updates                                                                  */
/* ---------------------------------------------------------------------- */

int vt_sketch_add_n(vt_sketch *s, double v, uint64_t n)
{
    if (__builtin_expect(!isfinite(v), 0))
        return -EINVAL;
    if (n == 0)
        return 0;
    if (__builtin_expect(s->count > UINT64_MAX - n, 0))
        return -EOVERFLOW;
    double a = fabs(v);
    if (a <= s->zero_threshold) {
        s->zero_count += n;
    } else {
        int32_t i = vt__sketch_map_index(s->scale, a);
        int rc = store_add(v > 0 ? &s->pos : &s->neg, i, n, s->max_bins);
        if (rc)
            return rc;
    }
    s->count += n;
    s->sum += n == 1 ? v : v * (double)n;
    if (v < s->min)
        s->min = v;
    if (v > s->max)
        s->max = v;
    return 0;
}

int vt_sketch_add(vt_sketch *s, double v)
{
    return vt_sketch_add_n(s, v, 1);
}

static int store_downscale(vt_sketch_store *st, int d, uint32_t max_bins)
{
    if (st->total == 0) {
        st->collapsed = 0;
        return 0;
    }
    vt_sketch_store n = {.width = 1};
    int rc = store_reserve(&n, vt__sketch_floor_shift(st->lo, d), vt__sketch_floor_shift(st->hi, d),
                           st->total, max_bins);
    for (int32_t j = st->hi; rc == 0 && j >= st->lo; j--) {
        uint64_t c = store_get(st, j);
        if (c)
            rc = store_add(&n, vt__sketch_floor_shift(j, d), c, max_bins);
    }
    if (rc) {
        store_free(&n);
        return rc;
    }
    n.collapsed |= st->collapsed;
    free(st->bins);
    *st = n;
    return 0;
}

int vt_sketch_downscale(vt_sketch *s, int new_scale)
{
    if (new_scale < VT_SKETCH_MIN_SCALE || new_scale > s->scale)
        return -EINVAL;
    int d = s->scale - new_scale;
    if (d == 0)
        return 0;
    /* Downscale into copies first so that s is untouched on -ENOMEM. */
    vt_sketch_store p = {.width = 1}, n = {.width = 1};
    int rc = store_copy(&p, &s->pos);
    if (!rc)
        rc = store_copy(&n, &s->neg);
    if (!rc)
        rc = store_downscale(&p, d, s->max_bins);
    if (!rc)
        rc = store_downscale(&n, d, s->max_bins);
    if (rc) {
        store_free(&p);
        store_free(&n);
        return rc;
    }
    store_free(&s->pos);
    store_free(&s->neg);
    s->pos = p;
    s->neg = n;
    s->scale = new_scale;
    store_check(&s->pos, s->max_bins);
    store_check(&s->neg, s->max_bins);
    return 0;
}

/* Highest index whose whole bucket lies in [0, zt], or INT32_MIN if none. */
static int32_t zero_fold_index(int scale, double zt)
{
    if (!(zt > 0))
        return INT32_MIN;
    if (zt > DBL_MAX)
        return INT32_MAX;
    int32_t t = vt__sketch_map_index(scale, zt);
    if (vt_sketch_bucket_upper(scale, t) > zt)
        t--;
    return t;
}

/* An upper bound of zero_fold_index(scale, zt) without exp2l: the index of
 * the bucket holding zt (zero_fold_index is it or the one below). When every
 * index a merge brings lies above it, the exact value cannot change what the
 * merge does, and the (long double) exact one is not computed at all - the
 * common case: evaluation merges thousands of sketches per tick. */
static int32_t zero_fold_bound(int scale, double zt)
{
    if (!(zt > 0))
        return INT32_MIN;
    if (zt > DBL_MAX)
        return INT32_MAX;
    return vt__sketch_map_index(scale, zt);
}

/* Lowest index src's buckets land on in a sketch of scale `scale - shift`
 * (shift = src scale - destination scale >= 0), INT32_MAX if it has none. */
static int32_t merge_lowest(const vt_sketch *src, int shift)
{
    int32_t lo = INT32_MAX;
    if (src->pos.total)
        lo = vt__sketch_floor_shift(src->pos.lo, shift);
    if (src->neg.total) {
        int32_t n = vt__sketch_floor_shift(src->neg.lo, shift);
        if (n < lo)
            lo = n;
    }
    return lo;
}

/* Move the buckets at or below index t of st into the zero bucket. */
static void store_fold_zero(vt_sketch *s, vt_sketch_store *st, int32_t t)
{
    if (st->total == 0 || t < st->lo)
        return;
    int32_t end = t < st->hi ? t : st->hi;
    for (int32_t j = st->lo; j <= end; j++) {
        uint64_t c = store_get(st, j);
        if (!c)
            continue;
        cnt_set(st->bins, st->width, (size_t)(j - st->offset), 0);
        st->total -= c;
        s->zero_count += c;
    }
    if (st->total == 0) {
        st->collapsed = 0;
        return;
    }
    int32_t j = end + 1;
    while (store_get(st, j) == 0)
        j++;
    st->lo = j;
}

/* The common merge: same scale, nothing folds into the zero bucket, and the
 * reserved window of d already covers src without collapsing. Then it is an
 * element-wise sum of two counter arrays, done here with the counter widths
 * hoisted out of the loop (evaluation merges thousands of these per tick).
 * Returns false, touching nothing, when the case does not apply. */
static bool add_window(vt_sketch_store *d, const vt_sketch_store *src, uint32_t max_bins)
{
    int32_t lo = d->total && d->lo < src->lo ? d->lo : src->lo;
    int32_t hi = d->total && d->hi > src->hi ? d->hi : src->hi;
    if ((int64_t)hi - lo + 1 > max_bins || src->lo < d->offset ||
        (int64_t)src->hi >= (int64_t)d->offset + d->cap ||
        width_max(d->width) < d->total + src->total)
        return false;
    size_t n = (size_t)((int64_t)src->hi - src->lo + 1);
    size_t sp = (size_t)((int64_t)src->lo - src->offset);
    size_t dp = (size_t)((int64_t)src->lo - d->offset);
#define ADD_LOOP(DT, ST)                                                       \
    do {                                                                       \
        DT *o = (DT *)d->bins + dp;                                            \
        const ST *in = (const ST *)src->bins + sp;                             \
        for (size_t k = 0; k < n; k++)                                         \
            o[k] = (DT)(o[k] + in[k]);                                         \
    } while (0)
#define ADD_FROM(DT)                                                           \
    switch (src->width) {                                                      \
    case 1: ADD_LOOP(DT, uint8_t); break;                                      \
    case 2: ADD_LOOP(DT, uint16_t); break;                                     \
    case 4: ADD_LOOP(DT, uint32_t); break;                                     \
    default: ADD_LOOP(DT, uint64_t); break;                                    \
    }
    if (src->width > d->width)
        return false; /* cannot happen after store_reserve; be safe */
    switch (d->width) {
    case 1: ADD_FROM(uint8_t); break;
    case 2: ADD_FROM(uint16_t); break;
    case 4: ADD_FROM(uint32_t); break;
    default: ADD_FROM(uint64_t); break;
    }
#undef ADD_FROM
#undef ADD_LOOP
    d->lo = lo;
    d->hi = hi;
    d->total += src->total;
    d->collapsed |= src->collapsed;
    return true;
}

static int merge_store(vt_sketch *dst, vt_sketch_store *d, const vt_sketch_store *src, int shift,
                       int32_t zfold, int reserve_only)
{
    if (src->total == 0)
        return 0;
    int32_t lo = vt__sketch_floor_shift(src->lo, shift);
    int32_t hi = vt__sketch_floor_shift(src->hi, shift);
    if (hi <= zfold) {
        if (!reserve_only)
            dst->zero_count += src->total;
        return 0;
    }
    if (lo <= zfold)
        lo = zfold + 1;
    if (reserve_only)
        return store_reserve(d, lo, hi, src->total, dst->max_bins);
    if (shift == 0 && src->lo > zfold && add_window(d, src, dst->max_bins))
        return 0;
    for (int32_t j = src->hi; j >= src->lo; j--) {
        uint64_t c = store_get(src, j);
        if (!c)
            continue;
        int32_t t = vt__sketch_floor_shift(j, shift);
        if (t <= zfold) {
            dst->zero_count += c;
            continue;
        }
        int rc = store_add(d, t, c, dst->max_bins);
        assert(rc == 0); /* reserved: no allocation can happen here */
        (void)rc;
    }
    d->collapsed |= src->collapsed;
    return 0;
}

/* The last step of every merge, once the buckets are in: the totals. */
static void merge_totals(vt_sketch *dst, uint64_t zero_count, uint64_t count, double sum,
                         double min, double max)
{
    dst->zero_count += zero_count;
    dst->count += count;
    dst->sum += sum;
    if (min < dst->min)
        dst->min = min;
    if (max > dst->max)
        dst->max = max;
    assert(dst->count == dst->zero_count + dst->pos.total + dst->neg.total);
    store_check(&dst->pos, dst->max_bins);
    store_check(&dst->neg, dst->max_bins);
}

int vt_sketch_merge(vt_sketch *dst, const vt_sketch *src)
{
    if (!dst || !src)
        return -EINVAL;
    if (src->count == 0)
        return 0;
    if (dst->count > UINT64_MAX - src->count)
        return -EOVERFLOW;
    const vt_sketch *from = src;
    vt_sketch tmp;
    if (src == dst) { /* self-merge: merge a copy */
        vt_sketch_init(&tmp, src->scale, src->max_bins, src->zero_threshold);
        if (vt_sketch_copy(&tmp, src))
            return -ENOMEM;
        from = &tmp;
    }
    int rc = 0;
    if (from->scale < dst->scale)
        rc = vt_sketch_downscale(dst, from->scale);
    int shift = from->scale - dst->scale;
    double zt = dst->zero_threshold > from->zero_threshold ? dst->zero_threshold
                                                           : from->zero_threshold;
    /* zfold only decides for indexes at or below it (merge_store, and
     * store_fold_zero when the threshold grows): above the bound, the
     * bound itself gives the same merge. */
    int32_t zfold = zero_fold_bound(dst->scale, zt);
    if (zt > dst->zero_threshold || merge_lowest(from, shift) <= zfold)
        zfold = zero_fold_index(dst->scale, zt);
    if (!rc)
        rc = merge_store(dst, &dst->pos, &from->pos, shift, zfold, 1);
    if (!rc)
        rc = merge_store(dst, &dst->neg, &from->neg, shift, zfold, 1);
    if (!rc) {
        if (zt > dst->zero_threshold) {
            store_fold_zero(dst, &dst->pos, zfold);
            store_fold_zero(dst, &dst->neg, zfold);
            dst->zero_threshold = zt;
        }
        merge_store(dst, &dst->pos, &from->pos, shift, zfold, 0);
        merge_store(dst, &dst->neg, &from->neg, shift, zfold, 0);
        merge_totals(dst, from->zero_count, from->count, from->sum, from->min, from->max);
    }
    if (from == &tmp)
        vt_sketch_free(&tmp);
    return rc;
}

/* ---------------------------------------------------------------------- */
/* Queries                                                                  */
/* ---------------------------------------------------------------------- */

static inline double clampd(double v, double lo, double hi)
{
    return v < lo ? lo : v > hi ? hi : v;
}

double vt_sketch_quantile(const vt_sketch *s, double q)
{
    if (s->count == 0 || !(q >= 0 && q <= 1))
        return NAN;
    if (q == 0)
        return s->min;
    if (q == 1)
        return s->max;
    double rank = q * (double)(s->count - 1);
    uint64_t acc = 0;
    const vt_sketch_store *n = &s->neg, *p = &s->pos;
    if (n->total)
        for (int32_t j = n->hi; j >= n->lo; j--) {
            acc += store_get(n, j);
            if ((double)acc > rank)
                return clampd(-vt__sketch_bucket_value(s->scale, j), s->min, s->max);
        }
    acc += s->zero_count;
    if ((double)acc > rank)
        return clampd(0.0, s->min, s->max);
    if (p->total)
        for (int32_t j = p->lo; j <= p->hi; j++) {
            acc += store_get(p, j);
            if ((double)acc > rank)
                return clampd(vt__sketch_bucket_value(s->scale, j), s->min, s->max);
        }
    return s->max;
}

double vt_sketch_rank(const vt_sketch *s, double x)
{
    if (s->count == 0 || isnan(x))
        return NAN;
    if (x < s->min)
        return 0;
    if (x >= s->max)
        return 1;
    uint64_t le = 0;
    if (x > s->zero_threshold) {
        int32_t t = vt__sketch_map_index(s->scale, x);
        le = s->neg.total + s->zero_count;
        if (s->pos.total)
            for (int32_t j = s->pos.lo; j <= s->pos.hi && j <= t; j++)
                le += store_get(&s->pos, j);
    } else if (x >= -s->zero_threshold) {
        le = s->neg.total + s->zero_count;
    } else {
        int32_t t = vt__sketch_map_index(s->scale, -x);
        if (s->neg.total)
            for (int32_t j = s->neg.hi; j >= s->neg.lo && j >= t; j--)
                le += store_get(&s->neg, j);
    }
    return (double)le / (double)s->count;
}

uint64_t vt_sketch_count(const vt_sketch *s) { return s->count; }
double vt_sketch_sum(const vt_sketch *s) { return s->sum; }
double vt_sketch_mean(const vt_sketch *s) { return s->count ? s->sum / (double)s->count : NAN; }
double vt_sketch_min(const vt_sketch *s) { return s->count ? s->min : NAN; }
double vt_sketch_max(const vt_sketch *s) { return s->count ? s->max : NAN; }

uint64_t vt_sketch_collapsed_count(const vt_sketch *s)
{
    uint64_t c = 0;
    if (s->pos.collapsed && s->pos.total)
        c += store_get(&s->pos, s->pos.lo);
    if (s->neg.collapsed && s->neg.total)
        c += store_get(&s->neg, s->neg.lo);
    return c;
}

size_t vt_sketch_memory(const vt_sketch *s)
{
    return sizeof *s + (size_t)s->pos.cap * s->pos.width + (size_t)s->neg.cap * s->neg.width;
}

static int store_same(const vt_sketch_store *a, const vt_sketch_store *b)
{
    if (a->total != b->total)
        return 0;
    if (a->total == 0)
        return 1;
    if (a->lo != b->lo || a->hi != b->hi)
        return 0;
    for (int32_t j = a->lo; j <= a->hi; j++)
        if (store_get(a, j) != store_get(b, j))
            return 0;
    return 1;
}

int vt_sketch_same(const vt_sketch *a, const vt_sketch *b)
{
    if (a->scale != b->scale || a->zero_threshold != b->zero_threshold || a->count != b->count ||
        a->zero_count != b->zero_count)
        return 0;
    if (a->count && (a->min != b->min || a->max != b->max))
        return 0;
    if (vt_sketch_collapsed_count(a) != vt_sketch_collapsed_count(b))
        return 0;
    return store_same(&a->pos, &b->pos) && store_same(&a->neg, &b->neg);
}

int vt_sketch_bucket_range(const vt_sketch *s, int negative, int32_t *first, int32_t *last)
{
    const vt_sketch_store *st = negative ? &s->neg : &s->pos;
    if (st->total == 0)
        return -ENOENT;
    *first = st->lo;
    *last = st->hi;
    return 0;
}

uint64_t vt_sketch_bucket_get(const vt_sketch *s, int negative, int32_t index)
{
    return store_get(negative ? &s->neg : &s->pos, index);
}

/* ---------------------------------------------------------------------- */
/* Wire form                                                                */
/* ---------------------------------------------------------------------- */

static int store_to_proto(const vt_sketch_store *st, Vitals__V1__Buckets **out)
{
    *out = NULL;
    if (st->total == 0)
        return 0;
    Vitals__V1__Buckets *b = malloc(sizeof *b);
    if (!b)
        return -ENOMEM;
    vitals__v1__buckets__init(b);
    b->n_counts = (size_t)((int64_t)st->hi - st->lo + 1);
    b->counts = malloc(b->n_counts * sizeof *b->counts);
    if (!b->counts) {
        free(b);
        return -ENOMEM;
    }
    b->offset = st->lo;
    for (size_t k = 0; k < b->n_counts; k++)
        b->counts[k] = store_get(st, (int32_t)(st->lo + (int64_t)k));
    *out = b;
    return 0;
}

void vt_sketch_proto_release(Vitals__V1__Sketch *msg)
{
    if (!msg)
        return;
    Vitals__V1__Buckets *bs[2] = {msg->positive, msg->negative};
    for (int k = 0; k < 2; k++)
        if (bs[k]) {
            free(bs[k]->counts);
            free(bs[k]);
        }
    msg->positive = msg->negative = NULL;
}

int vt_sketch_to_proto(const vt_sketch *s, Vitals__V1__Sketch *msg)
{
    vitals__v1__sketch__init(msg);
    msg->scale = s->scale;
    msg->count = s->count;
    msg->sum = s->sum;
    msg->min = s->count ? s->min : 0;
    msg->max = s->count ? s->max : 0;
    msg->zero_count = s->zero_count;
    msg->zero_threshold = s->zero_threshold;
    msg->collapsed_count = vt_sketch_collapsed_count(s);
    if (store_to_proto(&s->pos, &msg->positive) || store_to_proto(&s->neg, &msg->negative)) {
        vt_sketch_proto_release(msg);
        return -ENOMEM;
    }
    return 0;
}

int vt_sketch_pack(const vt_sketch *s, uint8_t **out, size_t *len)
{
    Vitals__V1__Sketch msg;
    *out = NULL;
    *len = 0;
    if (vt_sketch_to_proto(s, &msg))
        return -ENOMEM;
    size_t n = vitals__v1__sketch__get_packed_size(&msg);
    uint8_t *buf = malloc(n ? n : 1);
    if (!buf) {
        vt_sketch_proto_release(&msg);
        return -ENOMEM;
    }
    size_t w = vitals__v1__sketch__pack(&msg, buf);
    assert(w == n);
    (void)w;
    vt_sketch_proto_release(&msg);
    *out = buf;
    *len = n;
    return 0;
}

/* ---------------------------------------------------------------------- */
/* Decoding, straight from the wire                                         */
/* ---------------------------------------------------------------------- */

/* A vitals.v1.Sketch parsed in place: scalars decoded, the two Buckets
 * messages left where they lie (their counts are walked, never copied). */
struct wire_sketch {
    int32_t scale;
    uint64_t count, zero_count, collapsed_count;
    double sum, min, max, zero_threshold;
    struct pb pos, neg; /* Buckets message bytes; p == NULL when absent */
};

/* Syntax only: every field well formed with its declared wire type. A
 * Buckets field given twice (protobuf would merge the two; our encoders
 * never split one) is refused. Unknown fields are skipped. 0 or -EBADMSG. */
static int wire_parse(struct wire_sketch *w, const uint8_t *buf, size_t len)
{
    memset(w, 0, sizeof *w);
    struct pb b = pb_make(buf, len);
    struct pbf f;
    int r;
    while ((r = pb_next(&b, &f)) == 1) {
        switch (f.num) {
        case 1: /* sint32 */
            if (f.wt != PB_VARINT || f.u > UINT32_MAX)
                return -EBADMSG;
            w->scale = pb_zigzag32(f.u);
            break;
        case 2: case 6: case 10: /* uint64 */
            if (f.wt != PB_VARINT)
                return -EBADMSG;
            *(f.num == 2 ? &w->count : f.num == 6 ? &w->zero_count : &w->collapsed_count) = f.u;
            break;
        case 3: case 4: case 5: case 9: /* double */
            if (f.wt != PB_FIXED64)
                return -EBADMSG;
            *(f.num == 3 ? &w->sum : f.num == 4 ? &w->min : f.num == 5 ? &w->max
                                                                   : &w->zero_threshold) =
                pb_double(f.u);
            break;
        case 7: case 8: { /* Buckets */
            struct pb *to = f.num == 7 ? &w->pos : &w->neg;
            if (f.wt != PB_LEN || to->p)
                return -EBADMSG;
            *to = pb_of(&f);
            break;
        }
        default: break; /* a field of a newer schema */
        }
    }
    return r == 0 ? 0 : -EBADMSG;
}

/* Walks the counts of a Buckets message {sint32 offset = 1; repeated uint64
 * counts = 2}: packed runs and single varints alike, in order. Zero counts
 * (most of a sparse sketch: one 0x00 byte each) are skipped eight at a
 * time. */
struct counts_it {
    struct pb msg;  /* fields of the Buckets message not read yet */
    struct pb run;  /* rest of the current packed run */
    int64_t offset; /* bucket index of count 0 */
    uint64_t k;     /* position of the next count not loaded yet */
    uint64_t w;     /* a loaded word of eight one-byte counts ... */
    uint64_t nz;    /* ... with the high bit set in each byte still to hand out */
    uint64_t wk;    /* position of w's first count */
};

/* The iterator at the first count of a Buckets message whose offset is
 * known (a validated one: the fields were checked by counts_summary). */
static void counts_init(struct counts_it *it, struct pb msg, int64_t offset)
{
    it->msg = msg;
    it->run = (struct pb){msg.p, msg.p};
    it->offset = offset;
    it->k = it->w = it->nz = it->wk = 0;
}

#define HIGH_BITS 0x8080808080808080ull

/* The next non-zero count: 1 with its bucket index and value, 0 at the end,
 * -EBADMSG on a truncated varint (counts_summary checked everything else).
 * Counts below 128 - nearly all of them - are one byte each, zeros included,
 * so the run is read eight bytes at a time: a word without high bits holds
 * eight whole counts, and adding 0x7f to each byte marks the non-zero ones. */
static inline int counts_next(struct counts_it *it, int64_t *index, uint64_t *value)
{
    for (;;) {
        if (it->nz) {
            unsigned b = (unsigned)__builtin_ctzll(it->nz) >> 3;
            it->nz &= it->nz - 1;
            *index = it->offset + (int64_t)(it->wk + b);
            *value = (it->w >> (8 * b)) & 0xff;
            return 1;
        }
        struct pb *r = &it->run;
        while (r->end - r->p >= 8) {
            uint64_t w = pb_le64(r->p);
            if (w & HIGH_BITS)
                break; /* a count of two bytes or more: one at a time below */
            r->p += 8;
            it->wk = it->k;
            it->k += 8;
            if (w) {
                it->w = w;
                it->nz = (w + 0x7f7f7f7f7f7f7f7full) & HIGH_BITS;
                break;
            }
        }
        if (it->nz)
            continue;
        uint64_t v;
        if (r->p < r->end) {
            if (pb_varint(r, &v))
                return -EBADMSG;
        } else { /* the next counts field */
            struct pbf f;
            int rr;
            while ((rr = pb_next(&it->msg, &f)) == 1 && f.num != 2)
                ;
            if (rr <= 0)
                return rr < 0 ? -EBADMSG : 0;
            if (f.wt == PB_LEN) {
                it->run = pb_of(&f);
                continue;
            }
            v = f.u;
        }
        uint64_t k = it->k++;
        if (v) { /* (a zero spelled with more than one byte lands here too) */
            *index = it->offset + (int64_t)k;
            *value = v;
            return 1;
        }
    }
}

/* What one pass over a Buckets message learns: the number of counts, their
 * sum, the index range of the non-zero ones (lo > hi when none) and the
 * lowest-index non-zero count. */
struct counts_sum {
    uint64_t n, total, low;
    int64_t lo, hi;
    int64_t offset; /* of the Buckets message */
};

/* One count at position k: fold it into *s. -1 if the sum overflows. */
static inline int sum_one(struct counts_sum *s, uint64_t k, uint64_t v)
{
    if (!v)
        return 0;
    if (s->total > UINT64_MAX - v)
        return -1;
    if (s->lo == INT64_MAX) {
        s->lo = (int64_t)k;
        s->low = v;
    }
    s->hi = (int64_t)k;
    s->total += v;
    return 0;
}

/* Fill *s (lo/hi as positions; the caller adds the offset) from a run of
 * packed counts. Words of eight one-byte counts cost a few operations each:
 * no branch per count. -1 on a truncated varint or an overflowing sum. */
static int sum_run(struct counts_sum *s, struct pb r)
{
    while (r.p < r.end) {
        if (r.end - r.p >= 8 && s->total < UINT64_MAX - 8 * 127) {
            uint64_t w = pb_le64(r.p);
            if (!(w & HIGH_BITS)) {
                if (w) {
                    uint64_t nz = (w + 0x7f7f7f7f7f7f7f7full) & HIGH_BITS;
                    unsigned first = (unsigned)__builtin_ctzll(nz) >> 3;
                    unsigned last = 7 - ((unsigned)__builtin_clzll(nz) >> 3);
                    if (s->lo == INT64_MAX) {
                        s->lo = (int64_t)(s->n + first);
                        s->low = (w >> (8 * first)) & 0xff;
                    }
                    s->hi = (int64_t)(s->n + last);
                    /* byte sum: pairs into 16-bit lanes, lanes summed by a multiply */
                    uint64_t pairs = (w & 0x00ff00ff00ff00ffull) + ((w >> 8) & 0x00ff00ff00ff00ffull);
                    s->total += (pairs * 0x0001000100010001ull) >> 48;
                }
                r.p += 8;
                s->n += 8;
                continue;
            }
        }
        uint64_t v;
        if (pb_varint(&r, &v) || sum_one(s, s->n, v))
            return -1;
        s->n++;
    }
    return 0;
}

/* The summary of a Buckets message, its counts packed in any number of runs
 * or given one by one. lo/hi are bucket indexes. 0 or -EBADMSG. */
static int counts_summary(struct pb msg, struct counts_sum *s)
{
    *s = (struct counts_sum){.lo = INT64_MAX, .hi = INT64_MIN};
    if (!msg.p)
        return 0;
    int64_t offset = 0; /* may come after the counts: positions are shifted at the end */
    struct pbf f;
    int r;
    while ((r = pb_next(&msg, &f)) == 1) {
        if (f.num == 1) {
            if (f.wt != PB_VARINT || f.u > UINT32_MAX)
                return -EBADMSG;
            offset = pb_zigzag32(f.u); /* the last one wins, as in protobuf */
        } else if (f.num == 2) {
            if (f.wt == PB_LEN ? sum_run(s, pb_of(&f))
                               : f.wt != PB_VARINT || sum_one(s, s->n++, f.u))
                return -EBADMSG;
        }
    }
    if (r)
        return -EBADMSG;
    if (s->lo <= s->hi) {
        s->lo += offset;
        s->hi += offset;
    }
    s->offset = offset;
    return 0;
}

/* Validate one Buckets message: at most VT_SKETCH_MAX_BINS_LIMIT counts,
 * the non-zero ones at indexes of the mapping, summed without overflow. */
static int check_counts(struct pb msg, int scale, struct counts_sum *s)
{
    if (counts_summary(msg, s) || s->n > VT_SKETCH_MAX_BINS_LIMIT)
        return -EBADMSG;
    if (s->lo <= s->hi &&
        (s->lo < vt__sketch_index_min(scale) || s->hi > vt__sketch_index_max(scale)))
        return -EBADMSG;
    return 0;
}

/* Which stores a collapsed_count of cc refers to, given the lowest non-zero
 * count of each (pl, nl): the collapsed bucket is always a store's lowest.
 * -1 when it matches neither. */
static int collapsed_of(uint64_t cc, uint64_t pl, uint64_t nl, int *pcol, int *ncol)
{
    *pcol = *ncol = 0;
    if (cc == 0)
        return 0;
    if (pl + nl == cc && pl <= cc) /* both (or the only non-empty one) */
        *pcol = pl != 0, *ncol = nl != 0;
    else if (cc == pl)
        *pcol = 1;
    else if (cc == nl)
        *ncol = 1;
    else
        return -1;
    return 0;
}

/* Everything a message must satisfy: scale and zero threshold in range,
 * bucket ranges, counts adding up to `count` without overflow, a consistent
 * collapsed_count, finite min <= max on the right sides of 0. Sets the
 * collapsed flags of the two stores. 0 or -EBADMSG. */
static int check_msg(const struct wire_sketch *w, int *pcol, int *ncol)
{
    struct counts_sum ps, ns;
    *pcol = *ncol = 0;
    if (w->scale < VT_SKETCH_MIN_SCALE || w->scale > VT_SKETCH_MAX_SCALE ||
        !(w->zero_threshold >= 0) || !isfinite(w->zero_threshold))
        return -EBADMSG;
    if (check_counts(w->pos, w->scale, &ps) || check_counts(w->neg, w->scale, &ns))
        return -EBADMSG;
    uint64_t pt = ps.total, nt = ns.total, pl = ps.low, nl = ns.low;
    uint64_t total = w->zero_count;
    if (total > UINT64_MAX - pt || total + pt > UINT64_MAX - nt || total + pt + nt != w->count)
        return -EBADMSG;
    if (collapsed_of(w->collapsed_count, pl, nl, pcol, ncol))
        return -EBADMSG;
    /* sum is not checked: a sum of doubles can legitimately overflow to
     * +-inf, and +inf merged with -inf is NaN. */
    if (w->count > 0 && (!isfinite(w->min) || !isfinite(w->max) || w->min > w->max ||
                         (nt && !(w->min < 0)) || (pt && !(w->max > 0))))
        return -EBADMSG;
    return 0;
}

/* The index range of the non-zero counts of a validated Buckets message,
 * for the merge's reservation (s->lo, s->hi, s->low; s->total is not
 * filled in by the fast path). The common shape - our encoder's - is one
 * packed run trimmed to non-zero ends: then the range is [offset, offset +
 * n - 1] with n the number of varints, which is the number of bytes below
 * 0x80: a popcount per eight bytes instead of a full summary. */
static void counts_span(struct pb msg, struct counts_sum *s)
{
    struct pbf f;
    struct pb run = {NULL, NULL};
    int runs = 0;
    int64_t offset = 0;
    for (struct pb b = msg; b.p && pb_next(&b, &f) == 1;) {
        if (f.num == 1)
            offset = pb_zigzag32(f.u);
        else if (f.num == 2) {
            runs++;
            run = f.wt == PB_LEN ? pb_of(&f) : (struct pb){NULL, NULL};
        }
    }
    size_t len = (size_t)(run.end - run.p);
    if (runs != 1 || len == 0 || run.p[0] == 0 || run.p[0] >= 0x80 || run.end[-1] == 0) {
        counts_summary(msg, s); /* anything else */
        return;
    }
    uint64_t high = 0;
    const uint8_t *p = run.p;
    for (; run.end - p >= 8; p += 8) /* high bits per word, summed by a multiply */
        high += (((pb_le64(p) & HIGH_BITS) >> 7) * 0x0101010101010101ull) >> 56;
    for (; p < run.end; p++)
        high += *p >> 7;
    *s = (struct counts_sum){.n = len - high, .low = run.p[0], .offset = offset};
    s->lo = offset;
    s->hi = offset + (int64_t)s->n - 1;
}

/* Step 1 of merging a validated Buckets message into store d (at d's
 * scale): make room for its range above the zero bucket (the only step that
 * allocates). `extra` bounds the counts added (for the counter width). */
static int reserve_counts(vt_sketch *dst, vt_sketch_store *d, const struct counts_sum *s,
                          uint64_t extra, int32_t zfold)
{
    if (s->lo > s->hi || s->hi <= zfold)
        return 0;
    int64_t lo = s->lo <= zfold ? (int64_t)zfold + 1 : s->lo;
    return store_reserve(d, (int32_t)lo, (int32_t)s->hi, extra, dst->max_bins);
}

/* Step 2: add the counts. Buckets at or below zfold join the zero bucket;
 * when the union is wider than max_bins, the lowest fold into the lowest kept
 * bucket - exactly the window store_reserve prepared, so every counter is
 * addressable and wide enough, and nothing allocates. */
static void add_counts(vt_sketch *dst, vt_sketch_store *d, struct pb msg,
                       const struct counts_sum *s, int32_t zfold)
{
    if (s->lo > s->hi)
        return;
    int64_t top = d->total && d->hi > s->hi ? d->hi : s->hi;
    int64_t floor = top - (int64_t)dst->max_bins + 1;
    int64_t lo = INT64_MAX, hi = INT64_MIN;
    uint64_t added = 0;
    struct counts_it it;
    int64_t j;
    uint64_t c;
    counts_init(&it, msg, s->offset);
    while (counts_next(&it, &j, &c) == 1) {
        if (j <= zfold) {
            dst->zero_count += c;
            continue;
        }
        if (j < floor) {
            j = floor;
            d->collapsed = 1;
        }
        assert(j >= d->offset && j < (int64_t)d->offset + d->cap);
        size_t p = (size_t)(j - d->offset);
        cnt_set(d->bins, d->width, p, cnt_get(d->bins, d->width, p) + c);
        lo = j < lo ? j : lo;
        hi = j > hi ? j : hi;
        added += c;
    }
    if (!added)
        return;
    if (d->total == 0 || lo < d->lo)
        d->lo = (int32_t)lo;
    if (d->total == 0 || hi > d->hi)
        d->hi = (int32_t)hi;
    d->total += added;
}

/* dst += w, w validated (check_msg) and at dst's scale and zero threshold.
 * All or nothing: both stores are reserved before anything is added. */
static int merge_checked(vt_sketch *dst, const struct wire_sketch *w, int pcol, int ncol)
{
    /* pcol/ncol < 0: not known yet (a message checked earlier): derived
     * from the summaries below, as check_msg does */
    if (w->count == 0)
        return 0;
    if (dst->count > UINT64_MAX - w->count)
        return -EOVERFLOW;
    struct counts_sum ps, ns;
    counts_span(w->pos, &ps); /* validated: cannot fail */
    counts_span(w->neg, &ns);
    /* the exact zero-fold index (exp2l) only when a bucket can reach it */
    int32_t zfold = zero_fold_bound(dst->scale, dst->zero_threshold);
    if ((ps.lo <= ps.hi && ps.lo <= zfold) || (ns.lo <= ns.hi && ns.lo <= zfold))
        zfold = zero_fold_index(dst->scale, dst->zero_threshold);
    if (pcol < 0)
        collapsed_of(w->collapsed_count, ps.low, ns.low, &pcol, &ncol);
    int rc = reserve_counts(dst, &dst->pos, &ps, w->count, zfold);
    if (!rc)
        rc = reserve_counts(dst, &dst->neg, &ns, w->count, zfold);
    if (rc)
        return rc;
    /* merge_totals adds the message's zero_count; add_counts adds what folds */
    add_counts(dst, &dst->pos, w->pos, &ps, zfold);
    add_counts(dst, &dst->neg, w->neg, &ns, zfold);
    dst->pos.collapsed |= (uint8_t)pcol;
    dst->neg.collapsed |= (uint8_t)ncol;
    merge_totals(dst, w->zero_count, w->count, w->sum, w->min, w->max);
    return 0;
}

int vt_sketch_check_wire(const uint8_t *buf, size_t len)
{
    struct wire_sketch w;
    int pcol, ncol;
    if (wire_parse(&w, buf, len))
        return -EBADMSG;
    return check_msg(&w, &pcol, &ncol);
}

int vt_sketch_unpack(vt_sketch *s, const uint8_t *buf, size_t len, uint32_t max_bins)
{
    struct wire_sketch w;
    int pcol, ncol;
    vt_sketch_init_default(s);
    if (max_bins > VT_SKETCH_MAX_BINS_LIMIT)
        return -EINVAL;
    if (wire_parse(&w, buf, len) || check_msg(&w, &pcol, &ncol))
        return -EBADMSG;
    int rc = vt_sketch_init(s, w.scale, max_bins, w.zero_threshold); /* allocates nothing */
    if (!rc)
        rc = merge_checked(s, &w, pcol, ncol);
    if (rc) {
        vt_sketch_free(s);
        vt_sketch_init_default(s);
    }
    return rc;
}

int vt_sketch_merge_wire(vt_sketch *dst, const uint8_t *buf, size_t len)
{
    struct wire_sketch w;
    int pcol, ncol;
    if (wire_parse(&w, buf, len))
        return -EBADMSG;
    /* The common case - same scale, same zero threshold - merges straight
     * from the message. Anything else goes through a temporary sketch. */
    if (w.scale == dst->scale && w.zero_threshold == dst->zero_threshold) {
        int rc = check_msg(&w, &pcol, &ncol);
        return rc ? rc : merge_checked(dst, &w, pcol, ncol);
    }
    vt_sketch tmp;
    int rc = vt_sketch_unpack(&tmp, buf, len, dst->max_bins);
    if (!rc)
        rc = vt_sketch_merge(dst, &tmp);
    vt_sketch_free(&tmp);
    return rc;
}

int vt_sketch_merge_wire_checked(vt_sketch *dst, const uint8_t *buf, size_t len)
{
    struct wire_sketch w;
    if (wire_parse(&w, buf, len) || w.scale != dst->scale ||
        w.zero_threshold != dst->zero_threshold)
        return vt_sketch_merge_wire(dst, buf, len);
    return merge_checked(dst, &w, -1, -1);
}
