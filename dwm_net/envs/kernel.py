"""The simulator's per-game-loop kernel, compiled with numba.

All state lives in small float64 tables (one row per unit, allies first then enemies) so the
hot path has no Python objects; numba compiles it once per process (cached on disk). With
``NUMBA_DISABLE_JIT=1`` (or without numba) the same code runs as plain Python, slowly.

One call to :func:`advance` runs ``n_loops`` game loops. Each loop, in this order:
1. projectiles in flight move; those that arrive hit (they cannot be dodged);
2. every live unit acts in index order: enemies (re)acquire targets (SC2 automatic targeting);
   a unit winding up an attack continues it or cancels it if the target left weapon range;
   otherwise it starts an attack when in range with its weapon ready, chases its target, or
   walks toward its order's destination;
3. instant hits of this loop apply together (no advantage for lower indices), deaths resolve;
4. regeneration (Protoss shields after their delay, Zerg HP), then weapon cooldowns tick.
"""

from __future__ import annotations

import math
import os

import numpy as np

from .units import (
    P_ARMOR,
    P_ARMORED,
    P_BONUS,
    P_DHI,
    P_DLO,
    P_DMG,
    P_HITS,
    P_HPMAX,
    P_MELEE,
    P_PERIOD,
    P_PROJ,
    P_RADIUS,
    P_RANGE,
    P_REGEN,
    P_SCAN,
    P_SHDELAY,
    P_SHMAX,
    P_SHREGEN,
    P_SPEED,
    P_STATIC,
    P_WINDUP,
)

try:  # numba is a dependency; the fallback keeps the env usable (slowly) where it won't import
    if os.environ.get("DWM_NET_NO_JIT"):
        raise ImportError
    from numba import njit
except ImportError:  # pragma: no cover - exercised only without numba
    def njit(*args, **kwargs):  # type: ignore[no-redef]
        if args and callable(args[0]):
            return args[0]
        return lambda f: f

# Columns of the unit state table S (n_units, N_STATE).
S_X, S_Y, S_HP, S_SH, S_CD, S_ALIVE, S_TEAM, S_ORDER, S_OX, S_OY, S_OTGT = range(11)
S_TGT, S_WIND, S_WTGT, S_LASTDMG = range(11, 15)
N_STATE = 15

# Orders (S_ORDER). Allies (team 0) only ever follow their order; enemies (team 1) auto-target.
O_IDLE, O_STOP, O_MOVE, O_ATTACK, O_AMOVE = 0, 1, 2, 3, 4

# Projectile table Q (capacity, N_PROJ).
Q_ACTIVE, Q_TGT, Q_SRC, Q_LEFT = range(4)
N_PROJ = 4
PROJ_CAPACITY = 64

# Shot log: (loop, shooter, target) of every attack whose damage applied (for rendering).
SHOT_CAPACITY = 256

_EPS = 1e-9


@njit(cache=True)
def edge_distance(S, P, i, j):
    dx = S[j, S_X] - S[i, S_X]
    dy = S[j, S_Y] - S[i, S_Y]
    return math.sqrt(dx * dx + dy * dy) - P[i, P_RADIUS] - P[j, P_RADIUS]


@njit(cache=True)
def pathable(grid, x, y):
    if x < 0.0 or y < 0.0 or x >= grid.shape[1] or y >= grid.shape[0]:
        return False
    return grid[int(y), int(x)] != 0


@njit(cache=True)
def _blocked_by_unit(S, P, i, nx, ny):
    """A move is blocked if it brings unit i deeper into another live unit's footprint."""
    for k in range(S.shape[0]):
        if k == i or S[k, S_ALIVE] == 0.0:
            continue
        rr = P[i, P_RADIUS] + P[k, P_RADIUS]
        ndx = S[k, S_X] - nx
        ndy = S[k, S_Y] - ny
        nd2 = ndx * ndx + ndy * ndy
        if nd2 < rr * rr - _EPS:
            odx = S[k, S_X] - S[i, S_X]
            ody = S[k, S_Y] - S[i, S_Y]
            if nd2 < odx * odx + ody * ody - _EPS:
                return True
    return False


@njit(cache=True)
def _try_move(S, P, grid, i, dx, dy):
    """Move unit i by (dx, dy); if blocked, slide along one axis; else stay. Returns moved."""
    x = S[i, S_X]
    y = S[i, S_Y]
    for k in range(3):
        mx = dx if k != 2 else 0.0
        my = dy if k != 1 else 0.0
        if k > 0 and (abs(mx) < _EPS and abs(my) < _EPS):
            continue
        nx = x + mx
        ny = y + my
        if pathable(grid, nx, ny) and not _blocked_by_unit(S, P, i, nx, ny):
            S[i, S_X] = nx
            S[i, S_Y] = ny
            return True
    return False


