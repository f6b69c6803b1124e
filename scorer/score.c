/*
 * score.c - the score engine (see score.h).
 *
 * Shape of one evaluation:
 *   1. reset every score's accumulators (allocations are kept: a steady
 *      state evaluation mallocs nothing but new segments);
 *   2. group the ranges to read - each score's window and each distinct
 *      baseline range - so that one pass over the source serves every score
 *      that reads the same range;
 *   3. for each visited (series key, aggregate): test each score's selector
 *      and merge into the whole and the segment. Only what the score's
 *      components read is merged (count and errors always; sketches,
 *      data-quality counters, embeddings and exemplars only when some
 *      component needs them; a sketch's buckets only for quantile, rank and
 *      drift statistics - a mean needs its totals): a 10k-series pass stays
 *      cheap even when every series carries dozens of metrics;
 *   4. per score and segment: statistics, normalisation, combine, state
 *      machine, masked flags, history.
 *
 * Accumulators (what a score reads, merged) are score_acc.c.
 */
#include "score.h"

#include <assert.h>
#include <errno.h>
#include <fnmatch.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "score_acc.h"
#include "series.h"

const char *vt_score_state_name(enum vt_score_state s)
{
    switch (s) {
    case VT_SCORE_NO_DATA: return "no_data";
    case VT_SCORE_OK: return "ok";
    case VT_SCORE_WARNING: return "warning";
    case VT_SCORE_CRITICAL: return "critical";
    }
    return "unknown";
}

const char *vt_missing_name(enum vt_missing m)
{
    switch (m) {
    case VT_MISSING_NONE: return "none";
    case VT_MISSING_MIN_COUNT: return "min_count";
    case VT_MISSING_NO_BASELINE: return "no_baseline";
    case VT_MISSING_UNDEFINED: return "undefined";
    }
    return "unknown";
}

/* Statistics and normalisation (vt_score_stat, vt_score_normalize,
 * vt_score_psi, vt_score_js) live in stats.c. */

/* ================================================================ engine */

struct base_range {
    int64_t window_ms, delay_ms;
};

struct seg {
    char **labels;                 /* n_segment_by copies */
    struct vt_aggregate cur;
    struct vt_aggregate *base;     /* n_base */
    struct vt_score_eval eval;     /* components owned here; state kept across ticks */
    bool seen;                     /* data in the current evaluation */
    bool base_seen;                /* baseline data in the current evaluation */
};

struct score_rt {
    const struct vt_score_def *def;
    int leader;                    /* -1, or the earlier score whose population
                                      (selector, segment_by, window) this one
                                      shares: it reads no data itself and takes
                                      the leader's accumulators (see share) */
    struct vt_acc_needs cur_needs, base_needs;
    struct base_range *base;       /* distinct baseline ranges */
    uint32_t n_base;
    int *comp_base;                /* per component: baseline slot or -1 */
    struct vt_aggregate whole;
    struct vt_aggregate *whole_base;
    struct vt_score_eval whole_eval;
    struct vt_series_table segs;   /* segment tuple -> struct seg* */
    struct vt_score_eval *seg_evals;
    uint32_t cap_seg_evals;
    struct vt_score_result result;
    struct vt_score_point history[VT_SCORE_HISTORY];
    uint32_t hist_head, hist_n;    /* next slot, points kept */
    int err;
};

/* One range read from the source and the (score, slot) pairs it feeds. */
struct pass_entry {
    uint32_t score;
    int slot;                      /* -1 = current window, else baseline slot */
};
struct pass {
    int64_t from, to;
    uint32_t first, n;             /* into engine->entries */
};

/* Where one series' data goes in the current pass: resolved once per
 * series (selectors, segment lookup) and reused for each of its rollups. */
struct dest {
    struct vt_aggregate *acc;
    const struct vt_acc_needs *nd;
    struct score_rt *rt;           /* for rt->err */
    bool *seen;                    /* the segment's seen / base_seen, or NULL */
};

struct vt_score_engine {
    struct vt_score_config cfg;
    struct score_rt *rt;
    struct pass *passes;
    struct pass_entry *entries;    /* capacity: sum over scores of 1 + n_base */
    uint32_t n_passes, n_entries;
    struct dest *dests;            /* capacity: as entries */
    uint32_t n_dests;
    size_t last_len;               /* the series dests belong to; */
    bool have_last;                /* ... none at the start of a pass */
    char last_key[VT_SERIES_KEY_MAX];
    char tuple[VT_SERIES_KEY_MAX];
};

static void seg_free(struct score_rt *rt, struct seg *s)
{
    if (!s)
        return;
    if (s->labels)
        for (uint32_t i = 0; i < rt->def->n_segment_by; i++)
            free(s->labels[i]);
    free(s->labels);
    vt_aggregate_free(&s->cur);
    if (s->base)
        for (uint32_t i = 0; i < rt->n_base; i++)
            vt_aggregate_free(&s->base[i]);
    free(s->base);
    free(s->eval.components);
    free(s);
}

