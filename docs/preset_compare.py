"""Sample efficiency and cost of two presets at equal env steps, from run directories.

    .venv/bin/python docs/preset_compare.py runs/paper2s/* runs/paper2s-cpu/* [--upto 10000]

Prints a markdown table per preset, one row per run: greedy eval mean return at each evaluation
up to `--upto` env steps, the mean training-episode return per 2.5k-step window, and what the
run cost until then (wall seconds, agent 0's training seconds, training rounds, world-model and
actor-critic updates). Everything comes from the runs' own logs (episodes.jsonl, agent-0.jsonl,
config.json); nothing is estimated.
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

from dwm_net.runlog import read_jsonl

WINDOW = 2500


def run_row(run: Path, upto: int) -> dict:
    cfg = json.loads((run / "config.json").read_text())["config"]
    episodes = list(read_jsonl(run / "episodes.jsonl"))
    evals: dict[int, list[float]] = {}
    windows: dict[int, list[float]] = {}
    for e in episodes:
        if e["env_steps"] > upto + 100:  # an evaluation is taken just after its step (e.g. 10,049)
            continue
        if e["mode"] == "eval":
            evals.setdefault(round(e["env_steps"] / WINDOW) * WINDOW, []).append(e["return"])
        elif e["env_steps"] <= upto:
            windows.setdefault(min(e["env_steps"] // WINDOW, upto // WINDOW - 1), []).append(e["return"])
    agent = [r for r in read_jsonl(run / "agent-0.jsonl") if r.get("env_steps", 0) <= upto]
    last = agent[-1] if agent else {}
    train = [e for e in episodes if e["mode"] == "train" and e["env_steps"] <= upto]
    return {
        "run": run.name, "preset": cfg["preset"], "seed": cfg["run"]["seed"],
        "eval": {k: statistics.mean(v) for k, v in sorted(evals.items())},
        "train": {(k + 1) * WINDOW: statistics.mean(v) for k, v in sorted(windows.items())},
        "wins": sum(e["won"] for e in train), "episodes": len(train),
        "wall_s": (train[-1]["time"] - episodes[0]["time"]) if train else None,
        "train_s": last.get("time/train"), "rounds": last.get("train_rounds"),
        "wm_updates": last.get("wm_updates"), "ac_updates": last.get("ac_updates"),
    }


def table(rows: list[dict]) -> str:
    evals = sorted({k for r in rows for k in r["eval"]})
    trains = sorted({k for r in rows for k in r["train"]})
    head = (["preset", "seed"] + [f"eval@{k / 1000:g}k" for k in evals] + [f"train≤{k / 1000:g}k" for k in trains]
            + ["wins/episodes", "wall s", "agent-0 train s", "rounds", "WM / AC updates"])
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]

    def cell(x: float | None, fmt: str = "{:.1f}") -> str:
        return "—" if x is None else fmt.format(x)

    for r in rows:
        out.append("| " + " | ".join(
            [r["preset"], str(r["seed"])] + [cell(r["eval"].get(k)) for k in evals]
            + [cell(r["train"].get(k)) for k in trains]
            + [f"{r['wins']}/{r['episodes']}", cell(r["wall_s"], "{:.0f}"), cell(r["train_s"], "{:.0f}"),
               str(r["rounds"]), f"{r['wm_updates']} / {r['ac_updates']}"]) + " |")
    means = ["**mean**", ""] + [cell(statistics.mean(r["eval"][k] for r in rows if k in r["eval"])) for k in evals] \
        + [cell(statistics.mean(r["train"][k] for r in rows if k in r["train"])) for k in trains] + [""] * 5
    out.append("| " + " | ".join(means) + " |")
    return "\n".join(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="+", type=Path)
    ap.add_argument("--upto", type=int, default=10_000, help="compare up to this many env steps")
    args = ap.parse_args()
    rows = [run_row(r, args.upto) for r in args.runs if (r / "config.json").exists()]
    for preset in sorted({r["preset"] for r in rows}):
        print(f"\n### {preset}\n")
        print(table(sorted((r for r in rows if r["preset"] == preset), key=lambda r: r["seed"])))


if __name__ == "__main__":
    main()
