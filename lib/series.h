/*
 * series.h - series keys and the table that maps them to per-series state.
 *
 * A series is (service, model, provider, version, labels): every record with
 * the same key aggregates together, in the agent (per window) and in the
 * scorer (per rollup). The key travels as canonical bytes so that equality is
 * memcmp and hashing is one pass:
 *
 *   service \0 model \0 provider \0 version \0 (label_key \0 label_value \0)*
 *
 * Labels are in bytewise key order (the record decoder already sorts them)
 * and no part may contain a NUL (the decoder rejects \u0000), so the encoding
 * is unambiguous. The special series "__overflow__" (service "__overflow__",
 * everything else empty) takes the records of new series once a table is full.
 *
 * The table is open addressing with linear probing over a power-of-two array
 * and never shrinks; it owns copies of the keys and stores one caller value
 * pointer per key. Not thread-safe.
 */
#ifndef VT_SERIES_H
#define VT_SERIES_H

#include <stddef.h>
#include <stdint.h>

#include "record.h"
#include "vitals/v1/vitals.pb-c.h"

#define VT_SERIES_KEY_MAX 16384 /* bytes; a key longer than this is truncated to overflow */
#define VT_SERIES_OVERFLOW "__overflow__"

/* Encode rec's series key into buf. Returns the length, or 0 if it would not
 * fit in cap. */
size_t vt_series_key_from_record(const struct vt_record *rec, char *buf, size_t cap);

/* The key of the overflow series (static storage). */
const char *vt_series_overflow_key(size_t *len);

/* 64-bit hash of key bytes (stable across runs and machines). */
uint64_t vt_series_hash(const char *key, size_t len);

/* Parts of a key. vt_series_key_part: part 0..3 = service, model, provider,
 * version. vt_series_key_label: the value of label `name`. Both set *out to
 * point into key and return 0, or -1 if absent (an empty part is present). */
int vt_series_key_part(const char *key, size_t len, int part, struct vt_str *out);
int vt_series_key_label(const char *key, size_t len, const char *name, struct vt_str *out);

/* Iterate labels: *pos starts at 0; returns 1 with *k, *v set, 0 at the end. */
int vt_series_key_next_label(const char *key, size_t len, size_t *pos, struct vt_str *k,
                             struct vt_str *v);

/* Fill msg (overwritten) with views into key: the strings are malloc'ed
 * copies, released by vt_series_key_proto_release(msg). Returns 0 or -ENOMEM. */
int vt_series_key_to_proto(const char *key, size_t len, Vitals__V1__SeriesKey *msg);

/* Append the SeriesKey message fields of key to w (pb_write.h): the bytes
 * protobuf-c packs from vt_series_key_to_proto, without the copies. */
struct pbw;
void vt_series_key_encode(const char *key, size_t len, struct pbw *w);
void vt_series_key_proto_release(Vitals__V1__SeriesKey *msg);

/* Canonical key from a received, serialized vitals.v1.SeriesKey, read in
 * place: validates (well-formed, no NUL bytes, non-empty label keys sorted
 * strictly, total <= cap). Returns the length, or -EBADMSG / -ENOSPC. */
int vt_series_key_from_wire(const uint8_t *msg, size_t len, char *buf, size_t cap);

/* --- table ---------------------------------------------------------------- */

struct vt_series_entry {
    char *key;      /* owned by the table */
    uint32_t len;
    uint64_t hash;
    void *value;    /* the caller's */
};

struct vt_series_table {
    struct vt_series_entry *slots; /* cap slots; key == NULL means empty */
    uint32_t cap;                  /* power of two */
    uint32_t size;
    uint32_t max_size;             /* entries allowed; 0 = unbounded */
};

/* Returns 0 or -ENOMEM. max_size 0 = unbounded. */
int vt_series_table_init(struct vt_series_table *t, uint32_t max_size);

/* Find key; NULL if absent. */
struct vt_series_entry *vt_series_table_find(struct vt_series_table *t, const char *key,
                                             size_t len, uint64_t hash);

/* A hint, no effect: start fetching the slot where `hash` is looked up (a
 * caller with several lookups to do fetches all their slots first). */
static inline void vt_series_table_prefetch(const struct vt_series_table *t, uint64_t hash)
{
    __builtin_prefetch(&t->slots[(uint32_t)hash & (t->cap - 1)]);
}

/* Find or insert key (value NULL when new; *created = 1). Returns NULL if the
 * table is full (size == max_size) and the key is new, or on -ENOMEM (errno
 * says which: ENOSPC or ENOMEM). Entry pointers are invalidated by inserts. */
struct vt_series_entry *vt_series_table_upsert(struct vt_series_table *t, const char *key,
                                               size_t len, uint64_t hash, int *created);

/* Iterate: *i starts at 0; returns the next entry or NULL. */
struct vt_series_entry *vt_series_table_next(struct vt_series_table *t, uint32_t *i);

/* Remove every entry (keys freed; values are the caller's to free first). */
void vt_series_table_clear(struct vt_series_table *t);
void vt_series_table_free(struct vt_series_table *t);

#endif
