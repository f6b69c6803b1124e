/*
 * main.c - vitals-agent: configuration, wiring, signals, and the order of
 * start-up and shutdown. See agent.h for how the modules fit together.
 *
 * Start-up: open the spool (recovering it and replaying what was not yet
 * shipped), start the shipper, then open the sockets: a record is never
 * accepted before the spool is ready for it.
 * SIGTERM/SIGINT: stop accepting (datagrams and stream bytes already queued
 * are still read), seal the current window, ship what can be shipped within
 * --shutdown-grace, exit 0. Whatever did not ship stays in the spool for the
 * next start. A second signal exits at once (the spool is consistent at
 * every moment: that is what SIGKILL relies on too).
 */
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "agent.h"
#include "config.h"
#include "log.h"

#define K(name, type, field, def, help) \
    {name, type, offsetof(struct agent_config, field), def, help, NULL, 0, 0}
#define KR(name, type, field, def, help, lo, hi) \
    {name, type, offsetof(struct agent_config, field), def, help, NULL, lo, hi}

static const struct vt_knob knobs[] = {
    K("socket-dir", VT_KNOB_STRING, socket_dir, "/run/vitals",
      "directory of the ingest sockets ingest.sock (NDJSON stream) and ingest.dgram"),
    K("spool-dir", VT_KNOB_STRING, spool_dir, "/var/lib/vitals/spool",
      "directory of the on-disk spool (segment files, checkpoint)"),
    K("scorer", VT_KNOB_STRING, scorer, "",
      "scorer gRPC address, e.g. http://vitals-scorer:7400 (empty: spool only)"),
    K("admin-addr", VT_KNOB_STRING, admin_addr, "127.0.0.1:7401",
      "HOST:PORT of /healthz, /readyz and /metrics"),
    K("otlp-grpc-addr", VT_KNOB_STRING, otlp_grpc_addr, "127.0.0.1:4317",
      "OTLP/gRPC listen address: TraceService/Export (empty: off)"),
    K("otlp-http-addr", VT_KNOB_STRING, otlp_http_addr, "127.0.0.1:4318",
      "OTLP/HTTP listen address: POST /v1/traces, protobuf or JSON (empty: off)"),
    K("otlp-labels", VT_KNOB_STRING, otlp_labels, "",
      "span/resource attributes copied into labels, e.g. deployment.environment=env,tier"),
    K("otlp-metrics", VT_KNOB_STRING, otlp_metrics, "",
      "numeric span attributes mapped to metrics, attr=metric,... (ttft_ms/ttft_s: TTFT)"),
    KR("otlp-max-request-bytes", VT_KNOB_BYTES, otlp_max_request_bytes, "64MiB",
       "largest OTLP request, decompressed (over: RESOURCE_EXHAUSTED / 413)", 1024, 1LL << 30),
    K("service", VT_KNOB_STRING, service, "",
      "service of records that name none (in Kubernetes: the pod's app label)"),
    K("token-file", VT_KNOB_STRING, token_file, "",
      "file holding the bearer token sent to the scorer (re-read on UNAUTHENTICATED)"),
    K("agent-id", VT_KNOB_STRING, agent_id, "",
      "stable identity of this agent in batch ids (default: the host name)"),
    K("log-level", VT_KNOB_STRING, log_level, "info", "debug, info, warn or error"),
    KR("window", VT_KNOB_DURATION, window_ms, "10s",
       "aggregation window, by arrival time", 1000, 3600000),
    KR("flush-interval", VT_KNOB_DURATION, frame_interval_ms, "200ms",
       "longest a received record waits in memory before it is written to the spool",
       1, 60000),
    KR("frame-bytes", VT_KNOB_BYTES, frame_bytes, "512KiB",
       "spool frame size: records are compressed and written in frames of about this size",
       4096, 16 << 20),
    KR("batch-max-bytes", VT_KNOB_BYTES, batch_max_bytes, "4MiB",
       "largest batch sent to the scorer (before compression)", 1024, 64 << 20),
    KR("batch-max-aggregates", VT_KNOB_INT, batch_max_aggregates, "1000",
       "most series aggregates in one batch", 1, 1000000),
    KR("max-in-flight", VT_KNOB_INT, max_in_flight, "4", "batches awaiting an ack at once",
       1, 256),
    KR("compression-level", VT_KNOB_INT, compression_level, "1",
       "zstd level of the spool (on the hot path: keep it low)", -7, 19),
    KR("ship-compression-level", VT_KNOB_INT, ship_compression_level, "6",
       "zstd level of batches sent to the scorer (once per window: worth more effort)", -7, 19),
    KR("spool-max-bytes", VT_KNOB_BYTES, spool_max_bytes, "1GiB",
       "spool bound; past it the oldest segment is dropped and its records counted as lost",
       1 << 20, INT64_MAX / 2),
    KR("segment-bytes", VT_KNOB_BYTES, segment_bytes, "16MiB", "spool segment file size",
       64 << 10, 1LL << 32),
    {"fsync", VT_KNOB_ENUM, offsetof(struct agent_config, fsync), "interval",
     "when the spool is fsynced: never, every --fsync-interval, or after every frame",
     "none|interval|always", 0, 0},
    KR("fsync-interval", VT_KNOB_DURATION, fsync_interval_ms, "1s",
       "fsync period with --fsync interval", 10, 3600000),
    KR("max-series", VT_KNOB_INT, max_series, "1000",
       "series per window; records of further series go to __overflow__", 1, 10000000),
    KR("max-live-windows", VT_KNOB_INT, max_live_windows, "6",
       "closed windows kept aggregated in memory; older ones are rebuilt from the spool",
       1, 10000),
    KR("shutdown-grace", VT_KNOB_DURATION, shutdown_grace_ms, "10s",
       "on SIGTERM, how long to keep shipping before exiting", 0, 3600000),
    KR("backoff-initial", VT_KNOB_DURATION, backoff_initial_ms, "100ms",
       "first retry delay ceiling (exponential backoff with full jitter)", 1, 3600000),
    KR("backoff-max", VT_KNOB_DURATION, backoff_max_ms, "30s", "retry delay cap", 1, 86400000),
    KR("ship-timeout", VT_KNOB_DURATION, ship_timeout_ms, "10s", "deadline of one Push call",
       100, 3600000),
    KR("ready-max-lag", VT_KNOB_DURATION, ready_max_lag_ms, "5m",
       "/readyz fails when the oldest unshipped record is older than this", 1000, 86400000),
    KR("max-connections", VT_KNOB_INT, max_connections, "1024",
       "concurrent stream connections", 1, 1000000),
    KR("max-pending-bytes", VT_KNOB_BYTES, max_pending_bytes, "32MiB",
       "records waiting for the disk before reading pauses", 1 << 20, 1LL << 34),
    KR("max-record-bytes", VT_KNOB_BYTES, max_record_bytes, "64KiB", "largest record",
       256, 16 << 20),
    KR("max-labels", VT_KNOB_INT, max_labels, "32", "labels per record", 1, 1024),
    KR("max-metrics", VT_KNOB_INT, max_metrics, "64", "named metrics per record", 1, 1024),
    KR("max-embedding", VT_KNOB_INT, max_embedding, "4096", "embedding dimensions", 1, 65536),
    {"socket-mode", VT_KNOB_OCTAL, offsetof(struct agent_config, socket_mode), "0660",
     "file mode of the ingest sockets", NULL, 0, 0},
};
#define N_KNOBS (sizeof knobs / sizeof knobs[0])

