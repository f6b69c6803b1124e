/*
 * test_client_agent.c - the application client (client/vitals_client.h)
 * against a real vitals-agent process: what the client writes, in stream
 * and in background mode, is accepted and counted by the agent.
 *
 * The agent binary is $VITALS_BIN/vitals-agent, else <build>/bin/vitals-agent
 * found from /proc/self/exe (<build>/tests/test_client_agent). Without it the
 * tests are skipped, loudly. Every process started is killed by pid.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
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
#include "vitals_client.h"

/* --- a real vitals-agent ------------------------------------------------------ */

static char agent_bin[PATH_MAX];

static int find_agent(void)
{
    const char *env = getenv("VITALS_BIN");
    if (env && *env) {
        snprintf(agent_bin, sizeof agent_bin, "%s/vitals-agent", env);
    } else {
        char self[PATH_MAX];
        ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
        if (n <= 0)
            return 0;
        self[n] = 0;
        char *slash = strrchr(self, '/');
        *slash = 0; /* <build>/tests */
        slash = strrchr(self, '/');
        *slash = 0; /* <build> */
        snprintf(agent_bin, sizeof agent_bin, "%s/bin/vitals-agent", self);
    }
    return access(agent_bin, X_OK) == 0;
}

static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    socklen_t l = sizeof a;
    getsockname(fd, (struct sockaddr *)&a, &l);
    close(fd);
    return ntohs(a.sin_port);
}

struct agent {
    pid_t pid;
    int admin, grpc, http;
    char dir[PATH_MAX], sockdir[PATH_MAX + 8], spool[PATH_MAX + 8];
};

static void agent_start(struct agent *ag)
{
    char admin[32], grpc[32], http[32], log[PATH_MAX + 16];
    snprintf(admin, sizeof admin, "127.0.0.1:%d", ag->admin);
    snprintf(grpc, sizeof grpc, "127.0.0.1:%d", ag->grpc);
    snprintf(http, sizeof http, "127.0.0.1:%d", ag->http);
    snprintf(log, sizeof log, "%s/agent.log", ag->dir);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0644);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
        }
        execl(agent_bin, agent_bin, "--socket-dir", ag->sockdir, "--spool-dir", ag->spool,
              "--admin-addr", admin, "--otlp-grpc-addr", grpc, "--otlp-http-addr", http,
              "--service", "client-test", "--fsync", "interval", (char *)NULL);
        _exit(127);
    }
    ag->pid = pid;
}

/* GET /metrics; returns the value of the sample named exactly `name`, or -1. */
static double agent_metric(struct agent *ag, const char *name)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)ag->admin),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    struct timeval tv = {2, 0};
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

static void agent_wait_up(struct agent *ag)
{
    double deadline = now_s() + 20;
    char path[PATH_MAX + 32];
    snprintf(path, sizeof path, "%s/ingest.sock", ag->sockdir);
    while (access(path, F_OK) != 0 || agent_metric(ag, "vitals_agent_records_accepted_total") < 0) {
        int st;
        assert_int_equal(waitpid(ag->pid, &st, WNOHANG), 0); /* still alive */
        assert_true(now_s() < deadline);
        sleep_ms(20);
    }
}

static void agent_kill(struct agent *ag)
{
    if (ag->pid > 0) {
        kill(ag->pid, SIGKILL);
        waitpid(ag->pid, NULL, 0);
        ag->pid = 0;
    }
}

static struct agent *the_agent;

static int agent_setup(void **state)
{
    if (!find_agent()) {
        fprintf(stderr, "\n*** SKIPPING real-agent tests: no executable %s "
                        "(build vitals-agent or set VITALS_BIN) ***\n\n", agent_bin);
        *state = NULL;
        return 0;
    }
    struct agent *ag = calloc(1, sizeof *ag);
    char *d = make_tmpdir();
    snprintf(ag->dir, sizeof ag->dir, "%s", d);
    free(d);
    snprintf(ag->sockdir, sizeof ag->sockdir, "%s/run", ag->dir);
    snprintf(ag->spool, sizeof ag->spool, "%s/spool", ag->dir);
    ag->admin = free_port();
    ag->grpc = free_port();
    ag->http = free_port();
    the_agent = ag;
    *state = ag;
    return 0;
}

