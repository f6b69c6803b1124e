#!/usr/bin/env python3
"""Regenerate the golden test data of tests/unit/test_score.c.

Writes golden_records.ndjson (a fixed, seeded record set) and
golden_expected.tsv: the score table for golden_scores.json computed here,
independently of the C code, from the raw records: exact counts, sums, means,
rates; quantiles as the sorted value at floor(q*(n-1)) with the sketch's
relative error (0.54%) as tolerance; scores with the tolerance that the
quantile tolerances imply (bracketed by evaluating at both ends).
Run from this directory: python3 golden_gen.py
"""
import json, math, random

NOW = 1764288300000
WINDOW = 300000
REL = 0.0055  # DDSketch scale 6: 0.54 % (+ margin)
rng = random.Random(20251128)

lines, recs, invalid = [], [], []  # recs: dicts of accepted records in the window


def emit(r, in_window=True):
    lines.append(json.dumps(r, separators=(",", ":")))
    if in_window:
        recs.append(r)


for i in range(900):
    ts = NOW - WINDOW + rng.randrange(WINDOW)
    prov = "openai" if rng.random() < 0.7 else "anthropic"
    model = ("gpt-4o" if rng.random() < 0.6 else "gpt-4o-mini") if prov == "openai" else "claude-sonnet"
    region = "eu" if rng.random() < 0.5 else "us"
    service = "support-bot" if rng.random() < 0.85 else "billing-bot"
    bad = prov == "anthropic"
    r = {"ts": ts, "service": service, "model": model, "provider": prov, "version": "prompt-v12"}
    if rng.random() > 0.03:
        r["latency_ms"] = round(rng.lognormvariate(math.log(2600 if bad else 800), 0.5), 3)
    r["ttft_ms"] = round(rng.lognormvariate(math.log(300 if region == "eu" else 180), 0.4), 3)
    err = rng.random() < (0.15 if bad else 0.02)
    r["status"] = "error" if err else "ok"
    if err:
        r["error_type"] = rng.choice(["timeout", "rate_limited"])
    r["input_tokens"] = rng.randrange(100, 2000)
    r["output_tokens"] = rng.randrange(50, 900)
    r["cost_usd"] = round(rng.uniform(0.001, 0.012 if bad else 0.006), 6)
    if rng.random() < 0.9:
        r["metrics"] = {"relevance": round(min(1.0, max(0.0, rng.gauss(0.7 if bad else 0.88, 0.08))), 4)}
    r["labels"] = {"region": region}
    r["request_id"] = "g-%d" % i
    emit(r)

# outside the window (older, and exactly at now): never read
for i in range(30):
    emit({"ts": NOW - WINDOW - 1 - rng.randrange(60000), "service": "support-bot", "provider": "openai",
          "model": "gpt-4o", "latency_ms": 99999.0, "labels": {"region": "eu"}}, in_window=False)
emit({"ts": NOW, "service": "support-bot", "provider": "openai", "model": "gpt-4o",
      "latency_ms": 99999.0, "labels": {"region": "eu"}}, in_window=False)
# invalid records (counted against their series; the bad field comes last)
for i in range(12):
    prov = "openai" if i % 3 else "anthropic"
    model = "gpt-4o" if prov == "openai" else "claude-sonnet"
    line = ('{"ts":%d,"service":"support-bot","model":"%s","provider":"%s","version":"prompt-v12",'
            '"labels":{"region":"eu"},"latency_ms":-1}' % (NOW - 1000 - i, model, prov))
    lines.append(line)
    invalid.append({"service": "support-bot", "provider": prov, "model": model, "labels": {"region": "eu"}})

with open("golden_records.ndjson", "w") as f:
    f.write("#now %d\n" % NOW)
    for l in lines:
        f.write(l + "\n")

cfg = json.load(open("golden_scores.json"))


def glob_match(pat, s):
    import fnmatch
    return fnmatch.fnmatchcase(s, pat)


def values(rs, metric):
    out = []
    for r in rs:
        if metric in r:
            out.append(float(r[metric]))
        elif metric in r.get("metrics", {}):
            out.append(float(r["metrics"][metric]))
    return sorted(out)


