/*
 * collector.c - Collector/Push with group-committed WAL (see collector.h).
 *
 * One queue of jobs, one job on a worker at a time. A job is either a WAL
 * group (append every queued batch, one fsync) or a snapshot (dump the store,
 * trim the WAL). The store is mutated only on the loop and only while no job
 * runs, so a snapshot on a worker reads a quiet store and the WAL is touched
 * by one thread at a time, as lib/segment_log requires.
 *
 * Group size. A group's fsync costs about the same whatever it holds, so
 * under load a group should hold many batches. Agents keep a few batches in
 * flight and send the next as the acks come, so without care the groups
 * settle into a convoy: a full group acked, the one batch that arrived
 * meanwhile fsynced alone while the acked agents' next batches pile up,
 * those in one full group, again one alone (measured with one agent of 64
 * in flight: groups of 1 and 63 in turn). So a group that would start with
 * less than half the last one - when that one held 8 or more, which says
 * there is load - waits for more, at most wal_group_wait_ms from when it
 * could have started (PostgreSQL's commit_delay / commit_siblings, in
 * other words). Under light load nothing waits.
 */
#include "collector.h"

#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "log.h"
#include "segment_log.h"

#define EXPIRE_EVERY_MS 5000
#define MAX_GROUP 1024 /* batches per WAL job */
#define LOAD_GROUP 8    /* a group this big says there is load: the next may wait */
#define POOL_MAX 128   /* free pends kept */
#define KEPT_POOL_BYTES (1u << 20) /* a pooled pend keeps kept arrays up to this size */

enum job_kind { JOB_NONE = 0, JOB_WAL, JOB_SNAPSHOT };

struct pend {
    struct pend *next;
    vt_grpc_call_t *call;
    struct vt_batch batch; /* points into the request (owned by call until respond) */
    struct vt_batch_kept kept; /* what validation learned, for the merge */
    const uint8_t *zstd;   /* the request as it arrived, if zstd-compressed: the WAL
                              keeps these bytes (NULL: it keeps batch.buf as is) */
    size_t zlen;
    int64_t arrival_ms;
    uint64_t t0_ns;
    bool follower; /* same id as an earlier queued batch: not appended */
    int rc;        /* WAL result */
};

struct vt_collector {
    uv_loop_t *loop;
    vt_store *store;
    vt_grpc_server_t *srv;
    vt_seglog *wal;
    char *token;
    char *snap_path;
    struct vt_collector_opts o;

    struct pend *pool;            /* free pends */
    uint32_t pool_len;
    struct pend *q_head, *q_tail; /* waiting for the next job */
    uint32_t q_len;
    struct pend *job_list;        /* in the running job */
    enum job_kind job;
    uv_work_t work;
    int job_rc;
    uint64_t snap_seq;
    uint64_t snap_t0_ns; /* when the running snapshot job started */
    bool snapshot_wanted, expire_wanted, ready, closing, final_snapshot;
    uint64_t wal_raw_at_snapshot; /* wal_stats.raw_bytes when the last snapshot was written */
    uint64_t changes_since_snapshot;
    vt_collector_close_cb close_cb;
    void *close_data;
    uv_timer_t timer;
    uv_timer_t group_timer; /* a waiting WAL group's deadline */
    uint32_t last_group;    /* batches in the last WAL group */
    uint64_t wait_since;    /* uv_hrtime when the waiting group could have started, or 0 */
    int64_t last_snapshot_ms;
    vt_seglog_stats wal_stats; /* copied on the loop between jobs: the log is
                                  single-threaded, metrics read this copy */

    /* metrics */
    vt_counter *received, *duplicates, *merged_records, *dropped_late, *wal_appends, *wal_syncs,
        *snapshots, *snapshot_errors;
    vt_metric_family *rejected;
    vt_counter *wal_zstd, *wal_raw; /* vitals_scorer_wal_batches_total{stored} */
    vt_histogram *merge_seconds, *push_seconds, *group_size;
};

