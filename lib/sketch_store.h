/*
 * sketch_store.h - private to lib/sketch*.c: the counter arrays of a sketch
 * store and the few store operations that both sketch.c (in-memory sketches)
 * and sketch_wire.c (merging serialized ones in place) build on. Programs use
 * sketch.h.
 *
 * A store's counters are `width` bytes each (1, 2, 4 or 8), so that the
 * common small counts take a byte; width only grows, and only as far as
 * the largest counter needs (its `peak`), not the store's total (sketch.c
 * states the store invariants).
 */
#ifndef VT_SKETCH_STORE_H
#define VT_SKETCH_STORE_H

#include <assert.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "pb_write.h"
#include "sketch.h"

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

/* What bounds st's counters, for width decisions: the peak, or the total
 * once the peak saturated. */
static inline uint64_t store_peak(const vt_sketch_store *st)
{
    return st->peak == UINT32_MAX ? st->total : st->peak;
}

/* A counter of st now holds v. */
static inline void store_raise_peak(vt_sketch_store *st, uint64_t v)
{
    if (v > st->peak)
        st->peak = v >= UINT32_MAX ? UINT32_MAX : (uint32_t)v;
}

/* ---- the wire form of a store (Buckets) --------------------------------
 * Positions are counter positions in st->bins. */

/* [*a, *e): the positions of [lo, hi] of a non-empty store. */
static inline void store_span(const vt_sketch_store *st, size_t *a, size_t *e)
{
    *a = (size_t)((int64_t)st->lo - st->offset);
    *e = (size_t)((int64_t)st->hi - st->offset) + 1;
}

/* The first non-zero counter of st at a position in [k, end), or end. One-
 * byte counters are skipped eight at a time (little-endian: the lowest set
 * byte of a word is its first non-zero counter). */
static inline size_t store_nz_next(const vt_sketch_store *st, size_t k, size_t end)
{
    if (st->width == 1) {
        const uint8_t *b = st->bins;
        for (; end - k >= 8; k += 8) {
            uint64_t x;
            memcpy(&x, b + k, 8);
            if (x)
                return k + ((unsigned)__builtin_ctzll(x) >> 3);
        }
        while (k < end && !b[k])
            k++;
        return k;
    }
    while (k < end && !cnt_get(st->bins, st->width, k))
        k++;
    return k;
}

/* The bytes of the two Buckets forms of a non-empty store: dense (every
 * count of [lo, hi], one varint each) and sparse ((zeros skipped, count)
 * pairs for the non-zero ones); *nonzero counts those. The encoders write
 * the sparse form when it is smaller: what a store of few records spread
 * over a wide range (most of the scorer's series, most windows) ships in
 * half the bytes, and what the scorer then scans and merges in half the
 * time. */
static inline void store_forms(const vt_sketch_store *st, size_t *dense, size_t *sparse,
                               size_t *nonzero)
{
    size_t a, e;
    store_span(st, &a, &e);
    size_t d = e - a, sp = 0, nz = 0, next = a; /* next: the position after the last pair */
    for (size_t k = store_nz_next(st, a, e); k < e; k = store_nz_next(st, k + 1, e)) {
        size_t cl = pbw_varint_len(cnt_get(st->bins, st->width, k));
        d += cl - 1;
        sp += pbw_varint_len(k - next) + cl;
        nz++;
        next = k + 1;
    }
    *dense = d, *sparse = sp, *nonzero = nz;
}

/* Prepare st to receive `extra` more counts at indexes in [lo, hi], at most
 * `add_max` into any one bucket unless the union must collapse, without any
 * allocation (what merge needs to be all-or-nothing); see sketch.c. 0 or
 * -ENOMEM (st unchanged). */
int vt__sketch_store_reserve(vt_sketch_store *st, int32_t lo, int32_t hi, uint64_t extra,
                             uint64_t add_max, uint32_t max_bins);

/* The last step of every merge, once the buckets are in: dst's totals. */
void vt__sketch_merge_totals(vt_sketch *dst, uint64_t zero_count, uint64_t count, double sum,
                             double min, double max);

/* Highest index whose whole bucket lies in [0, zt], or INT32_MIN if none
 * (exact; computes in long double). */
int32_t vt__sketch_zero_fold_index(int scale, double zt);

/* An upper bound of vt__sketch_zero_fold_index without exp2l: the index of
 * zt's own bucket. When every index a merge brings lies above it, the exact
 * value cannot change what the merge does. */
int32_t vt__sketch_zero_fold_bound(int scale, double zt);

#endif
