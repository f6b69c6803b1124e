/*
 * traffic.c - catalogue, generator and scenarios of vitals-loadgen (see
 * traffic.h).
 *
 * The numbers are meant to look like production LLM traffic, not to be
 * pretty: lognormal latencies per service scaled per model, time to first
 * token only for streaming services, token counts lognormal around a
 * service's typical prompt and answer, cost from a per-model price table
 * (USD per million tokens, list prices of late 2024; self-hosted models at
 * an amortised GPU cost), eval scores around a service's usual quality,
 * sparse user feedback, retrieval precision for the RAG pipelines and a
 * small embedding around a per-service centroid.
 *
 * Speed matters (the burst mode must push >= 200k records/s on one core):
 * numbers are printed by hand as fixed-point integers, never with printf,
 * and the random generator is xoshiro256**.
 */
#include "traffic.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"

/* ------------------------------------------------------------ catalogue */

struct svc {
    const char *name, *version;
    double share;               /* default traffic share */
    double latency_ms, sigma;   /* lognormal median and shape */
    double ttft_ms;             /* 0: not a streaming service, no ttft */
    double in_tokens, out_tokens;
    double relevance, relevance_sd;
    double hallucination;       /* probability */
    double retrieval, retrieval_sd; /* 0: no retrieval step */
    double feedback_p;          /* probability that a user left feedback */
    int models[3];
    double model_share[3];
};

static const struct svc services[LG_N_SERVICES] = {
    {"support-bot", "prompt-v12", 0.40, 900, 0.35, 280, 650, 180, 0.90, 0.05, 0.02, 0, 0, 0.15,
     {0, 2, 4}, {0.50, 0.35, 0.15}},
    {"legal-rag", "rag-v3", 0.20, 2400, 0.30, 0, 3200, 420, 0.88, 0.05, 0.03, 0.82, 0.08, 0.05,
     {0, 2, -1}, {0.55, 0.45, 0}},
    {"marketing-copy", "tmpl-v7", 0.15, 1600, 0.40, 350, 400, 650, 0.86, 0.06, 0.01, 0, 0, 0.25,
     {1, 3, -1}, {0.60, 0.40, 0}},
    {"doc-extract", "extract-v5", 0.25, 700, 0.30, 0, 2100, 300, 0.93, 0.03, 0.01, 0.90, 0.05, 0,
     {5, 1, -1}, {0.65, 0.35, 0}},
};

struct model {
    const char *name;
    int provider;
    double price_in, price_out; /* USD per 1M tokens */
    double speed;               /* latency factor */
};

static const char *const providers[LG_N_PROVIDERS] = {"openai", "anthropic", "self-hosted"};

static const struct model models[LG_N_MODELS] = {
    {"gpt-4o", 0, 2.50, 10.00, 1.00},
    {"gpt-4o-mini", 0, 0.15, 0.60, 0.70},
    {"claude-3-5-sonnet", 1, 3.00, 15.00, 1.10},
    {"claude-3-5-haiku", 1, 0.80, 4.00, 0.75},
    {"llama-3.1-70b", 2, 0.60, 0.60, 0.90},
    {"llama-3.1-8b", 2, 0.05, 0.05, 0.50},
};

static const char *const regions[LG_N_REGIONS] = {"us-east", "eu-west", "ap-south"};
static const double region_share[LG_N_REGIONS] = {0.50, 0.30, 0.20};
static const char *const tiers[LG_N_TIERS] = {"free", "pro", "enterprise"};
static const double tier_share[LG_N_TIERS] = {0.55, 0.35, 0.10};

static const char *const error_types[] = {"rate_limit", "timeout", "server_error",
                                          "content_filter"};

static const char *const scenario_names[LG_SCENARIO__COUNT] = {
    "latency_spike", "error_burst", "quality_drop", "cost_runaway", "embedding_drift",
    "schema_violations"};

#define BASE_ERROR_P 0.004

