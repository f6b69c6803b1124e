/*
 * test_score.c - the score engine against values computed by hand:
 * every statistic, normalisation both ways, each combine mode, missing
 * components and coverage, hysteresis + `for` with a hand-driven clock,
 * segments and masked flags, selectors, exemplars, JSON shape, history,
 * reload; and the golden test (tests/unit/data/golden_*: NDJSON records ->
 * decoder -> aggregates -> engine -> the committed expected table).
 */
#include "../../scorer/score_config.c"
#include "../../scorer/score.c"
#include "../../scorer/score_acc.c"
#include "../../scorer/score_json.c"
#include "../../scorer/stats.c"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <cmocka.h>

#include "series.h"

/* ------------------------------------------------------------ test store */

struct item {
    char key[1024];
    size_t len;
    int64_t ts;                      /* bucket start (10 s rollups) */
    struct vt_aggregate agg;
};

struct store {
    struct item *items;
    int n, cap;
    struct vt_record_decoder *dec;
    int64_t now;                     /* arrival time for records without ts */
    int visits;
    struct vt_agg_reads reads[4];    /* what the engine said each pass reads */
    int passes;
};

static void store_init(struct store *s)
{
    memset(s, 0, sizeof *s);
    s->dec = vt_record_decoder_new(NULL, NULL);
    assert_non_null(s->dec);
}

static void store_free(struct store *s)
{
    for (int i = 0; i < s->n; i++)
        vt_aggregate_free(&s->items[i].agg);
    free(s->items);
    vt_record_decoder_free(s->dec);
}

static void store_clear(struct store *s)
{
    for (int i = 0; i < s->n; i++)
        vt_aggregate_free(&s->items[i].agg);
    s->n = 0;
}

static struct item *store_item(struct store *s, const char *key, size_t len, int64_t ts)
{
    ts -= ((ts % 10000) + 10000) % 10000;
    for (int i = 0; i < s->n; i++)
        if (s->items[i].ts == ts && s->items[i].len == len && memcmp(s->items[i].key, key, len) == 0)
            return &s->items[i];
    if (s->n == s->cap) {
        s->cap = s->cap ? s->cap * 2 : 16;
        s->items = realloc(s->items, (size_t)s->cap * sizeof *s->items);
        assert_non_null(s->items);
    }
    struct item *it = &s->items[s->n++];
    memcpy(it->key, key, len);
    it->len = len;
    it->ts = ts;
    vt_aggregate_init(&it->agg);
    return it;
}

/* Decode one NDJSON line and fold it in; rejected lines count as invalid on
 * the series of the fields decoded before the problem. Returns the kind. */
static int store_line(struct store *s, const char *line, size_t len)
{
    struct vt_record rec;
    int kind = vt_record_decode(s->dec, line, len, s->now, &rec);
    if (kind != VT_RECORD_DATA && kind != VT_RECORD_REJECTED)
        return kind;
    char key[1024];
    size_t klen = vt_series_key_from_record(&rec, key, sizeof key);
    assert_true(klen > 0);
    struct item *it = store_item(s, key, klen, rec.ts_ms ? rec.ts_ms : s->now);
    if (kind == VT_RECORD_DATA)
        assert_int_equal(vt_aggregate_add(&it->agg, &rec), 0);
    else
        vt_aggregate_add_invalid(&it->agg, rec.reject);
    return kind;
}

static void rec(struct store *s, const char *fmt, ...)
{
    char line[4096];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    assert_int_equal(store_line(s, line, (size_t)n), VT_RECORD_DATA);
}

static int store_each(void *ctx, int64_t from, int64_t to, const struct vt_agg_reads *reads,
                      vt_score_visit_fn fn, void *arg)
{
    struct store *s = ctx;
    if (s->passes < 4)
        s->reads[s->passes] = *reads;
    s->passes++;
    for (int i = 0; i < s->n; i++)
        if (s->items[i].ts >= from && s->items[i].ts < to) {
            s->visits++;
            fn(arg, s->items[i].key, s->items[i].len, &s->items[i].agg);
        }
    return 0;
}

static struct vt_score_engine *engine_from(const char *json)
{
    struct vt_score_config cfg;
    char err[2048];
    int rc = vt_score_config_load_buffer(json, strlen(json), &cfg, err, sizeof err);
    if (rc)
        fail_msg("config: %s", err);
    struct vt_score_engine *e = vt_score_engine_new(&cfg);
    assert_non_null(e);
    assert_int_equal(cfg.n_scores, 0); /* taken over */
    return e;
}

static const struct vt_score_result *eval(struct vt_score_engine *e, struct store *s, int64_t now)
{
    struct vt_score_source src = {.ctx = s, .each = store_each};
    assert_int_equal(vt_score_engine_evaluate(e, &src, now), 0);
    return vt_score_engine_result(e, 0);
}

#define NEAR(a, b, tol) assert_true(fabs((double)(a) - (double)(b)) <= (tol))
#define T0 1764288000000LL

/* ----------------------------------------------------------- statistics */

static void t_normalize(void **st)
{
    (void)st;
    /* higher is better: good 0.9, bad 0.6 */
    NEAR(vt_score_normalize(0.75, 0.9, 0.6), 0.5, 1e-12);
    NEAR(vt_score_normalize(0.9, 0.9, 0.6), 1, 0);
    NEAR(vt_score_normalize(0.6, 0.9, 0.6), 0, 0);
    NEAR(vt_score_normalize(0.99, 0.9, 0.6), 1, 0);     /* clamped */
    NEAR(vt_score_normalize(0.1, 0.9, 0.6), 0, 0);
    /* lower is better: good 1000, bad 5000 */
    NEAR(vt_score_normalize(2000, 1000, 5000), 0.75, 1e-12);
    NEAR(vt_score_normalize(500, 1000, 5000), 1, 0);
    NEAR(vt_score_normalize(9000, 1000, 5000), 0, 0);
    assert_true(isnan(vt_score_normalize(NAN, 1, 0)));
    NEAR(vt_score_normalize(INFINITY, 1000, 5000), 0, 0);
}

static struct vt_score_component_def comp(enum vt_stat s, const char *metric)
{
    return (struct vt_score_component_def){.name = "c", .stat = s, .metric = (char *)metric,
                                           .weight = 1, .good = 1, .bad = 0, .min_count = 1};
}

static double cstat(const struct vt_score_component_def *c, const struct vt_aggregate *a,
                   const struct vt_aggregate *b, uint64_t *n, enum vt_missing *m)
{
    return vt_score_stat(c, a, b, 60000, n, m);
}

