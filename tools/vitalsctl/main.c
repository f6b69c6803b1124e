/*
 * main.c - vitalsctl: the operator's command line for a vitals-scorer.
 *
 *   vitalsctl [--scorer-url URL] scores [--watch [--interval 2s]] [--json]
 *   vitalsctl explain NAME [--segment k=v[,k=v]] [--json]
 *   vitalsctl gate NAME --min 0.85 --for 10m [--segment k=v]
 *   vitalsctl check-config FILE
 *
 * Everything it shows comes from the scorer's JSON API (docs/api.md, read
 * with libcurl and jansson); nothing is recomputed here, so the table is
 * exactly what /v1/scores says. Flags come from lib/config.h's knob table
 * (so --help lists them with their VITALS_* variables); the command and its
 * positional arguments are taken out of argv first. Exit codes: vitalsctl.h.
 */
#include <curl/curl.h>
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "vitalsctl.h"

struct ctl_config {
    char *scorer_url;
    int json;
    int watch;
    int64_t interval_ms;
    int64_t watch_count;
    char *segment;
    char *min;
    int64_t for_ms;
    int64_t timeout_ms;
};

#define K(n, t, f, d, h) {n, t, offsetof(struct ctl_config, f), d, h, NULL, 0, 0}
static const struct vt_knob knobs[] = {
    K("scorer-url", VT_KNOB_STRING, scorer_url, "http://127.0.0.1:7402",
      "base URL of the scorer's HTTP API"),
    K("json", VT_KNOB_BOOL, json, "false", "scores, explain: print the API's JSON instead of a table"),
    K("watch", VT_KNOB_BOOL, watch, "false", "scores: redraw the table every --interval until Ctrl-C"),
    K("interval", VT_KNOB_DURATION, interval_ms, "2s",
      "scores --watch: refresh period; gate --segment: polling period"),
    {"watch-count", VT_KNOB_INT, offsetof(struct ctl_config, watch_count), "0",
     "scores --watch: stop after this many refreshes (0 = until Ctrl-C)", NULL, 0, INT64_MAX},
    K("segment", VT_KNOB_STRING, segment, NULL,
      "explain, gate: a segment as k=v[,k=v] (e.g. provider=anthropic)"),
    K("min", VT_KNOB_STRING, min, NULL, "gate: lowest acceptable score, in [0, 1]"),
    K("for", VT_KNOB_DURATION, for_ms, "0", "gate: how long the score must have stayed >= --min"),
    K("timeout", VT_KNOB_DURATION, timeout_ms, "5s", "HTTP timeout of one request"),
};
#define N_KNOBS (sizeof knobs / sizeof knobs[0])

static const char usage_text[] =
    "Commands:\n"
    "  scores [--watch [--interval 2s]] [--json]   every score, per segment: score, state,\n"
    "                                               coverage, count, biggest detractor, masked\n"
    "  explain NAME [--segment k=v] [--json]       components of a score: value, normalized,\n"
    "                                               weight, contribution; detractor; exemplars\n"
    "  gate NAME --min X --for D [--segment k=v]   exit 0 if the score stayed >= X for D,\n"
    "                                               1 if not (and why), 2 if it cannot tell\n"
    "  check-config FILE                           validate a score file offline\n"
    "Exit codes: 0 success / gate passed / valid; 1 gate failed / invalid file / no such\n"
    "score or segment; 2 bad usage / scorer unreachable / no data / unreadable file.\n";

static volatile sig_atomic_t stop_flag;
static void on_signal(int sig) { (void)sig; stop_flag = 1; }

/* ----------------------------------------------------------------- HTTP */

struct buf {
    char *p;
    size_t len;
};

static size_t on_data(char *ptr, size_t size, size_t n, void *ud)
{
    struct buf *b = ud;
    size_t add = size * n;
    if (b->len + add > (64u << 20))
        return 0; /* refuse absurd answers */
    char *np = realloc(b->p, b->len + add + 1);
    if (!np)
        return 0;
    memcpy(np + b->len, ptr, add);
    b->p = np;
    b->len += add;
    b->p[b->len] = 0;
    return add;
}

/* GET base+path and parse JSON. Returns the HTTP status (>= 200) with *out
 * set (caller decrefs; may be NULL if the body is not JSON), or -1 with a
 * message in err when the scorer could not be reached. */