const char *lg_service_name(int i) { return i >= 0 && i < LG_N_SERVICES ? services[i].name : NULL; }
const char *lg_service_version(int i)
{
    return i >= 0 && i < LG_N_SERVICES ? services[i].version : NULL;
}
const char *lg_model_name(int i) { return i >= 0 && i < LG_N_MODELS ? models[i].name : NULL; }
const char *lg_model_provider(int i)
{
    return i >= 0 && i < LG_N_MODELS ? providers[models[i].provider] : NULL;
}
const char *lg_provider_name(int i) { return i >= 0 && i < LG_N_PROVIDERS ? providers[i] : NULL; }
const char *lg_region_name(int i) { return i >= 0 && i < LG_N_REGIONS ? regions[i] : NULL; }
const char *lg_tier_name(int i) { return i >= 0 && i < LG_N_TIERS ? tiers[i] : NULL; }
const char *lg_scenario_name(enum lg_scenario_type t)
{
    return (unsigned)t < LG_SCENARIO__COUNT ? scenario_names[t] : NULL;
}

static int series_index(int svc, int model, int region, int tier)
{
    return ((svc * LG_N_MODELS + model) * LG_N_REGIONS + region) * LG_N_TIERS + tier;
}

void lg_series_parts(int series, int *service, int *model, int *region, int *tier)
{
    if (tier)
        *tier = series % LG_N_TIERS;
    series /= LG_N_TIERS;
    if (region)
        *region = series % LG_N_REGIONS;
    series /= LG_N_REGIONS;
    if (model)
        *model = series % LG_N_MODELS;
    if (service)
        *service = series / LG_N_MODELS;
}

/* ------------------------------------------------------------------ rng */

static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

static uint64_t next_u64(struct lg_traffic *t)
{
    uint64_t *s = t->s;
    uint64_t r = rotl(s[1] * 5, 7) * 9, x = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= x;
    s[3] = rotl(s[3], 45);
    return r;
}

static double unit(struct lg_traffic *t) { return (double)(next_u64(t) >> 11) * 0x1.0p-53; }

static double normal(struct lg_traffic *t)
{
    double u = unit(t), v = unit(t);
    return sqrt(-2.0 * log(u > 0 ? u : 0x1.0p-53)) * cos(6.283185307179586 * v);
}

static double lognormal(struct lg_traffic *t, double median, double sigma)
{
    return median * exp(sigma * normal(t));
}

static int pick(struct lg_traffic *t, const double *share, int n)
{
    double sum = 0, r;
    for (int i = 0; i < n; i++)
        sum += share[i];
    r = unit(t) * sum;
    for (int i = 0; i < n; i++) {
        if (r < share[i])
            return i;
        r -= share[i];
    }
    for (int i = n - 1; i >= 0; i--)
        if (share[i] > 0)
            return i;
    return 0;
}

