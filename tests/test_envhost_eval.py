"""The env host's evaluation schedule, with scripted episodes (no env, no agents): an evaluation
cut short leaves no record and is redone on resume; a finished run is not evaluated twice."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from agents.stopflag import StopFlag
from dwm_net.config import load_config, replace
from dwm_net.runlog import JsonlWriter, read_jsonl
from launch.envhost import EnvHost, HostArgs

TRAIN_LENGTH = 10


def host(run_dir: Path, outcomes: Iterator[bool | None], **sets: Any) -> EnvHost:
    """An EnvHost whose episodes are scripted: train episodes last TRAIN_LENGTH steps; each greedy
    episode takes the next of `outcomes` (won or lost), None meaning "stopped here"."""
    cfg = replace(load_config("tiny"), **{"run.steps": 40, "run.eval_every": 20,
                                          "run.eval_episodes": 2, **sets})
    h = EnvHost(HostArgs(cfg, "tcp://127.0.0.1:*", run_dir), StopFlag())
    h.episodes_log = JsonlWriter(run_dir / "episodes.jsonl")
    h._stop_members = lambda reason: None  # type: ignore[method-assign]
    h._wait_for_learner = lambda mark: None  # type: ignore[method-assign]

    def episode(greedy: bool) -> tuple[float, bool, int]:
        h.state["episode_id"] += 1
        if not greedy:
            return 1.0, False, TRAIN_LENGTH
        won = next(outcomes)
        if won is None:
            h.stop.set = True
            return 0.0, False, 0
        return 20.0 if won else 0.0, won, 7

    h.episode = episode  # type: ignore[method-assign]
    return h


def evals(run_dir: Path) -> dict[int, int]:
    """env step -> eval episodes recorded there."""
    out: dict[int, int] = {}
    for r in read_jsonl(run_dir / "episodes.jsonl"):
        if r["mode"] == "eval":
            out[r["env_steps"]] = out.get(r["env_steps"], 0) + 1
    return out


@pytest.mark.timeout(30)
def test_an_evaluation_cut_short_leaves_no_record_and_is_redone_on_resume(tmp_path: Path) -> None:
    # evals at 0 (two episodes) and 20 (one, then the stop lands mid-evaluation)
    first = host(tmp_path, iter([True, False, True, None]))
    assert first.run() == 0 and first.stop.set
    first.episodes_log.close()  # type: ignore[union-attr]
    assert evals(tmp_path) == {0: 2}  # the cut-short evaluation at 20 left nothing
    assert first.state["next_eval"] == 20

    resumed = host(tmp_path, iter([True, True, False, False]))
    resumed._load_state()
    assert resumed.run() == 0 and not resumed.stop.set
    resumed.episodes_log.close()  # type: ignore[union-attr]
    assert evals(tmp_path) == {0: 2, 20: 2, 40: 2}  # 20 redone, then the final one at 40
    assert resumed.state["last_eval"] == 40

    # A finished run resumed again does not evaluate the same step a second time.
    again = host(tmp_path, iter([]))  # any greedy episode would raise StopIteration
    again._load_state()
    assert again.run() == 0
    again.episodes_log.close()  # type: ignore[union-attr]
    assert evals(tmp_path) == {0: 2, 20: 2, 40: 2}


@pytest.mark.timeout(30)
def test_training_records_say_which_episodes_had_the_agents_noise(tmp_path: Path) -> None:
    noisy = host(tmp_path / "a", iter([False] * 6), **{"run.steps": 100, "run.eval_every": 0,
                                                       "train.explore_eps": 0.1,
                                                       "train.explore_episodes": 0.3})
    assert noisy.run() == 0
    train = [r for r in read_jsonl(tmp_path / "a" / "episodes.jsonl") if r["mode"] == "train"]
    assert len(train) == 10
    assert [r["noise"] for r in train] == [noisy.cfg.train.noisy_episode(k) for k in range(10)]
    assert sum(r["noise"] for r in train) == 3
    plain = host(tmp_path / "b", iter([False] * 6), **{"run.eval_every": 0})  # no noise: no key
    assert plain.run() == 0
    assert all("noise" not in r for r in read_jsonl(tmp_path / "b" / "episodes.jsonl"))
