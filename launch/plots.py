"""The paper's figures from run summaries (`launch.results`), as PNG files.

Figures 1-3 show each method at its largest β (β=1: share everything), figure 4 the β sweep,
figure 5 each method at its best β (highest mean final win rate, ties broken by mean final
return). Seeds are averaged after
interpolating onto common steps; bands are 95% Student t intervals over seeds (none with one seed).
matplotlib (the ``viz`` extra) is imported only when a figure is drawn.
"""

from __future__ import annotations

import math
import textwrap
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from dwm_net.config import BASE_PRESET, PRESETS

from .results import (
    METHOD_ORDER,
    SHARING_METHODS,
    Variant,
    complete_evals,
    group,
    mean_ci,
    t975,
    variant_label,
    variant_sort_key,
    varying_settings,
)

VIZ_HINT = "install the viz extra: pip install 'dwm-net[viz]'"
WM_LOSSES = (("wm/avail", "available-action loss"), ("wm/term", "termination loss"),
             ("wm/reward", "reward loss"), ("wm/kl", "KL loss"))
AC_LOSSES = (("ac/actor_loss", "actor loss"), ("ac/critic_loss", "critic loss"))

Summary = dict[str, Any]
Variants = dict[Variant, list[Summary]]
Note = tuple[str, str]  # (the part of a figure left out or drawn otherwise, why)


@dataclass
class PlotResult:
    """What `plot_all` did: the PNGs written, and {figure file: why it was skipped}."""

    written: list[Path] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)


def _pyplot() -> Any:
    try:
        import matplotlib
    except ImportError:
        raise ImportError(VIZ_HINT) from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _color(method: str) -> str:
    """One fixed colour per method, the same in every figure."""
    i = METHOD_ORDER.index(method) if method in METHOD_ORDER else len(METHOD_ORDER)
    return f"C{i}"


# Eight line styles and eight markers: past eight settings a figure's lines repeat a dash but pair
# it with another marker (see _marker), so up to 64 settings stay distinguishable.
_DASHES: tuple[Any, ...] = ("-", "--", ":", "-.", (0, (8, 2)), (0, (3, 1, 1, 1, 1, 1)), (0, (1, 4)),
                            (0, (6, 2, 1, 2, 1, 2)))
_MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")


Styles = dict[tuple, int]  # (budget, setup) of a variant -> its style number


def setting_styles(variants: Iterable[Variant]) -> Styles:
    """A style number per setting (preset, --set overrides, budget) among `variants`: the
    reference settings (the cpu preset of the published results, no overrides, no budget)
    first, then the others in a stable order, so that one method (one colour) under several
    settings is several distinguishable lines (up to len(_DASHES) settings per figure; a hash of
    the setting used to pick among 3 and collided)."""
    names = list(PRESETS)

    def key(setting: tuple) -> tuple:
        budget, setup = setting
        preset, _, extra = (setup or BASE_PRESET).partition("+")  # a preset with --set overrides: see setup()
        default = preset == BASE_PRESET and not extra and budget in (None, "unlimited")
        return (not default, names.index(preset) if preset in names else len(names), extra, str(budget))

    return {s: i for i, s in enumerate(sorted({(v[2], v[3]) for v in variants}, key=key))}


def _dash(v: Variant, styles: Styles, shift: int = 0) -> Any:
    """The setting's line style; `shift` 1 for reference lines, which start dashed (the default
    setting's is then "--", the next one's ":"), so they stay distinct among one method's."""
    return _DASHES[(styles.get((v[2], v[3]), 0) + shift) % len(_DASHES)]


