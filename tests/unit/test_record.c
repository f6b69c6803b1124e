/*
 * test_record.c - the NDJSON record decoder: every field, every reject
 * reason (and that the next record still decodes), RFC 3339 variants, sync
 * lines, escapes and UTF-8, limits at and one past the boundary, canonical
 * format round trips, and round trips of records written by real JSON
 * encoders (python3 json, node JSON.stringify) through the scripts in
 * tests/unit/ (this test runs with tests/ as its working directory).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../bench/gen.h"
#include "record.h"

#define NOW_MS INT64_C(1700000000000)
#define DEFAULT_SERVICE "default-svc"

static struct vt_record_decoder *dec;  /* default limits, default service */
static struct vt_record_decoder *dec2; /* same, for re-decoding formatted output */
static struct vt_record_decoder *nodef; /* default limits, no default service */
static char *input_copy[2]; /* exact-size copies of the lines being decoded */

static int setup(void **state)
{
    (void)state;
    dec = vt_record_decoder_new(NULL, DEFAULT_SERVICE);
    dec2 = vt_record_decoder_new(NULL, DEFAULT_SERVICE);
    nodef = vt_record_decoder_new(NULL, NULL);
    return dec && dec2 && nodef ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    vt_record_decoder_free(dec);
    vt_record_decoder_free(dec2);
    vt_record_decoder_free(nodef);
    free(input_copy[0]);
    free(input_copy[1]);
    return 0;
}

/* Decode from an exact-size heap copy, so ASan catches any read past len. */
static enum vt_record_kind decode_with(struct vt_record_decoder *d, const char *json, size_t len,
                                       struct vt_record *r)
{
    char **slot = &input_copy[d == dec2]; /* a record of dec stays valid while dec2 decodes */
    free(*slot);
    *slot = malloc(len ? len : 1);
    assert_non_null(*slot);
    memcpy(*slot, json, len);
    return vt_record_decode(d, *slot, len, NOW_MS, r);
}

static enum vt_record_kind decode(const char *json, struct vt_record *r)
{
    return decode_with(dec, json, strlen(json), r);
}

static void assert_sv(struct vt_str s, const char *want)
{
    if (s.len != strlen(want) || memcmp(s.ptr, want, s.len) != 0)
        fail_msg("string \"%.*s\" != \"%s\"", (int)s.len, s.ptr, want);
}

static void assert_str_same(struct vt_str a, struct vt_str b)
{
    assert_int_equal(a.len, b.len);
    if (a.len)
        assert_memory_equal(a.ptr, b.ptr, a.len);
}

static void assert_dbl_same(double a, double b)
{
    if (memcmp(&a, &b, sizeof a) != 0)
        fail_msg("double %.17g != %.17g", a, b);
}

static void assert_records_equal(const struct vt_record *a, const struct vt_record *b)
{
    assert_int_equal(a->present, b->present);
    assert_int_equal(a->ts_ms, b->ts_ms);
    assert_str_same(a->service, b->service);
    assert_str_same(a->model, b->model);
    assert_str_same(a->provider, b->provider);
    assert_str_same(a->version, b->version);
    assert_dbl_same(a->latency_ms, b->latency_ms);
    assert_dbl_same(a->ttft_ms, b->ttft_ms);
    assert_int_equal(a->error, b->error);
    assert_str_same(a->error_type, b->error_type);
    assert_int_equal(a->input_tokens, b->input_tokens);
    assert_int_equal(a->output_tokens, b->output_tokens);
    assert_dbl_same(a->cost_usd, b->cost_usd);
    assert_int_equal(a->n_metrics, b->n_metrics);
    for (uint32_t i = 0; i < a->n_metrics; i++) {
        assert_str_same(a->metrics[i].name, b->metrics[i].name);
        assert_dbl_same(a->metrics[i].value, b->metrics[i].value);
    }
    assert_int_equal(a->n_labels, b->n_labels);
    for (uint32_t i = 0; i < a->n_labels; i++) {
        assert_str_same(a->labels[i].key, b->labels[i].key);
        assert_str_same(a->labels[i].value, b->labels[i].value);
    }
    assert_int_equal(a->n_embedding, b->n_embedding);
    for (uint32_t i = 0; i < a->n_embedding; i++)
        assert_dbl_same(a->embedding[i], b->embedding[i]);
    assert_str_same(a->request_id, b->request_id);
}

static char fmtbuf[1 << 17], fmtbuf2[1 << 17];

/* format(r) decodes back to r, and formatting that gives the same bytes. */
static void assert_format_roundtrip(const struct vt_record *r)
{
    int n = vt_record_format_json(r, fmtbuf, sizeof fmtbuf);
    assert_true(n > 0);
    assert_int_equal(strlen(fmtbuf), (size_t)n);
    struct vt_record back;
    enum vt_record_kind k = decode_with(dec2, fmtbuf, (size_t)n, &back);
    if (k != VT_RECORD_DATA)
        fail_msg("formatted record rejected (%s at %u): %s", vt_record_reject_name(back.reject),
                 back.reject_offset, fmtbuf);
    assert_records_equal(r, &back);
    int n2 = vt_record_format_json(&back, fmtbuf2, sizeof fmtbuf2);
    assert_int_equal(n, n2);
    assert_memory_equal(fmtbuf, fmtbuf2, (size_t)n);
}

static const char *good_line = "{\"service\":\"after\",\"latency_ms\":3}";

/* `json` is rejected for `reason`, and the next record decodes fine. */
static void expect_reject_with(struct vt_record_decoder *d, const char *json, size_t len,
                               enum vt_record_reject reason)
{
    struct vt_record r;
    enum vt_record_kind k = decode_with(d, json, len, &r);
    if (k != VT_RECORD_REJECTED || r.reject != reason)
        fail_msg("%.*s: kind %d reason %s, want %s", (int)(len > 200 ? 200 : len), json, k,
                 vt_record_reject_name(r.reject), vt_record_reject_name(reason));
    assert_true(r.reject_offset <= len);
    assert_int_equal(decode_with(d, good_line, strlen(good_line), &r), VT_RECORD_DATA);
    assert_sv(r.service, "after");
    assert_dbl_same(r.latency_ms, 3.0);
}

static void expect_reject(const char *json, enum vt_record_reject reason)
{
    expect_reject_with(dec, json, strlen(json), reason);
}

/* ---- every field ---------------------------------------------------------- */