static void t_stats(void **st)
{
    (void)st;
    struct store s;
    store_init(&s);
    s.now = T0;
    /* 10 records: latency 100..1000, 2 errors, relevance on 8, one without latency */
    for (int i = 1; i <= 10; i++)
        rec(&s, "{\"ts\":%lld,\"service\":\"b\",\"latency_ms\":%d,\"status\":\"%s\",\"request_id\":\"r%d\""
                "%s}", T0, i * 100, i == 3 || i == 7 ? "error" : "ok", i,
            i <= 8 ? ",\"metrics\":{\"relevance\":0.5}" : "");
    rec(&s, "{\"ts\":%lld,\"service\":\"b\",\"metrics\":{\"relevance\":1}}", T0);
    assert_int_equal(store_line(&s, "{\"service\":\"b\",\"latency_ms\":-5}", 32), VT_RECORD_REJECTED);
    assert_int_equal(store_line(&s, "{\"service\":\"b\",\"latency_ms\":\"x\"}", 33), VT_RECORD_REJECTED);
    /* all into one aggregate */
    struct vt_aggregate a;
    vt_aggregate_init(&a);
    for (int i = 0; i < s.n; i++)
        vt_aggregate_merge(&a, &s.items[i].agg);
    assert_int_equal(a.count, 11);

    uint64_t n;
    enum vt_missing m;
    struct vt_score_component_def c = comp(VT_STAT_COUNT, NULL);
    NEAR(cstat(&c, &a, NULL, &n, &m), 11, 0);
    assert_int_equal(m, VT_MISSING_NONE);
    c = comp(VT_STAT_COUNT, "relevance");
    NEAR(cstat(&c, &a, NULL, &n, &m), 9, 0);
    c = comp(VT_STAT_RATE, NULL);
    NEAR(cstat(&c, &a, NULL, &n, &m), 11.0 / 60, 1e-12);    /* window 60 s */
    c = comp(VT_STAT_ERROR_RATE, NULL);
    NEAR(cstat(&c, &a, NULL, &n, &m), 2.0 / 11, 1e-12);
    assert_int_equal(n, 11);
    c = comp(VT_STAT_MEAN, "latency_ms");
    NEAR(cstat(&c, &a, NULL, &n, &m), 550, 1e-9);
    assert_int_equal(n, 10);
    c = comp(VT_STAT_SUM, "latency_ms");
    NEAR(cstat(&c, &a, NULL, &n, &m), 5500, 1e-9);
    c = comp(VT_STAT_MIN, "latency_ms");
    NEAR(cstat(&c, &a, NULL, &n, &m), 100, 0);
    c = comp(VT_STAT_MAX, "latency_ms");
    NEAR(cstat(&c, &a, NULL, &n, &m), 1000, 0);
    c = comp(VT_STAT_MEAN, "relevance");
    NEAR(cstat(&c, &a, NULL, &n, &m), (8 * 0.5 + 1) / 9, 1e-12);
    /* p50: rank 0.5*9 = 4.5 -> 5th value (500) within the sketch bound */
    c = comp(VT_STAT_QUANTILE, "latency_ms");
    c.q = 0.5;
    NEAR(cstat(&c, &a, NULL, &n, &m), 500, 500 * 0.0055);
    c.q = 0.9; /* rank 8.1 -> 9th value, 900 */
    NEAR(cstat(&c, &a, NULL, &n, &m), 900, 900 * 0.0055);
    c.q = 1;
    NEAR(cstat(&c, &a, NULL, &n, &m), 1000, 0);
    /* frac above/below at a bound between values: exact */
    c = comp(VT_STAT_FRAC_ABOVE, "latency_ms");
    c.bound = 750;
    NEAR(cstat(&c, &a, NULL, &n, &m), 0.3, 1e-12);
    c = comp(VT_STAT_FRAC_BELOW, "latency_ms");
    c.bound = 750;
    NEAR(cstat(&c, &a, NULL, &n, &m), 0.7, 1e-12);
    /* invalid: 2 / (11 + 2) */
    c = comp(VT_STAT_INVALID_RATE, NULL);
    NEAR(cstat(&c, &a, NULL, &n, &m), 2.0 / 13, 1e-12);
    assert_int_equal(n, 13);
    /* missing latency: 1 of 11; missing metrics: 2 of 11 */
    c = comp(VT_STAT_MISSING_RATE, NULL);
    c.field = "latency_ms";
    NEAR(cstat(&c, &a, NULL, &n, &m), 1.0 / 11, 1e-12);
    c.field = "metrics";
    NEAR(cstat(&c, &a, NULL, &n, &m), 2.0 / 11, 1e-12);
    /* min_count: latency has 10 values */
    c = comp(VT_STAT_MEAN, "latency_ms");
    c.min_count = 11;
    cstat(&c, &a, NULL, &n, &m);
    assert_int_equal(m, VT_MISSING_MIN_COUNT);
    c.min_count = 10;
    cstat(&c, &a, NULL, &n, &m);
    assert_int_equal(m, VT_MISSING_NONE);
    /* unknown metric -> missing; count of a traffic stat never missing */
    c = comp(VT_STAT_MEAN, "nope");
    assert_true(isnan(cstat(&c, &a, NULL, &n, &m)));
    assert_int_equal(m, VT_MISSING_MIN_COUNT);
    struct vt_aggregate empty;
    vt_aggregate_init(&empty);
    c = comp(VT_STAT_RATE, NULL);
    c.min_count = 100;
    NEAR(cstat(&c, &empty, NULL, &n, &m), 0, 0);
    assert_int_equal(m, VT_MISSING_NONE);
    c = comp(VT_STAT_ERROR_RATE, NULL);
    c.min_count = 0;
    assert_true(isnan(cstat(&c, &empty, NULL, &n, &m)));
    assert_int_equal(m, VT_MISSING_MIN_COUNT);
    vt_aggregate_free(&a);
    store_free(&s);
}

static void fill(vt_sketch *s, double v, int n)
{
    assert_int_equal(vt_sketch_add_n(s, v, (uint64_t)n), 0);
}

