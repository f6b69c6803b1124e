/*
 * batch.h - a received vitals.v1.Batch, read in place.
 *
 * Why it exists: the collector meets every batch twice (on Push, and again
 * from the WAL at replay), and the aggregates inside are mostly sketch bucket
 * counts. protobuf-c's unpack would allocate and copy all of them only for
 * the store to walk them once more; here the header fields are decoded (the
 * ids copied, NUL-terminated) and the aggregates stay wire bytes, which the
 * store validates and merges where they lie (vt_aggregate_*_wire).
 *
 * Lifetime: a vt_batch points into the message it was parsed from (buf); the
 * caller keeps that alive as long as it uses the batch. No allocation.
 */
#ifndef VT_SCORER_BATCH_H
#define VT_SCORER_BATCH_H

#include <stddef.h>
#include <stdint.h>

#include "aggregate.h"

#define VT_BATCH_SCHEMA_VERSION 1 /* the Batch.schema_version we accept */
#define VT_BATCH_MAX_AGENT_ID 255
#define VT_BATCH_MAX_ID 1024

/* What vt_store_validate learned of a batch's aggregates, kept for the
 * vt_store_apply that follows (after the WAL write), so nothing is parsed
 * twice. Points into the batch's bytes. The caller owns it and reuses it
 * from batch to batch (the arrays only grow); vt_batch_kept_free releases. */
struct vt_batch_agg {
    const uint8_t *buf; /* the WindowAggregate's bytes */
    size_t len;
    struct vt_agg_head h;
    uint32_t key_off, key_len; /* its canonical series key, in keys */
    uint32_t sk, n_sk;         /* its sketches, in sketches */
    struct vt_agg_kept rest;   /* and the rest */
};

struct vt_batch_kept {
    const uint8_t *of; /* the batch bytes all this was kept for; NULL: none */
    size_t of_len;
    struct vt_batch_agg *aggs;
    uint32_t n_aggs, cap_aggs;
    struct vt_sketch_kept *sketches;
    uint32_t n_sketches, cap_sketches;
    char *keys;
    uint32_t keys_len, keys_cap;
};

/* Room for one more aggregate: its VT_AGG_MAX_SKETCHES sketches and a key of
 * key_max bytes. 0 or -ENOMEM. */
int vt_batch_kept_reserve(struct vt_batch_kept *k, size_t key_max);

/* Bytes allocated to k: a pool of them frees the big ones. */
size_t vt_batch_kept_bytes(const struct vt_batch_kept *k);
void vt_batch_kept_free(struct vt_batch_kept *k);

struct vt_batch {
    uint32_t schema_version;
    char agent_id[VT_BATCH_MAX_AGENT_ID + 1]; /* may be empty */
    char batch_id[VT_BATCH_MAX_ID + 1];       /* 1..VT_BATCH_MAX_ID bytes */
    uint32_t agent_id_len, batch_id_len;
    uint64_t id_hash; /* of (agent_id, batch_id): different ids mostly differ here */
    int64_t window_start_ms;
    uint64_t spool_first, spool_last;
    uint64_t records;
    int64_t created_ms;
    uint32_t n_aggregates;
    const uint8_t *buf; /* the message, not owned */
    size_t len;
    struct vt_batch_kept *kept; /* NULL from vt_batch_parse; a caller sets it
                                   to have vt_store_validate keep what it
                                   learned there for vt_store_apply */
};

/* Parse the header of a serialized Batch: schema_version ==
 * VT_BATCH_SCHEMA_VERSION, every field well formed with its declared wire
 * type, ids within bounds and free of NUL bytes. The aggregates are only
 * counted (the store validates them). Returns 0, -EPROTO (another
 * schema_version: checked first, whatever else is wrong) or -EBADMSG; err
 * says why, naming the field. */
int vt_batch_parse(struct vt_batch *b, const uint8_t *buf, size_t len, char *err, size_t errlen);

/* The aggregates, in order: *pos starts at 0; returns 1 and sets *agg and *len
 * to the bytes of the next WindowAggregate, 0 after the last. Only for a
 * batch that vt_batch_parse accepted. */
int vt_batch_next_aggregate(const struct vt_batch *b, size_t *pos, const uint8_t **agg,
                            size_t *len);

#endif
