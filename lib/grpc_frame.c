/*
 * grpc_frame.c - length-prefixed gRPC messages, their compression, and the
 * small header encodings (grpc-timeout, grpc-message, status names).
 *
 * Everything here parses bytes an untrusted peer chose, so every size is
 * checked against the reader's `max` before memory is committed to it, and
 * decompression never produces more than max + 1 bytes however small the
 * compressed input (a gzip or zstd "bomb" costs one bounded buffer).
 */
#include "grpc_frame.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zstd_errors.h>

/* ---------------------------------------------------------------- status */

static const char *const status_names[] = {
    "OK",                 "CANCELLED",         "UNKNOWN",
    "INVALID_ARGUMENT",   "DEADLINE_EXCEEDED", "NOT_FOUND",
    "ALREADY_EXISTS",     "PERMISSION_DENIED", "RESOURCE_EXHAUSTED",
    "FAILED_PRECONDITION", "ABORTED",          "OUT_OF_RANGE",
    "UNIMPLEMENTED",      "INTERNAL",          "UNAVAILABLE",
    "DATA_LOSS",          "UNAUTHENTICATED",
};

const char *vt_grpc_status_name(int code)
{
    if (code < 0 || code > VT_GRPC_UNAUTHENTICATED)
        return "UNKNOWN_CODE";
    return status_names[code];
}

bool vt_grpc_status_retryable(int code)
{
    switch (code) {
    case VT_GRPC_CANCELLED:
    case VT_GRPC_DEADLINE_EXCEEDED:
    case VT_GRPC_ABORTED:
    case VT_GRPC_OUT_OF_RANGE:
    case VT_GRPC_UNAVAILABLE:
    case VT_GRPC_DATA_LOSS:
        return true;
    default:
        return false;
    }
}

int vt_grpc_status_from_http(int http_status)
{
    switch (http_status) {
    case 400: return VT_GRPC_INTERNAL;
    case 401: return VT_GRPC_UNAUTHENTICATED;
    case 403: return VT_GRPC_PERMISSION_DENIED;
    case 404: return VT_GRPC_UNIMPLEMENTED;
    case 429:
    case 502:
    case 503:
    case 504: return VT_GRPC_UNAVAILABLE;
    default: return VT_GRPC_UNKNOWN;
    }
}

/* ---------------------------------------------------------------- codec */

void vt_grpc_codec_free(struct vt_grpc_codec *codec)
{
    ZSTD_freeCCtx(codec->zc);
    ZSTD_freeDCtx(codec->zd);
    if (codec->inflate_ready)
        inflateEnd(&codec->inflate);
    if (codec->deflate_level)
        deflateEnd(&codec->deflate);
    memset(codec, 0, sizeof(*codec));
}

int vt_grpc_encoding_parse(const char *s, size_t len)
{
    if (len == 8 && memcmp(s, "identity", 8) == 0)
        return VT_GRPC_ENC_IDENTITY;
    if (len == 4 && memcmp(s, "gzip", 4) == 0)
        return VT_GRPC_ENC_GZIP;
    if (len == 4 && memcmp(s, "zstd", 4) == 0)
        return VT_GRPC_ENC_ZSTD;
    return -1;
}

const char *vt_grpc_encoding_name(enum vt_grpc_encoding enc)
{
    switch (enc) {
    case VT_GRPC_ENC_GZIP: return "gzip";
    case VT_GRPC_ENC_ZSTD: return "zstd";
    default: return "identity";
    }
}

static void put_prefix(uint8_t *p, int compressed, size_t len)
{
    p[0] = compressed ? 1 : 0;
    p[1] = (uint8_t)(len >> 24);
    p[2] = (uint8_t)(len >> 16);
    p[3] = (uint8_t)(len >> 8);
    p[4] = (uint8_t)len;
}

