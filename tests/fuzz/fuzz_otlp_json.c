/*
 * fuzz_otlp_json.c - libFuzzer target for the OTLP/JSON decoder
 * (vt_otlp_decode_json) on an exact-size copy of arbitrary bytes; the same
 * invariants as fuzz_otlp_proto.c (see fuzz_otlp_common.h).
 */
#include "fuzz_otlp_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_otlp_run(data, size, 1);
    return 0;
}
