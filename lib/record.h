/*
 * record.h - the NDJSON record of DESIGN §3: decoder, limits, reject reasons,
 * and a canonical encoder.
 *
 * Every LLM call reaches vitals as one JSON object per line (or datagram), so
 * this decoder sits on the hottest path of the agent. It is a purpose-built,
 * bounded, single-pass scanner rather than a general JSON library: it never
 * reads past `len`, never recurses, allocates nothing per record, and turns
 * every malformed or out-of-bounds input into exactly one reason from a fixed
 * enum (so the agent can count invalid records by reason and go on).
 *
 * Usage:
 *   struct vt_record_decoder *dec = vt_record_decoder_new(NULL, "support-bot");
 *   struct vt_record rec;
 *   switch (vt_record_decode(dec, line, len, now_ms, &rec)) {
 *   case VT_RECORD_DATA:     ... use rec (valid until the next decode) ...
 *   case VT_RECORD_SYNC:     ... reply {"synced": rec.sync} ...
 *   case VT_RECORD_REJECTED: ... count vt_record_reject_name(rec.reject) ...
 *   case VT_RECORD_EMPTY:    ... blank line, ignore ...
 *   }
 *   vt_record_decoder_free(dec);
 *
 * Schema (docs/record.md has the full table): ts, service, model, provider,
 * version, latency_ms, ttft_ms, status, error_type, input_tokens,
 * output_tokens, cost_usd, metrics{name: number}, labels{key: string},
 * embedding[number], request_id. Decisions worth knowing:
 *   - `null` for any field means "absent" (as if the key were not there); a
 *     null metric value or label value drops that one entry.
 *   - Unknown top-level keys are skipped (their values must still be valid
 *     JSON, nested at most `max_depth` deep) and counted in unknown_fields.
 *   - A known top-level key given twice, a label key given twice or a metric
 *     name given twice rejects the record (`duplicate_key`): JSON leaves the
 *     meaning of duplicates open, and guessing would let two parsers disagree.
 *   - Label values must be strings; numbers and true/false are accepted as
 *     their literal JSON text ("tier": 3 -> "3"); objects/arrays -> bad_type.
 *   - Labels and metrics come out sorted by key (bytewise), the canonical
 *     series-key order.
 *   - `ts`: epoch milliseconds as an integer or float (fraction floored), or
 *     an RFC 3339 string ("2025-11-28T00:00:00.123+01:00"; 'T'/'t'/' ' and
 *     'Z'/'z' accepted, sub-millisecond digits truncated). Valid range
 *     1970-01-01 .. 9999-12-31; else bad_timestamp. Absent -> now_ms.
 *   - `service` absent, null or "" -> the decoder's default service if one was
 *     configured, else missing_service.
 *   - input_tokens/output_tokens: non-negative integers (a float with an
 *     integral value such as 512.0 is accepted) up to 2^64-1; latency_ms and
 *     ttft_ms must be >= 0. Otherwise out_of_range.
 *   - JSON numbers follow RFC 8259 strictly; the tokens NaN, Infinity and
 *     -Infinity (which Python's json emits) and overflowing numbers such as
 *     1e400 reject the record as non_finite.
 *   - Strings: every JSON escape is decoded, \uXXXX surrogate pairs become
 *     UTF-8; invalid UTF-8, lone surrogates and \u0000 reject as bad_utf8.
 *
 * Not thread-safe per decoder: use one decoder per thread (they are cheap).
 */
#ifndef VT_RECORD_H
#define VT_RECORD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A string that is not NUL-terminated. It points into the input line or into
 * the decoder's scratch buffer; valid until the next vt_record_decode(). */
struct vt_str {
    const char *ptr;
    size_t len;
};

struct vt_label {
    struct vt_str key;
    struct vt_str value;
};

struct vt_metric {
    struct vt_str name;
    double value; /* always finite */
};

/* Field ids. They equal the field numbers of vitals.v1.Record in
 * proto/vitals/v1/vitals.proto, so `present` maps 1:1 onto Record.present. */
enum vt_record_field {
    VT_FIELD_TS = 1,
    VT_FIELD_SERVICE = 2,
    VT_FIELD_MODEL = 3,
    VT_FIELD_PROVIDER = 4,
    VT_FIELD_VERSION = 5,
    VT_FIELD_LATENCY_MS = 6,
    VT_FIELD_TTFT_MS = 7,
    VT_FIELD_STATUS = 8,
    VT_FIELD_ERROR_TYPE = 9,
    VT_FIELD_INPUT_TOKENS = 10,
    VT_FIELD_OUTPUT_TOKENS = 11,
    VT_FIELD_COST_USD = 12,
    VT_FIELD_METRICS = 13,
    VT_FIELD_LABELS = 14,
    VT_FIELD_EMBEDDING = 15,
    VT_FIELD_REQUEST_ID = 16,
};
#define VT_FIELD_FIRST VT_FIELD_TS
#define VT_FIELD_LAST VT_FIELD_REQUEST_ID
#define VT_FIELD_BIT(f) (UINT32_C(1) << (f))

