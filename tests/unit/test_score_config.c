/*
 * test_score_config.c - the score file validator: every rule reports the
 * exact JSON path and message; defaults, versions, durations, --check-config.
 */
#include "../../scorer/score_config.c"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#define OKCOMP "{\"name\":\"lat\",\"metric\":\"latency_ms\",\"stat\":\"p95\",\"weight\":1,\"good\":1000,\"bad\":5000}"
#define SEL "\"selector\":{\"service\":\"bot\"}"

/* Load a whole file; expect failure with exactly `want` as the error text. */
static void expect_file_err(const char *json, const char *want)
{
    struct vt_score_config cfg;
    char err[4096];
    int rc = vt_score_config_load_buffer(json, strlen(json), &cfg, err, sizeof err);
    if (rc != -EINVAL || strcmp(err, want) != 0)
        fail_msg("input: %s\nwant: %s\ngot (%d): %s", json, want, rc, err);
    assert_int_equal(cfg.n_scores, 0);
    assert_null(cfg.scores);
}

/* Wrap one score object (fmt) into a file. */
static void expect_score_err(const char *score, const char *want)
{
    char buf[8192];
    snprintf(buf, sizeof buf, "{\"version\":1,\"scores\":[%s]}", score);
    expect_file_err(buf, want);
}

/* A score with `extra` inserted before its components and `comp` as the only component. */
static void expect_err2(const char *extra, const char *comp, const char *want)
{
    char buf[4096];
    snprintf(buf, sizeof buf, "{\"name\":\"s\"," SEL ",\"window\":\"5m\"%s%s,\"components\":[%s]}",
             *extra ? "," : "", extra, comp);
    expect_score_err(buf, want);
}

static void t_top_level(void **st)
{
    (void)st;
    struct vt_score_config cfg;
    char err[512];
    assert_int_equal(vt_score_config_load_buffer("{", 1, &cfg, err, sizeof err), -EINVAL);
    assert_non_null(strstr(err, "invalid JSON at line 1"));
    expect_file_err("[]", "expected a JSON object {\"version\": 1, \"scores\": [...]}");
    expect_file_err("{\"version\":1,\"scores\":[],\"extra\":1}", "unknown key \"extra\"");
    expect_file_err("{\"scores\":[]}", "version: required");
    expect_file_err("{\"version\":2,\"scores\":[]}", "version: unsupported version (expected 1)");
    expect_file_err("{\"version\":\"1\",\"scores\":[]}", "version: unsupported version (expected 1)");
    expect_file_err("{\"version\":1}", "scores: required");
    expect_file_err("{\"version\":1,\"scores\":{}}", "scores: expected an array");
    expect_file_err("{\"version\":1,\"scores\":[1]}", "scores[0]: expected an object");
    /* duplicate JSON keys are rejected by the parser itself */
    assert_int_equal(vt_score_config_load_buffer("{\"version\":1,\"version\":1,\"scores\":[]}", 37,
                                                 &cfg, err, sizeof err), -EINVAL);
    assert_non_null(strstr(err, "duplicate object key"));
    /* empty score list is valid */
    assert_int_equal(vt_score_config_load_buffer("{\"version\":1,\"scores\":[]}", 25, &cfg, err,
                                                 sizeof err), 0);
    assert_int_equal(cfg.n_scores, 0);
    vt_score_config_free(&cfg);
}

