/*
 * record_format.c - the canonical encoder for records: vt_record_format_json.
 *
 * Why a file of its own: the decoder (record.c) is the hot ingest path and a
 * hand-written scanner; the encoder is the opposite direction, shares no code
 * or tables with it, and runs where a record is written back out (the agent
 * re-encodes each accepted record before spooling it; OTLP spans mapped to
 * records take the same path). record.h stays the contract for both files.
 *
 * Output is canonical: fields in enum order, only the present ones, numbers
 * in the shortest form that reads back exactly, strings escaped minimally.
 */
#include "record.h"

#include <assert.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct out {
    char *p;
    char *end; /* one past the last byte usable for text (a NUL follows) */
    bool full;
};

static void put(struct out *o, const char *src, size_t n)
{
    if ((size_t)(o->end - o->p) < n) {
        o->full = true;
        return;
    }
    memcpy(o->p, src, n);
    o->p += n;
}

static void put_lit(struct out *o, const char *lit)
{
    put(o, lit, strlen(lit));
}

static void put_str(struct out *o, struct vt_str s)
{
    static const char hexd[] = "0123456789abcdef";
    put(o, "\"", 1);
    size_t run = 0;
    for (size_t i = 0; i < s.len; i++) {
        unsigned char c = (unsigned char)s.ptr[i];
        if (c >= 0x20 && c != '"' && c != '\\')
            continue;
        put(o, s.ptr + run, i - run);
        run = i + 1;
        char esc[6] = {'\\', 0, '0', '0', 0, 0};
        switch (c) {
        case '"': esc[1] = '"'; put(o, esc, 2); break;
        case '\\': esc[1] = '\\'; put(o, esc, 2); break;
        case '\n': esc[1] = 'n'; put(o, esc, 2); break;
        case '\r': esc[1] = 'r'; put(o, esc, 2); break;
        case '\t': esc[1] = 't'; put(o, esc, 2); break;
        case '\b': esc[1] = 'b'; put(o, esc, 2); break;
        case '\f': esc[1] = 'f'; put(o, esc, 2); break;
        default:
            esc[1] = 'u';
            esc[4] = hexd[c >> 4];
            esc[5] = hexd[c & 15];
            put(o, esc, 6);
        }
    }
    put(o, s.ptr + run, s.len - run);
    put(o, "\"", 1);
}

/* Shortest of %.15g / %.16g / %.17g that reads back to exactly v; integral
 * values below 2^53 print as integers. Assumes the "C" LC_NUMERIC locale for
 * snprintf, as every vitals program runs in (none calls setlocale). */
static void put_double(struct out *o, double v)
{
    char buf[40];
    int n;
    assert(isfinite(v));
    if (v == floor(v) && fabs(v) < 9007199254740992.0 && !(v == 0 && signbit(v))) {
        n = snprintf(buf, sizeof buf, "%lld", (long long)v);
    } else {
        for (int prec = 15;; prec++) {
            n = snprintf(buf, sizeof buf, "%.*g", prec, v);
            if (prec == 17 || strtod(buf, NULL) == v)
                break;
        }
    }
    put(o, buf, (size_t)n);
}

static void put_u64(struct out *o, uint64_t v)
{
    char buf[24];
    int n = snprintf(buf, sizeof buf, "%llu", (unsigned long long)v);
    put(o, buf, (size_t)n);
}

int vt_record_format_json(const struct vt_record *r, char *buf, size_t cap)
{
    if (cap == 0)
        return -ENOSPC;
    struct out o = {buf, buf + cap - 1, false};
    const char *sep = "{";
    uint32_t pr = r->present;
#define KEY(f) (put_lit(&o, sep), sep = ",", put_lit(&o, "\"" #f "\":"))
#define HAS(F) (pr & VT_FIELD_BIT(F))
    if (HAS(VT_FIELD_TS)) {
        KEY(ts);
        char tb[24];
        int n = snprintf(tb, sizeof tb, "%lld", (long long)r->ts_ms);
        put(&o, tb, (size_t)n);
    }
    if (HAS(VT_FIELD_SERVICE)) KEY(service), put_str(&o, r->service);
    if (HAS(VT_FIELD_MODEL)) KEY(model), put_str(&o, r->model);
    if (HAS(VT_FIELD_PROVIDER)) KEY(provider), put_str(&o, r->provider);
    if (HAS(VT_FIELD_VERSION)) KEY(version), put_str(&o, r->version);
    if (HAS(VT_FIELD_LATENCY_MS)) KEY(latency_ms), put_double(&o, r->latency_ms);
    if (HAS(VT_FIELD_TTFT_MS)) KEY(ttft_ms), put_double(&o, r->ttft_ms);
    if (HAS(VT_FIELD_STATUS)) KEY(status), put_lit(&o, r->error ? "\"error\"" : "\"ok\"");
    if (HAS(VT_FIELD_ERROR_TYPE)) KEY(error_type), put_str(&o, r->error_type);
    if (HAS(VT_FIELD_INPUT_TOKENS)) KEY(input_tokens), put_u64(&o, r->input_tokens);
    if (HAS(VT_FIELD_OUTPUT_TOKENS)) KEY(output_tokens), put_u64(&o, r->output_tokens);
    if (HAS(VT_FIELD_COST_USD)) KEY(cost_usd), put_double(&o, r->cost_usd);
    if (HAS(VT_FIELD_METRICS)) {
        KEY(metrics);
        put_lit(&o, "{");
        for (uint32_t i = 0; i < r->n_metrics; i++) {
            if (i)
                put_lit(&o, ",");
            put_str(&o, r->metrics[i].name);
            put_lit(&o, ":");
            put_double(&o, r->metrics[i].value);
        }
        put_lit(&o, "}");
    }
    if (HAS(VT_FIELD_LABELS)) {
        KEY(labels);
        put_lit(&o, "{");
        for (uint32_t i = 0; i < r->n_labels; i++) {
            if (i)
                put_lit(&o, ",");
            put_str(&o, r->labels[i].key);
            put_lit(&o, ":");
            put_str(&o, r->labels[i].value);
        }
        put_lit(&o, "}");
    }
    if (HAS(VT_FIELD_EMBEDDING)) {
        KEY(embedding);
        put_lit(&o, "[");
        for (uint32_t i = 0; i < r->n_embedding; i++) {
            if (i)
                put_lit(&o, ",");
            put_double(&o, r->embedding[i]);
        }
        put_lit(&o, "]");
    }
    if (HAS(VT_FIELD_REQUEST_ID)) KEY(request_id), put_str(&o, r->request_id);
#undef KEY
#undef HAS
    if (*sep == '{')
        put_lit(&o, "{");
    put_lit(&o, "}");
    if (o.full) {
        buf[0] = '\0';
        return -ENOSPC;
    }
    *o.p = '\0';
    return (int)(o.p - buf);
}
