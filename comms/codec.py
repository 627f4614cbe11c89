"""Wire codec: a message <-> a multipart frame list (the format is in docs/messages.md).

Frame 0 is a small msgpack header
    {"k": kind, "v": version, "s": sender, "q": seq, "t": step, "m": {metadata}, "a": [spec...]}
where each array spec is [field, dtype, shape] (or [field, dtype, shape, key] for an entry of a
dict-of-arrays field); frames 1.. are the arrays' raw C-order little-endian bytes, in spec order.

`decode` treats its input as untrusted: every failure, whatever the bytes, is a MalformedMessage.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import msgpack
import numpy as np

from comms.messages import (ALLOWED_DTYPES, HEADER_FIELDS, MESSAGE_TYPES, FieldInfo,
                            MalformedMessage, Message, schema)

__all__ = ["Limits", "MalformedMessage", "decode", "encode", "payload_size", "wire_size"]

MAX_HEADER_BYTES = 64 * 1024
MAX_ARRAYS = 64
MAX_DIMS = 8
MAX_ARRAY_BYTES = 64 * 1024 * 1024  # all array frames of one message together

# ZMTP 3 frame header: flags byte + 1-byte size for frames <= 255 bytes, + 8-byte size otherwise.
SHORT_FRAME_MAX = 255
SHORT_FRAME_OVERHEAD = 2
LONG_FRAME_OVERHEAD = 9

_HEADER_KEYS = frozenset("kvsqtma")


@dataclass(frozen=True)
class Limits:
    """Decoder limits on untrusted input; the defaults are the module constants."""

    max_header_bytes: int = MAX_HEADER_BYTES
    max_arrays: int = MAX_ARRAYS
    max_dims: int = MAX_DIMS
    max_array_bytes: int = MAX_ARRAY_BYTES


DEFAULT_LIMITS = Limits()


# --- encode -----------------------------------------------------------------------------------

def _wire_array(arr: np.ndarray) -> tuple[str, list[int], bytes]:
    little = arr.astype(arr.dtype.newbyteorder("<"), copy=False)  # no-op on little-endian input
    return arr.dtype.name, list(arr.shape), little.tobytes(order="C")


def _arrays(msg: Message) -> list[tuple[list[Any], bytes]]:
    """(spec, frame) per array, in declaration order; dict entries sorted by key."""
    out = []
    for info in schema(type(msg)):
        value = getattr(msg, info.name)
        if info.sort == "array" and value is not None:
            dtype, shape, data = _wire_array(value)
            out.append(([info.name, dtype, shape], data))
        elif info.sort == "array_map":
            for key in sorted(value):
                dtype, shape, data = _wire_array(value[key])
                out.append(([info.name, dtype, shape, key], data))
    return out


def encode(msg: Message) -> list[bytes]:
    """Message -> [header, array frames...]."""
    arrays = _arrays(msg)
    header = {
        "k": msg.KIND, "v": msg.VERSION, "s": msg.sender, "q": msg.seq, "t": msg.step,
        "m": {i.name: getattr(msg, i.name) for i in schema(type(msg))
              if i.sort == "meta" and i.name not in HEADER_FIELDS},
        "a": [spec for spec, _ in arrays],
    }
    return [msgpack.packb(header, use_bin_type=True)] + [data for _, data in arrays]


def payload_size(msg: Message) -> int:
    """Raw array bytes of a message (what the arrays cost before any framing)."""
    total = 0
    for info in schema(type(msg)):  # nbytes, not _arrays(): no copy of the data just to count it
        value = getattr(msg, info.name)
        if info.sort == "array" and value is not None:
            total += value.nbytes
        elif info.sort == "array_map":
            total += sum(arr.nbytes for arr in value.values())
    return total


def wire_size(frames: Sequence[bytes]) -> int:
    """Frame bytes plus the ZMTP 3 per-frame header (2 bytes if <= 255 bytes, else 9).

    An estimate of bytes on the link: TCP/IP and CURVE overheads and PUB/SUB topic frames are
    not included.
    """
    return sum(n + (SHORT_FRAME_OVERHEAD if n <= SHORT_FRAME_MAX else LONG_FRAME_OVERHEAD)
               for n in (memoryview(f).nbytes for f in frames))


# --- decode -----------------------------------------------------------------------------------

def decode(frames: Sequence[Any], limits: Limits = DEFAULT_LIMITS) -> Message:
    """[header, array frames...] -> Message; raises MalformedMessage, and only that, on bad input.

    Arrays are read-only zero-copy views of the frames.
    """
    try:
        return _decode(frames, limits)
    except MalformedMessage:
        raise
    except Exception as e:  # anything else means bytes we did not foresee: still malformed
        raise MalformedMessage(f"undecodable message ({type(e).__name__}: {e})") from e


def _decode(frames: Sequence[Any], limits: Limits) -> Message:
    if not isinstance(frames, (list, tuple)) or not frames:
        raise MalformedMessage("expected a non-empty list of frames")
    views = [_view(f, i) for i, f in enumerate(frames)]
    header = _unpack_header(views[0], limits)
    cls = _message_class(header)
    specs = header["a"]
    if len(specs) > limits.max_arrays:
        raise MalformedMessage(f"{len(specs)} arrays exceed the limit of {limits.max_arrays}")
    if len(views) - 1 != len(specs):
        raise MalformedMessage(f"header lists {len(specs)} arrays but {len(views) - 1} array "
                               "frames follow")
    fields = {i.name: i for i in schema(cls)}
    arrays = _decode_arrays(cls, fields, specs, views[1:], limits)
    meta = _metadata(cls, fields, header["m"])
    kwargs = {"sender": header["s"], "seq": header["q"], "step": header["t"], **meta, **arrays}
    _check_missing(cls, fields, kwargs)
    try:
        return cls(**kwargs)
    except MalformedMessage as e:
        raise MalformedMessage(f"{cls.KIND}: {e}") from None


def _view(frame: Any, index: int) -> memoryview:
    try:
        view = memoryview(frame)
    except TypeError:
        raise MalformedMessage(f"frame {index} is {type(frame).__name__}, not bytes") from None
    return view.cast("B") if view.format != "B" or view.ndim != 1 else view


def _unpack_header(view: memoryview, limits: Limits) -> dict[str, Any]:
    n = limits.max_header_bytes
    if view.nbytes > n:
        raise MalformedMessage(f"header of {view.nbytes} bytes exceeds the limit of {n}")
    try:
        header = msgpack.unpackb(view, raw=False, strict_map_key=True, use_list=True,
                                 max_str_len=n, max_bin_len=n, max_array_len=n, max_map_len=n,
                                 max_ext_len=0)
    except Exception as e:
        raise MalformedMessage(f"header is not valid msgpack ({type(e).__name__}: {e})") from None
    if not isinstance(header, dict):
        raise MalformedMessage(f"header must be a msgpack map, got {type(header).__name__}")
    if header.keys() != _HEADER_KEYS:
        missing, extra = _HEADER_KEYS - header.keys(), header.keys() - _HEADER_KEYS
        raise MalformedMessage(f"header keys wrong: missing {sorted(missing)}, "
                               f"unexpected {sorted(map(str, extra))}")
    for key, want in (("k", str), ("v", int), ("s", int), ("q", int), ("t", int), ("m", dict),
                      ("a", list)):
        if not isinstance(header[key], want) or isinstance(header[key], bool):
            raise MalformedMessage(f"header '{key}' must be {want.__name__}, "
                                   f"got {type(header[key]).__name__}")
    return header


def _message_class(header: dict[str, Any]) -> type[Message]:
    kind, version = header["k"], header["v"]
    cls = MESSAGE_TYPES.get(kind)
    if cls is None:
        raise MalformedMessage(f"unknown message kind {kind!r}")
    if version > cls.VERSION:
        raise MalformedMessage(f"{kind} version {version} is newer than supported version "
                               f"{cls.VERSION}")
    if version < 1:
        raise MalformedMessage(f"{kind} version {version} is not a valid version")
    return cls


def _decode_arrays(cls: type[Message], fields: dict[str, FieldInfo], specs: list[Any],
                   frames: list[memoryview], limits: Limits) -> dict[str, Any]:
    out: dict[str, Any] = {}
    total = 0
    for index, (spec, frame) in enumerate(zip(specs, frames)):
        name, key, dtype, shape = _parse_spec(index, spec, limits)
        info = fields.get(name)
        if info is None or info.sort == "meta":
            raise MalformedMessage(f"{cls.KIND} has no array field {name!r}")
        if (info.sort == "array_map") != (key is not None):
            raise MalformedMessage(f"array spec {index} ('{name}'): a key is required exactly "
                                   "for dict-of-arrays fields")
        nbytes = math.prod(shape) * dtype.itemsize
        total += nbytes
        if total > limits.max_array_bytes:
            raise MalformedMessage(f"arrays exceed the limit of {limits.max_array_bytes} bytes")
        if frame.nbytes != nbytes:
            raise MalformedMessage(f"array '{name}' {dtype.name}{tuple(shape)} needs {nbytes} "
                                   f"bytes but its frame has {frame.nbytes}")
        arr = np.frombuffer(frame, dtype=dtype).reshape(shape)
        arr.flags.writeable = False  # frames may be writable buffers (bytearray, zmq.Frame)
        _put(out, info, key, arr)
    return out


def _parse_spec(index: int, spec: Any, limits: Limits) -> tuple[str, str | None, np.dtype,
                                                                  list[int]]:
    if not isinstance(spec, list) or len(spec) not in (3, 4):
        raise MalformedMessage(f"array spec {index} must be [field, dtype, shape(, key)]")
    name, dtype_name, shape = spec[:3]
    key = spec[3] if len(spec) == 4 else None
    if not isinstance(name, str) or (key is not None and not isinstance(key, str)):
        raise MalformedMessage(f"array spec {index}: field name and key must be str")
    if not isinstance(dtype_name, str) or dtype_name not in ALLOWED_DTYPES:
        raise MalformedMessage(f"array '{name}': dtype {_short(dtype_name)} not allowed "
                               f"(allowed: {', '.join(ALLOWED_DTYPES)})")
    if not isinstance(shape, list) or len(shape) > limits.max_dims:
        raise MalformedMessage(f"array '{name}': shape must be a list of at most "
                               f"{limits.max_dims} dimensions")
    if not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape):
        raise MalformedMessage(f"array '{name}': shape {_short(shape)} must hold ints >= 0")
    return name, key, ALLOWED_DTYPES[dtype_name], shape


def _put(out: dict[str, Any], info: FieldInfo, key: str | None, arr: np.ndarray) -> None:
    if key is None:
        if info.name in out:
            raise MalformedMessage(f"array field '{info.name}' appears twice")
        out[info.name] = arr
        return
    entries = out.setdefault(info.name, {})
    if key in entries:
        raise MalformedMessage(f"array '{info.name}[{key!r}]' appears twice")
    entries[key] = arr


def _metadata(cls: type[Message], fields: dict[str, FieldInfo], meta: dict[str, Any]
              ) -> dict[str, Any]:
    extra = [k for k in meta if k not in fields or fields[k].sort != "meta" or k in HEADER_FIELDS]
    if extra:
        raise MalformedMessage(f"{cls.KIND} has no metadata field(s) "
                               f"{', '.join(_short(k) for k in extra)}")
    return meta


def _check_missing(cls: type[Message], fields: dict[str, FieldInfo], kwargs: dict[str, Any]
                   ) -> None:
    """Required fields must be present; absent fields with defaults (newer fields) are filled."""
    for name, info in fields.items():
        if info.sort == "array_map":
            kwargs.setdefault(name, {})  # an empty dict of arrays sends no frames
    missing = [name for name, info in fields.items() if info.required and name not in kwargs]
    if missing:
        raise MalformedMessage(f"{cls.KIND} is missing field(s) {', '.join(missing)}")


def _short(value: Any, limit: int = 40) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
