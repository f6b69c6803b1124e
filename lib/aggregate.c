/*
 * aggregate.c - see aggregate.h.
 *
 * Invariants kept here: metrics[] is sorted by name with unique names;
 * errors_by_type[] has unique names; at most 2 exemplars are "failed" ones
 * and failed exemplars win over slow ones, because a failed call is the
 * first thing an operator wants to open.
 */
#include "aggregate.h"
#include "pb_wire.h"
#include "pb_write.h"

#include <assert.h>
#include <errno.h>
#include <stdbool.h>
#include <math.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

#define MAX_FAILED_EXEMPLARS 2

static vt_sketch *fixed_sketch(struct vt_aggregate *a, int i)
{
    vt_sketch *s[] = {&a->latency_ms, &a->ttft_ms, &a->input_tokens, &a->output_tokens,
                      &a->cost_usd};
    return s[i];
}
static const char *const fixed_names[] = {"latency_ms", "ttft_ms", "input_tokens",
                                          "output_tokens", "cost_usd"};
#define N_FIXED 5

void vt_aggregate_init(struct vt_aggregate *a)
{
    memset(a, 0, sizeof *a);
    for (int i = 0; i < N_FIXED; i++)
        vt_sketch_init_default(fixed_sketch(a, i));
}

void vt_aggregate_free(struct vt_aggregate *a)
{
    for (int i = 0; i < N_FIXED; i++)
        vt_sketch_free(fixed_sketch(a, i));
    for (uint32_t i = 0; i < a->n_metrics; i++)
        vt_sketch_free(&a->metrics[i].sketch);
    free(a->metrics);
    free(a->embedding_sum);
    free(a->errors_by_type);
    vt_aggregate_init(a);
}

void vt_aggregate_reset(struct vt_aggregate *a)
{
    struct vt_aggregate keep = *a;
    for (int i = 0; i < N_FIXED; i++)
        vt_sketch_reset(fixed_sketch(&keep, i));
    /* Metric sketches are freed: the next window may carry other names. */
    for (uint32_t i = 0; i < keep.n_metrics; i++)
        vt_sketch_free(&keep.metrics[i].sketch);
    memset(a, 0, sizeof *a);
    for (int i = 0; i < N_FIXED; i++)
        *fixed_sketch(a, i) = *fixed_sketch(&keep, i);
    a->metrics = keep.metrics;
    a->cap_metrics = keep.cap_metrics;
    a->errors_by_type = keep.errors_by_type;
    a->cap_error_types = keep.cap_error_types;
    free(keep.embedding_sum);
}

/* Room for one more error type; false if out of memory. Most series see
 * no error at all, so the table is not part of every aggregate. */
static bool error_room(struct vt_aggregate *a)
{
    if (a->n_error_types < a->cap_error_types)
        return true;
    uint32_t cap = a->cap_error_types ? a->cap_error_types * 2 : 2;
    if (cap > VT_AGG_MAX_ERROR_TYPES)
        cap = VT_AGG_MAX_ERROR_TYPES;
    struct vt_agg_count *t = realloc(a->errors_by_type, cap * sizeof *t);
    if (!t)
        return false;
    a->errors_by_type = t;
    a->cap_error_types = cap;
    return true;
}

/* n (a C string) spells name exactly. */
static bool str_is(const char *n, struct vt_str name)
{
    return n && strncmp(n, name.ptr, name.len) == 0 && n[name.len] == 0;
}

static void count_name(struct vt_aggregate *a, const char *name, size_t len, uint64_t n)
{
    if (len > VT_AGG_MAX_ERROR_TYPE_LEN)
        len = VT_AGG_MAX_ERROR_TYPE_LEN;
    for (uint32_t i = 0; i < a->n_error_types; i++) {
        struct vt_agg_count *c = &a->errors_by_type[i];
        if (str_is(c->name, (struct vt_str){name, len})) {
            c->count += n;
            return;
        }
    }
    if (!error_room(a))
        return; /* out of memory: the error still counts in a->errors */
    /* The last slot is reserved for "other" once the table is full. */
    if (a->n_error_types < VT_AGG_MAX_ERROR_TYPES - 1) {
        struct vt_agg_count *c = &a->errors_by_type[a->n_error_types++];
        memcpy(c->name, name, len);
        c->name[len] = 0;
        c->count = n;
        return;
    }
    if (len == 5 && memcmp(name, "other", 5) == 0 && a->n_error_types == VT_AGG_MAX_ERROR_TYPES)
        return; /* unreachable: "other" matched above */
    if (a->n_error_types == VT_AGG_MAX_ERROR_TYPES - 1) {
        struct vt_agg_count *c = &a->errors_by_type[a->n_error_types++];
        strcpy(c->name, "other");
        c->count = 0;
    }
    a->errors_by_type[VT_AGG_MAX_ERROR_TYPES - 1].count += n;
}

/* Index of name in the sorted metrics array, or -(insertion point) - 1. */
static long find_metric(const struct vt_aggregate *a, const char *name, size_t len)
{
    long lo = 0, hi = (long)a->n_metrics - 1;
    while (lo <= hi) {
        long mid = (lo + hi) / 2;
        const char *m = a->metrics[mid].name;
        size_t mlen = a->metrics[mid].name_len;
        int c = memcmp(m, name, mlen < len ? mlen : len);
        if (c == 0)
            c = mlen < len ? -1 : mlen > len;
        if (c == 0)
            return mid;
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid - 1;
    }
    return -lo - 1;
}

