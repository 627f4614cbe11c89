"""Optional CURVE encryption and authentication for the ZeroMQ sockets (`zmq.auth`).

A key set is one directory: `<name>.key` public keys (copied to every machine: together they
are the allow-list) and `private/<name>.key_secret` secret keys (each copied only to the
machine that runs `<name>`). Names are "agent-<i>", "env-host", "launcher", "learner".

The transport hands every socket to a `CurveSetup`: `apply_server` on a socket that binds,
`apply_client(socket, peer_id)` on a socket that connects to that peer's server. A ZAP
authenticator accepts only clients whose public key is in the key directory, and socket
monitors count and log every rejected handshake (`rejections()`), so a peer with a stale or
foreign key shows up in the logs instead of as silence.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import re
import shutil
import stat
import tempfile
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Self

import zmq
import zmq.auth
from zmq.auth.thread import ThreadAuthenticator
from zmq.utils import z85
from zmq.utils.monitor import recv_monitor_message

from comms.messages import ENV_HOST, LAUNCHER, LEARNER

__all__ = [
    "CurveSetup", "KeyRing", "generate_keys", "is_local_endpoint", "public_key_path",
    "secret_key_path", "warn_if_insecure",
]

log = logging.getLogger(__name__)

PRIVATE_DIR = "private"
PUBLIC_SUFFIX = ".key"
SECRET_SUFFIX = ".key_secret"
# Header ids of the non-agent processes -> their key names (agents are "agent-<id>").
PROCESS_NAMES: dict[int, str] = {ENV_HOST: "env-host", LAUNCHER: "launcher", LEARNER: "learner"}

_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
_Z85_KEY_LEN = 40  # a 32-byte CURVE key in Z85

_REJECTION_EVENTS = (zmq.EVENT_HANDSHAKE_FAILED_AUTH | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL
                     | zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL)
_PROTOCOL_ERRORS = {int(getattr(zmq, n)): n.removeprefix("PROTOCOL_ERROR_").lower()
                    for n in dir(zmq) if n.startswith("PROTOCOL_ERROR_")}


def _fix(directory: Path) -> str:
    return f"create a key set with `dwm-net keys generate {directory}`"


def public_key_path(directory: Path, name: str) -> Path:
    return Path(directory) / f"{name}{PUBLIC_SUFFIX}"


def secret_key_path(directory: Path, name: str) -> Path:
    return Path(directory) / PRIVATE_DIR / f"{name}{SECRET_SUFFIX}"


# --- key generation -----------------------------------------------------------------------------

def generate_keys(directory: Path, names: Sequence[str], overwrite: bool = False
                  ) -> dict[str, Path]:
    """Write a key pair per name into `directory`; returns name -> public key file.

    The whole set is built in a sibling temp directory and renamed into place, so a crash
    leaves either no key set or a complete one. `directory` must be new, empty, or (with
    `overwrite`) hold only a previous key set, which is replaced as a whole.
    """
    directory = Path(directory)
    names = list(names)
    _check_names(names)
    if directory.exists():
        if not directory.is_dir():
            raise ValueError(f"{directory} exists and is not a directory")
        entries = sorted(directory.iterdir())
        foreign = [p.name for p in entries if not _is_key_entry(p)]
        if foreign:
            raise ValueError(f"{directory} holds files other than keys ({foreign[0]}); "
                             "choose a new or empty directory")
        if entries and not overwrite:
            raise ValueError(f"{directory} already holds keys; pass --overwrite to replace "
                             "the whole key set")
    directory.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{directory.name}.", suffix=".tmp",
                                    dir=directory.parent))  # 0o700: secrets unreadable meanwhile
    try:
        private = staging / PRIVATE_DIR
        private.mkdir(mode=0o700)
        for name in names:
            public, secret = map(Path, zmq.auth.create_certificates(staging, name))
            public.chmod(0o644)
            secret.chmod(0o600)
            secret.rename(secret_key_path(staging, name))
        _fsync_tree(staging)
        staging.chmod(0o755)
        _move_into_place(staging, directory)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return {name: public_key_path(directory, name) for name in names}


def _check_names(names: list[str]) -> None:
    if not names:
        raise ValueError("no key names given")
    for name in names:
        if not _NAME_RE.fullmatch(name):
            raise ValueError(f"bad key name {name!r}: use letters, digits, '.', '_' or '-'")
    dupes = sorted(n for n, c in Counter(names).items() if c > 1)
    if dupes:
        raise ValueError(f"duplicate key names: {', '.join(dupes)}")


def _is_key_entry(path: Path) -> bool:
    if path.name == PRIVATE_DIR and path.is_dir():
        return all(p.name.endswith(SECRET_SUFFIX) for p in path.iterdir())
    return path.is_file() and path.name.endswith(PUBLIC_SUFFIX)


def _fsync_tree(root: Path) -> None:
    """Flush files, then their directories, so a renamed-in key set is whole after a crash."""
    for dirpath, _, filenames in os.walk(root, topdown=False):
        for name in filenames:
            fd = os.open(os.path.join(dirpath, name), os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        _fsync_dir(Path(dirpath))


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _move_into_place(staging: Path, directory: Path) -> None:
    if directory.exists() and any(directory.iterdir()):
        # Replacing a key set: two renames, so a crash in between leaves both sets whole
        # (the old one under a hidden sibling name), never a mix of old and new keys.
        old = Path(tempfile.mkdtemp(prefix=f".{directory.name}.", suffix=".old",
                                    dir=directory.parent))
        os.replace(directory, old)
        os.replace(staging, directory)
        shutil.rmtree(old)
    else:
        os.replace(staging, directory)  # rename(2) may replace an empty directory
    _fsync_dir(directory.parent)


# --- loading ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class KeyRing:
    """This process's key pair and every known public key (the allow-list), all Z85 bytes."""

    directory: Path
    name: str
    public_key: bytes
    secret_key: bytes = field(repr=False)
    known: Mapping[str, bytes]  # name -> public key

    @classmethod
    def load(cls, directory: Path, my_name: str) -> KeyRing:
        """Read a key set; any missing or unreadable file is a one-line ValueError."""
        directory = Path(directory)
        if not directory.is_dir():
            raise ValueError(f"key directory {directory} not found; {_fix(directory)}")
        known = {p.name.removesuffix(PUBLIC_SUFFIX): _read_public_entry(p, directory)
                 for p in sorted(directory.glob(f"*{PUBLIC_SUFFIX}"))}
        public = public_key_path(directory, my_name)
        if my_name not in known:
            raise ValueError(f"no public key {public} for {my_name!r}; {_fix(directory)} "
                             "(with that name)")
        secret_path = secret_key_path(directory, my_name)
        if not secret_path.is_file():
            raise ValueError(f"no secret key {secret_path} for {my_name!r}: copy it from the "
                             f"machine that generated the keys, or {_fix(directory)}")
        pub, sec = _read_key(secret_path, directory, secret=True)
        if pub != known[my_name]:
            raise ValueError(f"{secret_path} does not match {public}; copy both from one key "
                             f"set, or {_fix(directory)}")
        if secret_path.stat().st_mode & (stat.S_IRWXG | stat.S_IRWXO):
            log.warning("secret key %s is readable by other users; run `chmod 600 %s`",
                        secret_path, secret_path)
        return cls(directory, my_name, pub, sec, known)

    def public_key_of(self, name: str) -> bytes:
        try:
            return self.known[name]
        except KeyError:
            raise ValueError(f"no public key for {name!r} in {self.directory} (known: "
                             f"{', '.join(sorted(self.known))}); {_fix(self.directory)}") from None


