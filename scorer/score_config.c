/*
 * score_config.c - load and validate the score file (see score_config.h).
 *
 * The validator walks the JSON once with jansson and keeps going after an
 * error, so an operator sees every mistake of a file at once. Each check
 * appends "<json path>: <rule>" to an error list; the load fails if the list
 * is not empty. Only a fully valid file produces a config, so a bad reload
 * can never replace a running one half-way.
 */
#include "score_config.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "aggregate.h"
#include "record.h"

/* ---------------------------------------------------------------- names */

static const char *const stat_names[VT_STAT__COUNT] = {
    [VT_STAT_COUNT] = "count",
    [VT_STAT_RATE] = "rate",
    [VT_STAT_ERROR_RATE] = "error_rate",
    [VT_STAT_MEAN] = "mean",
    [VT_STAT_SUM] = "sum",
    [VT_STAT_MIN] = "min",
    [VT_STAT_MAX] = "max",
    [VT_STAT_QUANTILE] = "quantile",
    [VT_STAT_FRAC_ABOVE] = "frac_above",
    [VT_STAT_FRAC_BELOW] = "frac_below",
    [VT_STAT_PSI] = "psi",
    [VT_STAT_JS] = "js",
    [VT_STAT_CENTROID_DISTANCE] = "centroid_distance",
    [VT_STAT_INVALID_RATE] = "invalid_rate",
    [VT_STAT_MISSING_RATE] = "missing_rate",
};

const char *vt_stat_name(enum vt_stat s)
{
    return (unsigned)s < VT_STAT__COUNT ? stat_names[s] : "unknown";
}

const char *vt_combine_name(enum vt_combine c)
{
    switch (c) {
    case VT_COMBINE_WEIGHTED_MEAN: return "weighted_mean";
    case VT_COMBINE_WEIGHTED_GEOMETRIC: return "weighted_geometric";
    case VT_COMBINE_MIN: return "min";
    }
    return "unknown";
}

const char *vt_score_mode_name(enum vt_score_mode m)
{
    return m == VT_SCORE_MODE_SHADOW ? "shadow" : "live";
}

/* ---------------------------------------------------------------- helpers */

uint64_t vt_score_fnv1a64(const void *buf, size_t len)
{
    const unsigned char *p = buf;
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < len; i++) {
        h ^= p[i];
        h *= 0x100000001b3ull;
    }
    return h;
}

int vt_score_parse_duration(const char *s, int64_t *ms)
{
    if (s == NULL || *s == '\0')
        return -EINVAL;
    int64_t total = 0;
    const char *p = s;
    while (*p) {
        if (*p < '0' || *p > '9')
            return -EINVAL;
        int64_t n = 0;
        while (*p >= '0' && *p <= '9') {
            if (n > (INT64_MAX - 9) / 10)
                return -EINVAL;
            n = n * 10 + (*p - '0');
            p++;
        }
        int64_t unit;
        if (p[0] == 'm' && p[1] == 's') {
            unit = 1;
            p += 2;
        } else if (*p == 's') {
            unit = 1000, p++;
        } else if (*p == 'm') {
            unit = 60000, p++;
        } else if (*p == 'h') {
            unit = 3600000, p++;
        } else if (*p == 'd') {
            unit = 86400000, p++;
        } else if (*p == 'w') {
            unit = 7LL * 86400000, p++;
        } else {
            return -EINVAL;
        }
        /* Overflow clamps to an error: no window is longer than centuries. */
        if (n > INT64_MAX / unit || total > INT64_MAX - n * unit)
            return -EINVAL;
        total += n * unit;
    }
    *ms = total;
    return 0;
}

/* Error list: "path: message" lines in a caller buffer, counted. */
struct errs {
    char *buf;
    size_t cap, len;
    unsigned n;
    bool oom;
};

__attribute__((format(printf, 3, 4))) static void err_add(struct errs *e, const char *path,
                                                          const char *fmt, ...)
{
    e->n++;
    if (e->buf == NULL || e->cap == 0)
        return;
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (e->len + 1 >= e->cap)
        return;
    int w = snprintf(e->buf + e->len, e->cap - e->len, "%s%s%s%s", e->n > 1 ? "\n" : "",
                     path, *path ? ": " : "", msg);
    if (w < 0)
        return;
    e->len += (size_t)w;
    if (e->len >= e->cap)
        e->len = e->cap - 1;
}

