/*
 * vitals_client.c - the non-blocking application client (see vitals_client.h,
 * the contract).
 *
 * Why it is shaped this way: the send path is the application's hot path, so
 * it is at most one sendmsg() with MSG_DONTWAIT|MSG_NOSIGNAL plus a memcpy
 * into a preallocated buffer, under an uncontended mutex. Everything that
 * could wait (connecting, a full socket) turns into "try again on a later
 * call", paced by a doubling backoff, never into a wait.
 *
 * VT_CLIENT_BACKGROUND moves even that one system call off the caller's
 * thread: a send is a memcpy into q under the mutex, and a thread of ours
 * takes q's bytes (a pointer swap into o when o is empty, else a memcpy) and
 * writes o outside the lock with the same non-blocking code. Ownership in
 * that mode: q, st and the thread's flags are under mu; o, io_st and the
 * connection (fd, connecting, backoff, rbuf, sync_seq) belong to the thread
 * alone, which publishes io_st into st under mu (bg_commit).
 *
 * STREAM buffer invariants (checked by assert), for q (and o):
 *   - buf[off, off+len) holds whole records, each ending in '\n', except that
 *     the first one may already be partly written to the current connection
 *     (head_started). Only that first record can be cut by a disconnect. In
 *     background mode q.head_started is always 0 (only o is written).
 *   - st.queued == the number of '\n' in q (and o) once io_st is committed.
 *   - background: q.len + o_held <= cap, so the process holds at most
 *     buffer_bytes of records, as in the default mode, and q always fits
 *     behind a compacted o.
 * Depends on libc only, so that applications can vendor it.
 */
#include "vitals_client.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define DEFAULT_BUFFER (256u * 1024)
#define MIN_BUFFER (4u * 1024)
#define DEFAULT_FLUSH_MS 5
#define MAX_FLUSH_MS 60000

/* A byte queue of NDJSON records (see the invariants above). */
struct wbuf {
    char *buf;
    size_t off, len;
    int head_started;    /* the first record is partly written */
};

struct vt_client {
    pthread_mutex_t mu;
    int locked;          /* use mu */
    int mode;
    int fd;              /* -1: disconnected */
    int connecting;      /* STREAM: connect() returned EINPROGRESS */
    struct sockaddr_un addr;
    socklen_t addrlen;
    int64_t next_try_ns; /* no connect attempt before this (monotonic) */
    int backoff_ms, backoff_initial_ms, backoff_max_ms;
    /* STREAM */
    size_t cap;          /* of q.buf (and o.buf) */
    struct wbuf q;       /* what senders append to (and, by default, write) */
    uint64_t sync_seq;
    char rbuf[256];      /* sync replies */
    size_t rlen;
    vt_client_stats st;
    /* VT_CLIENT_BACKGROUND */
    int bg;
    int64_t flush_ns;
    pthread_t th;
    pthread_cond_t wake;  /* -> the thread: kick, sync_req, stop */
    pthread_cond_t done;  /* <- the thread: a sync finished */
    struct wbuf o;        /* the thread's output buffer */
    size_t o_held;        /* o.len as of the last take/commit (under mu; >= o.len) */
    vt_client_stats io_st; /* the thread's counts not yet in st */
    int kick, stop;
    int wake_sent;        /* q passed half full and the thread was told */
    int bg_connected;     /* as of the thread's last write */
    int sync_req, sync_busy, sync_rc;
    uint64_t sync_gen;
    int64_t sync_deadline;
};

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void lock(vt_client *c)
{
    if (c->locked)
        pthread_mutex_lock(&c->mu);
}

static void unlock(vt_client *c)
{
    if (c->locked)
        pthread_mutex_unlock(&c->mu);
}

/* --- connection ----------------------------------------------------------
 * These take the buffer being written (w) and the counters to update (st):
 * q and st by default; o and io_st on the background thread. */

static void drop_head(struct wbuf *w, vt_client_stats *st)
{
    /* The first record went out in part over a connection that is gone: the
     * agent drops that partial line, so resending the rest would corrupt the
     * next line. Give it up. */
    if (!w->head_started)
        return;
    char *nl = memchr(w->buf + w->off, '\n', w->len);
    assert(nl);
    size_t n = (size_t)(nl - (w->buf + w->off)) + 1;
    w->off += n;
    w->len -= n;
    st->queued--;
    st->dropped++;
    st->dropped_down++;
    w->head_started = 0;
    if (w->len == 0)
        w->off = 0;
}

static void disconnect(vt_client *c, struct wbuf *w, vt_client_stats *st)
{
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
    c->connecting = 0;
    c->rlen = 0;
    drop_head(w, st);
    /* A connection that was up may be retried at once (the agent restarted). */
    c->next_try_ns = 0;
}

