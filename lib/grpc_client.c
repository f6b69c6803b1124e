/*
 * grpc_client.c - the unary gRPC client: one lazily made HTTP/2 connection
 * (libuv TCP + an nghttp2 client session) multiplexing every call.
 *
 * Policy lives with the caller: the agent's shipper owns retries, backoff and
 * jitter. This client only makes one attempt per call and reports honestly:
 * a connection that cannot be made or is lost fails its calls at once with
 * UNAVAILABLE, and the next call simply connects again.
 *
 * Every outcome is delivered from a zero-delay timer, never from inside
 * vt_grpc_call() or an nghttp2 callback, so a callback may start the next
 * call or close the client. A call has two references: its completion
 * (dropped after the user callback ran) and its HTTP/2 stream (dropped when
 * nghttp2 closes the stream or the connection dies); the stream's data
 * provider reads the request from the call, so neither may outlive the other.
 */
#include <assert.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <nghttp2/nghttp2.h>

#include "grpc.h"
#include "grpc_conn.h"
#include "grpc_frame.h"
#include "log.h"

#define MAX_TRANSPARENT_RETRIES 5

enum { C_RESOLVING, C_CONNECTING, C_READY };
enum { Q_QUEUED, Q_ACTIVE, Q_DONE };

struct cconn;

struct ccall {
    vt_grpc_client_t *cli;
    struct cconn *conn; /* set while the stream exists */
    int32_t stream_id;
    struct ccall *prev, *next;   /* client queue, or done list */
    struct ccall *aprev, *anext; /* conn->active */
    int state;
    int refs;
    int retries; /* transparent resends after REFUSED_STREAM */
    char *path;
    uint8_t *req;
    size_t req_len, req_off;
    uint64_t deadline; /* 0 = none */
    uv_timer_t timer;
    int timer_init;
    vt_grpc_call_cb cb;
    void *data;
    /* response */
    int http_status;
    int grpc_status; /* -1 until seen */
    char *grpc_message;
    int resp_enc;
    struct vt_grpc_reader reader;
    /* outcome */
    int result;
    char *result_msg;
    const uint8_t *resp;
    size_t resp_len;
};

struct cconn {
    struct vt_grpc_conn io; /* io.tcp.data = this */
    uv_timer_t ctimer;
    uv_connect_t creq;
    uv_getaddrinfo_t gai;
    vt_grpc_client_t *cli;
    struct cconn *prev, *next;
    struct ccall *active;
    int state;
    int handles;
    int gai_pending;
};

struct vt_grpc_client {
    uv_loop_t *loop;
    struct vt_grpc_client_opts opts;
    char *host;
    char port[8];
    char *authority;
    char *user_agent;
    struct vt_grpc_md *md;
    size_t n_md;
    nghttp2_session_callbacks *cbs;
    struct vt_grpc_codec codec;
    struct cconn *conn;  /* current connection for new calls, or NULL */
    struct cconn *conns; /* every open connection */
    struct ccall *qhead, *qtail;
    struct ccall *dhead, *dtail;
    uv_timer_t deliver;
    uint32_t pending;   /* calls whose callback has not run */
    uint32_t in_flight; /* ACTIVE calls not yet completed */
    int delivering;
    int closing;
    vt_grpc_client_close_cb close_cb;
    void *close_data;
};

static void conn_close(struct cconn *c);
static void conn_flush(struct cconn *c);
static void pump(vt_grpc_client_t *cli);
static void client_maybe_finish(vt_grpc_client_t *cli);

/* ---------------------------------------------------------------- calls */

static void deliver_cb(uv_timer_t *t);

static void call_unref(struct ccall *call)
{
    assert(call->refs > 0);
    if (--call->refs)
        return;
    assert(!call->conn);
    free(call->path);
    free(call->req);
    free(call->grpc_message);
    free(call->result_msg);
    vt_grpc_reader_free(&call->reader);
    vt_grpc_free_with_timer(call, &call->timer, call->timer_init);
}

static void queue_remove(vt_grpc_client_t *cli, struct ccall *call)
{
    if (call->prev)
        call->prev->next = call->next;
    else
        cli->qhead = call->next;
    if (call->next)
        call->next->prev = call->prev;
    else
        cli->qtail = call->prev;
    call->prev = call->next = NULL;
}

