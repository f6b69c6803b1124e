/*
 * store_internal.h - the store's private structs and the helpers its files
 * share (store.c: rollups, expiry, queries, dedupe; store_snapshot.c: the
 * snapshot file). Not a contract: store.h is the public one. Include it only
 * from scorer/store*.c.
 */
#ifndef VITALS_SCORER_STORE_INTERNAL_H
#define VITALS_SCORER_STORE_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pb_write.h"
#include "series.h"
#include "store.h"

/* A bucket of the first tier is a live aggregate (it takes merges all the
 * time and feeds every score window). Buckets of the coarser tiers are kept
 * packed: the WindowAggregate protobuf bytes (no series, no window), about
 * a fifth of a live aggregate's memory; they change only when expiry
 * cascades finer data into them or late data arrives, and are decoded when a
 * query (a baseline) reaches back that far. Exactly one of agg / packed. */
struct bucket {
    int64_t start;
    uint64_t count;               /* records (== agg->count when live) */
    struct vt_aggregate *agg;     /* tier 0 */
    uint8_t *packed;              /* tiers >= 1 */
    uint32_t len;
    bool stale;                   /* panes only: a bucket changed since the build */
};

struct tier_buckets {
    struct bucket *b; /* b[head .. head+n) in ascending start order */
    uint32_t head, n, cap;
};

struct series {
    struct tier_buckets t[VT_STORE_MAX_TIERS];
    struct tier_buckets panes;    /* live aggregates, start % pane_ms == 0,
                                     each covering only hot first-tier time */
    int64_t panes_end;            /* end of the newest pane's time, when panes.n:
                                     the current window is past it, and a merge
                                     into it need not read the panes */
    int64_t stale_pane;           /* start of a pane known stale (or none): late
                                     data for that minute need not find it again */
    uint64_t records;
    int64_t last_ms;
};

struct dedupe_val {
    int64_t window_start_ms;
    uint64_t spool_last;
};

struct vt_store {
    struct vt_store_opts o;
    struct vt_series_table series;
    struct vt_series_table ids;    /* value: struct dedupe_val * */
    struct vt_series_table agents; /* value: uint64_t * watermark */
    int64_t boundary[VT_STORE_MAX_TIERS]; /* tier i owns [boundary[i], boundary[i-1]) */
    int64_t hot_boundary;          /* first-tier buckets before it are packed */
    int64_t now_ms;                /* of the last vt_store_expire (0: none yet) */
    struct vt_aggregate cold;      /* unpacked cold bucket being changed */
    struct pbw pack;               /* scratch of vt_store__bucket_pack */
    uint64_t n_buckets, n_panes, records, dropped_late, overflow;
    int64_t pane_ms;               /* 0: no panes */
    char key[VT_SERIES_KEY_MAX];
};

static inline int64_t floor_div(int64_t a, int64_t b)
{
    int64_t q = a / b;
    return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}

static inline int64_t align_down(int64_t t, int64_t res)
{
    return floor_div(t, res) * res;
}

/* Defined in store.c; the snapshot loader builds buckets through them. */
struct series *vt_store__series_get(vt_store *st, const char *key, size_t len);
struct series *vt_store__series_get_hashed(vt_store *st, const char *key, size_t len, uint64_t h);
struct bucket *vt_store__bucket_get(vt_store *st, struct tier_buckets *tb, int64_t start, bool *created);
void vt_store__pane_touch(const vt_store *st, struct series *s, int64_t start);
struct vt_aggregate *vt_store__bucket_live(struct bucket *bk);
int vt_store__cold_load(vt_store *st, const struct bucket *bk);
int vt_store__bucket_pack(vt_store *st, int tier, struct bucket *bk, struct vt_aggregate *a);
int vt_store__set_watermark(vt_store *st, const char *agent, size_t an, uint64_t wm);
int vt_store__tier_for(const vt_store *st, int64_t t);

#endif
