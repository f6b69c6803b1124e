/*
 * test_otlp.c - the OTLP trace decoder (lib/otlp.h): requests are built with
 * the protobuf-c code generated from proto/opentelemetry (an encoder that is
 * not ours) and written as OTLP/JSON by hand; every emitted record is checked
 * as its canonical NDJSON line (vt_record_format_json) and must decode back
 * with the record decoder. Covers: LLM span detection (each rule and its
 * exclusions), every mapped field in both conventions, precedence, errors and
 * error types, labels (span over resource, renames, number formatting),
 * metrics (annotation / evaluation forms, gen_ai.evaluation.result events,
 * retrieval mean, attribute map, TTFT map), default / placeholder service,
 * each per-span reject reason, malformed requests refused whole, limits, the
 * response encodings and config errors.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "opentelemetry/proto/collector/trace/v1/trace_service.pb-c.h"
#include "otlp.h"
#include "record.h"

#define NOW_MS INT64_C(1700000000000)

typedef Opentelemetry__Proto__Common__V1__KeyValue KV;
typedef Opentelemetry__Proto__Common__V1__AnyValue AV;
typedef Opentelemetry__Proto__Trace__V1__Span Span;

/* ---- a scratch arena for the request builders (freed after each test) */
static void *allocs[4096];
static size_t n_allocs;
static void *A(size_t n)
{
    assert_true(n_allocs < 4096);
    void *p = calloc(1, n ? n : 1);
    assert_non_null(p);
    return allocs[n_allocs++] = p;
}
static int teardown(void **state)
{
    (void)state;
    while (n_allocs)
        free(allocs[--n_allocs]);
    return 0;
}

static AV *av_new(void)
{
    AV *v = A(sizeof *v);
    opentelemetry__proto__common__v1__any_value__init(v);
    return v;
}
static KV *kv(const char *k, AV *v)
{
    KV *x = A(sizeof *x);
    opentelemetry__proto__common__v1__key_value__init(x);
    x->key = (char *)k;
    x->value = v;
    return x;
}
static KV *S(const char *k, const char *s)
{
    AV *v = av_new();
    v->value_case = OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_STRING_VALUE;
    v->string_value = (char *)s;
    return kv(k, v);
}
static KV *I(const char *k, int64_t i)
{
    AV *v = av_new();
    v->value_case = OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_INT_VALUE;
    v->int_value = i;
    return kv(k, v);
}
static KV *D(const char *k, double d)
{
    AV *v = av_new();
    v->value_case = OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_DOUBLE_VALUE;
    v->double_value = d;
    return kv(k, v);
}
static KV *B(const char *k, int b)
{
    AV *v = av_new();
    v->value_case = OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_BOOL_VALUE;
    v->bool_value = b;
    return kv(k, v);
}
static KV *DA(const char *k, const double *xs, size_t n)
{
    AV *v = av_new();
    v->value_case = OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_ARRAY_VALUE;
    v->array_value = A(sizeof *v->array_value);
    opentelemetry__proto__common__v1__array_value__init(v->array_value);
    v->array_value->n_values = n;
    v->array_value->values = A(n * sizeof(AV *));
    for (size_t i = 0; i < n; i++) {
        AV *e = av_new();
        e->value_case = OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_DOUBLE_VALUE;
        e->double_value = xs[i];
        v->array_value->values[i] = e;
    }
    return kv(k, v);
}

#define ATTRS(...) (KV *[]){__VA_ARGS__, NULL}

static KV **list(KV **in, size_t *n)
{
    *n = 0;
    while (in[*n])
        (*n)++;
    KV **out = A(*n * sizeof *out);
    if (*n)
        memcpy(out, in, *n * sizeof *out);
    return out;
}

static uint8_t TRACE[16] = {0x5b, 0x8e, 0xff, 0xf7, 0x98, 0x03, 0x81, 0x03,
                            0xd2, 0x69, 0xb6, 0x33, 0x81, 0x3f, 0xc6, 0x0c};

/* A span starting at 1700000000.123 s, lasting dur_ms; status code. */
static Span *span(KV **attrs, double dur_ms, int status, uint8_t id)
{
    Span *s = A(sizeof *s);
    opentelemetry__proto__trace__v1__span__init(s);
    s->trace_id.data = TRACE;
    s->trace_id.len = 16;
    uint8_t *sid = A(8);
    memset(sid, 0, 8);
    sid[7] = id;
    s->span_id.data = sid;
    s->span_id.len = 8;
    s->name = "span";
    s->start_time_unix_nano = UINT64_C(1700000000123000000);
    s->end_time_unix_nano = s->start_time_unix_nano + (uint64_t)(dur_ms * 1e6);
    s->attributes = list(attrs, &s->n_attributes);
    if (status) {
        s->status = A(sizeof *s->status);
        opentelemetry__proto__trace__v1__status__init(s->status);
        s->status->code = status;
    }
    return s;
}