/* Record the outcome and schedule the callback. */
static void complete(struct ccall *call, int status, const char *msg)
{
    vt_grpc_client_t *cli = call->cli;
    if (call->state == Q_DONE)
        return;
    if (call->state == Q_QUEUED)
        queue_remove(cli, call);
    else
        cli->in_flight--;
    call->state = Q_DONE;
    if (call->timer_init)
        uv_timer_stop(&call->timer);
    call->result = status;
    call->result_msg = strdup(msg ? msg : "");
    call->next = NULL;
    if (cli->dtail)
        cli->dtail->next = call;
    else
        cli->dhead = call;
    cli->dtail = call;
    uv_timer_start(&cli->deliver, deliver_cb, 0, 0);
}

static void deliver_cb(uv_timer_t *t)
{
    vt_grpc_client_t *cli = t->data;
    cli->delivering = 1;
    struct ccall *call;
    while ((call = cli->dhead)) {
        cli->dhead = call->next;
        if (!cli->dhead)
            cli->dtail = NULL;
        call->next = NULL;
        call->cb(call->result, call->result_msg ? call->result_msg : "",
                 call->result == VT_GRPC_OK ? call->resp : NULL,
                 call->result == VT_GRPC_OK ? call->resp_len : 0, call->data);
        cli->pending--;
        call_unref(call);
    }
    cli->delivering = 0;
    pump(cli);
    client_maybe_finish(cli);
}

static void schedule_delivery(vt_grpc_client_t *cli)
{
    uv_timer_start(&cli->deliver, deliver_cb, 0, 0);
}

static void fail(struct ccall *call, int status, const char *msg)
{
    complete(call, status, msg);
}

/* The stream is gone. */
static void call_detach(struct ccall *call)
{
    struct cconn *c = call->conn;
    assert(c);
    if (call->aprev)
        call->aprev->anext = call->anext;
    else
        c->active = call->anext;
    if (call->anext)
        call->anext->aprev = call->aprev;
    call->aprev = call->anext = NULL;
    call->conn = NULL;
    call_unref(call);
}

static void call_deadline_cb(uv_timer_t *t)
{
    struct ccall *call = t->data;
    if (call->state == Q_DONE)
        return;
    struct cconn *c = call->state == Q_ACTIVE ? call->conn : NULL;
    /* Outcome first: flushing the RST_STREAM closes the stream, and its
     * close callback must find the call already done. */
    fail(call, VT_GRPC_DEADLINE_EXCEEDED, "deadline exceeded");
    if (c) {
        nghttp2_submit_rst_stream(c->io.h2, NGHTTP2_FLAG_NONE, call->stream_id,
                                  NGHTTP2_CANCEL);
        conn_flush(c);
    }
}

/* ---------------------------------------------------------------- nghttp2 */

static ssize_t req_read(nghttp2_session *h2, int32_t stream_id, uint8_t *buf,
                        size_t length, uint32_t *flags,
                        nghttp2_data_source *source, void *user_data)
{
    struct ccall *call = source->ptr;
    size_t n = vt_grpc_body_read(buf, length, call->req, call->req_len,
                                 &call->req_off);
    if (call->req_off == call->req_len)
        *flags |= NGHTTP2_DATA_FLAG_EOF;
    return (ssize_t)n;
}

static int on_header(nghttp2_session *h2, const nghttp2_frame *frame,
                     const uint8_t *name, size_t nlen, const uint8_t *value,
                     size_t vlen, uint8_t flags, void *user_data)
{
    if (frame->hd.type != NGHTTP2_HEADERS)
        return 0;
    struct ccall *call = nghttp2_session_get_stream_user_data(h2, frame->hd.stream_id);
    if (!call)
        return 0;
#define IS(lit) (nlen == sizeof(lit) - 1 && memcmp(name, lit, nlen) == 0)
    if (IS(":status")) {
        call->http_status = 0;
        for (size_t i = 0; i < vlen && i < 3; i++)
            call->http_status = call->http_status * 10 + (value[i] - '0');
    } else if (IS("grpc-status")) {
        int v = 0;
        for (size_t i = 0; i < vlen && i < 4; i++) {
            if (value[i] < '0' || value[i] > '9') {
                v = VT_GRPC_UNKNOWN;
                break;
            }
            v = v * 10 + (value[i] - '0');
        }
        call->grpc_status = vlen ? v : VT_GRPC_UNKNOWN;
    } else if (IS("grpc-message")) {
        free(call->grpc_message);
        call->grpc_message = strndup((const char *)value, vlen);
        if (call->grpc_message)
            vt_grpc_message_decode(call->grpc_message);
    } else if (IS("grpc-encoding")) {
        call->resp_enc = vt_grpc_encoding_parse((const char *)value, vlen);
    }
#undef IS
    return 0;
}