static void rt_free(struct score_rt *rt)
{
    if (rt->segs.slots) {
        uint32_t it = 0;
        struct vt_series_entry *en;
        while ((en = vt_series_table_next(&rt->segs, &it)) != NULL)
            seg_free(rt, en->value);
        vt_series_table_free(&rt->segs);
    }
    vt_aggregate_free(&rt->whole);
    if (rt->whole_base)
        for (uint32_t i = 0; i < rt->n_base; i++)
            vt_aggregate_free(&rt->whole_base[i]);
    free(rt->whole_base);
    free(rt->whole_eval.components);
    free(rt->seg_evals);
    free(rt->base);
    free(rt->comp_base);
    vt_acc_needs_free(&rt->cur_needs);
    vt_acc_needs_free(&rt->base_needs);
    memset(rt, 0, sizeof *rt);
}

static bool is_latency(const struct vt_score_component_def *c)
{
    return c->metric && (strcmp(c->metric, "latency_ms") == 0 ||
                         strcmp(c->metric, "ttft_ms") == 0);
}

static int rt_init(struct score_rt *rt, const struct vt_score_def *d)
{
    memset(rt, 0, sizeof *rt);
    rt->def = d;
    vt_aggregate_init(&rt->whole);
    rt->comp_base = calloc(d->n_components, sizeof *rt->comp_base);
    rt->base = calloc(d->n_components, sizeof *rt->base);
    rt->whole_eval.components = calloc(d->n_components, sizeof *rt->whole_eval.components);
    if (!rt->comp_base || !rt->base || !rt->whole_eval.components)
        return -ENOMEM;
    for (uint32_t i = 0; i < d->n_components; i++) {
        const struct vt_score_component_def *c = &d->components[i];
        rt->comp_base[i] = -1;
        if (vt_acc_needs_add_component(&rt->cur_needs, c, false))
            return -ENOMEM;
        if (c->stat == VT_STAT_CENTROID_DISTANCE)
            rt->cur_needs.embedding = rt->base_needs.embedding = true;
        if (is_latency(c) || c->stat == VT_STAT_ERROR_RATE)
            rt->cur_needs.exemplars = true;
        if (!c->has_baseline)
            continue;
        if (vt_acc_needs_add_component(&rt->base_needs, c, true))
            return -ENOMEM;
        uint32_t s;
        for (s = 0; s < rt->n_base; s++)
            if (rt->base[s].window_ms == c->baseline_window_ms &&
                rt->base[s].delay_ms == c->baseline_delay_ms)
                break;
        if (s == rt->n_base) {
            rt->base[s].window_ms = c->baseline_window_ms;
            rt->base[s].delay_ms = c->baseline_delay_ms;
            rt->n_base++;
        }
        rt->comp_base[i] = (int)s;
    }
    if (vt_acc_init(&rt->whole, &rt->cur_needs))
        return -ENOMEM;
    if (rt->n_base) {
        rt->whole_base = calloc(rt->n_base, sizeof *rt->whole_base);
        if (!rt->whole_base)
            return -ENOMEM;
        for (uint32_t s = 0; s < rt->n_base; s++)
            vt_aggregate_init(&rt->whole_base[s]);
        for (uint32_t s = 0; s < rt->n_base; s++)
            if (vt_acc_init(&rt->whole_base[s], &rt->base_needs))
                return -ENOMEM;
    }
    if (d->n_segment_by && vt_series_table_init(&rt->segs, VT_SCORE_MAX_SEGMENTS))
        return -ENOMEM;
    rt->whole_eval.detractor = -1;
    rt->result.def = d;
    return 0;
}

static struct seg *seg_of_tuple(struct score_rt *rt, const char *tuple, size_t n);

/* ---- shared populations ------------------------------------------------
 * Scores often read the same series the same way and differ only in their
 * components, thresholds or mode (a shadow copy of a live score, one score
 * per audience). Such scores share one read: the first of them (the leader)
 * accumulates the union of what they all need, the others copy its segment
 * accumulators after the pass - segments are few, series are many. */

static bool str_eq(const char *a, const char *b)
{
    return a == b || (a && b && strcmp(a, b) == 0);
}

