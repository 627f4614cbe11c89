"""Transports: move typed messages between agents through a byte-budgeted send queue.

One interface (`Transport`), two implementations:

- `InProcTransport` on an `InProcHub`: every agent in one process, for fast unit tests of the
  agent loop. Messages still go through `encode`/`decode`, the `SendQueue` and the `Ledger`,
  so byte accounting is identical to the real thing; time is an injectable clock.
- `ZmqTransport`: the peer mesh. Each agent binds one XPUB socket and connects one SUB socket
  per peer, to that peer's XPUB.

Sending: `send` encodes the message and offers it to the agent's broadcast link "i->*"
(a `SendQueue`); `pump` drains the queue onto the wire, sends a heartbeat when due and updates
peer liveness. Nothing is dropped silently: every drop has a ledger reason.

Slow joiners (ZeroMQ PUB/SUB loses what is published before a subscription arrives): every
subscriber also subscribes to its own hello topic `b"\\x00hello:<id>"`; the publisher's XPUB
(XPUB_VERBOSE) reads that subscription and so knows exactly which peer has joined. Until every
expected peer has joined once, `pump` does not drain the queue: data offered before then waits
(subject to the queue's `max_age_s` and `max_items`) instead of being published to nobody.
After that the queue drains while at least one peer is subscribed; a peer that leaves and
comes back misses what was sent meanwhile (it is reported "lost", then "back"). When every peer
has unsubscribed (libzmq unsubscribes a subscriber that disconnects), ZeroMQ would publish to
nobody without a word, so queued items are dropped as "peer_lost" instead. `close` records what
is still queued as "shutdown" drops.

Senders: a message whose sender id is not a member this transport connected to or expects is
rejected ("unknown_sender"). Each peer gets a SUB of its own, so a message's link says who sent
it: one that claims another member's id is rejected ("wrong_sender"). With CURVE each SUB also
checks its peer's server key, so a member that holds a valid key still cannot speak for another.
Received frames larger than the codec's limits are refused by libzmq (`MAX_FRAME_BYTES`).

High-water mark: the XPUB has XPUB_NODROP, so a full pipe makes a non-blocking send raise
`zmq.Again`; the send callback then returns False and the queue records an "hwm" drop. One peer
that stops reading therefore blocks the broadcast for all (counted, never silent).

Liveness: a `HeartbeatMsg` every `heartbeat_s` (bypasses the byte budget, recorded in the ledger
as kind "heartbeat"); a peer silent for `heartbeat_misses * heartbeat_s` is "lost" (event),
"back" as soon as anything arrives from it again. `heartbeat()` sends one when due and nothing
else, for callers busy between pumps (training rounds ask it between updates).

CURVE: handshakes a peer's key fails are seen only on socket monitors; `pump` reads them every
`CURVE_POLL_S`, so they are logged and counted in `stats()["rejected"]["curve"]`.

Threading: a transport is owned by one thread, which makes every call on it (ZeroMQ sockets are
not thread-safe).
"""
from __future__ import annotations

import logging
import math
import time
from collections import Counter, deque
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

import zmq

from comms.budget import Budget, SendQueue
from comms.codec import _encode, _wire_size_of_bytes, decode, encode, payload_size, wire_size
from comms.ledger import Clock, Ledger, link_name
from comms.messages import HeartbeatMsg, MalformedMessage, Message
from comms.security import warn_if_insecure
from comms.sockets import MAX_FRAME_BYTES, EndpointError, require_shared_context
from comms.sockets import bind as bind_socket
from comms.sockets import connect as connect_socket

__all__ = ["CurveSetup", "InProcHub", "InProcTransport", "PeerState", "RejectLog", "Transport",
           "ZmqTransport", "hello_topic"]

log = logging.getLogger(__name__)

PeerState = Literal["joined", "alive", "lost"]
PeerEvent = Literal["joined", "lost", "back"]

