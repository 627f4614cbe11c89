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

A failed write (disk full, I/O error) never reaches the caller: the frame is already on the
wire. The line is lost and counted (`write_errors` in the live summary), one warning is logged
a minute, and the next line that is written starts with a newline, so a partial line spoils
itself only. A ledger file removed while the run goes on is noticed (checked about once a
second) and written anew.
"""

from __future__ import annotations

import errno
import json
import logging
import math
import os
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Protocol, Self, get_args

DropReason = Literal["budget", "age", "overflow", "hwm", "peer_lost", "shutdown"]
DROP_REASONS: tuple[DropReason, ...] = get_args(DropReason)
Outcome = Literal["sent", "dropped"]

log = logging.getLogger(__name__)

_CHECK_FILE_S = 1.0  # how often (ledger clock) to check that the file still exists
_WARN_EVERY_S = 60.0  # at most one write-error warning this often (monotonic)


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
        self.add_fields(rec["outcome"] == "sent", rec["reason"], rec["payload_bytes"],
                        rec["wire_bytes"])

    def add_fields(self, sent: bool, reason: str | None, payload_bytes: int,
                   wire_bytes: int) -> None:
        if sent:
            self.sent += 1
            self.payload_bytes_sent += payload_bytes
            self.wire_bytes_sent += wire_bytes
        else:
            self.dropped[reason] += 1  # type: ignore[index]
            self.payload_bytes_dropped += payload_bytes
            self.wire_bytes_dropped += wire_bytes

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
    write_errors: int = 0  # lines the writing process failed to write (live only: 0 from a file)
    t_min: float | None = None
    t_max: float | None = None
    step_min: int | None = None
    step_max: int | None = None
    streams: dict[tuple[str, str], _Stream] = field(default_factory=dict)

    def add(self, rec: dict) -> None:
        self.add_fields(rec["t"], rec["step"], rec["kind"], rec["link"],
                        rec["outcome"] == "sent", rec["reason"], rec["payload_bytes"],
                        rec["wire_bytes"])

    def add_fields(self, t: float, step: int, kind: str, link: str, sent: bool,
                   reason: str | None, payload_bytes: int, wire_bytes: int) -> None:
        """`add` without building a record dict (the live ledger's per-record path)."""
        self.records += 1
        if self.t_min is None:
            self.t_min = self.t_max = t
            self.step_min = self.step_max = step
        else:  # min() and max() written out (PLR1730): this runs once per send
            if t < self.t_min:  # noqa: PLR1730
                self.t_min = t
            if t > self.t_max:  # type: ignore[operator]  # noqa: PLR1730
                self.t_max = t
            if step < self.step_min:  # type: ignore[operator]  # noqa: PLR1730
                self.step_min = step
            if step > self.step_max:  # type: ignore[operator]  # noqa: PLR1730
                self.step_max = step
        stream = self.streams.get((kind, link))
        if stream is None:
            stream = self.streams[(kind, link)] = _Stream()
        stream.add_fields(sent, reason, payload_bytes, wire_bytes)

    def to_dict(self) -> dict:
        span_s = None if self.t_min is None else self.t_max - self.t_min
        span_steps = None if self.step_min is None else self.step_max - self.step_min
        streams: dict[str, dict[str, dict]] = {}
        for (kind, link), stream in sorted(self.streams.items()):
            streams.setdefault(kind, {})[link] = stream.to_dict(span_s, span_steps)
        return {
            "records": self.records,
            "bad_lines": self.bad_lines,
            "write_errors": self.write_errors,
            "span_s": span_s,
            "span_steps": span_steps,
            "streams": streams,  # streams[kind][link] -> totals and rates
        }


# The end of a line per reason (None: sent), and the exact line types `_line` formats itself.
_TAILS = {r: f'"outcome":"dropped","reason":{json.dumps(r)}}}\n' for r in DROP_REASONS}
_TAILS[None] = '"outcome":"sent","reason":null}\n'
_FAST_NUMBERS = (int, float)


class Ledger:
    """Append-only JSONL of sends and drops (path None: keep only the live summary).

    Each record is one `write` of one whole line to an unbuffered file, done before `record`
    returns: nothing waits in a buffer of ours, so a crash loses at most a line it interrupts
    mid-write, and other processes read every line so far while the run goes on. A write that
    fails is counted, not raised (see the module docstring); the live summary counts the
    record either way.
    """

    def __init__(self, path: Path | None = None, clock: Clock = time.time) -> None:
        self.path = path
        self._clock = clock
        self._summary = _Summary()
        self._fd: int | None = None if path is None else _open_append(path)
        self._middles: dict[tuple[str, str], str] = {}  # (link, kind) -> their JSON, formatted
        self._dirty = False  # a write failed, maybe mid-line: the next one starts a new line
        self._checked_t = -math.inf  # ledger-clock time of the last removed-file check (first write: now)
        self._warned = -math.inf  # monotonic time of the last write-error warning
        self._unwarned = 0  # write errors since then

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
        if (outcome == "sent") != (reason is None) or (
                reason is not None and reason not in DROP_REASONS):
            raise ValueError(f"ledger: outcome {outcome!r} with reason {reason!r}")
        t = self._clock()
        if self._fd is not None:
            self._write(t, self._line(t, step, link, kind, payload_bytes, wire_bytes, outcome, reason))
        self._summary.add_fields(t, step, kind, link, reason is None, reason, payload_bytes,
                                 wire_bytes)

    def record_sent(self, kind: str, link: str, payload_bytes: int, wire_bytes: int,
                    step: int) -> None:
        """`record(..., outcome="sent")`, positional: the once-per-message call of the send
        queue, without keyword parsing and the outcome/reason check."""
        t = self._clock()
        if self._fd is not None:
            self._write(t, self._line(t, step, link, kind, payload_bytes, wire_bytes, "sent", None))
        self._summary.add_fields(t, step, kind, link, True, None, payload_bytes, wire_bytes)

    def _write(self, t: float, line: str) -> None:
        """One line to the file; an OSError is counted and logged, never raised. The fast path
        adds only two compares: the removed-file check rides on the record's own clock
        reading (abs: a wall clock stepped back must not postpone it for good)."""
        if abs(t - self._checked_t) >= _CHECK_FILE_S:
            self._checked_t = t
            self._reopen_if_removed()
        data = line.encode()
        if self._dirty:
            data = b"\n" + data  # end the partial line a failed write may have left
        try:
            _write_all(self._fd, data)  # type: ignore[arg-type]  # checked by the callers
        except OSError as e:
            self._write_failed(e)
            return
        self._dirty = False

    def _write_failed(self, error: OSError) -> None:
        self._dirty = True
        self._summary.write_errors += 1
        self._unwarned += 1
        now = time.monotonic()
        if now - self._warned >= _WARN_EVERY_S:
            log.warning("ledger: cannot write %s (%s); %d line(s) lost since the last warning, %d in "
                        "all (the live summary still counts every record); free disk space or move "
                        "the run directory", self.path, error, self._unwarned, self._summary.write_errors)
            self._warned, self._unwarned = now, 0

    def _reopen_if_removed(self) -> None:
        """Write a new file at `path` if ours was deleted (a cleanup script, a user): lines
        written to an unlinked file would vanish unseen."""
        assert self._fd is not None and self.path is not None
        try:
            if os.fstat(self._fd).st_nlink > 0:
                return
            fd = _open_append(self.path)
        except OSError as e:
            self._write_failed(e)  # keep writing to the old descriptor; try again next check
            return
        os.close(self._fd)
        self._fd, self._dirty = fd, False
        log.warning("ledger: %s was removed while in use; writing a new one (earlier lines are "
                    "gone, the live summary still counts them)", self.path)

    def _line(self, t: float, step: int, link: str, kind: str, payload_bytes: int,
              wire_bytes: int, outcome: Outcome, reason: DropReason | None) -> str:
        """The record as `json.dumps(rec, separators=(",", ":"))` writes it, plus a newline.

        Formatted directly (json.dumps costs more than the rest of a send) when every number
        is a plain finite int or float, whose repr is exactly what json writes; anything
        else goes through json.dumps.
        """
        if (type(t) in _FAST_NUMBERS and math.isfinite(t) and type(step) is int
                and type(payload_bytes) is int and type(wire_bytes) is int
                and type(link) is str and type(kind) is str):
            middle = self._middles.get((link, kind))
            if middle is None:
                middle = self._middles[(link, kind)] = (
                    f'"link":{json.dumps(link)},"kind":{json.dumps(kind)},')
            return (f'{{"t":{t!r},"step":{step},{middle}"payload_bytes":{payload_bytes},'
                    f'"wire_bytes":{wire_bytes},{_TAILS[reason]}')
        rec = {"t": t, "step": step, "link": link, "kind": kind, "payload_bytes": payload_bytes,
               "wire_bytes": wire_bytes, "outcome": outcome, "reason": reason}
        return json.dumps(rec, separators=(",", ":")) + "\n"

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
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _write_all(fd: int, data: bytes) -> None:
    """One write call per line; loops only if the OS takes part of it (disk full, signal)."""
    written = os.write(fd, data)
    if written < len(data):
        view = memoryview(data)[written:]
        while view:
            written = os.write(fd, view)
            if written == 0:  # no progress and no error: do not spin
                raise OSError(errno.EIO, "write made no progress")
            view = view[written:]


def _open_append(path: Path) -> int:
    """An O_APPEND descriptor on `path` (created if missing), a crashed writer's partial last
    line sealed with a newline so that ours stay whole."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o666)
    try:
        size = os.fstat(fd).st_size
        if size > 0:
            with open(path, "rb") as f:
                f.seek(-1, 2)
                if f.read(1) != b"\n":
                    _write_all(fd, b"\n")
    except BaseException:
        os.close(fd)
        raise
    return fd
