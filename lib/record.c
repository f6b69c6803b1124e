/*
 * record.c - the NDJSON record decoder (the canonical encoder,
 * vt_record_format_json, is in record_format.c).
 *
 * Why hand-written: every record the agent ingests passes through here, and
 * the target is >= 1M records/s on one core. A general JSON library builds a
 * tree and allocates per node; this scanner walks the line once, writes the
 * fields straight into a caller-provided struct vt_record and keeps strings
 * as (ptr, len) into the line, so the only memory it touches is the line,
 * the record and arrays allocated once in the decoder.
 *
 * Safety properties, kept by construction and checked by the fuzz target:
 *   - every read is guarded by `p < end`: nothing past line[len-1] is read;
 *   - no recursion: the known fields have fixed shapes (object of scalars,
 *     array of numbers), and unknown values are skipped by an explicit
 *     depth-limited loop (a bit stack of object/array);
 *   - unescaped strings go to a scratch buffer of max_record_bytes, which
 *     cannot overflow because an escape sequence is never shorter than what
 *     it decodes to.
 * The first problem found decides the reject reason; the scan stops there.
 */
#include "record.h"

#include <assert.h>
#include <errno.h>
#include <locale.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define TS_MAX_MS INT64_C(253402300799999) /* 9999-12-31T23:59:59.999Z */
#define MAX_RECORD_BYTES_CAP (16u << 20)
#define FIELD_SYNC 17 /* pseudo field id of the "sync" control key */

struct vt_record_decoder {
    struct vt_record_limits limits;
    char *default_service;
    size_t default_service_len;
    struct vt_label *labels;
    struct vt_metric *metrics;
    double *embedding;
    char *scratch;      /* unescaped strings; max_record_bytes */
    size_t scratch_used;
    char *numbuf;       /* NUL-terminated copy of a long number for strtod */
    locale_t c_locale;  /* strtod must not depend on the process locale */
};

/* ---- names ---------------------------------------------------------------- */

static const char *const field_names[] = {
    [VT_FIELD_TS] = "ts",
    [VT_FIELD_SERVICE] = "service",
    [VT_FIELD_MODEL] = "model",
    [VT_FIELD_PROVIDER] = "provider",
    [VT_FIELD_VERSION] = "version",
    [VT_FIELD_LATENCY_MS] = "latency_ms",
    [VT_FIELD_TTFT_MS] = "ttft_ms",
    [VT_FIELD_STATUS] = "status",
    [VT_FIELD_ERROR_TYPE] = "error_type",
    [VT_FIELD_INPUT_TOKENS] = "input_tokens",
    [VT_FIELD_OUTPUT_TOKENS] = "output_tokens",
    [VT_FIELD_COST_USD] = "cost_usd",
    [VT_FIELD_METRICS] = "metrics",
    [VT_FIELD_LABELS] = "labels",
    [VT_FIELD_EMBEDDING] = "embedding",
    [VT_FIELD_REQUEST_ID] = "request_id",
    [FIELD_SYNC] = "sync",
};

const char *vt_record_field_name(int field)
{
    return field >= VT_FIELD_FIRST && field <= VT_FIELD_LAST ? field_names[field] : NULL;
}

static const char *const reject_names[VT_REJECT__COUNT] = {
    [VT_REJECT_NONE] = "none",
    [VT_REJECT_PARSE_ERROR] = "parse_error",
    [VT_REJECT_TOO_LARGE] = "too_large",
    [VT_REJECT_BAD_TYPE] = "bad_type",
    [VT_REJECT_NON_FINITE] = "non_finite",
    [VT_REJECT_TOO_MANY_LABELS] = "too_many_labels",
    [VT_REJECT_FIELD_TOO_LONG] = "field_too_long",
    [VT_REJECT_BAD_TIMESTAMP] = "bad_timestamp",
    [VT_REJECT_MISSING_SERVICE] = "missing_service",
    [VT_REJECT_TOO_MANY_METRICS] = "too_many_metrics",
    [VT_REJECT_EMBEDDING_TOO_LONG] = "embedding_too_long",
    [VT_REJECT_BAD_STATUS] = "bad_status",
    [VT_REJECT_BAD_UTF8] = "bad_utf8",
    [VT_REJECT_DUPLICATE_KEY] = "duplicate_key",
    [VT_REJECT_OUT_OF_RANGE] = "out_of_range",
};

const char *vt_record_reject_name(int reason)
{
    return reason >= 0 && reason < VT_REJECT__COUNT ? reject_names[reason] : "unknown";
}

/* ---- decoder lifecycle ---------------------------------------------------- */

void vt_record_limits_default(struct vt_record_limits *l)
{
    l->max_record_bytes = 65536;
    l->max_labels = 32;
    l->max_label_key = 64;
    l->max_label_value = 256;
    l->max_metrics = 64;
    l->max_metric_name = 128;
    l->max_embedding = 4096;
    l->max_string = 256;
    l->max_depth = 32;
}

