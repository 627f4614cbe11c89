"""Peer messages that are well-formed but poisonous (overlong chunks, inf logits, unavailable taken
actions, out-of-range discounts/rewards) are rejected and counted; the centralized learner
survives them and its episode joiner stays bounded."""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

import numpy as np
import pytest

from agents.central import LearnerArgs, LearnerProcess
from agents.stopflag import StopFlag
from agents.wire import EpisodeJoiner, WireError, experience_from_msg, experience_msg, rollout_from_msg, rollout_msg
from comms.budget import parse_budget
from comms.codec import decode, encode
from comms.messages import LEARNER, ExperienceMsg, RolloutMsg
from comms.transport import InProcHub, InProcTransport
from dwm_net.config import replace
from dwm_net.learning.types import EnvSpec
from test_agent import TINY, _episode

SPEC = EnvSpec(obs_dim=5, n_actions=4, n_agents=2, episode_limit=60)


def _chunk_msg(length: int, *, sender: int = 0, t0: int = 0, ends: bool = True, step: int = 60) -> ExperienceMsg:
    ep = _episode(length, SPEC.obs_dim, SPEC.n_actions, seed=sender)
    return experience_msg(ep, sender=sender, seq=0, step=step, score=0.0, float16=False, t0=t0, ends=ends)


def _roundtrip(msg):  # what a receiver gets: the codec's decoded copy
    return decode(encode(msg))


# --- the centralized learner --------------------------------------------------------------------

