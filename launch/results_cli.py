"""`dwm-net summarize | plot | report`: experiment results from run directories or summaries."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from .errors import ensure_folder, fail
from .results import (
    ResultsError,
    is_run_dir,
    load_summaries,
    summarize,
    summary_name,
    write_summary,
)

Paths = Annotated[list[Path], typer.Argument(metavar="PATH",
                                             help="run dirs, summary JSON files, or folders holding either")]


def _load(paths: list[Path]) -> list[dict]:
    try:
        return load_summaries(paths)
    except ResultsError as e:
        fail(str(e))


def summarize_cmd(
    run_dirs: Annotated[list[Path], typer.Argument(metavar="RUN_DIR",
                                                   help="run directories (dwm-net launch wrote them)")],
    out: Annotated[Path, typer.Option("--out", help="folder for the summary JSON files")],
) -> None:
    """Write one summary JSON per run: <scenario>-<method>-b<beta>[-<budget>][-<preset>[_<overrides>]]-s<seed>.json."""
    summaries = []
    for d in dict.fromkeys(run_dirs):  # the same path twice is summarized once
        if not is_run_dir(d):
            fail(f"{d} is not a run directory (no config.json); pass folders `dwm-net launch` created")
        try:
            summaries.append(summarize(d))
        except ResultsError as e:
            fail(str(e))
    names: dict[str, str] = {}
    for s in summaries:  # never let two runs overwrite each other's summary
        name = summary_name(s)
        if name in names:
            fail(f"{names[name]} and {s['run_dir']} would both be written as {name} "
                 f"(same scenario, method, beta and seed); summarize them into different --out folders")
        names[name] = s["run_dir"]
    ensure_folder(out, "--out")
    for s in summaries:
        try:
            path = write_summary(s, out)
        except OSError as e:
            fail(f"cannot write {out / summary_name(s)} ({e.strerror or e}); choose another --out")
        typer.echo(str(path))


def plot_cmd(
    paths: Paths,
    out: Annotated[Path, typer.Option("--out", help="folder for the PNG files")],
) -> None:
    """Draw the figures (PNG) from runs or summaries; prints the files written."""
    summaries = _load(paths)
    from .plots import plot_all

    ensure_folder(out, "--out")
    try:
        result = plot_all(summaries, out)
    except ImportError as e:
        fail(str(e))
    except OSError as e:
        fail(f"cannot write the figures into {out} ({e.strerror or e}); choose another --out")
    if not result.written:
        fail(f"nothing to plot from {len(summaries)} run(s): no evaluations, losses or byte counters yet")
    for path in result.written:
        typer.echo(str(path))
    for name, why in result.skipped.items():
        typer.echo(f"skipped {name}: {why}", err=True)


def report_cmd(
    paths: Paths,
    out: Annotated[Path | None, typer.Option("--out", help="write here instead of printing")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="the table's numbers as JSON")] = False,
) -> None:
    """A markdown table per scenario: final win rate, steps to 50%/80%, bytes, drops."""
    from .report import report, report_json

    summaries = _load(paths)
    text = json.dumps(report_json(summaries), indent=2) + "\n" if as_json else report(summaries)
    if out is None:
        typer.echo(text, nl=False)
        return
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text, encoding="utf-8")
    except OSError as e:
        fail(f"cannot write {out} ({e.strerror or e})")
    typer.echo(str(out))


def register(app: typer.Typer) -> None:
    """Add `summarize`, `plot` and `report` to the `dwm-net` app."""
    app.command("summarize")(summarize_cmd)
    app.command("plot")(plot_cmd)
    app.command("report")(report_cmd)


__all__ = ["register"]
