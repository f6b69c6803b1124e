/*
 * otlp.c - OTLP trace requests -> vitals records (the contract is otlp.h;
 * docs/otlp.md has the attribute table).
 *
 * Why a hand-written protobuf walker and not protobuf-c's unpack: unpack
 * allocates every KeyValue and AnyValue of every span and recurses as deep as
 * the input nests ArrayValue/KeyValueList, so a small hostile request could
 * exhaust the stack. The walker here knows the schema, descends only into the
 * messages it needs (request -> ResourceSpans -> ScopeSpans -> Span ->
 * KeyValue -> AnyValue, one level of ArrayValue for embedding vectors), skips
 * everything else as opaque bytes, points into the input instead of copying,
 * and so has a fixed depth and no allocation per span. JSON goes through
 * jansson (one tree per request) and the same mapper.
 *
 * The mapper sees a span as a stream of (key, value) attributes. A small hash
 * table built at start-up turns each key into its roles: one of the known
 * GenAI / OpenInference attributes, a label of the allow-list, a metric of
 * the configured map (a key may have several roles). Values are kept as typed
 * views into the input until the span ends; only then is the record built and
 * validated, so that a non-LLM span is ignored whatever it carries.
 */
#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "opentelemetry/proto/collector/trace/v1/trace_service.pb-c.h"
#include "otlp.h"

/* ------------------------------------------------------------------------
 * Attribute values and the key table
 * ------------------------------------------------------------------------ */

enum av_type { AV_NONE = 0, AV_STRING, AV_BOOL, AV_INT, AV_DOUBLE, AV_ARRAY, AV_KVLIST, AV_BYTES };

/* A typed view of one AnyValue. Strings point into the request. An array is
 * kept undecoded: its ArrayValue bytes (protobuf) or its json_t (JSON). */
struct anyval {
    enum av_type type;
    bool bad;             /* JSON: a value of the wrong JSON type (e.g. "intValue": "x") */
    struct vt_str s;      /* AV_STRING, AV_BYTES (raw), AV_ARRAY (protobuf bytes) */
    int64_t i;
    double d;
    bool b;
    const json_t *j;      /* AV_ARRAY from JSON: the "values" array */
};

enum known {
    K_OI_KIND, K_OP, K_RESP_MODEL, K_REQ_MODEL, K_LLM_MODEL, K_EMB_MODEL,
    K_PROV_NAME, K_SYSTEM, K_LLM_PROVIDER, K_LLM_SYSTEM,
    K_IN_TOKENS, K_PROMPT_TOKENS, K_OI_PROMPT,
    K_OUT_TOKENS, K_COMPLETION_TOKENS, K_OI_COMPLETION,
    K_COST_TOTAL, K_COST_PROMPT, K_COST_COMPLETION, K_TTFT_S,
    K_ERROR_TYPE, K_EXC_TYPE,
    K_ANN_NAME, K_ANN_SCORE, K_EVAL_NAME, K_EVAL_SCORE,
    K_EMBEDDING, K_SERVICE, K_GEVAL_NAME, K_GEVAL_SCORE,
    K__COUNT
};

static const char *const known_keys[K__COUNT] = {
    [K_OI_KIND] = "openinference.span.kind",
    [K_OP] = "gen_ai.operation.name",
    [K_RESP_MODEL] = "gen_ai.response.model",
    [K_REQ_MODEL] = "gen_ai.request.model",
    [K_LLM_MODEL] = "llm.model_name",
    [K_EMB_MODEL] = "embedding.model_name",
    [K_PROV_NAME] = "gen_ai.provider.name",
    [K_SYSTEM] = "gen_ai.system",
    [K_LLM_PROVIDER] = "llm.provider",
    [K_LLM_SYSTEM] = "llm.system",
    [K_IN_TOKENS] = "gen_ai.usage.input_tokens",
    [K_PROMPT_TOKENS] = "gen_ai.usage.prompt_tokens",
    [K_OI_PROMPT] = "llm.token_count.prompt",
    [K_OUT_TOKENS] = "gen_ai.usage.output_tokens",
    [K_COMPLETION_TOKENS] = "gen_ai.usage.completion_tokens",
    [K_OI_COMPLETION] = "llm.token_count.completion",
    [K_COST_TOTAL] = "llm.cost.total",
    [K_COST_PROMPT] = "llm.cost.prompt",
    [K_COST_COMPLETION] = "llm.cost.completion",
    [K_TTFT_S] = "gen_ai.server.time_to_first_token",
    [K_ERROR_TYPE] = "error.type",
    [K_EXC_TYPE] = "exception.type",
    [K_ANN_NAME] = "annotation.name",
    [K_ANN_SCORE] = "annotation.score",
    [K_EVAL_NAME] = "evaluation.name",
    [K_EVAL_SCORE] = "evaluation.score",
    [K_EMBEDDING] = "embedding.embeddings.0.embedding.vector",
    [K_SERVICE] = "service.name",
    [K_GEVAL_NAME] = "gen_ai.evaluation.name",
    [K_GEVAL_SCORE] = "gen_ai.evaluation.score.value",
};

/* Roles of one attribute key. -1 = none. */
struct keyent {
    const char *key; /* NULL = empty slot */
    uint32_t len;
    uint32_t hash;
    int16_t known, label, metric;
};

struct label_cfg {
    char *attr;          /* attribute key */
    struct vt_str label; /* label key (points into attr's allocation or attr) */
    char *label_buf;
};