HELLO_PREFIX = b"\x00hello:"
_MORE = zmq.NOBLOCK | zmq.SNDMORE
_COPY_THRESHOLD = zmq.COPY_THRESHOLD  # 64 KiB: received frames this large are not copied
DEFAULT_MAX_ITEMS = 1000
# While every expected peer has joined, `pump` reads the XPUB's subscription messages at most
# this often (real seconds): they only announce peers (re)joining, and reading them costs about
# as much as sending a message. `poll` reads them whenever they are there.
SERVICE_INTERVAL_S = 0.001
# How often `pump` asks CURVE's socket monitors for rejected handshakes (real seconds).
CURVE_POLL_S = 0.5


def hello_topic(agent_id: int) -> bytes:
    """The per-agent topic a subscriber subscribes to so publishers learn it has joined.

    No data frame starts with a zero byte (frame 0 is a msgpack map), so nothing is ever
    published on it.
    """
    return HELLO_PREFIX + str(agent_id).encode()


class Transport(Protocol):
    """What the agent loop needs from comms."""

    agent_id: int

    def send(self, msg: Message, *, score: float = 0.0) -> bool:
        """Queue `msg` on this agent's broadcast link; False if it was dropped at once."""
        ...

    def pump(self) -> None:
        """Drain the queue onto the wire, heartbeat when due, update peer liveness."""
        ...

    def poll(self, timeout_s: float) -> list[Message]:
        """Messages received within `timeout_s` (heartbeats are consumed, not returned)."""
        ...

    def advance_steps(self, n: int) -> None:
        """`n` env steps passed (refills per-step budgets)."""
        ...

    def heartbeat(self) -> None:
        """Send a heartbeat if one is due, nothing else: for long computations between pumps
        (a training round), so that peers do not report this one lost meanwhile."""
        ...

    def peers(self) -> dict[int, PeerState]: ...

    def events(self) -> list[tuple[str, int]]:
        """Drain the ("joined" | "lost" | "back", peer) events since the last call."""
        ...

    def stats(self) -> dict: ...

    def close(self) -> None: ...


class CurveSetup(Protocol):
    """CURVE keys for sockets (implemented in comms.security)."""

    def apply_server(self, socket: zmq.Socket) -> None: ...

    def apply_client(self, socket: zmq.Socket, peer_id: int) -> None:
        """Set the client keys and `peer_id`'s server key before the next `connect`."""
        ...

    def poll_monitor(self, timeout_s: float = 0.0) -> int:
        """Count and log the handshakes rejected since the last call; how many are new."""
        ...

    def rejections(self) -> dict[str, int]:
        """Rejected handshakes so far, per "<role> <endpoint>"."""
        ...


class RejectLog:
    """Counts rejected input by reason; logs at most one line per reason per `interval_s`."""

    def __init__(self, what: str, logger: logging.Logger, clock: Clock = time.monotonic,
                 interval_s: float = 1.0) -> None:
        self.what = what
        self._log = logger
        self.counts: Counter[str] = Counter()
        self._clock = clock
        self._interval_s = interval_s
        self._last_log: dict[str, float] = {}

    def reject(self, reason: str, detail: str) -> None:
        self.counts[reason] += 1
        now = self._clock()
        if now - self._last_log.get(reason, -math.inf) >= self._interval_s:
            self._last_log[reason] = now
            self._log.warning("%s: rejected a message (%s: %s); %d rejected for this reason so far",
                        self.what, reason, detail, self.counts[reason])


@dataclass
class _Peer:
    state: PeerState
    last_seen: float