static void connect_failed(vt_client *c, vt_client_stats *st)
{
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
    c->connecting = 0;
    st->connect_fails++;
    c->next_try_ns = now_ns() + (int64_t)c->backoff_ms * 1000000;
    c->backoff_ms = c->backoff_ms * 2 > c->backoff_max_ms ? c->backoff_max_ms : c->backoff_ms * 2;
}

static void connected(vt_client *c, vt_client_stats *st)
{
    c->connecting = 0;
    st->connects++;
    c->backoff_ms = c->backoff_initial_ms;
}

/* 0 when connected, -ENOTCONN otherwise (attempts a connect when one is due;
 * with force, regardless of the backoff). Never blocks. */
static int ensure_conn(vt_client *c, int force, vt_client_stats *st)
{
    if (c->fd >= 0 && !c->connecting)
        return 0;
    if (c->fd >= 0) {
        /* STREAM connect in progress: done yet? */
        struct pollfd p = {c->fd, POLLOUT, 0};
        if (poll(&p, 1, 0) <= 0)
            return -ENOTCONN;
        int err = 0;
        socklen_t l = sizeof err;
        if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &l) != 0 || err != 0) {
            connect_failed(c, st);
            return -ENOTCONN;
        }
        connected(c, st);
        return 0;
    }
    if (!force && c->next_try_ns && now_ns() < c->next_try_ns)
        return -ENOTCONN;
    int type = c->mode == VT_CLIENT_STREAM ? SOCK_STREAM : SOCK_DGRAM;
    c->fd = socket(AF_UNIX, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c->fd < 0) {
        connect_failed(c, st);
        return -ENOTCONN;
    }
    if (connect(c->fd, (struct sockaddr *)&c->addr, c->addrlen) == 0) {
        connected(c, st);
        return 0;
    }
    if (errno == EINPROGRESS) {
        c->connecting = 1;
        return -ENOTCONN;
    }
    /* ENOENT, ECONNREFUSED, or EAGAIN (the agent's backlog is full). */
    connect_failed(c, st);
    return -ENOTCONN;
}

/* --- writing a buffer ---------------------------------------------------- */

static uint64_t count_nl(const char *p, size_t n)
{
    uint64_t k = 0;
    const char *end = p + n;
    while (p < end && (p = memchr(p, '\n', (size_t)(end - p))) != NULL) {
        k++;
        p++;
    }
    return k;
}

/* One non-blocking write of w. 0 (wrote something or nothing to write),
 * -EAGAIN (kernel full), -ENOTCONN (connection lost). */
static int flush_once(vt_client *c, struct wbuf *w, vt_client_stats *st)
{
    assert(c->fd >= 0 && !c->connecting);
    if (w->len == 0)
        return 0;
    ssize_t n = send(c->fd, w->buf + w->off, w->len, MSG_DONTWAIT | MSG_NOSIGNAL);
    if (n < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
            return -EAGAIN;
        disconnect(c, w, st);
        return -ENOTCONN;
    }
    if (n == 0)
        return -EAGAIN;
    uint64_t done = count_nl(w->buf + w->off, (size_t)n);
    st->sent += done;
    st->queued -= done;
    st->bytes += (uint64_t)n;
    w->head_started = w->buf[w->off + (size_t)n - 1] != '\n';
    w->off += (size_t)n;
    w->len -= (size_t)n;
    if (w->len == 0)
        w->off = 0;
    return 0;
}

/* --- background mode: the thread ------------------------------------------ */

/* Under mu: publish what the thread counted. Its queued field only ever went
 * down (records written or cut), by exactly sent + dropped_down. */
static void bg_commit(vt_client *c)
{
    vt_client_stats *d = &c->io_st;
    assert(d->dropped == d->dropped_down && c->st.queued >= d->sent + d->dropped_down);
    c->st.sent += d->sent;
    c->st.bytes += d->bytes;
    c->st.dropped += d->dropped;
    c->st.dropped_down += d->dropped_down;
    c->st.queued -= d->sent + d->dropped_down;
    c->st.connects += d->connects;
    c->st.connect_fails += d->connect_fails;
    memset(d, 0, sizeof *d);
    c->o_held = c->o.len;
    c->bg_connected = c->fd >= 0 && !c->connecting;
}

/* Under mu: move q's bytes to the end of o, if they fit. O(1) when o is empty
 * (the buffers trade places); otherwise a memcpy (o was compacted by the
 * thread outside the lock). Senders never wait behind more than that. */
static void bg_take(vt_client *c)
{
    if (c->q.len == 0)
        return;
    assert(!c->q.head_started);
    if (c->o.len == 0) {
        char *spare = c->o.buf;
        c->o = c->q;
        c->q.buf = spare;
        c->q.off = c->q.len = 0;
    } else if (c->cap - c->o.off - c->o.len >= c->q.len) {
        memcpy(c->o.buf + c->o.off + c->o.len, c->q.buf + c->q.off, c->q.len);
        c->o.len += c->q.len;
        c->q.off = c->q.len = 0;
    } else {
        return; /* o is not compacted yet (after a failed sync): q waits */
    }
    c->o_held = c->o.len;
    c->wake_sent = 0;
}

