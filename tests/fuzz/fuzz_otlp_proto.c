/*
 * fuzz_otlp_proto.c - libFuzzer target for the OTLP protobuf decoder
 * (vt_otlp_decode_proto) on an exact-size copy of arbitrary bytes.
 *
 * Invariants: the result is 0 or -EINVAL; on -EINVAL nothing was emitted; on
 * 0 every span is counted exactly once (accepted + rejected + ignored ==
 * spans, and the sink saw accepted + rejected calls); every accepted record
 * formats to a canonical line that the NDJSON record decoder accepts and
 * that formats back to the very same bytes (what the spool replays is what
 * was aggregated live). The shared checks live in fuzz_otlp_common.h.
 */
#include "fuzz_otlp_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct fuzz_otlp *f = fuzz_otlp_get();
    uint8_t *copy = malloc(size ? size : 1);
    if (!copy)
        return 0;
    if (size)
        memcpy(copy, data, size);
    struct vt_otlp_result res;
    f->calls = 0;
    int rc = vt_otlp_decode_proto(f->dec, copy, size, FUZZ_NOW_MS, fuzz_otlp_sink, f, &res);
    fuzz_otlp_check(f, rc, &res);
    free(copy);
    return 0;
}
