/*
 * batch.c - see batch.h. Field numbers are those of vitals.v1.Batch:
 * schema_version 1, agent_id 2, window_start_ms 3, spool_first 4,
 * spool_last 5, batch_id 6, aggregates 7, created_ms 8, records 9.
 */
#include "batch.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pb_wire.h"
#include "series.h"

static int copy_id(char *dst, uint32_t *len, size_t max, const struct pbf *f)
{
    if (f->len > max || memchr(f->ptr, 0, f->len))
        return -1;
    memcpy(dst, f->ptr, f->len);
    dst[f->len] = 0;
    *len = (uint32_t)f->len;
    return 0;
}

int vt_batch_parse(struct vt_batch *b, const uint8_t *buf, size_t len, char *err, size_t errlen)
{
    memset(b, 0, sizeof *b);
    b->buf = buf;
    b->len = len;
    struct pb m = pb_make(buf, len);
    struct pbf f;
    int r;
    /* Well-formed protobuf first; then the version, since a newer schema may
     * change anything else. */
    uint64_t version = 0;
    while ((r = pb_next(&m, &f)) == 1)
        if (f.num == 1 && f.wt == PB_VARINT)
            version = f.u;
    if (r) {
        snprintf(err, errlen, "request is not a vitals.v1.Batch (malformed protobuf)");
        return -EBADMSG;
    }
    if (version != VT_BATCH_SCHEMA_VERSION) {
        snprintf(err, errlen, "schema_version %llu is not supported (this scorer speaks %d)",
                 (unsigned long long)version, VT_BATCH_SCHEMA_VERSION);
        return -EPROTO;
    }
    m = pb_make(buf, len);
    while ((r = pb_next(&m, &f)) == 1) {
        bool is_len = f.num == 2 || f.num == 6 || f.num == 7;
        if (f.num <= 9 && f.wt != (is_len ? PB_LEN : PB_VARINT)) {
            snprintf(err, errlen, "field %u: wrong wire type %u", f.num, f.wt);
            return -EBADMSG;
        }
        switch (f.num) {
        case 1: b->schema_version = (uint32_t)f.u; break;
        case 2:
            if (copy_id(b->agent_id, &b->agent_id_len, VT_BATCH_MAX_AGENT_ID, &f)) {
                snprintf(err, errlen, "agent_id: must be at most %d bytes, no NUL",
                         VT_BATCH_MAX_AGENT_ID);
                return -EBADMSG;
            }
            break;
        case 3: b->window_start_ms = (int64_t)f.u; break;
        case 4: b->spool_first = f.u; break;
        case 5: b->spool_last = f.u; break;
        case 6:
            if (f.len == 0 || copy_id(b->batch_id, &b->batch_id_len, VT_BATCH_MAX_ID, &f)) {
                snprintf(err, errlen, "batch_id: must be 1..%d bytes, no NUL", VT_BATCH_MAX_ID);
                return -EBADMSG;
            }
            break;
        case 7: b->n_aggregates++; break;
        case 8: b->created_ms = (int64_t)f.u; break;
        case 9: b->records = f.u; break;
        default: break; /* a field of a newer schema */
        }
    }
    if (!b->batch_id[0]) {
        snprintf(err, errlen, "batch_id: must be 1..%d bytes, no NUL", VT_BATCH_MAX_ID);
        return -EBADMSG;
    }
    b->id_hash = vt_series_hash(b->batch_id, b->batch_id_len) ^
                 vt_series_hash(b->agent_id, b->agent_id_len) * 0x9e3779b97f4a7c15ull;
    return 0;
}

int vt_batch_next_aggregate(const struct vt_batch *b, size_t *pos, const uint8_t **agg,
                            size_t *len)
{
    struct pb m = {b->buf + *pos, b->buf + b->len};
    struct pbf f;
    while (pb_next(&m, &f) == 1)
        if (f.num == 7) {
            *agg = f.ptr;
            *len = f.len;
            *pos = (size_t)(m.p - b->buf);
            return 1;
        }
    *pos = b->len;
    return 0;
}

/* p (n used of *cap items of size sz) with room for `more` more: p itself,
 * or its replacement; NULL (p still valid) when out of memory. */
static void *grow(void *p, uint32_t n, uint32_t *cap, size_t more, size_t sz)
{
    if (n + more <= *cap)
        return p;
    size_t c = *cap ? *cap : 16;
    while (c < n + more)
        c *= 2;
    void *np = c <= UINT32_MAX ? realloc(p, c * sz) : NULL;
    if (np)
        *cap = (uint32_t)c;
    return np;
}

int vt_batch_kept_reserve(struct vt_batch_kept *k, size_t key_max)
{
    void *a = grow(k->aggs, k->n_aggs, &k->cap_aggs, 1, sizeof *k->aggs);
    if (a)
        k->aggs = a;
    void *s = a ? grow(k->sketches, k->n_sketches, &k->cap_sketches, VT_AGG_MAX_SKETCHES,
                       sizeof *k->sketches)
                : NULL;
    if (s)
        k->sketches = s;
    void *c = s ? grow(k->keys, k->keys_len, &k->keys_cap, key_max, 1) : NULL;
    if (c)
        k->keys = c;
    return c ? 0 : -ENOMEM;
}

size_t vt_batch_kept_bytes(const struct vt_batch_kept *k)
{
    return (size_t)k->cap_aggs * sizeof *k->aggs + (size_t)k->cap_sketches * sizeof *k->sketches +
           k->keys_cap;
}

void vt_batch_kept_free(struct vt_batch_kept *k)
{
    free(k->aggs);
    free(k->sketches);
    free(k->keys);
    memset(k, 0, sizeof *k);
}
