"""`dwm-net launch | env-host | agent | learner | eval`: run the system, or one part of it.

`launch` starts every part on this machine. `env-host`, `agent` and `learner` run one part each,
on whichever machine (`dwm-net launch --print-commands` prints what to run where). Every part
gets its config either as `--config <run_dir>/config.json` (what the launcher passes) or from
the same flags as `launch` (`--scenario`, `--method`, `--preset`, `--set`, ...), which must then
agree across machines.
"""

from __future__ import annotations

import logging
import shlex
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Annotated, NoReturn, Optional

import typer

from dwm_net.config import DEFAULT_PRESET, PRESETS, SCENARIOS, Config, ConfigError, replace, to_dict

from .config_cli import resolve_config_or_exit
from .errors import ensure_folder, fail, non_negative
from .rundir import (
    DONE_FILE,
    RunDirError,
    default_run_dir,
    extend_run,
    lock_run_dir,
    n_agents_of,
    read_config,
    read_config_file,
    read_host_state,
    write_config,
)
from .sweep import Sweep, SweepArgs, check_parallel, expand, mismatched_runs, status_of

METHODS = ("independent", "centralized", "experience", "rollout", "both")

Scenario = Annotated[Optional[str], typer.Option(help=f"SMAC scenario: {', '.join(SCENARIOS)}")]
Backend = Annotated[Optional[str], typer.Option(help="environment: builtin (default) or sc2 (real StarCraft II)")]
Method = Annotated[Optional[str], typer.Option(help=f"sharing method: {', '.join(METHODS)}")]
Beta = Annotated[Optional[float], typer.Option(help="target fraction shared, in [0, 1] (1: share all)")]
Preset = Annotated[Optional[str], typer.Option(help=f"config preset: {', '.join(PRESETS)} (default {DEFAULT_PRESET})")]
Steps = Annotated[Optional[int], typer.Option(help="training env steps of the run")]
Seed = Annotated[Optional[int], typer.Option(help="base seed; per-process seeds derive from it")]
Budget = Annotated[Optional[str], typer.Option(help="bytes each agent may send: unlimited, 50KB/s, 2KB/step")]
EvalEvery = Annotated[Optional[int], typer.Option(help="env steps between greedy evaluations (0: never)")]
EvalEpisodes = Annotated[Optional[int], typer.Option(help="episodes per evaluation")]
Sets = Annotated[Optional[list[str]], typer.Option("--set", help="override a config key, e.g. model.hidden=64 (repeatable)")]
File = Annotated[Optional[Path], typer.Option("--file", help="TOML config file")]
ConfigFile = Annotated[Optional[Path], typer.Option("--config", help="a run's config.json (instead of the flags above)")]
Keys = Annotated[Optional[Path], typer.Option("--keys", help="CURVE key directory (dwm-net keys generate)")]
Metrics = Annotated[Optional[str], typer.Option("--metrics", help="metrics collector endpoint to publish to")]
RunDir = Annotated[Optional[Path], typer.Option("--run-dir", help="run directory")]

_FLAG_KEYS = {"scenario": "env.scenario", "backend": "env.backend", "method": "share.method", "beta": "share.beta",
              "budget": "comms.budget", "steps": "run.steps", "seed": "run.seed",
              "eval_every": "run.eval_every", "eval_episodes": "run.eval_episodes"}


def config_from_flags(preset: str | None, file: Path | None, sets: list[str] | None,
                      **flags: object) -> Config:
    """defaults -> preset -> file -> --set -> the named flags; one-line errors, exit 2."""
    overrides = list(sets or [])
    overrides += [f"{_FLAG_KEYS[name]}={value}" for name, value in flags.items() if value is not None]
    return resolve_config_or_exit(preset, file, overrides)


