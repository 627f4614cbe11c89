"""`dwm-net sweep`: grid expansion, skipping finished runs, resuming unfinished ones, stopping."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from launch.sweep import Cell, config_differences, eta_seconds, expand, format_eta, status_of
from test_launch import processes_of, train_steps, wait_for

PY = sys.executable


def sweep(root: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([PY, "-m", "launch", "sweep", "--root", str(root), "--preset", "tiny",
                           "--scenarios", "2s_vs_1sc", *args], capture_output=True, check=False, text=True,
                          timeout=timeout)


def test_expand_uses_betas_only_where_they_mean_something() -> None:
    cells = expand(["2s_vs_1sc", "3m"], ["independent", "centralized", "experience", "rollout", "both"],
                   [0.01, 1.0], [0, 1, 2])
    per_scenario = (1 + 1 + 2 + 2 + 2) * 3
    assert len(cells) == 2 * per_scenario
    assert Cell("3m", "independent", None, 2) in cells
    assert Cell("2s_vs_1sc", "rollout", 1.0, 0) in cells
    assert not any(c.beta is not None for c in cells if c.method in ("independent", "centralized"))
    assert len({c.name for c in cells}) == len(cells)
    assert Cell("3m", "both", 0.01, 1).name == "3m-both-b0.01-s1"


def test_eta_counts_only_progress_made_since_the_start() -> None:
    assert eta_seconds(600.0, 0.5, 0.5) is None  # resumed at 50%, nothing gained yet
    assert eta_seconds(600.0, 0.5, 0.75) == pytest.approx(600.0)  # 25% in 10 min, 25% left
    assert eta_seconds(60.0, 0.0, 0.1) == pytest.approx(540.0)
    assert eta_seconds(60.0, 0.0, 1.0) == 0.0
    assert [format_eta(x) for x in (None, 20.0, 540.0, 3900.0)] == ["eta ?", "eta <1m", "eta 9m", "eta 1h05m"]


def test_config_differences_name_what_differs() -> None:
    recorded = {"preset": "cpu", "run": {"steps": 100, "seed": 0}, "train": {"lr_wm": 3e-4, "old_key": 1}}
    wanted = {"preset": "paper", "run": {"steps": 500, "seed": 0}, "train": {"lr_wm": 2e-4, "new_key": 2}}
    # run.steps may grow (a sweep extends runs); keys only one side has are later or earlier fields.
    assert config_differences(recorded, wanted) == ["preset='cpu' (sweep: 'paper')",
                                                    "train.lr_wm=0.0003 (sweep: 0.0002)"]
    assert config_differences(recorded, recorded) == []


def test_status_reads_done_and_config(tmp_path: Path) -> None:
    run = tmp_path / "r"
    assert status_of(run, 100) == "new"
    run.mkdir()
    (run / "config.json").write_text("{}")
    assert status_of(run, 100) == "unfinished"
    (run / "done.json").write_text(json.dumps({"env_steps": 150}))
    assert status_of(run, 100) == "done"
    assert status_of(run, 200) == "unfinished"  # a longer sweep extends it


@pytest.mark.timeout(200)
def test_sweep_runs_skips_and_resumes(tmp_path: Path) -> None:
    root = tmp_path / "sweep"
    grid = ["--methods", "independent,experience", "--betas", "1", "--seeds", "1", "--steps", "200",
            "--parallel", "2"]
    first = sweep(root, *grid)
    assert first.returncode == 0, first.stdout + first.stderr
    assert "2 finished, 0 skipped, 0 failed" in first.stdout
    names = sorted(p.name for p in root.iterdir() if p.name != "logs")
    assert names == ["2s_vs_1sc-experience-b1-s0", "2s_vs_1sc-independent-s0"]
    for name in names:
        assert (root / name / "done.json").exists() and train_steps(root / name) >= 200
    again = sweep(root, *grid)
    assert again.returncode == 0 and "0 finished, 2 skipped" in again.stdout
    (root / names[0] / "done.json").unlink()  # as if it had been stopped before the end
    resumed = sweep(root, *grid)
    assert resumed.returncode == 0 and "1 finished, 1 skipped" in resumed.stdout, resumed.stdout
    assert (root / names[0] / "done.json").exists()
    assert "resuming at" in (root / names[0] / "logs/env-host.log").read_text()
    # Other settings on the same root would pass the existing runs off as theirs: refused.
    before = {n: (root / n / "done.json").read_text() for n in names}
    other = sweep(root, *grid, "--set", "train.lr_wm=0.001")
    assert other.returncode == 2 and len(other.stderr.strip().splitlines()) == 1, other.stderr
    assert "was made with other settings: train.lr_wm=" in other.stderr and "another --root" in other.stderr
    assert "1 more run" in other.stderr  # both runs named, the second as a count
    assert {n: (root / n / "done.json").read_text() for n in names} == before


@pytest.mark.timeout(200)
def test_ctrl_c_stops_the_sweep_and_the_same_command_continues(tmp_path: Path) -> None:
    root = tmp_path / "sweep"
    run = root / "2s_vs_1sc-independent-s0"
    proc = subprocess.Popen([PY, "-m", "launch", "sweep", "--root", str(root), "--preset", "tiny",
                             "--methods", "independent", "--steps", "100000"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: train_steps(run) > 0, 90, "the sweep's first training episode")
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=20)
    finally:
        proc.kill()
    assert proc.returncode == 130 and "run the same command again" in out
    assert "0 failed, 1 stopped" in out and "failed:" not in err, out + err  # a stop is not a failure
    wait_for(lambda: not processes_of(run), 5, "the run's processes to exit")
    reached = train_steps(run)
    r = sweep(root, "--methods", "independent", "--steps", str(reached + 100))
    assert r.returncode == 0 and "1 finished" in r.stdout, r.stdout + r.stderr
    assert train_steps(run) >= reached + 100


def test_first_seed_names_the_seeds_of_more_runs(tmp_path: Path) -> None:
    r = sweep(tmp_path / "sweep", "--methods", "independent", "--seeds", "2", "--first-seed", "3", "--dry-run")
    assert r.returncode == 0, r.stderr
    names = [Path(line.split()[-1]).name for line in r.stdout.splitlines()]
    assert names == ["2s_vs_1sc-independent-s3", "2s_vs_1sc-independent-s4"]
    bad = sweep(tmp_path / "sweep", "--first-seed", "-1", "--dry-run")
    assert bad.returncode == 2 and not (tmp_path / "sweep").exists()


def test_bad_sweep_flags_are_usage_errors(tmp_path: Path) -> None:
    for args, message in ((["--methods", "gossip"], "bad value for share.method"),
                          (["--betas", "0.1,x"], "--betas must be comma-separated numbers"),
                          (["--betas", "0.1,2"], "bad value for share.beta"),
                          (["--scenarios", ""], "--scenarios is empty")):
        r = subprocess.run([PY, "-m", "launch", "sweep", "--root", str(tmp_path), *args],
                           capture_output=True, check=False, text=True, timeout=60)
        assert r.returncode == 2 and message in r.stderr, (args, r.stderr)
        assert len(r.stderr.strip().splitlines()) == 1
    assert not list(tmp_path.iterdir())  # nothing started
