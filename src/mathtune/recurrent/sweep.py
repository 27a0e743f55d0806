"""Test-time compute: run the evaluation of a recurrent-depth model at several core iteration counts; table + plot.

    mathtune eval --model M [--adapter A] --bench B --sweep num_steps=1,2,4,8,16,32
    (or a recipe's `recurrent.sweep: [1, 2, 4, 8]`, run by `mathtune run` after the tuned evaluation)

Each iteration count gets a full evaluation folder (`num_steps-R/`: samples.jsonl, summary.json, resumable) and the
sweep writes `sweep.json`, `sweep.md` and `sweep.png` (accuracy with its 95% interval, tokens per completion and
seconds per problem against R). Where the model exposes it (mathtune's own model), the convergence diagnostic is the
mean over generated tokens of |s_R - s_(R-1)| / |s_R|, the relative change of the latent state in the last
iteration, measured by one teacher-forced forward over prompt + completion at the same R (the same states that
generation computed, since cached decoding equals uncached).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from mathtune.config import EvalConfig, FormatConfig
from mathtune.errors import UserError
from mathtune.runs import atomic_write_json, atomic_write_text, read_json, save_png

SWEEP_KEY = "num_steps"
TIMING_FILE = "timing.json"


def parse_sweep(text: str) -> list[int]:
    """`num_steps=1,2,4` -> [1, 2, 4] (duplicates dropped, order kept)."""
    key, sep, values = text.partition("=")
    try:
        steps = [int(v) for v in values.split(",") if v.strip()]
    except ValueError:
        steps = []
    if key.strip() != SWEEP_KEY or not sep or not steps or min(steps) < 1:
        raise UserError(f"--sweep {text!r}: expected {SWEEP_KEY}=R1,R2,... with whole numbers >= 1, e.g. num_steps=1,2,4,8")
    return list(dict.fromkeys(steps))


def _base(model: Any) -> Any:
    return model.get_base_model() if hasattr(model, "get_base_model") else model


def convergence(model: Any, tokenizer: Any, records: list[dict], steps: int) -> float | None:
    """Mean relative latent change at the last iteration over the generated tokens (None: model does not expose it)."""
    import torch

    if getattr(_base(model).config, "model_type", None) != "mathtune_recurrent":
        return None
    device = next(model.parameters()).device
    values: list[float] = []
    with torch.inference_mode():
        for rec in records:
            prompt = tokenizer(rec["prompt"], add_special_tokens=False)["input_ids"]
            full = tokenizer(rec["prompt"] + rec["completion"], add_special_tokens=False)["input_ids"]
            if len(full) <= len(prompt):
                continue
            out = model(input_ids=torch.tensor([full], device=device), num_steps=steps, use_cache=False)
            # position t predicts token t + 1: the generated tokens were predicted at len(prompt) - 1 ... len(full) - 2
            values.extend(out.convergence[0, len(prompt) - 1 : len(full) - 1].float().tolist())
    return sum(values) / len(values) if values else None


def _point(model: Any, tokenizer: Any, rows: list[dict], fmt: FormatConfig, cfg: EvalConfig, out: Path, steps: int) -> dict:
    from mathtune.eval.runner import SAMPLES_FILE, evaluate, read_samples
    from mathtune.recurrent.loading import set_num_steps

    set_num_steps(model, steps)
    timing = read_json(out / TIMING_FILE)
    resumed = (out / SAMPLES_FILE).is_file()
    start = time.time()
    summary = evaluate(model, tokenizer, rows, fmt, cfg, out)
    if timing is None:  # measured once; a resumed evaluation says so instead of reporting a partial time
        timing = {"seconds": None if resumed else time.time() - start, "resumed": resumed}
        atomic_write_json(out / TIMING_FILE, timing)
    first = [r for r in read_samples(out / SAMPLES_FILE) if r["sample"] == 0]
    seconds = timing["seconds"]
    return {
        SWEEP_KEY: steps,
        "accuracy": summary.get("accuracy"),
        "accuracy_low": summary.get("accuracy_low"),
        "accuracy_high": summary.get("accuracy_high"),
        "n_graded": summary["n_graded"],
        "mean_tokens": summary["mean_tokens"],
        "truncation_rate": summary["truncation_rate"],
        "seconds": seconds,
        "seconds_per_problem": seconds / max(summary["n"], 1) if seconds is not None else None,
        "convergence": convergence(model, tokenizer, first, steps),
    }


def _fmt(value: Any, pattern: str) -> str:
    return "n/a" if value is None else pattern.format(value)


def table(points: list[dict]) -> str:
    """Markdown table: one row per iteration count."""
    lines = [
        "| core iterations | accuracy | 95% interval | graded | tokens per completion | truncated | s per problem "
        "| latent change at last iteration |",
        "|---:|---:|---|---:|---:|---:|---:|---:|",
    ]
    for p in points:
        ci = "n/a" if p["accuracy_low"] is None else f"[{100 * p['accuracy_low']:.1f}%, {100 * p['accuracy_high']:.1f}%]"
        lines.append(
            f"| {p[SWEEP_KEY]} | {_fmt(p['accuracy'] and 100 * p['accuracy'], '{:.1f}%')} | {ci} | {p['n_graded']} "
            f"| {p['mean_tokens']:.1f} | {100 * p['truncation_rate']:.1f}% | {_fmt(p['seconds_per_problem'], '{:.2f}')} "
            f"| {_fmt(p['convergence'], '{:.4f}')} |"
        )
    return "\n".join(lines)


def plot(points: list[dict], path: Path) -> None:
    """Accuracy (with its interval), tokens, time and, where measured, latent change against iterations (log2 x)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    xs = [p[SWEEP_KEY] for p in points]
    panels = [("accuracy", [p["accuracy"] for p in points]), ("tokens per completion", [p["mean_tokens"] for p in points]),
              ("seconds per problem", [p["seconds_per_problem"] for p in points])]
    if any(p["convergence"] is not None for p in points):
        panels.append(("latent change, last iteration", [p["convergence"] for p in points]))
    fig, axes = plt.subplots(1, len(panels), figsize=(4 * len(panels), 3.2))
    for ax, (label, ys) in zip(axes, panels):
        pairs = [(x, y) for x, y in zip(xs, ys) if y is not None]
        if pairs:
            ax.plot(*zip(*pairs), marker="o")
        if label == "accuracy":
            for p in points:
                if p["accuracy_low"] is not None:
                    ax.vlines(p[SWEEP_KEY], p["accuracy_low"], p["accuracy_high"], alpha=0.4)
        ax.set_xscale("log", base=2)
        ax.set_xlabel("core iterations (num_steps)")
        ax.set_title(label)
    fig.tight_layout()
    save_png(fig, path, dpi=100)


