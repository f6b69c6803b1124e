/*
 * segment_frame.h - private to lib/segment_*.c: the frame format's byte
 * order, checksum and checks, shared by the log (segment_log.c: appends,
 * recovery, readers) and the frame codec (segment_frame.c: scanning and
 * decoding). Programs use segment_log.h.
 */
#ifndef VT_SEGMENT_FRAME_H
#define VT_SEGMENT_FRAME_H

#include <assert.h>
#include <limits.h>
#include <stddef.h>
#include <stdint.h>

#include <isa-l/crc.h>

#include "segment_log.h"

static inline uint32_t crc32c(const void *p, size_t n)
{
    assert(n <= INT_MAX);
    return crc32_iscsi((unsigned char *)(uintptr_t)p, (int)n, 0xFFFFFFFFu) ^ 0xFFFFFFFFu;
}

static inline void put32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static inline void put64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static inline uint32_t get32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static inline uint64_t get64(const uint8_t *p)
{
    return (uint64_t)get32(p) | (uint64_t)get32(p + 4) << 32;
}

/* Decode and check the header at p (at least VT_SEGLOG_HEADER_SIZE bytes).
 * 1 if it is a well-formed header within bounds, else 0. Says nothing yet
 * about the payload. */
int vt__seglog_header_check(const uint8_t *p, uint32_t max_frame, vt_seglog_frame_info *f);

/* 1 if the payload `stored` matches the CRC of header p. */
int vt__seglog_payload_check(const uint8_t *p, const uint8_t *stored,
                             const vt_seglog_frame_info *f);

#endif
