/*
 * segment_log.h - an append-only, crash-safe log of compressed frames on disk.
 *
 * Why it exists: the agent must make every record durable before it ships
 * aggregates (its spool), and the scorer must make every batch durable before
 * it acks (its WAL). Both need the same thing: append opaque payloads, read
 * them back in order after a crash, remember how far a consumer got, delete
 * what is consumed, stay within a disk budget, and never refuse to start
 * because a file is torn or corrupt. This module is that, and nothing else:
 * it knows nothing about records, NDJSON or protobuf.
 *
 * Model
 *   A log is a directory of segment files "<first_seq as 16 hex digits>.seg",
 *   so names sort in log order. A segment is a sequence of frames. A frame
 *   carries one caller payload (opaque bytes, zstd-compressed on disk) that
 *   holds `records` records; records are numbered by a 64-bit sequence
 *   number: a frame covers [first_seq, first_seq + records). Sequence numbers
 *   only grow, across segments and restarts (gaps are possible after
 *   corruption or drops, reuse is not, except for the records of a torn tail
 *   that never became durable). The newest segment is "active" (appended
 *   to); older ones are "sealed" and never change again.
 *
 * On-disk frame (all integers little-endian), VT_SEGLOG_HEADER_SIZE = 44:
 *   off size field
 *     0  4   magic        VT_SEGLOG_MAGIC ("VTFR")
 *     4  1   version      VT_SEGLOG_VERSION (1)
 *     5  1   codec        0 = stored raw, 1 = zstd
 *     6  2   reserved     0
 *     8  4   stored_len   payload bytes that follow the header
 *    12  4   raw_len      payload bytes after decompression
 *    16  4   records      >= 1
 *    20  4   payload_crc  CRC32C (Castagnoli) of the stored payload bytes
 *    24  8   first_seq
 *    32  8   arrival_ms   caller's arrival time, epoch milliseconds
 *    40  4   header_crc   CRC32C of bytes 0..39
 *   CRC32C is the standard one ("123456789" -> 0xE3069283), computed with
 *   isa-l's crc32_iscsi(buf, len, 0xFFFFFFFF) ^ 0xFFFFFFFF. The header CRC
 *   makes length fields trustworthy and lets recovery resynchronise: after a
 *   bad frame, the next offset holding the magic, a good header CRC and a good
 *   payload CRC starts the next frame. No length is ever trusted beyond
 *   max_frame_bytes (default 64 MiB) or the end of the file.
 *
 * Recovery (vt_seglog_open)
 *   Every segment is scanned. Bytes after the last good frame of a segment
 *   (a torn write) are cut off with ftruncate and counted in truncated_bytes
 *   - except zeros that end the file on a 4 KiB boundary, fewer than 4096:
 *   the padding of O_DIRECT writes (opts.direct), cut but not counted.
 *   A bad region followed by a good frame (CRC mismatch, bad length, junk) is
 *   skipped and counted as one corrupt frame; every later frame is still
 *   read. Files whose names do not match are ignored; an unreadable segment is
 *   logged and skipped. None of this fails open. Appending resumes at the end
 *   of the last segment (in a new segment if the last one had a corrupt
 *   region) with next_seq = end of the newest good frame.
 *
 * Threads
 *   A log is not thread-safe: append, sync, sync_due, trim, checkpoint_*
 *   and close must be called by one thread at a time (e.g. a libuv worker
 *   thread, one job at a time). Readers are the exception: each reader is used by one
 *   thread at a time, but any number of readers may run on other threads
 *   concurrently with the appender (a mutex guards the segment table; frame
 *   bytes are read with pread up to the last fully written frame only, so a
 *   reader never sees a half-written frame). vt_seglog_stats_get and
 *   vt_seglog_next_seq may also be called from any thread. Close every
 *   reader before the log. The log starts no threads and no timers.
 *
 * Errors: functions return 0 (or a documented count) on success and a
 * negative errno value on failure (-EINVAL bad argument, -EIO, -ENOSPC, ...).
 */