static void t_drift(void **st)
{
    (void)st;
    vt_sketch base, cur, same;
    vt_sketch_init_default(&base);
    vt_sketch_init_default(&cur);
    vt_sketch_init_default(&same);
    /* baseline: 100 each of 2^1 .. 2^10 -> cuts at its deciles, 0.1 per bin */
    for (int k = 1; k <= 10; k++) {
        fill(&base, ldexp(1, k), 100);
        fill(&same, ldexp(1, k), 37);
    }
    /* current: half at 2, half at 1024 -> shares [.5, 0 x 8, .5] */
    fill(&cur, 2, 500);
    fill(&cur, 1024, 500);

    double S = 1 + 8e-4; /* smoothing: empty bins become 1e-4, then renormalise */
    double a_end = 0.5 / S, a_mid = 1e-4 / S, e = 0.1;
    double psi = 2 * (a_end - e) * log(a_end / e) + 8 * (a_mid - e) * log(a_mid / e);
    NEAR(vt_score_psi(&cur, &base), psi, 1e-9);
    double js = 0;
    double m_end = (a_end + e) / 2, m_mid = (a_mid + e) / 2;
    js += 2 * (0.5 * a_end * log2(a_end / m_end) + 0.5 * e * log2(e / m_end));
    js += 8 * (0.5 * a_mid * log2(a_mid / m_mid) + 0.5 * e * log2(e / m_mid));
    NEAR(vt_score_js(&cur, &base), sqrt(js), 1e-9);
    /* same shape, other count -> 0 */
    NEAR(vt_score_psi(&same, &base), 0, 1e-12);
    NEAR(vt_score_js(&same, &base), 0, 1e-6);
    /* disjoint -> JS close to 1 */
    vt_sketch far;
    vt_sketch_init_default(&far);
    fill(&far, 1e6, 1000);
    /* all current mass in the top decile bin: the baseline's 10% there caps JS below 1 */
    double S9 = 1 + 9e-4, fa = 1 / S9, fm = 1e-4 / S9;
    double jsx = 0.5 * fa * log2(fa / ((fa + e) / 2)) + 0.5 * e * log2(e / ((fa + e) / 2)) +
                 9 * (0.5 * fm * log2(fm / ((fm + e) / 2)) + 0.5 * e * log2(e / ((fm + e) / 2)));
    double jsf = vt_score_js(&far, &base);
    NEAR(jsf, sqrt(jsx), 1e-9);
    assert_true(jsf > 0.8 && jsf <= 1.0);
    assert_true(vt_score_psi(&far, &base) > 5);
    vt_sketch empty;
    vt_sketch_init_default(&empty);
    assert_true(isnan(vt_score_psi(&empty, &base)));
    assert_true(isnan(vt_score_js(&cur, &empty)));

    /* through vt_score_stat, with min_count on both sides */
    struct vt_aggregate ca, ba;
    vt_aggregate_init(&ca);
    vt_aggregate_init(&ba);
    vt_sketch_copy(&ca.latency_ms, &cur);
    vt_sketch_copy(&ba.latency_ms, &base);
    struct vt_score_component_def c = comp(VT_STAT_PSI, "latency_ms");
    c.has_baseline = true;
    c.min_count = 1000;
    uint64_t n;
    enum vt_missing m;
    NEAR(cstat(&c, &ca, &ba, &n, &m), psi, 1e-9);
    assert_int_equal(m, VT_MISSING_NONE);
    c.min_count = 1001; /* current has 1000 */
    cstat(&c, &ca, &ba, &n, &m);
    assert_int_equal(m, VT_MISSING_MIN_COUNT);
    c.min_count = 1000;
    c.stat = VT_STAT_JS;
    cstat(&c, &ba, &ca, &n, &m); /* baseline side has 1000, current 1000 */
    assert_int_equal(m, VT_MISSING_NONE);
    cstat(&c, &ca, NULL, &n, &m);
    assert_int_equal(m, VT_MISSING_NO_BASELINE);

    /* centroid distance: baseline centroid (0,0), current centroid (3,4) */
    struct store s;
    store_init(&s);
    s.now = T0;
    rec(&s, "{\"service\":\"b\",\"embedding\":[1,1]}");
    rec(&s, "{\"service\":\"b\",\"embedding\":[-1,-1]}");
    struct vt_aggregate b2, c2;
    vt_aggregate_init(&b2);
    vt_aggregate_init(&c2);
    vt_aggregate_merge(&b2, &s.items[0].agg);
    store_clear(&s);
    rec(&s, "{\"service\":\"b\",\"embedding\":[2,4]}");
    rec(&s, "{\"service\":\"b\",\"embedding\":[4,4]}");
    vt_aggregate_merge(&c2, &s.items[0].agg);
    c = comp(VT_STAT_CENTROID_DISTANCE, NULL);
    c.has_baseline = true;
    NEAR(cstat(&c, &c2, &b2, &n, &m), 5, 1e-12);
    assert_int_equal(n, 2);
    c.min_count = 3;
    cstat(&c, &c2, &b2, &n, &m);
    assert_int_equal(m, VT_MISSING_MIN_COUNT);
    /* dimension mismatch -> undefined */
    store_clear(&s);
    rec(&s, "{\"service\":\"b\",\"embedding\":[1,2,3]}");
    struct vt_aggregate d3;
    vt_aggregate_init(&d3);
    vt_aggregate_merge(&d3, &s.items[0].agg);
    c.min_count = 1;
    assert_true(isnan(cstat(&c, &d3, &b2, &n, &m)));
    assert_int_equal(m, VT_MISSING_UNDEFINED);

    vt_aggregate_free(&d3);
    vt_aggregate_free(&b2);
    vt_aggregate_free(&c2);
    vt_aggregate_free(&ca);
    vt_aggregate_free(&ba);
    store_free(&s);
    vt_sketch_free(&base);
    vt_sketch_free(&cur);
    vt_sketch_free(&same);
    vt_sketch_free(&far);
}

/* ------------------------------------------------------------- combining */

static const char *THREE =
    "{\"version\":1,\"scores\":[{\"name\":\"s\",\"selector\":{\"service\":\"b\"},\"window\":\"1m\","
    "\"combine\":\"%s\",\"min_count\":1,\"for\":\"0s\",\"components\":["
    "{\"name\":\"x\",\"metric\":\"x\",\"stat\":\"mean\",\"weight\":0.5,\"good\":1,\"bad\":0},"
    "{\"name\":\"y\",\"metric\":\"y\",\"stat\":\"mean\",\"weight\":0.3,\"good\":1,\"bad\":0},"
    "{\"name\":\"z\",\"metric\":\"z\",\"stat\":\"mean\",\"weight\":0.2,\"good\":0,\"bad\":10}]}]}";

static struct vt_score_engine *three(const char *combine)
{
    char buf[2048];
    snprintf(buf, sizeof buf, THREE, combine);
    return engine_from(buf);
}

