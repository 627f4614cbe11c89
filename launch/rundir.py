"""The run directory: its name, its `config.json`, and reading it back.

Layout (everything a plot shows is recomputed from these files)::

    runs/<time>-<scenario>-<method>[-b<beta>]/   (-b<beta>: the sharing methods only)
      launch.lock          held (flock) by the launcher running the run; holds its pid
      config.json          resolved config, seeds, agent count, how it was started, git commit
      done.json            the run reached its steps (finish time, restarts per process)
      episodes.jsonl       one line per train or eval episode (env host)
      agent-<i>.jsonl      one line per training episode of agent i (losses, bytes, counters)
      ledger-<i>.jsonl     every send and drop on agent i's link (comms.ledger)
      learner.jsonl        centralized only: the learner's training rounds
      checkpoints/         agent-<i>/step-<N>/, learner/..., env-host.json
      tb/                  TensorBoard event files (agent-<i>, env-host, learner)
      logs/                each process's stdout and stderr
"""

from __future__ import annotations

import fcntl
import json
import os
import platform
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import IO, Any

from dwm_net.config import Config, ConfigError, from_json, load_config, to_dict
from dwm_net.envs.maps import MAPS
from dwm_net.runlog import write_json_atomic
from dwm_net.seeding import agent_seeds, derive_seed

CONFIG_FILE = "config.json"
HOST_STATE_FILE = "checkpoints/env-host.json"  # the env host's counters and timers
DONE_FILE = "done.json"  # written by the launcher when the run reached its steps
LOCK_FILE = "launch.lock"  # flock'ed by the launcher for the run's whole life


class RunDirError(ValueError):
    """A run directory that cannot be used as asked; one line naming the fix."""


def default_run_dir(cfg: Config, root: Path = Path("runs")) -> Path:
    """``<root>/<time>-<scenario>-<method>[-b<beta>]``: β only for the methods it applies to, as
    `dwm-net sweep` names its cells."""
    from .sweep import BETA_METHODS  # here: launch.sweep imports this module

    stamp = time.strftime("%Y%m%d-%H%M%S")
    beta = f"-b{cfg.share.beta:g}" if cfg.share.method in BETA_METHODS else ""
    return root / f"{stamp}-{cfg.env.scenario}-{cfg.share.method}{beta}"


_HELD: dict[Path, IO[str]] = {}  # run dir -> its open lock file, held until this process exits


def lock_run_dir(run_dir: Path) -> None:
    """Hold `run_dir`'s launch lock for the rest of this process's life, so a second launcher
    (a `--resume` of a live run, a sweep cell run by hand) cannot start processes on the same
    run. `RunDirError` naming the holder's pid if another process holds it. flock is released
    by the kernel when the holder dies however it dies: no stale lock to clean up. Calling it
    again in the holding process is a no-op."""
    key = Path(os.path.realpath(run_dir))
    if key in _HELD:
        return
    # Opened without truncating: the holder's pid must stay readable until we hold the lock. Not
    # written atomically (temp + rename) on purpose: the lock belongs to this file, not a new one.
    try:
        fh = open(key / LOCK_FILE, "a+", encoding="utf-8")  # noqa: SIM115 (held for the process's life)
    except OSError as e:
        raise RunDirError(f"cannot open {run_dir / LOCK_FILE} ({e.strerror or e}); choose another "
                          f"--run-dir") from None
    try:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        fh.seek(0)
        pid = fh.read().strip()
        fh.close()
        raise RunDirError(f"{run_dir} is in use by another dwm-net launch (pid {pid or 'unknown'}); "
                          f"wait for it or stop it") from None
    except OSError as e:  # a file system without locks: say so rather than run unguarded
        fh.close()
        raise RunDirError(f"cannot lock {run_dir / LOCK_FILE} ({e.strerror or e}); choose a --run-dir "
                          f"on a local file system") from None
    fh.truncate(0)
    fh.write(f"{os.getpid()}\n")
    fh.flush()
    _HELD[key] = fh


def n_agents_of(scenario: str) -> int:
    return MAPS[scenario].n_agents


