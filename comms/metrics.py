"""Rate-limited metrics: processes publish flat scalar dicts; the launcher and observers subscribe.

Metrics are a live view, not a record (the run dir's JSONL is): a plain PUB drops what a slow
or absent subscriber cannot take, and a publisher sends at most one `MetricsMsg` per sender per
`min_interval_s`, keeping only the latest values in between.
"""
from __future__ import annotations

import logging
import time
from collections.abc import Iterable

import zmq

from comms.codec import decode, encode
from comms.ledger import Clock
from comms.messages import MalformedMessage, MetricsMsg
from comms.security import is_local_endpoint
from comms.sockets import OwnedSocket
from comms.sockets import bind as bind_socket
from comms.sockets import connect as connect_socket
from comms.transport import RejectLog

__all__ = ["MetricsPublisher", "MetricsSubscriber"]

log = logging.getLogger(__name__)

Values = dict[str, float | int | str]


class MetricsPublisher(OwnedSocket):
    """A PUB socket bound at `bind`, or connected to a collector's SUB at `connect` (how the
    launcher gathers every process's metrics on one socket); `publish` is rate-limited per
    sender."""

    def __init__(self, bind: str | None = None, *, connect: str | None = None,
                 min_interval_s: float = 0.5, ctx: zmq.Context | None = None,
                 clock: Clock = time.monotonic) -> None:
        if (bind is None) == (connect is None):
            raise ValueError("MetricsPublisher needs exactly one of bind and connect")
        self.min_interval_s = min_interval_s
        self._clock = clock
        super().__init__(zmq.PUB, ctx)
        try:
            if bind is not None:
                self.bound_endpoint: str = bind_socket(self._sock, bind)
            else:
                assert connect is not None
                connect_socket(self._sock, connect)
                self.bound_endpoint = connect
        except BaseException:
            self.close()
            raise
        if not is_local_endpoint(self.bound_endpoint):
            # The metrics channel never uses CURVE (it carries no input any process acts on),
            # so values leaving the machine are readable on the way: say so, once per socket.
            log.warning("metrics to %s travel unencrypted (CURVE covers the peer mesh and the control "
                        "channel only): anyone on the path can read them; publish to a collector "
                        "on this machine (127.0.0.1) to keep them private", self.bound_endpoint)
        self._last_sent: dict[int, float] = {}
        self._pending: dict[int, Values] = {}
        self._seq: dict[int, int] = {}
        self.sent = 0

    def publish(self, sender: int, values: Values, *, step: int = 0) -> bool:
        """Send `values` now if `sender` has not sent within `min_interval_s`, else keep them
        as the pending latest (replacing older pending values); True if sent now."""
        self._pending[sender] = dict(values)
        last = self._last_sent.get(sender)
        if last is not None and self._clock() - last < self.min_interval_s:
            return False
        self._send(sender, step)
        return True

    def flush(self, *, step: int = 0) -> int:
        """Send every sender's pending latest values now; returns how many were sent."""
        senders = list(self._pending)
        for sender in senders:
            self._send(sender, step)
        return len(senders)

    def _send(self, sender: int, step: int) -> None:
        values = self._pending.pop(sender)
        seq = self._seq.get(sender, 0)
        self._seq[sender] = seq + 1
        self._last_sent[sender] = self._clock()
        # PUB never blocks: with no subscriber or a full pipe the message is dropped (lossy by
        # design, see the module docstring).
        self._sock.send_multipart(encode(MetricsMsg(sender=sender, seq=seq, step=step,
                                                    values=values)), zmq.NOBLOCK)
        self.sent += 1


class MetricsSubscriber(OwnedSocket):
    """A SUB socket connected to every publisher endpoint, or bound at `bind` for publishers
    that connect; non-metrics input is counted."""

    def __init__(self, connect_endpoints: Iterable[str] = (), ctx: zmq.Context | None = None, *,
                 bind: str | None = None) -> None:
        super().__init__(zmq.SUB, ctx)
        self._sock.setsockopt(zmq.LINGER, 0)
        self._sock.setsockopt(zmq.SUBSCRIBE, b"")
        self.bound_endpoint: str | None = None
        try:
            for endpoint in connect_endpoints:
                connect_socket(self._sock, endpoint)
            if bind is not None:  # the collector end: publishers connect to it
                self.bound_endpoint = bind_socket(self._sock, bind)
        except BaseException:
            self.close()
            raise
        self._rejects = RejectLog("metrics subscriber", log)

    @property
    def rejected(self) -> dict[str, int]:
        return dict(self._rejects.counts)

    def poll(self, timeout_s: float) -> list[MetricsMsg]:
        """Wait up to `timeout_s` for the first metrics message, then take all already there."""
        deadline = time.monotonic() + timeout_s
        out: list[MetricsMsg] = []
        while not out and (remaining := deadline - time.monotonic()) > 0:
            if not self._sock.poll(timeout=max(1, int(remaining * 1000))):
                break
            while True:
                try:
                    frames = self._sock.recv_multipart(zmq.NOBLOCK)
                except zmq.Again:
                    break
                try:
                    msg = decode(frames)
                except MalformedMessage as e:
                    self._rejects.reject("malformed", str(e))
                    continue
                if isinstance(msg, MetricsMsg):
                    out.append(msg)
                else:
                    self._rejects.reject("kind", f"expected metrics, got {msg.KIND}")
        return out

