"""Metrics: per-sender rate limiting on a fake clock; a subscriber gets the latest values."""
from __future__ import annotations

import threading
import time

import pytest
import zmq

from comms.codec import encode
from comms.messages import MetricsMsg, StopMsg
from comms.metrics import MetricsPublisher, MetricsSubscriber

ANY_PORT = "tcp://127.0.0.1:*"


class FakeClock:
    def __init__(self, t: float = 0.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


PROBE = -2  # sender id of the slow-joiner probes


def connected(pub: MetricsPublisher, sub: MetricsSubscriber) -> None:
    """Slow-joiner guard: publish probes until one arrives."""
    deadline = time.monotonic() + 5
    while not sub.poll(0.02):
        assert time.monotonic() < deadline, "subscriber never connected"
        pub.publish(PROBE, {"probe": 1})
        pub.flush()


def collect(sub: MetricsSubscriber, n: int) -> list[MetricsMsg]:
    """The next n non-probe messages (late probes may still be in flight)."""
    got: list[MetricsMsg] = []
    deadline = time.monotonic() + 5
    while len(got) < n and time.monotonic() < deadline:
        got += [m for m in sub.poll(0.1) if m.sender != PROBE]
    return got


@pytest.mark.timeout(10)
def test_rate_limit_keeps_only_the_latest_values(ctx: zmq.Context) -> None:
    clock = FakeClock()
    pub = MetricsPublisher(ANY_PORT, min_interval_s=0.5, ctx=ctx, clock=clock)
    sub = MetricsSubscriber([pub.bound_endpoint], ctx=ctx)
    try:
        connected(pub, sub)
        clock.t = 10.0
        assert pub.publish(0, {"loss": 1.0})  # first of sender 0: sent now
        assert pub.publish(1, {"loss": 7.0})  # senders are limited independently
        assert not pub.publish(0, {"loss": 2.0})
        clock.t = 10.4
        assert not pub.publish(0, {"loss": 3.0, "step": 40})
        got = collect(sub, 2)
        assert [(m.sender, m.values) for m in got] == [(0, {"loss": 1.0}), (1, {"loss": 7.0})]
        clock.t = 10.5
        assert pub.publish(0, {"loss": 4.0, "step": 50})  # interval passed: the latest goes
        assert not pub.publish(0, {"loss": 5.0, "step": 60, "phase": "train"})
        assert pub.flush() == 1
        assert pub.flush() == 0  # nothing pending any more
        got = collect(sub, 2)
        assert [m.values for m in got] == [{"loss": 4.0, "step": 50},
                                           {"loss": 5.0, "step": 60, "phase": "train"}]
        assert [m.seq for m in got] == [1, 2]
        assert sub.rejected == {}
    finally:
        sub.close()
        pub.close()


@pytest.mark.timeout(10)
def test_subscriber_counts_garbage_and_other_kinds(ctx: zmq.Context) -> None:
    raw = ctx.socket(zmq.PUB)
    raw.setsockopt(zmq.LINGER, 0)
    raw.bind(ANY_PORT)
    sub = MetricsSubscriber([raw.getsockopt(zmq.LAST_ENDPOINT).decode()], ctx=ctx)
    try:
        deadline = time.monotonic() + 5
        while not sub.poll(0.02):  # slow joiner: valid probes until one gets through
            assert time.monotonic() < deadline, "subscriber never connected"
            raw.send_multipart(encode(MetricsMsg(sender=-2, values={"probe": 1})))
        raw.send_multipart([b"\xc1not msgpack"])
        raw.send_multipart(encode(StopMsg(sender=0, reason="wrong kind")))
        raw.send_multipart(encode(MetricsMsg(sender=3, values={"x": 1})))
        got: list[MetricsMsg] = []
        while not any(m.sender == 3 for m in got):
            assert time.monotonic() < deadline
            got += sub.poll(0.05)
        assert [m.values for m in got if m.sender == 3] == [{"x": 1}]
        assert sub.rejected == {"malformed": 1, "kind": 1}
    finally:
        raw.close(linger=0)
        sub.close()


@pytest.mark.timeout(10)
def test_own_contexts_are_terminated_on_close() -> None:
    threads = threading.active_count()
    pub = MetricsPublisher(ANY_PORT)
    sub = MetricsSubscriber([pub.bound_endpoint])
    for closeable in (sub, pub, sub, pub):
        closeable.close()
    assert pub._ctx.closed and sub._ctx.closed
    assert threading.active_count() <= threads


def test_metrics_leaving_the_machine_are_said_to_be_unencrypted(ctx: zmq.Context, caplog) -> None:
    import logging

    with caplog.at_level(logging.WARNING, logger="comms.metrics"):
        local = MetricsPublisher(connect="tcp://127.0.0.1:9", ctx=ctx)
        local.close()
        assert not caplog.records
        remote = MetricsPublisher(connect="tcp://192.0.2.7:5999", ctx=ctx)  # TEST-NET-1: never answers
        remote.close()
    assert len(caplog.records) == 1
    assert "tcp://192.0.2.7:5999 travel unencrypted" in caplog.records[0].getMessage()
