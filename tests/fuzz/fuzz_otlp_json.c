/*
 * fuzz_otlp_json.c - libFuzzer target for the OTLP/JSON decoder
 * (vt_otlp_decode_json) on an exact-size copy of arbitrary bytes; the same
 * invariants as fuzz_otlp_proto.c (see fuzz_otlp_common.h).
 */
#include "fuzz_otlp_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct fuzz_otlp *f = fuzz_otlp_get();
    char *copy = malloc(size ? size : 1);
    if (!copy)
        return 0;
    if (size)
        memcpy(copy, data, size);
    struct vt_otlp_result res;
    f->calls = 0;
    int rc = vt_otlp_decode_json(f->dec, copy, size, FUZZ_NOW_MS, fuzz_otlp_sink, f, &res);
    fuzz_otlp_check(f, rc, &res);
    free(copy);
    return 0;
}
