"""Rendezvous: agents register their peer-mesh endpoints with the env host and get the spec.

The server is a ROUTER, each agent a DEALER (no empty delimiter frame: a DEALER-ROUTER pair
needs none). `serve` waits for every agent id 0..n-1, then answers each with one `SpecMsg`
listing all peers' endpoints. Ids are matched to the latest registering socket:

- same id, same socket again: a retransmission, rejected as "duplicate";
- same id, another socket: the agent restarted; its endpoint (and reply address) is replaced.

After the spec went out, `serve_restarts` answers restarted agents at once with the current
spec and reports whose endpoint changed (so the caller can tell the other peers).

The same ROUTER then carries the env host's lockstep traffic (`send` to one member, `recv` from
any): it is the control channel, and `ControlClient` is its agent end (one DEALER that registers
and then exchanges step/action messages). Registrations arriving during `recv` are restarts:
answered at once and reported by `restarts()`. Members beyond agents 0..n-1 (the centralized
learner, `extra_members`) register the same way and appear in the spec's peers.
"""
from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Callable, Collection

import zmq

from comms.codec import decode, encode
from comms.messages import ENV_HOST, MalformedMessage, Message, RegisterMsg, SpecMsg
from comms.sockets import OwnedSocket, bind, require_shared_context
from comms.sockets import connect as connect_socket
from comms.transport import CurveSetup, RejectLog

__all__ = ["ControlClient", "RendezvousServer", "Stopped", "register"]

log = logging.getLogger(__name__)

REGISTER_NOTE_S = 10.0  # a registering member says it is still waiting this often
# With a `should_stop`, waits poll in slices this long (seconds), so a stop signal that arrives
# while a process waits for its peers ends the wait within about this, not at the timeout.
STOP_CHECK_S = 0.1


class Stopped(Exception):
    """A wait for the other members ended because the caller's `should_stop` said so."""


def _slice(remaining: float, should_stop: Callable[[], bool] | None) -> float:
    """How long the next poll of a wait may block (s); raises `Stopped` when asked to stop."""
    if should_stop is None:
        return remaining
    if should_stop():
        raise Stopped("stopped while waiting for the other members")
    return min(remaining, STOP_CHECK_S)


