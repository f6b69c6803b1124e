/*
 * test_sketch.c - the DDSketch against exact answers.
 *
 * Accuracy is checked against sorted samples (1,000,000 per distribution),
 * the index mapping against powers of two, table boundaries and an
 * independent long-double computation, merge against building the whole
 * sketch at once (bucket for bucket). The wire form is test_sketch_wire.c.
 * Samples come from a fixed-seed PRNG (sketch_test_util.h) so a failure
 * reproduces.
 */
#include <errno.h>
#include <float.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "sketch.h"
#include "sketch_test_util.h"

static const char *dist_name[NDIST] = {"lognormal", "uniform", "pareto"};

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static const double quantiles[] = {0.5, 0.9, 0.95, 0.99, 0.999};
#define NQ (sizeof quantiles / sizeof quantiles[0])

/* |estimate - exact| <= alpha * |exact|, with room for the last-bit rounding
 * of the estimate. */
static void assert_rel(double est, double exact, double alpha, const char *what, double q)
{
    double err = fabs(est - exact) / fabs(exact);
    if (!(err <= alpha * (1 + 1e-9))) {
        print_error("%s q=%g: estimate %.17g exact %.17g rel error %.6g > %.6g\n", what, q, est,
                    exact, err, alpha);
        fail();
    }
}

/* ---- the mapping ------------------------------------------------------ */

static void test_relative_error(void **state)
{
    (void)state;
    assert_true(fabs(vt_sketch_relative_error(6) - 0.005415) < 1e-5);
    assert_true(fabs(vt_sketch_relative_error(5) - 0.010830) < 1e-5);
    assert_true(fabs(vt_sketch_relative_error(0) - 1.0 / 3) < 1e-12);
    assert_true(vt_sketch_relative_error(-10) <= 1 && vt_sketch_relative_error(-10) > 0.99);
    assert_true(vt_sketch_relative_error(20) > 0 && vt_sketch_relative_error(20) < 1e-6);
}

/* ceil(k * 2^s) - 1 for the power of two 2^k, done in integers. */
static int32_t pow2_index(int k, int s)
{
    if (s >= 0)
        return k * (1 << s) - 1;
    int64_t d = (int64_t)1 << -s;
    int64_t c = k >= 0 ? (k + d - 1) / d : -((-k) / d); /* ceil(k / d) */
    return (int32_t)(c - 1);
}

static void test_index_powers_of_two(void **state)
{
    (void)state;
    for (int s = VT_SKETCH_MIN_SCALE; s <= VT_SKETCH_MAX_SCALE; s++)
        for (int k = -1074; k <= 1023; k++) {
            double v = ldexp(1.0, k);
            int32_t want = pow2_index(k, s);
            assert_int_equal(vt_sketch_index(s, v), want);
            /* The next double up opens the next bucket when 2^k is a bound. */
            double up = nextafter(v, INFINITY);
            if (s >= 0 && isfinite(up) && k >= -1022)
                assert_int_equal(vt_sketch_index(s, up), want + 1);
            /* And the one just below stays in the same bucket. */
            double dn = nextafter(v, 0);
            if (s >= 0 && dn > 0 && k > -1074) {
                int32_t di = vt_sketch_index(s, dn);
                assert_true(di == want || (k <= -1022 && di <= want));
            }
        }
    assert_int_equal(vt_sketch_index(6, 1.0), -1);
    assert_int_equal(vt_sketch_index(6, 2.0), 63);
    assert_int_equal(vt_sketch_index(0, 3.0), 1);
    assert_int_equal(vt_sketch_index(-1, 3.0), 0);
    assert_int_equal(vt_sketch_index(6, 0.0), INT32_MIN);
    assert_int_equal(vt_sketch_index(6, -1.0), INT32_MIN);
    assert_int_equal(vt_sketch_index(6, INFINITY), INT32_MIN);
    assert_int_equal(vt_sketch_index(6, NAN), INT32_MIN);
    assert_int_equal(vt_sketch_index(21, 1.0), INT32_MIN);
}

/* Independent reference: ceil(log2(v) * 2^s) - 1 in long double, or
 * INT32_MIN when v is too close to a bucket bound for long double to say. */
static int32_t ref_index(int s, double v)
{
    int e;
    double m = frexp(v, &e); /* v = m * 2^e, m in [0.5, 1) */
    long double x = 2.0L * m;
    long double l = log2l(x) * (long double)(1 << s); /* in [0, 2^s) */
    long double c = ceill(l);
    /* Neighbouring doubles are ~3e-16 * 2^s apart in these units; long
     * double log2 is good to ~1e-19 * 2^s. */
    long double eps = (long double)(1 << s) * 4e-18L;
    if (c - l < eps || (l - (c - 1) < eps && l > 0))
        return INT32_MIN; /* ambiguous within long double precision */
    return (e - 1) * (1 << s) + (int32_t)c - 1;
}

