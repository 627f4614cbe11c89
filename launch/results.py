"""Per-run summaries of experiment results: small JSON files that every figure and table redraws from.

`summarize(run_dir)` reads a run directory (see `launch.rundir` for the layout) and returns a
compact, JSON-serialisable dict; `write_summary` stores it as
``<scenario>-<method>-b<beta>[-<budget>]-s<seed>.json``; `load_summaries` takes run dirs, summary files and
folders of either. Runs stopped early (no ``done.json``, cut last JSONL lines, missing files or
keys) still summarize: what is missing is ``None`` or empty.

Units: steps are env-host (team) environment steps; bytes are wire bytes (payload plus framing)
actually sent, heartbeats excluded; "per env step" divides by the team env steps the run reached.
Every figure derived from evaluations (final win rate and return, steps to 50%/80%, the curves)
uses complete evaluations only: those with the run's ``eval_episodes`` episodes. One cut short
(Ctrl-C, a crash) is counted in ``partial_evals`` and left out.
"""

from __future__ import annotations

import itertools
import json
import math
import re
from collections.abc import Collection, Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from dwm_net.config import BASE_PRESET, PRESETS, load_config, to_dict
from dwm_net.runlog import read_jsonl, write_json_atomic
from dwm_net.stats import wilson_interval

from .sweep import flat_config

SCHEMA = 1
MAX_POINTS = 100  # binned curves keep at most this many points

# The paper's names for the sharing methods, in the order tables and legends list them.
METHOD_LABELS: dict[str, str] = {
    "independent": "Independent Training",
    "centralized": "Centralized Training",
    "experience": "RSSM+Predictors",
    "rollout": "Actor-Critic",
    "both": "RSSM+Predictors + Actor-Critic",
}
METHOD_ORDER = tuple(METHOD_LABELS)
SHARING_METHODS = ("experience", "rollout", "both")  # the methods where beta means something
LOSS_KEYS = ("wm/obs", "wm/avail", "wm/term", "wm/reward", "wm/kl",
             "ac/actor_loss", "ac/critic_loss", "ac/entropy")
THRESHOLDS = (0.5, 0.8)  # steps_to_50 / steps_to_80


class ResultsError(ValueError):
    """Input that is not a run directory or a summary; one line naming the problem."""


# --- statistics ---------------------------------------------------------------------------------

_T975 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160,
         2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056,
         2.052, 2.048, 2.045, 2.042)


def t975(df: int) -> float:
    """Two-sided 95% Student t quantile for `df` degrees of freedom (table; 1.96 for large df)."""
    if df < 1:
        return math.inf
    if df <= len(_T975):
        return _T975[df - 1]
    return 2.000 if df <= 60 else 1.980 if df <= 120 else 1.960


def mean_ci(values: Sequence[float]) -> tuple[float, float]:
    """(mean, half width of the 95% Student t interval) over seeds; half width 0 with one value."""
    x = np.asarray(values, float)
    if x.size == 0:
        return math.nan, math.nan
    if x.size == 1:
        return float(x[0]), 0.0
    return float(x.mean()), float(t975(x.size - 1) * x.std(ddof=1) / math.sqrt(x.size))


# --- reading a run ------------------------------------------------------------------------------

