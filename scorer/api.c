/*
 * api.c - routes of the scorer's HTTP API and the score gauges (see api.h).
 */
#include "api.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "log.h"
#include "series.h"

#define MAX_HISTORY_POINTS 10000

static void respond_json_obj(vt_http_request *req, int status, json_t *obj)
{
    char *s = obj ? json_dumps(obj, JSON_COMPACT | JSON_ENSURE_ASCII) : NULL;
    json_decref(obj);
    if (!s) {
        vt_http_respond_error(req, 500, "out of memory");
        return;
    }
    vt_http_respond_json(req, status, s);
    free(s);
}

/* Percent-decode a path segment into out; returns -1 if it does not fit or
 * holds a bad escape or a NUL. */
static int path_decode(const char *s, size_t n, char *out, size_t cap)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        int ch = (unsigned char)s[i];
        if (ch == '%') {
            unsigned v;
            char hex[3] = {0};
            if (i + 2 >= n)
                return -1;
            memcpy(hex, s + i + 1, 2);
            if (sscanf(hex, "%2x", &v) != 1 || v == 0)
                return -1;
            ch = (int)v;
            i += 2;
        }
        if (o + 1 >= cap)
            return -1;
        out[o++] = (char)ch;
    }
    out[o] = 0;
    return 0;
}

/* A score not evaluated yet (just started or reloaded) has no component
 * results: render a placeholder with the same top-level fields. */
static json_t *result_json(const struct vt_score_result *r, unsigned flags)
{
    if (r->evaluated_at_ms)
        return vt_score_result_to_json(r, flags);
    json_t *o = json_object();
    json_object_set_new(o, "name", json_string(r->def->name));
    json_object_set_new(o, "mode", json_string(vt_score_mode_name(r->def->mode)));
    json_object_set_new(o, "evaluated_at", json_integer(0));
    json_object_set_new(o, "config_version", json_string(r->config_version ? r->config_version : ""));
    json_object_set_new(o, "score", json_null());
    json_object_set_new(o, "state", json_string(vt_score_state_name(VT_SCORE_NO_DATA)));
    json_object_set_new(o, "coverage", json_real(0));
    json_object_set_new(o, "count", json_integer(0));
    json_object_set_new(o, "components", json_array());
    if (flags & VT_SCORE_JSON_SEGMENTS)
        json_object_set_new(o, "segments", json_array());
    return o;
}

static json_t *scores_json(const struct vt_api *api, unsigned flags)
{
    json_t *arr = json_array();
    if (!api->engine)
        return arr;
    uint32_t n = vt_score_engine_count(api->engine);
    for (uint32_t i = 0; i < n; i++) {
        const struct vt_score_result *r = vt_score_engine_result(api->engine, i);
        json_t *j = r ? result_json(r, flags) : NULL;
        if (j)
            json_array_append_new(arr, j);
    }
    return arr;
}

static const char *config_version(const struct vt_api *api)
{
    return api->engine ? vt_score_engine_config(api->engine)->version : "";
}

static void get_scores(struct vt_api *api, vt_http_request *req)
{
    json_t *o = json_object();
    json_object_set_new(o, "config_version", json_string(config_version(api)));
    json_object_set_new(o, "scores", scores_json(api, VT_SCORE_JSON_SEGMENTS));
    respond_json_obj(req, 200, o);
}

static int64_t param_i64(const char *query, const char *name, int64_t def, int *bad)
{
    char buf[64];
    int n = vt_http_query_param(query, name, buf, sizeof buf);
    if (n == -ENOENT || n == 0)
        return def;
    if (n < 0) {
        *bad = 1;
        return def;
    }
    char *end;
    int64_t v = 0;
    /* epoch ms, or a duration relative to now ("-1h") is not supported: keep it simple */
    errno = 0;
    v = strtoll(buf, &end, 10);
    if (errno || *end) {
        int64_t ms;
        if (!vt_parse_duration_ms(buf, &ms) && ms >= 0)
            return ms; /* "step=1m" */
        *bad = 1;
        return def;
    }
    return v;
}

