"""The real-SMAC adapter: its error without StarCraft II, SMAC3 detection, and the interface.

Without StarCraft II the adapter is exercised against a stand-in ``smac`` package written to a
temporary folder (StarCraft2Env's SMAC signature and quirks over the builtin simulator); the
real game is tested only where it is installed (marker ``sc2``).
"""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from dwm_net.envs import make_env
from dwm_net.envs.sc2 import (
    SC2_DEFAULT_FLAGS,
    SC2Unavailable,
    make_sc2_env,
    sc2_available,
    sc2_unavailable_reason,
)

MAPS = {  # map: (n_agents, n_enemies, n_actions, obs, state, episode_limit), shared/smac-spec.md
    "3m": (3, 3, 9, 30, 48, 60),
    "2m_vs_1z": (2, 1, 7, 16, 26, 150),
    "2s_vs_1sc": (2, 1, 7, 17, 27, 300),
    "2s3z": (5, 5, 11, 80, 120, 120),
}
SC2_REASON = sc2_unavailable_reason("3m")


def check_interface(env, map_name: str, seed: int = 0) -> dict:
    """Asserts the project's env interface on ``env``; plays one random episode."""
    n_agents, n_enemies, n_actions, obs_size, state_size, limit = MAPS[map_name]
    assert (env.n_agents, env.n_enemies, env.episode_limit) == (n_agents, n_enemies, limit)
    assert env.map_name == map_name
    info = env.get_env_info()
    assert {k: info[k] for k in ("state_shape", "obs_shape", "n_actions", "n_agents",
                                 "episode_limit")} == {
        "state_shape": state_size, "obs_shape": obs_size, "n_actions": n_actions,
        "n_agents": n_agents, "episode_limit": limit}
    assert (env.get_obs_size(), env.get_state_size(), env.get_total_actions()) == (
        obs_size, state_size, n_actions)
    out = env.reset()
    assert isinstance(out, tuple) and len(out) == 2
    obs, state = out
    assert len(obs) == n_agents and all(np.shape(o) == (obs_size,) for o in obs)
    assert np.shape(state) == (state_size,)
    assert np.allclose(env.get_obs_agent(1), obs[1])
    rng = np.random.default_rng(seed)
    steps, ret, terminated, info = 0, 0.0, False, {}
    while not terminated:
        avail = env.get_avail_actions()
        assert len(avail) == n_agents and all(len(a) == n_actions for a in avail)
        assert env.get_avail_agent_actions(0) == list(avail[0])
        actions = [int(rng.choice(np.flatnonzero(a))) for a in avail]
        reward, terminated, info = env.step(actions)
        assert isinstance(reward, float) and isinstance(terminated, bool)
        assert {"battle_won", "dead_allies", "dead_enemies"} <= set(info)
        ret += reward
        steps += 1
        assert steps <= limit
    if steps == limit and not info["battle_won"] and info["dead_allies"] < n_agents:
        assert info.get("episode_limit") is True
    return {"steps": steps, "return": ret, "info": info}


# ---------------------------------------------------------------- without StarCraft II
@pytest.mark.skipif(SC2_REASON is None, reason="StarCraft II and SMAC are installed here")
def test_clear_error_without_sc2():
    with pytest.raises(SC2Unavailable) as exc:
        make_sc2_env("3m")
    msg = str(exc.value)
    assert isinstance(exc.value, RuntimeError)
    assert "\n" not in msg
    for part in ("builtin", "pip install 'dwm-net[sc2]'", "git+https://github.com/oxwhirl/smac.git",
                 "SC2PATH"):
        assert part in msg
    assert msg == SC2_REASON
    # the factory reaches the same error
    with pytest.raises(SC2Unavailable):
        make_env("3m", backend="sc2")


def test_missing_sc2path_is_named(tmp_path, monkeypatch):
    missing = tmp_path / "nowhere"
    monkeypatch.setenv("SC2PATH", str(missing))
    with pytest.raises(SC2Unavailable, match="StarCraft II not found") as exc:
        make_sc2_env("3m")
    assert str(missing) in str(exc.value) and "\n" not in str(exc.value)