static long get_json(const struct ctl_config *c, const char *path, json_t **out, char *err,
                     size_t errlen)
{
    *out = NULL;
    char url[2048];
    size_t bl = strlen(c->scorer_url);
    while (bl && c->scorer_url[bl - 1] == '/')
        bl--;
    snprintf(url, sizeof url, "%.*s%s", (int)bl, c->scorer_url, path);
    CURL *h = curl_easy_init();
    if (!h) {
        snprintf(err, errlen, "curl init failed");
        return -1;
    }
    struct buf b = {0};
    char cerr[CURL_ERROR_SIZE] = "";
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &b);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, (long)c->timeout_ms);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, (long)c->timeout_ms);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, cerr);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_USERAGENT, "vitalsctl/" VITALS_VERSION);
    CURLcode rc = curl_easy_perform(h);
    long status = -1;
    if (rc != CURLE_OK) {
        snprintf(err, errlen, "cannot reach the scorer at %s: %s", url,
                 cerr[0] ? cerr : curl_easy_strerror(rc));
    } else {
        curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
        if (b.p)
            *out = json_loadb(b.p, b.len, 0, NULL);
        if (!*out)
            snprintf(err, errlen, "%s: HTTP %ld with a body that is not JSON", url, status);
    }
    free(b.p);
    curl_easy_cleanup(h);
    return status;
}

/* -------------------------------------------------------------- helpers */

static double jnum(json_t *o, const char *k)
{
    json_t *v = json_object_get(o, k);
    return json_is_number(v) ? json_number_value(v) : NAN;
}

static const char *jstr(json_t *o, const char *k, const char *def)
{
    json_t *v = json_object_get(o, k);
    return json_is_string(v) ? json_string_value(v) : def;
}

static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static const char *fmt_time(int64_t ms, char *buf, size_t cap)
{
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    localtime_r(&t, &tm);
    strftime(buf, cap, "%H:%M:%S", &tm);
    return buf;
}

static const char *fmt_dur(int64_t ms, char *buf, size_t cap)
{
    int64_t s = ms / 1000;
    if (ms < 1000)
        snprintf(buf, cap, "%lldms", (long long)ms);
    else if (s < 60)
        snprintf(buf, cap, "%llds", (long long)s);
    else if (s < 3600)
        snprintf(buf, cap, "%lldm%02llds", (long long)(s / 60), (long long)(s % 60));
    else
        snprintf(buf, cap, "%lldh%02lldm", (long long)(s / 3600), (long long)(s % 3600 / 60));
    return buf;
}

static const char *fmt_num(double v, char *buf, size_t cap)
{
    if (isnan(v))
        snprintf(buf, cap, "-");
    else if (fabs(v) >= 1000 && fabs(v) < 1e12)
        snprintf(buf, cap, "%.0f", v); /* latencies, token counts: no exponent */
    else
        snprintf(buf, cap, "%.4g", v);
    return buf;
}

/* "provider=anthropic,model=x" from a segment's labels (in segment_by order). */
static void segment_text(json_t *score, json_t *seg, char *buf, size_t cap)
{
    json_t *labels = json_object_get(seg, "labels");
    json_t *by = json_object_get(score, "segment_by");
    size_t o = 0, i;
    json_t *dim;
    buf[0] = 0;
    json_array_foreach(by, i, dim) {
        const char *k = json_string_value(dim);
        if (!k || o >= cap)
            continue;
        const char *v = jstr(labels, k, "");
        o += (size_t)snprintf(buf + o, cap - o, "%s%s=%s", o ? "," : "", k, *v ? v : "(none)");
    }
}

/* Does seg match every k=v of spec ("provider=anthropic,model=x")? */
static int segment_matches(json_t *seg, const char *spec)
{
    json_t *labels = json_object_get(seg, "labels");
    char tmp[1024];
    snprintf(tmp, sizeof tmp, "%s", spec);
    char *save = NULL;
    for (char *kv = strtok_r(tmp, ",", &save); kv; kv = strtok_r(NULL, ",", &save)) {
        char *eq = strchr(kv, '=');
        if (!eq)
            return 0;
        *eq = 0;
        json_t *v = json_object_get(labels, kv);
        if (!json_is_string(v) || strcmp(json_string_value(v), eq + 1) != 0)
            return 0;
    }
    return 1;
}

static int valid_segment_spec(const char *spec)
{
    if (!spec || !*spec)
        return 0;
    const char *p = spec;
    while (*p) {
        const char *e = strchr(p, ',');
        size_t n = e ? (size_t)(e - p) : strlen(p);
        const char *eq = memchr(p, '=', n);
        if (!eq || eq == p)
            return 0;
        p += n + (e ? 1 : 0);
    }
    return 1;
}