class RendezvousServer(OwnedSocket):
    """Collects `RegisterMsg` from agents 0..n_agents-1 and replies with the `SpecMsg`.

    `spec_fields` holds the SpecMsg fields the server does not fill itself (scenario, obs_dim,
    n_actions, episode_limit, extra); n_agents, peers and peer_keys come from registrations.
    """

    def __init__(self, bind_endpoint: str, n_agents: int, spec_fields: dict, *,
                 ctx: zmq.Context | None = None, curve: CurveSetup | None = None,
                 extra_members: Collection[int] = ()) -> None:
        if n_agents < 1:
            raise ValueError(f"n_agents must be >= 1, got {n_agents}")
        require_shared_context(ctx, curve, "RendezvousServer")
        self.n_agents = n_agents
        self.members = frozenset(range(n_agents)) | frozenset(extra_members)
        self._spec_fields = dict(spec_fields)
        self._spec(peers={}, keys={})  # fail now, not after every agent registered
        super().__init__(zmq.ROUTER, ctx)
        try:
            if curve is not None:
                curve.apply_server(self._sock)
            self.bound_endpoint: str = bind(self._sock, bind_endpoint)
        except BaseException:
            self.close()  # else the caller's context could never terminate
            raise
        self._regs: dict[int, tuple[bytes, RegisterMsg]] = {}  # id -> (reply address, msg)
        self._by_address: dict[bytes, int] = {}
        self._restarts: list[int] = []
        self._spec_sent = False
        self._rejects = RejectLog("rendezvous", log)
        self._curve = curve
        self.replaced = 0  # registrations that replaced an earlier one (restarts)

    @property
    def endpoints(self) -> dict[int, str]:
        return {i: reg.endpoint for i, (_, reg) in sorted(self._regs.items())}

    @property
    def rejected(self) -> dict[str, int]:
        return dict(self._rejects.counts)

    def serve(self, timeout_s: float, should_stop: Callable[[], bool] | None = None) -> dict[int, str]:
        """Wait for every agent, send each the spec; returns id -> peer-mesh endpoint.

        Raises TimeoutError naming the missing ids if they do not all register in time, and
        `Stopped` as soon as ``should_stop()`` is true (checked every `STOP_CHECK_S`).
        """
        deadline = time.monotonic() + timeout_s
        while len(self._regs) < len(self.members):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                missing = sorted(self.members - set(self._regs))
                raise TimeoutError(f"rendezvous at {self.bound_endpoint}: agents {missing} "
                                   f"did not register within {timeout_s:g} s")
            if self._sock.poll(timeout=max(1, int(_slice(remaining, should_stop) * 1000))):
                self._receive_one()
        spec = self._current_spec()
        for address, _ in self._regs.values():
            self._reply(address, spec)
        self._spec_sent = True
        return self.endpoints

    def serve_restarts(self, timeout_s: float) -> dict[int, str]:
        """After `serve`: answer agents that register again; returns their new endpoints."""
        if not self._spec_sent:
            raise RuntimeError("serve_restarts before serve: the first spec has not been sent")
        changed: dict[int, str] = {}
        deadline = time.monotonic() + timeout_s
        while (remaining := deadline - time.monotonic()) > 0:
            if not self._sock.poll(timeout=max(1, int(remaining * 1000))):
                break
            agent = self._receive_one()
            if agent is not None:
                address, reg = self._regs[agent]
                changed[agent] = reg.endpoint
                self._reply(address, self._current_spec())
        return changed

    # --- the control channel (after `serve`) -------------------------------------------------

    @property
    def socket(self) -> zmq.Socket:
        """The ROUTER, for a caller's `zmq.Poller` (read it only through `recv`)."""
        return self._sock

    def send(self, member: int, msg: Message) -> bool:
        """Send `msg` to a registered member; False if it never registered."""
        reg = self._regs.get(member)
        if reg is None:
            return False
        self._reply(reg[0], msg)
        return True

    def recv(self, timeout_s: float) -> tuple[int, Message] | None:
        """The next message from a registered member as (member id, msg), waiting up to
        `timeout_s`; None when nothing came. Registrations in between are restarts: answered
        with the current spec and reported by `restarts()`. Bad input is counted, never raised."""
        deadline = time.monotonic() + timeout_s
        while True:
            remaining = deadline - time.monotonic()
            if not self._sock.poll(timeout=max(0, int(remaining * 1000))):
                return None
            got = self._read_one()
            if got is not None:
                return got

    def restarts(self) -> list[int]:
        """Members that registered again since the last call (their spec has been sent)."""
        out, self._restarts = self._restarts, []
        return out

    def current_spec(self) -> SpecMsg:
        return self._current_spec()

    def _next(self) -> tuple[bytes, Message] | None:
        """One (reply address, message) off the ROUTER; None (counted) if it does not decode
        or, under CURVE, if a registration is not signed with the key of the member it names."""
        parts = self._sock.recv_multipart(zmq.NOBLOCK, copy=False)
        frames = [p.bytes for p in parts]
        try:
            msg = decode(frames[1:])
        except MalformedMessage as e:
            self._rejects.reject("malformed", str(e))
            return None
        if isinstance(msg, RegisterMsg) and self._curve is not None and not self._signed_by(parts[1], msg.agent_id):
            return None
        return frames[0], msg

    def _signed_by(self, frame: zmq.Frame, member: int) -> bool:
        """Whether the CURVE key that sent `frame` is `member`'s own (the authenticator names a
        client by its Z85 public key): any trusted key may connect, but only agent 1's key may
        register as agent 1, else one member could take over another's place in the mesh."""
        assert self._curve is not None
        name = self._curve.peer_name(member)
        expected = self._curve.keyring.known.get(name)
        if expected is not None and frame.get("User-Id") == expected.decode("ascii"):
            return True
        self._rejects.reject("wrong_key", f"register as member {member} ({name}) from a client "
                             f"whose key is not {name}'s")
        return False

    def _read_one(self) -> tuple[int, Message] | None:
        got = self._next()
        if got is None:
            return None
        address, msg = got
        if isinstance(msg, RegisterMsg):
            member = self._register(address, msg)
            if member is not None and self._spec_sent:
                self._restarts.append(member)
                self._reply(address, self._current_spec())
            return None
        member = self._by_address.get(address)
        if member is None:
            self._rejects.reject("unregistered", f"{msg.KIND} from a socket that never registered")
            return None
        if msg.sender != member:
            self._rejects.reject("sender", f"{msg.KIND} claims sender {msg.sender} from member {member}")
            return None
        return member, msg

    # --- registration ---------------------------------------------------------------------------

    def _receive_one(self) -> int | None:
        """Read one registration; returns the id it (re)registered, None if rejected."""
        got = self._next()
        if got is None:
            return None
        address, msg = got
        if not isinstance(msg, RegisterMsg):
            self._rejects.reject("kind", f"expected register, got {msg.KIND}")
            return None
        return self._register(address, msg)

    def _register(self, address: bytes, msg: RegisterMsg) -> int | None:
        if msg.agent_id not in self.members:
            self._rejects.reject("out_of_range", f"member id {msg.agent_id} not in "
                                                 f"{sorted(self.members)}")
            return None
        previous = self._regs.get(msg.agent_id)
        if previous is not None and previous[0] == address:
            self._rejects.reject("duplicate", f"agent {msg.agent_id} registered twice")
            return None
        if previous is not None:
            self.replaced += 1
            log.info("rendezvous: agent %d registered again (restart): %s -> %s",
                     msg.agent_id, previous[1].endpoint, msg.endpoint)
        if previous is not None:
            self._by_address.pop(previous[0], None)
        self._regs[msg.agent_id] = (address, msg)
        self._by_address[address] = msg.agent_id
        return msg.agent_id

    def _current_spec(self) -> SpecMsg:
        return self._spec(peers={str(i): reg.endpoint for i, (_, reg) in self._regs.items()},
                          keys={str(i): reg.public_key for i, (_, reg) in self._regs.items()
                                if reg.public_key is not None})

    def _spec(self, peers: dict[str, str], keys: dict[str, str]) -> SpecMsg:
        return SpecMsg(sender=ENV_HOST, n_agents=self.n_agents, peers=peers, peer_keys=keys,
                       **self._spec_fields)

    def _reply(self, address: bytes, spec: SpecMsg) -> None:
        # ROUTER drops replies to vanished peers (no ROUTER_MANDATORY): never blocks.
        self._sock.send_multipart([address, *encode(spec)])