/* The sketch for metric `name`, created if there is room; NULL otherwise. */
static vt_sketch *metric_sketch(struct vt_aggregate *a, const char *name, size_t len)
{
    if (len > VT_AGG_MAX_METRIC_NAME)
        return NULL;
    long at = find_metric(a, name, len);
    if (at >= 0)
        return &a->metrics[at].sketch;
    if (a->n_metrics >= VT_AGG_MAX_METRICS)
        return NULL;
    if (a->n_metrics == a->cap_metrics) {
        uint32_t cap = a->cap_metrics ? a->cap_metrics * 2 : 4;
        struct vt_agg_metric *m = realloc(a->metrics, cap * sizeof *m);
        if (!m)
            return NULL;
        a->metrics = m;
        a->cap_metrics = cap;
    }
    size_t pos = (size_t)(-at - 1);
    memmove(&a->metrics[pos + 1], &a->metrics[pos], (a->n_metrics - pos) * sizeof *a->metrics);
    a->n_metrics++;
    struct vt_agg_metric *m = &a->metrics[pos];
    memcpy(m->name, name, len);
    m->name[len] = 0;
    m->name_len = (uint32_t)len;
    vt_sketch_init_default(&m->sketch);
    return &m->sketch;
}

void vt_aggregate_put_exemplar(struct vt_aggregate *a, uint32_t i,
                               const struct vt_exemplar_rank *x, const char *id)
{
    a->exemplars[i] = *x;
    memcpy(a->exemplar_ids[i], id, sizeof a->exemplar_ids[i]);
}

/* Keep exemplar x (request id `id`, a buffer of VT_AGG_EXEMPLAR_ID_LEN + 1
 * bytes) in a if it ranks. */
static void add_exemplar(struct vt_aggregate *a, const struct vt_exemplar_rank *x, const char *id)
{
    uint32_t failed = 0;
    for (uint32_t i = 0; i < a->n_exemplars; i++)
        failed += a->exemplars[i].kind == VT_EXEMPLAR_FAILED;
    if (a->n_exemplars < VT_AGG_MAX_EXEMPLARS &&
        (x->kind != VT_EXEMPLAR_FAILED || failed < MAX_FAILED_EXEMPLARS)) {
        vt_aggregate_put_exemplar(a, a->n_exemplars++, x, id);
        return;
    }
    /* Choose a victim: for a failed call, the oldest failed one if the failed
     * quota is used, else the fastest slow one; for a slow call, the fastest
     * slow one if it is faster. */
    int victim = -1;
    for (uint32_t i = 0; i < a->n_exemplars; i++) {
        const struct vt_exemplar_rank *e = &a->exemplars[i];
        if (x->kind == VT_EXEMPLAR_FAILED && failed >= MAX_FAILED_EXEMPLARS) {
            if (e->kind == VT_EXEMPLAR_FAILED &&
                (victim < 0 || e->ts_ms < a->exemplars[victim].ts_ms))
                victim = (int)i;
        } else if (e->kind == VT_EXEMPLAR_SLOWEST &&
                   (victim < 0 || e->latency_ms < a->exemplars[victim].latency_ms)) {
            victim = (int)i;
        }
    }
    if (victim < 0)
        return;
    const struct vt_exemplar_rank *v = &a->exemplars[victim];
    if (x->kind == VT_EXEMPLAR_FAILED ? (v->kind == VT_EXEMPLAR_SLOWEST || x->ts_ms >= v->ts_ms)
                                      : x->latency_ms > v->latency_ms)
        vt_aggregate_put_exemplar(a, (uint32_t)victim, x, id);
}

/* add_exemplar of an exemplar whole. */
static void add_exemplar_whole(struct vt_aggregate *a, const struct vt_exemplar *x)
{
    struct vt_exemplar_rank r = {.latency_ms = x->latency_ms, .ts_ms = x->ts_ms, .kind = x->kind};
    add_exemplar(a, &r, x->request_id);
}

/* The embedding sum of a, ready to receive the `dim` components of `n` more
 * embeddings (counted here). NULL when dim is out of bounds, differs from
 * a's (counted as a mismatch), or on ENOMEM (*rc = -ENOMEM). */
static double *embedding_room(struct vt_aggregate *a, uint32_t dim, uint64_t n, int *rc)
{
    if (dim == 0 || dim > VT_AGG_MAX_EMBEDDING)
        return NULL;
    if (!a->embedding_sum) {
        a->embedding_sum = calloc(dim, sizeof(double));
        if (!a->embedding_sum) {
            *rc = -ENOMEM;
            return NULL;
        }
        a->embedding_dim = dim;
    } else if (dim != a->embedding_dim) {
        a->embedding_mismatch += n;
        return NULL;
    }
    a->embedding_count += n;
    return a->embedding_sum;
}

static int add_embedding(struct vt_aggregate *a, const double *v, uint32_t dim, uint64_t n)
{
    int rc = 0;
    double *sum = embedding_room(a, dim, n, &rc);
    for (uint32_t i = 0; sum && i < dim; i++)
        sum[i] += v[i];
    return rc;
}