static char *xstrdup(struct errs *e, const char *s)
{
    if (s == NULL)
        return NULL;
    char *d = strdup(s);
    if (d == NULL)
        e->oom = true;
    return d;
}

static void *xcalloc(struct errs *e, size_t n, size_t sz)
{
    void *p = calloc(n ? n : 1, sz);
    if (p == NULL)
        e->oom = true;
    return p;
}

/* Reject keys of obj not in `allowed` (NULL-terminated). */
static void check_keys(struct errs *e, const char *path, json_t *obj, const char *const *allowed)
{
    const char *k;
    json_t *v;
    json_object_foreach(obj, k, v) {
        bool ok = false;
        for (const char *const *a = allowed; *a; a++)
            if (strcmp(*a, k) == 0) {
                ok = true;
                break;
            }
        if (!ok)
            err_add(e, path, "unknown key \"%s\"", k);
    }
}

static bool valid_name(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > VT_SCORE_MAX_NAME)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '.' || c == ':' || c == '-'))
            return false;
    }
    return true;
}

/* A required/optional string member. Returns the value or NULL (absent or
 * wrong type, the latter reported). */
static const char *get_string(struct errs *e, const char *path, json_t *obj, const char *key,
                              bool required)
{
    json_t *v = json_object_get(obj, key);
    char p[512];
    snprintf(p, sizeof p, "%s.%s", path, key);
    if (v == NULL) {
        if (required)
            err_add(e, p, "required");
        return NULL;
    }
    if (!json_is_string(v)) {
        err_add(e, p, "expected a string");
        return NULL;
    }
    if (json_string_length(v) != strlen(json_string_value(v))) {
        err_add(e, p, "must not contain NUL");
        return NULL;
    }
    if (required && json_string_length(v) == 0) {
        err_add(e, p, "must not be empty");
        return NULL;
    }
    return json_string_value(v);
}

/* A number member; returns 1 if present and valid, 0 if absent, -1 if bad. */
static int get_number(struct errs *e, const char *path, json_t *obj, const char *key, double *out)
{
    json_t *v = json_object_get(obj, key);
    if (v == NULL)
        return 0;
    if (!json_is_number(v)) {
        char p[512];
        snprintf(p, sizeof p, "%s.%s", path, key);
        err_add(e, p, "expected a number");
        return -1;
    }
    *out = json_number_value(v);
    return 1;
}

static int get_duration(struct errs *e, const char *path, json_t *obj, const char *key,
                        int64_t *out, const char **text)
{
    json_t *v = json_object_get(obj, key);
    if (v == NULL)
        return 0;
    char p[512];
    snprintf(p, sizeof p, "%s.%s", path, key);
    if (!json_is_string(v) || vt_score_parse_duration(json_string_value(v), out) != 0) {
        err_add(e, p, "expected a duration like \"5m\"");
        return -1;
    }
    if (text)
        *text = json_string_value(v);
    return 1;
}

static int get_count(struct errs *e, const char *path, json_t *obj, const char *key,
                     uint64_t *out)
{
    json_t *v = json_object_get(obj, key);
    if (v == NULL)
        return 0;
    if (!json_is_integer(v) || json_integer_value(v) < 0) {
        char p[512];
        snprintf(p, sizeof p, "%s.%s", path, key);
        err_add(e, p, "expected a non-negative integer");
        return -1;
    }
    *out = (uint64_t)json_integer_value(v);
    return 1;
}

/* ------------------------------------------------------------ components */

static bool stat_needs_metric(enum vt_stat s)
{
    switch (s) {
    case VT_STAT_MEAN: case VT_STAT_SUM: case VT_STAT_MIN: case VT_STAT_MAX:
    case VT_STAT_QUANTILE: case VT_STAT_FRAC_ABOVE: case VT_STAT_FRAC_BELOW:
    case VT_STAT_PSI: case VT_STAT_JS:
        return true;
    default:
        return false;
    }
}

