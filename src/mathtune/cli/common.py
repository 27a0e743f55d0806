"""What every command shares: the option declarations, the one-line error guard, loading a recipe into a run folder."""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import List, Optional

import typer

from mathtune.errors import UserError

SetOpt = typer.Option(None, "--set", help="Override a recipe key: --set lora.r=8 (repeatable)")
OutputOpt = typer.Option(None, "--output", "-o", help="Run folder (default: runs/<name>-<time>)")
ResumeOpt = typer.Option(False, "--resume", help="Continue the run in --output from where it stopped")
DebugOpt = typer.Option(False, "--debug", help="Show tracebacks")


def mathtune_home() -> Path:
    """Cache folder for converted models: $MATHTUNE_HOME, else the user cache dir."""
    env = os.environ.get("MATHTUNE_HOME")
    if env:
        return Path(env).expanduser()
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("mathtune"))


def _fail(exc: BaseException, debug: bool) -> None:
    if debug:
        raise exc
    typer.echo(f"error: {exc}", err=True)
    raise typer.Exit(2)


def guarded(fn):
    """Run a command body: UserError -> one line + exit 2; Ctrl-C -> exit 130 with a resume hint."""

    def wrapper(*args, debug: bool = False, **kwargs):
        logging.basicConfig(level=logging.INFO, format="%(message)s")
        try:
            return fn(*args, **kwargs)
        except UserError as exc:
            _fail(exc, debug)
        except KeyboardInterrupt:
            typer.echo("interrupted: the last checkpoint is kept; run again with --resume to continue", err=True)
            raise typer.Exit(130)

    return wrapper


def load_run(recipe: Optional[str], overrides: Optional[List[str]], output: Optional[Path], resume: bool):
    """Recipe and run folder (with what produced it saved); with --resume and no recipe, the saved recipe is used."""
    from mathtune.config import dump_recipe, load_recipe
    from mathtune.runs import default_run_dir, prepare_run_dir, write_run_info

    if resume and output is None:
        raise UserError("--resume needs --output RUN_FOLDER")
    if resume and recipe is None and (output / "recipe.yaml").is_file():
        recipe = str(output / "recipe.yaml")
    cfg = load_recipe(recipe, overrides or [])
    run_dir = prepare_run_dir(output or default_run_dir(Path("runs"), cfg.name), resume)
    write_run_info(run_dir, dump_recipe(cfg), cfg.seed, " ".join(["mathtune", *sys.argv[1:]]))
    return cfg, run_dir
