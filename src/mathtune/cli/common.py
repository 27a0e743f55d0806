"""What every command shares: the option declarations, the one-line error guard, loading a recipe into a run folder."""

from __future__ import annotations

import logging
import os
import sys
from contextlib import ExitStack
from contextvars import ContextVar
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


# The cleanups of the running command (a fresh run folder that a failure removes again): unwound by `guarded`.
_CLEANUPS: ContextVar[ExitStack | None] = ContextVar("mathtune_cleanups", default=None)


def guarded(fn):
    """Run a command body: UserError -> one line + exit 2; Ctrl-C -> exit 130 with a resume hint. A run folder the
    body opened (open_run_dir) is removed again if the body fails before anything worth resuming is in it."""

    def wrapper(*args, debug: bool = False, **kwargs):
        logging.basicConfig(level=logging.INFO, format="%(message)s")
        try:
            with ExitStack() as stack:
                token = _CLEANUPS.set(stack)
                try:
                    return fn(*args, **kwargs)
                finally:
                    _CLEANUPS.reset(token)
        except UserError as exc:
            _fail(exc, debug)
        except KeyboardInterrupt:
            typer.echo("interrupted: the last checkpoint is kept; run again with --resume to continue", err=True)
            raise typer.Exit(130)

    return wrapper


def open_run_dir(path: Path, resume: bool, cfg, seed: Optional[int] = None) -> Path:
    """Create (or, with --resume, reopen and check against `cfg`) a run folder and save what produced the run."""
    from mathtune.config import dump_recipe
    from mathtune.runs import check_resume, run_folder, write_run_info

    stack = _CLEANUPS.get()
    if stack is not None:
        run_dir = stack.enter_context(run_folder(path, resume))
    else:  # called outside a command body: nothing unwinds a cleanup
        from mathtune.runs import prepare_run_dir

        run_dir = prepare_run_dir(path, resume)
    if resume:
        check_resume(run_dir, cfg)
    write_run_info(run_dir, dump_recipe(cfg), cfg.seed if seed is None else seed, command_line())
    return run_dir


def load_run(recipe: Optional[str], overrides: Optional[List[str]], output: Optional[Path], resume: bool,
             kind: str):
    """Recipe (checked whole, as `kind`) and run folder (open_run_dir); with --resume and no recipe, the saved
    recipe is used, and a recipe changed under a started stage is refused."""
    from mathtune.config import load_recipe
    from mathtune.runs import RECIPE_FILE, default_run_dir

    if resume and output is None:
        raise UserError("--resume needs --output RUN_FOLDER")
    saved = resume and recipe is None and (output / RECIPE_FILE).is_file()
    if saved:
        recipe = str(output / RECIPE_FILE)
    cfg = load_recipe(recipe, overrides or [], kind, saved=saved)
    return cfg, open_run_dir(output or default_run_dir(Path("runs"), cfg.name), resume, cfg)


def command_line() -> str:
    """The command as typed (what run.json saves)."""
    return " ".join(["mathtune", *sys.argv[1:]])
