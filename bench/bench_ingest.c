/*
 * bench_ingest.c - the scorer's Push path without the daemon: what the
 * collector does to a batch on its loop thread, in process, on the batches
 * of bench_scorer's push figure (10 series x 8 sketches of 30 records each,
 * 10,000 series in rotation, the current window).
 *
 * Why it exists: push_batches_per_cpu_s (bench_scorer) is the daemon's whole
 * cost per batch - HTTP/2, the WAL's write and fsync, the kernel - and moves
 * by +-30% between runs on a 2-core VM. This one times the two steps that
 * are ours alone, so a change to the batch reader, the sketch merge or the
 * store can be compared, and profiled (`perf record`), on its own:
 *
 *   check_us_per_batch   vt_batch_parse + vt_store_validate (on receipt)
 *   apply_us_per_batch   vt_store_apply (after the WAL made it durable)
 *   inflate_us_per_batch ZSTD_decompress of the level-6 frame agents send
 *   wire_bytes_per_batch the batch as sent, uncompressed and zstd
 *   snapshot_cpu_ms      vt_store_snapshot_write of the store the passes
 *                        left (10,000 series, one window of ~100 merges
 *                        each: what bench_scorer's scorer holds at its
 *                        snapshot), to a file in /tmp
 *   snapshot_us_per_batch the same, shared by the batches of one snapshot
 *                        period (1 GiB of batches): its part of the push cost
 *
 * Environment: BENCH_INGEST_SERIES (default 10000) series in rotation;
 * BENCH_INGEST_BATCHES (default 20000) batches per pass;
 * BENCH_INGEST_PASSES (default 5) passes over them, each with batches of its
 * own; the first is a warm-up that creates the series, and the figures are
 * the best of the others (the same work each time: the spread between them
 * is the machine's, not the code's). BENCH_INGEST_VERBOSE=1 prints every
 * pass's figures to stderr: later passes merge into fuller rollups (their
 * counters pass 255 after ~100 merges and widen), so a long run
 * (BENCH_INGEST_PASSES=17) shows what dense windows cost.
 */
#include "../scorer/batch.c"
#include "../scorer/store.c"
#include "../scorer/store_snapshot.c"

#include <stdio.h>
#include <time.h>
#include <zstd.h>

#include "bench.h"
#include "gen.h"
#include "record.h"
#include "scorer_data.h"

#define GROUP 25 /* batches per WAL group in bench_scorer's push runs */