static void test_index_boundaries(void **state)
{
    (void)state;
    rng r = {42};
    long skipped = 0, checked = 0;
    for (int s = 0; s <= 12; s++) {
        int32_t n = 1 << s;
        for (int32_t k = 1; k < n; k++) {
            /* The doubles around each boundary 2^(k/2^s), at three octaves. */
            for (int oct = -3; oct <= 3; oct += 3) {
                double b = (double)exp2l((long double)k / n) * ldexp(1.0, oct);
                double around[5] = {nextafter(nextafter(b, 0), 0), nextafter(b, 0), b,
                                    nextafter(b, INFINITY),
                                    nextafter(nextafter(b, INFINITY), INFINITY)};
                for (int a = 0; a < 5; a++) {
                    int32_t want = ref_index(s, around[a]);
                    if (want == INT32_MIN) {
                        skipped++;
                        continue;
                    }
                    checked++;
                    if (vt_sketch_index(s, around[a]) != want) {
                        print_error("scale %d v=%.17g index %d want %d\n", s, around[a],
                                    vt_sketch_index(s, around[a]), want);
                        fail();
                    }
                    /* The bucket bounds agree with the index. */
                    assert_true(vt_sketch_bucket_lower(s, want) <= around[a]);
                    assert_true(vt_sketch_bucket_upper(s, want) >= around[a]);
                }
            }
        }
    }
    /* Random doubles over the whole range, incl. subnormals, every scale. */
    for (int t = 0; t < 200000; t++) {
        uint64_t bits = rng_next(&r) & 0x7fefffffffffffffull;
        double v;
        memcpy(&v, &bits, sizeof v);
        if (!(v > 0))
            continue;
        int s = (int)(rng_next(&r) % 21);
        int32_t want = ref_index(s, v);
        if (want == INT32_MIN || v < DBL_MIN) /* frexp reference needs normals */
            continue;
        checked++;
        assert_int_equal(vt_sketch_index(s, v), want);
    }
    /* Downscaling is exact: index at s-1 == index at s >> 1, all scales. */
    for (int t = 0; t < 200000; t++) {
        uint64_t bits = rng_next(&r) & 0x7fefffffffffffffull;
        double v;
        memcpy(&v, &bits, sizeof v);
        if (!(v > 0))
            continue;
        int s = VT_SKETCH_MIN_SCALE + 1 + (int)(rng_next(&r) % 30);
        int32_t fine = vt_sketch_index(s, v), coarse = vt_sketch_index(s - 1, v);
        int32_t shifted = fine >= 0 ? fine / 2 : -((-fine + 1) / 2);
        assert_int_equal(coarse, shifted);
    }
    print_message("index: %ld values checked, %ld too close for long double\n", checked,
                  skipped);
    assert_true(skipped * 100 < checked);
}

/* ---- accuracy ----------------------------------------------------------- */

#define NSAMPLES 1000000

static void test_accuracy_three_distributions(void **state)
{
    (void)state;
    double *xs = malloc(NSAMPLES * sizeof *xs);
    assert_non_null(xs);
    double alpha = vt_sketch_relative_error(VT_SKETCH_DEFAULT_SCALE);
    for (int d = 0; d < NDIST; d++) {
        rng r = {1000 + (uint64_t)d};
        vt_sketch s;
        vt_sketch_init_default(&s);
        double sum = 0;
        for (int i = 0; i < NSAMPLES; i++) {
            xs[i] = sample(&r, (enum dist)d);
            sum += xs[i];
            assert_int_equal(vt_sketch_add(&s, xs[i]), 0);
        }
        qsort(xs, NSAMPLES, sizeof *xs, cmp_double);
        assert_int_equal(vt_sketch_count(&s), NSAMPLES);
        assert_true(vt_sketch_min(&s) == xs[0]);
        assert_true(vt_sketch_max(&s) == xs[NSAMPLES - 1]);
        assert_true(fabs(vt_sketch_sum(&s) - sum) <= 1e-9 * sum);
        assert_int_equal(vt_sketch_collapsed_count(&s), 0);
        double worst = 0;
        for (size_t k = 0; k < NQ; k++) {
            double exact = xs[(size_t)floor(quantiles[k] * (NSAMPLES - 1))];
            double est = vt_sketch_quantile(&s, quantiles[k]);
            assert_rel(est, exact, alpha, dist_name[d], quantiles[k]);
            double err = fabs(est - exact) / exact;
            worst = err > worst ? err : worst;
        }
        /* Every percentile, not only the five. */
        for (int p = 1; p < 100; p++) {
            double q = p / 100.0;
            assert_rel(vt_sketch_quantile(&s, q), xs[(size_t)floor(q * (NSAMPLES - 1))], alpha,
                       dist_name[d], q);
        }
        assert_true(vt_sketch_quantile(&s, 0) == xs[0]);
        assert_true(vt_sketch_quantile(&s, 1) == xs[NSAMPLES - 1]);
        print_message("%-9s worst rel error %.5f (bound %.5f), %zu bytes\n", dist_name[d], worst,
                      alpha, vt_sketch_memory(&s));
        vt_sketch_free(&s);
    }
    free(xs);
}