static bool stat_takes_metric(enum vt_stat s)
{
    return stat_needs_metric(s) || s == VT_STAT_COUNT || s == VT_STAT_RATE ||
           s == VT_STAT_CENTROID_DISTANCE;
}

static bool stat_has_baseline(enum vt_stat s)
{
    return s == VT_STAT_PSI || s == VT_STAT_JS || s == VT_STAT_CENTROID_DISTANCE;
}

/* "p50" "p99.9" "p0" "p100" -> q in [0, 1]. */
static bool parse_quantile(const char *s, double *q)
{
    if (s[0] != 'p' || s[1] < '0' || s[1] > '9')
        return false;
    const char *p = s + 1;
    int ndig = 0;
    while (*p >= '0' && *p <= '9')
        p++, ndig++;
    if (ndig > 3)
        return false;
    if (*p == '.') {
        p++;
        int nf = 0;
        while (*p >= '0' && *p <= '9')
            p++, nf++;
        if (nf == 0 || nf > 6)
            return false;
    }
    if (*p != '\0')
        return false;
    double v = strtod(s + 1, NULL);
    if (!(v >= 0 && v <= 100))
        return false;
    *q = v / 100.0;
    return true;
}

static bool parse_stat(const char *s, enum vt_stat *out, double *q)
{
    for (int i = 0; i < VT_STAT__COUNT; i++)
        if (i != VT_STAT_QUANTILE && strcmp(stat_names[i], s) == 0) {
            *out = (enum vt_stat)i;
            return true;
        }
    if (parse_quantile(s, q)) {
        *out = VT_STAT_QUANTILE;
        return true;
    }
    return false;
}

static bool is_missing_field(const char *name)
{
    for (int f = VT_FIELD_FIRST; f <= VT_FIELD_LAST; f++) {
        const char *n = vt_record_field_name(f);
        if (n && (VT_RECORD_OPTIONAL_MASK & VT_FIELD_BIT(f)) && strcmp(n, name) == 0)
            return true;
    }
    return false;
}

static void parse_component(struct errs *e, const char *path, json_t *jc,
                            struct vt_score_component_def *c, uint64_t score_min_count)
{
    static const char *const keys[] = {"name", "stat", "metric", "field", "bound", "weight",
                                       "good", "bad", "min_count", "baseline", NULL};
    if (!json_is_object(jc)) {
        err_add(e, path, "expected an object");
        return;
    }
    check_keys(e, path, jc, keys);
    char p[512];

    const char *name = get_string(e, path, jc, "name", true);
    if (name && !valid_name(name)) {
        snprintf(p, sizeof p, "%s.name", path);
        err_add(e, p, "must be 1-%d characters of A-Z a-z 0-9 _ . : -", VT_SCORE_MAX_NAME);
    }
    c->name = xstrdup(e, name ? name : "");

    const char *stat = get_string(e, path, jc, "stat", true);
    bool stat_ok = false;
    if (stat) {
        snprintf(p, sizeof p, "%s.stat", path);
        if (parse_stat(stat, &c->stat, &c->q))
            stat_ok = true;
        else
            err_add(e, p, "unknown stat \"%s\" (count, rate, error_rate, mean, sum, min, max, "
                          "pNN, frac_above, frac_below, psi, js, centroid_distance, "
                          "invalid_rate, missing_rate)", stat);
    }
    c->stat_text = xstrdup(e, stat ? stat : "");

    const char *metric = get_string(e, path, jc, "metric", false);
    snprintf(p, sizeof p, "%s.metric", path);
    if (metric && (strlen(metric) == 0 || strlen(metric) > VT_AGG_MAX_METRIC_NAME))
        err_add(e, p, "must be 1-%d bytes", VT_AGG_MAX_METRIC_NAME);
    if (stat_ok) {
        if (stat_needs_metric(c->stat) && metric == NULL &&
            json_object_get(jc, "metric") == NULL)
            err_add(e, path, "stat %s needs a metric", stat);
        if (metric && !stat_takes_metric(c->stat))
            err_add(e, p, "stat %s takes no metric", stat);
        if (metric && c->stat == VT_STAT_CENTROID_DISTANCE && strcmp(metric, "embedding") != 0)
            err_add(e, p, "centroid_distance works on \"embedding\" only");
    }
    c->metric = (metric && !(stat_ok && c->stat == VT_STAT_CENTROID_DISTANCE))
                    ? xstrdup(e, metric) : NULL;

