/*
 * http_server.c - see http_server.h.
 *
 * One connection is a small state machine around a paused/resumed
 * http_parser:
 *
 *   READING --message complete--> PENDING --vt_http_respond--> WRITING
 *      ^                                                          |
 *      +------------ write done, keep-alive ---------------------+
 *                     write done, close  --> CLOSING (FIN sent, input
 *                                            drained until EOF/deadline)
 *
 * The parser is paused in on_message_complete, so a pipelined second request
 * is never parsed before the first is answered; bytes that arrive meanwhile
 * are kept in conn->in (bounded; reading stops when it is full) and fed to
 * the parser once the response has been written.
 *
 * Ownership of a request: while it is being parsed the connection owns it;
 * from dispatch until vt_http_respond the handler owns it and the connection
 * only points at it (conn->pending). A connection that dies meanwhile clears
 * req->conn, which is how vt_http_respond knows it has nothing to send; the
 * request is freed by whoever holds it last. Answered requests go back to the
 * connection as its `spare`, so keep-alive traffic reuses buffers instead of
 * allocating per request.
 *
 * Timeouts are enforced by one sweep timer per server walking the open
 * connections' deadlines, which costs nothing per read.
 */
#include "http_server.h"

#include <assert.h>
#include <errno.h>
#include <http_parser.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "log.h"

#define DEFAULT_MAX_HEADER (16u * 1024)
#define DEFAULT_MAX_BODY (1024u * 1024)
#define DEFAULT_MAX_CONNS 1024u
#define DEFAULT_IDLE_MS 30000u
#define READ_BUF_SIZE (64u * 1024)
#define LINGER_MAX_MS 2000u       /* drain time after a closing response */
#define SPARE_BODY_KEEP (256u * 1024) /* larger body buffers are not kept */

enum conn_state { C_READING, C_PENDING, C_WRITING, C_CLOSING };
enum last_cb { L_URL, L_FIELD, L_VALUE };

struct hdr {
    uint32_t name, value; /* offsets of NUL-terminated strings in the arena */
};

struct vt_http_request {
    struct vt_http_conn *conn; /* NULL once the connection is gone */
    char *arena;               /* url \0 (name \0 value \0)* */
    size_t alen, acap;
    uint32_t query; /* offset of the query string in the arena */
    struct hdr *hdrs;
    size_t nhdrs, hcap;
    char *body;
    size_t blen, bcap;
    char *extra; /* extra response header lines */
    size_t elen, ecap;
    const char *method;
    enum last_cb last;
    bool head;
    bool keep_alive;
    bool http10;
};

struct vt_http_conn {
    uv_tcp_t tcp; /* first: the handle's data points at the conn anyway */
    vt_http_server *server;
    struct vt_http_conn *prev, *next;
    http_parser parser;
    vt_http_request *req;     /* being parsed (owned) */
    vt_http_request *pending; /* handed to the handler (not owned) */
    vt_http_request *spare;   /* answered, kept for reuse (owned) */
    char *in;                 /* unparsed input while the parser is paused */
    size_t in_len, in_cap;
    char *out; /* the response being written */
    size_t out_len, out_cap;
    uv_write_t write_req;
    uv_write_t cont_req;
    uv_shutdown_t shutdown_req;
    uint64_t deadline; /* uv_now() ms; 0 = none */
    enum conn_state state;
    int err_status;     /* set by a parser callback that rejects the request */
    bool clock_running; /* the current request's deadline is set */
    bool in_body;
    bool eof;           /* the client half-closed */
    bool reading;
    bool closing;       /* uv_close called */
    bool keep_after;    /* keep the connection after this write */
};

/* ---- small buffers */

static int grow(char **p, size_t *cap, size_t need)
{
    if (need <= *cap)
        return 0;
    size_t c = *cap ? *cap : 256;
    while (c < need)
        c *= 2;
    char *n = realloc(*p, c);
    if (!n)
        return -ENOMEM;
    *p = n;
    *cap = c;
    return 0;
}

static int append(char **p, size_t *len, size_t *cap, const void *data, size_t n)
{
    if (grow(p, cap, *len + n + 1) != 0)
        return -ENOMEM;
    memcpy(*p + *len, data, n);
    *len += n;
    (*p)[*len] = '\0';
    return 0;
}

/* ---- requests */

