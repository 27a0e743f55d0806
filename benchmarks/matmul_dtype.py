"""Compare fp32 and bf16 matrix-multiply throughput on this machine's CPU, in one run.

    python benchmarks/matmul_dtype.py            # prints GFLOP/s per dtype and appends them to results/matmul_dtype.md

Why it exists: TRL defaults to bf16 autocast; mathtune turns it off on CPU when bf16 is this much slower.
"""

from __future__ import annotations

import platform
import time
from pathlib import Path

import torch


def gflops(dtype: torch.dtype, n: int = 512, reps: int = 3) -> float:
    """Best-of-`reps` GFLOP/s of an n x n matmul in `dtype`."""
    a = torch.randn(n, n).to(dtype)
    a @ a  # warm-up
    best = float("inf")
    for _ in range(reps):
        start = time.perf_counter()
        a @ a
        best = min(best, time.perf_counter() - start)
    return 2 * n**3 / best / 1e9


def main() -> None:
    """Measure both dtypes and append a row to the results file."""
    fp32, bf16 = gflops(torch.float32), gflops(torch.bfloat16)
    row = (f"| {time.strftime('%Y-%m-%d')} | {platform.processor() or platform.machine()} | "
           f"{torch.get_num_threads()} | {torch.__version__} | {fp32:.1f} | {bf16:.2f} | {fp32 / bf16:.0f}x |")
    print(row)
    out = Path(__file__).parent / "results" / "matmul_dtype.md"
    if not out.exists():
        out.write_text("# fp32 vs bf16 matmul on CPU (512x512, best of 3)\n\n`python benchmarks/matmul_dtype.py`\n\n"
                       "| date | cpu | threads | torch | fp32 GFLOP/s | bf16 GFLOP/s | fp32/bf16 |\n|---|---|---|---|---|---|---|\n")
    with out.open("a") as fh:
        fh.write(row + "\n")


if __name__ == "__main__":
    main()
