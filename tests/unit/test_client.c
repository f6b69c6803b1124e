/*
 * test_client.c - the application client (client/vitals_client.h) over real
 * sockets this test binds itself (to see bytes, stop reading, close
 * connections at will). The builder's output is checked with the agent's own
 * decoder (lib/record.h). Against a real vitals-agent process:
 * test_client_agent.c.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "client_test_util.h"
#include "record.h"
#include "vitals_client.h"

/* --- counting the socket calls a thread makes -------------------------------
 * The client is linked into this executable, so these definitions take its
 * calls; they count per thread and forward to the next definition (the
 * sanitizer's interceptor, or libc). A background-mode send must make none. */
static _Thread_local unsigned long sock_calls;

#define FORWARD(name, type)                                                   \
    static type real_##name;                                                  \
    type fn = __atomic_load_n(&real_##name, __ATOMIC_ACQUIRE);                \
    if (!fn) {                                                                \
        *(void **)&fn = dlsym(RTLD_NEXT, #name);                              \
        __atomic_store_n(&real_##name, fn, __ATOMIC_RELEASE);                 \
    }                                                                         \
    sock_calls++

typedef int (*socket_fn)(int, int, int);
typedef int (*connect_fn)(int, const struct sockaddr *, socklen_t);
typedef ssize_t (*send_fn)(int, const void *, size_t, int);
typedef ssize_t (*sendmsg_fn)(int, const struct msghdr *, int);
typedef int (*poll_fn)(struct pollfd *, nfds_t, int);

int socket(int domain, int type, int protocol)
{
    FORWARD(socket, socket_fn);
    return fn(domain, type, protocol);
}

int connect(int fd, const struct sockaddr *a, socklen_t l)
{
    FORWARD(connect, connect_fn);
    return fn(fd, a, l);
}

ssize_t send(int fd, const void *p, size_t n, int flags)
{
    FORWARD(send, send_fn);
    return fn(fd, p, n, flags);
}

ssize_t sendmsg(int fd, const struct msghdr *m, int flags)
{
    FORWARD(sendmsg, sendmsg_fn);
    return fn(fd, m, flags);
}

int poll(struct pollfd *p, nfds_t n, int timeout)
{
    FORWARD(poll, poll_fn);
    return fn(p, n, timeout);
}

/* --- the builder, checked by the agent's decoder --------------------------- */

static struct vt_record_decoder *dec;

static enum vt_record_kind decode(const char *line, size_t len, struct vt_record *rec)
{
    if (!dec)
        dec = vt_record_decoder_new(NULL, "default-svc");
    assert_non_null(dec);
    return vt_record_decode(dec, line, len, 1764288000000, rec);
}

static int str_eq(struct vt_str s, const char *want)
{
    return s.len == strlen(want) && memcmp(s.ptr, want, s.len) == 0;
}

static void test_builder_escaping(void **state)
{
    (void)state;
    char buf[1024];
    vt_client_rec r;
    vt_client_rec_init(&r, buf, sizeof buf);
    vt_client_rec_str(&r, "service", "sup\"port\\bot\n\t\x01");
    /* NUL and invalid UTF-8 become U+FFFD; valid multi-byte UTF-8 stays. */
    vt_client_rec_strn(&r, "model", "a\0b\xff\xc3\xa9\xed\xa0\x80z", 10);
    vt_client_rec_num(&r, "latency_ms", 812.5);
    vt_client_rec_int(&r, "input_tokens", 512);
    vt_client_rec_str(&r, "status", "error");
    vt_client_rec_null(&r, "ttft_ms");
    vt_client_rec_object(&r, "metrics");
    vt_client_rec_num(&r, "rel\"evance", 0.91);
    vt_client_rec_num(&r, "feedback", -1);
    vt_client_rec_end(&r);
    vt_client_rec_object(&r, "labels");
    vt_client_rec_str(&r, "region", "eu\r\n");
    vt_client_rec_end(&r);
    vt_client_rec_array(&r, "embedding");
    vt_client_rec_num(&r, NULL, 0.25);
    vt_client_rec_num(&r, NULL, -1e-3);
    vt_client_rec_end(&r);
    vt_client_rec_bool(&r, "unknown_flag", 1);
    int n = vt_client_rec_finish(&r);
    assert_true(n > 0);
    assert_null(memchr(buf, '\n', (size_t)n));

    struct vt_record rec;
    assert_int_equal(decode(buf, (size_t)n, &rec), VT_RECORD_DATA);
    assert_true(str_eq(rec.service, "sup\"port\\bot\n\t\x01"));
    assert_true(str_eq(rec.model, "a\xef\xbf\xbd" "b\xef\xbf\xbd\xc3\xa9\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbdz"));
    assert_true(rec.latency_ms == 812.5);
    assert_int_equal(rec.input_tokens, 512);
    assert_true(rec.error);
    assert_false(rec.present & VT_FIELD_BIT(VT_FIELD_TTFT_MS));
    assert_int_equal(rec.n_metrics, 2);
    assert_true(str_eq(rec.metrics[0].name, "feedback"));
    assert_true(rec.metrics[0].value == -1);
    assert_true(str_eq(rec.metrics[1].name, "rel\"evance"));
    assert_true(rec.metrics[1].value == 0.91);
    assert_int_equal(rec.n_labels, 1);
    assert_true(str_eq(rec.labels[0].value, "eu\r\n"));
    assert_int_equal(rec.n_embedding, 2);
    assert_true(rec.embedding[1] == -1e-3);
    assert_int_equal(rec.unknown_fields, 1);
}

static void test_builder_errors(void **state)
{
    (void)state;
    char buf[64];
    vt_client_rec r;

    vt_client_rec_init(&r, buf, sizeof buf); /* too small: sticky -ENOSPC */
    vt_client_rec_str(&r, "service", "0123456789012345678901234567890123456789012345678901234567890");
    vt_client_rec_int(&r, "x", 1);
    assert_int_equal(vt_client_rec_finish(&r), -ENOSPC);

    vt_client_rec_init(&r, buf, sizeof buf);
    vt_client_rec_num(&r, "latency_ms", NAN);
    assert_int_equal(vt_client_rec_finish(&r), -EDOM);
    vt_client_rec_init(&r, buf, sizeof buf);
    vt_client_rec_num(&r, "latency_ms", INFINITY);
    assert_int_equal(vt_client_rec_finish(&r), -EDOM);

    vt_client_rec_init(&r, buf, sizeof buf);
    vt_client_rec_array(&r, "embedding");
    vt_client_rec_num(&r, "key-in-array", 1);
    assert_int_equal(vt_client_rec_finish(&r), -EINVAL);

    vt_client_rec_init(&r, buf, sizeof buf);
    vt_client_rec_num(&r, NULL, 1); /* no key in an object */
    assert_int_equal(vt_client_rec_finish(&r), -EINVAL);

    vt_client_rec_init(&r, buf, sizeof buf);
    vt_client_rec_end(&r); /* the record itself is closed by finish */
    assert_int_equal(vt_client_rec_finish(&r), -EINVAL);

    vt_client_rec_init(&r, buf, sizeof buf);
    for (int i = 0; i < VT_CLIENT_REC_MAX_DEPTH; i++)
        vt_client_rec_object(&r, "o");
    assert_int_equal(vt_client_rec_finish(&r), -EINVAL);

    /* finish closes what is open; int extremes */
    vt_client_rec_init(&r, buf, sizeof buf);
    vt_client_rec_object(&r, "metrics");
    vt_client_rec_int(&r, "a", INT64_MIN);
    assert_int_equal(vt_client_rec_finish(&r), (int)strlen("{\"metrics\":{\"a\":-9223372036854775808}}"));
    assert_memory_equal(buf, "{\"metrics\":{\"a\":-9223372036854775808}}", (size_t)r.len);

    vt_client_rec_init(&r, buf, sizeof buf);
    assert_int_equal(vt_client_rec_finish(&r), 2);
    assert_memory_equal(buf, "{}", 2);
}

static void test_format_call(void **state)
{
    (void)state;
    char buf[2048];
    vt_client_call empty = VT_CLIENT_CALL_INIT;
    assert_int_equal(vt_client_format_call(&empty, buf, sizeof buf), 2);

    vt_client_metric m[] = {{"relevance", 0.5}, {"feedback", 1}};
    vt_client_label l[] = {{"tier", "gold"}, {"region", "e\"u"}};
    float emb[] = {0.1f, -0.2f, 0.33f};
    vt_client_call call = VT_CLIENT_CALL_INIT;
    call.ts_ms = 1764288000123;
    call.service = "support-bot";
    call.model = "gpt-4o";
    call.provider = "openai";
    call.version = "v1";
    call.latency_ms = 0; /* zero is a value, not absent */
    call.ttft_ms = 12.25;
    call.status = VT_CLIENT_STATUS_ERROR;
    call.error_type = "timeout";
    call.input_tokens = 0;
    call.output_tokens = 7;
    call.cost_usd = 0.0031;
    call.request_id = "r-1";
    call.metrics = m;
    call.n_metrics = 2;
    call.labels = l;
    call.n_labels = 2;
    call.embedding = emb;
    call.n_embedding = 3;
    int n = vt_client_format_call(&call, buf, sizeof buf);
    assert_true(n > 0);
    struct vt_record rec;
    assert_int_equal(decode(buf, (size_t)n, &rec), VT_RECORD_DATA);
    assert_int_equal(rec.ts_ms, 1764288000123);
    assert_true(str_eq(rec.provider, "openai"));
    assert_true(rec.present & VT_FIELD_BIT(VT_FIELD_LATENCY_MS));
    assert_true(rec.latency_ms == 0);
    assert_true(rec.ttft_ms == 12.25);
    assert_true(rec.error);
    assert_true(str_eq(rec.error_type, "timeout"));
    assert_int_equal(rec.input_tokens, 0);
    assert_int_equal(rec.output_tokens, 7);
    assert_true(rec.cost_usd == 0.0031);
    assert_int_equal(rec.n_labels, 2);
    assert_true(str_eq(rec.labels[0].value, "e\"u"));
    assert_int_equal(rec.n_embedding, 3);
    assert_true((float)rec.embedding[0] == 0.1f);
    assert_true(str_eq(rec.request_id, "r-1"));
    assert_int_equal(vt_client_format_call(&call, buf, 40), -ENOSPC);
}

/* --- datagram mode against a socket bound here ------------------------------ */

static int bind_dgram(const char *dir)
{
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    snprintf(a.sun_path, sizeof a.sun_path, "%s/ingest.dgram", dir);
    unlink(a.sun_path);
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    assert_true(fd >= 0);
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    return fd;
}

static void test_dgram_send_and_queue_full(void **state)
{
    (void)state;
    char *dir = make_tmpdir();
    int srv = bind_dgram(dir);
    vt_client *c;
    assert_int_equal(vt_client_open(&c, dir, NULL), 0);
    assert_int_equal(vt_client_send_line(c, "{\"a\":1}\n", 8), 0); /* trailing \n allowed */
    assert_int_equal(vt_client_send_line(c, "{\"b\":\"x\"}", 9), 0);
    assert_int_equal(vt_client_send_line(c, "{\"a\":\n1}", 8), -EINVAL);
    assert_int_equal(vt_client_send_line(c, "\n", 1), -EINVAL);
    char rb[256];
    ssize_t k = recv(srv, rb, sizeof rb, 0);
    assert_int_equal(k, 7);
    assert_memory_equal(rb, "{\"a\":1}", 7);
    k = recv(srv, rb, sizeof rb, 0);
    assert_int_equal(k, 9);

    /* Nobody reads: the kernel queue fills, sends return -EAGAIN at once. */
    int full = 0, ok = 0;
    double worst = 0;
    for (int i = 0; i < 5000; i++) {
        double t0 = now_s();
        int rc = vt_client_send_line(c, "{\"service\":\"s\"}", 15);
        double dt = now_s() - t0;
        if (dt > worst)
            worst = dt;
        if (rc == 0)
            ok++;
        else {
            assert_int_equal(rc, -EAGAIN);
            full++;
        }
    }
    assert_true(full > 0);
    assert_true(worst < 0.05); /* never blocked (a generous bound for sanitizers) */
    vt_client_stats st;
    vt_client_get_stats(c, &st);
    assert_int_equal(st.sent, (uint64_t)ok + 2);
    assert_int_equal(st.dropped_full, (uint64_t)full);
    assert_int_equal(st.dropped_bad, 2);
    assert_int_equal(st.dropped, (uint64_t)full + 2);
    /* Everything counted as sent is really there. */
    int got = 0;
    while (recv(srv, rb, sizeof rb, MSG_DONTWAIT) > 0)
        got++;
    assert_int_equal(got, ok);
    vt_client_close(c);
    close(srv);
    rm_rf(dir);
    free(dir);
}

static void test_dgram_agent_down_then_back(void **state)
{
    (void)state;
    char *dir = make_tmpdir();
    vt_client *c;
    vt_client_options o = {.mode = VT_CLIENT_DGRAM, .backoff_initial_ms = 50, .backoff_max_ms = 200};
    assert_int_equal(vt_client_open(&c, dir, &o), 0); /* agent absent: open still works */
    double worst = 0;
    for (int i = 0; i < 2000; i++) {
        double t0 = now_s();
        assert_int_equal(vt_client_send_line(c, "{}", 2), -ENOTCONN);
        double dt = now_s() - t0;
        if (dt > worst)
            worst = dt;
    }
    assert_true(worst < 0.05);
    vt_client_stats st;
    vt_client_get_stats(c, &st);
    assert_int_equal(st.dropped_down, 2000);
    assert_int_equal(st.sent, 0);
    /* Backoff: 2000 sends made only a handful of connect attempts. */
    assert_true(st.connect_fails >= 1 && st.connect_fails < 50);

    /* The agent comes up: within the backoff cap the client reconnects. */
    int srv = bind_dgram(dir);
    double deadline = now_s() + 5;
    while (vt_client_send_line(c, "{\"n\":1}", 7) != 0) {
        assert_true(now_s() < deadline);
        sleep_ms(10);
    }
    char rb[64];
    assert_int_equal(recv(srv, rb, sizeof rb, 0), 7);

    /* The agent restarts (new socket file): the next send reconnects at once. */
    close(srv);
    srv = bind_dgram(dir);
    assert_int_equal(vt_client_send_line(c, "{\"n\":2}", 7), 0);
    assert_int_equal(recv(srv, rb, sizeof rb, 0), 7);
    assert_memory_equal(rb, "{\"n\":2}", 7);
    vt_client_get_stats(c, &st);
    assert_int_equal(st.connects, 2);
    assert_int_equal(st.sent, 2);
    vt_client_close(c);
    close(srv);
    rm_rf(dir);
    free(dir);
}

/* --- stream mode against a listener bound here ------------------------------ */

static int listen_stream(const char *dir)
{
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    snprintf(a.sun_path, sizeof a.sun_path, "%s/ingest.sock", dir);
    unlink(a.sun_path);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(fd >= 0);
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(listen(fd, 16), 0);
    return fd;
}

/* Read what is available within timeout_ms into a growing buffer. */
struct sink {
    char *buf;
    size_t len, cap;
};

static void sink_read(struct sink *s, int fd, int timeout_ms)
{
    double deadline = now_s() + timeout_ms / 1000.0;
    for (;;) {
        struct pollfd p = {fd, POLLIN, 0};
        int left = (int)((deadline - now_s()) * 1000);
        if (left < 0 || poll(&p, 1, left) <= 0)
            return;
        if (s->cap - s->len < 65536) {
            s->cap = s->cap * 2 + 65536;
            s->buf = realloc(s->buf, s->cap);
            assert_non_null(s->buf);
        }
        ssize_t k = recv(fd, s->buf + s->len, s->cap - s->len, 0);
        if (k <= 0)
            return;
        s->len += (size_t)k;
    }
}

/* The complete lines of s: record ids {"i":N}; a trailing partial line is
 * ignored as the agent ignores it. Returns the count; ids in out. */
static size_t sink_ids(const struct sink *s, long *out, size_t max)
{
    size_t n = 0, start = 0;
    for (size_t i = 0; i < s->len; i++) {
        if (s->buf[i] != '\n')
            continue;
        long id;
        char line[64];
        size_t l = i - start < sizeof line - 1 ? i - start : sizeof line - 1;
        memcpy(line, s->buf + start, l);
        line[l] = 0;
        assert_int_equal(sscanf(line, "{\"i\":%ld,", &id), 1);
        assert_true(n < max);
        out[n++] = id;
        start = i + 1;
    }
    return n;
}

#define PAD "\"pad\":\"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\"}"

/* Every record is REC_LEN bytes with its newline. */
#define REC_LEN (sizeof("{\"i\":000000," PAD))
static int send_id(vt_client *c, long i)
{
    char line[512];
    int n = snprintf(line, sizeof line, "{\"i\":%06ld," PAD, i);
    assert_int_equal((size_t)n + 1, REC_LEN);
    return vt_client_send_line(c, line, (size_t)n);
}

static void test_stream_partial_writes_and_reconnect(void **state)
{
    (void)state;
    char *dir = make_tmpdir();
    int lst = listen_stream(dir);
    vt_client *c;
    vt_client_options o = {.mode = VT_CLIENT_STREAM, .buffer_bytes = 64 * 1024,
                           .backoff_initial_ms = 20, .backoff_max_ms = 100};
    assert_int_equal(vt_client_open(&c, dir, &o), 0);
    int a = accept(lst, NULL, NULL);
    assert_true(a >= 0);

    /* Nobody reads: the kernel fills, then our buffer, then sends drop. */
    enum { N = 20000 };
    static int rc[N];
    long ids[N];
    int nok = 0, nfull = 0;
    double worst = 0;
    for (long i = 0; i < N; i++) {
        double t0 = now_s();
        rc[i] = send_id(c, i);
        double dt = now_s() - t0;
        if (dt > worst)
            worst = dt;
        if (rc[i] == 0)
            nok++;
        else {
            assert_int_equal(rc[i], -EAGAIN);
            nfull++;
        }
    }
    assert_true(worst < 0.05);
    assert_true(nfull > 0);
    vt_client_stats st;
    vt_client_get_stats(c, &st);
    assert_true(st.queued > 0);
    assert_int_equal(st.dropped_full, (uint64_t)nfull);
    assert_int_equal(st.sent + st.queued, (uint64_t)nok);

    /* Drain a little at a time and flush until the client has written part
     * of a record (all records have the same length, so st.bytes tells),
     * then read what the kernel holds and close: the peer went away with a
     * record cut in half. */
    struct sink s1 = {0};
    int cut = 0;
    for (int k = 0; k < 2000 && !cut; k++) {
        char tmp[1500];
        ssize_t got = recv(a, tmp, sizeof tmp, MSG_DONTWAIT);
        if (got > 0) {
            if (s1.cap - s1.len < (size_t)got) {
                s1.cap = s1.cap * 2 + 65536;
                s1.buf = realloc(s1.buf, s1.cap);
            }
            memcpy(s1.buf + s1.len, tmp, (size_t)got);
            s1.len += (size_t)got;
        }
        vt_client_flush(c);
        vt_client_get_stats(c, &st);
        cut = st.bytes % REC_LEN != 0 && st.queued > 0;
    }
    assert_true(cut);
    sink_read(&s1, a, 50);
    assert_int_equal(s1.len, st.bytes); /* everything written was read */
    close(a);
    close(lst);
    lst = listen_stream(dir); /* the "agent" restarted */
    long more = N;
    for (int k = 0; k < 5; k++) /* the first one notices the broken connection */
        if (send_id(c, more++) == 0)
            nok++;
    a = -1;
    double deadline = now_s() + 5;
    struct sink s2 = {0};
    for (;;) {
        int fl = vt_client_flush(c);
        if (a < 0) {
            struct pollfd p = {lst, POLLIN, 0};
            if (poll(&p, 1, 10) > 0)
                a = accept(lst, NULL, NULL);
        } else {
            sink_read(&s2, a, 10);
            if (fl == 0)
                break;
        }
        assert_true(now_s() < deadline);
    }
    sink_read(&s2, a, 100);
    vt_client_get_stats(c, &st);
    assert_int_equal(st.queued, 0);
    assert_int_equal(st.connects, 2);
    /* Exactly the cut record was given up and counted; everything else
     * arrived whole, in order, once; the second connection starts on a line
     * boundary (sink_ids asserts every line parses). */
    assert_int_equal(st.dropped_down, 1);
    assert_int_equal(st.sent + st.dropped_down, (uint64_t)nok);
    size_t n1 = sink_ids(&s1, ids, N);
    size_t n2 = sink_ids(&s2, ids + n1, N - n1);
    assert_int_equal(n1 + n2 + 1, (size_t)nok);
    assert_true(s1.len % REC_LEN != 0); /* s1 ends in the partial record */
    assert_true(n1 > 0 && n2 > 0);
    for (size_t i = 1; i < n1 + n2; i++)
        assert_true(ids[i] > ids[i - 1]);
    assert_int_equal(ids[n1], ids[n1 - 1] + 2); /* the cut one is missing */
    assert_int_equal(ids[n1 + n2 - 1], more - 1);
    print_message("stream reconnect: %zu + %zu records over two connections, 1 cut\n", n1, n2);
    free(s1.buf);
    free(s2.buf);
    vt_client_close(c);
    close(a);
    close(lst);
    rm_rf(dir);
    free(dir);
}

static void test_stream_exact_delivery(void **state)
{
    (void)state;
    /* A reader that keeps up: every record arrives once, whole, in order, and
     * partial writes (small socket buffer on the reader side) are resumed. */
    char *dir = make_tmpdir();
    int lst = listen_stream(dir);
    vt_client *c;
    vt_client_options o = {.mode = VT_CLIENT_STREAM, .buffer_bytes = 1 << 20};
    assert_int_equal(vt_client_open(&c, dir, &o), 0);
    int a = accept(lst, NULL, NULL);
    int small = 4096;
    setsockopt(a, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
    enum { N = 3000 };
    struct sink s = {0};
    for (long i = 0; i < N; i++) {
        assert_int_equal(send_id(c, i), 0);
        if (i % 100 == 0)
            sink_read(&s, a, 0);
    }
    double deadline = now_s() + 5;
    while (vt_client_flush(c) > 0) {
        sink_read(&s, a, 5);
        assert_true(now_s() < deadline);
    }
    sink_read(&s, a, 100);
    static long ids[N];
    assert_int_equal(sink_ids(&s, ids, N), N);
    for (long i = 0; i < N; i++)
        assert_int_equal(ids[i], i);
    vt_client_stats st;
    vt_client_get_stats(c, &st);
    assert_int_equal(st.sent, N);
    assert_int_equal(st.dropped, 0);
    assert_int_equal(st.bytes, s.len);
    free(s.buf);
    vt_client_close(c);
    close(a);
    close(lst);
    rm_rf(dir);
    free(dir);
}

static void test_stream_agent_down_buffers_then_drops(void **state)
{
    (void)state;
    char *dir = make_tmpdir();
    vt_client *c;
    vt_client_options o = {.mode = VT_CLIENT_STREAM, .buffer_bytes = 8192,
                           .backoff_initial_ms = 20, .backoff_max_ms = 50};
    assert_int_equal(vt_client_open(&c, dir, &o), 0);
    int ok = 0, dropped = 0;
    double worst = 0;
    for (long i = 0; i < 1000; i++) {
        double t0 = now_s();
        int rc = send_id(c, i);
        double dt = now_s() - t0;
        if (dt > worst)
            worst = dt;
        if (rc == 0)
            ok++;
        else {
            assert_int_equal(rc, -EAGAIN);
            dropped++;
        }
    }
    assert_true(worst < 0.05);
    assert_true(ok > 0 && ok < 40); /* 8 KiB of ~230-byte records */
    assert_int_equal(dropped, 1000 - ok);
    assert_int_equal(vt_client_sync(c, 100), -ENOTCONN);
    /* The agent appears: the buffered records go out, in order. */
    int lst = listen_stream(dir);
    double deadline = now_s() + 5;
    while (vt_client_flush(c) != 0) {
        assert_true(now_s() < deadline);
        sleep_ms(5);
    }
    int a = accept(lst, NULL, NULL);
    struct sink s = {0};
    sink_read(&s, a, 100);
    long ids[64];
    assert_int_equal(sink_ids(&s, ids, 64), (size_t)ok);
    for (int i = 0; i < ok; i++)
        assert_int_equal(ids[i], i);
    free(s.buf);
    vt_client_close(c);
    close(a);
    close(lst);
    rm_rf(dir);
    free(dir);
}

static void test_open_errors(void **state)
{
    (void)state;
    vt_client *c;
    vt_client_options bad = {.mode = 7};
    assert_int_equal(vt_client_open(&c, "/tmp", &bad), -EINVAL);
    char longdir[200];
    memset(longdir, 'd', sizeof longdir - 1);
    longdir[sizeof longdir - 1] = 0;
    assert_int_equal(vt_client_open(&c, longdir, NULL), -ENAMETOOLONG);
    assert_int_equal(vt_client_open(&c, "/nonexistent", NULL), 0);
    assert_int_equal(vt_client_sync(c, 10), -EOPNOTSUPP);
    vt_client_close(c);
    vt_client_close(NULL);
}

/* --- background mode against a listener bound here --------------------------- */

static void test_background_options(void **state)
{
    (void)state;
    vt_client *c;
    vt_client_options o = {.mode = VT_CLIENT_DGRAM, .flags = VT_CLIENT_BACKGROUND};
    assert_int_equal(vt_client_open(&c, "/tmp", &o), -EINVAL);
    o.mode = VT_CLIENT_STREAM;
    o.flags = VT_CLIENT_BACKGROUND | VT_CLIENT_NO_LOCK;
    assert_int_equal(vt_client_open(&c, "/tmp", &o), -EINVAL);
    o.flags = VT_CLIENT_BACKGROUND;
    o.flush_interval_ms = -1;
    assert_int_equal(vt_client_open(&c, "/tmp", &o), -EINVAL);
    o.flags = 1 << 7;
    o.flush_interval_ms = 0;
    assert_int_equal(vt_client_open(&c, "/tmp", &o), -EINVAL);
    o.flags = VT_CLIENT_BACKGROUND;
    assert_int_equal(vt_client_open(&c, "/nonexistent", &o), 0);
    assert_int_equal(send_id(c, 1), 0);
    assert_int_equal(vt_client_sync(c, 10), -ENOTCONN);
    vt_client_close(c);
}

/* Kick the thread and read until nothing is queued (or fail after 10 s). */
static void bg_drain(vt_client *c, int lst, int *a, struct sink *s)
{
    double deadline = now_s() + 10;
    for (;;) {
        vt_client_stats st;
        vt_client_get_stats(c, &st);
        if (st.queued == 0)
            break;
        (void)vt_client_flush(c);
        if (*a < 0) {
            struct pollfd p = {lst, POLLIN, 0};
            if (poll(&p, 1, 10) > 0)
                *a = accept(lst, NULL, NULL);
        } else {
            sink_read(s, *a, 5);
        }
        assert_true(now_s() < deadline);
    }
    if (*a >= 0)
        sink_read(s, *a, 100);
}

static void test_background_exact_delivery(void **state)
{
    (void)state;
    /* Every record arrives once, whole, in order, through partial writes (a
     * small receive buffer), a reader that lags, and a buffer that passes
     * half full (the senders kick the thread). */
    char *dir = make_tmpdir();
    int lst = listen_stream(dir);
    vt_client *c;
    vt_client_options o = {.mode = VT_CLIENT_STREAM, .flags = VT_CLIENT_BACKGROUND,
                           .buffer_bytes = 1 << 20, .flush_interval_ms = 2};
    assert_int_equal(vt_client_open(&c, dir, &o), 0);
    int a = accept(lst, NULL, NULL);
    int small = 4096;
    setsockopt(a, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
    enum { N = 3000 };
    struct sink s = {0};
    for (long i = 0; i < N; i++) {
        assert_int_equal(send_id(c, i), 0);
        if (i % 100 == 0)
            sink_read(&s, a, 0);
    }
    bg_drain(c, lst, &a, &s);
    static long ids[N];
    assert_int_equal(sink_ids(&s, ids, N), N);
    for (long i = 0; i < N; i++)
        assert_int_equal(ids[i], i);
    vt_client_stats st;
    vt_client_get_stats(c, &st);
    assert_int_equal(st.sent, N);
    assert_int_equal(st.dropped, 0);
    assert_int_equal(st.queued, 0);
    assert_int_equal(st.bytes, s.len);
    assert_int_equal(st.connects, 1);
    free(s.buf);
    vt_client_close(c);
    close(a);
    close(lst);
    rm_rf(dir);
    free(dir);
}

static void test_background_sends_make_no_syscall(void **state)
{
    (void)state;
    char *dir = make_tmpdir();
    /* The counter sees the default stream client's calls (it is not vacuous). */
    int lst = listen_stream(dir);
    vt_client *c;
    vt_client_options o = {.mode = VT_CLIENT_STREAM};
    assert_int_equal(vt_client_open(&c, dir, &o), 0);
    unsigned long before = sock_calls;
    assert_int_equal(send_id(c, 0), 0);
    assert_true(sock_calls > before);
    vt_client_close(c);
    close(lst);
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/ingest.sock", dir);
    unlink(path);

    /* Agent absent: 100k background sends, no socket call on this thread; the
     * buffer (64 KiB) fills, then sends drop and count. */
    o = (vt_client_options){.mode = VT_CLIENT_STREAM, .flags = VT_CLIENT_BACKGROUND,
                            .buffer_bytes = 64 * 1024, .backoff_initial_ms = 10,
                            .backoff_max_ms = 40};
    assert_int_equal(vt_client_open(&c, dir, &o), 0);
    enum { N = 100000 };
    int ok = 0, full = 0, slow = 0;
    double worst = 0;
    before = sock_calls;
    for (long i = 0; i < N; i++) {
        double t0 = now_s();
        int rc = send_id(c, i);
        double dt = now_s() - t0;
        if (dt > worst)
            worst = dt;
        if (dt > 50e-6)
            slow++;
        if (rc == 0)
            ok++;
        else {
            assert_int_equal(rc, -EAGAIN);
            full++;
        }
    }
    assert_int_equal(sock_calls, before);
    print_message("background, agent down: %d sends, worst %.1f us, %d over 50 us\n", N,
                  worst * 1e6, slow);
    /* The exact check is the one above: no socket call. Each send is a
     * memcpy under a mutex, but on a shared 2-vCPU VM the thread is preempted
     * now and then: the same loop without any client (snprintf + memcpy)
     * measured 0-2 sends over 50 us per 100k, this one 0-20 under ASan with
     * the writer thread asleep or not, ~50 under TSan. So: p99.9 under
     * 50 us, and none near a block. */
    assert_true(slow <= N / 1000);
    assert_true(worst < 0.05);
    assert_int_equal(ok, (int)(64 * 1024 / REC_LEN));
    vt_client_stats st;
    vt_client_get_stats(c, &st);
    assert_int_equal(st.queued, (uint64_t)ok);
    assert_int_equal(st.dropped_full, (uint64_t)full);
    assert_int_equal(st.dropped, (uint64_t)full);
    assert_int_equal(st.sent, 0);
    assert_true(st.connect_fails >= 1);
    assert_int_equal(vt_client_flush(c), -ENOTCONN);

    /* The agent appears: the thread connects by itself and writes the buffer,
     * in order. */
    lst = listen_stream(dir);
    int a = -1;
    struct sink s = {0};
    double deadline = now_s() + 10;
    while (a < 0) {
        struct pollfd p = {lst, POLLIN, 0};
        if (poll(&p, 1, 10) > 0)
            a = accept(lst, NULL, NULL);
        assert_true(now_s() < deadline);
    }
    bg_drain(c, lst, &a, &s);
    static long ids[N];
    assert_int_equal(sink_ids(&s, ids, N), (size_t)ok);
    for (int i = 0; i < ok; i++)
        assert_int_equal(ids[i], i);
    vt_client_get_stats(c, &st);
    assert_int_equal(st.sent, (uint64_t)ok);
    assert_int_equal(st.connects, 1);
    assert_int_equal(st.sent + st.dropped, (uint64_t)N);
    assert_int_equal(vt_client_flush(c), 0);
    free(s.buf);
    vt_client_close(c);
    close(a);
    close(lst);
    rm_rf(dir);
    free(dir);
}

static void test_background_close(void **state)
{
    (void)state;
    char *dir = make_tmpdir();
    vt_client *c;
    /* A long interval: only close writes these. */
    vt_client_options o = {.mode = VT_CLIENT_STREAM, .flags = VT_CLIENT_BACKGROUND,
                           .buffer_bytes = 4 << 20, .flush_interval_ms = 60000};

    /* 1. The agent is absent: close returns at once, the records are lost. */
    assert_int_equal(vt_client_open(&c, dir, &o), 0);
    for (long i = 0; i < 100; i++)
        assert_int_equal(send_id(c, i), 0);
    double t0 = now_s();
    vt_client_close(c);
    assert_true(now_s() - t0 < 0.5);

    /* 2. The agent is there: close writes what is buffered. */
    int lst = listen_stream(dir);
    assert_int_equal(vt_client_open(&c, dir, &o), 0);
    int a = accept(lst, NULL, NULL);
    for (long i = 0; i < 10; i++)
        assert_int_equal(send_id(c, i), 0);
    vt_client_close(c);
    struct sink s = {0};
    sink_read(&s, a, 200);
    long ids[16];
    assert_int_equal(sink_ids(&s, ids, 16), 10);
    assert_int_equal(s.len, 10 * REC_LEN);
    close(a);
    s.len = 0;

    /* 3. Nobody reads and 4 MiB are buffered, more than the kernel takes:
     * close writes what fits and returns. */
    assert_int_equal(vt_client_open(&c, dir, &o), 0);
    a = accept(lst, NULL, NULL);
    long n = 0;
    while (send_id(c, n) == 0)
        n++;
    assert_true(n > 10000);
    t0 = now_s();
    vt_client_close(c);
    assert_true(now_s() - t0 < 0.5);
    sink_read(&s, a, 200); /* a prefix: whole records, then perhaps a cut one */
    static long ids2[20000];
    size_t got = sink_ids(&s, ids2, 20000);
    assert_true(got > 0 && got < (size_t)n);
    for (size_t i = 0; i < got; i++)
        assert_int_equal(ids2[i], (long)i);
    free(s.buf);
    close(a);
    close(lst);
    rm_rf(dir);
    free(dir);
}

/* 4 threads share one background client while this thread reads. */
enum { BG_THREADS = 4, BG_PER_THREAD = 20000 };

struct bg_sender {
    vt_client *c;
    int t, ok, full;
    pthread_t th;
};

static void *bg_sender_main(void *arg)
{
    struct bg_sender *b = arg;
    for (long i = 0; i < BG_PER_THREAD; i++) {
        int rc = send_id(b->c, (long)b->t * 100000 + i);
        if (rc == 0)
            b->ok++;
        else if (rc == -EAGAIN)
            b->full++;
    }
    return NULL;
}

static void test_background_threads(void **state)
{
    (void)state;
    char *dir = make_tmpdir();
    int lst = listen_stream(dir);
    vt_client *c;
    vt_client_options o = {.mode = VT_CLIENT_STREAM, .flags = VT_CLIENT_BACKGROUND,
                           .buffer_bytes = 256 * 1024, .flush_interval_ms = 1};
    assert_int_equal(vt_client_open(&c, dir, &o), 0);
    int a = accept(lst, NULL, NULL);
    struct bg_sender b[BG_THREADS];
    for (int t = 0; t < BG_THREADS; t++) {
        b[t] = (struct bg_sender){.c = c, .t = t};
        assert_int_equal(pthread_create(&b[t].th, NULL, bg_sender_main, &b[t]), 0);
    }
    /* Read while they send; check a snapshot's consistency on the way. */
    struct sink s = {0};
    for (int k = 0; k < 20; k++) {
        sink_read(&s, a, 5);
        vt_client_stats st;
        vt_client_get_stats(c, &st);
        assert_int_equal(st.dropped, st.dropped_full);
        assert_true(st.bytes >= st.sent * REC_LEN);
    }
    int ok = 0, full = 0;
    for (int t = 0; t < BG_THREADS; t++) {
        assert_int_equal(pthread_join(b[t].th, NULL), 0);
        assert_int_equal(b[t].ok + b[t].full, BG_PER_THREAD);
        ok += b[t].ok;
        full += b[t].full;
    }
    bg_drain(c, lst, &a, &s);
    vt_client_stats st;
    vt_client_get_stats(c, &st);
    assert_int_equal(st.sent, (uint64_t)ok);
    assert_int_equal(st.dropped_full, (uint64_t)full);
    assert_int_equal(st.dropped, (uint64_t)full);
    assert_int_equal(st.queued, 0);
    assert_int_equal(st.bytes, s.len);
    static long ids[BG_THREADS * BG_PER_THREAD];
    size_t n = sink_ids(&s, ids, BG_THREADS * BG_PER_THREAD);
    assert_int_equal(n, (size_t)ok);
    /* each thread's records in its order, none twice */
    long last[BG_THREADS];
    int per[BG_THREADS] = {0};
    for (int t = 0; t < BG_THREADS; t++)
        last[t] = -1;
    for (size_t i = 0; i < n; i++) {
        int t = (int)(ids[i] / 100000);
        assert_true(t >= 0 && t < BG_THREADS);
        assert_true(ids[i] % 100000 > last[t]);
        last[t] = ids[i] % 100000;
        per[t]++;
    }
    for (int t = 0; t < BG_THREADS; t++)
        assert_int_equal(per[t], b[t].ok);
    print_message("background, 4 threads: %d sent, %d dropped (buffer full)\n", ok, full);
    free(s.buf);
    vt_client_close(c);
    close(a);
    close(lst);
    rm_rf(dir);
    free(dir);
}

int main(void)
{
    /* SIGPIPE keeps its default action: a client write to a closed peer that
     * raised it would kill this test (the client must use MSG_NOSIGNAL). */
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_builder_escaping),
        cmocka_unit_test(test_builder_errors),
        cmocka_unit_test(test_format_call),
        cmocka_unit_test(test_open_errors),
        cmocka_unit_test(test_dgram_send_and_queue_full),
        cmocka_unit_test(test_dgram_agent_down_then_back),
        cmocka_unit_test(test_stream_exact_delivery),
        cmocka_unit_test(test_stream_partial_writes_and_reconnect),
        cmocka_unit_test(test_stream_agent_down_buffers_then_drops),
        cmocka_unit_test(test_background_options),
        cmocka_unit_test(test_background_exact_delivery),
        cmocka_unit_test(test_background_sends_make_no_syscall),
        cmocka_unit_test(test_background_close),
        cmocka_unit_test(test_background_threads),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    if (dec)
        vt_record_decoder_free(dec);
    return rc;
}