def run_sweep(model: Any, tokenizer: Any, rows: list[dict], fmt: FormatConfig, cfg: EvalConfig, out_dir: Path,
              steps: list[int], write_report: bool = True) -> list[dict]:
    """Evaluate at each iteration count into `out_dir`; writes sweep.json/.md/.png (and report.md) and returns the points."""
    points = [_point(model, tokenizer, rows, fmt, cfg, out_dir / f"{SWEEP_KEY}-{r}", r) for r in steps]
    atomic_write_json(out_dir / "sweep.json", {"points": points})
    plot(points, out_dir / "sweep.png")
    atomic_write_text(out_dir / "sweep.md", table(points) + "\n")
    if write_report:
        atomic_write_text(out_dir / "report.md", section(points, "sweep.png"))
    return points


def section(points: list[dict], image: str) -> str:
    """The report section: what was swept, the table, the plot."""
    return (
        "## Accuracy vs core iterations (test-time compute)\n\n"
        "The same evaluation at each iteration count of the recurrent core (greedy unless the eval settings sample). "
        "Latent change: mean over generated tokens of |s_R - s_(R-1)| / |s_R| (n/a where the model does not expose "
        "its latent state). Seconds are wall time of the evaluation on this machine.\n\n"
        f"{table(points)}\n\n![accuracy, tokens and time vs iterations]({image})\n"
    )


def sweep_stage(recipe: Any, model: Any, tokenizer: Any, rows: list[dict], run_dir: Path) -> list[dict]:
    """`mathtune run` with `recurrent.sweep`: sweep into RUN/sweep and append its section to RUN/report.md."""
    points = run_sweep(model, tokenizer, rows, recipe.format, recipe.eval, run_dir / "sweep", recipe.recurrent.sweep,
                       write_report=False)
    report = run_dir / "report.md"
    text = report.read_text() if report.is_file() else ""
    atomic_write_text(report, text.rstrip() + "\n\n" + section(points, "sweep/sweep.png"))
    return points