class _Core:
    """What both transports share: queue, ledger, heartbeats, liveness, decoding, stats.

    Subclasses provide `_wire_send(frames) -> bool` (False: refused, e.g. high-water mark) and
    `_ready() -> bool` (whether the queue may drain yet).
    """

    def __init__(self, agent_id: int, budget: Budget, *, ledger: Ledger | None,
                 heartbeat_s: float, heartbeat_misses: int, clock: Clock,
                 max_items: int, max_age_s: float | None) -> None:
        if heartbeat_s <= 0 or heartbeat_misses < 1:
            raise ValueError(f"heartbeat_s must be > 0 and heartbeat_misses >= 1, got "
                             f"{heartbeat_s} and {heartbeat_misses}")
        self.agent_id = agent_id
        self.link = link_name(agent_id, None)
        self._ledger = ledger
        self._clock = clock
        self._queue = SendQueue(budget, max_items, max_age_s, clock, ledger)
        self._heartbeat_s = heartbeat_s
        self._lost_after_s = heartbeat_s * heartbeat_misses
        self._next_heartbeat = -math.inf  # the first pump announces us at once
        self._heartbeat_seq = 0
        self._heartbeats: Counter[str] = Counter()
        self._step = 0
        self._peers: dict[int, _Peer] = {}
        self._events: list[tuple[str, int]] = []
        self._received: Counter[str] = Counter()
        self._received_bytes: Counter[str] = Counter()  # wire bytes of accepted messages, by kind
        self._rejects = RejectLog(f"transport {agent_id}", log)
        self._closed = False

    # --- the Transport interface ----------------------------------------------------------

    def send(self, msg: Message, *, score: float = 0.0) -> bool:
        frames, payload_bytes = _encode(msg)
        return self._queue.offer(frames, score, _wire_size_of_bytes(frames), msg.KIND, self.link,
                                 payload_bytes, msg.step)

    def pump(self) -> None:
        self._pump_service()
        now = self._clock()
        self._heartbeat_if_due(now)
        if self._ready():
            if self._audience():
                self._queue.drain(self._wire_send)
            elif len(self._queue):
                self._queue.drop_all("peer_lost")
        self._check_liveness(now)

    def heartbeat(self) -> None:
        self._heartbeat_if_due(self._clock())

    def advance_steps(self, n: int) -> None:
        self._step += n
        self._queue.advance_steps(n)

    def peers(self) -> dict[int, PeerState]:
        return {pid: p.state for pid, p in sorted(self._peers.items())}

    def events(self) -> list[tuple[str, int]]:
        events, self._events = self._events, []
        return events

    def stats(self) -> dict:
        queue = self._queue.stats()
        return {
            **queue,
            "received": dict(self._received),
            "received_bytes": dict(self._received_bytes),
            "rejected": dict(self._rejects.counts),
            "hwm_drops": queue["dropped"]["hwm"] + self._heartbeats["dropped"],
            "heartbeats": {k: self._heartbeats[k] for k in ("sent", "dropped", "received")},
            "peers": self.peers(),
        }

    # --- shared machinery -----------------------------------------------------------------

    def _service(self) -> None:
        """Hook for transport housekeeping before each pump (ZeroMQ: read subscriptions)."""

    def _pump_service(self) -> None:
        """What `pump` runs first: `_service`, unless the transport says it is not due."""
        self._service()

    def _ready(self) -> bool:
        return True

    def _audience(self) -> bool:
        """Whether anyone would receive what is published now."""
        return True

    def _known_sender(self, sender: int) -> bool:
        """Whether `sender` is a member this transport listens to."""
        return True

    def _heartbeat_if_due(self, now: float) -> None:
        if now >= self._next_heartbeat:
            self._next_heartbeat = now + self._heartbeat_s
            self._send_heartbeat()

    def _close_queue(self) -> None:
        """Record what is still queued as dropped ("shutdown"): nothing leaves unaccounted."""
        if len(self._queue):
            self._queue.drop_all("shutdown")

    def _wire_send(self, frames: list[bytes]) -> bool:
        raise NotImplementedError

    def _send_heartbeat(self) -> None:
        msg = HeartbeatMsg(sender=self.agent_id, seq=self._heartbeat_seq, step=self._step,
                           time=time.time())
        self._heartbeat_seq += 1
        frames = encode(msg)
        sent = self._wire_send(frames)
        self._heartbeats["sent" if sent else "dropped"] += 1
        if self._ledger is not None:
            self._ledger.record(kind=msg.KIND, link=self.link, payload_bytes=payload_size(msg),
                                wire_bytes=wire_size(frames), step=self._step,
                                outcome="sent" if sent else "dropped",
                                reason=None if sent else "hwm")

    def _joined(self, peer: int) -> None:
        """`peer` subscribed to us (or attached to the hub)."""
        if peer == self.agent_id or peer in self._peers:
            return
        self._peers[peer] = _Peer("joined", self._clock())
        self._events.append(("joined", peer))

    def _accept(self, frames: Sequence[Any], via: int | None = None) -> Message | None:
        """Decode one received frame list; count and log it if rejected. `via`: the peer whose
        link it came on, where the transport knows it (the message must claim that sender)."""
        try:
            msg = decode(frames)
        except MalformedMessage as e:
            self._rejects.reject("malformed", str(e))
            return None
        if msg.sender == self.agent_id:
            self._rejects.reject("own_id", f"{msg.KIND} claims our own sender id")
            return None
        if not self._known_sender(msg.sender):
            # Ids nobody registered would become "peers" (liveness events, per-sender state in
            # the learner) for whoever can publish to us.
            self._rejects.reject("unknown_sender", f"{msg.KIND} from sender {msg.sender}, "
                                 "which is not a member of this run")
            return None
        if via is not None and msg.sender != via:
            self._rejects.reject("wrong_sender", f"{msg.KIND} claims sender {msg.sender} on the "
                                 f"link from peer {via}")
            return None
        self._received[msg.KIND] += 1
        self._received_bytes[msg.KIND] += sum(map(len, frames))
        peer = self._peers.get(msg.sender)
        now = self._clock()
        if peer is None:
            self._peers[msg.sender] = _Peer("alive", now)
            self._events.append(("joined", msg.sender))
        else:
            if peer.state == "lost":
                self._events.append(("back", msg.sender))
            peer.state, peer.last_seen = "alive", now
        if isinstance(msg, HeartbeatMsg):
            self._heartbeats["received"] += 1
            return None
        return msg

    def _check_liveness(self, now: float) -> None:
        for pid, peer in self._peers.items():
            if peer.state != "lost" and now - peer.last_seen > self._lost_after_s:
                peer.state = "lost"
                self._events.append(("lost", pid))


