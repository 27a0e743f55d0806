"""The GRPO run report: objective, rewards and guard-rails per step, held-out accuracy, plotted (`grpo.png`)."""

from __future__ import annotations

from pathlib import Path

from mathtune.config import Recipe
from mathtune.eval.report import paired_section
from mathtune.runs import atomic_write_text, save_png


def _mean(rows: list[dict], key: str, first: int, last: int) -> float | None:
    vals = [r[key] for r in rows if key in r and first <= r["step"] <= last and r[key] == r[key]]
    return sum(vals) / len(vals) if vals else None


def _smoothed(axis, history: list[dict], key: str, label: str) -> None:
    pts = [(r["step"], r[key]) for r in history if r.get(key) is not None and r[key] == r[key]]
    if not pts:
        return
    steps, vals = zip(*pts)
    line = axis.plot(steps, vals, alpha=0.35)[0]
    smooth = [sum(vals[max(0, i - 4) : i + 1]) / len(vals[max(0, i - 4) : i + 1]) for i in range(len(vals))]
    axis.plot(steps, smooth, color=line.get_color(), label=f"{label} (5-step mean)")


def plot_grpo(history: list[dict], evals: dict[int, dict], reward_names: list[str], path: Path) -> bool:
    """Four panels by step: reward means, held-out accuracy, signal share (and dropped share), completion length."""
    if not history and not evals:
        return False
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 2, figsize=(11, 7.2))
    rewards, accuracy, signal, length = axes.flat
    for name in reward_names:
        _smoothed(rewards, history, f"rewards/{name}/mean", name)
    rewards.set_ylabel("mean reward of the step's completions")
    pts = sorted((s, e["accuracy"], e.get("accuracy_low"), e.get("accuracy_high"))
                 for s, e in evals.items() if e.get("accuracy") is not None)
    if pts:
        steps, acc, low, high = zip(*pts)
        accuracy.errorbar(steps, acc, yerr=[[a - lo for a, lo in zip(acc, low)], [hi - a for a, hi in zip(acc, high)]],
                          marker="o", capsize=3, label="held-out accuracy (95% Wilson)")
        accuracy.set_ylim(0, 1)
    accuracy.set_ylabel("held-out accuracy (greedy)")
    _smoothed(signal, history, "signal_share", "groups with a reward spread")
    _smoothed(signal, history, "dynamic_sampling/dropped_share", "dropped by dynamic sampling")
    signal.set_ylim(-0.05, 1.05)
    signal.set_ylabel("share of groups")
    _smoothed(length, history, "completions/mean_length", "mean completion tokens")
    length.set_ylabel("tokens")
    for axis in axes.flat:
        axis.set_xlabel("optimizer step")
        axis.grid(alpha=0.3)
        if axis.get_legend_handles_labels()[0]:
            axis.legend(fontsize=8)
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
    if any("dynamic_sampling/dropped_share" in r for r in history):
        keys += ["dynamic_sampling/dropped_share", "dynamic_sampling/tries", "dynamic_sampling/filled_share"]
        heads += ["dropped (no spread)", "generation rounds", "batch with signal"]
    out = ["| steps | " + " | ".join(heads) + " |", "|---" * (len(heads) + 1) + "|"]
    for first in range(lo, hi + 1, size):
        last = min(hi, first + size - 1)
        cells = [_num(_mean(history, k, first, last)) for k in keys]
        out.append(f"| {first}-{last} | " + " | ".join(cells) + " |")
    return "\n".join(out)


def objective_lines(obj: dict) -> list[str]:
    """The loss and sampling settings the run optimised with (TRL's loss_type, importance sampling, samplers)."""
    if not obj:
        return []
    dyn, rate = obj["dynamic_sampling"], obj["pass_rate"]
    lines = [f"- loss_type `{obj['loss_type']}`, importance_sampling_level `{obj['importance_sampling_level']}`, "
             f"scale_rewards `{obj['scale_rewards']}`, beta {obj['beta']}, clip epsilon {obj['epsilon']}",
             f"- {obj['num_generations']} completions per prompt, {obj['generation_batch_size']} per generation batch, "
             f"temperature {obj['temperature']}, max_completion_length {obj['max_completion_length']}",
             "- dynamic sampling: " + (f"on, up to {dyn['max_tries']} generation rounds per batch" if dyn["enabled"]
                                       else "off")]
    if rate["enabled"]:
        cur = rate["curriculum"]
        lines.append(f"- pass-rate filter: k={rate['k']} samples per prompt, band {rate['band']}" + (
            f", re-estimated every {cur['every']} steps, band shifted {cur['shift']:+g} each time" if cur["every"] else ""))
    else:
        lines.append("- pass-rate filter: off")
    return lines


def truncation_line(history: list[dict], evals: dict[int, dict], max_len) -> str:
    """The share of training completions cut at max_completion_length (whole run, last steps) and of the last eval."""
    clipped = [r["completions/clipped_ratio"] for r in history if r.get("completions/clipped_ratio") is not None]
    if not clipped:
        return "No training completion was logged."
    tail = clipped[-max(1, len(clipped) // 4):]
    text = (f"Truncation: {_pct(sum(clipped) / len(clipped))} of training completions were cut at "
            f"max_completion_length = {max_len} over the run ({_pct(sum(tail) / len(tail))} in the last quarter)")
    if evals:
        last = evals[max(evals)]
        text += f"; {_pct(last.get('truncation_rate'))} of held-out completions at the last evaluation"
    return text + "."


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
    ]
    obj = metrics.get("objective") or {}
    out += ["## Objective", ""] + objective_lines(obj) + [""]
    if metrics.get("curriculum"):
        out += ["Curriculum refreshes: " + "; ".join(
            f"step {c['step']}: band {c['band']}, {c['kept']} of {c['judged']} prompts"
            + (" (too few: previous pool kept)" if c.get("kept_previous") else "") for c in metrics["curriculum"]), ""]
    out += ["## Held-out evaluation over training", "",
            eval_table(evals) if evals else "No held-out evaluation was run.", ""]
    if len(evals) >= 2:
        first, last = min(evals), max(evals)
        out += [paired_section(run_dir / "evals", f"step-{first:05d}", f"step-{last:05d}"), ""]
    out += ["## Rewards and guard-rails during training", "", reward_table(history, names), "",
            "Signal share: groups whose rewards were not all equal (only those carry a learning signal), over every "
            "group generated. Clipped: completions cut at max_completion_length. With dynamic sampling: the share of "
            "generated groups dropped for having no spread, generation rounds per batch, and the share of the trained "
            "batch made of groups with a spread.", "", truncation_line(history, evals, obj.get("max_completion_length"))]
    stopped = (metrics.get("guard_rails") or {}).get("stopped")
    if stopped:
        out += ["", f"**Training stopped early by a guard-rail:** {stopped}"]
    if metrics.get("warnings"):
        out += ["", "## Warnings", ""] + [f"- {w}" for w in metrics["warnings"]]
    if has_plot:
        out += ["", "![rewards and held-out accuracy](grpo.png)"]
    path = run_dir / "report.md"
    atomic_write_text(path, "\n".join(out) + "\n")
    return path
