"""`mathtune compare RUN_A RUN_B [...]`: evaluations side by side on the same problems, with paired significance."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import List, Optional

import typer

from mathtune.cli.common import DebugOpt, guarded
from mathtune.errors import UserError


def compare(
    runs: List[Path] = typer.Argument(..., metavar="RUN", help="Folders from `mathtune eval`, stage folders, or `mathtune run` folders"),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="Where compare.md/.json go (default: runs/compare-<time>)"),
    examples: int = typer.Option(3, "--examples", min=0, help="Problems shown that each got right and the other wrong"),
    force: bool = typer.Option(False, "--force", help="Replace an earlier comparison in --output"),
    debug: bool = DebugOpt,
):
    """Compare evaluations on their shared problems: accuracy, McNemar and bootstrap, diagnostic deltas, examples."""

    @guarded
    def body():
        from mathtune.eval.compare import compare as run_compare
        from mathtune.eval.compare import comparison_table, write_comparison
        from mathtune.runs import default_run_dir

        if output is not None:
            check_output(output, force)
        comp = run_compare(runs, examples)
        comp.data["command"] = " ".join(["mathtune", *sys.argv[1:]])
        out_dir = output or default_run_dir(Path("runs"), "compare")
        paths = write_comparison(comp, out_dir)
        typer.echo(f"{comp.data['shared_problems']} shared problems")
        typer.echo(comparison_table(comp.data))
        typer.echo(f"report: {paths['md']}")

    body(debug=debug)


def check_output(folder: Path, force: bool) -> None:
    """Refuse an --output that is a file, or that holds an earlier comparison, unless --force."""
    from mathtune.eval.compare import OUTPUT_NAMES

    if folder.exists() and not folder.is_dir():
        raise UserError(f"--output {folder}: exists and is not a folder")
    taken = sorted(n for n in OUTPUT_NAMES if (folder / n).exists())
    if taken and not force:
        raise UserError(f"--output {folder}: already holds {', '.join(taken)}; pass --force to replace, "
                        "or choose another folder")


def register(app: typer.Typer) -> None:
    """Add compare to the app."""
    app.command()(compare)
