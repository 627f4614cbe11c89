"""`dwm-net bench ...`: benchmarks that print what they measured and on which machine."""

from __future__ import annotations

import json
import statistics
import time
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

from dwm_net.config import BASE_PRESET, DEFAULT_PRESET
from dwm_net.envs.bench import bench_env, machine_info, one_core

from .env_cli import check_scenario
from .errors import fail, non_negative
from .sweep import BETA_METHODS

bench_app = typer.Typer(help="Benchmarks (JSON with --json).", no_args_is_help=True)


@bench_app.command("env")
def env_bench(
    scenario: list[str] = typer.Option(["2s_vs_1sc"], help="scenario(s); repeat the flag"),
    episodes: int = typer.Option(200, min=1),
    seed: int = typer.Option(0, callback=non_negative("--seed")),
    with_obs: bool = typer.Option(False, help="also build observations and state every step"),
    json_out: bool = typer.Option(False, "--json", help="print one JSON object"),
) -> None:
    """Env steps/s and episodes/s with a uniformly random policy, on one core."""
    for s in scenario:
        check_scenario(s)
    with one_core() as core:
        results = [bench_env(s, episodes, seed, with_obs) for s in scenario]
    report = {"bench": "env", "core": core, "machine": machine_info(), "results": results}
    if json_out:
        typer.echo(json.dumps(report, indent=2))
        return
    table = Table(title=f"env throughput, random policy, one core ({report['machine']['cpu']})")
    for col in ("scenario", "steps/s", "episodes/s", "mean length", "obs+state"):
        table.add_column(col, justify="right")
    for r in results:
        table.add_row(r["scenario"], f"{r['steps_per_s']:,.0f}", f"{r['episodes_per_s']:,.1f}",
                      f"{r['mean_episode_length']:.1f}", "yes" if r["with_obs"] else "no")
    Console().print(table)