static bool same_population(const struct score_rt *a, const struct score_rt *b)
{
    const struct vt_score_def *x = a->def, *y = b->def;
    if (x->window_ms != y->window_ms || a->n_base || b->n_base ||
        !str_eq(x->selector.service, y->selector.service) ||
        !str_eq(x->selector.model, y->selector.model) ||
        !str_eq(x->selector.provider, y->selector.provider) ||
        !str_eq(x->selector.version, y->selector.version) ||
        x->selector.n_labels != y->selector.n_labels || x->n_segment_by != y->n_segment_by)
        return false;
    for (uint32_t i = 0; i < x->selector.n_labels; i++)
        if (!str_eq(x->selector.labels[i].key, y->selector.labels[i].key) ||
            !str_eq(x->selector.labels[i].value, y->selector.labels[i].value))
            return false;
    for (uint32_t i = 0; i < x->n_segment_by; i++)
        if (x->segment_by[i].part != y->segment_by[i].part ||
            !str_eq(x->segment_by[i].name, y->segment_by[i].name))
            return false;
    return true;
}

/* leader's needs |= follower's (and its whole accumulator gets the names). */
static int needs_union(struct score_rt *leader, const struct score_rt *f)
{
    struct vt_acc_needs *n = &leader->cur_needs;
    n->fixed |= f->cur_needs.fixed;
    n->fixed_full |= f->cur_needs.fixed_full;
    n->quality |= f->cur_needs.quality;
    n->embedding |= f->cur_needs.embedding;
    n->exemplars |= f->cur_needs.exemplars;
    for (uint32_t i = 0; i < f->cur_needs.n_names; i++)
        if (vt_acc_needs_add_metric(n, f->cur_needs.names[i]) ||
            !vt_aggregate_metric(&leader->whole, f->cur_needs.names[i]))
            return -ENOMEM;
    return 0;
}

static void group_scores(struct score_rt *rt, uint32_t n)
{
    for (uint32_t i = 0; i < n; i++) {
        rt[i].leader = -1;
        for (uint32_t j = 0; j < i; j++)
            if (rt[j].leader < 0 && same_population(&rt[j], &rt[i])) {
                if (needs_union(&rt[j], &rt[i]) == 0)
                    rt[i].leader = (int)j;
                break;
            }
    }
}

/* Fill follower f from its leader's accumulators (before either folds its
 * segments into its whole). */
static void share(struct score_rt *f, const struct score_rt *l)
{
    f->err = l->err;
    f->result.segments_dropped = l->result.segments_dropped;
    if (vt_acc_merge(&f->whole, &l->whole, &f->cur_needs))
        f->err = -ENOMEM;
    if (!l->def->n_segment_by)
        return;
    uint32_t it = 0;
    struct vt_series_entry *en;
    while ((en = vt_series_table_next((struct vt_series_table *)&l->segs, &it)) != NULL) {
        const struct seg *ls = en->value;
        if (!ls || !ls->seen)
            continue;
        struct seg *fs = seg_of_tuple(f, en->key, en->len);
        if (!fs)
            continue;
        fs->seen = true;
        if (vt_acc_merge(&fs->cur, &ls->cur, &f->cur_needs))
            f->err = -ENOMEM;
    }
}

static int engine_setup(struct vt_score_engine *e, struct vt_score_config *cfg,
                        struct score_rt **rt_out, struct pass **passes,
                        struct pass_entry **entries, struct dest **dests)
{
    uint32_t n = cfg->n_scores;
    struct score_rt *rt = calloc(n ? n : 1, sizeof *rt);
    if (!rt)
        return -ENOMEM;
    uint32_t total = 0;
    int rc = 0;
    for (uint32_t i = 0; i < n; i++) {
        rc = rt_init(&rt[i], &cfg->scores[i]);
        total += 1 + rt[i].n_base;
        if (rc)
            break;
    }
    if (!rc)
        group_scores(rt, n);
    *passes = calloc(total ? total : 1, sizeof **passes);
    *entries = calloc(total ? total : 1, sizeof **entries);
    *dests = calloc(total ? total : 1, sizeof **dests);
    if (rc || !*passes || !*entries || !*dests) {
        for (uint32_t i = 0; i < n; i++)
            rt_free(&rt[i]);
        free(rt);
        free(*passes);
        free(*entries);
        free(*dests);
        return -ENOMEM;
    }
    *rt_out = rt;
    (void)e;
    return 0;
}

struct vt_score_engine *vt_score_engine_new(struct vt_score_config *cfg)
{
    struct vt_score_engine *e = calloc(1, sizeof *e);
    if (!e)
        return NULL;
    if (vt_score_engine_set_config(e, cfg) != 0) {
        free(e);
        return NULL;
    }
    return e;
}

