/*
 * store.h - the scorer's state: per-series rollups in retention tiers, and
 * the set of batch ids already merged (dedupe).
 *
 * Why it exists: the collector merges every acknowledged WindowAggregate
 * here, the score engine reads merged aggregates over a time range from
 * here, and the snapshot that bounds restart time is a dump of exactly this.
 * Keeping all three in one module keeps "what is the acknowledged state" in
 * one place: the store after replay == the store before the crash.
 *
 * Tiers. A tier is (resolution, retention), finest first, e.g. the default
 * "10s:2h,1m:2d,10m:15d". Each piece of data lives in exactly ONE tier: an
 * aggregate is merged into the bucket floor(window_start / resolution) of
 * the finest tier that still owns its time; vt_store_expire() moves buckets
 * that aged out of tier i into tier i+1 (merging them, in whole tier-(i+1)
 * buckets) and drops what ages out of the last tier. So a query over any
 * range visits every tier, each only where it owns time, and counts every
 * record once: the finest data available is always used.
 *
 * A bucket holds at most VT_STORE_MAX_BUCKET_COUNT records (see there).
 *
 * Data whose window starts more than VT_STORE_FUTURE_MS after the time of
 * the last vt_store_expire() (an agent with a broken clock) is dropped and
 * counted like data older than the retention: kept, it would sit in the
 * first tier for ever.
 *
 * A query includes a bucket when its start lies in [from_ms, to_ms): ranges
 * are rounded to the bucket grid of the tier that holds the data.
 *
 * Dedupe. Every applied batch id is remembered with its window_start_ms;
 * ids older than the longest retention (plus one hour of slack) are
 * forgotten by vt_store_expire(), so the set is bounded by traffic within
 * retention. A batch older than that is rejected as stale by the collector
 * (its data could not be kept anyway).
 *
 * Memory: the store owns everything; vt_store_free() releases it. Bounded by
 * max_series (new series beyond it fold into "__overflow__"), the tiers and
 * the dedupe horizon.
 *
 * Threads: not thread-safe. Concurrent readers (query, snapshot_write) are
 * fine as long as nothing mutates (apply, expire, snapshot_load) meanwhile;
 * the caller serialises that.
 *
 * Errors: negative errno values (-EINVAL, -ENOMEM, -EBADMSG, -EIO, ...).
 */
#ifndef VT_SCORER_STORE_H
#define VT_SCORER_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "aggregate.h"
#include "batch.h"

#define VT_STORE_MAX_TIERS 6

#define VT_STORE_FUTURE_MS (3600 * 1000LL)
/* Records one bucket holds at most: an aggregate that would take it past
 * this is dropped and counted like late data. Far beyond any real traffic
 * (10^12 records per series per bucket), it keeps sums of buckets - tier
 * cascades, score windows over thousands of series - from overflowing 64
 * bits however an agent fills its aggregates (each <= VT_AGG_MAX_COUNT). */
#define VT_STORE_MAX_BUCKET_COUNT (1ull << 40)
#define VT_STORE_DEFAULT_RETENTION "10s:2h,1m:2d,10m:15d"

struct vt_store_tier {
    int64_t resolution_ms; /* bucket width, > 0 */
    int64_t retention_ms;  /* how long the tier keeps data, >= resolution */
};

struct vt_store_opts {
    struct vt_store_tier tiers[VT_STORE_MAX_TIERS];
    size_t n_tiers;      /* >= 1; each resolution a multiple of the previous,
                            each retention longer than the previous */
    uint32_t max_series; /* 0 -> 100000 */
    int cold_scale;      /* sketches in tiers after the first are kept at most
                            at this scale (0 -> VT_STORE_COLD_SCALE): old data
                            feeds baselines, where 2% relative error is fine,
                            and it is most of the memory */
    int64_t hot_ms;      /* first-tier buckets younger than this stay live
                            aggregates; older ones, and every bucket of the
                            coarser tiers, are kept packed (protobuf bytes,
                            decoded by queries that reach them); 0 ->
                            VT_STORE_HOT_MS */
    int64_t pane_ms;     /* panes (see below): 0 -> VT_STORE_PANE_MS, < 0 ->
                            none; must be a multiple of the first tier's
                            resolution (else no panes) */
};

/*
 * Panes. Within the hot span, every series also keeps one merged aggregate
 * per completed pane_ms (a minute by default) of its first-tier buckets,
 * built by vt_store_expire() once the minute is over (plus
 * VT_STORE_PANE_SETTLE_MS for the agents' last window to arrive). A query
 * hands over a pane instead of its buckets when the range covers the whole
 * pane, so a 5 min score window costs <= 5 panes + the buckets of the partial
 * minutes at its ends instead of 30 buckets. Exact: a pane is the merge of
 * exactly its buckets; data merged into one of them afterwards (late data)
 * marks the pane stale, queries then use the buckets, and the next expire
 * rebuilds it. Panes are derived data: not in snapshots, rebuilt by the
 * first vt_store_expire() after a load or replay. Memory: about one live
 * aggregate per series per hot minute (15 per series by default, next to
 * 90 live buckets).
 */
#define VT_STORE_PANE_MS (60 * 1000LL)
#define VT_STORE_PANE_SETTLE_MS (15 * 1000LL)

/* 15 min: score windows (typically 5 m) read live buckets only; a longer
 * window or a baseline decodes packed buckets (slower, exact). */
#define VT_STORE_HOT_MS (15 * 60 * 1000LL)

/* Scale 4: relative error (2^(1/16)-1)/(2^(1/16)+1) = 2.2%, 4x fewer buckets
 * than the agents' scale 6. The first tier keeps what agents send. */
#define VT_STORE_COLD_SCALE 4

typedef struct vt_store vt_store;

