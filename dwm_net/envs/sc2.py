"""Adapter over real SMAC (oxwhirl's ``StarCraft2Env``, driving StarCraft II through pysc2).

Same interface as the built-in simulator so agent code, configs and checkpoints run on both.
Needs StarCraft II (``SC2PATH``) with the SMAC maps, pysc2 and StarCraft SMAC from its git
repository. The PyPI package named ``smac`` is SMAC3, an unrelated hyper-parameter optimiser;
it is detected and reported instead of failing with a confusing import error.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

# The flags shared/smac-spec.md fixes (SMAC's defaults); the builtin simulator implements these.
SC2_DEFAULT_FLAGS: dict[str, bool] = {
    "obs_all_health": True,
    "obs_own_health": True,
    "state_last_action": True,
    "obs_last_action": False,
    "obs_pathing_grid": False,
    "obs_terrain_height": False,
    "obs_timestep_number": False,
    "state_timestep_number": False,
}
# Older SMAC releases lack these; leaving them out there gives the same (off) behaviour.
_OPTIONAL_FLAGS = ("obs_timestep_number", "state_timestep_number")

_INSTALL_HINT = (
    "install with `pip install 'dwm-net[sc2]'` and "
    "`pip install git+https://github.com/oxwhirl/smac.git`, set SC2PATH to the StarCraft II "
    "install (with SMAC_Maps in its Maps folder); backend=\"builtin\" works without StarCraft II"
)

# SC2 unit type ids of the enemy units on the four maps (allies use SMAC's custom types).
_ENEMY_TYPE_NAMES = {48: "marine", 73: "zealot", 74: "stalker", 98: "spine_crawler"}


class SC2Unavailable(RuntimeError):
    """StarCraft II or StarCraft SMAC is missing; the message says what to install."""


def _unavailable(reason: str) -> SC2Unavailable:
    return SC2Unavailable(f"real SMAC backend unavailable: {reason}; {_INSTALL_HINT}")


def default_sc2_path() -> Path:
    """Where pysc2 looks for StarCraft II: ``SC2PATH``, else the platform's default folder."""
    env = os.environ.get("SC2PATH")
    if env:
        return Path(env).expanduser()
    if sys.platform == "darwin":
        return Path("/Applications/StarCraft II")
    if sys.platform.startswith("win"):
        return Path("C:/Program Files (x86)/StarCraft II")
    return Path("~/StarCraftII").expanduser()


def _sc2_install_problem(map_name: str | None) -> str | None:
    """Why StarCraft II (or the SMAC map) can't be used, or None; filesystem checks only."""
    path = default_sc2_path()
    where = f"SC2PATH={path}" if os.environ.get("SC2PATH") else f"SC2PATH unset and {path}"
    if not path.is_dir():
        return f"StarCraft II not found ({where} does not exist)"
    if not (path / "Versions").is_dir():
        return f"{path} is not a StarCraft II install (no Versions folder)"
    if map_name is not None:
        candidates = [path / d / "SMAC_Maps" / f"{map_name}.SC2Map" for d in ("Maps", "maps")]
        if not any(c.is_file() for c in candidates):
            return f"SMAC map {map_name}.SC2Map not found under {path / 'Maps' / 'SMAC_Maps'}"
    return None


def _smac_package_problem() -> str | None:
    """Why the installed ``smac`` is not StarCraft SMAC, or None; does not import it."""
    try:
        spec = importlib.util.find_spec("smac")
    except (ImportError, ValueError):  # a half-imported or spec-less `smac` module
        spec = None
    if spec is None:
        return "StarCraft SMAC is not installed (no `smac` package)"
    roots = [Path(p) for p in (spec.submodule_search_locations or [])]
    if any((r / "env").is_dir() for r in roots):
        return None
    if any((r / "facade").is_dir() for r in roots):
        return ("the installed `smac` is SMAC3 (PyPI hyper-parameter optimiser), not StarCraft "
                "SMAC; `pip uninstall smac` first")
    return "the installed `smac` has no `smac.env` (not StarCraft SMAC)"


