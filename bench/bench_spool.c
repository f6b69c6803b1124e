/*
 * bench_spool.c - the agent's spool: how fast NDJSON goes into the segment
 * log and how small it gets there.
 *
 * Frames are blocks of gen.h records (~370 bytes each) cut at
 * VT_SEGLOG_SUGGESTED_FRAME_BYTES (512 KiB) of text, the block size the
 * agent uses; zstd at the log's default level, fsync none, segments of the
 * default 16 MiB in a temp dir. Each frame is distinct (a pool of 96 MiB of
 * generated text, appended twice), so the compressor never sees a repeat.
 *
 *   append_mb_per_s       NDJSON megabytes appended per second (wall clock)
 *   append_records_per_s  records appended per second
 *   compression_ratio     NDJSON bytes / bytes on disk (headers included)
 *   spool_bytes_per_record
 *   read_records_per_s    a reader from seq 0 to the end: read, CRC, decompress
 *
 * `bench_spool --sweep` prints ratio and speed for other frame sizes and
 * levels (how the defaults were chosen; see docs/segment-log.md).
 */
#include <ftw.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"
#include "gen.h"
#include "log.h"
#include "segment_log.h"

struct pool {
    char *text;
    size_t *off;      /* frame i is text[off[i], off[i + 1]) */
    uint32_t *records;
    size_t frames;
    uint64_t bytes, nrecords;
};

static void pool_make(struct pool *p, size_t total, size_t frame_bytes)
{
    struct gen g;
    char line[4096];
    size_t cap = total / frame_bytes + 2;
    gen_init(&g, 42);
    p->text = malloc(total + frame_bytes);
    p->off = malloc((cap + 1) * sizeof *p->off);
    p->records = malloc(cap * sizeof *p->records);
    p->frames = 0;
    p->bytes = p->nrecords = 0;
    size_t n = 0, start = 0;
    uint32_t recs = 0;
    p->off[0] = 0;
    while (p->frames < cap - 1) {
        size_t l = gen_record(&g, line, sizeof line);
        if (n - start + l + 1 > frame_bytes) {
            p->records[p->frames++] = recs;
            p->off[p->frames] = n;
            start = n;
            recs = 0;
            if (n >= total)
                break;
        }
        memcpy(p->text + n, line, l);
        p->text[n + l] = '\n';
        n += l + 1;
        recs++;
    }
    p->bytes = p->off[p->frames];
    for (size_t i = 0; i < p->frames; i++)
        p->nrecords += p->records[i];
}

static void pool_free(struct pool *p)
{
    free(p->text);
    free(p->off);
    free(p->records);
}

static int rm_cb(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb; (void)flag; (void)ftw;
    return remove(path);
}

struct result {
    double append_s, read_s, ratio;
    uint64_t bytes_in, records, disk;
};

static int run(const struct pool *p, int passes, int level, struct result *res)
{
    char dir[] = "/tmp/vt_bench_spool_XXXXXX";
    if (!mkdtemp(dir))
        return -1;
    vt_seglog_opts o;
    memset(&o, 0, sizeof o);
    o.dir = dir;
    o.compression_level = level;
    o.fsync = VT_SEGLOG_FSYNC_NONE;
    vt_seglog *log;
    if (vt_seglog_open(&log, &o, NULL) != 0)
        return -1;
    memset(res, 0, sizeof *res);
    double t0 = bench_now();
    for (int pass = 0; pass < passes; pass++)
        for (size_t i = 0; i < p->frames; i++) {
            if (vt_seglog_append(log, p->text + p->off[i], p->off[i + 1] - p->off[i],
                                 p->records[i], 1764288000000 + (int64_t)i, NULL) != 0)
                return -1;
            res->bytes_in += p->off[i + 1] - p->off[i];
            res->records += p->records[i];
        }
    res->append_s = bench_now() - t0;
    vt_seglog_stats st;
    vt_seglog_stats_get(log, &st);
    res->disk = st.bytes;
    res->ratio = (double)res->bytes_in / (double)st.bytes;

    vt_seglog_reader *r;
    vt_seglog_frame f;
    uint64_t got = 0;
    t0 = bench_now();
    if (vt_seglog_reader_open(log, 0, &r) != 0)
        return -1;
    while (vt_seglog_reader_next(r, &f) == 1)
        got += f.records;
    res->read_s = bench_now() - t0;
    vt_seglog_reader_close(r);
    vt_seglog_close(log);
    nftw(dir, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
    if (got != res->records) {
        fprintf(stderr, "bench_spool: read %llu records, wrote %llu\n",
                (unsigned long long)got, (unsigned long long)res->records);
        return -1;
    }
    return 0;
}

static void sweep(void)
{
    static const size_t sizes[] = {16 << 10, 64 << 10, 128 << 10, 256 << 10, 1 << 20};
    static const int levels[] = {-1, 1, 2, 3, 5};
    printf("%-10s %-6s %8s %14s %10s\n", "frame", "level", "ratio", "records/s", "MB/s");
    for (size_t s = 0; s < sizeof sizes / sizeof *sizes; s++) {
        struct pool p;
        pool_make(&p, 32u << 20, sizes[s]);
        for (size_t l = 0; l < sizeof levels / sizeof *levels; l++) {
            struct result r;
            if (run(&p, 1, levels[l], &r) != 0)
                exit(1);
            printf("%-10zu %-6d %8.2f %14.0f %10.1f\n", sizes[s] >> 10, levels[l], r.ratio,
                   r.records / r.append_s, r.bytes_in / r.append_s / 1e6);
        }
        pool_free(&p);
    }
}

int main(int argc, char **argv)
{
    vt_log_set_level(VT_LOG_ERROR);
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], "--sweep") == 0) {
            sweep();
            return 0;
        }
    bench_init(argc, argv, "spool");
    struct pool p;
    struct result r;
    pool_make(&p, 96u << 20, VT_SEGLOG_SUGGESTED_FRAME_BYTES);
    if (run(&p, 2, VT_SEGLOG_DEFAULT_LEVEL, &r) != 0)
        return 1;
    bench_report("append_mb_per_s", r.bytes_in / r.append_s / 1e6, "MB/s", NULL);
    bench_report("append_records_per_s", r.records / r.append_s, "records/s", ">= 500000");
    bench_report("compression_ratio", r.ratio, "x", ">= 8");
    bench_report("spool_bytes_per_record", (double)r.disk / r.records, "bytes", NULL);
    bench_report("read_records_per_s", r.records / r.read_s, "records/s", NULL);
    bench_report("frame_bytes", VT_SEGLOG_SUGGESTED_FRAME_BYTES, "bytes", NULL);
    bench_report("records_per_frame", (double)p.nrecords / p.frames, "records", NULL);
    pool_free(&p);
    return 0;
}