static void request_free(vt_http_request *req)
{
    if (!req)
        return;
    free(req->arena);
    free(req->hdrs);
    free(req->body);
    free(req->extra);
    free(req);
}

static void request_reset(vt_http_request *req)
{
    req->conn = NULL;
    req->alen = req->nhdrs = req->blen = req->elen = 0;
    req->query = 0;
    req->method = "GET";
    req->last = L_URL;
    req->head = req->keep_alive = req->http10 = false;
    if (req->bcap > SPARE_BODY_KEEP) {
        free(req->body);
        req->body = NULL;
        req->bcap = 0;
    }
}


/* Append to the request-head arena, enforcing max_header_bytes. */
static int arena_put(struct vt_http_conn *c, const char *data, size_t n)
{
    vt_http_request *req = c->req;
    if (req->alen + n > c->server->opts.max_header_bytes) {
        c->err_status = 431;
        return -1;
    }
    if (append(&req->arena, &req->alen, &req->acap, data, n) != 0) {
        c->err_status = 503;
        return -1;
    }
    return 0;
}

/* End the string being accumulated (url, header name or value). */
static int arena_end(struct vt_http_conn *c)
{
    vt_http_request *req = c->req;
    if (req->last == L_VALUE && req->nhdrs > 0) {
        /* Trim optional trailing whitespace of a header value. */
        size_t start = req->hdrs[req->nhdrs - 1].value;
        while (req->alen > start &&
               (req->arena[req->alen - 1] == ' ' || req->arena[req->alen - 1] == '\t'))
            req->alen--;
    }
    return arena_put(c, "", 1);
}

/* ---- connection plumbing (forward declarations) */

static void conn_close(struct vt_http_conn *c);
static void conn_write_out(struct vt_http_conn *c);
static void conn_feed_pending(struct vt_http_conn *c);
static void conn_fail(struct vt_http_conn *c, int status);

static struct vt_http_conn *conn_of(http_parser *p) { return p->data; }

/* ---- http_parser callbacks */

static int on_message_begin(http_parser *p)
{
    struct vt_http_conn *c = conn_of(p);
    if (!c->req) {
        if (c->spare) {
            c->req = c->spare;
            c->spare = NULL;
        } else if (!(c->req = calloc(1, sizeof *c->req))) {
            c->err_status = 503;
            return -1;
        }
    }
    request_reset(c->req);
    return 0;
}

static int on_url(http_parser *p, const char *at, size_t n)
{
    return arena_put(conn_of(p), at, n);
}

static int on_header_field(http_parser *p, const char *at, size_t n)
{
    struct vt_http_conn *c = conn_of(p);
    vt_http_request *req = c->req;
    if (req->last != L_FIELD) {
        if (arena_end(c) != 0)
            return -1;
        if (req->nhdrs == req->hcap) {
            size_t cap = req->hcap ? req->hcap * 2 : 16;
            struct hdr *h = realloc(req->hdrs, cap * sizeof *h);
            if (!h) {
                c->err_status = 503;
                return -1;
            }
            req->hdrs = h;
            req->hcap = cap;
        }
        req->hdrs[req->nhdrs].name = (uint32_t)req->alen;
        req->hdrs[req->nhdrs].value = (uint32_t)req->alen; /* until a value comes */
        req->nhdrs++;
        req->last = L_FIELD;
    }
    return arena_put(c, at, n);
}

static int on_header_value(http_parser *p, const char *at, size_t n)
{
    struct vt_http_conn *c = conn_of(p);
    vt_http_request *req = c->req;
    if (req->last != L_VALUE) {
        assert(req->last == L_FIELD && req->nhdrs > 0);
        if (arena_end(c) != 0)
            return -1;
        req->hdrs[req->nhdrs - 1].value = (uint32_t)req->alen;
        req->last = L_VALUE;
    }
    return arena_put(c, at, n);
}

/* Writes on a stream complete in order and the next request is parsed only
 * after the previous response's write completed, so cont_req is never in
 * use twice. */
static void send_continue(struct vt_http_conn *c)
{
    static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
    uv_buf_t b = uv_buf_init((char *)cont, sizeof cont - 1);
    (void)uv_write(&c->cont_req, (uv_stream_t *)&c->tcp, &b, 1, NULL);
}

