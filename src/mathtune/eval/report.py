"""A run's `report.md`: before/after accuracy with intervals, paired significance, diagnostics, plots (PNG)."""

from __future__ import annotations

import json
from pathlib import Path

from mathtune.config import Recipe
from mathtune.eval.plots import diagnostic_rates, plot_accuracy, plot_diagnostics, plot_lengths, plot_loss
from mathtune.runs import atomic_write_text, read_json, read_samples

ROWS = [  # (label, key in summary, format)
    ("accuracy", "accuracy", "pct"),
    ("95% interval", None, "ci"),
    ("problems graded", "n_graded", "int"),
    ("no answer found", "no_answer_rate", "pct"),
    ("truncated (hit max tokens)", "truncation_rate", "pct"),
    ("stopped in a loop (eval.stop_on_loop)", "loop_stop_rate", "pct"),
    ("with a calculator note <<a*b=c>>", "calculator_rate", "pct"),
    ("tokens per completion", "mean_tokens", "float"),
]
GRADER_LABELS = {  # accuracy_by_grader key -> row label; the field's graders beside mathtune's own
    "strict": "accuracy, lm-eval strict-match",
    "flexible": "accuracy, lm-eval flexible-extract",
    "math_verify": "accuracy, math-verify",
}
DIAG_ROWS = [  # (label, key in summary["diagnostics"], format)
    ("doubt markers per 1k tokens", "mean_doubt_per_1k_tokens", "float"),
    ("repeated 3-gram ratio", "mean_repeated_3gram_ratio", "float"),
    ("completions with an answer flip", "flip_rate", "pct"),
    ("completions ending in a loop", "loop_rate", "pct"),
]


def _fmt(value, kind: str) -> str:
    if value is None:
        return "n/a"
    if kind == "pct":
        return f"{100 * value:.1f}%"
    if kind == "int":
        return str(value)
    return f"{value:.3g}"


def _cell(summary: dict, key: str | None, kind: str) -> str:
    if kind == "ci":
        if "accuracy_low" not in summary:
            return "n/a"
        return f"[{100 * summary['accuracy_low']:.1f}%, {100 * summary['accuracy_high']:.1f}%]"
    return _fmt(summary.get(key), kind)


def _grader_cell(summary: dict, grader: str) -> str:
    acc = summary.get("accuracy_by_grader", {}).get(grader, {})
    if "accuracy" not in acc:
        return "n/a"
    return f"{100 * acc['accuracy']:.1f}% [{100 * acc['accuracy_low']:.1f}%, {100 * acc['accuracy_high']:.1f}%]"


def grader_rows(results: dict[str, dict]) -> list[str]:
    """One row per external grader present in any summary: accuracy with its 95% interval, beside mathtune's."""
    names = list(results)
    present = {g for s in results.values() for g in s.get("accuracy_by_grader", {})}
    return [
        f"| {label} | " + " | ".join(_grader_cell(results[n], grader) for n in names) + " |"
        for grader, label in GRADER_LABELS.items()
        if grader in present
    ]


def results_table(results: dict[str, dict]) -> str:
    """Markdown table with one column per evaluated model (baseline, tuned, ...)."""
    names = list(results)
    lines = ["| metric | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|"]
    for label, key, kind in ROWS:
        lines.append(f"| {label} | " + " | ".join(_cell(results[n], key, kind) for n in names) + " |")
        if kind == "ci":  # the field's graders right under mathtune's accuracy, so they read side by side
            lines += grader_rows(results)
    for label, key, kind in DIAG_ROWS:
        cells = [_fmt(results[n].get("diagnostics", {}).get(key), kind) for n in names]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _verdicts(path: Path) -> dict[int, bool]:
    out = {}
    for rec in read_samples(path):
        if rec["sample"] == 0 and rec["correct"] is not None:
            out[rec["index"]] = rec["correct"]
    return out


def paired_section(run_dir: Path, a: str, b: str) -> str:
    """McNemar and paired-bootstrap comparison of two evaluations of the same problems."""
    from mathtune.eval.metrics import mcnemar, paired_bootstrap

    va, vb = _verdicts(run_dir / a / "samples.jsonl"), _verdicts(run_dir / b / "samples.jsonl")
    common = sorted(set(va) & set(vb))
    if not common:
        return ""
    xa, xb = [va[i] for i in common], [vb[i] for i in common]
    mc, bs = mcnemar(xa, xb), paired_bootstrap(xa, xb)
    return (
        f"On the same {len(common)} problems, {b} minus {a}: {100 * bs.diff:+.1f} points "
        f"(95% paired-bootstrap interval [{100 * bs.low:+.1f}, {100 * bs.high:+.1f}]). "
        f"{b} alone right on {mc.b01}, {a} alone right on {mc.b10}; McNemar p = {mc.p_value:.3g} ({mc.method})."
    )