int vt_aggregate_add(struct vt_aggregate *a, const struct vt_record *rec)
{
    int rc = 0;
    uint32_t p = rec->present;
    a->count++;
    if (rec->error) {
        a->errors++;
        count_name(a, rec->error_type.ptr ? rec->error_type.ptr : "", rec->error_type.len, 1);
    }
    for (int f = VT_FIELD_FIRST; f <= VT_FIELD_LAST; f++)
        if ((VT_RECORD_OPTIONAL_MASK & VT_FIELD_BIT(f)) && !(p & VT_FIELD_BIT(f)))
            a->missing_by_field[f]++;
    if (p & VT_FIELD_BIT(VT_FIELD_LATENCY_MS))
        rc |= vt_sketch_add(&a->latency_ms, rec->latency_ms);
    if (p & VT_FIELD_BIT(VT_FIELD_TTFT_MS))
        rc |= vt_sketch_add(&a->ttft_ms, rec->ttft_ms);
    if (p & VT_FIELD_BIT(VT_FIELD_INPUT_TOKENS))
        rc |= vt_sketch_add(&a->input_tokens, (double)rec->input_tokens);
    if (p & VT_FIELD_BIT(VT_FIELD_OUTPUT_TOKENS))
        rc |= vt_sketch_add(&a->output_tokens, (double)rec->output_tokens);
    if (p & VT_FIELD_BIT(VT_FIELD_COST_USD))
        rc |= vt_sketch_add(&a->cost_usd, rec->cost_usd);
    for (uint32_t i = 0; i < rec->n_metrics; i++) {
        vt_sketch *s = metric_sketch(a, rec->metrics[i].name.ptr, rec->metrics[i].name.len);
        if (s)
            rc |= vt_sketch_add(s, rec->metrics[i].value);
        else
            a->metrics_dropped++;
    }
    if (rec->n_embedding)
        rc |= add_embedding(a, rec->embedding, rec->n_embedding, 1);
    if (rec->request_id.len && rec->request_id.len <= VT_AGG_EXEMPLAR_ID_LEN &&
        (rec->error || (p & VT_FIELD_BIT(VT_FIELD_LATENCY_MS)))) {
        struct vt_exemplar x = {.kind = rec->error ? VT_EXEMPLAR_FAILED : VT_EXEMPLAR_SLOWEST,
                                .latency_ms = rec->latency_ms, .ts_ms = rec->ts_ms};
        memcpy(x.request_id, rec->request_id.ptr, rec->request_id.len);
        x.request_id[rec->request_id.len] = 0;
        add_exemplar_whole(a, &x);
    }
    return rc ? -ENOMEM : 0;
}

void vt_aggregate_add_invalid(struct vt_aggregate *a, enum vt_record_reject reason)
{
    if ((int)reason > 0 && reason < VT_REJECT__COUNT)
        a->invalid_by_reason[reason]++;
}

int vt_aggregate_merge(struct vt_aggregate *dst, const struct vt_aggregate *src)
{
    int rc = 0;
    dst->count += src->count;
    dst->errors += src->errors;
    for (uint32_t i = 0; i < src->n_error_types; i++)
        count_name(dst, src->errors_by_type[i].name, strlen(src->errors_by_type[i].name),
                   src->errors_by_type[i].count);
    for (int i = 0; i < N_FIXED; i++)
        rc |= vt_sketch_merge(fixed_sketch(dst, i), fixed_sketch((struct vt_aggregate *)src, i));
    for (uint32_t i = 0; i < src->n_metrics; i++) {
        const struct vt_agg_metric *m = &src->metrics[i];
        vt_sketch *s = metric_sketch(dst, m->name, strlen(m->name));
        if (s)
            rc |= vt_sketch_merge(s, &m->sketch);
        else
            dst->metrics_dropped += vt_sketch_count(&m->sketch);
    }
    dst->metrics_dropped += src->metrics_dropped;
    if (src->embedding_sum)
        rc |= add_embedding(dst, src->embedding_sum, src->embedding_dim, src->embedding_count);
    dst->embedding_mismatch += src->embedding_mismatch;
    for (int i = 0; i < VT_REJECT__COUNT; i++)
        dst->invalid_by_reason[i] += src->invalid_by_reason[i];
    for (int i = 0; i <= VT_FIELD_LAST; i++)
        dst->missing_by_field[i] += src->missing_by_field[i];
    for (uint32_t i = 0; i < src->n_exemplars; i++)
        add_exemplar(dst, &src->exemplars[i], src->exemplar_ids[i]);
    return rc ? -ENOMEM : 0;
}

const vt_sketch *vt_aggregate_sketch(const struct vt_aggregate *a, const char *name)
{
    for (int i = 0; i < N_FIXED; i++)
        if (strcmp(name, fixed_names[i]) == 0)
            return fixed_sketch((struct vt_aggregate *)a, i);
    long at = find_metric(a, name, strlen(name));
    return at >= 0 ? &a->metrics[at].sketch : NULL;
}

vt_sketch *vt_aggregate_metric(struct vt_aggregate *a, const char *name)
{
    return metric_sketch(a, name, strlen(name));
}

uint64_t vt_aggregate_missing(const struct vt_aggregate *a, const char *field)
{
    for (int f = VT_FIELD_FIRST; f <= VT_FIELD_LAST; f++) {
        const char *n = vt_record_field_name(f);
        if (n && strcmp(n, field) == 0)
            return a->missing_by_field[f];
    }
    return 0;
}

uint64_t vt_aggregate_invalid_total(const struct vt_aggregate *a)
{
    uint64_t n = 0;
    for (int i = 0; i < VT_REJECT__COUNT; i++)
        n += a->invalid_by_reason[i];
    return n;
}

/* --- wire form -------------------------------------------------------------- */

static Vitals__V1__Sketch *sketch_msg(const vt_sketch *s, int *rc)
{
    Vitals__V1__Sketch *m = malloc(sizeof *m);
    if (!m || vt_sketch_to_proto(s, m) != 0) {
        free(m);
        *rc = -ENOMEM;
        return NULL;
    }
    return m;
}

static Vitals__V1__CountByName *count_msg(const char *name, uint64_t n, int *rc)
{
    Vitals__V1__CountByName *c = malloc(sizeof *c);
    char *copy = strdup(name);
    if (!c || !copy) {
        free(c);
        free(copy);
        *rc = -ENOMEM;
        return NULL;
    }
    vitals__v1__count_by_name__init(c);
    c->name = copy;
    c->count = n;
    return c;
}

