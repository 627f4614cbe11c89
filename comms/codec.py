"""Wire codec: a message <-> a multipart frame list (the format is in docs/messages.md).

Frame 0 is a small msgpack header
    {"k": kind, "v": version, "s": sender, "q": seq, "t": step, "m": {metadata}, "a": [spec...]}
where each array spec is [field, dtype, shape] (or [field, dtype, shape, key] for an entry of a
dict-of-arrays field); frames 1.. are the arrays' raw C-order little-endian bytes, in spec order.

`decode` treats its input as untrusted: every failure, whatever the bytes, is a MalformedMessage.
"""
from __future__ import annotations

import dataclasses
import functools
import math
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import msgpack
import numpy as np

from comms.messages import ALLOWED_DTYPES, HEADER_FIELDS, MESSAGE_TYPES, FieldInfo, MalformedMessage, Message, schema

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

# Allowed dtype (either byte order) -> (wire name, little-endian dtype to convert to, or None when
# it is little-endian already). One dict lookup instead of `dtype.name` and `newbyteorder` per
# array; a dtype not listed takes the general path (the message's own validation already
# rejected everything outside the allow-list).
_WIRE_DTYPES: dict[np.dtype, tuple[str, np.dtype | None]] = {}
for _name, _little in ALLOWED_DTYPES.items():
    for _order in "<>":
        _dt = _little.newbyteorder(_order)
        _WIRE_DTYPES[_dt] = (_name, None if _dt == _little else _little)


def _wire_array(arr: np.ndarray) -> tuple[str, list[int], bytes]:
    """(dtype name, shape, C-order little-endian bytes). The bytes are a copy taken now, so a
    caller may change its array after `send` (e.g. parameters trained in place) without tearing
    what goes on the wire."""
    wire = _WIRE_DTYPES.get(arr.dtype)
    if wire is None:
        little = arr.astype(arr.dtype.newbyteorder("<"), copy=False)  # no-op on little-endian
        return arr.dtype.name, list(arr.shape), little.tobytes(order="C")
    name, little_dtype = wire
    if little_dtype is not None:
        arr = arr.astype(little_dtype)
    return name, list(arr.shape), arr.tobytes()  # tobytes: C order


@dataclass(frozen=True)
class _EncodePlan:
    """Per-class field lists for the encoder, built once."""

    meta: tuple[str, ...]  # metadata fields carried in "m" (header fields excluded)
    order: tuple[tuple[str, bool], ...]  # (field, is a dict of arrays), in declaration order


@functools.cache
def _encode_plan(cls: type[Message]) -> _EncodePlan:
    infos = schema(cls)
    return _EncodePlan(
        tuple(i.name for i in infos if i.sort == "meta" and i.name not in HEADER_FIELDS),
        tuple((i.name, i.sort == "array_map") for i in infos if i.sort != "meta"))


_local = threading.local()  # one reusable Packer per thread (packb would build one per call)


def _packer() -> msgpack.Packer:
    packer = getattr(_local, "packer", None)
    if packer is None:
        packer = _local.packer = msgpack.Packer(use_bin_type=True)
    return packer


def _encode(msg: Message) -> tuple[list[bytes], int]:
    """Message -> ([header, array frames...], payload bytes)."""
    values = msg.__dict__
    plan = _encode_plan(type(msg))
    specs: list[list[Any]] = []
    frames: list[bytes] = [b""]
    for name, is_map in plan.order:  # declaration order; dict entries sorted by key
        value = values[name]
        if not is_map:
            if value is not None:
                dtype, shape, data = _wire_array(value)
                specs.append([name, dtype, shape])
                frames.append(data)
        else:
            for key in sorted(value):
                dtype, shape, data = _wire_array(value[key])
                specs.append([name, dtype, shape, key])
                frames.append(data)
    header = {
        "k": msg.KIND, "v": msg.VERSION, "s": values["sender"], "q": values["seq"],
        "t": values["step"], "m": {name: values[name] for name in plan.meta}, "a": specs,
    }
    packer = _packer()
    try:
        frames[0] = packer.pack(header)
    except BaseException:
        packer.reset()  # a failed pack must not leave bytes for the next message
        raise
    return frames, sum(map(len, frames)) - len(frames[0])


