"""Wire format: round trips of every kind, malformed-input rejection, fuzzing, compact helpers."""
from __future__ import annotations

import dataclasses
import re
from typing import Any, ClassVar

import msgpack
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from comms import compact
from comms.codec import Limits, MalformedMessage, decode, encode, payload_size, wire_size
from comms.messages import (
    ALLOWED_DTYPES,
    ENV_HOST,
    LAUNCHER,
    LEARNER,
    MESSAGE_TYPES,
    ActionMsg,
    ExperienceMsg,
    HeartbeatMsg,
    Message,
    MetricsMsg,
    ParamsMsg,
    RegisterMsg,
    RolloutMsg,
    SpecMsg,
    StepMsg,
    StopMsg,
)

RNG = np.random.default_rng(0)


def experience(t: int = 5, d: int = 4, a: int = 7, latents: bool = True) -> ExperienceMsg:
    chunk = compact.random_experience(d, a, t, (3, 8) if latents else None)
    return ExperienceMsg(sender=1, seq=4, step=100, n_actions=a, score=2.5,
                         **compact.compact_experience(**chunk, float16=True))


def samples() -> list[Message]:
    """One message of every kind."""
    return [
        RegisterMsg(sender=0, endpoint="tcp://10.0.0.2:5601", agent_id=0, public_key=None,
                    host={"hostname": "node1", "pid": 1234}),
        SpecMsg(sender=ENV_HOST, scenario="3m", n_agents=3, obs_dim=30, n_actions=9,
                episode_limit=60, peers={"0": "tcp://a:1", "1": "tcp://b:2", "2": "tcp://c:3"},
                extra={"state_dim": 48}),
        StepMsg(sender=ENV_HOST, seq=9, step=3, obs=RNG.random(30, dtype=np.float32),
                avail=np.ones(9, bool), reward=0.25, terminated=False, truncated=True, episode=2),
        ActionMsg(sender=2, seq=9, step=3, action=4),
        experience(),
        RolloutMsg(sender=1, step=7, actions=np.arange(15, dtype=np.uint8) % 9,
                   avail=compact.pack_bits(np.ones((15, 9), bool)),
                   logits=RNG.random((15, 9), dtype=np.float32), rewards=np.zeros(15, np.float16),
                   discounts=np.full(15, 0.99, np.float32),
                   h=RNG.random((16, 64), dtype=np.float32),
                   z=RNG.integers(0, 32, (16, 32)).astype(np.uint8), n_actions=9, score=0.1),
        ParamsMsg(sender=LEARNER, arrays={"actor.0.weight": RNG.random((8, 4)),
                                          "actor.0.bias": np.zeros(8, np.float32)}, update=3),
        MetricsMsg(sender=1, values={"loss": 0.5, "episodes": 3, "phase": "train"}),
        HeartbeatMsg(sender=LAUNCHER, time=1.7e9),
        StopMsg(sender=LAUNCHER, reason="ctrl-c"),
    ]


def assert_same(a: Message, b: Message) -> None:
    assert type(a) is type(b)
    for f in dataclasses.fields(a):
        x, y = getattr(a, f.name), getattr(b, f.name)
        if isinstance(x, dict) and x and isinstance(next(iter(x.values())), np.ndarray):
            assert x.keys() == y.keys()
            for k in x:
                assert_same_array(x[k], y[k])
        elif isinstance(x, np.ndarray):
            assert_same_array(x, y)
        else:
            assert x == y and type(x) is type(y), f.name


def assert_same_array(x: np.ndarray, y: np.ndarray) -> None:
    assert y.dtype.name == x.dtype.name and y.shape == x.shape
    np.testing.assert_array_equal(x, y)


def roundtrip(msg: Message) -> Message:
    out = decode(encode(msg))
    assert_same(msg, out)
    return out


# --- round trips ------------------------------------------------------------------------------

def test_every_kind_is_sampled() -> None:
    assert {type(m) for m in samples()} == set(MESSAGE_TYPES.values())


