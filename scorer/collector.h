/*
 * collector.h - vitals.v1.Collector/Push: auth, validation, dedupe, WAL
 * (group commit on a worker thread), merge into the store, ack.
 *
 * Why it exists: this is the one door through which data enters the
 * scorer, and the one place that decides when a batch is "acknowledged":
 * only after its bytes are on stable storage in the WAL (lib/segment_log)
 * and merged into the store. Restart replays the WAL (after the snapshot)
 * through the same apply path, so the acknowledged state comes back exactly.
 *
 * Life of a Push, all on the loop thread except the fsync:
 *   token check (UNAUTHENTICATED) -> unpack (INVALID_ARGUMENT) -> schema
 *   version (FAILED_PRECONDITION) -> validate every aggregate
 *   (INVALID_ARGUMENT) -> already durable? ack duplicate=true -> queue.
 *   Queued batches are appended + fsynced together by one uv_queue_work job
 *   (group commit); its after-work merges them in arrival order and acks.
 *   A batch id that is already queued but not yet durable waits for the same
 *   job and is acked as a duplicate then. While a job runs, new batches
 *   gather for the next one. WAL errors answer UNAVAILABLE (retryable) and
 *   merge nothing.
 *
 * Snapshots run as a job of the same queue (so nothing is merged while the
 * store is dumped); after one, the WAL is trimmed below the snapshot.
 *
 * Errors: negative errno-style codes.
 */
#ifndef VT_SCORER_COLLECTOR_H
#define VT_SCORER_COLLECTOR_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "grpc.h"
#include "metrics.h"
#include "store.h"

#define VT_COLLECTOR_PUSH_PATH "/vitals.v1.Collector/Push"

struct vt_collector_opts {
    const char *data_dir;       /* holds wal/ and snapshot.bin; created if missing */
    const char *token;          /* NULL or "" = no auth */
    bool wal_fsync;             /* fsync each group commit (default true) */
    int64_t wal_group_wait_ms;  /* under load (the last group held >= 8 batches),
                                   a WAL group that would start with less than half
                                   the last one waits up to this long for more
                                   (0: never waits) */
    uint64_t wal_segment_bytes; /* 0 -> 64 MiB */
    uint64_t snapshot_wal_bytes;/* snapshot + trim after this many bytes of batches
                                   (uncompressed: what replay must decode) were
                                   logged; 0 -> 1 GiB */
    int64_t snapshot_interval_ms; /* also snapshot this often if anything changed; 0 -> 10 min */
    void (*on_merged)(void *data); /* optional: new data merged (not during replay) */
    void *on_merged_data;
};

typedef struct vt_collector vt_collector;

/*
 * Open the WAL in <data_dir>/wal, load <data_dir>/snapshot.bin into `store`
 * (which must be empty), replay the WAL after it, and register the Push
 * handler on `srv`. Blocks while replaying (start-up). Metrics are
 * registered in `reg`. The collector borrows loop, store, srv and reg: they
 * must outlive it. Returns 0 or a negative errno (e.g. -EBUSY: another
 * scorer holds the data dir).
 */
int vt_collector_open(vt_collector **out, uv_loop_t *loop, vt_store *store,
                      vt_grpc_server_t *srv, vt_metrics *reg,
                      const struct vt_collector_opts *opts);

/* Replace the accepted token (NULL/"" disables auth). Copied. */
int vt_collector_set_token(vt_collector *c, const char *token);

/* Ready: replay finished and the last WAL write succeeded. */
bool vt_collector_ready(const vt_collector *c);

/* Run store expiry now (also done by the collector's own timer). The store
 * is only mutated between jobs, so callers outside use this. */
void vt_collector_expire(vt_collector *c);

/* Start a snapshot job now (it runs after the current job). */
void vt_collector_snapshot(vt_collector *c);

/* True while a job runs on a worker (the store must not be mutated). */
bool vt_collector_busy(const vt_collector *c);

/*
 * Stop: new pushes get UNAVAILABLE; queued batches are still made durable,
 * merged and acked; then a final snapshot is written (if snapshot is true),
 * the WAL is closed and cb runs (on the loop). The collector is freed after
 * cb returns.
 */
typedef void (*vt_collector_close_cb)(void *data);
void vt_collector_close(vt_collector *c, bool snapshot, vt_collector_close_cb cb,
                        void *data);

#endif
