/*
 * fuzz_grpc_frame.c - libFuzzer target for the bytes a gRPC peer controls:
 * length-prefixed message reassembly across arbitrary DATA chunk boundaries,
 * gzip/zstd decompression under a size limit, grpc-timeout and grpc-message
 * decoding.
 *
 * Input: byte 0 picks the grpc-encoding (mod 3), byte 1 seeds the chunk sizes;
 * the rest is the DATA payload of one stream. Invariants checked: a success
 * yields at most `max` bytes; a failure is one of the two documented codes.
 */
#include <assert.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "grpc_frame.h"

#define FUZZ_MAX (256 * 1024)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    enum vt_grpc_encoding enc = (enum vt_grpc_encoding)(data[0] % 3);
    uint32_t seed = data[1] | 1u;
    data += 2;
    size -= 2;

    struct vt_grpc_codec codec = {0};
    struct vt_grpc_reader r;
    vt_grpc_reader_init(&r, FUZZ_MAX);
    size_t off = 0;
    int st = 0;
    while (off < size && !st) {
        seed = seed * 1103515245u + 12345u;
        size_t n = 1 + (seed >> 16) % 97;
        if (n > size - off)
            n = size - off;
        st = vt_grpc_reader_feed(&r, data + off, n);
        off += n;
    }
    if (!st) {
        const uint8_t *msg;
        size_t len;
        st = vt_grpc_reader_finish(&r, &codec, enc, &msg, &len);
        if (!st) {
            assert(msg && len <= FUZZ_MAX);
            volatile uint8_t sink = 0;
            for (size_t i = 0; i < len; i += 4096)
                sink ^= msg[i]; /* touch the output: ASan checks it is real */
            (void)sink;
        }
    }
    assert(st == 0 || st == VT_GRPC_INTERNAL || st == VT_GRPC_RESOURCE_EXHAUSTED);
    vt_grpc_reader_free(&r);
    vt_grpc_codec_free(&codec);

    /* Header decoders on the same bytes. */
    uint64_t ms;
    if (vt_grpc_timeout_parse((const char *)data, size < 12 ? size : 12, &ms) == 0)
        assert(ms > 0);
    char *s = malloc(size + 1);
    memcpy(s, data, size);
    s[size] = 0;
    size_t before = strlen(s);
    vt_grpc_message_decode(s);
    assert(strlen(s) <= before);
    char *e = vt_grpc_message_encode(s);
    assert(e);
    free(e);
    free(s);
    return 0;
}
