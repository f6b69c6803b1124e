/*
 * score_config.h - the score file: parse, validate, version.
 *
 * Scores are configuration that operators keep in git and reload on SIGHUP,
 * so the file must be checked completely before it replaces a running one,
 * and every mistake must be reported with the JSON path and the rule it
 * breaks ("scores[0].components[2]: good must differ from bad"). This module
 * turns the file into plain structs the engine (score.h) evaluates; nothing
 * here touches data. docs/scores.md is the user-facing reference of every key,
 * default and message.
 *
 * File: {"version": 1, "scores": [ <score>, ... ]}. Unknown keys are errors
 * everywhere (a typo must not silently become a default).
 *
 * Version: the config version is the first 12 hex digits of the 64-bit
 * FNV-1a hash of the file's bytes: it changes with any edit (even
 * whitespace), and is stable across machines and runs.
 *
 * Memory: a loaded vt_score_config owns every string and array it points to;
 * vt_score_config_free() releases them. Nothing is global; loading is
 * re-entrant.
 */
#ifndef VT_SCORE_CONFIG_H
#define VT_SCORE_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* Limits (validated; larger files are rejected with a message). */
#define VT_SCORE_MAX_SCORES 1024
#define VT_SCORE_MAX_COMPONENTS 64
#define VT_SCORE_MAX_SEGMENT_BY 8
#define VT_SCORE_MAX_SELECTOR_LABELS 32
#define VT_SCORE_MAX_NAME 128            /* score and component names */
#define VT_SCORE_CONFIG_MAX_BYTES (16u << 20)

/* Defaults (docs/scores.md repeats them). */
#define VT_SCORE_DEFAULT_MIN_COUNT 20
#define VT_SCORE_DEFAULT_WARNING 0.8
#define VT_SCORE_DEFAULT_CRITICAL 0.6
#define VT_SCORE_DEFAULT_HYSTERESIS 0.02
#define VT_SCORE_DEFAULT_FOR_MS 60000            /* "1m" */
#define VT_SCORE_DEFAULT_MASKED_MIN_SHARE 0.05
#define VT_SCORE_DEFAULT_MASKED_GAP 0.15
#define VT_SCORE_DEFAULT_BASELINE_WINDOW_MS (7LL * 86400000) /* "7d" */
#define VT_SCORE_DEFAULT_BASELINE_DELAY_MS (1LL * 86400000)  /* "1d" */

/* Statistics a component can compute. Which need a metric, a bound, a field
 * or a baseline is in docs/scores.md and enforced by the validator. */
enum vt_stat {
    VT_STAT_COUNT = 0,         /* records (or values of `metric` if given) in the window */
    VT_STAT_RATE,              /* count / window seconds */
    VT_STAT_ERROR_RATE,        /* errors / count */
    VT_STAT_MEAN,              /* of metric */
    VT_STAT_SUM,
    VT_STAT_MIN,
    VT_STAT_MAX,
    VT_STAT_QUANTILE,          /* "p50", "p99.9": q in component.q */
    VT_STAT_FRAC_ABOVE,        /* share of metric values > bound */
    VT_STAT_FRAC_BELOW,        /* share of metric values <= bound */
    VT_STAT_PSI,               /* population stability index vs baseline */
    VT_STAT_JS,                /* Jensen-Shannon distance (base 2) vs baseline */
    VT_STAT_CENTROID_DISTANCE, /* Euclidean distance of embedding centroids vs baseline */
    VT_STAT_INVALID_RATE,      /* invalid / (count + invalid) */
    VT_STAT_MISSING_RATE,      /* records lacking `field` / count */
    VT_STAT__COUNT
};

enum vt_combine {
    VT_COMBINE_WEIGHTED_MEAN = 0, /* "weighted_mean" (default) */
    VT_COMBINE_WEIGHTED_GEOMETRIC,/* "weighted_geometric" */
    VT_COMBINE_MIN,               /* "min" */
};

enum vt_score_mode { VT_SCORE_MODE_LIVE = 0, VT_SCORE_MODE_SHADOW = 1 };

/* Stable names ("error_rate", "weighted_mean", "shadow"). */
const char *vt_stat_name(enum vt_stat s);
const char *vt_combine_name(enum vt_combine c);
const char *vt_score_mode_name(enum vt_score_mode m);

