"""The bandwidth ledger: an append-only JSONL record of every send and drop.

One line per event, in the order they happen:

    {"t": 1764101700.25, "step": 120, "link": "0->1", "kind": "experience",
     "payload_bytes": 4096, "wire_bytes": 4210, "outcome": "sent", "reason": null}

`t` is the ledger clock (wall time by default, so ledgers of different processes line up
on one plot), `step` the env step at which the item was offered, `link` is "<src>-><dst>"
or "<src>->*" for a broadcast. A drop carries one of `DROP_REASONS`.

`Ledger.summary()` (live) and `Ledger.read_summary(path)` (from the file alone) run the
same accumulator over the same records, so a plot or the live view recomputes exactly what
the writing process saw. A crash mid-write leaves a partial last line: readers skip and
count it, and a later `Ledger` on the same file ends it with a newline before appending.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Literal, Protocol, get_args

DropReason = Literal["budget", "age", "overflow", "hwm", "peer_lost"]
DROP_REASONS: tuple[DropReason, ...] = get_args(DropReason)
Outcome = Literal["sent", "dropped"]


class Clock(Protocol):
    """Seconds as a float; injectable so tests run on fake time."""

    def __call__(self) -> float: ...


def link_name(src: int, dst: int | None) -> str:
    """'0->1' for a point-to-point link, '0->*' for a broadcast (dst None)."""
    return f"{src}->{'*' if dst is None else dst}"


@dataclass
class _Stream:
    """Totals for one (kind, link) pair."""

    sent: int = 0
    payload_bytes_sent: int = 0
    wire_bytes_sent: int = 0
    dropped: Counter[str] = field(default_factory=Counter)
    payload_bytes_dropped: int = 0
    wire_bytes_dropped: int = 0

    def add(self, rec: dict) -> None:
        if rec["outcome"] == "sent":
            self.sent += 1
            self.payload_bytes_sent += rec["payload_bytes"]
            self.wire_bytes_sent += rec["wire_bytes"]
        else:
            self.dropped[rec["reason"]] += 1
            self.payload_bytes_dropped += rec["payload_bytes"]
            self.wire_bytes_dropped += rec["wire_bytes"]

    def to_dict(self, span_s: float | None, span_steps: int | None) -> dict:
        return {
            "sent": self.sent,
            "dropped": sum(self.dropped.values()),
            "dropped_by_reason": {r: self.dropped[r] for r in DROP_REASONS},
            "payload_bytes_sent": self.payload_bytes_sent,
            "wire_bytes_sent": self.wire_bytes_sent,
            "payload_bytes_dropped": self.payload_bytes_dropped,
            "wire_bytes_dropped": self.wire_bytes_dropped,
            "wire_bytes_sent_per_s": _per(self.wire_bytes_sent, span_s),
            "wire_bytes_sent_per_step": _per(self.wire_bytes_sent, span_steps),
            "payload_bytes_sent_per_s": _per(self.payload_bytes_sent, span_s),
            "payload_bytes_sent_per_step": _per(self.payload_bytes_sent, span_steps),
        }


def _per(total: int, span: float | None) -> float | None:
    # A zero span (one instant, one step) has no meaningful rate: None, not inf.
    return total / span if span else None


@dataclass
class _Summary:
    """Accumulates records in order; shared by the live ledger and the file reader."""

    records: int = 0
    bad_lines: int = 0
    t_min: float | None = None
    t_max: float | None = None
    step_min: int | None = None
    step_max: int | None = None
    streams: dict[tuple[str, str], _Stream] = field(default_factory=dict)

    def add(self, rec: dict) -> None:
        self.records += 1
        t, step = rec["t"], rec["step"]
        self.t_min = t if self.t_min is None else min(self.t_min, t)
        self.t_max = t if self.t_max is None else max(self.t_max, t)
        self.step_min = step if self.step_min is None else min(self.step_min, step)
        self.step_max = step if self.step_max is None else max(self.step_max, step)
        self.streams.setdefault((rec["kind"], rec["link"]), _Stream()).add(rec)

    def to_dict(self) -> dict:
        span_s = None if self.t_min is None else self.t_max - self.t_min
        span_steps = None if self.step_min is None else self.step_max - self.step_min
        streams: dict[str, dict[str, dict]] = {}
        for (kind, link), stream in sorted(self.streams.items()):
            streams.setdefault(kind, {})[link] = stream.to_dict(span_s, span_steps)
        return {
            "records": self.records,
            "bad_lines": self.bad_lines,
            "span_s": span_s,
            "span_steps": span_steps,
            "streams": streams,  # streams[kind][link] -> totals and rates
        }


class Ledger:
    """Append-only JSONL of sends and drops (path None: keep only the live summary)."""

    def __init__(self, path: Path | None = None, clock: Clock = time.time) -> None:
        self.path = path
        self._clock = clock
        self._summary = _Summary()
        self._file: IO[str] | None = None if path is None else _open_append(path)

    def record(
        self,
        *,
        kind: str,
        link: str,
        payload_bytes: int,
        wire_bytes: int,
        step: int,
        outcome: Outcome,
        reason: DropReason | None = None,
    ) -> None:
        if (outcome == "sent") != (reason is None) or (reason and reason not in DROP_REASONS):
            raise ValueError(f"ledger: outcome {outcome!r} with reason {reason!r}")
        rec = {
            "t": self._clock(),
            "step": step,
            "link": link,
            "kind": kind,
            "payload_bytes": payload_bytes,
            "wire_bytes": wire_bytes,
            "outcome": outcome,
            "reason": reason,
        }
        if self._file is not None:
            # One write per line keeps a crash to at most one partial (last) line.
            self._file.write(json.dumps(rec, separators=(",", ":")) + "\n")
        self._summary.add(rec)

    def summary(self) -> dict:
        """Counts and byte totals per kind and link, rates over the ledger's span."""
        return self._summary.to_dict()

    @staticmethod
    def read_summary(path: Path) -> dict:
        """The same summary, from the file alone; undecodable (partial) lines are counted."""
        acc = _Summary()
        with open(path, encoding="utf-8") as f:
            for line in f:
                if not line.strip():
                    continue
                try:
                    rec = json.loads(line)
                except json.JSONDecodeError:
                    acc.bad_lines += 1
                    continue
                acc.add(rec)
        return acc.to_dict()

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _open_append(path: Path) -> IO[str]:
    path.parent.mkdir(parents=True, exist_ok=True)
    ends_mid_line = False
    if path.exists() and path.stat().st_size > 0:
        with open(path, "rb") as f:
            f.seek(-1, 2)
            ends_mid_line = f.read(1) != b"\n"
    f = open(path, "a", buffering=1, encoding="utf-8")  # line-buffered: each record hits disk
    if ends_mid_line:
        f.write("\n")  # seal a crashed writer's partial line so ours stay whole
    return f
