#!/usr/bin/env python3
"""test_accuracy.py - issue 4's check: records sent through the real agent
(stream socket, with sync) reach the real scorer, and what /v1/scores says
agrees with an independent computation in Python of the same statistics from
the raw records, for the whole and for every provider segment.

Tolerances: quantiles within 1 % relative of the exact order statistic at
rank q*(n-1) (the DDSketch rank convention; the sketch promises 0.54 %);
counts exact; rate = count / score-window seconds (scorer/score.c divides by
the score's window, not by the time covered); means, sums, min, max, error,
invalid and missing rates exact to float rounding; frac_above / frac_below
between the exact shares at the bound's neighbouring bucket edges (docs/
scores.md: off by at most the share in bound's bucket). The normalised values
and the weighted-mean score are recomputed from the reported raw values.
Also: `promtool check metrics` accepts both daemons' /metrics.
"""
import json
import math
import os
import random
import shutil
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
from harness import Cluster, Runner, http_get, ndjson, sync, wait_for  # noqa: E402

SEED = 20251128
N = 3000
N_INVALID = 40
WINDOW_S = 3600  # score window: every record of the test is inside it
REL_Q = 0.01
ROUND = 1e-9

PROVIDERS = [("openai", "gpt-4o", 0.50, 600, 0.5, 0.03),
             ("anthropic", "claude-sonnet", 0.30, 900, 0.6, 0.08),
             ("self-hosted", "llama-3-70b", 0.15, 300, 0.8, 0.05),
             (None, None, 0.05, 450, 0.4, 0.10)]  # no provider, no model: the "" segment


def make_records(rng):
    out = []
    for i in range(N):
        u, acc = rng.random(), 0.0
        for prov, model, share, med, sigma, err in PROVIDERS:
            acc += share
            if u < acc:
                break
        r = {"service": "acc", "latency_ms": rng.lognormvariate(math.log(med), sigma),
             "status": "error" if rng.random() < err else "ok",
             "input_tokens": rng.randint(50, 4000), "output_tokens": rng.randint(5, 800),
             "cost_usd": round(rng.uniform(0.0001, 0.02), 6),
             "metrics": {"relevance": round(rng.uniform(0.3, 1.0), 3)},
             "labels": {"region": rng.choice(["eu", "us", "ap"])},
             "request_id": f"acc-{i}"}
        if prov:
            r["provider"], r["model"] = prov, model
        if rng.random() < 0.8:
            r["ttft_ms"] = r["latency_ms"] * rng.uniform(0.05, 0.4)
        if r["status"] == "error":
            r["error_type"] = rng.choice(["timeout", "rate_limit"])
        if rng.random() < 0.1:
            del r["cost_usd"]
        out.append(r)
    return out


BOUND_ABOVE, BOUND_BELOW = 1000.0, 500.0
COMPONENTS = [
    {"name": "n", "stat": "count", "good": 10000, "bad": 0},
    {"name": "n_ttft", "stat": "count", "metric": "ttft_ms", "good": 10000, "bad": 0},
    {"name": "rps", "stat": "rate", "good": 1, "bad": 0},
    {"name": "errors", "stat": "error_rate", "good": 0, "bad": 0.2},
    {"name": "lat_mean", "stat": "mean", "metric": "latency_ms", "good": 500, "bad": 3000},
    {"name": "cost_sum", "stat": "sum", "metric": "cost_usd", "good": 0, "bad": 50},
    {"name": "lat_min", "stat": "min", "metric": "latency_ms", "good": 10, "bad": 1000},
    {"name": "lat_max", "stat": "max", "metric": "latency_ms", "good": 2000, "bad": 20000},
    {"name": "lat_p50", "stat": "p50", "metric": "latency_ms", "good": 400, "bad": 2000},
    {"name": "lat_p95", "stat": "p95", "metric": "latency_ms", "good": 1000, "bad": 5000},
    {"name": "lat_p99", "stat": "p99", "metric": "latency_ms", "good": 1500, "bad": 8000},
    {"name": "ttft_p90", "stat": "p90", "metric": "ttft_ms", "good": 100, "bad": 600},
    {"name": "out_p50", "stat": "p50", "metric": "output_tokens", "good": 100, "bad": 1000},
    {"name": "slow", "stat": "frac_above", "metric": "latency_ms", "bound": BOUND_ABOVE,
     "good": 0, "bad": 0.5},
    {"name": "fast", "stat": "frac_below", "metric": "latency_ms", "bound": BOUND_BELOW,
     "good": 1, "bad": 0},
    {"name": "relevance", "stat": "mean", "metric": "relevance", "good": 0.9, "bad": 0.5},
    {"name": "invalid", "stat": "invalid_rate", "good": 0, "bad": 0.1},
    {"name": "no_ttft", "stat": "missing_rate", "field": "ttft_ms", "good": 0, "bad": 0.5},
    {"name": "no_cost", "stat": "missing_rate", "field": "cost_usd", "good": 0, "bad": 0.5},
    {"name": "no_prov", "stat": "missing_rate", "field": "provider", "good": 0, "bad": 0.5},
]
for k, c in enumerate(COMPONENTS):
    c["weight"] = 1 + k % 3
