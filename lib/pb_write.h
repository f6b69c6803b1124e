/*
 * pb_write.h - appending protobuf fields to a growable buffer, for the
 * direct encoders (vt_sketch_encode, vt_aggregate_encode,
 * vt_series_key_encode) that write what protobuf-c packs from a message,
 * byte for byte, without building the message.
 *
 * Why it exists: the scorer encodes every live rollup bucket twice in its
 * life (packed when it leaves the hot span, and in every snapshot). Through
 * protobuf-c that is a tree of malloc'd structs per bucket - a store's
 * counts copied into an array, pairs into another - walked once to size it
 * and once to pack it, then freed: ~80 allocations and two thirds of the
 * snapshot's instructions. Writing the fields straight from the sketch
 * stores needs none of that.
 *
 * Conventions (those of protobuf-c for proto3 fields): fields in field-
 * number order, the caller's job; a scalar equal to zero (a double == 0,
 * -0.0 included; an empty string) is not written; packed repeated fields
 * are one length-delimited run. A sub-message is opened with pbw_open and
 * closed with pbw_close, which writes its length in front of it (moving
 * the content when the length takes more than one byte).
 *
 * Errors: the first failed allocation sets w->err = -ENOMEM; every later
 * call does nothing. Check w->err once at the end. The caller owns w->p
 * (free it); a zeroed struct pbw is an empty buffer.
 */
#ifndef VT_PB_WRITE_H
#define VT_PB_WRITE_H

#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

struct pbw {
    uint8_t *p;
    size_t len, cap;
    int err;
};

/* Room for n more bytes: 0, or -1 (w->err set, now or before). */
static inline int pbw_room(struct pbw *w, size_t n)
{
    if (w->err)
        return -1;
    if (w->len + n <= w->cap)
        return 0;
    size_t cap = w->cap ? w->cap * 2 : 256;
    while (cap < w->len + n)
        cap *= 2;
    uint8_t *p = realloc(w->p, cap);
    if (!p) {
        w->err = -ENOMEM;
        return -1;
    }
    w->p = p;
    w->cap = cap;
    return 0;
}

static inline size_t pbw_varint_len(uint64_t v)
{
    size_t n = 1;
    while (v >= 0x80) {
        v >>= 7;
        n++;
    }
    return n;
}

/* v as a varint at p (room checked by the caller); returns the bytes. */
static inline size_t pbw_put_varint(uint8_t *p, uint64_t v)
{
    size_t n = 0;
    while (v >= 0x80) {
        p[n++] = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    p[n++] = (uint8_t)v;
    return n;
}

static inline void pbw_varint(struct pbw *w, uint64_t v)
{
    if (!pbw_room(w, 10))
        w->len += pbw_put_varint(w->p + w->len, v);
}

static inline void pbw_tag(struct pbw *w, uint32_t num, unsigned wire_type)
{
    pbw_varint(w, (uint64_t)num << 3 | wire_type);
}

/* uint32/uint64/int64 (a negative int64 takes ten bytes) and bool fields. */
static inline void pbw_uint(struct pbw *w, uint32_t num, uint64_t v)
{
    if (v) {
        pbw_tag(w, num, 0);
        pbw_varint(w, v);
    }
}

static inline void pbw_sint32(struct pbw *w, uint32_t num, int32_t v)
{
    pbw_uint(w, num, (uint32_t)((uint32_t)v << 1) ^ (uint32_t)(v >> 31));
}

static inline void pbw_double(struct pbw *w, uint32_t num, double v)
{
    if (v == 0)
        return;
    uint64_t u;
    memcpy(&u, &v, 8);
    pbw_tag(w, num, 1);
    if (pbw_room(w, 8))
        return;
    for (int i = 0; i < 8; i++)
        w->p[w->len++] = (uint8_t)(u >> (8 * i));
}

static inline void pbw_bytes(struct pbw *w, uint32_t num, const void *s, size_t n)
{
    if (!n)
        return;
    pbw_tag(w, num, 2);
    pbw_varint(w, n);
    if (!pbw_room(w, n)) {
        memcpy(w->p + w->len, s, n);
        w->len += n;
    }
}

static inline void pbw_string(struct pbw *w, uint32_t num, const char *s)
{
    pbw_bytes(w, num, s, strlen(s));
}

/* Start sub-message (or packed run) `num`; returns where its content
 * starts, for pbw_close. One byte is set aside for the length. */
static inline size_t pbw_open(struct pbw *w, uint32_t num)
{
    pbw_tag(w, num, 2);
    if (pbw_room(w, 1))
        return 0;
    w->p[w->len++] = 0;
    return w->len;
}

static inline void pbw_close(struct pbw *w, size_t start)
{
    if (w->err)
        return;
    size_t n = w->len - start, ll = pbw_varint_len(n);
    if (ll > 1) {
        if (pbw_room(w, ll - 1))
            return;
        memmove(w->p + start + ll - 1, w->p + start, n);
        w->len += ll - 1;
    }
    pbw_put_varint(w->p + start - 1, n);
}

#endif
