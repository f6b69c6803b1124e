/*
 * test_grpc.c - the gRPC server and client against each other, against curl,
 * and (through --serve / --call) against @grpc/grpc-js in
 * tests/integration/test_grpc_interop.py.
 *
 * Everything runs over real loopback sockets in one libuv loop, bounded by a
 * watchdog; every test ends by closing client and server and checking that
 * uv_loop_close() succeeds, i.e. that no handle leaked.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <zstd.h>

#include "grpc.h"
#include "grpc_frame.h"

#define M_ECHO "/vitals.test.Echo/Unary"
#define M_DEFER "/vitals.test.Echo/Deferred"
#define M_HOLD "/vitals.test.Echo/Hold"
#define M_PARK "/vitals.test.Echo/Park"
#define MAX_PARKED 4

struct fx {
    uv_loop_t loop;
    vt_grpc_server_t *srv;
    vt_grpc_client_t *cli;
    int port;
    int srv_closed, cli_closed;
    vt_grpc_call_t *held; /* M_HOLD handler parks its call here */
    vt_grpc_call_t *parked[MAX_PARKED]; /* M_PARK: calls in arrival order */
    int n_parked;
    char last_auth[64];
    int handled;
};

struct result {
    int done;
    int status;
    char message[256];
    uint8_t *resp;
    size_t len;
};

/* ---------------------------------------------------------------- helpers */

static void on_result(int status, const char *message, const uint8_t *resp,
                      size_t len, void *data)
{
    struct result *r = data;
    assert_int_equal(r->done, 0); /* exactly once */
    r->done = 1;
    r->status = status;
    snprintf(r->message, sizeof(r->message), "%s", message);
    r->resp = len ? malloc(len) : NULL;
    if (len)
        memcpy(r->resp, resp, len);
    r->len = len;
}

static void echo_handler(vt_grpc_call_t *call, void *data)
{
    struct fx *f = data;
    f->handled++;
    const char *auth = vt_grpc_call_metadata(call, "authorization");
    snprintf(f->last_auth, sizeof(f->last_auth), "%s", auth ? auth : "");
    size_t len;
    const uint8_t *req = vt_grpc_call_request(call, &len);
    if (len > 5 && memcmp(req, "fail:", 5) == 0) {
        char code[8] = {0};
        memcpy(code, req + 5, len - 5 < 7 ? len - 5 : 7);
        vt_grpc_respond(call, atoi(code), "failed as asked: 100%\n", NULL, 0);
        return;
    }
    assert_int_equal(vt_grpc_respond(call, VT_GRPC_OK, NULL, req, len), 0);
}

struct deferred {
    uv_timer_t t;
    vt_grpc_call_t *call;
};

static void deferred_fire(uv_timer_t *t)
{
    struct deferred *d = t->data;
    size_t len;
    const uint8_t *req = vt_grpc_call_request(d->call, &len);
    assert_true(vt_grpc_call_alive(d->call));
    assert_int_equal(vt_grpc_respond(d->call, VT_GRPC_OK, NULL, req, len), 0);
    uv_close((uv_handle_t *)t, (uv_close_cb)free);
}

static void deferred_handler(vt_grpc_call_t *call, void *data)
{
    struct deferred *d = calloc(1, sizeof(*d));
    d->call = call;
    uv_timer_init(&((struct fx *)data)->loop, &d->t);
    d->t.data = d;
    uv_timer_start(&d->t, deferred_fire, 100, 0);
}

static void hold_handler(vt_grpc_call_t *call, void *data)
{
    struct fx *f = data;
    assert_null(f->held);
    f->held = call;
}

static void park_handler(vt_grpc_call_t *call, void *data)
{
    struct fx *f = data;
    assert_true(f->n_parked < MAX_PARKED);
    f->parked[f->n_parked++] = call;
}

static void wake(uv_timer_t *t) { (void)t; }

/* Run the loop until *flag becomes non-zero; fail after `ms`. */
static void run_until(struct fx *f, const int *flag, uint64_t ms)
{
    uv_timer_t dog;
    uv_timer_init(&f->loop, &dog);
    uv_timer_start(&dog, wake, 20, 20);
    uint64_t start = uv_now(&f->loop);
    while (!*flag) {
        uv_run(&f->loop, UV_RUN_ONCE);
        if (uv_now(&f->loop) - start > ms) {
            uv_close((uv_handle_t *)&dog, NULL);
            fail_msg("timed out after %llu ms", (unsigned long long)ms);
        }
    }
    uv_close((uv_handle_t *)&dog, NULL);
    uv_run(&f->loop, UV_RUN_NOWAIT);
}

