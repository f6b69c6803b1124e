/*
 * test_segment_log.c - the segment log against real files in a temp dir.
 *
 * Covers: the on-disk CRC32C convention; append/read across rotations and
 * reopen; sequence continuity after restart; checkpoints; trim; the
 * max_bytes bound with exact dropped counts; fsync policies (counted);
 * crash simulation by cutting the last segment at every byte of its last
 * frame and at sampled offsets everywhere; byte flips at many offsets with
 * the exact frame that must be skipped; garbage, empty and all-zero files;
 * a reader thread racing the appender.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <zstd.h>

#include "log.h"
#include "segment_log.h"
#include "seglog_test_util.h"


/* Bitwise reference CRC32C (reflected 0x82F63B78), independent of isa-l. */
static uint32_t ref_crc32c(const uint8_t *p, size_t n)
{
    uint32_t c = 0xFFFFFFFFu;
    for (size_t i = 0; i < n; i++) {
        c ^= p[i];
        for (int b = 0; b < 8; b++)
            c = c & 1 ? (c >> 1) ^ 0x82F63B78u : c >> 1;
    }
    return c ^ 0xFFFFFFFFu;
}

static uint32_t le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* ---- tests -------------------------------------------------------------- */

static void test_crc_convention(void **state)
{
    (void)state;
    assert_int_equal(ref_crc32c((const uint8_t *)"123456789", 9), 0xE3069283u);
    char *dir = mktemp_dir();
    vt_seglog_opts o = opts_for(dir, 0);
    vt_seglog *log;
    assert_int_equal(vt_seglog_open(&log, &o, NULL), 0);
    append_frames(log, 0, 1, NULL);
    vt_seglog_close(log);
    char p[256];
    size_t n;
    seg_path(p, sizeof p, dir, 0);
    uint8_t *b = read_file(p, &n);
    assert_true(n > VT_SEGLOG_HEADER_SIZE);
    assert_int_equal(le32(b), VT_SEGLOG_MAGIC);
    assert_memory_equal(b, "VTFR", 4);
    assert_int_equal(le32(b + 40), ref_crc32c(b, 40));
    assert_int_equal(le32(b + 8), n - VT_SEGLOG_HEADER_SIZE);
    assert_int_equal(le32(b + 20), ref_crc32c(b + VT_SEGLOG_HEADER_SIZE, n - VT_SEGLOG_HEADER_SIZE));
    free(b);
    rmtree(dir);
    free(dir);
}

static void test_roundtrip_rotation_reopen(void **state)
{
    (void)state;
    enum { N = 300 };
    uint64_t seqs[N + 100];
    char *dir = mktemp_dir();
    vt_seglog_opts o = opts_for(dir, 4096);
    vt_seglog *log;
    vt_seglog_recovery rep;
    vt_seglog_stats st;

    assert_int_equal(vt_seglog_open(&log, &o, &rep), 0);
    assert_int_equal(rep.segments, 0);
    assert_int_equal(rep.next_seq, 0);
    expect_frames(log, 0, NULL, 0, NULL); /* empty log: caught up at once */
    append_frames(log, 0, N, seqs);
    uint64_t records = 0;
    for (int k = 0; k < N; k++) {
        assert_int_equal(seqs[k], records); /* contiguous sequence numbers */
        records += frame_records(k);
    }
    vt_seglog_stats_get(log, &st);
    assert_true(st.segments > 5);
    assert_int_equal(st.frames, N);
    assert_int_equal(st.records, records);
    assert_int_equal(st.next_seq, records);
    assert_int_equal(st.appends, N);
    expect_all(log, N, seqs);
    vt_seglog_close(log);

    /* Reopen: everything is there, nothing corrupt, and seq continues. */
    assert_int_equal(vt_seglog_open(&log, &o, &rep), 0);
    assert_int_equal(rep.segments, st.segments);
    assert_int_equal(rep.frames, N);
    assert_int_equal(rep.records, records);
    assert_int_equal(rep.corrupt_frames, 0);
    assert_int_equal(rep.truncated_bytes, 0);
    assert_int_equal(rep.ignored_files, 0);
    assert_int_equal(rep.next_seq, records);
    assert_int_equal(rep.first_seq, 0);
    expect_all(log, N, seqs);
    append_frames(log, N, N + 100, seqs);
    assert_int_equal(seqs[N], records);
    expect_all(log, N + 100, seqs);

    /* A reader from the middle of a frame gets that frame whole first. */
    int want[10];
    for (int i = 0; i < 10; i++)
        want[i] = N + 90 + i;
    expect_frames(log, seqs[N + 90] + (frame_records(N + 90) > 1 ? 1 : 0), want, 10, seqs);
    vt_seglog_close(log);

    /* A second reopen after the appends: still continuous. */
    assert_int_equal(vt_seglog_open(&log, &o, &rep), 0);
    assert_int_equal(rep.frames, N + 100);
    assert_int_equal(vt_seglog_next_seq(log), seqs[N + 99] + frame_records(N + 99));
    vt_seglog_close(log);
    rmtree(dir);
    free(dir);
}