static const struct vt_program_info prog = {
    "vitals-agent",
    "vitals sidecar: takes one record per LLM call on a Unix socket, spools it,\n"
    "aggregates it per series and window, and ships the aggregates to the scorer."};

static struct {
    uv_signal_t term, intr, hup;
    uv_timer_t tick, shutdown;
    int64_t shutdown_deadline;
} sig;

static double m_spool_bytes(void *d)
{
    vt_seglog_stats st;
    spool_stats(d, &st);
    return (double)st.bytes;
}
static double m_spool_segments(void *d)
{
    vt_seglog_stats st;
    spool_stats(d, &st);
    return (double)st.segments;
}
static double m_lag(void *d) { return shipper_lag_s(d); }
static double m_pending(void *d) { return (double)spool_pending_bytes(d); }

static int register_metrics(struct agent *ag)
{
    vt_metrics *r = ag->metrics = vt_metrics_new();
    if (!r)
        return -1;
    struct agent_metrics *m = &ag->m;
    m->received = vt_metrics_counter(r, "vitals_agent_records_received_total",
                                     "Records received on any socket (accepted + rejected).");
    m->accepted = vt_metrics_counter(r, "vitals_agent_records_accepted_total",
                                     "Records written to the spool.");
    vt_metric_family *rej = vt_metrics_counter_family(
        r, "vitals_agent_records_rejected_total", "Records rejected, by reason.", "reason");
    for (int i = 1; i < VT_REJECT__COUNT; i++)
        m->rejected[i] = vt_metrics_counter_get(rej, vt_record_reject_name(i));
    m->rejected[0] = m->rejected[VT_REJECT_PARSE_ERROR];
    m->bytes_read = vt_metrics_counter(r, "vitals_agent_bytes_read_total",
                                       "Bytes read from the ingest sockets.");
    m->datagrams = vt_metrics_counter(r, "vitals_agent_datagrams_total", "Datagrams received.");
    m->syncs = vt_metrics_counter(r, "vitals_agent_syncs_total", "Sync requests received.");
    m->connections = vt_metrics_counter(r, "vitals_agent_connections_total",
                                        "Stream connections accepted.");
    vt_metrics_gauge_fn(r, "vitals_agent_spool_bytes", "Bytes of the spool on disk.",
                        m_spool_bytes, ag);
    vt_metrics_gauge_fn(r, "vitals_agent_spool_segments", "Spool segment files.",
                        m_spool_segments, ag);
    vt_metrics_gauge_fn(r, "vitals_agent_spool_pending_bytes",
                        "Bytes received and not yet written to the spool.", m_pending, ag);
    vt_metrics_gauge_fn(r, "vitals_agent_oldest_unshipped_age_seconds",
                        "Age of the oldest record not yet acknowledged by the scorer.", m_lag, ag);
    m->spool_dropped = vt_metrics_counter(
        r, "vitals_agent_spool_dropped_records_total",
        "Spool lines lost because the spool reached spool-max-bytes.");
    m->spool_write_errors = vt_metrics_counter(r, "vitals_agent_spool_write_errors_total",
                                               "Failed spool appends (retried).");
    m->frames = vt_metrics_counter(r, "vitals_agent_spool_frames_total", "Frames appended.");
    m->batches_sent = vt_metrics_counter(r, "vitals_agent_batches_sent_total", "Push calls made.");
    m->batches_acked = vt_metrics_counter(r, "vitals_agent_batches_acked_total",
                                          "Batches acknowledged by the scorer.");
    m->batches_duplicate = vt_metrics_counter(
        r, "vitals_agent_batches_duplicate_total",
        "Acknowledged batches the scorer already had (replays after a crash).");
    m->batches_retried = vt_metrics_counter(r, "vitals_agent_batches_retried_total",
                                            "Push calls that failed and will be retried.");
    m->batches_rejected = vt_metrics_counter(
        r, "vitals_agent_batches_rejected_total",
        "Batches refused for good by the scorer, set aside in <spool-dir>/rejected.");
    m->records_shipped = vt_metrics_counter(r, "vitals_agent_records_shipped_total",
                                            "Records the scorer acknowledged as merged.");
    m->bytes_shipped = vt_metrics_counter(r, "vitals_agent_shipped_bytes_total",
                                          "Batch bytes sent, before gRPC compression.");
    m->windows_built = vt_metrics_counter(r, "vitals_agent_windows_built_total",
                                            "Windows packed into batches.");
    m->series_overflow = vt_metrics_counter(
        r, "vitals_agent_series_overflow_records_total",
        "Records folded into the __overflow__ series (max-series reached).");
    m->series = vt_metrics_gauge(r, "vitals_agent_series", "Series in the current window.");
    m->ship_latency = vt_metrics_histogram(r, "vitals_agent_ship_latency_seconds",
                                           "Push round trip, send to ack.",
                                           vt_metrics_latency_buckets,
                                           vt_metrics_latency_buckets_len);
    return m->received && m->ship_latency && m->series ? 0 : -1;
}

