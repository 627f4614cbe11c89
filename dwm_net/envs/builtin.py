"""The built-in SMAC simulator: SMAC's ``StarCraft2Env`` interface over a numba kernel.

Same interface, sizes, rules, time base and reward as SMAC (shared/smac-spec.md); the
differences from StarCraft II are listed in docs/SIMULATOR.md.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from . import kernel as K
from .maps import CENTER, MAX_DISTANCE, MapSpec, get_map
from .units import (
    LOOPS_PER_STEP,
    N_PARAMS,
    P_HPMAX,
    P_RADIUS,
    P_RANGE,
    P_SHMAX,
    UnitType,
    override,
    param_row,
)

_MOVE_DIRS = ((0.0, 1.0), (0.0, -1.0), (1.0, 0.0), (-1.0, 0.0))  # north, south, east, west
N_ACTIONS_NO_ATTACK = 6


class BuiltinSMAC:
    """A SMAC scenario simulated loop by loop (8 game loops per step), no StarCraft II needed.

    Args:
        map_name: one of ``3m``, ``2m_vs_1z``, ``2s_vs_1sc``, ``2s3z``.
        seed: seeds the attack-delay draws and per-episode randomness (2m_vs_1z's zealot).
        unit_overrides: per unit-type field changes, e.g. ``{"spine_crawler": {"windup_loops": 2}}``.
        Other arguments are SMAC's reward settings with SMAC's defaults.
    """

    move_amount = 2.0
    sight_range = 9.0
    shoot_range = 6.0

    def __init__(
        self,
        map_name: str = "2s_vs_1sc",
        seed: int | None = 0,
        *,
        unit_overrides: Mapping[str, Mapping[str, float]] | None = None,
        reward_death_value: float = 10.0,
        reward_win: float = 200.0,
        reward_defeat: float = 0.0,
        reward_negative_scale: float = 0.5,
        reward_scale: bool = True,
        reward_scale_rate: float = 20.0,
        reward_only_positive: bool = True,
    ) -> None:
        self.map: MapSpec = get_map(map_name)
        self.map_name = map_name
        self.n_agents = self.map.n_agents
        self.n_enemies = self.map.n_enemies
        self.n_actions = N_ACTIONS_NO_ATTACK + self.n_enemies
        self.episode_limit = self.map.episode_limit
        self.reward_death_value = reward_death_value
        self.reward_win = reward_win
        self.reward_defeat = reward_defeat
        self.reward_negative_scale = reward_negative_scale
        self.reward_scale = reward_scale
        self.reward_scale_rate = reward_scale_rate
        self.reward_only_positive = reward_only_positive

        overrides = dict(unit_overrides or {})
        types: list[UnitType] = []
        for u, _, _ in self.map.allies + self.map.enemies:
            types.append(override(u, **overrides[u.name]) if u.name in overrides else u)
        unknown = set(overrides) - {u.name for u in types}
        if unknown:
            raise ValueError(f"unit_overrides names unit types not on {map_name}: {sorted(unknown)}")
        self._types = types
        n = len(types)
        self._P = np.stack([param_row(u) for u in types]) if n else np.zeros((0, N_PARAMS))
        self._spawn = np.array([(x, y) for _, x, y in self.map.allies + self.map.enemies])
        self._team = np.array([0.0] * self.n_agents + [1.0] * self.n_enemies)
        type_names = list(dict.fromkeys(u.name for u in types[: self.n_agents]))
        bits = self.map.unit_type_bits
        self._type_id = np.array(
            [type_names.index(u.name) if bits and u.name in type_names else 0 for u in types],
            dtype=np.int64,
        )
        self._max_cd = np.array([u.state_max_cooldown for u in types])
        self._sh_ally = int(self.map.ally_race == "P")
        self._sh_enemy = int(self.map.enemy_race == "P")
        self._grid = self.map.pathing_grid()
        self.max_reward = self.map.max_reward()

        nf_e = 5 + self._sh_enemy + bits
        nf_a = 5 + self._sh_ally + bits
        self._obs_size = 4 + self.n_enemies * nf_e + (self.n_agents - 1) * nf_a + 1 + self._sh_ally + bits
        self._state_nolast = (
            self.n_agents * (4 + self._sh_ally + bits) + self.n_enemies * (3 + self._sh_enemy + bits)
        )
        self._state_size = self._state_nolast + self.n_agents * self.n_actions

        self._S = np.zeros((n, K.N_STATE))
        self._Q = np.zeros((K.PROJ_CAPACITY, K.N_PROJ))
        self._shots = np.zeros((K.SHOT_CAPACITY, 3), dtype=np.int64)
        self._n_shots = 0
        self._avail = np.zeros((self.n_agents, self.n_actions), dtype=np.int8)
        self._obs = np.zeros((self.n_agents, self._obs_size), dtype=np.float32)
        self._state = np.zeros(self._state_size, dtype=np.float32)
        self._last_action = np.zeros((self.n_agents, self.n_actions), dtype=np.float32)
        self._seed = seed
        self._rng = np.random.default_rng(seed)
        self._loop = 0
        self._episode_steps = 0
        self._episode_count = 0
        self._terminated = True
        self._fresh = False  # obs/state caches are valid
        self.reset()

    # ------------------------------------------------------------------ SMAC interface
    def reset(self) -> tuple[list[np.ndarray], np.ndarray]:
        """Start a new episode; returns (observations, state) like SMAC."""
        S = self._S
        S[:] = 0.0
        S[:, K.S_X] = self._spawn[:, 0]
        S[:, K.S_Y] = self._spawn[:, 1]
        S[:, K.S_HP] = self._P[:, P_HPMAX]
        S[:, K.S_SH] = self._P[:, P_SHMAX]
        S[:, K.S_ALIVE] = 1.0
        S[:, K.S_TEAM] = self._team
        S[:, K.S_OTGT] = -1.0
        S[:, K.S_TGT] = -1.0
        S[:, K.S_WIND] = -1.0
        S[:, K.S_WTGT] = -1.0
        S[:, K.S_LASTDMG] = -1e9
        S[: self.n_agents, K.S_ORDER] = K.O_IDLE
        ex, ey = self.map.amove_to
        if self.map.amove_x_range is not None:
            ex = float(self._rng.uniform(*self.map.amove_x_range))
        enemies = slice(self.n_agents, None)
        if self.map.enemy_order == "static":
            S[enemies, K.S_ORDER] = K.O_IDLE
        else:
            S[enemies, K.S_ORDER] = K.O_AMOVE
            S[enemies, K.S_OX] = ex
            S[enemies, K.S_OY] = ey
        self._Q[:] = 0.0
        self._n_shots = 0
        self._loop = 0
        self._episode_steps = 0
        self._episode_count += 1
        self._terminated = False
        self._dead_enemy = np.zeros(self.n_enemies, dtype=bool)
        self._dead_ally = np.zeros(self.n_agents, dtype=bool)
        self._last_action[:] = 0.0
        self._won = False
        self._refresh()
        return self.get_obs(), self.get_state()

    def step(self, actions: Sequence[int] | np.ndarray) -> tuple[float, bool, dict[str, Any]]:
        """Apply one action per agent, run 8 game loops; returns (reward, terminated, info)."""
        if self._terminated:
            raise RuntimeError("the episode has ended; call reset() before step()")
        acts = self._check_actions(actions)
        S = self._S
        self._last_action[:] = 0.0
        self._last_action[np.arange(self.n_agents), acts] = 1.0
        for a, act in enumerate(acts.tolist()):
            if act == 0:  # no-op: the previous order goes on
                continue
            if act >= N_ACTIONS_NO_ATTACK:
                target = self.n_agents + act - N_ACTIONS_NO_ATTACK
                if S[a, K.S_ORDER] == K.O_ATTACK and S[a, K.S_OTGT] == target:
                    continue  # the same attack order again keeps the attack in progress
                S[a, K.S_ORDER] = K.O_ATTACK
                S[a, K.S_OTGT] = target
            elif act == 1:
                S[a, K.S_ORDER] = K.O_STOP
            else:
                dx, dy = _MOVE_DIRS[act - 2]
                S[a, K.S_ORDER] = K.O_MOVE
                S[a, K.S_OX] = S[a, K.S_X] + dx * self.move_amount
                S[a, K.S_OY] = S[a, K.S_Y] + dy * self.move_amount
            S[a, K.S_WIND] = -1.0  # a new order interrupts a wind-up
            S[a, K.S_WTGT] = -1.0

        e = slice(self.n_agents, None)
        prev_enemy = S[e, K.S_HP] + S[e, K.S_SH]
        prev_ally = S[: self.n_agents, K.S_HP] + S[: self.n_agents, K.S_SH]
        self._advance(LOOPS_PER_STEP)
        self._episode_steps += 1

        reward = self._reward(prev_enemy, prev_ally)
        alive = S[:, K.S_ALIVE] != 0.0
        n_ally_alive = int(alive[: self.n_agents].sum())
        n_enemy_alive = int(alive[self.n_agents :].sum())
        info: dict[str, Any] = {"battle_won": False}
        terminated = False
        if n_ally_alive == 0 or n_enemy_alive == 0:
            terminated = True
            if n_ally_alive > 0:
                self._won = True
                info["battle_won"] = True
                reward += self.reward_win
            elif n_enemy_alive > 0:
                reward += self.reward_defeat
        elif self._episode_steps >= self.episode_limit:
            terminated = True
            info["episode_limit"] = True
        info["dead_allies"] = self.n_agents - n_ally_alive
        info["dead_enemies"] = self.n_enemies - n_enemy_alive
        self._terminated = terminated
        return float(self.scale_reward(reward)), terminated, info

    def scale_reward(self, reward: float) -> float:
        """A raw reward in the units `step` returns (with `reward_scale`, the map's largest
        possible episode return maps to `reward_scale_rate`)."""
        return reward / (self.max_reward / self.reward_scale_rate) if self.reward_scale else reward

    def get_obs(self) -> list[np.ndarray]:
        return list(self._obs.copy())

    def get_obs_agent(self, agent_id: int) -> np.ndarray:
        return self._obs[self._agent(agent_id)].copy()

    def get_state(self) -> np.ndarray:
        return self._state.copy()

    def get_avail_actions(self) -> list[list[int]]:
        return self._avail.tolist()

    def get_avail_agent_actions(self, agent_id: int) -> list[int]:
        return self._avail[self._agent(agent_id)].tolist()

    def get_obs_size(self) -> int:
        return self._obs_size

    def get_state_size(self) -> int:
        return self._state_size

    def get_total_actions(self) -> int:
        return self.n_actions

    def get_env_info(self) -> dict[str, int]:
        return {
            "state_shape": self._state_size,
            "obs_shape": self._obs_size,
            "n_actions": self.n_actions,
            "n_agents": self.n_agents,
            "episode_limit": self.episode_limit,
        }

    def seed(self, seed: int | None = None) -> int | None:
        """Return the seed; with an argument, reseed (takes effect from the next reset)."""
        if seed is not None:
            self._seed = seed
            self._rng = np.random.default_rng(seed)
        return self._seed

    def close(self) -> None:
        pass

    def render(self, mode: str = "human") -> None:
        raise NotImplementedError("use dwm_net.envs.render.render_episode (dwm-net env render)")

    # ------------------------------------------------------------------ fast array access
    @property
    def avail_array(self) -> np.ndarray:
        """(n_agents, n_actions) int8 availability, without list conversion (read-only view)."""
        v = self._avail.view()
        v.flags.writeable = False
        return v

    @property
    def obs_array(self) -> np.ndarray:
        """(n_agents, obs_size) float32 observations (read-only view)."""
        v = self._obs.view()
        v.flags.writeable = False
        return v

    @property
    def episode_steps(self) -> int:
        return self._episode_steps

    # ------------------------------------------------------------------ inspection and set-up
    def snapshot(self) -> dict[str, Any]:
        """Every unit's position, health, target and the shots of the last step (for drawing)."""
        S, P = self._S, self._P
        wind_or_order = np.where(S[:, K.S_WTGT] >= 0, S[:, K.S_WTGT], S[:, K.S_TGT])
        order_tgt = np.where(S[:, K.S_ORDER] == K.O_ATTACK, S[:, K.S_OTGT], -1)
        target = np.where(self._team == 0, order_tgt, wind_or_order).astype(int)
        target[S[:, K.S_ALIVE] == 0] = -1
        return {
            "x": S[:, K.S_X].copy(),
            "y": S[:, K.S_Y].copy(),
            "health": S[:, K.S_HP].copy(),
            "shield": S[:, K.S_SH].copy(),
            "health_max": P[:, P_HPMAX].copy(),
            "shield_max": P[:, P_SHMAX].copy(),
            "radius": P[:, P_RADIUS].copy(),
            "range": P[:, P_RANGE].copy(),
            "cooldown": S[:, K.S_CD].copy(),
            "alive": S[:, K.S_ALIVE] != 0.0,
            "team": self._team.astype(int),
            "unit_type": [u.name for u in self._types],
            "target": target,
            "shots": [(int(i), int(j)) for _, i, j in self._shots[: self._n_shots]],
            "pathable": self._grid.astype(bool),
            "t": self._episode_steps,
            "map_name": self.map_name,
            "n_agents": self.n_agents,
        }

    def set_unit(self, index: int, **values: float) -> None:
        """Put a unit in a constructed situation (tests, studies).

        ``index`` counts allies first, then enemies. Keys: x, y, health, shield, cooldown
        (game loops until the weapon is ready), alive (0/1).
        """
        cols = {"x": K.S_X, "y": K.S_Y, "health": K.S_HP, "shield": K.S_SH, "cooldown": K.S_CD,
                "alive": K.S_ALIVE}
        bad = sorted(set(values) - set(cols))
        if bad:
            raise ValueError(f"set_unit: unknown field(s) {bad}; valid: {sorted(cols)}")
        if not 0 <= index < len(self._S):
            raise ValueError(f"set_unit: unit index {index} out of range 0..{len(self._S) - 1}")
        for k, v in values.items():
            self._S[index, cols[k]] = float(v)
        if self._S[index, K.S_HP] <= 0.0:
            self._S[index, K.S_ALIVE] = 0.0
        self._refresh()

    def advance_loops(self, n_loops: int) -> list[tuple[int, int, int]]:
        """Run game loops without an agent step (tests); returns (loop, shooter, target) hits."""
        self._advance(n_loops)
        return [tuple(int(v) for v in row) for row in self._shots[: self._n_shots]]

    # ------------------------------------------------------------------ internals
    def _advance(self, n_loops: int) -> None:
        rnd = self._rng.random(8 * len(self._S) + 8)
        self._n_shots = int(K.advance(self._S, self._P, self._Q, self._grid, rnd, self._shots,
                                      self._loop, n_loops))
        self._loop += n_loops
        self._refresh()

    def _refresh(self) -> None:
        K.avail_actions(self._S, self._P, self._grid, self.n_agents, self.n_enemies,
                        self.move_amount, self.shoot_range, self._avail)
        K.build_obs(self._S, self._P, self._type_id, self.n_agents, self.n_enemies,
                    self.sight_range, self._sh_enemy, self._sh_ally, self.map.unit_type_bits,
                    self._avail, self._obs)
        K.build_state(self._S, self._P, self._type_id, self._max_cd, self.n_agents,
                      self.n_enemies, self._sh_enemy, self._sh_ally, self.map.unit_type_bits,
                      CENTER[0], CENTER[1], MAX_DISTANCE, MAX_DISTANCE,
                      self._state[: self._state_nolast])
        self._state[self._state_nolast :] = self._last_action.ravel()

    def _reward(self, prev_enemy: np.ndarray, prev_ally: np.ndarray) -> float:
        """SMAC's reward before the win bonus and scaling."""
        S = self._S
        e = slice(self.n_agents, None)
        alive_e = S[e, K.S_ALIVE] != 0.0
        cur_e = S[e, K.S_HP] + S[e, K.S_SH]
        newly_dead = ~alive_e & ~self._dead_enemy
        counted = ~self._dead_enemy
        self._dead_enemy |= newly_dead
        delta_deaths = self.reward_death_value * float(newly_dead.sum())
        delta_enemy = float(np.where(newly_dead, prev_enemy, prev_enemy - cur_e)[counted].sum())
        if self.reward_only_positive:
            return abs(delta_enemy + delta_deaths)
        alive_a = S[: self.n_agents, K.S_ALIVE] != 0.0
        cur_a = S[: self.n_agents, K.S_HP] + S[: self.n_agents, K.S_SH]
        new_dead_a = ~alive_a & ~self._dead_ally
        counted_a = ~self._dead_ally
        self._dead_ally |= new_dead_a
        delta_ally = float(np.where(new_dead_a, prev_ally, prev_ally - cur_a)[counted_a].sum())
        delta_deaths -= self.reward_death_value * self.reward_negative_scale * float(new_dead_a.sum())
        return delta_enemy + delta_deaths - self.reward_negative_scale * delta_ally

    def _agent(self, agent_id: int) -> int:
        if not 0 <= int(agent_id) < self.n_agents:
            raise ValueError(f"agent id {agent_id} out of range 0..{self.n_agents - 1}")
        return int(agent_id)

    def _check_actions(self, actions: Sequence[int] | np.ndarray) -> np.ndarray:
        acts = np.asarray(actions)
        if acts.shape != (self.n_agents,):
            raise ValueError(
                f"expected {self.n_agents} actions (one per agent), got shape {acts.shape}"
            )
        if acts.dtype.kind not in "iu":
            values = actions.tolist() if isinstance(actions, np.ndarray) else list(actions)
            for a, v in enumerate(values):
                if not isinstance(v, (int, np.integer)) or isinstance(v, bool):
                    raise ValueError(f"Agent {a}: action {v!r} is not an integer")  # noqa: TRY004  as SMAC's assertion
            acts = acts.astype(np.int64)
        ok = (acts >= 0) & (acts < self.n_actions)
        ok[ok] = self._avail[np.nonzero(ok)[0], acts[ok]] == 1
        if not ok.all():
            a = int(np.argmin(ok))
            avail = np.nonzero(self._avail[a])[0].tolist()
            raise ValueError(f"Agent {a} cannot perform action {int(acts[a])} (available: {avail})")
        return acts