static void test_bad_args_and_lock(void **state)
{
    (void)state;
    char *dir = mktemp_dir();
    vt_seglog_opts o = opts_for(dir, 0);
    o.max_frame_bytes = 1000;
    vt_seglog *log, *log2;
    char big[2000] = {0};
    assert_int_equal(vt_seglog_open(&log, &o, NULL), 0);
    assert_int_equal(vt_seglog_open(&log2, &o, NULL), -EBUSY);
    assert_int_equal(vt_seglog_append(log, "x", 1, 0, 0, NULL), -EINVAL);
    assert_int_equal(vt_seglog_append(log, big, sizeof big, 1, 0, NULL), -EMSGSIZE);
    assert_int_equal(vt_seglog_append(log, NULL, 0, 3, 7, NULL), 0); /* empty payload */
    assert_int_equal(vt_seglog_next_seq(log), 3);
    assert_int_equal(vt_seglog_fsync_parse("interval"), VT_SEGLOG_FSYNC_INTERVAL);
    assert_int_equal(vt_seglog_fsync_parse("sometimes"), -EINVAL);
    assert_string_equal(vt_seglog_fsync_name(VT_SEGLOG_FSYNC_ALWAYS), "always");
    vt_seglog_close(log);
    vt_seglog_opts bad = o;
    bad.dir = NULL;
    assert_int_equal(vt_seglog_open(&log, &bad, NULL), -EINVAL);
    bad = o;
    bad.compression_level = 1000;
    assert_int_equal(vt_seglog_open(&log, &bad, NULL), -EINVAL);
    rmtree(dir);
    free(dir);
}

static void test_incompressible(void **state)
{
    (void)state;
    char *dir = mktemp_dir();
    vt_seglog_opts o = opts_for(dir, 0);
    vt_seglog *log;
    uint8_t buf[5000];
    uint64_t x = 88172645463325252ull;
    for (size_t i = 0; i < sizeof buf; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        buf[i] = (uint8_t)x;
    }
    assert_int_equal(vt_seglog_open(&log, &o, NULL), 0);
    assert_int_equal(vt_seglog_append(log, buf, sizeof buf, 1, 5, NULL), 0);
    vt_seglog_close(log);
    assert_int_equal(vt_seglog_open(&log, &o, NULL), 0);
    vt_seglog_reader *r;
    vt_seglog_frame f;
    assert_int_equal(vt_seglog_reader_open(log, 0, &r), 0);
    assert_int_equal(vt_seglog_reader_next(r, &f), 1);
    assert_int_equal(f.len, sizeof buf);
    assert_memory_equal(f.data, buf, sizeof buf);
    assert_int_equal(vt_seglog_reader_next(r, &f), 0);
    vt_seglog_reader_close(r);
    vt_seglog_close(log);
    rmtree(dir);
    free(dir);
}

/* An uncompressed log stores payloads as given (codec 0), and a payload
 * that arrived zstd-compressed is stored as it is (codec 1) and read back
 * decompressed; compressed bytes that are not smaller are refused. Both
 * kinds survive a reopen, in order. */
static void test_uncompressed_and_zstd_as_given(void **state)
{
    (void)state;
    char *dir = mktemp_dir();
    vt_seglog_opts o = opts_for(dir, 0);
    o.uncompressed = true;
    vt_seglog *log;
    char text[4000];
    for (size_t i = 0; i < sizeof text; i++)
        text[i] = "abcabcabd"[i % 9];
    uint8_t z[4096];
    size_t zn = ZSTD_compress(z, sizeof z, text, sizeof text, 3);
    assert_false(ZSTD_isError(zn));
    assert_true(zn < sizeof text);
    assert_int_equal(vt_seglog_open(&log, &o, NULL), 0);
    assert_int_equal(vt_seglog_append(log, text, sizeof text, 1, 5, NULL), 0);
    uint64_t seq;
    assert_int_equal(vt_seglog_append_zstd(log, z, zn, sizeof text, 2, 6, &seq), 0);
    assert_int_equal(seq, 1);
    assert_int_equal(vt_seglog_append_zstd(log, z, zn, zn, 1, 6, NULL), -EINVAL);
    vt_seglog_stats st;
    vt_seglog_stats_get(log, &st);
    assert_int_equal(st.stored_bytes, 2 * VT_SEGLOG_HEADER_SIZE + sizeof text + zn);
    vt_seglog_close(log);
    assert_int_equal(vt_seglog_open(&log, &o, NULL), 0);
    vt_seglog_reader *r;
    vt_seglog_frame f;
    assert_int_equal(vt_seglog_reader_open(log, 0, &r), 0);
    for (int k = 0; k < 2; k++) {
        assert_int_equal(vt_seglog_reader_next(r, &f), 1);
        assert_int_equal(f.first_seq, k);
        assert_int_equal(f.records, k + 1);
        assert_int_equal(f.len, sizeof text);
        assert_memory_equal(f.data, text, sizeof text);
    }
    assert_int_equal(vt_seglog_reader_next(r, &f), 0);
    vt_seglog_reader_close(r);
    vt_seglog_close(log);
    rmtree(dir);
    free(dir);
}

/* Bytes of every segment file in dir (newest: of the newest one alone). */
/* Group commit: appends stay in memory until flush/sync, then go out in one
 * write (across rotations too); a group whose write fails is cut off and
 * forgotten, counters and sequence numbers included, and the failure is
 * reported by the flush - not by the appends, which had returned 0. */
