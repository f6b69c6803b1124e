/*
 * spool.c - the agent's side of the segment log: lines are gathered into
 * frames on the loop, and frames are appended, synced and checkpointed on a
 * libuv worker thread, one job at a time, so the loop never waits on the
 * disk. A second serial job queue builds the batches of closed windows
 * (packing live aggregates, or rebuilding cold windows from the spool with a
 * reader, which the segment log allows concurrently with the appender).
 *
 * A frame is sealed when it reaches frame_bytes, when frame_interval_ms has
 * passed since its first line, when a client asks for a sync, and when the
 * window changes (a frame never spans two windows). Frame payload: one line
 * per spool entry, '\n'-terminated: an accepted record as received, "!reason
 * service" for a rejected one (data quality survives a replay), "#seal" to
 * close a window early.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include "agent.h"
#include "log.h"

enum op_kind { OP_APPEND, OP_SYNC, OP_CHECKPOINT };
#define NOT_RUN 1 /* op->status of an op skipped after a failed append */

struct op {
    struct op *next;
    enum op_kind kind;
    struct frame *frame; /* OP_APPEND */
    uint64_t seq;        /* OP_CHECKPOINT: position; OP_APPEND: first_seq result */
    int status;
};

struct waiter {
    struct waiter *next;
    uint64_t frame_id;
    spool_sync_cb cb;
    void *data;
};

struct build {
    struct build *next;
    struct window *w;
    spool_built_cb done;
    uint8_t **batches;
    size_t *lens;
    char **ids;
    uint32_t n;
    uint64_t records;
    int status;
};

struct spool {
    struct agent *ag;
    struct frame *open;
    uint64_t next_frame_id;     /* id of the next frame to open */
    uint64_t appended_id;       /* every frame with id <= this is appended */
    uint64_t pending_bytes;     /* sealed, not yet appended */
    struct op *ops, **ops_tail; /* waiting for the worker */
    struct op *running;         /* owned by the worker while io_busy */
    bool io_busy, dirty, paused;
    vt_seglog_stats stats, worker_stats; /* snapshot for the loop / taken by the worker */
    uv_work_t io_work;
    struct waiter *waiters, **waiters_tail;
    struct build *builds, **builds_tail, *building;
    uv_work_t build_work;
    struct vt_record_decoder *build_decoder; /* worker-owned */
    _Atomic uint64_t checkpoint;             /* last saved: lines below it are shipped */
    uv_timer_t frame_timer, sync_timer, retry_timer;
    int closing_handles;
};

static void start_io(struct spool *sp);
static void start_build(struct spool *sp);

/* --- the io queue ----------------------------------------------------------- */

static void io_work(uv_work_t *req)
{
    struct spool *sp = req->data;
    vt_seglog *log = sp->ag->log;
    bool failed = false;
    for (struct op *op = sp->running; op; op = op->next) {
        if (failed) {
            op->status = NOT_RUN; /* keep the order: nothing passes a failed append */
            continue;
        }
        switch (op->kind) {
        case OP_APPEND:
            op->status = vt_seglog_append(log, op->frame->buf, op->frame->len, op->frame->lines,
                                          op->frame->arrival_ms, &op->seq);
            failed = op->status != 0;
            break;
        case OP_SYNC:
            op->status = vt_seglog_sync(log);
            break;
        case OP_CHECKPOINT:
            /* The data first: a checkpoint must never be ahead of the spool
             * on disk, or a power loss would let new lines reuse numbers
             * that replay then skips. */
            op->status = vt_seglog_sync(log);
            if (op->status == 0)
                op->status = vt_seglog_checkpoint_save(log, "shipper", op->seq);
            if (op->status == 0)
                atomic_store(&sp->checkpoint, op->seq);
            if (op->status == 0) {
                int n = vt_seglog_trim(log, op->seq);
                op->status = n < 0 ? n : 0;
            }
            break;
        }
    }
    vt_seglog_stats_get(log, &sp->worker_stats);
}

