/*
 * test_sketch_wire.c - the sketch's wire form: round trips through bytes,
 * both Buckets forms (dense and sparse) decoding and merging alike, the
 * in-place merges against merging the decoded sketch, and hand-made bad
 * messages refused without side effects; the direct encoder against
 * protobuf-c, byte for byte.
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

#include "pbw_test_util.h"
#include "sketch.h"
#include "sketch_test_util.h"

/* ---- proto --------------------------------------------------------------- */

static void fill_mixed(vt_sketch *s, int n, uint64_t seed)
{
    rng r = {seed};
    for (int i = 0; i < n; i++) {
        double u = rng_unit(&r);
        vt_sketch_add(s, u < 0.2 ? -sample(&r, PARETO) : u < 0.25 ? 0 : sample(&r, LOGNORMAL));
    }
}

/* The decoders read wire bytes: these pack a message struct first. */
static uint8_t *msg_bytes(const Vitals__V1__Sketch *m, size_t *len)
{
    *len = vitals__v1__sketch__get_packed_size(m);
    uint8_t *b = malloc(*len ? *len : 1);
    vitals__v1__sketch__pack(m, b);
    return b;
}

static int from_msg(vt_sketch *s, const Vitals__V1__Sketch *m, uint32_t max_bins)
{
    size_t n;
    uint8_t *b = msg_bytes(m, &n);
    int rc = vt_sketch_unpack(s, b, n, max_bins);
    free(b);
    return rc;
}

static int merge_msg(vt_sketch *d, const Vitals__V1__Sketch *m, int checked)
{
    size_t n;
    uint8_t *b = msg_bytes(m, &n);
    struct vt_sketch_kept k;
    int rc = checked == 3   ? vt_sketch_check_wire_kept(b, n, &k)
             : checked == 2 ? vt_sketch_check_wire(b, n, NULL)
             : checked == 1 ? vt_sketch_merge_wire_checked(d, b, n)
                            : vt_sketch_merge_wire(d, b, n);
    if (checked == 3 && rc == 0) { /* merged from what the check kept */
        assert_int_equal(k.count, m->count);
        assert_true(k.buf == b && k.len == n);
        rc = vt_sketch_merge_kept(d, &k);
    }
    free(b);
    return rc;
}

static void test_proto_round_trip(void **state)
{
    (void)state;
    uint32_t bins[] = {2048, 100};
    for (int b = 0; b < 2; b++) {
        vt_sketch s, t, u;
        vt_sketch_init(&s, 6, bins[b], 1e-9);
        fill_mixed(&s, 100000, 8);
        uint8_t *buf, *buf2;
        size_t len, len2;
        assert_int_equal(vt_sketch_pack(&s, &buf, &len), 0);
        assert_int_equal(vt_sketch_unpack(&t, buf, len, bins[b]), 0);
        assert_true(vt_sketch_same(&s, &t));
        assert_true(s.sum == t.sum);
        assert_int_equal(vt_sketch_collapsed_count(&s), vt_sketch_collapsed_count(&t));
        assert_int_equal(vt_sketch_pack(&t, &buf2, &len2), 0);
        assert_int_equal(len, len2);
        assert_memory_equal(buf, buf2, len); /* identical bytes */
        /* Through the message struct, and merge_proto. */
        Vitals__V1__Sketch msg;
        assert_int_equal(vt_sketch_to_proto(&s, &msg), 0);
        assert_int_equal(msg.count, vt_sketch_count(&s));
        assert_int_equal(msg.scale, 6);
        assert_non_null(msg.positive);
        assert_non_null(msg.negative);
        vt_sketch_init(&u, 6, bins[b], 1e-9);
        assert_int_equal(merge_msg(&u, &msg, 0), 0);
        assert_true(vt_sketch_same(&u, &s));
        vt_sketch_proto_release(&msg);
        assert_null(msg.positive);
        free(buf);
        free(buf2);
        vt_sketch_free(&s);
        vt_sketch_free(&t);
        vt_sketch_free(&u);
    }
    /* Empty sketch. */
    vt_sketch e, f;
    vt_sketch_init_default(&e);
    uint8_t *buf;
    size_t len;
    assert_int_equal(vt_sketch_pack(&e, &buf, &len), 0);
    assert_int_equal(vt_sketch_unpack(&f, buf, len, 0), 0);
    assert_true(vt_sketch_same(&e, &f));
    assert_int_equal(vt_sketch_count(&f), 0);
    free(buf);
    vt_sketch_free(&f);
    /* A message wider than max_bins is collapsed on load. */
    vt_sketch w;
    vt_sketch_init_default(&w);
    fill_mixed(&w, 10000, 9);
    assert_int_equal(vt_sketch_pack(&w, &buf, &len), 0);
    assert_int_equal(vt_sketch_unpack(&f, buf, len, 32), 0);
    int32_t lo, hi;
    assert_int_equal(vt_sketch_bucket_range(&f, 0, &lo, &hi), 0);
    assert_true(hi - lo + 1 <= 32);
    assert_int_equal(vt_sketch_count(&f), 10000);
    assert_true(vt_sketch_collapsed_count(&f) > 0);
    assert_true(vt_sketch_quantile(&f, 1) == vt_sketch_quantile(&w, 1));
    free(buf);
    vt_sketch_free(&f);
    vt_sketch_free(&w);
}

static uint64_t pc[4], nc[3];
static Vitals__V1__Buckets pb, nb;

