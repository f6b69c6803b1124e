/*
 * score.h - the score engine: from per-series aggregates to one weighted,
 * explained health score per score definition and per segment.
 *
 * Why it exists: the scorer's daemon stores rollups; the operators' score
 * file says what "healthy" means. This module is the pure function between
 * the two (plus the small amount of memory that makes states not flap):
 *
 *   on every tick: vt_score_engine_evaluate(engine, &source, now_ms)
 *     for each score: select the matching series, merge their aggregates over
 *       [now - window, now) into the whole and into one aggregate per segment
 *       (and over the baseline range for drift statistics);
 *     compute each component's statistic, normalise it (1 at good, 0 at bad,
 *       linear, clamped), drop components with too little data (missing) and
 *       renormalise the weights over the rest (coverage = present weight /
 *       total weight); combine (weighted mean, weighted geometric, min);
 *     update the state machine (ok / warning / critical, hysteresis, `for`);
 *     flag masked segments; record the whole score in a history ring.
 *   then read the results (vt_score_engine_result) and render them
 *     (vt_score_result_to_json, or the structs directly for Prometheus).
 *
 * Data in: a struct vt_score_source the caller implements over its store.
 * Data out: struct vt_score_result, owned by the engine, valid until the next
 * evaluate / set_config / free on that engine.
 *
 * Threading: an engine is single-threaded (one owner, e.g. the loop thread).
 * No global state.
 */
#ifndef VT_SCORE_H
#define VT_SCORE_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "aggregate.h"
#include "score_config.h"

/* --- input ---------------------------------------------------------------- */

/* Called by a source once per (series, aggregate) it holds in the range.
 * `key` is a canonical series key (series.h), not NUL-terminated. `agg` is
 * only read during the call. */
typedef void (*vt_score_visit_fn)(void *arg, const char *key, size_t len,
                                  const struct vt_aggregate *agg);

/* A source of aggregates: each() must call fn(arg, key, len, agg) for the
 * data of every series over [from_ms, to_ms) - either once per series with
 * the series' aggregate over the whole range (cheapest for the engine), or
 * once per stored rollup that starts in the range (the engine merges; a
 * series may be visited any number of times). Rollups are attributed by
 * their start time. `reads` says what fn reads of an aggregate (a hint a
 * source may use to fetch ahead; aggregate.h). Returns 0, or a negative
 * errno that aborts the evaluation (the previous results are then kept). */
struct vt_score_source {
    void *ctx;
    int (*each)(void *ctx, int64_t from_ms, int64_t to_ms, const struct vt_agg_reads *reads,
                vt_score_visit_fn fn, void *arg);
};

/* --- output --------------------------------------------------------------- */

enum vt_score_state {
    VT_SCORE_NO_DATA = 0, /* "no_data": no component present */
    VT_SCORE_OK,          /* "ok" */
    VT_SCORE_WARNING,     /* "warning" */
    VT_SCORE_CRITICAL,    /* "critical" */
};
const char *vt_score_state_name(enum vt_score_state s);

/* Why a component is missing (VT_MISSING_NONE = present). */
enum vt_missing {
    VT_MISSING_NONE = 0,
    VT_MISSING_MIN_COUNT,   /* "min_count": fewer values than min_count */
    VT_MISSING_NO_BASELINE, /* "no_baseline": baseline has fewer than min_count values */
    VT_MISSING_UNDEFINED,   /* "undefined": the statistic has no value (e.g. dims differ) */
};
const char *vt_missing_name(enum vt_missing m);

struct vt_component_result {
    const struct vt_score_component_def *def;
    double value;        /* raw statistic; NAN when it could not be computed */
    double normalized;   /* [0, 1]; NAN when missing */
    double weight;       /* effective weight: def->weight / sum of present weights; 0 if missing */
    double contribution; /* weighted_mean: weight * normalized (they sum to the score);
                            weighted_geometric: normalized^weight (they multiply to it);
                            min: the score for the minimum component, 0 for the others;
                            0 when missing */
    uint64_t count;      /* values the statistic was computed from */
    enum vt_missing missing;
    /* Exemplar request ids: the slowest calls for latency_ms / ttft_ms
     * components, the latest failures for error_rate components. */
    uint32_t n_exemplars;
    char exemplars[VT_AGG_MAX_EXEMPLARS][VT_AGG_EXEMPLAR_ID_LEN + 1];
};

/* One evaluation of a score over one population (the whole, or a segment). */
struct vt_score_eval {
    double score;                /* [0, 1]; NAN = null (no component present) */
    enum vt_score_state state;   /* after hysteresis and `for` */
    enum vt_score_state pending; /* state waiting out `for`; == state if none */
    int64_t pending_since_ms;    /* when `pending` started (0 if none) */
    int64_t state_since_ms;      /* when `state` was entered */
    double coverage;             /* present weight / total weight, [0, 1] */
    uint64_t count;              /* records in the window */
    struct vt_component_result *components; /* def->n_components, in file order */
    int detractor;               /* index of the biggest detractor, -1 if none */
    /* segments only: */
    const char *const *labels;   /* n_segment_by values ("" when a series lacks the label) */
    double share;                /* count / whole count */
    bool masked;                 /* share >= masked_min_share && score <= whole - masked_gap */
};