static json_t *component_named(json_t *ev, const char *name)
{
    size_t i;
    json_t *c;
    json_array_foreach(json_object_get(ev, "components"), i, c) {
        if (name && strcmp(jstr(c, "name", ""), name) == 0)
            return c;
    }
    return NULL;
}

/* "latency p95=8830 (0.00)" for the evaluation's detractor. */
static void detractor_text(json_t *ev, char *buf, size_t cap)
{
    const char *d = jstr(ev, "detractor", NULL);
    json_t *c = component_named(ev, d);
    if (!c) {
        snprintf(buf, cap, "-");
        return;
    }
    char v[32], n[32];
    fmt_num(jnum(c, "value"), v, sizeof v);
    double norm = jnum(c, "normalized");
    if (isnan(norm))
        snprintf(n, sizeof n, "-");
    else
        snprintf(n, sizeof n, "%.2f", norm);
    snprintf(buf, cap, "%s %s=%s (%s)", d, jstr(c, "stat", "?"), v, n);
}

static const char *state_text(json_t *ev, char *buf, size_t cap)
{
    const char *st = jstr(ev, "state", "?");
    const char *pend = jstr(ev, "pending_state", NULL);
    if (pend)
        snprintf(buf, cap, "%s>%s", st, pend);
    else
        snprintf(buf, cap, "%s", st);
    return buf;
}

static void row(FILE *out, int segw, const char *name, const char *seg, json_t *ev,
                const char *flags)
{
    char sc[16], cov[16], st[40], det[256];
    double s = jnum(ev, "score"), c = jnum(ev, "coverage");
    if (isnan(s))
        snprintf(sc, sizeof sc, "-");
    else
        snprintf(sc, sizeof sc, "%.3f", s);
    snprintf(cov, sizeof cov, "%.0f%%", isnan(c) ? 0 : 100 * c);
    detractor_text(ev, det, sizeof det);
    json_t *cnt = json_object_get(ev, "count");
    fprintf(out, "%-24s %-*s %6s  %-16s %5s %8lld  %s%s%s\n", name, segw, seg, sc,
            state_text(ev, st, sizeof st), cov,
            json_is_integer(cnt) ? (long long)json_integer_value(cnt) : 0LL, det,
            *flags ? "  " : "", flags);
}

/* ------------------------------------------------------------- commands */

static void render_scores(FILE *out, const struct ctl_config *c, json_t *root)
{
    json_t *scores = json_object_get(root, "scores");
    size_t i, j;
    json_t *s, *seg;
    int segw = 7;
    char buf[1024];
    int64_t newest = 0;
    json_array_foreach(scores, i, s) {
        json_array_foreach(json_object_get(s, "segments"), j, seg) {
            segment_text(s, seg, buf, sizeof buf);
            int l = (int)strlen(buf) + 2;
            if (l > segw)
                segw = l > 52 ? 52 : l;
        }
        json_t *ev = json_object_get(s, "evaluated_at");
        if (json_is_integer(ev) && json_integer_value(ev) > newest)
            newest = json_integer_value(ev);
    }
    char t1[32], t2[32];
    fprintf(out, "scorer %s  config %s  evaluated %s (%s ago)\n", c->scorer_url,
            jstr(root, "config_version", "?"), newest ? fmt_time(newest, t1, sizeof t1) : "never",
            newest ? fmt_dur(wall_ms() - newest > 0 ? wall_ms() - newest : 0, t2, sizeof t2) : "-");
    fprintf(out, "%-24s %-*s %6s  %-16s %5s %8s  %s\n", "SCORE", segw, "SEGMENT", "SCORE",
            "STATE", "COVER", "COUNT", "DETRACTOR");
    if (!json_array_size(scores))
        fprintf(out, "(no scores configured)\n");
    json_array_foreach(scores, i, s) {
        const char *name = jstr(s, "name", "?");
        int shadow = strcmp(jstr(s, "mode", "live"), "shadow") == 0;
        row(out, segw, name, "(all)", s, shadow ? "[shadow]" : "");
        json_array_foreach(json_object_get(s, "segments"), j, seg) {
            segment_text(s, seg, buf, sizeof buf);
            char label[1100];
            snprintf(label, sizeof label, "  %s", buf);
            if ((int)strlen(label) > segw)
                label[segw] = 0;
            row(out, segw, "", label, seg, json_is_true(json_object_get(seg, "masked"))
                                               ? "MASKED (much worse than the whole)" : "");
        }
    }
}

