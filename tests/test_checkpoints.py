"""Checkpoint folders: pruning, and resuming from the newest checkpoint that loads."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from agents.checkpoints import LATEST, CheckpointError, find_checkpoint, load_latest, save_checkpoint


def writer(value: str):
    def save(folder: Path) -> None:
        folder.mkdir(parents=True)
        (folder / "state.json").write_text(json.dumps({"value": value}))
    return save


def reader(seen: list[str]):
    def load(folder: Path) -> None:
        seen.append(json.loads((folder / "state.json").read_text())["value"])  # raises if damaged
    return load


def test_pruning_keeps_the_folder_just_written(tmp_path: Path) -> None:
    # A process that restarted from scratch saves step 100 beside steps 4000 and 5000 of
    # before: pruned by name alone, its own new folder went, and latest.json named nothing.
    for step in (4000, 5000, 100):
        save_checkpoint(tmp_path, step, writer(str(step)))
    names = sorted(p.name for p in tmp_path.glob("step-*"))
    assert names == ["step-0000000100", "step-0000005000"]
    seen: list[str] = []
    assert load_latest(tmp_path, reader(seen)) == tmp_path / "step-0000000100" and seen == ["100"]


def test_resume_falls_back_to_the_newest_checkpoint_that_loads(tmp_path: Path) -> None:
    seen: list[str] = []
    assert load_latest(tmp_path, reader(seen)) is None  # nothing saved yet: a fresh start
    for step in (1000, 2000):
        save_checkpoint(tmp_path, step, writer(str(step)))
    (tmp_path / "step-0000002000" / "state.json").write_bytes(b"\x00garbage")
    assert load_latest(tmp_path, reader(seen)) == tmp_path / "step-0000001000"
    assert seen == ["1000"]
    # A damaged latest.json is not "nothing saved": the folders are tried from the newest.
    (tmp_path / LATEST).write_text("{not json")
    seen.clear()
    assert load_latest(tmp_path, reader(seen)) == tmp_path / "step-0000001000"
    # None loads: an error naming the folder, not a silent start from scratch.
    (tmp_path / "step-0000001000" / "state.json").unlink()
    with pytest.raises(CheckpointError, match="no checkpoint in .* loads"):
        load_latest(tmp_path, reader(seen))


def test_a_damaged_latest_json_still_finds_the_newest_folder_for_eval(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="saved none yet"):
        find_checkpoint(tmp_path, None)
    for step in (1000, 2000):
        save_checkpoint(tmp_path, step, writer(str(step)))
    (tmp_path / LATEST).write_text("garbage")
    assert find_checkpoint(tmp_path, None) == tmp_path / "step-0000002000"
