/*
 * ingest.c - the two Unix sockets applications write to.
 *
 * ingest.sock (stream): NDJSON, any number of clients; each connection has
 * one buffer holding at most one partial line, so an idle or slow client
 * costs a few KiB and nothing else. A line longer than max_record_bytes is
 * rejected as too_large and skipped up to its newline; a client that
 * disconnects mid-line loses only that line. {"sync": N} is answered with
 * {"synced": N} once everything the connection sent before it is in the
 * spool (answers leave in order, since the spool completes waits in order).
 *
 * ingest.dgram (datagram): one record per datagram, fire-and-forget, read
 * with recvmmsg in bursts from a uv_poll watcher (libuv has no Unix datagram
 * handle). When the spool pushes back, stream reading stops and datagrams
 * wait in the kernel buffer: the clients' sends stay non-blocking.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "agent.h"
#include "log.h"

#define READ_CHUNK (64 * 1024)
#define DGRAM_BATCH 32
#define DGRAM_BURST 1024 /* datagrams per poll callback, for fairness */

struct conn {
    uv_pipe_t pipe;
    struct ingest *in;
    struct conn *prev, *next;
    char *buf;
    size_t len, cap;
    bool discarding; /* skipping the rest of an over-long line */
    bool closed;
    int refs;        /* the handle + one per pending sync */
};

struct ingest {
    struct agent *ag;
    uv_pipe_t server;
    bool server_open;
    int dgram_fd;
    uv_poll_t dgram_poll;
    bool dgram_open, paused;
    struct conn *conns;
    uint32_t n_conns;
    char *dgram_bufs;
    struct mmsghdr msgs[DGRAM_BATCH];
    struct iovec iov[DGRAM_BATCH];
    char stream_path[sizeof(((struct sockaddr_un *)0)->sun_path)];
    char dgram_path[sizeof(((struct sockaddr_un *)0)->sun_path)];
};

/* --- one line -------------------------------------------------------------- */

struct sync_reply {
    struct conn *c;
    uint64_t n;
    uv_write_t req;
    char text[48];
};

static void conn_unref(struct conn *c)
{
    if (--c->refs == 0) {
        free(c->buf);
        free(c);
    }
}

static void on_sync_written(uv_write_t *req, int status)
{
    struct sync_reply *r = req->data;
    (void)status;
    conn_unref(r->c);
    free(r);
}

static void on_synced(void *data, int status)
{
    struct sync_reply *r = data;
    if (status != 0 || r->c->closed) {
        conn_unref(r->c);
        free(r);
        return;
    }
    int n = snprintf(r->text, sizeof r->text, "{\"synced\":%llu}\n", (unsigned long long)r->n);
    uv_buf_t b = uv_buf_init(r->text, (unsigned)n);
    r->req.data = r;
    if (uv_write(&r->req, (uv_stream_t *)&r->c->pipe, &b, 1, on_sync_written) != 0) {
        conn_unref(r->c);
        free(r);
    }
}

void ingest_reject(struct agent *ag, enum vt_record_reject reason, const struct vt_record *hint)
{
    vt_counter_inc(ag->m.rejected[reason]);
    int64_t now = agent_now_ms(ag);
    struct frame *f = spool_frame(ag, now);
    /* "!reason service": the service the record claimed, else ours. Newlines
     * and spaces are flattened so the spool line stays one token. */
    char line[320];
    const char *svc = ag->cfg.service && *ag->cfg.service ? ag->cfg.service : "unknown";
    size_t slen = strlen(svc);
    if (hint && (hint->present & VT_FIELD_BIT(VT_FIELD_SERVICE)) && hint->service.len) {
        svc = hint->service.ptr;
        slen = hint->service.len;
    }
    if (slen > 256)
        slen = 256;
    int n = snprintf(line, sizeof line, "!%s ", vt_record_reject_name(reason));
    char *s = line + n;
    for (size_t i = 0; i < slen; i++)
        s[i] = svc[i] == '\n' || svc[i] == '\r' ? '_' : svc[i];
    spool_add_line(ag, f, line, (size_t)n + slen);
    window_add_invalid(ag, f->window, reason, s, slen);
}