static void t_score_rules(void **st)
{
    (void)st;
    expect_score_err("{" SEL ",\"window\":\"5m\",\"components\":[" OKCOMP "]}",
                     "scores[0].name: required");
    expect_score_err("{\"name\":\"a b\"," SEL ",\"window\":\"5m\",\"components\":[" OKCOMP "]}",
                     "scores[0].name: must be 1-128 characters of A-Z a-z 0-9 _ . : -");
    expect_score_err("{\"name\":7," SEL ",\"window\":\"5m\",\"components\":[" OKCOMP "]}",
                     "scores[0].name: expected a string");
    expect_score_err("{\"name\":\"s\"," SEL ",\"window\":\"5m\",\"windw\":1,\"components\":[" OKCOMP "]}",
                     "scores[0]: unknown key \"windw\"");
    expect_file_err("{\"version\":1,\"scores\":["
                    "{\"name\":\"s\"," SEL ",\"window\":\"5m\",\"components\":[" OKCOMP "]},"
                    "{\"name\":\"s\"," SEL ",\"window\":\"5m\",\"components\":[" OKCOMP "]}]}",
                    "scores[1].name: duplicate score name \"s\" (also scores[0])");
    /* selector */
    expect_score_err("{\"name\":\"s\",\"window\":\"5m\",\"components\":[" OKCOMP "]}",
                     "scores[0].selector: required");
    expect_score_err("{\"name\":\"s\",\"selector\":\"bot\",\"window\":\"5m\",\"components\":[" OKCOMP "]}",
                     "scores[0].selector: expected an object");
    expect_score_err("{\"name\":\"s\",\"selector\":{},\"window\":\"5m\",\"components\":[" OKCOMP "]}",
                     "scores[0].selector.service: required");
    expect_score_err("{\"name\":\"s\",\"selector\":{\"service\":\"\"},\"window\":\"5m\",\"components\":[" OKCOMP "]}",
                     "scores[0].selector.service: must not be empty");
    expect_score_err("{\"name\":\"s\",\"selector\":{\"service\":\"b\",\"region\":\"eu\"},\"window\":\"5m\",\"components\":[" OKCOMP "]}",
                     "scores[0].selector: unknown key \"region\"");
    expect_score_err("{\"name\":\"s\",\"selector\":{\"service\":\"b\",\"model\":1},\"window\":\"5m\",\"components\":[" OKCOMP "]}",
                     "scores[0].selector.model: expected a string");
    expect_score_err("{\"name\":\"s\",\"selector\":{\"service\":\"b\",\"labels\":[]},\"window\":\"5m\",\"components\":[" OKCOMP "]}",
                     "scores[0].selector.labels: expected an object of strings");
    expect_score_err("{\"name\":\"s\",\"selector\":{\"service\":\"b\",\"labels\":{\"tier\":3}},\"window\":\"5m\",\"components\":[" OKCOMP "]}",
                     "scores[0].selector.labels.tier: expected a string");
    /* segment_by */
    expect_err2("\"segment_by\":\"model\"", OKCOMP, "scores[0].segment_by: expected an array of dimension names");
    expect_err2("\"segment_by\":[\"model\",\"\"]", OKCOMP, "scores[0].segment_by[1]: expected a non-empty string");
    expect_err2("\"segment_by\":[\"model\",\"model\"]", OKCOMP, "scores[0].segment_by[1]: duplicate dimension \"model\"");
    expect_err2("\"segment_by\":[\"a\",\"b\",\"c\",\"d\",\"e\",\"f\",\"g\",\"h\",\"i\"]", OKCOMP,
                "scores[0].segment_by: at most 8 dimensions");
    /* window */
    expect_score_err("{\"name\":\"s\"," SEL ",\"components\":[" OKCOMP "]}", "scores[0].window: required");
    expect_score_err("{\"name\":\"s\"," SEL ",\"window\":\"5 minutes\",\"components\":[" OKCOMP "]}",
                     "scores[0].window: expected a duration like \"5m\"");
    expect_score_err("{\"name\":\"s\"," SEL ",\"window\":300,\"components\":[" OKCOMP "]}",
                     "scores[0].window: expected a duration like \"5m\"");
    expect_score_err("{\"name\":\"s\"," SEL ",\"window\":\"0s\",\"components\":[" OKCOMP "]}",
                     "scores[0].window: must be longer than 0");
    /* knobs */
    expect_err2("\"combine\":\"avg\"", OKCOMP, "scores[0].combine: expected \"weighted_mean\", \"weighted_geometric\" or \"min\"");
    expect_err2("\"min_count\":-1", OKCOMP, "scores[0].min_count: expected a non-negative integer");
    expect_err2("\"min_count\":2.5", OKCOMP, "scores[0].min_count: expected a non-negative integer");
    expect_err2("\"thresholds\":[0.8,0.6]", OKCOMP, "scores[0].thresholds: expected an object {\"warning\": x, \"critical\": y}");
    expect_err2("\"thresholds\":{\"warning\":0.8,\"critcal\":0.6}", OKCOMP, "scores[0].thresholds: unknown key \"critcal\"");
    expect_err2("\"thresholds\":{\"warning\":1.5,\"critical\":0.6}", OKCOMP, "scores[0].thresholds.warning: must be in [0, 1]");
    expect_err2("\"thresholds\":{\"warning\":0.8,\"critical\":-0.1}", OKCOMP, "scores[0].thresholds.critical: must be in [0, 1]");
    expect_err2("\"thresholds\":{\"warning\":0.6,\"critical\":0.8}", OKCOMP,
                "scores[0].thresholds: warning must be greater than critical (higher scores are better)");
    expect_err2("\"thresholds\":{\"warning\":0.7,\"critical\":0.7}", OKCOMP,
                "scores[0].thresholds: warning must be greater than critical (higher scores are better)");
    expect_err2("\"thresholds\":{\"warning\":0.5}", OKCOMP,
                "scores[0].thresholds: warning must be greater than critical (higher scores are better)");
    expect_err2("\"thresholds\":{\"warning\":\"high\",\"critical\":0.1}", OKCOMP, "scores[0].thresholds.warning: expected a number");
    expect_err2("\"hysteresis\":0.6", OKCOMP, "scores[0].hysteresis: must be in [0, 0.5]");
    expect_err2("\"hysteresis\":-0.01", OKCOMP, "scores[0].hysteresis: must be in [0, 0.5]");
    expect_err2("\"for\":\"1 minute\"", OKCOMP, "scores[0].for: expected a duration like \"5m\"");
    expect_err2("\"mode\":\"dry\"", OKCOMP, "scores[0].mode: expected \"live\" or \"shadow\"");
    expect_err2("\"masked_min_share\":0", OKCOMP, "scores[0].masked_min_share: must be in (0, 1]");
    expect_err2("\"masked_gap\":1.5", OKCOMP, "scores[0].masked_gap: must be in (0, 1]");
    expect_err2("\"description\":false", OKCOMP, "scores[0].description: expected a string");
}

