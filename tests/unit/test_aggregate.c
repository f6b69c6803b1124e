/* test_aggregate.c - series keys, the series table, and aggregates: adding
 * decoded records, merging halves equals the whole, and the proto round trip. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <errno.h>

#include "../../bench/gen.h"
#include "aggregate.h"
#include "pbw_test_util.h"
#include "series.h"

static struct vt_record_decoder *dec;

static void decode(const char *line, struct vt_record *rec)
{
    assert_int_equal(vt_record_decode(dec, line, strlen(line), 1000, rec), VT_RECORD_DATA);
}

static void test_series_key(void **state)
{
    (void)state;
    struct vt_record rec;
    decode("{\"service\":\"bot\",\"model\":\"m\",\"labels\":{\"tier\":\"gold\",\"region\":\"eu\"}}",
           &rec);
    char key[256];
    size_t len = vt_series_key_from_record(&rec, key, sizeof key);
    assert_int_equal(len, sizeof("bot\0m\0\0\0region\0eu\0tier\0gold") );
    struct vt_str s;
    assert_int_equal(vt_series_key_part(key, len, 0, &s), 0);
    assert_int_equal(s.len, 3);
    assert_memory_equal(s.ptr, "bot", 3);
    assert_int_equal(vt_series_key_part(key, len, 2, &s), 0);
    assert_int_equal(s.len, 0);
    assert_int_equal(vt_series_key_label(key, len, "tier", &s), 0);
    assert_memory_equal(s.ptr, "gold", 4);
    assert_int_equal(vt_series_key_label(key, len, "nope", &s), -1);
    assert_int_equal(vt_series_key_from_record(&rec, key, 10), 0); /* too small */

    /* proto round trip gives the same bytes; unsorted labels are refused */
    Vitals__V1__SeriesKey msg;
    assert_int_equal(vt_series_key_to_proto(key, len, &msg), 0);
    assert_int_equal(msg.n_labels, 2);
    assert_string_equal(msg.labels[0]->key, "region");
    char back[256];
    uint8_t wire[256];
    size_t wn = vitals__v1__series_key__pack(&msg, wire);
    assert_int_equal(vt_series_key_from_wire(wire, wn, back, sizeof back), (int)len);
    assert_memory_equal(back, key, len);
    assert_int_equal(vt_series_key_from_wire(wire, wn, back, 10), -ENOSPC);
    assert_int_equal(vt_series_key_from_wire(wire, wn - 1, back, sizeof back), -EBADMSG);
    Vitals__V1__Label *tmp = msg.labels[0];
    msg.labels[0] = msg.labels[1];
    msg.labels[1] = tmp;
    wn = vitals__v1__series_key__pack(&msg, wire);
    assert_int_equal(vt_series_key_from_wire(wire, wn, back, sizeof back), -EBADMSG);
    msg.labels[1] = msg.labels[0]; /* duplicate key */
    wn = vitals__v1__series_key__pack(&msg, wire);
    assert_int_equal(vt_series_key_from_wire(wire, wn, back, sizeof back), -EBADMSG);
    msg.labels[1] = tmp;
    /* a NUL byte inside a part would split the canonical key: refused */
    char *svc = msg.service;
    msg.service = "sup";
    wn = vitals__v1__series_key__pack(&msg, wire);
    wire[4] = 0; /* tag, length, 's', 'u', 'p' -> 's', 'u', NUL */
    assert_int_equal(vt_series_key_from_wire(wire, wn, back, sizeof back), -EBADMSG);
    msg.service = svc;
    vt_series_key_proto_release(&msg);
}

static void test_series_table(void **state)
{
    (void)state;
    struct vt_series_table t;
    assert_int_equal(vt_series_table_init(&t, 1000), 0);
    char key[32];
    for (int i = 0; i < 1000; i++) {
        int n = snprintf(key, sizeof key, "svc-%d", i) + 1, created;
        struct vt_series_entry *e = vt_series_table_upsert(&t, key, (size_t)n,
                                                           vt_series_hash(key, (size_t)n), &created);
        assert_non_null(e);
        assert_int_equal(created, 1);
        e->value = (void *)(intptr_t)(i + 1);
    }
    int created;
    assert_null(vt_series_table_upsert(&t, "new", 4, vt_series_hash("new", 4), &created));
    assert_int_equal(errno, ENOSPC);
    for (int i = 0; i < 1000; i++) {
        int n = snprintf(key, sizeof key, "svc-%d", i) + 1;
        struct vt_series_entry *e = vt_series_table_find(&t, key, (size_t)n,
                                                         vt_series_hash(key, (size_t)n));
        assert_non_null(e);
        assert_int_equal((intptr_t)e->value, i + 1);
    }
    uint32_t it = 0, seen = 0;
    while (vt_series_table_next(&t, &it))
        seen++;
    assert_int_equal(seen, 1000);
    vt_series_table_free(&t);
}

