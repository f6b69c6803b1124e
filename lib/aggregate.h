/*
 * aggregate.h - everything vitals keeps about one series over one span of
 * time: counts, errors by type, DDSketches of latency, TTFT, tokens, cost and
 * every named metric, the embedding sum vector, data-quality counters, and a
 * few exemplar request ids.
 *
 * The agent fills one aggregate per series per window from records; the
 * scorer merges aggregates from every pod into rollups and merges rollups
 * over a score's window. Merging is exact (sketches merge bucket for bucket,
 * counters add), so merge(a, b) is the aggregate of the union of the records
 * of a and b, up to the exemplar choice and float summation order.
 *
 * Bounds (so that one series cannot eat the process): at most
 * VT_AGG_MAX_ERROR_TYPES distinct error types (the rest count as "other"), at
 * most VT_AGG_MAX_METRICS named metrics (further names counted in
 * `metrics_dropped`), the embedding dimension fixed by the first embedding
 * seen (mismatching ones counted in `embedding_mismatch`), at most
 * VT_AGG_MAX_EXEMPLARS exemplars (the slowest calls and the latest failures).
 *
 * Memory: an aggregate owns its sketches' stores, its metric names and its
 * embedding vector; vt_aggregate_free() releases them. vt_aggregate_reset()
 * empties it but keeps allocations for reuse in the next window.
 * Not thread-safe.
 */
#ifndef VT_AGGREGATE_H
#define VT_AGGREGATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "record.h"
#include "sketch.h"
#include "vitals/v1/vitals.pb-c.h"

#define VT_AGG_MAX_ERROR_TYPES 16
#define VT_AGG_MAX_ERROR_TYPE_LEN 64
#define VT_AGG_MAX_METRICS 64
#define VT_AGG_MAX_METRIC_NAME 128
#define VT_AGG_MAX_EMBEDDING 4096
#define VT_AGG_MAX_EXEMPLARS 4
#define VT_AGG_EXEMPLAR_ID_LEN 64
/* Records in one received aggregate at most (a decoder bound: rollups sum
 * many aggregates and must not overflow). */
#define VT_AGG_MAX_COUNT (1ull << 32)

struct vt_agg_count {
    char name[VT_AGG_MAX_ERROR_TYPE_LEN + 1];
    uint64_t count;
};

struct vt_agg_metric {
    char name[VT_AGG_MAX_METRIC_NAME + 1];
    uint32_t name_len;
    vt_sketch sketch;
};

enum vt_exemplar_kind { VT_EXEMPLAR_SLOWEST = 0, VT_EXEMPLAR_FAILED = 1 };

/* One exemplar whole, as a record or a message brings it. */
struct vt_exemplar {
    char request_id[VT_AGG_EXEMPLAR_ID_LEN + 1];
    enum vt_exemplar_kind kind;
    double latency_ms;
    int64_t ts_ms;
};

/* What choosing among exemplars reads. An aggregate keeps these apart from
 * the request ids, so that a merge or a score walk choosing among a rollup's
 * exemplars reads 96 bytes of it, not 352 (the ids are copied only for the
 * few exemplars that win). */
struct vt_exemplar_rank {
    double latency_ms;
    int64_t ts_ms;
    enum vt_exemplar_kind kind;
};

struct vt_aggregate {
    /* what a merge touches first (see vt_aggregate_prefetch) ... */
    uint64_t count;                 /* records */
    uint64_t errors;                /* records with status "error" */
    struct vt_agg_count *errors_by_type; /* n_error_types used; allocated on the first error */
    uint32_t n_error_types;         /* "" (no error_type given) and "other" included */
    uint32_t cap_error_types;
    vt_sketch latency_ms, ttft_ms, input_tokens, output_tokens, cost_usd;
    struct vt_agg_metric *metrics;  /* n_metrics used, sorted by name */
    uint32_t n_metrics, cap_metrics;
    double *embedding_sum;          /* embedding_dim doubles, NULL before the first */
    uint32_t embedding_dim;
    uint32_t n_exemplars;
    uint64_t embedding_count;
    struct vt_exemplar_rank exemplars[VT_AGG_MAX_EXEMPLARS]; /* n_exemplars kept calls */
    char exemplar_ids[VT_AGG_MAX_EXEMPLARS][VT_AGG_EXEMPLAR_ID_LEN + 1]; /* exemplars[i]'s request id */
    /* ... and what few merges touch */
    uint64_t metrics_dropped;       /* metric values beyond VT_AGG_MAX_METRICS names */
    uint64_t embedding_mismatch;    /* embeddings of another dimension, not summed */
    uint64_t invalid_by_reason[VT_REJECT__COUNT]; /* rejected records (data quality) */
    uint64_t missing_by_field[VT_FIELD_LAST + 1]; /* accepted records lacking an optional field */
};