def _read_public_entry(path: Path, directory: Path) -> bytes:
    # The authenticator loads every *.key entry too and fails on one that is not a file with
    # a misleading "no public keys could be loaded": name the entry here instead.
    if not path.is_file():
        kind = "a dangling link" if path.is_symlink() and not path.exists() else "not a regular file"
        raise ValueError(f"key entry {path} is {kind}; remove it or replace it with the public "
                         f"key file, or {_fix(directory)}")
    return _read_key(path, directory, secret=False)[0]


def _read_key(path: Path, directory: Path, secret: bool) -> tuple[bytes, bytes]:
    try:
        pub, sec = zmq.auth.load_certificate(path)
    except (OSError, ValueError) as e:
        raise ValueError(f"cannot read key file {path} ({e}); {_fix(directory)}") from None
    keys = (pub, sec) if secret else (pub,)
    if not all(k is not None and _valid_z85_key(k) for k in keys):
        raise ValueError(f"key file {path} holds no valid CURVE "
                         f"{'key pair' if secret else 'public key'}; {_fix(directory)}")
    return pub, sec  # type: ignore[return-value]  # sec is checked when it matters


def _valid_z85_key(key: bytes) -> bool:
    if len(key) != _Z85_KEY_LEN:
        return False
    try:
        z85.decode(key)
    except (ValueError, KeyError):
        return False
    return True