static void test_add_and_merge(void **state)
{
    (void)state;
    struct vt_aggregate whole, a, b;
    vt_aggregate_init(&whole);
    vt_aggregate_init(&a);
    vt_aggregate_init(&b);
    struct gen g;
    gen_init(&g, 7);
    char line[1024];
    for (int i = 0; i < 20000; i++) {
        size_t n = gen_record(&g, line, sizeof line);
        struct vt_record rec;
        assert_int_equal(vt_record_decode(dec, line, n, 1000, &rec), VT_RECORD_DATA);
        assert_int_equal(vt_aggregate_add(&whole, &rec), 0);
        assert_int_equal(vt_aggregate_add(i % 3 ? &a : &b, &rec), 0);
    }
    vt_aggregate_add_invalid(&a, VT_REJECT_PARSE_ERROR);
    vt_aggregate_add_invalid(&whole, VT_REJECT_PARSE_ERROR);
    assert_int_equal(vt_aggregate_merge(&a, &b), 0);
    assert_int_equal(a.count, 20000);
    assert_int_equal(a.count, whole.count);
    assert_int_equal(a.errors, whole.errors);
    assert_true(whole.errors > 0);
    assert_int_equal(a.n_error_types, 1);
    assert_string_equal(a.errors_by_type[0].name, "timeout");
    assert_true(vt_sketch_same(&a.latency_ms, &whole.latency_ms));
    assert_true(vt_sketch_same(&a.cost_usd, &whole.cost_usd));
    assert_int_equal(a.n_metrics, 3);
    assert_string_equal(a.metrics[0].name, "feedback");
    assert_string_equal(a.metrics[2].name, "relevance");
    for (uint32_t i = 0; i < a.n_metrics; i++)
        assert_true(vt_sketch_same(&a.metrics[i].sketch, &whole.metrics[i].sketch));
    assert_int_equal(a.embedding_dim, 3);
    assert_int_equal(a.embedding_count, 20000);
    assert_int_equal(a.invalid_by_reason[VT_REJECT_PARSE_ERROR], 1);
    assert_int_equal(vt_aggregate_missing(&a, "error_type"), 0); /* not an optional field */
    assert_int_equal(vt_aggregate_missing(&a, "latency_ms"), 0);
    assert_int_equal(a.n_exemplars, VT_AGG_MAX_EXEMPLARS);
    int failed = 0;
    for (uint32_t i = 0; i < a.n_exemplars; i++)
        failed += a.exemplars[i].kind == VT_EXEMPLAR_FAILED;
    assert_int_equal(failed, 2);
    assert_non_null(vt_aggregate_sketch(&a, "relevance"));
    assert_null(vt_aggregate_sketch(&a, "nope"));

    /* wire round trip: pack, merge the bytes into an empty aggregate */
    a.missing_by_field[VT_FIELD_TTFT_MS] += 3;
    Vitals__V1__WindowAggregate msg;
    assert_int_equal(vt_aggregate_to_proto(&a, &msg), 0);
    size_t len = vitals__v1__window_aggregate__get_packed_size(&msg);
    uint8_t *buf = malloc(len);
    vitals__v1__window_aggregate__pack(&msg, buf);
    vt_aggregate_proto_release(&msg);
    Vitals__V1__WindowAggregate *in = vitals__v1__window_aggregate__unpack(NULL, len, buf);
    assert_non_null(in);
    struct vt_aggregate c;
    vt_aggregate_init(&c);
    struct vt_agg_head h;
    assert_int_equal(vt_aggregate_check_wire(buf, len, &h), 0);
    assert_int_equal(h.count, a.count);
    assert_null(h.series);
    assert_int_equal(vt_aggregate_merge_wire(&c, buf, len), 0);
    assert_int_equal(c.count, a.count);
    assert_int_equal(c.errors, a.errors);
    assert_true(vt_sketch_same(&c.latency_ms, &a.latency_ms));
    assert_true(vt_sketch_same(&c.metrics[2].sketch, &a.metrics[2].sketch));
    assert_int_equal(c.invalid_by_reason[VT_REJECT_PARSE_ERROR], 1);
    assert_int_equal(c.n_exemplars, a.n_exemplars);
    assert_int_equal(c.embedding_count, a.embedding_count);

    /* merged from what the check kept (sketches, named counts, exemplars,
     * totals, embedding), twice over: the same as from the bytes */
    struct vt_aggregate from_wire, from_kept;
    vt_aggregate_init(&from_wire);
    vt_aggregate_init(&from_kept);
    struct vt_sketch_kept kept[VT_AGG_MAX_SKETCHES];
    struct vt_agg_kept rest;
    uint32_t n_kept;
    for (int i = 0; i < 2; i++) {
        assert_int_equal(vt_aggregate_merge_wire(&from_wire, buf, len), 0);
        assert_int_equal(vt_aggregate_check_wire_kept(buf, len, &h, kept, &n_kept, &rest), 0);
        assert_int_equal(n_kept, 5 + a.n_metrics);
        assert_int_equal(rest.n_counts, 3); /* timeout, parse_error, ttft_ms */
        assert_int_equal(rest.n_exemplars, VT_AGG_MAX_EXEMPLARS);
        assert_int_equal(vt_aggregate_merge_kept(&from_kept, kept, n_kept, &rest), 0);
    }
    assert_int_equal(from_kept.missing_by_field[VT_FIELD_TTFT_MS], 6);
    /* and an error type whose message starts with 70,000 bytes of a field
     * of a newer schema (kept by where it lies, not cut to 16 bits) */
    uint8_t head[] = {0x32, 0xfc, 0xa2, 0x04,         /* errors_by_type, 70,012 bytes */
                      0x9a, 0x06, 0xf0, 0xa2, 0x04};  /* field 99, 70,000 bytes */
    uint8_t tail[] = {0x0a, 3, 'b', 'i', 'g', 0x10, 5}; /* name "big", count 5 */
    size_t big_len = len + sizeof head + 70000 + sizeof tail;
    uint8_t *big = calloc(1, big_len);
    memcpy(big, buf, len);
    memcpy(big + len, head, sizeof head);
    memcpy(big + big_len - sizeof tail, tail, sizeof tail);
    assert_int_equal(vt_aggregate_merge_wire(&from_wire, big, big_len), 0);
    assert_int_equal(vt_aggregate_check_wire_kept(big, big_len, &h, kept, &n_kept, &rest), 0);
    assert_int_equal(vt_aggregate_merge_kept(&from_kept, kept, n_kept, &rest), 0);
    free(big);
    struct pbw ww = {0}, wk = {0};
    vt_aggregate_encode(&from_wire, &ww);
    vt_aggregate_encode(&from_kept, &wk);
    expect_same_bytes(&wk, ww.p, ww.len);
    assert_int_equal(from_kept.n_error_types, 2); /* "big" next to "timeout" */
    vt_aggregate_free(&from_wire);
    vt_aggregate_free(&from_kept);

    /* a corrupted message is refused and leaves dst untouched: more errors
     * than records, a truncated message, a metric name with a NUL byte, a
     * known field with the wrong wire type */
    in->errors = in->count + 1;
    uint8_t *bad = malloc(len + 64);
    size_t bn = vitals__v1__window_aggregate__pack(in, bad);
    assert_int_equal(vt_aggregate_merge_wire(&c, bad, bn), -EBADMSG);
    in->errors = 1;
    bn = vitals__v1__window_aggregate__pack(in, bad);
    assert_int_equal(vt_aggregate_check_wire(bad, bn, NULL), 0);
    assert_int_equal(vt_aggregate_merge_wire(&c, bad, bn - 1), -EBADMSG);
    char *name = in->metrics[0]->name;
    char nul[] = "ab\0cd";
    in->metrics[0]->name = nul;
    bn = vitals__v1__window_aggregate__pack(in, bad); /* packs "ab" */
    uint8_t *at = memmem(bad, bn, "\x0a\x02" "ab", 4);
    assert_non_null(at);
    at[3] = 0; /* "a\0" */
    assert_int_equal(vt_aggregate_merge_wire(&c, bad, bn), -EBADMSG);
    in->metrics[0]->name = name;
    uint8_t wt[] = {0x20 | 2, 0}; /* count (4) as a length-delimited field */
    assert_int_equal(vt_aggregate_check_wire(wt, sizeof wt, NULL), -EBADMSG);
    uint8_t unknown[] = {0x20, 7, 0xa8, 0x06, 1}; /* count 7, field 101 = 1 (a newer schema) */
    assert_int_equal(vt_aggregate_check_wire(unknown, sizeof unknown, &h), 0);
    assert_int_equal(h.count, 7);
    assert_int_equal(c.count, a.count);
    free(bad);
    vitals__v1__window_aggregate__free_unpacked(in, NULL);
    free(buf);

    vt_aggregate_reset(&c);
    assert_int_equal(c.count, 0);
    assert_int_equal(vt_sketch_count(&c.latency_ms), 0);
    vt_aggregate_free(&c);
    vt_aggregate_free(&a);
    vt_aggregate_free(&b);
    vt_aggregate_free(&whole);
}