static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void reject(vt_collector *c, vt_grpc_call_t *call, int status, const char *reason,
                   const char *msg)
{
    vt_counter *k = vt_metrics_counter_get(c->rejected, reason);
    if (k)
        vt_counter_inc(k);
    vt_grpc_respond(call, status, msg, NULL, 0);
}

static void ack(vt_collector *c, vt_grpc_call_t *call, const struct vt_batch *b, bool dup,
                uint64_t records)
{
    Vitals__V1__Ack a = VITALS__V1__ACK__INIT;
    a.batch_id = (char *)b->batch_id;
    a.duplicate = dup;
    a.records = records;
    uint8_t buf[1200];
    size_t n = vitals__v1__ack__get_packed_size(&a);
    if (n > sizeof buf) { /* an id this long was refused by validation */
        vt_grpc_respond(call, VT_GRPC_INTERNAL, "ack too large", NULL, 0);
        return;
    }
    vitals__v1__ack__pack(&a, buf);
    if (dup)
        vt_counter_inc(c->duplicates);
    vt_grpc_respond(call, VT_GRPC_OK, NULL, buf, n);
}

static void start_job(vt_collector *c);

/* ---- the Push handler (loop thread) ---------------------------------------- */

static bool token_ok(const vt_collector *c, const char *auth)
{
    if (!c->token || !*c->token)
        return true;
    if (!auth || strncmp(auth, "Bearer ", 7) != 0)
        return false;
    const char *t = auth + 7;
    size_t a = strlen(t), b = strlen(c->token);
    unsigned char diff = a != b;
    for (size_t i = 0; i < a && i < b; i++) /* constant time over the shorter */
        diff |= (unsigned char)(t[i] ^ c->token[i]);
    return diff == 0;
}

static bool same_batch(const struct vt_batch *a, const struct vt_batch *b)
{
    return a->id_hash == b->id_hash && strcmp(a->batch_id, b->batch_id) == 0 &&
           strcmp(a->agent_id, b->agent_id) == 0;
}

static bool queued(const struct pend *list, const struct vt_batch *b)
{
    for (; list; list = list->next)
        if (!list->follower && same_batch(&list->batch, b))
            return true;
    return false;
}

/* A pend from the pool, or a new one. */
static struct pend *pend_get(vt_collector *c)
{
    struct pend *p = c->pool;
    if (p) {
        c->pool = p->next;
        c->pool_len--;
    } else if (!(p = malloc(sizeof *p))) {
        return NULL;
    } else {
        memset(&p->kept, 0, sizeof p->kept);
    }
    p->next = NULL;
    p->call = NULL;
    p->follower = false;
    p->rc = 0;
    return p;
}

static void pend_put(vt_collector *c, struct pend *p)
{
    if (c->pool_len >= POOL_MAX) {
        vt_batch_kept_free(&p->kept);
        free(p);
        return;
    }
    if (vt_batch_kept_bytes(&p->kept) > KEPT_POOL_BYTES) /* an outsized batch's: not hoarded */
        vt_batch_kept_free(&p->kept);
    p->next = c->pool;
    c->pool = p;
    c->pool_len++;
}