static void test_grouped(void **state)
{
    (void)state;
    char *dir = mktemp_dir();
    vt_seglog_opts o = opts_for(dir, 16 << 10);
    o.grouped = true;
    o.uncompressed = true;
    vt_seglog *log;
    uint64_t seqs[200];
    assert_int_equal(vt_seglog_open(&log, &o, NULL), 0);
    append_frames(log, 0, 10, seqs);
    assert_int_equal(seg_bytes(dir, false), 0); /* staged */
    assert_int_equal(vt_seglog_flush(log), 0);
    vt_seglog_stats st;
    vt_seglog_stats_get(log, &st);
    assert_int_equal(seg_bytes(dir, false), st.bytes);
    /* a reader between groups sees a frame once it is written, never before */
    vt_seglog_reader *r;
    vt_seglog_frame f;
    assert_int_equal(vt_seglog_reader_open(log, 0, &r), 0);
    for (int k = 0; k < 10; k++)
        assert_int_equal(vt_seglog_reader_next(r, &f), 1);
    append_frames(log, 10, 15, seqs);
    assert_int_equal(vt_seglog_reader_next(r, &f), 0); /* staged: not yet */
    assert_int_equal(vt_seglog_flush(log), 0);
    for (int k = 10; k < 15; k++) {
        assert_int_equal(vt_seglog_reader_next(r, &f), 1);
        assert_int_equal(f.first_seq, seqs[k]);
    }
    vt_seglog_reader_close(r);
    append_frames(log, 15, 120, seqs); /* passes 16 KiB: rotations flush on the way */
    assert_int_equal(vt_seglog_sync(log), 0);
    vt_seglog_stats_get(log, &st);
    assert_true(st.segments > 2);
    assert_int_equal(seg_bytes(dir, false), st.bytes);
    expect_all(log, 120, seqs);
    vt_seglog_close(log);

    /* A failed group write: the file size limit stops it half way. */
    o.segment_bytes = 1 << 20; /* no rotation in this group */
    assert_int_equal(vt_seglog_open(&log, &o, NULL), 0);
    append_frames(log, 120, 121, seqs);
    assert_int_equal(vt_seglog_sync(log), 0);
    vt_seglog_stats_get(log, &st);
    uint64_t frames = st.frames, next = st.next_seq, bytes = seg_bytes(dir, false);
    struct rlimit old, lim;
    getrlimit(RLIMIT_FSIZE, &old);
    lim = old;
    lim.rlim_cur = seg_bytes(dir, true) + 3000;
    signal(SIGXFSZ, SIG_IGN);
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &lim), 0);
    for (int k = 0; k < 20; k++) /* ~10 KiB staged, appends all fine */
        assert_int_equal(vt_seglog_append(log, seqs, 500, 1, 1, NULL), 0);
    assert_int_equal(vt_seglog_sync(log), -EFBIG);
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &old), 0);
    signal(SIGXFSZ, SIG_DFL);
    vt_seglog_stats_get(log, &st);
    assert_int_equal(st.frames, frames); /* nothing of the lost group counted */
    assert_int_equal(st.next_seq, next);
    assert_int_equal(seg_bytes(dir, false), bytes); /* nor left in the file */
    assert_int_equal(vt_seglog_sync(log), 0);        /* reported once */
    append_frames(log, 121, 130, seqs); /* the log goes on, sequence numbers reused */
    assert_int_equal(seqs[121], next);
    assert_int_equal(vt_seglog_flush(log), 0);
    vt_seglog_close(log);
    assert_int_equal(vt_seglog_open(&log, &o, NULL), 0);
    expect_all(log, 130, seqs);
    vt_seglog_close(log);
    rmtree(dir);
    free(dir);

    /* A group lost at a rotation: its empty segment makes way for the next
     * (same name, no sequence number skipped), and the sync says so once. */
    dir = mktemp_dir();
    o = opts_for(dir, 16 << 10);
    o.grouped = true;
    o.uncompressed = true;
    assert_int_equal(vt_seglog_open(&log, &o, NULL), 0);
    lim.rlim_cur = 3000;
    signal(SIGXFSZ, SIG_IGN);
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &lim), 0);
    uint64_t seq = 0;
    for (int k = 0; k < 40; k++) /* ~22 KiB: the rotation writes the first 16 and fails */
        assert_int_equal(vt_seglog_append(log, seqs, 500, 1, 1, &seq), 0);
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &old), 0);
    signal(SIGXFSZ, SIG_DFL);
    assert_true(seq < 40); /* frames after the rotation numbered from where the lost began */
    assert_int_equal(vt_seglog_sync(log), -EFBIG);
    assert_int_equal(vt_seglog_sync(log), 0);
    vt_seglog_stats_get(log, &st);
    assert_int_equal(st.first_seq, 0); /* nothing skipped ... */
    assert_int_equal(st.next_seq, seq + 1);
    assert_int_equal(st.frames, seq + 1); /* ... the survivors only ... */
    assert_int_equal(st.segments, 1);     /* ... in one segment, the lost one's name */
    vt_seglog_close(log);
    rmtree(dir);
    free(dir);
}

static void test_checkpoint(void **state)
{
    (void)state;
    char *dir = mktemp_dir();
    vt_seglog_opts o = opts_for(dir, 0);
    vt_seglog *log;
    uint64_t seq = 0;
    assert_int_equal(vt_seglog_open(&log, &o, NULL), 0);
    assert_int_equal(vt_seglog_checkpoint_load(log, "shipper", &seq), -ENOENT);
    assert_int_equal(vt_seglog_checkpoint_save(log, "shipper", 12345), 0);
    assert_int_equal(vt_seglog_checkpoint_save(log, "shipper", 0x1234567890ull), 0);
    assert_int_equal(vt_seglog_checkpoint_save(log, "other-1", 7), 0);
    assert_int_equal(vt_seglog_checkpoint_save(log, "../evil", 7), -EINVAL);
    assert_int_equal(vt_seglog_checkpoint_save(log, "", 7), -EINVAL);
    assert_int_equal(vt_seglog_checkpoint_load(log, "shipper", &seq), 0);
    assert_int_equal(seq, 0x1234567890ull);
    vt_seglog_close(log);

    /* Survives reopen; no temp file is left; a damaged file is reported. */
    char p[256];
    struct stat sb;
    snprintf(p, sizeof p, "%s/shipper.ckpt.tmp", dir);
    assert_int_not_equal(stat(p, &sb), 0);
    vt_seglog_recovery rep;
    assert_int_equal(vt_seglog_open(&log, &o, &rep), 0);
    assert_int_equal(rep.ignored_files, 0);
    assert_int_equal(vt_seglog_checkpoint_load(log, "shipper", &seq), 0);
    assert_int_equal(seq, 0x1234567890ull);
    assert_int_equal(vt_seglog_checkpoint_load(log, "other-1", &seq), 0);
    assert_int_equal(seq, 7);
    snprintf(p, sizeof p, "%s/other-1.ckpt", dir);
    size_t n;
    uint8_t *b = read_file(p, &n);
    b[9] ^= 1;
    write_file(p, b, n);
    assert_int_equal(vt_seglog_checkpoint_load(log, "other-1", &seq), -EBADMSG);
    write_file(p, b, 3);
    assert_int_equal(vt_seglog_checkpoint_load(log, "other-1", &seq), -EBADMSG);
    free(b);
    vt_seglog_close(log);
    rmtree(dir);
    free(dir);
}

