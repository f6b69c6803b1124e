/*
 * grpc_conn.h - the HTTP/2-over-libuv plumbing that grpc_client.c and
 * grpc_server.c share: one TCP stream, one nghttp2 session driven with
 * mem_recv/mem_send, and the buffer that gathers what nghttp2 wants to send
 * into a single uv_write at a time; plus the two per-call chores both sides
 * do alike (a deadline timer, and freeing a call that embeds that timer).
 *
 * Internal: the contract between grpc_client.c and grpc_server.c only.
 * Programs use grpc.h. Policy (which SETTINGS, what a failure means for the
 * calls on a connection, what to do after bytes arrive) stays with each side;
 * this file only moves bytes. Loop thread only.
 */
#ifndef VT_GRPC_CONN_H
#define VT_GRPC_CONN_H

#include <stddef.h>
#include <stdint.h>

#include <nghttp2/nghttp2.h>
#include <uv.h>

#define VT_GRPC_READ_BUF (64 * 1024)
#define VT_GRPC_WRITE_HIGH (256 * 1024) /* gather at most this much per uv_write */
#define VT_GRPC_STREAM_WINDOW (1 << 20)
#define VT_GRPC_CONN_WINDOW (16 << 20)

/* The struct that embeds `field` at `ptr`. */
#define VT_GRPC_CONTAINER_OF(ptr, type, field)                                \
    ((type *)((char *)(ptr) - offsetof(type, field)))

struct vt_grpc_conn;

/* The connection cannot go on (write or nghttp2 failure, out of memory, or
 * the session has nothing left to read or write): the owner must close it,
 * which sets `closing`. `why` is a static or short-lived reason. */
typedef void (*vt_grpc_conn_fail_cb)(struct vt_grpc_conn *c, const char *why);

/* Embedded in the owner's connection struct. tcp.data belongs to the owner
 * (its read and close callbacks); the shared callbacks find this struct with
 * VT_GRPC_CONTAINER_OF. */
struct vt_grpc_conn {
    uv_tcp_t tcp;
    nghttp2_session *h2; /* NULL until the owner creates the session */
    vt_grpc_conn_fail_cb fail;
    int closing;  /* set by the owner's close: no more I/O */
    int in_recv;  /* inside mem_recv: flushing waits until it returns */
    int writing;  /* a uv_write is in flight */
    uv_write_t wreq;
    uint8_t *wbuf;
    size_t wlen, wcap;
    char rbuf[VT_GRPC_READ_BUF];
};

/* Zero-initialised `c`: init its TCP handle on `loop`. Returns uv_tcp_init's
 * result. Release with vt_grpc_conn_release() once the handle has closed. */
int vt_grpc_conn_init(struct vt_grpc_conn *c, uv_loop_t *loop,
                      vt_grpc_conn_fail_cb fail);

/* The TCP connection is up and c->h2 exists: TCP_NODELAY, queue our SETTINGS
 * (`iv`, n entries) and the connection window, start reading into rbuf with
 * `on_read`. Returns 0 or uv_read_start's error (the owner then closes). */
int vt_grpc_conn_start(struct vt_grpc_conn *c, const nghttp2_settings_entry *iv,
                       size_t n, uv_read_cb on_read);

/* Hand bytes read to nghttp2. Its callbacks run inside; flushes they ask for
 * are deferred until it returns. Returns mem_recv's result (< 0: fatal for
 * this connection). */
ssize_t vt_grpc_conn_recv(struct vt_grpc_conn *c, const uv_buf_t *buf,
                          ssize_t nread);

/* Gather what nghttp2 wants to send (up to VT_GRPC_WRITE_HIGH) and write it;
 * continues from the write callback until nghttp2 has nothing more. No-op
 * while closing, writing or inside vt_grpc_conn_recv. Failures go to
 * c->fail. */
void vt_grpc_conn_flush(struct vt_grpc_conn *c);

/* Free the session and the write buffer (the handle must be closed). */
void vt_grpc_conn_release(struct vt_grpc_conn *c);

/* An nghttp2 data source over a flat buffer: copy the next at most `room`
 * bytes of src[*off, len) to dst and advance *off. Returns the count; the
 * body is whole when *off == len. */
size_t vt_grpc_body_read(uint8_t *dst, size_t room, const uint8_t *src,
                         size_t len, size_t *off);

/* Arm a one-shot deadline `ms` from now: init *timer on `loop` with
 * data = `data`, set *deadline (uv_now ms), start `cb`. Returns 0 or
 * uv_timer_init's error (then the timer is not initialised). */
int vt_grpc_deadline_arm(uv_loop_t *loop, uv_timer_t *timer, uint64_t ms,
                         uv_timer_cb cb, void *data, uint64_t *deadline);

/* Free malloc'd `obj`, which embeds `timer`: at once if the timer was never
 * initialised, else from the timer's close callback. */
void vt_grpc_free_with_timer(void *obj, uv_timer_t *timer, int timer_init);

#endif