struct vt_record_decoder *vt_record_decoder_new(const struct vt_record_limits *limits,
                                                const char *default_service)
{
    struct vt_record_limits l;
    if (limits)
        l = *limits;
    else
        vt_record_limits_default(&l);
    size_t ds_len = default_service ? strlen(default_service) : 0;
    if (l.max_record_bytes < 1 || l.max_record_bytes > MAX_RECORD_BYTES_CAP || l.max_labels < 1 ||
        l.max_label_key < 1 || l.max_label_value < 1 || l.max_metrics < 1 ||
        l.max_metric_name < 1 || l.max_embedding < 1 || l.max_string < 1 || l.max_depth < 1 ||
        l.max_depth > 64 || ds_len > l.max_string) {
        errno = EINVAL;
        return NULL;
    }
    struct vt_record_decoder *d = calloc(1, sizeof *d);
    if (!d)
        goto nomem;
    d->limits = l;
    d->labels = calloc(l.max_labels, sizeof *d->labels);
    d->metrics = calloc(l.max_metrics, sizeof *d->metrics);
    d->embedding = calloc(l.max_embedding, sizeof *d->embedding);
    d->scratch = malloc(l.max_record_bytes);
    d->numbuf = malloc((size_t)l.max_record_bytes + 1);
    d->default_service = malloc(ds_len + 1);
    d->c_locale = newlocale(LC_NUMERIC_MASK, "C", (locale_t)0);
    if (!d->labels || !d->metrics || !d->embedding || !d->scratch || !d->numbuf ||
        !d->default_service || d->c_locale == (locale_t)0)
        goto nomem;
    memcpy(d->default_service, default_service ? default_service : "", ds_len + 1);
    d->default_service_len = ds_len;
    return d;
nomem:
    vt_record_decoder_free(d);
    errno = ENOMEM;
    return NULL;
}

void vt_record_decoder_free(struct vt_record_decoder *d)
{
    if (!d)
        return;
    if (d->c_locale != (locale_t)0)
        freelocale(d->c_locale);
    free(d->labels);
    free(d->metrics);
    free(d->embedding);
    free(d->scratch);
    free(d->numbuf);
    free(d->default_service);
    free(d);
}

const struct vt_record_limits *vt_record_decoder_limits(const struct vt_record_decoder *d)
{
    return &d->limits;
}

/* ---- scanner -------------------------------------------------------------- */

struct scan {
    const char *p;
    const char *end;
    const char *base;
    struct vt_record_decoder *dec;
    enum vt_record_reject err;
    const char *err_at;
};

/* Record the first problem and return -1, so callers can `return fail(...)`. */
static int fail(struct scan *s, enum vt_record_reject why, const char *at)
{
    if (s->err == VT_REJECT_NONE) {
        s->err = why;
        s->err_at = at;
    }
    return -1;
}

static inline void skip_ws(struct scan *s)
{
    while (s->p < s->end && (*s->p == ' ' || *s->p == '\n' || *s->p == '\r' || *s->p == '\t'))
        s->p++;
}

/* Consume `c` after optional whitespace. */
static inline int expect(struct scan *s, char c)
{
    skip_ws(s);
    if (s->p < s->end && *s->p == c) {
        s->p++;
        return 0;
    }
    return fail(s, VT_REJECT_PARSE_ERROR, s->p);
}

/* 1 for bytes that may appear in a string unescaped and need no UTF-8 check. */
static const unsigned char plain_char[256] = {
#define R16(v) v, v, v, v, v, v, v, v, v, v, v, v, v, v, v, v
    R16(0), R16(0),               /* 0x00-0x1f: control characters */
    1, 1, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, /* 0x20-0x2f, '"' = 0 */
    R16(1), R16(1),
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 1, 1, 1, /* 0x50-0x5f, '\\' = 0 */
    R16(1), R16(1),
    R16(0), R16(0), R16(0), R16(0), R16(0), R16(0), R16(0), R16(0), /* 0x80-0xff */
#undef R16
};

/* Length of the valid UTF-8 sequence at p (first byte >= 0x80), or 0. */
static size_t utf8_seq(const unsigned char *p, const unsigned char *end)
{
    unsigned c = p[0];
    size_t n;
    unsigned lo = 0x80, hi = 0xbf; /* allowed range of the second byte */
    if (c >= 0xc2 && c <= 0xdf)
        n = 2;
    else if (c >= 0xe0 && c <= 0xef) {
        n = 3;
        if (c == 0xe0)
            lo = 0xa0; /* no overlongs */
        else if (c == 0xed)
            hi = 0x9f; /* no UTF-16 surrogates */
    } else if (c >= 0xf0 && c <= 0xf4) {
        n = 4;
        if (c == 0xf0)
            lo = 0x90;
        else if (c == 0xf4)
            hi = 0x8f; /* <= U+10FFFF */
    } else
        return 0;
    if ((size_t)(end - p) < n || p[1] < lo || p[1] > hi)
        return 0;
    for (size_t i = 2; i < n; i++)
        if ((p[i] & 0xc0) != 0x80)
            return 0;
    return n;
}

static int hex4(const char *p, unsigned *out)
{
    unsigned v = 0;
    for (int i = 0; i < 4; i++) {
        unsigned c = (unsigned char)p[i], d;
        if (c >= '0' && c <= '9')
            d = c - '0';
        else if ((c | 0x20) >= 'a' && (c | 0x20) <= 'f')
            d = (c | 0x20) - 'a' + 10;
        else
            return -1;
        v = v << 4 | d;
    }
    *out = v;
    return 0;
}

