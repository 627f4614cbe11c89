"""`dwm-net bench comms` and its measuring functions."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from comms.bench import codec_overhead, window_violations
from launch.cli import app


def test_window_violations_counts_windows_over_the_bound():
    # rate 100 B/s, burst 150 B: 100 B at t=0 and 100 B at t=0.4 -> 200 B in 0.4 s > 40 + 150
    assert window_violations([(0.0, 100), (0.4, 100)], rate=100, burst=150) == 1
    assert window_violations([(0.0, 100), (0.5, 100)], rate=100, burst=150) == 0
    assert window_violations([(0.0, 200)], rate=100, burst=150) == 1  # one send over the burst


def test_codec_overhead_is_header_plus_framing_over_payload():
    assert 1.0 < codec_overhead(65536) < codec_overhead(2048) < 1.1


@pytest.mark.timeout(120)
def test_bench_comms_json_has_the_issue_keys():
    result = CliRunner().invoke(app, [
        "bench", "comms", "--seconds", "0.5", "--budgets", "50KB/s", "--messages-2k", "200",
        "--messages-64k", "50", "--repeats", "1", "--json",
    ])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    for key in ("codec_overhead_2k", "codec_overhead_64k", "throughput_ratio_vs_pyzmq",
                "budget_violations", "budget_utilization", "compact_ratio"):
        assert key in report
    for run in report["throughput"]:
        for path in ("raw", "raw_fresh", "dwm", "transport"):
            assert run[f"{path}_msgs_per_s"] > 0 and run[f"{path}_mb_per_s"] > 0
            assert run[f"{path}_sender_cpu_us"] > 0 and run[f"{path}_receiver_cpu_us"] > 0
        assert run["transport_ratio"] == pytest.approx(
            run["transport_msgs_per_s"] / run["raw_msgs_per_s"])  # one repeat: no median
    assert report["throughput_ratio_vs_pyzmq"] == min(
        run["transport_ratio"] for run in report["throughput"])
    assert report["budget_violations"] == 0
    assert report["compact_ratio"] >= 5.0
    assert set(report["compact"]) == {"3m", "2s3z", "2m_vs_1z", "2s_vs_1sc"}


def test_bench_comms_rejects_a_per_step_budget():
    result = CliRunner().invoke(app, ["bench", "comms", "--budgets", "2KB/step", "--seconds", "0.5"])
    assert result.exit_code == 2
    assert result.stderr.strip().startswith("error: ") and "\n" not in result.stderr.strip()