static int on_data_chunk(nghttp2_session *h2, uint8_t flags, int32_t stream_id,
                         const uint8_t *data, size_t len, void *user_data)
{
    struct ccall *call = nghttp2_session_get_stream_user_data(h2, stream_id);
    if (!call || call->state == Q_DONE)
        return 0;
    int st = vt_grpc_reader_feed(&call->reader, data, len);
    if (st) {
        nghttp2_submit_rst_stream(h2, NGHTTP2_FLAG_NONE, stream_id, NGHTTP2_CANCEL);
        fail(call, st, call->reader.why);
    }
    return 0;
}

static void requeue(struct ccall *call)
{
    vt_grpc_client_t *cli = call->cli;
    assert(call->state == Q_ACTIVE && !call->conn);
    cli->in_flight--;
    call->retries++;
    call->state = Q_QUEUED;
    call->req_off = 0;
    call->http_status = 0;
    call->grpc_status = -1;
    call->resp_enc = VT_GRPC_ENC_IDENTITY;
    free(call->grpc_message);
    call->grpc_message = NULL;
    vt_grpc_reader_free(&call->reader);
    vt_grpc_reader_init(&call->reader, cli->opts.max_message_bytes);
    call->prev = NULL;
    call->next = cli->qhead;
    if (cli->qhead)
        cli->qhead->prev = call;
    else
        cli->qtail = call;
    cli->qhead = call;
}

static int status_from_rst(uint32_t error_code)
{
    switch (error_code) {
    case NGHTTP2_REFUSED_STREAM: return VT_GRPC_UNAVAILABLE;
    case NGHTTP2_CANCEL: return VT_GRPC_CANCELLED;
    case NGHTTP2_ENHANCE_YOUR_CALM: return VT_GRPC_RESOURCE_EXHAUSTED;
    case NGHTTP2_INADEQUATE_SECURITY: return VT_GRPC_PERMISSION_DENIED;
    default: return VT_GRPC_INTERNAL;
    }
}

static void finish_call(struct ccall *call, uint32_t error_code)
{
    char buf[64];
    if (call->grpc_status >= 0) {
        if (call->grpc_status != VT_GRPC_OK) {
            fail(call, call->grpc_status, call->grpc_message);
            return;
        }
        if (call->resp_enc < 0) {
            fail(call, VT_GRPC_INTERNAL, "unsupported response grpc-encoding");
            return;
        }
        int st = vt_grpc_reader_finish(&call->reader, &call->cli->codec,
                                       (enum vt_grpc_encoding)call->resp_enc,
                                       &call->resp, &call->resp_len);
        if (st)
            fail(call, st, call->reader.why);
        else
            fail(call, VT_GRPC_OK, call->grpc_message);
    } else if (call->http_status && call->http_status != 200) {
        snprintf(buf, sizeof(buf), "HTTP status %d", call->http_status);
        fail(call, vt_grpc_status_from_http(call->http_status), buf);
    } else if (error_code) {
        snprintf(buf, sizeof(buf), "stream reset: %s",
                 nghttp2_http2_strerror(error_code));
        fail(call, status_from_rst(error_code), buf);
    } else {
        fail(call, VT_GRPC_INTERNAL, "response without grpc-status");
    }
}

static int on_stream_close(nghttp2_session *h2, int32_t stream_id,
                           uint32_t error_code, void *user_data)
{
    struct cconn *c = user_data;
    if (c->io.closing)
        return 0;
    struct ccall *call = nghttp2_session_get_stream_user_data(h2, stream_id);
    if (!call || !call->conn)
        return 0;
    if (call->state == Q_ACTIVE && error_code == NGHTTP2_REFUSED_STREAM &&
        !call->http_status && call->retries < MAX_TRANSPARENT_RETRIES) {
        /* REFUSED_STREAM guarantees the server did not process the request
         * (typically: more streams than its SETTINGS allow were opened before
         * they arrived), so it is sent again, as gRPC clients do. */
        call_detach(call);
        requeue(call);
        return 0;
    }
    if (call->state != Q_DONE)
        finish_call(call, error_code);
    call_detach(call);
    return 0;
}

