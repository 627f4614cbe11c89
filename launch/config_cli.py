"""`dwm-net config ...`: show resolved configs and list presets."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import typer

from dwm_net.config import DEFAULT_PRESET, PRESETS, Config, ConfigError, load_config, to_json

from .errors import fail

config_app = typer.Typer(
    help="Show the resolved run configuration and the named presets.", no_args_is_help=True
)

PRESET_HELP = f"preset: {', '.join(PRESETS)} (default: the file's `preset` key, else {DEFAULT_PRESET})"
FILE_HELP = "TOML file with [env]/[model]/[train]/[share]/[comms]/[run] sections"
SET_HELP = "override one key, e.g. --set model.hidden=64 (repeatable)"


def resolve_config_or_exit(
    preset: str | None, file: str | Path | None, overrides: Sequence[str] | None
) -> Config:
    """:func:`load_config`, turning a :class:`ConfigError` into ``error: ...`` and exit code 2."""
    try:
        return load_config(preset, file, overrides or ())
    except ConfigError as exc:
        fail(str(exc))


@config_app.command()
def show(
    preset: str | None = typer.Option(None, "--preset", "-p", help=PRESET_HELP),
    file: Path | None = typer.Option(None, "--file", "-f", help=FILE_HELP),
    overrides: list[str] | None = typer.Option(None, "--set", "-s", help=SET_HELP),
) -> None:
    """Print the resolved config as JSON (defaults -> preset -> file -> --set)."""
    typer.echo(to_json(resolve_config_or_exit(preset, file, overrides)))


@config_app.command()
def presets() -> None:
    """List the presets, one line each; the default is marked."""
    width = max(map(len, PRESETS))
    for name, spec in PRESETS.items():
        mark = "default: " if name == DEFAULT_PRESET else ""
        typer.echo(f"{name:<{width}}  {mark}{spec.description}")