    const char *field = get_string(e, path, jc, "field", false);
    snprintf(p, sizeof p, "%s.field", path);
    if (stat_ok && c->stat == VT_STAT_MISSING_RATE) {
        if (field == NULL && json_object_get(jc, "field") == NULL)
            err_add(e, path, "stat missing_rate needs a field");
        else if (field && !is_missing_field(field))
            err_add(e, p, "unknown record field \"%s\"", field);
    } else if (field && stat_ok) {
        err_add(e, p, "only missing_rate takes a field");
    }
    c->field = (field && stat_ok && c->stat == VT_STAT_MISSING_RATE) ? xstrdup(e, field) : NULL;

    int rb = get_number(e, path, jc, "bound", &c->bound);
    snprintf(p, sizeof p, "%s.bound", path);
    if (stat_ok && (c->stat == VT_STAT_FRAC_ABOVE || c->stat == VT_STAT_FRAC_BELOW)) {
        if (rb == 0)
            err_add(e, path, "stat %s needs a bound", stat);
    } else if (rb != 0 && stat_ok) {
        err_add(e, p, "only frac_above and frac_below take a bound");
    }

    int rw = get_number(e, path, jc, "weight", &c->weight);
    snprintf(p, sizeof p, "%s.weight", path);
    if (rw == 0)
        err_add(e, p, "required");
    else if (rw > 0 && !(c->weight > 0 && isfinite(c->weight)))
        err_add(e, p, "must be greater than 0");

    int rg = get_number(e, path, jc, "good", &c->good);
    int rbad = get_number(e, path, jc, "bad", &c->bad);
    if (rg == 0) {
        snprintf(p, sizeof p, "%s.good", path);
        err_add(e, p, "required");
    }
    if (rbad == 0) {
        snprintf(p, sizeof p, "%s.bad", path);
        err_add(e, p, "required");
    }
    if (rg > 0 && rbad > 0 && c->good == c->bad)
        err_add(e, path, "good must differ from bad");

    c->min_count = score_min_count;
    get_count(e, path, jc, "min_count", &c->min_count);

    json_t *jb = json_object_get(jc, "baseline");
    c->baseline_window_ms = VT_SCORE_DEFAULT_BASELINE_WINDOW_MS;
    c->baseline_delay_ms = VT_SCORE_DEFAULT_BASELINE_DELAY_MS;
    c->has_baseline = stat_ok && stat_has_baseline(c->stat);
    if (jb != NULL) {
        snprintf(p, sizeof p, "%s.baseline", path);
        if (stat_ok && !c->has_baseline) {
            err_add(e, p, "only psi, js and centroid_distance take a baseline");
        } else if (!json_is_object(jb)) {
            err_add(e, p, "expected an object");
        } else {
            static const char *const bkeys[] = {"window", "delay", NULL};
            check_keys(e, p, jb, bkeys);
            if (get_duration(e, p, jb, "window", &c->baseline_window_ms, NULL) > 0 &&
                c->baseline_window_ms <= 0) {
                char p2[600];
                snprintf(p2, sizeof p2, "%s.window", p);
                err_add(e, p2, "must be longer than 0");
            }
            get_duration(e, p, jb, "delay", &c->baseline_delay_ms, NULL);
        }
    }
}

/* ------------------------------------------------------------------ scores */

