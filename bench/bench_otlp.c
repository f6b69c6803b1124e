/*
 * bench_otlp.c - OTLP ingest of the agent, measured from outside as an
 * instrumented application sees it.
 *
 * Starts the real vitals-agent (next to this program's build tree, or
 * $VITALS_BIN) on loopback with a temp spool and no scorer, and sends
 * ExportTraceServiceRequests of 100 LLM spans each (GenAI and OpenInference
 * attributes, ~15 per span, 16 different request bodies built with the
 * protobuf-c code of proto/opentelemetry). Every request is answered only
 * once its spans are in the spool, so the agent's work per span is complete
 * when the last answer arrives. CPU is the agent's own (all threads, user +
 * system, from /proc/<pid>/stat):
 *
 *   grpc_spans_per_cpu_s        OTLP/gRPC, lib/grpc client, 16 calls in flight
 *   http_proto_spans_per_cpu_s  OTLP/HTTP application/x-protobuf, libcurl,
 *                               4 keep-alive connections
 *
 * Target: >= 200,000 spans per CPU-second for each. BENCH_OTLP_REQUESTS sets
 * the number of requests per transport (default 3000 = 300,000 spans).
 */
#include <curl/curl.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include "bench.h"
#include "grpc.h"
#include "opentelemetry/proto/collector/trace/v1/trace_service.pb-c.h"
#include "otlp.h"

#define SPANS 100
#define BODIES 16
#define INFLIGHT 16
#define HTTP_THREADS 4

typedef Opentelemetry__Proto__Common__V1__KeyValue KV;
typedef Opentelemetry__Proto__Common__V1__AnyValue AV;

static char agent_bin[4096], tmpdir[256];
static uint8_t *bodies[BODIES];
static size_t body_len[BODIES];

/* ---- requests -------------------------------------------------------------- */

/* Everything below is built once; the arrays live until exit. */
static KV *kv_s(const char *k, const char *v)
{
    KV *x = calloc(1, sizeof *x);
    AV *a = calloc(1, sizeof *a);
    opentelemetry__proto__common__v1__key_value__init(x);
    opentelemetry__proto__common__v1__any_value__init(a);
    a->value_case = OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_STRING_VALUE;
    a->string_value = strdup(v);
    x->key = strdup(k);
    x->value = a;
    return x;
}
static KV *kv_i(const char *k, int64_t v)
{
    KV *x = kv_s(k, "");
    x->value->value_case = OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_INT_VALUE;
    x->value->int_value = v;
    return x;
}
static KV *kv_d(const char *k, double v)
{
    KV *x = kv_s(k, "");
    x->value->value_case = OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_DOUBLE_VALUE;
    x->value->double_value = v;
    return x;
}

static uint64_t rnd_state = 0x2545F4914F6CDD1Dull;
static uint64_t rnd(void)
{
    rnd_state ^= rnd_state >> 12;
    rnd_state ^= rnd_state << 25;
    rnd_state ^= rnd_state >> 27;
    return rnd_state * 2685821657736338717ull;
}

