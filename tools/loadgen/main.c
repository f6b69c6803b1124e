/*
 * main.c - vitals-loadgen: realistic synthetic LLM traffic for an agent.
 *
 * Paces the generator of traffic.h at --rate records/s (0 = as fast as the
 * socket takes them), writes NDJSON to the agent's stream socket (with a
 * final {"sync": N} that must be answered), to its datagram socket, or to
 * stdout, and prints what it sent per series at the end (--json: one JSON
 * object). Scenarios (--scenario, repeatable, and --scenario-file) bend the
 * traffic on a schedule relative to the start of the run.
 *
 * Pacing uses virtual time: record i belongs to t = i / rate, so a run with
 * the same --seed and --rate produces the same records (ts aside, unless
 * --ts-start is given) and scenarios switch at exact record numbers. With
 * --rate 0 virtual time is the elapsed wall time.
 *
 * Exit: 0 done (and synced on stream), 1 the agent went away or did not
 * answer the final sync, 2 bad usage.
 */
#include <errno.h>
#include <jansson.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <poll.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "traffic.h"

enum mode { MODE_STREAM = 0, MODE_DGRAM, MODE_STDOUT };

struct lg_config {
    char *socket_dir;
    int mode;
    int64_t rate;
    int64_t duration_ms;
    int64_t count;
    int64_t seed;
    char *services;
    char *scenario;      /* one from env/file; flags may repeat --scenario */
    char *scenario_file;
    int64_t embedding_dims;
    int64_t sync_every;
    int64_t sync_timeout_ms;
    int64_t ts_start;
    int json;
    int quiet;
};

#define K(n, t, f, d, h) {n, t, offsetof(struct lg_config, f), d, h, NULL, 0, 0}
static const struct vt_knob knobs[] = {
    K("socket-dir", VT_KNOB_STRING, socket_dir, "/run/vitals",
      "the agent's socket directory (ingest.sock, ingest.dgram)"),
    {"mode", VT_KNOB_ENUM, offsetof(struct lg_config, mode), "stream",
     "stream (NDJSON on ingest.sock, final sync), dgram (one record per datagram) or stdout",
     "stream|dgram|stdout", 0, 0},
    {"rate", VT_KNOB_INT, offsetof(struct lg_config, rate), "100",
     "records per second, paced; 0 = as fast as possible (burst)", NULL, 0, 100000000},
    K("duration", VT_KNOB_DURATION, duration_ms, "0",
      "how long to send (virtual time at --rate > 0); 0 = until --count or Ctrl-C"),
    {"count", VT_KNOB_INT, offsetof(struct lg_config, count), "0",
     "records to send; 0 = until --duration or Ctrl-C", NULL, 0, INT64_MAX},
    {"seed", VT_KNOB_INT, offsetof(struct lg_config, seed), "1",
     "random seed: the same seed and rate give the same records", NULL, 0, INT64_MAX},
    K("services", VT_KNOB_STRING, services, "support-bot,legal-rag,marketing-copy,doc-extract",
      "comma-separated services to simulate"),
    K("scenario", VT_KNOB_STRING, scenario, NULL,
      "TYPE[:key=value]... e.g. latency_spike:provider=anthropic:start=60s:duration=120s "
      "(repeatable; types latency_spike error_burst quality_drop cost_runaway "
      "embedding_drift schema_violations; keys service provider model region tier start "
      "duration factor rate delta shift)"),
    K("scenario-file", VT_KNOB_STRING, scenario_file, NULL,
      "JSON file {\"scenarios\": [{\"type\": ..., \"start\": \"30s\", ...}]}"),
    {"embedding-dims", VT_KNOB_INT, offsetof(struct lg_config, embedding_dims), "32",
     "embedding dimensions per record (0 = none)", NULL, 0, LG_MAX_EMBEDDING},
    {"sync-every", VT_KNOB_INT, offsetof(struct lg_config, sync_every), "0",
     "stream: also sync after every N records (0 = only at the end)", NULL, 0, INT64_MAX},
    K("sync-timeout", VT_KNOB_DURATION, sync_timeout_ms, "30s",
      "how long to wait for a sync answer before failing"),
    {"ts-start", VT_KNOB_INT, offsetof(struct lg_config, ts_start), "0",
     "epoch ms of the first record's ts (0 = now)", NULL, 0, INT64_MAX},
    K("json", VT_KNOB_BOOL, json, "false", "print the summary as one JSON object"),
    K("quiet", VT_KNOB_BOOL, quiet, "false", "print only the totals, not the per-series table"),
};
#define N_KNOBS (sizeof knobs / sizeof knobs[0])

