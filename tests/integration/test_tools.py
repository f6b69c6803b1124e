"""test_tools.py - vitals-loadgen, vitalsctl and scripts/demo-run against the
real daemons: loadgen's per-series counts equal what the agent accepted and
what the scorer holds, schema violations become rejected records, vitalsctl's
tables and JSON match the API, gate exit codes 0/1/2, check-config on good
and bad files, and the demo in non-interactive mode ends with a table naming
every service and leaves no process behind."""
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(__file__))
from harness import BIN, Cluster, Runner, free_port, http_get, wait_for  # noqa: E402

SRC = os.environ.get("VITALS_SRC") or os.path.join(os.path.dirname(__file__), "../..")
LOADGEN = os.path.join(BIN, "vitals-loadgen")
CTL = os.path.join(BIN, "vitalsctl")
SCORES = os.path.join(SRC, "examples/scores.json")
FAST = ["--window", "1s", "--flush-interval", "50ms", "--backoff-max", "1s"]
SCORE_NAMES = ["support_bot_health", "legal_rag_health", "marketing_copy_health",
               "doc_extract_health"]


def run(argv, timeout=120, **kw):
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, **kw)


def loadgen(cluster, *args, timeout=120):
    out = run([LOADGEN, "--socket-dir", cluster.sock_dir, "--json", *args], timeout=timeout)
    assert out.returncode == 0, (out.returncode, out.stderr, out.stdout[-2000:])
    return json.loads(out.stdout)


def series_key(s):
    return (s["service"], s.get("model"), s.get("provider"), s.get("version"),
            tuple(sorted(s["labels"].items())))


def cluster_with_scores(scorer_args=()):
    with open(SCORES) as f:
        scores = json.load(f)
    c = Cluster(agent_args=FAST, scorer_args=list(scorer_args), scores=scores)
    c.start_scorer()
    c.start_agent()
    return c


# ---------------------------------------------------------------- loadgen

def test_help_version_usage():
    for prog, flags in ((LOADGEN, ["--rate", "--duration", "--count", "--scenario",
                                   "--scenario-file", "--mode", "--seed", "--socket-dir",
                                   "--json", "VITALS_RATE"]),
                        (CTL, ["--scorer-url", "--watch", "--interval", "--segment", "--min",
                               "--for", "check-config", "gate", "explain", "Exit codes"])):
        out = run([prog, "--help"])
        assert out.returncode == 0, out.stderr
        for f in flags:
            assert f in out.stdout, (prog, f)
        out = run([prog, "--version"])
        assert out.returncode == 0 and "0." in out.stdout, out
        out = run([prog, "--no-such-flag"])
        assert out.returncode == 2 and "--no-such-flag" in out.stderr, out
    out = run([LOADGEN, "--rate", "fast"])
    assert out.returncode == 2 and "--rate" in out.stderr, out.stderr
    for bad in ["nosuch", "latency_spike:provider=nobody", "latency_spike:start=soon",
                "error_burst:rate=2", "latency_spike:color=red"]:
        out = run([LOADGEN, "--mode", "stdout", "--count", "1", "--scenario", bad])
        assert out.returncode == 2 and "scenario" in out.stderr, (bad, out.stderr)
    out = run([CTL, "frobnicate"])
    assert out.returncode == 2 and "unknown command" in out.stderr, out
    out = run([CTL, "gate", "x", "--min", "2", "--for", "1m"])
    assert out.returncode == 2 and "--min" in out.stderr, out
    out = run([CTL, "explain", "x", "--segment", "provider"])
    assert out.returncode == 2 and "--segment" in out.stderr, out


