#!/usr/bin/env python3
"""bench_e2e.py - end-to-end freshness: from a record's send (stream socket)
to its effect in the scorer's API, with real daemons at default settings:
agent --window 10s and --flush-interval 200ms, scorer --eval-interval 5s (the
defaults; the test harness's 1 s eval interval is overridden back to 5 s).

Method: 30 marker records, each in its own series (label m=<i>), sent at
random moments ~1 s apart (so they fall at every phase of the agent's
window); a poller reads /v1/scores/fresh (a score segmented by m) and
/v1/series every 50 ms and notes when each marker first shows up.
  freshness_p50_s / freshness_p99_s: send -> segment present in /v1/scores
  series_freshness_p50_s / _p99_s:    send -> series present in /v1/series
Target (issue 5): p99 <= window + flush interval + 1 s = 11.2 s.

Output: bench/bench.h's format (a table row, or one JSON object per line
with --json). Run it with `bench/run [--json] e2e` (Release build).
"""
import json
import os
import random
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests",
                                "integration"))
from harness import Cluster, http_get, sync, wait_for  # noqa: E402

SAMPLES = 30
WINDOW_S, FLUSH_S, EVAL_S = 10.0, 0.2, 5.0
TARGET = WINDOW_S + FLUSH_S + 1.0
JSON = "--json" in sys.argv[1:]
SCORES = {"version": 1, "scores": [
    {"name": "fresh", "selector": {"service": "fresh"}, "segment_by": ["m"], "window": "5m",
     "min_count": 1, "components": [{"name": "n", "stat": "count", "weight": 1,
                                     "good": 1, "bad": 0}]}]}


def report(metric, value, unit, target=None):
    if JSON:
        print(json.dumps({"bench": "e2e", "metric": metric, "value": round(value, 6),
                          "unit": unit}), flush=True)
    else:
        print(f"{'e2e':<10} {metric:<34} {value:16.6g}  {unit}"
              f"{'  target ' + target if target else ''}", flush=True)


def quantile(xs, q):
    s = sorted(xs)
    pos = q * (len(s) - 1)
    lo = int(pos)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (pos - lo)


class Poller(threading.Thread):
    def __init__(self, c):
        super().__init__(daemon=True)
        self.c = c
        self.in_scores, self.in_series = {}, {}
        self.stop_ev = threading.Event()

    def run(self):
        base = f"http://127.0.0.1:{self.c.http}"
        while not self.stop_ev.is_set():
            try:
                _, body = http_get(f"{base}/v1/scores/fresh")
                now = time.time()
                for sg in json.loads(body).get("segments", []):
                    self.in_scores.setdefault(sg["labels"].get("m"), now)
                _, body = http_get(f"{base}/v1/series")
                now = time.time()
                for se in json.loads(body)["series"]:
                    self.in_series.setdefault(se["labels"].get("m"), now)
            except (OSError, ValueError):
                pass
            time.sleep(0.05)


def main():
    if not JSON:
        print(f"{'bench':<10} {'metric':<34} {'value':>16}  unit", flush=True)
    c = Cluster(agent_args=["--window", f"{WINDOW_S:g}s", "--flush-interval", "200ms"],
                scorer_args=["--eval-interval", f"{EVAL_S:g}s"], scores=SCORES)
    poller = Poller(c)
    try:
        c.start_scorer()
        c.start_agent()
        poller.start()
        s = c.stream()
        # warm-up: the first batch opens the HTTP/2 connection
        s.sendall(b'{"service": "fresh", "labels": {"m": "warmup"}}\n')
        assert sync(s, 0)
        wait_for("the warm-up record in /v1/scores", lambda: "warmup" in poller.in_scores,
                 timeout=3 * (WINDOW_S + EVAL_S))
        rng = random.Random(5)
        sent_at = {}
        for i in range(SAMPLES):
            time.sleep(rng.uniform(0.5, 1.5))
            m = str(i)
            t = time.time()
            s.sendall(b'{"service": "fresh", "latency_ms": 1, "labels": {"m": "%s"}}\n'
                      % m.encode())
            sent_at[m] = t
            assert sync(s, i + 1)
        wait_for("every marker in /v1/scores",
                 lambda: all(m in poller.in_scores for m in sent_at),
                 timeout=3 * (WINDOW_S + EVAL_S))
        poller.stop_ev.set()
        poller.join(5)
        s.close()
        fs = [poller.in_scores[m] - t for m, t in sent_at.items()]
        fr = [poller.in_series[m] - t for m, t in sent_at.items()]
        report("freshness_p50_s", quantile(fs, 0.5), "s")
        report("freshness_p99_s", quantile(fs, 0.99), "s", f"<= {TARGET:g}")
        report("series_freshness_p50_s", quantile(fr, 0.5), "s")
        report("series_freshness_p99_s", quantile(fr, 0.99), "s", f"<= {TARGET:g}")
        report("freshness_samples", len(fs), "records")
    except Exception:
        print(c.logs(), file=sys.stderr)
        raise
    finally:
        poller.stop_ev.set()
        c.stop()


if __name__ == "__main__":
    main()
