"""Memory estimate vs measured peak on CPU: a few real LoRA training steps of the embedded default model.

    flock /tmp/mathtune-cpu.lock python benchmarks/memory_estimate.py        # writes benchmarks/results/memory_estimate.md

Each setting runs in its own process: resident memory (VmRSS) is read before the model is loaded, the kernel's
high-water mark (VmHWM) is reset with /proc/self/clear_refs once the trainer is built, and read again after the
steps. Measured = peak - RSS before loading: weights, LoRA, gradients, optimizer state, activations and every
temporary of the steps. Every row is truncated to max_length, so each batch is exactly batch x max_length tokens,
the length the estimate assumes.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# (batch, max_length, gradient checkpointing)
SETTINGS = [(2, 256, False), (4, 256, True)]
# Pins glibc malloc to mmap for every block above 64 KiB, so freed tensors go back to the OS at once and RSS follows
# live tensor memory; glibc's default (a heap whose mmap threshold grows up to 32 MiB) keeps freed activation-sized
# blocks, so its peak RSS adds heap fragmentation on top. Both are measured.
PINNED_MALLOC = {"MALLOC_MMAP_THRESHOLD_": "65536"}
STEPS = 2


def rss_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(field)


def speed_settings(recipe) -> dict:
    """The estimator's attention/LM-head settings for the recipe's speed levers (as the dry run sets them)."""
    from mathtune.plan.plan import memory_settings
    from mathtune.train.sft import trainer_args

    s = memory_settings(recipe, trainer_args(recipe, cuda=False), gpu=False)
    return {"kv_repeat": s.kv_repeat, "attention_mask": s.attention_mask, "compact_head": s.compact_head}


def child(batch: int, length: int, checkpointing: bool, steps: int = STEPS) -> dict:
    """Train STEPS steps at this setting and return measured and estimated bytes."""
    import tempfile

    import torch
    from datasets import Dataset

    from mathtune.config import Recipe
    from mathtune.models import load_model, load_tokenizer, resolve_model
    from mathtune.plan.arch import resolve_arch
    from mathtune.plan.memory import MemorySettings, estimate_memory
    from mathtune.train.sft import build_trainer

    torch.set_num_threads(1)
    home = Path(os.environ.get("MATHTUNE_HOME", "/tmp/mthome"))
    path = resolve_model("default", home)
    recipe = Recipe.model_validate({
        "data": {"eval": {"source": "reasoning_gym", "task": "chain_sum", "size": 2, "seed": 9}},
        "lora": {"r": 16, "alpha": 32, "dropout": 0.05, "target_modules": "all-linear"},
        "trainer": {"max_steps": steps, "per_device_train_batch_size": batch, "max_length": length,
                    "gradient_checkpointing": checkpointing, "save_strategy": "no", "disable_tqdm": True},
    })
    tok = load_tokenizer(path)
    long = " ".join(str(n) for n in range(4 * length))  # far more than max_length tokens
    ds = Dataset.from_list([{"prompt": f"Count {k}:", "completion": long} for k in range(batch * steps)])
    before = rss_kib("VmRSS")
    model = load_model(path)
    loaded = rss_kib("VmRSS")
    with tempfile.TemporaryDirectory() as tmp:
        trainer = build_trainer(recipe, model, tok, ds, None, Path(tmp))
        Path("/proc/self/clear_refs").write_text("5")  # reset VmHWM to the current RSS
        start = time.time()
        trainer.train()
        seconds = time.time() - start
        peak = rss_kib("VmHWM")
    tokens = [len(x) for x in trainer.train_dataset["input_ids"]]
    arch, _ = resolve_arch("default", path)
    est = estimate_memory(arch, MemorySettings(batch=batch, max_length=length, lora_r=16, lora_dropout=0.05,
                                               gradient_checkpointing=checkpointing, gpu=False, **speed_settings(recipe)))
    return {
        "batch": batch, "max_length": length, "gradient_checkpointing": checkpointing, "row_tokens": sorted(set(tokens)),
        "measured_weights": (loaded - before) * 1024, "measured_total": (peak - before) * 1024,
        "estimate_total": est.total, "estimate_weights": est.get("weights"),
        "parts": [(p.name, p.bytes, p.note) for p in est.parts], "seconds": seconds,
        "checkpointing_active": bool(getattr(trainer.model.get_base_model(), "is_gradient_checkpointing", False)),
    }


def measure(batch: int, length: int, checkpointing: bool, pinned: bool = True, steps: int = STEPS) -> dict:
    """Run one setting in a fresh process (a clean RSS baseline) and return its result."""
    cmd = [sys.executable, __file__, "--child", f"{batch},{length},{int(checkpointing)},{steps}"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", **(PINNED_MALLOC if pinned else {})}
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=1200)
    if out.returncode != 0:
        raise RuntimeError(out.stderr[-3000:])
    return json.loads(out.stdout.strip().splitlines()[-1])


def mib(x: float) -> str:
    return f"{x / 2**20:,.0f}"


def report(results: list[dict]) -> str:
    lines = [
        "# Memory estimate vs measured peak (CPU, embedded default SmolLM2-135M-Instruct)", "",
        "Command: `flock /tmp/mathtune-cpu.lock python benchmarks/memory_estimate.py` "
        f"({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, torch 2.13.0 CPU, 1 thread). "
        f"LoRA r=16 on all linear layers, dropout 0.05, fp32, AdamW 32-bit (torch fused), mathtune's default speed "
        f"levers (padding-free batches, varlen attention, compact LM head), {STEPS} steps per setting, "
        "every row truncated to max_length (so no padding). Measured = peak RSS (VmHWM) during the steps - RSS before "
        "the model was loaded (weights are memory-mapped, so they count when the steps touch them). Two measurements "
        "per setting: with glibc malloc pinned to mmap above 64 KiB (`MALLOC_MMAP_THRESHOLD_=65536`: RSS follows live "
        "tensor memory, which is what the estimate counts) and with glibc's default (adds heap fragmentation).", "",
        "| batch | max length | grad. checkpointing | estimate MiB | measured MiB (pinned malloc) | estimate / measured "
        "| measured MiB (default malloc) | estimate / measured |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        d = r["measured_default_malloc"]
        lines.append(f"| {r['batch']} | {r['max_length']} | {'on' if r['gradient_checkpointing'] else 'off'} | "
                     f"{mib(r['estimate_total'])} | {mib(r['measured_total'])} | "
                     f"{r['estimate_total'] / r['measured_total']:.2f} | {mib(d)} | {r['estimate_total'] / d:.2f} |")
    lines += ["", "Parts of each estimate (MiB):", ""]
    for r in results:
        parts = "; ".join(f"{name} {mib(b)}" for name, b, _ in r["parts"])
        lines.append(f"- batch {r['batch']} x {r['max_length']}, checkpointing "
                     f"{'on' if r['gradient_checkpointing'] else 'off'}: {parts} ({r['seconds']:.0f} s for the steps)")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--child")
    parser.add_argument("--out", default=str(ROOT / "benchmarks/results/memory_estimate.md"))
    args = parser.parse_args()
    if args.child:
        b, n, g, steps = (int(x) for x in args.child.split(","))
        print(json.dumps(child(b, n, bool(g), steps)))
        return
    results = []
    for setting in SETTINGS:
        result = measure(*setting)
        result["measured_default_malloc"] = measure(*setting, pinned=False)["measured_total"]
        results.append(result)
    Path(args.out).write_text(report(results))
    print(report(results))
    json.dump(results, sys.stderr, indent=1)


if __name__ == "__main__":
    main()
