/*
 * store_snapshot.c - the store's snapshot file: writing it atomically
 * (tmp + fsync + rename) and loading it back into an empty store at start-up.
 * Split from store.c so the rollup logic and the on-disk format read apart.
 *
 * File: "VTSNAP01", u64 wal_seq, then entries [u8 type][u32 len][len bytes],
 * then [u8 0][u32 crc32c of everything before]. Types:
 *   1 packed WindowAggregate (series, window_start = bucket start,
 *     window_ms = the tier's resolution)
 *   2 dedupe id: i64 window_start, u64 spool_last, key bytes
 *   3 agent watermark: u64, agent bytes
 * Integers little-endian (the machines we run on; checked by the CRC).
 */
#include "store.h"
#include "store_internal.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <isa-l/crc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "pb_wire.h"
#include "pb_write.h"
#include "series.h"

#define SNAP_MAGIC "VTSNAP01"

/* crc32_iscsi takes an int length: feed big buffers in 1 GiB steps. */
static uint32_t crc_big(const uint8_t *p, size_t n, uint32_t crc)
{
    while (n) {
        size_t k = n > (1u << 30) ? (1u << 30) : n;
        crc = crc32_iscsi((unsigned char *)p, (int)k, crc);
        p += k;
        n -= k;
    }
    return crc;
}

struct wbuf {
    FILE *f;
    uint32_t crc;
    int err;
};

static void w_bytes(struct wbuf *w, const void *p, size_t n)
{
    if (w->err || !n)
        return;
    if (fwrite(p, 1, n, w->f) != n)
        w->err = -EIO;
    w->crc = crc32_iscsi((unsigned char *)p, (int)n, w->crc);
}

static void w_entry(struct wbuf *w, uint8_t type, const void *a, size_t an, const void *b, size_t bn)
{
    uint8_t small[256]; /* ids and watermarks: one write, one CRC step */
    uint32_t len = (uint32_t)(an + bn);
    if (5 + (size_t)len <= sizeof small) {
        small[0] = type;
        memcpy(small + 1, &len, 4);
        memcpy(small + 5, a, an);
        if (bn)
            memcpy(small + 5 + an, b, bn);
        w_bytes(w, small, 5 + (size_t)len);
        return;
    }
    w_bytes(w, &type, 1);
    w_bytes(w, &len, 4);
    w_bytes(w, a, an);
    w_bytes(w, b, bn);
}

/* One bucket as a type-1 entry, encoded in *pw (reused). A packed bucket is
 * written as it is, after a small message holding its series and window:
 * two encodings of one message concatenated are the encoding of their merge
 * (protobuf), and the packed bytes carry neither field. */
static int write_bucket(struct wbuf *w, const char *key, size_t len, const struct bucket *bk,
                        int64_t res, struct pbw *pw)
{
    pw->len = 0;
    size_t at = pbw_open(pw, 1);
    vt_series_key_encode(key, len, pw);
    pbw_close(pw, at);
    pbw_uint(pw, 2, (uint64_t)bk->start);
    pbw_uint(pw, 3, (uint32_t)res);
    if (bk->agg)
        vt_aggregate_encode(bk->agg, pw);
    if (pw->err)
        return pw->err;
    w_entry(w, 1, pw->p, pw->len, bk->agg ? NULL : bk->packed, bk->agg ? 0 : bk->len);
    return 0;
}

/* Every bucket of every series, in table order: at->e and at->tier say
 * whose. Copies walk ahead independently. */
struct bucket_it {
    const vt_store *st;
    uint32_t it;
    const struct vt_series_entry *e; /* NULL: before the first series */
    size_t tier;
    uint32_t j;
};

static const struct bucket *bucket_next(struct bucket_it *b)
{
    for (;;) {
        const struct series *s = b->e ? b->e->value : NULL;
        if (s && b->tier < b->st->o.n_tiers) {
            const struct tier_buckets *tb = &s->t[b->tier];
            if (b->j < tb->n)
                return &tb->b[tb->head + b->j++];
            b->tier++;
            b->j = 0;
            continue;
        }
        if (!(b->e = vt_series_table_next((struct vt_series_table *)&b->st->series, &b->it)))
            return NULL;
        b->tier = 0;
        b->j = 0;
    }
}

