"""Verifier evaluation, `mathtune verifier eval RUN [RUN ...] --data D`: scores on held-out labelled rows, metrics,
reliability plot, selection at N when rows come N per problem, and a table comparing runs (e.g. rank 16 vs 64).

Also the reranking behind `mathtune eval ... --verifier RUN`: score an evaluation's sampled solutions and compare
majority vote, best-of-N, verifier-weighted vote and pass@N as N grows.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from mathtune.runs import atomic_write_json, atomic_write_text
from mathtune.verifier.data import check_classes, rows_from_samples
from mathtune.verifier.metrics import classification_metrics, plot_reliability, reliability_bins
from mathtune.verifier.select import accuracy_vs_n, format_table, group_problems, plot_accuracy_vs_n

log = logging.getLogger("mathtune")
METRIC_ROWS = [("accuracy at 0.5", "accuracy"), ("precision", "precision"), ("recall", "recall"), ("F1", "f1"),
               ("AUROC", "auroc"), ("ECE (10 bins)", "ece"), ("mean score", "mean_score")]


def write_selection(out_dir: Path, rows: list[dict], scores: list[float], title: str) -> list[dict] | None:
    """Accuracy vs N of every selection method (selection.json/.md/.png); None when no problem has 2+ samples."""
    problems = group_problems(rows, scores)
    if not problems or max(len(p) for p in problems) < 2:
        return None
    sizes = {len(p) for p in problems}
    if len(sizes) > 1:  # compare methods on equal footing: only problems with the most common sample count
        common = max(sizes, key=lambda s: sum(len(p) == s for p in problems))
        log.info("selection: %d of %d problems have %d samples; the others are left out",
                 sum(len(p) == common for p in problems), len(problems), common)
        problems = [p for p in problems if len(p) == common]
    table = accuracy_vs_n(problems)
    atomic_write_json(out_dir / "selection.json", table)
    atomic_write_text(out_dir / "selection.md", f"# {title}\n\n{len(problems)} problems.\n\n{format_table(table)}\n")
    plot_accuracy_vs_n(table, out_dir / "selection.png", title)
    return table


def evaluate_rows(verifier, rows: list[dict], out_dir: Path, title: str) -> dict:
    """Score `rows`, write scores.jsonl, metrics.json, reliability.png, selection.* and report.md; return metrics."""
    check_classes(rows, f"{title}: held-out rows")
    out_dir.mkdir(parents=True, exist_ok=True)
    scores = verifier.score(rows, progress=True)
    atomic_write_text(out_dir / "scores.jsonl", "".join(json.dumps({**r, "score": s}) + "\n" for r, s in zip(rows, scores)))
    labels = [r["is_correct"] for r in rows]
    metrics = classification_metrics(scores, labels)
    bins = reliability_bins(scores, labels)
    plot_reliability(bins, out_dir / "reliability.png", title)
    metrics["selection"] = write_selection(out_dir, rows, scores, title)
    metrics["reliability"] = bins
    atomic_write_json(out_dir / "metrics.json", metrics)
    atomic_write_text(out_dir / "report.md", report(title, metrics))
    return metrics


def _fmt(value) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def report(title: str, metrics: dict) -> str:
    """A run's verifier report: metrics, confusion counts, selection table."""
    c = metrics["confusion"]
    lines = [f"# Verifier: {title}", "", f"{metrics['n']} held-out rows, {metrics['n_correct']} correct.", "",
             "| metric | value |", "|---|---|"]
    lines += [f"| {label} | {_fmt(metrics[key])} |" for label, key in METRIC_ROWS]
    lines += ["", f"Confusion at 0.5: tp {c['tp']}, fp {c['fp']}, fn {c['fn']}, tn {c['tn']}. "
              "Reliability plot: reliability.png."]
    if metrics.get("selection"):
        lines += ["", "## Selection among each problem's samples", "", format_table(metrics["selection"]),
                  "", "Plot: selection.png."]
    return "\n".join(lines) + "\n"


def comparison_table(results: dict[str, dict]) -> str:
    """Markdown: one column per verifier run, rows = metrics and selection accuracy at the largest N."""
    names = list(results)
    lines = ["| metric | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|"]
    for label, key in METRIC_ROWS:
        lines.append(f"| {label} | " + " | ".join(_fmt(results[n].get(key)) for n in names) + " |")
    for method, label in (("majority", "majority vote"), ("best_of_n", "best-of-N"), ("weighted_vote", "weighted vote")):
        cells = []
        for n in names:
            sel = results[n].get("selection")
            cells.append(f"{100 * sel[-1][method]:.1f}% (N={sel[-1]['n']})" if sel else "n/a")
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def rerank_eval(eval_dir: Path, verifier, title: str) -> list[dict] | None:
    """Score an evaluation's samples (eval_dir/samples.jsonl) and write its selection table, plot and scores."""
    from mathtune.eval.runner import SAMPLES_FILE, read_samples

    rows = rows_from_samples(read_samples(eval_dir / SAMPLES_FILE), "")
    if not rows:
        log.info("rerank: no gradable samples to score")
        return None
    scores = verifier.score(rows, progress=True)
    atomic_write_text(eval_dir / "verifier_scores.jsonl",
                      "".join(json.dumps({**r, "score": s}) + "\n" for r, s in zip(rows, scores)))
    return write_selection(eval_dir, rows, scores, title)
