"""Comms benchmarks: codec overhead, throughput against raw pyzmq, budget accuracy.

Each function measures one thing and returns plain numbers; `dwm-net bench comms` prints them.
"""

from __future__ import annotations

import multiprocessing
import resource
import statistics
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import zmq

from .budget import SendQueue, parse_budget
from .codec import decode, encode, wire_size
from .ledger import Ledger
from .messages import ParamsMsg


def _params(payload_bytes: int) -> ParamsMsg:
    return ParamsMsg(sender=0, arrays={"w": np.zeros(payload_bytes, dtype=np.uint8)})


def codec_overhead(payload_bytes: int) -> float:
    """Wire bytes over raw array bytes for one message carrying ``payload_bytes`` of array."""
    return wire_size(encode(_params(payload_bytes))) / payload_bytes


def _pair(ctx: zmq.Context) -> tuple[zmq.Socket, zmq.Socket]:
    """A PUB/SUB pair over tcp loopback, subscription settled before returning."""
    pub = ctx.socket(zmq.XPUB)
    pub.linger = 0
    pub.sndhwm = 0  # unbounded: the throughput run must not drop
    pub.bind("tcp://127.0.0.1:*")
    sub = ctx.socket(zmq.SUB)
    sub.linger = 0
    sub.rcvhwm = 0
    sub.connect(pub.getsockopt_string(zmq.LAST_ENDPOINT))
    sub.setsockopt(zmq.SUBSCRIBE, b"")
    if not pub.poll(5000):  # the subscription message proves the subscriber is connected
        raise TimeoutError("bench: subscriber did not connect within 5 s")
    pub.recv()
    return pub, sub


# --- throughput -------------------------------------------------------------------------------
#
# Every path runs the same protocol, sender here, receiver in a spawned process (its own GIL, as
# between agents): the sender sends one warm-up message and waits until the receiver says it has
# it; the receiver starts its clock as it says so; the sender then sends `n` messages as fast
# as it can and the receiver stops its clock at the n-th. So the clock covers exactly the n
# messages (no connection setup, no warm-up), and only the receiver's clock is used.

_COPY_THRESHOLD = zmq.COPY_THRESHOLD  # pyzmq's default: frames below it are copied anyway


def _receiver(endpoint: str, n: int, decode_frames: bool, copy: bool, conn) -> None:
    """Child process: a SUB socket that takes a warm-up message, then ``n`` timed ones
    (raw: one frame each, ``copy`` as given; decode: multipart, decoded)."""
    ctx = zmq.Context()
    sub = ctx.socket(zmq.SUB)
    sub.linger = 0
    sub.rcvhwm = 0
    sub.connect(endpoint)
    sub.setsockopt(zmq.SUBSCRIBE, b"")
    try:
        if not sub.poll(30_000):
            conn.send(None)
            return
        if decode_frames:
            decode(_recv_frames(sub))  # the warm-up message
        else:
            sub.recv(copy=copy)
        conn.send("ready")
        t0, c0 = time.perf_counter(), _cpu_s()
        if decode_frames:
            for _ in range(n):
                decode(_recv_frames(sub))
        else:
            for _ in range(n):
                sub.recv(copy=copy)
        conn.send((time.perf_counter() - t0, _cpu_s() - c0))
    finally:
        sub.close()
        ctx.destroy(linger=0)


def _recv_frames(sub: zmq.Socket) -> list:
    """One multipart message, received as ZmqTransport receives it (see its `_recv_frames`)."""
    frame = sub.recv(copy=False)
    frames = [frame.bytes if len(frame) < _COPY_THRESHOLD else frame]
    while frame.more:
        frame = sub.recv(copy=False)
        frames.append(frame)
    return frames


def _await_ready(conn, proc) -> None:
    if not conn.poll(30) or conn.recv() != "ready":
        raise TimeoutError("bench: the receiver did not get the warm-up message within 30 s")