static void add_event(Span *s, const char *name, KV **attrs)
{
    Opentelemetry__Proto__Trace__V1__Span__Event **ev = A((s->n_events + 1) * sizeof *ev);
    if (s->n_events)
        memcpy(ev, s->events, s->n_events * sizeof *ev);
    ev[s->n_events] = A(sizeof **ev);
    opentelemetry__proto__trace__v1__span__event__init(ev[s->n_events]);
    ev[s->n_events]->name = (char *)name;
    ev[s->n_events]->attributes = list(attrs, &ev[s->n_events]->n_attributes);
    s->events = ev;
    s->n_events++;
}

/* Pack one request: one resource (attrs may be NULL) and its spans. */
static uint8_t *pack(KV **res_attrs, Span **spans, size_t n, size_t *len)
{
    Opentelemetry__Proto__Collector__Trace__V1__ExportTraceServiceRequest req =
        OPENTELEMETRY__PROTO__COLLECTOR__TRACE__V1__EXPORT_TRACE_SERVICE_REQUEST__INIT;
    Opentelemetry__Proto__Trace__V1__ResourceSpans rs =
        OPENTELEMETRY__PROTO__TRACE__V1__RESOURCE_SPANS__INIT;
    Opentelemetry__Proto__Resource__V1__Resource r =
        OPENTELEMETRY__PROTO__RESOURCE__V1__RESOURCE__INIT;
    Opentelemetry__Proto__Trace__V1__ScopeSpans ss =
        OPENTELEMETRY__PROTO__TRACE__V1__SCOPE_SPANS__INIT;
    Opentelemetry__Proto__Trace__V1__ResourceSpans *rsp = &rs;
    Opentelemetry__Proto__Trace__V1__ScopeSpans *ssp = &ss;
    if (res_attrs) {
        r.attributes = list(res_attrs, &r.n_attributes);
        rs.resource = &r;
    }
    ss.spans = spans;
    ss.n_spans = n;
    rs.scope_spans = &ssp;
    rs.n_scope_spans = 1;
    req.resource_spans = &rsp;
    req.n_resource_spans = 1;
    *len = opentelemetry__proto__collector__trace__v1__export_trace_service_request__get_packed_size(
        &req);
    uint8_t *buf = A(*len);
    opentelemetry__proto__collector__trace__v1__export_trace_service_request__pack(&req, buf);
    return buf;
}

/* ---- the sink: canonical lines of accepted records, reasons of rejected ones */
struct out {
    char lines[16][2048];
    int n;
    enum vt_record_reject rejects[16];
    char reject_service[16][64];
    int nrej;
    int refuse; /* sink returns -E2BIG */
};

static struct vt_record_decoder *redec;

static int sink(void *data, struct vt_record *rec, enum vt_record_reject reason)
{
    struct out *o = data;
    if (reason != VT_REJECT_NONE) {
        assert_true(o->nrej < 16);
        snprintf(o->reject_service[o->nrej], 64, "%.*s", (int)rec->service.len,
                 rec->service.ptr ? rec->service.ptr : "");
        o->rejects[o->nrej++] = reason;
        return 0;
    }
    if (o->refuse)
        return -E2BIG;
    assert_true(o->n < 16);
    int n = vt_record_format_json(rec, o->lines[o->n], sizeof o->lines[o->n]);
    assert_true(n > 0);
    /* what the spool replays must decode to the same line */
    struct vt_record back;
    assert_int_equal(vt_record_decode(redec, o->lines[o->n], (size_t)n, NOW_MS, &back),
                     VT_RECORD_DATA);
    char again[2048];
    back.present = rec->present;
    assert_int_equal(vt_record_format_json(&back, again, sizeof again), n);
    assert_string_equal(again, o->lines[o->n]);
    o->n++;
    return 0;
}

static struct vt_otlp_decoder *mk(const char *labels, const char *metrics)
{
    char err[256] = "";
    struct vt_otlp_decoder *d = vt_otlp_decoder_new(NULL, "dflt", labels, metrics, err, sizeof err);
    assert_non_null(d);
    return d;
}