static void good_msg(Vitals__V1__Sketch *m)
{
    vitals__v1__sketch__init(m);
    vitals__v1__buckets__init(&pb);
    vitals__v1__buckets__init(&nb);
    pc[0] = 2, pc[1] = 0, pc[2] = 3, pc[3] = 1;
    nc[0] = 4, nc[1] = 0, nc[2] = 0;
    pb.offset = 10, pb.n_counts = 4, pb.counts = pc;
    nb.offset = -5, nb.n_counts = 3, nb.counts = nc;
    m->scale = 6;
    m->count = 2 + 3 + 1 + 4 + 5;
    m->zero_count = 5;
    m->sum = 1;
    m->min = -2;
    m->max = 3;
    m->positive = &pb;
    m->negative = &nb;
}

static void expect_bad(Vitals__V1__Sketch *m, const char *what)
{
    vt_sketch s;
    int rc = from_msg(&s, m, 0);
    if (rc != -EBADMSG) {
        print_error("accepted bad message: %s (rc %d)\n", what, rc);
        fail();
    }
    assert_int_equal(vt_sketch_count(&s), 0); /* left empty and valid */
    vt_sketch_free(&s);
    /* Merging it changes nothing. */
    vt_sketch d;
    vt_sketch_init_default(&d);
    vt_sketch_add(&d, 1);
    assert_int_equal(merge_msg(&d, m, 0), -EBADMSG);
    assert_int_equal(merge_msg(&d, m, 2), -EBADMSG);
    assert_int_equal(vt_sketch_count(&d), 1);
    vt_sketch_free(&d);
}

static void test_wire_rejects_bad(void **state)
{
    (void)state;
    Vitals__V1__Sketch m;
    vt_sketch s;
    good_msg(&m);
    assert_int_equal(from_msg(&s, &m, 0), 0);
    assert_int_equal(vt_sketch_count(&s), 15);
    assert_int_equal(vt_sketch_bucket_get(&s, 0, 12), 3);
    assert_int_equal(vt_sketch_bucket_get(&s, 1, -5), 4);
    vt_sketch_free(&s);

    good_msg(&m), m.scale = 21, expect_bad(&m, "scale 21");
    good_msg(&m), m.scale = -11, expect_bad(&m, "scale -11");
    good_msg(&m), m.count = 14, expect_bad(&m, "count too small");
    good_msg(&m), m.count = 16, expect_bad(&m, "count too large");
    good_msg(&m), m.zero_count = UINT64_MAX, expect_bad(&m, "zero_count overflow");
    good_msg(&m), pc[1] = UINT64_MAX - 1, expect_bad(&m, "bucket sum overflow");
    good_msg(&m), nc[1] = UINT64_MAX - 3, m.count = 3, expect_bad(&m, "wrapped sum == count");
    good_msg(&m), pb.offset = INT32_MAX - 1, expect_bad(&m, "offset past int32");
    good_msg(&m), pb.offset = 64 * 1025, expect_bad(&m, "index beyond DBL_MAX");
    good_msg(&m), nb.offset = -64 * 1080, expect_bad(&m, "index below subnormals");
    uint64_t *many = calloc(VT_SKETCH_MAX_BINS_LIMIT + 1, sizeof *many);
    memcpy(many, pc, sizeof pc);
    good_msg(&m), pb.offset = 0, pb.n_counts = VT_SKETCH_MAX_BINS_LIMIT + 1, pb.counts = many;
    expect_bad(&m, "too many buckets");
    free(many);
    good_msg(&m), m.zero_threshold = -1, expect_bad(&m, "negative zero_threshold");
    good_msg(&m), m.zero_threshold = NAN, expect_bad(&m, "NaN zero_threshold");
    good_msg(&m), m.zero_threshold = INFINITY, expect_bad(&m, "inf zero_threshold");
    good_msg(&m), m.min = 4, expect_bad(&m, "min > max");
    good_msg(&m), m.min = NAN, expect_bad(&m, "NaN min");
    good_msg(&m), m.max = INFINITY, expect_bad(&m, "inf max");
    good_msg(&m), m.min = 0.5, expect_bad(&m, "negatives but min >= 0");
    good_msg(&m), m.max = -0.5, m.min = -2, expect_bad(&m, "positives but max <= 0");
    good_msg(&m), m.collapsed_count = 5, expect_bad(&m, "collapsed_count matches no bucket");
    good_msg(&m), m.collapsed_count = 2; /* the lowest positive bucket: fine */
    assert_int_equal(from_msg(&s, &m, 0), 0);
    assert_int_equal(vt_sketch_collapsed_count(&s), 2);
    vt_sketch_free(&s);
    good_msg(&m), m.collapsed_count = 6; /* both stores */
    assert_int_equal(from_msg(&s, &m, 0), 0);
    assert_int_equal(vt_sketch_collapsed_count(&s), 6);
    vt_sketch_free(&s);
    good_msg(&m);
    assert_int_equal(from_msg(&s, &m, VT_SKETCH_MAX_BINS_LIMIT + 1), -EINVAL);
    vt_sketch_free(&s);
    /* Empty message with junk min/max is an empty sketch. */
    vitals__v1__sketch__init(&m);
    m.min = 5, m.max = -5;
    assert_int_equal(from_msg(&s, &m, 0), 0);
    assert_int_equal(vt_sketch_count(&s), 0);
    vt_sketch_free(&s);
    /* Bytes that are not a message. */
    uint8_t junk[] = {0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f, 0x01};
    assert_int_equal(vt_sketch_unpack(&s, junk, sizeof junk, 0), -EBADMSG);
    vt_sketch_free(&s);
}

/* What protobuf allows besides what our encoder writes: counts as single
 * (unpacked) varints or split over several packed runs, fields in any order,
 * unknown fields, a zero spelled with two bytes - all decode to the same
 * sketch. A known field with the wrong wire type, a Buckets message given
 * twice or a truncated varint are refused. */
