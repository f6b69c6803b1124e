/*
 * grpc.h - unary gRPC over HTTP/2 (h2c, nghttp2) on a libuv loop.
 *
 * vitals speaks gRPC in two places: the agent pushes batches to the scorer
 * (vitals.v1.Collector/Push) and the agent accepts OTLP/gRPC spans from
 * applications (TraceService/Export). Both are unary calls, so this module
 * implements exactly that: one request message, one response message, a
 * status in trailers. No streaming RPCs, no TLS (yet), no HTTP/1.1 upgrade:
 * h2c with prior knowledge, as every gRPC client does for plain-text targets.
 *
 * Wire format and rules follow grpc/grpc doc/PROTOCOL-HTTP2.md and
 * doc/compression.md (see /work/shared/REFERENCES.md). Message encodings
 * understood in both directions: identity, gzip, zstd.
 *
 * Threading: every function here must be called on the loop's thread. All
 * callbacks run on that thread, from the loop, never from inside the call that
 * registered them (no re-entrancy surprises).
 *
 * Errors: functions returning int return 0 on success or a negative
 * errno-style code (libuv's UV_E* values, e.g. UV_EINVAL, UV_EADDRINUSE,
 * UV_ENOMEM). gRPC outcomes are reported as enum vt_grpc_status codes.
 */
#ifndef VT_GRPC_H
#define VT_GRPC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

/* gRPC status codes (grpc/grpc doc/statuscodes.md). */
enum vt_grpc_status {
    VT_GRPC_OK = 0,
    VT_GRPC_CANCELLED = 1,
    VT_GRPC_UNKNOWN = 2,
    VT_GRPC_INVALID_ARGUMENT = 3,
    VT_GRPC_DEADLINE_EXCEEDED = 4,
    VT_GRPC_NOT_FOUND = 5,
    VT_GRPC_ALREADY_EXISTS = 6,
    VT_GRPC_PERMISSION_DENIED = 7,
    VT_GRPC_RESOURCE_EXHAUSTED = 8,
    VT_GRPC_FAILED_PRECONDITION = 9,
    VT_GRPC_ABORTED = 10,
    VT_GRPC_OUT_OF_RANGE = 11,
    VT_GRPC_UNIMPLEMENTED = 12,
    VT_GRPC_INTERNAL = 13,
    VT_GRPC_UNAVAILABLE = 14,
    VT_GRPC_DATA_LOSS = 15,
    VT_GRPC_UNAUTHENTICATED = 16,
};

/* "OK", "CANCELLED", ... "UNAUTHENTICATED"; "UNKNOWN_CODE" outside 0..16.
 * Returns a static string. */
const char *vt_grpc_status_name(int code);

/* True for the codes an exporter retries with backoff (OTLP spec list):
 * CANCELLED, DEADLINE_EXCEEDED, ABORTED, OUT_OF_RANGE, UNAVAILABLE, DATA_LOSS.
 * RESOURCE_EXHAUSTED is retryable only with RetryInfo, which this module does
 * not carry, so it is reported as not retryable. */
bool vt_grpc_status_retryable(int code);

/* Message encodings (the grpc-encoding header). */
enum vt_grpc_encoding {
    VT_GRPC_ENC_IDENTITY = 0,
    VT_GRPC_ENC_GZIP = 1,
    VT_GRPC_ENC_ZSTD = 2,
};

/* ------------------------------------------------------------------------
 * Server
 * ------------------------------------------------------------------------ */

typedef struct vt_grpc_server vt_grpc_server_t;
typedef struct vt_grpc_call vt_grpc_call_t;

struct vt_grpc_server_opts {
    /* Largest request message accepted, after decompression; the compressed
     * size is bounded by the same figure. Bigger → RESOURCE_EXHAUSTED.
     * 0 → 64 MiB (the OTLP recommendation). */
    size_t max_message_bytes;
    /* SETTINGS_MAX_CONCURRENT_STREAMS per connection. 0 → 100. */
    uint32_t max_concurrent_streams;
    /* Connections beyond this are accepted and closed at once. 0 → 1024. */
    uint32_t max_connections;
    /* A connection with no open stream for this long is closed (GOAWAY).
     * 0 → 300000 (5 min). */
    uint64_t idle_timeout_ms;
};

/* Handler of one unary method. It owns `call` from now until it passes it to
 * vt_grpc_respond(), which it must do exactly once — at once or later (after a
 * fsync, a worker thread round-trip...). `data` is the pointer given to
 * vt_grpc_server_register(). */
typedef void (*vt_grpc_handler_cb)(vt_grpc_call_t *call, void *data);