static volatile sig_atomic_t stop_flag;
static void on_signal(int sig) { (void)sig; stop_flag = 1; }

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

struct out {
    int mode, fd;
    char *buf;
    size_t len, cap;
    uint64_t syncs;
    int64_t sync_timeout_ms;
    char rbuf[256];
    size_t rlen;
};

static int write_all(int fd, const char *p, size_t n)
{
    while (n) {
        ssize_t w = write(fd, p, n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

static int out_flush(struct out *o)
{
    int rc = o->len ? write_all(o->fd, o->buf, o->len) : 0;
    o->len = 0;
    return rc;
}

/* Send one record (dgram: at once; else buffered). */
static int out_record(struct out *o, const char *rec, size_t n)
{
    if (o->mode == MODE_DGRAM) {
        for (;;) {
            ssize_t w = send(o->fd, rec, n - 1, 0); /* no newline needed in a datagram */
            if (w >= 0)
                return 0;
            if (errno == EINTR)
                continue;
            if (errno == ENOBUFS || errno == EAGAIN) {
                struct timespec ts = {0, 200000};
                nanosleep(&ts, NULL);
                continue;
            }
            return -errno;
        }
    }
    if (o->len + n > o->cap) {
        int rc = out_flush(o);
        if (rc)
            return rc;
    }
    memcpy(o->buf + o->len, rec, n);
    o->len += n;
    return 0;
}

/* Stream: send {"sync": N}, wait for {"synced": N}. 0, or -1 with a message. */
static int out_sync(struct out *o, uint64_t n)
{
    char line[64];
    int l = snprintf(line, sizeof line, "{\"sync\": %llu}\n", (unsigned long long)n);
    if (out_flush(o) || write_all(o->fd, line, (size_t)l)) {
        fprintf(stderr, "vitals-loadgen: the agent closed the stream: %s\n", strerror(errno));
        return -1;
    }
    double deadline = now_s() + (double)o->sync_timeout_ms / 1000.0;
    for (;;) {
        char *nl = memchr(o->rbuf, '\n', o->rlen);
        if (nl) {
            *nl = 0;
            unsigned long long got = 0;
            const char *s = strstr(o->rbuf, "\"synced\"");
            int ok = s && sscanf(strchr(s, ':') ? strchr(s, ':') + 1 : "", "%llu", &got) == 1;
            size_t used = (size_t)(nl - o->rbuf) + 1;
            memmove(o->rbuf, nl + 1, o->rlen - used);
            o->rlen -= used;
            if (!ok) {
                fprintf(stderr, "vitals-loadgen: unexpected answer from the agent: %s\n", o->rbuf);
                return -1;
            }
            if (got == n) {
                o->syncs++;
                return 0;
            }
            continue; /* an earlier sync's answer */
        }
        double left = deadline - now_s();
        if (left <= 0 || o->rlen == sizeof o->rbuf) {
            fprintf(stderr, "vitals-loadgen: no answer to {\"sync\": %llu} within %.1fs\n",
                    (unsigned long long)n, (double)o->sync_timeout_ms / 1000.0);
            return -1;
        }
        struct pollfd pfd = {.fd = o->fd, .events = POLLIN};
        int pr = poll(&pfd, 1, (int)(left * 1000) + 1);
        if (pr < 0 && errno != EINTR)
            return -1;
        if (pr <= 0)
            continue;
        ssize_t r = read(o->fd, o->rbuf + o->rlen, sizeof o->rbuf - o->rlen);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            fprintf(stderr, "vitals-loadgen: the agent closed the stream before answering "
                    "{\"sync\": %llu}\n", (unsigned long long)n);
            return -1;
        }
        o->rlen += (size_t)r;
    }
}

static int connect_unix(const char *dir, const char *name, int type)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    if ((size_t)snprintf(sa.sun_path, sizeof sa.sun_path, "%s/%s", dir, name) >=
        sizeof sa.sun_path) {
        fprintf(stderr, "vitals-loadgen: --socket-dir: path too long\n");
        return -1;
    }
    int fd = socket(AF_UNIX, type | SOCK_CLOEXEC, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        fprintf(stderr, "vitals-loadgen: cannot connect to %s: %s\n", sa.sun_path,
                strerror(errno));
        if (fd >= 0)
            close(fd);
        return -1;
    }
    if (type == SOCK_DGRAM) {
        int sz = 4 << 20;
        setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sz, sizeof sz);
    }
    return fd;
}