int vt_score_engine_set_config(struct vt_score_engine *e, struct vt_score_config *cfg)
{
    struct score_rt *rt;
    struct pass *passes;
    struct pass_entry *entries;
    struct dest *dests;
    int rc = engine_setup(e, cfg, &rt, &passes, &entries, &dests);
    if (rc)
        return rc;
    /* Carry the whole score's state and history over by name. */
    for (uint32_t i = 0; i < cfg->n_scores; i++)
        for (uint32_t j = 0; j < e->cfg.n_scores; j++) {
            struct score_rt *o = &e->rt[j];
            if (strcmp(o->def->name, cfg->scores[i].name) != 0)
                continue;
            struct score_rt *r = &rt[i];
            r->whole_eval.state = o->whole_eval.state;
            r->whole_eval.pending = o->whole_eval.pending;
            r->whole_eval.pending_since_ms = o->whole_eval.pending_since_ms;
            r->whole_eval.state_since_ms = o->whole_eval.state_since_ms;
            memcpy(r->history, o->history, sizeof r->history);
            r->hist_head = o->hist_head;
            r->hist_n = o->hist_n;
            break;
        }
    for (uint32_t j = 0; j < e->cfg.n_scores; j++)
        rt_free(&e->rt[j]);
    free(e->rt);
    free(e->passes);
    free(e->entries);
    free(e->dests);
    vt_score_config_free(&e->cfg);
    e->cfg = *cfg;
    memset(cfg, 0, sizeof *cfg);
    e->rt = rt;
    e->passes = passes;
    e->entries = entries;
    e->dests = dests;
    /* The defs moved with the struct copy: re-point the runtimes. */
    for (uint32_t i = 0; i < e->cfg.n_scores; i++) {
        e->rt[i].def = &e->cfg.scores[i];
        e->rt[i].result.def = &e->cfg.scores[i];
    }
    return 0;
}

void vt_score_engine_free(struct vt_score_engine *e)
{
    if (!e)
        return;
    for (uint32_t j = 0; j < e->cfg.n_scores; j++)
        rt_free(&e->rt[j]);
    free(e->rt);
    free(e->passes);
    free(e->entries);
    free(e->dests);
    vt_score_config_free(&e->cfg);
    free(e);
}

const struct vt_score_config *vt_score_engine_config(const struct vt_score_engine *e)
{
    return &e->cfg;
}

uint32_t vt_score_engine_count(const struct vt_score_engine *e)
{
    return e->cfg.n_scores;
}

const struct vt_score_result *vt_score_engine_result(const struct vt_score_engine *e, uint32_t i)
{
    return i < e->cfg.n_scores ? &e->rt[i].result : NULL;
}

const struct vt_score_result *vt_score_engine_find(const struct vt_score_engine *e,
                                                   const char *name)
{
    for (uint32_t i = 0; i < e->cfg.n_scores; i++)
        if (strcmp(e->cfg.scores[i].name, name) == 0)
            return &e->rt[i].result;
    return NULL;
}

size_t vt_score_engine_history(const struct vt_score_engine *e, uint32_t i, int64_t from_ms,
                               int64_t to_ms, struct vt_score_point *out, size_t cap)
{
    if (i >= e->cfg.n_scores)
        return 0;
    const struct score_rt *rt = &e->rt[i];
    size_t k = 0;
    uint32_t start = (rt->hist_head + VT_SCORE_HISTORY - rt->hist_n) % VT_SCORE_HISTORY;
    for (uint32_t j = 0; j < rt->hist_n && k < cap; j++) {
        const struct vt_score_point *p = &rt->history[(start + j) % VT_SCORE_HISTORY];
        if (p->ts_ms >= from_ms && p->ts_ms < to_ms)
            out[k++] = *p;
    }
    return k;
}

/* ============================================================== visiting */

static bool match_value(const char *pattern, struct vt_str v)
{
    if (pattern == NULL)
        return true;
    if (strpbrk(pattern, "*?[") == NULL)
        return strlen(pattern) == v.len && memcmp(pattern, v.ptr, v.len) == 0;
    char buf[1024];
    if (v.len >= sizeof buf)
        return false;
    memcpy(buf, v.ptr, v.len);
    buf[v.len] = '\0';
    return fnmatch(pattern, buf, 0) == 0;
}

static bool selector_match(const struct vt_score_selector *sel, const char *key, size_t len,
                           const struct vt_str *parts)
{
    if (!match_value(sel->service, parts[0]) || !match_value(sel->model, parts[1]) ||
        !match_value(sel->provider, parts[2]) || !match_value(sel->version, parts[3]))
        return false;
    for (uint32_t i = 0; i < sel->n_labels; i++) {
        struct vt_str v;
        if (vt_series_key_label(key, len, sel->labels[i].key, &v) != 0)
            return false;
        if (!match_value(sel->labels[i].value, v))
            return false;
    }
    return true;
}