struct vt_score_component_def {
    char *name;              /* unique within its score */
    char *stat_text;         /* the stat as written: "p99.9", "frac_above" */
    enum vt_stat stat;
    double q;                /* VT_STAT_QUANTILE: in [0, 1] */
    char *metric;            /* sketch name ("latency_ms", "relevance"); NULL if none */
    char *field;             /* VT_STAT_MISSING_RATE: record field name; else NULL */
    double bound;            /* VT_STAT_FRAC_ABOVE/BELOW */
    double weight;           /* > 0, as written (not normalised) */
    double good, bad;        /* normalisation: 1 at good, 0 at bad; good != bad */
    uint64_t min_count;      /* the score's min_count unless the component sets one */
    bool has_baseline;       /* psi / js / centroid_distance */
    int64_t baseline_window_ms; /* > 0 */
    int64_t baseline_delay_ms;  /* >= 0: baseline = [now - delay - window, now - delay) */
};

struct vt_score_label_match {
    char *key;
    char *value;             /* exact, or a glob if it contains * ? [ (fnmatch) */
};

/* Which series a score reads. NULL / 0 = any. Every value is an exact match
 * unless it contains a glob metacharacter (* ? [), then fnmatch(3) rules. */
struct vt_score_selector {
    char *service;           /* required */
    char *model, *provider, *version;
    struct vt_score_label_match *labels;
    uint32_t n_labels;
};

/* One segment_by dimension: a series key part or a label. */
struct vt_score_dim {
    char *name;              /* "provider", "region", ... (the JSON label name) */
    int part;                /* 0..3 = service, model, provider, version; -1 = label */
};

struct vt_score_def {
    char *name;              /* unique in the file; [A-Za-z0-9_.:-]+ */
    char *description;       /* optional, NULL if absent */
    struct vt_score_selector selector;
    struct vt_score_dim *segment_by;
    uint32_t n_segment_by;
    char *window_text;       /* as written, e.g. "5m" */
    int64_t window_ms;       /* > 0 */
    enum vt_combine combine;
    uint64_t min_count;
    struct vt_score_component_def *components;
    uint32_t n_components;   /* >= 1 */
    double warning, critical;/* 1 >= warning > critical >= 0 */
    double hysteresis;       /* [0, 0.5] */
    int64_t for_ms;          /* >= 0 */
    enum vt_score_mode mode;
    double masked_min_share; /* (0, 1] */
    double masked_gap;       /* (0, 1] */
};

struct vt_score_config {
    struct vt_score_def *scores;
    uint32_t n_scores;
    uint64_t hash;           /* FNV-1a 64 of the file bytes */
    char version[13];        /* first 12 hex digits of hash, NUL-terminated */
};

/* Parse and validate `len` bytes of a score file into *cfg (overwritten; no
 * need to initialise). On success returns 0 and *cfg owns its contents. On
 * failure *cfg is left empty (safe to free) and:
 *   -EINVAL : the file is invalid; `err` holds every error found, one per
 *             line ("scores[0].window: expected a duration like \"5m\""),
 *             no trailing newline, truncated to errlen - 1 bytes;
 *   -ENOMEM : out of memory.
 * err may be NULL when errlen is 0. */
int vt_score_config_load_buffer(const char *buf, size_t len, struct vt_score_config *cfg,
                                char *err, size_t errlen);

/* Read `path` and load it as above. Read failures return -errno with
 * "<path>: <strerror>" in err; a file larger than VT_SCORE_CONFIG_MAX_BYTES
 * returns -EFBIG. */
int vt_score_config_load_file(const char *path, struct vt_score_config *cfg, char *err,
                              size_t errlen);

/* Release everything *cfg owns and leave it empty. NULL and empty are fine. */
void vt_score_config_free(struct vt_score_config *cfg);

/* `--check-config FILE`: load the file and print to `out` either
 * "ok: N scores, version X\n" or "<path>: invalid score file\n" followed by
 * one error per line. Returns the process exit code: 0 valid, 2 invalid or
 * unreadable. */
int vt_score_config_check(const char *path, FILE *out);

/* Helpers, exported for the daemon and tests. */

/* Parse a duration "250ms", "30s", "5m", "1h30m", "7d", "2w" (one or more
 * <integer><unit> groups, units ms s m h d w). Returns 0 and *ms, or -EINVAL
 * (also for overflow past ~292 years or an empty string). */
int vt_score_parse_duration(const char *s, int64_t *ms);

/* FNV-1a 64-bit of bytes (the config version hash). */
uint64_t vt_score_fnv1a64(const void *buf, size_t len);

#endif