static void free_frame(struct frame *f)
{
    free(f->buf);
    free(f);
}

static void notify_waiters(struct spool *sp, int status)
{
    while (sp->waiters && sp->waiters->frame_id <= sp->appended_id) {
        struct waiter *w = sp->waiters;
        sp->waiters = w->next;
        if (!sp->waiters)
            sp->waiters_tail = &sp->waiters;
        w->cb(w->data, status);
        free(w);
    }
}

static void on_retry(uv_timer_t *t)
{
    start_io(t->data);
}

static void io_done(uv_work_t *req, int uvstatus)
{
    struct spool *sp = req->data;
    struct agent *ag = sp->ag;
    struct op *failed = NULL, **failed_tail = &failed;
    sp->io_busy = false;
    sp->stats = sp->worker_stats;
    for (struct op *op = sp->running, *next; op; op = next) {
        next = op->next;
        if (op->status == NOT_RUN || uvstatus != 0) {
            op->next = NULL;
            *failed_tail = op;
            failed_tail = &op->next;
            continue;
        }
        if (op->kind == OP_APPEND) {
            struct frame *f = op->frame;
            if (op->status == 0) {
                vt_counter_inc(ag->m.frames);
                sp->pending_bytes -= f->len;
                sp->appended_id = f->id;
                sp->dirty = true;
                window_frame_appended(f->window, op->seq, f->lines);
                free_frame(f);
                free(op);
            } else {
                /* Keep the frame and its order: retried after a pause. */
                vt_counter_inc(ag->m.spool_write_errors);
                vt_error("spool: append failed: %s; retrying in 1 s", strerror(-op->status));
                op->next = NULL;
                *failed_tail = op;
                failed_tail = &op->next;
            }
            continue;
        }
        if (op->status != 0)
            vt_warn("spool: %s failed: %s", op->kind == OP_SYNC ? "fsync" : "checkpoint",
                    strerror(-op->status));
        free(op);
    }
    sp->running = NULL;
    if (failed) {
        /* Failed appends go back in front of everything queued since. */
        *failed_tail = sp->ops;
        sp->ops = failed;
        if (!*failed_tail)
            sp->ops_tail = failed_tail;
        uv_timer_start(&sp->retry_timer, on_retry, 1000, 0);
    }
    notify_waiters(sp, 0);
    if (sp->paused && sp->pending_bytes < (uint64_t)ag->cfg.max_pending_bytes / 2) {
        sp->paused = false;
        ingest_pause(ag, false);
    }
    window_tick(ag, agent_now_ms(ag), ag->stopping);
    if (!failed)
        start_io(sp);
}

static void start_io(struct spool *sp)
{
    if (sp->io_busy || !sp->ops || uv_is_active((uv_handle_t *)&sp->retry_timer))
        return;
    sp->running = sp->ops;
    sp->ops = NULL;
    sp->ops_tail = &sp->ops;
    sp->io_busy = true;
    sp->io_work.data = sp;
    uv_queue_work(sp->ag->loop, &sp->io_work, io_work, io_done);
}

static void push_op(struct spool *sp, struct op *op)
{
    op->next = NULL;
    *sp->ops_tail = op;
    sp->ops_tail = &op->next;
    start_io(sp);
}

/* --- frames --------------------------------------------------------------- */

void spool_seal_frame(struct agent *ag)
{
    struct spool *sp = ag->spool;
    struct frame *f = sp->open;
    if (!f)
        return;
    sp->open = NULL;
    uv_timer_stop(&sp->frame_timer);
    struct op *op = calloc(1, sizeof *op);
    if (!op) {
        vt_error("spool: out of memory sealing a frame");
        abort(); /* losing an accepted frame silently is worse */
    }
    op->kind = OP_APPEND;
    op->frame = f;
    sp->pending_bytes += f->len;
    if (sp->pending_bytes > (uint64_t)ag->cfg.max_pending_bytes && !sp->paused) {
        sp->paused = true;
        ingest_pause(ag, true);
    }
    push_op(sp, op);
}

