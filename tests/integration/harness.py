"""harness.py - what the integration tests share: start the real daemons on
loopback with private directories, wait for them, read their metrics and
APIs, and kill every process they started, by pid, whatever happens."""
import atexit
import json
import os
import signal
import socket
import subprocess
import tempfile
import time
import urllib.request

BIN = os.environ.get("VITALS_BIN") or os.path.join(os.path.dirname(__file__), "../../build/bin")
_procs = []


def _cleanup():
    for p in _procs:
        if p.poll() is None:
            p.kill()
            p.wait()


atexit.register(_cleanup)
signal.signal(signal.SIGTERM, lambda *_: (_cleanup(), os._exit(1)))


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def http_get(url, timeout=5):
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return r.status, r.read().decode()


def wait_for(what, fn, timeout=30, interval=0.1):
    """Poll fn() until it returns a truthy value; fail with `what` after timeout."""
    deadline = time.time() + timeout
    last = None
    while time.time() < deadline:
        try:
            last = fn()
            if last:
                return last
        except (OSError, ValueError) as e:
            last = e
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")


def metrics(port):
    """Prometheus text -> {'name{labels}': value}."""
    _, text = http_get(f"http://127.0.0.1:{port}/metrics")
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            k, v = line.rsplit(" ", 1)
            out[k] = float(v)
    return out


class Daemon:
    """One real process; stdout+stderr go to a log file kept for failures."""

    def __init__(self, name, argv, workdir):
        self.name, self.argv, self.workdir = name, argv, workdir
        self.log_path = os.path.join(workdir, f"{name}.log")
        self.proc = None

    def start(self):
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(self.argv, stdout=log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL)
        log.close()
        _procs.append(self.proc)
        return self

    def kill(self, sig=signal.SIGKILL, timeout=30):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                return self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise AssertionError(f"{self.name} did not exit within {timeout}s of signal {sig}")
        return self.proc.returncode if self.proc else None

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def log(self):
        try:
            with open(self.log_path, errors="replace") as f:
                return f.read()
        except OSError:
            return ""


class Cluster:
    """A scorer and an agent wired together in a temporary directory."""

    def __init__(self, agent_args=(), scorer_args=(), scores=None, token="t0ken"):
        self.dir = tempfile.mkdtemp(prefix="vitals-it-")
        self.grpc, self.http, self.admin = free_port(), free_port(), free_port()
        self.sock_dir = os.path.join(self.dir, "sock")
        self.token_file = os.path.join(self.dir, "token")
        with open(self.token_file, "w") as f:
            f.write(token + "\n")
        scores_path = os.path.join(self.dir, "scores.json")
        with open(scores_path, "w") as f:
            json.dump(scores or {"version": 1, "scores": []}, f)
        self.scorer = Daemon("scorer", [
            os.path.join(BIN, "vitals-scorer"), "--scores", scores_path,
            "--data-dir", os.path.join(self.dir, "data"),
            "--grpc-addr", f"127.0.0.1:{self.grpc}", "--http-addr", f"127.0.0.1:{self.http}",
            "--token-file", self.token_file, "--eval-interval", "1s", *scorer_args], self.dir)
        self.agent = Daemon("agent", [
            os.path.join(BIN, "vitals-agent"), "--socket-dir", self.sock_dir,
            "--spool-dir", os.path.join(self.dir, "spool"),
            "--admin-addr", f"127.0.0.1:{self.admin}",
            "--scorer", f"http://127.0.0.1:{self.grpc}", "--token-file", self.token_file,
            "--agent-id", "it-agent", "--otlp-grpc-addr", "", "--otlp-http-addr", "",
            *agent_args], self.dir)

    def start_scorer(self):
        self.scorer.start()
        wait_for("scorer /healthz", lambda: http_get(f"http://127.0.0.1:{self.http}/healthz")[0] == 200)

    def start_agent(self):
        self.agent.start()
        wait_for("agent /healthz", lambda: http_get(f"http://127.0.0.1:{self.admin}/healthz")[0] == 200)
        wait_for("agent socket", lambda: os.path.exists(os.path.join(self.sock_dir, "ingest.sock")))

    def stream(self):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(os.path.join(self.sock_dir, "ingest.sock"))
        s.settimeout(30)
        return s

    def dgram(self, payload):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        s.sendto(payload, os.path.join(self.sock_dir, "ingest.dgram"))
        s.close()

    def agent_metrics(self):
        return metrics(self.admin)

    def scorer_metrics(self):
        return metrics(self.http)

    def scorer_records(self):
        _, body = http_get(f"http://127.0.0.1:{self.http}/v1/series")
        return json.loads(body)["records"]

    def stop(self):
        self.agent.kill()
        self.scorer.kill()

    def logs(self):
        return f"--- agent log ---\n{self.agent.log()[-4000:]}\n--- scorer log ---\n{self.scorer.log()[-4000:]}"


def sync(sock, n):
    """Send {"sync": n} and wait for {"synced": n}. Returns True if answered."""
    sock.sendall(b'{"sync": %d}\n' % n)
    buf = b""
    while b"\n" not in buf:
        chunk = sock.recv(4096)
        if not chunk:
            return False
        buf += chunk
    reply = json.loads(buf.split(b"\n", 1)[0])
    assert reply == {"synced": n}, reply
    return True


def record(i, service="bot", **extra):
    r = {"service": service, "model": "gpt-4o", "provider": ["openai", "anthropic"][i % 2],
         "latency_ms": 100 + i % 900, "status": "error" if i % 50 == 0 else "ok",
         "input_tokens": 100 + i % 7, "output_tokens": 20 + i % 5, "cost_usd": 0.001,
         "metrics": {"relevance": (i % 10) / 10}, "labels": {"region": ["eu", "us"][i % 2 // 1]},
         "request_id": f"r-{i}"}
    r.update(extra)
    return r


def ndjson(records):
    return b"".join(json.dumps(r).encode() + b"\n" for r in records)


class Runner:
    """Runs test functions, prints one line each and the closing counts."""

    def __init__(self):
        self.passed = self.failed = 0

    def run(self, fn):
        t = time.time()
        try:
            fn()
            self.passed += 1
            print(f"PASS {fn.__name__} ({time.time() - t:.1f}s)", flush=True)
        except Exception as e:  # noqa: BLE001 - report every failure the same way
            self.failed += 1
            import traceback
            print(f"FAIL {fn.__name__}: {e}", flush=True)
            traceback.print_exc()

    def finish(self):
        _cleanup()
        print(f"{self.passed} passed, {self.failed} failed", flush=True)
        raise SystemExit(1 if self.failed else 0)
