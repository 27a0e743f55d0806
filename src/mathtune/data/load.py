"""A recipe's rows: the held-out evaluation set(s) and the curated training rows, with no training question in any
evaluation set. Every stage loads its data here (below the stages, so that none imports from another)."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from mathtune.data.sources import DataError, load_source
from mathtune.data.splits import dedup, train_eval_split

log = logging.getLogger("mathtune")


@dataclass
class Splits:
    """Rows for training, validation (eval loss, early stopping) and the held-out evaluation(s)."""

    train: list[dict]
    validation: list[dict]
    eval: list[dict]
    extra_eval: dict[str, list[dict]] = field(default_factory=dict)  # data.extra_eval, by name
    curation: list[dict] = field(default_factory=list)  # statistics of each curation step (data/curation.py)


def load_splits(recipe, tokenizer=None) -> Splits:
    """Load the eval sets and the curated training rows; no training question is in any eval set. `tokenizer`
    makes `tokens` filters count real tokens (without it they are approximate)."""
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
