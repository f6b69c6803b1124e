/*
 * traffic.h - the synthetic LLM traffic of vitals-loadgen: a fixed catalogue
 * of services, providers, models and cohorts, a deterministic generator of
 * one NDJSON record per call, and incident scenarios that bend the
 * generator for a while (latency spike, error burst, quality drop, cost
 * runaway, embedding drift, schema violations).
 *
 * Why it exists apart from main.c: the generator is a pure function of
 * (seed, record number, virtual time), so it can be reasoned about, tested
 * and benchmarked without sockets; main.c only paces and writes.
 *
 * Memory: a struct lg_traffic is caller-owned and holds no heap memory;
 * lg_traffic_record() writes into a caller-provided buffer. No globals.
 */
#ifndef LG_TRAFFIC_H
#define LG_TRAFFIC_H

#include <stddef.h>
#include <stdint.h>

#define LG_N_SERVICES 4
#define LG_N_MODELS 6
#define LG_N_PROVIDERS 3
#define LG_N_REGIONS 3
#define LG_N_TIERS 3
#define LG_N_SERIES (LG_N_SERVICES * LG_N_MODELS * LG_N_REGIONS * LG_N_TIERS)
#define LG_MAX_SCENARIOS 32
#define LG_MAX_EMBEDDING 256
#define LG_RECORD_MAX 8192 /* a record never exceeds this (plus '\n') */

enum lg_scenario_type {
    LG_LATENCY_SPIKE = 0, /* latency and ttft x factor (default 5) */
    LG_ERROR_BURST,       /* error probability = rate (default 0.3) */
    LG_QUALITY_DROP,      /* relevance - delta (0.3), hallucination x factor (5), worse feedback */
    LG_COST_RUNAWAY,      /* output tokens (hence cost) x factor (default 5) */
    LG_EMBEDDING_DRIFT,   /* embedding centroid moves by shift (default 0.5) per dimension */
    LG_SCHEMA_VIOLATIONS, /* share `rate` (default 0.2) of records are invalid */
    LG_SCENARIO__COUNT
};

/* One scenario; a NULL-equivalent (-1) matcher matches anything. Times are
 * relative to the start of the run (virtual time, see lg_traffic_record). */
struct lg_scenario {
    enum lg_scenario_type type;
    int service, provider, model, region, tier; /* catalogue index or -1 */
    int64_t start_ms;
    int64_t duration_ms;                        /* -1 = until the end */
    double factor, rate, delta, shift;
};

/* What one record was: for the per-series summary. */
struct lg_sent {
    int series;   /* index in [0, LG_N_SERIES) */
    int invalid;  /* 1: a deliberately invalid record (schema violation) */
    int error;    /* 1: status "error" */
};

struct lg_traffic {
    uint64_t s[4];                  /* xoshiro256** state */
    uint64_t seed;
    int64_t ts_start_ms;            /* ts of virtual time 0 (epoch ms) */
    int embedding_dims;             /* 0..LG_MAX_EMBEDDING */
    double service_weight[LG_N_SERVICES]; /* 0 = service disabled */
    struct lg_scenario scenarios[LG_MAX_SCENARIOS];
    int n_scenarios;
};

/* Catalogue names (stable: they appear in records, summaries and the demo's
 * score file). Index out of range -> NULL. */
const char *lg_service_name(int i);
const char *lg_service_version(int i);
const char *lg_model_name(int i);
const char *lg_model_provider(int i); /* provider name of model i */
const char *lg_provider_name(int i);
const char *lg_region_name(int i);
const char *lg_tier_name(int i);
const char *lg_scenario_name(enum lg_scenario_type t);

/* Series index -> its parts (each pointer may be NULL). */
void lg_series_parts(int series, int *service, int *model, int *region, int *tier);

/* Initialise: every service enabled with its default traffic share. */
void lg_traffic_init(struct lg_traffic *t, uint64_t seed, int64_t ts_start_ms,
                     int embedding_dims);

/* Enable only the comma-separated services in `list` ("support-bot,legal-rag").
 * Returns 0, or -1 with err naming the unknown service. */
int lg_traffic_set_services(struct lg_traffic *t, const char *list, char *err, size_t errlen);

/* Parse "latency_spike:provider=anthropic:start=60s:duration=120s:factor=4"
 * and append it. Keys: service, provider, model, region, tier, start,
 * duration (durations: 250ms, 30s, 5m, 1h), factor, rate, delta, shift.
 * Returns 0, or -1 with err saying what is wrong. */
int lg_traffic_add_scenario(struct lg_traffic *t, const char *spec, char *err, size_t errlen);

/* Load {"scenarios": [{"type": "latency_spike", "provider": "anthropic",
 * "start": "30s", "duration": "90s", "factor": 5}, ...]} and append each.
 * Returns 0 or -1 with err naming the file and the entry. */
int lg_traffic_load_scenarios(struct lg_traffic *t, const char *path, char *err,
                              size_t errlen);

/* Is scenario i active at virtual time vt_ms? */
int lg_scenario_active(const struct lg_scenario *s, int64_t vt_ms);

/* Write record number `n` (0-based) generated at virtual time vt_ms into buf
 * (cap >= LG_RECORD_MAX + 1), terminated by '\n'. Returns its length
 * including the newline. The output depends only on the seed, the records
 * generated before it and vt_ms: a run is reproducible with the same seed
 * and rate. */
size_t lg_traffic_record(struct lg_traffic *t, uint64_t n, int64_t vt_ms, char *buf,
                         size_t cap, struct lg_sent *sent);

#endif
