"""A socket that owns its context when it made one (the shape shared by small comms endpoints),
and bind / connect that turn ZeroMQ's refusals into one line naming the endpoint and the fix."""

from __future__ import annotations

import errno
from typing import Any

import zmq

from comms.codec import MAX_ARRAY_BYTES, MAX_HEADER_BYTES

# Largest frame a receiving socket accepts: the codec's limits. libzmq otherwise takes in a frame
# of any size before `decode` could reject it (a 200 MB frame grew a receiver by 400 MB,
# measured); a peer that sends more is disconnected by libzmq.
MAX_FRAME_BYTES = MAX_ARRAY_BYTES + MAX_HEADER_BYTES


def require_shared_context(ctx: zmq.Context | None, curve: Any, what: str) -> None:
    """CURVE sockets must live on the context their CurveSetup was made with: its ZAP handler
    serves that context only (on another, libzmq lets every key in), and its socket monitors
    would keep a context of the socket's own from terminating."""
    if curve is not None and ctx is None:
        raise ValueError(f"{what} with CURVE needs ctx=, the context its CurveSetup was made with")


class EndpointError(ValueError):
    """ZeroMQ refused to bind or connect an endpoint; the message names it and the fix."""


def _explain(op: str, endpoint: str, e: zmq.ZMQError) -> str:
    if e.errno == errno.EADDRINUSE:
        return (f"cannot bind {endpoint}: the address is already in use; choose another port, or "
                f"stop the process that holds it")
    if e.errno == errno.EADDRNOTAVAIL or e.errno == errno.ENODEV:
        return (f"cannot bind {endpoint}: this machine has no such address; bind one of its own "
                f"addresses, or tcp://0.0.0.0:PORT for all of them")
    if e.errno in (errno.EINVAL, zmq.EPROTONOSUPPORT):
        return f"cannot {op} {endpoint!r}: not a ZeroMQ endpoint; write it as tcp://HOST:PORT"
    return f"cannot {op} {endpoint}: {e.strerror}"


def bind(sock: zmq.Socket, endpoint: str) -> str:
    """``sock.bind(endpoint)``; returns the endpoint actually bound (a ``*`` port resolved).
    Raises `EndpointError` instead of ZeroMQ's bare errno text."""
    try:
        sock.bind(endpoint)
    except zmq.ZMQError as e:
        raise EndpointError(_explain("bind", endpoint, e)) from None
    return sock.getsockopt(zmq.LAST_ENDPOINT).decode()


def connect(sock: zmq.Socket, endpoint: str) -> None:
    """``sock.connect(endpoint)``, raising `EndpointError` for an endpoint ZeroMQ refuses."""
    try:
        sock.connect(endpoint)
    except zmq.ZMQError as e:
        raise EndpointError(_explain("connect to", endpoint, e)) from None


class OwnedSocket:
    """One `linger=0` socket of `kind`, on `ctx` or on a context of its own; `close()` closes
    the socket (and that own context) once, however often it is called."""

    def __init__(self, kind: int, ctx: zmq.Context | None = None) -> None:
        self._own_ctx = ctx is None
        self._ctx = zmq.Context() if ctx is None else ctx
        self._sock = self._ctx.socket(kind)
        self._sock.setsockopt(zmq.LINGER, 0)
        self._sock.setsockopt(zmq.MAXMSGSIZE, MAX_FRAME_BYTES)
        self._closed = False

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._sock.close(linger=0)
            if self._own_ctx:
                self._ctx.term()