static void test_accuracy_other_scales(void **state)
{
    (void)state;
    enum { N = 100000 };
    double *xs = malloc(N * sizeof *xs);
    assert_non_null(xs);
    int scales[] = {-2, 0, 3, 5, 8, 10, 12, 16};
    for (size_t si = 0; si < sizeof scales / sizeof *scales; si++) {
        int sc = scales[si];
        double alpha = vt_sketch_relative_error(sc);
        rng r = {7 + si};
        vt_sketch s;
        assert_int_equal(vt_sketch_init(&s, sc, 65536, 0), 0);
        for (int i = 0; i < N; i++) {
            /* Fine scales need a narrow range to stay within max_bins. */
            xs[i] = sc <= 10 ? sample(&r, PARETO) : 100 * (1 + 0.5 * rng_unit(&r));
            assert_int_equal(vt_sketch_add(&s, xs[i]), 0);
        }
        qsort(xs, N, sizeof *xs, cmp_double);
        assert_int_equal(vt_sketch_collapsed_count(&s), 0);
        for (size_t k = 0; k < NQ; k++)
            assert_rel(vt_sketch_quantile(&s, quantiles[k]),
                       xs[(size_t)floor(quantiles[k] * (N - 1))], alpha, "scale", sc);
        vt_sketch_free(&s);
    }
    free(xs);
}

/* Negative values: quantiles mirror, error relative to |x|. */
static void test_negative_values(void **state)
{
    (void)state;
    enum { N = 200000 };
    double *xs = malloc(N * sizeof *xs);
    assert_non_null(xs);
    rng r = {99};
    vt_sketch s;
    vt_sketch_init_default(&s);
    for (int i = 0; i < N; i++) {
        /* A mix: negative lognormal, zeros, positive uniform. */
        double u = rng_unit(&r);
        xs[i] = u < 0.4 ? -sample(&r, LOGNORMAL) : u < 0.5 ? 0.0 : sample(&r, UNIFORM);
        assert_int_equal(vt_sketch_add(&s, xs[i]), 0);
    }
    qsort(xs, N, sizeof *xs, cmp_double);
    double alpha = vt_sketch_relative_error(6);
    double qs[] = {0.001, 0.01, 0.1, 0.2, 0.39, 0.5, 0.6, 0.9, 0.99, 0.999};
    for (size_t k = 0; k < sizeof qs / sizeof *qs; k++) {
        double exact = xs[(size_t)floor(qs[k] * (N - 1))];
        double est = vt_sketch_quantile(&s, qs[k]);
        if (exact == 0)
            assert_true(est == 0);
        else
            assert_rel(est, exact, alpha, "mixed", qs[k]);
    }
    assert_true(vt_sketch_min(&s) < 0);
    assert_true(vt_sketch_quantile(&s, 0.45) == 0);

    /* Mirror: the sketch of -x gives -quantile(1 - q) of the sketch of x. */
    vt_sketch a, b;
    vt_sketch_init_default(&a);
    vt_sketch_init_default(&b);
    rng r2 = {5};
    for (int i = 0; i < 10001; i++) {
        double v = sample(&r2, PARETO);
        vt_sketch_add(&a, v);
        vt_sketch_add(&b, -v);
    }
    for (size_t k = 0; k < NQ; k++)
        assert_true(vt_sketch_quantile(&b, 1 - quantiles[k]) ==
                    -vt_sketch_quantile(&a, quantiles[k]));
    vt_sketch_free(&a);
    vt_sketch_free(&b);
    vt_sketch_free(&s);
    free(xs);
}

