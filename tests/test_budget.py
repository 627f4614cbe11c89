"""Byte budgets, token buckets and the priority send queue, on a fake clock (no sleeps)."""

from __future__ import annotations

import itertools
import math

import pytest
from hypothesis import given, settings, target
from hypothesis import strategies as st

from comms.budget import (
    MIN_DEFAULT_BURST,
    Budget,
    SendQueue,
    StepBucket,
    TokenBucket,
    parse_budget,
)
from comms.ledger import Ledger


class FakeClock:
    def __init__(self, t: float = 0.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


class SendLog:
    """A `send` callback recording (time, item); refuses while `accept` is False."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.accept = True
        self.sent: list[tuple[float, object]] = []

    def __call__(self, item: object) -> bool:
        if self.accept:
            self.sent.append((self.clock(), item))
        return self.accept


def _offer(
    q: SendQueue, item: object, score: float, size: int, kind: str = "experience", step: int = 0
) -> bool:
    return q.offer(
        item, score, wire_bytes=size, kind=kind, link="0->1", payload_bytes=size - 10, env_step=step
    )


def _max_window_excess(times: list[float], sizes: list[int], rate: float, burst: float) -> float:
    """max over windows [t_i, t_j] of (bytes sent in it) - (rate * W + burst); <= 0 is good."""
    prefix = [0, *itertools.accumulate(sizes)]
    worst = -burst  # an empty window
    for i, j in itertools.combinations_with_replacement(range(len(times)), 2):
        worst = max(worst, prefix[j + 1] - prefix[i] - (rate * (times[j] - times[i]) + burst))
    return worst


# --- parse_budget -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "rate", "per"),
    [
        ("unlimited", None, None),
        (" Unlimited ", None, None),
        ("50KB/s", 50_000, "s"),
        ("2KB/step", 2_000, "step"),
        ("1.5MB/s", 1_500_000, "s"),
        ("64KiB/s", 65_536, "s"),
        ("1MiB/step", 1_048_576, "step"),
        ("300B/s", 300, "s"),
        ("2.5 kB / step", 2_500, "step"),
    ],
)
def test_parse_budget_accepts(text, rate, per):
    b = parse_budget(text)
    assert (b.rate, b.per) == (rate, per)


@pytest.mark.parametrize(
    "text",
    ["", "50KB", "50kb/s", "KB/s", "0KB/s", "-1KB/s", "1e3B/s", "inf B/s", "50KB/min", "5 GB/s"]
    + ["a\nb"],
)
def test_parse_budget_rejects_with_one_line(text):
    with pytest.raises(ValueError) as info:
        parse_budget(text)
    msg = str(info.value)
    assert "\n" not in msg
    assert repr(text) in msg and "unlimited" in msg and "/step" in msg


def test_default_burst_is_one_unit_of_rate_with_a_64kib_floor_and_overridable():
    assert parse_budget("2KB/step").burst == MIN_DEFAULT_BURST
    assert parse_budget("1MB/s").burst == 1_000_000
    assert parse_budget("2KB/s", burst=5000).burst == 5000
    assert parse_budget("unlimited").burst == math.inf
    with pytest.raises(ValueError):
        Budget(1000.0, None)
    with pytest.raises(ValueError):
        Budget(1000.0, "s", burst=0)


# --- buckets ------------------------------------------------------------------------------


def test_token_bucket_starts_full_refills_with_time_and_caps_at_burst():
    clock = FakeClock()
    b = TokenBucket(rate=100.0, burst=500.0, clock=clock)
    assert b.try_consume(500) and not b.try_consume(1)
    clock.t = 2.0
    assert not b.try_consume(201) and b.try_consume(200)
    clock.t = 1000.0
    assert not b.try_consume(501) and b.try_consume(500)
    b.advance_steps(10**6)  # steps do not refill a per-second bucket
    assert not b.try_consume(1)


def test_step_bucket_refills_only_on_advance_steps():
    b = StepBucket(rate=100.0, burst=300.0)
    assert b.try_consume(300) and not b.try_consume(1)
    b.advance_steps(2)
    assert not b.try_consume(201) and b.try_consume(200)
    b.advance_steps(100)
    assert b.try_consume(300) and not b.try_consume(1)


# --- SendQueue: the budget guarantee ------------------------------------------------------

# Mostly tiny time steps, so bursts (many sends close together) are common.
_dt = st.one_of(st.sampled_from([0.0, 0.0, 0.01, 0.1]), st.floats(0, 3))
_event = st.one_of(
    st.tuples(st.just("offer"), _dt, st.integers(1, 3000), st.floats(-5, 5)),
    st.tuples(st.just("offer"), _dt, st.integers(1, 3000), st.floats(-5, 5)),
    st.tuples(st.just("drain"), _dt, st.just(0), st.just(0.0)),
)


@settings(max_examples=150, deadline=None)
@given(
    rate=st.sampled_from([100.0, 700.0, 2500.0]),
    burst=st.sampled_from([1000.0, 2500.0]),
    events=st.lists(_event, min_size=1, max_size=80),
)
def test_sends_never_exceed_rate_times_window_plus_burst(rate, burst, events):
    clock = FakeClock()
    ledger = Ledger(None, clock)
    q = SendQueue(Budget(rate, "s", burst), max_items=8, max_age_s=5.0, clock=clock, ledger=ledger)
    log = SendLog(clock)
    sizes: dict[int, int] = {}
    for n, (what, dt, size, score) in enumerate(events):
        clock.t += dt
        if what == "offer":
            sizes[n] = size
            _offer(q, n, score, size)
        else:
            q.drain(log)
    times = [t for t, _ in log.sent]
    sent_sizes = [sizes[item] for _, item in log.sent]
    excess = _max_window_excess(times, sent_sizes, rate, burst)
    target(excess / burst)  # steer the search towards the tightest windows
    assert excess <= 1e-6
    assert all(s <= burst for s in sent_sizes)
    stats = q.stats()
    assert stats["sent"] + sum(stats["dropped"].values()) + stats["queued"] == len(sizes)
    streams = ledger.summary()["streams"]
    if streams:
        stream = streams["experience"]["0->1"]
        assert stream["sent"] == stats["sent"] == len(log.sent)
        assert stream["wire_bytes_sent"] == stats["sent_bytes"] == sum(sent_sizes)
        assert stream["dropped_by_reason"] == stats["dropped"]


def test_constant_backlog_uses_at_least_90_percent_of_the_rate():
    clock = FakeClock()
    rate, burst, horizon = 10_000.0, 65_536.0, 100.0
    q = SendQueue(Budget(rate, "s", burst), max_items=64, max_age_s=None, clock=clock)
    log = SendLog(clock)
    sizes = itertools.cycle([700, 4_000, 12_000, 65_536, 1_500, 30_000])
    sent_bytes = {}
    for n in range(int(horizon / 0.1)):
        clock.t = n * 0.1
        while len(q) < 4:
            size = next(sizes)
            item = (n, len(sent_bytes))
            sent_bytes[item] = size
            _offer(q, item, score=float(n % 7), size=size)
        q.drain(log)
    total = sum(sent_bytes[item] for _, item in log.sent)
    assert 0.9 * rate * horizon <= total <= rate * horizon + burst


# --- SendQueue: order and drops -----------------------------------------------------------


def test_highest_score_is_sent_first_and_ties_are_fifo():
    clock = FakeClock()
    q = SendQueue(parse_budget("unlimited"), max_items=10, max_age_s=None, clock=clock)
    for item, score in [("a", 1.0), ("b", 3.0), ("c", 2.0), ("d", 3.0), ("e", 1.0)]:
        _offer(q, item, score, 100)
    log = SendLog(clock)
    assert q.drain(log) == 5
    assert [item for _, item in log.sent] == ["b", "d", "c", "a", "e"]


def test_strict_priority_head_waits_for_tokens():
    clock = FakeClock()
    q = SendQueue(Budget(100.0, "s", burst=1000.0), max_items=10, max_age_s=None, clock=clock)
    log = SendLog(clock)
    _offer(q, "filler", 9.0, 1000)
    assert q.drain(log) == 1  # the bucket starts full; now it is empty
    _offer(q, "big", 5.0, 800)
    _offer(q, "small", 1.0, 10)
    clock.t = 1.0  # 100 tokens: enough for "small", not for "big"
    assert q.drain(log) == 0
    clock.t = 8.0
    assert q.drain(log) == 1 and log.sent[-1][1] == "big"
    clock.t = 8.2
    assert q.drain(log) == 1 and log.sent[-1][1] == "small"


def test_items_older_than_max_age_are_dropped_with_reason_age():
    clock = FakeClock()
    q = SendQueue(Budget(100.0, "s", burst=1000.0), max_items=10, max_age_s=2.0, clock=clock)
    log = SendLog(clock)
    _offer(q, "fill", 9.0, 1000)
    q.drain(log)
    _offer(q, "old", 5.0, 900)
    clock.t = 1.0
    _offer(q, "young", 1.0, 50)
    clock.t = 2.5  # "old" has waited 2.5 s > 2 s; 250 tokens are there for "young"
    assert q.drain(log) == 1 and log.sent[-1][1] == "young"
    stats = q.stats()
    assert stats["dropped"]["age"] == 1 and stats["queued"] == 0


def test_overflow_drops_the_lowest_score_which_may_be_the_new_item():
    clock = FakeClock()
    q = SendQueue(parse_budget("unlimited"), max_items=3, max_age_s=None, clock=clock)
    for item, score in [("a", 2.0), ("b", 5.0), ("c", 3.0)]:
        assert _offer(q, item, score, 10)
    assert not _offer(q, "lowest", 1.0, 10)  # the new one is the lowest: it goes
    assert not _offer(q, "tie", 2.0, 10)  # ties with the lowest: the newcomer goes
    assert _offer(q, "d", 4.0, 10)  # "a" (2.0) goes
    log = SendLog(clock)
    q.drain(log)
    assert [item for _, item in log.sent] == ["b", "d", "c"]
    assert q.stats()["dropped"]["overflow"] == 3


def test_send_refusal_is_a_hwm_drop():
    clock = FakeClock()
    q = SendQueue(parse_budget("unlimited"), max_items=10, max_age_s=None, clock=clock)
    _offer(q, "a", 1.0, 10)
    _offer(q, "b", 2.0, 10)
    log = SendLog(clock)
    log.accept = False
    assert q.drain(log) == 0
    stats = q.stats()
    assert stats["dropped"]["hwm"] == 2 and stats["queued"] == 0 and stats["sent"] == 0


def test_item_larger_than_burst_is_dropped_at_once_and_does_not_block():
    clock = FakeClock()
    q = SendQueue(Budget(100.0, "s", burst=1000.0), max_items=10, max_age_s=None, clock=clock)
    assert not _offer(q, "huge", 100.0, 1001)
    assert _offer(q, "ok", 1.0, 1000)
    log = SendLog(clock)
    assert q.drain(log) == 1 and log.sent[0][1] == "ok"
    assert q.stats()["dropped"]["budget"] == 1


def test_drop_all_empties_the_queue_with_reason_peer_lost():
    clock = FakeClock()
    q = SendQueue(Budget(10.0, "s", burst=100.0), max_items=10, max_age_s=None, clock=clock)
    for n in range(4):
        _offer(q, n, float(n), 100)
    assert q.drain(SendLog(clock)) == 1  # the burst covers one item
    assert q.drop_all() == 3
    assert len(q) == 0 and q.stats()["dropped"]["peer_lost"] == 3


def test_per_step_budget_is_driven_by_advance_steps_not_time():
    clock = FakeClock()
    rate, burst = 2000.0, 4000.0
    q = SendQueue(parse_budget("2KB/step", burst=burst), max_items=100, max_age_s=None, clock=clock)
    log = SendLog(clock)
    sent_at_step: list[tuple[int, int]] = []
    for step in range(50):
        clock.t += 1000.0  # time alone must not refill a per-step bucket
        for k in range(3):
            _offer(q, (step, k), 1.0, 1500, step=step)
        before = len(log.sent)
        q.drain(log)
        sent_at_step += [(step, 1500)] * (len(log.sent) - before)
        q.advance_steps(1)
    steps = [s for s, _ in sent_at_step]
    sizes = [n for _, n in sent_at_step]
    assert _max_window_excess(steps, sizes, rate, burst) <= 1e-6
    assert sum(sizes) >= 0.9 * rate * 50  # backlogged: nearly the whole budget is used


def test_stats_count_per_reason_and_per_kind():
    clock = FakeClock()
    q = SendQueue(Budget(100.0, "s", burst=1000.0), max_items=2, max_age_s=None, clock=clock)
    _offer(q, "e1", 1.0, 600, kind="experience")
    _offer(q, "r1", 2.0, 600, kind="rollout")
    _offer(q, "r2", 0.5, 600, kind="rollout")  # overflow
    _offer(q, "big", 3.0, 5000, kind="rollout")  # budget
    q.drain(SendLog(clock))  # sends r1 (600 of 1000 tokens), e1 waits
    stats = q.stats()
    assert stats["sent"] == 1 and stats["sent_bytes"] == 600 and stats["queued"] == 1
    assert stats["by_kind"]["rollout"]["sent"] == 1
    assert stats["by_kind"]["rollout"]["dropped"] == {
        "budget": 1, "age": 0, "overflow": 1, "hwm": 0, "peer_lost": 0, "shutdown": 0
    }
    assert stats["by_kind"]["experience"]["sent"] == 0
    assert stats["dropped_bytes"] == 5600


def test_nan_score_is_rejected():
    q = SendQueue(parse_budget("unlimited"), max_items=2, max_age_s=None, clock=FakeClock())
    with pytest.raises(ValueError):
        _offer(q, "x", math.nan, 10)


# --- fast paths ---------------------------------------------------------------------------


def test_unlimited_one_item_at_a_time_is_still_ledgered_and_counted(tmp_path):
    """The empty-queue fast path of `offer` and the sent path of `drain` record every send."""
    clock = FakeClock(10.0)
    with Ledger(tmp_path / "l.jsonl", clock=clock) as ledger:
        q = SendQueue(parse_budget("unlimited"), max_items=4, max_age_s=None, clock=clock,
                      ledger=ledger)
        log = SendLog(clock)
        for n in range(200):
            assert _offer(q, n, float(n % 3), 100 + n, kind="params" if n % 2 else "experience",
                          step=n)
            assert q.drain(log) == 1
        live = ledger.summary()
    assert [item for _, item in log.sent] == list(range(200))
    lines = (tmp_path / "l.jsonl").read_text().splitlines()
    assert len(lines) == 200
    assert Ledger.read_summary(tmp_path / "l.jsonl") == live
    stats = q.stats()
    assert stats["sent"] == 200 and stats["queued"] == 0
    assert stats["sent_bytes"] == sum(100 + n for n in range(200))
    assert stats["by_kind"]["params"]["sent"] == stats["by_kind"]["experience"]["sent"] == 100


def test_order_is_the_same_whether_the_queue_was_empty_or_not():
    """An item offered to an empty queue (appended, no search) ranks like any other."""
    clock = FakeClock()
    q = SendQueue(parse_budget("unlimited"), max_items=10, max_age_s=None, clock=clock)
    _offer(q, "first", 1.0, 100)  # empty queue: fast path
    for item, score in [("b", 3.0), ("c", 1.0), ("d", 0.5), ("e", 3.0)]:
        _offer(q, item, score, 100)
    log = SendLog(clock)
    assert q.drain(log) == 5
    assert [item for _, item in log.sent] == ["b", "e", "first", "c", "d"]
    _offer(q, "alone", 0.0, 100)  # empty again after the drain
    assert q.drain(log) == 1 and log.sent[-1][1] == "alone"


def test_refusal_after_the_fast_path_is_still_an_hwm_drop(tmp_path):
    clock = FakeClock()
    with Ledger(tmp_path / "l.jsonl", clock=clock) as ledger:
        q = SendQueue(parse_budget("unlimited"), max_items=4, max_age_s=None, clock=clock,
                      ledger=ledger)
        log = SendLog(clock)
        log.accept = False
        _offer(q, "x", 1.0, 100)
        assert q.drain(log) == 0
    assert q.stats()["dropped"]["hwm"] == 1
    assert '"reason":"hwm"' in (tmp_path / "l.jsonl").read_text()


@pytest.mark.parametrize(
    "text",
    ["unlimited", " Unlimited ", "50KB/s", "2KB/step", "1.5MB/s", "64KiB/s", "1MiB/step", "300B/s",
     "2.5 kB / step", ".5KB/s", "7./s", "", "50KB", "50kb/s", "KB/s", "0KB/s", "-1KB/s", "1e3B/s",
     "inf B/s", "nanB/s", "50KB/min", "5 GB/s", "5Mb/s", "a\nb", "1 KB/s extra"],
)
def test_what_the_config_accepts_the_transport_enforces_at_the_same_rate(text):
    # The config is checked before any process starts; the agents then parse the same string
    # into their byte budget. A string the config passes and the transport refuses made every
    # agent die at start (4 restarts, then the run stopped).
    from dwm_net.config import ConfigError
    from dwm_net.config import parse_budget as config_budget

    try:
        rate, per = config_budget(text)
    except ConfigError:
        return
    b = parse_budget(text)
    assert (b.rate, b.per) == (rate, per)
