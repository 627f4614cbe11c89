"""The launcher's live view: formatting helpers, run state, the 80-column rendering."""

from __future__ import annotations

import io

import pytest
from rich.console import Console

from launch.live import (
    ENV_HOST,
    LEARNER,
    LiveView,
    RunInfo,
    RunState,
    eta_seconds,
    fmt_bytes,
    fmt_count,
    fmt_duration,
    fmt_num,
    fmt_pct,
    fmt_text,
    plain_line,
    render,
    sparkline,
    use_live,
)

T0 = 1000.0  # monotonic seconds at launch


def make_info(n_agents: int = 2, method: str = "experience") -> RunInfo:
    return RunInfo(scenario="2s_vs_1sc", method=method, beta=0.01, budget="50KB/s", seed=3,
                   preset="cpu", n_agents=n_agents, steps=50_000,
                   run_dir="runs/2s_vs_1sc-experience-b0.01-s3")


def agent_values(i: int, n_agents: int) -> dict:
    """One realistic agent metrics message."""
    return {
        "env_steps": 6_172, "episodes": 339, "wm_updates": 1_234, "ac_updates": 600,
        "wm/obs": 1.234, "wm/reward": 0.0123, "wm/term": 0.00045, "wm/avail": 0.081,
        "wm/kl": 3.41, "ac/critic_loss": 0.52, "ac/actor_loss": -0.03, "ac/entropy": 1.1,
        "sent_bytes": 1_234_567 + i, "recv_bytes": 987_000,
        "sent_bytes/experience": 1_000_000, "sent_bytes/rollout": 200_000,
        "sent_bytes/params": 34_567, "recv_bytes/experience": 987_000,
        "budget_use": 0.734, "drops": 3 * i, "peers": f"{n_agents - 1}/{n_agents - 1} alive",
        "rejected": 0,
    }


def make_state(n_agents: int = 2) -> RunState:
    """85 s into a run: 12,345 env steps since the host's first report at T0+2, six evals."""
    state = RunState(now=T0)
    state.update(ENV_HOST, {"env_steps": 0, "status": "running"}, now=T0 + 2)
    for k, (step, rate) in enumerate([(2000, 0.0), (4000, 0.1), (6000, 0.2), (8000, 0.5),
                                      (10000, 0.75), (12000, 1.0)]):
        state.update(ENV_HOST, {"eval_step": step, "eval_win_rate": rate}, now=T0 + 10 + k)
    state.update(ENV_HOST, {"env_steps": 12_345, "episodes": 678, "train_win_rate": 0.4,
                            "train_return": 8.12, "eval_return": 7.9, "status": "running"},
                 now=T0 + 82)
    for i in range(n_agents):
        state.update(i, agent_values(i, n_agents), now=T0 + 82)
        state.set_status(i, "running")
        state.set_restarts(i, 0)
    return state


def render_text(info: RunInfo, state: RunState, now: float, **kw) -> str:
    console = Console(width=80, record=True, file=io.StringIO())
    console.print(render(info, state, now, **kw))
    return console.export_text()


def assert_fits(text: str) -> None:
    lines = text.splitlines()
    assert lines, "nothing rendered"
    too_wide = [line for line in lines if len(line) > 80]
    assert not too_wide, too_wide
    assert "…" not in text, text