def encode(msg: Message) -> list[bytes]:
    """Message -> [header, array frames...]."""
    return _encode(msg)[0]


def payload_size(msg: Message) -> int:
    """Raw array bytes of a message (what the arrays cost before any framing)."""
    total = 0
    for info in schema(type(msg)):  # nbytes: no copy of the data just to count it
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


def _wire_size_of_bytes(frames: list[bytes]) -> int:
    """`wire_size` for frames known to be bytes (what `encode` returns)."""
    total = 0
    for frame in frames:
        n = len(frame)
        total += n + (SHORT_FRAME_OVERHEAD if n <= SHORT_FRAME_MAX else LONG_FRAME_OVERHEAD)
    return total


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


@dataclass(frozen=True)
class _DecodePlan:
    """Per-class field tables for the decoder, built once."""

    fields: dict[str, FieldInfo]
    meta: frozenset[str]  # names allowed in the header's "m"
    maps: tuple[str, ...]  # dict-of-arrays fields: an empty dict when no entry arrives
    required: tuple[str, ...]
    # Building without the dataclass __init__ (see `_build`): every field in declaration order
    # with its default (None where there is none), and the fields with a default_factory.
    # None when the class does something `_build` would not (its own __post_init__, a field
    # left out of __init__): such a class is built by calling it.
    template: dict[str, Any] | None
    factories: tuple[tuple[str, Any], ...]


@functools.cache
def _decode_plan(cls: type[Message]) -> _DecodePlan:
    infos = schema(cls)
    fields = dataclasses.fields(cls)
    plain = (cls.__post_init__ is Message.__post_init__ and all(f.init for f in fields)
             and not hasattr(cls, "__slots__"))
    return _DecodePlan(
        {i.name: i for i in infos},
        frozenset(i.name for i in infos if i.sort == "meta" and i.name not in HEADER_FIELDS),
        tuple(i.name for i in infos if i.sort == "array_map"),
        tuple(i.name for i in infos if i.required),
        {f.name: None if f.default is dataclasses.MISSING else f.default for f in fields}
        if plain else None,
        tuple((f.name, f.default_factory) for f in fields
              if f.default_factory is not dataclasses.MISSING))


def _decode(frames: Sequence[Any], limits: Limits) -> Message:
    if not isinstance(frames, (list, tuple)) or not frames:
        raise MalformedMessage("expected a non-empty list of frames")
    views = [f if type(f) is bytes else _view(f, i) for i, f in enumerate(frames)]
    header = _unpack_header(views[0], limits)
    cls = _message_class(header)
    specs = header["a"]
    if len(specs) > limits.max_arrays:
        raise MalformedMessage(f"{len(specs)} arrays exceed the limit of {limits.max_arrays}")
    if len(views) - 1 != len(specs):
        raise MalformedMessage(f"header lists {len(specs)} arrays but {len(views) - 1} array "
                               "frames follow")
    plan = _decode_plan(cls)
    arrays = _decode_arrays(cls, plan.fields, specs, views, limits) if specs else {}
    meta = header["m"]
    if not plan.meta.issuperset(meta):
        _metadata(cls, plan.fields, meta)  # raises, naming the fields
    kwargs = {"sender": header["s"], "seq": header["q"], "step": header["t"], **meta, **arrays}
    for name in plan.maps:
        kwargs.setdefault(name, {})  # an empty dict of arrays sends no frames
    for name in plan.required:
        if name not in kwargs:
            _check_missing(cls, plan.fields, kwargs)  # raises, naming every missing field
    try:
        return _build(cls, plan, kwargs)
    except MalformedMessage as e:
        raise MalformedMessage(f"{cls.KIND}: {e}") from None


def _build(cls: type[Message], plan: _DecodePlan, kwargs: dict[str, Any]) -> Message:
    """`cls(**kwargs)` for checked kwargs (every required field, no unknown one), without the
    generated __init__'s per-field calls: the same instance dict, then the same validation
    (`Message.__post_init__`)."""
    if plan.template is None:
        return cls(**kwargs)
    values = plan.template.copy()  # declaration order, as __init__ would set them
    values.update(kwargs)
    for name, factory in plan.factories:
        if name not in kwargs:
            values[name] = factory()
    msg = object.__new__(cls)
    object.__setattr__(msg, "__dict__", values)
    msg.__post_init__()
    return msg


