/* test_store.c - the scorer's rollup store (scorer/store.c, compiled in here
 * since scorer/ is a program, not a library): retention parsing, merging,
 * one-tier-per-time cascade, expiry, dedupe with watermark, validation, the
 * snapshot round trip, packed buckets and panes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <unistd.h>

#include "../../scorer/batch.c"
#include "../../scorer/store.c"
#include "../../scorer/store_snapshot.c"

#define MIN 60000LL
#define HOUR (60 * MIN)
#define DAY (24 * HOUR)

static const int64_t NOW = 1764288000000LL; /* a multiple of 10 minutes */

static vt_store *new_store(void)
{
    struct vt_store_opts o = {0};
    char err[128];
    assert_int_equal(vt_store_parse_retention(VT_STORE_DEFAULT_RETENTION, &o, err, sizeof err), 0);
    vt_store *st;
    assert_int_equal(vt_store_new(&st, &o), 0);
    return st;
}

/* A batch with one aggregate per (service, window, count) triple. */
struct tb {
    Vitals__V1__Batch m; /* what a test edits; pack() turns it into b */
    uint8_t buf[4096];
    struct vt_batch b;   /* as the collector sees it: parsed wire bytes */
    Vitals__V1__WindowAggregate a[4], *ap[4];
    Vitals__V1__SeriesKey k[4];
    Vitals__V1__Sketch lat[4];
    uint64_t bucket[4];
};

/* Serialise t->m and parse it into t->b, as the collector does with a
 * request. Returns vt_batch_parse's verdict. */
static int pack(struct tb *t)
{
    assert_true(vitals__v1__batch__get_packed_size(&t->m) <= sizeof t->buf);
    size_t n = vitals__v1__batch__pack(&t->m, t->buf);
    char err[128];
    return vt_batch_parse(&t->b, t->buf, n, err, sizeof err);
}

static void make(struct tb *t, const char *id, uint64_t spool_last, size_t n, const char **svc,
                 const int64_t *ws, const uint64_t *count)
{
    memset(t, 0, sizeof *t);
    vitals__v1__batch__init(&t->m);
    t->m.schema_version = 1;
    t->m.agent_id = "agent";
    t->m.batch_id = (char *)id;
    t->m.spool_last = spool_last;
    for (size_t i = 0; i < n; i++) {
        vitals__v1__series_key__init(&t->k[i]);
        t->k[i].service = (char *)svc[i];
        t->k[i].model = t->k[i].provider = t->k[i].version = "";
        vitals__v1__window_aggregate__init(&t->a[i]);
        t->a[i].series = &t->k[i];
        t->a[i].window_start_ms = ws[i];
        t->a[i].window_ms = 10000;
        t->a[i].count = count[i];
        /* a latency sketch with all values in one bucket (index 640 = 1024 ms at scale 6) */
        vitals__v1__sketch__init(&t->lat[i]);
        t->lat[i].scale = 6;
        t->lat[i].count = count[i];
        t->lat[i].sum = 1000.0 * (double)count[i];
        t->lat[i].min = t->lat[i].max = 1000.0;
        t->bucket[i] = count[i];
        static Vitals__V1__Buckets pos[4];
        vitals__v1__buckets__init(&pos[i]);
        pos[i].offset = 637;
        pos[i].n_counts = 1;
        pos[i].counts = &t->bucket[i];
        t->lat[i].positive = &pos[i];
        t->a[i].latency_ms = &t->lat[i];
        t->ap[i] = &t->a[i];
    }
    t->m.aggregates = t->ap;
    t->m.n_aggregates = n;
    assert_int_equal(pack(t), 0);
}

struct sum {
    uint64_t series, records, rollups;
    double lat_sum;
    int scale;
    const char *last_key; /* rollups of one series come one after another */
};

