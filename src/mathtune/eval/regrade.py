"""Regrade stored samples without generating, and compare two graders on the same completions.

    mathtune regrade runs/eval-x --grader strict                 # regraded samples.jsonl + summary.json
    mathtune regrade runs/eval-x/samples.jsonl --grader mathtune --against math-verify --examples 5

The input is a `samples.jsonl` (or a folder holding one) as `mathtune eval` writes it. Each record is regraded from
its completion and gold: the dataset's field (`gold_raw`, with the record's `bench`) where the record has it, else
the parsed gold it stored. The output folder gets the regraded `samples.jsonl` (`correct`, `extracted`, `reason`
from the chosen grader; every grader's verdict under `graders`), its `summary.json`, and `regrade.md`/`regrade.json`:
an agreement table of the chosen grader against another (by default the verdicts stored in the input) and examples
of each disagreement class. The input is never written to.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from mathtune.answers import grade_detailed
from mathtune.answers.external import external_verdicts, flexible_extract, strict_extract
from mathtune.errors import UserError
from mathtune.eval.diagnostics import diagnose
from mathtune.runs import RECIPE_FILE, atomic_write_json, atomic_write_text

SAMPLES_FILE = "samples.jsonl"
GRADER_CHOICES = ("mathtune", "strict", "flexible", "math-verify")
AGAINST_CHOICES = (*GRADER_CHOICES, "stored")
EXCERPT_CHARS = 400


def find_samples(path: Path) -> Path:
    """The samples.jsonl a path names (the file, or a folder holding one), or a UserError saying what was expected."""
    if path.is_dir():
        path = path / SAMPLES_FILE
    if not path.is_file():
        raise UserError(f"{path}: no samples file (expected a samples.jsonl from `mathtune eval`, or its folder)")
    return path


def read_records(path: Path) -> list[dict]:
    """Every record of a samples.jsonl; a torn last line is dropped; a record without its fields names its line."""
    out = []
    lines = path.read_text(encoding="utf-8").splitlines()
    for n, line in enumerate(lines, 1):
        try:
            rec = json.loads(line)
        except ValueError:
            if n == len(lines):
                break  # torn tail of a killed evaluation
            raise UserError(f"{path}:{n}: not a JSON line") from None
        missing = [k for k in ("index", "sample", "completion", "gold") if k not in rec]
        if missing:
            raise UserError(f"{path}:{n}: record lacks {', '.join(missing)} (expected a `mathtune eval` sample)")
        out.append(rec)
    if not out:
        raise UserError(f"{path}: no records")
    return out


def _gold(rec: dict, bench: str | None) -> tuple[Any, str]:
    if "gold_raw" in rec:
        return rec["gold_raw"], bench or rec.get("bench", "auto")
    return rec["gold"], bench or "auto"


def run_strict_pattern(folder: Path, bench: str | None = None) -> str | None:
    """The strict-match regex the run's own evaluation used: its few-shot prompt set's, from its recipe.yaml."""
    recipe = folder / RECIPE_FILE
    if not recipe.is_file():
        return None
    import yaml

    from mathtune.config import EvalConfig
    from mathtune.eval.runner import strict_pattern

    block = (yaml.safe_load(recipe.read_text(encoding="utf-8")) or {}).get("eval") or {}
    # only the keys that pick the prompt set: a run saved by an older version may carry keys since renamed
    keys = {k: block[k] for k in ("fewshot", "fewshot_set", "bench") if block.get(k) is not None}
    if bench:
        keys["bench"] = bench
    return strict_pattern(EvalConfig(**keys))


def regrade_record(rec: dict, grader: str, bench: str | None = None, strict_pattern: str | None = None) -> dict:
    """The record graded again by `grader`: verdict, extraction and reason replaced, all graders' verdicts and the
    diagnostics fresh.

    `strict_pattern`: the few-shot prompt set's strict-match regex (gsm8k-cot: "The answer is N."), None for `#### N`.
    """
    gold, bench_used = _gold(rec, bench)
    text = rec["completion"]
    mine = grade_detailed(text, gold, bench_used)
    verdicts = {"mathtune": mine.correct, **external_verdicts(text, gold, bench_used, strict_pattern=strict_pattern)}
    out = {**rec, "graders": verdicts, "grader": grader, "stored_correct": rec.get("correct")}
    if "diagnostics" in rec:  # recomputed too, so a regrade applies the current loop and doubt rules
        out["diagnostics"] = diagnose(text, num_tokens=rec.get("num_tokens"), gold=mine.gold)
    if grader == "mathtune":
        out.update(correct=mine.correct, extracted=mine.extracted, gold=mine.gold, rule=mine.rule, reason=mine.reason)
        return out
    key = grader.replace("-", "_")
    extractors = {"strict": lambda t: strict_extract(t, strict_pattern), "flexible": flexible_extract}
    extracted = extractors.get(key, lambda _: None)(text)
    verdict = verdicts[key]
    reason = "gold_unparseable" if verdict is None else ("match" if verdict else "mismatch")
    out.update(correct=verdict, extracted=extracted, gold=mine.gold, rule=key, reason=reason)
    return out


def verdict_of(rec: dict, grader: str) -> bool | None:
    """A regraded record's verdict under `grader` ("stored": what the input file said)."""
    if grader == "stored":
        return rec.get("stored_correct")
    return rec["graders"][grader.replace("-", "_")]