struct vt_score_result {
    const struct vt_score_def *def;
    const char *config_version;  /* the loaded file's version */
    int64_t evaluated_at_ms;     /* the `now` of the evaluation (0 = never evaluated) */
    struct vt_score_eval whole;
    struct vt_score_eval *segments; /* n_segments, sorted by labels; only those with data */
    uint32_t n_segments;
    uint64_t segments_dropped;   /* segments beyond VT_SCORE_MAX_SEGMENTS, not scored */
};

#define VT_SCORE_MAX_SEGMENTS 4096 /* per score */
#define VT_SCORE_HISTORY 360       /* whole-score evaluations kept per score */

struct vt_score_point {
    int64_t ts_ms;
    double score;                /* NAN = null */
    enum vt_score_state state;
    double coverage;
    uint64_t count;
};

/* --- engine ---------------------------------------------------------------- */

struct vt_score_engine;

/* Create an engine that evaluates `cfg`. The engine takes over cfg's contents
 * (*cfg is left empty; the caller still may call vt_score_config_free on it).
 * Returns NULL on ENOMEM (cfg then untouched). */
struct vt_score_engine *vt_score_engine_new(struct vt_score_config *cfg);

/* Replace the configuration (SIGHUP reload), taking over cfg's contents as
 * above. State, pending state and history of the whole score carry over for
 * scores whose name is unchanged; segment states start afresh. Results are
 * empty until the next evaluate. Returns 0 or -ENOMEM (the old config stays). */
int vt_score_engine_set_config(struct vt_score_engine *e, struct vt_score_config *cfg);

void vt_score_engine_free(struct vt_score_engine *e);

/* The configuration in use (owned by the engine). */
const struct vt_score_config *vt_score_engine_config(const struct vt_score_engine *e);

/* Evaluate every score at `now_ms` (epoch ms; must not go backwards for the
 * state machine to make sense - an earlier now is treated as no time passed).
 * Returns 0, a source error, or -ENOMEM (results then are those of the
 * previous evaluation for the scores not yet done). */
int vt_score_engine_evaluate(struct vt_score_engine *e, const struct vt_score_source *src,
                             int64_t now_ms);

/* Results of the latest evaluation: index in [0, config->n_scores). NULL if
 * out of range. Valid until the next evaluate / set_config / free. */
uint32_t vt_score_engine_count(const struct vt_score_engine *e);
const struct vt_score_result *vt_score_engine_result(const struct vt_score_engine *e, uint32_t i);
const struct vt_score_result *vt_score_engine_find(const struct vt_score_engine *e,
                                                   const char *name);

/* History of score i: copies the points with from_ms <= ts_ms < to_ms, oldest
 * first, into out (at most cap) and returns how many were copied. */
size_t vt_score_engine_history(const struct vt_score_engine *e, uint32_t i, int64_t from_ms,
                               int64_t to_ms, struct vt_score_point *out, size_t cap);

/* --- rendering ------------------------------------------------------------- */

#define VT_SCORE_JSON_SEGMENTS 1u /* include "segments" (for /v1/scores/{name}) */

/* Render a result as the JSON of DESIGN §7 / docs/scores.md: name, mode,
 * window, evaluated_at (epoch ms), config_version, score, state, coverage,
 * count, components[] {name, stat, metric, value, normalized, weight,
 * contribution, count, missing, exemplars}, detractor, thresholds, and with
 * VT_SCORE_JSON_SEGMENTS segment_by + segments[] (each the same fields plus
 * labels {dim: value}, share, masked). NaN is rendered as null. Returns a new
 * reference (caller json_decref's) or NULL on ENOMEM. */
json_t *vt_score_result_to_json(const struct vt_score_result *r, unsigned flags);

/* --- pieces, exported for tests and tools ---------------------------------- */

/* 1 at good, 0 at bad, linear between, clamped to [0, 1]; NAN if v is NaN. */
double vt_score_normalize(double v, double good, double bad);

/* The statistic of component c over aggregate cur (and base for baseline
 * statistics; may be NULL otherwise), window_ms for rates. Sets *count to the
 * number of values it rests on and *missing (min_count / no_baseline /
 * undefined). Returns the raw value (NAN when undefined). */
double vt_score_stat(const struct vt_score_component_def *c, const struct vt_aggregate *cur,
                     const struct vt_aggregate *base, int64_t window_ms, uint64_t *count,
                     enum vt_missing *missing);

/* Drift between two sketches over ~10 bins cut at the baseline's deciles
 * (bin shares from vt_sketch_rank; empty bins smoothed to 1e-4 and the shares
 * renormalised). PSI = sum (a-e) ln(a/e); JS = Jensen-Shannon distance, log
 * base 2, in [0, 1]. NAN if either sketch is empty. */
double vt_score_psi(const vt_sketch *cur, const vt_sketch *base);
double vt_score_js(const vt_sketch *cur, const vt_sketch *base);

#endif
