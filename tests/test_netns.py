"""A byte-budgeted sender and a receiver in two network namespaces over a tc-shaped veth link.

Checks, end to end across a real (if virtual) network link: every send the ledger records
arrives, the ledger's wire bytes cover what arrived, and the ledger's send times keep the
budget (bytes over any window <= rate * W + burst). Needs root and iproute2; skips otherwise.
"""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from conftest import Link, _ip

REPO = Path(__file__).resolve().parents[1]
RATE = 10_000  # the budget, bytes/s ("10KB/s")
BURST = 4_000  # the budget's burst, bytes
N_MESSAGES = 30  # ~2.3 KB each: about 6 s under the budget
CLOCK_SLACK_S = 0.05  # ledger stamps lag the bucket's clock by a send and a write


RECEIVER = textwrap.dedent("""
    import json, sys, time
    import zmq
    from comms.codec import decode, payload_size
    from comms.messages import StopMsg

    addr, out, deadline = sys.argv[1], sys.argv[2], time.monotonic() + float(sys.argv[3])
    ctx = zmq.Context()
    pull = ctx.socket(zmq.PULL)
    pull.linger = 0
    port = pull.bind_to_random_port(f"tcp://{addr}")
    print(port, flush=True)  # the parent starts the sender only once we are bound
    seqs, payload, frame_bytes, stopped = [], 0, 0, False
    while not stopped and time.monotonic() < deadline:
        if not pull.poll(100):
            continue
        frames = pull.recv_multipart()
        msg = decode(frames)
        if isinstance(msg, StopMsg):
            stopped = True
            continue
        seqs.append(msg.seq)
        payload += payload_size(msg)
        frame_bytes += sum(len(f) for f in frames)
    with open(out, "w") as f:
        json.dump({"seqs": seqs, "payload_bytes": payload, "frame_bytes": frame_bytes,
                   "stopped": stopped}, f)
    pull.close()
    ctx.term()
""")

SENDER = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    import numpy as np
    import zmq
    from comms.budget import SendQueue, parse_budget
    from comms.codec import encode, payload_size, wire_size
    from comms.ledger import Ledger, link_name
    from comms.messages import ExperienceMsg, StopMsg

    endpoint, ledger_path, n, rate, burst, deadline = (
        sys.argv[1], Path(sys.argv[2]), int(sys.argv[3]), sys.argv[4], float(sys.argv[5]),
        time.monotonic() + float(sys.argv[6]))
    ctx = zmq.Context()
    push = ctx.socket(zmq.PUSH)
    push.linger = 10_000  # bounded: deliver what was sent, then give up
    push.connect(endpoint)  # PUSH queues from connect on, so nothing is lost at start

    def send(frames):
        try:
            push.send_multipart(frames, zmq.NOBLOCK)
            return True
        except zmq.Again:
            return False

    rng = np.random.default_rng(0)
    t, d, a = 8, 64, 9
    with Ledger(ledger_path) as ledger:
        queue = SendQueue(parse_budget(rate, burst=burst), max_items=n, max_age_s=None,
                          ledger=ledger)
        for i in range(n):
            msg = ExperienceMsg(
                sender=0, seq=i, step=i, obs=rng.standard_normal((t, d), dtype=np.float32),
                actions=rng.integers(0, a, t, dtype=np.uint8), rewards=np.zeros(t, np.float32),
                terms=np.zeros(t, bool), avail=np.ones((t, a), bool), n_actions=a)
            frames = encode(msg)
            queue.offer(frames, score=0.0, wire_bytes=wire_size(frames), kind="experience",
                        link=link_name(0, 1), payload_bytes=payload_size(msg), env_step=i)
        while len(queue) and time.monotonic() < deadline:
            if not queue.drain(send):
                time.sleep(0.005)  # pacing while the bucket refills, not synchronization
    push.send_multipart(encode(StopMsg(sender=0, reason="done")))
    push.close()
    ctx.term()
""")


def _spawn(ns: str, script: Path, *args: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.Popen(["ip", "netns", "exec", ns, sys.executable, str(script), *args],
                            cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


def _read_line(proc: subprocess.Popen, timeout_s: float) -> str:
    ready, _, _ = select.select([proc.stdout], [], [], timeout_s)
    if not ready:
        raise AssertionError(f"receiver printed nothing within {timeout_s} s")
    line = proc.stdout.readline()
    if not line:
        raise AssertionError(f"receiver exited early: {proc.communicate(timeout=5)[1]}")
    return line.strip()


def _max_excess(records: list[dict]) -> float:
    """Largest (bytes sent in [t_i, t_j]) - rate * (t_j - t_i) over all windows."""
    worst = -float("inf")
    for i, first in enumerate(records):
        total = 0
        for last in records[i:]:
            total += last["wire_bytes"]
            worst = max(worst, total - RATE * (last["t"] - first["t"]))
    return worst


@pytest.mark.timeout(60)
def test_budgeted_send_across_shaped_link(link: Link, tmp_path: Path) -> None:
    (tmp_path / "receiver.py").write_text(RECEIVER)
    (tmp_path / "sender.py").write_text(SENDER)
    out, ledger_path = tmp_path / "received.json", tmp_path / "ledger.jsonl"
    qdisc = _ip("ip", "netns", "exec", link.ns_a, "tc", "qdisc", "show", "dev", link.dev_a)
    assert "tbf" in qdisc.stdout, qdisc.stdout + qdisc.stderr

    procs = [_spawn(link.ns_b, tmp_path / "receiver.py", link.addr_b, str(out), "30")]
    try:
        port = _read_line(procs[0], 15)
        procs.append(_spawn(link.ns_a, tmp_path / "sender.py", f"tcp://{link.addr_b}:{port}",
                            str(ledger_path), str(N_MESSAGES), f"{RATE}B/s", str(BURST), "20"))
        start = time.monotonic()
        for proc in reversed(procs):
            _, err = proc.communicate(timeout=max(1.0, 40 - (time.monotonic() - start)))
            assert proc.returncode == 0, err
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()

    received = json.loads(out.read_text())
    records = [json.loads(line) for line in ledger_path.read_text().splitlines()]
    sent = [r for r in records if r["outcome"] == "sent"]
    assert received["stopped"], "the receiver timed out before the sender's stop message"
    assert len(sent) == len(records) == N_MESSAGES, "the ledger recorded drops"
    assert len(received["seqs"]) == len(sent)
    assert received["seqs"] == list(range(N_MESSAGES))  # all, once, in score-then-FIFO order
    wire = sum(r["wire_bytes"] for r in sent)
    assert wire >= received["frame_bytes"] >= received["payload_bytes"]
    assert sum(r["payload_bytes"] for r in sent) == received["payload_bytes"]
    excess = _max_excess(sent)
    assert excess <= BURST + RATE * CLOCK_SLACK_S, f"budget exceeded by {excess:.0f} B"
