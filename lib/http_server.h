/*
 * http_server.h - a small HTTP/1.1 server on a libuv loop.
 *
 * Both daemons speak HTTP/1.1 for things people and tools poke at: the
 * agent's admin port (/healthz, /readyz, /metrics) and OTLP/HTTP ingest, the
 * scorer's JSON API, /metrics and dashboard. This module is the one place that
 * turns bytes on a TCP connection into requests and responses; what a path
 * means is the program's business (one handler callback per server).
 *
 * Parsing is done by the packaged http_parser (never by hand). The server
 * handles keep-alive, pipelined requests (one at a time per connection: the
 * parser is paused while a response is pending), `Connection: close`, HEAD,
 * `Expect: 100-continue`, chunked request bodies, and enforces limits: header
 * bytes (431), body bytes (413), open connections (excess ones are accepted
 * and closed at once, counted), and an idle / slow-request timeout (a client
 * that trickles bytes is cut off when its request is not complete in time).
 * Malformed requests get 400 and the connection is closed.
 *
 * Threading: everything here runs on the loop thread, including
 * vt_http_respond(). A worker thread that finishes work for a deferred
 * request must hand the result back to the loop (uv_async_t) and respond there.
 *
 * Lifecycle (libuv style): the caller owns the vt_http_server struct;
 *   vt_http_server_init() -> vt_http_server_listen() -> ... ->
 *   vt_http_server_close(cb); the struct may be freed once cb has run.
 */
#ifndef VT_HTTP_SERVER_H
#define VT_HTTP_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

typedef struct vt_http_server vt_http_server;
typedef struct vt_http_request vt_http_request;
struct vt_http_conn; /* private */

/*
 * Called once per complete request (headers and whole body received), on the
 * loop thread. OWNERSHIP: from this call on the handler owns `req` and must
 * call vt_http_respond() (or one of its helpers) on it exactly once, either
 * before returning or from any later loop iteration. That call gives the
 * handle back; `req` must not be touched afterwards. If the client went away
 * (or the server was closed) in the meantime, responding is a harmless no-op
 * that still releases the handle, so there is no case in which the handler
 * frees or keeps anything else. While a response is pending the connection
 * reads no further request.
 */
typedef void (*vt_http_handler_cb)(vt_http_request *req, void *data);

typedef void (*vt_http_close_cb)(vt_http_server *server);

struct vt_http_server_options {
    vt_http_handler_cb handler; /* required */
    void *data;                 /* passed to handler */
    size_t max_header_bytes;    /* request line + headers; 0 -> 16 KiB; over -> 431 */
    size_t max_body_bytes;      /* 0 -> 1 MiB; over -> 413 and close */
    unsigned max_connections;   /* 0 -> 1024; excess connections closed at once */
    uint64_t idle_timeout_ms;   /* 0 -> 30000; see below */
};
/*
 * Timeouts: a connection is closed when it is idle between requests for
 * idle_timeout_ms, when a request's headers are not complete idle_timeout_ms
 * after its first byte (slow-loris), when a body makes no progress for
 * idle_timeout_ms, or when the client does not read a response for that
 * long. No timeout runs while the handler holds a deferred request.
 */

/* Counters, for the owner's /metrics. Read on the loop thread. */
struct vt_http_server_stats {
    uint64_t connections_accepted; /* all accepted, including rejected ones */
    uint64_t connections_rejected; /* over max_connections */
    uint64_t connections_timed_out;
    uint64_t requests;             /* complete requests handed to the handler */
    uint64_t bad_requests;         /* 400 (parse errors), 505 (not HTTP/1.x) */
    uint64_t too_large;            /* 413 + 431 */
    unsigned connections_open;
};

/* The server. Allocated by the caller; every field is private. */
struct vt_http_server {
    uv_loop_t *loop;
    struct vt_http_server_options opts;
    uv_tcp_t listener;
    uv_timer_t sweep; /* enforces timeouts */
    struct vt_http_conn *conns; /* intrusive doubly linked list of open conns */
    struct vt_http_server_stats stats;
    vt_http_close_cb close_cb;
    unsigned pending_closes; /* handles whose close callback has not run */
    int port;
    bool listening;
    bool closing;
    char *read_buf; /* shared read buffer: reads are consumed before returning */
    size_t read_buf_size;
};