static uint64_t splitmix(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static double clamp01(double v) { return v < 0 ? 0 : v > 1 ? 1 : v; }

/* --------------------------------------------------------------- set-up */

void lg_traffic_init(struct lg_traffic *t, uint64_t seed, int64_t ts_start_ms,
                     int embedding_dims)
{
    memset(t, 0, sizeof *t);
    uint64_t x = seed;
    for (int i = 0; i < 4; i++)
        t->s[i] = splitmix(&x);
    t->seed = seed;
    t->ts_start_ms = ts_start_ms;
    t->embedding_dims = embedding_dims < 0 ? 0
                        : embedding_dims > LG_MAX_EMBEDDING ? LG_MAX_EMBEDDING
                                                            : embedding_dims;
    for (int i = 0; i < LG_N_SERVICES; i++)
        t->service_weight[i] = services[i].share;
}

static int find_name(const char *const *names, int n, const char *s, size_t len)
{
    for (int i = 0; i < n; i++)
        if (strlen(names[i]) == len && strncmp(names[i], s, len) == 0)
            return i;
    return -1;
}

static int find_service(const char *s, size_t len)
{
    for (int i = 0; i < LG_N_SERVICES; i++)
        if (strlen(services[i].name) == len && strncmp(services[i].name, s, len) == 0)
            return i;
    return -1;
}

static int find_model(const char *s, size_t len)
{
    for (int i = 0; i < LG_N_MODELS; i++)
        if (strlen(models[i].name) == len && strncmp(models[i].name, s, len) == 0)
            return i;
    return -1;
}

int lg_traffic_set_services(struct lg_traffic *t, const char *list, char *err, size_t errlen)
{
    double w[LG_N_SERVICES] = {0};
    int any = 0;
    const char *p = list;
    while (*p) {
        const char *e = strchr(p, ',');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        if (len) {
            int i = find_service(p, len);
            if (i < 0) {
                snprintf(err, errlen, "--services: unknown service '%.*s' (known: support-bot, "
                         "legal-rag, marketing-copy, doc-extract)", (int)len, p);
                return -1;
            }
            w[i] = services[i].share;
            any = 1;
        }
        p += len + (e ? 1 : 0);
    }
    if (!any) {
        snprintf(err, errlen, "--services: no service named");
        return -1;
    }
    memcpy(t->service_weight, w, sizeof w);
    return 0;
}

int lg_traffic_add_scenario(struct lg_traffic *t, const char *spec, char *err, size_t errlen)
{
    if (t->n_scenarios >= LG_MAX_SCENARIOS) {
        snprintf(err, errlen, "scenario '%s': at most %d scenarios", spec, LG_MAX_SCENARIOS);
        return -1;
    }
    struct lg_scenario sc = {.service = -1, .provider = -1, .model = -1, .region = -1,
                             .tier = -1, .duration_ms = -1};
    const char *colon = strchr(spec, ':');
    size_t tlen = colon ? (size_t)(colon - spec) : strlen(spec);
    int type = find_name(scenario_names, LG_SCENARIO__COUNT, spec, tlen);
    if (type < 0) {
        snprintf(err, errlen, "scenario '%s': unknown type '%.*s' (latency_spike, error_burst, "
                 "quality_drop, cost_runaway, embedding_drift, schema_violations)", spec,
                 (int)tlen, spec);
        return -1;
    }
    sc.type = (enum lg_scenario_type)type;
    static const double def_factor[] = {5, 1, 5, 5, 1, 1};
    static const double def_rate[] = {0, 0.3, 0, 0, 0, 0.2};
    sc.factor = def_factor[type];
    sc.rate = def_rate[type];
    sc.delta = 0.3;
    sc.shift = 0.5;
    const char *p = colon ? colon + 1 : NULL;
    while (p && *p) {
        const char *e = strchr(p, ':');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        char item[256];
        if (len >= sizeof item) {
            snprintf(err, errlen, "scenario '%s': parameter too long", spec);
            return -1;
        }
        memcpy(item, p, len);
        item[len] = 0;
        char *eq = strchr(item, '=');
        if (!eq || eq == item || !eq[1]) {
            snprintf(err, errlen, "scenario '%s': expected key=value, got '%s'", spec, item);
            return -1;
        }
        *eq = 0;
        const char *k = item, *v = eq + 1;
        size_t vl = strlen(v);
        int bad = 0;
        if (!strcmp(k, "service")) {
            bad = (sc.service = find_service(v, vl)) < 0;
        } else if (!strcmp(k, "provider")) {
            bad = (sc.provider = find_name(providers, LG_N_PROVIDERS, v, vl)) < 0;
        } else if (!strcmp(k, "model")) {
            bad = (sc.model = find_model(v, vl)) < 0;
        } else if (!strcmp(k, "region")) {
            bad = (sc.region = find_name(regions, LG_N_REGIONS, v, vl)) < 0;
        } else if (!strcmp(k, "tier")) {
            bad = (sc.tier = find_name(tiers, LG_N_TIERS, v, vl)) < 0;
        } else if (!strcmp(k, "start") || !strcmp(k, "duration")) {
            int64_t ms;
            bad = vt_parse_duration_ms(v, &ms) != 0 || ms < 0;
            if (!bad)
                *(!strcmp(k, "start") ? &sc.start_ms : &sc.duration_ms) = ms;
        } else if (!strcmp(k, "factor") || !strcmp(k, "rate") || !strcmp(k, "delta") ||
                   !strcmp(k, "shift")) {
            char *end;
            double d = strtod(v, &end);
            bad = *end || !isfinite(d) || d < 0;
            if (!strcmp(k, "rate") && d > 1)
                bad = 1;
            if (!bad)
                *(!strcmp(k, "factor") ? &sc.factor
                  : !strcmp(k, "rate") ? &sc.rate
                  : !strcmp(k, "delta") ? &sc.delta
                                        : &sc.shift) = d;
        } else {
            snprintf(err, errlen, "scenario '%s': unknown key '%s' (service, provider, model, "
                     "region, tier, start, duration, factor, rate, delta, shift)", spec, k);
            return -1;
        }
        if (bad) {
            snprintf(err, errlen, "scenario '%s': bad value for %s: '%s'", spec, k, v);
            return -1;
        }
        p += len + (e ? 1 : 0);
    }
    t->scenarios[t->n_scenarios++] = sc;
    return 0;
}

int lg_traffic_load_scenarios(struct lg_traffic *t, const char *path, char *err, size_t errlen)
{
    json_error_t je;
    json_t *root = json_load_file(path, 0, &je);
    if (!root) {
        snprintf(err, errlen, "%s:%d: %s", path, je.line, je.text);
        return -1;
    }
    json_t *arr = json_object_get(root, "scenarios");
    int rc = 0;
    if (!json_is_array(arr)) {
        snprintf(err, errlen, "%s: expected {\"scenarios\": [...]}", path);
        rc = -1;
    }
    size_t i;
    json_t *sc;
    json_array_foreach(rc ? NULL : arr, i, sc) {
        char spec[1024], e2[512];
        size_t o = 0;
        json_t *type = json_object_get(sc, "type");
        if (!json_is_string(type)) {
            snprintf(err, errlen, "%s: scenarios[%zu].type: expected a string", path, i);
            rc = -1;
            break;
        }
        o += (size_t)snprintf(spec, sizeof spec, "%s", json_string_value(type));
        const char *k;
        json_t *v;
        json_object_foreach(sc, k, v) {
            if (!strcmp(k, "type") || !strcmp(k, "description") || o >= sizeof spec)
                continue;
            if (json_is_string(v))
                o += (size_t)snprintf(spec + o, sizeof spec - o, ":%s=%s", k, json_string_value(v));
            else if (json_is_number(v))
                o += (size_t)snprintf(spec + o, sizeof spec - o, ":%s=%.17g", k,
                                      json_number_value(v));
            else
                o += (size_t)snprintf(spec + o, sizeof spec - o, ":%s=?", k);
        }
        if (o >= sizeof spec || lg_traffic_add_scenario(t, spec, e2, sizeof e2)) {
            snprintf(err, errlen, "%s: scenarios[%zu]: %s", path, i,
                     o >= sizeof spec ? "too long" : e2);
            rc = -1;
            break;
        }
    }
    json_decref(root);
    return rc;
}

int lg_scenario_active(const struct lg_scenario *s, int64_t vt_ms)
{
    return vt_ms >= s->start_ms && (s->duration_ms < 0 || vt_ms < s->start_ms + s->duration_ms);
}

/* ------------------------------------------------------------- printing */

static char *put_str(char *p, const char *s)
{
    size_t n = strlen(s);
    memcpy(p, s, n);
    return p + n;
}

static char *put_u64(char *p, uint64_t v)
{
    char tmp[24];
    int n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    while (n)
        *p++ = tmp[--n];
    return p;
}

/* v with exactly d decimals (d <= 8), by integer arithmetic: |v| < 1e10. */
static char *put_fixed(char *p, double v, int d)
{
    static const uint64_t p10[] = {1, 10, 100, 1000, 10000, 100000, 1000000, 10000000,
                                   100000000};
    if (!(v == v))
        v = 0;
    if (v < 0) {
        *p++ = '-';
        v = -v;
    }
    if (v > 1e10)
        v = 1e10; /* keeps the scaled value inside uint64 */
    uint64_t scaled = (uint64_t)(v * (double)p10[d] + 0.5);
    p = put_u64(p, scaled / p10[d]);
    if (d) {
        uint64_t f = scaled % p10[d];
        *p++ = '.';
        for (int k = d - 1; k >= 0; k--) {
            p[k] = (char)('0' + f % 10);
            f /= 10;
        }
        p += d;
    }
    return p;
}

/* --------------------------------------------------------------- record */

enum bad_kind { BAD_NONE = -1, BAD_TYPE, BAD_STATUS, BAD_RANGE, BAD_TRUNCATED, BAD_NONFINITE, BAD__N };

static int matches(const struct lg_scenario *s, int svc, int model, int region, int tier)
{
    return (s->service < 0 || s->service == svc) && (s->model < 0 || s->model == model) &&
           (s->provider < 0 || s->provider == models[model].provider) &&
           (s->region < 0 || s->region == region) && (s->tier < 0 || s->tier == tier);
}

/* Per-service embedding centroid component k: fixed, in [-0.5, 0.5]. */
static double centroid(int svc, int k)
{
    uint64_t x = (uint64_t)svc * 1000003u + (uint64_t)k * 7919u + 12345;
    return (double)(splitmix(&x) % 2001) / 2000.0 - 0.5;
}

size_t lg_traffic_record(struct lg_traffic *t, uint64_t n, int64_t vt_ms, char *buf,
                         size_t cap, struct lg_sent *sent)
{
    if (cap < LG_RECORD_MAX + 1)
        return 0;
    int svc = pick(t, t->service_weight, LG_N_SERVICES);
    const struct svc *S = &services[svc];
    int nm = S->models[2] >= 0 ? 3 : 2;
    int model = S->models[pick(t, S->model_share, nm)];
    const struct model *M = &models[model];
    int region = pick(t, region_share, LG_N_REGIONS);
    int tier = pick(t, tier_share, LG_N_TIERS);

    /* scenario effects */
    double lat_f = 1, cost_f = 1, err_p = BASE_ERROR_P, q_delta = 0, hall_f = 1, shift = 0,
           bad_p = 0;
    int quality_hit = 0;
    for (int i = 0; i < t->n_scenarios; i++) {
        const struct lg_scenario *s = &t->scenarios[i];
        if (!lg_scenario_active(s, vt_ms) || !matches(s, svc, model, region, tier))
            continue;
        switch (s->type) {
        case LG_LATENCY_SPIKE: lat_f *= s->factor; break;
        case LG_ERROR_BURST: err_p = err_p > s->rate ? err_p : s->rate; break;
        case LG_QUALITY_DROP:
            q_delta += s->delta;
            hall_f *= s->factor;
            quality_hit = 1;
            break;
        case LG_COST_RUNAWAY: cost_f *= s->factor; break;
        case LG_EMBEDDING_DRIFT: shift += s->shift; break;
        case LG_SCHEMA_VIOLATIONS: bad_p = bad_p > s->rate ? bad_p : s->rate; break;
        case LG_SCENARIO__COUNT: break;
        }
    }

    /* draw everything first, in a fixed order, so the stream of random
     * numbers per record does not depend on which branch prints what */
    int is_error = unit(t) < err_p;
    int etype = (int)(next_u64(t) % 4);
    double latency = lognormal(t, S->latency_ms * M->speed, S->sigma) * lat_f;
    double ttft = S->ttft_ms > 0 ? lognormal(t, S->ttft_ms * M->speed, 0.3) * lat_f : 0;
    if (ttft > latency)
        ttft = latency * 0.9;
    double in_tok = floor(lognormal(t, S->in_tokens, 0.5));
    double out_tok = floor(lognormal(t, S->out_tokens, 0.6) * cost_f);
    double relevance = clamp01(S->relevance - q_delta + S->relevance_sd * normal(t));
    double hall_p = S->hallucination * hall_f;
    int hallucinated = unit(t) < (hall_p > 1 ? 1 : hall_p);
    double retrieval =
        S->retrieval > 0 ? clamp01(S->retrieval - q_delta + S->retrieval_sd * normal(t)) : -1;
    int has_feedback = unit(t) < S->feedback_p;
    int thumbs_up = unit(t) < clamp01(relevance - (quality_hit ? 0.2 : 0.05));
    double bad_roll = unit(t);
    int bad = bad_p > 0 && bad_roll < bad_p ? (int)(next_u64(t) % BAD__N) : BAD_NONE;
    if (is_error) {
        if (etype == 1) /* timeout: the client gave up at 30 s */
            latency = 30000 + 50 * unit(t);
        else if (lat_f == 1)
            latency *= 0.2;
        out_tok = 0;
    }
    if (latency > 600000)
        latency = 600000;
    double cost = (in_tok * M->price_in + out_tok * M->price_out) * 1e-6;

    char *p = buf;
    p = put_str(p, "{\"ts\":");
    p = put_u64(p, (uint64_t)(t->ts_start_ms + vt_ms));
    p = put_str(p, ",\"service\":\"");
    p = put_str(p, S->name);
    p = put_str(p, "\",\"model\":\"");
    p = put_str(p, M->name);
    p = put_str(p, "\",\"provider\":\"");
    p = put_str(p, providers[M->provider]);
    p = put_str(p, "\",\"version\":\"");
    p = put_str(p, S->version);
    if (bad == BAD_TYPE) {
        p = put_str(p, "\",\"latency_ms\":\"");
        p = put_fixed(p, latency, 1);
        p = put_str(p, "\"");
    } else {
        p = put_str(p, "\",\"latency_ms\":");
        p = put_fixed(p, latency, 1);
    }
    if (ttft > 0 && !is_error) {
        p = put_str(p, ",\"ttft_ms\":");
        p = put_fixed(p, ttft, 1);
    }
    p = put_str(p, bad == BAD_STATUS ? ",\"status\":\"OK\"" : is_error ? ",\"status\":\"error\""
                                                                      : ",\"status\":\"ok\"");
    if (is_error) {
        p = put_str(p, ",\"error_type\":\"");
        p = put_str(p, error_types[etype]);
        p = put_str(p, "\"");
    }
    p = put_str(p, ",\"input_tokens\":");
    p = put_u64(p, (uint64_t)in_tok);
    p = put_str(p, ",\"output_tokens\":");
    p = put_u64(p, (uint64_t)out_tok);
    p = put_str(p, bad == BAD_RANGE ? ",\"cost_usd\":-" : ",\"cost_usd\":");
    p = put_fixed(p, cost, 6);
    if (!is_error) {
        p = put_str(p, ",\"metrics\":{");
        if (has_feedback) {
            p = put_str(p, "\"feedback\":");
            *p++ = thumbs_up ? '1' : '0';
            *p++ = ',';
        }
        p = put_str(p, "\"hallucination\":");
        *p++ = hallucinated ? '1' : '0';
        if (bad == BAD_NONFINITE) {
            p = put_str(p, ",\"relevance\":NaN");
        } else {
            p = put_str(p, ",\"relevance\":");
            p = put_fixed(p, relevance, 2);
        }
        if (retrieval >= 0) {
            p = put_str(p, ",\"retrieval_precision\":");
            p = put_fixed(p, retrieval, 2);
        }
        *p++ = '}';
    } else if (bad == BAD_NONFINITE) {
        p = put_str(p, ",\"metrics\":{\"relevance\":NaN}");
    }
    p = put_str(p, ",\"labels\":{\"region\":\"");
    p = put_str(p, regions[region]);
    p = put_str(p, "\",\"tier\":\"");
    p = put_str(p, tiers[tier]);
    p = put_str(p, "\"}");
    if (t->embedding_dims > 0) {
        p = put_str(p, ",\"embedding\":[");
        for (int k = 0; k < t->embedding_dims; k++) {
            /* uniform noise: the centroid is what drift statistics watch */
            double v = centroid(svc, k) + shift + 0.6 * (unit(t) - 0.5);
            if (k)
                *p++ = ',';
            p = put_fixed(p, v, 4);
        }
        *p++ = ']';
    }
    p = put_str(p, ",\"request_id\":\"lg");
    p = put_u64(p, t->seed);
    *p++ = '-';
    p = put_u64(p, n);
    p = put_str(p, "\"}");
    size_t len = (size_t)(p - buf);
    if (bad == BAD_TRUNCATED)
        len /= 2; /* a torn line: never a complete JSON object */
    buf[len++] = '\n';
    if (sent) {
        sent->series = series_index(svc, model, region, tier);
        sent->invalid = bad != BAD_NONE;
        sent->error = is_error;
    }
    return len;
}
