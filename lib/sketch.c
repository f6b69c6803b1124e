/*
 * sketch.c - DDSketch over the OpenTelemetry exponential-histogram mapping.
 *
 * The contract (mapping, error bound, memory, wire form) is in sketch.h.
 * Here: the bounded stores with adaptive counter width, quantile and rank
 * walks, merge/downscale, and the encoder. The validating decoder that reads
 * the wire form in place is sketch_wire.c. The value ->
 * bucket index mapping they are built on is sketch_index.c/.h.
 *
 * Store invariants (checked by store_check() in debug builds):
 *   - total == 0  <=> every allocated counter is 0; lo/hi are meaningless.
 *   - total > 0   =>  offset <= lo <= hi < offset + cap, counters at lo and
 *                     hi are non-zero, counters outside [lo, hi] are zero,
 *                     and hi - lo + 1 <= max_bins of the owning sketch.
 *   - every counter is <= peak (when peak < UINT32_MAX; else <= total) and
 *     fits in `width` bytes; width only grows. Widths follow the peak, not
 *     the total: a rollup of thousands of records spread over a few hundred
 *     buckets keeps one-byte counters (half the cache lines to merge and
 *     read). Adds raise the peak to what they wrote; merges reserve for
 *     peak + the most one bucket can gain (everything, when buckets fold).
 *
 * Tried and dropped: two-byte counters as two planes (low bytes, then high
 * bytes), so that a merge into a widened store would touch one byte per
 * bucket and the high plane only on a carry. On bench_ingest's 17-pass run
 * cachegrind counted 11% fewer D1 read misses in add_counts and 12% more
 * instructions, the late (widened) passes did not get measurably faster,
 * and evaluation, which reads both planes, got slower.
 */
#include "sketch.h"
#include "sketch_index.h"
#include "sketch_store.h"

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
    for (int32_t j = st->lo; j <= st->hi; j++)
        assert(store_get(st, j) <= store_peak(st));
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
    store_raise_peak(st, folded);
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
    store_raise_peak(st, c);
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
 * either add from the highest index down, so that every fold hits the
 * no-copy path of store_make_room() (merge_store), or fold what lies below
 * the window into its lowest bucket themselves (sketch_wire.c). */
int vt__sketch_store_reserve(vt_sketch_store *st, int32_t lo, int32_t hi, uint64_t extra,
                             uint64_t add_max, uint32_t max_bins)
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
    /* folding piles many buckets into one: then only the total bounds it */
    uint64_t peak = store_peak(st), all = st->total + extra;
    return store_widen(st, span > max_bins || add_max >= all - peak ? all : peak + add_max);
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
    st->peak = 0;
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
    int rc = vt__sketch_store_reserve(&n, vt__sketch_floor_shift(st->lo, d),
                                      vt__sketch_floor_shift(st->hi, d), st->total, st->total,
                                      max_bins);
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
int32_t vt__sketch_zero_fold_index(int scale, double zt)
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

/* An upper bound of vt__sketch_zero_fold_index(scale, zt) without exp2l: the index of
 * the bucket holding zt (zero_fold_index is it or the one below). When every
 * index a merge brings lies above it, the exact value cannot change what the
 * merge does, and the (long double) exact one is not computed at all - the
 * common case: evaluation merges thousands of sketches per tick. */
int32_t vt__sketch_zero_fold_bound(int scale, double zt)
{
    /* every merge asks, nearly always for the same pair: the last answer
     * is kept (per thread) */
    static _Thread_local struct {
        int scale;
        double zt;
        int32_t bound;
    } last = {0, -1, 0};
    if (!(zt > 0))
        return INT32_MIN;
    if (zt > DBL_MAX)
        return INT32_MAX;
    if (scale != last.scale || zt != last.zt) {
        last.bound = vt__sketch_map_index(scale, zt);
        last.scale = scale;
        last.zt = zt;
    }
    return last.bound;
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
        width_max(d->width) < store_peak(d) + store_peak(src))
        return false;
    size_t n = (size_t)((int64_t)src->hi - src->lo + 1);
    size_t sp = (size_t)((int64_t)src->lo - src->offset);
    size_t dp = (size_t)((int64_t)src->lo - d->offset);
    uint64_t peak = 0; /* of the sums: exact, so that widths stay tight */
#define ADD_LOOP(DT, ST)                                                       \
    do {                                                                       \
        DT *o = (DT *)d->bins + dp, m = 0;                                     \
        const ST *in = (const ST *)src->bins + sp;                             \
        for (size_t k = 0; k < n; k++) {                                       \
            o[k] = (DT)(o[k] + in[k]);                                         \
            m = o[k] > m ? o[k] : m;                                           \
        }                                                                      \
        peak = m;                                                              \
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
    store_raise_peak(d, peak);
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
    if (reserve_only) /* a shift adds up to 2^shift buckets into one */
        return vt__sketch_store_reserve(d, lo, hi, src->total,
                                        shift ? src->total : store_peak(src), dst->max_bins);
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
void vt__sketch_merge_totals(vt_sketch *dst, uint64_t zero_count, uint64_t count, double sum,
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
    int32_t zfold = vt__sketch_zero_fold_bound(dst->scale, zt);
    if (zt > dst->zero_threshold || merge_lowest(from, shift) <= zfold)
        zfold = vt__sketch_zero_fold_index(dst->scale, zt);
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
        vt__sketch_merge_totals(dst, from->zero_count, from->count, from->sum, from->min, from->max);
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

void vt_sketch_prefetch_range(const vt_sketch *s, int32_t lo, int32_t hi)
{
    const vt_sketch_store *st = &s->pos; /* negative values are rare */
    if (!st->total)
        return;
    lo = lo > st->lo ? lo : st->lo;
    hi = hi < st->hi ? hi : st->hi;
    if (lo > hi)
        return;
    const char *p = (const char *)st->bins + (size_t)(lo - st->offset) * st->width;
    size_t n = (size_t)((int64_t)hi - lo + 1) * st->width;
    for (size_t i = 0; i < n; i += 64)
        __builtin_prefetch(p + i, 1);
    __builtin_prefetch(p + n - 1, 1);
}

void vt_sketch_prefetch(const vt_sketch *s)
{
    vt_sketch_prefetch_range(s, INT32_MIN, INT32_MAX);
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

/* A store as Buckets, in the form store_forms says is smaller. */
static int store_to_proto(const vt_sketch_store *st, Vitals__V1__Buckets **out)
{
    *out = NULL;
    if (st->total == 0)
        return 0;
    size_t a, e;
    store_span(st, &a, &e);
    size_t dense, sparse, nonzero;
    store_forms(st, &dense, &sparse, &nonzero);
    bool pairs = sparse < dense;
    Vitals__V1__Buckets *bk = malloc(sizeof *bk);
    uint64_t *v = malloc((pairs ? 2 * nonzero : e - a) * sizeof *v);
    if (!bk || !v) {
        free(bk);
        free(v);
        return -ENOMEM;
    }
    vitals__v1__buckets__init(bk);
    bk->offset = st->lo;
    size_t i = 0;
    if (pairs) {
        for (size_t k = store_nz_next(st, a, e), next = a; k < e; k = store_nz_next(st, k + 1, e)) {
            v[i++] = k - next;
            v[i++] = cnt_get(st->bins, st->width, k);
            next = k + 1;
        }
        bk->n_sparse = i, bk->sparse = v;
    } else {
        for (size_t k = a; k < e; k++)
            v[i++] = cnt_get(st->bins, st->width, k);
        bk->n_counts = i, bk->counts = v;
    }
    *out = bk;
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
            free(bs[k]->sparse);
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