# --- in-process -------------------------------------------------------------------------------

class InProcHub:
    """Per-agent inboxes of frame lists; a broadcast appends to every other member's inbox.

    `hwm` bounds each inbox: a broadcast that finds any inbox full is refused as a whole
    (like XPUB_NODROP), and the sender counts an "hwm" drop.
    """

    def __init__(self, hwm: int = 1000) -> None:
        self.hwm = hwm
        self._inboxes: dict[int, deque[list[bytes]]] = {}

    def attach(self, agent_id: int) -> deque[list[bytes]]:
        if agent_id in self._inboxes:
            raise ValueError(f"agent {agent_id} is already attached to this hub")
        self._inboxes[agent_id] = deque()
        return self._inboxes[agent_id]

    def detach(self, agent_id: int) -> None:
        self._inboxes.pop(agent_id, None)

    def members(self) -> set[int]:
        return set(self._inboxes)

    def broadcast(self, sender: int, frames: list[bytes]) -> bool:
        targets = [box for pid, box in self._inboxes.items() if pid != sender]
        if any(len(box) >= self.hwm for box in targets):
            return False
        for box in targets:
            box.append(list(frames))
        return True

    def deliver(self, agent_id: int, frames: list[Any]) -> None:
        """Put raw frames in one inbox (tests inject garbage this way)."""
        self._inboxes[agent_id].append(frames)