static int run_proto(struct vt_otlp_decoder *d, KV **res, Span **spans, size_t n, struct out *o,
                     struct vt_otlp_result *r)
{
    size_t len;
    uint8_t *buf = pack(res, spans, n, &len);
    memset(o, 0, sizeof *o);
    return vt_otlp_decode_proto(d, buf, len, NOW_MS, sink, o, r);
}

#define ID "5b8efff798038103d269b633813fc60c-00000000000000"

/* ---- tests */

static void genai_chat(void **state)
{
    (void)state;
    struct vt_otlp_decoder *d = mk("tier,deployment.environment=env", NULL);
    Span *s = span(ATTRS(S("gen_ai.operation.name", "chat"), S("gen_ai.provider.name", "openai"),
                         S("gen_ai.system", "ignored-older-name"),
                         S("gen_ai.request.model", "gpt-4o"),
                         S("gen_ai.response.model", "gpt-4o-2024-08-06"),
                         I("gen_ai.usage.input_tokens", 512), I("gen_ai.usage.output_tokens", 128),
                         D("gen_ai.server.time_to_first_token", 0.125),
                         D("evaluation.relevance.score", 0.9), S("tier", "gold")),
                   812.5, 0, 1);
    struct out o;
    struct vt_otlp_result r;
    assert_int_equal(run_proto(d, ATTRS(S("service.name", "bot"), S("tier", "silver"),
                                        S("deployment.environment", "prod")),
                               (Span *[]){s}, 1, &o, &r),
                     0);
    assert_int_equal(r.spans, 1);
    assert_int_equal(r.accepted, 1);
    assert_int_equal(r.rejected + r.ignored, 0);
    assert_string_equal(r.message, "");
    assert_int_equal(o.n, 1);
    assert_string_equal(o.lines[0],
                        "{\"ts\":1700000000123,\"service\":\"bot\",\"model\":\"gpt-4o-2024-08-06\","
                        "\"provider\":\"openai\",\"latency_ms\":812.5,\"ttft_ms\":125,"
                        "\"status\":\"ok\",\"input_tokens\":512,\"output_tokens\":128,"
                        "\"metrics\":{\"relevance\":0.9},"
                        "\"labels\":{\"env\":\"prod\",\"tier\":\"gold\"},"
                        "\"request_id\":\"" ID "01\"}");
    vt_otlp_decoder_free(d);
}

static void old_names_error_and_exception_event(void **state)
{
    (void)state;
    struct vt_otlp_decoder *d = mk(NULL, NULL);
    Span *a = span(ATTRS(S("gen_ai.system", "anthropic"), S("gen_ai.request.model", "claude"),
                         I("gen_ai.usage.prompt_tokens", 100),
                         D("gen_ai.usage.completion_tokens", 20.0),
                         S("error.type", "RateLimitError")),
                   1500, 2, 2);
    add_event(a, "exception", ATTRS(S("exception.type", "NotThisOne")));
    Span *b = span(ATTRS(S("openinference.span.kind", "EMBEDDING"),
                         S("embedding.model_name", "te3"), S("llm.system", "openai"),
                         DA("embedding.embeddings.0.embedding.vector",
                            (double[]){0.25, -0.5, 1}, 3)),
                   95, 2, 3);
    add_event(b, "exception", ATTRS(S("exception.type", "TimeoutError"),
                                    S("exception.message", "x")));
    Span *c = span(ATTRS(S("gen_ai.request.model", "m"), S("error.type", "ignored-when-ok")),
                   10, 1, 4);
    struct out o;
    struct vt_otlp_result r;
    assert_int_equal(run_proto(d, NULL, (Span *[]){a, b, c}, 3, &o, &r), 0);
    assert_int_equal(r.accepted, 3);
    assert_string_equal(o.lines[0],
                        "{\"ts\":1700000000123,\"model\":\"claude\",\"provider\":\"anthropic\","
                        "\"latency_ms\":1500,\"status\":\"error\",\"error_type\":\"RateLimitError\","
                        "\"input_tokens\":100,\"output_tokens\":20,\"request_id\":\"" ID "02\"}");
    assert_string_equal(o.lines[1],
                        "{\"ts\":1700000000123,\"model\":\"te3\",\"provider\":\"openai\","
                        "\"latency_ms\":95,\"status\":\"error\",\"error_type\":\"TimeoutError\","
                        "\"embedding\":[0.25,-0.5,1],\"request_id\":\"" ID "03\"}");
    assert_string_equal(o.lines[2], "{\"ts\":1700000000123,\"model\":\"m\",\"latency_ms\":10,"
                                    "\"status\":\"ok\",\"request_id\":\"" ID "04\"}");
    vt_otlp_decoder_free(d);
}