static void on_frame_timer(uv_timer_t *t)
{
    struct spool *sp = t->data;
    spool_seal_frame(sp->ag);
}

struct frame *spool_frame(struct agent *ag, int64_t now_ms)
{
    struct spool *sp = ag->spool;
    struct frame *f = sp->open;
    int64_t wstart = now_ms - now_ms % ag->cfg.window_ms;
    if (f && (f->window->start_ms != wstart || f->window->sealed ||
              f->len >= (size_t)ag->cfg.frame_bytes)) {
        spool_seal_frame(ag);
        f = NULL;
    }
    if (f)
        return f;
    /* Frames start small and grow: a sync cuts most of them early. */
    size_t cap = (size_t)ag->cfg.frame_bytes + 4096 < 64 * 1024 ? (size_t)ag->cfg.frame_bytes + 4096
                                                                 : 64 * 1024;
    f = calloc(1, sizeof *f);
    if (!f || !(f->buf = malloc(cap))) {
        vt_error("spool: out of memory opening a frame");
        abort();
    }
    f->cap = cap;
    f->id = sp->next_frame_id++;
    f->arrival_ms = now_ms;
    f->window = window_get(ag, now_ms);
    f->window->frames_pending++;
    sp->open = f;
    uv_timer_start(&sp->frame_timer, on_frame_timer, (uint64_t)ag->cfg.frame_interval_ms, 0);
    return f;
}

void spool_add_line(struct agent *ag, struct frame *f, const char *line, size_t len)
{
    (void)ag;
    if (f->len + len + 1 > f->cap) {
        size_t cap = f->cap * 2 > f->len + len + 1 ? f->cap * 2 : f->len + len + 1;
        char *b = realloc(f->buf, cap);
        if (!b) {
            vt_error("spool: out of memory growing a frame");
            abort();
        }
        f->buf = b;
        f->cap = cap;
    }
    memcpy(f->buf + f->len, line, len);
    f->buf[f->len + len] = '\n';
    f->len += len + 1;
    f->lines++;
}

void spool_wait(struct agent *ag, spool_sync_cb cb, void *data)
{
    struct spool *sp = ag->spool;
    uint64_t id = sp->open ? sp->open->id : sp->next_frame_id - 1;
    spool_seal_frame(ag);
    if (id <= sp->appended_id) {
        cb(data, 0);
        return;
    }
    struct waiter *w = malloc(sizeof *w);
    if (!w) {
        cb(data, -ENOMEM);
        return;
    }
    *w = (struct waiter){NULL, id, cb, data};
    *sp->waiters_tail = w;
    sp->waiters_tail = &w->next;
}

void spool_seal_window(struct agent *ag)
{
    struct frame *f = spool_frame(ag, agent_now_ms(ag));
    spool_add_line(ag, f, "#seal", 5);
    f->window->sealed = true;
    spool_seal_frame(ag);
}

void spool_checkpoint(struct agent *ag, uint64_t seq)
{
    struct op *op = calloc(1, sizeof *op);
    if (!op)
        return; /* the next ack checkpoints further; replay covers the gap */
    op->kind = OP_CHECKPOINT;
    op->seq = seq;
    push_op(ag->spool, op);
}

static void on_sync_timer(uv_timer_t *t)
{
    struct spool *sp = t->data;
    if (!sp->dirty)
        return;
    sp->dirty = false;
    struct op *op = calloc(1, sizeof *op);
    if (op) {
        op->kind = OP_SYNC;
        push_op(sp, op);
    }
}

uint64_t spool_pending_bytes(const struct agent *ag)
{
    return ag->spool->pending_bytes + (ag->spool->open ? ag->spool->open->len : 0);
}

void spool_stats(const struct agent *ag, vt_seglog_stats *out)
{
    *out = ag->spool->stats;
}