def test_loadgen_deterministic_and_paced():
    args = [LOADGEN, "--mode", "stdout", "--rate", "0", "--count", "3000", "--ts-start",
            "1764288000000", "--quiet",
            "--scenario", "schema_violations:rate=0.1:start=0s",
            "--scenario", "latency_spike:provider=anthropic:factor=4"]
    a = run([*args, "--seed", "5"])
    b = run([*args, "--seed", "5"])
    c = run([*args, "--seed", "6"])
    assert a.returncode == 0 and a.stdout == b.stdout and a.stdout != c.stdout
    lines = a.stdout.splitlines()
    assert len(lines) == 3000
    parsed = 0
    services, providers = set(), set()
    for line in lines:
        try:
            r = json.loads(line)
        except ValueError:
            continue
        parsed += 1
        services.add(r["service"])
        providers.add(r["provider"])
    assert services == {"support-bot", "legal-rag", "marketing-copy", "doc-extract"}, services
    assert providers == {"openai", "anthropic", "self-hosted"}, providers
    # the summary (stderr in stdout mode) counts the invalid ones
    assert "deliberately invalid" in a.stderr, a.stderr
    # --rate paces: 600 records at 300/s take ~2 s
    t = time.time()
    out = run([LOADGEN, "--mode", "stdout", "--rate", "300", "--count", "600", "--quiet"])
    took = time.time() - t
    assert out.returncode == 0 and len(out.stdout.splitlines()) == 600
    assert 1.8 < took < 4.0, took
    # --duration at a rate is exact in records
    out = run([LOADGEN, "--mode", "stdout", "--rate", "1000", "--duration", "1500ms", "--quiet"])
    assert len(out.stdout.splitlines()) == 1500, len(out.stdout.splitlines())


def test_loadgen_counts_match_agent_and_scorer():
    c = Cluster(agent_args=FAST)
    try:
        c.start_scorer()
        c.start_agent()
        s = loadgen(c, "--rate", "0", "--count", "20000", "--seed", "3",
                    "--scenario", "schema_violations:rate=0.05:service=legal-rag",
                    "--sync-every", "5000")
        assert s["sent"] == 20000 and s["synced"] is True and s["syncs"] == 5, s
        assert s["invalid"] > 100 and s["records"] + s["invalid"] == 20000, s
        assert sum(x["records"] for x in s["series"]) == s["records"]
        # legal-rag only: every invalid record belongs to it
        assert all(x["invalid"] == 0 for x in s["series"] if x["service"] != "legal-rag")
        m = c.agent_metrics()
        assert m["vitals_agent_records_accepted_total"] == s["records"], m
        rejected = sum(v for k, v in m.items() if k.startswith("vitals_agent_records_rejected_total"))
        assert rejected == s["invalid"], (rejected, s["invalid"])
        wait_for("the scorer to hold every record",
                 lambda: c.scorer_records() == s["records"], timeout=60)
        _, body = http_get(f"http://127.0.0.1:{c.http}/v1/series")
        held = {series_key(x): x["records"] for x in json.loads(body)["series"]}
        sent = {series_key(x): x["records"] for x in s["series"] if x["records"]}
        assert held == sent, (len(held), len(sent))
        assert len(sent) > 50, len(sent)  # 4 services x models x regions x tiers
    except Exception:
        print(c.logs())
        raise
    finally:
        c.stop()


def test_loadgen_dgram_and_failures():
    c = Cluster(agent_args=FAST)
    try:
        c.start_scorer()
        c.start_agent()
        s = loadgen(c, "--mode", "dgram", "--rate", "0", "--count", "3000", "--seed", "9")
        assert s["sent"] == 3000 and s["synced"] is None, s
        wait_for("the agent to accept every datagram",
                 lambda: c.agent_metrics()["vitals_agent_records_accepted_total"] == 3000,
                 timeout=30)
    finally:
        c.stop()
    # no agent at all: exit 1, says why
    d = tempfile.mkdtemp(prefix="vitals-lg-")
    out = run([LOADGEN, "--socket-dir", d, "--count", "10"])
    assert out.returncode == 1 and "cannot connect" in out.stderr, out
    # an "agent" that takes the records but never answers the sync: exit 1
    path = os.path.join(d, "ingest.sock")
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(path)
    srv.listen(1)
    got = []

    def sink():
        conn, _ = srv.accept()
        while True:
            b = conn.recv(65536)
            if not b:
                break
            got.append(b)
        conn.close()
    th = threading.Thread(target=sink, daemon=True)
    th.start()
    out = run([LOADGEN, "--socket-dir", d, "--count", "50", "--rate", "0",
               "--sync-timeout", "1s"], timeout=30)
    srv.close()
    assert out.returncode == 1 and "no answer" in out.stderr, out
    assert "NOT answered" in out.stdout, out.stdout
    data = b"".join(got)
    assert data.count(b"\n") == 51 and data.endswith(b'{"sync": 50}\n'), data[-100:]
    shutil.rmtree(d, ignore_errors=True)


