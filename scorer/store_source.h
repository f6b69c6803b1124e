/*
 * store_source.h - the score engine's data source over a store: the small
 * adapter that hands vt_score_engine_evaluate the rollups vt_store_query
 * walks. The daemon (main.c) and the in-process benchmark (bench_eval) use
 * the same one, so the benchmark measures what the daemon runs.
 */
#ifndef VT_SCORER_STORE_SOURCE_H
#define VT_SCORER_STORE_SOURCE_H

#include "aggregate.h"
#include "score.h"
#include "store.h"

struct vt_store_source {
    const vt_store *st;
    struct vt_aggregate scratch; /* packed rollups are decoded into it */
};

/* Set up (allocates nothing) and release. */
void vt_store_source_init(struct vt_store_source *s);
void vt_store_source_free(struct vt_store_source *s);

/* The engine's view of st through s, valid while both are. */
struct vt_score_source vt_store_source_of(struct vt_store_source *s, const vt_store *st);

#endif