bool spool_idle(const struct agent *ag)
{
    const struct spool *sp = ag->spool;
    return !sp->open && !sp->ops && !sp->io_busy && !sp->builds && !sp->building;
}

/* --- builds ------------------------------------------------------------------ */

static void build_work(uv_work_t *req)
{
    struct spool *sp = req->data;
    struct build *b = sp->building;
    struct window *w = b->w;
    struct agent *ag = sp->ag;
    if (!w->live) {
        /* Rebuild from the spool: the frames of [first_seq, end_seq). */
        if (!w->series.slots && vt_series_table_init(&w->series, 0) != 0) {
            b->status = -ENOMEM;
            return;
        }
        vt_seglog_reader *r;
        b->status = vt_seglog_reader_open(ag->log, w->first_seq, &r);
        if (b->status)
            return;
        vt_seglog_frame fr;
        int rc;
        while ((rc = vt_seglog_reader_next(r, &fr)) == 1 && fr.first_seq < w->end_seq) {
            uint64_t skip = fr.first_seq < w->first_seq ? w->first_seq - fr.first_seq : 0;
            window_replay_payload(sp->build_decoder, w, fr.arrival_ms, (const char *)fr.data,
                                  fr.len, (uint32_t)ag->cfg.max_series, skip);
        }
        vt_seglog_reader_close(r);
        if (rc < 0) {
            /* A partial window must not ship under the whole window's id:
             * drop what was folded and let the shipper retry the build. */
            window_discard(w);
            b->status = rc;
            return;
        }
        w->live = true;
    }
    b->status = window_pack(&ag->cfg, ag->ship_id, w, &b->batches, &b->lens, &b->ids,
                            &b->n, &b->records);
}

static void build_done(uv_work_t *req, int uvstatus)
{
    struct spool *sp = req->data;
    struct build *b = sp->building;
    sp->building = NULL;
    if (uvstatus)
        b->status = uvstatus;
    b->done(sp->ag, b->w, b->batches, b->lens, b->ids, b->n, b->records, b->status);
    free(b);
    start_build(sp);
}

static void start_build(struct spool *sp)
{
    if (sp->building || !sp->builds)
        return;
    sp->building = sp->builds;
    sp->builds = sp->building->next;
    if (!sp->builds)
        sp->builds_tail = &sp->builds;
    sp->build_work.data = sp;
    uv_queue_work(sp->ag->loop, &sp->build_work, build_work, build_done);
}

void spool_build(struct agent *ag, struct window *w, spool_built_cb done)
{
    struct spool *sp = ag->spool;
    struct build *b = calloc(1, sizeof *b);
    if (!b) {
        done(ag, w, NULL, NULL, NULL, 0, 0, -ENOMEM);
        return;
    }
    b->w = w;
    b->done = done;
    *sp->builds_tail = b;
    sp->builds_tail = &b->next;
    start_build(sp);
}

/* --- open, replay, close ------------------------------------------------------ */

static void on_drop(void *ud, uint64_t from, uint64_t to, uint64_t records)
{
    struct agent *ag = ud; /* worker thread: counters and the checkpoint are atomic */
    uint64_t ckpt = atomic_load(&ag->spool->checkpoint);
    /* Lines below the checkpoint had shipped already: only the rest is lost
     * (exact unless the segment had gaps, which only corruption makes). */
    uint64_t lost = to <= ckpt ? 0 : to - (from > ckpt ? from : ckpt);
    if (lost > records)
        lost = records;
    vt_counter_add(ag->m.spool_dropped, lost);
    vt_warn("spool: full (spool-max-bytes); dropped the oldest segment, lines %llu..%llu "
            "(%llu not yet shipped)", (unsigned long long)from, (unsigned long long)to,
            (unsigned long long)lost);
}