static void get_history(struct vt_api *api, vt_http_request *req, uint32_t idx,
                        const struct vt_score_result *r)
{
    int bad = 0;
    const char *q = vt_http_request_query(req);
    int64_t now = r->evaluated_at_ms ? r->evaluated_at_ms + 1 : 0;
    int64_t to = param_i64(q, "to", INT64_MAX, &bad);
    int64_t from = param_i64(q, "from", 0, &bad);
    int64_t step = param_i64(q, "step", 0, &bad);
    (void)now;
    if (bad || from > to || step < 0) {
        vt_http_respond_error(req, 400, "from, to: epoch milliseconds with from <= to; step: "
                                        "milliseconds or a duration like 1m");
        return;
    }
    struct vt_score_point *pts = calloc(VT_SCORE_HISTORY, sizeof *pts);
    if (!pts) {
        vt_http_respond_error(req, 500, "out of memory");
        return;
    }
    size_t n = vt_score_engine_history(api->engine, idx, from, to, pts, VT_SCORE_HISTORY);
    json_t *arr = json_array();
    int64_t last_bucket = INT64_MIN;
    for (size_t i = 0; i < n; i++) {
        /* with a step, keep the latest point of each step-aligned bucket */
        if (step > 0) {
            int64_t b = pts[i].ts_ms - (pts[i].ts_ms % step);
            if (i + 1 < n && pts[i + 1].ts_ms - (pts[i + 1].ts_ms % step) == b)
                continue;
            if (b == last_bucket)
                continue;
            last_bucket = b;
        }
        json_t *p = json_object();
        json_object_set_new(p, "ts", json_integer(pts[i].ts_ms));
        json_object_set_new(p, "score", isnan(pts[i].score) ? json_null() : json_real(pts[i].score));
        json_object_set_new(p, "state", json_string(vt_score_state_name(pts[i].state)));
        json_object_set_new(p, "coverage", json_real(isnan(pts[i].coverage) ? 0 : pts[i].coverage));
        json_object_set_new(p, "count", json_integer((json_int_t)pts[i].count));
        json_array_append_new(arr, p);
    }
    free(pts);
    json_t *o = json_object();
    json_object_set_new(o, "name", json_string(r->def->name));
    json_object_set_new(o, "config_version", json_string(config_version(api)));
    json_object_set_new(o, "step", json_integer(step));
    json_object_set_new(o, "points", arr);
    respond_json_obj(req, 200, o);
}

static void get_score(struct vt_api *api, vt_http_request *req, const char *rest)
{
    char name[VT_SCORE_MAX_NAME * 3 + 1];
    const char *slash = strchr(rest, '/');
    size_t n = slash ? (size_t)(slash - rest) : strlen(rest);
    if (path_decode(rest, n, name, sizeof name)) {
        vt_http_respond_error(req, 404, "no such score");
        return;
    }
    const struct vt_score_result *r = NULL;
    uint32_t idx = 0;
    if (api->engine) {
        uint32_t cnt = vt_score_engine_count(api->engine);
        for (idx = 0; idx < cnt; idx++) {
            r = vt_score_engine_result(api->engine, idx);
            if (r && strcmp(r->def->name, name) == 0)
                break;
            r = NULL;
        }
    }
    if (!r) {
        vt_http_respond_error(req, 404, "no such score");
        return;
    }
    if (slash && strcmp(slash, "/history") == 0) {
        get_history(api, req, idx, r);
        return;
    }
    if (slash) {
        vt_http_respond_error(req, 404, "not found");
        return;
    }
    respond_json_obj(req, 200, result_json(r, VT_SCORE_JSON_SEGMENTS));
}

static json_t *jstr(struct vt_str s)
{
    return json_stringn(s.ptr, s.len);
}

static int series_cb(void *ud, const char *key, size_t len, uint64_t records, int64_t last_ms)
{
    json_t *arr = ud;
    json_t *o = json_object();
    static const char *const parts[] = {"service", "model", "provider", "version"};
    for (int p = 0; p < 4; p++) {
        struct vt_str s;
        if (vt_series_key_part(key, len, p, &s) == 0)
            json_object_set_new(o, parts[p], jstr(s));
    }
    json_t *labels = json_object();
    size_t pos = 0;
    struct vt_str k, v;
    while (vt_series_key_next_label(key, len, &pos, &k, &v) == 1) {
        char kb[1024];
        snprintf(kb, sizeof kb, "%.*s", (int)k.len, k.ptr);
        json_object_set_new(labels, kb, jstr(v));
    }
    json_object_set_new(o, "labels", labels);
    json_object_set_new(o, "records", json_integer((json_int_t)records));
    json_object_set_new(o, "last_ms", json_integer(last_ms));
    json_array_append_new(arr, o);
    return 0;
}