enum { TARGET_METRIC = 0, TARGET_TTFT_MS, TARGET_TTFT_S };
struct metric_cfg {
    char *attr;
    char *name;
    int target;
};

#define MAX_CFG 256
#define LABEL_TEXT 40 /* room for a number or bool formatted as a label value */

struct vt_otlp_decoder {
    struct vt_record_limits lim;
    char *default_service;
    struct label_cfg *labels; /* sorted by label key */
    uint32_t n_labels;
    struct metric_cfg *metrics;
    uint32_t n_metrics;
    struct keyent *tab;
    uint32_t tab_mask;

    /* per-request: resource attributes */
    struct anyval res_service;
    struct anyval *res_labels; /* n_labels */
    /* per-span state */
    struct anyval kv[K__COUNT];
    uint64_t kv_set;
    struct anyval *span_labels; /* n_labels */
    struct vt_metric *mets;     /* max_metrics, unsorted while collecting */
    uint32_t n_mets;
    double retrieval_sum;
    uint32_t retrieval_n;
    struct anyval ttft_map; /* from the metric map (ms or s) */
    int ttft_map_target;
    struct anyval exc_event_type; /* exception.type of the first "exception" event */
    enum vt_record_reject pending;  /* a problem found while walking */
    const char *pending_detail;
    /* record building */
    struct vt_label *out_labels;
    char *label_text; /* n_labels * LABEL_TEXT */
    double *embedding; /* max_embedding */
    char request_id[64];
    uint8_t trace_id[16], span_id[8];
    size_t trace_len, span_len;
    uint64_t start_ns, end_ns;
    int status_code;
    /* result being built */
    char first_detail[160];
    char first_span[20];
};

/* Hash of an attribute key: its length and its first and last 8 bytes, so
 * that the cost does not grow with the key (keys share long prefixes such as
 * "gen_ai.usage." but differ in length or tail; collisions only cost a
 * memcmp). */
static uint32_t key_hash(const char *s, size_t n)
{
    uint64_t a = 0, b = 0;
    if (n >= 8) {
        memcpy(&a, s, 8);
        memcpy(&b, s + n - 8, 8);
    } else if (n) {
        memcpy(&a, s, n);
    }
    uint64_t h = (a * UINT64_C(0x9E3779B97F4A7C15)) ^ (b * UINT64_C(0xC2B2AE3D27D4EB4F)) ^
                 ((uint64_t)n * UINT64_C(0x165667B19E3779F9));
    h ^= h >> 29;
    h *= UINT64_C(0xBF58476D1CE4E5B9);
    return (uint32_t)(h >> 32);
}

static struct keyent *tab_slot(struct vt_otlp_decoder *d, const char *k, size_t n, uint32_t h)
{
    for (uint32_t i = h & d->tab_mask;; i = (i + 1) & d->tab_mask) {
        struct keyent *e = &d->tab[i];
        if (!e->key || (e->hash == h && e->len == n && memcmp(e->key, k, n) == 0))
            return e;
    }
}

static const struct keyent *tab_find(const struct vt_otlp_decoder *d, const char *k, size_t n)
{
    uint32_t h = key_hash(k, n);
    for (uint32_t i = h & d->tab_mask;; i = (i + 1) & d->tab_mask) {
        const struct keyent *e = &d->tab[i];
        if (!e->key)
            return NULL;
        if (e->hash == h && e->len == n && memcmp(e->key, k, n) == 0)
            return e;
    }
}