/* ---------------------------------------------------------------- conn io */

static void conn_maybe_free(struct cconn *c)
{
    if (c->handles || c->gai_pending)
        return;
    vt_grpc_client_t *cli = c->cli;
    vt_grpc_conn_release(&c->io);
    if (c->prev)
        c->prev->next = c->next;
    else
        cli->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    free(c);
    client_maybe_finish(cli);
}

static void conn_handle_closed(uv_handle_t *h)
{
    struct cconn *c = h->data;
    assert(c->handles > 0);
    c->handles--;
    conn_maybe_free(c);
}

/* Fail what depended on this connection and close it. */
static void conn_fail(struct cconn *c, const char *why)
{
    vt_grpc_client_t *cli = c->cli;
    if (c->io.closing)
        return;
    while (c->active) {
        struct ccall *call = c->active;
        fail(call, VT_GRPC_UNAVAILABLE, why);
        call_detach(call);
    }
    if (cli->conn == c) {
        cli->conn = NULL;
        while (cli->qhead)
            fail(cli->qhead, VT_GRPC_UNAVAILABLE, why);
    }
    conn_close(c);
}

static void conn_close(struct cconn *c)
{
    if (c->io.closing)
        return;
    c->io.closing = 1;
    assert(!c->active);
    if (c->cli->conn == c)
        c->cli->conn = NULL;
    if (c->gai_pending)
        uv_cancel((uv_req_t *)&c->gai);
    uv_close((uv_handle_t *)&c->io.tcp, conn_handle_closed);
    uv_close((uv_handle_t *)&c->ctimer, conn_handle_closed);
}

static void conn_flush(struct cconn *c)
{
    if (c->state == C_READY) /* before that there is no session */
        vt_grpc_conn_flush(&c->io);
}

static void conn_io_fail(struct vt_grpc_conn *io, const char *why)
{
    conn_fail(VT_GRPC_CONTAINER_OF(io, struct cconn, io), why);
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    struct cconn *c = s->data;
    if (c->io.closing)
        return;
    if (nread < 0) {
        conn_fail(c, nread == UV_EOF ? "connection closed by server"
                                     : "connection lost");
        return;
    }
    if (nread == 0)
        return;
    ssize_t rv = vt_grpc_conn_recv(&c->io, buf, nread);
    if (rv < 0) {
        conn_fail(c, nghttp2_strerror((int)rv));
        return;
    }
    pump(c->cli); /* refused streams were requeued */
    conn_flush(c);
}

static void on_connect_timeout(uv_timer_t *t)
{
    struct cconn *c = t->data;
    if (c->state != C_READY)
        conn_fail(c, "connect timeout");
}

static void on_connect(uv_connect_t *req, int status)
{
    struct cconn *c = req->data;
    vt_grpc_client_t *cli = c->cli;
    if (c->io.closing)
        return;
    if (status < 0) {
        char msg[96];
        snprintf(msg, sizeof(msg), "connect failed: %s", uv_strerror(status));
        conn_fail(c, msg);
        return;
    }
    uv_timer_stop(&c->ctimer);
    if (nghttp2_session_client_new(&c->io.h2, cli->cbs, c)) {
        c->io.h2 = NULL;
        conn_fail(c, "out of memory");
        return;
    }
    nghttp2_settings_entry iv[] = {
        {NGHTTP2_SETTINGS_ENABLE_PUSH, 0},
        {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, VT_GRPC_STREAM_WINDOW},
    };
    if (vt_grpc_conn_start(&c->io, iv, 2, on_read)) {
        conn_fail(c, "read failed");
        return;
    }
    c->state = C_READY;
    pump(cli);
    conn_flush(c);
}