/* The optional fields whose absence is a data-quality signal (everything but
 * service and error_type, which is only meaningful on errors). Count missing
 * ones with:
 *   for (int f = VT_FIELD_FIRST; f <= VT_FIELD_LAST; f++)
 *       if ((VT_RECORD_OPTIONAL_MASK & VT_FIELD_BIT(f)) && !(rec.present & VT_FIELD_BIT(f)))
 *           missing[f]++;   // name: vt_record_field_name(f)
 */
#define VT_RECORD_OPTIONAL_MASK                                                                 \
    (VT_FIELD_BIT(VT_FIELD_TS) | VT_FIELD_BIT(VT_FIELD_MODEL) | VT_FIELD_BIT(VT_FIELD_PROVIDER) | \
     VT_FIELD_BIT(VT_FIELD_VERSION) | VT_FIELD_BIT(VT_FIELD_LATENCY_MS) |                        \
     VT_FIELD_BIT(VT_FIELD_TTFT_MS) | VT_FIELD_BIT(VT_FIELD_STATUS) |                            \
     VT_FIELD_BIT(VT_FIELD_INPUT_TOKENS) | VT_FIELD_BIT(VT_FIELD_OUTPUT_TOKENS) |                \
     VT_FIELD_BIT(VT_FIELD_COST_USD) | VT_FIELD_BIT(VT_FIELD_METRICS) |                          \
     VT_FIELD_BIT(VT_FIELD_LABELS) | VT_FIELD_BIT(VT_FIELD_EMBEDDING) |                          \
     VT_FIELD_BIT(VT_FIELD_REQUEST_ID))

/* The JSON key of a field ("latency_ms"), or NULL for an id that is not a field. */
const char *vt_record_field_name(int field);

/* Why a record was rejected. Values and names are stable (they are metric
 * label values); new reasons are only ever appended. */
enum vt_record_reject {
    VT_REJECT_NONE = 0,
    VT_REJECT_PARSE_ERROR,        /* "parse_error": not one valid JSON object, or nested too deep */
    VT_REJECT_TOO_LARGE,          /* "too_large": line longer than max_record_bytes */
    VT_REJECT_BAD_TYPE,           /* "bad_type": a known field has the wrong JSON type */
    VT_REJECT_NON_FINITE,         /* "non_finite": NaN, Infinity, or a number overflowing a double */
    VT_REJECT_TOO_MANY_LABELS,    /* "too_many_labels": more than max_labels */
    VT_REJECT_FIELD_TOO_LONG,     /* "field_too_long": a string, label key/value or metric name over its limit */
    VT_REJECT_BAD_TIMESTAMP,      /* "bad_timestamp": ts unparseable or outside 1970..9999 */
    VT_REJECT_MISSING_SERVICE,    /* "missing_service": no service and no default configured */
    VT_REJECT_TOO_MANY_METRICS,   /* "too_many_metrics": more than max_metrics */
    VT_REJECT_EMBEDDING_TOO_LONG, /* "embedding_too_long": more than max_embedding dimensions */
    VT_REJECT_BAD_STATUS,         /* "bad_status": status is a string other than "ok" / "error" */
    VT_REJECT_BAD_UTF8,           /* "bad_utf8": invalid UTF-8, a lone surrogate, or \u0000 */
    VT_REJECT_DUPLICATE_KEY,      /* "duplicate_key": a known key, label key or metric name twice */
    VT_REJECT_OUT_OF_RANGE,       /* "out_of_range": negative latency, non-integral/negative tokens */
    VT_REJECT__COUNT
};

/* Stable snake_case name of a reason ("parse_error"); "none" for
 * VT_REJECT_NONE and "unknown" for values outside the enum. Never NULL. */
const char *vt_record_reject_name(int reason);

/* What one call to vt_record_decode() found. */
enum vt_record_kind {
    VT_RECORD_REJECTED = 0, /* rec.reject says why */
    VT_RECORD_DATA = 1,     /* rec holds a valid record */
    VT_RECORD_SYNC = 2,     /* the control line {"sync": N}; rec.sync = N */
    VT_RECORD_EMPTY = 3,    /* only whitespace: NDJSON allows blank lines; not a record */
};

/* A decoded record. Strings and arrays point into the input line or the
 * decoder; they stay valid until the next vt_record_decode() on the same
 * decoder and while the input line is unchanged. Fields whose bit is not in
 * `present` are zero / empty. */
