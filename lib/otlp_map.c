/*
 * otlp_map.c - one OTLP span -> one vitals record: the GenAI semantic
 * conventions and OpenInference attributes (docs/otlp.md has the table).
 *
 * Both decoders (otlp_proto.c, otlp_json.c) feed it, so the two encodings map
 * identically and the conventions live in one place. The mapper sees a span
 * as a stream of (key, value) attributes. A small hash table built at
 * start-up turns each key into its roles: one of the known GenAI /
 * OpenInference attributes, a label of the allow-list, a metric of the
 * configured map (a key may have several roles). Values are kept as typed
 * views into the input until the span ends; only then is the record built and
 * validated, so that a non-LLM span is ignored whatever it carries.
 */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "otlp_internal.h"

/* ------------------------------------------------------------------------
 * The key table
 * ------------------------------------------------------------------------ */

const char *const vt__otlp_known_keys[K__COUNT] = {
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

struct keyent *vt__otlp_key_add(struct vt_otlp_decoder *d, const char *k)
{
    size_t n = strlen(k);
    uint32_t h = key_hash(k, n);
    struct keyent *e = tab_slot(d, k, n, h);
    if (!e->key)
        *e = (struct keyent){k, (uint32_t)n, h, -1, -1, -1};
    return e;
}

/* ------------------------------------------------------------------------
 * The mapper: attributes in, one record out
 * ------------------------------------------------------------------------ */

void vt__otlp_pend(struct vt_otlp_decoder *d, enum vt_record_reject r, const char *detail)
{
    if (d->pending == VT_REJECT_NONE) {
        d->pending = r;
        d->pending_detail = detail;
    }
}

void vt__otlp_span_begin(struct vt_otlp_decoder *d)
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
            vt__otlp_pend(d, VT_REJECT_NON_FINITE, what);
            return false;
        }
        *out = v->d;
        return true;
    }
    vt__otlp_pend(d, VT_REJECT_BAD_TYPE, what);
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
        vt__otlp_pend(d, VT_REJECT_FIELD_TOO_LONG, "metric name too long");
        return;
    }
    if (!valid_utf8(name)) {
        vt__otlp_pend(d, VT_REJECT_BAD_UTF8, "metric name is not UTF-8");
        return;
    }
    for (uint32_t i = 0; i < d->n_mets; i++)
        if (d->mets[i].name.len == name.len && !memcmp(d->mets[i].name.ptr, name.ptr, name.len)) {
            d->mets[i].value = v; /* the later attribute wins */
            return;
        }
    if (d->n_mets >= d->lim.max_metrics) {
        vt__otlp_pend(d, VT_REJECT_TOO_MANY_METRICS, "too many metrics");
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
void vt__otlp_span_attr(struct vt_otlp_decoder *d, const char *k, size_t n,
                        const struct anyval *v)
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
void vt__otlp_resource_attr(struct vt_otlp_decoder *d, const char *k, size_t n,
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

void vt__otlp_resource_begin(struct vt_otlp_decoder *d)
{
    d->res_service.type = AV_NONE;
    for (uint32_t i = 0; i < d->n_labels; i++)
        d->res_labels[i].type = AV_NONE;
}

/* An attribute of an event named `ev`. */
void vt__otlp_event_attr(struct vt_otlp_decoder *d, struct vt_str ev, const char *k, size_t n,
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

void vt__otlp_event_end(struct vt_otlp_decoder *d, const struct anyval *name,
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
        vt__otlp_pend(d, VT_REJECT_BAD_TYPE, what);
        return false;
    }
    if (v->s.len > max) {
        vt__otlp_pend(d, VT_REJECT_FIELD_TOO_LONG, what);
        return false;
    }
    if (!valid_utf8(v->s)) {
        vt__otlp_pend(d, VT_REJECT_BAD_UTF8, what);
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
            vt__otlp_pend(d, VT_REJECT_OUT_OF_RANGE, "negative token count");
            return false;
        }
        *out = (uint64_t)v->i;
        return true;
    }
    if (v->type == AV_DOUBLE && !v->bad) {
        if (!isfinite(v->d)) {
            vt__otlp_pend(d, VT_REJECT_NON_FINITE, "token count is not finite");
            return false;
        }
        if (v->d < 0 || v->d != floor(v->d) || v->d >= 18446744073709551616.0) {
            vt__otlp_pend(d, VT_REJECT_OUT_OF_RANGE, "token count is not a non-negative integer");
            return false;
        }
        *out = (uint64_t)v->d;
        return true;
    }
    vt__otlp_pend(d, VT_REJECT_BAD_TYPE, "token count is not a number");
    return false;
}

static int label_value(struct vt_otlp_decoder *d, const struct anyval *v, char *text,
                       struct vt_str *out)
{
    int n;
    switch (v->bad ? AV_NONE : v->type) {
    case AV_STRING:
        if (v->s.len > d->lim.max_label_value) {
            vt__otlp_pend(d, VT_REJECT_FIELD_TOO_LONG, "label value too long");
            return -1;
        }
        if (!valid_utf8(v->s)) {
            vt__otlp_pend(d, VT_REJECT_BAD_UTF8, "label value is not UTF-8");
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
            vt__otlp_pend(d, VT_REJECT_NON_FINITE, "label value is not finite");
            return -1;
        }
        n = snprintf(text, LABEL_TEXT, "%.17g", v->d);
        break;
    default:
        vt__otlp_pend(d, VT_REJECT_BAD_TYPE, "label value is not a scalar");
        return -1;
    }
    if ((uint32_t)n > d->lim.max_label_value) {
        vt__otlp_pend(d, VT_REJECT_FIELD_TOO_LONG, "label value too long");
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

int vt__otlp_embedding_push(struct vt_otlp_decoder *d, double x, uint32_t *n)
{
    if (*n >= d->lim.max_embedding) {
        vt__otlp_pend(d, VT_REJECT_EMBEDDING_TOO_LONG, "embedding too long");
        return -1;
    }
    if (!isfinite(x)) {
        vt__otlp_pend(d, VT_REJECT_NON_FINITE, "embedding element is not finite");
        return -1;
    }
    d->embedding[(*n)++] = x;
    return 0;
}

/* Decode an embedding vector: its elements are read by the decoder that kept
 * the array (an empty JSON array is kept as empty protobuf bytes). */
static int embedding_values(struct vt_otlp_decoder *d, const struct anyval *v, uint32_t *n)
{
    *n = 0;
    if (v->type != AV_ARRAY || v->bad) {
        vt__otlp_pend(d, VT_REJECT_BAD_TYPE, "embedding vector is not an array");
        return -1;
    }
    return v->j ? vt__otlp_embedding_json(d, v, n) : vt__otlp_embedding_pb(d, v, n);
}

/* The span's frame is intact but its content is malformed: not even LLM-ness
 * is known, so it is rejected as an LLM span, attributed to the resource. */
void vt__otlp_span_malformed(struct vt_otlp_decoder *d)
{
    d->kv_set = UINT64_C(1) << K_REQ_MODEL; /* counted as an LLM span */
    d->kv[K_REQ_MODEL] = (struct anyval){.type = AV_STRING, .s = {"", 0}};
    d->pending = VT_REJECT_NONE;
    vt__otlp_pend(d, VT_REJECT_PARSE_ERROR, "malformed span");
}

/* The span is complete: ignore it, reject it, or emit its record. */
void vt__otlp_span_end(struct vt_otlp_decoder *d, int64_t now_ms, vt_otlp_sink_cb sink,
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
        vt__otlp_pend(d, VT_REJECT_MISSING_SERVICE, "no service.name and no default service");
    }

    /* times */
    if (d->start_ns) {
        uint64_t ms = d->start_ns / 1000000;
        if (ms > UINT64_C(253402300799999))
            vt__otlp_pend(d, VT_REJECT_BAD_TIMESTAMP, "start time after year 9999");
        else {
            rec.ts_ms = (int64_t)ms;
            present |= VT_FIELD_BIT(VT_FIELD_TS);
        }
        if (d->end_ns) {
            if (d->end_ns < d->start_ns)
                vt__otlp_pend(d, VT_REJECT_OUT_OF_RANGE, "end time before start time");
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
            vt__otlp_pend(d, cost < 0 ? VT_REJECT_OUT_OF_RANGE : VT_REJECT_NON_FINITE, "bad cost");
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
            vt__otlp_pend(d, ttft < 0 ? VT_REJECT_OUT_OF_RANGE : VT_REJECT_NON_FINITE, "bad TTFT");
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
            vt__otlp_pend(d, VT_REJECT_NON_FINITE, "retrieval scores overflow");
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
            vt__otlp_pend(d, VT_REJECT_TOO_MANY_LABELS, "too many labels");
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

void vt__otlp_result_begin(struct vt_otlp_decoder *d, struct vt_otlp_result *res)
{
    memset(res, 0, sizeof *res);
    d->first_detail[0] = 0;
    d->first_span[0] = 0;
}

void vt__otlp_result_end(struct vt_otlp_decoder *d, struct vt_otlp_result *res)
{
    if (!res->rejected)
        return;
    snprintf(res->message, sizeof res->message,
             "%" PRIu64 " of %" PRIu64 " spans rejected; first: %s%s%s%s (%s)", res->rejected,
             res->spans, d->first_span[0] ? "span " : "", d->first_span,
             d->first_span[0] ? ": " : "", vt_record_reject_name(res->first_reason),
             d->first_detail);
}

int vt__otlp_ignore_sink(void *data, struct vt_record *rec, enum vt_record_reject reason)
{
    (void)data, (void)rec, (void)reason;
    return 0;
}
