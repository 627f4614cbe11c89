"""`dwm-net keys ...`: CURVE key sets for encrypted, authenticated links."""

from __future__ import annotations

from pathlib import Path

import typer

from comms.security import generate_keys, secret_key_path

from .errors import fail

keys_app = typer.Typer(help="CURVE keys (encryption and authentication).", no_args_is_help=True)

DEFAULT_AGENTS = 2  # the default scenario's team size
PROCESS_NAMES = ("env-host", "launcher", "learner")


@keys_app.callback()
def keys() -> None:
    """CURVE keys (encryption and authentication)."""  # keeps `generate` a sub-command


@keys_app.command()
def generate(
    directory: Path = typer.Argument(..., metavar="DIR", help="new or empty key directory"),
    agents: int | None = typer.Option(None, help=f"agent keys agent-0..agent-N-1 \\[default: "
                                          f"{DEFAULT_AGENTS}]"),  # \[ escapes Rich markup
    names: str | None = typer.Option(None, help="comma-separated names instead of the default set"),
    overwrite: bool = typer.Option(False, help="replace an existing key set as a whole"),
) -> None:
    """Write a key pair per process: agent-0..agent-N-1, env-host, launcher, learner."""
    if names is not None and agents is not None:
        fail("--names lists every name; leave out --agents")
    if names is not None:
        key_names = [n.strip() for n in names.split(",") if n.strip()]
    else:
        n = DEFAULT_AGENTS if agents is None else agents
        if n < 1:
            fail(f"--agents must be >= 1, got {n}")
        key_names = [f"agent-{i}" for i in range(n)] + list(PROCESS_NAMES)
    try:
        written = generate_keys(directory, key_names, overwrite=overwrite)
    except (ValueError, OSError) as e:
        fail(str(e))
    typer.echo(f"wrote {len(written)} key pairs to {directory}:")
    for name, public in written.items():
        typer.echo(f"  {name:<10} public {public}  secret {secret_key_path(directory, name)}")
    typer.echo(f"copy the public keys ({directory}/*.key) to every machine; copy "
               f"private/<name>.key_secret only to the machine that runs <name>, never elsewhere")
