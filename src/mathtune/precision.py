"""Compute precision by what the processor can do: bf16 where it multiplies bf16 fast, fp32 where it does not.

    from mathtune.precision import decide_precision
    dtype, reason = decide_precision("auto", "cpu")   # e.g. (torch.bfloat16, "cpu: amx_bf16 in /proc/cpuinfo ...")

CPUs differ: on AMD Zen3 (AVX2, no bf16 instructions) a bf16 matmul runs 15-60x slower than fp32, emulated; on CPUs
with AMX tiles (Intel Sapphire Rapids and later) it runs several times faster than fp32; with AVX512-BF16 alone
(AMD Zen4, Intel Cooper Lake) or Arm BF16 it is usually faster, but by how much depends on the core, so a short matmul
probe decides there. The probe's figures are cached per machine (CPU model, flags, torch version, threads) under
MATHTUNE_HOME, so a run pays for it once. On CUDA the existing choice stays: TRL's bf16 autocast where the GPU has
bf16. Importing this module imports no torch; deciding does.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import platform
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mathtune.errors import UserError

log = logging.getLogger(__name__)

PRECISIONS = ("auto", "fp32", "bf16")
# cpuinfo flags that bear on the choice (x86 `flags`, Arm `Features`); recorded by the benchmarks
RELEVANT_FLAGS = ("avx2", "avx512f", "avx512_bf16", "amx_bf16", "avx_vnni", "bf16")
# bf16 must beat fp32 by this much on the probe: autocast adds casts and leaves norms, softmax, the optimizer and the
# LoRA update in fp32, so a small matmul lead does not make a faster training step.
MIN_PROBE_SPEEDUP = 1.5
PROBE_SHAPE = (256, 576, 1536)  # rows x in x out: one MLP projection of the default model on a slice of a batch
PROBE_BUDGET_S = 0.15  # per dtype: an emulated bf16 matmul (~1.5 GFLOP/s) stops after one repetition
PROBE_VERSION = 1


@dataclass
class CpuInfo:
    """What the decision looks at: the CPU model, its cpuinfo flags and torch's reported vector capability."""

    model: str
    flags: set[str] = field(default_factory=set)
    capability: str = "unknown"  # torch.backends.cpu.get_cpu_capability(): DEFAULT, AVX2, AVX512, SVE256, ...
    readable: bool = True  # False where /proc/cpuinfo is missing (macOS, Windows): flags unknown

    def relevant_flags(self) -> list[str]:
        """The flags among RELEVANT_FLAGS this CPU has (x86 names; `bf16` is Arm's)."""
        return [f for f in RELEVANT_FLAGS if f in self.flags]


def read_cpu_info(cpuinfo: Path = Path("/proc/cpuinfo")) -> CpuInfo:
    """The CPU model and flags from /proc/cpuinfo (first processor) and torch's capability."""
    model, flags, readable = platform.processor() or platform.machine(), set(), False
    try:
        text = cpuinfo.read_text(errors="replace")
        readable = True
    except OSError:
        text = ""
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip().lower()
        if key in ("model name", "cpu model") and value.strip():
            model = value.strip()
        elif key in ("flags", "features") and not flags:
            flags = set(value.split())
    return CpuInfo(model=model, flags=flags, capability=torch_capability(), readable=readable)


def torch_capability() -> str:
    """torch's CPU vector capability (what its own kernels dispatch to)."""
    import torch

    try:
        return str(torch.backends.cpu.get_cpu_capability())
    except (AttributeError, RuntimeError):
        return "unknown"


def matmul_probe(shape: tuple[int, int, int] = PROBE_SHAPE, budget_s: float = PROBE_BUDGET_S) -> dict[str, float]:
    """GFLOP/s of an fp32 and a bf16 (m x k) @ (k x n) matmul: best repetition within `budget_s` per dtype."""
    import torch

    m, k, n = shape
    dtypes = {"fp32": torch.float32, "bf16": torch.bfloat16}
    operands = {name: (torch.randn(m, k).to(dt), torch.randn(k, n).to(dt)) for name, dt in dtypes.items()}
    best = {name: float("inf") for name in dtypes}
    spent = {name: 0.0 for name in dtypes}
    for rep in range(8):  # the dtypes take turns, so a burst of load from elsewhere hits both alike
        for name, (a, b) in operands.items():
            if spent[name] > budget_s and best[name] < float("inf"):
                continue
            start = time.perf_counter()
            a @ b
            took = time.perf_counter() - start
            spent[name] += took
            if rep or took > budget_s:  # the first call pays for oneDNN's kernel selection, unless it is all we get
                best[name] = min(best[name], took)
    return {name: 2 * m * k * n / best[name] / 1e9 for name in dtypes}