static void parse_selector(struct errs *e, const char *path, json_t *js,
                           struct vt_score_selector *sel)
{
    static const char *const keys[] = {"service", "model", "provider", "version", "labels",
                                       NULL};
    if (js == NULL) {
        err_add(e, path, "required");
        return;
    }
    if (!json_is_object(js)) {
        err_add(e, path, "expected an object");
        return;
    }
    check_keys(e, path, js, keys);
    sel->service = xstrdup(e, get_string(e, path, js, "service", true));
    sel->model = xstrdup(e, get_string(e, path, js, "model", false));
    sel->provider = xstrdup(e, get_string(e, path, js, "provider", false));
    sel->version = xstrdup(e, get_string(e, path, js, "version", false));
    json_t *jl = json_object_get(js, "labels");
    if (jl == NULL)
        return;
    char p[512];
    snprintf(p, sizeof p, "%s.labels", path);
    if (!json_is_object(jl)) {
        err_add(e, p, "expected an object of strings");
        return;
    }
    size_t n = json_object_size(jl);
    if (n > VT_SCORE_MAX_SELECTOR_LABELS) {
        err_add(e, p, "at most %d labels", VT_SCORE_MAX_SELECTOR_LABELS);
        return;
    }
    sel->labels = xcalloc(e, n, sizeof *sel->labels);
    if (sel->labels == NULL)
        return;
    const char *k;
    json_t *v;
    json_object_foreach(jl, k, v) {
        char p2[600];
        snprintf(p2, sizeof p2, "%s.%s", p, k);
        if (!json_is_string(v) || json_string_length(v) != strlen(json_string_value(v))) {
            err_add(e, p2, "expected a string");
            continue;
        }
        sel->labels[sel->n_labels].key = xstrdup(e, k);
        sel->labels[sel->n_labels].value = xstrdup(e, json_string_value(v));
        sel->n_labels++;
    }
}

static void parse_segment_by(struct errs *e, const char *path, json_t *ja,
                             struct vt_score_def *d)
{
    static const char *const parts[4] = {"service", "model", "provider", "version"};
    if (ja == NULL)
        return;
    if (!json_is_array(ja)) {
        err_add(e, path, "expected an array of dimension names");
        return;
    }
    size_t n = json_array_size(ja);
    if (n > VT_SCORE_MAX_SEGMENT_BY) {
        err_add(e, path, "at most %d dimensions", VT_SCORE_MAX_SEGMENT_BY);
        return;
    }
    d->segment_by = xcalloc(e, n, sizeof *d->segment_by);
    if (d->segment_by == NULL)
        return;
    for (size_t i = 0; i < n; i++) {
        json_t *v = json_array_get(ja, i);
        char p[512];
        snprintf(p, sizeof p, "%s[%zu]", path, i);
        if (!json_is_string(v) || json_string_length(v) == 0 ||
            json_string_length(v) != strlen(json_string_value(v))) {
            err_add(e, p, "expected a non-empty string");
            continue;
        }
        const char *s = json_string_value(v);
        bool dup = false;
        for (uint32_t j = 0; j < d->n_segment_by; j++)
            if (strcmp(d->segment_by[j].name, s) == 0)
                dup = true;
        if (dup) {
            err_add(e, p, "duplicate dimension \"%s\"", s);
            continue;
        }
        struct vt_score_dim *dim = &d->segment_by[d->n_segment_by++];
        dim->name = xstrdup(e, s);
        dim->part = -1;
        for (int k = 0; k < 4; k++)
            if (strcmp(parts[k], s) == 0)
                dim->part = k;
    }
}

