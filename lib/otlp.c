/* otlp.c - OTLP trace requests -> vitals records (see otlp.h). Work in progress. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "otlp.h"

struct vt_otlp_decoder {
    int unused;
};

struct vt_otlp_decoder *vt_otlp_decoder_new(const struct vt_record_limits *limits,
                                            const char *default_service, const char *labels,
                                            const char *metrics, char *err, size_t errsz)
{
    (void)limits; (void)default_service; (void)labels; (void)metrics; (void)err; (void)errsz;
    return calloc(1, sizeof(struct vt_otlp_decoder));
}

void vt_otlp_decoder_free(struct vt_otlp_decoder *dec) { free(dec); }

int vt_otlp_decode_proto(struct vt_otlp_decoder *dec, const uint8_t *buf, size_t len,
                         int64_t now_ms, vt_otlp_sink_cb sink, void *data,
                         struct vt_otlp_result *res)
{
    (void)dec; (void)buf; (void)len; (void)now_ms; (void)sink; (void)data;
    memset(res, 0, sizeof *res);
    return -ENOSYS;
}

int vt_otlp_decode_json(struct vt_otlp_decoder *dec, const char *buf, size_t len,
                        int64_t now_ms, vt_otlp_sink_cb sink, void *data,
                        struct vt_otlp_result *res)
{
    (void)dec; (void)buf; (void)len; (void)now_ms; (void)sink; (void)data;
    memset(res, 0, sizeof *res);
    return -ENOSYS;
}

int vt_otlp_response_proto(const struct vt_otlp_result *res, uint8_t *buf, size_t cap)
{ (void)res; (void)buf; (void)cap; return -ENOSYS; }
int vt_otlp_response_json(const struct vt_otlp_result *res, char *buf, size_t cap)
{ (void)res; (void)buf; (void)cap; return -ENOSYS; }
int vt_otlp_status_proto(int code, const char *message, uint8_t *buf, size_t cap)
{ (void)code; (void)message; (void)buf; (void)cap; return -ENOSYS; }
int vt_otlp_status_json(int code, const char *message, char *buf, size_t cap)
{ (void)code; (void)message; (void)buf; (void)cap; return -ENOSYS; }