def _import_starcraft2env() -> type:
    """StarCraft SMAC's ``StarCraft2Env`` class, or SC2Unavailable saying why not."""
    problem = _smac_package_problem()
    if problem:
        raise _unavailable(problem)
    try:
        module = importlib.import_module("smac.env")
    except Exception as e:  # pysc2 / s2clientprotocol / absl missing or broken
        raise _unavailable(f"importing smac.env failed ({type(e).__name__}: {e})") from e
    cls = getattr(module, "StarCraft2Env", None)
    if cls is None:
        smac = sys.modules.get("smac")
        version = getattr(smac, "__version__", "?")
        raise _unavailable(f"smac {version} has no smac.env.StarCraft2Env (SMAC3 or a fork?)")
    return cls


def sc2_unavailable_reason(map_name: str | None = None) -> str | None:
    """The one-line SC2Unavailable message, or None when the real SMAC backend can be built."""
    try:
        problem = _sc2_install_problem(map_name)
        if problem:
            smac_problem = _smac_package_problem()
            raise _unavailable(f"{problem}; {smac_problem}" if smac_problem else problem)
        _import_starcraft2env()
    except SC2Unavailable as e:
        return str(e)
    return None


def sc2_available(map_name: str | None = None) -> bool:
    return sc2_unavailable_reason(map_name) is None


def make_sc2_env(name: str, seed: int = 0, **kwargs: Any) -> SC2SMACEnv:
    """Real SMAC's ``StarCraft2Env`` for map ``name`` behind the project's env interface.

    ``kwargs`` go to ``StarCraft2Env`` and override the spec's flags (``SC2_DEFAULT_FLAGS``);
    e.g. ``difficulty``, ``game_version``, ``replay_dir``. Raises SC2Unavailable when
    StarCraft II or StarCraft SMAC is missing (checked before importing anything heavy).
    """
    # StarCraft II first: it is the usual gap, and the check costs no import.
    problem = _sc2_install_problem(name)
    if problem:
        smac_problem = _smac_package_problem()
        raise _unavailable(f"{problem}; {smac_problem}" if smac_problem else problem)
    cls = _import_starcraft2env()
    args: dict[str, Any] = {**SC2_DEFAULT_FLAGS, **kwargs}
    try:
        import inspect

        accepted = set(inspect.signature(cls.__init__).parameters)
    except (TypeError, ValueError):
        accepted = set()
    if accepted and "kwargs" not in accepted:
        for flag in _OPTIONAL_FLAGS:
            if flag not in accepted and flag not in kwargs and not args[flag]:
                del args[flag]
    try:
        env = cls(map_name=name, seed=int(seed), **args)
    except KeyError:
        # SMAC's get_map_params raises a bare KeyError for an unregistered map
        raise ValueError(f"unknown SMAC map {name!r}") from None
    return SC2SMACEnv(env)


