"""Rendezvous: agents register their peer-mesh endpoints with the env host and get the spec.

The server is a ROUTER, each agent a DEALER (no empty delimiter frame: a DEALER-ROUTER pair
needs none). `serve` waits for every agent id 0..n-1, then answers each with one `SpecMsg`
listing all peers' endpoints. Ids are matched to the latest registering socket:

- same id, same socket again: a retransmission, rejected as "duplicate";
- same id, another socket: the agent restarted; its endpoint (and reply address) is replaced.

After the spec went out, `serve_restarts` answers restarted agents at once with the current
spec and reports whose endpoint changed (so the caller can tell the other peers).
"""
from __future__ import annotations

import logging
import os
import socket
import time

import zmq

from comms.codec import decode, encode
from comms.messages import ENV_HOST, MalformedMessage, RegisterMsg, SpecMsg
from comms.sockets import OwnedSocket
from comms.transport import CurveSetup, RejectLog

__all__ = ["RendezvousServer", "register"]

log = logging.getLogger(__name__)


class RendezvousServer(OwnedSocket):
    """Collects `RegisterMsg` from agents 0..n_agents-1 and replies with the `SpecMsg`.

    `spec_fields` holds the SpecMsg fields the server does not fill itself (scenario, obs_dim,
    n_actions, episode_limit, extra); n_agents, peers and peer_keys come from registrations.
    """

    def __init__(self, bind: str, n_agents: int, spec_fields: dict, *,
                 ctx: zmq.Context | None = None, curve: CurveSetup | None = None) -> None:
        if n_agents < 1:
            raise ValueError(f"n_agents must be >= 1, got {n_agents}")
        self.n_agents = n_agents
        self._spec_fields = dict(spec_fields)
        self._spec(peers={}, keys={})  # fail now, not after every agent registered
        super().__init__(zmq.ROUTER, ctx)
        if curve is not None:
            curve.apply_server(self._sock)
        self._sock.bind(bind)
        self.bound_endpoint: str = self._sock.getsockopt(zmq.LAST_ENDPOINT).decode()
        self._regs: dict[int, tuple[bytes, RegisterMsg]] = {}  # id -> (reply address, msg)
        self._spec_sent = False
        self._rejects = RejectLog("rendezvous", log)
        self.replaced = 0  # registrations that replaced an earlier one (restarts)

    @property
    def endpoints(self) -> dict[int, str]:
        return {i: reg.endpoint for i, (_, reg) in sorted(self._regs.items())}

    @property
    def rejected(self) -> dict[str, int]:
        return dict(self._rejects.counts)

    def serve(self, timeout_s: float) -> dict[int, str]:
        """Wait for every agent, send each the spec; returns id -> peer-mesh endpoint.

        Raises TimeoutError naming the missing ids if they do not all register in time.
        """
        deadline = time.monotonic() + timeout_s
        while len(self._regs) < self.n_agents:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                missing = sorted(set(range(self.n_agents)) - set(self._regs))
                raise TimeoutError(f"rendezvous at {self.bound_endpoint}: agents {missing} "
                                   f"did not register within {timeout_s:g} s")
            if self._sock.poll(timeout=max(1, int(remaining * 1000))):
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

    def _receive_one(self) -> int | None:
        """Read one registration; returns the id it (re)registered, None if rejected."""
        frames = self._sock.recv_multipart(zmq.NOBLOCK)
        address, body = frames[0], frames[1:]
        try:
            msg = decode(body)
        except MalformedMessage as e:
            self._rejects.reject("malformed", str(e))
            return None
        if not isinstance(msg, RegisterMsg):
            self._rejects.reject("kind", f"expected register, got {msg.KIND}")
            return None
        if not 0 <= msg.agent_id < self.n_agents:
            self._rejects.reject("out_of_range", f"agent id {msg.agent_id} not in "
                                                 f"0..{self.n_agents - 1}")
            return None
        previous = self._regs.get(msg.agent_id)
        if previous is not None and previous[0] == address:
            self._rejects.reject("duplicate", f"agent {msg.agent_id} registered twice")
            return None
        if previous is not None:
            self.replaced += 1
            log.info("rendezvous: agent %d registered again (restart): %s -> %s",
                     msg.agent_id, previous[1].endpoint, msg.endpoint)
        self._regs[msg.agent_id] = (address, msg)
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


def register(connect: str, agent_id: int, pub_endpoint: str, *, timeout_s: float,
             ctx: zmq.Context | None = None, public_key: str | None = None,
             curve: CurveSetup | None = None) -> SpecMsg:
    """Register with the rendezvous server at `connect`; returns the spec it answers with.

    The server may start later: the DEALER holds the registration until it connects.
    Raises TimeoutError (one line, naming the endpoint) if no spec arrives within `timeout_s`.
    """
    own_ctx = ctx is None
    ctx = zmq.Context() if ctx is None else ctx
    sock = ctx.socket(zmq.DEALER)
    rejects = RejectLog(f"register (agent {agent_id})", log)
    try:
        sock.setsockopt(zmq.LINGER, 0)
        if curve is not None:
            curve.apply_client(sock, ENV_HOST)
        sock.connect(connect)
        msg = RegisterMsg(sender=agent_id, agent_id=agent_id, endpoint=pub_endpoint,
                          public_key=public_key,
                          host={"hostname": socket.gethostname(), "pid": os.getpid()})
        sock.send_multipart(encode(msg))
        deadline = time.monotonic() + timeout_s
        while (remaining := deadline - time.monotonic()) > 0:
            if not sock.poll(timeout=max(1, int(remaining * 1000))):
                continue
            try:
                reply = decode(sock.recv_multipart(zmq.NOBLOCK))
            except MalformedMessage as e:
                rejects.reject("malformed", str(e))
                continue
            if isinstance(reply, SpecMsg):
                return reply
            rejects.reject("kind", f"expected spec, got {reply.KIND}")
        raise TimeoutError(f"agent {agent_id}: no spec from the rendezvous at {connect} "
                           f"within {timeout_s:g} s")
    finally:
        sock.close(linger=0)
        if own_ctx:
            ctx.term()