static size_t put_utf8(char *o, unsigned cp)
{
    if (cp < 0x80) {
        o[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        o[0] = (char)(0xc0 | cp >> 6);
        o[1] = (char)(0x80 | (cp & 0x3f));
        return 2;
    }
    if (cp < 0x10000) {
        o[0] = (char)(0xe0 | cp >> 12);
        o[1] = (char)(0x80 | (cp >> 6 & 0x3f));
        o[2] = (char)(0x80 | (cp & 0x3f));
        return 3;
    }
    o[0] = (char)(0xf0 | cp >> 18);
    o[1] = (char)(0x80 | (cp >> 12 & 0x3f));
    o[2] = (char)(0x80 | (cp >> 6 & 0x3f));
    o[3] = (char)(0x80 | (cp & 0x3f));
    return 4;
}

/* The slow path of scan_string: escapes or non-ASCII bytes from `p` on.
 * `start` is the first content byte. Escaped strings are copied to scratch. */
static int scan_string_slow(struct scan *s, const char *start, const char *p, struct vt_str *out)
{
    struct vt_record_decoder *d = s->dec;
    char *o = NULL; /* write position in scratch once an escape was seen */
    const char *end = s->end;
    while (p < end) {
        unsigned char c = (unsigned char)*p;
        if (plain_char[c]) {
            if (o)
                *o++ = (char)c;
            p++;
        } else if (c == '"') {
            if (o) {
                out->ptr = d->scratch + d->scratch_used;
                out->len = (size_t)(o - out->ptr);
                d->scratch_used += out->len;
            } else {
                out->ptr = start;
                out->len = (size_t)(p - start);
            }
            s->p = p + 1;
            return 0;
        } else if (c >= 0x80) {
            size_t n = utf8_seq((const unsigned char *)p, (const unsigned char *)end);
            if (n == 0)
                return fail(s, VT_REJECT_BAD_UTF8, p);
            if (o) {
                memcpy(o, p, n);
                o += n;
            }
            p += n;
        } else if (c == '\\') {
            if (!o) {
                /* First escape: move what came before into scratch. The
                 * output never outgrows the input, so scratch suffices. */
                o = d->scratch + d->scratch_used;
                memcpy(o, start, (size_t)(p - start));
                o += p - start;
            }
            if (end - p < 2)
                return fail(s, VT_REJECT_PARSE_ERROR, p);
            char e = p[1];
            p += 2;
            switch (e) {
            case '"': *o++ = '"'; break;
            case '\\': *o++ = '\\'; break;
            case '/': *o++ = '/'; break;
            case 'b': *o++ = '\b'; break;
            case 'f': *o++ = '\f'; break;
            case 'n': *o++ = '\n'; break;
            case 'r': *o++ = '\r'; break;
            case 't': *o++ = '\t'; break;
            case 'u': {
                unsigned cp, lo;
                if (end - p < 4 || hex4(p, &cp) != 0)
                    return fail(s, VT_REJECT_PARSE_ERROR, p - 2);
                p += 4;
                if (cp >= 0xd800 && cp <= 0xdbff) {
                    if (end - p < 6 || p[0] != '\\' || p[1] != 'u' || hex4(p + 2, &lo) != 0 ||
                        lo < 0xdc00 || lo > 0xdfff)
                        return fail(s, VT_REJECT_BAD_UTF8, p - 6);
                    p += 6;
                    cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
                } else if ((cp >= 0xdc00 && cp <= 0xdfff) || cp == 0) {
                    return fail(s, VT_REJECT_BAD_UTF8, p - 6);
                }
                o += put_utf8(o, cp);
                break;
            }
            default:
                return fail(s, VT_REJECT_PARSE_ERROR, p - 2);
            }
            assert(o <= d->scratch + d->limits.max_record_bytes);
        } else {
            return fail(s, VT_REJECT_PARSE_ERROR, p); /* raw control character */
        }
    }
    return fail(s, VT_REJECT_PARSE_ERROR, p); /* unterminated */
}

/* A JSON string at s->p (which must be '"'). */
static inline int scan_string(struct scan *s, struct vt_str *out)
{
    assert(s->p < s->end && *s->p == '"');
    const char *start = s->p + 1, *p = start, *end = s->end;
    while (p < end && plain_char[(unsigned char)*p])
        p++;
    if (p < end && *p == '"') {
        out->ptr = start;
        out->len = (size_t)(p - start);
        s->p = p + 1;
        return 0;
    }
    return scan_string_slow(s, start, p, out);
}

/* A scanned JSON number. */
struct num {
    double d;
    uint64_t u;     /* magnitude, if is_int && u_ok */
    bool neg;
    bool is_int;    /* no fraction, no exponent */
    bool u_ok;      /* integer magnitude fits uint64 */
    const char *text;
    size_t len;
};

static const double pow10_exact[23] = {1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,
                                       1e8,  1e9,  1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
                                       1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};

static inline bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

static bool match_lit(const struct scan *s, const char *lit, size_t n)
{
    return (size_t)(s->end - s->p) >= n && memcmp(s->p, lit, n) == 0;
}

/* An RFC 8259 number at s->p. NaN / Infinity / -Infinity (Python's json
 * writes them) and overflow to infinity reject as non_finite.
 * Conversion: when the significand has at most 19 digits and fits 2^53 and
 * the decimal exponent is within +-22, one IEEE multiply or divide of two
 * exact values is correctly rounded (Clinger's fast path); everything else
 * goes to strtod_l on a bounded, NUL-terminated copy. */
static int scan_number(struct scan *s, struct num *n)
{
    const char *p = s->p, *end = s->end, *start = p;
    uint64_t m = 0;
    int digits = 0;     /* significant digits accumulated into m */
    bool dropped = false;
    int exp10 = 0;
    n->neg = false;
    if (p < end && *p == '-') {
        n->neg = true;
        p++;
    }
    if (p < end && (*p == 'I' || *p == 'N')) {
        s->p = p;
        if (match_lit(s, "Infinity", 8) || (!n->neg && match_lit(s, "NaN", 3)))
            return fail(s, VT_REJECT_NON_FINITE, start);
        return fail(s, VT_REJECT_PARSE_ERROR, start);
    }
    if (p >= end || !is_digit(*p))
        return fail(s, VT_REJECT_PARSE_ERROR, p);
    n->u_ok = true;
    uint64_t u = 0;
    if (*p == '0') {
        p++;
        if (p < end && is_digit(*p))
            return fail(s, VT_REJECT_PARSE_ERROR, p); /* leading zero */
    } else {
        while (p < end && is_digit(*p)) {
            unsigned dg = (unsigned)(*p - '0');
            if (u > (UINT64_MAX - dg) / 10)
                n->u_ok = false;
            else
                u = u * 10 + dg;
            if (digits < 19) {
                m = m * 10 + dg;
                digits++;
            } else {
                exp10++;
                dropped = true;
            }
            p++;
        }
    }
    n->is_int = true;
    if (p < end && *p == '.') {
        n->is_int = false;
        p++;
        if (p >= end || !is_digit(*p))
            return fail(s, VT_REJECT_PARSE_ERROR, p);
        while (p < end && is_digit(*p)) {
            if (m == 0 && *p == '0') {
                exp10--; /* leading zeros of 0.000123 are not significant */
            } else if (digits < 19) {
                m = m * 10 + (unsigned)(*p - '0');
                digits++;
                exp10--;
            } else if (*p != '0') {
                dropped = true; /* more precision than m holds: strtod decides */
            }
            p++;
        }
    }
    if (p < end && (*p == 'e' || *p == 'E')) {
        n->is_int = false;
        p++;
        bool eneg = false;
        if (p < end && (*p == '+' || *p == '-'))
            eneg = *p++ == '-';
        if (p >= end || !is_digit(*p))
            return fail(s, VT_REJECT_PARSE_ERROR, p);
        int e = 0;
        while (p < end && is_digit(*p)) {
            if (e < 100000) /* clamp: beyond this the result is 0 or inf anyway */
                e = e * 10 + (*p - '0');
            p++;
        }
        exp10 += eneg ? -e : e;
    }
    n->u = u;
    n->text = start;
    n->len = (size_t)(p - start);
    s->p = p;
    double d;
    if (m == 0 && !dropped) {
        d = 0.0;
    } else if (!dropped && m <= (UINT64_C(1) << 53) && exp10 >= -22 && exp10 <= 22) {
        d = (double)m;
        d = exp10 < 0 ? d / pow10_exact[-exp10] : d * pow10_exact[exp10];
    } else {
        char stackbuf[64];
        char *buf = n->len < sizeof stackbuf ? stackbuf : s->dec->numbuf;
        assert(n->len <= s->dec->limits.max_record_bytes);
        memcpy(buf, start, n->len);
        buf[n->len] = '\0';
        d = strtod_l(buf, NULL, s->dec->c_locale);
        if (isinf(d))
            return fail(s, VT_REJECT_NON_FINITE, start);
        n->d = d;
        return 0;
    }
    n->d = n->neg ? -d : d;
    return 0;
}

/* What a value starts with, without consuming it. */
enum vkind { V_BAD, V_STRING, V_NUMBER, V_OBJECT, V_ARRAY, V_TRUE, V_FALSE, V_NULL };

static enum vkind peek_value(struct scan *s)
{
    skip_ws(s);
    if (s->p >= s->end)
        return V_BAD;
    switch (*s->p) {
    case '"': return V_STRING;
    case '{': return V_OBJECT;
    case '[': return V_ARRAY;
    case 't': return match_lit(s, "true", 4) ? V_TRUE : V_BAD;
    case 'f': return match_lit(s, "false", 5) ? V_FALSE : V_BAD;
    case 'n': return match_lit(s, "null", 4) ? V_NULL : V_BAD;
    case '-': case 'I': case 'N':
    case '0': case '1': case '2': case '3': case '4':
    case '5': case '6': case '7': case '8': case '9': return V_NUMBER;
    default: return V_BAD;
    }
}

/* An object member's key and its ':' (s->p after whitespace, at the '"'). */
static inline int scan_key(struct scan *s, struct vt_str *key)
{
    if (s->p >= s->end || *s->p != '"')
        return fail(s, VT_REJECT_PARSE_ERROR, s->p);
    if (scan_string(s, key) != 0 || expect(s, ':') != 0)
        return -1;
    return 0;
}

/* Skip any JSON value (validating it) without recursion: a bit stack says
 * whether each open level is an object (1) or an array (0). */
static int skip_value(struct scan *s)
{
    uint64_t stack = 0;
    unsigned depth = 0;
    const unsigned max_depth = s->dec->limits.max_depth;
    for (;;) {
        /* a value */
        struct vt_str str;
        struct num num;
        switch (peek_value(s)) {
        case V_STRING:
            if (scan_string(s, &str) != 0)
                return -1;
            break;
        case V_NUMBER:
            if (scan_number(s, &num) != 0)
                return -1;
            break;
        case V_TRUE: case V_NULL: s->p += 4; break;
        case V_FALSE: s->p += 5; break;
        case V_OBJECT: case V_ARRAY: {
            bool obj = *s->p == '{';
            if (depth >= max_depth)
                return fail(s, VT_REJECT_PARSE_ERROR, s->p);
            stack = stack << 1 | obj;
            depth++;
            s->p++;
            skip_ws(s);
            if (s->p < s->end && *s->p == (obj ? '}' : ']')) {
                s->p++;
                stack >>= 1;
                depth--;
                break;
            }
            if (obj) {
                if (scan_key(s, &str) != 0)
                    return -1;
            }
            continue; /* the first element */
        }
        default:
            return fail(s, VT_REJECT_PARSE_ERROR, s->p);
        }
        /* after a value: close levels until a ',' continues one */
        for (;;) {
            if (depth == 0)
                return 0;
            bool obj = stack & 1;
            skip_ws(s);
            if (s->p >= s->end)
                return fail(s, VT_REJECT_PARSE_ERROR, s->p);
            if (*s->p == ',') {
                s->p++;
                if (obj) {
                    skip_ws(s);
                    if (scan_key(s, &str) != 0)
                        return -1;
                }
                break;
            }
            if (*s->p != (obj ? '}' : ']'))
                return fail(s, VT_REJECT_PARSE_ERROR, s->p);
            s->p++;
            stack >>= 1;
            depth--;
        }
    }
}

/* Iterate the members of an object: call with s->p after '{' (first = true),
 * then after each member's value. Returns 1 with the key in *key and s->p at
 * the value, 0 at the closing '}', -1 on error. */
static int next_member(struct scan *s, bool first, struct vt_str *key)
{
    skip_ws(s);
    if (s->p >= s->end)
        return fail(s, VT_REJECT_PARSE_ERROR, s->p);
    if (*s->p == '}') {
        s->p++;
        return 0;
    }
    if (!first) {
        if (*s->p != ',')
            return fail(s, VT_REJECT_PARSE_ERROR, s->p);
        s->p++;
        skip_ws(s);
    }
    if (scan_key(s, key) != 0)
        return -1;
    skip_ws(s);
    return 1;
}

/* Bytewise order of two strings (shorter prefix first). */
static int str_cmp(struct vt_str a, struct vt_str b)
{
    size_t n = a.len < b.len ? a.len : b.len;
    int c = n ? memcmp(a.ptr, b.ptr, n) : 0;
    return c ? c : (a.len > b.len) - (a.len < b.len);
}

static bool str_eq(struct vt_str a, const char *lit, size_t n)
{
    return a.len == n && memcmp(a.ptr, lit, n) == 0;
}

#define KIND(k) (1u << (k))

/* Start a field's value: null is consumed and means absent (returns 0); a
 * value of a kind in `accept` is left at s->p and its kind returned (> 0);
 * any other value rejects as bad_type, a malformed one as parse_error. */
static inline int field_begin(struct scan *s, unsigned accept)
{
    const char *at = s->p;
    enum vkind k = peek_value(s);
    if (accept & KIND(k))
        return (int)k;
    if (k == V_NULL) {
        s->p += 4;
        return 0;
    }
    return fail(s, k == V_BAD ? VT_REJECT_PARSE_ERROR : VT_REJECT_BAD_TYPE, at);
}

/* A string field bounded by `max`: null -> absent (returns 0, *given false). */
static int field_string(struct scan *s, uint32_t max, struct vt_str *out, bool *given)
{
    const char *at = s->p;
    int k = field_begin(s, KIND(V_STRING));
    *given = k > 0;
    if (k <= 0)
        return k;
    if (scan_string(s, out) != 0)
        return -1;
    return out->len > max ? fail(s, VT_REJECT_FIELD_TOO_LONG, at) : 0;
}

/* A number field: null -> absent. */
static int field_number(struct scan *s, struct num *n, bool *given)
{
    int k = field_begin(s, KIND(V_NUMBER));
    *given = k > 0;
    if (k <= 0)
        return k;
    return scan_number(s, n);
}

static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
    /* Howard Hinnant's algorithm: days since 1970-01-01 in the proleptic
     * Gregorian calendar. */
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    unsigned yoe = (unsigned)(y - era * 400);
    unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int64_t)doe - 719468;
}

