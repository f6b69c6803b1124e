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
    fuzz_otlp_run(data, size, 0);
    return 0;
}
