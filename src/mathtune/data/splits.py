"""Honest splits: no question may sit on both the train and the eval side, even written a little differently.

Questions are compared after `normalize_question` (case, spacing, end punctuation, "1,000" vs "1000", "4.50" vs
"4.5"), so a reformatted copy of an eval problem in the training data still counts as a leak.
"""

from __future__ import annotations

import random
import re
import unicodedata
from collections.abc import Iterable

from mathtune.data.sources.base import DataError

_THOUSANDS_RE = re.compile(r"(?<![\d.])(\d{1,3})((?:,\d{3})+)(?![\d,]*\d)")
_TRAILING_ZEROS_RE = re.compile(r"(\d+\.\d*?)0+(?!\d)")
_SPACE_AROUND_RE = re.compile(r"\s*([^\w\s])\s*")
_END_CHARS = " .,;:!?\"'`\u2019\u201d\u201c"


def normalize_question(text: str) -> str:
    """A comparison key: lowercase, one spacing, no end punctuation, numbers written one way."""
    text = unicodedata.normalize("NFKC", text).lower()
    text = _THOUSANDS_RE.sub(lambda m: m.group(1) + m.group(2).replace(",", ""), text)
    text = _TRAILING_ZEROS_RE.sub(r"\1", text)
    text = re.sub(r"(\d)\.(?!\d)", r"\1", text)  # "4." left by the line above (was "4.0") -> "4"
    text = " ".join(text.split())
    # "5-3" and "5 - 3", "$ 4" and "$4" are the same question
    text = _SPACE_AROUND_RE.sub(r"\1", text)
    return text.strip(_END_CHARS)


def dedup(rows: Iterable[dict]) -> list[dict]:
    """Rows with the first of each normalised question kept, in their original order."""
    seen: set[str] = set()
    out = []
    for row in rows:
        key = normalize_question(row["question"])
        if key not in seen:
            seen.add(key)
            out.append(row)
    return out


def _overlap(train_rows: Iterable[dict], eval_rows: Iterable[dict]) -> list[dict]:
    """Eval rows whose question also appears in train."""
    train_keys = {normalize_question(row["question"]) for row in train_rows}
    return [row for row in eval_rows if normalize_question(row["question"]) in train_keys]


def check_no_overlap(train_rows: list[dict], eval_rows: list[dict], *, where: str = "data") -> None:
    """Raise DataError naming the count and one example when an eval question also appears in train."""
    leaked = _overlap(train_rows, eval_rows)
    if leaked:
        example = " ".join(leaked[0]["question"].split())
        example = example if len(example) <= 80 else example[:77] + "..."
        raise DataError(
            f"{where}: {len(leaked)} of {len(eval_rows)} eval questions also appear in train, e.g. {example!r}; "
            "use another seed or split for one side, or drop them from train"
        )


def drop_overlap(train_rows: list[dict], eval_rows: list[dict]) -> tuple[list[dict], int]:
    """Train rows whose question is not in eval, and how many were dropped (eval is never touched)."""
    eval_keys = {normalize_question(row["question"]) for row in eval_rows}
    kept = [row for row in train_rows if normalize_question(row["question"]) not in eval_keys]
    return kept, len(train_rows) - len(kept)


def train_eval_split(rows: list[dict], eval_size: int | float, seed: int) -> tuple[list[dict], list[dict]]:
    """Split one pool into (train, eval) with no question on both sides; `eval_size` is a count or a fraction.

    Rows sharing a normalised question move together, so eval may come out a row or two over `eval_size`
    when the pool has duplicates; both sides keep the pool's order.
    """
    groups: dict[str, list[int]] = {}
    for i, row in enumerate(rows):
        groups.setdefault(normalize_question(row["question"]), []).append(i)
    if isinstance(eval_size, float) and 0 < eval_size < 1:
        target = max(1, round(eval_size * len(rows)))
    elif isinstance(eval_size, int) and not isinstance(eval_size, bool) and eval_size >= 1:
        target = eval_size
    else:
        raise DataError(f"eval_size: expected a count >= 1 or a fraction in (0, 1), got {eval_size!r}")
    if target >= len(rows) or len(groups) < 2:
        raise DataError(
            f"eval_size: {target} eval rows would leave no training data ({len(rows)} rows, "
            f"{len(groups)} distinct questions)"
        )
    order = list(groups)
    random.Random(seed).shuffle(order)
    eval_idx: set[int] = set()
    for key in order:
        if len(eval_idx) >= target:
            break
        eval_idx.update(groups[key])
    train = [row for i, row in enumerate(rows) if i not in eval_idx]
    evals = [row for i, row in enumerate(rows) if i in eval_idx]
    if not train:
        raise DataError(f"eval_size: {target} eval rows would leave no training data")
    return train, evals