@pytest.mark.parametrize("msg", samples(), ids=lambda m: m.KIND)
def test_roundtrip_every_kind(msg: Message) -> None:
    out = roundtrip(msg)
    arrays = [v for v in vars(out).values() if isinstance(v, np.ndarray)]
    arrays += [v for d in vars(out).values() if isinstance(d, dict)
               for v in d.values() if isinstance(v, np.ndarray)]
    assert all(not a.flags.writeable and not a.flags.owndata for a in arrays)  # zero-copy views


def test_roundtrip_empty_arrays_and_optional_none() -> None:
    out = roundtrip(experience(t=0, latents=False))
    assert out.obs.shape == (0, 4) and out.latents is None
    roundtrip(ParamsMsg(sender=LEARNER, arrays={}))
    roundtrip(ParamsMsg(sender=LEARNER, arrays={"e": np.zeros((3, 0, 2), np.int16)}))


def test_roundtrip_large_array() -> None:
    big = RNG.random((1024, 1024), dtype=np.float32)  # 4 MiB
    msg = ParamsMsg(sender=LEARNER, arrays={"w": big})
    frames = encode(msg)
    assert payload_size(msg) == big.nbytes and len(frames[1]) == big.nbytes
    roundtrip(msg)


def test_roundtrip_every_allowed_dtype() -> None:
    arrays = {name: (RNG.random((3, 2)) * 100).astype(name) for name in ALLOWED_DTYPES}
    roundtrip(ParamsMsg(sender=LEARNER, arrays=arrays))


def test_roundtrip_non_contiguous_and_big_endian() -> None:
    base = RNG.random((6, 8), dtype=np.float32)
    obs = base[::2, ::3]  # non-contiguous (3, 3)
    assert not obs.flags.c_contiguous
    msg = ExperienceMsg(sender=0, obs=obs, actions=np.arange(3).astype(">i4"),
                        rewards=np.ones(3, ">f8"), terms=np.zeros(3, bool),
                        avail=np.ones((3, 1), np.uint8), n_actions=3)
    out = decode(encode(msg))
    np.testing.assert_array_equal(out.obs, obs)
    assert out.actions.dtype == np.dtype("<i4") and out.rewards.dtype == np.dtype("<f8")
    np.testing.assert_array_equal(out.actions, [0, 1, 2])
    np.testing.assert_array_equal(out.rewards, [1.0, 1.0, 1.0])
    t = roundtrip(ParamsMsg(sender=LEARNER, arrays={"t": base.T}))  # Fortran-ordered
    np.testing.assert_array_equal(t.arrays["t"], base.T)


def test_decode_accepts_writable_buffers_but_returns_read_only() -> None:
    frames = [bytearray(f) for f in encode(samples()[2])]
    out = decode(frames)
    assert not out.obs.flags.writeable
    assert decode([memoryview(f) for f in frames]).episode == 2


def test_numpy_scalars_and_ints_become_plain_metadata() -> None:
    msg = StepMsg(sender=ENV_HOST, obs=np.zeros(2, np.float32), avail=np.ones(2, bool),
                  reward=np.float32(1), terminated=np.bool_(True), truncated=False,
                  episode=np.int64(5))
    assert type(msg.reward) is float and type(msg.terminated) is bool and type(msg.episode) is int
    assert type(StepMsg(**{**vars(msg), "reward": 1}).reward) is float
    assert MetricsMsg(sender=0, values={"x": np.float32(0.5)}).values == {"x": 0.5}


def test_older_version_fills_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    @dataclasses.dataclass(frozen=True, kw_only=True, eq=False)
    class StopV2(StopMsg):
        VERSION: ClassVar[int] = 2
        code: int = 7  # a field added in version 2

    frames = encode(StopMsg(sender=LAUNCHER, reason="done"))  # a version-1 sender
    monkeypatch.setitem(MESSAGE_TYPES, "stop", StopV2)
    out = decode(frames)
    assert isinstance(out, StopV2) and out.code == 7 and out.reason == "done"


