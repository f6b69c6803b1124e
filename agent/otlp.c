/*
 * otlp.c - the agent's OTLP trace listeners: OTLP/gRPC
 * (TraceService/Export, --otlp-grpc-addr) and OTLP/HTTP (POST /v1/traces,
 * --otlp-http-addr; protobuf or JSON, identity or gzip). An application that
 * already exports OpenTelemetry spans points its exporter here and needs no
 * code change.
 *
 * lib/otlp.c does the mapping; this file owns the transports and the promise
 * made to the client: a success response is sent only once every record
 * accepted from the request is in the spool (spool_wait), so "OK" means the
 * spans will reach the scorer. Records travel exactly as socket records do
 * (ingest_record / ingest_reject): same spool lines, same aggregates.
 *
 * Answers, following the OTLP spec: full success = empty response; spans that
 * fail validation = OK with partial_success {rejected_spans, error_message}
 * (not retried); a malformed request = INVALID_ARGUMENT / 400; over
 * --otlp-max-request-bytes = RESOURCE_EXHAUSTED / 413; the spool backed up =
 * UNAVAILABLE / 503 with Retry-After (retried by the exporter, never blocking
 * the application).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <zlib.h>

#include "agent.h"
#include "log.h"
#include "otlp.h"

enum { T_GRPC = 0, T_HTTP = 1 };

/* The default ports may be held by a collector already running on the host
 * (or by another agent in a test run): then OTLP stays off with a warning, the
 * sockets still serve. An address the operator set explicitly must bind. */
#define DEFAULT_GRPC_ADDR "127.0.0.1:4317"
#define DEFAULT_HTTP_ADDR "127.0.0.1:4318"
static const char *const transport_name[2] = {"grpc", "http"};

struct otlp {
    struct agent *ag;
    struct vt_otlp_decoder *dec;
    vt_grpc_server_t *grpc;
    vt_http_server http;
    bool http_inited, http_closing, stopped;
    int transport; /* of the request being decoded */
    vt_counter *requests[2], *failed[2], *spans[2];
    vt_counter *accepted, *rejected, *ignored;
};

/* A response waiting for the spool. */
struct pending {
    struct otlp *o;
    vt_grpc_call_t *call;     /* gRPC, or */
    vt_http_request *req;     /* HTTP */
    bool json;
    size_t len;
    uint8_t body[];           /* the success response */
};

static int sink(void *data, struct vt_record *rec, enum vt_record_reject reason)
{
    struct agent *ag = data;
    if (reason != VT_REJECT_NONE) {
        vt_counter_inc(ag->m.received);
        ingest_reject(ag, reason, rec);
        return 0;
    }
    return ingest_record(ag, rec);
}

static void count(struct otlp *o, const struct vt_otlp_result *res)
{
    vt_counter_add(o->spans[o->transport], res->spans);
    vt_counter_add(o->accepted, res->accepted);
    vt_counter_add(o->rejected, res->rejected);
    vt_counter_add(o->ignored, res->ignored);
}

/* Not now: the spool is backed up or we are shutting down. */
static const char *busy(struct otlp *o)
{
    struct agent *ag = o->ag;
    if (ag->stopping)
        return "agent shutting down";
    if (spool_pending_bytes(ag) > (uint64_t)ag->cfg.max_pending_bytes)
        return "spool backed up; retry later";
    return NULL;
}

/* --- HTTP helpers -------------------------------------------------------- */

static void http_error(vt_http_request *req, int status, int grpc_code, bool json,
                       const char *msg)
{
    char buf[600];
    int n = json ? vt_otlp_status_json(grpc_code, msg, buf, sizeof buf)
                 : vt_otlp_status_proto(grpc_code, msg, (uint8_t *)buf, sizeof buf);
    if (status == 503 || status == 429)
        vt_http_add_header(req, "Retry-After", "1");
    if (n < 0)
        n = 0;
    vt_http_respond(req, status, json ? "application/json" : "application/x-protobuf", buf,
                    (size_t)n);
}

static void on_durable(void *data, int status)
{
    struct pending *p = data;
    struct otlp *o = p->o;
    if (p->call) {
        if (status == 0)
            vt_grpc_respond(p->call, VT_GRPC_OK, NULL, p->body, p->len);
        else
            vt_grpc_respond(p->call, VT_GRPC_UNAVAILABLE, "spool write not confirmed", NULL, 0);
    } else if (status == 0) {
        vt_http_respond(p->req, 200, p->json ? "application/json" : "application/x-protobuf",
                        p->body, p->len);
    } else {
        http_error(p->req, 503, VT_GRPC_UNAVAILABLE, p->json, "spool write not confirmed");
    }
    if (status != 0)
        vt_counter_inc(o->failed[p->call ? T_GRPC : T_HTTP]);
    free(p);
}