/* Called once the server has closed its listener and every connection. */
typedef void (*vt_grpc_server_close_cb)(vt_grpc_server_t *srv, void *data);

/* Allocate a server on `loop`. `opts` may be NULL (all defaults); it is
 * copied. On success *out is set and must eventually be given to
 * vt_grpc_server_close(). Returns 0, UV_EINVAL or UV_ENOMEM. */
int vt_grpc_server_init(uv_loop_t *loop, vt_grpc_server_t **out,
                        const struct vt_grpc_server_opts *opts);

/* Register `handler` for the full method path, e.g.
 * "/vitals.v1.Collector/Push". The path is copied. Registering the same path
 * twice replaces the handler. Calls to unregistered paths get UNIMPLEMENTED.
 * Returns 0, UV_EINVAL or UV_ENOMEM. */
int vt_grpc_server_register(vt_grpc_server_t *srv, const char *path,
                            vt_grpc_handler_cb handler, void *data);

/* Bind and listen on "host:port" (IPv4 dotted quad, "[v6]:port", "host:port"
 * with a numeric address, or "localhost"). Port 0 picks a free port; read it
 * back with vt_grpc_server_port(). Only one listener per server. Returns 0
 * or a negative libuv error (UV_EADDRINUSE, UV_EINVAL, ...). */
int vt_grpc_server_listen(vt_grpc_server_t *srv, const char *addr);

/* The bound TCP port after a successful listen, else 0. */
int vt_grpc_server_port(const vt_grpc_server_t *srv);

/* Number of open connections (for metrics and tests). */
uint32_t vt_grpc_server_connections(const vt_grpc_server_t *srv);

/* Stop listening, close every connection (in-flight calls become dead: their
 * vt_grpc_respond() is a no-op), then call `cb` (may be NULL). After `cb`
 * the server pointer must not be used by the caller; its memory is released
 * once the last outstanding call has also been passed to vt_grpc_respond(),
 * so a handler that answers late is always safe. */
void vt_grpc_server_close(vt_grpc_server_t *srv, vt_grpc_server_close_cb cb,
                          void *data);

/* --- inside a handler: the call -------------------------------------------
 * Every pointer returned below stays valid until vt_grpc_respond(call). */

/* The method path, e.g. "/vitals.v1.Collector/Push". */
const char *vt_grpc_call_path(const vt_grpc_call_t *call);

/* The value of request metadata `name` (lower-case, e.g. "authorization"),
 * NUL-terminated, or NULL if absent. Binary ("-bin") values are returned as
 * received (base64). For a repeated header, the first one. */
const char *vt_grpc_call_metadata(const vt_grpc_call_t *call,
                                  const char *name);

/* The complete request message, reassembled and decompressed. *len is set;
 * the pointer is non-NULL even for an empty message. */
const uint8_t *vt_grpc_call_request(const vt_grpc_call_t *call, size_t *len);

/* The request as it arrived when it arrived compressed: returns the
 * compressed bytes (valid as long as the call) and sets *len and *enc (the
 * grpc-encoding that vt_grpc_call_request decoded). NULL when the message
 * was sent uncompressed. For a server that stores what it received (a WAL)
 * without compressing it again. */
const uint8_t *vt_grpc_call_request_encoded(const vt_grpc_call_t *call, size_t *len,
                                            enum vt_grpc_encoding *enc);

/* Milliseconds left until the client's grpc-timeout expires, or -1 if the
 * client set none. When it expires the stream is reset and the call becomes
 * dead (respond is then a no-op). */
int64_t vt_grpc_call_remaining_ms(const vt_grpc_call_t *call);

/* False once the client went away, the deadline expired or the server closed:
 * a handler doing long work may check this and skip it. */
bool vt_grpc_call_alive(const vt_grpc_call_t *call);

/* Answer the call and release it (the pointer is invalid afterwards).
 * status VT_GRPC_OK sends HEADERS (:status 200, content-type
 * application/grpc), one DATA message with `resp`/`len` (copied; may be
 * NULL/0 for an empty message) and trailers with grpc-status 0. Any other
 * status sends a trailers-only response with grpc-status and `message`
 * (NULL allowed; percent-encoded on the wire); `resp` is ignored.
 * If the call is dead this only releases it. Returns 0, or UV_ECANCELED if
 * the call was dead (nothing sent; still released). */
int vt_grpc_respond(vt_grpc_call_t *call, int status, const char *message,
                    const void *resp, size_t len);

/* Hold the writes of responses until vt_grpc_server_uncork(), which sends
 * what each connection has in one write: for a handler that answers many
 * calls at once (the scorer acks a whole WAL group), one write per
 * connection instead of one for the first answer and one for the rest.
 * Uncork in the same callback that corked; the server is not freed in
 * between (uncork frees it if it closed meanwhile and no call is held). */
