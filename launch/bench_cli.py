"""`dwm-net bench ...`: benchmarks that print what they measured and on which machine."""

from __future__ import annotations

import json

import typer
from rich.console import Console
from rich.table import Table

from dwm_net.envs.bench import bench_env, machine_info, one_core

from .env_cli import check_scenario

bench_app = typer.Typer(help="Benchmarks (JSON with --json).", no_args_is_help=True)


@bench_app.command("env")
def env_bench(
    scenario: list[str] = typer.Option(["2s_vs_1sc"], help="scenario(s); repeat the flag"),
    episodes: int = typer.Option(200, min=1),
    seed: int = typer.Option(0),
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