static struct seg *seg_new(struct score_rt *rt, const char *tuple, size_t len)
{
    const struct vt_score_def *d = rt->def;
    struct seg *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    vt_aggregate_init(&s->cur);
    s->labels = calloc(d->n_segment_by, sizeof *s->labels);
    s->eval.components = calloc(d->n_components, sizeof *s->eval.components);
    if (rt->n_base)
        s->base = calloc(rt->n_base, sizeof *s->base);
    if (!s->labels || !s->eval.components || (rt->n_base && !s->base))
        goto fail;
    for (uint32_t i = 0; i < rt->n_base; i++)
        vt_aggregate_init(&s->base[i]);
    if (vt_acc_init(&s->cur, &rt->cur_needs))
        goto fail;
    for (uint32_t i = 0; i < rt->n_base; i++)
        if (vt_acc_init(&s->base[i], &rt->base_needs))
            goto fail;
    const char *p = tuple;
    for (uint32_t i = 0; i < d->n_segment_by; i++) {
        size_t l = strnlen(p, (size_t)(tuple + len - p));
        s->labels[i] = strndup(p, l);
        if (!s->labels[i])
            goto fail;
        p += l + 1;
    }
    s->eval.detractor = -1;
    s->eval.labels = (const char *const *)s->labels;
    return s;
fail:
    seg_free(rt, s);
    return NULL;
}

static struct seg *seg_find(struct vt_score_engine *e, struct score_rt *rt, const char *key,
                            size_t len, const struct vt_str *parts, bool create)
{
    const struct vt_score_def *d = rt->def;
    size_t n = 0;
    for (uint32_t i = 0; i < d->n_segment_by; i++) {
        struct vt_str v = {"", 0};
        if (d->segment_by[i].part >= 0)
            v = parts[d->segment_by[i].part];
        else if (vt_series_key_label(key, len, d->segment_by[i].name, &v) != 0)
            v = (struct vt_str){"", 0};
        if (n + v.len + 1 > sizeof e->tuple)
            return NULL;
        memcpy(e->tuple + n, v.ptr, v.len);
        n += v.len;
        e->tuple[n++] = '\0';
    }
    if (!create) {
        struct vt_series_entry *en =
            vt_series_table_find(&rt->segs, e->tuple, n, vt_series_hash(e->tuple, n));
        return en ? en->value : NULL;
    }
    return seg_of_tuple(rt, e->tuple, n);
}

/* The segment of a tuple ("v1\0v2\0"), created if new; NULL when out of
 * room (counted) or memory (rt->err). */
static struct seg *seg_of_tuple(struct score_rt *rt, const char *tuple, size_t n)
{
    struct vt_series_entry *en;
    int created = 0;
    en = vt_series_table_upsert(&rt->segs, tuple, n, vt_series_hash(tuple, n), &created);
    if (!en) {
        if (errno == ENOSPC)
            rt->result.segments_dropped++;
        else
            rt->err = -ENOMEM;
        return NULL;
    }
    if (created || !en->value) {
        en->value = seg_new(rt, tuple, n);
        if (!en->value)
            rt->err = -ENOMEM;
    }
    return en->value;
}

struct visit_ctx {
    struct vt_score_engine *e;
    const struct pass *pass;
};

/* e->dests = where the data of series `key` goes in this pass. */
static void resolve(struct vt_score_engine *e, const struct pass *pass, const char *key,
                    size_t len)
{
    e->n_dests = 0;
    struct vt_str parts[4];
    for (int i = 0; i < 4; i++)
        if (vt_series_key_part(key, len, i, &parts[i]) != 0)
            return; /* not a series key */
    for (uint32_t k = 0; k < pass->n; k++) {
        const struct pass_entry *pe = &e->entries[pass->first + k];
        struct score_rt *rt = &e->rt[pe->score];
        if (!selector_match(&rt->def->selector, key, len, parts))
            continue;
        struct dest *d = &e->dests[e->n_dests++];
        d->nd = pe->slot < 0 ? &rt->cur_needs : &rt->base_needs;
        d->rt = rt;
        d->seen = NULL;
        /* Data lands in its segment only; the whole is folded from the
         * segments after the pass (fold_segments), which halves the merges
         * of a segmented score. Segments are born from current-window data;
         * baselines only feed segments that exist; whatever finds no segment
         * goes straight to the whole. */
        if (rt->def->n_segment_by) {
            struct seg *s = seg_find(e, rt, key, len, parts, pe->slot < 0);
            if (s) {
                d->acc = pe->slot < 0 ? &s->cur : &s->base[pe->slot];
                d->seen = pe->slot < 0 ? &s->seen : &s->base_seen;
                continue;
            }
        }
        d->acc = pe->slot < 0 ? &rt->whole : &rt->whole_base[pe->slot];
    }
}

/* One rollup (or a series' whole range) of one series. Sources hand a
 * series' rollups one after another, so the selectors and segments are
 * resolved once per series, not once per rollup. */