def test_sizes() -> None:
    assert wire_size([b"x" * 255, b"x" * 256, b""]) == 255 + 2 + 256 + 9 + 0 + 2
    msg = samples()[2]
    assert payload_size(msg) == 30 * 4 + 9
    assert wire_size(encode(msg)) == sum(len(f) for f in encode(msg)) + 2 + 2 + 2


# --- construction rejects bad fields ----------------------------------------------------------

@pytest.mark.parametrize("change, words", [
    ({"obs": [0.0, 1.0]}, "field 'obs' must be a numpy array"),
    ({"obs": np.zeros(2, np.int32)}, "expected float"),
    ({"obs": np.zeros((2, 1), np.float32)}, "expected (D,)"),
    ({"avail": np.array(["a", "b"])}, "not allowed"),
    ({"reward": "high"}, "field 'reward' must be float"),
    ({"terminated": 1}, "field 'terminated' must be bool"),
    ({"sender": -9}, "sender -9"),
    ({"seq": -1}, "must be >= 0"),
])
def test_construction_validates(change: dict[str, Any], words: str) -> None:
    good = {"sender": ENV_HOST, "obs": np.zeros(2, np.float32), "avail": np.ones(3, bool), "reward": 0.0,
                "terminated": False, "truncated": False, "episode": 0}
    with pytest.raises(MalformedMessage, match=re.escape(words)):
        StepMsg(**{**good, **change})


def test_named_dimensions_must_agree() -> None:
    with pytest.raises(MalformedMessage, match="dimension T is 5 in 'obs' but 4 in 'actions'"):
        ExperienceMsg(**{**vars(experience()), "actions": np.zeros(4, np.uint8)})


# --- decode rejects malformed input -----------------------------------------------------------

def header_of(frames: list[bytes]) -> dict[str, Any]:
    return msgpack.unpackb(frames[0], raw=False)


def with_header(frames: list[bytes], **changes: Any) -> list[bytes]:
    return [msgpack.packb({**header_of(frames), **changes}, use_bin_type=True)] + frames[1:]


def step_frames() -> list[bytes]:
    return encode(samples()[2])


def set_spec(frames: list[bytes], index: int, dtype: Any = None, shape: Any = None
             ) -> list[bytes]:
    specs = header_of(frames)["a"]
    specs[index] = [specs[index][0], dtype or specs[index][1], specs[index][2] if shape is None
                    else shape]
    return with_header(frames, a=specs)


def set_meta(frames: list[bytes], **changes: Any) -> list[bytes]:
    return with_header(frames, m={**header_of(frames)["m"], **changes})


def drop_meta(frames: list[bytes], name: str) -> list[bytes]:
    meta = header_of(frames)["m"]
    del meta[name]
    return with_header(frames, m=meta)