static void on_push(vt_grpc_call_t *call, void *data)
{
    vt_collector *c = data;
    vt_counter_inc(c->received);
    if (c->closing) {
        reject(c, call, VT_GRPC_UNAVAILABLE, "shutting_down", "scorer is shutting down");
        return;
    }
    if (!token_ok(c, vt_grpc_call_metadata(call, "authorization"))) {
        reject(c, call, VT_GRPC_UNAUTHENTICATED, "unauthenticated",
               "missing or wrong bearer token");
        return;
    }
    struct pend *p = pend_get(c);
    if (!p) {
        reject(c, call, VT_GRPC_RESOURCE_EXHAUSTED, "resource_exhausted", "out of memory");
        return;
    }
    size_t len;
    const uint8_t *raw = vt_grpc_call_request(call, &len);
    char err[256];
    struct vt_batch *b = &p->batch;
    int rc = vt_batch_parse(b, raw, len, err, sizeof err);
    b->kept = &p->kept;
    if (!rc)
        rc = vt_store_validate(c->store, b, err, sizeof err);
    if (rc) {
        if (rc == -EPROTO)
            reject(c, call, VT_GRPC_FAILED_PRECONDITION, "failed_precondition", err);
        else
            reject(c, call, VT_GRPC_INVALID_ARGUMENT, "invalid_argument", err);
        pend_put(c, p);
        return;
    }
    if (vt_store_seen(c->store, b)) {
        ack(c, call, b, true, 0);
        pend_put(c, p);
        return;
    }
    p->call = call;
    enum vt_grpc_encoding enc;
    p->zstd = vt_grpc_call_request_encoded(call, &p->zlen, &enc);
    if (p->zstd && (enc != VT_GRPC_ENC_ZSTD || p->zlen >= len))
        p->zstd = NULL;
    vt_counter_inc(p->zstd ? c->wal_zstd : c->wal_raw);
    p->arrival_ms = wall_ms();
    p->t0_ns = uv_hrtime();
    p->follower = queued(c->q_head, b) || queued(c->job_list, b);
    if (c->q_tail)
        c->q_tail->next = p;
    else
        c->q_head = p;
    c->q_tail = p;
    c->q_len++;
    start_job(c);
}

/* ---- jobs -------------------------------------------------------------------- */

static void work_cb(uv_work_t *w)
{
    vt_collector *c = w->data;
    if (c->job == JOB_SNAPSHOT) {
        c->job_rc = vt_store_snapshot_write(c->store, c->snap_path, c->snap_seq);
        if (!c->job_rc) {
            int n = vt_seglog_trim(c->wal, c->snap_seq);
            if (n < 0)
                vt_warn("wal trim failed: %s", strerror(-n));
        }
        return;
    }
    bool any = false;
    for (struct pend *p = c->job_list; p; p = p->next) {
        if (p->follower)
            continue;
        p->rc = p->zstd ? vt_seglog_append_zstd(c->wal, p->zstd, p->zlen, p->batch.len, 1,
                                                p->arrival_ms, NULL)
                        : vt_seglog_append(c->wal, p->batch.buf, p->batch.len, 1, p->arrival_ms,
                                           NULL);
        any |= p->rc == 0;
    }
    if (any) { /* the group's one write (and fsync) */
        int rc = c->o.wal_fsync ? vt_seglog_sync(c->wal) : vt_seglog_flush(c->wal);
        if (rc)
            for (struct pend *p = c->job_list; p; p = p->next)
                if (!p->follower && !p->rc)
                    p->rc = rc;
    }
    c->job_rc = 0;
}