int ingest_record(struct agent *ag, struct vt_record *rec)
{
    /* The canonical line is what a replay will decode: fold the record as
     * that decode will see it (arrival and default ts from the frame). */
    char *line = ag->line_buf;
    size_t cap = (size_t)ag->cfg.max_record_bytes + 1024;
    vt_counter_inc(ag->m.received);
    struct frame *f = spool_frame(ag, agent_now_ms(ag));
    rec->arrival_ms = f->arrival_ms;
    if (!(rec->present & VT_FIELD_BIT(VT_FIELD_TS)))
        rec->ts_ms = f->arrival_ms;
    int n = vt_record_format_json(rec, line, cap);
    if (n < 0 || n > ag->cfg.max_record_bytes) {
        ingest_reject(ag, VT_REJECT_TOO_LARGE, rec);
        return -E2BIG;
    }
    spool_add_line(ag, f, line, (size_t)n);
    window_add_record(ag, f->window, rec);
    vt_counter_inc(ag->m.accepted);
    return 0;
}

static void handle_line(struct agent *ag, struct conn *c, const char *line, size_t len)
{
    struct vt_record rec;
    int64_t now = agent_now_ms(ag);
    while (len && (line[len - 1] == '\r' || line[len - 1] == ' ' || line[len - 1] == '\t'))
        len--;
    switch (vt_record_decode(ag->decoder, line, len, now, &rec)) {
    case VT_RECORD_DATA: {
        vt_counter_inc(ag->m.received);
        struct frame *f = spool_frame(ag, now);
        /* Replays decode with the frame's arrival time: use it here too. */
        rec.arrival_ms = f->arrival_ms;
        if (!(rec.present & VT_FIELD_BIT(VT_FIELD_TS)))
            rec.ts_ms = f->arrival_ms;
        spool_add_line(ag, f, line, len);
        window_add_record(ag, f->window, &rec);
        vt_counter_inc(ag->m.accepted);
        break;
    }
    case VT_RECORD_REJECTED:
        vt_counter_inc(ag->m.received);
        ingest_reject(ag, rec.reject, &rec);
        break;
    case VT_RECORD_SYNC:
        vt_counter_inc(ag->m.syncs);
        if (c) {
            struct sync_reply *r = calloc(1, sizeof *r);
            if (!r)
                break;
            r->c = c;
            r->n = rec.sync;
            c->refs++;
            spool_wait(ag, on_synced, r);
        }
        break;
    case VT_RECORD_EMPTY:
        break;
    }
}

/* --- stream connections -------------------------------------------------- */

static void on_conn_closed(uv_handle_t *h)
{
    struct conn *c = h->data;
    conn_unref(c);
}

static void conn_close(struct conn *c)
{
    if (c->closed)
        return;
    c->closed = true;
    struct ingest *in = c->in;
    if (c->prev)
        c->prev->next = c->next;
    else
        in->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    in->n_conns--;
    uv_close((uv_handle_t *)&c->pipe, on_conn_closed);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *b)
{
    struct conn *c = h->data;
    (void)suggested;
    if (c->cap - c->len < READ_CHUNK) {
        size_t cap = c->len + READ_CHUNK;
        char *nb = realloc(c->buf, cap);
        if (!nb) {
            *b = uv_buf_init(NULL, 0);
            return;
        }
        c->buf = nb;
        c->cap = cap;
    }
    *b = uv_buf_init(c->buf + c->len, (unsigned)(c->cap - c->len));
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *b)
{
    struct conn *c = s->data;
    struct agent *ag = c->in->ag;
    (void)b;
    if (nread < 0) {
        /* EOF or error: a trailing line without '\n' is incomplete and dropped. */
        conn_close(c);
        return;
    }
    vt_counter_add(ag->m.bytes_read, (uint64_t)nread);
    size_t scan = c->len, start = 0;
    c->len += (size_t)nread;
    size_t max = (size_t)ag->cfg.max_record_bytes;
    for (;;) {
        char *nl = memchr(c->buf + scan, '\n', c->len - scan);
        if (!nl)
            break;
        size_t end = (size_t)(nl - c->buf);
        if (c->discarding)
            c->discarding = false; /* the over-long line ends here */
        else if (end - start > max) {
            vt_counter_inc(ag->m.received);
            ingest_reject(ag, VT_REJECT_TOO_LARGE, NULL);
        } else
            handle_line(ag, c, c->buf + start, end - start);
        start = scan = end + 1;
    }
    /* Keep the partial line; past the limit it can only be rejected. */
    if (c->len - start > max && !c->discarding) {
        vt_counter_inc(ag->m.received);
        ingest_reject(ag, VT_REJECT_TOO_LARGE, NULL);
        c->discarding = true;
    }
    if (c->discarding)
        start = c->len;
    memmove(c->buf, c->buf + start, c->len - start);
    c->len -= start;
    if (c->cap > 4 * READ_CHUNK && c->len < READ_CHUNK) {
        /* Give back what one long line made us grow. */
        char *nb = realloc(c->buf, 2 * READ_CHUNK);
        if (nb) {
            c->buf = nb;
            c->cap = 2 * READ_CHUNK;
        }
    }
}

