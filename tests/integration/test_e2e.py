#!/usr/bin/env python3
"""test_e2e.py - issue 5's behaviour tests against the real vitals-agent and
vitals-scorer, with live traffic over the agent's stream socket:

- healthy traffic: every score, and every segment, is `ok`;
- a latency spike on one provider carrying ~10 % of the traffic: that
  segment turns warning/critical within two score windows, latency is its
  biggest detractor, and the whole score stays ok and flags the segment
  `masked`; when the spike ends the segment returns to ok;
- the scorer down for 60 s: the agent spools (its metrics show the lag),
  catches up when the scorer is back, and every record is counted exactly
  once (per series and in total, from /v1/series).

Short windows keep it fast: agent --window 1s, scorer --eval-interval 1s,
score window 10s, `for` 0s, and a 1 s rollup tier on the scorer
(`--retention 1s:1h`): a query counts the buckets whose start lies in the
window, so with the default 10 s tier a 10 s score window would cover
anywhere between 0 and 10 s of data (no_data right after every boundary).
"""
import json
import math
import os
import random
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(__file__))
from harness import Cluster, Runner, http_get, ndjson, sync, wait_for  # noqa: E402

AGENT = ["--window", "1s", "--flush-interval", "50ms", "--backoff-max", "2s"]
SCORER = ["--retention", "1s:1h"]
SCORE_WINDOW_S = 10
SHARES = [("openai", "gpt-4o", 0.6), ("anthropic", "claude-sonnet", 0.3),
          ("self-hosted", "llama-3-70b", 0.1)]
BAD = "self-hosted"
SCORES = {"version": 1, "scores": [
    {"name": "chat_health", "selector": {"service": "chat"}, "segment_by": ["provider"],
     "window": f"{SCORE_WINDOW_S}s", "for": "0s", "min_count": 10,
     "components": [
         {"name": "latency", "metric": "latency_ms", "stat": "p50", "weight": 0.5,
          "good": 800, "bad": 3000},
         {"name": "errors", "stat": "error_rate", "weight": 0.3, "good": 0.02, "bad": 0.2},
         {"name": "relevance", "metric": "relevance", "stat": "mean", "weight": 0.2,
          "good": 0.8, "bad": 0.5}],
     "thresholds": {"warning": 0.8, "critical": 0.6}},
    {"name": "chat_cost", "selector": {"service": "chat"}, "window": f"{SCORE_WINDOW_S}s",
     "for": "0s", "min_count": 10,
     "components": [
         {"name": "cost", "metric": "cost_usd", "stat": "mean", "weight": 1,
          "good": 0.005, "bad": 0.02},
         {"name": "tokens", "metric": "output_tokens", "stat": "p95", "weight": 1,
          "good": 1000, "bad": 4000}]}]}


class Traffic(threading.Thread):
    """~200 records/s over one stream connection, a sync every 0.5 s. `spike`
    multiplies the bad provider's latency by 15."""

    def __init__(self, cluster, rate=200):
        super().__init__(daemon=True)
        self.c, self.rate = cluster, rate
        self.spike = False
        self.stop_ev = threading.Event()
        self.sent = self.synced = 0
        self.error = None
        self.rng = random.Random(7)

    def one(self, i):
        u, acc = self.rng.random(), 0.0
        for prov, model, share in SHARES:
            acc += share
            if u < acc:
                break
        lat = self.rng.lognormvariate(math.log(400), 0.3)
        if self.spike and prov == BAD:
            lat *= 15
        return {"service": "chat", "provider": prov, "model": model, "latency_ms": lat,
                "status": "error" if self.rng.random() < 0.005 else "ok",
                "output_tokens": self.rng.randint(50, 600), "cost_usd": 0.002,
                "metrics": {"relevance": self.rng.uniform(0.85, 1.0)},
                "request_id": f"e2e-{i}"}

    def run(self):
        try:
            s = self.c.stream()
            tick, i, n = 0.1, 0, 0
            per_tick = int(self.rate * tick)
            nxt = time.monotonic()
            while not self.stop_ev.is_set():
                s.sendall(ndjson(self.one(i + k) for k in range(per_tick)))
                i += per_tick
                self.sent = i
                n += 1
                if n % 5 == 0:
                    assert sync(s, n), "sync unanswered"
                    self.synced = i
                nxt += tick
                time.sleep(max(0.0, nxt - time.monotonic()))
            s.close()
        except Exception as e:  # noqa: BLE001 - reported by the main thread
            self.error = e

    def stop(self):
        self.stop_ev.set()
        self.join(10)


