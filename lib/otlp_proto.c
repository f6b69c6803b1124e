/*
 * otlp_proto.c - the protobuf decoder of OTLP trace requests: a bounded,
 * schema-aware wire walker for ExportTraceServiceRequest that feeds the
 * mapper (otlp_map.c).
 *
 * Why a hand-written walker and not protobuf-c's unpack: unpack allocates
 * every KeyValue and AnyValue of every span and recurses as deep as the input
 * nests ArrayValue/KeyValueList, so a small hostile request could exhaust the
 * stack. The walker here knows the schema, descends only into the messages it
 * needs (request -> ResourceSpans -> ScopeSpans -> Span -> KeyValue ->
 * AnyValue, one level of ArrayValue for embedding vectors), skips everything
 * else as opaque bytes, points into the input instead of copying, and so has
 * a fixed depth and no allocation per span.
 */
#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "otlp_internal.h"
#include "pb_wire.h"

/* KeyValue -> key + AnyValue. Returns false if malformed. */
static bool pb_keyvalue(struct pb b, struct vt_str *key, struct anyval *v)
{
    struct pbf f;
    int r;
    *key = (struct vt_str){"", 0};
    v->type = AV_NONE;
    v->bad = false;
    v->j = NULL;
    while ((r = pb_next(&b, &f)) == 1) {
        if (f.num == 1 && f.wt == 2)
            *key = (struct vt_str){(const char *)f.ptr, f.len};
        else if (f.num == 2 && f.wt == 2) {
            struct pb a = pb_of(&f);
            struct pbf g;
            int q;
            v->type = AV_NONE; /* a repeated value field: the last wins */
            while ((q = pb_next(&a, &g)) == 1) {
                switch (g.num) {
                case 1: if (g.wt != 2) return false;
                    v->type = AV_STRING, v->s = (struct vt_str){(const char *)g.ptr, g.len}; break;
                case 2: if (g.wt != 0) return false;
                    v->type = AV_BOOL, v->b = g.u != 0; break;
                case 3: if (g.wt != 0) return false;
                    v->type = AV_INT, v->i = (int64_t)g.u; break;
                case 4: if (g.wt != 1) return false;
                    v->type = AV_DOUBLE, memcpy(&v->d, &g.u, sizeof v->d); break;
                case 5: if (g.wt != 2) return false;
                    v->type = AV_ARRAY, v->s = (struct vt_str){(const char *)g.ptr, g.len}; break;
                case 6: if (g.wt != 2) return false;
                    v->type = AV_KVLIST; break;
                case 7: if (g.wt != 2) return false;
                    v->type = AV_BYTES, v->s = (struct vt_str){(const char *)g.ptr, g.len}; break;
                default: break;
                }
            }
            if (q < 0)
                return false;
        }
    }
    return r == 0;
}

/* The elements of an embedding vector kept as ArrayValue bytes: each a
 * double or an int AnyValue. */
int vt__otlp_embedding_pb(struct vt_otlp_decoder *d, const struct anyval *v, uint32_t *n)
{
    struct pb b = {(const uint8_t *)v->s.ptr, (const uint8_t *)v->s.ptr + v->s.len};
    struct pbf f;
    int r;
    while ((r = pb_next(&b, &f)) == 1) {
        if (f.num != 1)
            continue;
        if (f.wt != 2)
            break;
        struct pb a = pb_of(&f);
        struct pbf g;
        int q;
        bool got = false;
        double x = 0;
        while ((q = pb_next(&a, &g)) == 1) {
            if (g.num == 4 && g.wt == 1) {
                memcpy(&x, &g.u, sizeof x);
                got = true;
            } else if (g.num == 3 && g.wt == 0) {
                x = (double)(int64_t)g.u;
                got = true;
            } else if (g.num >= 1 && g.num <= 7) {
                got = false;
                break;
            }
        }
        if (q < 0 || !got) {
            vt__otlp_pend(d, q < 0 ? VT_REJECT_PARSE_ERROR : VT_REJECT_BAD_TYPE,
                          "embedding element is not a number");
            return -1;
        }
        if (vt__otlp_embedding_push(d, x, n))
            return -1;
    }
    if (r != 0) {
        vt__otlp_pend(d, VT_REJECT_PARSE_ERROR, "malformed embedding array");
        return -1;
    }
    return 0;
}

