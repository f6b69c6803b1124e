/*
 * store.c - tiered per-series rollups and the dedupe set (see store.h).
 *
 * Layout: a series table (lib/series) maps each canonical key to a struct
 * series holding, per tier, a sorted array of buckets (start, aggregate).
 * Appends land at or near the end (data arrives roughly in time order), so
 * insertion is a binary search plus a rare memmove; expiry removes from the
 * front by advancing `head` and compacts lazily.
 *
 * Dedupe: key "agent_id \0 batch_id" -> {window_start, spool_last}. Ids whose
 * window is older than the horizon are forgotten; their agent's highest
 * spool_last becomes a watermark, and a batch of that agent ending at or
 * below it is still recognised as a replay. This keeps the set bounded by
 * recent traffic, not by all history.
 *
 * The private structs live in store_internal.h; the snapshot file (writing
 * and loading it) lives in store_snapshot.c.
 */
#include "store.h"
#include "store_internal.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stddef.h>
#include <isa-l/crc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"
#include "series.h"

#define DEFAULT_MAX_SERIES 100000
#define DEDUPE_SLACK_MS (3600 * 1000LL)

static int check_tiers(const struct vt_store_opts *o, char *err, size_t errlen)
{
    if (o->n_tiers < 1 || o->n_tiers > VT_STORE_MAX_TIERS) {
        snprintf(err, errlen, "retention: need 1..%d tiers", VT_STORE_MAX_TIERS);
        return -EINVAL;
    }
    for (size_t i = 0; i < o->n_tiers; i++) {
        const struct vt_store_tier *t = &o->tiers[i];
        if (t->resolution_ms <= 0 || t->retention_ms < t->resolution_ms) {
            snprintf(err, errlen, "retention: tier %zu: resolution must be > 0 and <= retention", i);
            return -EINVAL;
        }
        if (i > 0) {
            const struct vt_store_tier *p = &o->tiers[i - 1];
            if (t->resolution_ms % p->resolution_ms != 0 || t->resolution_ms <= p->resolution_ms) {
                snprintf(err, errlen,
                         "retention: tier %zu: resolution must be a larger multiple of tier %zu's", i,
                         i - 1);
                return -EINVAL;
            }
            if (t->retention_ms <= p->retention_ms) {
                snprintf(err, errlen, "retention: tier %zu: retention must exceed tier %zu's", i,
                         i - 1);
                return -EINVAL;
            }
        }
    }
    return 0;
}

int vt_store_parse_retention(const char *s, struct vt_store_opts *o, char *err, size_t errlen)
{
    char buf[256];
    if (!s || strlen(s) >= sizeof buf) {
        snprintf(err, errlen, "retention: missing or too long");
        return -EINVAL;
    }
    snprintf(buf, sizeof buf, "%s", s);
    o->n_tiers = 0;
    char *save = NULL;
    for (char *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        char *colon = strchr(tok, ':');
        if (!colon || o->n_tiers == VT_STORE_MAX_TIERS) {
            snprintf(err, errlen, "retention: \"%s\": want RESOLUTION:RETENTION, at most %d tiers",
                     tok, VT_STORE_MAX_TIERS);
            return -EINVAL;
        }
        *colon = 0;
        struct vt_store_tier *t = &o->tiers[o->n_tiers];
        if (vt_parse_duration_ms(tok, &t->resolution_ms) || vt_parse_duration_ms(colon + 1, &t->retention_ms)) {
            snprintf(err, errlen, "retention: \"%s:%s\": bad duration", tok, colon + 1);
            return -EINVAL;
        }
        o->n_tiers++;
    }
    return check_tiers(o, err, errlen);
}

/* ---- life cycle -------------------------------------------------------- */

int vt_store_new(vt_store **out, const struct vt_store_opts *opts)
{
    char err[128];
    if (!out || !opts || check_tiers(opts, err, sizeof err))
        return -EINVAL;
    vt_store *st = calloc(1, sizeof *st);
    if (!st)
        return -ENOMEM;
    st->o = *opts;
    if (!st->o.cold_scale)
        st->o.cold_scale = VT_STORE_COLD_SCALE;
    if (!st->o.max_series)
        st->o.max_series = DEFAULT_MAX_SERIES;
    for (size_t i = 0; i < VT_STORE_MAX_TIERS; i++)
        st->boundary[i] = INT64_MIN;
    st->hot_boundary = INT64_MIN;
    if (!st->o.hot_ms)
        st->o.hot_ms = VT_STORE_HOT_MS;
    st->pane_ms = st->o.pane_ms ? st->o.pane_ms : VT_STORE_PANE_MS;
    if (st->pane_ms <= st->o.tiers[0].resolution_ms ||
        st->pane_ms % st->o.tiers[0].resolution_ms != 0)
        st->pane_ms = 0;
    vt_aggregate_init(&st->cold);
    if (vt_series_table_init(&st->series, 0) || vt_series_table_init(&st->ids, 0) ||
        vt_series_table_init(&st->agents, 0)) {
        vt_store_free(st);
        return -ENOMEM;
    }
    *out = st;
    return 0;
}

static void bucket_release(struct bucket *bk)
{
    if (bk->agg) {
        vt_aggregate_free(bk->agg);
        free(bk->agg);
    }
    free(bk->packed);
    bk->agg = NULL;
    bk->packed = NULL;
    bk->len = 0;
    bk->count = 0;
}

