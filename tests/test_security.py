"""CURVE keys, the allow-list, counted rejections, insecure-bind warnings and `dwm-net keys`."""

from __future__ import annotations

import logging
import stat
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import zmq
from typer.testing import CliRunner

from comms.codec import decode, encode
from comms.messages import ENV_HOST, ExperienceMsg
from comms.security import CurveSetup, KeyRing, generate_keys, public_key_path, secret_key_path, warn_if_insecure
from launch.keys_cli import keys_app

NAMES = ["agent-0", "agent-1", "env-host"]
RECV_MS = 3000  # what an accepted peer gets to deliver (local loopback: milliseconds in practice)
REJECT_MS = 500  # how long a rejected peer is watched for anything getting through


@pytest.fixture
def keydir(tmp_path: Path) -> Path:
    generate_keys(tmp_path / "keys", NAMES)
    return tmp_path / "keys"


@pytest.fixture
def ctxs() -> Iterator[tuple[zmq.Context, zmq.Context]]:
    """Server and client contexts (one ZAP authenticator per context)."""
    server, client = zmq.Context(), zmq.Context()
    yield server, client
    server.destroy(linger=0)
    client.destroy(linger=0)


def _socket(ctx: zmq.Context, kind: int) -> zmq.Socket:
    sock = ctx.socket(kind)
    sock.linger = 0
    return sock


def _message() -> ExperienceMsg:
    t, d, a = 4, 6, 5
    return ExperienceMsg(sender=0, seq=1, step=7,
                         obs=np.arange(t * d, dtype=np.float32).reshape(t, d),
                         actions=np.arange(t, dtype=np.uint8), rewards=np.ones(t, np.float32),
                         terms=np.zeros(t, bool), avail=np.ones((t, a), bool), n_actions=a)


def _publisher(ctx: zmq.Context, setup: CurveSetup) -> tuple[zmq.Socket, str]:
    pub = _socket(ctx, zmq.XPUB)
    setup.apply_server(pub)
    port = pub.bind_to_random_port("tcp://127.0.0.1")
    return pub, f"tcp://127.0.0.1:{port}"


def _wait_rejection(setup: CurveSetup, deadline_s: float = 5.0) -> dict[str, int]:
    end = time.monotonic() + deadline_s
    while not setup.rejections() and time.monotonic() < end:
        setup.poll_monitor(timeout_s=0.1)  # waits on the monitor sockets, not a sleep
    return setup.rejections()


# --- keys ---------------------------------------------------------------------------------------

@pytest.mark.timeout(10)
def test_generate_keys_files_and_permissions(tmp_path: Path) -> None:
    written = generate_keys(tmp_path / "keys", NAMES)
    assert written == {n: tmp_path / "keys" / f"{n}.key" for n in NAMES}
    assert sorted(p.name for p in (tmp_path / "keys").iterdir()) == sorted(
        [f"{n}.key" for n in NAMES] + ["private"])
    assert stat.S_IMODE((tmp_path / "keys" / "private").stat().st_mode) == 0o700
    for name in NAMES:
        assert stat.S_IMODE(secret_key_path(tmp_path / "keys", name).stat().st_mode) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["keys"]  # no temp dir left behind


@pytest.mark.timeout(10)
def test_generate_keys_refuses_overwrite(keydir: Path) -> None:
    before = public_key_path(keydir, "agent-0").read_bytes()
    with pytest.raises(ValueError, match="already holds keys; pass --overwrite") as e:
        generate_keys(keydir, NAMES)
    assert "\n" not in str(e.value)
    assert public_key_path(keydir, "agent-0").read_bytes() == before
    generate_keys(keydir, ["agent-0"], overwrite=True)  # replaces the whole set
    assert public_key_path(keydir, "agent-0").read_bytes() != before
    assert sorted(p.name for p in keydir.iterdir()) == ["agent-0.key", "private"]
    assert [p.name for p in keydir.parent.iterdir()] == ["keys"]


@pytest.mark.timeout(10)
@pytest.mark.parametrize("names, match", [([], "no key names"), (["a/b"], "bad key name"),
                                          (["x", "x"], "duplicate")])
