/*
 * series.c - see series.h. The table keeps its load factor under 3/4 and
 * doubles; keys are copied once, on insert, so the hot path (a find for a
 * series seen before) touches no allocator.
 */
#include "series.h"
#include "pb_wire.h"
#include "pb_write.h"

#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

static const char overflow_key[] = VT_SERIES_OVERFLOW "\0\0\0";

const char *vt_series_overflow_key(size_t *len)
{
    *len = sizeof overflow_key - 1; /* "__overflow__" + 4 NULs */
    return overflow_key;
}

static int put(char *buf, size_t cap, size_t *n, const char *s, size_t len)
{
    if (*n + len + 1 > cap)
        return -1;
    if (len)
        memcpy(buf + *n, s, len);
    buf[*n + len] = 0;
    *n += len + 1;
    return 0;
}

size_t vt_series_key_from_record(const struct vt_record *rec, char *buf, size_t cap)
{
    size_t n = 0;
    const struct vt_str *parts[] = {&rec->service, &rec->model, &rec->provider, &rec->version};
    for (int i = 0; i < 4; i++)
        if (put(buf, cap, &n, parts[i]->ptr, parts[i]->len) != 0)
            return 0;
    for (uint32_t i = 0; i < rec->n_labels; i++)
        if (put(buf, cap, &n, rec->labels[i].key.ptr, rec->labels[i].key.len) != 0 ||
            put(buf, cap, &n, rec->labels[i].value.ptr, rec->labels[i].value.len) != 0)
            return 0;
    return n;
}

uint64_t vt_series_hash(const char *key, size_t len)
{
    /* Eight bytes per step (multiply-xorshift), then a splitmix64 finish so
     * that linear probing on the low bits sees well-mixed values. Words are
     * read little-endian, so the value is the same on every machine. */
    uint64_t h = 0x9e3779b97f4a7c15ull ^ (len * 0xff51afd7ed558ccdull);
    const unsigned char *p = (const unsigned char *)key;
    for (; len >= 8; p += 8, len -= 8) {
        uint64_t w = 0;
        for (int i = 7; i >= 0; i--)
            w = w << 8 | p[i];
        h = (h ^ w) * 0xbf58476d1ce4e5b9ull;
        h ^= h >> 29;
    }
    uint64_t w = 0;
    for (size_t i = len; i > 0; i--)
        w = w << 8 | p[i - 1];
    h = (h ^ w) * 0x94d049bb133111ebull;
    h ^= h >> 30;
    h *= 0xbf58476d1ce4e5b9ull;
    h ^= h >> 27;
    h *= 0x94d049bb133111ebull;
    return h ^ (h >> 31);
}

/* The next NUL-terminated part at *pos, or -1 at the end. */
static int next_part(const char *key, size_t len, size_t *pos, struct vt_str *out)
{
    if (*pos >= len)
        return -1;
    const char *end = memchr(key + *pos, 0, len - *pos);
    if (!end)
        return -1;
    out->ptr = key + *pos;
    out->len = (size_t)(end - out->ptr);
    *pos = (size_t)(end - key) + 1;
    return 0;
}

int vt_series_key_part(const char *key, size_t len, int part, struct vt_str *out)
{
    size_t pos = 0;
    for (int i = 0; i <= part; i++)
        if (next_part(key, len, &pos, out) != 0)
            return -1;
    return part >= 0 && part < 4 ? 0 : -1;
}

static size_t labels_start(const char *key, size_t len)
{
    size_t pos = 0;
    struct vt_str s;
    for (int i = 0; i < 4; i++)
        if (next_part(key, len, &pos, &s) != 0)
            return len;
    return pos;
}

int vt_series_key_next_label(const char *key, size_t len, size_t *pos, struct vt_str *k,
                             struct vt_str *v)
{
    if (*pos == 0)
        *pos = labels_start(key, len);
    size_t p = *pos;
    if (next_part(key, len, &p, k) != 0 || next_part(key, len, &p, v) != 0)
        return 0;
    *pos = p;
    return 1;
}

int vt_series_key_label(const char *key, size_t len, const char *name, struct vt_str *out)
{
    size_t pos = 0, nlen = strlen(name);
    struct vt_str k, v;
    while (vt_series_key_next_label(key, len, &pos, &k, &v))
        if (k.len == nlen && memcmp(k.ptr, name, nlen) == 0) {
            *out = v;
            return 0;
        }
    return -1;
}

