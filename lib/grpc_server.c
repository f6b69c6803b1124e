/*
 * grpc_server.c - the unary gRPC server: libuv TCP + one nghttp2 server
 * session per connection.
 *
 * Why it is shaped like this: a handler may answer long after its request
 * arrived (the scorer acks only once a batch is durable), while the client
 * may vanish at any moment. So a call is a small refcounted object with two
 * owners: the HTTP/2 stream (dropped when nghttp2 closes the stream or the
 * connection dies) and the handler (dropped by vt_grpc_respond). Whichever
 * lets go last frees it; a respond on a call whose stream is gone only
 * releases it. The server itself lives until it is closed *and* no handler
 * still holds a call, so a late respond never touches freed memory.
 *
 * nghttp2 is driven with mem_recv/mem_send (grpc_conn.c, shared with the
 * client). Handlers are never called from inside nghttp2 callbacks: finished requests
 * are queued and dispatched after mem_recv returns, so a handler may respond,
 * or even close the server, from inside itself.
 */
#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <nghttp2/nghttp2.h>

#include "grpc.h"
#include "grpc_conn.h"
#include "grpc_frame.h"
#include "log.h"

#define MAX_METADATA (16 * 1024) /* request header bytes per stream */

struct method {
    char *path;
    vt_grpc_handler_cb cb;
    void *data;
};

struct conn;

#define CALL_POOL 128               /* finished calls kept, for the next streams */
#define BUF_POOL 128                /* request buffers kept */
#define BUF_POOL_MIN 1024           /* ... of at least this size (malloc's large ones) */
#define BUF_POOL_MAX (256u << 10)   /* ... and at most this */

struct vt_grpc_server {
    uv_loop_t *loop;
    uv_tcp_t listener;
    struct vt_grpc_server_opts opts;
    nghttp2_session_callbacks *cbs;
    struct vt_grpc_codec codec;
    struct method *methods;
    size_t n_methods;
    struct conn *conns; /* doubly linked */
    uint32_t n_conns;
    uint32_t held_calls; /* given to handlers, not yet responded */
    int port;
    int listening;
    int closing;
    int listener_open; /* handle not yet closed */
    int close_done;    /* close_cb has run */
    int corked;        /* responses wait for vt_grpc_server_uncork ... */
    struct conn *to_flush; /* ... in these connections (by flush_next) */
    vt_grpc_server_close_cb close_cb;
    void *close_data;
    /* request buffers of finished calls, for the next ones: a buffer of a
     * kilobyte or more from malloc costs a consolidation of its free lists
     * every time (glibc), at every request */
    struct {
        uint8_t *buf;
        size_t cap;
    } pool[BUF_POOL];
    uint32_t n_pool;
    /* finished calls (linked by next), their timer and metadata buffer
     * kept: a call costs no allocation, and no timer to set up and close */
    struct vt_grpc_call *free_calls;
    uint32_t n_free_calls;
};

struct conn {
    struct vt_grpc_conn io; /* io.tcp.data = this */
    uv_timer_t idle;
    vt_grpc_server_t *srv;
    struct conn *prev, *next;
    struct vt_grpc_call *calls;               /* calls whose stream is open */
    struct vt_grpc_call *ready_head, *ready_tail; /* requests complete */
    uint32_t n_streams;
    uint64_t last_active;
    int handles; /* open libuv handles (tcp, idle) */
    int flush_wanted; /* a response was submitted while the server was corked */
    struct conn *flush_next;
};

struct vt_grpc_call {
    vt_grpc_server_t *srv;
    struct conn *conn; /* NULL once the stream is gone: the call is dead */
    int32_t stream_id;
    struct vt_grpc_call *prev, *next; /* conn->calls */
    struct vt_grpc_call *ready_next;
    int refs;       /* stream + handler + ready queue */
    int held;       /* the handler owns a reference */
    int responded;  /* a final response was submitted */
    int req_done;   /* END_STREAM received */
    int stop_req;   /* once answered, RST_STREAM(NO_ERROR) the unread rest */
    int is_post;
    int ct_seen, ct_ok;
    int enc;        /* request grpc-encoding, -1 unsupported */
    int has_timeout;
    uint64_t timeout_ms;
    uint64_t deadline; /* uv_now() ms */
    char *path;
    size_t md_len; /* of md: "name\0value\0" pairs */
    struct vt_grpc_reader reader;
    const uint8_t *req;
    size_t req_len;
    vt_grpc_handler_cb cb;
    void *cb_data;
    uint8_t *resp; /* framed response message */
    size_t resp_len, resp_off;
    /* kept when the call is pooled (everything above is zeroed for reuse) */
    uv_timer_t timer;
    int timer_init;
    char *md;
    size_t md_cap;
};

