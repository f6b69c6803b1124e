/*
 * window.c - per-window aggregation and the making of batches.
 *
 * The same two folding functions serve live ingest and the rebuild of a
 * window from the spool, with the same inputs (the line, the frame's arrival
 * time, the resolved service of a rejected line), so a rebuilt window is the
 * live one, series for series and bucket for bucket. That is what lets a
 * batch rebuilt after a crash carry the identity - and the content - of the
 * batch that may already have reached the scorer.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent.h"
#include "log.h"

/* --- folding (loop thread for live windows, worker thread for rebuilds) --- */

static struct vt_aggregate *series_aggregate(struct window *w, const char *key, size_t len,
                                             uint32_t max_series)
{
    uint64_t h = vt_series_hash(key, len);
    struct vt_series_entry *e = vt_series_table_find(&w->series, key, len, h);
    if (!e) {
        if (max_series && w->series.size >= max_series) {
            key = vt_series_overflow_key(&len);
            h = vt_series_hash(key, len);
            w->overflow_records++;
        }
        int created;
        e = vt_series_table_upsert(&w->series, key, len, h, &created);
        if (!e)
            return NULL;
    }
    if (!e->value) {
        struct vt_aggregate *a = malloc(sizeof *a);
        if (!a)
            return NULL;
        vt_aggregate_init(a);
        e->value = a;
    }
    return e->value;
}

static void fold_record(struct window *w, const struct vt_record *rec, uint32_t max_series)
{
    char key[VT_SERIES_KEY_MAX];
    size_t len = vt_series_key_from_record(rec, key, sizeof key);
    const char *k = key;
    if (len == 0)
        k = vt_series_overflow_key(&len);
    struct vt_aggregate *a = series_aggregate(w, k, len, max_series);
    if (a)
        vt_aggregate_add(a, rec);
}

static void fold_invalid(struct window *w, enum vt_record_reject reason, const char *service,
                         size_t slen, uint32_t max_series)
{
    char key[512];
    if (slen > 256)
        slen = 256;
    memcpy(key, service, slen);
    memset(key + slen, 0, 4); /* service \0 model \0 provider \0 version \0 */
    struct vt_aggregate *a = series_aggregate(w, key, slen + 4, max_series);
    if (a)
        vt_aggregate_add_invalid(a, reason);
}

static enum vt_record_reject reject_by_name(const char *name, size_t len)
{
    for (int r = 1; r < VT_REJECT__COUNT; r++) {
        const char *n = vt_record_reject_name(r);
        if (strlen(n) == len && memcmp(n, name, len) == 0)
            return (enum vt_record_reject)r;
    }
    return VT_REJECT_PARSE_ERROR;
}

void window_replay_payload(struct vt_record_decoder *dec, struct window *w, int64_t arrival_ms,
                           const char *data, size_t len, uint32_t max_series, uint64_t skip_lines)
{
    const char *p = data, *end = data + len, *l;
    size_t n;
    for (uint64_t i = 0; p < end; i++) {
        enum spool_line kind = spool_line_next(&p, end, &l, &n);
        if (i < skip_lines)
            continue;
        if (kind == SPOOL_LINE_INVALID) {
            const char *sp = memchr(l, ' ', n);
            size_t rlen = sp ? (size_t)(sp - l - 1) : n - 1;
            const char *svc = sp ? sp + 1 : "";
            size_t slen = sp ? (size_t)(l + n - svc) : 0;
            fold_invalid(w, reject_by_name(l + 1, rlen), svc, slen, max_series);
        } else if (kind == SPOOL_LINE_RECORD) {
            struct vt_record rec;
            enum vt_record_kind k = vt_record_decode(dec, l, n, arrival_ms, &rec);
            if (k == VT_RECORD_DATA)
                fold_record(w, &rec, max_series);
            else if (k == VT_RECORD_REJECTED) /* limits changed since: count it */
                fold_invalid(w, rec.reject, "", 0, max_series);
        }
    }
}

/* --- the window list (loop thread) ----------------------------------------- */

