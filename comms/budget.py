"""Byte budgets: parsing, token buckets, and the priority send queue in front of them.

The sharing path hands scored items to a `SendQueue`; `drain` sends them highest score
first while the bucket holds enough bytes. Nothing ever blocks forever: an item is either
sent or dropped with one of the ledger's reasons.

- budget:    the item is larger than the bucket's burst, so it could never be sent
             (dropped at `offer`).
- age:       it waited longer than `max_age_s`.
- overflow:  the queue was full and it had the lowest score (the new item included).
- hwm:       the transport refused it (`send` returned False, e.g. a ZeroMQ high-water mark);
             its tokens stay spent, so the budget remains an upper bound on what was offered
             to the wire.
- peer_lost: `drop_all`, when no peer is subscribed to the link any more (ZeroMQ would
             publish to nobody without a word).
- shutdown:  `drop_all` when the transport closes with items still queued.

Guarantee (per link): over any window of W seconds (or W env steps for per-step budgets),
the bytes sent are at most rate * W + burst.
"""

from __future__ import annotations

import bisect
import math
import re
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from comms.ledger import DROP_REASONS, Clock, DropReason, Ledger, Outcome

Per = Literal["s", "step"]

# An experience chunk is tens of KiB: a floor on the default burst lets one fit even under
# a tiny budget (it waits for tokens instead of being dropped as unsendable).
MIN_DEFAULT_BURST = 64 * 1024

_UNITS = {"B": 1, "KB": 1000, "kB": 1000, "MB": 1000**2, "KiB": 1024, "MiB": 1024**2}
_NUMBER = r"(?P<num>\d+(?:\.\d*)?|\.\d+)"
_BUDGET_RE = re.compile(rf"\s*{_NUMBER}\s*(?P<unit>{'|'.join(_UNITS)})\s*/\s*(?P<per>s|step)\s*")
_FORMS = (
    "'unlimited', '<number><unit>/s' or '<number><unit>/step' with number > 0 and unit"
    " B, KB, MB, KiB or MiB (e.g. '50KB/s', '2KB/step')"
)


@dataclass(frozen=True)
class Budget:
    """A byte budget: `rate` bytes per `per` (both None: unlimited) with a `burst` in bytes.

    `burst` left out defaults to max(one second's or one step's worth of rate, 64 KiB);
    it is also the largest item the budget can ever send. Unlimited has an infinite burst.
    """

    rate: float | None
    per: Per | None
    burst: float = None  # type: ignore[assignment]  # resolved in __post_init__

    def __post_init__(self) -> None:
        if (self.rate is None) != (self.per is None):
            raise ValueError(f"budget: rate {self.rate!r} and per {self.per!r}: set both or neither")
        if self.rate is not None and not (0 < self.rate < math.inf):
            raise ValueError(f"budget: rate must be positive and finite, got {self.rate!r}")
        if self.burst is None:
            default = math.inf if self.rate is None else max(self.rate, MIN_DEFAULT_BURST)
            object.__setattr__(self, "burst", float(default))
        elif not self.burst > 0:
            raise ValueError(f"budget: burst must be positive, got {self.burst!r}")


def parse_budget(text: str, burst: float | None = None) -> Budget:
    """'unlimited', '50KB/s', '2KB/step', '1.5MB/s', '64KiB/s' -> Budget (KB = 1000 B)."""
    if text.strip().lower() == "unlimited":
        return Budget(None, None, burst)
    m = _BUDGET_RE.fullmatch(text)
    if m is None or float(m["num"]) == 0:
        raise ValueError(f"bad budget {text!r}: expected {_FORMS}")
    return Budget(float(m["num"]) * _UNITS[m["unit"]], m["per"], burst)  # type: ignore[arg-type]


class Bucket(Protocol):
    """Holds up to `burst` bytes of tokens; refilled by time or by env steps."""

    @property
    def burst(self) -> float: ...

    def try_consume(self, nbytes: float) -> bool:
        """Take `nbytes` tokens if all are there; otherwise take none."""
        ...

    def advance_steps(self, n: int) -> None:
        """`n` env steps passed (refills per-step buckets; time-driven ones ignore it)."""
        ...