static char *dup_str(struct vt_str s)
{
    char *p = malloc(s.len + 1);
    if (p) {
        memcpy(p, s.ptr, s.len);
        p[s.len] = 0;
    }
    return p;
}

int vt_series_key_to_proto(const char *key, size_t len, Vitals__V1__SeriesKey *msg)
{
    vitals__v1__series_key__init(msg);
    struct vt_str parts[4];
    for (int i = 0; i < 4; i++)
        if (vt_series_key_part(key, len, i, &parts[i]) != 0)
            parts[i] = (struct vt_str){"", 0};
    size_t pos = 0, n = 0;
    struct vt_str k, v;
    while (vt_series_key_next_label(key, len, &pos, &k, &v))
        n++;
    msg->service = dup_str(parts[0]);
    msg->model = dup_str(parts[1]);
    msg->provider = dup_str(parts[2]);
    msg->version = dup_str(parts[3]);
    msg->labels = n ? calloc(n, sizeof *msg->labels) : NULL;
    if (!msg->service || !msg->model || !msg->provider || !msg->version || (n && !msg->labels))
        goto nomem;
    pos = 0;
    while (vt_series_key_next_label(key, len, &pos, &k, &v)) {
        Vitals__V1__Label *l = malloc(sizeof *l);
        if (!l)
            goto nomem;
        vitals__v1__label__init(l);
        msg->labels[msg->n_labels++] = l;
        l->key = dup_str(k);
        l->value = dup_str(v);
        if (!l->key || !l->value)
            goto nomem;
    }
    return 0;
nomem:
    vt_series_key_proto_release(msg);
    return -ENOMEM;
}

void vt_series_key_encode(const char *key, size_t len, struct pbw *w)
{
    struct vt_str part, k, v;
    for (int i = 0; i < 4; i++)
        if (vt_series_key_part(key, len, i, &part) == 0)
            pbw_bytes(w, 1 + (uint32_t)i, part.ptr, part.len);
    size_t pos = 0;
    while (vt_series_key_next_label(key, len, &pos, &k, &v)) {
        size_t at = pbw_open(w, 5);
        pbw_bytes(w, 1, k.ptr, k.len);
        pbw_bytes(w, 2, v.ptr, v.len);
        pbw_close(w, at);
    }
}

void vt_series_key_proto_release(Vitals__V1__SeriesKey *msg)
{
    char **strs[] = {&msg->service, &msg->model, &msg->provider, &msg->version};
    for (int i = 0; i < 4; i++) {
        if (*strs[i] != protobuf_c_empty_string)
            free(*strs[i]);
        *strs[i] = NULL;
    }
    for (size_t i = 0; i < msg->n_labels; i++) {
        free(msg->labels[i]->key);
        free(msg->labels[i]->value);
        free(msg->labels[i]);
    }
    free(msg->labels);
    msg->labels = NULL;
    msg->n_labels = 0;
}

/* A string field of a SeriesKey or Label: length-delimited, no NUL byte
 * (NUL separates the parts of a canonical key). */
static bool key_str(const struct pbf *f)
{
    return f->wt == PB_LEN && !memchr(f->ptr, 0, f->len);
}

int vt_series_key_from_wire(const uint8_t *msg, size_t len, char *buf, size_t cap)
{
    /* SeriesKey {service 1, model 2, provider 3, version 4, repeated Label
     * labels 5}; Label {key 1, value 2}. The four parts first (in any
     * order on the wire, the last of a repeated one wins), then the labels
     * in the order sent, which must be strictly sorted by key. */
    struct vt_str parts[4] = {{"", 0}, {"", 0}, {"", 0}, {"", 0}};
    struct pb b = pb_make(msg, len);
    struct pbf f;
    int r;
    while ((r = pb_next(&b, &f)) == 1)
        if (f.num >= 1 && f.num <= 5) {
            if (!key_str(&f) && f.num != 5)
                return -EBADMSG;
            if (f.num <= 4)
                parts[f.num - 1] = (struct vt_str){(const char *)f.ptr, f.len};
        }
    if (r)
        return -EBADMSG;
    size_t n = 0;
    for (int i = 0; i < 4; i++)
        if (put(buf, cap, &n, parts[i].ptr, parts[i].len) != 0)
            return -ENOSPC;
    struct vt_str prev = {NULL, 0};
    b = pb_make(msg, len);
    while (pb_next(&b, &f) == 1) {
        if (f.num != 5)
            continue;
        if (f.wt != PB_LEN)
            return -EBADMSG;
        struct vt_str kv[2] = {{"", 0}, {"", 0}};
        struct pb l = pb_of(&f);
        struct pbf g;
        while ((r = pb_next(&l, &g)) == 1)
            if (g.num == 1 || g.num == 2) {
                if (!key_str(&g))
                    return -EBADMSG;
                kv[g.num - 1] = (struct vt_str){(const char *)g.ptr, g.len};
            }
        if (r || kv[0].len == 0)
            return -EBADMSG;
        if (prev.ptr) { /* sorted and unique */
            int c = memcmp(prev.ptr, kv[0].ptr, prev.len < kv[0].len ? prev.len : kv[0].len);
            if (c > 0 || (c == 0 && prev.len >= kv[0].len))
                return -EBADMSG;
        }
        prev = kv[0];
        if (put(buf, cap, &n, kv[0].ptr, kv[0].len) != 0 ||
            put(buf, cap, &n, kv[1].ptr, kv[1].len) != 0)
            return -ENOSPC;
    }
    return (int)n;
}

