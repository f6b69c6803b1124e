/*
 * score_json.c - a score result as the JSON of the API (DESIGN §7): for the
 * whole and each segment score, state, coverage, count, config_version and
 * the components with their raw and normalized values, weight and
 * contribution. Split from score.c, which computes the results; this file
 * only renders them (declared in score.h).
 */
#include "score.h"

#include <jansson.h>
#include <math.h>
#include <string.h>

static json_t *num(double v)
{
    return isfinite(v) ? json_real(v) : json_null();
}

static int put(json_t *o, const char *k, json_t *v)
{
    return v ? json_object_set_new(o, k, v) : -1;
}

static json_t *eval_json(const struct vt_score_result *r, const struct vt_score_eval *ev,
                         bool segment)
{
    const struct vt_score_def *d = r->def;
    json_t *o = json_object();
    if (!o)
        return NULL;
    int rc = 0;
    if (segment) {
        json_t *labels = json_object();
        rc |= put(o, "labels", labels);
        for (uint32_t i = 0; labels && i < d->n_segment_by; i++)
            rc |= put(labels, d->segment_by[i].name, json_string(ev->labels[i]));
    }
    rc |= put(o, "score", num(ev->score));
    rc |= put(o, "state", json_string(vt_score_state_name(ev->state)));
    if (ev->pending != ev->state) {
        rc |= put(o, "pending_state", json_string(vt_score_state_name(ev->pending)));
        rc |= put(o, "pending_since", json_integer(ev->pending_since_ms));
    }
    rc |= put(o, "state_since", json_integer(ev->state_since_ms));
    rc |= put(o, "coverage", num(ev->coverage));
    rc |= put(o, "count", json_integer((json_int_t)ev->count));
    rc |= put(o, "config_version", json_string(r->config_version ? r->config_version : ""));
    json_t *comps = json_array();
    rc |= put(o, "components", comps);
    for (uint32_t i = 0; comps && i < d->n_components; i++) {
        const struct vt_component_result *cr = &ev->components[i];
        const struct vt_score_component_def *c = &d->components[i];
        json_t *j = json_object();
        if (!j || json_array_append_new(comps, j)) {
            rc = -1;
            break;
        }
        rc |= put(j, "name", json_string(c->name));
        rc |= put(j, "stat", json_string(c->stat_text));
        rc |= put(j, "metric", c->metric ? json_string(c->metric) : json_null());
        if (c->field)
            rc |= put(j, "field", json_string(c->field));
        rc |= put(j, "value", num(cr->value));
        rc |= put(j, "normalized", num(cr->normalized));
        rc |= put(j, "weight", num(cr->weight));
        rc |= put(j, "contribution", num(cr->contribution));
        rc |= put(j, "count", json_integer((json_int_t)cr->count));
        rc |= put(j, "missing", json_boolean(cr->missing != VT_MISSING_NONE));
        if (cr->missing)
            rc |= put(j, "missing_reason", json_string(vt_missing_name(cr->missing)));
        if (cr->n_exemplars) {
            json_t *x = json_array();
            rc |= put(j, "exemplars", x);
            for (uint32_t k = 0; x && k < cr->n_exemplars; k++)
                rc |= json_array_append_new(x, json_string(cr->exemplars[k]));
        }
    }
    rc |= put(o, "detractor",
              ev->detractor >= 0 ? json_string(d->components[ev->detractor].name) : json_null());
    if (segment) {
        rc |= put(o, "share", num(ev->share));
        rc |= put(o, "masked", json_boolean(ev->masked));
    }
    if (rc) {
        json_decref(o);
        return NULL;
    }
    return o;
}

json_t *vt_score_result_to_json(const struct vt_score_result *r, unsigned flags)
{
    const struct vt_score_def *d = r->def;
    json_t *o = eval_json(r, &r->whole, false);
    if (!o)
        return NULL;
    /* name first for readability: jansson keeps insertion order. */
    json_t *h = json_object();
    int rc = h ? 0 : -1;
    if (h) {
        rc |= put(h, "name", json_string(d->name));
        if (d->description)
            rc |= put(h, "description", json_string(d->description));
        rc |= put(h, "mode", json_string(vt_score_mode_name(d->mode)));
        rc |= put(h, "alerting", json_boolean(d->mode == VT_SCORE_MODE_LIVE));
        rc |= put(h, "window", json_string(d->window_text));
        rc |= put(h, "combine", json_string(vt_combine_name(d->combine)));
        rc |= put(h, "evaluated_at", json_integer(r->evaluated_at_ms));
        json_t *t = json_object();
        rc |= put(h, "thresholds", t);
        if (t) {
            rc |= put(t, "warning", json_real(d->warning));
            rc |= put(t, "critical", json_real(d->critical));
        }
        rc |= json_object_update(h, o);
    }
    json_decref(o);
    if (rc) {
        json_decref(h);
        return NULL;
    }
    o = h;
    if (flags & VT_SCORE_JSON_SEGMENTS) {
        json_t *sb = json_array();
        rc |= put(o, "segment_by", sb);
        for (uint32_t i = 0; sb && i < d->n_segment_by; i++)
            rc |= json_array_append_new(sb, json_string(d->segment_by[i].name));
        json_t *segs = json_array();
        rc |= put(o, "segments", segs);
        for (uint32_t i = 0; segs && i < r->n_segments; i++) {
            json_t *s = eval_json(r, &r->segments[i], true);
            rc |= s ? json_array_append_new(segs, s) : -1;
        }
        if (r->segments_dropped)
            rc |= put(o, "segments_dropped", json_integer((json_int_t)r->segments_dropped));
    }
    if (rc) {
        json_decref(o);
        return NULL;
    }
    return o;
}