static int cmd_scores(const struct ctl_config *c)
{
    int tty = isatty(STDOUT_FILENO);
    int64_t n = 0;
    for (;;) {
        json_t *root;
        char err[2300];
        long st = get_json(c, "/v1/scores", &root, err, sizeof err);
        int ok = st == 200 && json_is_object(root);
        if (!c->watch) {
            if (!ok) {
                fprintf(stderr, "vitalsctl: %s\n",
                        st < 0 || !root ? err : "unexpected answer from /v1/scores");
                json_decref(root);
                return CTL_EXIT_CANNOT;
            }
            if (c->json) {
                json_dumpf(root, stdout, JSON_INDENT(2));
                fputc('\n', stdout);
            } else {
                render_scores(stdout, c, root);
            }
            json_decref(root);
            return CTL_EXIT_OK;
        }
        /* watch: render into memory first so the redraw does not flicker */
        char *mem = NULL;
        size_t memlen = 0;
        FILE *m = open_memstream(&mem, &memlen);
        if (!m)
            return CTL_EXIT_CANNOT;
        if (!ok)
            fprintf(m, "vitalsctl: %s (retrying every %llds)\n",
                    st < 0 || !root ? err : "unexpected answer from /v1/scores",
                    (long long)(c->interval_ms / 1000));
        else if (c->json)
            json_dumpf(root, m, JSON_COMPACT), fputc('\n', m);
        else
            render_scores(m, c, root);
        fclose(m);
        json_decref(root);
        if (tty && !c->json)
            fputs("\033[H\033[2J", stdout);
        fwrite(mem, 1, memlen, stdout);
        if (!tty && !c->json)
            fputc('\n', stdout);
        fflush(stdout);
        free(mem);
        if (++n == c->watch_count || stop_flag)
            return CTL_EXIT_OK;
        struct timespec ts = {(time_t)(c->interval_ms / 1000), (long)(c->interval_ms % 1000) * 1000000};
        while (nanosleep(&ts, &ts) != 0 && errno == EINTR && !stop_flag)
            ;
        if (stop_flag)
            return CTL_EXIT_OK;
    }
}

static void explain_eval(FILE *out, json_t *score, json_t *ev, const char *title)
{
    char st[40], t[32];
    double s = jnum(ev, "score");
    fprintf(out, "%s %s: score %s, state %s, coverage %.0f%%, %lld records in %s, %s, config %s",
            jstr(score, "name", "?"), title, isnan(s) ? "-" : (snprintf(t, sizeof t, "%.3f", s), t),
            state_text(ev, st, sizeof st), 100 * (isnan(jnum(ev, "coverage")) ? 0 : jnum(ev, "coverage")),
            (long long)json_integer_value(json_object_get(ev, "count")),
            jstr(score, "window", "?"), jstr(score, "combine", "?"),
            jstr(ev, "config_version", jstr(score, "config_version", "?")));
    if (json_is_number(json_object_get(ev, "share")))
        fprintf(out, ", share %.0f%%", 100 * jnum(ev, "share"));
    fputc('\n', out);
    fprintf(out, "  %-16s %-28s %10s %10s %7s %12s %8s  %s\n", "COMPONENT", "STAT", "VALUE",
            "NORMALIZED", "WEIGHT", "CONTRIBUTION", "COUNT", "NOTE");
    size_t i;
    json_t *c;
    const char *det = jstr(ev, "detractor", NULL);
    json_array_foreach(json_object_get(ev, "components"), i, c) {
        char stat[128], v[32], nv[32], w[32], ct[32], note[160] = "";
        const char *metric = jstr(c, "metric", jstr(c, "field", NULL));
        if (metric)
            snprintf(stat, sizeof stat, "%s(%s)", jstr(c, "stat", "?"), metric);
        else
            snprintf(stat, sizeof stat, "%s", jstr(c, "stat", "?"));
        fmt_num(jnum(c, "value"), v, sizeof v);
        double n = jnum(c, "normalized"), wt = jnum(c, "weight"), con = jnum(c, "contribution");
        snprintf(nv, sizeof nv, isnan(n) ? "-" : "%.3f", n);
        snprintf(w, sizeof w, isnan(wt) ? "-" : "%.3f", wt);
        snprintf(ct, sizeof ct, isnan(con) ? "-" : "%.3f", con);
        if (json_is_true(json_object_get(c, "missing")))
            snprintf(note, sizeof note, "missing (%s)", jstr(c, "missing_reason", "?"));
        else if (det && strcmp(det, jstr(c, "name", "")) == 0)
            snprintf(note, sizeof note, "<- biggest detractor");
        fprintf(out, "  %-16s %-28s %10s %10s %7s %12s %8lld  %s\n", jstr(c, "name", "?"), stat,
                v, nv, w, ct, (long long)json_integer_value(json_object_get(c, "count")), note);
    }
    json_t *dc = component_named(ev, det);
    if (dc) {
        double lost = jnum(dc, "weight") * (1 - jnum(dc, "normalized"));
        char v[32];
        fprintf(out, "  detractor: %s (%s = %s", det, jstr(dc, "stat", "?"),
                fmt_num(jnum(dc, "value"), v, sizeof v));
        if (strcmp(jstr(score, "combine", ""), "weighted_mean") == 0 && !isnan(lost))
            fprintf(out, "; costs %.3f of the score", lost);
        fprintf(out, ")\n");
    } else {
        fprintf(out, "  detractor: none\n");
    }
    json_array_foreach(json_object_get(ev, "components"), i, c) {
        json_t *x = json_object_get(c, "exemplars");
        if (json_array_size(x)) {
            fprintf(out, "  exemplars of %s:", jstr(c, "name", "?"));
            size_t k;
            json_t *e;
            json_array_foreach(x, k, e) fprintf(out, " %s", json_string_value(e));
            fputc('\n', out);
        }
    }
}