def _view(frame: Any, index: int) -> memoryview:
    try:
        view = memoryview(frame)
    except TypeError:
        raise MalformedMessage(f"frame {index} is {type(frame).__name__}, not bytes") from None
    return view.cast("B") if view.format != "B" or view.ndim != 1 else view


def _unpack_header(view: bytes | memoryview, limits: Limits) -> dict[str, Any]:
    n = limits.max_header_bytes
    if len(view) > n:  # bytes, or a 1-d memoryview of bytes: len is the byte count
        raise MalformedMessage(f"header of {len(view)} bytes exceeds the limit of {n}")
    try:
        header = msgpack.unpackb(view, raw=False, strict_map_key=True, use_list=True,
                                 max_str_len=n, max_bin_len=n, max_array_len=n, max_map_len=n,
                                 max_ext_len=0)
    except Exception as e:  # noqa: BLE001  (whatever msgpack raises on hostile bytes: one error type out)
        raise MalformedMessage(f"header is not valid msgpack ({type(e).__name__}: {e})") from None
    if not isinstance(header, dict):
        raise MalformedMessage(f"header must be a msgpack map, got {type(header).__name__}")
    if header.keys() != _HEADER_KEYS:
        missing, extra = _HEADER_KEYS - header.keys(), header.keys() - _HEADER_KEYS
        raise MalformedMessage(f"header keys wrong: missing {sorted(missing)}, "
                               f"unexpected {sorted(map(str, extra))}")
    if (type(header["k"]) is str and type(header["v"]) is int and type(header["s"]) is int
            and type(header["q"]) is int and type(header["t"]) is int
            and type(header["m"]) is dict and type(header["a"]) is list):
        return header  # what msgpack returns for a well-formed header
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
                   views: list[bytes | memoryview], limits: Limits) -> dict[str, Any]:
    """Arrays from `views[1:]` (`views[0]` is the header), one per spec, in order; each view
    is bytes or a 1-d memoryview of unsigned bytes (`_view`)."""
    out: dict[str, Any] = {}
    total = 0
    for index, spec in enumerate(specs):
        frame = views[index + 1]
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
        if len(frame) != nbytes:  # bytes, or a 1-d memoryview of bytes: len is the byte count
            raise MalformedMessage(f"array '{name}' {dtype.name}{tuple(shape)} needs {nbytes} "
                                   f"bytes but its frame has {len(frame)}")
        arr = np.frombuffer(frame, dtype=dtype)
        if len(shape) != 1:
            arr = arr.reshape(shape)
        if type(frame) is not bytes and not frame.readonly:
            arr.flags.writeable = False  # frames may be writable buffers (bytearray, zmq.Frame)
        if key is None:
            if name in out:
                raise MalformedMessage(f"array field '{name}' appears twice")
            out[name] = arr
        else:
            entries = out.get(name)
            if entries is None:
                entries = out[name] = {}
            if key in entries:
                raise MalformedMessage(f"array '{name}[{key!r}]' appears twice")
            entries[key] = arr
    return out


def _parse_spec(index: int, spec: Any, limits: Limits) -> tuple[str, str | None, np.dtype,
                                                                  list[int]]:
    # Fast path: exactly the types msgpack returns for a well-formed spec; anything else takes
    # the checks below, which say what is wrong.
    if type(spec) is list and 3 <= len(spec) <= 4:
        name, dtype_name, shape = spec[0], spec[1], spec[2]
        key = spec[3] if len(spec) == 4 else None
        dtype = ALLOWED_DTYPES.get(dtype_name) if type(dtype_name) is str else None
        if (dtype is not None and type(name) is str and (key is None or type(key) is str)
                and type(shape) is list and len(shape) <= limits.max_dims):
            for d in shape:
                if type(d) is not int or d < 0:
                    break
            else:
                return name, key, dtype, shape
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
