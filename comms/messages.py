"""Message schemas: one frozen, versioned dataclass per kind (the reference is docs/messages.md).

Data only. Construction validates every field, so a message that exists is well formed, whether
built by a sender or decoded from untrusted bytes (the codec builds messages the same way).

Fields are of three sorts, told apart by their annotation:
- arrays (`np.ndarray`, or `np.ndarray | None` when optional): one raw wire frame each; the field's
  `array(...)` declaration gives the allowed dtype kinds and a shape note like `(T, D)` whose
  named dimensions must agree across the message's arrays;
- array maps (`dict[str, np.ndarray]`, only `ParamsMsg.arrays`): one frame per entry;
- metadata (everything else): plain msgpack types carried in the header, checked against the
  annotation (int, float, str, bool, None, unions, `dict[str, X]`, `list[X]`).

Version rule: a decoder accepts a kind's versions up to its own `VERSION`; fields added in a
later version must have defaults, which fill them when an older sender omits them.
"""
from __future__ import annotations

import dataclasses
import functools
import re
import types
import typing
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

import numpy as np

# Header `sender` ids of the non-agent processes (agents use their id, 0..N-1).
ENV_HOST = -1
LAUNCHER = -2
LEARNER = -3

# Wire dtypes: fixed-size numeric and bool only (never object, strings, structured or void).
ALLOWED_DTYPES: dict[str, np.dtype] = {
    name: np.dtype(name).newbyteorder("<")
    for name in ("bool", "uint8", "int8", "uint16", "int16", "uint32", "int32", "int64",
                 "float16", "float32", "float64")
}

# `kinds` letters of `array(...)`: numpy dtype.kind codes.
_KIND_WORDS = {"b": "bool", "u": "unsigned int", "i": "signed int", "f": "float"}


class MalformedMessage(ValueError):
    """A message (or its bytes) breaks the schema or the wire format; the text says how."""


def array(kinds: str, shape: str, *, optional: bool = False) -> Any:
    """Declare an array field: allowed dtype kinds (e.g. "f", "bu") and a shape note "(T, D)"."""
    meta = {"kinds": kinds, "shape": shape}
    if optional:
        return field(default=None, metadata=meta)
    return field(metadata=meta)


# eq=False: identity comparison, since `==` on array fields has no single truth value.
message = dataclass(frozen=True, kw_only=True, eq=False)

FieldSort = Literal["array", "array_map", "meta"]


@dataclass(frozen=True)
class FieldInfo:
    """One field of a message class, as validation and the codec see it."""

    name: str
    sort: FieldSort
    hint: Any
    required: bool  # no default: must be present on the wire
    kinds: str = "buif"
    dims: tuple[str, ...] | None = None  # named dims from the shape note; None = any shape


@message
class Message:
    """Common header: who sent it, its per-sender counter and the env step it refers to."""

    KIND: ClassVar[str] = ""
    VERSION: ClassVar[int] = 0

    sender: int
    seq: int = 0
    step: int = 0

    def __post_init__(self) -> None:
        validate(self)


@message
class RegisterMsg(Message):
    """agent -> env host at rendezvous."""

    KIND: ClassVar[str] = "register"
    VERSION: ClassVar[int] = 1

    agent_id: int
    endpoint: str  # where this agent's peer-mesh PUB socket listens
    public_key: str | None = None  # CURVE public key (Z85), None when security is off
    host: dict[str, str | int | float] = field(default_factory=dict)  # hostname, pid, ...


@message
class SpecMsg(Message):
    """env host -> every agent once all have registered: what it runs and who its peers are."""

    KIND: ClassVar[str] = "spec"
    VERSION: ClassVar[int] = 1

    scenario: str
    n_agents: int
    obs_dim: int
    n_actions: int
    episode_limit: int
    peers: dict[str, str]  # str(agent_id) -> peer-mesh endpoint (msgpack map keys are str)
    peer_keys: dict[str, str] = field(default_factory=dict)  # str(agent_id) -> CURVE key
    extra: dict[str, str | int | float | bool] = field(default_factory=dict)


