/*
 * agent.h - the state of one vitals-agent process and the seams between its
 * modules. Data flows downward through them:
 *
 *   ingest   unix stream + datagram sockets: lines -> decode -> spool_add_*
 *   spool    frames of lines -> segment log (worker thread), sync waiters
 *   window   live per-window aggregation; closed windows -> packed batches
 *   shipper  batches -> gRPC Push -> ack -> checkpoint -> trim
 *   admin    /healthz /readyz /metrics
 *
 * Invariants that make a crash harmless:
 *   - A window is cut by the arrival time of the FRAME a line is in (the
 *     spool records it), never by the record's own time; a frame never spans
 *     two windows; a "#seal" line closes a window early (graceful shutdown).
 *     So the frames of the spool alone determine every window, and replaying
 *     them rebuilds exactly what live aggregation built.
 *   - Sequence numbers count spool lines. A window covers a contiguous range
 *     [first_seq, end_seq); a batch's identity is (agent id, window start,
 *     range, part), hence the same after a rebuild.
 *   - The shipper's checkpoint ("shipper") only moves past a window once
 *     every batch of it was acknowledged (or set aside as non-retryable).
 *
 * Everything here runs on the loop thread except the work functions of
 * spool.c's job queue, which run on a libuv worker thread one at a time and
 * touch only what their job owns.
 */
#ifndef VT_AGENT_H
#define VT_AGENT_H

#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <uv.h>

#include "aggregate.h"
#include "grpc.h"
#include "http_server.h"
#include "metrics.h"
#include "record.h"
#include "segment_log.h"
#include "series.h"

struct agent_config {
    char *socket_dir, *spool_dir, *scorer, *admin_addr, *otlp_grpc_addr, *otlp_http_addr;
    char *service, *token_file, *agent_id, *log_level;
    char *otlp_labels, *otlp_metrics;
    int64_t otlp_max_request_bytes;
    int64_t window_ms, flush_interval_ms, frame_bytes, frame_interval_ms;
    int64_t batch_max_bytes, batch_max_aggregates, max_in_flight, compression_level;
    int64_t ship_compression_level;
    int64_t spool_max_bytes, segment_bytes, fsync_interval_ms, max_series, max_live_windows;
    int64_t shutdown_grace_ms, backoff_initial_ms, backoff_max_ms, ship_timeout_ms;
    int64_t ready_max_lag_ms, max_connections, max_pending_bytes;
    int64_t max_record_bytes, max_labels, max_metrics, max_embedding;
    int fsync, socket_mode;
};

/* A run of spool lines waiting to be appended as one frame. */
struct frame {
    struct frame *next;
    uint64_t id;          /* local, increasing: sync waiters wait for an id */
    int64_t arrival_ms;   /* wall clock of the first line */
    struct window *window;
    char *buf;
    size_t len, cap;
    uint32_t lines;
};

/* One window of arrival time. LIVE windows aggregate at ingest; COLD ones
 * (replayed at start, or evicted to bound memory) are rebuilt from the spool
 * when their turn to ship comes. */
struct window {
    struct window *next;
    int64_t start_ms;
    uint64_t first_seq, end_seq; /* appended lines so far: [first_seq, end_seq) */
    uint64_t lines;              /* appended lines */
    uint64_t records, invalid;   /* accepted / rejected lines added (live or replayed) */
    uint32_t frames_pending;     /* frames of this window not yet appended */
    bool live;                   /* `series` holds every line of the window */
    bool sealed;                 /* no line will join it any more */
    bool queued;                 /* handed to the shipper */
    bool building;               /* its series belong to a build job */
    struct vt_series_table series; /* key -> struct vt_aggregate * (live only) */
    uint64_t overflow_records;
};

struct agent;

/* --- spool.c --- */
int spool_open(struct agent *ag);                   /* open + replay window metadata */
void spool_close(struct agent *ag);                  /* close timers (loop still runs) */
void spool_free(struct agent *ag);                   /* after the loop ended */
/* The frame (and window) a line arriving now belongs to; opens one if needed. */
struct frame *spool_frame(struct agent *ag, int64_t now_ms);
void spool_add_line(struct agent *ag, struct frame *f, const char *line, size_t len);
void spool_seal_frame(struct agent *ag);            /* queue the open frame for append */
/* Call cb(data) once every line added so far is appended (and synced by policy). */
typedef void (*spool_sync_cb)(void *data, int status);
void spool_wait(struct agent *ag, spool_sync_cb cb, void *data);
/* Write a "#seal" frame closing the current window (shutdown). */
void spool_seal_window(struct agent *ag);
/* Persist the shipper checkpoint and trim, on the worker. */
void spool_checkpoint(struct agent *ag, uint64_t seq);
/* Build the batches of a sealed window on the worker; done() on the loop. */
typedef void (*spool_built_cb)(struct agent *ag, struct window *w, uint8_t **batches,
                               size_t *lens, char **ids, uint32_t n, uint64_t records,
                               int status);
void spool_build(struct agent *ag, struct window *w, spool_built_cb done);
uint64_t spool_pending_bytes(const struct agent *ag);
void spool_stats(const struct agent *ag, vt_seglog_stats *out); /* as of the last job */
bool spool_idle(const struct agent *ag);

