"""The bandwidth ledger: JSONL lines match the queue's sends and drops; summaries agree."""

from __future__ import annotations

import errno
import json
import logging
import os
from pathlib import Path

import pytest

from comms.budget import Budget, SendQueue, parse_budget
from comms.ledger import DROP_REASONS, Ledger, link_name


class FakeClock:
    def __init__(self, t: float = 0.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def _record(ledger: Ledger, **fields) -> None:
    base = {"kind": "x", "link": "0->1", "payload_bytes": 1, "wire_bytes": 2, "step": 0}
    ledger.record(**{**base, **fields})


def _lines(path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def _run_queue(ledger: Ledger, clock: FakeClock) -> list[tuple[str, str, str | None]]:
    """Drive a queue through every outcome; returns the expected (item, outcome, reason)."""
    budget = Budget(1000.0, "s", burst=2000.0)
    q = SendQueue(budget, max_items=3, max_age_s=5.0, clock=clock, ledger=ledger)

    def send(item: str) -> bool:
        return item != "h"

    def offer(item, score, size, kind="experience", link="0->1", step=0):
        q.offer(item, score, size, kind, link, payload_bytes=size - 8, env_step=step)

    offer("big", 9.0, 2001, step=1)  # budget: larger than the burst
    offer("a", 1.0, 1500, step=1)
    offer("b", 2.0, 1000, kind="rollout", link="0->*", step=1)
    offer("old", 0.5, 1900, link="0->2", step=2)
    offer("d", 0.1, 100, step=2)  # overflow: the queue is full and it is the lowest
    clock.t = 0.5
    q.drain(send)  # b sent (2000 -> 1000 tokens); a waits
    clock.t = 1.0
    q.drain(send)  # a sent (1500 -> 0 tokens); old waits
    offer("h", 5.0, 100, step=3)
    offer("c", 0.3, 150, step=3)
    clock.t = 1.2
    q.drain(send)  # h refused by the transport: hwm (200 -> 100 tokens); old waits
    clock.t = 5.5
    q.drain(send)  # old waited 5.5 s > 5 s: age; c sent
    offer("z", 1.0, 1900, link="0->2", step=9)
    q.drop_all()  # z: peer_lost
    return [
        ("big", "dropped", "budget"),
        ("d", "dropped", "overflow"),
        ("b", "sent", None),
        ("a", "sent", None),
        ("h", "dropped", "hwm"),
        ("old", "dropped", "age"),
        ("c", "sent", None),
        ("z", "dropped", "peer_lost"),
    ]


def test_link_name():
    assert link_name(0, 1) == "0->1"
    assert link_name(3, None) == "3->*"


def test_ledger_lines_match_the_queue_sends_and_drops_exactly(tmp_path):
    clock = FakeClock()
    path = tmp_path / "ledger.jsonl"
    with Ledger(path, clock=clock) as ledger:
        expected = _run_queue(ledger, clock)
    lines = _lines(path)
    assert [(rec["outcome"], rec["reason"]) for rec in lines] == [(o, r) for _, o, r in expected]
    assert [rec["wire_bytes"] for rec in lines] == [2001, 100, 1000, 1500, 100, 1900, 150, 1900]
    assert all(rec["payload_bytes"] == rec["wire_bytes"] - 8 for rec in lines)
    assert lines[2] == {
        "t": 0.5,
        "step": 1,
        "link": "0->*",
        "kind": "rollout",
        "payload_bytes": 992,
        "wire_bytes": 1000,
        "outcome": "sent",
        "reason": None,
    }


def test_summary_totals_and_rates(tmp_path):
    clock = FakeClock()
    with Ledger(tmp_path / "l.jsonl", clock=clock) as ledger:
        _run_queue(ledger, clock)
        s = ledger.summary()
    assert s["records"] == 8 and s["bad_lines"] == 0
    assert s["span_s"] == 5.5 and s["span_steps"] == 8
    exp = s["streams"]["experience"]["0->1"]
    assert exp["sent"] == 2 and exp["wire_bytes_sent"] == 1650 and exp["payload_bytes_sent"] == 1634
    assert exp["dropped"] == 3 and exp["wire_bytes_dropped"] == 2001 + 100 + 100
    assert exp["dropped_by_reason"] == {
        "budget": 1, "age": 0, "overflow": 1, "hwm": 1, "peer_lost": 0, "shutdown": 0
    }
    assert exp["wire_bytes_sent_per_s"] == pytest.approx(1650 / 5.5)
    assert exp["wire_bytes_sent_per_step"] == pytest.approx(1650 / 8)
    assert s["streams"]["rollout"]["0->*"]["sent"] == 1
    other = s["streams"]["experience"]["0->2"]["dropped_by_reason"]
    assert other["age"] == 1 and other["peer_lost"] == 1


def test_read_summary_from_the_file_equals_the_live_summary(tmp_path):
    clock = FakeClock(1_764_000_000.125)
    path = tmp_path / "ledger.jsonl"
    with Ledger(path, clock=clock) as ledger:
        _run_queue(ledger, clock)
        live = ledger.summary()
    assert Ledger.read_summary(path) == live


def _crashed_ledger(tmp_path, clock):
    """A ledger file of a queue run; returns (path, its live summary) before any crash."""
    path = tmp_path / "ledger.jsonl"
    with Ledger(path, clock=clock) as ledger:
        _run_queue(ledger, clock)
        live = ledger.summary()
    return path, live


def test_truncated_last_line_is_skipped_and_counted(tmp_path):
    path, live = _crashed_ledger(tmp_path, FakeClock())
    with open(path, "a") as f:
        f.write('{"t":7.5,"step":10,"link":"0->1","kind":"exp')  # a crash mid-write
    read = Ledger.read_summary(path)
    assert read["bad_lines"] == 1
    assert {**read, "bad_lines": 0} == live


def test_reopening_after_a_crash_appends_whole_lines_and_keeps_old_ones(tmp_path):
    clock = FakeClock()
    path, _ = _crashed_ledger(tmp_path, clock)
    old = path.read_text()
    with open(path, "a") as f:
        f.write('{"t":7.5,"st')
    with Ledger(path, clock=clock) as ledger:
        _record(ledger, step=11, outcome="sent")
    text = path.read_text()
    assert text.startswith(old)
    read = Ledger.read_summary(path)
    assert read["bad_lines"] == 1 and read["records"] == 9
    assert json.loads(text.splitlines()[-1])["step"] == 11


def test_lines_hit_the_file_before_close(tmp_path):
    path = tmp_path / "ledger.jsonl"
    ledger = Ledger(path, clock=FakeClock())
    _record(ledger, outcome="dropped", reason="age")
    assert _lines(path)[0]["reason"] == "age"  # line-buffered: readable while the run goes on
    ledger.close()


def test_inconsistent_outcome_and_reason_are_rejected():
    ledger = Ledger(None, clock=FakeClock())
    with pytest.raises(ValueError):
        _record(ledger, outcome="sent", reason="age")
    with pytest.raises(ValueError):
        _record(ledger, outcome="dropped")
    with pytest.raises(ValueError):
        _record(ledger, outcome="dropped", reason="oops")


def test_in_memory_ledger_and_unlimited_queue(tmp_path):
    clock = FakeClock()
    ledger = Ledger(None, clock=clock)
    q = SendQueue(parse_budget("unlimited"), 100, max_age_s=None, clock=clock, ledger=ledger)
    for n in range(50):
        q.offer(n, float(n % 5), 10_000_000, "experience", "0->*", payload_bytes=9, env_step=n)
    assert q.drain(lambda item: True) == 50
    s = ledger.summary()["streams"]["experience"]["0->*"]
    assert s["sent"] == 50 and s["wire_bytes_sent"] == 500_000_000
    assert s["wire_bytes_sent_per_s"] is None  # all at one instant: no rate
    assert s["wire_bytes_sent_per_step"] == pytest.approx(500_000_000 / 49)


# --- the formatted line -------------------------------------------------------------------


@pytest.mark.parametrize("t", [0.0, 0.5, 1_764_101_700.25, 1e-7, 1e22, 123456789.123456789, 7,
                               float("nan"), float("inf")])
@pytest.mark.parametrize("link, kind", [("0->*", "params"), ("12->3", "experience"),
                                        ('a"b\\c', "k\u00e9\n\t")])
@pytest.mark.parametrize("reason", [None, *DROP_REASONS])
def test_each_line_is_exactly_what_json_dumps_writes(tmp_path, t, link, kind, reason):
    """The record is formatted without json.dumps; the line must not differ by one byte."""
    path = tmp_path / "l.jsonl"
    outcome = "sent" if reason is None else "dropped"
    with Ledger(path, clock=FakeClock(t)) as ledger:
        ledger.record(kind=kind, link=link, payload_bytes=2048, wire_bytes=2115, step=120,
                      outcome=outcome, reason=reason)
    rec = {"t": t, "step": 120, "link": link, "kind": kind, "payload_bytes": 2048,
           "wire_bytes": 2115, "outcome": outcome, "reason": reason}
    assert path.read_text() == json.dumps(rec, separators=(",", ":")) + "\n"


def test_numpy_numbers_are_written_as_json_would_be_after_conversion(tmp_path):
    np = pytest.importorskip("numpy")
    path = tmp_path / "l.jsonl"
    with Ledger(path, clock=FakeClock(np.float64(2.5))) as ledger:
        ledger.record(kind="x", link="0->1", payload_bytes=int(np.int64(7)), wire_bytes=9,
                      step=3, outcome="sent")
    assert json.loads(path.read_text()) == {"t": 2.5, "step": 3, "link": "0->1", "kind": "x",
                                            "payload_bytes": 7, "wire_bytes": 9,
                                            "outcome": "sent", "reason": None}


def test_every_record_is_in_the_file_when_record_returns(tmp_path):
    """No buffering on our side: a crash after record() cannot lose the line."""
    path = tmp_path / "ledger.jsonl"
    ledger = Ledger(path, clock=FakeClock(1.0))
    for n in range(1, 501):
        _record(ledger, step=n, outcome="sent")
        if n % 100 == 0:
            assert [rec["step"] for rec in _lines(path)] == list(range(1, n + 1))
    ledger.close()
    ledger.close()  # idempotent
    assert len(_lines(path)) == 500


def test_an_empty_reason_is_rejected():
    with pytest.raises(ValueError):
        _record(Ledger(None, clock=FakeClock()), outcome="dropped", reason="")


# --- write failures -----------------------------------------------------------------------


def test_a_full_disk_costs_lines_not_the_sender(caplog):
    """/dev/full: every write fails with ENOSPC after the frame went out; the queue goes on,
    the live summary counts each record, the lost lines are counted and warned about once."""
    full = Path("/dev/full")
    if not full.exists():
        pytest.skip("no /dev/full")
    ledger = Ledger(full, clock=FakeClock())
    q = SendQueue(parse_budget("unlimited"), 10, None, ledger=ledger)
    for n in range(3):
        q.offer(b"x", 1.0, 100, "experience", "0->*", payload_bytes=90, env_step=n)
    with caplog.at_level(logging.WARNING, logger="comms.ledger"):
        assert q.drain(lambda item: True) == 3
        _record(ledger, outcome="dropped", reason="age")
    summary = ledger.summary()
    assert summary["records"] == 4 and summary["write_errors"] == 4
    assert summary["streams"]["experience"]["0->*"]["sent"] == 3
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 1 and "No space left on device" in warnings[0] and "/dev/full" in warnings[0]
    ledger.close()


def test_a_partial_write_spoils_its_own_line_only(tmp_path, monkeypatch):
    """The disk fills mid-line: the next line starts on a new line, so the file has one bad
    line (the partial one) and every later record is whole."""
    path = tmp_path / "ledger.jsonl"
    ledger = Ledger(path, clock=FakeClock(1.0))
    _record(ledger, step=1, outcome="sent")
    real_write, calls = os.write, []

    def write(fd, data):
        calls.append(bytes(data))
        if len(calls) == 1:
            return real_write(fd, bytes(data)[:20])  # the OS takes part of the line ...
        if len(calls) == 2:
            raise OSError(errno.ENOSPC, "No space left on device")  # ... and the rest fails
        if len(calls) == 3:
            raise OSError(errno.ENOSPC, "No space left on device")  # nothing written at all
        return real_write(fd, data)

    monkeypatch.setattr(os, "write", write)
    for step in (2, 3, 4, 5):
        _record(ledger, step=step, outcome="sent")
    monkeypatch.undo()
    ledger.close()
    assert ledger.summary()["records"] == 5 and ledger.summary()["write_errors"] == 2
    read = Ledger.read_summary(path)
    assert read["records"] == 3 and read["bad_lines"] == 1  # steps 1, 4, 5 whole; 2 partial
    whole = {step: json.dumps({"t": 1.0, "step": step, "link": "0->1", "kind": "x", "payload_bytes": 1,
                               "wire_bytes": 2, "outcome": "sent", "reason": None}, separators=(",", ":"))
             for step in (1, 2, 4, 5)}
    # the partial line ended by the next whole one; nothing of step 3 (its write took nothing)
    assert path.read_text().split("\n") == [whole[1], whole[2][:20], whole[4], whole[5], ""]


def test_a_removed_ledger_file_is_written_anew(tmp_path, caplog):
    clock = FakeClock(100.0)
    path = tmp_path / "ledger.jsonl"
    ledger = Ledger(path, clock=clock)
    _record(ledger, step=1, outcome="sent")
    path.unlink()
    _record(ledger, step=2, outcome="sent")  # within the check interval: to the removed file
    clock.t += 1.5
    with caplog.at_level(logging.WARNING, logger="comms.ledger"):
        _record(ledger, step=3, outcome="sent")
        _record(ledger, step=4, outcome="sent")
    assert [rec["step"] for rec in _lines(path)] == [3, 4]
    assert [r.getMessage() for r in caplog.records] == [
        (f"ledger: {path} was removed while in use; writing a new one (earlier lines are gone, "
         "the live summary still counts them)")]
    assert ledger.summary()["records"] == 4 and ledger.summary()["write_errors"] == 0
    ledger.close()
