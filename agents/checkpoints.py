"""Checkpoint directories: one `step-<N>/` folder per save and a `latest.json` pointer.

A save writes a whole new folder (each file atomic inside it), then replaces `latest.json`
atomically, then prunes old folders. A crash at any point therefore leaves `latest.json`
pointing at a complete checkpoint: the previous one or the new one, never a mix of both.
`load_latest` restores a process from the newest checkpoint that loads: a damaged file (a
disk error, a hand edit) costs the steps since the one before, not the run.
"""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Callable
from pathlib import Path

from dwm_net.runlog import now, write_json_atomic

log = logging.getLogger(__name__)

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
    # Never the folder just written (a process restarted from scratch saves a low step next to
    # the high ones of before; sorted by step alone, its own new checkpoint went first).
    others = sorted(p for p in root.glob("step-*") if p.is_dir() and p != folder)
    for old in others[:max(0, len(others) - (keep - 1))]:
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


def _folders(root: Path) -> list[Path]:
    """Every `step-<N>` folder under `root`, newest (highest N) first."""
    return sorted((p for p in root.glob("step-*") if p.is_dir()), reverse=True)


def unreadable(folder: Path, e: BaseException) -> CheckpointError:
    """The one-line error for a checkpoint `folder` whose files would not load (`e`)."""
    text = str(e).strip().splitlines()
    return CheckpointError(f"checkpoint {folder} cannot be loaded ({type(e).__name__}"
                           f"{': ' + text[0][:160] if text else ''})")


def load_latest(root: Path, load: Callable[[Path], None]) -> Path | None:
    """`load` the newest checkpoint under `root` that loads: the one `latest.json` names, else
    (it is damaged, or that folder is) the others from the newest down, each failure logged.
    None when the process saved nothing yet (no `latest.json`: a folder without one is a save
    that never finished). Raises `CheckpointError` when checkpoints exist and none loads:
    starting from scratch would silently drop the run's progress. `load` may raise anything
    on a damaged file (torch, numpy, json errors)."""
    latest = _read_latest(root)
    if not (root / LATEST).exists():
        return None
    if latest is None:
        log.warning("%s is damaged; trying the checkpoints in %s from the newest", root / LATEST, root)
    candidates = [latest] if latest is not None and latest.is_dir() else []
    candidates += [p for p in _folders(root) if p not in candidates]
    for folder in candidates:
        try:
            load(folder)
            return folder
        except Exception as e:  # noqa: BLE001  a damaged file: try the one before
            log.warning("%s; trying an older one", unreadable(folder, e))
    raise CheckpointError(f"no checkpoint in {root} loads ({len(candidates)} tried; see the log); "
                          f"move the folder away to start this process afresh")


def find_checkpoint(root: Path, name: str | None) -> Path:
    """`name` (a `step-<N>` folder, or N) under `root`, or the latest; a clear error if absent."""
    if name is None:
        folder = latest_checkpoint(root)
        if folder is None and _folders(root):  # latest.json damaged: the newest folder
            folder = _folders(root)[0]
            log.warning("%s names no checkpoint folder; using the newest, %s", root / LATEST, folder.name)
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
    "load_latest",
    "save_checkpoint",
    "unreadable",
]