static void test_wire_forms(void **state)
{
    (void)state;
    Vitals__V1__Sketch m;
    good_msg(&m);
    vt_sketch want, got;
    assert_int_equal(from_msg(&want, &m, 0), 0);
    /* positive {offset 10, counts 2 0 3 1}: unpacked, in two runs, and with
     * a two-byte zero; an unknown field 99 at the front */
    static const uint8_t pos_forms[][16] = {
        {0x08, 20, 0x10, 2, 0x10, 0, 0x10, 3, 0x10, 1},
        {0x12, 2, 2, 0, 0x08, 20, 0x12, 2, 3, 1},
        {0x98, 0x06, 5, 0x08, 20, 0x12, 5, 2, 0x80, 0x00, 3, 1},
    };
    static const size_t pos_len[] = {10, 10, 12};
    for (int f = 0; f < 3; f++) {
        uint8_t buf[128];
        size_t n = 0;
        /* scale 6, count 15, sum 1, min -2, max 3, zero_count 5 */
        Vitals__V1__Sketch s = m;
        s.positive = NULL;
        n = vitals__v1__sketch__pack(&s, buf);
        buf[n++] = 0x3a; /* positive (7), length-delimited */
        buf[n++] = (uint8_t)pos_len[f];
        memcpy(buf + n, pos_forms[f], pos_len[f]);
        n += pos_len[f];
        assert_int_equal(vt_sketch_check_wire(buf, n, NULL), 0);
        assert_int_equal(vt_sketch_unpack(&got, buf, n, 0), 0);
        assert_true(vt_sketch_same(&got, &want));
        vt_sketch_free(&got);
        /* the same Buckets twice */
        buf[n++] = 0x3a;
        buf[n++] = 0;
        assert_int_equal(vt_sketch_check_wire(buf, n, NULL), -EBADMSG);
        /* truncated inside the last count */
        assert_int_equal(vt_sketch_check_wire(buf, n - 3, NULL), -EBADMSG);
    }
    uint8_t wt[] = {0x11, 0, 0, 0, 0, 0, 0, 0, 0}; /* count (2) as fixed64 */
    assert_int_equal(vt_sketch_check_wire(wt, sizeof wt, NULL), -EBADMSG);
    uint8_t empty[] = {0x98, 0x06, 1}; /* only an unknown field: the empty sketch */
    assert_int_equal(vt_sketch_unpack(&got, empty, sizeof empty, 0), 0);
    assert_int_equal(vt_sketch_count(&got), 0);
    vt_sketch_free(&got);
    vt_sketch_free(&want);
}

/* Varints that spell zero the long way must not be taken for non-zero
 * counts by the merge's range shortcut (found in review): a last count of
 * 80 00 (zero in two bytes) after 3,000 zeros leaves the range at the first
 * count - nothing collapses - and a 10-byte varint whose bits lie beyond 64
 * is malformed. And a collapsed store whose buckets all fold into the zero
 * bucket is not marked collapsed. */
static void test_wire_long_zeros(void **state)
{
    (void)state;
    int32_t at = vt_sketch_index(6, 5.0);
    uint8_t buf[3200];
    size_t n = 0;
    /* scale 6 (zigzag 12), count 1, sum 5, min 5, max 5 */
    Vitals__V1__Sketch m;
    vitals__v1__sketch__init(&m);
    m.scale = 6, m.count = 1, m.sum = 5, m.min = 5, m.max = 5;
    n = vitals__v1__sketch__pack(&m, buf);
    uint8_t bk[3100];
    size_t bn = 0;
    bk[bn++] = 0x08; /* offset, zigzag */
    uint32_t zz = (uint32_t)at << 1 ^ (uint32_t)(at >> 31);
    while (zz >= 0x80)
        bk[bn++] = (uint8_t)(zz | 0x80), zz >>= 7;
    bk[bn++] = (uint8_t)zz;
    size_t run = 1 + 3000 + 2;
    bk[bn++] = 0x12, bk[bn++] = (uint8_t)(run | 0x80), bk[bn++] = (uint8_t)(run >> 7);
    bk[bn++] = 1;
    memset(bk + bn, 0, 3000), bn += 3000;
    bk[bn++] = 0x80, bk[bn++] = 0x00;
    buf[n++] = 0x3a, buf[n++] = (uint8_t)(bn | 0x80), buf[n++] = (uint8_t)(bn >> 7);
    memcpy(buf + n, bk, bn), n += bn;
    vt_sketch d;
    vt_sketch_init_default(&d);
    for (int v = 1; v <= 1000; v++)
        vt_sketch_add(&d, v);
    double p50 = vt_sketch_quantile(&d, 0.5);
    uint64_t before = vt_sketch_bucket_get(&d, 0, at);
    assert_int_equal(vt_sketch_check_wire(buf, n, NULL), 0);
    assert_int_equal(vt_sketch_merge_wire_checked(&d, buf, n), 0);
    assert_int_equal(vt_sketch_collapsed_count(&d), 0);
    assert_int_equal(vt_sketch_bucket_get(&d, 0, at), before + 1);
    assert_true(fabs(vt_sketch_quantile(&d, 0.5) - p50) / p50 < 0.01);
    vt_sketch_free(&d);
    /* counts [1, 80 80 80 80 80 80 80 80 80 02]: the last has bits beyond 64 */
    n = vitals__v1__sketch__pack(&m, buf);
    const uint8_t tail[] = {0x3a, 15, 0x08, 0x00, 0x12, 11, 1,
                            0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x02};
    memcpy(buf + n, tail, sizeof tail);
    assert_int_equal(vt_sketch_check_wire(buf, n + sizeof tail, NULL), -EBADMSG);
    vt_sketch u;
    assert_int_equal(vt_sketch_unpack(&u, buf, n + sizeof tail, 0), -EBADMSG);
    vt_sketch_free(&u);

    /* a collapsed store entirely below the zero threshold: zero bucket only */
    Vitals__V1__Buckets pbk = VITALS__V1__BUCKETS__INIT;
    uint64_t three = 3;
    pbk.offset = -2000, pbk.n_counts = 1, pbk.counts = &three;
    vitals__v1__sketch__init(&m);
    m.scale = 6, m.count = 3, m.collapsed_count = 3, m.positive = &pbk;
    m.min = m.max = vt_sketch_bucket_lower(6, -2000);
    m.sum = 3 * m.min;
    n = vitals__v1__sketch__pack(&m, buf);
    vt_sketch_init_default(&d);
    vt_sketch_add(&d, 5.0);
    assert_int_equal(vt_sketch_merge_wire_checked(&d, buf, n), 0);
    assert_int_equal(vt_sketch_count(&d), 4);
    assert_int_equal(vt_sketch_collapsed_count(&d), 0);
    vt_sketch_free(&d);
}

