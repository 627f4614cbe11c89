"""The `dwm-net env` and `dwm-net bench env` commands, in process (Typer's runner)."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from launch.cli import app

runner = CliRunner()


def _one_line_error(result) -> str:
    assert result.exit_code == 2, result.output
    err = result.stderr.strip()
    assert err.startswith("error: ") and "\n" not in err, err
    assert "Traceback" not in result.output
    return err


def test_env_play_json_reports_win_rate_return_and_length():
    result = runner.invoke(app, ["env", "play", "--scenario", "3m", "--episodes", "3", "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["episodes"] == 3
    assert 0.0 <= summary["win_rate"] <= 1.0
    assert 1 <= summary["mean_length"] <= 60  # 3m's episode limit
    assert summary["mean_return"] >= 0.0


def test_env_play_kite_wins_2s_vs_1sc():
    result = runner.invoke(
        app, ["env", "play", "--scenario", "2s_vs_1sc", "--policy", "kite", "--episodes", "5",
              "--json"]
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["win_rate"] >= 0.8


def test_env_play_rejects_unknown_scenario_and_policy_in_one_line():
    err = _one_line_error(runner.invoke(app, ["env", "play", "--scenario", "4m"]))
    assert "'4m'" in err and "2s_vs_1sc" in err
    err = _one_line_error(runner.invoke(app, ["env", "play", "--policy", "smart"]))
    assert "'smart'" in err and "random" in err


def test_env_info_prints_spec_sizes():
    result = runner.invoke(app, ["env", "info", "--scenario", "2s3z"])
    assert result.exit_code == 0
    assert json.loads(result.stdout) == {
        "state_shape": 120, "obs_shape": 80, "n_actions": 11, "n_agents": 5, "episode_limit": 120,
    }


def test_bench_env_json_has_throughput_and_machine():
    result = runner.invoke(app, ["bench", "env", "--scenario", "2m_vs_1z", "--episodes", "5",
                                 "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["bench"] == "env"
    assert report["machine"]["cpus"] >= 1
    (r,) = report["results"]
    assert r["scenario"] == "2m_vs_1z" and r["episodes"] == 5
    assert r["steps_per_s"] > 0 and r["episodes_per_s"] > 0
    assert r["steps"] == round(r["mean_episode_length"] * 5)


def test_render_rejects_bad_output_path(tmp_path):
    err = _one_line_error(runner.invoke(app, ["env", "render", "--out", str(tmp_path / "x.png")]))
    assert ".gif" in err
    err = _one_line_error(
        runner.invoke(app, ["env", "render", "--out", str(tmp_path / "nope" / "x.gif")])
    )
    assert "does not exist" in err
