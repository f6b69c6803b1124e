#!/usr/bin/env python3
"""record_roundtrip.py - records written by a real JSON encoder (python3 json),
with the values the C decoder must find in them.

Run by tests/unit/test_record.c through popen. Prints pairs of lines:
  1. one record exactly as json.dumps wrote it (shuffled key order, random
     ensure_ascii / separators, escapes, astral characters, exponents, nulls);
  2. the expectation, independent of any JSON parsing on the C side:
       D present=<mask> ts=<ms> service=<hex> ... labels=<k:v,...> ...
         strings are hex of their UTF-8 bytes, doubles are hex of their IEEE
         754 bits, tokens are decimal; only present fields are listed, except
         service, which is always listed (the default when absent);
       R <reject_name>      the record must be rejected for this reason;
       S <n>                a {"sync": n} control line.
The C side decodes with default service DEFAULT_SERVICE and now_ms NOW_MS.
Deterministic (fixed seed), so a failure reproduces.
"""
import datetime
import json
import random
import struct
import sys

DEFAULT_SERVICE = "default-svc"
NOW_MS = 1700000000000
FIELDS = ["ts", "service", "model", "provider", "version", "latency_ms", "ttft_ms",
          "status", "error_type", "input_tokens", "output_tokens", "cost_usd",
          "metrics", "labels", "embedding", "request_id"]
BIT = {name: 1 << (i + 1) for i, name in enumerate(FIELDS)}

rnd = random.Random(20251128)


def hx(s):
    return s.encode("utf-8").hex()


def dbits(v):
    return "%016x" % struct.unpack("<Q", struct.pack("<d", v))[0]


ALPHABET = (["a", "b", "z", "0", "-", "_", " ", "/", "\"", "\\", "\n", "\t", "\x01", "\x1f",
             "\x7f", "é", "ß", "€", "中", "\u2028", "\uffff", "😀", "𝄞", "\U0010ffff"]
            + list("abcdefghijklmnop"))


def rstr(maxlen):
    n = rnd.randint(0, maxlen)
    out = ""
    while len(out.encode("utf-8")) < n:
        out += rnd.choice(ALPHABET)
    while len(out.encode("utf-8")) > maxlen:
        out = out[:-1]
    return out


def rfloat():
    k = rnd.randint(0, 7)
    if k == 0:
        return float(rnd.randint(0, 100000))          # 812.0
    if k == 1:
        return rnd.random()                           # 0.123456789...
    if k == 2:
        return rnd.uniform(0, 1e4)
    if k == 3:
        return rnd.random() * 10 ** rnd.randint(-30, 30)  # exponents both ways
    if k == 4:
        return round(rnd.uniform(0, 5000), 1)          # SDK-style precision
    if k == 5:
        return 5e-324 * rnd.randint(1, 10)             # subnormals
    if k == 6:
        return 1.7976931348623157e308 * rnd.random()
    return float(rnd.randint(0, 2 ** 53))


def rmetric():
    return rnd.choice([rfloat(), -rfloat(), rnd.randint(-5, 5), 0, -0.0])