def _num(value: Any) -> float | None:
    """A finite float, or None (missing, None, non-numeric, NaN)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


def _chunks(n: int, max_points: int) -> list[slice]:
    """At most `max_points` consecutive, near-equal slices covering range(n)."""
    if n == 0:
        return []
    edges = np.linspace(0, n, min(n, max_points) + 1).round().astype(int)
    return [slice(int(a), int(b)) for a, b in itertools.pairwise(edges) if b > a]


def bin_curve(xs: Sequence[float], ys: Sequence[float], max_points: int = MAX_POINTS) -> list[list[float]]:
    """[[mean x, mean y], ...] over at most `max_points` equal-count windows (xs ascending)."""
    x, y = np.asarray(xs, float), np.asarray(ys, float)
    return [[round(float(x[s].mean()), 3), float(y[s].mean())] for s in _chunks(x.size, max_points)]


def _cumulative_total(values: Iterable[float | None]) -> float:
    """Total of a cumulative counter whose process may have restarted (counter back to 0)."""
    total, last = 0.0, 0.0
    for v in values:
        if v is None:
            continue
        if v < last:  # a restart: the previous segment ended at `last`
            total += last
        last = v
    return total + last


def _counters(records: list[dict[str, Any]], prefix: str) -> dict[str, float]:
    """{suffix: total} of every cumulative `prefix/<suffix>` key, restarts accounted for."""
    keys = sorted({k for r in records for k in r if k.startswith(prefix + "/")})
    return {k[len(prefix) + 1:]: _cumulative_total(_num(r.get(k)) for r in records) for k in keys}


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except OSError as e:
        raise ResultsError(f"cannot read {path} ({e.strerror or e})") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ResultsError(f"{path} is not valid JSON ({e})") from None


def _evaluations(episodes: list[dict[str, Any]], per_eval: int | None) -> list[list[float]]:
    """[[env_steps, win_rate, mean_return, n_episodes], ...] sorted by env_steps.

    Eval lines are grouped by the env_steps they ran at. A group longer than `per_eval` (an
    evaluation cut by a restart and run again at the same step) keeps its last `per_eval` lines.
    """
    groups: dict[int, list[dict[str, Any]]] = {}
    for e in episodes:
        if e.get("mode") == "eval" and _num(e.get("env_steps")) is not None:
            groups.setdefault(int(e["env_steps"]), []).append(e)
    out = []
    for step in sorted(groups):
        group = groups[step][-per_eval:] if per_eval else groups[step]
        returns = [r for r in (_num(e.get("return")) for e in group) if r is not None]
        out.append([step, float(np.mean([bool(e.get("won")) for e in group])),
                    float(np.mean(returns)) if returns else None, len(group)])
    return out


def _complete(evals: list[list[Any]], per_eval: Any) -> list[list[Any]]:
    """The evaluations that ran all `per_eval` episodes (all of them if `per_eval` is unknown)."""
    if not isinstance(per_eval, int) or isinstance(per_eval, bool) or per_eval <= 0:
        return list(evals)
    return [e for e in evals if isinstance(e[3], (int, float)) and e[3] >= per_eval]


def complete_evals(s: dict[str, Any]) -> list[list[Any]]:
    """A summary's complete evaluations; summaries written before `partial_evals` existed may
    still list cut-short ones in ``eval``."""
    return _complete(s.get("eval") or [], s.get("eval_episodes"))


def _train_curve(episodes: list[dict[str, Any]]) -> list[list[float]]:
    """Train episodes binned: [[env_steps at window end, win_rate, mean_return, n_episodes], ...]."""
    train = sorted((e for e in episodes if e.get("mode") == "train" and _num(e.get("env_steps")) is not None),
                   key=lambda e: e["env_steps"])
    out = []
    for s in _chunks(len(train), MAX_POINTS):
        window = train[s]
        returns = [r for r in (_num(e.get("return")) for e in window) if r is not None]
        out.append([int(window[-1]["env_steps"]), float(np.mean([bool(e.get("won")) for e in window])),
                    float(np.mean(returns)) if returns else None, len(window)])
    return out


def _loss_curves(records: list[dict[str, Any]], x_key: str) -> dict[str, list[list[float]]]:
    """{loss key: [[x, value], ...] binned} for every loss key present (x: `x_key`)."""
    curves = {}
    for key in LOSS_KEYS:
        pts = [(_num(r.get(x_key)), _num(r.get(key))) for r in records]
        pts = sorted((x, y) for x, y in pts if x is not None and y is not None)
        if pts:
            curves[key] = bin_curve([p[0] for p in pts], [p[1] for p in pts])
    return curves


def _agent_files(run_dir: Path) -> list[tuple[str, Path]]:
    """[("agent-<i>", path), ...] in agent-id order."""
    found = []
    for p in run_dir.glob("agent-*.jsonl"):
        m = re.fullmatch(r"agent-(\d+)\.jsonl", p.name)
        if m:
            found.append((int(m.group(1)), p))
    return [(f"agent-{i}", p) for i, p in sorted(found)]


def is_run_dir(path: Path) -> bool:
    return path.is_dir() and (path / "config.json").is_file()


# Learner settings a run may change with --set without that being one of the named axes
# (method, β, budget, preset): a run that differs from its preset in them is its own variant.
_LEARNER_SECTIONS = ("model", "train", "share")
_NAMED_AXES = frozenset({"share.method", "share.beta"})


def overrides(cfg: dict[str, Any], preset_config: dict[str, Any] | None = None) -> str | None:
    """``"train.entropy_target=0.25,..."``: the learner settings (model, train, share except
    method and β) in which a recorded run config differs from its preset, sorted; None where
    none differs. The preset is ``preset_config`` (what the run recorded at launch) where given,
    else the preset as the code has it now (runs from before the record; None if unknown)."""
    if isinstance(preset_config, dict):
        base = flat_config(preset_config)
    elif cfg.get("preset") in PRESETS:
        base = flat_config(json.loads(json.dumps(to_dict(load_config(cfg["preset"])))))  # as JSON reads back
    else:
        return None
    mine = flat_config(cfg)
    diffs = [f"{k}={mine[k]}" for k in mine.keys() & base.keys()
             if k.partition(".")[0] in _LEARNER_SECTIONS and k not in _NAMED_AXES and mine[k] != base[k]]
    return ",".join(sorted(diffs)) or None


def setup(s: dict[str, Any]) -> str | None:
    """A summary's preset, with its overrides after a ``+``: ``"cpu+train.entropy_target=0.25"``."""
    preset, extra = s.get("preset"), s.get("overrides")
    return f"{preset}+{extra}" if extra else preset