static void series_free(struct series *s)
{
    for (size_t t = 0; t < VT_STORE_MAX_TIERS; t++) {
        struct tier_buckets *tb = &s->t[t];
        for (uint32_t i = 0; i < tb->n; i++)
            bucket_release(&tb->b[tb->head + i]);
        free(tb->b);
    }
    for (uint32_t i = 0; i < s->panes.n; i++)
        bucket_release(&s->panes.b[s->panes.head + i]);
    free(s->panes.b);
    free(s);
}

static void free_values(struct vt_series_table *t, int is_series)
{
    uint32_t it = 0;
    struct vt_series_entry *e;
    while ((e = vt_series_table_next(t, &it))) {
        if (is_series)
            series_free(e->value);
        else
            free(e->value);
        e->value = NULL;
    }
}

void vt_store_free(vt_store *st)
{
    if (!st)
        return;
    if (st->series.slots)
        free_values(&st->series, 1);
    if (st->ids.slots)
        free_values(&st->ids, 0);
    if (st->agents.slots)
        free_values(&st->agents, 0);
    vt_series_table_free(&st->series);
    vt_series_table_free(&st->ids);
    vt_series_table_free(&st->agents);
    vt_aggregate_free(&st->cold);
    free(st->pack.p);
    free(st);
}

int64_t vt_store_horizon_ms(const vt_store *st)
{
    return st->o.tiers[st->o.n_tiers - 1].retention_ms;
}

/* ---- dedupe ------------------------------------------------------------ */

/* b's key in the dedupe table: agent_id NUL batch_id. */
static size_t id_key(char *buf, size_t cap, const struct vt_batch *b)
{
    size_t a = b->agent_id_len, n = b->batch_id_len;
    if (a + 1 + n > cap)
        return 0;
    memcpy(buf, b->agent_id, a);
    buf[a] = 0;
    memcpy(buf + a + 1, b->batch_id, n);
    return a + 1 + n;
}

/* Covered by the agent's watermark (ids older than the dedupe horizon). */
static bool below_watermark(const vt_store *st, const struct vt_batch *b)
{
    vt_store *m = (vt_store *)st; /* the tables' find is not const; nothing is changed */
    size_t an = b->agent_id_len;
    struct vt_series_entry *e =
        vt_series_table_find(&m->agents, b->agent_id, an, vt_series_hash(b->agent_id, an));
    return e && b->spool_last != 0 && b->spool_last <= *(uint64_t *)e->value;
}

bool vt_store_seen(const vt_store *st, const struct vt_batch *b)
{
    vt_store *m = (vt_store *)st;
    size_t n = id_key(m->key, sizeof m->key, b);
    if (n && vt_series_table_find(&m->ids, m->key, n, vt_series_hash(m->key, n)))
        return true;
    return below_watermark(st, b);
}

/* Record b's id: 0 if it is new, 1 if it was known already, or -errno. */
static int remember(vt_store *st, const struct vt_batch *b)
{
    size_t n = id_key(st->key, sizeof st->key, b);
    if (!n)
        return -EBADMSG;
    int created = 0;
    struct vt_series_entry *e =
        vt_series_table_upsert(&st->ids, st->key, n, vt_series_hash(st->key, n), &created);
    if (!e)
        return -ENOMEM;
    if (created) {
        struct dedupe_val *v = malloc(sizeof *v);
        if (!v)
            return -ENOMEM; /* entry stays with a NULL value: handled as "no window" */
        v->window_start_ms = b->window_start_ms;
        v->spool_last = b->spool_last;
        e->value = v;
    }
    return !created;
}

int vt_store__set_watermark(vt_store *st, const char *agent, size_t an, uint64_t wm)
{
    int created = 0;
    struct vt_series_entry *e =
        vt_series_table_upsert(&st->agents, agent, an, vt_series_hash(agent, an), &created);
    if (!e)
        return -ENOMEM;
    if (!e->value) {
        e->value = calloc(1, sizeof(uint64_t));
        if (!e->value)
            return -ENOMEM;
    }
    uint64_t *w = e->value;
    if (wm > *w)
        *w = wm;
    return 0;
}

/* Forget ids older than `cutoff`: rebuild the table without them. */
static void forget_ids(vt_store *st, int64_t cutoff)
{
    uint32_t it = 0, old = 0;
    struct vt_series_entry *e;
    while ((e = vt_series_table_next(&st->ids, &it))) {
        struct dedupe_val *v = e->value;
        if (!v || v->window_start_ms < cutoff)
            old++;
    }
    if (!old)
        return;
    struct vt_series_table fresh;
    if (vt_series_table_init(&fresh, 0))
        return;
    it = 0;
    while ((e = vt_series_table_next(&st->ids, &it))) {
        struct dedupe_val *v = e->value;
        if (v && v->window_start_ms >= cutoff) {
            int created;
            struct vt_series_entry *ne = vt_series_table_upsert(&fresh, e->key, e->len, e->hash, &created);
            if (ne) {
                ne->value = v;
                e->value = NULL;
                continue;
            }
        }
        if (v) /* forgotten: its agent's watermark keeps recognising it */
            vt_store__set_watermark(st, e->key, strlen(e->key), v->spool_last);
        free(v);
        e->value = NULL;
    }
    vt_series_table_free(&st->ids);
    st->ids = fresh;
}

/* ---- validation ---------------------------------------------------------- */