static void start_server(struct fx *f, const struct vt_grpc_server_opts *o, int port)
{
    assert_int_equal(vt_grpc_server_init(&f->loop, &f->srv, o), 0);
    assert_int_equal(vt_grpc_server_register(f->srv, M_ECHO, echo_handler, f), 0);
    assert_int_equal(vt_grpc_server_register(f->srv, M_DEFER, deferred_handler, f), 0);
    assert_int_equal(vt_grpc_server_register(f->srv, M_HOLD, hold_handler, f), 0);
    assert_int_equal(vt_grpc_server_register(f->srv, M_PARK, park_handler, f), 0);
    char addr[32];
    snprintf(addr, sizeof(addr), "127.0.0.1:%d", port);
    assert_int_equal(vt_grpc_server_listen(f->srv, addr), 0);
    f->port = vt_grpc_server_port(f->srv);
    assert_true(f->port > 0);
    f->srv_closed = 0;
}

static void start_client(struct fx *f, enum vt_grpc_encoding enc, uint32_t max_calls)
{
    char target[48];
    snprintf(target, sizeof(target), "http://127.0.0.1:%d", f->port);
    struct vt_grpc_md md[] = {{"authorization", "Bearer s3cret"}};
    struct vt_grpc_client_opts o = {.target = target, .metadata = md, .n_metadata = 1,
                                    .compression = enc, .max_concurrent_calls = max_calls};
    assert_int_equal(vt_grpc_client_init(&f->loop, &f->cli, &o), 0);
    f->cli_closed = 0;
}

static void srv_closed(vt_grpc_server_t *s, void *data) { ((struct fx *)data)->srv_closed = 1; }
static void cli_closed(vt_grpc_client_t *c, void *data) { ((struct fx *)data)->cli_closed = 1; }

static void stop_server(struct fx *f)
{
    vt_grpc_server_close(f->srv, srv_closed, f);
    run_until(f, &f->srv_closed, 5000);
    f->srv = NULL;
}

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof(*f));
    uv_loop_init(&f->loop);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    if (f->cli) {
        vt_grpc_client_close(f->cli, cli_closed, f);
        run_until(f, &f->cli_closed, 5000);
    }
    if (f->held)
        vt_grpc_respond(f->held, VT_GRPC_CANCELLED, NULL, NULL, 0);
    if (f->srv)
        stop_server(f);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&f->loop), 0); /* no handle leaked */
    free(f);
    return 0;
}

static uint8_t *pattern(size_t n, unsigned seed)
{
    uint8_t *p = malloc(n ? n : 1);
    uint32_t x = seed * 2654435761u + 1;
    for (size_t i = 0; i < n; i++) {
        x = x * 1103515245u + 12345u;
        p[i] = (uint8_t)((i % 64 < 48) ? 'a' + (i % 7) : (x >> 16)); /* half compressible */
    }
    return p;
}

static void call_sync(struct fx *f, const char *path, const void *req, size_t len,
                      uint64_t timeout, struct result *r)
{
    memset(r, 0, sizeof(*r));
    assert_int_equal(vt_grpc_call(f->cli, path, req, len, timeout, on_result, r), 0);
    assert_int_equal(r->done, 0); /* never synchronous */
    run_until(f, &r->done, 10000);
}

static void echo_roundtrip(void **state, enum vt_grpc_encoding enc, size_t n)
{
    struct fx *f = *state;
    start_server(f, NULL, 0);
    start_client(f, enc, 0);
    uint8_t *msg = pattern(n, 7);
    struct result r;
    call_sync(f, M_ECHO, msg, n, 5000, &r);
    assert_int_equal(r.status, VT_GRPC_OK);
    assert_int_equal(r.len, n);
    if (n)
        assert_memory_equal(r.resp, msg, n);
    assert_string_equal(f->last_auth, "Bearer s3cret");
    free(r.resp);
    free(msg);
}

/* ---------------------------------------------------------------- tests */

static void test_echo_small(void **state) { echo_roundtrip(state, VT_GRPC_ENC_IDENTITY, 300); }
static void test_echo_empty(void **state) { echo_roundtrip(state, VT_GRPC_ENC_IDENTITY, 0); }
/* 5 MiB: many DATA frames and flow-control windows in both directions. */
static void test_echo_large(void **state) { echo_roundtrip(state, VT_GRPC_ENC_IDENTITY, 5u << 20); }
static void test_echo_zstd(void **state) { echo_roundtrip(state, VT_GRPC_ENC_ZSTD, 1u << 20); }
static void test_echo_gzip(void **state) { echo_roundtrip(state, VT_GRPC_ENC_GZIP, 1u << 20); }