static int sum_cb(void *ud, const char *key, size_t len, const struct vt_aggregate *agg)
{
    struct sum *s = ud;
    (void)len;
    s->rollups++;
    if (key != s->last_key)
        s->series++;
    s->last_key = key;
    s->records += agg->count;
    s->lat_sum += vt_sketch_sum(&agg->latency_ms);
    s->scale = agg->latency_ms.scale;
    return 0;
}

static struct sum query(vt_store *st, int64_t from, int64_t to)
{
    struct sum s = {0};
    struct vt_aggregate scratch;
    vt_aggregate_init(&scratch);
    assert_int_equal(vt_store_query(st, from, to, NULL, &scratch, sum_cb, &s), 0);
    vt_aggregate_free(&scratch);
    return s;
}

/* Validation keeps what it learned for the apply of the same bytes (used
 * once, same result as parsing again); a batch of many empty sketches -
 * 2 bytes each on the wire, far more kept - is parsed again instead. */
static void test_kept(void **state)
{
    (void)state;
    vt_store *st = new_store(), *ref = new_store();
    vt_store_expire(st, NOW);
    vt_store_expire(ref, NOW);
    struct tb t;
    const char *svc[] = {"a", "b", "a"};
    int64_t ws[] = {NOW - MIN, NOW - MIN, NOW - MIN + 5000};
    uint64_t cnt[] = {3, 4, 5};
    make(&t, "agent/1", 10, 3, svc, ws, cnt);
    char err[128];
    struct vt_batch_kept kept = {0};
    assert_int_equal(vt_store_validate(ref, &t.b, err, sizeof err), 0);
    t.b.kept = &kept;
    assert_int_equal(vt_store_validate(st, &t.b, err, sizeof err), 0);
    assert_ptr_equal(kept.of, t.b.buf);
    assert_int_equal(kept.n_aggs, 3);
    assert_int_equal(kept.n_sketches, 3); /* one latency sketch each */
    assert_int_equal(vt_store_apply(st, &t.b, NULL), 12);
    assert_null(kept.of); /* used once */
    t.b.kept = NULL;
    assert_int_equal(vt_store_apply(ref, &t.b, NULL), 12);
    struct sum a = query(st, NOW - 5 * MIN, NOW), b = query(ref, NOW - 5 * MIN, NOW);
    assert_int_equal(a.records, b.records);
    assert_int_equal(a.series, b.series);
    assert_true(a.lat_sum == b.lat_sum);

    /* 1000 aggregates of 64 empty metric sketches each */
    enum { N = 1000 };
    Vitals__V1__Batch m = VITALS__V1__BATCH__INIT;
    m.schema_version = 1;
    m.agent_id = "agent";
    m.batch_id = "empty-sketches";
    m.spool_last = 99;
    static Vitals__V1__WindowAggregate ag[N], *agp[N];
    static Vitals__V1__SeriesKey key[N];
    static char names[N][16];
    static Vitals__V1__WindowAggregate__MetricSketch ms[64], *msp[64];
    static Vitals__V1__Sketch empty;
    static char mnames[64][8];
    vitals__v1__sketch__init(&empty);
    empty.scale = 6;
    for (int j = 0; j < 64; j++) {
        vitals__v1__window_aggregate__metric_sketch__init(&ms[j]);
        snprintf(mnames[j], sizeof mnames[j], "m%02d", j);
        ms[j].name = mnames[j];
        ms[j].sketch = &empty;
        msp[j] = &ms[j];
    }
    for (int i = 0; i < N; i++) {
        vitals__v1__series_key__init(&key[i]);
        snprintf(names[i], sizeof names[i], "svc%03d", i);
        key[i].service = names[i];
        key[i].model = key[i].provider = key[i].version = "";
        vitals__v1__window_aggregate__init(&ag[i]);
        ag[i].series = &key[i];
        ag[i].window_start_ms = NOW - MIN;
        ag[i].window_ms = 10000;
        ag[i].count = 1;
        ag[i].metrics = msp;
        ag[i].n_metrics = 64;
        agp[i] = &ag[i];
    }
    m.aggregates = agp;
    m.n_aggregates = N;
    size_t n = vitals__v1__batch__get_packed_size(&m);
    uint8_t *buf = malloc(n);
    vitals__v1__batch__pack(&m, buf);
    struct vt_batch bb;
    assert_int_equal(vt_batch_parse(&bb, buf, n, err, sizeof err), 0);
    bb.kept = &kept;
    assert_int_equal(vt_store_validate(st, &bb, err, sizeof err), 0);
    assert_null(kept.of); /* over budget: nothing kept ... */
    assert_true(vt_batch_kept_bytes(&kept) < 8 * n); /* kept whole: 13 times n */
    assert_int_equal(vt_store_apply(st, &bb, NULL), N); /* ... and applied all the same */
    free(buf);
    vt_batch_kept_free(&kept);
    vt_store_free(st);
    vt_store_free(ref);
}