static void openinference_llm_metrics(void **state)
{
    (void)state;
    struct vt_otlp_decoder *d =
        mk("session.id=session", "llm.token_count.total=total_tokens,my.ttft=ttft_ms");
    Span *s = span(ATTRS(S("openinference.span.kind", "LLM"), S("llm.model_name", "mistral"),
                         S("llm.provider", "mistralai"), S("llm.system", "mistral"),
                         I("llm.token_count.prompt", 300), I("llm.token_count.completion", 50),
                         I("llm.token_count.total", 350), D("llm.cost.prompt", 1),
                         D("llm.cost.total", 0.0042), S("annotation.name", "helpfulness"),
                         D("annotation.score", 0.75), S("evaluation.name", "tone"),
                         I("evaluation.score", 1), D("annotation.hallucination.score", 0),
                         D("retrieval.documents.0.document.score", 0.8),
                         D("retrieval.documents.1.document.score", 0.6),
                         D("my.ttft", 42.5), I("session.id", 7)),
                   640, 0, 5);
    add_event(s, "gen_ai.evaluation.result",
              ATTRS(S("gen_ai.evaluation.name", "faithfulness"),
                    D("gen_ai.evaluation.score.value", 0.5)));
    struct out o;
    struct vt_otlp_result r;
    assert_int_equal(run_proto(d, ATTRS(S("service.name", "unknown_service:node")),
                               (Span *[]){s}, 1, &o, &r), 0);
    assert_int_equal(r.accepted, 1);
    /* placeholder service -> the default (SERVICE not present: replays as default) */
    assert_string_equal(o.lines[0],
                        "{\"ts\":1700000000123,\"model\":\"mistral\",\"provider\":\"mistralai\","
                        "\"latency_ms\":640,\"ttft_ms\":42.5,\"status\":\"ok\","
                        "\"input_tokens\":300,\"output_tokens\":50,\"cost_usd\":0.0042,"
                        "\"metrics\":{\"faithfulness\":0.5,\"hallucination\":0,"
                        "\"helpfulness\":0.75,\"retrieval_score\":0.7,\"tone\":1,"
                        "\"total_tokens\":350},\"labels\":{\"session\":\"7\"},"
                        "\"request_id\":\"" ID "05\"}");
    vt_otlp_decoder_free(d);
}

static void detection(void **state)
{
    (void)state;
    struct vt_otlp_decoder *d = mk(NULL, NULL);
    Span *sp[] = {
        span(ATTRS(S("openinference.span.kind", "LLM")), 1, 0, 1),            /* llm */
        span(ATTRS(S("openinference.span.kind", "embedding")), 1, 0, 2),      /* llm */
        span(ATTRS(S("openinference.span.kind", "CHAIN"), S("llm.model_name", "x")), 1, 0, 3),
        span(ATTRS(S("gen_ai.operation.name", "text_completion")), 1, 0, 4), /* llm */
        span(ATTRS(S("gen_ai.operation.name", "generate_content")), 1, 0, 5), /* llm */
        span(ATTRS(S("gen_ai.operation.name", "embeddings")), 1, 0, 6),       /* llm */
        span(ATTRS(S("gen_ai.operation.name", "invoke_agent"),
                   S("gen_ai.request.model", "x")), 1, 0, 7),
        span(ATTRS(S("gen_ai.operation.name", "execute_tool")), 1, 0, 8),
        span(ATTRS(S("llm.model_name", "x")), 1, 0, 9),                        /* llm */
        span(ATTRS(S("gen_ai.request.model", "x")), 1, 0, 10),                 /* llm */
        span(ATTRS(S("gen_ai.response.model", "x")), 1, 0, 11),
        span(ATTRS(S("http.request.method", "GET"), I("gen_ai.usage.input_tokens", -1)), 1, 0,
             12), /* not LLM: its bad attribute does not matter */
    };
    struct out o;
    struct vt_otlp_result r;
    assert_int_equal(run_proto(d, NULL, sp, 12, &o, &r), 0);
    assert_int_equal(r.spans, 12);
    assert_int_equal(r.accepted, 7);
    assert_int_equal(r.ignored, 5);
    assert_int_equal(r.rejected, 0);
    vt_otlp_decoder_free(d);
}