static void test_bounds(void **state)
{
    (void)state;
    struct vt_aggregate a;
    vt_aggregate_init(&a);
    char line[256];
    struct vt_record rec;
    for (int i = 0; i < VT_AGG_MAX_ERROR_TYPES + 5; i++) {
        snprintf(line, sizeof line, "{\"service\":\"s\",\"status\":\"error\",\"error_type\":\"e%d\"}", i);
        decode(line, &rec);
        vt_aggregate_add(&a, &rec);
    }
    assert_int_equal(a.n_error_types, VT_AGG_MAX_ERROR_TYPES);
    assert_string_equal(a.errors_by_type[VT_AGG_MAX_ERROR_TYPES - 1].name, "other");
    assert_int_equal(a.errors_by_type[VT_AGG_MAX_ERROR_TYPES - 1].count, 6);
    decode("{\"service\":\"s\",\"embedding\":[1,2]}", &rec);
    vt_aggregate_add(&a, &rec);
    decode("{\"service\":\"s\",\"embedding\":[1,2,3]}", &rec);
    vt_aggregate_add(&a, &rec);
    assert_int_equal(a.embedding_dim, 2);
    assert_int_equal(a.embedding_mismatch, 1);
    assert_int_equal(vt_aggregate_missing(&a, "latency_ms"), a.count);
    vt_aggregate_free(&a);
}