static int agent_teardown(void **state)
{
    struct agent *ag = *state;
    if (ag) {
        agent_kill(ag);
        rm_rf(ag->dir);
        free(ag);
    }
    the_agent = NULL;
    return 0;
}

static void wait_metric(struct agent *ag, const char *name, double want)
{
    double deadline = now_s() + 10, v = -1;
    while ((v = agent_metric(ag, name)) != want) {
        if (now_s() > deadline)
            fail_msg("%s = %g, want %g", name, v, want);
        sleep_ms(20);
    }
}

static void test_real_agent(void **state)
{
    struct agent *ag = *state;
    if (!ag) {
        skip();
        return;
    }
    agent_start(ag);
    agent_wait_up(ag);

    vt_client *st, *dg;
    vt_client_options so = {.mode = VT_CLIENT_STREAM, .backoff_initial_ms = 20, .backoff_max_ms = 100};
    vt_client_options dopt = {.mode = VT_CLIENT_DGRAM, .backoff_initial_ms = 20, .backoff_max_ms = 100};
    assert_int_equal(vt_client_open(&st, ag->sockdir, &so), 0);
    assert_int_equal(vt_client_open(&dg, ag->sockdir, &dopt), 0);

    /* Stream: builder records with hostile strings are all accepted. */
    enum { NS = 2000, ND = 300 };
    for (int i = 0; i < NS; i++) {
        char buf[1024];
        vt_client_rec r;
        vt_client_rec_init(&r, buf, sizeof buf);
        vt_client_rec_str(&r, "service", "svc \"quoted\"\n\\");
        vt_client_rec_strn(&r, "model", "m\0\xff\x01", 4);
        vt_client_rec_num(&r, "latency_ms", 100 + i);
        vt_client_rec_object(&r, "labels");
        vt_client_rec_str(&r, "tier", i % 2 ? "gold" : "fr\xc3\xa9\te");
        vt_client_rec_end(&r);
        assert_int_equal(vt_client_send_rec(st, &r), 0);
    }
    assert_int_equal(vt_client_sync(st, 10000), 0);
    assert_true(agent_metric(ag, "vitals_agent_records_accepted_total") == NS);

    /* Datagrams: the call struct. */
    vt_client_metric m[] = {{"relevance", 0.9}};
    vt_client_call call = VT_CLIENT_CALL_INIT;
    call.model = "gpt-4o";
    call.latency_ms = 812.5;
    call.status = VT_CLIENT_STATUS_OK;
    call.metrics = m;
    call.n_metrics = 1;
    int eagain = 0;
    for (int i = 0; i < ND; i++) {
        int rc;
        /* The kernel's datagram queue is short (net.unix.max_dgram_qlen,
         * 10 here): a full queue is -EAGAIN, dropped and counted; resend. */
        while ((rc = vt_client_send_call(dg, &call)) == -EAGAIN) {
            eagain++;
            sleep_ms(1);
        }
        assert_int_equal(rc, 0);
    }
    wait_metric(ag, "vitals_agent_records_accepted_total", NS + ND);
    vt_client_stats s;
    vt_client_get_stats(dg, &s);
    assert_int_equal(s.sent, ND);
    assert_int_equal(s.dropped_full, (uint64_t)eagain);
    assert_true(agent_metric(ag, "vitals_agent_datagrams_total") == ND);

    /* The agent dies: sends stay fast; datagrams drop, the stream buffers. */
    agent_kill(ag);
    double worst = 0;
    int dg_down = 0;
    for (int i = 0; i < 500; i++) {
        double t0 = now_s();
        if (vt_client_send_call(dg, &call) == -ENOTCONN)
            dg_down++;
        assert_int_equal(vt_client_send_call(st, &call), 0);
        double dt = now_s() - t0;
        if (dt > worst)
            worst = dt;
    }
    assert_int_equal(dg_down, 500);
    assert_true(worst < 0.05);
    vt_client_get_stats(dg, &s);
    assert_int_equal(s.dropped_down, 500);
    assert_int_equal(s.dropped, 500 + (uint64_t)eagain);

    /* It comes back (same spool): both clients reconnect by themselves. */
    agent_start(ag);
    agent_wait_up(ag);
    double base = agent_metric(ag, "vitals_agent_records_accepted_total");
    double deadline = now_s() + 10;
    while (vt_client_send_call(dg, &call) != 0) {
        assert_true(now_s() < deadline);
        sleep_ms(10);
    }
    assert_int_equal(vt_client_sync(st, 10000), 0);
    wait_metric(ag, "vitals_agent_records_accepted_total", base + 500 + 1);
    vt_client_get_stats(st, &s);
    assert_int_equal(s.connects, 2);
    assert_int_equal(s.dropped, 0);
    assert_int_equal(s.sent, NS + 500);
    /* nothing of what the builder wrote was rejected */
    assert_true(agent_metric(ag, "vitals_agent_records_received_total") ==
                agent_metric(ag, "vitals_agent_records_accepted_total"));
    vt_client_close(st);
    vt_client_close(dg);
    agent_kill(ag);
}