/* Outside mu: write o as far as the kernel takes it now, connecting first if
 * a connect is due (force: regardless of the backoff). Never blocks. */
static void bg_write(vt_client *c, int force)
{
    if (c->o.len > 0 && ensure_conn(c, force, &c->io_st) == 0)
        while (c->o.len > 0 && flush_once(c, &c->o, &c->io_st) == 0)
            ;
    if (c->o.off > 0 && c->o.len > 0) {
        /* o is the thread's own: make room for the next take here, not
         * under the lock. */
        memmove(c->o.buf, c->o.buf + c->o.off, c->o.len);
        c->o.off = 0;
    }
}

static int sync_run(vt_client *c, struct wbuf *w, vt_client_stats *st, int64_t deadline);

static void *bg_main(void *arg)
{
    vt_client *c = arg;
    pthread_mutex_lock(&c->mu);
    int64_t next = now_ns() + c->flush_ns;
    for (;;) {
        while (!c->stop && !c->kick && !c->sync_req) {
            if (now_ns() >= next)
                break;
            struct timespec ts = {(time_t)(next / 1000000000), (long)(next % 1000000000)};
            pthread_cond_timedwait(&c->wake, &c->mu, &ts);
        }
        c->kick = 0;
        if (c->stop) {
            /* Close: what the kernel takes now, once; the rest is lost with
             * the client. Two rounds, as q may not have fit behind o. */
            for (int round = 0; round < 2; round++) {
                bg_take(c);
                pthread_mutex_unlock(&c->mu);
                bg_write(c, round == 0);
                pthread_mutex_lock(&c->mu);
                bg_commit(c);
            }
            break;
        }
        if (c->sync_req) {
            bg_take(c);
            int64_t deadline = c->sync_deadline;
            pthread_mutex_unlock(&c->mu);
            int rc = sync_run(c, &c->o, &c->io_st, deadline);
            pthread_mutex_lock(&c->mu);
            bg_commit(c);
            c->sync_req = 0;
            c->sync_rc = rc;
            c->sync_gen++;
            pthread_cond_broadcast(&c->done);
        } else {
            bg_take(c);
            pthread_mutex_unlock(&c->mu);
            bg_write(c, 0);
            pthread_mutex_lock(&c->mu);
            bg_commit(c);
        }
        next = now_ns() + c->flush_ns;
    }
    pthread_mutex_unlock(&c->mu);
    return NULL;
}

/* --- open / close -------------------------------------------------------- */

static void free_client(vt_client *c)
{
    free(c->q.buf);
    free(c->o.buf);
    free(c);
}

