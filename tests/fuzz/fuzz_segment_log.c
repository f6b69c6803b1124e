/*
 * fuzz_segment_log.c - the segment log's decoder is fed from disk: fuzz it.
 *
 * Input: one flags byte, then the bytes of a segment file.
 *   flags & 1  "fix CRCs": before decoding, every header-sized span that
 *              starts with the magic gets correct payload and header CRCs, so
 *              the fuzzer gets past the checksums into length bounds, sequence
 *              rules and zstd decoding (otherwise almost nothing it makes
 *              would pass a CRC32C).
 *   flags & 2  also write the bytes as a real segment file, open the log
 *              (recovery), read it with a reader and compare with the pure
 *              scan: same frames, same payloads; then append and re-read.
 *   flags & 4  ... with the log grouped: the append is invisible to readers
 *              until vt_seglog_flush.
 *   flags & 8  ... and written with O_DIRECT (with 4): the append rewrites
 *              the recovered end's partial block; closed, the log reopens
 *              with nothing torn and the one frame more.
 * Invariants checked with abort(): offsets and sequence numbers only grow,
 * good_end <= len, decoded payloads have their declared length, recovery and
 * reader agree with vt_seglog_scan.
 */
#include <errno.h>
#include <dirent.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <isa-l/crc.h>
#include <zstd.h>

#include "log.h"
#include "segment_log.h"

#define MAX_FRAME (1u << 20)
#define MAX_GOOD 4096

static uint32_t crc32c(const uint8_t *p, size_t n)
{
    return crc32_iscsi((unsigned char *)(uintptr_t)p, (int)n, 0xFFFFFFFFu) ^ 0xFFFFFFFFu;
}

static void put32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static uint32_t get32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void fix_crcs(uint8_t *b, size_t n)
{
    for (size_t off = 0; off + VT_SEGLOG_HEADER_SIZE <= n; off++) {
        if (get32(b + off) != VT_SEGLOG_MAGIC)
            continue;
        uint32_t stored = get32(b + off + 8);
        if (stored <= n - off - VT_SEGLOG_HEADER_SIZE)
            put32(b + off + 20, crc32c(b + off + VT_SEGLOG_HEADER_SIZE, stored));
        put32(b + off + 40, crc32c(b + off, 40));
    }
}

struct good {
    uint64_t first_seq;
    uint32_t records;
    long len; /* decoded length, or -1 if the payload does not decode */
    uint32_t crc;
};

struct scan_state {
    uint64_t last_off, last_end;
    int n;
    struct good g[MAX_GOOD];
    uint8_t *out;
    ZSTD_DCtx *dctx;
};

static int on_frame(void *ud, const vt_seglog_frame_info *f, const uint8_t *stored)
{
    struct scan_state *s = ud;
    if (s->n && f->offset < s->last_off)
        abort();
    if (f->first_seq < s->last_end || f->records == 0 || f->raw_len > MAX_FRAME)
        abort();
    s->last_off = f->offset;
    s->last_end = f->first_seq + f->records;
    long n = vt_seglog_decode_payload(f, stored, s->out, MAX_FRAME, s->dctx);
    if (n >= 0 && (uint32_t)n != f->raw_len)
        abort();
    if (s->n < MAX_GOOD) {
        struct good *g = &s->g[s->n];
        g->first_seq = f->first_seq;
        g->records = f->records;
        g->len = n;
        g->crc = n > 0 ? crc32c(s->out, (size_t)n) : 0;
    }
    s->n++;
    return 0;
}

/* One scratch directory per process, on tmpfs when there is one: the replay
 * driver runs thousands of inputs and a disk journal would dominate. */
static char scratch[64];

/* Empty the scratch directory (appends may have created more segments). */
static void scratch_clean(void)
{
    DIR *d = opendir(scratch);
    struct dirent *de;
    char path[384];
    if (!d)
        return;
    while ((de = readdir(d)) != NULL) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        snprintf(path, sizeof path, "%s/%s", scratch, de->d_name);
        unlink(path);
    }
    closedir(d);
}

static void scratch_remove(void)
{
    scratch_clean();
    rmdir(scratch);
}

static const char *scratch_dir(void)
{
    char *dir = scratch;
    if (!dir[0]) {
        struct stat sb;
        const char *base = stat("/dev/shm", &sb) == 0 && S_ISDIR(sb.st_mode) ? "/dev/shm" : "/tmp";
        snprintf(dir, sizeof scratch, "%s/vt_fuzz_seglog_XXXXXX", base);
        if (!mkdtemp(dir))
            abort();
        atexit(scratch_remove);
    }
    return dir;
}

/* Recovery's rule: fewer than 4096 zeros ending the file on a 4 KiB
 * boundary are O_DIRECT's padding, not a torn tail. */
