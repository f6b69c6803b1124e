/*
 * sketch_wire.c - decoding a serialized vitals.v1.Sketch where it lies: the
 * validating parser and the merge that adds its bucket counts straight into
 * a sketch's stores (contract in sketch.h, "Decoding").
 *
 * Why it is its own file: the scorer merges every sketch of every pushed
 * batch through here, so this is a hot path with its own tricks - bucket
 * counts below 128 are one byte each, zeros included, and are read eight at
 * a time - while sketch.c keeps the in-memory sketch.
 *
 * Two passes over a message, never more: check (validate everything,
 * change nothing) and merge (reserve room from the counts' index range, then
 * add; only the reservation allocates, so a merge is all-or-nothing). A
 * check may keep what it learned (vt_sketch_kept: the scalars, each store's
 * range and where its counts lie), so that the merge reads nothing but the
 * counts it adds.
 */
#include "sketch.h"
#include "pb_wire.h"
#include "pb_write.h"
#include "sketch_index.h"
#include "sketch_store.h"

#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <string.h>

/* SSE2 is part of x86-64: everywhere else the word-at-a-time code runs. */
#if defined(__SSE2__) && defined(__x86_64__)
#define VT_SSE2 1
#include <emmintrin.h>
#else
#define VT_SSE2 0
#endif

/* A vitals.v1.Sketch parsed in place: scalars decoded, the two Buckets
 * messages left where they lie (their counts are walked, never copied). */
struct wire_sketch {
    int32_t scale;
    uint64_t count, zero_count, collapsed_count;
    double sum, min, max, zero_threshold;
    struct pb pos, neg; /* Buckets message bytes; p == NULL when absent */
};

/* One field of a Sketch message read with pb_next: syntax only, every field
 * well formed with its declared wire type. A Buckets field given twice
 * (protobuf would merge the two; our encoders never split one) is refused.
 * Unknown fields are skipped. 0 or -EBADMSG. */
static int parse_field(struct wire_sketch *w, struct pb *b)
{
    struct pbf f;
    if (pb_next(b, &f) != 1)
        return -EBADMSG;
    switch (f.num) {
    case 1: /* sint32 */
        if (f.wt != PB_VARINT || f.u > UINT32_MAX)
            return -EBADMSG;
        w->scale = pb_zigzag32(f.u);
        break;
    case 2: case 6: case 10: /* uint64 */
        if (f.wt != PB_VARINT)
            return -EBADMSG;
        *(f.num == 2 ? &w->count : f.num == 6 ? &w->zero_count : &w->collapsed_count) = f.u;
        break;
    case 3: case 4: case 5: case 9: /* double */
        if (f.wt != PB_FIXED64)
            return -EBADMSG;
        *(f.num == 3 ? &w->sum : f.num == 4 ? &w->min : f.num == 5 ? &w->max
                                                               : &w->zero_threshold) =
            pb_double(f.u);
        break;
    case 7: case 8: { /* Buckets */
        struct pb *to = f.num == 7 ? &w->pos : &w->neg;
        if (f.wt != PB_LEN || to->p)
            return -EBADMSG;
        *to = pb_of(&f);
        break;
    }
    default: break; /* a field of a newer schema */
    }
    return 0;
}

/* The whole message, as parse_field reads it. The scalars nearly every
 * sketch has - their tags one byte each - are decoded in place, without
 * the generic field record (this parse was a fifth of a batch's check;
 * 367 -> 254 instructions per sketch). 0 or -EBADMSG. */
static int wire_parse(struct wire_sketch *w, const uint8_t *buf, size_t len)
{
    memset(w, 0, sizeof *w);
    struct pb b = pb_make(buf, len);
    while (b.p < b.end) {
        uint64_t *u = NULL;
        double *d = NULL;
        switch (*b.p) { /* (field number << 3 | wire type) */
        case 2 << 3 | PB_VARINT: u = &w->count; break;
        case 6 << 3 | PB_VARINT: u = &w->zero_count; break;
        case 3 << 3 | PB_FIXED64: d = &w->sum; break;
        case 4 << 3 | PB_FIXED64: d = &w->min; break;
        case 5 << 3 | PB_FIXED64: d = &w->max; break;
        case 9 << 3 | PB_FIXED64: d = &w->zero_threshold; break;
        default:
            if (parse_field(w, &b))
                return -EBADMSG;
            continue;
        }
        b.p++;
        if (u && pb_varint(&b, u))
            return -EBADMSG;
        if (d) {
            if (b.end - b.p < 8)
                return -EBADMSG;
            *d = pb_double(pb_le64(b.p));
            b.p += 8;
        }
    }
    return 0;
}

/* Walks the counts of a Buckets message {sint32 offset = 1; repeated uint64
 * counts = 2}: packed runs and single varints alike, in order. Zero counts
 * (most of a sparse sketch: one 0x00 byte each) are skipped eight at a
 * time. */
