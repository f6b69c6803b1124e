/*
 * vitals_client.h - the application side of vitals: hand one record per LLM
 * call to the local vitals-agent without ever making the application wait.
 *
 * Why it exists: an application must be able to report every call from its
 * hot path, and the agent may be slow, restarting or absent. So a send is a
 * single non-blocking system call (or none); when the record cannot go out
 * now it is dropped and counted, and the call returns. Nothing here blocks
 * except vt_client_sync(), which is an explicit opt-in for shutdown and tests.
 *
 * Self-contained: depends on libc (and pthreads, part of glibc) only, so an
 * application can vendor these two files. No allocation after
 * vt_client_open(); no SIGPIPE (MSG_NOSIGNAL). The two default modes start
 * no thread; VT_CLIENT_BACKGROUND (below) starts one per client.
 *
 * Two transports, chosen at open (DESIGN §1, docs/record.md):
 *   VT_CLIENT_DGRAM   <dir>/ingest.dgram, one record per datagram, sent with
 *                     MSG_DONTWAIT. A full agent queue (EAGAIN) drops the
 *                     record. The kernel keeps datagrams whole, so a record
 *                     is never cut.
 *   VT_CLIENT_STREAM  <dir>/ingest.sock, NDJSON over a non-blocking stream
 *                     socket. Whatever the kernel does not take now goes to a
 *                     bounded in-process buffer (opts.buffer_bytes) and leaves
 *                     with the next send / vt_client_flush(); a record that
 *                     does not fit in the buffer is dropped whole. Records are
 *                     also buffered while the agent is away, and flushed after
 *                     the reconnect. A connection that breaks in the middle of
 *                     a record loses that record (the agent drops the partial
 *                     line) and it is counted as dropped.
 *
 * VT_CLIENT_BACKGROUND (flag, STREAM only): a send makes no system call at
 * all. It appends the record to the buffer under the mutex (a full buffer
 * drops it, -EAGAIN, as above) and returns; a thread started by
 * vt_client_open() and joined by vt_client_close() writes the buffer every
 * opts.flush_interval_ms, and at once when it passes half full (the sender
 * then signals a condition variable: a futex wake if the thread sleeps, at
 * most once per half buffer; it never waits). The thread takes the buffered
 * bytes under the lock (O(1), or a memcpy) and writes them outside it, with
 * the same non-blocking logic, reconnects and counting as the default.
 * Trade-off: records wait up to flush_interval_ms in the process and are lost
 * if it dies first; the client holds two buffers of buffer_bytes. Use it for
 * latency-critical hot paths: the kernel's wake-up of the agent (~10 us on a
 * busy VM) is then paid by our thread, not by the caller. The thread blocks
 * every signal; a client does not survive fork() (open it in the child).
 *
 * Reconnection is lazy: a send that finds no connection tries one
 * non-blocking connect() (a Unix-socket connect completes or fails at once;
 * EAGAIN/EINPROGRESS is treated as "not yet"), and after a failure waits
 * opts.backoff_initial_ms, doubling up to opts.backoff_max_ms, before the
 * next attempt. Between attempts a send costs one clock read.
 *
 * Threads: by default every call on one client takes the client's mutex
 * (uncontended cost ~20 ns, see bench/bench_agent.c), so one client may be
 * shared by all threads. With VT_CLIENT_NO_LOCK the caller promises that one
 * thread at a time uses the client (e.g. one client per thread).
 *
 * Errors are negative errno values; 0 is success.
 */
#ifndef VITALS_CLIENT_H
#define VITALS_CLIENT_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct vt_client vt_client;

enum vt_client_mode {
    VT_CLIENT_DGRAM = 0,
    VT_CLIENT_STREAM = 1,
};

enum vt_client_flags {
    VT_CLIENT_NO_LOCK = 1 << 0,    /* the caller serializes calls on this client */
    VT_CLIENT_BACKGROUND = 1 << 1, /* STREAM: a thread writes; sends make no syscall.
                                      Not with DGRAM or NO_LOCK (-EINVAL) */
};