static int gzip_encode(struct vt_grpc_codec *c, int level, const void *msg,
                       size_t len, uint8_t **out, size_t *out_len)
{
    if (level <= 0 || level > 9)
        level = Z_DEFAULT_COMPRESSION;
    if (c->deflate_level && c->deflate_level != level + 100) {
        deflateEnd(&c->deflate);
        c->deflate_level = 0;
    }
    if (!c->deflate_level) {
        memset(&c->deflate, 0, sizeof(c->deflate));
        /* windowBits 15 + 16: a gzip wrapper, which is what "gzip" means. */
        if (deflateInit2(&c->deflate, level, Z_DEFLATED, 15 + 16, 8,
                         Z_DEFAULT_STRATEGY) != Z_OK)
            return UV_ENOMEM;
        c->deflate_level = level + 100; /* +100: level -1 must not read as 0 */
    } else {
        deflateReset(&c->deflate);
    }
    size_t bound = deflateBound(&c->deflate, (uLong)len);
    uint8_t *buf = malloc(VT_GRPC_PREFIX + bound);
    if (!buf)
        return UV_ENOMEM;
    c->deflate.next_in = (Bytef *)(uintptr_t)msg;
    c->deflate.avail_in = (uInt)len;
    c->deflate.next_out = buf + VT_GRPC_PREFIX;
    c->deflate.avail_out = (uInt)bound;
    int rc = deflate(&c->deflate, Z_FINISH);
    if (rc != Z_STREAM_END) {
        free(buf);
        return UV_ENOMEM;
    }
    size_t clen = bound - c->deflate.avail_out;
    put_prefix(buf, 1, clen);
    *out = buf;
    *out_len = VT_GRPC_PREFIX + clen;
    return 0;
}

int vt_grpc_frame_encode(struct vt_grpc_codec *codec, enum vt_grpc_encoding enc,
                         int level, const void *msg, size_t len, uint8_t **out,
                         size_t *out_len)
{
    if (len > UINT32_MAX || (len && !msg))
        return UV_EINVAL;
    if (!msg)
        msg = "";
    if (enc == VT_GRPC_ENC_GZIP) {
        if (len > UINT32_MAX / 2) /* zlib's uInt avail_in */
            return UV_EINVAL;
        return gzip_encode(codec, level, msg, len, out, out_len);
    }
    if (enc == VT_GRPC_ENC_ZSTD) {
        if (!codec->zc && !(codec->zc = ZSTD_createCCtx()))
            return UV_ENOMEM;
        size_t bound = ZSTD_compressBound(len);
        uint8_t *buf = malloc(VT_GRPC_PREFIX + bound);
        if (!buf)
            return UV_ENOMEM;
        size_t n = ZSTD_compressCCtx(codec->zc, buf + VT_GRPC_PREFIX, bound,
                                     msg, len, level ? level : 3);
        if (ZSTD_isError(n) || n > UINT32_MAX) {
            free(buf);
            return UV_ENOMEM;
        }
        put_prefix(buf, 1, n);
        *out = buf;
        *out_len = VT_GRPC_PREFIX + n;
        return 0;
    }
    uint8_t *buf = malloc(VT_GRPC_PREFIX + len);
    if (!buf)
        return UV_ENOMEM;
    put_prefix(buf, 0, len);
    memcpy(buf + VT_GRPC_PREFIX, msg, len);
    *out = buf;
    *out_len = VT_GRPC_PREFIX + len;
    return 0;
}

/* ---------------------------------------------------------------- reader */

void vt_grpc_reader_init(struct vt_grpc_reader *r, size_t max)
{
    memset(r, 0, sizeof(*r));
    r->max = max ? max : VT_GRPC_DEFAULT_MAX_MESSAGE;
    if (r->max > UINT32_MAX)
        r->max = UINT32_MAX; /* the prefix cannot announce more anyway */
}

void vt_grpc_reader_free(struct vt_grpc_reader *r)
{
    free(r->buf);
    free(r->out);
    r->buf = r->out = NULL;
    r->len = r->cap = r->out_len = 0;
}

void vt_grpc_reader_give(struct vt_grpc_reader *r, uint8_t *buf, size_t cap)
{
    assert(!r->buf && !r->len);
    r->buf = buf;
    r->cap = cap;
}