/* The wire fast paths (merge_wire at equal scale, merge_wire_checked)
 * give bucket for bucket what merging the decoded sketch gives - with small
 * and collapsing max_bins, negative values, zeros, and zero-padded ends. */
static void test_merge_wire_fast_path(void **state)
{
    (void)state;
    rng r = {77};
    for (int round = 0; round < 200; round++) {
        uint32_t bins = round % 3 == 0 ? 64 : 2048;
        vt_sketch a, b, want, got1, got2, got3;
        vt_sketch_init(&a, 6, bins, VT_SKETCH_DEFAULT_ZERO_THRESHOLD);
        vt_sketch_init(&b, 6, bins, VT_SKETCH_DEFAULT_ZERO_THRESHOLD);
        int n = 1 + (int)(rng_next(&r) % 300);
        for (int i = 0; i < n; i++) {
            double v = sample(&r, (enum dist)(i % NDIST));
            assert_int_equal(vt_sketch_add(&a, i % 7 == 0 ? -v : v), 0);
            assert_int_equal(vt_sketch_add(&b, i % 11 == 0 ? 0 : v * 3), 0);
        }
        Vitals__V1__Sketch msg;
        assert_int_equal(vt_sketch_to_proto(&b, &msg), 0);
        if (round % 4 == 1 && msg.positive && msg.positive->n_counts) {
            /* zero-padded ends, as another encoder might send */
            Vitals__V1__Buckets *p = msg.positive;
            uint64_t *c = calloc(p->n_counts + 6, sizeof *c);
            memcpy(c + 3, p->counts, p->n_counts * sizeof *c);
            free(p->counts);
            p->counts = c;
            p->n_counts += 6;
            p->offset -= 3;
        }
        assert_int_equal(merge_msg(NULL, &msg, 2), 0);
        vt_sketch_init(&want, 6, bins, VT_SKETCH_DEFAULT_ZERO_THRESHOLD);
        vt_sketch_init(&got1, 6, bins, VT_SKETCH_DEFAULT_ZERO_THRESHOLD);
        vt_sketch_init(&got2, 6, bins, VT_SKETCH_DEFAULT_ZERO_THRESHOLD);
        vt_sketch_init(&got3, 6, bins, VT_SKETCH_DEFAULT_ZERO_THRESHOLD);
        assert_int_equal(vt_sketch_merge(&want, &a), 0);
        assert_int_equal(vt_sketch_merge(&got1, &a), 0);
        assert_int_equal(vt_sketch_merge(&got2, &a), 0);
        assert_int_equal(vt_sketch_merge(&got3, &a), 0);
        vt_sketch dec;
        assert_int_equal(from_msg(&dec, &msg, bins), 0);
        assert_int_equal(vt_sketch_merge(&want, &dec), 0);
        assert_int_equal(merge_msg(&got1, &msg, 0), 0);
        assert_int_equal(merge_msg(&got2, &msg, 1), 0);
        assert_int_equal(merge_msg(&got3, &msg, 3), 0);
        assert_true(vt_sketch_same(&got1, &want));
        assert_true(vt_sketch_same(&got2, &want));
        assert_true(vt_sketch_same(&got3, &want));
        vt_sketch_proto_release(&msg);
        vt_sketch_free(&dec);
        vt_sketch_free(&a);
        vt_sketch_free(&b);
        vt_sketch_free(&want);
        vt_sketch_free(&got1);
        vt_sketch_free(&got2);
        vt_sketch_free(&got3);
    }
}

/* A kept check merged into a sketch of another scale or zero threshold
 * takes the general path, as vt_sketch_merge_wire does. */
static void test_kept_other_scale(void **state)
{
    (void)state;
    vt_sketch src, want, got;
    vt_sketch_init(&src, 6, 2048, VT_SKETCH_DEFAULT_ZERO_THRESHOLD);
    fill_mixed(&src, 500, 5);
    Vitals__V1__Sketch msg;
    assert_int_equal(vt_sketch_to_proto(&src, &msg), 0);
    size_t n;
    uint8_t *b = msg_bytes(&msg, &n);
    struct vt_sketch_kept k;
    assert_int_equal(vt_sketch_check_wire_kept(b, n, &k), 0);
    for (int v = 0; v < 2; v++) {
        int scale = v ? 6 : 3;
        double zt = v ? 1e-3 : VT_SKETCH_DEFAULT_ZERO_THRESHOLD;
        vt_sketch_init(&want, scale, 2048, zt);
        vt_sketch_init(&got, scale, 2048, zt);
        assert_int_equal(vt_sketch_merge_wire(&want, b, n), 0);
        assert_int_equal(vt_sketch_merge_kept(&got, &k), 0);
        assert_true(vt_sketch_same(&got, &want));
        assert_int_equal(got.count, 500);
        vt_sketch_free(&want);
        vt_sketch_free(&got);
    }
    free(b);
    vt_sketch_proto_release(&msg);
    vt_sketch_free(&src);
}