static void test_error_status_and_message(void **state)
{
    struct fx *f = *state;
    start_server(f, NULL, 0);
    start_client(f, VT_GRPC_ENC_IDENTITY, 0);
    struct result r;
    call_sync(f, M_ECHO, "fail:7", 6, 5000, &r);
    assert_int_equal(r.status, VT_GRPC_PERMISSION_DENIED);
    assert_string_equal(r.message, "failed as asked: 100%\n"); /* percent-coded round trip */
    assert_int_equal(r.len, 0);
    call_sync(f, "/no.Such/Method", "x", 1, 5000, &r);
    assert_int_equal(r.status, VT_GRPC_UNIMPLEMENTED);
}

static void test_deferred_response(void **state)
{
    struct fx *f = *state;
    start_server(f, NULL, 0);
    start_client(f, VT_GRPC_ENC_IDENTITY, 0);
    struct result r;
    uint64_t t0 = uv_now(&f->loop);
    call_sync(f, M_DEFER, "later", 5, 5000, &r);
    assert_int_equal(r.status, VT_GRPC_OK);
    assert_int_equal(r.len, 5);
    assert_true(uv_now(&f->loop) - t0 >= 90);
    free(r.resp);
}

static void test_deadline_exceeded(void **state)
{
    struct fx *f = *state;
    start_server(f, NULL, 0);
    start_client(f, VT_GRPC_ENC_IDENTITY, 0);
    struct result r;
    /* a finished call with a deadline first: the held call below reuses its
     * struct and armed-once timer (the server pools finished calls) */
    call_sync(f, M_ECHO, "ok", 2, 5000, &r);
    assert_int_equal(r.status, VT_GRPC_OK);
    free(r.resp);
    call_sync(f, M_HOLD, "slow", 4, 150, &r);
    assert_int_equal(r.status, VT_GRPC_DEADLINE_EXCEEDED);
    assert_non_null(f->held);
    /* The server learnt the deadline from grpc-timeout and the RST_STREAM:
     * the held call is dead and answering it is a harmless no-op. */
    int dead = 0;
    for (int i = 0; i < 100 && !dead; i++) {
        uv_run(&f->loop, UV_RUN_NOWAIT);
        dead = !vt_grpc_call_alive(f->held);
        if (!dead)
            usleep(2000);
    }
    assert_true(dead);
    assert_int_equal(vt_grpc_respond(f->held, VT_GRPC_OK, NULL, "x", 1), UV_ECANCELED);
    f->held = NULL;
    /* The connection is still good for the next call. */
    call_sync(f, M_ECHO, "ok", 2, 5000, &r);
    assert_int_equal(r.status, VT_GRPC_OK);
    free(r.resp);
}

/* Answers given while the server is corked stay unsent until it is
 * uncorked; then all of them arrive. */
static void test_cork_holds_responses(void **state)
{
    struct fx *f = *state;
    start_server(f, NULL, 0);
    start_client(f, VT_GRPC_ENC_IDENTITY, 0);
    static struct result r[3];
    static const char *body[3] = {"one", "two", "three"};
    memset(r, 0, sizeof r);
    for (int i = 0; i < 3; i++)
        assert_int_equal(vt_grpc_call(f->cli, M_PARK, body[i], strlen(body[i]), 5000, on_result,
                                      &r[i]), 0);
    for (int i = 0; i < 200 && f->n_parked < 3; i++) {
        uv_run(&f->loop, UV_RUN_NOWAIT);
        usleep(1000);
    }
    assert_int_equal(f->n_parked, 3);
    vt_grpc_server_cork(f->srv);
    for (int i = 0; i < 3; i++) {
        size_t len;
        const uint8_t *req = vt_grpc_call_request(f->parked[i], &len);
        assert_int_equal(vt_grpc_respond(f->parked[i], VT_GRPC_OK, NULL, req, len), 0);
    }
    for (int i = 0; i < 50; i++) { /* 50 ms: long enough for a loopback reply */
        uv_run(&f->loop, UV_RUN_NOWAIT);
        usleep(1000);
    }
    for (int i = 0; i < 3; i++)
        assert_int_equal(r[i].done, 0);
    vt_grpc_server_uncork(f->srv);
    for (int i = 0; i < 3; i++) {
        run_until(f, &r[i].done, 5000);
        assert_int_equal(r[i].status, VT_GRPC_OK);
        assert_int_equal(r[i].len, strlen(body[i]));
        assert_memory_equal(r[i].resp, body[i], r[i].len);
        free(r[i].resp);
    }
    f->n_parked = 0;
    struct result e; /* and answers flow at once again */
    call_sync(f, M_ECHO, "ok", 2, 5000, &e);
    assert_int_equal(e.status, VT_GRPC_OK);
    free(e.resp);
}