static void test_trim(void **state)
{
    (void)state;
    enum { N = 200 };
    uint64_t seqs[N];
    char *dir = mktemp_dir();
    vt_seglog_opts o = opts_for(dir, 4096);
    vt_seglog *log;
    vt_seglog_stats st, st2;
    assert_int_equal(vt_seglog_open(&log, &o, NULL), 0);
    append_frames(log, 0, N, seqs);
    vt_seglog_stats_get(log, &st);
    assert_int_equal(vt_seglog_trim(log, 0), 0);

    /* Trim at frame 100's first seq: exactly the segments ending at or below it go. */
    uint64_t upto = seqs[100];
    int deleted = vt_seglog_trim(log, upto);
    assert_true(deleted > 0);
    vt_seglog_stats_get(log, &st2);
    assert_int_equal(st2.segments, st.segments - (uint64_t)deleted);
    assert_int_equal(st2.trimmed_segments, (uint64_t)deleted);
    assert_true(st2.first_seq <= upto);      /* nothing at or above upto was deleted */
    int first_kept = 0;
    while (seqs[first_kept] < st2.first_seq)
        first_kept++;
    assert_int_equal(seqs[first_kept], st2.first_seq);
    /* ... and the segment holding `upto` is the oldest one kept: the one
     * before it ended at or below upto. */
    char p[256];
    struct stat sb;
    seg_path(p, sizeof p, dir, 0);
    assert_int_not_equal(stat(p, &sb), 0);
    seg_path(p, sizeof p, dir, st2.first_seq);
    assert_int_equal(stat(p, &sb), 0);
    assert_int_equal(st2.records, st.next_seq - st2.first_seq);

    /* A reader from the checkpoint still sees every frame from there. */
    int want[N];
    for (int k = 100; k < N; k++)
        want[k - 100] = k;
    expect_frames(log, upto, want, N - 100, seqs);

    /* The active segment is never trimmed, even when fully consumed. */
    vt_seglog_trim(log, UINT64_MAX);
    vt_seglog_stats_get(log, &st2);
    assert_int_equal(st2.segments, 1);
    vt_seglog_close(log);

    /* Sequence numbers go on from where they were after a restart. */
    assert_int_equal(vt_seglog_open(&log, &o, NULL), 0);
    assert_int_equal(vt_seglog_next_seq(log), st.next_seq);
    vt_seglog_close(log);
    rmtree(dir);
    free(dir);
}

struct drops {
    uint64_t records, calls, last_to;
    uint64_t from[256], to[256];
};

static void on_drop(void *ud, uint64_t from, uint64_t to, uint64_t records)
{
    struct drops *d = ud;
    if (d->calls < 256) {
        d->from[d->calls] = from;
        d->to[d->calls] = to;
    }
    d->calls++;
    d->records += records;
    d->last_to = to;
}

static void test_max_bytes(void **state)
{
    (void)state;
    enum { N = 400 };
    uint64_t seqs[N];
    char *dir = mktemp_dir();
    vt_seglog_opts o = opts_for(dir, 4096);
    struct drops d;
    memset(&d, 0, sizeof d);
    o.max_bytes = 16384;
    o.on_drop = on_drop;
    o.on_drop_ud = &d;
    vt_seglog *log;
    vt_seglog_stats st;
    assert_int_equal(vt_seglog_open(&log, &o, NULL), 0);
    uint64_t appended = 0;
    for (int k = 0; k < N; k++) {
        append_frames(log, k, k + 1, seqs);
        appended += frame_records(k);
        vt_seglog_stats_get(log, &st);
        assert_true(st.bytes <= o.max_bytes);
        /* Exact: what is present plus what was dropped is what was appended. */
        assert_int_equal(st.records + st.dropped_records, appended);
        assert_int_equal(st.dropped_records, d.records);
        assert_int_equal(st.first_seq, d.calls ? d.last_to : 0);
    }
    assert_true(d.calls > 3);
    assert_int_equal(st.dropped_segments, d.calls);
    /* Dropped ranges are contiguous, each starting where the last ended. */
    for (uint64_t i = 1; i < d.calls && i < 256; i++)
        assert_int_equal(d.from[i], d.to[i - 1]);
    assert_int_equal(d.from[0], 0);

    /* A reader from 0 skips exactly the dropped range and reads the rest. */
    vt_seglog_reader *r;
    vt_seglog_frame f;
    assert_int_equal(vt_seglog_reader_open(log, 0, &r), 0);
    assert_int_equal(vt_seglog_reader_next(r, &f), 1);
    assert_int_equal(f.first_seq, st.first_seq);
    assert_int_equal(f.skipped, st.first_seq);
    uint64_t got = f.records;
    while (vt_seglog_reader_next(r, &f) == 1) {
        assert_int_equal(f.skipped, 0);
        got += f.records;
    }
    assert_int_equal(got, st.records);
    assert_int_equal(got + d.records, appended);
    vt_seglog_reader_close(r);
    vt_seglog_close(log);

    /* Reopen with the bound: still within it, counts start again. */
    vt_seglog_recovery rep;
    assert_int_equal(vt_seglog_open(&log, &o, &rep), 0);
    assert_int_equal(rep.records, st.records);
    assert_int_equal(rep.first_seq, st.first_seq);
    vt_seglog_close(log);
    rmtree(dir);
    free(dir);
}