struct counts_it {
    struct pb msg;  /* fields of the Buckets message not read yet */
    struct pb run;  /* rest of the current packed run */
    int64_t offset; /* bucket index of count 0 */
    uint64_t k;     /* position of the next count not loaded yet */
    uint64_t w;     /* a loaded word of eight one-byte counts ... */
    uint64_t nz;    /* ... with the high bit set in each byte still to hand out */
    uint64_t wk;    /* position of w's first count */
};

/* The iterator at the first count of a Buckets message whose offset is
 * known (a validated one: the fields were checked by counts_summary). */
static void counts_init(struct counts_it *it, struct pb msg, int64_t offset)
{
    it->msg = msg;
    it->run = (struct pb){msg.p, msg.p};
    it->offset = offset;
    it->k = it->w = it->nz = it->wk = 0;
}

#define HIGH_BITS 0x8080808080808080ull

/* The next non-zero count: 1 with its bucket index and value, 0 at the end,
 * -EBADMSG on a truncated varint (counts_summary checked everything else).
 * Counts below 128 - nearly all of them - are one byte each, zeros included,
 * so the run is read eight bytes at a time: a word without high bits holds
 * eight whole counts, and adding 0x7f to each byte marks the non-zero ones. */
static inline int counts_next(struct counts_it *it, int64_t *index, uint64_t *value)
{
    for (;;) {
        if (it->nz) {
            unsigned b = (unsigned)__builtin_ctzll(it->nz) >> 3;
            it->nz &= it->nz - 1;
            *index = it->offset + (int64_t)(it->wk + b);
            *value = (it->w >> (8 * b)) & 0xff;
            return 1;
        }
        struct pb *r = &it->run;
        while (r->end - r->p >= 8) {
            uint64_t w = pb_le64(r->p);
            if (w & HIGH_BITS)
                break; /* a count of two bytes or more: one at a time below */
            r->p += 8;
            it->wk = it->k;
            it->k += 8;
            if (w) {
                it->w = w;
                it->nz = (w + 0x7f7f7f7f7f7f7f7full) & HIGH_BITS;
                break;
            }
        }
        if (it->nz)
            continue;
        uint64_t v;
        if (r->p < r->end) {
            if (pb_varint(r, &v))
                return -EBADMSG;
        } else { /* the next counts field */
            struct pbf f;
            int rr;
            while ((rr = pb_next(&it->msg, &f)) == 1 && f.num != 2)
                ;
            if (rr <= 0)
                return rr < 0 ? -EBADMSG : 0;
            if (f.wt == PB_LEN) {
                it->run = pb_of(&f);
                continue;
            }
            v = f.u;
        }
        uint64_t k = it->k++;
        if (v) { /* (a zero spelled with more than one byte lands here too) */
            *index = it->offset + (int64_t)k;
            *value = v;
            return 1;
        }
    }
}

/* What one pass over a Buckets message learns: the number of counts (for
 * the sparse form, the positions its pairs span), their sum, the index
 * range of the non-zero ones (lo > hi when none) and the lowest-index
 * non-zero count. */
struct counts_sum {
    int64_t lo;
    uint64_t n, total, low;
    int64_t hi; /* (not next to lo: GCC would add the offset to both with one
                 * 16-byte load of two fields just stored one by one - a
                 * store-forwarding stall that was a sixth of this summary) */
    uint64_t top;     /* >= the largest count (7 or 127 for one-byte counts) */
    int64_t offset; /* of the Buckets message */
    struct pb sparse; /* the sparse form's one packed run; p == NULL: dense */
};

/* One count at position k: fold it into *s. -1 if the sum overflows. */
static inline int sum_one(struct counts_sum *s, uint64_t k, uint64_t v)
{
    if (!v)
        return 0;
    if (s->total > UINT64_MAX - v)
        return -1;
    if (s->lo == INT64_MAX) {
        s->lo = (int64_t)k;
        s->low = v;
    }
    s->hi = (int64_t)k;
    s->total += v;
    s->top = v > s->top ? v : s->top;
    return 0;
}

/* A bound of the largest one-byte count among those in `bytes` (each below
 * 128): 7 when no byte has bits 3-6, else 127. */
static inline uint64_t byte_top(uint64_t bytes)
{
    return bytes & 0x7878787878787878ull ? 127 : 7;
}

/* Fill *s (lo/hi as positions; the caller adds the offset) from a run of
 * packed counts. Words of eight one-byte counts cost a few operations each:
 * no branch per count. -1 on a truncated varint or an overflowing sum. */
