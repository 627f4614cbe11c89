"""Markdown and JSON tables of run summaries: one table per scenario, one row per method/β/budget/preset.

Final win rate: mean over seeds of each run's last complete evaluation, ± the half width of a 95%
Student t interval over seeds; with one seed, the run's 95% Wilson interval over its evaluation
episodes instead (marked ``ʷ``). Steps to 50%/80%: median over the seeds that got there.
The Seeds column counts runs (one per seed: repeated seeds are refused) and says how many have an
evaluation where not all do, so it agrees with the ``ʷ`` mark.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from typing import Any

from .results import Variant, group, mean_ci, variant_label, varying_settings

FOOTNOTES = (
    ("Final win rate: mean over seeds of the last complete greedy evaluation ± half width of the 95% "
     "Student t interval over seeds; with one evaluated seed (ʷ), the 95% Wilson score interval over that "
     "run's evaluation episodes. Evaluations cut short (fewer episodes than asked) count nowhere."),
    ("Final return: the same for the last evaluation's mean episode return (SMAC's reward: about 20 for a "
     "win; enemy regeneration and shields can push it a little above): it separates methods that all win "
     "nothing."),
    ("Steps to 50% / 80%: env steps of the first complete evaluation at or above that win rate, median over "
     "the seeds that reached it ((k/n): only k of n seeds did); — : none did."),
    ("Bytes / env step: wire bytes sent by all agents and the learner, excluding heartbeats, per team env "
     "step, mean over seeds. Drops: messages dropped per run (all links), mean over seeds."),
)


def _row(variant: Variant, runs: list[dict[str, Any]]) -> dict[str, Any]:
    """One table row's numbers (JSON-serialisable)."""
    method, beta, budget, preset = variant
    finals = [s["final_win_rate"] for s in runs if s.get("final_win_rate") is not None]
    mean, half = mean_ci(finals)
    row: dict[str, Any] = {
        "method": method, "label": variant_label(variant, show_beta=False), "beta": beta, "budget": budget, "preset": preset,
        "seeds": sorted((s.get("seed") for s in runs), key=str), "n_runs": len(runs),
        "unfinished": sum(not s.get("done") for s in runs),
        "partial_evals": sum(s.get("partial_evals") or 0 for s in runs),  # left out of every number
        "final_win_rate": mean if finals else None, "final_n_seeds": len(finals),
        "ci_kind": "t" if len(finals) > 1 else "wilson" if finals else None,
    }
    if len(finals) > 1:
        row["ci95"] = [max(0.0, mean - half), min(1.0, mean + half)]
        row["ci_half_width"] = half
    elif finals:
        row["ci95"] = next(s["final_ci95"] for s in runs if s.get("final_win_rate") is not None)
    else:
        row["ci95"] = None
    returns = [s["final_return"] for s in runs if s.get("final_return") is not None]
    ret_mean, ret_half = mean_ci(returns)
    row["final_return"] = ret_mean if returns else None
    row["final_return_ci_half_width"] = ret_half if len(returns) > 1 else None
    for key in ("steps_to_50", "steps_to_80"):
        hits = [s[key] for s in runs if s.get(key) is not None]
        row[key] = statistics.median(hits) if hits else None
        row[key + "_reached"] = len(hits)
    bps = [s["bytes"]["per_env_step"] for s in runs if (s.get("bytes") or {}).get("per_env_step") is not None]
    row["bytes_per_env_step"] = sum(bps) / len(bps) if bps else None
    drops = [s["drops"]["total"] for s in runs if (s.get("drops") or {}).get("total") is not None]
    row["drops"] = sum(drops) / len(drops) if drops else None
    reasons: dict[str, float] = {}
    for s in runs:
        for r, n in (s.get("drops") or {}).get("by_reason", {}).items():
            reasons[r] = reasons.get(r, 0) + n / len(runs)
    row["drops_by_reason"] = reasons
    return row


def report_json(summaries: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """{"scenarios": {scenario: [row, ...]}, "notes": [...]}: the numbers of `report`."""
    return {"scenarios": {scn: [_row(v, runs) for v, runs in variants.items()]
                          for scn, variants in group(summaries).items()},
            "notes": list(FOOTNOTES)}


def _fmt_steps(row: dict[str, Any], key: str) -> str:
    if row[key] is None:
        return "—"
    text = f"{row[key]:,.0f}"
    k, n = row[key + "_reached"], row["n_runs"]
    return text if k == n else f"{text} ({k}/{n})"


def _seeds_note(row: dict[str, Any]) -> str:
    """" (1 evaluated, 2 unfinished)": how many seeds the win rate is over, where not all."""
    notes = [f"{row['final_n_seeds']} evaluated"] if row["final_n_seeds"] < row["n_runs"] else []
    notes += [f"{row['unfinished']} unfinished"] if row["unfinished"] else []
    return f" ({', '.join(notes)})" if notes else ""


def _fmt_win(row: dict[str, Any]) -> str:
    if row["final_win_rate"] is None:
        return "—"
    if row["ci_kind"] == "t":
        return f"{row['final_win_rate']:.3f} ± {row['ci_half_width']:.3f}"
    lo, hi = row["ci95"]
    return f"{row['final_win_rate']:.3f} [{lo:.3f}, {hi:.3f}]ʷ"


def _fmt_return(row: dict[str, Any]) -> str:
    if row["final_return"] is None:
        return "—"
    half = row["final_return_ci_half_width"]
    return f"{row['final_return']:.1f}" + ("" if half is None else f" ± {half:.1f}")


def report(summaries: Sequence[dict[str, Any]]) -> str:
    """Markdown: a heading and a table per scenario, then the footnotes."""
    data = report_json(summaries)
    show = varying_settings(summaries)
    lines = ["# Results", ""]
    for scn, rows in data["scenarios"].items():
        lines += [f"## {scn}", ""]
        head = ["Method", "β"] + (["Budget"] if "budget" in show else []) + (["Preset"] if "preset" in show else []) + \
            ["Seeds", "Final win rate", "Final return", "Steps to 50%", "Steps to 80%", "Bytes / env step", "Drops"]
        lines += ["| " + " | ".join(head) + " |", "|" + "|".join(["---"] * len(head)) + "|"]
        for r in rows:
            seeds = str(r["n_runs"]) + _seeds_note(r)
            cells = [r["label"], "—" if r["beta"] is None else f"{r['beta']:g}"]
            cells += [str(r["budget"])] if "budget" in show else []
            cells += [str(r["preset"])] if "preset" in show else []
            cells += [seeds, _fmt_win(r), _fmt_return(r), _fmt_steps(r, "steps_to_50"), _fmt_steps(r, "steps_to_80"),
                      "—" if r["bytes_per_env_step"] is None else f"{r['bytes_per_env_step']:,.1f}",
                      "—" if r["drops"] is None else f"{r['drops']:,.1f}"]
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
    lines += [f"{i + 1}. {note}" for i, note in enumerate(FOOTNOTES)]
    return "\n".join(lines) + "\n"


__all__ = ["FOOTNOTES", "report", "report_json"]