/* Scores in [0, 1], 0/1 flags, -1/0/1 feedback. */
static void test_scores(void **state)
{
    (void)state;
    vt_sketch s;
    vt_sketch_init_default(&s);
    for (int i = 0; i < 90; i++)
        vt_sketch_add(&s, 0.0);
    for (int i = 0; i < 10; i++)
        vt_sketch_add(&s, 1.0);
    assert_true(vt_sketch_quantile(&s, 0.5) == 0);
    assert_true(vt_sketch_quantile(&s, 0.95) > 0.99 && vt_sketch_quantile(&s, 0.95) <= 1);
    assert_true(fabs(vt_sketch_mean(&s) - 0.1) < 1e-12);
    assert_true(fabs(vt_sketch_rank(&s, 0.5) - 0.9) < 1e-12);
    vt_sketch_reset(&s);

    for (int i = 0; i < 30; i++) {
        vt_sketch_add(&s, -1);
        vt_sketch_add(&s, 0);
        vt_sketch_add(&s, 1);
    }
    assert_rel(vt_sketch_quantile(&s, 0.1), -1, vt_sketch_relative_error(6), "feedback", 0.1);
    assert_true(vt_sketch_quantile(&s, 0.5) == 0);
    assert_true(vt_sketch_quantile(&s, 0.9) > 0.99);
    assert_true(fabs(vt_sketch_rank(&s, -0.5) - 1.0 / 3) < 1e-12);
    assert_true(fabs(vt_sketch_rank(&s, 0) - 2.0 / 3) < 1e-12);
    vt_sketch_reset(&s);

    /* Floating-point dust goes to the zero bucket instead of 3,000 buckets. */
    vt_sketch_add(&s, 1e-17);
    vt_sketch_add(&s, 0.9);
    assert_int_equal(s.zero_count, 1);
    assert_true(vt_sketch_memory(&s) < 512);
    vt_sketch_reset(&s);

    /* Relevance-like scores: accurate in absolute terms near 0 as well. */
    rng r = {3};
    enum { N = 100000 };
    static double xs[N];
    for (int i = 0; i < N; i++) {
        double u = rng_unit(&r);
        xs[i] = u * u; /* skewed towards 0 */
        vt_sketch_add(&s, xs[i]);
    }
    qsort(xs, N, sizeof *xs, cmp_double);
    for (int p = 1; p < 100; p++) {
        double exact = xs[(size_t)floor(p / 100.0 * (N - 1))];
        assert_rel(vt_sketch_quantile(&s, p / 100.0), exact, vt_sketch_relative_error(6), "score",
                   p);
    }
    print_message("scores in [0,1): %zu bytes, %d..%d\n", vt_sketch_memory(&s), s.pos.lo,
                  s.pos.hi);
    vt_sketch_free(&s);
}

/* ---- merge -------------------------------------------------------------- */

static void test_merge_parts_equals_whole(void **state)
{
    (void)state;
    enum { N = 1000000, PARTS = 100 };
    uint32_t bins[] = {VT_SKETCH_DEFAULT_MAX_BINS, 96}; /* 96: every part collapses */
    for (int b = 0; b < 2; b++) {
        vt_sketch whole, merged, parts[PARTS];
        assert_int_equal(vt_sketch_init(&whole, 6, bins[b], 1e-9), 0);
        assert_int_equal(vt_sketch_init(&merged, 6, bins[b], 1e-9), 0);
        for (int p = 0; p < PARTS; p++)
            assert_int_equal(vt_sketch_init(&parts[p], 6, bins[b], 1e-9), 0);
        rng r = {2024};
        for (int i = 0; i < N; i++) {
            double u = rng_unit(&r);
            double v = u < 0.05 ? -sample(&r, UNIFORM) : u < 0.06 ? 0 : sample(&r, LOGNORMAL);
            vt_sketch_add(&whole, v);
            vt_sketch_add(&parts[rng_next(&r) % PARTS], v);
        }
        for (int p = 0; p < PARTS; p++) {
            assert_int_equal(vt_sketch_merge(&merged, &parts[p]), 0);
            vt_sketch_free(&parts[p]);
        }
        assert_true(vt_sketch_same(&merged, &whole));
        assert_true(fabs(merged.sum - whole.sum) <= 1e-9 * fabs(whole.sum));
        assert_int_equal(vt_sketch_collapsed_count(&merged), vt_sketch_collapsed_count(&whole));
        if (b == 1)
            assert_true(vt_sketch_collapsed_count(&whole) > 0);
        for (size_t k = 0; k < NQ; k++)
            assert_true(vt_sketch_quantile(&merged, quantiles[k]) ==
                        vt_sketch_quantile(&whole, quantiles[k]));
        vt_sketch_free(&whole);
        vt_sketch_free(&merged);
    }
}