static int sum_run(struct counts_sum *s, struct pb r)
{
    while (r.p < r.end) {
        if (r.end - r.p >= 8 && s->total < UINT64_MAX - 8 * 127) {
            uint64_t w = pb_le64(r.p);
            if (!(w & HIGH_BITS)) {
                if (w) {
                    uint64_t nz = (w + 0x7f7f7f7f7f7f7f7full) & HIGH_BITS;
                    unsigned first = (unsigned)__builtin_ctzll(nz) >> 3;
                    unsigned last = 7 - ((unsigned)__builtin_clzll(nz) >> 3);
                    if (s->lo == INT64_MAX) {
                        s->lo = (int64_t)(s->n + first);
                        s->low = (w >> (8 * first)) & 0xff;
                    }
                    s->hi = (int64_t)(s->n + last);
                    uint64_t t = byte_top(w);
                    s->top = t > s->top ? t : s->top;
                    /* byte sum: pairs into 16-bit lanes, lanes summed by a multiply */
                    uint64_t pairs = (w & 0x00ff00ff00ff00ffull) + ((w >> 8) & 0x00ff00ff00ff00ffull);
                    s->total += (pairs * 0x0001000100010001ull) >> 48;
                }
                r.p += 8;
                s->n += 8;
                continue;
            }
        }
        uint64_t v;
        if (pb_varint(&r, &v) || sum_one(s, s->n, v))
            return -1;
        s->n++;
    }
    return 0;
}

#define LANES16 0x0001000100010001ull /* one in each 16-bit lane */
#define LOW_BYTES 0x00ff00ff00ff00ffull

/* Fold into *s n pairs of one-byte varints, the first (skip0, count0), all
 * their skips summing to skips and counts to counts, top bounding the
 * counts. -1 when they reach past the bucket limit. */
static inline int sum_pairs(struct counts_sum *s, unsigned n, uint64_t skip0, uint64_t count0,
                            uint64_t skips, uint64_t counts, uint64_t top)
{
    uint64_t end = s->n + skips + n; /* past the last */
    if (end > VT_SKETCH_MAX_BINS_LIMIT)
        return -1;
    if (s->lo == INT64_MAX) {
        s->lo = (int64_t)(s->n + skip0);
        s->low = count0;
    }
    s->hi = (int64_t)end - 1;
    s->total += counts;
    s->top = top > s->top ? top : s->top;
    s->n = end;
    return 0;
}

#if VT_SSE2
/* The sum of the bytes of v, all below 128 (two 64-bit sums, added). */
static inline uint64_t bytes_sum16(__m128i v)
{
    __m128i s = _mm_sad_epu8(v, _mm_setzero_si128());
    return (uint64_t)_mm_cvtsi128_si64(s) + (uint64_t)_mm_cvtsi128_si64(_mm_unpackhi_epi64(s, s));
}

/* Eight pairs of one-byte varints at p (16 bytes: SSE2, baseline on x86-64):
 * 1 with the sums of their skips and counts and the bound of their largest
 * count (as byte_top), 0 when a byte has its high bit (a longer varint: the
 * caller reads word by word), -1 on a count of 0. */
static inline int sparse_block(const uint8_t *p, uint64_t *skips, uint64_t *counts,
                               uint64_t *top)
{
    __m128i v = _mm_loadu_si128((const __m128i *)p), zero = _mm_setzero_si128();
    if (_mm_movemask_epi8(v))
        return 0;
    __m128i odd = _mm_set1_epi16((short)0xff00); /* the counts' bytes */
    __m128i c = _mm_and_si128(v, odd);
    if (_mm_movemask_epi8(_mm_cmpeq_epi16(c, zero)))
        return -1;
    *skips = bytes_sum16(_mm_andnot_si128(odd, v));
    *counts = bytes_sum16(c);
    __m128i big = _mm_and_si128(c, _mm_set1_epi8(0x78));
    *top = _mm_movemask_epi8(_mm_cmpeq_epi8(big, zero)) == 0xffff ? 7 : 127;
    return 1;
}
#endif

/* Fill *s from the sparse form's run: pairs (zeros skipped, count), every
 * count non-zero, positions below VT_SKETCH_MAX_BINS_LIMIT. -1 on anything
 * else (an odd number of varints included). Pairs of one-byte varints -
 * nearly all of them - are read eight at a time where SSE2 is there
 * (sparse_block; this summary was a sixth of a batch's check), else four at
 * a time: skips in the even bytes of a word, counts in the odd ones, each
 * set summed by a multiply. */
static int sum_sparse(struct counts_sum *s, struct pb r)
{
    while (r.p < r.end) {
#if VT_SSE2
        uint64_t bskips, bcounts, btop;
        int b;
        if (r.end - r.p >= 16 && s->total < UINT64_MAX - 8 * 127 &&
            (b = sparse_block(r.p, &bskips, &bcounts, &btop)) != 0) {
            if (b < 0 || sum_pairs(s, 8, r.p[0], r.p[1], bskips, bcounts, btop))
                return -1;
            r.p += 16;
            continue;
        }
#endif
        if (r.end - r.p >= 8 && s->total < UINT64_MAX - 4 * 127) {
            uint64_t w = pb_le64(r.p);
            if (!(w & HIGH_BITS)) {
                uint64_t skips = w & LOW_BYTES, counts = (w >> 8) & LOW_BYTES;
                if ((counts - LANES16) & ~counts & (LANES16 << 15))
                    return -1; /* a count of 0 */
                if (sum_pairs(s, 4, w & 0xff, (w >> 8) & 0xff, (skips * LANES16) >> 48,
                              (counts * LANES16) >> 48, byte_top(counts)))
                    return -1;
                r.p += 8;
                continue;
            }
        }
        uint64_t skip, v;
        if (pb_varint(&r, &skip) || pb_varint(&r, &v) || v == 0 ||
            skip >= VT_SKETCH_MAX_BINS_LIMIT - s->n || sum_one(s, s->n + skip, v))
            return -1;
        s->n += skip + 1;
    }
    return 0;
}