static void t_combine(void **st)
{
    (void)st;
    struct store s;
    store_init(&s);
    /* normalized: x 0.9, y 0.5, z: value 8 on [good 0, bad 10] -> 0.2 */
    rec(&s, "{\"ts\":%lld,\"service\":\"b\",\"metrics\":{\"x\":0.9,\"y\":0.5,\"z\":8}}", T0 - 5000);

    struct vt_score_engine *e = three("weighted_mean");
    const struct vt_score_result *r = eval(e, &s, T0);
    NEAR(r->whole.score, 0.5 * 0.9 + 0.3 * 0.5 + 0.2 * 0.2, 1e-12);
    NEAR(r->whole.components[0].contribution, 0.45, 1e-12);
    NEAR(r->whole.components[1].contribution, 0.15, 1e-12);
    NEAR(r->whole.components[2].contribution, 0.04, 1e-12);
    NEAR(r->whole.components[2].value, 8, 1e-12);
    NEAR(r->whole.components[2].normalized, 0.2, 1e-12);
    NEAR(r->whole.coverage, 1, 1e-12);
    /* detractor: w(1-n) = .05, .15, .16 -> z */
    assert_int_equal(r->whole.detractor, 2);
    assert_int_equal(r->whole.state, VT_SCORE_WARNING); /* 0.64: < .8, >= .6 */
    vt_score_engine_free(e);

    e = three("weighted_geometric");
    r = eval(e, &s, T0);
    NEAR(r->whole.score, pow(0.9, 0.5) * pow(0.5, 0.3) * pow(0.2, 0.2), 1e-12);
    NEAR(r->whole.components[1].contribution, pow(0.5, 0.3), 1e-12);
    NEAR(r->whole.components[0].contribution * r->whole.components[1].contribution *
             r->whole.components[2].contribution, r->whole.score, 1e-12);
    assert_int_equal(r->whole.detractor, 2);
    vt_score_engine_free(e);

    e = three("min");
    r = eval(e, &s, T0);
    NEAR(r->whole.score, 0.2, 1e-12);
    NEAR(r->whole.components[2].contribution, 0.2, 1e-12);
    NEAR(r->whole.components[0].contribution, 0, 0);
    assert_int_equal(r->whole.detractor, 2);
    assert_int_equal(r->whole.state, VT_SCORE_CRITICAL);
    vt_score_engine_free(e);

    /* a zero component zeroes the geometric mean; the weighted mean is not */
    store_clear(&s);
    rec(&s, "{\"ts\":%lld,\"service\":\"b\",\"metrics\":{\"x\":0.9,\"y\":0.5,\"z\":12}}", T0 - 5000);
    e = three("weighted_geometric");
    r = eval(e, &s, T0);
    NEAR(r->whole.score, 0, 0);
    NEAR(r->whole.components[2].normalized, 0, 0);
    vt_score_engine_free(e);
    e = three("weighted_mean");
    r = eval(e, &s, T0);
    NEAR(r->whole.score, 0.6, 1e-12);
    vt_score_engine_free(e);
    store_free(&s);
}

static void t_missing_coverage(void **st)
{
    (void)st;
    struct store s;
    store_init(&s);
    /* z absent: weights renormalise over x and y (0.5, 0.3 -> 0.625, 0.375) */
    rec(&s, "{\"ts\":%lld,\"service\":\"b\",\"metrics\":{\"x\":0.9,\"y\":0.5}}", T0 - 5000);
    struct vt_score_engine *e = three("weighted_mean");
    const struct vt_score_result *r = eval(e, &s, T0);
    NEAR(r->whole.coverage, 0.8, 1e-12);
    assert_int_equal(r->whole.components[2].missing, VT_MISSING_MIN_COUNT);
    assert_true(isnan(r->whole.components[2].normalized));
    NEAR(r->whole.components[2].weight, 0, 0);
    NEAR(r->whole.components[0].weight, 0.625, 1e-12);
    NEAR(r->whole.components[1].weight, 0.375, 1e-12);
    NEAR(r->whole.score, 0.625 * 0.9 + 0.375 * 0.5, 1e-12);
    /* nothing at all -> null score, no_data */
    store_clear(&s);
    r = eval(e, &s, T0 + 1000);
    assert_true(isnan(r->whole.score));
    assert_int_equal(r->whole.state, VT_SCORE_NO_DATA);
    NEAR(r->whole.coverage, 0, 0);
    assert_int_equal(r->whole.detractor, -1);
    /* data outside the window is not read */
    rec(&s, "{\"ts\":%lld,\"service\":\"b\",\"metrics\":{\"x\":0.9}}", T0 - 70000);
    r = eval(e, &s, T0);
    assert_int_equal(r->whole.state, VT_SCORE_NO_DATA);
    assert_int_equal(r->whole.count, 0);
    vt_score_engine_free(e);
    store_free(&s);
}

/* ----------------------------------------------------------------- states */

static void set_x(struct store *s, double x)
{
    store_clear(s);
    rec(s, "{\"ts\":%lld,\"service\":\"b\",\"metrics\":{\"x\":%.17g}}", T0, x);
}

static const struct vt_score_result *at(struct vt_score_engine *e, struct store *s, double x,
                                        int64_t sec)
{
    set_x(s, x);
    return eval(e, s, T0 + 5000 + sec * 1000);
}