struct tally {
    uint64_t records[LG_N_SERIES], errors[LG_N_SERIES], invalid[LG_N_SERIES];
};

static void print_summary(const struct lg_config *c, const struct lg_traffic *t,
                          const struct tally *ta, uint64_t sent, double elapsed, int synced,
                          uint64_t syncs)
{
    uint64_t valid = 0, invalid = 0, errors = 0;
    for (int s = 0; s < LG_N_SERIES; s++) {
        valid += ta->records[s];
        invalid += ta->invalid[s];
        errors += ta->errors[s];
    }
    static const char *const modes[] = {"stream", "dgram", "stdout"};
    FILE *out = c->mode == MODE_STDOUT ? stderr : stdout;
    if (c->json) {
        json_t *o = json_object(), *arr = json_array();
        json_object_set_new(o, "mode", json_string(modes[c->mode]));
        json_object_set_new(o, "seed", json_integer(c->seed));
        json_object_set_new(o, "sent", json_integer((json_int_t)sent));
        json_object_set_new(o, "records", json_integer((json_int_t)valid));
        json_object_set_new(o, "invalid", json_integer((json_int_t)invalid));
        json_object_set_new(o, "errors", json_integer((json_int_t)errors));
        json_object_set_new(o, "elapsed_s", json_real(elapsed));
        json_object_set_new(o, "rate", json_real(elapsed > 0 ? (double)sent / elapsed : 0));
        json_object_set_new(o, "synced", c->mode == MODE_STREAM ? json_boolean(synced)
                                                                : json_null());
        json_object_set_new(o, "syncs", json_integer((json_int_t)syncs));
        json_t *scs = json_array();
        for (int i = 0; i < t->n_scenarios; i++) {
            const struct lg_scenario *s = &t->scenarios[i];
            json_t *j = json_object();
            json_object_set_new(j, "type", json_string(lg_scenario_name(s->type)));
            json_object_set_new(j, "start_ms", json_integer(s->start_ms));
            json_object_set_new(j, "duration_ms", json_integer(s->duration_ms));
            json_array_append_new(scs, j);
        }
        json_object_set_new(o, "scenarios", scs);
        for (int s = 0; s < LG_N_SERIES; s++) {
            if (!ta->records[s] && !ta->invalid[s])
                continue;
            int sv, m, r, ti;
            lg_series_parts(s, &sv, &m, &r, &ti);
            json_t *j = json_object(), *l = json_object();
            json_object_set_new(j, "service", json_string(lg_service_name(sv)));
            json_object_set_new(j, "model", json_string(lg_model_name(m)));
            json_object_set_new(j, "provider", json_string(lg_model_provider(m)));
            json_object_set_new(j, "version", json_string(lg_service_version(sv)));
            json_object_set_new(l, "region", json_string(lg_region_name(r)));
            json_object_set_new(l, "tier", json_string(lg_tier_name(ti)));
            json_object_set_new(j, "labels", l);
            json_object_set_new(j, "records", json_integer((json_int_t)ta->records[s]));
            json_object_set_new(j, "errors", json_integer((json_int_t)ta->errors[s]));
            json_object_set_new(j, "invalid", json_integer((json_int_t)ta->invalid[s]));
            json_array_append_new(arr, j);
        }
        json_object_set_new(o, "series", arr);
        json_dumpf(o, out, JSON_COMPACT);
        fputc('\n', out);
        json_decref(o);
        return;
    }
    if (!c->quiet) {
        fprintf(out, "%-15s %-18s %-12s %-9s %-10s %9s %7s %7s\n", "SERVICE", "MODEL",
                "PROVIDER", "REGION", "TIER", "RECORDS", "ERRORS", "INVALID");
        for (int s = 0; s < LG_N_SERIES; s++) {
            if (!ta->records[s] && !ta->invalid[s])
                continue;
            int sv, m, r, ti;
            lg_series_parts(s, &sv, &m, &r, &ti);
            fprintf(out, "%-15s %-18s %-12s %-9s %-10s %9llu %7llu %7llu\n", lg_service_name(sv),
                    lg_model_name(m), lg_model_provider(m), lg_region_name(r), lg_tier_name(ti),
                    (unsigned long long)ta->records[s], (unsigned long long)ta->errors[s],
                    (unsigned long long)ta->invalid[s]);
        }
    }
    fprintf(out, "sent %llu records (%llu valid, %llu deliberately invalid, %llu with status "
            "error) in %.2fs = %.0f records/s over %s",
            (unsigned long long)sent, (unsigned long long)valid, (unsigned long long)invalid,
            (unsigned long long)errors, elapsed, elapsed > 0 ? (double)sent / elapsed : 0,
            modes[c->mode]);
    if (c->mode == MODE_STREAM)
        fprintf(out, "; final sync %s", synced ? "answered" : "NOT answered");
    fputc('\n', out);
}