static void t_component_rules(void **st)
{
    (void)st;
    expect_score_err("{\"name\":\"s\"," SEL ",\"window\":\"5m\"}", "scores[0].components: required");
    expect_score_err("{\"name\":\"s\"," SEL ",\"window\":\"5m\",\"components\":[]}",
                     "scores[0].components: expected a non-empty array");
    expect_err2("", "3", "scores[0].components[0]: expected an object");
    expect_err2("", "{\"name\":\"a\",\"stat\":\"count\",\"weight\":1,\"good\":1,\"bad\":0,\"wieght\":1}",
                "scores[0].components[0]: unknown key \"wieght\"");
    expect_err2("", "{\"stat\":\"count\",\"weight\":1,\"good\":1,\"bad\":0}", "scores[0].components[0].name: required");
    expect_err2("", "{\"name\":\"a/b\",\"stat\":\"count\",\"weight\":1,\"good\":1,\"bad\":0}",
                "scores[0].components[0].name: must be 1-128 characters of A-Z a-z 0-9 _ . : -");
    expect_err2("", OKCOMP "," OKCOMP, "scores[0].components[1].name: duplicate component name \"lat\"");
    expect_err2("", "{\"name\":\"a\",\"weight\":1,\"good\":1,\"bad\":0}", "scores[0].components[0].stat: required");
    expect_err2("", "{\"name\":\"a\",\"stat\":\"median\",\"metric\":\"x\",\"weight\":1,\"good\":1,\"bad\":0}",
                "scores[0].components[0].stat: unknown stat \"median\" (count, rate, error_rate, mean, sum, min, max, pNN, "
                "frac_above, frac_below, psi, js, centroid_distance, invalid_rate, missing_rate)");
    const char *badq[] = {"p101", "p", "p9.", "p50x", "p-1", "p1000", "quantile"};
    for (size_t i = 0; i < sizeof badq / sizeof *badq; i++) {
        char comp[256], want[512];
        snprintf(comp, sizeof comp, "{\"name\":\"a\",\"stat\":\"%s\",\"metric\":\"x\",\"weight\":1,\"good\":1,\"bad\":0}", badq[i]);
        snprintf(want, sizeof want, "scores[0].components[0].stat: unknown stat \"%s\" (count, rate, error_rate, mean, sum, min, "
                 "max, pNN, frac_above, frac_below, psi, js, centroid_distance, invalid_rate, missing_rate)", badq[i]);
        expect_err2("", comp, want);
    }
    expect_err2("", "{\"name\":\"a\",\"stat\":\"mean\",\"weight\":1,\"good\":1,\"bad\":0}",
                "scores[0].components[0]: stat mean needs a metric");
    expect_err2("", "{\"name\":\"a\",\"stat\":\"p99.9\",\"weight\":1,\"good\":1,\"bad\":0}",
                "scores[0].components[0]: stat p99.9 needs a metric");
    expect_err2("", "{\"name\":\"a\",\"stat\":\"error_rate\",\"metric\":\"latency_ms\",\"weight\":1,\"good\":0,\"bad\":0.1}",
                "scores[0].components[0].metric: stat error_rate takes no metric");
    expect_err2("", "{\"name\":\"a\",\"stat\":\"mean\",\"metric\":\"\",\"weight\":1,\"good\":1,\"bad\":0}",
                "scores[0].components[0].metric: must be 1-128 bytes");
    expect_err2("", "{\"name\":\"a\",\"stat\":\"centroid_distance\",\"metric\":\"relevance\",\"weight\":1,\"good\":0,\"bad\":1}",
                "scores[0].components[0].metric: centroid_distance works on \"embedding\" only");
    expect_err2("", "{\"name\":\"a\",\"stat\":\"missing_rate\",\"weight\":1,\"good\":0,\"bad\":1}",
                "scores[0].components[0]: stat missing_rate needs a field");
    expect_err2("", "{\"name\":\"a\",\"stat\":\"missing_rate\",\"field\":\"colour\",\"weight\":1,\"good\":0,\"bad\":1}",
                "scores[0].components[0].field: unknown record field \"colour\"");
    expect_err2("", "{\"name\":\"a\",\"stat\":\"missing_rate\",\"field\":\"service\",\"weight\":1,\"good\":0,\"bad\":1}",
                "scores[0].components[0].field: unknown record field \"service\"");
    expect_err2("", "{\"name\":\"a\",\"stat\":\"count\",\"field\":\"model\",\"weight\":1,\"good\":1,\"bad\":0}",
                "scores[0].components[0].field: only missing_rate takes a field");
    expect_err2("", "{\"name\":\"a\",\"stat\":\"frac_above\",\"metric\":\"latency_ms\",\"weight\":1,\"good\":0,\"bad\":1}",
                "scores[0].components[0]: stat frac_above needs a bound");
    expect_err2("", "{\"name\":\"a\",\"stat\":\"mean\",\"metric\":\"x\",\"bound\":3,\"weight\":1,\"good\":1,\"bad\":0}",
                "scores[0].components[0].bound: only frac_above and frac_below take a bound");
    expect_err2("", "{\"name\":\"a\",\"stat\":\"frac_below\",\"metric\":\"x\",\"bound\":\"3\",\"weight\":1,\"good\":1,\"bad\":0}",
                "scores[0].components[0].bound: expected a number");
    expect_err2("", "{\"name\":\"a\",\"stat\":\"count\",\"good\":1,\"bad\":0}", "scores[0].components[0].weight: required");
    expect_err2("", "{\"name\":\"a\",\"stat\":\"count\",\"weight\":0,\"good\":1,\"bad\":0}",
                "scores[0].components[0].weight: must be greater than 0");
    expect_err2("", "{\"name\":\"a\",\"stat\":\"count\",\"weight\":-2,\"good\":1,\"bad\":0}",
                "scores[0].components[0].weight: must be greater than 0");
    expect_err2("", "{\"name\":\"a\",\"stat\":\"count\",\"weight\":1,\"bad\":0}", "scores[0].components[0].good: required");
    expect_err2("", "{\"name\":\"a\",\"stat\":\"count\",\"weight\":1,\"good\":0}", "scores[0].components[0].bad: required");
    expect_err2("", "{\"name\":\"a\",\"stat\":\"count\",\"weight\":1,\"good\":\"x\",\"bad\":0}",
                "scores[0].components[0].good: expected a number");
    expect_err2("", "{\"name\":\"a\",\"stat\":\"count\",\"weight\":1,\"good\":5,\"bad\":5}",
                "scores[0].components[0]: good must differ from bad");
    expect_err2("", "{\"name\":\"a\",\"stat\":\"count\",\"weight\":1,\"good\":5,\"bad\":0,\"min_count\":\"x\"}",
                "scores[0].components[0].min_count: expected a non-negative integer");
    expect_err2("", "{\"name\":\"a\",\"stat\":\"mean\",\"metric\":\"x\",\"weight\":1,\"good\":1,\"bad\":0,\"baseline\":{}}",
                "scores[0].components[0].baseline: only psi, js and centroid_distance take a baseline");
    expect_err2("", "{\"name\":\"a\",\"stat\":\"psi\",\"metric\":\"x\",\"weight\":1,\"good\":0,\"bad\":0.25,\"baseline\":\"7d\"}",
                "scores[0].components[0].baseline: expected an object");
    expect_err2("", "{\"name\":\"a\",\"stat\":\"psi\",\"metric\":\"x\",\"weight\":1,\"good\":0,\"bad\":0.25,\"baseline\":{\"window\":\"week\"}}",
                "scores[0].components[0].baseline.window: expected a duration like \"5m\"");
    expect_err2("", "{\"name\":\"a\",\"stat\":\"psi\",\"metric\":\"x\",\"weight\":1,\"good\":0,\"bad\":0.25,\"baseline\":{\"window\":\"0d\"}}",
                "scores[0].components[0].baseline.window: must be longer than 0");
    expect_err2("", "{\"name\":\"a\",\"stat\":\"js\",\"metric\":\"x\",\"weight\":1,\"good\":0,\"bad\":0.5,\"baseline\":{\"lag\":\"1d\"}}",
                "scores[0].components[0].baseline: unknown key \"lag\"");
}

