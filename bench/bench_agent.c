/*
 * bench_agent.c - the sidecar measured from outside, as applications see it
 * (issue 3, "Benchmarks"). Starts the real build-bench/bin/vitals-agent (and
 * vitals-scorer) in a temp dir with the default window and --fsync interval,
 * drives them through their Unix sockets, and reads the daemons' own figures:
 * CPU from /proc/<pid>/stat (user+sys), RSS from /proc/<pid>/status, counters
 * from /metrics. Every process is killed by pid on exit.
 *
 *   agent A (spool only, no scorer: the spool is never trimmed, so its size
 *   is exactly what was written):
 *     rss_mib_1k_series        RSS after 1,000 distinct series in a window
 *     client_send_p50_us/p99   vitals_client stream send, agent running, ~50k/s
 *     client_send_p99_us_agent_down   same client, no agent (buffer, then drops)
 *       (the _dgram variants: the datagram client; _nolock: VT_CLIENT_NO_LOCK)
 *     stream_records_per_cpu_s 1,000,000 records pushed by an independent
 *                              writer (blocking socket), then {"sync"}; /metrics
 *                              must show exactly 1,000,000 more accepted
 *     spool_bytes_per_record   spool growth over those records
 *     dgram_records_per_cpu_s  200,000 datagrams, paced by blocking sends so
 *                              none is dropped (the kernel queue here is
 *                              net.unix.max_dgram_qlen datagrams long)
 *   agent B (shipping to a real scorer through a byte-counting TCP relay):
 *     idle_cpu_percent         >= 10 s with no input
 *     shipped_bytes_per_record HTTP/2 bytes agent -> scorer as counted by the
 *                              relay, per record, at 10,000 records/s of one
 *                              service (a sidecar serves one app) over two
 *                              whole windows; batch_bytes_per_record: the
 *                              batches before gRPC zstd
 *                              (vitals_agent_shipped_bytes_total)
 *
 * The client is compiled in from client/vitals_client.c, as an application
 * vendoring it would (benchmarks link only lib/).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <limits.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"
#include "gen.h"
#include "vitals_client.c"

static char bindir[PATH_MAX - 64], tmpdir[256];
static pid_t pids[8];
static int npids;

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

static void kill_all(void)
{
    for (int i = 0; i < npids; i++)
        if (pids[i] > 0) {
            kill(pids[i], SIGKILL);
            waitpid(pids[i], NULL, 0);
            pids[i] = 0;
        }
}

static void cleanup(void)
{
    kill_all();
    if (tmpdir[0] && !getenv("BENCH_AGENT_KEEP")) {
        char cmd[300];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
        if (system(cmd) != 0)
            fprintf(stderr, "bench_agent: could not remove %s\n", tmpdir);
    }
}

static void on_signal(int sig)
{
    (void)sig;
    for (int i = 0; i < npids; i++)
        if (pids[i] > 0)
            kill(pids[i], SIGKILL);
    _exit(1);
}

static void die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "bench_agent: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, " (logs in %s; set BENCH_AGENT_KEEP=1 to keep them)\n", tmpdir);
    va_end(ap);
    exit(1);
}

static void sleep_s(double s)
{
    struct timespec ts = {(time_t)s, (long)((s - (time_t)s) * 1e9)};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t l = sizeof a;
    if (bind(fd, (struct sockaddr *)&a, sizeof a) != 0 || getsockname(fd, (struct sockaddr *)&a, &l))
        die("bind: %s", strerror(errno));
    close(fd);
    return ntohs(a.sin_port);
}

static pid_t spawn(const char *name, char *const argv[])
{
    char log[PATH_MAX];
    snprintf(log, sizeof log, "%s/%s.log", tmpdir, name);
    pid_t pid = fork();
    if (pid < 0)
        die("fork: %s", strerror(errno));
    if (pid == 0) {
        int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0644);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
        }
        execv(argv[0], argv);
        _exit(127);
    }
    pids[npids++] = pid;
    return pid;
}

static void stop(pid_t pid)
{
    for (int i = 0; i < npids; i++)
        if (pids[i] == pid) {
            kill(pid, SIGKILL);
            waitpid(pid, NULL, 0);
            pids[i] = 0;
        }
}

static double proc_rss_mib(pid_t pid)
{
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f)
        die("%s: %s", path, strerror(errno));
    double kb = -1;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "VmRSS: %lf", &kb) == 1)
            break;
    fclose(f);
    return kb / 1024;
}

/* GET /metrics from an admin port; the value of the sample `name`, or -1. */
static double metric(int port, const char *name)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    struct timeval tv = {5, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        close(fd);
        return -1;
    }
    const char req[] = "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    if (write(fd, req, sizeof req - 1) != (ssize_t)(sizeof req - 1)) {
        close(fd);
        return -1;
    }
    static char body[1 << 20];
    size_t len = 0;
    ssize_t k;
    while (len < sizeof body - 1 && (k = read(fd, body + len, sizeof body - 1 - len)) > 0)
        len += (size_t)k;
    close(fd);
    body[len] = 0;
    size_t nl = strlen(name);
    for (char *p = body; (p = strstr(p, name)) != NULL; p++)
        if ((p == body || p[-1] == '\n') && p[nl] == ' ')
            return strtod(p + nl + 1, NULL);
    return -1;
}