def _cpu_s() -> float:
    """CPU seconds of this process so far, all its threads (ZeroMQ's I/O thread included)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class _Run(NamedTuple):
    msgs_per_s: float
    sender_cpu_us: float  # CPU µs per message in the sending process
    receiver_cpu_us: float  # and in the receiving one


def _await_run(conn, n: int, sender_cpu_s: float) -> _Run:
    if not conn.poll(300):
        raise TimeoutError("bench: the receiver did not report within 300 s")
    report = conn.recv()
    if report is None:
        raise TimeoutError("bench: the receiver did not get every message")
    seconds, receiver_cpu_s = report
    return _Run(n / seconds, 1e6 * sender_cpu_s / n, 1e6 * receiver_cpu_s / n)


def _one_way(payload_bytes: int, n: int, mode: str) -> _Run:
    """Messages/s of a pyzmq XPUB -> SUB stream over tcp loopback, receiver in another process.

    "raw": raw pyzmq, one frame of ``payload_bytes`` per message, the same bytes object every
    time (nothing to serialize: the floor of what pyzmq costs), sent and received the way
    that is fastest for pyzmq (copied below its copy threshold, zero-copy above). The goal's
    baseline.
    "raw_fresh": the same, but each message a new bytes object copied from the array
    (`ndarray.tobytes`), as any sender of changing data has: a reference only.
    "codec": every message encoded here (`encode`, which also copies the array once, as a
    snapshot) and decoded there (`decode`), over the same sockets; frames sent and received
    as ZmqTransport does.
    """
    codec = mode == "codec"
    mp = multiprocessing.get_context("spawn")
    ctx = zmq.Context()
    pub = ctx.socket(zmq.XPUB)
    pub.linger = 0
    pub.sndhwm = 0  # unbounded: the throughput run must not drop
    pub.bind("tcp://127.0.0.1:*")
    parent, child = mp.Pipe()
    # codec: zero-copy frames, as ZmqTransport receives
    copy = False if codec else payload_bytes < _COPY_THRESHOLD
    proc = mp.Process(target=_receiver, daemon=True,
                      args=(pub.getsockopt_string(zmq.LAST_ENDPOINT), n, codec, copy, child))
    proc.start()
    try:
        if not pub.poll(30_000):  # the subscription message proves the subscriber is connected
            raise TimeoutError("bench: receiver did not subscribe within 30 s")
        pub.recv()
        # raw reuses one buffer: zero-copy from pyzmq's copy threshold up is fastest for it.
        # Fresh buffers (raw_fresh, codec) are copied into libzmq, as ZmqTransport does: for
        # them zero-copy is no faster, and it needs pyzmq's garbage-collector thread.
        send_copy = payload_bytes < _COPY_THRESHOLD if mode == "raw" else True
        if codec:
            msg = _params(payload_bytes)
            pub.send_multipart(encode(msg), copy=send_copy)
            _await_ready(parent, proc)
            c0 = _cpu_s()
            for _ in range(n):
                pub.send_multipart(encode(msg), copy=send_copy)
        elif mode == "raw_fresh":
            array = _params(payload_bytes).arrays["w"]
            pub.send(array.tobytes(), copy=send_copy)
            _await_ready(parent, proc)
            c0 = _cpu_s()
            for _ in range(n):
                pub.send(array.tobytes(), copy=send_copy)
        else:
            payload = bytes(payload_bytes)
            pub.send(payload, copy=send_copy)
            _await_ready(parent, proc)
            c0 = _cpu_s()
            for _ in range(n):
                pub.send(payload, copy=send_copy)
        # the receiver reports after the last message: the I/O thread's sending is counted too
        return _await_run(parent, n, _cpu_s() - c0)
    finally:
        proc.join(5)
        if proc.is_alive():
            proc.kill()
        pub.close()
        ctx.destroy(linger=0)


def _transport_receiver(endpoint: str, n: int, conn) -> None:
    """Child process: a ZmqTransport peer that takes a warm-up message, then ``n`` timed ones."""
    from .transport import ZmqTransport

    t = ZmqTransport(1, "tcp://127.0.0.1:*", {0: endpoint}, parse_budget("unlimited"),
                     hwm=1_000_000)
    try:
        deadline = time.monotonic() + 30
        while not t.poll(1.0):
            if time.monotonic() > deadline:
                conn.send(None)
                return
        conn.send("ready")
        t0, c0 = time.perf_counter(), _cpu_s()
        got = 0
        deadline = time.monotonic() + 300
        while got < n and time.monotonic() < deadline:
            got += len(t.poll(1.0))
        conn.send((time.perf_counter() - t0, _cpu_s() - c0) if got >= n else None)
    finally:
        t.close()


def _transport_one_way(payload_bytes: int, n: int) -> _Run:
    """Messages/s through the whole transport path: `ZmqTransport.send` (encode, offer to the
    unlimited budget queue) and `pump` (drain, ledger line to a file, XPUB send) here; `poll`
    (SUB receive, decode, validation) in the receiving process."""
    from .transport import ZmqTransport

    mp = multiprocessing.get_context("spawn")
    with tempfile.TemporaryDirectory(prefix="dwm-bench-") as tmp:
        ledger = Ledger(Path(tmp) / "ledger.jsonl")
        sender = ZmqTransport(0, "tcp://127.0.0.1:*", {}, parse_budget("unlimited"),
                              expect=[1], hwm=1_000_000, max_items=n + 1, ledger=ledger)
        parent, child = mp.Pipe()
        proc = mp.Process(target=_transport_receiver, daemon=True,
                          args=(sender.bound_endpoint, n, child))
        proc.start()
        try:
            if not sender.wait_for_peers(30):
                raise TimeoutError("bench: the receiving transport did not join within 30 s")
            msg = _params(payload_bytes)
            sender.send(msg)
            sender.pump()
            _await_ready(parent, proc)
            c0 = _cpu_s()
            for _ in range(n):
                sender.send(msg)
                sender.pump()
            run = _await_run(parent, n, _cpu_s() - c0)
            sent = sender.stats()["sent"]
            if sent != n + 1:
                raise RuntimeError(f"bench: the transport sent {sent} of {n + 1} messages")
            return run
        finally:
            proc.join(5)
            if proc.is_alive():
                proc.kill()
            sender.close()
            ledger.close()


def throughput(payload_bytes: int, n: int, repeats: int = 1) -> dict[str, Any]:
    """Raw pyzmq vs the codec alone vs the whole transport path, same payload, same run.

    The paths (raw, raw_fresh and codec: see `_one_way`; transport: `_transport_one_way`) run
    one after the other, ``repeats`` times (interleaved, so that a load change on the machine
    hits all of them); rates are the medians over the repeats and the ratios the medians of
    the per-repeat ratios (raw is the goal's baseline). ``*_range`` hold the lowest and
    highest; ``*_cpu_us`` the CPU µs per message of each process (all its threads).
    """
    if repeats < 1:
        raise ValueError(f"throughput: repeats must be >= 1, got {repeats}")
    runs: dict[str, list[_Run]] = {"raw": [], "raw_fresh": [], "dwm": [], "transport": []}
    for _ in range(repeats):
        runs["raw"].append(_one_way(payload_bytes, n, "raw"))
        runs["raw_fresh"].append(_one_way(payload_bytes, n, "raw_fresh"))
        runs["dwm"].append(_one_way(payload_bytes, n, "codec"))
        runs["transport"].append(_transport_one_way(payload_bytes, n))
    ratio = [d.msgs_per_s / r.msgs_per_s for d, r in zip(runs["dwm"], runs["raw"])]
    transport_ratio = [t.msgs_per_s / r.msgs_per_s
                       for t, r in zip(runs["transport"], runs["raw"])]
    out: dict[str, Any] = {"payload_bytes": payload_bytes, "messages": n, "repeats": repeats}
    for path, path_runs in runs.items():
        rates = [r.msgs_per_s for r in path_runs]
        rate = statistics.median(rates)
        out[f"{path}_msgs_per_s"] = rate
        out[f"{path}_mb_per_s"] = rate * payload_bytes / 1e6
        out[f"{path}_msgs_per_s_range"] = [min(rates), max(rates)]
        # CPU µs per message in each process (medians): where the time goes
        out[f"{path}_sender_cpu_us"] = statistics.median(r.sender_cpu_us for r in path_runs)
        out[f"{path}_receiver_cpu_us"] = statistics.median(r.receiver_cpu_us for r in path_runs)
    out["ratio"] = statistics.median(ratio)
    out["ratio_range"] = [min(ratio), max(ratio)]
    out["transport_ratio"] = statistics.median(transport_ratio)
    out["transport_ratio_range"] = [min(transport_ratio), max(transport_ratio)]
    # reference only (not the goal metric): against raw pyzmq sending a fresh copy each time
    out["transport_ratio_vs_raw_fresh"] = statistics.median(
        t.msgs_per_s / r.msgs_per_s for t, r in zip(runs["transport"], runs["raw_fresh"]))
    return out


def window_violations(sends: Sequence[tuple[float, int]], rate: float, burst: float) -> int:
    """Windows [t_i, t_j] of the send log in which bytes sent exceed rate * (t_j - t_i) + burst."""
    times = np.array([t for t, _ in sends])
    sizes = np.array([b for _, b in sends], dtype=np.float64)
    csum = np.concatenate([[0.0], np.cumsum(sizes)])
    bad = 0
    for i in range(len(sends)):
        sent = csum[i + 1 :] - csum[i]  # bytes in [t_i, t_j] for j >= i
        allowed = rate * (times[i:] - times[i]) + burst + 1e-6
        bad += int(np.count_nonzero(sent > allowed))
    return bad


def budget_accuracy(budget_text: str, seconds: float, item_bytes: int = 1500) -> dict[str, float]:
    """Keep a queue backlogged for ``seconds`` of real time under ``budget_text``; measure.

    Items go over a real tcp loopback socket. Returns violations of the rate·W + burst bound
    over every window of the send log, and utilization = (bytes sent − burst) / (rate · elapsed):
    the share of the refill the queue really used, so the bucket's initial burst cannot inflate it.
    """
    budget = parse_budget(budget_text)
    if budget.rate is None or budget.per != "s":
        raise ValueError(f"budget accuracy needs a bytes-per-second budget, got {budget_text!r}")
    ctx = zmq.Context()
    sends: list[tuple[float, int]] = []
    try:
        pub, sub = _pair(ctx)
        msg = _params(item_bytes)
        frames = encode(msg)
        wire = wire_size(frames)
        now = [0.0]

        def clock() -> float:  # the send log uses the time the bucket saw
            now[0] = time.monotonic()
            return now[0]

        queue = SendQueue(budget, max_items=64, max_age_s=None, clock=clock)

        def send(item: list[bytes]) -> bool:
            pub.send_multipart(item, copy=False)
            sends.append((now[0], wire))
            return True

        t0 = time.monotonic()
        while time.monotonic() - t0 < seconds:
            while len(queue) < 32:
                queue.offer(frames, 1.0, wire, "params", "0->*", item_bytes, 0)
            queue.drain(send)
            while sub.poll(0):
                sub.recv_multipart(copy=False)
            time.sleep(0.001)  # pacing only: the bucket, not the sleep, bounds the rate
        elapsed = time.monotonic() - t0
        pub.close()
        sub.close()
    finally:
        ctx.destroy(linger=0)
    sent = sum(b for _, b in sends)
    return {
        "budget": budget_text,
        "rate_bytes_per_s": budget.rate,
        "burst_bytes": budget.burst,
        "seconds": elapsed,
        "bytes_sent": sent,
        "violations": window_violations(sends, budget.rate, budget.burst),
        # refill actually used: bytes beyond the initial burst over what the rate allowed
        "utilization": (sent - budget.burst) / (budget.rate * elapsed),
    }
