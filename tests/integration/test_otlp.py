#!/usr/bin/env python3
"""test_otlp.py - issue 7's check: the OpenTelemetry JS SDK (a client nobody
here wrote) exports spans over OTLP/gRPC, OTLP/HTTP protobuf and OTLP/HTTP JSON
(identity and gzip) to a real vitals-agent, which ships to a real scorer.

Each exporter run (tests/integration/otlp/send.js) sends the same 9 spans
under its own service.name: 5 LLM spans (GenAI new and old attribute names,
OpenInference LLM and EMBEDDING, GenAI embeddings; two of them errors), 3 spans
that are not LLM calls (HTTP, an OpenInference CHAIN and a GenAI invoke_agent
span that both carry a model) and 1 LLM span with negative tokens, which must
be rejected as a partial success. Asserted: exact span/record counts in the
agent's metrics, the partial-success message as the SDK received it, exact
series (service, model, provider, labels, record count) at the scorer, and
the statistics of the mapped fields (tokens, latency, errors, cost, TTFT,
annotation / evaluation / retrieval metrics, a mapped attribute) in the
scorer's /v1/scores. Plus the error answers of the HTTP and gRPC listeners.

npm installs the SDK into tests/integration/otlp/node_modules (gitignored)
from the committed package-lock.json the first time; skipped only when node or
npm is absent.
"""
import gzip
import json
import os
import shutil
import subprocess
import sys
import urllib.error
import urllib.request

sys.path.insert(0, os.path.dirname(__file__))
from harness import Cluster, Runner, free_port, http_get, wait_for  # noqa: E402

HERE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "otlp")
RUNS = [("it-grpc", "grpc", ""), ("it-grpc-gz", "grpc", "gzip"),
        ("it-proto", "proto", "gzip"), ("it-json", "json", ""), ("-", "json", "gzip")]
DEFAULT_SERVICE = "it-default"  # the agent's --service: spans without a real service.name
LLM, IGNORED, REJECTED = 5, 3, 1

# (model, provider, labels) -> records, for every run
SERIES = {
    ("gpt-4o-2024-08-06", "openai", (("env", "prod"), ("tier", "silver"))): 1,
    ("claude-3-5-sonnet", "anthropic", (("env", "prod"), ("tier", "silver"))): 1,
    ("mistral-large", "mistralai", (("env", "prod"), ("tier", "gold"))): 1,
    ("text-embedding-3-small", "openai", (("env", "prod"), ("tier", "silver"))): 1,
    ("text-embedding-3-large", "openai", (("env", "prod"), ("tier", "silver"))): 1,
}
# score component -> (stat, metric, expected over the 5 records of one service)
COMPONENTS = {
    "n": ("count", None, 5),
    "errors": ("error_rate", None, 2 / 5),
    "in_sum": ("sum", "input_tokens", 512 + 100 + 300 + 40),
    "out_sum": ("sum", "output_tokens", 128 + 20 + 50),
    "lat_max": ("max", "latency_ms", 1500.0),
    "lat_min": ("min", "latency_ms", 50.0),
    "lat_sum": ("sum", "latency_ms", 812 + 1500 + 640 + 95 + 50),
    "cost": ("sum", "cost_usd", 0.0042),
    "ttft": ("max", "ttft_ms", 125.0),
    "n_ttft": ("count", "ttft_ms", 1),
    "relevance": ("mean", "relevance", 0.9),
    "helpfulness": ("mean", "helpfulness", 0.75),
    "retrieval": ("mean", "retrieval_score", 0.7),
    "total_tokens": ("mean", "total_tokens", 350),
}
NAMED = {"relevance", "helpfulness", "retrieval_score", "total_tokens"}
# per model segment: error rate
SEGMENT_ERRORS = {"gpt-4o-2024-08-06": 0.0, "claude-3-5-sonnet": 1.0, "mistral-large": 0.0,
                  "text-embedding-3-small": 1.0, "text-embedding-3-large": 0.0}


def service_of(run):
    return DEFAULT_SERVICE if run[0] == "-" else run[0]


def scores():
    out = []
    for run in RUNS:
        comps = []
        for name, (stat, metric, _) in COMPONENTS.items():
            c = {"name": name, "stat": stat, "weight": 1, "good": 1, "bad": 0}
            if metric:
                c["metric"] = metric
            comps.append(c)
        out.append({"name": "s-" + service_of(run), "selector": {"service": service_of(run)},
                    "segment_by": ["model"], "window": "1h", "min_count": 1, "for": "0s",
                    "components": comps})
    return {"version": 1, "scores": out}