static void on_resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *res)
{
    struct cconn *c = req->data;
    c->gai_pending = 0;
    if (c->io.closing) {
        uv_freeaddrinfo(res);
        conn_maybe_free(c);
        return;
    }
    if (status < 0 || !res) {
        char msg[128];
        snprintf(msg, sizeof(msg), "resolve %s: %s", c->cli->host,
                 uv_strerror(status));
        uv_freeaddrinfo(res);
        conn_fail(c, msg);
        return;
    }
    c->state = C_CONNECTING;
    c->creq.data = c;
    int rc = uv_tcp_connect(&c->creq, &c->io.tcp, res->ai_addr, on_connect);
    uv_freeaddrinfo(res);
    if (rc) {
        char msg[96];
        snprintf(msg, sizeof(msg), "connect failed: %s", uv_strerror(rc));
        conn_fail(c, msg);
    }
}

static void start_connect(vt_grpc_client_t *cli)
{
    struct cconn *c = calloc(1, sizeof(*c));
    if (!c) {
        while (cli->qhead)
            fail(cli->qhead, VT_GRPC_UNAVAILABLE, "out of memory");
        return;
    }
    c->cli = cli;
    vt_grpc_conn_init(&c->io, cli->loop, conn_io_fail);
    uv_timer_init(cli->loop, &c->ctimer);
    c->io.tcp.data = c->ctimer.data = c;
    c->handles = 2;
    c->next = cli->conns;
    if (cli->conns)
        cli->conns->prev = c;
    cli->conns = c;
    cli->conn = c;
    c->state = C_RESOLVING;
    uv_timer_start(&c->ctimer, on_connect_timeout, cli->opts.connect_timeout_ms, 0);
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    c->gai.data = c;
    c->gai_pending = 1;
    int rc = uv_getaddrinfo(cli->loop, &c->gai, on_resolved, cli->host,
                            cli->port, &hints);
    if (rc) {
        c->gai_pending = 0;
        conn_fail(c, "resolve failed");
    }
}

/* ---------------------------------------------------------------- calls */

static void submit(vt_grpc_client_t *cli, struct cconn *c, struct ccall *call)
{
    char tbuf[16];
    nghttp2_nv nv[12 + cli->n_md];
    size_t n = 0;
#define NV(nm, val)                                                           \
    nv[n++] = (nghttp2_nv){(uint8_t *)(nm), (uint8_t *)(val), strlen(nm),     \
                           strlen(val), NGHTTP2_NV_FLAG_NONE}
    NV(":method", "POST");
    NV(":scheme", "http");
    NV(":path", call->path);
    NV(":authority", cli->authority);
    NV("te", "trailers");
    NV("content-type", "application/grpc");
    NV("user-agent", cli->user_agent);
    NV("grpc-accept-encoding", VT_GRPC_ACCEPT_ENCODING);
    if (cli->opts.compression != VT_GRPC_ENC_IDENTITY)
        NV("grpc-encoding", vt_grpc_encoding_name(cli->opts.compression));
    if (call->deadline) {
        uint64_t now = uv_now(cli->loop);
        if (now >= call->deadline) {
            fail(call, VT_GRPC_DEADLINE_EXCEEDED, "deadline exceeded");
            return;
        }
        vt_grpc_timeout_format(call->deadline - now, tbuf);
        NV("grpc-timeout", tbuf);
    }
    for (size_t i = 0; i < cli->n_md; i++)
        NV(cli->md[i].name, cli->md[i].value);
#undef NV
    nghttp2_data_provider prd = {.source.ptr = call, .read_callback = req_read};
    int32_t id = nghttp2_submit_request(c->io.h2, NULL, nv, n, &prd, call);
    if (id < 0) {
        fail(call, VT_GRPC_UNAVAILABLE, nghttp2_strerror(id));
        return;
    }
    queue_remove(cli, call);
    call->state = Q_ACTIVE;
    call->stream_id = id;
    call->conn = c;
    call->refs++; /* the stream's reference */
    call->anext = c->active;
    if (c->active)
        c->active->aprev = call;
    c->active = call;
    cli->in_flight++;
}

static void pump(vt_grpc_client_t *cli)
{
    if (cli->closing)
        return;
    while (cli->qhead && cli->in_flight < cli->opts.max_concurrent_calls) {
        struct cconn *c = cli->conn;
        if (c && c->state == C_READY &&
            !nghttp2_session_check_request_allowed(c->io.h2)) {
            cli->conn = NULL; /* GOAWAY received: drain it, use a new one */
            conn_flush(c);
            c = NULL;
        }
        if (!c) {
            start_connect(cli);
            return;
        }
        if (c->state != C_READY)
            return;
        submit(cli, c, cli->qhead);
    }
    if (cli->conn)
        conn_flush(cli->conn);
}