def test_learner_counts_overlong_and_unstorable_chunks_and_keeps_running(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    # One ExperienceMsg longer than the replay's capacity used to raise out of _receive and
    # end the learner process.
    cfg = replace(TINY, **{"train.capacity": 30})
    lp = LearnerProcess(LearnerArgs(cfg, "tcp://127.0.0.1:1", tmp_path), StopFlag())
    try:
        lp.init_learning(SPEC)
        hub = InProcHub()
        lp.transport = InProcTransport(hub, LEARNER, parse_budget("unlimited"))
        peer = InProcTransport(hub, 0, parse_budget("unlimited"))
        for msg in (_chunk_msg(40),  # <= episode_limit but > capacity: the replay refuses it
                    _chunk_msg(SPEC.episode_limit + 1),  # no episode is this long
                    _chunk_msg(20)):
            peer.send(msg)
        peer.pump()
        with caplog.at_level(logging.WARNING, logger="agents.central"):
            lp._receive()
        assert lp.rejected == {"buffer": 1, "shape": 1}
        assert lp.steps_received == 20 and len(lp.learner.replay) == 20
        warnings = [r.getMessage() for r in caplog.records]
        assert len(warnings) == 1  # rate-limited: one line for the burst
        assert "rejected experience from agent 0" in warnings[0] and "capacity=30" in warnings[0]
        assert lp.snapshot()["rejected/buffer"] == 1
    finally:
        lp.ctx.term()


# --- the episode joiner -------------------------------------------------------------------------

def _joiner(max_steps: int, max_senders: int = 8) -> tuple[EpisodeJoiner, list[dict[str, np.ndarray]]]:
    stored: list[dict[str, np.ndarray]] = []
    return EpisodeJoiner(stored.append, max_steps=max_steps, max_senders=max_senders), stored


def test_joiner_stores_what_it_holds_before_a_segment_would_pass_max_steps() -> None:
    joiner, stored = _joiner(max_steps=50)
    ep = _episode(60, SPEC.obs_dim, SPEC.n_actions, seed=0)
    for t0 in (0, 20, 40):  # 60 steps of one episode, never `ends`
        msg = experience_msg({k: v[t0:t0 + 20] for k, v in ep.items()}, sender=0, seq=0, step=60,
                             score=0.0, float16=False, t0=t0, ends=False)
        joiner.add(msg, experience_from_msg(msg, SPEC))
    assert [len(s["action"]) for s in stored] == [40]  # never one 60-step segment
    assert joiner.held_steps == 20
    joiner.flush()
    assert [len(s["action"]) for s in stored] == [40, 20]
    assert stored[1]["first"][0]  # the part after the cut starts a new segment
    np.testing.assert_array_equal(np.concatenate([s["action"] for s in stored]), ep["action"])


def test_joiner_holds_at_most_max_steps_times_max_senders_in_total() -> None:
    joiner, stored = _joiner(max_steps=50, max_senders=2)  # at most 100 steps held
    for sender in range(5):  # 5 x 20 steps: exactly the cap
        msg = _chunk_msg(20, sender=sender, ends=False)
        joiner.add(msg, experience_from_msg(msg, SPEC))
    assert joiner.held_steps == 100 and not stored and joiner.evicted == 0
    more = _chunk_msg(10, sender=0, t0=20, ends=False)  # sender 0 goes on: now most recent
    joiner.add(more, experience_from_msg(more, SPEC))
    assert joiner.evicted == 1 and [len(s["action"]) for s in stored] == [20]  # sender 1, oldest
    for sender in range(100, 200):  # a flood of forged sender ids
        msg = _chunk_msg(20, sender=sender, ends=False)
        joiner.add(msg, experience_from_msg(msg, SPEC))
        assert joiner.held_steps <= 100
    assert joiner.evicted == len(stored) > 1  # every eviction stored, nothing lost:
    assert sum(len(s["action"]) for s in stored) + joiner.held_steps == 5 * 20 + 10 + 100 * 20


# --- experience checks --------------------------------------------------------------------------

def _experience_case(case: str) -> ExperienceMsg:
    msg = _chunk_msg(10)
    if case == "overlong":
        return _chunk_msg(SPEC.episode_limit + 1)
    if case == "taken action unavailable":
        avail = np.ones((10, SPEC.n_actions), bool)
        avail[3, msg.actions[3]] = False
        return dataclasses.replace(msg, avail=avail)
    if case == "term not 0/1":
        return dataclasses.replace(msg, terms=np.array([0] * 9 + [2], np.uint8))
    if case == "avail not 0/1":
        return dataclasses.replace(msg, avail=np.full((10, SPEC.n_actions), 3, np.uint8))
    if case == "huge reward":
        return dataclasses.replace(msg, rewards=np.full(10, 1e7, np.float32))
    raise AssertionError(case)


@pytest.mark.parametrize("case, reason", [
    ("overlong", "shape"), ("taken action unavailable", "unavailable"), ("term not 0/1", "range"),
    ("avail not 0/1", "range"), ("huge reward", "range")])
def test_experience_checks_reject_poisonous_chunks(case: str, reason: str) -> None:
    experience_from_msg(_roundtrip(_chunk_msg(10)), SPEC)  # the clean chunk passes
    with pytest.raises(WireError) as e:
        experience_from_msg(_roundtrip(_experience_case(case)), SPEC)
    assert e.value.reason == reason and "\n" not in str(e.value)


# --- rollout checks -----------------------------------------------------------------------------

H = TINY.train.horizon


def _rollout(case: str = "clean") -> RolloutMsg:
    m, a = TINY.model, SPEC.n_actions
    avail = np.ones((H, a), bool)
    avail[:, 3] = False
    logits = np.zeros((H, a), np.float32)
    logits[:, 3] = -np.inf  # a masked action: allowed
    action = np.zeros(H, np.int64)
    discount = np.full(H, 0.99, np.float32)
    reward = np.zeros(H, np.float32)
    if case == "+inf logit":
        logits[1, 2] = np.inf
    elif case == "-inf logit of an available action":
        logits[1, 0] = -np.inf
    elif case == "+inf logit of an unavailable action":
        logits[1, 3] = np.inf
    elif case == "taken action unavailable":
        action[2] = 3
    elif case == "no action available":
        avail[2] = False
    elif case == "discount above 1":
        discount[0] = 1e30
    elif case == "negative discount":
        discount[0] = -0.5
    elif case == "huge reward":
        reward[0] = -1e7
    else:
        assert case == "clean"
    return rollout_msg({"deter": np.zeros((H + 1, m.deter), np.float32),
                        "stoch": np.zeros((H + 1, m.n_categoricals), np.uint8), "action": action,
                        "logits": logits, "avail": avail, "reward": reward, "discount": discount},
                       sender=1, seq=0, step=0, score=0.0, float16=False)


@pytest.mark.parametrize("case, reason", [
    ("+inf logit", "nonfinite"), ("-inf logit of an available action", "nonfinite"),
    ("+inf logit of an unavailable action", "nonfinite"), ("taken action unavailable", "unavailable"),
    ("no action available", "unavailable"), ("discount above 1", "range"), ("negative discount", "range"),
    ("huge reward", "range")])
def test_rollout_checks_reject_what_would_poison_ppo(case: str, reason: str) -> None:
    clean = rollout_from_msg(_roundtrip(_rollout()), SPEC, TINY.model, H)
    assert np.isneginf(clean["logits"][:, 3]).all()  # masked logits pass as they are
    with pytest.raises(WireError) as e:
        rollout_from_msg(_roundtrip(_rollout(case)), SPEC, TINY.model, H)
    assert e.value.reason == reason and "\n" not in str(e.value)
