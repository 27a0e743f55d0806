"""The default GRPO recipe measured against issue 18's target; results in benchmarks/results/grpo_default.json.

    flock /tmp/mathtune-cpu.lock nice -n 19 python benchmarks/grpo_default.py --output runs/grpo-default   # ~30 min
    python benchmarks/grpo_default.py --run runs/grpo-default --previous benchmarks/results/grpo_default_noscale

Runs `mathtune grpo` (the embedded tiny/grpo_default recipe, or --recipe) unless --run names a finished run folder,
then reads its held-out evaluations (RUN/evals/step-N/samples.jsonl) and writes the per-evaluation accuracies,
McNemar p of the last evaluation against step 0 and the target's checks (end >= step 0 + 15 points with p < 0.01;
no later evaluation more than 5 points below the best) to the results JSON. With --previous, one plot beside the
results file (grpo_default.json -> grpo_default_levers.png) draws held-out accuracy, reward, signal share and
completion length by step for this run and for the previous configuration's run folder, so what the levers changed
is visible side by side.
Every number written is read from the run folders.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks/results"


def verdicts(samples: Path) -> dict[int, bool]:
    """Problem index -> first sample's verdict (ungradable problems left out)."""
    out = {}
    for line in samples.read_text().splitlines():
        rec = json.loads(line)
        if rec["sample"] == 0 and rec["correct"] is not None:
            out[rec["index"]] = bool(rec["correct"])
    return out


def summarise(run: Path) -> dict:
    """Per-evaluation accuracies on the problems every evaluation graded, McNemar end vs start, the target checks."""
    from mathtune.eval.metrics import mcnemar

    folders = sorted((run / "evals").glob("step-*"))
    by_step = {int(f.name.split("-")[1]): verdicts(f / "samples.jsonl") for f in folders}
    common = sorted(set.intersection(*(set(v) for v in by_step.values())))
    steps = sorted(by_step)
    accuracy = [sum(by_step[s][i] for i in common) / len(common) for s in steps]
    test = mcnemar([by_step[steps[0]][i] for i in common], [by_step[steps[-1]][i] for i in common])
    gain, worst_after_best = accuracy[-1] - accuracy[0], max(accuracy) - min(accuracy[accuracy.index(max(accuracy)):])
    return {
        "run": str(run), "steps": steps, "accuracy": accuracy, "n_heldout": len(common),
        "p_value_end_vs_start": test.p_value, "mcnemar": {"gained": test.b01, "lost": test.b10, "method": test.method},
        "gain_points": 100 * gain, "largest_drop_after_best_points": 100 * worst_after_best,
        "target_met": bool(gain >= 0.15 and test.p_value < 0.01 and worst_after_best <= 0.05 and len(common) >= 100),
    }


def plot_levers(runs: dict[str, Path], path: Path) -> None:
    """Held-out accuracy, accuracy reward, signal share and completion length by step, one line per run."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from mathtune.runs import save_png

    fig, axes = plt.subplots(2, 2, figsize=(11, 7.2))
    panels = [("held-out accuracy", None), ("accuracy reward", "rewards/accuracy/mean"),
              ("signal share", "signal_share"), ("mean completion tokens", "completions/mean_length")]
    for label, run in runs.items():
        metrics = json.loads((run / "metrics.json").read_text())
        evals = sorted((int(s), e["accuracy"]) for s, e in metrics["evals"].items() if e.get("accuracy") is not None)
        axes[0, 0].plot(*zip(*evals), marker="o", label=label)
        for axis, (_, key) in zip(axes.flat[1:], panels[1:]):
            pts = [(r["step"], r[key]) for r in metrics["history"] if r.get(key) is not None]
            if pts:
                axis.plot(*zip(*pts), alpha=0.8, label=label)
    for axis, (title, _) in zip(axes.flat, panels):
        axis.set_title(title, fontsize=10)
        axis.set_xlabel("optimizer step")
        axis.grid(alpha=0.3)
        axis.legend(fontsize=8)
    fig.tight_layout()
    save_png(fig, path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipe", default=None, help="GRPO recipe (default: the embedded tiny/grpo_default)")
    parser.add_argument("--output", type=Path, default=None, help="run folder for a new run")
    parser.add_argument("--run", type=Path, default=None, help="a finished run folder: summarise it, run nothing")
    parser.add_argument("--previous", type=Path, default=None, help="the previous configuration's run folder")
    parser.add_argument("--results", type=Path, default=RESULTS / "grpo_default.json")
    args = parser.parse_args()
    run, seconds = args.run, None
    if run is None:
        run = args.output or ROOT / "runs" / time.strftime("grpo-default-%Y%m%d-%H%M%S")
        start = time.time()
        subprocess.run([sys.executable, "-m", "mathtune", "grpo", *([args.recipe] if args.recipe else []),
                        "--output", str(run)], check=True)
        seconds = time.time() - start
    result = {**summarise(run), "wall_seconds": seconds}
    if args.previous is not None:
        result["previous"] = summarise(args.previous) if (args.previous / "evals").is_dir() else str(args.previous)
        # beside the results file (grpo_default.json -> grpo_default_levers.png), so a variant keeps its own plot
        plot = args.results.with_name(args.results.stem + "_levers.png")
        plot_levers({"this run": run, "previous configuration": args.previous}, plot)
    from mathtune.runs import atomic_write_json

    atomic_write_json(args.results, result)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
