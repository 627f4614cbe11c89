"""The `dwm-net` command line."""

from __future__ import annotations

import typer

from .bench_cli import bench_app
from .config_cli import config_app
from .env_cli import env_app
from .keys_cli import keys_app
from .results_cli import register as register_results
from .run_cli import register

app = typer.Typer(
    help="dwm-net: decentralized multi-agent world models over byte-budgeted links.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.add_typer(env_app, name="env")
app.add_typer(bench_app, name="bench")
app.add_typer(config_app, name="config")
app.add_typer(keys_app, name="keys")
register(app)
register_results(app)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
