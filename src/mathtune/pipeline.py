"""The main job, `mathtune run [RECIPE]`: baseline evaluation, LoRA SFT, evaluation of the adapter, report.

Each stage leaves its output in the run folder and is skipped when that output is complete, so `--resume` after a
kill continues where the run stopped (training itself resumes from its last complete checkpoint).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

from mathtune.config import Recipe
from mathtune.data.sources import DataError, load_source
from mathtune.data.splits import dedup, drop_overlap, train_eval_split
from mathtune.runs import atomic_write_json, read_json

log = logging.getLogger("mathtune")


@dataclass
class Splits:
    """Rows for training, validation (eval loss, early stopping) and the held-out evaluation."""

    train: list[dict]
    validation: list[dict]
    eval: list[dict]


def load_splits(recipe: Recipe) -> Splits:
    """Load train and eval sources; drop train rows whose question is in eval, so the two never overlap."""
    eval_rows = dedup(load_source(recipe.data.eval, where="data.eval"))
    if not eval_rows:
        raise DataError("data.eval: no rows to evaluate on")
    if recipe.data.train is None:
        return Splits([], [], eval_rows)
    train_rows, dropped = drop_overlap(dedup(load_source(recipe.data.train, where="data.train")), eval_rows)
    if dropped:
        log.info("dropped %d training rows whose question is also in the evaluation set", dropped)
    validation: list[dict] = []
    if recipe.data.validation_size:
        train_rows, validation = train_eval_split(train_rows, recipe.data.validation_size, recipe.seed)
    if not train_rows:
        raise DataError("data.train: no training rows left (after dedup, overlap removal and validation split)")
    return Splits(train_rows, validation, eval_rows)


def _load_base(recipe: Recipe, model_path: str):
    from mathtune.models import load_model

    return load_model(model_path, recipe.quantization)


def evaluate_stage(recipe: Recipe, model, tokenizer, rows: list[dict], out_dir: Path) -> dict:
    """Evaluate unless `out_dir` already holds a finished summary for this many rows."""
    from mathtune.eval.runner import SUMMARY_FILE, evaluate

    summary = read_json(out_dir / SUMMARY_FILE)
    expected = min(len(rows), recipe.eval.limit or len(rows))
    if summary and summary.get("n") == expected:
        return summary
    model.eval()
    return evaluate(model, tokenizer, rows, recipe.format, recipe.eval, out_dir)


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
    from mathtune.models import load_adapter, load_tokenizer, resolve_model

    timings: dict[str, float] = (read_json(run_dir / "metrics.json") or {}).get("seconds", {})
    model_path = resolve_model(recipe.model, home)
    tokenizer = load_tokenizer(model_path)
    splits = load_splits(recipe)
    log.info("data: %d train, %d validation, %d eval rows", len(splits.train), len(splits.validation), len(splits.eval))
    results: dict[str, dict] = {}
    if recipe.baseline:
        start = time.time()
        results["baseline"] = evaluate_stage(recipe, _load_base(recipe, model_path), tokenizer, splits.eval, run_dir / "baseline")
        timings.setdefault("baseline", time.time() - start)
    if recipe.data.train is not None:
        start = time.time()
        adapter = train_stage(recipe, model_path, tokenizer, splits, run_dir, resume)
        timings.setdefault("train", time.time() - start)
        start = time.time()
        tuned = load_adapter(_load_base(recipe, model_path), adapter)
        results["tuned"] = evaluate_stage(recipe, tuned, tokenizer, splits.eval, run_dir / "tuned")
        timings.setdefault("tuned", time.time() - start)
    metrics = {
        "model": recipe.model,
        "rows": {"train": len(splits.train), "validation": len(splits.validation), "eval": len(splits.eval)},
        "results": results,
        "seconds": timings,
    }
    atomic_write_json(run_dir / "metrics.json", metrics)
    write_run_report(run_dir, recipe, metrics)
    return metrics