def scores(c):
    _, body = http_get(f"http://127.0.0.1:{c.http}/v1/scores")
    return {s["name"]: s for s in json.loads(body)["scores"]}


def segment(score, provider):
    for sg in score.get("segments", []):
        if sg["labels"].get("provider") == provider:
            return sg
    return None


def all_states(sc):
    out = {}
    for name, s in sc.items():
        out[name] = s["state"]
        for sg in s.get("segments", []):
            out[f"{name}{{{','.join(f'{k}={v}' for k, v in sg['labels'].items())}}}"] = sg["state"]
    return out


def test_healthy_spike_masked_recovery():
    c = Cluster(agent_args=AGENT, scorer_args=SCORER, scores=SCORES)
    t = Traffic(c)
    try:
        c.start_scorer()
        c.start_agent()
        t.start()
        # 1. healthy: every score and every segment ok (three providers present)
        def healthy():
            sc = scores(c)
            st = all_states(sc)
            return st if len(st) == 5 and all(v == "ok" for v in st.values()) else None
        st = wait_for("every score and segment ok", healthy, timeout=40, interval=0.5)
        for _ in range(4):  # and it stays so over several evaluations
            time.sleep(1)
            st = all_states(scores(c))
            assert len(st) == 5 and all(v == "ok" for v in st.values()), st
        sc = scores(c)
        print(f"  healthy: {st}; chat_health score {sc['chat_health']['score']:.3f} "
              f"count {sc['chat_health']['count']}")
        assert t.error is None, t.error

        # 2. spike on the bad provider
        t0 = time.time()
        t.spike = True
        first_bad = [None]

        def flagged():
            sc = scores(c)
            whole = sc["chat_health"]
            sg = segment(whole, BAD)
            if sg and sg["state"] in ("warning", "critical") and first_bad[0] is None:
                first_bad[0] = time.time() - t0
            if sg and sg["state"] in ("warning", "critical") and sg["masked"] \
                    and whole["state"] == "ok":
                return whole, sg
            return None
        whole, sg = wait_for("the spiked segment flagged and masked", flagged,
                             timeout=2 * SCORE_WINDOW_S, interval=0.25)
        t_flag = time.time() - t0
        print(f"  spike: {BAD} {sg['state']} after {first_bad[0]:.1f}s, masked after "
              f"{t_flag:.1f}s (limit {2 * SCORE_WINDOW_S}s); segment score {sg['score']:.3f} "
              f"share {sg.get('share', 0):.3f} detractor {sg['detractor']}; whole "
              f"{whole['state']} {whole['score']:.3f}")
        assert sg["detractor"] == "latency", sg
        lat = next(x for x in sg["components"] if x["name"] == "latency")
        # flagged as soon as the window holds enough of the spike: p50 already
        # far past "good" (800 ms), not necessarily at "bad" yet
        assert lat["value"] > 1600 and lat["normalized"] < 0.65, lat
        assert whole["score"] - sg["score"] >= 0.15, (whole["score"], sg["score"])
        for other in ("openai", "anthropic"):
            o = segment(whole, other)
            assert o["state"] == "ok" and not o["masked"], o
        assert whole["state"] == "ok" and whole["detractor"] != "errors", whole
        assert scores(c)["chat_cost"]["state"] == "ok"
        # it holds while the spike lasts
        time.sleep(3)
        sc = scores(c)
        sg = segment(sc["chat_health"], BAD)
        assert sg["state"] in ("warning", "critical") and sc["chat_health"]["state"] == "ok", sc

        # 3. recovery
        t1 = time.time()
        t.spike = False

        def recovered():
            st = all_states(scores(c))
            return st if len(st) == 5 and all(v == "ok" for v in st.values()) else None
        st = wait_for("recovery to ok", recovered, timeout=2 * SCORE_WINDOW_S + 5, interval=0.25)
        sg = segment(scores(c)["chat_health"], BAD)
        print(f"  recovery: every score ok again after {time.time() - t1:.1f}s; {BAD} "
              f"score {sg['score']:.3f} masked {sg['masked']}")
        assert not sg["masked"]
        t.stop()
        assert t.error is None, t.error
        assert t.sent > 0 and t.synced > 0
    except Exception:
        print(c.logs())
        raise
    finally:
        t.stop()
        c.stop()


