/*
 * fuzz_batch.c - a Push request body on arbitrary bytes, through everything
 * the scorer does with one: parse the Batch header (scorer/batch.c), validate
 * every aggregate in place (store validate: lib/aggregate.c, lib/sketch.c,
 * series keys), apply it to a store, and read the result back.
 *
 * Push bodies come from the network and again from the WAL at replay: the
 * decoders must answer 0 / -EBADMSG / -EPROTO, never crash, leak or read out
 * of bounds; and a batch that validates must apply without -EBADMSG (the
 * store relies on validation: merges trust what it accepted), twice counting
 * once, with exactly the records its aggregates say. Applied from what
 * validation kept (the collector's way) or parsed again (replay's, before
 * it kept too), the store must end up the same, rollup for rollup.
 */
#include <stdint.h>
#include <string.h>

#include "../../scorer/batch.c"
#include "../../scorer/store.c"

struct digest {
    uint64_t records, h;
};

/* FNV-1a over the rollups as they serialise: key, then the aggregate. */
static void fnv(uint64_t *h, const void *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        *h = (*h ^ ((const uint8_t *)p)[i]) * 0x100000001b3ull;
}

static int digest_cb(void *ud, const char *key, size_t len, const struct vt_aggregate *agg)
{
    struct digest *d = ud;
    d->records += agg->count;
    fnv(&d->h, key, len);
    Vitals__V1__WindowAggregate m = VITALS__V1__WINDOW_AGGREGATE__INIT;
    if (vt_aggregate_to_proto(agg, &m) == 0) {
        size_t n = vitals__v1__window_aggregate__get_packed_size(&m);
        uint8_t *buf = malloc(n ? n : 1);
        if (buf) {
            vitals__v1__window_aggregate__pack(&m, buf);
            fnv(&d->h, buf, n);
            free(buf);
        }
    }
    vt_aggregate_proto_release(&m);
    return 0;
}

static struct digest digest(vt_store *st)
{
    struct digest d = {0, 0xcbf29ce484222325ull};
    struct vt_aggregate scratch;
    vt_aggregate_init(&scratch);
    vt_store_query(st, INT64_MIN / 2, INT64_MAX / 2, NULL, &scratch, digest_cb, &d);
    vt_aggregate_free(&scratch);
    return d;
}

static vt_store *new_store(int64_t now)
{
    struct vt_store_opts o = {0};
    char err[256];
    if (vt_store_parse_retention("10s:1h,1m:2d", &o, err, sizeof err))
        __builtin_trap();
    vt_store *st;
    if (vt_store_new(&st, &o))
        return NULL;
    vt_store_expire(st, now);
    return st;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct vt_batch b;
    char err[256];
    int rc = vt_batch_parse(&b, data, size, err, sizeof err);
    if (rc != 0 && rc != -EBADMSG && rc != -EPROTO)
        __builtin_trap();
    if (rc)
        return 0;
    const int64_t now = 1764288000000LL;
    vt_store *st = new_store(now), *ref = new_store(now);
    struct vt_batch_kept kept = {0};
    if (!st || !ref)
        goto out;
    rc = vt_store_validate(ref, &b, err, sizeof err); /* nothing kept */
    b.kept = &kept;
    if (rc != vt_store_validate(st, &b, err, sizeof err) || (rc != 0 && rc != -EBADMSG))
        __builtin_trap();
    if (rc == 0) {
        /* what the aggregates claim, for those that will be kept */
        uint64_t claimed = 0;
        size_t pos = 0, len;
        const uint8_t *agg;
        while (vt_batch_next_aggregate(&b, &pos, &agg, &len) == 1) {
            struct vt_agg_head h;
            if (vt_aggregate_wire_head(agg, len, &h))
                __builtin_trap(); /* validated, so it parses */
            claimed += h.count;
        }
        uint64_t dropped = 0;
        if (kept.of != b.buf && kept.of != NULL)
            __builtin_trap(); /* kept for these bytes, or (over its budget) not at all */
        int64_t n = vt_store_apply(st, &b, &dropped);
        if (n < 0 && n != -ENOMEM)
            __builtin_trap(); /* validation let through what merging refuses */
        b.kept = NULL;
        int64_t nr = n >= 0 ? vt_store_apply(ref, &b, NULL) : -ENOMEM;
        if (n >= 0 && nr >= 0) {
            if ((uint64_t)n + dropped != claimed || nr != n || vt_store_apply(st, &b, NULL) != 0)
                __builtin_trap();
            struct digest d = digest(st), dr = digest(ref);
            if (d.records != (uint64_t)n || d.h != dr.h || d.records != dr.records)
                __builtin_trap(); /* kept and parsed again differ */
            vt_store_expire(st, now + 3 * 3600 * 1000LL); /* cascade and pack */
        }
    }
out:
    vt_batch_kept_free(&kept);
    if (st)
        vt_store_free(st);
    if (ref)
        vt_store_free(ref);
    return 0;
}
