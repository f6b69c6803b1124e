/*
 * admin.c - the agent's own HTTP port: /healthz (the process answers),
 * /readyz (it is doing its job: spool writable and under its bound, shipper
 * keeping up) and /metrics (Prometheus text). A pod whose shipper is stuck
 * fails /readyz and shows why in /metrics, instead of looking healthy.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent.h"
#include "log.h"

struct admin {
    vt_http_server http;
    bool open;
};

/* Empty string when ready, else the reason. */
static void readiness(struct agent *ag, char *why, size_t cap)
{
    vt_seglog_stats st;
    why[0] = 0;
    if (ag->stopping) {
        snprintf(why, cap, "shutting down");
        return;
    }
    spool_stats(ag, &st);
    if (ag->cfg.spool_max_bytes && st.bytes >= (uint64_t)ag->cfg.spool_max_bytes * 95 / 100)
        snprintf(why, cap, "spool at %llu of %lld bytes", (unsigned long long)st.bytes,
                 (long long)ag->cfg.spool_max_bytes);
    else if (vt_counter_value(ag->m.spool_write_errors) && spool_pending_bytes(ag) >
                                                              (uint64_t)ag->cfg.frame_bytes * 4)
        snprintf(why, cap, "spool writes failing");
    else if (shipper_lag_s(ag) * 1000 > (double)ag->cfg.ready_max_lag_ms)
        snprintf(why, cap, "shipper behind: oldest unshipped record is %.0f s old",
                 shipper_lag_s(ag));
}

static void handle(vt_http_request *req, void *data)
{
    struct agent *ag = data;
    const char *path = vt_http_request_path(req);
    if (strcmp(path, "/healthz") == 0) {
        vt_http_respond(req, 200, "text/plain", "ok\n", 3);
    } else if (strcmp(path, "/readyz") == 0) {
        char why[256], body[300];
        readiness(ag, why, sizeof why);
        int n = snprintf(body, sizeof body, "%s\n", why[0] ? why : "ready");
        vt_http_respond(req, why[0] ? 503 : 200, "text/plain", body, (size_t)n);
    } else if (strcmp(path, "/metrics") == 0) {
        struct vt_metrics_buf buf = {0};
        if (vt_metrics_render(ag->metrics, &buf) == 0)
            vt_http_respond(req, 200, VT_METRICS_CONTENT_TYPE, buf.data, buf.len);
        else
            vt_http_respond_error(req, 500, "out of memory");
        free(buf.data);
    } else {
        vt_http_respond_error(req, 404, "not found: try /healthz, /readyz or /metrics");
    }
}

int admin_start(struct agent *ag)
{
    struct admin *a = calloc(1, sizeof *a);
    if (!a)
        return -1;
    ag->admin = a;
    struct vt_http_server_options o = {.handler = handle, .data = ag, .max_connections = 64};
    int rc = vt_http_server_init(ag->loop, &a->http, &o);
    if (rc == 0)
        rc = vt_http_server_listen(&a->http, ag->cfg.admin_addr);
    a->open = true;
    if (rc) {
        vt_error("admin: cannot listen on %s: %s", ag->cfg.admin_addr, uv_strerror(rc));
        return rc;
    }
    vt_info("admin: http://%s/metrics", ag->cfg.admin_addr);
    return 0;
}

static void on_closed(vt_http_server *s)
{
    (void)s;
}

void admin_stop(struct agent *ag)
{
    if (ag->admin && ag->admin->open) {
        ag->admin->open = false;
        vt_http_server_close(&ag->admin->http, on_closed);
    }
}

void admin_free(struct agent *ag)
{
    free(ag->admin);
    ag->admin = NULL;
}