static int bg_start(vt_client *c)
{
    pthread_condattr_t ca;
    if (pthread_condattr_init(&ca) != 0)
        return -ENOMEM;
    int ok = pthread_condattr_setclock(&ca, CLOCK_MONOTONIC) == 0 &&
             pthread_cond_init(&c->wake, &ca) == 0;
    pthread_condattr_destroy(&ca);
    if (!ok)
        return -ENOMEM;
    if (pthread_cond_init(&c->done, NULL) != 0) {
        pthread_cond_destroy(&c->wake);
        return -ENOMEM;
    }
    /* The thread takes no signals: the application's handlers run on its own
     * threads, as it expects. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int rc = pthread_create(&c->th, NULL, bg_main, c);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc != 0) {
        pthread_cond_destroy(&c->wake);
        pthread_cond_destroy(&c->done);
        return rc == EAGAIN ? -EAGAIN : -ENOMEM;
    }
    return 0;
}

int vt_client_open(vt_client **out, const char *socket_dir, const vt_client_options *opts)
{
    vt_client_options o = {0};
    if (opts)
        o = *opts;
    const int known = VT_CLIENT_NO_LOCK | VT_CLIENT_BACKGROUND;
    if (!out || (o.mode != VT_CLIENT_DGRAM && o.mode != VT_CLIENT_STREAM) ||
        o.backoff_initial_ms < 0 || o.backoff_max_ms < 0 || (o.flags & ~known) ||
        o.flush_interval_ms < 0)
        return -EINVAL;
    int bg = (o.flags & VT_CLIENT_BACKGROUND) != 0;
    /* The thread shares the client with the caller: it needs the lock. */
    if (bg && (o.mode != VT_CLIENT_STREAM || (o.flags & VT_CLIENT_NO_LOCK)))
        return -EINVAL;
    if (!socket_dir)
        socket_dir = getenv("VITALS_SOCKET_DIR");
    if (!socket_dir || !*socket_dir)
        socket_dir = "/run/vitals";
    vt_client *c = calloc(1, sizeof *c);
    if (!c)
        return -ENOMEM;
    c->mode = o.mode;
    c->fd = -1;
    c->addr.sun_family = AF_UNIX;
    int n = snprintf(c->addr.sun_path, sizeof c->addr.sun_path, "%s/%s", socket_dir,
                     o.mode == VT_CLIENT_STREAM ? "ingest.sock" : "ingest.dgram");
    if (n < 0 || (size_t)n >= sizeof c->addr.sun_path) {
        free(c);
        return -ENAMETOOLONG;
    }
    c->addrlen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + (size_t)n + 1);
    c->backoff_initial_ms = o.backoff_initial_ms ? o.backoff_initial_ms : 100;
    c->backoff_max_ms = o.backoff_max_ms ? o.backoff_max_ms : 5000;
    if (c->backoff_max_ms < c->backoff_initial_ms)
        c->backoff_max_ms = c->backoff_initial_ms;
    c->backoff_ms = c->backoff_initial_ms;
    if (o.mode == VT_CLIENT_STREAM) {
        c->cap = o.buffer_bytes ? o.buffer_bytes : DEFAULT_BUFFER;
        if (c->cap < MIN_BUFFER)
            c->cap = MIN_BUFFER;
        c->q.buf = malloc(c->cap);
        if (bg)
            c->o.buf = malloc(c->cap);
        if (!c->q.buf || (bg && !c->o.buf)) {
            free_client(c);
            return -ENOMEM;
        }
    }
    c->bg = bg;
    /* Clamped: a longer interval only keeps records longer in the process. */
    int ms = o.flush_interval_ms ? o.flush_interval_ms : DEFAULT_FLUSH_MS;
    c->flush_ns = (int64_t)(ms > MAX_FLUSH_MS ? MAX_FLUSH_MS : ms) * 1000000;
    c->locked = !(o.flags & VT_CLIENT_NO_LOCK);
    pthread_mutexattr_t ma;
    pthread_mutexattr_init(&ma);
#ifdef __GLIBC__
    /* Background: the thread's turns under mu are O(1), so a sender that
     * meets it spins for a moment rather than sleeping in the kernel and
     * paying a wake-up (~50 us on a busy VM): the very cost this mode avoids.
     * Both sides then also unlock without a futex wake. */
    if (bg)
        pthread_mutexattr_settype(&ma, PTHREAD_MUTEX_ADAPTIVE_NP);
#endif
    int mrc = c->locked ? pthread_mutex_init(&c->mu, &ma) : 0;
    pthread_mutexattr_destroy(&ma);
    if (mrc != 0) {
        free_client(c);
        return -ENOMEM;
    }
    (void)ensure_conn(c, 1, &c->st);
    if (bg) {
        c->bg_connected = c->fd >= 0 && !c->connecting;
        int rc = bg_start(c);
        if (rc != 0) {
            if (c->fd >= 0)
                close(c->fd);
            pthread_mutex_destroy(&c->mu);
            free_client(c);
            return rc;
        }
    }
    *out = c;
    return 0;
}

void vt_client_close(vt_client *c)
{
    if (!c)
        return;
    if (c->bg) {
        pthread_mutex_lock(&c->mu);
        c->stop = 1;
        pthread_cond_signal(&c->wake);
        pthread_mutex_unlock(&c->mu);
        pthread_join(c->th, NULL);
        pthread_cond_destroy(&c->wake);
        pthread_cond_destroy(&c->done);
    }
    if (c->fd >= 0)
        close(c->fd);
    if (c->locked)
        pthread_mutex_destroy(&c->mu);
    free_client(c);
}

/* --- sending ------------------------------------------------------------- */

static int buffer_append(vt_client *c, const char *line, size_t len)
{
    size_t need = len + 1;
    assert(c->q.len + c->o_held <= c->cap);
    if (c->cap - c->q.len - c->o_held < need) {
        c->st.dropped++;
        c->st.dropped_full++;
        return -EAGAIN;
    }
    if (c->cap - c->q.off - c->q.len < need) {
        memmove(c->q.buf, c->q.buf + c->q.off, c->q.len);
        c->q.off = 0;
    }
    memcpy(c->q.buf + c->q.off + c->q.len, line, len);
    c->q.buf[c->q.off + c->q.len + len] = '\n';
    c->q.len += need;
    c->st.queued++;
    return 0;
}