static void set_clock(struct agent *ag)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    int64_t wall = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
    uv_update_time(ag->loop);
    ag->clock_offset_ms = wall - (int64_t)uv_now(ag->loop);
}

static void finish(struct agent *ag)
{
    uv_timer_stop(&sig.tick);
    uv_timer_stop(&sig.shutdown);
    uv_close((uv_handle_t *)&sig.tick, NULL);
    uv_close((uv_handle_t *)&sig.shutdown, NULL);
    uv_close((uv_handle_t *)&sig.term, NULL);
    uv_close((uv_handle_t *)&sig.intr, NULL);
    uv_close((uv_handle_t *)&sig.hup, NULL);
    shipper_close(ag);
    otlp_stop(ag);
    admin_stop(ag);
    spool_close(ag);
}

static void on_shutdown_check(uv_timer_t *t)
{
    struct agent *ag = t->data;
    window_tick(ag, agent_now_ms(ag), true);
    bool done = spool_idle(ag) && (shipper_drained(ag) || !ag->cfg.scorer[0]);
    if (done || agent_now_ms(ag) >= sig.shutdown_deadline) {
        if (!done)
            vt_warn("agent: shutdown grace over; %.0f s of records stay in the spool for the "
                    "next start", shipper_lag_s(ag));
        vt_info("agent: stopped");
        finish(ag);
    }
}