def machine_key(cpu: CpuInfo) -> str:
    """What the probe's result depends on: CPU model and flags, torch version, threads."""
    import torch

    text = json.dumps([PROBE_VERSION, cpu.model, sorted(cpu.flags), cpu.capability, torch.__version__,
                       torch.get_num_threads()])
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def default_home() -> Path:
    """mathtune's cache folder, as the CLI resolves it: $MATHTUNE_HOME, else the user cache dir."""
    # read here rather than passed down because decide_precision's callers (training, generation) have no home
    env = os.environ.get("MATHTUNE_HOME")
    if env:
        return Path(env).expanduser()
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("mathtune"))


def cached_probe(cpu: CpuInfo, home: Path | None = None) -> tuple[dict[str, float], bool]:
    """The probe's figures for this machine, from the cache when there, else measured and cached; (figures, cached)."""
    path = (home or default_home()) / "precision" / f"probe-{machine_key(cpu)}.json"
    try:
        data = json.loads(path.read_text())
        return {"fp32": float(data["fp32"]), "bf16": float(data["bf16"])}, True
    except (OSError, ValueError, KeyError, TypeError):
        pass
    figures = matmul_probe()
    try:  # a cache that cannot be written costs the next run another probe, nothing else
        from mathtune.runs import atomic_write_json

        atomic_write_json(path, {**figures, "cpu": cpu.model, "shape": list(PROBE_SHAPE), "flags": sorted(cpu.flags)})
    except OSError as exc:
        log.warning("precision probe: could not cache %s (%s)", path, exc)
    return figures, False


def cpu_verdict(cpu: CpuInfo) -> tuple[str, str]:
    """From the flags alone: 'fast' (AMX bf16 tiles), 'none' (no bf16 instructions) or 'ambiguous', and why."""
    if "amx_bf16" in cpu.flags and cpu.capability.startswith("AVX512"):
        return "fast", f"amx_bf16 in cpuinfo, torch capability {cpu.capability}"
    if not cpu.readable or not cpu.flags:
        return "ambiguous", "cpu flags unknown (no /proc/cpuinfo)"
    has = [f for f in ("amx_bf16", "avx512_bf16", "bf16") if f in cpu.flags]
    if not has:
        return "none", f"no bf16 instructions in cpuinfo (bf16 is emulated), torch capability {cpu.capability}"
    return "ambiguous", f"{', '.join(has)} in cpuinfo, torch capability {cpu.capability}"


def decide_precision(requested: str, device: Any = "cpu", *, home: Path | None = None,
                     cpu: CpuInfo | None = None) -> tuple[Any, str]:
    """The compute dtype for `device` (torch.bfloat16 or torch.float32) for `requested` auto|fp32|bf16, and why."""
    import torch

    if requested not in PRECISIONS:
        raise UserError(f"speed.precision: {requested!r} is not a precision; expected one of: {', '.join(PRECISIONS)}")
    kind = getattr(device, "type", str(device)).split(":")[0]
    if requested == "fp32":
        return torch.float32, "fp32 asked for (speed.precision: fp32)"
    if kind == "cuda":
        if requested == "bf16" or torch.cuda.is_bf16_supported():
            return torch.bfloat16, "cuda: bf16 autocast (TRL's default on a GPU with bf16)"
        return torch.float32, "cuda: this GPU has no bf16"
    cpu = cpu or read_cpu_info()
    verdict, why = cpu_verdict(cpu)
    figures: dict[str, float] | None = None
    if verdict == "ambiguous" or (requested == "bf16" and verdict == "none"):
        figures, cached = cached_probe(cpu, home)
        why += (f"; matmul probe{' (cached)' if cached else ''} {PROBE_SHAPE[0]}x{PROBE_SHAPE[1]}x{PROBE_SHAPE[2]}: "
                f"fp32 {figures['fp32']:.1f} GFLOP/s, bf16 {figures['bf16']:.1f} GFLOP/s")
    fast = verdict == "fast" or (figures is not None and figures["bf16"] >= MIN_PROBE_SPEEDUP * figures["fp32"])
    if requested == "bf16":
        if not fast:
            log.warning("speed.precision: bf16 on a CPU without fast bf16 will be slow (%s)", why)
        return torch.bfloat16, f"bf16 asked for (speed.precision: bf16); cpu: {why}"
    if fast:
        return torch.bfloat16, f"auto -> bf16: {why}"
    if figures is not None:
        return torch.float32, f"auto -> fp32: {why} (bf16 needs {MIN_PROBE_SPEEDUP}x fp32)"
    return torch.float32, f"auto -> fp32: {why}"
