"""`mathtune grpo [RECIPE]`: GRPO with verifiable rewards (default: the embedded recipes/tiny/grpo_default.yaml)."""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import List, Optional

import typer

from mathtune.cli.common import DebugOpt, OutputOpt, ResumeOpt, SetOpt, guarded, load_run, mathtune_home

DEFAULT_GRPO_RECIPE = "recipes/tiny/grpo_default.yaml"


def grpo(
    recipe: Optional[str] = typer.Argument(None, help="Recipe YAML (default: the embedded tiny GRPO recipe)"),
    set_: Optional[List[str]] = SetOpt,
    output: Optional[Path] = OutputOpt,
    resume: bool = ResumeOpt,
    debug: bool = DebugOpt,
):
    """Reinforce right answers with GRPO (TRL) on a LoRA adapter; held-out evaluation over training, report."""

    @guarded
    def body():
        from mathtune.config import load_recipe
        from mathtune.train.grpo import run_grpo
        from mathtune.train.launched import check_launch_levers

        name = recipe
        if name is None and not resume:
            name = str(resources.files("mathtune").joinpath(DEFAULT_GRPO_RECIPE))
        if name is not None:  # a lever the launched setup cannot run fails before the run folder
            check_launch_levers(load_recipe(name, set_, "grpo"), "grpo")
        cfg, run_dir = load_run(name, set_, output, resume, kind="grpo")
        typer.echo(f"run folder: {run_dir}")
        metrics = run_grpo(cfg, run_dir, mathtune_home(), resume=resume)
        for step, summary in metrics["evals"].items():
            acc = summary.get("accuracy")
            shown = f"{acc:.1%} on {summary['n_graded']}" if acc is not None else "not graded"
            typer.echo(f"step {step}: held-out accuracy {shown}")
        for warning in metrics["warnings"]:
            typer.echo(warning, err=True)
        typer.echo(f"report: {run_dir / 'report.md'}")

    body(debug=debug)


def register(app: typer.Typer) -> None:
    """Add grpo to the app."""
    app.command()(grpo)