static void visit(void *arg, const char *key, size_t len, const struct vt_aggregate *agg)
{
    struct visit_ctx *v = arg;
    struct vt_score_engine *e = v->e;
    if (!e->have_last || len != e->last_len || memcmp(key, e->last_key, len) != 0) {
        if (len > sizeof e->last_key)
            return; /* longer than any series key */
        resolve(e, v->pass, key, len);
        memcpy(e->last_key, key, len);
        e->last_len = len;
        e->have_last = true;
    }
    for (uint32_t k = 0; k < e->n_dests; k++) {
        const struct dest *d = &e->dests[k];
        if (d->seen)
            *d->seen = true;
        if (vt_acc_merge(d->acc, agg, d->nd))
            d->rt->err = -ENOMEM;
    }
}

static void add_entry(struct vt_score_engine *e, int64_t from, int64_t to, uint32_t score,
                      int slot)
{
    /* Passes are grouped by range; entries of one pass are contiguous, so
     * build per pass by insertion (the lists are small: scores x ranges). */
    uint32_t p;
    for (p = 0; p < e->n_passes; p++)
        if (e->passes[p].from == from && e->passes[p].to == to)
            break;
    if (p == e->n_passes) {
        e->passes[p] = (struct pass){.from = from, .to = to, .first = e->n_entries, .n = 0};
        e->n_passes++;
    }
    uint32_t at = e->passes[p].first + e->passes[p].n;
    memmove(&e->entries[at + 1], &e->entries[at], (e->n_entries - at) * sizeof *e->entries);
    e->entries[at] = (struct pass_entry){.score = score, .slot = slot};
    e->n_entries++;
    e->passes[p].n++;
    for (uint32_t q = p + 1; q < e->n_passes; q++)
        e->passes[q].first++;
}

/* ============================================================ evaluation */

static enum vt_score_state classify(double s, double warning, double critical)
{
    if (s < critical)
        return VT_SCORE_CRITICAL;
    if (s < warning)
        return VT_SCORE_WARNING;
    return VT_SCORE_OK;
}

/* ok < warning < critical in badness; no_data handled apart. */
static void update_state(struct vt_score_eval *ev, const struct vt_score_def *d, int64_t now)
{
    if (isnan(ev->score)) {
        if (ev->state != VT_SCORE_NO_DATA)
            ev->state_since_ms = now;
        ev->state = ev->pending = VT_SCORE_NO_DATA;
        ev->pending_since_ms = 0;
        return;
    }
    if (ev->state == VT_SCORE_NO_DATA) {
        /* Nothing to protect against flapping yet: adopt the value's state. */
        ev->state = ev->pending = classify(ev->score, d->warning, d->critical);
        ev->state_since_ms = now;
        ev->pending_since_ms = 0;
        return;
    }
    enum vt_score_state target = ev->state;
    enum vt_score_state down = classify(ev->score, d->warning, d->critical);
    if (down > ev->state) {
        target = down;
    } else {
        double w = fmin(d->warning + d->hysteresis, 1.0);
        double c = fmin(d->critical + d->hysteresis, 1.0);
        enum vt_score_state up = classify(ev->score, w, c);
        if (up < ev->state)
            target = up;
    }
    if (target == ev->state) {
        ev->pending = ev->state;
        ev->pending_since_ms = 0;
        return;
    }
    bool worse = target > ev->state;
    bool was_pending = ev->pending != ev->state;
    if (!was_pending || (ev->pending > ev->state) != worse)
        ev->pending_since_ms = now;
    ev->pending = target;
    if (now - ev->pending_since_ms >= d->for_ms) {
        ev->state = target;
        ev->state_since_ms = now;
        ev->pending_since_ms = 0;
    }
}

static void fill_exemplars(struct vt_component_result *cr, const struct vt_aggregate *a)
{
    cr->n_exemplars = 0;
    const struct vt_score_component_def *c = cr->def;
    enum vt_exemplar_kind kind;
    if (is_latency(c))
        kind = VT_EXEMPLAR_SLOWEST;
    else if (c->stat == VT_STAT_ERROR_RATE)
        kind = VT_EXEMPLAR_FAILED;
    else
        return;
    uint32_t pick[VT_AGG_MAX_EXEMPLARS], n = 0;
    for (uint32_t i = 0; i < a->n_exemplars; i++)
        if (a->exemplars[i].kind == kind)
            pick[n++] = i;
    /* Slowest first, or latest failure first (insertion sort: n <= 4). */
    for (uint32_t i = 1; i < n; i++)
        for (uint32_t j = i; j > 0; j--) {
            const struct vt_exemplar_rank *x = &a->exemplars[pick[j]], *y = &a->exemplars[pick[j - 1]];
            if (kind == VT_EXEMPLAR_SLOWEST ? x->latency_ms <= y->latency_ms : x->ts_ms <= y->ts_ms)
                break;
            uint32_t t = pick[j];
            pick[j] = pick[j - 1];
            pick[j - 1] = t;
        }
    for (uint32_t i = 0; i < n; i++)
        memcpy(cr->exemplars[i], a->exemplar_ids[pick[i]], sizeof cr->exemplars[i]);
    cr->n_exemplars = n;
}

