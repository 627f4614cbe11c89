"""Rendezvous: agents register from threads; the spec lists everyone; restarts replace endpoints."""
from __future__ import annotations

import threading
import time

import pytest
import zmq

from comms.codec import encode
from comms.messages import RegisterMsg, SpecMsg, StopMsg
from comms.rendezvous import ControlClient, RendezvousServer, Stopped, register

ANY_PORT = "tcp://127.0.0.1:*"
SPEC = {"scenario": "3m", "obs_dim": 30, "n_actions": 9, "episode_limit": 60,
        "extra": {"seed": 1}}


class Agents:
    """Agents registering from threads; results[id] is the SpecMsg or the exception."""

    def __init__(self) -> None:
        self.threads: list[threading.Thread] = []
        self.results: dict[int, object] = {}

    def start(self, connect: str, agent_id: int, endpoint: str, ctx: zmq.Context) -> None:
        def run() -> None:
            try:
                self.results[agent_id] = register(connect, agent_id, endpoint, timeout_s=5,
                                                  ctx=ctx)
            except Exception as e:  # noqa: BLE001  reported by the test, not lost in the thread
                self.results[agent_id] = e

        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        self.threads.append(thread)

    def join(self) -> None:
        for thread in self.threads:
            thread.join(timeout=10)
            assert not thread.is_alive()


@pytest.mark.timeout(20)
def test_three_agents_get_a_spec_with_every_endpoint(ctx: zmq.Context) -> None:
    server = RendezvousServer(ANY_PORT, 3, SPEC, ctx=ctx)
    agents = Agents()
    try:
        for i in range(3):
            agents.start(server.bound_endpoint, i, f"tcp://127.0.0.1:{7000 + i}", ctx)
        endpoints = server.serve(timeout_s=10)
        agents.join()
    finally:
        server.close()
    assert endpoints == {i: f"tcp://127.0.0.1:{7000 + i}" for i in range(3)}
    for i in range(3):
        spec = agents.results[i]
        assert isinstance(spec, SpecMsg), spec
        assert spec.peers == {str(j): f"tcp://127.0.0.1:{7000 + j}" for j in range(3)}
        assert (spec.n_agents, spec.scenario, spec.obs_dim, spec.extra) == (3, "3m", 30,
                                                                            {"seed": 1})
    assert server.rejected == {}


@pytest.mark.timeout(10)
def test_register_times_out_with_one_line_naming_the_endpoint(ctx: zmq.Context) -> None:
    silent = ctx.socket(zmq.ROUTER)  # accepts the registration, never answers
    silent.setsockopt(zmq.LINGER, 0)
    silent.bind(ANY_PORT)
    endpoint = silent.getsockopt(zmq.LAST_ENDPOINT).decode()
    try:
        t0 = time.monotonic()
        with pytest.raises(TimeoutError) as info:
            register(endpoint, 0, "tcp://127.0.0.1:7000", timeout_s=0.2, ctx=ctx)
        assert time.monotonic() - t0 < 2
    finally:
        silent.close(linger=0)
    text = str(info.value)
    assert "\n" not in text and endpoint in text


@pytest.mark.timeout(10)
def test_serve_times_out_naming_the_missing_agents(ctx: zmq.Context) -> None:
    server = RendezvousServer(ANY_PORT, 2, SPEC, ctx=ctx)
    try:
        with pytest.raises(TimeoutError, match=r"agents \[0, 1\]"):
            server.serve(timeout_s=0.1)
    finally:
        server.close()


@pytest.mark.timeout(10)
def test_a_stop_request_ends_both_waits_long_before_their_timeouts(ctx: zmq.Context) -> None:
    # A process told to stop (SIGINT) while its peers have not come must not sit out the
    # 120-300 s registration timeouts: both waits ask `should_stop` between short polls.
    server = RendezvousServer(ANY_PORT, 2, SPEC, ctx=ctx)
    client = ControlClient(server.bound_endpoint, 0, ctx=ctx)
    try:
        for wait in (lambda stop: server.serve(timeout_s=60, should_stop=stop),
                     lambda stop: client.register("tcp://127.0.0.1:7000", timeout_s=60, should_stop=stop)):
            requested = threading.Event()
            threading.Timer(0.2, requested.set).start()
            t0 = time.monotonic()
            with pytest.raises(Stopped):
                wait(requested.is_set)
            assert 0.2 <= time.monotonic() - t0 < 2
    finally:
        client.close()
        server.close()


def raw_dealer(ctx: zmq.Context, endpoint: str) -> zmq.Socket:
    sock = ctx.socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(endpoint)
    return sock


def rejected_total(server: RendezvousServer) -> int:
    """Read from another thread than the serving one: retry if it changed mid-read."""
    try:
        return sum(server.rejected.values())
    except RuntimeError:
        return -1