/* A reader that lags behind the drop: its open segment disappears under it. */
static void test_max_bytes_reader_lagging(void **state)
{
    (void)state;
    char *dir = mktemp_dir();
    vt_seglog_opts o = opts_for(dir, 4096);
    o.max_bytes = 16384;
    vt_seglog *log;
    vt_seglog_reader *r;
    vt_seglog_frame f;
    uint64_t seqs[300];
    assert_int_equal(vt_seglog_open(&log, &o, NULL), 0);
    append_frames(log, 0, 5, seqs);
    assert_int_equal(vt_seglog_reader_open(log, 0, &r), 0);
    assert_int_equal(vt_seglog_reader_next(r, &f), 1);
    assert_int_equal(f.first_seq, 0);
    append_frames(log, 5, 300, seqs);
    vt_seglog_stats st;
    vt_seglog_stats_get(log, &st);
    assert_true(st.dropped_records > 0);
    assert_int_equal(vt_seglog_reader_next(r, &f), 1);
    assert_int_equal(f.first_seq, st.first_seq); /* nothing dropped is delivered */
    assert_int_equal(f.skipped, st.first_seq - frame_records(0));
    uint64_t got = f.records;
    while (vt_seglog_reader_next(r, &f) == 1)
        got += f.records;
    assert_int_equal(got, st.records);
    vt_seglog_reader_close(r);
    vt_seglog_close(log);
    rmtree(dir);
    free(dir);
}

static void test_fsync_policies(void **state)
{
    (void)state;
    char *dir = mktemp_dir();
    vt_seglog_opts o = opts_for(dir, 4096);
    vt_seglog *log;
    vt_seglog_stats st;

    o.fsync = VT_SEGLOG_FSYNC_NONE;
    assert_int_equal(vt_seglog_open(&log, &o, NULL), 0);
    append_frames(log, 0, 20, NULL);
    vt_seglog_stats_get(log, &st);
    assert_int_equal(st.syncs, 0);
    assert_int_equal(vt_seglog_sync_due(log, -1), 0);
    assert_int_equal(vt_seglog_sync(log), 0); /* explicit sync works under any policy */
    vt_seglog_stats_get(log, &st);
    assert_true(st.syncs >= 1);
    vt_seglog_close(log);

    o.fsync = VT_SEGLOG_FSYNC_ALWAYS;
    assert_int_equal(vt_seglog_open(&log, &o, NULL), 0);
    append_frames(log, 20, 40, NULL);
    vt_seglog_stats_get(log, &st);
    assert_true(st.syncs >= 20); /* one fdatasync per append at least */
    assert_int_equal(vt_seglog_sync_due(log, -1), 0);
    vt_seglog_close(log);

    o.fsync = VT_SEGLOG_FSYNC_INTERVAL;
    o.fsync_interval_ms = 50;
    assert_int_equal(vt_seglog_open(&log, &o, NULL), 0);
    assert_int_equal(vt_seglog_sync_due(log, -1), 0); /* nothing to sync */
    append_frames(log, 40, 41, NULL);
    vt_seglog_stats_get(log, &st);
    uint64_t s0 = st.syncs;
    usleep(60 * 1000);
    assert_int_equal(vt_seglog_sync_due(log, -1), 1);
    assert_int_equal(vt_seglog_sync(log), 0);
    assert_int_equal(vt_seglog_sync_due(log, -1), 0);
    vt_seglog_stats_get(log, &st);
    assert_true(st.syncs > s0);
    /* A steady stream syncs inline once the interval has passed. */
    append_frames(log, 41, 42, NULL);
    vt_seglog_stats_get(log, &st);
    s0 = st.syncs;
    usleep(60 * 1000);
    append_frames(log, 42, 43, NULL);
    vt_seglog_stats_get(log, &st);
    assert_true(st.syncs > s0);
    assert_int_equal(vt_seglog_sync_due(log, -1), 0);
    vt_seglog_close(log);

    /* Everything written under all three policies reads back. */
    assert_int_equal(vt_seglog_open(&log, &o, NULL), 0);
    expect_all(log, 43, NULL);
    vt_seglog_close(log);
    rmtree(dir);
    free(dir);
}

/*
 * Build a one-segment log of n frames in `dir`, return the segment bytes and
 * the end offset of each frame (ends[k]) and first seqs.
 */
static uint8_t *build_segment(const char *dir, int n, uint64_t *ends, uint64_t *seqs, size_t *len)
{
    vt_seglog_opts o = opts_for(dir, 1 << 20);
    vt_seglog *log;
    vt_seglog_stats st;
    assert_int_equal(vt_seglog_open(&log, &o, NULL), 0);
    for (int k = 0; k < n; k++) {
        append_frames(log, k, k + 1, seqs);
        vt_seglog_stats_get(log, &st);
        ends[k] = st.bytes;
    }
    assert_int_equal(st.segments, 1);
    vt_seglog_close(log);
    char p[256];
    seg_path(p, sizeof p, dir, 0);
    return read_file(p, len);
}