static void t_states(void **st)
{
    (void)st;
    struct store s;
    store_init(&s);
    struct vt_score_engine *e = engine_from(
        "{\"version\":1,\"scores\":[{\"name\":\"s\",\"selector\":{\"service\":\"b\"},\"window\":\"10m\","
        "\"min_count\":1,\"for\":\"1m\",\"hysteresis\":0.02,\"thresholds\":{\"warning\":0.8,\"critical\":0.6},"
        "\"components\":[{\"name\":\"x\",\"metric\":\"x\",\"stat\":\"mean\",\"weight\":1,\"good\":1,\"bad\":0}]}]}");
    const struct vt_score_result *r;
    r = at(e, &s, 0.9, 0);
    assert_int_equal(r->whole.state, VT_SCORE_OK);           /* from no_data: immediate */
    r = at(e, &s, 0.7, 10);
    assert_int_equal(r->whole.state, VT_SCORE_OK);
    assert_int_equal(r->whole.pending, VT_SCORE_WARNING);
    r = at(e, &s, 0.7, 40);
    assert_int_equal(r->whole.state, VT_SCORE_OK);
    r = at(e, &s, 0.7, 69);
    assert_int_equal(r->whole.state, VT_SCORE_OK);           /* 59 s < for */
    r = at(e, &s, 0.7, 70);
    assert_int_equal(r->whole.state, VT_SCORE_WARNING);      /* held 60 s */
    assert_int_equal(r->whole.pending, VT_SCORE_WARNING);
    assert_int_equal(r->whole.state_since_ms, T0 + 5000 + 70000);
    /* recovery needs warning + hysteresis = 0.82 */
    r = at(e, &s, 0.81, 80);
    assert_int_equal(r->whole.pending, VT_SCORE_WARNING);    /* nothing pending */
    r = at(e, &s, 0.83, 90);
    assert_int_equal(r->whole.pending, VT_SCORE_OK);
    r = at(e, &s, 0.79, 100);                                 /* condition broken */
    assert_int_equal(r->whole.pending, VT_SCORE_WARNING);
    r = at(e, &s, 0.83, 110);
    r = at(e, &s, 0.83, 169);
    assert_int_equal(r->whole.state, VT_SCORE_WARNING);
    r = at(e, &s, 0.83, 170);
    assert_int_equal(r->whole.state, VT_SCORE_OK);
    /* flapping around 0.8 never leaves ok for long enough */
    for (int t = 180; t < 400; t += 10) {
        r = at(e, &s, (t / 10) % 2 ? 0.79 : 0.81, t);
        assert_int_equal(r->whole.state, VT_SCORE_OK);
    }
    /* ok -> critical; a dip to warning keeps the pending clock (same direction) */
    r = at(e, &s, 0.5, 400);
    assert_int_equal(r->whole.pending, VT_SCORE_CRITICAL);
    r = at(e, &s, 0.65, 430);
    assert_int_equal(r->whole.pending, VT_SCORE_WARNING);
    /* the clock started at 390 (0.79 in the flapping loop): same direction since */
    assert_int_equal(r->whole.pending_since_ms, T0 + 5000 + 390000);
    r = at(e, &s, 0.5, 460);
    assert_int_equal(r->whole.state, VT_SCORE_CRITICAL);
    /* critical -> warning needs critical + h = 0.62 */
    r = at(e, &s, 0.61, 470);
    assert_int_equal(r->whole.pending, VT_SCORE_CRITICAL);
    r = at(e, &s, 0.9, 480);                                  /* straight to ok */
    assert_int_equal(r->whole.pending, VT_SCORE_OK);
    r = at(e, &s, 0.9, 540);
    assert_int_equal(r->whole.state, VT_SCORE_OK);
    /* no data: immediate */
    store_clear(&s);
    r = eval(e, &s, T0 + 5000 + 550000);
    assert_int_equal(r->whole.state, VT_SCORE_NO_DATA);

    /* history: every evaluation above, oldest first */
    struct vt_score_point pts[VT_SCORE_HISTORY];
    size_t n = vt_score_engine_history(e, 0, 0, INT64_MAX, pts, VT_SCORE_HISTORY);
    assert_int_equal(n, 11 + 22 + 6 + 1);
    assert_int_equal(pts[0].ts_ms, T0 + 5000);
    NEAR(pts[0].score, 0.9, 1e-12);
    assert_true(isnan(pts[n - 1].score));
    n = vt_score_engine_history(e, 0, T0 + 5000 + 70000, T0 + 5000 + 90000, pts, VT_SCORE_HISTORY);
    assert_int_equal(n, 2);
    assert_int_equal(pts[0].state, VT_SCORE_WARNING);
    assert_int_equal(vt_score_engine_history(e, 0, 0, INT64_MAX, pts, 3), 3);
    assert_int_equal(vt_score_engine_history(e, 7, 0, INT64_MAX, pts, 3), 0);

    /* reload keeps the whole score's state and history by name */
    r = at(e, &s, 0.5, 555);
    assert_int_equal(r->whole.state, VT_SCORE_CRITICAL); /* from no_data: immediate */
    struct vt_score_config cfg;
    char err[512];
    const char *j2 = "{\"version\":1,\"scores\":[{\"name\":\"s\",\"selector\":{\"service\":\"b\"},\"window\":\"10m\","
                     "\"min_count\":1,\"components\":[{\"name\":\"x\",\"metric\":\"x\",\"stat\":\"mean\",\"weight\":1,"
                     "\"good\":1,\"bad\":0}]}]}";
    assert_int_equal(vt_score_config_load_buffer(j2, strlen(j2), &cfg, err, sizeof err), 0);
    assert_int_equal(vt_score_engine_set_config(e, &cfg), 0);
    r = at(e, &s, 0.9, 570);
    assert_int_equal(r->whole.state, VT_SCORE_CRITICAL);   /* recovery pending, for = 1m */
    assert_int_equal(r->whole.pending, VT_SCORE_OK);
    assert_int_equal(vt_score_engine_history(e, 0, 0, INT64_MAX, pts, VT_SCORE_HISTORY), 11 + 22 + 6 + 1 + 2);
    assert_string_equal(vt_score_engine_config(e)->version, r->config_version);
    vt_score_engine_free(e);

    /* ring wraps at VT_SCORE_HISTORY */
    e = engine_from(j2);
    set_x(&s, 0.9);
    for (int i = 0; i < VT_SCORE_HISTORY + 5; i++)
        eval(e, &s, T0 + 5000 + i);
    n = vt_score_engine_history(e, 0, 0, INT64_MAX, pts, VT_SCORE_HISTORY);
    assert_int_equal(n, VT_SCORE_HISTORY);
    assert_int_equal(pts[0].ts_ms, T0 + 5000 + 5);
    assert_int_equal(pts[n - 1].ts_ms, T0 + 5000 + VT_SCORE_HISTORY + 4);
    vt_score_engine_free(e);
    store_free(&s);
}

/* ------------------------------------------- segments, selector, exemplars */

static void t_segments(void **st)
{
    (void)st;
    struct store s;
    store_init(&s);
    /* openai: 90 good calls; anthropic: 8 slow; local: 2 slow (2%: too small to mask) */
    for (int i = 0; i < 90; i++)
        rec(&s, "{\"ts\":%lld,\"service\":\"b\",\"provider\":\"openai\",\"model\":\"m1\",\"latency_ms\":1000}", T0 - 1000);
    for (int i = 0; i < 8; i++)
        rec(&s, "{\"ts\":%lld,\"service\":\"b\",\"provider\":\"anthropic\",\"model\":\"m2\",\"latency_ms\":4000,"
                "\"labels\":{\"region\":\"eu\"}}", T0 - 1000);
    for (int i = 0; i < 2; i++)
        rec(&s, "{\"ts\":%lld,\"service\":\"b\",\"provider\":\"local\",\"latency_ms\":5000}", T0 - 1000);
    rec(&s, "{\"ts\":%lld,\"service\":\"other\",\"provider\":\"openai\",\"latency_ms\":9000}", T0 - 1000);
    struct vt_score_engine *e = engine_from(
        "{\"version\":1,\"scores\":[{\"name\":\"s\",\"selector\":{\"service\":\"b\"},\"window\":\"1m\","
        "\"segment_by\":[\"provider\",\"region\"],\"min_count\":1,"
        "\"components\":[{\"name\":\"lat\",\"metric\":\"latency_ms\",\"stat\":\"mean\",\"weight\":1,\"good\":1000,\"bad\":5000}]}]}");
    const struct vt_score_result *r = eval(e, &s, T0);
    /* whole: mean = (90*1000 + 8*4000 + 2*5000)/100 = 1320 -> 1 - 320/4000 = 0.92 */
    assert_int_equal(r->whole.count, 100);
    NEAR(r->whole.components[0].value, 1320, 1e-9);
    NEAR(r->whole.score, 0.92, 1e-12);
    assert_int_equal(r->n_segments, 3);
    /* sorted by labels: anthropic/eu, local/"", openai/"" */
    assert_string_equal(r->segments[0].labels[0], "anthropic");
    assert_string_equal(r->segments[0].labels[1], "eu");
    assert_string_equal(r->segments[1].labels[0], "local");
    assert_string_equal(r->segments[1].labels[1], "");
    assert_string_equal(r->segments[2].labels[0], "openai");
    NEAR(r->segments[0].score, 0.25, 1e-12);
    NEAR(r->segments[0].share, 0.08, 1e-12);
    assert_true(r->segments[0].masked);
    NEAR(r->segments[1].score, 0, 1e-12);
    assert_false(r->segments[1].masked);   /* 2% < masked_min_share */
    NEAR(r->segments[2].score, 1, 1e-12);
    assert_false(r->segments[2].masked);
    assert_int_equal(r->segments[0].state, VT_SCORE_CRITICAL);
    assert_int_equal(r->segments[2].state, VT_SCORE_OK);

    /* JSON of DESIGN §7 */
    json_t *j = vt_score_result_to_json(r, VT_SCORE_JSON_SEGMENTS);
    assert_non_null(j);
    const char *top[] = {"name", "mode", "window", "evaluated_at", "score", "state", "coverage",
                         "count", "config_version", "components", "detractor", "segments"};
    for (size_t i = 0; i < sizeof top / sizeof *top; i++)
        if (!json_object_get(j, top[i]))
            fail_msg("missing %s", top[i]);
    assert_string_equal(json_string_value(json_object_get(j, "config_version")),
                        vt_score_engine_config(e)->version);
    assert_string_equal(json_string_value(json_object_get(j, "state")), "ok");
    assert_string_equal(json_string_value(json_object_get(j, "mode")), "live");
    json_t *c0 = json_array_get(json_object_get(j, "components"), 0);
    const char *cf[] = {"name", "stat", "value", "normalized", "weight", "contribution"};
    for (size_t i = 0; i < sizeof cf / sizeof *cf; i++)
        assert_non_null(json_object_get(c0, cf[i]));
    NEAR(json_real_value(json_object_get(c0, "value")), 1320, 1e-9);
    json_t *s0 = json_array_get(json_object_get(j, "segments"), 0);
    assert_string_equal(json_string_value(json_object_get(json_object_get(s0, "labels"), "provider")), "anthropic");
    assert_string_equal(json_string_value(json_object_get(json_object_get(s0, "labels"), "region")), "eu");
    assert_true(json_is_true(json_object_get(s0, "masked")));
    for (size_t i = 4; i < 11; i++)
        if (!json_object_get(s0, top[i]))
            fail_msg("segment misses %s", top[i]);
    json_decref(j);
    j = vt_score_result_to_json(r, 0);
    assert_null(json_object_get(j, "segments"));
    json_decref(j);

    /* a segment that gets no data is no longer listed */
    store_clear(&s);
    rec(&s, "{\"ts\":%lld,\"service\":\"b\",\"provider\":\"openai\",\"latency_ms\":1000}", T0 + 10000);
    r = eval(e, &s, T0 + 20000);
    assert_int_equal(r->n_segments, 1);
    assert_string_equal(r->segments[0].labels[0], "openai");
    vt_score_engine_free(e);
    store_free(&s);
}