#ifndef VT_SEGMENT_LOG_H
#define VT_SEGMENT_LOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define VT_SEGLOG_MAGIC 0x52465456u /* "VTFR" as little-endian bytes */
#define VT_SEGLOG_VERSION 1
#define VT_SEGLOG_HEADER_SIZE 44
#define VT_SEGLOG_CODEC_RAW 0
#define VT_SEGLOG_CODEC_ZSTD 1
/* Sequence numbers stay below 2^62: a frame whose range reaches it (or a
 * segment name at or above it) is corrupt, so a damaged header can never
 * exhaust the sequence space; append returns -EOVERFLOW there. */
#define VT_SEGLOG_SEQ_LIMIT (UINT64_C(1) << 62)

#define VT_SEGLOG_DEFAULT_SEGMENT_BYTES (16u << 20)
#define VT_SEGLOG_DEFAULT_MAX_FRAME_BYTES (64u << 20)
#define VT_SEGLOG_DEFAULT_LEVEL 1
#define VT_SEGLOG_DEFAULT_INTERVAL_MS 1000
/* Suggested payload size for the agent's NDJSON blocks: see docs/segment-log.md. */
#define VT_SEGLOG_SUGGESTED_FRAME_BYTES (512u << 10)

typedef enum vt_seglog_fsync {
    VT_SEGLOG_FSYNC_NONE = 0, /* never fsync; the OS writes back when it likes */
    VT_SEGLOG_FSYNC_INTERVAL, /* at most every fsync_interval_ms: see vt_seglog_sync_due */
    VT_SEGLOG_FSYNC_ALWAYS    /* fsync after every append, before it returns */
} vt_seglog_fsync;

/* "none" | "interval" | "always" -> enum value, or -EINVAL. */
int vt_seglog_fsync_parse(const char *name);
const char *vt_seglog_fsync_name(vt_seglog_fsync policy);

/*
 * Called from inside vt_seglog_append when the max_bytes bound drops the
 * oldest segment: records [from_seq, to_seq) are gone, `records` of them were
 * real records (the rest were gaps). Must not call back into the log.
 */
typedef void (*vt_seglog_drop_cb)(void *ud, uint64_t from_seq, uint64_t to_seq,
                                  uint64_t records);