# --------------------------------------------------------------- vitalsctl

def test_check_config():
    out = run([CTL, "check-config", SCORES])
    assert out.returncode == 0 and "ok: 4 scores" in out.stdout, out
    for n in SCORE_NAMES:
        assert n in out.stdout
    ref = run([os.path.join(BIN, "vitals-scorer"), "--check-config", SCORES])
    version = ref.stdout.split("version ")[1].strip()
    assert f"version {version}" in out.stdout, (out.stdout, ref.stdout)
    d = tempfile.mkdtemp(prefix="vitals-cc-")
    bad = os.path.join(d, "bad.json")
    with open(bad, "w") as f:
        json.dump({"version": 1, "scores": [{
            "name": "x", "selector": {"service": "s"}, "window": "5m",
            "components": [{"name": "lat", "stat": "p95", "metric": "latency_ms",
                            "good": 5, "bad": 5},
                           {"name": "q", "stat": "mean", "weight": 1, "good": 1, "bad": 0}]}]}, f)
    out = run([CTL, "check-config", bad])
    assert out.returncode == 1, out
    err = out.stderr
    assert "invalid score file" in err and "scores[0].components[0].weight: required" in err, err
    assert "good must differ from bad" in err and "needs a metric" in err, err
    out = run([CTL, "check-config", os.path.join(d, "missing.json")])
    assert out.returncode == 2 and "missing.json" in out.stderr, out
    shutil.rmtree(d, ignore_errors=True)


def scores_with_data(c):
    _, body = http_get(f"http://127.0.0.1:{c.http}/v1/scores")
    j = json.loads(body)
    return j if all(s["score"] is not None for s in j["scores"]) else None