static void finish_wal_job(vt_collector *c)
{
    struct pend *p = c->job_list;
    c->job_list = NULL;
    bool ok = true, merged = false;
    vt_grpc_server_cork(c->srv); /* the group's acks in one write per connection */
    while (p) {
        struct pend *next = p->next;
        uint64_t t0 = uv_hrtime();
        if (p->follower) {
            if (vt_store_seen(c->store, &p->batch))
                ack(c, p->call, &p->batch, true, 0);
            else
                reject(c, p->call, VT_GRPC_UNAVAILABLE, "unavailable", "WAL write failed; retry");
        } else if (p->rc) {
            ok = false;
            vt_error("wal append failed: %s", strerror(-p->rc));
            reject(c, p->call, VT_GRPC_UNAVAILABLE, "unavailable", "WAL write failed; retry");
        } else {
            uint64_t dropped = 0;
            int64_t n = vt_store_apply(c->store, &p->batch, &dropped);
            if (n < 0) {
                /* Durable but not merged: a restart will merge it. Tell the
                 * agent to retry; the retry is then a duplicate. */
                vt_error("merge failed after WAL append: %s", strerror((int)-n));
                reject(c, p->call, VT_GRPC_UNAVAILABLE, "unavailable", "merge failed; retry");
            } else {
                vt_counter_add(c->merged_records, (uint64_t)n);
                vt_counter_add(c->dropped_late, dropped);
                c->changes_since_snapshot++;
                merged = true;
                vt_histogram_observe(c->merge_seconds, (double)(uv_hrtime() - t0) / 1e9);
                ack(c, p->call, &p->batch, false, (uint64_t)n);
            }
        }
        vt_histogram_observe(c->push_seconds, (double)(uv_hrtime() - p->t0_ns) / 1e9);
        pend_put(c, p);
        p = next;
    }
    vt_grpc_server_uncork(c->srv);
    c->ready = ok;
    if (merged && c->o.on_merged)
        c->o.on_merged(c->o.on_merged_data);
}

static void after_work_cb(uv_work_t *w, int status)
{
    vt_collector *c = w->data;
    enum job_kind k = c->job;
    c->job = JOB_NONE;
    vt_seglog_stats_get(c->wal, &c->wal_stats);
    if (k == JOB_WAL) {
        finish_wal_job(c);
    } else {
        if (c->job_rc || status) {
            vt_counter_inc(c->snapshot_errors);
            vt_error("snapshot failed: %s", strerror(c->job_rc ? -c->job_rc : EIO));
        } else {
            vt_counter_inc(c->snapshots);
            c->wal_raw_at_snapshot = c->wal_stats.raw_bytes;
            vt_info("snapshot written wal_seq=%" PRIu64 " wal_bytes=%" PRIu64 " seconds=%.3f",
                    c->snap_seq, c->wal_stats.bytes, (double)(uv_hrtime() - c->snap_t0_ns) / 1e9);
        }
        c->last_snapshot_ms = wall_ms();
    }
    start_job(c);
}

static void finish_close(vt_collector *c);

static void on_group_timer(uv_timer_t *t)
{
    start_job(t->data);
}

/* Whether the queued batches should wait for more before their WAL group
 * starts (see top); if so, the deadline timer runs. */
static bool group_should_wait(vt_collector *c)
{
    if (c->o.wal_group_wait_ms <= 0 || !c->o.wal_fsync || c->closing ||
        c->last_group < LOAD_GROUP ||
        c->q_len >= c->last_group / 2)
        return false;
    uint64_t now = uv_hrtime(), wait_ns = (uint64_t)c->o.wal_group_wait_ms * 1000000;
    if (!c->wait_since)
        c->wait_since = now; /* the group could start now: it waits from here */
    if (now - c->wait_since >= wait_ns)
        return false;
    if (!uv_is_active((uv_handle_t *)&c->group_timer))
        uv_timer_start(&c->group_timer, on_group_timer,
                       (wait_ns - (now - c->wait_since) + 999999) / 1000000, 0);
    return true;
}

static void start_job(vt_collector *c)
{
    if (c->job != JOB_NONE)
        return;
    if (c->expire_wanted) {
        c->expire_wanted = false;
        vt_store_expire(c->store, wall_ms());
    }
    if (c->q_head && group_should_wait(c))
        return; /* more batches are on their way (see top); the timer or they start it */
    if (c->q_head) {
        /* take up to MAX_GROUP queued batches */
        struct pend *p = c->q_head, *last = NULL;
        uint32_t n = 0;
        while (p && n < MAX_GROUP)
            last = p, p = p->next, n++;
        c->job_list = c->q_head;
        c->q_head = p;
        last->next = NULL;
        if (!p)
            c->q_tail = NULL;
        c->q_len -= n;
        c->last_group = n;
        c->wait_since = 0;
        uv_timer_stop(&c->group_timer);
        vt_histogram_observe(c->group_size, n);
        c->job = JOB_WAL;
    } else if (c->snapshot_wanted) {
        c->snapshot_wanted = false;
        c->snap_seq = vt_seglog_next_seq(c->wal);
        c->changes_since_snapshot = 0;
        c->snap_t0_ns = uv_hrtime();
        c->job = JOB_SNAPSHOT;
    } else {
        if (c->closing)
            finish_close(c);
        return;
    }
    c->work.data = c;
    int rc = uv_queue_work(c->loop, &c->work, work_cb, after_work_cb);
    assert(rc == 0);
    (void)rc;
}