static int start_call(vt_grpc_client_t *cli, const char *path, const void *req, size_t len,
                      bool encoded, uint64_t timeout_ms, vt_grpc_call_cb cb, void *data)
{
    if (!cli || !path || path[0] != '/' || !cb || (len && !req))
        return UV_EINVAL;
    if (cli->closing)
        return UV_ECANCELED;
    struct ccall *call = calloc(1, sizeof(*call));
    if (!call)
        return UV_ENOMEM;
    call->cli = cli;
    call->refs = 1;
    call->grpc_status = -1;
    call->cb = cb;
    call->data = data;
    vt_grpc_reader_init(&call->reader, cli->opts.max_message_bytes);
    call->path = strdup(path);
    /* an encoded message is framed as it is, flagged compressed */
    enum vt_grpc_encoding enc = encoded ? VT_GRPC_ENC_IDENTITY : cli->opts.compression;
    int rc = call->path ? vt_grpc_frame_encode(&cli->codec, enc, cli->opts.compression_level,
                                               req, len, &call->req, &call->req_len)
                        : UV_ENOMEM;
    if (!rc && encoded && cli->opts.compression != VT_GRPC_ENC_IDENTITY)
        call->req[0] = 1;
    if (rc) {
        free(call->path);
        free(call);
        return rc;
    }
    if (timeout_ms)
        call->timer_init = vt_grpc_deadline_arm(cli->loop, &call->timer, timeout_ms,
                                                call_deadline_cb, call,
                                                &call->deadline) == 0;
    call->state = Q_QUEUED;
    call->prev = cli->qtail;
    if (cli->qtail)
        cli->qtail->next = call;
    else
        cli->qhead = call;
    cli->qtail = call;
    cli->pending++;
    pump(cli);
    return 0;
}

int vt_grpc_call(vt_grpc_client_t *cli, const char *path, const void *req,
                 size_t len, uint64_t timeout_ms, vt_grpc_call_cb cb, void *data)
{
    return start_call(cli, path, req, len, false, timeout_ms, cb, data);
}

int vt_grpc_call_encoded(vt_grpc_client_t *cli, const char *path, const void *req,
                         size_t len, uint64_t timeout_ms, vt_grpc_call_cb cb, void *data)
{
    return start_call(cli, path, req, len, true, timeout_ms, cb, data);
}

uint32_t vt_grpc_client_pending(const vt_grpc_client_t *cli)
{
    return cli->pending;
}

/* ---------------------------------------------------------------- client */

static char *dupstr(const char *s)
{
    return s ? strdup(s) : NULL;
}

int vt_grpc_client_set_metadata(vt_grpc_client_t *cli, const char *name,
                                const char *value)
{
    if (!name || !value)
        return UV_EINVAL;
    char *v = strdup(value);
    if (!v)
        return UV_ENOMEM;
    for (size_t i = 0; i < cli->n_md; i++) {
        if (strcmp(cli->md[i].name, name) == 0) {
            free((char *)cli->md[i].value);
            cli->md[i].value = v;
            return 0;
        }
    }
    struct vt_grpc_md *md = realloc(cli->md, (cli->n_md + 1) * sizeof(*md));
    char *nm = strdup(name);
    if (!md || !nm) {
        if (md)
            cli->md = md;
        free(v);
        free(nm);
        return UV_ENOMEM;
    }
    cli->md = md;
    md[cli->n_md++] = (struct vt_grpc_md){nm, v};
    return 0;
}

/* "http://host:port" | "host:port" | "[v6]:port" → host, port. */
static int parse_target(vt_grpc_client_t *cli, const char *t)
{
    if (strncmp(t, "https://", 8) == 0)
        return UV_ENOTSUP;
    if (strncmp(t, "http://", 7) == 0)
        t += 7;
    size_t tl = strcspn(t, "/");
    const char *colon = NULL;
    for (size_t i = 0; i < tl; i++)
        if (t[i] == ':')
            colon = t + i;
    if (!colon || colon == t || (size_t)(colon - t) + 1 >= tl)
        return UV_EINVAL;
    size_t pl = tl - (size_t)(colon - t) - 1;
    if (pl >= sizeof(cli->port))
        return UV_EINVAL;
    memcpy(cli->port, colon + 1, pl);
    cli->port[pl] = 0;
    char *end;
    long port = strtol(cli->port, &end, 10);
    if (*end || port <= 0 || port > 65535)
        return UV_EINVAL;
    const char *h = t;
    size_t hl = (size_t)(colon - t);
    if (h[0] == '[' && hl >= 2 && h[hl - 1] == ']') {
        h++;
        hl -= 2;
    }
    cli->host = strndup(h, hl);
    cli->authority = strndup(t, tl);
    return cli->host && cli->authority ? 0 : UV_ENOMEM;
}