static int fetch_score(const struct ctl_config *c, const char *name, const char *suffix,
                       json_t **out)
{
    char path[1024], enc[768];
    size_t o = 0;
    for (const unsigned char *p = (const unsigned char *)name; *p && o + 4 < sizeof enc; p++) {
        if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
            *p == '_' || *p == '-' || *p == '.')
            enc[o++] = (char)*p;
        else
            o += (size_t)snprintf(enc + o, sizeof enc - o, "%%%02X", *p);
    }
    enc[o] = 0;
    snprintf(path, sizeof path, "/v1/scores/%s%s", enc, suffix);
    char err[2300];
    long st = get_json(c, path, out, err, sizeof err);
    if (st == 404) {
        json_decref(*out);
        *out = NULL;
        fprintf(stderr, "vitalsctl: no such score: %s (see `vitalsctl scores`)\n", name);
        return CTL_EXIT_NO;
    }
    if (st != 200 || !json_is_object(*out)) {
        fprintf(stderr, "vitalsctl: %s\n", st < 0 || !*out ? err : "unexpected answer from the scorer");
        json_decref(*out);
        *out = NULL;
        return CTL_EXIT_CANNOT;
    }
    return CTL_EXIT_OK;
}

static int cmd_explain(const struct ctl_config *c, const char *name)
{
    json_t *s;
    int rc = fetch_score(c, name, "", &s);
    if (rc)
        return rc;
    if (c->segment) {
        size_t i, hits = 0;
        json_t *seg, *arr = json_array();
        json_array_foreach(json_object_get(s, "segments"), i, seg) {
            if (segment_matches(seg, c->segment))
                json_array_append(arr, seg);
        }
        hits = json_array_size(arr);
        if (!hits) {
            fprintf(stderr, "vitalsctl: %s has no segment %s; its segments:", name, c->segment);
            json_array_foreach(json_object_get(s, "segments"), i, seg) {
                char b[1024];
                segment_text(s, seg, b, sizeof b);
                fprintf(stderr, " %s", b);
            }
            fputc('\n', stderr);
            json_decref(arr);
            json_decref(s);
            return CTL_EXIT_NO;
        }
        if (c->json) {
            json_dumpf(hits == 1 ? json_array_get(arr, 0) : arr, stdout, JSON_INDENT(2));
            fputc('\n', stdout);
        } else {
            json_array_foreach(arr, i, seg) {
                char b[1024], title[1100];
                segment_text(s, seg, b, sizeof b);
                snprintf(title, sizeof title, "segment %s%s", b,
                         json_is_true(json_object_get(seg, "masked")) ? " [MASKED]" : "");
                if (i)
                    fputc('\n', stdout);
                explain_eval(stdout, s, seg, title);
            }
        }
        json_decref(arr);
        json_decref(s);
        return CTL_EXIT_OK;
    }
    if (c->json) {
        json_dumpf(s, stdout, JSON_INDENT(2));
        fputc('\n', stdout);
        json_decref(s);
        return CTL_EXIT_OK;
    }
    explain_eval(stdout, s, s, "(whole)");
    size_t i, masked = 0;
    json_t *seg;
    json_array_foreach(json_object_get(s, "segments"), i, seg) {
        if (!json_is_true(json_object_get(seg, "masked")))
            continue;
        char b[1024], st[40], det[256];
        segment_text(s, seg, b, sizeof b);
        detractor_text(seg, det, sizeof det);
        if (!masked++)
            fprintf(stdout, "  masked segments (much worse than the whole):\n");
        fprintf(stdout, "    %s: score %.3f, %s, share %.0f%%, detractor %s\n", b,
                jnum(seg, "score"), state_text(seg, st, sizeof st), 100 * jnum(seg, "share"), det);
    }
    if (!masked)
        fprintf(stdout, "  masked segments: none (%zu segments)\n",
                json_array_size(json_object_get(s, "segments")));
    json_decref(s);
    return CTL_EXIT_OK;
}