static void begin_shutdown(struct agent *ag, int signum)
{
    if (ag->stopping) {
        vt_warn("agent: second signal; exiting now (the spool keeps everything accepted)");
        finish(ag);
        return;
    }
    vt_info("agent: %s: no longer accepting; shipping for up to %lld ms", strsignal(signum),
            (long long)ag->cfg.shutdown_grace_ms);
    ag->stopping = true;
    ingest_stop(ag);
    otlp_stop(ag);
    window_tick(ag, agent_now_ms(ag), true); /* seals the last window with "#seal" */
    sig.shutdown_deadline = agent_now_ms(ag) + ag->cfg.shutdown_grace_ms;
    uv_timer_start(&sig.shutdown, on_shutdown_check, 0, 50);
}

static void on_signal(uv_signal_t *h, int signum)
{
    struct agent *ag = h->data;
    if (signum == SIGHUP) {
        vt_info("agent: SIGHUP ignored (restart to change the configuration)");
        return;
    }
    begin_shutdown(ag, signum);
}

/* Wakes up just after each window boundary (and at least once a second to
 * follow the wall clock), so a window closes - and ships - when it ends, not
 * up to a tick later; idle, that is one wake-up per second at most. */
static void on_tick(uv_timer_t *t)
{
    struct agent *ag = t->data;
    set_clock(ag);
    int64_t now = agent_now_ms(ag);
    window_tick(ag, now, false);
    int64_t next = ag->cfg.window_ms - now % ag->cfg.window_ms + 1;
    uv_timer_start(t, on_tick, (uint64_t)(next < 1000 ? next : 1000), 0);
}

