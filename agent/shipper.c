/*
 * shipper.c - closed windows -> batches -> vitals.v1.Collector/Push.
 *
 * Windows ship in spool order. At most two windows are built ahead of the
 * one being acknowledged (bounded memory however long the scorer is away:
 * the rest wait in the spool), at most max_in_flight batches are on the
 * wire. A failed batch is retried after an exponential backoff with full
 * jitter (sleep = random(0, min(cap, initial * 2^failures))), shared by the
 * whole shipper since a failure usually means the scorer is unwell, not the
 * batch. A batch the scorer refuses for good (INVALID_ARGUMENT, ...) is set
 * aside under <spool-dir>/rejected/ and counted, so it never blocks the rest.
 * The checkpoint moves past a window only when all its batches are done.
 */
#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "agent.h"
#include "log.h"

#define BUILD_AHEAD 2

enum entry_state { ENTRY_WAITING, ENTRY_BUILDING, ENTRY_READY };
enum batch_state { BATCH_PENDING, BATCH_IN_FLIGHT, BATCH_DONE };

struct batch {
    uint8_t *buf;
    size_t len;
    char *id;
    enum batch_state state;
    uint64_t sent_at;
};

struct entry {
    struct entry *next;
    struct window *w;
    enum entry_state state;
    struct batch *b;
    uint32_t n, done;
    uint64_t records;
};

struct shipper {
    struct agent *ag;
    vt_grpc_client_t *client;
    struct entry *head, **tail;
    uint32_t in_flight, failures;
    uint64_t retry_at;     /* uv_now() before which nothing is sent */
    uv_timer_t retry_timer;
    uint64_t rng;
    char *auth;
    bool closing;
};

static void pump(struct shipper *s);

static uint64_t next_rand(struct shipper *s)
{
    s->rng ^= s->rng << 13;
    s->rng ^= s->rng >> 7;
    s->rng ^= s->rng << 17;
    return s->rng;
}

static int load_token(struct shipper *s)
{
    const char *path = s->ag->cfg.token_file;
    if (!path || !*path)
        return 0;
    FILE *f = fopen(path, "r");
    if (!f) {
        vt_error("shipper: cannot read --token-file %s: %s", path, strerror(errno));
        return -errno;
    }
    char tok[1024] = "";
    size_t n = fread(tok, 1, sizeof tok - 1, f);
    fclose(f);
    tok[n] = 0;
    while (n && (tok[n - 1] == '\n' || tok[n - 1] == '\r' || tok[n - 1] == ' '))
        tok[--n] = 0;
    free(s->auth);
    if (asprintf(&s->auth, "Bearer %s", tok) < 0)
        return -ENOMEM;
    return s->client ? vt_grpc_client_set_metadata(s->client, "authorization", s->auth) : 0;
}

static void free_entry(struct entry *e)
{
    for (uint32_t i = 0; i < e->n; i++) {
        free(e->b[i].buf);
        free(e->b[i].id);
    }
    free(e->b);
    free(e);
}

/* Pop every finished window off the head; move the checkpoint past them. */
static void advance(struct shipper *s)
{
    struct agent *ag = s->ag;
    uint64_t ckpt = 0;
    while (s->head && s->head->state == ENTRY_READY && s->head->done == s->head->n) {
        struct entry *e = s->head;
        s->head = e->next;
        if (!s->head)
            s->tail = &s->head;
        ckpt = e->w->end_seq;
        assert(ag->windows == e->w); /* windows leave in the order they came */
        ag->windows = e->w->next;
        window_free(e->w);
        free_entry(e);
    }
    if (ckpt)
        spool_checkpoint(ag, ckpt);
}

static void set_aside(struct shipper *s, struct batch *b, int status, const char *msg)
{
    struct agent *ag = s->ag;
    vt_counter_inc(ag->m.batches_rejected);
    vt_error("shipper: scorer refused batch %s for good: %s: %s; set aside", b->id,
             vt_grpc_status_name(status), msg);
    /* Rare, small and worth keeping for a post-mortem: written in place. */
    char dir[4096], path[4400], name[300];
    snprintf(dir, sizeof dir, "%s/rejected", ag->cfg.spool_dir);
    mkdir(dir, 0750);
    snprintf(name, sizeof name, "%s", b->id);
    for (char *p = name; *p; p++)
        if (*p == '/')
            *p = '_';
    snprintf(path, sizeof path, "%s/%s.pb", dir, name);
    FILE *f = fopen(path, "wb");
    if (f) {
        fwrite(b->buf, 1, b->len, f);
        fclose(f);
    }
}