/* ---- timer: expiry and snapshot policy --------------------------------------- */

static void on_timer(uv_timer_t *t)
{
    vt_collector *c = t->data;
    c->expire_wanted = true;
    const vt_seglog_stats *s = &c->wal_stats;
    int64_t now = wall_ms();
    if (c->changes_since_snapshot &&
        (s->raw_bytes - c->wal_raw_at_snapshot >= c->o.snapshot_wal_bytes ||
         now - c->last_snapshot_ms >= c->o.snapshot_interval_ms))
        c->snapshot_wanted = true;
    start_job(c);
}

/* ---- metrics callbacks -------------------------------------------------------- */

static double m_wal_bytes(void *d)
{
    return (double)((vt_collector *)d)->wal_stats.bytes;
}

static double m_wal_written(void *d)
{
    return (double)((vt_collector *)d)->wal_stats.stored_bytes;
}

static double m_wal_spares(void *d)
{
    return (double)((vt_collector *)d)->wal_stats.spares;
}

static double m_wal_reused(void *d)
{
    return (double)((vt_collector *)d)->wal_stats.reused_segments;
}

static double m_series(void *d)
{
    struct vt_store_stats s;
    vt_store_stats_get(((vt_collector *)d)->store, &s);
    return (double)s.series;
}

static double m_buckets(void *d)
{
    struct vt_store_stats s;
    vt_store_stats_get(((vt_collector *)d)->store, &s);
    return (double)s.buckets;
}

static double m_ids(void *d)
{
    struct vt_store_stats s;
    vt_store_stats_get(((vt_collector *)d)->store, &s);
    return (double)s.batch_ids;
}

static double m_queue(void *d)
{
    return (double)((vt_collector *)d)->q_len;
}

static double m_ready(void *d)
{
    return ((vt_collector *)d)->ready ? 1 : 0;
}

