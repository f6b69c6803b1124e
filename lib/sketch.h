/*
 * sketch.h - DDSketch over the OpenTelemetry exponential-histogram mapping.
 *
 * Why it exists: every distribution vitals reports (latency, TTFT, tokens,
 * cost, eval scores) must be summarised per pod, shipped, and merged across
 * pods without losing accuracy. A DDSketch gives quantiles with a relative
 * error bound, merges exactly, and - with the OTel index mapping used here -
 * is at the same time an OTLP ExponentialHistogram and a Prometheus native
 * histogram (same scale, same bucket indexes).
 *
 * Mapping. base = 2^(2^-scale). Bucket i holds the magnitudes (base^i,
 * base^(i+1)]. index(v) = ceil(log2(v) * 2^scale) - 1; exact powers of two
 * land exactly at the top of their bucket (index(2^k) = k*2^scale - 1). For
 * scale <= 10 the index is computed from the IEEE-754 bits and a constant
 * table of the boundaries 2^(k/1024) (floor-rounded in 52-bit fixed point,
 * generated with 50-digit arithmetic), so every double lands in the right
 * bucket; no log() per insert. Scales 11..20 use long-double log2/exp2
 * (boundary-correct to ~2^-63 relative). The quantile estimate of a bucket is
 * 2*base^(i+1)/(base+1), whose relative error to any value of the bucket is
 * at most (base-1)/(base+1): 0.54% at the default scale 6, 1.08% at scale 5.
 *
 * Values. Positive and negative values go to two bucket stores (by
 * magnitude); |v| <= zero_threshold goes to the zero bucket. NaN and +-Inf
 * are rejected (-EINVAL); nothing is counted for them.
 *
 * Zero threshold. Default VT_SKETCH_DEFAULT_ZERO_THRESHOLD = 1e-9: exact
 * zeros (hallucination = 0, feedback = 0) and floating-point dust such as
 * 1e-17 share the zero bucket instead of opening thousands of buckets down
 * to 2^-1074. No vitals metric has meaningful magnitudes below 1e-9 (cost is
 * >= $1e-6 per call, latency is in ms, tokens are integers), so the absolute
 * error this adds is <= 1e-9. Pass 0 to get the plain OTel behaviour.
 *
 * Scores in [0, 1] (relevance, 0/1 hallucination, -1/0/1 feedback). Checked
 * and kept on DDSketch, no separate linear histogram: exact 0 is exact (zero
 * bucket), -1/0/1 fall into three buckets, a value near 0 has a relative -
 * hence an even smaller absolute - error, [0.01, 1] spans ~425 buckets at
 * scale 6 (~0.5 KB with 1-byte counters), and means come from the exact sum.
 * The visible effects: a bucket's estimate is not a round number (the p50
 * of {0, 1, 1} is 0.9946, not 1), within the 0.54% bound; and continuous
 * scores that come arbitrarily close to 0 (1e-10) open buckets down there
 * (~64 per halving), bounded by max_bins. A caller that knows a metric is a
 * score may pass a zero_threshold such as 1e-4 to cap that at ~850 buckets.
 *
 * Memory. A store does NOT preallocate max_bins: it is a contiguous array
 * over the occupied index range, grown geometrically, never larger than
 * max_bins entries, and its counters are 1 byte wide until one overflows,
 * then 2, 4, 8 (the whole store widens at once). A latency sketch of 1,000
 * lognormal values takes well under 1 KiB (see vt_sketch_memory()). When the
 * occupied range would exceed max_bins, the LOWEST buckets are collapsed into
 * the lowest kept bucket (DDSketch CollapsingLowestDenseStore): the count is
 * kept, quantiles above the collapsed tail keep their accuracy. For the
 * negative store "lowest" means smallest magnitude (closest to zero).
 *
 * Conventions. A vt_sketch is a caller-owned struct (embed it anywhere);
 * vt_sketch_init() sets it up without allocating, the stores allocate lazily
 * on first insert, vt_sketch_free() releases them. Functions returning int
 * return 0 or a negative errno: -EINVAL (bad argument, NaN/Inf), -ENOMEM,
 * -EOVERFLOW (a count would exceed 2^64-1), -EBADMSG (invalid message). A
 * sketch is not thread-safe; one owner at a time.
 *
 * OTLP ExponentialHistogramDataPoint from a Vitals__V1__Sketch (same
 * semantics, field by field): scale -> scale(6), count -> count(4), sum ->
 * sum(5), zero_count -> zero_count(7), zero_threshold -> zero_threshold(14),
 * positive/negative {offset, counts} -> positive(8)/negative(9)
 * {offset, bucket_counts}, min -> min(12), max -> max(13). Prometheus native
 * histogram: schema = scale (Prometheus accepts -4..8, so call
 * vt_sketch_downscale(s, 8) first when scale > 8); zero_threshold ->
 * zero_threshold; zero_count -> zero_count; the positive/negative buckets ->
 * spans (runs of non-empty buckets, first offset = index) + delta-encoded
 * counts. Prometheus' bucket i is (base^(i-1), base^i], i.e. its index is
 * ours + 1. Use vt_sketch_bucket_range()/vt_sketch_bucket_get() to read the
 * buckets.
 */