static int on_headers_complete(http_parser *p)
{
    struct vt_http_conn *c = conn_of(p);
    vt_http_request *req = c->req;
    bool had_value = req->last == L_VALUE;
    if (arena_end(c) != 0)
        return -1;
    if (req->nhdrs > 0 && !had_value) /* a name without value: treat value as "" */
        req->hdrs[req->nhdrs - 1].value = (uint32_t)(req->alen - 1);

    /* Split the target into path and query; drop a fragment. */
    char *url = req->arena;
    size_t ulen = strlen(url);
    char *hash = strchr(url, '#');
    if (hash) {
        *hash = '\0';
        ulen = (size_t)(hash - url);
    }
    char *q = strchr(url, '?');
    if (q) {
        *q = '\0';
        req->query = (uint32_t)(q + 1 - url);
    } else {
        req->query = (uint32_t)ulen; /* the terminating NUL: "" */
    }
    if (url[0] == '\0') {
        c->err_status = 400;
        return -1;
    }

    if (p->http_major != 1) {
        c->err_status = 505;
        return -1;
    }
    req->method = http_method_str((enum http_method)p->method);
    req->head = p->method == HTTP_HEAD;
    req->http10 = p->http_major == 1 && p->http_minor == 0;
    c->in_body = true;

    uint64_t clen = p->content_length;
    if (clen != ULLONG_MAX && clen > c->server->opts.max_body_bytes) {
        c->err_status = 413;
        return -1;
    }
    const char *expect = vt_http_request_header(req, "Expect");
    if (expect && strcasecmp(expect, "100-continue") == 0 && !req->http10)
        send_continue(c);
    return 0;
}

static int on_body(http_parser *p, const char *at, size_t n)
{
    struct vt_http_conn *c = conn_of(p);
    vt_http_request *req = c->req;
    if (req->blen + n > c->server->opts.max_body_bytes) {
        c->err_status = 413;
        return -1;
    }
    if (append(&req->body, &req->blen, &req->bcap, at, n) != 0) {
        c->err_status = 503;
        return -1;
    }
    return 0;
}

static int on_message_complete(http_parser *p)
{
    struct vt_http_conn *c = conn_of(p);
    c->req->keep_alive = http_should_keep_alive(p) && !p->upgrade;
    c->in_body = false;
    http_parser_pause(p, 1); /* one request at a time */
    return 0;
}

static const http_parser_settings parser_settings = {
    .on_message_begin = on_message_begin,
    .on_url = on_url,
    .on_header_field = on_header_field,
    .on_header_value = on_header_value,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
};

/* ---- dispatch */

static void dispatch(struct vt_http_conn *c)
{
    vt_http_server *s = c->server;
    vt_http_request *req = c->req;
    assert(req && !c->pending && c->state == C_READING);
    c->req = NULL;
    c->pending = req;
    req->conn = c;
    c->state = C_PENDING;
    c->deadline = 0; /* the handler takes as long as it takes */
    c->clock_running = false;
    s->stats.requests++;
    s->opts.handler(req, s->opts.data);
}

/*
 * Feed bytes to the parser; returns how many it consumed. May dispatch a
 * request (parser paused), or fail the connection on a parse error (then all
 * bytes count as consumed).
 */
static size_t feed(struct vt_http_conn *c, const char *data, size_t len)
{
    assert(c->state == C_READING);
    size_t n = http_parser_execute(&c->parser, &parser_settings, data, len);
    enum http_errno e = HTTP_PARSER_ERRNO(&c->parser);
    if (e == HPE_PAUSED) {
        dispatch(c);
        return n;
    }
    if (e != HPE_OK) {
        if (e == HPE_HEADER_OVERFLOW) /* http_parser's own cap (80 KiB) */
            c->err_status = 431;
        conn_fail(c, c->err_status ? c->err_status : 400);
        return len;
    }
    return n;
}

/* Keep unparsed bytes; stop reading when more than a request head waits. */
static void conn_stash(struct vt_http_conn *c, const char *data, size_t n)
{
    if (n == 0)
        return;
    if (append(&c->in, &c->in_len, &c->in_cap, data, n) != 0) {
        conn_close(c);
        return;
    }
    if (c->in_len > c->server->opts.max_header_bytes + READ_BUF_SIZE && c->reading) {
        uv_read_stop((uv_stream_t *)&c->tcp);
        c->reading = false;
    }
}