struct window *window_get(struct agent *ag, int64_t arrival_ms)
{
    int64_t start = arrival_ms - arrival_ms % ag->cfg.window_ms;
    struct window *last = ag->windows;
    while (last && last->next)
        last = last->next;
    if (last && last->start_ms == start && !last->sealed)
        return last;
    struct window *w = calloc(1, sizeof *w);
    if (!w || vt_series_table_init(&w->series, 0) != 0) {
        vt_error("window: out of memory");
        abort();
    }
    w->start_ms = start;
    w->live = true;
    if (last)
        last->next = w;
    else
        ag->windows = w;
    /* A new window seals every older one (clock steps back, or a #seal). */
    for (struct window *o = ag->windows; o != w; o = o->next)
        o->sealed = true;
    return w;
}

void window_add_record(struct agent *ag, struct window *w, const struct vt_record *rec)
{
    w->records++;
    if (w->live) {
        uint32_t before = w->series.size;
        uint64_t overflow = w->overflow_records;
        fold_record(w, rec, (uint32_t)ag->cfg.max_series);
        if (w->series.size != before)
            vt_gauge_set(ag->m.series, w->series.size);
        if (w->overflow_records != overflow)
            vt_counter_inc(ag->m.series_overflow);
    }
}

void window_add_invalid(struct agent *ag, struct window *w, enum vt_record_reject reason,
                        const char *service, size_t slen)
{
    w->invalid++;
    if (w->live)
        fold_invalid(w, reason, service, slen, (uint32_t)ag->cfg.max_series);
}

void window_frame_appended(struct window *w, uint64_t first_seq, uint32_t lines)
{
    if (w->lines == 0)
        w->first_seq = first_seq;
    w->end_seq = first_seq + lines;
    w->lines += lines;
    w->frames_pending--;
}

/* Drop the aggregates and the table itself: a cold window costs only its
 * metadata, however long it waits, and is rebuilt from the spool. */
void window_discard(struct window *w)
{
    uint32_t i = 0;
    struct vt_series_entry *e;
    if (w->series.slots)
        while ((e = vt_series_table_next(&w->series, &i))) {
            vt_aggregate_free(e->value);
            free(e->value);
        }
    vt_series_table_free(&w->series);
    w->live = false;
}

void window_tick(struct agent *ag, int64_t now_ms, bool force_close)
{
    if (force_close) {
        /* A "#seal" line, so that a restart within the same window period
         * cannot add lines to a window that may already have shipped. */
        struct window *last = ag->windows;
        while (last && last->next)
            last = last->next;
        if (last && !last->sealed)
            spool_seal_window(ag);
    }
    uint32_t live = 0;
    bool in_order = true; /* windows ship in spool order: stop at the first not ready */
    for (struct window *w = ag->windows; w; w = w->next) {
        if (!w->sealed && (force_close || now_ms >= w->start_ms + ag->cfg.window_ms)) {
            w->sealed = true;
            spool_seal_frame(ag); /* the open frame, if any, can only be w's */
        }
        in_order = in_order && w->sealed && w->frames_pending == 0;
        if (in_order && !w->queued) {
            w->queued = true;
            shipper_enqueue(ag, w);
        }
        if (!w->building && w->live) /* a build job owns w->live meanwhile */
            live++;
    }
    /* Bound memory: closed windows waiting to ship beyond max_live_windows
     * give up their aggregates (newest first) and are rebuilt from the spool
     * when their turn comes. A window handed to a build is not ours to touch. */
    if (live <= (uint32_t)ag->cfg.max_live_windows)
        return;
    struct window *cand[64];
    uint32_t n = 0;
    for (struct window *w = ag->windows; w && n < 64; w = w->next)
        if (!w->building && w->live && w->sealed && w->queued)
            cand[n++] = w;
    while (n > 0 && live > (uint32_t)ag->cfg.max_live_windows) {
        window_discard(cand[--n]);
        live--;
    }
}

void window_free(struct window *w)
{
    if (!w)
        return;
    window_discard(w);
    free(w);
}

/* --- packing (worker thread) ------------------------------------------------ */

static int cmp_entry(const void *a, const void *b)
{
    const struct vt_series_entry *x = *(const struct vt_series_entry *const *)a;
    const struct vt_series_entry *y = *(const struct vt_series_entry *const *)b;
    size_t n = x->len < y->len ? x->len : y->len;
    int c = memcmp(x->key, y->key, n);
    return c ? c : (x->len > y->len) - (x->len < y->len);
}

static void release_msgs(Vitals__V1__WindowAggregate **msgs, uint32_t n)
{
    for (uint32_t i = 0; i < n; i++) {
        if (!msgs[i])
            continue;
        if (msgs[i]->series) {
            vt_series_key_proto_release(msgs[i]->series);
            free(msgs[i]->series);
            msgs[i]->series = NULL;
        }
        vt_aggregate_proto_release(msgs[i]);
        free(msgs[i]);
    }
    free(msgs);
}