static void build_bodies(void)
{
    static const char *const models[] = {"gpt-4o", "gpt-4o-mini", "claude-3-5-sonnet",
                                         "mistral-large", "llama-3-70b"};
    static const char *const provs[] = {"openai", "openai", "anthropic", "mistralai", "meta"};
    uint64_t now_ns = (uint64_t)time(NULL) * 1000000000ull;
    for (int b = 0; b < BODIES; b++) {
        Opentelemetry__Proto__Trace__V1__Span **spans = calloc(SPANS, sizeof *spans);
        for (int i = 0; i < SPANS; i++) {
            Opentelemetry__Proto__Trace__V1__Span *s = calloc(1, sizeof *s);
            opentelemetry__proto__trace__v1__span__init(s);
            uint8_t *tid = malloc(16), *sid = malloc(8);
            for (int k = 0; k < 16; k++)
                tid[k] = (uint8_t)rnd();
            for (int k = 0; k < 8; k++)
                sid[k] = (uint8_t)rnd();
            s->trace_id = (ProtobufCBinaryData){16, tid};
            s->span_id = (ProtobufCBinaryData){8, sid};
            s->name = strdup("chat");
            s->kind = 3;
            int m = (int)(rnd() % 5);
            uint64_t dur = (uint64_t)(200 + rnd() % 3000) * 1000000ull;
            s->start_time_unix_nano = now_ns - 10000000000ull + (uint64_t)i * 1000000ull;
            s->end_time_unix_nano = s->start_time_unix_nano + dur;
            KV **a = calloc(16, sizeof *a);
            int n = 0;
            if (i % 2 == 0) { /* GenAI conventions */
                a[n++] = kv_s("gen_ai.operation.name", "chat");
                a[n++] = kv_s("gen_ai.provider.name", provs[m]);
                a[n++] = kv_s("gen_ai.request.model", models[m]);
                a[n++] = kv_s("gen_ai.response.model", models[m]);
                a[n++] = kv_i("gen_ai.usage.input_tokens", (int64_t)(50 + rnd() % 4000));
                a[n++] = kv_i("gen_ai.usage.output_tokens", (int64_t)(5 + rnd() % 800));
                a[n++] = kv_d("gen_ai.server.time_to_first_token", 0.05 + (double)(rnd() % 500) / 1000);
                a[n++] = kv_s("gen_ai.response.finish_reasons", "stop");
                a[n++] = kv_d("evaluation.relevance.score", (double)(rnd() % 100) / 100);
            } else { /* OpenInference */
                a[n++] = kv_s("openinference.span.kind", "LLM");
                a[n++] = kv_s("llm.model_name", models[m]);
                a[n++] = kv_s("llm.provider", provs[m]);
                a[n++] = kv_i("llm.token_count.prompt", (int64_t)(50 + rnd() % 4000));
                a[n++] = kv_i("llm.token_count.completion", (int64_t)(5 + rnd() % 800));
                a[n++] = kv_i("llm.token_count.total", 900);
                a[n++] = kv_d("llm.cost.total", (double)(rnd() % 10000) / 1e6);
                a[n++] = kv_s("annotation.name", "helpfulness");
                a[n++] = kv_d("annotation.score", (double)(rnd() % 100) / 100);
            }
            a[n++] = kv_s("session.id", "5f0c2a8e-41d1-4f8b-9c77-0a2f3c4d5e6f");
            a[n++] = kv_s("tier", i % 3 ? "gold" : "free");
            a[n++] = kv_s("input.value", "What is the refund policy for damaged items?");
            a[n++] = kv_s("output.value", "Items damaged in transit can be refunded within 30 days.");
            s->attributes = a;
            s->n_attributes = (size_t)n;
            if (rnd() % 50 == 0) {
                s->status = calloc(1, sizeof *s->status);
                opentelemetry__proto__trace__v1__status__init(s->status);
                s->status->code = 2;
            }
            spans[i] = s;
        }
        Opentelemetry__Proto__Collector__Trace__V1__ExportTraceServiceRequest req =
            OPENTELEMETRY__PROTO__COLLECTOR__TRACE__V1__EXPORT_TRACE_SERVICE_REQUEST__INIT;
        Opentelemetry__Proto__Trace__V1__ResourceSpans rs =
            OPENTELEMETRY__PROTO__TRACE__V1__RESOURCE_SPANS__INIT;
        Opentelemetry__Proto__Resource__V1__Resource r =
            OPENTELEMETRY__PROTO__RESOURCE__V1__RESOURCE__INIT;
        Opentelemetry__Proto__Trace__V1__ScopeSpans ss =
            OPENTELEMETRY__PROTO__TRACE__V1__SCOPE_SPANS__INIT;
        KV *ra[] = {kv_s("service.name", "support-bot"), kv_s("deployment.environment", "prod"),
                    kv_s("telemetry.sdk.language", "python"), kv_s("host.name", "pod-7c9f")};
        r.attributes = ra;
        r.n_attributes = 4;
        rs.resource = &r;
        Opentelemetry__Proto__Trace__V1__ScopeSpans *ssp = &ss;
        rs.scope_spans = &ssp;
        rs.n_scope_spans = 1;
        ss.spans = spans;
        ss.n_spans = SPANS;
        Opentelemetry__Proto__Trace__V1__ResourceSpans *rsp = &rs;
        req.resource_spans = &rsp;
        req.n_resource_spans = 1;
        body_len[b] =
            opentelemetry__proto__collector__trace__v1__export_trace_service_request__get_packed_size(
                &req);
        bodies[b] = malloc(body_len[b]);
        opentelemetry__proto__collector__trace__v1__export_trace_service_request__pack(&req,
                                                                                      bodies[b]);
    }
}