/* Put `bytes` as the only segment of a fresh dir, open it and return the log. */
static vt_seglog *open_with_segment(const char *dir, const uint8_t *bytes, size_t len,
                                    vt_seglog_recovery *rep)
{
    char p[256];
    rmtree(dir);
    assert_int_equal(mkdir(dir, 0700), 0);
    seg_path(p, sizeof p, dir, 0);
    write_file(p, bytes, len);
    vt_seglog_opts o = opts_for(dir, 1 << 20);
    vt_seglog *log;
    assert_int_equal(vt_seglog_open(&log, &o, rep), 0);
    return log;
}

static void test_crash_truncate_everywhere(void **state)
{
    (void)state;
    enum { N = 40 };
    uint64_t ends[N], seqs[N + 1];
    size_t len;
    char *src = mktemp_dir(), *dir = mktemp_dir();
    uint8_t *seg = build_segment(src, N, ends, seqs, &len);
    assert_int_equal(len, ends[N - 1]);
    int want[N];
    for (int i = 0; i < N; i++)
        want[i] = i;

    /* Every cut inside the last frame, and sampled cuts everywhere else. */
    int cuts = 0;
    for (uint64_t cut = 0; cut < len; cut += cut >= ends[N - 2] ? 1 : 53) {
        int survive = 0;
        while (survive < N && ends[survive] <= cut)
            survive++;
        uint64_t good_end = survive ? ends[survive - 1] : 0;
        vt_seglog_recovery rep;
        vt_seglog *log = open_with_segment(dir, seg, (size_t)cut, &rep);
        assert_int_equal(rep.frames, survive);
        assert_int_equal(rep.corrupt_frames, 0);
        assert_int_equal(rep.truncated_bytes, cut - good_end);
        uint64_t next = survive ? seqs[survive - 1] + frame_records(survive - 1) : 0;
        assert_int_equal(rep.next_seq, next);
        expect_frames(log, 0, want, survive, seqs);
        if (cuts % 16 == 0) {
            /* Appending after the cut continues the sequence and reads back. */
            uint64_t s;
            char buf[8192];
            size_t n = make_payload(survive, buf, sizeof buf);
            assert_int_equal(vt_seglog_append(log, buf, n, frame_records(survive), 1000 + survive, &s), 0);
            assert_int_equal(s, next);
            seqs[survive] = s;
            expect_frames(log, 0, want, survive + 1, seqs);
            if (survive < N)
                seqs[survive] = survive ? seqs[survive - 1] + frame_records(survive - 1) : 0;
        }
        vt_seglog_close(log);
        /* The file on disk was really cut. */
        char p[256];
        struct stat sb;
        seg_path(p, sizeof p, dir, 0);
        assert_int_equal(stat(p, &sb), 0);
        if (cuts % 16 != 0)
            assert_int_equal((uint64_t)sb.st_size, good_end);
        cuts++;
    }
    assert_true(cuts > 100);
    free(seg);
    rmtree(src);
    rmtree(dir);
    free(src);
    free(dir);
}

static void test_flip_bytes(void **state)
{
    (void)state;
    enum { N = 30 };
    uint64_t ends[N], seqs[N];
    size_t len;
    char *src = mktemp_dir(), *dir = mktemp_dir();
    uint8_t *seg = build_segment(src, N, ends, seqs, &len);
    uint8_t *copy = malloc(len);
    int tried = 0;

    /* Every byte of frame 10 (header and payload), then a sample elsewhere. */
    for (uint64_t at = 0; at < len; at++) {
        int in10 = at >= ends[9] && at < ends[10];
        if (!in10 && at % 29 != 0)
            continue;
        int victim = 0;
        while (ends[victim] <= at)
            victim++;
        memcpy(copy, seg, len);
        copy[at] ^= (uint8_t)(1u << (at % 8));
        vt_seglog_recovery rep;
        vt_seglog *log = open_with_segment(dir, copy, len, &rep);
        int want[N + 1], nw = 0;
        for (int k = 0; k < N; k++)
            if (k != victim)
                want[nw++] = k;
        assert_int_equal(rep.frames, N - 1);
        if (victim == N - 1) {
            /* A bad last frame is indistinguishable from a torn write: cut. */
            assert_int_equal(rep.corrupt_frames, 0);
            assert_int_equal(rep.truncated_bytes, ends[N - 1] - ends[N - 2]);
        } else {
            assert_int_equal(rep.corrupt_frames, 1);
            assert_int_equal(rep.truncated_bytes, 0);
            assert_int_equal(rep.next_seq, seqs[N - 1] + frame_records(N - 1));
        }
        expect_frames(log, 0, want, nw, seqs);
        if (victim > 0 && victim < N - 1) {
            /* The frame after the hole says how many numbers it skipped. */
            vt_seglog_reader *r;
            vt_seglog_frame f;
            assert_int_equal(vt_seglog_reader_open(log, seqs[victim - 1], &r), 0);
            assert_int_equal(vt_seglog_reader_next(r, &f), 1);
            assert_int_equal(vt_seglog_reader_next(r, &f), 1);
            assert_int_equal(f.first_seq, seqs[victim + 1]);
            assert_int_equal(f.skipped, frame_records(victim));
            vt_seglog_reader_close(r);
        }
        vt_seglog_close(log);
        /* A second open finds the same (the corrupt region stays, is skipped). */
        if (victim != N - 1 && tried % 8 == 0) {
            vt_seglog_opts o = opts_for(dir, 1 << 20);
            assert_int_equal(vt_seglog_open(&log, &o, &rep), 0);
            assert_int_equal(rep.frames, N - 1);
            assert_int_equal(rep.corrupt_frames, 1);
            /* Appends never go after a corrupt region: a new segment starts. */
            char buf[8192];
            uint64_t s;
            size_t pn = make_payload(N, buf, sizeof buf);
            assert_int_equal(vt_seglog_append(log, buf, pn, frame_records(N), 1000 + N, &s), 0);
            assert_int_equal(s, rep.next_seq);
            vt_seglog_stats st;
            vt_seglog_stats_get(log, &st);
            assert_int_equal(st.segments, 2);
            want[nw] = N;
            uint64_t seqs2[N + 1];
            memcpy(seqs2, seqs, sizeof(uint64_t) * N);
            seqs2[N] = s;
            expect_frames(log, 0, want, nw + 1, seqs2);
            vt_seglog_close(log);
        }
        tried++;
    }
    assert_true(tried > 100);

    /* Two bad frames in a row make one bad region (counted once), one further
     * on another: two regions, three frames lost, every later frame read. */
    memcpy(copy, seg, len);
    copy[ends[4] + 2] ^= 0x40;           /* header of frame 5 */
    copy[ends[5] + VT_SEGLOG_HEADER_SIZE + 5] ^= 0x01; /* payload of frame 6 */
    copy[ends[19] + 41] ^= 0x80;         /* header CRC of frame 20 */
    vt_seglog_recovery rep;
    vt_seglog *log = open_with_segment(dir, copy, len, &rep);
    assert_int_equal(rep.frames, N - 3);
    assert_int_equal(rep.corrupt_frames, 2);
    int want[N], nw = 0;
    for (int k = 0; k < N; k++)
        if (k != 5 && k != 6 && k != 20)
            want[nw++] = k;
    expect_frames(log, 0, want, nw, seqs);
    vt_seglog_close(log);

    free(copy);
    free(seg);
    rmtree(src);
    rmtree(dir);
    free(src);
    free(dir);
}