static void test_retention_parse(void **state)
{
    (void)state;
    struct vt_store_opts o = {0};
    char err[128];
    assert_int_equal(vt_store_parse_retention("10s:2h,1m:2d,10m:15d", &o, err, sizeof err), 0);
    assert_int_equal(o.n_tiers, 3);
    assert_int_equal(o.tiers[1].resolution_ms, MIN);
    assert_int_equal(o.tiers[2].retention_ms, 15 * DAY);
    assert_int_equal(vt_store_parse_retention("10s", &o, err, sizeof err), -EINVAL);
    assert_int_equal(vt_store_parse_retention("10s:2h,15s:1d", &o, err, sizeof err), -EINVAL);
    assert_non_null(strstr(err, "multiple"));
    assert_int_equal(vt_store_parse_retention("10s:2h,1m:1h", &o, err, sizeof err), -EINVAL);
    assert_int_equal(vt_store_parse_retention("x:2h", &o, err, sizeof err), -EINVAL);
}

static void test_merge_and_dedupe(void **state)
{
    (void)state;
    vt_store *st = new_store();
    vt_store_expire(st, NOW);
    struct tb t;
    const char *svc[] = {"a", "b", "a"};
    int64_t ws[] = {NOW - MIN, NOW - MIN, NOW - MIN + 5000}; /* the 3rd shares a's 10 s bucket */
    uint64_t cnt[] = {3, 4, 5};
    make(&t, "agent/1", 10, 3, svc, ws, cnt);
    char err[128];
    assert_int_equal(vt_store_validate(st, &t.b, err, sizeof err), 0);
    assert_false(vt_store_seen(st, &t.b));
    assert_int_equal(vt_store_apply(st, &t.b, NULL), 12);
    assert_true(vt_store_seen(st, &t.b));
    assert_int_equal(vt_store_apply(st, &t.b, NULL), 0); /* duplicate: nothing */
    struct sum s = query(st, NOW - 5 * MIN, NOW);
    assert_int_equal(s.series, 2);
    assert_int_equal(s.records, 12);
    assert_true(s.lat_sum > 11999 && s.lat_sum < 12001);
    /* a second batch merges into the same buckets */
    make(&t, "agent/2", 20, 3, svc, ws, cnt);
    assert_int_equal(vt_store_validate(st, &t.b, err, sizeof err), 0);
    assert_int_equal(vt_store_apply(st, &t.b, NULL), 12);
    s = query(st, NOW - 5 * MIN, NOW);
    assert_int_equal(s.records, 24);
    /* ranges: a bucket belongs to [from, to) by its start */
    assert_int_equal(query(st, NOW - MIN + 10000, NOW).records, 0);
    assert_int_equal(query(st, NOW - MIN, NOW - MIN + 10000).records, 24);
    vt_store_free(st);
}