/* Parse "10s:2h,1m:2d,10m:15d" into opts->tiers / n_tiers and check the
 * rules above. Returns 0, or -EINVAL with a message in err. */
int vt_store_parse_retention(const char *s, struct vt_store_opts *opts, char *err,
                             size_t errlen);

/* New empty store. Returns 0, -EINVAL (bad tiers) or -ENOMEM. */
int vt_store_new(vt_store **out, const struct vt_store_opts *opts);
void vt_store_free(vt_store *st);

/* The longest retention (oldest data kept), in ms. */
int64_t vt_store_horizon_ms(const vt_store *st);

/*
 * Check the aggregates of a received batch (vt_batch_parse checked its
 * header) without changing the store: every aggregate well formed and within
 * bounds, its sketches valid, its series key canonical - exactly what
 * merging relies on. Returns 0 or -EBADMSG; err names the problem
 * ("aggregates[3]: ..."). A batch that passes applies cleanly (short of
 * -ENOMEM). With b->kept set, what it learned (heads, series keys, every
 * sketch's scalars and ranges) is kept there for the vt_store_apply of the
 * same bytes, unless that would take more than a few times the batch's
 * size (it is then parsed again).
 */
int vt_store_validate(vt_store *st, const struct vt_batch *b, char *err, size_t errlen);

/* True if the batch (agent_id, batch_id) was applied before, or ends at or
 * below the spool watermark of ids of its agent already forgotten. */
bool vt_store_seen(const vt_store *st, const struct vt_batch *b);

/*
 * Record batch_id and merge every aggregate of a validated batch, straight
 * from its wire bytes into the rollup buckets. The tier that owns a window
 * follows the boundaries of the last vt_store_expire(). Records outside
 * retention (or from the future, see above) are counted in *dropped (may be
 * NULL) and not kept. Returns the
 * number of records merged (sum of aggregate counts), or -ENOMEM / -EBADMSG.
 * Applying an id already seen merges nothing and returns 0. Uses (once)
 * what vt_store_validate kept in b->kept for these bytes.
 */
int64_t vt_store_apply(vt_store *st, const struct vt_batch *b, uint64_t *dropped);

/* The clock that judges windows from the future (see above); every
 * vt_store_expire() sets it to its now_ms. WAL replay sets it to each
 * batch's arrival time, so that a replayed batch is kept or dropped exactly
 * as it was when it arrived. */
void vt_store_set_now(vt_store *st, int64_t now_ms);

/* Cascade aged buckets into coarser tiers, drop expired data and forgotten
 * batch ids, pack first-tier buckets that left the hot span, build the panes
 * of completed minutes (and rebuild stale ones). Call every few seconds with
 * wall-clock ms. Returns nothing: a pane that cannot be built (ENOMEM) is
 * simply not used. */
void vt_store_expire(vt_store *st, int64_t now_ms);

/*
 * The source interface of the score engine: for every series with data in
 * [from_ms, to_ms), call cb with its canonical key (series.h encoding) once
 * per rollup of that series in the range - the rollups of one series
 * consecutively (so a reader can resolve the key once per series), in no
 * particular order of series. The reader merges what it needs: merging only
 * the sketches a score reads costs a fraction of merging whole aggregates.
 * `agg` is valid only during the call; `key` stays valid for the whole walk.
 * A nonzero return from cb stops the walk and is returned; -ENOMEM if a
 * packed rollup could not be decoded.
 * `scratch` is caller-owned (vt_aggregate_init'ed) reusable memory (packed
 * rollups are decoded into it), so that several readers may query at once
 * and no walk allocates per series.
 */
typedef int (*vt_store_visit_cb)(void *ud, const char *key, size_t len,
                                 const struct vt_aggregate *agg);
/* `reads`: what cb reads of each rollup, the lines the walk fetches ahead
 * of it (aggregate.h); NULL: all of it. */
int vt_store_query(const vt_store *st, int64_t from_ms, int64_t to_ms,
                   const struct vt_agg_reads *reads, struct vt_aggregate *scratch,
                   vt_store_visit_cb cb, void *ud);

/* Same, for one series only (key in canonical form). 0 if absent. */
int vt_store_query_series(const vt_store *st, const char *key, size_t len, int64_t from_ms,
                          int64_t to_ms, struct vt_aggregate *scratch,
                          vt_store_visit_cb cb, void *ud);

/* Every series (no range), with its total records and newest bucket start. */
typedef int (*vt_store_series_cb)(void *ud, const char *key, size_t len, uint64_t records,
                                  int64_t last_ms);
int vt_store_each_series(const vt_store *st, vt_store_series_cb cb, void *ud);

struct vt_store_stats {
    uint64_t series;
    uint64_t buckets;      /* all tiers */
    uint64_t batch_ids;    /* dedupe set size */
    uint64_t records;      /* records held (sum of bucket counts) */
    uint64_t dropped_late; /* records older than retention at apply */
    uint64_t overflow;     /* aggregates folded into __overflow__ */
    uint64_t panes;        /* panes held (see above), stale ones included */
};
void vt_store_stats_get(const vt_store *st, struct vt_store_stats *out);

/*
 * Snapshot: write the whole store (rollups + dedupe set) to `path`
 * atomically (temp file, fsync, rename, fsync dir), tagged with wal_seq (the
 * first WAL sequence number NOT contained in it). Read-only on the store.
 * load replaces the contents of an EMPTY store and returns the tag;
 * -ENOENT if there is no snapshot, -EBADMSG if it is damaged (the caller then
 * starts from an empty store and the full WAL).
 */
int vt_store_snapshot_write(const vt_store *st, const char *path, uint64_t wal_seq);
int vt_store_snapshot_load(vt_store *st, const char *path, uint64_t *wal_seq);

#endif
