#!/usr/bin/env python3
"""test_crashloop.py - issue 5's exactly-once test, downstream of the agent.

A client sends 200,000 records in 200 chunks of 1,000, each chunk closed by
a {"sync": i}, and never resends. Meanwhile a background thread SIGKILLs the
agent 5 times and the scorer 5 times at random moments while the client
sends (seeded; the seed is printed, VITALS_SEED repeats the schedule), restarting each at once. After an
agent kill the client reconnects and goes on with the next chunk.

What must hold, per chunk (every chunk is its own series: label chunk=i, so
/v1/series gives an independent count for each):
- a chunk whose sync was answered is counted exactly once (1,000);
- a chunk whose sync went unanswered is counted at most once (<= 1,000);
hence acked <= scorer total <= sent, and no batch was applied twice. The
scorer's duplicate counter (`vitals_scorer_batches_duplicate_total`, reset by
each restart, so read before every kill and at the end) shows the replays it
refused.
"""
import json
import os
import random
import socket
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(__file__))
from harness import Cluster, Runner, http_get, sync, wait_for  # noqa: E402

CHUNKS = 200
PER_CHUNK = 1000
KILLS = 5  # of each daemon
PIECES = 10  # a chunk goes out in pieces PIECE_GAP_S apart, so that kills also land
PIECE_GAP_S = 0.02  # in the middle of a chunk (some of it spooled, the rest lost)


def chunk_bytes(i, rng):
    lines = []
    for j in range(PER_CHUNK):
        lines.append(json.dumps({
            "service": "crash", "model": "gpt-4o", "provider": "openai",
            "latency_ms": round(rng.lognormvariate(6, 0.5), 3),
            "status": "error" if rng.random() < 0.02 else "ok",
            "output_tokens": rng.randint(1, 500), "labels": {"chunk": str(i)},
            "request_id": f"c{i}-{j}"}, separators=(",", ":")))
    step = PER_CHUNK // PIECES
    return [("\n".join(lines[k:k + step]) + "\n").encode() for k in range(0, PER_CHUNK, step)]


class Killer(threading.Thread):
    """Kills at random moments while the client sends: the plan is 10 random
    chunks, and a random delay (0-300 ms) after the client starts each one,
    so it holds however fast the machine sends."""

    def __init__(self, c, rng):
        super().__init__(daemon=True)
        self.c = c
        at = sorted(rng.sample(range(2, CHUNKS - 3), 2 * KILLS))
        who = ["agent"] * KILLS + ["scorer"] * KILLS
        rng.shuffle(who)
        self.plan = [(k, rng.uniform(0, 0.3), w) for k, w in zip(at, who)]
        self.progress = 0  # the chunk the client is sending
        self.done = []
        self.dups = 0.0
        self.error = None
        self.t0 = None

    def run(self):
        try:
            self.t0 = time.time()
            for chunk, delay, who in self.plan:
                while self.progress < chunk:
                    time.sleep(0.005)
                time.sleep(delay)
                if who == "agent":
                    self.c.agent.kill()
                    self.c.start_agent()
                else:
                    try:
                        self.dups += self.c.scorer_metrics()[
                            "vitals_scorer_batches_duplicate_total"]
                    except OSError:
                        pass  # just restarted and not answering yet: nothing refused
                    self.c.scorer.kill()
                    self.c.start_scorer()
                self.done.append((chunk, round(time.time() - self.t0, 1), who))
        except Exception as e:  # noqa: BLE001 - reported by the main thread
            self.error = e


def connect(c, timeout=30):
    deadline = time.time() + timeout
    while True:
        try:
            return c.stream()
        except OSError:
            if time.time() > deadline:
                raise
            time.sleep(0.05)


def per_chunk_counts(c):
    _, body = http_get(f"http://127.0.0.1:{c.http}/v1/series", timeout=10)
    d = json.loads(body)
    out = {}
    for s in d["series"]:
        k = int(s["labels"]["chunk"])
        out[k] = out.get(k, 0) + s["records"]
    return d["records"], out