@bench_app.command("comms")
def comms_bench(
    seconds: float = typer.Option(10.0, min=0.5, help="real seconds per budget-accuracy run"),
    budgets: str = typer.Option("50KB/s,500KB/s", help="comma-separated bytes/s budgets"),
    messages_2k: int = typer.Option(100_000, min=10, help="messages in the 2 KB throughput run"),
    messages_64k: int = typer.Option(10_000, min=10, help="messages in the 64 KB throughput run"),
    repeats: int = typer.Option(3, min=1, help="throughput runs per path and size (medians)"),
    json_out: bool = typer.Option(False, "--json", help="print one JSON object"),
) -> None:
    """Codec overhead, throughput vs raw pyzmq, budget accuracy, compact vs naive experience."""
    from comms.bench import budget_accuracy, codec_overhead, throughput
    from comms.budget import parse_budget
    from comms.compact import experience_bytes
    from dwm_net.config import load_config
    from dwm_net.envs import SCENARIOS, make_env

    rates = [b.strip() for b in budgets.split(",") if b.strip()]
    if not rates:
        fail(f"--budgets is empty ({budgets!r}); give comma-separated bytes/s budgets, e.g. 50KB/s,500KB/s")
    for rate in rates:  # every budget is checked before the first one runs for --seconds
        try:
            parsed = parse_budget(rate)
        except ValueError as e:
            fail(str(e))
        if parsed.rate is None or parsed.per != "s":
            fail(f"--budgets needs bytes-per-second budgets like 50KB/s, got {rate!r}")
    try:
        runs = [budget_accuracy(b, seconds) for b in rates]
    except ValueError as e:
        fail(str(e))
    paper = load_config("paper").model
    latent = (paper.n_categoricals, paper.n_classes)
    compact = {}
    for s in SCENARIOS:
        info = make_env(s).get_env_info()
        with_latents = experience_bytes(info["obs_shape"], info["n_actions"], latent=latent)
        without = experience_bytes(info["obs_shape"], info["n_actions"], latent=None)
        compact[s] = {
            "naive_bytes": with_latents["naive"], "compact_bytes": with_latents["compact"],
            "ratio": with_latents["naive"] / with_latents["compact"],
            "naive_bytes_no_latents": without["naive"],
            "compact_bytes_no_latents": without["compact"],
            "ratio_no_latents": without["naive"] / without["compact"],
        }
    tp = [throughput(2048, messages_2k, repeats), throughput(65536, messages_64k, repeats)]
    report = {
        "bench": "comms",
        "machine": machine_info(),
        "codec_overhead_2k": codec_overhead(2048),
        "codec_overhead_64k": codec_overhead(65536),
        # the whole path a message takes (encode, budget queue, ledger, send; receive, decode,
        # validation) vs raw pyzmq; worst payload size, median over the repeats
        "throughput_ratio_vs_pyzmq": min(t["transport_ratio"] for t in tp),
        "codec_throughput_ratio_vs_pyzmq": min(t["ratio"] for t in tp),
        "budget_violations": sum(r["violations"] for r in runs),
        "budget_utilization": min(r["utilization"] for r in runs),
        "compact_ratio": min(c["ratio"] for c in compact.values()),
        "throughput": tp,
        "budget_runs": runs,
        "compact": compact,
        "compact_latents": list(latent),
    }
    if json_out:
        typer.echo(json.dumps(report, indent=2))
        return
    console = Console()
    console.print(f"codec overhead: 2 KB {report['codec_overhead_2k']:.4f}x, "
                  f"64 KB {report['codec_overhead_64k']:.4f}x (wire / array bytes)")
    t = Table(title=f"throughput over tcp loopback, receiver in another process "
                    f"(median of {repeats}; CPU µs per message: sender / receiver)")
    for col in ("payload", "path", "msg/s", "MB/s", "ratio (range)", "CPU µs"):
        t.add_column(col, justify="right")
    for r in tp:
        for path, name, ratio in (("raw", "raw pyzmq", None), ("raw_fresh", "raw, fresh", None),
                                  ("dwm", "codec", "ratio"),
                                  ("transport", "transport", "transport_ratio")):
            shown = "" if ratio is None else (
                f"{r[ratio]:.2f} ({r[ratio + '_range'][0]:.2f}–{r[ratio + '_range'][1]:.2f})")
            t.add_row(f"{r['payload_bytes']:,} B", name, f"{r[f'{path}_msgs_per_s']:,.0f}",
                      f"{r[f'{path}_mb_per_s']:,.1f}", shown,
                      f"{r[f'{path}_sender_cpu_us']:.1f} / {r[f'{path}_receiver_cpu_us']:.1f}")
    console.print(t)
    t = Table(title=f"budget accuracy, {seconds:g} s each, queue always backlogged")
    for col in ("budget", "bytes sent", "violations", "utilization"):
        t.add_column(col, justify="right")
    for r in runs:
        t.add_row(r["budget"], f"{r['bytes_sent']:,}", str(r["violations"]),
                  f"{r['utilization']:.3f}")
    console.print(t)
    t = Table(title=f"20-step experience chunk, wire bytes (latents {latent[0]}x{latent[1]})")
    for col in ("scenario", "naive", "compact", "ratio", "ratio without latents"):
        t.add_column(col, justify="right")
    for s, c in compact.items():
        t.add_row(s, f"{c['naive_bytes']:,}", f"{c['compact_bytes']:,}", f"{c['ratio']:.1f}",
                  f"{c['ratio_no_latents']:.1f}")
    console.print(t)


def check_preset(preset: str, sets: list[str] | tuple[str, ...] = ()) -> None:
    """A one-line usage error (exit 2) for an unknown preset or a bad ``key=value`` override."""
    from dwm_net.config import ConfigError, load_config

    try:
        load_config(preset, overrides=sets)
    except ConfigError as e:
        fail(str(e))


def _train_on_one_core(preset: str, scenario: str, seconds: float, seed: int = 0,
                       sets: list[str] | tuple[str, ...] = ()) -> tuple[int | None, dict[str, Any]]:
    """`bench_train` pinned to one core (the affinity restored after): (core, result)."""
    from dwm_net.learning.bench import bench_train

    with one_core() as core:
        return core, bench_train(preset, scenario, seconds, seed, sets)


def _training_wins(t: dict[str, Any]) -> str:
    """"3 / 1,500 (24,038), 2 noisy": training episodes won / played (env step of the first win),
    and how many of the wins had exploration noise where the run had it."""
    first = t["first_win_env_steps"]
    out = f"{t['won']:,} / {t['episodes']:,}" + ("" if first is None else f" ({first:,})")
    return out + (f", {t['won_noise']:,} noisy" if "won_noise" in t else "")