def agreement(records: list[dict], a: str, b: str, examples: int) -> dict[str, Any]:
    """Counts of both right / both wrong / only A right / only B right / not judged, and examples of each split."""
    classes = {"both right": [], "both wrong": [], f"only {a} right": [], f"only {b} right": [], "not judged": []}
    for rec in records:
        va, vb = verdict_of(rec, a), verdict_of(rec, b)
        if va is None or vb is None:
            key = "not judged"
        elif va and vb:
            key = "both right"
        elif not va and not vb:
            key = "both wrong"
        else:
            key = f"only {a} right" if va else f"only {b} right"
        classes[key].append(rec)
    judged = len(records) - len(classes["not judged"])
    agree = len(classes["both right"]) + len(classes["both wrong"])
    return {
        "a": a,
        "b": b,
        "n": len(records),
        "counts": {k: len(v) for k, v in classes.items()},
        "agreement": agree / judged if judged else None,
        "examples": {
            k: [_example(r) for r in v[:examples]] for k, v in classes.items() if k.startswith("only")
        },
    }


def _example(rec: dict) -> dict[str, Any]:
    text = rec["completion"]
    return {
        "index": rec["index"],
        "sample": rec["sample"],
        "gold": rec.get("gold"),
        "extracted": rec.get("extracted"),
        "strict": strict_extract(text),
        "flexible": flexible_extract(text),
        "completion_tail": text[-EXCERPT_CHARS:],
    }


def agreement_table(agree: dict[str, Any]) -> str:
    """The agreement counts as a markdown table."""
    n = agree["n"]
    rows = [f"| {k} | {v} | {100 * v / n:.1f}% |" for k, v in agree["counts"].items()]
    share = "n/a" if agree["agreement"] is None else f"{100 * agree['agreement']:.1f}%"
    return "\n".join(
        [f"| {agree['a']} vs {agree['b']} | samples | share |", "|---|---|---|", *rows,
         f"| agreement (judged by both) | | {share} |"]
    )


def _examples_md(agree: dict[str, Any]) -> list[str]:
    out = []
    for cls, exs in agree["examples"].items():
        out += ["", f"### {cls}", ""]
        if not exs:
            out.append("none")
        for ex in exs:
            out += [
                f"- problem {ex['index']} (sample {ex['sample']}): gold `{ex['gold']}`, extracted `{ex['extracted']}`,"
                f" strict `{ex['strict']}`, flexible `{ex['flexible']}`",
                "",
                "```",
                ex["completion_tail"].replace("```", "'''"),
                "```",
            ]
    return out


def write_regrade(
    source: Path, out_dir: Path, grader: str, against: str, bench: str | None, examples: int, command: str
) -> dict[str, Any]:
    """Regrade `source` into `out_dir` (refused if it holds samples or is the input's folder); returns the agreement."""
    from mathtune.eval.runner import stored_decode_precision, summarize

    if grader not in GRADER_CHOICES:
        raise UserError(f"--grader: {grader!r} is not one of {', '.join(GRADER_CHOICES)}")
    if against not in AGAINST_CHOICES:
        raise UserError(f"--against: {against!r} is not one of {', '.join(AGAINST_CHOICES)}")
    samples = find_samples(source)
    if out_dir.resolve() == samples.parent.resolve():
        raise UserError(f"--output {out_dir}: is the input's folder; regrade never overwrites its input")
    if (out_dir / SAMPLES_FILE).exists():
        raise UserError(f"--output {out_dir}: already holds a {SAMPLES_FILE}; choose a new folder")
    pattern = run_strict_pattern(samples.parent, bench)
    records = [regrade_record(r, grader, bench, pattern) for r in read_records(samples)]
    out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out_dir / SAMPLES_FILE, "".join(json.dumps(r) + "\n" for r in records))
    n_samples = max(r["sample"] for r in records) + 1
    summary = summarize(records, n_samples) if all("diagnostics" in r for r in records) else _plain_summary(records)
    summary.update(grader=grader, source=str(samples), command=command)
    decoded = stored_decode_precision([samples.parent])
    if decoded:  # how the completions were generated: the regrade does not change it
        summary["decode_precision"] = decoded
    atomic_write_json(out_dir / "summary.json", summary)
    agree = agreement([r for r in records if r["sample"] == 0], grader, against, examples)
    atomic_write_json(out_dir / "regrade.json", {**agree, "source": str(samples), "command": command})
    md = [f"# mathtune regrade: {grader} vs {against}", "", f"Source `{samples}`; command `{command}`.", "",
          agreement_table(agree), *_examples_md(agree)]
    atomic_write_text(out_dir / "regrade.md", "\n".join(md) + "\n")
    return {"summary": summary, "agreement": agree}


def _plain_summary(records: list[dict]) -> dict[str, Any]:
    """Accuracy per grader for records without diagnostics (a hand-made samples file)."""
    from mathtune.eval.runner import accuracy_by_grader

    from mathtune.eval.metrics import accuracy_ci

    first = [r for r in records if r["sample"] == 0]
    graded = [r["correct"] for r in first if r["correct"] is not None]
    out: dict[str, Any] = {"n": len(first), "n_graded": len(graded), "n_gold_unparseable": len(first) - len(graded)}
    if graded:
        ci = accuracy_ci(graded)
        out.update(accuracy=ci.value, accuracy_low=ci.low, accuracy_high=ci.high)
    out["accuracy_by_grader"] = accuracy_by_grader(first)
    return out