typedef struct vt_client_options {
    int mode;                /* enum vt_client_mode (default DGRAM) */
    int flags;               /* enum vt_client_flags */
    size_t buffer_bytes;     /* STREAM: in-process buffer; 0 = 256 KiB; min 4 KiB */
    int backoff_initial_ms;  /* wait after a failed connect; 0 = 100 */
    int backoff_max_ms;      /* cap of the doubling wait; 0 = 5000 */
    int flush_interval_ms;   /* BACKGROUND: write at least this often; 0 = 5,
                                capped at 60000 */
} vt_client_options;

typedef struct vt_client_stats {
    uint64_t sent;          /* records handed to the kernel in full */
    uint64_t bytes;         /* bytes handed to the kernel (STREAM: incl. '\n') */
    uint64_t dropped;       /* records given up, the sum of the three below */
    uint64_t dropped_down;  /* ... agent absent (DGRAM), or cut by a broken connection */
    uint64_t dropped_full;  /* ... agent queue full (DGRAM) or our buffer full (STREAM) */
    uint64_t dropped_bad;   /* ... invalid: empty, embedded newline, too large */
    uint64_t queued;        /* STREAM: records waiting in the buffer now */
    uint64_t connects;      /* successful connects */
    uint64_t connect_fails; /* failed connect attempts */
} vt_client_stats;

/* Open a client for the agent whose sockets are in socket_dir (e.g.
 * "/run/vitals"; NULL = $VITALS_SOCKET_DIR or "/run/vitals"). opts may be
 * NULL (datagram mode, defaults). Does not require the agent to be up: the
 * first connect is attempted here and, if it fails, lazily later.
 * On success *out owns a client to pass to vt_client_close().
 * With VT_CLIENT_BACKGROUND the writer thread is started here.
 * Returns 0, -EINVAL (bad option), -ENAMETOOLONG (path does not fit
 * sun_path), -ENOMEM, -EAGAIN (no thread could be created). */
int vt_client_open(vt_client **out, const char *socket_dir, const vt_client_options *opts);

/* Close the socket and free the client. Buffered STREAM records that were not
 * flushed are dropped (and lost with the client): call vt_client_sync() or
 * vt_client_flush() first if they matter. BACKGROUND: the thread first
 * writes what the kernel takes now (one non-blocking attempt, which may
 * connect), then is stopped and joined; the rest is lost. Does not block.
 * No other call on c may run concurrently or follow. NULL is a no-op. */
void vt_client_close(vt_client *c);

/* Send one pre-formatted JSON record (one object, no newline inside; a single
 * trailing '\n' is allowed and ignored). Never blocks. BACKGROUND: returns 0
 * when the record is in the buffer (it is written later; the socket errors
 * below do not occur).
 * Returns 0 when the record went to the kernel or (STREAM) into the buffer,
 * otherwise the record is dropped and counted:
 *   -ENOTCONN  DGRAM: the agent is absent (STREAM buffers while it is away)
 *   -EAGAIN    DGRAM: the agent's queue is full; STREAM: our buffer is full
 *              (the agent is slow or away)
 *   -EMSGSIZE  larger than a datagram / the stream buffer can take
 *   -EINVAL    empty, or contains '\n'
 *   other      unexpected socket error (the connection is reset) */
int vt_client_send_line(vt_client *c, const char *line, size_t len);

/* STREAM: write as much of the buffer as the kernel takes now (reconnecting
 * if due). Never blocks. Returns the number of records still queued, or a
 * negative errno when disconnected. DGRAM: returns 0.
 * BACKGROUND: wakes the thread to write now and returns at once: the records
 * queued at this moment (buffered or being written), or -ENOTCONN if the
 * thread's last attempt found no connection. */
int vt_client_flush(vt_client *c);

/* STREAM only, BLOCKING up to timeout_ms: flush the buffer, send
 * {"sync": N} and wait for the agent's {"synced": N}, which means every record
 * sent before it on this connection is in the agent's spool. Returns 0,
 * -ETIMEDOUT, -ENOTCONN (agent absent or connection lost: some records may be
 * lost, see stats), -EOPNOTSUPP in DGRAM mode. BACKGROUND: the thread does
 * it (everything buffered before the call is written first) while the caller
 * waits; other threads' sends carry on meanwhile. */
int vt_client_sync(vt_client *c, int timeout_ms);

/* Copy the counters (consistent snapshot under the lock). */
void vt_client_get_stats(vt_client *c, vt_client_stats *out);