int window_pack(const struct agent_config *cfg, const char *agent_id, struct window *w,
                uint8_t ***batches_out, size_t **lens_out, char ***ids_out, uint32_t *n_out,
                uint64_t *records_out)
{
    uint32_t n = w->series.size, i = 0, k = 0;
    int rc = -ENOMEM;
    struct vt_series_entry **es = calloc(n + 1, sizeof *es);
    Vitals__V1__WindowAggregate **msgs = calloc(n + 1, sizeof *msgs);
    size_t *sizes = calloc(n + 1, sizeof *sizes);
    uint8_t **batches = calloc(n + 1, sizeof *batches);
    size_t *lens = calloc(n + 1, sizeof *lens);
    char **ids = calloc(n + 1, sizeof *ids);
    *records_out = 0;
    *n_out = 0;
    if (!es || !msgs || !sizes || !batches || !lens || !ids)
        goto out;
    struct vt_series_entry *e;
    while ((e = vt_series_table_next(&w->series, &i)))
        es[k++] = e;
    qsort(es, n, sizeof *es, cmp_entry);
    size_t ovl;
    const char *okey = vt_series_overflow_key(&ovl);
    for (i = 0; i < n; i++) {
        msgs[i] = malloc(sizeof **msgs);
        if (!msgs[i] || vt_aggregate_to_proto(es[i]->value, msgs[i]) != 0) {
            free(msgs[i]);
            msgs[i] = NULL;
            goto out;
        }
        msgs[i]->series = malloc(sizeof *msgs[i]->series);
        if (!msgs[i]->series || vt_series_key_to_proto(es[i]->key, es[i]->len, msgs[i]->series)) {
            free(msgs[i]->series);
            msgs[i]->series = NULL;
            goto out;
        }
        msgs[i]->window_start_ms = w->start_ms;
        msgs[i]->window_ms = (uint32_t)cfg->window_ms;
        msgs[i]->overflow = es[i]->len == ovl && memcmp(es[i]->key, okey, ovl) == 0;
        sizes[i] = vitals__v1__window_aggregate__get_packed_size(msgs[i]);
    }
    /* Cut [0, n) into batches: deterministic, since the order and the sizes
     * are functions of the window's contents. */
    uint32_t nb = 0;
    for (i = 0; i < n;) {
        uint32_t j = i;
        size_t bytes = 0;
        while (j < n && j - i < (uint32_t)cfg->batch_max_aggregates &&
               (j == i || bytes + sizes[j] <= (size_t)cfg->batch_max_bytes))
            bytes += sizes[j++];
        Vitals__V1__Batch b = VITALS__V1__BATCH__INIT;
        char id[256];
        snprintf(id, sizeof id, "%s/%lld/%llu-%llu/%u", agent_id, (long long)w->start_ms,
                 (unsigned long long)w->first_seq, (unsigned long long)(w->end_seq - 1), nb);
        b.schema_version = 1;
        b.agent_id = (char *)agent_id;
        b.window_start_ms = w->start_ms;
        b.spool_first = w->first_seq;
        b.spool_last = w->end_seq - 1;
        b.batch_id = id;
        b.aggregates = msgs + i;
        b.n_aggregates = j - i;
        for (uint32_t t = i; t < j; t++)
            b.records += msgs[t]->count;
        *records_out += b.records;
        lens[nb] = vitals__v1__batch__get_packed_size(&b);
        batches[nb] = malloc(lens[nb] ? lens[nb] : 1);
        ids[nb] = strdup(id);
        if (!batches[nb] || !ids[nb]) {
            nb++;
            goto out;
        }
        vitals__v1__batch__pack(&b, batches[nb]);
        nb++;
        i = j;
    }
    rc = 0;
    *n_out = nb;
out:
    if (msgs)
        release_msgs(msgs, n);
    free(es);
    free(sizes);
    if (rc) {
        for (i = 0; batches && i <= n; i++) {
            free(batches[i]);
            free(ids ? ids[i] : NULL);
        }
        free(batches);
        free(lens);
        free(ids);
        return rc;
    }
    window_discard(w); /* the aggregates are in the batches now */
    *batches_out = batches;
    *lens_out = lens;
    *ids_out = ids;
    return 0;
}
