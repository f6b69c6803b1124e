/*
 * segment_log_read.c - readers of the segment log: frames in order from any
 * sequence number, concurrently with the appender (contract in
 * segment_log.h, "Threads"). A reader copies what it needs of the segment
 * table under log->mu and reads file bytes with pread, never past a
 * segment's `bytes`, so it never sees a torn or staged frame.
 */
#include "segment_log_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "segment_frame.h"

struct vt_seglog_reader {
    vt_seglog *log;
    uint64_t pos;       /* next sequence number wanted */
    int fd;             /* current segment, or -1 */
    int have_cur;
    uint64_t cur_first; /* first_seq of the current (or last visited) segment */
    uint64_t off;       /* offset of the next frame in the current segment */
    uint64_t seg_end;   /* end seq of the last good frame in the current segment */
    uint64_t gone_size; /* size of the current segment if it left the table */
    uint8_t *win;       /* bytes [win_off, win_off + win_len) of the segment */
    uint64_t win_off;
    size_t win_len, win_cap;
    uint8_t *out;
    size_t out_cap;
    ZSTD_DCtx *dctx;
};

/* ---- readers ---------------------------------------------------------- */

int vt_seglog_reader_open(vt_seglog *log, uint64_t from_seq, vt_seglog_reader **out)
{
    if (!log || !out)
        return -EINVAL;
    vt_seglog_reader *r = calloc(1, sizeof *r);
    if (!r)
        return -ENOMEM;
    r->log = log;
    r->pos = from_seq;
    r->fd = -1;
    r->win_cap = READ_WINDOW;
    r->win = malloc(r->win_cap);
    r->dctx = ZSTD_createDCtx();
    if (!r->win || !r->dctx) {
        vt_seglog_reader_close(r);
        return -ENOMEM;
    }
    *out = r;
    return 0;
}

void vt_seglog_reader_close(vt_seglog_reader *r)
{
    if (!r)
        return;
    if (r->fd >= 0)
        close(r->fd);
    ZSTD_freeDCtx(r->dctx);
    free(r->win);
    free(r->out);
    free(r);
}

uint64_t vt_seglog_reader_position(const vt_seglog_reader *r)
{
    return r->pos;
}

/*
 * Make bytes [off, off + n) of the current segment available in r->win,
 * reading ahead up to `limit`. Returns a pointer to them, or NULL with *err
 * set (0 means the file is shorter than expected).
 */
static const uint8_t *reader_bytes(vt_seglog_reader *r, uint64_t off, size_t n, uint64_t limit,
                                   int *err)
{
    *err = 0;
    if (off >= r->win_off && off + n <= r->win_off + r->win_len)
        return r->win + (off - r->win_off);
    assert(off + n <= limit);
    size_t want = n > READ_WINDOW ? n : READ_WINDOW;
    if (want > limit - off)
        want = (size_t)(limit - off);
    if (want > r->win_cap) {
        uint8_t *w = realloc(r->win, want);
        if (!w) {
            *err = -ENOMEM;
            return NULL;
        }
        r->win = w;
        r->win_cap = want;
    }
    size_t got = 0;
    while (got < want) {
        ssize_t k = pread(r->fd, r->win + got, want - got, (off_t)(off + got));
        if (k < 0) {
            if (errno == EINTR)
                continue;
            *err = -errno;
            r->win_len = 0;
            return NULL;
        }
        if (k == 0)
            break;
        got += (size_t)k;
    }
    r->win_off = off;
    r->win_len = got;
    return got >= n ? r->win : NULL;
}

static void reader_leave_segment(vt_seglog_reader *r)
{
    if (r->fd >= 0)
        close(r->fd);
    r->fd = -1;
    r->win_len = 0;
}

