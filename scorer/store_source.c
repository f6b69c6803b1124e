/*
 * store_source.c - see store_source.h. The store's visit callback returns
 * an int (a reader may stop the walk), the engine's does not: one
 * trampoline between the two.
 */
#include "store_source.h"

struct tramp {
    vt_score_visit_fn fn;
    void *arg;
};

static int tramp_cb(void *ud, const char *key, size_t len, const struct vt_aggregate *agg)
{
    struct tramp *t = ud;
    t->fn(t->arg, key, len, agg);
    return 0;
}

static int each(void *ctx, int64_t from_ms, int64_t to_ms, const struct vt_agg_reads *reads,
                vt_score_visit_fn fn, void *arg)
{
    struct vt_store_source *s = ctx;
    struct tramp t = {fn, arg};
    return vt_store_query(s->st, from_ms, to_ms, reads, &s->scratch, tramp_cb, &t);
}

void vt_store_source_init(struct vt_store_source *s)
{
    s->st = NULL;
    vt_aggregate_init(&s->scratch);
}

void vt_store_source_free(struct vt_store_source *s)
{
    vt_aggregate_free(&s->scratch);
}

struct vt_score_source vt_store_source_of(struct vt_store_source *s, const vt_store *st)
{
    s->st = st;
    return (struct vt_score_source){.ctx = s, .each = each};
}
