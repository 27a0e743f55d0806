"""The core commands: `mathtune run`, `mathtune train`, `mathtune eval`."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from mathtune.cli.common import (
    DebugOpt, OutputOpt, ResumeOpt, SetOpt, guarded, load_run, mathtune_home, open_run_dir,
)
from mathtune.errors import UserError


def run(
    recipe: Optional[str] = typer.Argument(None, help="Recipe YAML (default: the embedded default recipe)"),
    set_: Optional[List[str]] = SetOpt,
    output: Optional[Path] = OutputOpt,
    resume: bool = ResumeOpt,
    debug: bool = DebugOpt,
):
    """Baseline eval, LoRA fine-tune, eval of the adapter, report: the whole loop of one recipe."""

    @guarded
    def body():
        from mathtune.pipeline import run_pipeline

        cfg, run_dir = load_run(recipe, set_, output, resume, kind="sft")
        typer.echo(f"run folder: {run_dir}")
        metrics = run_pipeline(cfg, run_dir, mathtune_home(), resume=resume)
        for name, summary in metrics["results"].items():
            acc = summary.get("accuracy")
            typer.echo(f"{name}: accuracy {acc:.1%} on {summary['n_graded']} problems" if acc is not None else name)
        typer.echo(f"report: {run_dir / 'report.md'}")

    body(debug=debug)


def train(
    recipe: str = typer.Argument(..., help="Recipe YAML"),
    set_: Optional[List[str]] = SetOpt,
    output: Optional[Path] = OutputOpt,
    resume: bool = ResumeOpt,
    dry_run: bool = typer.Option(False, "--dry-run", help="Print the plan and a memory estimate; train nothing"),
    gpu_mem: Optional[str] = typer.Option(None, "--gpu-mem", help="Plan for a GPU of this size, e.g. 24GB"),
    num_processes: int = typer.Option(1, "--num-processes", help="With --dry-run: plan for N launched processes"),
    strategy: str = typer.Option("ddp", "--strategy", help="With --dry-run: ddp, fsdp (full shard), zero2 or zero3"),
    debug: bool = DebugOpt,
):
    """LoRA fine-tune only (no evaluation); the adapter lands in RUN/adapter."""

    @guarded
    def body():
        import torch

        from mathtune.config import load_recipe
        from mathtune.pipeline import run_train
        from mathtune.train.launched import check_launch_levers
        from mathtune.train.sft import check_device_levers

        if dry_run or gpu_mem is not None:  # the plan alone (plan/plan.py); --gpu-mem implies --dry-run
            from mathtune.plan.plan import build_plan, format_plan, parse_size

            size = parse_size(gpu_mem) if gpu_mem is not None else None
            plan = build_plan(load_recipe(recipe, set_, "sft"), recipe, mathtune_home(), size, torch.cuda.is_available(),
                              num_processes, strategy)
            typer.echo(format_plan(plan))
            return
        if not resume:  # a GPU-only lever on a CPU, or no training source, fails before any run folder is made
            cfg = load_recipe(recipe, set_, "sft")
            check_device_levers(cfg, torch.cuda.is_available())
            check_launch_levers(cfg, "sft")
            if cfg.data.train is None:
                raise UserError(f"{recipe}: data.train: missing (training needs a training source)")
        cfg, run_dir = load_run(recipe, set_, output, resume, kind="sft")
        adapter = run_train(cfg, run_dir, mathtune_home(), resume)
        typer.echo(f"adapter: {adapter}")

    body(debug=debug)


def eval_(
    model: str = typer.Option("default", "--model", help="Hub id, local folder, or 'default'"),
    adapter: Optional[Path] = typer.Option(None, "--adapter", help="LoRA adapter folder to apply"),
    bench: Optional[str] = typer.Option(None, "--bench", "--data", help="gsm8k, math, ..., a reasoning-gym task, or a .jsonl file"),
    path: Optional[str] = typer.Option(None, "--path", help="Local copy of a hub benchmark (same schema)"),
    limit: Optional[int] = typer.Option(None, "--limit", help="Evaluate the first K problems"),
    # Shortcuts for keys of the recipe's `eval:` block; unset ones keep the schema's default (config.EvalConfig), and
    # every key, present or future, is reachable with --set eval.KEY=VALUE (also format.*).
    samples: Optional[int] = typer.Option(None, "--samples", help="= --set eval.samples=N"),
    temperature: Optional[float] = typer.Option(None, "--temperature", help="= --set eval.temperature=T"),
    top_p: Optional[float] = typer.Option(None, "--top-p", help="= --set eval.top_p=P"),
    seed: Optional[int] = typer.Option(None, "--seed", help="= --set eval.seed=S"),
    max_new_tokens: Optional[int] = typer.Option(None, "--max-new-tokens", help="= --set eval.max_new_tokens=N"),
    batch_size: Optional[int] = typer.Option(None, "--batch-size", help="= --set eval.batch_size=N"),
    fewshot: Optional[int] = typer.Option(None, "--fewshot", help="K worked examples before each question (gsm8k: Wei et al. 8-shot CoT)"),
    fewshot_set: Optional[str] = typer.Option(None, "--fewshot-set", help="Named exemplar set: gsm8k-cot, gsm8k-lm-eval"),
    template: Optional[str] = typer.Option(None, "--template", help="chat or instruction (= --set format.template=...)"),
    set_: Optional[List[str]] = typer.Option(None, "--set", help="Any eval or format key: --set eval.max_new_tokens=256"),
    verifier: Optional[Path] = typer.Option(None, "--verifier", help="Verifier run: rerank the samples (best-of-N, weighted vote)"),
    sweep: Optional[str] = typer.Option(None, "--sweep", help="num_steps=1,2,4,8: evaluate a recurrent-depth model at each iteration count"),
    shard: Optional[str] = typer.Option(None, "--shard", help="i/n: evaluate slice i (from 0) of n; merge with --merge"),
    merge: bool = typer.Option(False, "--merge", help="Merge the shard folders given as arguments into --output"),
    shard_dirs: Optional[List[Path]] = typer.Argument(None, help="With --merge: the folders of `--shard i/n` runs"),
    output: Optional[Path] = OutputOpt,
    resume: bool = ResumeOpt,
    debug: bool = DebugOpt,
):
    """Evaluate a model (optionally with an adapter) on a benchmark; writes samples, summary and report."""

    @guarded
    def body():
        if merge or shard_dirs:
            if not merge:
                raise UserError(f"{shard_dirs[0]}: folders are arguments of --merge only (mathtune eval --merge DIR...)")
            _merge(shard_dirs or [], output)
            return
        if bench is None:
            raise UserError("--bench: missing (a benchmark, a reasoning-gym task or a data file; or --merge DIR...)")
        part = None
        if shard is not None:
            from mathtune.eval.shard import parse_shard

            part = parse_shard(shard)
            if sweep is not None or verifier is not None:
                raise UserError("--shard: not with --sweep or --verifier (merge the shards, then rerank the merged run)")
        from mathtune.eval.benches import bench_recipe
        from mathtune.eval.report import write_eval_report
        from mathtune.eval.runner import evaluate
        from mathtune.models import load_adapter, load_model, load_tokenizer, resolve_model
        from mathtune.data.load import load_splits
        from mathtune.runs import default_run_dir, record_stage

        shortcuts = {"samples": samples, "temperature": temperature, "top_p": top_p, "seed": seed,
                     "max_new_tokens": max_new_tokens, "batch_size": batch_size, "fewshot": fewshot,
                     "fewshot_set": fewshot_set}
        sets = [f"eval.{k}={v}" for k, v in shortcuts.items() if v is not None]
        sets += [f"format.template={template}"] if template is not None else []
        cfg = bench_recipe(bench, model=model, path=path, limit=limit, overrides=sets + list(set_ or []))
        if cfg.eval.fewshot:
            from mathtune.eval.runner import prompt_builder

            prompt_builder(cfg.format, cfg.eval, None)  # an unknown set or too large a K fails before model work
        steps = None
        if sweep is not None:
            from mathtune.recurrent.sweep import parse_sweep

            steps = parse_sweep(sweep)
        if verifier is not None:
            from mathtune.cli.verifier import check_verifier_base

            check_verifier_base(verifier, model, cfg.eval.samples, cfg.eval.temperature)
        name = f"eval-{cfg.name}" + (f"-shard{part[0]}of{part[1]}" if part else "")
        run_dir = open_run_dir(output or default_run_dir(Path("runs"), name), resume, cfg, cfg.eval.seed)
        record_stage(run_dir, "eval", cfg)
        _record_shard(run_dir, part, adapter, resume)
        model_path = resolve_model(model, mathtune_home())
        tokenizer = load_tokenizer(model_path)
        rows = load_splits(cfg).eval
        lm = load_model(model_path)
        if adapter is not None:
            lm = load_adapter(lm, adapter)
            if cfg.eval.merge_adapter and verifier is None and steps is None:
                from mathtune.models import merged_for_eval

                lm = merged_for_eval(lm)
        lm.eval()
        if steps is not None:  # test-time compute: the whole evaluation at each iteration count (recurrent/sweep.py)
            from mathtune.recurrent.sweep import run_sweep

            run_sweep(lm, tokenizer, rows, cfg.format, cfg.eval, run_dir, steps)
            typer.echo(f"report: {run_dir / 'report.md'}")
            return
        summary = evaluate(lm, tokenizer, rows, cfg.format, cfg.eval, run_dir, shard=part)
        write_eval_report(run_dir, cfg, summary)
        typer.echo(f"accuracy {summary.get('accuracy', float('nan')):.1%} on {summary['n_graded']} problems")
        if verifier is not None:
            from mathtune.cli.verifier import rerank

            del lm  # the verifier loads its own model
            rerank(verifier, run_dir)
        typer.echo(f"report: {run_dir / 'report.md'}")


    body(debug=debug)


def _record_shard(run_dir: Path, part, adapter: Optional[Path], resume: bool) -> None:
    """Save which slice (and adapter) this evaluation is, which `--merge` checks; a resume must keep both."""
    from mathtune.runs import RUN_MARKER, read_json, update_run_info

    fields = {"shard": {"index": part[0], "count": part[1]} if part else None,
              "adapter": str(adapter.resolve()) if adapter is not None else None}
    saved = read_json(run_dir / RUN_MARKER) or {}
    if resume:
        for key, value in fields.items():
            if key in saved and saved[key] != value:
                raise UserError(f"--resume {run_dir}: was run with another --{key} ({saved[key]}); use the same one")
    update_run_info(run_dir, **{k: v for k, v in fields.items() if v is not None})


def _merge(folders: List[Path], output: Optional[Path]) -> None:
    """`mathtune eval --merge DIR...`: every check before the merged run folder is made, then one evaluation."""
    from pydantic import ValidationError

    from mathtune.config import Recipe
    from mathtune.eval.report import write_eval_report
    from mathtune.schema import describe_error
    from mathtune.eval.runner import stored_decode_precision, summarize
    from mathtune.eval.shard import check_shards, merged_records
    from mathtune.runs import (
        SAMPLES_FILE, SUMMARY_FILE, atomic_write_json, atomic_write_text, default_run_dir, update_run_info,
    )

    import json

    raw, infos = check_shards(folders)
    records = merged_records(folders, infos)
    try:  # an evaluation's recipe is the shared blocks alone (config.Recipe, kind eval)
        cfg = Recipe.model_validate(raw)
    except ValidationError as exc:
        raise UserError(f"{folders[0] / 'recipe.yaml'}: {describe_error(exc, '', Recipe)}") from None
    run_dir = open_run_dir(output or default_run_dir(Path("runs"), f"eval-{cfg.name}-merged"), False, cfg, cfg.eval.seed)
    update_run_info(run_dir, merged_from=[str(f) for f in folders], adapter=infos[0].get("adapter"))
    atomic_write_text(run_dir / SAMPLES_FILE, "".join(json.dumps(r) + "\n" for r in records))
    summary = summarize(records, cfg.eval.samples)
    decoded = stored_decode_precision(folders)
    if decoded:
        summary["decode_precision"] = decoded
    atomic_write_json(run_dir / SUMMARY_FILE, summary)
    write_eval_report(run_dir, cfg, summary)
    typer.echo(f"merged {len(folders)} shards: accuracy {summary.get('accuracy', float('nan')):.1%} "
               f"on {summary['n_graded']} problems")
    typer.echo(f"report: {run_dir / 'report.md'}")


def register(app: typer.Typer) -> None:
    """Add run, train and eval to the app."""
    app.command()(run)
    app.command()(train)
    app.command("eval")(eval_)