/* ---- one agent ------------------------------------------------------------------ */

struct agent {
    pid_t pid;
    int admin;
    char sockdir[PATH_MAX], spool[PATH_MAX];
};

static void agent_start(struct agent *ag, const char *name, const char *scorer_url,
                        const char *token_file)
{
    char bin[PATH_MAX], admin[32], grpc[32], http[32];
    snprintf(bin, sizeof bin, "%s/vitals-agent", bindir);
    snprintf(ag->sockdir, sizeof ag->sockdir, "%s/%s-run", tmpdir, name);
    snprintf(ag->spool, sizeof ag->spool, "%s/%s-spool", tmpdir, name);
    ag->admin = free_port();
    snprintf(admin, sizeof admin, "127.0.0.1:%d", ag->admin);
    snprintf(grpc, sizeof grpc, "127.0.0.1:%d", free_port());
    snprintf(http, sizeof http, "127.0.0.1:%d", free_port());
    char *argv[32];
    int n = 0;
    argv[n++] = bin;
    argv[n++] = "--socket-dir", argv[n++] = ag->sockdir;
    argv[n++] = "--spool-dir", argv[n++] = ag->spool;
    argv[n++] = "--admin-addr", argv[n++] = admin;
    argv[n++] = "--otlp-grpc-addr", argv[n++] = grpc;
    argv[n++] = "--otlp-http-addr", argv[n++] = http;
    argv[n++] = "--service", argv[n++] = "bench";
    argv[n++] = "--agent-id", argv[n++] = (char *)name;
    argv[n++] = "--fsync", argv[n++] = "interval";
    argv[n++] = "--scorer", argv[n++] = (char *)(scorer_url ? scorer_url : "");
    if (token_file)
        argv[n++] = "--token-file", argv[n++] = (char *)token_file;
    /* BENCH_AGENT_ARGS: extra flags for experiments ("--compression-level 3") */
    static char extra[512];
    const char *e = getenv("BENCH_AGENT_ARGS");
    if (e && !extra[0])
        snprintf(extra, sizeof extra, "%s", e);
    for (char *tok = extra[0] ? strtok(extra, " ") : NULL; tok && n < 30; tok = strtok(NULL, " "))
        argv[n++] = tok;
    argv[n] = NULL;
    ag->pid = spawn(name, argv);
    char sock[PATH_MAX + 16];
    snprintf(sock, sizeof sock, "%s/ingest.sock", ag->sockdir);
    double deadline = bench_now() + 20;
    while (access(sock, F_OK) != 0 || metric(ag->admin, "vitals_agent_records_accepted_total") < 0) {
        if (waitpid(ag->pid, NULL, WNOHANG) != 0)
            die("vitals-agent (%s) exited at start", name);
        if (bench_now() > deadline)
            die("vitals-agent (%s) did not come up", name);
        sleep_s(0.02);
    }
}

