"""How good a verifier is on labelled rows: accuracy at 0.5, precision/recall/F1 (positive = correct), AUROC,
expected calibration error and its reliability plot. Pure numpy (matplotlib only for the plot).
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

ECE_BINS = 10


def _arrays(scores: Sequence[float], labels: Sequence[bool]) -> tuple[np.ndarray, np.ndarray]:
    s, y = np.asarray(scores, dtype=float), np.asarray(labels, dtype=bool)
    if s.shape != y.shape or s.ndim != 1 or len(s) == 0:
        raise ValueError(f"need as many scores as labels (>= 1), got {s.shape} and {y.shape}")
    if np.any((s < 0) | (s > 1)) or np.any(np.isnan(s)):
        raise ValueError("scores must be probabilities in [0, 1]")
    return s, y


def auroc(scores: Sequence[float], labels: Sequence[bool]) -> float:
    """Probability that a random correct row scores above a random incorrect one (ties count half)."""
    s, y = _arrays(scores, labels)
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0:
        raise ValueError("AUROC needs both correct and incorrect rows")
    # Mann-Whitney U from average ranks, so tied scores share their rank and count half
    order = np.argsort(s, kind="mergesort")
    ranks = np.empty(len(s))
    sorted_s = s[order]
    i = 0
    while i < len(s):
        j = i
        while j + 1 < len(s) and sorted_s[j + 1] == sorted_s[i]:
            j += 1
        ranks[order[i : j + 1]] = (i + j) / 2 + 1
        i = j + 1
    u = ranks[y].sum() - n_pos * (n_pos + 1) / 2
    return float(u / (n_pos * n_neg))


def reliability_bins(scores: Sequence[float], labels: Sequence[bool], bins: int = ECE_BINS) -> list[dict]:
    """Equal-width bins over [0, 1] of the score (1.0 falls in the last): count, mean score, share correct."""
    s, y = _arrays(scores, labels)
    idx = np.minimum((s * bins).astype(int), bins - 1)
    out = []
    for b in range(bins):
        m = idx == b
        n = int(m.sum())
        out.append({"low": b / bins, "high": (b + 1) / bins, "n": n,
                    "confidence": float(s[m].mean()) if n else None, "accuracy": float(y[m].mean()) if n else None})
    return out


def ece(scores: Sequence[float], labels: Sequence[bool], bins: int = ECE_BINS) -> float:
    """Expected calibration error of P(correct): sum over bins of (bin share) * |share correct - mean score|."""
    total = len(scores)
    return float(sum(b["n"] / total * abs(b["accuracy"] - b["confidence"])
                     for b in reliability_bins(scores, labels, bins) if b["n"]))


def classification_metrics(scores: Sequence[float], labels: Sequence[bool], threshold: float = 0.5) -> dict:
    """Accuracy, precision, recall, F1 at `threshold` (score >= threshold predicts correct), AUROC, ECE, counts."""
    s, y = _arrays(scores, labels)
    pred = s >= threshold
    tp, fp = int((pred & y).sum()), int((pred & ~y).sum())
    fn, tn = int((~pred & y).sum()), int((~pred & ~y).sum())
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    both = 0 < int(y.sum()) < len(y)
    return {
        "n": len(s), "n_correct": int(y.sum()), "threshold": threshold,
        "accuracy": (tp + tn) / len(s), "precision": precision, "recall": recall, "f1": f1,
        "auroc": auroc(s, y) if both else None, "ece": ece(s, y), "mean_score": float(s.mean()),
        "confusion": {"tp": tp, "fp": fp, "fn": fn, "tn": tn},
    }


def plot_reliability(bins: list[dict], path: Path, title: str) -> None:
    """Reliability diagram: share correct per score bin against the diagonal of perfect calibration."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from mathtune.runs import save_png

    fig, ax = plt.subplots(figsize=(4.5, 4.5))
    ax.plot([0, 1], [0, 1], "--", color="grey", label="perfectly calibrated")
    filled = [b for b in bins if b["n"]]
    ax.bar([(b["low"] + b["high"]) / 2 for b in filled], [b["accuracy"] for b in filled],
           width=1 / len(bins) * 0.9, alpha=0.7, label="share correct")
    for b in filled:
        ax.text((b["low"] + b["high"]) / 2, b["accuracy"] + 0.02, str(b["n"]), ha="center", fontsize=7)
    ax.set(xlim=(0, 1), ylim=(0, 1.08), xlabel="verifier score P(correct)", ylabel="share correct", title=title)
    ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    save_png(fig, path)