int vt_seglog_reader_next(vt_seglog_reader *r, vt_seglog_frame *frame)
{
    static const uint8_t magic[4] = {'V', 'T', 'F', 'R'};
    vt_seglog *log;
    int err;

    if (!r || !frame)
        return -EINVAL;
    log = r->log;
    for (;;) {
        uint64_t limit, low;
        int is_last;
        pthread_mutex_lock(&log->mu);
        if (r->fd < 0) {
            /* Pick the segment to read: the one holding pos, or the next one. */
            size_t i = 0;
            if (r->have_cur) {
                while (i < log->nsegs && log->segs[i].first_seq <= r->cur_first)
                    i++;
            } else {
                while (i + 1 < log->nsegs && log->segs[i + 1].first_seq <= r->pos)
                    i++;
            }
            if (i >= log->nsegs) {
                pthread_mutex_unlock(&log->mu);
                return 0;
            }
            uint64_t first = log->segs[i].first_seq;
            pthread_mutex_unlock(&log->mu);
            char name[SEG_NAME_LEN + 1];
            vt__seglog_seg_name(name, first);
            r->have_cur = 1;
            r->cur_first = first;
            r->off = 0;
            r->seg_end = 0;
            r->win_len = 0;
            r->gone_size = 0;
            r->fd = openat(log->dirfd, name, O_RDONLY | O_CLOEXEC);
            if (r->fd < 0 && errno != ENOENT)
                return -errno; /* ENOENT: dropped meanwhile, go on to the next */
            continue;
        }
        long idx = vt__seglog_segs_find(log, r->cur_first);
        if (idx >= 0) {
            limit = log->segs[idx].bytes;
            is_last = (size_t)idx == log->nsegs - 1;
        } else {
            is_last = 0;
            limit = UINT64_MAX;
        }
        low = log->nsegs ? log->segs[0].first_seq : log->next_seq;
        pthread_mutex_unlock(&log->mu);
        if (limit == UINT64_MAX) {
            /* Dropped or trimmed while we read it: it is sealed, so its size is final. */
            if (!r->gone_size) {
                struct stat sb;
                r->gone_size = fstat(r->fd, &sb) == 0 ? (uint64_t)sb.st_size : 0;
            }
            limit = r->gone_size;
        }

        if (r->off + VT_SEGLOG_HEADER_SIZE > limit) {
            if (is_last)
                return 0;
            reader_leave_segment(r);
            continue;
        }
        const uint8_t *p = reader_bytes(r, r->off, VT_SEGLOG_HEADER_SIZE, limit, &err);
        if (!p) {
            if (err)
                return err;
            reader_leave_segment(r); /* file shorter than the table says */
            continue;
        }
        vt_seglog_frame_info f;
        uint64_t size = 0;
        int ok = vt__seglog_header_check(p, log->max_frame, &f);
        if (ok) {
            size = VT_SEGLOG_HEADER_SIZE + (uint64_t)f.stored_len;
            ok = r->off + size <= limit;
        }
        if (ok) {
            p = reader_bytes(r, r->off, (size_t)size, limit, &err);
            if (!p) {
                if (err)
                    return err;
                reader_leave_segment(r);
                continue;
            }
            ok = vt__seglog_payload_check(p, p + VT_SEGLOG_HEADER_SIZE, &f);
        }
        if (!ok) {
            /* The same rules as vt_seglog_scan, so a reader sees exactly the
             * frames recovery counted as good: resynchronise at the next magic. */
            uint64_t at = r->off + 1;
            r->off = limit;
            while (at + VT_SEGLOG_HEADER_SIZE <= limit) {
                size_t n = limit - at < READ_WINDOW ? (size_t)(limit - at) : READ_WINDOW;
                const uint8_t *q = reader_bytes(r, at, n, limit, &err);
                if (!q) {
                    if (err)
                        return err;
                    break;
                }
                const uint8_t *m = memmem(q, n, magic, sizeof magic);
                if (m) {
                    r->off = at + (uint64_t)(m - q);
                    break;
                }
                at += n - 3; /* a magic may straddle two windows */
            }
            continue;
        }
        const uint8_t *stored = p + VT_SEGLOG_HEADER_SIZE;
        uint64_t end = f.first_seq + f.records;
        r->off += size;
        if (f.first_seq < r->seg_end)
            continue; /* stale: sequence going backwards within the segment */
        r->seg_end = end;
        if (end <= r->pos || f.first_seq < low)
            continue; /* before from_seq, or dropped while we read it */
        if (f.raw_len > r->out_cap || !r->out) {
            size_t cap = f.raw_len ? f.raw_len : 1;
            uint8_t *o = realloc(r->out, cap);
            if (!o)
                return -ENOMEM;
            r->out = o;
            r->out_cap = cap;
        }
        long n = vt_seglog_decode_payload(&f, stored, r->out, r->out_cap, r->dctx);
        if (n < 0)
            continue;
        frame->first_seq = f.first_seq;
        frame->records = f.records;
        frame->arrival_ms = f.arrival_ms;
        frame->data = r->out;
        frame->len = (size_t)n;
        frame->skipped = f.first_seq > r->pos ? f.first_seq - r->pos : 0;
        r->pos = end;
        return 1;
    }
}
