"""Checkpoint directories: one `step-<N>/` folder per save and a `latest.json` pointer.

A save writes a whole new folder (each file atomic inside it), then replaces `latest.json`
atomically, then prunes old folders. A crash at any point therefore leaves `latest.json`
pointing at a complete checkpoint: the previous one or the new one, never a mix of both.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

from dwm_net.runlog import now, write_json_atomic

LATEST = "latest.json"
KEEP = 2  # checkpoints kept per process: the newest and one before it


class CheckpointError(ValueError):
    """A checkpoint folder that cannot be used; the message says which and what to do."""


def save_checkpoint(root: Path, step: int, save: Callable[[Path], None], keep: int = KEEP) -> Path:
    """`save(folder)` into `root/step-<step>/`, point `latest.json` at it, prune to `keep`."""
    root.mkdir(parents=True, exist_ok=True)
    folder = root / f"step-{step:010d}"
    if folder.exists():  # a retry at the same step: rewrite it whole (latest points elsewhere)
        latest = _read_latest(root)
        if latest == folder:
            write_json_atomic(root / LATEST, {"dir": None, "env_steps": None, "time": now()})
        shutil.rmtree(folder)
    save(folder)
    write_json_atomic(root / LATEST, {"dir": folder.name, "env_steps": step, "time": now()})
    for old in sorted(p for p in root.glob("step-*") if p.is_dir())[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return folder


def _read_latest(root: Path) -> Path | None:
    try:
        data = json.loads((root / LATEST).read_text())
    except (OSError, json.JSONDecodeError):
        return None
    name = data.get("dir") if isinstance(data, dict) else None
    return root / name if isinstance(name, str) and "/" not in name and name.startswith("step-") else None


def latest_checkpoint(root: Path) -> Path | None:
    """The folder `latest.json` points at, or None when there is none yet."""
    folder = _read_latest(root)
    return folder if folder is not None and folder.is_dir() else None


def find_checkpoint(root: Path, name: str | None) -> Path:
    """`name` (a `step-<N>` folder, or N) under `root`, or the latest; a clear error if absent."""
    if name is None:
        folder = latest_checkpoint(root)
        if folder is None:
            raise CheckpointError(f"no checkpoint in {root}: the run saved none yet "
                                  f"(set run.checkpoint_every, or let the run finish)")
        return folder
    folder = root / (name if name.startswith("step-") else f"step-{int(name):010d}") \
        if name.startswith("step-") or name.isdigit() else root / name
    if not folder.is_dir():
        have = ", ".join(p.name for p in sorted(root.glob("step-*"))) or "none"
        raise CheckpointError(f"checkpoint {name!r} not found in {root} (have: {have})")
    return folder


__all__ = [
    "KEEP",
    "LATEST",
    "CheckpointError",
    "find_checkpoint",
    "latest_checkpoint",
    "save_checkpoint",
]