/* The summary of a Buckets message: dense counts packed in any number of
 * runs or given one by one, or the sparse form in one packed run (never
 * both). lo/hi are bucket indexes. 0 or -EBADMSG. */
static int counts_summary(struct pb msg, struct counts_sum *s)
{
    *s = (struct counts_sum){.lo = INT64_MAX, .hi = INT64_MIN};
    if (!msg.p)
        return 0;
    int64_t offset = 0; /* may come after the counts: positions are shifted at the end */
    bool dense = false;
    struct pbf f;
    int r;
    while ((r = pb_next(&msg, &f)) == 1) {
        if (f.num == 1) {
            if (f.wt != PB_VARINT || f.u > UINT32_MAX)
                return -EBADMSG;
            offset = pb_zigzag32(f.u); /* the last one wins, as in protobuf */
        } else if (f.num == 2) {
            dense = true;
            if (s->sparse.p || (f.wt == PB_LEN ? sum_run(s, pb_of(&f))
                                               : f.wt != PB_VARINT || sum_one(s, s->n++, f.u)))
                return -EBADMSG;
        } else if (f.num == 3) {
            if (dense || s->sparse.p || f.wt != PB_LEN)
                return -EBADMSG;
            s->sparse = pb_of(&f);
            if (sum_sparse(s, s->sparse))
                return -EBADMSG;
        }
    }
    if (r)
        return -EBADMSG;
    if (s->lo <= s->hi) {
        s->lo += offset;
        s->hi += offset;
    }
    s->offset = offset;
    return 0;
}

/* Validate one Buckets message: at most VT_SKETCH_MAX_BINS_LIMIT counts,
 * the non-zero ones at indexes of the mapping, summed without overflow. */
static int check_counts(struct pb msg, int scale, struct counts_sum *s)
{
    if (counts_summary(msg, s) || s->n > VT_SKETCH_MAX_BINS_LIMIT)
        return -EBADMSG;
    if (s->lo <= s->hi &&
        (s->lo < vt__sketch_index_min(scale) || s->hi > vt__sketch_index_max(scale)))
        return -EBADMSG;
    return 0;
}

/* Which stores a collapsed_count of cc refers to, given the lowest non-zero
 * count of each (pl, nl): the collapsed bucket is always a store's lowest.
 * -1 when it matches neither. */
static int collapsed_of(uint64_t cc, uint64_t pl, uint64_t nl, int *pcol, int *ncol)
{
    *pcol = *ncol = 0;
    if (cc == 0)
        return 0;
    if (pl + nl == cc && pl <= cc) /* both (or the only non-empty one) */
        *pcol = pl != 0, *ncol = nl != 0;
    else if (cc == pl)
        *pcol = 1;
    else if (cc == nl)
        *ncol = 1;
    else
        return -1;
    return 0;
}

/* Everything a message must satisfy: scale and zero threshold in range,
 * bucket ranges, counts adding up to `count` without overflow, a consistent
 * collapsed_count, finite min <= max on the right sides of 0. Sets the
 * collapsed flags of the two stores. 0 or -EBADMSG. */
static int check_msg(const struct wire_sketch *w, struct counts_sum *ps, struct counts_sum *ns,
                     int *pcol, int *ncol)
{
    *pcol = *ncol = 0;
    if (w->scale < VT_SKETCH_MIN_SCALE || w->scale > VT_SKETCH_MAX_SCALE ||
        !(w->zero_threshold >= 0) || !isfinite(w->zero_threshold))
        return -EBADMSG;
    if (check_counts(w->pos, w->scale, ps) || check_counts(w->neg, w->scale, ns))
        return -EBADMSG;
    uint64_t pt = ps->total, nt = ns->total, pl = ps->low, nl = ns->low;
    uint64_t total = w->zero_count;
    if (total > UINT64_MAX - pt || total + pt > UINT64_MAX - nt || total + pt + nt != w->count)
        return -EBADMSG;
    if (collapsed_of(w->collapsed_count, pl, nl, pcol, ncol))
        return -EBADMSG;
    /* sum is not checked: a sum of doubles can legitimately overflow to
     * +-inf, and +inf merged with -inf is NaN. */
    if (w->count > 0 && (!isfinite(w->min) || !isfinite(w->max) || w->min > w->max ||
                         (nt && !(w->min < 0)) || (pt && !(w->max > 0))))
        return -EBADMSG;
    return 0;
}

