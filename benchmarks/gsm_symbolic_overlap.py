"""How much of reasoning-gym's `gsm_symbolic` is GSM8K test in disguise, and which decontamination catches it.

    python benchmarks/gsm_symbolic_overlap.py [--size 2000] [--out benchmarks/results/gsm_symbolic_overlap.md]

`gsm_symbolic` instantiates GSM-Symbolic templates (Mirzadeh et al. 2024), which were written from GSM8K **test**
questions with new names and numbers. Mixing it into a GSM8K recipe would train on test problems that a word 13-gram
check (GPT-3's, mathtune's default) partly misses. This counts the generated questions that each decontamination
setting drops against GSM8K test and, as a control, against GSM8K train (both ship with mathtune).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from mathtune.data.curation import decontaminate
from mathtune.data.sources import load_source
from mathtune.runs import atomic_write_text

SETTINGS = [(13, False), (13, True), (8, False), (8, True)]  # (n-gram, numbers ignored)


def main() -> None:
    """Generate the rows, decontaminate them under each setting, write a markdown table."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--out", default="benchmarks/results/gsm_symbolic_overlap.md")
    args = ap.parse_args()
    start = time.time()
    rows = load_source({"source": "reasoning_gym", "task": "gsm_symbolic", "size": args.size, "seed": args.seed})
    sets = {split: load_source({"source": "gsm8k", "split": split}) for split in ("test", "train")}
    lines = [
        "# reasoning-gym `gsm_symbolic` against GSM8K: share of generated questions each decontamination drops",
        "",
        f"Command: `python benchmarks/gsm_symbolic_overlap.py --size {args.size} --seed {args.seed}` "
        f"({len(rows)} generated questions; GSM8K test {len(sets['test'])}, train {len(sets['train'])}).",
        "",
        "| word n-gram | numbers | dropped against GSM8K test | dropped against GSM8K train |",
        "|---|---|---|---|",
    ]
    for n, ignore in SETTINGS:
        cells = []
        for split in ("test", "train"):
            _, dropped = decontaminate(rows, sets[split], ngram=n, ignore_numbers=ignore)
            cells.append(f"{len(dropped)} ({len(dropped) / len(rows):.1%})")
        lines.append(f"| {n} | {'ignored' if ignore else 'kept'} | {cells[0]} | {cells[1]} |")
    lines += ["", f"Pure Python, {time.time() - start:.0f} s."]
    atomic_write_text(Path(args.out), "\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