static void test_merge_across_scales(void **state)
{
    (void)state;
    vt_sketch fine, coarse, whole3, a, b;
    vt_sketch_init(&fine, 6, 0, 0);
    vt_sketch_init(&coarse, 3, 0, 0);
    vt_sketch_init(&whole3, 3, 0, 0);
    rng r = {11};
    for (int i = 0; i < 100000; i++) {
        double v = (i & 1 ? 1 : -1) * sample(&r, PARETO);
        vt_sketch_add(i % 3 ? &fine : &coarse, v);
        vt_sketch_add(&whole3, v);
    }
    /* coarse += fine: the source is downscaled on the fly. */
    vt_sketch_init(&a, 3, 0, 0);
    assert_int_equal(vt_sketch_copy(&a, &coarse), 0);
    assert_int_equal(vt_sketch_merge(&a, &fine), 0);
    assert_true(vt_sketch_same(&a, &whole3));
    /* fine += coarse: the destination is downscaled first. */
    vt_sketch_init(&b, 6, 0, 0);
    assert_int_equal(vt_sketch_copy(&b, &fine), 0);
    assert_int_equal(vt_sketch_merge(&b, &coarse), 0);
    assert_int_equal(b.scale, 3);
    assert_true(vt_sketch_same(&b, &whole3));
    /* downscale(6 -> 3) of a scale-6 sketch equals building at scale 3. */
    vt_sketch f2, w2;
    vt_sketch_init(&f2, 6, 0, 0);
    vt_sketch_init(&w2, 3, 0, 0);
    rng r2 = {12};
    for (int i = 0; i < 50000; i++) {
        double v = sample(&r2, LOGNORMAL);
        vt_sketch_add(&f2, v);
        vt_sketch_add(&w2, v);
    }
    assert_int_equal(vt_sketch_downscale(&f2, 3), 0);
    assert_true(vt_sketch_same(&f2, &w2));
    assert_int_equal(vt_sketch_downscale(&f2, 4), -EINVAL); /* only coarser */
    assert_int_equal(vt_sketch_downscale(&f2, -11), -EINVAL);
    vt_sketch_free(&fine);
    vt_sketch_free(&coarse);
    vt_sketch_free(&whole3);
    vt_sketch_free(&a);
    vt_sketch_free(&b);
    vt_sketch_free(&f2);
    vt_sketch_free(&w2);
}

static void test_merge_edge_cases(void **state)
{
    (void)state;
    vt_sketch a, b, e;
    vt_sketch_init_default(&a);
    vt_sketch_init_default(&e);
    for (int i = 1; i <= 100; i++)
        vt_sketch_add(&a, i);
    /* Empty into non-empty and back. */
    assert_int_equal(vt_sketch_merge(&a, &e), 0);
    assert_int_equal(vt_sketch_count(&a), 100);
    assert_int_equal(vt_sketch_merge(&e, &a), 0);
    assert_true(vt_sketch_same(&e, &a));
    /* Self-merge doubles every bucket. */
    assert_int_equal(vt_sketch_merge(&a, &a), 0);
    assert_int_equal(vt_sketch_count(&a), 200);
    assert_int_equal(vt_sketch_bucket_get(&a, 0, vt_sketch_index(6, 50.0)), 2);
    /* A larger zero threshold wins; buckets below it join the zero bucket. */
    vt_sketch_init(&b, 6, 0, 2.5);
    vt_sketch_add(&b, 1000);
    assert_int_equal(vt_sketch_merge(&e, &b), 0);
    assert_true(e.zero_threshold == 2.5);
    assert_int_equal(e.zero_count, 2); /* 1 and 2: their buckets end <= 2.5 */
    assert_int_equal(vt_sketch_count(&e), 101);
    assert_int_equal(e.zero_count + e.pos.total, 101);
    /* Overflow of the count is refused, nothing changes. */
    vt_sketch big;
    vt_sketch_init_default(&big);
    assert_int_equal(vt_sketch_add_n(&big, 5, UINT64_MAX - 10), 0);
    assert_int_equal(vt_sketch_merge(&big, &a), -EOVERFLOW);
    assert_int_equal(vt_sketch_count(&big), UINT64_MAX - 10);
    assert_int_equal(vt_sketch_add_n(&big, 5, 11), -EOVERFLOW);
    assert_int_equal(vt_sketch_add_n(&big, 5, 10), 0);
    assert_int_equal(vt_sketch_bucket_get(&big, 0, vt_sketch_index(6, 5)), UINT64_MAX);
    vt_sketch_free(&big);
    vt_sketch_free(&a);
    vt_sketch_free(&b);
    vt_sketch_free(&e);
}