def _process_config(config: Path | None, preset: str | None, file: Path | None,
                    sets: list[str] | None, **flags: object) -> Config:
    if config is None:
        return config_from_flags(preset, file, sets, **flags)
    given = [name for name, value in flags.items() if value is not None]
    if given or preset or file or sets:
        fail(f"--config takes the whole config from {config}; drop the other config flags "
             f"({', '.join('--' + g.replace('_', '-') for g in given) or '--preset/--file/--set'})")
    try:
        return read_config_file(config)
    except RunDirError as e:
        fail(str(e))


def _setup_logging() -> None:
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")


def _check_backend(cfg: Config) -> None:
    """Real StarCraft II must be installed before any process starts (one line if not)."""
    if cfg.env.backend == "sc2":
        from dwm_net.envs.sc2 import sc2_unavailable_reason

        reason = sc2_unavailable_reason(cfg.env.scenario)
        if reason is not None:
            fail(reason.splitlines()[0])


def _write_config(run_dir: Path, cfg: Config) -> None:
    try:
        write_config(run_dir, cfg)
    except OSError as e:
        fail(f"cannot write {run_dir / 'config.json'} ({e.strerror or e}); choose another --run-dir")


def _check_keys(keys: Path | None, cfg: Config | None = None, mine: Sequence[str] = ()) -> None:
    """Before anything starts: the key directory exists and, for each name in `mine` (the
    processes this command runs here), its key pair loads and every process of the run has a
    public key. The loader's one-line message and exit 2 if not."""
    if keys is None:
        return
    if not keys.is_dir():
        fail(f"key directory {keys} not found; create one with `dwm-net keys generate {keys}`")
    if cfg is None or not mine:
        return
    from comms.security import KeyRing

    try:
        rings = [KeyRing.load(keys, name) for name in mine]
        for name in key_names(cfg):
            rings[0].public_key_of(name)
    except ValueError as e:
        fail(str(e))


def key_names(cfg: Config) -> list[str]:
    """The key names of a run's processes (comms.security): env-host, agent-<i>, learner."""
    n = n_agents_of(cfg.env.scenario)
    return ["env-host", *(f"agent-{i}" for i in range(n))] + (["learner"] if cfg.share.method == "centralized" else [])


# --- launch ---------------------------------------------------------------------------------------

def launch(
    agents: Annotated[Optional[int], typer.Option(help="agent processes; must equal the scenario's agent count")] = None,
    scenario: Scenario = None, backend: Backend = None, method: Method = None, beta: Beta = None, preset: Preset = None,
    steps: Steps = None, seed: Seed = None, budget: Budget = None, eval_every: EvalEvery = None,
    eval_episodes: EvalEpisodes = None, sets: Sets = None, file: File = None,
    run_dir: RunDir = None,
    resume: Annotated[Optional[Path], typer.Option(help="continue the run in this run directory")] = None,
    keys: Keys = None,
    no_live: Annotated[bool, typer.Option("--no-live", help="plain status lines instead of the live view")] = False,
    print_commands: Annotated[bool, typer.Option("--print-commands", help="print what to run on each machine, and exit")] = False,
    max_restarts: Annotated[int, typer.Option(min=0, help="restarts allowed per process before the run stops")] = 3,
) -> None:
    """Train agents: env host, one process per agent (and the learner), live view, run dir."""
    from .launcher import LaunchArgs, Launcher
    from .live import use_live

    flags = {"scenario": scenario, "backend": backend, "method": method, "beta": beta, "budget": budget, "steps": steps, "seed": seed,
                 "eval_every": eval_every, "eval_episodes": eval_episodes}
    if resume is not None:
        cfg, run_dir = _resume_config(resume, run_dir, preset, file, sets, flags)
        _exit_if_finished(run_dir, cfg)
    else:
        cfg = config_from_flags(preset, file, sets, **flags)
        run_dir = run_dir or default_run_dir(cfg)
        if (run_dir / "config.json").exists():
            fail(f"{run_dir} already holds a run; continue it with --resume {run_dir} or choose "
                 f"another --run-dir")
    _check_backend(cfg)
    n = n_agents_of(cfg.env.scenario)
    if agents is not None and agents != n:
        fail(f"--agents {agents} does not match {cfg.env.scenario}, which has {n} agents; "
             f"pass --agents {n} or leave it out")
    if print_commands:  # each machine holds its own secret key only: check the folder here
        _check_keys(keys)
        typer.echo(commands_text(cfg, run_dir, n, keys))
        return
    _check_keys(keys, cfg, key_names(cfg))  # every process's keys, before any process starts
    ensure_folder(run_dir, "--run-dir")
    try:  # before config.json is touched: a live run's record must not change under it
        lock_run_dir(run_dir)
    except RunDirError as e:
        fail(str(e))
    if resume is None or not (run_dir / "config.json").exists():
        _write_config(run_dir, cfg)
    elif steps is not None:  # a resumed run extended: only run.steps changes in its record
        try:
            extend_run(run_dir, cfg.run.steps)
        except (OSError, ValueError, KeyError, TypeError) as e:
            fail(f"cannot update {run_dir / 'config.json'} ({e}); it is not a usable run directory")
    launcher = Launcher(LaunchArgs(cfg, run_dir, n, keys=keys, live=not no_live and use_live(sys.stdout),
                                   max_restarts=max_restarts))
    raise typer.Exit(launcher.run())


