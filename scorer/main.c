/*
 * main.c - vitals-scorer: wires the collector (gRPC Push -> WAL -> store),
 * the score engine (evaluated on a tick) and the HTTP API onto one libuv
 * loop, and owns the process: flags, signals, reload, shutdown.
 *
 * Signals: SIGTERM/SIGINT stop accepting pushes, finish the WAL group in
 * flight, ack it, write a final snapshot and exit 0. SIGHUP reloads the
 * score file (and the token file); a bad file keeps the old one, logs every
 * error and sets vitals_scorer_config_last_reload_success to 0.
 */
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include "api.h"
#include "collector.h"
#include "config.h"
#include "grpc.h"
#include "log.h"
#include "metrics.h"
#include "score.h"
#include "score_config.h"
#include "store.h"
#include "store_source.h"

#define HUGETLB_TUNABLE "glibc.malloc.hugetlb"

struct cfg {
    char *scores;
    char *data_dir;
    char *grpc_addr;
    char *http_addr;
    char *token_file;
    char *check_config;
    char *retention;
    int log_level;
    int64_t eval_interval, eval_delay;
    int64_t snapshot_interval;
    int64_t snapshot_wal_bytes;
    int64_t max_message_bytes;
    int64_t max_series;
    int wal_fsync;
    int64_t wal_group_wait;
    int huge_pages;
};

static const struct vt_knob knobs[] = {
    {"scores", VT_KNOB_STRING, offsetof(struct cfg, scores), "",
     "score definitions file (JSON, docs/scores.md); reloaded on SIGHUP", NULL, 0, 0},
    {"data-dir", VT_KNOB_STRING, offsetof(struct cfg, data_dir), "./vitals-data",
     "WAL and snapshot directory (the container image uses /var/lib/vitals/scorer)", NULL, 0, 0},
    {"grpc-addr", VT_KNOB_STRING, offsetof(struct cfg, grpc_addr), "0.0.0.0:7400",
     "listen address of vitals.v1.Collector/Push (h2c)", NULL, 0, 0},
    {"http-addr", VT_KNOB_STRING, offsetof(struct cfg, http_addr), "0.0.0.0:7402",
     "listen address of the JSON API, /metrics, /healthz, /readyz", NULL, 0, 0},
    {"token-file", VT_KNOB_STRING, offsetof(struct cfg, token_file), "",
     "file holding the bearer token agents must send; empty = no auth (warned)", NULL, 0, 0},
    {"check-config", VT_KNOB_STRING, offsetof(struct cfg, check_config), "",
     "validate this score file, print the result and exit 0 (valid) or 2", NULL, 0, 0},
    {"retention", VT_KNOB_STRING, offsetof(struct cfg, retention), VT_STORE_DEFAULT_RETENTION,
     "rollup tiers RESOLUTION:RETENTION, finest first", NULL, 0, 0},
    {"log-level", VT_KNOB_ENUM, offsetof(struct cfg, log_level), "info", "log threshold",
     "debug|info|warn|error", 0, 0},
    {"eval-interval", VT_KNOB_DURATION, offsetof(struct cfg, eval_interval), "5s",
     "how often every score is evaluated", NULL, 100, 3600000},
    {"eval-delay", VT_KNOB_DURATION, offsetof(struct cfg, eval_delay), "250ms",
     "after new data, evaluate this soon (batches arriving meanwhile join in; "
     "0 = only on --eval-interval)", NULL, 0, 3600000},
    {"snapshot-interval", VT_KNOB_DURATION, offsetof(struct cfg, snapshot_interval), "10m",
     "snapshot the rollups (and trim the WAL) at least this often when data changed", NULL, 1000,
     86400000},
    {"snapshot-wal-bytes", VT_KNOB_BYTES, offsetof(struct cfg, snapshot_wal_bytes), "1GiB",
     "also snapshot after this many bytes of batches (uncompressed) were logged: bounds "
     "restart time, which replays them", NULL, 1 << 20,
     INT64_MAX},
    {"max-message-bytes", VT_KNOB_BYTES, offsetof(struct cfg, max_message_bytes), "16MiB",
     "largest Push message accepted (decompressed); bigger gets RESOURCE_EXHAUSTED", NULL, 1024,
     1LL << 30},
    {"max-series", VT_KNOB_INT, offsetof(struct cfg, max_series), "100000",
     "series kept; new ones beyond fold into __overflow__", NULL, 1, 100000000},
    {"wal-fsync", VT_KNOB_BOOL, offsetof(struct cfg, wal_fsync), "true",
     "fsync each WAL group commit before acking (false: ack after write(2) only)", NULL, 0, 0},
    {"wal-group-wait", VT_KNOB_DURATION, offsetof(struct cfg, wal_group_wait), "1ms",
     "under load, a WAL group that would start with less than half the last one waits this "
     "long at most for more batches: fewer, fuller fsyncs (0 = never wait)", NULL, 0, 1000},
    {"huge-pages", VT_KNOB_BOOL, offsetof(struct cfg, huge_pages), "true",
     "keep the rollups on transparent huge pages: unless GLIBC_TUNABLES already sets "
     "glibc.malloc.hugetlb, start again once with glibc.malloc.hugetlb=1 (see docs/scorer.md)",
     NULL, 0, 0},
};
#define N_KNOBS (sizeof knobs / sizeof knobs[0])

