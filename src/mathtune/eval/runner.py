"""Evaluate a model on rows: generate, grade, diagnose; per-sample JSONL appended as it goes, resumable summary."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from mathtune.answers import grade_detailed
from mathtune.config import EvalConfig, FormatConfig
from mathtune.data.formats import build_prompt
from mathtune.eval.diagnostics import aggregate, diagnose
from mathtune.eval.metrics import accuracy_ci, completion_rates, maj_at_k, mean_pass_at_k
from mathtune.runs import SAMPLES_FILE, SUMMARY_FILE, atomic_write_json, read_samples  # noqa: F401  (re-exported)
CHUNK_BATCHES = 4  # prompts per append = batch_size * CHUNK_BATCHES: small enough to lose little on a kill


def generation_config(cfg: EvalConfig):
    """The generator's settings from the recipe's `eval:` block."""
    from mathtune.eval.generate import GenerationConfig

    return GenerationConfig(
        max_new_tokens=cfg.max_new_tokens,
        temperature=cfg.temperature,
        top_p=cfg.top_p,
        n=cfg.samples,
        seed=cfg.seed,
        batch_size=cfg.batch_size,
    )


def score(index: int, sample: int, row: dict, prompt: str, completion, bench: str) -> dict:
    """One per-sample record: what was asked, what came back, how it was graded, and its diagnostics."""
    result = grade_detailed(completion.text, row["answer"], bench)
    return {
        "index": index,
        "sample": sample,
        "question": row["question"],
        "prompt": prompt,
        "completion": completion.text,
        "gold": result.gold,
        "extracted": result.extracted,
        "correct": result.correct,
        "rule": result.rule,
        "reason": result.reason,
        "num_tokens": completion.num_tokens,
        "truncated": completion.truncated,
        "diagnostics": diagnose(completion.text, num_tokens=completion.num_tokens, gold=result.gold),
    }


def evaluate(
    model, tokenizer, rows: list[dict], fmt: FormatConfig, cfg: EvalConfig, out_dir: Path, generator=None
) -> dict:
    """Run (or finish) an evaluation into `out_dir`; samples already in its JSONL are kept, not redone."""
    from mathtune.eval.generate import make_generator

    rows = rows[: cfg.limit] if cfg.limit else rows
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / SAMPLES_FILE
    done = read_samples(path)
    path.write_text("".join(json.dumps(r) + "\n" for r in done))  # rewrite without a torn tail
    finished = {r["index"] for r in done}
    todo = [i for i in range(len(rows)) if i not in finished]
    generator = generator or make_generator(cfg.backend, model, tokenizer)
    gen_cfg = generation_config(cfg)
    step = cfg.batch_size * CHUNK_BATCHES
    with path.open("a") as fh:
        for start in range(0, len(todo), step):
            chunk = todo[start : start + step]
            prompts = [build_prompt(rows[i]["question"], fmt, tokenizer) for i in chunk]
            outputs = generator.generate(prompts, gen_cfg)
            for i, prompt, completions in zip(chunk, prompts, outputs):
                for s, completion in enumerate(completions):
                    fh.write(json.dumps(score(i, s, rows[i], prompt, completion, cfg.bench)) + "\n")
            fh.flush()
    summary = summarize(read_samples(path), cfg.samples)
    atomic_write_json(out_dir / SUMMARY_FILE, summary)
    return summary


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

