/*
 * bench_scorer.c - the scorer daemon, measured from outside as agents see it.
 *
 * Starts the real build/bin/vitals-scorer (next to this program's build
 * tree) on loopback with a temp data dir, pushes batches over gRPC with the
 * lib/grpc client, and reads the daemon's own figures (/proc/<pid>/stat CPU,
 * /proc/<pid>/status RSS, /metrics evaluation histogram):
 *
 *   push_batches_per_cpu_s       batches of 10 series x 8 sketches (aggregates
 *                                built from bench/gen.h records), durable
 *                                (WAL fsync per group commit) and acked,
 *                                per second of scorer CPU (user + system);
 *                                sent uncompressed, 64 in flight, over one
 *                                snapshot period (1 GiB of batches) and its
 *                                snapshot; the requests are built before
 *                                the clock starts. The median of
 *                                BENCH_SCORER_PUSH_RUNS (default 3) such
 *                                periods: on this project's 2-core VM one
 *                                period's figure moves by +-20% from run to
 *                                run (each is printed to stderr)
 *   push_zstd_batches_per_cpu_s  the same batches zstd-compressed (level 6,
 *                                as agents ship them by default)
 *   eval_ms_10k_series_20_scores mean evaluation time, 10,000 series with
 *                                data in every 10 s bucket of the 5 min window
 *                                (31 windows pushed to a fresh scorer, so the
 *                                figure depends neither on how long the WAL
 *                                fill took nor on the push phases' batches;
 *                                the figure on the restarted scorer, whose
 *                                window holds those too, goes to stderr),
 *                                20 scores (3 components, segment_by
 *                                provider+model)
 *   rss_mib_per_1k_series_2d     scorer RSS growth per 1,000 series holding
 *                                2 days of data (every 10 s bucket of the last
 *                                2 h, every 1 min bucket before) - measured
 *                                on BENCH_SCORER_RSS_SERIES series (default
 *                                100) and scaled linearly
 *   restart_s_1gib_wal           the worst case of the default snapshot
 *                                policy (every 1 GiB of batches): SIGKILL
 *                                just before the next snapshot is due - with
 *                                BENCH_SCORER_WAL_MIB (default 1000) MiB of
 *                                batches logged since the last one - then
 *                                time from exec to /readyz 200
 *
 * BENCH_SCORER_EVAL_ONLY=1 runs the evaluation figure alone (a fresh scorer
 * with the scores, the 5 min fill, the measurement): a quick loop while
 * working on the store or the engine. BENCH_SCORER_PUSH_ONLY=1 stops after
 * the two push figures. BENCH_SCORER_PUSH_BATCHES=N pushes N batches per
 * uncompressed push instead of a snapshot period, and stops there: a quick
 * A/B loop (VITALS_BIN picks the scorer) whose figures leave the snapshot out.
 */
#include <curl/curl.h>
#include <sched.h>
#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>
#include <zstd.h>

#include "aggregate.h"
#include "bench.h"
#include "gen.h"
#include "grpc.h"
#include "record.h"
#include "scorer_data.h"
#include "series.h"

#define INFLIGHT 64

static char scorer_bin[4096];
static char tmpdir[256];

/* ---- daemon ------------------------------------------------------------------ */

struct daemon {
    pid_t pid;
    int grpc_port, http_port;
    char log[512];
};

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static size_t curl_sink(char *p, size_t sz, size_t n, void *ud)
{
    struct vt_str *b = ud; /* ptr is a malloc'ed growing buffer */
    size_t add = sz * n;
    char *nb = realloc((char *)b->ptr, b->len + add + 1);
    if (!nb)
        return 0;
    memcpy(nb + b->len, p, add);
    b->len += add;
    nb[b->len] = 0;
    b->ptr = nb;
    return add;
}