static void test_validation(void **state)
{
    (void)state;
    vt_store *st = new_store();
    struct tb t;
    const char *svc[] = {"a", "b"};
    int64_t ws[] = {NOW, NOW};
    uint64_t cnt[] = {3, 4};
    char err[128];
    make(&t, "agent/1", 0, 2, svc, ws, cnt);
    t.m.schema_version = 2;
    assert_int_equal(pack(&t), -EPROTO);
    t.m.schema_version = 1;
    t.a[1].errors = 99; /* more errors than records */
    assert_int_equal(pack(&t), 0);
    assert_int_equal(vt_store_validate(st, &t.b, err, sizeof err), -EBADMSG);
    assert_non_null(strstr(err, "aggregates[1]"));
    t.a[1].errors = 0;
    t.bucket[0] = 2; /* sketch count disagrees with its buckets */
    assert_int_equal(pack(&t), 0);
    assert_int_equal(vt_store_validate(st, &t.b, err, sizeof err), -EBADMSG);
    assert_non_null(strstr(err, "aggregates[0]"));
    t.bucket[0] = 3;
    t.k[1].service = NULL;
    Vitals__V1__Label l = VITALS__V1__LABEL__INIT, *lp[2] = {&l, &l};
    l.key = "pod";
    t.k[1].labels = lp; /* the same label twice: not a canonical key */
    t.k[1].n_labels = 2;
    assert_int_equal(pack(&t), 0);
    assert_int_equal(vt_store_validate(st, &t.b, err, sizeof err), -EBADMSG);
    assert_non_null(strstr(err, "aggregates[1].series"));
    t.k[1].n_labels = 0;
    t.m.batch_id = "";
    assert_int_equal(pack(&t), -EBADMSG);
    vt_store_free(st);
}

static void test_cascade_and_expiry(void **state)
{
    (void)state;
    vt_store *st = new_store();
    struct tb t;
    const char *svc[] = {"a", "a", "a", "a"};
    /* all land in tier 0 (no expire has run): 3 h ago (x2, same minute), 3 d ago, 20 d ago */
    int64_t ws[] = {NOW - 3 * HOUR, NOW - 3 * HOUR + 20000, NOW - 3 * DAY, NOW - 20 * DAY};
    uint64_t cnt[] = {1, 2, 4, 8};
    make(&t, "agent/1", 0, 4, svc, ws, cnt);
    assert_int_equal(vt_store_apply(st, &t.b, NULL), 15);
    struct vt_store_stats ss;
    vt_store_stats_get(st, &ss);
    assert_int_equal(ss.buckets, 4);
    vt_store_expire(st, NOW);
    vt_store_stats_get(st, &ss);
    /* the two 10 s buckets of the same minute became one 1 min bucket, the
     * 3-day-old one a 10 min bucket, the 20-day-old one is gone */
    assert_int_equal(ss.buckets, 2);
    assert_int_equal(ss.records, 7);
    struct sum q = query(st, NOW - 4 * HOUR, NOW);
    assert_int_equal(q.records, 3);
    assert_int_equal(q.scale, VT_STORE_COLD_SCALE); /* coarse tiers keep coarse sketches */
    assert_true(q.lat_sum == 3000.0);                /* sums stay exact */
    assert_int_equal(query(st, NOW - 5 * MIN, NOW + MIN).records, 0);
    assert_int_equal(query(st, NOW - 4 * DAY, NOW).records, 7);
    assert_int_equal(query(st, 0, NOW).records, 7);
    /* late data now goes straight to the tier that owns its time */
    int64_t ws2[] = {NOW - 3 * HOUR + 30000};
    uint64_t cnt2[] = {16};
    make(&t, "agent/2", 0, 1, svc, ws2, cnt2);
    assert_int_equal(vt_store_apply(st, &t.b, NULL), 16);
    vt_store_stats_get(st, &ss);
    assert_int_equal(ss.buckets, 2);
    /* older than the horizon: dropped and counted */
    int64_t ws3[] = {NOW - 16 * DAY};
    make(&t, "agent/3", 0, 1, svc, ws3, cnt2);
    uint64_t dropped = 0;
    assert_int_equal(vt_store_apply(st, &t.b, &dropped), 0);
    assert_int_equal(dropped, 16);
    /* everything expires eventually; the series goes away */
    vt_store_expire(st, NOW + 30 * DAY);
    vt_store_stats_get(st, &ss);
    assert_int_equal(ss.buckets, 0);
    assert_int_equal(ss.series, 0);
    vt_store_free(st);
}