/* The index range of the non-zero counts of a validated Buckets message,
 * for the merge's reservation (s->lo, s->hi, s->low, s->sparse; s->total is
 * not filled in by the fast path). The common dense shape - our encoder's -
 * is one packed run trimmed to non-zero ends, each a one-byte count: then
 * the range is [offset, offset + n - 1] with n the number of varints, which
 * is the number of bytes below 0x80: a popcount per eight bytes instead of
 * a full summary. The sparse form takes the summary (half the bytes). */
static void counts_span(struct pb msg, struct counts_sum *s)
{
    struct pbf f;
    struct pb run = {NULL, NULL};
    int runs = 0;
    int64_t offset = 0;
    for (struct pb b = msg; b.p && pb_next(&b, &f) == 1;) {
        if (f.num == 1)
            offset = pb_zigzag32(f.u);
        else if (f.num == 2) {
            runs++;
            run = f.wt == PB_LEN ? pb_of(&f) : (struct pb){NULL, NULL};
        }
    }
    size_t len = (size_t)(run.end - run.p);
    /* first and last counts one byte each and non-zero (a longer varint may
     * spell zero: 0x80 ... 0x00, or bits beyond 64 that decoding drops) */
    if (runs != 1 || len == 0 || run.p[0] == 0 || run.p[0] >= 0x80 || run.end[-1] == 0 ||
        run.end[-1] >= 0x80 || (len > 1 && run.end[-2] >= 0x80)) {
        counts_summary(msg, s); /* anything else */
        return;
    }
    uint64_t high = 0, any = 0;
    const uint8_t *p = run.p;
    for (; run.end - p >= 8; p += 8) { /* high bits per word, summed by a multiply */
        uint64_t w = pb_le64(p);
        high += (((w & HIGH_BITS) >> 7) * 0x0101010101010101ull) >> 56;
        any |= w;
    }
    for (; p < run.end; p++) {
        high += *p >> 7;
        any |= *p;
    }
    *s = (struct counts_sum){.n = len - high, .low = run.p[0], .offset = offset,
                             .top = high ? UINT64_MAX : byte_top(any)};
    s->lo = offset;
    s->hi = offset + (int64_t)s->n - 1;
}

/* Step 1 of merging a validated Buckets message into store d (at d's
 * scale): make room for its range above the zero bucket (the only step that
 * allocates). `extra` bounds the counts added (for the counter width). */
static int reserve_counts(vt_sketch *dst, vt_sketch_store *d, const struct counts_sum *s,
                          uint64_t extra, int32_t zfold)
{
    if (s->lo > s->hi || s->hi <= zfold)
        return 0;
    int64_t lo = s->lo <= zfold ? (int64_t)zfold + 1 : s->lo;
    return vt__sketch_store_reserve(d, (int32_t)lo, (int32_t)s->hi, extra,
                                    s->top < extra ? s->top : extra, dst->max_bins);
}

/* Step 2: add the counts. Buckets at or below zfold join the zero bucket;
 * when the union is wider than max_bins, the lowest fold into the lowest kept
 * bucket - exactly the window store_reserve prepared, so every counter is
 * addressable and wide enough, and nothing allocates. */
struct adder {
    vt_sketch *dst;
    vt_sketch_store *d;
    int32_t zfold;
    int64_t floor, lo, hi; /* lo/hi: the range of what went into d */
    uint64_t added, peak;  /* peak: the largest counter written */
};

static inline void add_one(struct adder *a, int64_t j, uint64_t c)
{
    if (j <= a->zfold) {
        a->dst->zero_count += c;
        return;
    }
    vt_sketch_store *d = a->d;
    if (j < a->floor) {
        j = a->floor;
        d->collapsed = 1;
    }
    assert(j >= d->offset && j < (int64_t)d->offset + d->cap);
    size_t p = (size_t)(j - d->offset);
    uint64_t v = cnt_get(d->bins, d->width, p) + c;
    cnt_set(d->bins, d->width, p, v);
    a->peak = v > a->peak ? v : a->peak;
    a->lo = j < a->lo ? j : a->lo;
    a->hi = j > a->hi ? j : a->hi;
    a->added += c;
}

/* bins[p] += c, returning the new value: the reservation made the counter
 * wide enough for it. */
static inline uint64_t bump(void *bins, unsigned w, size_t p, uint64_t c)
{
    switch (w) {
    case 1: return ((uint8_t *)bins)[p] += (uint8_t)c;
    case 2: return ((uint16_t *)bins)[p] += (uint16_t)c;
    case 4: return ((uint32_t *)bins)[p] += (uint32_t)c;
    default: return ((uint64_t *)bins)[p] += c;
    }
}

/* The sparse pairs of add_direct into counters of w bytes: called with a
 * constant w, so that bump() compiles to one add (the width switch inside
 * this loop was a third of the merge's instructions). *peak is raised to
 * the largest counter written; returns the sum added. */