struct call_ctx {
    struct shipper *s;
    struct entry *e;
    uint32_t i;
};

static void on_reply(int status, const char *message, const uint8_t *resp, size_t len, void *data)
{
    struct call_ctx *c = data;
    struct shipper *s = c->s;
    struct agent *ag = s->ag;
    struct entry *e = c->e;
    uint32_t idx = c->i;
    free(c);
    if (s->closing)
        return; /* CANCELLED by shipper_close: the spool still has it all */
    struct batch *b = &e->b[idx];
    s->in_flight--;
    double secs = (double)(uv_now(ag->loop) - b->sent_at) / 1e3;
    if (status == VT_GRPC_OK) {
        Vitals__V1__Ack *ack = vitals__v1__ack__unpack(NULL, len, resp);
        if (ack && ack->duplicate)
            vt_counter_inc(ag->m.batches_duplicate);
        else if (ack)
            vt_counter_add(ag->m.records_shipped, ack->records);
        if (ack)
            vitals__v1__ack__free_unpacked(ack, NULL);
        vt_counter_inc(ag->m.batches_acked);
        vt_histogram_observe(ag->m.ship_latency, secs);
        b->state = BATCH_DONE;
        e->done++;
        s->failures = 0;
    } else if (vt_grpc_status_retryable(status) || status == VT_GRPC_UNAUTHENTICATED ||
               status == VT_GRPC_RESOURCE_EXHAUSTED || status == VT_GRPC_UNKNOWN ||
               status == VT_GRPC_INTERNAL) {
        /* UNAUTHENTICATED: the token may be rotated; RESOURCE_EXHAUSTED and
         * INTERNAL: an overloaded or restarting scorer. Retry, never drop. */
        if (status == VT_GRPC_UNAUTHENTICATED)
            load_token(s);
        vt_counter_inc(ag->m.batches_retried);
        b->state = BATCH_PENDING;
        if (s->failures < 30)
            s->failures++;
        uint64_t ceiling = (uint64_t)ag->cfg.backoff_initial_ms << (s->failures - 1);
        if (ceiling > (uint64_t)ag->cfg.backoff_max_ms)
            ceiling = (uint64_t)ag->cfg.backoff_max_ms;
        uint64_t delay = next_rand(s) % (ceiling + 1);
        uint64_t at = uv_now(ag->loop) + delay;
        if (at > s->retry_at)
            s->retry_at = at;
        if (s->failures == 1 || s->failures % 10 == 0)
            vt_warn("shipper: push failed: %s: %s (retrying, %u consecutive failures)",
                    vt_grpc_status_name(status), message, s->failures);
    } else {
        set_aside(s, b, status, message);
        b->state = BATCH_DONE;
        e->done++;
    }
    advance(s);
    pump(s);
}

static void on_retry(uv_timer_t *t)
{
    pump(t->data);
}

static void on_built(struct agent *ag, struct window *w, uint8_t **batches, size_t *lens,
                     char **ids, uint32_t n, uint64_t records, int status)
{
    struct shipper *s = ag->shipper;
    w->building = false;
    if (!s) { /* shut down while building: the spool keeps the window */
        for (uint32_t i = 0; i < n; i++) {
            free(batches[i]);
            free(ids[i]);
        }
        free(batches);
        free(lens);
        free(ids);
        return;
    }
    struct entry *e = s->head;
    while (e && e->w != w)
        e = e->next;
    assert(e);
    if (status) {
        vt_error("shipper: building window %lld failed: %s; retrying", (long long)w->start_ms,
                 strerror(-status));
        e->state = ENTRY_WAITING;
        uint64_t at = uv_now(ag->loop) + 1000;
        if (at > s->retry_at)
            s->retry_at = at;
        pump(s);
        return;
    }
    vt_counter_inc(ag->m.windows_built);
    e->b = calloc(n ? n : 1, sizeof *e->b);
    if (!e->b)
        abort();
    for (uint32_t i = 0; i < n; i++)
        e->b[i] = (struct batch){batches[i], lens[i], ids[i], BATCH_PENDING, 0};
    free(batches);
    free(lens);
    free(ids);
    e->n = n;
    e->records = records;
    e->state = ENTRY_READY;
    advance(s);
    pump(s);
}