BAD_CASES: dict[str, tuple[Any, str]] = {
    "dtype O": (lambda f: set_spec(f, 0, "O"), "dtype 'O' not allowed"),
    "dtype <U4": (lambda f: set_spec(f, 0, "<U4"), "dtype '<U4' not allowed"),
    "dtype object": (lambda f: set_spec(f, 0, "object"), "dtype 'object' not allowed"),
    "dtype not str": (lambda f: set_spec(f, 0, 5), "dtype 5 not allowed"),
    "shape/length mismatch": (lambda f: set_spec(f, 0, shape=[31]),
                              "needs 124 bytes but its frame has 120"),
    "negative dim": (lambda f: set_spec(f, 0, shape=[-30]), "must hold ints >= 0"),
    "float dim": (lambda f: set_spec(f, 0, shape=[30.0]), "must hold ints >= 0"),
    "too many dims": (lambda f: set_spec(f, 0, shape=[1] * 9), "at most 8 dimensions"),
    "huge dims": (lambda f: set_spec(f, 0, shape=[2**62, 2**62]), "exceed the limit"),
    "too many arrays": (lambda f: with_header(f, a=[["obs", "uint8", [0]]] * 65) + [b""] * 65,
                        "65 arrays exceed the limit of 64"),
    "oversized header": (lambda f: set_meta(f, pad="x" * 70_000), "exceeds the limit of 65536"),
    "truncated frames": (lambda f: f[:-1], "header lists 2 arrays but 1 array frames follow"),
    "extra frames": (lambda f: f + [b"\0"], "header lists 2 arrays but 3 array frames follow"),
    "no frames": (lambda f: [], "non-empty list of frames"),
    "not a list": (lambda f: b"".join(f), "non-empty list of frames"),
    "frame not bytes": (lambda f: [f[0], 5, f[2]], "frame 1 is int, not bytes"),
    "frame is str": (lambda f: [f[0], "abc", f[2]], "frame 1 is str, not bytes"),
    "reward str": (lambda f: set_meta(f, reward="x"), "field 'reward' must be float, got str"),
    "episode float": (lambda f: set_meta(f, episode=1.5), "field 'episode' must be int"),
    "episode bool": (lambda f: set_meta(f, episode=True), "field 'episode' must be int"),
    "sender str": (lambda f: with_header(f, s="env"), "header 's' must be int, got str"),
    "meta list": (lambda f: with_header(f, m=[1]), "header 'm' must be dict"),
    "missing field": (lambda f: drop_meta(f, "reward"), "step is missing field(s) reward"),
    "missing array": (lambda f: with_header(f, a=header_of(f)["a"][:1])[:2],
                      "step is missing field(s) avail"),
    "extra field": (lambda f: set_meta(f, bogus=1), "step has no metadata field(s) 'bogus'"),
    "header field in m": (lambda f: set_meta(f, sender=1), "no metadata field(s) 'sender'"),
    "unknown array": (lambda f: with_header(f, a=[["pixels", "float32", [30]],
                                                  header_of(f)["a"][1]]),
                      "no array field 'pixels'"),
    "array for metadata": (lambda f: with_header(
        f, a=[["reward", "float32", [30]], header_of(f)["a"][1]]), "no array field 'reward'"),
    "duplicate array": (lambda f: with_header(f, a=[header_of(f)["a"][1]] * 2)[:1] + [f[2]] * 2,
                        "array field 'avail' appears twice"),
    "key on plain array": (lambda f: with_header(f, a=[["obs", "float32", [30], "k"],
                                                       header_of(f)["a"][1]]),
                           "a key is required exactly for dict-of-arrays"),
    "spec not list": (lambda f: with_header(f, a=["obs", header_of(f)["a"][1]]),
                      "array spec 0 must be"),
    "wrong dtype kind": (lambda f: set_spec(f, 0, "int32"), "dtype int32, expected float"),
    "unknown kind": (lambda f: with_header(f, k="x"), "unknown message kind 'x'"),
    "kind not str": (lambda f: with_header(f, k=3), "header 'k' must be str"),
    "future version": (lambda f: with_header(f, v=3),
                       "step version 3 is newer than supported version 2"),
    "version zero": (lambda f: with_header(f, v=0), "not a valid version"),
    "non-msgpack header": (lambda f: [b"\xc1\x00"] + f[1:], "header is not valid msgpack"),
    "trailing header bytes": (lambda f: [f[0] + b"\x00"] + f[1:], "header is not valid msgpack"),
    "header list": (lambda f: [msgpack.packb([1, 2])] + f[1:], "header must be a msgpack map"),
    "header int keys": (lambda f: [msgpack.packb({1: 2})] + f[1:], "header is not valid msgpack"),
    "header missing key": (lambda f: [msgpack.packb({"k": "step"})] + f[1:],
                           "header keys wrong: missing"),
    "header ext type": (lambda f: with_header(f, m=msgpack.ExtType(1, b"x")),
                        "header is not valid msgpack"),
}


@pytest.mark.parametrize("case", BAD_CASES, ids=list(BAD_CASES))
def test_decode_rejects(case: str) -> None:
    make, words = BAD_CASES[case]
    frames = make(step_frames())
    with pytest.raises(MalformedMessage) as err:
        decode(frames)
    assert words in str(err.value)