/* GET a path; returns the HTTP status and a malloc'ed body in *body (may be NULL). */
static long http_get(const struct daemon *d, const char *path, char **body)
{
    char url[256];
    snprintf(url, sizeof url, "http://127.0.0.1:%d%s", d->http_port, path);
    CURL *c = curl_easy_init();
    struct vt_str b = {0};
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, curl_sink);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 30L);
    long code = 0;
    if (curl_easy_perform(c) == CURLE_OK)
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
    curl_easy_cleanup(c);
    if (body)
        *body = (char *)b.ptr;
    else
        free((char *)b.ptr);
    return code;
}

static double metric(const struct daemon *d, const char *name)
{
    char *body = NULL;
    double v = -1;
    if (http_get(d, "/metrics", &body) == 200 && body) {
        size_t n = strlen(name);
        for (char *l = body; l && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL)
            if (strncmp(l, name, n) == 0 && l[n] == ' ') {
                v = strtod(l + n + 1, NULL);
                break;
            }
    }
    free(body);
    return v;
}

/* With two CPUs or more, the scorer runs on the last one and this program
 * (the load generator: the pushes, the HTTP reads) on the others, so the
 * scorer's CPU time per batch is not inflated by sharing a core's time and
 * caches with its load - on this 2-core VM that sharing moved the push
 * figures by +-30% from run to run. */
static void pin_to(bool self)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    if (n < 2)
        return;
    cpu_set_t set;
    CPU_ZERO(&set);
    if (self)
        for (long i = 0; i < n - 1; i++)
            CPU_SET((int)i, &set);
    else
        CPU_SET((int)(n - 1), &set);
    if (sched_setaffinity(0, sizeof set, &set))
        perror("bench_scorer: sched_setaffinity");
}

static int daemon_start(struct daemon *d, const char *data_dir, const char *scores, int idx)
{
    snprintf(d->log, sizeof d->log, "%s/scorer-%d.log", tmpdir, idx);
    d->grpc_port = d->http_port = 0;
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        pin_to(false); /* the scorer on a CPU of its own, away from the load */
        FILE *f = freopen(d->log, "w", stderr);
        (void)f;
        char *argv[20];
        int a = 0;
        argv[a++] = scorer_bin;
        argv[a++] = "--data-dir";
        argv[a++] = (char *)data_dir;
        argv[a++] = "--grpc-addr";
        argv[a++] = "127.0.0.1:0";
        argv[a++] = "--http-addr";
        argv[a++] = "127.0.0.1:0";
        argv[a++] = "--eval-interval";
        argv[a++] = "1s";
        if (scores) {
            argv[a++] = "--scores";
            argv[a++] = (char *)scores;
        }
        argv[a] = NULL;
        execv(scorer_bin, argv);
        _exit(127);
    }
    d->pid = pid;
    for (int i = 0; i < 60000 / 5; i++) {
        FILE *f = fopen(d->log, "r");
        char line[1024];
        while (f && fgets(line, sizeof line, f)) {
            char *p = strstr(line, "listening grpc=");
            if (p) {
                char *a = strstr(p, "(port ");
                char *b = a ? strstr(a + 6, "(port ") : NULL;
                if (a && b) {
                    d->grpc_port = atoi(a + 6);
                    d->http_port = atoi(b + 6);
                }
            }
        }
        if (f)
            fclose(f);
        if (d->http_port && http_get(d, "/readyz", NULL) == 200)
            return 0;
        int st;
        if (waitpid(pid, &st, WNOHANG) == pid) {
            fprintf(stderr, "bench_scorer: scorer exited early, see %s\n", d->log);
            return -1;
        }
        usleep(5000);
    }
    return -1;
}

static void daemon_kill(struct daemon *d, int sig)
{
    kill(d->pid, sig);
    int st;
    waitpid(d->pid, &st, 0);
}

static double proc_rss_mib(pid_t pid)
{
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "r");
    double v = -1;
    while (f && fgets(line, sizeof line, f))
        if (strncmp(line, "VmRSS:", 6) == 0)
            v = strtod(line + 6, NULL) / 1024.0;
    if (f)
        fclose(f);
    return v;
}

/* ---- batches ------------------------------------------------------------------ */