int main(int argc, char **argv)
{
    bench_init(argc, argv, "ingest");
    uint64_t n = getenv("BENCH_INGEST_BATCHES") ? strtoull(getenv("BENCH_INGEST_BATCHES"), 0, 10)
                                                : 20000;
    int passes = getenv("BENCH_INGEST_PASSES") ? atoi(getenv("BENCH_INGEST_PASSES")) : 5;
    uint32_t n_series = getenv("BENCH_INGEST_SERIES") ? (uint32_t)atoi(getenv("BENCH_INGEST_SERIES")) : 10000;
    if (n < 1 || passes < 2 || n_series < SD_SERIES_PER_BATCH) {
        fprintf(stderr, "bench_ingest: need BENCH_INGEST_BATCHES >= 1, BENCH_INGEST_PASSES >= 2, BENCH_INGEST_SERIES >= 10\n");
        return 2;
    }
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    int64_t now = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
    int64_t ws = now - now % 10000;
    static Vitals__V1__WindowAggregate templates[SD_TEMPLATES];
    Vitals__V1__SeriesKey *keys = sd_keys(n_series);
    sd_templates(templates, now);

    vt_store *st = sd_store_new(now, "bench_ingest");
    if (!st)
        return 1;

    char err[256];
    /* every pass's batches, packed once (ids differ per pass: no duplicates) */
    uint64_t total = n * (uint64_t)passes;
    size_t *off = malloc((total + 1) * sizeof *off), cap = 0, len = 0, zlen = 0;
    uint8_t *wire = NULL, *z = malloc(1 << 20), *out = malloc(1 << 20);
    static uint8_t buf[1 << 20];
    ZSTD_CCtx *zc = ZSTD_createCCtx();
    ZSTD_DCtx *zd = ZSTD_createDCtx();
    double inflate = 0;
    for (uint64_t i = 0; i < total; i++) {
        uint64_t seq = i % n;
        char id[96];
        snprintf(id, sizeof id, "bench/%llu/%llu", (unsigned long long)(i / n),
                 (unsigned long long)seq);
        size_t m = sd_pack_batch(buf, sizeof buf, templates, keys, n_series, id, seq,
                                 (uint32_t)(seq * SD_SERIES_PER_BATCH % n_series), ws);
        if (len + m > cap && !(wire = realloc(wire, cap = (len + m) + m * (total - i) / 16 * 17))) {
            fprintf(stderr, "bench_ingest: out of memory\n");
            return 1;
        }
        memcpy(wire + len, buf, m);
        off[i] = len;
        len += m;
        if (i < 1000) { /* the inflate figure, on the first 1,000 */
            size_t zn = ZSTD_compressCCtx(zc, z, 1 << 20, buf, m, 6);
            if (ZSTD_isError(zn)) {
                fprintf(stderr, "bench_ingest: zstd: %s\n", ZSTD_getErrorName(zn));
                return 1;
            }
            double c0 = bench_cpu();
            size_t dn = ZSTD_decompressDCtx(zd, out, 1 << 20, z, zn);
            inflate += bench_cpu() - c0;
            if (dn != m) {
                fprintf(stderr, "bench_ingest: zstd round trip failed\n");
                return 1;
            }
            zlen += zn;
        }
    }
    off[total] = len;

    /* as the collector does: a WAL group's worth of batches checked on
     * receipt, then the group applied */
    double check = 1e30, apply = 1e30; /* the best pass: this VM's neighbours are noisy */
    struct vt_batch group[GROUP];
    struct vt_batch_kept kept[GROUP] = {{0}}; /* what each check keeps for its apply */
    for (int p = 0; p < passes; p++) {
        double pc = 0, pa = 0;
        for (uint64_t g = p * n; g < (p + 1) * n; g += GROUP) {
            uint64_t k = (p + 1) * n - g < GROUP ? (p + 1) * n - g : GROUP;
            double c0 = bench_cpu();
            for (uint64_t i = 0; i < k; i++)
                if (vt_batch_parse(&group[i], wire + off[g + i], off[g + i + 1] - off[g + i], err,
                                   sizeof err) ||
                    (group[i].kept = &kept[i], vt_store_validate(st, &group[i], err, sizeof err))) {
                    fprintf(stderr, "bench_ingest: invalid batch: %s\n", err);
                    return 1;
                }
            double c1 = bench_cpu();
            for (uint64_t i = 0; i < k; i++)
                if (vt_store_seen(st, &group[i]) || vt_store_apply(st, &group[i], NULL) < 0) {
                    fprintf(stderr, "bench_ingest: batch %llu not applied\n",
                            (unsigned long long)(g + i));
                    return 1;
                }
            pc += c1 - c0;
            pa += bench_cpu() - c1;
        }
        if (p > 0 && pc + pa < check + apply)
            check = pc, apply = pa;
        if (getenv("BENCH_INGEST_VERBOSE"))
            fprintf(stderr, "bench_ingest: pass %d: check %.2f, apply %.2f us per batch\n", p,
                    pc / (double)n * 1e6, pa / (double)n * 1e6);
    }
    uint64_t m = total < 1000 ? total : 1000;
    bench_report("check_us_per_batch", check / (double)n * 1e6, "us", NULL);
    bench_report("apply_us_per_batch", apply / (double)n * 1e6, "us", NULL);
    bench_report("inflate_us_per_batch", inflate / (double)m * 1e6, "us", NULL);
    bench_report("wire_bytes_per_batch", (double)off[m] / (double)m, "bytes", NULL);
    bench_report("zstd_bytes_per_batch", (double)zlen / (double)m, "bytes", NULL);
    char snap[] = "/tmp/vt-bench-ingest-snapshot-XXXXXX";
    int sfd = mkstemp(snap);
    double snap_cpu = 1e30;
    for (int p = 0; sfd >= 0 && p < 3; p++) {
        double c0 = bench_cpu();
        if (vt_store_snapshot_write(st, snap, 1)) {
            fprintf(stderr, "bench_ingest: snapshot write failed\n");
            return 1;
        }
        double c = bench_cpu() - c0;
        snap_cpu = c < snap_cpu ? c : snap_cpu;
    }
    if (sfd >= 0) {
        close(sfd);
        unlink(snap);
        double per_gib = (double)(1ull << 30) / ((double)off[m] / (double)m);
        bench_report("snapshot_cpu_ms", snap_cpu * 1e3, "ms", NULL);
        bench_report("snapshot_us_per_batch", snap_cpu / per_gib * 1e6, "us", NULL);
    }
    for (int i = 0; i < GROUP; i++)
        vt_batch_kept_free(&kept[i]);
    ZSTD_freeCCtx(zc);
    ZSTD_freeDCtx(zd);
    free(wire);
    free(off);
    free(z);
    free(out);
    vt_store_free(st);
    return 0;
}