/* Zero means "default" for every numeric field. */
typedef struct vt_seglog_opts {
    const char *dir;            /* required; created (one level, 0750) if missing */
    uint64_t segment_bytes;     /* rotate when a segment would pass this (16 MiB) */
    uint64_t max_bytes;         /* bound on all segments; 0 = unbounded. Segments
                                   are clamped to max_bytes / 4 so the bound can
                                   hold at least a few of them. */
    uint32_t max_frame_bytes;   /* bound on raw and stored payload size (64 MiB) */
    int compression_level;      /* zstd level (VT_SEGLOG_DEFAULT_LEVEL); negative =
                                   zstd's fast levels */
    bool uncompressed;          /* store vt_seglog_append payloads as they are
                                   (codec 0): for a log whose CPU matters more
                                   than its disk, or whose payloads arrive
                                   compressed (vt_seglog_append_zstd) */
    bool grouped;               /* group commit: appends are staged in memory and
                                   reach the file in one write at the next
                                   vt_seglog_flush or vt_seglog_sync (sooner past
                                   4 MiB, or when a segment rotates); the fsync
                                   policy applies at vt_seglog_sync only. If that
                                   write fails, every frame staged since the last
                                   flush is cut off and forgotten (the appends
                                   returned 0: the flush or sync reports the
                                   loss). Readers see staged frames once written. */
    bool drop_cache;            /* after each fsync, drop what it made durable from
                                   the page cache: for a log written far more than
                                   it is read (a WAL read back only at startup),
                                   whose pages would otherwise crowd the cache and
                                   cost fresh memory to every write */
    bool direct;                /* grouped logs: write with O_DIRECT, past the page
                                   cache (for the same kind of log, at about half
                                   the CPU per write). Each group rewrites the
                                   segment's last partial block and ends with zeros
                                   to a 4 KiB boundary; sealing or closing cuts them
                                   off, and recovery takes such zeros (fewer than
                                   4096, ending on a boundary) for padding, not a
                                   torn tail. Where the file system refuses
                                   O_DIRECT, writes go through the page cache. */
    uint32_t recycle;           /* keep up to this many trimmed segment files
                                   ("<end_seq>.spare": its frames all lie below)
                                   and reuse them for new segments,
                                   overwritten in place: no block allocation, and
                                   an fsync that writes no file size (a third less
                                   CPU and wait per synced group, measured with
                                   O_DIRECT on ext4). A reused file is longer than
                                   its frames until sealed, which cuts it; after a
                                   crash, recovery cuts the earlier use's frames
                                   (older sequence numbers) like padding, neither
                                   counted nor warned about. Disk: up to recycle x
                                   segment_bytes more. 0 (default): trimmed files
                                   are deleted, as are spares found at open that
                                   are too many or whose frames reach the log's
                                   next_seq. Only for logs whose readers never
                                   read a segment while it is trimmed (a WAL read
                                   back at startup): a reader's open file could be
                                   reused under it. */
    vt_seglog_fsync fsync;      /* default NONE */
    uint32_t fsync_interval_ms; /* for INTERVAL (1000) */
    vt_seglog_drop_cb on_drop;  /* optional */
    void *on_drop_ud;
} vt_seglog_opts;

/* What vt_seglog_open found on disk. */
typedef struct vt_seglog_recovery {
    uint64_t segments;        /* segment files kept */
    uint64_t frames;          /* good frames */
    uint64_t records;         /* records in good frames */
    uint64_t corrupt_frames;  /* bad regions skipped in the middle of a segment */
    uint64_t truncated_bytes; /* torn tails cut off */
    uint64_t ignored_files;   /* names that are not ours, unreadable segments */
    uint64_t first_seq;       /* oldest sequence number present */
    uint64_t next_seq;        /* the next append's first_seq */
} vt_seglog_recovery;

typedef struct vt_seglog_stats {
    uint64_t bytes;           /* on disk, all segments */
    uint64_t segments;
    uint64_t frames;          /* good frames present */
    uint64_t records;         /* records in good frames present */
    uint64_t first_seq;       /* oldest sequence number present (== next_seq if empty) */
    uint64_t next_seq;
    uint64_t dropped_records; /* lost to max_bytes since open, exact */
    uint64_t dropped_segments;
    uint64_t trimmed_segments;/* deleted by vt_seglog_trim since open */
    uint64_t corrupt_frames;  /* found at open (see vt_seglog_recovery) */
    uint64_t truncated_bytes; /* cut at open */
    uint64_t appends;         /* frames appended since open */
    uint64_t raw_bytes;       /* payload bytes appended since open, uncompressed */
    uint64_t stored_bytes;    /* frame bytes written since open (headers included) */
    uint64_t syncs;           /* fsync/fdatasync calls made since open */
    uint64_t spares;          /* trimmed files kept for reuse (opts.recycle) */
    uint64_t reused_segments; /* segments started in a spare since open */
} vt_seglog_stats;

typedef struct vt_seglog vt_seglog;
typedef struct vt_seglog_reader vt_seglog_reader;

/*
 * Open (or create) the log in opts->dir and recover it (see top). Takes an
 * exclusive flock on "<dir>/LOCK": a second open of the same directory, in
 * this or another process, fails with -EBUSY. `report` may be NULL.
 * On success *out is a new log owned by the caller (vt_seglog_close).
 */
