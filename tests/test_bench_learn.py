"""`dwm-net bench learn`: reading evaluations from a run dir, the median rule, one real run."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from launch.bench_cli import _training_wins
from launch.bench_learn import confirm, evals, summarize, training_wins
from test_launch import processes_of


def _episodes(path: Path, rows: list[tuple[str, int, bool, float]]) -> None:
    with open(path, "w") as f:
        f.writelines(json.dumps({"time": t, "mode": mode, "episode": i, "env_steps": steps,
                                 "return": 20.0 if won else 1.0, "won": won, "length": 10}) + "\n"
                     for i, (mode, steps, won, t) in enumerate(rows))
        f.write('{"time": 99, "mode": "ev')  # a cut last line, as after a crash


def test_evals_group_complete_evaluations_only(tmp_path: Path) -> None:
    _episodes(tmp_path / "episodes.jsonl", [
        ("eval", 0, False, 1.0), ("eval", 0, False, 2.0),
        ("train", 50, True, 3.0),
        ("eval", 100, True, 4.0), ("eval", 100, False, 5.0),
        ("eval", 200, True, 6.0)])  # the eval at 200 is still running: one of two episodes
    got = evals(tmp_path, episodes_per_eval=2)
    assert [(e["env_steps"], e["win_rate"], e["time"]) for e in got] == [(0, 0.0, 2.0), (100, 0.5, 5.0)]
    assert got[1]["return"] == pytest.approx(10.5)


def test_training_wins_count_training_episodes_only(tmp_path: Path) -> None:
    _episodes(tmp_path / "episodes.jsonl", [
        ("train", 40, False, 1.0), ("eval", 50, True, 2.0), ("train", 90, True, 3.0),
        ("train", 130, False, 4.0), ("train", 170, True, 5.0)])
    assert training_wins(tmp_path) == {"episodes": 4, "won": 2, "first_win_env_steps": 90}
    _episodes(tmp_path / "episodes.jsonl", [("train", 40, False, 1.0), ("eval", 50, True, 2.0)])
    assert training_wins(tmp_path) == {"episodes": 1, "won": 0, "first_win_env_steps": None}
    # the table's cell: won / played, and where the first win came
    assert _training_wins({"episodes": 1500, "won": 3, "first_win_env_steps": 24038}) == "3 / 1,500 (24,038)"
    assert _training_wins({"episodes": 7, "won": 0, "first_win_env_steps": None}) == "0 / 7"


def test_training_wins_split_by_the_noise_where_a_run_had_it(tmp_path: Path) -> None:
    rows = [("train", 40, True, True), ("train", 80, False, False), ("train", 120, True, True),
            ("train", 160, True, False), ("train", 200, True, False)]
    with open(tmp_path / "episodes.jsonl", "w") as f:
        f.writelines(json.dumps({"time": i, "mode": m, "episode": i, "env_steps": s, "won": w,
                                 "return": 1.0, "length": 40, "noise": n}) + "\n"
                     for i, (m, s, w, n) in enumerate(rows))
    got = training_wins(tmp_path)
    assert got == {"episodes": 5, "won": 4, "first_win_env_steps": 40, "won_noise": 2,
                   "first_plain_win_env_steps": 160}
    assert _training_wins(got) == "4 / 5 (40), 2 noisy"


def test_median_needs_more_than_half_the_seeds() -> None:
    runs = [{"reached": True, "wall_s_to_target": 100.0, "env_steps_to_target": 5000},
            {"reached": True, "wall_s_to_target": 300.0, "env_steps_to_target": 9000},
            {"reached": False}]
    s = summarize(runs)
    assert (s["reached"], s["median_wall_s_to_target"], s["median_env_steps_to_target"]) == (2, 300.0, 9000)
    s = summarize(runs[1:])
    assert s["median_wall_s_to_target"] is None  # (300 + inf) / 2: not reached


def test_confirm_reports_a_failed_eval_instead_of_raising(tmp_path: Path) -> None:
    got = confirm(tmp_path / "no-such-run", 3)
    assert set(got) == {"error"} and "exited 2" in got["error"]


@pytest.mark.timeout(120)
def test_bench_learn_times_a_real_launch(tmp_path: Path) -> None:
    r = subprocess.run([sys.executable, "-m", "launch", "bench", "learn", "--preset", "tiny", "--target", "0",
                        "--max-minutes", "1", "--seeds", "1", "--first-seed", "2", "--eval-every", "100", "--eval-episodes", "2", "--confirm", "3",
                        "--set", "train.explore_eps=0.1", "--probe-seconds", "0.4", "--root", str(tmp_path), "--json"],
                       capture_output=True, check=False, text=True, timeout=110)
    assert r.returncode == 0, r.stderr
    report = json.loads(r.stdout)
    run = report["runs"][0]
    assert report["reached"] == 1 and run["env_steps_to_target"] == 0  # the eval before training
    assert 0 < run["wall_s_to_target"] <= run["elapsed_s"]
    # the run has exploration noise (--set below), so its wins are split by it
    assert set(run["training"]) == {"episodes", "won", "first_win_env_steps", "won_noise",
                                    "first_plain_win_env_steps"}
    assert 0 <= run["training"]["won_noise"] <= run["training"]["won"]
    # Reached, so the final agents were evaluated again, on 3 more episodes.
    assert run["confirm"]["episodes"] == 3 and 0.0 <= run["confirm"]["win_rate"] <= 1.0
    assert {"act", "wait"} <= set(run["timers"]["agents"][0]) and "env" in run["timers"]["env_host"]
    assert not processes_of(tmp_path)
    speed = report["machine_speed"]  # the fixed probe of how fast this machine is
    assert speed["wm_updates_per_s"] > 0 and speed["ac_updates_per_s"] > 0 and "--preset cpu" in speed["probe"]
    # The overrides are in the report and reach the run.
    assert report["set"] == ["train.explore_eps=0.1"]
    config = json.loads((Path(run["run_dir"]) / "config.json").read_text())["config"]
    assert config["train"]["explore_eps"] == 0.1
    assert run["seed"] == config["run"]["seed"] == 2 and run["run_dir"].endswith("-s2")
