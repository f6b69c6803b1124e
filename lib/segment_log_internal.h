/*
 * segment_log_internal.h - what the two halves of the segment log share:
 * the log's state and segment table (segment_log.c: open, append, sync,
 * trim) and the readers' view of them (segment_log_read.c). Not a public
 * header: lib/segment_log.h is the contract.
 */
#ifndef VT_SEGMENT_LOG_INTERNAL_H
#define VT_SEGMENT_LOG_INTERNAL_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include <zstd.h>

#include "segment_log.h"

#define SEG_NAME_LEN 20 /* 16 hex digits + ".seg" */
#define READ_WINDOW (256u << 10)
#define DIO_ALIGN 4096u /* O_DIRECT offsets, lengths and buffers: a page, whatever the device */

struct seg {
    uint64_t first_seq; /* from the file name; every frame's first_seq >= it */
    uint64_t end_seq;   /* end of the last good frame, first_seq if none */
    uint64_t bytes;     /* file length = end of the last fully written frame */
    uint64_t frames;
    uint64_t records;
};

struct vt_seglog {
    int dirfd;
    int lockfd;
    uint64_t segment_bytes;
    uint64_t max_bytes;
    uint32_t max_frame;
    int level;
    bool uncompressed; /* payloads stored as given (see vt_seglog_opts) */
    vt_seglog_fsync fsync;
    uint32_t interval_ms;
    vt_seglog_drop_cb on_drop;
    void *on_drop_ud;

    pthread_mutex_t mu; /* guards segs, nsegs, next_seq (readers look at them) */
    struct seg *segs;
    size_t nsegs, segcap;
    uint64_t next_seq;

    int active_fd; /* open on segs[nsegs - 1] for appending, or -1 */
    int dirty;     /* appended since the last fsync of active_fd */
    int dir_dirty; /* segment files created or deleted since the last dir fsync */
    int64_t last_sync_ms;

    ZSTD_CCtx *cctx;
    uint8_t *wbuf; /* [lead, tail): frames staged (grouped logs); then the frame being built */
    size_t wcap;
    bool grouped;
    bool drop_cache;
    uint64_t cached_from; /* drop_cache: active segment bytes still in the page cache */
    bool direct;          /* O_DIRECT writes: wbuf is DIO_ALIGN-aligned and starts with */
    size_t lead;          /* the active segment's last partial block, wbuf[0, lead) */
    bool padded;          /* the active file has zeros past its last frame */
    bool no_dsync;        /* RWF_DSYNC refused: direct groups are synced with fdatasync */
    uint32_t recycle;     /* spares kept at most (opts.recycle) */
    uint64_t *spares;     /* the names (first_seq) of the n_spares spare files */
    uint32_t n_spares;
    bool reused;          /* the active file is a spare: longer than its frames until cut */
    size_t tail;
    struct {             /* grouped: the frames in wbuf[0, tail), not in segs[] yet */
        uint64_t bytes, frames, records, raw, stored;
    } staged;
    int group_err; /* staged appends were lost where no caller could hear it: the next
                      flush/sync says so */

    vt_seglog_stats st; /* the cumulative counters; the rest is computed */
};

/* The file name of the segment starting at first_seq. */
void vt__seglog_seg_name(char buf[SEG_NAME_LEN + 1], uint64_t first_seq);

/* Index of the segment whose first_seq is first_seq, or -1. Caller holds mu. */
long vt__seglog_segs_find(const vt_seglog *log, uint64_t first_seq);

#endif