static struct keyent *tab_add(struct vt_otlp_decoder *d, const char *k)
{
    size_t n = strlen(k);
    uint32_t h = key_hash(k, n);
    struct keyent *e = tab_slot(d, k, n, h);
    if (!e->key)
        *e = (struct keyent){k, (uint32_t)n, h, -1, -1, -1};
    return e;
}

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
        tab_add(d, known_keys[k])->known = (int16_t)k;
    for (uint32_t i = 0; i < d->n_labels; i++) {
        struct keyent *e = tab_add(d, d->labels[i].attr);
        if (e->label >= 0) {
            seterr(err, errsz, "otlp labels: attribute '%s' given twice", d->labels[i].attr);
            errno = EINVAL;
            goto fail;
        }
        e->label = (int16_t)i;
    }
    for (uint32_t i = 0; i < d->n_metrics; i++) {
        struct keyent *e = tab_add(d, d->metrics[i].attr);
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
 * The mapper: attributes in, one record out
 * ------------------------------------------------------------------------ */

static void pend(struct vt_otlp_decoder *d, enum vt_record_reject r, const char *detail)
{
    if (d->pending == VT_REJECT_NONE) {
        d->pending = r;
        d->pending_detail = detail;
    }
}

static void span_begin(struct vt_otlp_decoder *d)
{
    d->kv_set = 0;
    for (uint32_t i = 0; i < d->n_labels; i++)
        d->span_labels[i].type = AV_NONE;
    d->n_mets = 0;
    d->retrieval_sum = 0;
    d->retrieval_n = 0;
    d->ttft_map.type = AV_NONE;
    d->exc_event_type.type = AV_NONE;
    d->pending = VT_REJECT_NONE;
    d->pending_detail = NULL;
    d->trace_len = d->span_len = 0;
    d->start_ns = d->end_ns = 0;
    d->status_code = 0;
}

/* A finite number from an int or double attribute; else a pending reject. */
static bool num_of(struct vt_otlp_decoder *d, const struct anyval *v, double *out,
                   const char *what)
{
    if (v->type == AV_INT && !v->bad) {
        *out = (double)v->i;
        return true;
    }
    if (v->type == AV_DOUBLE && !v->bad) {
        if (!isfinite(v->d)) {
            pend(d, VT_REJECT_NON_FINITE, what);
            return false;
        }
        *out = v->d;
        return true;
    }
    pend(d, VT_REJECT_BAD_TYPE, what);
    return false;
}

static bool valid_utf8(struct vt_str s)
{
    if (!s.len)
        return true;
    const unsigned char *p = (const unsigned char *)s.ptr, *end = p + s.len;
    while (p < end) {
        unsigned c = *p;
        if (c < 0x80) {
            if (c == 0)
                return false;
            p++;
            continue;
        }
        size_t n;
        unsigned lo = 0x80, hi = 0xbf;
        if (c >= 0xc2 && c <= 0xdf)
            n = 2;
        else if (c >= 0xe0 && c <= 0xef) {
            n = 3;
            if (c == 0xe0)
                lo = 0xa0;
            else if (c == 0xed)
                hi = 0x9f;
        } else if (c >= 0xf0 && c <= 0xf4) {
            n = 4;
            if (c == 0xf0)
                lo = 0x90;
            else if (c == 0xf4)
                hi = 0x8f;
        } else
            return false;
        if ((size_t)(end - p) < n || p[1] < lo || p[1] > hi)
            return false;
        for (size_t i = 2; i < n; i++)
            if ((p[i] & 0xc0) != 0x80)
                return false;
        p += n;
    }
    return true;
}

/* Add (or replace) a metric; names are views into the request. */
static void add_metric(struct vt_otlp_decoder *d, struct vt_str name, double v)
{
    if (!name.len)
        return;
    if (name.len > d->lim.max_metric_name) {
        pend(d, VT_REJECT_FIELD_TOO_LONG, "metric name too long");
        return;
    }
    if (!valid_utf8(name)) {
        pend(d, VT_REJECT_BAD_UTF8, "metric name is not UTF-8");
        return;
    }
    for (uint32_t i = 0; i < d->n_mets; i++)
        if (d->mets[i].name.len == name.len && !memcmp(d->mets[i].name.ptr, name.ptr, name.len)) {
            d->mets[i].value = v; /* the later attribute wins */
            return;
        }
    if (d->n_mets >= d->lim.max_metrics) {
        pend(d, VT_REJECT_TOO_MANY_METRICS, "too many metrics");
        return;
    }
    d->mets[d->n_mets++] = (struct vt_metric){name, v};
}

static bool has_prefix(const char *k, size_t n, const char *pre, size_t pn)
{
    return n > pn && memcmp(k, pre, pn) == 0;
}

/* Patterns that are not fixed keys: annotation.<name>.score,
 * evaluation.<name>.score, retrieval.documents.<N>.document.score. */
static void pattern_attr(struct vt_otlp_decoder *d, const char *k, size_t n,
                         const struct anyval *v)
{
    static const char score[] = ".score", docscore[] = ".document.score";
    const size_t sl = sizeof score - 1, dl = sizeof docscore - 1;
    if (n < 12)
        return;
    size_t pre = has_prefix(k, n, "annotation.", 11) ? 11
                 : has_prefix(k, n, "evaluation.", 11) ? 11
                                                       : 0;
    if (pre && n > pre + sl && !memcmp(k + n - sl, score, sl)) {
        double x;
        if (num_of(d, v, &x, "score attribute is not a number"))
            add_metric(d, (struct vt_str){k + pre, n - pre - sl}, x);
        return;
    }
    if (has_prefix(k, n, "retrieval.documents.", 20) && n > 20 + dl &&
        !memcmp(k + n - dl, docscore, dl)) {
        double x;
        if (num_of(d, v, &x, "retrieval document score is not a number")) {
            d->retrieval_sum += x;
            d->retrieval_n++;
        }
    }
}

/* One span attribute. */
static void span_attr(struct vt_otlp_decoder *d, const char *k, size_t n, const struct anyval *v)
{
    const struct keyent *e = tab_find(d, k, n);
    if (!e) {
        pattern_attr(d, k, n, v);
        return;
    }
    if (e->known >= 0 && e->known != K_SERVICE) {
        d->kv[e->known] = *v;
        d->kv_set |= UINT64_C(1) << e->known;
    }
    if (e->label >= 0)
        d->span_labels[e->label] = *v;
    if (e->metric >= 0) {
        const struct metric_cfg *m = &d->metrics[e->metric];
        if (m->target == TARGET_METRIC) {
            double x;
            if (num_of(d, v, &x, "mapped metric attribute is not a number"))
                add_metric(d, (struct vt_str){m->name, strlen(m->name)}, x);
        } else {
            d->ttft_map = *v;
            d->ttft_map_target = m->target;
        }
    }
}

/* One resource attribute: service.name and labels. */
static void resource_attr(struct vt_otlp_decoder *d, const char *k, size_t n,
                          const struct anyval *v)
{
    const struct keyent *e = tab_find(d, k, n);
    if (!e)
        return;
    if (e->known == K_SERVICE)
        d->res_service = *v;
    if (e->label >= 0)
        d->res_labels[e->label] = *v;
}

static void resource_begin(struct vt_otlp_decoder *d)
{
    d->res_service.type = AV_NONE;
    for (uint32_t i = 0; i < d->n_labels; i++)
        d->res_labels[i].type = AV_NONE;
}

/* An attribute of an event named `ev`. */
static void event_attr(struct vt_otlp_decoder *d, struct vt_str ev, const char *k, size_t n,
                       const struct anyval *v, struct anyval *geval_name,
                       struct anyval *geval_score)
{
    const struct keyent *e = tab_find(d, k, n);
    if (!e || e->known < 0)
        return;
    if (ev.len == 9 && !memcmp(ev.ptr, "exception", 9) && e->known == K_EXC_TYPE &&
        d->exc_event_type.type == AV_NONE)
        d->exc_event_type = *v;
    if (ev.len == 24 && !memcmp(ev.ptr, "gen_ai.evaluation.result", 24)) {
        if (e->known == K_GEVAL_NAME)
            *geval_name = *v;
        else if (e->known == K_GEVAL_SCORE)
            *geval_score = *v;
    }
}

static void event_end(struct vt_otlp_decoder *d, const struct anyval *name,
                      const struct anyval *score)
{
    double x;
    if (name->type == AV_STRING && score->type != AV_NONE &&
        num_of(d, score, &x, "evaluation score is not a number"))
        add_metric(d, name->s, x);
}

static bool str_is(const struct anyval *v, const char *lit)
{
    size_t n = strlen(lit);
    return v->type == AV_STRING && v->s.len == n && memcmp(v->s.ptr, lit, n) == 0;
}

static bool str_ieq(const struct anyval *v, const char *lit)
{
    size_t n = strlen(lit);
    if (v->type != AV_STRING || v->s.len != n)
        return false;
    for (size_t i = 0; i < n; i++)
        if ((v->s.ptr[i] | 0x20) != (lit[i] | 0x20))
            return false;
    return true;
}

#define SET(k) (d->kv_set & (UINT64_C(1) << (k)))

static bool is_llm_span(const struct vt_otlp_decoder *d)
{
    if (SET(K_OI_KIND))
        return str_ieq(&d->kv[K_OI_KIND], "LLM") || str_ieq(&d->kv[K_OI_KIND], "EMBEDDING");
    if (SET(K_OP)) {
        const struct anyval *v = &d->kv[K_OP];
        return str_is(v, "chat") || str_is(v, "text_completion") ||
               str_is(v, "generate_content") || str_is(v, "embeddings");
    }
    return SET(K_REQ_MODEL) || SET(K_LLM_MODEL);
}

/* A string field of the record: checked against the record's rules. */
static bool take_str(struct vt_otlp_decoder *d, const struct anyval *v, struct vt_str *out,
                     uint32_t max, const char *what)
{
    if (v->type != AV_STRING || v->bad) {
        pend(d, VT_REJECT_BAD_TYPE, what);
        return false;
    }
    if (v->s.len > max) {
        pend(d, VT_REJECT_FIELD_TOO_LONG, what);
        return false;
    }
    if (!valid_utf8(v->s)) {
        pend(d, VT_REJECT_BAD_UTF8, what);
        return false;
    }
    *out = v->s;
    return true;
}

/* First set key of a list (in priority order), or -1. */
static int first_set(const struct vt_otlp_decoder *d, const int *keys, int n)
{
    for (int i = 0; i < n; i++)
        if (SET(keys[i]) && d->kv[keys[i]].type != AV_NONE)
            return keys[i];
    return -1;
}

static bool take_tokens(struct vt_otlp_decoder *d, int k, uint64_t *out)
{
    const struct anyval *v = &d->kv[k];
    if (v->type == AV_INT && !v->bad) {
        if (v->i < 0) {
            pend(d, VT_REJECT_OUT_OF_RANGE, "negative token count");
            return false;
        }
        *out = (uint64_t)v->i;
        return true;
    }
    if (v->type == AV_DOUBLE && !v->bad) {
        if (!isfinite(v->d)) {
            pend(d, VT_REJECT_NON_FINITE, "token count is not finite");
            return false;
        }
        if (v->d < 0 || v->d != floor(v->d) || v->d >= 18446744073709551616.0) {
            pend(d, VT_REJECT_OUT_OF_RANGE, "token count is not a non-negative integer");
            return false;
        }
        *out = (uint64_t)v->d;
        return true;
    }
    pend(d, VT_REJECT_BAD_TYPE, "token count is not a number");
    return false;
}

static int label_value(struct vt_otlp_decoder *d, const struct anyval *v, char *text,
                       struct vt_str *out)
{
    int n;
    switch (v->bad ? AV_NONE : v->type) {
    case AV_STRING:
        if (v->s.len > d->lim.max_label_value) {
            pend(d, VT_REJECT_FIELD_TOO_LONG, "label value too long");
            return -1;
        }
        if (!valid_utf8(v->s)) {
            pend(d, VT_REJECT_BAD_UTF8, "label value is not UTF-8");
            return -1;
        }
        *out = v->s;
        return 0;
    case AV_BOOL:
        n = snprintf(text, LABEL_TEXT, "%s", v->b ? "true" : "false");
        break;
    case AV_INT:
        n = snprintf(text, LABEL_TEXT, "%" PRId64, v->i);
        break;
    case AV_DOUBLE:
        if (!isfinite(v->d)) {
            pend(d, VT_REJECT_NON_FINITE, "label value is not finite");
            return -1;
        }
        n = snprintf(text, LABEL_TEXT, "%.17g", v->d);
        break;
    default:
        pend(d, VT_REJECT_BAD_TYPE, "label value is not a scalar");
        return -1;
    }
    if ((uint32_t)n > d->lim.max_label_value) {
        pend(d, VT_REJECT_FIELD_TOO_LONG, "label value too long");
        return -1;
    }
    *out = (struct vt_str){text, (size_t)n};
    return 0;
}

static void put_hex(char *o, const uint8_t *p, size_t n)
{
    static const char hx[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        o[2 * i] = hx[p[i] >> 4];
        o[2 * i + 1] = hx[p[i] & 15];
    }
}

static int cmp_metric(const void *a, const void *b)
{
    const struct vt_metric *x = a, *y = b;
    size_t n = x->name.len < y->name.len ? x->name.len : y->name.len;
    int c = n ? memcmp(x->name.ptr, y->name.ptr, n) : 0;
    return c ? c : (x->name.len > y->name.len) - (x->name.len < y->name.len);
}

/* Decode an embedding vector (protobuf ArrayValue bytes or JSON values). */
static int embedding_values(struct vt_otlp_decoder *d, const struct anyval *v, uint32_t *n);

/* The span is complete: ignore it, reject it, or emit its record. */
static void span_end(struct vt_otlp_decoder *d, int64_t now_ms, vt_otlp_sink_cb sink,
                     void *data, struct vt_otlp_result *res)
{
    res->spans++;
    if (!is_llm_span(d)) {
        res->ignored++;
        return;
    }
    struct vt_record rec;
    memset(&rec, 0, sizeof rec);
    rec.arrival_ms = now_ms;
    rec.ts_ms = now_ms;
    uint32_t present = 0;

    /* request id first: it names the span in messages */
    if (d->trace_len || d->span_len) {
        put_hex(d->request_id, d->trace_id, d->trace_len);
        d->request_id[2 * d->trace_len] = '-';
        put_hex(d->request_id + 2 * d->trace_len + 1, d->span_id, d->span_len);
        rec.request_id = (struct vt_str){d->request_id, 2 * d->trace_len + 1 + 2 * d->span_len};
        if (rec.request_id.len <= d->lim.max_string)
            present |= VT_FIELD_BIT(VT_FIELD_REQUEST_ID);
    }

    /* service: the resource's, unless absent or the SDK's placeholder */
    const struct anyval *sv = &d->res_service;
    bool placeholder = sv->type == AV_STRING && sv->s.len >= 15 &&
                       !memcmp(sv->s.ptr, "unknown_service", 15);
    if (sv->type != AV_NONE && !(sv->type == AV_STRING && sv->s.len == 0) &&
        !(placeholder && *d->default_service)) {
        if (take_str(d, sv, &rec.service, d->lim.max_string, "service.name"))
            present |= VT_FIELD_BIT(VT_FIELD_SERVICE);
    } else if (*d->default_service) {
        rec.service = (struct vt_str){d->default_service, strlen(d->default_service)};
    } else {
        pend(d, VT_REJECT_MISSING_SERVICE, "no service.name and no default service");
    }

    /* times */
    if (d->start_ns) {
        uint64_t ms = d->start_ns / 1000000;
        if (ms > UINT64_C(253402300799999))
            pend(d, VT_REJECT_BAD_TIMESTAMP, "start time after year 9999");
        else {
            rec.ts_ms = (int64_t)ms;
            present |= VT_FIELD_BIT(VT_FIELD_TS);
        }
        if (d->end_ns) {
            if (d->end_ns < d->start_ns)
                pend(d, VT_REJECT_OUT_OF_RANGE, "end time before start time");
            else {
                rec.latency_ms = (double)(d->end_ns - d->start_ns) / 1e6;
                present |= VT_FIELD_BIT(VT_FIELD_LATENCY_MS);
            }
        }
    }

    static const int model_keys[] = {K_RESP_MODEL, K_REQ_MODEL, K_LLM_MODEL, K_EMB_MODEL};
    static const int prov_keys[] = {K_PROV_NAME, K_SYSTEM, K_LLM_PROVIDER, K_LLM_SYSTEM};
    static const int in_keys[] = {K_IN_TOKENS, K_PROMPT_TOKENS, K_OI_PROMPT};
    static const int out_keys[] = {K_OUT_TOKENS, K_COMPLETION_TOKENS, K_OI_COMPLETION};
    static const int err_keys[] = {K_ERROR_TYPE, K_EXC_TYPE};
    int k;
    if ((k = first_set(d, model_keys, 4)) >= 0 &&
        take_str(d, &d->kv[k], &rec.model, d->lim.max_string, "model"))
        present |= VT_FIELD_BIT(VT_FIELD_MODEL);
    if ((k = first_set(d, prov_keys, 4)) >= 0 &&
        take_str(d, &d->kv[k], &rec.provider, d->lim.max_string, "provider"))
        present |= VT_FIELD_BIT(VT_FIELD_PROVIDER);
    if ((k = first_set(d, in_keys, 3)) >= 0 && take_tokens(d, k, &rec.input_tokens))
        present |= VT_FIELD_BIT(VT_FIELD_INPUT_TOKENS);
    if ((k = first_set(d, out_keys, 3)) >= 0 && take_tokens(d, k, &rec.output_tokens))
        present |= VT_FIELD_BIT(VT_FIELD_OUTPUT_TOKENS);

    /* cost: the total, else the sum of the parts given */
    double cost = 0, part;
    bool has_cost = false;
    if (SET(K_COST_TOTAL)) {
        has_cost = num_of(d, &d->kv[K_COST_TOTAL], &cost, "llm.cost.total is not a number");
    } else {
        if (SET(K_COST_PROMPT) &&
            num_of(d, &d->kv[K_COST_PROMPT], &part, "llm.cost.prompt is not a number"))
            cost += part, has_cost = true;
        if (SET(K_COST_COMPLETION) &&
            num_of(d, &d->kv[K_COST_COMPLETION], &part, "llm.cost.completion is not a number"))
            cost += part, has_cost = true;
    }
    if (has_cost) {
        if (cost < 0 || !isfinite(cost))
            pend(d, cost < 0 ? VT_REJECT_OUT_OF_RANGE : VT_REJECT_NON_FINITE, "bad cost");
        else {
            rec.cost_usd = cost;
            present |= VT_FIELD_BIT(VT_FIELD_COST_USD);
        }
    }

    /* TTFT: the configured attribute, else the GenAI one (seconds) */
    double ttft;
    bool has_ttft = false;
    if (d->ttft_map.type != AV_NONE) {
        if (num_of(d, &d->ttft_map, &ttft, "TTFT attribute is not a number")) {
            if (d->ttft_map_target == TARGET_TTFT_S)
                ttft *= 1000;
            has_ttft = true;
        }
    } else if (SET(K_TTFT_S) &&
               num_of(d, &d->kv[K_TTFT_S], &ttft, "time_to_first_token is not a number")) {
        ttft *= 1000;
        has_ttft = true;
    }
    if (has_ttft) {
        if (ttft < 0 || !isfinite(ttft))
            pend(d, ttft < 0 ? VT_REJECT_OUT_OF_RANGE : VT_REJECT_NON_FINITE, "bad TTFT");
        else {
            rec.ttft_ms = ttft;
            present |= VT_FIELD_BIT(VT_FIELD_TTFT_MS);
        }
    }

    /* status and error type */
    rec.error = d->status_code == 2;
    present |= VT_FIELD_BIT(VT_FIELD_STATUS);
    if (rec.error) {
        const struct anyval *et = NULL;
        if ((k = first_set(d, err_keys, 2)) >= 0)
            et = &d->kv[k];
        else if (d->exc_event_type.type != AV_NONE)
            et = &d->exc_event_type;
        if (et && take_str(d, et, &rec.error_type, d->lim.max_string, "error type"))
            present |= VT_FIELD_BIT(VT_FIELD_ERROR_TYPE);
    }

    /* metrics: annotation/evaluation pairs, retrieval mean, then sort */
    double x;
    if (SET(K_ANN_NAME) && SET(K_ANN_SCORE) && d->kv[K_ANN_NAME].type == AV_STRING &&
        num_of(d, &d->kv[K_ANN_SCORE], &x, "annotation.score is not a number"))
        add_metric(d, d->kv[K_ANN_NAME].s, x);
    if (SET(K_EVAL_NAME) && SET(K_EVAL_SCORE) && d->kv[K_EVAL_NAME].type == AV_STRING &&
        num_of(d, &d->kv[K_EVAL_SCORE], &x, "evaluation.score is not a number"))
        add_metric(d, d->kv[K_EVAL_NAME].s, x);
    if (d->retrieval_n) {
        double mean = d->retrieval_sum / d->retrieval_n;
        if (!isfinite(mean))
            pend(d, VT_REJECT_NON_FINITE, "retrieval scores overflow");
        else
            add_metric(d, (struct vt_str){"retrieval_score", 15}, mean);
    }
    if (d->n_mets) {
        qsort(d->mets, d->n_mets, sizeof *d->mets, cmp_metric);
        rec.metrics = d->mets;
        rec.n_metrics = d->n_mets;
        present |= VT_FIELD_BIT(VT_FIELD_METRICS);
    }

    /* labels: span value, else resource value; config order is label order */
    uint32_t nl = 0;
    for (uint32_t i = 0; i < d->n_labels; i++) {
        const struct anyval *v = d->span_labels[i].type != AV_NONE ? &d->span_labels[i]
                                 : d->res_labels[i].type != AV_NONE ? &d->res_labels[i]
                                                                    : NULL;
        if (!v)
            continue;
        if (nl >= d->lim.max_labels) {
            pend(d, VT_REJECT_TOO_MANY_LABELS, "too many labels");
            break;
        }
        struct vt_str val;
        if (label_value(d, v, d->label_text + (size_t)i * LABEL_TEXT, &val) == 0)
            d->out_labels[nl++] = (struct vt_label){d->labels[i].label, val};
    }
    if (nl) {
        rec.labels = d->out_labels;
        rec.n_labels = nl;
        present |= VT_FIELD_BIT(VT_FIELD_LABELS);
    }

    if (SET(K_EMBEDDING)) {
        uint32_t n = 0;
        if (embedding_values(d, &d->kv[K_EMBEDDING], &n) == 0 && n) {
            rec.embedding = d->embedding;
            rec.n_embedding = n;
            present |= VT_FIELD_BIT(VT_FIELD_EMBEDDING);
        }
    }

    rec.present = present;
    if (d->pending != VT_REJECT_NONE) {
        rec.reject = d->pending;
        res->rejected++;
        if (res->rejected == 1) {
            res->first_reason = d->pending;
            snprintf(d->first_detail, sizeof d->first_detail, "%s",
                     d->pending_detail ? d->pending_detail : "invalid");
            snprintf(d->first_span, sizeof d->first_span, "%.*s",
                     (int)(d->span_len ? 2 * d->span_len : 0),
                     d->span_len ? d->request_id + 2 * d->trace_len + 1 : "");
        }
        sink(data, &rec, d->pending);
        return;
    }
    if (sink(data, &rec, VT_REJECT_NONE) == 0) {
        res->accepted++;
    } else {
        res->rejected++;
        if (res->rejected == 1) {
            res->first_reason = VT_REJECT_TOO_LARGE;
            snprintf(d->first_detail, sizeof d->first_detail, "record refused by the spool");
            snprintf(d->first_span, sizeof d->first_span, "%.*s",
                     (int)(d->span_len ? 2 * d->span_len : 0),
                     d->span_len ? d->request_id + 2 * d->trace_len + 1 : "");
        }
    }
}

static void result_begin(struct vt_otlp_decoder *d, struct vt_otlp_result *res)
{
    memset(res, 0, sizeof *res);
    d->first_detail[0] = 0;
    d->first_span[0] = 0;
}

static void result_end(struct vt_otlp_decoder *d, struct vt_otlp_result *res)
{
    if (!res->rejected)
        return;
    snprintf(res->message, sizeof res->message,
             "%" PRIu64 " of %" PRIu64 " spans rejected; first: %s%s%s%s (%s)", res->rejected,
             res->spans, d->first_span[0] ? "span " : "", d->first_span,
             d->first_span[0] ? ": " : "", vt_record_reject_name(res->first_reason),
             d->first_detail);
}

/* ------------------------------------------------------------------------
 * Protobuf wire walker
 * ------------------------------------------------------------------------ */

struct pb {
    const uint8_t *p, *end;
};

struct pbf {
    uint32_t num;
    uint32_t wt;
    uint64_t u;            /* varint, fixed64, fixed32 */
    const uint8_t *ptr;    /* length-delimited */
    size_t len;
};

static inline int pb_varint(struct pb *b, uint64_t *out)
{
    if (b->p < b->end && *b->p < 0x80) { /* the common one-byte case */
        *out = *b->p++;
        return 0;
    }
    uint64_t v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
        if (b->p >= b->end)
            return -1;
        uint8_t c = *b->p++;
        v |= (uint64_t)(c & 0x7f) << shift;
        if (!(c & 0x80)) {
            *out = v;
            return 0;
        }
    }
    return -1;
}