static inline __attribute__((always_inline)) uint64_t
add_sparse(void *bins, unsigned w, struct pb r, size_t p, uint64_t *peak)
{
    uint64_t added = 0, top = *peak, v, skip = 0, c = 0;
    while (r.p < r.end) {
        if (r.end - r.p >= 8) { /* four one-byte pairs at once, as sum_sparse */
            uint64_t x = pb_le64(r.p);
            if (!(x & HIGH_BITS)) {
                for (int k = 0; k < 4; k++, x >>= 16) {
                    p += x & 0xff;
                    c = (x >> 8) & 0xff;
                    v = bump(bins, w, p++, c);
                    top = v > top ? v : top;
                    added += c;
                }
                r.p += 8;
                continue;
            }
        }
        pb_varint(&r, &skip);
        pb_varint(&r, &c);
        p += skip;
        v = bump(bins, w, p++, c);
        top = v > top ? v : top;
        added += c;
    }
    *peak = top;
    return added;
}

/* add_counts where nothing folds - every count above the zero bucket and
 * inside the window, the common case: no per-count range checks, and the
 * range added is the message's own [s->lo, s->hi]. Returns the sum added.
 * The sparse pairs are read here as in sum_sparse and add_counts, not
 * through a shared iterator: one cost this merge 1-2 us per batch
 * (bench_ingest apply 13.7 -> 15.7). */
static uint64_t add_direct(vt_sketch_store *d, struct pb msg, const struct counts_sum *s)
{
    uint64_t added = 0, peak = 0, v;
    if (s->sparse.p) { /* validated: pairs of varints, positions in range */
        size_t p = (size_t)(s->offset - d->offset); /* bins position of the next count */
        switch (d->width) {
        case 1: added = add_sparse(d->bins, 1, s->sparse, p, &peak); break;
        case 2: added = add_sparse(d->bins, 2, s->sparse, p, &peak); break;
        case 4: added = add_sparse(d->bins, 4, s->sparse, p, &peak); break;
        default: added = add_sparse(d->bins, 8, s->sparse, p, &peak); break;
        }
    } else {
        struct counts_it it;
        int64_t j;
        uint64_t c;
        counts_init(&it, msg, s->offset);
        while (counts_next(&it, &j, &c) == 1) {
            v = bump(d->bins, d->width, (size_t)(j - d->offset), c);
            peak = v > peak ? v : peak;
            added += c;
        }
    }
    store_raise_peak(d, peak);
    return added;
}

static void add_counts(vt_sketch *dst, vt_sketch_store *d, struct pb msg,
                       const struct counts_sum *s, int32_t zfold, int collapsed)
{
    if (s->lo > s->hi)
        return;
    int64_t top = d->total && d->hi > s->hi ? d->hi : s->hi;
    int64_t floor = top - (int64_t)dst->max_bins + 1;
    if (s->lo > zfold && s->lo >= floor) {
        assert(s->lo >= d->offset && s->hi < (int64_t)d->offset + d->cap);
        uint64_t added = add_direct(d, msg, s);
        if (d->total == 0 || s->lo < d->lo)
            d->lo = (int32_t)s->lo;
        if (d->total == 0 || s->hi > d->hi)
            d->hi = (int32_t)s->hi;
        d->total += added;
        d->collapsed |= (uint8_t)collapsed;
        return;
    }
    struct adder a = {dst, d, zfold, floor, INT64_MAX, INT64_MIN, 0, 0};
    int64_t j;
    uint64_t c = 0;
    if (s->sparse.p) { /* validated: pairs of varints, positions in range */
        struct pb r = s->sparse;
        uint64_t skip = 0;
        for (j = s->offset; r.p < r.end; j++) {
            if (r.end - r.p >= 8) { /* four one-byte pairs at once, as sum_sparse */
                uint64_t w = pb_le64(r.p);
                if (!(w & HIGH_BITS)) {
                    for (int k = 0; k < 4; k++, w >>= 16) {
                        j += (int64_t)(w & 0xff);
                        add_one(&a, j++, (w >> 8) & 0xff);
                    }
                    r.p += 8;
                    j--; /* the loop's own step */
                    continue;
                }
            }
            pb_varint(&r, &skip);
            pb_varint(&r, &c);
            j += (int64_t)skip;
            add_one(&a, j, c);
        }
    } else {
        struct counts_it it;
        counts_init(&it, msg, s->offset);
        while (counts_next(&it, &j, &c) == 1)
            add_one(&a, j, c);
    }
    int64_t lo = a.lo, hi = a.hi;
    uint64_t added = a.added;
    store_raise_peak(d, a.peak);
    if (!added)
        return; /* all in the zero bucket: nothing of this store was collapsed here */
    d->collapsed |= (uint8_t)collapsed;
    if (d->total == 0 || lo < d->lo)
        d->lo = (int32_t)lo;
    if (d->total == 0 || hi > d->hi)
        d->hi = (int32_t)hi;
    d->total += added;
}