static int register_metrics(vt_collector *c, vt_metrics *reg)
{
    static const double group_bounds[] = {1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024};
    c->received = vt_metrics_counter(reg, "vitals_scorer_batches_received_total",
                                     "Push calls received (before any check).");
    c->duplicates = vt_metrics_counter(reg, "vitals_scorer_batches_duplicate_total",
                                       "Batches acknowledged as duplicates (merged nothing).");
    c->rejected = vt_metrics_counter_family(reg, "vitals_scorer_batches_rejected_total",
                                            "Batches refused, by reason.", "reason");
    vt_metric_family *wal_stored = vt_metrics_counter_family(
        reg, "vitals_scorer_wal_batches_total",
        "Batches queued for the WAL, by how they are kept: zstd (the agent's compressed bytes, "
        "as received) or raw (sent uncompressed, or compression did not pay).",
        "stored");
    c->merged_records = vt_metrics_counter(reg, "vitals_scorer_records_merged_total",
                                           "Records merged into rollups.");
    c->dropped_late = vt_metrics_counter(
        reg, "vitals_scorer_records_dropped_late_total",
        "Records not kept: older than the longest tier, windows more than an hour ahead of "
        "the scorer's clock, or beyond a rollup bucket's capacity (2^40 records).");
    c->snapshots = vt_metrics_counter(reg, "vitals_scorer_snapshots_total", "Snapshots written.");
    c->snapshot_errors = vt_metrics_counter(reg, "vitals_scorer_snapshot_errors_total",
                                            "Snapshots that failed.");
    c->merge_seconds = vt_metrics_histogram(reg, "vitals_scorer_merge_latency_seconds",
                                            "Time to merge one batch into the rollups.",
                                            vt_metrics_latency_buckets,
                                            vt_metrics_latency_buckets_len);
    c->push_seconds = vt_metrics_histogram(reg, "vitals_scorer_push_latency_seconds",
                                           "Push handling time: arrival to ack (WAL fsync included).",
                                           vt_metrics_latency_buckets,
                                           vt_metrics_latency_buckets_len);
    c->group_size = vt_metrics_histogram(reg, "vitals_scorer_wal_group_batches",
                                         "Batches per WAL group commit (one fsync each).",
                                         group_bounds, sizeof group_bounds / sizeof *group_bounds);
    c->wal_zstd = wal_stored ? vt_metrics_counter_get(wal_stored, "zstd") : NULL;
    c->wal_raw = wal_stored ? vt_metrics_counter_get(wal_stored, "raw") : NULL;
    if (!c->received || !c->duplicates || !c->rejected || !c->wal_zstd || !c->wal_raw ||
        !c->merged_records || !c->dropped_late ||
        !c->snapshots || !c->snapshot_errors || !c->merge_seconds || !c->push_seconds ||
        !c->group_size)
        return -EINVAL;
    /* the usual reasons exist from the start, at 0 */
    const char *reasons[] = {"unauthenticated", "invalid_argument", "failed_precondition",
                             "unavailable", "resource_exhausted", "shutting_down"};
    for (size_t i = 0; i < sizeof reasons / sizeof *reasons; i++)
        vt_metrics_counter_get(c->rejected, reasons[i]);
    if (vt_metrics_gauge_fn(reg, "vitals_scorer_wal_bytes", "Bytes of WAL on disk.", m_wal_bytes, c) ||
        vt_metrics_counter_fn(reg, "vitals_scorer_wal_written_bytes_total",
                              "WAL bytes written since start (frame headers included).",
                              m_wal_written, c) ||
        vt_metrics_gauge_fn(reg, "vitals_scorer_wal_spare_files",
                            "Trimmed WAL segment files kept for new segments to overwrite.",
                            m_wal_spares, c) ||
        vt_metrics_counter_fn(reg, "vitals_scorer_wal_reused_segments_total",
                              "WAL segments started in a spare file since start.", m_wal_reused, c) ||
        vt_metrics_gauge_fn(reg, "vitals_scorer_series", "Series held in the rollups.", m_series, c) ||
        vt_metrics_gauge_fn(reg, "vitals_scorer_rollup_buckets", "Rollup buckets, all tiers.",
                            m_buckets, c) ||
        vt_metrics_gauge_fn(reg, "vitals_scorer_dedupe_ids", "Batch ids remembered for dedupe.",
                            m_ids, c) ||
        vt_metrics_gauge_fn(reg, "vitals_scorer_wal_queue", "Batches waiting for the next group commit.",
                            m_queue, c) ||
        vt_metrics_gauge_fn(reg, "vitals_scorer_ready", "1 when replay is done and the WAL is writable.",
                            m_ready, c))
        return -EINVAL;
    return 0;
}

/* ---- open / replay --------------------------------------------------------------- */