static int digits_at(const char *p, int n, int *out)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (!is_digit(p[i]))
            return -1;
        v = v * 10 + (p[i] - '0');
    }
    *out = v;
    return 0;
}

/* RFC 3339 date-time -> epoch ms; -1 if malformed or out of range. */
static int parse_rfc3339(struct vt_str t, int64_t *out)
{
    const char *p = t.ptr, *end = t.ptr + t.len;
    int y, mo, d, h, mi, sec;
    if (t.len < 20 || digits_at(p, 4, &y) || p[4] != '-' || digits_at(p + 5, 2, &mo) ||
        p[7] != '-' || digits_at(p + 8, 2, &d) || (p[10] != 'T' && p[10] != 't' && p[10] != ' ') ||
        digits_at(p + 11, 2, &h) || p[13] != ':' || digits_at(p + 14, 2, &mi) || p[16] != ':' ||
        digits_at(p + 17, 2, &sec))
        return -1;
    static const int mdays[12] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    if (mo < 1 || mo > 12 || d < 1 || d > mdays[mo - 1] || (mo == 2 && d == 29 && !leap) ||
        h > 23 || mi > 59 || sec > 60)
        return -1;
    p += 19;
    int ms = 0;
    if (p < end && *p == '.') {
        p++;
        if (p >= end || !is_digit(*p))
            return -1;
        int nd = 0;
        for (; p < end && is_digit(*p); p++, nd++)
            if (nd < 3) /* sub-millisecond digits are truncated */
                ms = ms * 10 + (*p - '0');
        if (nd == 1)
            ms *= 100;
        else if (nd == 2)
            ms *= 10;
    }
    int off_min = 0;
    if (p < end && (*p == 'Z' || *p == 'z')) {
        p++;
    } else if (p < end && (*p == '+' || *p == '-')) {
        int oh, om;
        if (end - p < 6 || digits_at(p + 1, 2, &oh) || p[3] != ':' || digits_at(p + 4, 2, &om) ||
            oh > 23 || om > 59)
            return -1;
        off_min = (oh * 60 + om) * (*p == '-' ? -1 : 1);
        p += 6;
    } else {
        return -1;
    }
    if (p != end)
        return -1;
    int64_t secs = days_from_civil(y, (unsigned)mo, (unsigned)d) * 86400 + h * 3600 + mi * 60 +
                   sec - (int64_t)off_min * 60;
    int64_t v = secs * 1000 + ms;
    if (v < 0 || v > TS_MAX_MS)
        return -1;
    *out = v;
    return 0;
}