@pytest.fixture
def fake_sc2(tmp_path, monkeypatch):
    """A StarCraft II folder with the SMAC maps, and an empty place for a ``smac`` package."""
    sc2 = tmp_path / "StarCraftII"
    (sc2 / "Versions").mkdir(parents=True)
    (sc2 / "Maps" / "SMAC_Maps").mkdir(parents=True)
    for m in MAPS:
        (sc2 / "Maps" / "SMAC_Maps" / f"{m}.SC2Map").write_bytes(b"")
    monkeypatch.setenv("SC2PATH", str(sc2))
    site = tmp_path / "site"
    site.mkdir()
    for mod in [m for m in sys.modules if m == "smac" or m.startswith("smac.")]:
        monkeypatch.delitem(sys.modules, mod)
    monkeypatch.syspath_prepend(str(site))
    yield site
    for mod in [m for m in sys.modules if m == "smac" or m.startswith("smac.")]:
        del sys.modules[mod]


def test_smac3_is_detected(fake_sc2):
    pkg = fake_sc2 / "smac"
    (pkg / "facade").mkdir(parents=True)
    (pkg / "__init__.py").write_text('__version__ = "2.3.1"\n')
    (pkg / "facade" / "__init__.py").write_text("")
    with pytest.raises(SC2Unavailable, match="SMAC3") as exc:
        make_sc2_env("3m")
    assert "\n" not in str(exc.value) and "builtin" in str(exc.value)


def test_missing_map_is_named(fake_sc2):
    (Path(str(fake_sc2)).parent / "StarCraftII" / "Maps" / "SMAC_Maps" / "2s3z.SC2Map").unlink()
    with pytest.raises(SC2Unavailable, match="2s3z.SC2Map"):
        make_sc2_env("2s3z")


def test_broken_smac_import_is_reported(fake_sc2):
    pkg = fake_sc2 / "smac"
    (pkg / "env").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "env" / "__init__.py").write_text("import pysc2_is_not_installed_here\n")
    with pytest.raises(SC2Unavailable, match="importing smac.env failed"):
        make_sc2_env("3m")


# A stand-in for oxwhirl's smac.env: real StarCraft2Env's signature, and its quirks (reset may
# return None in forks, episode_limit in info only with continuing_episode, seed() without
# arguments, units as protos with pos/health/tag), over the builtin simulator.
FAKE_SMAC_ENV = '''
from types import SimpleNamespace
from dwm_net.envs.builtin import BuiltinSMAC

CALLS = []
_ENEMY_IDS = {"marine": 48, "zealot": 73, "stalker": 74, "spine_crawler": 98}


class StarCraft2Env:
    def __init__(self, map_name="8m", step_mul=8, move_amount=2, difficulty="7",
                 game_version=None, seed=None, continuing_episode=False, obs_all_health=True,
                 obs_own_health=True, obs_last_action=False, obs_pathing_grid=False,
                 obs_terrain_height=False, obs_instead_of_state=False, {timestep1}
                 state_last_action=True, {timestep2} reward_sparse=False,
                 reward_only_positive=True, reward_death_value=10, reward_win=200,
                 reward_defeat=0, reward_negative_scale=0.5, reward_scale=True,
                 reward_scale_rate=20, replay_dir="", replay_prefix="", window_size_x=1920,
                 window_size_y=1200, heuristic_ai=False, heuristic_rest=False, debug=False):
        CALLS.append(dict(locals(), self=None))
        self._sim = BuiltinSMAC(map_name, seed=seed)
        self.map_name = map_name
        self.n_agents, self.n_enemies = self._sim.n_agents, self._sim.n_enemies
        self.episode_limit = self._sim.episode_limit
        self.continuing_episode = continuing_episode
        self._seed = seed
        self.marine_id, self.stalker_id, self.zealot_id = 1970, 1971, 1972
        self.pathing_grid = self._sim.snapshot()["pathable"].T  # SMAC indexes [x, y]

    def reset(self):
        self._sim.reset()  # returns None, like some SMAC forks

    def step(self, actions):
        reward, terminated, info = self._sim.step(actions)
        if not self.continuing_episode:
            info.pop("episode_limit", None)
        return reward, terminated, info

    def seed(self):
        return self._seed

    def _units(self):
        s = self._sim.snapshot()
        units = []
        for k in range(len(s["x"])):
            name = s["unit_type"][k]
            ally = k < self.n_agents
            unit_type = getattr(self, name + "_id") if ally else _ENEMY_IDS[name]
            t = int(s["target"][k])
            units.append(SimpleNamespace(
                tag=1000 + k, unit_type=unit_type, pos=SimpleNamespace(x=s["x"][k], y=s["y"][k]),
                health=float(s["health"][k]) if s["alive"][k] else 0.0,
                shield=float(s["shield"][k]), health_max=float(s["health_max"][k]),
                shield_max=float(s["shield_max"][k]), radius=float(s["radius"][k]),
                engaged_target_tag=1000 + t if t >= 0 else 0))
        return units

    @property
    def agents(self):
        return dict(enumerate(self._units()[: self.n_agents]))

    @property
    def enemies(self):
        return dict(enumerate(self._units()[self.n_agents:]))

    def __getattr__(self, name):
        return getattr(self.__dict__["_sim"], name)
'''


