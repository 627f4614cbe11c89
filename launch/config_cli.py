"""`dwm-net config ...`: show resolved configs and list presets."""

from __future__ import annotations

import codecs
import json
from collections.abc import Sequence
from pathlib import Path

import typer

from dwm_net.config import DEFAULT_PRESET, PRESETS, Config, ConfigError, load_config, to_json

from .errors import fail

config_app = typer.Typer(
    help="Show the resolved run configuration and the named presets.", no_args_is_help=True
)

PRESET_HELP = f"preset: {', '.join(PRESETS)} (default: the file's `preset` key, else {DEFAULT_PRESET})"
FILE_SECTIONS = "[env]/[model]/[train]/[share]/[comms]/[run]"
FILE_HELP = "TOML file with " + FILE_SECTIONS.replace("[", "\\[") + " sections"  # \[: not Rich markup
SET_HELP = "override one key, e.g. --set model.hidden=64 (repeatable)"


def resolve_config_or_exit(
    preset: str | None, file: str | Path | None, overrides: Sequence[str] | None
) -> Config:
    """:func:`load_config`, turning a :class:`ConfigError` (or a file that is not UTF-8 TOML)
    into ``error: ...`` and exit code 2."""
    try:
        return load_config(preset, file, overrides or ())
    except ConfigError as exc:
        message = str(exc)
        fail(_not_toml(Path(file), message) if file is not None and message.startswith("invalid TOML") else message)
    except UnicodeDecodeError as exc:
        fail(f"config file {file} is not UTF-8 text (byte 0x{exc.object[exc.start]:02x} at offset "
             f"{exc.start}); save it as UTF-8 TOML")


def _not_toml(path: Path, message: str) -> str:
    """`message` (the TOML parser's), or what the file is instead of TOML: a run's
    config.json, other JSON, or TOML behind a byte-order mark."""
    try:
        data = path.read_bytes()
    except OSError:
        return message
    if data.startswith(codecs.BOM_UTF8):
        return (f"config file {path} starts with a UTF-8 byte-order mark, which TOML does not "
                f"allow; remove the BOM (save it as UTF-8 without BOM)")
    try:
        record = json.loads(data)
    except ValueError:
        record = None
    if isinstance(record, dict) and isinstance(record.get("config"), dict):
        return (f"{path} looks like a run's config.json, not a TOML config file: continue that run "
                f"with `dwm-net launch --resume {path.parent}` (env-host, agent, learner: "
                f"--config {path})")
    if record is not None:
        return f"{path} is JSON, not TOML; --file takes a TOML file with {FILE_SECTIONS} sections"
    return message


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