/* Statistics, normalisation and combine for one population. */
static void compute_eval(struct score_rt *rt, struct vt_score_eval *ev,
                         const struct vt_aggregate *cur, const struct vt_aggregate *base)
{
    const struct vt_score_def *d = rt->def;
    double total_w = 0, present_w = 0;
    ev->count = cur->count;
    for (uint32_t i = 0; i < d->n_components; i++) {
        struct vt_component_result *cr = &ev->components[i];
        const struct vt_score_component_def *c = &d->components[i];
        const struct vt_aggregate *b = rt->comp_base[i] >= 0 ? &base[rt->comp_base[i]] : NULL;
        cr->def = c;
        cr->value = vt_score_stat(c, cur, b, d->window_ms, &cr->count, &cr->missing);
        cr->normalized = cr->missing ? NAN : vt_score_normalize(cr->value, c->good, c->bad);
        cr->weight = 0;
        cr->contribution = 0;
        fill_exemplars(cr, cur);
        total_w += c->weight;
        if (!cr->missing)
            present_w += c->weight;
    }
    ev->coverage = total_w > 0 ? present_w / total_w : 0;
    ev->detractor = -1;
    if (present_w <= 0) {
        ev->score = NAN;
        return;
    }
    double score = d->combine == VT_COMBINE_MIN ? 1.0 : 0.0;
    double logsum = 0;
    bool zero = false;
    int argmin = -1;
    double worst = 0;
    for (uint32_t i = 0; i < d->n_components; i++) {
        struct vt_component_result *cr = &ev->components[i];
        if (cr->missing)
            continue;
        cr->weight = d->components[i].weight / present_w;
        double nv = cr->normalized;
        switch (d->combine) {
        case VT_COMBINE_WEIGHTED_MEAN:
            cr->contribution = cr->weight * nv;
            score += cr->contribution;
            break;
        case VT_COMBINE_WEIGHTED_GEOMETRIC:
            cr->contribution = pow(nv, cr->weight);
            if (nv <= 0)
                zero = true;
            else
                logsum += cr->weight * log(nv);
            break;
        case VT_COMBINE_MIN:
            if (argmin < 0 || nv < ev->components[argmin].normalized)
                argmin = (int)i;
            break;
        }
        double detract = cr->weight * (1.0 - nv);
        if (d->combine != VT_COMBINE_MIN && detract > worst) {
            worst = detract;
            ev->detractor = (int)i;
        }
    }
    if (d->combine == VT_COMBINE_WEIGHTED_GEOMETRIC)
        score = zero ? 0.0 : exp(logsum);
    if (d->combine == VT_COMBINE_MIN) {
        score = ev->components[argmin].normalized;
        ev->components[argmin].contribution = score;
        if (score < 1.0)
            ev->detractor = argmin;
    }
    if (score > 1)
        score = 1; /* float rounding of sums of weights */
    if (score < 0)
        score = 0;
    ev->score = score;
}

static int cmp_seg_eval(const void *pa, const void *pb, void *arg)
{
    const struct vt_score_eval *a = pa, *b = pb;
    uint32_t n = *(const uint32_t *)arg;
    for (uint32_t i = 0; i < n; i++) {
        int c = strcmp(a->labels[i], b->labels[i]);
        if (c)
            return c;
    }
    return 0;
}

/* whole += every segment (see visit()). */
static int fold_segments(struct score_rt *rt)
{
    int rc = 0;
    uint32_t it = 0;
    struct vt_series_entry *en;
    while ((en = vt_series_table_next(&rt->segs, &it)) != NULL) {
        struct seg *s = en->value;
        if (!s)
            continue;
        if (s->seen)
            rc |= vt_acc_merge(&rt->whole, &s->cur, &rt->cur_needs);
        if (s->base_seen)
            for (uint32_t b = 0; b < rt->n_base; b++)
                rc |= vt_acc_merge(&rt->whole_base[b], &s->base[b], &rt->base_needs);
    }
    return rc ? -ENOMEM : 0;
}