class _Tokens:
    """The shared part of the finite buckets: a level capped at `burst`; starts full."""

    def __init__(self, rate: float, burst: float) -> None:
        self.rate = rate
        self.burst = burst
        self._tokens = burst

    def _take(self, nbytes: float) -> bool:
        if nbytes > self._tokens:
            return False
        self._tokens -= nbytes
        return True

    def _refill(self, nbytes: float) -> None:
        self._tokens = min(self.burst, self._tokens + nbytes)


class TokenBucket(_Tokens):
    """Refills at `rate` bytes per second of `clock`."""

    def __init__(self, rate: float, burst: float, clock: Clock = time.monotonic) -> None:
        super().__init__(rate, burst)
        self._clock = clock
        self._last = clock()

    def try_consume(self, nbytes: float) -> bool:
        now = self._clock()
        self._refill(self.rate * max(0.0, now - self._last))
        self._last = now
        return self._take(nbytes)

    def advance_steps(self, n: int) -> None:
        pass  # time, not steps, refills this bucket


class StepBucket(_Tokens):
    """Refills by `rate` bytes per env step, driven by `advance_steps`."""

    def try_consume(self, nbytes: float) -> bool:
        return self._take(nbytes)

    def advance_steps(self, n: int) -> None:
        if n < 0:
            raise ValueError(f"advance_steps: n must be >= 0, got {n}")
        self._refill(self.rate * n)


class UnlimitedBucket:
    """Always has tokens."""

    burst = math.inf

    def try_consume(self, nbytes: float) -> bool:
        return True

    def advance_steps(self, n: int) -> None:
        pass


def make_bucket(budget: Budget, clock: Clock = time.monotonic) -> Bucket:
    if budget.rate is None:
        return UnlimitedBucket()
    if budget.per == "s":
        return TokenBucket(budget.rate, budget.burst, clock)
    return StepBucket(budget.rate, budget.burst)


@dataclass(slots=True)
class _Entry:
    item: Any
    score: float
    wire_bytes: int
    kind: str
    link: str
    payload_bytes: int
    env_step: int
    t_offer: float
    seq: int


def _rank(e: _Entry) -> tuple[float, int]:
    # Ascending: the best (highest score, then oldest) is last, the worst is first.
    return (e.score, -e.seq)


@dataclass
class _KindCounts:
    sent: int = 0
    sent_bytes: int = 0
    dropped: Counter[str] = field(default_factory=Counter)
    dropped_bytes: int = 0


