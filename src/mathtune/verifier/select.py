"""Choosing one answer from N sampled solutions: majority vote, best-of-N by verifier score, verifier-weighted vote
(sum of scores per distinct answer), and pass@N (any of the N is right: the ceiling of every selector).

Answers are grouped by `normalise_answer` (spacing, `$`, a trailing full stop), as maj@k in the evaluation summary.
Accuracy at N averages over each problem's disjoint blocks of N consecutive samples (8 samples give 8 blocks at N=1,
4 at N=2, ...), which uses every sample and still compares the methods on exactly the same solutions.
Pure Python (matplotlib only for the plot).
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Sequence

from mathtune.eval.metrics import answered, majority_index, normalise_answer

METHODS = ("majority", "best_of_n", "weighted_vote", "pass")
LABELS = {"majority": "majority vote", "best_of_n": "best-of-N (verifier)", "weighted_vote": "verifier-weighted vote",
          "pass": "pass@N (any right)"}


def weighted_vote(answers: Sequence[str | None], weights: Sequence[float]) -> int | None:
    """Index of the first sample of the answer whose weights sum highest (ties: the answer seen first; None skipped)."""
    totals: dict[str, float] = {}
    first: dict[str, int] = {}
    for i, (ans, w) in enumerate(zip(answers, weights)):
        if not answered(ans):
            continue
        key = normalise_answer(ans)
        first.setdefault(key, i)
        totals[key] = totals.get(key, 0.0) + w
    if not totals:
        return None
    best = max(totals, key=lambda k: (totals[k], -first[k]))
    return first[best]


def majority(answers: Sequence[str | None]) -> int | None:
    """Index of the first sample of the most common answer (ties: the answer seen first): maj@k's vote."""
    return majority_index(answers)


def best_of_n(scores: Sequence[float]) -> int:
    """Index of the highest-scoring sample (ties: the first)."""
    return max(range(len(scores)), key=lambda i: (scores[i], -i))


PICKERS: dict[str, Callable[[list[dict]], int | None]] = {
    "majority": lambda s: majority([x["answer"] for x in s]),
    "best_of_n": lambda s: best_of_n([x["score"] for x in s]),
    "weighted_vote": lambda s: weighted_vote([x["answer"] for x in s], [x["score"] for x in s]),
}


def block_accuracy(samples: list[dict], n: int, method: str) -> float:
    """Share of the disjoint blocks of n samples where `method` ends on a right answer."""
    blocks = [samples[i : i + n] for i in range(0, len(samples) - n + 1, n)]
    if not blocks:
        raise ValueError(f"a problem has {len(samples)} samples, fewer than N={n}")
    hits = 0
    for block in blocks:
        if method == "pass":
            hits += any(x["correct"] for x in block)
        else:
            pick = PICKERS[method](block)
            hits += pick is not None and bool(block[pick]["correct"])
    return hits / len(blocks)


def default_ns(samples: int) -> list[int]:
    """1, 2, 4, ... up to `samples`, and `samples` itself."""
    ns, n = [], 1
    while n <= samples:
        ns.append(n)
        n *= 2
    return ns if ns[-1] == samples else ns + [samples]


def accuracy_vs_n(problems: list[list[dict]], ns: Sequence[int] | None = None) -> list[dict]:
    """For each N: accuracy of every method over the problems; a problem is a list of {answer, correct, score}."""
    if not problems:
        raise ValueError("accuracy_vs_n needs at least one problem")
    fewest = min(len(p) for p in problems)
    table = []
    for n in ns or default_ns(fewest):
        row = {"n": n, "problems": len(problems)}
        for method in METHODS:
            row[method] = sum(block_accuracy(p, n, method) for p in problems) / len(problems)
        table.append(row)
    return table


def group_problems(rows: list[dict], scores: Sequence[float]) -> list[list[dict]]:
    """Labelled rows + scores -> one list of {answer, correct, score} per group, groups and samples in row order."""
    groups: dict[str, list[dict]] = {}
    for row, score in zip(rows, scores):
        groups.setdefault(row["group"], []).append(
            {"answer": row.get("answer") or None, "correct": bool(row["is_correct"]), "score": float(score)})
    return list(groups.values())


def format_table(table: list[dict]) -> str:
    """Markdown: one row per N, one column per method."""
    lines = ["| N | " + " | ".join(LABELS[m] for m in METHODS) + " |", "|---" * (len(METHODS) + 1) + "|"]
    for row in table:
        lines.append(f"| {row['n']} | " + " | ".join(f"{100 * row[m]:.1f}%" for m in METHODS) + " |")
    return "\n".join(lines)


def plot_accuracy_vs_n(table: list[dict], path: Path, title: str) -> None:
    """Accuracy of each method against N (log2 axis)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from mathtune.runs import save_png

    fig, ax = plt.subplots(figsize=(5.5, 4))
    ns = [r["n"] for r in table]
    for method in METHODS:
        ax.plot(ns, [100 * r[method] for r in table], marker="o", label=LABELS[method],
                linestyle="--" if method == "pass" else "-")
    ax.set_xscale("log", base=2)
    ax.set_xticks(ns, [str(n) for n in ns])
    ax.set(xlabel="N sampled solutions", ylabel="accuracy (%)", title=title)
    ax.legend(fontsize=8)
    fig.tight_layout()
    save_png(fig, path)