def _lengths(path: Path) -> list[int]:
    """Token counts of every completion in a samples.jsonl (a torn last line is skipped, as the runner does)."""
    return [rec["num_tokens"] for rec in read_samples(path) if "num_tokens" in rec]


def stage_plots(run_dir: Path, folders: dict[str, str], results: dict[str, dict], cap: int | None) -> list[str]:
    """Accuracy, completion-length and diagnostics PNGs for the evaluated stages; returns the file names written."""
    intervals = {n: (s["accuracy"], s["accuracy_low"], s["accuracy_high"]) if "accuracy" in s else None
                 for n, s in results.items()}
    lengths = {n: _lengths(run_dir / folders[n] / "samples.jsonl") for n in results}
    drawn = {
        "accuracy.png": plot_accuracy(intervals, run_dir / "accuracy.png"),
        "lengths.png": plot_lengths(lengths, run_dir / "lengths.png", cap),
        "diagnostics.png": plot_diagnostics({n: diagnostic_rates(s) for n, s in results.items()},
                                            run_dir / "diagnostics.png"),
    }
    return [name for name, ok in drawn.items() if ok]


def _plots_md(names: list[str]) -> list[str]:
    return ["", "## Plots", ""] + [f"![{Path(n).stem}]({n})" for n in names] if names else []


def examples_section(run_dir: Path, name: str, k: int = 3) -> str:
    """A few graded completions, so a reader sees what the numbers are made of."""
    path = run_dir / name / "samples.jsonl"
    if not path.is_file():
        return ""
    recs = read_samples(path)[:k]
    parts = []
    for r in recs:
        verdict = {True: "correct", False: "wrong", None: "ungradable"}[r["correct"]]
        parts.append(
            f"**Q:** {r['question']}\n\n```\n{r['completion'][:600]}\n```\n"
            f"extracted `{r['extracted']}` ({r['rule']}), gold `{r['gold']}`: {verdict}\n"
        )
    return f"### {name}\n\n" + "\n".join(parts)


def write_run_report(run_dir: Path, recipe: Recipe, metrics: dict) -> Path:
    """Write `report.md` (and `loss.png`) into the run folder and return its path."""
    results = metrics["results"]
    train_log = read_json(run_dir / "train_log.json") or {}
    has_plot = plot_loss(train_log.get("log_history", []), run_dir / "loss.png")
    secs = metrics.get("seconds", {})
    out = [
        f"# mathtune run: {recipe.name}",
        "",
        f"Model `{recipe.model}`; {metrics['rows']['train']} training rows, {metrics['rows']['eval']} held-out "
        "problems (no question shared with training).",
        "",
        results_table(results) if results else "No evaluation was run.",
        "",
    ]
    if "baseline" in results and "tuned" in results:
        out += [paired_section(run_dir, "baseline", "tuned"), ""]
    for name in recipe.data.extra_eval:  # each extra held-out set, compared the same way
        if f"baseline-{name}" in results and f"tuned-{name}" in results:
            out += [f"{name}: " + paired_section(run_dir, f"baseline-{name}", f"tuned-{name}"), ""]
    out.append("Time: " + ", ".join(f"{k} {v / 60:.1f} min" for k, v in secs.items()) + ".")
    plots = (["loss.png"] if has_plot else []) + stage_plots(
        run_dir, {n: n for n in results}, results, recipe.eval.max_new_tokens)
    out += _plots_md(plots)
    out += ["", "## Examples", ""] + [examples_section(run_dir, n) for n in results]
    path = run_dir / "report.md"
    atomic_write_text(path, "\n".join(out) + "\n")
    return path


def write_eval_report(run_dir: Path, recipe: Recipe, summary: dict) -> Path:
    """Write `report.md` for a single `mathtune eval` run."""
    extra = [f"| {k} | {100 * v:.1f}% |" for k, v in summary.items() if k.startswith(("pass@", "maj@"))]
    out = [
        f"# mathtune eval: {recipe.name}",
        "",
        f"Model `{recipe.model}`, {summary['n']} problems.",
        "",
        results_table({"model": summary}),
    ]
    if extra:
        out += ["", "| metric | value |", "|---|---|", *extra]
    out += _plots_md(stage_plots(run_dir, {"model": "."}, {"model": summary}, recipe.eval.max_new_tokens))
    out += ["", "## Examples", "", examples_section(run_dir, ".")]
    path = run_dir / "report.md"
    atomic_write_text(path, "\n".join(out) + "\n")
    return path