@njit(cache=True)
def _step_toward(S, P, grid, i, tx, ty, stop_at):
    """Walk unit i toward (tx, ty) at its speed, stopping ``stop_at`` short. True when there."""
    dx = tx - S[i, S_X]
    dy = ty - S[i, S_Y]
    d = math.sqrt(dx * dx + dy * dy)
    left = d - stop_at
    if left <= _EPS:
        return True
    step = min(P[i, P_SPEED], left)
    if step <= 0.0:
        return False
    _try_move(S, P, grid, i, dx / d * step, dy / d * step)
    return step >= left - _EPS


@njit(cache=True)
def apply_hit(S, P, i, j, loop):
    """One hit of unit i on unit j: shields absorb first, the rest minus armor (min 0.5) to HP."""
    raw = P[i, P_DMG]
    if P[j, P_ARMORED] > 0.0:
        raw += P[i, P_BONUS]
    if S[j, S_SH] > 0.0:
        absorbed = min(S[j, S_SH], raw)
        S[j, S_SH] -= absorbed
        rest = raw - absorbed
        if rest > 0.0:
            S[j, S_HP] -= max(rest - P[j, P_ARMOR], 0.5)
    else:
        S[j, S_HP] -= max(raw - P[j, P_ARMOR], 0.5)
    S[j, S_LASTDMG] = loop


@njit(cache=True)
def _acquire(S, P, i):
    """SC2 automatic targeting for enemy unit i: keep a valid target, else the closest in scan.

    Every unit on these maps is a threat with attack priority 20 and a valid primary-weapon
    target, so rules (1)-(3) tie and the closest wins. A target is kept while alive and within
    weapon range (the spec's rule); a melee unit (the zealot) chases it while it stays within
    scan range. A ranged unit whose target steps out of weapon range acquires again: the closest
    in scan range, which is the same unit (so it chases) unless another is closer.
    """
    t = int(S[i, S_TGT])
    if t >= 0:
        if S[t, S_ALIVE] != 0.0:
            keep_range = P[i, P_SCAN] if P[i, P_MELEE] > 0.0 else P[i, P_RANGE]
            if edge_distance(S, P, i, t) <= keep_range + _EPS:
                return t
        S[i, S_TGT] = -1.0
    best = -1
    best_d = 1e18
    for j in range(S.shape[0]):
        if S[j, S_ALIVE] == 0.0 or S[j, S_TEAM] == S[i, S_TEAM]:
            continue
        d = edge_distance(S, P, i, j)
        if d <= P[i, P_SCAN] + _EPS and d < best_d:
            best = j
            best_d = d
    S[i, S_TGT] = float(best)
    return best


@njit(cache=True)
def _fire(S, P, Q, i, j, rnd, ri, pending, n_pending):
    """Unit i's weapon fires at j: damage now (queued) or a projectile; the cooldown starts."""
    if P[i, P_PROJ] > 0.0:
        for q in range(Q.shape[0]):
            if Q[q, Q_ACTIVE] == 0.0:
                d = max(edge_distance(S, P, i, j), 0.0)
                Q[q, Q_ACTIVE] = 1.0
                Q[q, Q_TGT] = j
                Q[q, Q_SRC] = i
                Q[q, Q_LEFT] = max(1.0, math.ceil(d / P[i, P_PROJ]))
                break
    else:
        pending[n_pending, 0] = i
        pending[n_pending, 1] = j
        n_pending += 1
    u = rnd[ri % rnd.shape[0]]
    ri += 1
    S[i, S_CD] += P[i, P_PERIOD] + P[i, P_DLO] + u * (P[i, P_DHI] - P[i, P_DLO])
    S[i, S_WIND] = -1.0
    S[i, S_WTGT] = -1.0
    return ri, n_pending


@njit(cache=True)
def _log_shot(shots, n_shots, loop, i, j):
    if n_shots < shots.shape[0]:
        shots[n_shots, 0] = loop
        shots[n_shots, 1] = i
        shots[n_shots, 2] = j
        n_shots += 1
    return n_shots