int vt_store_validate(vt_store *st, const struct vt_batch *b, char *err, size_t errlen)
{
    size_t pos = 0, len;
    const uint8_t *agg;
    struct vt_batch_kept *k = b->kept; /* NULL once it cannot grow: nothing kept */
    if (k)
        k->of = NULL, k->n_aggs = k->n_sketches = k->keys_len = 0;
    /* what is kept per sketch is far bigger than the smallest sketch on the
     * wire: past a few times the batch's size, the batch is parsed again
     * instead (a batch of empty sketches must not cost memory by the MB) */
    size_t budget = 4 * b->len + 65536;
    for (uint32_t i = 0; vt_batch_next_aggregate(b, &pos, &agg, &len) == 1; i++) {
        struct vt_agg_head h;
        struct vt_batch_agg *ka = NULL;
        if (k && ((size_t)(k->n_sketches + VT_AGG_MAX_SKETCHES) * sizeof *k->sketches +
                          (size_t)(k->n_aggs + 1) * sizeof *k->aggs + k->keys_len > budget ||
                      len > UINT32_MAX || /* vt_agg_kept's offsets are 32-bit */
                      vt_batch_kept_reserve(k, sizeof st->key)))
            k = NULL;
        if (k) {
            ka = &k->aggs[k->n_aggs];
            *ka = (struct vt_batch_agg){.buf = agg, .len = len, .sk = k->n_sketches};
        }
        if (ka ? vt_aggregate_check_wire_kept(agg, len, &h, k->sketches + ka->sk, &ka->n_sk,
                                              &ka->rest)
               : vt_aggregate_check_wire(agg, len, &h)) {
            snprintf(err, errlen, "aggregates[%u]: invalid aggregate (counts, names, sketches or "
                     "embedding out of bounds)", i);
            return -EBADMSG;
        }
        if (!h.series) {
            snprintf(err, errlen, "aggregates[%u].series: missing", i);
            return -EBADMSG;
        }
        char *key = ka ? k->keys + k->keys_len : st->key;
        int n = vt_series_key_from_wire(h.series, h.series_len, key, sizeof st->key);
        if (n < 0) {
            snprintf(err, errlen, "aggregates[%u].series: not canonical (NUL bytes, unsorted or "
                     "duplicate labels, or too long)", i);
            return -EBADMSG;
        }
        if (ka) {
            ka->h = h;
            ka->key_off = k->keys_len;
            ka->key_len = (uint32_t)n;
            k->keys_len += (uint32_t)n;
            k->n_sketches += ka->n_sk;
            k->n_aggs++;
        }
    }
    if (k)
        k->of = b->buf, k->of_len = b->len;
    return 0;
}

/* ---- buckets ------------------------------------------------------------- */