/* Set up an empty aggregate (sketches at the default scale). Allocates nothing. */
void vt_aggregate_init(struct vt_aggregate *a);
void vt_aggregate_free(struct vt_aggregate *a);
void vt_aggregate_reset(struct vt_aggregate *a);

/* Fold one accepted record in. Returns 0 or -ENOMEM (the record is then
 * counted but a sketch may miss it). */
int vt_aggregate_add(struct vt_aggregate *a, const struct vt_record *rec);

/* Count one rejected record against this aggregate's data-quality counters. */
void vt_aggregate_add_invalid(struct vt_aggregate *a, enum vt_record_reject reason);

/* Exemplar slot i of a := x with request id `id` (a buffer of
 * VT_AGG_EXEMPLAR_ID_LEN + 1 bytes), i < VT_AGG_MAX_EXEMPLARS; the caller keeps
 * n_exemplars. For the merges that choose which exemplars an aggregate keeps. */
void vt_aggregate_put_exemplar(struct vt_aggregate *a, uint32_t i,
                               const struct vt_exemplar_rank *x, const char *id);

/* dst += src. Returns 0 or -ENOMEM. */
int vt_aggregate_merge(struct vt_aggregate *dst, const struct vt_aggregate *src);

/* The sketch of a named value: "latency_ms", "ttft_ms", "input_tokens",
 * "output_tokens", "cost_usd", or a metric name. NULL if none. */
const vt_sketch *vt_aggregate_sketch(const struct vt_aggregate *a, const char *name);

/* The sketch of named metric `name`, created empty if absent. NULL when the
 * aggregate already holds VT_AGG_MAX_METRICS names, the name is too long, or
 * out of memory. (For callers that prepare an accumulator by name.) */
vt_sketch *vt_aggregate_metric(struct vt_aggregate *a, const char *name);

/* Missing count of a field by its JSON name ("latency_ms"); 0 if unknown. */
uint64_t vt_aggregate_missing(const struct vt_aggregate *a, const char *field);
uint64_t vt_aggregate_invalid_total(const struct vt_aggregate *a);

/* --- wire form ------------------------------------------------------------
 * to_proto fills msg (overwritten) from a; everything it allocates is
 * released by vt_aggregate_proto_release(msg) (msg itself is not freed). The
 * series key, window start and window length are the caller's to set
 * (msg->series is left NULL). Returns 0 or -ENOMEM. */
int vt_aggregate_to_proto(const struct vt_aggregate *a, Vitals__V1__WindowAggregate *msg);
void vt_aggregate_proto_release(Vitals__V1__WindowAggregate *msg);

/* Append a's WindowAggregate fields from count (4) on to w: the bytes
 * protobuf-c packs from vt_aggregate_to_proto(a), without building that
 * message. A caller writing series (1) and the window (2, 3) writes them
 * first. On ENOMEM w->err is set (pb_write.h). */
struct pbw;
void vt_aggregate_encode(const struct vt_aggregate *a, struct pbw *w);

/* Decoding reads a serialized vitals.v1.WindowAggregate where it lies (no
 * protobuf-c unpack; sketches as vt_sketch_merge_wire). Validation: known
 * fields of the right wire type, each fixed sketch at most once, count <=
 * VT_AGG_MAX_COUNT, errors, embedding_count and every sketch's count <=
 * count, every named count <= VT_AGG_MAX_COUNT, at most
 * VT_AGG_MAX_ERROR_TYPES error types (names <= VT_AGG_MAX_ERROR_TYPE_LEN),
 * VT_AGG_MAX_METRICS metrics (names 1..VT_AGG_MAX_METRIC_NAME, each with a
 * sketch), VT_AGG_MAX_EXEMPLARS exemplars (ids <= VT_AGG_EXEMPLAR_ID_LEN),
 * one data-quality entry per reason/field at most, one packed embedding_sum
 * of <= VT_AGG_MAX_EMBEDDING finite doubles, no NUL byte in any name, every
 * sketch valid. The series key and window are the caller's business: check
 * hands them over in a vt_agg_head. */
struct vt_agg_head {
    const uint8_t *series; /* the SeriesKey message bytes (inside buf), NULL if absent */
    size_t series_len;
    int64_t window_start_ms;
    uint32_t window_ms;
    uint64_t count;
    bool overflow;
};

/* Validate buf, changing nothing; fill *head (may be NULL). 0 or -EBADMSG. */
int vt_aggregate_check_wire(const uint8_t *buf, size_t len, struct vt_agg_head *head);

/* The most sketches an aggregate holds: the five fixed ones and the metrics. */
#define VT_AGG_MAX_SKETCHES (5 + VT_AGG_MAX_METRICS)