static void test_garbage_files(void **state)
{
    (void)state;
    enum { N = 120 };
    uint64_t seqs[N + 10];
    char *dir = mktemp_dir();
    vt_seglog_opts o = opts_for(dir, 4096);
    vt_seglog *log;
    vt_seglog_recovery rep;
    vt_seglog_stats st;
    char p[512];

    assert_int_equal(vt_seglog_open(&log, &o, NULL), 0);
    append_frames(log, 0, N, seqs);
    vt_seglog_stats_get(log, &st);
    vt_seglog_close(log);
    uint64_t end = st.next_seq;

    /* Files that are not ours, a directory named like a segment, an all-zero
     * segment in the middle, an empty segment at the end. */
    snprintf(p, sizeof p, "%s/README", dir);
    write_file(p, "hello", 5);
    snprintf(p, sizeof p, "%s/foo.seg", dir);
    write_file(p, "VTFRVTFRVTFR", 12);
    snprintf(p, sizeof p, "%s/000000000000zzzz.seg", dir);
    write_file(p, "x", 1);
    snprintf(p, sizeof p, "%s/%016" PRIx64 ".seg.bak", dir, (uint64_t)5);
    write_file(p, "x", 1);
    seg_path(p, sizeof p, dir, 1);
    assert_int_equal(mkdir(p, 0700), 0);
    seg_path(p, sizeof p, dir, seqs[50] + 1);
    static uint8_t zeros[10000];
    write_file(p, zeros, sizeof zeros);
    seg_path(p, sizeof p, dir, end + 1000);
    write_file(p, "", 0);

    assert_int_equal(vt_seglog_open(&log, &o, &rep), 0);
    assert_int_equal(rep.ignored_files, 5);
    assert_int_equal(rep.frames, N);
    assert_int_equal(rep.corrupt_frames, 0);
    assert_int_equal(rep.truncated_bytes, sizeof zeros);
    assert_int_equal(rep.segments, st.segments + 2);
    /* The empty segment named end + 1000 is the newest: sequence goes on from there. */
    assert_int_equal(rep.next_seq, end + 1000);
    expect_all(log, N, seqs);
    append_frames(log, N, N + 10, seqs);
    assert_int_equal(seqs[N], end + 1000);
    expect_all(log, N + 10, seqs);
    vt_seglog_reader *r;
    vt_seglog_frame f;
    assert_int_equal(vt_seglog_reader_open(log, end, &r), 0);
    assert_int_equal(vt_seglog_reader_next(r, &f), 1);
    assert_int_equal(f.first_seq, end + 1000);
    assert_int_equal(f.skipped, 1000);
    vt_seglog_reader_close(r);
    vt_seglog_close(log);

    /* A log that is one all-zero segment: empty, and appendable. */
    char *dir2 = mktemp_dir();
    seg_path(p, sizeof p, dir2, 0);
    write_file(p, zeros, sizeof zeros);
    o.dir = dir2;
    assert_int_equal(vt_seglog_open(&log, &o, &rep), 0);
    assert_int_equal(rep.frames, 0);
    assert_int_equal(rep.truncated_bytes, sizeof zeros);
    append_frames(log, 0, 3, seqs);
    assert_int_equal(seqs[0], 0);
    expect_all(log, 3, seqs);
    vt_seglog_close(log);

    /* Something not ours already holds the name the next segment needs:
     * rotation steps past it (a gap of one) and nothing is lost. */
    char *dir3 = mktemp_dir();
    o.dir = dir3;
    o.segment_bytes = 4096;
    assert_int_equal(vt_seglog_open(&log, &o, NULL), 0);
    int k = 0;
    uint64_t taken = 0;
    for (;; k++) {
        /* Occupy the name a rotation would take now; free it if unused. */
        taken = vt_seglog_next_seq(log);
        seg_path(p, sizeof p, dir3, taken);
        if (k > 0)
            assert_int_equal(mkdir(p, 0700), 0);
        append_frames(log, k, k + 1, seqs);
        vt_seglog_stats_get(log, &st);
        if (st.segments == 2)
            break;
        if (k > 0)
            assert_int_equal(rmdir(p), 0);
        assert_true(k < 1000);
    }
    assert_int_equal(seqs[k], taken + 1); /* stepped past the name */
    k++;
    append_frames(log, k, k + 5, seqs);
    k += 5;
    expect_all(log, k, seqs);
    vt_seglog_close(log);
    assert_int_equal(vt_seglog_open(&log, &o, &rep), 0);
    assert_int_equal(rep.ignored_files, 1);
    assert_int_equal(rep.frames, (uint64_t)k);
    expect_all(log, k, seqs);
    vt_seglog_close(log);
    rmtree(dir);
    rmtree(dir2);
    rmtree(dir3);
    free(dir);
    free(dir2);
    free(dir3);
}