/* A window from the future (an agent's broken clock) is dropped, counted,
 * and never reaches the rollups: kept, it would stay in the first tier. */
static void test_future_dropped(void **state)
{
    (void)state;
    vt_store *st = new_store();
    vt_store_expire(st, NOW);
    struct tb t;
    const char *svc[] = {"a", "b"};
    int64_t ws[] = {NOW + VT_STORE_FUTURE_MS - 10000, NOW + VT_STORE_FUTURE_MS + 10000};
    uint64_t cnt[] = {2, 3};
    make(&t, "agent/future", 1, 2, svc, ws, cnt);
    uint64_t dropped = 0;
    assert_int_equal(vt_store_apply(st, &t.b, &dropped), 2);
    assert_int_equal(dropped, 3);
    struct vt_store_stats ss;
    vt_store_stats_get(st, &ss);
    assert_int_equal(ss.series, 1);
    assert_int_equal(ss.dropped_late, 3);
    /* replay judges by the batch's arrival time (vt_store_set_now) */
    make(&t, "agent/future-2", 2, 2, svc, ws, cnt);
    vt_store_set_now(st, NOW + 2 * HOUR);
    assert_int_equal(vt_store_apply(st, &t.b, &dropped), 5);
    assert_int_equal(dropped, 0);
    vt_store_free(st);
}

static void test_dedupe_watermark(void **state)
{
    (void)state;
    vt_store *st = new_store();
    vt_store_expire(st, NOW);
    struct tb t;
    const char *svc[] = {"a"};
    int64_t ws[] = {NOW - MIN};
    uint64_t cnt[] = {1};
    make(&t, "agent/old", 100, 1, svc, ws, cnt);
    t.m.window_start_ms = NOW - MIN;
    assert_int_equal(pack(&t), 0);
    assert_int_equal(vt_store_apply(st, &t.b, NULL), 1);
    /* 16 days later the id is forgotten but the watermark still knows */
    vt_store_expire(st, NOW + 16 * DAY + 2 * HOUR);
    struct vt_store_stats ss;
    vt_store_stats_get(st, &ss);
    assert_int_equal(ss.batch_ids, 0);
    assert_true(vt_store_seen(st, &t.b));
    t.m.batch_id = "agent/new";
    t.m.spool_last = 101;
    assert_int_equal(pack(&t), 0);
    assert_false(vt_store_seen(st, &t.b));
    vt_store_free(st);
}

static void test_snapshot_roundtrip(void **state)
{
    (void)state;
    vt_store *st = new_store();
    vt_store_expire(st, NOW);
    struct tb t;
    const char *svc[] = {"a", "b", "a"};
    int64_t ws[] = {NOW - MIN, NOW - MIN, NOW - 3 * DAY};
    uint64_t cnt[] = {3, 4, 5};
    make(&t, "agent/1", 10, 3, svc, ws, cnt);
    assert_int_equal(vt_store_apply(st, &t.b, NULL), 12);
    char dir[] = "/tmp/vt-store-test-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[128];
    snprintf(path, sizeof path, "%s/snapshot.bin", dir);
    assert_int_equal(vt_store_snapshot_write(st, path, 42), 0);

    vt_store *st2 = new_store();
    vt_store_expire(st2, NOW);
    uint64_t seq = 0;
    assert_int_equal(vt_store_snapshot_load(st2, path, &seq), 0);
    assert_int_equal(seq, 42);
    struct sum a = query(st, 0, NOW), b = query(st2, 0, NOW);
    assert_int_equal(a.records, b.records);
    assert_int_equal(a.series, b.series);
    assert_true(a.lat_sum == b.lat_sum);
    assert_true(vt_store_seen(st2, &t.b));
    struct vt_store_stats s1, s2;
    vt_store_stats_get(st, &s1);
    vt_store_stats_get(st2, &s2);
    assert_int_equal(s1.buckets, s2.buckets);

    /* a damaged snapshot is refused, not half-loaded silently */
    FILE *f = fopen(path, "r+b");
    fseek(f, 40, SEEK_SET);
    fputc(0x5a, f);
    fclose(f);
    vt_store *st3 = new_store();
    assert_int_equal(vt_store_snapshot_load(st3, path, &seq), -EBADMSG);
    snprintf(path, sizeof path, "%s/none.bin", dir);
    assert_int_equal(vt_store_snapshot_load(st3, path, &seq), -ENOENT);
    snprintf(path, sizeof path, "%s/snapshot.bin", dir);
    unlink(path);
    rmdir(dir);
    vt_store_free(st3);
    vt_store_free(st2);
    vt_store_free(st);
}