/* ---- the agent --------------------------------------------------------------- */

static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t l = sizeof a;
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) || getsockname(fd, (struct sockaddr *)&a, &l))
        exit(1);
    close(fd);
    return ntohs(a.sin_port);
}

static pid_t agent_start(int grpc_port, int http_port, int admin_port)
{
    char g[64], h[64], ad[64], sock[300], spool[300], log[300];
    snprintf(g, sizeof g, "127.0.0.1:%d", grpc_port);
    snprintf(h, sizeof h, "127.0.0.1:%d", http_port);
    snprintf(ad, sizeof ad, "127.0.0.1:%d", admin_port);
    snprintf(sock, sizeof sock, "%s/sock", tmpdir);
    snprintf(spool, sizeof spool, "%s/spool", tmpdir);
    snprintf(log, sizeof log, "%s/agent.log", tmpdir);
    fflush(stdout); /* or the child's freopen writes our buffered table header again */
    pid_t pid = fork();
    if (pid == 0) {
        if (!freopen(log, "w", stderr) || !freopen(log, "a", stdout))
            _exit(127);
        char *argv[] = {agent_bin, "--socket-dir", sock, "--spool-dir", spool,
                        "--otlp-grpc-addr", g, "--otlp-http-addr", h, "--admin-addr", ad,
                        "--service", "bench", "--otlp-labels", "tier,deployment.environment=env",
                        "--otlp-metrics", "llm.token_count.total=total_tokens", NULL};
        execv(agent_bin, argv);
        _exit(127);
    }
    return pid;
}

/* ---- gRPC load ---------------------------------------------------------------- */

struct grpc_run {
    vt_grpc_client_t *cli;
    int sent, done, total, failed;
};

static void send_next(struct grpc_run *r);

static void on_reply(int status, const char *msg, const uint8_t *resp, size_t len, void *data)
{
    struct grpc_run *r = data;
    (void)resp;
    if (status != 0 || len != 0) { /* success with partial_success unset = empty */
        if (r->failed++ < 3)
            fprintf(stderr, "bench_otlp: gRPC status %d %s (len %zu)\n", status, msg, len);
    }
    r->done++;
    if (r->sent < r->total)
        send_next(r);
    else if (r->done == r->total)
        vt_grpc_client_close(r->cli, NULL, NULL);
}

static void send_next(struct grpc_run *r)
{
    int i = r->sent++;
    if (vt_grpc_call(r->cli, VT_OTLP_TRACE_METHOD, bodies[i % BODIES], body_len[i % BODIES],
                     30000, on_reply, r) != 0) {
        r->failed++;
        r->done++;
    }
}

static int run_grpc(int port, int total)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    char target[64];
    snprintf(target, sizeof target, "http://127.0.0.1:%d", port);
    struct vt_grpc_client_opts o = {.target = target, .max_concurrent_calls = INFLIGHT};
    struct grpc_run r = {.total = total};
    if (vt_grpc_client_init(&loop, &r.cli, &o) != 0)
        return -1;
    for (int i = 0; i < INFLIGHT && r.sent < total; i++)
        send_next(&r);
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
    return r.failed ? -1 : 0;
}

/* ---- HTTP load ---------------------------------------------------------------- */

struct http_run {
    int port, first, count, failed;
};

static size_t discard(char *p, size_t sz, size_t n, void *ud)
{
    (void)p, (void)ud;
    return sz * n;
}

static void *http_thread(void *arg)
{
    struct http_run *r = arg;
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/v1/traces", r->port);
    CURL *c = curl_easy_init();
    struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/x-protobuf");
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, discard);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 30L);
    for (int i = r->first; i < r->first + r->count; i++) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, (const char *)bodies[i % BODIES]);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)body_len[i % BODIES]);
        long code = 0;
        if (curl_easy_perform(c) != CURLE_OK ||
            (curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code), code != 200))
            r->failed++;
    }
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    return NULL;
}

