"""`mathtune regrade RUN_OR_SAMPLES [--grader G] [--against G2]`: regrade stored samples, compare two graders."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import typer

from mathtune.cli.common import DebugOpt, guarded


def regrade(
    source: Path = typer.Argument(..., metavar="RUN_OR_SAMPLES", help="A samples.jsonl from `mathtune eval`, or its folder"),
    grader: str = typer.Option("mathtune", "--grader", help="mathtune | strict | flexible | math-verify"),
    against: str = typer.Option("stored", "--against", help="Grader to compare with: the above, or 'stored' (the input's verdicts)"),
    bench: Optional[str] = typer.Option(None, "--bench", help="Read golds as this bench (default: each record's own)"),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="Where the regraded files go (default: runs/regrade-<time>)"),
    examples: int = typer.Option(3, "--examples", min=0, help="Examples shown of each disagreement class"),
    debug: bool = DebugOpt,
):
    """Regrade stored samples without generating; write them with a summary and an agreement table of two graders."""

    @guarded
    def body():
        from mathtune.eval.regrade import agreement_table, write_regrade
        from mathtune.runs import default_run_dir

        out_dir = output or default_run_dir(Path("runs"), "regrade")
        command = " ".join(["mathtune", *sys.argv[1:]])
        result = write_regrade(source, out_dir, grader, against, bench, examples, command)
        summary = result["summary"]
        acc = summary.get("accuracy")
        typer.echo(f"{grader}: accuracy {acc:.1%} on {summary['n_graded']} samples" if acc is not None else grader)
        typer.echo(agreement_table(result["agreement"]))
        typer.echo(f"regraded: {out_dir}")

    body(debug=debug)


def register(app: typer.Typer) -> None:
    """Add regrade to the app."""
    app.command()(regrade)