/* ---- libuv callbacks */

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    struct vt_http_conn *c = h->data;
    /* One buffer per server: every read is consumed or copied at once. */
    *buf = uv_buf_init(c->server->read_buf, (unsigned)c->server->read_buf_size);
}

static void on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
    struct vt_http_conn *c = stream->data;
    vt_http_server *s = c->server;
    if (c->closing)
        return;
    if (nread < 0) {
        if (nread != UV_EOF || c->state == C_READING || c->state == C_CLOSING) {
            conn_close(c); /* idle, mid-request, draining, or a reset */
            return;
        }
        /* Half-close while a response is pending or being written: answer,
         * then close. */
        c->eof = true;
        uv_read_stop(stream);
        c->reading = false;
        return;
    }
    if (nread == 0)
        return;
    if (c->state == C_CLOSING || (c->state == C_WRITING && !c->keep_after))
        return; /* draining after the final response */
    if (c->state != C_READING || c->in_len > 0) {
        conn_stash(c, buf->base, (size_t)nread);
        return;
    }
    uint64_t now = uv_now(s->loop);
    if (!c->clock_running) {
        /* A request's clock starts at its first byte and is not pushed back by
         * more header bytes: trickling headers gets a client nowhere. */
        c->clock_running = true;
        c->deadline = now + s->opts.idle_timeout_ms;
    }
    size_t n = feed(c, buf->base, (size_t)nread);
    if (c->closing || c->state == C_CLOSING || c->state == C_WRITING) {
        if (c->state == C_WRITING && c->keep_after) /* answered synchronously */
            conn_stash(c, buf->base + n, (size_t)nread - n);
        return;
    }
    if (c->state == C_PENDING) {
        conn_stash(c, buf->base + n, (size_t)nread - n);
        return;
    }
    if (c->in_body) /* body bytes are progress */
        c->deadline = now + s->opts.idle_timeout_ms;
}

/* Runs after every close callback: the server's own close callback comes
 * once the last handle is gone. */
static void server_maybe_done(vt_http_server *s)
{
    if (!s->closing || s->pending_closes > 0 || !s->read_buf)
        return;
    free(s->read_buf);
    s->read_buf = NULL; /* also marks "done" */
    vt_http_close_cb cb = s->close_cb;
    s->close_cb = NULL;
    if (cb)
        cb(s);
}

static void on_conn_closed(uv_handle_t *h)
{
    struct vt_http_conn *c = h->data;
    vt_http_server *s = c->server;
    assert(!c->pending);
    request_free(c->req);
    request_free(c->spare);
    free(c->in);
    free(c->out);
    free(c);
    assert(s->pending_closes > 0);
    s->pending_closes--;
    server_maybe_done(s);
}

static void conn_close(struct vt_http_conn *c)
{
    if (c->closing)
        return;
    vt_http_server *s = c->server;
    c->closing = true;
    if (c->pending) { /* the handler still owns it; it will find conn == NULL */
        c->pending->conn = NULL;
        c->pending = NULL;
    }
    if (c->prev)
        c->prev->next = c->next;
    else
        s->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    assert(s->stats.connections_open > 0);
    s->stats.connections_open--;
    s->pending_closes++;
    uv_close((uv_handle_t *)&c->tcp, on_conn_closed);
}

static void on_shutdown(uv_shutdown_t *r, int status)
{
    struct vt_http_conn *c = r->handle->data;
    if (status < 0)
        conn_close(c);
}

/* Send FIN and drain what the client still sends (so that closing with unread
 * input does not turn into a RST that destroys the response), until EOF or a
 * short deadline. */
static void conn_linger(struct vt_http_conn *c)
{
    vt_http_server *s = c->server;
    c->state = C_CLOSING;
    uint64_t linger = s->opts.idle_timeout_ms < LINGER_MAX_MS ? s->opts.idle_timeout_ms
                                                              : LINGER_MAX_MS;
    c->deadline = uv_now(s->loop) + linger;
    if (c->eof || uv_shutdown(&c->shutdown_req, (uv_stream_t *)&c->tcp, on_shutdown) != 0) {
        conn_close(c);
        return;
    }
    if (!c->reading && uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) == 0)
        c->reading = true;
}