/* Read the next field: 1 = got one, 0 = end of message, -1 = malformed. */
static inline int pb_next(struct pb *b, struct pbf *f)
{
    f->u = 0;
    f->ptr = NULL;
    f->len = 0;
    if (b->p >= b->end)
        return 0;
    uint64_t tag;
    if (pb_varint(b, &tag) || (tag >> 3) == 0 || (tag >> 3) > 0x1fffffff)
        return -1;
    f->num = (uint32_t)(tag >> 3);
    f->wt = (uint32_t)(tag & 7);
    switch (f->wt) {
    case 0:
        return pb_varint(b, &f->u) ? -1 : 1;
    case 1:
        if (b->end - b->p < 8)
            return -1;
        f->u = 0;
        for (int i = 7; i >= 0; i--)
            f->u = f->u << 8 | b->p[i];
        b->p += 8;
        return 1;
    case 2: {
        uint64_t n;
        if (pb_varint(b, &n) || n > (uint64_t)(b->end - b->p))
            return -1;
        f->ptr = b->p;
        f->len = (size_t)n;
        b->p += n;
        return 1;
    }
    case 5:
        if (b->end - b->p < 4)
            return -1;
        f->u = (uint64_t)b->p[0] | (uint64_t)b->p[1] << 8 | (uint64_t)b->p[2] << 16 |
               (uint64_t)b->p[3] << 24;
        b->p += 4;
        return 1;
    default:
        return -1; /* groups (3, 4) are not used by OTLP */
    }
}