static int field_ts(struct scan *s, struct vt_record *r, bool *given)
{
    const char *at = s->p;
    int k = field_begin(s, KIND(V_NUMBER) | KIND(V_STRING));
    *given = k > 0;
    if (k <= 0)
        return k;
    if (k == V_STRING) {
        struct vt_str t;
        if (scan_string(s, &t) != 0)
            return -1;
        return parse_rfc3339(t, &r->ts_ms) != 0 ? fail(s, VT_REJECT_BAD_TIMESTAMP, at) : 0;
    }
    struct num n;
    if (scan_number(s, &n) != 0)
        return -1;
    if (n.is_int && n.u_ok) {
        if (n.u > (uint64_t)TS_MAX_MS || (n.neg && n.u != 0))
            return fail(s, VT_REJECT_BAD_TIMESTAMP, at);
        r->ts_ms = (int64_t)n.u;
    } else {
        if (!(n.d >= 0 && n.d < (double)TS_MAX_MS + 1))
            return fail(s, VT_REJECT_BAD_TIMESTAMP, at);
        r->ts_ms = (int64_t)floor(n.d);
    }
    return 0;
}

static int field_tokens(struct scan *s, uint64_t *out, bool *given)
{
    const char *at = s->p;
    struct num n;
    if (field_number(s, &n, given) != 0 || !*given)
        return s->err ? -1 : 0;
    if (n.is_int) {
        if (!n.u_ok || (n.neg && n.u != 0))
            return fail(s, VT_REJECT_OUT_OF_RANGE, at);
        *out = n.u;
        return 0;
    }
    /* 512.0 or 5.12e2: accepted when integral and representable */
    if (!(n.d >= 0 && n.d < 18446744073709551616.0) || n.d != floor(n.d))
        return fail(s, VT_REJECT_OUT_OF_RANGE, at);
    *out = (uint64_t)n.d;
    return 0;
}