/* gate on the whole score, from the history endpoint */
static int gate_history(const struct ctl_config *c, const char *name, double min)
{
    json_t *h;
    int rc = fetch_score(c, name, "/history", &h);
    if (rc)
        return rc == CTL_EXIT_NO ? CTL_EXIT_CANNOT : rc; /* unknown score: cannot tell */
    json_t *pts = json_object_get(h, "points");
    size_t n = json_array_size(pts);
    char d1[32], d2[32], t1[32], t2[32];
    if (n == 0) {
        printf("gate %s: cannot tell: the scorer has no history for it yet\n", name);
        json_decref(h);
        return CTL_EXIT_CANNOT;
    }
    int64_t last = json_integer_value(json_object_get(json_array_get(pts, n - 1), "ts"));
    int64_t first = json_integer_value(json_object_get(json_array_get(pts, 0), "ts"));
    int64_t step = n > 1 ? (last - first) / (int64_t)(n - 1) : 0;
    int64_t since = last - c->for_ms;
    /* points older than the window are ignored; a point within one step
     * before `since` still counts as the state at `since` */
    size_t below = 0, nulls = 0, used = 0;
    double lowest = INFINITY;
    int64_t lowest_ts = 0, first_below = 0, last_below = 0, first_null = 0;
    int64_t covered_from = INT64_MAX;
    for (size_t i = 0; i < n; i++) {
        json_t *p = json_array_get(pts, i);
        int64_t ts = json_integer_value(json_object_get(p, "ts"));
        int64_t next = i + 1 < n ? json_integer_value(json_object_get(json_array_get(pts, i + 1), "ts"))
                                 : INT64_MAX;
        if (next <= since)
            continue; /* superseded before the window began */
        used++;
        if (ts < covered_from)
            covered_from = ts;
        double s = jnum(p, "score");
        if (isnan(s)) {
            if (!nulls++)
                first_null = ts;
            continue;
        }
        if (s < lowest) {
            lowest = s;
            lowest_ts = ts;
        }
        if (s < min) {
            if (!below++)
                first_below = ts;
            last_below = ts;
        }
    }
    double now_score = jnum(json_array_get(pts, n - 1), "score");
    char nowtxt[32];
    snprintf(nowtxt, sizeof nowtxt, isnan(now_score) ? "no data" : "%.3f", now_score);
    if (below) {
        printf("gate %s: FAIL: the score fell below %.3f in the last %s: %zu of %zu evaluations "
               "below, first at %s, last at %s, lowest %.3f at %s; now %s\n",
               name, min, fmt_dur(c->for_ms, d1, sizeof d1), below, used,
               fmt_time(first_below, t1, sizeof t1), fmt_time(last_below, t2, sizeof t2), lowest,
               fmt_time(lowest_ts, d2, sizeof d2), nowtxt);
        json_decref(h);
        return CTL_EXIT_NO;
    }
    if (covered_from > since + (step > 0 ? step : 0) || used == 0) {
        printf("gate %s: cannot tell: the history covers only %s of the %s asked (since %s)\n",
               name, fmt_dur(last - (covered_from == INT64_MAX ? last : covered_from), d1, sizeof d1),
               fmt_dur(c->for_ms, d2, sizeof d2), fmt_time(covered_from == INT64_MAX ? last : covered_from, t1, sizeof t1));
        json_decref(h);
        return CTL_EXIT_CANNOT;
    }
    if (nulls) {
        printf("gate %s: cannot tell: no data in %zu of %zu evaluations of the last %s (first at "
               "%s)\n", name, nulls, used, fmt_dur(c->for_ms, d1, sizeof d1),
               fmt_time(first_null, t1, sizeof t1));
        json_decref(h);
        return CTL_EXIT_CANNOT;
    }
    int64_t age = wall_ms() - last;
    if (age > c->for_ms && age > 60000) {
        printf("gate %s: cannot tell: the latest evaluation is %s old (is the scorer "
               "evaluating?)\n", name, fmt_dur(age, d1, sizeof d1));
        json_decref(h);
        return CTL_EXIT_CANNOT;
    }
    printf("gate %s: PASS: the score stayed >= %.3f for the last %s (%zu evaluations, lowest "
           "%.3f at %s; now %s)\n", name, min, fmt_dur(c->for_ms, d1, sizeof d1), used, lowest,
           fmt_time(lowest_ts, t1, sizeof t1), nowtxt);
    json_decref(h);
    return CTL_EXIT_OK;
}