def stat(c, rs, inv, min_count):
    """-> (value, tol, count, missing)"""
    s = c["stat"]
    mc = c.get("min_count", min_count)
    if s == "count":
        n = len(rs); return float(n), 0.0, n, False
    if s == "rate":
        n = len(rs); return n / (WINDOW / 1000), 0.0, n, False
    if s == "error_rate":
        n = len(rs)
        v = sum(1 for r in rs if r.get("status") == "error") / n if n else None
        return v, 0.0, n, n < mc or n == 0
    if s == "invalid_rate":
        n = len(rs) + inv
        return (inv / n if n else None), 0.0, n, n < mc or n == 0
    if s == "missing_rate":
        n = len(rs)
        v = sum(1 for r in rs if c["field"] not in r) / n if n else None
        return v, 0.0, n, n < mc or n == 0
    xs = values(rs, c["metric"])
    n = len(xs)
    if n == 0:
        return None, 0.0, 0, True
    if s == "mean":
        v, t = sum(xs) / n, 0.0
    elif s == "sum":
        v, t = sum(xs), 0.0
    elif s == "min":
        v, t = xs[0], 0.0
    elif s == "max":
        v, t = xs[-1], 0.0
    elif s.startswith("p"):
        q = float(s[1:]) / 100
        v = xs[int(math.floor(q * (n - 1)))]
        t = abs(v) * REL
    elif s in ("frac_above", "frac_below"):
        b = c["bound"]
        above = sum(1 for x in xs if x > b) / n
        v = above if s == "frac_above" else 1 - above
        # the bucket holding the bound counts as <= bound: its share is the tolerance
        t = sum(1 for x in xs if b / 1.011 <= x <= b * 1.011) / n
    else:
        raise SystemExit("stat " + s)
    return v, t, n, n < mc


def norm(v, good, bad):
    x = (v - bad) / (good - bad)
    return min(1.0, max(0.0, x))


def combine(mode, ws, ns):
    W = sum(ws)
    if mode == "weighted_mean":
        return sum(w / W * n for w, n in zip(ws, ns))
    if mode == "weighted_geometric":
        if any(n <= 0 for n in ns):
            return 0.0
        return math.exp(sum(w / W * math.log(n) for w, n in zip(ws, ns)))
    return min(ns)


def evaluate(sd, rs, inv):
    mode = sd.get("combine", "weighted_mean")
    mc = sd.get("min_count", 20)
    rows, comps = [], []
    total_w = sum(c["weight"] for c in sd["components"])
    for c in sd["components"]:
        v, t, n, missing = stat(c, rs, inv, mc)
        comps.append((c, v, t, n, missing))
    present = [(c, v, t, n) for c, v, t, n, m in comps if not m]
    W = sum(c["weight"] for c, _, _, _ in present)
    out = {"count": len(rs), "coverage": W / total_w}
    if not present:
        out["score"] = None
        out["state"] = "no_data"
    else:
        ws = [c["weight"] for c, _, _, _ in present]
        ns = [norm(v, c["good"], c["bad"]) for c, v, _, _ in present]
        lo = [min(norm(v - t, c["good"], c["bad"]), norm(v + t, c["good"], c["bad"])) for c, v, t, _ in present]
        hi = [max(norm(v - t, c["good"], c["bad"]), norm(v + t, c["good"], c["bad"])) for c, v, t, _ in present]
        sc = combine(mode, ws, ns)
        tol = max(combine(mode, ws, hi) - sc, sc - combine(mode, ws, lo))
        out["score"], out["score_tol"] = sc, tol
        th = sd.get("thresholds", {"warning": 0.8, "critical": 0.6})
        if abs(sc - th["warning"]) <= tol + 1e-6 or abs(sc - th["critical"]) <= tol + 1e-6:
            raise SystemExit("borderline state for %s: %f" % (sd["name"], sc))
        out["state"] = "critical" if sc < th["critical"] else "warning" if sc < th["warning"] else "ok"
        # detractor (weighted modes): largest w(1-n); only when clear of ties
        if mode != "min":
            det = sorted(((w / W * (1 - n), c["name"]) for w, n, (c, _, _, _) in zip(ws, ns, present)), reverse=True)
            if det[0][0] > 0 and (len(det) == 1 or det[0][0] - det[1][0] > 0.02):
                out["detractor"] = det[0][1]
        else:
            mn = sorted((n, c["name"]) for n, (c, _, _, _) in zip(ns, present))
            if mn[0][0] < 1 and (len(mn) == 1 or mn[1][0] - mn[0][0] > 0.02):
                out["detractor"] = mn[0][1]
    out["components"] = []
    for c, v, t, n, m in comps:
        d = {"name": c["name"], "count": n, "missing": m}
        if v is not None:
            d["value"], d["tol"] = v, t
        if not m:
            d["normalized"] = norm(v, c["good"], c["bad"])
            d["ntol"] = t / abs(c["good"] - c["bad"])
            d["weight"] = c["weight"] / W
        out["components"].append(d)
    return out