static void on_connection(uv_stream_t *server, int status)
{
    struct ingest *in = server->data;
    struct agent *ag = in->ag;
    if (status < 0)
        return;
    struct conn *c = calloc(1, sizeof *c);
    if (!c)
        return;
    uv_pipe_init(ag->loop, &c->pipe, 0);
    c->pipe.data = c;
    c->in = in;
    c->refs = 1;
    if (uv_accept(server, (uv_stream_t *)&c->pipe) != 0) {
        c->closed = true;
        uv_close((uv_handle_t *)&c->pipe, on_conn_closed);
        return;
    }
    c->next = in->conns;
    if (in->conns)
        in->conns->prev = c;
    in->conns = c;
    in->n_conns++;
    vt_counter_inc(ag->m.connections);
    if (in->n_conns > (uint32_t)ag->cfg.max_connections) {
        vt_warn("ingest: more than %lld connections; closing the newest",
                (long long)ag->cfg.max_connections);
        conn_close(c);
        return;
    }
    if (!in->paused)
        uv_read_start((uv_stream_t *)&c->pipe, on_alloc, on_read);
}

/* --- datagrams --------------------------------------------------------------- */

static void on_dgram(uv_poll_t *p, int status, int events)
{
    struct ingest *in = p->data;
    struct agent *ag = in->ag;
    (void)events;
    if (status < 0)
        return;
    size_t size = (size_t)ag->cfg.max_record_bytes + 1;
    for (int burst = 0; burst < DGRAM_BURST && !in->paused; burst += DGRAM_BATCH) {
        for (int i = 0; i < DGRAM_BATCH; i++) {
            in->iov[i] = (struct iovec){in->dgram_bufs + (size_t)i * size, size};
            memset(&in->msgs[i].msg_hdr, 0, sizeof in->msgs[i].msg_hdr);
            in->msgs[i].msg_hdr.msg_iov = &in->iov[i];
            in->msgs[i].msg_hdr.msg_iovlen = 1;
        }
        int n = recvmmsg(in->dgram_fd, in->msgs, DGRAM_BATCH, MSG_DONTWAIT, NULL);
        if (n <= 0)
            return;
        for (int i = 0; i < n; i++) {
            size_t len = in->msgs[i].msg_len;
            vt_counter_inc(ag->m.datagrams);
            vt_counter_add(ag->m.bytes_read, len);
            if ((in->msgs[i].msg_hdr.msg_flags & MSG_TRUNC) || len >= size) {
                vt_counter_inc(ag->m.received);
                ingest_reject(ag, VT_REJECT_TOO_LARGE, NULL);
                continue;
            }
            const char *d = in->iov[i].iov_base;
            /* A datagram may end in "\n" or hold several lines: take each. */
            size_t start = 0;
            for (size_t j = 0; j <= len; j++)
                if (j == len || d[j] == '\n') {
                    if (j > start)
                        handle_line(ag, NULL, d + start, j - start);
                    start = j + 1;
                }
        }
        if (n < DGRAM_BATCH)
            return;
    }
}

/* --- start, stop, pause ------------------------------------------------------- */

static int make_dir(const char *dir)
{
    char path[4096];
    snprintf(path, sizeof path, "%s", dir);
    for (char *p = path + 1; *p; p++)
        if (*p == '/') {
            *p = 0;
            mkdir(path, 0755);
            *p = '/';
        }
    if (mkdir(path, 0755) != 0 && errno != EEXIST)
        return -errno;
    return 0;
}

static int sock_path(char *out, size_t cap, const char *dir, const char *name)
{
    int n = snprintf(out, cap, "%s/%s", dir, name);
    return n < 0 || (size_t)n >= cap ? -ENAMETOOLONG : 0;
}