int vt_aggregate_to_proto(const struct vt_aggregate *a, Vitals__V1__WindowAggregate *msg)
{
    int rc = 0;
    vitals__v1__window_aggregate__init(msg);
    msg->count = a->count;
    msg->errors = a->errors;
    msg->errors_by_type = calloc(a->n_error_types + 1, sizeof(void *));
    msg->metrics = calloc(a->n_metrics + 1, sizeof(void *));
    msg->invalid_by_reason = calloc(VT_REJECT__COUNT, sizeof(void *));
    msg->missing_by_field = calloc(VT_FIELD_LAST + 1, sizeof(void *));
    msg->exemplars = calloc(VT_AGG_MAX_EXEMPLARS, sizeof(void *));
    if (!msg->errors_by_type || !msg->metrics || !msg->invalid_by_reason ||
        !msg->missing_by_field || !msg->exemplars) {
        rc = -ENOMEM;
        goto out;
    }
    for (uint32_t i = 0; i < a->n_error_types && !rc; i++)
        if ((msg->errors_by_type[msg->n_errors_by_type] =
                 count_msg(a->errors_by_type[i].name, a->errors_by_type[i].count, &rc)))
            msg->n_errors_by_type++;
    Vitals__V1__Sketch **fixed[] = {&msg->latency_ms, &msg->ttft_ms, &msg->input_tokens,
                                    &msg->output_tokens, &msg->cost_usd};
    for (int i = 0; i < N_FIXED && !rc; i++)
        if (vt_sketch_count(fixed_sketch((struct vt_aggregate *)a, i)))
            *fixed[i] = sketch_msg(fixed_sketch((struct vt_aggregate *)a, i), &rc);
    for (uint32_t i = 0; i < a->n_metrics && !rc; i++) {
        Vitals__V1__WindowAggregate__MetricSketch *m = malloc(sizeof *m);
        if (!m) {
            rc = -ENOMEM;
            break;
        }
        vitals__v1__window_aggregate__metric_sketch__init(m);
        msg->metrics[msg->n_metrics++] = m;
        m->name = strdup(a->metrics[i].name);
        m->sketch = sketch_msg(&a->metrics[i].sketch, &rc);
        if (!m->name)
            rc = -ENOMEM;
    }
    if (a->embedding_sum && !rc) {
        msg->embedding_sum = malloc(a->embedding_dim * sizeof(double));
        if (!msg->embedding_sum)
            rc = -ENOMEM;
        else {
            memcpy(msg->embedding_sum, a->embedding_sum, a->embedding_dim * sizeof(double));
            msg->n_embedding_sum = a->embedding_dim;
            msg->embedding_count = a->embedding_count;
        }
    }
    for (int i = 1; i < VT_REJECT__COUNT && !rc; i++)
        if (a->invalid_by_reason[i] &&
            (msg->invalid_by_reason[msg->n_invalid_by_reason] =
                 count_msg(vt_record_reject_name(i), a->invalid_by_reason[i], &rc)))
            msg->n_invalid_by_reason++;
    for (int f = VT_FIELD_FIRST; f <= VT_FIELD_LAST && !rc; f++)
        if (a->missing_by_field[f] &&
            (msg->missing_by_field[msg->n_missing_by_field] =
                 count_msg(vt_record_field_name(f), a->missing_by_field[f], &rc)))
            msg->n_missing_by_field++;
    for (uint32_t i = 0; i < a->n_exemplars && !rc; i++) {
        Vitals__V1__Exemplar *x = malloc(sizeof *x);
        if (!x) {
            rc = -ENOMEM;
            break;
        }
        vitals__v1__exemplar__init(x);
        msg->exemplars[msg->n_exemplars++] = x;
        x->request_id = strdup(a->exemplar_ids[i]);
        x->kind = strdup(a->exemplars[i].kind == VT_EXEMPLAR_FAILED ? "failed" : "slowest");
        x->latency_ms = a->exemplars[i].latency_ms;
        x->ts_ms = a->exemplars[i].ts_ms;
        if (!x->request_id || !x->kind)
            rc = -ENOMEM;
    }
out:
    if (rc)
        vt_aggregate_proto_release(msg);
    return rc;
}

/* A CountByName message as field `num`. */
static void encode_count(struct pbw *w, uint32_t num, const char *name, uint64_t n)
{
    size_t at = pbw_open(w, num);
    pbw_string(w, 1, name);
    pbw_uint(w, 2, n);
    pbw_close(w, at);
}

static void encode_sketch(struct pbw *w, uint32_t num, const vt_sketch *s)
{
    size_t at = pbw_open(w, num);
    vt_sketch_encode(s, w);
    pbw_close(w, at);
}