static void on_write(uv_write_t *w, int status)
{
    struct vt_http_conn *c = w->data;
    if (c->closing)
        return;
    if (status < 0) {
        conn_close(c);
        return;
    }
    if (c->out_cap > SPARE_BODY_KEEP) { /* do not keep a big response buffer */
        free(c->out);
        c->out = NULL;
        c->out_cap = 0;
    }
    c->out_len = 0;
    if (!c->keep_after || c->server->closing) {
        conn_linger(c);
        return;
    }
    c->state = C_READING;
    c->deadline = uv_now(c->server->loop) + c->server->opts.idle_timeout_ms;
    http_parser_pause(&c->parser, 0);
    conn_feed_pending(c);
}

/* Parse stashed input after a response; resume reading when it runs dry. */
static void conn_feed_pending(struct vt_http_conn *c)
{
    if (c->in_len > 0) {
        c->clock_running = true;
        c->deadline = uv_now(c->server->loop) + c->server->opts.idle_timeout_ms;
        size_t n = feed(c, c->in, c->in_len);
        if (c->closing || c->state == C_CLOSING ||
            (c->state == C_WRITING && !c->keep_after)) {
            c->in_len = 0;
            return;
        }
        memmove(c->in, c->in + n, c->in_len - n);
        c->in_len -= n;
    }
    if (c->state == C_READING && c->in_len > 0) {
        /* Everything stashed was consumed only partially without a pause:
         * cannot happen, the parser takes all it is given unless paused. */
        assert(0 && "parser left input without pausing");
    }
    if (!c->reading && !c->eof &&
        uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) == 0)
        c->reading = true;
    if (c->eof && c->state == C_READING)
        conn_close(c); /* client half-closed and nothing is left to answer */
}

static void conn_write_out(struct vt_http_conn *c)
{
    c->state = C_WRITING;
    c->deadline = uv_now(c->server->loop) + c->server->opts.idle_timeout_ms;
    c->write_req.data = c;
    uv_buf_t b = uv_buf_init(c->out, (unsigned)c->out_len);
    if (uv_write(&c->write_req, (uv_stream_t *)&c->tcp, &b, 1, on_write) != 0)
        conn_close(c);
}

/* Build status line + headers into c->out. */
static int build_head(struct vt_http_conn *c, int status, const char *ctype, size_t len,
                      const char *extra, size_t elen, bool keep, bool http10)
{
    char head[512];
    bool bodyless = status < 200 || status == 204 || status == 304;
    int n = snprintf(head, sizeof head, "HTTP/1.1 %d %s\r\n", status, vt_http_status_text(status));
    if (!bodyless) {
        if (ctype && len > 0)
            n += snprintf(head + n, sizeof head - (size_t)n, "Content-Type: %.200s\r\n", ctype);
        n += snprintf(head + n, sizeof head - (size_t)n, "Content-Length: %zu\r\n", len);
    }
    if (!keep)
        n += snprintf(head + n, sizeof head - (size_t)n, "Connection: close\r\n");
    else if (http10)
        n += snprintf(head + n, sizeof head - (size_t)n, "Connection: keep-alive\r\n");
    assert(n > 0 && (size_t)n < sizeof head);
    c->out_len = 0;
    if (append(&c->out, &c->out_len, &c->out_cap, head, (size_t)n) != 0 ||
        (elen && append(&c->out, &c->out_len, &c->out_cap, extra, elen) != 0) ||
        append(&c->out, &c->out_len, &c->out_cap, "\r\n", 2) != 0)
        return -ENOMEM;
    return 0;
}

/* Reject the request being read with `status` and close after the answer. */
static void conn_fail(struct vt_http_conn *c, int status)
{
    vt_http_server *s = c->server;
    if (status == 400 || status == 505)
        s->stats.bad_requests++;
    else if (status == 413 || status == 431)
        s->stats.too_large++;
    c->in_len = 0;
    c->in_body = false;
    char body[128];
    int blen = snprintf(body, sizeof body, "%d %s\n", status, vt_http_status_text(status));
    c->keep_after = false;
    if (build_head(c, status, "text/plain; charset=utf-8", (size_t)blen, NULL, 0, false,
                   false) != 0 ||
        append(&c->out, &c->out_len, &c->out_cap, body, (size_t)blen) != 0) {
        conn_close(c);
        return;
    }
    conn_write_out(c);
}

/* ---- accept, sweep, listen, close */

static void on_reject_closed(uv_handle_t *h)
{
    vt_http_server *s = h->data;
    _Static_assert(offsetof(struct vt_http_conn, tcp) == 0, "tcp first: h is the conn");
    free(h);
    assert(s->pending_closes > 0);
    s->pending_closes--;
    server_maybe_done(s);
}