static void test_background_real_agent(void **state)
{
    struct agent *ag = *state;
    if (!ag) {
        skip();
        return;
    }
    agent_start(ag);
    agent_wait_up(ag);
    vt_client *c;
    vt_client_options o = {.mode = VT_CLIENT_STREAM, .flags = VT_CLIENT_BACKGROUND,
                           .backoff_initial_ms = 20, .backoff_max_ms = 100};
    assert_int_equal(vt_client_open(&c, ag->sockdir, &o), 0);
    enum { NS = 2000 };
    for (int i = 0; i < NS; i++) {
        char buf[1024];
        vt_client_rec r;
        vt_client_rec_init(&r, buf, sizeof buf);
        vt_client_rec_str(&r, "service", "bg \"quoted\"\n");
        vt_client_rec_num(&r, "latency_ms", 100 + i);
        vt_client_rec_int(&r, "seq", i);
        assert_int_equal(vt_client_send_rec(c, &r), 0);
    }
    assert_int_equal(vt_client_sync(c, 10000), 0);
    assert_true(agent_metric(ag, "vitals_agent_records_accepted_total") == NS);
    vt_client_stats s;
    vt_client_get_stats(c, &s);
    assert_int_equal(s.sent, NS);
    assert_int_equal(s.queued, 0);
    assert_int_equal(s.dropped, 0);

    /* The agent dies: sends buffer; it comes back: sync delivers them. */
    agent_kill(ag);
    for (int i = 0; i < 500; i++)
        assert_int_equal(vt_client_send_line(c, "{\"service\":\"bg\",\"latency_ms\":1}", 31), 0);
    agent_start(ag);
    agent_wait_up(ag);
    /* The thread may deliver them before we look: the new process counts
     * from 0, so expect exactly 500 there. */
    double deadline = now_s() + 10;
    while (vt_client_sync(c, 2000) != 0) { /* the first may find the old connection */
        assert_true(now_s() < deadline);
        sleep_ms(20);
    }
    wait_metric(ag, "vitals_agent_records_accepted_total", 500);
    vt_client_get_stats(c, &s);
    assert_int_equal(s.connects, 2);
    assert_int_equal(s.dropped, 0);
    assert_int_equal(s.sent, NS + 500);
    assert_true(agent_metric(ag, "vitals_agent_records_received_total") ==
                agent_metric(ag, "vitals_agent_records_accepted_total"));
    vt_client_close(c);
    agent_kill(ag);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_real_agent, agent_setup, agent_teardown),
        cmocka_unit_test_setup_teardown(test_background_real_agent, agent_setup, agent_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