class InProcTransport(_Core):
    """All agents in one process: no sockets, no threads; `poll` never waits."""

    def __init__(self, hub: InProcHub, agent_id: int, budget: Budget, *,
                 ledger: Ledger | None = None, heartbeat_s: float = 1.0,
                 heartbeat_misses: int = 3, clock: Clock = time.monotonic,
                 max_items: int = DEFAULT_MAX_ITEMS, max_age_s: float | None = None) -> None:
        super().__init__(agent_id, budget, ledger=ledger, heartbeat_s=heartbeat_s,
                         heartbeat_misses=heartbeat_misses, clock=clock, max_items=max_items,
                         max_age_s=max_age_s)
        self._hub = hub
        self._inbox = hub.attach(agent_id)

    def poll(self, timeout_s: float) -> list[Message]:
        # Single process: nothing can arrive while we wait, so the timeout is not waited out.
        self._service()
        out = []
        while self._inbox:
            msg = self._accept(self._inbox.popleft())
            if msg is not None:
                out.append(msg)
        self._check_liveness(self._clock())
        return out

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._close_queue()
            self._hub.detach(self.agent_id)

    def _service(self) -> None:
        for pid in self._hub.members():
            self._joined(pid)

    def _wire_send(self, frames: list[bytes]) -> bool:
        return self._hub.broadcast(self.agent_id, frames)


# --- ZeroMQ -----------------------------------------------------------------------------------

_warned_insecure = False


def _warn_if_insecure(bind: str, curve: CurveSetup | None) -> None:
    """Once per process: the shared check in comms.security says whether it warned."""
    global _warned_insecure
    if not _warned_insecure:
        _warned_insecure = warn_if_insecure(bind, curve is not None)