def _speed_probe(seconds: float) -> dict[str, float | str]:
    """`bench train --preset cpu --scenario 2s_vs_1sc` for ``seconds``: the learning core's rates."""
    _, r = _train_on_one_core(BASE_PRESET, "2s_vs_1sc", seconds)  # restored before any seed starts
    return {"probe": f"bench train --preset {BASE_PRESET} --scenario 2s_vs_1sc --seconds {seconds:g}",
            "wm_updates_per_s": r["wm_updates_per_s"], "ac_updates_per_s": r["ac_updates_per_s"]}


_RATES = ("wm_updates_per_s", "ac_updates_per_s", "sil_steps_per_s", "act_steps_per_s")


def _preset_label(preset: str, sets: list[str]) -> str:
    """"preset explore --set a=1 b=2" as the tables' titles name it: "explore a=1 b=2"."""
    return " ".join([preset, *sets])


def _compare_train(preset: str, scenario: str, seconds: float, seed: int, sets: list[str],
                   vs: list[str], repeats: int) -> dict[str, Any]:
    """Base (``sets``) and variant (``sets`` + ``vs``) timed alternately ``repeats`` times each in
    this one process, so both see the same machine; per rate the medians and variant / base."""
    runs: dict[str, list[dict[str, Any]]] = {"base": [], "variant": []}
    for _ in range(repeats):
        for name, extra in (("base", []), ("variant", vs)):
            runs[name].append(_train_on_one_core(preset, scenario, seconds, seed, [*sets, *extra])[1])
    medians = {name: {k: statistics.median(r[k] for r in rs) for k in _RATES} for name, rs in runs.items()}
    return {"bench": "train", "preset": preset, "scenario": scenario, "set": sets, "vs": vs,
            "repeats": repeats, "seconds": seconds, "medians": medians,
            "ratio": {k: medians["variant"][k] / medians["base"][k] for k in _RATES},
            "runs": {name: [{k: r[k] for k in (*_RATES, "precision")} for r in rs]
                     for name, rs in runs.items()},
            "machine": runs["base"][0]["machine"], "torch": runs["base"][0]["torch"]}


@bench_app.command("train")
def train_bench(
    preset: str = typer.Option(DEFAULT_PRESET, help="config preset whose sizes are measured"),
    scenario: str = typer.Option("2s_vs_1sc", help="scenario that fills the replay and sets obs/actions"),
    seconds: float = typer.Option(10.0, min=0.1, help="total timed seconds, split over the 4 parts"),
    seed: int = typer.Option(0, callback=non_negative("--seed")),
    sets: list[str] = typer.Option([], "--set", help="config override key=value (repeatable)"),
    vs: list[str] = typer.Option([], "--vs", help="time a variant with these overrides too (repeatable), "
                                 "alternating with the base, and report variant / base"),
    repeats: int = typer.Option(2, min=1, help="with --vs: timings of each, alternating"),
    json_out: bool = typer.Option(False, "--json", help="print one JSON object"),
) -> None:
    """World-model updates/s, actor-critic updates/s, acting steps/s and peak RSS of one agent's
    learning core with one torch thread, on one core."""
    check_scenario(scenario)
    check_preset(preset, sets)  # fail on a bad preset or override before the slow imports
    if vs:
        check_preset(preset, [*sets, *vs])
        report = _compare_train(preset, scenario, seconds, seed, sets, vs, repeats)
        if json_out:
            typer.echo(json.dumps(report, indent=2))
            return
        table = Table(title=f"learning core, preset {_preset_label(preset, sets)}, {scenario}: "
                            f"base vs {' '.join(vs)}, medians of {repeats} ({report['machine']['cpu']})")
        for col in ("rate", "base", "variant", "variant / base"):
            table.add_column(col, justify="right")
        for k in _RATES:
            table.add_row(k, f"{report['medians']['base'][k]:,.2f}", f"{report['medians']['variant'][k]:,.2f}",
                          f"{report['ratio'][k]:.2f}")
        Console().print(table)
        return
    core, result = _train_on_one_core(preset, scenario, seconds, seed, sets)
    report = {"bench": "train", "core": core, **result}
    if json_out:
        typer.echo(json.dumps(report, indent=2))
        return
    s = result["sizes"]
    table = Table(title=f"learning core, preset {_preset_label(preset, sets)}, {scenario}, "
                        f"one torch thread, one core ({result['machine']['cpu']})")
    for col in ("part", "rate", "per call"):
        table.add_column(col, justify="right")
    wm_name = f"world-model update (batch {s['batch_size']} x seq {s['seq_len']})"
    ac_name = f"actor-critic update (horizon {s['horizon']}, {s['ppo_epochs']} PPO epochs)"
    for name, rate, unit in ((wm_name, result["wm_updates_per_s"], "updates/s"),
                             (ac_name, result["ac_updates_per_s"], "updates/s"),
                             (f"self-imitation step ({result['sil_stepped_fraction']:.0%} stepped)",
                              result["sil_steps_per_s"], "steps/s"),
                             ("acting step (batch 1)", result["act_steps_per_s"], "steps/s")):
        table.add_row(name, f"{rate:,.1f} {unit}", f"{1e3 / rate:,.2f} ms")
    table.add_row("imagined states", f"{result['imagined_states_per_s']:,.0f} states/s", "")
    Console().print(table)
    p = result["params"]
    Console().print(f"training round ({s['wm_epochs']} wm + {s['ac_epochs']} ac): "
                    f"{result['train_round_s']:.3f} s; params: world model {p['world_model']:,}, "
                    f"actor {p['actor']:,}, critic {p['critic']:,}; "
                    f"peak RSS {result['peak_rss_mib']:,.0f} MiB")