static int replay(vt_collector *c)
{
    uint64_t from = 0;
    uint64_t t0 = uv_hrtime();
    int rc = vt_store_snapshot_load(c->store, c->snap_path, &from);
    if (rc == -ENOENT) {
        from = 0;
    } else if (rc) {
        vt_error("snapshot %s unreadable (%s): starting from the WAL alone", c->snap_path,
                 strerror(-rc));
        return rc; /* the caller rebuilds an empty store and calls again without it */
    }
    vt_store_expire(c->store, wall_ms());
    vt_seglog_reader *r;
    rc = vt_seglog_reader_open(c->wal, from, &r);
    if (rc)
        return rc;
    vt_seglog_frame f;
    uint64_t batches = 0, bad = 0, records = 0;
    struct vt_batch_kept kept = {0};
    while ((rc = vt_seglog_reader_next(r, &f)) == 1) {
        if (f.first_seq < from)
            continue;
        struct vt_batch b;
        char err[256];
        if (vt_batch_parse(&b, f.data, f.len, err, sizeof err) ||
            (b.kept = &kept, vt_store_validate(c->store, &b, err, sizeof err))) {
            bad++;
            continue;
        }
        vt_store_set_now(c->store, f.arrival_ms); /* judged as when it arrived */
        int64_t n = vt_store_apply(c->store, &b, NULL);
        if (n < 0) {
            bad++;
            continue;
        }
        records += (uint64_t)n;
        batches++;
    }
    vt_seglog_reader_close(r);
    vt_batch_kept_free(&kept);
    if (rc < 0)
        return rc;
    vt_store_expire(c->store, wall_ms());
    c->changes_since_snapshot = batches;
    vt_info("replay done: snapshot_seq=%" PRIu64 " batches=%" PRIu64 " records=%" PRIu64
            " unreadable=%" PRIu64 " seconds=%.3f",
            from, batches, records, bad, (double)(uv_hrtime() - t0) / 1e9);
    return 0;
}

int vt_collector_open(vt_collector **out, uv_loop_t *loop, vt_store *store, vt_grpc_server_t *srv,
                      vt_metrics *reg, const struct vt_collector_opts *opts)
{
    if (!opts || !opts->data_dir)
        return -EINVAL;
    vt_collector *c = calloc(1, sizeof *c);
    if (!c)
        return -ENOMEM;
    c->loop = loop;
    c->store = store;
    c->srv = srv;
    c->o = *opts;
    if (!c->o.wal_segment_bytes)
        c->o.wal_segment_bytes = 64u << 20;
    if (!c->o.snapshot_wal_bytes)
        c->o.snapshot_wal_bytes = 1u << 30;
    if (!c->o.snapshot_interval_ms)
        c->o.snapshot_interval_ms = 600000;
    c->o.data_dir = NULL;
    c->o.token = NULL;
    int rc = -ENOMEM;
    size_t dl = strlen(opts->data_dir);
    char *waldir = malloc(dl + 8);
    c->snap_path = malloc(dl + 16);
    if (!waldir || !c->snap_path)
        goto fail;
    mkdir(opts->data_dir, 0750);
    sprintf(waldir, "%s/wal", opts->data_dir);
    sprintf(c->snap_path, "%s/snapshot.bin", opts->data_dir);
    if (vt_collector_set_token(c, opts->token))
        goto fail;
    uint64_t spares = c->o.snapshot_wal_bytes / c->o.wal_segment_bytes + 1; /* a period's */
    if (spares > 256)
        spares = 256;
    vt_seglog_opts so = {.dir = waldir,
                         .segment_bytes = c->o.wal_segment_bytes,
                         .fsync = VT_SEGLOG_FSYNC_NONE, /* we sync per group ourselves */
                         /* Batches are kept as they arrived: compressed by the
                          * agent (zstd, the default) or not at all - never
                          * compressed again here, on the ingest hot path. */
                         .uncompressed = true,
                         .grouped = true,
                         .drop_cache = true,
                         /* each group waits for its fsync anyway: write it
                          * past the page cache, at half the CPU */
                         .direct = c->o.wal_fsync,
                         /* and into files that a snapshot trimmed, kept for
                          * it: an overwrite's fsync writes no metadata. As
                          * many as one snapshot period trims (disk: the WAL
                          * grows back into them); the WAL is read only at
                          * start, before anything is trimmed */
                         .recycle = c->o.wal_fsync ? (uint32_t)spares : 0};
    vt_seglog_recovery rec;
    rc = vt_seglog_open(&c->wal, &so, &rec);
    if (rc) {
        vt_error("cannot open WAL %s: %s", waldir, strerror(-rc));
        goto fail;
    }
    if (rec.corrupt_frames || rec.truncated_bytes)
        vt_warn("WAL recovery: corrupt_frames=%" PRIu64 " truncated_bytes=%" PRIu64,
                rec.corrupt_frames, rec.truncated_bytes);
    rc = replay(c);
    if (rc)
        goto fail;
    rc = register_metrics(c, reg);
    if (rc)
        goto fail;
    vt_seglog_stats_get(c->wal, &c->wal_stats);
    c->wal_raw_at_snapshot = c->wal_stats.raw_bytes;
    c->last_snapshot_ms = wall_ms();
    rc = vt_grpc_server_register(srv, VT_COLLECTOR_PUSH_PATH, on_push, c);
    if (rc)
        goto fail;
    uv_timer_init(loop, &c->timer);
    c->timer.data = c;
    uv_timer_start(&c->timer, on_timer, EXPIRE_EVERY_MS, EXPIRE_EVERY_MS);
    uv_timer_init(loop, &c->group_timer);
    c->group_timer.data = c;
    c->ready = true;
    free(waldir);
    *out = c;
    return 0;
fail:
    free(waldir);
    vt_seglog_close(c->wal);
    free(c->snap_path);
    free(c->token);
    free(c);
    return rc;
}