int vt_store_snapshot_write(const vt_store *st, const char *path, uint64_t wal_seq)
{
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    struct wbuf w = {.f = fopen(tmp, "wb"), .crc = 0};
    if (!w.f)
        return -errno;
    setvbuf(w.f, NULL, _IOFBF, 1 << 20); /* a snapshot is tens of MB: few, large writes */
    w_bytes(&w, SNAP_MAGIC, 8);
    w_bytes(&w, &wal_seq, 8);
    struct pbw pw = {0};
    /* the rollups are cold: fetch ahead what each will read, in three
     * steps as apply does (the aggregate, its parts, its metrics) */
    struct bucket_it at = {.st = st}, ahead[3];
    const struct bucket *bk;
    for (int k = 0; k < 3; k++) { /* ahead[k]: k + 1 buckets ahead */
        ahead[k] = at;
        for (int n = 0; n <= k; n++)
            bucket_next(&ahead[k]);
    }
    while (!w.err && (bk = bucket_next(&at))) {
        const struct bucket *p;
        if ((p = bucket_next(&ahead[2])) && p->agg)
            vt_aggregate_prefetch(p->agg);
        if ((p = bucket_next(&ahead[1])) && p->agg)
            vt_aggregate_prefetch_parts(p->agg);
        if ((p = bucket_next(&ahead[0])) && p->agg)
            vt_aggregate_prefetch_metrics(p->agg);
        int rc = write_bucket(&w, at.e->key, at.e->len, bk, st->o.tiers[at.tier].resolution_ms, &pw);
        if (rc)
            w.err = rc;
    }
    free(pw.p);
    uint32_t it = 0;
    struct vt_series_entry *e;
    struct vt_series_table *t = (struct vt_series_table *)&st->ids;
    while (!w.err && (e = vt_series_table_next(t, &it))) {
        const struct dedupe_val *v = e->value;
        if (!v)
            continue;
        uint8_t hdr[16];
        memcpy(hdr, &v->window_start_ms, 8);
        memcpy(hdr + 8, &v->spool_last, 8);
        w_entry(&w, 2, hdr, 16, e->key, e->len);
    }
    it = 0;
    t = (struct vt_series_table *)&st->agents;
    while (!w.err && (e = vt_series_table_next(t, &it)))
        if (e->value)
            w_entry(&w, 3, e->value, 8, e->key, e->len);
    uint8_t zero = 0;
    uint32_t crc = w.crc;
    w_bytes(&w, &zero, 1);
    if (!w.err && fwrite(&crc, 1, 4, w.f) != 4)
        w.err = -EIO;
    if (!w.err && (fflush(w.f) || fsync(fileno(w.f))))
        w.err = -errno;
    if (fclose(w.f) && !w.err)
        w.err = -EIO;
    if (!w.err && rename(tmp, path))
        w.err = -errno;
    if (w.err) {
        unlink(tmp);
        return w.err;
    }
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (slash)
        *slash = 0;
    int dfd = open(slash ? dir : ".", O_RDONLY | O_DIRECTORY);
    if (dfd >= 0) {
        fsync(dfd);
        close(dfd);
    }
    return 0;
}

static int tier_of_resolution(const vt_store *st, int64_t res)
{
    for (size_t i = 0; i < st->o.n_tiers; i++)
        if (st->o.tiers[i].resolution_ms == res)
            return (int)i;
    return -1;
}

/* The bytes of a WindowAggregate without its series and window fields (1, 2,
 * 3): what a packed bucket holds. Returns the length written to out (which
 * has room for len bytes). */
static size_t strip_head(const uint8_t *d, size_t len, uint8_t *out)
{
    struct pb b = pb_make(d, len);
    struct pbf f;
    size_t n = 0;
    const uint8_t *at = b.p;
    while (pb_next(&b, &f) == 1) {
        if (f.num > 3) {
            memcpy(out + n, at, (size_t)(b.p - at));
            n += (size_t)(b.p - at);
        }
        at = b.p;
    }
    return n;
}

