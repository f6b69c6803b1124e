/*
 * seglog_test_util.h - what the segment log tests share (test_segment_log.c,
 * test_segment_log_direct.c): temp dirs, deterministic frames, reading a
 * log back and checking every frame. Header-only; include after cmocka.h.
 */
#ifndef VT_SEGLOG_TEST_UTIL_H
#define VT_SEGLOG_TEST_UTIL_H

#include <ftw.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "segment_log.h"

/* ---- helpers ------------------------------------------------------------ */

static inline int rm_cb(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb; (void)flag; (void)ftw;
    return remove(p);
}

static inline void rmtree(const char *dir)
{
    nftw(dir, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
}

static inline char *mktemp_dir(void)
{
    char *d = strdup("/tmp/vt_seglog_test_XXXXXX");
    assert_non_null(mkdtemp(d));
    return d;
}

/* Deterministic payload for frame k: `records` NDJSON-ish lines. */
static inline uint32_t frame_records(int k) { return 1 + (uint32_t)(k % 4); }

static inline size_t make_payload(int k, char *buf, size_t cap)
{
    size_t n = 0;
    for (uint32_t j = 0; j < frame_records(k); j++) {
        int pad = (k * 37 + (int)j * 11) % 200;
        int w = snprintf(buf + n, cap - n, "{\"k\":%d,\"j\":%u,\"svc\":\"support-bot\",\"pad\":\"%.*s\"}\n",
                         k, j, pad,
                         "abcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcdefghij"
                         "abcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcdefghij"
                         "abcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcdefghij");
        n += (size_t)w;
    }
    return n;
}

static inline vt_seglog_opts opts_for(const char *dir, uint64_t seg_bytes)
{
    vt_seglog_opts o;
    memset(&o, 0, sizeof o);
    o.dir = dir;
    o.segment_bytes = seg_bytes;
    return o;
}

/* Append frames [k0, k1) and record each first_seq in seqs[k]. */
static inline void append_frames(vt_seglog *log, int k0, int k1, uint64_t *seqs)
{
    char buf[8192];
    for (int k = k0; k < k1; k++) {
        size_t n = make_payload(k, buf, sizeof buf);
        uint64_t s = 0;
        assert_int_equal(vt_seglog_append(log, buf, n, frame_records(k), 1000 + k, &s), 0);
        if (seqs)
            seqs[k] = s;
    }
}

/* Read everything from from_seq; check that frame i equals frame want[i]. */
static inline void expect_frames(vt_seglog *log, uint64_t from, const int *want, int nwant,
                          const uint64_t *seqs)
{
    vt_seglog_reader *r;
    vt_seglog_frame f;
    char buf[8192];
    int i = 0, rc;
    assert_int_equal(vt_seglog_reader_open(log, from, &r), 0);
    while ((rc = vt_seglog_reader_next(r, &f)) == 1) {
        assert_true(i < nwant);
        int k = want[i];
        size_t n = make_payload(k, buf, sizeof buf);
        assert_int_equal(f.len, n);
        assert_memory_equal(f.data, buf, n);
        assert_int_equal(f.records, frame_records(k));
        assert_int_equal(f.arrival_ms, 1000 + k);
        if (seqs)
            assert_int_equal(f.first_seq, seqs[k]);
        i++;
    }
    assert_int_equal(rc, 0);
    assert_int_equal(i, nwant);
    vt_seglog_reader_close(r);
}

static inline void expect_all(vt_seglog *log, int n, const uint64_t *seqs)
{
    int *want = malloc(sizeof *want * (size_t)(n ? n : 1));
    for (int i = 0; i < n; i++)
        want[i] = i;
    expect_frames(log, 0, want, n, seqs);
    free(want);
}

static inline uint8_t *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *b = malloc((size_t)n + 1);
    assert_int_equal(fread(b, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    *len = (size_t)n;
    return b;
}

static inline void write_file(const char *path, const void *b, size_t n)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    if (n)
        assert_int_equal(fwrite(b, 1, n, f), n);
    fclose(f);
}

static inline void seg_path(char *out, size_t cap, const char *dir, uint64_t seq)
{
    snprintf(out, cap, "%s/%016" PRIx64 ".seg", dir, seq);
}

/* Bytes of all segment files in dir (newest: of the last one only). */
static inline uint64_t seg_bytes(const char *dir, bool newest)
{
    char cmd[512];
    snprintf(cmd, sizeof cmd, "cat $(ls %s/*.seg | %s) 2>/dev/null | wc -c", dir,
             newest ? "tail -1" : "cat");
    FILE *f = popen(cmd, "r");
    unsigned long long n = 0;
    assert_int_equal(fscanf(f, "%llu", &n), 1);
    pclose(f);
    return n;
}

#endif
