#!/usr/bin/env python3
"""test_grpc_interop.py - lib/grpc against @grpc/grpc-js, both directions.

Our server (the test_grpc binary in --serve mode) is called by a grpc-js
client; our client (test_grpc --call) calls a grpc-js server; each with
identity and gzip compression. grpc-js is installed from npm into
tests/integration/grpc_interop/node_modules (gitignored) on first use. The
test is skipped only when node or npm is absent.
"""
import os
import shutil
import signal
import subprocess
import sys
import time

SRC = os.environ.get("VITALS_SRC", os.path.join(os.path.dirname(__file__), "..", ".."))
BUILD = os.environ.get("VITALS_BUILD", os.path.join(SRC, "build"))
HERE = os.path.join(SRC, "tests", "integration", "grpc_interop")
BIN = os.path.join(BUILD, "tests", "test_grpc")
DEADLINE = 60


def log(msg):
    print(f"[grpc-interop] {msg}", flush=True)


def ensure_grpc_js():
    if os.path.exists(os.path.join(HERE, "node_modules", "@grpc", "grpc-js", "package.json")):
        return
    log("installing @grpc/grpc-js with npm")
    subprocess.run(["npm", "install", "--no-audit", "--no-fund", "--silent"],
                   cwd=HERE, check=True, timeout=300)


def start(cmd, **kw):
    """Start a server process; wait for its 'listening PORT' line."""
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **kw)
    t0 = time.time()
    line = ""
    while time.time() - t0 < 20:
        line = p.stdout.readline()
        if line.startswith("listening "):
            return p, int(line.split()[1])
        if not line and p.poll() is not None:
            break
    stop(p)
    raise RuntimeError(f"{cmd[0]} did not start: {line!r}")


def stop(p):
    if p.poll() is None:
        os.kill(p.pid, signal.SIGTERM)
        try:
            p.wait(timeout=5)
        except subprocess.TimeoutExpired:
            os.kill(p.pid, signal.SIGKILL)
            p.wait()


def run(cmd, **kw):
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=DEADLINE, **kw)
    sys.stdout.write(r.stdout)
    sys.stdout.write(r.stderr)
    return r.returncode


def main():
    if not shutil.which("node") or not shutil.which("npm"):
        log("SKIP: node/npm not installed; grpc-js interop not tested")
        return 0
    if not os.path.exists(BIN):
        log(f"FAIL: {BIN} not built (cmake --build {BUILD} --target test_grpc)")
        return 1
    ensure_grpc_js()
    failures = 0

    # grpc-js client -> our server
    srv, port = start([BIN, "--serve", "0"])
    try:
        for comp in ("identity", "gzip"):
            rc = run(["node", "interop.js", "client", f"127.0.0.1:{port}", comp], cwd=HERE)
            log(f"grpc-js client -> vitals server ({comp}): rc={rc}")
            failures += rc != 0
    finally:
        stop(srv)
    if srv.returncode not in (0, -signal.SIGTERM):
        log(f"vitals server exited with {srv.returncode}")
        failures += 1

    # our client -> grpc-js server (the server answers in the same encoding)
    for comp in ("identity", "gzip"):
        node, port = start(["node", "interop.js", "server", comp], cwd=HERE)
        try:
            rc = run([BIN, "--call", f"127.0.0.1:{port}", comp])
            log(f"vitals client -> grpc-js server ({comp}): rc={rc}")
            failures += rc != 0
        finally:
            stop(node)

    log("PASS" if failures == 0 else f"FAIL ({failures})")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
