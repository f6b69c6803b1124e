/*
 * sketch_test_util.h - deterministic samples for the sketch tests
 * (test_sketch.c, test_sketch_wire.c): a fixed-seed PRNG and the three
 * distributions, so that a failure reproduces. Header-only.
 */
#ifndef VT_SKETCH_TEST_UTIL_H
#define VT_SKETCH_TEST_UTIL_H

#include <math.h>
#include <stdint.h>

/* ---- deterministic samples ------------------------------------------ */

typedef struct {
    uint64_t s;
} rng;

static inline uint64_t rng_next(rng *r)
{
    uint64_t z = (r->s += 0x9e3779b97f4a7c15ull); /* splitmix64 */
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static inline double rng_unit(rng *r) /* (0, 1) */
{
    return ((double)(rng_next(r) >> 11) + 0.5) / 9007199254740992.0;
}

static inline double rng_normal(rng *r)
{
    return sqrt(-2 * log(rng_unit(r))) * cos(2 * M_PI * rng_unit(r));
}

enum dist { LOGNORMAL, UNIFORM, PARETO, NDIST };

static inline double sample(rng *r, enum dist d)
{
    switch (d) {
    case LOGNORMAL: return exp(log(300.0) + 0.8 * rng_normal(r)); /* latency ms */
    case UNIFORM: return 1 + 999 * rng_unit(r);
    default: return 1.0 / pow(rng_unit(r), 1 / 1.2); /* Pareto, alpha 1.2 */
    }
}

#endif