def rts():
    """(json value, expected ms)"""
    ms = rnd.randint(0, 4102444800000)  # 1970 .. 2100
    k = rnd.randint(0, 3)
    if k == 0:
        return ms, ms
    if k == 1:
        v = ms + rnd.choice([0.25, 0.5, 0.999])
        return v, int(v)  # floor: v >= 0
    # RFC 3339 with a random offset and fraction precision
    off = rnd.choice([0, 60, -300, 330, 840, -720, 59])
    tz = datetime.timezone(datetime.timedelta(minutes=off))
    dt = datetime.datetime.fromtimestamp(ms / 1000, datetime.timezone.utc).astimezone(tz)
    dt = dt.replace(microsecond=(ms % 1000) * 1000 + rnd.randint(0, 999))
    frac_digits = rnd.choice([0, 1, 2, 3, 6])
    base = dt.strftime("%Y-%m-%dT%H:%M:%S")
    us = dt.microsecond
    frac = ("%06d" % us)[:frac_digits]
    if frac_digits:
        base += "." + frac
    if off == 0 and rnd.random() < 0.7:
        base += rnd.choice(["Z", "z"])
    else:
        sign = "+" if off >= 0 else "-"
        base += "%s%02d:%02d" % (sign, abs(off) // 60, abs(off) % 60)
    if rnd.random() < 0.2:
        base = base[:10] + rnd.choice(["t", " "]) + base[11:]
    whole = int(dt.replace(microsecond=0).timestamp()) * 1000
    sub = int(frac.ljust(3, "0")[:3]) if frac_digits else 0
    return base, whole + sub


def emit(rec, expect, **dump_kw):
    items = list(rec.items())
    rnd.shuffle(items)
    kw = dict(ensure_ascii=rnd.random() < 0.5)
    if rnd.random() < 0.5:
        kw["separators"] = (",", ":")
    kw.update(dump_kw)
    line = json.dumps(dict(items), **kw)
    sys.stdout.buffer.write(line.encode("utf-8", "surrogatepass") + b"\n")
    sys.stdout.buffer.write(expect.encode() + b"\n")


def good_record():
    rec, exp, present = {}, [], 0

    def maybe(p=0.7):
        return rnd.random() < p

    if maybe():
        v, ms = rts()
        rec["ts"] = v
        present |= BIT["ts"]
        exp.append("ts=%d" % ms)
    elif maybe(0.3):
        rec["ts"] = None
    service = None
    if maybe(0.8):
        service = rstr(40) or "s"
        rec["service"] = service
        present |= BIT["service"]
    elif maybe(0.5):
        rec["service"] = rnd.choice([None, ""])
    exp.append("service=" + hx(service if service is not None else DEFAULT_SERVICE))
    for f in ["model", "provider", "version", "error_type", "request_id"]:
        if maybe():
            v = rstr(rnd.choice([8, 40, 256]))
            rec[f] = v
            present |= BIT[f]
            exp.append("%s=%s" % (f, hx(v)))
        elif maybe(0.3):
            rec[f] = None
    for f in ["latency_ms", "ttft_ms", "cost_usd"]:
        if maybe():
            v = rfloat()
            rec[f] = v
            present |= BIT[f]
            exp.append("%s=%s" % (f, dbits(v)))
        elif maybe(0.2):
            rec[f] = None
    if maybe():
        st = rnd.choice(["ok", "error"])
        rec["status"] = st
        present |= BIT["status"]
        exp.append("status=" + st)
    for f in ["input_tokens", "output_tokens"]:
        if maybe():
            v = rnd.choice([0, rnd.randint(1, 5000), 2 ** 64 - 1, 2 ** 53 + 1])
            rec[f] = float(v) if v < 2 ** 53 and maybe(0.3) else v
            present |= BIT[f]
            exp.append("%s=%d" % (f, v))
    if maybe():
        m = {}
        for _ in range(rnd.randint(0, 8)):
            m[rstr(20)] = rmetric()
        if maybe(0.3):
            m["dropped_null"] = None
        rec["metrics"] = m
        present |= BIT["metrics"]
        kept = sorted(((k.encode(), v) for k, v in m.items() if v is not None))
        exp.append("metrics=" + ",".join("%s:%s" % (k.hex(), dbits(float(v))) for k, v in kept))
    if maybe():
        lab = {}
        for _ in range(rnd.randint(0, 6)):
            lab[rstr(64)] = rstr(rnd.choice([10, 256]))
        if maybe(0.3):
            lab["n"] = rnd.choice([3, -7, 2.5, 1e21, True, False])
        if maybe(0.3):
            lab["gone"] = None
        rec["labels"] = lab
        present |= BIT["labels"]
        kept = []
        for k, v in lab.items():
            if v is None:
                continue
            text = v if isinstance(v, str) else json.dumps(v)
            kept.append((k.encode(), text.encode()))
        kept.sort()
        exp.append("labels=" + ",".join("%s:%s" % (k.hex(), v.hex()) for k, v in kept))
    if maybe():
        e = [rnd.gauss(0, 0.3) for _ in range(rnd.choice([0, 1, 3, 16, 100]))]
        rec["embedding"] = e
        present |= BIT["embedding"]
        exp.append("embedding=" + ",".join(dbits(v) for v in e))
    if maybe(0.3):
        rec["x_unknown"] = rnd.choice([None, 1, "s", [1, {"a": [None, True]}], {"k": {"k": []}}])
    return rec, "D present=%d %s" % (present, " ".join(exp))


def main():
    for _ in range(1500):
        rec, exp = good_record()
        emit(rec, exp)
    # sync control lines
    for n in [0, 1, 42, 2 ** 63, 2 ** 64 - 1]:
        emit({"sync": n}, "S %d" % n)
    # rejections, each followed by a good record (the stream goes on)
    base = {"service": "svc", "latency_ms": 1.5}
    bad = [
        (dict(base, latency_ms=float("nan")), "non_finite"),
        (dict(base, ttft_ms=float("inf")), "non_finite"),
        (dict(base, metrics={"m": float("-inf")}), "non_finite"),
        (dict(base, embedding=[0.1, float("nan")]), "non_finite"),
        (dict(base, latency_ms="812"), "bad_type"),
        (dict(base, labels=["a"]), "bad_type"),
        (dict(base, labels={"a": {"b": "c"}}), "bad_type"),
        (dict(base, metrics={"m": "0.5"}), "bad_type"),
        (dict(base, embedding=[1, None]), "bad_type"),
        (dict(base, service=7), "bad_type"),
        (dict(base, status="maybe"), "bad_status"),
        (dict(base, ts="yesterday"), "bad_timestamp"),
        (dict(base, ts="2025-02-29T00:00:00Z"), "bad_timestamp"),
        (dict(base, ts=-1), "bad_timestamp"),
        (dict(base, labels={"k%d" % i: "v" for i in range(33)}), "too_many_labels"),
        (dict(base, labels={"k" * 65: "v"}), "field_too_long"),
        (dict(base, labels={"k": "v" * 257}), "field_too_long"),
        (dict(base, model="m" * 257), "field_too_long"),
        (dict(base, metrics={"m%d" % i: i for i in range(65)}), "too_many_metrics"),
        (dict(base, embedding=[0.5] * 4097), "embedding_too_long"),
        (dict(base, request_id="\ud800"), "bad_utf8"),
        (dict(base, model="x\udc00y"), "bad_utf8"),
        (dict(base, latency_ms=-1), "out_of_range"),
        (dict(base, input_tokens=-1), "out_of_range"),
        (dict(base, output_tokens=2 ** 64), "out_of_range"),
        (dict(base, input_tokens=1.5), "out_of_range"),
        ({"sync": -1}, "bad_type"),
        ({"sync": "3"}, "bad_type"),
    ]
    for rec, reason in bad:
        emit(rec, "R " + reason, ensure_ascii=True)
        good, exp = good_record()
        emit(good, exp)
    # limits exactly at the boundary are accepted
    at = dict(base, labels={"k%02d" % i: "v" * 256 for i in range(32)},
              metrics={"m%02d" % i: i for i in range(64)}, embedding=[0.25] * 4096)
    at["labels"]["k" * 64] = at["labels"].pop("k00")
    at["model"] = "m" * 256
    labels = sorted((k.encode(), v.encode()) for k, v in at["labels"].items())
    metrics = sorted((k.encode(), float(v)) for k, v in at["metrics"].items())
    exp = ("D present=%d service=%s model=%s latency_ms=%s metrics=%s labels=%s embedding=%s" % (
        BIT["service"] | BIT["model"] | BIT["latency_ms"] | BIT["metrics"] | BIT["labels"]
        | BIT["embedding"], hx("svc"), hx("m" * 256), dbits(1.5),
        ",".join("%s:%s" % (k.hex(), dbits(v)) for k, v in metrics),
        ",".join("%s:%s" % (k.hex(), v.hex()) for k, v in labels),
        ",".join([dbits(0.25)] * 4096)))
    emit(at, exp, separators=(",", ":"))


if __name__ == "__main__":
    main()