static int send_stream(vt_client *c, const char *line, size_t len)
{
    if (len + 1 > c->cap) {
        c->st.dropped++;
        c->st.dropped_bad++;
        return -EMSGSIZE;
    }
    if (c->bg) {
        /* No system call here: the thread writes. Past half full it is told
         * at once (a futex wake only if it sleeps, once per half buffer). */
        int rc = buffer_append(c, line, len);
        if (!c->wake_sent && c->q.len * 2 >= c->cap) {
            c->wake_sent = 1;
            c->kick = 1;
            pthread_cond_signal(&c->wake);
        }
        return rc;
    }
    if (ensure_conn(c, 0, &c->st) == 0 && (c->q.len == 0 || flush_once(c, &c->q, &c->st) == 0) &&
        c->q.len == 0) {
        struct iovec iov[2] = {{(void *)line, len}, {(void *)"\n", 1}};
        struct msghdr mh = {.msg_iov = iov, .msg_iovlen = 2};
        ssize_t n = sendmsg(c->fd, &mh, MSG_DONTWAIT | MSG_NOSIGNAL);
        if (n == (ssize_t)len + 1) {
            c->st.sent++;
            c->st.bytes += (uint64_t)n;
            return 0;
        }
        if (n > 0) {
            /* The kernel took a prefix: the rest waits in the buffer. */
            c->st.bytes += (uint64_t)n;
            assert(c->q.len == 0);
            c->q.off = 0;
            if ((size_t)n < len)
                memcpy(c->q.buf, line + n, len - (size_t)n);
            c->q.buf[len - (size_t)n] = '\n';
            c->q.len = len + 1 - (size_t)n;
            c->q.head_started = 1;
            c->st.queued++;
            return 0;
        }
        if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
            disconnect(c, &c->q, &c->st);
    }
    return buffer_append(c, line, len);
}

static int send_dgram(vt_client *c, const char *line, size_t len)
{
    for (int attempt = 0; attempt < 2; attempt++) {
        if (ensure_conn(c, 0, &c->st) != 0)
            break;
        ssize_t n = send(c->fd, line, len, MSG_DONTWAIT | MSG_NOSIGNAL);
        if (n == (ssize_t)len) {
            c->st.sent++;
            c->st.bytes += (uint64_t)n;
            return 0;
        }
        int e = n < 0 ? errno : EMSGSIZE;
        if (e == EAGAIN || e == EWOULDBLOCK || e == ENOBUFS || e == EINTR) {
            c->st.dropped++;
            c->st.dropped_full++;
            return -EAGAIN;
        }
        if (e == EMSGSIZE) {
            c->st.dropped++;
            c->st.dropped_bad++;
            return -EMSGSIZE;
        }
        /* ECONNREFUSED (the agent went away or restarted with a new socket),
         * ENOTCONN, EPIPE...: reconnect once at once, then back off. */
        disconnect(c, &c->q, &c->st);
    }
    c->st.dropped++;
    c->st.dropped_down++;
    return -ENOTCONN;
}

int vt_client_send_line(vt_client *c, const char *line, size_t len)
{
    assert(c);
    if (len && line[len - 1] == '\n')
        len--;
    lock(c);
    int rc;
    if (len == 0 || memchr(line, '\n', len)) {
        c->st.dropped++;
        c->st.dropped_bad++;
        rc = -EINVAL;
    } else if (c->mode == VT_CLIENT_STREAM) {
        rc = send_stream(c, line, len);
    } else {
        rc = send_dgram(c, line, len);
    }
    unlock(c);
    return rc;
}

int vt_client_flush(vt_client *c)
{
    if (c->mode != VT_CLIENT_STREAM)
        return 0;
    lock(c);
    int rc;
    if (c->bg) {
        c->kick = 1;
        pthread_cond_signal(&c->wake);
        rc = c->bg_connected ? 0 : -ENOTCONN;
    } else {
        rc = ensure_conn(c, 0, &c->st);
        while (rc == 0 && c->q.len > 0) {
            rc = flush_once(c, &c->q, &c->st);
            if (rc == -EAGAIN)
                rc = 1; /* kernel full: stop, report what is queued */
        }
    }
    if (rc >= 0)
        rc = (int)(c->st.queued > INT32_MAX ? INT32_MAX : c->st.queued);
    unlock(c);
    return rc;
}

/* --- sync (blocking, opt-in) --------------------------------------------- */

static int wait_fd(int fd, short ev, int64_t deadline)
{
    for (;;) {
        int64_t left = (deadline - now_ns()) / 1000000;
        if (left <= 0)
            return -ETIMEDOUT;
        struct pollfd p = {fd, ev, 0};
        int r = poll(&p, 1, (int)(left > 1000000 ? 1000000 : left + 1));
        if (r > 0)
            return 0;
        if (r < 0 && errno != EINTR)
            return -errno;
    }
}

