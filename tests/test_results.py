"""Summaries, figures, report and CLI of experiment results, on hand-written run directories."""

from __future__ import annotations

import json
import re
import statistics
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from dwm_net.config import load_config, to_dict
from launch.cli import app
from launch.plots import (
    LEGEND_MIN_IN,
    _best_variants,
    _curves_panel,
    _dash,
    _marker,
    _wrapped,
    labels_differ_across_panels,
    plot_all,
    setting_styles,
)
from launch.report import report, report_json
from launch.results import (
    METHOD_LABELS,
    ResultsError,
    load_summaries,
    mean_ci,
    summarize,
    summary_name,
    variant,
    variant_label,
    varying_settings,
    wilson_interval,
    write_summary,
)

EVAL_EVERY, STEPS, EVAL_EPISODES, EP_LEN, N_AGENTS = 100, 400, 4, 10, 2
SCENARIOS = ("3m", "2s3z")
VARIANTS = (("independent", 1.0), ("centralized", 1.0), ("experience", 0.5), ("experience", 1.0),
            ("rollout", 0.5), ("rollout", 1.0))
SEEDS = (1, 2)


def method_index(method: str) -> int:
    return [v[0] for v in VARIANTS].index(method)


def eval_wins(scn: int, method: int, beta: float, seed: int) -> list[int]:
    """Wins out of EVAL_EPISODES at env steps 0, 100, ..., 400: a different known curve per run."""
    rate = (method + 2 * beta + seed + scn) % 5  # 0..4 wins gained per 100 steps, capped
    return [min(EVAL_EPISODES, (j * max(rate, 1)) // 2) for j in range(STEPS // EVAL_EVERY + 1)]


def bytes_per_episode(agent: int, method: str, beta: float) -> int:
    """Wire bytes agent `agent` sends per training episode (heartbeats only for independent)."""
    share = {"independent": 0, "centralized": 0, "experience": 1000, "rollout": 400}[method]
    return int(share * beta) + 100 * agent * (share > 0) + 7


PARAMS_PER_ROUND = 5000


def write_jsonl(path: Path, records: list[dict]) -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in records))