/* ---- building a record -------------------------------------------------
 * A small JSON writer into a caller-provided buffer: no allocation, proper
 * escaping (", \, control characters; invalid UTF-8 and NUL bytes become
 * U+FFFD so the agent never rejects a record for its strings' encoding).
 * Keys are given as C strings and escaped too. Inside an array pass key NULL.
 * Errors are sticky: the first one (-ENOSPC buffer too small, -EDOM a
 * non-finite number, -EINVAL misuse such as too deep nesting) is kept in
 * r->err and reported by vt_client_rec_finish(); later calls do nothing.
 *
 *   char buf[1024]; vt_client_rec r;
 *   vt_client_rec_init(&r, buf, sizeof buf);
 *   vt_client_rec_str(&r, "service", "support-bot");
 *   vt_client_rec_num(&r, "latency_ms", 812.5);
 *   vt_client_rec_object(&r, "metrics");
 *   vt_client_rec_num(&r, "relevance", 0.91);
 *   vt_client_rec_end(&r);
 *   vt_client_send_rec(c, &r);
 */
#define VT_CLIENT_REC_MAX_DEPTH 8

typedef struct vt_client_rec {
    char *buf;
    size_t cap, len;
    int err;
    int depth;                                /* open containers incl. the record */
    unsigned char need_comma[VT_CLIENT_REC_MAX_DEPTH];
    unsigned char is_array[VT_CLIENT_REC_MAX_DEPTH];
} vt_client_rec;

void vt_client_rec_init(vt_client_rec *r, char *buf, size_t cap);   /* writes "{" */
void vt_client_rec_str(vt_client_rec *r, const char *key, const char *val); /* NULL: null */
void vt_client_rec_strn(vt_client_rec *r, const char *key, const char *val, size_t len);
void vt_client_rec_num(vt_client_rec *r, const char *key, double val);   /* %.15g */
void vt_client_rec_int(vt_client_rec *r, const char *key, int64_t val);
void vt_client_rec_bool(vt_client_rec *r, const char *key, int val);
void vt_client_rec_null(vt_client_rec *r, const char *key);
void vt_client_rec_object(vt_client_rec *r, const char *key);       /* opens {  */
void vt_client_rec_array(vt_client_rec *r, const char *key);        /* opens [  */
void vt_client_rec_end(vt_client_rec *r);                           /* closes one */
/* Close every open container. Returns the record's length, or r->err. */
int vt_client_rec_finish(vt_client_rec *r);
/* Finish r and send it: vt_client_send_line() or the builder's error. */
int vt_client_send_rec(vt_client *c, vt_client_rec *r);

/* ---- the common case as a struct ---------------------------------------
 * One LLM call. Initialise with VT_CLIENT_CALL_INIT, which marks every field
 * absent (NULL strings, negative numbers, ts 0 = "arrival time"); set what
 * you know. */
typedef struct vt_client_metric {
    const char *name;
    double value;
} vt_client_metric;

typedef struct vt_client_label {
    const char *key, *value;
} vt_client_label;

typedef struct vt_client_call {
    int64_t ts_ms;                    /* epoch ms; 0 = let the agent stamp it */
    const char *service, *model, *provider, *version;
    double latency_ms, ttft_ms;       /* < 0: absent */
    int status;                       /* 0 absent, 1 ok, 2 error */
    const char *error_type;
    int64_t input_tokens, output_tokens; /* < 0: absent */
    double cost_usd;                  /* < 0: absent */
    const char *request_id;
    const vt_client_metric *metrics;
    size_t n_metrics;
    const vt_client_label *labels;
    size_t n_labels;
    const float *embedding;
    size_t n_embedding;
} vt_client_call;

#define VT_CLIENT_CALL_INIT                                                       \
    {0, NULL, NULL, NULL, NULL, -1, -1, 0, NULL, -1, -1, -1, NULL, NULL, 0, NULL, \
     0, NULL, 0}
#define VT_CLIENT_STATUS_OK 1
#define VT_CLIENT_STATUS_ERROR 2

/* Format call as one JSON record into buf. Returns its length, or -ENOSPC,
 * -EDOM as the builder. */
int vt_client_format_call(const vt_client_call *call, char *buf, size_t cap);
/* Format (into a 16 KiB stack buffer) and send. Returns as vt_client_send_line(). */
int vt_client_send_call(vt_client *c, const vt_client_call *call);

#ifdef __cplusplus
}
#endif
#endif