#ifndef VT_SKETCH_H
#define VT_SKETCH_H

#include <stddef.h>
#include <stdint.h>

#include "vitals/v1/vitals.pb-c.h"

#define VT_SKETCH_DEFAULT_SCALE 6
#define VT_SKETCH_MIN_SCALE (-10)
#define VT_SKETCH_MAX_SCALE 20
#define VT_SKETCH_DEFAULT_MAX_BINS 2048
/* Largest max_bins accepted, and largest bucket array accepted from a
 * message (a decoder bound: the network cannot make us allocate more). */
#define VT_SKETCH_MAX_BINS_LIMIT 65536
#define VT_SKETCH_DEFAULT_ZERO_THRESHOLD 1e-9

/* One bucket store (positive or negative magnitudes). Private: read it only
 * through the functions below. */
typedef struct vt_sketch_store {
    void *bins;        /* cap counters of `width` bytes; bins[0] is index `offset` */
    int32_t offset;    /* bucket index of bins[0] */
    uint32_t cap;      /* counters allocated (0 = nothing allocated) */
    int32_t lo, hi;    /* occupied index range; valid only when total > 0 */
    uint64_t total;    /* sum of the counters */
    uint8_t width;     /* bytes per counter: 1, 2, 4 or 8 */
    uint8_t collapsed; /* 1 once its lowest buckets were folded into `lo` */
    uint32_t peak;     /* >= every counter (UINT32_MAX: unknown, total bounds them) */
} vt_sketch_store;

typedef struct vt_sketch {
    int32_t scale;
    uint32_t max_bins;     /* per store */
    double zero_threshold;
    uint64_t count;        /* every value added, zero bucket included */
    uint64_t zero_count;
    double sum, min, max;  /* min = +inf, max = -inf while empty */
    vt_sketch_store pos, neg;
} vt_sketch;

/* --- life cycle ------------------------------------------------------ */

/* Set up an empty sketch. scale in [VT_SKETCH_MIN_SCALE, VT_SKETCH_MAX_SCALE],
 * max_bins in [1, VT_SKETCH_MAX_BINS_LIMIT] (0 = default), zero_threshold
 * finite and >= 0. Allocates nothing. Returns 0 or -EINVAL. */
int vt_sketch_init(vt_sketch *s, int scale, uint32_t max_bins, double zero_threshold);

/* vt_sketch_init(s, VT_SKETCH_DEFAULT_SCALE, VT_SKETCH_DEFAULT_MAX_BINS,
 * VT_SKETCH_DEFAULT_ZERO_THRESHOLD); cannot fail. */
void vt_sketch_init_default(vt_sketch *s);

/* Release the stores. The sketch is left empty and usable (same config). */
void vt_sketch_free(vt_sketch *s);

/* Empty the sketch, keeping its configuration and its allocations (so the
 * next window does not malloc again). */
void vt_sketch_reset(vt_sketch *s);

/* dst := deep copy of src. dst must be initialised (its old contents are
 * freed). Returns 0 or -ENOMEM (dst is then empty). */
int vt_sketch_copy(vt_sketch *dst, const vt_sketch *src);

/* --- updates --------------------------------------------------------- */

/* Add one value. -EINVAL for NaN/Inf (nothing changes), -ENOMEM if a store
 * could not grow (nothing changes), -EOVERFLOW if count would wrap. */
int vt_sketch_add(vt_sketch *s, double v);

/* Add `n` occurrences of v (n = 0 is a no-op). Same errors as vt_sketch_add. */
int vt_sketch_add_n(vt_sketch *s, double v, uint64_t n);

