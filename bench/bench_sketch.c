/*
 * bench_sketch.c - what a DDSketch costs: insert time, merge time, accuracy,
 * wire size and memory, on the distributions vitals sees.
 *
 * Metrics (stable names): insert_ns (one vt_sketch_add of a lognormal
 * latency, averaged over 1M values), merge_us (merging two 1M-sample latency
 * sketches), max_rel_error (worst relative error over lognormal latency,
 * uniform and Pareto heavy tail at p50/p90/p95/p99/p99.9, 1M samples each,
 * against sorted exact quantiles), serialized_bytes (packed vitals.v1.Sketch
 * of a 1M-sample latency sketch), bytes_in_memory (a 1k-sample latency
 * sketch), plus quantile_ns and unpack_us for the scorer's side.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "bench.h"
#include "sketch.h"

#define N 1000000

static uint64_t rng_s = 12345;

static double unit(void)
{
    uint64_t z = (rng_s += 0x9e3779b97f4a7c15ull); /* splitmix64 */
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    z ^= z >> 31;
    return ((double)(z >> 11) + 0.5) / 9007199254740992.0;
}

static double latency(void) /* lognormal, median 300 ms */
{
    double z = sqrt(-2 * log(unit())) * cos(2 * M_PI * unit());
    return exp(log(300.0) + 0.8 * z);
}

static double draw(int d)
{
    switch (d) {
    case 0: return latency();
    case 1: return 1 + 999 * unit();
    default: return 1.0 / pow(unit(), 1 / 1.2); /* Pareto, alpha 1.2 */
    }
}

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static void fill(vt_sketch *s, double *xs, int n)
{
    vt_sketch_init_default(s);
    for (int i = 0; i < n; i++) {
        xs[i] = latency();
        vt_sketch_add(s, xs[i]);
    }
}

int main(int argc, char **argv)
{
    bench_init(argc, argv, "sketch");
    double *xs = malloc(N * sizeof *xs);
    if (!xs)
        return 1;

    /* insert_ns: best of 5 passes over the same 1M pre-generated values. */
    for (int i = 0; i < N; i++)
        xs[i] = latency();
    double best = 1e9;
    volatile uint64_t sink = 0;
    for (int rep = 0; rep < 5; rep++) {
        vt_sketch s;
        vt_sketch_init_default(&s);
        double t0 = bench_now();
        for (int i = 0; i < N; i++)
            vt_sketch_add(&s, xs[i]);
        double ns = (bench_now() - t0) * 1e9 / N;
        best = ns < best ? ns : best;
        sink += vt_sketch_count(&s);
        vt_sketch_free(&s);
    }
    bench_report("insert_ns", best, "ns", "10-30");

    /* merge_us: dst += src, both 1M-sample latency sketches. */
    vt_sketch a, b, acc;
    fill(&a, xs, N);
    fill(&b, xs, N);
    vt_sketch_init_default(&acc);
    vt_sketch_copy(&acc, &a);
    int reps = 2000;
    double t0 = bench_now();
    for (int r = 0; r < reps; r++)
        vt_sketch_merge(&acc, &b);
    bench_report("merge_us", (bench_now() - t0) * 1e6 / reps, "us", "a few");
    vt_sketch_free(&acc);

    /* quantile_ns: p99 of a 1M-sample sketch. */
    t0 = bench_now();
    double qsum = 0;
    for (int r = 0; r < 100000; r++)
        qsum += vt_sketch_quantile(&a, 0.99);
    bench_report("quantile_ns", (bench_now() - t0) * 1e9 / 100000, "ns", NULL);

    /* serialized_bytes and unpack_us of the 1M-sample latency sketch. */
    uint8_t *buf;
    size_t len;
    vt_sketch_pack(&a, &buf, &len);
    bench_report("serialized_bytes", (double)len, "bytes", NULL);
    t0 = bench_now();
    for (int r = 0; r < 2000; r++) {
        vt_sketch t;
        vt_sketch_unpack(&t, buf, len, 0);
        sink += vt_sketch_count(&t);
        vt_sketch_free(&t);
    }
    bench_report("unpack_us", (bench_now() - t0) * 1e6 / 2000, "us", NULL);
    bench_report("bytes_in_memory_1m", (double)vt_sketch_memory(&a), "bytes", NULL);
    free(buf);
    vt_sketch_free(&a);
    vt_sketch_free(&b);

    /* bytes_in_memory: a 1k-sample latency sketch (what one series holds). */
    vt_sketch small;
    fill(&small, xs, 1000);
    bench_report("bytes_in_memory", (double)vt_sketch_memory(&small), "bytes", "< 1024");
    vt_sketch_free(&small);

    /* max_rel_error over three distributions and five quantiles. */
    static const double qs[] = {0.5, 0.9, 0.95, 0.99, 0.999};
    double worst = 0;
    for (int d = 0; d < 3; d++) {
        vt_sketch s;
        vt_sketch_init_default(&s);
        for (int i = 0; i < N; i++) {
            xs[i] = draw(d);
            vt_sketch_add(&s, xs[i]);
        }
        qsort(xs, N, sizeof *xs, cmp);
        for (int k = 0; k < 5; k++) {
            double exact = xs[(size_t)floor(qs[k] * (N - 1))];
            double err = fabs(vt_sketch_quantile(&s, qs[k]) - exact) / exact;
            worst = err > worst ? err : worst;
        }
        vt_sketch_free(&s);
    }
    bench_report("max_rel_error", worst, "ratio", "<= 0.01");
    free(xs);
    return sink == 0 && qsum == 0; /* keep the optimiser honest */
}