def _exit_if_finished(run_dir: Path, cfg: Config) -> None:
    """A finished run asked to go on to no more steps than it has: say so, start nothing (it
    would only start every process to evaluate the same checkpoints again)."""
    done = (run_dir / DONE_FILE).exists()
    steps = read_host_state(run_dir).get("env_steps", 0)
    if done and isinstance(steps, int) and steps >= cfg.run.steps:
        typer.echo(f"{run_dir} is finished ({steps:,} env steps of {cfg.run.steps:,}); pass "
                   f"--steps N with N > {steps} to extend it")
        raise typer.Exit(0)


def _resume_config(resume: Path, run_dir: Path | None, preset: str | None, file: Path | None,
                   sets: list[str] | None, flags: dict[str, object]) -> tuple[Config, Path]:
    if run_dir is not None and run_dir != resume:
        fail("--resume names the run directory; drop --run-dir")
    given = [k for k, v in flags.items() if v is not None and k != "steps"]
    if given or preset or file or sets:
        names = ", ".join("--" + g.replace("_", "-") for g in given) or "--preset/--file/--set"
        fail(f"--resume continues {resume} with its own config; drop {names} (only --steps may "
             f"extend it)")
    try:
        cfg = read_config(resume)
    except RunDirError as e:
        fail(str(e))
    steps = flags.get("steps")
    if steps is not None:
        # Fewer steps than already run is allowed: the run just finishes (its last episode may
        # have overshot a sweep's --steps, which resumes a run without done.json this way).
        try:
            cfg = replace(cfg, **{"run.steps": steps})
        except ConfigError as e:
            fail(str(e))
    return cfg, resume


def commands_text(cfg: Config, run_dir: Path, n_agents: int, keys: Path | None) -> str:
    """What to run on each machine for a run split across machines."""
    from dwm_net.config import to_dict

    sets = []
    for section, values in to_dict(cfg).items():
        if section == "preset":
            continue
        for key, value in values.items():
            sets += ["--set", f"{section}.{key}={value}"]
    conf = ["--preset", cfg.preset, *sets]
    key_flag = ["--keys", str(keys)] if keys is not None else []
    quote = shlex.join
    lines = ["# 1. on the env host machine (HOST), port 5555 open to the agents:",
             quote(["dwm-net", "env-host", "--bind", "tcp://0.0.0.0:5555", "--run-dir", str(run_dir),
                    *key_flag, *conf])]
    for i in range(n_agents):
        lines += [f"# {i + 2}. on agent {i}'s machine (ME{i}), port {5600 + i} open to the other agents:",
                  quote(["dwm-net", "agent", "--id", str(i), "--connect", "tcp://HOST:5555",
                         "--bind", f"tcp://0.0.0.0:{5600 + i}", "--advertise", f"tcp://ME{i}:{5600 + i}",
                         "--run-dir", str(run_dir), *key_flag, *conf])]
    if cfg.share.method == "centralized":
        lines += [f"# {n_agents + 2}. on the learner's machine (ML), port 5700 open to the agents:",
                  quote(["dwm-net", "learner", "--connect", "tcp://HOST:5555", "--bind",
                         "tcp://0.0.0.0:5700", "--advertise", "tcp://ML:5700", "--run-dir",
                         str(run_dir), *key_flag, *conf])]
    lines.append("# replace HOST, ME<i> (and ML) with the machines' addresses; with --keys, copy "
                 "the key directory's public keys everywhere and each secret key to its machine")
    return "\n".join(lines)


