"""End to end: `dwm-net launch` as users run it (subprocesses, tcp loopback, the tiny preset).

Each run is a real launcher with a real env host and agent processes. Waits poll a condition
(a file, a process) with a deadline; none sleeps a fixed time to synchronize.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from dwm_net.runlog import read_jsonl

PY = sys.executable
RUN_FILES = ("config.json", "done.json", "episodes.jsonl", "agent-0.jsonl", "agent-1.jsonl", "ledger-0.jsonl",
             "ledger-1.jsonl", "checkpoints/env-host.json", "checkpoints/agent-0/latest.json",
             "checkpoints/agent-1/latest.json", "logs/env-host.log", "logs/agent-0.log")


def dwm(*args: str, timeout: float = 90) -> subprocess.CompletedProcess[str]:
    return subprocess.run([PY, "-m", "launch", *args], capture_output=True, check=False, text=True, timeout=timeout)


def start(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([PY, "-m", "launch", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def start_tiny(run: Path, *flags: str) -> subprocess.Popen[str]:
    """`dwm-net launch` with the tiny preset into `run`, no live view, plus `flags`."""
    return start("launch", "--preset", "tiny", *flags, "--run-dir", str(run), "--no-live")


def wait_for(cond: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.05)  # polling interval of a condition, not synchronization by sleeping


def processes_of(run_dir: Path) -> dict[int, str]:
    """pid -> command line of every live process whose command line names `run_dir`."""
    out = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            state = next((ln for ln in (entry / "status").read_text().splitlines()
                          if ln.startswith("State:")), "")
        except OSError:
            continue
        if str(run_dir) in cmd and "zombie" not in state:
            out[int(entry.name)] = cmd
    return out


def kill_agent(run_dir: Path, agent_id: int) -> None:
    """SIGKILL the one live agent process `agent_id` of the run."""
    victims = [pid for pid, cmd in processes_of(run_dir).items() if f" agent --id {agent_id} " in cmd]
    assert len(victims) == 1, victims
    os.kill(victims[0], signal.SIGKILL)


def train_steps(run_dir: Path) -> int:
    return max((r["env_steps"] for r in read_jsonl(run_dir / "episodes.jsonl")
                if r.get("mode") == "train"), default=0)


@pytest.mark.timeout(120)
@pytest.mark.parametrize("method", ["independent", "centralized", "experience", "rollout", "both"])
def test_each_method_completes_and_writes_the_run_dir(method: str, tmp_path: Path) -> None:
    run = tmp_path / "run"
    r = dwm("launch", "--agents", "2", "--scenario", "2s_vs_1sc", "--method", method, "--beta", "0.5",
            "--preset", "tiny", "--steps", "300", "--run-dir", str(run), "--no-live")
    assert r.returncode == 0, r.stderr + r.stdout
    for name in RUN_FILES:
        assert (run / name).is_file(), f"{name} missing after a {method} run"
    for part in ("agent-0", "agent-1", "env-host"):
        assert list((run / "tb" / part).glob("events.out.tfevents.*")), f"no TensorBoard events for {part}"
    episodes = list(read_jsonl(run / "episodes.jsonl"))
    assert train_steps(run) >= 300
    assert {e["mode"] for e in episodes} == {"train", "eval"}
    config = json.loads((run / "config.json").read_text())
    assert config["config"]["share"]["method"] == method
    assert len(config["seeds"]["agents"]) == 2
    agent0 = list(read_jsonl(run / "agent-0.jsonl"))
    assert agent0 and agent0[-1]["env_steps"] >= train_steps(run)
    assert agent0[-1].get("final") is True and "time/act" in agent0[-1]  # written at the stop
    if method == "centralized":
        assert (run / "learner.jsonl").is_file() and (run / "ledger-learner.jsonl").is_file()
        assert agent0[-1].get("received/params", 0) >= 1  # acting with the learner's networks
        assert agent0[-1]["wm_updates"] == 0  # agents do not train
        # Chunks go to the learner only: agent 0 sent some and heard none of agent 1's.
        assert agent0[-1]["sent_bytes/experience"] > 0 and agent0[-1].get("recv_bytes/experience", 0) == 0
    elif method == "independent":
        assert agent0[-1]["sent_bytes"] == 0
    else:
        kind = {"experience": "experience", "rollout": "rollout", "both": "rollout"}[method]
        assert agent0[-1][f"shared/{kind}"] > 0 and agent0[-1][f"sent_bytes/{kind}"] > 0
    assert not processes_of(run), "a process of the run outlived the launcher"


@pytest.mark.timeout(120)
def test_centralized_agents_act_with_the_learners_averaged_actor(tmp_path: Path) -> None:
    """With train.actor_ema the learner ships its averaged actor; the agents load it."""
    run = tmp_path / "run"
    r = dwm("launch", "--agents", "2", "--scenario", "2s_vs_1sc", "--method", "centralized", "--preset", "tiny",
            "--steps", "300", "--set", "train.actor_ema=0.9", "--run-dir", str(run), "--no-live")
    assert r.returncode == 0, r.stderr + r.stdout
    agent0 = list(read_jsonl(run / "agent-0.jsonl"))
    assert agent0[-1].get("received/params", 0) >= 1 and agent0[-1].get("rejected", 0) == 0


@pytest.mark.timeout(150)
def test_kill_9_of_an_agent_is_recovered_and_the_run_completes(tmp_path: Path) -> None:
    run = tmp_path / "run"
    proc = start_tiny(run, "--method", "experience", "--steps", "1500", "--set", "run.checkpoint_every=100")
    try:
        wait_for(lambda: (run / "checkpoints/agent-1/latest.json").exists(), 90, "a checkpoint of agent 1")
        kill_agent(run, 1)
        out, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 0, err + out
    assert train_steps(run) >= 1500
    log = (run / "logs/agent-1.log").read_text()
    assert "resumed from" in log  # the restarted process loaded its checkpoint
    assert not processes_of(run)


@pytest.mark.timeout(120)
def test_an_agent_that_keeps_dying_stops_the_run_with_a_message(tmp_path: Path) -> None:
    run = tmp_path / "run"
    proc = start_tiny(run, "--steps", "100000", "--max-restarts", "0")
    try:
        wait_for(lambda: train_steps(run) > 0, 90, "the first training episode")
        kill_agent(run, 0)
        _out, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 1
    assert "agent-0 died 1 time " in err and "logs/agent-0.log" in err and "--resume" in err
    wait_for(lambda: not processes_of(run), 5, "every process to exit")
    assert not (run / "done.json").exists()


@pytest.mark.timeout(150)
def test_sigint_stops_everything_within_5_s_and_resume_continues(tmp_path: Path) -> None:
    run = tmp_path / "run"
    # Periodic checkpoints too, so the test does not depend on where the signal lands.
    proc = start_tiny(run, "--steps", "100000", "--set", "run.checkpoint_every=50", "--beta", "1")
    try:
        wait_for(lambda: (run / "checkpoints/agent-0/latest.json").exists()
                 and (run / "checkpoints/agent-1/latest.json").exists(), 90, "the first checkpoints")
        children = processes_of(run)
        assert len(children) >= 3  # env host and two agents (and the launcher itself)
        sent = time.monotonic()
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=10)
        wait_for(lambda: not processes_of(run), 5.0 - (time.monotonic() - sent), "every process to exit")
    finally:
        proc.kill()
    assert proc.returncode == 130
    assert not (run / "done.json").exists()  # stopped, not finished
    stopped_at = train_steps(run)
    assert (run / "checkpoints/agent-0/latest.json").exists()
    before = json.loads((run / "config.json").read_text())
    r = dwm("launch", "--resume", str(run), "--steps", str(stopped_at + 200), "--no-live", timeout=120)
    assert r.returncode == 0, r.stderr + r.stdout
    assert train_steps(run) >= stopped_at + 200
    # Extending changed run.steps and nothing of the run's provenance.
    after = json.loads((run / "config.json").read_text())
    assert after["config"]["run"]["steps"] == stopped_at + 200
    assert [after[k] for k in ("created", "command", "code", "preset_config")] == \
        [before[k] for k in ("created", "command", "code", "preset_config")]
    assert [e["steps"] for e in after["extended"]] == [stopped_at + 200]
    assert "resuming at" in (run / "logs/env-host.log").read_text()
    assert "resumed from" in (run / "logs/agent-0.log").read_text()
    # Byte totals in the agent's records go on across the restart instead of falling to 0.
    sent = [r["sent_bytes"] for r in read_jsonl(run / "agent-0.jsonl") if "sent_bytes" in r]
    assert sent[-1] > 0 and sent == sorted(sent)
    # The run is finished: resuming it again says so and starts nothing.
    lines = len((run / "episodes.jsonl").read_text().splitlines())
    r = dwm("launch", "--resume", str(run), "--no-live", timeout=60)
    assert r.returncode == 0 and "is finished" in r.stdout, r.stdout + r.stderr
    assert len((run / "episodes.jsonl").read_text().splitlines()) == lines


@pytest.mark.timeout(60)
@pytest.mark.parametrize("args, message", [
    (["--agents", "3", "--scenario", "2s_vs_1sc"], "--agents 3 does not match 2s_vs_1sc, which has 2 agents"),
    (["--beta", "1.5"], "bad value for share.beta"),
    (["--method", "gossip"], "bad value for share.method"),
    (["--budget", "5XB/s"], "bad value for comms.budget"),
    (["--scenario", "8m"], "bad value for env.scenario"),
    (["--set", "model.hiden=3"], "unknown config key"),
    (["--resume", "/nonexistent/run"], "run directory /nonexistent/run not found"),
    (["--keys", "/nonexistent/keys"], "key directory /nonexistent/keys not found"),
    (["--backend", "sc2"], "StarCraft"),
])
def test_bad_flags_are_one_line_usage_errors(args: list[str], message: str, tmp_path: Path) -> None:
    where = [] if "--resume" in args else ["--run-dir", str(tmp_path / "run")]
    r = dwm("launch", *where, "--no-live", *args)
    assert r.returncode == 2
    assert message in r.stderr
    assert "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr


@pytest.mark.timeout(120)
def test_eval_reports_a_win_rate_with_an_interval(tmp_path: Path) -> None:
    run = tmp_path / "run"
    assert dwm("launch", "--preset", "tiny", "--steps", "200", "--run-dir", str(run), "--no-live").returncode == 0
    r = dwm("eval", str(run), "--episodes", "5", "--json")
    assert r.returncode == 0, r.stderr
    result = json.loads(r.stdout)
    assert result["episodes"] == 5 and 0 <= result["win_rate"] <= 1
    lo, hi = result["win_rate_ci95"]
    assert lo <= result["win_rate"] <= hi
    assert min(result["env_steps"]) >= 200
    again = dwm("launch", "--preset", "tiny", "--run-dir", str(run), "--no-live")
    assert again.returncode == 2 and "already holds a run" in again.stderr
    missing = dwm("eval", str(run), "--checkpoint", "step-7")
    assert missing.returncode == 2 and "checkpoint 'step-7' not found" in missing.stderr
    not_a_run = dwm("eval", str(tmp_path))
    assert not_a_run.returncode == 2 and "not a dwm-net run directory" in not_a_run.stderr
    # A damaged checkpoint file: one line naming it and the way out, not a torch traceback.
    latest = json.loads((run / "checkpoints" / "agent-0" / "latest.json").read_text())["dir"]
    weights = run / "checkpoints" / "agent-0" / latest / "learner.pt"
    weights.write_bytes(weights.read_bytes()[:1000])
    damaged = dwm("eval", str(run), "--episodes", "1")
    assert damaged.returncode == 2 and "Traceback" not in damaged.stderr, damaged.stderr
    assert f"checkpoint {weights.parent} cannot be loaded" in damaged.stderr
    assert "pass --checkpoint N for another one" in damaged.stderr


def test_env_host_process_loads_no_torch() -> None:
    # The env host only steps the simulator: importing torch would cost it ~1.5 s of CPU at every
    # start and ~150 MB of memory for nothing (it once did, through `StopFlag`).
    code = ("import sys, launch.run_cli, launch.envhost; "
            "assert 'torch' not in sys.modules, 'the env host imports torch'")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


@pytest.mark.timeout(60)
def test_a_part_stopped_while_waiting_for_the_others_exits_0_at_once(tmp_path: Path) -> None:
    # Ctrl-C on an env host still waiting for agents, or on an agent still waiting for its env
    # host, once had to sit out the 300 s / 120 s registration timeouts.
    import zmq

    host = start("env-host", "--bind", "tcp://127.0.0.1:0", "--run-dir", str(tmp_path / "host"),
                 "--preset", "tiny")
    assert host.stderr is not None
    while "control channel" not in (line := host.stderr.readline()):
        assert line, "the env host exited before it listened"
    ctx = zmq.Context()
    silent = ctx.socket(zmq.ROUTER)  # an env host that takes the registration and never answers
    silent.setsockopt(zmq.LINGER, 0)
    port = silent.bind_to_random_port("tcp://127.0.0.1")
    agent = start("agent", "--id", "0", "--connect", f"tcp://127.0.0.1:{port}", "--run-dir",
                  str(tmp_path / "agent"), "--preset", "tiny")
    try:
        assert silent.poll(30_000), "the agent never registered"  # it now waits for a spec
        for part in (host, agent):
            part.send_signal(signal.SIGINT)
            t0 = time.monotonic()
            _, err = part.communicate(timeout=15)
            assert part.returncode == 0, err
            assert time.monotonic() - t0 < 5 and "stopped on SIGINT while waiting" in err
    finally:
        for part in (host, agent):
            part.kill()
        silent.close()
        ctx.term()


def test_print_commands_names_every_process(tmp_path: Path) -> None:
    r = dwm("launch", "--scenario", "3m", "--method", "centralized", "--run-dir", str(tmp_path / "r"),
            "--print-commands")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert sum("dwm-net env-host" in ln for ln in lines) == 1
    assert sum("dwm-net agent --id" in ln for ln in lines) == 3
    assert sum("dwm-net learner" in ln for ln in lines) == 1
    assert "share.method=centralized" in r.stdout and "env.scenario=3m" in r.stdout
    assert not (tmp_path / "r").exists()  # printing starts nothing and writes nothing


@pytest.mark.timeout(30)
def test_an_agent_that_exits_0_is_not_restarted_while_the_env_host_finishes(tmp_path: Path) -> None:
    # The env host sends stop, the agents save and exit 0 a moment before the host itself
    # exits: such an agent has finished. Restarting it (as once happened under load) left a
    # fresh agent waiting for a host that was gone, and the run hung for DONE_GRACE_S.
    from dwm_net.config import Config
    from launch.launcher import FINISHED_GRACE_S, Child, LaunchArgs, Launcher

    launcher = Launcher(LaunchArgs(cfg=Config(), run_dir=tmp_path, n_agents=1))
    host = Child("env-host", -1, [PY, "-c", "import sys; sys.stdin.read()"], tmp_path / "host.log")
    agent = Child("agent", 0, [PY, "-c", "pass"], tmp_path / "agent.log")
    host.proc = subprocess.Popen(host.argv, stdin=subprocess.PIPE)  # alive until its stdin closes
    agent.start()
    assert agent.proc is not None and agent.proc.wait(timeout=20) == 0
    launcher.children = [host, agent]
    try:
        first = agent.proc
        assert launcher._check_children() is None
        assert agent.restarts == 0 and agent.proc is first
        # Still exited 0 with the env host running long after: stopped alone, so restarted.
        assert agent.exited_ok_at is not None
        agent.exited_ok_at -= FINISHED_GRACE_S + 1
        assert launcher._check_children() is None
        assert agent.restarts == 1 and agent.proc is not first and agent.exited_ok_at is None
    finally:
        assert host.proc.stdin is not None
        host.proc.stdin.close()
        host.proc.wait(timeout=10)
        if agent.proc is not None:
            agent.proc.wait(timeout=20)
        agent.close()


@pytest.mark.timeout(60)
def test_an_endpoint_in_use_or_without_tcp_is_a_one_line_usage_error(tmp_path: Path) -> None:
    import socket

    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = held.getsockname()[1]
        for args, text in ((["env-host", "--bind", f"tcp://127.0.0.1:{port}"], "already in use"),
                           (["agent", "--id", "0", "--connect", "host:5555"], "write it as tcp://HOST:PORT")):
            out = dwm(*args, "--run-dir", str(tmp_path / "run"), "--preset", "tiny", timeout=40)
            assert out.returncode == 2 and text in out.stderr, out.stderr
            assert "Traceback" not in out.stderr


@pytest.mark.timeout(120)
def test_a_second_launcher_on_a_live_run_dir_exits_2_and_starts_nothing(tmp_path: Path) -> None:
    """`launch --resume` of a run whose launcher is still live: one line naming that launcher,
    no second env host. Plain mode names the run dir first and last."""
    run = tmp_path / "run"
    proc = start_tiny(run, "--steps", "100000")
    try:
        wait_for(lambda: train_steps(run) > 0, 90, "the first training episode")
        r = dwm("launch", "--resume", str(run), "--no-live", timeout=60)
        assert r.returncode == 2, r.stderr + r.stdout
        assert r.stderr.strip() == (f"error: {run} is in use by another dwm-net launch (pid {proc.pid}); "
                                    "wait for it or stop it")
        assert sum(" env-host " in cmd for cmd in processes_of(run).values()) == 1
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=15)
    finally:
        proc.kill()
    lines = out.splitlines()
    assert lines[0] == lines[-1] == f"run dir: {run}"