def selected(sd, r):
    sel = sd["selector"]
    for k in ("service", "model", "provider", "version"):
        if k in sel and not glob_match(sel[k], r.get(k, "")):
            return False
    for k, v in sel.get("labels", {}).items():
        if k not in r.get("labels", {}) or not glob_match(v, r["labels"][k]):
            return False
    return True


def dim(r, d):
    if d in ("service", "model", "provider", "version"):
        return r.get(d, "")
    return r.get("labels", {}).get(d, "")


def fmt(x):
    return "null" if x is None else repr(float(x))


rows = ["# score\tsegment\tcomponent\tfield\tvalue\ttolerance  (generated by golden_gen.py)"]


def put(score, seg, comp, field, value, tol=0.0):
    if isinstance(value, str):
        rows.append("%s\t%s\t%s\t%s\t%s\t0" % (score, seg, comp, field, value))
    else:
        t = tol + 1e-9 * max(1.0, abs(value or 0))
        rows.append("%s\t%s\t%s\t%s\t%s\t%.6g" % (score, seg, comp, field, fmt(value), t))


for sd in cfg["scores"]:
    rs = [r for r in recs if selected(sd, r)]
    inv_all = [x for x in invalid if selected(sd, x)]
    whole = evaluate(sd, rs, len(inv_all))
    segs = {}
    for r in rs:
        segs.setdefault(tuple(dim(r, d) for d in sd.get("segment_by", [])), []).append(r)
    results = [("-", whole)]
    if sd.get("segment_by"):
        for key in sorted(segs):
            inv = sum(1 for x in inv_all if tuple(dim(x, d) for d in sd["segment_by"]) == key)
            ev = evaluate(sd, segs[key], inv)
            share = len(segs[key]) / len(rs)
            gap = (whole["score"] - ev["score"]) if ev["score"] is not None else None
            if gap is not None:
                margin = abs(gap - sd.get("masked_gap", 0.15))
                if margin <= ev.get("score_tol", 0) + whole.get("score_tol", 0) + 1e-6:
                    raise SystemExit("borderline masked flag")
            ev["masked"] = share >= sd.get("masked_min_share", 0.05) and gap is not None and \
                gap >= sd.get("masked_gap", 0.15)
            results.append((",".join(key), ev))
    for seg, ev in results:
        n = sd["name"]
        put(n, seg, "-", "count", ev["count"])
        put(n, seg, "-", "coverage", ev["coverage"])
        put(n, seg, "-", "score", ev["score"], ev.get("score_tol", 0.0))
        put(n, seg, "-", "state", ev["state"])
        if "detractor" in ev:
            put(n, seg, "-", "detractor", ev["detractor"])
        if seg != "-":
            put(n, seg, "-", "masked", 1.0 if ev["masked"] else 0.0)
        for c in ev["components"]:
            put(n, seg, c["name"], "count", c["count"])
            if "value" in c:
                put(n, seg, c["name"], "value", c["value"], c["tol"])
            put(n, seg, c["name"], "normalized", c.get("normalized"), c.get("ntol", 0.0))
            put(n, seg, c["name"], "weight", c.get("weight", 0.0))

with open("golden_expected.tsv", "w") as f:
    f.write("\n".join(rows) + "\n")
print("records %d (in window %d), invalid %d, rows %d" % (len(lines), len(recs), len(invalid), len(rows) - 1))
