/*
 * otlp.c - OTLP trace requests -> vitals records: the decoder's set-up from
 * the configuration (allow-listed labels, the metric map, the key table) and
 * the ExportTraceServiceResponse / google.rpc.Status encoders. The contract
 * is otlp.h; docs/otlp.md has the attribute table.
 *
 * The rest lives in files named for what they do, sharing otlp_internal.h:
 * otlp_proto.c (protobuf wire walker), otlp_json.c (OTLP/JSON decoder) and
 * otlp_map.c (span -> record mapping, used by both decoders).
 */
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "opentelemetry/proto/collector/trace/v1/trace_service.pb-c.h"
#include "otlp_internal.h"

/* ------------------------------------------------------------------------
 * Configuration
 * ------------------------------------------------------------------------ */

static void seterr(char *err, size_t errsz, const char *fmt, ...)
{
    if (!err || !errsz)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errsz, fmt, ap);
    va_end(ap);
}

static char *trim_dup(const char *p, size_t n)
{
    while (n && (*p == ' ' || *p == '\t'))
        p++, n--;
    while (n && (p[n - 1] == ' ' || p[n - 1] == '\t'))
        n--;
    char *s = malloc(n + 1);
    if (s) {
        memcpy(s, p, n);
        s[n] = 0;
    }
    return s;
}

static int cmp_label_cfg(const void *a, const void *b)
{
    const struct label_cfg *x = a, *y = b;
    size_t n = x->label.len < y->label.len ? x->label.len : y->label.len;
    int c = memcmp(x->label.ptr, y->label.ptr, n);
    return c ? c : (x->label.len > y->label.len) - (x->label.len < y->label.len);
}

/* Split "a=b,c" into items; for each, call add(attr, value-or-NULL). */
static int parse_spec(struct vt_otlp_decoder *d, const char *spec, bool labels, char *err,
                      size_t errsz)
{
    const char *what = labels ? "labels" : "metrics";
    for (const char *p = spec; p && *p;) {
        const char *end = strchr(p, ',');
        size_t n = end ? (size_t)(end - p) : strlen(p);
        const char *eq = memchr(p, '=', n);
        char *attr = trim_dup(p, eq ? (size_t)(eq - p) : n);
        char *val = eq ? trim_dup(eq + 1, n - (size_t)(eq - p) - 1) : NULL;
        if (!attr || (eq && !val)) {
            free(attr), free(val);
            errno = ENOMEM;
            return -1;
        }
        const char *bad = NULL;
        if (!*attr)
            bad = "empty attribute name";
        else if (eq && !*val)
            bad = "empty name after '='";
        else if (!labels && !eq)
            bad = "expected attr=metric";
        else if ((labels ? d->n_labels : d->n_metrics) >= MAX_CFG)
            bad = "too many entries (at most 256)";
        if (!bad && labels) {
            const char *lk = val ? val : attr;
            if (strlen(lk) > d->lim.max_label_key)
                bad = "label key longer than the label key limit";
        }
        if (!bad && !labels && strlen(val) > d->lim.max_metric_name)
            bad = "metric name longer than the metric name limit";
        if (bad) {
            seterr(err, errsz, "otlp %s: '%.*s': %s", what, (int)n, p, bad);
            free(attr), free(val);
            errno = EINVAL;
            return -1;
        }
        if (labels) {
            struct label_cfg *c = &d->labels[d->n_labels++];
            c->attr = attr;
            c->label_buf = val;
            c->label.ptr = val ? val : attr;
            c->label.len = strlen(c->label.ptr);
        } else {
            struct metric_cfg *c = &d->metrics[d->n_metrics++];
            c->attr = attr;
            c->name = val;
            c->target = !strcmp(val, "ttft_ms") ? TARGET_TTFT_MS
                        : !strcmp(val, "ttft_s") ? TARGET_TTFT_S
                                                 : TARGET_METRIC;
        }
        p = end ? end + 1 : p + n;
    }
    return 0;
}