/* The spool's incarnation: a random id made with the spool and renewed when
 * line numbers could repeat (a power loss cut the tail below the
 * checkpoint). Batch ids carry it, so the scorer never mistakes new lines
 * for old ones it has seen under the same numbers. */
static int incarnation(struct agent *ag, bool renew)
{
    char path[4096], tmp[4200], id[32] = "";
    snprintf(path, sizeof path, "%s/incarnation", ag->cfg.spool_dir);
    FILE *f = renew ? NULL : fopen(path, "r");
    if (f) {
        if (!fgets(id, sizeof id, f))
            id[0] = 0;
        fclose(f);
        id[strcspn(id, "\n")] = 0;
    }
    if (strlen(id) != 16) {
        uint64_t r;
        if (getrandom(&r, sizeof r, 0) != sizeof r)
            r = (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32);
        snprintf(id, sizeof id, "%016llx", (unsigned long long)r);
        snprintf(tmp, sizeof tmp, "%s.tmp", path);
        int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0640);
        if (fd < 0 || write(fd, id, 16) != 16 || fsync(fd) != 0 || rename(tmp, path) != 0) {
            if (fd >= 0)
                close(fd);
            return -errno;
        }
        close(fd);
        int dfd = open(ag->cfg.spool_dir, O_RDONLY | O_DIRECTORY);
        if (dfd >= 0) {
            fsync(dfd);
            close(dfd);
        }
    }
    snprintf(ag->ship_id, sizeof ag->ship_id, "%s.%.8s", ag->cfg.agent_id, id);
    return 0;
}

/* Rebuild window metadata (not aggregates) from every frame past the
 * checkpoint: those windows are COLD and get rebuilt when they ship. */
static int replay(struct agent *ag, uint64_t from)
{
    vt_seglog_reader *r;
    int rc = vt_seglog_reader_open(ag->log, from, &r);
    if (rc)
        return rc;
    vt_seglog_frame fr;
    uint64_t frames = 0, lines = 0;
    while ((rc = vt_seglog_reader_next(r, &fr)) == 1) {
        struct window *w = window_get(ag, fr.arrival_ms);
        if (w->live && w->lines == 0 && w->frames_pending == 0)
            w->live = false; /* created by replay: aggregates come from a rebuild */
        uint64_t skip = fr.first_seq < from ? from - fr.first_seq : 0;
        const char *p = (const char *)fr.data, *end = p + fr.len, *line;
        size_t len;
        for (uint64_t i = 0; p < end; i++) {
            enum spool_line kind = spool_line_next(&p, end, &line, &len);
            if (i < skip)
                continue;
            w->sealed |= kind == SPOOL_LINE_SEAL;
            w->invalid += kind == SPOOL_LINE_INVALID;
            w->records += kind == SPOOL_LINE_RECORD;
        }
        uint64_t first = fr.first_seq + skip;
        if (w->lines == 0)
            w->first_seq = first;
        w->end_seq = fr.first_seq + fr.records;
        w->lines += fr.records - skip;
        frames++;
        lines += fr.records - skip;
    }
    vt_seglog_reader_close(r);
    if (frames)
        vt_info("spool: replayed %llu frames (%llu lines) not yet shipped",
                (unsigned long long)frames, (unsigned long long)lines);
    return rc < 0 ? rc : 0;
}

