/*
 * otlp_json.c - the OTLP/JSON decoder of trace requests: jansson parses the
 * request into one tree, and the walk here checks its structure and feeds
 * the mapper (otlp_map.c) exactly as the protobuf walker does, so that both
 * encodings map identically.
 *
 * OTLP/JSON is the proto3 JSON mapping with OTLP's exceptions: ids are hex
 * (not base64), 64-bit integers may be strings, enums may be names.
 */
#include <assert.h>
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "otlp_internal.h"

/* A 64-bit integer: a JSON integer or a decimal string (the OTLP encoding). */
static bool json_u64(const json_t *j, uint64_t *out)
{
    if (json_is_integer(j)) {
        json_int_t v = json_integer_value(j);
        if (v < 0)
            return false;
        *out = (uint64_t)v;
        return true;
    }
    if (json_is_real(j)) {
        double v = json_real_value(j);
        if (!(v >= 0 && v < 18446744073709551616.0))
            return false;
        *out = (uint64_t)v;
        return true;
    }
    if (json_is_string(j)) {
        const char *s = json_string_value(j);
        uint64_t v = 0;
        if (!*s)
            return false;
        for (; *s; s++) {
            if (*s < '0' || *s > '9' || v > (UINT64_MAX - 9) / 10)
                return false;
            v = v * 10 + (uint64_t)(*s - '0');
        }
        *out = v;
        return true;
    }
    return false;
}

static bool json_i64(const json_t *j, int64_t *out)
{
    if (json_is_integer(j)) {
        *out = (int64_t)json_integer_value(j);
        return true;
    }
    if (json_is_string(j)) {
        const char *s = json_string_value(j);
        bool neg = *s == '-';
        uint64_t v = 0;
        s += neg;
        if (!*s)
            return false;
        for (; *s; s++) {
            if (*s < '0' || *s > '9' || v > (UINT64_C(9223372036854775808) - 9) / 10)
                return false;
            v = v * 10 + (uint64_t)(*s - '0');
        }
        if (v > (uint64_t)INT64_MAX + neg)
            return false;
        *out = neg ? (int64_t)(0 - v) : (int64_t)v;
        return true;
    }
    return false;
}

static void json_anyval(const json_t *val, struct anyval *v)
{
    memset(v, 0, sizeof *v);
    if (!json_is_object(val))
        return;
    const char *key;
    const json_t *x;
    json_object_foreach((json_t *)val, key, x) {
        if (!strcmp(key, "stringValue")) {
            v->type = AV_STRING;
            if (json_is_string(x))
                v->s = (struct vt_str){json_string_value(x), json_string_length(x)};
            else
                v->bad = true;
        } else if (!strcmp(key, "boolValue")) {
            v->type = AV_BOOL;
            v->b = json_is_true(x);
            v->bad = !json_is_boolean(x);
        } else if (!strcmp(key, "intValue")) {
            v->type = AV_INT;
            v->bad = !json_i64(x, &v->i);
        } else if (!strcmp(key, "doubleValue")) {
            v->type = AV_DOUBLE;
            if (json_is_number(x))
                v->d = json_number_value(x);
            else if (json_is_string(x)) { /* proto3 JSON: "NaN", "Infinity", "1.5" */
                const char *s = json_string_value(x);
                char *end;
                v->d = !strcmp(s, "NaN") ? NAN
                       : !strcmp(s, "Infinity") ? INFINITY
                       : !strcmp(s, "-Infinity") ? -INFINITY
                                                 : strtod(s, &end);
                if (strcmp(s, "NaN") && strcmp(s, "Infinity") && strcmp(s, "-Infinity") &&
                    (!*s || *end))
                    v->bad = true;
            } else
                v->bad = true;
        } else if (!strcmp(key, "arrayValue")) {
            v->type = AV_ARRAY;
            const json_t *a = json_is_object(x) ? json_object_get(x, "values") : NULL;
            if (a && json_is_array(a))
                v->j = a;
            else if (json_is_object(x) && !a)
                v->j = NULL, v->s = (struct vt_str){"", 0}; /* empty array */
            else
                v->bad = true;
        } else if (!strcmp(key, "kvlistValue")) {
            v->type = AV_KVLIST;
        } else if (!strcmp(key, "bytesValue")) {
            v->type = AV_BYTES;
        }
    }
}

