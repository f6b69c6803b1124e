/*
 * segment_log.c - the segment log: append-only zstd frames in segment files,
 * with crash recovery, checkpoints, trimming and a disk budget (the readers
 * are in segment_log_read.c).
 *
 * The contract (format, recovery rules, threads) is in segment_log.h. Notes
 * on how it is kept:
 *  - The segment table (segs[]) is the single source of truth for what is on
 *    disk: first_seq (the file name), end_seq, bytes up to the end of the last
 *    fully written frame, frames and records. The appender changes it under
 *    log->mu; readers copy what they need under log->mu and then read file
 *    bytes with pread, never past `bytes`, so they never see a torn frame.
 *  - A frame is written with one pwrite at the segment's known end (a
 *    grouped log: a group of staged frames, with one pwrite); on a failed or
 *    short write the file is cut back, so the invariant "a segment file is
 *    exactly its good frames (plus corrupt regions found at open)" survives
 *    I/O errors.
 *  - Recovery and readers share one frame decoder (segment_frame.c), which
 *    trusts no length before the header CRC has been checked and bounded.
 */
#include "segment_log.h"

#include <assert.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include <zstd.h>

#include "log.h"
#include "segment_frame.h"
#include "segment_log_internal.h"

#define CKPT_MAGIC 0x4b435456u /* "VTCK" */
#define CKPT_SIZE 20
#define MAX_FRAME_LIMIT (1u << 30) /* crc32_iscsi takes an int length */
#define GROUP_MAX_BYTES (4u << 20) /* a grouped log writes its staged frames at this size */

/* ---- little helpers --------------------------------------------------- */

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void vt__seglog_seg_name(char buf[SEG_NAME_LEN + 1], uint64_t first_seq)
{
    snprintf(buf, SEG_NAME_LEN + 1, "%016" PRIx64 ".seg", first_seq);
}

/* A spare's name: the end_seq of the segment it was, "<16 hex digits>.spare":
 * every frame in it lies below that sequence number, so it may become a
 * segment starting there or later (its frames then read as stale). */
#define SPARE_NAME_LEN 22
static void spare_name(char buf[SPARE_NAME_LEN + 1], uint64_t seq)
{
    snprintf(buf, SPARE_NAME_LEN + 1, "%016" PRIx64 ".spare", seq);
}

/* 1 and *seq if name is exactly 16 lower-case hex digits + suffix. */
static int parse_name(const char *name, const char *suffix, uint64_t *seq)
{
    uint64_t v = 0;
    if (strlen(name) != 16 + strlen(suffix) || strcmp(name + 16, suffix) != 0)
        return 0;
    for (int i = 0; i < 16; i++) {
        char c = name[i];
        int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
        if (d < 0)
            return 0;
        v = v << 4 | (uint64_t)d;
    }
    *seq = v;
    return 1;
}

static int seg_parse_name(const char *name, uint64_t *seq)
{
    return parse_name(name, ".seg", seq);
}

/* ---- options ---------------------------------------------------------- */

int vt_seglog_fsync_parse(const char *name)
{
    if (!name)
        return -EINVAL;
    if (strcmp(name, "none") == 0)
        return VT_SEGLOG_FSYNC_NONE;
    if (strcmp(name, "interval") == 0)
        return VT_SEGLOG_FSYNC_INTERVAL;
    if (strcmp(name, "always") == 0)
        return VT_SEGLOG_FSYNC_ALWAYS;
    return -EINVAL;
}

const char *vt_seglog_fsync_name(vt_seglog_fsync policy)
{
    switch (policy) {
    case VT_SEGLOG_FSYNC_NONE: return "none";
    case VT_SEGLOG_FSYNC_INTERVAL: return "interval";
    case VT_SEGLOG_FSYNC_ALWAYS: return "always";
    }
    return "?";
}

/* ---- segment table ---------------------------------------------------- */

static int segs_push(vt_seglog *log, const struct seg *s)
{
    pthread_mutex_lock(&log->mu); /* readers may be looking at segs */
    if (log->nsegs == log->segcap) {
        size_t cap = log->segcap ? log->segcap * 2 : 16;
        struct seg *n = realloc(log->segs, cap * sizeof *n);
        if (!n) {
            pthread_mutex_unlock(&log->mu);
            return -ENOMEM;
        }
        log->segs = n;
        log->segcap = cap;
    }
    assert(log->nsegs == 0 || log->segs[log->nsegs - 1].first_seq < s->first_seq);
    log->segs[log->nsegs++] = *s;
    pthread_mutex_unlock(&log->mu);
    return 0;
}

long vt__seglog_segs_find(const vt_seglog *log, uint64_t first_seq)
{
    size_t lo = 0, hi = log->nsegs;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (log->segs[mid].first_seq < first_seq)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < log->nsegs && log->segs[lo].first_seq == first_seq ? (long)lo : -1;
}

/* Counters are read by vt_seglog_stats_get from any thread. */
static void count(vt_seglog *log, uint64_t *counter, uint64_t n)
{
    pthread_mutex_lock(&log->mu);
    *counter += n;
    pthread_mutex_unlock(&log->mu);
}

static int write_all(int fd, const uint8_t *p, size_t n, uint64_t off, int flags);
static int wbuf_reserve(vt_seglog *log, size_t need);

static size_t align_up(size_t n)
{
    return (n + DIO_ALIGN - 1) & ~(size_t)(DIO_ALIGN - 1);
}