/* A map field (metrics, labels): an object whose members become entries
 * sorted by key, bytewise. Each entry starts with its key (asserted below)
 * and is `size` bytes; `value` parses one member's value into the entry and
 * returns 1, or 0 for null (the member is dropped), or -1. */
struct map_spec {
    void *entries;
    size_t size;
    uint32_t max_key;
    uint32_t max_entries;
    enum vt_record_reject too_many;
    int (*value)(struct scan *s, void *entry);
};

union map_entry {
    struct vt_metric metric;
    struct vt_label label;
};
_Static_assert(offsetof(struct vt_metric, name) == 0, "map entries start with their key");
_Static_assert(offsetof(struct vt_label, key) == 0, "map entries start with their key");

static inline struct vt_str *map_key(char *entries, size_t size, uint32_t i)
{
    return (struct vt_str *)(entries + i * size);
}

/* Decode a map field into m->entries; on success with *given, *count is the
 * number of entries. A key over m->max_key, more than m->max_entries non-null
 * members or a key given twice rejects the record. */
static inline int field_map(struct scan *s, const struct map_spec *m, uint32_t *count, bool *given)
{
    int k = field_begin(s, KIND(V_OBJECT));
    *given = k > 0;
    if (k <= 0)
        return k;
    s->p++;
    char *base = m->entries;
    uint32_t n = 0;
    union map_entry e;
    struct vt_str key;
    int rc;
    assert(m->size <= sizeof e);
    for (bool first = true; (rc = next_member(s, first, &key)) == 1; first = false) {
        const char *at = s->p;
        if (key.len > m->max_key)
            return fail(s, VT_REJECT_FIELD_TOO_LONG, at);
        int got = m->value(s, &e);
        if (got <= 0) {
            if (got < 0)
                return -1;
            continue;
        }
        if (n == m->max_entries)
            return fail(s, m->too_many, at);
        /* insertion sort: entries per record are few */
        uint32_t i = n++;
        while (i > 0 && str_cmp(*map_key(base, m->size, i - 1), key) > 0) {
            memcpy(base + i * m->size, base + (i - 1) * m->size, m->size);
            i--;
        }
        if (i > 0 && str_cmp(*map_key(base, m->size, i - 1), key) == 0)
            return fail(s, VT_REJECT_DUPLICATE_KEY, at);
        memcpy(base + i * m->size, &e, m->size);
        *map_key(base, m->size, i) = key;
    }
    if (rc < 0)
        return -1;
    *count = n;
    return 0;
}

static int metric_value(struct scan *s, void *entry)
{
    struct num v;
    bool given;
    if (field_number(s, &v, &given) != 0)
        return -1;
    if (given)
        ((struct vt_metric *)entry)->value = v.d;
    return given;
}