static int run_http(int port, int total)
{
    pthread_t t[HTTP_THREADS];
    struct http_run r[HTTP_THREADS];
    int per = total / HTTP_THREADS, failed = 0;
    for (int i = 0; i < HTTP_THREADS; i++) {
        r[i] = (struct http_run){port, i * per, per, 0};
        pthread_create(&t[i], NULL, http_thread, &r[i]);
    }
    for (int i = 0; i < HTTP_THREADS; i++) {
        pthread_join(t[i], NULL);
        failed += r[i].failed;
    }
    return failed ? -1 : 0;
}

/* ---- main --------------------------------------------------------------------- */

static int wait_port(int port)
{
    for (int i = 0; i < 300; i++) {
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                                .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        int ok = connect(fd, (struct sockaddr *)&a, sizeof a) == 0;
        close(fd);
        if (ok)
            return 0;
        usleep(20000);
    }
    return -1;
}

int main(int argc, char **argv)
{
    bench_init(argc, argv, "otlp");
    const char *env = getenv("VITALS_BIN");
    if (env)
        snprintf(agent_bin, sizeof agent_bin, "%s/vitals-agent", env);
    else {
        char self[4096];
        ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
        if (n <= 0)
            return 1;
        self[n] = 0;
        char *slash = strrchr(self, '/'); /* <build>/bench/bench_otlp */
        *slash = 0;
        slash = strrchr(self, '/');
        *slash = 0;
        snprintf(agent_bin, sizeof agent_bin, "%s/bin/vitals-agent", self);
    }
    int total = getenv("BENCH_OTLP_REQUESTS") ? atoi(getenv("BENCH_OTLP_REQUESTS")) : 3000;
    if (total < HTTP_THREADS)
        total = HTTP_THREADS;
    total -= total % HTTP_THREADS;
    snprintf(tmpdir, sizeof tmpdir, "/tmp/bench-otlp-XXXXXX");
    if (!mkdtemp(tmpdir))
        return 1;
    curl_global_init(CURL_GLOBAL_DEFAULT);
    build_bodies();
    int gp = free_port(), hp = free_port(), ap = free_port();
    pid_t pid = agent_start(gp, hp, ap);
    int rc = 1;
    if (pid < 0 || wait_port(gp) || wait_port(hp)) {
        fprintf(stderr, "bench_otlp: agent did not start (log in %s)\n", tmpdir);
        goto out;
    }
    /* warm-up: connections, spool segment, series tables */
    if (run_grpc(gp, 50) || run_http(hp, 2 * HTTP_THREADS)) {
        fprintf(stderr, "bench_otlp: warm-up requests failed (log in %s)\n", tmpdir);
        goto out;
    }
    double c0 = bench_proc_cpu(pid), t0 = bench_now();
    if (run_grpc(gp, total)) {
        fprintf(stderr, "bench_otlp: gRPC requests failed (log in %s)\n", tmpdir);
        goto out;
    }
    double c1 = bench_proc_cpu(pid), t1 = bench_now();
    if (run_http(hp, total)) {
        fprintf(stderr, "bench_otlp: HTTP requests failed (log in %s)\n", tmpdir);
        goto out;
    }
    double c2 = bench_proc_cpu(pid), t2 = bench_now();
    double spans = (double)total * SPANS;
    bench_report("grpc_spans_per_cpu_s", spans / (c1 - c0 > 0.01 ? c1 - c0 : 0.01),
                 "spans/cpu-s", ">= 200000");
    bench_report("http_proto_spans_per_cpu_s", spans / (c2 - c1 > 0.01 ? c2 - c1 : 0.01),
                 "spans/cpu-s", ">= 200000");
    bench_report("grpc_spans_per_s", spans / (t1 - t0), "spans/s", NULL);
    bench_report("http_proto_spans_per_s", spans / (t2 - t1), "spans/s", NULL);
    rc = 0;
out:
    if (pid > 0) {
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
    }
    if (rc == 0) {
        char cmd[300];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
        if (system(cmd) != 0)
            fprintf(stderr, "bench_otlp: could not remove %s\n", tmpdir);
    }
    curl_global_cleanup();
    return rc;
}