def _install_fake_smac(site: Path, with_timestep_flags: bool = True):
    pkg = site / "smac"
    (pkg / "env").mkdir(parents=True)
    (pkg / "__init__.py").write_text('__version__ = "1.0.0"\n')
    t1 = "obs_timestep_number=False," if with_timestep_flags else ""
    t2 = "state_timestep_number=False," if with_timestep_flags else ""
    (pkg / "env" / "__init__.py").write_text(
        textwrap.dedent(FAKE_SMAC_ENV).replace("{timestep1}", t1).replace("{timestep2}", t2))
    import importlib

    importlib.invalidate_caches()
    return importlib.import_module("smac.env")


@pytest.mark.parametrize("map_name", list(MAPS))
def test_adapter_interface_on_stand_in(fake_sc2, map_name):
    fake = _install_fake_smac(fake_sc2)
    assert sc2_available(map_name)
    env = make_env(map_name, seed=7, backend="sc2")
    call = fake.CALLS[-1]
    assert call["map_name"] == map_name and call["seed"] == 7
    for flag, value in SC2_DEFAULT_FLAGS.items():
        assert call[flag] is value, flag
    out = check_interface(env, map_name)
    assert out["steps"] >= 1
    assert env.seed() == 7
    env.close()


def test_adapter_reports_episode_limit(fake_sc2):
    _install_fake_smac(fake_sc2)
    env = make_sc2_env("2s_vs_1sc")
    env.reset()
    # Stop keeps the stalkers out of the static crawler's range: the time limit ends it.
    for t in range(env.episode_limit):
        _reward, terminated, info = env.step([1, 1])
        assert terminated == (t == env.episode_limit - 1)
    assert info["episode_limit"] is True and info["battle_won"] is False


def test_adapter_drops_flags_old_smac_lacks(fake_sc2):
    fake = _install_fake_smac(fake_sc2, with_timestep_flags=False)
    make_sc2_env("3m", difficulty="5")
    call = fake.CALLS[-1]
    assert "obs_timestep_number" not in call and call["difficulty"] == "5"


def test_adapter_snapshot_matches_builtin_layout(fake_sc2):
    _install_fake_smac(fake_sc2)
    env = make_sc2_env("2s3z")
    env.reset()
    for _ in range(8):
        env.step([int(np.flatnonzero(a)[-1]) for a in env.get_avail_actions()])
    snap = env.snapshot()
    ref = env.env._sim.snapshot()
    for key in ("x", "y", "health", "shield", "health_max", "shield_max", "radius", "alive",
                "team", "pathable"):
        assert np.array_equal(np.asarray(snap[key]), np.asarray(ref[key])), key
    assert snap["unit_type"] == ref["unit_type"]
    assert np.array_equal(snap["target"], np.where(ref["alive"], ref["target"], -1))
    assert snap["shots"] == [] and snap["t"] == 8 and snap["n_agents"] == 5


# ---------------------------------------------------------------- with StarCraft II
@pytest.mark.sc2
@pytest.mark.skipif(SC2_REASON is not None, reason=f"StarCraft II / SMAC absent: {SC2_REASON}")
@pytest.mark.parametrize("map_name", list(MAPS))
def test_real_smac_interface(map_name):
    env = make_env(map_name, seed=1, backend="sc2")
    try:
        check_interface(env, map_name)
        snap = env.snapshot()
        assert len(snap["x"]) == env.n_agents + env.n_enemies
    finally:
        env.close()
