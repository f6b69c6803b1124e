/*
 * grpc_conn.c - HTTP/2 over libuv for both gRPC sides (see grpc_conn.h).
 *
 * nghttp2 is driven with mem_recv/mem_send: bytes read by libuv go into
 * nghttp2_session_mem_recv; everything nghttp2 wants to send is gathered into
 * one growing buffer per connection and written with a single uv_write at a
 * time, so the buffer is never touched while libuv still reads from it.
 */
#include "grpc_conn.h"

#include <stdlib.h>
#include <string.h>

int vt_grpc_conn_init(struct vt_grpc_conn *c, uv_loop_t *loop,
                      vt_grpc_conn_fail_cb fail)
{
    c->fail = fail;
    return uv_tcp_init(loop, &c->tcp);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    struct vt_grpc_conn *c = VT_GRPC_CONTAINER_OF(h, struct vt_grpc_conn, tcp);
    *buf = uv_buf_init(c->rbuf, sizeof(c->rbuf));
}

int vt_grpc_conn_start(struct vt_grpc_conn *c, const nghttp2_settings_entry *iv,
                       size_t n, uv_read_cb on_read)
{
    uv_tcp_nodelay(&c->tcp, 1);
    nghttp2_submit_settings(c->h2, NGHTTP2_FLAG_NONE, iv, n);
    nghttp2_session_set_local_window_size(c->h2, NGHTTP2_FLAG_NONE, 0,
                                          VT_GRPC_CONN_WINDOW);
    return uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
}

ssize_t vt_grpc_conn_recv(struct vt_grpc_conn *c, const uv_buf_t *buf,
                          ssize_t nread)
{
    c->in_recv = 1;
    ssize_t rv = nghttp2_session_mem_recv(c->h2, (const uint8_t *)buf->base,
                                          (size_t)nread);
    c->in_recv = 0;
    return rv;
}

static void on_write(uv_write_t *req, int status)
{
    struct vt_grpc_conn *c = req->data;
    c->writing = 0;
    if (status < 0) {
        c->fail(c, "connection lost (write failed)");
        return;
    }
    vt_grpc_conn_flush(c);
}

void vt_grpc_conn_flush(struct vt_grpc_conn *c)
{
    if (c->closing || c->writing || c->in_recv)
        return;
    c->wlen = 0;
    while (c->wlen < VT_GRPC_WRITE_HIGH) {
        const uint8_t *data;
        ssize_t n = nghttp2_session_mem_send(c->h2, &data);
        if (n < 0) {
            c->fail(c, nghttp2_strerror((int)n));
            return;
        }
        if (n == 0)
            break;
        if (c->wlen + (size_t)n > c->wcap) {
            size_t cap = c->wcap ? c->wcap : 16384;
            while (cap < c->wlen + (size_t)n)
                cap *= 2;
            uint8_t *p = realloc(c->wbuf, cap);
            if (!p) {
                c->fail(c, "out of memory");
                return;
            }
            c->wbuf = p;
            c->wcap = cap;
        }
        memcpy(c->wbuf + c->wlen, data, (size_t)n);
        c->wlen += (size_t)n;
    }
    if (c->wlen == 0) {
        /* GOAWAY both ways and nothing in flight: the session is over. */
        if (!nghttp2_session_want_read(c->h2) && !nghttp2_session_want_write(c->h2))
            c->fail(c, "connection closed by peer (GOAWAY)");
        return;
    }
    uv_buf_t b = uv_buf_init((char *)c->wbuf, (unsigned)c->wlen);
    c->wreq.data = c;
    c->writing = 1;
    if (uv_write(&c->wreq, (uv_stream_t *)&c->tcp, &b, 1, on_write)) {
        c->writing = 0;
        c->fail(c, "connection lost (write failed)");
    }
}

void vt_grpc_conn_release(struct vt_grpc_conn *c)
{
    nghttp2_session_del(c->h2); /* NULL-safe */
    c->h2 = NULL;
    free(c->wbuf);
    c->wbuf = NULL;
}

size_t vt_grpc_body_read(uint8_t *dst, size_t room, const uint8_t *src,
                         size_t len, size_t *off)
{
    size_t n = len - *off;
    if (n > room)
        n = room;
    memcpy(dst, src + *off, n);
    *off += n;
    return n;
}

int vt_grpc_deadline_arm(uv_loop_t *loop, uv_timer_t *timer, uint64_t ms,
                         uv_timer_cb cb, void *data, uint64_t *deadline)
{
    int rc = uv_timer_init(loop, timer);
    if (rc)
        return rc;
    timer->data = data;
    *deadline = uv_now(loop) + ms;
    uv_timer_start(timer, cb, ms, 0);
    return 0;
}

static void free_data_cb(uv_handle_t *h)
{
    free(h->data);
}

void vt_grpc_free_with_timer(void *obj, uv_timer_t *timer, int timer_init)
{
    if (timer_init) {
        timer->data = obj;
        uv_close((uv_handle_t *)timer, free_data_cb);
    } else {
        free(obj);
    }
}