static const struct vt_program_info prog = {
    "vitals-scorer", "central scorer: collects agent batches, evaluates weighted health scores"};

struct app {
    uv_loop_t *loop;
    struct cfg cfg;
    vt_metrics *reg;
    vt_store *store;
    vt_grpc_server_t *grpc;
    vt_collector *coll;
    struct vt_api api;
    struct vt_score_engine *engine;
    struct vt_store_source source; /* the engine's view of the store */
    uv_timer_t eval_timer, fresh_timer;
    uint64_t last_eval_ms; /* uv_now() of the last evaluation */
    uv_signal_t sig_term, sig_int, sig_hup;
    bool stopping;
    vt_counter *reload_errors, *evaluations, *eval_errors;
    vt_gauge *reload_ok;
    vt_histogram *eval_seconds;
    int exit_code;
};

static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void evaluate(struct app *a)
{
    if (!a->engine)
        return;
    /* Nothing stored yet: nothing to evaluate (and score.c's segment sort
     * is handed a NULL array when no segment has data: skip that case). */
    struct vt_store_stats ss;
    vt_store_stats_get(a->store, &ss);
    if (!ss.records)
        return;
    struct vt_score_source src = vt_store_source_of(&a->source, a->store);
    a->last_eval_ms = uv_now(a->loop);
    uint64_t t0 = uv_hrtime();
    int rc = vt_score_engine_evaluate(a->engine, &src, wall_ms());
    double secs = (double)(uv_hrtime() - t0) / 1e9;
    vt_histogram_observe(a->eval_seconds, secs);
    vt_counter_inc(a->evaluations);
    if (rc) {
        vt_counter_inc(a->eval_errors);
        vt_warn("evaluation failed: %s", strerror(-rc));
    }
    vt_api_publish(&a->api);
}

static void on_eval_timer(uv_timer_t *t)
{
    evaluate(t->data);
}

/* New data was merged: evaluate soon, so a window's effect shows within
 * --eval-delay of its arrival instead of up to --eval-interval later. Data
 * arriving meanwhile joins the same evaluation; the periodic timer restarts
 * from it, so steady traffic costs no more evaluations than one per delay. */
static void on_fresh_timer(uv_timer_t *t)
{
    struct app *a = t->data;
    evaluate(a);
    uv_timer_again(&a->eval_timer);
}

/* At most one data-driven evaluation per second: agents ship right after
 * each window boundary, and a burst of their batches must cost one or two
 * evaluations, not one per batch. */
#define FRESH_MIN_GAP_MS 1000

static void on_merged(void *data)
{
    struct app *a = data;
    if (a->cfg.eval_delay <= 0 || a->stopping || uv_is_active((uv_handle_t *)&a->fresh_timer))
        return;
    uint64_t now = uv_now(a->loop), delay = (uint64_t)a->cfg.eval_delay;
    if (a->last_eval_ms && a->last_eval_ms + FRESH_MIN_GAP_MS > now + delay)
        delay = a->last_eval_ms + FRESH_MIN_GAP_MS - now;
    uv_timer_start(&a->fresh_timer, on_fresh_timer, delay, 0);
}

/* ---- files ------------------------------------------------------------------- */

static int read_token(const char *path, char **out)
{
    *out = NULL;
    if (!path || !*path)
        return 0;
    FILE *f = fopen(path, "r");
    if (!f)
        return -errno;
    char buf[4096];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    while (n && (buf[n - 1] == '\n' || buf[n - 1] == '\r' || buf[n - 1] == ' ' || buf[n - 1] == '\t'))
        buf[--n] = 0;
    if (!n)
        return -ENODATA;
    *out = strdup(buf);
    return *out ? 0 : -ENOMEM;
}