int ingest_start(struct agent *ag)
{
    struct ingest *in = calloc(1, sizeof *in);
    if (!in)
        return -ENOMEM;
    ag->ingest = in;
    in->ag = ag;
    in->dgram_fd = -1;
    int rc = make_dir(ag->cfg.socket_dir);
    if (rc) {
        vt_error("ingest: cannot create --socket-dir %s: %s", ag->cfg.socket_dir, strerror(-rc));
        return rc;
    }
    if ((rc = sock_path(in->stream_path, sizeof in->stream_path, ag->cfg.socket_dir,
                        "ingest.sock")) ||
        (rc = sock_path(in->dgram_path, sizeof in->dgram_path, ag->cfg.socket_dir,
                        "ingest.dgram"))) {
        vt_error("ingest: --socket-dir %s is too long for a Unix socket path", ag->cfg.socket_dir);
        return rc;
    }
    /* A socket file left by a previous run (SIGKILL) is ours to replace. */
    unlink(in->stream_path);
    unlink(in->dgram_path);

    uv_pipe_init(ag->loop, &in->server, 0);
    in->server.data = in;
    in->server_open = true;
    if ((rc = uv_pipe_bind(&in->server, in->stream_path)) ||
        (rc = uv_listen((uv_stream_t *)&in->server, 511, on_connection))) {
        vt_error("ingest: cannot listen on %s: %s", in->stream_path, uv_strerror(rc));
        return rc;
    }
    chmod(in->stream_path, (mode_t)ag->cfg.socket_mode);

    in->dgram_fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    memcpy(sa.sun_path, in->dgram_path, strlen(in->dgram_path) + 1);
    if (in->dgram_fd < 0 || bind(in->dgram_fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        rc = -errno;
        vt_error("ingest: cannot bind %s: %s", in->dgram_path, strerror(errno));
        return rc;
    }
    chmod(in->dgram_path, (mode_t)ag->cfg.socket_mode);
    int rcvbuf = 4 << 20;
    setsockopt(in->dgram_fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
    in->dgram_bufs = malloc(DGRAM_BATCH * ((size_t)ag->cfg.max_record_bytes + 1));
    if (!in->dgram_bufs)
        return -ENOMEM;
    uv_poll_init(ag->loop, &in->dgram_poll, in->dgram_fd);
    in->dgram_poll.data = in;
    in->dgram_open = true;
    uv_poll_start(&in->dgram_poll, UV_READABLE, on_dgram);
    vt_info("ingest: listening on %s and %s", in->stream_path, in->dgram_path);
    return 0;
}

void ingest_pause(struct agent *ag, bool paused)
{
    struct ingest *in = ag->ingest;
    if (!in || in->paused == paused)
        return;
    in->paused = paused;
    if (paused)
        vt_warn("ingest: the spool is behind; pausing reads (clients are not blocked: "
                "datagrams wait in the kernel, streams in their socket buffers)");
    for (struct conn *c = in->conns; c; c = c->next)
        if (paused)
            uv_read_stop((uv_stream_t *)&c->pipe);
        else
            uv_read_start((uv_stream_t *)&c->pipe, on_alloc, on_read);
    if (in->dgram_open) {
        if (paused)
            uv_poll_stop(&in->dgram_poll);
        else
            uv_poll_start(&in->dgram_poll, UV_READABLE, on_dgram);
    }
}

static void on_server_closed(uv_handle_t *h)
{
    (void)h;
}

static void on_poll_closed(uv_handle_t *h)
{
    struct ingest *in = h->data;
    close(in->dgram_fd);
    in->dgram_fd = -1;
}

void ingest_stop(struct agent *ag)
{
    struct ingest *in = ag->ingest;
    if (!in)
        return;
    if (in->server_open) {
        in->server_open = false;
        uv_close((uv_handle_t *)&in->server, on_server_closed);
        unlink(in->stream_path);
    }
    if (in->dgram_open) {
        in->dgram_open = false;
        /* Drain what is already queued in the kernel: it was sent to us. */
        in->paused = false;
        on_dgram(&in->dgram_poll, 0, UV_READABLE);
        uv_close((uv_handle_t *)&in->dgram_poll, on_poll_closed);
        unlink(in->dgram_path);
    } else if (in->dgram_fd >= 0) {
        close(in->dgram_fd);
        in->dgram_fd = -1;
    }
    /* Open streams: read what they already sent, then close. */
    while (in->conns) {
        struct conn *c = in->conns;
        uv_os_fd_t fd;
        if (uv_fileno((uv_handle_t *)&c->pipe, &fd) == 0)
            for (;;) {
                uv_buf_t b;
                on_alloc((uv_handle_t *)&c->pipe, READ_CHUNK, &b);
                ssize_t n = b.len ? recv(fd, b.base, b.len, MSG_DONTWAIT) : -1;
                if (n <= 0)
                    break;
                on_read((uv_stream_t *)&c->pipe, n, &b);
            }
        conn_close(c);
    }
}

void ingest_free(struct agent *ag)
{
    if (ag->ingest) {
        free(ag->ingest->dgram_bufs);
        free(ag->ingest);
        ag->ingest = NULL;
    }
}