static void test_reconnect_after_server_restart(void **state)
{
    struct fx *f = *state;
    start_server(f, NULL, 0);
    int port = f->port;
    start_client(f, VT_GRPC_ENC_ZSTD, 0);
    struct result r;
    call_sync(f, M_ECHO, "one", 3, 5000, &r);
    assert_int_equal(r.status, VT_GRPC_OK);
    free(r.resp);

    /* An in-flight call when the server goes away fails with UNAVAILABLE. */
    memset(&r, 0, sizeof(r));
    assert_int_equal(vt_grpc_call(f->cli, M_HOLD, "held", 4, 0, on_result, &r), 0);
    while (!f->held)
        uv_run(&f->loop, UV_RUN_ONCE);
    stop_server(f);
    run_until(f, &r.done, 5000);
    assert_int_equal(r.status, VT_GRPC_UNAVAILABLE);
    assert_int_equal(vt_grpc_respond(f->held, VT_GRPC_OK, NULL, "x", 1), UV_ECANCELED);
    f->held = NULL; /* the server memory is released only now */

    /* Nobody listening: fail fast, UNAVAILABLE. */
    call_sync(f, M_ECHO, "two", 3, 5000, &r);
    assert_int_equal(r.status, VT_GRPC_UNAVAILABLE);

    start_server(f, NULL, port);
    assert_int_equal(f->port, port);
    call_sync(f, M_ECHO, "three", 5, 5000, &r);
    assert_int_equal(r.status, VT_GRPC_OK);
    assert_memory_equal(r.resp, "three", 5);
    free(r.resp);
}

#define NCALLS 300
static void test_many_concurrent_calls(void **state)
{
    struct fx *f = *state;
    struct vt_grpc_server_opts so = {.max_concurrent_streams = 50};
    start_server(f, &so, 0);
    start_client(f, VT_GRPC_ENC_GZIP, 80);
    static struct result r[NCALLS];
    static char body[NCALLS][32];
    memset(r, 0, sizeof(r));
    for (int i = 0; i < NCALLS; i++) {
        snprintf(body[i], sizeof(body[i]), "call-%d", i);
        assert_int_equal(vt_grpc_call(f->cli, i % 3 ? M_ECHO : M_DEFER, body[i],
                                      strlen(body[i]), 10000, on_result, &r[i]), 0);
    }
    assert_int_equal(vt_grpc_client_pending(f->cli), NCALLS);
    for (int i = 0; i < NCALLS; i++) {
        run_until(f, &r[i].done, 10000);
        if (r[i].status)
            fprintf(stderr, "call %d: %d %s\n", i, r[i].status, r[i].message);
        assert_int_equal(r[i].status, VT_GRPC_OK);
        assert_int_equal(r[i].len, strlen(body[i]));
        assert_memory_equal(r[i].resp, body[i], r[i].len);
        free(r[i].resp);
    }
    assert_int_equal(vt_grpc_server_connections(f->srv), 1); /* multiplexed */
    assert_int_equal(vt_grpc_client_pending(f->cli), 0);
}

static void test_oversize_and_bomb(void **state)
{
    struct fx *f = *state;
    struct vt_grpc_server_opts so = {.max_message_bytes = 1u << 20};
    start_server(f, &so, 0);
    start_client(f, VT_GRPC_ENC_IDENTITY, 0);
    size_t n = 2u << 20;
    uint8_t *big = pattern(n, 3);
    struct result r;
    call_sync(f, M_ECHO, big, n, 5000, &r);
    assert_int_equal(r.status, VT_GRPC_RESOURCE_EXHAUSTED);
    /* Exactly at the limit is fine. */
    call_sync(f, M_ECHO, big, 1u << 20, 5000, &r);
    assert_int_equal(r.status, VT_GRPC_OK);
    free(r.resp);
    free(big);
    vt_grpc_client_close(f->cli, cli_closed, f);
    run_until(f, &f->cli_closed, 5000);
    /* A zstd bomb: 64 MiB of zeros in a few KiB must stop at the limit. */
    start_client(f, VT_GRPC_ENC_ZSTD, 0);
    uint8_t *zeros = calloc(1, 64u << 20);
    call_sync(f, M_ECHO, zeros, 64u << 20, 10000, &r);
    assert_int_equal(r.status, VT_GRPC_RESOURCE_EXHAUSTED);
    free(zeros);
    /* The connection and the server still serve others. */
    call_sync(f, M_ECHO, "fine", 4, 5000, &r);
    assert_int_equal(r.status, VT_GRPC_OK);
    free(r.resp);
}

