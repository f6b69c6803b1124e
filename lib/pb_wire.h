/*
 * pb_wire.h - a bounded reader of the protobuf wire format, for the
 * decoders that walk messages in place instead of unpacking them.
 *
 * Why it exists: protobuf-c's unpack allocates every sub-message, string and
 * repeated field and so costs more than the work done with them on the hot
 * paths (OTLP spans in the agent, Push batches in the scorer). A schema-aware
 * walker reads fields where they lie, descends only where it needs to, and
 * allocates nothing. These are the few primitives such walkers share.
 *
 * Contract: every read is bounded by `end`; a length is never trusted beyond
 * the bytes that remain; malformed input (truncated varint, a length past the
 * end, field number 0, wire types 3/4 - groups, unused here - or 6/7) makes
 * pb_next return -1 and never reads out of bounds. Values are returned raw:
 * callers apply zigzag (pb_zigzag32/64) and double/float reinterpretation
 * (pb_double) per the field's declared type, and check the wire type.
 * Header-only (static inline); no allocation, no state beyond the cursor.
 */
#ifndef VT_PB_WIRE_H
#define VT_PB_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

enum { PB_VARINT = 0, PB_FIXED64 = 1, PB_LEN = 2, PB_FIXED32 = 5 };

/* A cursor over the bytes of one message (or one packed run). */
struct pb {
    const uint8_t *p, *end;
};

/* One field as read by pb_next. */
struct pbf {
    uint32_t num;       /* field number, >= 1 */
    uint32_t wt;        /* wire type (PB_*) */
    uint64_t u;         /* PB_VARINT, PB_FIXED64, PB_FIXED32 value */
    const uint8_t *ptr; /* PB_LEN: the bytes, inside the message */
    size_t len;
};

static inline struct pb pb_make(const uint8_t *buf, size_t len)
{
    return (struct pb){buf, buf + len};
}

/* 0 and *out, or -1 (truncated, more than 10 bytes, or a 10th byte above 1:
 * a value beyond 64 bits). */
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
        if (shift == 63 && c > 1)
            return -1; /* bits beyond 64: malformed, not silently dropped */
        v |= (uint64_t)(c & 0x7f) << shift;
        if (!(c & 0x80)) {
            *out = v;
            return 0;
        }
    }
    return -1;
}

static inline uint64_t pb_le64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
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
    case PB_VARINT:
        return pb_varint(b, &f->u) ? -1 : 1;
    case PB_FIXED64:
        if (b->end - b->p < 8)
            return -1;
        f->u = pb_le64(b->p);
        b->p += 8;
        return 1;
    case PB_LEN: {
        uint64_t n;
        if (pb_varint(b, &n) || n > (uint64_t)(b->end - b->p))
            return -1;
        f->ptr = b->p;
        f->len = (size_t)n;
        b->p += n;
        return 1;
    }
    case PB_FIXED32:
        if (b->end - b->p < 4)
            return -1;
        f->u = (uint64_t)b->p[0] | (uint64_t)b->p[1] << 8 | (uint64_t)b->p[2] << 16 |
               (uint64_t)b->p[3] << 24;
        b->p += 4;
        return 1;
    default:
        return -1; /* groups (3, 4) are not used by our schemas; 6, 7 do not exist */
    }
}

/* The bytes of a length-delimited field, as a cursor. */
static inline struct pb pb_of(const struct pbf *f)
{
    return (struct pb){f->ptr, f->ptr + f->len};
}

/* Every field of a message parses (no descent). */
static inline bool pb_valid(struct pb b)
{
    struct pbf f;
    int r;
    while ((r = pb_next(&b, &f)) == 1)
        ;
    return r == 0;
}

static inline int32_t pb_zigzag32(uint64_t u)
{
    uint32_t v = (uint32_t)u;
    return (int32_t)((v >> 1) ^ (~(v & 1) + 1));
}

static inline double pb_double(uint64_t u)
{
    double d;
    memcpy(&d, &u, sizeof d);
    return d;
}

#endif