def row(text: str, label: str, table_title: str) -> str:
    """The line of `label`'s row in the table titled `table_title`."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.strip() == table_title)
    return next(line for line in lines[start + 1:] if line.startswith(label + " "))


# ---------------------------------------------------------------- helpers


@pytest.mark.parametrize("n, want", [
    (0, "0 B"), (999, "999 B"), (1000, "1.0 KB"), (1_234_567, "1.2 MB"), (12_345_678, "12.3 MB"),
    (123_456_789, "123 MB"), (999_999, "1.0 MB"), (99_960, "100 KB"), (12_000_000_000, "12.0 GB"),
    (3.2e15, "3.2 PB"), (None, "-"), ("12", "-"), (True, "-"), (float("nan"), "-"),
])
def test_fmt_bytes(n, want):
    assert fmt_bytes(n) == want


@pytest.mark.parametrize("n, want", [
    (0, "0"), (600, "600"), (999, "999"), (1_234, "1.2k"), (12_345, "12.3k"), (99_999, "100k"),
    (123_456, "123k"), (4_500_000, "4.5M"), (12.0, "12"), (None, "-"), ("x", "-"),
])
def test_fmt_count(n, want):
    assert fmt_count(n) == want


@pytest.mark.parametrize("x, want", [
    (1.234, "1.23"), (12.34, "12.3"), (123.4, "123"), (12_345.0, "12.3k"), (0.0123, "0.012"),
    (0.081, "0.081"), (0.5, "0.5"), (0.00045, "4.5e-4"), (0, "0"), (-0.03, "-0.03"),
    (float("nan"), "nan"), (float("inf"), "inf"), ("1.2", "-"), (None, "-"), ([1], "-"),
])
def test_fmt_num(x, want):
    assert fmt_num(x) == want


@pytest.mark.parametrize("s, want", [
    (0, "0:00:00"), (83.9, "0:01:23"), (3_725, "1:02:05"), (93_600, "26:00:00"),
    (None, "-"), (-1, "-"), (float("inf"), "-"), ("5", "-"),
])
def test_fmt_duration(s, want):
    assert fmt_duration(s) == want


def test_fmt_pct_and_text():
    assert fmt_pct(0.347) == "35%" and fmt_pct(1.05) == "105%" and fmt_pct("0.3") == "-"
    assert fmt_pct(0.247, 1) == "24.7%"
    assert fmt_text("0/1 lost\n") == "0/1 lost" and fmt_text(None) == "-" and fmt_text({}) == "-"
    assert fmt_text(3) == "3"


def test_sparkline_fixed_scale():
    assert sparkline([0.0, 0.5, 1.0]) == "▁▅█"
    assert sparkline([-1.0, 2.0]) == "▁█"  # clamped, not rescaled
    assert sparkline([]) == ""
    assert sparkline([5.0], lo=5.0, hi=5.0) == "▁"


# ---------------------------------------------------------------- state


def test_update_merges_latest_wins_and_ignores_junk():
    state = RunState(now=5.0)
    assert state.started_at == 5.0
    state.update(0, {"wm_updates": 1, "drops": 0}, now=6.0)
    state.update(0, {"wm_updates": 2}, now=7.0)
    state.update(0, "not a dict", now=8.0)  # type: ignore[arg-type]
    state.update(0, {3: "non-str key"}, now=9.0)  # type: ignore[dict-item]
    assert state.values[0] == {"wm_updates": 2, "drops": 0}
    assert state.last_seen[0] == 9.0
    state.set_restarts(0, 2)
    state.set_status(0, "restarting")
    assert state.restarts[0] == 2 and state.statuses[0] == "restarting"


def test_eval_history_records_each_new_eval_step_once():
    state = RunState(now=0.0)
    state.update(ENV_HOST, {"eval_win_rate": 0.0, "env_steps": 10}, now=1.0)  # no eval yet
    assert not state.eval_history
    state.update(ENV_HOST, {"eval_step": 2000, "eval_win_rate": 0.25}, now=2.0)
    state.update(ENV_HOST, {"eval_step": 2000, "eval_win_rate": 0.25, "env_steps": 2100}, now=3.0)
    state.update(ENV_HOST, {"env_steps": 2200}, now=4.0)  # steps only: no new eval
    state.update(ENV_HOST, {"eval_step": 4000, "eval_win_rate": 0.5}, now=5.0)
    state.update(ENV_HOST, {"eval_step": 6000, "eval_win_rate": "n/a"}, now=6.0)
    state.update(ENV_HOST, {"eval_step": float("inf"), "eval_win_rate": 0.5}, now=6.5)
    state.update(0, {"eval_step": 8000, "eval_win_rate": 0.9}, now=7.0)  # not the env host
    assert list(state.eval_history) == [(2000, 0.25), (4000, 0.5)]


def test_eta_from_host_rate_since_its_first_report():
    state = RunState(now=0.0)
    assert eta_seconds(state, 50_000, 10.0) is None
    state.update(ENV_HOST, {"env_steps": 0}, now=10.0)
    assert eta_seconds(state, 50_000, 10.0) is None  # one sample: no rate yet
    state.update(ENV_HOST, {"env_steps": 10_000}, now=110.0)  # 100 steps/s
    assert eta_seconds(state, 50_000, 110.0) == pytest.approx(400.0)
    assert eta_seconds(state, 50_000, 120.0) == pytest.approx(390.0)  # time since last report
    state.update(ENV_HOST, {"env_steps": 500}, now=200.0)  # host restarted: rate afresh
    assert eta_seconds(state, 50_000, 200.0) is None
    state.update(ENV_HOST, {"env_steps": 50_000}, now=300.0)
    assert eta_seconds(state, 50_000, 300.0) == 0.0


# ---------------------------------------------------------------- rendering


def test_two_agent_view_content_and_width():
    info, state = make_info(2), make_state(2)
    text = render_text(info, state, T0 + 83)
    assert_fits(text)
    for part in ("2s_vs_1sc", "experience", "β 0.01", "budget 50KB/s", "seed 3", "preset cpu",
                 "runs/2s_vs_1sc-experience-b0.01-s3"):
        assert part in text
    assert "0:01:23" in text  # elapsed
    # 12,345 steps in 80 s since the host's first report -> 37,655 left at ~154 steps/s.
    assert "12,345/50,000 24.7%" in text and "ETA 0:04:03" in text
    assert "host running" in text and "episodes 678" in text and "train 40% ret 8.12" in text
    assert "eval 100% ret 7.90 @12.0k steps  ▁▂▂▅▆█" in text
    a0 = row(text, "a0", "learning").split()
    assert a0 == ["a0", "6.2k", "339", "1.2k/600", "1.23", "0.012", "4.5e-4", "0.081", "3.41",
                  "0.52"]
    a1 = row(text, "a1", "comms")
    assert a1.split() == ["a1", "1.2", "MB", "987", "KB", "73%", "3", "0", "0", "1/1", "alive",
                          "running"]
    assert row(text, "a0", "bytes by kind").split()[1:7] == ["1.0", "MB", "200", "KB", "34.6", "KB"]
    assert "learner" not in text
    state.update(LEARNER, {}, now=T0 + 83)  # any message from the learner adds its row
    assert row(render_text(info, state, T0 + 83), "learner", "comms").split()[1:] == ["-"] * 8
    wide = Console(width=160, record=True, file=io.StringIO())
    wide.print(render(info, state, T0 + 83))
    assert max(len(line) for line in wide.export_text().splitlines()) == 80  # same layout


def test_five_agents_with_learner_huge_bytes_and_long_peers():
    info, state = make_info(5, method="centralized"), make_state(5)
    state.update(3, {"sent_bytes": 12_000_000_000, "recv_bytes": 987_654_321_000,
                     "sent_bytes/params": 11_999_000_000, "drops": 123_456, "rejected": 17,
                     "peers": "3/4 alive, 1 lost (a2 silent 14 s)", "budget_use": 1.05},
                 now=T0 + 82)
    state.set_status(2, "restarting")
    state.set_restarts(2, 3)
    state.set_status(4, "exited 137")
    state.update(LEARNER, {"wm_updates": 99_999, "ac_updates": 12_345, "wm/kl": 0.2,
                           "sent_bytes": 5e9, "recv_bytes": 2_400_000_000_000}, now=T0 + 82)
    text = render_text(info, state, T0 + 83)
    assert_fits(text)
    a3 = row(text, "a3", "comms")
    assert "12.0 GB" in a3 and "988 GB" in a3 and "105%" in a3 and "123k" in a3 and "17" in a3
    assert "3/4 alive, 1 lost" in a3  # a long peer string wraps inside its cell, never cut
    assert "(a2 silent 14 s)" in text
    assert "12.0 GB" in row(text, "a3", "bytes by kind")
    assert "restarting" in row(text, "a2", "comms") and " 3 " in row(text, "a2", "comms")
    assert "exited 137" in row(text, "a4", "comms")
    learner = row(text, "learner", "learning").split()
    assert learner[:4] == ["learner", "-", "-", "100k/12.3k"] and learner[-2:] == ["0.2", "-"]
    assert "5.0 GB" in row(text, "learner", "comms") and "2.4 TB" in row(text, "learner", "comms")
    for i in range(5):
        row(text, f"a{i}", "learning")


def test_empty_state_renders_dashes():
    info, state = make_info(2), RunState(now=T0)
    text = render_text(info, state, T0 + 3)
    assert_fits(text)
    assert "0:00:03" in text and "-/50,000" in text and "ETA -" in text
    assert "host -" in text and "eval - ret -" in text
    assert row(text, "a1", "learning").split() == ["a1", "-", "-", "-/-"] + ["-"] * 6
    assert "learner" not in text


def test_wrong_types_show_dashes_and_never_raise():
    info, state = make_info(2), make_state(2)
    state.update(ENV_HOST, {"env_steps": "lots", "episodes": None, "train_win_rate": "high",
                            "eval_win_rate": [0.5], "eval_step": {"x": 1}, "status": 7},
                 now=T0 + 90)
    state.update(0, {"env_steps": "x", "wm_updates": None, "wm/obs": "nan?", "wm/kl": True,
                     "sent_bytes": b"12", "budget_use": "50%", "drops": 1.5, "peers": ["a"],
                     "rejected": "no"}, now=T0 + 90)
    state.update(1, {"peers": "[bold]0/1 lost[/bold]", "wm/obs": float("nan")}, now=T0 + 90)
    state.set_status(1, "dead")
    text = render_text(info, state, T0 + 91)
    assert_fits(text)
    a0 = row(text, "a0", "learning").split()
    assert a0[1] == "-" and a0[3] == "-/600" and a0[4] == "-" and a0[8] == "-"
    a0c = row(text, "a0", "comms").split()
    assert a0c[1:4] == ["-", "987", "KB"] and a0c[4:6] == ["-", "2"]
    assert "[bold]0/1 lost[/bold]" in text  # shown literally, never parsed as markup
    assert row(text, "a1", "learning").split()[4] == "nan"
    assert "dead" in row(text, "a1", "comms")
    assert "host 7" in text
    assert "-/50,000" in text
    plain_line(info, state, T0 + 91)


def test_by_kind_table_can_be_dropped():
    info, state = make_info(2), make_state(2)
    assert "bytes by kind" not in render_text(info, state, T0 + 83, by_kind=False)


def test_plain_line():
    info, state = make_info(2), make_state(2)
    state.set_status(1, "restarting")
    line = plain_line(info, state, T0 + 83)
    assert "\n" not in line and "[bold" not in line
    assert line.startswith("[0:01:23] 2s_vs_1sc experience b=0.01 steps 12,345/50,000 (24.7%)")
    assert "eta 0:04:03 eval 100% train 40% ret 8.12" in line
    assert "| a0 wm 1.2k ac 600 sent 1.2MB drop 0 |" in line
    assert line.endswith("| a1 wm 1.2k ac 600 sent 1.2MB drop 3 restarting")
    state.update(ENV_HOST, {"status": "waiting for agent 1 (12 s)"}, now=T0 + 84)
    state.update(LEARNER, {"wm_updates": 50}, now=T0 + 84)
    line = plain_line(info, state, T0 + 85)
    assert "host waiting for agent 1 (12 s)" in line
    assert line.endswith("| L wm 50 ac - sent - drop -")
    assert plain_line(info, RunState(now=0.0), 1.0).startswith(
        "[0:00:01] 2s_vs_1sc experience b=0.01 steps -/50,000 eta - eval - train - ret -")


class FakeStream(io.StringIO):
    def __init__(self, tty: bool) -> None:
        super().__init__()
        self.tty = tty

    def isatty(self) -> bool:
        return self.tty


def test_use_live():
    assert use_live(FakeStream(True)) is True
    assert use_live(FakeStream(False)) is False
    assert use_live(io.StringIO()) is False
    closed = io.StringIO()
    closed.close()
    assert use_live(closed) is False
    assert use_live(object()) is False  # type: ignore[arg-type]


def test_live_view_refreshes_rate_limited():
    info, state = make_info(2), make_state(2)
    out = FakeStream(True)
    console = Console(file=out, width=80, height=60, force_terminal=True)
    with LiveView(info, state, console=console, refresh_per_second=2) as view:
        assert view.refresh(T0 + 100.0) is True
        assert view.refresh(T0 + 100.2) is False  # under 0.5 s since the last draw
        assert view.refresh(T0 + 100.6) is True
        assert view.refresh(T0 + 100.7, force=True) is True
    drawn = out.getvalue()
    assert "12,345/50,000" in drawn and "bytes by kind" in drawn


def test_live_view_drops_by_kind_table_on_a_short_terminal():
    info, state = make_info(5), make_state(5)
    short = Console(file=FakeStream(True), width=80, height=24, force_terminal=True)
    tall = Console(file=FakeStream(True), width=80, height=60, force_terminal=True)
    assert LiveView(info, state, console=short)._renderable(T0 + 83) is not None
    text = {}
    for name, console in (("short", short), ("tall", tall)):
        rec = Console(width=80, record=True, file=io.StringIO())
        rec.print(LiveView(info, state, console=console)._renderable(T0 + 83))
        text[name] = rec.export_text()
    assert "bytes by kind" in text["tall"] and "bytes by kind" not in text["short"]
    assert "comms" in text["short"]


def test_beta_is_shown_only_for_methods_it_applies_to():
    state = make_state()
    shared, alone = make_info(), RunInfo(**{**make_info().__dict__, "method": "independent", "beta": None})
    assert "β 0.01" in render_text(shared, state, T0 + 83) and " b=0.01 " in plain_line(shared, state, T0 + 83)
    assert "β" not in render_text(alone, state, T0 + 83)
    assert plain_line(alone, state, T0 + 83).startswith("[0:01:23] 2s_vs_1sc independent steps ")