int vt_collector_set_token(vt_collector *c, const char *token)
{
    char *t = NULL;
    if (token && *token && !(t = strdup(token)))
        return -ENOMEM;
    free(c->token);
    c->token = t;
    return 0;
}

bool vt_collector_ready(const vt_collector *c)
{
    return c->ready && !c->closing;
}

void vt_collector_expire(vt_collector *c)
{
    c->expire_wanted = true;
    start_job(c);
}

void vt_collector_snapshot(vt_collector *c)
{
    c->snapshot_wanted = true;
    start_job(c);
}

bool vt_collector_busy(const vt_collector *c)
{
    return c->job != JOB_NONE;
}

/* ---- close -------------------------------------------------------------------- */

static void on_timer_closed(uv_handle_t *h)
{
    vt_collector *c = h->data;
    vt_collector_close_cb cb = c->close_cb;
    void *data = c->close_data;
    vt_seglog_close(c->wal);
    while (c->pool) {
        struct pend *p = c->pool;
        c->pool = p->next;
        vt_batch_kept_free(&p->kept);
        free(p);
    }
    free(c->snap_path);
    free(c->token);
    free(c);
    if (cb)
        cb(data);
}

static void on_group_timer_closed(uv_handle_t *h)
{
    vt_collector *c = h->data;
    uv_close((uv_handle_t *)&c->timer, on_timer_closed);
}

static void finish_close(vt_collector *c)
{
    if (c->final_snapshot) {
        c->final_snapshot = false;
        if (c->changes_since_snapshot) {
            c->snapshot_wanted = true;
            start_job(c);
            return;
        }
    }
    if (uv_is_closing((uv_handle_t *)&c->group_timer))
        return; /* closing already: the timer's close follows the group timer's */
    uv_close((uv_handle_t *)&c->group_timer, on_group_timer_closed);
}

void vt_collector_close(vt_collector *c, bool snapshot, vt_collector_close_cb cb, void *data)
{
    c->closing = true;
    c->final_snapshot = snapshot;
    c->close_cb = cb;
    c->close_data = data;
    uv_timer_stop(&c->timer);
    uv_timer_stop(&c->group_timer);
    if (c->job == JOB_NONE)
        start_job(c); /* drains the queue, snapshots, then finish_close */
}
