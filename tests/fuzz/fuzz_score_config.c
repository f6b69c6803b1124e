/*
 * fuzz_score_config.c - the score file parser/validator on arbitrary bytes.
 *
 * The score file is operator input reloaded at run time (SIGHUP): whatever
 * it holds, loading must return 0 or -EINVAL with a NUL-terminated message,
 * never crash, leak or read out of bounds. A config that loads must also be
 * usable: it is handed to an engine and evaluated once over an empty source.
 */
#include <stdint.h>
#include <string.h>

#include "../../scorer/score_config.c"
#include "../../scorer/score.c"
#include "../../scorer/score_acc.c"
#include "../../scorer/score_json.c"
#include "../../scorer/stats.c"

static int empty_each(void *ctx, int64_t from, int64_t to, const struct vt_agg_reads *reads,
                      vt_score_visit_fn fn, void *arg)
{
    (void)ctx, (void)from, (void)to, (void)reads, (void)fn, (void)arg;
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct vt_score_config cfg;
    char err[1024];
    int rc = vt_score_config_load_buffer((const char *)data, size, &cfg, err, sizeof err);
    if (rc != 0 && rc != -EINVAL && rc != -ENOMEM)
        __builtin_trap();
    if (strlen(err) >= sizeof err)
        __builtin_trap();
    if (rc == 0) {
        struct vt_score_engine *e = vt_score_engine_new(&cfg);
        if (e) {
            struct vt_score_source src = {.ctx = NULL, .each = empty_each};
            vt_score_engine_evaluate(e, &src, 1764288000000LL);
            for (uint32_t i = 0; i < vt_score_engine_count(e); i++) {
                json_t *j = vt_score_result_to_json(vt_score_engine_result(e, i),
                                                    VT_SCORE_JSON_SEGMENTS);
                json_decref(j);
            }
            vt_score_engine_free(e);
        }
    }
    vt_score_config_free(&cfg);
    return 0;
}