struct vt_record {
    int64_t ts_ms;          /* event time, epoch ms; = arrival_ms if absent */
    int64_t arrival_ms;     /* the now_ms given to vt_record_decode() */
    struct vt_str service;  /* never empty in an accepted record */
    struct vt_str model;
    struct vt_str provider;
    struct vt_str version;
    double latency_ms;      /* >= 0 */
    double ttft_ms;         /* >= 0 */
    bool error;             /* status == "error" */
    struct vt_str error_type;
    uint64_t input_tokens;
    uint64_t output_tokens;
    double cost_usd;
    const struct vt_metric *metrics; /* sorted by name, names unique */
    uint32_t n_metrics;
    const struct vt_label *labels;   /* sorted by key, keys unique */
    uint32_t n_labels;
    const double *embedding;
    uint32_t n_embedding;
    struct vt_str request_id;
    uint32_t present;       /* VT_FIELD_BIT(f) set iff field f was given (non-null).
                               SERVICE unset => the default service was used;
                               TS unset => ts_ms is the arrival time. */
    uint32_t unknown_fields;/* top-level keys that were skipped */
    uint64_t sync;          /* VT_RECORD_SYNC only */
    enum vt_record_reject reject; /* VT_RECORD_REJECTED only, else VT_REJECT_NONE */
    uint32_t reject_offset; /* byte offset in the line where the problem was found */
};

/* Bounds on what one record may hold. Every value must be >= 1. */
struct vt_record_limits {
    uint32_t max_record_bytes; /* 65536; at most 16 MiB */
    uint32_t max_labels;       /* 32 */
    uint32_t max_label_key;    /* 64 bytes (after unescaping) */
    uint32_t max_label_value;  /* 256 bytes */
    uint32_t max_metrics;      /* 64 */
    uint32_t max_metric_name;  /* 128 bytes */
    uint32_t max_embedding;    /* 4096 dimensions */
    uint32_t max_string;       /* 256 bytes: service, model, provider, version,
                                  error_type, request_id */
    uint32_t max_depth;        /* 32: nesting of skipped unknown values (1..64) */
};

/* Fill *limits with the safe defaults above. */
void vt_record_limits_default(struct vt_record_limits *limits);

struct vt_record_decoder;

/* Create a decoder; allocates once all arrays sized from the limits (about
 * 2 x max_record_bytes + 40 KiB with the defaults). `limits` NULL means the
 * defaults; `default_service` NULL or "" means none (records without a service
 * are then rejected); it is copied and must fit max_string. Returns NULL with
 * errno = EINVAL (bad limits) or ENOMEM. Free with vt_record_decoder_free(). */
struct vt_record_decoder *vt_record_decoder_new(const struct vt_record_limits *limits,
                                                const char *default_service);
void vt_record_decoder_free(struct vt_record_decoder *dec);

/* The limits the decoder was created with. */
const struct vt_record_limits *vt_record_decoder_limits(const struct vt_record_decoder *dec);

/* Decode one line (`len` bytes, need not be NUL-terminated; surrounding JSON
 * whitespace including a trailing "\n" or "\r\n" is allowed). `now_ms` is the
 * arrival time. Always fills *rec (zeroing what the line does not set) and
 * returns its kind. Never reads line[len] or beyond, never allocates.
 * On VT_RECORD_REJECTED the fields decoded before the problem are left in rec
 * (with their present bits) as a hint, e.g. to attribute the invalid record
 * to its service; they are not validated as a whole. */
enum vt_record_kind vt_record_decode(struct vt_record_decoder *dec, const char *line, size_t len,
                                     int64_t now_ms, struct vt_record *rec);

/* Write `rec` as one canonical compact JSON object (no newline) into buf and
 * NUL-terminate it. Only fields in rec->present are written, in the order of
 * enum vt_record_field; labels and metrics in the order given (sorted, for a
 * decoded record); numbers in the shortest form that reads back to the same
 * double; strings with \" \\ and control characters escaped, UTF-8 as is.
 * Hence vt_record_decode(format(r)) with the same now_ms and default service
 * gives back r field for field. `rec` must hold what the decoder guarantees
 * (finite numbers, latency/ttft/cost >= 0, ts within 1970..9999, valid UTF-8
 * without NUL, sizes within the limits); a hand-built record (e.g. mapped from
 * an OTLP span) that breaks them formats fine but will not decode back.
 * Returns the length written (excluding the NUL), or -ENOSPC if cap is too
 * small (buf then holds an unspecified prefix). */
int vt_record_format_json(const struct vt_record *rec, char *buf, size_t cap);

#endif