class SC2SMACEnv:
    """Real ``StarCraft2Env`` with the project's conventions made explicit.

    - ``reset()`` always returns ``(obs, state)`` (some SMAC versions return nothing).
    - ``step()`` returns ``(float, bool, info)`` with ``battle_won``, ``dead_allies`` and
      ``dead_enemies`` always present and ``episode_limit=True`` when the time limit ended the
      episode (SMAC sets it only with ``continuing_episode=True``), like the builtin backend.
    - ``snapshot()`` draws from SMAC's unit protos for ``render.py``; SC2's raw API does not
      report hits, so ``shots`` is empty and ``target`` is each unit's engaged target.
    Everything else is forwarded to the wrapped env (``self.env``).
    """

    def __init__(self, env: Any) -> None:
        self.env = env
        self._steps = 0

    # attributes of the interface
    @property
    def map_name(self) -> str:
        return self.env.map_name

    @property
    def n_agents(self) -> int:
        return int(self.env.n_agents)

    @property
    def n_enemies(self) -> int:
        return int(self.env.n_enemies)

    @property
    def n_actions(self) -> int:
        return int(self.env.get_total_actions())

    @property
    def episode_limit(self) -> int:
        return int(self.env.episode_limit)

    @property
    def episode_steps(self) -> int:
        return self._steps

    def reset(self) -> tuple[list[np.ndarray], np.ndarray]:
        self.env.reset()
        self._steps = 0
        return self.env.get_obs(), self.env.get_state()

    def step(self, actions: Sequence[int] | np.ndarray) -> tuple[float, bool, dict[str, Any]]:
        reward, terminated, info = self.env.step([int(a) for a in actions])
        self._steps += 1
        info = dict(info or {})
        info.setdefault("battle_won", False)
        if "dead_allies" not in info or "dead_enemies" not in info:
            # SMAC returns {} after a lost connection (it restarts the game): count from units
            info["dead_allies"] = sum(u.health == 0 for u in self.env.agents.values())
            info["dead_enemies"] = sum(u.health == 0 for u in self.env.enemies.values())
        if (terminated and not info["battle_won"] and self._steps >= self.episode_limit
                and info["dead_allies"] < self.n_agents and info["dead_enemies"] < self.n_enemies):
            info["episode_limit"] = True
        return float(reward), bool(terminated), info

    def get_obs(self) -> list[np.ndarray]:
        return self.env.get_obs()

    def get_obs_agent(self, agent_id: int) -> np.ndarray:
        return self.env.get_obs_agent(agent_id)

    def get_state(self) -> np.ndarray:
        return self.env.get_state()

    def get_avail_actions(self) -> list[list[int]]:
        return self.env.get_avail_actions()

    def get_avail_agent_actions(self, agent_id: int) -> list[int]:
        return self.env.get_avail_agent_actions(agent_id)

    def get_obs_size(self) -> int:
        return int(self.env.get_obs_size())

    def get_state_size(self) -> int:
        return int(self.env.get_state_size())

    def get_total_actions(self) -> int:
        return int(self.env.get_total_actions())

    def get_env_info(self) -> dict[str, Any]:
        return self.env.get_env_info()

    def seed(self, seed: int | None = None) -> int | None:
        """Return the seed; with an argument, set it for the next game launch (SMAC seeds the
        game once, when StarCraft II starts; a running game cannot be reseeded)."""
        if seed is not None:
            self.env._seed = int(seed)
        return self.env.seed()

    def close(self) -> None:
        self.env.close()

    def snapshot(self) -> dict[str, Any]:
        """Unit positions and health in the builtin's snapshot layout (allies, then enemies)."""
        env = self.env
        units = [env.agents[i] for i in range(self.n_agents)]
        units += [env.enemies[j] for j in range(self.n_enemies)]
        ally_names = {getattr(env, f"{n}_id", 0): n for n in ("marine", "stalker", "zealot")}
        ally_names.pop(0, None)  # ids SMAC left unset for this map
        index = {u.tag: k for k, u in enumerate(units)}
        names, targets = [], []
        for k, u in enumerate(units):
            table = ally_names if k < self.n_agents else _ENEMY_TYPE_NAMES
            names.append(table.get(u.unit_type, f"type_{u.unit_type}"))
            tag = getattr(u, "engaged_target_tag", 0)
            targets.append(index.get(tag, -1) if u.health > 0 and tag else -1)
        grid = getattr(env, "pathing_grid", None)
        # SMAC indexes its pathing grid [x, y]; snapshots use [y, x]
        pathable = (np.asarray(grid, dtype=bool).T if grid is not None
                    else np.ones((32, 32), dtype=bool))
        f = lambda attr: np.array([float(getattr(u, attr)) for u in units])
        return {
            "x": np.array([u.pos.x for u in units], dtype=float),
            "y": np.array([u.pos.y for u in units], dtype=float),
            "health": f("health"),
            "shield": f("shield"),
            "health_max": f("health_max"),
            "shield_max": f("shield_max"),
            "radius": f("radius"),
            "alive": np.array([u.health > 0 for u in units], dtype=bool),
            "team": np.array([0] * self.n_agents + [1] * self.n_enemies, dtype=int),
            "unit_type": names,
            "target": np.array(targets, dtype=int),
            "shots": [],
            "pathable": pathable,
            "t": self._steps,
            "map_name": self.map_name,
            "n_agents": self.n_agents,
        }

    def __getattr__(self, name: str) -> Any:
        # only reached for attributes not defined above: forward to StarCraft2Env
        if name == "env":
            raise AttributeError(name)
        return getattr(self.env, name)


__all__ = [
    "SC2_DEFAULT_FLAGS",
    "SC2SMACEnv",
    "SC2Unavailable",
    "default_sc2_path",
    "make_sc2_env",
    "sc2_available",
    "sc2_unavailable_reason",
]