static void t_selector_exemplars(void **st)
{
    (void)st;
    struct store s;
    store_init(&s);
    rec(&s, "{\"ts\":%lld,\"service\":\"bot-eu\",\"model\":\"gpt-4o\",\"latency_ms\":100,\"labels\":{\"tier\":\"gold\"},\"request_id\":\"a\"}", T0 - 1);
    rec(&s, "{\"ts\":%lld,\"service\":\"bot-us\",\"model\":\"gpt-4o\",\"latency_ms\":900,\"labels\":{\"tier\":\"gold\"},\"request_id\":\"b\"}", T0 - 1);
    rec(&s, "{\"ts\":%lld,\"service\":\"bot-us\",\"model\":\"gpt-4o\",\"latency_ms\":500,\"status\":\"error\",\"labels\":{\"tier\":\"gold\"},\"request_id\":\"c\"}", T0 - 1);
    rec(&s, "{\"ts\":%lld,\"service\":\"bot-us\",\"model\":\"gpt-4o-mini\",\"latency_ms\":50,\"labels\":{\"tier\":\"gold\"}}", T0 - 1);
    rec(&s, "{\"ts\":%lld,\"service\":\"bot-us\",\"model\":\"gpt-4o\",\"latency_ms\":50,\"labels\":{\"tier\":\"free\"}}", T0 - 1);
    rec(&s, "{\"ts\":%lld,\"service\":\"bot-us\",\"model\":\"gpt-4o\",\"latency_ms\":50}", T0 - 1);
    rec(&s, "{\"ts\":%lld,\"service\":\"bot\",\"model\":\"gpt-4o\",\"latency_ms\":50,\"labels\":{\"tier\":\"gold\"}}", T0 - 1);
    struct vt_score_engine *e = engine_from(
        "{\"version\":1,\"scores\":["
        "{\"name\":\"glob\",\"selector\":{\"service\":\"bot-*\",\"model\":\"gpt-4o\",\"labels\":{\"tier\":\"gold\"}},"
        "\"window\":\"1m\",\"min_count\":1,\"components\":["
        "{\"name\":\"lat\",\"metric\":\"latency_ms\",\"stat\":\"max\",\"weight\":1,\"good\":0,\"bad\":1000},"
        "{\"name\":\"err\",\"stat\":\"error_rate\",\"weight\":1,\"good\":0,\"bad\":1},"
        "{\"name\":\"n\",\"stat\":\"count\",\"weight\":1,\"good\":10,\"bad\":0}]},"
        "{\"name\":\"exact\",\"selector\":{\"service\":\"bot\"},\"window\":\"1m\",\"min_count\":1,\"mode\":\"shadow\","
        "\"components\":[{\"name\":\"n\",\"stat\":\"count\",\"weight\":1,\"good\":10,\"bad\":0}]}]}");
    struct vt_score_source src = {.ctx = &s, .each = store_each};
    assert_int_equal(vt_score_engine_evaluate(e, &src, T0), 0);
    assert_int_equal(s.visits, s.n); /* both scores share one pass over the store */
    const struct vt_score_result *r = vt_score_engine_find(e, "glob");
    assert_int_equal(r->whole.count, 3);                  /* a, b, c */
    NEAR(r->whole.components[0].value, 900, 0);
    NEAR(r->whole.components[1].value, 1.0 / 3, 1e-12);
    assert_int_equal(r->whole.components[0].n_exemplars, 2); /* slowest first */
    assert_string_equal(r->whole.components[0].exemplars[0], "b");
    assert_string_equal(r->whole.components[0].exemplars[1], "a");
    assert_int_equal(r->whole.components[1].n_exemplars, 1);
    assert_string_equal(r->whole.components[1].exemplars[0], "c");
    assert_int_equal(r->whole.components[2].n_exemplars, 0);
    json_t *j = vt_score_result_to_json(r, 0);
    json_t *x = json_object_get(json_array_get(json_object_get(j, "components"), 1), "exemplars");
    assert_string_equal(json_string_value(json_array_get(x, 0)), "c");
    json_decref(j);
    r = vt_score_engine_find(e, "exact");
    assert_int_equal(r->whole.count, 1);
    assert_null(vt_score_engine_find(e, "nope"));
    j = vt_score_result_to_json(r, 0);
    assert_string_equal(json_string_value(json_object_get(j, "mode")), "shadow");
    assert_true(json_is_false(json_object_get(j, "alerting")));
    json_decref(j);
    assert_null(vt_score_engine_result(e, 2));
    vt_score_engine_free(e);
    store_free(&s);
}

