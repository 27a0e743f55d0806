"""Evaluate a model on rows: generate, grade, diagnose; per-sample JSONL appended as it goes, resumable summary."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable

from mathtune.answers import grade_detailed
from mathtune.answers.external import GRADERS, external_verdicts
from mathtune.config import EvalConfig, FormatConfig
from mathtune.data.formats import build_prompt
from mathtune.eval.diagnostics import aggregate, diagnose
from mathtune.eval.metrics import accuracy_ci, completion_rates, maj_at_k, mean_pass_at_k
from mathtune.runs import (  # noqa: F401
    SAMPLES_FILE, SUMMARY_FILE, atomic_write_json, atomic_write_text, read_json, read_samples,
)

ZERO_SHOT_STOP = ["Question:", "Q:"]  # a model that starts a new question has finished answering this one
FINAL_LINE = r"####[^\n]*\d[^\n]*\n"  # a completed `#### N` line: stop there (stop_after_answer)


def prompt_builder(fmt: FormatConfig, cfg: EvalConfig, tokenizer) -> Callable[[str], str]:
    """question -> prompt: the recipe's format (chat template...) or, with `fewshot`, the prompt set's plain text."""
    if not cfg.fewshot:
        return lambda question: build_prompt(question, fmt, tokenizer)
    from mathtune.data.fewshot import get_prompt_set

    prompt_set = get_prompt_set(cfg.fewshot_set, cfg.bench)
    prompt_set.prompt("", cfg.fewshot)  # a K larger than the set fails here, before any model work
    return lambda question: prompt_set.prompt(question, cfg.fewshot)


def strict_pattern(cfg: EvalConfig) -> str | None:
    """lm-eval's strict-match regex of the few-shot prompt set in use (None: GSM8K's `#### N`)."""
    if not cfg.fewshot:
        return None
    from mathtune.data.fewshot import get_prompt_set

    return get_prompt_set(cfg.fewshot_set, cfg.bench).strict_pattern


def generation_config(cfg: EvalConfig, fmt: FormatConfig | None = None):
    """The generator's settings from the recipe's `eval:` block (stops from the prompt set or the format)."""
    from mathtune.eval.generate import GenerationConfig

    stop = cfg.stop
    if stop is None and cfg.fewshot:
        from mathtune.data.fewshot import get_prompt_set

        stop = list(get_prompt_set(cfg.fewshot_set, cfg.bench).stop)
    hash_marker = fmt is None or fmt.answer_marker == "hash"
    return GenerationConfig(
        max_new_tokens=cfg.max_new_tokens,
        temperature=cfg.temperature,
        top_p=cfg.top_p,
        n=cfg.samples,
        seed=cfg.seed,
        batch_size=cfg.batch_size,
        stop=list(ZERO_SHOT_STOP if stop is None else stop),
        stop_regex=[FINAL_LINE] if cfg.stop_after_answer and hash_marker else [],
        stop_on_loop=cfg.stop_on_loop,
        calculator=cfg.calculator,
    )


def score(index: int, sample: int, row: dict, prompt: str, completion, bench: str,
          strict_pattern: str | None = None) -> dict:
    """One per-sample record: what was asked, what came back, how it was graded (mathtune and the field's graders
    under `graders`), and its diagnostics."""
    result = grade_detailed(completion.text, row["answer"], bench)
    return {
        "index": index,
        "sample": sample,
        "question": row["question"],
        "prompt": prompt,
        "completion": completion.text,
        "gold": result.gold,
        "gold_raw": row["answer"],  # the dataset's field as given, so `mathtune regrade` can re-read it exactly
        "bench": bench,
        "extracted": result.extracted,
        "correct": result.correct,
        "rule": result.rule,
        "reason": result.reason,
        "graders": external_verdicts(completion.text, row["answer"], bench, strict_pattern=strict_pattern),
        "num_tokens": completion.num_tokens,
        "truncated": completion.truncated,
        "looped": getattr(completion, "looped", False),  # a generator of its own may not know stop_on_loop
        "diagnostics": diagnose(completion.text, num_tokens=completion.num_tokens, gold=result.gold),
    }


def evaluate(
    model, tokenizer, rows: list[dict], fmt: FormatConfig, cfg: EvalConfig, out_dir: Path, generator=None,
    shard: tuple[int, int] | None = None,
) -> dict:
    """Run (or finish) an evaluation into `out_dir`; samples already in its JSONL are kept, not redone.

    Completions stream in as they finish and each is graded and appended at once, so a kill loses only what was
    being generated. A problem counts as done when all its samples are on disk; a partly written problem is redone
    whole (sampling is seeded per seed, sample and prompt, so it redraws the same completions). The file is sorted
    by (problem, sample) at the end, so a resumed run leaves the same file as an uninterrupted one. `shard` (i, n):
    only slice i of n of the problems (eval/shard.py), each sample keeping its index in the whole set.
    """
    from mathtune.eval.generate import for_precision, make_generator, resolve_precision

    rows = rows[: cfg.limit] if cfg.limit else rows
    if shard is not None:
        from mathtune.eval.shard import shard_indices

        indices = set(shard_indices(len(rows), *shard))
    else:
        indices = set(range(len(rows)))
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / SAMPLES_FILE
    build = prompt_builder(fmt, cfg, tokenizer)
    gen_cfg = generation_config(cfg, fmt)
    done = read_samples(path)
    counts: dict[int, int] = {}
    for r in done:
        counts[r["index"]] = counts.get(r["index"], 0) + 1
    finished = {i for i, c in counts.items() if c >= cfg.samples and i in indices}
    done = [r for r in done if r["index"] in finished]
    atomic_write_text(path, "".join(json.dumps(r) + "\n" for r in done))  # without a torn tail or partial problems
    todo = [i for i in sorted(indices) if i not in finished]
    precision = None  # what the hf backend decodes in (eval.precision auto resolved), recorded in the summary
    if generator is None and cfg.backend == "hf":
        precision = dict(zip(("precision", "why"), resolve_precision(cfg.precision, next(model.parameters()).device)))
    if todo:
        if precision is not None:
            model = for_precision(model, precision["precision"])
        generator = generator or make_generator(cfg.backend, model, tokenizer)
        prompts = [build(rows[i]["question"]) for i in todo]
        pattern = strict_pattern(cfg)
        with path.open("a", encoding="utf-8") as fh:
            for j, s, completion in generator.stream(prompts, gen_cfg):
                i = todo[j]
                record = score(i, s, rows[i], prompts[j], completion, cfg.bench, pattern)
                fh.write(json.dumps(record) + "\n")
                fh.flush()
    records = sorted(read_samples(path), key=lambda r: (r["index"], r["sample"]))
    atomic_write_text(path, "".join(json.dumps(r) + "\n" for r in records))
    summary = summarize(records, cfg.samples)
    if precision is not None:
        summary["decode_precision"] = precision
    atomic_write_json(out_dir / SUMMARY_FILE, summary)
    return summary


def stored_decode_precision(folders: list[Path]) -> Any:
    """What the evaluations in `folders` decoded in (their summaries' `decode_precision`): one entry when they agree,
    a list when they differ (shards run on different machines), None when none recorded it."""
    seen = []
    for folder in folders:
        stored = read_json(folder / SUMMARY_FILE)
        entry = stored.get("decode_precision") if isinstance(stored, dict) else None
        if entry and entry not in seen:
            seen.append(entry)
    return seen[0] if len(seen) == 1 else (seen or None)


def summarize(records: list[dict], samples: int) -> dict[str, Any]:
    """Accuracy with a 95% Wilson interval, failure rates, lengths, diagnostics; pass@k and maj@k when sampling."""
    first = [r for r in records if r["sample"] == 0]
    verdicts = [r["correct"] for r in first]
    graded = [v for v in verdicts if v is not None]
    n = len(first)
    out: dict[str, Any] = {"n": n, "n_graded": len(graded), "n_gold_unparseable": n - len(graded)}
    if graded:
        ci = accuracy_ci(graded)
        out.update(accuracy=ci.value, accuracy_low=ci.low, accuracy_high=ci.high)
    out["accuracy_by_grader"] = accuracy_by_grader(first)
    out.update(completion_rates(records))  # over every completion, as compare and the plots read them
    out["diagnostics"] = aggregate([r["diagnostics"] for r in records])
    if samples > 1:
        by_index: dict[int, list[dict]] = {}
        for r in sorted(records, key=lambda r: (r["index"], r["sample"])):
            if r["correct"] is not None:
                by_index.setdefault(r["index"], []).append(r)
        groups = [g for g in by_index.values() if len(g) == samples]
        k = 1
        while k <= samples:
            out[f"pass@{k}"] = mean_pass_at_k([[r["correct"] for r in g] for g in groups], k)
            out[f"maj@{k}"] = maj_at_k(
                [[r["extracted"] for r in g] for g in groups], [[r["correct"] for r in g] for g in groups], k
            )
            k *= 2
    return out


def accuracy_by_grader(records: list[dict]) -> dict[str, dict[str, float | int]]:
    """Accuracy and 95% Wilson interval per grader ("mathtune", then "strict", "flexible", "math_verify" where the
    records carry them), each over the records that grader could judge."""
    # A regraded file keeps mathtune's own verdict under graders["mathtune"] when `correct` holds another grader's.
    mine = [r.get("graders", {}).get("mathtune", r["correct"]) for r in records]
    verdicts: dict[str, list[bool]] = {"mathtune": [v for v in mine if v is not None]}
    for name in GRADERS:
        judged = [r["graders"][name] for r in records if r.get("graders", {}).get(name) is not None]
        if judged or any(name in r.get("graders", {}) for r in records):
            verdicts[name] = judged
    out: dict[str, dict[str, float | int]] = {}
    for name, flags in verdicts.items():
        if flags:
            ci = accuracy_ci(flags)
            out[name] = {"accuracy": ci.value, "accuracy_low": ci.low, "accuracy_high": ci.high, "n_graded": ci.n}
        else:
            out[name] = {"n_graded": 0}
    return out