static void test_client_disconnects_mid_call(void **state)
{
    struct fx *f = *state;
    start_server(f, NULL, 0);
    start_client(f, VT_GRPC_ENC_IDENTITY, 0);
    struct result r = {0};
    assert_int_equal(vt_grpc_call(f->cli, M_HOLD, "bye", 3, 0, on_result, &r), 0);
    while (!f->held)
        uv_run(&f->loop, UV_RUN_ONCE);
    vt_grpc_client_close(f->cli, cli_closed, f);
    run_until(f, &f->cli_closed, 5000);
    f->cli = NULL;
    assert_int_equal(r.status, VT_GRPC_CANCELLED);
    int gone = 0;
    for (int i = 0; i < 200 && !gone; i++) {
        uv_run(&f->loop, UV_RUN_NOWAIT);
        gone = vt_grpc_server_connections(f->srv) == 0;
        if (!gone)
            usleep(2000);
    }
    assert_true(gone);
    assert_false(vt_grpc_call_alive(f->held));
    assert_int_equal(vt_grpc_respond(f->held, VT_GRPC_OK, NULL, "late", 4), UV_ECANCELED);
    f->held = NULL;
}

static void test_connection_limit_and_idle_timeout(void **state)
{
    struct fx *f = *state;
    struct vt_grpc_server_opts so = {.max_connections = 1, .idle_timeout_ms = 200};
    start_server(f, &so, 0);
    start_client(f, VT_GRPC_ENC_IDENTITY, 0);
    struct result r;
    call_sync(f, M_ECHO, "a", 1, 5000, &r);
    assert_int_equal(r.status, VT_GRPC_OK);
    free(r.resp);
    /* A second connection is over the limit: closed at once, UNAVAILABLE. */
    vt_grpc_client_t *first = f->cli;
    start_client(f, VT_GRPC_ENC_IDENTITY, 0);
    call_sync(f, M_ECHO, "b", 1, 5000, &r);
    assert_int_equal(r.status, VT_GRPC_UNAVAILABLE);
    vt_grpc_client_close(f->cli, cli_closed, f);
    run_until(f, &f->cli_closed, 5000);
    f->cli = first;
    f->cli_closed = 0;
    assert_int_equal(vt_grpc_server_connections(f->srv), 1);
    /* Idle for longer than the timeout: the server says GOAWAY and closes. */
    uint64_t t0 = uv_now(&f->loop);
    while (vt_grpc_server_connections(f->srv) && uv_now(&f->loop) - t0 < 3000) {
        uv_run(&f->loop, UV_RUN_NOWAIT);
        usleep(5000);
        uv_update_time(&f->loop);
    }
    assert_int_equal(vt_grpc_server_connections(f->srv), 0);
    /* The client notices and reconnects for the next call. */
    call_sync(f, M_ECHO, "c", 1, 5000, &r);
    assert_int_equal(r.status, VT_GRPC_OK);
    free(r.resp);
}

/* A peer speaking HTTP/1.1 (or garbage) loses only its own connection. */
struct raw {
    uv_tcp_t tcp;
    uv_connect_t c;
    uv_write_t w;
    int closed;
    char buf[256];
};

static void raw_alloc(uv_handle_t *h, size_t s, uv_buf_t *b)
{
    struct raw *x = h->data;
    *b = uv_buf_init(x->buf, sizeof(x->buf));
}

static void raw_closed(uv_handle_t *h) { ((struct raw *)h->data)->closed = 1; }

static void raw_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b)
{
    if (n < 0)
        uv_close((uv_handle_t *)s, raw_closed);
}

static void raw_connected(uv_connect_t *c, int status)
{
    struct raw *x = c->data;
    assert_int_equal(status, 0);
    static char junk[] = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
    uv_buf_t b = uv_buf_init(junk, sizeof(junk) - 1);
    uv_write(&x->w, (uv_stream_t *)&x->tcp, &b, 1, NULL);
    uv_read_start((uv_stream_t *)&x->tcp, raw_alloc, raw_read);
}

static void test_garbage_peer_isolated(void **state)
{
    struct fx *f = *state;
    start_server(f, NULL, 0);
    start_client(f, VT_GRPC_ENC_IDENTITY, 0);
    struct result r;
    call_sync(f, M_ECHO, "before", 6, 5000, &r);
    free(r.resp);
    struct raw x = {0};
    uv_tcp_init(&f->loop, &x.tcp);
    x.tcp.data = x.c.data = &x;
    struct sockaddr_in sa;
    uv_ip4_addr("127.0.0.1", f->port, &sa);
    uv_tcp_connect(&x.c, &x.tcp, (struct sockaddr *)&sa, raw_connected);
    run_until(f, &x.closed, 5000); /* the server hung up on it */
    call_sync(f, M_ECHO, "after", 5, 5000, &r);
    assert_int_equal(r.status, VT_GRPC_OK);
    free(r.resp);
}

/* curl runs as a child process while the loop serves it. */
struct child {
    uv_process_t p;
    int exited;
    int64_t status;
};

static void child_exit(uv_process_t *p, int64_t status, int sig)
{
    struct child *c = p->data;
    c->status = status;
    uv_close((uv_handle_t *)p, NULL);
    c->exited = 1;
}

