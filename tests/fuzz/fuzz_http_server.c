/*
 * fuzz_http_server.c - arbitrary bytes into the HTTP/1.1 server, end to end.
 *
 * The input is sent over a real loopback TCP connection to a server running
 * in this process's libuv loop (created once), followed by a half-close. The
 * loop runs until the server has answered what it could and closed the
 * connection. This drives the whole request path: http_parser callbacks, the
 * head arena, header/body limits, 100-continue, pipelining with the parser
 * paused and resumed from the stash, half-close handling and lingering close.
 * Invariants checked per input: the connection is always closed by the
 * server, within a bounded time, and no connection stays open.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include "http_server.h"

static uv_loop_t loop;
static vt_http_server server;
static int port;

static void handler(vt_http_request *req, void *data)
{
    (void)data;
    size_t len;
    const char *body = vt_http_request_body(req, &len);
    const char *ct = vt_http_request_header(req, "Content-Type");
    char q[32];
    (void)vt_http_query_param(vt_http_request_query(req), "b", q, sizeof q);
    if (ct && strstr(ct, "json"))
        vt_http_add_header(req, "Retry-After", "1");
    if (strcmp(vt_http_request_path(req), "/err") == 0)
        vt_http_respond_error(req, 500, body);
    else
        vt_http_respond(req, 200, ct ? ct : "text/plain", body, len);
}

static void setup(void)
{
    uv_loop_init(&loop);
    struct vt_http_server_options o = {
        .handler = handler,
        .max_header_bytes = 2048,
        .max_body_bytes = 4096,
        .idle_timeout_ms = 2000,
    };
    if (vt_http_server_init(&loop, &server, &o) != 0 ||
        vt_http_server_listen(&server, "127.0.0.1:0") != 0)
        abort();
    port = vt_http_server_port(&server);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!port)
        setup();
    if (size > 32768)
        size = 32768; /* fits the socket buffers: a blocking send never stalls */
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof a) != 0)
        abort();
    size_t off = 0;
    bool client_done = false;
    double t0 = now_s();
    while (!client_done) {
        if (off < size) {
            ssize_t w = send(fd, data + off, size - off, MSG_NOSIGNAL | MSG_DONTWAIT);
            if (w > 0)
                off += (size_t)w;
            else if (w < 0 && errno != EAGAIN)
                off = size; /* server already closed */
            if (off == size)
                shutdown(fd, SHUT_WR);
        } else if (size == 0 && off == 0) {
            shutdown(fd, SHUT_WR);
            off = 1; /* only once */
        }
        struct pollfd p[2] = {{fd, POLLIN, 0}, {uv_backend_fd(&loop), POLLIN, 0}};
        int wait = uv_backend_timeout(&loop); /* 0 when callbacks are queued */
        poll(p, 2, wait >= 0 && wait < 10 ? wait : 10);
        uv_run(&loop, UV_RUN_NOWAIT);
        char buf[8192];
        for (;;) {
            ssize_t n = recv(fd, buf, sizeof buf, MSG_DONTWAIT);
            if (n > 0)
                continue;
            if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK))
                client_done = true;
            break;
        }
        if (now_s() - t0 > 5) {
            fprintf(stderr, "server did not close the connection within 5 s\n");
            abort();
        }
    }
    close(fd);
    /* The server must not keep the connection (its close runs next turn). */
    for (int i = 0; i < 100; i++) {
        struct vt_http_server_stats st;
        vt_http_server_stats(&server, &st);
        if (st.connections_open == 0)
            return 0;
        poll(NULL, 0, 1);
        uv_run(&loop, UV_RUN_NOWAIT);
    }
    fprintf(stderr, "connection still open after the client went away\n");
    abort();
}