class SendQueue:
    """A bounded priority queue (highest score first, ties FIFO) drained through a bucket.

    One queue per link. `max_age_s` is in clock seconds whatever the budget's unit (None:
    no limit). Each send and drop is counted (`stats`) and recorded to `ledger` if given,
    with the env step the item was offered at.
    """

    def __init__(
        self,
        budget: Budget,
        max_items: int,
        max_age_s: float | None,
        clock: Clock = time.monotonic,
        ledger: Ledger | None = None,
    ) -> None:
        if max_items < 1:
            raise ValueError(f"SendQueue: max_items must be >= 1, got {max_items}")
        self.budget = budget
        self.bucket = make_bucket(budget, clock)
        self.max_items = max_items
        self.max_age_s = max_age_s
        self._clock = clock
        self._ledger = ledger
        self._entries: list[_Entry] = []  # sorted by _rank
        self._seq = 0
        self._kinds: dict[str, _KindCounts] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def offer(
        self,
        item: Any,
        score: float,
        wire_bytes: int,
        kind: str,
        link: str,
        payload_bytes: int,
        env_step: int,
    ) -> bool:
        """Queue `item`; False if it was dropped at once (oversize, or lowest of a full queue)."""
        if math.isnan(score):
            raise ValueError(f"SendQueue.offer: score is NaN for a {kind!r} item")
        entry = _Entry(
            item, score, wire_bytes, kind, link, payload_bytes, env_step, self._clock(), self._seq
        )
        self._seq += 1
        if kind not in self._kinds:
            self._kinds[kind] = _KindCounts()  # stats list a kind from its first offer
        if wire_bytes > self.bucket.burst:
            self._record(entry, "budget")
            return False
        self._expire()
        if not self._entries:
            self._entries.append(entry)  # fast path: an empty queue needs no search
            return True
        if len(self._entries) >= self.max_items:
            if _rank(entry) < _rank(self._entries[0]):
                self._record(entry, "overflow")
                return False
            self._record(self._entries.pop(0), "overflow")
        bisect.insort(self._entries, entry, key=_rank)
        return True

    def drain(self, send: Callable[[Any], bool]) -> int:
        """Send in score order while the bucket allows; returns how many were sent.

        Strict priority: the head waits for tokens rather than letting a smaller,
        lower-scored item overtake it (it fits the burst, so it is never stuck for good).
        """
        self._expire()
        sent = 0
        try_consume = self.bucket.try_consume
        while self._entries and try_consume(self._entries[-1].wire_bytes):
            entry = self._entries.pop()
            if send(entry.item):
                self._record_sent(entry)
                sent += 1
            else:
                self._record(entry, "hwm")
        return sent

    def advance_steps(self, n: int) -> None:
        """`n` env steps passed: refills a per-step budget."""
        self.bucket.advance_steps(n)

    def drop_all(self, reason: DropReason = "peer_lost") -> int:
        """Drop everything queued (e.g. the peer went away); returns how many."""
        entries, self._entries = self._entries, []
        for entry in reversed(entries):  # best first, as they would have been sent
            self._record(entry, reason)
        return len(entries)

    def stats(self) -> dict:
        """Queue depth, sends and drops in total, per reason and per kind."""
        kinds = self._kinds.values()
        return {
            "queued": len(self._entries),
            "queued_bytes": sum(e.wire_bytes for e in self._entries),
            "sent": sum(k.sent for k in kinds),
            "sent_bytes": sum(k.sent_bytes for k in kinds),
            "dropped": {r: sum(k.dropped[r] for k in kinds) for r in DROP_REASONS},
            "dropped_bytes": sum(k.dropped_bytes for k in kinds),
            "by_kind": {
                name: {
                    "sent": k.sent,
                    "sent_bytes": k.sent_bytes,
                    "dropped": {r: k.dropped[r] for r in DROP_REASONS},
                    "dropped_bytes": k.dropped_bytes,
                }
                for name, k in sorted(self._kinds.items())
            },
        }

    def _expire(self) -> None:
        if self.max_age_s is None:
            return
        oldest_allowed = self._clock() - self.max_age_s
        keep = [e for e in self._entries if e.t_offer >= oldest_allowed]
        if len(keep) < len(self._entries):
            for entry in reversed(self._entries):
                if entry.t_offer < oldest_allowed:
                    self._record(entry, "age")
            self._entries = keep

    def _record_sent(self, entry: _Entry) -> None:
        """`_record(entry, None)`, the per-message path, without its branches."""
        counts = self._kinds[entry.kind]
        counts.sent += 1
        counts.sent_bytes += entry.wire_bytes
        if self._ledger is not None:
            self._ledger.record_sent(entry.kind, entry.link, entry.payload_bytes,
                                     entry.wire_bytes, entry.env_step)

    def _record(self, entry: _Entry, reason: DropReason | None) -> None:
        """Count and log one sent (reason None) or dropped item."""
        counts = self._kinds[entry.kind]
        outcome: Outcome = "sent" if reason is None else "dropped"
        if reason is None:
            counts.sent += 1
            counts.sent_bytes += entry.wire_bytes
        else:
            counts.dropped[reason] += 1
            counts.dropped_bytes += entry.wire_bytes
        if self._ledger is not None:
            self._ledger.record(
                kind=entry.kind,
                link=entry.link,
                payload_bytes=entry.payload_bytes,
                wire_bytes=entry.wire_bytes,
                step=entry.env_step,
                outcome=outcome,
                reason=reason,
            )