static Vitals__V1__WindowAggregate templates[SD_TEMPLATES];
static Vitals__V1__SeriesKey *keys;
static uint32_t n_keys;
static uint64_t run_no; /* batch ids differ between push runs: never duplicates */

static size_t pack_batch(uint8_t *buf, size_t cap, uint64_t seq, uint32_t first, int64_t ws)
{
    char id[96];
    snprintf(id, sizeof id, "bench/%llu/%lld/%llu", (unsigned long long)run_no, (long long)ws,
             (unsigned long long)seq);
    return sd_pack_batch(buf, cap, templates, keys, n_keys, id, seq, first, ws);
}

/* A measured run's requests, built (and compressed) before the clock
 * starts: on this 2-core machine a load generator packing and compressing
 * as it sends takes a core's worth of CPU, and cache, from the scorer it
 * measures. Request i is bytes [off[i], off[i + 1]) of buf. */
struct prepared {
    uint8_t *buf;
    size_t *off;
};

/* A push run: `total` batches, series chosen by next_cb. */
struct pusher {
    uv_loop_t loop;
    vt_grpc_client_t *cli;
    uint64_t total, sent, done, failed;
    void (*next)(struct pusher *p, uint64_t seq, uint32_t *first, int64_t *ws);
    int64_t base_ws;
    uint32_t windows;
    const struct prepared *ready; /* NULL: pack each request as it goes */
    uint8_t buf[256 << 10];
};

static void send_one(struct pusher *p);

static void on_ack(int status, const char *message, const uint8_t *resp, size_t len, void *data)
{
    struct pusher *p = data;
    p->done++;
    if (status != VT_GRPC_OK) {
        if (p->failed++ < 5)
            fprintf(stderr, "bench_scorer: push failed: %s %s\n", vt_grpc_status_name(status), message);
    }
    if (p->sent < p->total)
        send_one(p);
    else if (p->done == p->total)
        vt_grpc_client_close(p->cli, NULL, NULL);
}

static void send_one(struct pusher *p)
{
    static const char path[] = "/vitals.v1.Collector/Push";
    uint64_t i = p->sent++;
    int rc;
    if (p->ready) {
        rc = vt_grpc_call_encoded(p->cli, path, p->ready->buf + p->ready->off[i],
                                  p->ready->off[i + 1] - p->ready->off[i], 60000, on_ack, p);
    } else {
        uint32_t first;
        int64_t ws;
        p->next(p, i, &first, &ws);
        size_t n = pack_batch(p->buf, sizeof p->buf, i, first, ws);
        rc = vt_grpc_call(p->cli, path, p->buf, n, 60000, on_ack, p);
    }
    if (rc) {
        p->done++;
        p->failed++;
    }
}

/* The requests of the next push run (its batch ids), packed and, for
 * zstd, compressed at level 6 as agents ship them. */
static void prepare(struct prepared *r, uint64_t total,
                    void (*next)(struct pusher *, uint64_t, uint32_t *, int64_t *),
                    int64_t base_ws, enum vt_grpc_encoding enc)
{
    struct pusher *p = calloc(1, sizeof *p);
    p->base_ws = base_ws;
    size_t cap = 0, len = 0;
    r->buf = NULL;
    r->off = malloc((total + 1) * sizeof *r->off);
    ZSTD_CCtx *zc = enc == VT_GRPC_ENC_ZSTD ? ZSTD_createCCtx() : NULL;
    run_no++; /* a run of its own ids; push_run_enc sends them as they are */
    for (uint64_t i = 0; i < total; i++) {
        uint32_t first;
        int64_t ws;
        next(p, i, &first, &ws);
        size_t n = pack_batch(p->buf, sizeof p->buf, i, first, ws);
        size_t need = zc ? ZSTD_compressBound(n) : n;
        if (len + need > cap) { /* the first guess: total / i batches so far, 1 GiB runs */
            cap = i ? (len + need) + (len + need) / i * (total - i) / 8 * 9 : need * total;
            if (!(r->buf = realloc(r->buf, cap))) {
                fprintf(stderr, "bench_scorer: out of memory preparing %llu requests\n",
                        (unsigned long long)total);
                exit(1);
            }
        }
        if (zc) {
            n = ZSTD_compressCCtx(zc, r->buf + len, need, p->buf, n, 6);
            if (ZSTD_isError(n)) {
                fprintf(stderr, "bench_scorer: zstd: %s\n", ZSTD_getErrorName(n));
                exit(1);
            }
        } else {
            memcpy(r->buf + len, p->buf, n);
        }
        r->off[i] = len;
        len += n;
    }
    r->off[total] = len;
    ZSTD_freeCCtx(zc);
    free(p);
}

