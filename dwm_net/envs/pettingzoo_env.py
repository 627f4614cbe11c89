"""PettingZoo ``ParallelEnv`` over a SMAC-interface env (builtin simulator or real SMAC).

Conventions:
- Agents are ``agent_0 .. agent_{n-1}`` in SMAC's agent-id order.
- Observations are float32 vectors in ``Box(-1, 1, (obs_size,))`` (every SMAC feature is a
  flag, a fraction or a distance over the sight range); ``infos[agent]["action_mask"]`` is the
  int8 availability (PettingZoo's convention for masks outside the observation).
- Rewards: SMAC's team reward, given to every agent.
- Dead agents stay in ``agents`` until the episode ends, as in SMAC: their observation is
  zeros and their mask allows only no-op (0). Removing them mid-episode would change the
  joint-action shape that centralised learners and SMAC's ``state`` rely on. When the episode
  ends every agent gets ``terminations`` (battle decided) or ``truncations`` (the episode limit
  ran out) and ``agents`` becomes empty.
- Unavailable or missing actions are replaced by stop (alive) or no-op (dead) and flagged in
  ``infos[agent]["action_replaced"]``, because PettingZoo's tools (``parallel_api_test``,
  ``action_space.sample()``) ignore masks kept in ``infos``; pass ``strict=True`` to raise.
- Each agent's info also carries SMAC's step info (``battle_won``, ``dead_allies``, ...).
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

try:
    from gymnasium import spaces
    from pettingzoo import ParallelEnv
except ImportError:  # optional dependency
    raise ImportError(
        "the PettingZoo wrapper needs pettingzoo: pip install 'dwm-net[pettingzoo]'"
    ) from None

NO_OP, STOP = 0, 1


class SMACParallelEnv(ParallelEnv):
    """A PettingZoo parallel view of one SMAC-interface env (``self.env``)."""

    metadata: ClassVar[dict[str, Any]] = {"name": "dwm_net_smac_v0", "render_modes": [], "is_parallelizable": True}

    def __init__(self, env: Any, *, strict: bool = False) -> None:
        self.env = env
        self.strict = strict
        self.render_mode = None
        n = int(env.n_agents)
        self.possible_agents: list[str] = [f"agent_{i}" for i in range(n)]
        self.agents: list[str] = []
        self._index = {a: i for i, a in enumerate(self.possible_agents)}
        self.n_actions = int(env.get_total_actions())
        obs_size, state_size = int(env.get_obs_size()), int(env.get_state_size())
        # One space object per agent, reused: PettingZoo requires the same object every call.
        self.observation_spaces = {
            a: spaces.Box(-1.0, 1.0, (obs_size,), np.float32) for a in self.possible_agents
        }
        self.action_spaces = {a: spaces.Discrete(self.n_actions) for a in self.possible_agents}
        # Weapon-cooldown fractions can exceed 1 (SC2's random attack delay), so no upper bound;
        # every other state feature lies in [-1, 1].
        self.state_space = spaces.Box(-1.0, np.inf, (state_size,), np.float32)

    # ------------------------------------------------------------------ PettingZoo API
    def observation_space(self, agent: str) -> spaces.Box:
        return self.observation_spaces[agent]

    def action_space(self, agent: str) -> spaces.Discrete:
        return self.action_spaces[agent]

    def reset(
        self, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[dict[str, np.ndarray], dict[str, dict[str, Any]]]:
        if seed is not None:
            self.env.seed(int(seed))  # builtin: reseeds from this reset on
            for i, a in enumerate(self.possible_agents):
                self.action_spaces[a].seed(int(seed) + i)
        self.env.reset()
        self.agents = list(self.possible_agents)
        return self._observations(), {a: {"action_mask": m} for a, m in self._masks().items()}

    def step(
        self, actions: dict[str, int]
    ) -> tuple[
        dict[str, np.ndarray],
        dict[str, float],
        dict[str, bool],
        dict[str, bool],
        dict[str, dict[str, Any]],
    ]:
        if not self.agents:
            raise RuntimeError("the episode has ended; call reset() before step()")
        unknown = set(actions) - set(self._index)
        if unknown:
            raise ValueError(
                f"unknown agent(s) {sorted(unknown)}; agents are {self.possible_agents}"
            )
        masks = self._masks()
        joint: list[int] = []
        replaced: dict[str, bool] = {}
        for agent in self.possible_agents:
            mask = masks[agent]
            a = actions.get(agent)
            ok = a is not None and 0 <= int(a) < self.n_actions and mask[int(a)] == 1
            if not ok:
                if self.strict:
                    avail = np.flatnonzero(mask).tolist()
                    raise ValueError(f"{agent} cannot perform action {a!r} (available: {avail})")
                a = STOP if mask[STOP] else NO_OP
            replaced[agent] = not ok
            joint.append(int(a))

        reward, terminated, info = self.env.step(joint)
        truncated = bool(terminated and info.get("episode_limit", False))
        terminated = bool(terminated) and not truncated

        obs = self._observations()
        new_masks = self._masks()
        rewards = {a: float(reward) for a in self.agents}
        terminations = {a: terminated for a in self.agents}
        truncations = {a: truncated for a in self.agents}
        infos = {
            a: {**info, "action_mask": new_masks[a], "action_replaced": replaced[a]}
            for a in self.agents
        }
        if terminated or truncated:
            self.agents = []
        return obs, rewards, terminations, truncations, infos

    def state(self) -> np.ndarray:
        return np.asarray(self.env.get_state(), dtype=np.float32)

    def render(self) -> None:
        raise NotImplementedError("use dwm_net.envs.render.render_episode to draw episodes")

    def close(self) -> None:
        self.env.close()

    # ------------------------------------------------------------------ helpers
    def action_mask(self, agent: str) -> np.ndarray:
        """int8 availability of ``agent``'s actions right now."""
        return np.asarray(self.env.get_avail_agent_actions(self._index[agent]), dtype=np.int8)

    def _masks(self) -> dict[str, np.ndarray]:
        avail = np.asarray(self.env.get_avail_actions(), dtype=np.int8)
        return {a: avail[i].copy() for i, a in enumerate(self.possible_agents)}

    def _observations(self) -> dict[str, np.ndarray]:
        obs = self.env.get_obs()
        return {a: np.asarray(obs[i], dtype=np.float32) for i, a in enumerate(self.possible_agents)}


def make_parallel_env(
    name: str, seed: int = 0, backend: str = "builtin", *, strict: bool = False, **env_kwargs: Any
) -> SMACParallelEnv:
    """A PettingZoo ``ParallelEnv`` for SMAC scenario ``name`` on ``backend`` (builtin or sc2)."""
    from . import make_env

    return SMACParallelEnv(make_env(name, seed=seed, backend=backend, **env_kwargs), strict=strict)


__all__ = ["SMACParallelEnv", "make_parallel_env"]
