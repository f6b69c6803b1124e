/*
 * score_acc.h - private to the score engine (scorer/score*.c): accumulators.
 *
 * An accumulator is an ordinary struct vt_aggregate whose named-metric array
 * is pre-populated (sorted, as aggregate.c requires) with exactly the
 * metrics its score reads, so vt_aggregate_sketch() works on it and
 * vt_aggregate_free() releases it. vt_acc_merge adds to it only what the
 * score's components read (struct vt_acc_needs).
 */
#ifndef VT_SCORER_SCORE_ACC_H
#define VT_SCORER_SCORE_ACC_H

#include <stdbool.h>
#include <stdint.h>

#include "aggregate.h"
#include "score_config.h"

/* What a score's accumulators must carry. */
struct vt_acc_needs {
    uint8_t fixed;        /* bit i: fixed sketch i */
    uint8_t fixed_full;   /* bit i: ... with its buckets (a quantile, rank or
                             drift statistic reads it); a fixed sketch without
                             this bit is accumulated as totals only (see
                             sketch_merge_totals) */
    char **names;         /* named metrics, sorted (strcmp), unique */
    uint32_t n_names;
    bool embedding;
    bool exemplars;
    bool quality;         /* invalid_by_reason / missing_by_field */
};

void vt_acc_needs_free(struct vt_acc_needs *n);
/* n carries metric `metric` (a fixed sketch's name or a named metric). 0 or -ENOMEM. */
int vt_acc_needs_add_metric(struct vt_acc_needs *n, const char *metric);
/* n carries what component c reads (of the current window, or of its
 * baseline when `base`). 0 or -ENOMEM. */
int vt_acc_needs_add_component(struct vt_acc_needs *n, const struct vt_score_component_def *c,
                               bool base);

/* *r |= what an accumulator for n reads of the aggregates merged into it. */
void vt_acc_reads_add(struct vt_agg_reads *r, const struct vt_acc_needs *n);

/* An empty accumulator for n (a must not be initialised). 0 or -ENOMEM;
 * release with vt_aggregate_free either way. */
int vt_acc_init(struct vt_aggregate *a, const struct vt_acc_needs *n);
/* Empty it again, keeping its allocations. */
void vt_acc_reset(struct vt_aggregate *a, const struct vt_acc_needs *n);
/* dst += the parts of src that n asks for. 0 or -ENOMEM. */
int vt_acc_merge(struct vt_aggregate *dst, const struct vt_aggregate *src,
                 const struct vt_acc_needs *n);

#endif