/* Field by field what vt_aggregate_to_proto fills, in field order. */
void vt_aggregate_encode(const struct vt_aggregate *a, struct pbw *w)
{
    pbw_uint(w, 4, a->count);
    pbw_uint(w, 5, a->errors);
    for (uint32_t i = 0; i < a->n_error_types; i++)
        encode_count(w, 6, a->errors_by_type[i].name, a->errors_by_type[i].count);
    for (int i = 0; i < N_FIXED; i++)
        if (vt_sketch_count(fixed_sketch((struct vt_aggregate *)a, i)))
            encode_sketch(w, 7 + (uint32_t)i, fixed_sketch((struct vt_aggregate *)a, i));
    for (uint32_t i = 0; i < a->n_metrics; i++) {
        size_t at = pbw_open(w, 12);
        pbw_bytes(w, 1, a->metrics[i].name, a->metrics[i].name_len);
        encode_sketch(w, 2, &a->metrics[i].sketch);
        pbw_close(w, at);
    }
    if (a->embedding_sum) {
        if (a->embedding_dim) { /* packed doubles */
            size_t at = pbw_open(w, 13);
            for (uint32_t i = 0; i < a->embedding_dim && !pbw_room(w, 8); i++) {
                uint64_t u;
                memcpy(&u, &a->embedding_sum[i], 8);
                for (int b = 0; b < 8; b++)
                    w->p[w->len++] = (uint8_t)(u >> (8 * b));
            }
            pbw_close(w, at);
        }
        pbw_uint(w, 14, a->embedding_count);
    }
    for (int r = 1; r < VT_REJECT__COUNT; r++)
        if (a->invalid_by_reason[r])
            encode_count(w, 15, vt_record_reject_name(r), a->invalid_by_reason[r]);
    for (int f = VT_FIELD_FIRST; f <= VT_FIELD_LAST; f++)
        if (a->missing_by_field[f])
            encode_count(w, 16, vt_record_field_name(f), a->missing_by_field[f]);
    for (uint32_t i = 0; i < a->n_exemplars; i++) {
        const struct vt_exemplar_rank *x = &a->exemplars[i];
        size_t at = pbw_open(w, 17);
        pbw_string(w, 1, a->exemplar_ids[i]);
        pbw_string(w, 2, x->kind == VT_EXEMPLAR_FAILED ? "failed" : "slowest");
        pbw_double(w, 3, x->latency_ms);
        pbw_uint(w, 4, (uint64_t)x->ts_ms);
        pbw_close(w, at);
    }
}

static void free_sketch_msg(Vitals__V1__Sketch *m)
{
    if (m) {
        vt_sketch_proto_release(m);
        free(m);
    }
}

static void free_counts(Vitals__V1__CountByName **c, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(c[i]->name);
        free(c[i]);
    }
    free(c);
}

void vt_aggregate_proto_release(Vitals__V1__WindowAggregate *msg)
{
    free_counts(msg->errors_by_type, msg->n_errors_by_type);
    free_counts(msg->invalid_by_reason, msg->n_invalid_by_reason);
    free_counts(msg->missing_by_field, msg->n_missing_by_field);
    free_sketch_msg(msg->latency_ms);
    free_sketch_msg(msg->ttft_ms);
    free_sketch_msg(msg->input_tokens);
    free_sketch_msg(msg->output_tokens);
    free_sketch_msg(msg->cost_usd);
    for (size_t i = 0; i < msg->n_metrics; i++) {
        free(msg->metrics[i]->name);
        free_sketch_msg(msg->metrics[i]->sketch);
        free(msg->metrics[i]);
    }
    free(msg->metrics);
    free(msg->embedding_sum);
    for (size_t i = 0; i < msg->n_exemplars; i++) {
        free(msg->exemplars[i]->request_id);
        free(msg->exemplars[i]->kind);
        free(msg->exemplars[i]);
    }
    free(msg->exemplars);
    Vitals__V1__SeriesKey *series = msg->series;
    vitals__v1__window_aggregate__init(msg);
    msg->series = series;
}

/* --- decoding, straight from the wire ----------------------------------------
 * One walker serves both passes: check (validate everything, change nothing)
 * and merge (trusts what check accepted). Field numbers are those of
 * vitals.v1.WindowAggregate and its sub-messages. */

/* A string field: bounded length, no NUL byte (names become C strings) -
 * the bytes are not searched again when the merge walks what the check
 * accepted (`checked`). */
static bool good_str(const struct pbf *f, size_t min, size_t max, bool checked)
{
    return f->wt == PB_LEN && f->len >= min && f->len <= max &&
           (checked || !memchr(f->ptr, 0, f->len));
}

/* CountByName {string name = 1; uint64 count = 2}. */
static int wire_count(struct pb b, size_t max_name, bool checked, struct vt_str *name,
                      uint64_t *n)
{
    struct pbf f;
    int r;
    *name = (struct vt_str){"", 0};
    *n = 0;
    while ((r = pb_next(&b, &f)) == 1) {
        if (f.num == 1) {
            if (!good_str(&f, 0, max_name, checked))
                return -EBADMSG;
            *name = (struct vt_str){(const char *)f.ptr, f.len};
        } else if (f.num == 2) {
            if (f.wt != PB_VARINT || f.u > VT_AGG_MAX_COUNT)
                return -EBADMSG;
            *n = f.u;
        }
    }
    return r == 0 ? 0 : -EBADMSG;
}

/* MetricSketch {string name = 1; Sketch sketch = 2}. */
static int wire_metric(struct pb b, bool checked, struct vt_str *name, struct pb *sketch)
{
    struct pbf f;
    int r;
    *name = (struct vt_str){"", 0};
    *sketch = (struct pb){NULL, NULL};
    while ((r = pb_next(&b, &f)) == 1) {
        if (f.num == 1) {
            if (!good_str(&f, 1, VT_AGG_MAX_METRIC_NAME, checked))
                return -EBADMSG;
            *name = (struct vt_str){(const char *)f.ptr, f.len};
        } else if (f.num == 2) {
            if (f.wt != PB_LEN || sketch->p)
                return -EBADMSG;
            *sketch = pb_of(&f);
        }
    }
    return r == 0 && name->len && sketch->p ? 0 : -EBADMSG;
}

/* Exemplar {string request_id = 1; string kind = 2; double latency_ms = 3;
 * int64 ts_ms = 4}. */