static void conn_close(struct conn *c);
static void server_maybe_finish(vt_grpc_server_t *srv);

/* ---------------------------------------------------------------- calls */

static void call_free(struct vt_grpc_call *call)
{
    free(call->md);
    vt_grpc_free_with_timer(call, &call->timer, call->timer_init);
}

/* A zeroed call, from the pool (its timer and metadata buffer kept) or new. */
static struct vt_grpc_call *call_new(vt_grpc_server_t *srv)
{
    struct vt_grpc_call *call = srv->free_calls;
    if (!call)
        return calloc(1, sizeof(*call));
    srv->free_calls = call->next;
    srv->n_free_calls--;
    memset(call, 0, offsetof(struct vt_grpc_call, timer));
    return call;
}

static void call_unref(struct vt_grpc_call *call)
{
    assert(call->refs > 0);
    if (--call->refs)
        return;
    assert(!call->conn && !call->held);
    vt_grpc_server_t *srv = call->srv;
    size_t cap;
    uint8_t *buf = vt_grpc_reader_take(&call->reader, &cap);
    if (buf && srv->n_pool < BUF_POOL && cap >= BUF_POOL_MIN && cap <= BUF_POOL_MAX) {
        srv->pool[srv->n_pool].buf = buf;
        srv->pool[srv->n_pool++].cap = cap;
    } else {
        free(buf);
    }
    vt_grpc_reader_free(&call->reader);
    free(call->path);
    free(call->resp);
    call->path = NULL;
    call->resp = NULL;
    if (!srv->closing && srv->n_free_calls < CALL_POOL) {
        call->next = srv->free_calls;
        srv->free_calls = call;
        srv->n_free_calls++;
        return;
    }
    call_free(call);
}

static void call_stop_timer(struct vt_grpc_call *call)
{
    if (call->timer_init)
        uv_timer_stop(&call->timer);
}

/* The stream is gone (closed by nghttp2, or the connection died). */
static void call_detach(struct vt_grpc_call *call)
{
    struct conn *c = call->conn;
    assert(c);
    if (call->prev)
        call->prev->next = call->next;
    else
        c->calls = call->next;
    if (call->next)
        call->next->prev = call->prev;
    call->prev = call->next = NULL;
    call->conn = NULL;
    call_stop_timer(call);
    assert(c->n_streams > 0);
    if (--c->n_streams == 0)
        c->last_active = uv_now(c->srv->loop);
    call_unref(call);
}

static int md_append(struct vt_grpc_call *call, const uint8_t *name,
                     size_t nlen, const uint8_t *value, size_t vlen)
{
    size_t need = call->md_len + nlen + vlen + 2;
    if (need > MAX_METADATA)
        return -1;
    if (need > call->md_cap) {
        size_t cap = call->md_cap ? call->md_cap * 2 : 512;
        while (cap < need)
            cap *= 2;
        char *p = realloc(call->md, cap);
        if (!p)
            return -1;
        call->md = p;
        call->md_cap = cap;
    }
    memcpy(call->md + call->md_len, name, nlen);
    call->md[call->md_len + nlen] = 0;
    call->md_len += nlen + 1;
    memcpy(call->md + call->md_len, value, vlen);
    call->md[call->md_len + vlen] = 0;
    call->md_len += vlen + 1;
    return 0;
}

/* Submit a response that ends the stream in one HEADERS frame: an HTTP
 * error (http_status != 200) or a gRPC trailers-only status. */
