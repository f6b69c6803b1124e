/*
 * otlp.h - OTLP trace requests (ExportTraceServiceRequest, protobuf or
 * OTLP/JSON) mapped to vitals records.
 *
 * Most LLM applications are already instrumented with OpenTelemetry
 * (OpenInference, OpenLLMetry, the GenAI semantic conventions). This module
 * turns the LLM spans of one export request into the same struct vt_record
 * that the NDJSON socket produces, so that downstream nothing can tell them
 * apart. It does no I/O: the agent's listeners (agent/otlp.c) hand it request
 * bodies and a sink that spools each record. docs/otlp.md has the full
 * attribute -> field table.
 *
 * Decisions worth knowing:
 *   - Protobuf is read by a schema-aware wire walker (zero copy, no
 *     allocation per span, recursion depth fixed by the schema, not by the
 *     input), JSON with jansson (the request is one tree). Both feed the same
 *     mapper, so the two encodings map identically.
 *   - A request is first walked once without emitting anything: a request
 *     whose framing (request / ResourceSpans / ScopeSpans / span boundaries)
 *     is broken is refused whole (-EINVAL) and no record is emitted. Inside an
 *     intact span frame, a problem rejects that span only (partial success).
 *   - LLM span: openinference.span.kind LLM or EMBEDDING; or
 *     gen_ai.operation.name chat, text_completion, generate_content or
 *     embeddings; or, when neither of those two attributes is present, a
 *     gen_ai.request.model or llm.model_name attribute. (A span that names
 *     another kind, e.g. CHAIN or invoke_agent, is not an LLM call even if it
 *     carries a model: counting it would count its tokens twice.) Other spans
 *     are counted in `ignored` and produce nothing.
 *   - Every emitted record satisfies what vt_record_decode() guarantees
 *     (finite numbers, valid UTF-8 without NUL, sizes within the limits,
 *     sorted unique labels and metrics), so vt_record_format_json() of it
 *     decodes back to the same record. A span that cannot be made into such a
 *     record is rejected with the record reason that applies.
 *
 * Not thread-safe per decoder: one decoder per thread.
 */
#ifndef VT_OTLP_H
#define VT_OTLP_H

#include <stddef.h>
#include <stdint.h>

#include "record.h"

/* The gRPC method served for traces. */
#define VT_OTLP_TRACE_METHOD "/opentelemetry.proto.collector.trace.v1.TraceService/Export"
/* The OTLP/HTTP path for traces. */
#define VT_OTLP_TRACE_PATH "/v1/traces"

struct vt_otlp_decoder;

/*
 * Create a decoder.
 *   limits:          record limits (NULL: vt_record_limits_default); copied.
 *   default_service: service of spans whose resource has no service.name (or
 *                    only the SDK's "unknown_service..." placeholder); NULL or
 *                    "" = none (such spans are then rejected missing_service).
 *   labels:          allow-list of attributes copied into labels, comma
 *                    separated, each "attr" or "attr=label" (rename), e.g.
 *                    "deployment.environment=env,tier". Looked up in the span's
 *                    attributes, then the resource's. NULL or "" = none.
 *   metrics:         attribute -> metric map, "attr=metric,..." (numeric
 *                    attributes only). The metric names "ttft_ms" and
 *                    "ttft_s" set the record's TTFT instead of a metric.
 *                    NULL or "" = none.
 * On error returns NULL, sets errno (EINVAL for a bad spec, ENOMEM) and, when
 * err is not NULL, writes a message naming the problem into err/errsz.
 * Free with vt_otlp_decoder_free().
 */
struct vt_otlp_decoder *vt_otlp_decoder_new(const struct vt_record_limits *limits,
                                            const char *default_service, const char *labels,
                                            const char *metrics, char *err, size_t errsz);
void vt_otlp_decoder_free(struct vt_otlp_decoder *dec);

/*
 * Where records go. Called once per LLM span, in request order:
 *   reason == VT_REJECT_NONE: `rec` is a valid record; return 0 if it was
 *       taken, or a negative code if the sink refused it (it is then counted
 *       as rejected, e.g. -E2BIG for a record over the sink's size limit).
 *   otherwise the span was rejected for `reason`; `rec` is a hint (its
 *       service is set when known) for attributing the reject; the return
 *       value is ignored.
 * `rec` and everything it points to are valid during the call only; the sink
 * may modify *rec (e.g. set arrival_ms).
 */
typedef int (*vt_otlp_sink_cb)(void *data, struct vt_record *rec,
                               enum vt_record_reject reason);

/* What one request held. */
struct vt_otlp_result {
    uint64_t spans;    /* spans in the request */
    uint64_t accepted; /* LLM spans taken by the sink */
    uint64_t rejected; /* LLM spans rejected (validation or sink refusal) */
    uint64_t ignored;  /* spans that are not LLM calls */
    enum vt_record_reject first_reason; /* of the first rejected span */
    char message[256]; /* "" if nothing was rejected; else a summary for the
                          client, e.g. "2 spans rejected: out_of_range (first:
                          span 0123abcd...: end time before start time)" */
};

/*
 * Decode one ExportTraceServiceRequest (protobuf wire format, or OTLP/JSON)
 * and feed its LLM spans to `sink`. `now_ms` is the arrival time (ts of
 * records whose span has no start time). Fills *res in every case.
 * Returns 0 (res says how many spans were accepted / rejected / ignored),
 * -EINVAL if the request itself is malformed (nothing was emitted;
 * res->message says what is wrong), or -ENOMEM.
 * Never reads buf[len] or beyond. The JSON decoder holds the whole request as
 * one jansson tree (about 10x the text); bound `len` before calling.
 */
int vt_otlp_decode_proto(struct vt_otlp_decoder *dec, const uint8_t *buf, size_t len,
                         int64_t now_ms, vt_otlp_sink_cb sink, void *data,
                         struct vt_otlp_result *res);
int vt_otlp_decode_json(struct vt_otlp_decoder *dec, const char *buf, size_t len,
                        int64_t now_ms, vt_otlp_sink_cb sink, void *data,
                        struct vt_otlp_result *res);

/*
 * The ExportTraceServiceResponse for `res`: partial_success is set (rejected
 * spans + message) only when res->rejected > 0, as OTLP requires.
 * Protobuf into buf (not NUL-terminated) / OTLP JSON ("{}" or
 * {"partialSuccess":{"rejectedSpans":"N","errorMessage":"..."}}) NUL-terminated.
 * Returns the length (excluding the NUL), or -ENOSPC if cap is too small
 * (512 bytes always suffice).
 */
int vt_otlp_response_proto(const struct vt_otlp_result *res, uint8_t *buf, size_t cap);
int vt_otlp_response_json(const struct vt_otlp_result *res, char *buf, size_t cap);

/*
 * The body of an OTLP/HTTP error response: a google.rpc.Status {code,
 * message} as protobuf, or as JSON {"code":N,"message":"..."}. `code` is a
 * gRPC status code. Same return convention as above (message is truncated to
 * fit 512 bytes).
 */
int vt_otlp_status_proto(int code, const char *message, uint8_t *buf, size_t cap);
int vt_otlp_status_json(int code, const char *message, char *buf, size_t cap);

#endif