static int finish_score(struct score_rt *rt, const char *version, int64_t now)
{
    const struct vt_score_def *d = rt->def;
    struct vt_score_result *r = &rt->result;
    if (d->n_segment_by && fold_segments(rt))
        return -ENOMEM;
    compute_eval(rt, &rt->whole_eval, &rt->whole, rt->whole_base);
    update_state(&rt->whole_eval, d, now);

    uint32_t n = 0;
    if (d->n_segment_by) {
        if (rt->segs.size > rt->cap_seg_evals) {
            struct vt_score_eval *a = realloc(rt->seg_evals, rt->segs.size * sizeof *a);
            if (!a)
                return -ENOMEM;
            rt->seg_evals = a;
            rt->cap_seg_evals = rt->segs.size;
        }
        uint32_t it = 0;
        struct vt_series_entry *en;
        while ((en = vt_series_table_next(&rt->segs, &it)) != NULL) {
            struct seg *s = en->value;
            if (!s)
                continue;
            if (!s->seen) {
                /* No traffic: the segment's state resets; it is not listed. */
                s->eval.state = s->eval.pending = VT_SCORE_NO_DATA;
                s->eval.pending_since_ms = 0;
                continue;
            }
            compute_eval(rt, &s->eval, &s->cur, s->base);
            update_state(&s->eval, d, now);
            const struct vt_score_eval *w = &rt->whole_eval;
            s->eval.share = w->count ? (double)s->eval.count / (double)w->count : 0;
            s->eval.masked = !isnan(s->eval.score) && !isnan(w->score) &&
                             s->eval.share >= d->masked_min_share &&
                             s->eval.score <= w->score - d->masked_gap + 1e-12;
            rt->seg_evals[n++] = s->eval;
        }
        uint32_t dims = d->n_segment_by;
        if (n > 1)
            qsort_r(rt->seg_evals, n, sizeof *rt->seg_evals, cmp_seg_eval, &dims);
    }
    r->def = d;
    r->config_version = version;
    r->evaluated_at_ms = now;
    r->whole = rt->whole_eval;
    r->segments = rt->seg_evals;
    r->n_segments = n;

    struct vt_score_point *p = &rt->history[rt->hist_head];
    *p = (struct vt_score_point){.ts_ms = now, .score = rt->whole_eval.score,
                                 .state = rt->whole_eval.state,
                                 .coverage = rt->whole_eval.coverage,
                                 .count = rt->whole_eval.count};
    rt->hist_head = (rt->hist_head + 1) % VT_SCORE_HISTORY;
    if (rt->hist_n < VT_SCORE_HISTORY)
        rt->hist_n++;
    return 0;
}

int vt_score_engine_evaluate(struct vt_score_engine *e, const struct vt_score_source *src,
                             int64_t now_ms)
{
    /* 1. reset */
    e->n_passes = e->n_entries = 0;
    for (uint32_t i = 0; i < e->cfg.n_scores; i++) {
        struct score_rt *rt = &e->rt[i];
        rt->err = 0;
        rt->result.segments_dropped = 0;
        vt_acc_reset(&rt->whole, &rt->cur_needs);
        for (uint32_t s = 0; s < rt->n_base; s++)
            vt_acc_reset(&rt->whole_base[s], &rt->base_needs);
        if (rt->def->n_segment_by) {
            uint32_t it = 0;
            struct vt_series_entry *en;
            while ((en = vt_series_table_next(&rt->segs, &it)) != NULL) {
                struct seg *sg = en->value;
                if (!sg)
                    continue;
                sg->seen = sg->base_seen = false;
                vt_acc_reset(&sg->cur, &rt->cur_needs);
                for (uint32_t s = 0; s < rt->n_base; s++)
                    vt_acc_reset(&sg->base[s], &rt->base_needs);
            }
        }
        /* 2. ranges: current window first, so segments exist before their
         * baselines are read. Followers read nothing (see share). */
        if (rt->leader < 0)
            add_entry(e, now_ms - rt->def->window_ms, now_ms, i, -1);
    }
    for (uint32_t i = 0; i < e->cfg.n_scores; i++) {
        struct score_rt *rt = &e->rt[i];
        for (uint32_t s = 0; s < rt->n_base; s++) {
            int64_t to = now_ms - rt->base[s].delay_ms;
            add_entry(e, to - rt->base[s].window_ms, to, i, (int)s);
        }
    }
    /* A baseline range equal to a current range shares its pass; there the
     * current entry comes first (it was added first). */

    /* 3. read */
    for (uint32_t p = 0; p < e->n_passes; p++) {
        const struct pass *ps = &e->passes[p];
        struct visit_ctx v = {.e = e, .pass = ps};
        struct vt_agg_reads reads = {0};
        for (uint32_t k = ps->first; k < ps->first + ps->n; k++) {
            const struct score_rt *rt = &e->rt[e->entries[k].score];
            vt_acc_reads_add(&reads, e->entries[k].slot < 0 ? &rt->cur_needs : &rt->base_needs);
        }
        e->have_last = false;
        int rc = src->each(src->ctx, ps->from, ps->to, &reads, visit, &v);
        if (rc < 0)
            return rc;
    }
    for (uint32_t i = 0; i < e->cfg.n_scores; i++)
        if (e->rt[i].leader >= 0)
            share(&e->rt[i], &e->rt[e->rt[i].leader]);
    /* 4. score */
    for (uint32_t i = 0; i < e->cfg.n_scores; i++) {
        if (e->rt[i].err)
            return e->rt[i].err;
        int rc = finish_score(&e->rt[i], e->cfg.version, now_ms);
        if (rc)
            return rc;
    }
    return 0;
}
