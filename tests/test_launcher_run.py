"""The launcher's own behaviour without training: its run-dir lock, what it prints, its final
frame, and run-dir names. Children are stand-in `sleep` processes; nothing trains."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path
from typing import Any, Self

import pytest

from comms.messages import MetricsMsg
from dwm_net.config import load_config
from launch import launcher as launcher_mod
from launch import rundir
from launch.launcher import LaunchArgs, Launcher
from launch.live import ENV_HOST
from launch.rundir import RunDirError, default_run_dir, lock_run_dir
from launch.sweep import Cell

SLEEP = [sys.executable, "-c", "import time; time.sleep(60)"]


@pytest.fixture(autouse=True)
def own_locks(monkeypatch: pytest.MonkeyPatch) -> None:
    """Locks taken in this test are dropped with it (their files close when the dict goes)."""
    monkeypatch.setattr(rundir, "_HELD", {})
    monkeypatch.setattr(signal, "signal", lambda *a: None)  # keep pytest's own Ctrl-C handler


def stand_in_launcher(run: Path, monkeypatch: pytest.MonkeyPatch, live: bool, method: str = "experience") -> Launcher:
    """A launcher whose env host and agents are sleeping processes and whose run ends at its
    first check, as when the env host finished."""
    run.mkdir(exist_ok=True)
    cfg = load_config("tiny", overrides=[f"share.method={method}"])
    monkeypatch.setattr(Launcher, "commands", lambda self, control, metrics: [
        ("env-host", ENV_HOST, SLEEP), ("agent", 0, SLEEP), ("agent", 1, SLEEP)])
    monkeypatch.setattr(Launcher, "_check_children", lambda self: 0)
    return Launcher(LaunchArgs(cfg, run, 2, live=live))


def test_the_final_frame_shows_how_each_process_ended(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    frames: list[dict[int, str]] = []

    class Recorder:  # stands in for the terminal view: what each frame would show
        def __init__(self, info: Any, state: Any) -> None:
            self.state = state

        def __enter__(self) -> Self:
            return self

        def refresh(self, now: float | None = None, force: bool = False) -> bool:
            frames.append(dict(self.state.statuses))
            return True

        def __exit__(self, *exc: object) -> None:
            self.refresh(force=True)

    monkeypatch.setattr(launcher_mod, "LiveView", Recorder)
    assert stand_in_launcher(tmp_path / "run", monkeypatch, live=True).run() == 0
    assert set(frames[-1]) == {ENV_HOST, 0, 1}
    assert all(status.startswith("exited") for status in frames[-1].values()), frames[-1]


def test_plain_mode_prints_the_run_dir_first_and_last(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    run = tmp_path / "run"
    assert stand_in_launcher(run, monkeypatch, live=False, method="independent").run() == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == lines[-1] == f"run dir: {run}"
    assert " b=" not in lines[-2]  # β means nothing to independent training


def test_a_run_dir_in_use_refuses_a_second_launcher(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    run = tmp_path / "run"
    run.mkdir()
    hold = ("import sys, time; from pathlib import Path; from launch.rundir import lock_run_dir; "
            "lock_run_dir(Path(sys.argv[1])); print('held', flush=True); time.sleep(60)")
    holder = subprocess.Popen([sys.executable, "-c", hold, str(run)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        launcher = stand_in_launcher(run, monkeypatch, live=False)
        assert launcher.run() == 2
        err = capsys.readouterr().err.strip()
        assert err == (f"error: {run} is in use by another dwm-net launch (pid {holder.pid}); "
                       "wait for it or stop it")
        assert not launcher.children and not (run / "logs").exists()  # nothing started
    finally:
        holder.kill()
        holder.wait()
    lock_run_dir(run)  # the kernel released the dead holder's lock: no stale lock
    lock_run_dir(run)  # and taking it again in the holding process is a no-op


def test_a_lock_that_cannot_be_taken_is_a_run_dir_error(tmp_path: Path) -> None:
    with pytest.raises(RunDirError, match="cannot open .*launch.lock"):
        lock_run_dir(tmp_path / "missing")


@pytest.mark.parametrize("method, beta", [("independent", None), ("centralized", None), ("experience", 0.05),
                                          ("both", 1.0)])
def test_run_dir_names_carry_beta_only_where_it_applies(method: str, beta: float | None, tmp_path: Path) -> None:
    cfg = load_config("tiny", overrides=[f"share.method={method}", "share.beta=0.05" if beta == 0.05 else "share.beta=1"])
    name = default_run_dir(cfg, tmp_path).name
    cell = Cell(cfg.env.scenario, method, beta, 0).name  # how a sweep names the same cell
    assert name.endswith("-" + cell.removesuffix("-s0"))
    assert ("-b" in name) == (beta is not None)


def test_metrics_from_a_sender_that_is_not_a_child_are_ignored_and_counted(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    launcher = stand_in_launcher(tmp_path / "run", monkeypatch, live=False)
    launcher.children = [launcher_mod.Child(role, member, argv, tmp_path / f"{member}.log")
                         for role, member, argv in launcher.commands("", None)]

    class Collector:  # what the loopback port received: one of ours, a stranger twice
        def poll(self, timeout_s: float) -> list[MetricsMsg]:
            return [MetricsMsg(sender=0, seq=0, step=5, values={"env_steps": 5}),
                    MetricsMsg(sender=7, seq=0, step=1, values={"env_steps": 99}),
                    MetricsMsg(sender=7, seq=1, step=2, values={"env_steps": 98})]

    launcher.collector = Collector()  # type: ignore[assignment]
    launcher._take_metrics(0.0)
    assert launcher.state.get(0, "env_steps") == 5
    assert 7 not in launcher.state.values and launcher.foreign_metrics == {7: 2}
    assert capsys.readouterr().err.count("ignoring metrics from sender 7") == 1