def _part_config(config: Path | None, preset: str | None, file: Path | None, sets: list[str] | None,
                 **flags: object) -> Config:
    """What every part does first: die with a launcher parent, resolve the config."""
    from .launcher import die_with_parent

    die_with_parent()
    return _process_config(config, preset, file, sets, **flags)


def _run_part(main: Callable[[], int]) -> NoReturn:
    """Run a part's main with logging on stderr; a part that cannot start (no env host
    answering, a mismatched scenario, no checkpoint that loads) logs one line and exits 1; an
    endpoint it cannot bind or connect (a port in use, no tcp://) is a usage error: one line,
    exit 2."""
    from agents.checkpoints import CheckpointError
    from comms.sockets import EndpointError

    _setup_logging()
    try:
        code = main()
    except EndpointError as e:
        logging.getLogger("dwm_net").error("%s", e)
        code = 2
    except (TimeoutError, RuntimeError, CheckpointError) as e:
        logging.getLogger("dwm_net").error("%s", e)
        code = 1
    raise typer.Exit(code)


# --- the parts --------------------------------------------------------------------------------------

def env_host(
    bind: Annotated[str, typer.Option(help="control endpoint agents connect to")] = "tcp://127.0.0.1:5555",
    run_dir: Annotated[Path, typer.Option("--run-dir", help="run directory")] = Path("runs/manual"),
    config: ConfigFile = None, scenario: Scenario = None, backend: Backend = None, method: Method = None, beta: Beta = None,
    preset: Preset = None, steps: Steps = None, seed: Seed = None, budget: Budget = None,
    eval_every: EvalEvery = None, eval_episodes: EvalEpisodes = None, sets: Sets = None,
    file: File = None, keys: Keys = None, metrics: Metrics = None,
    agent_timeout: Annotated[float, typer.Option(min=1, help="seconds a silent agent may pause the run")] = 900.0,
) -> None:
    """Run the env host: rendezvous, lockstep stepping, evaluation, episodes.jsonl."""
    from .envhost import HostArgs, run_env_host

    cfg = _part_config(config, preset, file, sets, scenario=scenario, backend=backend,
                       method=method, beta=beta, budget=budget, steps=steps, seed=seed,
                       eval_every=eval_every, eval_episodes=eval_episodes)
    _check_keys(keys, cfg, ["env-host"])
    _check_backend(cfg)
    ensure_folder(run_dir, "--run-dir")
    if config is None and not (run_dir / "config.json").exists():
        _write_config(run_dir, cfg)
    _run_part(lambda: run_env_host(HostArgs(cfg, bind, run_dir, metrics=metrics, keys=keys,
                                            agent_timeout_s=agent_timeout)))


