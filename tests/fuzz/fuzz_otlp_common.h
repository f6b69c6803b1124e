/*
 * fuzz_otlp_common.h - what fuzz_otlp_proto.c and fuzz_otlp_json.c share: one
 * decoder configured with labels, a metric map and small limits (so that
 * every limit is reachable), a sink that checks each accepted record against
 * the NDJSON record decoder, and the per-input result checks. Included by the
 * two fuzz targets only (each is its own program).
 */
#ifndef FUZZ_OTLP_COMMON_H
#define FUZZ_OTLP_COMMON_H

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "otlp.h"
#include "record.h"

#define FUZZ_NOW_MS INT64_C(1700000000000)

struct fuzz_otlp {
    struct vt_otlp_decoder *dec;
    struct vt_record_decoder *rdec;
    uint64_t calls;
    char line[70000], again[70000];
};

static struct fuzz_otlp *fuzz_otlp_get(void)
{
    static struct fuzz_otlp *f;
    if (!f) {
        struct vt_record_limits lim;
        vt_record_limits_default(&lim);
        lim.max_labels = 3;
        lim.max_metrics = 4;
        lim.max_embedding = 8;
        lim.max_string = 64;
        lim.max_label_value = 16;
        f = calloc(1, sizeof *f);
        if (!f)
            abort();
        f->dec = vt_otlp_decoder_new(&lim, "fuzz", "tier,deployment.environment=env,a,b",
                                     "m.x=mx,t.ms=ttft_ms,t.s=ttft_s", NULL, 0);
        f->rdec = vt_record_decoder_new(&lim, "fuzz");
        if (!f->dec || !f->rdec)
            abort();
    }
    return f;
}

static int fuzz_otlp_sink(void *data, struct vt_record *rec, enum vt_record_reject reason)
{
    struct fuzz_otlp *f = data;
    f->calls++;
    if (reason != VT_REJECT_NONE) {
        if (reason >= VT_REJECT__COUNT)
            abort();
        return 0;
    }
    int n = vt_record_format_json(rec, f->line, sizeof f->line);
    if (n <= 0)
        abort();
    struct vt_record back;
    if (vt_record_decode(f->rdec, f->line, (size_t)n, FUZZ_NOW_MS, &back) != VT_RECORD_DATA)
        abort();
    if (back.present != rec->present || back.n_metrics != rec->n_metrics ||
        back.n_labels != rec->n_labels || back.n_embedding != rec->n_embedding)
        abort();
    int m = vt_record_format_json(&back, f->again, sizeof f->again);
    if (m != n || memcmp(f->line, f->again, (size_t)n) != 0)
        abort();
    return 0;
}

static void fuzz_otlp_check(struct fuzz_otlp *f, int rc, const struct vt_otlp_result *res)
{
    if (rc == -EINVAL) {
        if (f->calls != 0 || !res->message[0])
            abort();
        return;
    }
    if (rc != 0)
        abort();
    if (res->accepted + res->rejected + res->ignored != res->spans ||
        f->calls != res->accepted + res->rejected)
        abort();
    if ((res->rejected != 0) != (res->message[0] != 0))
        abort();
}

/* Decode an exact-size copy of the input (so ASan sees any over-read) with
 * the protobuf or the JSON decoder, then check the result. */
static void fuzz_otlp_run(const uint8_t *data, size_t size, int json)
{
    struct fuzz_otlp *f = fuzz_otlp_get();
    uint8_t *copy = malloc(size ? size : 1);
    if (!copy)
        return;
    if (size)
        memcpy(copy, data, size);
    struct vt_otlp_result res;
    f->calls = 0;
    int rc = json ? vt_otlp_decode_json(f->dec, (const char *)copy, size, FUZZ_NOW_MS,
                                        fuzz_otlp_sink, f, &res)
                  : vt_otlp_decode_proto(f->dec, copy, size, FUZZ_NOW_MS, fuzz_otlp_sink, f,
                                         &res);
    fuzz_otlp_check(f, rc, &res);
    free(copy);
}

#endif