/* Map one Span message. A malformed span is rejected as parse_error. */
static void pb_span(struct vt_otlp_decoder *d, struct pb b, int64_t now_ms, vt_otlp_sink_cb sink,
                    void *data, struct vt_otlp_result *res)
{
    vt__otlp_span_begin(d);
    struct pbf f;
    int r;
    bool bad = false;
    while (!bad && (r = pb_next(&b, &f)) == 1) {
        switch (f.num) {
        case 1: /* trace_id */
            if (f.wt != 2) { bad = true; break; }
            d->trace_len = f.len <= 16 ? f.len : 0;
            memcpy(d->trace_id, f.ptr, d->trace_len);
            break;
        case 2: /* span_id */
            if (f.wt != 2) { bad = true; break; }
            d->span_len = f.len <= 8 ? f.len : 0;
            memcpy(d->span_id, f.ptr, d->span_len);
            break;
        case 7:
            if (f.wt != 1) { bad = true; break; }
            d->start_ns = f.u;
            break;
        case 8:
            if (f.wt != 1) { bad = true; break; }
            d->end_ns = f.u;
            break;
        case 9: { /* attributes */
            if (f.wt != 2) { bad = true; break; }
            struct vt_str k;
            struct anyval v;
            if (!pb_keyvalue(pb_of(&f), &k, &v)) { bad = true; break; }
            vt__otlp_span_attr(d, k.ptr, k.len, &v);
            break;
        }
        case 11: { /* events: name first (it may come after the attributes) */
            if (f.wt != 2) { bad = true; break; }
            struct pb e = pb_of(&f);
            struct pbf g;
            int q;
            struct vt_str name = {"", 0};
            while ((q = pb_next(&e, &g)) == 1)
                if (g.num == 2 && g.wt == 2)
                    name = (struct vt_str){(const char *)g.ptr, g.len};
            if (q < 0) { bad = true; break; }
            if (!(name.len == 9 || name.len == 24))
                break; /* neither "exception" nor "gen_ai.evaluation.result" */
            struct anyval gname = {0}, gscore = {0};
            e = pb_of(&f);
            while ((q = pb_next(&e, &g)) == 1) {
                if (g.num != 3 || g.wt != 2)
                    continue;
                struct vt_str k;
                struct anyval v;
                if (!pb_keyvalue(pb_of(&g), &k, &v)) { bad = true; break; }
                vt__otlp_event_attr(d, name, k.ptr, k.len, &v, &gname, &gscore);
            }
            if (!bad)
                vt__otlp_event_end(d, &gname, &gscore);
            break;
        }
        case 15: { /* status */
            if (f.wt != 2) { bad = true; break; }
            struct pb s = pb_of(&f);
            struct pbf g;
            int q;
            while ((q = pb_next(&s, &g)) == 1)
                if (g.num == 3 && g.wt == 0)
                    d->status_code = (int)(g.u & 0xff);
            if (q < 0)
                bad = true;
            break;
        }
        default:
            break;
        }
    }
    if (bad || r < 0)
        vt__otlp_span_malformed(d);
    vt__otlp_span_end(d, now_ms, sink, data, res);
}

/* Validate framing of ResourceSpans (pass 1) or map it (pass 2). */
static int pb_resource_spans(struct vt_otlp_decoder *d, struct pb rs, bool emit, int64_t now_ms,
                             vt_otlp_sink_cb sink, void *data, struct vt_otlp_result *res)
{
    struct pbf f;
    int r;
    struct pb b = rs;
    if (emit)
        vt__otlp_resource_begin(d);
    /* resource first, wherever it is */
    while ((r = pb_next(&b, &f)) == 1) {
        if (f.num != 1)
            continue;
        if (f.wt != 2)
            return -1;
        struct pb a = pb_of(&f);
        struct pbf g;
        int q;
        while ((q = pb_next(&a, &g)) == 1) {
            if (g.num != 1)
                continue;
            if (g.wt != 2)
                return -1;
            struct vt_str k;
            struct anyval v;
            if (!pb_keyvalue(pb_of(&g), &k, &v))
                return -1;
            if (emit)
                vt__otlp_resource_attr(d, k.ptr, k.len, &v);
        }
        if (q < 0)
            return -1;
    }
    if (r < 0)
        return -1;
    b = rs;
    while ((r = pb_next(&b, &f)) == 1) {
        if (f.num != 2)
            continue;
        if (f.wt != 2)
            return -1;
        struct pb ss = pb_of(&f);
        struct pbf g;
        int q;
        while ((q = pb_next(&ss, &g)) == 1) {
            if (g.num == 1 && (g.wt != 2 || !pb_valid(pb_of(&g))))
                return -1;
            if (g.num != 2)
                continue;
            if (g.wt != 2)
                return -1;
            if (emit)
                pb_span(d, pb_of(&g), now_ms, sink, data, res);
            else
                res->spans++;
        }
        if (q < 0)
            return -1;
    }
    return r;
}

static int pb_request(struct vt_otlp_decoder *d, const uint8_t *buf, size_t len, bool emit,
                      int64_t now_ms, vt_otlp_sink_cb sink, void *data,
                      struct vt_otlp_result *res)
{
    struct pb b = {buf, buf + len};
    struct pbf f;
    int r;
    while ((r = pb_next(&b, &f)) == 1) {
        if (f.num != 1)
            continue;
        if (f.wt != 2 || pb_resource_spans(d, pb_of(&f), emit, now_ms, sink, data, res) < 0)
            return -1;
    }
    return r;
}

int vt_otlp_decode_proto(struct vt_otlp_decoder *d, const uint8_t *buf, size_t len,
                         int64_t now_ms, vt_otlp_sink_cb sink, void *data,
                         struct vt_otlp_result *res)
{
    assert(d && sink && res && (buf || !len));
    vt__otlp_result_begin(d, res);
    if (!buf)
        buf = (const uint8_t *)"";
    if (pb_request(d, buf, len, false, now_ms, vt__otlp_ignore_sink, NULL, res) < 0) {
        memset(res, 0, sizeof *res);
        snprintf(res->message, sizeof res->message,
                 "malformed ExportTraceServiceRequest (protobuf framing)");
        return -EINVAL;
    }
    uint64_t spans = res->spans;
    vt__otlp_result_begin(d, res);
    int r = pb_request(d, buf, len, true, now_ms, sink, data, res);
    assert(r == 0 && res->spans == spans); /* pass 1 checked the same framing */
    (void)r, (void)spans;
    vt__otlp_result_end(d, res);
    return 0;
}