static void submit_status(struct vt_grpc_call *call, int http_status,
                          int status, const char *message, int with_accept)
{
    struct conn *c = call->conn;
    assert(c && !call->responded);
    call->responded = 1;
    call_stop_timer(call);
    char hs[8], gs[12];
    snprintf(hs, sizeof(hs), "%d", http_status);
    snprintf(gs, sizeof(gs), "%d", status);
    char *enc = message && *message ? vt_grpc_message_encode(message) : NULL;
    nghttp2_nv nv[6];
    size_t n = 0;
#define NV(nm, val)                                                           \
    nv[n++] = (nghttp2_nv){(uint8_t *)(nm), (uint8_t *)(val), strlen(nm),     \
                           strlen(val), NGHTTP2_NV_FLAG_NONE}
    NV(":status", hs);
    NV("content-type", "application/grpc");
    NV("grpc-status", gs);
    if (enc)
        NV("grpc-message", enc);
    if (with_accept)
        NV("grpc-accept-encoding", VT_GRPC_ACCEPT_ENCODING);
    int rv = nghttp2_submit_response(c->io.h2, call->stream_id, nv, n, NULL);
    free(enc);
    if (rv)
        nghttp2_submit_rst_stream(c->io.h2, NGHTTP2_FLAG_NONE, call->stream_id,
                                  NGHTTP2_INTERNAL_ERROR);
}

static ssize_t resp_read(nghttp2_session *h2, int32_t stream_id, uint8_t *buf,
                         size_t length, uint32_t *flags,
                         nghttp2_data_source *source, void *user_data)
{
    struct vt_grpc_call *call = source->ptr;
    size_t n = vt_grpc_body_read(buf, length, call->resp, call->resp_len,
                                 &call->resp_off);
    if (call->resp_off == call->resp_len) {
        *flags |= NGHTTP2_DATA_FLAG_EOF | NGHTTP2_DATA_FLAG_NO_END_STREAM;
        nghttp2_nv tr[] = {{(uint8_t *)"grpc-status", (uint8_t *)"0", 11, 1,
                            NGHTTP2_NV_FLAG_NONE}};
        if (nghttp2_submit_trailer(h2, stream_id, tr, 1))
            return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    }
    return (ssize_t)n;
}

static void submit_ok(struct vt_grpc_call *call, const void *resp, size_t len)
{
    struct conn *c = call->conn;
    assert(c && !call->responded);
    if (vt_grpc_frame_encode(&call->srv->codec, VT_GRPC_ENC_IDENTITY, 0, resp,
                             len, &call->resp, &call->resp_len)) {
        submit_status(call, 200, VT_GRPC_RESOURCE_EXHAUSTED,
                      "response too large or out of memory", 0);
        return;
    }
    call->responded = 1;
    call_stop_timer(call);
    nghttp2_nv nv[] = {
        {(uint8_t *)":status", (uint8_t *)"200", 7, 3, NGHTTP2_NV_FLAG_NONE},
        {(uint8_t *)"content-type", (uint8_t *)"application/grpc", 12, 16,
         NGHTTP2_NV_FLAG_NONE},
        {(uint8_t *)"grpc-accept-encoding", (uint8_t *)VT_GRPC_ACCEPT_ENCODING,
         20, strlen(VT_GRPC_ACCEPT_ENCODING), NGHTTP2_NV_FLAG_NONE},
    };
    nghttp2_data_provider prd = {.source.ptr = call, .read_callback = resp_read};
    if (nghttp2_submit_response(c->io.h2, call->stream_id, nv, 3, &prd))
        nghttp2_submit_rst_stream(c->io.h2, NGHTTP2_FLAG_NONE, call->stream_id,
                                  NGHTTP2_INTERNAL_ERROR);
}

static void call_deadline_cb(uv_timer_t *t)
{
    struct vt_grpc_call *call = t->data;
    if (!call->conn || call->responded)
        return;
    struct conn *c = call->conn;
    call->stop_req = 1;
    submit_status(call, 200, VT_GRPC_DEADLINE_EXCEEDED, "deadline exceeded", 0);
    vt_grpc_conn_flush(&c->io);
}