/* dst += src. Works across scales: the finer sketch is downscaled to the
 * coarser scale (index >> d), dst included. Across zero thresholds the larger
 * one wins and buckets entirely below it move to the zero bucket. max_bins
 * of dst applies. src is unchanged. On error no count of src is in dst;
 * after -ENOMEM dst may have been re-bucketed (downscaled, or its lowest
 * buckets collapsed to make room) but still holds exactly its own values. */
int vt_sketch_merge(vt_sketch *dst, const vt_sketch *src);

/* Re-bucket s at a coarser scale (new_scale <= s->scale; equal is a no-op).
 * Returns 0, -EINVAL, -ENOMEM. */
int vt_sketch_downscale(vt_sketch *s, int new_scale);

/* --- queries (all O(buckets) at most; none allocates) ---------------- */

/* Estimate of the q-quantile, q in [0, 1]: the DDSketch rank rule (rank =
 * q*(count-1); negative store from the largest magnitude, zero bucket,
 * positive store), the bucket's estimate 2*base^(i+1)/(base+1) signed and
 * clamped to [min, max]; q = 0 and q = 1 return min and max exactly. NAN if
 * the sketch is empty or q is outside [0, 1] or NaN. */
double vt_sketch_quantile(const vt_sketch *s, double q);

/* Fraction of the values <= x, in [0, 1] (NAN if empty or x is NaN). Values
 * sharing x's bucket count as <= x, so the answer is exact at bucket bounds
 * and otherwise off by at most the share of x's own bucket. */
double vt_sketch_rank(const vt_sketch *s, double x);

uint64_t vt_sketch_count(const vt_sketch *s);
double vt_sketch_sum(const vt_sketch *s);
double vt_sketch_mean(const vt_sketch *s);  /* NAN if empty */
double vt_sketch_min(const vt_sketch *s);   /* NAN if empty */
double vt_sketch_max(const vt_sketch *s);   /* NAN if empty */

/* Counts folded into lowest buckets: for each collapsed store, the count of
 * its lowest kept bucket (which holds the folded values). 0 = exact. */
uint64_t vt_sketch_collapsed_count(const vt_sketch *s);

/* Bytes this sketch owns: the struct plus the allocated counters. */
size_t vt_sketch_memory(const vt_sketch *s);

/* 1 if a and b hold the same distribution bucket for bucket: scale,
 * zero_threshold, count, zero_count, min, max, collapsed state and every
 * bucket count. sum is NOT compared (floating-point addition order). */
int vt_sketch_same(const vt_sketch *a, const vt_sketch *b);

/* A hint, no effect on s: start bringing into cache the counters that a
 * merge into s will most likely touch (its occupied range). For callers
 * that know which sketch they merge into next while still busy with the
 * one before (the scorer's rollups are cold at 10k series). */
void vt_sketch_prefetch(const vt_sketch *s);
/* ... of its positive counters, only those of indexes [lo, hi]. */
void vt_sketch_prefetch_range(const vt_sketch *s, int32_t lo, int32_t hi);

/* --- buckets (for exporters: OTLP, Prometheus, PSI) ------------------- */

/* Occupied index range of the positive (negative = 0) or negative
 * (negative = 1) store. Returns 0 and sets *first <= *last, or -ENOENT if
 * that store is empty. */
int vt_sketch_bucket_range(const vt_sketch *s, int negative, int32_t *first, int32_t *last);

/* Count of one bucket (0 outside the occupied range). */
uint64_t vt_sketch_bucket_get(const vt_sketch *s, int negative, int32_t index);

/* The mapping itself, for any scale in range. vt_sketch_index: bucket index
 * of a finite magnitude v > 0 (v <= 0 or non-finite: INT32_MIN).
 * vt_sketch_bucket_lower/upper: base^i and base^(i+1) (may be 0 or +inf at
 * the ends of the double range). vt_sketch_relative_error: (base-1)/(base+1). */
int32_t vt_sketch_index(int scale, double v);
double vt_sketch_bucket_lower(int scale, int32_t index);
double vt_sketch_bucket_upper(int scale, int32_t index);
double vt_sketch_relative_error(int scale);

/* --- wire form --------------------------------------------------------- */

/* Fill *msg (overwritten, no need to init) from s. Buckets are trimmed to
 * the occupied range. msg's positive/negative sub-messages and count arrays
 * are malloc'ed: release them with vt_sketch_proto_release(msg) (which does
 * not free msg itself). An empty sketch encodes min = max = 0. Returns 0 or
 * -ENOMEM (msg then holds nothing to release). */
