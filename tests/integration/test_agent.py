#!/usr/bin/env python3
"""test_agent.py - vitals-agent against the real vitals-scorer, over real
Unix sockets and real gRPC: ingest by stream and datagram, sync, every
rejection reason in /metrics, idle connections, SIGKILL of the agent between
and in the middle of chunks, the scorer away and back, graceful SIGTERM, and
the command-line contract (--help, --version, exit 2 naming the field)."""
import os
import random
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
from harness import BIN, Cluster, Runner, http_get, ndjson, record, sync, wait_for  # noqa: E402

WINDOW = ["--window", "1s", "--flush-interval", "50ms", "--backoff-max", "1s"]


def wait_shipped(c, expected, timeout=60):
    wait_for(f"scorer to hold {expected} records", lambda: c.scorer_records() == expected,
             timeout=timeout, interval=0.25)
    time.sleep(2.5)  # two more windows: nothing further may arrive (no double count)
    got = c.scorer_records()
    assert got == expected, f"scorer holds {got} records, expected exactly {expected}"


def test_cli():
    agent = os.path.join(BIN, "vitals-agent")
    out = subprocess.run([agent, "--help"], capture_output=True, text=True, timeout=10)
    assert out.returncode == 0
    for flag in ("--socket-dir", "--spool-dir", "--scorer", "--admin-addr", "--otlp-grpc-addr",
                 "--otlp-http-addr", "--service", "--token-file", "--window", "--fsync",
                 "VITALS_SPOOL_MAX_BYTES", "[default: 10s]"):
        assert flag in out.stdout, f"--help lacks {flag}"
    out = subprocess.run([agent, "--version"], capture_output=True, text=True, timeout=10)
    assert out.returncode == 0 and out.stdout.startswith("vitals-agent ")
    out = subprocess.run([agent, "--window", "soon"], capture_output=True, text=True, timeout=10)
    assert out.returncode == 2 and "--window" in out.stderr, out.stderr
    env = dict(os.environ, VITALS_FSYNC="sometimes")
    out = subprocess.run([agent], capture_output=True, text=True, timeout=10, env=env)
    assert out.returncode == 2 and "VITALS_FSYNC" in out.stderr, out.stderr


REJECTS = {
    "parse_error": b'{"service": "bot", "latency_ms": }',
    "too_large": b'{"service": "bot", "request_id": "' + b"x" * 5000 + b'"}',
    "bad_type": b'{"service": "bot", "latency_ms": "fast"}',
    "non_finite": b'{"service": "bot", "latency_ms": NaN}',
    "too_many_labels": b'{"service": "bot", "labels": {' + b",".join(
        b'"k%d": "v"' % i for i in range(40)) + b"}}",
    "field_too_long": b'{"service": "bot", "labels": {"' + b"k" * 100 + b'": "v"}}',
    "bad_timestamp": b'{"service": "bot", "ts": "yesterday"}',
    "missing_service": b'{"latency_ms": 5}',
    "too_many_metrics": b'{"service": "bot", "metrics": {' + b",".join(
        b'"m%d": 1' % i for i in range(70)) + b"}}",
    "embedding_too_long": b'{"service": "bot", "embedding": [' + b",".join(
        b"0" for _ in range(101)) + b"]}",
    "bad_status": b'{"service": "bot", "status": "meh"}',
    "bad_utf8": b'{"service": "bot\xff"}',
    "duplicate_key": b'{"service": "bot", "service": "bot"}',
    "out_of_range": b'{"service": "bot", "latency_ms": -1}',
}