/* An attributes array -> fn per attribute. False if malformed. */
/* The elements of an embedding vector kept as a JSON "values" array: each an
 * AnyValue object with a doubleValue or an intValue. */
int vt__otlp_embedding_json(struct vt_otlp_decoder *d, const struct anyval *v, uint32_t *n)
{
    size_t i;
    const json_t *el;
    json_array_foreach(v->j, i, el) {
        const json_t *dv = json_is_object(el) ? json_object_get(el, "doubleValue") : NULL;
        const json_t *iv = json_is_object(el) ? json_object_get(el, "intValue") : NULL;
        double x;
        if (dv && json_is_number(dv))
            x = json_number_value(dv);
        else if (iv && json_is_integer(iv))
            x = (double)json_integer_value(iv);
        else if (iv && json_is_string(iv))
            x = strtod(json_string_value(iv), NULL);
        else {
            vt__otlp_pend(d, VT_REJECT_BAD_TYPE, "embedding element is not a number");
            return -1;
        }
        if (vt__otlp_embedding_push(d, x, n))
            return -1;
    }
    return 0;
}

static bool json_attrs(const json_t *arr, void (*fn)(void *, const char *, size_t,
                                                     const struct anyval *),
                       void *ctx)
{
    if (!arr)
        return true;
    if (!json_is_array(arr))
        return false;
    size_t i;
    const json_t *kv;
    json_array_foreach(arr, i, kv) {
        const json_t *k = json_is_object(kv) ? json_object_get(kv, "key") : NULL;
        if (!k || !json_is_string(k))
            return false;
        struct anyval v;
        json_anyval(json_object_get(kv, "value"), &v);
        if (fn)
            fn(ctx, json_string_value(k), json_string_length(k), &v);
    }
    return true;
}

static void cb_span_attr(void *ctx, const char *k, size_t n, const struct anyval *v)
{
    vt__otlp_span_attr(ctx, k, n, v);
}
static void cb_resource_attr(void *ctx, const char *k, size_t n, const struct anyval *v)
{
    vt__otlp_resource_attr(ctx, k, n, v);
}

struct ev_ctx {
    struct vt_otlp_decoder *d;
    struct vt_str name;
    struct anyval gname, gscore;
};
static void cb_event_attr(void *ctx, const char *k, size_t n, const struct anyval *v)
{
    struct ev_ctx *e = ctx;
    vt__otlp_event_attr(e->d, e->name, k, n, v, &e->gname, &e->gscore);
}

/* Hex id -> bytes; false if not hex or too long. */
static bool json_hexid(const json_t *j, uint8_t *out, size_t max, size_t *len)
{
    *len = 0;
    if (!j)
        return true;
    if (!json_is_string(j))
        return false;
    const char *s = json_string_value(j);
    size_t n = json_string_length(j);
    if (n % 2 || n / 2 > max)
        return false;
    for (size_t i = 0; i < n; i += 2) {
        int v = 0;
        for (int h = 0; h < 2; h++) {
            int c = (unsigned char)s[i + h], x;
            if (c >= '0' && c <= '9')
                x = c - '0';
            else if ((c | 0x20) >= 'a' && (c | 0x20) <= 'f')
                x = (c | 0x20) - 'a' + 10;
            else
                return false;
            v = v << 4 | x;
        }
        out[i / 2] = (uint8_t)v;
    }
    *len = n / 2;
    return true;
}