static void get_series(struct vt_api *api, vt_http_request *req)
{
    json_t *arr = json_array();
    vt_store_each_series(api->store, series_cb, arr);
    struct vt_store_stats st;
    vt_store_stats_get(api->store, &st);
    json_t *o = json_object();
    json_object_set_new(o, "count", json_integer((json_int_t)json_array_size(arr)));
    json_object_set_new(o, "records", json_integer((json_int_t)st.records));
    json_object_set_new(o, "series", arr);
    respond_json_obj(req, 200, o);
}

static void get_metrics(struct vt_api *api, vt_http_request *req)
{
    struct vt_metrics_buf buf = {0};
    if (vt_metrics_render(api->reg, &buf)) {
        free(buf.data);
        vt_http_respond_error(req, 500, "out of memory");
        return;
    }
    vt_http_respond(req, 200, VT_METRICS_CONTENT_TYPE, buf.data, buf.len);
    free(buf.data);
}

static void on_request(vt_http_request *req, void *data)
{
    struct vt_api *api = data;
    vt_counter_inc(api->http_requests);
    const char *m = vt_http_request_method(req);
    const char *path = vt_http_request_path(req);
    if (strcmp(m, "GET") != 0 && strcmp(m, "HEAD") != 0) {
        vt_http_add_header(req, "Allow", "GET, HEAD");
        vt_http_respond_error(req, 405, "method not allowed");
        return;
    }
    if (strcmp(path, "/healthz") == 0) {
        vt_http_respond(req, 200, "text/plain", "ok\n", 3);
    } else if (strcmp(path, "/readyz") == 0) {
        if (api->coll && vt_collector_ready(api->coll))
            vt_http_respond(req, 200, "text/plain", "ready\n", 6);
        else
            vt_http_respond(req, 503, "text/plain", "not ready\n", 10);
    } else if (strcmp(path, "/metrics") == 0) {
        get_metrics(api, req);
    } else if (strcmp(path, "/v1/scores") == 0 || strcmp(path, "/v1/scores/") == 0) {
        get_scores(api, req);
    } else if (strncmp(path, "/v1/scores/", 11) == 0) {
        get_score(api, req, path + 11);
    } else if (strcmp(path, "/v1/series") == 0) {
        get_series(api, req);
    } else {
        vt_http_respond_error(req, 404, "not found");
    }
}

/* ---- metrics ------------------------------------------------------------------ */

int vt_api_init(struct vt_api *api, uv_loop_t *loop, vt_store *store, vt_metrics *reg)
{
    memset(api, 0, sizeof *api);
    api->store = store;
    api->reg = reg;
    const char *lbl = "score,segment,mode";
    const char *clbl = "score,segment,component,mode";
    api->f_score = vt_metrics_gauge_family(reg, "vitals_score",
                                           "Weighted health score in [0, 1] (segment=\"\" is the whole).",
                                           lbl);
    api->f_state = vt_metrics_gauge_family(
        reg, "vitals_score_state", "Score state: 0 no_data, 1 ok, 2 warning, 3 critical.", lbl);
    api->f_coverage = vt_metrics_gauge_family(
        reg, "vitals_score_coverage", "Share of component weight with enough data, [0, 1].", lbl);
    api->f_count = vt_metrics_gauge_family(reg, "vitals_score_records",
                                           "Records in the score's window.", lbl);
    api->f_masked = vt_metrics_gauge_family(
        reg, "vitals_score_segment_masked",
        "1 when a segment is much worse than the whole (a degradation the aggregate masks).", lbl);
    api->f_comp_score = vt_metrics_gauge_family(reg, "vitals_component_score",
                                                "Normalized component score in [0, 1].", clbl);
    api->f_comp_value = vt_metrics_gauge_family(reg, "vitals_component_value",
                                                "Raw statistic of a component.", clbl);
    api->f_config = vt_metrics_gauge_family(reg, "vitals_scorer_config_info",
                                            "The score file version in use (value 1).", "version");
    api->http_requests = vt_metrics_counter(reg, "vitals_scorer_http_requests_total",
                                            "HTTP API requests.");
    if (!api->f_score || !api->f_state || !api->f_coverage || !api->f_count || !api->f_masked ||
        !api->f_comp_score || !api->f_comp_value || !api->f_config || !api->http_requests)
        return -EINVAL;
    struct vt_http_server_options o = {.handler = on_request, .data = api};
    return vt_http_server_init(loop, &api->http, &o);
}

