"""The PettingZoo ParallelEnv wrapper over the builtin simulator."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

pytest.importorskip("pettingzoo", reason="pettingzoo is the optional extra dwm-net[pettingzoo]")

from pettingzoo.test import parallel_api_test

from dwm_net.envs.pettingzoo_env import SMACParallelEnv, make_parallel_env

MAPS = ["3m", "2m_vs_1z", "2s_vs_1sc", "2s3z"]


@pytest.mark.parametrize("map_name", MAPS)
def test_parallel_api(map_name):
    env = make_parallel_env(map_name, seed=3)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # PettingZoo reports API slips as warnings
        parallel_api_test(env, num_cycles=1000)


@pytest.mark.parametrize("map_name", MAPS)
def test_spaces_and_names(map_name):
    env = make_parallel_env(map_name)
    inner = env.env
    n = inner.n_agents
    assert env.possible_agents == [f"agent_{i}" for i in range(n)]
    for agent in env.possible_agents:
        space = env.observation_space(agent)
        assert space.shape == (inner.get_obs_size(),) and space.dtype == np.float32
        assert env.action_space(agent).n == inner.get_total_actions()
    assert env.state_space.shape == (inner.get_state_size(),)
    obs, infos = env.reset(seed=1)
    assert set(obs) == set(infos) == set(env.agents) == set(env.possible_agents)
    assert env.state().shape == env.state_space.shape and env.state().dtype == np.float32


@pytest.mark.parametrize("map_name", MAPS)
def test_random_masked_episode(map_name):
    env = make_parallel_env(map_name, seed=5, strict=True)
    inner = env.env
    obs, infos = env.reset(seed=5)
    rng = np.random.default_rng(0)
    steps = 0
    while env.agents:
        avail = inner.get_avail_actions()
        for i, agent in enumerate(env.possible_agents):
            mask = infos[agent]["action_mask"]
            assert mask.dtype == np.int8
            assert mask.tolist() == list(avail[i])  # the mask is the env's availability
            assert env.observation_space(agent).contains(obs[agent])
        assert env.state_space.contains(env.state())
        actions = {a: int(rng.choice(np.flatnonzero(infos[a]["action_mask"]))) for a in env.agents}
        obs, rewards, terms, truncs, infos = env.step(actions)
        steps += 1
        assert len(set(rewards.values())) == 1  # one team reward for everyone
        # dead agents stay until the episode ends, limited to no-op
        assert set(rewards) == set(env.possible_agents)
        for i, agent in enumerate(env.possible_agents):
            if not inner.snapshot()["alive"][i]:
                assert infos[agent]["action_mask"].tolist() == [1] + [0] * (inner.n_actions - 1)
                assert not obs[agent].any()
        assert all(not infos[a]["action_replaced"] for a in infos)
    assert steps <= inner.episode_limit
    assert all(terms[a] or truncs[a] for a in env.possible_agents)
    assert all(terms[a] != truncs[a] for a in env.possible_agents)
    assert truncs["agent_0"] == bool(infos["agent_0"].get("episode_limit", False))
    with pytest.raises(RuntimeError, match="reset"):
        env.step(actions)


def test_episode_limit_is_truncation():
    # Stop keeps the stalkers out of the static spine crawler's reach until time runs out.
    env = make_parallel_env("2s_vs_1sc")
    env.reset()
    steps = 0
    while env.agents:
        _, _, terms, truncs, infos = env.step({a: 1 for a in env.agents})
        steps += 1
    assert steps == env.env.episode_limit
    assert all(truncs.values()) and not any(terms.values())
    assert infos["agent_0"]["battle_won"] is False


def test_invalid_actions_replaced_or_rejected():
    env = make_parallel_env("3m")
    env.reset()
    # no-op is unavailable to a living agent: it becomes stop and is flagged
    _, _, _, _, infos = env.step({"agent_0": 0, "agent_1": 1})  # agent_2 missing -> stop too
    assert infos["agent_0"]["action_replaced"] and infos["agent_2"]["action_replaced"]
    assert not infos["agent_1"]["action_replaced"]
    last_actions = env.env.get_state()[-3 * env.n_actions:].reshape(3, -1)  # state_last_action
    assert last_actions.argmax(1).tolist() == [1, 1, 1]
    with pytest.raises(ValueError, match="unknown agent"):
        env.step({"agent_9": 1})
    strict = make_parallel_env("3m", strict=True)
    strict.reset()
    with pytest.raises(ValueError, match="agent_0 cannot perform action 0"):
        strict.step({a: 0 for a in strict.agents})


def test_seeded_resets_repeat():
    env = make_parallel_env("2m_vs_1z")

    def rollout(seed):
        obs, infos = env.reset(seed=seed)
        rng = np.random.default_rng(seed)
        trace = [np.concatenate(list(obs.values()))]
        while env.agents:
            acts = {a: int(rng.choice(np.flatnonzero(infos[a]["action_mask"]))) for a in env.agents}
            obs, _, _, _, infos = env.step(acts)
            trace.append(np.concatenate(list(obs.values())))
        return np.stack(trace)

    a, b = rollout(11), rollout(11)
    assert a.shape == b.shape and np.array_equal(a, b)


def test_wraps_any_smac_interface_env():
    from dwm_net.envs import make_env

    env = SMACParallelEnv(make_env("3m", seed=0))
    obs, _ = env.reset()
    assert len(obs) == 3


def test_missing_pettingzoo_hint(monkeypatch):
    import importlib
    import sys

    monkeypatch.setitem(sys.modules, "pettingzoo", None)  # import now fails
    monkeypatch.delitem(sys.modules, "dwm_net.envs.pettingzoo_env")
    with pytest.raises(ImportError, match=r"pip install 'dwm-net\[pettingzoo\]'"):
        importlib.import_module("dwm_net.envs.pettingzoo_env")