@bench_app.command("memory")
def memory_bench(
    preset: str = typer.Option("paper", help="config preset whose buffer capacities and sizes are used"),
    scenario: str = typer.Option("2s3z", help="scenario that sets obs size and actions"),
    seed: int = typer.Option(0, callback=non_negative("--seed")),
    json_out: bool = typer.Option(False, "--json", help="print one JSON object"),
) -> None:
    """Peak RSS of one agent's learner with its own replay, shared replay and received-rollout
    buffer all full, through a world-model update and the largest actor-critic update."""
    check_scenario(scenario)
    check_preset(preset)
    from agents.memory import bench_memory

    report = {"bench": "memory", "machine": machine_info(), **bench_memory(preset, scenario, seed)}
    if json_out:
        typer.echo(json.dumps(report, indent=2))
        return
    table = Table(title=f"one agent's learner, preset {preset}, {scenario}: replays "
                        f"{report['replay_mb']:,.0f} MB (2 x {report['replay_capacity']:,} transitions), "
                        f"rollout buffer {report['rollout_buffer']['mb']:,.0f} MB")
    table.add_column("after")
    table.add_column("peak RSS", justify="right")
    for stage, mib in report["stages_peak_rss_mib"].items():
        table.add_row(stage, f"{mib:,.0f} MiB")
    Console().print(table)


def _confirmed(c: dict | None) -> str:
    """The confirm evaluation as a table cell: '0.62 of 50' or 'error: ...' or '-'."""
    if c is None:
        return "-"
    return f"error: {c['error']}" if "error" in c else f"{c['win_rate']:.2f} of {c['episodes']}"


