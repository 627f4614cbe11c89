"""SMAC interface of the built-in simulator: sizes, observation/state layouts built by hand from
``shared/smac-spec.md``, availability, dead agents, illegal actions.

Layouts (spec): obs = 4 move flags; per enemy [attack available, d/9, dx/9, dy/9, hp/max,
(shield/max if the enemy race is Protoss), (type one-hot)]; per other ally in increasing id
[visible, d/9, dx/9, dy/9, hp/max, (shield/max), (type)]; own [hp/max, (shield/max), (type)].
Rows of dead units and of units at distance >= 9 are zeros. State = per ally [hp/max,
cooldown/max_cooldown, (x-16)/32, (y-16)/32, (shield/max), (type)], per enemy [hp/max,
(x-16)/32, (y-16)/32, (shield/max), (type)], then the last actions one-hot.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from dwm_net.envs import SCENARIOS, make_env

SIZES = {  # spec table: n_actions, obs, state, n_agents, limit
    "3m": (9, 30, 48, 3, 60),
    "2m_vs_1z": (7, 16, 26, 2, 150),
    "2s_vs_1sc": (7, 17, 27, 2, 300),
    "2s3z": (11, 80, 120, 5, 120),
}


def d9(dx, dy):
    return math.hypot(dx, dy) / 9


# --------------------------------------------------------------------------------------------
# 11. Sizes and env info
# --------------------------------------------------------------------------------------------


def test_the_four_scenarios_are_available():
    assert set(SCENARIOS) == set(SIZES)


@pytest.mark.parametrize("name", sorted(SIZES))
def test_sizes_match_the_spec_table(name):
    n_actions, obs, state, n_agents, limit = SIZES[name]
    env = make_env(name, seed=0)
    assert env.get_total_actions() == n_actions
    assert env.get_obs_size() == obs
    assert env.get_state_size() == state
    info = env.get_env_info()
    assert set(info) >= {"state_shape", "obs_shape", "n_actions", "n_agents", "episode_limit"}
    assert info["state_shape"] == state and info["obs_shape"] == obs
    assert info["n_actions"] == n_actions and info["n_agents"] == n_agents
    assert info["episode_limit"] == limit
    obs_list, st = env.reset()
    assert len(obs_list) == n_agents
    assert all(o.shape == (obs,) and o.dtype == np.float32 for o in obs_list)
    assert st.shape == (state,) and st.dtype == np.float32
    assert np.array(env.get_avail_actions()).shape == (n_agents, n_actions)


# --------------------------------------------------------------------------------------------
# 17. Interface behaviour
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(SIZES))
def test_interface_behaviour_over_a_random_episode(name):
    env = make_env(name, seed=1)
    obs, state = env.reset()
    assert isinstance(obs, list)
    np.testing.assert_array_equal(np.stack(obs), np.stack(env.get_obs()))
    np.testing.assert_array_equal(state, env.get_state())
    rng = np.random.default_rng(0)
    terminated = False
    while not terminated:
        avail = np.array(env.get_avail_actions())
        alive = env.snapshot()["alive"][: env.n_agents]
        assert (avail.sum(axis=1) >= 1).all()
        assert (avail[alive, 0] == 0).all()  # alive agents never have no-op
        assert (avail[alive, 1] == 1).all()  # stop always available
        assert (avail[~alive] == np.eye(env.n_actions)[0]).all()
        for a in range(env.n_agents):
            assert env.get_avail_agent_actions(a) == avail[a].tolist()
            np.testing.assert_array_equal(env.get_obs_agent(a), env.get_obs()[a])
        acts = [int(rng.choice(np.flatnonzero(row))) for row in avail]
        r, terminated, info = env.step(acts)
        assert isinstance(r, float) and r >= 0.0
        assert set(info) >= {"battle_won", "dead_allies", "dead_enemies"}
        obs = env.get_obs()
        assert len(obs) == env.n_agents
        assert all(o.dtype == np.float32 and o.shape == (env.get_obs_size(),) for o in obs)
        st = env.get_state()
        assert st.dtype == np.float32 and st.shape == (env.get_state_size(),)
        # the last-action block of the state is the one-hot of the actions just taken
        last = st[-env.n_agents * env.n_actions:].reshape(env.n_agents, env.n_actions)
        np.testing.assert_array_equal(last, np.eye(env.n_actions)[acts])
    env.close()


def test_seed_method_and_reset_return():
    env = make_env("3m", seed=7)
    assert env.seed() == 7
    out = env.reset()
    assert isinstance(out, tuple) and len(out) == 2
    assert env.seed(11) == 11 and env.seed() == 11


def test_spawns_and_agent_order():
    """Agent ids sorted by (unit type, x, y); in 2s3z the stalkers come first; groups packed
    around their spawn point without overlap."""
    for name, centre_a, centre_e in [("3m", (9, 16), (23, 16)), ("2s3z", (9, 16), (23, 16))]:
        env = make_env(name, seed=0)
        snap = env.snapshot()
        n = env.n_agents
        types = snap["unit_type"][:n]
        keys = [(t, x, y) for t, x, y in zip(types, snap["x"][:n], snap["y"][:n])]
        assert keys == sorted(keys)
        for lo, hi, (cx, cy) in [(0, n, centre_a), (n, len(snap["x"]), centre_e)]:
            xs, ys, rs = snap["x"][lo:hi], snap["y"][lo:hi], snap["radius"][lo:hi]
            assert np.mean(xs) == pytest.approx(cx, abs=0.5)
            assert np.mean(ys) == pytest.approx(cy, abs=0.5)
            for i in range(hi - lo):
                for j in range(i + 1, hi - lo):
                    assert math.hypot(xs[i] - xs[j], ys[i] - ys[j]) >= rs[i] + rs[j]
    assert make_env("2s3z", seed=0).snapshot()["unit_type"][:5] == [
        "stalker", "stalker", "zealot", "zealot", "zealot"]
    snap = make_env("2m_vs_1z", seed=0).snapshot()
    assert list(zip(snap["x"], snap["y"])) == [(13, 12), (19, 12), (16, 19)]
    snap = make_env("2s_vs_1sc", seed=0).snapshot()
    assert list(zip(snap["x"], snap["y"])) == [(11.1208, 10.338), (16.976, 10.3662),
                                               (13.92, 20.0397)]


# --------------------------------------------------------------------------------------------
# 8. Dead agents
# --------------------------------------------------------------------------------------------


def test_dead_agent_has_only_noop_zero_obs_and_cannot_act():
    env = make_env("3m", seed=0)
    env.reset()
    env.set_unit(1, health=0)
    assert env.get_avail_agent_actions(1) == [1, 0, 0, 0, 0, 0, 0, 0, 0]
    assert not env.get_obs_agent(1).any()
    assert not env.get_state()[4:8].any()  # its state row
    for act in (1, 2, 3, 4, 5, 6):
        with pytest.raises(ValueError, match=rf"Agent 1\b.*\baction {act}\b"):
            env.step([1, act, 1])
    _r, _terminated, info = env.step([1, 0, 1])  # no-op is fine
    assert info["dead_allies"] == 1
    assert not env.get_obs_agent(1).any()


# --------------------------------------------------------------------------------------------
# 9. Illegal actions
# --------------------------------------------------------------------------------------------


def test_wrong_number_of_actions():
    env = make_env("3m", seed=0)
    env.reset()
    with pytest.raises(ValueError, match="3"):
        env.step([1, 1])
    with pytest.raises(ValueError):
        env.step([1, 1, 1, 1])
    with pytest.raises(ValueError):
        env.step([[1, 1, 1]])


def test_unavailable_action_names_agent_and_action():
    env = make_env("3m", seed=0)
    env.reset()  # enemies 14 away: attacks unavailable; alive agents: no-op unavailable
    with pytest.raises(ValueError, match=r"Agent 2\b.*\baction 7\b"):
        env.step([1, 1, 7])
    with pytest.raises(ValueError, match=r"Agent 0\b.*\baction 0\b"):
        env.step([0, 1, 1])
    with pytest.raises(ValueError, match=r"Agent 1\b.*\baction 9\b"):
        env.step([1, 9, 1])  # out of range
    with pytest.raises(ValueError, match=r"Agent 1\b.*\baction -1\b"):
        env.step([1, -1, 1])
    env.set_unit(0, x=16.0, y=23.5)  # north: int(24.5) = 24 is not pathable
    with pytest.raises(ValueError, match=r"Agent 0\b.*\baction 2\b"):
        env.step([2, 1, 1])
    env.step(np.array([1, 1, 1]))  # numpy integers are fine
    env.step([np.int64(1), 1, np.int32(1)])


@pytest.mark.parametrize(
    "actions, agent, shown",
    [
        ([1.5, 1, 1], 0, "1.5"),
        ([1, 1.5, 1], 1, "1.5"),
        ([1, 1, "a"], 2, "'a'"),
        (["a", 1, 1], 0, "'a'"),
        ([None, 1, 1], 0, "None"),
        ([1, None, 1], 1, "None"),
    ],
)
def test_non_integer_action_names_the_agent_and_the_action(actions, agent, shown):
    env = make_env("3m", seed=0)
    env.reset()
    with pytest.raises(ValueError) as exc:
        env.step(actions)
    msg = str(exc.value)
    assert f"Agent {agent}" in msg and shown in msg, msg
    env.step([1, 1, 1])  # the env is still usable


def test_step_after_termination_raises():
    env = make_env("3m", seed=0)
    env.reset()
    for a in range(3):
        env.set_unit(a, health=0)
    _, terminated, info = env.step([0, 0, 0])
    assert terminated and info["battle_won"] is False and info["dead_allies"] == 3
    with pytest.raises(RuntimeError):
        env.step([0, 0, 0])
    env.reset()
    env.step([1, 1, 1])


# --------------------------------------------------------------------------------------------
# 10. Observation and state of constructed situations
# --------------------------------------------------------------------------------------------


def _check(got, want):
    got = np.asarray(got, dtype=np.float64)
    want = np.asarray(want, dtype=np.float64)
    assert got.shape == want.shape
    bad = np.flatnonzero(~np.isclose(got, want, rtol=0, atol=1e-6))
    assert bad.size == 0, {int(i): (float(got[i]), float(want[i])) for i in bad}


def test_obs_and_state_3m():
    env = make_env("3m", seed=0)
    env.reset()
    env.set_unit(0, x=10, y=16, cooldown=7.5)
    env.set_unit(1, x=12, y=18, health=30)
    env.set_unit(2, health=0)  # dead
    env.set_unit(3, x=14, y=16, health=20)
    env.set_unit(4, x=15, y=19)
    env.set_unit(5, x=20, y=16)  # 10 from ally 0 (invisible), sqrt(68) = 8.25 from ally 1
    obs0 = [1, 1, 1, 1,  # moves: (10, 17), (10, 15), (11, 16), (9, 16) all pathable
            1, 4 / 9, 4 / 9, 0, 20 / 45,  # enemy 0 at (14, 16): d 4
            1, d9(5, 3), 5 / 9, 3 / 9, 1,  # enemy 1 at (15, 19): d 5.83 <= 6
            0, 0, 0, 0, 0,  # enemy 2: distance 10 >= 9
            1, d9(2, 2), 2 / 9, 2 / 9, 30 / 45,  # ally 1
            0, 0, 0, 0, 0,  # ally 2 dead
            1]  # own health
    obs1 = [1, 1, 1, 1,
            1, d9(2, -2), 2 / 9, -2 / 9, 20 / 45,
            1, d9(3, 1), 3 / 9, 1 / 9, 1,
            0, d9(8, -2), 8 / 9, -2 / 9, 1,  # visible (8.25 < 9) but not attackable (> 6)
            1, d9(-2, -2), -2 / 9, -2 / 9, 1,  # ally 0
            0, 0, 0, 0, 0,  # ally 2
            30 / 45]
    _check(env.get_obs_agent(0), obs0)
    _check(env.get_obs_agent(1), obs1)
    _check(env.get_obs_agent(2), [0] * 30)
    state = [1, 7.5 / 15, -6 / 32, 0,  # ally 0: cooldown / 15 loops
             30 / 45, 0, -4 / 32, 2 / 32,
             0, 0, 0, 0,
             20 / 45, -2 / 32, 0,  # enemies
             1, -1 / 32, 3 / 32,
             1, 4 / 32, 0] + [0] * 27  # no action yet
    _check(env.get_state(), state)
    env.set_unit(3, cooldown=1e9)  # keep the step simple
    env.step([1, 6, 0])
    last = np.zeros((3, 9))
    last[0, 1] = last[1, 6] = last[2, 0] = 1
    _check(env.get_state()[21:], last.ravel())


def test_obs_and_state_2s3z_with_shields_and_unit_types():
    env = make_env("2s3z", seed=0)
    env.reset()
    # allies: 0, 1 stalkers; 2, 3, 4 zealots. enemies: 5, 6 stalkers; 7, 8, 9 zealots.
    env.set_unit(0, x=10, y=16, health=40, shield=20, cooldown=14)
    env.set_unit(1, health=0)
    env.set_unit(2, x=11, y=14, shield=25, cooldown=11)
    env.set_unit(3, x=19.5, y=16)  # 9.5 from ally 0: invisible to it
    env.set_unit(4, x=10, y=18)
    env.set_unit(5, x=14, y=16, shield=40)
    env.set_unit(6, x=15, y=19, health=60, shield=0)
    env.set_unit(7, x=12, y=13, health=50)
    env.set_unit(8, health=0)
    env.set_unit(9, x=17, y=10)  # sqrt(85) = 9.22 from ally 0
    # unit-type one-hot (2 bits), as the brief/docs fix it for allies and enemies alike:
    # stalker [1, 0], zealot [0, 1]. (Real SMAC encodes *enemy* types as unit_type - 73, i.e.
    # enemy stalker [0, 1], zealot [1, 0]; see the report, not pinned here.)
    S, Z = [1, 0], [0, 1]
    obs0 = ([1, 1, 1, 1]
            + [1, 4 / 9, 4 / 9, 0, 1, 40 / 80] + S
            + [1, d9(5, 3), 5 / 9, 3 / 9, 60 / 80, 0] + S
            + [1, d9(2, -3), 2 / 9, -3 / 9, 50 / 100, 1] + Z
            + [0] * 8 + [0] * 8  # enemy 3 dead, enemy 4 beyond sight
            + [0] * 8  # ally 1 dead
            + [1, d9(1, -2), 1 / 9, -2 / 9, 1, 25 / 50] + Z
            + [0] * 8  # ally 3 beyond sight
            + [1, 2 / 9, 0, 2 / 9, 1, 1] + Z
            + [40 / 80, 20 / 80] + S)
    _check(env.get_obs_agent(0), obs0)
    _check(env.get_obs_agent(1), [0] * 80)
    # zealot ally 4 at (10, 18): sees enemy 4 at (17, 10)? d = sqrt(49 + 64) = 10.6: no.
    obs4 = ([1, 1, 1, 1]
            + [1, d9(4, -2), 4 / 9, -2 / 9, 1, 40 / 80] + S
            + [1, d9(5, 1), 5 / 9, 1 / 9, 60 / 80, 0] + S
            + [1, d9(2, -5), 2 / 9, -5 / 9, 50 / 100, 1] + Z
            + [0] * 8 + [0] * 8
            + [1, 2 / 9, 0, -2 / 9, 40 / 80, 20 / 80] + S  # ally 0
            + [0] * 8  # ally 1 dead
            + [1, d9(1, -4), 1 / 9, -4 / 9, 1, 25 / 50] + Z  # ally 2
            + [0] * 8  # ally 3 at (19.5, 16): hypot(9.5, -2) = 9.71 >= 9
            + [1, 1] + Z)
    _check(env.get_obs_agent(4), obs4)
    state = ([0.5, 14 / 35, -6 / 32, 0, 20 / 80] + S  # max cooldown: stalker 35, zealot 22
             + [0] * 7
             + [1, 11 / 22, -5 / 32, -2 / 32, 25 / 50] + Z
             + [1, 0, 3.5 / 32, 0, 1] + Z
             + [1, 0, -6 / 32, 2 / 32, 1] + Z
             + [1, -2 / 32, 0, 40 / 80] + S
             + [60 / 80, -1 / 32, 3 / 32, 0] + S
             + [50 / 100, -4 / 32, -3 / 32, 1] + Z
             + [0] * 6
             + [1, 1 / 32, -6 / 32, 1] + Z
             + [0] * 55)
    _check(env.get_state(), state)


def test_obs_and_state_2s_vs_1sc_zerg_enemy_has_no_shield_bit():
    env = make_env("2s_vs_1sc", seed=0)
    env.reset()
    cx, cy = 13.92, 20.0397
    env.set_unit(0, x=12, y=14, health=60, shield=30, cooldown=7)
    env.set_unit(1, x=15, y=16, shield=0)
    env.set_unit(2, health=250)
    obs0 = ([1, 1, 1, 1]
            # crawler: d = hypot(1.92, 6.0397) = 6.34 > 6: visible, not attackable; no shield
            + [0, d9(cx - 12, cy - 14), (cx - 12) / 9, (cy - 14) / 9, 250 / 300]
            + [1, d9(3, 2), 3 / 9, 2 / 9, 1, 0]  # ally 1: hp, shield
            + [60 / 80, 30 / 80])
    obs1 = ([1, 1, 1, 1]
            + [1, d9(cx - 15, cy - 16), (cx - 15) / 9, (cy - 16) / 9, 250 / 300]  # 4.18
            + [1, d9(-3, -2), -3 / 9, -2 / 9, 60 / 80, 30 / 80]
            + [1, 0])
    _check(env.get_obs_agent(0), obs0)
    _check(env.get_obs_agent(1), obs1)
    state = ([60 / 80, 7 / 35, -4 / 32, -2 / 32, 30 / 80]
             + [1, 0, -1 / 32, 0, 0]
             + [250 / 300, (cx - 16) / 32, (cy - 16) / 32]
             + [0] * 14)
    _check(env.get_state(), state)


def test_obs_and_state_2m_vs_1z_protoss_enemy_has_shield_bit():
    env = make_env("2m_vs_1z", seed=0)
    env.reset()
    env.set_unit(0, x=13, y=12, cooldown=3)
    env.set_unit(1, x=19, y=12, health=20)
    env.set_unit(2, x=16, y=15, health=80, shield=10)
    obs0 = ([1, 1, 1, 1]
            + [1, d9(3, 3), 3 / 9, 3 / 9, 80 / 100, 10 / 50]
            + [1, 6 / 9, 6 / 9, 0, 20 / 45]
            + [1])
    obs1 = ([1, 1, 1, 1]
            + [1, d9(-3, 3), -3 / 9, 3 / 9, 80 / 100, 10 / 50]
            + [1, 6 / 9, -6 / 9, 0, 1]
            + [20 / 45])
    _check(env.get_obs_agent(0), obs0)
    _check(env.get_obs_agent(1), obs1)
    state = ([1, 3 / 15, -3 / 32, -4 / 32]
             + [20 / 45, 0, 3 / 32, -4 / 32]
             + [80 / 100, 0, -1 / 32, 10 / 50]
             + [0] * 14)
    _check(env.get_state(), state)
    # The state's last actions after a step: agent 0 stop, agent 1 attack (6).
    env.step([1, 6])
    _check(env.get_state()[12:], [0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1])


def test_obs_of_enemy_at_exactly_sight_range_is_zero():
    env = make_env("3m", seed=0)
    env.reset()
    env.set_unit(0, x=10, y=16)
    env.set_unit(3, x=19.0, y=16)  # exactly 9: not visible (< 9 required)
    env.set_unit(4, x=18.99, y=16)  # visible
    env.set_unit(5, x=10, y=7.0)  # 9 south (off the pathable band does not matter)
    obs = env.get_obs_agent(0)
    _check(obs[4:9], [0, 0, 0, 0, 0])
    _check(obs[9:14], [0, 8.99 / 9, 8.99 / 9, 0, 1])
    _check(obs[14:19], [0, 0, 0, 0, 0])