/* gate on a segment: the scorer keeps history for whole scores only, so
 * observe the segment live for --for, polling every --interval. */
static int gate_segment(const struct ctl_config *c, const char *name, double min)
{
    char d1[32], t1[32];
    fprintf(stderr, "gate %s: per-segment history is not kept by the scorer: observing segment "
            "%s live for %s\n", name, c->segment, fmt_dur(c->for_ms, d1, sizeof d1));
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    size_t polls = 0, nodata = 0;
    double lowest = INFINITY;
    int64_t lowest_ts = 0;
    for (;;) {
        json_t *s;
        int rc = fetch_score(c, name, "", &s);
        if (rc)
            return CTL_EXIT_CANNOT;
        size_t i, hits = 0;
        json_t *seg, *hit = NULL;
        json_array_foreach(json_object_get(s, "segments"), i, seg) {
            if (segment_matches(seg, c->segment)) {
                hits++;
                hit = seg;
            }
        }
        if (hits > 1) {
            printf("gate %s: cannot tell: --segment %s matches %zu segments; name every "
                   "segment_by label\n", name, c->segment, hits);
            json_decref(s);
            return CTL_EXIT_CANNOT;
        }
        polls++;
        double sc = hit ? jnum(hit, "score") : NAN;
        int64_t now = wall_ms();
        if (isnan(sc)) {
            nodata++;
        } else {
            if (sc < lowest) {
                lowest = sc;
                lowest_ts = now;
            }
            if (sc < min) {
                char st[40];
                char det[256];
                detractor_text(hit, det, sizeof det);
                printf("gate %s: FAIL: segment %s is at %.3f (< %.3f) at %s, state %s, "
                       "detractor %s\n", name, c->segment, sc, min, fmt_time(now, t1, sizeof t1),
                       state_text(hit, st, sizeof st), det);
                json_decref(s);
                return CTL_EXIT_NO;
            }
        }
        json_decref(s);
        struct timespec t;
        clock_gettime(CLOCK_MONOTONIC, &t);
        int64_t el = (t.tv_sec - t0.tv_sec) * 1000 + (t.tv_nsec - t0.tv_nsec) / 1000000;
        if (el >= c->for_ms || stop_flag)
            break;
        int64_t w = c->interval_ms < c->for_ms - el ? c->interval_ms : c->for_ms - el;
        struct timespec ts = {(time_t)(w / 1000), (long)(w % 1000) * 1000000};
        while (nanosleep(&ts, &ts) != 0 && errno == EINTR && !stop_flag)
            ;
    }
    if (stop_flag) {
        printf("gate %s: cannot tell: interrupted\n", name);
        return CTL_EXIT_CANNOT;
    }
    if (nodata) {
        printf("gate %s: cannot tell: segment %s had no data in %zu of %zu polls\n", name,
               c->segment, nodata, polls);
        return CTL_EXIT_CANNOT;
    }
    printf("gate %s: PASS: segment %s stayed >= %.3f for %s (%zu polls, lowest %.3f at %s)\n",
           name, c->segment, min, fmt_dur(c->for_ms, d1, sizeof d1), polls, lowest,
           fmt_time(lowest_ts, t1, sizeof t1));
    return CTL_EXIT_OK;
}

