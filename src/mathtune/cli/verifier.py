"""`mathtune verifier data|train|eval`: labelled solutions, a LoRA verifier, and how well it judges and selects.

    mathtune verifier data  [RECIPE]                    # labelled rows -> RUN/train.jsonl, RUN/eval.jsonl, balance
    mathtune verifier train [RECIPE] [--data DATA_RUN]  # LoRA verifier -> RUN/adapter
    mathtune verifier eval RUN [RUN ...] [--data D] [--untrained]
RECIPE defaults to the embedded recipes/tiny/verifier_default.yaml (the embedded default model, on CPU).
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import List, Optional

import typer

from mathtune.cli.common import DebugOpt, OutputOpt, ResumeOpt, SetOpt, guarded, load_run, mathtune_home
from mathtune.errors import UserError

DEFAULT_VERIFIER_RECIPE = "recipes/tiny/verifier_default.yaml"
RecipeArg = typer.Argument(None, help="Recipe YAML (default: the embedded tiny verifier recipe)")

app = typer.Typer(help="Train a verifier that judges solutions, and use it to pick answers.", no_args_is_help=True)


def _recipe(name: Optional[str], resume: bool) -> Optional[str]:
    if name is None and not resume:
        return str(resources.files("mathtune").joinpath(DEFAULT_VERIFIER_RECIPE))
    return name


@app.command("data")
def data_cmd(recipe: Optional[str] = RecipeArg, set_: Optional[List[str]] = SetOpt, output: Optional[Path] = OutputOpt,
             resume: bool = ResumeOpt, debug: bool = DebugOpt):
    """Build labelled (question, solution, correct) rows: read a labelled set, or sample k solutions and grade them."""

    @guarded
    def body():
        from mathtune.runs import read_json, record_stage
        from mathtune.verifier.sampling import BALANCE_FILE, build_data, format_balance

        cfg, run_dir = load_run(_recipe(recipe, resume), set_, output, resume, kind="verifier")
        typer.echo(f"run folder: {run_dir}")
        record_stage(run_dir, "verifier-data", cfg)
        build_data(cfg, run_dir, mathtune_home())
        typer.echo(format_balance(read_json(run_dir / BALANCE_FILE)))

    body(debug=debug)


@app.command("train")
def train_cmd(recipe: Optional[str] = RecipeArg,
              data: Optional[Path] = typer.Option(None, "--data", help="A `verifier data` run to take rows from"),
              set_: Optional[List[str]] = SetOpt, output: Optional[Path] = OutputOpt, resume: bool = ResumeOpt,
              debug: bool = DebugOpt):
    """LoRA/QLoRA fine-tune a verifier (building its labelled rows first unless --data names them)."""

    @guarded
    def body():
        from mathtune.models import resolve_model
        from mathtune.runs import read_json, record_stage
        from mathtune.verifier.sampling import BALANCE_FILE, build_data, copy_data, format_balance
        from mathtune.config import load_recipe
        from mathtune.distributed import check_same_data, main_process_first
        from mathtune.train.launched import check_launch_levers
        from mathtune.verifier.train import train_verifier

        if _recipe(recipe, resume) is not None:  # a lever the launched setup cannot run fails before the run folder
            check_launch_levers(load_recipe(_recipe(recipe, resume), set_, "verifier"), "verifier")
        cfg, run_dir = load_run(_recipe(recipe, resume), set_, output, resume, kind="verifier")
        typer.echo(f"run folder: {run_dir}")
        if data is not None:
            copy_data(data, run_dir)
        record_stage(run_dir, "verifier-data", cfg)
        with main_process_first():  # under accelerate launch rank 0 samples and writes the rows; the others read them
            train_rows, _ = build_data(cfg, run_dir, mathtune_home())
        check_same_data(train_rows, "verifier training rows")
        typer.echo(format_balance(read_json(run_dir / BALANCE_FILE)))
        record_stage(run_dir, "verifier-train", cfg)
        adapter = train_verifier(cfg, resolve_model(cfg.model, mathtune_home()), train_rows, run_dir, resume)
        typer.echo(f"verifier adapter: {adapter}")

    body(debug=debug)


def _eval_rows(data: Optional[Path], run: Path, fields: List[str]) -> tuple[str, list[dict]]:
    """(name, rows): a labelled file (NYU schema unless --field remaps it), a data/verifier run folder, or RUN's own."""
    from mathtune.verifier.config import LabelledSource
    from mathtune.verifier.data import read_labelled, read_rows
    from mathtune.verifier.sampling import EVAL_FILE

    folder = data if data is not None else run
    if folder.is_dir() and (folder / EVAL_FILE).is_file():
        return ("heldout" if data is None else folder.name), read_rows(folder / EVAL_FILE)
    if data is None:
        raise UserError(f"verifier eval: {run} has no {EVAL_FILE}; pass --data FILE")
    mapping = {}
    for item in fields:
        key, _, value = item.partition("=")
        if not value:
            raise UserError(f"--field {item!r}: expected ours=theirs, e.g. --field label=is_correct")
        mapping[key.strip()] = value.strip()
    try:
        src = LabelledSource(path=str(data), fields=mapping)
    except ValueError as exc:
        raise UserError(f"--field: {str(exc).splitlines()[0]}") from None
    return data.stem, read_labelled(src, "--data")


