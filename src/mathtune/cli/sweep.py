"""`mathtune sweep RECIPE --grid KEY=V1,V2 [--grid ...] [--metric accuracy] [--output DIR]`: an ablation grid."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from mathtune.cli.common import DebugOpt, SetOpt, guarded
from mathtune.errors import UserError


def sweep(
    recipe: Optional[str] = typer.Argument(None, help="Recipe YAML (default: the embedded default recipe)"),
    grid: List[str] = typer.Option(..., "--grid", help="key=v1,v2,... (repeatable; the grid is their product)"),
    metric: Optional[List[str]] = typer.Option(None, "--metric", help="accuracy (default), baseline.accuracy, "
                                               "tuned.truncation_rate, train_loss, final_loss, train_seconds, ... (repeatable)"),
    set_: Optional[List[str]] = SetOpt,
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="Sweep folder; rerun with it to resume"),
    debug: bool = DebugOpt,
):
    """Run `mathtune run` once per grid point (one process each, finished points skipped), then one table and plot."""

    @guarded
    def body():
        from mathtune.config import load_recipe
        from mathtune.runs import default_run_dir, read_json
        from mathtune.sweep import grid_points, parse_grid, run_sweep

        cells = parse_grid(grid)
        base = list(set_ or [])
        cfg = load_recipe(recipe, base)
        for point in grid_points(cells, Path(".")):  # every point must validate before the first job starts
            load_recipe(recipe, base + [f"{k}={v}" for k, v in point.overrides.items()])
        folder = output or default_run_dir(Path("runs"), f"sweep-{cfg.name}")
        saved = read_json(folder / "sweep.json")
        if saved is not None and (saved.get("recipe"), saved.get("set"), saved.get("grid")) != (
                recipe, base, [list(c) for c in cells]):
            raise UserError(f"--output {folder}: holds a different sweep (recipe, --set or --grid differ)")
        if saved is None and folder.exists() and any(folder.iterdir()):
            raise UserError(f"--output {folder}: folder exists and is not a sweep; choose another folder")
        table, status = run_sweep(recipe, base, cells, folder, list(metric or ["accuracy"]))
        typer.echo(table)
        typer.echo(f"table: {folder / 'sweep.md'} (and sweep.csv); plot: {folder / 'sweep.png'}")
        failed = [name for name, s in status.items() if s.startswith("failed")]
        if failed:
            typer.echo(f"error: {len(failed)} of {len(status)} points failed: {', '.join(failed)}", err=True)
            raise typer.Exit(1)

    body(debug=debug)


def register(app: typer.Typer) -> None:
    """Add `sweep` to the app."""
    app.command()(sweep)