static void rejects(void **state)
{
    (void)state;
    struct vt_otlp_decoder *d = mk("tier", NULL);
    char longs[300];
    memset(longs, 'x', sizeof longs - 1);
    longs[299] = 0;
    Span *neg = span(ATTRS(S("gen_ai.request.model", "m"), I("gen_ai.usage.input_tokens", -5)),
                     1, 0, 1);
    Span *frac = span(ATTRS(S("gen_ai.request.model", "m"),
                            D("gen_ai.usage.output_tokens", 1.5)), 1, 0, 2);
    Span *nan = span(ATTRS(S("gen_ai.request.model", "m"), D("llm.cost.total", NAN)), 1, 0, 3);
    Span *typ = span(ATTRS(S("gen_ai.request.model", "m"), S("gen_ai.usage.input_tokens", "5")),
                     1, 0, 4);
    Span *lng = span(ATTRS(S("gen_ai.request.model", longs)), 1, 0, 5);
    Span *utf = span(ATTRS(S("gen_ai.request.model", "m"), S("gen_ai.provider.name", "a\xff")),
                     1, 0, 6);
    Span *back = span(ATTRS(S("gen_ai.request.model", "m")), 1, 0, 7);
    back->end_time_unix_nano = back->start_time_unix_nano - 1;
    Span *lbl = span(ATTRS(S("gen_ai.request.model", "m"), DA("tier", (double[]){1}, 1)), 1, 0, 8);
    Span *ok = span(ATTRS(S("gen_ai.request.model", "m")), 1, 0, 9);
    /* the largest fixed64 nanosecond time is in year 2554: always a valid ts */
    Span *ts = span(ATTRS(S("gen_ai.request.model", "m")), 1, 0, 10);
    ts->start_time_unix_nano = UINT64_MAX - 10;
    ts->end_time_unix_nano = UINT64_MAX;
    struct out o;
    struct vt_otlp_result r;
    assert_int_equal(run_proto(d, ATTRS(S("service.name", "svc")),
                               (Span *[]){neg, frac, nan, typ, lng, utf, back, lbl, ok, ts}, 10,
                               &o, &r), 0);
    assert_int_equal(r.accepted, 2);
    assert_int_equal(r.rejected, 8);
    assert_int_equal(o.nrej, 8);
    assert_non_null(strstr(o.lines[1], "\"ts\":18446744073709,"));
    enum vt_record_reject want[] = {VT_REJECT_OUT_OF_RANGE, VT_REJECT_OUT_OF_RANGE,
                                    VT_REJECT_NON_FINITE, VT_REJECT_BAD_TYPE,
                                    VT_REJECT_FIELD_TOO_LONG, VT_REJECT_BAD_UTF8,
                                    VT_REJECT_OUT_OF_RANGE, VT_REJECT_BAD_TYPE};
    for (int i = 0; i < 8; i++) {
        assert_int_equal(o.rejects[i], want[i]);
        assert_string_equal(o.reject_service[i], "svc"); /* attributed to its service */
    }
    assert_int_equal(r.first_reason, VT_REJECT_OUT_OF_RANGE);
    assert_string_equal(r.message, "8 of 10 spans rejected; first: span 0000000000000001: "
                                   "out_of_range (negative token count)");
    /* a sink refusal counts as rejected too */
    assert_int_equal(run_proto(d, NULL, (Span *[]){ok}, 1, &o, &r), 0);
    o.refuse = 1;
    size_t len;
    uint8_t *buf = pack(NULL, (Span *[]){ok}, 1, &len);
    assert_int_equal(vt_otlp_decode_proto(d, buf, len, NOW_MS, sink, &o, &r), 0);
    assert_int_equal(r.accepted, 0);
    assert_int_equal(r.rejected, 1);
    assert_int_equal(r.first_reason, VT_REJECT_TOO_LARGE);
    vt_otlp_decoder_free(d);
}