void vt_grpc_server_cork(vt_grpc_server_t *srv);
void vt_grpc_server_uncork(vt_grpc_server_t *srv);

/* ------------------------------------------------------------------------
 * Client
 * ------------------------------------------------------------------------ */

typedef struct vt_grpc_client vt_grpc_client_t;

/* One metadata entry (header). Names must be lower-case. */
struct vt_grpc_md {
    const char *name;
    const char *value;
};

struct vt_grpc_client_opts {
    /* "http://host:port" or "host:port" ("[v6]:port" too); the host may be
     * a name, resolved (uv_getaddrinfo) at each connect, so a Kubernetes
     * service name follows its pods. Required. "https://" is refused
     * (UV_ENOTSUP) until TLS exists. */
    const char *target;
    /* Metadata sent with every call, e.g. {"authorization", "Bearer x"}.
     * Copied at init. */
    const struct vt_grpc_md *metadata;
    size_t n_metadata;
    /* Encoding of request messages (identity, gzip, zstd) and its level
     * (0 → library default). Responses in any of the three are accepted. */
    enum vt_grpc_encoding compression;
    int compression_level;
    /* Calls in flight on the connection at once; more are queued in order
     * (their deadline keeps running). 0 → 100. */
    uint32_t max_concurrent_calls;
    /* Largest response message accepted (decompressed). 0 → 64 MiB. */
    size_t max_message_bytes;
    /* TCP connect + HTTP/2 preface bound. 0 → 10000 ms. */
    uint64_t connect_timeout_ms;
    /* user-agent; NULL → "vitals-grpc/<version>". */
    const char *user_agent;
};

/* The outcome of one call. `message` is the decoded grpc-message (never NULL;
 * "" if none). `resp`/`len` hold the response message on VT_GRPC_OK (NULL/0
 * otherwise). All three are valid only during the callback. */
typedef void (*vt_grpc_call_cb)(int status, const char *message,
                                const uint8_t *resp, size_t len, void *data);

typedef void (*vt_grpc_client_close_cb)(vt_grpc_client_t *cli, void *data);

/* Allocate a client on `loop`. Nothing is connected yet: the first call
 * connects. Returns 0, UV_EINVAL (bad target/opts), UV_ENOTSUP or
 * UV_ENOMEM. */
int vt_grpc_client_init(uv_loop_t *loop, vt_grpc_client_t **out,
                        const struct vt_grpc_client_opts *opts);

/* Replace (or add, if new) one default metadata entry, e.g. a rotated
 * token. Affects calls started afterwards. Returns 0 or UV_ENOMEM. */
int vt_grpc_client_set_metadata(vt_grpc_client_t *cli, const char *name,
                                const char *value);

/* Start a unary call on `path` with request message `req`/`len` (copied and
 * compressed before this returns, so the caller may free it at once).
 * timeout_ms 0 means no deadline; otherwise it is sent as grpc-timeout and
 * enforced locally (DEADLINE_EXCEEDED + RST_STREAM).
 * Connects if needed. If the connection cannot be made or is lost, every
 * call on it fails with UNAVAILABLE; the next call connects again (retry
 * policy and backoff are the caller's). The one resend done here: a stream
 * the server refused with REFUSED_STREAM (never processed, e.g. over its
 * SETTINGS_MAX_CONCURRENT_STREAMS) is sent again, up to 5 times. `cb` runs exactly once, always later
 * from the loop, never from inside vt_grpc_call().
 * Returns 0 (cb will run), or UV_EINVAL / UV_ENOMEM / UV_ECANCELED (client
 * closing) — then cb never runs. */
int vt_grpc_call(vt_grpc_client_t *cli, const char *path, const void *req,
                 size_t len, uint64_t timeout_ms, vt_grpc_call_cb cb,
                 void *data);

/* vt_grpc_call with a request already compressed in the client's
 * `compression` encoding (a message compressed once and sent more than
 * once): framed as it is, flagged compressed unless the encoding is
 * identity. */
int vt_grpc_call_encoded(vt_grpc_client_t *cli, const char *path, const void *req,
                         size_t len, uint64_t timeout_ms, vt_grpc_call_cb cb,
                         void *data);

/* Calls started and not yet completed (queued + in flight). */
uint32_t vt_grpc_client_pending(const vt_grpc_client_t *cli);

/* Fail every pending call with CANCELLED, close the connection, then call
 * `cb` (may be NULL) and free the client. */
void vt_grpc_client_close(vt_grpc_client_t *cli, vt_grpc_client_close_cb cb,
                          void *data);

#endif