static void test_design_example(void **state)
{
    (void)state;
    const char *line =
        "{\"ts\": 1764288000123, \"service\": \"support-bot\", \"model\": \"gpt-4o\", "
        "\"provider\": \"openai\",\n \"version\": \"prompt-v12\", \"latency_ms\": 812.5, "
        "\"ttft_ms\": 120.0, \"status\": \"ok\",\n \"error_type\": null, \"input_tokens\": 512, "
        "\"output_tokens\": 128, \"cost_usd\": 0.0031,\n \"metrics\": {\"relevance\": 0.91, "
        "\"hallucination\": 0, \"retrieval_precision\": 0.8, \"feedback\": 1},\n \"labels\": "
        "{\"region\": \"eu\", \"tier\": \"gold\", \"workflow_type\": \"rag\"},\n \"embedding\": "
        "[0.01, -0.2, 0.33], \"request_id\": \"r-123\"}\r\n";
    struct vt_record r;
    assert_int_equal(decode(line, &r), VT_RECORD_DATA);
    assert_int_equal(r.ts_ms, INT64_C(1764288000123));
    assert_int_equal(r.arrival_ms, NOW_MS);
    assert_sv(r.service, "support-bot");
    assert_sv(r.model, "gpt-4o");
    assert_sv(r.provider, "openai");
    assert_sv(r.version, "prompt-v12");
    assert_dbl_same(r.latency_ms, 812.5);
    assert_dbl_same(r.ttft_ms, 120.0);
    assert_false(r.error);
    assert_int_equal(r.error_type.len, 0);
    assert_int_equal(r.input_tokens, 512);
    assert_int_equal(r.output_tokens, 128);
    assert_dbl_same(r.cost_usd, 0.0031);
    assert_int_equal(r.n_metrics, 4);
    assert_sv(r.metrics[0].name, "feedback");
    assert_dbl_same(r.metrics[0].value, 1);
    assert_sv(r.metrics[1].name, "hallucination");
    assert_dbl_same(r.metrics[1].value, 0);
    assert_sv(r.metrics[2].name, "relevance");
    assert_dbl_same(r.metrics[2].value, 0.91);
    assert_sv(r.metrics[3].name, "retrieval_precision");
    assert_dbl_same(r.metrics[3].value, 0.8);
    assert_int_equal(r.n_labels, 3);
    assert_sv(r.labels[0].key, "region");
    assert_sv(r.labels[0].value, "eu");
    assert_sv(r.labels[1].key, "tier");
    assert_sv(r.labels[2].key, "workflow_type");
    assert_sv(r.labels[2].value, "rag");
    assert_int_equal(r.n_embedding, 3);
    assert_dbl_same(r.embedding[0], 0.01);
    assert_dbl_same(r.embedding[1], -0.2);
    assert_dbl_same(r.embedding[2], 0.33);
    assert_sv(r.request_id, "r-123");
    uint32_t all = 0;
    for (int f = VT_FIELD_FIRST; f <= VT_FIELD_LAST; f++)
        all |= VT_FIELD_BIT(f);
    assert_int_equal(r.present, all & ~VT_FIELD_BIT(VT_FIELD_ERROR_TYPE));
    assert_int_equal(r.unknown_fields, 0);
    assert_int_equal(r.reject, VT_REJECT_NONE);
    assert_format_roundtrip(&r);

    assert_int_equal(decode("{\"service\":\"s\",\"status\":\"error\",\"error_type\":\"timeout\"}", &r),
                     VT_RECORD_DATA);
    assert_true(r.error);
    assert_sv(r.error_type, "timeout");
    assert_format_roundtrip(&r);
}

static void test_defaults_and_presence(void **state)
{
    (void)state;
    struct vt_record r;
    assert_int_equal(decode("{}", &r), VT_RECORD_DATA);
    assert_sv(r.service, DEFAULT_SERVICE);
    assert_int_equal(r.present, 0);
    assert_int_equal(r.ts_ms, NOW_MS);
    assert_format_roundtrip(&r);

    /* null and "" service mean the default; null anything means absent */
    assert_int_equal(decode("{\"service\":null,\"ts\":null,\"model\":null,\"latency_ms\":null,"
                            "\"status\":null,\"input_tokens\":null,\"metrics\":null,"
                            "\"labels\":null,\"embedding\":null,\"request_id\":null}", &r),
                     VT_RECORD_DATA);
    assert_sv(r.service, DEFAULT_SERVICE);
    assert_int_equal(r.present, 0);
    assert_int_equal(decode("{\"service\":\"\"}", &r), VT_RECORD_DATA);
    assert_sv(r.service, DEFAULT_SERVICE);
    assert_int_equal(r.present, 0);

    /* zero is not absent */
    assert_int_equal(decode("{\"latency_ms\":0,\"input_tokens\":0,\"cost_usd\":0.0,"
                            "\"metrics\":{},\"labels\":{},\"embedding\":[],\"model\":\"\"}", &r),
                     VT_RECORD_DATA);
    assert_int_equal(r.present,
                     VT_FIELD_BIT(VT_FIELD_LATENCY_MS) | VT_FIELD_BIT(VT_FIELD_INPUT_TOKENS) |
                         VT_FIELD_BIT(VT_FIELD_COST_USD) | VT_FIELD_BIT(VT_FIELD_METRICS) |
                         VT_FIELD_BIT(VT_FIELD_LABELS) | VT_FIELD_BIT(VT_FIELD_EMBEDDING) |
                         VT_FIELD_BIT(VT_FIELD_MODEL));
    assert_format_roundtrip(&r);

    /* the missing-field iteration the aggregator uses */
    int missing = 0;
    for (int f = VT_FIELD_FIRST; f <= VT_FIELD_LAST; f++)
        if ((VT_RECORD_OPTIONAL_MASK & VT_FIELD_BIT(f)) && !(r.present & VT_FIELD_BIT(f))) {
            assert_non_null(vt_record_field_name(f));
            missing++;
        }
    assert_int_equal(missing, 14 - 7); /* 14 optional fields, 7 given */

    /* metric and label nulls drop the entry */
    assert_int_equal(decode("{\"metrics\":{\"a\":null,\"b\":2},\"labels\":{\"x\":null,\"y\":\"v\"}}",
                            &r), VT_RECORD_DATA);
    assert_int_equal(r.n_metrics, 1);
    assert_sv(r.metrics[0].name, "b");
    assert_int_equal(r.n_labels, 1);
    assert_sv(r.labels[0].key, "y");
}

static void test_names(void **state)
{
    (void)state;
    assert_string_equal(vt_record_field_name(VT_FIELD_TS), "ts");
    assert_string_equal(vt_record_field_name(VT_FIELD_LATENCY_MS), "latency_ms");
    assert_string_equal(vt_record_field_name(VT_FIELD_REQUEST_ID), "request_id");
    assert_null(vt_record_field_name(0));
    assert_null(vt_record_field_name(17));
    assert_string_equal(vt_record_reject_name(VT_REJECT_NONE), "none");
    assert_string_equal(vt_record_reject_name(-1), "unknown");
    assert_string_equal(vt_record_reject_name(VT_REJECT__COUNT), "unknown");
    for (int i = 1; i < VT_REJECT__COUNT; i++) {
        const char *n = vt_record_reject_name(i);
        assert_true(strlen(n) > 2);
        for (const char *c = n; *c; c++)
            assert_true((*c >= 'a' && *c <= 'z') || *c == '_' || (*c >= '0' && *c <= '9'));
        for (int j = 1; j < i; j++)
            assert_string_not_equal(n, vt_record_reject_name(j));
    }
    const char *fixed[] = {"none", "parse_error", "too_large", "bad_type", "non_finite",
                           "too_many_labels", "field_too_long", "bad_timestamp",
                           "missing_service", "too_many_metrics", "embedding_too_long",
                           "bad_status", "bad_utf8", "duplicate_key", "out_of_range"};
    assert_int_equal(sizeof fixed / sizeof *fixed, VT_REJECT__COUNT);
    for (int i = 0; i < VT_REJECT__COUNT; i++)
        assert_string_equal(vt_record_reject_name(i), fixed[i]);
}