int vt_api_listen(struct vt_api *api, const char *addr)
{
    return vt_http_server_listen(&api->http, addr);
}

static void segment_name(const struct vt_score_result *r, const struct vt_score_eval *e, char *buf,
                         size_t cap)
{
    size_t o = 0;
    buf[0] = 0;
    for (uint32_t i = 0; i < r->def->n_segment_by && o < cap; i++)
        o += (size_t)snprintf(buf + o, cap - o, "%s%s=%s", i ? "," : "",
                              r->def->segment_by[i].name, e->labels[i]);
}

static void publish_eval(struct vt_api *api, const struct vt_score_result *r,
                         const struct vt_score_eval *e, const char *seg)
{
    const char *mode = vt_score_mode_name(r->def->mode);
    const char *v[] = {r->def->name, seg, mode};
    vt_gauge *g;
    if (!isnan(e->score) && (g = vt_metrics_gauge_getv(api->f_score, v)))
        vt_gauge_set(g, e->score);
    if ((g = vt_metrics_gauge_getv(api->f_state, v)))
        vt_gauge_set(g, (double)e->state);
    if ((g = vt_metrics_gauge_getv(api->f_coverage, v)))
        vt_gauge_set(g, isnan(e->coverage) ? 0 : e->coverage);
    if ((g = vt_metrics_gauge_getv(api->f_count, v)))
        vt_gauge_set(g, (double)e->count);
    if (*seg && (g = vt_metrics_gauge_getv(api->f_masked, v)))
        vt_gauge_set(g, e->masked ? 1 : 0);
    for (uint32_t c = 0; e->components && c < r->def->n_components; c++) {
        const struct vt_component_result *cr = &e->components[c];
        const char *cv[] = {r->def->name, seg, r->def->components[c].name, mode};
        if (!isnan(cr->normalized) && (g = vt_metrics_gauge_getv(api->f_comp_score, cv)))
            vt_gauge_set(g, cr->normalized);
        if (!isnan(cr->value) && isfinite(cr->value) &&
            (g = vt_metrics_gauge_getv(api->f_comp_value, cv)))
            vt_gauge_set(g, cr->value);
    }
}

void vt_api_publish(struct vt_api *api)
{
    vt_metrics_family_clear(api->f_score);
    vt_metrics_family_clear(api->f_state);
    vt_metrics_family_clear(api->f_coverage);
    vt_metrics_family_clear(api->f_count);
    vt_metrics_family_clear(api->f_masked);
    vt_metrics_family_clear(api->f_comp_score);
    vt_metrics_family_clear(api->f_comp_value);
    vt_metrics_family_clear(api->f_config);
    if (!api->engine)
        return;
    vt_gauge *g = vt_metrics_gauge_get(api->f_config, config_version(api));
    if (g)
        vt_gauge_set(g, 1);
    uint32_t n = vt_score_engine_count(api->engine);
    char seg[1024];
    for (uint32_t i = 0; i < n; i++) {
        const struct vt_score_result *r = vt_score_engine_result(api->engine, i);
        if (!r || !r->evaluated_at_ms)
            continue;
        publish_eval(api, r, &r->whole, "");
        for (uint32_t s = 0; s < r->n_segments; s++) {
            segment_name(r, &r->segments[s], seg, sizeof seg);
            publish_eval(api, r, &r->segments[s], seg);
        }
    }
}

void vt_api_close(struct vt_api *api, vt_http_close_cb cb)
{
    vt_http_server_close(&api->http, cb);
}
