/*
 * test_http_server.c - the HTTP/1.1 server against real clients.
 *
 * Each test runs a server on 127.0.0.1:0 in its own libuv loop on a thread
 * and talks to it over real TCP: curl (popen) and raw blocking sockets with
 * receive timeouts, so every test is bounded in time. Server counters are
 * read only after the loop thread has been joined.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include "http_server.h"

/* cmocka's asserts longjmp, which must not happen on the loop thread:
 * checks inside handlers abort loudly instead. */
#define EXPECT(cond)                                                                   \
    do {                                                                               \
        if (!(cond)) {                                                                 \
            fprintf(stderr, "%s:%d: EXPECT(%s) failed on the loop thread\n", __FILE__, \
                    __LINE__, #cond);                                                  \
            abort();                                                                   \
        }                                                                              \
    } while (0)

/* ---- the server under test */

struct srv {
    uv_loop_t loop;
    vt_http_server http;
    uv_async_t stop;
    pthread_t thread;
    int port;
    atomic_int deferred_done;     /* deferred responses attempted */
    atomic_int deferred_reset;    /* ... that returned -ECONNRESET */
    atomic_int deferred_alive;    /* ... whose request was still alive */
};

struct deferred {
    uv_timer_t timer;
    vt_http_request *req;
    struct srv *srv;
};

static void on_deferred_closed(uv_handle_t *h) { free(h->data); }

static void on_deferred(uv_timer_t *t)
{
    struct deferred *d = t->data;
    if (vt_http_request_alive(d->req))
        atomic_fetch_add(&d->srv->deferred_alive, 1);
    int rc = vt_http_respond(d->req, 200, "text/plain", "deferred\n", 9);
    atomic_fetch_add(&d->srv->deferred_done, 1);
    if (rc == -ECONNRESET)
        atomic_fetch_add(&d->srv->deferred_reset, 1);
    else
        EXPECT(rc == 0);
    uv_close((uv_handle_t *)&d->timer, on_deferred_closed);
}

static void handler(vt_http_request *req, void *data)
{
    struct srv *s = data;
    const char *path = vt_http_request_path(req);
    const char *query = vt_http_request_query(req);
    if (strcmp(path, "/echo") == 0) {
        size_t len;
        const char *body = vt_http_request_body(req, &len);
        const char *ct = vt_http_request_header(req, "content-type");
        char head[512];
        int n = snprintf(head, sizeof head, "method=%s path=%s query=%s len=%zu ct=%s\n",
                         vt_http_request_method(req), path, query, len, ct ? ct : "-");
        char *out = malloc((size_t)n + len);
        memcpy(out, head, (size_t)n);
        memcpy(out + n, body, len);
        EXPECT(body[len] == '\0');
        bool echo = strstr(query, "noecho") == NULL;
        vt_http_respond(req, 200, "text/plain", out, (size_t)n + (echo ? len : 0));
        free(out);
    } else if (strcmp(path, "/defer") == 0) {
        char ms[16];
        EXPECT(vt_http_query_param(query, "ms", ms, sizeof ms) > 0);
        struct deferred *d = calloc(1, sizeof *d);
        d->req = req;
        d->srv = s;
        uv_timer_init(&s->loop, &d->timer);
        d->timer.data = d;
        uv_timer_start(&d->timer, on_deferred, (uint64_t)atoi(ms), 0);
    } else if (strcmp(path, "/busy") == 0) {
        EXPECT(vt_http_add_header(req, "Retry-After", "7") == 0);
        EXPECT(vt_http_add_header(req, "X-Bad", "a\r\nb") == -EINVAL);
        vt_http_respond_error(req, 429, "slow \"down\"");
    } else if (strcmp(path, "/json") == 0) {
        vt_http_respond_json(req, 200, "{\"ok\": true}");
    } else if (strcmp(path, "/empty") == 0) {
        vt_http_respond(req, 204, NULL, NULL, 0);
    } else {
        vt_http_respond_error(req, 404, "not found");
    }
}

static void on_stop(uv_async_t *a)
{
    struct srv *s = a->data;
    vt_http_server_close(&s->http, NULL);
    uv_close((uv_handle_t *)&s->stop, NULL);
}

static void *loop_thread(void *arg)
{
    struct srv *s = arg;
    uv_run(&s->loop, UV_RUN_DEFAULT);
    return NULL;
}

static struct srv *start(size_t max_body, unsigned max_conns, uint64_t idle_ms)
{
    struct srv *s = calloc(1, sizeof *s);
    assert_int_equal(uv_loop_init(&s->loop), 0);
    struct vt_http_server_options o = {
        .handler = handler,
        .data = s,
        .max_body_bytes = max_body,
        .max_connections = max_conns,
        .idle_timeout_ms = idle_ms,
        .max_header_bytes = 4096,
    };
    assert_int_equal(vt_http_server_init(&s->loop, &s->http, &o), 0);
    assert_int_equal(vt_http_server_listen(&s->http, "127.0.0.1:0"), 0);
    s->port = vt_http_server_port(&s->http);
    assert_true(s->port > 0);
    uv_async_init(&s->loop, &s->stop, on_stop);
    s->stop.data = s;
    assert_int_equal(pthread_create(&s->thread, NULL, loop_thread, s), 0);
    return s;
}

/* Stop the server, join, check the loop is empty; returns the stats. */
static struct vt_http_server_stats stop(struct srv *s)
{
    uv_async_send(&s->stop);
    pthread_join(s->thread, NULL);
    struct vt_http_server_stats st;
    vt_http_server_stats(&s->http, &st);
    assert_int_equal(st.connections_open, 0);
    assert_int_equal(uv_loop_close(&s->loop), 0); /* every handle closed */
    return st;
}

/* ---- raw client */

static int dial(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    struct timeval tv = {5, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
    return fd;
}

static void send_str(int fd, const char *s, size_t n)
{
    while (n > 0) {
        ssize_t w = send(fd, s, n, MSG_NOSIGNAL);
        assert_true(w > 0);
        s += w;
        n -= (size_t)w;
    }
}
#define SEND(fd, lit) send_str(fd, lit, strlen(lit))

struct resp {
    int status;
    char head[2048];
    char body[65536];
    size_t body_len;
};

/* Reader with carry-over, so pipelined responses can be read one by one. */
struct reader {
    int fd;
    char buf[1 << 17];
    size_t len;
};

static int fill(struct reader *r)
{
    ssize_t n = recv(r->fd, r->buf + r->len, sizeof r->buf - r->len, 0);
    if (n > 0)
        r->len += (size_t)n;
    return (int)n;
}

/* Read one response; body per Content-Length (none for HEAD when head_only).
 * Returns 0, or -1 on EOF/timeout before a full response. */
static int read_resp(struct reader *r, struct resp *out, bool head_only)
{
    char *end;
    while (!(end = memmem(r->buf, r->len, "\r\n\r\n", 4)))
        if (fill(r) <= 0)
            return -1;
    size_t hlen = (size_t)(end - r->buf) + 4;
    assert_true(hlen < sizeof out->head);
    memcpy(out->head, r->buf, hlen);
    out->head[hlen] = '\0';
    out->status = atoi(out->head + 9);
    size_t clen = 0;
    char *cl = strcasestr(out->head, "\r\ncontent-length:");
    if (cl && !head_only)
        clen = (size_t)strtoul(cl + 17, NULL, 10);
    while (r->len < hlen + clen)
        if (fill(r) <= 0)
            return -1;
    assert_true(clen < sizeof out->body);
    memcpy(out->body, r->buf + hlen, clen);
    out->body[clen] = '\0';
    out->body_len = clen;
    memmove(r->buf, r->buf + hlen + clen, r->len - hlen - clen);
    r->len -= hlen + clen;
    return 0;
}

/* True when the server closes the connection (EOF or reset) within the
 * receive timeout, after any bytes it still sends. */
static bool closed_by_server(int fd)
{
    char b[4096];
    for (;;) {
        ssize_t n = recv(fd, b, sizeof b, 0);
        if (n == 0)
            return true;
        if (n < 0)
            return errno == ECONNRESET;
    }
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Run a shell command, capture its stdout. */
static char *run(const char *cmd)
{
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    static char out[1 << 16];
    size_t n = fread(out, 1, sizeof out - 1, p);
    out[n] = '\0';
    assert_int_equal(pclose(p), 0);
    return out;
}

/* ---- tests */

static void test_curl_basic(void **state)
{
    struct srv *s = start(1 << 20, 0, 0);
    char cmd[1024];
    snprintf(cmd, sizeof cmd,
             "curl -sS --max-time 10 'http://127.0.0.1:%d/echo?x=1&y=a%%20b'", s->port);
    assert_string_equal(run(cmd), "method=GET path=/echo query=x=1&y=a%20b len=0 ct=-\n");

    /* Keep-alive: two URLs in one curl reuse one connection. */
    snprintf(cmd, sizeof cmd,
             "curl -sS --max-time 10 -o /dev/null -o /dev/null -w '%%{http_code} %%{num_connects}\\n' "
             "http://127.0.0.1:%d/json http://127.0.0.1:%d/nope",
             s->port, s->port);
    assert_string_equal(run(cmd), "200 1\n404 0\n");

    /* Extra headers, JSON error helper. */
    snprintf(cmd, sizeof cmd, "curl -sS --max-time 10 -i http://127.0.0.1:%d/busy", s->port);
    char *out = run(cmd);
    assert_non_null(strstr(out, "HTTP/1.1 429 Too Many Requests\r\n"));
    assert_non_null(strstr(out, "\r\nRetry-After: 7\r\n"));
    assert_non_null(strstr(out, "Content-Type: application/json\r\n"));
    assert_non_null(strstr(out, "{\"error\": \"slow \\\"down\\\"\"}"));

    /* POST a 300 KB body, once plainly, once with 100-continue, once chunked. */
    char path[] = "/tmp/vt_http_body_XXXXXX";
    int fd = mkstemp(path);
    char *big = malloc(300000);
    for (int i = 0; i < 300000; i++)
        big[i] = (char)('a' + i % 26);
    assert_int_equal(write(fd, big, 300000), 300000);
    close(fd);
    const char *variants[] = {"-H 'Expect:'", "-H 'Expect: 100-continue'",
                              "-H 'Transfer-Encoding: chunked'"};
    for (int v = 0; v < 3; v++) {
        snprintf(cmd, sizeof cmd,
                 "curl -sS --max-time 10 %s -H 'Content-Type: application/x-protobuf' "
                 "--data-binary @%s 'http://127.0.0.1:%d/echo?noecho'",
                 variants[v], path, s->port);
        assert_string_equal(run(cmd),
                            "method=POST path=/echo query=noecho len=300000 "
                            "ct=application/x-protobuf\n");
    }
    /* Over the limit: 413 (the server answers before reading the body). */
    snprintf(cmd, sizeof cmd,
             "head -c 1100000 /dev/zero > %s && curl -s --max-time 10 -o /dev/null -w "
             "'%%{http_code}' --data-binary @%s http://127.0.0.1:%d/echo",
             path, path, s->port);
    assert_string_equal(run(cmd), "413");
    unlink(path);
    free(big);
    struct vt_http_server_stats st = stop(s);
    assert_int_equal(st.requests, 7);
    assert_int_equal(st.too_large, 1);
    assert_int_equal(st.connections_accepted, 7);
    free(s);
}

static void test_raw_keepalive_pipelining_head(void **state)
{
    struct srv *s = start(0, 0, 0);
    struct reader *r = calloc(1, sizeof *r);
    struct resp *resp = calloc(1, sizeof *resp);
    r->fd = dial(s->port);
    /* Sequential requests on one connection. */
    for (int i = 0; i < 3; i++) {
        SEND(r->fd, "GET /json HTTP/1.1\r\nHost: x\r\n\r\n");
        assert_int_equal(read_resp(r, resp, false), 0);
        assert_int_equal(resp->status, 200);
        assert_string_equal(resp->body, "{\"ok\": true}");
    }
    /* Pipelined: three requests in one write, one of them a deferred one;
     * answers come in order. */
    SEND(r->fd, "GET /defer?ms=50 HTTP/1.1\r\nHost: x\r\n\r\n"
                "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello"
                "HEAD /echo?h HTTP/1.1\r\nHost: x\r\n\r\n"
                "GET /empty HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_int_equal(read_resp(r, resp, false), 0);
    assert_string_equal(resp->body, "deferred\n");
    assert_int_equal(read_resp(r, resp, false), 0);
    assert_string_equal(resp->body, "method=POST path=/echo query= len=5 ct=-\nhello");
    /* HEAD: a Content-Length, but no body bytes follow the headers. */
    assert_int_equal(read_resp(r, resp, true), 0);
    assert_int_equal(resp->status, 200);
    char clen[64];
    snprintf(clen, sizeof clen, "Content-Length: %zu\r\n",
             strlen("method=HEAD path=/echo query=h len=0 ct=-\n"));
    assert_non_null(strstr(resp->head, clen));
    assert_int_equal(read_resp(r, resp, false), 0);
    assert_int_equal(resp->status, 204);
    assert_null(strstr(resp->head, "Content-Length"));
    /* Chunked request body by hand, then Connection: close. */
    SEND(r->fd, "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
                "Connection: close\r\n\r\n3\r\nabc\r\n4\r\ndefg\r\n0\r\n\r\n");
    assert_int_equal(read_resp(r, resp, false), 0);
    assert_string_equal(resp->body, "method=POST path=/echo query= len=7 ct=-\nabcdefg");
    assert_non_null(strstr(resp->head, "Connection: close\r\n"));
    assert_true(closed_by_server(r->fd));
    close(r->fd);

    /* HTTP/1.0: closes after the answer unless keep-alive is asked for. */
    r->fd = dial(s->port);
    r->len = 0;
    SEND(r->fd, "GET /json HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
    assert_int_equal(read_resp(r, resp, false), 0);
    assert_non_null(strstr(resp->head, "Connection: keep-alive\r\n"));
    SEND(r->fd, "GET /json HTTP/1.0\r\n\r\n");
    assert_int_equal(read_resp(r, resp, false), 0);
    assert_true(closed_by_server(r->fd));
    close(r->fd);

    struct vt_http_server_stats st = stop(s);
    assert_int_equal(st.requests, 10);
    assert_int_equal(st.connections_accepted, 2);
    free(r);
    free(resp);
    free(s);
}

static void test_expect_continue_raw(void **state)
{
    struct srv *s = start(1000, 0, 0);
    struct reader *r = calloc(1, sizeof *r);
    struct resp *resp = calloc(1, sizeof *resp);
    r->fd = dial(s->port);
    SEND(r->fd, "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n"
                "Expect: 100-continue\r\n\r\n");
    /* The interim answer arrives before we send the body. */
    assert_int_equal(read_resp(r, resp, false), 0);
    assert_int_equal(resp->status, 100);
    SEND(r->fd, "body");
    assert_int_equal(read_resp(r, resp, false), 0);
    assert_int_equal(resp->status, 200);
    assert_string_equal(resp->body, "method=POST path=/echo query= len=4 ct=-\nbody");
    /* Too big with 100-continue: 413 at once, no 100, then close. */
    SEND(r->fd, "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\n"
                "Expect: 100-continue\r\n\r\n");
    assert_int_equal(read_resp(r, resp, false), 0);
    assert_int_equal(resp->status, 413);
    assert_true(closed_by_server(r->fd));
    close(r->fd);
    /* Chunked body growing over the limit: 413 while the client is still
     * sending; the client still gets the answer (no reset). */
    r->fd = dial(s->port);
    r->len = 0;
    SEND(r->fd, "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n");
    char chunk[600];
    memset(chunk, 'z', sizeof chunk);
    for (int i = 0; i < 3; i++) {
        SEND(r->fd, "258\r\n"); /* 600 bytes */
        send_str(r->fd, chunk, sizeof chunk);
        SEND(r->fd, "\r\n");
    }
    assert_int_equal(read_resp(r, resp, false), 0);
    assert_int_equal(resp->status, 413);
    assert_true(closed_by_server(r->fd));
    close(r->fd);
    struct vt_http_server_stats st = stop(s);
    assert_int_equal(st.too_large, 2);
    assert_int_equal(st.requests, 1);
    free(r);
    free(resp);
    free(s);
}

static void test_bad_requests(void **state)
{
    struct srv *s = start(0, 0, 0);
    struct reader *r = calloc(1, sizeof *r);
    struct resp *resp = calloc(1, sizeof *resp);
    const char *bad[] = {
        "GARBAGE\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
        "GET / HTTP/9.9\r\n\r\n",
        "POST /echo HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        "GET /\x01 HTTP/1.1\r\n\r\n",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        r->fd = dial(s->port);
        r->len = 0;
        SEND(r->fd, bad[i]);
        assert_int_equal(read_resp(r, resp, false), 0);
        if (resp->status != 400)
            fprintf(stderr, "bad request %zu got %d\n", i, resp->status);
        assert_int_equal(resp->status, i == 2 ? 505 : 400);
        assert_non_null(strstr(resp->head, "Connection: close\r\n"));
        assert_true(closed_by_server(r->fd));
        close(r->fd);
    }
    /* Headers over max_header_bytes (4096 here): 431. */
    r->fd = dial(s->port);
    r->len = 0;
    SEND(r->fd, "GET / HTTP/1.1\r\nX-Big: ");
    char big[5000];
    memset(big, 'b', sizeof big);
    send_str(r->fd, big, sizeof big);
    SEND(r->fd, "\r\n\r\n");
    assert_int_equal(read_resp(r, resp, false), 0);
    assert_int_equal(resp->status, 431);
    assert_true(closed_by_server(r->fd));
    close(r->fd);
    /* A good request after all that is still served. */
    r->fd = dial(s->port);
    r->len = 0;
    SEND(r->fd, "GET /json HTTP/1.1\r\n\r\n");
    assert_int_equal(read_resp(r, resp, false), 0);
    assert_int_equal(resp->status, 200);
    close(r->fd);
    struct vt_http_server_stats st = stop(s);
    assert_int_equal(st.bad_requests, 5);
    assert_int_equal(st.too_large, 1);
    assert_int_equal(st.requests, 1);
    free(r);
    free(resp);
    free(s);
}

static void test_deferred_and_client_gone(void **state)
{
    struct srv *s = start(0, 0, 0);
    struct reader *r = calloc(1, sizeof *r);
    struct resp *resp = calloc(1, sizeof *resp);
    /* A deferred answer arrives after its timer. */
    r->fd = dial(s->port);
    double t0 = now_s();
    SEND(r->fd, "GET /defer?ms=150 HTTP/1.1\r\n\r\n");
    assert_int_equal(read_resp(r, resp, false), 0);
    assert_true(now_s() - t0 >= 0.14);
    assert_string_equal(resp->body, "deferred\n");
    close(r->fd);

    /* Client closes (FIN) before the answer: no crash, no leak. */
    int fd = dial(s->port);
    SEND(fd, "GET /defer?ms=200 HTTP/1.1\r\n\r\n");
    usleep(50000);
    close(fd);
    /* Client resets (RST) before the answer: the request is detached and the
     * late respond is a no-op returning -ECONNRESET. */
    fd = dial(s->port);
    SEND(fd, "GET /defer?ms=200 HTTP/1.1\r\n\r\n");
    usleep(50000);
    struct linger lg = {1, 0};
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    close(fd);
    /* Server closed while a request is pending: same. */
    fd = dial(s->port);
    SEND(fd, "GET /defer?ms=300 HTTP/1.1\r\n\r\n");
    for (int i = 0; i < 200 && atomic_load(&s->deferred_done) < 3; i++)
        usleep(10000);
    assert_int_equal(atomic_load(&s->deferred_done), 3);
    struct vt_http_server_stats st = stop(s); /* joins after the last timer */
    assert_int_equal(atomic_load(&s->deferred_done), 4);
    assert_int_equal(atomic_load(&s->deferred_reset), 2); /* RST + server closed */
    assert_true(closed_by_server(fd));
    close(fd);
    assert_int_equal(st.requests, 4);
    free(r);
    free(resp);
    free(s);
}

static void test_idle_and_slowloris(void **state)
{
    struct srv *s = start(0, 0, 200);
    /* Silent connection: closed after ~200 ms. */
    double t0 = now_s();
    int fd = dial(s->port);
    assert_true(closed_by_server(fd));
    double idle = now_s() - t0;
    close(fd);
    assert_true(idle >= 0.15 && idle < 1.5);
    /* Slow-loris: a byte every 40 ms does not keep the request alive. */
    t0 = now_s();
    fd = dial(s->port);
    const char *req = "GET /json HTTP/1.1\r\nHost: xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\r\n\r\n";
    bool closed = false;
    for (const char *p = req; *p; p++) {
        if (send(fd, p, 1, MSG_NOSIGNAL) != 1) {
            closed = true;
            break;
        }
        usleep(40000);
        if (now_s() - t0 > 1.0)
            break;
    }
    assert_true(closed || closed_by_server(fd));
    assert_true(now_s() - t0 < 1.5);
    close(fd);
    /* Keep-alive idle after a response: closed too. */
    struct reader *r = calloc(1, sizeof *r);
    struct resp *resp = calloc(1, sizeof *resp);
    r->fd = dial(s->port);
    SEND(r->fd, "GET /json HTTP/1.1\r\n\r\n");
    assert_int_equal(read_resp(r, resp, false), 0);
    assert_true(closed_by_server(r->fd));
    close(r->fd);
    struct vt_http_server_stats st = stop(s);
    assert_int_equal(st.connections_timed_out, 3);
    free(r);
    free(resp);
    free(s);
}

static void test_max_connections(void **state)
{
    struct srv *s = start(0, 2, 0);
    struct reader *r = calloc(1, sizeof *r);
    struct resp *resp = calloc(1, sizeof *resp);
    int fds[2];
    for (int i = 0; i < 2; i++) { /* two live connections, proven by a request */
        r->fd = fds[i] = dial(s->port);
        r->len = 0;
        SEND(r->fd, "GET /json HTTP/1.1\r\n\r\n");
        assert_int_equal(read_resp(r, resp, false), 0);
    }
    int third = dial(s->port); /* the kernel accepts; the server closes it */
    assert_true(closed_by_server(third));
    close(third);
    close(fds[0]);
    usleep(100000); /* let the server see the close */
    r->fd = dial(s->port);
    r->len = 0;
    SEND(r->fd, "GET /json HTTP/1.1\r\n\r\n");
    assert_int_equal(read_resp(r, resp, false), 0);
    assert_int_equal(resp->status, 200);
    close(r->fd);
    close(fds[1]);
    struct vt_http_server_stats st = stop(s);
    assert_int_equal(st.connections_rejected, 1);
    assert_int_equal(st.connections_accepted, 4);
    free(r);
    free(resp);
    free(s);
}

static void on_closed_flag(vt_http_server *srv) { *(int *)srv->opts.data = 1; }

static void test_listen_addresses_and_query(void **state)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    int closed = 0;
    struct vt_http_server_options o = {.handler = handler, .data = &closed};
    vt_http_server a, b, c;
    assert_int_equal(vt_http_server_init(&loop, &a, &o), 0);
    assert_int_equal(vt_http_server_listen(&a, "nonsense"), UV_EINVAL);
    assert_int_equal(vt_http_server_listen(&a, "127.0.0.1:99999"), UV_EINVAL);
    assert_int_equal(vt_http_server_listen(&a, "[::1:80"), UV_EINVAL);
    assert_int_equal(vt_http_server_listen(&a, "127.0.0.1:0"), 0);
    assert_true(vt_http_server_port(&a) > 0);
    /* Same port twice: EADDRINUSE, reported. */
    char addr[64];
    snprintf(addr, sizeof addr, "127.0.0.1:%d", vt_http_server_port(&a));
    assert_int_equal(vt_http_server_init(&loop, &b, &o), 0);
    assert_int_equal(vt_http_server_listen(&b, addr), UV_EADDRINUSE);
    assert_int_equal(vt_http_server_port(&b), 0);
    assert_int_equal(vt_http_server_init(&loop, &c, &o), 0);
    int rc6 = vt_http_server_listen(&c, "[::1]:0");
    if (rc6 == 0)
        assert_true(vt_http_server_port(&c) > 0);
    else
        fprintf(stderr, "note: no IPv6 loopback here (%s)\n", uv_strerror(rc6));
    vt_http_server_close(&a, on_closed_flag);
    vt_http_server_close(&b, NULL);
    vt_http_server_close(&c, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(closed, 1);
    assert_int_equal(uv_loop_close(&loop), 0);

    char out[32];
    assert_int_equal(vt_http_query_param("from=10&to=a%2Fb+c&x", "to", out, sizeof out), 5);
    assert_string_equal(out, "a/b c");
    assert_int_equal(vt_http_query_param("from=10&to=2", "from", out, sizeof out), 2);
    assert_string_equal(out, "10");
    assert_int_equal(vt_http_query_param("from=10&x", "x", out, sizeof out), 0);
    assert_int_equal(vt_http_query_param("fromx=1", "from", out, sizeof out), -ENOENT);
    assert_int_equal(vt_http_query_param("", "from", out, sizeof out), -ENOENT);
    assert_int_equal(vt_http_query_param("a=0123456789", "a", out, 4), -ENOSPC);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_curl_basic),
        cmocka_unit_test(test_raw_keepalive_pipelining_head),
        cmocka_unit_test(test_expect_continue_raw),
        cmocka_unit_test(test_bad_requests),
        cmocka_unit_test(test_deferred_and_client_gone),
        cmocka_unit_test(test_idle_and_slowloris),
        cmocka_unit_test(test_max_connections),
        cmocka_unit_test(test_listen_addresses_and_query),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
