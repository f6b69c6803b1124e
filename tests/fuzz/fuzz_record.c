/*
 * fuzz_record.c - libFuzzer target for the NDJSON record decoder.
 *
 * Decodes arbitrary bytes from an exact-size copy (so ASan flags any read
 * past len). Whatever decodes as a record must format to canonical JSON that
 * decodes back to the same record, and formatting that must give the very
 * same bytes. A rejection must name a reason from the enum.
 */
#include <assert.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "record.h"

static void same_str(struct vt_str a, struct vt_str b)
{
    if (a.len != b.len || (a.len && memcmp(a.ptr, b.ptr, a.len) != 0))
        abort();
}

static void same_dbl(double a, double b)
{
    if (memcmp(&a, &b, sizeof a) != 0)
        abort();
}

static void same_record(const struct vt_record *a, const struct vt_record *b)
{
    if (a->present != b->present || a->ts_ms != b->ts_ms || a->error != b->error ||
        a->input_tokens != b->input_tokens || a->output_tokens != b->output_tokens ||
        a->n_metrics != b->n_metrics || a->n_labels != b->n_labels ||
        a->n_embedding != b->n_embedding)
        abort();
    same_str(a->service, b->service);
    same_str(a->model, b->model);
    same_str(a->provider, b->provider);
    same_str(a->version, b->version);
    same_str(a->error_type, b->error_type);
    same_str(a->request_id, b->request_id);
    same_dbl(a->latency_ms, b->latency_ms);
    same_dbl(a->ttft_ms, b->ttft_ms);
    same_dbl(a->cost_usd, b->cost_usd);
    for (uint32_t i = 0; i < a->n_metrics; i++) {
        same_str(a->metrics[i].name, b->metrics[i].name);
        same_dbl(a->metrics[i].value, b->metrics[i].value);
    }
    for (uint32_t i = 0; i < a->n_labels; i++) {
        same_str(a->labels[i].key, b->labels[i].key);
        same_str(a->labels[i].value, b->labels[i].value);
    }
    for (uint32_t i = 0; i < a->n_embedding; i++)
        same_dbl(a->embedding[i], b->embedding[i]);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct vt_record_decoder *d1, *d2;
    static char out1[1 << 19], out2[1 << 19];
    if (!d1) {
        d1 = vt_record_decoder_new(NULL, "fuzz");
        d2 = vt_record_decoder_new(NULL, "fuzz");
        if (!d1 || !d2)
            abort();
    }
    char *copy = malloc(size ? size : 1);
    if (!copy)
        return 0;
    memcpy(copy, data, size);
    struct vt_record r, back;
    enum vt_record_kind k = vt_record_decode(d1, copy, size, 1700000000000, &r);
    switch (k) {
    case VT_RECORD_DATA: {
        if (r.service.len == 0 || r.reject != VT_REJECT_NONE)
            abort();
        int n = vt_record_format_json(&r, out1, sizeof out1);
        if (n <= 0)
            abort();
        if (vt_record_decode(d2, out1, (size_t)n, 1700000000000, &back) != VT_RECORD_DATA)
            abort();
        same_record(&r, &back);
        int n2 = vt_record_format_json(&back, out2, sizeof out2);
        if (n2 != n || memcmp(out1, out2, (size_t)n) != 0)
            abort();
        break;
    }
    case VT_RECORD_REJECTED:
        if (r.reject <= VT_REJECT_NONE || r.reject >= VT_REJECT__COUNT ||
            r.reject_offset > size)
            abort();
        break;
    case VT_RECORD_SYNC:
    case VT_RECORD_EMPTY:
        break;
    default:
        abort();
    }
    free(copy);
    return 0;
}
