"""Labelled solutions: rows {question, solution, answer, is_correct, group}, read from a file with a field mapping or
built from graded samples; label balance report; balancing; held-out rows that share no question with training.

`group` ties the solutions of one problem together (best-of-N and voting pick among a group's rows).
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any, Iterable

from mathtune.data.sources import DataError
from mathtune.data.splits import normalize_question
from mathtune.runs import atomic_write_text
from mathtune.verifier.config import LabelledSource

TRUE_TEXT = {"true", "1"}
FALSE_TEXT = {"false", "0"}


def parse_label(value: Any, where: str) -> bool:
    """A label as a bool: True/False, 1/0, or the strings "true"/"false"/"1"/"0" (any case); else a DataError."""
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in TRUE_TEXT | FALSE_TEXT:
        return value.strip().lower() in TRUE_TEXT
    raise DataError(f"{where}: expected a boolean label (true/false/1/0), got {value!r}")


def label_row(record: dict, keys: dict[str, str], where: str, group: str) -> dict:
    """One labelled row from a record whose keys are mapped by `keys` (our name -> record key)."""
    for name in ("question", "label"):
        if keys[name] not in record:
            have = ", ".join(sorted(record)) or "none"
            raise DataError(f"{where}: missing key {keys[name]!r} (keys there: {have})")
    if keys["solution"] not in record and keys["answer"] not in record:
        raise DataError(f"{where}: needs a solution ({keys['solution']!r}) or an answer ({keys['answer']!r}) key")
    return {
        "question": str(record[keys["question"]]).strip(),
        "solution": str(record.get(keys["solution"]) or "").strip(),
        "answer": str(record.get(keys["answer"]) or "").strip(),
        "is_correct": parse_label(record[keys["label"]], f"{where}: {keys['label']!r}"),
        "group": str(record.get("group", group)),
    }


def _records(src: LabelledSource) -> tuple[str, list[dict]]:
    if src.path is not None:
        path = Path(src.path).expanduser()
        if path.is_file():
            from mathtune.data.sources.local import read_records

            return str(path), read_records(path)
        if not path.is_dir():
            raise DataError(f"{path}: labelled data file or folder not found")
        name, where = str(path), str(path)
    else:
        name, where = src.hub, f"hub dataset {src.hub}"
    import datasets  # imported late: slow to import

    try:
        return where, datasets.load_dataset(name, split=src.split).to_list()
    except Exception as exc:  # datasets raises many unrelated types for a missing or malformed dataset
        raise DataError(f"{where}: cannot load split {src.split!r} ({str(exc).splitlines()[0]})") from exc


def read_labelled(src: LabelledSource, where: str) -> list[dict]:
    """Rows of a labelled file/folder/hub set; each row is its own group unless the file has a `group` key."""
    name, records = _records(src)
    records = records[: src.limit] if src.limit else records
    keys = src.keys()
    rows = [label_row(r, keys, f"{where}: {name}: row {i}", group=f"row{i}") for i, r in enumerate(records, start=1)]
    if not rows:
        raise DataError(f"{where}: {name}: no rows")
    return rows


def rows_from_samples(records: Iterable[dict], prefix: str) -> list[dict]:
    """Labelled rows from evaluation samples (samples.jsonl): the completion is the solution, graded by the grader.

    Samples whose gold answer could not be read (correct is None) have no label and are left out.
    """
    return [
        {
            "question": r["question"],
            "solution": r["completion"],
            "answer": r["extracted"] or "",
            "is_correct": bool(r["correct"]),
            "group": f"{prefix}{r['index']}",
        }
        for r in sorted(records, key=lambda r: (r["index"], r["sample"]))
        if r["correct"] is not None
    ]


def drop_shared_questions(train: list[dict], held_out: list[dict]) -> tuple[list[dict], int]:
    """Training rows whose question is not among the held-out questions, and how many were dropped."""
    held = {normalize_question(r["question"]) for r in held_out}
    kept = [r for r in train if normalize_question(r["question"]) not in held]
    return kept, len(train) - len(kept)


def shared_questions(a: list[dict], b: list[dict]) -> int:
    """How many distinct questions of `b` also appear in `a`."""
    keys = {normalize_question(r["question"]) for r in a}
    return len({normalize_question(r["question"]) for r in b} & keys)


def balance_report(rows: list[dict]) -> dict[str, Any]:
    """Label counts and shares, and how many problems (groups) have only right, only wrong, or mixed solutions."""
    n_true = sum(r["is_correct"] for r in rows)
    groups: dict[str, list[bool]] = {}
    for r in rows:
        groups.setdefault(r["group"], []).append(r["is_correct"])
    return {
        "rows": len(rows),
        "correct": n_true,
        "incorrect": len(rows) - n_true,
        "share_correct": n_true / len(rows) if rows else None,
        "problems": len(groups),
        "problems_all_correct": sum(all(g) for g in groups.values()),
        "problems_all_incorrect": sum(not any(g) for g in groups.values()),
        "problems_mixed": sum(any(g) and not all(g) for g in groups.values()),
    }


def check_classes(rows: list[dict], where: str) -> None:
    """Both labels must be present: a verifier cannot learn, nor be measured, on one class."""
    report = balance_report(rows)
    for label, key in (("correct (True)", "correct"), ("incorrect (False)", "incorrect")):
        if report[key] == 0:
            raise DataError(
                f"{where}: no {label} rows among {report['rows']}; a verifier needs both labels "
                "(sample more solutions, raise the temperature, or pick a task the generator solves sometimes)"
            )


def balance(rows: list[dict], mode: str, seed: int) -> tuple[list[dict], dict[bool, float] | None]:
    """Apply `verifier.balance`: "downsample" the larger class at random, "weight" the loss per class, or "none".

    Returns the training rows and the loss weight of each label (None = unweighted).
    """
    if mode == "none":
        return rows, None
    pos = [r for r in rows if r["is_correct"]]
    neg = [r for r in rows if not r["is_correct"]]
    if mode == "weight":  # n / (2 n_c): each class carries half of the total weight
        return rows, {True: len(rows) / (2 * len(pos)), False: len(rows) / (2 * len(neg))}
    if mode == "downsample":
        rng = random.Random(seed)
        small, large = sorted((pos, neg), key=len)
        keep = {id(r) for r in small} | {id(r) for r in rng.sample(large, len(small))}
        return [r for r in rows if id(r) in keep], None
    raise ValueError(f"unknown balance mode {mode!r}")


def write_rows(path: Path, rows: list[dict]) -> None:
    """Atomically write labelled rows as JSONL."""
    atomic_write_text(path, "".join(json.dumps(r) + "\n" for r in rows))


def read_rows(path: Path) -> list[dict]:
    """Read labelled rows written by `write_rows` (or any JSONL of the same schema)."""
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
