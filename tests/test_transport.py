"""Transports: in-process (fake clock) and ZeroMQ (random tcp ports, one process and two)."""
from __future__ import annotations

import logging
import os
import select
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import msgpack
import numpy as np
import pytest
import zmq

from comms.budget import Budget, parse_budget
from comms.codec import encode
from comms.ledger import Ledger
from comms.messages import ExperienceMsg, Message, StopMsg
from comms.sockets import MAX_FRAME_BYTES, EndpointError
from comms.transport import InProcHub, InProcTransport, ZmqTransport, hello_topic

ROOT = Path(__file__).resolve().parents[1]
ANY_PORT = "tcp://127.0.0.1:*"
UNLIMITED = parse_budget("unlimited")


class FakeClock:
    def __init__(self, t: float = 0.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def experience(sender: int, seq: int, t: int = 4, d: int = 8) -> ExperienceMsg:
    rng = np.random.default_rng(seq)
    return ExperienceMsg(sender=sender, seq=seq, step=seq,
                         obs=rng.standard_normal((t, d)).astype(np.float32),
                         actions=np.arange(t, dtype=np.uint8),
                         rewards=np.zeros(t, np.float32), terms=np.zeros(t, bool),
                         avail=np.ones((t, 1), np.uint8), n_actions=5)


def until(predicate: Callable[[], bool], timeout_s: float, step: Callable[[], object]) -> bool:
    """Run `step` until `predicate` holds or the deadline passes (no sleeps)."""
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            return False
        step()
    return True


def exchange(transports: list, timeout_s: float, want: dict[int, int]) -> dict[int, list[Message]]:
    """Pump and poll every transport until agent i received want[i] messages."""
    got: dict[int, list[Message]] = {t.agent_id: [] for t in transports}

    def step() -> None:
        for t in transports:
            t.pump()
            got[t.agent_id] += t.poll(0.01)

    ok = until(lambda: all(len(got[i]) >= n for i, n in want.items()), timeout_s, step)
    assert ok, {i: len(m) for i, m in got.items()}
    return got


# --- in-process -------------------------------------------------------------------------------

@pytest.mark.timeout(10)
def test_inproc_three_agents_exchange_and_account_bytes(tmp_path: Path) -> None:
    clock = FakeClock()
    hub = InProcHub()
    ledgers = [Ledger(tmp_path / f"ledger{i}.jsonl", clock) for i in range(3)]
    agents = [InProcTransport(hub, i, UNLIMITED, ledger=ledgers[i], clock=clock)
              for i in range(3)]
    for a in agents:
        for seq in range(5):
            assert a.send(experience(a.agent_id, seq))
    got = exchange(agents, 5, {0: 10, 1: 10, 2: 10})
    for a in agents:
        senders = sorted(m.sender for m in got[a.agent_id])
        assert senders == sorted([p for p in range(3) if p != a.agent_id] * 5)
        assert all(isinstance(m, ExperienceMsg) for m in got[a.agent_id])
        assert a.peers() == {p: "alive" for p in range(3) if p != a.agent_id}
        assert sorted(a.events()) == [("joined", p) for p in range(3) if p != a.agent_id]
        stats = a.stats()
        assert stats["sent"] == 5 and stats["received"]["experience"] == 10
        assert stats["heartbeats"]["sent"] == 1 and stats["heartbeats"]["received"] == 2
    wire = len(b"".join(encode(experience(0, 0))))
    summary = ledgers[0].summary()["streams"]
    assert summary["experience"]["0->*"]["sent"] == 5
    assert summary["experience"]["0->*"]["wire_bytes_sent"] > 5 * wire
    assert summary["heartbeat"]["0->*"]["sent"] == 1
    for a, ledger in zip(agents, ledgers):
        a.close()
        a.close()  # idempotent
        ledger.close()
    assert hub.members() == set()


@pytest.mark.timeout(10)
def test_inproc_budget_drops_are_counted_and_in_the_ledger() -> None:
    clock = FakeClock()
    hub = InProcHub()
    ledger = Ledger(None, clock)
    one = experience(0, 0)
    size = sum(len(f) + 9 for f in encode(one))  # generous upper bound on its wire size
    tiny = Budget(rate=size, per="step", burst=size)  # about one message per step
    a = InProcTransport(hub, 0, tiny, ledger=ledger, clock=clock, max_items=3)
    b = InProcTransport(hub, 1, UNLIMITED, clock=clock)
    offered = 10
    for seq in range(offered):
        a.send(experience(0, seq), score=float(seq))
    a.pump()
    stats = a.stats()
    assert stats["sent"] == 1 and stats["dropped"]["overflow"] == offered - 3
    a.advance_steps(1)
    a.pump()
    received = b.poll(0)
    assert [m.seq for m in received] == [9, 8]  # highest score first
    streams = ledger.summary()["streams"]["experience"]["0->*"]
    assert streams["sent"] == 2 and streams["dropped_by_reason"]["overflow"] == offered - 3
    assert a.stats()["queued"] == 1
    a.close()
    b.close()


@pytest.mark.timeout(10)
def test_inproc_heartbeat_loss_and_return_on_a_fake_clock() -> None:
    clock = FakeClock()
    hub = InProcHub()
    agents = [InProcTransport(hub, i, UNLIMITED, clock=clock, heartbeat_s=1.0,
                              heartbeat_misses=3) for i in range(3)]

    def tick(active: list[InProcTransport], seconds: float) -> None:
        clock.t += seconds
        for t in active:
            t.pump()
        for t in active:
            t.poll(0)

    tick(agents, 0)
    assert agents[0].peers() == {1: "alive", 2: "alive"}
    agents[0].events()
    for _ in range(3):
        tick(agents[:2], 1.0)  # agent 2 is silent for 3 s: not yet more than 3 misses
    assert agents[0].peers()[2] == "alive"
    tick(agents[:2], 0.5)
    assert agents[0].peers() == {1: "alive", 2: "lost"}
    assert agents[0].events() == [("lost", 2)]
    assert agents[1].events()[-1] == ("lost", 2)
    tick(agents, 0.5)  # agent 2 pumps again: its heartbeat brings it back
    assert agents[0].peers() == {1: "alive", 2: "alive"}
    assert agents[0].events() == [("back", 2)]
    for t in agents:
        t.close()


@pytest.mark.timeout(10)
def test_inproc_hwm_refusal_is_a_counted_drop() -> None:
    hub = InProcHub(hwm=2)
    a = InProcTransport(hub, 0, UNLIMITED, clock=FakeClock())
    InProcTransport(hub, 1, UNLIMITED, clock=FakeClock())  # never reads
    for seq in range(5):
        a.send(experience(0, seq))
    a.pump()  # the heartbeat takes one inbox slot
    stats = a.stats()
    assert stats["sent"] == 1 and stats["dropped"]["hwm"] == 4 and stats["hwm_drops"] == 4


@pytest.mark.timeout(10)
def test_inproc_garbage_is_counted_and_rate_limited(caplog: pytest.LogCaptureFixture) -> None:
    hub = InProcHub()
    a = InProcTransport(hub, 0, UNLIMITED, clock=FakeClock())
    for _ in range(50):
        hub.deliver(0, [b"\xff\x00garbage"])
    hub.deliver(0, encode(experience(0, 1)))  # claims to come from agent 0 itself
    hub.deliver(0, encode(experience(1, 2)))
    with caplog.at_level(logging.WARNING, logger="comms.transport"):
        msgs = a.poll(0)
    assert [m.seq for m in msgs] == [2]
    assert a.stats()["rejected"] == {"malformed": 50, "own_id": 1}
    assert len([r for r in caplog.records if "malformed" in r.getMessage()]) == 1
    a.close()


# --- ZeroMQ, one process ----------------------------------------------------------------------

def mesh(ctx: zmq.Context, n: int, **kwargs) -> list[ZmqTransport]:
    agents = [ZmqTransport(i, ANY_PORT, {}, UNLIMITED, ctx=ctx, **kwargs) for i in range(n)]
    for a in agents:
        a.connect_peers({b.agent_id: b.bound_endpoint for b in agents if b is not a})
    return agents


@pytest.mark.timeout(20)
def test_zmq_three_transports_deliver_everything(ctx: zmq.Context) -> None:
    agents = mesh(ctx, 3)
    try:
        assert all(a.bound_endpoint.startswith("tcp://127.0.0.1:") for a in agents)
        assert all(a.wait_for_peers(5) for a in agents)
        for a in agents:
            for seq in range(20):
                assert a.send(experience(a.agent_id, seq))
        got = exchange(agents, 10, {0: 40, 1: 40, 2: 40})
        for a in agents:
            counts = {p: sorted(m.seq for m in got[a.agent_id] if m.sender == p)
                      for p in range(3) if p != a.agent_id}
            assert counts == {p: list(range(20)) for p in counts}
            stats = a.stats()
            assert stats["sent"] == 20 and stats["rejected"] == {}
            assert set(a.peers()) == {p for p in range(3) if p != a.agent_id}
    finally:
        for a in agents:
            a.close()


@pytest.mark.timeout(20)
def test_zmq_send_before_the_peer_joined_is_not_lost(ctx: zmq.Context) -> None:
    a = ZmqTransport(0, ANY_PORT, {}, UNLIMITED, ctx=ctx, expect={1})
    b = None
    try:
        assert a.send(experience(0, 7))
        assert not a.wait_for_peers(0.05)
        assert a.stats()["queued"] == 1 and a.stats()["waiting_for"] == [1]
        b = ZmqTransport(1, ANY_PORT, {0: a.bound_endpoint}, UNLIMITED, ctx=ctx)
        a.connect_peers({1: b.bound_endpoint})
        assert a.wait_for_peers(5)
        assert a.stats()["queued"] == 0 and a.stats()["sent"] == 1
        got: list[Message] = []
        assert until(lambda: any(isinstance(m, ExperienceMsg) for m in got), 5,
                     lambda: got.extend(b.poll(0.05)))
        assert [m.seq for m in got if isinstance(m, ExperienceMsg)] == [7]
    finally:
        a.close()
        if b is not None:
            b.close()


@pytest.mark.timeout(20)
def test_zmq_hwm_refusals_are_counted_not_silent(ctx: zmq.Context) -> None:
    # inproc keeps the kernel's socket buffers out of it: the pipe holds about 2 * hwm messages.
    ledger = Ledger(None)
    a = ZmqTransport(0, "inproc://hwm", {}, UNLIMITED, ctx=ctx, hwm=4, ledger=ledger)
    sink = ctx.socket(zmq.SUB)
    try:
        sink.setsockopt(zmq.LINGER, 0)
        sink.setsockopt(zmq.RCVHWM, 4)
        sink.setsockopt(zmq.SUBSCRIBE, b"")
        sink.setsockopt(zmq.SUBSCRIBE, hello_topic(9))
        sink.connect("inproc://hwm")
        assert until(lambda: 9 in a.peers(), 5, lambda: a.poll(0.01))
        offered = 50
        for seq in range(offered):
            assert a.send(experience(0, seq))
        a.pump()
        stats = a.stats()
        assert stats["dropped"]["hwm"] > 0 and stats["sent"] > 0
        assert stats["sent"] + sum(stats["dropped"].values()) == offered
        assert stats["queued"] == 0
        streams = ledger.summary()["streams"]["experience"]["0->*"]
        assert streams["sent"] + streams["dropped"] == offered
        assert streams["dropped_by_reason"]["hwm"] == stats["dropped"]["hwm"]
    finally:
        sink.close(linger=0)
        a.close()


def bind_again(endpoint: str, ctx: zmq.Context, agent_id: int, **kwargs) -> ZmqTransport:
    """Rebind a just-closed endpoint (the old socket closes in the background)."""
    deadline = time.monotonic() + 5
    while True:
        try:
            return ZmqTransport(agent_id, endpoint, {}, UNLIMITED, ctx=ctx, **kwargs)
        except zmq.ZMQError as e:
            if e.errno != zmq.EADDRINUSE or time.monotonic() > deadline:
                raise
            zmq.Poller().poll(10)  # wait 10 ms before trying again


@pytest.mark.timeout(20)
def test_zmq_heartbeat_loss_and_return(ctx: zmq.Context) -> None:
    beat = {"heartbeat_s": 0.05, "heartbeat_misses": 3}
    a, b = mesh(ctx, 2, **beat)
    b2 = None
    try:
        assert a.wait_for_peers(5) and b.wait_for_peers(5)
        assert until(lambda: a.peers().get(1) == "alive", 5, lambda: (a.pump(), b.pump(),
                                                                       a.poll(0.01)))
        endpoint = b.bound_endpoint
        a.events()  # only what follows the close matters
        b.close()
        events: list[tuple[str, int]] = []

        def step_a() -> None:
            a.pump()
            a.poll(0.01)
            events.extend(a.events())

        assert until(lambda: ("lost", 1) in events, 5, step_a)
        assert a.peers()[1] == "lost"
        b2 = bind_again(endpoint, ctx, 1, **beat)
        b2.connect_peers({0: a.bound_endpoint})

        def step_both() -> None:
            b2.pump()
            step_a()

        assert until(lambda: ("back", 1) in events, 5, step_both)
        assert a.peers()[1] == "alive"
    finally:
        for t in (a, b, b2):
            if t is not None:
                t.close()


def garbage_cases(valid: list[bytes], n: int, seed: int = 0) -> list[list[bytes]]:
    """Random frame lists and truncated/corrupted copies of a valid message."""
    rng = np.random.default_rng(seed)
    cases: list[list[bytes]] = []
    for i in range(n):
        form = i % 7
        if form == 0:  # random frames
            cases.append([rng.bytes(int(rng.integers(1, 64)))
                          for _ in range(int(rng.integers(1, 5)))])
        elif form == 1:  # truncated header
            cases.append([valid[0][: int(rng.integers(0, len(valid[0])))], *valid[1:]])
        elif form == 2:  # missing array frames
            cases.append(valid[: int(rng.integers(1, len(valid)))])
        elif form == 3:  # an array frame one byte short
            k = int(rng.integers(1, len(valid)))
            cases.append([*valid[:k], valid[k][:-1], *valid[k + 1:]])
        elif form == 4:  # an extra frame the header does not list
            cases.append([*valid, rng.bytes(3)])
        elif form == 5:  # a dtype off the allow-list
            header = msgpack.unpackb(valid[0], raw=False)
            header["a"][0][1] = ["O", "<U4", "V8", "complex64"][i % 4]
            cases.append([msgpack.packb(header), *valid[1:]])
        else:  # an oversized header frame
            cases.append([rng.bytes(70_000), *valid[1:]])
    return cases


@pytest.mark.timeout(20)
def test_zmq_subscriber_survives_garbage(ctx: zmq.Context,
                                         caplog: pytest.LogCaptureFixture) -> None:
    a = ZmqTransport(0, ANY_PORT, {}, UNLIMITED, ctx=ctx)
    raw = ctx.socket(zmq.XPUB)  # XPUB: we can see when a's subscription has arrived
    try:
        raw.setsockopt(zmq.LINGER, 0)
        raw.bind(ANY_PORT)
        a.connect_peers({5: raw.getsockopt(zmq.LAST_ENDPOINT).decode()})
        assert raw.poll(5000), "a's subscription never arrived"
        valid = encode(experience(5, 0))
        cases = garbage_cases(valid, 200)
        t0 = time.monotonic()
        with caplog.at_level(logging.WARNING, logger="comms.transport"):
            for frames in cases:
                raw.send_multipart(frames)
            raw.send_multipart(encode(experience(5, 42)))
            got: list[Message] = []
            assert until(lambda: bool(got), 5, lambda: got.extend(a.poll(0.05)))
        assert [(m.sender, m.seq) for m in got] == [(5, 42)]
        assert a.stats()["rejected"] == {"malformed": 200}
        assert a.stats()["received"] == {"experience": 1}
        logged = [r for r in caplog.records if "malformed" in r.getMessage()]
        assert 1 <= len(logged) <= 1 + int(time.monotonic() - t0)
    finally:
        raw.close(linger=0)
        a.close()


@pytest.mark.timeout(60)
def test_zmq_subscriber_survives_10k_fuzzed_frame_lists(ctx: zmq.Context) -> None:
    """10,000 random, truncated, oversized and wrong-dtype frame lists into a live subscriber:
    each is rejected and counted, and the subscriber still takes the valid message after them."""
    a = ZmqTransport(0, ANY_PORT, {}, UNLIMITED, ctx=ctx)
    raw = ctx.socket(zmq.XPUB)
    try:
        raw.setsockopt(zmq.LINGER, 0)
        raw.bind(ANY_PORT)
        a.connect_peers({5: raw.getsockopt(zmq.LAST_ENDPOINT).decode()})
        assert raw.poll(5000), "a's subscription never arrived"
        cases = garbage_cases(encode(experience(5, 0)), 10_000, seed=1)
        for start in range(0, len(cases), 500):  # stay under the receive high-water mark
            for frames in cases[start : start + 500]:
                raw.send_multipart(frames)
            assert until(lambda n=start + 500: a.stats()["rejected"].get("malformed", 0) >= n, 10,
                         lambda: a.poll(0.01)), f"stalled after {start} cases"
        raw.send_multipart(encode(experience(5, 42)))
        got: list[Message] = []
        assert until(lambda: bool(got), 5, lambda: got.extend(a.poll(0.05)))
        assert [(m.sender, m.seq) for m in got] == [(5, 42)]
        assert a.stats()["rejected"] == {"malformed": 10_000}
    finally:
        raw.close(linger=0)
        a.close()


@pytest.mark.timeout(10)
def test_zmq_close_is_idempotent_and_owns_its_context() -> None:
    threads = threading.active_count()
    t = ZmqTransport(0, ANY_PORT, {}, UNLIMITED)
    t.close()
    t.close()
    assert threading.active_count() <= threads


@pytest.mark.timeout(10)
def test_zmq_failed_bind_closes_what_it_opened(ctx: zmq.Context) -> None:
    a = ZmqTransport(0, ANY_PORT, {}, UNLIMITED, ctx=ctx)
    try:
        with pytest.raises(EndpointError, match="already in use; choose another port"):
            # Its own context: close() would hang in term() on a socket left open.
            ZmqTransport(1, a.bound_endpoint, {}, UNLIMITED)
    finally:
        a.close()


class RecordingCurve:
    def __init__(self) -> None:
        self.calls: list[tuple[str, int | None]] = []

    def apply_server(self, socket: zmq.Socket) -> None:
        self.calls.append(("server", None))

    def apply_client(self, socket: zmq.Socket, peer_id: int) -> None:
        self.calls.append(("client", peer_id))

    def poll_monitor(self, timeout_s: float = 0.0) -> int:
        return 0

    def rejections(self) -> dict[str, int]:
        return {}


@pytest.mark.timeout(10)
def test_zmq_curve_hooks_run_once_per_socket_and_peer(ctx: zmq.Context) -> None:
    curve = RecordingCurve()
    t = ZmqTransport(0, ANY_PORT, {1: "tcp://127.0.0.1:1"}, UNLIMITED, ctx=ctx, curve=curve)
    t.connect_peers({1: "tcp://127.0.0.1:1", 2: "tcp://127.0.0.1:2"})  # 1 is already connected
    t.close()
    assert curve.calls == [("server", None), ("client", 1), ("client", 2)]


@pytest.mark.timeout(10)
def test_zmq_warns_once_for_a_public_bind_without_curve(
        ctx: zmq.Context, caplog: pytest.LogCaptureFixture,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("comms.transport._warned_insecure", False)
    with caplog.at_level(logging.WARNING, logger="comms.transport"):
        ts = [ZmqTransport(i, "tcp://0.0.0.0:*", {}, UNLIMITED, ctx=ctx) for i in range(2)]
        ts.append(ZmqTransport(2, ANY_PORT, {}, UNLIMITED, ctx=ctx))
    for t in ts:
        t.close()
    assert len([r for r in caplog.records if "without CURVE" in r.getMessage()]) == 1


# --- ZeroMQ, two OS processes -----------------------------------------------------------------

CHILD = """
import sys, time
import numpy as np
from comms.budget import parse_budget
from comms.messages import ExperienceMsg, StopMsg
from comms.transport import ZmqTransport

parent, n = sys.argv[1], int(sys.argv[2])
t = ZmqTransport(1, "tcp://127.0.0.1:*", {0: parent}, parse_budget("unlimited"),
                 heartbeat_s=0.1)
print(t.bound_endpoint, flush=True)
assert t.wait_for_peers(10), "parent never joined"
for seq in range(n):
    t.send(ExperienceMsg(sender=1, seq=seq, obs=np.full((3, 2), seq, np.float32),
                         actions=np.zeros(3, np.uint8), rewards=np.zeros(3, np.float32),
                         terms=np.zeros(3, bool), avail=np.ones((3, 1), np.uint8), n_actions=2))
seqs, stopped, deadline = [], False, time.monotonic() + 15
while not stopped and time.monotonic() < deadline:
    t.pump()
    for m in t.poll(0.05):
        if isinstance(m, StopMsg):
            stopped = True
        else:
            seqs.append(m.seq)
print(sorted(seqs) == list(range(n)), len(seqs), stopped, t.stats()["sent"], flush=True)
t.close()
"""


def read_line(proc: subprocess.Popen, timeout_s: float) -> str:
    ready, _, _ = select.select([proc.stdout], [], [], timeout_s)
    assert ready, "child printed nothing in time"
    return proc.stdout.readline().strip()


@pytest.mark.timeout(30)
def test_zmq_two_processes_exchange_both_ways(ctx: zmq.Context) -> None:
    n = 50
    a = ZmqTransport(0, ANY_PORT, {}, UNLIMITED, ctx=ctx, heartbeat_s=0.1)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-c", CHILD, a.bound_endpoint, str(n)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                            cwd=ROOT)
    try:
        a.connect_peers({1: read_line(proc, 15)})
        assert a.wait_for_peers(10)
        for seq in range(n):
            assert a.send(experience(0, seq))
        got: list[Message] = []
        assert until(lambda: len(got) >= n, 15, lambda: (a.pump(), got.extend(a.poll(0.05))))
        assert sorted(m.seq for m in got if m.sender == 1) == list(range(n))
        a.send(StopMsg(sender=0, reason="done"))
        assert until(lambda: proc.poll() is not None, 15, lambda: (a.pump(), a.poll(0.05)))
        out, err = proc.communicate(timeout=5)
        assert proc.returncode == 0, err
        assert out.split() == ["True", str(n), "True", str(n)]
        assert a.stats()["sent"] == n + 1
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=5)
        a.close()


@pytest.mark.timeout(20)
def test_zmq_large_arrays_arrive_intact_and_are_snapshots_of_send_time(ctx: zmq.Context,
                                                                          tmp_path: Path) -> None:
    """Frames of 64 KiB and more go zero-copy both ways; what arrives is the array as it was at
    `send`, even if the sender changes it before `pump` puts it on the wire."""
    from comms.messages import LEARNER, ParamsMsg

    ledger = Ledger(tmp_path / "ledger.jsonl")
    a = ZmqTransport(LEARNER, ANY_PORT, {}, UNLIMITED, ctx=ctx, expect={1}, ledger=ledger)
    b = ZmqTransport(1, ANY_PORT, {LEARNER: a.bound_endpoint}, UNLIMITED, ctx=ctx)
    try:
        assert until(a._ready, 5, lambda: (a.pump(), b.poll(0.01)))
        sizes = [10, 65_536, 300_000]
        arrays = {f"w{n}": np.arange(n, dtype=np.float32) for n in sizes}
        assert a.send(ParamsMsg(sender=LEARNER, seq=1, arrays=arrays))
        for arr in arrays.values():
            arr += 1  # trained in place while the message waits in the queue
        got: list[Message] = []
        assert until(lambda: got, 5, lambda: (a.pump(), got.extend(b.poll(0.05))))
        (msg,) = got
        for n in sizes:
            out = msg.arrays[f"w{n}"]
            np.testing.assert_array_equal(out, np.arange(n, dtype=np.float32))
            assert not out.flags.writeable
        sent = [r for r in map(eval_json, (tmp_path / "ledger.jsonl").read_text().splitlines())
                if r["kind"] == "params"]
        assert len(sent) == 1 and sent[0]["payload_bytes"] == 4 * sum(sizes)
    finally:
        a.close()
        b.close()
        ledger.close()


def eval_json(line: str) -> dict:
    import json

    return json.loads(line)


@pytest.mark.timeout(20)
def test_zmq_a_peer_that_advertised_garbage_is_rejected_not_fatal(ctx: zmq.Context) -> None:
    # An endpoint comes from a peer's registration: a typo in its --advertise (or a hostile
    # frame) must not crash the agents that connect to it.
    agents = mesh(ctx, 2)
    try:
        agents[0].connect_peers({2: "not an endpoint"})
        assert agents[0].stats()["rejected"] == {"bad_endpoint": 1}
        assert agents[0].wait_for_peers(5)  # it does not wait for the peer it could not reach
        assert agents[0].send(experience(0, 0))
        assert [m.seq for m in exchange(agents, 5, {1: 1})[1]] == [0]
    finally:
        for a in agents:
            a.close()



# --- accounting at the edges: shutdown, no audience, strangers, busy rounds ------------------

@pytest.mark.timeout(10)
def test_items_still_queued_at_close_are_ledgered_as_shutdown_drops(tmp_path: Path) -> None:
    clock = FakeClock()
    hub = InProcHub()
    ledger = Ledger(tmp_path / "ledger.jsonl", clock)
    a = InProcTransport(hub, 0, parse_budget("1KB/s", burst=1000), ledger=ledger, clock=clock)
    b = InProcTransport(hub, 1, UNLIMITED, clock=clock)
    for seq in range(4):
        a.send(experience(0, seq, t=20))  # ~700 B each: one fits the burst
    a.pump()
    sent = a.stats()["sent"]
    a.close()
    b.close()
    ledger.close()
    data = Ledger.read_summary(tmp_path / "ledger.jsonl")["streams"]["experience"]["0->*"]
    assert sent == 1 and data["sent"] == 1 and data["dropped_by_reason"]["shutdown"] == 3


@pytest.mark.timeout(20)
def test_zmq_items_for_nobody_are_dropped_as_peer_lost(ctx: zmq.Context) -> None:
    a, b = mesh(ctx, 2)
    try:
        assert a.wait_for_peers(5) and b.wait_for_peers(5)
        assert a.stats()["subscribed"] == [1]
        b.close()  # libzmq unsubscribes b's topics at a's XPUB
        assert until(lambda: a.stats()["subscribed"] == [], 5, lambda: a.poll(0.01))
        assert a.send(experience(0, 0))
        a.pump()
        stats = a.stats()
        assert stats["sent"] == 0 and stats["dropped"]["peer_lost"] == 1 and stats["queued"] == 0
    finally:
        a.close()
        b.close()


@pytest.mark.timeout(20)
def test_zmq_rejects_sender_ids_that_are_not_members(ctx: zmq.Context) -> None:
    a = ZmqTransport(0, ANY_PORT, {}, UNLIMITED, ctx=ctx)
    raw = ctx.socket(zmq.XPUB)
    try:
        raw.setsockopt(zmq.LINGER, 0)
        raw.bind(ANY_PORT)
        a.connect_peers({5: raw.getsockopt(zmq.LAST_ENDPOINT).decode()})
        assert raw.poll(5000), "a's subscription never arrived"
        for sender in (7, 100, 5):
            raw.send_multipart(encode(StopMsg(sender=sender, seq=0, step=0, reason="x")))
        got: list[Message] = []
        assert until(lambda: bool(got), 5, lambda: got.extend(a.poll(0.05)))
        assert [m.sender for m in got] == [5]
        assert a.stats()["rejected"] == {"unknown_sender": 2}
        assert set(a.peers()) == {5}  # strangers leave no peer entries behind
    finally:
        raw.close(linger=0)
        a.close()


@pytest.mark.timeout(10)
def test_heartbeat_sends_only_a_due_heartbeat() -> None:
    # For training rounds: peers keep hearing from a busy agent, and nothing queued moves.
    clock = FakeClock()
    hub = InProcHub()
    a = InProcTransport(hub, 0, UNLIMITED, clock=clock, heartbeat_s=1.0)
    b = InProcTransport(hub, 1, UNLIMITED, clock=clock, heartbeat_s=1.0)
    a.send(experience(0, 0))
    a.heartbeat()  # the first is due at once
    a.heartbeat()  # not due again before heartbeat_s
    clock.t = 1.0
    a.heartbeat()
    assert a.stats()["heartbeats"]["sent"] == 2 and a.stats()["queued"] == 1
    assert b.poll(0) == [] and b.stats()["heartbeats"]["received"] == 2


def test_zmq_curve_needs_the_context_of_its_authenticator() -> None:
    with pytest.raises(ValueError, match="ctx="):
        ZmqTransport(0, ANY_PORT, {}, UNLIMITED, curve=RecordingCurve())


def test_zmq_subscriber_refuses_frames_beyond_the_codec_limits(ctx: zmq.Context) -> None:
    t = ZmqTransport(0, ANY_PORT, {1: "tcp://127.0.0.1:9"}, UNLIMITED, ctx=ctx)
    try:
        assert t._subs[1].getsockopt(zmq.MAXMSGSIZE) == MAX_FRAME_BYTES
    finally:
        t.close()


@pytest.mark.timeout(20)
def test_zmq_rejects_a_member_that_claims_another_members_id(ctx: zmq.Context) -> None:
    # Peer 5 may speak only for itself: its link says who it is, whatever its header claims.
    a = ZmqTransport(0, ANY_PORT, {}, UNLIMITED, ctx=ctx)
    b = ZmqTransport(6, ANY_PORT, {}, UNLIMITED, ctx=ctx)
    raw = ctx.socket(zmq.XPUB)
    try:
        raw.setsockopt(zmq.LINGER, 0)
        raw.bind(ANY_PORT)
        a.connect_peers({5: raw.getsockopt(zmq.LAST_ENDPOINT).decode(), 6: b.bound_endpoint})
        assert raw.poll(5000), "a's subscription never arrived"
        for sender in (6, 5):
            raw.send_multipart(encode(StopMsg(sender=sender, seq=0, step=0, reason="x")))
        got: list[Message] = []
        assert until(lambda: bool(got), 5, lambda: got.extend(a.poll(0.05)))
        assert [m.sender for m in got] == [5]
        assert a.stats()["rejected"] == {"wrong_sender": 1}
    finally:
        raw.close(linger=0)
        a.close()
        b.close()


@pytest.mark.timeout(20)
def test_zmq_a_peers_new_endpoint_replaces_its_subscriber(ctx: zmq.Context) -> None:
    a = ZmqTransport(0, ANY_PORT, {}, UNLIMITED, ctx=ctx)
    old = ZmqTransport(1, ANY_PORT, {}, UNLIMITED, ctx=ctx)
    new = ZmqTransport(1, ANY_PORT, {}, UNLIMITED, ctx=ctx, expect=[0])  # restarted, another port
    try:
        a.connect_peers({1: old.bound_endpoint})
        first = a._subs[1]
        a.connect_peers({1: new.bound_endpoint})
        assert first.closed and a._subs[1] is not first and len(a._sockets) == 2  # XPUB + one SUB
        assert new.wait_for_peers(5)
        new.send(StopMsg(sender=1, seq=0, step=0, reason="back"))
        new.pump()
        got: list[Message] = []
        assert until(lambda: bool(got), 5, lambda: got.extend(a.poll(0.05)))
        assert [(m.sender, m.reason) for m in got] == [(1, "back")]  # type: ignore[attr-defined]
    finally:
        for t in (a, old, new):
            t.close()