def test_vitalsctl_against_api():
    c = cluster_with_scores(["--eval-interval", "2s"])
    url = f"http://127.0.0.1:{c.http}"
    stop = threading.Event()
    try:
        # healthy traffic for a while, in the background
        lg = subprocess.Popen([LOADGEN, "--socket-dir", c.sock_dir, "--rate", "400",
                               "--duration", "60s", "--seed", "11", "--quiet"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for("every score to have data", lambda: scores_with_data(c), timeout=40)
        # scores --json is the API's answer; the table shows the same numbers
        for _ in range(10):
            _, b1 = http_get(f"{url}/v1/scores")
            js = run([CTL, "--scorer-url", url, "scores", "--json"])
            table = run([CTL, "--scorer-url", url, "scores"])
            _, b2 = http_get(f"{url}/v1/scores")
            if b1 == b2:
                break
        assert js.returncode == 0 and table.returncode == 0, (js.stderr, table.stderr)
        api = json.loads(b2)
        assert json.loads(js.stdout) == api
        lines = table.stdout.splitlines()
        for s in api["scores"]:
            at = next(i for i, ln in enumerate(lines) if ln.startswith(s["name"] + " "))
            row = lines[at]
            assert f"{s['score']:.3f}" in row and s["state"] in row and str(s["count"]) in row, row
            block = lines[at + 1:at + 1 + len(s["segments"])]
            for seg in s["segments"]:
                txt = ",".join(f"{k}={seg['labels'][k]}" for k in s["segment_by"])
                row = next(ln for ln in block if txt in ln)
                # a segment below min_count has no score yet (null): the table shows "-"
                want = "-" if seg["score"] is None else f"{seg['score']:.3f}"
                assert want in row and str(seg["count"]) in row, (row, seg)
        # explain: every component with its numbers
        for _ in range(10):
            _, b1 = http_get(f"{url}/v1/scores/support_bot_health")
            ex = run([CTL, "--scorer-url", url, "explain", "support_bot_health"])
            exj = run([CTL, "--scorer-url", url, "explain", "support_bot_health", "--json"])
            _, b2 = http_get(f"{url}/v1/scores/support_bot_health")
            if b1 == b2:
                break
        assert ex.returncode == 0 and exj.returncode == 0, ex.stderr
        one = json.loads(b2)
        assert json.loads(exj.stdout) == one
        for comp in one["components"]:
            row = next(ln for ln in ex.stdout.splitlines() if ln.strip().startswith(comp["name"] + " "))
            if comp["missing"]:
                assert "missing" in row, row
            else:
                assert f"{comp['normalized']:.3f}" in row and f"{comp['weight']:.3f}" in row, row
        assert "masked segments" in ex.stdout
        seg = run([CTL, "--scorer-url", url, "explain", "support_bot_health",
                   "--segment", "provider=openai,model=gpt-4o", "--json"])
        assert seg.returncode == 0, seg.stderr
        sj = json.loads(seg.stdout)
        assert sj["labels"] == {"provider": "openai", "model": "gpt-4o"}, sj
        seg = run([CTL, "--scorer-url", url, "explain", "support_bot_health", "--segment",
                   "provider=anthropic"])
        assert seg.returncode == 0 and "segment provider=anthropic,model=claude-3-5-sonnet" in seg.stdout
        out = run([CTL, "--scorer-url", url, "explain", "support_bot_health", "--segment",
                   "provider=nobody"])
        assert out.returncode == 1 and "no segment" in out.stderr, out
        out = run([CTL, "--scorer-url", url, "explain", "no_such_score"])
        assert out.returncode == 1 and "no such score" in out.stderr, out
        # --watch redraws (not a tty: one table after another)
        w = run([CTL, "--scorer-url", url, "scores", "--watch", "--interval", "200ms",
                 "--watch-count", "3"])
        assert w.returncode == 0 and w.stdout.count(" SEGMENT ") == 3, w.stdout
        # gate: passes on healthy history ...
        def history_span_ms():
            pts = [p for p in json.loads(http_get(
                f"{url}/v1/scores/support_bot_health/history")[1])["points"]
                   if p["score"] is not None]
            return pts[-1]["ts"] - pts[0]["ts"] if len(pts) >= 2 else 0
        # evaluations come on the interval and also just after new data: wait
        # for the time the history covers, not for a number of points
        wait_for("6 s of history with data", lambda: history_span_ms() >= 6000, timeout=30)
        g = run([CTL, "--scorer-url", url, "gate", "support_bot_health", "--min", "0.5",
                 "--for", "5s"])
        assert g.returncode == 0 and "PASS" in g.stdout, (g.stdout, g.stderr)
        # ... cannot tell when the history is shorter than asked or the score unknown
        g = run([CTL, "--scorer-url", url, "gate", "support_bot_health", "--min", "0.5",
                 "--for", "2h"])
        assert g.returncode == 2 and "covers only" in g.stdout, (g.stdout, g.stderr)
        g = run([CTL, "--scorer-url", url, "gate", "nope", "--min", "0.5", "--for", "5s"])
        assert g.returncode == 2, g
        # a segment is observed live
        g = run([CTL, "--scorer-url", url, "gate", "support_bot_health", "--min", "0.3",
                 "--for", "2s", "--interval", "500ms", "--segment", "provider=openai"])
        assert g.returncode == 0 and "PASS" in g.stdout, (g.stdout, g.stderr)
        # an error burst drives the score down: the gate fails and says when and how low
        out = run([LOADGEN, "--socket-dir", c.sock_dir, "--rate", "0", "--count", "30000",
                   "--seed", "12", "--quiet", "--scenario", "error_burst:rate=0.9",
                   "--scenario", "latency_spike:factor=20"], timeout=120)
        assert out.returncode == 0, out.stderr

        def failing():
            g = run([CTL, "--scorer-url", url, "gate", "support_bot_health", "--min", "0.9",
                     "--for", "10s"])
            return g if g.returncode == 1 else None
        g = wait_for("the gate to fail", failing, timeout=30, interval=1)
        assert "FAIL" in g.stdout and "lowest" in g.stdout and "below" in g.stdout, g.stdout
        g = run([CTL, "--scorer-url", url, "gate", "support_bot_health", "--min", "0.9",
                 "--for", "3s", "--interval", "500ms", "--segment", "provider=openai"])
        assert g.returncode == 1 and "FAIL" in g.stdout, (g.stdout, g.stderr)
        lg.kill()
        lg.wait()
    except Exception:
        print(c.logs())
        raise
    finally:
        stop.set()
        c.stop()
    # the scorer is gone: cannot tell
    g = run([CTL, "--scorer-url", url, "gate", "support_bot_health", "--min", "0.5", "--for",
             "5s", "--timeout", "2s"])
    assert g.returncode == 2 and "cannot reach" in g.stderr, (g.stdout, g.stderr)
    out = run([CTL, "--scorer-url", url, "scores"])
    assert out.returncode == 2 and "cannot reach" in out.stderr, out


# ---------------------------------------------------------------- demo-run

def test_demo_run_non_interactive():
    d = tempfile.mkdtemp(prefix="vitals-demo-")
    env = dict(os.environ, VITALS_BIN=BIN)
    p = subprocess.Popen([os.path.join(SRC, "scripts/demo-run"), "--no-watch", "--duration",
                          "40", "--dir", d, "--rate", "150"], env=env, cwd=SRC,
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                         start_new_session=True)
    pids = []
    try:
        pidfile = os.path.join(d, "pids")
        wait_for("the demo's three processes",
                 lambda: os.path.exists(pidfile) and len(open(pidfile).read().split()) == 3,
                 timeout=40)
        pids = [int(x) for x in open(pidfile).read().split()]
        out, _ = p.communicate(timeout=120)
    finally:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
    print(out[-6000:])
    assert p.returncode == 0, p.returncode
    final = out.split("=== final scores")[1]
    for n in SCORE_NAMES:
        assert n in final, n
    assert "provider=anthropic" in final and "INCIDENT: latency_spike" in final, final
    assert "stopped. Data is in" in out and "final sync answered" in out, out[-2000:]
    for pid in pids:  # every process it started is gone
        assert not os.path.exists(f"/proc/{pid}") or \
            open(f"/proc/{pid}/stat").read().split()[2] == "Z", pid
    assert os.path.isdir(os.path.join(d, "scorer")) and os.path.isdir(os.path.join(d, "spool"))
    shutil.rmtree(d, ignore_errors=True)


def test_demo_run_ctrl_c_on_a_terminal():
    """Interactive mode on a real pseudo-terminal: the table is redrawn in
    place, and Ctrl-C (a ^C through the terminal, not a signal to one pid)
    stops everything and says where the data is."""
    import fcntl
    import pty
    import select
    import termios
    d = tempfile.mkdtemp(prefix="vitals-demo-tty-")
    master, slave = pty.openpty()

    def pre():
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        os.setsid()
        fcntl.ioctl(0, termios.TIOCSCTTY, 0)
    p = subprocess.Popen([os.path.join(SRC, "scripts/demo-run"), "--dir", d], cwd=SRC,
                         stdin=slave, stdout=slave, stderr=slave, preexec_fn=pre,
                         env=dict(os.environ, VITALS_BIN=BIN))
    os.close(slave)
    buf = bytearray()

    def pump(secs, until=None):
        end = time.time() + secs
        while time.time() < end and not (until and until in buf):
            r, _, _ = select.select([master], [], [], 0.2)
            if r:
                try:
                    buf.extend(os.read(master, 65536))
                except OSError:
                    return
    pids = []
    try:
        pump(60, b"model=claude-3-5-sonnet")  # segments are listed once they have data
        assert b"doc_extract_health" in buf and b"model=claude-3-5-sonnet" in buf, buf[-2000:]
        assert b"\033[H\033[2J" in buf  # redrawn in place
        pids = [int(x) for x in open(os.path.join(d, "pids")).read().split()]
        assert len(pids) == 3
        os.write(master, b"\x03")
        pump(30, b"stopped. Data is in")
        p.wait(timeout=10)
    finally:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        os.close(master)
    text = buf.decode(errors="replace")
    assert p.returncode == 0 and "stopped. Data is in " + d in text, text[-2000:]
    assert "final sync answered" in text, text[-2000:]
    for pid in pids:
        assert not os.path.exists(f"/proc/{pid}") or \
            open(f"/proc/{pid}/stat").read().split()[2] == "Z", pid
    shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    r = Runner()
    for t in (test_help_version_usage, test_loadgen_deterministic_and_paced,
              test_loadgen_counts_match_agent_and_scorer, test_loadgen_dgram_and_failures,
              test_check_config, test_vitalsctl_against_api, test_demo_run_non_interactive,
              test_demo_run_ctrl_c_on_a_terminal):
        r.run(t)
    r.finish()
