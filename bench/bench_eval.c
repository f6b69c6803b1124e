/*
 * bench_eval.c - the score engine's evaluation tick alone, in process: the
 * store and the scores of bench_scorer's evaluation figure (10,000 series
 * svc-0..19 x 4 provider/model x pod, data in every 10 s bucket of the last
 * 5 minutes, panes built; 20 scores, 10 over svc-* and one each over
 * svc-10..19, segment_by provider+model, window 5m, p95 latency_ms,
 * error_rate, mean cost_usd), then evaluations one second apart.
 *
 * Why it exists: bench_scorer's eval_ms_10k_series_20_scores is measured in
 * the daemon, whose snapshots and expiry run meanwhile on a 2-core box, so
 * one run varies by +-40%. This one reports the CPU time of
 * vt_score_engine_evaluate only (eval_cpu_ms), a figure to compare changes
 * of the engine, the store's query side and sketch merging with, and under
 * `perf record` its profile is the evaluation's alone. It also prints a
 * checksum of every score and segment value (eval_checksum), so that a
 * change meant to be exact can be checked to be so (same checksum before
 * and after).
 *
 * It runs on the heap as started: the daemon puts its heap on transparent
 * huge pages (--huge-pages), this program only under
 * GLIBC_TUNABLES=glibc.malloc.hugetlb=1 (about a quarter less per tick on
 * the development VM: the walk's TLB misses).
 *
 * Environment: BENCH_EVAL_TICKS (default 20) evaluations to average;
 * BENCH_EVAL_NOW (epoch ms, default the clock) fixes the data's time, and
 * with it the checksum.
 */
#include "../scorer/score_config.c"
#include "../scorer/score.c"
#include "../scorer/score_acc.c"
#include "../scorer/stats.c"
#include "../scorer/batch.c"
#include "../scorer/store.c"
#include "../scorer/store_source.c"

#include <stdio.h>
#include <time.h>

#include "bench.h"
#include "gen.h"
#include "record.h"
#include "scorer_data.h"

#define N_SERIES 10000
#define WINDOWS 31

static Vitals__V1__WindowAggregate templates[SD_TEMPLATES];
static Vitals__V1__SeriesKey *keys;

static int fill(vt_store *st, int64_t cur)
{
    char id[96];
    uint64_t seq = 0;
    for (int w = WINDOWS - 1; w >= 0; w--) {
        int64_t ws = cur - (int64_t)w * 10000;
        for (uint32_t first = 0; first < N_SERIES; first += SD_SERIES_PER_BATCH, seq++) {
            snprintf(id, sizeof id, "bench/%lld/%llu", (long long)ws, (unsigned long long)seq);
            char err[256];
            static uint8_t wire[1 << 20];
            size_t n = sd_pack_batch(wire, sizeof wire, templates, keys, N_SERIES, id, seq, first, ws);
            struct vt_batch vb;
            if (n == 0) {
                fprintf(stderr, "bench_eval: batch too large\n");
                return -1;
            }
            if (vt_batch_parse(&vb, wire, n, err, sizeof err) != 0 ||
                vt_store_validate(st, &vb, err, sizeof err) != 0) {
                fprintf(stderr, "bench_eval: invalid batch: %s\n", err);
                return -1;
            }
            if (vt_store_apply(st, &vb, NULL) < 0)
                return -1;
        }
    }
    return 0;
}

/* FNV-1a over the bits of every score value, count and state. */
static uint64_t mix(uint64_t h, const void *p, size_t n)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++)
        h = (h ^ b[i]) * 1099511628211ull;
    return h;
}

static uint64_t eval_hash(uint64_t h, const struct vt_score_eval *ev, uint32_t n_comp)
{
    h = mix(h, &ev->score, sizeof ev->score);
    h = mix(h, &ev->count, sizeof ev->count);
    h = mix(h, &ev->state, sizeof ev->state);
    for (uint32_t c = 0; c < n_comp; c++) {
        const struct vt_component_result *cr = &ev->components[c];
        h = mix(h, &cr->value, sizeof cr->value);
        h = mix(h, &cr->count, sizeof cr->count);
        for (uint32_t x = 0; x < cr->n_exemplars; x++)
            h = mix(h, cr->exemplars[x], strlen(cr->exemplars[x]));
    }
    return h;
}

int main(int argc, char **argv)
{
    bench_init(argc, argv, "eval");
    int ticks = getenv("BENCH_EVAL_TICKS") ? atoi(getenv("BENCH_EVAL_TICKS")) : 20;
    if (ticks < 1)
        ticks = 1;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    int64_t now = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
    if (getenv("BENCH_EVAL_NOW")) /* epoch ms: reproducible checksums */
        now = strtoll(getenv("BENCH_EVAL_NOW"), NULL, 10);
    int64_t cur = now - now % 10000;
    keys = sd_keys(N_SERIES);
    sd_templates(templates, now);

    vt_store *st = sd_store_new(now, "bench_eval");
    if (!st)
        return 1;
    if (fill(st, cur))
        return 1;
    vt_store_expire(st, now + 1000); /* panes of the completed minutes */

    struct vt_score_config cfg;
    char err[256];
    const char *js = sd_scores_json();
    if (vt_score_config_load_buffer(js, strlen(js), &cfg, err, sizeof err)) {
        fprintf(stderr, "bench_eval: scores: %s\n", err);
        return 1;
    }
    struct vt_score_engine *e = vt_score_engine_new(&cfg);
    struct vt_store_source s;
    vt_store_source_init(&s);
    struct vt_score_source src = vt_store_source_of(&s, st);

    /* one warm-up tick (segments are created), then the measured ones */
    if (vt_score_engine_evaluate(e, &src, now + 1000)) {
        fprintf(stderr, "bench_eval: evaluate failed\n");
        return 1;
    }
    uint64_t h = 1469598103934665603ull;
    double cpu = 0, wall = 0;
    for (int t = 0; t < ticks; t++) {
        double c0 = bench_cpu(), w0 = bench_now();
        int rc = vt_score_engine_evaluate(e, &src, now + 1000 + (int64_t)(t % 5) * 1000);
        cpu += bench_cpu() - c0;
        wall += bench_now() - w0;
        if (rc) {
            fprintf(stderr, "bench_eval: evaluate failed\n");
            return 1;
        }
        if (t >= ticks - 5) /* the last 5 ticks (the 5 distinct nows) */
            for (uint32_t i = 0; i < vt_score_engine_count(e); i++) {
                const struct vt_score_result *r = vt_score_engine_result(e, i);
                h = eval_hash(h, &r->whole, r->def->n_components);
                for (uint32_t g = 0; g < r->n_segments; g++)
                    h = eval_hash(h, &r->segments[g], r->def->n_components);
            }
    }
    bench_report("eval_cpu_ms_10k_series_20_scores", cpu / ticks * 1000, "ms", "< 100");
    bench_report("eval_wall_ms_10k_series_20_scores", wall / ticks * 1000, "ms", NULL);
    if (!bench_json)
        printf("eval_checksum %016llx (compare runs with the same BENCH_EVAL_NOW)\n",
               (unsigned long long)h);
    vt_score_engine_free(e);
    vt_store_source_free(&s);
    vt_store_free(st);
    return 0;
}