def _marker(v: Variant, styles: Styles) -> str:
    """The setting's marker: the i-th setting's is shifted by i // 8, so (dash, marker) pairs differ
    where dashes repeat."""
    i = styles.get((v[2], v[3]), 0)
    return _MARKERS[(i + i // len(_DASHES)) % len(_MARKERS)]


def _curve_marks(v: Variant, styles: Styles, n_points: int) -> dict[str, Any]:
    """Markers for a curve of `n_points`: dots where points are few; a setting whose dash repeats an
    earlier one's (more than eight settings) always carries its marker, on about eight points."""
    if styles.get((v[2], v[3]), 0) >= len(_DASHES):
        return {"marker": _marker(v, styles), "markevery": max(1, n_points // 8)}
    return {"marker": "o" if n_points < 12 else None}


# --- aggregation over seeds ---------------------------------------------------------------------

def seed_band(curves: Sequence[Sequence[Sequence[float]]], n_grid: int | None = None
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray | None]:
    """Mean and 95% t band of several seeds' [[x, y], ...] curves on common x.

    The grid is the union of the seeds' x (or `n_grid` evenly spaced points) over the range every
    seed covers; band arrays are None with one seed. Returns (x, mean, lo, hi).
    """
    curves = [np.asarray([p[:2] for p in c if p[1] is not None], float) for c in curves]
    curves = [c for c in curves if c.size]
    if not curves:
        return np.array([]), np.array([]), None, None
    lo_x, hi_x = max(c[0, 0] for c in curves), min(c[-1, 0] for c in curves)
    if n_grid:
        grid = np.linspace(lo_x, hi_x, n_grid) if hi_x > lo_x else np.array([lo_x])
    else:
        grid = np.unique(np.concatenate([c[:, 0] for c in curves]))
        grid = grid[(grid >= lo_x) & (grid <= hi_x)]
    ys = np.stack([np.interp(grid, c[:, 0], c[:, 1]) for c in curves])  # (seeds, points)
    mean = ys.mean(0)
    if len(curves) < 2:
        return grid, mean, None, None
    half = t975(len(curves) - 1) * ys.std(0, ddof=1) / math.sqrt(len(curves))
    return grid, mean, mean - half, mean + half


# Eval curve columns: [env_steps, win_rate, mean_return, n_episodes]. SMAC scales a win's return to
# about 20 (enemy regeneration and shields can push it a little above; the axis pad shows that).
METRICS = {"win": (1, "eval win rate", (0.0, 1.0)), "return": (2, "eval mean return", (0.0, 20.0))}


def _eval_curve(s: Summary, metric: str = "win") -> list[list[float]]:
    col = METRICS[metric][0]
    return [[e[0], e[col]] for e in complete_evals(s)]


def _losses_of(s: Summary, source: str | None = None) -> dict[str, list]:
    """Loss curves of `source`, or of agent 0 (the learner's where agents do not train)."""
    losses = s.get("losses") or {}
    if source is not None:
        return losses.get(source) or {}
    agent0 = losses.get("agent-0") or {}
    if any(k.startswith("wm/") for k in agent0):
        return agent0
    return losses.get("learner") or agent0


def _final_mean(runs: list[Summary], key: str = "final_win_rate") -> float:
    finals = [s[key] for s in runs if s.get(key) is not None]
    return float(np.mean(finals)) if finals else -math.inf


def _default_variants(variants: Variants) -> Variants:
    """Each (method, budget, preset) at its largest β."""
    best: dict[tuple, tuple] = {}
    for v in variants:
        key = (v[0], *v[2:])
        if key not in best or (v[1] or 0) > (best[key][1] or 0):
            best[key] = v
    return {v: runs for v, runs in variants.items() if v in best.values()}


def _best_variants(variants: Variants) -> Variants:
    """Each (method, budget, preset) at the β with the highest mean final win rate; ties (e.g. every β
    at 0 wins) go to the highest mean final eval return."""
    def rank(runs: list[Summary]) -> tuple[float, float]:
        return _final_mean(runs), _final_mean(runs, "final_return")

    best: dict[tuple, tuple] = {}
    for v, runs in variants.items():
        key = (v[0], *v[2:])
        if key not in best or rank(runs) > rank(variants[best[key]]):
            best[key] = v
    return {v: runs for v, runs in variants.items() if v in best.values()}


# --- drawing helpers ----------------------------------------------------------------------------

def _grid(plt: Any, rows: int, cols: int, w: float = 4.6, h: float = 3.2, min_w: float = 8.0
          ) -> tuple[Any, np.ndarray]:
    """`rows` x `cols` panels of `w` x `h` inches, at least `min_w` wide (room for titles, legends)."""
    fig, axes = plt.subplots(rows, cols, figsize=(max(min_w, w * cols), h * rows), squeeze=False)
    return fig, axes


LEGEND_MIN_IN = 6.5  # legend labels wrap at this width (inches) on narrower figures
MARKER_IN, CHAR_IN = 0.6, 0.075  # inches a legend entry's marker and one character take (fontsize 9)


def _wrapped(labels: list[str], width_in: float) -> list[str]:
    """Labels with many --set overrides run to 200 characters: wrap them to `width_in` (at
    least LEGEND_MIN_IN), or one line would make the saved image several figures wide."""
    chars = int((max(width_in, LEGEND_MIN_IN) - MARKER_IN) / CHAR_IN)
    return [textwrap.fill(label, chars, subsequent_indent="    ") for label in labels]


def _legend_below(fig: Any, axes: np.ndarray, ncol: int = 3) -> None:
    """One legend for the whole figure, under the panels, without duplicates."""
    seen: dict[str, Any] = {}
    for ax in axes.flat:
        for handle, label in zip(*ax.get_legend_handles_labels()):
            seen.setdefault(label, handle)
    if not seen:
        fig.tight_layout()
        return
    labels = _wrapped(list(seen), fig.get_figwidth())
    lines = [label.count("\n") + 1 for label in labels]
    widest = MARKER_IN + CHAR_IN * max(len(line) for label in labels for line in label.splitlines())
    ncol = max(1, min(ncol, len(seen), int(fig.get_figwidth() // widest)))
    fig.legend(list(seen.values()), labels, loc="lower center", ncol=ncol, frameon=False,
               bbox_to_anchor=(0.5, 0.0), fontsize=9)
    rows = math.ceil(len(labels) / ncol)  # entries fill the columns first
    row_lines = [max(lines[i] for i in range(r, len(lines), rows)) for r in range(rows)]
    legend_in = 0.1 + 0.24 * sum(row_lines)  # inches the legend rows take
    fig.set_figheight(fig.get_figheight() + legend_in)  # the panels keep their height
    fig.tight_layout(rect=(0, legend_in / fig.get_figheight(), 1, 1))


def _save(plt: Any, fig: Any, path: Path) -> Path:
    fig.savefig(path, dpi=110, bbox_inches="tight")  # legends placed outside the axes included
    plt.close(fig)
    return path


def _steps_axis(ax: Any) -> None:
    """Env steps in thousands ("12.5k"), so long tick labels do not run into each other."""
    from matplotlib.ticker import FuncFormatter, MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(nbins=6))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _: f"{x / 1000:g}k" if x else "0"))


def _win_axes(ax: Any, title: str, metric: str = "win") -> None:
    _, name, (lo, hi) = METRICS[metric]
    pad = 0.03 * (hi - lo)
    ax.set_title(title)
    ax.set_xlabel("env steps")
    _steps_axis(ax)
    ax.set_ylabel(name)
    ax.set_ylim(lo - pad, hi + pad)
    ax.grid(alpha=0.3)


def _curves_panel(ax: Any, variants: Variants, label: Callable[[tuple], str], metric: str = "win",
                  styles: Styles | None = None, notes: list[Note] | None = None) -> bool:
    """Eval curves of `variants` (mean over seeds, t band); False if none had points. `styles`:
    the figure's (default: numbered among `variants`). What could not be drawn as asked is said
    in `notes` (a variant without evaluations; seeds that share no steps, drawn one by one)."""
    notes = [] if notes is None else notes
    styles = setting_styles(variants) if styles is None else styles
    drew = False
    flat = True  # every curve, each seed's too, at 0 throughout
    bounds = METRICS[metric][2]
    for v, runs in variants.items():
        raw = [_eval_curve(s, metric) for s in runs]
        x, mean, lo, hi = seed_band(raw)
        curves = [np.asarray(c, float).reshape(-1, 2) for c in raw]  # (points, 2) per seed
        curves = [c[~np.isnan(c[:, 1])] for c in curves]  # returns may be missing (None)
        n = sum(bool(c.size) for c in curves)
        if x.size == 0:
            if n:  # seeds whose evaluations share no steps: no mean to take, but each seed has a curve
                _separate_seeds(ax, v, [c for c in curves if c.size], label, styles, notes)
                drew = True
                flat = flat and not any(np.any(c[:, 1]) for c in curves)
            else:
                notes.append((f"curve of {label(v)}", "no complete evaluation yet"))
            continue
        drew = True
        flat = flat and not any(np.any(c[:, 1]) for c in curves)
        ax.plot(x, mean, color=_color(v[0]), ls=_dash(v, styles), ms=3, **_curve_marks(v, styles, x.size),
                label=f"{label(v)} (n={n})")
        if lo is not None:
            ax.fill_between(x, np.clip(lo, *bounds), np.clip(hi, *bounds), color=_color(v[0]), alpha=0.15, lw=0)
        # The mean stops where the shortest seed stops; longer seeds go on as thin lines (a seed
        # that learns late, e.g. in a time-limited `bench learn` run, must not vanish).
        for c in curves:
            if not c.size or c[-1, 0] - x[-1] <= 0.05 * (x[-1] - x[0]):  # ends with the mean, near enough
                continue
            later = c[c[:, 0] > x[-1]]
            start = [x[-1], np.interp(x[-1], c[:, 0], c[:, 1])]
            tail = np.vstack([start, later])
            ax.plot(tail[:, 0], tail[:, 1], color=_color(v[0]), ls=_dash(v, styles), lw=0.8, alpha=0.6)
    if drew and flat:  # coinciding lines show only the last one drawn: say that all are there
        ax.text(0.5, 0.5, "every curve at 0 throughout", transform=ax.transAxes, ha="center",
                va="center", color="0.45", fontsize=9)
    return drew


def _separate_seeds(ax: Any, v: Variant, curves: list[np.ndarray], label: Callable[[tuple], str],
                    styles: Styles, notes: list[Note]) -> None:
    """One thin line per seed, for seeds whose evaluations cover no common steps, and a note."""
    for i, c in enumerate(curves):
        ax.plot(c[:, 0], c[:, 1], color=_color(v[0]), ls=_dash(v, styles), lw=0.9, alpha=0.8, ms=3,
                **_curve_marks(v, styles, len(c)),
                label=f"{label(v)} (n={len(curves)}, seeds apart)" if i == 0 else None)
    spans = ", ".join(f"{c[0, 0]:,.0f}-{c[-1, 0]:,.0f}" for c in curves)
    why = f"its {len(curves)} seeds' evaluations share no env steps ({spans}); each seed is drawn as its own line"
    notes.append((f"mean of {label(v)}", why))


def labels_differ_across_panels(panels: dict[str, Variants], show: frozenset[str] = frozenset()) -> bool:
    """True if some method is labelled differently in two panels (e.g. β=0.01 on one map, β=1 on
    the others): a shared legend would then list that method twice in one colour."""
    labels_of: dict[str, set[str]] = {}
    for variants in panels.values():
        for v in variants:
            labels_of.setdefault(v[0], set()).add(variant_label(v, show=show))
    return any(len(labels) > 1 for labels in labels_of.values())


# --- the figures --------------------------------------------------------------------------------

def _fig_winrate(plt: Any, data: dict[str, Variants], path: Path, pick: Callable[[Variants], Variants],
                 title: str, show: frozenset[str], styles: Styles, panel_legends: bool = False,
                 metric: str = "win", notes: list[Note] | None = None) -> Path | None:
    """Win-rate curves, a panel per scenario; one shared legend, or one under each panel. What
    is left out or drawn otherwise is added to `notes`."""
    notes = [] if notes is None else notes
    panels = {scn: pick(v) for scn, v in data.items()}
    bare = [scn for scn, v in panels.items() if not any(complete_evals(s) for runs in v.values() for s in runs)]
    panels = {scn: v for scn, v in panels.items() if scn not in bare}
    if not panels:
        return None
    notes += [(f"panel {scn}", "no complete evaluation yet") for scn in bare]
    panel_legends = panel_legends or labels_differ_across_panels(panels, show)
    fig, axes = _grid(plt, 1, len(panels), h=3.6)
    for ax, (scn, variants) in zip(axes.flat, panels.items()):
        panel_notes: list[Note] = []
        _curves_panel(ax, variants, lambda v: variant_label(v, show=show), metric, styles, panel_notes)
        notes += [(f"{part} on {scn}", why) for part, why in panel_notes]
        _win_axes(ax, scn, metric)
        if panel_legends and ax.lines:
            # One column: long labels ("RSSM+Predictors + Actor-Critic (β=0.05)") side by side
            # would be wider than the panel and squeeze the panels together.
            handles, labels = ax.get_legend_handles_labels()
            ax.legend(handles, _wrapped(labels, fig.get_figwidth() / len(panels)), loc="upper center",
                      bbox_to_anchor=(0.5, -0.22), frameon=False, fontsize=8, ncol=1)
    fig.suptitle(title)
    if panel_legends:
        rows = max((sum(t.get_text().count("\n") + 1 for t in ax.get_legend().get_texts())
                    for ax in axes.flat if ax.get_legend()), default=0)
        fig.set_figheight(fig.get_figheight() + 0.3 + 0.17 * rows)  # room under the panels
        fig.tight_layout()
    else:
        _legend_below(fig, axes)
    return _save(plt, fig, path)


def _fig_wm_losses(plt: Any, data: dict[str, Variants], path: Path, show: frozenset[str],
                   styles: Styles) -> Path | None:
    rows = {scn: _default_variants(v) for scn, v in data.items()}
    rows = {scn: v for scn, v in rows.items()
            if any(_losses_of(s).get(k) for runs in v.values() for s in runs for k, _ in WM_LOSSES)}
    if not rows:
        return None
    fig, axes = _grid(plt, len(rows), len(WM_LOSSES), w=4.0, h=3.0)
    for r, (scn, variants) in enumerate(rows.items()):
        for c, (key, name) in enumerate(WM_LOSSES):
            ax = axes[r, c]
            for v, runs in variants.items():
                x, mean, _, _ = seed_band([_losses_of(s).get(key) or [] for s in runs], n_grid=100)
                if x.size:
                    ax.plot(x, mean, color=_color(v[0]), ls=_dash(v, styles), lw=1.2, label=variant_label(v, show=show))
            ax.set_title(f"{scn}: {name}", fontsize=10)
            ax.set_xlabel("env steps", fontsize=8)
            _steps_axis(ax)
            ax.grid(alpha=0.3)
            if not ax.lines:
                ax.text(0.5, 0.5, "no data", ha="center", va="center", transform=ax.transAxes, color="0.5")
    fig.suptitle("World-model losses of agent 0 (Centralized Training: the learner's), mean over seeds")
    _legend_below(fig, axes)
    return _save(plt, fig, path)


def _fig_ac_losses(plt: Any, data: dict[str, Variants], path: Path, show: frozenset[str]) -> Path | None:
    """Rows: methods; columns: (scenario, actor | critic); one line per agent (or the learner)."""
    cells: dict[tuple, tuple[list[Summary], list[str]]] = {}  # (variant, scenario) -> (runs, sources)
    for scn, variants in data.items():
        for v, runs in _default_variants(variants).items():
            sources = sorted({src for s in runs for src, c in (s.get("losses") or {}).items()
                              if any(c.get(k) for k, _ in AC_LOSSES)}, key=_source_key)
            if sources:
                cells[(v, scn)] = (runs, sources)
    if not cells:
        return None
    rows = sorted({v for v, _ in cells}, key=variant_sort_key)
    scenarios = [scn for scn in data if any((v, scn) in cells for v in rows)]
    fig, axes = _grid(plt, len(rows), len(scenarios) * len(AC_LOSSES), w=3.9, h=2.5)
    for r, v in enumerate(rows):
        for j, scn in enumerate(scenarios):
            runs, sources = cells.get((v, scn), ([], []))
            for c, (key, name) in enumerate(AC_LOSSES):
                ax = axes[r, j * len(AC_LOSSES) + c]
                for i, src in enumerate(sources):
                    x, mean, _, _ = seed_band([_losses_of(s, src).get(key) or [] for s in runs], n_grid=100)
                    if x.size:
                        ax.plot(x, mean, lw=1.1, color=f"C{i}", label=src)
                if not ax.lines:
                    ax.text(0.5, 0.5, "no data", ha="center", va="center", transform=ax.transAxes, color="0.5")
                ax.set_title(f"{scn}: {name}", fontsize=9)
                ax.grid(alpha=0.3)
                ax.tick_params(labelsize=8)
                _steps_axis(ax)  # every row: rows end at different steps, so none shares its axis
                if r == len(rows) - 1:
                    ax.set_xlabel("env steps", fontsize=8)
                if ax.lines and c == len(AC_LOSSES) - 1:
                    ax.legend(fontsize=7, loc="upper right", ncol=max(1, math.ceil(len(sources) / 6)))
        # Wrapped: a variant with several --set overrides has a label longer than its row.
        label = "\n".join(textwrap.wrap(variant_label(v, show=show), 34))
        axes[r, 0].set_ylabel(label, fontsize=9 if label.count("\n") < 3 else 7)
    fig.suptitle("Actor and critic losses per agent (Centralized Training: the learner's), mean over seeds")
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.35 / fig.get_figheight()))
    return _save(plt, fig, path)


def _source_key(name: str) -> tuple[int, int | str]:
    """agent-0, agent-1, ..., agent-10, then learner."""
    head, _, tail = name.rpartition("-")
    return (0, int(tail)) if head == "agent" and tail.isdigit() else (1, name)


def _fig_beta(plt: Any, data: dict[str, Variants], path: Path, show: frozenset[str],
              styles: Styles) -> Path | None:
    panels = {scn: v for scn, v in data.items()
              if any(m in SHARING_METHODS and _final_mean(runs) >= 0 for (m, *_), runs in v.items())}
    if not panels:
        return None
    fig, axes = _grid(plt, 1, len(panels), h=3.6)
    for ax, (scn, variants) in zip(axes.flat, panels.items()):
        lines: dict[tuple, list[tuple[float, float, float]]] = {}
        for v, runs in variants.items():
            finals = [s["final_win_rate"] for s in runs if s.get("final_win_rate") is not None]
            if not finals:
                continue
            mean, half = mean_ci(finals)
            if v[0] in SHARING_METHODS:
                lines.setdefault((v[0], None, *v[2:]), []).append((v[1], mean, half))
            else:
                ax.axhline(mean, color=_color(v[0]), ls=_dash(v, styles, shift=1), lw=1.2,
                           label=variant_label(v, show=show) + f" (n={len(finals)})")
        for k, (v, pts) in enumerate(lines.items()):
            pts.sort()
            b, m, h = (np.array(a, float) for a in zip(*pts))
            lo, hi = np.clip(m - h, 0, 1), np.clip(m + h, 0, 1)
            dodge = 0.012 * (k - (len(lines) - 1) / 2)  # so equal points of two methods both show
            ax.errorbar(b + dodge, m, yerr=[m - lo, hi - m], color=_color(v[0]), ls=_dash(v, styles), marker="o", capsize=3,
                        label=variant_label(v, show=show))
        ax.set_xlim(-0.03, 1.03)
        ax.set_xlabel("β (target fraction shared)")
        ax.set_ylabel("final eval win rate")
        ax.set_ylim(-0.03, 1.03)
        ax.set_title(scn)
        ax.grid(alpha=0.3)
    fig.suptitle("Final win rate against β (mean, 95% t interval over seeds)")
    _legend_below(fig, axes)
    return _save(plt, fig, path)


def _fmt_bytes(x: float) -> str:
    """Tick label of a byte count: 0, 500, 2k, 1.5M."""
    for unit, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(x) >= scale:
            return f"{x / scale:g}{unit}"
    return f"{x:g}"


def _fig_bytes(plt: Any, data: dict[str, Variants], path: Path, show: frozenset[str],
               styles: Styles) -> Path | None:
    pts = {scn: [(v, s) for v, runs in variants.items() for s in runs
                 if s.get("final_win_rate") is not None and (s.get("bytes") or {}).get("per_env_step") is not None]
           for scn, variants in data.items()}
    pts = {scn: p for scn, p in pts.items() if p}
    if not pts:
        return None
    from matplotlib import ticker

    fig, axes = _grid(plt, 1, len(pts), h=3.6)
    for ax, (scn, runs) in zip(axes.flat, pts.items()):
        xs = [s["bytes"]["per_env_step"] for _, s in runs]
        for v, s in runs:
            ax.scatter(s["bytes"]["per_env_step"], s["final_win_rate"], color=_color(v[0]), s=28, alpha=0.8,
                       marker=_marker(v, styles),
                       edgecolor="k", lw=0.4, label=variant_label(v, show_beta=False, show=show))
        if min(xs) <= 0:  # zero-byte runs: linear near 0 so they stay on the axis
            ax.set_xscale("symlog", linthresh=1.0)
        else:
            ax.set_xscale("log")
            if max(xs) / min(xs) < 30:  # under ~1.5 decades: label the 2..9 ticks too
                ax.xaxis.set_minor_formatter(ticker.FuncFormatter(lambda x, _: _fmt_bytes(x)))
                ax.tick_params(axis="x", which="minor", labelsize=7)
        ax.xaxis.set_major_formatter(ticker.FuncFormatter(lambda x, _: _fmt_bytes(x)))
        ax.margins(x=0.08)
        ax.set_xlabel("wire bytes sent per env step (all agents + learner, no heartbeats)")
        ax.set_ylabel("final eval win rate")
        ax.set_ylim(-0.03, 1.03)
        ax.set_title(scn)
        ax.grid(alpha=0.3, which="both")
    fig.suptitle("Win rate against communication (one point per run)")
    _legend_below(fig, axes)
    return _save(plt, fig, path)


def plot_all(summaries: Sequence[Summary], out_dir: Path) -> PlotResult:
    """Write every figure the summaries have data for into `out_dir` (created)."""
    plt = _pyplot()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    data = group(summaries)
    show = varying_settings(summaries)
    styles = setting_styles(v for variants in data.values() for v in variants)
    has_sweep = any(len({v[1] for v in variants if v[0] == m}) > 1
                    for variants in data.values() for m in SHARING_METHODS)
    Draw = Callable[[Path, list[Note]], Path | None]  # (file, notes to add to) -> file written
    figures: list[tuple[str, Draw, str]] = [
        ("fig1_winrate.png", lambda p, notes: _fig_winrate(
            plt, data, p, _default_variants, "Eval win rate (each method at its largest β; 95% t band over seeds)",
            show, styles, notes=notes), "no run has an evaluation"),
        ("fig1b_return.png", lambda p, notes: _fig_winrate(
            plt, data, p, _default_variants, "Eval mean return (each method at its largest β; 95% t band over seeds)",
            show, styles, metric="return", notes=notes), "no run has an evaluation"),
        ("fig2_world_model_losses.png", lambda p, _: _fig_wm_losses(plt, data, p, show, styles),
         "no run logged world-model losses"),
        ("fig3_actor_critic_losses.png", lambda p, _: _fig_ac_losses(plt, data, p, show),
         "no run logged actor/critic losses"),
        ("fig4_beta.png", lambda p, _: _fig_beta(plt, data, p, show, styles),
         "no evaluated run of a sharing method (RSSM+Predictors, Actor-Critic)"),
        ("fig5_best_beta.png", (lambda p, notes: _fig_winrate(
            plt, data, p, _best_variants, "Eval win rate, each method at its best β (95% t band over seeds)",
            show, styles, panel_legends=True, notes=notes)) if has_sweep else (lambda p, _: None),
         "no β sweep (each method ran at one β: fig1 shows the same curves)" if not has_sweep
         else "no run has an evaluation"),
        ("bytes_vs_winrate.png", lambda p, _: _fig_bytes(plt, data, p, show, styles),
         "no run has both an evaluation and byte counters"),
    ]
    result = PlotResult()
    for name, draw, why in figures:
        notes: list[Note] = []
        written = draw(out_dir / name, notes)
        if written is None:
            result.skipped[name] = why
        else:
            result.written.append(written)
            # Parts of a written figure left out or drawn otherwise: said as "skipped <figure>: <part>".
            for part, why_part in notes:
                result.skipped[f"{name}: {part}"] = why_part
    return result


__all__ = ["VIZ_HINT", "PlotResult", "labels_differ_across_panels", "plot_all", "seed_band"]