static int load_scores(struct app *a, bool initial)
{
    if (!a->cfg.scores || !*a->cfg.scores)
        return 0;
    struct vt_score_config sc;
    char *err = malloc(8192);
    if (!err)
        return -ENOMEM;
    int rc = vt_score_config_load_file(a->cfg.scores, &sc, err, 8192);
    if (rc) {
        vt_error("score file %s rejected%s: %s", a->cfg.scores,
                 initial ? "" : " (keeping the previous one)", err);
        free(err);
        return rc;
    }
    free(err);
    char version[sizeof sc.version];
    memcpy(version, sc.version, sizeof version);
    uint32_t n = sc.n_scores;
    if (!a->engine) {
        a->engine = vt_score_engine_new(&sc);
        rc = a->engine ? 0 : -ENOMEM;
    } else {
        rc = vt_score_engine_set_config(a->engine, &sc);
    }
    vt_score_config_free(&sc);
    if (!rc)
        vt_info("score file %s loaded: %u scores, version %s", a->cfg.scores, n, version);
    a->api.engine = a->engine;
    return rc;
}

/* ---- signals and shutdown --------------------------------------------------- */

static void on_closed_noop(uv_handle_t *h)
{
    (void)h;
}

static void on_http_closed(vt_http_server *s)
{
    (void)s;
}

static void on_coll_closed(void *data)
{
    struct app *a = data;
    a->coll = NULL;
    a->api.coll = NULL;
    vt_grpc_server_close(a->grpc, NULL, NULL);
    vt_api_close(&a->api, on_http_closed);
    uv_close((uv_handle_t *)&a->eval_timer, on_closed_noop);
    uv_close((uv_handle_t *)&a->fresh_timer, on_closed_noop);
    uv_close((uv_handle_t *)&a->sig_term, on_closed_noop);
    uv_close((uv_handle_t *)&a->sig_int, on_closed_noop);
    uv_close((uv_handle_t *)&a->sig_hup, on_closed_noop);
    vt_info("shutdown complete");
}

static void on_stop_signal(uv_signal_t *s, int signum)
{
    struct app *a = s->data;
    if (a->stopping)
        return;
    a->stopping = true;
    vt_info("signal %d: draining (WAL in flight, final snapshot)", signum);
    uv_timer_stop(&a->eval_timer);
    uv_timer_stop(&a->fresh_timer);
    vt_collector_close(a->coll, true, on_coll_closed, a);
}

static void on_hup(uv_signal_t *s, int signum)
{
    (void)signum;
    struct app *a = s->data;
    int rc = load_scores(a, false);
    if (rc) {
        vt_counter_inc(a->reload_errors);
        vt_gauge_set(a->reload_ok, 0);
    } else {
        vt_gauge_set(a->reload_ok, 1);
        evaluate(a); /* results are empty after set_config: refill them now */
    }
    char *tok;
    if (a->cfg.token_file && *a->cfg.token_file) {
        if (read_token(a->cfg.token_file, &tok) == 0) {
            vt_collector_set_token(a->coll, tok);
            free(tok);
        } else {
            vt_warn("token file %s unreadable on reload: keeping the previous token",
                    a->cfg.token_file);
        }
    }
}

/* ---- main -------------------------------------------------------------------- */