/* What a check keeps of an aggregate's fields other than its sketches, so
 * that the merge parses nothing again: the totals, the embedding, the
 * exemplars decoded, and where each named count (errors by type, invalid,
 * missing) lies. Points into the message. */
#define VT_AGG_MAX_NAMED_COUNTS (VT_AGG_MAX_ERROR_TYPES + VT_REJECT__COUNT + VT_FIELD_LAST + 1)
struct vt_agg_kept {
    const uint8_t *buf; /* the message */
    uint64_t count, errors, emb_count;
    const uint8_t *emb; /* n_emb packed doubles */
    uint32_t n_emb, n_exemplars, n_counts;
    struct vt_exemplar exemplars[VT_AGG_MAX_EXEMPLARS];
    struct {
        uint32_t off, len; /* the CountByName message, at buf + off */
        uint32_t field;
    } counts[VT_AGG_MAX_NAMED_COUNTS];
};

/* vt_aggregate_check_wire (head required) that also keeps what it learned:
 * of each sketch, in order, in kept[0 .. *n_kept) (room for
 * VT_AGG_MAX_SKETCHES), and of the rest in *rest. Points into buf, which
 * is at most UINT32_MAX bytes long. */
int vt_aggregate_check_wire_kept(const uint8_t *buf, size_t len, struct vt_agg_head *head,
                                 struct vt_sketch_kept *kept, uint32_t *n_kept,
                                 struct vt_agg_kept *rest);

/* vt_aggregate_merge_wire_checked of the bytes that
 * vt_aggregate_check_wire_kept kept all this of: nothing is parsed again
 * but the named counts' small messages. */
int vt_aggregate_merge_kept(struct vt_aggregate *dst, const struct vt_sketch_kept *kept,
                            uint32_t n_kept, const struct vt_agg_kept *rest);

/* The head alone of an aggregate that passed vt_aggregate_check_wire (reads
 * the top-level fields only: cheap). 0 or -EBADMSG (malformed). */
int vt_aggregate_wire_head(const uint8_t *buf, size_t len, struct vt_agg_head *head);

/* Hints, no effect on a, for a caller that knows which aggregates it merges
 * into next, in three steps a little apart: _prefetch fetches a itself;
 * _prefetch_parts (a in cache) what it points to, the fixed sketches'
 * counters and the metric array; _prefetch_metrics (that array in cache)
 * the metric sketches' counters. */
void vt_aggregate_prefetch(const struct vt_aggregate *a);
void vt_aggregate_prefetch_parts(const struct vt_aggregate *a);
void vt_aggregate_prefetch_metrics(const struct vt_aggregate *a);
/* vt_aggregate_prefetch_parts for a merge of the n sketches a check kept:
 * of the fixed sketches only the counters their buckets land on (a
 * window's few records cover about half of a rollup's range). */
void vt_aggregate_prefetch_kept(const struct vt_aggregate *a, const struct vt_sketch_kept *k,
                                uint32_t n);

/* What a reader of many rollups reads of each, so that a walk over them
 * fetches those lines ahead of it and no others (the line fill buffers are
 * what such a walk waits on): a score reading p95 latency then does not pull
 * in the data-quality counters, and one reading TTFT gets its counters on
 * the way. Bit i of `fixed` and `buckets` is fixed sketch i, in the order
 * latency_ms, ttft_ms, input_tokens, output_tokens, cost_usd. count and
 * errors are always read. A hint only: the reader may read anything. */
struct vt_agg_reads {
    uint8_t fixed;   /* the sketch's totals (count, sum, min, max) */
    uint8_t buckets; /* ... and its counters */
    bool metrics;    /* the named metrics */
    bool exemplars, embedding, quality;
};
#define VT_AGG_READS_ALL ((struct vt_agg_reads){0x1f, 0x1f, true, true, true, true})

/* Hints for such a walk, in two steps a little apart: _read fetches the
 * lines of a itself that r reads; _read_parts (those in cache) what they
 * point to: the counters of the sketches r reads whole, the metric array. */
void vt_aggregate_prefetch_read(const struct vt_aggregate *a, const struct vt_agg_reads *r);
void vt_aggregate_prefetch_read_parts(const struct vt_aggregate *a, const struct vt_agg_reads *r);

/* dst += the aggregate in buf, which passed vt_aggregate_check_wire (a
 * caller that validates a whole batch first, then merges). 0 or -ENOMEM. */
int vt_aggregate_merge_wire_checked(struct vt_aggregate *dst, const uint8_t *buf, size_t len);

/* Both: validate, then merge. 0, -EBADMSG (dst unchanged) or -ENOMEM. */
int vt_aggregate_merge_wire(struct vt_aggregate *dst, const uint8_t *buf, size_t len);

#endif
