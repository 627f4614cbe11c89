"""`dwm-net env ...`: play, render and inspect the environments."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import typer
from rich.console import Console
from rich.table import Table

from dwm_net.envs import SCENARIOS, make_env
from dwm_net.envs.policies import POLICIES, make_policy, run_episode

from .errors import fail, non_negative

env_app = typer.Typer(help="Play, render and inspect the SMAC scenarios.", no_args_is_help=True)


def check_scenario(scenario: str) -> str:
    if scenario not in SCENARIOS:
        fail(f"unknown scenario {scenario!r}; choose one of: {', '.join(SCENARIOS)}")
    return scenario


def check_policy(policy: str) -> str:
    if policy not in POLICIES:
        fail(f"unknown policy {policy!r}; choose one of: {', '.join(POLICIES)}")
    return policy


@env_app.command()
def play(
    scenario: str = typer.Option("2s_vs_1sc", help=f"one of: {', '.join(SCENARIOS)}"),
    policy: str = typer.Option("random", help=f"scripted policy: {', '.join(POLICIES)}"),
    episodes: int = typer.Option(100, min=1, help="episodes to play"),
    seed: int = typer.Option(0, callback=non_negative("--seed"), help="env and policy seed"),
    backend: str = typer.Option("builtin", help="builtin (no StarCraft II needed) or sc2"),
    json_out: bool = typer.Option(False, "--json", help="print one JSON object"),
) -> None:
    """Play episodes with a scripted policy; print win rate, mean return and mean length."""
    check_scenario(scenario)
    check_policy(policy)
    env = _make(scenario, seed, backend)
    pol = make_policy(policy, np.random.default_rng(seed))
    results = [run_episode(env, pol) for _ in range(episodes)]
    env.close()
    won = np.array([r["won"] for r in results])
    summary = {
        "scenario": scenario,
        "policy": policy,
        "episodes": episodes,
        "win_rate": float(won.mean()),
        "mean_return": float(np.mean([r["return"] for r in results])),
        "mean_length": float(np.mean([r["length"] for r in results])),
    }
    if json_out:
        typer.echo(json.dumps(summary))
        return
    table = Table(title=f"{scenario} · {policy} policy · {episodes} episodes · seed {seed}")
    for col in ("win rate", "mean return", "mean length (steps)"):
        table.add_column(col, justify="right")
    table.add_row(f"{summary['win_rate']:.1%}", f"{summary['mean_return']:.2f}",
                  f"{summary['mean_length']:.1f}")
    Console().print(table)


@env_app.command()
def render(
    scenario: str = typer.Option("2s_vs_1sc", help=f"one of: {', '.join(SCENARIOS)}"),
    policy: str = typer.Option("kite", help=f"scripted policy: {', '.join(POLICIES)}"),
    out: Path = typer.Option(Path("episode.gif"), help="output GIF"),
    seed: int = typer.Option(0, callback=non_negative("--seed"), help="env and policy seed"),
    fps: int = typer.Option(4, min=1, max=30),
) -> None:
    """Draw one episode (units, health, who shoots whom) to an animated GIF."""
    check_scenario(scenario)
    check_policy(policy)
    if out.suffix.lower() != ".gif":
        fail(f"--out must end in .gif, got {str(out)!r}")
    if not out.parent.exists():
        fail(f"directory {str(out.parent)!r} does not exist; create it or choose another --out")
    try:
        from dwm_net.envs.render import render_episode
    except ImportError as e:
        fail(str(e))
    env = _make(scenario, seed, "builtin")
    try:
        summary = render_episode(env, make_policy(policy, np.random.default_rng(seed)), out,
                                 seed=seed, fps=fps)
    except ImportError as e:
        fail(str(e))
    typer.echo(f"wrote {out} ({summary['steps']} steps, return {summary['return']:.2f}, "
               f"{'won' if summary['won'] else 'not won'})")


@env_app.command()
def info(scenario: str = typer.Option("2s_vs_1sc")) -> None:
    """Print the scenario's env info (sizes, agents, episode limit) as JSON."""
    check_scenario(scenario)
    typer.echo(json.dumps(make_env(scenario).get_env_info()))


def _make(scenario: str, seed: int, backend: str):
    if backend not in ("builtin", "sc2"):
        fail(f"unknown backend {backend!r}; choose builtin or sc2")
    try:
        return make_env(scenario, seed=seed, backend=backend)  # type: ignore[arg-type]
    except (RuntimeError, ImportError) as e:
        fail(str(e).splitlines()[0] if str(e) else type(e).__name__)