struct vt_otlp_decoder *vt_otlp_decoder_new(const struct vt_record_limits *limits,
                                            const char *default_service, const char *labels,
                                            const char *metrics, char *err, size_t errsz)
{
    struct vt_otlp_decoder *d = calloc(1, sizeof *d);
    if (!d) {
        errno = ENOMEM;
        return NULL;
    }
    if (limits)
        d->lim = *limits;
    else
        vt_record_limits_default(&d->lim);
    if (!d->lim.max_labels || !d->lim.max_metrics || !d->lim.max_embedding ||
        !d->lim.max_string || !d->lim.max_label_key || !d->lim.max_label_value ||
        !d->lim.max_metric_name) {
        seterr(err, errsz, "otlp: record limits must be >= 1");
        free(d);
        errno = EINVAL;
        return NULL;
    }
    d->labels = calloc(MAX_CFG, sizeof *d->labels);
    d->metrics = calloc(MAX_CFG, sizeof *d->metrics);
    d->default_service = strdup(default_service ? default_service : "");
    if (!d->labels || !d->metrics || !d->default_service)
        goto nomem;
    if (strlen(d->default_service) > d->lim.max_string) {
        seterr(err, errsz, "otlp: default service longer than %u bytes", d->lim.max_string);
        errno = EINVAL;
        goto fail;
    }
    if (parse_spec(d, labels, true, err, errsz) || parse_spec(d, metrics, false, err, errsz)) {
        if (errno == ENOMEM)
            goto nomem;
        goto fail;
    }
    qsort(d->labels, d->n_labels, sizeof *d->labels, cmp_label_cfg);
    for (uint32_t i = 1; i < d->n_labels; i++)
        if (cmp_label_cfg(&d->labels[i - 1], &d->labels[i]) == 0) {
            seterr(err, errsz, "otlp labels: label '%s' given twice", d->labels[i].label.ptr);
            errno = EINVAL;
            goto fail;
        }

    uint32_t entries = K__COUNT + d->n_labels + d->n_metrics, size = 64;
    while (size < 4 * entries)
        size <<= 1;
    d->tab = calloc(size, sizeof *d->tab);
    d->res_labels = calloc(d->n_labels + 1, sizeof *d->res_labels);
    d->span_labels = calloc(d->n_labels + 1, sizeof *d->span_labels);
    d->out_labels = calloc(d->n_labels + 1, sizeof *d->out_labels);
    d->label_text = calloc(d->n_labels + 1, LABEL_TEXT);
    d->mets = calloc(d->lim.max_metrics + 1, sizeof *d->mets);
    d->embedding = calloc(d->lim.max_embedding, sizeof *d->embedding);
    if (!d->tab || !d->res_labels || !d->span_labels || !d->out_labels || !d->label_text ||
        !d->mets || !d->embedding)
        goto nomem;
    d->tab_mask = size - 1;
    for (int k = 0; k < K__COUNT; k++)
        vt__otlp_key_add(d, vt__otlp_known_keys[k])->known = (int16_t)k;
    for (uint32_t i = 0; i < d->n_labels; i++) {
        struct keyent *e = vt__otlp_key_add(d, d->labels[i].attr);
        if (e->label >= 0) {
            seterr(err, errsz, "otlp labels: attribute '%s' given twice", d->labels[i].attr);
            errno = EINVAL;
            goto fail;
        }
        e->label = (int16_t)i;
    }
    for (uint32_t i = 0; i < d->n_metrics; i++) {
        struct keyent *e = vt__otlp_key_add(d, d->metrics[i].attr);
        if (e->metric >= 0) {
            seterr(err, errsz, "otlp metrics: attribute '%s' given twice", d->metrics[i].attr);
            errno = EINVAL;
            goto fail;
        }
        e->metric = (int16_t)i;
    }
    return d;
nomem:
    seterr(err, errsz, "otlp: out of memory");
    errno = ENOMEM;
fail:;
    int e = errno;
    vt_otlp_decoder_free(d);
    errno = e;
    return NULL;
}