def summarize(run_dir: Path) -> dict[str, Any]:
    """The summary of one run directory (see the module docstring for units)."""
    run_dir = Path(run_dir)
    if not is_run_dir(run_dir):
        raise ResultsError(f"{run_dir} is not a run directory (no config.json)")
    record = _read_json(run_dir / "config.json")
    cfg = record.get("config") if isinstance(record, dict) else None
    if not isinstance(cfg, dict):
        raise ResultsError(f"{run_dir / 'config.json'} has no 'config' object: not a dwm-net run config")
    env, share, comms, run = (cfg.get(k) or {} for k in ("env", "share", "comms", "run"))
    done_path = run_dir / "done.json"
    done = _read_json(done_path) if done_path.is_file() else None
    done = done if isinstance(done, dict) else None

    episodes = list(read_jsonl(run_dir / "episodes.jsonl"))
    per_eval = run.get("eval_episodes")
    evals = _evaluations(episodes, per_eval if isinstance(per_eval, int) and per_eval > 0 else None)
    # A cut-short evaluation is a small sample: one won episode of one would read as 100%.
    complete = _complete(evals, per_eval)
    final = complete[-1] if complete else None

    agent_files = _agent_files(run_dir)
    n_agents = record.get("n_agents") if isinstance(record.get("n_agents"), int) else len(agent_files)
    sources = [(name, list(read_jsonl(path)), "env_steps") for name, path in agent_files]
    if (run_dir / "learner.jsonl").exists():
        learner = list(read_jsonl(run_dir / "learner.jsonl"))
        for r in learner:  # the learner counts every agent's transitions: per team env step, n_agents
            if (x := _num(r.get("steps_received"))) is not None and n_agents:
                r["env_steps"] = x / n_agents
        sources.append(("learner", learner, "env_steps"))

    env_steps = _num((done or {}).get("env_steps"))
    if env_steps is None:
        seen = [_num(e.get("env_steps")) for e in episodes]
        seen += [_num(r.get("env_steps")) for name, recs, _ in sources if name != "learner" for r in recs]
        env_steps = max((s for s in seen if s is not None), default=None)

    by_source, by_kind, drops = {}, {}, {}
    for name, recs, _ in sources:
        by_source[name] = _cumulative_total(_num(r.get("sent_bytes")) for r in recs)
        for kind, n in _counters(recs, "sent_bytes").items():
            by_kind[kind] = by_kind.get(kind, 0) + n
        for reason, n in _counters(recs, "drops").items():
            drops[reason] = drops.get(reason, 0) + n
    total_bytes = sum(by_source.values()) if sources else None  # None: no agent ever logged
    losses = {name: c for name, recs, x_key in sources if (c := _loss_curves(recs, x_key))}

    steps_to = {}
    for th in THRESHOLDS:
        hit = next((e[0] for e in complete if e[1] >= th), None)
        steps_to[f"steps_to_{round(th * 100)}"] = hit
    wins = round(final[1] * final[3]) if final else None
    return {
        "schema": SCHEMA,
        "run_dir": str(run_dir),
        "run_id": run_dir.name,
        "created": record.get("created"),
        "scenario": env.get("scenario"),
        "backend": env.get("backend"),
        "method": share.get("method"),
        "beta": _num(share.get("beta")),
        "budget": comms.get("budget"),
        "seed": run.get("seed"),
        "preset": cfg.get("preset"),
        "overrides": overrides(cfg, record.get("preset_config")),
        "steps": run.get("steps"),
        "eval_episodes": per_eval,
        "n_agents": n_agents,
        "done": done is not None,
        "env_steps": int(env_steps) if env_steps is not None else None,
        "restarts": (done or {}).get("restarts") or {},
        "eval": complete,  # [[env_steps, win_rate, mean_return, n_episodes], ...], complete ones only
        "partial_evals": len(evals) - len(complete),  # evaluations cut short, left out of everything
        "final_env_steps": final[0] if final else None,
        "final_win_rate": final[1] if final else None,
        "final_return": final[2] if final else None,
        "final_wins": wins,
        "final_n": final[3] if final else None,
        "final_ci95": list(wilson_interval(wins, final[3])) if final else None,
        **steps_to,
        "train": _train_curve(episodes),  # [[env_steps, win_rate, mean_return, n_episodes], ...]
        # {"agent-<i>" | "learner": {loss key: [[env_steps, value], ...]}}; the learner's x is
        # steps_received / n_agents (team env steps' worth of experience it had received)
        "losses": losses,
        "bytes": {"total": None if total_bytes is None else int(total_bytes),
                  "by_kind": {k: int(v) for k, v in sorted(by_kind.items())},
                  "by_source": {k: int(v) for k, v in by_source.items()},
                  "per_env_step": total_bytes / env_steps if total_bytes is not None and env_steps else None},
        "drops": {"total": int(sum(drops.values())) if sources else None,
                  "by_reason": {k: int(v) for k, v in sorted(drops.items())}},
    }


