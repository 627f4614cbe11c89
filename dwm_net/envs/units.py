"""Unit types of the four SMAC scenarios, in SMAC's time base.

Times are in game loops (16 loops = 1 game-second at Normal speed; one SMAC step = 8 loops).
Distances are in map units. Values come from ``shared/smac-spec.md``; the attack wind-ups
and projectile speed are not in SMAC's sources and are documented choices (docs/SIMULATOR.md).
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np

LOOPS_PER_SECOND = 16.0  # game loops per game-second (Normal speed)
LOOPS_PER_STEP = 8  # SMAC step_mul


@dataclass(frozen=True)
class UnitType:
    name: str
    race: str  # "T", "P", "Z"
    health: float
    shield: float
    armor: float
    armored: bool  # the Armored attribute (stalker / crawler bonus damage)
    damage: float  # per hit
    bonus_armored: float  # extra damage per hit against Armored targets
    hits: int  # hits per attack (zealot: 2, resolved separately)
    range: float  # weapon range, edge to edge
    cooldown_s: float  # weapon period in game-seconds
    speed_s: float  # map units per game-second
    radius: float
    state_max_cooldown: float  # SMAC's normaliser for weapon_cooldown in the state (loops)
    windup_loops: int  # damage point: loops between starting an attack and its damage
    projectile_speed_s: float  # 0 = the damage applies at the damage point
    static: bool = False  # structures never move
    # A melee unit keeps chasing its target while it stays in scan range (the spec's zealot); any
    # other unit drops a target that leaves its weapon range and acquires again (kernel `_acquire`).
    melee: bool = False
    zerg_regen_s: float = 0.0  # HP per game-second
    shield_regen_s: float = 2.0  # shield per game-second, after the delay
    shield_regen_delay_s: float = 10.0
    # SC2's random extra delay on each attack period, game-seconds
    delay_lo_s: float = -0.0625
    delay_hi_s: float = 0.125

    @property
    def scan_range(self) -> float:
        """Auto-acquire range (edge to edge): weapon range for static defence, else max(5, r+0.5)."""
        return self.range if self.static else max(5.0, self.range + 0.5)


MARINE = UnitType("marine", "T", 45, 0, 0, False, 6, 0, 1, 5, 0.861, 2.25, 0.375, 15, 1, 0.0)
STALKER = UnitType("stalker", "P", 80, 80, 1, True, 13, 5, 1, 6, 1.87, 2.9531, 0.625, 35, 1, 16.0)
ZEALOT = UnitType("zealot", "P", 100, 50, 1, False, 8, 0, 2, 0.1, 1.2, 2.25, 0.5, 22, 1, 0.0, melee=True)
SPINE_CRAWLER = UnitType(
    "spine_crawler", "Z", 300, 0, 2, True, 25, 5, 1, 7, 1.85, 0.0, 1.0, 35, 4, 0.0,
    static=True, zerg_regen_s=0.2734,
)
UNIT_TYPES: dict[str, UnitType] = {u.name: u for u in (MARINE, STALKER, ZEALOT, SPINE_CRAWLER)}

# Columns of the per-unit parameter table the kernel reads (see kernel.py).
P_HPMAX, P_SHMAX, P_ARMOR, P_ARMORED, P_DMG, P_BONUS, P_HITS, P_RANGE, P_PERIOD = range(9)
P_SPEED, P_RADIUS, P_WINDUP, P_PROJ, P_STATIC, P_REGEN, P_SHREGEN, P_SHDELAY = range(9, 17)
P_DLO, P_DHI, P_SCAN, P_MELEE = range(17, 21)
N_PARAMS = 21


def param_row(u: UnitType) -> np.ndarray:
    """One row of the kernel's parameter table, converted to loops and units-per-loop."""
    row = np.zeros(N_PARAMS)
    row[P_HPMAX], row[P_SHMAX], row[P_ARMOR] = u.health, u.shield, u.armor
    row[P_ARMORED], row[P_DMG], row[P_BONUS] = float(u.armored), u.damage, u.bonus_armored
    row[P_HITS], row[P_RANGE] = u.hits, u.range
    row[P_PERIOD] = u.cooldown_s * LOOPS_PER_SECOND
    row[P_SPEED] = u.speed_s / LOOPS_PER_SECOND
    row[P_RADIUS], row[P_WINDUP] = u.radius, u.windup_loops
    row[P_PROJ] = u.projectile_speed_s / LOOPS_PER_SECOND
    row[P_STATIC] = float(u.static)
    row[P_REGEN] = u.zerg_regen_s / LOOPS_PER_SECOND
    row[P_SHREGEN] = u.shield_regen_s / LOOPS_PER_SECOND if u.shield > 0 else 0.0
    row[P_SHDELAY] = u.shield_regen_delay_s * LOOPS_PER_SECOND
    row[P_DLO] = u.delay_lo_s * LOOPS_PER_SECOND
    row[P_DHI] = u.delay_hi_s * LOOPS_PER_SECOND
    row[P_SCAN] = u.scan_range
    row[P_MELEE] = float(u.melee)
    return row


def override(u: UnitType, **changes: float) -> UnitType:
    """A copy of ``u`` with some fields changed (e.g. to study a different wind-up)."""
    names = {f.name for f in fields(UnitType)}
    bad = sorted(set(changes) - names)
    if bad:
        raise ValueError(f"unknown unit field(s) {bad}; valid: {sorted(names)}")
    return UnitType(**{**{f.name: getattr(u, f.name) for f in fields(UnitType)}, **changes})