/* ---- collapse, memory, counters ------------------------------------------ */

static void test_collapse(void **state)
{
    (void)state;
    enum { N = 200000, BINS = 800 };
    double *xs = malloc(N * sizeof *xs);
    assert_non_null(xs);
    vt_sketch s;
    assert_int_equal(vt_sketch_init(&s, 6, BINS, 0), 0);
    rng r = {77};
    for (int i = 0; i < N; i++) {
        xs[i] = sample(&r, PARETO); /* 1 .. ~1e5: ~1070 buckets at scale 6 */
        assert_int_equal(vt_sketch_add(&s, xs[i]), 0);
    }
    qsort(xs, N, sizeof *xs, cmp_double);
    int32_t lo, hi;
    assert_int_equal(vt_sketch_bucket_range(&s, 0, &lo, &hi), 0);
    assert_int_equal(hi - lo + 1, BINS);
    assert_int_equal(hi, vt_sketch_index(6, xs[N - 1]));
    assert_int_equal(vt_sketch_count(&s), N); /* count kept */
    assert_true(s.pos.total == N);
    assert_true(vt_sketch_collapsed_count(&s) == vt_sketch_bucket_get(&s, 0, lo));
    assert_true(vt_sketch_collapsed_count(&s) > N / 2);
    assert_true(vt_sketch_memory(&s) <= sizeof s + BINS * 4);
    double alpha = vt_sketch_relative_error(6), kept = vt_sketch_bucket_upper(6, lo);
    int upper_checked = 0;
    for (size_t k = 0; k < NQ; k++) {
        double exact = xs[(size_t)floor(quantiles[k] * (N - 1))];
        double est = vt_sketch_quantile(&s, quantiles[k]);
        print_message("collapse q=%g exact %g est %g kept above %g\n", quantiles[k], exact, est,
                      kept);
        if (exact > kept) {
            assert_rel(est, exact, alpha, "collapsed", quantiles[k]);
            upper_checked++;
        } else {
            assert_true(est <= kept && est >= vt_sketch_min(&s)); /* in the collapsed bucket */
        }
    }
    assert_true(upper_checked >= 2); /* p99 and p99.9 are above the collapse */
    /* Values far below fold into the lowest kept bucket, no reallocation. */
    size_t mem = vt_sketch_memory(&s);
    assert_int_equal(vt_sketch_add(&s, 1e-300), 0);
    assert_int_equal(vt_sketch_bucket_range(&s, 0, &lo, &hi), 0);
    assert_int_equal(hi - lo + 1, BINS);
    assert_int_equal(vt_sketch_memory(&s), mem);
    assert_true(vt_sketch_min(&s) == 1e-300);
    /* A new maximum slides the window up. */
    assert_int_equal(vt_sketch_add(&s, 1e12), 0);
    assert_int_equal(vt_sketch_bucket_range(&s, 0, &lo, &hi), 0);
    assert_int_equal(hi, vt_sketch_index(6, 1e12));
    assert_int_equal(hi - lo + 1, BINS);
    assert_int_equal(s.pos.total, N + 2);
    assert_true(vt_sketch_quantile(&s, 1) == 1e12);
    vt_sketch_free(&s);

    /* Negative store collapses its smallest magnitudes. */
    vt_sketch n;
    vt_sketch_init(&n, 6, 64, 0);
    for (int i = 1; i <= 1000; i++)
        vt_sketch_add(&n, -(double)i);
    assert_int_equal(vt_sketch_bucket_range(&n, 1, &lo, &hi), 0);
    assert_int_equal(hi - lo + 1, 64);
    assert_int_equal(hi, vt_sketch_index(6, 1000));
    assert_true(fabs(vt_sketch_quantile(&n, 0.001) + 999) <= 999 * alpha + 1e-9);
    vt_sketch_free(&n);
    free(xs);
}