/* A Buckets message rewritten into the other form (dense <-> sparse). */
static void other_form(Vitals__V1__Buckets *b)
{
    if (!b)
        return;
    size_t n = 0;
    uint64_t *v;
    if (b->n_sparse) {
        for (size_t i = 0; i < b->n_sparse; i += 2)
            n += b->sparse[i] + 1;
        v = calloc(n, sizeof *v);
        for (size_t i = 0, k = 0; i < b->n_sparse; i += 2, k++)
            v[k += b->sparse[i]] = b->sparse[i + 1];
        free(b->sparse);
        b->sparse = NULL, b->n_sparse = 0;
        b->counts = v, b->n_counts = n;
        return;
    }
    v = calloc(2 * b->n_counts, sizeof *v);
    uint64_t skip = 0;
    for (size_t k = 0; k < b->n_counts; k++) {
        if (!b->counts[k]) {
            skip++;
            continue;
        }
        v[n++] = skip, v[n++] = b->counts[k], skip = 0;
    }
    free(b->counts);
    b->counts = NULL, b->n_counts = 0;
    b->sparse = v, b->n_sparse = n;
}

/* The two forms of Buckets decode and merge alike; the encoder ships the
 * shorter one; a malformed sparse run is refused. */
/* Sketch s holds, from index 10 (good_msg's offset), the buckets of sparse
 * run `run` (n varints) `times` over, plus `extra` at index extra_at, and
 * nothing in the bucket after the last. */
static void expect_run(const vt_sketch *s, const uint64_t *run, size_t n, uint64_t times,
                       int64_t extra_at, uint64_t extra)
{
    int64_t at = 10;
    for (size_t i = 0; i < n; i += 2, at++) {
        at += (int64_t)run[i];
        uint64_t want = times * run[i + 1] + (at == extra_at ? extra : 0);
        assert_int_equal(vt_sketch_bucket_get(s, 0, (int32_t)at), want);
    }
    assert_int_equal(vt_sketch_bucket_get(s, 0, (int32_t)at), 0);
}

/* Sparse run `run` (n varints) with a count of 0 at zero_at: refused; with
 * 1 there: read back bucket for bucket. */
static void check_sparse_run(uint64_t *run, size_t n, size_t zero_at, const char *what)
{
    Vitals__V1__Sketch m;
    vt_sketch s;
    run[zero_at] = 0;
    uint64_t sum = 0;
    for (size_t i = 1; i < n; i += 2)
        sum += run[i];
    good_msg(&m), pb.n_counts = 0, pb.counts = NULL, pb.n_sparse = n, pb.sparse = run;
    m.count = 5 + 4 + sum;
    expect_bad(&m, what);
    run[zero_at] = 1;
    m.count++;
    assert_int_equal(from_msg(&s, &m, 0), 0);
    expect_run(&s, run, n, 1, 0, 0);
    vt_sketch_free(&s);
}