/* dst += w, w validated (check_msg) and at dst's scale and zero threshold,
 * ps/ns the ranges of its stores (counts_span or counts_summary) and
 * pcol/ncol their collapsed flags. All or nothing: both stores are reserved
 * before anything is added. */
static int merge_summed(vt_sketch *dst, const struct wire_sketch *w, const struct counts_sum *ps,
                        const struct counts_sum *ns, int pcol, int ncol)
{
    if (w->count == 0)
        return 0;
    if (dst->count > UINT64_MAX - w->count)
        return -EOVERFLOW;
    /* the exact zero-fold index (exp2l) only when a bucket can reach it */
    int32_t zfold = vt__sketch_zero_fold_bound(dst->scale, dst->zero_threshold);
    if ((ps->lo <= ps->hi && ps->lo <= zfold) || (ns->lo <= ns->hi && ns->lo <= zfold))
        zfold = vt__sketch_zero_fold_index(dst->scale, dst->zero_threshold);
    int rc = reserve_counts(dst, &dst->pos, ps, w->count, zfold);
    if (!rc)
        rc = reserve_counts(dst, &dst->neg, ns, w->count, zfold);
    if (rc)
        return rc;
    /* merge_totals adds the message's zero_count; add_counts adds what folds
     * (called only for a store with counts: it is not inlined, and its
     * prologue cost 43 instructions per merge for the empty negative store) */
    if (ps->lo <= ps->hi)
        add_counts(dst, &dst->pos, w->pos, ps, zfold, pcol);
    if (ns->lo <= ns->hi)
        add_counts(dst, &dst->neg, w->neg, ns, zfold, ncol);
    vt__sketch_merge_totals(dst, w->zero_count, w->count, w->sum, w->min, w->max);
    return 0;
}

/* merge_summed of a message checked earlier: its ranges (counts_span:
 * cheaper than a summary) and collapsed flags found again. */
static int merge_checked(vt_sketch *dst, const struct wire_sketch *w)
{
    if (w->count == 0)
        return 0;
    struct counts_sum ps, ns;
    int pcol, ncol;
    counts_span(w->pos, &ps); /* validated: cannot fail */
    counts_span(w->neg, &ns);
    collapsed_of(w->collapsed_count, ps.low, ns.low, &pcol, &ncol);
    return merge_summed(dst, w, &ps, &ns, pcol, ncol);
}


int vt_sketch_unpack(vt_sketch *s, const uint8_t *buf, size_t len, uint32_t max_bins)
{
    struct wire_sketch w;
    int pcol, ncol;
    vt_sketch_init_default(s);
    if (max_bins > VT_SKETCH_MAX_BINS_LIMIT)
        return -EINVAL;
    struct counts_sum ps, ns;
    if (wire_parse(&w, buf, len) || check_msg(&w, &ps, &ns, &pcol, &ncol))
        return -EBADMSG;
    int rc = vt_sketch_init(s, w.scale, max_bins, w.zero_threshold); /* allocates nothing */
    if (!rc)
        rc = merge_summed(s, &w, &ps, &ns, pcol, ncol);
    if (rc) {
        vt_sketch_free(s);
        vt_sketch_init_default(s);
    }
    return rc;
}

int vt_sketch_merge_wire(vt_sketch *dst, const uint8_t *buf, size_t len)
{
    struct wire_sketch w;
    struct counts_sum ps, ns;
    int pcol, ncol;
    if (wire_parse(&w, buf, len))
        return -EBADMSG;
    /* The common case - same scale, same zero threshold - merges straight
     * from the message. Anything else goes through a temporary sketch. */
    if (w.scale == dst->scale && w.zero_threshold == dst->zero_threshold) {
        int rc = check_msg(&w, &ps, &ns, &pcol, &ncol);
        return rc ? rc : merge_summed(dst, &w, &ps, &ns, pcol, ncol);
    }
    vt_sketch tmp;
    int rc = vt_sketch_unpack(&tmp, buf, len, dst->max_bins);
    if (!rc)
        rc = vt_sketch_merge(dst, &tmp);
    vt_sketch_free(&tmp);
    return rc;
}

int vt_sketch_merge_wire_checked(vt_sketch *dst, const uint8_t *buf, size_t len)
{
    struct wire_sketch w;
    if (wire_parse(&w, buf, len) || w.scale != dst->scale ||
        w.zero_threshold != dst->zero_threshold)
        return vt_sketch_merge_wire(dst, buf, len);
    return merge_checked(dst, &w);
}

/* ---- kept: what a check learned, for the merge that follows ---------------- */

static void keep_store(struct vt__kept_store *k, struct pb msg, const struct counts_sum *s)
{
    k->sparse = s->sparse.p != NULL;
    k->p = k->sparse ? s->sparse.p : msg.p;
    k->end = k->sparse ? s->sparse.end : msg.end;
    k->lo = s->lo <= s->hi ? (int32_t)s->lo : 1;
    k->hi = s->lo <= s->hi ? (int32_t)s->hi : 0;
    k->offset = (int32_t)s->offset;
    k->top = s->top;
}