# --- applying to sockets ------------------------------------------------------------------------

@dataclass
class _Monitor:
    socket: zmq.Socket
    monitor: zmq.Socket
    role: str  # "server" or "client"


@dataclass
class _LogLimit:
    last: float
    suppressed: int = 0


class CurveSetup:
    """CURVE for a transport's sockets, with a ZAP allow-list and counted rejections.

    One per context (ZAP handlers are per context) and per process. It starts the
    authenticator at once: libzmq lets every client in when no ZAP handler is running, so it
    must exist before the first server socket binds. Call `close()` before terminating the
    context. Sockets, monitors and `poll_monitor` belong to the calling thread.
    """

    def __init__(self, keyring: KeyRing, ctx: zmq.Context,
                 peer_names: Mapping[int, str] | None = None, log_interval_s: float = 10.0
                 ) -> None:
        self.keyring = keyring
        self._peer_names = {**PROCESS_NAMES, **(peer_names or {})}
        self._log_interval_s = log_interval_s
        self._monitors: list[_Monitor] = []
        self._rejections: Counter[str] = Counter()
        self._log_limits: dict[str, _LogLimit] = {}
        self._auth = ThreadAuthenticator(ctx)
        self._auth.start()
        # Not ZAP_ENFORCE_DOMAIN: set without a ZAP domain, libzmq 4.3 then skips ZAP and
        # lets every key in (seen with pyzmq 27 / libzmq 4.3.5).
        self._auth.configure_curve(domain="*", location=str(keyring.directory))
        if not self._auth.certs.get("*"):
            self._auth.stop()
            raise ValueError(f"no public keys could be loaded from {keyring.directory}; "
                             f"{_fix(keyring.directory)}")

    def peer_name(self, peer_id: int) -> str:
        return self._peer_names.get(peer_id, f"agent-{peer_id}")

    def apply_server(self, socket: zmq.Socket) -> None:
        """Before bind: serve CURVE with our key pair; only known clients get through."""
        if not self._auth.is_alive():
            raise RuntimeError("CurveSetup: the authenticator is not running (closed?)")
        socket.curve_secretkey = self.keyring.secret_key
        socket.curve_publickey = self.keyring.public_key
        socket.curve_server = True
        self._watch(socket, "server")

    def apply_client(self, socket: zmq.Socket, peer_id: int) -> None:
        """Before connect: our key pair, and the server key of `peer_id`'s process."""
        socket.curve_serverkey = self.keyring.public_key_of(self.peer_name(peer_id))
        socket.curve_publickey = self.keyring.public_key
        socket.curve_secretkey = self.keyring.secret_key
        self._watch(socket, "client")

    def _watch(self, socket: zmq.Socket, role: str) -> None:
        if any(m.socket is socket for m in self._monitors):
            return  # a client socket connecting to several peers is watched once
        monitor = socket.get_monitor_socket(_REJECTION_EVENTS | zmq.EVENT_MONITOR_STOPPED)
        monitor.linger = 0
        self._monitors.append(_Monitor(socket, monitor, role))

    def poll_monitor(self, timeout_s: float = 0.0) -> int:
        """Count (and log) rejected handshakes seen so far; returns how many are new.

        Waits up to `timeout_s` for the first event (0: never blocks).
        """
        if timeout_s > 0 and self._monitors:
            poller = zmq.Poller()
            for m in self._monitors:
                poller.register(m.monitor, zmq.POLLIN)
            poller.poll(timeout_s * 1000)
        new = 0
        for m in list(self._monitors):
            while True:
                try:
                    event = recv_monitor_message(m.monitor, zmq.NOBLOCK)
                except zmq.Again:
                    break
                if event["event"] == zmq.EVENT_MONITOR_STOPPED:  # its socket was closed
                    m.monitor.close()
                    self._monitors.remove(m)
                    break
                self._reject(m.role, event)
                new += 1
        return new

    def rejections(self) -> dict[str, int]:
        """Rejected handshakes per "<role> <endpoint>" (the bound or connected address)."""
        self.poll_monitor()
        return dict(self._rejections)

    def _reject(self, role: str, event: dict) -> None:
        endpoint = event["endpoint"].decode(errors="replace")
        key = f"{role} {endpoint}"
        self._rejections[key] += 1
        now = time.monotonic()
        limit = self._log_limits.get(key)
        if limit is not None and now - limit.last < self._log_interval_s:
            limit.suppressed += 1
            return
        more = (f" (+{limit.suppressed} more since the last report)"
                if limit and limit.suppressed else "")
        self._log_limits[key] = _LogLimit(now)
        log.warning("CURVE handshake rejected on %s %s: %s%s", role, endpoint,
                    _reason(role, int(event["event"]), int(event["value"])), more)

    def close(self) -> None:
        """Stop the monitors and the authenticator (idempotent)."""
        for m in self._monitors:
            if not m.socket.closed:
                m.socket.disable_monitor()
            m.monitor.close()
        self._monitors.clear()
        self._auth.stop()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _reason(role: str, event: int, value: int) -> str:
    if event == zmq.EVENT_HANDSHAKE_FAILED_AUTH:
        who = "client's public key is not in the allow-list" if role == "server" else \
            "the server does not know our public key"
        return f"{who} (ZAP status {value})"
    if event == zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL:
        name = _PROTOCOL_ERRORS.get(value, hex(value))
        hint = " (the peer does not use CURVE?)" if name == "zmtp_mechanism_mismatch" else \
            " (wrong server key?)" if name.startswith("zmtp_cryptographic") else ""
        return f"protocol error {name}{hint}"
    return f"handshake failed ({os.strerror(value) if value > 0 else 'no detail'})"


# --- configuration checks -----------------------------------------------------------------------

def warn_if_insecure(bind_endpoint: str, curve: bool) -> bool:
    """Warn (and return True) when binding beyond this machine without CURVE."""
    if curve or is_local_endpoint(bind_endpoint):
        return False
    log.warning("binding %s without CURVE: anyone who can reach it may read and inject "
                "messages; generate keys with `dwm-net keys generate DIR` and enable CURVE, "
                "or bind 127.0.0.1", bind_endpoint)
    return True


def is_local_endpoint(endpoint: str) -> bool:
    """Whether `endpoint` stays on this machine (loopback, ipc, inproc)."""
    scheme, _, rest = endpoint.partition("://")
    if scheme in ("ipc", "inproc"):
        return True
    host = rest.rpartition(":")[0].strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # "*", an interface name or a DNS name: may face the network