static void test_sparse_form(void **state)
{
    (void)state;
    rng r = {91};
    int seen_sparse = 0, seen_dense = 0;
    for (int round = 0; round < 200; round++) {
        uint32_t bins = round % 3 == 0 ? 64 : 2048;
        vt_sketch a, base, got1, got2;
        vt_sketch_init(&a, 6, bins, VT_SKETCH_DEFAULT_ZERO_THRESHOLD);
        int n = 1 + (int)(rng_next(&r) % (round % 2 ? 40 : 3000));
        for (int i = 0; i < n; i++) {
            double v = sample(&r, (enum dist)(i % NDIST));
            assert_int_equal(vt_sketch_add(&a, i % 9 == 0 ? -v : v), 0);
        }
        Vitals__V1__Sketch msg;
        assert_int_equal(vt_sketch_to_proto(&a, &msg), 0);
        size_t len;
        uint8_t *enc = msg_bytes(&msg, &len);
        seen_sparse += msg.positive && msg.positive->n_sparse > 0;
        seen_dense += msg.positive && msg.positive->n_counts > 0;
        vt_sketch t;
        assert_int_equal(vt_sketch_unpack(&t, enc, len, bins), 0);
        assert_true(vt_sketch_same(&t, &a));
        vt_sketch_free(&t);
        /* the other form: never shorter, same sketch, same merge */
        other_form(msg.positive);
        other_form(msg.negative);
        size_t len2;
        uint8_t *alt = msg_bytes(&msg, &len2);
        assert_true(len <= len2);
        assert_int_equal(vt_sketch_unpack(&t, alt, len2, bins), 0);
        assert_true(vt_sketch_same(&t, &a));
        vt_sketch_free(&t);
        vt_sketch_init(&base, 6, bins, VT_SKETCH_DEFAULT_ZERO_THRESHOLD);
        for (int i = 0; i < 50; i++)
            vt_sketch_add(&base, sample(&r, (enum dist)(i % NDIST)));
        vt_sketch_init(&got1, 6, bins, VT_SKETCH_DEFAULT_ZERO_THRESHOLD);
        vt_sketch_init(&got2, 6, bins, VT_SKETCH_DEFAULT_ZERO_THRESHOLD);
        assert_int_equal(vt_sketch_merge(&got1, &base), 0);
        assert_int_equal(vt_sketch_merge(&got2, &base), 0);
        assert_int_equal(vt_sketch_merge_wire(&got1, enc, len), 0);
        assert_int_equal(vt_sketch_merge_wire_checked(&got2, alt, len2), 0);
        assert_true(vt_sketch_same(&got1, &got2));
        struct vt_sketch_kept k; /* the other form merged from its check */
        vt_sketch_init(&t, 6, bins, VT_SKETCH_DEFAULT_ZERO_THRESHOLD);
        assert_int_equal(vt_sketch_merge(&t, &base), 0);
        assert_int_equal(vt_sketch_check_wire_kept(alt, len2, &k), 0);
        assert_int_equal(vt_sketch_merge_kept(&t, &k), 0);
        assert_true(vt_sketch_same(&t, &got1));
        vt_sketch_free(&t);
        free(enc);
        free(alt);
        vt_sketch_proto_release(&msg);
        vt_sketch_free(&a);
        vt_sketch_free(&base);
        vt_sketch_free(&got1);
        vt_sketch_free(&got2);
    }
    assert_true(seen_sparse > 0 && seen_dense > 0); /* both forms were exercised */

    /* good_msg in sparse form: positives 2 @10, 3 @12, 1 @13 */
    Vitals__V1__Sketch m;
    vt_sketch s;
    uint64_t sp[6] = {0, 2, 1, 3, 0, 1};
    good_msg(&m), pb.n_counts = 0, pb.counts = NULL, pb.n_sparse = 6, pb.sparse = sp;
    assert_int_equal(from_msg(&s, &m, 0), 0);
    assert_int_equal(vt_sketch_bucket_get(&s, 0, 10), 2);
    assert_int_equal(vt_sketch_bucket_get(&s, 0, 11), 0);
    assert_int_equal(vt_sketch_bucket_get(&s, 0, 12), 3);
    assert_int_equal(vt_sketch_bucket_get(&s, 0, 13), 1);
    vt_sketch_free(&s);
    good_msg(&m), pb.n_sparse = 6, pb.sparse = sp;
    expect_bad(&m, "dense and sparse counts together");
    good_msg(&m), pb.n_counts = 0, pb.counts = NULL, pb.n_sparse = 5, pb.sparse = sp;
    m.count = 14;
    expect_bad(&m, "odd number of sparse varints");
    uint64_t zero[6] = {0, 2, 1, 3, 0, 0};
    good_msg(&m), pb.n_counts = 0, pb.counts = NULL, pb.n_sparse = 6, pb.sparse = zero;
    m.count = 14;
    expect_bad(&m, "a sparse count of 0");
    uint64_t far[6] = {0, 2, 1, 3, VT_SKETCH_MAX_BINS_LIMIT, 1};
    good_msg(&m), pb.n_counts = 0, pb.counts = NULL, pb.n_sparse = 6, pb.sparse = far;
    expect_bad(&m, "sparse span over the bucket limit");
    uint64_t huge[6] = {0, 2, 1, 3, UINT64_MAX - 1, 1};
    good_msg(&m), pb.n_counts = 0, pb.counts = NULL, pb.n_sparse = 6, pb.sparse = huge;
    expect_bad(&m, "sparse skip near 2^64");
    uint64_t high[6] = {0, 2, 1, 3, 64 * 1025 - 14, 1};
    good_msg(&m), pb.n_counts = 0, pb.counts = NULL, pb.n_sparse = 6, pb.sparse = high;
    expect_bad(&m, "sparse index beyond DBL_MAX");
    /* runs long enough for the four-pairs-at-once path, and of sixteen
     * one-byte varints and more (eight pairs at once where SSE2 is there) */
    uint64_t longrun[12] = {0, 2, 1, 1, 0, 1, 0, 1, 2, 1, 0, 1};
    check_sparse_run(longrun, 12, 11, "a sparse count of 0 in a long run");
    uint64_t block[22] = {0, 2, 1, 1, 0, 1, 0, 1, 2, 1, 0, 1, 0, 1, 3, 1, 0, 1, 0, 1, 0, 1};
    check_sparse_run(block, 22, 11, "a sparse count of 0 in an eight-pair block");
    /* 100 twice, then 127, into one bucket: one-byte counters while the
     * block's bound says so, two-byte ones once 200 + 127 would not fit */
    uint64_t big[20];
    for (int i = 0; i < 20; i += 2)
        big[i] = (uint64_t)i % 3, big[i + 1] = i == 8 ? 8 : 7;
    good_msg(&m), pb.n_counts = 0, pb.counts = NULL, pb.n_sparse = 20, pb.sparse = big;
    m.zero_threshold = VT_SKETCH_DEFAULT_ZERO_THRESHOLD; /* merged in place, not via a copy */
    vt_sketch_init_default(&s);
    for (int i = 0; i < 3; i++) {
        big[5] = i < 2 ? 100 : 127;
        m.count = 5 + 4 + big[5] + 8 + 8 * 7;
        assert_int_equal(merge_msg(&s, &m, i == 2 ? 3 : i), 0);
    }
    assert_int_equal(vt_sketch_count(&s), 3 * (5 + 4 + 8 + 8 * 7) + 100 + 100 + 127);
    big[5] = 0; /* bucket 15 (pair 2) holds 100 + 100 + 127 */
    expect_run(&s, big, 20, 3, 15, 327);
    big[5] = 127;
    vt_sketch_free(&s);
    /* the same run merged into counters already 2, 4 and 8 bytes wide (one
     * big count first, in a message of its own) */
    const uint64_t wide_counts[3] = {300, 70000, 5000000000ull};
    for (int wi = 0; wi < 3; wi++) {
        vt_sketch_init_default(&s);
        uint64_t one[2] = {3, wide_counts[wi]}; /* bucket 13, one of the run's */
        good_msg(&m), pb.n_counts = 0, pb.counts = NULL, pb.n_sparse = 2, pb.sparse = one;
        m.zero_threshold = VT_SKETCH_DEFAULT_ZERO_THRESHOLD;
        m.count = 5 + 4 + one[1];
        assert_int_equal(merge_msg(&s, &m, 0), 0);
        assert_int_equal(s.pos.width, wi == 0 ? 2 : wi == 1 ? 4 : 8);
        good_msg(&m), pb.n_counts = 0, pb.counts = NULL, pb.n_sparse = 20, pb.sparse = big;
        m.zero_threshold = VT_SKETCH_DEFAULT_ZERO_THRESHOLD;
        m.count = 5 + 4 + big[5] + 8 + 8 * 7;
        assert_int_equal(merge_msg(&s, &m, wi == 1 ? 3 : 1), 0);
        expect_run(&s, big, 20, 1, 13, one[1]);
        vt_sketch_free(&s);
    }
    uint64_t *wide = calloc(1040, sizeof *wide); /* 520 pairs, skips of 127 */
    for (int i = 0; i < 1040; i += 2)
        wide[i] = 127, wide[i + 1] = 1;
    good_msg(&m), pb.n_counts = 0, pb.counts = NULL, pb.n_sparse = 1040, pb.sparse = wide;
    pb.offset = -32768, m.count = 5 + 4 + 520;
    expect_bad(&m, "a long sparse run past the bucket limit (65536 positions)");
    pb.n_sparse = 1000, m.count = 5 + 4 + 500, m.max = 1e300; /* 64000 positions: fine */
    assert_int_equal(from_msg(&s, &m, 0), 0);
    assert_int_equal(vt_sketch_count(&s), 5 + 4 + 500);
    vt_sketch_free(&s);
    free(wide);
    /* a second sparse run (hand-made: protobuf-c writes one) */
    good_msg(&m), pb.n_counts = 0, pb.counts = NULL, pb.n_sparse = 4, pb.sparse = sp;
    m.count = 5 + 4 + 2 + 3;
    size_t len;
    uint8_t *b = msg_bytes(&m, &len);
    assert_int_equal(vt_sketch_check_wire(b, len, NULL), 0);
    free(b);
    Vitals__V1__Buckets two = pb;
    size_t blen = vitals__v1__buckets__get_packed_size(&two);
    uint8_t *bb = malloc(blen + 4);
    vitals__v1__buckets__pack(&two, bb);
    memcpy(bb + blen, "\x1a\x02\x00\x01", 4); /* field 3, LEN 2: (0, 1) */
    uint8_t wire[256];
    m.positive = NULL;
    size_t ml = vitals__v1__sketch__pack(&m, wire);
    wire[ml++] = 0x3a; /* field 7 (positive), LEN */
    wire[ml++] = (uint8_t)(blen + 4);
    memcpy(wire + ml, bb, blen + 4);
    ml += blen + 4;
    free(bb);
    assert_int_equal(vt_sketch_check_wire(wire, ml, NULL), -EBADMSG);
}