uint8_t *vt_grpc_reader_take(struct vt_grpc_reader *r, size_t *cap)
{
    uint8_t *b = r->buf;
    *cap = r->cap;
    r->buf = NULL;
    r->len = r->cap = 0;
    return b;
}

static int fail(struct vt_grpc_reader *r, int status, const char *why)
{
    if (!r->status) {
        r->status = status;
        r->why = why;
    }
    return r->status;
}

static size_t announced(const struct vt_grpc_reader *r)
{
    assert(r->len >= VT_GRPC_PREFIX);
    return ((size_t)r->buf[1] << 24) | ((size_t)r->buf[2] << 16) |
           ((size_t)r->buf[3] << 8) | r->buf[4];
}

int vt_grpc_reader_feed(struct vt_grpc_reader *r, const uint8_t *data,
                        size_t len)
{
    if (r->status)
        return r->status;
    while (len) {
        /* Until the prefix is in, take just enough for it; afterwards we know
         * the whole size and allocate it once (it is ≤ max). */
        size_t want;
        if (r->len < VT_GRPC_PREFIX) {
            want = VT_GRPC_PREFIX - r->len;
        } else {
            size_t total = VT_GRPC_PREFIX + announced(r);
            if (r->len == total)
                return fail(r, VT_GRPC_INTERNAL,
                            "more than one message in a unary call");
            want = total - r->len;
        }
        if (want > len)
            want = len;
        size_t need = r->len + want;
        if (need > r->cap) {
            size_t cap = VT_GRPC_PREFIX;
            if (r->len >= VT_GRPC_PREFIX)
                cap = VT_GRPC_PREFIX + announced(r);
            assert(cap >= need);
            uint8_t *nb = realloc(r->buf, cap);
            if (!nb)
                return fail(r, VT_GRPC_RESOURCE_EXHAUSTED, "out of memory");
            r->buf = nb;
            r->cap = cap;
        }
        memcpy(r->buf + r->len, data, want);
        r->len += want;
        data += want;
        len -= want;
        if (r->len == VT_GRPC_PREFIX) {
            if (r->buf[0] > 1)
                return fail(r, VT_GRPC_INTERNAL, "bad compressed-flag byte");
            if (announced(r) > r->max)
                return fail(r, VT_GRPC_RESOURCE_EXHAUSTED,
                            "message larger than max");
        }
    }
    return 0;
}

/* Grow the output buffer, never past max + 1 (one byte over proves the bomb). */
static int out_grow(struct vt_grpc_reader *r, size_t *cap)
{
    size_t limit = r->max + 1;
    if (*cap >= limit)
        return -1;
    size_t n = *cap ? *cap * 2 : 64 * 1024;
    if (n > limit)
        n = limit;
    uint8_t *nb = realloc(r->out, n ? n : 1);
    if (!nb)
        return -1;
    r->out = nb;
    *cap = n;
    return 0;
}

static int inflate_gzip(struct vt_grpc_reader *r, struct vt_grpc_codec *c,
                        const uint8_t *in, size_t len)
{
    if (!c->inflate_ready) {
        memset(&c->inflate, 0, sizeof(c->inflate));
        /* 15 + 32: accept gzip or zlib wrappers (peers mislabel them). */
        if (inflateInit2(&c->inflate, 15 + 32) != Z_OK)
            return fail(r, VT_GRPC_RESOURCE_EXHAUSTED, "out of memory");
        c->inflate_ready = 1;
    } else {
        inflateReset(&c->inflate);
    }
    size_t cap = 0;
    if (out_grow(r, &cap))
        return fail(r, VT_GRPC_RESOURCE_EXHAUSTED, "out of memory");
    z_stream *z = &c->inflate;
    z->next_in = (Bytef *)(uintptr_t)in;
    z->avail_in = (uInt)len;
    size_t produced = 0;
    for (;;) {
        z->next_out = r->out + produced;
        z->avail_out = (uInt)(cap - produced);
        int rc = inflate(z, Z_NO_FLUSH);
        produced = cap - z->avail_out;
        if (produced > r->max)
            return fail(r, VT_GRPC_RESOURCE_EXHAUSTED,
                        "decompressed message larger than max");
        if (rc == Z_STREAM_END) {
            if (z->avail_in)
                return fail(r, VT_GRPC_INTERNAL, "trailing bytes after gzip");
            break;
        }
        if (rc == Z_BUF_ERROR && z->avail_out) /* no progress possible */
            return fail(r, VT_GRPC_INTERNAL, "truncated gzip data");
        if (rc != Z_OK && rc != Z_BUF_ERROR)
            return fail(r, VT_GRPC_INTERNAL, "corrupt gzip data");
        if (z->avail_out == 0 && out_grow(r, &cap))
            return fail(r, VT_GRPC_RESOURCE_EXHAUSTED,
                        "decompressed message larger than max");
    }
    r->out_len = produced;
    return 0;
}