static void limits(void **state)
{
    (void)state;
    struct vt_record_limits lim;
    vt_record_limits_default(&lim);
    lim.max_metrics = 2;
    lim.max_labels = 1;
    lim.max_embedding = 2;
    struct vt_otlp_decoder *d = vt_otlp_decoder_new(&lim, NULL, "a,b", NULL, NULL, 0);
    assert_non_null(d);
    Span *m2 = span(ATTRS(S("llm.model_name", "m"), D("annotation.x.score", 1),
                          D("annotation.y.score", 2), D("annotation.x.score", 3)), 1, 0, 1);
    Span *m3 = span(ATTRS(S("llm.model_name", "m"), D("annotation.x.score", 1),
                          D("annotation.y.score", 2), D("annotation.z.score", 3)), 1, 0, 2);
    Span *l2 = span(ATTRS(S("llm.model_name", "m"), S("a", "1"), B("b", 1)), 1, 0, 3);
    Span *e3 = span(ATTRS(S("llm.model_name", "m"),
                          DA("embedding.embeddings.0.embedding.vector", (double[]){1, 2, 3}, 3)),
                    1, 0, 4);
    Span *nosvc = span(ATTRS(S("llm.model_name", "m")), 1, 0, 5);
    struct out o;
    struct vt_otlp_result r;
    assert_int_equal(run_proto(d, ATTRS(S("service.name", "s")), (Span *[]){m2, m3, l2, e3}, 4,
                               &o, &r), 0);
    assert_int_equal(r.accepted, 1);
    assert_non_null(strstr(o.lines[0], "\"metrics\":{\"x\":3,\"y\":2}")); /* later wins */
    enum vt_record_reject want[] = {VT_REJECT_TOO_MANY_METRICS, VT_REJECT_TOO_MANY_LABELS,
                                    VT_REJECT_EMBEDDING_TOO_LONG};
    assert_int_equal(o.nrej, 3);
    for (int i = 0; i < 3; i++)
        assert_int_equal(o.rejects[i], want[i]);
    /* no service.name and no default service */
    assert_int_equal(run_proto(d, NULL, (Span *[]){nosvc}, 1, &o, &r), 0);
    assert_int_equal(o.rejects[0], VT_REJECT_MISSING_SERVICE);
    vt_otlp_decoder_free(d);
}

static void malformed_requests(void **state)
{
    (void)state;
    struct vt_otlp_decoder *d = mk(NULL, NULL);
    struct out o = {0};
    struct vt_otlp_result r;
    static const struct {
        const char *b;
        size_t n;
    } bad[] = {
        {"\x0a\x05\x12\x03\x12\x01", 6},   /* ScopeSpans length past its parent */
        {"\x0a", 1},                       /* truncated */
        {"\x0b\x00", 2},                   /* group wire type */
        {"\x08\x01", 2},                   /* resource_spans as a varint */
        {"\x0a\x02\x0a\x01", 4},           /* Resource truncated inside */
        {"\x00\x00", 2},                   /* field number 0 */
        {"\x0a\x0b\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01", 13}, /* varint too long */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(vt_otlp_decode_proto(d, (const uint8_t *)bad[i].b, bad[i].n, NOW_MS,
                                              sink, &o, &r), -EINVAL);
        assert_non_null(strstr(r.message, "malformed"));
    }
    assert_int_equal(o.n + o.nrej, 0); /* nothing emitted */
    /* a good span and a malformed one in intact frames: partial success */
    Span *ok = span(ATTRS(S("llm.model_name", "m")), 1, 0, 1);
    size_t len;
    uint8_t *good = pack(NULL, (Span *[]){ok}, 1, &len);
    /* request{1: rs{2: ss{2: span(ok), 2: span(garbage)}}} built by hand around `good` */
    uint8_t buf[512];
    assert_true(len < 200);
    /* good = 0a L1 [12 L2 [12 L3 span...]] ; append a bad span "12 02 ff ff" */
    size_t o1 = 0;
    uint8_t inner[400];
    size_t spl = good[4 + 0] ? 0 : 0;
    (void)spl;
    /* parse the lengths of the generated request (all < 128 bytes here) */
    assert_int_equal(good[0], 0x0a);
    assert_int_equal(good[2], 0x12);
    assert_int_equal(good[4], 0x12);
    size_t span_len = good[5];
    memcpy(inner, good + 4, 2 + span_len);          /* 12 L span */
    memcpy(inner + 2 + span_len, "\x12\x02\x38\x01", 4); /* span with field 7 as varint */
    size_t ss_len = 2 + span_len + 4;
    buf[o1++] = 0x0a;
    buf[o1++] = (uint8_t)(2 + ss_len);
    buf[o1++] = 0x12;
    buf[o1++] = (uint8_t)ss_len;
    memcpy(buf + o1, inner, ss_len);
    o1 += ss_len;
    memset(&o, 0, sizeof o);
    assert_int_equal(vt_otlp_decode_proto(d, buf, o1, NOW_MS, sink, &o, &r), 0);
    assert_int_equal(r.spans, 2);
    assert_int_equal(r.accepted, 1);
    assert_int_equal(r.rejected, 1);
    assert_int_equal(o.rejects[0], VT_REJECT_PARSE_ERROR);
    /* empty request: fine, nothing in it */
    assert_int_equal(vt_otlp_decode_proto(d, NULL, 0, NOW_MS, sink, &o, &r), 0);
    assert_int_equal(r.spans, 0);
    vt_otlp_decoder_free(d);
}