/* ---- one test per reject reason ------------------------------------------- */

static void test_reject_parse_error(void **state)
{
    (void)state;
    const char *bad[] = {
        "{", "}", "[]", "\"x\"", "42", "null", "{\"service\":\"a\"", "{\"service\":\"a\",}",
        "{\"service\" \"a\"}", "{service:\"a\"}", "{\"service\":\"a\"} x", "{\"service\":\"a\"}{}",
        "{\"latency_ms\":01}", "{\"latency_ms\":1.}", "{\"latency_ms\":.5}", "{\"latency_ms\":+1}",
        "{\"latency_ms\":1e}", "{\"latency_ms\":-}", "{\"latency_ms\":tru}", "{\"a\":nul}",
        "{\"service\":\"a\\x\"}", "{\"service\":\"a\\u12G4\"}", "{\"service\":\"a\tb\"}",
        "{\"service\":\"abc", "{\"x\":[1,2}", "{\"x\":{\"a\":1]}", "{\"x\":[1,]}",
        "{\"x\":{\"a\"}}", "{\"embedding\":[1 2]}", "{\"labels\":{\"a\":\"b\",}}",
        "{\"service\":'a'}", "\xef\xbb\xbf{}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        expect_reject(bad[i], VT_REJECT_PARSE_ERROR);
    /* nesting of unknown values is bounded */
    char deep[200];
    memset(deep, '[', 100);
    strcpy(deep, "{\"x\":");
    memset(deep + 5, '[', 40);
    memset(deep + 45, ']', 40);
    strcpy(deep + 85, "}");
    expect_reject(deep, VT_REJECT_PARSE_ERROR);
    strcpy(deep, "{\"x\":");
    memset(deep + 5, '[', 32);
    memset(deep + 37, ']', 32);
    strcpy(deep + 69, "}");
    struct vt_record r;
    assert_int_equal(decode(deep, &r), VT_RECORD_DATA);
    assert_int_equal(r.unknown_fields, 1);
}

static void test_reject_too_large(void **state)
{
    (void)state;
    size_t n = 65537;
    char *big = malloc(n + 1);
    assert_non_null(big);
    /* a valid record padded with an unknown field to exactly the limit... */
    int h = snprintf(big, n, "{\"service\":\"s\",\"pad\":\"");
    memset(big + h, 'x', 65536 - (size_t)h - 2);
    memcpy(big + 65536 - 2, "\"}", 2);
    struct vt_record r;
    assert_int_equal(decode_with(dec, big, 65536, &r), VT_RECORD_DATA);
    /* ...and one byte more */
    memset(big + h, 'x', 65537 - (size_t)h - 2);
    memcpy(big + 65537 - 2, "\"}", 2);
    expect_reject_with(dec, big, 65537, VT_REJECT_TOO_LARGE);
    free(big);
}

static void test_reject_bad_type(void **state)
{
    (void)state;
    const char *bad[] = {
        "{\"service\":1}", "{\"model\":true}", "{\"request_id\":[]}", "{\"latency_ms\":\"1\"}",
        "{\"ttft_ms\":{}}", "{\"cost_usd\":false}", "{\"input_tokens\":\"5\"}",
        "{\"status\":1}", "{\"ts\":true}", "{\"metrics\":[1]}", "{\"metrics\":{\"a\":\"b\"}}",
        "{\"metrics\":{\"a\":true}}", "{\"labels\":[\"a\"]}", "{\"labels\":\"a=b\"}",
        "{\"labels\":{\"a\":[\"b\"]}}", "{\"labels\":{\"a\":{}}}", "{\"embedding\":{}}",
        "{\"embedding\":[1,\"2\"]}", "{\"embedding\":[null]}", "{\"sync\":-1}",
        "{\"sync\":1.5}", "{\"sync\":\"1\"}", "{\"sync\":null}", "{\"sync\":18446744073709551616}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        expect_reject(bad[i], VT_REJECT_BAD_TYPE);
}

static void test_reject_non_finite(void **state)
{
    (void)state;
    const char *bad[] = {
        "{\"latency_ms\":NaN}", "{\"latency_ms\":Infinity}", "{\"cost_usd\":-Infinity}",
        "{\"ttft_ms\":1e309}", "{\"metrics\":{\"m\":-1e400}}", "{\"embedding\":[0,NaN]}",
        "{\"x\":[NaN]}", "{\"ts\":1e999}", "{\"labels\":{\"a\":Infinity}}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        expect_reject(bad[i], VT_REJECT_NON_FINITE);
    /* the largest double and underflow to zero are fine */
    struct vt_record r;
    assert_int_equal(decode("{\"metrics\":{\"a\":1.7976931348623157e308,\"b\":1e-400}}", &r),
                     VT_RECORD_DATA);
    assert_dbl_same(r.metrics[0].value, 1.7976931348623157e308);
    assert_dbl_same(r.metrics[1].value, 0.0);
}

/* A record with `n` labels k00.., each value `vlen` bytes. */
static char *labels_record(int n, size_t klen, size_t vlen)
{
    size_t cap = 64 + (size_t)n * (klen + vlen + 8);
    char *s = malloc(cap), *p = s;
    p += sprintf(p, "{\"labels\":{");
    for (int i = 0; i < n; i++) {
        p += sprintf(p, "%s\"%02d", i ? "," : "", i);
        memset(p, 'k', klen - 2);
        p += klen - 2;
        p += sprintf(p, "\":\"");
        memset(p, 'v', vlen);
        p += vlen;
        *p++ = '"';
    }
    strcpy(p, "}}");
    return s;
}

static void test_reject_too_many_labels(void **state)
{
    (void)state;
    struct vt_record r;
    char *s = labels_record(32, 2, 1);
    assert_int_equal(decode(s, &r), VT_RECORD_DATA);
    assert_int_equal(r.n_labels, 32);
    for (uint32_t i = 1; i < r.n_labels; i++)
        assert_true(memcmp(r.labels[i - 1].key.ptr, r.labels[i].key.ptr, 2) < 0);
    free(s);
    s = labels_record(33, 2, 1);
    expect_reject(s, VT_REJECT_TOO_MANY_LABELS);
    free(s);
}

static void test_reject_field_too_long(void **state)
{
    (void)state;
    struct vt_record r;
    char *s = labels_record(1, 64, 256);
    assert_int_equal(decode(s, &r), VT_RECORD_DATA);
    assert_int_equal(r.labels[0].key.len, 64);
    assert_int_equal(r.labels[0].value.len, 256);
    free(s);
    s = labels_record(1, 65, 1);
    expect_reject(s, VT_REJECT_FIELD_TOO_LONG);
    free(s);
    s = labels_record(1, 2, 257);
    expect_reject(s, VT_REJECT_FIELD_TOO_LONG);
    free(s);

    const char *fields[] = {"service", "model", "provider", "version", "error_type", "request_id"};
    char buf[1024];
    for (size_t i = 0; i < 6; i++) {
        int h = sprintf(buf, "{\"%s\":\"", fields[i]);
        memset(buf + h, 'a', 256);
        strcpy(buf + h + 256, "\"}");
        assert_int_equal(decode(buf, &r), VT_RECORD_DATA);
        memset(buf + h, 'a', 257);
        strcpy(buf + h + 257, "\"}");
        expect_reject(buf, VT_REJECT_FIELD_TOO_LONG);
        /* the limit counts decoded bytes: 128 x "\u00e9" is 256 bytes */
        char *p = buf + h;
        for (int k = 0; k < 128; k++)
            p += sprintf(p, "\\u00e9");
        strcpy(p, "\"}");
        assert_int_equal(decode(buf, &r), VT_RECORD_DATA);
        strcpy(p, "a\"}");
        expect_reject(buf, VT_REJECT_FIELD_TOO_LONG);
    }
    /* metric names: 128 bytes */
    int h = sprintf(buf, "{\"metrics\":{\"");
    memset(buf + h, 'm', 128);
    strcpy(buf + h + 128, "\":1}}");
    assert_int_equal(decode(buf, &r), VT_RECORD_DATA);
    memset(buf + h, 'm', 129);
    strcpy(buf + h + 129, "\":1}}");
    expect_reject(buf, VT_REJECT_FIELD_TOO_LONG);
}

static void test_reject_bad_timestamp(void **state)
{
    (void)state;
    const char *bad[] = {
        "{\"ts\":-1}", "{\"ts\":-0.5}", "{\"ts\":253402300800000}", "{\"ts\":1e20}",
        "{\"ts\":\"\"}", "{\"ts\":\"1764288000123\"}", "{\"ts\":\"2025-11-28\"}",
        "{\"ts\":\"2025-11-28T00:00:00\"}", "{\"ts\":\"2025-13-01T00:00:00Z\"}",
        "{\"ts\":\"2025-02-29T00:00:00Z\"}", "{\"ts\":\"2025-04-31T00:00:00Z\"}",
        "{\"ts\":\"2025-11-28T24:00:00Z\"}", "{\"ts\":\"2025-11-28T00:60:00Z\"}",
        "{\"ts\":\"2025-11-28T00:00:61Z\"}", "{\"ts\":\"2025-11-28T00:00:00.Z\"}",
        "{\"ts\":\"2025-11-28T00:00:00+0100\"}", "{\"ts\":\"2025-11-28T00:00:00+24:00\"}",
        "{\"ts\":\"2025-11-28T00:00:00Z \"}", "{\"ts\":\"2025-11-28X00:00:00Z\"}",
        "{\"ts\":\"1969-12-31T23:59:59.999Z\"}", "{\"ts\":\"1970-01-01T00:30:00+01:00\"}",
        "{\"ts\":\"+2025-11-28T00:00:00Z\"}", "{\"ts\":\"2025-1-28T00:00:00Z\"}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        expect_reject(bad[i], VT_REJECT_BAD_TIMESTAMP);
}

static void test_reject_missing_service(void **state)
{
    (void)state;
    expect_reject_with(nodef, "{\"latency_ms\":1}", 16, VT_REJECT_MISSING_SERVICE);
    expect_reject_with(nodef, "{\"service\":null}", 16, VT_REJECT_MISSING_SERVICE);
    expect_reject_with(nodef, "{\"service\":\"\"}", 14, VT_REJECT_MISSING_SERVICE);
    expect_reject_with(nodef, "{}", 2, VT_REJECT_MISSING_SERVICE);
    struct vt_record r;
    assert_int_equal(decode_with(nodef, "{\"service\":\"x\"}", 15, &r), VT_RECORD_DATA);
    assert_sv(r.service, "x");
    assert_int_equal(r.present, VT_FIELD_BIT(VT_FIELD_SERVICE));
}

static void test_reject_too_many_metrics(void **state)
{
    (void)state;
    char buf[4096], *p;
    struct vt_record r;
    for (int n = 64; n <= 65; n++) {
        p = buf + sprintf(buf, "{\"metrics\":{");
        for (int i = n - 1; i >= 0; i--) /* reverse order: output must be sorted */
            p += sprintf(p, "%s\"m%03d\":%d", i == n - 1 ? "" : ",", i, i);
        strcpy(p, "}}");
        if (n == 64) {
            assert_int_equal(decode(buf, &r), VT_RECORD_DATA);
            assert_int_equal(r.n_metrics, 64);
            for (uint32_t i = 0; i < 64; i++)
                assert_dbl_same(r.metrics[i].value, (double)i);
            assert_format_roundtrip(&r);
        } else {
            expect_reject(buf, VT_REJECT_TOO_MANY_METRICS);
        }
    }
}

static void test_reject_embedding_too_long(void **state)
{
    (void)state;
    static char buf[65536];
    struct vt_record r;
    for (int n = 4096; n <= 4097; n++) {
        char *p = buf + sprintf(buf, "{\"embedding\":[");
        for (int i = 0; i < n; i++)
            p += sprintf(p, "%s%d.5", i ? "," : "", i % 10);
        strcpy(p, "]}");
        if (n == 4096) {
            assert_int_equal(decode(buf, &r), VT_RECORD_DATA);
            assert_int_equal(r.n_embedding, 4096);
            assert_dbl_same(r.embedding[4095], 5.5);
        } else {
            expect_reject(buf, VT_REJECT_EMBEDDING_TOO_LONG);
        }
    }
}

static void test_reject_bad_status(void **state)
{
    (void)state;
    expect_reject("{\"status\":\"OK\"}", VT_REJECT_BAD_STATUS);
    expect_reject("{\"status\":\"\"}", VT_REJECT_BAD_STATUS);
    expect_reject("{\"status\":\"failed\"}", VT_REJECT_BAD_STATUS);
    expect_reject("{\"status\":\"ok \"}", VT_REJECT_BAD_STATUS);
    struct vt_record r;
    assert_int_equal(decode("{\"status\":\"\\u006fk\"}", &r), VT_RECORD_DATA);
    assert_false(r.error);
}

static void test_reject_bad_utf8(void **state)
{
    (void)state;
    const char *bad[] = {
        "{\"service\":\"\xc0\x80\"}",         /* overlong NUL */
        "{\"service\":\"\xc1\xbf\"}",         /* overlong */
        "{\"service\":\"\xe0\x80\xaf\"}",     /* overlong 3-byte */
        "{\"service\":\"\xed\xa0\x80\"}",     /* encoded surrogate */
        "{\"service\":\"\xf4\x90\x80\x80\"}", /* > U+10FFFF */
        "{\"service\":\"\xf5\x80\x80\x80\"}",
        "{\"service\":\"\x80\"}",             /* lone continuation */
        "{\"service\":\"\xe2\x82\"}",         /* truncated */
        "{\"service\":\"\xff\"}",
        "{\"service\":\"a\\ud800\"}",         /* lone high surrogate */
        "{\"service\":\"a\\ud800b\"}",
        "{\"service\":\"a\\udc00\"}",         /* lone low surrogate */
        "{\"service\":\"\\ud800\\u0041\"}",   /* high + non-low */
        "{\"service\":\"\\ud800\\ud800\"}",
        "{\"service\":\"a\\u0000b\"}",        /* NUL */
        "{\"labels\":{\"\xff\":\"v\"}}",
        "{\"x_unknown\":\"\xc3\"}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        expect_reject(bad[i], VT_REJECT_BAD_UTF8);
    /* truncated at the very end of the buffer */
    expect_reject_with(dec, "{\"service\":\"\xe2\x82", 14, VT_REJECT_BAD_UTF8);
}

static void test_reject_duplicate_key(void **state)
{
    (void)state;
    expect_reject("{\"service\":\"a\",\"service\":\"b\"}", VT_REJECT_DUPLICATE_KEY);
    expect_reject("{\"latency_ms\":null,\"latency_ms\":1}", VT_REJECT_DUPLICATE_KEY);
    expect_reject("{\"ts\":1,\"t\\u0073\":2}", VT_REJECT_DUPLICATE_KEY);
    expect_reject("{\"labels\":{\"a\":\"1\",\"b\":\"2\",\"a\":\"3\"}}", VT_REJECT_DUPLICATE_KEY);
    expect_reject("{\"metrics\":{\"z\":1,\"a\":2,\"z\":3}}", VT_REJECT_DUPLICATE_KEY);
    /* unknown keys may repeat: they are skipped */
    struct vt_record r;
    assert_int_equal(decode("{\"x\":1,\"x\":2}", &r), VT_RECORD_DATA);
    assert_int_equal(r.unknown_fields, 2);
}

static void test_reject_out_of_range(void **state)
{
    (void)state;
    const char *bad[] = {
        "{\"latency_ms\":-1}", "{\"ttft_ms\":-0.001}", "{\"cost_usd\":-1e-9}",
        "{\"input_tokens\":-1}", "{\"output_tokens\":1.5}", "{\"input_tokens\":18446744073709551616}",
        "{\"input_tokens\":1e20}", "{\"output_tokens\":-2.0}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        expect_reject(bad[i], VT_REJECT_OUT_OF_RANGE);
    struct vt_record r;
    assert_int_equal(decode("{\"input_tokens\":18446744073709551615,\"output_tokens\":5.12e2}",
                            &r), VT_RECORD_DATA);
    assert_int_equal(r.input_tokens, UINT64_MAX);
    assert_int_equal(r.output_tokens, 512);
}

/* ---- timestamps, sync, strings, labels, unknowns -------------------------- */

static void test_ts_variants(void **state)
{
    (void)state;
    static const struct {
        const char *ts;
        int64_t ms;
    } cases[] = {
        {"1764288000123", INT64_C(1764288000123)},
        {"1764288000123.9", INT64_C(1764288000123)},
        {"1.764288000123e12", INT64_C(1764288000123)},
        {"0", 0},
        {"-0", 0},
        {"253402300799999", INT64_C(253402300799999)},
        {"\"2025-11-28T00:00:00Z\"", INT64_C(1764288000000)},
        {"\"2025-11-28T00:00:00.123Z\"", INT64_C(1764288000123)},
        {"\"2025-11-28T00:00:00.1Z\"", INT64_C(1764288000100)},
        {"\"2025-11-28T00:00:00.12z\"", INT64_C(1764288000120)},
        {"\"2025-11-28T00:00:00.123456789Z\"", INT64_C(1764288000123)},
        {"\"2025-11-28t00:00:00Z\"", INT64_C(1764288000000)},
        {"\"2025-11-28 00:00:00Z\"", INT64_C(1764288000000)},
        {"\"2025-11-28T01:00:00+01:00\"", INT64_C(1764288000000)},
        {"\"2025-11-27T19:00:00.5-05:00\"", INT64_C(1764288000500)},
        {"\"2025-11-28T05:30:00+05:30\"", INT64_C(1764288000000)},
        {"\"2025-11-28T00:00:00-00:00\"", INT64_C(1764288000000)},
        {"\"1970-01-01T00:00:00Z\"", 0},
        {"\"2024-02-29T12:00:00Z\"", INT64_C(1709208000000)},
        {"\"2000-02-29T00:00:00Z\"", INT64_C(951782400000)},
        {"\"2016-12-31T23:59:60Z\"", INT64_C(1483228800000)}, /* leap second folds forward */
        {"\"9999-12-31T23:59:59.999Z\"", INT64_C(253402300799999)},
        {"\"1969-12-31T19:00:00-05:00\"", 0},
        {"\"2025-11-28T00:00:00\\u005a\"", INT64_C(1764288000000)},
    };
    char buf[128];
    struct vt_record r;
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        snprintf(buf, sizeof buf, "{\"ts\":%s}", cases[i].ts);
        if (decode(buf, &r) != VT_RECORD_DATA)
            fail_msg("%s rejected: %s", buf, vt_record_reject_name(r.reject));
        if (r.ts_ms != cases[i].ms)
            fail_msg("%s -> %" PRId64 ", want %" PRId64, buf, r.ts_ms, cases[i].ms);
        assert_true(r.present & VT_FIELD_BIT(VT_FIELD_TS));
        assert_format_roundtrip(&r);
    }
    assert_int_equal(decode("{\"latency_ms\":1}", &r), VT_RECORD_DATA);
    assert_int_equal(r.ts_ms, NOW_MS);
    assert_false(r.present & VT_FIELD_BIT(VT_FIELD_TS));
}

static void test_sync_lines(void **state)
{
    (void)state;
    struct vt_record r;
    assert_int_equal(decode("{\"sync\":42}", &r), VT_RECORD_SYNC);
    assert_int_equal(r.sync, 42);
    assert_int_equal(r.reject, VT_REJECT_NONE);
    assert_int_equal(decode(" { \"sync\" : 0 }\n", &r), VT_RECORD_SYNC);
    assert_int_equal(r.sync, 0);
    assert_int_equal(decode("{\"sync\":18446744073709551615}", &r), VT_RECORD_SYNC);
    assert_int_equal(r.sync, UINT64_MAX);
    assert_int_equal(decode("{\"s\\u0079nc\":7}", &r), VT_RECORD_SYNC);
    assert_int_equal(r.sync, 7);
    /* "sync" beside record fields is an unknown field of a record */
    assert_int_equal(decode("{\"sync\":3,\"service\":\"x\"}", &r), VT_RECORD_DATA);
    assert_int_equal(r.unknown_fields, 1);
    assert_sv(r.service, "x");
    assert_int_equal(r.sync, 0);
    expect_reject("{\"sync\":1,\"sync\":2}", VT_REJECT_DUPLICATE_KEY);
    expect_reject("{\"sync\":1e3}", VT_REJECT_BAD_TYPE);
    expect_reject("{\"sync\":NaN}", VT_REJECT_NON_FINITE);
    expect_reject("{\"sync\":1", VT_REJECT_PARSE_ERROR);
    /* blank lines are neither records nor rejections */
    assert_int_equal(decode("", &r), VT_RECORD_EMPTY);
    assert_int_equal(decode(" \r\n\t", &r), VT_RECORD_EMPTY);
}

static void test_escapes_and_unicode(void **state)
{
    (void)state;
    struct vt_record r;
    assert_int_equal(decode("{\"service\":\"a\\\"b\\\\c\\/d\\be\\ff\\ng\\rh\\ti\"}", &r),
                     VT_RECORD_DATA);
    assert_sv(r.service, "a\"b\\c/d\be\ff\ng\rh\ti");
    assert_format_roundtrip(&r);
    assert_int_equal(decode("{\"service\":\"\\u00e9\\u20AC\\ud83d\\ude00\\uD834\\uDD1E\\u0001\"}",
                            &r), VT_RECORD_DATA);
    assert_sv(r.service, "\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\xf0\x9d\x84\x9e\x01");
    assert_format_roundtrip(&r);
    /* raw UTF-8 passes through and points into the input */
    const char *raw = "{\"service\":\"caf\xc3\xa9 \xe4\xb8\xad \xf0\x9f\x98\x80 \xef\xbf\xbf\"}";
    assert_int_equal(decode(raw, &r), VT_RECORD_DATA);
    assert_sv(r.service, "caf\xc3\xa9 \xe4\xb8\xad \xf0\x9f\x98\x80 \xef\xbf\xbf");
    /* escaped keys are matched after decoding */
    assert_int_equal(decode("{\"\\u0073ervice\":\"x\",\"labels\":{\"k\\n\":\"\\u00e9\"}}", &r),
                     VT_RECORD_DATA);
    assert_sv(r.service, "x");
    assert_sv(r.labels[0].key, "k\n");
    assert_sv(r.labels[0].value, "\xc3\xa9");
    assert_format_roundtrip(&r);
    /* many escaped strings in one record share the scratch buffer */
    assert_int_equal(decode("{\"service\":\"\\u0041\",\"model\":\"\\u0042\",\"provider\":\"\\u0043\","
                            "\"version\":\"\\u0044\",\"labels\":{\"\\u0045\":\"\\u0046\"}}", &r),
                     VT_RECORD_DATA);
    assert_sv(r.service, "A");
    assert_sv(r.model, "B");
    assert_sv(r.provider, "C");
    assert_sv(r.version, "D");
    assert_sv(r.labels[0].key, "E");
    assert_sv(r.labels[0].value, "F");
}

static void test_labels_and_unknowns(void **state)
{
    (void)state;
    struct vt_record r;
    assert_int_equal(decode("{\"labels\":{\"tier\":\"gold\",\"b\":3,\"a\":true,\"ab\":-1.5e3,"
                            "\"\":\"empty\",\"c\":false}}", &r), VT_RECORD_DATA);
    assert_int_equal(r.n_labels, 6);
    assert_sv(r.labels[0].key, "");
    assert_sv(r.labels[1].key, "a");
    assert_sv(r.labels[1].value, "true");
    assert_sv(r.labels[2].key, "ab");
    assert_sv(r.labels[2].value, "-1.5e3");
    assert_sv(r.labels[3].key, "b");
    assert_sv(r.labels[3].value, "3");
    assert_sv(r.labels[4].key, "c");
    assert_sv(r.labels[4].value, "false");
    assert_sv(r.labels[5].key, "tier");
    assert_format_roundtrip(&r);

    assert_int_equal(decode("{\"a\":{\"b\":[1,2,{\"c\":null}],\"d\":\"\\u00e9\"},\"service\":\"s\","
                            "\"e\":[],\"f\":{},\"g\":-0.5e-3,\"h\":true,\"i\":false,\"j\":null}",
                            &r), VT_RECORD_DATA);
    assert_int_equal(r.unknown_fields, 7);
    assert_sv(r.service, "s");
}

/* Custom limits: at the limit accepted, one past rejected. */
static void test_custom_limits(void **state)
{
    (void)state;
    struct vt_record_limits l;
    vt_record_limits_default(&l);
    assert_int_equal(l.max_record_bytes, 65536);
    assert_int_equal(l.max_labels, 32);
    assert_int_equal(l.max_label_key, 64);
    assert_int_equal(l.max_label_value, 256);
    assert_int_equal(l.max_metrics, 64);
    assert_int_equal(l.max_embedding, 4096);
    l.max_record_bytes = 120;
    l.max_labels = 2;
    l.max_label_key = 3;
    l.max_label_value = 4;
    l.max_metrics = 1;
    l.max_metric_name = 2;
    l.max_embedding = 2;
    l.max_string = 5;
    l.max_depth = 2;
    struct vt_record_decoder *d = vt_record_decoder_new(&l, "svc");
    assert_non_null(d);
    assert_int_equal(vt_record_decoder_limits(d)->max_labels, 2);
    struct {
        const char *json;
        enum vt_record_reject reason; /* NONE: accepted */
    } cases[] = {
        {"{\"labels\":{\"abc\":\"vvvv\",\"x\":\"1\"}}", VT_REJECT_NONE},
        {"{\"labels\":{\"abc\":\"vvvv\",\"x\":\"1\",\"y\":\"2\"}}", VT_REJECT_TOO_MANY_LABELS},
        {"{\"labels\":{\"abcd\":\"v\"}}", VT_REJECT_FIELD_TOO_LONG},
        {"{\"labels\":{\"a\":\"vvvvv\"}}", VT_REJECT_FIELD_TOO_LONG},
        {"{\"metrics\":{\"ab\":1}}", VT_REJECT_NONE},
        {"{\"metrics\":{\"abc\":1}}", VT_REJECT_FIELD_TOO_LONG},
        {"{\"metrics\":{\"a\":1,\"b\":2}}", VT_REJECT_TOO_MANY_METRICS},
        {"{\"embedding\":[1,2]}", VT_REJECT_NONE},
        {"{\"embedding\":[1,2,3]}", VT_REJECT_EMBEDDING_TOO_LONG},
        {"{\"model\":\"12345\",\"service\":\"abcde\"}", VT_REJECT_NONE},
        {"{\"model\":\"123456\"}", VT_REJECT_FIELD_TOO_LONG},
        {"{\"x\":[[1]]}", VT_REJECT_NONE},
        {"{\"x\":[[[1]]]}", VT_REJECT_PARSE_ERROR},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        struct vt_record r;
        enum vt_record_kind k = decode_with(d, cases[i].json, strlen(cases[i].json), &r);
        if (cases[i].reason == VT_REJECT_NONE) {
            if (k != VT_RECORD_DATA)
                fail_msg("%s rejected: %s", cases[i].json, vt_record_reject_name(r.reject));
        } else {
            if (k != VT_RECORD_REJECTED || r.reject != cases[i].reason)
                fail_msg("%s: got %s want %s", cases[i].json, vt_record_reject_name(r.reject),
                         vt_record_reject_name(cases[i].reason));
        }
    }
    /* record size: 120 bytes accepted, 121 too large */
    char big[200];
    memset(big, 'x', sizeof big);
    memcpy(big, "{\"x\":\"", 6);
    memcpy(big + 118, "\"}", 2);
    struct vt_record r;
    assert_int_equal(decode_with(d, big, 120, &r), VT_RECORD_DATA);
    memcpy(big + 118, "x\"}", 3);
    assert_int_equal(decode_with(d, big, 121, &r), VT_RECORD_REJECTED);
    assert_int_equal(r.reject, VT_REJECT_TOO_LARGE);
    vt_record_decoder_free(d);

    /* bad limits and an oversized default service are refused */
    l.max_labels = 0;
    errno = 0;
    assert_null(vt_record_decoder_new(&l, NULL));
    assert_int_equal(errno, EINVAL);
    vt_record_limits_default(&l);
    l.max_string = 3;
    assert_null(vt_record_decoder_new(&l, "toolong"));
    l.max_string = 7;
    d = vt_record_decoder_new(&l, "toolong");
    assert_non_null(d);
    vt_record_decoder_free(d);
}

/* ---- format ----------------------------------------------------------------- */

static void test_format_gen_roundtrip(void **state)
{
    (void)state;
    struct gen g;
    gen_init(&g, 7);
    char line[1024];
    struct vt_record r;
    for (int i = 0; i < 20000; i++) {
        size_t n = gen_record(&g, line, sizeof line);
        assert_true(n > 0);
        if (decode_with(dec, line, n, &r) != VT_RECORD_DATA)
            fail_msg("gen record rejected (%s): %s", vt_record_reject_name(r.reject), line);
        assert_int_equal(r.n_labels, 2);
        assert_int_equal(r.n_metrics, 3);
        assert_int_equal(r.n_embedding, 3);
        assert_format_roundtrip(&r);
    }
}

static void test_format_numbers_and_space(void **state)
{
    (void)state;
    struct vt_record r;
    assert_int_equal(decode("{\"service\":\"s\",\"latency_ms\":0.1,\"ttft_ms\":1e-7,\"cost_usd\":"
                            "123456789012345678,\"metrics\":{\"a\":-0.0,\"b\":5e-324,"
                            "\"c\":0.30000000000000004,\"d\":1e22,\"e\":9007199254740993}}", &r),
                     VT_RECORD_DATA);
    assert_dbl_same(r.metrics[2].value, 0.1 + 0.2);
    assert_dbl_same(r.metrics[3].value, 1e22);
    int n = vt_record_format_json(&r, fmtbuf, sizeof fmtbuf);
    assert_true(n > 0);
    assert_string_equal(fmtbuf, "{\"service\":\"s\",\"latency_ms\":0.1,\"ttft_ms\":1e-07,"
                                "\"cost_usd\":1.2345678901234568e+17,\"metrics\":{\"a\":-0,"
                                "\"b\":4.94065645841247e-324,\"c\":0.30000000000000004,"
                                "\"d\":1e+22,\"e\":9007199254740992}}");
    assert_format_roundtrip(&r);
    /* too small a buffer: -ENOSPC at every size below the length */
    char small[256];
    for (int cap = 0; cap <= n; cap++)
        assert_int_equal(vt_record_format_json(&r, small, (size_t)cap), -ENOSPC);
    assert_int_equal(vt_record_format_json(&r, small, (size_t)n + 1), n);
    /* control characters are escaped */
    assert_int_equal(decode("{\"service\":\"\\u0001\\u001f\\\"\\\\\\n\"}", &r), VT_RECORD_DATA);
    n = vt_record_format_json(&r, fmtbuf, sizeof fmtbuf);
    assert_string_equal(fmtbuf, "{\"service\":\"\\u0001\\u001f\\\"\\\\\\n\"}");
}

/* Every prefix and every single-byte corruption of a record: never a crash,
 * never a read past len (the copies are exact-size heap blocks). */
static void test_prefixes_and_corruptions(void **state)
{
    (void)state;
    const char *line = "{\"ts\":\"2025-11-28T00:00:00.5+01:00\",\"service\":\"s\\u00e9\","
                       "\"latency_ms\":812.5,\"labels\":{\"a\":\"b\",\"c\":1},\"metrics\":{"
                       "\"m\":1e-3},\"embedding\":[0.1,-2],\"x\":[{\"y\":null}],"
                       "\"status\":\"error\",\"request_id\":\"\xe4\xb8\xad\"}";
    size_t len = strlen(line);
    struct vt_record r;
    assert_int_equal(decode(line, &r), VT_RECORD_DATA);
    for (size_t i = 0; i < len; i++) {
        enum vt_record_kind k = decode_with(dec, line, i, &r);
        assert_true(k == VT_RECORD_REJECTED || k == VT_RECORD_EMPTY);
    }
    char *copy = malloc(len);
    for (size_t i = 0; i < len; i++) {
        for (int b = 0; b < 256; b += 7) {
            memcpy(copy, line, len);
            copy[i] = (char)b;
            enum vt_record_kind k = decode_with(dec, copy, len, &r);
            if (k == VT_RECORD_DATA)
                assert_format_roundtrip(&r);
            else
                assert_true(k == VT_RECORD_REJECTED || k == VT_RECORD_SYNC);
        }
    }
    free(copy);
}

/* ---- real JSON encoders ----------------------------------------------------- */

static size_t unhex(const char *h, size_t n, char *out)
{
    assert_int_equal(n % 2, 0);
    for (size_t i = 0; i < n / 2; i++) {
        unsigned v;
        assert_int_equal(sscanf(h + 2 * i, "%2x", &v), 1);
        out[i] = (char)v;
    }
    return n / 2;
}

static double bits_to_double(const char *h)
{
    uint64_t u = strtoull(h, NULL, 16);
    double d;
    memcpy(&d, &u, sizeof d);
    return d;
}

static void assert_hex_str(struct vt_str s, const char *h, size_t n, const char *what)
{
    static char tmp[70000];
    size_t len = unhex(h, n, tmp);
    if (s.len != len || memcmp(s.ptr, tmp, len) != 0)
        fail_msg("%s: decoded \"%.*s\" want \"%.*s\"", what, (int)s.len, s.ptr, (int)len, tmp);
}

/* Check rec against a "D k=v k=v" expectation line of the scripts. */
static void check_expectation(const struct vt_record *r, char *exp)
{
    uint32_t n_metrics = 0, n_labels = 0, n_emb = 0;
    bool saw_ts = false;
    for (char *tok = strtok(exp + 2, " \n"); tok; tok = strtok(NULL, " \n")) {
        char *eq = strchr(tok, '=');
        assert_non_null(eq);
        *eq = '\0';
        const char *k = tok, *v = eq + 1;
        size_t vl = strlen(v);
        if (strcmp(k, "present") == 0) {
            assert_int_equal(r->present, strtoul(v, NULL, 10));
        } else if (strcmp(k, "ts") == 0) {
            assert_int_equal(r->ts_ms, strtoll(v, NULL, 10));
            saw_ts = true;
        } else if (strcmp(k, "service") == 0) {
            assert_hex_str(r->service, v, vl, k);
        } else if (strcmp(k, "model") == 0) {
            assert_hex_str(r->model, v, vl, k);
        } else if (strcmp(k, "provider") == 0) {
            assert_hex_str(r->provider, v, vl, k);
        } else if (strcmp(k, "version") == 0) {
            assert_hex_str(r->version, v, vl, k);
        } else if (strcmp(k, "error_type") == 0) {
            assert_hex_str(r->error_type, v, vl, k);
        } else if (strcmp(k, "request_id") == 0) {
            assert_hex_str(r->request_id, v, vl, k);
        } else if (strcmp(k, "latency_ms") == 0) {
            assert_dbl_same(r->latency_ms, bits_to_double(v));
        } else if (strcmp(k, "ttft_ms") == 0) {
            assert_dbl_same(r->ttft_ms, bits_to_double(v));
        } else if (strcmp(k, "cost_usd") == 0) {
            assert_dbl_same(r->cost_usd, bits_to_double(v));
        } else if (strcmp(k, "status") == 0) {
            assert_int_equal(r->error, strcmp(v, "error") == 0);
        } else if (strcmp(k, "input_tokens") == 0) {
            assert_int_equal(r->input_tokens, strtoull(v, NULL, 10));
        } else if (strcmp(k, "output_tokens") == 0) {
            assert_int_equal(r->output_tokens, strtoull(v, NULL, 10));
        } else if (strcmp(k, "metrics") == 0 || strcmp(k, "labels") == 0) {
            bool metrics = k[0] == 'm';
            const char *p = v;
            while (*p) {
                const char *colon = strchr(p, ':'), *comma = strchr(p, ',');
                assert_non_null(colon);
                if (!comma)
                    comma = p + strlen(p);
                if (metrics) {
                    assert_true(n_metrics < r->n_metrics);
                    assert_hex_str(r->metrics[n_metrics].name, p, (size_t)(colon - p), "metric");
                    assert_dbl_same(r->metrics[n_metrics].value, bits_to_double(colon + 1));
                    n_metrics++;
                } else {
                    assert_true(n_labels < r->n_labels);
                    assert_hex_str(r->labels[n_labels].key, p, (size_t)(colon - p), "label key");
                    assert_hex_str(r->labels[n_labels].value, colon + 1,
                                   (size_t)(comma - colon - 1), "label value");
                    n_labels++;
                }
                p = *comma ? comma + 1 : comma;
            }
        } else if (strcmp(k, "embedding") == 0) {
            const char *p = v;
            while (*p) {
                assert_true(n_emb < r->n_embedding);
                assert_dbl_same(r->embedding[n_emb++], bits_to_double(p));
                const char *comma = strchr(p, ',');
                p = comma ? comma + 1 : p + strlen(p);
            }
        } else {
            fail_msg("unknown expectation key %s", k);
        }
    }
    assert_int_equal(r->n_metrics, n_metrics);
    assert_int_equal(r->n_labels, n_labels);
    assert_int_equal(r->n_embedding, n_emb);
    if (!saw_ts)
        assert_int_equal(r->ts_ms, NOW_MS);
}

/* Run `cmd`, decode each record line and check it against the next line. */
static int run_encoder_script(const char *cmd)
{
    FILE *f = popen(cmd, "r");
    assert_non_null(f);
    char *line = NULL, *exp = NULL;
    size_t lcap = 0, ecap = 0;
    ssize_t ln;
    int pairs = 0, records = 0, rejects = 0, syncs = 0;
    while ((ln = getline(&line, &lcap, f)) > 0) {
        assert_true(getline(&exp, &ecap, f) > 0);
        struct vt_record r;
        enum vt_record_kind k = decode_with(dec, line, (size_t)ln, &r); /* keeps the '\n' */
        if (exp[0] == 'D') {
            if (k != VT_RECORD_DATA)
                fail_msg("rejected (%s at %u): %s", vt_record_reject_name(r.reject),
                         r.reject_offset, line);
            check_expectation(&r, exp);
            assert_format_roundtrip(&r);
            records++;
        } else if (exp[0] == 'R') {
            exp[strcspn(exp, "\n")] = '\0';
            if (k != VT_RECORD_REJECTED || strcmp(vt_record_reject_name(r.reject), exp + 2) != 0)
                fail_msg("want reject %s, got kind %d (%s): %.300s", exp + 2, k,
                         vt_record_reject_name(r.reject), line);
            rejects++;
        } else if (exp[0] == 'S') {
            assert_int_equal(k, VT_RECORD_SYNC);
            assert_int_equal(r.sync, strtoull(exp + 2, NULL, 10));
            syncs++;
        } else {
            fail_msg("bad expectation line: %s", exp);
        }
        pairs++;
    }
    free(line);
    free(exp);
    assert_int_equal(pclose(f), 0);
    printf("# %s: %d records, %d rejects, %d sync lines checked\n", cmd, records, rejects, syncs);
    assert_true(records > 100 && rejects > 10 && syncs > 0);
    return pairs;
}

static void test_python_json_roundtrip(void **state)
{
    (void)state;
    assert_true(run_encoder_script("python3 unit/record_roundtrip.py") > 0);
}

static void test_node_json_roundtrip(void **state)
{
    (void)state;
    if (system("command -v node >/dev/null 2>&1") != 0) {
        printf("# node not on PATH: JSON.stringify round trip skipped\n");
        skip();
    }
    assert_true(run_encoder_script("node unit/record_roundtrip.js") > 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_design_example),
        cmocka_unit_test(test_defaults_and_presence),
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_reject_parse_error),
        cmocka_unit_test(test_reject_too_large),
        cmocka_unit_test(test_reject_bad_type),
        cmocka_unit_test(test_reject_non_finite),
        cmocka_unit_test(test_reject_too_many_labels),
        cmocka_unit_test(test_reject_field_too_long),
        cmocka_unit_test(test_reject_bad_timestamp),
        cmocka_unit_test(test_reject_missing_service),
        cmocka_unit_test(test_reject_too_many_metrics),
        cmocka_unit_test(test_reject_embedding_too_long),
        cmocka_unit_test(test_reject_bad_status),
        cmocka_unit_test(test_reject_bad_utf8),
        cmocka_unit_test(test_reject_duplicate_key),
        cmocka_unit_test(test_reject_out_of_range),
        cmocka_unit_test(test_ts_variants),
        cmocka_unit_test(test_sync_lines),
        cmocka_unit_test(test_escapes_and_unicode),
        cmocka_unit_test(test_labels_and_unknowns),
        cmocka_unit_test(test_custom_limits),
        cmocka_unit_test(test_format_gen_roundtrip),
        cmocka_unit_test(test_format_numbers_and_space),
        cmocka_unit_test(test_prefixes_and_corruptions),
        cmocka_unit_test(test_python_json_roundtrip),
        cmocka_unit_test(test_node_json_roundtrip),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