/* Answer once the accepted records are durable (at once if there are none). */
static void answer_ok(struct otlp *o, vt_grpc_call_t *call, vt_http_request *req, bool json,
                      const struct vt_otlp_result *res)
{
    struct pending *p = malloc(sizeof *p + 512);
    if (!p) {
        if (call)
            vt_grpc_respond(call, VT_GRPC_UNAVAILABLE, "out of memory", NULL, 0);
        else
            http_error(req, 503, VT_GRPC_UNAVAILABLE, json, "out of memory");
        return;
    }
    *p = (struct pending){o, call, req, json, 0};
    int n = json ? vt_otlp_response_json(res, (char *)p->body, 512)
                 : vt_otlp_response_proto(res, p->body, 512);
    p->len = n > 0 ? (size_t)n : 0;
    if (res->accepted == 0)
        on_durable(p, 0);
    else
        spool_wait(o->ag, on_durable, p);
}

/* --- gRPC ------------------------------------------------------------------ */

static void on_export(vt_grpc_call_t *call, void *data)
{
    struct otlp *o = data;
    vt_counter_inc(o->requests[T_GRPC]);
    const char *why = busy(o);
    if (why) {
        vt_counter_inc(o->failed[T_GRPC]);
        vt_grpc_respond(call, VT_GRPC_UNAVAILABLE, why, NULL, 0);
        return;
    }
    size_t len;
    const uint8_t *msg = vt_grpc_call_request(call, &len);
    struct vt_otlp_result res;
    o->transport = T_GRPC;
    int rc = vt_otlp_decode_proto(o->dec, msg, len, agent_now_ms(o->ag), sink, o->ag, &res);
    if (rc < 0) {
        vt_counter_inc(o->failed[T_GRPC]);
        vt_grpc_respond(call, rc == -ENOMEM ? VT_GRPC_RESOURCE_EXHAUSTED : VT_GRPC_INVALID_ARGUMENT,
                        rc == -ENOMEM ? "out of memory" : res.message, NULL, 0);
        return;
    }
    count(o, &res);
    answer_ok(o, call, NULL, false, &res);
}

/* --- HTTP ------------------------------------------------------------------ */

/* Does the media type of `ct` (parameters ignored) equal `type`? */
static bool media_is(const char *ct, const char *type)
{
    size_t n = strlen(type);
    while (*ct == ' ')
        ct++;
    if (strncasecmp(ct, type, n) != 0)
        return false;
    ct += n;
    while (*ct == ' ' || *ct == '\t')
        ct++;
    return *ct == 0 || *ct == ';';
}

/* gunzip `in` into a new buffer of at most max bytes. 0, -E2BIG, -EINVAL, -ENOMEM. */
static int gunzip(const char *in, size_t len, size_t max, char **out, size_t *outlen)
{
    z_stream z;
    memset(&z, 0, sizeof z);
    if (inflateInit2(&z, 16 + MAX_WBITS) != Z_OK)
        return -ENOMEM;
    size_t cap = len * 4 + 1024, used = 0;
    if (cap > max + 1)
        cap = max + 1;
    char *buf = malloc(cap + 1);
    int rc = buf ? 0 : -ENOMEM;
    z.next_in = (Bytef *)in;
    z.avail_in = (uInt)len; /* bodies are bounded far below 4 GiB */
    while (rc == 0) {
        if (used == cap) {
            if (cap > max) {
                rc = -E2BIG;
                break;
            }
            size_t ncap = cap * 2 > max + 1 ? max + 1 : cap * 2;
            char *nb = realloc(buf, ncap + 1);
            if (!nb) {
                rc = -ENOMEM;
                break;
            }
            buf = nb;
            cap = ncap;
        }
        z.next_out = (Bytef *)buf + used;
        z.avail_out = (uInt)(cap - used);
        int zr = inflate(&z, Z_NO_FLUSH);
        used = cap - z.avail_out;
        if (zr == Z_STREAM_END)
            break;
        if (zr == Z_BUF_ERROR && z.avail_in == 0) {
            rc = -EINVAL; /* truncated */
        } else if (zr != Z_OK && zr != Z_BUF_ERROR) {
            rc = zr == Z_MEM_ERROR ? -ENOMEM : -EINVAL;
        }
    }
    inflateEnd(&z);
    if (rc == 0 && used > max)
        rc = -E2BIG;
    if (rc != 0) {
        free(buf);
        return rc;
    }
    buf[used] = 0;
    *out = buf;
    *outlen = used;
    return 0;
}