/* --- window.c --- */
struct window *window_get(struct agent *ag, int64_t arrival_ms);
void window_add_record(struct agent *ag, struct window *w, const struct vt_record *rec);
/* Count a rejected line whose spool line "!reason service" was written. */
void window_add_invalid(struct agent *ag, struct window *w, enum vt_record_reject reason,
                        const char *service, size_t slen);
/* A frame of w was appended: its lines are [first_seq, first_seq + lines). */
void window_frame_appended(struct window *w, uint64_t first_seq, uint32_t lines);
void window_tick(struct agent *ag, int64_t now_ms, bool force_close);
void window_free(struct window *w);
/* Forget a window's aggregates (it becomes cold: rebuilt from the spool). */
void window_discard(struct window *w);
/* Pack the aggregates of a window (worker thread): sorted series, batches of
 * at most max_aggregates / max_bytes. Returns 0 or -errno. */
int window_pack(const struct agent_config *cfg, const char *agent_id, struct window *w,
                uint8_t ***batches, size_t **lens, char ***ids, uint32_t *n,
                uint64_t *records);
/* Fold one spool payload (a frame's lines) into w (replay and rebuild). */
void window_replay_payload(struct vt_record_decoder *dec, struct window *w, int64_t arrival_ms,
                           const char *data, size_t len, uint32_t max_series,
                           uint64_t skip_lines);

/* --- shipper.c --- */
int shipper_start(struct agent *ag);
void shipper_enqueue(struct agent *ag, struct window *w); /* a sealed window, in order */
void shipper_close(struct agent *ag);
bool shipper_drained(const struct agent *ag);
double shipper_lag_s(const struct agent *ag);

/* --- ingest.c --- */
int ingest_start(struct agent *ag);
void ingest_stop(struct agent *ag);                  /* stop accepting, close sockets */
void ingest_pause(struct agent *ag, bool paused);    /* backpressure from the spool */
void ingest_free(struct agent *ag);                  /* after the loop ended */
/* For other ingest paths (OTLP): accept one decoded record (spooled as its
 * canonical NDJSON line, aggregated as that line will replay), or count a
 * rejected one ("!reason service" in the spool). Wait for durability with
 * spool_wait(). ingest_record returns 0 or -E2BIG (rejected as too_large). */
int ingest_record(struct agent *ag, struct vt_record *rec);
void ingest_reject(struct agent *ag, enum vt_record_reject reason, const struct vt_record *hint);

/* --- otlp.c --- */
int otlp_start(struct agent *ag);  /* OTLP/gRPC + OTLP/HTTP listeners (empty address: off) */
void otlp_stop(struct agent *ag);  /* close the listeners (idempotent) */
void otlp_free(struct agent *ag);  /* after the loop ended and spool_free() */

/* --- admin.c --- */
int admin_start(struct agent *ag);
void admin_stop(struct agent *ag);
void admin_free(struct agent *ag);

struct agent_metrics {
    vt_counter *received, *accepted, *bytes_read, *datagrams, *syncs, *connections;
    vt_counter *rejected[VT_REJECT__COUNT];
    vt_counter *spool_dropped, *spool_write_errors, *frames;
    vt_counter *batches_sent, *batches_acked, *batches_retried, *batches_rejected,
        *batches_duplicate, *records_shipped, *bytes_shipped, *windows_built,
        *series_overflow;
    vt_histogram *ship_latency;
    vt_gauge *series;
};

struct agent {
    uv_loop_t *loop;
    struct agent_config cfg;
    int64_t clock_offset_ms;           /* wall ms = uv_now() + offset */
    vt_metrics *metrics;
    struct agent_metrics m;
    struct vt_record_decoder *decoder; /* loop thread */
    vt_seglog *log;
    struct spool *spool;
    struct window *windows;            /* by start, oldest first; not yet shipped */
    struct shipper *shipper;
    struct ingest *ingest;
    struct admin *admin;
    struct otlp *otlp;
    char ship_id[192];                 /* agent id + "." + spool incarnation: names batches */
    char *line_buf;                    /* max_record_bytes + 1024: canonical lines (OTLP) */
    bool stopping;
    int exit_code;
};

/* The spool's line format, read in this one place by the start-up replay and
 * by rebuilds: a record as received, "!reason service" for a rejected one,
 * "#seal" closing a window. Takes the next line of [*p, end), advances *p. */
enum spool_line { SPOOL_LINE_EMPTY, SPOOL_LINE_RECORD, SPOOL_LINE_INVALID, SPOOL_LINE_SEAL };

static inline enum spool_line spool_line_next(const char **p, const char *end,
                                              const char **line, size_t *len)
{
    const char *nl = memchr(*p, '\n', (size_t)(end - *p));
    *line = *p;
    *len = nl ? (size_t)(nl - *p) : (size_t)(end - *p);
    *p += *len + 1;
    if (*len == 0)
        return SPOOL_LINE_EMPTY;
    if ((*line)[0] == '#')
        return SPOOL_LINE_SEAL;
    return (*line)[0] == '!' ? SPOOL_LINE_INVALID : SPOOL_LINE_RECORD;
}

static inline int64_t agent_now_ms(struct agent *ag)
{
    return (int64_t)uv_now(ag->loop) + ag->clock_offset_ms;
}

#endif