static void t_many_errors(void **st)
{
    (void)st;
    /* Every error is reported, in file order, one per line. */
    expect_score_err("{\"name\":\"s\"," SEL ",\"window\":\"5x\",\"mode\":\"x\",\"components\":["
                     "{\"name\":\"a\",\"stat\":\"count\",\"weight\":0,\"good\":1,\"bad\":1}]}",
                     "scores[0].window: expected a duration like \"5m\"\n"
                     "scores[0].mode: expected \"live\" or \"shadow\"\n"
                     "scores[0].components[0].weight: must be greater than 0\n"
                     "scores[0].components[0]: good must differ from bad");
    /* A tiny buffer truncates but stays NUL-terminated. */
    struct vt_score_config cfg;
    char err[8];
    const char *j = "{\"version\":3}";
    assert_int_equal(vt_score_config_load_buffer(j, strlen(j), &cfg, err, sizeof err), -EINVAL);
    assert_true(strlen(err) < sizeof err);
    assert_int_equal(vt_score_config_load_buffer(j, strlen(j), &cfg, NULL, 0), -EINVAL);
}

static const char *FULL =
    "{\"version\": 1, \"scores\": [\n"
    " {\"name\": \"support_bot_health\", \"selector\": {\"service\": \"support-bot\"},\n"
    "  \"segment_by\": [\"provider\", \"model\", \"region\"], \"window\": \"5m\", \"combine\": \"weighted_mean\",\n"
    "  \"components\": [\n"
    "   {\"name\": \"relevance\", \"metric\": \"relevance\", \"stat\": \"mean\", \"weight\": 0.5, \"good\": 0.9, \"bad\": 0.6},\n"
    "   {\"name\": \"latency\",   \"metric\": \"latency_ms\", \"stat\": \"p99.9\", \"weight\": 0.3, \"good\": 1000, \"bad\": 5000},\n"
    "   {\"name\": \"cost\",      \"metric\": \"cost_usd\",  \"stat\": \"mean\", \"weight\": 0.2, \"good\": 0.002, \"bad\": 0.01, \"min_count\": 5}],\n"
    "  \"thresholds\": {\"warning\": 0.8, \"critical\": 0.6}, \"min_count\": 20, \"mode\": \"live\"},\n"
    " {\"name\": \"drift\", \"selector\": {\"service\": \"bot-*\", \"model\": \"gpt-4o\", \"labels\": {\"tier\": \"gold\"}},\n"
    "  \"window\": \"1h30m\", \"combine\": \"min\", \"mode\": \"shadow\", \"for\": \"0s\", \"hysteresis\": 0,\n"
    "  \"masked_min_share\": 0.1, \"masked_gap\": 0.2, \"description\": \"drift watch\",\n"
    "  \"components\": [\n"
    "   {\"name\": \"psi\", \"metric\": \"relevance\", \"stat\": \"psi\", \"weight\": 1, \"good\": 0.1, \"bad\": 0.25},\n"
    "   {\"name\": \"emb\", \"stat\": \"centroid_distance\", \"metric\": \"embedding\", \"weight\": 1, \"good\": 0, \"bad\": 0.5,\n"
    "    \"baseline\": {\"window\": \"14d\", \"delay\": \"3d\"}},\n"
    "   {\"name\": \"miss\", \"stat\": \"missing_rate\", \"field\": \"latency_ms\", \"weight\": 1, \"good\": 0, \"bad\": 0.2},\n"
    "   {\"name\": \"slow\", \"stat\": \"frac_above\", \"metric\": \"latency_ms\", \"bound\": 2000, \"weight\": 2, \"good\": 0.01, \"bad\": 0.1},\n"
    "   {\"name\": \"p50\", \"stat\": \"p50\", \"metric\": \"ttft_ms\", \"weight\": 1, \"good\": 100, \"bad\": 900},\n"
    "   {\"name\": \"rps\", \"stat\": \"rate\", \"weight\": 1, \"good\": 5, \"bad\": 0},\n"
    "   {\"name\": \"inv\", \"stat\": \"invalid_rate\", \"weight\": 1, \"good\": 0, \"bad\": 0.05}]}]}\n";