static void parse_score(struct errs *e, const char *path, json_t *js, struct vt_score_def *d)
{
    static const char *const keys[] = {"name", "description", "selector", "segment_by",
                                       "window", "combine", "min_count", "components",
                                       "thresholds", "hysteresis", "for", "mode",
                                       "masked_min_share", "masked_gap", NULL};
    char p[512];
    d->combine = VT_COMBINE_WEIGHTED_MEAN;
    d->min_count = VT_SCORE_DEFAULT_MIN_COUNT;
    d->warning = VT_SCORE_DEFAULT_WARNING;
    d->critical = VT_SCORE_DEFAULT_CRITICAL;
    d->hysteresis = VT_SCORE_DEFAULT_HYSTERESIS;
    d->for_ms = VT_SCORE_DEFAULT_FOR_MS;
    d->masked_min_share = VT_SCORE_DEFAULT_MASKED_MIN_SHARE;
    d->masked_gap = VT_SCORE_DEFAULT_MASKED_GAP;
    if (!json_is_object(js)) {
        err_add(e, path, "expected an object");
        return;
    }
    check_keys(e, path, js, keys);

    const char *name = get_string(e, path, js, "name", true);
    if (name && !valid_name(name)) {
        snprintf(p, sizeof p, "%s.name", path);
        err_add(e, p, "must be 1-%d characters of A-Z a-z 0-9 _ . : -", VT_SCORE_MAX_NAME);
    }
    d->name = xstrdup(e, name ? name : "");
    d->description = xstrdup(e, get_string(e, path, js, "description", false));

    snprintf(p, sizeof p, "%s.selector", path);
    parse_selector(e, p, json_object_get(js, "selector"), &d->selector);
    snprintf(p, sizeof p, "%s.segment_by", path);
    parse_segment_by(e, p, json_object_get(js, "segment_by"), d);

    const char *wtext = NULL;
    int rw = get_duration(e, path, js, "window", &d->window_ms, &wtext);
    snprintf(p, sizeof p, "%s.window", path);
    if (rw == 0)
        err_add(e, p, "required");
    else if (rw > 0 && d->window_ms <= 0)
        err_add(e, p, "must be longer than 0");
    d->window_text = xstrdup(e, wtext ? wtext : "");

    json_t *jcomb = json_object_get(js, "combine");
    if (jcomb) {
        const char *c = json_string_value(jcomb);
        snprintf(p, sizeof p, "%s.combine", path);
        if (c && strcmp(c, "weighted_mean") == 0)
            d->combine = VT_COMBINE_WEIGHTED_MEAN;
        else if (c && strcmp(c, "weighted_geometric") == 0)
            d->combine = VT_COMBINE_WEIGHTED_GEOMETRIC;
        else if (c && strcmp(c, "min") == 0)
            d->combine = VT_COMBINE_MIN;
        else
            err_add(e, p, "expected \"weighted_mean\", \"weighted_geometric\" or \"min\"");
    }

    get_count(e, path, js, "min_count", &d->min_count);

    json_t *jt = json_object_get(js, "thresholds");
    if (jt) {
        snprintf(p, sizeof p, "%s.thresholds", path);
        if (!json_is_object(jt)) {
            err_add(e, p, "expected an object {\"warning\": x, \"critical\": y}");
        } else {
            static const char *const tkeys[] = {"warning", "critical", NULL};
            check_keys(e, p, jt, tkeys);
            int a = get_number(e, p, jt, "warning", &d->warning);
            int b = get_number(e, p, jt, "critical", &d->critical);
            char p2[600];
            bool in = true;
            if (a > 0 && !(d->warning >= 0 && d->warning <= 1)) {
                snprintf(p2, sizeof p2, "%s.warning", p);
                err_add(e, p2, "must be in [0, 1]");
                in = false;
            }
            if (b > 0 && !(d->critical >= 0 && d->critical <= 1)) {
                snprintf(p2, sizeof p2, "%s.critical", p);
                err_add(e, p2, "must be in [0, 1]");
                in = false;
            }
            if (a >= 0 && b >= 0 && in && !(d->warning > d->critical))
                err_add(e, p, "warning must be greater than critical (higher scores are better)");
        }
    }

    int rh = get_number(e, path, js, "hysteresis", &d->hysteresis);
    if (rh > 0 && !(d->hysteresis >= 0 && d->hysteresis <= 0.5)) {
        snprintf(p, sizeof p, "%s.hysteresis", path);
        err_add(e, p, "must be in [0, 0.5]");
    }
    get_duration(e, path, js, "for", &d->for_ms, NULL);

    const char *mode = get_string(e, path, js, "mode", false);
    if (mode) {
        if (strcmp(mode, "live") == 0)
            d->mode = VT_SCORE_MODE_LIVE;
        else if (strcmp(mode, "shadow") == 0)
            d->mode = VT_SCORE_MODE_SHADOW;
        else {
            snprintf(p, sizeof p, "%s.mode", path);
            err_add(e, p, "expected \"live\" or \"shadow\"");
        }
    }

    if (get_number(e, path, js, "masked_min_share", &d->masked_min_share) > 0 &&
        !(d->masked_min_share > 0 && d->masked_min_share <= 1)) {
        snprintf(p, sizeof p, "%s.masked_min_share", path);
        err_add(e, p, "must be in (0, 1]");
    }
    if (get_number(e, path, js, "masked_gap", &d->masked_gap) > 0 &&
        !(d->masked_gap > 0 && d->masked_gap <= 1)) {
        snprintf(p, sizeof p, "%s.masked_gap", path);
        err_add(e, p, "must be in (0, 1]");
    }

    json_t *jc = json_object_get(js, "components");
    snprintf(p, sizeof p, "%s.components", path);
    if (jc == NULL) {
        err_add(e, p, "required");
        return;
    }
    if (!json_is_array(jc) || json_array_size(jc) == 0) {
        err_add(e, p, "expected a non-empty array");
        return;
    }
    size_t n = json_array_size(jc);
    if (n > VT_SCORE_MAX_COMPONENTS) {
        err_add(e, p, "at most %d components", VT_SCORE_MAX_COMPONENTS);
        return;
    }
    d->components = xcalloc(e, n, sizeof *d->components);
    if (d->components == NULL)
        return;
    d->n_components = (uint32_t)n;
    for (size_t i = 0; i < n; i++) {
        char pc[600];
        snprintf(pc, sizeof pc, "%s[%zu]", p, i);
        parse_component(e, pc, json_array_get(jc, i), &d->components[i], d->min_count);
        for (size_t j = 0; j < i; j++)
            if (d->components[i].name && d->components[j].name && *d->components[i].name &&
                strcmp(d->components[i].name, d->components[j].name) == 0) {
                char pn[620];
                snprintf(pn, sizeof pn, "%s.name", pc);
                err_add(e, pn, "duplicate component name \"%s\"", d->components[i].name);
                break;
            }
    }
}