static struct pb pb_of(const struct pbf *f) { return (struct pb){f->ptr, f->ptr + f->len}; }

/* Every field of a message parses (no descent). */
static bool pb_valid(struct pb b)
{
    struct pbf f;
    int r;
    while ((r = pb_next(&b, &f)) == 1)
        ;
    return r == 0;
}

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

static int embedding_values(struct vt_otlp_decoder *d, const struct anyval *v, uint32_t *n)
{
    *n = 0;
    if (v->type != AV_ARRAY || v->bad) {
        pend(d, VT_REJECT_BAD_TYPE, "embedding vector is not an array");
        return -1;
    }
    if (v->j) {
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
                pend(d, VT_REJECT_BAD_TYPE, "embedding element is not a number");
                return -1;
            }
            if (*n >= d->lim.max_embedding) {
                pend(d, VT_REJECT_EMBEDDING_TOO_LONG, "embedding too long");
                return -1;
            }
            if (!isfinite(x)) {
                pend(d, VT_REJECT_NON_FINITE, "embedding element is not finite");
                return -1;
            }
            d->embedding[(*n)++] = x;
        }
        return 0;
    }
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
            pend(d, q < 0 ? VT_REJECT_PARSE_ERROR : VT_REJECT_BAD_TYPE,
                 "embedding element is not a number");
            return -1;
        }
        if (*n >= d->lim.max_embedding) {
            pend(d, VT_REJECT_EMBEDDING_TOO_LONG, "embedding too long");
            return -1;
        }
        if (!isfinite(x)) {
            pend(d, VT_REJECT_NON_FINITE, "embedding element is not finite");
            return -1;
        }
        d->embedding[(*n)++] = x;
    }
    if (r != 0) {
        pend(d, VT_REJECT_PARSE_ERROR, "malformed embedding array");
        return -1;
    }
    return 0;
}