/* The summary merge_summed reads (lo, hi, top, offset, sparse) and the
 * Buckets message add_counts walks when dense. */
static struct pb kept_sum(const struct vt__kept_store *k, struct counts_sum *s)
{
    *s = (struct counts_sum){.top = k->top, .offset = k->offset};
    s->lo = k->lo <= k->hi ? k->lo : INT64_MAX;
    s->hi = k->lo <= k->hi ? k->hi : INT64_MIN;
    if (k->sparse) {
        s->sparse = (struct pb){k->p, k->end};
        return (struct pb){NULL, NULL};
    }
    return (struct pb){k->p, k->end};
}

int vt_sketch_check_wire_kept(const uint8_t *buf, size_t len, struct vt_sketch_kept *k)
{
    struct wire_sketch w;
    struct counts_sum ps, ns;
    int pcol, ncol;
    if (wire_parse(&w, buf, len) || check_msg(&w, &ps, &ns, &pcol, &ncol))
        return -EBADMSG;
    k->buf = buf;
    k->len = len;
    k->count = w.count;
    k->zero_count_ = w.zero_count;
    k->sum_ = w.sum;
    k->min_ = w.min;
    k->max_ = w.max;
    k->zero_threshold_ = w.zero_threshold;
    k->scale_ = w.scale;
    k->pcol_ = (uint8_t)pcol;
    k->ncol_ = (uint8_t)ncol;
    keep_store(&k->pos_, w.pos, &ps);
    keep_store(&k->neg_, w.neg, &ns);
    k->lo = k->pos_.lo;
    k->hi = k->pos_.hi;
    return 0;
}

int vt_sketch_check_wire(const uint8_t *buf, size_t len, uint64_t *count)
{
    struct vt_sketch_kept k;
    int rc = vt_sketch_check_wire_kept(buf, len, &k);
    if (!rc && count)
        *count = k.count;
    return rc;
}

int vt_sketch_merge_kept(vt_sketch *dst, const struct vt_sketch_kept *k)
{
    if (k->scale_ != dst->scale || k->zero_threshold_ != dst->zero_threshold)
        return vt_sketch_merge_wire(dst, k->buf, k->len);
    struct wire_sketch w = {.count = k->count, .zero_count = k->zero_count_, .sum = k->sum_,
                            .min = k->min_, .max = k->max_};
    struct counts_sum ps, ns;
    w.pos = kept_sum(&k->pos_, &ps);
    w.neg = kept_sum(&k->neg_, &ns);
    return merge_summed(dst, &w, &ps, &ns, k->pcol_, k->ncol_);
}

/* ---- direct encoding ---------------------------------------------------- */

/* Buckets field `num` for st, in the form store_forms says is smaller (the
 * bytes store_to_proto + protobuf-c make). */
static void store_encode(struct pbw *w, uint32_t num, const vt_sketch_store *st)
{
    if (st->total == 0)
        return;
    size_t a, e;
    store_span(st, &a, &e);
    size_t dense, sparse, nonzero;
    store_forms(st, &dense, &sparse, &nonzero);
    size_t at = pbw_open(w, num);
    pbw_sint32(w, 1, st->lo);
    bool pairs = sparse < dense;
    size_t n = pairs ? sparse : dense;
    pbw_tag(w, pairs ? 3 : 2, PB_LEN);
    pbw_varint(w, n);
    if (pbw_room(w, n))
        return;
    uint8_t *p = w->p + w->len;
    if (pairs) {
        for (size_t k = store_nz_next(st, a, e), next = a; k < e; k = store_nz_next(st, k + 1, e)) {
            p += pbw_put_varint(p, k - next);
            p += pbw_put_varint(p, cnt_get(st->bins, st->width, k));
            next = k + 1;
        }
    } else if (st->width == 1 && st->peak < 0x80) { /* every count is its own varint */
        memcpy(p, (const uint8_t *)st->bins + a, n);
        p += n;
    } else {
        for (size_t k = a; k < e; k++)
            p += pbw_put_varint(p, cnt_get(st->bins, st->width, k));
    }
    w->len = (size_t)(p - w->p);
    pbw_close(w, at);
}

void vt_sketch_encode(const vt_sketch *s, struct pbw *w)
{
    pbw_sint32(w, 1, s->scale);
    pbw_uint(w, 2, s->count);
    pbw_double(w, 3, s->sum);
    pbw_double(w, 4, s->count ? s->min : 0);
    pbw_double(w, 5, s->count ? s->max : 0);
    pbw_uint(w, 6, s->zero_count);
    store_encode(w, 7, &s->pos);
    store_encode(w, 8, &s->neg);
    pbw_double(w, 9, s->zero_threshold);
    pbw_uint(w, 10, vt_sketch_collapsed_count(s));
}