/* --- table ---------------------------------------------------------------- */

int vt_series_table_init(struct vt_series_table *t, uint32_t max_size)
{
    t->cap = 64;
    t->size = 0;
    t->max_size = max_size;
    t->slots = calloc(t->cap, sizeof *t->slots);
    return t->slots ? 0 : -ENOMEM;
}

static struct vt_series_entry *probe(struct vt_series_entry *slots, uint32_t cap,
                                     const char *key, size_t len, uint64_t hash)
{
    for (uint32_t i = (uint32_t)hash & (cap - 1);; i = (i + 1) & (cap - 1)) {
        struct vt_series_entry *e = &slots[i];
        if (!e->key || (e->hash == hash && e->len == len && memcmp(e->key, key, len) == 0))
            return e;
    }
}

struct vt_series_entry *vt_series_table_find(struct vt_series_table *t, const char *key,
                                             size_t len, uint64_t hash)
{
    struct vt_series_entry *e = probe(t->slots, t->cap, key, len, hash);
    return e->key ? e : NULL;
}

static int grow(struct vt_series_table *t)
{
    uint32_t cap = t->cap * 2;
    struct vt_series_entry *slots = calloc(cap, sizeof *slots);
    if (!slots)
        return -ENOMEM;
    for (uint32_t i = 0; i < t->cap; i++)
        if (t->slots[i].key)
            *probe(slots, cap, t->slots[i].key, t->slots[i].len, t->slots[i].hash) = t->slots[i];
    free(t->slots);
    t->slots = slots;
    t->cap = cap;
    return 0;
}

struct vt_series_entry *vt_series_table_upsert(struct vt_series_table *t, const char *key,
                                               size_t len, uint64_t hash, int *created)
{
    *created = 0;
    struct vt_series_entry *e = probe(t->slots, t->cap, key, len, hash);
    if (e->key)
        return e;
    if (t->max_size && t->size >= t->max_size) {
        errno = ENOSPC;
        return NULL;
    }
    if ((t->size + 1) * 4 > t->cap * 3) {
        if (grow(t) != 0) {
            errno = ENOMEM;
            return NULL;
        }
        e = probe(t->slots, t->cap, key, len, hash);
    }
    char *copy = malloc(len ? len : 1);
    if (!copy) {
        errno = ENOMEM;
        return NULL;
    }
    memcpy(copy, key, len);
    *e = (struct vt_series_entry){copy, (uint32_t)len, hash, NULL};
    t->size++;
    *created = 1;
    assert(t->size * 4 <= t->cap * 3);
    return e;
}

struct vt_series_entry *vt_series_table_next(struct vt_series_table *t, uint32_t *i)
{
    for (; *i < t->cap; (*i)++)
        if (t->slots[*i].key)
            return &t->slots[(*i)++];
    return NULL;
}

void vt_series_table_clear(struct vt_series_table *t)
{
    for (uint32_t i = 0; i < t->cap; i++) {
        free(t->slots[i].key);
        t->slots[i] = (struct vt_series_entry){0};
    }
    t->size = 0;
}

void vt_series_table_free(struct vt_series_table *t)
{
    if (!t->slots)
        return;
    vt_series_table_clear(t);
    free(t->slots);
    t->slots = NULL;
    t->cap = 0;
}