/* vt_aggregate_encode and vt_series_key_encode write what protobuf-c packs
 * from the to_proto messages, byte for byte. */
static void expect_encode_same(const struct vt_aggregate *a)
{
    Vitals__V1__WindowAggregate msg;
    assert_int_equal(vt_aggregate_to_proto(a, &msg), 0);
    size_t n = vitals__v1__window_aggregate__get_packed_size(&msg);
    uint8_t *ref = malloc(n ? n : 1);
    vitals__v1__window_aggregate__pack(&msg, ref);
    vt_aggregate_proto_release(&msg);
    struct pbw w = {0};
    vt_aggregate_encode(a, &w);
    expect_same_bytes(&w, ref, n);
}

static void test_encode(void **state)
{
    (void)state;
    struct vt_aggregate a;
    vt_aggregate_init(&a);
    expect_encode_same(&a); /* empty */
    struct gen g;
    gen_init(&g, 11);
    char line[1024];
    struct vt_record rec;
    for (int i = 0; i < 3000; i++) { /* every field of the record generator */
        size_t n = gen_record(&g, line, sizeof line);
        assert_int_equal(vt_record_decode(dec, line, n, 1000, &rec), VT_RECORD_DATA);
        assert_int_equal(vt_aggregate_add(&a, &rec), 0);
        if (i < 10 || i % 500 == 0)
            expect_encode_same(&a);
    }
    vt_aggregate_add_invalid(&a, VT_REJECT_PARSE_ERROR);
    vt_aggregate_add_invalid(&a, VT_REJECT_TOO_MANY_LABELS);
    decode("{\"service\":\"s\",\"status\":\"error\",\"error_type\":\"\",\"embedding\":[0,-0.0,2.5]}", &rec);
    vt_aggregate_add(&a, &rec);
    expect_encode_same(&a);
    vt_aggregate_free(&a);

    const char *keys[][2] = {{"{\"service\":\"s\"}", NULL},
                             {"{\"service\":\"svc\",\"model\":\"m\",\"provider\":\"p\","
                              "\"version\":\"v1\",\"labels\":{\"a\":\"1\",\"b\":\"\"}}", NULL}};
    for (size_t i = 0; i < sizeof keys / sizeof *keys; i++) {
        decode(keys[i][0], &rec);
        char key[1024];
        size_t kl = vt_series_key_from_record(&rec, key, sizeof key);
        assert_true(kl > 0);
        Vitals__V1__SeriesKey sk;
        assert_int_equal(vt_series_key_to_proto(key, kl, &sk), 0);
        size_t n = vitals__v1__series_key__get_packed_size(&sk);
        uint8_t *ref = malloc(n ? n : 1);
        vitals__v1__series_key__pack(&sk, ref);
        vt_series_key_proto_release(&sk);
        struct pbw w = {0};
        vt_series_key_encode(key, kl, &w);
        expect_same_bytes(&w, ref, n);
    }
}

static int setup(void **state)
{
    (void)state;
    dec = vt_record_decoder_new(NULL, NULL);
    return dec ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    vt_record_decoder_free(dec);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_series_key),
        cmocka_unit_test(test_series_table),
        cmocka_unit_test(test_add_and_merge),
        cmocka_unit_test(test_bounds),
        cmocka_unit_test(test_encode),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