def series_counts(c):
    _, body = http_get(f"http://127.0.0.1:{c.http}/v1/series")
    d = json.loads(body)
    return d["records"], {s["labels"].get("phase", ""): s["records"] for s in d["series"]}


def test_scorer_down_60s():
    c = Cluster(agent_args=["--window", "1s", "--flush-interval", "50ms", "--backoff-max", "5s"])
    rng = random.Random(11)

    def recs(phase, n, base):
        return ndjson({"service": "down", "provider": "openai", "latency_ms": rng.uniform(50, 900),
                       "labels": {"phase": phase}, "request_id": f"{phase}-{base + i}"}
                      for i in range(n))
    try:
        c.start_scorer()
        c.start_agent()
        s = c.stream()
        s.sendall(recs("before", 5000, 0))
        assert sync(s, 0)
        wait_for("5000 records shipped", lambda: c.scorer_records() == 5000, timeout=60,
                 interval=0.25)
        c.scorer.kill()
        t_down = time.time()
        sent = 0
        k = 0
        while time.time() - t_down < 60:  # one synced chunk of 500 every 2 s for 60 s
            s.sendall(recs("during", 500, sent))
            sent += 500
            k += 1
            assert sync(s, k), "sync unanswered while the scorer is down"
            time.sleep(2)
        m = c.agent_metrics()
        lag = m["vitals_agent_oldest_unshipped_age_seconds"]
        print(f"  scorer down {time.time() - t_down:.0f}s: agent accepted "
              f"{m['vitals_agent_records_accepted_total']:.0f}, spool "
              f"{m['vitals_agent_spool_bytes']:.0f} B, oldest unshipped {lag:.1f}s, "
              f"batches retried {m['vitals_agent_batches_retried_total']:.0f}")
        assert m["vitals_agent_records_accepted_total"] == 5000 + sent, m
        assert lag >= 50, f"the agent does not report the lag: {lag}"
        assert m["vitals_agent_spool_dropped_records_total"] == 0
        t_up = time.time()
        c.start_scorer()
        total = 5000 + sent
        wait_for(f"catch-up to {total} records", lambda: c.scorer_records() == total,
                 timeout=60, interval=0.25)
        caught = time.time() - t_up
        wait_for("the spool drained",
                 lambda: c.agent_metrics()["vitals_agent_oldest_unshipped_age_seconds"] == 0,
                 timeout=30)
        time.sleep(3)  # several more windows and retries: nothing may arrive twice
        got, per = series_counts(c)
        dup = c.scorer_metrics().get("vitals_scorer_batches_duplicate_total", 0)
        print(f"  caught up in {caught:.1f}s: scorer holds {got} (sent {total}; before="
              f"{per.get('before')} during={per.get('during')}), duplicates refused {dup:.0f}")
        assert got == total and per == {"before": 5000, "during": sent}, (got, per)
    except Exception:
        print(c.logs())
        raise
    finally:
        c.stop()


if __name__ == "__main__":
    r = Runner()
    r.run(test_healthy_spike_masked_recovery)
    r.run(test_scorer_down_60s)
    r.finish()