/* Stop writing with O_DIRECT (the file system refused it): buffered from
 * here on, which reads the same bytes. */
static void direct_off(vt_seglog *log, int err)
{
    vt_warn("seglog: O_DIRECT refused (%s): writing through the page cache", strerror(err));
    if (log->active_fd >= 0) {
        int fl = fcntl(log->active_fd, F_GETFL);
        if (fl >= 0)
            (void)fcntl(log->active_fd, F_SETFL, fl & ~O_DIRECT);
    }
    log->direct = false;
}

/* Write wbuf[0, tail) at the segment's end (`end`, where wbuf[lead] goes).
 * With O_DIRECT the write starts at the last partial block (wbuf[0, lead))
 * and ends on a block boundary, the rest of the last block zeros - over
 * what follows the staged frames (the start of a frame being built), which
 * is saved and put back. `dsync` asks for the write and its fdatasync in
 * one call (RWF_DSYNC: one system call and one wait for the disk instead
 * of two); *synced says whether that happened. */
static int write_group(vt_seglog *log, uint64_t end, bool dsync, bool *synced)
{
    size_t n = log->tail;
    uint64_t at = end;
    *synced = false;
    if (!log->direct)
        return write_all(log->active_fd, log->wbuf, n, at, 0);
    uint8_t save[DIO_ALIGN];
    size_t pad = align_up(n) - n;
    memcpy(save, log->wbuf + n, pad);
    memset(log->wbuf + n, 0, pad);
    at -= log->lead;
    log->padded = true;
    int flags = dsync && !log->no_dsync ? RWF_DSYNC : 0;
    int rc = write_all(log->active_fd, log->wbuf, n + pad, at, flags);
    if (rc == -EOPNOTSUPP && flags) { /* not for this file: write, and fdatasync after */
        vt_warn("seglog: RWF_DSYNC refused: syncing with fdatasync");
        log->no_dsync = true;
        rc = write_all(log->active_fd, log->wbuf, n + pad, at, flags = 0);
    }
    if (rc == -EINVAL) { /* no O_DIRECT here after all: the same bytes, buffered */
        direct_off(log, EINVAL);
        rc = write_all(log->active_fd, log->wbuf, n + pad, at, flags = 0);
    }
    memcpy(log->wbuf + n, save, pad);
    *synced = rc == 0 && flags;
    return rc;
}

/* Write the staged frames (grouped logs) in one go, then count them in the
 * segment table: readers never see a staged frame before it is in the
 * file. On failure they are cut off the file and forgotten (nothing of
 * them was counted). `dsync`: see write_group; the file is left dirty
 * unless that write made it durable. 0 or the write's error. */
static int write_staged(vt_seglog *log, bool dsync)
{
    if (log->tail == log->lead)
        return 0;
    struct seg *a = &log->segs[log->nsegs - 1];
    bool synced;
    int rc = write_group(log, a->bytes, dsync && !log->dirty, &synced);
    if (rc == 0 && log->direct) { /* the new last partial block leads the next group */
        size_t lead = log->tail % DIO_ALIGN;
        memmove(log->wbuf, log->wbuf + log->tail - lead, lead);
        log->lead = lead;
    } else if (!log->direct) {
        log->lead = 0; /* buffered (again): nothing leads */
    }
    log->tail = log->lead;
    if (rc < 0) {
        if (ftruncate(log->active_fd, (off_t)a->bytes) != 0)
            vt_error("seglog: cannot cut a failed write: %s", strerror(errno));
    } else {
        pthread_mutex_lock(&log->mu);
        a->bytes += log->staged.bytes;
        a->frames += log->staged.frames;
        a->records += log->staged.records;
        log->next_seq += log->staged.records;
        a->end_seq = log->next_seq;
        log->st.appends += log->staged.frames;
        log->st.raw_bytes += log->staged.raw;
        log->st.stored_bytes += log->staged.stored;
        pthread_mutex_unlock(&log->mu);
        if (synced)
            count(log, &log->st.syncs, 1);
        else
            log->dirty = 1;
    }
    memset(&log->staged, 0, sizeof log->staged);
    return rc;
}

/* The staged frames written; 0, or this write's error, or the loss of
 * staged appends since the last call. */
static int flush_tail(vt_seglog *log)
{
    int pending = log->group_err, rc = write_staged(log, false);
    log->group_err = 0;
    return rc ? rc : pending;
}

static int sync_active(vt_seglog *log)
{
    int pending = log->group_err, rc = write_staged(log, true);
    log->group_err = 0;
    if (rc)
        return rc;
    if (log->active_fd >= 0 && log->dirty) {
        if (fdatasync(log->active_fd) != 0)
            return -errno;
        count(log, &log->st.syncs, 1);
        log->dirty = 0;
        if (log->drop_cache && !log->direct) { /* durable now: the cache has no use for it */
            uint64_t end = log->segs[log->nsegs - 1].bytes;
            (void)posix_fadvise(log->active_fd, (off_t)log->cached_from,
                                (off_t)(end - log->cached_from), POSIX_FADV_DONTNEED);
            log->cached_from = end & ~(uint64_t)4095; /* the partial page stays */
        }
    }
    if (log->dir_dirty) {
        if (fsync(log->dirfd) != 0)
            return -errno;
        count(log, &log->st.syncs, 1);
        log->dir_dirty = 0;
    }
    log->last_sync_ms = mono_ms();
    return pending;
}

/* The active file cut back to its last frame: O_DIRECT wrote whole blocks,
 * and a reused file holds its earlier frames past them. */