int main(int argc, char **argv)
{
    struct lg_config c;
    char err[512];
    static const struct vt_program_info prog = {
        "vitals-loadgen",
        "realistic synthetic LLM traffic (4 services, 3 providers, 6 models, cohorts) with\n"
        "incident scenarios, sent to a vitals-agent's socket"};
    /* --scenario may repeat: take every occurrence out of argv first. */
    char **scen = calloc((size_t)argc + 1, sizeof *scen), **rest = calloc((size_t)argc + 1, sizeof *rest);
    int n_scen = 0, n_rest = 0;
    if (!scen || !rest)
        return 1;
    for (int i = 0; i < argc; i++) {
        if (i > 0 && strcmp(argv[i], "--scenario") == 0 && i + 1 < argc)
            scen[n_scen++] = argv[++i];
        else if (i > 0 && strncmp(argv[i], "--scenario=", 11) == 0)
            scen[n_scen++] = argv[i] + 11;
        else
            rest[n_rest++] = argv[i];
    }
    enum vt_config_result cr = vt_config_load(&prog, knobs, N_KNOBS, &c, n_rest, rest, err,
                                              sizeof err);
    if (cr != VT_CONFIG_OK) {
        if (cr == VT_CONFIG_ERROR)
            fprintf(stderr, "vitals-loadgen: %s\n", err);
        vt_config_free(knobs, N_KNOBS, &c);
        free(scen);
        free(rest);
        return cr == VT_CONFIG_EXIT ? 0 : 2;
    }
    struct lg_traffic *t = malloc(sizeof *t);
    struct tally *ta = calloc(1, sizeof *ta);
    char *rec = malloc(LG_RECORD_MAX + 1);
    struct out o = {.mode = c.mode, .fd = 1, .cap = 256 << 10, .sync_timeout_ms = c.sync_timeout_ms};
    o.buf = malloc(o.cap);
    int rc = 0;
    if (!t || !ta || !rec || !o.buf) {
        fprintf(stderr, "vitals-loadgen: out of memory\n");
        rc = 1;
        goto done;
    }
    int64_t ts_start = c.ts_start ? c.ts_start : wall_ms();
    lg_traffic_init(t, (uint64_t)c.seed, ts_start, (int)c.embedding_dims);
    if (lg_traffic_set_services(t, c.services, err, sizeof err) ||
        (c.scenario && *c.scenario && lg_traffic_add_scenario(t, c.scenario, err, sizeof err)) ||
        (c.scenario_file && *c.scenario_file &&
         lg_traffic_load_scenarios(t, c.scenario_file, err, sizeof err))) {
        fprintf(stderr, "vitals-loadgen: %s\n", err);
        rc = 2;
        goto done;
    }
    for (int i = 0; i < n_scen; i++)
        if (lg_traffic_add_scenario(t, scen[i], err, sizeof err)) {
            fprintf(stderr, "vitals-loadgen: --scenario: %s\n", err);
            rc = 2;
            goto done;
        }

    signal(SIGPIPE, SIG_IGN);
    struct sigaction sa = {.sa_handler = on_signal};
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);

    if (c.mode != MODE_STDOUT) {
        o.fd = connect_unix(c.socket_dir, c.mode == MODE_STREAM ? "ingest.sock" : "ingest.dgram",
                            c.mode == MODE_STREAM ? SOCK_STREAM : SOCK_DGRAM);
        if (o.fd < 0) {
            rc = 1;
            goto done;
        }
    }

    /* With a rate, --duration is a record count in virtual time. */
    uint64_t limit = c.count > 0 ? (uint64_t)c.count : UINT64_MAX;
    if (c.rate > 0 && c.duration_ms > 0) {
        uint64_t by_time = (uint64_t)(c.rate * c.duration_ms / 1000);
        if (by_time < limit)
            limit = by_time;
    }
    double start = now_s();
    uint64_t i = 0, next_sync = c.sync_every > 0 ? (uint64_t)c.sync_every : UINT64_MAX;
    int failed = 0;
    while (!stop_flag && i < limit) {
        double el = now_s() - start;
        if (c.rate == 0 && c.duration_ms > 0 && el * 1000 >= (double)c.duration_ms)
            break;
        uint64_t due = limit;
        if (c.rate > 0) {
            due = (uint64_t)(el * (double)c.rate) + 1;
            if (due > limit)
                due = limit;
        }
        uint64_t batch_end = i + 4096 < due ? i + 4096 : due;
        for (; i < batch_end; i++) {
            int64_t vt = c.rate > 0 ? (int64_t)(i * 1000 / (uint64_t)c.rate) : (int64_t)(el * 1000);
            struct lg_sent s;
            size_t n = lg_traffic_record(t, i, vt, rec, LG_RECORD_MAX + 1, &s);
            if (out_record(&o, rec, n)) {
                fprintf(stderr, "vitals-loadgen: write failed after %llu records: %s\n",
                        (unsigned long long)i, strerror(errno));
                failed = 1;
                break;
            }
            if (s.invalid)
                ta->invalid[s.series]++;
            else
                ta->records[s.series]++;
            ta->errors[s.series] += (uint64_t)(s.error && !s.invalid);
            if (c.mode == MODE_STREAM && i + 1 == next_sync) {
                if (out_sync(&o, i + 1)) {
                    failed = 1;
                    break;
                }
                next_sync += (uint64_t)c.sync_every;
            }
        }
        if (failed)
            break;
        if (c.rate > 0 && i < limit) {
            /* caught up: flush what is buffered, sleep until the next one is due */
            if (c.mode != MODE_DGRAM && out_flush(&o)) {
                failed = 1;
                break;
            }
            double wait = start + (double)i / (double)c.rate - now_s();
            if (wait > 0) {
                struct timespec ts = {(time_t)wait, (long)((wait - (double)(time_t)wait) * 1e9)};
                nanosleep(&ts, NULL);
            }
        }
    }
    int synced = 0;
    if (!failed) {
        if (c.mode == MODE_STREAM)
            synced = out_sync(&o, i) == 0;
        else if (c.mode == MODE_STDOUT)
            failed = out_flush(&o) != 0;
    }
    double elapsed = now_s() - start;
    print_summary(&c, t, ta, i, elapsed, synced, o.syncs);
    rc = failed || (c.mode == MODE_STREAM && !synced) ? 1 : 0;
done:
    if (o.fd > 1)
        close(o.fd);
    free(o.buf);
    free(rec);
    free(ta);
    free(t);
    free(scen);
    free(rest);
    vt_config_free(knobs, N_KNOBS, &c);
    return rc;
}