@app.command("eval")
def eval_cmd(runs: List[Path] = typer.Argument(..., help="Verifier run folder(s); several give a comparison table"),
             data: Optional[Path] = typer.Option(None, "--data", help="Labelled file, or a run folder with eval.jsonl "
                                                 "(default: the first RUN's held-out rows)"),
             field: Optional[List[str]] = typer.Option(None, "--field", help="Map a file key: --field label=is_correct"),
             untrained: bool = typer.Option(False, "--untrained", help="Score with the base model alone (before training)"),
             model: Optional[str] = typer.Option(None, "--model", help="Fail unless each RUN was trained on this base"),
             output: Optional[Path] = OutputOpt, debug: bool = DebugOpt):
    """Accuracy@0.5, precision/recall/F1, AUROC, ECE + reliability plot, selection at N; a table across runs."""

    @guarded
    def body():
        from mathtune.runs import atomic_write_text
        from mathtune.verifier.data import check_classes, read_rows, shared_questions
        from mathtune.verifier.evaluate import comparison_table, evaluate_rows
        from mathtune.verifier.load import check_base, load_verifier, verifier_info
        from mathtune.verifier.sampling import TRAIN_FILE

        home = mathtune_home()
        for run in runs:
            verifier_info(run)
            if model is not None:
                check_base(run, model, home)
        name, rows = _eval_rows(data, runs[0], field or [])
        check_classes(rows, f"verifier eval: {name}")  # before any model loads
        suffix = "-untrained" if untrained else ""
        results = {}
        for run in runs:
            if (run / TRAIN_FILE).is_file():
                shared = shared_questions(read_rows(run / TRAIN_FILE), rows)
                if shared:
                    typer.echo(f"warning: {shared} held-out questions are also in {run / TRAIN_FILE}", err=True)
            out = (output / run.name if len(runs) > 1 else output) if output else run / "eval" / f"{name}{suffix}"
            metrics = evaluate_rows(load_verifier(run, home, untrained=untrained), rows, out, f"{run.name}{suffix} on {name}")
            results[f"{run.name}{suffix}"] = metrics
            auroc = "n/a" if metrics["auroc"] is None else f"{metrics['auroc']:.3f}"
            typer.echo(f"{run.name}{suffix}: AUROC {auroc}, accuracy@0.5 {metrics['accuracy']:.1%}, "
                       f"F1 {metrics['f1']:.3f}, ECE {metrics['ece']:.3f} on {metrics['n']} rows -> {out / 'report.md'}")
            if metrics.get("selection"):
                last = metrics["selection"][-1]
                typer.echo(f"  N={last['n']}: majority {last['majority']:.1%}, best-of-N {last['best_of_n']:.1%}, "
                           f"weighted vote {last['weighted_vote']:.1%}, pass@N {last['pass']:.1%}")
        if len(runs) > 1:
            table = comparison_table(results)
            target = (output or runs[0] / "eval") / f"comparison-{name}{suffix}.md"
            atomic_write_text(target, f"# Verifier runs on {name}\n\n{table}\n")
            typer.echo(table)

    body(debug=debug)


def register(root: typer.Typer) -> None:
    """Add the `verifier` command group."""
    root.add_typer(app, name="verifier")


def check_verifier_base(run: Path, model: str, samples: int, temperature: float) -> None:
    """Before `mathtune eval --verifier RUN` generates: the run is a verifier on the same base, samples can differ."""
    from mathtune.verifier.load import check_base

    check_base(run, model, mathtune_home())
    if samples < 2 or temperature == 0.0:
        raise UserError("--verifier: choosing among solutions needs --samples 2 or more and --temperature above 0 "
                        "(greedy samples are all the same)")


def rerank(run: Path, eval_dir: Path) -> None:
    """Score the evaluation's samples with the verifier in `run`; print and save accuracy vs N per selection method."""
    from mathtune.verifier.evaluate import rerank_eval
    from mathtune.verifier.load import load_verifier
    from mathtune.verifier.select import format_table

    table = rerank_eval(eval_dir, load_verifier(run, mathtune_home()), f"{eval_dir.name} reranked by {run.name}")
    if table:
        typer.echo(format_table(table))
        typer.echo(f"selection: {eval_dir / 'selection.md'}, {eval_dir / 'selection.png'}")