static void json_request(void **state)
{
    (void)state;
    struct vt_otlp_decoder *d = mk("tier", "x.ttft=ttft_s");
    const char *js =
        "{\"resourceSpans\":[{\"resource\":{\"attributes\":["
        "{\"key\":\"service.name\",\"value\":{\"stringValue\":\"bot\"}},"
        "{\"key\":\"tier\",\"value\":{\"intValue\":\"3\"}}]},"
        "\"scopeSpans\":[{\"scope\":{\"name\":\"s\"},\"spans\":["
        "{\"traceId\":\"5B8EFFF798038103D269B633813FC60C\",\"spanId\":\"0000000000000001\","
        "\"startTimeUnixNano\":\"1700000000123000000\",\"endTimeUnixNano\":1700000000935500000,"
        "\"kind\":3,\"attributes\":["
        "{\"key\":\"gen_ai.operation.name\",\"value\":{\"stringValue\":\"chat\"}},"
        "{\"key\":\"gen_ai.request.model\",\"value\":{\"stringValue\":\"gpt-4o\"}},"
        "{\"key\":\"gen_ai.usage.input_tokens\",\"value\":{\"intValue\":\"512\"}},"
        "{\"key\":\"gen_ai.usage.output_tokens\",\"value\":{\"intValue\":128}},"
        "{\"key\":\"x.ttft\",\"value\":{\"doubleValue\":0.25}},"
        "{\"key\":\"embedding.embeddings.0.embedding.vector\",\"value\":{\"arrayValue\":"
        "{\"values\":[{\"doubleValue\":0.5},{\"intValue\":\"2\"}]}}}],"
        "\"events\":[{\"name\":\"exception\",\"attributes\":[{\"key\":\"exception.type\","
        "\"value\":{\"stringValue\":\"Boom\"}}]}],"
        "\"status\":{\"code\":2}},"
        "{\"spanId\":\"02\",\"attributes\":[{\"key\":\"http.method\",\"value\":"
        "{\"stringValue\":\"GET\"}}]},"
        "{\"attributes\":[{\"key\":\"llm.model_name\",\"value\":{\"stringValue\":\"m\"}},"
        "{\"key\":\"llm.cost.total\",\"value\":{\"doubleValue\":\"NaN\"}}]},"
        "{\"attributes\":[{\"key\":\"llm.model_name\",\"value\":{\"stringValue\":\"m\"}}],"
        "\"status\":{\"code\":\"STATUS_CODE_ERROR\"}},"
        "7"
        "]}]}]}";
    struct out o = {0};
    struct vt_otlp_result r;
    assert_int_equal(vt_otlp_decode_json(d, js, strlen(js), NOW_MS, sink, &o, &r), 0);
    assert_int_equal(r.spans, 5);
    assert_int_equal(r.accepted, 2);
    assert_int_equal(r.ignored, 1);
    assert_int_equal(r.rejected, 2);
    assert_int_equal(o.rejects[0], VT_REJECT_NON_FINITE);
    assert_int_equal(o.rejects[1], VT_REJECT_PARSE_ERROR);
    assert_string_equal(o.lines[0],
                        "{\"ts\":1700000000123,\"service\":\"bot\",\"model\":\"gpt-4o\","
                        "\"latency_ms\":812.5,\"ttft_ms\":250,\"status\":\"error\","
                        "\"error_type\":\"Boom\",\"input_tokens\":512,\"output_tokens\":128,"
                        "\"labels\":{\"tier\":\"3\"},\"embedding\":[0.5,2],"
                        "\"request_id\":\"" ID "01\"}");
    assert_string_equal(o.lines[1], "{\"service\":\"bot\",\"model\":\"m\","
                                    "\"status\":\"error\",\"labels\":{\"tier\":\"3\"}}");
    static const char *const bad[] = {"", "{", "[]", "{\"resourceSpans\":{}}",
                                      "{\"resourceSpans\":[1]}",
                                      "{\"resourceSpans\":[{\"scopeSpans\":[{\"spans\":5}]}]}",
                                      "{\"resourceSpans\":[{\"resource\":{\"attributes\":[1]}}]}"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        memset(&o, 0, sizeof o);
        assert_int_equal(vt_otlp_decode_json(d, bad[i], strlen(bad[i]), NOW_MS, sink, &o, &r),
                         -EINVAL);
        assert_int_equal(o.n + o.nrej, 0);
        assert_true(r.message[0] != 0);
    }
    assert_int_equal(vt_otlp_decode_json(d, "{}", 2, NOW_MS, sink, &o, &r), 0);
    assert_int_equal(r.spans, 0);
    vt_otlp_decoder_free(d);
}