/* Headers are complete: judge them before any message byte matters. */
static void call_check_headers(struct vt_grpc_call *call)
{
    vt_grpc_server_t *srv = call->srv;
    if (!call->is_post) {
        submit_status(call, 405, VT_GRPC_INTERNAL, "method must be POST", 0);
        return;
    }
    if (!call->ct_ok) {
        submit_status(call, 415, VT_GRPC_INTERNAL,
                      "content-type must be application/grpc", 0);
        return;
    }
    if (call->enc < 0) {
        submit_status(call, 200, VT_GRPC_UNIMPLEMENTED,
                      "unsupported grpc-encoding", 1);
        return;
    }
    for (size_t i = 0; call->path && i < srv->n_methods; i++) {
        if (strcmp(srv->methods[i].path, call->path) == 0) {
            call->cb = srv->methods[i].cb;
            call->cb_data = srv->methods[i].data;
            break;
        }
    }
    if (!call->cb) {
        submit_status(call, 200, VT_GRPC_UNIMPLEMENTED, "unknown method", 0);
        return;
    }
    if (call->has_timeout && call->timer_init) { /* a pooled call's timer */
        call->deadline = uv_now(srv->loop) + call->timeout_ms;
        uv_timer_start(&call->timer, call_deadline_cb, call->timeout_ms, 0);
    } else if (call->has_timeout) {
        call->timer_init = vt_grpc_deadline_arm(srv->loop, &call->timer,
                                                call->timeout_ms, call_deadline_cb,
                                                call, &call->deadline) == 0;
    }
}

/* END_STREAM: the request is whole. */
static void call_request_done(struct conn *c, struct vt_grpc_call *call)
{
    call->req_done = 1;
    if (call->responded)
        return;
    int st = vt_grpc_reader_finish(&call->reader, &c->srv->codec,
                                   (enum vt_grpc_encoding)call->enc, &call->req,
                                   &call->req_len);
    if (st) {
        submit_status(call, 200, st, call->reader.why, 0);
        return;
    }
    call->refs++; /* the ready queue's reference */
    call->ready_next = NULL;
    if (c->ready_tail)
        c->ready_tail->ready_next = call;
    else
        c->ready_head = call;
    c->ready_tail = call;
}

static void dispatch_ready(struct conn *c)
{
    struct vt_grpc_call *call;
    while ((call = c->ready_head)) {
        c->ready_head = call->ready_next;
        if (!c->ready_head)
            c->ready_tail = NULL;
        if (call->conn && !call->responded) {
            call->held = 1;
            call->refs++;
            c->srv->held_calls++;
            call->cb(call, call->cb_data);
        }
        call_unref(call);
        /* The handler may have closed the server (and so this connection):
         * conn_close drained the queue, the loop ends by itself. */
    }
}

/* ---------------------------------------------------------------- nghttp2 */

static int on_begin_headers(nghttp2_session *h2, const nghttp2_frame *frame,
                            void *user_data)
{
    struct conn *c = user_data;
    if (frame->hd.type != NGHTTP2_HEADERS ||
        frame->headers.cat != NGHTTP2_HCAT_REQUEST)
        return 0;
    struct vt_grpc_call *call = call_new(c->srv);
    if (!call)
        return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    call->srv = c->srv;
    call->conn = c;
    call->stream_id = frame->hd.stream_id;
    call->refs = 1;
    call->enc = VT_GRPC_ENC_IDENTITY;
    vt_grpc_reader_init(&call->reader, c->srv->opts.max_message_bytes);
    if (c->srv->n_pool) {
        c->srv->n_pool--;
        vt_grpc_reader_give(&call->reader, c->srv->pool[c->srv->n_pool].buf,
                            c->srv->pool[c->srv->n_pool].cap);
    }
    call->next = c->calls;
    if (c->calls)
        c->calls->prev = call;
    c->calls = call;
    c->n_streams++;
    nghttp2_session_set_stream_user_data(h2, call->stream_id, call);
    return 0;
}

static int on_header(nghttp2_session *h2, const nghttp2_frame *frame,
                     const uint8_t *name, size_t nlen, const uint8_t *value,
                     size_t vlen, uint8_t flags, void *user_data)
{
    if (frame->hd.type != NGHTTP2_HEADERS ||
        frame->headers.cat != NGHTTP2_HCAT_REQUEST)
        return 0; /* trailers from a client: nothing to learn */
    struct vt_grpc_call *call =
        nghttp2_session_get_stream_user_data(h2, frame->hd.stream_id);
    if (!call)
        return 0;
#define IS(lit) (nlen == sizeof(lit) - 1 && memcmp(name, lit, nlen) == 0)
    if (IS(":path")) {
        free(call->path);
        call->path = strndup((const char *)value, vlen);
        if (!call->path)
            return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    } else if (IS(":method")) {
        call->is_post = vlen == 4 && memcmp(value, "POST", 4) == 0;
    } else if (name[0] == ':') {
        /* :scheme, :authority: not needed */
    } else if (IS("content-type")) {
        call->ct_seen = 1;
        call->ct_ok = vlen >= 16 && memcmp(value, "application/grpc", 16) == 0 &&
                      (vlen == 16 || value[16] == '+' || value[16] == ';');
    } else if (IS("grpc-encoding")) {
        call->enc = vt_grpc_encoding_parse((const char *)value, vlen);
    } else if (IS("grpc-timeout")) {
        call->has_timeout =
            vt_grpc_timeout_parse((const char *)value, vlen, &call->timeout_ms) == 0;
    }
#undef IS
    if (md_append(call, name, nlen, value, vlen))
        return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE; /* resets this stream */
    return 0;
}