static void on_connection(uv_stream_t *listener, int status)
{
    vt_http_server *s = listener->data;
    if (status < 0) {
        vt_warn("http: accept failed: %s", uv_strerror(status));
        return;
    }
    struct vt_http_conn *c = calloc(1, sizeof *c);
    if (!c) {
        vt_error("http: out of memory accepting a connection");
        return;
    }
    uv_tcp_init(s->loop, &c->tcp);
    if (uv_accept(listener, (uv_stream_t *)&c->tcp) != 0) {
        c->tcp.data = s;
        s->pending_closes++;
        uv_close((uv_handle_t *)&c->tcp, on_reject_closed);
        return;
    }
    s->stats.connections_accepted++;
    if (s->closing || s->stats.connections_open >= s->opts.max_connections) {
        s->stats.connections_rejected++;
        c->tcp.data = s;
        s->pending_closes++;
        uv_close((uv_handle_t *)&c->tcp, on_reject_closed);
        return;
    }
    c->tcp.data = c;
    c->server = s;
    c->next = s->conns;
    if (s->conns)
        s->conns->prev = c;
    s->conns = c;
    s->stats.connections_open++;
    http_parser_init(&c->parser, HTTP_REQUEST);
    c->parser.data = c;
    c->state = C_READING;
    c->deadline = uv_now(s->loop) + s->opts.idle_timeout_ms;
    uv_tcp_nodelay(&c->tcp, 1);
    if (uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) != 0) {
        conn_close(c);
        return;
    }
    c->reading = true;
}

static void on_sweep(uv_timer_t *t)
{
    vt_http_server *s = t->data;
    uint64_t now = uv_now(s->loop);
    struct vt_http_conn *c = s->conns, *next;
    for (; c; c = next) {
        next = c->next; /* conn_close unlinks c */
        if (c->deadline && now >= c->deadline) {
            if (c->state != C_CLOSING)
                s->stats.connections_timed_out++;
            conn_close(c);
        }
    }
}

int vt_http_server_init(uv_loop_t *loop, vt_http_server *s,
                        const struct vt_http_server_options *opts)
{
    if (!loop || !s || !opts || !opts->handler)
        return UV_EINVAL;
    memset(s, 0, sizeof *s);
    s->loop = loop;
    s->opts = *opts;
    if (!s->opts.max_header_bytes)
        s->opts.max_header_bytes = DEFAULT_MAX_HEADER;
    if (!s->opts.max_body_bytes)
        s->opts.max_body_bytes = DEFAULT_MAX_BODY;
    if (!s->opts.max_connections)
        s->opts.max_connections = DEFAULT_MAX_CONNS;
    if (!s->opts.idle_timeout_ms)
        s->opts.idle_timeout_ms = DEFAULT_IDLE_MS;
    /* Offsets into the head arena are 32-bit. */
    if (s->opts.max_header_bytes > UINT32_MAX / 2)
        s->opts.max_header_bytes = UINT32_MAX / 2;
    s->read_buf_size = READ_BUF_SIZE;
    s->read_buf = malloc(s->read_buf_size);
    if (!s->read_buf)
        return UV_ENOMEM;
    int rc = uv_tcp_init(loop, &s->listener);
    if (rc != 0) {
        free(s->read_buf);
        return rc;
    }
    uv_timer_init(loop, &s->sweep);
    s->listener.data = s;
    s->sweep.data = s;
    return 0;
}

static int parse_addr(const char *addr, struct sockaddr_storage *ss)
{
    if (!addr)
        return UV_EINVAL;
    char host[64];
    const char *colon;
    if (addr[0] == '[') {
        const char *end = strchr(addr, ']');
        if (!end || end[1] != ':' || (size_t)(end - addr - 1) >= sizeof host)
            return UV_EINVAL;
        memcpy(host, addr + 1, (size_t)(end - addr - 1));
        host[end - addr - 1] = '\0';
        colon = end + 1;
    } else {
        colon = strrchr(addr, ':');
        if (!colon || (size_t)(colon - addr) >= sizeof host)
            return UV_EINVAL;
        memcpy(host, addr, (size_t)(colon - addr));
        host[colon - addr] = '\0';
        if (!host[0])
            strcpy(host, "0.0.0.0");
    }
    char *end;
    long port = strtol(colon + 1, &end, 10);
    if (colon[1] == '\0' || *end != '\0' || port < 0 || port > 65535)
        return UV_EINVAL;
    if (addr[0] == '[')
        return uv_ip6_addr(host, (int)port, (struct sockaddr_in6 *)ss);
    return uv_ip4_addr(host, (int)port, (struct sockaddr_in *)ss);
}