/* Prepare `server` on `loop`. opts->handler is required; zero limits take the
 * defaults above. Returns 0 or a negative errno-style (UV_*) code. */
int vt_http_server_init(uv_loop_t *loop, vt_http_server *server,
                        const struct vt_http_server_options *opts);

/*
 * Bind and listen on "host:port": "127.0.0.1:7401", "0.0.0.0:0",
 * "[::1]:8080", "localhost:80" is NOT resolved (numeric addresses only),
 * ":7401" means 0.0.0.0. Port 0 picks a free port, see vt_http_server_port().
 * Returns 0, UV_EINVAL for a malformed address, or the UV_* bind/listen error
 * (e.g. UV_EADDRINUSE). Call at most once.
 */
int vt_http_server_listen(vt_http_server *server, const char *addr);

/* The bound TCP port after a successful listen, else 0. */
int vt_http_server_port(const vt_http_server *server);

/* Copy the counters. */
void vt_http_server_stats(const vt_http_server *server,
                          struct vt_http_server_stats *out);

/*
 * Stop listening and close every connection (pending deferred requests are
 * detached: responding to them later is a no-op). `cb` (may be NULL) runs
 * from the loop once every handle is closed; only then may the struct be
 * freed or the loop be closed. Safe to call once, also if listen was never
 * called or failed.
 */
void vt_http_server_close(vt_http_server *server, vt_http_close_cb cb);

/* ---- the request (valid from the handler call until it is responded to) */

/* "GET", "POST", "HEAD", ... (static string). */
const char *vt_http_request_method(const vt_http_request *req);
/* True for HEAD; the response then carries headers only (Content-Length of
 * the body that was passed). Handlers can treat HEAD as GET. */
bool vt_http_request_is_head(const vt_http_request *req);
/* The path of the request target without the query string, as sent (not
 * percent-decoded), e.g. "/v1/scores/x". Never NULL. */
const char *vt_http_request_path(const vt_http_request *req);
/* The raw query string after '?', without it; "" when there is none. */
const char *vt_http_request_query(const vt_http_request *req);
/* Value of the first header named `name` (case-insensitive), or NULL. */
const char *vt_http_request_header(const vt_http_request *req, const char *name);
/* The body (chunked bodies are de-chunked); *len gets its length. The bytes
 * are NUL-terminated for convenience (the NUL is not counted). Owned by the
 * request. */
const char *vt_http_request_body(const vt_http_request *req, size_t *len);
/* False once the client has gone away or the server is closing; a deferred
 * handler may use it to skip work. Responding is safe either way. */
bool vt_http_request_alive(const vt_http_request *req);

/*
 * Look up query parameter `name` in a query string ("a=1&b=x%20y"), decode
 * it (percent-escapes and '+') into out (NUL-terminated). Returns the decoded
 * length, -ENOENT if absent, -ENOSPC if it does not fit in outsz.
 */
int vt_http_query_param(const char *query, const char *name, char *out,
                        size_t outsz);

/* ---- the response */

/* Add a response header line (e.g. "Retry-After", "120"; "Content-Encoding",
 * "gzip") to be sent by the next vt_http_respond on this request. Copied.
 * Content-Type, Content-Length and Connection are set by the server.
 * Returns 0, -EINVAL for CR/LF in name or value, -ENOMEM. */
int vt_http_add_header(vt_http_request *req, const char *name,
                       const char *value);

/*
 * Send the response and release `req` (see vt_http_handler_cb). The body is
 * copied; content_type may be NULL when len is 0. Status 100..599.
 * Returns 0 when the response was queued, -ECONNRESET when the connection is
 * gone (nothing sent, handle released all the same).
 */
int vt_http_respond(vt_http_request *req, int status, const char *content_type,
                    const void *body, size_t len);

/* Helpers: respond with a NUL-terminated JSON text ("application/json"), or
 * with {"error": "<msg>"} (msg escaped). Same contract as vt_http_respond. */
int vt_http_respond_json(vt_http_request *req, int status, const char *json);
int vt_http_respond_error(vt_http_request *req, int status, const char *msg);

/* Reason phrase for a status code ("OK", "Not Found", ...; "Unknown"). */
const char *vt_http_status_text(int status);

#endif