static void on_http(vt_http_request *req, void *data)
{
    struct otlp *o = data;
    const char *ct = vt_http_request_header(req, "content-type");
    bool json = ct && media_is(ct, "application/json");
    if (strcmp(vt_http_request_path(req), VT_OTLP_TRACE_PATH) != 0) {
        http_error(req, 404, VT_GRPC_NOT_FOUND, json,
                   "not found: this port serves POST " VT_OTLP_TRACE_PATH);
        return;
    }
    vt_counter_inc(o->requests[T_HTTP]);
    if (strcmp(vt_http_request_method(req), "POST") != 0) {
        vt_counter_inc(o->failed[T_HTTP]);
        vt_http_add_header(req, "Allow", "POST");
        http_error(req, 405, VT_GRPC_UNIMPLEMENTED, json, "method not allowed: use POST");
        return;
    }
    if (!json && !(ct && media_is(ct, "application/x-protobuf"))) {
        vt_counter_inc(o->failed[T_HTTP]);
        http_error(req, 415, VT_GRPC_INVALID_ARGUMENT, true,
                   "unsupported content-type: use application/x-protobuf or application/json");
        return;
    }
    const char *why = busy(o);
    if (why) {
        vt_counter_inc(o->failed[T_HTTP]);
        http_error(req, 503, VT_GRPC_UNAVAILABLE, json, why);
        return;
    }
    size_t len;
    const char *body = vt_http_request_body(req, &len);
    char *plain = NULL;
    const char *enc = vt_http_request_header(req, "content-encoding");
    if (enc && !media_is(enc, "identity")) {
        if (!media_is(enc, "gzip")) {
            vt_counter_inc(o->failed[T_HTTP]);
            http_error(req, 415, VT_GRPC_UNIMPLEMENTED, json,
                       "unsupported content-encoding: use gzip or identity");
            return;
        }
        int rc = gunzip(body, len, (size_t)o->ag->cfg.otlp_max_request_bytes, &plain, &len);
        if (rc < 0) {
            vt_counter_inc(o->failed[T_HTTP]);
            if (rc == -E2BIG)
                http_error(req, 413, VT_GRPC_RESOURCE_EXHAUSTED, json,
                           "request larger than otlp-max-request-bytes once decompressed");
            else if (rc == -ENOMEM)
                http_error(req, 503, VT_GRPC_UNAVAILABLE, json, "out of memory");
            else
                http_error(req, 400, VT_GRPC_INVALID_ARGUMENT, json, "invalid gzip body");
            return;
        }
        body = plain;
    }
    struct vt_otlp_result res;
    o->transport = T_HTTP;
    int64_t now = agent_now_ms(o->ag);
    int rc = json ? vt_otlp_decode_json(o->dec, body, len, now, sink, o->ag, &res)
                  : vt_otlp_decode_proto(o->dec, (const uint8_t *)body, len, now, sink, o->ag,
                                         &res);
    free(plain);
    if (rc < 0) {
        vt_counter_inc(o->failed[T_HTTP]);
        if (rc == -ENOMEM)
            http_error(req, 503, VT_GRPC_UNAVAILABLE, json, "out of memory");
        else
            http_error(req, 400, VT_GRPC_INVALID_ARGUMENT, json, res.message);
        return;
    }
    count(o, &res);
    answer_ok(o, NULL, req, json, &res);
}

/* --- lifecycle ------------------------------------------------------------- */

static int register_metrics(struct otlp *o)
{
    vt_metrics *r = o->ag->metrics;
    vt_metric_family *req = vt_metrics_counter_family(
        r, "vitals_agent_otlp_requests_total", "OTLP export requests received.", "transport");
    vt_metric_family *fail = vt_metrics_counter_family(
        r, "vitals_agent_otlp_requests_failed_total",
        "OTLP export requests answered with an error (malformed, too large, unavailable).",
        "transport");
    vt_metric_family *sp = vt_metrics_counter_family(
        r, "vitals_agent_otlp_spans_received_total", "Spans in decoded OTLP requests.",
        "transport");
    if (!req || !fail || !sp)
        return -1;
    for (int t = 0; t < 2; t++) {
        o->requests[t] = vt_metrics_counter_get(req, transport_name[t]);
        o->failed[t] = vt_metrics_counter_get(fail, transport_name[t]);
        o->spans[t] = vt_metrics_counter_get(sp, transport_name[t]);
        if (!o->requests[t] || !o->failed[t] || !o->spans[t])
            return -1;
    }
    o->accepted = vt_metrics_counter(r, "vitals_agent_otlp_spans_accepted_total",
                                     "LLM spans turned into records.");
    o->rejected = vt_metrics_counter(
        r, "vitals_agent_otlp_spans_rejected_total",
        "LLM spans rejected (reported as partial success; reasons in records_rejected_total).");
    o->ignored = vt_metrics_counter(r, "vitals_agent_otlp_spans_ignored_total",
                                    "Spans that are not LLM calls (counted, not recorded).");
    return o->accepted && o->rejected && o->ignored ? 0 : -1;
}