/* Parse complete lines in rbuf; 1 when {"synced":seq} (or later) was seen. */
static int scan_replies(vt_client *c, uint64_t seq)
{
    int found = 0;
    char *nl;
    while ((nl = memchr(c->rbuf, '\n', c->rlen)) != NULL) {
        *nl = '\0';
        unsigned long long v;
        if (sscanf(c->rbuf, " {\"synced\" : %llu", &v) == 1 && v >= seq)
            found = 1;
        size_t used = (size_t)(nl - c->rbuf) + 1;
        memmove(c->rbuf, nl + 1, c->rlen - used);
        c->rlen -= used;
    }
    if (c->rlen == sizeof c->rbuf)
        c->rlen = 0; /* not a reply of ours: forget it */
    return found;
}

/* Write all of w, waiting for the socket up to the deadline. */
static int drain(vt_client *c, struct wbuf *w, vt_client_stats *st, int64_t deadline)
{
    while (w->len > 0) {
        int r = flush_once(c, w, st);
        if (r == -ENOTCONN)
            return r;
        if (r == -EAGAIN && (r = wait_fd(c->fd, POLLOUT, deadline)) != 0)
            return r;
    }
    return 0;
}

static int sync_io(vt_client *c, struct wbuf *w, vt_client_stats *st, int64_t deadline)
{
    if (ensure_conn(c, 1, st) != 0) {
        /* An in-progress connect gets until the deadline. */
        while (c->fd >= 0 && c->connecting) {
            int r = wait_fd(c->fd, POLLOUT, deadline);
            if (r)
                return r;
            if (ensure_conn(c, 1, st) == 0)
                break;
        }
        if (c->fd < 0)
            return -ENOTCONN;
    }
    int r = drain(c, w, st, deadline);
    if (r == 0 && c->bg) {
        /* o is empty now: whatever the senders queued before the sync (and
         * since) is in q and fits whole. */
        pthread_mutex_lock(&c->mu);
        bg_take(c);
        pthread_mutex_unlock(&c->mu);
        r = drain(c, w, st, deadline);
    }
    if (r)
        return r;
    uint64_t seq = ++c->sync_seq;
    char line[48];
    int n = snprintf(line, sizeof line, "{\"sync\":%llu}\n", (unsigned long long)seq);
    size_t done = 0;
    while (done < (size_t)n) {
        ssize_t k = send(c->fd, line + done, (size_t)n - done, MSG_DONTWAIT | MSG_NOSIGNAL);
        if (k > 0) {
            done += (size_t)k;
            continue;
        }
        if (k < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
            disconnect(c, w, st);
            return -ENOTCONN;
        }
        r = wait_fd(c->fd, POLLOUT, deadline);
        if (r)
            return r; /* a half-written sync line: the connection is unusable */
    }
    for (;;) {
        if (scan_replies(c, seq))
            return 0;
        r = wait_fd(c->fd, POLLIN, deadline);
        if (r)
            return r;
        ssize_t k = recv(c->fd, c->rbuf + c->rlen, sizeof c->rbuf - c->rlen, MSG_DONTWAIT);
        if (k == 0 || (k < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
            disconnect(c, w, st);
            return -ENOTCONN;
        }
        if (k > 0)
            c->rlen += (size_t)k;
    }
}

/* The sync on the connection's owner: the caller (default) or the thread. */
static int sync_run(vt_client *c, struct wbuf *w, vt_client_stats *st, int64_t deadline)
{
    int rc = sync_io(c, w, st, deadline);
    if (rc == -ETIMEDOUT && c->fd >= 0 && w->len == 0) {
        /* Leave no half-written sync line on the connection: start afresh. */
        disconnect(c, w, st);
    }
    return rc;
}

int vt_client_sync(vt_client *c, int timeout_ms)
{
    if (c->mode != VT_CLIENT_STREAM)
        return -EOPNOTSUPP;
    lock(c);
    int64_t deadline = now_ns() + (int64_t)(timeout_ms < 0 ? 0 : timeout_ms) * 1000000;
    int rc;
    if (c->bg) {
        /* The thread owns the connection: it syncs, we wait (senders do not:
         * they keep appending to q). One sync at a time. */
        while (c->sync_busy)
            pthread_cond_wait(&c->done, &c->mu);
        c->sync_busy = 1;
        c->sync_req = 1;
        c->sync_deadline = deadline;
        uint64_t gen = c->sync_gen;
        pthread_cond_signal(&c->wake);
        while (c->sync_gen == gen)
            pthread_cond_wait(&c->done, &c->mu);
        rc = c->sync_rc;
        c->sync_busy = 0;
        pthread_cond_broadcast(&c->done);
    } else {
        rc = sync_run(c, &c->q, &c->st, deadline);
    }
    unlock(c);
    return rc;
}

void vt_client_get_stats(vt_client *c, vt_client_stats *out)
{
    lock(c);
    *out = c->st;
    unlock(c);
}

/* --- the record builder -------------------------------------------------- */

static void put(vt_client_rec *r, const char *s, size_t n)
{
    if (r->err)
        return;
    if (r->cap - r->len < n) {
        r->err = -ENOSPC;
        return;
    }
    memcpy(r->buf + r->len, s, n);
    r->len += n;
}

static void putc1(vt_client_rec *r, char ch)
{
    put(r, &ch, 1);
}

/* Length of the valid UTF-8 sequence at s (1..4), or 0 if invalid. */
static size_t utf8_len(const unsigned char *s, size_t n)
{
    unsigned char b = s[0];
    size_t k;
    unsigned char lo = 0x80, hi = 0xBF;
    if (b >= 0xC2 && b <= 0xDF)
        k = 2;
    else if (b >= 0xE0 && b <= 0xEF) {
        k = 3;
        if (b == 0xE0)
            lo = 0xA0;
        else if (b == 0xED)
            hi = 0x9F; /* no surrogates */
    } else if (b >= 0xF0 && b <= 0xF4) {
        k = 4;
        if (b == 0xF0)
            lo = 0x90;
        else if (b == 0xF4)
            hi = 0x8F;
    } else
        return 0;
    if (n < k || s[1] < lo || s[1] > hi)
        return 0;
    for (size_t i = 2; i < k; i++)
        if ((s[i] & 0xC0) != 0x80)
            return 0;
    return k;
}

static void put_string(vt_client_rec *r, const char *str, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *s = (const unsigned char *)str;
    putc1(r, '"');
    size_t i = 0;
    while (i < n && !r->err) {
        size_t j = i;
        while (j < n && s[j] >= 0x20 && s[j] < 0x80 && s[j] != '"' && s[j] != '\\')
            j++;
        put(r, str + i, j - i);
        if (j == n)
            break;
        unsigned char b = s[j];
        i = j + 1;
        if (b == '"' || b == '\\') {
            char e[2] = {'\\', (char)b};
            put(r, e, 2);
        } else if (b == '\n') {
            put(r, "\\n", 2);
        } else if (b == '\r') {
            put(r, "\\r", 2);
        } else if (b == '\t') {
            put(r, "\\t", 2);
        } else if (b == 0) {
            put(r, "\xEF\xBF\xBD", 3); /* \u0000 is rejected by the agent */
        } else if (b < 0x20) {
            char e[6] = {'\\', 'u', '0', '0', hex[b >> 4], hex[b & 15]};
            put(r, e, 6);
        } else {
            size_t k = utf8_len(s + j, n - j);
            if (k) {
                put(r, str + j, k);
                i = j + k;
            } else {
                put(r, "\xEF\xBF\xBD", 3);
            }
        }
    }
    putc1(r, '"');
}

/* Separator and key for the next value in the current container. */
static void begin_value(vt_client_rec *r, const char *key)
{
    if (r->err)
        return;
    if (r->depth <= 0) {
        r->err = -EINVAL; /* finished, or never initialised */
        return;
    }
    int d = r->depth - 1;
    if (r->need_comma[d])
        putc1(r, ',');
    r->need_comma[d] = 1;
    if (r->is_array[d]) {
        if (key)
            r->err = -EINVAL;
        return;
    }
    if (!key) {
        r->err = -EINVAL;
        return;
    }
    put_string(r, key, strlen(key));
    putc1(r, ':');
}

void vt_client_rec_init(vt_client_rec *r, char *buf, size_t cap)
{
    memset(r, 0, sizeof *r);
    r->buf = buf;
    r->cap = cap;
    putc1(r, '{');
    r->depth = 1;
}

void vt_client_rec_str(vt_client_rec *r, const char *key, const char *val)
{
    if (!val)
        vt_client_rec_null(r, key);
    else
        vt_client_rec_strn(r, key, val, strlen(val));
}

void vt_client_rec_strn(vt_client_rec *r, const char *key, const char *val, size_t len)
{
    begin_value(r, key);
    if (!r->err)
        put_string(r, val, len);
}

static void put_num(vt_client_rec *r, const char *key, double val, int prec)
{
    if (!r->err && !isfinite(val))
        r->err = -EDOM; /* JSON has no NaN/Infinity; the agent would reject it */
    begin_value(r, key);
    if (r->err)
        return;
    char tmp[32];
    int n = snprintf(tmp, sizeof tmp, "%.*g", prec, val);
    for (int i = 0; i < n; i++)
        if (tmp[i] == ',')
            tmp[i] = '.'; /* a locale with a decimal comma */
    put(r, tmp, (size_t)n);
}

void vt_client_rec_num(vt_client_rec *r, const char *key, double val)
{
    put_num(r, key, val, 15);
}

void vt_client_rec_int(vt_client_rec *r, const char *key, int64_t val)
{
    begin_value(r, key);
    if (r->err)
        return;
    char tmp[24];
    char *p = tmp + sizeof tmp;
    uint64_t u = val < 0 ? (uint64_t)0 - (uint64_t)val : (uint64_t)val;
    do {
        *--p = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    if (val < 0)
        *--p = '-';
    put(r, p, (size_t)(tmp + sizeof tmp - p));
}

void vt_client_rec_bool(vt_client_rec *r, const char *key, int val)
{
    begin_value(r, key);
    if (val)
        put(r, "true", 4);
    else
        put(r, "false", 5);
}

void vt_client_rec_null(vt_client_rec *r, const char *key)
{
    begin_value(r, key);
    put(r, "null", 4);
}

static void open_container(vt_client_rec *r, const char *key, int array)
{
    if (!r->err && r->depth >= VT_CLIENT_REC_MAX_DEPTH)
        r->err = -EINVAL;
    begin_value(r, key);
    if (r->err)
        return;
    putc1(r, array ? '[' : '{');
    r->need_comma[r->depth] = 0;
    r->is_array[r->depth] = (unsigned char)array;
    r->depth++;
}

void vt_client_rec_object(vt_client_rec *r, const char *key)
{
    open_container(r, key, 0);
}

void vt_client_rec_array(vt_client_rec *r, const char *key)
{
    open_container(r, key, 1);
}

void vt_client_rec_end(vt_client_rec *r)
{
    if (r->err)
        return;
    if (r->depth <= 1) {
        r->err = -EINVAL; /* the record itself is closed by finish() */
        return;
    }
    r->depth--;
    putc1(r, r->is_array[r->depth] ? ']' : '}');
}

int vt_client_rec_finish(vt_client_rec *r)
{
    while (!r->err && r->depth > 0) {
        r->depth--;
        putc1(r, r->is_array[r->depth] ? ']' : '}');
    }
    if (r->err)
        return r->err;
    return r->len > INT32_MAX ? -EOVERFLOW : (int)r->len;
}

int vt_client_send_rec(vt_client *c, vt_client_rec *r)
{
    int n = vt_client_rec_finish(r);
    if (n < 0)
        return n;
    return vt_client_send_line(c, r->buf, (size_t)n);
}

/* --- the struct form ----------------------------------------------------- */

int vt_client_format_call(const vt_client_call *call, char *buf, size_t cap)
{
    vt_client_rec r;
    vt_client_rec_init(&r, buf, cap);
    if (call->ts_ms > 0)
        vt_client_rec_int(&r, "ts", call->ts_ms);
    if (call->service)
        vt_client_rec_str(&r, "service", call->service);
    if (call->model)
        vt_client_rec_str(&r, "model", call->model);
    if (call->provider)
        vt_client_rec_str(&r, "provider", call->provider);
    if (call->version)
        vt_client_rec_str(&r, "version", call->version);
    if (call->latency_ms >= 0)
        vt_client_rec_num(&r, "latency_ms", call->latency_ms);
    if (call->ttft_ms >= 0)
        vt_client_rec_num(&r, "ttft_ms", call->ttft_ms);
    if (call->status == VT_CLIENT_STATUS_OK || call->status == VT_CLIENT_STATUS_ERROR)
        vt_client_rec_str(&r, "status", call->status == VT_CLIENT_STATUS_OK ? "ok" : "error");
    if (call->error_type)
        vt_client_rec_str(&r, "error_type", call->error_type);
    if (call->input_tokens >= 0)
        vt_client_rec_int(&r, "input_tokens", call->input_tokens);
    if (call->output_tokens >= 0)
        vt_client_rec_int(&r, "output_tokens", call->output_tokens);
    if (call->cost_usd >= 0)
        vt_client_rec_num(&r, "cost_usd", call->cost_usd);
    if (call->n_metrics) {
        vt_client_rec_object(&r, "metrics");
        for (size_t i = 0; i < call->n_metrics; i++)
            vt_client_rec_num(&r, call->metrics[i].name, call->metrics[i].value);
        vt_client_rec_end(&r);
    }
    if (call->n_labels) {
        vt_client_rec_object(&r, "labels");
        for (size_t i = 0; i < call->n_labels; i++)
            vt_client_rec_str(&r, call->labels[i].key, call->labels[i].value);
        vt_client_rec_end(&r);
    }
    if (call->n_embedding) {
        vt_client_rec_array(&r, "embedding");
        for (size_t i = 0; i < call->n_embedding; i++)
            put_num(&r, NULL, (double)call->embedding[i], 9); /* a float's digits */
        vt_client_rec_end(&r);
    }
    if (call->request_id)
        vt_client_rec_str(&r, "request_id", call->request_id);
    return vt_client_rec_finish(&r);
}

int vt_client_send_call(vt_client *c, const vt_client_call *call)
{
    char buf[16384];
    int n = vt_client_format_call(call, buf, sizeof buf);
    if (n < 0)
        return n;
    return vt_client_send_line(c, buf, (size_t)n);
}