static void pump(struct shipper *s)
{
    struct agent *ag = s->ag;
    if (!s->client)
        return;
    uint32_t ahead = 0;
    for (struct entry *e = s->head; e && ahead < BUILD_AHEAD; e = e->next, ahead++)
        if (e->state == ENTRY_WAITING && uv_now(ag->loop) >= s->retry_at) {
            e->state = ENTRY_BUILDING;
            e->w->building = true;
            spool_build(ag, e->w, on_built);
        }
    uint64_t now = uv_now(ag->loop);
    if (now < s->retry_at) {
        uv_timer_start(&s->retry_timer, on_retry, s->retry_at - now, 0);
        return;
    }
    for (struct entry *e = s->head; e && e->state == ENTRY_READY; e = e->next)
        for (uint32_t i = 0; i < e->n; i++) {
            if (s->in_flight >= (uint32_t)ag->cfg.max_in_flight)
                return;
            struct batch *b = &e->b[i];
            if (b->state != BATCH_PENDING)
                continue;
            struct call_ctx *c = malloc(sizeof *c);
            if (!c)
                return;
            *c = (struct call_ctx){s, e, i};
            int rc = vt_grpc_call(s->client, "/vitals.v1.Collector/Push", b->buf, b->len,
                                  (uint64_t)ag->cfg.ship_timeout_ms, on_reply, c);
            if (rc) {
                free(c);
                return;
            }
            b->state = BATCH_IN_FLIGHT;
            b->sent_at = now;
            s->in_flight++;
            vt_counter_inc(ag->m.batches_sent);
            vt_counter_add(ag->m.bytes_shipped, b->len);
        }
}

void shipper_enqueue(struct agent *ag, struct window *w)
{
    struct shipper *s = ag->shipper;
    if (!s)
        return; /* shutting down: the window stays in the spool for the next start */
    struct entry *e = calloc(1, sizeof *e);
    if (!e)
        abort();
    e->w = w;
    *s->tail = e;
    s->tail = &e->next;
    pump(s);
}

int shipper_start(struct agent *ag)
{
    struct shipper *s = calloc(1, sizeof *s);
    if (!s)
        return -ENOMEM;
    ag->shipper = s;
    s->ag = ag;
    s->tail = &s->head;
    s->rng = uv_hrtime() | 1;
    uv_timer_init(ag->loop, &s->retry_timer);
    s->retry_timer.data = s;
    if (!ag->cfg.scorer || !*ag->cfg.scorer) {
        vt_warn("shipper: no --scorer given: records stay in the spool and are not shipped");
        return 0;
    }
    int rc = load_token(s);
    if (rc)
        return rc;
    struct vt_grpc_md md[1] = {{"authorization", s->auth}};
    struct vt_grpc_client_opts o = {
        .target = ag->cfg.scorer,
        .metadata = md,
        .n_metadata = s->auth ? 1 : 0,
        .compression = VT_GRPC_ENC_ZSTD,
        .compression_level = (int)ag->cfg.ship_compression_level,
        .max_concurrent_calls = (uint32_t)ag->cfg.max_in_flight,
        .user_agent = "vitals-agent/" VITALS_VERSION,
    };
    rc = vt_grpc_client_init(ag->loop, &s->client, &o);
    if (rc) {
        vt_error("shipper: bad --scorer '%s': %s", ag->cfg.scorer, uv_strerror(rc));
        return rc;
    }
    return 0;
}

bool shipper_drained(const struct agent *ag)
{
    const struct shipper *s = ag->shipper;
    return !s || !s->head;
}

double shipper_lag_s(const struct agent *ag)
{
    /* Age of the oldest line not yet shipped: the start of its window is
     * close enough (within one window) and costs nothing to know. */
    if (!ag->windows)
        return 0;
    double lag = (double)(agent_now_ms((struct agent *)ag) - ag->windows->start_ms) / 1e3;
    return lag > 0 ? lag : 0;
}

static void on_timer_closed(uv_handle_t *h)
{
    struct shipper *s = h->data;
    while (s->head) {
        struct entry *e = s->head;
        s->head = e->next;
        free_entry(e);
    }
    free(s->auth);
    free(s);
}

static void on_client_closed(vt_grpc_client_t *cli, void *data)
{
    struct shipper *s = data;
    (void)cli;
    uv_close((uv_handle_t *)&s->retry_timer, on_timer_closed);
}

void shipper_close(struct agent *ag)
{
    struct shipper *s = ag->shipper;
    if (!s)
        return;
    ag->shipper = NULL;
    s->closing = true;
    uv_timer_stop(&s->retry_timer);
    /* Pending calls come back CANCELLED (on_reply ignores them) before the
     * client's close callback, which then releases everything. */
    if (s->client)
        vt_grpc_client_close(s->client, on_client_closed, s);
    else
        uv_close((uv_handle_t *)&s->retry_timer, on_timer_closed);
}
