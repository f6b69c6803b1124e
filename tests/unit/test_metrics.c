/*
 * test_metrics.c - the metrics registry: exact Prometheus text for every kind,
 * label escaping, handle identity, invalid names, concurrent updates from
 * threads, and `promtool check metrics` accepting what we render.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "metrics.h"

static double answer_fn(void *data) { return *(double *)data; }

static char *render(vt_metrics *reg)
{
    struct vt_metrics_buf b = {0};
    assert_int_equal(vt_metrics_render(reg, &b), 0);
    assert_non_null(b.data);
    return b.data;
}

/* Run promtool check metrics on text; returns its exit status, -1 if absent. */
static int promtool_check(const char *text)
{
    if (access("/usr/bin/promtool", X_OK) != 0 && system("command -v promtool >/dev/null") != 0)
        return -1;
    char path[] = "/tmp/vt_metrics_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    char cmd[256];
    snprintf(cmd, sizeof cmd, "promtool check metrics < %s 2>&1", path);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    char line[512];
    while (fgets(line, sizeof line, p))
        fprintf(stderr, "promtool: %s", line);
    int st = pclose(p);
    unlink(path);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

static vt_metrics *build_all_kinds(double *fnval)
{
    vt_metrics *reg = vt_metrics_new();
    assert_non_null(reg);
    vt_counter *recv = vt_metrics_counter(reg, "vitals_agent_records_received_total",
                                          "Records read from all ingest sockets.");
    assert_non_null(recv);
    vt_counter_add(recv, 41);
    vt_counter_inc(recv);

    vt_metric_family *rej = vt_metrics_counter_family(
        reg, "vitals_agent_records_rejected_total", "Records dropped, by reason.", "reason");
    assert_non_null(rej);
    vt_counter_add(vt_metrics_counter_get(rej, "parse_error"), 3);
    vt_counter_inc(vt_metrics_counter_get(rej, "oversized"));
    vt_counter_inc(vt_metrics_counter_get(rej, "parse_error"));

    vt_metric_family *score = vt_metrics_gauge_family(
        reg, "vitals_score", "Composite score.\nOne line per segment \\ score.", "score,segment");
    assert_non_null(score);
    vt_gauge_set(vt_metrics_gauge_get(score, "bot", "provider=\"openai\"\\x\ny"), 0.875);
    vt_gauge *g = vt_metrics_gauge_get(score, "bot", "");
    vt_gauge_set(g, 1);
    vt_gauge_add(g, -0.5);

    assert_int_equal(vt_metrics_gauge_fn(reg, "vitals_agent_spool_bytes", "Spool size.",
                                         answer_fn, fnval),
                     0);

    const double bounds[] = {0.25, 0.5, 1};
    vt_metric_family *lat = vt_metrics_histogram_family(
        reg, "vitals_agent_ship_seconds", "Ship latency.", "sink", bounds, 3);
    assert_non_null(lat);
    vt_histogram *h = vt_metrics_histogram_get(lat, "scorer");
    vt_histogram_observe(h, 0.125);
    vt_histogram_observe(h, 0.25); /* on a bound: counted in le="0.25" */
    vt_histogram_observe(h, 0.75);
    vt_histogram_observe(h, 3);
    vt_histogram_observe(h, 0.0 / 0.0); /* NaN: ignored */
    assert_int_equal(vt_histogram_count(h), 4);
    assert_true(vt_histogram_sum(h) == 4.125);
    vt_metrics_histogram_family(reg, "vitals_empty_seconds", "No series yet.", NULL, bounds, 3);
    return reg;
}

static const char expected_all[] =
    "# HELP vitals_agent_records_received_total Records read from all ingest sockets.\n"
    "# TYPE vitals_agent_records_received_total counter\n"
    "vitals_agent_records_received_total 42\n"
    "# HELP vitals_agent_records_rejected_total Records dropped, by reason.\n"
    "# TYPE vitals_agent_records_rejected_total counter\n"
    "vitals_agent_records_rejected_total{reason=\"parse_error\"} 4\n"
    "vitals_agent_records_rejected_total{reason=\"oversized\"} 1\n"
    "# HELP vitals_score Composite score.\\nOne line per segment \\\\ score.\n"
    "# TYPE vitals_score gauge\n"
    "vitals_score{score=\"bot\",segment=\"provider=\\\"openai\\\"\\\\x\\ny\"} 0.875\n"
    "vitals_score{score=\"bot\",segment=\"\"} 0.5\n"
    "# HELP vitals_agent_spool_bytes Spool size.\n"
    "# TYPE vitals_agent_spool_bytes gauge\n"
    "vitals_agent_spool_bytes 1048576\n"
    "# HELP vitals_agent_ship_seconds Ship latency.\n"
    "# TYPE vitals_agent_ship_seconds histogram\n"
    "vitals_agent_ship_seconds_bucket{sink=\"scorer\",le=\"0.25\"} 2\n"
    "vitals_agent_ship_seconds_bucket{sink=\"scorer\",le=\"0.5\"} 2\n"
    "vitals_agent_ship_seconds_bucket{sink=\"scorer\",le=\"1\"} 3\n"
    "vitals_agent_ship_seconds_bucket{sink=\"scorer\",le=\"+Inf\"} 4\n"
    "vitals_agent_ship_seconds_sum{sink=\"scorer\"} 4.125\n"
    "vitals_agent_ship_seconds_count{sink=\"scorer\"} 4\n"
    "# HELP vitals_empty_seconds No series yet.\n"
    "# TYPE vitals_empty_seconds histogram\n";

static void test_render_exact(void **state)
{
    double fnval = 1048576;
    vt_metrics *reg = build_all_kinds(&fnval);
    char *text = render(reg);
    assert_string_equal(text, expected_all);
    free(text);
    vt_metrics_free(reg);
}

static void test_promtool_accepts(void **state)
{
    double fnval = 0.1;
    vt_metrics *reg = build_all_kinds(&fnval);
    /* Unlabelled histogram and non-finite gauge values too. */
    vt_histogram *h = vt_metrics_histogram(reg, "vitals_eval_seconds", "Evaluation time.",
                                           vt_metrics_latency_buckets,
                                           vt_metrics_latency_buckets_len);
    assert_non_null(h);
    vt_histogram_observe(h, 0.003);
    vt_gauge_set(vt_metrics_gauge(reg, "vitals_nan_ratio", "Undefined yet."), 0.0 / 0.0);
    vt_gauge_set(vt_metrics_gauge(reg, "vitals_inf_ratio", "Infinite."), -1.0 / 0.0);
    char *text = render(reg);
    int rc = promtool_check(text);
    if (rc < 0) {
        fprintf(stderr, "\n*** SKIPPED: promtool not installed (Debian package prometheus) ***\n\n");
        free(text);
        vt_metrics_free(reg);
        skip();
    }
    assert_int_equal(rc, 0);
    /* And promtool must be able to fail: a broken text is refused. */
    assert_int_not_equal(promtool_check("# TYPE x counter\nx{a=\"1\" 3\n"), 0);
    free(text);
    vt_metrics_free(reg);
}

static void test_identity_and_errors(void **state)
{
    vt_metrics *reg = vt_metrics_new();
    vt_metric_family *f = vt_metrics_counter_family(reg, "a_total", "h", "x,y");
    assert_non_null(f);
    vt_counter *c1 = vt_metrics_counter_get(f, "1", "2");
    assert_ptr_equal(c1, vt_metrics_counter_get(f, "1", "2"));
    assert_ptr_not_equal(c1, vt_metrics_counter_get(f, "12", ""));
    assert_ptr_equal(c1, vt_metrics_counter_getv(f, (const char *const[]){"1", "2"}));
    /* Many series: the index grows and still finds every one. */
    vt_counter *many[500];
    for (int i = 0; i < 500; i++) {
        char v[16];
        snprintf(v, sizeof v, "%d", i);
        many[i] = vt_metrics_counter_get(f, v, "z");
        vt_counter_add(many[i], (uint64_t)i);
    }
    for (int i = 0; i < 500; i++) {
        char v[16];
        snprintf(v, sizeof v, "%d", i);
        assert_ptr_equal(many[i], vt_metrics_counter_get(f, v, "z"));
        assert_int_equal(vt_counter_value(many[i]), i);
    }
    assert_null(vt_metrics_gauge_get(f, "1", "2"));            /* kind mismatch */
    assert_null(vt_metrics_counter_get(f, "1", (char *)NULL)); /* NULL value */
    assert_null(vt_metrics_counter_family(reg, "a_total", "dup", NULL));
    assert_null(vt_metrics_counter_family(reg, "9bad", "h", NULL));
    assert_null(vt_metrics_counter_family(reg, "bad-name", "h", NULL));
    assert_null(vt_metrics_counter_family(reg, "ok_total", "h", "bad-label"));
    assert_null(vt_metrics_counter_family(reg, "ok_total", "h", "__reserved"));
    assert_null(vt_metrics_counter_family(reg, "ok_total", "h", "a,a"));
    const double b[] = {1, 1};
    assert_null(vt_metrics_histogram_family(reg, "h_seconds", "h", NULL, b, 2));
    assert_null(vt_metrics_histogram_family(reg, "h_seconds", "h", "le", b, 1));
    assert_int_equal(vt_metrics_gauge_fn(reg, "a_total", "dup", answer_fn, NULL), -EINVAL);

    vt_metric_family *g = vt_metrics_gauge_family(reg, "g", "h", "k");
    vt_gauge_set(vt_metrics_gauge_get(g, "old"), 1);
    vt_metrics_family_clear(g);
    vt_gauge_set(vt_metrics_gauge_get(g, "new"), 2);
    char *text = render(reg);
    assert_null(strstr(text, "old"));
    assert_non_null(strstr(text, "# TYPE g gauge\ng{k=\"new\"} 2\n"));
    free(text);
    vt_metrics_free(reg);
}

struct worker {
    vt_counter *c;
    vt_gauge *g;
    vt_histogram *h;
};

static void *hammer(void *arg)
{
    struct worker *w = arg;
    for (int i = 0; i < 100000; i++) {
        vt_counter_inc(w->c);
        vt_gauge_add(w->g, 1);
        vt_histogram_observe(w->h, (i % 4) * 0.5); /* 0, 0.5, 1, 1.5 */
    }
    return NULL;
}

static void test_threads(void **state)
{
    vt_metrics *reg = vt_metrics_new();
    const double b[] = {0.5, 1};
    struct worker w = {
        vt_metrics_counter(reg, "n_total", "n"),
        vt_metrics_gauge(reg, "g", "g"),
        vt_metrics_histogram(reg, "h", "h", b, 2),
    };
    pthread_t t[4];
    for (int i = 0; i < 4; i++)
        assert_int_equal(pthread_create(&t[i], NULL, hammer, &w), 0);
    /* Render concurrently with the updates: must not crash or tear. */
    for (int i = 0; i < 50; i++)
        free(render(reg));
    for (int i = 0; i < 4; i++)
        pthread_join(t[i], NULL);
    assert_int_equal(vt_counter_value(w.c), 400000);
    assert_true(vt_gauge_value(w.g) == 400000.0);
    assert_int_equal(vt_histogram_count(w.h), 400000);
    assert_true(vt_histogram_sum(w.h) == 300000.0);
    char *text = render(reg);
    assert_non_null(strstr(text, "h_bucket{le=\"0.5\"} 200000\nh_bucket{le=\"1\"} 300000\n"
                                 "h_bucket{le=\"+Inf\"} 400000\nh_sum 300000\nh_count 400000\n"));
    free(text);
    vt_metrics_free(reg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_render_exact),
        cmocka_unit_test(test_promtool_accepts),
        cmocka_unit_test(test_identity_and_errors),
        cmocka_unit_test(test_threads),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