@njit(cache=True)
def advance(S, P, Q, grid, rnd, shots, loop0, n_loops):
    """Run ``n_loops`` game loops from loop index ``loop0``. Returns the number of shots logged.

    S: (n, N_STATE) unit state, P: (n, N_PARAMS) unit parameters, Q: (cap, N_PROJ) projectiles,
    grid: (32, 32) pathing [y, x], rnd: uniform(0, 1) draws for attack delays (used cyclically),
    shots: (SHOT_CAPACITY, 3) out: (loop, shooter, target) of each hit that landed.
    """
    n = S.shape[0]
    pending = np.empty((2 * n + 2, 2), dtype=np.int64)
    ri = 0
    n_shots = 0
    for loop in range(loop0, loop0 + n_loops):
        # 1. projectiles
        for q in range(Q.shape[0]):
            if Q[q, Q_ACTIVE] != 0.0:
                Q[q, Q_LEFT] -= 1.0
                if Q[q, Q_LEFT] <= 0.0:
                    Q[q, Q_ACTIVE] = 0.0
                    src = int(Q[q, Q_SRC])
                    tgt = int(Q[q, Q_TGT])
                    if S[tgt, S_ALIVE] != 0.0:
                        for _ in range(int(P[src, P_HITS])):
                            apply_hit(S, P, src, tgt, loop)
                        n_shots = _log_shot(shots, n_shots, loop, src, tgt)
        # 2. decisions
        n_pending = 0
        for i in range(n):
            if S[i, S_ALIVE] == 0.0:
                continue
            order = int(S[i, S_ORDER])
            auto = S[i, S_TEAM] != 0.0
            if S[i, S_WIND] >= 0.0:  # winding up an attack: continue or cancel it
                w = int(S[i, S_WTGT])
                if S[w, S_ALIVE] != 0.0 and edge_distance(S, P, i, w) <= P[i, P_RANGE] + _EPS:
                    S[i, S_WIND] -= 1.0
                    if S[i, S_WIND] <= 0.0:
                        ri, n_pending = _fire(S, P, Q, i, w, rnd, ri, pending, n_pending)
                    continue
                S[i, S_WIND] = -1.0  # cancelled: weapon not fired, cooldown not started
                S[i, S_WTGT] = -1.0
                if auto:
                    S[i, S_TGT] = -1.0
            if auto:
                t = _acquire(S, P, i)
            elif order == O_ATTACK:
                t = int(S[i, S_OTGT])
                if S[t, S_ALIVE] == 0.0:  # the order is done when its target dies
                    S[i, S_ORDER] = O_IDLE
                    t = -1
            else:
                t = -1
            if t >= 0:
                if edge_distance(S, P, i, t) <= P[i, P_RANGE] + _EPS:
                    if S[i, S_CD] <= _EPS:  # ready (tolerant of float rounding)
                        S[i, S_WTGT] = t
                        S[i, S_WIND] = P[i, P_WINDUP]
                        if P[i, P_WINDUP] <= 0.0:
                            ri, n_pending = _fire(S, P, Q, i, t, rnd, ri, pending, n_pending)
                elif P[i, P_STATIC] == 0.0:
                    stop = P[i, P_RANGE] + P[i, P_RADIUS] + P[t, P_RADIUS]
                    _step_toward(S, P, grid, i, S[t, S_X], S[t, S_Y], stop)
            elif P[i, P_STATIC] == 0.0 and (order == O_MOVE or order == O_AMOVE):
                there = _step_toward(S, P, grid, i, S[i, S_OX], S[i, S_OY], 0.0)
                if there and order == O_MOVE:
                    S[i, S_ORDER] = O_IDLE
        # 3. instant hits land together, then deaths
        for k in range(n_pending):
            src = pending[k, 0]
            tgt = pending[k, 1]
            for _ in range(int(P[src, P_HITS])):
                apply_hit(S, P, src, tgt, loop)
            n_shots = _log_shot(shots, n_shots, loop, src, tgt)
        for i in range(n):
            if S[i, S_ALIVE] != 0.0 and S[i, S_HP] <= 0.0:
                S[i, S_ALIVE] = 0.0
                S[i, S_HP] = 0.0
                S[i, S_SH] = 0.0
                S[i, S_WIND] = -1.0
                S[i, S_TGT] = -1.0
        # 4. regeneration and cooldowns
        for i in range(n):
            if S[i, S_ALIVE] == 0.0:
                continue
            if P[i, P_REGEN] > 0.0:
                S[i, S_HP] = min(P[i, P_HPMAX], S[i, S_HP] + P[i, P_REGEN])
            if P[i, P_SHREGEN] > 0.0 and loop - S[i, S_LASTDMG] >= P[i, P_SHDELAY]:
                S[i, S_SH] = min(P[i, P_SHMAX], S[i, S_SH] + P[i, P_SHREGEN])
            if S[i, S_CD] > 0.0:
                S[i, S_CD] -= 1.0
    return n_shots


@njit(cache=True)
def smac_can_move(grid, x, y):
    """SMAC's can_move cell test: int() truncates toward zero, then the bounds check."""
    cx = int(x)
    cy = int(y)
    if cx < 0 or cy < 0 or cx >= grid.shape[1] or cy >= grid.shape[0]:
        return False
    return grid[cy, cx] != 0