static void json_span(struct vt_otlp_decoder *d, const json_t *sp, int64_t now_ms,
                      vt_otlp_sink_cb sink, void *data, struct vt_otlp_result *res)
{
    vt__otlp_span_begin(d);
    bool bad = !json_is_object(sp);
    const json_t *x;
    if (!bad) {
        size_t tl, sl;
        if (json_hexid(json_object_get(sp, "traceId"), d->trace_id, 16, &tl) &&
            json_hexid(json_object_get(sp, "spanId"), d->span_id, 8, &sl))
            d->trace_len = tl, d->span_len = sl;
        else
            d->trace_len = d->span_len = 0; /* not hex: no request id */
        if ((x = json_object_get(sp, "startTimeUnixNano")) && !json_u64(x, &d->start_ns))
            bad = true;
        if ((x = json_object_get(sp, "endTimeUnixNano")) && !json_u64(x, &d->end_ns))
            bad = true;
        if (!json_attrs(json_object_get(sp, "attributes"), cb_span_attr, d))
            bad = true;
        x = json_object_get(sp, "events");
        if (x && !json_is_array(x))
            bad = true;
        size_t i;
        const json_t *ev;
        if (x && !bad)
            json_array_foreach(x, i, ev) {
                if (!json_is_object(ev)) {
                    bad = true;
                    break;
                }
                const json_t *nm = json_object_get(ev, "name");
                struct ev_ctx e = {d, {"", 0}, {0}, {0}};
                if (nm && json_is_string(nm))
                    e.name = (struct vt_str){json_string_value(nm), json_string_length(nm)};
                if (!json_attrs(json_object_get(ev, "attributes"), cb_event_attr, &e)) {
                    bad = true;
                    break;
                }
                vt__otlp_event_end(d, &e.gname, &e.gscore);
            }
        if ((x = json_object_get(sp, "status"))) {
            const json_t *c = json_is_object(x) ? json_object_get(x, "code") : NULL;
            if (!json_is_object(x))
                bad = true;
            else if (c && json_is_integer(c))
                d->status_code = (int)(json_integer_value(c) & 0xff);
            else if (c && json_is_string(c))
                d->status_code = !strcmp(json_string_value(c), "STATUS_CODE_ERROR") ? 2
                                 : !strcmp(json_string_value(c), "STATUS_CODE_OK") ? 1
                                                                                   : 0;
            else if (c)
                bad = true;
        }
    }
    if (bad)
        vt__otlp_span_malformed(d);
    vt__otlp_span_end(d, now_ms, sink, data, res);
}

/* Pass 1 (emit false): framing; pass 2: map. Returns 0 or -1. */
static int json_request(struct vt_otlp_decoder *d, const json_t *root, bool emit, int64_t now_ms,
                        vt_otlp_sink_cb sink, void *data, struct vt_otlp_result *res)
{
    if (!json_is_object(root))
        return -1;
    const json_t *rss = json_object_get(root, "resourceSpans");
    if (!rss)
        return 0;
    if (!json_is_array(rss))
        return -1;
    size_t i, j, k;
    const json_t *rs, *ss, *sp;
    json_array_foreach(rss, i, rs) {
        if (!json_is_object(rs))
            return -1;
        const json_t *r = json_object_get(rs, "resource");
        if (r && !json_is_object(r))
            return -1;
        if (emit)
            vt__otlp_resource_begin(d);
        if (r && !json_attrs(json_object_get(r, "attributes"), emit ? cb_resource_attr : NULL,
                             d))
            return -1;
        const json_t *sss = json_object_get(rs, "scopeSpans");
        if (!sss)
            continue;
        if (!json_is_array(sss))
            return -1;
        json_array_foreach(sss, j, ss) {
            if (!json_is_object(ss))
                return -1;
            const json_t *spans = json_object_get(ss, "spans");
            if (!spans)
                continue;
            if (!json_is_array(spans))
                return -1;
            json_array_foreach(spans, k, sp) {
                if (emit)
                    json_span(d, sp, now_ms, sink, data, res);
                else
                    res->spans++;
            }
        }
    }
    return 0;
}

int vt_otlp_decode_json(struct vt_otlp_decoder *d, const char *buf, size_t len, int64_t now_ms,
                        vt_otlp_sink_cb sink, void *data, struct vt_otlp_result *res)
{
    assert(d && sink && res && (buf || !len));
    vt__otlp_result_begin(d, res);
    json_error_t jerr;
    json_t *root = json_loadb(buf ? buf : "", len, 0, &jerr);
    if (!root) {
        if (json_error_code(&jerr) == json_error_out_of_memory)
            return -ENOMEM;
        snprintf(res->message, sizeof res->message, "invalid JSON at byte %d: %s",
                 jerr.position, jerr.text);
        return -EINVAL;
    }
    if (json_request(d, root, false, now_ms, vt__otlp_ignore_sink, NULL, res) < 0) {
        json_decref(root);
        memset(res, 0, sizeof *res);
        snprintf(res->message, sizeof res->message,
                 "malformed ExportTraceServiceRequest (JSON structure)");
        return -EINVAL;
    }
    vt__otlp_result_begin(d, res);
    json_request(d, root, true, now_ms, sink, data, res);
    vt__otlp_result_end(d, res);
    json_decref(root);
    return 0;
}