def make_run(root: Path, scn: int, method: str, beta: float, seed: int, done: bool = True) -> Path:
    """A small run dir with known eval wins, cumulative bytes and losses."""
    m = method_index(method)
    d = root / f"run-{SCENARIOS[scn]}-{method}-b{beta:g}-s{seed}"
    d.mkdir(parents=True)
    cfg = {"preset": "cpu", "env": {"scenario": SCENARIOS[scn], "backend": "builtin"},
           "model": {}, "train": {}, "share": {"method": method, "beta": beta},
           "comms": {"budget": "unlimited"},
           "run": {"seed": seed, "steps": STEPS, "eval_every": EVAL_EVERY, "eval_episodes": EVAL_EPISODES}}
    (d / "config.json").write_text(json.dumps({"config": cfg, "n_agents": N_AGENTS, "seeds": {},
                                               "created": f"2025-01-01T00:00:{seed:02d}", "host": {},
                                               "command": []}))
    episodes, t = [], 0.0
    wins = eval_wins(scn, m, beta, seed)
    for j, w in enumerate(wins):
        step = j * EVAL_EVERY
        for k in range(EVAL_EPISODES):
            episodes.append({"time": t, "mode": "eval", "episode": 0, "env_steps": step,
                             "return": 10.0 * (k < w), "won": k < w, "length": 20})
        if step < STEPS:
            for e in range(EVAL_EVERY // EP_LEN):
                episodes.append({"time": t, "mode": "train", "episode": e, "env_steps": step + (e + 1) * EP_LEN,
                                 "return": 1.0, "won": e % 2 == 0, "length": EP_LEN})
    write_jsonl(d / "episodes.jsonl", episodes)
    n_eps = STEPS // EP_LEN
    for i in range(N_AGENTS):
        recs = []
        for k in range(1, n_eps + 1):
            sent = k * bytes_per_episode(i, method, beta) + (k * 64 if method == "centralized" else 0)
            r = {"time": k, "env_steps": k * EP_LEN, "episodes": k, "sent_bytes": sent,
                 "sent_bytes/experience": sent, "drops": k // 10, "drops/budget": k // 10,
                 "ac/actor_loss": -0.1 * i + 1 / k, "ac/critic_loss": 2.0 / k + i}
            if method != "centralized":
                r.update({"wm/avail": 0.5 / k + 0.02 * m, "wm/term": 0.3 / k + 0.01 * m,
                          "wm/reward": 0.2 / k + 0.01 * m, "wm/kl": 1.0 + 1 / k + 0.1 * m})
            else:
                del r["ac/actor_loss"], r["ac/critic_loss"]
            recs.append(r)
        write_jsonl(d / f"agent-{i}.jsonl", recs)
    if method == "centralized":
        write_jsonl(d / "learner.jsonl", [
            {"round": k, "steps_received": k * EP_LEN * N_AGENTS, "sent_bytes": k * PARAMS_PER_ROUND,
             "sent_bytes/params": k * PARAMS_PER_ROUND, "wm/avail": 0.4 / k, "wm/term": 0.2 / k,
             "wm/reward": 0.1 / k, "wm/kl": 0.5 + 1 / k, "ac/actor_loss": 1 / k, "ac/critic_loss": 3 / k}
            for k in range(1, n_eps + 1)])
    if done:
        (d / "done.json").write_text(json.dumps({"finished": 1.0, "env_steps": STEPS, "steps": STEPS,
                                                 "restarts": {}}))
    return d


def expected_bytes(method: str, beta: float) -> int:
    n_eps = STEPS // EP_LEN
    total = sum(n_eps * bytes_per_episode(i, method, beta) for i in range(N_AGENTS))
    if method == "centralized":
        total += N_AGENTS * n_eps * 64 + n_eps * PARAMS_PER_ROUND
    return total


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[tuple, Path]:
    root = tmp_path_factory.mktemp("runs")
    return {(scn, method, beta, seed): make_run(root, scn, method, beta, seed)
            for scn in range(len(SCENARIOS)) for method, beta in VARIANTS for seed in SEEDS}


@pytest.fixture(scope="module")
def summaries(runs: dict[tuple, Path]) -> list[dict]:
    return [summarize(d) for d in runs.values()]


def test_summary_numbers(runs: dict[tuple, Path]) -> None:
    for (scn, method, beta, seed), d in runs.items():
        s = summarize(d)
        wins = eval_wins(scn, method_index(method), beta, seed)
        assert (s["scenario"], s["method"], s["beta"], s["seed"]) == (SCENARIOS[scn], method, beta, seed)
        assert s["done"] and s["n_agents"] == N_AGENTS and s["env_steps"] == STEPS
        assert [e[0] for e in s["eval"]] == [j * EVAL_EVERY for j in range(len(wins))]
        assert [e[1] for e in s["eval"]] == [w / EVAL_EPISODES for w in wins]
        assert s["final_win_rate"] == wins[-1] / EVAL_EPISODES
        assert s["final_ci95"] == pytest.approx(list(wilson_interval(wins[-1], EVAL_EPISODES)))
        first = {th: next((j * EVAL_EVERY for j, w in enumerate(wins) if w / EVAL_EPISODES >= th), None)
                 for th in (0.5, 0.8)}
        assert s["steps_to_50"] == first[0.5] and s["steps_to_80"] == first[0.8]
        assert s["bytes"]["total"] == expected_bytes(method, beta)
        assert s["bytes"]["per_env_step"] == pytest.approx(expected_bytes(method, beta) / STEPS)
        n_eps = STEPS // EP_LEN
        assert s["drops"] == {"total": N_AGENTS * (n_eps // 10), "by_reason": {"budget": N_AGENTS * (n_eps // 10)}}
        assert len(s["train"]) <= 100 and sum(p[3] for p in s["train"]) == n_eps
        assert s["train"][-1][0] == STEPS and s["train"][0][1] == pytest.approx(0.5, abs=0.5)
        if method == "centralized":
            assert set(s["losses"]) == {"learner"}  # x: steps received / n_agents = team env steps
            assert [p[0] for p in s["losses"]["learner"]["wm/kl"]] == [EP_LEN * k for k in range(1, n_eps + 1)]
            assert s["bytes"]["by_kind"]["params"] == n_eps * PARAMS_PER_ROUND
        else:
            assert set(s["losses"]) == {f"agent-{i}" for i in range(N_AGENTS)}
            kl = s["losses"]["agent-0"]["wm/kl"]
            m = method_index(method)
            assert kl[0][1] == pytest.approx(2.0 + 0.1 * m) and kl[-1][1] == pytest.approx(1 + 1 / n_eps + 0.1 * m)
            assert [p[0] for p in kl] == [EP_LEN * k for k in range(1, n_eps + 1)]
    json.dumps(summarize(d), allow_nan=False)  # JSON-serialisable as is


def test_restarted_counters_and_cut_line(tmp_path: Path) -> None:
    d = make_run(tmp_path, 0, "experience", 1.0, 3, done=False)
    recs = [json.loads(line) for line in (d / "agent-1.jsonl").read_text().splitlines()]
    # agent 1 restarted after episode 20: its cumulative counter starts again from 0
    for r in recs[20:]:
        r["sent_bytes"] -= recs[19]["sent_bytes"]
    write_jsonl(d / "agent-1.jsonl", recs)
    with open(d / "episodes.jsonl", "a") as fh:
        fh.write('{"time": 1.0, "mode": "eval", "episode": 0, "env_st')  # cut mid-write
    with open(d / "agent-0.jsonl", "a") as fh:
        fh.write('{"time": 1.0, "sent_bytes": 99999')
    s = summarize(d)
    assert not s["done"] and s["env_steps"] == STEPS
    assert s["bytes"]["total"] == expected_bytes("experience", 1.0)
    assert s["final_win_rate"] == eval_wins(0, method_index("experience"), 1.0, 3)[-1] / EVAL_EPISODES
    (d / "learner.jsonl").unlink(missing_ok=True)
    (d / "agent-1.jsonl").unlink()
    assert summarize(d)["bytes"]["total"] < expected_bytes("experience", 1.0)


def test_partial_and_repeated_evaluations(tmp_path: Path) -> None:
    d = make_run(tmp_path, 0, "rollout", 0.5, 1)
    lines = (d / "episodes.jsonl").read_text().splitlines()
    # a restart cut the step-400 evaluation after 1 episode (a loss) and then reran it in full
    extra = json.dumps({"mode": "eval", "episode": 0, "env_steps": STEPS, "return": 0.0, "won": False})
    last = len(lines) - EVAL_EPISODES
    (d / "episodes.jsonl").write_text("\n".join(lines[:last] + [extra] + lines[last:]) + "\n")
    s = summarize(d)
    assert s["eval"][-1][3] == EVAL_EPISODES
    assert s["final_win_rate"] == eval_wins(0, method_index("rollout"), 0.5, 1)[-1] / EVAL_EPISODES


def test_just_started_run(tmp_path: Path) -> None:
    """A run with only its config.json summarizes to empty curves and None, and draws nothing."""
    d = make_run(tmp_path, 1, "rollout", 1.0, 5, done=False)
    for f in d.iterdir():
        if f.name != "config.json":
            f.unlink()
    s = summarize(d)
    assert s["eval"] == [] and s["train"] == [] and s["losses"] == {} and not s["done"]
    assert s["final_win_rate"] is None and s["steps_to_50"] is None and s["bytes"]["per_env_step"] is None
    assert _rows(report([s]))[("2s3z", "Actor-Critic", "1")][3:] == ["—"] * 6
    assert len(plot_all([s], tmp_path / "figs").skipped) == 7  # every figure
    err = _err(CliRunner().invoke(app, ["plot", str(d), "--out", str(tmp_path / "figs")]))
    assert "nothing to plot" in err


def test_round_trip_and_load(tmp_path: Path, runs: dict[tuple, Path], summaries: list[dict]) -> None:
    s = summaries[0]
    path = write_summary(s, tmp_path / "sums")
    assert path.name == f"{s['scenario']}-{s['method']}-b{s['beta']:g}-s{s['seed']}.json"
    assert json.loads(path.read_text()) == s
    (tmp_path / "sums" / "notes.json").write_text('{"not": "a summary"}')  # skipped inside a folder
    run_dirs = list(runs.values())
    mixed = load_summaries([tmp_path / "sums", run_dirs[1], run_dirs[2] / "config.json", run_dirs[0]])
    assert [m["run_id"] for m in mixed] == [run_dirs[i].name for i in (0, 1, 2)]  # run 0 counted once
    everything = load_summaries([run_dirs[0].parent])
    assert len(everything) == len(runs)
    with pytest.raises(ResultsError):
        load_summaries([tmp_path / "sums" / "notes.json"])
    with pytest.raises(ResultsError):
        load_summaries([tmp_path / "missing"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(ResultsError):
        load_summaries([tmp_path / "empty"])


def _rows(markdown: str) -> dict[tuple[str, str, str], list[str]]:
    """{(scenario, method label, beta): cells} of the report's tables."""
    rows, scenario = {}, None
    for line in markdown.splitlines():
        if line.startswith("## "):
            scenario = line[3:].strip()
        elif line.startswith("| ") and not line.startswith("| Method"):
            cells = [c.strip() for c in line.strip("|").split("|")]
            rows[(scenario, cells[0], cells[1])] = cells
    return rows


def test_summary_names_keep_budgeted_runs_apart() -> None:
    base = {"scenario": "3m", "method": "experience", "beta": 0.01, "seed": 2}
    assert summary_name({**base, "budget": "unlimited"}) == "3m-experience-b0.01-s2.json"
    assert summary_name({**base, "budget": None}) == "3m-experience-b0.01-s2.json"
    assert summary_name({**base, "budget": "2KB/step"}) == "3m-experience-b0.01-2KB_step-s2.json"
    assert summary_name({**base, "budget": "50KB/s"}) != summary_name({**base, "budget": "2KB/step"})
    assert summary_name({**base, "preset": "cpu"}) == "3m-experience-b0.01-s2.json"
    assert summary_name({**base, "preset": "paper"}) == "3m-experience-b0.01-paper-s2.json"


def test_presets_are_never_averaged_together(tmp_path: Path, summaries: list[dict]) -> None:
    """The same method, β and seeds under two presets: two rows, each with its own numbers."""
    cpu = [s for s in summaries if s["scenario"] == SCENARIOS[0] and s["method"] == "independent"]
    paper = [{**s, "preset": "paper", "run_id": s["run_id"] + "-paper", "final_win_rate": 0.0,
              "final_return": 0.5} for s in cpu]
    rows = report_json(cpu + paper)["scenarios"][SCENARIOS[0]]
    assert [(r["preset"], r["n_runs"]) for r in rows] == [("cpu", len(cpu)), ("paper", len(cpu))]
    assert rows[1]["final_win_rate"] == 0.0 and rows[1]["final_return"] == pytest.approx(0.5)
    assert rows[0]["final_win_rate"] == pytest.approx(statistics.mean(s["final_win_rate"] for s in cpu))
    table = report(cpu + paper)
    assert "| Preset |" in table and "| paper |" in table
    assert "| Preset |" not in report(cpu)  # one preset: nothing to say
    # One method, one colour: the preset (or a budget) changes the line style instead.
    variants = [("independent", None, None, p) for p in ("paper", "cpu", "mamba")]
    variants.append(("experience", 0.1, "2KB/step", "cpu"))
    styles = setting_styles(variants)
    assert _dash(("independent", None, None, "cpu"), styles) == "-"
    assert len({_dash(v, styles) for v in variants}) == 4  # four settings, four line styles
    # A setting's style does not depend on the method or β.
    assert _dash(("rollout", 0.5, None, "paper"), styles) == _dash(("independent", None, None, "paper"), styles)
    # fig4's reference lines (non-sharing methods) start dashed and stay distinct per setting.
    refs = [_dash(v, styles, shift=1) for v in variants]
    assert refs[1] == "--" and len(set(refs)) == 4
    # Past eight settings dashes repeat, but each setting's (dash, marker) pair stays its own.
    many = [("experience", 0.01, None, f"cpu+train.horizon={h}") for h in range(20)]
    many_styles = setting_styles(many)
    pairs = {(str(_dash(v, many_styles)), _marker(v, many_styles)) for v in many}
    assert len({str(_dash(v, many_styles)) for v in many}) == 8 and len(pairs) == 20
    result = plot_all(cpu + paper, tmp_path / "figs")
    assert any(p.name == "fig1_winrate.png" for p in result.written)


def test_long_legend_labels_wrap_to_the_figure_width() -> None:
    """A label with many --set overrides wraps (continuation lines indented); short ones stay."""
    long = "RSSM+Predictors (β=0.01) [cpu preset, " + ", ".join(f"train.option_{i}=0.5" for i in range(12)) + "]"
    short = "Independent Training [cpu preset] (n=3)"
    wrapped, kept = _wrapped([long, short], 3.0)
    assert kept == short
    chars = int((LEGEND_MIN_IN - 0.6) / 0.075)
    lines = wrapped.splitlines()
    assert len(lines) > 1 and all(len(line) <= chars for line in lines)
    assert all(line.startswith("    ") for line in lines[1:])
    assert " ".join(line.strip() for line in lines) == long


def test_runs_with_set_overrides_are_their_own_variant(tmp_path: Path) -> None:
    """Two runs that differ only in a --set learner setting: summarized under two names, never
    averaged together, and labelled with the setting."""
    plain = make_run(tmp_path / "a", 0, "independent", 0.0, 0)
    tuned = make_run(tmp_path / "b", 0, "independent", 0.0, 0)
    record = json.loads((tuned / "config.json").read_text())
    cfg = record["config"]
    cfg["train"] = {"entropy_target": 0.25, "explore_eps": 0.1, "lr_wm": 3e-4}  # lr_wm: as in cpu
    cfg["share"]["window"] = 99
    (tuned / "config.json").write_text(json.dumps(record))
    a, b = summarize(plain), summarize(tuned)
    assert a["overrides"] is None
    assert b["overrides"] == "share.window=99,train.entropy_target=0.25,train.explore_eps=0.1"
    assert summary_name(a) == f"{SCENARIOS[0]}-independent-b0-s0.json"
    assert summary_name(b) == (f"{SCENARIOS[0]}-independent-b0-cpu_share.window_99_train.entropy_target_0.25"
                               "_train.explore_eps_0.1-s0.json")
    rows = report_json([a, b])["scenarios"][SCENARIOS[0]]
    assert [r["n_runs"] for r in rows] == [1, 1]
    assert variant_label(variant(b), show=varying_settings([a, b])) == (
        "Independent Training [cpu preset, share.window=99, train.entropy_target=0.25, train.explore_eps=0.1]")
    styles = setting_styles([variant(b), variant(a)])
    assert _dash(variant(b), styles) != _dash(variant(a), styles) == "-"


def test_overrides_are_against_the_preset_recorded_at_launch(tmp_path: Path) -> None:
    """A run that recorded its preset's values (every launch since the record exists) keeps its
    label when the preset changes later: it is compared with what the preset was then."""
    from launch.rundir import run_record

    run = make_run(tmp_path / "a", 0, "independent", 0.0, 0)
    record = json.loads((run / "config.json").read_text())
    launched = run_record(load_config("cpu", overrides=["train.horizon=25"]), [])
    assert launched["preset_config"] == to_dict(load_config("cpu"))
    # The preset as it was at launch had horizon 25 (say); the run used it unchanged.
    then = launched["preset_config"]
    then["train"]["horizon"] = 25
    record["config"] = {**launched["config"], "run": record["config"]["run"]}
    record["preset_config"] = then
    (run / "config.json").write_text(json.dumps(record))
    assert summarize(run)["overrides"] is None
    # Without the record (older runs) the current preset is the reference: horizon 15 now.
    del record["preset_config"]
    (run / "config.json").write_text(json.dumps(record))
    assert summarize(run)["overrides"] == "train.horizon=25"


def test_best_beta_breaks_win_rate_ties_by_return() -> None:
    def runs(win: float, ret: float) -> list[dict]:
        return [{"final_win_rate": win, "final_return": ret}] * 3
    variants = {("rollout", 0.01, None, "cpu"): runs(0.0, 0.8), ("rollout", 0.2, None, "cpu"): runs(0.0, 2.5),
                ("rollout", 1.0, None, "cpu"): runs(0.0, 1.6), ("experience", 0.01, None, "cpu"): runs(0.1, 0.2),
                ("experience", 0.05, None, "cpu"): runs(0.0, 9.0)}
    assert set(_best_variants(variants)) == {("rollout", 0.2, None, "cpu"), ("experience", 0.01, None, "cpu")}


def test_a_seed_longer_than_the_others_goes_on_as_a_thin_line() -> None:
    plt = pytest.importorskip("matplotlib.pyplot")
    def run(last: int, late_win: float) -> dict:
        return {"eval": [[x, 0.0, 0.0, 10] for x in range(0, last, 2000)] + [[last, late_win, 20.0, 10]]}
    v = ("independent", None, None, "cpu")
    fig, ax = plt.subplots()
    try:
        assert _curves_panel(ax, {v: [run(100_000, 0.0), run(132_000, 0.8), run(100_500, 0.0)]}, str)
        mean, *seeds = ax.lines
        assert mean.get_xdata()[-1] == 100_000  # the mean covers what every seed covers
        assert len(seeds) == 1 and seeds[0].get_xdata()[-1] == 132_000 and seeds[0].get_ydata()[-1] == 0.8
    finally:
        plt.close(fig)


def test_a_panel_whose_curves_all_stay_at_0_says_so() -> None:
    plt = pytest.importorskip("matplotlib.pyplot")
    def run(wins: list[float]) -> dict:
        return {"eval": [[2000 * i, w, 5.0, 10] for i, w in enumerate(wins)]}
    a, b = ("independent", None, None, "cpu"), ("experience", 0.01, None, "cpu")
    for variants, says in (({a: [run([0, 0, 0])] * 2, b: [run([0, 0, 0])]}, True),
                           ({a: [run([0, 0, 0]), run([0, 0.1, 0])], b: [run([0, 0, 0])]}, False)):
        fig, ax = plt.subplots()
        try:
            assert _curves_panel(ax, variants, str)
            assert [t.get_text() for t in ax.texts] == (["every curve at 0 throughout"] if says else [])
        finally:
            plt.close(fig)


def test_shared_legend_only_when_each_method_has_one_label() -> None:
    same = {"3m": {("independent", None, None, "cpu"): [], ("rollout", 1.0, None, "cpu"): []},
            "2s3z": {("rollout", 1.0, None, "cpu"): []}}
    assert not labels_differ_across_panels(same)
    # Rollout at β=1 on one map and β=0.01 on another: one colour, two labels -> panel legends.
    assert labels_differ_across_panels({**same, "2m_vs_1z": {("rollout", 0.01, None, "cpu"): []}})


def test_report_matches_fixture(summaries: list[dict]) -> None:
    rows = _rows(report(summaries))
    assert len(rows) == len(SCENARIOS) * len(VARIANTS)
    for scn, name in enumerate(SCENARIOS):
        for method, beta in VARIANTS:
            wins = [eval_wins(scn, method_index(method), beta, seed) for seed in SEEDS]
            finals = [w[-1] / EVAL_EPISODES for w in wins]
            mean, half = mean_ci(finals)
            shown_beta = f"{beta:g}" if method in ("experience", "rollout") else "—"
            cells = rows[(name, METHOD_LABELS[method], shown_beta)]
            assert cells[2] == str(len(SEEDS))
            got_mean, got_half = map(float, re.findall(r"[\d.]+", cells[3])[:2])
            assert got_mean == pytest.approx(mean, abs=5e-4) and got_half == pytest.approx(half, abs=5e-4)
            # the fixture's eval episodes return 10 when won, 0 when lost
            ret_mean, ret_half = map(float, re.findall(r"[\d.]+", cells[4])[:2])
            assert ret_mean == pytest.approx(10 * mean, abs=0.05) and ret_half == pytest.approx(10 * half, abs=0.05)
            hits = [next((j * EVAL_EVERY for j, x in enumerate(w) if x / EVAL_EPISODES >= 0.5), None) for w in wins]
            reached = [h for h in hits if h is not None]
            if reached:
                assert float(cells[5].split()[0].replace(",", "")) == statistics.median(reached)
            else:
                assert cells[5] == "—"
            assert float(cells[7].replace(",", "")) == pytest.approx(expected_bytes(method, beta) / STEPS, abs=0.05)
            assert float(cells[8]) == N_AGENTS * (STEPS // EP_LEN // 10)
    data = report_json(summaries)
    assert set(data["scenarios"]) == set(SCENARIOS) and data["notes"]
    json.dumps(data, allow_nan=False)


def test_one_seed_uses_wilson(summaries: list[dict]) -> None:
    one = [s for s in summaries if s["seed"] == SEEDS[0] and s["method"] == "independent"][:1]
    row = report_json(one)["scenarios"][one[0]["scenario"]][0]
    assert row["ci_kind"] == "wilson" and row["ci95"] == one[0]["final_ci95"]
    assert "ʷ" in report(one)


def test_plots_written(tmp_path: Path, summaries: list[dict]) -> None:
    one_scenario = [s for s in summaries if s["scenario"] == SCENARIOS[0]]  # half the panels: faster
    result = plot_all(one_scenario, tmp_path / "figs")
    names = {p.name for p in result.written}
    assert names == {"fig1_winrate.png", "fig1b_return.png", "fig2_world_model_losses.png", "fig3_actor_critic_losses.png",
                     "fig4_beta.png", "fig5_best_beta.png", "bytes_vs_winrate.png"}
    assert not result.skipped
    for p in result.written:
        assert p.read_bytes().startswith(b"\x89PNG") and p.stat().st_size > 5000


def test_plots_skip_what_is_missing(tmp_path: Path, summaries: list[dict]) -> None:
    only = [s for s in summaries if s["method"] == "independent" and s["scenario"] == SCENARIOS[0]]
    result = plot_all(only, tmp_path / "figs")
    assert {"fig4_beta.png", "fig5_best_beta.png"} <= set(result.skipped)
    assert {p.name for p in result.written} >= {"fig1_winrate.png", "bytes_vs_winrate.png"}
    assert all(not (tmp_path / "figs" / name).exists() for name in result.skipped)


def _err(result) -> str:
    err = result.stderr.strip()
    assert result.exit_code == 2 and err.startswith("error: ") and "\n" not in err, (result.exit_code, err)
    return err


def test_cli(tmp_path: Path, runs: dict[tuple, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    cli = CliRunner()
    dirs = [str(d) for d in list(runs.values())[:4]]
    res = cli.invoke(app, ["summarize", *dirs, "--out", str(tmp_path / "sums")])
    assert res.exit_code == 0, res.output
    written = [Path(line) for line in res.stdout.split()]
    assert len(written) == 4 and all(p.is_file() for p in written)

    res = cli.invoke(app, ["report", str(tmp_path / "sums"), "--out", str(tmp_path / "r.md")])
    assert res.exit_code == 0, res.output
    assert _rows((tmp_path / "r.md").read_text()) == _rows(report(load_summaries([tmp_path / "sums"])))
    res = cli.invoke(app, ["report", str(tmp_path / "sums"), "--json"])
    assert res.exit_code == 0 and json.loads(res.stdout)["scenarios"]

    res = cli.invoke(app, ["plot", str(tmp_path / "sums"), "--out", str(tmp_path / "figs")])
    assert res.exit_code == 0, res.output
    assert all(Path(line).is_file() for line in res.stdout.split())
    assert "skipped fig5_best_beta.png" in res.stderr  # the 4 runs hold no beta sweep

    (tmp_path / "bad.json").write_text("{not json")
    assert "not valid JSON" in _err(cli.invoke(app, ["report", str(tmp_path / "bad.json")]))
    assert "not a run directory" in _err(cli.invoke(app, ["summarize", str(tmp_path), "--out", str(tmp_path)]))
    (tmp_path / "empty").mkdir()
    assert "no run" in _err(cli.invoke(app, ["plot", str(tmp_path / "empty"), "--out", str(tmp_path / "f")]))
    assert "not found" in _err(cli.invoke(app, ["report", str(tmp_path / "nope")]))
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # as if the viz extra were not installed
    err = _err(cli.invoke(app, ["plot", str(tmp_path / "sums"), "--out", str(tmp_path / "f2")]))
    assert "pip install 'dwm-net[viz]'" in err


def _add_eval(d: Path, step: int, won: bool) -> None:
    """One evaluation episode at `step`, as an evaluation cut short after its first episode."""
    with open(d / "episodes.jsonl", "a") as fh:
        fh.write(json.dumps({"mode": "eval", "episode": 0, "env_steps": step, "return": 20.0 * won, "won": won}) + "\n")


def test_evaluations_cut_short_count_for_nothing(tmp_path: Path) -> None:
    """A one-episode evaluation that won is not 100%: steps to 50%/80%, the final numbers and
    the curves use complete evaluations only, and the cut ones are counted."""
    d = make_run(tmp_path, 0, "independent", 0.0, 1)  # complete evals: 0, 0, 1, 1, 2 wins of 4
    _add_eval(d, 250, won=True)
    _add_eval(d, STEPS + 50, won=True)
    s = summarize(d)
    assert s["partial_evals"] == 2
    assert [e[0] for e in s["eval"]] == [0, 100, 200, 300, 400]
    assert (s["steps_to_50"], s["steps_to_80"]) == (400, None)
    assert (s["final_env_steps"], s["final_win_rate"], s["final_n"]) == (400, 0.5, EVAL_EPISODES)
    assert report_json([s])["scenarios"][SCENARIOS[0]][0]["partial_evals"] == 2
    # A summary written before partial evaluations were left out still has them in "eval".
    from launch.plots import _eval_curve

    old = {**s, "eval": sorted(s["eval"] + [[250, 1.0, 20.0, 1]])}
    assert [p[0] for p in _eval_curve(old)] == [0, 100, 200, 300, 400]


def test_a_seed_given_twice_is_refused(tmp_path: Path) -> None:
    """Two runs of one variant and seed (independent's β means nothing) would be averaged as two
    seeds: report and plot refuse, naming both runs."""
    a = make_run(tmp_path / "a", 0, "independent", 0.0, 0)
    b = make_run(tmp_path / "b", 0, "independent", 1.0, 0)
    c = make_run(tmp_path / "c", 0, "independent", 0.0, 1)
    with pytest.raises(ResultsError, match="both seed 0"):
        load_summaries([tmp_path])
    cli = CliRunner()
    for command in (["report", str(tmp_path)], ["plot", str(tmp_path), "--out", str(tmp_path / "figs")]):
        err = _err(cli.invoke(app, command))
        assert f"{a} and {b} are both seed 0 of {SCENARIOS[0]} Independent Training" in err
        assert "one run per seed" in err
    with pytest.raises(ResultsError):
        report([summarize(a), summarize(b)])
    assert report_json([summarize(a), summarize(c)])["scenarios"][SCENARIOS[0]][0]["seeds"] == [0, 1]


def test_seeds_column_says_how_many_seeds_have_an_evaluation(tmp_path: Path) -> None:
    """Two seeds, one without an evaluation: the win rate is one seed's (ʷ), and the Seeds
    column says so instead of "2"."""
    a = make_run(tmp_path, 0, "rollout", 1.0, 1)
    b = make_run(tmp_path, 0, "rollout", 1.0, 2, done=False)
    lines = (b / "episodes.jsonl").read_text().splitlines()
    (b / "episodes.jsonl").write_text("".join(x + "\n" for x in lines if '"eval"' not in x))
    cells = _rows(report([summarize(a), summarize(b)]))[(SCENARIOS[0], METHOD_LABELS["rollout"], "1")]
    assert cells[2] == "2 (1 evaluated, 1 unfinished)" and cells[3].endswith("ʷ")
    notes = report([summarize(a)])
    assert "excluding heartbeats" in notes and "at most 20" not in notes


def test_seeds_that_share_no_steps_are_drawn_one_by_one_and_said(tmp_path: Path) -> None:
    """Seeds whose evaluations cover disjoint steps have no common grid for a mean: each is
    drawn alone, and plot says so instead of dropping the method from the figure."""
    plt = pytest.importorskip("matplotlib.pyplot")
    early = summarize(make_run(tmp_path, 0, "independent", 0.0, 1))
    late = summarize(make_run(tmp_path, 0, "independent", 0.0, 2))
    late["eval"] = [[e[0] + 10 * STEPS, *e[1:]] for e in late["eval"]]
    v = variant(early)
    fig, ax = plt.subplots()
    try:
        notes: list = []
        assert _curves_panel(ax, {v: [early, late]}, str, notes=notes)
        assert len(ax.lines) == 2 and ax.lines[1].get_xdata()[0] == 10 * STEPS
        assert notes and "share no env steps" in notes[0][1]
    finally:
        plt.close(fig)
    result = plot_all([early, late], tmp_path / "figs")
    assert "fig1_winrate.png" in {p.name for p in result.written}
    assert any(k.startswith("fig1_winrate.png: mean of Independent Training") for k in result.skipped)