int main(int argc, char **argv)
{
    static struct agent ag;
    char err[512];
    switch (vt_config_load(&prog, knobs, N_KNOBS, &ag.cfg, argc, argv, err, sizeof err)) {
    case VT_CONFIG_EXIT:
        return 0;
    case VT_CONFIG_ERROR:
        fprintf(stderr, "vitals-agent: %s\n", err);
        return 2;
    case VT_CONFIG_OK:
        break;
    }
    int level = vt_log_parse_level(ag.cfg.log_level);
    if (level < 0) {
        fprintf(stderr, "vitals-agent: --log-level: expected debug, info, warn or error, got '%s'\n",
                ag.cfg.log_level);
        return 2;
    }
    vt_log_set_level((enum vt_log_level)level);
    if (!*ag.cfg.agent_id) {
        char host[256] = "agent";
        gethostname(host, sizeof host - 1);
        free(ag.cfg.agent_id);
        ag.cfg.agent_id = strdup(host);
    }
    if (strchr(ag.cfg.agent_id, '/')) {
        fprintf(stderr, "vitals-agent: --agent-id: must not contain '/'\n");
        return 2;
    }
    if (ag.cfg.max_pending_bytes < 2 * ag.cfg.frame_bytes)
        ag.cfg.max_pending_bytes = 2 * ag.cfg.frame_bytes;
    signal(SIGPIPE, SIG_IGN);

    ag.loop = uv_default_loop();
    set_clock(&ag);
    struct vt_record_limits lim;
    vt_record_limits_default(&lim);
    lim.max_record_bytes = (uint32_t)ag.cfg.max_record_bytes;
    lim.max_labels = (uint32_t)ag.cfg.max_labels;
    lim.max_metrics = (uint32_t)ag.cfg.max_metrics;
    lim.max_embedding = (uint32_t)ag.cfg.max_embedding;
    ag.decoder = vt_record_decoder_new(&lim, ag.cfg.service);
    ag.line_buf = malloc((size_t)ag.cfg.max_record_bytes + 1024);
    if (!ag.decoder || !ag.line_buf || register_metrics(&ag) != 0) {
        fprintf(stderr, "vitals-agent: cannot start: out of memory or bad limits\n");
        return 1;
    }
    int rc = spool_open(&ag);
    if (rc == 0)
        rc = shipper_start(&ag);
    if (rc == 0)
        rc = ingest_start(&ag);
    if (rc == 0)
        rc = otlp_start(&ag);
    if (rc == 0)
        rc = admin_start(&ag);
    if (rc != 0) {
        vt_error("agent: start-up failed; exiting");
        return 1;
    }
    uv_signal_init(ag.loop, &sig.term);
    uv_signal_init(ag.loop, &sig.intr);
    uv_signal_init(ag.loop, &sig.hup);
    sig.term.data = sig.intr.data = sig.hup.data = &ag;
    uv_signal_start(&sig.term, on_signal, SIGTERM);
    uv_signal_start(&sig.intr, on_signal, SIGINT);
    uv_signal_start(&sig.hup, on_signal, SIGHUP);
    uv_timer_init(ag.loop, &sig.tick);
    uv_timer_init(ag.loop, &sig.shutdown);
    sig.tick.data = sig.shutdown.data = &ag;
    uv_timer_start(&sig.tick, on_tick, 0, 0);
    vt_info("agent: %s started (agent id %s, window %lld ms, scorer %s)", VITALS_VERSION,
            ag.cfg.agent_id, (long long)ag.cfg.window_ms,
            *ag.cfg.scorer ? ag.cfg.scorer : "none");

    uv_run(ag.loop, UV_RUN_DEFAULT);

    while (ag.windows) {
        struct window *w = ag.windows;
        ag.windows = w->next;
        window_free(w);
    }
    ingest_free(&ag);
    admin_free(&ag);
    spool_free(&ag);
    otlp_free(&ag); /* after spool_free: its waiters may still answer OTLP calls */
    vt_record_decoder_free(ag.decoder);
    free(ag.line_buf);
    vt_metrics_free(ag.metrics);
    vt_config_free(knobs, N_KNOBS, &ag.cfg);
    uv_loop_close(ag.loop);
    return ag.exit_code;
}