/* vt_sketch_encode writes what protobuf-c packs, byte for byte: empty,
 * one value, sparse and dense stores, negative values, counters of every
 * width (and one-byte counters of 128+, two-byte varints), a collapsed
 * store, zeros, another scale. */
static void expect_encode_same(const vt_sketch *s)
{
    uint8_t *ref;
    size_t n;
    assert_int_equal(vt_sketch_pack(s, &ref, &n), 0);
    struct pbw w = {0};
    vt_sketch_encode(s, &w);
    expect_same_bytes(&w, ref, n);
}

static void test_encode(void **state)
{
    (void)state;
    vt_sketch s;
    vt_sketch_init_default(&s);
    expect_encode_same(&s);
    vt_sketch_add(&s, 812.5);
    expect_encode_same(&s);
    for (uint64_t seed = 1; seed < 40; seed++) { /* few values wide apart: sparse */
        vt_sketch_reset(&s);
        fill_mixed(&s, (int)(seed * seed % 200) + 1, seed);
        expect_encode_same(&s);
    }
    vt_sketch_reset(&s);
    fill_mixed(&s, 20000, 99); /* dense */
    expect_encode_same(&s);
    const uint64_t big[] = {127, 128, 255, 300, 70000, 5000000000ull};
    for (size_t i = 0; i < sizeof big / sizeof *big; i++) { /* widths 1, 2, 4, 8 */
        vt_sketch_reset(&s);
        for (int k = 0; k < 40; k++)
            vt_sketch_add_n(&s, 1.0 + k * 0.37, k % 3 ? 1 : big[i]);
        vt_sketch_add_n(&s, -3.5, big[i]);
        vt_sketch_add_n(&s, 0, 2);
        expect_encode_same(&s);
    }
    vt_sketch_free(&s);
    vt_sketch c; /* collapsed, another scale, no zero threshold */
    assert_int_equal(vt_sketch_init(&c, 3, 16, 0), 0);
    fill_mixed(&c, 3000, 5);
    assert_true(vt_sketch_collapsed_count(&c) > 0);
    expect_encode_same(&c);
    vt_sketch_free(&c);
}

/* Counters that outgrow a byte, then two: every merge path (in memory, from
 * the wire, from a kept check, one value at a time) against exact counts
 * per bucket, through the one-, two- and four-byte widths, one message
 * taking every bucket past a byte boundary at once; then collapsing stores,
 * copies and the encoder on them. */
