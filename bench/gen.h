/*
 * gen.h - deterministic generator of realistic NDJSON records (DESIGN §3),
 * shared by benchmarks and tests so that every figure is measured on the same
 * kind of input: ~330-byte records with a handful of services, models and
 * cohorts, lognormal latencies, token counts, costs, eval scores and a
 * 3-dimensional embedding, printed compactly as SDK encoders do. Values carry the precision real SDKs print
 * (latency to 0.1 ms, cost to 1e-6 USD, scores to 0.01), which is what makes
 * the text compressible in the spool.
 *
 * Header-only. Usage:
 *   struct gen g; gen_init(&g, seed);
 *   size_t n = gen_record(&g, buf, sizeof buf);  // one line, no '\n'
 */
#ifndef VT_BENCH_GEN_H
#define VT_BENCH_GEN_H

#include <math.h>
#include <stdint.h>
#include <stdio.h>

struct gen {
    uint64_t s;
    int64_t ts;
    uint64_t n;
    const char *service; /* NULL: four services in turn; else this one (one pod's view) */
};

static inline void gen_init(struct gen *g, uint64_t seed)
{
    g->s = seed * 0x9e3779b97f4a7c15ull + 1;
    g->ts = 1764288000000;
    g->n = 0;
    g->service = NULL;
}

static inline uint64_t gen_u64(struct gen *g)
{
    g->s ^= g->s >> 12;
    g->s ^= g->s << 25;
    g->s ^= g->s >> 27;
    return g->s * 2685821657736338717ull;
}

/* Uniform in (0, 1). */
static inline double gen_unit(struct gen *g)
{
    return ((gen_u64(g) >> 11) + 0.5) / 9007199254740992.0;
}

static inline double gen_normal(struct gen *g)
{
    return sqrt(-2 * log(gen_unit(g))) * cos(6.283185307179586 * gen_unit(g));
}

/* Writes one record (no newline) and returns its length, or 0 if cap is too small. */
static inline size_t gen_record(struct gen *g, char *buf, size_t cap)
{
    static const char *services[] = {"support-bot", "legal-rag", "marketing-copy", "doc-extract"};
    static const char *models[] = {"gpt-4o", "claude-sonnet-4", "llama-3.1-70b", "gpt-4o-mini"};
    static const char *providers[] = {"openai", "anthropic", "self-hosted", "openai"};
    static const char *regions[] = {"eu", "us", "apac"};
    static const char *tiers[] = {"gold", "silver", "free"};
    int m = (int)(gen_u64(g) % 4);
    double latency = exp(6.5 + 0.5 * gen_normal(g));
    int error = gen_u64(g) % 50 == 0;
    unsigned in_tok = 100 + (unsigned)(gen_u64(g) % 1500);
    unsigned out_tok = 20 + (unsigned)(gen_u64(g) % 400);
    g->ts += (int64_t)(gen_u64(g) % 3);
    g->n++;
    int n = snprintf(buf, cap,
        "{\"ts\":%lld,\"service\":\"%s\",\"model\":\"%s\",\"provider\":\"%s\","
        "\"version\":\"prompt-v%d\",\"latency_ms\":%.1f,\"ttft_ms\":%.1f,"
        "\"status\":\"%s\"%s,\"input_tokens\":%u,\"output_tokens\":%u,"
        "\"cost_usd\":%.6f,\"metrics\":{\"relevance\":%.2f,\"hallucination\":%d,"
        "\"feedback\":%d},\"labels\":{\"region\":\"%s\",\"tier\":\"%s\"},"
        "\"embedding\":[%.2f,%.2f,%.2f],\"request_id\":\"r-%llu\"}",
        (long long)g->ts, g->service ? (gen_u64(g), g->service) : services[gen_u64(g) % 4],
        models[m], providers[m],
        10 + (int)(gen_u64(g) % 3), latency, latency * (0.1 + 0.1 * gen_unit(g)),
        error ? "error" : "ok", error ? ",\"error_type\":\"timeout\"" : "", in_tok, out_tok,
        (in_tok * 2.5 + out_tok * 10) * 1e-6, 0.6 + 0.4 * gen_unit(g),
        gen_u64(g) % 20 == 0, (int)(gen_u64(g) % 3) - 1,
        regions[gen_u64(g) % 3], tiers[gen_u64(g) % 3],
        gen_normal(g) * 0.3, gen_normal(g) * 0.3, gen_normal(g) * 0.3,
        (unsigned long long)g->n);
    return n > 0 && (size_t)n < cap ? (size_t)n : 0;
}

#endif
