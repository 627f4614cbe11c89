"""The peer mesh with real CURVE keys: known peers talk, an unknown key is rejected and counted."""

from __future__ import annotations

import logging
import time

import pytest
import zmq

from comms.budget import parse_budget
from comms.messages import StopMsg
from comms.security import CurveSetup, KeyRing, generate_keys
from comms.transport import ZmqTransport

UNLIMITED = parse_budget("unlimited")


def _receive_stop(t: ZmqTransport, sender: ZmqTransport, deadline_s: float) -> bool:
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        sender.pump()
        if any(isinstance(m, StopMsg) for m in t.poll(0.05)):
            return True
    return False


@pytest.mark.timeout(30)
def test_curve_mesh_accepts_known_keys_and_counts_an_unknown_one(tmp_path, caplog):
    keys = tmp_path / "keys"
    generate_keys(keys, ["agent-0", "agent-1"])
    stranger_keys = tmp_path / "stranger"
    generate_keys(stranger_keys, ["agent-0", "agent-1"])  # same names, keys nobody trusts
    ctx0, ctx1, ctx2 = zmq.Context(), zmq.Context(), zmq.Context()
    c0 = CurveSetup(KeyRing.load(keys, "agent-0"), ctx0)
    c1 = CurveSetup(KeyRing.load(keys, "agent-1"), ctx1)
    c2 = CurveSetup(KeyRing.load(stranger_keys, "agent-1"), ctx2)
    ts: list[ZmqTransport] = []
    try:
        a = ZmqTransport(0, "tcp://127.0.0.1:*", {}, UNLIMITED, ctx=ctx0, curve=c0, expect=[1])
        ts.append(a)
        b = ZmqTransport(1, "tcp://127.0.0.1:*", {0: a.bound_endpoint}, UNLIMITED, ctx=ctx1,
                         curve=c1)
        ts.append(b)
        a.connect_peers({1: b.bound_endpoint})
        deadline = time.monotonic() + 10
        while not (a.wait_for_peers(0.05) and b.wait_for_peers(0.05)):
            assert time.monotonic() < deadline, "known peers never joined over CURVE"
        a.send(StopMsg(sender=0, reason="hello over curve"))
        assert _receive_stop(b, a, 5.0)

        # A stranger (unknown key pair) subscribing to agent 0 never gets in.
        s = ZmqTransport(1, "tcp://127.0.0.1:*", {0: a.bound_endpoint}, UNLIMITED, ctx=ctx2,
                         curve=c2)
        ts.append(s)
        a.send(StopMsg(sender=0, reason="not for strangers"))
        assert not _receive_stop(s, a, 1.0)
        # The transport's own loop (pump) logs it, and its stats count it, as in a real run
        # where nobody else reads the monitors.
        deadline = time.monotonic() + 5
        with caplog.at_level(logging.WARNING, logger="comms.security"):
            while not any("CURVE handshake rejected" in r.getMessage() for r in caplog.records):
                assert time.monotonic() < deadline, "the rejection was not logged by pump"
                a.pump()
                a.poll(0.05)
        assert a.stats()["rejected"]["curve"] >= 1
    finally:
        for t in ts:
            t.close()
        for c in (c0, c1, c2):
            c.close()
        for ctx in (ctx0, ctx1, ctx2):
            ctx.destroy(linger=0)


@pytest.mark.timeout(30)
def test_curve_member_with_a_valid_key_cannot_speak_for_another(tmp_path):
    # agent-2 holds a key every member trusts; a header claiming agent 1 on its link is refused.
    keys = tmp_path / "keys"
    names = ["agent-0", "agent-1", "agent-2"]
    generate_keys(keys, names)
    ctxs = [zmq.Context() for _ in names]
    curves = [CurveSetup(KeyRing.load(keys, n), c) for n, c in zip(names, ctxs)]
    ts: list[ZmqTransport] = []
    try:
        a, b, m = (ZmqTransport(i, "tcp://127.0.0.1:*", {}, UNLIMITED, ctx=ctxs[i], curve=curves[i],
                                expect=[j for j in range(3) if j != i]) for i in range(3))
        ts += [a, b, m]
        ends = {t.agent_id: t.bound_endpoint for t in ts}
        for t in ts:
            t.connect_peers({i: e for i, e in ends.items() if i != t.agent_id})
        deadline = time.monotonic() + 10
        while sum(t.wait_for_peers(0.05) for t in ts) < len(ts):  # every one pumps each time
            assert time.monotonic() < deadline, "members never joined over CURVE"
        m.send(StopMsg(sender=1, reason="forged: claims agent 1"))
        m.send(StopMsg(sender=2, reason="honest"))
        got: list[StopMsg] = []
        deadline = time.monotonic() + 5
        while not got:
            assert time.monotonic() < deadline, "agent 0 never heard agent 2"
            m.pump()
            got += [x for x in a.poll(0.05) if isinstance(x, StopMsg)]
        assert [(x.sender, x.reason) for x in got] == [(2, "honest")]
        assert a.stats()["rejected"] == {"wrong_sender": 1}
    finally:
        for t in ts:
            t.close()
        for c in curves:
            c.close()
        for ctx in ctxs:
            ctx.destroy(linger=0)
