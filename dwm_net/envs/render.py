"""Draw SMAC episodes as animated GIFs from ``env.snapshot()`` (matplotlib, Agg).

matplotlib is the optional ``viz`` extra; it is imported inside the functions so the rest of
the package works without it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

ALLY_COLOR = "#1f5fbf"
ENEMY_COLOR = "#c8282d"
_FLOOR = "#f3f0e8"
_BLOCKED = "#7a7a7a"
_VIZ_HINT = "drawing episodes needs matplotlib: pip install 'dwm-net[viz]'"


def _require_matplotlib() -> None:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise ImportError(_VIZ_HINT) from None


def draw_frame(ax: Any, snapshot: dict[str, Any], title: str | None = None) -> None:
    """Draw one snapshot (see ``BuiltinSMAC.snapshot``) on an empty matplotlib ``ax``.

    Non-pathable cells are shaded; units are circles of their radius (allies blue, enemies
    red, the dead as faint crosses) with health (green) and shield (cyan) bars and their id
    (allies: agent id; enemies: ``e`` + enemy id, the one attack action ``6+j`` names); a
    solid line joins shooter and target for each hit of the last step, a dotted one each
    unit's current target.
    """
    _require_matplotlib()
    _draw_map(ax, snapshot["pathable"])
    _draw_units(ax, snapshot)
    ax.set_title(_default_title(snapshot) if title is None else title, fontsize=8)


def _default_title(snapshot: dict[str, Any]) -> str:
    return f"{snapshot.get('map_name', '')}  step {snapshot.get('t', '')}"


def _draw_map(ax: Any, pathable: np.ndarray) -> None:
    """The static part of a frame: terrain, limits, ticks."""
    from matplotlib.colors import ListedColormap

    pathable = np.asarray(pathable, dtype=bool)
    h, w = pathable.shape
    ax.imshow(~pathable, origin="lower", extent=(0, w, 0, h), interpolation="nearest",
              cmap=ListedColormap([_FLOOR, _BLOCKED]), vmin=0, vmax=1, zorder=0)
    ax.set_xlim(0, w)
    ax.set_ylim(0, h)
    ax.set_aspect("equal")
    ax.set_xticks(range(0, w + 1, 8))
    ax.set_yticks(range(0, h + 1, 8))
    ax.tick_params(labelsize=6, length=2)


def _draw_units(ax: Any, snapshot: dict[str, Any]) -> list[Any]:
    """The moving part of a frame; returns its artists so a caller can remove them."""
    from matplotlib.collections import LineCollection, PatchCollection
    from matplotlib.patches import Circle, Rectangle

    x, y = np.asarray(snapshot["x"], float), np.asarray(snapshot["y"], float)
    alive = np.asarray(snapshot["alive"], bool)
    team = np.asarray(snapshot["team"], int)
    radius = np.asarray(snapshot["radius"], float)
    health, health_max, shield, shield_max = (
        np.asarray(snapshot[k], float) for k in ("health", "health_max", "shield", "shield_max")
    )
    target = np.asarray(snapshot.get("target", np.full(len(x), -1)), int)
    n_agents = int(snapshot.get("n_agents", int((team == 0).sum())))
    color = np.where(team == 0, ALLY_COLOR, ENEMY_COLOR)
    artists: list[Any] = []

    # current targets (dotted, underneath), then this step's hits (solid)
    aiming = [i for i in np.flatnonzero(alive & (target >= 0)) if 0 <= target[i] < len(x)]
    if aiming:
        segs = [((x[i], y[i]), (x[target[i]], y[target[i]])) for i in aiming]
        artists.append(ax.add_collection(LineCollection(
            segs, colors=[color[i] for i in aiming], linestyles=":", linewidths=0.8, alpha=0.5,
            zorder=1), autolim=False))
    shots = [(int(i), int(j)) for i, j in snapshot.get("shots", [])]
    if shots:
        segs = [((x[i], y[i]), (x[j], y[j])) for i, j in shots]
        artists.append(ax.add_collection(LineCollection(
            segs, colors=[color[i] for i, _ in shots], linewidths=1.8, alpha=0.9, zorder=2),
            autolim=False))

    dead = np.flatnonzero(~alive)
    if len(dead):
        artists.append(ax.scatter(x[dead], y[dead], marker="x", s=30, c=color[dead], alpha=0.35,
                                  zorder=3))
    circles, circle_colors = [], []
    bars, bar_colors = [], []
    for k in np.flatnonzero(alive):
        circles.append(Circle((x[k], y[k]), radius[k]))
        circle_colors.append(color[k])
        label = str(k) if k < n_agents else f"e{k - n_agents}"
        artists.append(ax.text(x[k], y[k], label, ha="center", va="center", fontsize=5.5,
                               color="white", fontweight="bold", zorder=5))
        # bars above the unit: health, then shield on top when the unit has shields
        bw = max(2 * radius[k], 1.0)
        bx, by = x[k] - bw / 2, y[k] + radius[k] + 0.15
        values = [(health[k], health_max[k], "#2ca02c")]
        if shield_max[k] > 0:
            values.append((shield[k], shield_max[k], "#17becf"))
        for value, vmax, c in values:
            frac = float(np.clip(value / vmax, 0.0, 1.0)) if vmax > 0 else 0.0
            bars += [Rectangle((bx, by), bw, 0.22), Rectangle((bx, by), bw * frac, 0.22)]
            bar_colors += ["#333333", c]
            by += 0.28
    if circles:
        artists.append(ax.add_collection(PatchCollection(
            circles, facecolors=circle_colors, edgecolors="black", linewidths=0.6, alpha=0.85,
            zorder=3), autolim=False))
        artists.append(ax.add_collection(PatchCollection(
            bars, facecolors=bar_colors, linewidths=0, zorder=4), autolim=False))
    return artists


def render_episode(
    env: Any,
    policy: Callable[[Any], Sequence[int]],
    out_path: str | Path,
    *,
    seed: int = 0,
    fps: int = 4,
    max_steps: int | None = None,
    dpi: int = 100,
) -> dict[str, Any]:
    """Play one episode of ``env`` with ``policy(env) -> actions`` and save it as a GIF.

    ``seed`` reseeds the env before its reset; ``max_steps`` stops early (outcome "stopped");
    frames are about ``4.8 * dpi`` pixels wide.
    Returns ``steps``, ``return``, ``won``, ``outcome``, ``frames`` and ``path``.
    """
    _require_matplotlib()
    from matplotlib.animation import PillowWriter
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    out = Path(out_path)
    if out.suffix.lower() != ".gif":
        raise ValueError(f"render_episode writes GIFs: out_path must end in .gif, not {out.name!r}")
    if not callable(getattr(env, "snapshot", None)):
        raise TypeError("render_episode needs an env with snapshot() (the builtin or sc2 backend)")
    if fps <= 0:
        raise ValueError(f"fps must be positive, got {fps}")

    env.seed(seed)
    env.reset()
    map_name = str(getattr(env, "map_name", ""))
    # Play first, draw after: the policy sees the env exactly as in training, and a failing
    # policy leaves no half-written file.
    frames: list[tuple[dict[str, Any], str]] = [(env.snapshot(), f"{map_name}  step 0")]
    total, steps, terminated, info = 0.0, 0, False, {}
    while not terminated and (max_steps is None or steps < max_steps):
        reward, terminated, info = env.step(list(policy(env)))
        total += reward
        steps += 1
        title = f"{map_name}  step {steps}  reward {reward:+.2f}  return {total:.2f}"
        frames.append((env.snapshot(), title))
    won = bool(info.get("battle_won", False))
    if not terminated:
        outcome = "stopped"
    elif won:
        outcome = "won"
    elif info.get("episode_limit", False):
        outcome = "time limit"
    elif info.get("dead_allies", 0) >= getattr(env, "n_agents", 0) and info.get(
            "dead_enemies", 0) >= getattr(env, "n_enemies", 0):
        outcome = "draw"
    else:
        outcome = "lost"
    last_snap, last_title = frames[-1]
    frames[-1] = (last_snap, f"{last_title}\n{outcome.upper()}")

    out.parent.mkdir(parents=True, exist_ok=True)
    fig = Figure(figsize=(4.8, 5.0))  # one figure for every frame, not one per frame
    FigureCanvasAgg(fig)
    ax = fig.add_axes((0.08, 0.05, 0.88, 0.82))
    writer = PillowWriter(fps=fps)
    # The terrain is drawn once; per frame only the units' artists are replaced (clearing
    # the axes and rebuilding ticks every frame costs about twice as much).
    _draw_map(ax, frames[0][0]["pathable"])
    with writer.saving(fig, str(out), dpi=dpi):
        artists: list[Any] = []
        for snap, title in frames:
            for artist in artists:
                artist.remove()
            artists = _draw_units(ax, snap)
            ax.set_title(title, fontsize=8)
            writer.grab_frame()
        for _ in range(fps):  # hold the last frame about a second (GIF merges the copies)
            writer.grab_frame()
    return {"steps": steps, "return": total, "won": won, "outcome": outcome,
            "frames": len(frames), "path": str(out)}


__all__ = ["draw_frame", "render_episode"]