@message
class StepMsg(Message):
    """env host -> agent i each env step (header `step`): agent i's own view only.

    Agent i answers with an `ActionMsg` unless `terminated` or `truncated` is set."""

    KIND: ClassVar[str] = "step"
    VERSION: ClassVar[int] = 2

    obs: np.ndarray = array("f", "(D,)")
    avail: np.ndarray = array("bu", "(A,)")  # available actions, bool or 0/1 uint8
    reward: float  # team reward of the transition that led here (0 at t = 0)
    terminated: bool  # that transition ended the task (win, loss): no action is due
    truncated: bool  # the episode hit its time limit: no action is due
    episode: int
    t: int = 0  # v2: step within the episode; 0 starts a new one (reset the recurrent state)
    greedy: bool = False  # v2: an evaluation episode: act greedily, record and train nothing


@message
class ActionMsg(Message):
    """agent -> env host: its action for env step `step`."""

    KIND: ClassVar[str] = "action"
    VERSION: ClassVar[int] = 1

    action: int


@message
class ExperienceMsg(Message):
    """agent -> peers (or the centralized learner): a real sequence chunk of T steps.

    Compact forms (comms.compact): avail as packed bits (T, ceil(A/8)) uint8, actions as the
    smallest unsigned int, latents as class indices; `n_actions` undoes the bit packing.
    """

    KIND: ClassVar[str] = "experience"
    VERSION: ClassVar[int] = 2

    obs: np.ndarray = array("f", "(T, D)")
    actions: np.ndarray = array("ui", "(T,)")
    rewards: np.ndarray = array("f", "(T,)")
    terms: np.ndarray = array("bu", "(T,)")
    avail: np.ndarray = array("bu", "(T, M)")  # (T, A) bool or (T, ceil(A/8)) packed bits
    latents: np.ndarray | None = array("u", "(T, C)", optional=True)  # class indices
    n_actions: int
    score: float = 0.0  # the sharing score that let it through the gate
    # v2: where the chunk lies in its episode, so a receiver can join consecutive chunks of one
    # sender back into the episode (the centralized learner does): `t0` its first step's index
    # in the episode (0: it starts one), `ends` whether nothing of the episode follows it.
    # The defaults describe a standalone window (what a v1 sender's chunks are).
    t0: int = 0
    ends: bool = True


@message
class RolloutMsg(Message):
    """agent -> peers: one imagined trajectory of H actions from S = H + 1 latent states
    (state 0 is the posterior start; the critic bootstraps from state H), latents as class
    indices."""

    KIND: ClassVar[str] = "rollout"
    VERSION: ClassVar[int] = 1

    actions: np.ndarray = array("ui", "(H,)")
    avail: np.ndarray = array("bu", "(H, M)")  # (H, A) bool or (H, ceil(A/8)) packed bits
    logits: np.ndarray = array("f", "(H, A)")  # policy logits
    rewards: np.ndarray = array("f", "(H,)")  # predicted rewards
    discounts: np.ndarray = array("f", "(H,)")  # gamma * predicted P(continue) after each action
    h: np.ndarray = array("f", "(S, E)")  # deterministic RSSM states 0..H
    z: np.ndarray = array("u", "(S, C)")  # stochastic latents 0..H, class indices
    n_actions: int
    score: float = 0.0  # critic loss that ranked it


@message
class ParamsMsg(Message):
    """centralized learner -> acting agents: named parameter arrays (any shape)."""

    KIND: ClassVar[str] = "params"
    VERSION: ClassVar[int] = 1

    arrays: dict[str, np.ndarray]
    update: int = 0  # learner update counter, so agents can drop stale parameters


@message
class MetricsMsg(Message):
    """any process -> launcher (rate-limited): a flat dict of scalars."""

    KIND: ClassVar[str] = "metrics"
    VERSION: ClassVar[int] = 1

    values: dict[str, float | int | str]


@message
class HeartbeatMsg(Message):
    """any process -> its supervisor: still alive."""

    KIND: ClassVar[str] = "heartbeat"
    VERSION: ClassVar[int] = 1

    time: float  # sender's wall clock, seconds since the epoch


@message
class StopMsg(Message):
    """launcher or env host -> everyone: shut down."""

    KIND: ClassVar[str] = "stop"
    VERSION: ClassVar[int] = 1

    reason: str