static uint64_t push_run_enc(const struct daemon *d, uint64_t total,
                             void (*next)(struct pusher *, uint64_t, uint32_t *, int64_t *),
                             int64_t base_ws, uint32_t windows, enum vt_grpc_encoding enc,
                             const struct prepared *ready)
{
    struct pusher *p = calloc(1, sizeof *p);
    if (!ready)
        run_no++;
    p->ready = ready;
    uv_loop_init(&p->loop);
    char target[64];
    snprintf(target, sizeof target, "127.0.0.1:%d", d->grpc_port);
    struct vt_grpc_client_opts o = {.target = target, .max_concurrent_calls = INFLIGHT,
                                    .compression = enc, .compression_level = 6};
    vt_grpc_client_init(&p->loop, &p->cli, &o);
    p->total = total;
    p->next = next;
    p->base_ws = base_ws;
    p->windows = windows;
    for (int i = 0; i < INFLIGHT && p->sent < total; i++)
        send_one(p);
    uv_run(&p->loop, UV_RUN_DEFAULT);
    uv_loop_close(&p->loop);
    uint64_t failed = p->failed;
    free(p);
    return failed;
}

static uint64_t push_run(const struct daemon *d, uint64_t total,
                         void (*next)(struct pusher *, uint64_t, uint32_t *, int64_t *),
                         int64_t base_ws, uint32_t windows)
{
    return push_run_enc(d, total, next, base_ws, windows, VT_GRPC_ENC_IDENTITY, NULL);
}

/* A measured steady run: batches acked per second of scorer CPU, over one
 * whole snapshot period - as many batches as make the default snapshot
 * policy's 1 GiB of logged batches (counted uncompressed), and the snapshot
 * they trigger (awaited before the CPU is read) - so the figure carries the
 * steady-state share of snapshots, no more, no less. Where the CPU went
 * (user, system, per batch) and how the WAL grouped the batches goes to
 * stderr. */
static void next_steady(struct pusher *p, uint64_t seq, uint32_t *first, int64_t *ws);

static uint64_t push_batches; /* BENCH_SCORER_PUSH_BATCHES, 0: a snapshot period */

static double measured_push(const struct daemon *d, int64_t ws, enum vt_grpc_encoding enc)
{
    static uint8_t one[256 << 10];
    uint32_t first;
    struct pusher probe = {.base_ws = ws};
    next_steady(&probe, 0, &first, &ws);
    uint64_t raw = pack_batch(one, sizeof one, 0, first, ws);
    uint64_t n = push_batches ? push_batches : ((1ull << 30) + raw - 1) / raw;
    struct prepared ready;
    prepare(&ready, n, next_steady, ws, enc);
    double u0, s0, u1, s1;
    double g0 = metric(d, "vitals_scorer_wal_group_batches_count");
    double snaps = metric(d, "vitals_scorer_snapshots_total");
    double reused = metric(d, "vitals_scorer_wal_reused_segments_total");
    bench_proc_times(d->pid, &u0, &s0);
    uint64_t ok = n - push_run_enc(d, n, next_steady, ws, 0, enc, &ready);
    for (int i = 0; !push_batches && i < 300 && metric(d, "vitals_scorer_snapshots_total") < snaps + 1; i++)
        usleep(100000); /* the policy is checked every 5 s; then the snapshot runs */
    bench_proc_times(d->pid, &u1, &s1);
    double groups = metric(d, "vitals_scorer_wal_group_batches_count") - g0;
    snaps = metric(d, "vitals_scorer_snapshots_total") - snaps;
    reused = metric(d, "vitals_scorer_wal_reused_segments_total") - reused;
    fprintf(stderr, "bench_scorer: push %s: %llu batches, %.0f snapshot(s), %.1f us user + %.1f us"
                    " system per batch, %.1f KB/batch sent, %.1f batches per WAL group, %.0f WAL"
                    " segments reused\n",
            enc == VT_GRPC_ENC_ZSTD ? "zstd" : "identity", (unsigned long long)ok, snaps,
            (u1 - u0) / (double)ok * 1e6, (s1 - s0) / (double)ok * 1e6,
            (double)ready.off[n] / (double)n / 1e3, groups > 0 ? (double)ok / groups : 0, reused);
    if (snaps != 1 && !push_batches)
        fprintf(stderr, "bench_scorer: expected one snapshot in the run: figure off by its share\n");
    free(ready.buf);
    free(ready.off);
    double cpu = u1 + s1 - u0 - s0;
    return cpu > 0 ? (double)ok / cpu : 0;
}