def agent(
    agent_id: Annotated[int, typer.Option("--id", min=0, help="this agent's id (0..N-1)")],
    connect: Annotated[str, typer.Option(help="the env host's control endpoint")] = "tcp://127.0.0.1:5555",
    bind: Annotated[str, typer.Option(help="this agent's peer-mesh endpoint")] = "tcp://127.0.0.1:*",
    advertise: Annotated[Optional[str], typer.Option(help="endpoint peers connect to (default: the bound one)")] = None,
    run_dir: Annotated[Path, typer.Option("--run-dir", help="run directory")] = Path("runs/manual"),
    config: ConfigFile = None, scenario: Scenario = None, backend: Backend = None, method: Method = None, beta: Beta = None,
    preset: Preset = None, steps: Steps = None, seed: Seed = None, budget: Budget = None,
    eval_every: EvalEvery = None, eval_episodes: EvalEpisodes = None, sets: Sets = None,
    file: File = None, keys: Keys = None, metrics: Metrics = None,
) -> None:
    """Run one agent: register with the env host, act, train, share, checkpoint."""
    cfg = _part_config(config, preset, file, sets, scenario=scenario, backend=backend,
                       method=method, beta=beta, budget=budget, steps=steps, seed=seed,
                       eval_every=eval_every, eval_episodes=eval_episodes)
    n = n_agents_of(cfg.env.scenario)
    if agent_id >= n:
        fail(f"--id {agent_id} is out of range: {cfg.env.scenario} has agents 0..{n - 1}")
    _check_keys(keys, cfg, [f"agent-{agent_id}"])
    ensure_folder(run_dir, "--run-dir")
    from agents.process import AgentArgs, run_agent  # torch: after the checks, so mistakes fail fast

    _run_part(lambda: run_agent(AgentArgs(cfg, agent_id, connect, run_dir, bind=bind,
                                          advertise=advertise, metrics=metrics, keys=keys)))


def learner(
    connect: Annotated[str, typer.Option(help="the env host's control endpoint")] = "tcp://127.0.0.1:5555",
    bind: Annotated[str, typer.Option(help="the learner's peer-mesh endpoint")] = "tcp://127.0.0.1:*",
    advertise: Annotated[Optional[str], typer.Option(help="endpoint agents connect to (default: the bound one)")] = None,
    run_dir: Annotated[Path, typer.Option("--run-dir", help="run directory")] = Path("runs/manual"),
    config: ConfigFile = None, scenario: Scenario = None, backend: Backend = None, method: Method = None, beta: Beta = None,
    preset: Preset = None, steps: Steps = None, seed: Seed = None, budget: Budget = None,
    eval_every: EvalEvery = None, eval_episodes: EvalEpisodes = None, sets: Sets = None,
    file: File = None, keys: Keys = None, metrics: Metrics = None,
) -> None:
    """Run the centralized learner (method centralized): trains on all agents' experience.

    It sends the acting networks back to the agents."""
    cfg = _part_config(config, preset, file, sets, scenario=scenario, backend=backend,
                       method=method, beta=beta, budget=budget, steps=steps, seed=seed,
                       eval_every=eval_every, eval_episodes=eval_episodes)
    if cfg.share.method != "centralized":
        fail(f"the learner only runs with --method centralized (this config says {cfg.share.method})")
    _check_keys(keys, cfg, ["learner"])
    ensure_folder(run_dir, "--run-dir")
    from agents.central import LearnerArgs, run_learner  # torch: after the checks

    _run_part(lambda: run_learner(LearnerArgs(cfg, connect, run_dir, bind=bind, advertise=advertise,
                                              metrics=metrics, keys=keys)))