/* Map one Span message. A malformed span is rejected as parse_error. */
static void pb_span(struct vt_otlp_decoder *d, struct pb b, int64_t now_ms, vt_otlp_sink_cb sink,
                    void *data, struct vt_otlp_result *res)
{
    span_begin(d);
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
            span_attr(d, k.ptr, k.len, &v);
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
                event_attr(d, name, k.ptr, k.len, &v, &gname, &gscore);
            }
            if (!bad)
                event_end(d, &gname, &gscore);
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
    if (bad || r < 0) {
        /* Not even LLM-ness is known: reject, attributed to the resource. */
        d->kv_set = UINT64_C(1) << K_REQ_MODEL; /* counted as an LLM span */
        d->kv[K_REQ_MODEL] = (struct anyval){.type = AV_STRING, .s = {"", 0}};
        d->pending = VT_REJECT_NONE;
        pend(d, VT_REJECT_PARSE_ERROR, "malformed span");
    }
    span_end(d, now_ms, sink, data, res);
}

/* Validate framing of ResourceSpans (pass 1) or map it (pass 2). */
static int pb_resource_spans(struct vt_otlp_decoder *d, struct pb rs, bool emit, int64_t now_ms,
                             vt_otlp_sink_cb sink, void *data, struct vt_otlp_result *res)
{
    struct pbf f;
    int r;
    struct pb b = rs;
    if (emit)
        resource_begin(d);
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
                resource_attr(d, k.ptr, k.len, &v);
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

static int ignore_sink(void *data, struct vt_record *rec, enum vt_record_reject reason)
{
    (void)data, (void)rec, (void)reason;
    return 0;
}

int vt_otlp_decode_proto(struct vt_otlp_decoder *d, const uint8_t *buf, size_t len,
                         int64_t now_ms, vt_otlp_sink_cb sink, void *data,
                         struct vt_otlp_result *res)
{
    assert(d && sink && res && (buf || !len));
    result_begin(d, res);
    if (!buf)
        buf = (const uint8_t *)"";
    if (pb_request(d, buf, len, false, now_ms, ignore_sink, NULL, res) < 0) {
        memset(res, 0, sizeof *res);
        snprintf(res->message, sizeof res->message,
                 "malformed ExportTraceServiceRequest (protobuf framing)");
        return -EINVAL;
    }
    uint64_t spans = res->spans;
    result_begin(d, res);
    int r = pb_request(d, buf, len, true, now_ms, sink, data, res);
    assert(r == 0 && res->spans == spans); /* pass 1 checked the same framing */
    (void)r, (void)spans;
    result_end(d, res);
    return 0;
}

/* ------------------------------------------------------------------------
 * OTLP/JSON
 * ------------------------------------------------------------------------ */

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
    span_attr(ctx, k, n, v);
}
static void cb_resource_attr(void *ctx, const char *k, size_t n, const struct anyval *v)
{
    resource_attr(ctx, k, n, v);
}