# --- storing and loading ------------------------------------------------------------------------

def summary_name(summary: dict[str, Any]) -> str:
    """``<scenario>-<method>-b<beta>[-<budget>][-<preset>[_<overrides>]]-s<seed>.json``; the budget
    appears when it is not unlimited and the preset when it is not ``cpu`` (the preset of the
    published results, named before `explore` became the default) or has overrides, so runs that
    differ only in those do not overwrite each other."""
    beta = summary.get("beta")
    b = f"{beta:g}" if isinstance(beta, (int, float)) else str(beta)
    budget, preset = summary.get("budget"), setup(summary)
    tag = "".join("-" + re.sub(r"[^A-Za-z0-9.]+", "_", str(value))
                  for value, default in ((budget, "unlimited"), (preset, BASE_PRESET)) if value not in (None, default))
    return f"{summary.get('scenario')}-{summary.get('method')}-b{b}{tag}-s{summary.get('seed')}.json"


def write_summary(summary: dict[str, Any], out_dir: Path) -> Path:
    """Write `summary` atomically into `out_dir` under `summary_name`; returns the path."""
    path = Path(out_dir) / summary_name(summary)
    write_json_atomic(path, summary)
    return path


def is_summary(data: Any) -> bool:
    return isinstance(data, dict) and data.get("schema") == SCHEMA and "scenario" in data and "eval" in data


def _load_file(path: Path, strict: bool) -> dict[str, Any] | None:
    if path.name == "config.json":
        return summarize(path.parent)
    data = _read_json(path)
    if is_summary(data):
        return data
    if strict:
        raise ResultsError(f"{path} is not a run summary (write one with `dwm-net summarize`)")
    return None


def _load_dir(path: Path, depth: int) -> list[dict[str, Any]]:
    """Run dirs and summary JSONs under `path`, `depth` folder levels down (others skipped)."""
    if is_run_dir(path):
        return [summarize(path)]
    out: list[dict[str, Any]] = []
    for child in sorted(path.iterdir()):
        if child.is_file() and child.suffix == ".json":
            try:
                s = _load_file(child, strict=False)
            except ResultsError:
                continue  # unrelated or broken JSON beside the runs
            if s is not None:
                out.append(s)
        elif child.is_dir() and depth > 0:
            out += _load_dir(child, depth - 1)
    return out


def load_summaries(paths: Sequence[Path]) -> list[dict[str, Any]]:
    """Summaries from run dirs, summary JSON files, or folders holding either (two levels deep).

    A path given by name must be usable (else `ResultsError`); inside a folder, JSON files that
    are not summaries are skipped. A run found twice (its dir and its summary) counts once.
    """
    found: list[dict[str, Any]] = []
    for p in map(Path, paths):
        if not p.exists():
            raise ResultsError(f"{p} not found")
        if p.is_file():
            found.append(_load_file(p, strict=True))  # type: ignore[arg-type]
        else:
            runs = _load_dir(p, depth=2)
            if not runs:
                raise ResultsError(f"{p} holds no run directories or run summaries")
            found += runs
    seen, out = set(), []
    for s in found:
        key = (s.get("run_id"), s.get("created"), s.get("scenario"), s.get("method"), s.get("beta"), s.get("seed"))
        if key not in seen:
            seen.add(key)
            out.append(s)
    if not out:
        raise ResultsError("no runs found")
    check_one_run_per_seed(out)
    return out


# --- grouping (shared by plots and report) ------------------------------------------------------