int otlp_start(struct agent *ag)
{
    const struct agent_config *cfg = &ag->cfg;
    struct otlp *o = ag->otlp = calloc(1, sizeof *o);
    if (!o)
        return -1;
    o->ag = ag;
    char err[256];
    o->dec = vt_otlp_decoder_new(vt_record_decoder_limits(ag->decoder), cfg->service,
                                 cfg->otlp_labels, cfg->otlp_metrics, err, sizeof err);
    if (!o->dec) {
        vt_error("agent: %s", err);
        return -1;
    }
    if (register_metrics(o) != 0) {
        vt_error("agent: otlp: cannot register metrics");
        return -1;
    }
    if (cfg->otlp_grpc_addr && *cfg->otlp_grpc_addr) {
        struct vt_grpc_server_opts go = {.max_message_bytes = (size_t)cfg->otlp_max_request_bytes};
        int rc = vt_grpc_server_init(ag->loop, &o->grpc, &go);
        if (rc == 0)
            rc = vt_grpc_server_register(o->grpc, VT_OTLP_TRACE_METHOD, on_export, o);
        if (rc == 0)
            rc = vt_grpc_server_listen(o->grpc, cfg->otlp_grpc_addr);
        if (rc == UV_EADDRINUSE && !strcmp(cfg->otlp_grpc_addr, DEFAULT_GRPC_ADDR)) {
            vt_warn("agent: OTLP/gRPC off: the default %s is taken (another collector on this "
                    "host?); set --otlp-grpc-addr", DEFAULT_GRPC_ADDR);
            vt_grpc_server_close(o->grpc, NULL, NULL);
            o->grpc = NULL;
        } else if (rc != 0) {
            vt_error("agent: otlp-grpc-addr %s: %s", cfg->otlp_grpc_addr, uv_strerror(rc));
            return -1;
        } else
            vt_info("agent: OTLP/gRPC on %s (port %d)", cfg->otlp_grpc_addr,
                    vt_grpc_server_port(o->grpc));
    }
    if (cfg->otlp_http_addr && *cfg->otlp_http_addr) {
        struct vt_http_server_options ho = {
            .handler = on_http,
            .data = o,
            .max_body_bytes = (size_t)cfg->otlp_max_request_bytes,
        };
        int rc = vt_http_server_init(ag->loop, &o->http, &ho);
        if (rc == 0) {
            o->http_inited = true;
            rc = vt_http_server_listen(&o->http, cfg->otlp_http_addr);
        }
        if (rc == UV_EADDRINUSE && !strcmp(cfg->otlp_http_addr, DEFAULT_HTTP_ADDR)) {
            vt_warn("agent: OTLP/HTTP off: the default %s is taken (another collector on this "
                    "host?); set --otlp-http-addr", DEFAULT_HTTP_ADDR);
            o->http_closing = true;
            vt_http_server_close(&o->http, NULL);
        } else if (rc != 0) {
            vt_error("agent: otlp-http-addr %s: %s", cfg->otlp_http_addr, uv_strerror(rc));
            return -1;
        } else
            vt_info("agent: OTLP/HTTP on %s (port %d)", cfg->otlp_http_addr,
                    vt_http_server_port(&o->http));
    }
    return 0;
}

void otlp_stop(struct agent *ag)
{
    struct otlp *o = ag->otlp;
    if (!o || o->stopped)
        return;
    o->stopped = true;
    if (o->grpc)
        vt_grpc_server_close(o->grpc, NULL, NULL);
    o->grpc = NULL;
    if (o->http_inited && !o->http_closing) {
        o->http_closing = true;
        vt_http_server_close(&o->http, NULL);
    }
}

void otlp_free(struct agent *ag)
{
    struct otlp *o = ag->otlp;
    if (!o)
        return;
    vt_otlp_decoder_free(o->dec);
    free(o);
    ag->otlp = NULL;
}
