"""User mistakes end with one line on stderr and exit code 2, never a traceback."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import NoReturn

import typer

USAGE_ERROR = 2


def fail(message: str, code: int = USAGE_ERROR) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def non_negative(flag: str) -> Callable[[int | None], int | None]:
    """A Typer option callback: a negative value is a one-line usage error (Typer's own
    ``min=0`` prints a multi-line box instead)."""

    def check(value: int | None) -> int | None:
        if value is not None and value < 0:
            fail(f"{flag} must be an integer >= 0, got {value}")
        return value

    return check


def ensure_folder(path: Path, flag: str) -> Path:
    """Create the folder given as ``flag`` (e.g. ``--out``) now: a path that is a file, or one
    that cannot be made, is a one-line usage error naming the flag."""
    if path.exists() and not path.is_dir():
        fail(f"{flag} {path} is a file, not a folder; choose another {flag}")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        fail(f"cannot create {flag} folder {path} ({e.strerror or e}); choose another {flag}")
    return path