static void cut_padding(vt_seglog *log)
{
    if (!(log->padded || log->reused) || log->active_fd < 0)
        return;
    if (ftruncate(log->active_fd, (off_t)log->segs[log->nsegs - 1].bytes) != 0)
        vt_warn("seglog: cannot cut the active segment to its frames: %s (recovery will)",
                strerror(errno));
    log->padded = log->reused = false;
}

/* Start writing the active segment with O_DIRECT: the flag set on its fd,
 * and its last partial block read into wbuf[0, lead) (the next write
 * rewrites that block). Buffered from here on if the file system refuses:
 * 0 either way; an error only if the block cannot be read. */
static int direct_start(vt_seglog *log)
{
    log->lead = log->tail = 0;
    if (!log->direct)
        return 0;
    uint64_t end = log->segs[log->nsegs - 1].bytes;
    size_t lead = end % DIO_ALIGN;
    if (wbuf_reserve(log, DIO_ALIGN))
        return -ENOMEM;
    /* (read before O_DIRECT is set: such a read would want whole blocks) */
    ssize_t r = lead ? pread(log->active_fd, log->wbuf, lead, (off_t)(end - lead)) : 0;
    if (r != (ssize_t)lead)
        return r < 0 ? -errno : -EIO;
    int fl = fcntl(log->active_fd, F_GETFL);
    if (fl < 0 || fcntl(log->active_fd, F_SETFL, fl | O_DIRECT) != 0) {
        direct_off(log, errno);
        return 0;
    }
    log->lead = log->tail = lead;
    return 0;
}

/* Stop appending to the active segment: it becomes sealed. */
static int seal_active(vt_seglog *log)
{
    if (log->active_fd < 0)
        return 0;
    /* A grouped log's appends are durable once vt_seglog_sync says so, and
     * that sync will not see this file again: sync it now. */
    int rc = log->fsync != VT_SEGLOG_FSYNC_NONE || log->grouped ? sync_active(log)
                                                                : flush_tail(log);
    if (rc && log->grouped)
        log->group_err = rc; /* appends lost or not durable: the next sync says so */
    cut_padding(log);
    close(log->active_fd);
    log->active_fd = -1;
    log->dirty = 0;
    log->tail = log->lead = 0; /* (all written) the next segment starts on a block boundary */
    return rc;
}

/* Remove segs[0] from the table and the disk. Returns its entry in *gone. */
static void drop_first(vt_seglog *log, struct seg *gone, uint64_t *to_seq)
{
    char name[SEG_NAME_LEN + 1];
    assert(log->nsegs > 0);
    if (log->nsegs == 1 && log->active_fd >= 0)
        seal_active(log);
    pthread_mutex_lock(&log->mu);
    *gone = log->segs[0];
    *to_seq = log->nsegs > 1 ? log->segs[1].first_seq : log->next_seq;
    memmove(log->segs, log->segs + 1, (log->nsegs - 1) * sizeof *log->segs);
    log->nsegs--;
    pthread_mutex_unlock(&log->mu);
    vt__seglog_seg_name(name, gone->first_seq);
    log->dir_dirty = 1;
    if (log->n_spares < log->recycle) { /* kept for a new segment to overwrite */
        char spare[SPARE_NAME_LEN + 1];
        spare_name(spare, gone->end_seq);
        if (renameat2(log->dirfd, name, log->dirfd, spare, RENAME_NOREPLACE) == 0) {
            log->spares[log->n_spares++] = gone->end_seq;
            count(log, &log->st.spares, 1);
            return;
        }
        if (errno == EINVAL || errno == ENOSYS) { /* no such rename here: no recycling */
            vt_warn("seglog: cannot keep segments as spares (%s): deleting them", strerror(errno));
            log->recycle = 0;
        } else if (errno != EEXIST) { /* (EEXIST: an empty segment's spare is there already) */
            vt_warn("seglog: cannot keep segment %s as a spare: %s", name, strerror(errno));
        }
    }
    if (unlinkat(log->dirfd, name, 0) != 0 && errno != ENOENT)
        vt_warn("seglog: cannot delete segment %s: %s", name, strerror(errno));
}

static uint64_t total_bytes(const vt_seglog *log)
{
    uint64_t b = 0;
    for (size_t i = 0; i < log->nsegs; i++)
        b += log->segs[i].bytes;
    return b;
}

/* ---- open / close ----------------------------------------------------- */

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static int is_own_name(const char *name)
{
    size_t n = strlen(name);
    if (strcmp(name, ".") == 0 || strcmp(name, "..") == 0 || strcmp(name, "LOCK") == 0)
        return 1;
    return (n > 5 && strcmp(name + n - 5, ".ckpt") == 0)
        || (n > 9 && strcmp(name + n - 9, ".ckpt.tmp") == 0);
}

static void delete_spare(vt_seglog *log, uint64_t end)
{
    char name[SPARE_NAME_LEN + 1];
    spare_name(name, end);
    if (unlinkat(log->dirfd, name, 0) != 0 && errno != ENOENT)
        vt_warn("seglog: cannot delete spare %s: %s", name, strerror(errno));
    log->dir_dirty = 1;
}

/* A spare file found at open: kept while there is room, else deleted. */
static void adopt_spare(vt_seglog *log, uint64_t end)
{
    if (log->n_spares < log->recycle)
        log->spares[log->n_spares++] = end;
    else
        delete_spare(log, end);
}

/* After recovery: a spare whose frames may reach next_seq (its segments
 * deleted by hand, say) could pass for new frames in a new segment: gone. */