static void t_valid_and_defaults(void **st)
{
    (void)st;
    struct vt_score_config cfg;
    char err[1024];
    int rc = vt_score_config_load_buffer(FULL, strlen(FULL), &cfg, err, sizeof err);
    if (rc)
        fail_msg("%s", err);
    assert_int_equal(cfg.n_scores, 2);
    const struct vt_score_def *a = &cfg.scores[0], *b = &cfg.scores[1];
    assert_string_equal(a->name, "support_bot_health");
    assert_string_equal(a->selector.service, "support-bot");
    assert_null(a->selector.model);
    assert_int_equal(a->n_segment_by, 3);
    assert_int_equal(a->segment_by[0].part, 2);
    assert_int_equal(a->segment_by[1].part, 1);
    assert_int_equal(a->segment_by[2].part, -1);
    assert_int_equal(a->window_ms, 300000);
    assert_string_equal(a->window_text, "5m");
    assert_int_equal(a->combine, VT_COMBINE_WEIGHTED_MEAN);
    assert_int_equal(a->n_components, 3);
    assert_int_equal(a->components[1].stat, VT_STAT_QUANTILE);
    assert_true(fabs(a->components[1].q - 0.999) < 1e-12);
    assert_int_equal(a->components[0].min_count, 20);
    assert_int_equal(a->components[2].min_count, 5);
    assert_false(a->components[0].has_baseline);
    assert_true(a->warning == 0.8 && a->critical == 0.6);
    assert_true(a->hysteresis == VT_SCORE_DEFAULT_HYSTERESIS);
    assert_int_equal(a->for_ms, VT_SCORE_DEFAULT_FOR_MS);
    assert_int_equal(a->mode, VT_SCORE_MODE_LIVE);
    assert_true(a->masked_min_share == 0.05 && a->masked_gap == 0.15);
    assert_null(a->description);

    assert_string_equal(b->description, "drift watch");
    assert_string_equal(b->selector.model, "gpt-4o");
    assert_int_equal(b->selector.n_labels, 1);
    assert_string_equal(b->selector.labels[0].key, "tier");
    assert_int_equal(b->window_ms, 5400000);
    assert_int_equal(b->combine, VT_COMBINE_MIN);
    assert_int_equal(b->mode, VT_SCORE_MODE_SHADOW);
    assert_int_equal(b->for_ms, 0);
    assert_true(b->hysteresis == 0);
    assert_true(b->components[0].has_baseline);
    assert_int_equal(b->components[0].baseline_window_ms, 7LL * 86400000);
    assert_int_equal(b->components[0].baseline_delay_ms, 86400000);
    assert_int_equal(b->components[1].stat, VT_STAT_CENTROID_DISTANCE);
    assert_null(b->components[1].metric);
    assert_int_equal(b->components[1].baseline_window_ms, 14LL * 86400000);
    assert_int_equal(b->components[1].baseline_delay_ms, 3LL * 86400000);
    assert_string_equal(b->components[2].field, "latency_ms");
    assert_true(b->components[3].bound == 2000);
    assert_int_equal(b->components[4].q, 0.5);
    assert_null(b->components[5].metric);

    /* version: 12 hex of FNV-1a 64 of the bytes, changes with any byte */
    assert_int_equal(strlen(cfg.version), 12);
    char want[32];
    snprintf(want, sizeof want, "%016llx", (unsigned long long)vt_score_fnv1a64(FULL, strlen(FULL)));
    want[12] = 0;
    assert_string_equal(cfg.version, want);
    struct vt_score_config cfg2;
    char *copy = strdup(FULL);
    copy[strlen(copy) - 1] = ' ';
    assert_int_equal(vt_score_config_load_buffer(copy, strlen(copy), &cfg2, err, sizeof err), 0);
    assert_string_not_equal(cfg.version, cfg2.version);
    free(copy);
    vt_score_config_free(&cfg2);
    vt_score_config_free(&cfg);
    vt_score_config_free(&cfg); /* idempotent */
    /* FNV-1a known vectors */
    assert_true(vt_score_fnv1a64("", 0) == 0xcbf29ce484222325ull);
    assert_true(vt_score_fnv1a64("a", 1) == 0xaf63dc4c8601ec8cull);
}