struct ev_ctx {
    struct vt_otlp_decoder *d;
    struct vt_str name;
    struct anyval gname, gscore;
};
static void cb_event_attr(void *ctx, const char *k, size_t n, const struct anyval *v)
{
    struct ev_ctx *e = ctx;
    event_attr(e->d, e->name, k, n, v, &e->gname, &e->gscore);
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
    span_begin(d);
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
                event_end(d, &e.gname, &e.gscore);
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
    if (bad) {
        d->kv_set = UINT64_C(1) << K_REQ_MODEL;
        d->kv[K_REQ_MODEL] = (struct anyval){.type = AV_STRING, .s = {"", 0}};
        d->pending = VT_REJECT_NONE;
        pend(d, VT_REJECT_PARSE_ERROR, "malformed span");
    }
    span_end(d, now_ms, sink, data, res);
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
            resource_begin(d);
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
    result_begin(d, res);
    json_error_t jerr;
    json_t *root = json_loadb(buf ? buf : "", len, 0, &jerr);
    if (!root) {
        if (json_error_code(&jerr) == json_error_out_of_memory)
            return -ENOMEM;
        snprintf(res->message, sizeof res->message, "invalid JSON at byte %d: %s",
                 jerr.position, jerr.text);
        return -EINVAL;
    }
    if (json_request(d, root, false, now_ms, ignore_sink, NULL, res) < 0) {
        json_decref(root);
        memset(res, 0, sizeof *res);
        snprintf(res->message, sizeof res->message,
                 "malformed ExportTraceServiceRequest (JSON structure)");
        return -EINVAL;
    }
    result_begin(d, res);
    json_request(d, root, true, now_ms, sink, data, res);
    result_end(d, res);
    json_decref(root);
    return 0;
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