/* ------------------------------------------------------------------ free */

static void free_def(struct vt_score_def *d)
{
    free(d->name);
    free(d->description);
    free(d->selector.service);
    free(d->selector.model);
    free(d->selector.provider);
    free(d->selector.version);
    for (uint32_t i = 0; i < d->selector.n_labels; i++) {
        free(d->selector.labels[i].key);
        free(d->selector.labels[i].value);
    }
    free(d->selector.labels);
    for (uint32_t i = 0; i < d->n_segment_by; i++)
        free(d->segment_by[i].name);
    free(d->segment_by);
    free(d->window_text);
    if (d->components) {
        for (uint32_t i = 0; i < d->n_components; i++) {
            free(d->components[i].name);
            free(d->components[i].stat_text);
            free(d->components[i].metric);
            free(d->components[i].field);
        }
    }
    free(d->components);
    memset(d, 0, sizeof *d);
}

void vt_score_config_free(struct vt_score_config *cfg)
{
    if (cfg == NULL)
        return;
    for (uint32_t i = 0; i < cfg->n_scores; i++)
        free_def(&cfg->scores[i]);
    free(cfg->scores);
    memset(cfg, 0, sizeof *cfg);
}

/* ------------------------------------------------------------------ load */

int vt_score_config_load_buffer(const char *buf, size_t len, struct vt_score_config *cfg,
                                char *err, size_t errlen)
{
    struct errs e = {.buf = err, .cap = errlen};
    memset(cfg, 0, sizeof *cfg);
    if (err && errlen)
        err[0] = '\0';

    json_error_t jerr;
    json_t *root = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &jerr);
    if (root == NULL) {
        err_add(&e, "", "invalid JSON at line %d column %d: %s", jerr.line, jerr.column,
                jerr.text);
        return -EINVAL;
    }
    if (!json_is_object(root)) {
        err_add(&e, "", "expected a JSON object {\"version\": 1, \"scores\": [...]}");
        json_decref(root);
        return -EINVAL;
    }
    static const char *const keys[] = {"version", "scores", NULL};
    check_keys(&e, "", root, keys);
    /* Path-less errors above read "unknown key" without a prefix; keep them. */

    json_t *jv = json_object_get(root, "version");
    if (jv == NULL)
        err_add(&e, "version", "required");
    else if (!json_is_integer(jv) || json_integer_value(jv) != 1)
        err_add(&e, "version", "unsupported version (expected 1)");

    json_t *js = json_object_get(root, "scores");
    if (js == NULL) {
        err_add(&e, "scores", "required");
    } else if (!json_is_array(js)) {
        err_add(&e, "scores", "expected an array");
    } else if (json_array_size(js) > VT_SCORE_MAX_SCORES) {
        err_add(&e, "scores", "at most %d scores", VT_SCORE_MAX_SCORES);
    } else {
        size_t n = json_array_size(js);
        cfg->scores = xcalloc(&e, n, sizeof *cfg->scores);
        if (cfg->scores) {
            cfg->n_scores = (uint32_t)n;
            for (size_t i = 0; i < n; i++) {
                char p[64];
                snprintf(p, sizeof p, "scores[%zu]", i);
                parse_score(&e, p, json_array_get(js, i), &cfg->scores[i]);
                for (size_t j = 0; j < i; j++)
                    if (cfg->scores[i].name && cfg->scores[j].name && *cfg->scores[i].name &&
                        strcmp(cfg->scores[i].name, cfg->scores[j].name) == 0) {
                        char pn[80];
                        snprintf(pn, sizeof pn, "scores[%zu].name", i);
                        err_add(&e, pn, "duplicate score name \"%s\" (also scores[%zu])",
                                cfg->scores[i].name, j);
                        break;
                    }
            }
        }
    }
    json_decref(root);

    if (e.oom) {
        vt_score_config_free(cfg);
        return -ENOMEM;
    }
    if (e.n > 0) {
        vt_score_config_free(cfg);
        return -EINVAL;
    }
    cfg->hash = vt_score_fnv1a64(buf, len);
    snprintf(cfg->version, sizeof cfg->version, "%012llx",
             (unsigned long long)(cfg->hash >> 16));
    return 0;
}