static int failing_each(void *ctx, int64_t from, int64_t to, const struct vt_agg_reads *reads,
                        vt_score_visit_fn fn, void *arg)
{
    (void)ctx, (void)from, (void)to, (void)reads, (void)fn, (void)arg;
    return -EIO;
}

static void t_baseline_pass(void **st)
{
    (void)st;
    /* A JS component reads the baseline range [now-1d-7d, now-1d); segments get baselines too. */
    struct store s;
    store_init(&s);
    int64_t now = T0;
    for (int i = 0; i < 100; i++) {
        rec(&s, "{\"ts\":%lld,\"service\":\"b\",\"provider\":\"p\",\"latency_ms\":%d}", now - 2 * 86400000LL, 100 + i);
        rec(&s, "{\"ts\":%lld,\"service\":\"b\",\"provider\":\"p\",\"latency_ms\":%d}", now - 1000, 100 + i);
    }
    struct vt_score_engine *e = engine_from(
        "{\"version\":1,\"scores\":[{\"name\":\"d\",\"selector\":{\"service\":\"b\"},\"window\":\"5m\","
        "\"segment_by\":[\"provider\"],\"components\":["
        "{\"name\":\"js\",\"metric\":\"latency_ms\",\"stat\":\"js\",\"weight\":1,\"good\":0,\"bad\":0.5}]}]}");
    const struct vt_score_result *r = eval(e, &s, now);
    assert_int_equal(r->whole.components[0].missing, VT_MISSING_NONE);
    NEAR(r->whole.components[0].value, 0, 1e-6);
    NEAR(r->whole.score, 1, 1e-5);
    assert_int_equal(r->n_segments, 1);
    NEAR(r->segments[0].score, 1, 1e-5);
    /* 9 days later the baseline range is empty: no_baseline */
    store_clear(&s);
    for (int i = 0; i < 30; i++)
        rec(&s, "{\"ts\":%lld,\"service\":\"b\",\"provider\":\"p\",\"latency_ms\":100}", now - 1000);
    r = eval(e, &s, now);
    assert_int_equal(r->whole.components[0].missing, VT_MISSING_NO_BASELINE);
    assert_int_equal(r->whole.state, VT_SCORE_NO_DATA);
    /* a failing source aborts the evaluation */
    struct vt_score_source bad = {.ctx = NULL, .each = failing_each};
    assert_int_equal(vt_score_engine_evaluate(e, &bad, now), -EIO);
    vt_score_engine_free(e);
    store_free(&s);
}

/* What each pass tells the source it reads: the union over the scores that
 * share the pass, and no more (the store fetches just those lines ahead). */
static void t_pass_reads(void **st)
{
    (void)st;
    struct store s;
    store_init(&s);
    int64_t now = T0;
    rec(&s, "{\"ts\":%lld,\"service\":\"r\",\"latency_ms\":10,\"input_tokens\":5}", now - 1000);
    struct vt_score_engine *e = engine_from(
        "{\"version\":1,\"scores\":["
        "{\"name\":\"a\",\"selector\":{\"service\":\"r\"},\"window\":\"5m\",\"components\":["
        "{\"name\":\"t\",\"metric\":\"input_tokens\",\"stat\":\"p95\",\"weight\":1,\"good\":1,\"bad\":9},"
        "{\"name\":\"c\",\"metric\":\"cost_usd\",\"stat\":\"mean\",\"weight\":1,\"good\":1,\"bad\":9}]},"
        "{\"name\":\"b\",\"selector\":{\"service\":\"x\"},\"window\":\"5m\",\"components\":["
        "{\"name\":\"q\",\"stat\":\"invalid_rate\",\"weight\":1,\"good\":0,\"bad\":1}]},"
        "{\"name\":\"c\",\"selector\":{\"service\":\"r\"},\"window\":\"1m\",\"components\":["
        "{\"name\":\"m\",\"metric\":\"relevance\",\"stat\":\"mean\",\"weight\":1,\"good\":1,\"bad\":0},"
        "{\"name\":\"l\",\"metric\":\"latency_ms\",\"stat\":\"max\",\"weight\":1,\"good\":1,\"bad\":9}]}]}");
    eval(e, &s, now);
    assert_int_equal(s.passes, 2); /* 5m (a, b) and 1m (c) */
    const struct vt_agg_reads *r = &s.reads[0];
    assert_int_equal(r->fixed, 1u << 2 | 1u << 4); /* input_tokens, cost_usd */
    assert_int_equal(r->buckets, 1u << 2);         /* p95 reads its counters, a mean none */
    assert_true(r->quality);                       /* b's invalid_rate */
    assert_false(r->metrics);
    assert_false(r->exemplars);
    assert_false(r->embedding);
    r = &s.reads[1];
    assert_int_equal(r->fixed, 1u << 0); /* max of latency: totals only */
    assert_int_equal(r->buckets, 0);
    assert_true(r->metrics);             /* relevance */
    assert_true(r->exemplars);           /* a latency component shows exemplars */
    assert_false(r->quality);
    vt_score_engine_free(e);
    store_free(&s);
}

/* ------------------------------------------------------------------ golden */