/* The bucket of series `svc` in tier `tier` starting at `start` (or NULL). */
static const struct bucket *find_bucket(vt_store *st, const char *svc, int tier, int64_t start)
{
    char key[VT_SERIES_KEY_MAX];
    int n = snprintf(key, sizeof key, "%s", svc) + 4; /* service, 3 empty parts, NULs between */
    memset(key + n - 3, 0, 3);
    struct vt_series_entry *e = vt_series_table_find(&st->series, key, (size_t)n,
                                                     vt_series_hash(key, (size_t)n));
    if (!e)
        return NULL;
    const struct tier_buckets *tb = &((struct series *)e->value)->t[tier];
    for (uint32_t i = 0; i < tb->n; i++)
        if (tb->b[tb->head + i].start == start)
            return &tb->b[tb->head + i];
    return NULL;
}

/* Buckets outside the hot span and in coarse tiers are kept packed; merges
 * into them, queries over them, expiry out of them and snapshots of them
 * give the same numbers as live ones. */
static void test_packed_buckets(void **state)
{
    (void)state;
    vt_store *st = new_store();
    vt_store_expire(st, NOW);
    struct tb t;
    const char *svc[] = {"a", "a", "a"};
    int64_t ws[] = {NOW - MIN, NOW - 30 * MIN, NOW - 3 * HOUR};
    uint64_t cnt[] = {3, 4, 5};
    make(&t, "agent/1", 1, 3, svc, ws, cnt);
    assert_int_equal(vt_store_apply(st, &t.b, NULL), 12);
    const struct bucket *hot = find_bucket(st, "a", 0, NOW - MIN);
    const struct bucket *old = find_bucket(st, "a", 0, NOW - 30 * MIN);
    const struct bucket *cold = find_bucket(st, "a", 1, NOW - 3 * HOUR);
    assert_non_null(hot);
    assert_non_null(old);
    assert_non_null(cold);
    assert_true(hot->agg && !hot->packed);
    assert_true(!old->agg && old->packed && old->count == 4);
    assert_true(!cold->agg && cold->packed && cold->count == 5);
    /* late data into a packed bucket: decoded, merged, packed again */
    int64_t ws2[] = {NOW - 30 * MIN + 5000};
    uint64_t cnt2[] = {6};
    make(&t, "agent/2", 2, 1, svc, ws2, cnt2);
    assert_int_equal(vt_store_apply(st, &t.b, NULL), 6);
    struct sum q = query(st, NOW - 31 * MIN, NOW - 29 * MIN);
    assert_int_equal(q.records, 10);
    assert_true(q.lat_sum == 10000.0);
    assert_int_equal(q.scale, 6); /* the first tier keeps the agents' scale, packed or not */
    q = query(st, 0, NOW);
    assert_int_equal(q.records, 18);
    assert_true(q.lat_sum == 18000.0);
    /* the hot bucket leaves the hot span: packed by expiry, same answers */
    vt_store_expire(st, NOW + 20 * MIN);
    hot = find_bucket(st, "a", 0, NOW - MIN);
    assert_true(hot && !hot->agg && hot->packed && hot->count == 3);
    assert_int_equal(query(st, 0, NOW).records, 18);
    /* snapshot of packed buckets, and back */
    char dir[] = "/tmp/vt-store-test-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[128];
    snprintf(path, sizeof path, "%s/snapshot.bin", dir);
    assert_int_equal(vt_store_snapshot_write(st, path, 7), 0);
    vt_store *st2 = new_store();
    vt_store_expire(st2, NOW + 20 * MIN);
    uint64_t seq = 0;
    assert_int_equal(vt_store_snapshot_load(st2, path, &seq), 0);
    struct sum a = query(st, 0, NOW), b = query(st2, 0, NOW);
    assert_int_equal(a.records, b.records);
    assert_true(a.lat_sum == b.lat_sum);
    cold = find_bucket(st2, "a", 1, NOW - 3 * HOUR);
    assert_true(cold && !cold->agg && cold->packed && cold->count == 5);
    /* the packed buckets cascade on: 3 h later the 30-min-old one is a 1 min bucket */
    vt_store_expire(st2, NOW + 3 * HOUR);
    old = find_bucket(st2, "a", 1, NOW - 30 * MIN);
    assert_true(old && old->packed && old->count == 10);
    assert_int_equal(query(st2, 0, NOW).records, 18);
    struct vt_store_stats s2;
    vt_store_stats_get(st2, &s2);
    assert_int_equal(s2.records, 18);
    unlink(path);
    rmdir(dir);
    vt_store_free(st2);
    vt_store_free(st);
}

