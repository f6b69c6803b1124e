/*
 * otlp_internal.h - what the pieces of the OTLP decoder share; not part of
 * the contract (that is otlp.h).
 *
 * The decoder is split by purpose: otlp.c (decoder set-up from the
 * configuration, responses), otlp_proto.c (protobuf wire walker),
 * otlp_json.c (OTLP/JSON via jansson) and otlp_map.c (span -> record, the
 * GenAI / OpenInference conventions). Both decoders reduce a request to the
 * same calls into the mapper, in the same order:
 *
 *   result_begin
 *   per ResourceSpans: resource_begin, resource_attr...
 *     per span: span_begin, span_attr..., (event_attr... event_end)...,
 *               [span_malformed], span_end
 *   result_end
 *
 * and fill the span's ids, times and status into the decoder directly.
 * Array values stay undecoded until the span is known to be an LLM call; the
 * mapper then asks the decoder that produced them for the elements
 * (vt__otlp_embedding_pb / _json).
 */
#ifndef VT_OTLP_INTERNAL_H
#define VT_OTLP_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "otlp.h"

struct json_t; /* jansson's json_t, only held as a pointer here */

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
    const struct json_t *j; /* AV_ARRAY from JSON: the "values" array */
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

/* The names of the known keys, indexed by enum known (otlp_map.c). */
extern const char *const vt__otlp_known_keys[K__COUNT];

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

/* ---- otlp_map.c: the mapper -------------------------------------------- */

/* The key table entry for `k` (added with no roles if new). */
struct keyent *vt__otlp_key_add(struct vt_otlp_decoder *d, const char *k);

/* Record the first problem of the span being mapped. */
void vt__otlp_pend(struct vt_otlp_decoder *d, enum vt_record_reject r, const char *detail);

void vt__otlp_resource_begin(struct vt_otlp_decoder *d);
void vt__otlp_resource_attr(struct vt_otlp_decoder *d, const char *k, size_t n,
                            const struct anyval *v);
void vt__otlp_span_begin(struct vt_otlp_decoder *d);
void vt__otlp_span_attr(struct vt_otlp_decoder *d, const char *k, size_t n,
                        const struct anyval *v);
/* An attribute of an event named `ev`; geval_* collect the event's
 * gen_ai.evaluation.result pair until vt__otlp_event_end(). */
void vt__otlp_event_attr(struct vt_otlp_decoder *d, struct vt_str ev, const char *k, size_t n,
                         const struct anyval *v, struct anyval *geval_name,
                         struct anyval *geval_score);
void vt__otlp_event_end(struct vt_otlp_decoder *d, const struct anyval *name,
                        const struct anyval *score);
/* The span's frame is intact but its content is malformed. */
void vt__otlp_span_malformed(struct vt_otlp_decoder *d);
/* The span is complete: ignore it, reject it, or emit its record. */
void vt__otlp_span_end(struct vt_otlp_decoder *d, int64_t now_ms, vt_otlp_sink_cb sink,
                       void *data, struct vt_otlp_result *res);

void vt__otlp_result_begin(struct vt_otlp_decoder *d, struct vt_otlp_result *res);
void vt__otlp_result_end(struct vt_otlp_decoder *d, struct vt_otlp_result *res);
/* The sink of the framing pass: takes everything, keeps nothing. */
int vt__otlp_ignore_sink(void *data, struct vt_record *rec, enum vt_record_reject reason);

/* Append one embedding element: 0, or -1 with a pending reject (too many
 * elements, not finite). */
int vt__otlp_embedding_push(struct vt_otlp_decoder *d, double x, uint32_t *n);

/* ---- the decoders: the elements of an AV_ARRAY embedding vector -------- */

/* From protobuf ArrayValue bytes (otlp_proto.c). 0 or -1 (pending reject). */
int vt__otlp_embedding_pb(struct vt_otlp_decoder *d, const struct anyval *v, uint32_t *n);
/* From a JSON "values" array (otlp_json.c). 0 or -1 (pending reject). */
int vt__otlp_embedding_json(struct vt_otlp_decoder *d, const struct anyval *v, uint32_t *n);

#endif
