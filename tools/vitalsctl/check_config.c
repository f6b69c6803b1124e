/*
 * check_config.c - `vitalsctl check-config FILE`: the scorer's own score-file
 * validator, run offline.
 *
 * Why the #include of a .c file: the validator lives in scorer/ (it is the
 * scorer's contract with its operators) and programs under tools/ link only
 * lib/. Compiling the very same source here, rather than copying it, means
 * vitalsctl can never accept a file the scorer would refuse, or the reverse.
 */
#include "../../scorer/score_config.c"

#include "vitalsctl.h"

static const char *stat_desc(const struct vt_score_component_def *c, char *buf, size_t cap)
{
    if (c->field)
        snprintf(buf, cap, "%s(%s)", c->stat_text, c->field);
    else if (c->metric)
        snprintf(buf, cap, "%s(%s)", c->stat_text, c->metric);
    else
        snprintf(buf, cap, "%s", c->stat_text);
    return buf;
}

int ctl_check_config(const char *path, FILE *out, FILE *errout)
{
    static char err[65536];
    struct vt_score_config cfg;
    int rc = vt_score_config_load_file(path, &cfg, err, sizeof err);
    if (rc == -EINVAL) {
        fprintf(errout, "%s: invalid score file\n%s\n", path, err);
        return CTL_EXIT_NO;
    }
    if (rc != 0) {
        fprintf(errout, "%s: %s\n", path, err[0] ? err : strerror(-rc));
        return CTL_EXIT_CANNOT;
    }
    fprintf(out, "%s: ok: %u score%s, version %s\n", path, cfg.n_scores,
            cfg.n_scores == 1 ? "" : "s", cfg.version);
    for (uint32_t i = 0; i < cfg.n_scores; i++) {
        const struct vt_score_def *d = &cfg.scores[i];
        double total = 0;
        for (uint32_t c = 0; c < d->n_components; c++)
            total += d->components[c].weight;
        fprintf(out, "  %s: service %s, window %s, %s, %s, warning < %.2f, critical < %.2f",
                d->name, d->selector.service, d->window_text, vt_combine_name(d->combine),
                vt_score_mode_name(d->mode), d->warning, d->critical);
        if (d->n_segment_by) {
            fprintf(out, ", segments by ");
            for (uint32_t s = 0; s < d->n_segment_by; s++)
                fprintf(out, "%s%s", s ? "," : "", d->segment_by[s].name);
        }
        fputc('\n', out);
        for (uint32_t c = 0; c < d->n_components; c++) {
            const struct vt_score_component_def *cd = &d->components[c];
            char sd[300];
            fprintf(out, "    %-16s %-32s weight %5.1f%%  good %-10g bad %g\n", cd->name,
                    stat_desc(cd, sd, sizeof sd), total > 0 ? 100 * cd->weight / total : 0,
                    cd->good, cd->bad);
        }
    }
    vt_score_config_free(&cfg);
    return CTL_EXIT_OK;
}