/* ----------------------------------------------------------------- main */

static int knob_takes_value(const char *arg)
{
    if (strchr(arg, '='))
        return 0;
    for (size_t i = 0; i < N_KNOBS; i++)
        if (strcmp(arg + 2, knobs[i].name) == 0)
            return knobs[i].type != VT_KNOB_BOOL;
    return strcmp(arg, "--config") == 0;
}

int main(int argc, char **argv)
{
    static const struct vt_program_info prog = {
        "vitalsctl", "query, explain and gate on the scores of a vitals-scorer; check score "
                     "files offline\n\n"
                     "Usage: vitalsctl [FLAGS] COMMAND [ARGS]\n"};
    char **rest = calloc((size_t)argc + 1, sizeof *rest);
    const char *pos[4] = {0};
    int n_rest = 0, n_pos = 0, extra = 0;
    if (!rest)
        return CTL_EXIT_CANNOT;
    for (int i = 0; i < argc; i++) {
        if (i == 0 || strncmp(argv[i], "--", 2) == 0 || strcmp(argv[i], "-h") == 0) {
            rest[n_rest++] = argv[i];
            if (i > 0 && knob_takes_value(argv[i]) && i + 1 < argc)
                rest[n_rest++] = argv[++i];
        } else if (n_pos < 4) {
            pos[n_pos++] = argv[i];
        } else {
            extra = 1;
        }
    }
    struct ctl_config c;
    memset(&c, 0, sizeof c);
    char err[512];
    enum vt_config_result cr = vt_config_load(&prog, knobs, N_KNOBS, &c, n_rest, rest, err,
                                              sizeof err);
    free(rest);
    int help = 0;
    for (int i = 1; i < argc; i++)
        help |= strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0;
    if (cr == VT_CONFIG_EXIT) {
        if (help)
            fputs(usage_text, stdout);
        vt_config_free(knobs, N_KNOBS, &c);
        return CTL_EXIT_OK;
    }
    if (cr == VT_CONFIG_ERROR) {
        fprintf(stderr, "vitalsctl: %s\n", err);
        vt_config_free(knobs, N_KNOBS, &c);
        return CTL_EXIT_CANNOT;
    }
    int rc = CTL_EXIT_CANNOT;
    const char *cmd = pos[0];
    if (c.segment && !valid_segment_spec(c.segment)) {
        fprintf(stderr, "vitalsctl: --segment: expected k=v[,k=v], got '%s'\n", c.segment);
        goto out;
    }
    if (!cmd) {
        fprintf(stderr, "vitalsctl: no command given\n%s", usage_text);
        goto out;
    }
    if (extra) {
        fprintf(stderr, "vitalsctl: too many arguments (see --help)\n");
        goto out;
    }
    signal(SIGPIPE, SIG_IGN);
    struct sigaction sa = {.sa_handler = on_signal};
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    if (strcmp(cmd, "scores") == 0 && n_pos == 1) {
        rc = cmd_scores(&c);
    } else if (strcmp(cmd, "explain") == 0 && n_pos == 2) {
        rc = cmd_explain(&c, pos[1]);
    } else if (strcmp(cmd, "gate") == 0 && n_pos == 2) {
        char *end = NULL;
        double min = c.min ? strtod(c.min, &end) : NAN;
        if (!c.min || *end || !(min >= 0 && min <= 1)) {
            fprintf(stderr, "vitalsctl: gate: --min: expected a number in [0, 1]%s%s\n",
                    c.min ? ", got " : "", c.min ? c.min : "");
        } else if (c.for_ms <= 0) {
            fprintf(stderr, "vitalsctl: gate: --for: expected a duration like 10m\n");
        } else {
            rc = c.segment ? gate_segment(&c, pos[1], min) : gate_history(&c, pos[1], min);
        }
    } else if (strcmp(cmd, "check-config") == 0 && n_pos == 2) {
        rc = ctl_check_config(pos[1], stdout, stderr);
    } else if (!strcmp(cmd, "scores") || !strcmp(cmd, "explain") || !strcmp(cmd, "gate") ||
               !strcmp(cmd, "check-config")) {
        fprintf(stderr, "vitalsctl: %s: wrong number of arguments\n%s", cmd, usage_text);
    } else {
        fprintf(stderr, "vitalsctl: unknown command '%s'\n%s", cmd, usage_text);
    }
    curl_global_cleanup();
out:
    vt_config_free(knobs, N_KNOBS, &c);
    return rc;
}
