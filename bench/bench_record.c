/*
 * bench_record.c - decode throughput of the NDJSON record decoder.
 *
 * 200,000 realistic records from gen.h are generated into memory once, then
 * decoded over and over for about two seconds on one core (this process is
 * single-threaded). Reports records/s and MB/s of input; the target
 * is >= 1,000,000 records/s. A record that fails to decode aborts the run,
 * so the figure is never inflated by early rejections.
 */
#include "bench.h"
#include "gen.h"
#include "record.h"

#include <stdlib.h>

#define N_RECORDS 200000

int main(int argc, char **argv)
{
    bench_init(argc, argv, "record");
    char *text = malloc((size_t)N_RECORDS * 512);
    size_t *off = malloc((N_RECORDS + 1) * sizeof *off);
    if (!text || !off)
        return 1;
    struct gen g;
    gen_init(&g, 42);
    size_t pos = 0;
    for (int i = 0; i < N_RECORDS; i++) {
        off[i] = pos;
        size_t n = gen_record(&g, text + pos, 512);
        if (n == 0)
            return 1;
        pos += n;
    }
    off[N_RECORDS] = pos;

    struct vt_record_decoder *dec = vt_record_decoder_new(NULL, "bench");
    if (!dec)
        return 1;
    struct vt_record rec;
    uint64_t records = 0, bytes = 0;
    double sink = 0;
    double t0 = bench_now(), c0 = bench_cpu(), t;
    do {
        for (int i = 0; i < N_RECORDS; i++) {
            size_t len = off[i + 1] - off[i];
            if (vt_record_decode(dec, text + off[i], len, 0, &rec) != VT_RECORD_DATA) {
                fprintf(stderr, "bench_record: record %d rejected: %s\n", i,
                        vt_record_reject_name(rec.reject));
                return 1;
            }
            sink += rec.latency_ms;
            bytes += len;
        }
        records += N_RECORDS;
        t = bench_now();
    } while (t - t0 < 2.0);
    double cpu = bench_cpu() - c0;
    if (sink < 0)
        printf("%g\n", sink);
    bench_report("decode_records_per_s", records / cpu, "records/s", ">= 1000000");
    bench_report("decode_mb_per_s", bytes / cpu / 1e6, "MB/s", NULL);
    bench_report("decode_ns_per_record", cpu * 1e9 / records, "ns", NULL);
    bench_report("record_bytes_mean", (double)pos / N_RECORDS, "bytes", NULL);
    vt_record_decoder_free(dec);
    free(text);
    free(off);
    return 0;
}
