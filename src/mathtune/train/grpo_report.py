"""The GRPO run report: rewards and guard-rails per step, held-out accuracy over training, plotted (`grpo.png`)."""

from __future__ import annotations

from pathlib import Path

from mathtune.config import Recipe
from mathtune.eval.report import paired_section
from mathtune.runs import atomic_write_text, save_png


def _mean(rows: list[dict], key: str, first: int, last: int) -> float | None:
    vals = [r[key] for r in rows if key in r and first <= r["step"] <= last and r[key] == r[key]]
    return sum(vals) / len(vals) if vals else None


def plot_grpo(history: list[dict], evals: dict[int, dict], reward_names: list[str], path: Path) -> bool:
    """Two panels: each reward's mean per step (with a 5-step moving average), held-out accuracy by step."""
    if not history and not evals:
        return False
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 3.8))
    for name in reward_names:
        pts = [(r["step"], r[f"rewards/{name}/mean"]) for r in history if f"rewards/{name}/mean" in r]
        if not pts:
            continue
        steps, vals = zip(*pts)
        line = left.plot(steps, vals, alpha=0.35)[0]
        smooth = [sum(vals[max(0, i - 4) : i + 1]) / len(vals[max(0, i - 4) : i + 1]) for i in range(len(vals))]
        left.plot(steps, smooth, color=line.get_color(), label=f"{name} (5-step mean)")
    left.set_xlabel("optimizer step")
    left.set_ylabel("mean reward of the step's completions")
    left.grid(alpha=0.3)
    left.legend(fontsize=8)
    pts = sorted((s, e["accuracy"], e.get("accuracy_low"), e.get("accuracy_high"))
                 for s, e in evals.items() if e.get("accuracy") is not None)
    if pts:
        steps, acc, low, high = zip(*pts)
        right.errorbar(steps, acc, yerr=[[a - lo for a, lo in zip(acc, low)], [hi - a for a, hi in zip(acc, high)]],
                       marker="o", capsize=3, label="held-out accuracy (95% Wilson)")
        right.set_ylim(0, 1)
    right.set_xlabel("optimizer step")
    right.set_ylabel("held-out accuracy (greedy)")
    right.grid(alpha=0.3)
    right.legend(fontsize=8)
    fig.tight_layout()
    save_png(fig, path)
    return True


def _pct(v) -> str:
    return "-" if v is None else f"{100 * v:.1f}%"


def _num(v) -> str:
    return "-" if v is None else f"{v:.3f}"


def eval_table(evals: dict[int, dict]) -> str:
    """Held-out accuracy, truncation, length and doubt diagnostics at each evaluated step."""
    out = ["| step | accuracy [95% CI] | n | truncated | mean tokens | doubt markers / completion | loop rate |",
           "|---|---|---|---|---|---|---|"]
    for step in sorted(evals):
        e, d = evals[step], evals[step].get("diagnostics", {})
        ci = f"{_pct(e.get('accuracy'))} [{_pct(e.get('accuracy_low'))}, {_pct(e.get('accuracy_high'))}]"
        out.append(f"| {step} | {ci} | {e['n_graded']} | {_pct(e.get('truncation_rate'))} | "
                   f"{e.get('mean_tokens', 0):.1f} | {_num(d.get('mean_doubt_markers'))} | {_pct(d.get('loop_rate'))} |")
    return "\n".join(out)


def reward_table(history: list[dict], reward_names: list[str], chunks: int = 4) -> str:
    """Reward means and guard-rail metrics averaged over equal spans of the run (start -> end)."""
    if not history:
        return "No training step was logged."
    steps = [r["step"] for r in history]
    lo, hi = min(steps), max(steps)
    size = max(1, -(-(hi - lo + 1) // chunks))
    keys = [f"rewards/{n}/mean" for n in reward_names] + ["signal_share", "completions/mean_length", "completions/clipped_ratio"]
    heads = reward_names + ["signal share", "mean completion tokens", "clipped"]
    out = ["| steps | " + " | ".join(heads) + " |", "|---" * (len(heads) + 1) + "|"]
    for first in range(lo, hi + 1, size):
        last = min(hi, first + size - 1)
        cells = [_num(_mean(history, k, first, last)) for k in keys]
        out.append(f"| {first}-{last} | " + " | ".join(cells) + " |")
    return "\n".join(out)


def write_grpo_report(run_dir: Path, recipe: Recipe, metrics: dict, history: list[dict], evals: dict[int, dict]) -> Path:
    """Write `report.md` and `grpo.png` into the run folder; return the report's path."""
    names = [r.name for r in recipe.grpo.rewards]
    has_plot = plot_grpo(history, evals, names, run_dir / "grpo.png")
    weights = ", ".join(f"{r.name} x{r.weight:g}" for r in recipe.grpo.rewards)
    out = [
        f"# mathtune GRPO run: {recipe.name}",
        "",
        f"Model `{recipe.model}`" + (f" starting from adapter `{recipe.grpo.adapter}`" if recipe.grpo.adapter else "")
        + f"; rewards {weights}; {metrics['rows']['train']} training prompts available, "
        f"{metrics['steps']} optimizer steps in {metrics['seconds'].get('train', 0) / 60:.1f} min.",
        "",
        "## Held-out evaluation over training",
        "",
        eval_table(evals) if evals else "No held-out evaluation was run.",
        "",
    ]
    if len(evals) >= 2:
        first, last = min(evals), max(evals)
        out += [paired_section(run_dir / "evals", f"step-{first:05d}", f"step-{last:05d}"), ""]
    out += ["## Rewards and guard-rails during training", "", reward_table(history, names), "",
            "Signal share: groups whose rewards were not all equal (only those carry a learning signal). "
            "Clipped: completions cut at max_completion_length."]
    if metrics.get("warnings"):
        out += ["", "## Warnings", ""] + [f"- {w}" for w in metrics["warnings"]]
    if has_plot:
        out += ["", "![rewards and held-out accuracy](grpo.png)"]
    path = run_dir / "report.md"
    atomic_write_text(path, "\n".join(out) + "\n")
    return path