static int run(struct app *a)
{
    char err[512];
    struct vt_store_opts so = {.max_series = (uint32_t)a->cfg.max_series};
    if (vt_store_parse_retention(a->cfg.retention, &so, err, sizeof err)) {
        fprintf(stderr, "vitals-scorer: --retention: %s\n", err);
        return 2;
    }
    char *token = NULL;
    int rc = read_token(a->cfg.token_file, &token);
    if (rc) {
        fprintf(stderr, "vitals-scorer: --token-file %s: %s\n", a->cfg.token_file,
                rc == -ENODATA ? "empty" : strerror(-rc));
        return 2;
    }
    if (!token)
        vt_warn("no --token-file: Push accepts any caller (set one in production)");
    a->reg = vt_metrics_new();
    if (!a->reg)
        return 1;
    a->reload_errors = vt_metrics_counter(a->reg, "vitals_scorer_config_reload_errors_total",
                                          "Score file reloads that failed (old file kept).");
    a->reload_ok = vt_metrics_gauge(a->reg, "vitals_scorer_config_last_reload_success",
                                    "1 if the last score file (re)load succeeded, else 0.");
    a->evaluations = vt_metrics_counter(a->reg, "vitals_scorer_evaluations_total",
                                        "Evaluation ticks run.");
    a->eval_errors = vt_metrics_counter(a->reg, "vitals_scorer_evaluation_errors_total",
                                        "Evaluation ticks that failed.");
    a->eval_seconds = vt_metrics_histogram(a->reg, "vitals_scorer_evaluation_seconds",
                                           "Time to evaluate every score once.",
                                           vt_metrics_latency_buckets,
                                           vt_metrics_latency_buckets_len);
    if (!a->reload_errors || !a->reload_ok || !a->evaluations || !a->eval_errors ||
        !a->eval_seconds) {
        free(token);
        return 1;
    }
    if (vt_api_init(&a->api, a->loop, NULL, a->reg)) {
        free(token);
        return 1;
    }
    if (load_scores(a, true)) {
        free(token);
        return 2;
    }
    vt_gauge_set(a->reload_ok, 1);
    if (vt_store_new(&a->store, &so)) {
        free(token);
        return 1;
    }
    a->api.store = a->store;
    struct vt_grpc_server_opts go = {.max_message_bytes = (size_t)a->cfg.max_message_bytes};
    if ((rc = vt_grpc_server_init(a->loop, &a->grpc, &go))) {
        free(token);
        return 1;
    }
    struct vt_collector_opts co = {.data_dir = a->cfg.data_dir,
                                   .token = token,
                                   .wal_fsync = a->cfg.wal_fsync != 0,
                                   .wal_group_wait_ms = a->cfg.wal_group_wait,
                                   .snapshot_wal_bytes = (uint64_t)a->cfg.snapshot_wal_bytes,
                                   .snapshot_interval_ms = a->cfg.snapshot_interval,
                                   .on_merged = on_merged,
                                   .on_merged_data = a};
    rc = vt_collector_open(&a->coll, a->loop, a->store, a->grpc, a->reg, &co);
    if (rc == -EBADMSG) {
        /* A damaged snapshot must not stop start-up: set it aside, start
         * from the WAL alone (what was trimmed below it is lost, and said). */
        char bad[4096], path[4096];
        snprintf(path, sizeof path, "%s/snapshot.bin", a->cfg.data_dir);
        snprintf(bad, sizeof bad, "%s/snapshot.bin.bad", a->cfg.data_dir);
        rename(path, bad);
        vt_error("snapshot moved to %s; rollups older than the WAL are lost", bad);
        vt_store_free(a->store);
        vt_store_new(&a->store, &so);
        a->api.store = a->store;
        rc = vt_collector_open(&a->coll, a->loop, a->store, a->grpc, a->reg, &co);
    }
    free(token);
    if (rc) {
        fprintf(stderr, "vitals-scorer: data dir %s: %s\n", a->cfg.data_dir, strerror(-rc));
        return rc == -EBUSY ? 2 : 1;
    }
    a->api.coll = a->coll;
    if ((rc = vt_grpc_server_listen(a->grpc, a->cfg.grpc_addr))) {
        fprintf(stderr, "vitals-scorer: --grpc-addr %s: %s\n", a->cfg.grpc_addr, uv_strerror(rc));
        return 2;
    }
    if ((rc = vt_api_listen(&a->api, a->cfg.http_addr))) {
        fprintf(stderr, "vitals-scorer: --http-addr %s: %s\n", a->cfg.http_addr, uv_strerror(rc));
        return 2;
    }
    vt_info("vitals-scorer %s listening grpc=%s (port %d) http=%s (port %d) data_dir=%s",
            VITALS_VERSION, a->cfg.grpc_addr, vt_grpc_server_port(a->grpc), a->cfg.http_addr,
            vt_http_server_port(&a->api.http), a->cfg.data_dir);
    const char *tun = getenv("GLIBC_TUNABLES");
    vt_info("rollup heap on %s", tun && strstr(tun, HUGETLB_TUNABLE "=1")
                                     ? "transparent huge pages (" HUGETLB_TUNABLE "=1)"
                                     : "4 KiB pages (see --huge-pages)");
    uv_timer_init(a->loop, &a->eval_timer);
    uv_timer_init(a->loop, &a->fresh_timer);
    a->eval_timer.data = a->fresh_timer.data = a;
    uv_timer_start(&a->eval_timer, on_eval_timer, 0, (uint64_t)a->cfg.eval_interval);
    uv_signal_init(a->loop, &a->sig_term);
    uv_signal_init(a->loop, &a->sig_int);
    uv_signal_init(a->loop, &a->sig_hup);
    a->sig_term.data = a->sig_int.data = a->sig_hup.data = a;
    uv_signal_start(&a->sig_term, on_stop_signal, SIGTERM);
    uv_signal_start(&a->sig_int, on_stop_signal, SIGINT);
    uv_signal_start(&a->sig_hup, on_hup, SIGHUP);
    uv_run(a->loop, UV_RUN_DEFAULT);
    return 0;
}

