/*
 * fuzz_sketch.c - libFuzzer target for the sketch decoder and operations.
 *
 * The scorer decodes sketches straight from the network, so vt_sketch_unpack
 * must reject or accept any byte string without crashing, leaking or
 * building a sketch that breaks an invariant. Input layout: byte 0 picks the
 * mode and max_bins; the rest is either a packed vitals.v1.Sketch (even mode
 * byte) or a stream of 9-byte operations on a live sketch (odd): one op byte
 * then a double, exercising add/merge/downscale/collapse with hostile values.
 * Every accepted sketch must round-trip to identical bytes, answer queries
 * inside [min, max], and merge in place (from its bytes) exactly as decoded.
 */
#include <assert.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "sketch.h"

static void check_queries(const vt_sketch *s)
{
    if (vt_sketch_count(s) == 0) {
        if (!isnan(vt_sketch_quantile(s, 0.5)))
            abort();
        return;
    }
    double qs[] = {0, 0.001, 0.25, 0.5, 0.9, 0.999, 1};
    for (size_t k = 0; k < sizeof qs / sizeof *qs; k++) {
        double v = vt_sketch_quantile(s, qs[k]);
        if (!(v >= s->min && v <= s->max))
            abort();
    }
    double r = vt_sketch_rank(s, vt_sketch_quantile(s, 0.5));
    if (!(r >= 0 && r <= 1))
        abort();
    uint64_t total = s->zero_count + s->pos.total + s->neg.total;
    if (total != s->count)
        abort();
}

static void round_trip(const vt_sketch *s, uint32_t max_bins)
{
    uint8_t *a, *b;
    size_t alen, blen;
    if (vt_sketch_pack(s, &a, &alen))
        return;
    vt_sketch t;
    if (vt_sketch_unpack(&t, a, alen, max_bins) != 0)
        abort(); /* what we wrote, we must read */
    if (!vt_sketch_same(s, &t))
        abort();
    if (vt_sketch_pack(&t, &b, &blen) == 0) {
        if (blen != alen || memcmp(a, b, alen) != 0)
            abort();
        free(b);
    }
    vt_sketch_free(&t);
    free(a);
}

/* The scorer merges the bytes in place (vt_sketch_merge_wire[_checked]),
 * never decoding them first: into a sketch that already holds data at the
 * message's scale and zero threshold (the in-place path), that must give
 * bucket for bucket what merging the decoded sketch gives. */
static void merge_in_place(const vt_sketch *dec, const uint8_t *data, size_t size,
                           uint32_t max_bins)
{
    vt_sketch a, b, c;
    if (vt_sketch_init(&a, dec->scale, max_bins, dec->zero_threshold))
        return;
    const double seed[] = {0.75, 3.0, 1000.0, -2.5, 1e-12};
    for (size_t i = 0; i < sizeof seed / sizeof *seed; i++)
        vt_sketch_add(&a, seed[i]);
    vt_sketch_init(&b, dec->scale, max_bins, dec->zero_threshold);
    vt_sketch_init(&c, dec->scale, max_bins, dec->zero_threshold);
    if (vt_sketch_merge(&b, &a) || vt_sketch_merge(&c, &a))
        abort();
    int want = vt_sketch_merge(&a, dec);
    if (vt_sketch_merge_wire(&b, data, size) != want ||
        vt_sketch_merge_wire_checked(&c, data, size) != want)
        abort();
    if (want == 0 && (!vt_sketch_same(&a, &b) || !vt_sketch_same(&a, &c)))
        abort();
    if (want == 0)
        check_queries(&b);
    vt_sketch_free(&a);
    vt_sketch_free(&b);
    vt_sketch_free(&c);
}

/* protobuf-c's Buckets of a sketch our decoder accepted (so a sparse run
 * spans at most VT_SKETCH_MAX_BINS_LIMIT positions), as every count of
 * [offset, offset + *n) (malloc'ed; NULL when absent). */
static uint64_t *dense_of(const Vitals__V1__Buckets *b, size_t *n)
{
    *n = 0;
    if (!b)
        return NULL;
    if (!b->n_sparse) {
        uint64_t *v = malloc((b->n_counts + 1) * sizeof *v);
        if (b->n_counts)
            memcpy(v, b->counts, b->n_counts * sizeof *v);
        *n = b->n_counts;
        return v;
    }
    size_t span = 0;
    for (size_t i = 0; i + 1 < b->n_sparse; i += 2)
        span += b->sparse[i] + 1;
    uint64_t *v = calloc(span + 1, sizeof *v);
    for (size_t i = 0, k = 0; i + 1 < b->n_sparse; i += 2, k++)
        v[k += b->sparse[i]] = b->sparse[i + 1];
    *n = span;
    return v;
}

