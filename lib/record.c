/*
 * record.c - NDJSON record decoder (stub; the scanner lands next).
 */
#include "record.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

struct vt_record_decoder {
    struct vt_record_limits limits;
};

const char *vt_record_field_name(int field) { (void)field; return NULL; }
const char *vt_record_reject_name(int reason) { (void)reason; return "unknown"; }

void vt_record_limits_default(struct vt_record_limits *l)
{
    *l = (struct vt_record_limits){65536, 32, 64, 256, 64, 128, 4096, 256, 32};
}

struct vt_record_decoder *vt_record_decoder_new(const struct vt_record_limits *limits,
                                                const char *default_service)
{
    (void)default_service;
    struct vt_record_decoder *d = calloc(1, sizeof *d);
    if (!d) return NULL;
    if (limits) d->limits = *limits; else vt_record_limits_default(&d->limits);
    return d;
}

void vt_record_decoder_free(struct vt_record_decoder *dec) { free(dec); }

const struct vt_record_limits *vt_record_decoder_limits(const struct vt_record_decoder *dec)
{
    return &dec->limits;
}

enum vt_record_kind vt_record_decode(struct vt_record_decoder *dec, const char *line, size_t len,
                                     int64_t now_ms, struct vt_record *rec)
{
    (void)dec; (void)line; (void)len;
    memset(rec, 0, sizeof *rec);
    rec->arrival_ms = now_ms;
    rec->reject = VT_REJECT_PARSE_ERROR;
    return VT_RECORD_REJECTED;
}

int vt_record_format_json(const struct vt_record *rec, char *buf, size_t cap)
{
    (void)rec; (void)buf; (void)cap;
    return -ENOSPC;
}