class ControlClient(OwnedSocket):
    """A member's end of the control channel: one DEALER to the env host's ROUTER.

    `register` sends the registration and waits for the spec; afterwards `send` and `poll`
    carry the lockstep messages. The server may start later: the DEALER holds the
    registration until it connects.
    """

    def __init__(self, connect: str, member_id: int, *, ctx: zmq.Context | None = None,
                 curve: CurveSetup | None = None) -> None:
        require_shared_context(ctx, curve, "ControlClient")
        super().__init__(zmq.DEALER, ctx)
        self.connect_endpoint = connect
        self.member_id = member_id
        self._rejects = RejectLog(f"control (member {member_id})", log)
        self._backlog: list[Message] = []  # received with the spec, not yet taken
        try:
            if curve is not None:
                curve.apply_client(self._sock, ENV_HOST)
            connect_socket(self._sock, connect)
        except BaseException:
            self.close()
            raise

    @property
    def socket(self) -> zmq.Socket:
        """The DEALER, for a caller's `zmq.Poller` (read it only through `poll`)."""
        return self._sock

    @property
    def rejected(self) -> dict[str, int]:
        return dict(self._rejects.counts)

    def register(self, pub_endpoint: str, *, timeout_s: float, public_key: str | None = None,
                 should_stop: Callable[[], bool] | None = None) -> SpecMsg:
        """Register `pub_endpoint`; returns the spec. Raises TimeoutError (one line, naming the
        endpoint) if none arrives within `timeout_s`, and `Stopped` as soon as ``should_stop()``
        is true. Other messages before the spec are counted and dropped; those after it are kept
        for `poll`."""
        msg = RegisterMsg(sender=self.member_id, agent_id=self.member_id, endpoint=pub_endpoint,
                          public_key=public_key,
                          host={"hostname": socket.gethostname(), "pid": os.getpid()})
        self.send(msg)
        started = time.monotonic()
        deadline = started + timeout_s
        next_note = started + REGISTER_NOTE_S
        while (remaining := deadline - time.monotonic()) > 0:
            if time.monotonic() >= next_note:
                next_note += REGISTER_NOTE_S
                log.info("member %d: still waiting for the spec from %s (%.0f s; the env host "
                         "answers once every member has registered)", self.member_id,
                         self.connect_endpoint, time.monotonic() - started)
            replies = self.poll(_slice(min(remaining, REGISTER_NOTE_S), should_stop))
            for i, reply in enumerate(replies):
                if isinstance(reply, SpecMsg):
                    # What came with the spec (the first step) is the caller's: keep it.
                    self._backlog.extend(replies[i + 1:])
                    return reply
                self._rejects.reject("kind", f"expected spec, got {reply.KIND}")
        raise TimeoutError(f"member {self.member_id}: no spec from the env host at "
                           f"{self.connect_endpoint} within {timeout_s:g} s")

    def send(self, msg: Message) -> None:
        # A DEALER queues while disconnected (up to its HWM), so this does not block in practice.
        self._sock.send_multipart(encode(msg))

    def poll(self, timeout_s: float) -> list[Message]:
        """Wait up to `timeout_s` for the first message, then take all already there."""
        out, self._backlog = self._backlog, []
        if not self._sock.poll(timeout=0 if out else max(0, int(timeout_s * 1000))):
            return out
        while True:
            try:
                frames = self._sock.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return out
            try:
                out.append(decode(frames))
            except MalformedMessage as e:
                self._rejects.reject("malformed", str(e))


def register(connect: str, agent_id: int, pub_endpoint: str, *, timeout_s: float,
             ctx: zmq.Context | None = None, public_key: str | None = None,
             curve: CurveSetup | None = None) -> SpecMsg:
    """Register with the rendezvous server at `connect` and return the spec (one-shot
    `ControlClient`). Raises TimeoutError if no spec arrives within `timeout_s`."""
    client = ControlClient(connect, agent_id, ctx=ctx, curve=curve)
    try:
        return client.register(pub_endpoint, timeout_s=timeout_s, public_key=public_key)
    finally:
        client.close()