MESSAGE_TYPES: dict[str, type[Message]] = {
    cls.KIND: cls
    for cls in (RegisterMsg, SpecMsg, StepMsg, ActionMsg, ExperienceMsg, RolloutMsg, ParamsMsg,
                MetricsMsg, HeartbeatMsg, StopMsg)
}


# --- schema introspection ---------------------------------------------------------------------

def _dims(note: str) -> tuple[str, ...]:
    return tuple(d for d in re.split(r"[\s,()]+", note) if d)


def _sort(hint: Any) -> FieldSort:
    if hint is np.ndarray or hint == (np.ndarray | None):
        return "array"
    if hint == dict[str, np.ndarray]:
        return "array_map"
    return "meta"


@functools.cache
def schema(cls: type[Message]) -> tuple[FieldInfo, ...]:
    """The fields of a message class, in declaration order, header fields included."""
    hints = typing.get_type_hints(cls)
    infos = []
    for f in dataclasses.fields(cls):
        required = f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        note = f.metadata.get("shape")
        infos.append(FieldInfo(f.name, _sort(hints[f.name]), hints[f.name], required,
                               f.metadata.get("kinds", "buif"), _dims(note) if note else None))
    return tuple(infos)


HEADER_FIELDS = ("sender", "seq", "step")


# --- validation -------------------------------------------------------------------------------

def _type_name(hint: Any) -> str:
    return str(hint).replace("typing.", "") if typing.get_args(hint) else hint.__name__


def _conforms(value: Any, hint: Any) -> bool:
    """Whether a plain (msgpack) value matches an annotation; ints are accepted for float."""
    # plain scalar annotations first: they are most fields, and need no typing introspection
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is bool:
        return isinstance(value, bool)
    if hint is str or hint is bytes:
        return isinstance(value, hint)
    if hint is Any:
        return True
    if hint is type(None):
        return value is None
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        return any(_conforms(value, a) for a in args)
    if (origin or hint) is dict:
        return isinstance(value, dict) and (not args or all(
            _conforms(k, args[0]) and _conforms(v, args[1]) for k, v in value.items()))
    if (origin or hint) is list:
        return isinstance(value, list) and (not args or all(_conforms(v, args[0]) for v in value))
    raise TypeError(f"unsupported metadata annotation {hint!r}")


def _plain(value: Any, hint: Any) -> Any:
    """numpy scalars -> Python scalars, tuples -> lists, int -> float where a float is declared
    (senders pass `np.float32` rewards; msgpack knows only plain types)."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, tuple):
        value = list(value)
    if isinstance(value, dict):
        return {k: _plain(v, Any) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v, Any) for v in value]
    if type(value) is int and _float_not_int(hint):
        return float(value)
    return value


@functools.cache
def _float_not_int(hint: Any) -> bool:
    """Whether an annotation admits float but not int (so a plain int must become a float)."""
    args = typing.get_args(hint)
    return (hint is float or float in args) and not (hint is int or int in args)


# Allowed dtypes in either byte order -> their kind letter: one dict lookup per array instead of
# `dtype.name` (which builds a string each time). A miss falls back to the full check below.
_ALLOWED_KIND: dict[np.dtype, str] = {
    dt.newbyteorder(order): dt.kind for dt in ALLOWED_DTYPES.values() for order in "<>"
}


def _array_ok(value: Any, info: FieldInfo) -> bool:
    """The common case of `_check_array`: True means it would pass; False, look closer."""
    if not isinstance(value, np.ndarray):
        return False
    kind = _ALLOWED_KIND.get(value.dtype)
    return (kind is not None and kind in info.kinds
            and (info.dims is None or value.ndim == len(info.dims)))


def _check_array(name: str, value: Any, info: FieldInfo) -> None:
    if not _array_ok(value, info):
        _check_array_slow(name, value, info)  # raises, saying what is wrong


def _check_array_slow(name: str, value: Any, info: FieldInfo) -> None:
    if not isinstance(value, np.ndarray):
        raise MalformedMessage(f"field '{name}' must be a numpy array, got {type(value).__name__}")
    if value.dtype.name not in ALLOWED_DTYPES or value.dtype.fields is not None:
        raise MalformedMessage(f"field '{name}' has dtype {value.dtype.str!r}, not allowed")
    if value.dtype.kind not in info.kinds:
        wanted = " or ".join(_KIND_WORDS[k] for k in info.kinds)
        raise MalformedMessage(f"field '{name}' has dtype {value.dtype.name}, expected {wanted}")
    if info.dims is not None and value.ndim != len(info.dims):
        raise MalformedMessage(f"field '{name}' has shape {value.shape}, expected "
                               f"({', '.join(info.dims)}{',' if len(info.dims) == 1 else ''})")


def _check_dims(msg: Message, infos: tuple[FieldInfo, ...]) -> None:
    """Named dimensions (T, D, ...) must have one size across the message's arrays."""
    seen: dict[str, tuple[int, str]] = {}
    for info in infos:
        value = getattr(msg, info.name)
        if info.sort != "array" or value is None or info.dims is None:
            continue
        for dim, size in zip(info.dims, value.shape):
            first = seen.setdefault(dim, (size, info.name))
            if first[0] != size:
                raise MalformedMessage(
                    f"dimension {dim} is {first[0]} in '{first[1]}' but {size} in '{info.name}'")