@bench_app.command("learn")
def learn_bench(
    scenario: str = typer.Option("2s_vs_1sc", help="scenario"),
    method: str = typer.Option("experience", help="sharing method"),
    beta: float = typer.Option(0.01, help="target fraction shared"),
    target: float = typer.Option(0.8, min=0.0, max=1.0, help="eval win rate to reach"),
    max_minutes: float = typer.Option(15.0, min=0.1, help="per seed: give up after this long"),
    seeds: int = typer.Option(3, min=1, help="seeds F..F+N-1 (F: --first-seed), one launch each, one after another"),
    first_seed: int = typer.Option(0, "--first-seed", min=0, help="the first seed (more seeds of an earlier bench)"),
    preset: str = typer.Option(DEFAULT_PRESET, help="config preset"),
    eval_every: int = typer.Option(2000, min=1, help="env steps between evaluations"),
    eval_episodes: int = typer.Option(10, min=1, help="episodes per evaluation"),
    confirm: int = typer.Option(50, min=0, help="episodes of `dwm-net eval` on a seed's final agents once it "
                                "reached the target (0: skip)"),
    sets: list[str] = typer.Option([], "--set", help="config override key=value (repeatable)"),
    root: Path = typer.Option(Path("runs/bench-learn"), help="where the runs are written"),
    probe_seconds: float = typer.Option(8.0, "--probe-seconds", min=0.0,
                                        help="time `bench train --preset cpu` this long first, so the report "
                                        "says how fast the machine was (0: skip)"),
    json_out: bool = typer.Option(False, "--json", help="print one JSON object"),
) -> None:
    """Wall-clock and env steps from `dwm-net launch` to an eval win rate >= target, per seed,
    and where each process's time went."""
    from dwm_net.envs.bench import machine_info

    from .bench_learn import run_seed, summarize
    from .run_cli import config_from_flags
    from .rundir import n_agents_of

    check_scenario(scenario)
    config_from_flags(preset, None, sets, scenario=scenario, method=method, beta=beta,
                      eval_every=eval_every, eval_episodes=eval_episodes)  # one-line errors now
    launch_args = ["--scenario", scenario, "--method", method, "--beta", f"{beta:g}", "--preset", preset,
                   "--eval-every", str(eval_every), "--eval-episodes", str(eval_episodes),
                   *[x for s in sets for x in ("--set", s)]]
    # Wall-clock targets depend on the machine, and machines of one kind have differed by 1.7x
    # between sessions (docs/PERFORMANCE.md): a fixed probe (cpu sizes, 2s_vs_1sc, whatever the
    # bench's preset) makes reports from different days comparable.
    speed = _speed_probe(probe_seconds) if probe_seconds > 0 else None
    stamp = time.strftime("%Y%m%d-%H%M%S")
    tag = f"-b{beta:g}" if method in BETA_METHODS else ""  # as launch names its run dirs
    results = []
    for seed in range(first_seed, first_seed + seeds):
        run_dir = root / f"{stamp}-{scenario}-{method}{tag}-s{seed}"
        results.append(run_seed(seed, run_dir=run_dir, launch_args=launch_args, target=target,
                                max_minutes=max_minutes, episodes_per_eval=eval_episodes,
                                n_agents=n_agents_of(scenario), confirm_episodes=confirm))
    report = {"bench": "learn", "machine": machine_info(), "machine_speed": speed,
              "scenario": scenario, "method": method,
              "beta": beta, "preset": preset, "set": list(sets), "target": target,
              "max_minutes": max_minutes, **summarize(results), "runs": results}
    if json_out:
        typer.echo(json.dumps(report, indent=2))
        return
    table = Table(title=f"time to eval win rate >= {target:g}: {scenario} {method} b={beta:g} "
                        f"preset {_preset_label(preset, sets)} ({report['machine']['cpu']})")
    for col in ("seed", "reached", "wall to target", "env steps", "final win rate", "confirmed",
                "training wins (first at)", "act s", "train s", "comms s", "env s"):
        table.add_column(col, justify="right")
    for r in results:
        a = r["timers"]["agents"][0] if r["timers"]["agents"] else {}
        table.add_row(str(r["seed"]), "yes" if r["reached"] else "no",
                      f"{r['wall_s_to_target']:.0f} s" if r["reached"] else f">{r['elapsed_s']:.0f} s",
                      str(r.get("env_steps_to_target", r.get("final_env_steps", "-"))),
                      f"{r.get('final_win_rate', 1.0 if r['reached'] else 0.0):.2f}",
                      _confirmed(r.get("confirm")), _training_wins(r["training"]),
                      f"{a.get('act', 0):.0f}", f"{a.get('train', 0):.0f}",
                      f"{a.get('comms', 0) + a.get('share', 0):.0f}",
                      f"{r['timers']['env_host'].get('env', 0):.0f}")
    Console().print(table)
    med = report["median_wall_s_to_target"]
    Console().print(f"median wall-clock to target: {'not reached' if med is None else f'{med:.0f} s'} "
                    f"({report['reached']}/{seeds} seeds reached it)")
    if speed:
        Console().print(f"machine speed ({speed['probe']}): {speed['wm_updates_per_s']:.1f} world-model, "
                        f"{speed['ac_updates_per_s']:.2f} actor-critic updates/s")