void vt_otlp_decoder_free(struct vt_otlp_decoder *d)
{
    if (!d)
        return;
    for (uint32_t i = 0; i < d->n_labels; i++)
        free(d->labels[i].attr), free(d->labels[i].label_buf);
    for (uint32_t i = 0; i < d->n_metrics; i++)
        free(d->metrics[i].attr), free(d->metrics[i].name);
    free(d->labels);
    free(d->metrics);
    free(d->default_service);
    free(d->tab);
    free(d->res_labels);
    free(d->span_labels);
    free(d->out_labels);
    free(d->label_text);
    free(d->mets);
    free(d->embedding);
    free(d);
}

/* ------------------------------------------------------------------------
 * Responses
 * ------------------------------------------------------------------------ */

int vt_otlp_response_proto(const struct vt_otlp_result *res, uint8_t *buf, size_t cap)
{
    Opentelemetry__Proto__Collector__Trace__V1__ExportTraceServiceResponse resp =
        OPENTELEMETRY__PROTO__COLLECTOR__TRACE__V1__EXPORT_TRACE_SERVICE_RESPONSE__INIT;
    Opentelemetry__Proto__Collector__Trace__V1__ExportTracePartialSuccess ps =
        OPENTELEMETRY__PROTO__COLLECTOR__TRACE__V1__EXPORT_TRACE_PARTIAL_SUCCESS__INIT;
    if (res->rejected) {
        ps.rejected_spans = (int64_t)res->rejected;
        ps.error_message = (char *)res->message;
        resp.partial_success = &ps;
    }
    size_t n =
        opentelemetry__proto__collector__trace__v1__export_trace_service_response__get_packed_size(
            &resp);
    if (n > cap)
        return -ENOSPC;
    opentelemetry__proto__collector__trace__v1__export_trace_service_response__pack(&resp, buf);
    return (int)n;
}

static int dump_json(json_t *j, char *buf, size_t cap)
{
    if (!j)
        return -ENOMEM;
    size_t n = json_dumpb(j, buf, cap, JSON_COMPACT);
    json_decref(j);
    if (n == 0 || n >= cap)
        return -ENOSPC;
    buf[n] = 0;
    return (int)n;
}

int vt_otlp_response_json(const struct vt_otlp_result *res, char *buf, size_t cap)
{
    if (!res->rejected) {
        if (cap < 3)
            return -ENOSPC;
        memcpy(buf, "{}", 3);
        return 2;
    }
    char n[24];
    snprintf(n, sizeof n, "%" PRIu64, res->rejected);
    return dump_json(json_pack("{s:{s:s,s:s}}", "partialSuccess", "rejectedSpans", n,
                               "errorMessage", res->message),
                     buf, cap);
}

int vt_otlp_status_proto(int code, const char *message, uint8_t *buf, size_t cap)
{
    size_t ml = message ? strlen(message) : 0;
    if (ml > 400)
        ml = 400;
    size_t need = (code ? 1 + 10 : 0) + (ml ? 1 + 2 + ml : 0);
    if (cap < need)
        return -ENOSPC;
    size_t o = 0;
    if (code) {
        buf[o++] = 0x08; /* field 1, varint */
        uint64_t v = (uint64_t)(int64_t)code;
        do {
            buf[o++] = (uint8_t)((v & 0x7f) | (v > 0x7f ? 0x80 : 0));
            v >>= 7;
        } while (v);
    }
    if (ml) {
        buf[o++] = 0x12; /* field 2, length-delimited */
        if (ml > 0x7f) {
            buf[o++] = (uint8_t)(0x80 | (ml & 0x7f));
            buf[o++] = (uint8_t)(ml >> 7);
        } else
            buf[o++] = (uint8_t)ml;
        memcpy(buf + o, message, ml);
        o += ml;
    }
    return (int)o;
}

int vt_otlp_status_json(int code, const char *message, char *buf, size_t cap)
{
    char m[401];
    snprintf(m, sizeof m, "%s", message ? message : "");
    return dump_json(json_pack("{s:i,s:s}", "code", code, "message", m), buf, cap);
}
