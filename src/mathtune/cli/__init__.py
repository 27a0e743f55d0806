"""The `mathtune` command line. Each concern registers its commands from its own module in this folder."""

from __future__ import annotations

import typer

from mathtune.cli import core, grpo, compare, verifier, data, export, sweep, bench, regrade

app = typer.Typer(add_completion=False, no_args_is_help=False, help="Fine-tune small LMs for math, and measure it.")

# One line per command module; a module's register(app) adds its commands (or a sub-app) to `app`.
for _module in (core, grpo, compare, verifier, data, export, sweep, bench, regrade):
    _module.register(app)


def main() -> None:
    """Entry point for `python -m mathtune`."""
    app()