static void t_golden(void **st)
{
    (void)st;
    struct store s;
    store_init(&s);
    FILE *f = fopen("unit/data/golden_records.ndjson", "r");
    assert_non_null(f);
    char line[8192];
    int64_t now = 0;
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, "#now ", 5) == 0) {
            now = strtoll(line + 5, NULL, 10);
            s.now = now;
            continue;
        }
        store_line(&s, line, strlen(line));
    }
    fclose(f);
    assert_true(now > 0);

    struct vt_score_config cfg;
    char err[2048];
    if (vt_score_config_load_file("unit/data/golden_scores.json", &cfg, err, sizeof err))
        fail_msg("%s", err);
    struct vt_score_engine *e = vt_score_engine_new(&cfg);
    struct vt_score_source src = {.ctx = &s, .each = store_each};
    assert_int_equal(vt_score_engine_evaluate(e, &src, now), 0);

    /* expected: score \t segment \t component \t field \t value \t tol */
    f = fopen("unit/data/golden_expected.tsv", "r");
    assert_non_null(f);
    int rows = 0, bad = 0;
    while (fgets(line, sizeof line, f)) {
        if (line[0] == '#' || line[0] == '\n')
            continue;
        char score[128], seg[256], compn[128], field[64], value[64];
        double tol;
        if (sscanf(line, "%127[^\t]\t%255[^\t]\t%127[^\t]\t%63[^\t]\t%63[^\t]\t%lf", score, seg, compn,
                   field, value, &tol) != 6)
            fail_msg("bad expected row: %s", line);
        const struct vt_score_result *r = vt_score_engine_find(e, score);
        assert_non_null(r);
        const struct vt_score_eval *ev = &r->whole;
        if (strcmp(seg, "-") != 0) {
            ev = NULL;
            for (uint32_t i = 0; i < r->n_segments; i++) {
                char joined[256] = "";
                for (uint32_t k = 0; k < r->def->n_segment_by; k++) {
                    if (k)
                        strcat(joined, ",");
                    strncat(joined, r->segments[i].labels[k], 100);
                }
                if (strcmp(joined, seg) == 0)
                    ev = &r->segments[i];
            }
            if (!ev)
                fail_msg("no segment %s in %s", seg, score);
        }
        double got = NAN;
        const char *gots = NULL;
        if (strcmp(compn, "-") != 0) {
            int ci = -1;
            for (uint32_t i = 0; i < r->def->n_components; i++)
                if (strcmp(r->def->components[i].name, compn) == 0)
                    ci = (int)i;
            assert_true(ci >= 0);
            const struct vt_component_result *cr = &ev->components[ci];
            if (strcmp(field, "value") == 0) got = cr->value;
            else if (strcmp(field, "normalized") == 0) got = cr->normalized;
            else if (strcmp(field, "weight") == 0) got = cr->weight;
            else if (strcmp(field, "count") == 0) got = (double)cr->count;
            else fail_msg("field %s", field);
        } else {
            if (strcmp(field, "score") == 0) got = ev->score;
            else if (strcmp(field, "coverage") == 0) got = ev->coverage;
            else if (strcmp(field, "count") == 0) got = (double)ev->count;
            else if (strcmp(field, "masked") == 0) got = ev->masked;
            else if (strcmp(field, "state") == 0) { gots = vt_score_state_name(ev->state); got = 0; }
            else if (strcmp(field, "detractor") == 0) {
                gots = ev->detractor >= 0 ? r->def->components[ev->detractor].name : "null";
                got = 0;
            } else fail_msg("field %s", field);
        }
        rows++;
        if (gots) {
            if (strcmp(gots, value) != 0) {
                print_message("MISMATCH %s %s %s %s: want %s got %s\n", score, seg, compn, field, value, gots);
                bad++;
            }
            continue;
        }
        double want = strcmp(value, "null") == 0 ? NAN : strtod(value, NULL);
        bool ok = (isnan(want) && isnan(got)) || fabs(got - want) <= tol + 1e-12 * fabs(want);
        if (!ok) {
            print_message("MISMATCH %s %s %s %s: want %s got %.17g (tol %g)\n", score, seg, compn, field,
                          value, got, tol);
            bad++;
        }
    }
    fclose(f);
    assert_true(rows > 50);
    assert_int_equal(bad, 0);
    vt_score_engine_free(e);
    store_free(&s);
}

/* A sketch only mean/sum/min/max read is accumulated as totals (no
 * buckets): exact values, alone, as a follower of a score that reads the
 * buckets (shared population) and as a leader whose follower reads them;
 * the quantile next to it equals the one of a score that reads only it. */
static void t_totals_only(void **st)
{
    (void)st;
    struct store s;
    store_init(&s);
    double sum = 0, mn = INFINITY, mx = -INFINITY;
    vt_sketch ref;
    vt_sketch_init_default(&ref);
    for (int i = 0; i < 60; i++) {
        double c = 0.0001 * (1 + (i * 37) % 53) + (i % 7 == 0 ? 0 : 1e-7 * i);
        const char *prov = i % 3 ? "openai" : "anthropic";
        /* spread over 6 rollups (10 s buckets) */
        rec(&s, "{\"ts\":%lld,\"service\":\"b\",\"provider\":\"%s\",\"cost_usd\":%.17g,\"latency_ms\":%d}",
            T0 - 60000 + (i % 6) * 10000, prov, c, 100 + i);
        if (i % 3 == 0)
            continue; /* ref: the openai segment */
        sum += c;
        mn = fmin(mn, c);
        mx = fmax(mx, c);
        assert_int_equal(vt_sketch_add(&ref, c), 0);
    }
#define COMP(n, st) "{\"name\":\"" n "\",\"metric\":\"cost_usd\",\"stat\":\"" st "\",\"weight\":1,\"good\":0,\"bad\":1}"
#define SCORE(n, comps) "{\"name\":\"" n "\",\"selector\":{\"service\":\"b\"},\"window\":\"5m\",\"min_count\":1," \
    "\"segment_by\":[\"provider\"],\"components\":[" comps "]}"
    const char *cfgs[] = {
        /* alone */
        "{\"version\":1,\"scores\":[" SCORE("t", COMP("mean", "mean") "," COMP("sum", "sum") ","
            COMP("min", "min") "," COMP("max", "max")) "]}",
        /* follower (totals) of a leader that reads the buckets */
        "{\"version\":1,\"scores\":[" SCORE("q", COMP("p90", "p90")) ","
            SCORE("t", COMP("mean", "mean") "," COMP("sum", "sum") "," COMP("min", "min") ","
            COMP("max", "max")) "]}",
        /* leader (totals) whose follower reads the buckets */
        "{\"version\":1,\"scores\":[" SCORE("t", COMP("mean", "mean") "," COMP("sum", "sum") ","
            COMP("min", "min") "," COMP("max", "max")) "," SCORE("q", COMP("p90", "p90")) "]}",
    };
    for (int k = 0; k < 3; k++) {
        struct vt_score_engine *e = engine_from(cfgs[k]);
        struct vt_score_source src = {.ctx = &s, .each = store_each};
        assert_int_equal(vt_score_engine_evaluate(e, &src, T0), 0);
        const struct vt_score_result *r = vt_score_engine_find(e, "t");
        assert_non_null(r);
        assert_int_equal(r->whole.count, 60);
        assert_int_equal(r->n_segments, 2);
        const struct vt_score_eval *o = &r->segments[1];
        assert_string_equal(o->labels[0], "openai");
        assert_int_equal(o->components[0].count, 40);
        /* the merge order of sums is the engine's: equal to a few ulps */
        NEAR(o->components[0].value, sum / 40, 1e-15);
        NEAR(o->components[1].value, sum, 1e-15);
        assert_true(o->components[2].value == mn);
        assert_true(o->components[3].value == mx);
        const struct vt_score_result *q = vt_score_engine_find(e, "q");
        if (q) {
            assert_int_equal(q->n_segments, 2);
            assert_true(q->segments[1].components[0].value == vt_sketch_quantile(&ref, 0.9));
        }
        vt_score_engine_free(e);
    }
#undef COMP
#undef SCORE
    vt_sketch_free(&ref);
    store_free(&s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(t_normalize),     cmocka_unit_test(t_stats),
        cmocka_unit_test(t_drift),         cmocka_unit_test(t_combine),
        cmocka_unit_test(t_missing_coverage), cmocka_unit_test(t_states),
        cmocka_unit_test(t_segments),      cmocka_unit_test(t_selector_exemplars),
        cmocka_unit_test(t_baseline_pass), cmocka_unit_test(t_golden),
        cmocka_unit_test(t_totals_only),   cmocka_unit_test(t_pass_reads),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