def test_decode_limits_are_overridable() -> None:
    frames = encode(ParamsMsg(sender=LEARNER, arrays={"w": np.zeros(100, np.float32)}))
    with pytest.raises(MalformedMessage, match="exceed the limit of 100 bytes"):
        decode(frames, Limits(max_array_bytes=100))
    with pytest.raises(MalformedMessage, match="exceeds the limit of 10"):
        decode(frames, Limits(max_header_bytes=10))
    with pytest.raises(MalformedMessage, match="1 arrays exceed the limit of 0"):
        decode(frames, Limits(max_arrays=0))
    assert decode(frames, Limits(max_array_bytes=400)).arrays["w"].shape == (100,)


def test_decode_rejects_dimension_mismatch() -> None:
    frames = encode(experience(t=5))
    specs = header_of(frames)["a"]
    specs[1][2] = [4]  # actions (T,) with T = 4 while obs has T = 5
    frames = with_header(frames, a=specs)
    frames[2] = frames[2][:4]
    with pytest.raises(MalformedMessage, match="dimension T is 5 in 'obs' but 4 in 'actions'"):
        decode(frames)


# --- fuzz -------------------------------------------------------------------------------------

VALID_FRAMES = [encode(m) for m in samples()]
plain = st.recursive(
    st.none() | st.booleans() | st.integers(-2**63, 2**64 - 1) | st.floats() | st.text(max_size=4)
    | st.binary(max_size=4),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner,
                                                                max_size=3),
    max_leaves=4)
dtype_names = st.sampled_from([*ALLOWED_DTYPES, "O", "<U4", "V8", "complex64", ">f4", "S3", ""])
shapes = st.lists(st.integers(-3, 2**40), max_size=10) | plain
spec_list = st.lists(st.tuples(st.sampled_from(["obs", "avail", "arrays", "reward", "x"]),
                               dtype_names, shapes, st.sampled_from([None, "k"]))
                     .map(lambda t: list(t[:3]) if t[3] is None else list(t)), max_size=6)


@st.composite
def mutated(draw: st.DrawFn) -> list[Any]:
    """A valid frame list with one or more corruptions."""
    frames = list(draw(st.sampled_from(VALID_FRAMES)))
    header = msgpack.unpackb(frames[0], raw=False)
    for _ in range(draw(st.integers(1, 3))):
        op = draw(st.integers(0, 7))
        if op == 0 and frames:  # truncate or pad a frame
            i = draw(st.integers(0, len(frames) - 1))
            frames[i] = frames[i][:draw(st.integers(0, len(frames[i])))] + draw(st.binary(
                max_size=4))
        elif op == 1 and frames:  # flip a byte
            i = draw(st.integers(0, len(frames) - 1))
            if frames[i]:
                j = draw(st.integers(0, len(frames[i]) - 1))
                frames[i] = frames[i][:j] + bytes([frames[i][j] ^ draw(st.integers(1, 255))]) \
                    + frames[i][j + 1:]
        elif op == 2:  # drop, duplicate or add frames
            frames = draw(st.sampled_from([frames[:-1], frames + frames[-1:],
                                           frames + [draw(st.binary(max_size=64))]]))
        elif op == 3:  # replace a header value
            header[draw(st.sampled_from("kvsqtma"))] = draw(plain)
            frames = [msgpack.packb(header, use_bin_type=True)] + frames[1:]
        elif op == 4:  # replace the array specs
            header["a"] = draw(spec_list)
            frames = [msgpack.packb(header, use_bin_type=True)] + frames[1:]
        elif op == 5:  # replace a metadata value, or add one
            meta = header["m"] if isinstance(header.get("m"), dict) else {}
            meta[draw(st.sampled_from([*meta, "bogus"]))] = draw(plain)
            header["m"] = meta
            frames = [msgpack.packb(header, use_bin_type=True)] + frames[1:]
        elif op == 6:  # one array spec's dtype or shape changed, frame count kept
            if header.get("a") and isinstance(header["a"], list):
                spec = header["a"][draw(st.integers(0, len(header["a"]) - 1))]
                if isinstance(spec, list) and len(spec) >= 3:
                    spec[draw(st.integers(1, 2))] = draw(dtype_names | shapes)
                frames = [msgpack.packb(header, use_bin_type=True)] + frames[1:]
        else:  # oversized frame
            frames.append(b"\0" * draw(st.sampled_from([0, 70_000])))
    return frames