class ZmqTransport(_Core):
    """The peer mesh: one XPUB bound at `bind`, and one SUB per peer connected to its endpoint
    (one each, so that what arrives is known to come from that peer: see "Senders" above).

    `peers` maps peer id -> endpoint to connect now; `expect` names further peers that must join
    before data flows whose endpoints come later (`connect_peers`). Bind `tcp://127.0.0.1:*`
    for a random port and read `bound_endpoint`.
    """

    def __init__(self, agent_id: int, bind: str, peers: dict[int, str], budget: Budget, *,
                 ctx: zmq.Context | None = None, ledger: Ledger | None = None,
                 heartbeat_s: float = 1.0, heartbeat_misses: int = 3, hwm: int = 1000,
                 clock: Clock = time.monotonic, curve: CurveSetup | None = None,
                 expect: Collection[int] = (), max_items: int = DEFAULT_MAX_ITEMS,
                 max_age_s: float | None = None) -> None:
        require_shared_context(ctx, curve, "ZmqTransport")
        super().__init__(agent_id, budget, ledger=ledger, heartbeat_s=heartbeat_s,
                         heartbeat_misses=heartbeat_misses, clock=clock, max_items=max_items,
                         max_age_s=max_age_s)
        self._own_ctx = ctx is None
        self._ctx = zmq.Context() if ctx is None else ctx
        self._curve = curve
        self._expected: set[int] = set(expect) - {agent_id}
        self._hello_seen: set[int] = set()  # peers that have subscribed once
        self._present: set[int] = set()  # peers subscribed now (an unsubscribe removes them)
        self._next_service = -math.inf  # see SERVICE_INTERVAL_S
        self._next_curve_poll = -math.inf  # see CURVE_POLL_S
        self._connected: dict[int, str] = {}
        self._subs: dict[int, zmq.Socket] = {}  # peer id -> the SUB connected to it
        self._sub_peer: dict[zmq.Socket, int] = {}  # and back
        self._hwm = hwm
        _warn_if_insecure(bind, curve)
        self._sockets: list[zmq.Socket] = []
        try:
            self._pub = self._socket(zmq.XPUB)
            self._pub.setsockopt(zmq.SNDHWM, hwm)
            self._pub.setsockopt(zmq.XPUB_VERBOSE, 1)  # pass every subscription: hellos
            self._pub.setsockopt(zmq.XPUB_NODROP, 1)  # full pipe -> zmq.Again, not a silent drop
            if curve is not None:
                curve.apply_server(self._pub)
            self._endpoint = bind_socket(self._pub, bind)
            self._poller = zmq.Poller()
            self._poller.register(self._pub, zmq.POLLIN)
            self.connect_peers(peers)
        except BaseException:
            self.close()
            raise

    @property
    def bound_endpoint(self) -> str:
        """The XPUB's real endpoint (with the port chosen for `*`)."""
        return self._endpoint

    def connect_peers(self, peers: dict[int, str]) -> None:
        """Connect to (and expect) more peers; a known id with a new endpoint is reconnected."""
        for pid, endpoint in peers.items():
            if pid == self.agent_id or self._connected.get(pid) == endpoint:
                continue
            self._drop_sub(pid)
            sub = self._new_sub(pid)
            try:
                connect_socket(sub, endpoint)
            except EndpointError as e:  # a peer that advertised garbage: not ours to crash on
                self._rejects.reject("bad_endpoint", f"peer {pid}: {e}")
                self._drop_sub(pid)
                self._connected.pop(pid, None)
                continue
            self._connected[pid] = endpoint
            self._expected.add(pid)

    def _new_sub(self, pid: int) -> zmq.Socket:
        """A SUB for peer `pid` alone, registered with the poller (not connected yet)."""
        sub = self._socket(zmq.SUB)
        sub.setsockopt(zmq.RCVHWM, self._hwm)
        sub.setsockopt(zmq.MAXMSGSIZE, MAX_FRAME_BYTES)
        sub.setsockopt(zmq.SUBSCRIBE, b"")
        sub.setsockopt(zmq.SUBSCRIBE, hello_topic(self.agent_id))
        if self._curve is not None:
            self._curve.apply_client(sub, pid)
        self._subs[pid], self._sub_peer[sub] = sub, pid
        self._poller.register(sub, zmq.POLLIN)
        return sub

    def _drop_sub(self, pid: int) -> None:
        """Close peer `pid`'s SUB if it has one (a new endpoint, a failed connect)."""
        sub = self._subs.pop(pid, None)
        if sub is None:
            return
        del self._sub_peer[sub]
        self._poller.unregister(sub)
        self._sockets.remove(sub)
        sub.close(linger=0)

    def wait_for_peers(self, timeout_s: float) -> bool:
        """Pump until every expected peer has joined (subscribed to us); False on timeout."""
        deadline = time.monotonic() + timeout_s
        while True:
            self.pump()
            if self._ready():
                return True
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            self._pub.poll(timeout=max(1, int(min(remaining, self._heartbeat_s) * 1000)))

    def poll(self, timeout_s: float) -> list[Message]:
        """Wait up to `timeout_s` for the first message, then take everything already there."""
        deadline = time.monotonic() + timeout_s
        out: list[Message] = []
        while True:
            remaining = max(0.0, deadline - time.monotonic())
            ready = dict(self._poller.poll(timeout=0 if out else int(remaining * 1000)))
            for sock in ready:
                if sock is self._pub:
                    self._service()
                else:
                    self._read_available(sock, out)
            if out or not ready or remaining == 0:
                break
        self._check_liveness(self._clock())
        return out

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._close_queue()
        for sock in self._sockets:
            sock.close(linger=0)
        if self._own_ctx:
            self._ctx.term()

    def stats(self) -> dict:
        stats = {**super().stats(), "waiting_for": sorted(self._expected - self._hello_seen),
                 "subscribed": sorted(self._present)}
        if self._curve is not None:
            curve = sum(self._curve.rejections().values())
            if curve:
                stats["rejected"]["curve"] = curve
        return stats

    def _socket(self, kind: int) -> zmq.Socket:
        sock = self._ctx.socket(kind)
        self._sockets.append(sock)  # first, so that close() finds it whatever fails next
        sock.setsockopt(zmq.LINGER, 0)
        return sock

    def _ready(self) -> bool:
        return self._expected <= self._hello_seen

    def _audience(self) -> bool:
        return bool(self._present)

    def _known_sender(self, sender: int) -> bool:
        return sender in self._connected or sender in self._expected

    def _pump_service(self) -> None:
        now = time.monotonic()
        if now >= self._next_service or not self._ready():
            self._next_service = now + SERVICE_INTERVAL_S
            self._service()
        if self._curve is not None and now >= self._next_curve_poll:
            # Rejected handshakes surface only on socket monitors: read them here, so that
            # they are counted and logged (stats()["rejected"]["curve"]) while the run goes on.
            self._next_curve_poll = now + CURVE_POLL_S
            self._curve.poll_monitor()

    def _service(self) -> None:
        """Read subscription messages: a hello topic names the peer that just joined."""
        pub = self._pub
        # ZMQ_EVENTS first: pump runs once per send, and a raised zmq.Again costs more than
        # asking whether anything is there.
        while pub.get(zmq.EVENTS) & zmq.POLLIN:
            try:
                event = self._pub.recv(zmq.NOBLOCK)
            except zmq.Again:
                return
            if event[:1] not in (b"\x00", b"\x01") or not event[1:].startswith(HELLO_PREFIX):
                continue  # the b"" (un)subscription
            try:
                peer = int(event[1 + len(HELLO_PREFIX):])
            except ValueError:
                self._rejects.reject("bad_hello", repr(event[:40]))
                continue
            if event[:1] == b"\x00":  # libzmq unsubscribes a subscriber that disconnected
                self._present.discard(peer)
                continue
            self._hello_seen.add(peer)
            self._present.add(peer)
            self._joined(peer)

    def _read_available(self, sub: zmq.Socket, out: list[Message]) -> None:
        via = self._sub_peer[sub]
        while True:
            try:
                frames = self._recv_frames(sub)
            except zmq.Again:
                return
            msg = self._accept(frames, via)
            if msg is not None:
                out.append(msg)

    @staticmethod
    def _recv_frames(sub: zmq.Socket) -> list[Any]:
        """One multipart message (raises zmq.Again if none) as zero-copy zmq.Frames, so that
        a large array is not copied again (decode makes read-only views of it); frame 0, the
        small msgpack header, as bytes (unless it is 64 KiB or more: decode rejects it).

        `Frame.more` says whether a part follows: cheaper than asking the socket (getsockopt
        RCVMORE), as recv_multipart does."""
        frame = sub.recv(zmq.NOBLOCK, copy=False)
        frames: list[Any] = [frame.bytes if len(frame) < _COPY_THRESHOLD else frame]
        while frame.more:
            frame = sub.recv(zmq.NOBLOCK, copy=False)
            frames.append(frame)
        return frames

    def _wire_send(self, frames: list[bytes]) -> bool:
        # Frame by frame rather than send_multipart, whose per-call checks cost as much as a
        # frame: ZeroMQ takes a multipart message whole once it took the first frame.
        # Copied into libzmq, not zero-copy: zero-copy sends start pyzmq's garbage-collector
        # thread and, for the fresh buffers encode makes, save nothing measurable at 64 KiB
        # (the copy of data still in cache is cheaper than tracking the buffer).
        pub = self._pub
        last = len(frames) - 1
        try:
            for i, frame in enumerate(frames):
                pub.send(frame, _MORE if i < last else zmq.NOBLOCK)
        except zmq.Again:
            if i:  # cannot happen (see above); never leave a half-sent message unnoticed
                raise
            return False
        return True