def ensure_sdk():
    if os.path.exists(os.path.join(HERE, "node_modules", "@opentelemetry",
                                   "exporter-trace-otlp-grpc", "package.json")):
        return
    print("installing the OpenTelemetry JS SDK with npm", flush=True)
    cmd = ["npm", "ci" if os.path.exists(os.path.join(HERE, "package-lock.json")) else "install",
           "--no-audit", "--no-fund", "--silent"]
    subprocess.run(cmd, cwd=HERE, check=True, timeout=480)


class T:
    c = None
    grpc_port = http_port = None


def post(path, body, headers, port=None):
    req = urllib.request.Request(f"http://127.0.0.1:{port or T.http_port}{path}", data=body,
                                 headers=headers, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


def test_sdk_exporters_deliver_every_llm_span():
    c = T.c
    for run in RUNS:
        svc, kind, comp = run
        url = (f"http://127.0.0.1:{T.grpc_port}" if kind == "grpc"
               else f"http://127.0.0.1:{T.http_port}/v1/traces")
        p = subprocess.run(["node", "send.js", kind, url, svc, comp], cwd=HERE,
                           capture_output=True, text=True, timeout=120)
        assert p.returncode == 0, f"{run}: rc={p.returncode}\n{p.stdout}\n{p.stderr}"
        out = json.loads(p.stdout.strip().splitlines()[-1])
        assert out["exported"] == LLM + IGNORED + REJECTED, out
        # the SDK saw the partial success: 1 span rejected, with our reason
        partial = [w for w in out["warnings"] if "Partial Success" in w]
        assert len(partial) == 1 and "out_of_range" in partial[0] and \
            "negative token count" in partial[0], out["warnings"]
        print(f"  {kind}{'+' + comp if comp else ''} as {service_of(run)}: {partial[0][:160]}",
              flush=True)

    n = len(RUNS)
    m = c.agent_metrics()
    expect = {
        "vitals_agent_otlp_spans_accepted_total": LLM * n,
        "vitals_agent_otlp_spans_rejected_total": REJECTED * n,
        "vitals_agent_otlp_spans_ignored_total": IGNORED * n,
        'vitals_agent_otlp_requests_total{transport="grpc"}': 2,
        'vitals_agent_otlp_requests_total{transport="http"}': 3,
        'vitals_agent_otlp_spans_received_total{transport="grpc"}': 2 * 9,
        'vitals_agent_otlp_spans_received_total{transport="http"}': 3 * 9,
        "vitals_agent_records_accepted_total": LLM * n,
        'vitals_agent_records_rejected_total{reason="out_of_range"}': REJECTED * n,
    }
    for k, v in expect.items():
        assert m.get(k) == v, f"{k} = {m.get(k)}, expected {v}"

    # every accepted span reaches the scorer as one record, in the right series
    wait_for(f"{LLM * n} records at the scorer", lambda: c.scorer_records() == LLM * n,
             timeout=90, interval=0.25)
    _, body = http_get(f"http://127.0.0.1:{c.http}/v1/series")
    got = {}
    for s in json.loads(body)["series"]:
        key = (s["service"], s.get("model", ""), s.get("provider", ""),
               tuple(sorted(s["labels"].items())))
        got[key] = got.get(key, 0) + s["records"]
    want = {(service_of(r),) + k: v for r in RUNS for k, v in SERIES.items()}
    assert got == want, f"series differ:\n got  {sorted(got.items())}\n want {sorted(want.items())}"


def test_mapped_fields_in_scores():
    """Tokens, latency, errors, cost, TTFT and metrics as the scorer computes them."""
    for run in RUNS:
        name = "s-" + service_of(run)

        def evaluated():
            r = json.loads(http_get(f"http://127.0.0.1:{T.c.http}/v1/scores/{name}")[1])
            return r if r.get("count") == LLM else None
        res = wait_for(f"score {name} over {LLM} records", evaluated, timeout=30)
        vals = {x["name"]: x for x in res["components"]}
        if os.environ.get("OTLP_DEBUG"):
            print(json.dumps(res["components"]))
        for comp, (_, metric, want) in COMPONENTS.items():
            x = vals[comp]
            v = x["value"]
            assert v is not None and abs(v - want) <= 1e-6 + 0.006 * abs(want), \
                f"{name}: {comp} = {v}, expected {want}"
        segs = {sg["labels"]["model"]: sg for sg in res["segments"]}
        # the rejected span is an invalid record of the service, without a model
        empty = segs.pop("", None)
        assert empty is None or empty["count"] == 0, empty
        assert set(segs) == set(SEGMENT_ERRORS), sorted(segs)
        for model, err in SEGMENT_ERRORS.items():
            e = {x["name"]: x["value"] for x in segs[model]["components"]}["errors"]
            assert abs(e - err) < 1e-9, f"{name}/{model}: error_rate {e}, expected {err}"
    print(f"  {len(RUNS)} scores x {len(COMPONENTS)} statistics + "
          f"{len(SEGMENT_ERRORS)} segment error rates as expected", flush=True)


def test_http_errors():
    pb = {"Content-Type": "application/x-protobuf"}
    js = {"Content-Type": "application/json"}
    st, h, b = post("/v1/traces", b"\x0a\x05\x12\x03\x12\x01", pb)  # truncated ScopeSpans
    assert st == 400 and h["Content-Type"] == "application/x-protobuf", (st, h, b)
    assert b[:2] == b"\x08\x03" and b"malformed" in b, b  # google.rpc.Status{code 3}
    st, h, b = post("/v1/traces", b'{"resourceSpans": 7}', js)
    assert st == 400 and json.loads(b)["code"] == 3, (st, b)
    st, _, b = post("/v1/traces", b"{", js)
    assert st == 400 and "invalid JSON" in json.loads(b)["message"], b
    st, _, _ = post("/v1/traces", b"{}", {"Content-Type": "text/plain"})
    assert st == 415, st
    st, _, _ = post("/v1/traces", b"{}", {**js, "Content-Encoding": "br"})
    assert st == 415, st
    st, _, _ = post("/v1/logs", b"{}", js)
    assert st == 404, st
    st, _, b = post("/v1/traces", b"{}", js)
    assert st == 200 and json.loads(b) == {}, (st, b)
    st, _, b = post("/v1/traces", b"", pb)  # an empty request is a valid one
    assert st == 200 and b == b"", (st, b)
    # over --otlp-max-request-bytes (1 MiB here) once decompressed: 413 / RESOURCE_EXHAUSTED
    bomb = gzip.compress(b"\x00" * (2 << 20))
    st, _, b = post("/v1/traces", bomb, {**pb, "Content-Encoding": "gzip"})
    assert st == 413 and b[:2] == b"\x08\x08", (st, b)
    st, _, b = post("/v1/traces", gzip.compress(b"x")[:-3], {**js, "Content-Encoding": "gzip"})
    assert st == 400, (st, b)
    m = T.c.agent_metrics()
    assert m['vitals_agent_otlp_requests_failed_total{transport="http"}'] == 7, m


def test_grpc_errors():
    if not shutil.which("curl"):
        print("  (curl absent: gRPC error answers not checked)")
        return

    def call(msg):
        p = subprocess.run(
            ["curl", "-s", "-i", "--http2-prior-knowledge", "-H", "te: trailers", "-H",
             "content-type: application/grpc", "--data-binary", "@-",
             f"http://127.0.0.1:{T.grpc_port}/opentelemetry.proto.collector.trace.v1."
             "TraceService/Export"], input=msg, capture_output=True, timeout=30)
        return p.stdout.decode("latin-1").lower()
    frame = lambda b: b"\x00" + len(b).to_bytes(4, "big") + b  # noqa: E731
    out = call(frame(b"\x0a\x05\x12\x03\x12\x01"))
    assert "grpc-status: 3" in out, out
    out = call(frame(b""))
    assert "grpc-status: 0" in out, out


def main():
    if not shutil.which("node") or not shutil.which("npm"):
        print("SKIP: node/npm not installed; OTLP SDK test not run")
        print("0 passed, 0 failed")
        return
    ensure_sdk()
    T.grpc_port, T.http_port = free_port(), free_port()
    T.c = Cluster(agent_args=[
        "--otlp-grpc-addr", f"127.0.0.1:{T.grpc_port}",
        "--otlp-http-addr", f"127.0.0.1:{T.http_port}",
        "--service", DEFAULT_SERVICE, "--window", "1s", "--flush-interval", "50ms",
        "--otlp-labels", "tier,deployment.environment=env",
        "--otlp-metrics", "llm.token_count.total=total_tokens",
        "--otlp-max-request-bytes", "1MiB"], scores=scores())
    T.c.start_scorer()
    T.c.start_agent()
    r = Runner()
    try:
        for t in (test_sdk_exporters_deliver_every_llm_span, test_mapped_fields_in_scores,
                  test_http_errors, test_grpc_errors):
            r.run(t)
        if r.failed:
            print(T.c.logs())
    finally:
        T.c.stop()
    r.finish()


if __name__ == "__main__":
    main()