static int wire_exemplar(struct pb b, bool checked, struct vt_exemplar *x)
{
    struct pbf f;
    int r;
    memset(x, 0, sizeof *x);
    while ((r = pb_next(&b, &f)) == 1) {
        switch (f.num) {
        case 1:
            if (!good_str(&f, 0, VT_AGG_EXEMPLAR_ID_LEN, checked))
                return -EBADMSG;
            memcpy(x->request_id, f.ptr, f.len);
            x->request_id[f.len] = 0;
            break;
        case 2:
            if (f.wt != PB_LEN)
                return -EBADMSG;
            x->kind = f.len == 6 && memcmp(f.ptr, "failed", 6) == 0 ? VT_EXEMPLAR_FAILED
                                                                     : VT_EXEMPLAR_SLOWEST;
            break;
        case 3:
            if (f.wt != PB_FIXED64)
                return -EBADMSG;
            x->latency_ms = isfinite(pb_double(f.u)) ? pb_double(f.u) : 0;
            break;
        case 4:
            if (f.wt != PB_VARINT)
                return -EBADMSG;
            x->ts_ms = (int64_t)f.u;
            break;
        default: break;
        }
    }
    return r == 0 ? 0 : -EBADMSG;
}

/* The count field (2) of a Sketch message, for sketches that are dropped. */
static uint64_t wire_sketch_count(struct pb b)
{
    struct pbf f;
    uint64_t n = 0;
    while (pb_next(&b, &f) == 1)
        if (f.num == 2 && f.wt == PB_VARINT)
            n = f.u;
    return n;
}

/* n spells name, told apart by the first byte before any call: the merge
 * looks up every count's name among ~16 (strncmp was 0.7% of a push). */
static bool name_is(const char *n, struct vt_str name)
{
    return n && name.len && n[0] == name.ptr[0] && str_is(n, name);
}

static int reason_of(struct vt_str name)
{
    for (int r = 1; r < VT_REJECT__COUNT; r++)
        if (name_is(vt_record_reject_name(r), name))
            return r;
    return -1;
}

static int field_of(struct vt_str name)
{
    for (int i = VT_FIELD_FIRST; i <= VT_FIELD_LAST; i++)
        if (name_is(vt_record_field_name(i), name))
            return i;
    return -1;
}

/* What a check keeps: each sketch's (kept[n++]) and the rest. */
struct keep {
    struct vt_sketch_kept *kept;
    uint32_t n;
    struct vt_agg_kept *rest;
};

/* One sketch: checked (dst == NULL; *count_max raised to its count, and
 * kept when kc), else merged into s - or, s == NULL, counted as dropped
 * into dst. */
static int walk_sketch(const uint8_t *p, size_t len, uint32_t field, struct vt_aggregate *dst,
                       vt_sketch *s, struct keep *kc, uint64_t *count_max)
{
    if (!dst) {
        uint64_t n;
        if (kc ? vt_sketch_check_wire_kept(p, len, &kc->kept[kc->n])
               : vt_sketch_check_wire(p, len, &n))
            return -EBADMSG;
        if (kc) {
            kc->kept[kc->n].field = field;
            kc->kept[kc->n].name = NULL;
            kc->kept[kc->n].name_len = 0;
            n = kc->kept[kc->n++].count;
        }
        *count_max = n > *count_max ? n : *count_max;
        return 0;
    }
    if (!s)
        dst->metrics_dropped += wire_sketch_count(pb_make(p, len));
    else if (vt_sketch_merge_wire_checked(s, p, len))
        return -ENOMEM;
    return 0;
}

/* Named counts - error types (field 6), invalid reasons (15), missing
 * fields (16): the longest name, and how many one message may hold. */
static size_t count_name_max(uint32_t field)
{
    return field == 6 ? VT_AGG_MAX_ERROR_TYPE_LEN : VT_AGG_MAX_METRIC_NAME;
}

static uint32_t count_limit(uint32_t field)
{
    return field == 6 ? VT_AGG_MAX_ERROR_TYPES : field == 15 ? VT_REJECT__COUNT : VT_FIELD_LAST + 1;
}

/* A named count merged: an error type (field 6), an invalid reason (15) or
 * a missing field (16); names of a newer schema are ignored. */
static void merge_count(struct vt_aggregate *a, uint32_t field, struct vt_str name, uint64_t n)
{
    if (field == 6) {
        count_name(a, name.ptr, name.len, n);
        return;
    }
    int at = field == 15 ? reason_of(name) : field_of(name);
    if (at >= 0)
        *(field == 15 ? &a->invalid_by_reason[at] : &a->missing_by_field[at]) += n;
}

/* The totals, merged last. 0 or -ENOMEM (the embedding). */
static int merge_totals(struct vt_aggregate *a, uint64_t count, uint64_t errors,
                        const uint8_t *emb, uint32_t n_emb, uint64_t emb_count)
{
    int rc = 0;
    a->count += count;
    a->errors += errors;
    if (n_emb) {
        double *sum = embedding_room(a, n_emb, emb_count, &rc);
        for (uint32_t i = 0; sum && i < n_emb; i++)
            sum[i] += pb_double(pb_le64(emb + 8 * i));
    }
    return rc;
}

/* The walker. dst == NULL: check only (nothing allocated), keeping what
 * it learned in kc if given; else merge into dst a message that passed the
 * check (vt_aggregate_merge_kept merges from what a check kept instead). */