static int on_frame_recv(nghttp2_session *h2, const nghttp2_frame *frame,
                         void *user_data)
{
    struct conn *c = user_data;
    if (frame->hd.type != NGHTTP2_HEADERS && frame->hd.type != NGHTTP2_DATA)
        return 0;
    struct vt_grpc_call *call =
        nghttp2_session_get_stream_user_data(h2, frame->hd.stream_id);
    if (!call || !call->conn)
        return 0;
    if (frame->hd.type == NGHTTP2_HEADERS &&
        frame->headers.cat == NGHTTP2_HCAT_REQUEST && !call->responded)
        call_check_headers(call);
    if (frame->hd.flags & NGHTTP2_FLAG_END_STREAM)
        call_request_done(c, call);
    return 0;
}

static int on_data_chunk(nghttp2_session *h2, uint8_t flags, int32_t stream_id,
                         const uint8_t *data, size_t len, void *user_data)
{
    struct vt_grpc_call *call = nghttp2_session_get_stream_user_data(h2, stream_id);
    if (!call || !call->conn || call->responded)
        return 0; /* answered early (error): the rest is discarded */
    int st = vt_grpc_reader_feed(&call->reader, data, len);
    if (st) {
        call->stop_req = 1; /* e.g. 64 MiB more on the way: refuse it */
        submit_status(call, 200, st, call->reader.why, 0);
    }
    return 0;
}

static int on_frame_send(nghttp2_session *h2, const nghttp2_frame *frame,
                         void *user_data)
{
    /* Our final frame went out while the client is still sending a message
     * we refused (too big, malformed, too late): stop it politely instead of
     * reading the rest (RFC 9113 8.1 allows RST_STREAM NO_ERROR here). For
     * errors judged from the headers alone the rest of the (small) request
     * is just discarded: some clients, curl among them, report an RST after
     * a complete response as a failure. */
    if (frame->hd.type != NGHTTP2_HEADERS ||
        !(frame->hd.flags & NGHTTP2_FLAG_END_STREAM))
        return 0;
    struct vt_grpc_call *call =
        nghttp2_session_get_stream_user_data(h2, frame->hd.stream_id);
    if (call && call->conn && !call->req_done && call->stop_req)
        nghttp2_submit_rst_stream(h2, NGHTTP2_FLAG_NONE, frame->hd.stream_id,
                                  NGHTTP2_NO_ERROR);
    return 0;
}

static int on_stream_close(nghttp2_session *h2, int32_t stream_id,
                           uint32_t error_code, void *user_data)
{
    struct conn *c = user_data;
    if (c->io.closing)
        return 0;
    struct vt_grpc_call *call = nghttp2_session_get_stream_user_data(h2, stream_id);
    if (call && call->conn)
        call_detach(call);
    return 0;
}

/* ---------------------------------------------------------------- conn io */

static void conn_handle_closed(uv_handle_t *h)
{
    struct conn *c = h->data;
    if (--c->handles)
        return;
    vt_grpc_server_t *srv = c->srv;
    vt_grpc_conn_release(&c->io);
    if (c->prev)
        c->prev->next = c->next;
    else
        srv->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    srv->n_conns--;
    free(c);
    server_maybe_finish(srv);
}

static void conn_close(struct conn *c)
{
    if (c->io.closing)
        return;
    c->io.closing = 1;
    while (c->ready_head) {
        struct vt_grpc_call *call = c->ready_head;
        c->ready_head = call->ready_next;
        call_unref(call);
    }
    c->ready_tail = NULL;
    while (c->calls)
        call_detach(c->calls);
    uv_close((uv_handle_t *)&c->io.tcp, conn_handle_closed);
    uv_close((uv_handle_t *)&c->idle, conn_handle_closed);
}