int vt_http_server_listen(vt_http_server *s, const char *addr)
{
    assert(s && s->loop);
    if (s->listening || s->closing)
        return UV_EINVAL;
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof ss);
    int rc = parse_addr(addr, &ss);
    if (rc != 0)
        return UV_EINVAL;
    rc = uv_tcp_bind(&s->listener, (const struct sockaddr *)&ss, 0);
    if (rc == 0)
        rc = uv_listen((uv_stream_t *)&s->listener, 511, on_connection);
    if (rc != 0)
        return rc;
    struct sockaddr_storage bound;
    int blen = sizeof bound;
    if (uv_tcp_getsockname(&s->listener, (struct sockaddr *)&bound, &blen) == 0)
        s->port = bound.ss_family == AF_INET6
                      ? ntohs(((struct sockaddr_in6 *)&bound)->sin6_port)
                      : ntohs(((struct sockaddr_in *)&bound)->sin_port);
    uint64_t every = s->opts.idle_timeout_ms / 4;
    every = every < 10 ? 10 : every > 1000 ? 1000 : every;
    uv_timer_start(&s->sweep, on_sweep, every, every);
    uv_unref((uv_handle_t *)&s->sweep); /* the listener keeps the loop alive */
    s->listening = true;
    return 0;
}

int vt_http_server_port(const vt_http_server *s) { return s->listening ? s->port : 0; }

void vt_http_server_stats(const vt_http_server *s, struct vt_http_server_stats *out)
{
    *out = s->stats;
}

static void on_server_handle_closed(uv_handle_t *h)
{
    vt_http_server *s = h->data;
    assert(s->pending_closes > 0);
    s->pending_closes--;
    server_maybe_done(s);
}

void vt_http_server_close(vt_http_server *s, vt_http_close_cb cb)
{
    assert(s && !s->closing);
    s->closing = true;
    s->close_cb = cb;
    s->listening = false;
    while (s->conns)
        conn_close(s->conns);
    s->pending_closes += 2;
    uv_close((uv_handle_t *)&s->listener, on_server_handle_closed);
    uv_close((uv_handle_t *)&s->sweep, on_server_handle_closed);
}

/* ---- request accessors */

const char *vt_http_request_method(const vt_http_request *req) { return req->method; }

bool vt_http_request_is_head(const vt_http_request *req) { return req->head; }

const char *vt_http_request_path(const vt_http_request *req)
{
    return req->alen ? req->arena : "/";
}

const char *vt_http_request_query(const vt_http_request *req)
{
    return req->alen ? req->arena + req->query : "";
}

const char *vt_http_request_header(const vt_http_request *req, const char *name)
{
    for (size_t i = 0; i < req->nhdrs; i++)
        if (strcasecmp(req->arena + req->hdrs[i].name, name) == 0)
            return req->arena + req->hdrs[i].value;
    return NULL;
}

const char *vt_http_request_body(const vt_http_request *req, size_t *len)
{
    if (len)
        *len = req->blen;
    return req->blen ? req->body : ""; /* a reused buffer holds stale bytes */
}

bool vt_http_request_alive(const vt_http_request *req)
{
    return req->conn && !req->conn->closing && !req->conn->server->closing;
}

static int hexval(char ch)
{
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    if (ch >= 'a' && ch <= 'f')
        return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F')
        return ch - 'A' + 10;
    return -1;
}