int vt_seglog_open(vt_seglog **out, const vt_seglog_opts *opts, vt_seglog_recovery *report);

/* Close files, free everything. Syncs first unless the policy is NONE. NULL is a no-op. */
void vt_seglog_close(vt_seglog *log);

/*
 * Append one frame holding `records` (>= 1) records. The payload is copied
 * (compressed) before return; the caller keeps ownership. len may be 0 and
 * at most max_frame_bytes (-EMSGSIZE otherwise). Rotates when the active
 * segment would pass segment_bytes; drops oldest segments first if the
 * frame would push the log past max_bytes (on_drop is called, the counters
 * grow). With FSYNC_ALWAYS the frame is on stable storage when this
 * returns 0. *first_seq (may be NULL) receives the frame's first sequence
 * number. On an I/O error the log stays consistent: the partial frame is cut
 * off again, nothing is counted, and the call can be retried.
 */
int vt_seglog_append(vt_seglog *log, const void *payload, size_t len, uint32_t records,
                     int64_t arrival_ms, uint64_t *first_seq);

/*
 * Append a payload that is already zstd-compressed - one or more complete
 * zstd frames that decompress to exactly raw_len bytes, with zlen < raw_len
 * - stored as it is (codec 1): a message that arrived compressed is made
 * durable without compressing it again. The caller vouches for the data
 * (typically it has just decompressed it); readers decompress as for any
 * frame. Otherwise as vt_seglog_append (records, bounds, fsync, errors);
 * -EINVAL if zlen >= raw_len.
 */
int vt_seglog_append_zstd(vt_seglog *log, const void *zstd, size_t zlen, size_t raw_len,
                          uint32_t records, int64_t arrival_ms, uint64_t *first_seq);

/* fsync the active segment now (and the directory if segments were
 * created); in a grouped log, write the staged frames first. 0, or the error
 * of that write or fsync, or of a staged group lost since the last
 * flush/sync (then the appends staged since the last success are gone). */
int vt_seglog_sync(vt_seglog *log);

/* A grouped log: write the staged frames now, without fsync. Errors as
 * vt_seglog_sync. (0 at once for a log that is not grouped.) */
int vt_seglog_flush(vt_seglog *log);

/*
 * With FSYNC_INTERVAL: 1 if there are unsynced appends and the last sync is
 * at least fsync_interval_ms older than now_ms, else 0. now_ms is
 * CLOCK_MONOTONIC in milliseconds (uv_now() and uv_hrtime()/1e6 qualify), or
 * -1 to let the log read that clock. Under NONE and ALWAYS it returns 0.
 * vt_seglog_append checks this itself after each write and syncs inline when
 * due, so a steady stream is synced at least every interval; a caller's timer
 * (e.g. a uv_timer queueing vt_seglog_sync on the thread that appends) covers
 * the last appends before traffic stops.
 */
int vt_seglog_sync_due(const vt_seglog *log, int64_t now_ms);

/*
 * Delete sealed segments in which every record is below upto_seq (they are
 * consumed). The active segment is never deleted. Returns how many segments
 * were deleted, or a negative errno.
 */
int vt_seglog_trim(vt_seglog *log, uint64_t upto_seq);

/*
 * Consumer checkpoints: a named 64-bit position (by convention the next
 * sequence number to consume: everything below it is done). name is
 * [A-Za-z0-9_-]{1,64}. Saved atomically and durably as "<dir>/<name>.ckpt"
 * (write temp, fsync, rename, fsync dir). load returns 0 and sets *seq,
 * -ENOENT if never saved, -EBADMSG if the file is damaged.
 */
int vt_seglog_checkpoint_save(vt_seglog *log, const char *name, uint64_t seq);
int vt_seglog_checkpoint_load(vt_seglog *log, const char *name, uint64_t *seq);

/* Both may be called from any thread (e.g. an admin /metrics handler on the
 * loop while a worker appends). */