static uint64_t torn_bytes(const uint8_t *b, size_t n, const vt_seglog_scan_result *res)
{
    uint64_t tail = n - res->good_end;
    if (res->stale_tail) /* a reused file's earlier frames: not torn */
        return 0;
    if (tail == 0 || tail >= 4096 || n % 4096)
        return tail;
    for (size_t i = res->good_end; i < n; i++)
        if (b[i])
            return tail;
    return 0;
}

static void check_with_files(const uint8_t *b, size_t n, struct scan_state *s,
                             const vt_seglog_scan_result *res, bool grouped, bool direct)
{
    const char *dir = scratch_dir();
    char path[128];
    snprintf(path, sizeof path, "%s/0000000000000000.seg", dir);
    FILE *f = fopen(path, "wb");
    if (!f)
        abort();
    if (n)
        fwrite(b, 1, n, f);
    fclose(f);
    vt_seglog_opts o;
    memset(&o, 0, sizeof o);
    o.dir = dir;
    o.max_frame_bytes = MAX_FRAME;
    o.grouped = grouped;
    o.direct = direct;
    vt_seglog *log;
    vt_seglog_recovery rep;
    if (vt_seglog_open(&log, &o, &rep) != 0)
        abort(); /* a bad segment never stops start-up */
    if (rep.frames != res->frames || rep.corrupt_frames != res->corrupt_frames
        || rep.truncated_bytes != torn_bytes(b, n, res) || rep.next_seq != res->end_seq)
        abort();
    vt_seglog_reader *r;
    vt_seglog_frame fr;
    int i = 0, rc;
    if (vt_seglog_reader_open(log, 0, &r) != 0)
        abort();
    while ((rc = vt_seglog_reader_next(r, &fr)) == 1) {
        while (i < s->n && i < MAX_GOOD && s->g[i].len < 0)
            i++; /* frames whose payload does not decode are skipped by readers */
        if (i >= s->n || i >= MAX_GOOD)
            abort();
        if (fr.first_seq != s->g[i].first_seq || fr.records != s->g[i].records
            || (long)fr.len != s->g[i].len || (fr.len && crc32c(fr.data, fr.len) != s->g[i].crc))
            abort();
        i++;
    }
    if (rc != 0)
        abort();
    vt_seglog_reader_close(r);
    /* The recovered log takes appends and reads them back. */
    uint64_t seq;
    int rc2 = vt_seglog_append(log, "{\"x\":1}\n", 8, 1, 42, &seq);
    if (rc2 == -EOVERFLOW && res->end_seq + 1 >= VT_SEGLOG_SEQ_LIMIT) {
        vt_seglog_close(log); /* the very end of the sequence space */
        scratch_clean();
        return;
    }
    if (rc2 != 0 || seq != res->end_seq)
        abort();
    if (grouped) { /* staged: invisible to readers until flushed */
        if (vt_seglog_reader_open(log, seq, &r) != 0 || vt_seglog_reader_next(r, &fr) != 0)
            abort();
        vt_seglog_reader_close(r);
        if (vt_seglog_flush(log) != 0)
            abort();
    }
    if (vt_seglog_reader_open(log, seq, &r) != 0 || vt_seglog_reader_next(r, &fr) != 1
        || fr.first_seq != seq || fr.len != 8 || memcmp(fr.data, "{\"x\":1}\n", 8) != 0)
        abort();
    vt_seglog_reader_close(r);
    vt_seglog_close(log);
    if (direct) { /* closed: no padding left, the frame appended where it belonged */
        o.direct = false;
        if (vt_seglog_open(&log, &o, &rep) != 0 || rep.truncated_bytes != 0 ||
            rep.frames != res->frames + 1 || rep.next_seq != seq + 1)
            abort();
        vt_seglog_close(log);
    }
    scratch_clean(); /* the next input starts from an empty directory again */
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct scan_state s; /* reused: the fuzzer runs millions of inputs */
    if (size < 1)
        return 0;
    vt_log_set_level(VT_LOG_ERROR);
    if (!s.out) {
        s.out = malloc(MAX_FRAME);
        s.dctx = ZSTD_createDCtx();
    }
    uint8_t flags = data[0];
    size_t n = size - 1;
    uint8_t *b = malloc(n ? n : 1);
    if (n)
        memcpy(b, data + 1, n);
    if (flags & 1)
        fix_crcs(b, n);

    vt_seglog_scan_result res;
    s.n = 0;
    s.last_off = s.last_end = 0;
    vt_seglog_scan(b, n, MAX_FRAME, 0, on_frame, &s, &res);
    if (res.good_end > n || res.frames != (uint64_t)s.n)
        abort();
    if ((flags & 2) && s.n <= MAX_GOOD)
        check_with_files(b, n, &s, &res, (flags & 4) != 0, (flags & 12) == 12);
    free(b);
    return 0;
}