def evaluate(
    run_dir: Annotated[Path, typer.Argument(help="a run directory")],
    checkpoint: Annotated[Optional[str], typer.Option(help="step-<N> or N (default: the latest)")] = None,
    episodes: Annotated[int, typer.Option(min=1, help="greedy episodes")] = 100,
    seed: Annotated[int, typer.Option(callback=non_negative("--seed"), help="env seed of the evaluation")] = 12345,
    render: Annotated[Optional[Path], typer.Option(help="also draw one episode to this .gif")] = None,
    json_out: Annotated[bool, typer.Option("--json", help="print one JSON object")] = False,
) -> None:
    """Win rate (95% interval) and mean return of a run's saved agents, acting greedily."""
    import json

    from agents.checkpoints import CheckpointError

    try:
        cfg = read_config(run_dir)
    except RunDirError as e:
        fail(str(e))
    if render is not None and render.suffix.lower() != ".gif":
        fail(f"--render must end in .gif, got {str(render)!r}")
    from agents.evaluate import evaluate_run  # torch: after the checks, so mistakes fail fast
    try:
        result = evaluate_run(cfg, run_dir, episodes=episodes, checkpoint=checkpoint, seed=seed,
                              render=render)
    except CheckpointError as e:
        fail(str(e))
    if json_out:
        typer.echo(json.dumps(result, default=str))
        return
    lo, hi = result["win_rate_ci95"]
    plural = "s" if result["episodes"] != 1 else ""
    typer.echo(f"{run_dir}: {result['episodes']} greedy episode{plural} at env steps "
               f"{'/'.join(map(str, result['env_steps']))}: win rate {result['win_rate']:.1%} "
               f"(95% CI {lo:.1%}-{hi:.1%}), mean return {result['mean_return']:.2f}")
    if result["render"]:
        typer.echo(f"wrote {result['render']['path']}")


def sweep(
    scenarios: Annotated[str, typer.Option(help="comma-separated scenarios")] = "2s_vs_1sc",
    methods: Annotated[str, typer.Option(help=f"comma-separated methods: {', '.join(METHODS)}")] = "independent,experience",
    betas: Annotated[str, typer.Option(help="comma-separated betas (for experience, rollout, both)")] = "0.01,0.05,0.2,1",
    seeds: Annotated[int, typer.Option(min=1, help="seeds F..F+N-1 per cell (F: --first-seed)")] = 1,
    first_seed: Annotated[int, typer.Option("--first-seed", min=0,
                                            help="the first seed (more seeds of an earlier sweep)")] = 0,
    steps: Annotated[int, typer.Option(min=1, help="training env steps per run")] = 50_000,
    parallel: Annotated[int, typer.Option(min=1, help="runs at a time")] = 1,
    root: Annotated[Path, typer.Option(help="folder of the sweep's run directories")] = Path("runs/sweep"),
    preset: Preset = None, budget: Budget = None, eval_every: EvalEvery = None,
    eval_episodes: EvalEpisodes = None, sets: Sets = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="list the runs and what would happen, start nothing")] = False,
) -> None:
    """Run a grid of launches K at a time; finished runs are skipped, unfinished ones resumed."""
    def split(text: str, what: str) -> list[str]:
        items = [x.strip() for x in text.split(",") if x.strip()]
        if not items:
            fail(f"--{what} is empty; give a comma-separated list")
        dupes = [x for i, x in enumerate(items) if x in items[:i]]
        if dupes:
            fail(f"--{what} lists {dupes[0]} more than once; give each value once")
        return items

    if root.exists() and not root.is_dir():  # before anything else is checked or listed
        fail(f"--root {root} is a file, not a folder; choose another --root")
    beta_texts = split(betas, "betas")
    try:
        beta_values = [float(b) for b in beta_texts]
    except ValueError:
        fail(f"--betas must be comma-separated numbers in [0, 1], got {betas!r}")
    _check_beta_names(beta_texts, beta_values)
    cells = expand(split(scenarios, "scenarios"), split(methods, "methods"), beta_values,
                   range(first_seed, first_seed + seeds))
    common = [*(["--preset", preset] if preset else []), *(["--budget", budget] if budget else []),
              *(["--eval-every", str(eval_every)] if eval_every is not None else []),
              *(["--eval-episodes", str(eval_episodes)] if eval_episodes is not None else []),
              *[x for item in sets or [] for x in ("--set", item)]]
    wanted = {  # every cell's config must resolve before anything starts
        cell.name: to_dict(config_from_flags(preset, None, sets, scenario=cell.scenario, method=cell.method,
                                             beta=cell.beta, budget=budget, steps=steps, seed=cell.seed,
                                             eval_every=eval_every, eval_episodes=eval_episodes))
        for cell in cells}
    mismatched = mismatched_runs(root, wanted)
    if mismatched:
        run_dir, diffs = mismatched[0]
        more = f" (and {len(mismatched) - 1} more run{'s' if len(mismatched) > 2 else ''})" if len(mismatched) > 1 else ""
        fail(f"{run_dir} was made with other settings: {'; '.join(diffs[:3])}"
             f"{'; ...' if len(diffs) > 3 else ''}{more}; give this sweep the flags it was made with, "
             f"or another --root")
    if dry_run:
        for cell in cells:
            typer.echo(f"{status_of(root / cell.name, steps):<10} {root / cell.name}")
        return
    ensure_folder(root, "--root")
    warning = check_parallel(parallel, cells)
    if warning:
        typer.echo(f"warning: {warning}", err=True)
    runner = Sweep(SweepArgs(cells, root, steps, parallel, common))
    typer.echo(f"sweep: {len(cells)} runs in {root}: {len(runner.skipped)} complete (skipped), "
               f"{sum(j.resumed for j in runner.jobs)} to resume, "
               f"{sum(not j.resumed for j in runner.jobs)} to start; {parallel} at a time")
    code = _run_sweep(runner)
    c = runner.counts()
    typer.echo(f"sweep: {c['done']} finished, {c['skipped']} skipped, {c['failed']} failed, "
               f"{c['stopped']} stopped, {c['waiting'] + c['running']} not run"
               + ("" if code != 130 else " (stopped; run the "
               "same command again to continue)"))
    for job in runner.jobs:
        if job.code not in (None, 0) and not job.stopped:
            typer.echo(f"  failed: {job.run_dir} (exit {job.code}; see {root / 'logs' / job.cell.name}.log)",
                       err=True)
    raise typer.Exit(code)