def test_ingest_sync_rejects_idle():
    c = Cluster(agent_args=[*WINDOW, "--max-record-bytes", "4096", "--max-embedding", "100"])
    try:
        c.start_scorer()
        c.start_agent()
        idle = [c.stream() for _ in range(200)]  # connected, silent
        s = c.stream()
        s.sendall(ndjson(record(i) for i in range(5000)))
        assert sync(s, 1)
        m = c.agent_metrics()
        assert m["vitals_agent_records_accepted_total"] == 5000, m
        for i in range(300):
            c.dgram(ndjson([record(i, service="dgram-svc")]))
        wait_for("300 datagrams", lambda: c.agent_metrics()["vitals_agent_records_accepted_total"] == 5300)
        # one line per rejection reason, each between two good records
        for reason, line in REJECTS.items():
            s.sendall(ndjson([record(1)]) + line + b"\n" + ndjson([record(2)]))
        assert sync(s, 2)
        m = c.agent_metrics()
        for reason in REJECTS:
            got = m.get(f'vitals_agent_records_rejected_total{{reason="{reason}"}}')
            assert got == 1, f"{reason}: {got}"
        assert m["vitals_agent_records_accepted_total"] == 5300 + 2 * len(REJECTS), m
        assert m["vitals_agent_connections_total"] == 201
        # a client leaving mid-line loses only that line
        t = c.stream()
        t.sendall(ndjson([record(3)]) + b'{"service": "bot", "lat')
        t.close()
        wait_for("the complete line", lambda: c.agent_metrics()["vitals_agent_records_accepted_total"] == 5301 + 2 * len(REJECTS))
        expected = 5301 + 2 * len(REJECTS)
        wait_shipped(c, expected)
        for sock in idle:
            sock.close()
        m = c.agent_metrics()
        assert m["vitals_agent_batches_acked_total"] >= 1 and m["vitals_agent_batches_rejected_total"] == 0
        status, body = http_get(f"http://127.0.0.1:{c.admin}/readyz")
        assert status == 200, body
    except Exception:
        print(c.logs())
        raise
    finally:
        c.stop()