static void prune_spares(vt_seglog *log)
{
    uint32_t n = 0;
    for (uint32_t i = 0; i < log->n_spares; i++)
        if (log->spares[i] <= log->next_seq)
            log->spares[n++] = log->spares[i];
        else
            delete_spare(log, log->spares[i]);
    log->n_spares = n;
    log->st.spares = n; /* (open: no reader yet) */
}

/* List segment sequence numbers, sorted. *out is malloc'd. */
static int list_segments(vt_seglog *log, uint64_t **out, size_t *nout, uint64_t *ignored)
{
    int fd = openat(log->dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    DIR *d = fdopendir(fd);
    if (!d) {
        int e = errno;
        close(fd);
        return -e;
    }
    uint64_t *v = NULL;
    size_t n = 0, cap = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        uint64_t seq;
        if (parse_name(de->d_name, ".spare", &seq)) {
            adopt_spare(log, seq);
            continue;
        }
        if (!seg_parse_name(de->d_name, &seq) || seq >= VT_SEGLOG_SEQ_LIMIT) {
            if (!is_own_name(de->d_name))
                (*ignored)++;
            continue;
        }
        if (n == cap) {
            cap = cap ? cap * 2 : 64;
            uint64_t *nv = realloc(v, cap * sizeof *nv);
            if (!nv) {
                free(v);
                closedir(d);
                return -ENOMEM;
            }
            v = nv;
        }
        v[n++] = seq;
    }
    closedir(d);
    if (n)
        qsort(v, n, sizeof *v, cmp_u64);
    *out = v;
    *nout = n;
    return 0;
}

/*
 * Scan one segment file, cut its torn tail and add it to the table. Returns
 * the open fd (O_RDWR) when keep_fd, else closes it. -1 and ignored_files++
 * if the file cannot be used at all.
 */