def test_crashloop_exactly_once():
    seed = int(os.environ.get("VITALS_SEED", time.time_ns() % 1_000_000))
    print(f"  seed {seed} (VITALS_SEED={seed} repeats this schedule)")
    rng = random.Random(seed)
    data = [chunk_bytes(i, random.Random(i)) for i in range(CHUNKS)]
    c = Cluster(agent_args=["--window", "1s", "--flush-interval", "50ms", "--backoff-max", "1s"])
    killer = Killer(c, rng)
    try:
        c.start_scorer()
        c.start_agent()
        acked, unanswered = set(), set()
        s = None
        t0 = time.time()
        killer.start()
        for i in range(CHUNKS):
            killer.progress = i
            ok = False
            try:
                if s is None:
                    s = connect(c)
                for piece in data[i]:
                    s.sendall(piece)
                    time.sleep(PIECE_GAP_S)
                ok = sync(s, i)
            except (OSError, socket.timeout):
                ok = False
            (acked if ok else unanswered).add(i)
            if not ok:
                if s is not None:
                    s.close()
                s = None
        t_send = time.time() - t0
        if s is not None:
            s.close()
        killer.join(120)
        assert not killer.is_alive(), "the killer thread is stuck"
        assert killer.error is None, f"killer: {killer.error!r}"
        assert len(killer.done) == 2 * KILLS, killer.done
        sent, ack_n = CHUNKS * PER_CHUNK, len(acked) * PER_CHUNK
        # let everything ship: the agent has nothing unshipped and the total is stable
        wait_for("the agent to ship everything",
                 lambda: c.agent_metrics()["vitals_agent_oldest_unshipped_age_seconds"] == 0,
                 timeout=90, interval=0.25)
        last = [None, 0.0]

        def stable():
            n = c.scorer_records()
            if n != last[0]:
                last[0], last[1] = n, time.time()
            return n >= ack_n and time.time() - last[1] >= 3
        wait_for("the scorer's count to settle", stable, timeout=60, interval=0.25)
        total, per = per_chunk_counts(c)
        dups = killer.dups + c.scorer_metrics()["vitals_scorer_batches_duplicate_total"]
        m = c.agent_metrics()
        print(f"  kills (during chunk, s after start, who): {killer.done}")
        print(f"  sent {sent} in {t_send:.1f}s, acked {ack_n} ({len(acked)} chunks), unanswered "
              f"chunks {sorted(unanswered)}")
        print(f"  scorer final count {total}; duplicates refused (summed over scorer lives) "
              f"{dups:.0f}; agent (last life) batches sent {m['vitals_agent_batches_sent_total']:.0f}"
              f" acked {m['vitals_agent_batches_acked_total']:.0f} retried "
              f"{m['vitals_agent_batches_retried_total']:.0f} duplicate "
              f"{m['vitals_agent_batches_duplicate_total']:.0f}")
        partial = {i: per.get(i, 0) for i in sorted(unanswered)}
        print(f"  unanswered chunks as counted by the scorer: {partial}")
        errors = [f"acked chunk {i}: counted {per.get(i, 0)}, expected exactly {PER_CHUNK}"
                  for i in sorted(acked) if per.get(i, 0) != PER_CHUNK]
        errors += [f"unanswered chunk {i}: counted {per[i]} > {PER_CHUNK}"
                   for i in sorted(unanswered) if per.get(i, 0) > PER_CHUNK]
        errors += [f"unknown chunk {k}" for k in per if not 0 <= k < CHUNKS]
        if sum(per.values()) != total:
            errors.append(f"series sum {sum(per.values())} != total {total}")
        if not ack_n <= total <= sent:
            errors.append(f"total {total} not within [acked {ack_n}, sent {sent}]")
        assert not errors, "\n".join(errors[:20])
        assert len(acked) >= CHUNKS - 2 * KILLS, f"only {len(acked)} chunks acknowledged"
        assert m["vitals_agent_batches_rejected_total"] == 0
    except Exception:
        print(c.logs())
        raise
    finally:
        c.stop()


if __name__ == "__main__":
    r = Runner()
    r.run(test_crashloop_exactly_once)
    r.finish()