garbage = st.lists(st.binary(max_size=300), max_size=6) | st.lists(
    plain.map(lambda v: msgpack.packb(v, use_bin_type=True)), min_size=1, max_size=3) | st.lists(
    plain, max_size=3)
fuzz_frames = st.integers(0, 9).flatmap(lambda r: mutated() if r < 7 else garbage)  # 70% mutated


@settings(max_examples=10_000, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(fuzz_frames)
def test_fuzz_decode_only_raises_malformed(frames: list[Any]) -> None:
    try:
        msg = decode(frames)
    except MalformedMessage:
        return
    assert isinstance(msg, Message)
    assert encode(decode(encode(msg))) == encode(msg)  # a valid, re-encodable message (NaN-safe)


# --- compact helpers --------------------------------------------------------------------------

@given(st.integers(1, 40), st.integers(0, 6), st.integers(0, 2**32 - 1))
def test_bits_roundtrip(n: int, t: int, seed: int) -> None:
    mask = np.random.default_rng(seed).random((t, n)) < 0.5
    packed = compact.pack_bits(mask)
    assert packed.dtype == np.uint8 and packed.shape == (t, (n + 7) // 8)
    np.testing.assert_array_equal(compact.unpack_bits(packed, n), mask)


@pytest.mark.parametrize("n, dtype", [(1, np.uint8), (7, np.uint8), (256, np.uint8),
                                      (257, np.uint16), (65536, np.uint16), (65537, np.uint32)])
def test_action_dtype(n: int, dtype: type) -> None:
    assert compact.action_dtype(n) == dtype
    assert compact.pack_actions(np.array([0, n - 1]), n).dtype == dtype


def test_pack_actions_rejects_out_of_range() -> None:
    with pytest.raises(ValueError, match=r"\[0, 7\)"):
        compact.pack_actions(np.array([7]), 7)


@pytest.mark.parametrize("k", [2, 32, 256])
def test_latent_indices_roundtrip(k: int) -> None:
    idx = RNG.integers(0, k, (5, 3, 32))
    onehot = compact.indices_to_latents(idx, k)
    assert onehot.shape == (5, 3, 32, k) and onehot.dtype == np.float32
    back = compact.latents_to_indices(onehot)
    assert back.dtype == np.uint8
    np.testing.assert_array_equal(back, idx)


def test_latents_over_256_classes_rejected() -> None:
    with pytest.raises(ValueError, match="K <= 256"):
        compact.latents_to_indices(np.zeros((2, 257)))


def test_float16_within_tolerance_and_clipped() -> None:
    x = RNG.standard_normal(1000).astype(np.float32) * 100
    y = compact.to_wire_float(x, float16=True)
    assert y.dtype == np.float16
    np.testing.assert_allclose(y.astype(np.float32), x, rtol=1e-3, atol=1e-4)
    assert compact.to_wire_float(x, float16=False).dtype == np.float32
    assert np.isfinite(compact.to_wire_float(np.array([1e6, -1e6]), True)).all()


@pytest.mark.parametrize("float16", [False, True])
def test_experience_compact_roundtrip_through_codec(float16: bool) -> None:
    chunk = compact.random_experience(17, 7, 20, (32, 32), seed=3)
    wire = compact.compact_experience(**chunk, float16=float16)
    msg = decode(encode(ExperienceMsg(sender=0, n_actions=7, **wire)))
    fields = {k: getattr(msg, k) for k in ("obs", "actions", "rewards", "terms", "avail",
                                           "latents")}
    back = compact.expand_experience(fields, n_actions=7, n_classes=32)
    for key in ("actions", "rewards", "terms", "avail", "latents"):
        np.testing.assert_array_equal(back[key], chunk[key])
    np.testing.assert_allclose(back["obs"], chunk["obs"], rtol=1e-3 if float16 else 0,
                               atol=1e-3 if float16 else 0)


def test_naive_experience_shapes() -> None:
    chunk = compact.random_experience(16, 7, 20, (32, 32))
    naive = compact.naive_experience(**chunk)
    assert all(v.dtype == np.float32 for v in naive.values())
    assert naive["actions"].shape == (20, 7) and naive["latents"].shape == (20, 32, 32)


@pytest.mark.parametrize("obs_dim, n_actions", [(17, 7), (16, 7), (30, 9), (80, 11)])
def test_compact_is_5x_smaller_with_latents(obs_dim: int, n_actions: int) -> None:
    sizes = compact.experience_bytes(obs_dim, n_actions, t=20, latent=(32, 32), float16=True)
    assert sizes["naive"] >= 5 * sizes["compact"]


# --- fast paths behave like the general ones --------------------------------------------------

@pytest.mark.parametrize("msg", samples(), ids=lambda m: m.KIND)
def test_decoded_message_is_built_like_the_constructor_builds_it(msg: Message) -> None:
    """decode fills the instance without calling __init__: same fields, same order, same types."""
    out = decode(encode(msg))
    built = type(msg)(**{f.name: getattr(out, f.name) for f in dataclasses.fields(out)})
    assert list(vars(out)) == list(vars(built)) == [f.name for f in dataclasses.fields(out)]
    for name in vars(out):
        assert type(vars(out)[name]) is type(vars(built)[name]), name


def test_decoded_default_factories_are_fresh_per_message() -> None:
    frames = encode(RegisterMsg(sender=0, agent_id=0, endpoint="tcp://a:1"))
    header = msgpack.unpackb(frames[0], raw=False)
    del header["m"]["host"]  # an older sender that did not know the field
    frames = [msgpack.packb(header, use_bin_type=True)]
    a, b = decode(frames), decode(frames)
    assert a.host == {} and b.host == {} and a.host is not b.host


def test_decoded_int_for_a_float_field_becomes_a_float() -> None:
    frames = encode(HeartbeatMsg(sender=0, time=5.0))
    header = msgpack.unpackb(frames[0], raw=False)
    header["m"]["time"] = 5
    out = decode([msgpack.packb(header, use_bin_type=True)])
    assert type(out.time) is float and out.time == 5.0


@pytest.mark.parametrize("arrays, words", [
    ({"w": np.zeros(2, object)}, "field 'arrays['w']' has dtype '|O'"),
    ({"w": [1, 2]}, "field 'arrays['w']' must be a numpy array"),
    ({"w": np.zeros(2, np.complex64)}, "not allowed"),
    ({"w": np.zeros(2, [("a", "f4")])}, "not allowed"),
])
def test_dict_of_arrays_errors_still_name_the_entry(arrays: dict[str, Any], words: str) -> None:
    with pytest.raises(MalformedMessage, match=re.escape(words)):
        ParamsMsg(sender=LEARNER, arrays=arrays)


def test_big_endian_and_every_allowed_dtype_pass_validation_in_either_byte_order() -> None:
    for name in ALLOWED_DTYPES:
        for order in "<>":
            arr = np.zeros(3, np.dtype(name).newbyteorder(order))
            out = decode(encode(ParamsMsg(sender=LEARNER, arrays={"a": arr})))
            assert out.arrays["a"].dtype == np.dtype(name).newbyteorder("<")


def test_encode_snapshots_the_arrays() -> None:
    """The frames are a copy taken at encode: changing the array later (parameters trained in
    place while the message waits in a queue) does not change what is sent."""
    w = np.arange(100_000, dtype=np.float32)  # over pyzmq's zero-copy threshold
    frames = encode(ParamsMsg(sender=LEARNER, arrays={"w": w}))
    w += 1
    np.testing.assert_array_equal(decode(frames).arrays["w"], np.arange(100_000, dtype=np.float32))