static int recover_segment(vt_seglog *log, uint64_t seq, uint64_t min_seq, int keep_fd,
                           vt_seglog_recovery *rep)
{
    char name[SEG_NAME_LEN + 1];
    struct stat sb;
    vt__seglog_seg_name(name, seq);
    int fd = openat(log->dirfd, name, O_RDWR | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0 || fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        vt_warn("seglog: skipping unusable segment %s: %s", name,
                fd < 0 ? strerror(errno) : "not a regular file");
        if (fd >= 0)
            close(fd);
        rep->ignored_files++;
        return -1;
    }
    vt_seglog_scan_result res;
    uint64_t size = (uint64_t)sb.st_size, pad = 0;
    if (size > 0) {
        void *map = mmap(NULL, (size_t)size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (map == MAP_FAILED) {
            vt_warn("seglog: cannot map segment %s: %s", name, strerror(errno));
            close(fd);
            rep->ignored_files++;
            return -1;
        }
        vt_seglog_scan(map, (size_t)size, log->max_frame, min_seq, NULL, NULL, &res);
        /* zeros to a block boundary after the last frame: O_DIRECT's padding
         * of a log that stopped without closing, not a torn write; and a
         * reused file's earlier frames (recycle) are no torn write either */
        pad = size - res.good_end;
        if (!res.stale_tail) {
            if (pad >= DIO_ALIGN || size % DIO_ALIGN)
                pad = 0;
            for (uint64_t i = res.good_end; pad && i < size; i++)
                if (((const uint8_t *)map)[i])
                    pad = 0;
        }
        munmap(map, (size_t)size);
    } else {
        vt_seglog_scan(NULL, 0, log->max_frame, min_seq, NULL, NULL, &res);
    }
    if (res.good_end < size) {
        if (!pad)
            vt_warn("seglog: segment %s: cutting %" PRIu64 " bytes of torn tail at offset %" PRIu64,
                    name, size - res.good_end, res.good_end);
        if (ftruncate(fd, (off_t)res.good_end) != 0) {
            vt_warn("seglog: cannot truncate %s: %s", name, strerror(errno));
            keep_fd = 0; /* never append after bytes we could not cut */
        }
        rep->truncated_bytes += size - res.good_end - pad;
    }
    if (res.corrupt_frames) {
        vt_warn("seglog: segment %s: skipped %" PRIu64 " corrupt frame(s)", name,
                res.corrupt_frames);
        /* Never append after a corrupt region: a bad header in it may claim
         * a length that reaches into bytes appended later, and readers must
         * keep seeing exactly what this scan saw. Appends go to a new file. */
        keep_fd = 0;
    }
    struct seg s = {.first_seq = seq, .end_seq = res.end_seq, .bytes = res.good_end,
                    .frames = res.frames, .records = res.records};
    if (segs_push(log, &s) != 0) {
        close(fd);
        return -2;
    }
    rep->segments++;
    rep->frames += res.frames;
    rep->records += res.records;
    rep->corrupt_frames += res.corrupt_frames;
    if (!keep_fd) {
        close(fd);
        return -1;
    }
    return fd;
}

int vt_seglog_open(vt_seglog **out, const vt_seglog_opts *opts, vt_seglog_recovery *report)
{
    vt_seglog_recovery rep_local;
    vt_seglog_recovery *rep = report ? report : &rep_local;
    int rc;

    memset(rep, 0, sizeof *rep);
    if (!out || !opts || !opts->dir || !*opts->dir)
        return -EINVAL;
    if (opts->fsync > VT_SEGLOG_FSYNC_ALWAYS)
        return -EINVAL;
    if (opts->compression_level > ZSTD_maxCLevel() || opts->compression_level < ZSTD_minCLevel())
        return -EINVAL;
    *out = NULL;

    vt_seglog *log = calloc(1, sizeof *log);
    if (!log)
        return -ENOMEM;
    log->dirfd = log->lockfd = log->active_fd = -1;
    pthread_mutex_init(&log->mu, NULL);
    log->segment_bytes = opts->segment_bytes ? opts->segment_bytes : VT_SEGLOG_DEFAULT_SEGMENT_BYTES;
    log->max_bytes = opts->max_bytes;
    /* Clamp segments to a quarter of the budget: dropping one segment must
     * free a useful share of it, not all of it. */
    if (log->max_bytes && log->segment_bytes > log->max_bytes / 4)
        log->segment_bytes = log->max_bytes / 4 ? log->max_bytes / 4 : 1;
    log->max_frame = opts->max_frame_bytes ? opts->max_frame_bytes : VT_SEGLOG_DEFAULT_MAX_FRAME_BYTES;
    if (log->max_frame > MAX_FRAME_LIMIT)
        log->max_frame = MAX_FRAME_LIMIT; /* crc32_iscsi's int length */
    log->level = opts->compression_level ? opts->compression_level : VT_SEGLOG_DEFAULT_LEVEL;
    log->uncompressed = opts->uncompressed;
    log->grouped = opts->grouped;
    log->drop_cache = opts->drop_cache;
    log->direct = opts->direct && opts->grouped;
    log->recycle = opts->recycle;
    if (log->recycle && !(log->spares = calloc(log->recycle, sizeof *log->spares))) {
        rc = -ENOMEM;
        goto fail;
    }
    log->fsync = opts->fsync;
    log->interval_ms = opts->fsync_interval_ms ? opts->fsync_interval_ms : VT_SEGLOG_DEFAULT_INTERVAL_MS;
    log->on_drop = opts->on_drop;
    log->on_drop_ud = opts->on_drop_ud;
    log->last_sync_ms = mono_ms();

    if (mkdir(opts->dir, 0750) != 0 && errno != EEXIST) {
        rc = -errno;
        vt_error("seglog: cannot create %s: %s", opts->dir, strerror(errno));
        goto fail;
    }
    log->dirfd = open(opts->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (log->dirfd < 0) {
        rc = -errno;
        goto fail;
    }
    log->lockfd = openat(log->dirfd, "LOCK", O_RDWR | O_CREAT | O_CLOEXEC, 0640);
    if (log->lockfd < 0) {
        rc = -errno;
        goto fail;
    }
    if (flock(log->lockfd, LOCK_EX | LOCK_NB) != 0) {
        rc = errno == EWOULDBLOCK ? -EBUSY : -errno;
        goto fail;
    }
    log->cctx = ZSTD_createCCtx();
    if (!log->cctx) {
        rc = -ENOMEM;
        goto fail;
    }
    ZSTD_CCtx_setParameter(log->cctx, ZSTD_c_compressionLevel, log->level);
    ZSTD_CCtx_setParameter(log->cctx, ZSTD_c_checksumFlag, 0); /* we have CRC32C */
    ZSTD_CCtx_setParameter(log->cctx, ZSTD_c_contentSizeFlag, 1);

    uint64_t *seqs = NULL;
    size_t nseq = 0;
    rc = list_segments(log, &seqs, &nseq, &rep->ignored_files);
    if (rc < 0)
        goto fail;
    uint64_t end = 0;
    for (size_t i = 0; i < nseq; i++) {
        uint64_t min_seq = seqs[i] > end ? seqs[i] : end;
        int fd = recover_segment(log, seqs[i], min_seq, i == nseq - 1, rep);
        if (fd == -2) {
            free(seqs);
            rc = -ENOMEM;
            goto fail;
        }
        if (log->nsegs && log->segs[log->nsegs - 1].first_seq == seqs[i])
            end = log->segs[log->nsegs - 1].end_seq;
        if (fd >= 0)
            log->active_fd = fd;
    }
    free(seqs);
    if (log->active_fd >= 0 && (rc = direct_start(log)) != 0) {
        vt_warn("seglog: cannot read the end of the last segment (%s): appending to a new one",
                strerror(-rc));
        close(log->active_fd);
        log->active_fd = -1;
    }
    log->next_seq = end;
    prune_spares(log);
    log->st.corrupt_frames = rep->corrupt_frames;
    log->st.truncated_bytes = rep->truncated_bytes;
    rep->first_seq = log->nsegs ? log->segs[0].first_seq : log->next_seq;
    rep->next_seq = log->next_seq;
    if (rep->truncated_bytes || rep->corrupt_frames)
        vt_warn("seglog: recovered %s: %" PRIu64 " segments, %" PRIu64 " frames, %" PRIu64
                " corrupt frames, %" PRIu64 " torn bytes cut",
                opts->dir, rep->segments, rep->frames, rep->corrupt_frames, rep->truncated_bytes);
    *out = log;
    return 0;

fail:
    vt_seglog_close(log);
    return rc;
}

void vt_seglog_close(vt_seglog *log)
{
    if (!log)
        return;
    int rc = log->fsync != VT_SEGLOG_FSYNC_NONE ? sync_active(log) : flush_tail(log);
    if (rc)
        vt_error("seglog: appends lost at close: %s", strerror(-rc));
    cut_padding(log);
    if (log->active_fd >= 0)
        close(log->active_fd);
    if (log->lockfd >= 0)
        close(log->lockfd); /* releases the flock */
    if (log->dirfd >= 0)
        close(log->dirfd);
    ZSTD_freeCCtx(log->cctx);
    pthread_mutex_destroy(&log->mu);
    free(log->spares);
    free(log->segs);
    free(log->wbuf);
    free(log);
}

/* ---- append ----------------------------------------------------------- */

/* The newest spare renamed to `name` (a segment starting at next_seq, at or
 * above every spare's end) and opened for overwriting, or -1 (no spare, or
 * it could not be used: deleted then). */
static int reuse_spare(vt_seglog *log, const char *name)
{
    while (log->n_spares) {
        char spare[SPARE_NAME_LEN + 1];
        spare_name(spare, log->spares[log->n_spares - 1]);
        int r = renameat2(log->dirfd, spare, log->dirfd, name, RENAME_NOREPLACE);
        if (r != 0 && errno == EEXIST)
            return -1; /* the name is taken: open_new_segment steps past it */
        log->n_spares--;
        count(log, &log->st.spares, (uint64_t)-1);
        int fd = r == 0 ? openat(log->dirfd, name, O_WRONLY | O_CLOEXEC | O_NOFOLLOW) : -1;
        if (fd >= 0)
            return fd;
        vt_warn("seglog: cannot reuse %s: %s", spare, strerror(errno));
        unlinkat(log->dirfd, r == 0 ? name : spare, 0); /* not renamed, or not openable */
    }
    return -1;
}

static int open_new_segment(vt_seglog *log)
{
    char name[SEG_NAME_LEN + 1];
    assert(log->active_fd < 0);
    vt__seglog_seg_name(name, log->next_seq);
    int fd = reuse_spare(log, name);
    bool reused = fd >= 0;
    for (int tries = 0; fd < 0; tries++) {
        vt__seglog_seg_name(name, log->next_seq);
        fd = openat(log->dirfd, name, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0640);
        if (fd >= 0)
            break;
        if (errno != EEXIST || tries == 16 || log->next_seq + 1 >= VT_SEGLOG_SEQ_LIMIT)
            return -errno;
        /* A file we could not use at open holds this name: leave it alone
         * and step past it (a gap in sequence numbers is allowed). */
        vt_warn("seglog: %s exists but is not ours to append to; skipping seq %" PRIu64, name,
                log->next_seq);
        pthread_mutex_lock(&log->mu);
        log->next_seq++;
        pthread_mutex_unlock(&log->mu);
    }
    struct seg s = {.first_seq = log->next_seq, .end_seq = log->next_seq};
    int rc = segs_push(log, &s);
    if (rc < 0) {
        close(fd);
        unlinkat(log->dirfd, name, 0);
        return rc;
    }
    log->active_fd = fd;
    log->reused = reused;
    if (reused)
        count(log, &log->st.reused_segments, 1);
    log->cached_from = 0;
    log->dir_dirty = 1;
    return direct_start(log); /* empty: reads nothing, cannot fail */
}

/* pwrite all of p at off; flags (RWF_DSYNC) go to pwritev2. */
static int write_all(int fd, const uint8_t *p, size_t n, uint64_t off, int flags)
{
    while (n > 0) {
        struct iovec v = {(void *)p, n};
        ssize_t w = flags ? pwritev2(fd, &v, 1, (off_t)off, flags) : pwrite(fd, p, n, (off_t)off);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        if (w == 0)
            return -EIO;
        p += w;
        n -= (size_t)w;
        off += (uint64_t)w;
    }
    return 0;
}

/* Room for `need` bytes in log->wbuf, wbuf[0, tail) kept: whole blocks,
 * block-aligned for O_DIRECT. */
static int wbuf_reserve(vt_seglog *log, size_t need)
{
    if (log->direct)
        need = align_up(need);
    if (need <= log->wcap)
        return 0;
    size_t cap = need > 2 * log->wcap ? need : 2 * log->wcap;
    void *n = NULL;
    if (!log->direct) {
        n = realloc(log->wbuf, cap);
    } else if (posix_memalign(&n, DIO_ALIGN, cap) == 0) {
        if (log->tail)
            memcpy(n, log->wbuf, log->tail);
        free(log->wbuf);
    } else {
        n = NULL;
    }
    if (!n)
        return -ENOMEM;
    log->wbuf = n;
    log->wcap = cap;
    return 0;
}

/* The checks both appends make, then room in log->wbuf for a frame of up to
 * `stored` payload bytes. */
static int frame_prepare(vt_seglog *log, size_t raw_len, uint32_t records, size_t stored)
{
    if (raw_len > log->max_frame)
        return -EMSGSIZE;
    uint64_t next = log->next_seq + log->staged.records;
    if (next >= VT_SEGLOG_SEQ_LIMIT || records >= VT_SEGLOG_SEQ_LIMIT - next)
        return -EOVERFLOW; /* 2^62 records: not in this universe, but never wrap */
    return wbuf_reserve(log, log->tail + VT_SEGLOG_HEADER_SIZE + stored);
}

/* Write (or, in a grouped log, stage) the frame whose payload (stored form,
 * `stored` bytes, `len` raw) is in log->wbuf after the staged frames and
 * the header room. */
static int write_frame(vt_seglog *log, uint8_t codec, size_t stored, size_t len, uint32_t records,
                       int64_t arrival_ms, uint64_t *first_seq)
{
    int rc;
    size_t at = log->tail; /* where frame_prepare left room */
    uint64_t fsize = VT_SEGLOG_HEADER_SIZE + stored;
    if (log->tail + fsize > GROUP_MAX_BYTES && (rc = write_staged(log, false)) < 0) {
        log->group_err = rc; /* the staged appends are lost too: the next sync says so */
        return rc;
    }

    /* The disk budget: drop the oldest segments, consumed or not. */
    if (log->max_bytes) {
        uint64_t total = total_bytes(log) + log->staged.bytes;
        while (total + fsize > log->max_bytes && log->nsegs > 0
               && !(log->nsegs == 1 && log->segs[0].bytes == 0)) {
            struct seg gone;
            uint64_t to;
            drop_first(log, &gone, &to);
            total -= gone.bytes;
            count(log, &log->st.dropped_records, gone.records);
            count(log, &log->st.dropped_segments, 1);
            if (gone.records == 0)
                continue; /* an empty or all-corrupt segment: nothing to report */
            vt_warn("seglog: max_bytes reached: dropped segment %016" PRIx64 " with %" PRIu64
                    " records [%" PRIu64 ", %" PRIu64 ")",
                    gone.first_seq, gone.records, gone.first_seq, to);
            if (log->on_drop)
                log->on_drop(log->on_drop_ud, gone.first_seq, to, gone.records);
        }
    }
    if (log->active_fd >= 0) {
        uint64_t bytes = log->segs[log->nsegs - 1].bytes + log->staged.bytes;
        if (bytes > 0 && bytes + fsize > log->segment_bytes) {
            rc = seal_active(log);
            if (rc < 0)
                vt_warn("seglog: fsync on rotation failed: %s", strerror(-rc));
            struct seg *a = &log->segs[log->nsegs - 1];
            if (a->bytes == 0) { /* its only group was lost: free the name for the next */
                char name[SEG_NAME_LEN + 1];
                vt__seglog_seg_name(name, a->first_seq);
                if (unlinkat(log->dirfd, name, 0) == 0) {
                    pthread_mutex_lock(&log->mu);
                    log->nsegs--;
                    pthread_mutex_unlock(&log->mu);
                }
            }
        }
    }
    if (log->active_fd < 0 && (rc = open_new_segment(log)) < 0) {
        vt_error("seglog: cannot create segment: %s", strerror(-rc));
        return rc;
    }
    if (log->tail != at) /* the staged frames went out meanwhile (flush, rotation) */
        memmove(log->wbuf + log->tail, log->wbuf + at, (size_t)fsize);
    uint8_t *h = log->wbuf + log->tail, *body = h + VT_SEGLOG_HEADER_SIZE;
    /* Only now is first_seq known: creating a segment may step past a name. */
    uint64_t seq = log->next_seq + log->staged.records;
    put32(h, VT_SEGLOG_MAGIC);
    h[4] = VT_SEGLOG_VERSION;
    h[5] = codec;
    h[6] = h[7] = 0;
    put32(h + 8, (uint32_t)stored);
    put32(h + 12, (uint32_t)len);
    put32(h + 16, records);
    put32(h + 20, crc32c(body, stored));
    put64(h + 24, seq);
    put64(h + 32, (uint64_t)arrival_ms);
    put32(h + 40, crc32c(h, 40));
    struct seg *a = &log->segs[log->nsegs - 1];
    assert(seq >= a->first_seq && seq >= a->end_seq); /* sequence numbers only grow */
    if (log->grouped) { /* counted in segs[] once written (write_staged) */
        log->tail += (size_t)fsize;
        log->staged.bytes += fsize;
        log->staged.frames++;
        log->staged.records += records;
        log->staged.raw += len;
        log->staged.stored += fsize;
        if (first_seq)
            *first_seq = seq;
        return 0; /* the fsync policy applies at vt_seglog_sync */
    }
    rc = write_all(log->active_fd, h, (size_t)fsize, a->bytes, 0);
    if (rc < 0) {
        /* Cut a partial frame so the file stays "good frames only". */
        if (ftruncate(log->active_fd, (off_t)a->bytes) != 0)
            vt_error("seglog: cannot cut a failed write: %s", strerror(errno));
        return rc;
    }
    pthread_mutex_lock(&log->mu);
    a->bytes += fsize;
    a->frames++;
    a->records += records;
    a->end_seq = seq + records;
    log->next_seq = seq + records;
    log->st.appends++;
    log->st.raw_bytes += len;
    log->st.stored_bytes += fsize;
    pthread_mutex_unlock(&log->mu);
    log->dirty = 1;
    if (first_seq)
        *first_seq = seq;

    if (log->fsync == VT_SEGLOG_FSYNC_ALWAYS
        || (log->fsync == VT_SEGLOG_FSYNC_INTERVAL && vt_seglog_sync_due(log, -1)))
        return sync_active(log);
    return 0;
}

int vt_seglog_append(vt_seglog *log, const void *payload, size_t len, uint32_t records,
                     int64_t arrival_ms, uint64_t *first_seq)
{
    if (!log || (len && !payload) || records == 0)
        return -EINVAL;
    size_t bound = log->uncompressed ? len : ZSTD_compressBound(len);
    int rc = frame_prepare(log, len, records, bound);
    if (rc)
        return rc;
    uint8_t *body = log->wbuf + log->tail + VT_SEGLOG_HEADER_SIZE;
    uint8_t codec = VT_SEGLOG_CODEC_RAW;
    size_t stored = len;
    if (len > 0 && !log->uncompressed) {
        size_t z = ZSTD_compress2(log->cctx, body, bound, payload, len);
        if (!ZSTD_isError(z) && z < len) {
            codec = VT_SEGLOG_CODEC_ZSTD;
            stored = z;
        }
    }
    if (codec == VT_SEGLOG_CODEC_RAW && len > 0)
        memcpy(body, payload, len); /* uncompressed, or incompressible: as is */
    return write_frame(log, codec, stored, len, records, arrival_ms, first_seq);
}

int vt_seglog_append_zstd(vt_seglog *log, const void *zstd, size_t zlen, size_t raw_len,
                          uint32_t records, int64_t arrival_ms, uint64_t *first_seq)
{
    if (!log || !zstd || zlen == 0 || records == 0)
        return -EINVAL;
    if (zlen >= raw_len) /* the frame format says: compressed frames are smaller */
        return -EINVAL;
    int rc = frame_prepare(log, raw_len, records, zlen);
    if (rc)
        return rc;
    memcpy(log->wbuf + log->tail + VT_SEGLOG_HEADER_SIZE, zstd, zlen);
    return write_frame(log, VT_SEGLOG_CODEC_ZSTD, zlen, raw_len, records, arrival_ms, first_seq);
}

int vt_seglog_sync(vt_seglog *log)
{
    if (!log)
        return -EINVAL;
    return sync_active(log);
}

int vt_seglog_flush(vt_seglog *log)
{
    if (!log)
        return -EINVAL;
    return flush_tail(log);
}

int vt_seglog_sync_due(const vt_seglog *log, int64_t now_ms)
{
    if (!log || log->fsync != VT_SEGLOG_FSYNC_INTERVAL || !(log->dirty || log->dir_dirty))
        return 0;
    if (now_ms < 0)
        now_ms = mono_ms();
    return now_ms - log->last_sync_ms >= (int64_t)log->interval_ms;
}

int vt_seglog_trim(vt_seglog *log, uint64_t upto_seq)
{
    int n = 0;
    if (!log)
        return -EINVAL;
    /* Only a prefix, never the newest segment: the table stays contiguous. */
    while (log->nsegs > 1 && log->segs[0].end_seq <= upto_seq) {
        struct seg gone;
        uint64_t to;
        drop_first(log, &gone, &to);
        count(log, &log->st.trimmed_segments, 1);
        n++;
    }
    return n;
}

/* ---- checkpoints ------------------------------------------------------ */

static int ckpt_name_ok(const char *name)
{
    size_t n = name ? strlen(name) : 0;
    if (n == 0 || n > 64)
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = name[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')
              || c == '_' || c == '-'))
            return 0;
    }
    return 1;
}

