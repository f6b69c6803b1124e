/*
 * api.h - the scorer's HTTP/1.1 face: the /v1 JSON API, /healthz, /readyz
 * and /metrics (score gauges republished after every evaluation).
 *
 * Why it exists: everything a person, a dashboard, vitalsctl or Prometheus
 * reads from the scorer goes through here, so the JSON shapes of
 * docs/api.md and the metric names live in one file. It reads the score
 * engine's latest results and the store; it never evaluates or mutates.
 *
 * Routes (GET/HEAD only; others 405):
 *   /v1/scores                   every score, whole + segments summary
 *   /v1/scores/{name}            one score with components and segments
 *   /v1/scores/{name}/history    ?from=&to= (epoch ms or RFC 3339-less: ms only) &step=
 *   /v1/series                   series keys with record counts
 *   /healthz  /readyz  /metrics
 *
 * Lifecycle: caller-owned struct; init -> listen -> publish (after each
 * evaluation) -> close(cb). All on the loop thread.
 */
#ifndef VT_SCORER_API_H
#define VT_SCORER_API_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "collector.h"
#include "http_server.h"
#include "metrics.h"
#include "score.h"
#include "store.h"

struct vt_api {
    vt_http_server http;
    vt_store *store;
    vt_collector *coll;              /* may be NULL until open (then not ready) */
    struct vt_score_engine *engine;  /* may be NULL (no score file) */
    vt_metrics *reg;
    bool replay_done;
    /* score gauges, cleared and refilled by vt_api_publish */
    vt_metric_family *f_score, *f_state, *f_comp_score, *f_comp_value, *f_coverage, *f_count,
        *f_masked, *f_config;
    vt_counter *http_requests;
};

/* Register the metric families in reg and prepare the HTTP server.
 * Returns 0 or a negative errno. */
int vt_api_init(struct vt_api *api, uv_loop_t *loop, vt_store *store, vt_metrics *reg);

/* Listen on "host:port". Returns 0 or a negative UV_* code. */
int vt_api_listen(struct vt_api *api, const char *addr);

/* Refresh the vitals_score* gauges from the engine's latest results. */
void vt_api_publish(struct vt_api *api);

/* Close the HTTP server; cb runs when its handles are closed. */
void vt_api_close(struct vt_api *api, vt_http_close_cb cb);

#endif
