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
 * once, with exactly the records its aggregates say.
 */
#include <stdint.h>
#include <string.h>

#include "../../scorer/batch.c"
#include "../../scorer/store.c"

static int count_cb(void *ud, const char *key, size_t len, const struct vt_aggregate *agg)
{
    (void)key, (void)len;
    *(uint64_t *)ud += agg->count;
    return 0;
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
    struct vt_store_opts o = {0};
    if (vt_store_parse_retention("10s:1h,1m:2d", &o, err, sizeof err))
        __builtin_trap();
    vt_store *st;
    if (vt_store_new(&st, &o))
        return 0;
    const int64_t now = 1764288000000LL;
    vt_store_expire(st, now);
    rc = vt_store_validate(st, &b, err, sizeof err);
    if (rc != 0 && rc != -EBADMSG)
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
        int64_t n = vt_store_apply(st, &b, &dropped);
        if (n < 0 && n != -ENOMEM)
            __builtin_trap(); /* validation let through what merging refuses */
        if (n >= 0) {
            if ((uint64_t)n + dropped != claimed || vt_store_apply(st, &b, NULL) != 0)
                __builtin_trap();
            uint64_t seen = 0;
            struct vt_aggregate scratch;
            vt_aggregate_init(&scratch);
            vt_store_query(st, INT64_MIN / 2, INT64_MAX / 2, &scratch, count_cb, &seen);
            vt_aggregate_free(&scratch);
            if (seen != (uint64_t)n)
                __builtin_trap();
            vt_store_expire(st, now + 3 * 3600 * 1000LL); /* cascade and pack */
        }
    }
    vt_store_free(st);
    return 0;
}