static void client_free(vt_grpc_client_t *cli)
{
    for (size_t i = 0; i < cli->n_md; i++) {
        free((char *)cli->md[i].name);
        free((char *)cli->md[i].value);
    }
    free(cli->md);
    free(cli->host);
    free(cli->authority);
    free(cli->user_agent);
    if (cli->cbs)
        nghttp2_session_callbacks_del(cli->cbs);
    vt_grpc_codec_free(&cli->codec);
    free(cli);
}

int vt_grpc_client_init(uv_loop_t *loop, vt_grpc_client_t **out,
                        const struct vt_grpc_client_opts *opts)
{
    if (!loop || !out || !opts || !opts->target ||
        (unsigned)opts->compression > VT_GRPC_ENC_ZSTD)
        return UV_EINVAL;
    vt_grpc_client_t *cli = calloc(1, sizeof(*cli));
    if (!cli)
        return UV_ENOMEM;
    cli->loop = loop;
    cli->opts = *opts;
    cli->opts.target = NULL;
    cli->opts.metadata = NULL;
    cli->opts.n_metadata = 0;
    cli->opts.user_agent = NULL;
    if (!cli->opts.max_concurrent_calls)
        cli->opts.max_concurrent_calls = 100;
    if (!cli->opts.max_message_bytes)
        cli->opts.max_message_bytes = VT_GRPC_DEFAULT_MAX_MESSAGE;
    if (!cli->opts.connect_timeout_ms)
        cli->opts.connect_timeout_ms = 10000;
    int rc = parse_target(cli, opts->target);
    if (!rc) {
        cli->user_agent = opts->user_agent
                              ? dupstr(opts->user_agent)
                              : dupstr("vitals-grpc/" VITALS_VERSION);
        if (!cli->user_agent || nghttp2_session_callbacks_new(&cli->cbs))
            rc = UV_ENOMEM;
    }
    for (size_t i = 0; !rc && i < opts->n_metadata; i++)
        rc = vt_grpc_client_set_metadata(cli, opts->metadata[i].name,
                                         opts->metadata[i].value);
    if (rc) {
        client_free(cli);
        return rc;
    }
    nghttp2_session_callbacks_set_on_header_callback(cli->cbs, on_header);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cli->cbs, on_data_chunk);
    nghttp2_session_callbacks_set_on_stream_close_callback(cli->cbs, on_stream_close);
    uv_timer_init(loop, &cli->deliver);
    cli->deliver.data = cli;
    *out = cli;
    return 0;
}

static void deliver_closed(uv_handle_t *h)
{
    vt_grpc_client_t *cli = h->data;
    vt_grpc_client_close_cb cb = cli->close_cb;
    void *data = cli->close_data;
    if (cb)
        cb(cli, data);
    client_free(cli);
}

static void client_maybe_finish(vt_grpc_client_t *cli)
{
    if (!cli->closing || cli->delivering || cli->pending || cli->conns ||
        uv_is_closing((uv_handle_t *)&cli->deliver))
        return;
    uv_close((uv_handle_t *)&cli->deliver, deliver_closed);
}

void vt_grpc_client_close(vt_grpc_client_t *cli, vt_grpc_client_close_cb cb,
                          void *data)
{
    assert(!cli->closing);
    cli->closing = 1;
    cli->close_cb = cb;
    cli->close_data = data;
    while (cli->qhead)
        fail(cli->qhead, VT_GRPC_CANCELLED, "client closed");
    for (struct cconn *c = cli->conns; c; c = c->next) {
        while (c->active) {
            struct ccall *call = c->active;
            fail(call, VT_GRPC_CANCELLED, "client closed");
            call_detach(call);
        }
        conn_close(c);
    }
    cli->conn = NULL;
    schedule_delivery(cli);
}