static int load_entries(vt_store *st, const uint8_t *p, size_t n)
{
    size_t off = 0;
    while (off + 5 <= n) {
        uint8_t type = p[off];
        uint32_t len;
        memcpy(&len, p + off + 1, 4);
        off += 5;
        if (type == 0)
            return 0;
        if (len > n - off)
            return -EBADMSG;
        const uint8_t *d = p + off;
        off += len;
        if (type == 1) {
            struct vt_agg_head h;
            if (vt_aggregate_check_wire(d, len, &h) || !h.series)
                return -EBADMSG;
            int kn = vt_series_key_from_wire(h.series, h.series_len, st->key, sizeof st->key);
            int tier = tier_of_resolution(st, h.window_ms);
            /* A snapshot taken with other tiers: put data where it belongs now. */
            if (tier < 0 || h.window_start_ms < st->boundary[tier])
                tier = vt_store__tier_for(st, h.window_start_ms);
            if (kn < 0 || tier < 0)
                continue;
            struct series *s = vt_store__series_get(st, st->key, (size_t)kn);
            int64_t start = align_down(h.window_start_ms, st->o.tiers[tier].resolution_ms);
            bool fresh = false;
            struct bucket *bk = s ? vt_store__bucket_get(st, &s->t[tier], start, &fresh) : NULL;
            int rc = bk ? 0 : -ENOMEM;
            if (!rc && tier == 0) {
                vt_store__pane_touch(st, s, start);
                struct vt_aggregate *live = vt_store__bucket_live(bk);
                rc = live ? vt_aggregate_merge_wire_checked(live, d, len) : -ENOMEM;
                if (!rc)
                    bk->count = live->count;
            } else if (!rc && fresh && h.window_ms == st->o.tiers[tier].resolution_ms) {
                /* A cold bucket as we wrote it: keep its bytes, minus series
                 * and window - no decode, no merge. */
                bk->packed = malloc(len ? len : 1);
                if (!bk->packed) {
                    rc = -ENOMEM;
                } else {
                    bk->len = (uint32_t)strip_head(d, len, bk->packed);
                    bk->count = h.count;
                }
            } else if (!rc) {
                rc = vt_store__cold_load(st, bk);
                if (!rc)
                    rc = vt_aggregate_merge_wire_checked(&st->cold, d, len);
                if (!rc)
                    rc = vt_store__bucket_pack(st, tier, bk, &st->cold);
            }
            if (rc)
                return rc;
            s->records += h.count;
            st->records += h.count;
            if (start > s->last_ms)
                s->last_ms = start;
            continue;
        } else if (type == 2 && len >= 16) {
            int created;
            struct vt_series_entry *e = vt_series_table_upsert(
                &st->ids, (const char *)d + 16, len - 16, vt_series_hash((const char *)d + 16, len - 16),
                &created);
            if (!e)
                return -ENOMEM;
            if (!e->value && !(e->value = malloc(sizeof(struct dedupe_val))))
                return -ENOMEM;
            memcpy(e->value, d, 16);
        } else if (type == 3 && len >= 8) {
            uint64_t wm;
            memcpy(&wm, d, 8);
            if (vt_store__set_watermark(st, (const char *)d + 8, len - 8, wm))
                return -ENOMEM;
        }
    }
    return -EBADMSG;
}

int vt_store_snapshot_load(vt_store *st, const char *path, uint64_t *wal_seq)
{
    assert(st->series.size == 0 && st->ids.size == 0);
    FILE *f = fopen(path, "rb");
    if (!f)
        return errno == ENOENT ? -ENOENT : -errno;
    struct stat sb;
    if (fstat(fileno(f), &sb) || sb.st_size < 16 + 5 + 4) {
        fclose(f);
        return -EBADMSG;
    }
    size_t n = (size_t)sb.st_size;
    uint8_t *p = malloc(n);
    if (!p) {
        fclose(f);
        return -ENOMEM;
    }
    size_t got = fread(p, 1, n, f);
    fclose(f);
    uint32_t crc;
    if (got != n || memcmp(p, SNAP_MAGIC, 8) != 0) {
        free(p);
        return -EBADMSG;
    }
    memcpy(&crc, p + n - 4, 4);
    if (crc_big(p, n - 4 - 1, 0) != crc || p[n - 5] != 0) {
        free(p);
        return -EBADMSG;
    }
    memcpy(wal_seq, p + 8, 8);
    int rc = load_entries(st, p + 16, n - 16);
    free(p);
    return rc;
}