@njit(cache=True)
def avail_actions(S, P, grid, n_agents, n_enemies, move_amount, shoot_range, out):
    """SMAC availability into ``out`` (n_agents, 6 + n_enemies) int8."""
    out[:] = 0
    half = move_amount / 2.0
    for a in range(n_agents):
        if S[a, S_ALIVE] == 0.0:
            out[a, 0] = 1  # dead: no-op only
            continue
        out[a, 1] = 1  # stop
        x = S[a, S_X]
        y = S[a, S_Y]
        out[a, 2] = smac_can_move(grid, x, y + half)
        out[a, 3] = smac_can_move(grid, x, y - half)
        out[a, 4] = smac_can_move(grid, x + half, y)
        out[a, 5] = smac_can_move(grid, x - half, y)
        for e in range(n_enemies):
            j = n_agents + e
            if S[j, S_ALIVE] != 0.0:
                dx = S[j, S_X] - x
                dy = S[j, S_Y] - y
                if math.sqrt(dx * dx + dy * dy) <= shoot_range:
                    out[a, 6 + e] = 1


@njit(cache=True)
def build_obs(S, P, type_id, n_agents, n_enemies, sight, sh_enemy, sh_ally, bits, avail, out):
    """SMAC observations into ``out`` (n_agents, obs_size) float32; dead agents get zeros.

    Layout per agent: 4 move flags; per enemy [attackable, d, dx, dy, hp, (shield), (type)];
    per other ally [visible, d, dx, dy, hp, (shield), (type)]; own [hp, (shield), (type)].
    Distances and offsets are divided by the sight range; units beyond it are zero rows.
    """
    out[:] = 0.0
    nf_e = 5 + sh_enemy + bits
    nf_a = 5 + sh_ally + bits
    for a in range(n_agents):
        if S[a, S_ALIVE] == 0.0:
            continue
        x = S[a, S_X]
        y = S[a, S_Y]
        for m in range(4):
            out[a, m] = avail[a, 2 + m]
        base = 4
        for k in range(n_enemies + n_agents):
            if k < n_enemies:
                j = n_agents + k
                o = base + k * nf_e
            else:
                j = k - n_enemies
                if j == a:
                    continue
                slot = j if j < a else j - 1
                o = base + n_enemies * nf_e + slot * nf_a
            if S[j, S_ALIVE] == 0.0:
                continue
            dx = S[j, S_X] - x
            dy = S[j, S_Y] - y
            d = math.sqrt(dx * dx + dy * dy)
            if d >= sight:
                continue
            out[a, o] = avail[a, 6 + k] if k < n_enemies else 1.0
            out[a, o + 1] = d / sight
            out[a, o + 2] = dx / sight
            out[a, o + 3] = dy / sight
            out[a, o + 4] = S[j, S_HP] / P[j, P_HPMAX]
            c = o + 5
            if (sh_enemy if k < n_enemies else sh_ally) > 0:
                out[a, c] = S[j, S_SH] / P[j, P_SHMAX]
                c += 1
            if bits > 0:
                out[a, c + type_id[j]] = 1.0
        o = base + n_enemies * nf_e + (n_agents - 1) * nf_a
        out[a, o] = S[a, S_HP] / P[a, P_HPMAX]
        c = o + 1
        if sh_ally > 0:
            out[a, c] = S[a, S_SH] / P[a, P_SHMAX]
            c += 1
        if bits > 0:
            out[a, c + type_id[a]] = 1.0


@njit(cache=True)
def build_state(S, P, type_id, max_cd, n_agents, n_enemies, sh_enemy, sh_ally, bits,
                cx, cy, max_dx, max_dy, out):
    """SMAC global state (without the last-action block) into ``out`` (float32); dead rows 0."""
    out[:] = 0.0
    nf_a = 4 + sh_ally + bits
    nf_e = 3 + sh_enemy + bits
    for i in range(n_agents + n_enemies):
        if S[i, S_ALIVE] == 0.0:
            continue
        ally = i < n_agents
        if ally:
            o = i * nf_a
        else:
            o = n_agents * nf_a + (i - n_agents) * nf_e
        out[o] = S[i, S_HP] / P[i, P_HPMAX]
        c = o + 1
        if ally:
            out[c] = max(S[i, S_CD], 0.0) / max_cd[i]
            c += 1
        out[c] = (S[i, S_X] - cx) / max_dx
        out[c + 1] = (S[i, S_Y] - cy) / max_dy
        c += 2
        if (sh_ally if ally else sh_enemy) > 0:
            out[c] = S[i, S_SH] / P[i, P_SHMAX]
            c += 1
        if bits > 0:
            out[c + type_id[i]] = 1.0
