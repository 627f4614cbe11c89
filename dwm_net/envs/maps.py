"""The four SMAC scenarios: spawns, pathing, enemy orders, limits (shared/smac-spec.md)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .units import MARINE, SPINE_CRAWLER, STALKER, ZEALOT, UnitType

MAP_SIZE = 32
CENTER = (16.0, 16.0)
MAX_DISTANCE = 32.0


@dataclass(frozen=True)
class MapSpec:
    name: str
    allies: tuple[tuple[UnitType, float, float], ...]  # (type, x, y) in agent-id order
    enemies: tuple[tuple[UnitType, float, float], ...]
    episode_limit: int
    unit_type_bits: int
    # (y_lo, y_hi, x_lo, x_hi) inclusive cell ranges that are pathable; everything else blocks
    pathable_rows: tuple[tuple[int, int, int, int], ...]
    # Enemy order: "static" (idle, auto-acquires), or attack-move to `amove_to`; if `amove_x_range`
    # is set, the destination's x is drawn uniformly from it each episode.
    enemy_order: str = "amove"
    amove_to: tuple[float, float] = (9.0, 16.0)
    amove_x_range: tuple[float, float] | None = None

    @property
    def n_agents(self) -> int:
        return len(self.allies)

    @property
    def n_enemies(self) -> int:
        return len(self.enemies)

    @property
    def ally_race(self) -> str:
        return self.allies[0][0].race

    @property
    def enemy_race(self) -> str:
        return self.enemies[0][0].race

    def pathing_grid(self) -> np.ndarray:
        """(32, 32) uint8, indexed [y, x]; 1 = pathable."""
        grid = np.zeros((MAP_SIZE, MAP_SIZE), dtype=np.uint8)
        for y0, y1, x0, x1 in self.pathable_rows:
            grid[y0 : y1 + 1, x0 : x1 + 1] = 1
        return grid

    def max_reward(self) -> float:
        """SMAC's normaliser: 10 per enemy death + 200 for the win + all enemy health and shields."""
        return 10.0 * self.n_enemies + 200.0 + sum(u.health + u.shield for u, _, _ in self.enemies)


def _column(types: list[UnitType], cx: float, cy: float) -> tuple[tuple[UnitType, float, float], ...]:
    """Pack a group in a column centred on (cx, cy), edge to edge with a small gap, no overlap.

    Listed in SMAC's agent-id order, (unit type, x, y): the column runs up in y for each type.
    """
    gap = 0.1
    sizes = [2 * u.radius + gap for u in types]
    y = cy - sum(sizes) / 2
    out = []
    for u, s in zip(types, sizes):
        out.append((u, cx, round(y + s / 2, 4)))
        y += s
    return tuple(out)


_OPEN_BAND = ((8, 23, 0, 31),)

MAPS: dict[str, MapSpec] = {
    "3m": MapSpec(
        "3m", _column([MARINE] * 3, 9, 16), _column([MARINE] * 3, 23, 16), 60, 0, _OPEN_BAND
    ),
    "2s3z": MapSpec(
        "2s3z",
        _column([STALKER] * 2 + [ZEALOT] * 3, 9, 16),
        _column([STALKER] * 2 + [ZEALOT] * 3, 23, 16),
        120,
        2,
        _OPEN_BAND,
    ),
    "2m_vs_1z": MapSpec(
        "2m_vs_1z",
        ((MARINE, 13.0, 12.0), (MARINE, 19.0, 12.0)),
        ((ZEALOT, 16.0, 19.0),),
        150,
        0,
        ((6, 7, 10, 21), (8, 9, 8, 23), (10, 21, 6, 25), (22, 23, 8, 23), (24, 25, 10, 21)),
        amove_to=(16.0, 12.0),
        amove_x_range=(13.0, 19.0),
    ),
    "2s_vs_1sc": MapSpec(
        "2s_vs_1sc",
        ((STALKER, 11.1208, 10.338), (STALKER, 16.976, 10.3662)),
        ((SPINE_CRAWLER, 13.92, 20.0397),),
        300,
        0,
        ((8, 19, 8, 19), (20, 21, 10, 17), (22, 23, 12, 15)),
        enemy_order="static",
    ),
}


def get_map(name: str) -> MapSpec:
    try:
        return MAPS[name]
    except KeyError:
        raise ValueError(
            f"unknown map {name!r}; choose one of: {', '.join(MAPS)}"
        ) from None