static void next_recent(struct pusher *p, uint64_t seq, uint32_t *first, int64_t *ws);

/* Mean evaluation time (ms) of the scorer's next five evaluations after
 * every series got data in each of the 31 windows of the last 5 min (the
 * current one and the 30 before it) and one expiry pass ran. */
static double eval_figure(const struct daemon *d)
{
    int64_t cur = now_ms() - now_ms() % 10000;
    push_run(d, 31 * (n_keys / SD_SERIES_PER_BATCH), next_recent, cur, 0);
    usleep(6000000); /* one expiry pass (the collector's timer runs every 5 s) */
    double c0 = metric(d, "vitals_scorer_evaluation_seconds_count");
    double s0 = metric(d, "vitals_scorer_evaluation_seconds_sum");
    double c1 = c0, s1 = s0;
    for (int i = 0; i < 300 && c1 < c0 + 5; i++) {
        usleep(200000);
        c1 = metric(d, "vitals_scorer_evaluation_seconds_count");
        s1 = metric(d, "vitals_scorer_evaluation_seconds_sum");
    }
    return c1 > c0 ? (s1 - s0) / (c1 - c0) * 1000 : -1;
}

/* steady stream: rotating series, the current window */
static void next_steady(struct pusher *p, uint64_t seq, uint32_t *first, int64_t *ws)
{
    *first = (uint32_t)((seq * SD_SERIES_PER_BATCH) % n_keys);
    *ws = p->base_ws;
}

/* the last 5 minutes: window w (0 = newest) of every series */
static void next_recent(struct pusher *p, uint64_t seq, uint32_t *first, int64_t *ws)
{
    uint32_t per_window = n_keys / SD_SERIES_PER_BATCH;
    *first = (uint32_t)((seq % per_window) * SD_SERIES_PER_BATCH);
    *ws = p->base_ws - (int64_t)(seq / per_window) * 10000;
}

/* 2 days: window w (0 = oldest) of every series; minutes before the last 2 h,
 * 10 s buckets within it. */
static void next_history(struct pusher *p, uint64_t seq, uint32_t *first, int64_t *ws)
{
    uint32_t per_window = n_keys / SD_SERIES_PER_BATCH;
    uint64_t w = seq / per_window;
    *first = (uint32_t)((seq % per_window) * SD_SERIES_PER_BATCH);
    const uint64_t minutes = (2 * 24 - 2) * 60; /* 2 days minus the 2 h of 10 s tier */
    if (w < minutes)
        *ws = p->base_ws - 2 * 86400000LL + (int64_t)w * 60000;
    else
        *ws = p->base_ws - 2 * 3600000LL + (int64_t)(w - minutes) * 10000;
}

/* ---- scores file ------------------------------------------------------------------ */

static void write_scores(const char *path)
{
    FILE *f = fopen(path, "w");
    fputs(sd_scores_json(), f);
    fclose(f);
}