static int inflate_zstd(struct vt_grpc_reader *r, struct vt_grpc_codec *c,
                        const uint8_t *in, size_t len)
{
    if (!c->zd && !(c->zd = ZSTD_createDCtx()))
        return fail(r, VT_GRPC_RESOURCE_EXHAUSTED, "out of memory");
    ZSTD_DCtx_reset(c->zd, ZSTD_reset_session_only);
    /* Cap the window so a hostile frame header cannot demand a huge one. */
    ZSTD_DCtx_setParameter(c->zd, ZSTD_d_windowLogMax, 27);
    unsigned long long fcs = ZSTD_getFrameContentSize(in, len);
    if (fcs != ZSTD_CONTENTSIZE_ERROR && fcs != ZSTD_CONTENTSIZE_UNKNOWN &&
        fcs > r->max)
        return fail(r, VT_GRPC_RESOURCE_EXHAUSTED,
                    "decompressed message larger than max");
    size_t cap = 0;
    if (fcs != ZSTD_CONTENTSIZE_ERROR && fcs != ZSTD_CONTENTSIZE_UNKNOWN && fcs > 0 &&
        fcs <= 256 * 1024) {
        /* the usual case (a frame that states a modest size): one buffer of
         * exactly that size, not a 64 KiB guess grown by doubling; larger
         * claims are not trusted up front (a tiny hostile frame must not
         * reserve megabytes) and grow with the output as before */
        uint8_t *nb = realloc(r->out, (size_t)fcs);
        if (!nb)
            return fail(r, VT_GRPC_RESOURCE_EXHAUSTED, "out of memory");
        r->out = nb;
        cap = (size_t)fcs;
        /* one shot, straight into the buffer (the streaming API would go
         * through its window buffer); more than one frame, or a frame that
         * lies about its size, falls back to streaming below */
        size_t n = ZSTD_decompressDCtx(c->zd, r->out, cap, in, len);
        if (!ZSTD_isError(n)) {
            r->out_len = n;
            return 0;
        }
        if (ZSTD_getErrorCode(n) != ZSTD_error_dstSize_tooSmall)
            return fail(r, VT_GRPC_INTERNAL, "corrupt zstd data");
        ZSTD_DCtx_reset(c->zd, ZSTD_reset_session_only);
    } else if (out_grow(r, &cap)) {
        return fail(r, VT_GRPC_RESOURCE_EXHAUSTED, "out of memory");
    }
    ZSTD_inBuffer ib = {in, len, 0};
    size_t last = 1;
    for (;;) {
        ZSTD_outBuffer ob = {r->out, cap, r->out_len};
        last = ZSTD_decompressStream(c->zd, &ob, &ib);
        r->out_len = ob.pos;
        if (ZSTD_isError(last))
            return fail(r, VT_GRPC_INTERNAL, "corrupt zstd data");
        if (r->out_len > r->max)
            return fail(r, VT_GRPC_RESOURCE_EXHAUSTED,
                        "decompressed message larger than max");
        if (ib.pos == ib.size && last == 0)
            break; /* all input used, every frame complete and flushed */
        if (ob.pos < ob.size) {
            if (ib.pos == ib.size)
                return fail(r, VT_GRPC_INTERNAL, "truncated zstd data");
            continue;
        }
        if (out_grow(r, &cap))
            return fail(r, VT_GRPC_RESOURCE_EXHAUSTED,
                        "decompressed message larger than max");
    }
    return 0;
}

