"""Per-example causal attention of a packed row on a CPU: bf16 q/k/v through torch's flash kernel in bf16, or cast to
fp32 first (what mathtune.train.varlen does under CPU bf16 autocast). Forward + backward, the default model's heads.

    flock /tmp/mathtune-cpu.lock python benchmarks/varlen_attention_dtype.py    # ~30 s; writes the results file

Shapes: 9 query heads of 64 (the 3 key/value heads already repeated, as varlen does), one example of L tokens;
each way's median over 30 interleaved repetitions (3 warm-up left out).
Writes benchmarks/results/varlen_attention_dtype.md.
"""

from __future__ import annotations

import os
import statistics
import time
from pathlib import Path

import torch
import torch.nn.functional as F

OUT = Path(__file__).resolve().parent / "results/varlen_attention_dtype.md"


def one(way: str, length: int) -> float:
    """Seconds for one forward + backward of the way at `length` tokens."""
    q, k, v = (torch.randn(1, 9, length, 64, dtype=torch.bfloat16, requires_grad=True) for _ in range(3))
    start = time.perf_counter()
    if way == "bf16":
        out = F.scaled_dot_product_attention(q, k, v, is_causal=True, scale=0.125)
    else:
        out = F.scaled_dot_product_attention(q.float(), k.float(), v.float(), is_causal=True, scale=0.125)
        out = out.to(torch.bfloat16)
    out.float().sum().backward()
    return time.perf_counter() - start


def main() -> None:
    from mathtune.precision import read_cpu_info

    cpu = read_cpu_info()

    def yes(flag: str) -> str:
        return "yes" if flag in cpu.flags else "no"

    torch.manual_seed(0)
    rows = ["| example length | bf16 flash (ms) | fp32 flash incl. casts (ms) | bf16 / fp32 |", "|---|---|---|---|"]
    load = os.getloadavg()[0]
    for length in (60, 120, 220, 400, 800):
        times: dict[str, list[float]] = {"bf16": [], "fp32": []}
        for _ in range(30):
            for way in times:
                times[way].append(one(way, length))
        b, f = (statistics.median(times[w][3:]) * 1e3 for w in ("bf16", "fp32"))
        rows.append(f"| {length} | {b:.2f} | {f:.2f} | {b / f:.2f}x |")
    head = [
        "# Packed-row attention on a CPU: bf16 or fp32 inside the per-example SDPA calls", "",
        "`flock /tmp/mathtune-cpu.lock python benchmarks/varlen_attention_dtype.py` (forward + backward of one "
        "example, 9 heads of 64, median of 30 interleaved repetitions).", "",
        f"- machine: {cpu.model}, {os.cpu_count()} cores; avx512_bf16 {yes('avx512_bf16')}, amx_bf16 "
        f"{yes('amx_bf16')}; torch {torch.__version__} "
        f"({torch.get_num_threads()} threads); load average (1 min) {load:.2f} before, {os.getloadavg()[0]:.2f} after",
        "- GSM8K chain-of-thought examples of the training benchmark average ~215 tokens (1,718 real tokens per batch "
        "of 8, benchmarks/results/train_speed.md)", "",
    ]
    OUT.write_text("\n".join(head + rows) + "\n")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