def _check_beta_names(texts: list[str], values: list[float]) -> None:
    """Each beta gets its own run directories, named -b<beta:g>: two betas that are equal or
    print alike (6 significant digits) would share them."""
    for i, (text, value) in enumerate(zip(texts, values)):
        for other_text, other in zip(texts[:i], values[:i]):
            if value == other:
                fail(f"--betas lists {value:g} more than once ({other_text} and {text}); give each beta once")
            if f"{value:g}" == f"{other:g}":
                fail(f"--betas {other_text} and {text} would share the run directories named -b{value:g}; "
                     f"give betas that differ in their first 6 significant digits")


def _run_sweep(runner: Sweep) -> int:
    """Run with a Rich progress bar on a terminal, one plain line a minute otherwise."""
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from .live import use_live

    if not use_live(sys.stdout):
        last = [0.0]

        def plain(sw: Sweep) -> None:
            if time.monotonic() - last[0] >= 60:
                last[0] = time.monotonic()
                c, done = sw.counts(), sw.fraction()
                print(f"sweep {done:.1%}: {c['done'] + c['skipped']}/{c['total']} done, "
                      f"{c['running']} running, {c['failed']} failed, {sw.eta(done)}", flush=True)

        return runner.run(plain)
    with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.percentage:>5.1f}%"),
                  TimeElapsedColumn(), console=Console(), refresh_per_second=2) as progress:
        task = progress.add_task("sweep", total=1.0)

        def tick(sw: Sweep) -> None:
            c = sw.counts()
            running = ", ".join(j.cell.name for j in sw.jobs if j.proc is not None and j.code is None)
            done = sw.fraction()
            progress.update(task, completed=done,
                            description=f"{c['done'] + c['skipped']}/{c['total']} runs done, "
                                        f"{c['failed']} failed, {sw.eta(done)} · running: {running or '-'}")

        return runner.run(tick)


def register(app: typer.Typer) -> None:
    app.command("launch")(launch)
    app.command("env-host")(env_host)
    app.command("agent")(agent)
    app.command("learner")(learner)
    app.command("eval")(evaluate)
    app.command("sweep")(sweep)


__all__ = ["commands_text", "config_from_flags", "register"]