/* Numbers and true/false are kept as their literal JSON text. */
static int label_value(struct scan *s, void *entry)
{
    struct vt_str *val = &((struct vt_label *)entry)->value;
    const char *at = s->p;
    struct num num;
    switch (field_begin(s, KIND(V_STRING) | KIND(V_NUMBER) | KIND(V_TRUE) | KIND(V_FALSE))) {
    case -1:
        return -1;
    case 0:
        return 0;
    case V_STRING:
        if (scan_string(s, val) != 0)
            return -1;
        break;
    case V_NUMBER:
        if (scan_number(s, &num) != 0)
            return -1;
        val->ptr = num.text;
        val->len = num.len;
        break;
    default: /* true, false */
        val->ptr = s->p;
        val->len = *s->p == 't' ? 4 : 5;
        s->p += val->len;
        break;
    }
    return val->len > s->dec->limits.max_label_value ? fail(s, VT_REJECT_FIELD_TOO_LONG, at) : 1;
}

static int field_metrics(struct scan *s, struct vt_record *r, bool *given)
{
    struct vt_record_decoder *d = s->dec;
    const struct map_spec m = {d->metrics, sizeof *d->metrics, d->limits.max_metric_name,
                               d->limits.max_metrics, VT_REJECT_TOO_MANY_METRICS, metric_value};
    int rc = field_map(s, &m, &r->n_metrics, given);
    r->metrics = rc == 0 && *given ? d->metrics : NULL;
    return rc;
}

static int field_labels(struct scan *s, struct vt_record *r, bool *given)
{
    struct vt_record_decoder *d = s->dec;
    const struct map_spec m = {d->labels, sizeof *d->labels, d->limits.max_label_key,
                               d->limits.max_labels, VT_REJECT_TOO_MANY_LABELS, label_value};
    int rc = field_map(s, &m, &r->n_labels, given);
    r->labels = rc == 0 && *given ? d->labels : NULL;
    return rc;
}

static int field_embedding(struct scan *s, struct vt_record *r, bool *given)
{
    struct vt_record_decoder *d = s->dec;
    int rc = field_begin(s, KIND(V_ARRAY));
    *given = rc > 0;
    if (rc <= 0)
        return rc;
    s->p++;
    uint32_t n = 0;
    skip_ws(s);
    if (s->p < s->end && *s->p == ']') {
        s->p++;
    } else {
        for (;;) {
            const char *eat = s->p;
            enum vkind k = peek_value(s);
            if (k == V_BAD)
                return fail(s, VT_REJECT_PARSE_ERROR, s->p);
            if (k != V_NUMBER)
                return fail(s, VT_REJECT_BAD_TYPE, s->p);
            if (n == d->limits.max_embedding)
                return fail(s, VT_REJECT_EMBEDDING_TOO_LONG, eat);
            struct num v;
            if (scan_number(s, &v) != 0)
                return -1;
            d->embedding[n++] = v.d;
            skip_ws(s);
            if (s->p < s->end && *s->p == ',') {
                s->p++;
                continue;
            }
            if (expect(s, ']') != 0)
                return -1;
            break;
        }
    }
    r->embedding = d->embedding;
    r->n_embedding = n;
    return 0;
}

/* Map a top-level key to a field id, FIELD_SYNC, or 0 (unknown). Candidates
 * are bucketed by key length so a key costs at most four first-byte checks
 * and one memcmp. */
static int lookup_key(struct vt_str k)
{
    static const uint8_t by_len[14][4] = {
        [2] = {VT_FIELD_TS},
        [4] = {FIELD_SYNC},
        [5] = {VT_FIELD_MODEL},
        [6] = {VT_FIELD_STATUS, VT_FIELD_LABELS},
        [7] = {VT_FIELD_SERVICE, VT_FIELD_VERSION, VT_FIELD_TTFT_MS, VT_FIELD_METRICS},
        [8] = {VT_FIELD_PROVIDER, VT_FIELD_COST_USD},
        [9] = {VT_FIELD_EMBEDDING},
        [10] = {VT_FIELD_LATENCY_MS, VT_FIELD_ERROR_TYPE, VT_FIELD_REQUEST_ID},
        [12] = {VT_FIELD_INPUT_TOKENS},
        [13] = {VT_FIELD_OUTPUT_TOKENS},
    };
    if (k.len >= 14)
        return 0;
    for (int i = 0; i < 4 && by_len[k.len][i]; i++) {
        int f = by_len[k.len][i];
        const char *name = field_names[f];
        assert(strlen(name) == k.len);
        if (name[0] == k.ptr[0] && memcmp(name, k.ptr, k.len) == 0)
            return f;
    }
    return 0;
}