static void t_duration(void **st)
{
    (void)st;
    int64_t ms;
    assert_int_equal(vt_score_parse_duration("250ms", &ms), 0); assert_int_equal(ms, 250);
    assert_int_equal(vt_score_parse_duration("30s", &ms), 0); assert_int_equal(ms, 30000);
    assert_int_equal(vt_score_parse_duration("5m", &ms), 0); assert_int_equal(ms, 300000);
    assert_int_equal(vt_score_parse_duration("1h30m", &ms), 0); assert_int_equal(ms, 5400000);
    assert_int_equal(vt_score_parse_duration("7d", &ms), 0); assert_int_equal(ms, 604800000);
    assert_int_equal(vt_score_parse_duration("2w", &ms), 0); assert_int_equal(ms, 1209600000);
    assert_int_equal(vt_score_parse_duration("0s", &ms), 0); assert_int_equal(ms, 0);
    const char *bad[] = {"", "5", "m", "5M", "-5m", "5m ", " 5m", "1.5h", "5min", "99999999999999999999d",
                         "300000000000000d"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        if (vt_score_parse_duration(bad[i], &ms) != -EINVAL)
            fail_msg("accepted \"%s\"", bad[i]);
    assert_int_equal(vt_score_parse_duration(NULL, &ms), -EINVAL);
}

static void t_file_and_check(void **st)
{
    (void)st;
    char dir[] = "/tmp/vt_score_cfg_XXXXXX";
    assert_non_null(mkdtemp(dir));
    char good[256], bad[256], none[256], outp[256];
    snprintf(good, sizeof good, "%s/good.json", dir);
    snprintf(bad, sizeof bad, "%s/bad.json", dir);
    snprintf(none, sizeof none, "%s/none.json", dir);
    snprintf(outp, sizeof outp, "%s/out.txt", dir);
    FILE *f = fopen(good, "w");
    fputs(FULL, f);
    fclose(f);
    f = fopen(bad, "w");
    fputs("{\"version\":1,\"scores\":[{\"name\":\"s\"," SEL ",\"window\":\"5m\",\"components\":["
          "{\"name\":\"a\",\"stat\":\"count\",\"weight\":1,\"good\":1,\"bad\":1}]}]}", f);
    fclose(f);

    struct vt_score_config cfg;
    char err[512];
    assert_int_equal(vt_score_config_load_file(good, &cfg, err, sizeof err), 0);
    assert_int_equal(cfg.n_scores, 2);
    char version[13];
    strcpy(version, cfg.version);
    vt_score_config_free(&cfg);
    assert_int_equal(vt_score_config_load_file(none, &cfg, err, sizeof err), -ENOENT);
    char want[512];
    snprintf(want, sizeof want, "%s: No such file or directory", none);
    assert_string_equal(err, want);
    assert_int_equal(vt_score_config_load_file(dir, &cfg, err, sizeof err), -EINVAL);

    FILE *out = fopen(outp, "w+");
    assert_int_equal(vt_score_config_check(good, out), 0);
    assert_int_equal(vt_score_config_check(bad, out), 2);
    assert_int_equal(vt_score_config_check(none, out), 2);
    rewind(out);
    char text[2048] = {0};
    size_t n = fread(text, 1, sizeof text - 1, out);
    fclose(out);
    text[n] = 0;
    char expect[2048];
    snprintf(expect, sizeof expect,
             "ok: 2 scores, version %s\n%s: invalid score file\nscores[0].components[0]: good must differ from bad\n"
             "%s: No such file or directory\n", version, bad, none);
    assert_string_equal(text, expect);
    unlink(good);
    unlink(bad);
    unlink(outp);
    rmdir(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(t_top_level),     cmocka_unit_test(t_score_rules),
        cmocka_unit_test(t_component_rules), cmocka_unit_test(t_many_errors),
        cmocka_unit_test(t_valid_and_defaults), cmocka_unit_test(t_duration),
        cmocka_unit_test(t_file_and_check),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
