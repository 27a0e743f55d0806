"""LoRA dropout mask cost: torch's dropout against mathtune's FastDropout, in one process, on one input shape.

    flock /tmp/mathtune-cpu.lock python benchmarks/dropout_mask.py        # a few seconds

The shape is what one LoRA module of the default model sees in a `mathtune bench train` step (~1,700 tokens x 576
hidden). Ways: `F.dropout` (what PEFT's nn.Dropout runs), `bernoulli_` alone (its mask), mathtune's mask alone
(`bernoulli_keep_mask`) and `FastDropout` whole (mask + scale + multiply). Milliseconds per call, best of 5 rounds of
20 calls; writes benchmarks/results/dropout_mask.md.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from mathtune.train.dropout import FastDropout, bernoulli_keep_mask
from mathtune.train.speed import machine

OUT = Path(__file__).resolve().parent / "results" / "dropout_mask.md"
SHAPE, P = (1700, 576), 0.05


def ms_per_call(fn, calls: int = 20, rounds: int = 5) -> float:
    """Best round's milliseconds per call."""
    fn()
    best = float("inf")
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(calls):
            fn()
        best = min(best, (time.perf_counter() - start) / calls * 1e3)
    return best


def main() -> None:
    torch.manual_seed(0)
    x = torch.randn(*SHAPE)
    fast = FastDropout(P).train()
    ways = {
        "torch `F.dropout` (PEFT's nn.Dropout)": lambda: F.dropout(x, P, True),
        "torch `bernoulli_` mask alone": lambda: torch.empty_like(x).bernoulli_(1 - P),
        "mathtune `bernoulli_keep_mask` alone": lambda: bernoulli_keep_mask(x.shape, P),
        "mathtune `FastDropout` (mask, scale, multiply)": lambda: fast(x),
    }
    rows = [(name, ms_per_call(fn)) for name, fn in ways.items()]
    load = os.getloadavg()[0]
    lines = [
        "# LoRA dropout mask cost", "",
        f"`python benchmarks/dropout_mask.py`: input {SHAPE[0]}x{SHAPE[1]} fp32, p = {P}; best of 5 rounds of 20 calls;",
        f"machine: {machine()}; load average (1 min) {load:.2f}.", "",
        "| way | ms per call |", "|---|---|", *[f"| {name} | {ms:.2f} |" for name, ms in rows], "",
    ]
    OUT.write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