static int walk(const uint8_t *buf, size_t len, struct vt_aggregate *dst,
                struct vt_agg_head *head, struct keep *kc)
{
    struct pb b = pb_make(buf, len);
    struct pbf f;
    int r, rc = 0;
    uint32_t n_err = 0, n_metrics = 0, n_invalid = 0, n_missing = 0, n_ex = 0, n_emb = 0;
    uint64_t count = 0, errors = 0, emb_count = 0, sketch_max = 0;
    unsigned fixed_seen = 0;
    struct pb emb = {NULL, NULL};
    while ((r = pb_next(&b, &f)) == 1) {
        uint32_t want = f.num == 1 || (f.num >= 6 && f.num <= 13) || f.num == 15 ||
                                f.num == 16 || f.num == 17
                            ? PB_LEN
                            : PB_VARINT;
        if (f.num <= 18 && f.wt != want)
            return -EBADMSG;
        struct vt_str name;
        uint64_t n = 0;
        struct pb sk;
        switch (f.num) {
        case 1:
            if (head)
                head->series = f.ptr, head->series_len = f.len;
            break;
        case 2:
            if (head)
                head->window_start_ms = (int64_t)f.u;
            break;
        case 3:
            if (f.u > UINT32_MAX)
                return -EBADMSG;
            if (head)
                head->window_ms = (uint32_t)f.u;
            break;
        case 18:
            if (head)
                head->overflow = f.u != 0;
            break;
        case 4: count = f.u; break;
        case 5: errors = f.u; break;
        case 6: case 15: case 16: {
            uint32_t *seen = f.num == 6 ? &n_err : f.num == 15 ? &n_invalid : &n_missing;
            if (++*seen > count_limit(f.num) ||
                wire_count(pb_of(&f), count_name_max(f.num), dst, &name, &n))
                return -EBADMSG;
            if (dst)
                merge_count(dst, f.num, name, n);
            else if (kc) { /* bounded by the three limits above */
                struct vt_agg_kept *k = kc->rest;
                k->counts[k->n_counts].off = (uint32_t)(f.ptr - buf);
                k->counts[k->n_counts].len = (uint32_t)f.len;
                k->counts[k->n_counts++].field = f.num;
            }
            break;
        }
        case 7: case 8: case 9: case 10: case 11:
            if (fixed_seen & (1u << f.num)) /* protobuf would merge the two: refused */
                return -EBADMSG;
            fixed_seen |= 1u << f.num;
            rc = walk_sketch(f.ptr, f.len, f.num, dst,
                             dst ? fixed_sketch(dst, (int)f.num - 7) : NULL, kc, &sketch_max);
            break;
        case 12:
            if (++n_metrics > VT_AGG_MAX_METRICS || wire_metric(pb_of(&f), dst, &name, &sk))
                return -EBADMSG;
            rc = walk_sketch(sk.p, (size_t)(sk.end - sk.p), f.num, dst,
                             dst ? metric_sketch(dst, name.ptr, name.len) : NULL, kc, &sketch_max);
            if (!rc && !dst && kc) {
                kc->kept[kc->n - 1].name = name.ptr;
                kc->kept[kc->n - 1].name_len = (uint32_t)name.len;
            }
            break;
        case 13: /* packed doubles, in one field (proto3 packs repeated scalars) */
            if (emb.p || f.len % 8 || f.len / 8 > VT_AGG_MAX_EMBEDDING)
                return -EBADMSG;
            emb = pb_of(&f);
            n_emb = (uint32_t)(f.len / 8);
            for (uint32_t i = 0; !dst && i < n_emb; i++)
                if (!isfinite(pb_double(pb_le64(emb.p + 8 * i))))
                    return -EBADMSG;
            break;
        case 14: emb_count = f.u; break;
        case 17: {
            struct vt_exemplar x, *to = kc ? &kc->rest->exemplars[n_ex] : &x;
            if (++n_ex > VT_AGG_MAX_EXEMPLARS || wire_exemplar(pb_of(&f), dst, to))
                return -EBADMSG;
            if (dst)
                add_exemplar_whole(dst, to);
            break;
        }
        default: break; /* a field of a newer schema */
        }
        if (rc)
            return rc;
    }
    /* bounded counts: a rollup sums many of these and must not overflow
     * (every sketch holds at most one value per record) */
    if (r != 0 || count > VT_AGG_MAX_COUNT || errors > count || sketch_max > count ||
        emb_count > count)
        return -EBADMSG;
    if (head)
        head->count = count;
    if (dst)
        return merge_totals(dst, count, errors, emb.p, n_emb, emb_count);
    if (kc) {
        struct vt_agg_kept *k = kc->rest;
        k->count = count, k->errors = errors, k->emb_count = emb_count;
        k->emb = emb.p, k->n_emb = n_emb;
        k->n_exemplars = n_ex;
    }
    return 0;
}

int vt_aggregate_check_wire(const uint8_t *buf, size_t len, struct vt_agg_head *head)
{
    struct vt_agg_head h;
    if (!head)
        head = &h;
    memset(head, 0, sizeof *head);
    return walk(buf, len, NULL, head, NULL); /* the head in the same pass */
}

int vt_aggregate_check_wire_kept(const uint8_t *buf, size_t len, struct vt_agg_head *head,
                                 struct vt_sketch_kept *kept, uint32_t *n_kept,
                                 struct vt_agg_kept *rest)
{
    struct keep kc = {kept, 0, rest};
    memset(head, 0, sizeof *head);
    rest->buf = buf;
    rest->n_counts = 0;
    int rc = walk(buf, len, NULL, head, &kc);
    *n_kept = kc.n;
    return rc;
}

