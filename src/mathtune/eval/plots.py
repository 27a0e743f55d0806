"""PNG plots for reports: accuracy with intervals, completion lengths, reasoning diagnostics, training loss.

Each function takes plain numbers per run or stage (a label -> values dict, in display order), writes one PNG
atomically (temporary file + rename, so a reader never sees half an image) and returns whether it wrote one.
matplotlib is imported inside, with the Agg backend: no display is needed, and `--help` stays fast.
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence

# (label, key) of the diagnostic rates drawn as percentages; keys are those of `diagnostic_rates` below.
RATE_BARS = (
    ("no answer found", "no_answer_rate"),
    ("truncated", "truncation_rate"),
    ("ends in a loop", "loop_rate"),
    ("answer flip", "flip_rate"),
    ("repeated 3-grams\n(% of 3-grams)", "repeated_3gram_ratio"),
)
DOUBT_KEY = "doubt_per_1k_tokens"


def diagnostic_rates(summary: Mapping) -> dict[str, float | None]:
    """The values `plot_diagnostics` draws, taken from a `summary.json` (eval/runner.summarize)."""
    diag = summary.get("diagnostics", {})
    return {
        "no_answer_rate": summary.get("no_answer_rate"),
        "truncation_rate": summary.get("truncation_rate"),
        "loop_rate": diag.get("loop_rate"),
        "flip_rate": diag.get("flip_rate"),
        "repeated_3gram_ratio": diag.get("mean_repeated_3gram_ratio"),
        DOUBT_KEY: diag.get("mean_doubt_per_1k_tokens"),
    }


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> None:
    """Save `fig` as PNG through a temporary file in the same folder and a rename, then free it."""
    from mathtune.runs import save_png

    fig.tight_layout()
    save_png(fig, path)


def _colors(n: int) -> list:
    return [_pyplot().get_cmap("tab10")(i % 10) for i in range(n)]


def _label_bars(ax, bars, values, fmt: str) -> None:
    """Write each bar's value above it, so a zero-height bar still reads as 0 rather than as missing."""
    for bar, value in zip(bars, values):
        ax.annotate(fmt.format(value), (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                    xytext=(0, 2), textcoords="offset points", ha="center", fontsize=7)


def _top(ax) -> float:
    return max((p.get_height() for p in ax.patches), default=0.0)


def plot_accuracy(intervals: Mapping[str, tuple[float, float, float] | None], path: Path) -> bool:
    """One bar per run: accuracy (%) with its 95% interval as error bars; runs without a grade are skipped."""
    items = [(name, v) for name, v in intervals.items() if v is not None]
    if not items:
        return False
    plt = _pyplot()
    names = [n for n, _ in items]
    acc = [100 * v[0] for _, v in items]
    err = [[100 * (v[0] - v[1]) for _, v in items], [100 * (v[2] - v[0]) for _, v in items]]
    fig, ax = plt.subplots(figsize=(max(3.5, 1.2 * len(items) + 2), 3.5))
    bars = ax.bar(names, acc, yerr=err, capsize=6, width=0.6, color=_colors(len(items)), alpha=0.85)
    ax.set_xlim(-0.8, len(items) - 0.2)  # keeps a lone bar from filling the whole axis
    for bar, (_, v) in zip(bars, items):
        ax.annotate(f"{100 * v[0]:.1f}%", (bar.get_x() + bar.get_width() / 2, 100 * v[2]),
                    xytext=(0, 3), textcoords="offset points", ha="center", fontsize=9)
    ax.set_ylim(0, 108)
    ax.set_ylabel("accuracy (%)")
    ax.set_title("accuracy with 95% Wilson interval")
    ax.grid(axis="y", alpha=0.3)
    _save(fig, path)
    return True


def plot_lengths(lengths: Mapping[str, Sequence[int]], path: Path, cap: int | None = None) -> bool:
    """Overlaid histograms of completion length in tokens, one per run, on shared bins; `cap` marks max tokens."""
    items = [(name, list(v)) for name, v in lengths.items() if len(v)]
    if not items:
        return False
    plt = _pyplot()
    top = max(max(v) for _, v in items)
    if cap:
        top = max(top, cap)
    width = max(1, -(-top // 40))  # about 40 bins of whole tokens
    bins = list(range(0, top + 2 * width, width))
    fig, ax = plt.subplots(figsize=(6, 3.5))
    for (name, values), color in zip(items, _colors(len(items))):
        ax.hist(values, bins=bins, alpha=0.45, color=color, label=f"{name} (mean {sum(values) / len(values):.0f})")
        ax.hist(values, bins=bins, histtype="step", color=color)
    if cap:
        ax.axvline(cap, color="black", linestyle="--", linewidth=1, label=f"max new tokens ({cap})")
    ax.set_xlabel("completion length (tokens)")
    ax.set_ylabel("completions")
    ax.set_title("completion lengths")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    _save(fig, path)
    return True


def plot_diagnostics(rates: Mapping[str, Mapping[str, float | None]], path: Path) -> bool:
    """Grouped bars of the main diagnostic rates (%) per run, and doubt markers per 1k tokens beside them."""
    if not rates:
        return False
    plt = _pyplot()
    names = list(rates)
    colors = _colors(len(names))
    width = 0.8 / len(names)
    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.6), gridspec_kw={"width_ratios": [4, 1.3]})
    for j, (name, color) in enumerate(zip(names, colors)):
        xs = [i + (j - (len(names) - 1) / 2) * width for i in range(len(RATE_BARS))]
        values = [100 * (rates[name].get(key) or 0.0) for _, key in RATE_BARS]
        bars = left.bar(xs, values, width=width, color=color, label=name, alpha=0.85)
        _label_bars(left, bars, values, "{:.1f}")
    left.set_xticks(range(len(RATE_BARS)))
    left.set_xticklabels([label for label, _ in RATE_BARS], fontsize=8)
    left.set_ylabel("% of completions")
    left.set_ylim(0, max(1.0, _top(left)) * 1.15)
    left.set_title("reasoning diagnostics")
    left.grid(axis="y", alpha=0.3)
    left.legend(fontsize=8)
    doubts = [rates[n].get(DOUBT_KEY) or 0.0 for n in names]
    _label_bars(right, right.bar(names, doubts, color=colors, alpha=0.85), doubts, "{:.2g}")
    right.set_ylim(0, max(1.0, max(doubts)) * 1.15)
    right.set_title("doubt markers\nper 1k tokens", fontsize=10)
    right.tick_params(axis="x", labelsize=8, rotation=30)
    right.grid(axis="y", alpha=0.3)
    _save(fig, path)
    return True


def plot_loss(log_history: list[dict], path: Path) -> bool:
    """Training (and validation) loss against step; False when there is nothing to plot."""
    train = [(h["step"], h["loss"]) for h in log_history if "loss" in h and "step" in h]
    val = [(h["step"], h["eval_loss"]) for h in log_history if "eval_loss" in h]
    if not train:
        return False
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot(*zip(*train), label="train loss")
    if val:
        ax.plot(*zip(*val), marker="o", label="validation loss")
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("loss (completion tokens)")
    ax.grid(alpha=0.3)
    ax.legend()
    _save(fig, path)
    return True
