/*
 * grpc_frame.h - the transport-free half of gRPC: length-prefixed messages,
 * their compression, grpc-timeout and grpc-message encodings.
 *
 * Split from the server and client so that the part that parses untrusted
 * bytes can be fuzzed without sockets (tests/fuzz/fuzz_grpc_frame.c), and so
 * that both sides share one implementation of every rule in
 * grpc/grpc doc/PROTOCOL-HTTP2.md and doc/compression.md. Programs normally
 * use grpc.h only; this header is the contract between grpc_server.c,
 * grpc_client.c and the fuzz target.
 *
 * Error convention: functions that judge wire input return 0 or a gRPC status
 * code (> 0, enum vt_grpc_status) and set a static reason string.
 */
#ifndef VT_GRPC_FRAME_H
#define VT_GRPC_FRAME_H

#include <stddef.h>
#include <stdint.h>
#include <zlib.h>
#include <zstd.h>

#include "grpc.h"

#define VT_GRPC_PREFIX 5                       /* flag byte + be32 length */
#define VT_GRPC_DEFAULT_MAX_MESSAGE (64u << 20) /* OTLP's recommendation */

/* Compression contexts, created lazily, reused across messages (one per
 * server or client; loop thread only). Zero-initialise, then
 * vt_grpc_codec_free() when done. */
struct vt_grpc_codec {
    ZSTD_CCtx *zc;
    ZSTD_DCtx *zd;
    z_stream inflate;
    z_stream deflate;
    int inflate_ready;
    int deflate_level; /* 0 = deflate not initialised */
};

void vt_grpc_codec_free(struct vt_grpc_codec *codec);

/* Parse a grpc-encoding value ("identity", "gzip", "zstd"), exact and case
 * sensitive as the spec says. Returns the enum value or -1 if unsupported. */
int vt_grpc_encoding_parse(const char *s, size_t len);

/* "identity", "gzip", "zstd". */
const char *vt_grpc_encoding_name(enum vt_grpc_encoding enc);

/* What we accept, for grpc-accept-encoding. */
#define VT_GRPC_ACCEPT_ENCODING "identity,gzip,zstd"

/* Frame one message: 5-byte prefix + payload, compressed with `enc` (the
 * compressed flag is set unless enc is identity). `level` 0 → default.
 * On success *out is malloc'd (caller frees) and *out_len set. Returns 0 or
 * UV_ENOMEM / UV_EINVAL (message over 4 GiB - 1). */
int vt_grpc_frame_encode(struct vt_grpc_codec *codec, enum vt_grpc_encoding enc,
                         int level, const void *msg, size_t len, uint8_t **out,
                         size_t *out_len);

/* Reassembles the single message of a unary call from DATA chunks, then
 * decompresses it. Memory is bounded by `max` (plus the 5-byte prefix) for
 * the compressed bytes and by `max` for the decompressed bytes, however the
 * input is shaped (decompression bombs stop at max + 1 byte). */
struct vt_grpc_reader {
    size_t max;      /* max message size, compressed and decompressed */
    uint8_t *buf;    /* framed bytes received so far */
    size_t len, cap;
    uint8_t *out;    /* decompressed message */
    size_t out_len;
    int status;      /* sticky error, 0 while fine */
    const char *why; /* static reason for status */
};

void vt_grpc_reader_init(struct vt_grpc_reader *r, size_t max);
void vt_grpc_reader_free(struct vt_grpc_reader *r);

/* For a caller that pools request buffers: hand a fresh reader a buffer of
 * cap bytes to receive into (used while big enough, else grown), and take
 * the receive buffer back from a reader about to be freed (NULL if none). */
void vt_grpc_reader_give(struct vt_grpc_reader *r, uint8_t *buf, size_t cap);
uint8_t *vt_grpc_reader_take(struct vt_grpc_reader *r, size_t *cap);

/* Append a DATA chunk. Returns 0 or a sticky status: RESOURCE_EXHAUSTED
 * (announced length > max), INTERNAL (bad flag byte, a second message). */
int vt_grpc_reader_feed(struct vt_grpc_reader *r, const uint8_t *data,
                        size_t len);

/* The stream ended: check that exactly one whole message arrived and
 * decompress it per `enc` (the request's grpc-encoding). On 0, *msg and *len
 * point into the reader (valid until vt_grpc_reader_free; *msg non-NULL).
 * Errors: INTERNAL (no message, truncated, compressed flag with identity
 * encoding, corrupt compressed data), RESOURCE_EXHAUSTED (inflates beyond
 * max). `codec` supplies the decompression contexts. */
int vt_grpc_reader_finish(struct vt_grpc_reader *r, struct vt_grpc_codec *codec,
                          enum vt_grpc_encoding enc, const uint8_t **msg,
                          size_t *len);

/* Parse a grpc-timeout value ("1*8DIGIT unit", unit H M S m u n) into
 * milliseconds, rounding up (a 1 ns deadline is 1 ms, never 0). Returns 0 and
 * sets *ms, or -1 if malformed. */
int vt_grpc_timeout_parse(const char *s, size_t len, uint64_t *ms);

/* Format `ms` (> 0) as a grpc-timeout value into buf (≥ 16 bytes), using the
 * finest unit that fits 8 digits (rounding up). Returns the length. */
size_t vt_grpc_timeout_format(uint64_t ms, char *buf);

/* Percent-encode a grpc-message: bytes outside 0x20..0x7E and '%' become
 * %XX. Returns a malloc'd string (caller frees) or NULL on ENOMEM. */
char *vt_grpc_message_encode(const char *msg);

/* Decode in place: %XX → byte; malformed escapes are kept literally (the
 * spec says to tolerate them). Returns s. */
char *vt_grpc_message_decode(char *s);

/* HTTP status of a response without grpc-status → gRPC status
 * (doc/http-grpc-status-mapping.md). */
int vt_grpc_status_from_http(int http_status);

#endif