/* An independent decoder must agree: protobuf-c's reading of the same
 * bytes, bucket for bucket, whenever nothing can fold or collapse (no zero
 * threshold, the occupied range within max_bins, no collapsed_count). */
static void check_against_protobuf_c(const vt_sketch *s, const uint8_t *data, size_t size)
{
    Vitals__V1__Sketch *m = vitals__v1__sketch__unpack(NULL, size, data);
    if (!m)
        return;
    if (m->zero_threshold == 0 && m->collapsed_count == 0) {
        const Vitals__V1__Buckets *b[2] = {m->positive, m->negative};
        size_t n[2];
        uint64_t *c[2] = {dense_of(b[0], &n[0]), dense_of(b[1], &n[1])};
        for (int neg = 0; neg < 2; neg++) {
            int64_t lo = INT64_MAX, hi = INT64_MIN;
            for (size_t k = 0; k < n[neg]; k++)
                if (c[neg][k]) {
                    lo = lo == INT64_MAX ? b[neg]->offset + (int64_t)k : lo;
                    hi = b[neg]->offset + (int64_t)k;
                }
            if (lo > hi || hi - lo + 1 > s->max_bins)
                continue;
            int32_t first, last;
            if (vt_sketch_bucket_range(s, neg, &first, &last) || first != lo || last != hi)
                abort();
            for (size_t k = 0; k < n[neg]; k++)
                if (vt_sketch_bucket_get(s, neg, (int32_t)(b[neg]->offset + (int64_t)k)) !=
                    c[neg][k])
                    abort();
        }
        if (vt_sketch_collapsed_count(s) != 0 && n[0] <= s->max_bins && n[1] <= s->max_bins)
            abort(); /* nothing to collapse, yet collapsed */
        free(c[0]);
        free(c[1]);
    }
    vitals__v1__sketch__free_unpacked(m, NULL);
}

static void fuzz_decode(const uint8_t *data, size_t size, uint32_t max_bins)
{
    vt_sketch s;
    if (vt_sketch_unpack(&s, data, size, max_bins) != 0) {
        if (vt_sketch_count(&s) != 0)
            abort();
        vt_sketch_free(&s);
        return;
    }
    check_queries(&s);
    round_trip(&s, max_bins);
    merge_in_place(&s, data, size, max_bins);
    check_against_protobuf_c(&s, data, size);
    vt_sketch m;
    vt_sketch_init(&m, 4, max_bins, 0.5);
    vt_sketch_add(&m, 3.0);
    vt_sketch_add(&m, -0.25);
    if (vt_sketch_merge(&m, &s) == 0)
        check_queries(&m);
    if (vt_sketch_downscale(&s, s.scale > VT_SKETCH_MIN_SCALE ? s.scale - 1 : s.scale) == 0)
        check_queries(&s);
    vt_sketch_free(&m);
    vt_sketch_free(&s);
}

static void fuzz_ops(const uint8_t *data, size_t size, uint32_t max_bins)
{
    vt_sketch s, o;
    int scale = size > 0 ? (int)(data[0] % 31) - 10 : 6;
    if (vt_sketch_init(&s, scale, max_bins, size > 1 ? data[1] / 64.0 : 0) != 0)
        return;
    vt_sketch_init(&o, 6, max_bins, 0);
    for (size_t at = 2; at + 9 <= size; at += 9) {
        double v;
        memcpy(&v, data + at + 1, sizeof v);
        switch (data[at] % 6) {
        case 0: vt_sketch_add(&s, v); break;
        case 1: vt_sketch_add_n(&s, v, data[at] + 1u); break;
        case 2: vt_sketch_add(&o, v); break;
        case 3: vt_sketch_merge(&s, &o); break;
        case 4: vt_sketch_downscale(&s, s.scale - (data[at] >> 7)); break;
        default: (void)vt_sketch_rank(&s, v); break;
        }
    }
    check_queries(&s);
    round_trip(&s, max_bins);
    vt_sketch_free(&s);
    vt_sketch_free(&o);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    /* Small windows make collapse reachable; 0 means the default. */
    static const uint32_t bins[8] = {0, 1, 2, 7, 64, 160, 2048, 65536};
    uint32_t max_bins = bins[(data[0] >> 1) & 7];
    if (data[0] & 1)
        fuzz_ops(data + 1, size - 1, max_bins);
    else
        fuzz_decode(data + 1, size - 1, max_bins);
    return 0;
}
