"""The main job, `mathtune run [RECIPE]`: baseline evaluation, LoRA SFT, evaluation of the adapter, report.

Each stage leaves its output in the run folder and is skipped when that output is complete, so `--resume` after a
kill continues where the run stopped (training itself resumes from its last complete checkpoint).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

from mathtune.config import Recipe
from mathtune.data.sources import DataError, load_source
from mathtune.data.splits import dedup, train_eval_split
from mathtune.runs import atomic_write_json, read_json

log = logging.getLogger("mathtune")


@dataclass
class Splits:
    """Rows for training, validation (eval loss, early stopping) and the held-out evaluation(s)."""

    train: list[dict]
    validation: list[dict]
    eval: list[dict]
    extra_eval: dict[str, list[dict]] = field(default_factory=dict)  # data.extra_eval, by name
    curation: list[dict] = field(default_factory=list)  # statistics of each curation step (data/curation.py)


def load_splits(recipe: Recipe, tokenizer=None) -> Splits:
    """Load the eval sets and the curated training rows; no training question is in any eval set."""
    from mathtune.data.curation import curate_train, format_stats
    from mathtune.data.filters import tokenizer_counter

    eval_rows = dedup(load_source(recipe.data.eval, where="data.eval"))
    if not eval_rows:
        raise DataError("data.eval: no rows to evaluate on")
    extra = {n: dedup(load_source(s, where=f"data.extra_eval.{n}")) for n, s in recipe.data.extra_eval.items()}
    if recipe.data.train is None:
        return Splits([], [], eval_rows, extra)
    count = tokenizer_counter(tokenizer) if tokenizer is not None else None
    train_rows, stats = curate_train(recipe.data, [eval_rows, *extra.values()], recipe.seed, count)
    for line in format_stats(stats):
        log.info("data: %s", line)
    validation: list[dict] = []
    if recipe.data.validation_size:
        train_rows, validation = train_eval_split(train_rows, recipe.data.validation_size, recipe.seed)
    if not train_rows:
        raise DataError("data.train: no training rows left (after curation, overlap removal and validation split)")
    return Splits(train_rows, validation, eval_rows, extra, stats)


def _load_base(recipe: Recipe, model_path: str):
    from mathtune.models import load_model

    return load_model(model_path, recipe.quantization, recurrent=recipe.recurrent)


def evaluate_stage(recipe: Recipe, model, tokenizer, rows: list[dict], out_dir: Path) -> dict:
    """Evaluate unless `out_dir` already holds a finished summary for this many rows."""
    from mathtune.eval.runner import SUMMARY_FILE, evaluate

    summary = read_json(out_dir / SUMMARY_FILE)
    expected = min(len(rows), recipe.eval.limit or len(rows))
    if summary and summary.get("n") == expected:
        return summary
    model.eval()
    return evaluate(model, tokenizer, rows, recipe.format, recipe.eval, out_dir)


def evaluate_all(recipe: Recipe, model, tokenizer, splits: Splits, run_dir: Path, stage: str) -> dict[str, dict]:
    """`stage` on the main eval set, then `stage-NAME` on each set of data.extra_eval (results and folders alike)."""
    out = {stage: evaluate_stage(recipe, model, tokenizer, splits.eval, run_dir / stage)}
    for name, rows in splits.extra_eval.items():
        out[f"{stage}-{name}"] = evaluate_stage(recipe, model, tokenizer, rows, run_dir / f"{stage}-{name}")
    return out


def train_stage(recipe: Recipe, model_path: str, tokenizer, splits: Splits, run_dir: Path, resume: bool) -> Path:
    """LoRA SFT unless the run folder already has its adapter; returns the adapter folder."""
    from datasets import Dataset

    from mathtune.data.formats import to_prompt_completion
    from mathtune.train.sft import train_sft

    adapter = run_dir / "adapter"
    if (adapter / "adapter_config.json").is_file():
        return adapter
    train_ds = Dataset.from_list(to_prompt_completion(splits.train, recipe.format, tokenizer))
    val_ds = None
    if splits.validation:
        val_ds = Dataset.from_list(to_prompt_completion(splits.validation, recipe.format, tokenizer))
    model = _load_base(recipe, model_path)
    start = time.time()
    adapter, history = train_sft(recipe, model, tokenizer, train_ds, val_ds, run_dir, resume)
    atomic_write_json(run_dir / "train_log.json", {"seconds": time.time() - start, "log_history": history})
    return adapter


def run_pipeline(recipe: Recipe, run_dir: Path, home: Path, resume: bool = False) -> dict:
    """Baseline eval -> SFT -> tuned eval -> report; returns the metrics written to `run_dir/metrics.json`."""
    from mathtune.eval.report import write_run_report
    from mathtune.models import load_adapter, load_tokenizer, merged_for_eval, resolve_recipe_model

    timings: dict[str, float] = (read_json(run_dir / "metrics.json") or {}).get("seconds", {})
    model_path = resolve_recipe_model(recipe, home)
    tokenizer = load_tokenizer(model_path)
    splits = load_splits(recipe, tokenizer)
    log.info("data: %d train, %d validation, %d eval rows", len(splits.train), len(splits.validation), len(splits.eval))
    results: dict[str, dict] = {}
    if recipe.baseline:
        start = time.time()
        results.update(evaluate_all(recipe, _load_base(recipe, model_path), tokenizer, splits, run_dir, "baseline"))
        timings.setdefault("baseline", time.time() - start)
    if recipe.data.train is not None:
        start = time.time()
        adapter = train_stage(recipe, model_path, tokenizer, splits, run_dir, resume)
        timings.setdefault("train", time.time() - start)
        start = time.time()
        tuned = load_adapter(_load_base(recipe, model_path), adapter)
        if recipe.eval.merge_adapter:
            tuned = merged_for_eval(tuned)
        results.update(evaluate_all(recipe, tuned, tokenizer, splits, run_dir, "tuned"))
        timings.setdefault("tuned", time.time() - start)
    metrics = {
        "model": recipe.model,
        "rows": {"train": len(splits.train), "validation": len(splits.validation), "eval": len(splits.eval)},
        "results": results,
        "seconds": timings,
    }
    atomic_write_json(run_dir / "metrics.json", metrics)
    write_run_report(run_dir, recipe, metrics)
    if recipe.recurrent is not None and recipe.recurrent.sweep:  # accuracy vs core iterations, added to the report
        from mathtune.recurrent.sweep import sweep_stage

        model = tuned if recipe.data.train is not None else _load_base(recipe, model_path)
        metrics["sweep"] = sweep_stage(recipe, model, tokenizer, splits.eval, run_dir)
        atomic_write_json(run_dir / "metrics.json", metrics)
    return metrics