int vt_aggregate_merge_kept(struct vt_aggregate *dst, const struct vt_sketch_kept *kept,
                            uint32_t n_kept, const struct vt_agg_kept *rest)
{
    for (uint32_t i = 0; i < rest->n_counts; i++) {
        struct vt_str name;
        uint64_t n;
        uint32_t field = rest->counts[i].field;
        wire_count(pb_make(rest->buf + rest->counts[i].off, rest->counts[i].len),
                   count_name_max(field), true, &name, &n); /* checked: cannot fail */
        merge_count(dst, field, name, n);
    }
    for (uint32_t i = 0; i < n_kept; i++) {
        const struct vt_sketch_kept *k = &kept[i];
        vt_sketch *s = k->field == 12 ? metric_sketch(dst, k->name, k->name_len)
                                      : fixed_sketch(dst, (int)k->field - 7);
        if (!s)
            dst->metrics_dropped += k->count;
        else if (vt_sketch_merge_kept(s, k))
            return -ENOMEM;
    }
    for (uint32_t i = 0; i < rest->n_exemplars; i++)
        add_exemplar_whole(dst, &rest->exemplars[i]);
    return merge_totals(dst, rest->count, rest->errors, rest->emb, rest->n_emb, rest->emb_count);
}

int vt_aggregate_wire_head(const uint8_t *buf, size_t len, struct vt_agg_head *head)
{
    struct pb b = pb_make(buf, len);
    struct pbf f;
    int r;
    memset(head, 0, sizeof *head);
    while ((r = pb_next(&b, &f)) == 1)
        switch (f.num) {
        case 1:
            head->series = f.ptr;
            head->series_len = f.len;
            break;
        case 2: head->window_start_ms = (int64_t)f.u; break;
        case 3: head->window_ms = (uint32_t)f.u; break;
        case 4: head->count = f.u; break;
        case 18: head->overflow = f.u != 0; break;
        default: break;
        }
    return r == 0 ? 0 : -EBADMSG;
}

/* Write prefetches of the lines from p up to (not including) p + n. */
static void fetch_w(const void *p, size_t n)
{
    for (size_t i = 0; i < n; i += 64)
        __builtin_prefetch((const char *)p + i, 1);
}

void vt_aggregate_prefetch(const struct vt_aggregate *a)
{
    fetch_w(a, offsetof(struct vt_aggregate, metrics_dropped));
}

void vt_aggregate_prefetch_parts(const struct vt_aggregate *a)
{
    const vt_sketch *fixed[] = {&a->latency_ms, &a->ttft_ms, &a->input_tokens,
                                &a->output_tokens, &a->cost_usd};
    for (size_t i = 0; i < sizeof fixed / sizeof *fixed; i++)
        vt_sketch_prefetch(fixed[i]);
    fetch_w(a->metrics, a->n_metrics * sizeof *a->metrics);
}

void vt_aggregate_prefetch_kept(const struct vt_aggregate *a, const struct vt_sketch_kept *k,
                                uint32_t n)
{
    for (uint32_t i = 0; i < n; i++)
        if (k[i].field >= 7 && k[i].field <= 11)
            vt_sketch_prefetch_range(fixed_sketch((struct vt_aggregate *)a, (int)k[i].field - 7),
                                     k[i].lo, k[i].hi);
    fetch_w(a->metrics, a->n_metrics * sizeof *a->metrics);
}

void vt_aggregate_prefetch_metrics(const struct vt_aggregate *a)
{
    for (uint32_t i = 0; i < a->n_metrics; i++)
        vt_sketch_prefetch(&a->metrics[i].sketch);
}

/* Read prefetches of [p, p + n), n > 0. */
static void fetch(const void *p, size_t n)
{
    const char *c = p;
    for (size_t o = 0; o < n; o += 64)
        __builtin_prefetch(c + o);
    __builtin_prefetch(c + n - 1);
}

void vt_aggregate_prefetch_read(const struct vt_aggregate *a, const struct vt_agg_reads *r)
{
    fetch(a, offsetof(struct vt_aggregate, errors_by_type));
    for (int i = 0; i < N_FIXED; i++)
        if (r->fixed & (1u << i)) /* a whole merge reads the store headers too */
            fetch(fixed_sketch((struct vt_aggregate *)a, i),
                  r->buckets & (1u << i) ? sizeof(vt_sketch) : offsetof(vt_sketch, pos));
    if (r->metrics || r->embedding || r->exemplars) /* their pointers and counts */
        fetch(&a->metrics, offsetof(struct vt_aggregate, exemplars) -
                               offsetof(struct vt_aggregate, metrics));
    if (r->exemplars)
        fetch(a->exemplars, sizeof a->exemplars);
    if (r->quality)
        fetch(&a->metrics_dropped, sizeof *a - offsetof(struct vt_aggregate, metrics_dropped));
}

void vt_aggregate_prefetch_read_parts(const struct vt_aggregate *a, const struct vt_agg_reads *r)
{
    /* The counters fetched here, not by calling vt_sketch_prefetch (the same
     * lines, the same instruction): that call measured 27% slower per
     * evaluation (bench_eval, 7 alternating runs: 84.6 against 66.3 ms). */
    for (int i = 0; i < N_FIXED; i++) {
        const vt_sketch_store *st = &fixed_sketch((struct vt_aggregate *)a, i)->pos;
        if ((r->buckets & (1u << i)) && st->total) /* negative values are rare */
            fetch((const char *)st->bins + (size_t)((int64_t)st->lo - st->offset) * st->width,
                  (size_t)((int64_t)st->hi - st->lo + 1) * st->width);
    }
    if (r->metrics && a->n_metrics)
        fetch(a->metrics, a->n_metrics * sizeof *a->metrics);
}

int vt_aggregate_merge_wire_checked(struct vt_aggregate *dst, const uint8_t *buf, size_t len)
{
    return walk(buf, len, dst, NULL, NULL);
}

int vt_aggregate_merge_wire(struct vt_aggregate *dst, const uint8_t *buf, size_t len)
{
    /* Validated as a whole first, then merged straight into dst: after a
     * good validation only -ENOMEM can stop it. */
    int rc = vt_aggregate_check_wire(buf, len, NULL);
    return rc ? rc : vt_aggregate_merge_wire_checked(dst, buf, len);
}