int vt_grpc_reader_finish(struct vt_grpc_reader *r, struct vt_grpc_codec *codec,
                          enum vt_grpc_encoding enc, const uint8_t **msg,
                          size_t *len)
{
    if (r->status)
        return r->status;
    if (r->len < VT_GRPC_PREFIX)
        return fail(r, VT_GRPC_INTERNAL,
                    r->len ? "truncated message prefix" : "no request message");
    size_t n = announced(r);
    if (r->len != VT_GRPC_PREFIX + n)
        return fail(r, VT_GRPC_INTERNAL, "truncated message");
    const uint8_t *body = r->buf + VT_GRPC_PREFIX;
    if (r->buf[0] == 0) {
        *msg = n ? body : (const uint8_t *)"";
        *len = n;
        return 0;
    }
    int rc;
    r->out_len = 0;
    switch (enc) {
    case VT_GRPC_ENC_GZIP: rc = inflate_gzip(r, codec, body, n); break;
    case VT_GRPC_ENC_ZSTD: rc = inflate_zstd(r, codec, body, n); break;
    default:
        return fail(r, VT_GRPC_INTERNAL,
                    "compressed flag set without grpc-encoding");
    }
    if (rc)
        return rc;
    *msg = r->out;
    *len = r->out_len;
    return 0;
}

/* ---------------------------------------------------------------- headers */

int vt_grpc_timeout_parse(const char *s, size_t len, uint64_t *ms)
{
    if (len < 2 || len > 9)
        return -1;
    uint64_t v = 0;
    for (size_t i = 0; i + 1 < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (uint64_t)(s[i] - '0');
    }
    /* 8 digits at most, so none of these products overflow 64 bits. */
    switch (s[len - 1]) {
    case 'H': v *= 3600000; break;
    case 'M': v *= 60000; break;
    case 'S': v *= 1000; break;
    case 'm': break;
    case 'u': v = (v + 999) / 1000; break;
    case 'n': v = (v + 999999) / 1000000; break;
    default: return -1;
    }
    *ms = v ? v : 1; /* "0m" is an already expired deadline, not "none" */
    return 0;
}

size_t vt_grpc_timeout_format(uint64_t ms, char *buf)
{
    static const struct { char unit; uint64_t div; } u[] = {
        {'m', 1}, {'S', 1000}, {'M', 60000}, {'H', 3600000}};
    if (ms == 0)
        ms = 1;
    for (size_t i = 0; i < 4; i++) {
        uint64_t v = (ms + u[i].div - 1) / u[i].div;
        if (v <= 99999999 || i == 3) {
            if (v > 99999999)
                v = 99999999; /* ~11,000 years: clamp */
            int n = snprintf(buf, 16, "%llu%c", (unsigned long long)v,
                             u[i].unit);
            return (size_t)n;
        }
    }
    return 0;
}

char *vt_grpc_message_encode(const char *msg)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t n = strlen(msg);
    char *out = malloc(n * 3 + 1);
    if (!out)
        return NULL;
    char *p = out;
    for (const unsigned char *s = (const unsigned char *)msg; *s; s++) {
        if (*s < 0x20 || *s > 0x7e || *s == '%') {
            *p++ = '%';
            *p++ = hex[*s >> 4];
            *p++ = hex[*s & 15];
        } else {
            *p++ = (char)*s;
        }
    }
    *p = 0;
    return out;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

char *vt_grpc_message_decode(char *s)
{
    char *w = s;
    for (const char *r = s; *r;) {
        int hi, lo;
        if (r[0] == '%' && (hi = hexval(r[1])) >= 0 && (lo = hexval(r[2])) >= 0) {
            *w++ = (char)(hi * 16 + lo);
            r += 3;
        } else {
            *w++ = *r++;
        }
    }
    *w = 0;
    return s;
}