static int decode_object(struct scan *s, struct vt_record *r, int *sync_state)
{
    struct vt_record_decoder *d = s->dec;
    const struct vt_record_limits *lim = &d->limits;
    uint32_t seen = 0, members = 0;
    struct num sync_num;
    bool sync_number = false;
    struct vt_str key;
    int rc;

    if (expect(s, '{') != 0)
        return -1;
    for (bool first = true; (rc = next_member(s, first, &key)) == 1; first = false) {
        const char *at = s->p;
        int f = lookup_key(key);
        members++;
        if (f != 0) {
            if (seen & (UINT32_C(1) << f))
                return fail(s, VT_REJECT_DUPLICATE_KEY, at);
            seen |= UINT32_C(1) << f;
        }
        bool given = false;
        struct num n;
        int err = 0;
        switch (f) {
        case VT_FIELD_TS: err = field_ts(s, r, &given); break;
        case VT_FIELD_SERVICE:
            err = field_string(s, lim->max_string, &r->service, &given);
            if (given && r->service.len == 0)
                given = false; /* "" means "use the default" */
            break;
        case VT_FIELD_MODEL: err = field_string(s, lim->max_string, &r->model, &given); break;
        case VT_FIELD_PROVIDER: err = field_string(s, lim->max_string, &r->provider, &given); break;
        case VT_FIELD_VERSION: err = field_string(s, lim->max_string, &r->version, &given); break;
        case VT_FIELD_ERROR_TYPE:
            err = field_string(s, lim->max_string, &r->error_type, &given);
            break;
        case VT_FIELD_REQUEST_ID:
            err = field_string(s, lim->max_string, &r->request_id, &given);
            break;
        case VT_FIELD_STATUS: {
            struct vt_str st;
            err = field_string(s, UINT32_MAX, &st, &given);
            if (err == 0 && given) {
                if (str_eq(st, "ok", 2))
                    r->error = false;
                else if (str_eq(st, "error", 5))
                    r->error = true;
                else
                    return fail(s, VT_REJECT_BAD_STATUS, at);
            }
            break;
        }
        case VT_FIELD_LATENCY_MS:
        case VT_FIELD_TTFT_MS:
        case VT_FIELD_COST_USD:
            err = field_number(s, &n, &given);
            if (err == 0 && given) {
                if (n.d < 0)
                    return fail(s, VT_REJECT_OUT_OF_RANGE, at);
                *(f == VT_FIELD_LATENCY_MS ? &r->latency_ms
                  : f == VT_FIELD_TTFT_MS  ? &r->ttft_ms
                                           : &r->cost_usd) = n.d;
            }
            break;
        case VT_FIELD_INPUT_TOKENS: err = field_tokens(s, &r->input_tokens, &given); break;
        case VT_FIELD_OUTPUT_TOKENS: err = field_tokens(s, &r->output_tokens, &given); break;
        case VT_FIELD_METRICS: err = field_metrics(s, r, &given); break;
        case VT_FIELD_LABELS: err = field_labels(s, r, &given); break;
        case VT_FIELD_EMBEDDING: err = field_embedding(s, r, &given); break;
        case FIELD_SYNC:
            if (peek_value(s) == V_NUMBER) {
                err = scan_number(s, &sync_num);
                sync_number = err == 0;
            } else {
                err = skip_value(s);
            }
            break;
        default:
            r->unknown_fields++;
            err = skip_value(s);
            break;
        }
        if (err != 0)
            return -1;
        if (given)
            r->present |= VT_FIELD_BIT(f);
    }
    if (rc < 0)
        return -1;
    skip_ws(s);
    if (s->p != s->end)
        return fail(s, VT_REJECT_PARSE_ERROR, s->p);

    if (seen & (UINT32_C(1) << FIELD_SYNC)) {
        if (members == 1) {
            if (!sync_number || !sync_num.is_int || !sync_num.u_ok ||
                (sync_num.neg && sync_num.u != 0))
                return fail(s, VT_REJECT_BAD_TYPE, s->base);
            r->sync = sync_num.u;
            *sync_state = 1;
            return 0;
        }
        r->unknown_fields++; /* "sync" beside record fields is just unknown */
    }
    return 0;
}

enum vt_record_kind vt_record_decode(struct vt_record_decoder *dec, const char *line, size_t len,
                                     int64_t now_ms, struct vt_record *rec)
{
    assert(dec && rec && (line || len == 0));
    memset(rec, 0, sizeof *rec);
    rec->arrival_ms = now_ms;
    rec->ts_ms = now_ms;
    dec->scratch_used = 0;

    struct scan s = {line, line + len, line, dec, VT_REJECT_NONE, line};
    skip_ws(&s);
    if (s.p == s.end)
        return VT_RECORD_EMPTY;
    if (len > dec->limits.max_record_bytes) {
        fail(&s, VT_REJECT_TOO_LARGE, line + dec->limits.max_record_bytes);
        goto rejected;
    }
    int sync = 0;
    if (decode_object(&s, rec, &sync) != 0)
        goto rejected;
    if (sync) {
        struct vt_record r2 = {.arrival_ms = now_ms, .ts_ms = now_ms, .sync = rec->sync};
        *rec = r2;
        return VT_RECORD_SYNC;
    }
    if (!(rec->present & VT_FIELD_BIT(VT_FIELD_TS)))
        rec->ts_ms = now_ms;
    if (!(rec->present & VT_FIELD_BIT(VT_FIELD_SERVICE))) {
        if (dec->default_service_len == 0) {
            fail(&s, VT_REJECT_MISSING_SERVICE, line);
            goto rejected;
        }
        rec->service.ptr = dec->default_service;
        rec->service.len = dec->default_service_len;
    }
    assert(dec->scratch_used <= len);
    assert(rec->service.len > 0);
    return VT_RECORD_DATA;

rejected:
    assert(s.err != VT_REJECT_NONE);
    rec->reject = s.err;
    rec->reject_offset = (uint32_t)(s.err_at - line);
    if (!(rec->present & VT_FIELD_BIT(VT_FIELD_SERVICE)) && dec->default_service_len) {
        rec->service.ptr = dec->default_service;
        rec->service.len = dec->default_service_len;
    }
    return VT_RECORD_REJECTED;
}