int vt_seglog_checkpoint_save(vt_seglog *log, const char *name, uint64_t seq)
{
    char path[96], tmp[96];
    uint8_t b[CKPT_SIZE];
    if (!log || !ckpt_name_ok(name))
        return -EINVAL;
    snprintf(path, sizeof path, "%s.ckpt", name);
    snprintf(tmp, sizeof tmp, "%s.ckpt.tmp", name);
    put32(b, CKPT_MAGIC);
    put32(b + 4, 1);
    put64(b + 8, seq);
    put32(b + 16, crc32c(b, 16));
    int fd = openat(log->dirfd, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
    if (fd < 0)
        return -errno;
    int rc = write_all(fd, b, sizeof b, 0, 0);
    if (rc == 0 && fsync(fd) != 0)
        rc = -errno;
    if (close(fd) != 0 && rc == 0)
        rc = -errno;
    if (rc == 0 && renameat(log->dirfd, tmp, log->dirfd, path) != 0)
        rc = -errno;
    if (rc == 0 && fsync(log->dirfd) != 0)
        rc = -errno;
    if (rc < 0)
        unlinkat(log->dirfd, tmp, 0);
    return rc;
}

int vt_seglog_checkpoint_load(vt_seglog *log, const char *name, uint64_t *seq)
{
    char path[96];
    uint8_t b[CKPT_SIZE + 1];
    if (!log || !seq || !ckpt_name_ok(name))
        return -EINVAL;
    snprintf(path, sizeof path, "%s.ckpt", name);
    int fd = openat(log->dirfd, path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    ssize_t n = pread(fd, b, sizeof b, 0);
    int e = errno;
    close(fd);
    if (n < 0)
        return -e;
    if (n != CKPT_SIZE || get32(b) != CKPT_MAGIC || get32(b + 4) != 1
        || get32(b + 16) != crc32c(b, 16))
        return -EBADMSG;
    *seq = get64(b + 8);
    return 0;
}

/* ---- stats ------------------------------------------------------------ */

void vt_seglog_stats_get(vt_seglog *log, vt_seglog_stats *s)
{
    pthread_mutex_lock(&log->mu);
    *s = log->st;
    s->bytes = s->frames = s->records = 0;
    for (size_t i = 0; i < log->nsegs; i++) {
        s->bytes += log->segs[i].bytes;
        s->frames += log->segs[i].frames;
        s->records += log->segs[i].records;
    }
    s->segments = log->nsegs;
    s->next_seq = log->next_seq;
    s->first_seq = log->nsegs ? log->segs[0].first_seq : log->next_seq;
    pthread_mutex_unlock(&log->mu);
}

uint64_t vt_seglog_next_seq(vt_seglog *log)
{
    pthread_mutex_lock(&log->mu);
    uint64_t n = log->next_seq;
    pthread_mutex_unlock(&log->mu);
    return n;
}