def wait_for(predicate, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            return False
        zmq.Poller().poll(5)  # yield 5 ms to the server thread
    return True


@pytest.mark.timeout(20)
def test_restart_replaces_the_endpoint_and_bad_input_is_counted(ctx: zmq.Context) -> None:
    server = RendezvousServer(ANY_PORT, 3, SPEC, ctx=ctx)
    result: dict[str, object] = {}
    serving = threading.Thread(target=lambda: result.update(eps=server.serve(timeout_s=10)),
                               daemon=True)
    old = raw_dealer(ctx, server.bound_endpoint)
    agents = Agents()
    try:
        serving.start()
        # Agent 1's first life registers, then (before the spec) its process "crashes".
        old.send_multipart(encode(RegisterMsg(sender=1, agent_id=1, endpoint="tcp://h:1")))
        old.send_multipart(encode(RegisterMsg(sender=1, agent_id=1, endpoint="tcp://h:1")))
        old.send_multipart([b"\x93garbage"])
        old.send_multipart(encode(StopMsg(sender=1, reason="not a registration")))
        old.send_multipart(encode(RegisterMsg(sender=1, agent_id=3, endpoint="tcp://h:3")))
        assert wait_for(lambda: rejected_total(server) == 4, 5), server.rejected
        assert server.endpoints == {1: "tcp://h:1"}
        agents.start(server.bound_endpoint, 1, "tcp://h:11", ctx)  # the restarted agent 1
        assert wait_for(lambda: server.replaced == 1, 5)
        for i, endpoint in ((0, "tcp://h:0"), (2, "tcp://h:2")):
            agents.start(server.bound_endpoint, i, endpoint, ctx)
        agents.join()
        serving.join(timeout=10)
        assert result["eps"] == {0: "tcp://h:0", 1: "tcp://h:11", 2: "tcp://h:2"}
        assert server.rejected == {"duplicate": 1, "malformed": 1, "kind": 1,
                                   "out_of_range": 1}
        assert server.replaced == 1
        assert all(agents.results[i].peers["1"] == "tcp://h:11" for i in range(3))
        assert not old.poll(100), "the dead registration got the spec"

        # After the spec: agent 2 restarts on a new endpoint and gets the updated spec at once.
        again = Agents()
        again.start(server.bound_endpoint, 2, "tcp://h:22", ctx)
        changed: dict[int, str] = {}
        assert wait_for(lambda: bool(changed.update(server.serve_restarts(0.05)) or changed), 5)
        again.join()
        assert changed == {2: "tcp://h:22"}
        assert again.results[2].peers == {"0": "tcp://h:0", "1": "tcp://h:11",
                                          "2": "tcp://h:22"}
    finally:
        old.close(linger=0)
        serving.join(timeout=10)
        server.close()


@pytest.mark.timeout(10)
def test_bad_spec_fields_fail_at_construction(ctx: zmq.Context) -> None:
    with pytest.raises(TypeError):
        RendezvousServer(ANY_PORT, 2, {"scenario": "3m"}, ctx=ctx)


@pytest.mark.timeout(20)
def test_a_control_endpoint_that_cannot_be_bound_is_one_line_and_leaves_no_socket_open() -> None:
    # A port in use once printed ZeroMQ's traceback and then hung: the failed ROUTER stayed
    # open, so the env host's context could never terminate.
    from comms.sockets import EndpointError

    held = zmq.Context()
    holder = held.socket(zmq.ROUTER)
    holder.setsockopt(zmq.LINGER, 0)
    port = holder.bind_to_random_port("tcp://127.0.0.1")
    try:
        for endpoint, text in ((f"tcp://127.0.0.1:{port}", "already in use"), ("127.0.0.1:5996", "tcp://HOST:PORT")):
            own = zmq.Context()
            with pytest.raises(EndpointError, match=text) as info:
                RendezvousServer(endpoint, 2, SPEC, ctx=own)
            assert "\n" not in str(info.value)
            own.term()  # blocks forever if the failed ROUTER were left open
        own = zmq.Context()
        with pytest.raises(EndpointError, match="tcp://HOST:PORT"):
            ControlClient("host:5555", 0, ctx=own)
        own.term()
    finally:
        holder.close()
        held.term()


@pytest.mark.timeout(30)
def test_curve_registration_must_be_signed_by_the_members_own_key(tmp_path) -> None:
    # agent-1's key is trusted, but it may not register as agent 0 (take over its place).
    from comms.messages import ENV_HOST
    from comms.security import CurveSetup, KeyRing, generate_keys

    keys = tmp_path / "keys"
    generate_keys(keys, ["env-host", "agent-0", "agent-1"])
    names = {ENV_HOST: "env-host", 0: "agent-0", 1: "agent-1", -99: "agent-1"}  # -99: the forger
    ctxs = {k: zmq.Context() for k in names}
    curves = {k: CurveSetup(KeyRing.load(keys, n), ctxs[k]) for k, n in names.items()}
    server = RendezvousServer(ANY_PORT, 2, SPEC, ctx=ctxs[ENV_HOST], curve=curves[ENV_HOST])
    clients = []
    try:
        for key, member, endpoint in ((-99, 0, "tcp://127.0.0.1:7666"), (0, 0, "tcp://127.0.0.1:7000"),
                                      (1, 1, "tcp://127.0.0.1:7001")):
            client = ControlClient(server.bound_endpoint, member, ctx=ctxs[key], curve=curves[key])
            clients.append(client)
            client.send(RegisterMsg(sender=member, agent_id=member, endpoint=endpoint))
        assert server.serve(timeout_s=10) == {0: "tcp://127.0.0.1:7000", 1: "tcp://127.0.0.1:7001"}
        deadline = time.monotonic() + 10
        while "wrong_key" not in server.rejected:  # the forged one, if serve had not read it yet
            assert time.monotonic() < deadline, "the forged registration was never read"
            assert server.serve_restarts(timeout_s=0.2) == {}
        assert server.rejected == {"wrong_key": 1}
        assert server.endpoints[0] == "tcp://127.0.0.1:7000"
    finally:
        for client in clients:
            client.close()
        server.close()
        for c in curves.values():
            c.close()
        for ctx in ctxs.values():
            ctx.destroy(linger=0)