/* Every I/O failure only ends this connection. */
static void conn_io_fail(struct vt_grpc_conn *io, const char *why)
{
    conn_close(VT_GRPC_CONTAINER_OF(io, struct conn, io));
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    struct conn *c = s->data;
    if (nread < 0) {
        conn_close(c);
        return;
    }
    if (nread == 0 || c->io.closing)
        return;
    c->last_active = uv_now(c->srv->loop);
    ssize_t rv = vt_grpc_conn_recv(&c->io, buf, nread);
    if (rv < 0) {
        /* Not HTTP/2 or a fatal protocol error: this connection only. */
        vt_debug("grpc: closing connection: %s", nghttp2_strerror((int)rv));
        conn_close(c);
        return;
    }
    dispatch_ready(c);
    vt_grpc_conn_flush(&c->io);
}

static void on_idle(uv_timer_t *t)
{
    struct conn *c = t->data;
    uint64_t idle = c->srv->opts.idle_timeout_ms;
    if (c->io.closing || c->n_streams)
        return;
    if (uv_now(c->srv->loop) - c->last_active >= idle) {
        nghttp2_session_terminate_session(c->io.h2, NGHTTP2_NO_ERROR);
        /* GOAWAY goes out, then the connection closes */
        vt_grpc_conn_flush(&c->io);
    }
}

static void on_connection(uv_stream_t *server, int status)
{
    vt_grpc_server_t *srv = server->data;
    if (status < 0 || srv->closing)
        return;
    struct conn *c = calloc(1, sizeof(*c));
    if (!c)
        return;
    c->srv = srv;
    vt_grpc_conn_init(&c->io, srv->loop, conn_io_fail);
    uv_timer_init(srv->loop, &c->idle);
    c->io.tcp.data = c->idle.data = c;
    c->handles = 2;
    c->next = srv->conns;
    if (srv->conns)
        srv->conns->prev = c;
    srv->conns = c;
    srv->n_conns++;
    c->last_active = uv_now(srv->loop);
    if (nghttp2_session_server_new(&c->io.h2, srv->cbs, c)) {
        c->io.h2 = NULL;
        conn_close(c);
        return;
    }
    if (uv_accept(server, (uv_stream_t *)&c->io.tcp) ||
        srv->n_conns > srv->opts.max_connections) {
        if (srv->n_conns > srv->opts.max_connections)
            vt_warn("grpc: connection limit %u reached, refusing",
                    srv->opts.max_connections);
        conn_close(c);
        return;
    }
    uint64_t idle = srv->opts.idle_timeout_ms;
    uint64_t tick = idle / 4 ? idle / 4 : 1;
    uv_timer_start(&c->idle, on_idle, tick, tick);
    nghttp2_settings_entry iv[] = {
        {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, srv->opts.max_concurrent_streams},
        {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, VT_GRPC_STREAM_WINDOW},
        {NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, MAX_METADATA},
    };
    if (vt_grpc_conn_start(&c->io, iv, 3, on_read)) {
        conn_close(c);
        return;
    }
    vt_grpc_conn_flush(&c->io);
}

/* ---------------------------------------------------------------- server */

static void server_free(vt_grpc_server_t *srv)
{
    for (size_t i = 0; i < srv->n_methods; i++)
        free(srv->methods[i].path);
    free(srv->methods);
    nghttp2_session_callbacks_del(srv->cbs);
    vt_grpc_codec_free(&srv->codec);
    for (uint32_t i = 0; i < srv->n_pool; i++)
        free(srv->pool[i].buf);
    free(srv);
}

static void server_maybe_finish(vt_grpc_server_t *srv)
{
    if (!srv->closing || srv->listener_open || srv->n_conns)
        return;
    if (!srv->close_done) {
        srv->close_done = 1;
        if (srv->close_cb)
            srv->close_cb(srv, srv->close_data);
    }
    if (srv->held_calls == 0)
        server_free(srv);
}

