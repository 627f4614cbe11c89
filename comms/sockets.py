"""A socket that owns its context when it made one: the shape shared by small comms endpoints."""

from __future__ import annotations

import zmq


class OwnedSocket:
    """One `linger=0` socket of `kind`, on `ctx` or on a context of its own; `close()` closes
    the socket (and that own context) once, however often it is called."""

    def __init__(self, kind: int, ctx: zmq.Context | None = None) -> None:
        self._own_ctx = ctx is None
        self._ctx = zmq.Context() if ctx is None else ctx
        self._sock = self._ctx.socket(kind)
        self._sock.setsockopt(zmq.LINGER, 0)
        self._closed = False

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._sock.close(linger=0)
            if self._own_ctx:
                self._ctx.term()
