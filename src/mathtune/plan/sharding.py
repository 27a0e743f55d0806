"""Per-device memory of a launched training run (`mathtune train RECIPE --dry-run --num-processes N --strategy S`):
the single-device estimate (plan/memory.py) with each part divided the way the strategy divides it. Estimates,
counted from what each engine documents it keeps per device, not measured here (no multi-GPU machine):

- ddp: every device keeps everything; DDP adds flat gradient buckets, a copy of the trainable gradients.
- zero2 (DeepSpeed ZeRO-2): gradients and optimizer state divided by N; weights whole.
- fsdp (FSDP2 full shard) and zero3 (DeepSpeed ZeRO-3): weights, LoRA parameters, gradients and optimizer state
  divided by N, plus the unsharded working set: the largest wrapped unit gathered, twice (the one computing and the
  one prefetched).
Activations and the LM-head working set depend on the per-device batch, so they stay as they are.
"""

from __future__ import annotations

import dataclasses

from mathtune.plan.arch import Arch
from mathtune.plan.memory import Estimate, MemorySettings, Part, estimate_memory

STRATEGIES = ("ddp", "fsdp", "zero2", "zero3")
SHARDED = {"fsdp": ("weights", "LoRA parameters", "gradients", "optimizer state"),
           "zero3": ("weights", "LoRA parameters", "gradients", "optimizer state"),
           "zero2": ("gradients", "optimizer state"),
           "ddp": ()}
PREFETCHED_UNITS = 2  # the unit computing and the next one gathered ahead (FSDP forward/backward prefetch)


def largest_unit_bytes(arch: Arch, weight_bytes: int) -> tuple[float, str]:
    """Bytes of the biggest unit a sharded engine gathers whole: one decoder layer, or the embedding / LM head."""
    layer = sum(i * o for name, i, o in arch.linears if ".layers.0." in name) + 2 * arch.hidden
    embedding = arch.vocab * arch.hidden
    if embedding > layer:
        return embedding * weight_bytes, "the embedding / LM head"
    return layer * weight_bytes, "one decoder layer"


def sharded_estimate(arch: Arch, settings: MemorySettings, processes: int, strategy: str) -> Estimate:
    """The per-device estimate of `processes` devices under `strategy` (one of STRATEGIES)."""
    # under accelerate launch mathtune turns the compact LM head off (train/launched.py): TRL's head is counted
    settings = dataclasses.replace(settings, compact_head=False) if processes > 1 else settings
    base = estimate_memory(arch, settings)
    out = Estimate(unresolved=list(base.unresolved))
    shared = SHARDED[strategy] if processes > 1 else ()
    for part in base.parts:
        if part.name in shared:
            out.parts.append(Part(part.name, part.bytes / processes, f"{part.note}; / {processes} ({strategy})"))
        else:
            out.parts.append(part)
    if processes > 1 and strategy == "ddp":
        grads = base.get("gradients")
        out.parts.append(Part("DDP gradient buckets", grads, "a flat copy of the trainable gradients"))
    if processes > 1 and strategy in ("fsdp", "zero3"):
        unit, what = largest_unit_bytes(arch, settings.weight_bytes)
        out.parts.append(Part("gathered for compute", unit * PREFETCHED_UNITS,
                              f"{what} unsharded, x{PREFETCHED_UNITS} (computing + prefetched)"))
    return out