void vt_seglog_stats_get(vt_seglog *log, vt_seglog_stats *stats);
uint64_t vt_seglog_next_seq(vt_seglog *log);

/* One frame as a reader returns it. */
typedef struct vt_seglog_frame {
    uint64_t first_seq;  /* the frame covers [first_seq, first_seq + records) */
    uint32_t records;
    int64_t arrival_ms;
    const uint8_t *data; /* decompressed payload; owned by the reader, valid
                            until its next vt_seglog_reader_next or close */
    size_t len;
    uint64_t skipped;    /* sequence numbers jumped over just before this frame
                            (dropped by max_bytes, trimmed, corrupt): the
                            caller's expected position was first_seq - skipped,
                            or the frame straddles from_seq (then 0) */
} vt_seglog_frame;

/*
 * A reader yields frames in sequence order starting with the frame that
 * contains from_seq (or the first frame after it). A frame that straddles
 * from_seq is returned whole: the caller skips its first
 * (from_seq - first_seq) records. *out is owned by the caller
 * (vt_seglog_reader_close). Allocates its buffers here and grows them only
 * when a frame is larger than any before.
 */
int vt_seglog_reader_open(vt_seglog *log, uint64_t from_seq, vt_seglog_reader **out);

/*
 * 1: *frame is filled. 0: caught up with the appender (call again later).
 * Negative errno on I/O or memory errors. Frames that turn out corrupt are
 * skipped (they show up in the next frame's `skipped`).
 */
int vt_seglog_reader_next(vt_seglog_reader *r, vt_seglog_frame *frame);

/* The sequence number the reader will deliver next (end of the last frame). */
uint64_t vt_seglog_reader_position(const vt_seglog_reader *r);

void vt_seglog_reader_close(vt_seglog_reader *r);

/*
 * Pure decoder over a memory buffer holding a segment's bytes, exposed for
 * recovery tools and fuzzing. Calls cb (may be NULL) for every good frame
 * (header fields decoded, CRCs checked, payload NOT decompressed; `stored`
 * points into buf) in order; a nonzero return from cb stops the scan.
 * Frames whose first_seq is below min_seq or below the end of the previous
 * good frame are skipped as stale: part of a corrupt region if a good frame
 * follows, else of the tail (stale_tail). Never reads outside buf.
 */
typedef struct vt_seglog_frame_info {
    uint64_t offset;      /* of the header in buf */
    uint32_t codec;
    uint32_t stored_len;
    uint32_t raw_len;
    uint32_t records;
    uint64_t first_seq;
    int64_t arrival_ms;
} vt_seglog_frame_info;

typedef struct vt_seglog_scan_result {
    uint64_t frames, records;
    uint64_t corrupt_frames;
    uint64_t good_end;  /* offset just past the last good frame (0 if none):
                           bytes from here on are a torn tail */
    uint64_t end_seq;   /* end of the last good frame, or min_seq if none */
    uint64_t stale_tail; /* intact frames after good_end with older sequence
                            numbers: what a reused file held before (recycle) */
} vt_seglog_scan_result;

typedef int (*vt_seglog_scan_cb)(void *ud, const vt_seglog_frame_info *f,
                                 const uint8_t *stored);
void vt_seglog_scan(const uint8_t *buf, size_t len, uint32_t max_frame_bytes,
                    uint64_t min_seq, vt_seglog_scan_cb cb, void *ud,
                    vt_seglog_scan_result *res);

/*
 * Decode one payload found by vt_seglog_scan into out (capacity cap). Returns
 * the raw length, -EMSGSIZE if cap < raw_len, -EBADMSG if it does not
 * decompress to exactly raw_len bytes. dctx may be NULL (one is created and
 * freed: slow; readers keep theirs).
 */
long vt_seglog_decode_payload(const vt_seglog_frame_info *f, const uint8_t *stored,
                              void *out, size_t cap, void *zstd_dctx);

#endif
