"""`dwm-net bench train`: the learning core's throughput, in process (Typer's runner)."""

from __future__ import annotations

import json

import pytest
import torch
from typer.testing import CliRunner

from launch.cli import app

runner = CliRunner()


def test_bench_train_json_has_positive_rates_and_the_issue_keys():
    threads = torch.get_num_threads()
    result = runner.invoke(app, ["bench", "train", "--preset", "tiny", "--seconds", "1", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["bench"] == "train" and report["preset"] == "tiny"
    for key in ("wm_updates_per_s", "ac_updates_per_s", "imagined_states_per_s", "sil_steps_per_s",
                "act_steps_per_s", "train_round_s", "peak_rss_mib"):
        assert report[key] > 0, key
    imagined = report["ac_updates_per_s"] * 4 * 8 * 4  # batch x seq_len x horizon starts x steps
    assert report["imagined_states_per_s"] == pytest.approx(imagined)
    assert 0.0 <= report["sil_stepped_fraction"] <= 1.0
    assert set(report["timing"]) == {"wm", "ac", "sil", "act"}
    assert set(report["params"]) == {"world_model", "actor", "critic"}
    assert all(n > 0 for n in report["params"].values())
    sizes = report["sizes"]
    assert (sizes["hidden"], sizes["deter"], sizes["latents"]) == (16, 16, [4, 4])
    assert (sizes["batch_size"], sizes["seq_len"], sizes["horizon"]) == (4, 8, 4)
    assert report["torch_threads"] == 1 and report["torch"] == torch.__version__
    assert report["machine"]["cpus"] >= 1
    assert report["replay"]["transitions"] >= 4 * 8
    assert torch.get_num_threads() == threads  # the bench restores the caller's setting


def test_bench_train_rejects_an_unknown_preset_in_one_line():
    result = runner.invoke(app, ["bench", "train", "--preset", "nope", "--json"])
    assert result.exit_code == 2, result.output
    err = result.stderr.strip()
    assert err.startswith("error: ") and "\n" not in err and "'nope'" in err, err
    assert "Traceback" not in result.output and result.stdout == ""


def test_bench_train_vs_times_a_variant_against_the_base_in_one_invocation():
    result = runner.invoke(app, ["bench", "train", "--preset", "tiny", "--seconds", "0.4", "--set",
                                 "train.ppo_epochs=1", "--vs", "model.precision=bfloat16", "--repeats", "1",
                                 "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert (report["set"], report["vs"], report["repeats"]) == (["train.ppo_epochs=1"], ["model.precision=bfloat16"], 1)
    base, variant = report["runs"]["base"][0], report["runs"]["variant"][0]
    assert base["precision"] == {"config": "float32", "bf16_products": False}
    assert variant["precision"] == {"config": "bfloat16", "bf16_products": True}
    for key, ratio in report["ratio"].items():
        assert ratio == pytest.approx(variant[key] / base[key]), key


def test_bench_train_rejects_a_bad_override_in_one_line():
    result = runner.invoke(app, ["bench", "train", "--preset", "tiny", "--vs", "model.precision=fp8"])
    assert result.exit_code == 2, result.output
    err = result.stderr.strip()
    assert err.startswith("error: ") and "\n" not in err and "model.precision" in err, err


def test_bench_memory_fills_every_buffer_and_reports_peak_rss_per_stage():
    result = runner.invoke(app, ["bench", "memory", "--preset", "tiny", "--scenario", "3m", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["bench"] == "memory" and (report["preset"], report["scenario"]) == ("tiny", "3m")
    assert (report["obs_dim"], report["n_actions"]) == (30, 9)
    # tiny: 2000-transition replays (obs float32 + packed avail + the rest), rollouts 4 batches
    assert report["replay_capacity"] == 2000 and report["replay_mb"] > 2 * 2000 * 30 * 4 / 1e6
    assert report["received_rollouts_in_update"] == 4 * 8  # as many received as own (B*T)
    stages = report["stages_peak_rss_mib"]
    assert list(stages)[-1] == "actor-critic update (own + received)"
    peaks = list(stages.values())
    assert peaks == sorted(peaks) and report["peak_rss_mib"] >= peaks[-1] > 0  # a high-water mark


def test_bench_memory_rejects_an_unknown_scenario_in_one_line():
    result = runner.invoke(app, ["bench", "memory", "--scenario", "nope"])
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output and "nope" in result.stderr
