"""The main job, `mathtune run [RECIPE]`: baseline evaluation, LoRA SFT, evaluation of the adapter, report.

One entry per stage: `run_pipeline` (all of them) and `run_train` (`mathtune train`). Each stage leaves its output in
the run folder and is skipped when that output is complete, so `--resume` after a kill continues where the run
stopped (training itself resumes from its last complete checkpoint). Each stage records what it depended on and how
long each attempt took (runs.py), so a resumed run refuses a changed recipe and its timings add up.
"""

from __future__ import annotations

import logging
from pathlib import Path

from mathtune.config import Recipe
from mathtune.data.load import Splits, load_splits
from mathtune.runs import (
    ADAPTER_DIR, CHECKPOINTS_DIR, CURATION_FILE, METRICS_FILE, SUMMARY_FILE, TRAIN_LOG, all_stage_seconds,
    atomic_write_json, mean_train_loss, read_json, stage_attempt,
)

log = logging.getLogger("mathtune")
__all__ = ["Splits", "load_splits", "run_pipeline", "run_train"]  # load_splits lives in data/load.py


def _load_base(recipe: Recipe, model_path: str):
    from mathtune.models import load_model

    return load_model(model_path, recipe.quantization, recurrent=recipe.recurrent)


def _eval_sets(splits: Splits, stage: str) -> dict[str, list[dict]]:
    """Folder name -> rows: `stage` on the main eval set, `stage-NAME` on each set of data.extra_eval."""
    return {stage: splits.eval, **{f"{stage}-{name}": rows for name, rows in splits.extra_eval.items()}}


def _finished(recipe: Recipe, rows: list[dict], out_dir: Path) -> dict | None:
    """The saved summary of an evaluation of this many rows, None when it is not finished."""
    summary = read_json(out_dir / SUMMARY_FILE)
    expected = min(len(rows), recipe.eval.limit or len(rows))
    return summary if summary and summary.get("n") == expected else None


def evaluate_all(recipe: Recipe, load, tokenizer, splits: Splits, run_dir: Path, stage: str,
                 step: int = 0) -> dict[str, dict]:
    """Every evaluation set of `stage` (finished ones read back); `load()` gives the model, only when one is needed.
    Summaries are logged to the recipe's trackers (trainer.report_to) at training step `step`."""
    from mathtune.eval.runner import evaluate
    from mathtune.trackers import log_summary

    sets = _eval_sets(splits, stage)
    results = {name: _finished(recipe, rows, run_dir / name) for name, rows in sets.items()}
    if all(results.values()):
        return results
    with stage_attempt(run_dir, stage, recipe, outputs=list(sets)):
        model = load()
        model.eval()
        for name, rows in sets.items():
            if results[name] is None:
                results[name] = evaluate(model, tokenizer, rows, recipe.format, recipe.eval, run_dir / name)
                log_summary(recipe.trainer, recipe.name, run_dir, name, results[name], step)
    return results


def train_stage(recipe: Recipe, model_path: str, tokenizer, splits: Splits, run_dir: Path, resume: bool) -> Path:
    """LoRA SFT unless the run folder already has its adapter; returns the adapter folder."""
    from datasets import Dataset

    from mathtune.data.formats import to_prompt_completion
    from mathtune.train.sft import train_sft

    from mathtune.distributed import check_same_data

    check_same_data(splits.train, "data.train")  # under accelerate launch each rank takes its share of one dataset
    if splits.curation:  # what the training rows went through, as `mathtune data` prints it
        atomic_write_json(run_dir / CURATION_FILE, splits.curation)
    adapter = run_dir / ADAPTER_DIR
    if (adapter / "adapter_config.json").is_file():
        return adapter
    train_ds = Dataset.from_list(to_prompt_completion(splits.train, recipe.format, tokenizer))
    val_ds = None
    if splits.validation:
        val_ds = Dataset.from_list(to_prompt_completion(splits.validation, recipe.format, tokenizer))
    with stage_attempt(run_dir, "train", recipe, outputs=[CHECKPOINTS_DIR, ADAPTER_DIR]):
        adapter, history = train_sft(recipe, _load_base(recipe, model_path), tokenizer, train_ds, val_ds, run_dir,
                                     resume)
    atomic_write_json(run_dir / TRAIN_LOG, {"train_loss": mean_train_loss(history), "log_history": history})
    return adapter


def run_train(recipe: Recipe, run_dir: Path, home: Path, resume: bool = False) -> Path:
    """`mathtune train`: LoRA SFT alone into `run_dir/adapter` (no evaluation); returns the adapter folder."""
    from mathtune.distributed import main_process_first
    from mathtune.models import load_tokenizer, resolve_recipe_model

    with main_process_first():  # under accelerate launch rank 0 converts the model and fills the caches first
        model_path = resolve_recipe_model(recipe, home)
        tokenizer = load_tokenizer(model_path)
        splits = load_splits(recipe, tokenizer)
    return train_stage(recipe, model_path, tokenizer, splits, run_dir, resume)


def run_pipeline(recipe: Recipe, run_dir: Path, home: Path, resume: bool = False) -> dict:
    """Baseline eval -> SFT -> tuned eval -> report; returns the metrics written to `run_dir/metrics.json`."""
    from mathtune.eval.report import write_run_report
    from mathtune.models import load_adapter, load_tokenizer, merged_for_eval, resolve_recipe_model

    model_path = resolve_recipe_model(recipe, home)
    tokenizer = load_tokenizer(model_path)
    splits = load_splits(recipe, tokenizer)
    log.info("data: %d train, %d validation, %d eval rows", len(splits.train), len(splits.validation), len(splits.eval))
    results: dict[str, dict] = {}
    if recipe.baseline:
        results.update(evaluate_all(recipe, lambda: _load_base(recipe, model_path), tokenizer, splits, run_dir,
                                    "baseline"))
    tuned = None
    if recipe.data.train is not None:
        adapter = train_stage(recipe, model_path, tokenizer, splits, run_dir, resume)

        def load_tuned():
            nonlocal tuned
            tuned = load_adapter(_load_base(recipe, model_path), adapter)
            if recipe.eval.merge_adapter:
                tuned = merged_for_eval(tuned)
            return tuned

        history = (read_json(run_dir / TRAIN_LOG) or {}).get("log_history") or [{}]
        results.update(evaluate_all(recipe, load_tuned, tokenizer, splits, run_dir, "tuned",
                                    step=int(history[-1].get("step", 0))))
    train_log = read_json(run_dir / TRAIN_LOG) or {}
    metrics = {
        "model": recipe.model,
        "rows": {"train": len(splits.train), "validation": len(splits.validation), "eval": len(splits.eval)},
        "results": results,
        "train_loss": train_log.get("train_loss"),
        "seconds": all_stage_seconds(run_dir),
    }
    atomic_write_json(run_dir / METRICS_FILE, metrics)
    write_run_report(run_dir, recipe, metrics)
    if recipe.recurrent is not None and recipe.recurrent.sweep:  # accuracy vs core iterations, added to the report
        from mathtune.recurrent.sweep import sweep_stage

        if tuned is None:
            tuned = load_adapter(_load_base(recipe, model_path), adapter) if recipe.data.train is not None else \
                _load_base(recipe, model_path)
        metrics["sweep"] = sweep_stage(recipe, tuned, tokenizer, splits.eval, run_dir)
        atomic_write_json(run_dir / METRICS_FILE, metrics)
    return metrics