static void test_memory_and_width(void **state)
{
    (void)state;
    vt_sketch s;
    vt_sketch_init_default(&s);
    assert_int_equal(vt_sketch_memory(&s), sizeof s); /* nothing preallocated */
    rng r = {1};
    for (int i = 0; i < 1000; i++)
        vt_sketch_add(&s, sample(&r, LOGNORMAL));
    size_t mem = vt_sketch_memory(&s);
    print_message("1k lognormal latency values: %zu bytes (struct %zu), %d buckets\n", mem,
                  sizeof s, s.pos.hi - s.pos.lo + 1);
    assert_true(mem < 1024);
    assert_int_equal(s.pos.width, 1);
    /* Counters widen on overflow, counts stay exact. */
    for (int i = 0; i < 300; i++)
        vt_sketch_add(&s, 7.0);
    assert_int_equal(s.pos.width, 2);
    assert_int_equal(vt_sketch_add_n(&s, 7.0, 100000), 0);
    assert_int_equal(s.pos.width, 4);
    assert_int_equal(vt_sketch_add_n(&s, 7.0, 1ull << 40), 0);
    assert_int_equal(s.pos.width, 8);
    uint64_t c7 = vt_sketch_bucket_get(&s, 0, vt_sketch_index(6, 7.0));
    assert_true(c7 >= 300 + 100000 + (1ull << 40));
    assert_int_equal(vt_sketch_count(&s), 1000 + 300 + 100000 + (1ull << 40));
    /* Merges widen by the largest counter, not the total: 200 sketches of
     * 30 values spread over ~300 buckets (6,000 values, no bucket near
     * 255) stay one byte per counter, merged in memory or from the wire. */
    vt_sketch m, w, part;
    vt_sketch_init_default(&m);
    vt_sketch_init_default(&w);
    vt_sketch_init_default(&part);
    for (int k = 0; k < 200; k++) {
        vt_sketch_reset(&part);
        for (int i = 0; i < 30; i++)
            vt_sketch_add(&part, 1 + 100 * (double)((k * 30 + i) % 997) / 997.0);
        assert_int_equal(vt_sketch_merge(&m, &part), 0);
        uint8_t *buf;
        size_t len;
        assert_int_equal(vt_sketch_pack(&part, &buf, &len), 0);
        assert_int_equal(vt_sketch_merge_wire(&w, buf, len), 0);
        free(buf);
    }
    assert_int_equal(vt_sketch_count(&m), 6000);
    assert_true(vt_sketch_same(&m, &w));
    assert_int_equal(m.pos.width, 1);
    assert_int_equal(w.pos.width, 1);
    /* ... and widen when a bucket does pass 255 */
    vt_sketch_reset(&part);
    assert_int_equal(vt_sketch_add_n(&part, 50, 250), 0);
    assert_int_equal(vt_sketch_merge(&m, &part), 0);
    assert_int_equal(m.pos.width, 2);
    assert_true(vt_sketch_bucket_get(&m, 0, vt_sketch_index(6, 50)) > 250);
    vt_sketch_free(&m);
    vt_sketch_free(&w);
    vt_sketch_free(&part);
    /* reset keeps the allocation; free releases it. */
    vt_sketch_reset(&s);
    assert_int_equal(vt_sketch_count(&s), 0);
    assert_true(isnan(vt_sketch_quantile(&s, 0.5)));
    assert_true(isnan(vt_sketch_min(&s)) && isnan(vt_sketch_mean(&s)));
    assert_true(vt_sketch_memory(&s) > sizeof s);
    vt_sketch_add(&s, 3);
    assert_true(vt_sketch_quantile(&s, 0.5) == 3);
    vt_sketch_free(&s);
    assert_int_equal(vt_sketch_memory(&s), sizeof s);
    assert_int_equal(vt_sketch_count(&s), 0);
}