int vt_score_config_load_file(const char *path, struct vt_score_config *cfg, char *err,
                              size_t errlen)
{
    memset(cfg, 0, sizeof *cfg);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        int r = -errno;
        if (err && errlen)
            snprintf(err, errlen, "%s: %s", path, strerror(-r));
        return r;
    }
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int r = -errno;
        close(fd);
        if (err && errlen)
            snprintf(err, errlen, "%s: %s", path, strerror(-r));
        return r;
    }
    if (!S_ISREG(st.st_mode) || st.st_size > (off_t)VT_SCORE_CONFIG_MAX_BYTES) {
        close(fd);
        if (err && errlen)
            snprintf(err, errlen, "%s: %s", path,
                     S_ISREG(st.st_mode) ? "larger than 16 MiB" : "not a regular file");
        return S_ISREG(st.st_mode) ? -EFBIG : -EINVAL;
    }
    size_t size = (size_t)st.st_size;
    char *buf = malloc(size ? size : 1);
    if (buf == NULL) {
        close(fd);
        return -ENOMEM;
    }
    size_t got = 0;
    while (got < size) {
        ssize_t r = read(fd, buf + got, size - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            int rc = r < 0 ? -errno : -EIO;
            free(buf);
            close(fd);
            if (err && errlen)
                snprintf(err, errlen, "%s: %s", path, strerror(-rc));
            return rc;
        }
        got += (size_t)r;
    }
    close(fd);
    int rc = vt_score_config_load_buffer(buf, size, cfg, err, errlen);
    free(buf);
    return rc;
}

int vt_score_config_check(const char *path, FILE *out)
{
    struct vt_score_config cfg;
    char err[16384];
    int rc = vt_score_config_load_file(path, &cfg, err, sizeof err);
    if (rc == 0) {
        fprintf(out, "ok: %u score%s, version %s\n", cfg.n_scores, cfg.n_scores == 1 ? "" : "s",
                cfg.version);
        vt_score_config_free(&cfg);
        return 0;
    }
    if (rc == -EINVAL && strncmp(err, path, strlen(path)) != 0)
        fprintf(out, "%s: invalid score file\n%s\n", path, err);
    else
        fprintf(out, "%s\n", rc == -ENOMEM ? "out of memory" : err);
    return 2;
}