def test_sigkill_agent():
    """Kill -9 the agent between chunks (after their sync) and in the middle
    of a chunk; restart it at once. Every synced record is counted exactly
    once; records of an unanswered chunk at most once."""
    c = Cluster(agent_args=WINDOW)
    rng = random.Random(42)
    try:
        c.start_scorer()
        c.start_agent()
        acked = sent = 0
        kills_between = set(rng.sample(range(1, 19), 4))
        kill_inside = 10
        s = c.stream()
        for chunk in range(20):
            recs = ndjson(record(chunk * 1000 + i) for i in range(1000))
            if chunk == kill_inside:
                s.sendall(recs[: len(recs) // 2])
                sent += 500
                time.sleep(0.1)
                c.agent.kill()
                c.start_agent()
                s = c.stream()
                continue
            s.sendall(recs)
            sent += 1000
            assert sync(s, chunk)
            acked += 1000
            if chunk in kills_between:
                time.sleep(rng.uniform(0, 1.5))  # windows closing, batches in flight
                c.agent.kill()
                c.start_agent()
                s = c.stream()
        wait_for("the last window to ship",
                 lambda: c.agent_metrics()["vitals_agent_oldest_unshipped_age_seconds"] == 0,
                 timeout=60)
        time.sleep(2.5)
        got = c.scorer_records()
        assert acked <= got <= sent, f"scorer holds {got}; acked {acked}, sent {sent}"
        # the half chunk was written before the kill: the spool had it
        dup = c.scorer_metrics()["vitals_scorer_batches_duplicate_total"]
        print(f"  acked={acked} sent={sent} scorer={got} scorer_duplicates_refused={dup:.0f}")
    except Exception:
        print(c.logs())
        raise
    finally:
        c.stop()


def test_scorer_down_then_up():
    c = Cluster(agent_args=WINDOW)
    try:
        c.start_scorer()
        c.start_agent()
        s = c.stream()
        s.sendall(ndjson(record(i) for i in range(2000)))
        assert sync(s, 1)
        wait_shipped(c, 2000)
        c.scorer.kill()
        s.sendall(ndjson(record(i) for i in range(3000)))
        assert sync(s, 2)  # the agent accepts while the scorer is away
        wait_for("retries", lambda: c.agent_metrics()["vitals_agent_batches_retried_total"] >= 2, timeout=30)
        status, _ = http_get(f"http://127.0.0.1:{c.admin}/readyz")
        assert status == 200  # behind by seconds, not stuck
        c.start_scorer()
        wait_shipped(c, 5000)
        shipped = c.agent_metrics()["vitals_agent_records_shipped_total"]
        assert shipped == 5000, shipped
    except Exception:
        print(c.logs())
        raise
    finally:
        c.stop()


def test_sigterm_ships_and_exits():
    c = Cluster(agent_args=["--window", "60s", "--flush-interval", "50ms"])
    try:
        c.start_scorer()
        c.start_agent()
        s = c.stream()
        s.sendall(ndjson(record(i) for i in range(1234)))
        assert sync(s, 1)
        t = time.time()
        rc = c.agent.kill(signal.SIGTERM, timeout=15)
        assert rc == 0, f"exit code {rc}"
        assert time.time() - t < 12
        assert not os.path.exists(os.path.join(c.sock_dir, "ingest.sock"))
        # the 60 s window was sealed and shipped on the way out
        assert c.scorer_records() == 1234, c.scorer_records()
        # a restart adds nothing twice
        c.start_agent()
        time.sleep(2)
        assert c.scorer_records() == 1234
    except Exception:
        print(c.logs())
        raise
    finally:
        c.stop()


def test_spool_bound_drops_oldest_exactly():
    """With the scorer away, a 1 MiB spool keeps the newest records and counts
    exactly the ones it dropped: after a restart the scorer receives
    accepted - dropped, no more, no less."""
    c = Cluster(agent_args=[*WINDOW, "--spool-max-bytes", "1MiB", "--segment-bytes", "64KiB",
                            "--max-live-windows", "1"])
    try:
        c.start_agent()  # the scorer is not running yet
        s = c.stream()
        rng = random.Random(7)  # incompressible ids and latencies: ~3 MiB of spool
        for chunk in range(10):
            s.sendall(ndjson(record(i, request_id="%032x" % rng.getrandbits(128),
                                    latency_ms=rng.random() * 1000) for i in range(10000)))
            assert sync(s, chunk)
        m = c.agent_metrics()
        accepted = m["vitals_agent_records_accepted_total"]
        dropped = m["vitals_agent_spool_dropped_records_total"]
        assert accepted == 100000 and dropped > 0, m
        assert m["vitals_agent_spool_bytes"] <= 1 << 20, m
        c.agent.kill()  # only the spool survives: what it dropped is gone for good
        c.start_scorer()
        c.start_agent()
        wait_shipped(c, accepted - dropped)
        print(f"  accepted={accepted:.0f} dropped={dropped:.0f} shipped={c.scorer_records()}")
    except Exception:
        print(c.logs())
        raise
    finally:
        c.stop()


def test_sigterm_with_no_grace_while_writing():
    """SIGTERM with --shutdown-grace 0 right after a record: the last frames
    are still being written when the shipper goes away. Exit 0, every time."""
    for i in range(8):
        c = Cluster(agent_args=["--shutdown-grace", "0", "--fsync", "always"])
        try:
            c.start_agent()  # no scorer: shipping fails, the spool keeps everything
            c.dgram(ndjson([record(i)]))
            time.sleep(0.05)
            rc = c.agent.kill(signal.SIGTERM, timeout=15)
            assert rc == 0, f"run {i}: exit code {rc}\n{c.agent.log()[-3000:]}"
        finally:
            c.stop()


def test_power_loss_behind_checkpoint():
    """The spool's tail is lost (power loss with --fsync interval) after its
    windows shipped: the checkpoint points past the end of the spool. New
    lines must still reach the scorer, under a new spool incarnation, rather
    than be skipped or refused as duplicates of old line numbers."""
    c = Cluster(agent_args=WINDOW)
    try:
        c.start_scorer()
        c.start_agent()
        s = c.stream()
        s.sendall(ndjson(record(i) for i in range(500)))
        assert sync(s, 1)
        wait_shipped(c, 500)
        c.agent.kill()
        spool = os.path.join(c.dir, "spool")
        for name in os.listdir(spool):  # what a power loss leaves of unsynced data
            if name.endswith(".seg"):
                open(os.path.join(spool, name), "w").close()
        c.start_agent()
        s = c.stream()
        s.sendall(ndjson(record(i) for i in range(300)))
        assert sync(s, 2)
        wait_shipped(c, 800)
        assert "past the end of the spool" in c.agent.log()
    except Exception:
        print(c.logs())
        raise
    finally:
        c.stop()


if __name__ == "__main__":
    r = Runner()
    for t in (test_cli, test_ingest_sync_rejects_idle, test_sigkill_agent,
              test_scorer_down_then_up, test_sigterm_ships_and_exits,
              test_spool_bound_drops_oldest_exactly, test_sigterm_with_no_grace_while_writing,
              test_power_loss_behind_checkpoint):
        r.run(t)
    r.finish()