static void test_rejects_and_args(void **state)
{
    (void)state;
    vt_sketch s;
    vt_sketch_init_default(&s);
    assert_int_equal(vt_sketch_add(&s, NAN), -EINVAL);
    assert_int_equal(vt_sketch_add(&s, INFINITY), -EINVAL);
    assert_int_equal(vt_sketch_add(&s, -INFINITY), -EINVAL);
    assert_int_equal(vt_sketch_count(&s), 0);
    assert_int_equal(vt_sketch_add_n(&s, 1, 0), 0);
    assert_int_equal(vt_sketch_count(&s), 0);
    assert_int_equal(vt_sketch_add(&s, DBL_MAX), 0);
    assert_int_equal(vt_sketch_add(&s, -DBL_MAX), 0);
    assert_int_equal(vt_sketch_add(&s, 4.9e-324), 0); /* below the zero threshold */
    assert_int_equal(s.zero_count, 1);
    assert_true(vt_sketch_quantile(&s, 1) == DBL_MAX);
    assert_true(isnan(vt_sketch_quantile(&s, 1.5)));
    assert_true(isnan(vt_sketch_quantile(&s, -0.1)));
    assert_true(isnan(vt_sketch_quantile(&s, NAN)));
    assert_true(isnan(vt_sketch_rank(&s, NAN)));
    vt_sketch_free(&s);
    assert_int_equal(vt_sketch_init(&s, 21, 0, 0), -EINVAL);
    assert_int_equal(vt_sketch_init(&s, -11, 0, 0), -EINVAL);
    assert_int_equal(vt_sketch_init(&s, 6, VT_SKETCH_MAX_BINS_LIMIT + 1, 0), -EINVAL);
    assert_int_equal(vt_sketch_init(&s, 6, 0, -1), -EINVAL);
    assert_int_equal(vt_sketch_init(&s, 6, 0, NAN), -EINVAL);
    assert_int_equal(vt_sketch_init(&s, 6, 0, INFINITY), -EINVAL);
    /* Extreme scales work over the whole double range. */
    for (int sc = VT_SKETCH_MIN_SCALE; sc <= VT_SKETCH_MAX_SCALE; sc += 10) {
        assert_int_equal(vt_sketch_init(&s, sc, 0, 0), 0);
        double vs[] = {4.9e-324, 1e-300, 1, 1e300, DBL_MAX, -1e-300, -DBL_MAX};
        for (size_t k = 0; k < sizeof vs / sizeof *vs; k++)
            assert_int_equal(vt_sketch_add(&s, vs[k]), 0);
        assert_int_equal(vt_sketch_count(&s), 7);
        double q = vt_sketch_quantile(&s, 0.5);
        assert_true(q >= -DBL_MAX && q <= DBL_MAX);
        uint8_t *buf;
        size_t len;
        assert_int_equal(vt_sketch_pack(&s, &buf, &len), 0);
        vt_sketch t;
        assert_int_equal(vt_sketch_unpack(&t, buf, len, 0), 0);
        assert_true(vt_sketch_same(&s, &t));
        free(buf);
        vt_sketch_free(&t);
        vt_sketch_free(&s);
    }
}

static void test_rank(void **state)
{
    (void)state;
    vt_sketch s;
    vt_sketch_init_default(&s);
    for (int i = 1; i <= 1000; i++)
        vt_sketch_add(&s, i);
    assert_true(vt_sketch_rank(&s, 0.5) == 0);
    assert_true(vt_sketch_rank(&s, 1000) == 1);
    assert_true(vt_sketch_rank(&s, 5000) == 1);
    assert_true(vt_sketch_rank(&s, -INFINITY) == 0);
    assert_true(vt_sketch_rank(&s, INFINITY) == 1);
    /* Exact at bucket upper bounds. */
    for (int32_t i = vt_sketch_index(6, 10); i < vt_sketch_index(6, 900); i += 37) {
        double ub = vt_sketch_bucket_upper(6, i);
        if (vt_sketch_index(6, ub) != i) /* rounded up past the bound */
            ub = nextafter(ub, 0);
        assert_int_equal(vt_sketch_index(6, ub), i);
        double exact = floor(ub) / 1000;
        assert_true(fabs(vt_sketch_rank(&s, ub) - exact) < 1e-12);
    }
    /* Elsewhere off by at most the share of x's bucket. */
    for (double x = 1.5; x < 1000; x *= 1.37) {
        double exact = floor(x) / 1000, got = vt_sketch_rank(&s, x);
        double share = (double)vt_sketch_bucket_get(&s, 0, vt_sketch_index(6, x)) / 1000;
        assert_true(got >= exact - 1e-12 && got <= exact + share + 1e-12);
    }
    /* Negative side. */
    vt_sketch_reset(&s);
    for (int i = -500; i <= 500; i++)
        vt_sketch_add(&s, i);
    assert_true(fabs(vt_sketch_rank(&s, 0) - 501.0 / 1001) < 1e-12);
    assert_true(fabs(vt_sketch_rank(&s, -0.5) - 500.0 / 1001) < 1e-12);
    double got = vt_sketch_rank(&s, -vt_sketch_bucket_lower(6, vt_sketch_index(6, 100)));
    assert_true(got > 0 && got < 0.5);
    vt_sketch_free(&s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_relative_error),
        cmocka_unit_test(test_index_powers_of_two),
        cmocka_unit_test(test_index_boundaries),
        cmocka_unit_test(test_accuracy_three_distributions),
        cmocka_unit_test(test_accuracy_other_scales),
        cmocka_unit_test(test_negative_values),
        cmocka_unit_test(test_scores),
        cmocka_unit_test(test_merge_parts_equals_whole),
        cmocka_unit_test(test_merge_across_scales),
        cmocka_unit_test(test_merge_edge_cases),
        cmocka_unit_test(test_collapse),
        cmocka_unit_test(test_memory_and_width),
        cmocka_unit_test(test_rejects_and_args),
        cmocka_unit_test(test_rank),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