def run_record(cfg: Config, argv: list[str] | None = None) -> dict[str, Any]:
    """What `config.json` holds: the resolved config plus the seeds every process derives, and
    the preset's values as the code had them at launch (`preset_config`), so that a later
    change to a preset does not change which settings a summary calls this run's overrides."""
    n = n_agents_of(cfg.env.scenario)
    seed = cfg.run.seed
    return {
        "config": to_dict(cfg),
        "preset_config": to_dict(load_config(cfg.preset)),
        "n_agents": n,
        "seeds": {"base": seed, "agents": agent_seeds(seed, n),
                  "init": derive_seed(seed, 0, "init"), "env": derive_seed(seed, 0, "env"),
                  "processes": [derive_seed(seed, i, "process") for i in range(n)]},
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "host": {"hostname": socket.gethostname(), "python": platform.python_version()},
        "code": code_version(),
        "command": argv if argv is not None else sys.argv,
    }


def code_version() -> dict[str, Any]:
    """The git commit of the code that runs (and whether the tree had uncommitted changes);
    empty outside a git checkout."""
    root = Path(__file__).resolve().parents[1]
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, check=False,
                                text=True, timeout=5)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, check=False, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return {}
    if commit.returncode != 0:
        return {}
    return {"commit": commit.stdout.strip(), "dirty": bool(dirty.stdout.strip())}


def write_config(run_dir: Path, cfg: Config, argv: list[str] | None = None) -> None:
    write_json_atomic(run_dir / CONFIG_FILE, run_record(cfg, argv))


def extend_run(run_dir: Path, steps: int, argv: list[str] | None = None) -> None:
    """Set a resumed run's `run.steps` in its config.json and nothing else: when it was
    created, by which command and code, and its preset's values then (`run_record`) stay; the
    extension is appended to ``extended``."""
    path = run_dir / CONFIG_FILE
    record = json.loads(path.read_text(encoding="utf-8"))
    record["config"]["run"]["steps"] = steps
    record.setdefault("extended", []).append({"time": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "steps": steps,
                                              "command": argv if argv is not None else sys.argv})
    write_json_atomic(path, record)


def read_config(run_dir: Path) -> Config:
    """The config a run directory was started with; `RunDirError` if there is none."""
    path = run_dir / CONFIG_FILE
    if not run_dir.is_dir():
        raise RunDirError(f"run directory {run_dir} not found; pass the folder a launch created "
                          f"(runs/<time>-<scenario>-<method>[-b<beta>])")
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise RunDirError(f"{run_dir} holds no {CONFIG_FILE}: not a dwm-net run directory") from None
    except UnicodeDecodeError as e:
        raise RunDirError(f"{path} is not UTF-8 text ({_bad_byte(e)}); it is not a usable run "
                          f"directory") from None
    except (OSError, json.JSONDecodeError) as e:
        raise RunDirError(f"{path} is unreadable ({e}); it is not a usable run directory") from None
    return config_from_record(record, path)


def _bad_byte(e: UnicodeDecodeError) -> str:
    """"byte 0xff at offset 12": where a file stops being UTF-8."""
    return f"byte 0x{e.object[e.start]:02x} at offset {e.start}"


def config_from_record(record: Any, where: Path | str) -> Config:
    if not isinstance(record, dict) or not isinstance(record.get("config"), dict):
        raise RunDirError(f"{where} has no 'config' object: not a dwm-net run config")
    try:
        return from_json(json.dumps(record["config"]))
    except ConfigError as e:
        raise RunDirError(f"{where}: {e}") from None


def read_host_state(run_dir: Path) -> dict[str, Any]:
    """The env host's saved counters (env_steps, episodes, ..., timers); {} if none yet or
    unreadable (a run that has not finished an episode)."""
    try:
        data = json.loads((run_dir / HOST_STATE_FILE).read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def read_config_file(path: Path) -> Config:
    """A `config.json` handed to a process by path (the launcher does this)."""
    try:
        record = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise RunDirError(f"config file {path} not found") from None
    except UnicodeDecodeError as e:
        raise RunDirError(f"config file {path} is not UTF-8 text ({_bad_byte(e)}); pass a run's "
                          f"config.json") from None
    except (OSError, json.JSONDecodeError) as e:
        raise RunDirError(f"config file {path} is unreadable ({e})") from None
    return config_from_record(record, path)


__all__ = [
    "CONFIG_FILE",
    "DONE_FILE",
    "HOST_STATE_FILE",
    "LOCK_FILE",
    "RunDirError",
    "config_from_record",
    "default_run_dir",
    "extend_run",
    "lock_run_dir",
    "n_agents_of",
    "read_config",
    "read_config_file",
    "read_host_state",
    "run_record",
    "write_config",
]