SCORES = {"version": 1, "scores": [
    {"name": "acc", "selector": {"service": "acc"}, "segment_by": ["provider"],
     "window": f"{WINDOW_S}s", "min_count": 5, "for": "0s", "components": COMPONENTS}]}


# ---- the independent computation --------------------------------------------------

def exact_quantile(values, q):
    """DDSketch's rank convention: the element at rank floor(q*(n-1)) of the sorted values."""
    s = sorted(values)
    return s[int(math.floor(q * (len(s) - 1)))]


def expected(recs, n_invalid):
    """{component name: (kind, expected)}; kind tells how to compare."""
    n = len(recs)

    def vals(m):
        if m in ("latency_ms", "ttft_ms", "output_tokens", "cost_usd"):
            return [r[m] for r in recs if m in r]
        return [r["metrics"][m] for r in recs if m in r.get("metrics", {})]

    out = {}
    for c in COMPONENTS:
        st, m = c["stat"], c.get("metric")
        v = vals(m) if m else None
        if st == "count":
            out[c["name"]] = ("exact", len(v) if m else n)
        elif st == "rate":
            out[c["name"]] = ("float", n / WINDOW_S)
        elif st == "error_rate":
            out[c["name"]] = ("float", sum(r["status"] == "error" for r in recs) / n)
        elif st == "mean":
            out[c["name"]] = ("float", math.fsum(v) / len(v))
        elif st == "sum":
            out[c["name"]] = ("float", math.fsum(v))
        elif st == "min":
            out[c["name"]] = ("float", min(v))
        elif st == "max":
            out[c["name"]] = ("float", max(v))
        elif st.startswith("p"):
            out[c["name"]] = ("quantile", exact_quantile(v, float(st[1:]) / 100))
        elif st in ("frac_above", "frac_below"):
            b = c["bound"]
            # the bound's bucket at scale 6 spans a factor 2^(1/64) = 1.0109
            lo = sum(x <= b / 1.011 for x in v) / len(v)
            hi = sum(x <= b * 1.011 for x in v) / len(v)
            if st == "frac_above":
                lo, hi = 1 - hi, 1 - lo
            out[c["name"]] = ("between", (lo, hi))
        elif st == "invalid_rate":
            out[c["name"]] = ("float", n_invalid / (n + n_invalid))
        elif st == "missing_rate":
            f = c["field"]
            out[c["name"]] = ("float", sum(f not in r for r in recs) / n)
        else:
            raise AssertionError(st)
    return out


def normalize(v, good, bad):
    x = (v - bad) / (good - bad)
    return min(1.0, max(0.0, x))


def check_result(where, res, recs, n_invalid, errors):
    """Compare one score object (whole or segment) with the raw records."""
    exp = expected(recs, n_invalid)
    if res["count"] != len(recs):
        errors.append(f"{where}: count {res['count']} != {len(recs)}")
    comps = {c["name"]: c for c in res["components"]}
    defs = {c["name"]: c for c in COMPONENTS}
    num = den = 0.0
    for name, (kind, want) in exp.items():
        got = comps[name]["value"]
        if got is None:
            errors.append(f"{where}.{name}: null, expected {want}")
            continue
        if kind == "exact":
            ok = got == want
        elif kind == "float":
            ok = abs(got - want) <= ROUND * max(1.0, abs(want))
        elif kind == "quantile":
            ok = abs(got - want) <= REL_Q * abs(want)
        else:
            ok = want[0] - ROUND <= got <= want[1] + ROUND
        if not ok:
            errors.append(f"{where}.{name} ({defs[name]['stat']}): got {got!r}, expected {want!r}")
        c = comps[name]
        if not c["missing"]:
            nz = normalize(got, defs[name]["good"], defs[name]["bad"])
            if abs(c["normalized"] - nz) > 1e-9:
                errors.append(f"{where}.{name}: normalized {c['normalized']} != {nz}")
            num += defs[name]["weight"] * nz
            den += defs[name]["weight"]
    if den and abs(res["score"] - num / den) > 1e-9:
        errors.append(f"{where}: score {res['score']} != weighted mean {num / den}")
    return errors


def promtool(port, who):
    _, body = http_get(f"http://127.0.0.1:{port}/metrics")
    r = subprocess.run(["promtool", "check", "metrics"], input=body.encode(),
                       capture_output=True, timeout=30)
    out = (r.stdout + r.stderr).decode(errors="replace").strip()
    print(f"  promtool check metrics ({who}, {len(body.splitlines())} lines): "
          f"exit {r.returncode}{' ' + out if out else ''}")
    assert r.returncode == 0, f"promtool rejects the {who}'s /metrics: {out}"