_ARRAY, _ARRAY_MAP, _META = 0, 1, 2
_SORT_CODES = {"array": _ARRAY, "array_map": _ARRAY_MAP, "meta": _META}
_SIMPLE = (int, float, bool, str, type(None))


def _exact_types(hint: Any) -> frozenset[type]:
    """Exact value types that conform to a metadata annotation as they are (no normalization),
    so validation can accept them with one `type(v) in ...` test; empty when there is none.

    Only plain scalar annotations and unions of them qualify: containers are checked in full.
    A plain int is not exact for an annotation that wants it turned into a float.
    """
    members = typing.get_args(hint) if typing.get_origin(hint) in (typing.Union,
                                                                   types.UnionType) else (hint,)
    if not all(m in _SIMPLE for m in members):
        return frozenset()
    exact = set(members)
    if _float_not_int(hint):
        exact.discard(int)
    return frozenset(exact)


@dataclass(frozen=True)
class _Plan:
    """Per-class validation plan, built once: what `validate` would otherwise re-derive from
    the schema for every message."""

    fields: tuple[tuple[str, int, FieldInfo, frozenset[type]], ...]
    has_dims: bool


@functools.cache
def _plan(cls: type[Message]) -> _Plan:
    infos = schema(cls)
    return _Plan(
        tuple((i.name, _SORT_CODES[i.sort], i,
               _exact_types(i.hint) if i.sort == "meta" else frozenset()) for i in infos),
        any(i.sort == "array" and i.dims is not None for i in infos))


def validate(msg: Message) -> None:
    """Raise MalformedMessage unless every field matches the schema; normalizes plain scalars."""
    cls = type(msg)
    if MESSAGE_TYPES.get(getattr(cls, "KIND", None)) is not cls:
        raise MalformedMessage(f"{cls.__name__} is not a registered message kind")
    plan = _plan(cls)
    values = msg.__dict__
    for name, sort, info, exact in plan.fields:
        value = values[name]
        if sort == _META:
            if type(value) in exact:
                continue  # conforms as it is: nothing to normalize
            value = _plain(value, info.hint)
            if not _conforms(value, info.hint):
                raise MalformedMessage(f"field '{name}' must be {_type_name(info.hint)}, "
                                       f"got {type(value).__name__} {_short(value)}")
            object.__setattr__(msg, name, value)
        elif sort == _ARRAY:
            if value is not None or info.required:
                _check_array(name, value, info)
        else:
            if not isinstance(value, dict):
                raise MalformedMessage(f"field '{name}' must be a dict of arrays")
            for key, arr in value.items():
                if not isinstance(key, str):
                    raise MalformedMessage(f"field '{name}' has non-str key {key!r}")
                if not _array_ok(arr, info):
                    _check_array_slow(f"{name}[{key!r}]", arr, info)
    if plan.has_dims:
        _check_dims(msg, schema(cls))
    if msg.sender < LEARNER:
        raise MalformedMessage(f"sender {msg.sender} is not an agent id or a known process id")
    if msg.seq < 0 or msg.step < 0:
        raise MalformedMessage(f"seq ({msg.seq}) and step ({msg.step}) must be >= 0")


def _short(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
