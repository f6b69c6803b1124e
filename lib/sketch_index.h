/*
 * sketch_index.h - private to lib/sketch*.c: the OpenTelemetry exponential-
 * histogram index mapping (value -> bucket index at a scale) that sketch.c
 * builds its stores on. Programs use the public face in sketch.h
 * (vt_sketch_index, vt_sketch_bucket_lower/upper, vt_sketch_relative_error).
 *
 * Why part of it is inline here: vt__sketch_map_index() runs on every insert.
 * Kept static inline (with the boundary tables it reads exported from
 * sketch_index.c), it compiles into vt_sketch_add_n exactly as when it lived
 * in sketch.c; out of line it cost ~1 ns of a ~6 ns insert (bench_sketch
 * insert_ns, 3 runs each). The cold parts - the long-double path for scales
 * 11-20, bucket bounds, the reachable index range - are out of line in
 * sketch_index.c.
 */
#ifndef VT_SKETCH_INDEX_H
#define VT_SKETCH_INDEX_H

#include <assert.h>
#include <stdint.h>
#include <string.h>

#define VT__SKETCH_MANT_MASK ((1ull << 52) - 1)

/* B[k] = the boundary 2^(k/1024) as the 52-bit mantissa of a double in [1, 2]
 * (k in [0, 1024]); T[j] = first guess of k for a mantissa whose top 10 bits
 * are j. Defined, with how they were generated, in sketch_index.c. */
extern const uint64_t vt__sketch_bound[1025];
extern const uint16_t vt__sketch_guess[1024];

/* Smallest k in [1, 2^scale] with 1 + m/2^52 <= 2^(k / 2^scale), m > 0,
 * scale in [11, 20] (long-double boundaries; the table covers only 10). */
uint32_t vt__sketch_sub_index_ld(int scale, uint64_t m);

/* Index range that finite doubles can reach at this scale. */
int32_t vt__sketch_index_min(int scale);
int32_t vt__sketch_index_max(int scale);

/* The bucket's estimate: lower * (1 + alpha) = 2 * upper / (base + 1), at
 * relative distance <= alpha from both ends of (lower, upper]. */
double vt__sketch_bucket_value(int scale, int32_t index);

/* floor(x / 2^d) for any sign, without relying on >> of negative ints. */
static inline int32_t vt__sketch_floor_shift(int32_t x, int d)
{
    if (d == 0)
        return x;
    if (x >= 0)
        return x >> d;
    return -(int32_t)(((uint32_t)(-(int64_t)x) - 1u) >> d) - 1;
}

/* Split finite v > 0 into v = 2^E * (1 + m / 2^52), subnormals normalised. */
static inline void vt__sketch_split(double v, int *E, uint64_t *m)
{
    uint64_t bits;
    memcpy(&bits, &v, sizeof bits);
    int e = (int)((bits >> 52) & 0x7ff);
    uint64_t f = bits & VT__SKETCH_MANT_MASK;
    if (e == 0) {
        int sh = __builtin_clzll(f) - 11; /* bring the top set bit to bit 52 */
        f = (f << sh) & VT__SKETCH_MANT_MASK;
        e = 1 - sh;
    }
    *E = e - 1023;
    *m = f;
}

/* Smallest k in [1, 2^scale] with 1 + m/2^52 <= 2^(k / 2^scale), m > 0,
 * scale in [0, 10]: a guess from the top 10 mantissa bits, then exact
 * comparisons against the table (usually none or one step). */
static inline uint32_t vt__sketch_sub_index_table(int scale, uint64_t m)
{
    int sh = 10 - scale;
    uint32_t k = ((uint32_t)vt__sketch_guess[m >> 42] + (1u << sh) - 1) >> sh;
    while (m > vt__sketch_bound[k << sh])
        k++;
    assert(k >= 1 && k <= (1u << scale));
    assert(m > vt__sketch_bound[(k - 1) << sh] && m <= vt__sketch_bound[k << sh]);
    return k;
}

/* The bucket index of finite v > 0 at scale in [VT_SKETCH_MIN_SCALE,
 * VT_SKETCH_MAX_SCALE]; the caller has checked both (vt_sketch_index does). */
static inline int32_t vt__sketch_map_index(int scale, double v)
{
    int E;
    uint64_t m;
    vt__sketch_split(v, &E, &m);
    if (scale <= 0) {
        int32_t i0 = m == 0 ? E - 1 : E; /* the scale-0 index */
        return vt__sketch_floor_shift(i0, -scale);
    }
    if (m == 0)
        return E * (1 << scale) - 1; /* exact power of two: top of a bucket */
    uint32_t k = scale <= 10 ? vt__sketch_sub_index_table(scale, m)
                             : vt__sketch_sub_index_ld(scale, m);
    return E * (1 << scale) + (int32_t)k - 1;
}

#endif