def test_generate_keys_rejects_bad_names(tmp_path: Path, names: list[str], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        generate_keys(tmp_path / "keys", names)
    assert not (tmp_path / "keys").exists()


@pytest.mark.timeout(10)
def test_generate_keys_refuses_foreign_directory(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match="holds files other than keys"):
        generate_keys(tmp_path, NAMES, overwrite=True)


@pytest.mark.timeout(10)
def test_keyring_loads_allow_list(keydir: Path) -> None:
    ring = KeyRing.load(keydir, "agent-1")
    assert set(ring.known) == set(NAMES)
    assert ring.public_key == ring.known["agent-1"]
    assert len(ring.secret_key) == 40
    assert "secret_key" not in repr(ring)


def _corrupt_public(keydir: Path) -> None:
    public_key_path(keydir, "agent-0").write_text('curve\n    public-key = "short"\n')


@pytest.mark.timeout(10)
@pytest.mark.parametrize("breakage, name, match", [
    (lambda d: None, "agent-9", "no public key .*agent-9.key"),
    (lambda d: secret_key_path(d, "agent-1").unlink(), "agent-1",
     "no secret key .*agent-1.key_secret"),
    (_corrupt_public, "agent-1", "agent-0.key holds no valid CURVE public key"),
    (lambda d: secret_key_path(d, "agent-1").write_text("garbage\n"), "agent-1",
     "cannot read key file .*agent-1.key_secret"),
    (lambda d: secret_key_path(d, "agent-1").write_bytes(
        secret_key_path(d, "agent-0").read_bytes()), "agent-1", "does not match"),
    # zmq.auth's own loader would later fail on these with "no public keys could be loaded"
    (lambda d: public_key_path(d, "agent-9").mkdir(), "agent-1",
     "key entry .*agent-9.key is not a regular file; remove it"),
    (lambda d: public_key_path(d, "agent-9").symlink_to(d / "nowhere"), "agent-1",
     "key entry .*agent-9.key is a dangling link; remove it"),
])
def test_keyring_errors_are_one_line(keydir: Path, breakage, name: str, match: str) -> None:
    breakage(keydir)
    with pytest.raises(ValueError, match=match) as e:
        KeyRing.load(keydir, name)
    assert "\n" not in str(e.value) and "dwm-net keys generate" in str(e.value)


@pytest.mark.timeout(10)
def test_keyring_missing_directory(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"key directory .*nowhere not found.*keys generate"):
        KeyRing.load(tmp_path / "nowhere", "agent-0")


# --- CURVE on sockets ---------------------------------------------------------------------------

@pytest.mark.timeout(20)
def test_curve_accepts_known_keys(keydir: Path, ctxs) -> None:
    server_ctx, client_ctx = ctxs
    with CurveSetup(KeyRing.load(keydir, "agent-0"), server_ctx) as server, \
            CurveSetup(KeyRing.load(keydir, "agent-1"), client_ctx) as client:
        pub, endpoint = _publisher(server_ctx, server)
        sub = _socket(client_ctx, zmq.SUB)
        client.apply_client(sub, peer_id=0)
        sub.subscribe(b"")
        sub.connect(endpoint)
        assert pub.poll(RECV_MS), "no subscription: the CURVE handshake did not complete"
        pub.recv()
        msg = _message()
        pub.send_multipart(encode(msg))
        assert sub.poll(RECV_MS), "nothing received over CURVE"
        got = decode(sub.recv_multipart())
        assert isinstance(got, ExperienceMsg) and got.seq == msg.seq
        np.testing.assert_array_equal(got.obs, msg.obs)
        assert server.rejections() == {} and client.rejections() == {}
        pub.close()
        sub.close()


@pytest.mark.timeout(20)
def test_curve_rejects_unknown_key(keydir: Path, tmp_path: Path, ctxs,
                                   caplog: pytest.LogCaptureFixture) -> None:
    server_ctx, client_ctx = ctxs
    # A stranger with a valid key set of its own, and the server's real public key.
    generate_keys(tmp_path / "other", ["agent-1"])
    stranger = KeyRing.load(tmp_path / "other", "agent-1")
    stranger = KeyRing(stranger.directory, stranger.name, stranger.public_key,
                       stranger.secret_key, {**stranger.known, "agent-0":
                                             KeyRing.load(keydir, "agent-0").public_key})
    caplog.set_level(logging.WARNING, logger="comms.security")
    with CurveSetup(KeyRing.load(keydir, "agent-0"), server_ctx) as server, \
            CurveSetup(stranger, client_ctx) as client:
        pub, endpoint = _publisher(server_ctx, server)
        sub = _socket(client_ctx, zmq.SUB)
        client.apply_client(sub, peer_id=0)
        sub.subscribe(b"")
        sub.connect(endpoint)
        counts = _wait_rejection(server)
        assert sum(counts.values()) >= 1 and list(counts) == [f"server {endpoint}"]
        assert not pub.poll(REJECT_MS), "a subscription got through from an unknown key"
        pub.send_multipart(encode(_message()))
        assert not sub.poll(REJECT_MS), "an unknown key received a message"
        assert sum(_wait_rejection(client).values()) >= 1  # the stranger sees it too
        lines = [r.getMessage() for r in caplog.records]
        assert any("not in the allow-list" in line and endpoint in line for line in lines)
        pub.close()
        sub.close()


@pytest.mark.timeout(20)
def test_curve_rejects_plain_client(keydir: Path, ctxs) -> None:
    server_ctx, client_ctx = ctxs
    with CurveSetup(KeyRing.load(keydir, "env-host"), server_ctx) as server:
        router = _socket(server_ctx, zmq.ROUTER)
        server.apply_server(router)
        port = router.bind_to_random_port("tcp://127.0.0.1")
        dealer = _socket(client_ctx, zmq.DEALER)  # no CURVE at all
        dealer.connect(f"tcp://127.0.0.1:{port}")
        dealer.send(b"hello")
        assert sum(_wait_rejection(server).values()) >= 1
        assert not router.poll(REJECT_MS), "a plain-text client got through to a CURVE server"
        router.close()
        dealer.close()


@pytest.mark.timeout(20)
def test_apply_client_names_peers(keydir: Path, ctxs) -> None:
    server_ctx, _ = ctxs
    with CurveSetup(KeyRing.load(keydir, "agent-1"), server_ctx, peer_names={7: "env-host"}
                    ) as setup:
        assert [setup.peer_name(i) for i in (ENV_HOST, 0, 7)] == ["env-host", "agent-0", "env-host"]
        sock = _socket(server_ctx, zmq.DEALER)
        setup.apply_client(sock, ENV_HOST)
        with pytest.raises(ValueError, match="no public key for 'agent-5'"):
            setup.apply_client(sock, 5)
        sock.close()


# --- insecure binds -----------------------------------------------------------------------------

@pytest.mark.timeout(10)
@pytest.mark.parametrize("endpoint, curve, warned", [
    ("tcp://127.0.0.1:5555", False, False), ("tcp://127.3.4.5:*", False, False),
    ("tcp://localhost:5555", False, False), ("tcp://[::1]:5555", False, False),
    ("ipc:///tmp/dwm.sock", False, False), ("inproc://mesh", False, False),
    ("tcp://*:5555", False, True), ("tcp://0.0.0.0:5555", False, True),
    ("tcp://10.0.0.7:5555", False, True), ("tcp://eth0:5555", False, True),
    ("tcp://*:5555", True, False),
])
def test_warn_if_insecure(endpoint: str, curve: bool, warned: bool,
                          caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="comms.security")
    assert warn_if_insecure(endpoint, curve) is warned
    assert any(endpoint in r.getMessage() for r in caplog.records) is warned


# --- CLI ----------------------------------------------------------------------------------------

@pytest.mark.timeout(10)
def test_keys_cli_generate(tmp_path: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(keys_app, ["generate", str(tmp_path / "k"), "--agents", "3"])
    assert result.exit_code == 0, result.output
    names = {p.name for p in (tmp_path / "k").glob("*.key")}
    assert names == {"agent-0.key", "agent-1.key", "agent-2.key", "env-host.key", "launcher.key",
                     "learner.key"}
    assert "private/<name>.key_secret only to the machine" in result.output
    result = runner.invoke(keys_app, ["generate", str(tmp_path / "n"), "--names", "a,b"])
    assert result.exit_code == 0 and {p.name for p in (tmp_path / "n").glob("*.key")} == {
        "a.key", "b.key"}


@pytest.mark.timeout(10)
@pytest.mark.parametrize("extra", [[], ["--agents", "0"], ["--agents", "2", "--names", "a"]])
def test_keys_cli_errors_one_line(tmp_path: Path, extra: list[str]) -> None:
    generate_keys(tmp_path / "k", NAMES)
    result = CliRunner().invoke(keys_app, ["generate", str(tmp_path / "k"), *extra])
    assert result.exit_code == 2
    assert result.output.startswith("error: ") and result.output.count("\n") == 1
    assert "Traceback" not in result.output