/* Returns a static buffer (no free: an assertion may longjmp out). */
static char *slurp(const char *path)
{
    static char buf[8192];
    buf[0] = 0;
    FILE *fp = fopen(path, "rb");
    if (!fp)
        return buf;
    size_t n = fread(buf, 1, sizeof(buf) - 1, fp);
    buf[n] = 0;
    fclose(fp);
    return buf;
}

/* Run curl with a gRPC-ish request; return the response headers dumped. */
static char *curl(struct fx *f, const char *path, const char *ctype, const char *extra)
{
    if (access("/usr/bin/curl", X_OK) != 0)
        return NULL;
    char url[128], cmd[1024], hdr[64];
    snprintf(hdr, sizeof(hdr), "/tmp/vt_grpc_curl_%d.h", (int)getpid());
    snprintf(url, sizeof(url), "http://127.0.0.1:%d%s", f->port, path);
    snprintf(cmd, sizeof(cmd),
             "printf '\\0\\0\\0\\0\\0' | curl -s --max-time 5 --http2-prior-knowledge "
             "-H 'te: trailers' -H 'content-type: %s' %s --data-binary @- -D %s -o /dev/null %s",
             ctype, extra, hdr, url);
    char *args[] = {"/bin/sh", "-c", cmd, NULL};
    struct child c = {0};
    c.p.data = &c;
    uv_process_options_t o = {.exit_cb = child_exit, .file = "/bin/sh", .args = args};
    assert_int_equal(uv_spawn(&f->loop, &c.p, &o), 0);
    run_until(f, &c.exited, 10000);
    char *h = slurp(hdr);
    if (!strstr(h, "HTTP/2 "))
        fprintf(stderr, "curl exit %lld, headers: %s\ncmd: %s\n", (long long)c.status, h, cmd);
    unlink(hdr);
    return h;
}

static void test_curl_rules(void **state)
{
    struct fx *f = *state;
    start_server(f, NULL, 0);
    char *h = curl(f, M_ECHO, "application/grpc", "");
    if (!h)
        skip();
    assert_non_null(strstr(h, "HTTP/2 200"));
    assert_non_null(strstr(h, "grpc-status: 0")); /* trailer dumped too */
    h = curl(f, M_ECHO, "application/json", "");
    assert_non_null(strstr(h, "HTTP/2 415"));
    h = curl(f, "/pkg.Svc/Nope", "application/grpc", "");
    assert_non_null(strstr(h, "HTTP/2 200"));
    assert_non_null(strstr(h, "grpc-status: 12"));
    h = curl(f, M_ECHO, "application/grpc+proto", "-H 'grpc-encoding: snappy'");
    assert_non_null(strstr(h, "grpc-status: 12"));
    assert_non_null(strstr(h, "grpc-accept-encoding: identity,gzip,zstd"));
}

/* ---------------------------------------------------------------- codec */

static void test_status_helpers(void **state)
{
    assert_string_equal(vt_grpc_status_name(0), "OK");
    assert_string_equal(vt_grpc_status_name(14), "UNAVAILABLE");
    assert_string_equal(vt_grpc_status_name(16), "UNAUTHENTICATED");
    assert_string_equal(vt_grpc_status_name(99), "UNKNOWN_CODE");
    int retry[] = {1, 4, 10, 11, 14, 15};
    for (int c = 0; c <= 16; c++) {
        bool want = false;
        for (size_t i = 0; i < 6; i++)
            want |= retry[i] == c;
        assert_int_equal(vt_grpc_status_retryable(c), want);
    }
    assert_int_equal(vt_grpc_status_from_http(503), VT_GRPC_UNAVAILABLE);
    assert_int_equal(vt_grpc_status_from_http(404), VT_GRPC_UNIMPLEMENTED);
}

static void test_timeout_and_message_codec(void **state)
{
    uint64_t ms;
    assert_int_equal(vt_grpc_timeout_parse("100m", 4, &ms), 0);
    assert_int_equal(ms, 100);
    assert_int_equal(vt_grpc_timeout_parse("2S", 2, &ms), 0);
    assert_int_equal(ms, 2000);
    assert_int_equal(vt_grpc_timeout_parse("1H", 2, &ms), 0);
    assert_int_equal(ms, 3600000);
    assert_int_equal(vt_grpc_timeout_parse("1n", 2, &ms), 0);
    assert_int_equal(ms, 1);
    assert_int_equal(vt_grpc_timeout_parse("1500u", 5, &ms), 0);
    assert_int_equal(ms, 2);
    assert_int_equal(vt_grpc_timeout_parse("123456789S", 10, &ms), -1); /* 9 digits */
    assert_int_equal(vt_grpc_timeout_parse("10x", 3, &ms), -1);
    assert_int_equal(vt_grpc_timeout_parse("S", 1, &ms), -1);
    char buf[16];
    assert_int_equal(vt_grpc_timeout_format(250, buf), 4);
    assert_string_equal(buf, "250m");
    vt_grpc_timeout_format(200000000ull, buf);
    assert_string_equal(buf, "200000S");
    char *e = vt_grpc_message_encode("a%b\n\xc3\xa9");
    assert_string_equal(e, "a%25b%0A%C3%A9");
    assert_string_equal(vt_grpc_message_decode(e), "a%b\n\xc3\xa9");
    free(e);
    char bad[] = "100%zz%4";
    assert_string_equal(vt_grpc_message_decode(bad), "100%zz%4");
}