# (method, beta, budget, setup): setup is the preset with any overrides (see `setup`)
Variant = tuple[str, float | None, str | None, str | None]

# Settings besides method and β that keep runs apart; labels and tables name them only where the
# summaries at hand differ in them (a whole grid at one budget and preset says neither).
SETTINGS = ("budget", "preset")


def variant(s: dict[str, Any]) -> Variant:
    """What seeds are averaged over: (method, beta, budget, preset); beta is None where it means
    nothing. Runs of different presets, overrides or budgets are never averaged together."""
    method = s.get("method") or "?"
    return method, (s.get("beta") if method in SHARING_METHODS else None), s.get("budget"), setup(s)


def varying_settings(summaries: Sequence[dict[str, Any]]) -> frozenset[str]:
    """The SETTINGS whose value differs between `summaries` (so labels must say them)."""
    value = {"budget": lambda s: s.get("budget"), "preset": setup}
    return frozenset(k for k in SETTINGS if len({value[k](s) for s in summaries}) > 1)


def variant_sort_key(v: Variant) -> tuple:
    method, beta, budget, preset = v
    rank = METHOD_ORDER.index(method) if method in METHOD_ORDER else len(METHOD_ORDER)
    return rank, method, -1.0 if beta is None else beta, str(budget), str(preset)


def check_one_run_per_seed(summaries: Sequence[dict[str, Any]]) -> None:
    """`ResultsError` naming two runs of one variant with the same seed (say, ad-hoc runs all at
    seed 0): averaged as seeds they would count one seed several times and narrow its interval."""
    first: dict[tuple, dict[str, Any]] = {}
    repeats: list[tuple[dict[str, Any], dict[str, Any]]] = []
    for s in summaries:
        if s.get("seed") is None:
            continue
        key = (str(s.get("scenario")), variant(s), s["seed"])
        if key in first:
            repeats.append((first[key], s))
        else:
            first[key] = s
    if not repeats:
        return
    a, b = repeats[0]
    more = f" (and {len(repeats) - 1} more repeated run{'s' * (len(repeats) > 2)})" if len(repeats) > 1 else ""
    where = [s.get("run_dir") or s.get("run_id") for s in (a, b)]
    raise ResultsError(f"{where[0]} and {where[1]} are both seed {b['seed']} of {b.get('scenario')} "
                       f"{variant_label(variant(b), show=SETTINGS)}{more}; a seed may count only once: "
                       f"pass one run per seed (name the run dirs instead of their folder)")


def group(summaries: Sequence[dict[str, Any]]) -> dict[str, dict[Variant, list[dict[str, Any]]]]:
    """{scenario: {variant: [summaries over seeds]}}, scenarios and variants sorted; repeated
    seeds are refused (`check_one_run_per_seed`)."""
    check_one_run_per_seed(summaries)
    out: dict[str, dict[Variant, list[dict[str, Any]]]] = {}
    for s in summaries:
        out.setdefault(str(s.get("scenario")), {}).setdefault(variant(s), []).append(s)
    return {scn: dict(sorted(v.items(), key=lambda kv: variant_sort_key(kv[0]))) for scn, v in sorted(out.items())}


def variant_label(v: Variant, show_beta: bool = True, show: Collection[str] = ()) -> str:
    """The paper's name of the method, with β (sharing methods), then the settings named in
    `show` ("budget", "preset") in brackets: "Independent Training [paper preset]"."""
    method, beta, budget, preset = v
    label = METHOD_LABELS.get(method, method)
    if show_beta and beta is not None:
        label += f" (β={beta:g})"
    tags = ([str(budget)] if "budget" in show and budget is not None else []) + \
        ([_setup_label(preset)] if "preset" in show and preset is not None else [])
    return label + (f" [{', '.join(tags)}]" if tags else "")


def _setup_label(setup_: str) -> str:
    """"cpu+train.x=1" -> "cpu preset, train.x=1"."""
    preset, _, extra = setup_.partition("+")
    return f"{preset} preset" + (f", {extra.replace(',', ', ')}" if extra else "")


__all__ = [
    "LOSS_KEYS",
    "METHOD_LABELS",
    "METHOD_ORDER",
    "SETTINGS",
    "SHARING_METHODS",
    "ResultsError",
    "Variant",
    "bin_curve",
    "check_one_run_per_seed",
    "complete_evals",
    "group",
    "is_run_dir",
    "is_summary",
    "load_summaries",
    "mean_ci",
    "overrides",
    "setup",
    "summarize",
    "summary_name",
    "t975",
    "variant",
    "variant_label",
    "variant_sort_key",
    "varying_settings",
    "wilson_interval",
    "write_summary",
]