/* Panes: the same data in a store with panes and one without gives the
 * same answers over any range; ranges covering whole minutes read one pane
 * per minute; late data makes a pane stale (buckets used) until the next
 * expire rebuilds it; panes leave with the hot span and come back after a
 * snapshot load. */
static void same_answers(vt_store *st, vt_store *ref)
{
    const int64_t froms[] = {NOW - 1000, NOW, NOW + 5000, NOW + MIN, NOW + MIN + 5000,
                             NOW + 2 * MIN + 10000, NOW + 6 * MIN};
    const int64_t tos[] = {NOW + 5 * MIN, NOW + 5 * MIN + 10000, NOW + 7 * MIN + 30000,
                           NOW + 8 * MIN, NOW + 9 * MIN, NOW + 30 * MIN};
    for (size_t i = 0; i < sizeof froms / sizeof *froms; i++)
        for (size_t j = 0; j < sizeof tos / sizeof *tos; j++) {
            struct sum a = query(st, froms[i], tos[j]), b = query(ref, froms[i], tos[j]);
            assert_int_equal(a.records, b.records);
            assert_int_equal(a.series, b.series);
            assert_true(a.lat_sum == b.lat_sum);
            assert_true(a.rollups <= b.rollups);
        }
}

static void test_panes(void **state)
{
    (void)state;
    struct vt_store_opts o = {0};
    char err[128];
    assert_int_equal(vt_store_parse_retention(VT_STORE_DEFAULT_RETENTION, &o, err, sizeof err), 0);
    o.pane_ms = -1;
    vt_store *ref, *st = new_store();
    assert_int_equal(vt_store_new(&ref, &o), 0);
    vt_store_expire(st, NOW);
    vt_store_expire(ref, NOW);
    /* 8 minutes of 10 s windows for series a and b, varying counts */
    const char *svc[] = {"a", "b", "a", "b"};
    uint64_t total = 0;
    for (int k = 0; k < 48; k += 2) {
        int64_t ws[4];
        uint64_t cnt[4];
        for (int i = 0; i < 4; i++) {
            ws[i] = NOW + (k + i / 2) * 10000LL;
            cnt[i] = 1 + (uint64_t)(k * 7 + i) % 5;
            total += cnt[i];
        }
        char id[32];
        snprintf(id, sizeof id, "agent/%d", k);
        struct tb t;
        make(&t, id, (uint64_t)k + 1, 4, svc, ws, cnt);
        assert_int_equal(vt_store_apply(st, &t.b, NULL), (int64_t)(cnt[0] + cnt[1] + cnt[2] + cnt[3]));
        assert_int_equal(vt_store_apply(ref, &t.b, NULL), (int64_t)(cnt[0] + cnt[1] + cnt[2] + cnt[3]));
    }
    struct vt_store_stats ss;
    vt_store_stats_get(st, &ss);
    assert_int_equal(ss.panes, 0); /* no minute is over yet */
    /* minutes 0..7 are over and settled (+15 s) at 8 min 20 s */
    int64_t now = NOW + 8 * MIN + 20000;
    vt_store_expire(st, now);
    vt_store_expire(ref, now);
    vt_store_stats_get(st, &ss);
    assert_int_equal(ss.panes, 16);
    assert_int_equal(ss.buckets, 96); /* panes are not buckets */
    vt_store_stats_get(ref, &ss);
    assert_int_equal(ss.panes, 0);
    struct sum q = query(st, NOW, NOW + 5 * MIN);
    assert_int_equal(q.rollups, 10); /* 2 series x 5 panes, instead of 2 x 30 buckets */
    assert_int_equal(query(ref, NOW, NOW + 5 * MIN).rollups, 60);
    assert_int_equal(query(st, 0, now).records, total);
    same_answers(st, ref);
    /* late data into minute 2 of a: that pane is stale until the next expire */
    const char *late_svc[] = {"a"};
    int64_t late_ws[] = {NOW + 2 * MIN + 10000};
    uint64_t late_cnt[] = {9};
    struct tb t;
    make(&t, "agent/late", 1000, 1, late_svc, late_ws, late_cnt);
    assert_int_equal(vt_store_apply(st, &t.b, NULL), 9);
    assert_int_equal(vt_store_apply(ref, &t.b, NULL), 9);
    q = query(st, NOW, NOW + 5 * MIN);
    assert_int_equal(q.rollups, 10 - 1 + 6);
    same_answers(st, ref);
    vt_store_expire(st, now);
    vt_store_expire(ref, now);
    assert_int_equal(query(st, NOW, NOW + 5 * MIN).rollups, 10);
    same_answers(st, ref);
    /* the hot span (15 min) moves past minutes 0..4: their panes go (the
     * buckets are packed), minutes 5..7 keep theirs */
    now = NOW + 20 * MIN;
    vt_store_expire(st, now);
    vt_store_expire(ref, now);
    vt_store_stats_get(st, &ss);
    assert_int_equal(ss.panes, 6);
    same_answers(st, ref);
    /* panes are not in snapshots: the first expire after a load rebuilds them */
    char dir[] = "/tmp/vt-store-test-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[128];
    snprintf(path, sizeof path, "%s/snapshot.bin", dir);
    assert_int_equal(vt_store_snapshot_write(st, path, 1), 0);
    vt_store *st2 = new_store();
    vt_store_expire(st2, now);
    uint64_t seq = 0;
    assert_int_equal(vt_store_snapshot_load(st2, path, &seq), 0);
    vt_store_stats_get(st2, &ss);
    assert_int_equal(ss.panes, 0);
    same_answers(st2, ref);
    vt_store_expire(st2, now);
    vt_store_stats_get(st2, &ss);
    assert_int_equal(ss.panes, 6);
    assert_int_equal(query(st2, NOW + 5 * MIN, NOW + 8 * MIN).rollups, 6);
    same_answers(st2, ref);
    unlink(path);
    rmdir(dir);
    vt_store_free(st2);
    vt_store_free(ref);
    vt_store_free(st);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_retention_parse),  cmocka_unit_test(test_merge_and_dedupe),
        cmocka_unit_test(test_kept),
        cmocka_unit_test(test_validation),       cmocka_unit_test(test_cascade_and_expiry),
        cmocka_unit_test(test_future_dropped),
        cmocka_unit_test(test_dedupe_watermark), cmocka_unit_test(test_snapshot_roundtrip),
        cmocka_unit_test(test_packed_buckets),   cmocka_unit_test(test_panes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
