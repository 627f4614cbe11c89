"""Replay buffers: round trips, the sequence-boundary policy, eviction, dtypes, atomic files,
mixed own/shared batches and imagined rollouts through `Trajectory`.

Transitions are tagged through their observation: obs[0] = global step counter, obs[1] = the
segment (episode or chunk) the test put it in, so every sampled value can be traced back.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from dwm_net.learning.replay import (
    FLOAT16_MAX_ABS_ERROR,
    EpisodeReplay,
    ImaginationBuffer,
    WindowPriority,
    sample_mixed,
)
from dwm_net.learning.rollouts import from_trajectory, to_trajectory
from dwm_net.learning.types import SeqBatch, Trajectory

D, A = 4, 11


def _obs(step: int, segment: int) -> np.ndarray:
    return np.array([step, segment, step % 7, -1.0], np.float32)


def _avail(step: int) -> np.ndarray:
    return (np.arange(A) + step) % 3 != 0


def _fill_own(buf: EpisodeReplay, episode_lengths: list[int], step: int = 0,
              segment: int = 0) -> tuple[int, int]:
    """Add own episodes; returns the next (step, segment)."""
    for length in episode_lengths:
        for t in range(length):
            buf.add(_obs(step, segment), step % A, float(step), t == length - 1, _avail(step), t == 0)
            step += 1
        segment += 1
    return step, segment


def _chunk(step: int, segment: int, length: int) -> dict[str, np.ndarray]:
    steps = np.arange(step, step + length)
    return {"obs": np.stack([_obs(s, segment) for s in steps]), "action": steps % A,
            "reward": steps.astype(np.float32), "term": np.zeros(length, bool),
            "avail": np.stack([_avail(s) for s in steps]), "first": np.zeros(length, bool)}


def test_sample_returns_exact_stored_transitions_with_seqbatch_shapes():
    buf = EpisodeReplay(1000, D, A)
    _fill_own(buf, [30, 25, 40])
    d = buf.sample(8, 10, np.random.default_rng(0))
    batch = SeqBatch(**d)
    assert batch.obs.shape == (8, 10, D) and batch.obs.dtype == np.float32
    assert batch.action.dtype == np.int64 and batch.reward.dtype == np.float32
    assert batch.term.dtype == np.float32 and batch.avail.dtype == bool and batch.first.dtype == bool
    assert batch.avail.shape == (8, 10, A) and batch.own.shape == (8,) and batch.own.all()
    step = batch.obs[..., 0].astype(int)
    np.testing.assert_array_equal(batch.action, step % A)
    np.testing.assert_array_equal(batch.reward, step)
    np.testing.assert_array_equal(batch.avail, (np.arange(A) + step[..., None]) % 3 != 0)
    np.testing.assert_array_equal(batch.first, np.isin(step, [0, 30, 55]))
    np.testing.assert_array_equal(batch.term, np.isin(step, [29, 54, 94]))


def test_sequences_reset_at_every_episode_and_chunk_boundary():
    """Policy: windows may cross boundaries, but `first` is True exactly where the segment
    changes (or an episode starts), and steps inside a window are consecutive stored steps."""
    buf = EpisodeReplay(10_000, D, A)
    rng = np.random.default_rng(1)
    step, segment = 0, 0
    for _ in range(30):
        step, segment = _fill_own(buf, list(rng.integers(3, 30, size=2)), step, segment)
        chunk = _chunk(step, segment, int(rng.integers(2, 25)))
        buf.add_chunk(**chunk)
        step, segment = step + len(chunk["first"]), segment + 1
        # An own episode that goes on after the chunk (first=False) must still reset.
        buf.add(_obs(step, segment), 0, 0.0, False, _avail(step), False)
        step, segment = step + 1, segment + 1
    batch = buf.sample(512, 20, rng)
    steps, segments = batch["obs"][..., 0], batch["obs"][..., 1]
    assert np.all(np.diff(steps, axis=1) == 1)
    changed = segments[:, 1:] != segments[:, :-1]
    np.testing.assert_array_equal(batch["first"][:, 1:], changed)
    assert changed.any(), "the test should exercise boundaries"


def test_short_episodes_are_sampled_and_buffer_too_small_raises():
    buf = EpisodeReplay(100, D, A)
    _fill_own(buf, [3, 3, 3])
    assert buf.sample(4, 9, np.random.default_rng(0))["obs"].shape == (4, 9, D)
    with pytest.raises(ValueError, match="cannot sample sequences of 10 steps from 9"):
        buf.sample(4, 10, np.random.default_rng(0))


def test_eviction_keeps_newest_and_windows_never_wrap_newest_to_oldest():
    buf = EpisodeReplay(50, D, A)
    _fill_own(buf, [40, 40, 57])
    assert len(buf) == 50
    np.testing.assert_array_equal(buf.state_dict()["obs"][:, 0], np.arange(87, 137))
    batch = buf.sample(2000, 50, np.random.default_rng(0))
    np.testing.assert_array_equal(batch["obs"][..., 0], np.broadcast_to(np.arange(87, 137), (2000, 50)))
    chunky = EpisodeReplay(10, D, A)
    for k in range(4):
        chunky.add_chunk(**_chunk(4 * k, k, 4))
    np.testing.assert_array_equal(chunky.state_dict()["obs"][:, 0], np.arange(6, 16))


def test_float16_obs_error_bound_and_float32_exact():
    obs = np.random.default_rng(0).uniform(-1, 1, size=(500, 80)).astype(np.float32)
    for dtype, bound in ((np.float16, FLOAT16_MAX_ABS_ERROR), (np.float32, 0.0)):
        buf = EpisodeReplay(500, 80, 5, obs_dtype=dtype)
        for o in obs:
            buf.add(o, 0, 0.0, False, np.ones(5, bool), False)
        err = np.abs(buf.sample(1, 500, np.random.default_rng(0))["obs"][0] - obs).max()
        assert err <= bound
    assert FLOAT16_MAX_ABS_ERROR == 2.0**-12
    with pytest.raises(ValueError, match="obs_dtype"):
        EpisodeReplay(10, 2, 2, obs_dtype=np.float64)


@pytest.mark.parametrize("n_actions", [1, 8, 11, 17, 300])
def test_avail_bits_and_actions_exact(n_actions):
    rng = np.random.default_rng(n_actions)
    avail = rng.random((64, n_actions)) < 0.5
    action = rng.integers(0, n_actions, 64)
    buf = EpisodeReplay(64, 2, n_actions)
    buf.add_chunk(np.zeros((64, 2)), action, np.zeros(64), np.zeros(64, bool), avail, np.zeros(64, bool))
    out = buf.sample(1, 64, rng)
    np.testing.assert_array_equal(out["avail"][0], avail)
    np.testing.assert_array_equal(out["action"][0], action)
    with pytest.raises(ValueError, match="actions must be in"):
        buf.add(np.zeros(2), n_actions, 0.0, False, avail[0], False)


def test_state_dict_save_load_round_trip_and_continue(tmp_path: Path):
    buf = EpisodeReplay(40, D, A)
    step, segment = _fill_own(buf, [20, 15, 17])
    buf.add_chunk(**_chunk(step, segment, 6))
    path = tmp_path / "replay.npz"
    buf.save(path)
    assert not (tmp_path / "replay.npz.tmp").exists()
    loaded = EpisodeReplay(40, D, A)
    loaded.load(path)
    assert len(loaded) == len(buf) == 40
    a, b = (x.sample(16, 12, np.random.default_rng(3)) for x in (buf, loaded))
    for key in a:
        np.testing.assert_array_equal(a[key], b[key])
    # Counters survive: the next own step after the chunk still resets, with a fresh episode id.
    for x in (buf, loaded):
        x.add(_obs(99, 99), 1, 0.0, False, _avail(0), False)
    for key, value in buf.state_dict().items():
        np.testing.assert_array_equal(value, loaded.state_dict()[key])
    # Episode ids 0-2 are the own episodes, 3 the chunk.
    assert loaded.state_dict()["first"][-1] and loaded.state_dict()["episode"][-1] == 4


def test_save_is_atomic_and_leftover_tmp_is_ignored(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    buf = EpisodeReplay(30, D, A)
    _fill_own(buf, [30])
    path = tmp_path / "replay.npz"
    buf.save(path)
    good = path.read_bytes()
    (tmp_path / "replay.npz.tmp").write_bytes(b"half-written garbage")
    fresh = EpisodeReplay(30, D, A)
    fresh.load(path)
    assert len(fresh) == 30

    def crash(*args: object, **kwargs: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez", crash)
    with pytest.raises(OSError, match="disk full"):
        buf.save(path)
    assert path.read_bytes() == good and not (tmp_path / "replay.npz.tmp").exists()


@pytest.mark.parametrize("damage", ["garbage", "truncated", "obs_dim", "missing", "dtype", "format"])
def test_corrupt_or_mismatched_file_raises_one_line_value_error(tmp_path: Path, damage: str):
    buf = EpisodeReplay(30, D, A)
    _fill_own(buf, [12])
    path = tmp_path / "replay.npz"
    buf.save(path)
    state = {k: np.asarray(v) for k, v in buf.state_dict().items()}
    if damage == "garbage":
        path.write_bytes(b"\x00not a zip file" * 10)
    elif damage == "truncated":
        path.write_bytes(path.read_bytes()[:200])
    else:
        if damage == "obs_dim":
            state["obs_dim"] = np.asarray(D + 1)
        elif damage == "missing":
            del state["reward"]
        elif damage == "dtype":
            state["obs"] = state["obs"].astype(np.float16)
        else:
            state["format"] = np.asarray(99)
        with path.open("wb") as fh:
            np.savez(fh, **state)
    with pytest.raises(ValueError) as info:
        EpisodeReplay(30, D, A).load(path)
    message = str(info.value)
    assert "\n" not in message and str(path) in message
    expected = {"obs_dim": "obs_dim=5", "missing": "missing reward", "dtype": "'obs'", "format": "format 99"}
    assert expected.get(damage, "corrupt") in message


def test_sample_mixed_sets_own_flags():
    own, shared = EpisodeReplay(500, D, A), EpisodeReplay(500, D, A)
    _fill_own(own, [50, 50], segment=0)
    rng = np.random.default_rng(0)
    batch = sample_mixed(own, shared, 10, 8, rng, shared_fraction=0.25)  # shared too small yet
    assert isinstance(batch, SeqBatch) and batch.own.all() and batch.obs.shape == (10, 8, D)
    for k in range(10):
        shared.add_chunk(**_chunk(1000 + 8 * k, 1000 + k, 8))
    batch = sample_mixed(own, shared, 10, 8, rng, shared_fraction=0.25)
    from_shared = batch.obs[:, 0, 1] >= 1000
    np.testing.assert_array_equal(batch.own, ~from_shared)
    assert from_shared.sum() == 2 and not batch.own[-2:].any()  # round(2.5) == 2
    assert not sample_mixed(own, shared, 4, 8, rng, shared_fraction=1.0).own.any()
    with pytest.raises(ValueError, match="shared_fraction"):
        sample_mixed(own, shared, 4, 8, rng, shared_fraction=1.5)


def _sparse_reward_buffer(capacity: int = 300) -> EpisodeReplay:
    """Episodes of 50 steps with reward 0 except one step (global step 137) worth 5.0; the
    buffer has wrapped once, so logical and physical positions differ."""
    buf = EpisodeReplay(capacity, D, A)
    for step in range(capacity + 120):
        t = step % 50
        buf.add(_obs(step, step // 50), step % A, 5.0 if step == 137 else 0.0, t == 49, _avail(step), t == 0)
    return buf


def test_reward_priority_draws_windows_around_large_rewards():
    buf = _sparse_reward_buffer()
    n, seq = 400, 10
    # Off: exactly the uniform draws as before the option existed (same RNG stream): one
    # `integers` call for the B start positions, counted from the oldest stored transition.
    plain = buf.sample(n, seq, np.random.default_rng(3), priority=WindowPriority(0.0))
    starts = np.random.default_rng(3).integers(0, len(buf) - seq + 1, size=n)
    oldest = (buf._next - len(buf)) % buf.capacity
    expected = buf.obs[(oldest + starts[:, None] + np.arange(seq)) % buf.capacity]
    np.testing.assert_array_equal(plain["obs"], expected)

    def hits(b: dict[str, np.ndarray]) -> np.ndarray:  # (B,) windows holding the rewarded step
        return (b["obs"][..., 0] == 137).any(1)

    assert hits(plain).mean() < 0.1  # 10 of 291 start positions
    # All prioritised: every window holds the rewarded step, at every position in the window.
    full = buf.sample(n, seq, np.random.default_rng(4), priority=WindowPriority(1.0))
    assert hits(full).all()
    positions = np.argmax(full["obs"][..., 0] == 137, axis=1)
    assert set(positions.tolist()) == set(range(seq))
    assert (np.diff(full["obs"][..., 0], axis=1) == 1).all()  # still consecutive, no wrap
    # Half: the last round(B * 0.5) windows are prioritised, the first ones uniform.
    half = buf.sample(n, seq, np.random.default_rng(5), priority=WindowPriority(0.5))
    assert hits(half)[n // 2:].all() and hits(half)[: n // 2].mean() < 0.1
    # No reward stored at all: uniform windows, no error.
    empty = EpisodeReplay(100, D, A)
    _fill_own(empty, [50, 50])
    empty.reward[:] = 0.0
    assert empty.sample(8, seq, np.random.default_rng(0), priority=WindowPriority(1.0))["obs"].shape == (8, seq, D)
    with pytest.raises(ValueError, match="reward_priority"):
        buf.sample(4, seq, np.random.default_rng(0), priority=WindowPriority(1.5))


def test_reward_priority_follows_writes_and_evictions():
    buf = _sparse_reward_buffer()  # holds steps 120..419; the rewarded step 137
    seq = 10

    def rewarded(b: dict[str, np.ndarray], step: int) -> np.ndarray:
        return (b["obs"][..., 0] == step).any(1)

    assert rewarded(buf.sample(50, seq, np.random.default_rng(0), priority=WindowPriority(1.0)), 137).all()
    buf.add(_obs(420, 8), 0, 50.0, False, _avail(420), False)  # evicts step 120; weighs 100x 137
    after = buf.sample(400, seq, np.random.default_rng(1), priority=WindowPriority(1.0))
    assert 0.97 < rewarded(after, 420).mean() < 1.0 and rewarded(after, 137).any()
    for step in range(421, 421 + 300):  # the rewarded steps leave: uniform windows again
        buf.add(_obs(step, 9), 0, 0.0, False, _avail(step), False)
    gone = buf.sample(50, seq, np.random.default_rng(2), priority=WindowPriority(1.0))
    assert not rewarded(gone, 420).any() and not rewarded(gone, 137).any()


def test_priority_lead_puts_windows_up_to_lead_steps_before_the_reward():
    buf = EpisodeReplay(300, D, A)
    for step in range(300):  # one rewarded step, far from both ends of the buffer
        buf.add(_obs(step, 0), 0, 5.0 if step == 150 else 0.0, False, _avail(step), step == 0)
    n, seq, lead = 600, 10, 15
    b = buf.sample(n, seq, np.random.default_rng(6), priority=WindowPriority(1.0, lead=lead))
    gap = 150 - b["obs"][:, -1, 0]  # steps from each window's end to the reward (< 0: it holds it)
    assert gap.min() == -(seq - 1) and gap.max() == lead  # every placement happens, none beyond
    assert ((gap > 0).mean() - lead / (seq + lead)) ** 2 < 0.05**2  # uniform over the positions
    with pytest.raises(ValueError, match="priority_lead"):
        buf.sample(4, seq, np.random.default_rng(0), priority=WindowPriority(1.0, lead=-1))


def test_priority_power_weighs_draws_by_reward_to_that_power():
    buf = EpisodeReplay(400, D, A)
    for step in range(400):  # two rewarded steps far apart: 1.0 at 100, 2.0 at 300
        reward = {100: 1.0, 300: -2.0}.get(step, 0.0)  # |r|: a penalty counts as much as a reward
        buf.add(_obs(step, 0), 0, reward, False, _avail(step), step == 0)
    n, seq = 4000, 10

    def share_300(power: float) -> float:  # fraction of windows around step 300
        b = buf.sample(n, seq, np.random.default_rng(7), priority=WindowPriority(1.0, power=power))
        return float((b["obs"][..., 0] == 300).any(1).mean())

    for power, want in ((2.0, 4 / 5), (4.0, 16 / 17), (1.0, 2 / 3)):  # 2^p / (1 + 2^p)
        assert abs(share_300(power) - want) < 0.03, power
    # The default is the square, and the cached weights follow a change of power between draws.
    default = buf.sample(n, seq, np.random.default_rng(7), priority=WindowPriority(1.0))
    assert abs(float((default["obs"][..., 0] == 300).any(1).mean()) - 0.8) < 0.03
    with pytest.raises(ValueError, match="priority_power"):
        buf.sample(4, seq, np.random.default_rng(0), priority=WindowPriority(1.0, power=0.0))


def test_returns_to_go_of_terminated_episodes_only():
    """`ret` is the discounted return to the termination of its own segment, NaN where the
    segment has not ended in one (time limit, open episode, chunk cut mid-episode)."""
    g = 0.5
    buf = EpisodeReplay(30, D, A, gamma=g)
    for t in range(4):  # terminated: rewards 1, 2, 3, 4
        buf.add(_obs(t, 0), 0, float(t + 1), t == 3, _avail(t), t == 0)
    for t in range(3):  # cut by the time limit: never terminates
        buf.add(_obs(4 + t, 1), 0, 1.0, False, _avail(t), t == 0)
    chunk = _chunk(7, 2, 5)
    chunk["term"][2] = True  # a peer's chunk: an episode ends inside it, the next one is cut
    chunk["first"][3] = True
    buf.add_chunk(**chunk)
    for t in range(2):  # an open own episode
        buf.add(_obs(12 + t, 3), 0, 1.0, False, _avail(t), t == 0)
    state = buf.state_dict()
    want = [4 * g**3 + 3 * g**2 + 2 * g + 1, 4 * g**2 + 3 * g + 2, 4 * g + 3, 4.0]
    np.testing.assert_allclose(state["ret"][:4], want)
    assert np.isnan(state["ret"][4:7]).all()
    r = chunk["reward"]
    np.testing.assert_allclose(state["ret"][7:10], [r[0] + g * r[1] + g * g * r[2], r[1] + g * r[2], r[2]])
    assert np.isnan(state["ret"][10:]).all()
    assert np.isnan(EpisodeReplay(30, D, A).state_dict()["ret"]).all()  # no gamma: never known
    # Sampled alongside the transitions; an episode that ends after eviction began is still
    # filled for what is stored.
    batch = buf.sample(8, 3, np.random.default_rng(0))
    assert batch["ret"].shape == (8, 3) and batch["ret"].dtype == np.float32
    small = EpisodeReplay(5, D, A, gamma=g)
    for t in range(8):
        small.add(_obs(t, 0), 0, 1.0, t == 7, _avail(t), t == 0)
    np.testing.assert_allclose(small.state_dict()["ret"], [sum(g**k for k in range(n)) for n in (5, 4, 3, 2, 1)])


def test_format_1_replay_loads_and_gets_its_returns(tmp_path: Path):
    buf = EpisodeReplay(40, D, A, gamma=0.5)
    _fill_own(buf, [6, 5])
    state = buf.state_dict()
    old = {k: v for k, v in state.items() if k != "ret"}
    old["format"] = 1
    path = tmp_path / "old.npz"
    np.savez(path, **{k: np.asarray(v) for k, v in old.items()})
    loaded = EpisodeReplay(40, D, A, gamma=0.5)
    loaded.load(path)
    np.testing.assert_allclose(loaded.state_dict()["ret"], state["ret"])
    blind = EpisodeReplay(40, D, A)
    blind.load(path)
    assert np.isnan(blind.state_dict()["ret"]).all()


def test_sample_mixed_prioritises_own_windows_only():
    own, shared = _sparse_reward_buffer(), EpisodeReplay(500, D, A)
    for k in range(10):
        shared.add_chunk(**_chunk(1000 + 8 * k, 1000 + k, 8))
    batch = sample_mixed(own, shared, 20, 8, np.random.default_rng(0), shared_fraction=0.5,
                         priority=WindowPriority(1.0))
    assert (batch.obs[:10, :, 0] == 137).any(1).all()  # own rows: all around the reward
    assert (batch.obs[10:, 0, 1] >= 1000).all()  # shared rows: drawn as before


def _random_trajectory(h: int, b: int, r: int, c: int, k: int, a: int, seed: int) -> Trajectory:
    g = torch.Generator().manual_seed(seed)
    avail = torch.rand(h, b, a, generator=g) < 0.7
    avail[..., 0] = True
    return Trajectory(
        deter=torch.randn(h + 1, b, r, generator=g),
        stoch=torch.nn.functional.one_hot(torch.randint(0, k, (h + 1, b, c), generator=g), k).float(),
        action=torch.randint(0, a, (h, b), generator=g),
        logits=torch.randn(h, b, a, generator=g).masked_fill(~avail, -1e10),
        avail=avail,
        reward=torch.randn(h, b, generator=g),
        discount=torch.rand(h, b, generator=g),
    )


def test_imagination_buffer_round_trip_through_trajectory():
    h, b, r, c, k, a = 4, 6, 5, 3, 7, 11
    traj = _random_trajectory(h, b, r, c, k, a, seed=0)
    rollouts = from_trajectory(traj)
    assert len(rollouts) == b and rollouts[0]["deter"].shape == (h + 1, r)
    assert rollouts[0]["stoch"].shape == (h + 1, c) and rollouts[0]["stoch"].dtype == np.uint8
    buf = ImaginationBuffer(16, h, r, c, k, a)
    for rollout in rollouts:
        buf.add(rollout)
    sample = buf.sample(40, np.random.default_rng(0))
    assert sample["deter"].shape == (h + 1, 40, r) and sample["logits"].shape == (h, 40, a)
    out = to_trajectory(sample, n_classes=k)
    # Identify each sampled rollout by its first deterministic state.
    source = [int(torch.nonzero((traj.deter[0] == out.deter[0, i]).all(-1))[0]) for i in range(40)]
    back = Trajectory(**{name: getattr(traj, name)[:, source] for name in
                         ("deter", "stoch", "action", "logits", "avail", "reward", "discount")})
    for name in ("deter", "stoch", "action", "logits", "avail", "reward", "discount"):
        got, want = getattr(out, name), getattr(back, name)
        assert got.dtype == want.dtype and got.shape == want.shape, name
        assert torch.equal(got, want), name
    assert torch.equal(out.feat(), back.feat())


def test_imagination_buffer_fifo_eviction_and_validation():
    h, r, c, k, a = 3, 2, 2, 4, 5
    buf = ImaginationBuffer(3, h, r, c, k, a)
    for rollout in from_trajectory(_random_trajectory(h, 5, r, c, k, a, seed=1)):
        buf.add(rollout)
    assert len(buf) == 3
    firsts = {tuple(x) for x in buf.sample(300, np.random.default_rng(0))["deter"][0]}
    expected = {tuple(x) for x in _random_trajectory(h, 5, r, c, k, a, seed=1).deter[0, 2:].numpy()}
    assert firsts == expected
    bad = from_trajectory(_random_trajectory(h + 1, 1, r, c, k, a, seed=2))[0]
    with pytest.raises(ValueError, match="rollout deter has shape"):
        buf.add(bad)
    with pytest.raises(ValueError, match="empty"):
        ImaginationBuffer(2, h, r, c, k, a).sample(1, np.random.default_rng(0))


def test_imagination_buffer_take_hands_out_each_rollout_once_oldest_first():
    # Received rollouts join the actor-critic batch once each (agents/learner.py), so peers'
    # share of a batch follows what they send instead of a fixed half.
    h, r, c, k, a = 3, 2, 2, 4, 5
    traj = _random_trajectory(h, 7, r, c, k, a, seed=3)
    firsts = traj.deter[0].numpy()  # (7, R): identifies each rollout
    buf = ImaginationBuffer(4, h, r, c, k, a)
    rollouts = from_trajectory(traj)
    for rollout in rollouts[:3]:
        buf.add(rollout)
    assert buf.fresh == 3
    np.testing.assert_array_equal(buf.take(2)["deter"][0], firsts[:2])
    assert buf.fresh == 1
    for rollout in rollouts[3:]:  # 4 more into a buffer of 4: rollout 2 is evicted unused
        buf.add(rollout)
    assert buf.fresh == 4 and len(buf) == 4
    np.testing.assert_array_equal(buf.take(10)["deter"][0], firsts[3:])
    assert buf.fresh == 0 and buf.take(5)["deter"].shape == (h + 1, 0, r)
    assert len(buf) == 4  # taking frees nothing: `sample` still draws from every stored one


def test_full_paper_buffer_on_2s3z_is_small():
    """Paper preset: 250k transitions; 2s3z: 80-dim obs, 11 actions. float32 obs: ~84 MB."""
    own = EpisodeReplay(250_000, 80, 11)
    assert own.nbytes < 90e6
    assert EpisodeReplay(250_000, 80, 11, obs_dtype=np.float16).nbytes < 50e6


def test_replay_module_does_not_import_torch():
    code = ("import sys, dwm_net.learning.replay, dwm_net.learning.selection; "
            "assert 'torch' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_wrong_shapes_are_rejected():
    buf = EpisodeReplay(20, D, A)
    with pytest.raises(ValueError, match=r"replay avail has shape \(1, 9\), expected \(1, 11\)"):
        buf.add(np.zeros(D), 0, 0.0, False, np.ones(9, bool), True)
    chunk = _chunk(0, 0, 5)
    chunk["obs"] = chunk["obs"][:, :2]
    with pytest.raises(ValueError, match=r"replay obs has shape \(5, 2\)"):
        buf.add_chunk(**chunk)
    assert len(buf) == 0