int vt_grpc_server_init(uv_loop_t *loop, vt_grpc_server_t **out,
                        const struct vt_grpc_server_opts *opts)
{
    if (!loop || !out)
        return UV_EINVAL;
    vt_grpc_server_t *srv = calloc(1, sizeof(*srv));
    if (!srv)
        return UV_ENOMEM;
    srv->loop = loop;
    if (opts)
        srv->opts = *opts;
    if (!srv->opts.max_message_bytes)
        srv->opts.max_message_bytes = VT_GRPC_DEFAULT_MAX_MESSAGE;
    if (!srv->opts.max_concurrent_streams)
        srv->opts.max_concurrent_streams = 100;
    if (!srv->opts.max_connections)
        srv->opts.max_connections = 1024;
    if (!srv->opts.idle_timeout_ms)
        srv->opts.idle_timeout_ms = 300000;
    if (nghttp2_session_callbacks_new(&srv->cbs)) {
        free(srv);
        return UV_ENOMEM;
    }
    nghttp2_session_callbacks_set_on_begin_headers_callback(srv->cbs, on_begin_headers);
    nghttp2_session_callbacks_set_on_header_callback(srv->cbs, on_header);
    nghttp2_session_callbacks_set_on_frame_recv_callback(srv->cbs, on_frame_recv);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(srv->cbs, on_data_chunk);
    nghttp2_session_callbacks_set_on_frame_send_callback(srv->cbs, on_frame_send);
    nghttp2_session_callbacks_set_on_stream_close_callback(srv->cbs, on_stream_close);
    /* The listener handle exists from now on, so close always completes
     * through the loop (never synchronously). */
    uv_tcp_init(loop, &srv->listener);
    srv->listener.data = srv;
    srv->listener_open = 1;
    *out = srv;
    return 0;
}

int vt_grpc_server_register(vt_grpc_server_t *srv, const char *path,
                            vt_grpc_handler_cb handler, void *data)
{
    if (!srv || !path || path[0] != '/' || !handler)
        return UV_EINVAL;
    for (size_t i = 0; i < srv->n_methods; i++) {
        if (strcmp(srv->methods[i].path, path) == 0) {
            srv->methods[i].cb = handler;
            srv->methods[i].data = data;
            return 0;
        }
    }
    struct method *m = realloc(srv->methods, (srv->n_methods + 1) * sizeof(*m));
    if (!m)
        return UV_ENOMEM;
    srv->methods = m;
    char *p = strdup(path);
    if (!p)
        return UV_ENOMEM;
    m[srv->n_methods++] = (struct method){p, handler, data};
    return 0;
}

/* "host:port", "[v6]:port", "localhost:port", ":port" → sockaddr. */
static int parse_addr(const char *addr, struct sockaddr_storage *ss)
{
    const char *colon = strrchr(addr, ':');
    if (!colon || !colon[1])
        return UV_EINVAL;
    char *end;
    long port = strtol(colon + 1, &end, 10);
    if (*end || port < 0 || port > 65535)
        return UV_EINVAL;
    char host[64];
    size_t hl = (size_t)(colon - addr);
    if (hl >= sizeof(host))
        return UV_EINVAL;
    memcpy(host, addr, hl);
    host[hl] = 0;
    if (host[0] == '[') {
        if (hl < 2 || host[hl - 1] != ']')
            return UV_EINVAL;
        host[hl - 1] = 0;
        return uv_ip6_addr(host + 1, (int)port, (struct sockaddr_in6 *)ss);
    }
    if (!host[0] || strcmp(host, "*") == 0)
        strcpy(host, "0.0.0.0");
    else if (strcmp(host, "localhost") == 0)
        strcpy(host, "127.0.0.1");
    return uv_ip4_addr(host, (int)port, (struct sockaddr_in *)ss);
}

int vt_grpc_server_listen(vt_grpc_server_t *srv, const char *addr)
{
    if (!srv || !addr || srv->listening || srv->closing)
        return UV_EINVAL;
    struct sockaddr_storage ss;
    int rc = parse_addr(addr, &ss);
    if (rc)
        return rc;
    if ((rc = uv_tcp_bind(&srv->listener, (struct sockaddr *)&ss, 0)))
        return rc;
    if ((rc = uv_listen((uv_stream_t *)&srv->listener, 128, on_connection)))
        return rc;
    struct sockaddr_storage bound;
    int len = sizeof(bound);
    if ((rc = uv_tcp_getsockname(&srv->listener, (struct sockaddr *)&bound, &len)))
        return rc;
    srv->port = ntohs(bound.ss_family == AF_INET6
                          ? ((struct sockaddr_in6 *)&bound)->sin6_port
                          : ((struct sockaddr_in *)&bound)->sin_port);
    srv->listening = 1;
    return 0;
}