static int connect_unix(const char *dir, const char *file, int type)
{
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    snprintf(a.sun_path, sizeof a.sun_path, "%s/%s", dir, file);
    int fd = socket(AF_UNIX, type | SOCK_CLOEXEC, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof a) != 0)
        die("connect %s: %s", a.sun_path, strerror(errno));
    return fd;
}

static void write_all(int fd, const char *p, size_t n)
{
    while (n) {
        ssize_t k = write(fd, p, n);
        if (k < 0) {
            if (errno == EINTR)
                continue;
            die("write to the agent: %s", strerror(errno));
        }
        p += k;
        n -= (size_t)k;
    }
}

/* {"sync":N} on a blocking stream connection; waits for {"synced":N}. */
static void stream_sync(int fd, unsigned n)
{
    char line[64];
    int l = snprintf(line, sizeof line, "{\"sync\":%u}\n", n);
    write_all(fd, line, (size_t)l);
    struct timeval tv = {120, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    char want[64], got[256];
    snprintf(want, sizeof want, "{\"synced\":%u}", n);
    size_t len = 0;
    while (!memmem(got, len, want, strlen(want))) {
        ssize_t k = read(fd, got + len, sizeof got - 1 - len);
        if (k <= 0)
            die("no {\"synced\":%u} from the agent", n);
        len += (size_t)k;
        if (len > 200)
            len = 0;
    }
}

/* ---- input -------------------------------------------------------------------- */

struct corpus {
    char *buf;          /* NDJSON, '\n' after each record */
    size_t len;
    size_t *off;        /* start of record i; off[n] = len */
    size_t n;
};

static void corpus_gen(struct corpus *c, size_t n, uint64_t seed, const char *service)
{
    struct gen g;
    gen_init(&g, seed);
    g.service = service;
    c->buf = malloc(n * 512);
    c->off = malloc((n + 1) * sizeof *c->off);
    if (!c->buf || !c->off)
        die("out of memory");
    c->len = 0;
    for (size_t i = 0; i < n; i++) {
        c->off[i] = c->len;
        size_t k = gen_record(&g, c->buf + c->len, 511);
        if (!k)
            die("gen_record");
        c->len += k;
        c->buf[c->len++] = '\n';
    }
    c->off[n] = c->len;
    c->n = n;
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

static double pct(uint32_t *v, size_t n, double q)
{
    size_t i = (size_t)(q * (double)(n - 1) + 0.5);
    return v[i] / 1000.0;
}

static uint64_t ns_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Time n sends of the client; bursts of `burst` records then `gap_s` of
 * sleep. Latencies in ns into lat (sorted). Returns how many were dropped. */
static size_t time_client(vt_client *cl, const struct corpus *c, size_t n, int burst, double gap_s,
                          uint32_t *lat)
{
    size_t dropped = 0;
    for (size_t i = 0; i < n; i++) {
        size_t r = i % c->n;
        const char *line = c->buf + c->off[r];
        size_t len = c->off[r + 1] - c->off[r] - 1;
        uint64_t t0 = ns_now();
        int rc = vt_client_send_line(cl, line, len);
        uint64_t t1 = ns_now();
        lat[i] = (uint32_t)(t1 - t0 > UINT32_MAX ? UINT32_MAX : t1 - t0);
        if (rc != 0)
            dropped++;
        if (burst && i % (size_t)burst == (size_t)burst - 1)
            sleep_s(gap_s);
    }
    qsort(lat, n, sizeof *lat, cmp_u32);
    return dropped;
}

/* ---- a relay counting the bytes the agent ships ----------------------------------- */

struct relay {
    int lfd, target_port;
    volatile uint64_t up_bytes; /* agent -> scorer */
    volatile int stop;
    pthread_t th;
};

static void *relay_main(void *arg)
{
    struct relay *r = arg;
    enum { MAXC = 8 };
    int a[MAXC], b[MAXC], nc = 0;
    char buf[65536];
    while (!r->stop) {
        struct pollfd p[1 + 2 * MAXC];
        p[0] = (struct pollfd){r->lfd, POLLIN, 0};
        for (int i = 0; i < nc; i++) {
            p[1 + 2 * i] = (struct pollfd){a[i], POLLIN, 0};
            p[2 + 2 * i] = (struct pollfd){b[i], POLLIN, 0};
        }
        if (poll(p, (nfds_t)(1 + 2 * nc), 100) <= 0)
            continue;
        for (int i = nc - 1; i >= 0; i--) {
            int dead = 0;
            for (int dir = 0; dir < 2 && !dead; dir++) {
                if (!(p[1 + 2 * i + dir].revents & (POLLIN | POLLHUP | POLLERR)))
                    continue;
                int from = dir ? b[i] : a[i], to = dir ? a[i] : b[i];
                ssize_t k = read(from, buf, sizeof buf);
                if (k <= 0) {
                    dead = 1;
                    break;
                }
                if (!dir)
                    r->up_bytes += (uint64_t)k;
                for (ssize_t w = 0; w < k;) {
                    ssize_t x = write(to, buf + w, (size_t)(k - w));
                    if (x <= 0) {
                        dead = 1;
                        break;
                    }
                    w += x;
                }
            }
            if (dead) {
                close(a[i]);
                close(b[i]);
                a[i] = a[nc - 1];
                b[i] = b[nc - 1];
                nc--;
            }
        }
        if ((p[0].revents & POLLIN) && nc < MAXC) {
            int fa = accept(r->lfd, NULL, NULL);
            if (fa < 0)
                continue;
            int fb = socket(AF_INET, SOCK_STREAM, 0);
            struct sockaddr_in sa = {.sin_family = AF_INET,
                                     .sin_port = htons((uint16_t)r->target_port),
                                     .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
            if (connect(fb, (struct sockaddr *)&sa, sizeof sa) != 0) {
                close(fa);
                close(fb);
                continue;
            }
            a[nc] = fa;
            b[nc] = fb;
            nc++;
        }
    }
    for (int i = 0; i < nc; i++) {
        close(a[i]);
        close(b[i]);
    }
    return NULL;
}

static int relay_start(struct relay *r, int target_port)
{
    r->target_port = target_port;
    r->lfd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t l = sizeof sa;
    if (bind(r->lfd, (struct sockaddr *)&sa, sizeof sa) || listen(r->lfd, 8) ||
        getsockname(r->lfd, (struct sockaddr *)&sa, &l))
        die("relay: %s", strerror(errno));
    if (pthread_create(&r->th, NULL, relay_main, r) != 0)
        die("relay thread");
    return ntohs(sa.sin_port);
}

/* ---- the phases ---------------------------------------------------------------- */

static void phase_rss(struct agent *ag)
{
    /* 1,000 series: one gen.h record per series, made distinct by a label,
     * each sent 5 times (the same series), in one connection, then synced. */
    struct gen g;
    gen_init(&g, 7);
    size_t cap = 1000 * 5 * 560, len = 0;
    char *buf = malloc(cap), rec[512];
    for (int s = 0; s < 1000; s++) {
        size_t n = gen_record(&g, rec, sizeof rec);
        char *lab = strstr(rec, "\"labels\":{");
        if (!n || !lab)
            die("gen_record");
        size_t head = (size_t)(lab - rec) + 10;
        for (int k = 0; k < 5; k++) {
            memcpy(buf + len, rec, head);
            len += head;
            len += (size_t)sprintf(buf + len, "\"shard\":\"s%04d\",", s);
            memcpy(buf + len, rec + head, n - head);
            len += n - head;
            buf[len++] = '\n';
        }
    }
    int fd = connect_unix(ag->sockdir, "ingest.sock", SOCK_STREAM);
    write_all(fd, buf, len);
    stream_sync(fd, 1);
    close(fd);
    free(buf);
    sleep_s(0.5);
    double series = metric(ag->admin, "vitals_agent_series");
    double overflow = metric(ag->admin, "vitals_agent_series_overflow_total");
    if (series < 1000)
        fprintf(stderr, "bench_agent: note: vitals_agent_series = %g after 1,000 series "
                        "(a window boundary split them)\n", series);
    if (overflow > 0)
        fprintf(stderr, "bench_agent: note: %g records overflowed the series cap\n", overflow);
    bench_report("rss_mib_1k_series", proc_rss_mib(ag->pid), "MiB", "<= 32");
}

static void phase_client(struct agent *ag, const struct corpus *c)
{
    enum { N = 100000 };
    uint32_t *lat = malloc(N * sizeof *lat);
    vt_client *cl;
    vt_client_options so = {.mode = VT_CLIENT_STREAM};
    char empty[PATH_MAX];
    snprintf(empty, sizeof empty, "%s/no-agent", tmpdir);
    mkdir(empty, 0700);

    /* stream client, agent running: ~50,000 records/s in bursts of 50 */
    if (vt_client_open(&cl, ag->sockdir, &so))
        die("vt_client_open");
    size_t dropped = time_client(cl, c, N, 50, 0.001, lat);
    vt_client_sync(cl, 30000);
    vt_client_close(cl);
    bench_report("client_send_p50_us", pct(lat, N, 0.50), "us", NULL);
    bench_report("client_send_p99_us", pct(lat, N, 0.99), "us", "<= 10");
    bench_report("client_send_max_us", pct(lat, N, 1.0), "us", NULL);
    if (dropped)
        fprintf(stderr, "bench_agent: note: stream client dropped %zu of %d\n", dropped, N);

    /* same, without the mutex (one client per thread) */
    so.flags = VT_CLIENT_NO_LOCK;
    if (vt_client_open(&cl, ag->sockdir, &so))
        die("vt_client_open");
    time_client(cl, c, N, 50, 0.001, lat);
    vt_client_sync(cl, 30000);
    vt_client_close(cl);
    bench_report("client_send_nolock_p50_us", pct(lat, N, 0.50), "us", NULL);

    /* background mode, measured the same way: the send only appends; the
     * client's thread writes (and pays the agent's wake-up). Every record
     * must arrive: the accepted count after a sync. */
    so.flags = VT_CLIENT_BACKGROUND;
    double acc0 = metric(ag->admin, "vitals_agent_records_accepted_total");
    if (vt_client_open(&cl, ag->sockdir, &so))
        die("vt_client_open (background)");
    dropped = time_client(cl, c, N, 50, 0.001, lat);
    if (vt_client_sync(cl, 30000) != 0)
        die("background client: sync failed");
    vt_client_stats bst;
    vt_client_get_stats(cl, &bst);
    vt_client_close(cl);
    double got = metric(ag->admin, "vitals_agent_records_accepted_total") - acc0;
    bench_report("client_send_background_p50_us", pct(lat, N, 0.50), "us", NULL);
    bench_report("client_send_background_p99_us", pct(lat, N, 0.99), "us", "<= 10");
    bench_report("client_send_background_max_us", pct(lat, N, 1.0), "us", NULL);
    if (dropped || bst.dropped || bst.sent != (uint64_t)N || got != (double)N)
        die("background client: %.0f of %d records accepted (sent %llu, dropped %zu)", got, N,
            (unsigned long long)bst.sent, dropped);
    so.flags = 0;

    /* datagram client, agent running: bursts of 5 (the kernel queue is short) */
    vt_client_options dopt = {.mode = VT_CLIENT_DGRAM};
    if (vt_client_open(&cl, ag->sockdir, &dopt))
        die("vt_client_open");
    dropped = time_client(cl, c, N / 2, 5, 0.0002, lat);
    vt_client_close(cl);
    bench_report("client_send_dgram_p50_us", pct(lat, N / 2, 0.50), "us", NULL);
    bench_report("client_send_dgram_p99_us", pct(lat, N / 2, 0.99), "us", "<= 10");
    if (dropped)
        fprintf(stderr, "bench_agent: note: datagram client: %zu of %d dropped (queue full)\n",
                dropped, N / 2);

    /* agent absent: the stream client buffers 256 KiB, then drops */
    if (vt_client_open(&cl, empty, &so))
        die("vt_client_open");
    time_client(cl, c, N, 0, 0, lat);
    vt_client_close(cl);
    bench_report("client_send_p99_us_agent_down", pct(lat, N, 0.99), "us", "<= 10");
    if (vt_client_open(&cl, empty, &dopt))
        die("vt_client_open");
    time_client(cl, c, N, 0, 0, lat);
    vt_client_close(cl);
    bench_report("client_send_dgram_p99_us_agent_down", pct(lat, N, 0.99), "us", "<= 10");
    free(lat);
}

static void phase_stream(struct agent *ag, const struct corpus *c)
{
    const size_t total = 1000000;
    double acc0 = metric(ag->admin, "vitals_agent_records_accepted_total");
    double rej0 = metric(ag->admin, "vitals_agent_records_received_total") - acc0;
    double spool0 = metric(ag->admin, "vitals_agent_spool_bytes");
    int fd = connect_unix(ag->sockdir, "ingest.sock", SOCK_STREAM);
    /* BENCH_AGENT_PERF=1: profile the agent during the push (perf.data and
     * perf.txt in the temp dir, kept with BENCH_AGENT_KEEP=1). */
    pid_t perf = 0;
    if (getenv("BENCH_AGENT_PERF")) {
        char pidbuf[16], out[PATH_MAX];
        snprintf(pidbuf, sizeof pidbuf, "%d", (int)ag->pid);
        snprintf(out, sizeof out, "%s/perf.data", tmpdir);
        char *pargv[] = {"/usr/bin/perf", "record", "-g", "-o", out, "-p", pidbuf, NULL};
        perf = spawn("perf", pargv);
        sleep_s(1);
    }
    double cpu0 = bench_proc_cpu(ag->pid), t0 = bench_now();
    size_t sent = 0, bytes = 0;
    while (sent < total) {
        /* whole records, 64 KiB-ish writes, cycling through the corpus */
        size_t r0 = sent % c->n, r1 = r0;
        while (r1 < c->n && r1 - r0 < 200 && sent + (r1 - r0) < total)
            r1++;
        write_all(fd, c->buf + c->off[r0], c->off[r1] - c->off[r0]);
        bytes += c->off[r1] - c->off[r0];
        sent += r1 - r0;
    }
    stream_sync(fd, 2);
    double cpu = bench_proc_cpu(ag->pid) - cpu0, wall = bench_now() - t0;
    close(fd);
    if (perf > 0) {
        kill(perf, SIGINT);
        waitpid(perf, NULL, 0);
        for (int i = 0; i < npids; i++)
            if (pids[i] == perf)
                pids[i] = 0;
    }
    double acc = metric(ag->admin, "vitals_agent_records_accepted_total") - acc0;
    double rej = metric(ag->admin, "vitals_agent_records_received_total") - acc0 - acc - rej0;
    if (acc != (double)total)
        die("/metrics shows %.0f accepted of %zu pushed (%.0f rejected)", acc, total, rej);
    /* the spool gauge is refreshed by the spool's jobs: let the last one land */
    sleep_s(1.5);
    double spool = metric(ag->admin, "vitals_agent_spool_bytes") - spool0;
    bench_report("record_bytes_avg", (double)bytes / (double)total, "B", NULL);
    bench_report("stream_records_per_cpu_s", acc / cpu, "records/cpu-s", ">= 500000");
    bench_report("stream_records_per_s", acc / wall, "records/s", NULL);
    bench_report("spool_bytes_per_record", spool / acc, "B", "<= 41");
}

static void phase_dgram(struct agent *ag, const struct corpus *c)
{
    const size_t total = 200000;
    double acc0 = metric(ag->admin, "vitals_agent_records_accepted_total");
    int fd = connect_unix(ag->sockdir, "ingest.dgram", SOCK_DGRAM); /* blocking: paces */
    double cpu0 = bench_proc_cpu(ag->pid);
    for (size_t i = 0; i < total; i++) {
        size_t r = i % c->n;
        size_t len = c->off[r + 1] - c->off[r] - 1;
        while (send(fd, c->buf + c->off[r], len, 0) != (ssize_t)len)
            if (errno != EINTR)
                die("datagram send: %s", strerror(errno));
    }
    double deadline = bench_now() + 30, acc = 0;
    while ((acc = metric(ag->admin, "vitals_agent_records_accepted_total") - acc0) < (double)total &&
           bench_now() < deadline)
        sleep_s(0.02);
    double cpu = bench_proc_cpu(ag->pid) - cpu0;
    close(fd);
    if (acc != (double)total)
        fprintf(stderr, "bench_agent: note: %.0f of %zu datagrams accepted\n", acc, total);
    bench_report("dgram_records_per_cpu_s", acc / cpu, "records/cpu-s", NULL);
}

static void phase_ship(const struct corpus *c)
{
    char bin[PATH_MAX], token[PATH_MAX], scores[PATH_MAX], data[PATH_MAX];
    char grpc[32], http[32], url[64];
    snprintf(token, sizeof token, "%s/token", tmpdir);
    snprintf(scores, sizeof scores, "%s/scores.json", tmpdir);
    snprintf(data, sizeof data, "%s/scorer-data", tmpdir);
    FILE *f = fopen(token, "w");
    fputs("bench-token\n", f);
    fclose(f);
    f = fopen(scores, "w");
    fputs("{\"version\": 1, \"scores\": []}\n", f);
    fclose(f);
    int gport = free_port(), hport = free_port();
    snprintf(grpc, sizeof grpc, "127.0.0.1:%d", gport);
    snprintf(http, sizeof http, "127.0.0.1:%d", hport);
    snprintf(bin, sizeof bin, "%s/vitals-scorer", bindir);
    char *argv[] = {bin, "--scores", scores, "--data-dir", data, "--grpc-addr", grpc,
                    "--http-addr", http, "--token-file", token, NULL};
    pid_t scorer = spawn("scorer", argv);
    double deadline = bench_now() + 20;
    while (metric(hport, "vitals_scorer_wal_bytes") < 0) {
        if (waitpid(scorer, NULL, WNOHANG) != 0)
            die("vitals-scorer exited at start");
        if (bench_now() > deadline)
            die("vitals-scorer did not come up");
        sleep_s(0.05);
    }
    static struct relay relay;
    snprintf(url, sizeof url, "http://127.0.0.1:%d", relay_start(&relay, gport));
    struct agent ag;
    agent_start(&ag, "agent-b", url, token);

    /* Idle: from 1 s after start to the first window boundary >= 10 s later,
     * so that the load below covers whole windows. */
    sleep_s(1);
    double cpu0 = bench_proc_cpu(ag.pid), t0 = bench_now();
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    double wall = now.tv_sec + now.tv_nsec / 1e9;
    double next = (double)(((long long)wall + 10) / 10 * 10 + 10) + 0.05;
    sleep_s(next - wall);
    double idle = (bench_proc_cpu(ag.pid) - cpu0) / (bench_now() - t0) * 100;
    bench_report("idle_cpu_percent", idle, "%", "< 0.5");

    /* 10,000 records/s for two windows (20 s): 100 records every 10 ms */
    double shipped0 = metric(ag.admin, "vitals_agent_shipped_bytes_total");
    uint64_t wire0 = relay.up_bytes;
    int fd = connect_unix(ag.sockdir, "ingest.sock", SOCK_STREAM);
    const size_t total = 200000;
    double start = bench_now();
    for (size_t sent = 0; sent < total; sent += 100) {
        double due = start + (double)sent / 10000.0;
        double d = due - bench_now();
        if (d > 0)
            sleep_s(d);
        size_t r0 = sent % c->n, r1 = r0 + 100 <= c->n ? r0 + 100 : c->n;
        write_all(fd, c->buf + c->off[r0], c->off[r1] - c->off[r0]);
    }
    stream_sync(fd, 3);
    close(fd);
    double acc = metric(ag.admin, "vitals_agent_records_accepted_total");
    /* wait until the windows closed and every batch was acknowledged */
    deadline = bench_now() + 40;
    double shipped;
    for (;;) {
        sleep_s(0.25);
        shipped = metric(ag.admin, "vitals_agent_shipped_bytes_total") - shipped0;
        double lag = metric(ag.admin, "vitals_agent_oldest_unshipped_age_seconds");
        double pending = metric(ag.admin, "vitals_agent_spool_pending_bytes");
        if (shipped > 0 && lag == 0 && pending == 0)
            break;
        if (bench_now() > deadline) {
            fprintf(stderr, "bench_agent: note: shipping not drained after 40 s (lag %g s)\n", lag);
            break;
        }
    }
    sleep_s(0.5);
    shipped = metric(ag.admin, "vitals_agent_shipped_bytes_total") - shipped0;
    uint64_t wire = relay.up_bytes - wire0;
    if (acc < (double)total)
        fprintf(stderr, "bench_agent: note: %.0f of %zu accepted\n", acc, total);
    /* Shipped = what crosses the network (HTTP/2 frames, zstd batches);
     * batch_bytes = the protobuf batches before compression. */
    bench_report("shipped_bytes_per_record", (double)wire / (double)total, "B", "<= 1");
    bench_report("batch_bytes_per_record", shipped / (double)total, "B", NULL);
    stop(ag.pid);
    relay.stop = 1;
    pthread_join(relay.th, NULL);
    close(relay.lfd);
    stop(scorer);
}

int main(int argc, char **argv)
{
    bench_init(argc, argv, "agent");
    signal(SIGPIPE, SIG_IGN);
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    const char *env = getenv("VITALS_BIN");
    if (env && *env) {
        snprintf(bindir, sizeof bindir, "%s", env);
    } else {
        /* <build>/bench/bench_agent -> <build>/bin */
        char self[PATH_MAX - 128];
        ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
        if (n <= 0)
            die("readlink /proc/self/exe");
        self[n] = 0;
        *strrchr(self, '/') = 0;
        *strrchr(self, '/') = 0;
        snprintf(bindir, sizeof bindir, "%s/bin", self);
    }
    snprintf(tmpdir, sizeof tmpdir, "/tmp/vt_bench_agent_XXXXXX");
    if (!mkdtemp(tmpdir))
        die("mkdtemp: %s", strerror(errno));
    atexit(cleanup);

    struct corpus c;
    corpus_gen(&c, 50000, 42, NULL);

    /* BENCH_AGENT_ONLY=stream: just the 1M-record stream phase (profiling) */
    const char *only = getenv("BENCH_AGENT_ONLY");
    struct agent a;
    agent_start(&a, "agent-a", NULL, NULL);
    if (!only)
        phase_rss(&a);
    if (!only)
        phase_client(&a, &c);
    phase_stream(&a, &c);
    if (!only)
        phase_dgram(&a, &c);
    stop(a.pid);
    if (!only) {
        /* A sidecar serves one application: ship one service's traffic. */
        struct corpus one;
        corpus_gen(&one, 50000, 43, "support-bot");
        phase_ship(&one);
        free(one.buf);
        free(one.off);
    }
    free(c.buf);
    free(c.off);
    return 0;
}