static void test_counter_widths_exact(void **state)
{
    (void)state;
    enum { NV = 40, ROUNDS = 700 };
    double vals[NV];
    int32_t idx[NV];
    rng r = {4242};
    for (int i = 0; i < NV; i++) { /* distinct buckets over ~1.5 decades */
        vals[i] = 2 * pow(1.09, i);
        idx[i] = vt_sketch_index(6, vals[i]);
    }
    vt_sketch mem, wire, kept, one, part;
    vt_sketch *all[] = {&mem, &wire, &kept, &one};
    for (int k = 0; k < 4; k++)
        vt_sketch_init_default(all[k]);
    vt_sketch_init_default(&part);
    uint64_t want[NV] = {0}, count = 0;
    unsigned widths[4] = {0}; /* of each, every width it had */
    for (int round = 0; round < ROUNDS; round++) {
        vt_sketch_reset(&part);
        for (int i = 0; i < NV; i++) {
            /* mostly a few per bucket (sparse and dense forms), now and
             * then a heap into one bucket (carries; late: beyond 2^16) */
            uint64_t n = rng_next(&r) % 3 == 0 ? 0 : rng_next(&r) % 4;
            if (rng_next(&r) % 97 == 0)
                n += round > ROUNDS * 3 / 4 ? 40000 : 200 + rng_next(&r) % 100;
            if (round == ROUNDS / 2) /* every bucket past a byte boundary at once */
                n += 255;
            if (!n)
                continue;
            assert_int_equal(vt_sketch_add_n(&part, vals[i], n), 0);
            assert_int_equal(vt_sketch_add_n(&one, vals[i], n), 0);
            want[i] += n;
            count += n;
        }
        uint8_t *buf;
        size_t len;
        struct vt_sketch_kept kp;
        assert_int_equal(vt_sketch_pack(&part, &buf, &len), 0);
        assert_int_equal(vt_sketch_merge(&mem, &part), 0);
        assert_int_equal(vt_sketch_merge_wire(&wire, buf, len), 0);
        assert_int_equal(vt_sketch_check_wire_kept(buf, len, &kp), 0);
        assert_int_equal(vt_sketch_merge_kept(&kept, &kp), 0);
        free(buf);
        for (int k = 0; k < 4; k++) {
            widths[k] |= all[k]->pos.width;
            assert_int_equal(vt_sketch_count(all[k]), count);
            for (int i = 0; i < NV; i++)
                assert_int_equal(vt_sketch_bucket_get(all[k], 0, idx[i]), want[i]);
        }
    }
    for (int k = 0; k < 4; k++)
        assert_int_equal(widths[k], 1 | 2 | 4);
    /* wide sources into fresh and into equally wide stores */
    vt_sketch twice, copy;
    vt_sketch_init_default(&twice);
    vt_sketch_init_default(&copy);
    assert_int_equal(vt_sketch_copy(&copy, &mem), 0);
    assert_true(vt_sketch_same(&copy, &mem));
    assert_int_equal(vt_sketch_merge(&twice, &mem), 0);
    assert_int_equal(vt_sketch_merge(&twice, &copy), 0);
    for (int i = 0; i < NV; i++)
        assert_int_equal(vt_sketch_bucket_get(&twice, 0, idx[i]), 2 * want[i]);
    /* a store collapsing under a small max_bins, its counters two bytes */
    vt_sketch narrow[3];
    for (int k = 0; k < 3; k++)
        assert_int_equal(vt_sketch_init(&narrow[k], 6, 24, VT_SKETCH_DEFAULT_ZERO_THRESHOLD), 0);
    for (int round = 0; round < 40; round++) {
        vt_sketch_reset(&part);
        for (int i = 0; i < NV; i++)
            assert_int_equal(vt_sketch_add_n(&part, vals[i], 1 + (uint64_t)(i + round) % 9), 0);
        uint8_t *buf;
        size_t len;
        assert_int_equal(vt_sketch_pack(&part, &buf, &len), 0);
        assert_int_equal(vt_sketch_merge(&narrow[0], &part), 0);
        assert_int_equal(vt_sketch_merge_wire(&narrow[1], buf, len), 0);
        free(buf);
        assert_int_equal(vt_sketch_merge(&narrow[2], &narrow[0]), 0);
    }
    assert_true(narrow[0].pos.width == 2 && vt_sketch_collapsed_count(&narrow[0]) > 0);
    assert_true(vt_sketch_same(&narrow[0], &narrow[1]));
    /* the encoder: what it writes of each form reads back the same */
    vt_sketch *enc[] = {&mem, &wire, &twice, &narrow[0], &narrow[2]};
    for (size_t k = 0; k < sizeof enc / sizeof *enc; k++) {
        uint8_t *buf;
        size_t len;
        vt_sketch back;
        assert_int_equal(vt_sketch_pack(enc[k], &buf, &len), 0);
        assert_int_equal(vt_sketch_unpack(&back, buf, len, enc[k]->max_bins), 0);
        assert_true(vt_sketch_same(&back, enc[k]));
        free(buf);
        vt_sketch_free(&back);
    }
    for (int k = 0; k < 3; k++)
        vt_sketch_free(&narrow[k]);
    for (int k = 0; k < 4; k++)
        vt_sketch_free(all[k]);
    vt_sketch_free(&part);
    vt_sketch_free(&twice);
    vt_sketch_free(&copy);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_proto_round_trip),
        cmocka_unit_test(test_sparse_form),
        cmocka_unit_test(test_wire_rejects_bad),
        cmocka_unit_test(test_wire_forms),
        cmocka_unit_test(test_wire_long_zeros),
        cmocka_unit_test(test_merge_wire_fast_path),
        cmocka_unit_test(test_kept_other_scale),
        cmocka_unit_test(test_encode),
        cmocka_unit_test(test_counter_widths_exact),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