int vt_http_query_param(const char *query, const char *name, char *out, size_t outsz)
{
    if (!query || !name || !out || outsz == 0)
        return -EINVAL;
    size_t nlen = strlen(name);
    const char *p = query;
    while (*p) {
        const char *amp = strchr(p, '&');
        const char *end = amp ? amp : p + strlen(p);
        const char *eq = memchr(p, '=', (size_t)(end - p));
        const char *kend = eq ? eq : end;
        if ((size_t)(kend - p) == nlen && memcmp(p, name, nlen) == 0) {
            size_t o = 0;
            for (const char *v = eq ? eq + 1 : end; v < end; v++) {
                char ch = *v;
                if (ch == '+') {
                    ch = ' ';
                } else if (ch == '%' && end - v >= 3 && hexval(v[1]) >= 0 && hexval(v[2]) >= 0) {
                    ch = (char)(hexval(v[1]) * 16 + hexval(v[2]));
                    v += 2;
                }
                if (o + 1 >= outsz)
                    return -ENOSPC;
                out[o++] = ch;
            }
            out[o] = '\0';
            return (int)o;
        }
        if (!amp)
            break;
        p = amp + 1;
    }
    return -ENOENT;
}

/* ---- responses */

int vt_http_add_header(vt_http_request *req, const char *name, const char *value)
{
    if (!name || !value || !*name || strpbrk(name, "\r\n:") || strpbrk(value, "\r\n"))
        return -EINVAL;
    if (append(&req->extra, &req->elen, &req->ecap, name, strlen(name)) != 0 ||
        append(&req->extra, &req->elen, &req->ecap, ": ", 2) != 0 ||
        append(&req->extra, &req->elen, &req->ecap, value, strlen(value)) != 0 ||
        append(&req->extra, &req->elen, &req->ecap, "\r\n", 2) != 0)
        return -ENOMEM;
    return 0;
}

int vt_http_respond(vt_http_request *req, int status, const char *content_type,
                    const void *body, size_t len)
{
    assert(req);
    assert(status >= 100 && status <= 599);
    struct vt_http_conn *c = req->conn;
    if (!c) { /* the connection died while the handler worked */
        request_free(req);
        return -ECONNRESET;
    }
    assert(c->pending == req && c->state == C_PENDING);
    c->pending = NULL;
    vt_http_server *s = c->server;
    /* A half-closed client still gets answers to everything it sent
     * (pipelined requests then EOF); the connection closes when that is done. */
    bool keep = req->keep_alive && !s->closing;
    bool bodyless = status < 200 || status == 204 || status == 304;
    int rc = build_head(c, status, content_type, bodyless ? 0 : len, req->extra, req->elen,
                        keep, req->http10);
    if (rc == 0 && !req->head && !bodyless && len > 0)
        rc = append(&c->out, &c->out_len, &c->out_cap, body, len);

    /* The request goes back to the connection for reuse. */
    request_reset(req);
    if (!c->spare)
        c->spare = req;
    else
        request_free(req);

    if (rc != 0) {
        conn_close(c);
        return rc;
    }
    c->keep_after = keep;
    conn_write_out(c);
    return 0;
}

int vt_http_respond_json(vt_http_request *req, int status, const char *json)
{
    return vt_http_respond(req, status, "application/json", json, json ? strlen(json) : 0);
}

int vt_http_respond_error(vt_http_request *req, int status, const char *msg)
{
    char stackbuf[512];
    size_t need = 16 + 6 * strlen(msg ? msg : "");
    char *b = need <= sizeof stackbuf ? stackbuf : malloc(need);
    if (!b)
        return vt_http_respond_json(req, status, "{\"error\": \"out of memory\"}");
    size_t o = 0;
    o += (size_t)sprintf(b, "{\"error\": \"");
    for (const unsigned char *p = (const unsigned char *)(msg ? msg : ""); *p; p++) {
        if (*p == '"' || *p == '\\') {
            b[o++] = '\\';
            b[o++] = (char)*p;
        } else if (*p < 0x20) {
            o += (size_t)sprintf(b + o, "\\u%04x", *p);
        } else {
            b[o++] = (char)*p;
        }
    }
    memcpy(b + o, "\"}\n", 4);
    o += 3;
    int rc = vt_http_respond(req, status, "application/json", b, o);
    if (b != stackbuf)
        free(b);
    return rc;
}

const char *vt_http_status_text(int status)
{
    switch (status) {
    case 100: return "Continue";
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 204: return "No Content";
    case 206: return "Partial Content";
    case 301: return "Moved Permanently";
    case 302: return "Found";
    case 304: return "Not Modified";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 411: return "Length Required";
    case 413: return "Content Too Large";
    case 415: return "Unsupported Media Type";
    case 417: return "Expectation Failed";
    case 422: return "Unprocessable Content";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    case 505: return "HTTP Version Not Supported";
    default: return "Unknown";
    }
}
