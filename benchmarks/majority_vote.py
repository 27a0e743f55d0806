"""Majority vote (self-consistency, Wang et al. 2022) over sampled GSM8K completions, paired against greedy runs.

`mathtune eval --samples K` writes maj@k into its summary but no interval or paired test; this script adds them from
the committed samples: maj@k per problem (votes grouped by mathtune's grader, `is_equiv`), Wilson 95% interval,
McNemar and paired bootstrap against each greedy run given, pairing by question text as `mathtune compare` does.

    python benchmarks/majority_vote.py --sampled benchmarks/results/gsm8k_calculator/tuned-calc-maj4 \
      --against baseline=benchmarks/results/gsm8k_calculator/baseline \
      --against tuned-greedy=benchmarks/results/gsm8k_calculator/tuned-calc --output majority_vote.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from mathtune.answers.equiv import is_equiv
from mathtune.eval.compare import load_evaluation
from mathtune.eval.metrics import accuracy_ci, majority_index, mcnemar, paired_bootstrap


def votes(problems: dict[str, list[dict]], k: int) -> dict[str, bool]:
    """Question key -> whether the majority answer of its first k samples is right (no answer at all: wrong)."""
    out = {}
    for q, samples in problems.items():
        group = samples[:k]
        if len(group) < k:
            raise SystemExit(f"{q[:60]!r}: {len(group)} samples, fewer than k={k}")
        i = majority_index([r["extracted"] for r in group], is_equiv)
        out[q] = i is not None and bool(group[i]["correct"])
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sampled", type=Path, required=True, help="evaluation folder of `mathtune eval --samples K`")
    ap.add_argument("--against", action="append", default=[], help="NAME=FOLDER of a greedy evaluation")
    ap.add_argument("--output", type=Path, required=True)
    args = ap.parse_args()
    problems = load_evaluation(args.sampled, "sampled").problems  # paired by question text, as `mathtune compare`
    samples = max(len(group) for group in problems.values())
    result: dict = {"sampled": str(args.sampled), "samples": samples, "vote": "grouped by mathtune's is_equiv",
                    "by_k": {}}
    ks = [k for k in (1, 2, 4, 8, 16, 32, 64) if k <= samples]
    others = {}
    for spec in args.against:
        name, _, folder = spec.partition("=")
        greedy = load_evaluation(Path(folder), name).problems
        others[name] = {q: bool(group[0]["correct"]) for q, group in greedy.items()}
    for k in ks:
        mine = votes(problems, k)
        ci = accuracy_ci(list(mine.values()))
        row = {"n": len(mine), "accuracy": ci.value, "low": ci.low, "high": ci.high, "vs": {}}
        for name, theirs in others.items():
            shared = [q for q in mine if q in theirs]
            a, b = [theirs[q] for q in shared], [mine[q] for q in shared]
            m, boot = mcnemar(a, b), paired_bootstrap(a, b)
            row["vs"][name] = {"n": len(shared), "their_accuracy": sum(a) / len(a), "delta": boot.diff,
                               "delta_low": boot.low, "delta_high": boot.high, "gained": m.b01, "lost": m.b10,
                               "mcnemar_p": m.p_value}
        result["by_k"][f"maj@{k}"] = row
        vs = "; ".join(f"vs {n} {100 * v['delta']:+.1f} ({v['gained']}/{v['lost']}, p={v['mcnemar_p']:.2g})"
                       for n, v in row["vs"].items())
        print(f"maj@{k}: {100 * ci.value:.1f}% [{100 * ci.low:.1f}, {100 * ci.high:.1f}] n={len(mine)}  {vs}")
    tmp = args.output.with_suffix(".tmp")
    tmp.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    tmp.replace(args.output)  # atomic: an interrupted run leaves the previous file whole


if __name__ == "__main__":
    main()
