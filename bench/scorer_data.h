/*
 * scorer_data.h - the scorer benchmarks' data, in one place so that
 * bench_scorer (the daemon) and bench_eval (the engine in process) measure
 * the very same thing: batches of 10 series x 8 sketches built from
 * bench/gen.h records (30 records per aggregate), series keys svc-0..19 x 4
 * provider/model x one pod label each, and 20 scores (10 over svc-*, one each
 * over svc-10..19; segment_by provider+model, window 5m, p95 latency_ms,
 * error_rate, mean cost_usd).
 *
 * Header-only (static functions). Needs gen.h, record.h, aggregate.h.
 */
#ifndef VT_BENCH_SCORER_DATA_H
#define VT_BENCH_SCORER_DATA_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aggregate.h"
#include "gen.h"
#include "record.h"

#define SD_SERIES_PER_BATCH 10
#define SD_TEMPLATES 64

/* SD_TEMPLATES aggregates of 30 records each, 5 fixed + 3 metric sketches. */
static inline void sd_templates(Vitals__V1__WindowAggregate t[SD_TEMPLATES], int64_t now_ms)
{
    struct gen g;
    gen_init(&g, 42);
    struct vt_record_decoder *dec = vt_record_decoder_new(NULL, "bench");
    struct vt_record rec;
    char line[2048];
    for (int i = 0; i < SD_TEMPLATES; i++) {
        struct vt_aggregate a;
        vt_aggregate_init(&a);
        for (int r = 0; r < 30; r++) {
            size_t n = gen_record(&g, line, sizeof line);
            if (vt_record_decode(dec, line, n, now_ms, &rec) == VT_RECORD_DATA)
                vt_aggregate_add(&a, &rec);
        }
        vt_aggregate_to_proto(&a, &t[i]);
        if (t[i].n_metrics > 3)
            t[i].n_metrics = 3;
        t[i].window_ms = 10000;
        vt_aggregate_free(&a);
    }
    vt_record_decoder_free(dec);
}

/* n series keys (calloc'ed; kept for the life of the program). */
static inline Vitals__V1__SeriesKey *sd_keys(uint32_t n)
{
    static const char *models[] = {"gpt-4o", "claude-sonnet-4", "llama-3.1-70b", "gpt-4o-mini"};
    static const char *providers[] = {"openai", "anthropic", "self-hosted", "openai"};
    Vitals__V1__SeriesKey *keys = calloc(n, sizeof *keys);
    for (uint32_t i = 0; i < n; i++) {
        Vitals__V1__SeriesKey *k = &keys[i];
        vitals__v1__series_key__init(k);
        char buf[64];
        snprintf(buf, sizeof buf, "svc-%u", i % 20);
        k->service = strdup(buf);
        k->model = (char *)models[(i / 20) % 4];
        k->provider = (char *)providers[(i / 20) % 4];
        k->version = "v1";
        Vitals__V1__Label *l = malloc(sizeof *l);
        vitals__v1__label__init(l);
        l->key = "pod";
        snprintf(buf, sizeof buf, "pod-%05u", i);
        l->value = strdup(buf);
        k->labels = malloc(sizeof *k->labels);
        k->labels[0] = l;
        k->n_labels = 1;
    }
    return keys;
}

/* Batch number `seq` with id `id`: series [first, first + 10) mod n_keys,
 * window ws, templates in turn. Returns its packed size, 0 if > cap. */
static inline size_t sd_pack_batch(uint8_t *buf, size_t cap, const Vitals__V1__WindowAggregate *t,
                                   Vitals__V1__SeriesKey *keys, uint32_t n_keys, const char *id,
                                   uint64_t seq, uint32_t first, int64_t ws)
{
    Vitals__V1__Batch b = VITALS__V1__BATCH__INIT;
    Vitals__V1__WindowAggregate aggs[SD_SERIES_PER_BATCH], *ptrs[SD_SERIES_PER_BATCH];
    b.schema_version = 1;
    b.agent_id = "bench";
    b.batch_id = (char *)id;
    b.window_start_ms = ws;
    b.spool_first = seq * 100 + 1;
    b.spool_last = seq * 100 + 100;
    for (int i = 0; i < SD_SERIES_PER_BATCH; i++) {
        aggs[i] = t[(seq * SD_SERIES_PER_BATCH + (uint64_t)i) % SD_TEMPLATES];
        aggs[i].series = &keys[(first + (uint32_t)i) % n_keys];
        aggs[i].window_start_ms = ws;
        ptrs[i] = &aggs[i];
        b.records += aggs[i].count;
    }
    b.aggregates = ptrs;
    b.n_aggregates = SD_SERIES_PER_BATCH;
    if (vitals__v1__batch__get_packed_size(&b) > cap)
        return 0;
    return vitals__v1__batch__pack(&b, buf);
}

/* The 20 scores as a score file (a static buffer). */
static inline const char *sd_scores_json(void)
{
    static char buf[16384];
    size_t n = (size_t)snprintf(buf, sizeof buf, "{\"version\": 1, \"scores\": [");
    for (int i = 0; i < 20; i++) {
        char svc[32];
        snprintf(svc, sizeof svc, i < 10 ? "svc-*" : "svc-%d", i);
        n += (size_t)snprintf(
            buf + n, sizeof buf - n,
            "%s{\"name\": \"score_%d\", \"selector\": {\"service\": \"%s\"}, "
            "\"segment_by\": [\"provider\", \"model\"], \"window\": \"5m\", \"components\": ["
            "{\"name\": \"latency\", \"metric\": \"latency_ms\", \"stat\": \"p95\", \"weight\": 0.4, "
            "\"good\": 1000, \"bad\": 5000},"
            "{\"name\": \"errors\", \"stat\": \"error_rate\", \"weight\": 0.3, \"good\": 0.01, "
            "\"bad\": 0.1},"
            "{\"name\": \"cost\", \"metric\": \"cost_usd\", \"stat\": \"mean\", \"weight\": 0.3, "
            "\"good\": 0.002, \"bad\": 0.02}]}",
            i ? "," : "", i, svc);
    }
    snprintf(buf + n, sizeof buf - n, "]}\n");
    return buf;
}

#ifdef VT_SCORER_STORE_H /* the in-process benches, which build a store */
/* A store with the default retention, its clock at now; NULL on error
 * (said on stderr, for `who`). */
static inline vt_store *sd_store_new(int64_t now, const char *who)
{
    struct vt_store_opts o = {0};
    char err[256] = "out of memory";
    vt_store *st = NULL;
    if (vt_store_parse_retention(VT_STORE_DEFAULT_RETENTION, &o, err, sizeof err) ||
        vt_store_new(&st, &o)) {
        fprintf(stderr, "%s: store: %s\n", who, err);
        return NULL;
    }
    vt_store_expire(st, now);
    return st;
}
#endif

#endif