/* Rollups are hundreds of thousands of small heap objects, and every
 * evaluation walks them: on 4 KiB pages nearly each one it reads costs a
 * TLB miss (in a VM a two-dimensional page walk) on top of its cache misses.
 * glibc keeps its heap on transparent huge pages when the tunable
 * glibc.malloc.hugetlb=1 is set, but reads tunables only when a program
 * starts. So, unless the operator set that tunable (to anything) or the
 * kernel's THP is off, add it and execute this program again, once, before
 * anything is opened. If that fails, go on as we are. */
static void restart_on_huge_pages(char **argv)
{
    const char *old = getenv("GLIBC_TUNABLES");
    if (old && strstr(old, HUGETLB_TUNABLE))
        return;
    char mode[128] = "", self[4096];
    FILE *f = fopen("/sys/kernel/mm/transparent_hugepage/enabled", "r");
    if (!f)
        return;
    bool thp = fgets(mode, sizeof mode, f) && !strstr(mode, "[never]");
    fclose(f);
    /* by its own path: an exec of /proc/self/exe would rename the process "exe" */
    ssize_t len = readlink("/proc/self/exe", self, sizeof self);
    if (!thp || len <= 0 || (size_t)len >= sizeof self)
        return;
    self[len] = 0;
    size_t n = (old ? strlen(old) : 0) + sizeof ":" HUGETLB_TUNABLE "=1";
    char *v = malloc(n), *keep = old ? strdup(old) : NULL;
    if (v && (!old || keep)) {
        snprintf(v, n, "%s%s" HUGETLB_TUNABLE "=1", old ? old : "", old && *old ? ":" : "");
        if (setenv("GLIBC_TUNABLES", v, 1) == 0) {
            execv(self, argv);
            if (keep) /* still here: as we were */
                setenv("GLIBC_TUNABLES", keep, 1);
            else
                unsetenv("GLIBC_TUNABLES");
        }
    }
    free(v);
    free(keep);
}

int main(int argc, char **argv)
{
    signal(SIGPIPE, SIG_IGN);
    struct app *a = calloc(1, sizeof *a);
    if (!a)
        return 1;
    char err[512];
    enum vt_config_result cr =
        vt_config_load(&prog, knobs, N_KNOBS, &a->cfg, argc, argv, err, sizeof err);
    if (cr == VT_CONFIG_EXIT) {
        vt_config_free(knobs, N_KNOBS, &a->cfg);
        free(a);
        return 0;
    }
    if (cr == VT_CONFIG_ERROR) {
        fprintf(stderr, "vitals-scorer: %s\n", err);
        vt_config_free(knobs, N_KNOBS, &a->cfg);
        free(a);
        return 2;
    }
    int code;
    if (a->cfg.check_config && *a->cfg.check_config) {
        code = vt_score_config_check(a->cfg.check_config, stdout);
    } else {
        if (a->cfg.huge_pages)
            restart_on_huge_pages(argv);
        vt_log_set_level((enum vt_log_level)a->cfg.log_level);
        a->loop = uv_default_loop();
        vt_store_source_init(&a->source);
        code = run(a);
        /* tear down whatever run() built (also on early errors) */
        if (a->grpc && code) {
            if (a->coll)
                vt_collector_close(a->coll, false, NULL, NULL);
            vt_grpc_server_close(a->grpc, NULL, NULL);
            vt_api_close(&a->api, NULL);
            uv_run(a->loop, UV_RUN_DEFAULT);
        }
        uv_loop_close(a->loop);
        vt_score_engine_free(a->engine);
        vt_store_free(a->store);
        vt_metrics_free(a->reg);
        vt_store_source_free(&a->source);
    }
    vt_config_free(knobs, N_KNOBS, &a->cfg);
    free(a);
    return code;
}