def test_accuracy():
    rng = random.Random(SEED)
    recs = make_records(rng)
    bad = [b'{"service": "acc", "latency_ms": "slow %d"}' % i for i in range(N_INVALID)]
    c = Cluster(agent_args=["--window", "1s", "--flush-interval", "50ms", "--backoff-max", "1s"],
                scores=SCORES)
    try:
        c.start_scorer()
        c.start_agent()
        s = c.stream()
        # invalid lines interleaved with the good ones, in chunks closed by a sync
        for k in range(0, N, 500):
            body = ndjson(recs[k:k + 500])
            s.sendall(body + b"\n".join(bad[k // 500 * 5: k // 500 * 5 + 5]) + b"\n")
            assert sync(s, k), "sync unanswered"
        rest = bad[(N // 500) * 5:]
        if rest:
            s.sendall(b"\n".join(rest) + b"\n")
        assert sync(s, N)
        s.close()
        m = c.agent_metrics()
        assert m["vitals_agent_records_accepted_total"] == N, m["vitals_agent_records_accepted_total"]
        assert m['vitals_agent_records_rejected_total{reason="bad_type"}'] == N_INVALID
        wait_for(f"scorer to hold {N} records", lambda: c.scorer_records() == N, timeout=60,
                 interval=0.25)
        t_all = time.time() * 1000

        def evaluated():
            _, body = http_get(f"http://127.0.0.1:{c.http}/v1/scores/acc")
            r = json.loads(body)
            return r if r.get("evaluated_at", 0) > t_all + 100 and r.get("count") == N else None
        res = wait_for("an evaluation covering every record", evaluated, timeout=30)
        # the invalid records may ship in a later window than the last good one
        res = wait_for("invalid records in the score",
                       lambda: (lambda r: r if r["count"] == N and next(
                           x for x in r["components"] if x["name"] == "invalid")["value"] ==
                           N_INVALID / (N + N_INVALID) else None)(
                           json.loads(http_get(f"http://127.0.0.1:{c.http}/v1/scores/acc")[1])),
                       timeout=20)
        errors = []
        check_result("whole", res, recs, N_INVALID, errors)
        segs = {tuple(sorted(sg["labels"].items())): sg for sg in res["segments"]}
        want = {}
        for r in recs:
            want.setdefault((("provider", r.get("provider", "")),), []).append(r)
        assert set(segs) == set(want), f"segments {sorted(segs)} != {sorted(want)}"
        for key, rs in sorted(want.items()):
            inv = N_INVALID if key == (("provider", ""),) else 0  # rejects carry only a service
            check_result(f"provider={key[0][1]!r}", segs[key], rs, inv, errors)
        q = {x["name"]: x["value"] for x in res["components"]}
        print(f"  whole: count={res['count']} rate={q['rps']:.6f}/s p50={q['lat_p50']:.2f} "
              f"p95={q['lat_p95']:.2f} p99={q['lat_p99']:.2f} mean={q['lat_mean']:.3f} "
              f"score={res['score']:.6f}; {len(segs)} segments, "
              f"{len(COMPONENTS) * (1 + len(segs))} statistics compared")
        worst = 0.0
        for key, rs in list(want.items()) + [(None, recs)]:
            sg = segs[key] if key else res
            for comp in COMPONENTS:
                if comp["stat"][0] == "p" and comp["stat"][1].isdigit():
                    v = [r[comp["metric"]] for r in rs if comp["metric"] in r]
                    e = exact_quantile(v, float(comp["stat"][1:]) / 100)
                    g = next(x for x in sg["components"] if x["name"] == comp["name"])["value"]
                    worst = max(worst, abs(g - e) / e)
        print(f"  worst quantile relative error: {worst * 100:.3f} % (limit {REL_Q * 100:.0f} %)")
        assert not errors, "\n".join(errors)
        # the API's other views agree with the score's count
        _, body = http_get(f"http://127.0.0.1:{c.http}/v1/scores")
        lst = json.loads(body)
        lst = lst.get("scores", lst) if isinstance(lst, dict) else lst
        whole = next(x for x in lst if x["name"] == "acc")
        assert whole["count"] == N and abs(whole["score"] - res["score"]) < 1e-9, whole
        if shutil.which("promtool"):
            promtool(c.http, "scorer")
            promtool(c.admin, "agent")
        else:
            raise AssertionError("promtool not installed (Debian package prometheus)")
    except Exception:
        print(c.logs())
        raise
    finally:
        c.stop()


if __name__ == "__main__":
    r = Runner()
    r.run(test_accuracy)
    r.finish()