struct race {
    vt_seglog *log;
    int n;
    int done; /* set by the appender; read under the reader's own polling */
    pthread_mutex_t mu;
    int failures;
};

static void *reader_thread(void *arg)
{
    struct race *rc = arg;
    vt_seglog_reader *r;
    vt_seglog_frame f;
    char buf[8192];
    int k = 0;
    if (vt_seglog_reader_open(rc->log, 0, &r) != 0) {
        rc->failures++;
        return NULL;
    }
    for (;;) {
        int got = vt_seglog_reader_next(r, &f);
        if (got == 0) {
            pthread_mutex_lock(&rc->mu);
            int done = rc->done;
            pthread_mutex_unlock(&rc->mu);
            if (!done) {
                usleep(100);
                continue;
            }
            /* The appender has finished: everything is visible now. */
            got = vt_seglog_reader_next(r, &f);
            if (got == 0)
                break;
        }
        if (got < 0) {
            rc->failures++;
            break;
        }
        size_t n = make_payload(k, buf, sizeof buf);
        if (f.len != n || memcmp(f.data, buf, n) != 0 || f.skipped != 0)
            rc->failures++;
        k++;
    }
    if (k != rc->n)
        rc->failures++;
    vt_seglog_reader_close(r);
    return NULL;
}

static void test_concurrent_reader(void **state)
{
    (void)state;
    char *dir = mktemp_dir();
    vt_seglog_opts o = opts_for(dir, 8192);
    struct race rc;
    memset(&rc, 0, sizeof rc);
    pthread_mutex_init(&rc.mu, NULL);
    rc.n = 3000;
    assert_int_equal(vt_seglog_open(&rc.log, &o, NULL), 0);
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, reader_thread, &rc), 0);
    for (int k = 0; k < rc.n; k++)
        append_frames(rc.log, k, k + 1, NULL);
    pthread_mutex_lock(&rc.mu);
    rc.done = 1;
    pthread_mutex_unlock(&rc.mu);
    pthread_join(t, NULL);
    assert_int_equal(rc.failures, 0);
    vt_seglog_close(rc.log);
    pthread_mutex_destroy(&rc.mu);
    rmtree(dir);
    free(dir);
}

static void test_scan_buffer(void **state)
{
    (void)state;
    enum { N = 10 };
    uint64_t ends[N], seqs[N];
    size_t len;
    char *src = mktemp_dir();
    uint8_t *seg = build_segment(src, N, ends, seqs, &len);
    vt_seglog_scan_result res;
    vt_seglog_scan(seg, len, 0, 0, NULL, NULL, &res);
    assert_int_equal(res.frames, N);
    assert_int_equal(res.good_end, len);
    assert_int_equal(res.end_seq, seqs[N - 1] + frame_records(N - 1));
    /* A min_seq above the frames makes all of them "corrupt" (stale). */
    vt_seglog_scan(seg, len, 0, res.end_seq, NULL, NULL, &res);
    assert_int_equal(res.frames, 0);
    /* A max_frame below the payload sizes rejects them. */
    vt_seglog_scan(seg, len, 8, 0, NULL, NULL, &res);
    assert_int_equal(res.frames, 0);
    assert_int_equal(res.good_end, 0);
    free(seg);
    rmtree(src);
    free(src);
}

int main(void)
{
    vt_log_set_level(VT_LOG_ERROR); /* recovery warns on purpose a thousand times */
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_crc_convention),
        cmocka_unit_test(test_roundtrip_rotation_reopen),
        cmocka_unit_test(test_bad_args_and_lock),
        cmocka_unit_test(test_incompressible),
        cmocka_unit_test(test_uncompressed_and_zstd_as_given),
        cmocka_unit_test(test_checkpoint),
        cmocka_unit_test(test_trim),
        cmocka_unit_test(test_max_bytes),
        cmocka_unit_test(test_max_bytes_reader_lagging),
        cmocka_unit_test(test_fsync_policies),
        cmocka_unit_test(test_crash_truncate_everywhere),
        cmocka_unit_test(test_flip_bytes),
        cmocka_unit_test(test_garbage_files),
        cmocka_unit_test(test_concurrent_reader),
        cmocka_unit_test(test_scan_buffer),
        cmocka_unit_test(test_grouped),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
