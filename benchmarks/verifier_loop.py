"""The verifier loop on the embedded default, end to end on a CPU, and its numbers in benchmarks/results/verifier_loop.md.

    flock /tmp/mathtune-cpu.lock python benchmarks/verifier_loop.py            # ~10 min on 2 cores
    python benchmarks/verifier_loop.py --recipe tiny/verifier_default --set trainer.max_steps=20 --output runs/vl

Runs, as a user would:
  1. mathtune verifier train RECIPE -o OUT      sample k solutions per training problem and N per held-out problem,
                                                grade them, LoRA-train the verifier
  2. mathtune verifier eval OUT --untrained     the base model with the same prompt and head: "before training"
  3. mathtune verifier eval OUT                 the trained verifier on the same held-out rows
Held-out rows come from problems that share no question with the training problems (checked and counted below).
Every number in the results file is read from the run folder these commands write.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results" / "verifier_loop.md"


def run(cmd: list[str]) -> float:
    print("$", shlex.join(cmd), flush=True)
    start = time.time()
    subprocess.run(cmd, check=True)
    return time.time() - start


def pct(x) -> str:
    return "n/a" if x is None else f"{100 * x:.1f}%"


def num(x) -> str:
    return "n/a" if x is None else f"{x:.3f}"


def selection_table(before: list[dict], after: list[dict]) -> list[str]:
    lines = ["| N | majority vote | best-of-N, untrained | best-of-N, trained | weighted vote, untrained | "
             "weighted vote, trained | pass@N (any right) |", "|---|---|---|---|---|---|---|"]
    for b, a in zip(before, after):
        lines.append(f"| {a['n']} | {pct(a['majority'])} | {pct(b['best_of_n'])} | {pct(a['best_of_n'])} | "
                     f"{pct(b['weighted_vote'])} | {pct(a['weighted_vote'])} | {pct(a['pass'])} |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipe", default="tiny/verifier_default")
    parser.add_argument("--output", default=f"runs/verifier-loop-{time.strftime('%Y%m%d-%H%M%S')}")
    parser.add_argument("--set", action="append", default=[], dest="overrides")
    parser.add_argument("--results", default=str(RESULTS))
    args = parser.parse_args()
    out = Path(args.output)
    sets = [x for s in args.overrides for x in ("--set", s)]
    exe = [sys.executable, "-m", "mathtune"]
    seconds = {
        "data + train": run([*exe, "verifier", "train", args.recipe, "-o", str(out), *sets]),
        "eval untrained": run([*exe, "verifier", "eval", str(out), "--untrained"]),
        "eval trained": run([*exe, "verifier", "eval", str(out)]),
    }
    sys.path.insert(0, str(HERE.parent / "src"))
    from mathtune.verifier.data import read_rows, shared_questions

    balance = json.loads((out / "balance.json").read_text())
    before = json.loads((out / "eval" / "heldout-untrained" / "metrics.json").read_text())
    after = json.loads((out / "eval" / "heldout" / "metrics.json").read_text())
    log = json.loads((out / "train_log.json").read_text())
    steps = max((h.get("step", 0) for h in log["log_history"]), default=0)
    shared = shared_questions(read_rows(out / "train.jsonl"), read_rows(out / "eval.jsonl"))
    tr, ev = balance["train"], balance["eval"]
    command = "flock /tmp/mathtune-cpu.lock python benchmarks/verifier_loop.py " + " ".join(
        shlex.quote(a) for a in sys.argv[1:])
    lines = [
        "# Verifier loop on the embedded default (SmolLM2-135M-Instruct), CPU",
        "",
        f"Command: `{command.strip()}` (recipe `{args.recipe}`{', overrides ' + ', '.join(args.overrides) if args.overrides else ''}).",
        f"Machine: {platform.machine()}, {os.cpu_count()} CPU cores, shared with other work; no GPU. "
        f"Run folder: `{out}` (not kept in git). Measured {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}.",
        "",
        "## Labelled rows (solutions sampled from the untuned default model, graded by the evaluation grader)",
        "",
        "| split | rows | correct | problems | all correct / all wrong / mixed |",
        "|---|---|---|---|---|",
        f"| train | {tr['rows']} | {tr['correct']} ({pct(tr['share_correct'])}) | {tr['problems']} | "
        f"{tr['problems_all_correct']} / {tr['problems_all_incorrect']} / {tr['problems_mixed']} |",
        f"| held out | {ev['rows']} | {ev['correct']} ({pct(ev['share_correct'])}) | {ev['problems']} | "
        f"{ev['problems_all_correct']} / {ev['problems_all_incorrect']} / {ev['problems_mixed']} |",
        "",
        f"Held-out questions also among the training rows: {shared}. Training: {steps} optimizer steps.",
        "",
        "## Verifier on the held-out rows",
        "",
        "| | untrained (base model, same prompt) | trained |",
        "|---|---|---|",
    ]
    for label, key in (("AUROC", "auroc"), ("accuracy at 0.5", "accuracy"), ("precision", "precision"),
                       ("recall", "recall"), ("F1", "f1"), ("ECE (10 bins)", "ece"), ("mean score", "mean_score")):
        lines.append(f"| {label} | {num(before[key])} | {num(after[key])} |")
    lines += ["", "Reliability plots: `OUT/eval/heldout-untrained/reliability.png`, `OUT/eval/heldout/reliability.png`.",
              "", "## Choosing one answer among each held-out problem's samples", ""]
    if after.get("selection"):
        n_problems = after["selection"][0]["problems"]
        lines += [f"{n_problems} held-out problems. Accuracy at N averages over each problem's disjoint blocks of N "
                  "samples (so N=1 is the mean single-sample accuracy). Majority vote and pass@N do not use the "
                  "verifier.", ""]
        lines += selection_table(before["selection"], after["selection"])
    lines += ["", "## Wall time (seconds)", "", "| step | seconds |", "|---|---|"]
    lines += [f"| {k} | {v:.0f} |" for k, v in seconds.items()]
    Path(args.results).write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