int vt_sketch_to_proto(const vt_sketch *s, Vitals__V1__Sketch *msg);
void vt_sketch_proto_release(Vitals__V1__Sketch *msg);

/* Serialise to a packed vitals.v1.Sketch. *out is malloc'ed (caller frees),
 * *len its size. Returns 0 or -ENOMEM. */
int vt_sketch_pack(const vt_sketch *s, uint8_t **out, size_t *len);

/*
 * Decoding reads a serialized vitals.v1.Sketch where it lies (no protobuf-c
 * unpack, no copy of the bucket arrays; runs of zero counts are skipped
 * eight bytes at a time), so the scorer can merge what agents send at wire
 * speed. Every decoder validates: scale in range, zero_threshold finite >= 0,
 * known fields of the right wire type (a Buckets field given twice is
 * refused), at most VT_SKETCH_MAX_BINS_LIMIT counts per store and every
 * non-zero one at an index of the mapping, count == zero_count + all bucket
 * counts without overflow, min <= max finite (when count > 0) and of the
 * right sign for the non-empty stores, collapsed_count consistent. sum is
 * taken as is (a sum of doubles may have overflowed to +-inf, or NaN).
 */

/* Build *s from buf (s need not be initialised; on success it owns its
 * stores, release with vt_sketch_free). max_bins as for vt_sketch_init (0 =
 * default); wider messages are collapsed into it. Returns 0, -EBADMSG,
 * -EINVAL (bad max_bins), -ENOMEM; on error *s is a valid empty sketch. */
int vt_sketch_unpack(vt_sketch *s, const uint8_t *buf, size_t len, uint32_t max_bins);

/* Validate as vt_sketch_unpack would, building nothing; *count (if not
 * NULL) is the sketch's count. 0 or -EBADMSG. */
int vt_sketch_check_wire(const uint8_t *buf, size_t len, uint64_t *count);

/* dst += the sketch in buf (validated as above). Errors as vt_sketch_merge
 * plus -EBADMSG; dst unchanged on -EBADMSG. */
int vt_sketch_merge_wire(vt_sketch *dst, const uint8_t *buf, size_t len);

/* vt_sketch_merge_wire for bytes that already passed vt_sketch_check_wire
 * (validate a whole batch first, then merge without checking twice). Same
 * errors but -EBADMSG. */
int vt_sketch_merge_wire_checked(vt_sketch *dst, const uint8_t *buf, size_t len);

/* What a check learned of one serialized Sketch, kept for the merge that
 * follows so the message is parsed once (the scorer checks a batch on
 * receipt and merges it after the WAL made it durable). It points into the
 * message, which must outlive it. buf, len, count, lo and hi are public;
 * the fields ending in _ belong to sketch_wire.c (they are here, not behind
 * an opaque array, so that the check writes them in place: copying a struct
 * just built field by field stalled on store forwarding). */
struct vt__kept_store {
    const uint8_t *p, *end; /* the sparse run, or else the Buckets message */
    int32_t lo, hi, offset; /* bucket indexes (32 bits: the mapping's); lo > hi: none */
    uint32_t sparse;
    uint64_t top;
};

struct vt_sketch_kept {
    const uint8_t *buf;
    size_t len;
    uint64_t count;
    int32_t lo, hi;  /* the positive buckets it has (lo > hi: none) */
    uint32_t field;  /* set by the caller: which sketch of its message it is */
    uint32_t name_len; /* set by the caller: the name of a named one ... */
    const char *name;  /* ... (not NUL-terminated; inside the message) */
    uint64_t zero_count_;
    double sum_, min_, max_, zero_threshold_;
    int32_t scale_;
    uint8_t pcol_, ncol_;
    struct vt__kept_store pos_, neg_;
};

/* Append s's Sketch message fields (not a tag or length) to w: the bytes
 * protobuf-c packs from vt_sketch_to_proto(s), without building that
 * message (pb_write.h; on ENOMEM w->err is set). */
struct pbw;
void vt_sketch_encode(const vt_sketch *s, struct pbw *w);

/* vt_sketch_check_wire that fills *k as well (*k is undefined on error). */
int vt_sketch_check_wire_kept(const uint8_t *buf, size_t len, struct vt_sketch_kept *k);

/* vt_sketch_merge_wire_checked of k->buf, from what its check kept. */
int vt_sketch_merge_kept(vt_sketch *dst, const struct vt_sketch_kept *k);

#endif
