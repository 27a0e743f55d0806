"""The data stage, `mathtune verifier data RECIPE`: labelled training and held-out rows, from files or by sampling
k solutions per problem from a generator (base or base + adapter) and grading each with the evaluation grader.

Writes RUN/train.jsonl, RUN/eval.jsonl and RUN/balance.json; the raw samples stay in RUN/samples/{train,eval}/.
"""

from __future__ import annotations

import logging
from pathlib import Path

from mathtune.config import EvalConfig, Recipe
from mathtune.data.sources import DataError
from mathtune.runs import atomic_write_json, read_json
from mathtune.verifier.data import (
    balance_report, check_classes, drop_shared_questions, read_labelled, read_rows, rows_from_samples, write_rows,
)

log = logging.getLogger("mathtune")
TRAIN_FILE, EVAL_FILE, BALANCE_FILE = "train.jsonl", "eval.jsonl", "balance.json"


def _generator(recipe: Recipe, home: Path):
    from mathtune.models import load_adapter, load_model, load_tokenizer, resolve_model

    cfg = recipe.verifier.sampling
    path = resolve_model(cfg.model or recipe.model, home)
    model = load_model(path, recipe.quantization)
    if cfg.adapter:
        model = load_adapter(model, cfg.adapter)
    model.eval()
    return model, load_tokenizer(path)


def sample_rows(recipe: Recipe, problems: list[dict], samples: int, out_dir: Path, prefix: str, gen) -> list[dict]:
    """k sampled solutions per problem, graded; resumes from out_dir/samples.jsonl like any evaluation."""
    from mathtune.eval.runner import evaluate, read_samples

    cfg = recipe.verifier.sampling
    eval_cfg = EvalConfig(
        max_new_tokens=cfg.max_new_tokens, batch_size=cfg.batch_size, temperature=cfg.temperature, top_p=cfg.top_p,
        samples=samples, seed=cfg.seed, bench=recipe.eval.bench,
    )
    model, tokenizer = gen()
    evaluate(model, tokenizer, problems, recipe.format, eval_cfg, out_dir)
    return rows_from_samples(read_samples(out_dir / "samples.jsonl"), prefix)


def build_data(recipe: Recipe, run_dir: Path, home: Path) -> tuple[list[dict], list[dict]]:
    """Training and held-out labelled rows (read back when the run folder already has them)."""
    if (run_dir / TRAIN_FILE).is_file() and (run_dir / EVAL_FILE).is_file():
        return read_rows(run_dir / TRAIN_FILE), read_rows(run_dir / EVAL_FILE)
    from mathtune.data.load import load_splits

    vcfg = recipe.verifier
    loaded: list = []

    def gen():  # the generator is loaded once, and only when some rows are sampled
        if not loaded:
            loaded.append(_generator(recipe, home))
        return loaded[0]

    need_problems = vcfg.train is None or vcfg.eval is None
    splits = load_splits(recipe) if need_problems else None  # drops train problems whose question is held out
    if vcfg.eval is not None:
        held_out = read_labelled(vcfg.eval, "verifier.eval")
    else:
        held_out = sample_rows(recipe, splits.eval, vcfg.sampling.eval_samples, run_dir / "samples" / "eval", "eval", gen)
    if vcfg.train is not None:
        train = read_labelled(vcfg.train, "verifier.train")
    else:
        if not splits.train:
            raise DataError("data.train: missing; sampled verifier training rows need training problems")
        train = sample_rows(recipe, splits.train, vcfg.sampling.samples, run_dir / "samples" / "train", "train", gen)
    train, dropped = drop_shared_questions(train, held_out)
    if dropped:
        log.info("dropped %d training rows whose question is held out", dropped)
    check_classes(train, "verifier training rows")
    check_classes(held_out, "verifier held-out rows")
    write_rows(run_dir / TRAIN_FILE, train)
    write_rows(run_dir / EVAL_FILE, held_out)
    report = {"train": balance_report(train), "eval": balance_report(held_out), "dropped_shared_questions": dropped}
    atomic_write_json(run_dir / BALANCE_FILE, report)
    return train, held_out


def copy_data(src: Path, run_dir: Path) -> None:
    """Take the labelled rows of a finished `verifier data` run (so a training run is self-contained)."""
    for name in (TRAIN_FILE, EVAL_FILE):
        if not (src / name).is_file():
            raise DataError(f"--data {src}: no {name} (expected the folder of a `mathtune verifier data` run)")
    if not (run_dir / TRAIN_FILE).is_file():
        for name in (TRAIN_FILE, EVAL_FILE):
            write_rows(run_dir / name, read_rows(src / name))
        atomic_write_json(run_dir / BALANCE_FILE, read_json(src / BALANCE_FILE) or {})


def format_balance(report: dict) -> str:
    """One line per split: rows, share correct, problems with only right / only wrong / mixed solutions."""
    lines = []
    for split in ("train", "eval"):
        r = report.get(split)
        if r:
            lines.append(
                f"{split}: {r['rows']} rows, {r['correct']} correct ({100 * r['share_correct']:.1f}%) / "
                f"{r['incorrect']} incorrect; {r['problems']} problems: {r['problems_all_correct']} all correct, "
                f"{r['problems_all_incorrect']} all incorrect, {r['problems_mixed']} mixed"
            )
    return "\n".join(lines)