static void responses(void **state)
{
    (void)state;
    struct vt_otlp_result r;
    memset(&r, 0, sizeof r);
    uint8_t buf[512];
    char js[512];
    assert_int_equal(vt_otlp_response_proto(&r, buf, sizeof buf), 0); /* partial_success unset */
    assert_int_equal(vt_otlp_response_json(&r, js, sizeof js), 2);
    assert_string_equal(js, "{}");
    r.rejected = 3;
    snprintf(r.message, sizeof r.message, "3 \"bad\"");
    int n = vt_otlp_response_proto(&r, buf, sizeof buf);
    assert_true(n > 0);
    Opentelemetry__Proto__Collector__Trace__V1__ExportTraceServiceResponse *resp =
        opentelemetry__proto__collector__trace__v1__export_trace_service_response__unpack(
            NULL, (size_t)n, buf);
    assert_non_null(resp);
    assert_non_null(resp->partial_success);
    assert_int_equal(resp->partial_success->rejected_spans, 3);
    assert_string_equal(resp->partial_success->error_message, "3 \"bad\"");
    opentelemetry__proto__collector__trace__v1__export_trace_service_response__free_unpacked(
        resp, NULL);
    vt_otlp_response_json(&r, js, sizeof js);
    assert_string_equal(js, "{\"partialSuccess\":{\"rejectedSpans\":\"3\","
                            "\"errorMessage\":\"3 \\\"bad\\\"\"}}");
    assert_int_equal(vt_otlp_response_proto(&r, buf, 3), -ENOSPC);
    n = vt_otlp_status_proto(8, "too big", buf, sizeof buf);
    assert_int_equal(n, 2 + 2 + 7);
    assert_memory_equal(buf, "\x08\x08\x12\x07too big", 11);
    vt_otlp_status_json(3, "x", js, sizeof js);
    assert_string_equal(js, "{\"code\":3,\"message\":\"x\"}");
}

static void config_errors(void **state)
{
    (void)state;
    char err[256];
    static const char *const bad_labels[] = {",", "a=", "=b", "a,a", "a=x,b=x"};
    for (size_t i = 0; i < sizeof bad_labels / sizeof bad_labels[0]; i++) {
        err[0] = 0;
        errno = 0;
        assert_null(vt_otlp_decoder_new(NULL, NULL, bad_labels[i], NULL, err, sizeof err));
        assert_int_equal(errno, EINVAL);
        assert_non_null(strstr(err, "otlp labels"));
    }
    static const char *const bad_metrics[] = {"a", "a=", "a=x,a=y"};
    for (size_t i = 0; i < sizeof bad_metrics / sizeof bad_metrics[0]; i++) {
        err[0] = 0;
        assert_null(vt_otlp_decoder_new(NULL, NULL, NULL, bad_metrics[i], err, sizeof err));
        assert_non_null(strstr(err, "otlp metrics"));
    }
    struct vt_otlp_decoder *d = vt_otlp_decoder_new(NULL, NULL, " a = b , c ", "x=y", err,
                                                    sizeof err);
    assert_non_null(d);
    vt_otlp_decoder_free(d);
}

int main(void)
{
    redec = vt_record_decoder_new(NULL, "dflt");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(genai_chat, teardown),
        cmocka_unit_test_teardown(old_names_error_and_exception_event, teardown),
        cmocka_unit_test_teardown(openinference_llm_metrics, teardown),
        cmocka_unit_test_teardown(detection, teardown),
        cmocka_unit_test_teardown(rejects, teardown),
        cmocka_unit_test_teardown(limits, teardown),
        cmocka_unit_test_teardown(malformed_requests, teardown),
        cmocka_unit_test_teardown(json_request, teardown),
        cmocka_unit_test_teardown(responses, teardown),
        cmocka_unit_test_teardown(config_errors, teardown),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    vt_record_decoder_free(redec);
    return rc;
}