int vt_grpc_server_port(const vt_grpc_server_t *srv)
{
    return srv && srv->listening ? srv->port : 0;
}

uint32_t vt_grpc_server_connections(const vt_grpc_server_t *srv)
{
    return srv->n_conns;
}

static void listener_closed(uv_handle_t *h)
{
    vt_grpc_server_t *srv = h->data;
    srv->listener_open = 0;
    server_maybe_finish(srv);
}

void vt_grpc_server_close(vt_grpc_server_t *srv, vt_grpc_server_close_cb cb,
                          void *data)
{
    assert(!srv->closing);
    srv->closing = 1;
    srv->close_cb = cb;
    srv->close_data = data;
    while (srv->free_calls) { /* (closing: no call is pooled from here on) */
        struct vt_grpc_call *call = srv->free_calls;
        srv->free_calls = call->next;
        call_free(call);
    }
    srv->n_free_calls = 0;
    uv_close((uv_handle_t *)&srv->listener, listener_closed);
    for (struct conn *c = srv->conns; c; c = c->next)
        conn_close(c);
}

/* ---------------------------------------------------------------- call api */

const char *vt_grpc_call_path(const vt_grpc_call_t *call)
{
    return call->path ? call->path : "";
}

const char *vt_grpc_call_metadata(const vt_grpc_call_t *call, const char *name)
{
    size_t off = 0;
    while (off < call->md_len) {
        const char *n = call->md + off;
        size_t nl = strlen(n);
        const char *v = n + nl + 1;
        if (strcmp(n, name) == 0)
            return v;
        off += nl + 1 + strlen(v) + 1;
    }
    return NULL;
}

const uint8_t *vt_grpc_call_request(const vt_grpc_call_t *call, size_t *len)
{
    *len = call->req_len;
    return call->req ? call->req : (const uint8_t *)"";
}

const uint8_t *vt_grpc_call_request_encoded(const vt_grpc_call_t *call, size_t *len,
                                            enum vt_grpc_encoding *enc)
{
    const struct vt_grpc_reader *r = &call->reader;
    if (!call->req || r->len <= VT_GRPC_PREFIX || r->buf[0] != 1)
        return NULL;
    *len = r->len - VT_GRPC_PREFIX;
    *enc = (enum vt_grpc_encoding)call->enc;
    return r->buf + VT_GRPC_PREFIX;
}

int64_t vt_grpc_call_remaining_ms(const vt_grpc_call_t *call)
{
    if (!call->has_timeout)
        return -1;
    uint64_t now = uv_now(call->srv->loop);
    return now >= call->deadline ? 0 : (int64_t)(call->deadline - now);
}

bool vt_grpc_call_alive(const vt_grpc_call_t *call)
{
    return call->conn && !call->responded;
}

int vt_grpc_respond(vt_grpc_call_t *call, int status, const char *message,
                    const void *resp, size_t len)
{
    assert(call->held);
    vt_grpc_server_t *srv = call->srv;
    struct conn *c = call->conn;
    int rc = 0;
    call->held = 0;
    assert(srv->held_calls > 0);
    srv->held_calls--;
    if (!c || call->responded) {
        rc = UV_ECANCELED;
    } else {
        if (status == VT_GRPC_OK)
            submit_ok(call, resp, len);
        else
            submit_status(call, 200, status, message, 0);
        if (srv->corked) {
            if (!c->flush_wanted) {
                c->flush_wanted = 1;
                c->flush_next = srv->to_flush;
                srv->to_flush = c;
            }
        } else
            vt_grpc_conn_flush(&c->io); /* no-op while inside mem_recv: flushed after it */
    }
    call_unref(call);
    if (srv->close_done && srv->held_calls == 0 && !srv->corked)
        server_free(srv);
    return rc;
}

void vt_grpc_server_cork(vt_grpc_server_t *srv)
{
    srv->corked = 1;
}

/* (A connection on to_flush is not freed before this: connections are
 * freed by their handles' close callbacks, in a later loop iteration.) */
void vt_grpc_server_uncork(vt_grpc_server_t *srv)
{
    srv->corked = 0;
    for (struct conn *c = srv->to_flush, *next; c; c = next) {
        next = c->flush_next;
        c->flush_wanted = 0;
        vt_grpc_conn_flush(&c->io);
    }
    srv->to_flush = NULL;
    if (srv->close_done && srv->held_calls == 0)
        server_free(srv);
}
