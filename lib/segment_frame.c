/*
 * segment_frame.c - the segment log's frame codec: checking a frame where it
 * lies, scanning a buffer for the good frames in it (what recovery, readers
 * and the fuzzer share), and decoding a payload. The format is in
 * segment_log.h; segment_log.c writes frames and manages the files.
 */
#include "segment_frame.h"

#include <errno.h>
#include <string.h>

#include <zstd.h>

/* ---- frame codec ------------------------------------------------------ */

int vt__seglog_header_check(const uint8_t *p, uint32_t max_frame, vt_seglog_frame_info *f)
{
    if (get32(p) != VT_SEGLOG_MAGIC || p[4] != VT_SEGLOG_VERSION || p[5] > VT_SEGLOG_CODEC_ZSTD
        || p[6] != 0 || p[7] != 0)
        return 0;
    if (get32(p + 40) != crc32c(p, 40))
        return 0;
    f->codec = p[5];
    f->stored_len = get32(p + 8);
    f->raw_len = get32(p + 12);
    f->records = get32(p + 16);
    f->first_seq = get64(p + 24);
    f->arrival_ms = (int64_t)get64(p + 32);
    if (f->raw_len > max_frame || f->records == 0 || f->first_seq >= VT_SEGLOG_SEQ_LIMIT
        || f->records >= VT_SEGLOG_SEQ_LIMIT - f->first_seq)
        return 0;
    /* zstd is kept only when it is smaller than the payload */
    if (f->codec == VT_SEGLOG_CODEC_RAW ? f->stored_len != f->raw_len
                                        : f->stored_len >= f->raw_len)
        return 0;
    return 1;
}

int vt__seglog_payload_check(const uint8_t *p, const uint8_t *stored, const vt_seglog_frame_info *f)
{
    return get32(p + 20) == crc32c(stored, f->stored_len);
}

void vt_seglog_scan(const uint8_t *buf, size_t len, uint32_t max_frame_bytes, uint64_t min_seq,
                    vt_seglog_scan_cb cb, void *ud, vt_seglog_scan_result *res)
{
    static const uint8_t magic[4] = {'V', 'T', 'F', 'R'};
    uint32_t max_frame = max_frame_bytes ? max_frame_bytes : VT_SEGLOG_DEFAULT_MAX_FRAME_BYTES;
    size_t off = 0;
    int bad = 0; /* a bad region is pending: it counts once a good frame follows */

    memset(res, 0, sizeof *res);
    res->end_seq = min_seq;
    while (len >= VT_SEGLOG_HEADER_SIZE && off <= len - VT_SEGLOG_HEADER_SIZE) {
        vt_seglog_frame_info f;
        const uint8_t *p = buf + off;
        size_t room = len - off - VT_SEGLOG_HEADER_SIZE;
        if (vt__seglog_header_check(p, max_frame, &f) && f.stored_len <= room
            && vt__seglog_payload_check(p, p + VT_SEGLOG_HEADER_SIZE, &f)) {
            const uint8_t *stored = p + VT_SEGLOG_HEADER_SIZE;
            size_t size = VT_SEGLOG_HEADER_SIZE + (size_t)f.stored_len;
            if (f.first_seq >= res->end_seq) {
                if (bad)
                    res->corrupt_frames++;
                bad = 0;
                res->stale_tail = 0;
                f.offset = off;
                res->frames++;
                res->records += f.records;
                res->end_seq = f.first_seq + f.records;
                off += size;
                res->good_end = off;
                if (cb && cb(ud, &f, stored))
                    return;
                continue;
            }
            /* Intact but stale (sequence going backwards): skip it whole, as
             * part of the bad region it is in - counted once, if a good frame
             * follows. A reused file's earlier frames are such a region that
             * nothing follows (stale_tail). */
            bad = 1;
            res->stale_tail++;
            off += size;
            continue;
        }
        /* Not an intact frame: resynchronise at the next magic. A bad payload
         * is searched too rather than skipped by its length: the length may
         * reach past the end of the file at open time and over frames
         * appended later, and readers must see what recovery saw. */
        bad = 1;
        const uint8_t *next = memmem(p + 1, len - off - 1, magic, sizeof magic);
        if (!next)
            break;
        off = (size_t)(next - buf);
    }
}

long vt_seglog_decode_payload(const vt_seglog_frame_info *f, const uint8_t *stored, void *out,
                              size_t cap, void *zstd_dctx)
{
    if (f->raw_len > cap)
        return -EMSGSIZE;
    if (f->codec == VT_SEGLOG_CODEC_RAW) {
        if (f->stored_len != f->raw_len)
            return -EBADMSG;
        if (f->raw_len)
            memcpy(out, stored, f->raw_len);
        return (long)f->raw_len;
    }
    ZSTD_DCtx *d = zstd_dctx ? zstd_dctx : ZSTD_createDCtx();
    if (!d)
        return -ENOMEM;
    size_t n = ZSTD_decompressDCtx(d, out, f->raw_len, stored, f->stored_len);
    if (!zstd_dctx)
        ZSTD_freeDCtx(d);
    if (ZSTD_isError(n) || n != f->raw_len)
        return -EBADMSG;
    return (long)n;
}