static void test_reader_rules(void **state)
{
    struct vt_grpc_codec codec = {0};
    struct vt_grpc_reader r;
    const uint8_t *msg;
    size_t len;
    /* One message split byte by byte. */
    uint8_t *framed;
    size_t flen;
    assert_int_equal(vt_grpc_frame_encode(&codec, VT_GRPC_ENC_GZIP, 0, "hello", 5,
                                          &framed, &flen), 0);
    vt_grpc_reader_init(&r, 100);
    for (size_t i = 0; i < flen; i++)
        assert_int_equal(vt_grpc_reader_feed(&r, framed + i, 1), 0);
    assert_int_equal(vt_grpc_reader_finish(&r, &codec, VT_GRPC_ENC_GZIP, &msg, &len), 0);
    assert_int_equal(len, 5);
    assert_memory_equal(msg, "hello", 5);
    vt_grpc_reader_free(&r);
    /* Compressed flag but identity encoding → INTERNAL. */
    vt_grpc_reader_init(&r, 100);
    vt_grpc_reader_feed(&r, framed, flen);
    assert_int_equal(vt_grpc_reader_finish(&r, &codec, VT_GRPC_ENC_IDENTITY, &msg, &len),
                     VT_GRPC_INTERNAL);
    vt_grpc_reader_free(&r);
    /* Two messages in a unary call → INTERNAL. */
    vt_grpc_reader_init(&r, 100);
    vt_grpc_reader_feed(&r, framed, flen);
    assert_int_equal(vt_grpc_reader_feed(&r, framed, flen), VT_GRPC_INTERNAL);
    vt_grpc_reader_free(&r);
    free(framed);
    /* Truncated, empty, bad flag, announced too big. */
    vt_grpc_reader_init(&r, 100);
    vt_grpc_reader_feed(&r, (const uint8_t *)"\0\0\0\0\x09" "abc", 8);
    assert_int_equal(vt_grpc_reader_finish(&r, &codec, 0, &msg, &len), VT_GRPC_INTERNAL);
    vt_grpc_reader_free(&r);
    vt_grpc_reader_init(&r, 100);
    assert_int_equal(vt_grpc_reader_finish(&r, &codec, 0, &msg, &len), VT_GRPC_INTERNAL);
    vt_grpc_reader_free(&r);
    vt_grpc_reader_init(&r, 100);
    assert_int_equal(vt_grpc_reader_feed(&r, (const uint8_t *)"\x02\0\0\0\0", 5), VT_GRPC_INTERNAL);
    vt_grpc_reader_free(&r);
    vt_grpc_reader_init(&r, 100);
    assert_int_equal(vt_grpc_reader_feed(&r, (const uint8_t *)"\0\0\0\0\x65", 5),
                     VT_GRPC_RESOURCE_EXHAUSTED);
    vt_grpc_reader_free(&r);
    /* gzip bomb: 1 MiB of zeros, limit 1000. */
    uint8_t *zeros = calloc(1, 1 << 20);
    assert_int_equal(vt_grpc_frame_encode(&codec, VT_GRPC_ENC_GZIP, 9, zeros, 1 << 20,
                                          &framed, &flen), 0);
    assert_true(flen < 2000);
    vt_grpc_reader_init(&r, 1000 + flen);
    assert_int_equal(vt_grpc_reader_feed(&r, framed, flen), 0);
    assert_int_equal(vt_grpc_reader_finish(&r, &codec, VT_GRPC_ENC_GZIP, &msg, &len),
                     VT_GRPC_RESOURCE_EXHAUSTED);
    vt_grpc_reader_free(&r);
    free(framed);
    free(zeros);
    vt_grpc_codec_free(&codec);
}

/* ---------------------------------------------------------------- interop modes */

/* --serve PORT: an echo server for grpc-js clients (stops on SIGTERM/stdin EOF). */
static void stop_on_signal(uv_signal_t *s, int sig)
{
    uv_stop(s->loop);
}