/* Index (absolute) of the first bucket of tb starting at or after t. */
static uint32_t lower_bound(const struct tier_buckets *tb, int64_t t)
{
    uint32_t lo = tb->head, hi = tb->head + tb->n;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        if (tb->b[mid].start < t)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* Index (absolute, in tb->b) of the bucket with `start`, creating it. */
struct bucket *vt_store__bucket_get(vt_store *st, struct tier_buckets *tb, int64_t start,
                                    bool *created)
{
    if (created)
        *created = false;
    uint32_t lo = tb->head + tb->n;
    if (!tb->n || tb->b[lo - 1].start >= start) { /* else: a new newest bucket, the common case */
        lo = lower_bound(tb, start);
        if (lo < tb->head + tb->n && tb->b[lo].start == start)
            return &tb->b[lo];
    }
    /* insert at lo */
    if (tb->head + tb->n == tb->cap) {
        if (tb->head > 0 && tb->head >= tb->n / 2) { /* compact instead of growing */
            memmove(tb->b, tb->b + tb->head, (size_t)tb->n * sizeof *tb->b);
            lo -= tb->head;
            tb->head = 0;
        } else {
            uint32_t ncap = tb->cap ? tb->cap * 2 : 4;
            struct bucket *nb = realloc(tb->b, (size_t)ncap * sizeof *nb);
            if (!nb)
                return NULL;
            tb->b = nb;
            tb->cap = ncap;
        }
    }
    uint32_t end = tb->head + tb->n;
    memmove(&tb->b[lo + 1], &tb->b[lo], (size_t)(end - lo) * sizeof *tb->b);
    tb->b[lo] = (struct bucket){.start = start};
    if (created)
        *created = true;
    tb->n++;
    st->n_buckets++;
    return &tb->b[lo];
}

/* Keep a coarse tier's bucket at cold_scale or coarser (see store.h). */
static void make_cold(const vt_store *st, int tier, struct vt_aggregate *a)
{
    if (tier == 0)
        return;
    vt_sketch *fixed[] = {&a->latency_ms, &a->ttft_ms, &a->input_tokens, &a->output_tokens,
                          &a->cost_usd};
    for (size_t i = 0; i < sizeof fixed / sizeof *fixed; i++)
        if (fixed[i]->scale > st->o.cold_scale)
            vt_sketch_downscale(fixed[i], st->o.cold_scale);
    for (uint32_t i = 0; i < a->n_metrics; i++)
        if (a->metrics[i].sketch.scale > st->o.cold_scale)
            vt_sketch_downscale(&a->metrics[i].sketch, st->o.cold_scale);
}

/* Empty `a` for reuse, back at the default scale: vt_aggregate_reset keeps
 * a sketch's scale, and an accumulator that once held cold (scale 4) data
 * would otherwise coarsen the next, finer, data merged into it. */
static void agg_clear(struct vt_aggregate *a)
{
    vt_aggregate_reset(a);
    vt_sketch *fixed[] = {&a->latency_ms, &a->ttft_ms, &a->input_tokens, &a->output_tokens,
                          &a->cost_usd};
    for (size_t i = 0; i < sizeof fixed / sizeof *fixed; i++)
        if (fixed[i]->scale != VT_SKETCH_DEFAULT_SCALE) {
            vt_sketch_free(fixed[i]);
            vt_sketch_init_default(fixed[i]);
        }
}

/* The live aggregate of a first-tier bucket, created on first use. */
struct vt_aggregate *vt_store__bucket_live(struct bucket *bk)
{
    if (!bk->agg) {
        bk->agg = malloc(sizeof *bk->agg);
        if (bk->agg)
            vt_aggregate_init(bk->agg);
    }
    return bk->agg;
}

/* dst += bucket (live or packed). */
static int bucket_merge_into(const struct bucket *bk, struct vt_aggregate *dst)
{
    if (bk->agg)
        return vt_aggregate_merge(dst, bk->agg);
    if (!bk->packed)
        return 0;
    return vt_aggregate_merge_wire_checked(dst, bk->packed, bk->len); /* we packed it */
}

/* Pack `a` (made cold for `tier`) into bk, replacing what it held (a live
 * aggregate included: the bucket becomes packed). */
int vt_store__bucket_pack(vt_store *st, int tier, struct bucket *bk, struct vt_aggregate *a)
{
    make_cold(st, tier, a);
    st->pack.len = 0; /* encoded in the store's scratch buffer, kept at its exact size */
    vt_aggregate_encode(a, &st->pack);
    size_t n = st->pack.len;
    uint8_t *p = st->pack.err ? NULL : malloc(n ? n : 1);
    if (!p) {
        st->pack.err = 0; /* (the next encode starts over) */
        return -ENOMEM;
    }
    memcpy(p, st->pack.p, n);
    free(bk->packed);
    bk->packed = p;
    bk->len = (uint32_t)n;
    bk->count = a->count;
    if (bk->agg) { /* a bucket is live or packed, never both (a may be it) */
        vt_aggregate_free(bk->agg);
        free(bk->agg);
        bk->agg = NULL;
    }
    return 0;
}

/* st->cold = the packed bucket bk, decoded (empty for a new bucket). */
int vt_store__cold_load(vt_store *st, const struct bucket *bk)
{
    agg_clear(&st->cold);
    return bucket_merge_into(bk, &st->cold);
}

int vt_store__tier_for(const vt_store *st, int64_t t)
{
    if (st->now_ms && t > st->now_ms + VT_STORE_FUTURE_MS)
        return -1; /* a broken clock: kept, it would sit in the first tier for ever */
    for (size_t i = 0; i < st->o.n_tiers; i++)
        if (t >= st->boundary[i])
            return (int)i;
    return -1;
}

/* ---- panes (see store.h) ------------------------------------------------ */

/* The pane starting at m, or NULL. */
static struct bucket *pane_find(const struct tier_buckets *pt, int64_t m)
{
    uint32_t i = lower_bound(pt, m);
    return i < pt->head + pt->n && pt->b[i].start == m ? &pt->b[i] : NULL;
}

/* First-tier bucket `start` of s changed: its pane, if built, no longer is
 * the merge of its buckets. */
void vt_store__pane_touch(const vt_store *st, struct series *s, int64_t start)
{
    if (!st->pane_ms || !s->panes.n || start >= s->panes_end)
        return;
    int64_t m = align_down(start, st->pane_ms);
    if (m == s->stale_pane || start < s->panes.b[s->panes.head].start)
        return;
    struct bucket *p = pane_find(&s->panes, m);
    if (p) {
        p->stale = true;
        s->stale_pane = m;
    }
}

/* Drop the panes whose time is no longer all hot first-tier time; build the
 * panes of the minutes completed (and settled) by `now`, and rebuild the
 * stale ones. A pane that cannot be built stays stale: queries use its
 * buckets. */
static void panes_update(vt_store *st, struct series *s, int64_t now)
{
    const int64_t P = st->pane_ms;
    struct tier_buckets *pt = &s->panes;
    int64_t keep_from = st->hot_boundary > st->boundary[0] ? st->hot_boundary : st->boundary[0];
    while (pt->n && pt->b[pt->head].start < keep_from) {
        bucket_release(&pt->b[pt->head]);
        pt->head++;
        pt->n--;
        st->n_panes--;
    }
    if (!pt->n)
        pt->head = 0;
    const struct tier_buckets *tb = &s->t[0];
    int64_t done_before = align_down(now - VT_STORE_PANE_SETTLE_MS, P); /* m + P <= now - settle */
    uint32_t end = tb->head + tb->n, j = end;
    while (j > tb->head && tb->b[j - 1].start >= keep_from)
        j--;
    while (j < end) {
        int64_t m = align_down(tb->b[j].start, P);
        if (m >= done_before)
            break;
        uint32_t k = j;
        while (k < end && tb->b[k].start < m + P)
            k++;
        struct bucket *p = m >= keep_from ? pane_find(pt, m) : NULL;
        if (m >= keep_from && (!p || p->stale)) {
            if (!p) {
                bool created;
                p = vt_store__bucket_get(st, pt, m, &created);
                if (p && created) { /* vt_store__bucket_get counted it as a bucket */
                    st->n_buckets--;
                    st->n_panes++;
                    p->stale = true;
                }
            }
            struct vt_aggregate *a = p ? vt_store__bucket_live(p) : NULL;
            if (a) {
                agg_clear(a);
                int rc = 0;
                for (uint32_t u = j; u < k && !rc; u++)
                    rc = bucket_merge_into(&tb->b[u], a);
                p->stale = rc != 0;
                p->count = a->count;
                if (!p->stale && s->stale_pane == m)
                    s->stale_pane = INT64_MIN;
            }
        }
        j = k;
    }
    if (pt->n)
        s->panes_end = pt->b[pt->head + pt->n - 1].start + P;
}

struct series *vt_store__series_get(vt_store *st, const char *key, size_t len)
{
    return vt_store__series_get_hashed(st, key, len, vt_series_hash(key, len));
}

struct series *vt_store__series_get_hashed(vt_store *st, const char *key, size_t len, uint64_t h)
{
    int created = 0;
    struct vt_series_entry *e = vt_series_table_find(&st->series, key, len, h);
    if (!e) {
        if (st->series.size >= st->o.max_series) {
            st->overflow++;
            key = vt_series_overflow_key(&len);
            h = vt_series_hash(key, len);
        }
        e = vt_series_table_upsert(&st->series, key, len, h, &created);
        if (!e)
            return NULL;
    }
    if (!e->value) {
        struct series *s = e->value = calloc(1, sizeof(struct series));
        if (s)
            s->last_ms = s->stale_pane = INT64_MIN;
    }
    return e->value;
}

/* Apply works in passes over a chunk of a batch's aggregates. At 10k
 * series the rollups a batch lands in are cold, each reached through a
 * chain of pointers - the series table's slot, the series, its buckets, the
 * aggregate, its metric array, every sketch's counters - that a merge would
 * follow one miss at a time. So the first pass reads every aggregate's
 * series key and starts fetching its table slot; the second finds (or
 * creates) the series, the third starts fetching its newest bucket, the
 * fourth finds its rollup there and starts fetching that; the merges then
 * run, each first fetching what the next rollups point to. */
#define APPLY_CHUNK 16

struct target {
    const uint8_t *agg; /* the aggregate's bytes */
    size_t len;
    const struct vt_sketch_kept *kept; /* its sketches' checks, if kept */
    uint32_t n_kept;
    const struct vt_agg_kept *rest; /* and what the check kept of the rest */
    struct vt_agg_head h;
    const char *key; /* its series key, in st->key */
    size_t key_len;
    uint64_t hash;
    struct series *s; /* NULL: dropped (too old, or too far ahead) */
    int tier;
    int64_t start;                  /* the bucket's */
    const struct vt_aggregate *hot; /* its rollup if live already, for the prefetch */
};

/* Pass 1 for one aggregate: its key, at st->key + *used. 0, 1 when st->key
 * is too full for it (start a new chunk), -EBADMSG. */
static int target_key(vt_store *st, struct target *t, size_t *used)
{
    int n = -EBADMSG;
    t->kept = NULL;
    if (vt_aggregate_wire_head(t->agg, t->len, &t->h) == 0 && t->h.series)
        n = vt_series_key_from_wire(t->h.series, t->h.series_len, st->key + *used,
                                    sizeof st->key - *used);
    if (n < 0)
        return *used ? 1 : -EBADMSG; /* a validated key fits in an empty buffer */
    t->key = st->key + *used;
    t->key_len = (size_t)n;
    *used += (size_t)n;
    t->hash = vt_series_hash(t->key, t->key_len);
    vt_series_table_prefetch(&st->series, t->hash);
    return 0;
}

/* Pass 1 from what validation kept: nothing to parse. */
static void target_kept(vt_store *st, struct target *t, const struct vt_batch_kept *k,
                        const struct vt_batch_agg *a)
{
    t->agg = a->buf;
    t->len = a->len;
    t->kept = k->sketches + a->sk;
    t->n_kept = a->n_sk;
    t->rest = &a->rest;
    t->h = a->h;
    t->key = k->keys + a->key_off;
    t->key_len = a->key_len;
    t->hash = vt_series_hash(t->key, t->key_len);
    vt_series_table_prefetch(&st->series, t->hash);
}

static int merge_target(struct vt_aggregate *dst, const struct target *t)
{
    return t->kept ? vt_aggregate_merge_kept(dst, t->kept, t->n_kept, t->rest)
                   : vt_aggregate_merge_wire_checked(dst, t->agg, t->len);
}

/* Pass 2 for one aggregate: its series, found or created. 0 or -ENOMEM. */
static int target_series(vt_store *st, struct target *t)
{
    t->s = NULL;
    t->hot = NULL;
    t->tier = vt_store__tier_for(st, t->h.window_start_ms);
    if (t->tier < 0)
        return 0;
    if (!(t->s = vt_store__series_get_hashed(st, t->key, t->key_len, t->hash)))
        return -ENOMEM;
    t->start = align_down(t->h.window_start_ms, st->o.tiers[t->tier].resolution_ms);
    __builtin_prefetch(&t->s->t[t->tier]);
    return 0;
}

/* Pass 3: start fetching the newest bucket of its tier (the merge's
 * usual target: the current window). */
static void target_bucket(const struct target *t)
{
    const struct tier_buckets *tb = t->s ? &t->s->t[t->tier] : NULL;
    if (tb && tb->n)
        __builtin_prefetch(&tb->b[tb->head + tb->n - 1]);
}

/* Pass 4: the live rollup it merges into, if there is one already. */
static void target_rollup(const vt_store *st, struct target *t)
{
    /* only a rollup the merge keeps live: the packed path frees it */
    if (!t->s || t->tier != 0 || t->start < st->hot_boundary)
        return;
    const struct tier_buckets *tb = &t->s->t[0];
    if (tb->n && tb->b[tb->head + tb->n - 1].start == t->start &&
        (t->hot = tb->b[tb->head + tb->n - 1].agg))
        vt_aggregate_prefetch(t->hot);
}

/* Pass 5, ahead of the merges: the parts of its rollup the merge will write
 * - with what the check kept, only the counters its buckets land on. */
static void prefetch_parts(const struct target *t)
{
    if (t->kept)
        vt_aggregate_prefetch_kept(t->hot, t->kept, t->n_kept);
    else
        vt_aggregate_prefetch_parts(t->hot);
}

/* The merge of one aggregate: the records merged (0 if dropped), or -ENOMEM. */
static int64_t target_merge(vt_store *st, const struct target *t, uint64_t *dropped)
{
    struct series *s = t->s;
    struct bucket *bk = s ? vt_store__bucket_get(st, &s->t[t->tier], t->start, NULL) : NULL;
    if (s && !bk)
        return -ENOMEM;
    if (!s || bk->count > VT_STORE_MAX_BUCKET_COUNT - t->h.count) { /* full: see store.h */
        st->dropped_late += t->h.count;
        if (dropped)
            *dropped += t->h.count;
        return 0;
    }
    int rc;
    if (t->tier == 0 && !bk->packed && t->start >= st->hot_boundary) {
        struct vt_aggregate *live = vt_store__bucket_live(bk);
        rc = live ? merge_target(live, t) : -ENOMEM;
        if (live)
            bk->count = live->count;
    } else { /* late data for a packed bucket: decode, merge, pack */
        rc = vt_store__cold_load(st, bk);
        if (!rc)
            rc = merge_target(&st->cold, t);
        if (!rc)
            rc = vt_store__bucket_pack(st, t->tier, bk, &st->cold);
    }
    if (t->tier == 0)
        vt_store__pane_touch(st, s, t->start);
    if (rc)
        return rc;
    s->records += t->h.count;
    st->records += t->h.count;
    if (t->start > s->last_ms)
        s->last_ms = t->start;
    return (int64_t)t->h.count;
}

int64_t vt_store_apply(vt_store *st, const struct vt_batch *b, uint64_t *dropped)
{
    if (dropped)
        *dropped = 0;
    if (below_watermark(st, b))
        return 0;
    int rc = remember(st, b); /* one lookup: a known id is a duplicate */
    if (rc)
        return rc < 0 ? rc : 0;
    int64_t merged = 0;
    size_t pos = 0;
    struct target t[APPLY_CHUNK];
    /* what validation kept, if it was kept for these very bytes (used once) */
    const struct vt_batch_kept *k = NULL;
    if (b->kept && b->kept->of == b->buf && b->kept->of_len == b->len) {
        k = b->kept;
        b->kept->of = NULL;
    }
    for (uint32_t ai = 0;;) {
        uint32_t n = 0;
        size_t used = 0, at = pos;
        for (; k && n < APPLY_CHUNK && ai < k->n_aggs; n++)
            target_kept(st, &t[n], k, &k->aggs[ai++]);
        while (!k && n < APPLY_CHUNK &&
               vt_batch_next_aggregate(b, &pos, &t[n].agg, &t[n].len) == 1) {
            if ((rc = target_key(st, &t[n], &used)) < 0)
                return rc;
            if (rc) { /* st->key is full: this one starts the next chunk */
                pos = at;
                break;
            }
            at = pos;
            n++;
        }
        if (!n)
            return merged;
        for (uint32_t i = 0; i < n; i++)
            if ((rc = target_series(st, &t[i])))
                return rc;
        for (uint32_t i = 0; i < n; i++)
            target_bucket(&t[i]);
        for (uint32_t i = 0; i < n; i++)
            target_rollup(st, &t[i]);
        /* fetch steps run ahead of the merges: parts two ahead, metrics one */
        for (uint32_t i = 0; i < 2 && i < n; i++)
            if (t[i].hot)
                prefetch_parts(&t[i]);
        if (t[0].hot)
            vt_aggregate_prefetch_metrics(t[0].hot);
        for (uint32_t i = 0; i < n; i++) {
            if (i + 2 < n && t[i + 2].hot)
                prefetch_parts(&t[i + 2]);
            if (i + 1 < n && t[i + 1].hot)
                vt_aggregate_prefetch_metrics(t[i + 1].hot);
            int64_t m = target_merge(st, &t[i], dropped);
            if (m < 0)
                return m;
            merged += m;
        }
    }
}

/* ---- expiry -------------------------------------------------------------- */

/* Pack st->cold (the merge of finer buckets) into bucket `start` of tier
 * `tier`, together with what that bucket held. On ENOMEM the data is lost
 * rather than kept in a tier that no longer owns its time (the one-tier
 * rule), and uncounted. */
static void cascade_flush(vt_store *st, struct series *s, int tier, int64_t start)
{
    struct bucket *dst = vt_store__bucket_get(st, &s->t[tier], start, NULL);
    int rc = dst ? bucket_merge_into(dst, &st->cold) : -ENOMEM;
    uint64_t had = dst ? dst->count : 0;
    if (!rc)
        rc = vt_store__bucket_pack(st, tier, dst, &st->cold);
    if (rc) {
        uint64_t lost = st->cold.count - had; /* what the finer buckets brought */
        st->records -= lost;
        s->records -= lost;
    }
}

static void expire_series(vt_store *st, struct series *s, int64_t now)
{
    for (size_t i = 0; i < st->o.n_tiers; i++) {
        struct tier_buckets *tb = &s->t[i];
        bool last = i + 1 == st->o.n_tiers;
        bool have = false; /* st->cold holds data for tier i+1 bucket `cur` */
        int64_t cur = 0;
        while (tb->n && tb->b[tb->head].start < st->boundary[i]) {
            struct bucket *old = &tb->b[tb->head];
            if (!last) {
                int64_t start = align_down(old->start, st->o.tiers[i + 1].resolution_ms);
                if (have && start != cur) {
                    cascade_flush(st, s, (int)i + 1, cur);
                    have = false;
                }
                if (!have) {
                    agg_clear(&st->cold);
                    cur = start;
                    have = true;
                }
                if (bucket_merge_into(old, &st->cold)) {
                    st->records -= old->count; /* lost (ENOMEM), see cascade_flush */
                    s->records -= old->count;
                }
            } else {
                st->records -= old->count;
                s->records -= old->count;
            }
            bucket_release(old);
            tb->head++;
            tb->n--;
            st->n_buckets--;
        }
        if (have)
            cascade_flush(st, s, (int)i + 1, cur);
        if (!tb->n)
            tb->head = 0;
        /* first tier: pack what left the hot span (oldest first; stop at
         * the first bucket already packed from an earlier pass) */
        for (uint32_t j = tb->n; i == 0 && j-- > 0;) {
            struct bucket *bk = &tb->b[tb->head + j];
            if (bk->start >= st->hot_boundary)
                continue;
            if (!bk->agg)
                break;
            vt_store__bucket_pack(st, 0, bk, bk->agg); /* on ENOMEM it stays live */
        }
    }
    if (st->pane_ms)
        panes_update(st, s, now);
}

void vt_store_set_now(vt_store *st, int64_t now_ms)
{
    st->now_ms = now_ms;
}

void vt_store_expire(vt_store *st, int64_t now_ms)
{
    st->now_ms = now_ms;
    size_t nt = st->o.n_tiers;
    for (size_t i = 0; i < nt; i++) {
        int64_t res = st->o.tiers[i + 1 < nt ? i + 1 : i].resolution_ms;
        int64_t b = align_down(now_ms - st->o.tiers[i].retention_ms, res);
        if (b > st->boundary[i])
            st->boundary[i] = b;
    }
    if (now_ms - st->o.hot_ms > st->hot_boundary)
        st->hot_boundary = now_ms - st->o.hot_ms;
    uint32_t it = 0, empty = 0;
    struct vt_series_entry *e;
    while ((e = vt_series_table_next(&st->series, &it))) {
        struct series *s = e->value;
        if (!s)
            continue;
        expire_series(st, s, now_ms);
        bool any = false;
        for (size_t i = 0; i < nt; i++)
            any |= s->t[i].n > 0;
        empty += !any;
    }
    /* Series whose data all expired: rebuild the table without them once
     * they are a quarter of it (the table cannot delete in place). */
    if (empty && empty * 4 >= st->series.size) {
        struct vt_series_table fresh;
        if (!vt_series_table_init(&fresh, 0)) {
            it = 0;
            while ((e = vt_series_table_next(&st->series, &it))) {
                struct series *s = e->value;
                bool any = false;
                for (size_t i = 0; s && i < nt; i++)
                    any |= s->t[i].n > 0;
                int created;
                struct vt_series_entry *ne =
                    any ? vt_series_table_upsert(&fresh, e->key, e->len, e->hash, &created) : NULL;
                if (ne) {
                    ne->value = s;
                } else if (s) {
                    st->n_panes -= s->panes.n;
                    series_free(s);
                }
                e->value = NULL;
            }
            vt_series_table_free(&st->series);
            st->series = fresh;
        }
    }
    forget_ids(st, now_ms - vt_store_horizon_ms(st) - DEDUPE_SLACK_MS);
}

/* ---- queries ------------------------------------------------------------- */

/* ---- walking rollups with the memory ahead of the reader --------------
 * A score tick visits ~15k series x ~10 rollups, every rollup a separate
 * heap object of ~1.4 KB whose sketch buckets are another: the reader's
 * time goes to cache misses, not arithmetic (perf: the first load of each
 * rollup is most of the engine's merge time). So a series' rollups are
 * queued a few ahead of the reader (across series), and when a rollup is
 * queued, the lines its reader says it reads (struct vt_agg_reads) are
 * prefetched; one push later (its header is in by then) the counters of the
 * sketches it reads whole. Only those: prefetching the whole header (the
 * other sketches, the data-quality counters) measured slower, the line fill
 * buffers being the limit (bench_eval: 63-69 ms a tick vs 66-74 whole
 * header, 113-117 without prefetch). Prefetches are hints: nothing here
 * changes what is visited or in which order. */

#define WALK_AHEAD 3 /* rollups listed (and prefetched) ahead of the reader */

/* One rollup of the walk: a live aggregate or a packed bucket, and whose. */
struct walk_item {
    const struct vt_aggregate *agg; /* NULL: decode bk */
    const struct bucket *bk;
    const struct vt_series_entry *e;
};

/* The walk: rollups are listed into a small queue, and handed to the reader
 * WALK_AHEAD items later, across series boundaries, so that the memory of
 * the next ones is on its way meanwhile. Order is the listing order. */
struct walk {
    const struct vt_agg_reads *reads;
    struct vt_aggregate *scratch;
    vt_store_visit_cb cb;
    void *ud;
    struct walk_item q[WALK_AHEAD + 1];
    uint32_t head, n;
};

/* Hand the oldest queued rollup to the reader. */
static int walk_pop(struct walk *w)
{
    assert(w->n > 0);
    const struct walk_item *it = &w->q[w->head];
    w->head = (w->head + 1) % (WALK_AHEAD + 1);
    w->n--;
    const struct vt_aggregate *a = it->agg;
    if (!a) {
        agg_clear(w->scratch);
        if (bucket_merge_into(it->bk, w->scratch))
            return -ENOMEM;
        a = w->scratch;
    }
    return w->cb(w->ud, it->e->key, it->e->len, a);
}

static int walk_push(struct walk *w, const struct vt_aggregate *agg, const struct bucket *bk,
                     const struct vt_series_entry *e)
{
    if (w->n == WALK_AHEAD + 1) {
        int rc = walk_pop(w);
        if (rc)
            return rc;
    }
    if (agg)
        vt_aggregate_prefetch_read(agg, w->reads);
    if (w->n) { /* the previous one's header has had a push's time to come in */
        const struct walk_item *prev = &w->q[(w->head + w->n - 1) % (WALK_AHEAD + 1)];
        if (prev->agg)
            vt_aggregate_prefetch_read_parts(prev->agg, w->reads);
    }
    w->q[(w->head + w->n) % (WALK_AHEAD + 1)] = (struct walk_item){agg, bk, e};
    w->n++;
    return 0;
}

static int walk_drain(struct walk *w)
{
    while (w->n) {
        int rc = walk_pop(w);
        if (rc)
            return rc;
    }
    return 0;
}

/* List the series' rollups in [from, to) into the walk: a first-tier minute
 * the range covers whole as its pane (when built and not stale), other live
 * buckets as they are, packed ones to be decoded into scratch. No merging
 * here: the reader merges what it needs (the score engine: 2 or 3 of a
 * bucket's 8 sketches), a fraction of the cost of whole aggregates. */
static int visit_series(const vt_store *st, const struct vt_series_entry *e, int64_t from,
                        int64_t to, struct walk *w)
{
    const struct series *s = e->value;
    if (!s)
        return 0;
    const int64_t P = st->pane_ms;
    const struct tier_buckets *pt = &s->panes;
    uint32_t pi = pt->head, pend = pt->head + pt->n;
    for (size_t i = 0; i < st->o.n_tiers; i++) {
        const struct tier_buckets *tb = &s->t[i];
        uint32_t end = tb->head + tb->n;
        for (uint32_t j = lower_bound(tb, from); j < end; j++) {
            const struct bucket *bk = &tb->b[j];
            if (bk->start >= to)
                break;
            if (i == 0 && pi < pend) {
                int64_t m = align_down(bk->start, P);
                while (pi < pend && pt->b[pi].start < m)
                    pi++;
                const struct bucket *p = pi < pend ? &pt->b[pi] : NULL;
                if (p && p->start == m && p->agg && !p->stale && m >= from && m + P <= to) {
                    assert(p->count == p->agg->count);
                    int rc = walk_push(w, p->agg, p, e);
                    if (rc)
                        return rc;
                    while (j + 1 < end && tb->b[j + 1].start < m + P)
                        j++;
                    continue;
                }
            }
            int rc = walk_push(w, bk->agg, bk, e);
            if (rc)
                return rc;
        }
    }
    return 0;
}

static const struct vt_agg_reads reads_all = VT_AGG_READS_ALL;

int vt_store_query(const vt_store *st, int64_t from_ms, int64_t to_ms,
                   const struct vt_agg_reads *reads, struct vt_aggregate *scratch,
                   vt_store_visit_cb cb, void *ud)
{
    struct walk w = {.reads = reads ? reads : &reads_all, .scratch = scratch, .cb = cb, .ud = ud};
    uint32_t it = 0;
    struct vt_series_table *t = (struct vt_series_table *)&st->series;
    struct vt_series_entry *e = vt_series_table_next(t, &it);
    struct vt_series_entry *next = e ? vt_series_table_next(t, &it) : NULL;
    while (e) {
        struct vt_series_entry *after = next ? vt_series_table_next(t, &it) : NULL;
        if (after && after->value)
            __builtin_prefetch(after->value);
        int rc = visit_series(st, e, from_ms, to_ms, &w);
        if (rc)
            return rc;
        e = next;
        next = after;
    }
    return walk_drain(&w);
}

int vt_store_query_series(const vt_store *st, const char *key, size_t len, int64_t from_ms,
                          int64_t to_ms, struct vt_aggregate *scratch, vt_store_visit_cb cb,
                          void *ud)
{
    struct vt_series_table *t = (struct vt_series_table *)&st->series;
    struct vt_series_entry *e = vt_series_table_find(t, key, len, vt_series_hash(key, len));
    if (!e)
        return 0;
    struct walk w = {.reads = &reads_all, .scratch = scratch, .cb = cb, .ud = ud};
    int rc = visit_series(st, e, from_ms, to_ms, &w);
    return rc ? rc : walk_drain(&w);
}

int vt_store_each_series(const vt_store *st, vt_store_series_cb cb, void *ud)
{
    uint32_t it = 0;
    struct vt_series_entry *e;
    struct vt_series_table *t = (struct vt_series_table *)&st->series;
    while ((e = vt_series_table_next(t, &it))) {
        const struct series *s = e->value;
        if (!s || !s->records)
            continue;
        int rc = cb(ud, e->key, e->len, s->records, s->last_ms);
        if (rc)
            return rc;
    }
    return 0;
}

void vt_store_stats_get(const vt_store *st, struct vt_store_stats *out)
{
    out->series = st->series.size;
    out->buckets = st->n_buckets;
    out->batch_ids = st->ids.size;
    out->records = st->records;
    out->dropped_late = st->dropped_late;
    out->overflow = st->overflow;
    out->panes = st->n_panes;
}
