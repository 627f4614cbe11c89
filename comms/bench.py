"""Comms benchmarks: codec overhead, throughput against raw pyzmq, budget accuracy.

Each function measures one thing and returns plain numbers; `dwm-net bench comms` prints them.
"""

from __future__ import annotations

import multiprocessing
import time
from typing import Sequence

import numpy as np
import zmq

from .budget import SendQueue, parse_budget
from .codec import decode, encode, wire_size
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


def _receiver(endpoint: str, n: int, decode_frames: bool, out) -> None:
    """Child process: take ``n`` messages; report seconds from the first to the last."""
    ctx = zmq.Context()
    sub = ctx.socket(zmq.SUB)
    sub.linger = 0
    sub.rcvhwm = 0
    sub.connect(endpoint)
    sub.setsockopt(zmq.SUBSCRIBE, b"")
    try:
        if not sub.poll(30_000):
            out.send(None)
            return
        frames = sub.recv_multipart(copy=False)
        t0 = time.perf_counter()
        for _ in range(n - 1):
            frames = sub.recv_multipart(copy=False)
            if decode_frames:
                decode(frames)
        out.send(time.perf_counter() - t0)
    finally:
        sub.close()
        ctx.destroy(linger=0)


def _one_way(payload_bytes: int, n: int, frames: list[bytes], decode_frames: bool) -> float:
    """Messages/s seen by a receiver in another process (separate GILs, as between agents)."""
    mp = multiprocessing.get_context("spawn")
    ctx = zmq.Context()
    pub = ctx.socket(zmq.XPUB)
    pub.linger = 0
    pub.sndhwm = 0  # unbounded: the throughput run must not drop
    pub.bind("tcp://127.0.0.1:*")
    parent, child = mp.Pipe(duplex=False)
    proc = mp.Process(target=_receiver, daemon=True,
                      args=(pub.getsockopt_string(zmq.LAST_ENDPOINT), n, decode_frames, child))
    proc.start()
    try:
        if not pub.poll(30_000):  # the subscription message proves the subscriber is connected
            raise TimeoutError("bench: receiver did not subscribe within 30 s")
        pub.recv()
        for _ in range(n):
            pub.send_multipart(frames if decode_frames else [frames[-1]], copy=False)
        if not parent.poll(120):
            raise TimeoutError("bench: receiver did not report within 120 s")
        seconds = parent.recv()
        if seconds is None:
            raise TimeoutError("bench: receiver got no message")
        return (n - 1) / seconds
    finally:
        proc.join(5)
        if proc.is_alive():
            proc.kill()
        pub.close()
        ctx.destroy(linger=0)


def _transport_receiver(endpoint: str, n: int, out) -> None:
    """Child process: a ZmqTransport peer that takes ``n`` messages (first to last timed)."""
    from .transport import ZmqTransport

    t = ZmqTransport(1, "tcp://127.0.0.1:*", {0: endpoint}, parse_budget("unlimited"),
                     hwm=1_000_000)
    try:
        got = 0
        t0 = 0.0
        deadline = time.monotonic() + 120
        while got < n and time.monotonic() < deadline:
            batch = t.poll(1.0)
            if batch and got == 0:
                t0 = time.perf_counter()
            got += len(batch)
        out.send((time.perf_counter() - t0) if got >= n else None)
    finally:
        t.close()


def _transport_one_way(payload_bytes: int, n: int) -> float:
    """Messages/s through the whole transport: budget queue (unlimited), pump, poll, decode."""
    from .transport import ZmqTransport

    mp = multiprocessing.get_context("spawn")
    sender = ZmqTransport(0, "tcp://127.0.0.1:*", {}, parse_budget("unlimited"), expect=[1],
                          hwm=1_000_000, max_items=n + 1)
    parent, child = mp.Pipe(duplex=False)
    proc = mp.Process(target=_transport_receiver, daemon=True,
                      args=(sender.bound_endpoint, n, child))
    proc.start()
    try:
        if not sender.wait_for_peers(30):
            raise TimeoutError("bench: the receiving transport did not join within 30 s")
        msg = _params(payload_bytes)
        for _ in range(n):
            sender.send(msg)
            sender.pump()
        if not parent.poll(120):
            raise TimeoutError("bench: receiver did not report within 120 s")
        seconds = parent.recv()
        if seconds is None:
            raise TimeoutError("bench: the receiving transport did not get every message")
        return (n - 1) / seconds
    finally:
        proc.join(5)
        if proc.is_alive():
            proc.kill()
        sender.close()


def throughput(payload_bytes: int, n: int) -> dict[str, float]:
    """Raw pyzmq frames vs our encoded messages (encode, send, receive, decode), same payload."""
    frames = encode(_params(payload_bytes))
    raw = _one_way(payload_bytes, n, [bytes(payload_bytes)], decode_frames=False)
    ours = _one_way(payload_bytes, n, frames, decode_frames=True)
    transport = _transport_one_way(payload_bytes, n)
    return {
        "payload_bytes": payload_bytes,
        "messages": n,
        "raw_msgs_per_s": raw,
        "raw_mb_per_s": raw * payload_bytes / 1e6,
        "dwm_msgs_per_s": ours,
        "dwm_mb_per_s": ours * payload_bytes / 1e6,
        "ratio": ours / raw,
        "transport_msgs_per_s": transport,
        "transport_mb_per_s": transport * payload_bytes / 1e6,
        "transport_ratio": transport / raw,
    }


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