static int serve(int port)
{
    struct fx f = {0};
    uv_loop_init(&f.loop);
    vt_grpc_server_init(&f.loop, &f.srv, NULL);
    vt_grpc_server_register(f.srv, M_ECHO, echo_handler, &f);
    vt_grpc_server_register(f.srv, M_DEFER, deferred_handler, &f);
    char addr[32];
    snprintf(addr, sizeof(addr), "127.0.0.1:%d", port);
    int rc = vt_grpc_server_listen(f.srv, addr);
    if (rc) {
        fprintf(stderr, "listen %s: %s\n", addr, uv_strerror(rc));
        return 1;
    }
    printf("listening %d\n", vt_grpc_server_port(f.srv));
    fflush(stdout);
    uv_signal_t sig;
    uv_signal_init(&f.loop, &sig);
    uv_signal_start(&sig, stop_on_signal, SIGTERM);
    uv_run(&f.loop, UV_RUN_DEFAULT);
    /* Clean shutdown, so LeakSanitizer judges the server too. */
    uv_close((uv_handle_t *)&sig, NULL);
    vt_grpc_server_close(f.srv, srv_closed, &f);
    uv_run(&f.loop, UV_RUN_DEFAULT);
    fprintf(stderr, "served %d calls\n", f.handled);
    return uv_loop_close(&f.loop) == 0 && f.srv_closed ? 0 : 1;
}

/* --call TARGET ENCODING: calls a grpc-js echo server: sizes 0, 10, 100 KiB,
 * 3 MiB, then an error status. Exits 0 only if every answer is right. */
static int call_mode(const char *target, const char *encname)
{
    struct fx f = {0};
    uv_loop_init(&f.loop);
    int enc = vt_grpc_encoding_parse(encname, strlen(encname));
    struct vt_grpc_md md[] = {{"authorization", "Bearer interop"}};
    struct vt_grpc_client_opts o = {.target = target, .metadata = md, .n_metadata = 1,
                                    .compression = enc < 0 ? 0 : enc};
    if (vt_grpc_client_init(&f.loop, &f.cli, &o))
        return 2;
    size_t sizes[] = {0, 10, 100 * 1024, 3u << 20};
    int bad = 0;
    for (size_t i = 0; i < 4; i++) {
        uint8_t *m = pattern(sizes[i], (unsigned)i);
        struct result r;
        call_sync(&f, M_ECHO, m, sizes[i], 10000, &r);
        int ok = r.status == 0 && r.len == sizes[i] && (!r.len || !memcmp(r.resp, m, r.len));
        printf("call size=%zu status=%d (%s) ok=%d\n", sizes[i], r.status, r.message, ok);
        bad += !ok;
        free(m);
        free(r.resp);
    }
    struct result r;
    call_sync(&f, M_ECHO, "fail:9", 6, 10000, &r);
    printf("call fail status=%d message=%s\n", r.status, r.message);
    bad += r.status != 9;
    call_sync(&f, "/vitals.test.Echo/Missing", "x", 1, 10000, &r);
    printf("call missing status=%d\n", r.status);
    bad += r.status != VT_GRPC_UNIMPLEMENTED;
    vt_grpc_client_close(f.cli, cli_closed, &f);
    run_until(&f, &f.cli_closed, 5000);
    uv_run(&f.loop, UV_RUN_DEFAULT);
    uv_loop_close(&f.loop);
    return bad ? 1 : 0;
}

int main(int argc, char **argv)
{
    if (argc == 3 && strcmp(argv[1], "--serve") == 0)
        return serve(atoi(argv[2]));
    if (argc == 4 && strcmp(argv[1], "--call") == 0)
        return call_mode(argv[2], argv[3]);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_status_helpers),
        cmocka_unit_test(test_timeout_and_message_codec),
        cmocka_unit_test(test_reader_rules),
        cmocka_unit_test_setup_teardown(test_echo_small, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cork_holds_responses, setup, teardown),
        cmocka_unit_test_setup_teardown(test_echo_empty, setup, teardown),
        cmocka_unit_test_setup_teardown(test_echo_large, setup, teardown),
        cmocka_unit_test_setup_teardown(test_echo_zstd, setup, teardown),
        cmocka_unit_test_setup_teardown(test_echo_gzip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_error_status_and_message, setup, teardown),
        cmocka_unit_test_setup_teardown(test_deferred_response, setup, teardown),
        cmocka_unit_test_setup_teardown(test_deadline_exceeded, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reconnect_after_server_restart, setup, teardown),
        cmocka_unit_test_setup_teardown(test_many_concurrent_calls, setup, teardown),
        cmocka_unit_test_setup_teardown(test_oversize_and_bomb, setup, teardown),
        cmocka_unit_test_setup_teardown(test_client_disconnects_mid_call, setup, teardown),
        cmocka_unit_test_setup_teardown(test_garbage_peer_isolated, setup, teardown),
        cmocka_unit_test_setup_teardown(test_connection_limit_and_idle_timeout, setup, teardown),
        cmocka_unit_test_setup_teardown(test_curl_rules, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