int spool_open(struct agent *ag)
{
    struct spool *sp = calloc(1, sizeof *sp);
    if (!sp)
        return -ENOMEM;
    ag->spool = sp;
    sp->ag = ag;
    sp->next_frame_id = 1;
    sp->ops_tail = &sp->ops;
    sp->waiters_tail = &sp->waiters;
    sp->builds_tail = &sp->builds;
    sp->build_decoder = vt_record_decoder_new(vt_record_decoder_limits(ag->decoder),
                                              ag->cfg.service);
    if (!sp->build_decoder)
        return -ENOMEM;
    vt_seglog_opts o = {
        .dir = ag->cfg.spool_dir,
        .segment_bytes = (uint64_t)ag->cfg.segment_bytes,
        .max_bytes = (uint64_t)ag->cfg.spool_max_bytes,
        .compression_level = (int)ag->cfg.compression_level,
        .fsync = (vt_seglog_fsync)ag->cfg.fsync,
        .fsync_interval_ms = (uint32_t)ag->cfg.fsync_interval_ms,
        .on_drop = on_drop,
        .on_drop_ud = ag,
    };
    vt_seglog_recovery rec;
    int rc = vt_seglog_open(&ag->log, &o, &rec);
    if (rc) {
        vt_error("spool: cannot open %s: %s", ag->cfg.spool_dir, strerror(-rc));
        return rc;
    }
    if (rec.corrupt_frames || rec.truncated_bytes)
        vt_warn("spool: recovered %s: %llu corrupt frames skipped, %llu torn bytes cut",
                ag->cfg.spool_dir, (unsigned long long)rec.corrupt_frames,
                (unsigned long long)rec.truncated_bytes);
    uint64_t from;
    rc = vt_seglog_checkpoint_load(ag->log, "shipper", &from);
    if (rc == -ENOENT)
        from = rec.first_seq;
    else if (rc) {
        vt_warn("spool: shipper checkpoint unreadable (%s); replaying everything",
                strerror(-rc));
        from = rec.first_seq;
    }
    bool renew = false;
    if (from > rec.next_seq) {
        /* The checkpoint is past the end of the spool: its tail was lost
         * (power loss with --fsync none|interval). Start again at the end,
         * under a new incarnation so that reused line numbers stay unique. */
        vt_warn("spool: shipper checkpoint %llu is past the end of the spool (%llu): the tail "
                "was lost; continuing under a new incarnation", (unsigned long long)from,
                (unsigned long long)rec.next_seq);
        from = rec.next_seq;
        renew = true;
    }
    atomic_store(&sp->checkpoint, from);
    if ((rc = incarnation(ag, renew)) != 0) {
        vt_error("spool: cannot write %s/incarnation: %s", ag->cfg.spool_dir, strerror(-rc));
        return rc;
    }
    if (renew && (rc = vt_seglog_checkpoint_save(ag->log, "shipper", from)) != 0)
        return rc;
    rc = replay(ag, from);
    if (rc)
        return rc;
    vt_seglog_stats_get(ag->log, &sp->stats);
    uv_timer_init(ag->loop, &sp->frame_timer);
    uv_timer_init(ag->loop, &sp->sync_timer);
    uv_timer_init(ag->loop, &sp->retry_timer);
    sp->frame_timer.data = sp->sync_timer.data = sp->retry_timer.data = sp;
    if (ag->cfg.fsync == VT_SEGLOG_FSYNC_INTERVAL)
        uv_timer_start(&sp->sync_timer, on_sync_timer, (uint64_t)ag->cfg.fsync_interval_ms,
                       (uint64_t)ag->cfg.fsync_interval_ms);
    return 0;
}

static void on_handle_closed(uv_handle_t *h)
{
    (void)h;
}

void spool_close(struct agent *ag)
{
    struct spool *sp = ag->spool;
    if (!sp)
        return;
    if (sp->frame_timer.loop) {
        uv_close((uv_handle_t *)&sp->frame_timer, on_handle_closed);
        uv_close((uv_handle_t *)&sp->sync_timer, on_handle_closed);
        uv_close((uv_handle_t *)&sp->retry_timer, on_handle_closed);
    }
}

void spool_free(struct agent *ag)
{
    struct spool *sp = ag->spool;
    if (!sp)
        return;
    while (sp->waiters) {
        struct waiter *w = sp->waiters;
        sp->waiters = w->next;
        w->cb(w->data, -ECANCELED);
        free(w);
    }
    vt_record_decoder_free(sp->build_decoder);
    vt_seglog_close(ag->log);
    ag->log = NULL;
    free(sp);
    ag->spool = NULL;
}