static void find_scorer(void)
{
    const char *env = getenv("VITALS_BIN");
    if (env) {
        snprintf(scorer_bin, sizeof scorer_bin, "%s/vitals-scorer", env);
        return;
    }
    char self[4096];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    self[n > 0 ? n : 0] = 0;
    char *slash = strrchr(self, '/'); /* <build>/bench/bench_scorer */
    if (slash)
        *slash = 0;
    slash = strrchr(self, '/');
    if (slash)
        *slash = 0;
    snprintf(scorer_bin, sizeof scorer_bin, "%s/bin/vitals-scorer", self);
}

static void rm_rf(const char *dir)
{
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "bench_scorer: could not remove %s\n", dir);
}

int main(int argc, char **argv)
{
    bench_init(argc, argv, "scorer");
    signal(SIGPIPE, SIG_IGN);
    pin_to(true);
    find_scorer();
    if (access(scorer_bin, X_OK)) {
        fprintf(stderr, "bench_scorer: %s not found (build vitals-scorer)\n", scorer_bin);
        return 1;
    }
    curl_global_init(CURL_GLOBAL_DEFAULT);
    snprintf(tmpdir, sizeof tmpdir, "/tmp/vt-bench-scorer-XXXXXX");
    if (!mkdtemp(tmpdir))
        return 1;
    uint64_t wal_mib = getenv("BENCH_SCORER_WAL_MIB") ? strtoull(getenv("BENCH_SCORER_WAL_MIB"), 0, 10) : 1000;
    uint32_t rss_series = getenv("BENCH_SCORER_RSS_SERIES") ? (uint32_t)atoi(getenv("BENCH_SCORER_RSS_SERIES")) : 100;
    sd_templates(templates, now_ms());
    char data[512], scores[512];
    snprintf(data, sizeof data, "%s/data", tmpdir);
    snprintf(scores, sizeof scores, "%s/scores.json", tmpdir);
    write_scores(scores);

    /* 1: pushes over 10k series (no scores loaded: evaluation would share the CPU) */
    keys = sd_keys(n_keys = 10000);
    struct daemon d;
    bool eval_only = getenv("BENCH_SCORER_EVAL_ONLY") && atoi(getenv("BENCH_SCORER_EVAL_ONLY"));
    bool push_only = getenv("BENCH_SCORER_PUSH_ONLY") && atoi(getenv("BENCH_SCORER_PUSH_ONLY"));
    if (getenv("BENCH_SCORER_PUSH_BATCHES"))
        push_batches = strtoull(getenv("BENCH_SCORER_PUSH_BATCHES"), NULL, 10);
    push_only |= push_batches > 0;
    if (eval_only) {
        if (daemon_start(&d, data, scores, 1))
            return 1;
        goto eval;
    }
    if (daemon_start(&d, data, NULL, 0))
        return 1;
    int64_t ws = now_ms() - now_ms() % 10000 - 10000;
    push_run(&d, 1000, next_steady, ws, 0); /* warm-up: every series has data */
    /* Uncompressed, then zstd-compressed (as agents ship by default: the
     * scorer inflates, and keeps the compressed bytes in the WAL). Each run
     * is one snapshot period (~108,000 batches of this size), ending with
     * its snapshot. */
    int runs = getenv("BENCH_SCORER_PUSH_RUNS") ? atoi(getenv("BENCH_SCORER_PUSH_RUNS")) : 3;
    double rates[9];
    runs = runs < 1 ? 1 : runs > 9 ? 9 : runs;
    for (int i = 0; i < runs; i++)
        rates[i] = measured_push(&d, ws, VT_GRPC_ENC_IDENTITY);
    for (int i = 1; i < runs; i++) /* insertion sort: a handful */
        for (int j = i; j > 0 && rates[j - 1] > rates[j]; j--) {
            double t = rates[j];
            rates[j] = rates[j - 1];
            rates[j - 1] = t;
        }
    double rate = runs % 2 ? rates[runs / 2] : (rates[runs / 2 - 1] + rates[runs / 2]) / 2;
    fprintf(stderr, "bench_scorer: push identity: median of %d periods: %.0f batches/cpu_s (%.0f .. %.0f)\n",
            runs, rate, rates[0], rates[runs - 1]);
    double zstd_rate = push_batches ? 0 : measured_push(&d, ws, VT_GRPC_ENC_ZSTD);
    bench_report("push_batches_per_cpu_s", rate, "batches/cpu_s", ">= 20000");
    bench_report("push_zstd_batches_per_cpu_s", zstd_rate, "batches/cpu_s", NULL);
    double dups = metric(&d, "vitals_scorer_batches_duplicate_total");
    if (dups != 0) /* a duplicate is acked without WAL or merge: the figures would lie */
        fprintf(stderr, "bench_scorer: %.0f pushes were duplicates: push figures invalid\n", dups);
    if (push_only) {
        daemon_kill(&d, SIGTERM);
        rm_rf(tmpdir);
        curl_global_cleanup();
        return 0;
    }

    /* 4: the push runs ended with a snapshot; log wal_mib MiB of batches
     * more (below the policy's 1 GiB: no snapshot), SIGKILL, restart (with
     * the scores) and time it to /readyz - all of it replayed */
    double snaps = metric(&d, "vitals_scorer_snapshots_total");
    double logged0 = metric(&d, "vitals_scorer_wal_written_bytes_total");
    while (metric(&d, "vitals_scorer_wal_written_bytes_total") - logged0 <
           (double)wal_mib * 1048576) {
        ws = now_ms() - now_ms() % 10000 - 10000;
        push_run(&d, 1000, next_steady, ws, 0); /* ~10 MB steps: stops short of 1 GiB */
    }
    if (metric(&d, "vitals_scorer_snapshots_total") != snaps)
        fprintf(stderr, "bench_scorer: a snapshot ran before the kill: restart replays less\n");
    daemon_kill(&d, SIGKILL);
    double t0 = bench_now();
    if (daemon_start(&d, data, scores, 1))
        return 1;
    bench_report("restart_s_1gib_wal", bench_now() - t0, "s", "< 10");

    /* 2: evaluation of 20 scores over the 10k series, each with data in
     * every 10 s bucket of the 5 min window. On the restarted scorer the
     * window also holds what the push phases put in it (every push batch
     * went to one of its windows: hundreds of merges per series), so its
     * figure depends on how many ran; it is printed, and the reported one
     * is taken on a fresh scorer with just the 31 windows. */
    fprintf(stderr, "bench_scorer: eval on the restarted scorer (its window also holds the push "
                    "phases' batches): %.1f ms\n", eval_figure(&d));
    daemon_kill(&d, SIGTERM);
    rm_rf(data);
    if (daemon_start(&d, data, scores, 3))
        return 1;
eval:
    bench_report("eval_ms_10k_series_20_scores", eval_figure(&d), "ms", "< 100");
    daemon_kill(&d, SIGTERM);
    rm_rf(data);
    if (eval_only) {
        rm_rf(tmpdir);
        curl_global_cleanup();
        return 0;
    }

    /* 3: RSS of 2 days of data for rss_series series */
    free(keys);
    keys = sd_keys(n_keys = rss_series);
    if (daemon_start(&d, data, NULL, 2))
        return 1;
    usleep(300000);
    double rss0 = proc_rss_mib(d.pid);
    uint64_t windows = (2 * 24 - 2) * 60 + 2 * 360;
    push_run(&d, windows * (rss_series / SD_SERIES_PER_BATCH), next_history, now_ms() - now_ms() % 60000, 0);
    usleep(6000000); /* one expiry pass: cascades anything that aged meanwhile */
    double rss1 = proc_rss_mib(d.pid);
    bench_report("rss_mib_per_1k_series_2d", (rss1 - rss0) * 1000.0 / rss_series, "MiB", NULL);
    daemon_kill(&d, SIGTERM);
    rm_rf(tmpdir);
    curl_global_cleanup();
    return 0;
}
